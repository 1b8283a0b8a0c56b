// Writes the ICMP error a router or filter sends back for a packet it will not deliver:
// port unreachable for a Service port with no endpoints (what kube-proxy's REJECT rules
// produce), fragmentation needed, time exceeded.

/// Builds an IPv4 + ICMP error message into a caller-provided buffer. No allocation.
public enum ICMPErrorWriter {
    /// TTL of the error datagram (Linux's default `net.ipv4.ip_default_ttl`).
    public static let timeToLive: UInt8 = 64

    /// Precedence 6, "internetwork control", as RFC 1812 §4.3.2.5 asks for ICMP errors
    /// (Linux: IPTOS_PREC_INTERNETCONTROL in icmp_send(), net/ipv4/icmp.c).
    public static let typeOfService: UInt8 = 0xC0

    /// Octets of the offending datagram's payload quoted after its IP header (RFC 792).
    public static let quotedPayloadLength = 8

    /// The most this writer produces: two maximal IP headers, the ICMP header and 8 octets.
    public static let maximumLength = IPv4View.minimumHeaderLength + ICMPView.headerLength
        + IPv4View.maximumHeaderLength + quotedPayloadLength

    /// Writes an IPv4 datagram (IHL 5, TTL 64, DF clear) carrying an ICMP error of `type`
    /// and `code` from `source` to `destination`, quoting the IP header and the first 8
    /// payload octets of `original` (RFC 792; RFC 1812 §4.3.2.3 permits more, the minimum
    /// keeps the error small and fixed-size).
    ///
    /// `original` may lie in the same memory as `buffer` (an error built in the slot of
    /// the packet it answers): the quote is moved first, with memmove semantics, and the
    /// original is not read after that.
    ///
    /// - Parameters:
    ///   - nextHopMTU: written for Fragmentation Needed (RFC 1191 §4); ignored otherwise.
    ///   - identification: the IP identification field. DF is clear, so RFC 6864 §4.2
    ///     wants it unique per source, destination and protocol: pass a counter.
    /// - Returns: the number of octets written, from the start of `buffer`.
    /// - Throws: `.notICMPError` if `type` is not an error type; `.icmpErrorNotPermitted`
    ///   when RFC 1812 §4.3.2.7 forbids an error about `original` (an ICMP error itself, a
    ///   non-first fragment, a source that is not a unique unicast host, a multicast or
    ///   limited-broadcast destination); the original's header errors; `.bufferTooSmall`.
    @inlinable
    public static func write(
        type: ICMPType, code: UInt8, nextHopMTU: UInt16 = 0,
        source: IPv4Address, destination: IPv4Address,
        quoting original: IPv4View, into buffer: UnsafeMutableRawBufferPointer,
        identification: UInt16 = 0
    ) throws(PacketError) -> Int {
        guard type.isError else { throw .notICMPError }
        let quotedHeader = try IPv4View(checkingQuotedHeader: original.bytes)
        try checkPermitted(about: quotedHeader)

        let quoteLength = quotedHeader.headerLength &+ Swift.min(quotedPayloadLength, quotedHeader.payload.count)
        let icmpStart = IPv4View.minimumHeaderLength
        let quoteStart = icmpStart &+ ICMPView.headerLength
        let total = quoteStart &+ quoteLength
        guard buffer.count >= total else { throw .bufferTooSmall }

        // Quote first: `original` may alias `buffer`.
        if let from = original.bytes.baseAddress, let to = buffer.baseAddress {
            (to + quoteStart).copyMemory(from: from, byteCount: quoteLength)
        }

        let ip = IPv4View(unchecked: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<total]))
        ip.bytes[0] = 0x45  // version 4, IHL 5
        ip.typeOfService = typeOfService
        ip.totalLength = UInt16(truncatingIfNeeded: total)
        ip.identification = identification
        ip.flagsAndFragmentOffset = 0  // DF clear: the error may be fragmented on a small link
        ip.timeToLive = timeToLive
        ip.protocol = .icmp
        ip.sourceAddress = source
        ip.destinationAddress = destination
        ip.updateHeaderChecksum()

        let icmp = ICMPView(unchecked: ip.payload)
        icmp.type = type
        icmp.code = code
        icmp.restOfHeader = 0
        if type == .destinationUnreachable, code == ICMPCode.DestinationUnreachable.fragmentationNeeded {
            icmp.nextHopMTU = nextHopMTU
        }
        icmp.updateChecksum()
        return total
    }

    /// Throws `.icmpErrorNotPermitted` when RFC 1812 §4.3.2.7 (and RFC 1122 §3.2.2)
    /// forbids sending an ICMP error about `original`. Only the limited broadcast address
    /// is recognised as broadcast; directed broadcasts need the subnet, which the caller has.
    @inlinable
    public static func checkPermitted(about original: IPv4View) throws(PacketError) {
        // Not about a non-first fragment.
        guard original.fragmentOffset == 0 else { throw .icmpErrorNotPermitted }
        // Not about a datagram sent to a multicast or broadcast address.
        let to = original.destinationAddress
        guard !to.isMulticast, to != .broadcast else { throw .icmpErrorNotPermitted }
        // Not about a datagram whose source is not one host: 0.0.0.0, loopback,
        // multicast, class E (including limited broadcast).
        let from = original.sourceAddress
        guard from != .any, !from.isLoopback, !from.isMulticast, from.value >> 28 != 0xF else {
            throw .icmpErrorNotPermitted
        }
        // Not about an ICMP error message (queries such as echo may be answered).
        if original.protocol == .icmp {
            let payload = original.payload
            if payload.count >= 1, ICMPType(rawValue: payload[0]).isError { throw .icmpErrorNotPermitted }
        }
    }
}
