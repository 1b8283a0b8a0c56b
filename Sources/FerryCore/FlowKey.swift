import FerryPacket

// A conntrack tuple, one direction of a flow (the kernel's `struct nf_conntrack_tuple`,
// include/net/netfilter/nf_conntrack_tuple.h, reduced to IPv4 and L4 ports).
//
// Layout: two addresses, two ports and the protocol number are 13 bytes (stride 16), so
// an entry's two tuples fit in one 32-byte half cache line.

/// One direction of a flow: source, destination, ports and IP protocol, host order.
///
/// ICMP echo uses the echo identifier as *both* ports (the kernel keys ICMP on
/// `icmp.id` the same way, net/netfilter/nf_conntrack_proto_icmp.c), so `reversed()`
/// of an echo request's key is the echo reply's key.
public struct FlowKey: Hashable, Sendable, CustomStringConvertible {
    public var source: IPv4Address
    public var destination: IPv4Address
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    /// The IANA protocol number; stored raw so the key stays 13 bytes.
    public var protocolNumber: UInt8

    @inlinable
    public init(protocol: IPProtocol, source: IPv4Address, sourcePort: UInt16,
                destination: IPv4Address, destinationPort: UInt16) {
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.protocolNumber = `protocol`.rawValue
    }

    /// The key of an ICMP echo request or reply: the identifier stands in for both ports.
    @inlinable
    public static func icmpEcho(source: IPv4Address, destination: IPv4Address, identifier: UInt16) -> FlowKey {
        FlowKey(protocol: .icmp, source: source, sourcePort: identifier,
                destination: destination, destinationPort: identifier)
    }

    @inlinable public var `protocol`: IPProtocol { IPProtocol(rawValue: protocolNumber) }

    /// The same flow seen from the other end: addresses and ports swapped
    /// (the kernel's `nf_ct_invert_tuple`).
    @inlinable
    public func reversed() -> FlowKey {
        var r = self
        r.source = destination
        r.destination = source
        r.sourcePort = destinationPort
        r.destinationPort = sourcePort
        return r
    }

    /// A well-mixed 64-bit hash of the key, deterministic for a given seed.
    ///
    /// Slot placement does not use `Hasher`, whose per-process random seed would make
    /// table layouts (and so early-drop choices and tests) differ from run to run. The
    /// seed is passed in instead: the agent passes a random one so that remote peers
    /// cannot aim many flows at one probe run; tests pass a fixed one.
    /// Two rounds of MurmurHash3's 64-bit finalizer (`fmix64`), a bijection, so keys that
    /// differ in only one of the two words never collide before the caller truncates.
    /// The golden-ratio constant keeps an all-zero key with seed 0 off `fmix64`'s fixed
    /// point at zero.
    @inlinable
    public func slotHash(seed: UInt64) -> UInt64 {
        let addresses = UInt64(source.value) << 32 | UInt64(destination.value)
        let rest = UInt64(sourcePort) << 48 | UInt64(destinationPort) << 32 | UInt64(protocolNumber)
        return FlowKey.fmix64(FlowKey.fmix64(addresses ^ seed ^ 0x9E37_79B9_7F4A_7C15) ^ rest)
    }

    @inlinable @inline(__always)
    static func fmix64(_ x: UInt64) -> UInt64 {
        var k = x
        k ^= k >> 33
        k = k &* 0xFF51_AFD7_ED55_8CCD
        k ^= k >> 33
        k = k &* 0xC4CE_B9FE_1A85_EC53
        k ^= k >> 33
        return k
    }

    public var description: String {
        "\(`protocol`) \(source):\(sourcePort) → \(destination):\(destinationPort)"
    }
}

extension FlowKey: Codable {
    private enum CodingKeys: String, CodingKey {
        case `protocol`, source, sourcePort, destination, destinationPort
    }

    // Addresses are written as dotted quads so a saved table can be read by a person.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        protocolNumber = try c.decode(UInt8.self, forKey: .protocol)
        let src = try c.decode(String.self, forKey: .source)
        let dst = try c.decode(String.self, forKey: .destination)
        guard let s = IPv4Address(src) else {
            throw DecodingError.dataCorruptedError(forKey: .source, in: c, debugDescription: "not an IPv4 address: \(src)")
        }
        guard let d = IPv4Address(dst) else {
            throw DecodingError.dataCorruptedError(forKey: .destination, in: c, debugDescription: "not an IPv4 address: \(dst)")
        }
        source = s
        destination = d
        sourcePort = try c.decode(UInt16.self, forKey: .sourcePort)
        destinationPort = try c.decode(UInt16.self, forKey: .destinationPort)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(protocolNumber, forKey: .protocol)
        try c.encode(source.description, forKey: .source)
        try c.encode(sourcePort, forKey: .sourcePort)
        try c.encode(destination.description, forKey: .destination)
        try c.encode(destinationPort, forKey: .destinationPort)
    }
}
