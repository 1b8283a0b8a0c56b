// ICMP for IPv4 (RFC 792; Fragmentation Needed's next-hop MTU from RFC 1191 §4).
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |     Type      |     Code      |          Checksum             |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |           Identifier          |        Sequence Number        |  echo
//  |             unused            |         Next-Hop MTU          |  dest. unreachable
//  |                             unused                            |  time exceeded
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  Data (echo) / Internet Header + 64 bits of Original Data     |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The checksum covers the whole ICMP message and no pseudo-header.

/// ICMP message types (RFC 792). Unknown values are kept as they are.
public struct ICMPType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let echoReply = ICMPType(rawValue: 0)
    public static let destinationUnreachable = ICMPType(rawValue: 3)
    public static let sourceQuench = ICMPType(rawValue: 4)
    public static let redirect = ICMPType(rawValue: 5)
    public static let echoRequest = ICMPType(rawValue: 8)
    public static let timeExceeded = ICMPType(rawValue: 11)
    public static let parameterProblem = ICMPType(rawValue: 12)

    /// Error messages quote the offending datagram; queries (echo, timestamp…) do not.
    /// This is the set conntrack treats as related (nf_conntrack_proto_icmp.c,
    /// icmp_error_message(): unreachable, source quench, redirect, time exceeded,
    /// parameter problem).
    @inlinable public var isError: Bool {
        switch rawValue {
        case 3, 4, 5, 11, 12: true
        default: false
        }
    }

    public var description: String {
        switch rawValue {
        case 0: "echo-reply"
        case 3: "destination-unreachable"
        case 4: "source-quench"
        case 5: "redirect"
        case 8: "echo-request"
        case 11: "time-exceeded"
        case 12: "parameter-problem"
        default: "icmp-type-\(rawValue)"
        }
    }
}

/// ICMP codes, grouped by the type they belong to (RFC 792, RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1).
public enum ICMPCode {
    public enum DestinationUnreachable {
        public static let netUnreachable: UInt8 = 0
        public static let hostUnreachable: UInt8 = 1
        public static let protocolUnreachable: UInt8 = 2
        public static let portUnreachable: UInt8 = 3
        /// "Fragmentation needed and DF set"; carries the next-hop MTU (RFC 1191).
        public static let fragmentationNeeded: UInt8 = 4
        /// RFC 1812 §5.2.7.1: what a filter sends for a rejected packet.
        public static let communicationAdministrativelyProhibited: UInt8 = 13
    }

    public enum TimeExceeded {
        public static let timeToLiveExceededInTransit: UInt8 = 0
        public static let fragmentReassemblyTimeExceeded: UInt8 = 1
    }
}

/// An ICMP message read and written in place.
///
/// `bytes` is the IP payload (bounded by the IP total length). Validation contract:
/// `init(unchecked:)` only wraps; the caller guarantees 8 bytes. Once `init(checking:)`
/// has returned, no accessor or setter traps. Never store the view.
public struct ICMPView {
    @usableFromInline enum Offset {
        @usableFromInline static let type = 0
        @usableFromInline static let code = 1
        @usableFromInline static let checksum = 2
        @usableFromInline static let restOfHeader = 4
        @usableFromInline static let identifier = 4
        @usableFromInline static let sequenceNumber = 6
        @usableFromInline static let nextHopMTU = 6
        @usableFromInline static let data = 8
    }

    public static let headerLength = 8

    public let bytes: UnsafeMutableRawBufferPointer

    @inlinable public init(unchecked bytes: UnsafeMutableRawBufferPointer) {
        self.bytes = bytes
    }

    @inlinable public init(checking bytes: UnsafeMutableRawBufferPointer) throws(PacketError) {
        guard bytes.count >= ICMPView.headerLength else { throw .truncated }
        self.bytes = bytes
    }

    // MARK: Fields

    @inlinable public var type: ICMPType {
        get { ICMPType(rawValue: bytes[Offset.type]) }
        nonmutating set { bytes[Offset.type] = newValue.rawValue }
    }

    @inlinable public var code: UInt8 {
        get { bytes[Offset.code] }
        nonmutating set { bytes[Offset.code] = newValue }
    }

    @inlinable public var checksum: UInt16 {
        get { bytes.networkUInt16(at: Offset.checksum) }
        nonmutating set { bytes.setNetworkUInt16(newValue, at: Offset.checksum) }
    }

    /// The second 32-bit word, whose meaning depends on the type.
    @inlinable public var restOfHeader: UInt32 {
        get { bytes.networkUInt32(at: Offset.restOfHeader) }
        nonmutating set { bytes.setNetworkUInt32(newValue, at: Offset.restOfHeader) }
    }

    /// Echo identifier (meaningful for echo request/reply). Setting it does not touch the
    /// checksum; see `setIdentifier(_:)`.
    @inlinable public var identifier: UInt16 {
        get { bytes.networkUInt16(at: Offset.identifier) }
        nonmutating set { bytes.setNetworkUInt16(newValue, at: Offset.identifier) }
    }

    /// Echo sequence number (meaningful for echo request/reply).
    @inlinable public var sequenceNumber: UInt16 {
        get { bytes.networkUInt16(at: Offset.sequenceNumber) }
        nonmutating set { bytes.setNetworkUInt16(newValue, at: Offset.sequenceNumber) }
    }

    /// Next-hop MTU of a Fragmentation Needed message (RFC 1191 §4); 0 from old routers.
    @inlinable public var nextHopMTU: UInt16 {
        get { bytes.networkUInt16(at: Offset.nextHopMTU) }
        nonmutating set { bytes.setNetworkUInt16(newValue, at: Offset.nextHopMTU) }
    }

    /// Everything after the 8-octet header: echo data, or the quoted datagram.
    @inlinable public var payload: UnsafeMutableRawBufferPointer {
        bytes.clampedSlice(Offset.data, bytes.count)
    }

    /// For error messages: the quoted IPv4 header and (at least) the first 8 octets of
    /// the offending datagram's payload (RFC 792; RFC 1812 §4.3.2.3 allows more). Check
    /// it with `IPv4View(checkingQuotedHeader:)`.
    @inlinable public var quotedPacket: UnsafeMutableRawBufferPointer { payload }

    // MARK: Checksum

    /// The checksum over the whole message computed from scratch, field counted as zero.
    @inlinable public var computedChecksum: UInt16 {
        let withField = InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(bytes)))
        return ~InternetChecksum.adjust(withField, removing: checksum, adding: 0)
    }

    @inlinable public var isChecksumValid: Bool {
        InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(bytes))) == 0xFFFF
    }

    /// Recomputes the checksum from scratch (slow path).
    @inlinable public func updateChecksum() {
        checksum = 0
        checksum = InternetChecksum.checksum(bytes)
    }

    /// Rewrites the echo identifier and updates the checksum (RFC 1624 eq. 3): the echo
    /// "port" that masquerading rewrites (nf_nat_proto.c, icmp_manip_pkt()).
    @inlinable public func setIdentifier(_ id: UInt16) {
        let old = identifier
        identifier = id
        checksum = InternetChecksum.updated(checksum, replacing: old, with: id)
    }

    // MARK: NAT of the quoted datagram

    /// Rewrites the addresses and ports of the TCP or UDP datagram quoted in an ICMP
    /// error, so that the error matches the flow as the receiver knows it (for a DNATed
    /// flow: backend address and port back to the Service's).
    ///
    /// Follows nf_nat_icmp_reply_translation() (net/netfilter/nf_nat_proto.c) in what it
    /// touches: the quoted IP addresses and header checksum; the quoted ports; the quoted
    /// UDP checksum when nonzero (it sits inside the 8 quoted octets); the quoted TCP
    /// checksum only when the whole 20-octet TCP header was quoted (tcp_manip_pkt():
    /// otherwise the field lies beyond the guaranteed 8 octets). Unlike the kernel, which
    /// recomputes the ICMP checksum over the whole message, every rewritten 16-bit word is
    /// folded into the ICMP checksum incrementally (RFC 1624 eq. 3), which gives the same
    /// value without reading the quote again.
    ///
    /// The outer IP header is the caller's (`IPv4View.setSourceAddressUpdatingChecksum`);
    /// ICMP has no pseudo-header, so it does not affect the ICMP checksum.
    /// - Throws: `.notICMPError`, the quoted header's `PacketError`, `.truncated` when
    ///   fewer than 8 octets of the transport header were quoted, `.fragment` for a quoted
    ///   non-first fragment (no ports), `.unsupportedProtocol` for anything but TCP/UDP.
    ///   Nothing is written when it throws.
    @inlinable
    public func rewriteQuotedPacket(
        source: IPv4Address, destination: IPv4Address, sourcePort: UInt16, destinationPort: UInt16
    ) throws(PacketError) {
        guard type.isError else { throw .notICMPError }
        let quoted = try IPv4View(checkingQuotedHeader: quotedPacket)
        guard quoted.fragmentOffset == 0 else { throw .fragment }
        let proto = quoted.protocol
        guard proto == .tcp || proto == .udp else { throw .unsupportedProtocol }
        let transport = quoted.payload
        guard transport.count >= 8 else { throw .truncated }

        // The ICMP sum, uncomplemented, adjusted once per rewritten word.
        var icmpSum = ~checksum

        // Quoted IP header: addresses, then its own checksum.
        let oldSource = quoted.sourceAddress.value
        let oldDestination = quoted.destinationAddress.value
        let oldHeaderChecksum = quoted.headerChecksum
        var headerChecksum = InternetChecksum.updated(oldHeaderChecksum, replacing: oldSource, with: source.value)
        headerChecksum = InternetChecksum.updated(headerChecksum, replacing: oldDestination, with: destination.value)
        quoted.sourceAddress = source
        quoted.destinationAddress = destination
        quoted.headerChecksum = headerChecksum
        icmpSum = InternetChecksum.adjust(icmpSum, removing: oldSource, adding: source.value)
        icmpSum = InternetChecksum.adjust(icmpSum, removing: oldDestination, adding: destination.value)
        icmpSum = InternetChecksum.adjust(icmpSum, removing: oldHeaderChecksum, adding: headerChecksum)

        // Quoted ports: the first two words of both TCP and UDP.
        let oldSourcePort = transport.networkUInt16(at: 0)
        let oldDestinationPort = transport.networkUInt16(at: 2)
        transport.setNetworkUInt16(sourcePort, at: 0)
        transport.setNetworkUInt16(destinationPort, at: 2)
        icmpSum = InternetChecksum.adjust(icmpSum, removing: oldSourcePort, adding: sourcePort)
        icmpSum = InternetChecksum.adjust(icmpSum, removing: oldDestinationPort, adding: destinationPort)

        // Quoted transport checksum, when the kernel would update it.
        let checksumOffset: Int
        switch proto {
        case .udp: checksumOffset = UDPView.checksumOffset
        default: checksumOffset = transport.count >= TCPView.minimumHeaderLength ? TCPView.checksumOffset : -1
        }
        if checksumOffset >= 0 {
            let old = transport.networkUInt16(at: checksumOffset)
            if proto == .tcp || old != 0 {
                var value = InternetChecksum.updated(old, replacing: oldSource, with: source.value)
                value = InternetChecksum.updated(value, replacing: oldDestination, with: destination.value)
                value = InternetChecksum.updated(value, replacing: oldSourcePort, with: sourcePort)
                value = InternetChecksum.updated(value, replacing: oldDestinationPort, with: destinationPort)
                if proto == .udp, value == 0 { value = 0xFFFF }
                transport.setNetworkUInt16(value, at: checksumOffset)
                icmpSum = InternetChecksum.adjust(icmpSum, removing: old, adding: value)
            }
        }

        checksum = ~icmpSum
    }
}
