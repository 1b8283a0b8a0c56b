// The Internet checksum primitives: RFC 1071 sums, RFC 1624 eq. 3, the partial form.

import FerryPacket
import Testing

@Suite("Internet checksum")
struct ChecksumTests {
    @Test("RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2")
    func rfc1071Example() {
        let bytes: [UInt8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]
        bytes.withUnsafeBytes { buffer in
            #expect(InternetChecksum.fold(InternetChecksum.sum(buffer)) == 0xddf2)
            #expect(InternetChecksum.checksum(buffer) == 0x220d)
        }
    }

    @Test("An odd trailing byte is the high half of a zero-padded word")
    func oddLength() {
        [UInt8(0xAB)].withUnsafeBytes { #expect(InternetChecksum.sum($0) == 0xAB00) }
        [UInt8(0x01), 0x02, 0x03].withUnsafeBytes { #expect(InternetChecksum.fold(InternetChecksum.sum($0)) == 0x0402) }
    }

    @Test("Fold carries end-around and never turns a nonzero sum into 0")
    func fold() {
        #expect(InternetChecksum.fold(0x0001_FFFF) == 0x0001)
        #expect(InternetChecksum.fold(0xFFFF_FFFF) == 0xFFFF)
        #expect(InternetChecksum.fold(0x0000_FFFF) == 0xFFFF)
        #expect(InternetChecksum.fold(0) == 0)
    }

    @Test("The 32-bit word sum equals a plain 16-bit word sum, for every length and alignment")
    func sumMatchesNaive() {
        var rng = XorShift64Star(seed: 42)
        for length in 0..<300 {
            let bytes = rng.bytes(length + 1)
            for start in 0...1 {
                let slice = Array(bytes[start..<(start + length)])
                var naive: UInt32 = 0
                var i = 0
                while i < slice.count {
                    naive += UInt32(slice[i]) << 8 | (i + 1 < slice.count ? UInt32(slice[i + 1]) : 0)
                    i += 2
                }
                slice.withUnsafeBytes { buffer in
                    #expect(InternetChecksum.fold(InternetChecksum.sum(buffer)) == InternetChecksum.fold(naive))
                }
            }
        }
    }

    @Test("Chaining sums through `initial` equals one sum over the concatenation")
    func chaining() {
        var rng = XorShift64Star(seed: 7)
        for _ in 0..<100 {
            let a = rng.bytes(Int(rng.next() % 40) * 2)
            let b = rng.bytes(Int(rng.next() % 41))
            let whole = (a + b).withUnsafeBytes { InternetChecksum.fold(InternetChecksum.sum($0)) }
            let chained = a.withUnsafeBytes { pa in
                b.withUnsafeBytes { pb in InternetChecksum.fold(InternetChecksum.sum(pb, initial: InternetChecksum.sum(pa))) }
            }
            #expect(whole == chained)
        }
    }

    @Test("RFC 1624 section 4 example: eq. 3 gives 0x0000 where eq. 2 would give 0xFFFF")
    func rfc1624Example() {
        #expect(InternetChecksum.updated(0xDD2F, replacing: UInt16(0x5555), with: 0x3285) == 0x0000)
    }

    @Test("RFC 1624 eq. 3 equals a full recompute for 16- and 32-bit fields")
    func incrementalEqualsFull() {
        var rng = XorShift64Star(seed: 0xFEED)
        for _ in 0..<2000 {
            var data = rng.bytes(2 * Int(2 + rng.next() % 30))
            let before = data.withUnsafeBytes { InternetChecksum.checksum($0) }
            let wide = rng.next() & 1 == 0 && data.count >= 4
            let word = Int(rng.next() % UInt64(data.count / 2 - (wide ? 1 : 0)))
            let offset = word * 2
            let incremental: UInt16
            if wide {
                let old = UInt32(data[offset]) << 24 | UInt32(data[offset + 1]) << 16 | UInt32(data[offset + 2]) << 8 | UInt32(data[offset + 3])
                let new = UInt32(truncatingIfNeeded: rng.next())
                data[offset] = UInt8(new >> 24); data[offset + 1] = UInt8(new >> 16 & 0xFF)
                data[offset + 2] = UInt8(new >> 8 & 0xFF); data[offset + 3] = UInt8(new & 0xFF)
                incremental = InternetChecksum.updated(before, replacing: old, with: new)
            } else {
                let old = UInt16(data[offset]) << 8 | UInt16(data[offset + 1])
                let new = UInt16(truncatingIfNeeded: rng.next())
                data[offset] = UInt8(new >> 8); data[offset + 1] = UInt8(new & 0xFF)
                incremental = InternetChecksum.updated(before, replacing: old, with: new)
            }
            let full = data.withUnsafeBytes { InternetChecksum.checksum($0) }
            // All-zero data is the one case where one's complement's two zeros differ.
            if data.contains(where: { $0 != 0 }) { #expect(incremental == full) }
        }
    }

    @Test("The partial form moves with pseudo-header fields like a plain sum")
    func partialUpdates() {
        var rng = XorShift64Star(seed: 99)
        for _ in 0..<2000 {
            let a = IPv4Address(UInt32(truncatingIfNeeded: rng.next()))
            let b = IPv4Address(UInt32(truncatingIfNeeded: rng.next()))
            let c = IPv4Address(UInt32(truncatingIfNeeded: rng.next()))
            let length = UInt16(truncatingIfNeeded: rng.next())
            let newLength = UInt16(truncatingIfNeeded: rng.next())
            var partial = InternetChecksum.partialChecksum(source: a, destination: b, protocol: .tcp, length: length)
            partial = InternetChecksum.updatedPartial(partial, replacing: b.value, with: c.value)
            partial = InternetChecksum.updatedPartial(partial, replacing: length, with: newLength)
            #expect(partial == InternetChecksum.partialChecksum(source: a, destination: c, protocol: .tcp, length: newLength))
        }
    }

    @Test("Pseudo-header sum: addresses, protocol and length as 16-bit words")
    func pseudoHeader() {
        // 10.0.1.5, 10.96.0.10, TCP, 30: 0x0a00 + 0x0105 + 0x0a60 + 0x000a + 6 + 30.
        let expected: UInt32 = 0x0a00 + 0x0105 + 0x0a60 + 0x000a + 6 + 30
        #expect(InternetChecksum.pseudoHeaderSum(
            source: IPv4Address(10, 0, 1, 5), destination: IPv4Address(10, 96, 0, 10), protocol: .tcp, length: 30) == expected)
    }

    @Test("Every PacketError has a stable raw value and an explanation")
    func packetErrors() {
        let raws = PacketError.allCases.map(\.rawValue)
        #expect(Set(raws).count == raws.count)
        #expect(PacketError(rawValue: 1) == .truncated)
        #expect(PacketError(rawValue: 4) == .badTotalLength)
        #expect(PacketError(rawValue: 12) == .icmpErrorNotPermitted)
        #expect(PacketError.allCases.allSatisfy { !$0.explanation.isEmpty })
    }
}
