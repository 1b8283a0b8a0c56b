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
        /// The SNAT range in the file changed; it applies after a restart.
        public var snatRangeChangeIgnored: Bool
    }

    public enum Outcome {
        case applied(Applied)
        /// The file is bad: nothing changed, the last good table stays in force.
        case refused(ControlPlaneError)
    }

    public init(path: String, node: NodeIdentity, strategy: BackendSelector.Strategy = .maglev(),
                clusterCIDRs: [IPv4Prefix] = [], masqueradeAll: Bool = false) throws(ControlPlaneError) {
        self.path = path
        self.node = node
        self.strategy = strategy
        self.clusterCIDRs = clusterCIDRs
        self.masqueradeAll = masqueradeAll
        document = try ControlPlaneLoader.load(contentsOf: path)
        var c = document.cluster ?? ClusterConfig()
        if !clusterCIDRs.isEmpty { c.clusterCIDRs = clusterCIDRs }
        if masqueradeAll { c.masqueradeAll = true }
        cluster = c
        table = ServiceTable(services: document.services, slices: document.slices, node: node, cluster: c,
                             strategy: strategy)
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
        var c = doc.cluster ?? ClusterConfig()
        if !clusterCIDRs.isEmpty { c.clusterCIDRs = clusterCIDRs }
        if masqueradeAll { c.masqueradeAll = true }
        let snatChanged = c.snatPortRange != cluster.snatPortRange
        // The SNAT range is wired into the kernel setup (reserved ports, nft drops) and
        // the allocator: it changes with a restart, not a reload.
        c.snatPortRange = cluster.snatPortRange
        let next = ServiceTable(services: doc.services, slices: doc.slices, node: node, cluster: c,
                                strategy: strategy, reusing: table)
        let diff = ControlPlaneDiff(old: document, new: doc)
        var removed = Set<RemovedUDPBackend>()
        for (service, address) in diff.removedEndpoints {
            removed.formUnion(table.removedUDPBackends(service: service, endpoints: [address]))
        }
        document = doc
        cluster = c
        table = next
        return .applied(Applied(table: next, cluster: c, diff: diff,
                                removedUDPBackends: removed,
                                warnings: doc.warnings, elapsedNanoseconds: now() - t0,
                                snatRangeChangeIgnored: snatChanged))
    }
}
