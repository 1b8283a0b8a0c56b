// UDP: golden deconstruct / construct, validation, zero-checksum rules and the setters
// in both checksum forms against a full recompute.

import FerryPacket
import Testing

@Suite("UDP")
struct UDPTests {
    /// 10.0.1.5:53000 → 10.96.0.10:53, data "query"; UDP checksum 0xcb3f.
    static let datagram: [UInt8] = [
        0x45, 0x00, 0x00, 0x21, 0x00, 0x02, 0x00, 0x00, 0x40, 0x11, 0x65, 0x5c, 0x0a, 0x00, 0x01, 0x05,
        0x0a, 0x60, 0x00, 0x0a, 0xcf, 0x08, 0x00, 0x35, 0x00, 0x0d, 0xcb, 0x3f, 0x71, 0x75, 0x65, 0x72,
        0x79,
    ]
    static let ip = IPv4Fields(
        sourceAddress: IPv4Address(10, 0, 1, 5), destinationAddress: IPv4Address(10, 96, 0, 10), protocol: .udp,
        timeToLive: 64, identification: 2, dontFragment: false)
    static let udp = UDPFields(sourcePort: 53000, destinationPort: 53, payload: Array("query".utf8))
    static let source = IPv4Address(10, 0, 1, 5)
    static let destination = IPv4Address(10, 96, 0, 10)

    @Test("Deconstruct a datagram")
    func deconstruct() throws {
        var bytes = Self.datagram
        try bytes.withUnsafeMutableBytes { buffer in
            let udp = try UDPView(checking: try IPv4View(checking: buffer).payload)
            #expect(udp.sourcePort == 53000)
            #expect(udp.destinationPort == 53)
            #expect(udp.length == 13)
            #expect(udp.checksum == 0xcb3f)
            #expect(udp.hasChecksum)
            #expect(Array(udp.payload) == Array("query".utf8))
            #expect(udp.isChecksumValid(source: Self.source, destination: Self.destination))
            #expect(udp.computedChecksum(source: Self.source, destination: Self.destination) == 0xcb3f)
            #expect(UDPFields(udp) == Self.udp)
        }
    }

    @Test("Construct the same datagram from fields")
    func construct() {
        #expect(hex(PacketBuilder.datagram(Self.ip, .udp(Self.udp))) == hex(Self.datagram))
    }

    @Test("Checking init rejects short headers and bad lengths; payload follows the length field")
    func rejects() throws {
        let d = Array(Self.datagram[20...])
        func check(_ bytes: [UInt8]) -> PacketError? { packetError(bytes) { _ = try UDPView(checking: $0) } }
        #expect(check(d) == nil)
        #expect(check(Array(d[..<7])) == .truncated)
        var short = d; short[5] = 7
        #expect(check(short) == .badUDPLength)
        var long = d; long[5] = 14
        #expect(check(long) == .badUDPLength)
        var shorterThanBuffer = d; shorterThanBuffer[5] = 10
        try shorterThanBuffer.withUnsafeMutableBytes { buffer in
            let udp = try UDPView(checking: buffer)
            #expect(Array(udp.payload) == Array("qu".utf8))
        }
    }

    /// A datagram whose data word is chosen so that its full checksum computes to 0.
    static func datagramSummingToZero() throws -> [UInt8] {
        var fields = Self.udp
        fields.payload = [0, 0]
        var bytes = PacketBuilder.datagram(Self.ip, .udp(fields), checksum: .zero)
        try bytes.withUnsafeMutableBytes { buffer in
            let udp = try UDPView(checking: try IPv4View(checking: buffer).payload)
            // With the data word w, the sum is s + w; w = ~s makes it 0xFFFF (-0), so the
            // checksum ~0xFFFF is 0.
            let s = InternetChecksum.fold(InternetChecksum.sum(udp.datagram, initial: InternetChecksum.pseudoHeaderSum(
                source: Self.source, destination: Self.destination, protocol: .udp, length: udp.length)))
            udp.payload[0] = UInt8(~s >> 8)
            udp.payload[1] = UInt8(~s & 0xFF)
        }
        return bytes
    }

    @Test("A computed 0 is written 0xFFFF: full computation, partial completion, incremental update")
    func zeroBecomesAllOnes() throws {
        var bytes = try Self.datagramSummingToZero()
        try bytes.withUnsafeMutableBytes { buffer in
            let udp = try UDPView(checking: try IPv4View(checking: buffer).payload)
            udp.updateChecksum(source: Self.source, destination: Self.destination)
            #expect(udp.checksum == 0xFFFF)
            #expect(udp.isChecksumValid(source: Self.source, destination: Self.destination))
            udp.updateChecksum(source: Self.source, destination: Self.destination, mode: .partial)
            udp.completePartialChecksum()
            #expect(udp.checksum == 0xFFFF)
            // Move the port away and back: the incremental path must land on 0xFFFF, not 0.
            udp.setSourcePort(1, checksum: .full)
            #expect(udp.checksum != 0xFFFF)
            udp.setSourcePort(53000, checksum: .full)
            #expect(udp.checksum == 0xFFFF)
        }
    }

    @Test("Checksum 0 means none: NAT setters leave it 0")
    func zeroMeansNone() throws {
        var bytes = PacketBuilder.datagram(Self.ip, .udp(Self.udp), checksum: .zero)
        try bytes.withUnsafeMutableBytes { buffer in
            let udp = try UDPView(checking: try IPv4View(checking: buffer).payload)
            #expect(!udp.hasChecksum)
            #expect(udp.isChecksumValid(source: .any, destination: .any))
            udp.updateChecksumForAddressChange(from: Self.destination, to: IPv4Address(10, 244, 2, 5), checksum: .full)
            udp.setSourcePort(1234, checksum: .full)
            udp.setDestinationPort(5353, checksum: .full)
            #expect(udp.checksum == 0)
            #expect(udp.sourcePort == 1234 && udp.destinationPort == 5353)
        }
    }

    @Test("NAT setters in both forms equal a recompute")
    func setters() throws {
        var rng = XorShift64Star(seed: 0x5EED)
        for _ in 0..<500 {
            let newSource = IPv4Address(UInt32(truncatingIfNeeded: rng.next()))
            let newDestination = IPv4Address(UInt32(truncatingIfNeeded: rng.next()))
            let ports = (UInt16(truncatingIfNeeded: rng.next()), UInt16(truncatingIfNeeded: rng.next()))
            for mode in [L4ChecksumMode.full, .partial] {
                var bytes = Self.datagram
                try bytes.withUnsafeMutableBytes { buffer in
                    let udp = try UDPView(checking: try IPv4View(checking: buffer).payload)
                    udp.updateChecksum(source: Self.source, destination: Self.destination, mode: mode)
                    udp.updateChecksumForAddressChange(from: Self.source, to: newSource, checksum: mode)
                    udp.updateChecksumForAddressChange(from: Self.destination, to: newDestination, checksum: mode)
                    udp.setSourcePort(ports.0, checksum: mode)
                    udp.setDestinationPort(ports.1, checksum: mode)
                    switch mode {
                    case .full:
                        #expect(udp.checksum == udp.computedChecksum(source: newSource, destination: newDestination))
                    case .partial:
                        let fresh = InternetChecksum.partialChecksum(
                            source: newSource, destination: newDestination, protocol: .udp, length: udp.length)
                        // 0 and 0xFFFF are the same one's complement value; NAT writes 0xFFFF.
                        #expect(udp.checksum == (fresh == 0 ? 0xFFFF : fresh))
                        udp.completePartialChecksum()
                    }
                    #expect(udp.isChecksumValid(source: newSource, destination: newDestination))
                }
            }
        }
    }
}
