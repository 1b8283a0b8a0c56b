// TCP header (RFC 9293 §3.1; flags CWR/ECE from RFC 3168).
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |          Source Port          |       Destination Port        |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                        Sequence Number                        |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                    Acknowledgment Number                      |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  Data |       |C|E|U|A|P|R|S|F|                               |
//  | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//  |       |       |R|E|G|K|H|T|N|N|                               |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |           Checksum            |         Urgent Pointer        |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                           [Options]                           |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

/// The TCP control bits (RFC 9293 §3.1, RFC 3168 §6.1).
public struct TCPFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
    public static let urg = TCPFlags(rawValue: 0x20)
    public static let ece = TCPFlags(rawValue: 0x40)
    public static let cwr = TCPFlags(rawValue: 0x80)
}

/// A TCP segment (header and data) read and written in place.
///
/// `bytes` is the IP payload, already bounded by the IP total length
/// (`IPv4View.payload`), so the segment length is `bytes.count`.
///
/// Validation contract: `init(unchecked:)` only wraps; the caller guarantees 20 bytes.
/// Once `init(checking:)` has returned, no accessor or setter traps; `options` and
/// `payload` clamp to the buffer. Never store the view: it lives inside a ring slot.
public struct TCPView {
    @usableFromInline enum Offset {
        @usableFromInline static let sourcePort = 0
        @usableFromInline static let destinationPort = 2
        @usableFromInline static let sequenceNumber = 4
        @usableFromInline static let acknowledgmentNumber = 8
        @usableFromInline static let dataOffset = 12
        @usableFromInline static let flags = 13
        @usableFromInline static let window = 14
        @usableFromInline static let checksum = 16
        @usableFromInline static let urgentPointer = 18
        @usableFromInline static let options = 20
    }

    public static let minimumHeaderLength = 20

    /// Offset of the checksum field, for `InternetChecksum.completePartial` and for
    /// packet sockets' csum_offset.
    public static let checksumOffset = 16

    public let bytes: UnsafeMutableRawBufferPointer

    @inlinable public init(unchecked bytes: UnsafeMutableRawBufferPointer) {
        self.bytes = bytes
    }

    /// Checks the fixed header is present and the data offset is within 5...count/4.
    @inlinable public init(checking bytes: UnsafeMutableRawBufferPointer) throws(PacketError) {
        guard bytes.count >= TCPView.minimumHeaderLength else { throw .truncated }
        let headerLength = Int(bytes[Offset.dataOffset] >> 4) &* 4
        guard headerLength >= TCPView.minimumHeaderLength, headerLength <= bytes.count else {
            throw .badDataOffset
        }
        self.bytes = bytes
    }

    // MARK: Fields

    /// Setting it does not touch the checksum; see `setSourcePort(_:checksum:)`.
    @inlinable public var sourcePort: UInt16 {
        get { bytes.networkUInt16(at: Offset.sourcePort) }
        nonmutating set { bytes.setNetworkUInt16(newValue, at: Offset.sourcePort) }
    }

    /// Setting it does not touch the checksum; see `setDestinationPort(_:checksum:)`.
    @inlinable public var destinationPort: UInt16 {
        get { bytes.networkUInt16(at: Offset.destinationPort) }
        nonmutating set { bytes.setNetworkUInt16(newValue, at: Offset.destinationPort) }
    }

    @inlinable public var sequenceNumber: UInt32 {
        get { bytes.networkUInt32(at: Offset.sequenceNumber) }
        nonmutating set { bytes.setNetworkUInt32(newValue, at: Offset.sequenceNumber) }
    }

    @inlinable public var acknowledgmentNumber: UInt32 {
        get { bytes.networkUInt32(at: Offset.acknowledgmentNumber) }
        nonmutating set { bytes.setNetworkUInt32(newValue, at: Offset.acknowledgmentNumber) }
    }

    /// Header length in 32-bit words.
    @inlinable public var dataOffset: UInt8 {
        get { bytes[Offset.dataOffset] >> 4 }
        nonmutating set { bytes[Offset.dataOffset] = (newValue & 0x0F) << 4 | (bytes[Offset.dataOffset] & 0x0F) }
    }

    /// Header length in octets (data offset × 4).
    @inlinable public var headerLength: Int { Int(dataOffset) &* 4 }

    @inlinable public var flags: TCPFlags {
        get { TCPFlags(rawValue: bytes[Offset.flags]) }
        nonmutating set { bytes[Offset.flags] = newValue.rawValue }
    }

    @inlinable public var window: UInt16 {
        get { bytes.networkUInt16(at: Offset.window) }
        nonmutating set { bytes.setNetworkUInt16(newValue, at: Offset.window) }
    }

    @inlinable public var checksum: UInt16 {
        get { bytes.networkUInt16(at: Offset.checksum) }
        nonmutating set { bytes.setNetworkUInt16(newValue, at: Offset.checksum) }
    }

    @inlinable public var urgentPointer: UInt16 {
        get { bytes.networkUInt16(at: Offset.urgentPointer) }
        nonmutating set { bytes.setNetworkUInt16(newValue, at: Offset.urgentPointer) }
    }

    /// The option octets, `20..<headerLength`. Raw, not parsed.
    @inlinable public var options: UnsafeMutableRawBufferPointer {
        bytes.clampedSlice(Offset.options, headerLength)
    }

    /// The data after the header.
    @inlinable public var payload: UnsafeMutableRawBufferPointer {
        bytes.clampedSlice(headerLength, bytes.count)
    }

    /// The segment length used in the pseudo-header.
    @inlinable public var segmentLength: UInt16 { UInt16(truncatingIfNeeded: bytes.count) }

    // MARK: Checksum: full computation (slow path)

    /// The full checksum over pseudo-header and segment, with the field counted as zero.
    @inlinable public func computedChecksum(source: IPv4Address, destination: IPv4Address) -> UInt16 {
        let pseudo = InternetChecksum.pseudoHeaderSum(
            source: source, destination: destination, protocol: .tcp, length: segmentLength)
        let withField = InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(bytes), initial: pseudo))
        return ~InternetChecksum.adjust(withField, removing: checksum, adding: 0)
    }

    /// True when the full checksum verifies (RFC 9293 §3.1).
    @inlinable public func isChecksumValid(source: IPv4Address, destination: IPv4Address) -> Bool {
        let pseudo = InternetChecksum.pseudoHeaderSum(
            source: source, destination: destination, protocol: .tcp, length: segmentLength)
        return InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(bytes), initial: pseudo)) == 0xFFFF
    }

    /// Writes the checksum in the given form, computed from scratch: `.full` is the
    /// complete checksum, `.partial` only the pseudo-header sum (as veth hands over
    /// locally generated segments).
    @inlinable public func updateChecksum(source: IPv4Address, destination: IPv4Address, mode: L4ChecksumMode = .full) {
        switch mode {
        case .full:
            checksum = 0
            checksum = InternetChecksum.checksum(
                bytes,
                initial: InternetChecksum.pseudoHeaderSum(
                    source: source, destination: destination, protocol: .tcp, length: segmentLength))
        case .partial:
            checksum = InternetChecksum.partialChecksum(
                source: source, destination: destination, protocol: .tcp, length: segmentLength)
        }
    }

    /// Turns a CHECKSUM_PARTIAL field (pseudo-header sum only) into the full checksum,
    /// as skb_checksum_help() does. Needed before re-sending a frame the ring flagged
    /// TP_STATUS_CSUMNOTREADY without a vnet header (KERNEL-NOTES.md).
    @inlinable public func completePartialChecksum() {
        InternetChecksum.completePartial(bytes, checksumOffset: Offset.checksum, protocol: .tcp)
    }

    // MARK: Checksum-updating setters (RFC 1624)

    /// Rewrites the source port. A full checksum is updated (RFC 1624 eq. 3); a partial
    /// one is left alone, because ports are not in the pseudo-header it holds.
    @inlinable public func setSourcePort(_ port: UInt16, checksum mode: L4ChecksumMode) {
        let old = sourcePort
        sourcePort = port
        if mode == .full { checksum = InternetChecksum.updated(checksum, replacing: old, with: port) }
    }

    /// Rewrites the destination port; see `setSourcePort(_:checksum:)`.
    @inlinable public func setDestinationPort(_ port: UInt16, checksum mode: L4ChecksumMode) {
        let old = destinationPort
        destinationPort = port
        if mode == .full { checksum = InternetChecksum.updated(checksum, replacing: old, with: port) }
    }

    /// Updates the checksum for an address rewritten in the IP header (the pseudo-header
    /// covers both addresses). Full: RFC 1624 eq. 3. Partial: the plain sum update of
    /// inet_proto_csum_replace4() with pseudohdr on CHECKSUM_PARTIAL.
    @inlinable public func updateChecksumForAddressChange(from old: IPv4Address, to new: IPv4Address, checksum mode: L4ChecksumMode) {
        switch mode {
        case .full: checksum = InternetChecksum.updated(checksum, replacing: old.value, with: new.value)
        case .partial: checksum = InternetChecksum.updatedPartial(checksum, replacing: old.value, with: new.value)
        }
    }

    /// Updates the checksum for a change of the pseudo-header length word only. It
    /// applies in both forms, like an address change; octets added to or removed from
    /// the segment itself must be accounted for separately (full form only).
    @inlinable public func updateChecksumForLengthChange(from old: UInt16, to new: UInt16, checksum mode: L4ChecksumMode) {
        switch mode {
        case .full: checksum = InternetChecksum.updated(checksum, replacing: old, with: new)
        case .partial: checksum = InternetChecksum.updatedPartial(checksum, replacing: old, with: new)
        }
    }
}
