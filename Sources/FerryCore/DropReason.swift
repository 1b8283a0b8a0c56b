// Why a packet was dropped (or rejected). Raw values are stable and never reused:
// dashboards, `ferry stats` and saved traces keep meaning across versions. A retired
// reason keeps its number reserved (Cilium's DROP_* codes follow the same rule).

public enum DropReason: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    // Malformed input (1–19): counted and dropped, never trapped on.
    case truncatedFrame = 1
    case badIPv4Header = 2
    case badIPv4TotalLength = 3
    case badIPv4Checksum = 4
    case badL4Header = 5
    case fragmentToService = 6
    case unsupportedProtocolToService = 7
    case tcpNotOpening = 8

    // Routing (20–39).
    case ttlExceeded = 20
    case noRoute = 21
    case neighbourUnresolved = 22
    case blackholeRoute = 23
    case egressInterfaceUnknown = 24
    case martianSource = 25

    // Service policy (40–59).
    case noEndpoints = 40
    case noLocalEndpoints = 41
    case sourceRangeDenied = 42
    case noServicePort = 43

    // State tables (60–79).
    case conntrackFull = 60
    case snatPortsExhausted = 61
    case conntrackTupleClash = 62

    // I/O (80–99), counted by the agent's packet loop rather than the pipeline.
    case truncatedByRing = 80
    case txRingFull = 81

    /// A short stable name for metrics labels and `ferry stats`.
    public var name: String {
        switch self {
        case .truncatedFrame: "truncated-frame"
        case .badIPv4Header: "bad-ipv4-header"
        case .badIPv4TotalLength: "bad-ipv4-total-length"
        case .badIPv4Checksum: "bad-ipv4-checksum"
        case .badL4Header: "bad-l4-header"
        case .fragmentToService: "fragment-to-service"
        case .unsupportedProtocolToService: "unsupported-protocol-to-service"
        case .tcpNotOpening: "tcp-not-opening"
        case .ttlExceeded: "ttl-exceeded"
        case .noRoute: "no-route"
        case .neighbourUnresolved: "neighbour-unresolved"
        case .blackholeRoute: "blackhole-route"
        case .egressInterfaceUnknown: "egress-interface-unknown"
        case .martianSource: "martian-source"
        case .noEndpoints: "no-endpoints"
        case .noLocalEndpoints: "no-local-endpoints"
        case .sourceRangeDenied: "source-range-denied"
        case .noServicePort: "no-service-port"
        case .conntrackFull: "conntrack-full"
        case .snatPortsExhausted: "snat-ports-exhausted"
        case .conntrackTupleClash: "conntrack-tuple-clash"
        case .truncatedByRing: "truncated-by-ring"
        case .txRingFull: "tx-ring-full"
        }
    }

    /// One line a person can act on.
    public var explanation: String {
        switch self {
        case .truncatedFrame:
            "frame shorter than the headers it announces; a broken sender or a ring snap length too small"
        case .badIPv4Header:
            "IPv4 header with a bad version or header length (IHL); not a packet any stack would accept"
        case .badIPv4TotalLength:
            "IPv4 total length is shorter than the header or longer than the frame"
        case .badIPv4Checksum:
            "IPv4 header checksum does not verify; the packet was corrupted on the way"
        case .badL4Header:
            "TCP data offset or UDP length is inconsistent with the packet; cannot be NATed safely"
        case .fragmentToService:
            "IP fragment addressed to a Service; Ferry does not reassemble, so it cannot NAT fragments (lower the sender's MTU or enable PMTU discovery)"
        case .unsupportedProtocolToService:
            "packet to a Service address with a protocol other than TCP, UDP or ICMP echo"
        case .tcpNotOpening:
            "a TCP segment that cannot open a connection (a stray SYN-ACK, FIN or RST) to a Service, with no conntrack entry; the kernel calls it INVALID and kube-proxy's rules never NAT it"
        case .ttlExceeded:
            "TTL reached zero while routing; a routing loop, or a traceroute probe"
        case .noRoute:
            "no route to the destination in the node's routing table (check `ip route` in the node namespace)"
        case .neighbourUnresolved:
            "the next hop's MAC address is not known yet; the kernel was asked to resolve it (retransmits will get through if it answers ARP)"
        case .blackholeRoute:
            "the route to the destination is a blackhole, unreachable or prohibit route"
        case .egressInterfaceUnknown:
            "the route points at an interface Ferry does not forward on (not in --interfaces, or down)"
        case .martianSource:
            "source address is a local, loopback, multicast or broadcast address that cannot arrive from the wire"
        case .noEndpoints:
            "the Service has no ready endpoints; the client was sent ICMP port unreachable (connection refused), as kube-proxy does"
        case .noLocalEndpoints:
            "externalTrafficPolicy (or internalTrafficPolicy) is Local and this node has no ready endpoint for the Service; kube-proxy drops these too, so clients time out: send traffic only to nodes whose health check answers 200"
        case .sourceRangeDenied:
            "the client address is outside the LoadBalancer's loadBalancerSourceRanges"
        case .noServicePort:
            "packet to a Service IP on a port or protocol the Service does not expose"
        case .conntrackFull:
            "the conntrack table is full and no unassured entry could be evicted; raise --conntrack-max"
        case .snatPortsExhausted:
            "no free source port in the SNAT range for this backend; widen the SNAT port range or shorten timeouts"
        case .conntrackTupleClash:
            "the new flow's reply tuple is already used by another flow and no free source port could resolve it"
        case .truncatedByRing:
            "the packet ring cut the frame (snap length smaller than the packet, e.g. a GSO frame without PACKET_VNET_HDR)"
        case .txRingFull:
            "the egress interface's TX ring was full; the packet was dropped rather than waited for"
        }
    }

    public var description: String { name }
}
