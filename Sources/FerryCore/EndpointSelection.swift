import FerryPacket

/// One endpoint of one Service port: where a flow is DNATed to, and the conditions the
/// EndpointSlice reported for it.
public struct Backend: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv4Address
    /// The EndpointSlice port number for this Service port (not the Service's targetPort:
    /// the slice already resolved named target ports per pod).
    public var port: UInt16
    public var nodeName: String?
    /// `targetRef.name`, usually the pod; display only.
    public var targetName: String?
    /// `nodeName` is this node's name.
    public var isLocal: Bool
    public var ready: Bool
    public var serving: Bool
    public var terminating: Bool

    public init(address: IPv4Address, port: UInt16, nodeName: String? = nil, targetName: String? = nil,
                isLocal: Bool = false, ready: Bool = true, serving: Bool = true, terminating: Bool = false) {
        self.address = address
        self.port = port
        self.nodeName = nodeName
        self.targetName = targetName
        self.isLocal = isLocal
        self.ready = ready
        self.serving = serving
        self.terminating = terminating
    }

    /// `address << 16 | port`: the identity used for de-duplication, ordering and Maglev.
    @inline(__always) public var key: UInt64 { MaglevTable.key(address: address, port: port) }

    public var description: String {
        var s = "\(address):\(port)"
        var flags: [String] = []
        if ready { flags.append("ready") }
        if serving { flags.append("serving") }
        if terminating { flags.append("terminating") }
        if isLocal { flags.append("local") }
        s += " [\(flags.joined(separator: ","))]"
        if let nodeName { s += " on \(nodeName)" }
        return s
    }
}

/// Which endpoint set a flow is balanced over.
public enum BackendSetKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Usable endpoints anywhere in the cluster (traffic policy Cluster).
    case cluster = 0
    /// Usable endpoints on this node (traffic policy Local).
    case local = 1

    public var description: String { self == .cluster ? "cluster" : "local" }
}

/// kube-proxy's rules for turning EndpointSlices into the endpoints of one Service port,
/// and for choosing which of them receive traffic. Pure functions; `ServiceTable` calls
/// them once per Service port when it is built.
public enum EndpointSelection {
    /// The endpoints serving `port`, from every slice of its Service, sorted by
    /// (address, port), with conditions as reported.
    ///
    /// Port matching follows kube-proxy's `EndpointSliceCache.endpointInfoByServicePort`
    /// (pkg/proxy/endpointslicecache.go): a slice port serves a Service port when it has
    /// the same *name* (an absent name and "" are the same: the EndpointSlice controller
    /// writes "" for an unnamed port) and the same protocol. The Service's `targetPort` is
    /// not consulted: the controller has already resolved it, per pod, into the slice
    /// port's number. A slice port numbered 0 is ignored, as kube-proxy does.
    ///
    /// The same address:port in several slices (during a slice migration, for instance)
    /// is kept once, following `addEndpoints`: the first occurrence wins, except that a
    /// local occurrence replaces a remote one. Slices are visited in name order so the
    /// result does not depend on the order they arrived in.
    public static func endpoints(for port: ServicePortSpec, in slices: [EndpointSliceSpec], nodeName: String) -> [Backend] {
        let wantedName = port.name ?? ""
        var result: [Backend] = []
        var positionByKey: [UInt64: Int] = [:]
        let ordered = slices.count > 1 ? slices.sorted { $0.name < $1.name } : slices
        for slice in ordered {
            for slicePort in slice.ports
            where (slicePort.name ?? "") == wantedName && slicePort.protocol == port.protocol && slicePort.port != 0 {
                for ep in slice.endpoints {
                    let isLocal = !nodeName.isEmpty && ep.nodeName == nodeName
                    let backend = Backend(address: ep.address, port: slicePort.port, nodeName: ep.nodeName,
                                          targetName: ep.targetName, isLocal: isLocal, ready: ep.ready,
                                          serving: ep.serving, terminating: ep.terminating)
                    if let at = positionByKey[backend.key] {
                        if isLocal { result[at] = backend }
                    } else {
                        positionByKey[backend.key] = result.count
                        result.append(backend)
                    }
                }
            }
        }
        result.sort { $0.key < $1.key }
        return result
    }

    /// The usable endpoints for traffic policy Cluster and for traffic policy Local,
    /// following kube-proxy's `CategorizeEndpoints` (pkg/proxy/topology.go), without
    /// topology hints:
    /// - cluster: the ready endpoints; if none is ready anywhere, the endpoints that are
    ///   serving and terminating (KEP-1669: a rolling update whose last pods are draining
    ///   keeps answering instead of black-holing new connections);
    /// - local: the same rule applied to this node's endpoints alone, so a node whose
    ///   local pods are all terminating uses them even while other nodes have ready ones.
    ///
    /// Both keep the input order (sorted by address, port, from `endpoints(for:in:nodeName:)`).
    public static func categorize(_ endpoints: [Backend]) -> (cluster: [Backend], local: [Backend]) {
        (usable(endpoints), usable(endpoints.filter(\.isLocal)))
    }

    /// Ready endpoints, else serving-and-terminating ones.
    static func usable(_ endpoints: [Backend]) -> [Backend] {
        let ready = endpoints.filter(\.ready)
        if !ready.isEmpty { return ready }
        return endpoints.filter { $0.serving && $0.terminating }
    }
}
