import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP server for Prometheus' `GET /metrics` on `--metrics-bind-address`
/// (kube-proxy's default 127.0.0.1:10249). One thread, one request per connection:
/// scrapes are rare and small.
final class MetricsServer: @unchecked Sendable {
    private let fd: Int32
    private let body: @Sendable () -> String
    private let lock = NSLock()
    private var stopped = false

    init(host: String, port: Int, body: @escaping @Sendable () -> String) throws {
        self.body = body
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw AgentError(description: "socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else {
            close(fd)
            throw AgentError(description: "metrics address \(host) is not an IPv4 address")
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0, listen(fd, 16) == 0 else {
            let e = String(cString: strerror(errno))
            close(fd)
            throw AgentError(description: "bind \(host):\(port): \(e)")
        }
    }

    func start() {
        let t = Thread { [self] in
            while true {
                let c = accept(fd, nil, nil)
                if c < 0 { if errno == EINTR { continue }; return }
                var tv = timeval(tv_sec: 2, tv_usec: 0)
                setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                var buf = [UInt8](repeating: 0, count: 2048)
                let n = read(c, &buf, buf.count)
                let request = n > 0 ? String(decoding: buf[0..<n], as: UTF8.self) : ""
                let ok = request.hasPrefix("GET /metrics")
                let text = ok ? body() : "not found: try /metrics\n"
                let head = "HTTP/1.1 \(ok ? "200 OK" : "404 Not Found")\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: \(text.utf8.count)\r\nConnection: close\r\n\r\n"
                let all = Array((head + text).utf8)
                var off = 0
                while off < all.count {
                    let w = all[off...].withUnsafeBytes { write(c, $0.baseAddress!, $0.count) }
                    if w <= 0 { break }
                    off += w
                }
                close(c)
            }
        }
        t.name = "ferry-metrics"
        t.start()
    }

    func stop() {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped else { return }
        stopped = true
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}
