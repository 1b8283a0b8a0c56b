import FerryPacket

// Source-port choice for masqueraded flows, after the kernel's
// nf_nat_l4proto_unique_tuple (net/netfilter/nf_nat_proto.c): a masqueraded entry's
// reply tuple is `backend:bp → node:P`, and P must make that tuple unique in the
// conntrack table, or the backend's answers could not be told apart from another
// flow's.

/// Picks masquerade source ports from a configured range.
///
/// Policy:
/// - The search starts at a deterministic offset: a hash of the reply tuple without its
///   port, mixed with the hash of the flow's original tuple when the caller gives it (the
///   pipeline always does). So flows to the same backend start at different ports — like
///   the kernel's per-flow offset — and the k-th live flow to a backend does not probe
///   past k-1 taken ports; a test can still predict the port.
/// - It makes at most `maxAttempts` probes in all (default 128, the kernel's cap in
///   `nf_nat_l4proto_unique_tuple`). When the range has at most `maxAttempts` ports they
///   are probed in order from the start, so the search is exhaustive. A larger range is
///   probed in up to four runs of consecutive ports, each run from a new offset derived
///   from the previous one (the kernel also restarts from another offset), so a crowded
///   stretch of the range does not fail a flow while other stretches are free.
/// - A port is free when no entry in the table owns the candidate reply tuple (as either
///   of its tuples). With `now`, an expired owner is removed and its port reused, and so is
///   a TCP owner in TIME_WAIT or CLOSE (the kernel's nf_nat_used_tuple_harder).
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
        /// Ports taken over from TCP entries in TIME_WAIT or CLOSE.
        public var reusedClosing: UInt64 = 0
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
    ///   - flow: the flow's original tuple, whose hash spreads flows to one backend over
    ///     the range.
    ///   - now: when given, entries whose time is up are removed as they are met and do
    ///     not hold their port; without it, any entry present holds its port.
    public mutating func allocate(replyTemplate: FlowKey, table: ConntrackTable, now: Timestamp? = nil,
                                  flow: FlowKey? = nil) -> UInt16? {
        var candidate = replyTemplate
        candidate.destinationPort = 0
        if candidate.protocol == .icmp { candidate.sourcePort = 0 }
        let n = UInt64(size)
        var offset = candidate.slotHash(seed: seed)
        if let flow { offset ^= flow.slotHash(seed: seed &+ 0x5A17) }
        let exhaustive = size <= maxAttempts
        let runs = exhaustive ? 1 : min(4, maxAttempts)
        let perRun = exhaustive ? size : maxAttempts / runs
        for _ in 0..<runs {
            let start = offset % n
            for i in 0..<UInt64(perRun) {
                let port = UInt16(truncatingIfNeeded: UInt64(range.lowerBound) + (start + i) % n)
                candidate.destinationPort = port
                if candidate.protocol == .icmp { candidate.sourcePort = port }
                counters.probes &+= 1
                let taken: Bool
                if let now {
                    if let hit = table.lookup(candidate, now: now) {
                        // A TCP entry in TIME_WAIT or CLOSE gives its port up to a new flow, as
                        // the kernel's nf_nat_used_tuple_harder does: the backend accepts a new
                        // SYN on a TIME_WAIT socket, and without this a backend behind one node
                        // address could take only |range| / 120 s new masqueraded connections.
                        let state = table[entry: hit.entry].state
                        taken = state != .timeWait && state != .close
                        if !taken {
                            table.remove(entry: hit.entry)
                            counters.reusedClosing &+= 1
                        }
                    } else {
                        taken = false
                    }
                } else {
                    taken = table.contains(candidate)
                }
                if !taken {
                    counters.allocated &+= 1
                    return port
                }
            }
            // Another stretch of the range: remix the offset (splitmix64's finaliser).
            offset = (offset ^ (offset >> 31)) &* 0x94D0_49BB_1331_11EB &+ 0x9E37_79B9_7F4A_7C15
        }
        counters.exhausted &+= 1
        return nil
    }
}
