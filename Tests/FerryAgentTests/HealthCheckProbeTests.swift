import FerryCore
import Synchronization
import Testing

@testable import FerryAgent

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Test support for the health check tests: a plain POSIX socket HTTP/1.1 client, so
// the servers are exercised over real TCP on loopback the way a load balancer's
// prober reaches them, and a clock the tests step by hand.

/// A parsed HTTP response.
struct ProbeReply {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: String

    /// The value of header `name` (case-insensitive, RFC 9110 section 5.1).
    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

enum ProbeError: Error, Equatable {
    case connect(errno: Int32)
    case io(errno: Int32)
    case malformed(String)
    case closedBeforeReply
}

/// One client TCP connection. Every socket has a 5 s receive timeout only so that a
/// broken server fails the test instead of hanging it; no result depends on timing.
final class ProbeConnection {
    private let fd: Int32
    private var pending: [UInt8] = []

    init(host: String = "127.0.0.1", port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ProbeError.io(errno: errno) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = probeSocketAddress(host: host, port: port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if rc != 0 {
            let error = errno
            close(fd)
            throw ProbeError.connect(errno: error)
        }
    }

    deinit { close(fd) }

    func send(_ text: String) throws {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ProbeError.io(errno: errno) }
            bytes = bytes.dropFirst(n)
        }
    }

    /// Reads more bytes into `pending`; false at end of stream.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 4096)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 { throw ProbeError.io(errno: errno) }
        pending += chunk[0..<n]
        return n > 0
    }

    /// Reads one response, its body delimited by Content-Length (or, without one,
    /// by the end of the stream). `headOnly` for the answer to a HEAD request.
    func readReply(headOnly: Bool = false) throws -> ProbeReply {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        var headEnd: Int?
        while headEnd == nil {
            headEnd = firstIndex(of: separator)
            if headEnd == nil, try !fill() { throw ProbeError.closedBeforeReply }
        }
        let headText = String(decoding: pending[0..<headEnd!], as: UTF8.self)
        pending.removeFirst(headEnd! + separator.count)
        var lines = headText.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let status = Int(statusLine[1]) else {
            throw ProbeError.malformed(headText)
        }
        var headers: [(name: String, value: String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { throw ProbeError.malformed(line) }
            let value = line[line.index(after: colon)...].drop { $0 == " " }
            headers.append((String(line[..<colon]), String(value)))
        }
        var reply = ProbeReply(status: status, headers: headers, body: "")
        if headOnly { return reply }
        if let length = reply.header("Content-Length").flatMap({ Int($0) }) {
            while pending.count < length {
                if try !fill() { throw ProbeError.malformed("body shorter than Content-Length") }
            }
            reply.body = String(decoding: pending[0..<length], as: UTF8.self)
            pending.removeFirst(length)
        } else {
            while try fill() {}
            reply.body = String(decoding: pending, as: UTF8.self)
            pending = []
        }
        return reply
    }

    /// True if the server closed the connection (EOF) with nothing more to read.
    func readsEndOfStream() throws -> Bool {
        try !fill() && pending.isEmpty
    }

    private func firstIndex(of needle: [UInt8]) -> Int? {
        guard pending.count >= needle.count else { return nil }
        for i in 0...(pending.count - needle.count) where Array(pending[i..<(i + needle.count)]) == needle {
            return i
        }
        return nil
    }
}

/// One request on a fresh connection, `Connection: close`, as load balancer probers do.
func probe(port: Int, path: String = "/", method: String = "GET", host: String = "127.0.0.1") throws -> ProbeReply {
    let connection = try ProbeConnection(host: host, port: port)
    try connection.send("\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\n\r\n")
    return try connection.readReply(headOnly: method == "HEAD")
}

func probeSocketAddress(host: String, port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    precondition(inet_pton(AF_INET, host, &address.sin_addr) == 1, "bad test address \(host)")
    return address
}

/// A listening socket that holds `host:port` (0: any free port) until closed.
final class PortHolder {
    let fd: Int32
    let port: Int

    init(host: String = "127.0.0.1", port: Int = 0) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ProbeError.io(errno: errno) }
        var address = probeSocketAddress(host: host, port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 8) == 0 else {
            let error = errno
            close(fd)
            throw ProbeError.io(errno: error)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    func release() { close(fd) }
}

/// A port that was free a moment ago (bound to port 0, then released).
func freeLoopbackPort() throws -> Int {
    let holder = try PortHolder()
    holder.release()
    return holder.port
}

/// `count` distinct ports that were free a moment ago.
func freeLoopbackPorts(_ count: Int) throws -> [Int] {
    let holders = try (0..<count).map { _ in try PortHolder() }
    for holder in holders { holder.release() }
    return holders.map(\.port)
}

/// A clock the test steps by hand; both readings move together.
final class SteppedClock: HealthCheckClock {
    private let instant: Mutex<HealthCheckInstant>

    /// 2024-05-01T12:00:00.5Z on the wall, 1000 s on the monotonic clock.
    init(_ start: HealthCheckInstant = HealthCheckInstant(
        monotonic: .seconds(1000), unixNanoseconds: 1_714_564_800_500_000_000)) {
        instant = Mutex(start)
    }

    func now() -> HealthCheckInstant { instant.withLock { $0 } }

    func advance(nanoseconds: UInt64) {
        instant.withLock {
            $0.monotonic.nanoseconds += nanoseconds
            $0.unixNanoseconds += Int64(nanoseconds)
        }
    }

    func advance(_ seconds: Seconds) { advance(nanoseconds: seconds.nanoseconds) }
}
