import FerryPacket
import Testing

@testable import FerryCore

// Golden tables for ICMP error translation and plain routing through node-1.

private func ip(_ s: String) -> IPv4Address { IPv4Address(s)! }

@Suite("Pipeline: ICMP errors and routing")
struct PipelineRoutingTests {
    // MARK: ICMP errors about NATed flows (nf_nat_icmp_reply_translation)

    @Test("Port unreachable from kube-dns's backend about a DNATed query reaches pod a from the Service IP, quoting 10.96.0.53:53")
    func portUnreachableFromBackendIsTranslated() {
        var node = Node()
        _ = node.send(udpFrame(.podAToNode, Node1.podA, 40400, Svc.dns, 53), on: Node1.vpA)

        // The backend's stack quotes the query as it arrived: after Ferry's DNAT (TTL 63)
        // and node-3's forwarding (TTL 62). The quoted UDP checksum covers the whole query.
        let asArrived = udpFrame(.nodeToNode3, Node1.podA, 40400, Svc.dnsBackend, 53, ttl: 62)
        let error = icmpErrorFrame(.node3ToNode, from: Svc.dnsBackend, to: Node1.podA, type: .destinationUnreachable,
                                   code: ICMPCode.DestinationUnreachable.portUnreachable,
                                   quote: Array(datagram(of: asArrived).prefix(28)), ttl: 63, id: 0x0777)
        let out = node.send(error, on: Node1.eth0)
        #expect(out.verdict == .forward(egress: Node1.vpA))

        // What pod a sent, so its socket matches the error: quoted destination and outer
        // source are the Service's, and every checksum is recomputed by the builder.
        let asSent = udpFrame(.nodeToNode3, Node1.podA, 40400, Svc.dns, 53, ttl: 62)
        expectFrame(out.bytes, equals: icmpErrorFrame(.nodeToPodA, from: Svc.dns, to: Node1.podA,
                                                      type: .destinationUnreachable,
                                                      code: ICMPCode.DestinationUnreachable.portUnreachable,
                                                      quote: Array(datagram(of: asSent).prefix(28)), ttl: 62, id: 0x0777))
        #expect(node.pipeline.counters.icmpErrorsTranslated == 1)
    }

    @Test("Fragmentation needed from a router about a NodePort flow's answer goes to the backend, quoting the backend's own tuple and keeping the MTU")
    func fragmentationNeededIsTranslated() throws {
        var node = Node()
        let syn = node.send(tcpFrame(.routerToNode, Node1.client, 51500, Node1.address, Svc.npClusterTCP), on: Node1.eth0)
        let port = try #require(syn.masqueradePort)

        // The backend's large answer left node-1 as 172.18.0.11:30080 → client; a router
        // with a 1400-byte link on the way refuses it (DF set) and says so to 172.18.0.11.
        let page = [UInt8](repeating: 0x61, count: 1448)
        let farRouter = ip("203.0.113.1")
        let leftNode1 = tcpFrame(.nodeToRouter, Node1.address, Svc.npClusterTCP, Node1.client, 51500,
                                 flags: [.ack, .psh], seq: 0x7000_0001, ack: 0x1000_0001, payload: page, ttl: 62)
        let error = icmpErrorFrame(.routerToNode, from: farRouter, to: Node1.address, type: .destinationUnreachable,
                                   code: ICMPCode.DestinationUnreachable.fragmentationNeeded, restOfHeader: 1400,
                                   quote: Array(datagram(of: leftNode1).prefix(28)), ttl: 60, id: 0x0999, typeOfService: 0)
        let out = node.send(error, on: Node1.eth0)
        #expect(out.verdict == .forward(egress: Node1.eth0))

        // The backend sent 10.244.2.20:8080 → 172.18.0.11:port; that is what it must see.
        let leftBackend = tcpFrame(.nodeToRouter, Svc.npClusterBackend, 8080, Node1.address, port,
                                   flags: [.ack, .psh], seq: 0x7000_0001, ack: 0x1000_0001, payload: page, ttl: 62)
        expectFrame(out.bytes, equals: icmpErrorFrame(.nodeToNode2, from: farRouter, to: Svc.npClusterBackend,
                                                      type: .destinationUnreachable,
                                                      code: ICMPCode.DestinationUnreachable.fragmentationNeeded,
                                                      restOfHeader: 1400, quote: Array(datagram(of: leftBackend).prefix(28)),
                                                      ttl: 59, id: 0x0999, typeOfService: 0))
    }

    @Test("Port unreachable from the backend of a masqueraded NodePort UDP flow goes to the external client from the node, quoting the client's own datagram to 172.18.0.11:30514")
    func portUnreachableAboutMasqueradedFlow() throws {
        var node = Node()
        let first = node.send(udpFrame(.routerToNode, Node1.client, 40410, Node1.address, Svc.npClusterUDP), on: Node1.eth0)
        let port = try #require(first.masqueradePort)

        // The backend saw 172.18.0.11:port → 10.244.2.20:5514 and answers the node.
        let asArrived = udpFrame(.nodeToNode2, Node1.address, port, Svc.npClusterBackend, 5514, ttl: 62)
        let error = icmpErrorFrame(.node2ToNode, from: Svc.npClusterBackend, to: Node1.address,
                                   type: .destinationUnreachable, code: ICMPCode.DestinationUnreachable.portUnreachable,
                                   quote: Array(datagram(of: asArrived).prefix(28)), ttl: 63, id: 0x0888)
        let out = node.send(error, on: Node1.eth0)
        #expect(out.verdict == .forward(egress: Node1.eth0))

        // Both translations undone: the client sees its own datagram to the NodePort,
        // refused by the node it sent it to.
        let asSent = udpFrame(.nodeToNode2, Node1.client, 40410, Node1.address, Svc.npClusterUDP, ttl: 62)
        expectFrame(out.bytes, equals: icmpErrorFrame(.nodeToRouter, from: Node1.address, to: Node1.client,
                                                      type: .destinationUnreachable,
                                                      code: ICMPCode.DestinationUnreachable.portUnreachable,
                                                      quote: Array(datagram(of: asSent).prefix(28)), ttl: 62, id: 0x0888))
    }

    @Test("An ICMP error about no known flow is routed untouched")
    func unrelatedICMPErrorIsRouted() {
        var node = Node()
        let quoted = udpFrame(.nodeToNode2, Node1.podA, 40401, ip("10.244.2.99"), 9999, ttl: 63)
        let error = icmpErrorFrame(.node2ToNode, from: ip("10.244.2.99"), to: Node1.podA, type: .destinationUnreachable,
                                   code: ICMPCode.DestinationUnreachable.portUnreachable,
                                   quote: Array(datagram(of: quoted).prefix(28)), ttl: 63, id: 5)
        let out = node.send(error, on: Node1.eth0)
        #expect(out.verdict == .forward(egress: Node1.vpA))
        expectFrame(out.bytes, equals: icmpErrorFrame(.nodeToPodA, from: ip("10.244.2.99"), to: Node1.podA,
                                                      type: .destinationUnreachable,
                                                      code: ICMPCode.DestinationUnreachable.portUnreachable,
                                                      quote: Array(datagram(of: quoted).prefix(28)), ttl: 62, id: 5))
        #expect(node.pipeline.counters.icmpErrorsTranslated == 0)
    }

    // MARK: Plain routing

    @Test("TCP from pod a to a pod on node-2 is routed via 172.18.0.12 untranslated, TTL 63, to node-2's MAC")
    func podToPodAcrossNodes() {
        var node = Node()
        let out = node.send(tcpFrame(.podAToNode, Node1.podA, 40500, ip("10.244.2.99"), 5000), on: Node1.vpA)
        #expect(out.verdict == .forward(egress: Node1.eth0))
        expectFrame(out.bytes, equals: tcpFrame(.nodeToNode2, Node1.podA, 40500, ip("10.244.2.99"), 5000, ttl: 63))
        #expect(out.trace.events.contains(.routed(via: Node1.node2, egress: Node1.eth0, prefix: IPv4Prefix("10.244.2.0/24")!)))
    }

    @Test("UDP from pod a to pod b on the same node is routed on vp-b to pod b's MAC")
    func podToPodSameNode() {
        var node = Node()
        let out = node.send(udpFrame(.podAToNode, Node1.podA, 40501, Node1.podB, 7000), on: Node1.vpA)
        #expect(out.verdict == .forward(egress: Node1.vpB))
        expectFrame(out.bytes, equals: udpFrame(.nodeToPodB, Node1.podA, 40501, Node1.podB, 7000, ttl: 63))
    }

    @Test("TTL 1 from pod a gets ICMP time exceeded from vp-a's 10.244.1.1, back on vp-a to pod a's MAC")
    func ttlOneFromPod() {
        var node = Node()
        let probe = udpFrame(.podAToNode, Node1.podA, 40502, ip("10.244.2.99"), 33434, ttl: 1)
        let out = node.send(probe, on: Node1.vpA)
        #expect(out.verdict == .reject(egress: Node1.vpA, length: 70, reason: .ttlExceeded))
        expectFrame(out.bytes, equals: icmpErrorFrame(.nodeToPodA, from: Node1.podGateway, to: Node1.podA,
                                                      type: .timeExceeded,
                                                      code: ICMPCode.TimeExceeded.timeToLiveExceededInTransit,
                                                      quote: Array(datagram(of: probe).prefix(28)), id: 1))
        #expect(node.pipeline.counters.count(.ttlExceeded) == 1)
    }

    @Test("TTL 1 from node-2 towards pod a gets ICMP time exceeded from eth0's 172.18.0.11, back on eth0 to node-2's MAC")
    func ttlOneFromUnderlay() {
        var node = Node()
        let probe = tcpFrame(.node2ToNode, ip("10.244.2.99"), 40503, Node1.podA, 8080, ttl: 1)
        let out = node.send(probe, on: Node1.eth0)
        #expect(out.verdict == .reject(egress: Node1.eth0, length: 70, reason: .ttlExceeded))
        expectFrame(out.bytes, equals: icmpErrorFrame(.nodeToNode2, from: Node1.address, to: ip("10.244.2.99"),
                                                      type: .timeExceeded,
                                                      code: ICMPCode.TimeExceeded.timeToLiveExceededInTransit,
                                                      quote: Array(datagram(of: probe).prefix(28)), id: 1))
    }

    @Test("With no default route, UDP from pod a to 8.8.8.8 is dropped as no-route")
    func noRoute() {
        let withoutDefault = NodeFixture.state.with(
            routes: RouteTable(routes: NodeFixture.routes.filter { $0.destination.length != 0 }), generation: 2)
        var node = Node(state: withoutDefault)
        let out = node.send(udpFrame(.podAToNode, Node1.podA, 40504, ip("8.8.8.8"), 53), on: Node1.vpA)
        #expect(out.verdict == .drop(.noRoute))
        #expect(node.pipeline.counters.count(.noRoute) == 1)
        // The same packet with the default route goes to the router.
        var routed = Node()
        #expect(routed.send(udpFrame(.podAToNode, Node1.podA, 40504, ip("8.8.8.8"), 53), on: Node1.vpA).verdict
                    == .forward(egress: Node1.eth0))
    }

    @Test("TCP from pod a to 172.18.0.14, whose MAC is unknown, is dropped as neighbour-unresolved and asks once to resolve it on eth0")
    func neighbourUnresolved() {
        var node = Node()
        for port: UInt16 in [40505, 40506] {
            let out = node.send(tcpFrame(.podAToNode, Node1.podA, port, Node1.silentNeighbour, 10250), on: Node1.vpA)
            #expect(out.verdict == .drop(.neighbourUnresolved))
        }
        var requests: [String] = []
        node.pipeline.neighbourRequests.drain { requests.append("\($0) \($1)") }
        #expect(requests == ["\(Node1.eth0) \(Node1.silentNeighbour)"])
        #expect(node.pipeline.neighbourRequests.count == 0)
        #expect(node.pipeline.counters.count(.neighbourUnresolved) == 2)
    }

    @Test("TCP from pod a to 10.244.1.99, an unused address of node-1's pod CIDR, hits the blackhole route and is dropped")
    func blackholeRoute() {
        var node = Node()
        let out = node.send(tcpFrame(.podAToNode, Node1.podA, 40507, ip("10.244.1.99"), 80), on: Node1.vpA)
        #expect(out.verdict == .drop(.blackholeRoute))
    }
}
