import FerryPacket

// Source-port choice for masqueraded flows, after the kernel's
// nf_nat_l4proto_unique_tuple (net/netfilter/nf_nat_proto.c): a masqueraded entry's
// reply tuple is `backend:bp → node:P`, and P must make that tuple unique in the
// conntrack table, or the backend's answers could not be told apart from another
// flow's.

/// Picks masquerade source ports from a configured range.
///
/// Policy:
/// - The search starts at a deterministic offset, a hash of the reply tuple without its
///   port (so the same backend/node pair spreads over the range and a test can predict
///   the port), and probes consecutive ports, wrapping around the range.
/// - It makes at most `maxAttempts` probes (default 128, the kernel's cap in
///   `nf_nat_l4proto_unique_tuple`), so the search is exhaustive only when the range
///   has at most `maxAttempts` ports. Unlike the kernel it does not retry from a second
///   random offset: a range that is that full is exhausted in practice, and one bounded
///   search keeps the per-flow cost fixed.
/// - A port is free when no entry in the table owns the candidate reply tuple (as either
///   of its tuples). With `now`, an expired owner is removed and its port reused.
/// - When no probe finds a free port it returns nil and counts `exhausted`; the caller
///   drops the packet with its own reason.
///
/// Ports are not reserved: a port is taken when the caller inserts the entry whose reply
/// tuple uses it, and freed when that entry goes. Allocate and insert without another
/// insert in between (the single-owner worker does exactly that).
public struct SNATPortAllocator: Sendable {
    public let range: ClosedRange<UInt16>
    public let maxAttempts: Int
    public let seed: UInt64
    public private(set) var counters = Counters()

    public struct Counters: Hashable, Sendable {
        /// Ports handed out.
        public var allocated: UInt64 = 0
        /// Requests refused because every probed port was taken.
        public var exhausted: UInt64 = 0
        /// Candidate ports examined, over all requests.
        public var probes: UInt64 = 0
        public init() {}
    }

    /// - Parameters:
    ///   - range: the ports to use; keep it out of the kernel's `ip_local_port_range` and
    ///     the NodePort range (see `ClusterConfig.snatPortRange`).
    ///   - seed: passed in (STYLE rule 7); the agent may pass a random one so that ports
    ///     are not predictable from outside.
    public init(range: ClosedRange<UInt16>, maxAttempts: Int = 128, seed: UInt64 = 0) {
        precondition(maxAttempts > 0, "maxAttempts must be positive")
        self.range = range
        self.maxAttempts = maxAttempts
        self.seed = seed
    }

    /// How many ports the range holds.
    @inlinable public var size: Int { Int(range.upperBound) - Int(range.lowerBound) + 1 }

    /// A port P such that `replyTemplate` with destination port P is in no entry of
    /// `table`, or nil when the bounded search finds none.
    ///
    /// - Parameters:
    ///   - replyTemplate: the masqueraded entry's reply tuple, `backend:bp → node:_`; its
    ///     destination port is ignored. For ICMP echo the identifier is both ports, so
    ///     both are set to P.
    ///   - now: when given, entries whose time is up are removed as they are met and do
    ///     not hold their port; without it, any entry present holds its port.
    public mutating func allocate(replyTemplate: FlowKey, table: ConntrackTable, now: Timestamp? = nil) -> UInt16? {
        var candidate = replyTemplate
        candidate.destinationPort = 0
        if candidate.protocol == .icmp { candidate.sourcePort = 0 }
        let n = UInt64(size)
        let start = candidate.slotHash(seed: seed) % n
        let attempts = min(maxAttempts, size)
        for i in 0..<UInt64(attempts) {
            let port = UInt16(truncatingIfNeeded: UInt64(range.lowerBound) + (start + i) % n)
            candidate.destinationPort = port
            if candidate.protocol == .icmp { candidate.sourcePort = port }
            counters.probes &+= 1
            let taken: Bool
            if let now { taken = table.lookup(candidate, now: now) != nil } else { taken = table.contains(candidate) }
            if !taken {
                counters.allocated &+= 1
                return port
            }
        }
        counters.exhausted &+= 1
        return nil
    }
}
