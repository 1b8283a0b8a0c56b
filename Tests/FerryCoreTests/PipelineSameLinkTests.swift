import FerryCore
import FerryPacket
import Testing

/// A DNATed packet that would leave by the link it came in on is masqueraded: otherwise
/// the backend, on that same link, answers the client directly and the reply is never
/// reverse-NATed (a pod on a bridge reaching another pod on it through a ClusterIP).
@Suite("Pipeline: same-link masquerade")
struct PipelineSameLinkTests {
    @Test("SYN from a node-2 pod arriving on eth0 to a ClusterIP whose backend is back over eth0 is masqueraded to 172.18.0.11, and the answer returns through node-1")
    func sameLinkIsMasqueraded() throws {
        var node = Node()
        let pod2 = IPv4Address(10, 244, 2, 77)
        let out = node.send(tcpFrame(.node2ToNode, pod2, 41000, Svc.web, 80), on: Node1.eth0)
        let port = try #require(out.masqueradePort)
        #expect(out.trace.events.contains(.masquerade(source: Node1.address, port: port, why: .sameLink)))
        #expect(out.verdict == .forward(egress: Node1.eth0))
        expectFrame(out.bytes, equals: tcpFrame(.nodeToNode2, Node1.address, port, Svc.webBackend, 8080, ttl: 63))
        // The backend answers node-1, which restores the ClusterIP and the pod's port.
        let answer = node.send(tcpFrame(.node2ToNode, Svc.webBackend, 8080, Node1.address, port, flags: [.syn, .ack]),
                               on: Node1.eth0)
        #expect(answer.verdict == .forward(egress: Node1.eth0))
        expectFrame(answer.bytes, equals: tcpFrame(.nodeToNode2, Svc.web, 80, pod2, 41000, flags: [.syn, .ack], ttl: 63))
    }

    @Test("SYN from pod a on vp-a to the same ClusterIP leaves on eth0, another link: the pod's address is kept")
    func otherLinkKeepsSource() {
        var node = Node()
        let out = node.send(tcpFrame(.podAToNode, Node1.podA, 41001, Svc.web, 80), on: Node1.vpA)
        #expect(out.masqueradePort == nil)
        #expect(out.trace.events.contains(.sourceKept))
        expectFrame(out.bytes, equals: tcpFrame(.nodeToNode2, Node1.podA, 41001, Svc.webBackend, 8080, ttl: 63))
    }
}
