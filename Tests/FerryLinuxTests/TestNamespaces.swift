// Throwaway network namespaces for the FerryLinux tests. Every name is unique to this
// process (ferrytest-<pid>-<counter>-<name>), interfaces are created directly inside
// the namespaces (`ip -n`), and everything is deleted when the value goes away, even
// when a test fails. The host's interfaces are never touched.
import CFerryLinux
import FerryLinux
import FerryPacket
import Foundation
import Glibc
import Synchronization

private let namespaceCounter = Mutex(0)

final class TestNamespaces: @unchecked Sendable {
    /// Why these tests cannot run here, or nil when they can. Printed once when a test is skipped.
    static let skipReason: String? = {
        if geteuid() != 0 { return "not root: network namespace tests need CAP_NET_ADMIN" }
        guard let r = try? Command.run(["ip", "netns", "list"]), r.status == 0 else {
            return "`ip netns` is unavailable"
        }
        return nil
    }()

    /// For `.enabled(if:)`: prints the reason when skipping.
    static var canRun: Bool {
        if let reason = skipReason {
            print("FerryLinuxTests: skipping namespace test: \(reason)")
            return false
        }
        return true
    }

    private var full: [String: String] = [:]
    /// A small number unique to this instance, for addresses: 10.<octet>.x.y.
    let octet: UInt8

    init(_ shortNames: [String]) throws {
        let n = namespaceCounter.withLock { c -> Int in
            c += 1
            return c
        }
        octet = UInt8(truncatingIfNeeded: 100 + (Int(getpid()) &+ n) % 100)
        for s in shortNames {
            let name = "ferrytest-\(getpid())-\(n)-\(s)"
            try Command.runChecked(["ip", "netns", "add", name])
            full[s] = name
            try ip(s, "link", "set", "lo", "up")
            // IPv6 would add router solicitations and MLD reports to every capture.
            try NetworkNamespace.perform(in: name) {
                try Sysctl.write("net/ipv6/conf/all/disable_ipv6", "1")
                try Sysctl.write("net/ipv6/conf/default/disable_ipv6", "1")
            }
        }
    }

    deinit {
        for name in full.values {
            _ = try? Command.run(["ip", "netns", "delete", name])
        }
    }

    func name(_ short: String) -> String { full[short]! }

    /// `ip -n <ns> args…`, throwing on a non-zero exit.
    @discardableResult
    func ip(_ ns: String, _ args: String...) throws -> String {
        try Command.runChecked(["ip", "-n", name(ns)] + args)
    }

    /// A veth pair between two namespaces, both ends up.
    func veth(_ nsA: String, _ ifA: String, _ nsB: String, _ ifB: String) throws {
        try ip(nsA, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", name(nsB))
        try ip(nsA, "link", "set", ifA, "up")
        try ip(nsB, "link", "set", ifB, "up")
    }

    func address(_ last: UInt8, subnet: UInt8 = 0) -> IPv4Address { IPv4Address(10, octet, subnet, last) }

    /// Runs `body` in namespace `short` on its own thread.
    func run<T: Sendable>(_ short: String, _ body: @Sendable @escaping () throws -> T) throws -> T {
        try NetworkNamespace.perform(in: name(short), body)
    }

    func ifindex(_ ns: String, _ ifname: String) throws -> Int32 {
        try run(ns) { Int32(if_nametoindex(ifname)) }
    }

    func mac(_ ns: String, _ ifname: String) throws -> MACAddress {
        try run(ns) { try KernelNetworkState.read().link(named: ifname)!.mac }
    }
}

/// A thread started now and joined later, for work that blocks (sockets, the forwarding loop).
final class TestThread: @unchecked Sendable {
    private var thread = pthread_t()
    private final class Body { let run: () -> Void; init(_ r: @escaping () -> Void) { run = r } }

    init(_ body: @Sendable @escaping () -> Void) {
        let box = Unmanaged.passRetained(Body(body)).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, box)
        precondition(rc == 0)
    }

    func join() { pthread_join(thread, nil) }
}

/// A value several threads write and read under a lock.
final class Shared<T: Sendable>: @unchecked Sendable {
    private let m: Mutex<T>
    init(_ v: T) { m = Mutex(v) }
    var value: T {
        get { m.withLock { $0 } }
        set { m.withLock { $0 = newValue } }
    }
    func update(_ f: (inout T) -> Void) { m.withLock { f(&$0) } }
}

// MARK: - Frames and sockets for tests

enum TestFrames {
    /// An Ethernet frame with the local-experimental EtherType 0x88B5 and `payload`.
    static func experimental(dst: MACAddress, src: MACAddress, payload: [UInt8]) -> [UInt8] {
        var f: [UInt8] = []
        for i in 0..<6 { f.append(dst.octet(i)) }
        for i in 0..<6 { f.append(src.octet(i)) }
        f += [0x88, 0xB5]
        f += payload
        return f
    }

    static func etherType(_ f: UnsafeRawBufferPointer) -> UInt16 {
        f.count >= 14 ? UInt16(f[12]) << 8 | UInt16(f[13]) : 0
    }

    /// TCP header offset and flags of an IPv4/TCP frame, or nil.
    static func tcp(_ f: UnsafeRawBufferPointer) -> (offset: Int, flags: UInt8, destinationPort: UInt16)? {
        guard etherType(f) == 0x0800, f.count >= 34, f[23] == 6 else { return nil }
        let ihl = Int(f[14] & 0x0F) * 4
        let t = 14 + ihl
        guard f.count >= t + 20 else { return nil }
        return (t, f[t + 13], UInt16(f[t + 2]) << 8 | UInt16(f[t + 3]))
    }
}

enum TestSockets {
    /// Sends each frame once on `ifname` from a plain AF_PACKET socket. Call inside the namespace.
    static func sendFrames(ifname: String, _ frames: [[UInt8]]) throws {
        let fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue), 0)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        defer { close(fd) }
        var addr = sockaddr_ll()
        addr.sll_family = UInt16(AF_PACKET)
        addr.sll_ifindex = Int32(if_nametoindex(ifname))
        addr.sll_halen = 6
        for f in frames {
            let r = withUnsafePointer(to: &addr) { a in
                a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    f.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, socklen_t(MemoryLayout<sockaddr_ll>.size)) }
                }
            }
            guard r == f.count else { throw Errno(rawValue: errno) }
        }
    }

    static func sockaddrIn(_ a: IPv4Address, _ port: UInt16) -> sockaddr_in {
        var s = sockaddr_in()
        s.sin_family = sa_family_t(AF_INET)
        s.sin_port = port.bigEndian
        s.sin_addr.s_addr = a.value.bigEndian
        return s
    }

    static func setTimeouts(_ fd: Int32, seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// A listening TCP socket. Call inside the namespace.
    static func listen(_ a: IPv4Address, _ port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        var sa = sockaddrIn(a, port)
        let r = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard r == 0, Glibc.listen(fd, 8) == 0 else {
            let e = errno
            close(fd)
            throw Errno(rawValue: e)
        }
        setTimeouts(fd, seconds: 20)
        return fd
    }

    /// Starts a TCP connect without waiting for it. Call inside the namespace.
    static func connectNonBlocking(_ a: IPv4Address, _ port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        var sa = sockaddrIn(a, port)
        let r = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard r == 0 || errno == EINPROGRESS else {
            let e = errno
            close(fd)
            throw Errno(rawValue: e)
        }
        return fd
    }

    /// A connected, blocking TCP socket with 20 s send/receive timeouts. Call inside the namespace.
    static func connect(_ a: IPv4Address, _ port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        setTimeouts(fd, seconds: 20)
        var sa = sockaddrIn(a, port)
        let r = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard r == 0 else {
            let e = errno
            close(fd)
            throw Errno(rawValue: e)
        }
        return fd
    }

    /// Sends `count` bytes of a repeating pattern; returns how many went out.
    static func sendPattern(_ fd: Int32, count: Int) -> Int {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        for i in 0..<chunk.count { chunk[i] = UInt8(truncatingIfNeeded: i &* 7) }
        var sent = 0
        while sent < count {
            let n = chunk.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, min($0.count, count - sent), 0) }
            if n <= 0 { break }
            sent += n
        }
        return sent
    }
}

/// Polls `rings` until `done` says so or `attempts` polls of 200 ms each found nothing
/// new. Bounded so a broken ring fails the test instead of hanging it; no assertion is
/// made about how long anything took.
func receiveUntil(_ rings: [PacketRing], attempts: Int = 25, _ handle: (Int, inout ReceivedFrame) -> Void, done: () -> Bool) throws {
    var poller = Poller()
    for r in rings { _ = poller.add(r.receiveDescriptor) }
    var idle = 0
    while !done() && idle < attempts {
        var got = 0
        for (i, r) in rings.enumerated() {
            got += r.receive(maxFrames: 256) { handle(i, &$0) }
        }
        if got == 0 {
            if try poller.wait(timeoutMilliseconds: 200) == 0 { idle += 1 }
        }
    }
}
