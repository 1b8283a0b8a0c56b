// Seeded property test: thousands of random and mutated frames through every checking
// view and every accessor of every view that checked. A trap would crash the run; the
// invariants below make wrong bounds fail as expectations, and the tallies make sure
// the mutations really reached each rejection path.

import FerryPacket
import Testing

@Suite("Random and mutated frames")
struct PropertyTests {
    static let frameCount = 6000

    /// Outcome of pushing one frame through the parsers.
    struct Tally {
        var accepted = 0
        var errors: [PacketError: Int] = [:]
        mutating func record(_ error: PacketError) { errors[error, default: 0] += 1 }
    }

    @Test("Every frame either parses or yields a PacketError, and checked views keep their bounds")
    func randomFrames() throws {
        var rng = XorShift64Star(seed: 0x00C0_FFEE_F00D)
        var tally = Tally()
        for i in 0..<Self.frameCount {
            let base = Self.randomFrame(&rng)
            if i % 4 == 0 {
                // Unmutated frames from the builder must parse all the way down; only the
                // fragment-rejecting variant may refuse the fragments among them.
                var t = Tally()
                Self.exercise(base, &t)
                #expect(t.errors.keys.allSatisfy { $0 == .fragment }, "builder frame rejected: \(t.errors) \(hex(base))")
                tally.errors[.fragment, default: 0] += t.errors[.fragment, default: 0]
                tally.accepted += t.accepted
            } else {
                Self.exercise(Self.mutate(base, &rng), &tally)
            }
        }
        #expect(tally.accepted > Self.frameCount / 4)
        for expected: PacketError in [.truncated, .badVersion, .badHeaderLength, .badTotalLength, .fragment,
                                      .badDataOffset, .badUDPLength, .unsupportedARPFormat] {
            #expect(tally.errors[expected, default: 0] > 0, "mutations never produced \(expected)")
        }
    }

    // MARK: Generation

    static func randomFrame(_ rng: inout XorShift64Star) -> [UInt8] {
        let ethernet = EthernetFields(destination: MACAddress(rng.next()), source: MACAddress(rng.next()))
        if rng.next() % 8 == 0 {
            return PacketBuilder.frame(ethernet, arp: ARPFields(
                operation: rng.next() & 1 == 0 ? .request : .reply,
                senderHardwareAddress: MACAddress(rng.next()), senderProtocolAddress: IPv4Address(UInt32(truncatingIfNeeded: rng.next())),
                targetHardwareAddress: MACAddress(rng.next()), targetProtocolAddress: IPv4Address(UInt32(truncatingIfNeeded: rng.next()))))
        }
        let optionWords = Int(rng.next() % 11)  // 0...10 words = up to 40 octets
        let ip = IPv4Fields(
            sourceAddress: IPv4Address(UInt32(truncatingIfNeeded: rng.next())),
            destinationAddress: IPv4Address(UInt32(truncatingIfNeeded: rng.next())),
            protocol: .tcp, timeToLive: rng.byte(), identification: UInt16(truncatingIfNeeded: rng.next()),
            dontFragment: rng.next() & 1 == 0, moreFragments: rng.next() % 8 == 0,
            fragmentOffset: rng.next() % 8 == 0 ? UInt16(rng.next() % 0x2000) : 0,
            typeOfService: rng.byte(), options: rng.bytes(optionWords * 4))
        let payload = rng.bytes(Int(rng.next() % 80))
        let transport: TransportFields
        switch rng.next() % 5 {
        case 0, 1:
            transport = .tcp(TCPFields(
                sourcePort: UInt16(truncatingIfNeeded: rng.next()), destinationPort: UInt16(truncatingIfNeeded: rng.next()),
                sequenceNumber: UInt32(truncatingIfNeeded: rng.next()), acknowledgmentNumber: UInt32(truncatingIfNeeded: rng.next()),
                flags: TCPFlags(rawValue: rng.byte()), window: UInt16(truncatingIfNeeded: rng.next()),
                options: rng.bytes(Int(rng.next() % 11) * 4), payload: payload))
        case 2:
            transport = .udp(UDPFields(
                sourcePort: UInt16(truncatingIfNeeded: rng.next()), destinationPort: UInt16(truncatingIfNeeded: rng.next()),
                payload: payload))
        case 3:
            if rng.next() & 1 == 0 {
                transport = .icmp(.echoRequest(
                    identifier: UInt16(truncatingIfNeeded: rng.next()), sequenceNumber: UInt16(truncatingIfNeeded: rng.next()),
                    payload: payload))
            } else {
                // An error quoting a random datagram's first octets (possibly not even IPv4).
                let quoted = PacketBuilder.datagram(
                    IPv4Fields(sourceAddress: IPv4Address(UInt32(truncatingIfNeeded: rng.next())),
                               destinationAddress: IPv4Address(UInt32(truncatingIfNeeded: rng.next())), protocol: .udp,
                               options: rng.bytes(Int(rng.next() % 3) * 4)),
                    rng.next() & 1 == 0
                        ? .udp(UDPFields(sourcePort: 1, destinationPort: 2, payload: payload))
                        : .tcp(TCPFields(sourcePort: 3, destinationPort: 4, flags: .syn, payload: payload)))
                let quoteLength = min(quoted.count, Int(rng.next() % 80))
                transport = .icmp(ICMPFields(
                    type: [ICMPType.destinationUnreachable, .timeExceeded, .parameterProblem][Int(rng.next() % 3)],
                    code: UInt8(rng.next() % 16), restOfHeader: UInt32(truncatingIfNeeded: rng.next()),
                    payload: Array(quoted[..<quoteLength])))
            }
        default:
            transport = .raw(.unknown(UInt8(truncatingIfNeeded: 18 + rng.next() % 200)), payload)
        }
        let checksum: TransportChecksum = [.full, .full, .partial, .zero][Int(rng.next() % 4)]
        return PacketBuilder.frame(ethernet, ip, transport, checksum: checksum, padded: rng.next() & 1 == 0)
    }

    static func mutate(_ frame: [UInt8], _ rng: inout XorShift64Star) -> [UInt8] {
        var f = frame
        let ipStart = EthernetView.headerLength
        let ihl = f.count > ipStart ? Int(f[ipStart] & 0x0F) * 4 : 20
        let l4 = ipStart + ihl
        for _ in 0..<(1 + Int(rng.next() % 3)) {
            switch rng.next() % 10 {
            case 0:  // truncate anywhere
                f = Array(f[..<Int(rng.next() % UInt64(f.count + 1))])
            case 1:  // version / IHL byte
                if f.count > ipStart { f[ipStart] = rng.byte() }
            case 2:  // IHL only, keeping version 4
                if f.count > ipStart { f[ipStart] = 0x40 | (rng.byte() & 0x0F) }
            case 3:  // total length
                if f.count > ipStart + 3 { f[ipStart + 2 + Int(rng.next() % 2)] = rng.byte() }
            case 4:  // flags / fragment offset
                if f.count > ipStart + 7 { f[ipStart + 6] = rng.byte() }
            case 5:  // TCP data offset
                if f.count > l4 + 12 { f[l4 + 12] = rng.byte() }
            case 6:  // UDP length (or TCP sequence number octets)
                if f.count > l4 + 5 { f[l4 + 4 + Int(rng.next() % 2)] = rng.byte() }
            case 7:  // ARP hardware/protocol lengths, or IP identification
                if f.count > ipStart + 5 { f[ipStart + 4 + Int(rng.next() % 2)] = rng.byte() }
            case 8:  // any byte
                if !f.isEmpty { f[Int(rng.next() % UInt64(f.count))] = rng.byte() }
            default:  // random garbage of random length
                f = rng.bytes(Int(rng.next() % 120))
            }
        }
        return f
    }

    // MARK: Exercise every view

    static func exercise(_ frame: [UInt8], _ tally: inout Tally) {
        var copy = frame
        copy.withUnsafeMutableBytes { buffer in
            do {
                let eth = try EthernetView(checking: buffer)
                _ = (eth.destination, eth.source, eth.payload.count)
                switch eth.etherType {
                case .arp:
                    let arp = try ARPView(checking: eth.payload)
                    _ = (arp.hardwareType, arp.protocolType, arp.operation, arp.senderHardwareAddress,
                         arp.senderProtocolAddress, arp.targetHardwareAddress, arp.targetProtocolAddress, arp.isEthernetIPv4)
                    _ = ARPFields(arp)
                case .ipv4:
                    try exerciseIPv4(eth.payload)
                default:
                    break
                }
                tally.accepted += 1
            } catch let error as PacketError {
                tally.record(error)
            } catch {
                Issue.record("unexpected error \(error)")
            }
        }
        // The fragment-rejecting variant: same frame, separate buffer.
        var again = frame
        again.withUnsafeMutableBytes { buffer in
            guard let eth = try? EthernetView(checking: buffer), eth.etherType == .ipv4 else { return }
            do throws(PacketError) {
                let ip = try IPv4View(checking: eth.payload, rejectingFragments: true)
                #expect(!ip.isFragment)
            } catch {
                if error == .fragment {
                    tally.record(error)
                    #expect((try? IPv4View(checking: eth.payload))?.isFragment == true)
                }
            }
        }
    }

    static func exerciseIPv4(_ bytes: UnsafeMutableRawBufferPointer) throws {
        let ip = try IPv4View(checking: bytes)
        #expect(ip.headerLength >= 20 && ip.headerLength <= Int(ip.totalLength) && Int(ip.totalLength) <= bytes.count)
        #expect(ip.payload.count == Int(ip.totalLength) - ip.headerLength)
        #expect(ip.options.count == ip.headerLength - 20)
        _ = (ip.version, ip.typeOfService, ip.differentiatedServices, ip.explicitCongestionNotification,
             ip.identification, ip.dontFragment, ip.moreFragments, ip.fragmentOffset, ip.isFragment,
             ip.timeToLive, ip.protocol, ip.headerChecksum, ip.sourceAddress, ip.destinationAddress, ip.pseudoHeaderSum)
        _ = IPv4Fields(ip)
        let validBefore = ip.isHeaderChecksumValid
        #expect(validBefore == (ip.computedHeaderChecksum == ip.headerChecksum) || ip.computedHeaderChecksum == 0 || ip.headerChecksum == 0)
        let source = ip.sourceAddress
        let destination = ip.destinationAddress

        // Writers on a checked view must not trap either.
        ip.decrementTimeToLive()
        ip.setSourceAddressUpdatingChecksum(IPv4Address(10, 0, 0, 1))
        ip.setDestinationAddressUpdatingChecksum(IPv4Address(10, 0, 0, 2))
        if validBefore { #expect(ip.isHeaderChecksumValid) }

        var errorOut = [UInt8](repeating: 0, count: ICMPErrorWriter.maximumLength)
        errorOut.withUnsafeMutableBytes { out in
            if let n = try? ICMPErrorWriter.write(
                type: .destinationUnreachable, code: 3, source: destination, destination: source, quoting: ip, into: out)
            {
                let written = UnsafeMutableRawBufferPointer(rebasing: out[..<n])
                #expect((try? IPv4View(checking: written))?.isHeaderChecksumValid == true)
                #expect((try? ICMPView(checking: IPv4View(checking: written).payload))?.isChecksumValid == true)
            }
        }

        switch ip.protocol {
        case .tcp:
            let tcp = try TCPView(checking: ip.payload)
            #expect(tcp.headerLength >= 20 && tcp.headerLength <= tcp.bytes.count)
            #expect(tcp.payload.count == tcp.bytes.count - tcp.headerLength)
            _ = (tcp.sourcePort, tcp.destinationPort, tcp.sequenceNumber, tcp.acknowledgmentNumber, tcp.dataOffset,
                 tcp.flags, tcp.window, tcp.checksum, tcp.urgentPointer, tcp.options.count, tcp.segmentLength)
            _ = TCPFields(tcp)
            _ = tcp.isChecksumValid(source: source, destination: destination)
            for mode in [L4ChecksumMode.full, .partial] {
                tcp.setSourcePort(1, checksum: mode)
                tcp.setDestinationPort(2, checksum: mode)
                tcp.updateChecksumForAddressChange(from: source, to: destination, checksum: mode)
            }
            tcp.completePartialChecksum()
        case .udp:
            let udp = try UDPView(checking: ip.payload)
            #expect(udp.payload.count == Int(udp.length) - 8)
            _ = (udp.sourcePort, udp.destinationPort, udp.length, udp.checksum, udp.hasChecksum, udp.datagram.count)
            _ = UDPFields(udp)
            _ = udp.isChecksumValid(source: source, destination: destination)
            for mode in [L4ChecksumMode.full, .partial] {
                udp.setSourcePort(1, checksum: mode)
                udp.setDestinationPort(2, checksum: mode)
                udp.updateChecksumForAddressChange(from: source, to: destination, checksum: mode)
            }
            udp.completePartialChecksum()
        case .icmp:
            let icmp = try ICMPView(checking: ip.payload)
            _ = (icmp.type, icmp.code, icmp.checksum, icmp.restOfHeader, icmp.identifier, icmp.sequenceNumber,
                 icmp.nextHopMTU, icmp.payload.count, icmp.isChecksumValid)
            _ = ICMPFields(icmp)
            let wasValid = icmp.isChecksumValid
            icmp.setIdentifier(0xABCD)
            if wasValid { #expect(icmp.isChecksumValid) }
            if icmp.type.isError {
                if let quoted = try? IPv4View(checkingQuotedHeader: icmp.quotedPacket) {
                    _ = (quoted.sourceAddress, quoted.destinationAddress, quoted.protocol, quoted.payload.count)
                }
                let before = icmp.isChecksumValid
                do {
                    try icmp.rewriteQuotedPacket(
                        source: IPv4Address(1, 2, 3, 4), destination: IPv4Address(5, 6, 7, 8), sourcePort: 9, destinationPort: 10)
                    if before { #expect(icmp.isChecksumValid) }
                } catch {
                    // Refusals are expected for mangled quotes; they leave the message alone.
                    #expect(icmp.isChecksumValid == before)
                }
            }
        case .unknown:
            _ = ip.payload.count
        }
    }
}
