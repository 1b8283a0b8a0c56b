import FerryPacket
import Testing

@testable import FerryCore

// node-1 of a three-node cluster, as the agent would see it after reading netlink and the
// Service files: the golden pipeline tests (Pipeline*Tests.swift) send frames into it.
//
//                       router 172.18.0.1 (external clients 203.0.113.0/24, 198.51.100.0/24)
//                              │
//   ───────────── 172.18.0.0/24 underlay ─────────────────────────────
//        │ eth0 .11                 │ .12                   │ .13
//     node-1 (this one)          node-2                  node-3
//     10.244.1.0/24              10.244.2.0/24           10.244.3.0/24
//      ├─ vp-a ── pod a 10.244.1.10
//      └─ vp-b ── pod b 10.244.1.11
//
// Both pod veths hold 10.244.1.1/32, the pods' gateway (Calico's and Cilium's layout), and
// the node has /32 routes to its pods, a blackhole for the rest of its pod CIDR (Calico's
// `blackhole 10.244.1.0/24 proto bird`), routes to the other nodes' pod CIDRs via their
// underlay addresses, and a default route to the router.

// Private: other test files keep helpers of these names private too.
private func ip(_ s: String) -> IPv4Address { IPv4Address(s)! }
private func prefix(_ s: String) -> IPv4Prefix { IPv4Prefix(s)! }
private func mac(_ s: String) -> MACAddress { MACAddress(s)! }

/// Interfaces, addresses and MACs of node-1 and its neighbours.
enum Node1 {
    static let lo = InterfaceIndex(1)
    static let eth0 = InterfaceIndex(2)
    static let vpA = InterfaceIndex(5)
    static let vpB = InterfaceIndex(6)

    static let eth0MAC = mac("02:00:00:00:01:00")
    static let vpAMAC = mac("02:00:00:00:01:a1")
    static let vpBMAC = mac("02:00:00:00:01:b1")

    /// node-1's underlay address: the masquerade source towards other nodes and the router.
    static let address = ip("172.18.0.11")
    /// The pods' gateway, on both veths: the masquerade source towards a pod on this node.
    static let podGateway = ip("10.244.1.1")

    static let podA = ip("10.244.1.10")
    static let podB = ip("10.244.1.11")
    static let podAMAC = mac("0a:58:0a:f4:01:0a")
    static let podBMAC = mac("0a:58:0a:f4:01:0b")

    static let node2 = ip("172.18.0.12")
    static let node3 = ip("172.18.0.13")
    static let router = ip("172.18.0.1")
    static let node2MAC = mac("02:00:00:00:02:00")
    static let node3MAC = mac("02:00:00:00:03:00")
    static let routerMAC = mac("02:00:00:00:00:01")
    /// On the underlay but never answered ARP (a node that is joining).
    static let silentNeighbour = ip("172.18.0.14")

    /// A client on the internet, behind the router.
    static let client = ip("203.0.113.7")
    /// A client inside the LoadBalancer's loadBalancerSourceRanges.
    static let allowedClient = ip("198.51.100.9")

    static let clusterCIDR = prefix("10.244.0.0/16")
    static let snatRange: ClosedRange<UInt16> = 20000...29999
}

/// The Services of the fixture: their addresses, ports and (single) backends.
enum Svc {
    /// ClusterIP, TCP, one endpoint on node-2.
    static let web = ip("10.96.0.10"), webBackend = ip("10.244.2.10")
    /// A second ClusterIP Service selecting the same pod as `web` (two Services over one
    /// Deployment): its flows can clash with `web`'s reply tuples.
    static let webCanary = ip("10.96.0.12")
    /// ClusterIP, TCP 80 → 8080 and UDP 8125, one endpoint on this node (pod b).
    static let localWeb = ip("10.96.0.11")
    /// ClusterIP, UDP 53, one endpoint on node-3.
    static let dns = ip("10.96.0.53"), dnsBackend = ip("10.244.3.53")
    /// NodePort, externalTrafficPolicy Cluster: TCP 30080 and UDP 30514, endpoint on node-2.
    static let npCluster = ip("10.96.1.10"), npClusterBackend = ip("10.244.2.20")
    static let npClusterTCP: UInt16 = 30080, npClusterUDP: UInt16 = 30514
    /// NodePort Local 30081 with one endpoint here (pod a) and one on node-2.
    static let npLocal = ip("10.96.1.11"), npLocalPort: UInt16 = 30081
    /// NodePort Local 30082 whose only endpoint is on node-2.
    static let npElsewhere = ip("10.96.1.12"), npElsewherePort: UInt16 = 30082
    /// LoadBalancer Local 192.0.2.10:443, endpoints pod a (here) and 10.244.3.30 (node-3).
    static let lbLocalVIP = ip("192.0.2.10"), lbLocalRemoteBackend = ip("10.244.3.30")
    /// LoadBalancer Cluster 192.0.2.20:443 open to 198.51.100.0/24 only; endpoint on node-2.
    static let lbRangesVIP = ip("192.0.2.20"), lbRangesBackend = ip("10.244.2.40")
    /// externalIPs 192.0.2.100:80, Cluster policy; endpoint on node-3.
    static let externalIP = ip("192.0.2.100"), externalBackend = ip("10.244.3.40")
    /// ClusterIP with no endpoints at all.
    static let empty = ip("10.96.3.10")
    /// ClusterIP with sessionAffinity ClientIP (60 s) over four endpoints.
    static let sticky = ip("10.96.4.10")
    static let stickyBackends = ["10.244.2.50", "10.244.2.51", "10.244.3.50", "10.244.3.51"].map(ip)
    static let stickyTimeout: UInt32 = 60
    /// ClusterIP whose only endpoint is pod a itself (hairpin).
    static let selfService = ip("10.96.5.10")
}

enum NodeFixture {
    static let node = NodeIdentity(name: "node-1")
    static let cluster = ClusterConfig(clusterCIDRs: [Node1.clusterCIDR], snatPortRange: Node1.snatRange)

    static let interfaces = InterfaceTable([
        InterfaceInfo(index: Node1.lo, name: "lo", mac: .zero, mtu: 65536,
                      addresses: [InterfaceAddress(ip("127.0.0.1"), prefixLength: 8)], isForwarding: false),
        InterfaceInfo(index: Node1.eth0, name: "eth0", mac: Node1.eth0MAC,
                      addresses: [InterfaceAddress(Node1.address, prefixLength: 24)]),
        InterfaceInfo(index: Node1.vpA, name: "vp-a", mac: Node1.vpAMAC, addresses: [InterfaceAddress(Node1.podGateway)]),
        InterfaceInfo(index: Node1.vpB, name: "vp-b", mac: Node1.vpBMAC, addresses: [InterfaceAddress(Node1.podGateway)]),
    ])

    /// `ip route show table all` on node-1, IPv4, reduced to what forwarding needs.
    static let routes: [Route] = [
        Route(destination: prefix("172.18.0.0/24"), interface: Node1.eth0, preferredSource: Node1.address),
        Route(destination: prefix("10.244.2.0/24"), gateway: Node1.node2, interface: Node1.eth0),
        Route(destination: prefix("10.244.3.0/24"), gateway: Node1.node3, interface: Node1.eth0),
        Route(destination: prefix("10.244.1.10/32"), interface: Node1.vpA),
        Route(destination: prefix("10.244.1.11/32"), interface: Node1.vpB),
        Route(destination: prefix("10.244.1.0/24"), interface: Node1.lo, kind: .blackhole),
        Route(destination: prefix("0.0.0.0/0"), gateway: Node1.router, interface: Node1.eth0),
        Route(destination: prefix("172.18.0.11/32"), interface: Node1.eth0, kind: .local),
        Route(destination: prefix("10.244.1.1/32"), interface: Node1.vpA, kind: .local),
        Route(destination: prefix("127.0.0.0/8"), interface: Node1.lo, kind: .local),
    ]

    static let neighbours = NeighbourTable([
        (Node1.eth0, Node1.node2, Node1.node2MAC),
        (Node1.eth0, Node1.node3, Node1.node3MAC),
        (Node1.eth0, Node1.router, Node1.routerMAC),
        (Node1.vpA, Node1.podA, Node1.podAMAC),
        (Node1.vpB, Node1.podB, Node1.podBMAC),
    ])

    static func service(_ name: String, namespace: String = "default", type: ServiceType = .clusterIP,
                        clusterIP: IPv4Address, externalIPs: [IPv4Address] = [], loadBalancerIPs: [IPv4Address] = [],
                        ports: [ServicePortSpec], externalTrafficPolicy: TrafficPolicy = .cluster,
                        affinity: SessionAffinity = .none, sourceRanges: [IPv4Prefix] = [],
                        endpoints: [(String, String)], endpointPorts: [EndpointPortSpec]) -> (ServiceSpec, EndpointSliceSpec) {
        let n = ServiceName(namespace: namespace, name: name)
        let spec = ServiceSpec(name: n, type: type, clusterIP: clusterIP, externalIPs: externalIPs,
                               loadBalancerIPs: loadBalancerIPs, ports: ports,
                               externalTrafficPolicy: externalTrafficPolicy,
                               healthCheckNodePort: externalTrafficPolicy == .local ? 32000 : nil,
                               sessionAffinity: affinity, loadBalancerSourceRanges: sourceRanges)
        let slice = EndpointSliceSpec(name: "\(name)-abcde", service: n, ports: endpointPorts,
                                      endpoints: endpoints.map { EndpointSpec(address: ip($0.0), nodeName: $0.1) })
        return (spec, slice)
    }

    static let tcp8080 = [EndpointPortSpec(protocol: .tcp, port: 8080)]

    static let servicesAndSlices: [(ServiceSpec, EndpointSliceSpec)] = [
        service("web", clusterIP: Svc.web, ports: [ServicePortSpec(port: 80, targetPort: .number(8080))],
                endpoints: [("10.244.2.10", "node-2")], endpointPorts: tcp8080),
        service("web-canary", clusterIP: Svc.webCanary, ports: [ServicePortSpec(port: 80, targetPort: .number(8080))],
                endpoints: [("10.244.2.10", "node-2")], endpointPorts: tcp8080),
        service("local-web", clusterIP: Svc.localWeb,
                ports: [ServicePortSpec(name: "http", port: 80, targetPort: .number(8080)),
                        ServicePortSpec(name: "statsd", protocol: .udp, port: 8125)],
                endpoints: [("10.244.1.11", "node-1")],
                endpointPorts: [EndpointPortSpec(name: "http", port: 8080),
                                EndpointPortSpec(name: "statsd", protocol: .udp, port: 8125)]),
        service("kube-dns", namespace: "kube-system", clusterIP: Svc.dns,
                ports: [ServicePortSpec(name: "dns", protocol: .udp, port: 53)],
                endpoints: [("10.244.3.53", "node-3")], endpointPorts: [EndpointPortSpec(name: "dns", protocol: .udp, port: 53)]),
        service("np-cluster", type: .nodePort, clusterIP: Svc.npCluster,
                ports: [ServicePortSpec(name: "http", port: 80, targetPort: .number(8080), nodePort: Svc.npClusterTCP),
                        ServicePortSpec(name: "syslog", protocol: .udp, port: 514, targetPort: .number(5514),
                                        nodePort: Svc.npClusterUDP)],
                endpoints: [("10.244.2.20", "node-2")],
                endpointPorts: [EndpointPortSpec(name: "http", port: 8080),
                                EndpointPortSpec(name: "syslog", protocol: .udp, port: 5514)]),
        service("np-local", type: .nodePort, clusterIP: Svc.npLocal,
                ports: [ServicePortSpec(port: 80, targetPort: .number(8080), nodePort: Svc.npLocalPort)],
                externalTrafficPolicy: .local,
                endpoints: [("10.244.1.10", "node-1"), ("10.244.2.21", "node-2")], endpointPorts: tcp8080),
        service("np-elsewhere", type: .nodePort, clusterIP: Svc.npElsewhere,
                ports: [ServicePortSpec(port: 80, targetPort: .number(8080), nodePort: Svc.npElsewherePort)],
                externalTrafficPolicy: .local,
                endpoints: [("10.244.2.22", "node-2")], endpointPorts: tcp8080),
        service("lb-local", type: .loadBalancer, clusterIP: ip("10.96.2.10"), loadBalancerIPs: [Svc.lbLocalVIP],
                ports: [ServicePortSpec(port: 443, targetPort: .number(8443), nodePort: 31443)],
                externalTrafficPolicy: .local,
                endpoints: [("10.244.1.10", "node-1"), ("10.244.3.30", "node-3")],
                endpointPorts: [EndpointPortSpec(port: 8443)]),
        service("lb-ranges", type: .loadBalancer, clusterIP: ip("10.96.2.20"), loadBalancerIPs: [Svc.lbRangesVIP],
                ports: [ServicePortSpec(port: 443, targetPort: .number(8443), nodePort: 31444)],
                sourceRanges: [prefix("198.51.100.0/24")],
                endpoints: [("10.244.2.40", "node-2")], endpointPorts: [EndpointPortSpec(port: 8443)]),
        service("ext", clusterIP: ip("10.96.2.30"), externalIPs: [Svc.externalIP],
                ports: [ServicePortSpec(port: 80, targetPort: .number(8080))],
                endpoints: [("10.244.3.40", "node-3")], endpointPorts: tcp8080),
        service("empty", clusterIP: Svc.empty, ports: [ServicePortSpec(port: 80, targetPort: .number(8080))],
                endpoints: [], endpointPorts: tcp8080),
        service("sticky", clusterIP: Svc.sticky, ports: [ServicePortSpec(port: 80, targetPort: .number(8080))],
                affinity: .clientIP(timeoutSeconds: Svc.stickyTimeout),
                endpoints: [("10.244.2.50", "node-2"), ("10.244.2.51", "node-2"),
                            ("10.244.3.50", "node-3"), ("10.244.3.51", "node-3")],
                endpointPorts: tcp8080),
        service("self", clusterIP: Svc.selfService, ports: [ServicePortSpec(port: 80, targetPort: .number(8080))],
                endpoints: [("10.244.1.10", "node-1")], endpointPorts: tcp8080),
    ]

    /// The published snapshot every test starts from (immutable, so shared).
    static let state: ForwardingState = ForwardingState(
        services: ServiceTable(services: servicesAndSlices.map(\.0), slices: servicesAndSlices.map(\.1),
                               node: node, cluster: cluster),
        routes: RouteTable(routes: routes), neighbours: neighbours, interfaces: interfaces,
        cluster: cluster, node: node, generation: 1)
}

/// One frame's trip through the pipeline.
struct Sent {
    var verdict: Verdict
    /// The frame as the agent would transmit it: `length` bytes for a forward, the ICMP
    /// error for a reject, the buffer as left otherwise.
    var bytes: [UInt8]
    var trace: TraceLog

    var lines: [String] { trace.lines }

    /// The masquerade source port the pipeline picked, from the trace.
    var masqueradePort: UInt16? {
        for case let .masquerade(_, port, _) in trace.events { return port }
        return nil
    }

    /// The backend the pipeline picked and how, from the trace.
    var backend: (address: IPv4Address, port: UInt16, by: String)? {
        for case let .backendChosen(a, p, _, by) in trace.events { return (a, p, by) }
        return nil
    }

    /// The tuple the packet was rewritten to, from the trace.
    var rewrittenTo: FlowKey? {
        for case let .rewritten(s, sp, d, dp) in trace.events {
            return FlowKey(protocol: .tcp, source: s, sourcePort: sp, destination: d, destinationPort: dp)
        }
        return nil
    }
}

/// node-1's dataplane: the shared snapshot, one worker's pipeline, and a stepped clock.
struct Node {
    var state: ForwardingState
    var pipeline: Pipeline
    /// The fake clock: tests step it, the pipeline never reads a real one.
    var now = Timestamp.seconds(1_000)

    init(config: PipelineConfig = PipelineConfig(), conntrackCapacity: Int = 4096,
         snatRange: ClosedRange<UInt16> = Node1.snatRange, state: ForwardingState = NodeFixture.state) {
        self.state = state
        pipeline = Pipeline(config: config,
                            conntrack: ConntrackTable(capacity: conntrackCapacity, hashSeed: 0x6E6F_6465_31),
                            affinity: AffinityTable(capacity: 1024),
                            snat: SNATPortAllocator(range: snatRange, seed: 0x736E_6174))
    }

    mutating func advance(seconds: UInt64) { now = now + Seconds(seconds) }
    mutating func advance(nanoseconds: UInt64) { now = now + Seconds(nanoseconds: nanoseconds) }

    /// Runs one frame through the pipeline in a ring-slot-sized buffer, with a trace.
    mutating func send(_ frame: [UInt8], on ingress: InterfaceIndex, partial: Bool = false) -> Sent {
        var slot = [UInt8](repeating: 0, count: max(2048, frame.count))
        slot.replaceSubrange(0..<frame.count, with: frame)
        var trace = TraceLog()
        let info = FrameInfo(ingress: ingress, l4ChecksumPartial: partial)
        let (pipelineState, now) = (state, self.now)
        let verdict = slot.withUnsafeMutableBytes { buffer in
            pipeline.process(buffer, length: frame.count, info: info, now: now, state: pipelineState, tracer: &trace)
        }
        let out: [UInt8]
        switch verdict {
        case .reject(_, let length, _): out = Array(slot[0..<length])
        default: out = Array(slot[0..<frame.count])
        }
        return Sent(verdict: verdict, bytes: out, trace: trace)
    }
}

// MARK: Frames

/// The two MACs of a frame on one link.
struct Link: Sendable {
    var source: MACAddress
    var destination: MACAddress
    var ethernet: EthernetFields { EthernetFields(destination: destination, source: source) }

    static let podAToNode = Link(source: Node1.podAMAC, destination: Node1.vpAMAC)
    static let nodeToPodA = Link(source: Node1.vpAMAC, destination: Node1.podAMAC)
    static let podBToNode = Link(source: Node1.podBMAC, destination: Node1.vpBMAC)
    static let nodeToPodB = Link(source: Node1.vpBMAC, destination: Node1.podBMAC)
    static let routerToNode = Link(source: Node1.routerMAC, destination: Node1.eth0MAC)
    static let nodeToRouter = Link(source: Node1.eth0MAC, destination: Node1.routerMAC)
    static let node2ToNode = Link(source: Node1.node2MAC, destination: Node1.eth0MAC)
    static let nodeToNode2 = Link(source: Node1.eth0MAC, destination: Node1.node2MAC)
    static let node3ToNode = Link(source: Node1.node3MAC, destination: Node1.eth0MAC)
    static let nodeToNode3 = Link(source: Node1.eth0MAC, destination: Node1.node3MAC)
}

/// A TCP segment in an Ethernet frame, every checksum computed by the builder.
func tcpFrame(_ link: Link, _ source: IPv4Address, _ sourcePort: UInt16, _ destination: IPv4Address,
              _ destinationPort: UInt16, flags: TCPFlags = .syn, seq: UInt32 = 0x1000_0000, ack: UInt32 = 0,
              options: [UInt8] = [], payload: [UInt8] = [], ttl: UInt8 = 64, id: UInt16 = 0x2a2a,
              checksum: TransportChecksum = .full) -> [UInt8] {
    PacketBuilder.frame(
        link.ethernet,
        IPv4Fields(sourceAddress: source, destinationAddress: destination, protocol: .tcp, timeToLive: ttl,
                   identification: id),
        .tcp(TCPFields(sourcePort: sourcePort, destinationPort: destinationPort, sequenceNumber: seq,
                       acknowledgmentNumber: ack, flags: flags, window: 64240, options: options,
                       payload: payload)),
        checksum: checksum)
}

/// A UDP datagram in an Ethernet frame.
func udpFrame(_ link: Link, _ source: IPv4Address, _ sourcePort: UInt16, _ destination: IPv4Address,
              _ destinationPort: UInt16, payload: [UInt8] = Array("ferry query".utf8), ttl: UInt8 = 64,
              id: UInt16 = 0x5151, checksum: TransportChecksum = .full) -> [UInt8] {
    PacketBuilder.frame(
        link.ethernet,
        IPv4Fields(sourceAddress: source, destinationAddress: destination, protocol: .udp, timeToLive: ttl,
                   identification: id, dontFragment: false),
        .udp(UDPFields(sourcePort: sourcePort, destinationPort: destinationPort, payload: payload)),
        checksum: checksum)
}

/// The IPv4 datagram inside a frame (what an ICMP error quotes from).
func datagram(of frame: [UInt8]) -> [UInt8] { Array(frame[EthernetView.headerLength...]) }

/// An ICMP error frame as `ICMPErrorWriter` lays it out (TOS 0xC0, DF clear, TTL 64),
/// quoting `quote` (an IP header and the first 8 octets after it).
func icmpErrorFrame(_ link: Link, from source: IPv4Address, to destination: IPv4Address, type: ICMPType,
                    code: UInt8, restOfHeader: UInt32 = 0, quote: [UInt8], ttl: UInt8 = 64,
                    id: UInt16, typeOfService: UInt8 = 0xC0) -> [UInt8] {
    PacketBuilder.frame(
        link.ethernet,
        IPv4Fields(sourceAddress: source, destinationAddress: destination, protocol: .icmp, timeToLive: ttl,
                   identification: id, dontFragment: false, typeOfService: typeOfService),
        .icmp(ICMPFields(type: type, code: code, restOfHeader: restOfHeader, payload: quote)))
}

// MARK: Golden comparison

/// Names the field at `offset` of an Ethernet/IPv4 (IHL 5) frame, for failure messages.
private func fieldName(at offset: Int, protocol proto: UInt8) -> String {
    switch offset {
    case 0..<6: return "Ethernet destination"
    case 6..<12: return "Ethernet source"
    case 12..<14: return "EtherType"
    default: break
    }
    let ipFields: [(Range<Int>, String)] = [
        (0..<1, "IP version/IHL"), (1..<2, "IP TOS"), (2..<4, "IP total length"), (4..<6, "IP identification"),
        (6..<8, "IP flags/fragment offset"), (8..<9, "IP TTL"), (9..<10, "IP protocol"),
        (10..<12, "IP header checksum"), (12..<16, "IP source"), (16..<20, "IP destination"),
    ]
    let i = offset - 14
    for (r, n) in ipFields where r.contains(i) { return n }
    let l4 = i - 20
    let l4Fields: [(Range<Int>, String)]
    switch proto {
    case 6: l4Fields = [(0..<2, "TCP source port"), (2..<4, "TCP destination port"), (4..<8, "TCP sequence"),
                        (8..<12, "TCP acknowledgment"), (12..<14, "TCP offset/flags"), (14..<16, "TCP window"),
                        (16..<18, "TCP checksum")]
    case 17: l4Fields = [(0..<2, "UDP source port"), (2..<4, "UDP destination port"), (4..<6, "UDP length"),
                         (6..<8, "UDP checksum")]
    case 1: l4Fields = [(0..<1, "ICMP type"), (1..<2, "ICMP code"), (2..<4, "ICMP checksum"),
                        (4..<8, "ICMP rest of header"), (8..<28, "quoted IP header"), (28..<36, "quoted transport")]
    default: l4Fields = []
    }
    for (r, n) in l4Fields where r.contains(l4) { return n }
    return "payload"
}

/// Byte-for-byte comparison; a mismatch names each differing field.
func expectFrame(_ actual: [UInt8], equals expected: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
    if actual == expected { return }
    var lines = ["frame differs (\(actual.count) bytes, expected \(expected.count))"]
    let proto = expected.count > 23 ? expected[23] : 0
    var reported = Set<String>()
    for i in 0..<max(actual.count, expected.count) {
        let a = i < actual.count ? actual[i] : nil
        let e = i < expected.count ? expected[i] : nil
        if a != e {
            let name = fieldName(at: i, protocol: proto)
            if reported.insert(name).inserted {
                lines.append("  offset \(i) (\(name)): got \(a.map { hex($0) } ?? "--"), expected \(e.map { hex($0) } ?? "--")")
            }
        }
    }
    Issue.record(Comment(rawValue: lines.joined(separator: "\n")), sourceLocation: sourceLocation)
}

private func hex(_ b: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return "0x" + String(digits[Int(b >> 4)]) + String(digits[Int(b & 0xF)])
}
