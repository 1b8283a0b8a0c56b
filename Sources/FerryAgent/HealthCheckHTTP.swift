import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

// The HTTP plumbing both health servers share: one listening socket that answers
// every request with whatever a responder computes at that moment, and that closes
// its accepted connections too when it is closed (as Go's http.Server.Close does
// for kube-proxy, so a load balancer holding a keep-alive connection to a removed
// health check port sees it go away rather than a stale answer).

/// One HTTP answer from a health server.
struct HealthCheckResponse: Sendable {
    var status: HTTPResponseStatus
    /// In the order they are sent; Content-Length is added when the answer is written.
    var headers: [(String, String)]
    var body: String

    /// Go's `http.NotFound`, which answers paths no handler is registered for.
    static let notFound = HealthCheckResponse(
        status: .notFound,
        headers: [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")],
        body: "404 page not found\n")
}

/// Computes the answer to one request from its head. nil closes the connection
/// without answering (the service behind the port is gone).
typealias HealthCheckResponder = @Sendable (HTTPRequestHead) -> HealthCheckResponse?

/// A bound health check socket and the connections it accepted.
final class HealthCheckListener: Sendable {
    let channel: any Channel
    private let connections: HealthCheckConnections

    private init(channel: any Channel, connections: HealthCheckConnections) {
        self.channel = channel
        self.connections = connections
    }

    var localAddress: SocketAddress? { channel.localAddress }

    /// Binds `host:port` (port 0 picks a free one) and serves HTTP/1.1 on it.
    /// SO_REUSEADDR is set as Go's net.Listen sets it, so a port closed by one sync
    /// can be bound again by the next while old connections sit in TIME_WAIT.
    static func bind(group: any EventLoopGroup, host: String, port: Int,
                     respond: @escaping HealthCheckResponder) async throws -> HealthCheckListener {
        let connections = HealthCheckConnections()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(ChannelOptions.backlog, value: 128)
            .childChannelInitializer { channel in
                connections.insert(channel)
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(HealthCheckHTTPHandler(respond: respond))
                }
            }
            .bind(host: host, port: port)
            .get()
        return HealthCheckListener(channel: channel, connections: connections)
    }

    /// Stops accepting, then closes every accepted connection. Errors are ignored:
    /// a socket that is already closed is what we want.
    func close() async {
        try? await channel.close().get()
        for connection in connections.closeAll() {
            try? await connection.close().get()
        }
    }
}

/// The accepted connections of one listener, so closing the listener can close them.
private final class HealthCheckConnections: Sendable {
    private let state = Mutex<(open: [ObjectIdentifier: any Channel], closed: Bool)>(([:], false))

    func insert(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        let accepted = state.withLock { state -> Bool in
            guard !state.closed else { return false }
            state.open[id] = channel
            return true
        }
        guard accepted else {
            // Accepted in the instant the listener was being closed.
            channel.close(promise: nil)
            return
        }
        channel.closeFuture.whenComplete { [self] _ in
            _ = state.withLock { $0.open.removeValue(forKey: id) }
        }
    }

    func closeAll() -> [any Channel] {
        state.withLock { state in
            state.closed = true
            defer { state.open = [:] }
            return Array(state.open.values)
        }
    }
}

/// Answers each request on one connection. Any method and any body are accepted,
/// as kube-proxy's Go handlers accept them; HEAD gets the headers only.
private final class HealthCheckHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let respond: HealthCheckResponder
    private var head: HTTPRequestHead?

    init(respond: @escaping HealthCheckResponder) {
        self.respond = respond
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
        case .body:
            break
        case .end:
            guard let requestHead = head else { return }
            head = nil
            guard let response = respond(requestHead) else {
                context.close(promise: nil)
                return
            }
            write(response, for: requestHead, context: context)
        }
    }

    private func write(_ response: HealthCheckResponse, for request: HTTPRequestHead, context: ChannelHandlerContext) {
        var body = context.channel.allocator.buffer(capacity: response.body.utf8.count)
        body.writeString(response.body)
        var headers = HTTPHeaders(response.headers)
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        let keepAlive = request.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }

        let head = HTTPResponseHead(version: request.version, status: response.status, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            // Close only once the answer is on the wire: closing with writes
            // pending would fail them and the client would see a reset.
            let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            written.whenComplete { _ in boundContext.value.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// JSON (RFC 8259 section 7) string literal, quotes included. Kubernetes names are
/// DNS labels and need no escaping; this keeps the body valid JSON regardless.
func jsonQuoted(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case let c where c.value < 0x20:
            let hex = String(c.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
