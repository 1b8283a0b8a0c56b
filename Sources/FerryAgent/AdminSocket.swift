import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct AdminSocketError: Error, CustomStringConvertible {
    public var description: String
}

/// The agent's side of the admin API: a thread that accepts one client at a time on a
/// Unix socket (mode 0600) and answers each request with `handler`'s JSON.
public final class AdminServer: @unchecked Sendable {
    public let path: String
    private let fd: Int32
    private let handler: @Sendable (AdminRequest) -> Data
    private var thread: Thread?
    private let stopLock = NSLock()
    private var stopped = false

    public init(path: String, handler: @escaping @Sendable (AdminRequest) -> Data) throws {
        self.path = path
        self.handler = handler
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw AdminSocketError(description: "socket: \(String(cString: strerror(errno)))") }
        var addr = try Self.address(path)
        let oldMask = umask(0o177)  // the socket file is created 0600: root only
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(oldMask)
        guard rc == 0 else {
            let e = String(cString: strerror(errno))
            close(fd)
            throw AdminSocketError(description: "bind \(path): \(e)")
        }
        chmod(path, 0o600)
        guard listen(fd, 16) == 0 else {
            close(fd)
            throw AdminSocketError(description: "listen \(path): \(String(cString: strerror(errno)))")
        }
    }

    static func address(_ path: String) throws -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            throw AdminSocketError(description: "admin socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return addr
    }

    public func start() {
        let t = Thread { [self] in self.acceptLoop() }
        t.name = "ferry-admin"
        thread = t
        t.start()
    }

    private func acceptLoop() {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 {
                if errno == EINTR { continue }
                return  // closed by stop()
            }
            serve(c)
            close(c)
        }
    }

    private func serve(_ c: Int32) {
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var line = Data()
        var buf = [UInt8](repeating: 0, count: 4096)
        while !line.contains(UInt8(ascii: "\n")) && line.count < 65536 {
            let n = read(c, &buf, buf.count)
            if n <= 0 { break }
            line.append(contentsOf: buf[0..<n])
        }
        let reply: Data
        if let end = line.firstIndex(of: UInt8(ascii: "\n")),
           let req = try? JSONDecoder().decode(AdminRequest.self, from: line[line.startIndex..<end]) {
            reply = handler(req)
        } else {
            reply = Data(#"{"error":"bad request: send one JSON line such as {\"command\":\"stats\"}"}"#.utf8)
        }
        reply.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = write(c, raw.baseAddress! + off, raw.count - off)
                if n < 0 { if errno == EINTR { continue }; break }
                off += n
            }
        }
    }

    public func stop() {
        stopLock.lock()
        defer { stopLock.unlock() }
        guard !stopped else { return }
        stopped = true
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        unlink(path)
    }

    deinit { stop() }
}

/// The CLI's side: send one request, read the whole answer.
public enum AdminClient {
    public static func request(_ req: AdminRequest, socketPath: String) throws -> Data {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw AdminSocketError(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var addr = try AdminServer.address(socketPath)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            throw AdminSocketError(description: "cannot reach the agent at \(socketPath): \(String(cString: strerror(errno))) (is `ferry agent` running, and are you root?)")
        }
        var body = try JSONEncoder().encode(req)
        body.append(UInt8(ascii: "\n"))
        _ = body.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        var out = Data()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buf, buf.count)
            if n < 0 { if errno == EINTR { continue }; throw AdminSocketError(description: "read: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }
}
