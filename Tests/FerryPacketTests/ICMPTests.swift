// ICMP: golden echo, error messages and their quoted datagram, the identifier setter,
// quoted-packet NAT errors and the error writer's RFC 1812 rules.

import FerryPacket
import Testing

@Suite("ICMP")
struct ICMPTests {
    /// Echo request 10.0.1.5 → 10.96.0.10, identifier 0x1234, sequence 7, data "ping";
    /// ICMP checksum 0x06f4.
    static let echo: [UInt8] = [
        0x45, 0x00, 0x00, 0x20, 0x00, 0x03, 0x00, 0x00, 0x40, 0x01, 0x65, 0x6c, 0x0a, 0x00, 0x01, 0x05,
        0x0a, 0x60, 0x00, 0x0a, 0x08, 0x00, 0x06, 0xf4, 0x12, 0x34, 0x00, 0x07, 0x70, 0x69, 0x6e, 0x67,
    ]
    static let echoIP = IPv4Fields(
        sourceAddress: IPv4Address(10, 0, 1, 5), destinationAddress: IPv4Address(10, 96, 0, 10), protocol: .icmp,
        timeToLive: 64, identification: 3, dontFragment: false)
    static let client = IPv4Address(10, 0, 1, 5)
    static let vip = IPv4Address(10, 96, 0, 10)
    static let backend = IPv4Address(10, 244, 2, 5)

    @Test("Deconstruct an echo request")
    func deconstructEcho() throws {
        var bytes = Self.echo
        try bytes.withUnsafeMutableBytes { buffer in
            let icmp = try ICMPView(checking: try IPv4View(checking: buffer).payload)
            #expect(icmp.type == .echoRequest)
            #expect(!icmp.type.isError)
            #expect(icmp.code == 0)
            #expect(icmp.checksum == 0x06f4)
            #expect(icmp.isChecksumValid)
            #expect(icmp.computedChecksum == 0x06f4)
            #expect(icmp.identifier == 0x1234)
            #expect(icmp.sequenceNumber == 7)
            #expect(Array(icmp.payload) == Array("ping".utf8))
            #expect(ICMPFields(icmp) == .echoRequest(identifier: 0x1234, sequenceNumber: 7, payload: Array("ping".utf8)))
        }
    }

    @Test("Construct the same echo request from fields")
    func constructEcho() {
        let built = PacketBuilder.datagram(
            Self.echoIP, .icmp(.echoRequest(identifier: 0x1234, sequenceNumber: 7, payload: Array("ping".utf8))))
        #expect(hex(built) == hex(Self.echo))
    }

    @Test("setIdentifier updates the checksum as a recompute would")
    func identifier() throws {
        for id in [UInt16(0), 1, 0x1234, 0xFFFF, 0xEDCB, 0x8000] {
            var bytes = Self.echo
            try bytes.withUnsafeMutableBytes { buffer in
                let icmp = try ICMPView(checking: try IPv4View(checking: buffer).payload)
                icmp.setIdentifier(id)
                #expect(icmp.identifier == id)
                #expect(icmp.checksum == icmp.computedChecksum)
                #expect(icmp.isChecksumValid)
            }
        }
    }

    @Test("Checking init needs the 8-octet header")
    func rejects() {
        #expect(packetError(Array(Self.echo[20..<27])) { _ = try ICMPView(checking: $0) } == .truncated)
        #expect(packetError(Array(Self.echo[20..<28])) { _ = try ICMPView(checking: $0) } == nil)
    }

    /// The UDP datagram 10.0.1.5:53000 → 10.244.2.5:5353 that a backend refuses.
    static func offendingUDP() -> [UInt8] {
        PacketBuilder.datagram(
            IPv4Fields(sourceAddress: client, destinationAddress: backend, protocol: .udp, identification: 0x42),
            .udp(UDPFields(sourcePort: 53000, destinationPort: 5353, payload: Array("lookup".utf8))))
    }

    @Test("Port unreachable written for a UDP datagram quotes its header and 8 octets")
    func writerPortUnreachable() throws {
        var original = Self.offendingUDP()
        var out = [UInt8](repeating: 0, count: 100)
        let written = try original.withUnsafeMutableBytes { source in
            try out.withUnsafeMutableBytes { buffer in
                try ICMPErrorWriter.write(
                    type: .destinationUnreachable, code: ICMPCode.DestinationUnreachable.portUnreachable,
                    source: Self.backend, destination: Self.client, quoting: IPv4View(checking: source), into: buffer)
            }
        }
        #expect(written == 56)
        let snapshot = original
        try out.withUnsafeMutableBytes { buffer in
            let ip = try IPv4View(checking: UnsafeMutableRawBufferPointer(rebasing: buffer[..<written]))
            #expect(ip.timeToLive == 64)
            #expect(!ip.dontFragment)
            #expect(ip.protocol == .icmp)
            #expect(ip.sourceAddress == Self.backend && ip.destinationAddress == Self.client)
            #expect(ip.isHeaderChecksumValid)
            let icmp = try ICMPView(checking: ip.payload)
            #expect(icmp.type == .destinationUnreachable)
            #expect(icmp.code == 3)
            #expect(icmp.restOfHeader == 0)
            #expect(icmp.isChecksumValid)
            #expect(Array(icmp.quotedPacket) == Array(snapshot[..<28]))
            let quoted = try IPv4View(checkingQuotedHeader: icmp.quotedPacket)
            #expect(quoted.destinationAddress == Self.backend)
            // Only 8 of the 14 UDP octets are quoted: the ports are there, the length
            // field still describes the whole datagram, so the checking init refuses it.
            #expect(quoted.payload.count == 8)
            #expect(UDPView(unchecked: quoted.payload).destinationPort == 5353)
            #expect(packetError(Array(quoted.payload)) { _ = try UDPView(checking: $0) } == .badUDPLength)
        }
    }

    @Test("Fragmentation needed carries the next-hop MTU; other codes leave it 0")
    func writerMTU() throws {
        var original = Self.offendingUDP()
        for (code, expected): (UInt8, UInt16) in [(4, 1400), (3, 0)] {
            var out = [UInt8](repeating: 0xFF, count: 100)
            try original.withUnsafeMutableBytes { source in
                try out.withUnsafeMutableBytes { buffer in
                    let n = try ICMPErrorWriter.write(
                        type: .destinationUnreachable, code: code, nextHopMTU: 1400,
                        source: Self.backend, destination: Self.client, quoting: IPv4View(checking: source), into: buffer)
                    let icmp = try ICMPView(checking: IPv4View(checking: UnsafeMutableRawBufferPointer(rebasing: buffer[..<n])).payload)
                    #expect(icmp.nextHopMTU == expected)
                    #expect(icmp.isChecksumValid)
                }
            }
        }
    }

    @Test("The writer may build the error in the slot of the packet it answers")
    func writerInPlace() throws {
        let original = Self.offendingUDP()
        var expected = [UInt8](repeating: 0, count: 100)
        var copy = original
        let n = try copy.withUnsafeMutableBytes { source in
            try expected.withUnsafeMutableBytes { buffer in
                try ICMPErrorWriter.write(
                    type: .destinationUnreachable, code: 3, source: Self.backend, destination: Self.client,
                    quoting: IPv4View(checking: source), into: buffer)
            }
        }
        var slot = original + [UInt8](repeating: 0, count: 100)
        let m = try slot.withUnsafeMutableBytes { buffer in
            let ip = try IPv4View(checking: UnsafeMutableRawBufferPointer(rebasing: buffer[..<original.count]))
            return try ICMPErrorWriter.write(
                type: .destinationUnreachable, code: 3, source: Self.backend, destination: Self.client,
                quoting: ip, into: buffer)
        }
        #expect(m == n)
        #expect(hex(Array(slot[..<m])) == hex(Array(expected[..<n])))
    }

    @Test("RFC 1812 4.3.2.7: no error about errors, later fragments, multicast, broadcast or bad sources")
    func writerRefuses() throws {
        func refusal(_ datagram: [UInt8], type: ICMPType = .destinationUnreachable, size: Int = 100) -> PacketError? {
            var out = [UInt8](repeating: 0, count: size)
            return packetError(datagram) { source in
                _ = try out.withUnsafeMutableBytes { buffer in
                    try ICMPErrorWriter.write(
                        type: type, code: 3, source: Self.backend, destination: Self.client,
                        quoting: IPv4View(checking: source), into: buffer)
                }
            }
        }
        let udp = UDPFields(sourcePort: 1, destinationPort: 2, payload: [1, 2, 3])
        func datagram(from: IPv4Address = ICMPTests.client, to: IPv4Address = ICMPTests.backend, offset: UInt16 = 0) -> [UInt8] {
            PacketBuilder.datagram(
                IPv4Fields(sourceAddress: from, destinationAddress: to, protocol: .udp, dontFragment: false, fragmentOffset: offset),
                .udp(udp))
        }
        #expect(refusal(datagram()) == nil)
        #expect(refusal(datagram(offset: 185)) == .icmpErrorNotPermitted)
        #expect(refusal(datagram(to: IPv4Address(224, 0, 0, 251))) == .icmpErrorNotPermitted)
        #expect(refusal(datagram(to: .broadcast)) == .icmpErrorNotPermitted)
        #expect(refusal(datagram(from: .any)) == .icmpErrorNotPermitted)
        #expect(refusal(datagram(from: IPv4Address(127, 0, 0, 1))) == .icmpErrorNotPermitted)
        #expect(refusal(datagram(from: IPv4Address(240, 0, 0, 1))) == .icmpErrorNotPermitted)
        #expect(refusal(datagram(), type: .echoReply) == .notICMPError)
        #expect(refusal(datagram(), size: 55) == .bufferTooSmall)
        // An echo request may be answered with an error, an error may not.
        #expect(refusal(Self.echo) == nil)
        let unreachable = PacketBuilder.datagram(
            IPv4Fields(sourceAddress: Self.backend, destinationAddress: Self.client, protocol: .icmp),
            .icmp(ICMPFields(type: .destinationUnreachable, code: 3, payload: Array(Self.offendingUDP()[..<28]))))
        #expect(refusal(unreachable) == .icmpErrorNotPermitted)
    }

    @Test("Quoted-packet NAT refuses what it cannot translate, and writes nothing then")
    func rewriteRefuses() throws {
        func attempt(_ datagram: [UInt8]) -> (PacketError?, changed: Bool) {
            var copy = datagram
            var result: PacketError?
            copy.withUnsafeMutableBytes { buffer in
                do {
                    let ip = try IPv4View(checking: buffer)
                    try ICMPView(checking: ip.payload).rewriteQuotedPacket(
                        source: Self.client, destination: Self.vip, sourcePort: 53000, destinationPort: 53)
                } catch let e as PacketError {
                    result = e
                } catch {}
            }
            return (result, copy != datagram)
        }
        func icmpError(quoting quote: [UInt8], type: ICMPType = .destinationUnreachable) -> [UInt8] {
            PacketBuilder.datagram(
                IPv4Fields(sourceAddress: Self.backend, destinationAddress: Self.client, protocol: .icmp),
                .icmp(ICMPFields(type: type, code: 3, payload: quote)))
        }
        let quote = Array(Self.offendingUDP()[..<28])
        #expect(attempt(icmpError(quoting: quote)) == (nil, true))
        #expect(attempt(icmpError(quoting: quote, type: .echoReply)) == (.notICMPError, false))
        #expect(attempt(icmpError(quoting: Array(quote[..<27]))) == (.truncated, false))
        var v6 = quote; v6[0] = 0x60
        #expect(attempt(icmpError(quoting: v6)) == (.badVersion, false))
        var gre = quote; gre[9] = 47
        #expect(attempt(icmpError(quoting: gre)) == (.unsupportedProtocol, false))
        var laterFragment = quote; laterFragment[7] = 0x10
        #expect(attempt(icmpError(quoting: laterFragment)) == (.fragment, false))
    }
    @Test("A quoted UDP checksum of 0 (none) stays 0 through quoted-packet NAT")
    func rewriteKeepsZeroUDPChecksum() throws {
        let offending = PacketBuilder.datagram(
            IPv4Fields(sourceAddress: Self.client, destinationAddress: Self.backend, protocol: .udp),
            .udp(UDPFields(sourcePort: 53000, destinationPort: 5353, payload: Array("lookup".utf8))), checksum: .zero)
        var error = PacketBuilder.datagram(
            IPv4Fields(sourceAddress: Self.backend, destinationAddress: Self.client, protocol: .icmp),
            .icmp(ICMPFields(type: .destinationUnreachable, code: 3, payload: Array(offending[..<28]))))
        try error.withUnsafeMutableBytes { buffer in
            let icmp = try ICMPView(checking: try IPv4View(checking: buffer).payload)
            try icmp.rewriteQuotedPacket(source: Self.client, destination: Self.vip, sourcePort: 53000, destinationPort: 53)
            let quoted = try IPv4View(checkingQuotedHeader: icmp.quotedPacket)
            #expect(quoted.destinationAddress == Self.vip)
            #expect(quoted.isHeaderChecksumValid)
            let udp = UDPView(unchecked: quoted.payload)
            #expect(udp.destinationPort == 53)
            #expect(udp.checksum == 0)
            #expect(icmp.isChecksumValid)
        }
    }
}
