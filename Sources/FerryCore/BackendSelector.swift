import FerryPacket

/// Chooses one backend of a set for a new flow. One name, interchangeable strategies
/// (as Cilium's `lb4_select_backend_id` is random or Maglev by configuration): the
/// pipeline passes a number and gets an index into the set's backends, whatever the
/// strategy.
///
/// A selector is built by the control plane with the set (`ServiceTable`), immutable
/// afterwards, and `select(hash:)` neither allocates nor locks.
public struct BackendSelector: Sendable, CustomStringConvertible {
    public enum Strategy: Hashable, Sendable, CustomStringConvertible {
        /// Consistent hashing: `hash` is `flowHash(...)` of the flow, and every node picks
        /// the same backend for the same flow and backend set. `tableSize` must be prime.
        case maglev(tableSize: Int = MaglevTable.defaultSize)
        /// Uniform choice: `hash` is a random number the caller draws per new flow
        /// (kube-proxy iptables' `statistic --mode random`). Nodes disagree, which is
        /// fine when every packet of a flow crosses the same node.
        case random

        /// Whether this strategy can be used (a Maglev table size must be prime).
        /// Configuration loaders check this and report a typed error; the table asserts it.
        public var isValid: Bool {
            switch self {
            case .maglev(let size): MaglevTable.isPrime(size)
            case .random: true
            }
        }

        public var description: String {
            switch self {
            case .maglev(let size): "maglev(\(size))"
            case .random: "random"
            }
        }
    }

    public let strategy: Strategy
    /// The number of backends selected among; `select` returns an index below it.
    public let backendCount: Int
    /// The Maglev table, when the strategy is Maglev and there are two or more backends
    /// (one backend needs no table).
    public let maglevTable: MaglevTable?

    /// A selector over `backends`, which must be sorted by (address, port) so that the
    /// Maglev table is the same on every node whatever order the endpoints arrived in.
    public init(strategy: Strategy, backends: [Backend]) {
        precondition(zip(backends, backends.dropFirst()).allSatisfy { $0.key < $1.key },
                     "backends must be sorted by (address, port) and distinct")
        self.init(strategy: strategy, keys: backends.map(\.key))
    }

    /// A selector over backend keys (`Backend.key`), sorted ascending.
    init(strategy: Strategy, keys: [UInt64]) {
        precondition(strategy.isValid, "invalid backend selection strategy \(strategy)")
        self.strategy = strategy
        backendCount = keys.count
        if case .maglev(let size) = strategy, keys.count > 1 {
            maglevTable = MaglevTable(keys: keys, size: size)
        } else {
            maglevTable = nil
        }
    }

    /// Reuses `table` for a set with the same backends (the caller checked they match).
    init(strategy: Strategy, backendCount: Int, table: MaglevTable?) {
        self.strategy = strategy
        self.backendCount = backendCount
        maglevTable = table
    }

    /// The index of the chosen backend, or nil when the set is empty.
    ///
    /// With `.random` the index is `⌊hash · N / 2³²⌋` (multiply-shift: no division, and
    /// the bias is below N/2³²).
    @inline(__always)
    public func select(hash: UInt32) -> Int? {
        if let maglevTable { return maglevTable.backendIndex(hash: hash) }
        if backendCount == 0 { return nil }
        return Int(truncatingIfNeeded: (UInt64(hash) &* UInt64(backendCount)) >> 32)
    }

    public var description: String {
        if let maglevTable { return "\(strategy) over \(backendCount) backends, \(maglevTable)" }
        return "\(strategy) over \(backendCount) backends"
    }
}
