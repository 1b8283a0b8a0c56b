import Dispatch
import FerryControlPlane
import FerryCore
import FerryLinux
import FerryPacket
import Foundation
import Logging
import NIOCore
import NIOPosix

public struct AgentError: Error, CustomStringConvertible {
    public var description: String
}

/// `ferry agent`: owns forwarding in its network namespace.
///
/// Threads: the packet loop (one, owns the rings, the pipeline and its conntrack); the
/// control loop (this thread: netlink notifications, the control-plane file, reloads);
/// the admin socket; SwiftNIO's event loop for health checks.
public final class Agent: @unchecked Sendable {
    let options: AgentOptions
    let logger: Logger
    let published: Locked<ForwardingState>
    let startedAt = Date()
    private let sync: ServiceSync
    private var document: ControlPlaneDocument { sync.document }
    private var cluster: ClusterConfig { sync.cluster }
    private let node: NodeIdentity
    private let reloadStats = Locked((reloads: UInt64(0), failures: UInt64(0), lastError: String?.none))
    var reloadStatsSnapshot: (reloads: UInt64, failures: UInt64, lastError: String?) { reloadStats.current }
    var publishedState: ForwardingState { published.current }
    private var generation: UInt64 = 1

    public init(options: AgentOptions) throws {
        self.options = options
        var logger = Logger(label: "ferry.agent")
        logger[metadataKey: "node"] = "\(options.nodeName)"
        self.logger = logger
        node = NodeIdentity(name: options.nodeName, nodePortAddresses: options.nodePortAddresses)
        do {
            sync = try ServiceSync(path: options.configPath, node: node, strategy: options.selection,
                                   clusterCIDRs: options.clusterCIDRs, masqueradeAll: options.masqueradeAll,
                                   executor: .concurrent)
        } catch {
            for d in error.diagnostics { logger.error("\(d)") }
            throw AgentError(description: "\(options.configPath): \(error.diagnostics.count) error(s); fix the file and start again (`ferry validate` lists them)")
        }
        for w in sync.document.warnings { logger.warning("\(w)") }
        published = Locked(ForwardingState(services: sync.table, routes: RouteTable(routes: []),
                                           neighbours: NeighbourTable(), interfaces: InterfaceTable([]),
                                           cluster: sync.cluster, node: node, generation: 0))
    }

    static func nodePorts(_ services: [ServiceSpec]) -> [(ServiceProtocol, UInt16)] {
        var out: [(ServiceProtocol, UInt16)] = []
        for s in services where s.isProxied && (s.type == .nodePort || s.type == .loadBalancer) {
            for p in s.ports { if let n = p.nodePort { out.append((p.protocol, n)) } }
        }
        return out
    }

    public func run() throws {
        guard getuid() == 0 else { throw AgentError(description: "ferry agent needs root (AF_PACKET sockets, sysctls, nftables)") }
        logger.info("starting on node \(options.nodeName): \(document.summary)")

        // Kernel state first: everything else is derived from it.
        let monitor: NetlinkMonitor
        do { monitor = try NetlinkMonitor() } catch { throw AgentError(description: "netlink: \(error)") }
        publishKernel(monitor.state)

        // A previous agent that handed over left its conntrack and the namespace's original
        // settings; its namespace changes are still in place, so flows kept flowing through
        // the kernel-side drops while no agent ran (TCP retransmits cover the gap).
        var handover: AgentHandover? = nil
        if let path = options.conntrackStatePath, let data = FileManager.default.contents(atPath: path) {
            handover = try? JSONDecoder().decode(AgentHandover.self, from: data)
            if handover == nil { logger.warning("\(path) is not a handover file; ignored") }
            try? FileManager.default.removeItem(atPath: path)
        }
        let kernel = KernelSetup(snatRange: cluster.snatPortRange, logger: logger)
        if let h = handover { kernel.adopt(originals: h.sysctls.map { ($0.name, $0.value) }) }
        try kernel.apply(nodePorts: Agent.nodePorts(document.services))
        var handingOver = false
        defer {
            if handingOver {
                logger.info("namespace changes kept for the next agent (handover via \(options.conntrackStatePath ?? "?"))")
            } else {
                kernel.undo()
            }
        }

        // The pipeline and its tables, restored from a previous run when asked.
        let conntrack = ConntrackTable(capacity: options.conntrackCapacity)
        if let h = handover {
            let n = conntrack.restore(h.conntrack, now: Timestamp(nanoseconds: MonotonicClock.now()))
            logger.info("restored \(n) of \(h.conntrack.count) conntrack entries from the previous agent")
        }
        let pipeline = Pipeline(config: PipelineConfig(completePartialChecksums: !options.vnetHeader),
                                conntrack: conntrack, affinity: AffinityTable(capacity: 65_536),
                                snat: SNATPortAllocator(range: cluster.snatPortRange))
        let loop = try PacketLoop(options: options, published: published, pipeline: pipeline, logger: logger)
        let loopThread = Thread { loop.run() }
        loopThread.name = "ferry-packets"
        loopThread.stackSize = 8 << 20
        loopThread.start()

        // Health checks (kube-proxy's), metrics, admin API.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let (hzHost, hzPort) = splitHostPort(options.healthzBindAddress, defaultPort: ProxyHealthServer.defaultPort)
        let proxyHealth = ProxyHealthServer(host: hzHost, port: hzPort, logger: logger)
        let serviceHealth = ServiceHealthServer(nodeAddresses: [], proxyHealth: proxyHealth, group: group, logger: logger)
        do { _ = try blocking { try await proxyHealth.start(group: group) } } catch {
            logger.error("healthz not served: \(error)")
        }
        proxyHealth.updated()
        syncHealth(serviceHealth)

        try? FileManager.default.createDirectory(atPath: (options.adminSocket as NSString).deletingLastPathComponent,
                                                 withIntermediateDirectories: true)
        let admin = try AdminServer(path: options.adminSocket) { [self] req in self.answer(req, loop: loop) }
        admin.start()
        var metrics: MetricsServer? = nil
        if let bind = options.metricsBindAddress {
            let (h, p) = splitHostPort(bind, defaultPort: 10249)
            do {
                metrics = try MetricsServer(host: h, port: p) { [self] in self.prometheusText(loop: loop) }
                metrics?.start()
            } catch {
                logger.error("metrics not served on \(bind): \(error)")
            }
        }

        // SIGTERM / SIGINT end the control loop; everything is undone below.
        let stop = try EventFD()
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let sources = [SIGTERM, SIGINT].map { sig -> DispatchSourceSignal in
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { stop.signal() }
            s.resume()
            return s
        }

        let directory = (options.configPath as NSString).deletingLastPathComponent
        let fileName = (options.configPath as NSString).lastPathComponent
        let watcher = try DirectoryWatcher(path: directory.isEmpty ? "." : directory)
        logger.info("watching \(options.configPath) for changes")

        var poller = Poller(capacity: 4)
        let tStop = poller.add(stop.descriptor)
        let tNetlink = poller.add(monitor.descriptor)
        let tFile = poller.add(watcher.descriptor)
        var reloadAt: UInt64? = nil
        while true {
            var timeout: Int32 = 1000
            if let at = reloadAt {
                let now = MonotonicClock.now()
                timeout = at > now ? Int32(min((at - now) / 1_000_000 + 1, 1000)) : 0
            }
            _ = try? poller.wait(timeoutMilliseconds: timeout)
            if poller.isReady(tStop) { break }
            if poller.isReady(tNetlink) {
                do {
                    if try monitor.processEvents() { publishKernel(monitor.state) }
                } catch {
                    logger.error("netlink: \(error)")
                }
            }
            if poller.isReady(tFile) {
                let names = (try? watcher.readEvents()) ?? []
                if names.contains(fileName) {
                    if reloadAt == nil { proxyHealth.queuedUpdate() }
                    reloadAt = MonotonicClock.now() + UInt64(options.reloadDebounceMs) * 1_000_000
                }
            }
            if let at = reloadAt, MonotonicClock.now() >= at {
                reloadAt = nil
                reload(loop: loop, kernel: kernel, health: serviceHealth)
                proxyHealth.updated()
            }
        }

        logger.info("stopping")
        for s in sources { s.cancel() }
        if let path = options.conntrackStatePath {
            // Hand over: save conntrack (remaining lifetimes, so the next process rebases them
            // on its own clock) and the namespace's original settings, and leave the namespace
            // changes in place for the next agent.
            if let records: [ConntrackRecord] = loop.request({ .exportConntrack(reply: $0) }) {
                let h = AgentHandover(conntrack: records,
                                      sysctls: kernel.originals.map { AgentHandover.Sysctl(name: $0.0, value: $0.1) })
                if let data = try? JSONEncoder().encode(h), FileManager.default.createFile(atPath: path, contents: data) {
                    logger.info("saved \(h.conntrack.count) conntrack entries to \(path) for the next agent")
                    handingOver = true
                }
            }
        }
        loop.stop()
        while !loopThread.isFinished { usleep(1000) }
        admin.stop()
        metrics?.stop()
        try? blocking { await serviceHealth.shutdown() }
        try? blocking { await proxyHealth.stop() }
        try? group.syncShutdownGracefully()
        logger.info("stopped")
    }

    // MARK: Publishing

    private func publishKernel(_ k: KernelNetworkState) {
        let forwarding = KernelTables.forwardingInterfaces(k, wanted: options.interfaces)
        published.withLock { current in
            generation += 1
            current = current.with(routes: KernelTables.routes(k), neighbours: KernelTables.neighbours(k),
                                   interfaces: KernelTables.interfaces(k, forwarding: forwarding), generation: generation)
        }
    }

    private func reload(loop: PacketLoop, kernel: KernelSetup, health: ServiceHealthServer) {
        switch sync.reload() {
        case .refused(let error):
            for d in error.diagnostics { logger.error("reload refused: \(d)") }
            let summary = error.diagnostics.first.map { "\($0)" } ?? "invalid file"
            reloadStats.withLock { $0.failures += 1; $0.lastError = summary }
            logger.error("reload refused: \(error.diagnostics.count) error(s); the last good Service table stays in force")
        case .applied(let a):
            for w in a.warnings { logger.warning("\(w)") }
            if a.snatRangeChangeIgnored {
                logger.warning("snatPortRange changed in the file; it takes effect when the agent restarts")
            }
            published.withLock { current in
                generation += 1
                current = current.with(services: a.table, cluster: a.cluster, generation: generation)
            }
            reloadStats.withLock { $0.reloads += 1 }
            let ms = String(format: "%.1f", Double(a.elapsedNanoseconds) / 1e6)
            logger.info("reloaded in \(ms) ms: \(sync.document.summary); \(a.diff.isEmpty ? "no change" : a.diff.description)")
            if !a.removedUDPBackends.isEmpty { loop.submit(.purgeUDP(a.removedUDPBackends)) }
            do {
                try kernel.installTable(nodePorts: Agent.nodePorts(sync.document.services))
            } catch {
                logger.error("nft update failed: \(error)")
            }
            syncHealth(health)
        }
    }

    private func syncHealth(_ health: ServiceHealthServer) {
        let ports = ServiceHealthServer.healthCheckNodePorts(document.services)
        let local = ServiceHealthServer.localReadyEndpointCounts(document.slices, nodeName: options.nodeName)
        do {
            try blocking { try await health.sync(services: ports, localEndpoints: local) }
        } catch {
            logger.error("health checks: \(error)")
        }
    }
}

/// Runs async work from a plain thread and waits for it.
func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let sem = DispatchSemaphore(value: 0)
    let box = Locked<Result<T, any Error>?>(nil)
    Task {
        do { let v = try await body(); box.withLock { $0 = .success(v) } } catch { box.withLock { $0 = .failure(error) } }
        sem.signal()
    }
    sem.wait()
    return try box.current!.get()
}

/// What an exiting agent leaves for the next one (`--conntrack-state`): live flows and the
/// namespace's settings from before the first agent.
struct AgentHandover: Codable {
    struct Sysctl: Codable {
        var name: String
        var value: String
    }
    var conntrack: [ConntrackRecord]
    var sysctls: [Sysctl]
}
