import FerryPacket

// One tracked connection, kernel nf_conntrack's model (include/net/netfilter/
// nf_conntrack.h, `struct nf_conn`): two tuples, `original` as the first packet was
// seen and `reply` as the answer will arrive *after* NAT. NAT is derived from the pair
// rather than stored:
//
//   DNAT          original client:cp → VIP:vp      reply backend:bp → client:cp
//   DNAT+masq     original client:cp → VIP:vp      reply backend:bp → node:snatPort
//   no NAT        original a:x → b:y               reply b:y → a:x  (= original.reversed())
//
// A packet matching `original` leaves as `reply.reversed()`; one matching `reply` leaves
// as `original.reversed()`.

/// Which of an entry's two tuples a packet matched.
public enum ConntrackDirection: UInt8, Hashable, Sendable, Codable {
    /// The direction of the packet that created the entry (client → service).
    case original = 0
    /// The answer (backend → client, or backend → node for masqueraded flows).
    case reply = 1

    @inlinable public var opposite: ConntrackDirection { self == .original ? .reply : .original }
}

/// One connection in a `ConntrackTable`: 80 bytes.
public struct ConntrackEntry: Hashable, Sendable {
    /// The first packet's tuple, before any rewrite.
    public var original: FlowKey
    /// The tuple the answer arrives with, after the forward rewrite.
    public var reply: FlowKey
    /// The instant this entry stops existing unless a packet refreshes it: it is live
    /// while `now < expires` and gone from `expires` on (exactly, to the nanosecond).
    public var expires: Timestamp
    public var originalPackets: UInt64
    public var originalBytes: UInt64
    public var replyPackets: UInt64
    public var replyBytes: UInt64
    /// The Service frontend that created the entry (an index the service table hands
    /// out), or -1 for flows that are not to a Service (plain masquerade, pickups).
    public var frontend: Int32
    public var state: ConnState
    @usableFromInline var flags: UInt8

    @usableFromInline static let seenReplyBit: UInt8 = 0x01
    @usableFromInline static let assuredBit: UInt8 = 0x02

    public init(original: FlowKey, reply: FlowKey, state: ConnState, expires: Timestamp,
                frontend: Int32 = -1, seenReply: Bool = false, assured: Bool = false,
                originalPackets: UInt64 = 0, originalBytes: UInt64 = 0,
                replyPackets: UInt64 = 0, replyBytes: UInt64 = 0) {
        self.original = original
        self.reply = reply
        self.expires = expires
        self.originalPackets = originalPackets
        self.originalBytes = originalBytes
        self.replyPackets = replyPackets
        self.replyBytes = replyBytes
        self.frontend = frontend
        self.state = state
        self.flags = (seenReply ? Self.seenReplyBit : 0) | (assured ? Self.assuredBit : 0)
    }

    /// A packet has been seen in the reply direction (the kernel's `IPS_SEEN_REPLY`).
    @inlinable public var seenReply: Bool {
        get { flags & Self.seenReplyBit != 0 }
        set { flags = newValue ? flags | Self.seenReplyBit : flags & ~Self.seenReplyBit }
    }

    /// The connection is known good (the kernel's `IPS_ASSURED`): TCP that completed its
    /// handshake with both sides seen, UDP that got an answer. Only entries that are not
    /// assured may be evicted to make room (see `ConntrackTable.insert`).
    @inlinable public var assured: Bool {
        get { flags & Self.assuredBit != 0 }
        set { flags = newValue ? flags | Self.assuredBit : flags & ~Self.assuredBit }
    }

    /// A table slot holds a connection iff its state is not `none`: no packet ever moves
    /// a connection to `none` (it is only the kernel table's starting column).
    @inlinable var inUse: Bool { state != .none }

    @inlinable public var `protocol`: IPProtocol { original.protocol }

    /// The headers a packet that matched `direction` must leave with: the other tuple,
    /// reversed. For a DNAT entry an original-direction packet becomes client → backend
    /// and a reply-direction packet becomes VIP → client.
    @inlinable
    public func translated(_ direction: ConntrackDirection) -> FlowKey {
        direction == .original ? reply.reversed() : original.reversed()
    }

    /// Does either direction rewrite the destination (DNAT)?
    @inlinable public var isDestinationNAT: Bool { reply.source != original.destination || reply.sourcePort != original.destinationPort }
    /// Does either direction rewrite the source (SNAT/masquerade)?
    @inlinable public var isSourceNAT: Bool { reply.destination != original.source || reply.destinationPort != original.sourcePort }

    /// An empty slot.
    @usableFromInline static let vacant = ConntrackEntry(
        original: FlowKey(protocol: .unknown(0), source: .any, sourcePort: 0, destination: .any, destinationPort: 0),
        reply: FlowKey(protocol: .unknown(0), source: .any, sourcePort: 0, destination: .any, destinationPort: 0),
        state: .none, expires: .zero)
}

// Codable by hand: `Timestamp` is not Codable (it belongs to the clock), and the flags
// byte is written as named booleans.
extension ConntrackEntry: Codable {
    private enum CodingKeys: String, CodingKey {
        case original, reply, expiresNanoseconds, originalPackets, originalBytes, replyPackets, replyBytes
        case frontend, state, seenReply, assured
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            original: try c.decode(FlowKey.self, forKey: .original),
            reply: try c.decode(FlowKey.self, forKey: .reply),
            state: try c.decode(ConnState.self, forKey: .state),
            expires: Timestamp(nanoseconds: try c.decode(UInt64.self, forKey: .expiresNanoseconds)),
            frontend: try c.decode(Int32.self, forKey: .frontend),
            seenReply: try c.decode(Bool.self, forKey: .seenReply),
            assured: try c.decode(Bool.self, forKey: .assured),
            originalPackets: try c.decode(UInt64.self, forKey: .originalPackets),
            originalBytes: try c.decode(UInt64.self, forKey: .originalBytes),
            replyPackets: try c.decode(UInt64.self, forKey: .replyPackets),
            replyBytes: try c.decode(UInt64.self, forKey: .replyBytes))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(original, forKey: .original)
        try c.encode(reply, forKey: .reply)
        try c.encode(expires.nanoseconds, forKey: .expiresNanoseconds)
        try c.encode(originalPackets, forKey: .originalPackets)
        try c.encode(originalBytes, forKey: .originalBytes)
        try c.encode(replyPackets, forKey: .replyPackets)
        try c.encode(replyBytes, forKey: .replyBytes)
        try c.encode(frontend, forKey: .frontend)
        try c.encode(state, forKey: .state)
        try c.encode(seenReply, forKey: .seenReply)
        try c.encode(assured, forKey: .assured)
    }
}

/// An entry in its saved form, for handing a table to the next process (restart or
/// upgrade). Monotonic clocks do not survive a process, so the expiry is stored as the
/// lifetime *remaining* at export and rebased onto the new process's clock on restore.
public struct ConntrackRecord: Hashable, Sendable, Codable {
    /// The entry; its `expires` is meaningless here and is rewritten on restore.
    public var entry: ConntrackEntry
    public var remainingNanoseconds: UInt64

    public init(entry: ConntrackEntry, remainingNanoseconds: UInt64) {
        var e = entry
        e.expires = .zero
        self.entry = e
        self.remainingNanoseconds = remainingNanoseconds
    }

    /// The record as of `now` in the new process: expires `remainingNanoseconds` from `now`.
    @inlinable
    public func rebased(now: Timestamp) -> ConntrackEntry {
        var e = entry
        e.expires = now + Seconds(nanoseconds: remainingNanoseconds)
        return e
    }
}
