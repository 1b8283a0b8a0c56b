// Whole frames from field values, for tests and for the agent's slow paths (ARP
// replies, probes). Builders allocate; the forwarding path writes through views.

/// How a builder writes the transport checksum.
public enum TransportChecksum: Hashable, Sendable {
    /// The complete checksum (a computed UDP 0 is written 0xFFFF).
    case full
    /// The CHECKSUM_PARTIAL form: only the pseudo-header sum, as veth hands over locally
    /// generated TCP/UDP (TP_STATUS_CSUMNOTREADY). ICMP has no such form and gets `.full`.
    case partial
    /// A zero field: UDP's "no checksum" (RFC 768), or a deliberately wrong TCP/ICMP one.
    case zero
}

/// The transport part of a datagram to build.
public enum TransportFields: Hashable, Sendable {
    case tcp(TCPFields)
    case udp(UDPFields)
    case icmp(ICMPFields)
    /// Any other protocol, carried as opaque octets.
    case raw(IPProtocol, [UInt8])

    public var `protocol`: IPProtocol {
        switch self {
        case .tcp: .tcp
        case .udp: .udp
        case .icmp: .icmp
        case .raw(let proto, _): proto
        }
    }

    public var length: Int {
        switch self {
        case .tcp(let t): t.length
        case .udp(let u): u.length
        case .icmp(let i): i.length
        case .raw(_, let bytes): bytes.count
        }
    }
}

/// Builds Ethernet frames and IPv4 datagrams with correct lengths and checksums.
public enum PacketBuilder {
    /// Ethernet's 64-octet minimum frame less the 4-octet FCS a packet socket never sees.
    public static let minimumFrameLength = 60

    /// An IPv4 datagram (no link header). The IP protocol field comes from `transport`.
    public static func datagram(
        _ ip: IPv4Fields, _ transport: TransportFields, checksum: TransportChecksum = .full
    ) -> [UInt8] {
        var ip = ip
        ip.protocol = transport.protocol
        var out = [UInt8](repeating: 0, count: ip.headerLength + transport.length)
        out.withUnsafeMutableBytes { buffer in
            let view = IPv4View(unchecked: buffer)
            ip.emit(into: view, payloadLength: transport.length)
            let l4 = view.payload
            switch transport {
            case .tcp(let t):
                t.emit(into: TCPView(unchecked: l4), source: ip.sourceAddress, destination: ip.destinationAddress, checksum: checksum)
            case .udp(let u):
                u.emit(into: UDPView(unchecked: l4), source: ip.sourceAddress, destination: ip.destinationAddress, checksum: checksum)
            case .icmp(let i):
                i.emit(into: ICMPView(unchecked: l4), checksum: checksum)
            case .raw(_, let bytes):
                l4.copyBytes(from: bytes)
            }
        }
        return out
    }

    /// An Ethernet frame carrying an IPv4 datagram. With `padded`, short frames are
    /// zero-padded to 60 octets as a NIC would send them; the IP total length still
    /// bounds the datagram.
    public static func frame(
        _ ethernet: EthernetFields, _ ip: IPv4Fields, _ transport: TransportFields,
        checksum: TransportChecksum = .full, padded: Bool = false
    ) -> [UInt8] {
        var ethernet = ethernet
        ethernet.etherType = .ipv4
        return frame(ethernet, payload: datagram(ip, transport, checksum: checksum), padded: padded)
    }

    /// An Ethernet frame carrying an ARP packet (always padded to 60 octets: ARP is shorter).
    public static func frame(_ ethernet: EthernetFields, arp: ARPFields) -> [UInt8] {
        var ethernet = ethernet
        ethernet.etherType = .arp
        var body = [UInt8](repeating: 0, count: ARPView.length)
        body.withUnsafeMutableBytes { arp.emit(into: ARPView(unchecked: $0)) }
        return frame(ethernet, payload: body, padded: true)
    }

    /// An Ethernet frame around any payload.
    public static func frame(_ ethernet: EthernetFields, payload: [UInt8], padded: Bool = false) -> [UInt8] {
        let length = EthernetView.headerLength + payload.count
        var out = [UInt8](repeating: 0, count: padded ? max(length, minimumFrameLength) : length)
        out.withUnsafeMutableBytes { buffer in
            ethernet.emit(into: EthernetView(unchecked: buffer))
            UnsafeMutableRawBufferPointer(rebasing: buffer[EthernetView.headerLength..<length]).copyBytes(from: payload)
        }
        return out
    }
}
