// TCP: golden deconstruct / construct, validation, and the checksum-updating setters in
// both checksum forms against a full recompute.

import FerryPacket
import Testing

@Suite("TCP")
struct TCPTests {
    /// 10.0.1.5:40000 → 10.96.0.10:80 SYN, seq 0x01020304, window 64240, options
    /// MSS 1460 / NOP / window scale 7, data "hi"; TCP checksum 0x6ab7.
    static let datagram: [UInt8] = [
        0x45, 0x00, 0x00, 0x32, 0x00, 0x01, 0x00, 0x00, 0x40, 0x06, 0x65, 0x57, 0x0a, 0x00, 0x01, 0x05,
        0x0a, 0x60, 0x00, 0x0a, 0x9c, 0x40, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00,
        0x70, 0x02, 0xfa, 0xf0, 0x6a, 0xb7, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03, 0x07,
        0x68, 0x69,
    ]
    static let ip = IPv4Fields(
        sourceAddress: IPv4Address(10, 0, 1, 5), destinationAddress: IPv4Address(10, 96, 0, 10), protocol: .tcp,
        timeToLive: 64, identification: 1, dontFragment: false)
    static let tcp = TCPFields(
        sourcePort: 40000, destinationPort: 80, sequenceNumber: 0x0102_0304, acknowledgmentNumber: 0, flags: .syn,
        window: 64240, options: [0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03, 0x07], payload: Array("hi".utf8))

    @Test("Deconstruct a SYN with options and data")
    func deconstruct() throws {
        var bytes = Self.datagram
        try bytes.withUnsafeMutableBytes { buffer in
            let ip = try IPv4View(checking: buffer)
            let tcp = try TCPView(checking: ip.payload)
            #expect(tcp.sourcePort == 40000)
            #expect(tcp.destinationPort == 80)
            #expect(tcp.sequenceNumber == 0x0102_0304)
            #expect(tcp.acknowledgmentNumber == 0)
            #expect(tcp.dataOffset == 7)
            #expect(tcp.headerLength == 28)
            #expect(tcp.flags == .syn)
            #expect(tcp.window == 64240)
            #expect(tcp.checksum == 0x6ab7)
            #expect(tcp.urgentPointer == 0)
            #expect(Array(tcp.options) == [0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03, 0x07])
            #expect(Array(tcp.payload) == Array("hi".utf8))
            #expect(tcp.isChecksumValid(source: ip.sourceAddress, destination: ip.destinationAddress))
            #expect(tcp.computedChecksum(source: ip.sourceAddress, destination: ip.destinationAddress) == 0x6ab7)
            #expect(TCPFields(tcp) == Self.tcp)
            #expect(IPv4Fields(ip) == Self.ip)
        }
    }

    @Test("Construct the same datagram from fields")
    func construct() {
        #expect(hex(PacketBuilder.datagram(Self.ip, .tcp(Self.tcp))) == hex(Self.datagram))
    }

    @Test("Flags: every control bit reads back")
    func flags() throws {
        let all: [TCPFlags] = [.fin, .syn, .rst, .psh, .ack, .urg, .ece, .cwr]
        #expect(all.reduce(into: TCPFlags()) { $0.formUnion($1) }.rawValue == 0xFF)
        var bytes = Self.datagram
        try bytes.withUnsafeMutableBytes { buffer in
            let tcp = try TCPView(checking: try IPv4View(checking: buffer).payload)
            for flag in all {
                tcp.flags = [flag, .ack]
                #expect(tcp.flags.contains(flag) && tcp.flags.contains(.ack))
                #expect(tcp.dataOffset == 7)  // flags do not bleed into the data offset
            }
        }
    }

    @Test("Checking init rejects short segments and bad data offsets")
    func rejects() {
        let segment = Array(Self.datagram[20...])
        func check(_ bytes: [UInt8]) -> PacketError? { packetError(bytes) { _ = try TCPView(checking: $0) } }
        #expect(check(segment) == nil)
        #expect(check(Array(segment[..<19])) == .truncated)
        var offset4 = segment; offset4[12] = 0x40
        #expect(check(offset4) == .badDataOffset)
        var offset8 = segment; offset8[12] = 0x80  // 32-octet header in 30 octets
        #expect(check(offset8) == .badDataOffset)
        var offset15 = segment; offset15[12] = 0xF0
        #expect(check(offset15) == .badDataOffset)
    }

    @Test("NAT setters with a full checksum equal a full recompute")
    func fullSetters() throws {
        var rng = XorShift64Star(seed: 0xC0FFEE)
        for _ in 0..<500 {
            let newSource = IPv4Address(UInt32(truncatingIfNeeded: rng.next()))
            let newDestination = IPv4Address(UInt32(truncatingIfNeeded: rng.next()))
            let newSourcePort = UInt16(truncatingIfNeeded: rng.next())
            let newDestinationPort = UInt16(truncatingIfNeeded: rng.next())
            var bytes = Self.datagram
            try bytes.withUnsafeMutableBytes { buffer in
                let ip = try IPv4View(checking: buffer)
                let tcp = try TCPView(checking: ip.payload)
                let oldSource = ip.sourceAddress
                let oldDestination = ip.destinationAddress
                ip.setSourceAddressUpdatingChecksum(newSource)
                ip.setDestinationAddressUpdatingChecksum(newDestination)
                tcp.updateChecksumForAddressChange(from: oldSource, to: newSource, checksum: .full)
                tcp.updateChecksumForAddressChange(from: oldDestination, to: newDestination, checksum: .full)
                tcp.setSourcePort(newSourcePort, checksum: .full)
                tcp.setDestinationPort(newDestinationPort, checksum: .full)
                let incremental = tcp.checksum
                #expect(incremental == tcp.computedChecksum(source: newSource, destination: newDestination))
                #expect(tcp.isChecksumValid(source: newSource, destination: newDestination))
                #expect(ip.isHeaderChecksumValid)
            }
        }
    }

    @Test("NAT setters with a CHECKSUM_PARTIAL field equal a fresh partial sum, and complete to the full one")
    func partialSetters() throws {
        var rng = XorShift64Star(seed: 0xBADC0DE)
        for _ in 0..<500 {
            let newSource = IPv4Address(UInt32(truncatingIfNeeded: rng.next()))
            let newDestination = IPv4Address(UInt32(truncatingIfNeeded: rng.next()))
            var bytes = Self.datagram
            try bytes.withUnsafeMutableBytes { buffer in
                let ip = try IPv4View(checking: buffer)
                let tcp = try TCPView(checking: ip.payload)
                let oldSource = ip.sourceAddress
                let oldDestination = ip.destinationAddress
                tcp.updateChecksum(source: oldSource, destination: oldDestination, mode: .partial)
                tcp.updateChecksumForAddressChange(from: oldSource, to: newSource, checksum: .partial)
                tcp.updateChecksumForAddressChange(from: oldDestination, to: newDestination, checksum: .partial)
                let beforePorts = tcp.checksum
                tcp.setSourcePort(UInt16(truncatingIfNeeded: rng.next()), checksum: .partial)
                tcp.setDestinationPort(UInt16(truncatingIfNeeded: rng.next()), checksum: .partial)
                #expect(tcp.checksum == beforePorts)  // ports are not in the pseudo-header
                #expect(tcp.checksum == InternetChecksum.partialChecksum(
                    source: newSource, destination: newDestination, protocol: .tcp, length: tcp.segmentLength))
                tcp.completePartialChecksum()
                #expect(tcp.isChecksumValid(source: newSource, destination: newDestination))
            }
        }
    }

    @Test("Length change in the pseudo-header: both forms")
    func lengthChange() throws {
        var bytes = Self.datagram
        try bytes.withUnsafeMutableBytes { buffer in
            let ip = try IPv4View(checking: buffer)
            let tcp = try TCPView(checking: ip.payload)
            tcp.updateChecksum(source: ip.sourceAddress, destination: ip.destinationAddress, mode: .partial)
            tcp.updateChecksumForLengthChange(from: 30, to: 1480, checksum: .partial)
            #expect(tcp.checksum == InternetChecksum.partialChecksum(
                source: ip.sourceAddress, destination: ip.destinationAddress, protocol: .tcp, length: 1480))
            // Full form: removing the "hi" data word and shrinking the length by 2 together
            // equal a recompute over the shorter segment.
            tcp.updateChecksum(source: ip.sourceAddress, destination: ip.destinationAddress, mode: .full)
            var shorter = tcp.checksum
            shorter = InternetChecksum.updated(shorter, replacing: UInt16(0x6869), with: 0)
            shorter = InternetChecksum.updated(shorter, replacing: UInt16(30), with: 28)
            let short = TCPView(unchecked: UnsafeMutableRawBufferPointer(rebasing: ip.payload[0..<28]))
            #expect(shorter == short.computedChecksum(source: ip.sourceAddress, destination: ip.destinationAddress))
        }
    }
}
