// IPv4: golden deconstruct / construct, validation, and every checksum-updating setter
// against a full recompute.

import FerryPacket
import Testing

@Suite("IPv4")
struct IPv4Tests {
    /// 192.168.0.1 → 192.168.0.199, UDP, total length 115, DF, TTL 64, checksum 0xb861
    /// (the worked example commonly used for the IPv4 header checksum).
    static let header: [UInt8] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01,
        0xc0, 0xa8, 0x00, 0xc7,
    ]
    static let fields = IPv4Fields(
        sourceAddress: IPv4Address(192, 168, 0, 1), destinationAddress: IPv4Address(192, 168, 0, 199),
        protocol: .udp, timeToLive: 64, identification: 0, dontFragment: true)

    /// The header followed by its 95-octet payload.
    static var datagram: [UInt8] { header + (0..<95).map { UInt8($0) } }

    @Test("Deconstruct the header")
    func deconstruct() throws {
        var bytes = Self.datagram
        try bytes.withUnsafeMutableBytes { buffer in
            let ip = try IPv4View(checking: buffer)
            #expect(ip.version == 4)
            #expect(ip.internetHeaderLength == 5)
            #expect(ip.headerLength == 20)
            #expect(ip.typeOfService == 0)
            #expect(ip.totalLength == 115)
            #expect(ip.identification == 0)
            #expect(ip.dontFragment)
            #expect(!ip.moreFragments)
            #expect(ip.fragmentOffset == 0)
            #expect(!ip.isFragment)
            #expect(ip.timeToLive == 64)
            #expect(ip.protocol == .udp)
            #expect(ip.headerChecksum == 0xb861)
            #expect(ip.isHeaderChecksumValid)
            #expect(ip.computedHeaderChecksum == 0xb861)
            #expect(ip.sourceAddress == IPv4Address(192, 168, 0, 1))
            #expect(ip.destinationAddress == IPv4Address(192, 168, 0, 199))
            #expect(ip.options.count == 0)
            #expect(ip.payload.count == 95)
            #expect(ip.payload.first == 0 && ip.payload.last == 94)
            #expect(IPv4Fields(ip) == Self.fields)
        }
    }

    @Test("Construct the header from fields")
    func construct() {
        var out = [UInt8](repeating: 0xEE, count: 20)
        out.withUnsafeMutableBytes { Self.fields.emit(into: IPv4View(unchecked: $0), payloadLength: 95) }
        #expect(hex(out) == hex(Self.header))
    }

    @Test("Options: IHL 6 header with Router Alert, payload after it")
    func options() throws {
        let ip = IPv4Fields(
            sourceAddress: IPv4Address(10, 0, 0, 1), destinationAddress: IPv4Address(224, 0, 0, 22), protocol: .unknown(2),
            timeToLive: 1, options: [0x94, 0x04, 0x00, 0x00])
        var bytes = PacketBuilder.datagram(ip, .raw(.unknown(2), [1, 2, 3, 4, 5, 6, 7, 8]))
        #expect(bytes.count == 32)
        try bytes.withUnsafeMutableBytes { buffer in
            let view = try IPv4View(checking: buffer)
            #expect(view.internetHeaderLength == 6)
            #expect(Array(view.options) == [0x94, 0x04, 0x00, 0x00])
            #expect(Array(view.payload) == [1, 2, 3, 4, 5, 6, 7, 8])
            #expect(view.isHeaderChecksumValid)
            #expect(IPv4Fields(view) == ip)
        }
    }

    @Test("Payload stops at total length: Ethernet padding is cut off")
    func paddingCut() throws {
        let frame = PacketBuilder.frame(
            EthernetFields(destination: .broadcast, source: .zero),
            IPv4Fields(sourceAddress: IPv4Address(10, 0, 0, 1), destinationAddress: IPv4Address(10, 0, 0, 2), protocol: .udp),
            .udp(UDPFields(sourcePort: 1, destinationPort: 2, payload: [0xAB])), padded: true)
        #expect(frame.count == 60)
        var bytes = frame
        try bytes.withUnsafeMutableBytes { buffer in
            let eth = try EthernetView(checking: buffer)
            #expect(eth.payload.count == 46)
            let ip = try IPv4View(checking: eth.payload)
            #expect(ip.totalLength == 29)
            #expect(ip.payload.count == 9)
            let udp = try UDPView(checking: ip.payload)
            #expect(Array(udp.payload) == [0xAB])
            #expect(udp.isChecksumValid(source: ip.sourceAddress, destination: ip.destinationAddress))
        }
    }

    @Test("Checking init rejects truncation, bad version, bad IHL and bad total length")
    func rejects() {
        let good = Self.datagram
        func check(_ bytes: [UInt8]) -> PacketError? { packetError(bytes) { _ = try IPv4View(checking: $0) } }
        #expect(check(good) == nil)
        #expect(check(Array(good[..<19])) == .truncated)
        var v6 = good; v6[0] = 0x65
        #expect(check(v6) == .badVersion)
        var ihl4 = good; ihl4[0] = 0x44
        #expect(check(ihl4) == .badHeaderLength)
        var ihl15 = Array(good[..<40]); ihl15[0] = 0x4F; ihl15[3] = 40  // 60-octet header in 40 bytes
        #expect(check(ihl15) == .badHeaderLength)
        var shortTotal = good; shortTotal[2] = 0; shortTotal[3] = 19
        #expect(check(shortTotal) == .badTotalLength)
        var longTotal = good; longTotal[3] = 116
        #expect(check(longTotal) == .badTotalLength)
        // A buffer longer than the total length (padding) is fine.
        #expect(check(good + [0, 0, 0]) == nil)
    }

    @Test("Fragments are carried unless the caller rejects them")
    func fragments() throws {
        // MF set, offset 0 (first fragment); then offset 185 (1480 octets), MF clear (last).
        for (word, more, offset): (UInt16, Bool, UInt16) in [(0x2000, true, 0), (0x00B9, false, 185), (0x20B9, true, 185)] {
            var bytes = Self.datagram
            bytes[6] = UInt8(word >> 8)
            bytes[7] = UInt8(word & 0xFF)
            try bytes.withUnsafeMutableBytes { buffer in
                let ip = try IPv4View(checking: buffer)
                #expect(ip.isFragment)
                #expect(ip.moreFragments == more)
                #expect(ip.fragmentOffset == offset)
                #expect(!ip.dontFragment)
            }
            #expect(packetError(bytes) { _ = try IPv4View(checking: $0, rejectingFragments: true) } == .fragment)
        }
        #expect(packetError(Self.datagram) { _ = try IPv4View(checking: $0, rejectingFragments: true) } == nil)
    }

    @Test("Address setters update the header checksum as a full recompute would")
    func addressSetters() throws {
        var rng = XorShift64Star(seed: 0x1234_5678)
        for _ in 0..<500 {
            var bytes = Self.datagram
            let newSource = IPv4Address(UInt32(truncatingIfNeeded: rng.next()))
            let newDestination = IPv4Address(UInt32(truncatingIfNeeded: rng.next()))
            try bytes.withUnsafeMutableBytes { buffer in
                let ip = try IPv4View(checking: buffer)
                ip.setSourceAddressUpdatingChecksum(newSource)
                ip.setDestinationAddressUpdatingChecksum(newDestination)
                #expect(ip.sourceAddress == newSource)
                #expect(ip.destinationAddress == newDestination)
                let incremental = ip.headerChecksum
                ip.updateHeaderChecksum()
                #expect(incremental == ip.headerChecksum)
                #expect(ip.isHeaderChecksumValid)
            }
        }
    }

    @Test("TTL decrement updates the checksum incrementally (RFC 1812 5.3.1)")
    func decrementTTL() throws {
        for ttl in [UInt8(255), 128, 64, 2, 1] {
            var bytes = Self.datagram
            bytes[8] = ttl
            let fresh = try mutating(bytes) { try IPv4View(checking: $0).updateHeaderChecksum() }
            let decremented = try mutating(fresh) { buffer in
                let ip = try IPv4View(checking: buffer)
                #expect(ip.decrementTimeToLive() == ttl - 1)
            }
            let recomputed = try mutating(decremented) { try IPv4View(checking: $0).updateHeaderChecksum() }
            #expect(hex(decremented) == hex(recomputed))
            #expect(decremented[8] == ttl - 1)
        }
        // TTL 0 does not wrap around.
        var zero = Self.datagram
        zero[8] = 0
        let unchanged = try mutating(zero) { buffer in
            let ip = try IPv4View(checking: buffer)
            #expect(ip.decrementTimeToLive() == 0)
        }
        #expect(unchanged == zero)
    }

    @Test("Quoted header: total length may exceed the quote; payload clamps to it")
    func quotedHeader() throws {
        var quote = Array(Self.datagram[..<28])  // header + 8 octets of a 115-octet datagram
        #expect(packetError(quote) { _ = try IPv4View(checking: $0) } == .badTotalLength)
        try quote.withUnsafeMutableBytes { buffer in
            let ip = try IPv4View(checkingQuotedHeader: buffer)
            #expect(ip.totalLength == 115)
            #expect(ip.payload.count == 8)
        }
        #expect(packetError(Array(quote[..<19])) { _ = try IPv4View(checkingQuotedHeader: $0) } == .truncated)
    }
}
