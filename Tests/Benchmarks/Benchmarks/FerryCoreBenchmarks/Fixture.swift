import FerryCore
import FerryPacket

// The forwarding state the packet benchmarks run against: node-1 of a three-node cluster,
// as the agent would hold it after reading netlink and the Service files.
//
//                       router 172.18.0.1 (external clients, default route)
//                              │
//   ───────────── 172.18.0.0/24 underlay ──────────────────────────
//        │ eth0 .11                 │ .12                   │ .13
//     node-1 (this one)          node-2                  node-3
//     10.244.1.0/24              10.244.2.0/24           10.244.3.0/24
//      └─ vp-a ── pod a 10.244.1.10
//
// Services: `web`, a ClusterIP 10.96.0.10:80 over ten endpoints on node-2 and node-3 (so
// backend choice goes through a real Maglev table, not the one-backend shortcut);
// `edge`, a NodePort 30080 with externalTrafficPolicy Cluster over 40 endpoints (so new
// flows are masqueraded); and 48 filler ClusterIP Services so that the frontend
// dictionary is not trivially small.

enum Node1 {
    static let lo = InterfaceIndex(1)
    static let eth0 = InterfaceIndex(2)
    static let vpA = InterfaceIndex(5)

    static let eth0MAC = MACAddress(0x02_00_00_00_01_00)
    static let vpAMAC = MACAddress(0x02_00_00_00_01_a1)
    static let podAMAC = MACAddress(0x0a_58_0a_f4_01_0a)
    static let node2MAC = MACAddress(0x02_00_00_00_02_00)
    static let node3MAC = MACAddress(0x02_00_00_00_03_00)
    static let routerMAC = MACAddress(0x02_00_00_00_00_01)

    static let address = IPv4Address(172, 18, 0, 11)
    static let podGateway = IPv4Address(10, 244, 1, 1)
    static let podA = IPv4Address(10, 244, 1, 10)
    static let node2 = IPv4Address(172, 18, 0, 12)
    static let node3 = IPv4Address(172, 18, 0, 13)
    static let router = IPv4Address(172, 18, 0, 1)

    static let clusterCIDR = IPv4Prefix(address: IPv4Address(10, 244, 0, 0), length: 16)!
    static let snatRange: ClosedRange<UInt16> = 20000...29999
}

enum Svc {
    static let web = IPv4Address(10, 96, 0, 10)
    static let webPort: UInt16 = 80
    static let edge = IPv4Address(10, 96, 1, 10)
    static let edgeNodePort: UInt16 = 30080
    static let targetPort: UInt16 = 8080
    /// `count` endpoints, alternating between node-2's and node-3's pod CIDRs.
    static func endpoints(base: UInt8, count: Int = 10) -> [IPv4Address] {
        (0..<count).map { i in IPv4Address(10, 244, UInt8(2 + i % 2), base &+ UInt8(i)) }
    }
}

enum Fixture {
    static let node = NodeIdentity(name: "node-1")
    static let cluster = ClusterConfig(clusterCIDRs: [Node1.clusterCIDR], snatPortRange: Node1.snatRange)

    static func prefix(_ a: IPv4Address, _ length: Int) -> IPv4Prefix { IPv4Prefix(address: a, length: length)! }

    static let interfaces = InterfaceTable([
        InterfaceInfo(index: Node1.lo, name: "lo", mac: MACAddress(0), mtu: 65536,
                      addresses: [InterfaceAddress(IPv4Address(127, 0, 0, 1), prefixLength: 8)], isForwarding: false),
        InterfaceInfo(index: Node1.eth0, name: "eth0", mac: Node1.eth0MAC,
                      addresses: [InterfaceAddress(Node1.address, prefixLength: 24)]),
        InterfaceInfo(index: Node1.vpA, name: "vp-a", mac: Node1.vpAMAC, addresses: [InterfaceAddress(Node1.podGateway)]),
    ])

    /// node-1's main and local tables, as `ip route show table all` reduces them; four
    /// prefix lengths in use (/32, /24, /8, /0), so a lookup probes a few hash maps, as it
    /// would on a real node.
    static let routes = RouteTable(routes: [
        Route(destination: prefix(IPv4Address(172, 18, 0, 0), 24), interface: Node1.eth0, preferredSource: Node1.address),
        Route(destination: prefix(IPv4Address(10, 244, 2, 0), 24), gateway: Node1.node2, interface: Node1.eth0),
        Route(destination: prefix(IPv4Address(10, 244, 3, 0), 24), gateway: Node1.node3, interface: Node1.eth0),
        Route(destination: prefix(Node1.podA, 32), interface: Node1.vpA),
        Route(destination: prefix(IPv4Address(10, 244, 1, 0), 24), interface: Node1.lo, kind: .blackhole),
        Route(destination: prefix(IPv4Address(0, 0, 0, 0), 0), gateway: Node1.router, interface: Node1.eth0),
        Route(destination: prefix(Node1.address, 32), interface: Node1.eth0, kind: .local),
        Route(destination: prefix(Node1.podGateway, 32), interface: Node1.vpA, kind: .local),
        Route(destination: prefix(IPv4Address(127, 0, 0, 0), 8), interface: Node1.lo, kind: .local),
    ])

    static let neighbours = NeighbourTable([
        (Node1.eth0, Node1.node2, Node1.node2MAC),
        (Node1.eth0, Node1.node3, Node1.node3MAC),
        (Node1.eth0, Node1.router, Node1.routerMAC),
        (Node1.vpA, Node1.podA, Node1.podAMAC),
    ])

    /// A Service with one TCP port and an EndpointSlice of `endpoints`.
    static func service(_ name: String, type: ServiceType = .clusterIP, clusterIP: IPv4Address, port: UInt16,
                        nodePort: UInt16? = nil, endpoints: [IPv4Address]) -> (ServiceSpec, EndpointSliceSpec) {
        let serviceName = ServiceName(namespace: "default", name: name)
        let spec = ServiceSpec(name: serviceName, type: type, clusterIP: clusterIP,
                               ports: [ServicePortSpec(name: "http", port: port, targetPort: .number(Svc.targetPort),
                                                       nodePort: nodePort)])
        let slice = EndpointSliceSpec(
            name: "\(name)-abcde", service: serviceName,
            ports: [EndpointPortSpec(name: "http", port: Svc.targetPort)],
            endpoints: endpoints.map { a in
                EndpointSpec(address: a, nodeName: a.value & 0xFF00 == 0x0200 ? "node-2" : "node-3")
            })
        return (spec, slice)
    }

    static func services() -> ServiceTable {
        var pairs = [
            service("web", clusterIP: Svc.web, port: Svc.webPort, endpoints: Svc.endpoints(base: 10)),
            service("edge", type: .nodePort, clusterIP: Svc.edge, port: 80, nodePort: Svc.edgeNodePort,
                    endpoints: Svc.endpoints(base: 40, count: 40)),
        ]
        for i in 0..<48 {
            pairs.append(service("filler-\(i)", clusterIP: IPv4Address(10, 96, 2, UInt8(i)), port: 80,
                                 endpoints: Svc.endpoints(base: 100 + UInt8(i % 8) * 10)))
        }
        return ServiceTable(services: pairs.map(\.0), slices: pairs.map(\.1), node: node, cluster: cluster)
    }

    static func state() -> ForwardingState {
        ForwardingState(services: services(), routes: routes, neighbours: neighbours, interfaces: interfaces,
                        cluster: cluster, node: node)
    }

    static func pipeline(conntrackCapacity: Int) -> Pipeline {
        Pipeline(config: PipelineConfig(), conntrack: ConntrackTable(capacity: conntrackCapacity, hashSeed: 0x5EED),
                 affinity: AffinityTable(capacity: 1024), snat: SNATPortAllocator(range: Node1.snatRange, seed: 7))
    }

    /// A minimum-size TCP frame (54 octets, padded to 60 as on the wire) with a complete
    /// checksum: the forwarding work does not depend on the payload when checksums are
    /// complete, so the smallest frame shows the per-packet cost.
    static func tcpFrame(from srcMAC: MACAddress, to dstMAC: MACAddress, _ src: IPv4Address, _ sport: UInt16,
                         _ dst: IPv4Address, _ dport: UInt16, flags: TCPFlags) -> [UInt8] {
        PacketBuilder.frame(EthernetFields(destination: dstMAC, source: srcMAC),
                            IPv4Fields(sourceAddress: src, destinationAddress: dst, protocol: .tcp),
                            .tcp(TCPFields(sourcePort: sport, destinationPort: dport, sequenceNumber: 1,
                                           acknowledgmentNumber: flags.contains(.ack) ? 1 : 0, flags: flags)),
                            padded: true)
    }
}

/// One frame buffer that a benchmark rewrites in place, and the pristine bytes it is
/// reset from before every packet. Both are allocated once, outside the measurement.
final class FrameBuffer {
    let length: Int
    let pristine: UnsafeMutableRawBufferPointer
    let bytes: UnsafeMutableRawBufferPointer

    /// `room` leaves space for a reject's ICMP error (the pipeline's contract).
    init(_ frame: [UInt8], room: Int = 256) {
        length = frame.count
        pristine = .allocate(byteCount: frame.count, alignment: 16)
        pristine.copyBytes(from: frame)
        bytes = .allocate(byteCount: max(room, frame.count), alignment: 16)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
        reset()
    }

    deinit {
        pristine.deallocate()
        bytes.deallocate()
    }

    /// Copies the pristine frame over the buffer (a memcpy of `length` octets): the
    /// pipeline rewrote MACs, TTL, addresses, ports and checksums in place.
    @inline(__always) func reset() {
        bytes.baseAddress!.copyMemory(from: pristine.baseAddress!, byteCount: length)
    }

    /// The IPv4 header of the buffer (the frame is known to be IPv4/TCP).
    @inline(__always) var ip: IPv4View {
        IPv4View(unchecked: UnsafeMutableRawBufferPointer(rebasing: bytes[EthernetView.headerLength..<length]))
    }

    /// Gives the buffered frame a new source address and port, updating the IPv4 and TCP
    /// checksums incrementally (RFC 1624), as a sender of a new flow would have filled them.
    @inline(__always) func setSource(_ address: IPv4Address, port: UInt16) {
        let ip = self.ip
        let tcp = TCPView(unchecked: ip.payload)
        tcp.updateChecksumForAddressChange(from: ip.sourceAddress, to: address, checksum: .full)
        tcp.setSourcePort(port, checksum: .full)
        ip.setSourceAddressUpdatingChecksum(address)
    }
}

/// The source of the `n`-th new flow: ports 1024...65023, then the next address, so
/// a run of a few million packets never repeats a 4-tuple.
@inline(__always) func flowSource(_ n: Int, base: IPv4Address) -> (IPv4Address, UInt16) {
    let (q, r) = n.quotientAndRemainder(dividingBy: 64_000)
    return (IPv4Address(base.value &+ UInt32(truncatingIfNeeded: q)), UInt16(1024 + r))
}

enum FixtureError: Error, CustomStringConvertible {
    case unexpected(String)
    var description: String {
        switch self { case .unexpected(let s): s }
    }
}

/// Checks that a set-up packet took the path the benchmark means to measure; a benchmark
/// of the wrong path would be worse than none.
func expectForward(_ v: Verdict, on egress: InterfaceIndex, _ what: String) throws {
    guard v == .forward(egress: egress) else { throw FixtureError.unexpected("\(what): expected forward on \(egress), got \(v)") }
}
