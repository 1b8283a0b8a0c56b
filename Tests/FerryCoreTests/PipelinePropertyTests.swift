import FerryPacket
import Testing

@testable import FerryCore

// A seeded property test: tens of thousands of random and mutated frames through one
// pipeline on node-1. Whatever arrives, the pipeline must not trap, must give every frame
// a verdict that is counted once, must keep conntrack within its capacity, and whatever
// it forwards or rejects must be a frame a receiver accepts (valid IPv4 header checksum;
// a valid L4 checksum stays valid through NAT; an ICMP error is well formed).

private func ip(_ s: String) -> IPv4Address { IPv4Address(s)! }

/// A valid frame and where it arrives.
private struct Seed {
    var frame: [UInt8]
    var ingress: InterfaceIndex
    var partial = false
}

/// Valid frames from the golden cases: both directions of Service flows, plain routing,
/// ICMP errors, rejects, frames for the kernel.
private func seeds() -> [Seed] {
    let error = icmpErrorFrame(.node3ToNode, from: Svc.dnsBackend, to: Node1.podA, type: .destinationUnreachable,
                               code: 3, quote: Array(datagram(of: udpFrame(.nodeToNode3, Node1.podA, 40400,
                                                                           Svc.dnsBackend, 53, ttl: 62)).prefix(28)),
                               ttl: 63, id: 7)
    return [
        Seed(frame: tcpFrame(.podAToNode, Node1.podA, 40000, Svc.web, 80), ingress: Node1.vpA),
        Seed(frame: tcpFrame(.node2ToNode, Svc.webBackend, 8080, Node1.podA, 40000, flags: [.syn, .ack], ttl: 63),
             ingress: Node1.eth0),
        Seed(frame: tcpFrame(.podAToNode, Node1.podA, 40001, Svc.localWeb, 80, flags: [.ack, .psh],
                             payload: Array("GET / HTTP/1.1\r\n\r\n".utf8), checksum: .partial),
             ingress: Node1.vpA, partial: true),
        Seed(frame: udpFrame(.podAToNode, Node1.podA, 40400, Svc.dns, 53), ingress: Node1.vpA),
        Seed(frame: udpFrame(.node3ToNode, Svc.dnsBackend, 53, Node1.podA, 40400, ttl: 63), ingress: Node1.eth0),
        Seed(frame: udpFrame(.podAToNode, Node1.podA, 40402, Svc.dns, 53, checksum: .zero), ingress: Node1.vpA),
        Seed(frame: tcpFrame(.routerToNode, Node1.client, 51000, Node1.address, Svc.npClusterTCP), ingress: Node1.eth0),
        Seed(frame: udpFrame(.routerToNode, Node1.client, 51001, Node1.address, Svc.npClusterUDP), ingress: Node1.eth0),
        Seed(frame: tcpFrame(.routerToNode, Node1.client, 51002, Node1.address, Svc.npLocalPort), ingress: Node1.eth0),
        Seed(frame: tcpFrame(.routerToNode, Node1.client, 51003, Node1.address, Svc.npElsewherePort), ingress: Node1.eth0),
        Seed(frame: tcpFrame(.routerToNode, Node1.client, 51004, Svc.lbLocalVIP, 443), ingress: Node1.eth0),
        Seed(frame: tcpFrame(.routerToNode, Node1.allowedClient, 51005, Svc.lbRangesVIP, 443), ingress: Node1.eth0),
        Seed(frame: tcpFrame(.routerToNode, Node1.client, 51006, Svc.externalIP, 80), ingress: Node1.eth0),
        Seed(frame: tcpFrame(.podAToNode, Node1.podA, 40100, Svc.empty, 80), ingress: Node1.vpA),
        Seed(frame: tcpFrame(.podAToNode, Node1.podA, 40200, Svc.selfService, 80), ingress: Node1.vpA),
        Seed(frame: tcpFrame(.podAToNode, Node1.podA, 41000, Svc.sticky, 80), ingress: Node1.vpA),
        Seed(frame: tcpFrame(.podAToNode, Node1.podA, 40500, ip("10.244.2.99"), 5000), ingress: Node1.vpA),
        Seed(frame: udpFrame(.podAToNode, Node1.podA, 40502, ip("10.244.2.99"), 33434, ttl: 1), ingress: Node1.vpA),
        Seed(frame: tcpFrame(.podAToNode, Node1.podA, 40505, Node1.silentNeighbour, 10250), ingress: Node1.vpA),
        Seed(frame: error, ingress: Node1.eth0),
        Seed(frame: PacketBuilder.frame(Link.routerToNode.ethernet,
                                        IPv4Fields(sourceAddress: Node1.client, destinationAddress: Svc.web, protocol: .icmp),
                                        .icmp(.echoRequest(identifier: 9, sequenceNumber: 1))), ingress: Node1.eth0),
    ]
}

/// Offsets in an Ethernet + IPv4 frame of the fields whose mutation reaches deepest.
private let lengthFields = [14, 16, 17, 14 + 20 + 4, 14 + 20 + 5, 14 + 20 + 12]

private func header(_ b: UnsafeMutableRawBufferPointer) -> IPv4View? {
    guard b.count >= EthernetView.headerLength + IPv4View.minimumHeaderLength,
          b[12] == 0x08, b[13] == 0x00 else { return nil }
    return try? IPv4View(checking: UnsafeMutableRawBufferPointer(rebasing: b[EthernetView.headerLength...]))
}

/// Whether the frame's TCP/UDP/ICMP checksum verifies: nil when there is nothing to check
/// (no whole transport header, a fragment, UDP without a checksum, another protocol).
private func transportChecksumValid(_ frame: UnsafeMutableRawBufferPointer) -> Bool? {
    guard let ip = header(frame), !ip.isFragment else { return nil }
    switch ip.protocol {
    case .tcp:
        guard let t = try? TCPView(checking: ip.payload) else { return nil }
        return t.isChecksumValid(source: ip.sourceAddress, destination: ip.destinationAddress)
    case .udp:
        guard let u = try? UDPView(checking: ip.payload), u.hasChecksum else { return nil }
        return u.isChecksumValid(source: ip.sourceAddress, destination: ip.destinationAddress)
    case .icmp:
        guard let i = try? ICMPView(checking: ip.payload) else { return nil }
        return i.isChecksumValid
    default:
        return nil
    }
}

@Suite("Pipeline: random and mutated frames")
struct PipelinePropertyTests {
    @Test("40,000 random and mutated frames: no trap, one counted verdict each, conntrack within capacity, outputs a receiver accepts")
    func mutatedFrames() {
        let capacity = 64
        var node = Node(conntrackCapacity: capacity, snatRange: 20000...20063)
        var rng = SplitMix64(seed: 0x5EED_F0F0_2026)
        let bases = seeds()
        let ingresses = [Node1.eth0, Node1.vpA, Node1.vpB, Node1.lo, InterfaceIndex(9)]
        let total = 40_000
        var slot = [UInt8](repeating: 0, count: 2048)
        var verdicts = (forward: 0, reject: 0, pass: 0, drop: 0)
        var checkedL4 = 0

        for n in 0..<total {
            let seed = bases[Int(rng.next() % UInt64(bases.count))]
            var frame = seed.frame
            var ingress = seed.ingress
            let kind = rng.next() % 8
            switch kind {
            case 0:
                break  // the valid frame: builds flows the mutants then hit
            case 1, 2:
                // Bit flips anywhere.
                for _ in 0...(rng.next() % 4) {
                    let bit = Int(rng.next() % UInt64(frame.count * 8))
                    frame[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
                }
            case 3:
                frame = Array(frame.prefix(Int(rng.next() % UInt64(frame.count + 1))))
            case 4:
                // A length or header-length field set to a random value.
                let at = lengthFields[Int(rng.next() % UInt64(lengthFields.count))]
                if at < frame.count { frame[at] = UInt8(truncatingIfNeeded: rng.next()) }
            case 5:
                // Random bytes behind a valid Ethernet header addressed to the ingress.
                let body = (0..<Int(rng.next() % 120)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                frame = Array(frame.prefix(14)) + (rng.next() % 2 == 0 ? [0x45] : []) + body
            case 6:
                ingress = ingresses[Int(rng.next() % UInt64(ingresses.count))]
            default:
                // Flipped bits in the IP and transport headers, header checksum then made
                // right so that the mutant gets past ip_rcv's check.
                let bit = Int(rng.next() % UInt64(min(frame.count, 54) * 8 - 14 * 8)) + 14 * 8
                frame[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
                frame.withUnsafeMutableBytes { b in
                    if b.count >= 34, let ip = try? IPv4View(checking: UnsafeMutableRawBufferPointer(rebasing: b[14...])) {
                        ip.updateHeaderChecksum()
                    }
                }
            }
            if rng.next() % 16 == 0 { node.advance(seconds: rng.next() % 40) }

            slot.replaceSubrange(0..<frame.count, with: frame)
            for i in frame.count..<slot.count { slot[i] = 0 }
            let partial = seed.partial && kind != 5
            // Now and then the slot has no room past the frame: an ICMP error that does not
            // fit must not be written past it.
            let room = rng.next() % 8 == 0 ? frame.count : slot.count
            let (state, now) = (node.state, node.now)
            var inputL4Valid: Bool? = nil
            var tracer = NoTrace()
            let verdict = slot.withUnsafeMutableBytes { b -> Verdict in
                if !partial { inputL4Valid = transportChecksumValid(UnsafeMutableRawBufferPointer(rebasing: b[0..<frame.count])) }
                return node.pipeline.process(UnsafeMutableRawBufferPointer(rebasing: b[0..<room]), length: frame.count,
                                             info: FrameInfo(ingress: ingress, l4ChecksumPartial: partial),
                                             now: now, state: state, tracer: &tracer)
            }

            switch verdict {
            case .forward(let egress):
                verdicts.forward += 1
                #expect(state.interfaces[egress]?.isForwarding == true, "frame \(n): forwarded on \(egress)")
                slot.withUnsafeMutableBytes { b in
                    let out = UnsafeMutableRawBufferPointer(rebasing: b[0..<frame.count])
                    guard let ip = header(out) else {
                        Issue.record("frame \(n): forwarded frame has no valid IPv4 header")
                        return
                    }
                    #expect(ip.isHeaderChecksumValid, "frame \(n): forwarded with a bad IPv4 header checksum")
                    if inputL4Valid == true {
                        checkedL4 += 1
                        #expect(transportChecksumValid(out) == true, "frame \(n): a valid L4 checksum went bad")
                    }
                }
            case .reject(let egress, let length, _):
                verdicts.reject += 1
                #expect(egress == ingress)
                #expect(length >= 14 + 20 + 8 + 20 && length <= min(room, 14 + ICMPErrorWriter.maximumLength))
                slot.withUnsafeMutableBytes { b in
                    let out = UnsafeMutableRawBufferPointer(rebasing: b[0..<length])
                    #expect(header(out)?.isHeaderChecksumValid == true, "frame \(n): reject with a bad IPv4 header")
                    #expect(transportChecksumValid(out) == true, "frame \(n): reject with a bad ICMP checksum")
                }
            case .pass: verdicts.pass += 1
            case .drop: verdicts.drop += 1
            }
            #expect(node.pipeline.conntrack.count <= capacity)
        }

        let c = node.pipeline.counters
        #expect(c.received == UInt64(total))
        #expect(c.forwarded == UInt64(verdicts.forward) && c.rejected == UInt64(verdicts.reject))
        #expect(c.passed == UInt64(verdicts.pass) && c.dropped == UInt64(verdicts.drop))
        #expect(c.byReason.reduce(0, +) == c.rejected + c.dropped)
        // The run exercised every verdict and the checksum property on many frames.
        #expect(verdicts.forward > 1000 && verdicts.reject > 100 && verdicts.pass > 100 && verdicts.drop > 1000)
        #expect(checkedL4 > 1000)
    }
}
