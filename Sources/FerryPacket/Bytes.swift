// Network-order loads and stores over raw packet memory. These are the only places
// where byte order is converted (STYLE.md rule 4); every view accessor goes through
// them. Loads are unaligned because headers sit at arbitrary offsets inside a ring
// slot (an IPv4 header after a 14-byte Ethernet header is only 2-byte aligned).

extension UnsafeMutableRawBufferPointer {
    @inlinable @inline(__always)
    func networkUInt16(at offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inlinable @inline(__always)
    func networkUInt32(at offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inlinable @inline(__always)
    func setNetworkUInt16(_ value: UInt16, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
    }

    @inlinable @inline(__always)
    func setNetworkUInt32(_ value: UInt32, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
    }

    /// A 48-bit MAC address stored first octet first.
    @inlinable @inline(__always)
    func macAddress(at offset: Int) -> MACAddress {
        let high = UInt64(networkUInt16(at: offset))
        let low = UInt64(networkUInt32(at: offset + 2))
        return MACAddress(high << 32 | low)
    }

    @inlinable @inline(__always)
    func setMACAddress(_ mac: MACAddress, at offset: Int) {
        setNetworkUInt16(UInt16(truncatingIfNeeded: mac.value >> 32), at: offset)
        setNetworkUInt32(UInt32(truncatingIfNeeded: mac.value), at: offset + 2)
    }

    /// The bytes in `start..<end`, clamped to the buffer so that a header field
    /// rewritten after the checking init cannot make a slice accessor trap.
    @inlinable @inline(__always)
    func clampedSlice(_ start: Int, _ end: Int) -> UnsafeMutableRawBufferPointer {
        let lower = Swift.min(Swift.max(start, 0), count)
        let upper = Swift.min(Swift.max(end, lower), count)
        return UnsafeMutableRawBufferPointer(rebasing: self[lower..<upper])
    }
}
