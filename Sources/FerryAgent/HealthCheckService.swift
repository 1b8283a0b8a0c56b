import FerryCore
import FerryPacket
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

// Per-Service health checks for externalTrafficPolicy: Local, with kube-proxy's
// semantics (kubernetes pkg/proxy/healthcheck/service_health.go). A cloud load
// balancer probes `healthCheckNodePort` on every node and sends traffic only to
// nodes that answer 200, i.e. nodes with a local ready endpoint; the others would
// have to drop the traffic, since Local forbids forwarding it to another node.
//
// - Any path and any method get the same answer.
// - 200 when the node has at least one local ready endpoint and the proxy itself is
//   healthy; 503 otherwise, so a node whose dataplane is stale is drained as well.
// - `X-Load-Balancing-Endpoint-Weight: N` lets weighted load balancers send traffic
//   in proportion to the local endpoints.
// - A port that cannot be bound is reported and retried on the next sync, the way
//   kube-proxy leaves it out of its table so the next SyncServices tries again.

/// Endpoint counts read by the HTTP handlers on the event loops while a sync may be
/// changing them. Only services whose listeners are open have an entry.
private final class ServiceHealthTable: Sendable {
    private let counts = Mutex<[ServiceName: Int]>([:])

    func count(_ name: ServiceName) -> Int? { counts.withLock { $0[name] } }
    func set(_ name: ServiceName, _ count: Int?) { counts.withLock { $0[name] = count } }
}

/// kube-proxy's ServiceHealthServer: one HTTP listener per Local Service and node
/// address. Safe to use from any task; syncs run one at a time, in call order.
public actor ServiceHealthServer {
    private struct Instance {
        var port: UInt16
        var listeners: [HealthCheckListener]
    }

    /// The addresses every health check port is opened on.
    public nonisolated let hosts: [String]
    private let group: any EventLoopGroup
    private let proxyHealth: ProxyHealthServer
    private let logger: Logger
    private let table = ServiceHealthTable()
    private var instances: [ServiceName: Instance] = [:]
    /// The sync running or last run; the next one waits for it.
    private var lastSync: Task<Void, Never>?

    /// - Parameters:
    ///   - nodeAddresses: where the ports are opened (kube-proxy's addresses matching
    ///     `--nodeport-addresses`); empty means every address (0.0.0.0).
    ///   - proxyHealth: supplies `serviceProxyHealthy`.
    public init(nodeAddresses: [IPv4Address], proxyHealth: ProxyHealthServer,
                group: any EventLoopGroup, logger: Logger) {
        hosts = nodeAddresses.isEmpty ? [IPv4Address.any.description] : nodeAddresses.map(\.description)
        self.group = group
        self.proxyHealth = proxyHealth
        self.logger = logger
    }

    /// Makes the open health checks match `services` (Service → healthCheckNodePort)
    /// and sets each one's local ready endpoint count from `localEndpoints` (absent
    /// means 0). Listeners of services no longer wanted, or whose port changed, are
    /// closed; new ones are opened; the others are left alone. Called on every reload.
    ///
    /// Throws `HealthCheckError` listing the ports that could not be bound, after
    /// doing everything else; those services are tried again on the next sync.
    public func sync(services: [ServiceName: UInt16], localEndpoints: [ServiceName: Int]) async throws {
        let previous = lastSync
        let run = Task { () -> [HealthCheckError] in
            await previous?.value
            return await self.apply(services: services, localEndpoints: localEndpoints)
        }
        lastSync = Task { _ = await run.value }
        let failures = await run.value
        switch failures.count {
        case 0: return
        case 1: throw failures[0]
        default: throw HealthCheckError.multiple(failures)
        }
    }

    /// Closes every listener (a sync to no services).
    public func shutdown() async {
        try? await sync(services: [:], localEndpoints: [:])
    }

    /// The services with open health checks and their ports.
    public var openPorts: [ServiceName: UInt16] { instances.mapValues(\.port) }

    /// Where `service`'s health check listens (one address per host), empty if it is
    /// not open. With port 0 in `sync`, this tells the port the kernel chose.
    public func localAddresses(of service: ServiceName) -> [SocketAddress] {
        instances[service]?.listeners.compactMap(\.localAddress) ?? []
    }

    // MARK: Sync

    private func apply(services: [ServiceName: UInt16], localEndpoints: [ServiceName: Int]) async -> [HealthCheckError] {
        // Close what is no longer wanted first, so a port moving between two
        // services in one reload is free when the new owner binds it.
        for (name, instance) in instances.sorted(by: { $0.key < $1.key }) where services[name] != instance.port {
            logger.debug("Closing health check", metadata: ["service": "\(name)", "port": "\(instance.port)"])
            table.set(name, nil)
            instances[name] = nil
            for listener in instance.listeners { await listener.close() }
        }

        // Counts are in place before a new listener can answer, so its first answer
        // is already the right one.
        for name in services.keys {
            table.set(name, max(0, localEndpoints[name] ?? 0))
        }

        var failures: [HealthCheckError] = []
        for (name, port) in services.sorted(by: { $0.key < $1.key }) where instances[name] == nil {
            logger.debug("Opening health check", metadata: ["service": "\(name)", "port": "\(port)"])
            do {
                instances[name] = Instance(port: port, listeners: try await openListeners(name, port))
            } catch {
                table.set(name, nil)
                logger.error("Failed to start health check", metadata: ["service": "\(name)", "error": "\(error)"])
                failures.append(error)
            }
        }
        return failures
    }

    /// Opens `port` on every host, or none: a partial set is closed again so the
    /// port is free for a retry or for another owner (as kube-proxy's closeAll).
    private func openListeners(_ name: ServiceName, _ port: UInt16) async throws(HealthCheckError) -> [HealthCheckListener] {
        var opened: [HealthCheckListener] = []
        for host in hosts {
            do {
                let listener = try await HealthCheckListener.bind(
                    group: group, host: host, port: Int(port),
                    respond: { [table, proxyHealth] _ in
                        Self.response(for: name, count: table.count(name), proxyHealthy: proxyHealth.isHealthy)
                    })
                opened.append(listener)
            } catch {
                for listener in opened { await listener.close() }
                throw HealthCheckError.bindFailed(service: name, host: host, port: Int(port), reason: "\(error)")
            }
        }
        return opened
    }

    // MARK: Answer

    /// The answer for `name` with `count` local ready endpoints; nil (close the
    /// connection) when the service's health check has just been removed.
    static func response(for name: ServiceName, count: Int?, proxyHealthy: Bool) -> HealthCheckResponse? {
        guard let count else { return nil }
        return HealthCheckResponse(
            status: count > 0 && proxyHealthy ? .ok : .serviceUnavailable,
            headers: [("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff"),
                      ("X-Load-Balancing-Endpoint-Weight", String(count))],
            body: body(for: name, count: count, proxyHealthy: proxyHealthy))
    }

    /// Byte for byte what kube-proxy writes: its Go template is indented with tabs,
    /// dedented, and trimmed of the surrounding newlines, so the body is multi-line
    /// JSON with tab indentation and no final newline.
    static func body(for name: ServiceName, count: Int, proxyHealthy: Bool) -> String {
        "{\n"
            + "\t\"service\": {\n"
            + "\t\t\"namespace\": \(jsonQuoted(name.namespace)),\n"
            + "\t\t\"name\": \(jsonQuoted(name.name))\n"
            + "\t},\n"
            + "\t\"localEndpoints\": \(count),\n"
            + "\t\"serviceProxyHealthy\": \(proxyHealthy)\n"
            + "}"
    }

    // MARK: Inputs from the model

    /// The Services that get a health check and their ports: LoadBalancer Services
    /// with externalTrafficPolicy Local and a healthCheckNodePort (kube-proxy's
    /// NeedsHealthCheck), skipping those it does not proxy at all.
    public static func healthCheckNodePorts(_ services: [ServiceSpec]) -> [ServiceName: UInt16] {
        var ports: [ServiceName: UInt16] = [:]
        for service in services
        where service.isProxied && service.type == .loadBalancer && service.externalTrafficPolicy == .local {
            if let port = service.healthCheckNodePort, port != 0 { ports[service.name] = port }
        }
        return ports
    }

    /// Local ready endpoints per Service: distinct addresses of endpoints on
    /// `nodeName` whose `ready` condition is true. Addresses are counted once
    /// however many ports or slices list them, as kube-proxy's LocalReadyEndpoints
    /// does; terminating endpoints are not ready, so a node with only terminating
    /// endpoints fails its check and is drained.
    public static func localReadyEndpointCounts(_ slices: [EndpointSliceSpec], nodeName: String) -> [ServiceName: Int] {
        var addresses: [ServiceName: Set<IPv4Address>] = [:]
        for slice in slices {
            for endpoint in slice.endpoints where endpoint.ready && endpoint.nodeName == nodeName {
                addresses[slice.service, default: []].insert(endpoint.address)
            }
        }
        return addresses.mapValues(\.count)
    }
}
