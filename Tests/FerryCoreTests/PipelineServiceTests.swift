import FerryPacket
import Testing

@testable import FerryCore

// Golden packet tables for Service traffic through node-1 (NodeFixture.swift): each test
// builds the input frame with PacketBuilder, runs it through the pipeline, and compares
// the whole output frame with the frame the builder makes from the expected fields. The
// builder computes every checksum from scratch, so each comparison also checks the
// pipeline's incremental (RFC 1624) updates.

private let synAck: TCPFlags = [.syn, .ack]

/// The link a frame for `backend` leaves node-1 on: pod a's or pod b's veth, or eth0 to
/// the node that owns the pod CIDR.
private func linkTowards(_ backend: IPv4Address) -> (Link, InterfaceIndex) {
    switch backend {
    case Node1.podA: (.nodeToPodA, Node1.vpA)
    case Node1.podB: (.nodeToPodB, Node1.vpB)
    case _ where backend.value >> 8 == 0x0AF4_02: (.nodeToNode2, Node1.eth0)
    default: (.nodeToNode3, Node1.eth0)
    }
}

@Suite("Pipeline: Service traffic")
struct PipelineServiceTests {
    // MARK: ClusterIP

    @Test("SYN to ClusterIP from pod on node-1 is DNATed to 10.244.2.10:8080 and leaves on eth0 to node-2's MAC")
    func clusterIPToOtherNode() {
        var node = Node()
        let out = node.send(tcpFrame(.podAToNode, Node1.podA, 40000, Svc.web, 80), on: Node1.vpA)
        #expect(out.verdict == .forward(egress: Node1.eth0))
        expectFrame(out.bytes, equals: tcpFrame(.nodeToNode2, Node1.podA, 40000, Svc.webBackend, 8080, ttl: 63))
        #expect(out.trace.events.contains(.sourceKept))
        #expect(node.pipeline.counters.dnat == 1 && node.pipeline.counters.snat == 0)
    }

    @Test("SYN-ACK from 10.244.2.10:8080 on node-2 is reverse-NATed to come from ClusterIP 10.96.0.10:80 and reaches pod a on vp-a")
    func clusterIPReplyFromOtherNode() {
        var node = Node()
        _ = node.send(tcpFrame(.podAToNode, Node1.podA, 40001, Svc.web, 80), on: Node1.vpA)
        let reply = tcpFrame(.node2ToNode, Svc.webBackend, 8080, Node1.podA, 40001, flags: synAck, seq: 0x7000_0000,
                             ack: 0x1000_0001, ttl: 63)
        let out = node.send(reply, on: Node1.eth0)
        #expect(out.verdict == .forward(egress: Node1.vpA))
        expectFrame(out.bytes, equals: tcpFrame(.nodeToPodA, Svc.web, 80, Node1.podA, 40001, flags: synAck,
                                                seq: 0x7000_0000, ack: 0x1000_0001, ttl: 62))
        #expect(node.pipeline.counters.reverseNAT == 1)
    }

    @Test("SYN to a ClusterIP whose endpoint is pod b on the same node is DNATed to 10.244.1.11:8080 and leaves on vp-b; pod b's answer comes back from the ClusterIP on vp-a")
    func clusterIPSameNode() {
        var node = Node()
        let out = node.send(tcpFrame(.podAToNode, Node1.podA, 40002, Svc.localWeb, 80), on: Node1.vpA)
        #expect(out.verdict == .forward(egress: Node1.vpB))
        expectFrame(out.bytes, equals: tcpFrame(.nodeToPodB, Node1.podA, 40002, Node1.podB, 8080, ttl: 63))

        let reply = node.send(tcpFrame(.podBToNode, Node1.podB, 8080, Node1.podA, 40002, flags: synAck,
                                       seq: 0x7000_0000, ack: 0x1000_0001), on: Node1.vpB)
        #expect(reply.verdict == .forward(egress: Node1.vpA))
        expectFrame(reply.bytes, equals: tcpFrame(.nodeToPodA, Svc.localWeb, 80, Node1.podA, 40002, flags: synAck,
                                                  seq: 0x7000_0000, ack: 0x1000_0001, ttl: 63))
    }

    @Test("A second packet of a DNATed flow takes the conntrack path and is rewritten the same way")
    func establishedFlowFollowsConntrack() {
        var node = Node()
        _ = node.send(tcpFrame(.podAToNode, Node1.podA, 40003, Svc.web, 80), on: Node1.vpA)
        _ = node.send(tcpFrame(.node2ToNode, Svc.webBackend, 8080, Node1.podA, 40003, flags: synAck, ttl: 63),
                      on: Node1.eth0)
        let data = Array("GET / HTTP/1.1\r\nHost: web\r\n\r\n".utf8)
        let out = node.send(tcpFrame(.podAToNode, Node1.podA, 40003, Svc.web, 80, flags: [.ack, .psh],
                                     seq: 0x1000_0001, ack: 0x7000_0001, payload: data), on: Node1.vpA)
        #expect(out.verdict == .forward(egress: Node1.eth0))
        expectFrame(out.bytes, equals: tcpFrame(.nodeToNode2, Node1.podA, 40003, Svc.webBackend, 8080,
                                                flags: [.ack, .psh], seq: 0x1000_0001, ack: 0x7000_0001,
                                                payload: data, ttl: 63))
        #expect(out.trace.events.contains(where: { if case .conntrackHit(_, reply: false) = $0 { true } else { false } }))
        #expect(node.pipeline.counters.newFlows == 1)
    }

    @Test("A SYN carrying an IPv4 option (Router Alert, IHL 6) is DNATed with the option kept and both checksums right")
    func ipOptionsSurviveDNAT() {
        var node = Node()
        let routerAlert: [UInt8] = [0x94, 0x04, 0x00, 0x00]  // RFC 2113
        func syn(_ link: Link, _ dst: IPv4Address, _ dport: UInt16, ttl: UInt8) -> [UInt8] {
            PacketBuilder.frame(link.ethernet,
                                IPv4Fields(sourceAddress: Node1.podA, destinationAddress: dst, protocol: .tcp, timeToLive: ttl,
                                           identification: 0x2a2b, options: routerAlert),
                                .tcp(TCPFields(sourcePort: 40004, destinationPort: dport, sequenceNumber: 1, flags: .syn)))
        }
        let out = node.send(syn(.podAToNode, Svc.web, 80, ttl: 64), on: Node1.vpA)
        #expect(out.verdict == .forward(egress: Node1.eth0))
        expectFrame(out.bytes, equals: syn(.nodeToNode2, Svc.webBackend, 8080, ttl: 63))
    }

    @Test("A short UDP query padded to Ethernet's 60 bytes is DNATed with its padding kept and left out of the checksum")
    func paddedFrame() {
        var node = Node()
        func query(_ link: Link, _ dst: IPv4Address, ttl: UInt8) -> [UInt8] {
            PacketBuilder.frame(link.ethernet,
                                IPv4Fields(sourceAddress: Node1.podA, destinationAddress: dst, protocol: .udp, timeToLive: ttl),
                                .udp(UDPFields(sourcePort: 40005, destinationPort: 53, payload: [0x01])), padded: true)
        }
        let input = query(.podAToNode, Svc.dns, ttl: 64)
        #expect(input.count == 60)
        let out = node.send(input, on: Node1.vpA)
        #expect(out.verdict == .forward(egress: Node1.eth0))
        expectFrame(out.bytes, equals: query(.nodeToNode3, Svc.dnsBackend, ttl: 63))
    }

    @Test("SYN to a ClusterIP from node-2's host address (outside the cluster CIDR) is masqueraded to 172.18.0.11, as kube-proxy does for off-cluster sources")
    func clusterIPFromOffClusterSourceIsMasqueraded() throws {
        var node = Node()
        let out = node.send(tcpFrame(.node2ToNode, Node1.node2, 40006, Svc.localWeb, 80), on: Node1.eth0)
        let port = try #require(out.masqueradePort)
        #expect(out.trace.events.contains(.masquerade(source: Node1.podGateway, port: port, why: .offClusterToClusterIP)))
        #expect(out.verdict == .forward(egress: Node1.vpB))
        // The route to pod b is vp-b, so the masquerade source is vp-b's 10.244.1.1.
        expectFrame(out.bytes, equals: tcpFrame(.nodeToPodB, Node1.podGateway, port, Node1.podB, 8080, ttl: 63))
    }

    @Test("With masqueradeAll, even pod a's SYN to a ClusterIP leaves from 172.18.0.11 with a port from the SNAT range")
    func masqueradeAll() throws {
        var cluster = NodeFixture.cluster
        cluster.masqueradeAll = true
        var node = Node(state: NodeFixture.state.with(cluster: cluster, generation: 2))
        let out = node.send(tcpFrame(.podAToNode, Node1.podA, 40007, Svc.web, 80), on: Node1.vpA)
        let port = try #require(out.masqueradePort)
        #expect(out.trace.events.contains(.masquerade(source: Node1.address, port: port, why: .masqueradeAll)))
        expectFrame(out.bytes, equals: tcpFrame(.nodeToNode2, Node1.address, port, Svc.webBackend, 8080, ttl: 63))
    }

    @Test("A ping to a ClusterIP and an SCTP INIT to it are dropped as unsupported-protocol-to-service (kube-proxy does not answer either)")
    func nonTCPUDPToClusterIP() {
        var node = Node()
        let ping = PacketBuilder.frame(Link.podAToNode.ethernet,
                                       IPv4Fields(sourceAddress: Node1.podA, destinationAddress: Svc.web, protocol: .icmp),
                                       .icmp(.echoRequest(identifier: 0x0101, sequenceNumber: 1)))
        #expect(node.send(ping, on: Node1.vpA).verdict == .drop(.unsupportedProtocolToService))
        let sctp = PacketBuilder.frame(Link.podAToNode.ethernet,
                                       IPv4Fields(sourceAddress: Node1.podA, destinationAddress: Svc.web, protocol: .unknown(132)),
                                       .raw(.unknown(132), [UInt8](repeating: 0, count: 32)))
        #expect(node.send(sctp, on: Node1.vpA).verdict == .drop(.unsupportedProtocolToService))
        #expect(node.pipeline.counters.count(.unsupportedProtocolToService) == 2)
    }

    @Test("A stray RST from pod a to the sticky ClusterIP (no conntrack entry) is dropped without pinning pod a to a backend or trying SNAT ports")
    func strayRSTCreatesNothing() {
        var node = Node()
        let rst = node.send(tcpFrame(.podAToNode, Node1.podA, 40008, Svc.sticky, 80, flags: [.rst, .ack]), on: Node1.vpA)
        if case .drop(.tcpNotOpening) = rst.verdict {} else { Issue.record("stray RST not dropped: \(rst.verdict)") }
        #expect(node.pipeline.conntrack.count == 0)
        #expect(node.pipeline.affinity.count == 0)
        #expect(rst.backend == nil)
        // Nor does a stray FIN to a Service without endpoints get an ICMP error: only a
        // packet that could open a connection is refused (kube-proxy's REJECT rules match
        // conntrack state NEW only).
        let fin = node.send(tcpFrame(.podAToNode, Node1.podA, 40009, Svc.empty, 80, flags: [.fin, .ack]), on: Node1.vpA)
        if case .drop(.tcpNotOpening) = fin.verdict {} else { Issue.record("stray FIN not dropped: \(fin.verdict)") }
    }

    // MARK: NodePort

    @Test("SYN from an external client to NodePort 30080 (policy Cluster) is masqueraded to eth0's 172.18.0.11 with a port in 20000-29999 and DNATed to 10.244.2.20:8080; the reply restores client and NodePort")
    func nodePortClusterMasquerades() throws {
        var node = Node()
        let out = node.send(tcpFrame(.routerToNode, Node1.client, 51000, Node1.address, Svc.npClusterTCP), on: Node1.eth0)
        #expect(out.verdict == .forward(egress: Node1.eth0))
        let port = try #require(out.masqueradePort)
        #expect(Node1.snatRange.contains(port))
        // The pod sees a node address, not the client.
        expectFrame(out.bytes, equals: tcpFrame(.nodeToNode2, Node1.address, port, Svc.npClusterBackend, 8080, ttl: 63))
        #expect(out.trace.events.contains(.masquerade(source: Node1.address, port: port, why: .externalClusterPolicy)))

        let reply = node.send(tcpFrame(.node2ToNode, Svc.npClusterBackend, 8080, Node1.address, port, flags: synAck,
                                       seq: 0x7000_0000, ack: 0x1000_0001, ttl: 63), on: Node1.eth0)
        #expect(reply.verdict == .forward(egress: Node1.eth0))
        expectFrame(reply.bytes, equals: tcpFrame(.nodeToRouter, Node1.address, Svc.npClusterTCP, Node1.client, 51000,
                                                  flags: synAck, seq: 0x7000_0000, ack: 0x1000_0001, ttl: 62))
        #expect(node.pipeline.counters.snat == 1 && node.pipeline.counters.reverseNAT == 1)
    }

    @Test("SYN from an external client to NodePort 30081 (policy Local) goes to pod a on this node with the client address kept; the reply leaves from the NodePort")
    func nodePortLocalKeepsClient() {
        var node = Node()
        let out = node.send(tcpFrame(.routerToNode, Node1.client, 51001, Node1.address, Svc.npLocalPort), on: Node1.eth0)
        #expect(out.verdict == .forward(egress: Node1.vpA))
        expectFrame(out.bytes, equals: tcpFrame(.nodeToPodA, Node1.client, 51001, Node1.podA, 8080, ttl: 63))
        #expect(out.trace.events.contains(.backendSet(.local, candidates: 1)))
        #expect(out.trace.events.contains(.sourceKept))

        let reply = node.send(tcpFrame(.podAToNode, Node1.podA, 8080, Node1.client, 51001, flags: synAck), on: Node1.vpA)
        #expect(reply.verdict == .forward(egress: Node1.eth0))
        expectFrame(reply.bytes, equals: tcpFrame(.nodeToRouter, Node1.address, Svc.npLocalPort, Node1.client, 51001,
                                                  flags: synAck, ttl: 63))
    }

    @Test("SYN to NodePort 30082 (policy Local) on node-1, whose only endpoint is on node-2, is dropped as no-local-endpoints and counted")
    func nodePortLocalWithoutLocalEndpointDrops() {
        var node = Node()
        let out = node.send(tcpFrame(.routerToNode, Node1.client, 51002, Node1.address, Svc.npElsewherePort), on: Node1.eth0)
        #expect(out.verdict == .drop(.noLocalEndpoints))
        #expect(node.pipeline.counters.count(.noLocalEndpoints) == 1)
        #expect(node.pipeline.counters.dropped == 1)
        #expect(node.pipeline.conntrack.count == 0)
    }

    // MARK: Rejects

    @Test("SYN to a ClusterIP with no endpoints is rejected with ICMP port unreachable from 10.96.3.10 to pod a, quoting its header and 8 bytes, sent back on vp-a to pod a's MAC")
    func noEndpointsRejects() {
        var node = Node()
        let syn = tcpFrame(.podAToNode, Node1.podA, 40100, Svc.empty, 80)
        let out = node.send(syn, on: Node1.vpA)
        #expect(out.verdict == .reject(egress: Node1.vpA, length: 70, reason: .noEndpoints))
        let expected = icmpErrorFrame(.nodeToPodA, from: Svc.empty, to: Node1.podA, type: .destinationUnreachable,
                                      code: ICMPCode.DestinationUnreachable.portUnreachable,
                                      quote: Array(datagram(of: syn).prefix(28)), id: 1)
        expectFrame(out.bytes, equals: expected)
        #expect(node.pipeline.counters.rejected == 1)
        #expect(node.pipeline.counters.count(.noEndpoints) == 1)
        #expect(node.pipeline.conntrack.count == 0)
    }

    @Test("UDP to a ClusterIP on a port it does not expose is rejected as no-service-port with port unreachable from the ClusterIP")
    func unknownServicePortRejects() {
        var node = Node()
        let query = udpFrame(.podAToNode, Node1.podA, 40101, Svc.web, 81)
        let out = node.send(query, on: Node1.vpA)
        #expect(out.verdict == .reject(egress: Node1.vpA, length: 70, reason: .noServicePort))
        expectFrame(out.bytes, equals: icmpErrorFrame(.nodeToPodA, from: Svc.web, to: Node1.podA,
                                                      type: .destinationUnreachable,
                                                      code: ICMPCode.DestinationUnreachable.portUnreachable,
                                                      quote: Array(datagram(of: query).prefix(28)), id: 1))
        #expect(node.pipeline.counters.count(.noServicePort) == 1)
    }

    // MARK: LoadBalancer and external IPs

    @Test("SYN from an external client to LoadBalancer 192.0.2.10:443 (policy Local) reaches the local endpoint with the client address kept")
    func loadBalancerLocalKeepsClient() {
        var node = Node()
        let out = node.send(tcpFrame(.routerToNode, Node1.client, 51100, Svc.lbLocalVIP, 443), on: Node1.eth0)
        #expect(out.verdict == .forward(egress: Node1.vpA))
        expectFrame(out.bytes, equals: tcpFrame(.nodeToPodA, Node1.client, 51100, Node1.podA, 8443, ttl: 63))
        #expect(out.trace.events.contains(.backendSet(.local, candidates: 1)))
    }

    @Test("SYN from pod b to LoadBalancer 192.0.2.10:443 (policy Local) is balanced over all endpoints (kube-proxy's short-circuit) without masquerade")
    func loadBalancerFromPodUsesAllEndpoints() throws {
        var node = Node()
        let out = node.send(tcpFrame(.podBToNode, Node1.podB, 41100, Svc.lbLocalVIP, 443), on: Node1.vpB)
        #expect(out.trace.events.contains(.backendSet(.clusterForPodTraffic, candidates: 2)))
        let chosen = try #require(out.backend)
        #expect([Node1.podA, Svc.lbLocalRemoteBackend].contains(chosen.address) && chosen.port == 8443)
        let (link, egress) = linkTowards(chosen.address)
        #expect(out.verdict == .forward(egress: egress))
        expectFrame(out.bytes, equals: tcpFrame(link, Node1.podB, 41100, chosen.address, 8443, ttl: 63))
    }

    @Test("SYN to LoadBalancer 192.0.2.20:443 from outside loadBalancerSourceRanges is dropped as source-range-denied; from inside it is masqueraded and DNATed")
    func loadBalancerSourceRanges() throws {
        var node = Node()
        let denied = node.send(tcpFrame(.routerToNode, Node1.client, 51200, Svc.lbRangesVIP, 443), on: Node1.eth0)
        #expect(denied.verdict == .drop(.sourceRangeDenied))
        #expect(node.pipeline.counters.count(.sourceRangeDenied) == 1)

        let allowed = node.send(tcpFrame(.routerToNode, Node1.allowedClient, 51201, Svc.lbRangesVIP, 443), on: Node1.eth0)
        #expect(allowed.verdict == .forward(egress: Node1.eth0))
        let port = try #require(allowed.masqueradePort)
        #expect(Node1.snatRange.contains(port))
        expectFrame(allowed.bytes, equals: tcpFrame(.nodeToNode2, Node1.address, port, Svc.lbRangesBackend, 8443, ttl: 63))
    }

    @Test("SYN from an external client to externalIP 192.0.2.100:80 (policy Cluster) is masqueraded and DNATed to 10.244.3.40:8080 on node-3")
    func externalIPMasquerades() throws {
        var node = Node()
        let out = node.send(tcpFrame(.routerToNode, Node1.client, 51300, Svc.externalIP, 80), on: Node1.eth0)
        #expect(out.verdict == .forward(egress: Node1.eth0))
        let port = try #require(out.masqueradePort)
        #expect(Node1.snatRange.contains(port))
        expectFrame(out.bytes, equals: tcpFrame(.nodeToNode3, Node1.address, port, Svc.externalBackend, 8080, ttl: 63))

        let reply = node.send(tcpFrame(.node3ToNode, Svc.externalBackend, 8080, Node1.address, port, flags: synAck,
                                       ttl: 63), on: Node1.eth0)
        expectFrame(reply.bytes, equals: tcpFrame(.nodeToRouter, Svc.externalIP, 80, Node1.client, 51300,
                                                  flags: synAck, ttl: 62))
    }

    // MARK: Hairpin

    @Test("Pod a reaching its own Service is masqueraded to 10.244.1.1 and sent back to itself on vp-a; its answer returns from the ClusterIP")
    func hairpin() throws {
        var node = Node()
        let out = node.send(tcpFrame(.podAToNode, Node1.podA, 40200, Svc.selfService, 80), on: Node1.vpA)
        #expect(out.verdict == .forward(egress: Node1.vpA))
        let port = try #require(out.masqueradePort)
        #expect(Node1.snatRange.contains(port))
        #expect(out.trace.events.contains(.masquerade(source: Node1.podGateway, port: port, why: .hairpin)))
        expectFrame(out.bytes, equals: tcpFrame(.nodeToPodA, Node1.podGateway, port, Node1.podA, 8080, ttl: 63))

        let answer = node.send(tcpFrame(.podAToNode, Node1.podA, 8080, Node1.podGateway, port, flags: synAck),
                               on: Node1.vpA)
        #expect(answer.verdict == .forward(egress: Node1.vpA))
        expectFrame(answer.bytes, equals: tcpFrame(.nodeToPodA, Svc.selfService, 80, Node1.podA, 40200,
                                                   flags: synAck, ttl: 63))
    }

    // MARK: Session affinity

    @Test("ClientIP affinity: new flows from pod a with other source ports land on its first backend until 60 s pass without a new flow")
    func sessionAffinity() throws {
        var node = Node()
        let services = node.state.services
        let frontend = try #require(services.lookup(address: Svc.sticky, protocol: .tcp, port: 80))

        let first = node.send(tcpFrame(.podAToNode, Node1.podA, 41000, Svc.sticky, 80), on: Node1.vpA)
        let pinned = try #require(first.backend)
        #expect(Svc.stickyBackends.contains(pinned.address) && pinned.by == "Maglev")

        // Source ports that Maglev alone would send elsewhere, so landing on `pinned` is
        // the affinity table's doing.
        let elsewhere: [UInt16] = Array((41001...42000).map { UInt16($0) }.filter { port in
            let hash = flowHash(source: Node1.podA, destination: Svc.sticky, sourcePort: port,
                                destinationPort: 80, protocol: .tcp)
            return services.selectBackend(frontend: frontend, set: .cluster, hash: hash)?.address != pinned.address
        }.prefix(3))
        try #require(elsewhere.count == 3)

        // Each new flow refreshes the entry: 10 s, then 59 s later, are both within 60 s.
        for (step, port) in zip([UInt64(10), 59], elsewhere) {
            node.advance(seconds: step)
            let out = node.send(tcpFrame(.podAToNode, Node1.podA, port, Svc.sticky, 80), on: Node1.vpA)
            #expect(out.backend?.address == pinned.address && out.backend?.by == "session affinity (ClientIP)")
            let (link, egress) = linkTowards(pinned.address)
            #expect(out.verdict == .forward(egress: egress))
            expectFrame(out.bytes, equals: tcpFrame(link, Node1.podA, port, pinned.address, 8080, ttl: 63))
        }

        // 60 s after the last refresh the entry is gone: Maglev decides again.
        node.advance(seconds: UInt64(Svc.stickyTimeout))
        let late = node.send(tcpFrame(.podAToNode, Node1.podA, elsewhere[2], Svc.sticky, 80), on: Node1.vpA)
        let rebalanced = try #require(late.backend)
        #expect(rebalanced.by == "Maglev")
        #expect(rebalanced.address != pinned.address)
    }
}
