import FerryPacket
import Testing

@testable import FerryCore

// Malformed frames get their DropReason (never a trap); frames that are not Ferry's get
// `.pass` and are left to the kernel; and a trace explains a drop in words.

private func ip(_ s: String) -> IPv4Address { IPv4Address(s)! }

/// Offsets in an Ethernet + IPv4 (IHL 5) frame.
private enum At {
    static let ip = 14
    static let totalLength = ip + 2
    static let fragment = ip + 6
    static let headerChecksum = ip + 10
    static let l4 = ip + 20
    static let tcpDataOffset = l4 + 12
    static let udpLength = l4 + 4
}

/// Rewrites the IPv4 header checksum so that only the intended field is wrong.
private func fixHeaderChecksum(_ frame: inout [UInt8]) {
    frame.withUnsafeMutableBytes { b in
        IPv4View(unchecked: UnsafeMutableRawBufferPointer(rebasing: b[At.ip...])).updateHeaderChecksum()
    }
}

private func set16(_ frame: inout [UInt8], _ offset: Int, _ value: UInt16) {
    frame[offset] = UInt8(value >> 8)
    frame[offset + 1] = UInt8(value & 0xFF)
}

struct MalformedCase: Sendable, CustomTestStringConvertible {
    var testDescription: String
    var frame: [UInt8]
    var reason: DropReason
}

private let syn = tcpFrame(.podAToNode, Node1.podA, 45000, Svc.web, 80)
private let query = udpFrame(.podAToNode, Node1.podA, 45001, Svc.dns, 53)

private func mutated(_ base: [UInt8], fixChecksum: Bool = true, _ change: (inout [UInt8]) -> Void) -> [UInt8] {
    var f = base
    change(&f)
    if fixChecksum { fixHeaderChecksum(&f) }
    return f
}

private func fragment(moreFragments: Bool, offset: UInt16) -> [UInt8] {
    PacketBuilder.frame(Link.podAToNode.ethernet,
                        IPv4Fields(sourceAddress: Node1.podA, destinationAddress: Svc.dns, protocol: .udp,
                                   identification: 0x0F0F, dontFragment: false, moreFragments: moreFragments,
                                   fragmentOffset: offset),
                        .udp(UDPFields(sourcePort: 45002, destinationPort: 53, payload: [UInt8](repeating: 7, count: 64))))
}

private let malformedCases: [MalformedCase] = [
    MalformedCase(testDescription: "a 10-byte frame (Ethernet header cut) is dropped as truncated-frame",
                  frame: Array(syn.prefix(10)), reason: .truncatedFrame),
    MalformedCase(testDescription: "an IPv4 header cut at 10 bytes is dropped as truncated-frame",
                  frame: Array(syn.prefix(At.ip + 10)), reason: .truncatedFrame),
    MalformedCase(testDescription: "IHL 4 is dropped as bad-ipv4-header",
                  frame: mutated(syn) { $0[At.ip] = 0x44 }, reason: .badIPv4Header),
    MalformedCase(testDescription: "IHL 15 (60 bytes) past a 40-byte datagram is dropped as bad-ipv4-header",
                  frame: mutated(syn) { $0[At.ip] = 0x4F }, reason: .badIPv4Header),
    MalformedCase(testDescription: "version 6 under EtherType IPv4 is dropped as bad-ipv4-header",
                  frame: mutated(syn) { $0[At.ip] = 0x65 }, reason: .badIPv4Header),
    MalformedCase(testDescription: "total length 1500 in a 54-byte frame is dropped as bad-ipv4-total-length",
                  frame: mutated(syn) { set16(&$0, At.totalLength, 1500) }, reason: .badIPv4TotalLength),
    MalformedCase(testDescription: "total length 19, shorter than the header, is dropped as bad-ipv4-total-length",
                  frame: mutated(syn) { set16(&$0, At.totalLength, 19) }, reason: .badIPv4TotalLength),
    MalformedCase(testDescription: "a header checksum off by one is dropped as bad-ipv4-checksum",
                  frame: mutated(syn, fixChecksum: false) { $0[At.headerChecksum + 1] &+= 1 }, reason: .badIPv4Checksum),
    MalformedCase(testDescription: "TCP data offset 4 (16 bytes) is dropped as bad-l4-header",
                  frame: mutated(syn) { $0[At.tcpDataOffset] = 0x40 }, reason: .badL4Header),
    MalformedCase(testDescription: "TCP data offset 15 (60 bytes) past a 20-byte segment is dropped as bad-l4-header",
                  frame: mutated(syn) { $0[At.tcpDataOffset] = 0xF0 }, reason: .badL4Header),
    MalformedCase(testDescription: "a TCP header cut to 10 bytes by the IP total length is dropped as bad-l4-header",
                  frame: mutated(syn) { set16(&$0, At.totalLength, 30) }, reason: .badL4Header),
    MalformedCase(testDescription: "UDP length 200 past the datagram is dropped as bad-l4-header",
                  frame: mutated(query) { set16(&$0, At.udpLength, 200) }, reason: .badL4Header),
    MalformedCase(testDescription: "UDP length 7, shorter than its header, is dropped as bad-l4-header",
                  frame: mutated(query) { set16(&$0, At.udpLength, 7) }, reason: .badL4Header),
    MalformedCase(testDescription: "the first fragment (MF) of a query to a ClusterIP is dropped as fragment-to-service",
                  frame: fragment(moreFragments: true, offset: 0), reason: .fragmentToService),
    MalformedCase(testDescription: "the last fragment (offset 1480) of a query to a ClusterIP is dropped as fragment-to-service",
                  frame: fragment(moreFragments: false, offset: 185), reason: .fragmentToService),
    MalformedCase(testDescription: "a packet from a multicast source is dropped as martian-source",
                  frame: mutated(syn) { $0[At.ip + 12] = 224 }, reason: .martianSource),
]

struct PassCase: Sendable, CustomTestStringConvertible {
    var testDescription: String
    var frame: [UInt8]
    var ingress: InterfaceIndex
}

private let passCases: [PassCase] = [
    PassCase(testDescription: "pod a's broadcast ARP request for its gateway 10.244.1.1 passes to the kernel",
             frame: PacketBuilder.frame(EthernetFields(destination: .broadcast, source: Node1.podAMAC),
                                        arp: ARPFields(operation: .request, senderHardwareAddress: Node1.podAMAC,
                                                       senderProtocolAddress: Node1.podA, targetHardwareAddress: .zero,
                                                       targetProtocolAddress: Node1.podGateway)),
             ingress: Node1.vpA),
    PassCase(testDescription: "node-2's unicast ARP reply to eth0 passes to the kernel",
             frame: PacketBuilder.frame(Link.node2ToNode.ethernet,
                                        arp: ARPFields(operation: .reply, senderHardwareAddress: Node1.node2MAC,
                                                       senderProtocolAddress: Node1.node2,
                                                       targetHardwareAddress: Node1.eth0MAC,
                                                       targetProtocolAddress: Node1.address)),
             ingress: Node1.eth0),
    PassCase(testDescription: "an IPv6 frame to vp-a's MAC passes to the kernel",
             frame: PacketBuilder.frame(EthernetFields(destination: Node1.vpAMAC, source: Node1.podAMAC, etherType: .ipv6),
                                        payload: [0x60] + [UInt8](repeating: 0, count: 47)),
             ingress: Node1.vpA),
    PassCase(testDescription: "a SYN to a ClusterIP in a frame for another MAC passes (not addressed to Ferry)",
             frame: tcpFrame(Link(source: Node1.routerMAC, destination: Node1.node2MAC), Node1.client, 45100, Svc.web, 80),
             ingress: Node1.eth0),
    PassCase(testDescription: "SSH to the node's own 172.18.0.11:22 passes to the kernel",
             frame: tcpFrame(.routerToNode, Node1.client, 45101, Node1.address, 22), ingress: Node1.eth0),
    PassCase(testDescription: "a DNS query from pod a to its gateway 10.244.1.1:53 (node-local DNS) passes to the kernel",
             frame: udpFrame(.podAToNode, Node1.podA, 45102, Node1.podGateway, 53), ingress: Node1.vpA),
    PassCase(testDescription: "a ping to the node's own address passes to the kernel",
             frame: PacketBuilder.frame(Link.routerToNode.ethernet,
                                        IPv4Fields(sourceAddress: Node1.client, destinationAddress: Node1.address,
                                                   protocol: .icmp),
                                        .icmp(.echoRequest(identifier: 7, sequenceNumber: 1))),
             ingress: Node1.eth0),
    PassCase(testDescription: "a frame on an interface Ferry does not forward on passes to the kernel",
             frame: tcpFrame(.podAToNode, Node1.podA, 45103, Svc.web, 80), ingress: InterfaceIndex(9)),
]

@Suite("Pipeline: malformed frames, frames for the kernel, traces")
struct PipelineMalformedTests {
    @Test(arguments: malformedCases)
    func malformedFrameIsDropped(_ c: MalformedCase) {
        var node = Node()
        let out = node.send(c.frame, on: Node1.vpA)
        #expect(out.verdict == .drop(c.reason))
        #expect(node.pipeline.counters.count(c.reason) == 1)
        #expect(node.pipeline.counters.dropped == 1)
        #expect(node.pipeline.conntrack.count == 0)
    }

    @Test(arguments: passCases)
    func frameForTheKernelPasses(_ c: PassCase) {
        var node = Node()
        let out = node.send(c.frame, on: c.ingress)
        #expect(out.verdict == .pass)
        // The kernel gets its own copy; Ferry changes nothing.
        #expect(out.bytes == c.frame)
        #expect(node.pipeline.counters.passed == 1)
        #expect(node.pipeline.conntrack.count == 0)
    }

    @Test("The trace of a SYN to NodePort Local 30082 on node-1, whose endpoints are all on node-2, explains the drop in words")
    func traceExplainsNoLocalEndpoints() throws {
        var node = Node()
        let out = node.send(tcpFrame(.routerToNode, Node1.client, 51700, Node1.address, Svc.npElsewherePort), on: Node1.eth0)
        #expect(out.verdict == .drop(.noLocalEndpoints))
        let lines = out.lines
        try #require(lines.count == 6)
        #expect(Array(lines.prefix(5)) == [
            "received 54 bytes on if2",
            "TCP 203.0.113.7:51700 → 172.18.0.11:30082",
            "no conntrack entry: a new flow",
            "matches NodePort frontend 172.18.0.11:30082 of Service default/np-elsewhere",
            "backends considered: only this node's endpoints (traffic policy Local), 0 candidate(s)",
        ])
        #expect(lines[5].hasPrefix("verdict: drop (no-local-endpoints: "))
        #expect(lines[5].contains("this node has no ready endpoint for the Service"))
        #expect(lines[5].contains("health check"))
    }

    @Test("The trace of a NodePort Cluster SYN names the frontend, the backend, why the source is masqueraded, and the route")
    func traceOfMasqueradedFlow() throws {
        var node = Node()
        let out = node.send(tcpFrame(.routerToNode, Node1.client, 51701, Node1.address, Svc.npClusterTCP), on: Node1.eth0)
        let port = try #require(out.masqueradePort)
        let lines = out.lines
        #expect(lines.contains("matches NodePort frontend 172.18.0.11:30080 of Service default/np-cluster"))
        #expect(lines.contains("backend 10.244.2.20:8080 on node-2 chosen by Maglev"))
        #expect(lines.contains { $0.hasPrefix("source masqueraded to 172.18.0.11:\(port) because externalTrafficPolicy is Cluster") })
        #expect(lines.contains("rewritten to 172.18.0.11:\(port) → 10.244.2.20:8080"))
        #expect(lines.contains("route 10.244.2.0/24 → via 172.18.0.12 dev if2"))
        #expect(lines.contains("next hop's MAC is 02:00:00:00:02:00"))
        #expect(lines.last == "verdict: forward on if2")
    }
}
