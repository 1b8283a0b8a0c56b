import FerryPacket

// `ferry trace` explains a packet's fate step by step. Every pipeline step reports what
// it decided through a tracer. The pipeline is generic over the tracer and the events
// are autoclosures: with `NoTrace` the compiler specialises the calls away, so the
// events are never built and tracing costs nothing when nobody asks.

public protocol PacketTracer {
    mutating func record(_ event: @autoclosure () -> TraceEvent)
}

/// The tracer the packet loop uses: records nothing, costs nothing.
public struct NoTrace: PacketTracer {
    @inlinable public init() {}
    @inlinable @inline(__always) public mutating func record(_ event: @autoclosure () -> TraceEvent) {}
}

/// Collects every event, for `ferry trace` and for tests.
public struct TraceLog: PacketTracer, Sendable {
    public var events: [TraceEvent] = []
    public init() {}
    public mutating func record(_ event: @autoclosure () -> TraceEvent) { events.append(event()) }
    /// The trace in words, one step per line.
    public var lines: [String] { events.map(\.description) }
}

/// Why a flow is masqueraded (SNATed to a node address), in kube-proxy's terms.
public enum MasqueradeReason: Sendable, Equatable, CustomStringConvertible {
    case masqueradeAll
    case externalClusterPolicy
    case offClusterToClusterIP
    case hairpin
    case sameLink
    public var description: String {
        switch self {
        case .masqueradeAll: "--masquerade-all is set"
        case .externalClusterPolicy: "externalTrafficPolicy is Cluster, so external traffic is masqueraded in case the backend is on another node (kube-proxy's KUBE-EXT chain)"
        case .offClusterToClusterIP: "the source is outside the cluster CIDR (kube-proxy masquerades off-cluster traffic to a ClusterIP)"
        case .hairpin: "hairpin: the pod reaches itself through its Service, so the source must change for the reply to come back through Ferry"
        case .sameLink: "the backend is on the link the packet came from, so it would answer the client directly, bypassing the reverse NAT"
        }
    }
}

/// Which endpoints a frontend used, and why.
public enum BackendSetChoice: Sendable, Equatable, CustomStringConvertible {
    case cluster
    case local
    case clusterForPodTraffic
    public var description: String {
        switch self {
        case .cluster: "all ready endpoints in the cluster"
        case .local: "only this node's endpoints (traffic policy Local)"
        case .clusterForPodTraffic: "all endpoints: traffic from a pod to an external address is not subject to externalTrafficPolicy (kube-proxy's short-circuit)"
        }
    }
}

public enum TraceEvent: Sendable, Equatable, CustomStringConvertible {
    case received(ingress: InterfaceIndex, length: Int, checksumPartial: Bool)
    case notMine(String)
    case parsed(protocol: IPProtocol, source: IPv4Address, sourcePort: UInt16,
                destination: IPv4Address, destinationPort: UInt16)
    case conntrackHit(entry: Int32, reply: Bool)
    case conntrackMiss
    case frontend(service: String, kind: String, address: IPv4Address, port: UInt16)
    case noFrontend
    case backendSet(BackendSetChoice, candidates: Int)
    case backendChosen(address: IPv4Address, port: UInt16, node: String?, by: String)
    case masquerade(source: IPv4Address, port: UInt16, why: MasqueradeReason)
    case sourceKept
    case conntrackCreated(entry: Int32)
    case rewritten(source: IPv4Address, sourcePort: UInt16, destination: IPv4Address, destinationPort: UInt16)
    case icmpErrorTranslated(entry: Int32)
    case routed(via: IPv4Address?, egress: InterfaceIndex, prefix: IPv4Prefix)
    case neighbour(MACAddress)
    case checksumCompleted
    case verdict(Verdict)

    public var description: String {
        switch self {
        case let .received(i, len, partial):
            "received \(len) bytes on \(i)\(partial ? " (L4 checksum partial: pseudo-header only)" : "")"
        case let .notMine(why):
            "left to the kernel: \(why)"
        case let .parsed(p, s, sp, d, dp):
            "\(p) \(s):\(sp) → \(d):\(dp)"
        case let .conntrackHit(e, reply):
            "conntrack entry \(e) found, \(reply ? "reply" : "original") direction"
        case .conntrackMiss:
            "no conntrack entry: a new flow"
        case let .frontend(s, k, a, p):
            "matches \(k) frontend \(a):\(p) of Service \(s)"
        case .noFrontend:
            "not a Service frontend: routed as is"
        case let .backendSet(c, n):
            "backends considered: \(c), \(n) candidate(s)"
        case let .backendChosen(a, p, node, by):
            "backend \(a):\(p)\(node.map { " on \($0)" } ?? "") chosen by \(by)"
        case let .masquerade(s, p, why):
            "source masqueraded to \(s):\(p) because \(why)"
        case .sourceKept:
            "source address preserved (no masquerade)"
        case let .conntrackCreated(e):
            "conntrack entry \(e) created"
        case let .rewritten(s, sp, d, dp):
            "rewritten to \(s):\(sp) → \(d):\(dp)"
        case let .icmpErrorTranslated(e):
            "ICMP error about conntrack entry \(e): outer and quoted headers translated"
        case let .routed(via, egress, prefix):
            "route \(prefix) → \(via.map { "via \($0) " } ?? "on-link ")dev \(egress)"
        case let .neighbour(mac):
            "next hop's MAC is \(mac)"
        case .checksumCompleted:
            "L4 checksum completed in userspace (the ring has no virtio-net header)"
        case let .verdict(v):
            switch v {
            case let .forward(e): "verdict: forward on \(e)"
            case let .reject(e, _, r): "verdict: reject back out of \(e) with ICMP (\(r.name): \(r.explanation))"
            case .pass: "verdict: pass to the kernel"
            case let .drop(r): "verdict: drop (\(r.name): \(r.explanation))"
            }
        }
    }
}
