// UDP header (RFC 768).
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |          Source Port          |       Destination Port        |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |            Length             |           Checksum            |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Over IPv4 a checksum of 0 means the sender computed none (RFC 768); a computed 0 is
// therefore transmitted as 0xFFFF. NAT keeps a 0 as 0 (net/netfilter/nf_nat_proto.c,
// udp_manip_pkt: the checksum is only updated when `hdr->check` is nonzero or the skb is
// CHECKSUM_PARTIAL, and a result of 0 becomes CSUM_MANGLED_0).

/// A UDP datagram read and written in place.
///
/// `bytes` is the IP payload (bounded by the IP total length). Validation contract:
/// `init(unchecked:)` only wraps; the caller guarantees 8 bytes. Once `init(checking:)`
/// has returned, no accessor or setter traps; `payload` and `datagram` clamp to the
/// buffer. Never store the view.
public struct UDPView {
    @usableFromInline enum Offset {
        @usableFromInline static let sourcePort = 0
        @usableFromInline static let destinationPort = 2
        @usableFromInline static let length = 4
        @usableFromInline static let checksum = 6
        @usableFromInline static let payload = 8
    }

    public static let headerLength = 8
    public static let checksumOffset = 6

    public let bytes: UnsafeMutableRawBufferPointer

    @inlinable public init(unchecked bytes: UnsafeMutableRawBufferPointer) {
        self.bytes = bytes
    }

    /// Checks the header is present and `8 <= length <= bytes.count`.
    @inlinable public init(checking bytes: UnsafeMutableRawBufferPointer) throws(PacketError) {
        guard bytes.count >= UDPView.headerLength else { throw .truncated }
        let length = Int(bytes.networkUInt16(at: Offset.length))
        guard length >= UDPView.headerLength, length <= bytes.count else { throw .badUDPLength }
        self.bytes = bytes
    }

    // MARK: Fields

    @inlinable public var sourcePort: UInt16 {
        get { bytes.networkUInt16(at: Offset.sourcePort) }
        nonmutating set { bytes.setNetworkUInt16(newValue, at: Offset.sourcePort) }
    }

    @inlinable public var destinationPort: UInt16 {
        get { bytes.networkUInt16(at: Offset.destinationPort) }
        nonmutating set { bytes.setNetworkUInt16(newValue, at: Offset.destinationPort) }
    }

    /// Header plus data, in octets.
    @inlinable public var length: UInt16 {
        get { bytes.networkUInt16(at: Offset.length) }
        nonmutating set { bytes.setNetworkUInt16(newValue, at: Offset.length) }
    }

    @inlinable public var checksum: UInt16 {
        get { bytes.networkUInt16(at: Offset.checksum) }
        nonmutating set { bytes.setNetworkUInt16(newValue, at: Offset.checksum) }
    }

    /// False when the sender sent no checksum (field 0, RFC 768).
    @inlinable public var hasChecksum: Bool { checksum != 0 }

    /// Header and data as the length field bounds them.
    @inlinable public var datagram: UnsafeMutableRawBufferPointer {
        bytes.clampedSlice(0, Int(length))
    }

    /// The data, `8..<length`.
    @inlinable public var payload: UnsafeMutableRawBufferPointer {
        bytes.clampedSlice(Offset.payload, Int(length))
    }

    // MARK: Checksum: full computation (slow path)

    /// The full checksum over pseudo-header and datagram, field counted as zero, with a
    /// computed 0 given as 0xFFFF (RFC 768).
    @inlinable public func computedChecksum(source: IPv4Address, destination: IPv4Address) -> UInt16 {
        let pseudo = InternetChecksum.pseudoHeaderSum(
            source: source, destination: destination, protocol: .udp, length: length)
        let withField = InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(datagram), initial: pseudo))
        let value = ~InternetChecksum.adjust(withField, removing: checksum, adding: 0)
        return value == 0 ? 0xFFFF : value
    }

    /// True when the checksum verifies or the sender sent none.
    @inlinable public func isChecksumValid(source: IPv4Address, destination: IPv4Address) -> Bool {
        guard hasChecksum else { return true }
        let pseudo = InternetChecksum.pseudoHeaderSum(
            source: source, destination: destination, protocol: .udp, length: length)
        return InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(datagram), initial: pseudo)) == 0xFFFF
    }

    /// Writes the checksum computed from scratch: `.full` (0 written as 0xFFFF) or
    /// `.partial` (pseudo-header sum only).
    @inlinable public func updateChecksum(source: IPv4Address, destination: IPv4Address, mode: L4ChecksumMode = .full) {
        switch mode {
        case .full:
            checksum = 0
            checksum = computedChecksum(source: source, destination: destination)
        case .partial:
            checksum = InternetChecksum.partialChecksum(
                source: source, destination: destination, protocol: .udp, length: length)
        }
    }

    /// Turns a CHECKSUM_PARTIAL field into the full checksum (a computed 0 becomes 0xFFFF).
    @inlinable public func completePartialChecksum() {
        InternetChecksum.completePartial(datagram, checksumOffset: Offset.checksum, protocol: .udp)
    }

    // MARK: Checksum-updating setters (RFC 1624)

    /// Rewrites the source port. A full checksum is updated (RFC 1624 eq. 3) unless it is
    /// 0 ("none"), which stays 0; a partial one is left alone (ports are not in the
    /// pseudo-header).
    @inlinable public func setSourcePort(_ port: UInt16, checksum mode: L4ChecksumMode) {
        let old = sourcePort
        sourcePort = port
        if mode == .full { updateFullChecksum(replacing: old, with: port) }
    }

    /// Rewrites the destination port; see `setSourcePort(_:checksum:)`.
    @inlinable public func setDestinationPort(_ port: UInt16, checksum mode: L4ChecksumMode) {
        let old = destinationPort
        destinationPort = port
        if mode == .full { updateFullChecksum(replacing: old, with: port) }
    }

    /// Updates the checksum for an address rewritten in the IP header. A full checksum of
    /// 0 stays 0. A partial one is always updated, as udp_manip_pkt() does for
    /// CHECKSUM_PARTIAL.
    @inlinable public func updateChecksumForAddressChange(from old: IPv4Address, to new: IPv4Address, checksum mode: L4ChecksumMode) {
        switch mode {
        case .full:
            guard hasChecksum else { return }
            let value = InternetChecksum.updated(checksum, replacing: old.value, with: new.value)
            checksum = value == 0 ? 0xFFFF : value
        case .partial:
            let value = InternetChecksum.updatedPartial(checksum, replacing: old.value, with: new.value)
            // CSUM_MANGLED_0, as udp_manip_pkt() does; 0 and 0xFFFF are the same one's
            // complement value, so completion gives the same result either way.
            checksum = value == 0 ? 0xFFFF : value
        }
    }

    @inlinable func updateFullChecksum(replacing old: UInt16, with new: UInt16) {
        guard hasChecksum else { return }
        let value = InternetChecksum.updated(checksum, replacing: old, with: new)
        checksum = value == 0 ? 0xFFFF : value
    }
}
