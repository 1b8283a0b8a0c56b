import FerryPacket

/// Everything the pipeline reads, as one immutable snapshot. The control plane builds a
/// new one off the packet path when the Service file, a route, a neighbour or a link
/// changes, and publishes it; the packet loop picks the newest up between batches
/// (STYLE.md rule 9), so a batch never sees half a change.
public final class ForwardingState: Sendable {
    public let services: ServiceTable
    public let routes: RouteTable
    public let neighbours: NeighbourTable
    public let interfaces: InterfaceTable
    public let cluster: ClusterConfig
    public let node: NodeIdentity
    /// Increases with every publication; shown by `ferry stats`.
    public let generation: UInt64

    public init(services: ServiceTable, routes: RouteTable, neighbours: NeighbourTable,
                interfaces: InterfaceTable, cluster: ClusterConfig, node: NodeIdentity,
                generation: UInt64 = 0) {
        self.services = services
        self.routes = routes
        self.neighbours = neighbours
        self.interfaces = interfaces
        self.cluster = cluster
        self.node = node
        self.generation = generation
    }

    /// A copy with other kernel tables and the same Services.
    public func with(routes: RouteTable? = nil, neighbours: NeighbourTable? = nil,
                     interfaces: InterfaceTable? = nil, services: ServiceTable? = nil,
                     cluster: ClusterConfig? = nil, generation: UInt64) -> ForwardingState {
        ForwardingState(services: services ?? self.services, routes: routes ?? self.routes,
                        neighbours: neighbours ?? self.neighbours, interfaces: interfaces ?? self.interfaces,
                        cluster: cluster ?? self.cluster, node: node, generation: generation)
    }

    /// NodePorts answer on the node's own addresses, restricted by `--nodeport-addresses`
    /// when given (kube-proxy's semantics).
    @inlinable public func isNodePortAddress(_ a: IPv4Address) -> Bool {
        guard interfaces.isLocal(a) else { return false }
        if node.nodePortAddresses.isEmpty { return true }
        for p in node.nodePortAddresses where p.contains(a) { return true }
        return false
    }
}
