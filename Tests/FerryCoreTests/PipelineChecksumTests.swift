import FerryPacket
import Testing

@testable import FerryCore

// Partial (CHECKSUM_PARTIAL) and absent L4 checksums through NAT. A pod's locally
// generated TCP and UDP cross its veth with only the pseudo-header sum in the checksum
// field (KERNEL-NOTES: TP_STATUS_CSUMNOTREADY). Through NAT the pipeline must apply only
// the address deltas to that sum (ports are not in the pseudo-header; the kernel's
// inet_proto_csum_replace4 with pseudohdr), then either complete it (no vnet header: the
// receiving namespace verifies it) or leave it partial (vnet header: NEEDS_CSUM travels
// with the frame). The expected frames come from the builder's `.full` and `.partial`
// forms, both computed from scratch.

/// Which translation the packet takes.
enum NATPath: String, Sendable {
    /// Pod → ClusterIP: destination rewritten only.
    case dnat = "DNAT to a ClusterIP"
    /// Pod → NodePort (policy Cluster) on the node's address: source and destination rewritten.
    case snat = "DNAT+masquerade through NodePort Cluster"
    /// A local backend's answer: source rewritten back to the ClusterIP.
    case reverse = "reverse NAT of a local backend's answer"
}

struct ChecksumCase: Sendable, CustomTestStringConvertible {
    var isTCP: Bool
    var path: NATPath
    var complete: Bool
    var testDescription: String {
        "partial \(isTCP ? "TCP" : "UDP") checksum, \(path.rawValue): "
            + (complete ? "completed, equals the builder's full checksum" : "left partial, equals the builder's partial form")
    }
}

private let checksumCases: [ChecksumCase] = [true, false].flatMap { isTCP in
    [NATPath.dnat, .snat, .reverse].flatMap { path in
        [true, false].map { ChecksumCase(isTCP: isTCP, path: path, complete: $0) }
    }
}

private let mss1460: [UInt8] = [0x02, 0x04, 0x05, 0xB4, 0x04, 0x02, 0x01, 0x01]  // MSS 1460, SACK permitted, NOPs
private let request = Array("GET /healthz HTTP/1.1\r\nHost: web\r\n\r\n".utf8)

/// A segment or datagram from `link` with the given tuple; the TCP flavour carries options
/// and data so that completion has to cover all of them.
private func frame(_ isTCP: Bool, _ link: Link, _ s: IPv4Address, _ sp: UInt16, _ d: IPv4Address, _ dp: UInt16,
                   flags: TCPFlags = [.syn], ttl: UInt8 = 64, checksum: TransportChecksum) -> [UInt8] {
    isTCP
        ? tcpFrame(link, s, sp, d, dp, flags: flags, options: mss1460, payload: request, ttl: ttl, checksum: checksum)
        : udpFrame(link, s, sp, d, dp, ttl: ttl, checksum: checksum)
}

@Suite("Pipeline: L4 checksums through NAT")
struct PipelineChecksumTests {
    @Test(arguments: checksumCases)
    func partialChecksumThroughNAT(_ c: ChecksumCase) throws {
        var node = Node(config: PipelineConfig(completePartialChecksums: c.complete))
        let want: TransportChecksum = c.complete ? .full : .partial
        let sport: UInt16 = c.isTCP ? 40600 : 40601
        let out: Sent
        let expected: [UInt8]
        switch c.path {
        case .dnat:
            let (vip, vport, backend, bport, link): (IPv4Address, UInt16, IPv4Address, UInt16, Link) =
                c.isTCP ? (Svc.web, 80, Svc.webBackend, 8080, .nodeToNode2) : (Svc.dns, 53, Svc.dnsBackend, 53, .nodeToNode3)
            out = node.send(frame(c.isTCP, .podAToNode, Node1.podA, sport, vip, vport, checksum: .partial),
                            on: Node1.vpA, partial: true)
            expected = frame(c.isTCP, link, Node1.podA, sport, backend, bport, ttl: 63, checksum: want)
        case .snat:
            let nodePort = c.isTCP ? Svc.npClusterTCP : Svc.npClusterUDP
            out = node.send(frame(c.isTCP, .podAToNode, Node1.podA, sport, Node1.address, nodePort, checksum: .partial),
                            on: Node1.vpA, partial: true)
            let port = try #require(out.masqueradePort)
            #expect(Node1.snatRange.contains(port))
            expected = frame(c.isTCP, .nodeToNode2, Node1.address, port, Svc.npClusterBackend, c.isTCP ? 8080 : 5514,
                             ttl: 63, checksum: want)
        case .reverse:
            // local-web's endpoint is pod b on this node, so its answer crosses vp-b partial too.
            let vport: UInt16 = c.isTCP ? 80 : 8125
            let bport: UInt16 = c.isTCP ? 8080 : 8125
            _ = node.send(frame(c.isTCP, .podAToNode, Node1.podA, sport, Svc.localWeb, vport, checksum: .full), on: Node1.vpA)
            out = node.send(frame(c.isTCP, .podBToNode, Node1.podB, bport, Node1.podA, sport, flags: [.syn, .ack],
                                  checksum: .partial), on: Node1.vpB, partial: true)
            expected = frame(c.isTCP, .nodeToPodA, Svc.localWeb, vport, Node1.podA, sport, flags: [.syn, .ack], ttl: 63,
                             checksum: want)
        }
        if case .forward = out.verdict {} else { Issue.record("not forwarded: \(out.verdict)") }
        expectFrame(out.bytes, equals: expected)
        #expect(node.pipeline.counters.checksumsCompleted == (c.complete ? 1 : 0))
        if c.complete {
            // What the receiving namespace checks.
            var bytes = out.bytes
            let valid = bytes.withUnsafeMutableBytes { b -> Bool in
                let ip = IPv4View(unchecked: UnsafeMutableRawBufferPointer(rebasing: b[EthernetView.headerLength...]))
                return c.isTCP
                    ? TCPView(unchecked: ip.payload).isChecksumValid(source: ip.sourceAddress, destination: ip.destinationAddress)
                    : UDPView(unchecked: ip.payload).isChecksumValid(source: ip.sourceAddress, destination: ip.destinationAddress)
            }
            #expect(valid)
        }
    }

    @Test("UDP with checksum 0 (none, RFC 768) keeps 0 through DNAT to a ClusterIP")
    func udpZeroChecksumThroughDNAT() {
        var node = Node()
        let out = node.send(udpFrame(.podAToNode, Node1.podA, 40610, Svc.dns, 53, checksum: .zero), on: Node1.vpA)
        #expect(out.verdict == .forward(egress: Node1.eth0))
        expectFrame(out.bytes, equals: udpFrame(.nodeToNode3, Node1.podA, 40610, Svc.dnsBackend, 53, ttl: 63,
                                                checksum: .zero))
    }

    @Test("UDP with checksum 0 keeps 0 through masquerade at NodePort 30514, and its answer keeps 0 through reverse NAT")
    func udpZeroChecksumThroughSNAT() throws {
        var node = Node()
        let out = node.send(udpFrame(.routerToNode, Node1.client, 40611, Node1.address, Svc.npClusterUDP, checksum: .zero),
                            on: Node1.eth0)
        let port = try #require(out.masqueradePort)
        expectFrame(out.bytes, equals: udpFrame(.nodeToNode2, Node1.address, port, Svc.npClusterBackend, 5514, ttl: 63,
                                                checksum: .zero))
        let answer = node.send(udpFrame(.node2ToNode, Svc.npClusterBackend, 5514, Node1.address, port, ttl: 63,
                                        checksum: .zero), on: Node1.eth0)
        expectFrame(answer.bytes, equals: udpFrame(.nodeToRouter, Node1.address, Svc.npClusterUDP, Node1.client, 40611,
                                                   ttl: 62, checksum: .zero))
    }

    @Test("A GSO frame's partial checksum is left partial even when completion is on (the kernel segments and sums it)")
    func gsoStaysPartial() {
        var node = Node()
        let syn = frame(true, .podAToNode, Node1.podA, 40620, Svc.web, 80, checksum: .partial)
        var slot = syn + [UInt8](repeating: 0, count: 2048 - syn.count)
        var trace = TraceLog()
        let state = node.state, now = node.now
        let verdict = slot.withUnsafeMutableBytes {
            node.pipeline.process($0, length: syn.count, info: FrameInfo(ingress: Node1.vpA, l4ChecksumPartial: true, isGSO: true),
                                  now: now, state: state, tracer: &trace)
        }
        #expect(verdict == .forward(egress: Node1.eth0))
        expectFrame(Array(slot[0..<syn.count]),
                    equals: frame(true, .nodeToNode2, Node1.podA, 40620, Svc.webBackend, 8080, ttl: 63, checksum: .partial))
        #expect(node.pipeline.counters.checksumsCompleted == 0)
    }
}
