// The Internet checksum: RFC 1071 (full computation), RFC 1624 (incremental update)
// and the CHECKSUM_PARTIAL form Linux uses for locally generated TCP/UDP on veth.
//
// Two representations appear in packets:
//
// * A *full* checksum field holds `~fold(sum)`: the one's complement of the folded
//   one's complement sum of the pseudo-header and segment (RFC 793, RFC 768, RFC 791).
// * A *partial* checksum field (skb->ip_summed == CHECKSUM_PARTIAL) holds only
//   `fold(pseudo-header sum)`, uncomplemented: see tcp_v4_send_check() and
//   __tcp_v4_send_check() in net/ipv4/tcp_ipv4.c (`th->check = ~tcp_v4_check(...)`).
//   Whoever transmits on hardware (or skb_checksum_help() in net/core/dev.c) later sums
//   the segment starting with that value and writes the complement.
//
// Every update in this library goes through one helper, `adjust`, which is RFC 1624
// eq. 3 without its outer complements: `fold(S + ~m + m')`. A full checksum is
// updated as `~adjust(~HC, m, m')` (RFC 1624 eq. 3); a partial one, being an
// uncomplemented sum, as `adjust(S, m, m')`, which is exactly
// inet_proto_csum_replace4() in net/core/utils.c for CHECKSUM_PARTIAL with pseudohdr.

/// Internet checksum arithmetic. Nothing here allocates.
public enum InternetChecksum {
    /// The one's complement sum of `bytes` (RFC 1071 §4.1), added to `initial`.
    ///
    /// Words are big-endian 16-bit values; an odd trailing byte is padded with a zero
    /// low byte. The result is not folded to 16 bits yet (it fits in 32), so sums over
    /// several buffers can be chained through `initial`; call `fold` at the end.
    @inlinable
    public static func sum(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt32 {
        // 32-bit big-endian chunks summed in 64 bits: because 2^16 ≡ 1 (mod 2^16 - 1),
        // folding a sum of 32-bit words gives the same result as summing 16-bit words
        // (RFC 1071 §2(A)/(C): deferred carries, wider accumulators). 64 KB of input is at
        // most 2^14 words of < 2^32 each, far from overflowing 64 bits.
        var acc = UInt64(initial)
        let count = bytes.count
        var offset = 0
        while offset &+ 4 <= count {
            acc &+= UInt64(UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            offset &+= 4
        }
        if offset &+ 2 <= count {
            acc &+= UInt64(UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
            offset &+= 2
        }
        if offset < count {
            acc &+= UInt64(bytes[offset]) << 8
        }
        // Fold 64 → 32 bits, twice to absorb the carry of the first fold.
        acc = (acc & 0xFFFF_FFFF) &+ (acc >> 32)
        acc = (acc & 0xFFFF_FFFF) &+ (acc >> 32)
        return UInt32(truncatingIfNeeded: acc)
    }

    /// Convenience for mutable buffers.
    @inlinable
    public static func sum(_ bytes: UnsafeMutableRawBufferPointer, initial: UInt32 = 0) -> UInt32 {
        sum(UnsafeRawBufferPointer(bytes), initial: initial)
    }

    /// Folds a 32-bit one's complement sum to 16 bits with end-around carry (RFC 1071 §4.1).
    /// A nonzero input never folds to 0 (it folds to 0xFFFF, one's complement -0).
    @inlinable @inline(__always)
    public static func fold(_ sum: UInt32) -> UInt16 {
        var s = (sum & 0xFFFF) &+ (sum >> 16)
        s = (s & 0xFFFF) &+ (s >> 16)
        return UInt16(truncatingIfNeeded: s)
    }

    /// The full Internet checksum of `bytes`: `~fold(sum)` (RFC 1071).
    @inlinable
    public static func checksum(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt16 {
        ~fold(sum(bytes, initial: initial))
    }

    @inlinable
    public static func checksum(_ bytes: UnsafeMutableRawBufferPointer, initial: UInt32 = 0) -> UInt16 {
        ~fold(sum(UnsafeRawBufferPointer(bytes), initial: initial))
    }

    /// The sum of the IPv4 pseudo-header (RFC 793 §3.1, RFC 768): source, destination,
    /// zero and protocol, and the transport length (header plus data) in octets.
    @inlinable
    public static func pseudoHeaderSum(
        source: IPv4Address, destination: IPv4Address, protocol proto: IPProtocol, length: UInt16
    ) -> UInt32 {
        var s = source.value >> 16
        s &+= source.value & 0xFFFF
        s &+= destination.value >> 16
        s &+= destination.value & 0xFFFF
        s &+= UInt32(proto.rawValue)
        s &+= UInt32(length)
        return s
    }

    /// The CHECKSUM_PARTIAL field value: the folded, uncomplemented pseudo-header sum,
    /// as tcp_v4_send_check() leaves it (`~tcp_v4_check(len, saddr, daddr, 0)`).
    @inlinable
    public static func partialChecksum(
        source: IPv4Address, destination: IPv4Address, protocol proto: IPProtocol, length: UInt16
    ) -> UInt16 {
        fold(pseudoHeaderSum(source: source, destination: destination, protocol: proto, length: length))
    }

    // MARK: The one RFC 1624 helper

    /// `fold(sum + ~old + new)`: removes the 16-bit word `old` from the uncomplemented
    /// one's complement sum `sum` and adds `new`. One's complement subtraction is
    /// addition of the complement (RFC 1624 §3).
    @inlinable @inline(__always)
    public static func adjust(_ sum: UInt16, removing old: UInt16, adding new: UInt16) -> UInt16 {
        fold(UInt32(sum) &+ UInt32(~old) &+ UInt32(new))
    }

    /// `adjust` for a 32-bit field (an IPv4 address, a sequence number): both halves.
    @inlinable @inline(__always)
    public static func adjust(_ sum: UInt16, removing old: UInt32, adding new: UInt32) -> UInt16 {
        fold(
            UInt32(sum)
                &+ UInt32(~UInt16(truncatingIfNeeded: old >> 16)) &+ UInt32(~UInt16(truncatingIfNeeded: old))
                &+ (new >> 16) &+ (new & 0xFFFF))
    }

    // MARK: Full checksums: RFC 1624 eq. 3

    /// `HC' = ~(~HC + ~m + m')` (RFC 1624 eq. 3) for a 16-bit field changing from `old`
    /// to `new` under the full checksum `checksum`.
    @inlinable @inline(__always)
    public static func updated(_ checksum: UInt16, replacing old: UInt16, with new: UInt16) -> UInt16 {
        ~adjust(~checksum, removing: old, adding: new)
    }

    /// RFC 1624 eq. 3 for a 32-bit field.
    @inlinable @inline(__always)
    public static func updated(_ checksum: UInt16, replacing old: UInt32, with new: UInt32) -> UInt16 {
        ~adjust(~checksum, removing: old, adding: new)
    }

    // MARK: Partial checksums (CHECKSUM_PARTIAL)

    /// The partial field after a pseudo-header word changes: a plain one's complement
    /// sum update, `fold(S + ~old + new)`, as inet_proto_csum_replace2/4() do for
    /// CHECKSUM_PARTIAL with `pseudohdr` (net/core/utils.c).
    @inlinable @inline(__always)
    public static func updatedPartial(_ partial: UInt16, replacing old: UInt16, with new: UInt16) -> UInt16 {
        adjust(partial, removing: old, adding: new)
    }

    /// `updatedPartial` for a 32-bit pseudo-header field (an address).
    @inlinable @inline(__always)
    public static func updatedPartial(_ partial: UInt16, replacing old: UInt32, with new: UInt32) -> UInt16 {
        adjust(partial, removing: old, adding: new)
    }

    /// Completes a CHECKSUM_PARTIAL transport checksum in place, as skb_checksum_help()
    /// (net/core/dev.c) does before a packet leaves without offload: sums `segment` (the
    /// whole TCP/UDP header plus data) while the field at `checksumOffset` still holds the
    /// pseudo-header sum, then writes the complement of the fold.
    ///
    /// For UDP a computed 0 is written as 0xFFFF, because 0 means "no checksum"
    /// (RFC 768). For TCP a 0 stays 0 (a valid checksum; 0xFFFF would be equally valid).
    /// - Precondition: `checksumOffset + 2 <= segment.count` (the views guarantee it).
    @inlinable
    public static func completePartial(
        _ segment: UnsafeMutableRawBufferPointer, checksumOffset: Int, protocol proto: IPProtocol
    ) {
        var value = ~fold(sum(UnsafeRawBufferPointer(segment)))
        if value == 0, proto == .udp { value = 0xFFFF }
        segment.setNetworkUInt16(value, at: checksumOffset)
    }
}

/// Which representation a transport checksum field holds (see `InternetChecksum`).
public enum L4ChecksumMode: Hashable, Sendable {
    /// A complete checksum over pseudo-header, header and data.
    case full
    /// The CHECKSUM_PARTIAL form: only the folded pseudo-header sum, uncomplemented
    /// (veth's locally generated TCP, flagged TP_STATUS_CSUMNOTREADY on the ring).
    case partial
}
