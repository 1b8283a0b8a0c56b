import FerryPacket

// The dataplane's view of Kubernetes Services and EndpointSlices. The control-plane
// loader (FerryControlPlane) fills these from the Kubernetes schema after validating
// it; the core trusts them (a malformed object never gets this far).

/// `namespace/name` of a Service.
public struct ServiceName: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var namespace: String
    public var name: String
    public init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }
    public var description: String { "\(namespace)/\(name)" }
    public static func < (a: ServiceName, b: ServiceName) -> Bool {
        (a.namespace, a.name) < (b.namespace, b.name)
    }
}

/// Service `spec.type`. ExternalName Services carry no dataplane state.
public enum ServiceType: String, Sendable, CaseIterable {
    case clusterIP = "ClusterIP"
    case nodePort = "NodePort"
    case loadBalancer = "LoadBalancer"
    case externalName = "ExternalName"
}

/// `externalTrafficPolicy` / `internalTrafficPolicy`.
public enum TrafficPolicy: String, Sendable {
    case cluster = "Cluster"
    case local = "Local"
}

/// The L4 protocols a Service port may use in Ferry.
public enum ServiceProtocol: String, Sendable, Hashable, CaseIterable {
    case tcp = "TCP"
    case udp = "UDP"

    @inlinable public var ipProtocol: IPProtocol { self == .tcp ? .tcp : .udp }

    @inlinable public init?(_ p: IPProtocol) {
        switch p {
        case .tcp: self = .tcp
        case .udp: self = .udp
        default: return nil
        }
    }
}

/// `spec.sessionAffinity`; `timeoutSeconds` from `sessionAffinityConfig.clientIP`
/// (Kubernetes' default is 10800).
public enum SessionAffinity: Hashable, Sendable {
    case none
    case clientIP(timeoutSeconds: UInt32)
}

/// A Service port's `targetPort`: a number, or a name resolved per endpoint from the
/// EndpointSlice's ports.
public enum TargetPort: Hashable, Sendable {
    case number(UInt16)
    case name(String)
}

public struct ServicePortSpec: Hashable, Sendable {
    public var name: String?
    public var `protocol`: ServiceProtocol
    public var port: UInt16
    public var targetPort: TargetPort
    public var nodePort: UInt16?

    public init(name: String? = nil, protocol: ServiceProtocol = .tcp, port: UInt16,
                targetPort: TargetPort? = nil, nodePort: UInt16? = nil) {
        self.name = name
        self.protocol = `protocol`
        self.port = port
        self.targetPort = targetPort ?? .number(port)
        self.nodePort = nodePort
    }
}

public struct ServiceSpec: Hashable, Sendable {
    public var name: ServiceName
    public var type: ServiceType
    /// nil for a headless Service (`clusterIP: None`), which Ferry does not proxy.
    public var clusterIP: IPv4Address?
    public var externalIPs: [IPv4Address]
    /// `status.loadBalancer.ingress[].ip` (and `spec.loadBalancerIP` where set).
    public var loadBalancerIPs: [IPv4Address]
    public var ports: [ServicePortSpec]
    public var externalTrafficPolicy: TrafficPolicy
    public var internalTrafficPolicy: TrafficPolicy
    public var healthCheckNodePort: UInt16?
    public var sessionAffinity: SessionAffinity
    public var loadBalancerSourceRanges: [IPv4Prefix]

    public init(name: ServiceName, type: ServiceType = .clusterIP, clusterIP: IPv4Address?,
                externalIPs: [IPv4Address] = [], loadBalancerIPs: [IPv4Address] = [],
                ports: [ServicePortSpec], externalTrafficPolicy: TrafficPolicy = .cluster,
                internalTrafficPolicy: TrafficPolicy = .cluster, healthCheckNodePort: UInt16? = nil,
                sessionAffinity: SessionAffinity = .none, loadBalancerSourceRanges: [IPv4Prefix] = []) {
        self.name = name
        self.type = type
        self.clusterIP = clusterIP
        self.externalIPs = externalIPs
        self.loadBalancerIPs = loadBalancerIPs
        self.ports = ports
        self.externalTrafficPolicy = externalTrafficPolicy
        self.internalTrafficPolicy = internalTrafficPolicy
        self.healthCheckNodePort = healthCheckNodePort
        self.sessionAffinity = sessionAffinity
        self.loadBalancerSourceRanges = loadBalancerSourceRanges
    }

    /// Headless and ExternalName Services are not proxied (kube-proxy skips them too).
    public var isProxied: Bool { clusterIP != nil && type != .externalName }
}

/// One `EndpointSlice.ports[]` entry.
public struct EndpointPortSpec: Hashable, Sendable {
    public var name: String?
    public var `protocol`: ServiceProtocol
    public var port: UInt16
    public init(name: String? = nil, protocol: ServiceProtocol = .tcp, port: UInt16) {
        self.name = name
        self.protocol = `protocol`
        self.port = port
    }
}

/// One `EndpointSlice.endpoints[]` entry, one address (Ferry is IPv4-only).
/// Conditions follow the API: `ready` and `serving` absent mean true, `terminating`
/// absent means false; the loader applies that before building this value.
public struct EndpointSpec: Hashable, Sendable {
    public var address: IPv4Address
    public var nodeName: String?
    public var ready: Bool
    public var serving: Bool
    public var terminating: Bool
    /// `targetRef.name` (usually the pod), for display only.
    public var targetName: String?

    public init(address: IPv4Address, nodeName: String? = nil, ready: Bool = true,
                serving: Bool? = nil, terminating: Bool = false, targetName: String? = nil) {
        self.address = address
        self.nodeName = nodeName
        self.ready = ready
        self.serving = serving ?? ready
        self.terminating = terminating
        self.targetName = targetName
    }
}

public struct EndpointSliceSpec: Hashable, Sendable {
    public var name: String
    /// The `kubernetes.io/service-name` label with the slice's namespace.
    public var service: ServiceName
    public var ports: [EndpointPortSpec]
    public var endpoints: [EndpointSpec]

    public init(name: String, service: ServiceName, ports: [EndpointPortSpec], endpoints: [EndpointSpec]) {
        self.name = name
        self.service = service
        self.ports = ports
        self.endpoints = endpoints
    }
}

/// Cluster-wide settings (the `ferry.dev/v1 ClusterConfig` object, or agent flags).
public struct ClusterConfig: Hashable, Sendable {
    /// Pod CIDRs: traffic from here is "from a pod" (kube-proxy's `--cluster-cidr`).
    public var clusterCIDRs: [IPv4Prefix]
    /// kube-apiserver's `--service-node-port-range`, default 30000-32767.
    public var nodePortRange: ClosedRange<UInt16>
    /// Source ports Ferry uses when it masquerades. Must not overlap the kernel's
    /// ephemeral range (`net.ipv4.ip_local_port_range`) or the NodePort range.
    public var snatPortRange: ClosedRange<UInt16>
    /// Masquerade every Service packet (kube-proxy's `--masquerade-all`).
    public var masqueradeAll: Bool

    public init(clusterCIDRs: [IPv4Prefix] = [], nodePortRange: ClosedRange<UInt16> = 30000...32767,
                snatPortRange: ClosedRange<UInt16> = 20000...29999, masqueradeAll: Bool = false) {
        self.clusterCIDRs = clusterCIDRs
        self.nodePortRange = nodePortRange
        self.snatPortRange = snatPortRange
        self.masqueradeAll = masqueradeAll
    }

    @inlinable public func isInCluster(_ a: IPv4Address) -> Bool {
        for p in clusterCIDRs where p.contains(a) { return true }
        return false
    }
}

/// What this node is: its name (to pick local endpoints) and the addresses on which
/// NodePorts answer (kube-proxy's `--nodeport-addresses`; empty means every local address).
public struct NodeIdentity: Hashable, Sendable {
    public var name: String
    public var nodePortAddresses: [IPv4Prefix]
    public init(name: String, nodePortAddresses: [IPv4Prefix] = []) {
        self.name = name
        self.nodePortAddresses = nodePortAddresses
    }
}
