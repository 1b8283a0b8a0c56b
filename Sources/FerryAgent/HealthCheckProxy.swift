import FerryCore
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

// The proxy's own health, served on `--healthz-bind-address` (default 0.0.0.0:10256)
// at /healthz and /livez, with kube-proxy's semantics
// (kubernetes pkg/proxy/healthcheck/proxy_health.go):
//
// - The agent calls `queuedUpdate()` when a Service or EndpointSlice change arrives
//   and `updated()` once the dataplane reflects it. The proxy is unhealthy when the
//   oldest change still queued has waited `healthTimeout` or longer.
// - Before the first `updated()` the proxy counts as healthy: kube-proxy judges only
//   proxiers that have synced once ("healthy while it's starting up").
// - /healthz is also 503 while the node is not eligible (being deleted, or tainted
//   ToBeDeletedByClusterAutoscaler), so cloud load balancers drain it first; /livez
//   ignores eligibility, so the kubelet does not restart a proxy on a draining node.
// - When healthy, `lastUpdated` in the body is the current time ("recent"), which
//   kube-proxy keeps for compatibility with releases where it was the last sync time.
//
// kube-proxy tracks one proxier per IP family; Ferry is IPv4-only, so there is one.

/// The proxy's health at one instant (kube-proxy's `ProxyHealth`).
public struct ProxyHealth: Hashable, Sendable {
    /// The last `updated()`, nil before the first one.
    public var lastUpdated: HealthCheckInstant?
    public var currentTime: HealthCheckInstant
    public var healthy: Bool

    public init(lastUpdated: HealthCheckInstant?, currentTime: HealthCheckInstant, healthy: Bool) {
        self.lastUpdated = lastUpdated
        self.currentTime = currentTime
        self.healthy = healthy
    }
}

/// kube-proxy's ProxyHealthServer: update bookkeeping plus the /healthz and /livez
/// HTTP server. Every method may be called from any thread.
public final class ProxyHealthServer: Sendable {
    /// kube-proxy's `--healthz-bind-address` default.
    public static let defaultHost = "0.0.0.0"
    public static let defaultPort = 10256
    /// kube-proxy passes twice its `--iptables-sync-period` (default 30 s).
    public static let defaultHealthTimeout = Seconds(60)
    /// The taint the Cluster Autoscaler puts on a node it is about to delete.
    public static let toBeDeletedTaint = "ToBeDeletedByClusterAutoscaler"

    public let host: String
    public let port: Int
    public let healthTimeout: Seconds
    private let clock: any HealthCheckClock
    private let logger: Logger

    private struct State {
        var lastUpdated: HealthCheckInstant?
        var oldestPendingQueued: HealthCheckInstant?
        // Eligible until told otherwise, as kube-proxy was before its first node event.
        var nodeEligible = true
    }
    private let state = Mutex(State())
    private let listener = Mutex<HealthCheckListener?>(nil)

    public init(host: String = ProxyHealthServer.defaultHost, port: Int = ProxyHealthServer.defaultPort,
                healthTimeout: Seconds = ProxyHealthServer.defaultHealthTimeout,
                clock: any HealthCheckClock = SystemHealthCheckClock(), logger: Logger) {
        self.host = host
        self.port = port
        self.healthTimeout = healthTimeout
        self.clock = clock
        self.logger = logger
    }

    // MARK: Update bookkeeping

    /// A change arrived that the dataplane does not reflect yet. Only the oldest
    /// pending change counts: later ones do not restart the timeout.
    public func queuedUpdate() {
        let now = clock.now()
        state.withLock { state in
            if state.oldestPendingQueued == nil { state.oldestPendingQueued = now }
        }
    }

    /// The dataplane now reflects every change queued so far.
    public func updated() {
        let now = clock.now()
        state.withLock { state in
            state.oldestPendingQueued = nil
            state.lastUpdated = now
        }
    }

    /// Whether the proxy is keeping up, ignoring the node's eligibility (what the
    /// service health checks report as `serviceProxyHealthy`).
    public var isHealthy: Bool { health().healthy }

    /// The proxy's health now, ignoring the node's eligibility.
    public func health() -> ProxyHealth {
        let now = clock.now()
        return state.withLock { state in
            ProxyHealth(lastUpdated: state.lastUpdated, currentTime: now,
                        healthy: Self.isHealthy(state, now: now, timeout: healthTimeout))
        }
    }

    private static func isHealthy(_ state: State, now: HealthCheckInstant, timeout: Seconds) -> Bool {
        guard state.lastUpdated != nil, let queued = state.oldestPendingQueued else { return true }
        return now.monotonicNanoseconds(since: queued) < timeout.nanoseconds
    }

    // MARK: Node eligibility

    /// False while the node is being deleted or carries `toBeDeletedTaint`.
    public var nodeEligible: Bool { state.withLock { $0.nodeEligible } }

    /// Records the node's state from its latest Node object (kube-proxy's SyncNode).
    public func syncNode(beingDeleted: Bool, taintKeys: [String]) {
        let eligible = !beingDeleted && !taintKeys.contains(Self.toBeDeletedTaint)
        state.withLock { $0.nodeEligible = eligible }
    }

    // MARK: HTTP

    /// The answer to a request for `path` (which may carry a query). Go's ServeMux
    /// matches "/healthz" and "/livez" exactly and answers anything else 404.
    func response(path: String) -> HealthCheckResponse {
        let route = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        switch route {
        case "/healthz": return healthzResponse()
        case "/livez": return livezResponse()
        default: return .notFound
        }
    }

    func healthzResponse() -> HealthCheckResponse {
        let eligible = nodeEligible
        let health = health()
        return Self.render(health, nodeEligible: eligible, healthy: health.healthy && eligible)
    }

    func livezResponse() -> HealthCheckResponse {
        let health = health()
        return Self.render(health, nodeEligible: nil, healthy: health.healthy)
    }

    /// The body is what Go's encoding/json prints for kube-proxy's ProxyHealth, field
    /// for field and in its order: compact, `nodeEligible` only on /healthz, and the
    /// per-family `status` only once the proxier has updated (an empty map is omitted).
    private static func render(_ health: ProxyHealth, nodeEligible: Bool?, healthy: Bool) -> HealthCheckResponse {
        let reportedLastUpdated = healthy
            ? health.currentTime.rfc3339
            : (health.lastUpdated?.rfc3339 ?? RFC3339.goZeroTime)
        var body = "{\"lastUpdated\":\"\(reportedLastUpdated)\",\"currentTime\":\"\(health.currentTime.rfc3339)\""
        if let nodeEligible { body += ",\"nodeEligible\":\(nodeEligible)" }
        body += ",\"healthy\":\(health.healthy)"
        if let lastUpdated = health.lastUpdated {
            body += ",\"status\":{\"IPv4\":{\"lastUpdated\":\"\(lastUpdated.rfc3339)\",\"healthy\":\(health.healthy)}}"
        }
        body += "}"
        return HealthCheckResponse(
            status: healthy ? .ok : .serviceUnavailable,
            headers: [("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")],
            body: body)
    }

    /// Binds `host:port` and starts answering. Returns the bound address (useful
    /// with port 0). Throws if the address cannot be bound or the server already runs.
    @discardableResult
    public func start(group: any EventLoopGroup) async throws -> SocketAddress {
        guard listener.withLock({ $0 == nil }) else { throw HealthCheckError.alreadyStarted }
        let bound: HealthCheckListener
        do {
            bound = try await HealthCheckListener.bind(group: group, host: host, port: port) { [self] head in
                response(path: head.uri)
            }
        } catch {
            logger.error("Failed to start proxy healthz", metadata: ["address": "\(host):\(port)", "error": "\(error)"])
            throw HealthCheckError.bindFailed(service: nil, host: host, port: port, reason: "\(error)")
        }
        let raced = listener.withLock { current -> Bool in
            guard current == nil else { return true }
            current = bound
            return false
        }
        if raced {
            await bound.close()
            throw HealthCheckError.alreadyStarted
        }
        logger.info("Serving proxy healthz", metadata: ["address": "\(bound.localAddress.map { "\($0)" } ?? "?")"])
        // A bound TCP socket always has a local address.
        return bound.localAddress!
    }

    /// Where the server listens, nil when it is not running.
    public var localAddress: SocketAddress? { listener.withLock { $0?.localAddress } }

    /// Stops answering and closes open connections. Safe to call when not running.
    public func stop() async {
        guard let running = listener.withLock({ current -> HealthCheckListener? in
            defer { current = nil }
            return current
        }) else { return }
        await running.close()
    }
}

/// Why a health server could not do what it was asked.
public enum HealthCheckError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A listener could not be bound (port taken, address not on this node...).
    /// `service` is nil for the proxy's own healthz server.
    case bindFailed(service: ServiceName?, host: String, port: Int, reason: String)
    /// Several listeners failed in one sync; each is listed.
    case multiple([HealthCheckError])
    /// `start` was called on a server that is already running.
    case alreadyStarted

    public var description: String {
        switch self {
        case let .bindFailed(service, host, port, reason):
            let what = service.map { "health check for \($0)" } ?? "proxy healthz"
            return "\(what) failed to listen on \(host):\(port): \(reason)"
        case .multiple(let errors):
            return errors.map(\.description).joined(separator: "; ")
        case .alreadyStarted:
            return "health server already started"
        }
    }
}
