import FerryPacket

/// How a packet reached a Service. Raw values are stable (they appear in traces and
/// `ferry service list`).
public enum FrontendKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// `spec.clusterIP:port`.
    case clusterIP = 0
    /// `spec.externalIPs[i]:port`.
    case externalIP = 1
    /// `status.loadBalancer.ingress[i].ip:port`, type LoadBalancer only.
    case loadBalancer = 2
    /// `nodePort` on any of the node's NodePort addresses.
    case nodePort = 3

    public var description: String {
        switch self {
        case .clusterIP: "ClusterIP"
        case .externalIP: "ExternalIP"
        case .loadBalancer: "LoadBalancer"
        case .nodePort: "NodePort"
        }
    }
}

/// One address:port:protocol on which a Service port answers. A Service port has one
/// frontend per address it is reachable on; all of them share `servicePortIndex`, and so
/// the same backends and the same session-affinity entries.
public struct Frontend: Hashable, Sendable, CustomStringConvertible {
    /// Position in `ServiceTable.frontends`; valid within that table only.
    public let id: Int
    public let kind: FrontendKind
    public let service: ServiceName
    public let portName: String?
    public let `protocol`: ServiceProtocol
    /// The destination address; `.any` for a NodePort (the pipeline decides which local
    /// addresses accept NodePorts).
    public let address: IPv4Address
    /// The destination port: the Service port, or the node port for `.nodePort`.
    public let port: UInt16
    /// `internalTrafficPolicy` for `.clusterIP`, `externalTrafficPolicy` for the others
    /// (kube-proxy applies them the same way).
    public let trafficPolicy: TrafficPolicy
    public let affinity: SessionAffinity
    /// `loadBalancerSourceRanges`, on `.loadBalancer` frontends only (empty: any source).
    public let sourceRanges: [IPv4Prefix]
    public let healthCheckNodePort: UInt16?
    /// Identifies the Service port (service, port name, protocol). Stable across
    /// `ServiceTable` generations built with `reusing:`, and never handed to another
    /// Service port, so affinity entries keyed by it stay meaningful after a reload.
    public let servicePortIndex: Int

    /// The set a new flow is balanced over when it does not come from inside the cluster
    /// (in-cluster sources of an `externalTrafficPolicy: Local` Service use `.cluster`,
    /// as kube-proxy short-circuits them; that decision is the pipeline's).
    public var backendSet: BackendSetKind { trafficPolicy == .local ? .local : .cluster }

    /// Whether `source` may use this frontend (`loadBalancerSourceRanges`).
    @inline(__always)
    public func admits(source: IPv4Address) -> Bool {
        if sourceRanges.isEmpty { return true }
        for range in sourceRanges where range.contains(source) { return true }
        return false
    }

    public var description: String {
        let where_ = kind == .nodePort ? "*:\(port)" : "\(address):\(port)"
        let name = portName.map { ":\($0)" } ?? ""
        return "\(where_)/\(`protocol`.rawValue) \(kind) → \(service)\(name)"
    }
}

/// A frontend's lookup key packed into one integer: `address << 24 | port << 8 | protocol`.
/// Hashing one `UInt64` keeps `Dictionary` lookups allocation-free and cheap.
struct FrontendKey: Hashable {
    let bits: UInt64

    @inline(__always)
    init(address: IPv4Address, protocol: ServiceProtocol, port: UInt16) {
        bits = UInt64(address.value) << 24 | UInt64(port) << 8 | UInt64(`protocol`.ipProtocol.rawValue)
    }

    @inline(__always)
    func hash(into hasher: inout Hasher) { hasher.combine(bits) }
}
