import FerryPacket
import Testing

@testable import FerryCore

// The state tables seen through the pipeline: a full conntrack, an exhausted SNAT range,
// a reply-tuple clash, and conntrack timeouts on a stepped fake clock.

private let synAck: TCPFlags = [.syn, .ack]

@Suite("Pipeline: state tables")
struct PipelineStateTests {
    @Test("With conntrack full of assured flows (capacity 4), a new DNS query is dropped as conntrack-full while the known flows keep working")
    func conntrackFull() {
        var node = Node(conntrackCapacity: 4)
        for i: UInt16 in 0..<4 {
            #expect(node.send(udpFrame(.podAToNode, Node1.podA, 42000 + i, Svc.dns, 53), on: Node1.vpA).verdict
                        == .forward(egress: Node1.eth0))
            // The answer marks the flow assured: it cannot be early-dropped.
            #expect(node.send(udpFrame(.node3ToNode, Svc.dnsBackend, 53, Node1.podA, 42000 + i, ttl: 63), on: Node1.eth0)
                        .verdict == .forward(egress: Node1.vpA))
        }
        #expect(node.pipeline.conntrack.count == 4)

        let fifth = node.send(udpFrame(.podAToNode, Node1.podA, 42004, Svc.dns, 53), on: Node1.vpA)
        #expect(fifth.verdict == .drop(.conntrackFull))
        #expect(node.pipeline.counters.count(.conntrackFull) == 1)
        #expect(node.pipeline.conntrack.count == 4)

        let known = node.send(udpFrame(.node3ToNode, Svc.dnsBackend, 53, Node1.podA, 42000, ttl: 63), on: Node1.eth0)
        expectFrame(known.bytes, equals: udpFrame(.nodeToPodA, Svc.dns, 53, Node1.podA, 42000, ttl: 62))
    }

    @Test("With an 8-port SNAT range, eight external clients of NodePort 30080 get the eight ports and the ninth is dropped as snat-ports-exhausted")
    func snatRangeExhausted() throws {
        let range: ClosedRange<UInt16> = 20000...20007
        var node = Node(snatRange: range)
        var ports: Set<UInt16> = []
        for i: UInt8 in 0..<8 {
            let client = IPv4Address(203, 0, 113, 10 + i)
            let out = node.send(tcpFrame(.routerToNode, client, 52000, Node1.address, Svc.npClusterTCP), on: Node1.eth0)
            let port = try #require(out.masqueradePort)
            ports.insert(port)
            expectFrame(out.bytes, equals: tcpFrame(.nodeToNode2, Node1.address, port, Svc.npClusterBackend, 8080, ttl: 63))
        }
        #expect(ports == Set(range))

        let ninth = node.send(tcpFrame(.routerToNode, IPv4Address(203, 0, 113, 18), 52000, Node1.address,
                                       Svc.npClusterTCP), on: Node1.eth0)
        #expect(ninth.verdict == .drop(.snatPortsExhausted))
        #expect(node.pipeline.counters.count(.snatPortsExhausted) == 1)
        #expect(node.pipeline.conntrack.count == 8)
    }

    @Test("Pod a reaching one pod through two Services from the same source port: the second flow's reply tuple clashes and its source port is remapped into the SNAT range; both answers find their way back")
    func replyTupleClashIsRemapped() throws {
        var node = Node()
        let first = node.send(tcpFrame(.podAToNode, Node1.podA, 43000, Svc.web, 80), on: Node1.vpA)
        expectFrame(first.bytes, equals: tcpFrame(.nodeToNode2, Node1.podA, 43000, Svc.webBackend, 8080, ttl: 63))

        // Same backend 10.244.2.10:8080, same client port: reply tuple 10.244.2.10:8080 →
        // 10.244.1.10:43000 is taken.
        let second = node.send(tcpFrame(.podAToNode, Node1.podA, 43000, Svc.webCanary, 80), on: Node1.vpA)
        #expect(second.verdict == .forward(egress: Node1.eth0))
        let port = try #require(second.rewrittenTo?.sourcePort)
        #expect(Node1.snatRange.contains(port))
        expectFrame(second.bytes, equals: tcpFrame(.nodeToNode2, Node1.podA, port, Svc.webBackend, 8080, ttl: 63))
        #expect(node.pipeline.counters.clashRemapped == 1)

        let toCanary = node.send(tcpFrame(.node2ToNode, Svc.webBackend, 8080, Node1.podA, port, flags: synAck, ttl: 63),
                                 on: Node1.eth0)
        expectFrame(toCanary.bytes, equals: tcpFrame(.nodeToPodA, Svc.webCanary, 80, Node1.podA, 43000, flags: synAck,
                                                     ttl: 62))
        let toWeb = node.send(tcpFrame(.node2ToNode, Svc.webBackend, 8080, Node1.podA, 43000, flags: synAck, ttl: 63),
                              on: Node1.eth0)
        expectFrame(toWeb.bytes, equals: tcpFrame(.nodeToPodA, Svc.web, 80, Node1.podA, 43000, flags: synAck, ttl: 62))
    }

    // MARK: Timeouts on a stepped clock

    /// (idle seconds, idle extra nanoseconds, whether the entry is still there)
    typealias Idle = (seconds: UInt64, nanoseconds: UInt64, alive: Bool)

    @Test("An established TCP flow's entry is still there after 86399 s idle and gone at 86400 s (kube-proxy's 24 h)",
          arguments: [(86_399, 0, true), (86_400, 0, false)] as [Idle])
    func tcpEstablishedTimeout(_ idle: Idle) {
        var node = Node()
        let (seq, ack): (UInt32, UInt32) = (0x1000_0000, 0x7000_0000)
        _ = node.send(tcpFrame(.podAToNode, Node1.podA, 44000, Svc.web, 80, seq: seq), on: Node1.vpA)
        node.advance(nanoseconds: 300_000)
        _ = node.send(tcpFrame(.node2ToNode, Svc.webBackend, 8080, Node1.podA, 44000, flags: synAck, seq: ack,
                               ack: seq + 1, ttl: 63), on: Node1.eth0)
        node.advance(nanoseconds: 300_000)
        _ = node.send(tcpFrame(.podAToNode, Node1.podA, 44000, Svc.web, 80, flags: .ack, seq: seq + 1, ack: ack + 1),
                      on: Node1.vpA)
        let key = FlowKey(protocol: .tcp, source: Node1.podA, sourcePort: 44000, destination: Svc.web, destinationPort: 80)
        let hit = node.pipeline.conntrack.lookup(key, now: node.now)
        #expect(hit.map { node.pipeline.conntrack[entry: $0.entry].state } == .established)
        #expect(hit.map { node.pipeline.conntrack[entry: $0.entry].assured } == true)

        node.advance(seconds: idle.seconds)
        node.advance(nanoseconds: idle.nanoseconds)
        // The backend speaks after the idle time: with the entry, it is reverse-NATed to
        // the ClusterIP; without it, it is routed as any pod-to-pod packet.
        let late = node.send(tcpFrame(.node2ToNode, Svc.webBackend, 8080, Node1.podA, 44000, flags: [.ack, .psh],
                                      seq: ack + 1, ack: seq + 1, payload: [0x68, 0x69], ttl: 63), on: Node1.eth0)
        let (from, port): (IPv4Address, UInt16) = idle.alive ? (Svc.web, 80) : (Svc.webBackend, 8080)
        expectFrame(late.bytes, equals: tcpFrame(.nodeToPodA, from, port, Node1.podA, 44000, flags: [.ack, .psh],
                                                 seq: ack + 1, ack: seq + 1, payload: [0x68, 0x69], ttl: 62))
        #expect(node.pipeline.conntrack.count == (idle.alive ? 1 : 0))
    }

    @Test("An unreplied UDP flow's entry is still there 1 ns before 30 s and gone at 30 s",
          arguments: [(29, 999_999_999, true), (30, 0, false)] as [Idle])
    func udpUnrepliedTimeout(_ idle: Idle) {
        var node = Node()
        _ = node.send(udpFrame(.podAToNode, Node1.podA, 44100, Svc.dns, 53), on: Node1.vpA)
        node.advance(seconds: idle.seconds)
        node.advance(nanoseconds: idle.nanoseconds)
        let answer = node.send(udpFrame(.node3ToNode, Svc.dnsBackend, 53, Node1.podA, 44100, ttl: 63), on: Node1.eth0)
        let (from, port): (IPv4Address, UInt16) = idle.alive ? (Svc.dns, 53) : (Svc.dnsBackend, 53)
        expectFrame(answer.bytes, equals: udpFrame(.nodeToPodA, from, port, Node1.podA, 44100, ttl: 62))
        #expect(node.pipeline.counters.reverseNAT == (idle.alive ? 1 : 0))
    }
}
