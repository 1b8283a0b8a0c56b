// IPv4 header (RFC 791 §3.1).
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |Version|  IHL  |   DSCP    |ECN|          Total Length         |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |         Identification        |Flags|      Fragment Offset    |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  Time to Live |    Protocol   |         Header Checksum       |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                       Source Address                          |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                    Destination Address                        |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                    Options                    |    Padding    |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Flags: bit 0 reserved, bit 1 DF (don't fragment), bit 2 MF (more fragments).
// The Type of Service octet is DSCP (RFC 2474) and ECN (RFC 3168).

/// An IPv4 header and its payload, read and written in place.
///
/// Validation contract: `init(unchecked:)` only wraps; the caller guarantees at least
/// 20 bytes. Once `init(checking:)` (or `init(checkingQuotedHeader:)`) has returned, no
/// accessor or setter traps. `options` and `payload` clamp to the buffer, so they stay
/// safe even after `headerLength` or `totalLength` is rewritten. The view never owns or
/// outlives its buffer (a ring slot): do not store it.
public struct IPv4View {
    @usableFromInline enum Offset {
        @usableFromInline static let versionAndIHL = 0
        @usableFromInline static let typeOfService = 1
        @usableFromInline static let totalLength = 2
        @usableFromInline static let identification = 4
        @usableFromInline static let flagsAndFragmentOffset = 6
        @usableFromInline static let timeToLive = 8
        @usableFromInline static let `protocol` = 9
        @usableFromInline static let headerChecksum = 10
        @usableFromInline static let sourceAddress = 12
        @usableFromInline static let destinationAddress = 16
        @usableFromInline static let options = 20
    }

    @usableFromInline enum Flag {
        @usableFromInline static let dontFragment: UInt16 = 0x4000
        @usableFromInline static let moreFragments: UInt16 = 0x2000
        @usableFromInline static let fragmentOffsetMask: UInt16 = 0x1FFF
    }

    /// The header without options: IHL 5.
    public static let minimumHeaderLength = 20
    /// IHL is 4 bits of 32-bit words: at most 60 octets.
    public static let maximumHeaderLength = 60

    /// The buffer from the first header byte to the end of the slot (it may extend past
    /// `totalLength`, e.g. Ethernet padding).
    public let bytes: UnsafeMutableRawBufferPointer

    /// Wraps `bytes` without looking at it. The caller guarantees `bytes.count >= 20`.
    @inlinable public init(unchecked bytes: UnsafeMutableRawBufferPointer) {
        self.bytes = bytes
    }

    /// Wraps `bytes` after checking version, IHL and total length against the buffer.
    ///
    /// Fragments pass unless `rejectingFragments` is true: plain routing carries them,
    /// but NAT needs the transport ports, which only a whole datagram is sure to have.
    @inlinable
    public init(checking bytes: UnsafeMutableRawBufferPointer, rejectingFragments: Bool = false) throws(PacketError) {
        guard bytes.count >= IPv4View.minimumHeaderLength else { throw .truncated }
        let first = bytes[Offset.versionAndIHL]
        guard first >> 4 == 4 else { throw .badVersion }
        let headerLength = Int(first & 0x0F) &* 4
        guard headerLength >= IPv4View.minimumHeaderLength, headerLength <= bytes.count else {
            throw .badHeaderLength
        }
        let totalLength = Int(bytes.networkUInt16(at: Offset.totalLength))
        guard totalLength >= headerLength, totalLength <= bytes.count else { throw .badTotalLength }
        self.bytes = bytes
        if rejectingFragments, isFragment { throw .fragment }
    }

    /// Wraps the IPv4 header quoted inside an ICMP error (RFC 792): checks version and
    /// IHL only, because the quote holds just the header and the first 8 payload octets
    /// while `totalLength` still describes the original datagram. `payload` then clamps
    /// to what was quoted.
    @inlinable
    public init(checkingQuotedHeader bytes: UnsafeMutableRawBufferPointer) throws(PacketError) {
        guard bytes.count >= IPv4View.minimumHeaderLength else { throw .truncated }
        let first = bytes[Offset.versionAndIHL]
        guard first >> 4 == 4 else { throw .badVersion }
        let headerLength = Int(first & 0x0F) &* 4
        guard headerLength >= IPv4View.minimumHeaderLength, headerLength <= bytes.count else {
            throw .badHeaderLength
        }
        self.bytes = bytes
    }

    // MARK: Fields

    @inlinable public var version: UInt8 {
        get { bytes[Offset.versionAndIHL] >> 4 }
        nonmutating set { bytes[Offset.versionAndIHL] = newValue << 4 | (bytes[Offset.versionAndIHL] & 0x0F) }
    }

    /// IHL: header length in 32-bit words.
    @inlinable public var internetHeaderLength: UInt8 {
        get { bytes[Offset.versionAndIHL] & 0x0F }
        nonmutating set { bytes[Offset.versionAndIHL] = (bytes[Offset.versionAndIHL] & 0xF0) | (newValue & 0x0F) }
    }

    /// Header length in octets (IHL × 4).
    @inlinable public var headerLength: Int { Int(internetHeaderLength) &* 4 }

    /// The whole Type of Service octet (DSCP and ECN).
    @inlinable public var typeOfService: UInt8 {
        get { bytes[Offset.typeOfService] }
        nonmutating set { bytes[Offset.typeOfService] = newValue }
    }

    /// Differentiated Services Code Point (RFC 2474): the upper 6 bits of TOS.
    @inlinable public var differentiatedServices: UInt8 { typeOfService >> 2 }

    /// Explicit Congestion Notification (RFC 3168): the lower 2 bits of TOS.
    @inlinable public var explicitCongestionNotification: UInt8 { typeOfService & 0x03 }

    @inlinable public var totalLength: UInt16 {
        get { bytes.networkUInt16(at: Offset.totalLength) }
        nonmutating set { bytes.setNetworkUInt16(newValue, at: Offset.totalLength) }
    }

    @inlinable public var identification: UInt16 {
        get { bytes.networkUInt16(at: Offset.identification) }
        nonmutating set { bytes.setNetworkUInt16(newValue, at: Offset.identification) }
    }

    /// The 16-bit word holding the three flag bits and the fragment offset.
    @inlinable public var flagsAndFragmentOffset: UInt16 {
        get { bytes.networkUInt16(at: Offset.flagsAndFragmentOffset) }
        nonmutating set { bytes.setNetworkUInt16(newValue, at: Offset.flagsAndFragmentOffset) }
    }

    @inlinable public var dontFragment: Bool { flagsAndFragmentOffset & Flag.dontFragment != 0 }
    @inlinable public var moreFragments: Bool { flagsAndFragmentOffset & Flag.moreFragments != 0 }

    /// Fragment offset in units of 8 octets (RFC 791).
    @inlinable public var fragmentOffset: UInt16 { flagsAndFragmentOffset & Flag.fragmentOffsetMask }

    /// True for any piece of a fragmented datagram: MF set or a nonzero offset. The
    /// first fragment (MF, offset 0) counts too: its transport header may be whole, but
    /// the rest of the datagram arrives without ports (RFC 791 §2.3).
    @inlinable public var isFragment: Bool {
        flagsAndFragmentOffset & (Flag.moreFragments | Flag.fragmentOffsetMask) != 0
    }

    @inlinable public var timeToLive: UInt8 {
        get { bytes[Offset.timeToLive] }
        nonmutating set { bytes[Offset.timeToLive] = newValue }
    }

    @inlinable public var `protocol`: IPProtocol {
        get { IPProtocol(rawValue: bytes[Offset.protocol]) }
        nonmutating set { bytes[Offset.protocol] = newValue.rawValue }
    }

    @inlinable public var headerChecksum: UInt16 {
        get { bytes.networkUInt16(at: Offset.headerChecksum) }
        nonmutating set { bytes.setNetworkUInt16(newValue, at: Offset.headerChecksum) }
    }

    /// Setting it does not touch any checksum; see `setSourceAddressUpdatingChecksum`.
    @inlinable public var sourceAddress: IPv4Address {
        get { IPv4Address(bytes.networkUInt32(at: Offset.sourceAddress)) }
        nonmutating set { bytes.setNetworkUInt32(newValue.value, at: Offset.sourceAddress) }
    }

    /// Setting it does not touch any checksum; see `setDestinationAddressUpdatingChecksum`.
    @inlinable public var destinationAddress: IPv4Address {
        get { IPv4Address(bytes.networkUInt32(at: Offset.destinationAddress)) }
        nonmutating set { bytes.setNetworkUInt32(newValue.value, at: Offset.destinationAddress) }
    }

    /// The header: octets `0..<headerLength`, clamped to the buffer.
    @inlinable public var header: UnsafeMutableRawBufferPointer {
        bytes.clampedSlice(0, headerLength)
    }

    /// The options octets (`20..<headerLength`), empty for IHL 5. Raw, not parsed.
    @inlinable public var options: UnsafeMutableRawBufferPointer {
        bytes.clampedSlice(Offset.options, headerLength)
    }

    /// The payload `headerLength..<totalLength`: Ethernet padding after the datagram is
    /// cut off. Clamped to the buffer.
    @inlinable public var payload: UnsafeMutableRawBufferPointer {
        bytes.clampedSlice(headerLength, Int(totalLength))
    }

    /// Length of the payload as the header announces it (the transport length used in
    /// the pseudo-header).
    @inlinable public var payloadLength: UInt16 {
        let header = UInt16(truncatingIfNeeded: headerLength)
        return totalLength > header ? totalLength &- header : 0
    }

    // MARK: Checksum

    /// The header checksum computed from scratch (RFC 791 §3.1, RFC 1071), with the
    /// checksum field counted as zero.
    @inlinable public var computedHeaderChecksum: UInt16 {
        let header = UnsafeRawBufferPointer(self.header)
        // Summing the header with the field in place and then removing the field is the
        // same as summing it with a zero field, without writing to the packet.
        let withField = InternetChecksum.sum(header)
        return ~InternetChecksum.adjust(InternetChecksum.fold(withField), removing: headerChecksum, adding: 0)
    }

    /// True when the header sums to 0xFFFF, i.e. the stored checksum is right.
    @inlinable public var isHeaderChecksumValid: Bool {
        InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(header))) == 0xFFFF
    }

    /// Recomputes the header checksum from scratch. The slow path: after building a
    /// header, or to check the incremental setters.
    @inlinable public func updateHeaderChecksum() {
        headerChecksum = 0
        headerChecksum = InternetChecksum.checksum(header)
    }

    /// Rewrites the source address and updates the header checksum incrementally
    /// (RFC 1624 eq. 3). Transport checksums are the caller's: see
    /// `TCPView.updateChecksumForAddressChange(from:to:checksum:)`.
    @inlinable public func setSourceAddressUpdatingChecksum(_ address: IPv4Address) {
        let old = sourceAddress.value
        sourceAddress = address
        headerChecksum = InternetChecksum.updated(headerChecksum, replacing: old, with: address.value)
    }

    /// Rewrites the destination address and updates the header checksum incrementally.
    @inlinable public func setDestinationAddressUpdatingChecksum(_ address: IPv4Address) {
        let old = destinationAddress.value
        destinationAddress = address
        headerChecksum = InternetChecksum.updated(headerChecksum, replacing: old, with: address.value)
    }

    /// Decrements TTL by one and updates the header checksum incrementally, as a router
    /// does on forwarding (RFC 1812 §5.3.1, RFC 1624 §4). TTL and protocol share one
    /// 16-bit word, so the update replaces that word.
    ///
    /// A TTL of 0 is left alone (no wrap to 255). The caller checks `timeToLive <= 1`
    /// first and answers with ICMP Time Exceeded instead of forwarding (RFC 1812 §5.3.1).
    /// - Returns: the new TTL.
    @inlinable @discardableResult public func decrementTimeToLive() -> UInt8 {
        let ttl = timeToLive
        guard ttl > 0 else { return 0 }
        let proto = UInt16(bytes[Offset.protocol])
        let oldWord = UInt16(ttl) << 8 | proto
        let newWord = UInt16(ttl &- 1) << 8 | proto
        timeToLive = ttl &- 1
        headerChecksum = InternetChecksum.updated(headerChecksum, replacing: oldWord, with: newWord)
        return ttl &- 1
    }

    /// The pseudo-header sum for this datagram's transport checksum (RFC 793 §3.1),
    /// using the announced payload length.
    @inlinable public var pseudoHeaderSum: UInt32 {
        InternetChecksum.pseudoHeaderSum(
            source: sourceAddress, destination: destinationAddress, protocol: self.protocol, length: payloadLength)
    }
}
