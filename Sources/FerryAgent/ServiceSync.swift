import FerryControlPlane
import FerryCore
import FerryPacket
import Foundation

/// The control-plane half of a reload: read the file, validate it, build the next
/// ServiceTable (reusing the previous one's Maglev tables) and say what changed. It does
/// no I/O beyond reading the file, so tests drive it with a pipeline and no root; the
/// agent publishes what it returns.
public final class ServiceSync {
    public let path: String
    public let node: NodeIdentity
    public let strategy: BackendSelector.Strategy
    /// Runs the Maglev fills of each build (`.concurrent` fans them out over the cores).
    public let executor: TableBuildExecutor
    public private(set) var document: ControlPlaneDocument
    public private(set) var cluster: ClusterConfig
    public private(set) var table: ServiceTable
    /// Flags that win over the file's ClusterConfig (kube-proxy's --cluster-cidr, --masquerade-all).
    let clusterCIDRs: [IPv4Prefix]
    let masqueradeAll: Bool

    public struct Applied {
        public var table: ServiceTable
        public var cluster: ClusterConfig
        public var diff: ControlPlaneDiff
        /// UDP backends that left a frontend: their conntrack entries go.
        public var removedUDPBackends: Set<RemovedUDPBackend>
        public var warnings: [Diagnostic]
        public var elapsedNanoseconds: UInt64
        /// Where `elapsedNanoseconds` went.
        public var phases: ReloadPhases
        /// The SNAT range in the file changed; it applies after a restart.
        public var snatRangeChangeIgnored: Bool
    }

    /// The parts of one reload, in nanoseconds of the `now` clock.
    public struct ReloadPhases: Sendable {
        /// Reading, parsing and validating the file (`ControlPlaneLoader.load`).
        public var loadNanoseconds: UInt64 = 0
        /// Building the next ServiceTable from the previous one.
        public var buildNanoseconds: UInt64 = 0
        /// The document diff and the UDP conntrack purge list.
        public var diffNanoseconds: UInt64 = 0
    }

    public enum Outcome {
        case applied(Applied)
        /// The file is bad: nothing changed, the last good table stays in force.
        case refused(ControlPlaneError)
    }

    public init(path: String, node: NodeIdentity, strategy: BackendSelector.Strategy = .maglev(),
                clusterCIDRs: [IPv4Prefix] = [], masqueradeAll: Bool = false,
                executor: TableBuildExecutor = .serial) throws(ControlPlaneError) {
        self.path = path
        self.node = node
        self.strategy = strategy
        self.executor = executor
        self.clusterCIDRs = clusterCIDRs
        self.masqueradeAll = masqueradeAll
        document = try ControlPlaneLoader.load(contentsOf: path)
        var c = document.cluster ?? ClusterConfig()
        if !clusterCIDRs.isEmpty { c.clusterCIDRs = clusterCIDRs }
        if masqueradeAll { c.masqueradeAll = true }
        cluster = c
        table = ServiceTable(services: document.services, slices: document.slices, node: node, cluster: c,
                             strategy: strategy, executor: executor)
    }

    /// Reads the file again and, if it is valid, builds the next table.
    public func reload(now: () -> UInt64 = { UInt64(DispatchTime.now().uptimeNanoseconds) }) -> Outcome {
        let t0 = now()
        let doc: ControlPlaneDocument
        do {
            doc = try ControlPlaneLoader.load(contentsOf: path)
        } catch {
            return .refused(error)
        }
        let t1 = now()
        var c = doc.cluster ?? ClusterConfig()
        if !clusterCIDRs.isEmpty { c.clusterCIDRs = clusterCIDRs }
        if masqueradeAll { c.masqueradeAll = true }
        let snatChanged = c.snatPortRange != cluster.snatPortRange
        // The SNAT range is wired into the kernel setup (reserved ports, nft drops) and
        // the allocator: it changes with a restart, not a reload.
        c.snatPortRange = cluster.snatPortRange
        let next = ServiceTable(services: doc.services, slices: doc.slices, node: node, cluster: c,
                                strategy: strategy, reusing: table, executor: executor)
        let t2 = now()
        let diff = ControlPlaneDiff(old: document, new: doc)
        var removed = Set<RemovedUDPBackend>()
        for (service, address) in diff.removedEndpoints {
            removed.formUnion(table.removedUDPBackends(service: service, endpoints: [address]))
        }
        document = doc
        cluster = c
        table = next
        let t3 = now()
        return .applied(Applied(table: next, cluster: c, diff: diff,
                                removedUDPBackends: removed,
                                warnings: doc.warnings, elapsedNanoseconds: t3 - t0,
                                phases: ReloadPhases(loadNanoseconds: t1 - t0, buildNanoseconds: t2 - t1,
                                                     diffNanoseconds: t3 - t2),
                                snatRangeChangeIgnored: snatChanged))
    }
}

extension TableBuildExecutor {
    /// Fans the Maglev fills of a build out over the cores with
    /// `DispatchQueue.concurrentPerform`, which returns when every iteration has.
    public static let concurrent = TableBuildExecutor { iterations, body in
        DispatchQueue.concurrentPerform(iterations: iterations, execute: body)
    }
}
