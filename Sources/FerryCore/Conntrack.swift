import FerryPacket

// The connection tracking table: kernel nf_conntrack's model (two tuples per entry,
// both indexed, NAT derived from the pair; see ConntrackEntry.swift) in a fixed-size,
// preallocated, single-owner structure.
//
// Storage, all allocated once in `init` and never resized:
//
//   slots    capacity × ConntrackEntry (80 B)         the connections, by slot number
//   index    power of two ≥ 4 × capacity × UInt64     open addressing, linear probing,
//                                                     two keys per entry, so load ≤ 0.5
//   free     capacity × Int32                         stack of vacant slots
//
// ≈ 116 bytes per entry when the capacity is a power of two (80 + 32 + 4): 30 MB for the
// default 262,144 entries, 116 MB for 1M.
//
// An index word is `hash << 32 | (slot << 1 | direction) + 1`, 0 meaning empty. `hash`
// is the top 32 bits of the key's `slotHash`; its low bits are also the home position,
// so a probe compares 32 hash bits before it touches an entry (one cache miss per
// lookup in the common case), and deletion can recompute any word's home without
// rehashing its key. Deletion is backward-shift (Knuth vol. 3, 6.4, algorithm R), so
// there are no tombstones and probe runs never degrade with churn: no rehash is needed.
//
// Not thread-safe by design: each worker owns one table (RSS/fanout steer both
// directions of a flow to the same worker, or the agent runs one worker). No operation
// below other than `entries()`, `export` and `restore` allocates.

/// Where a lookup landed: the entry's slot and which of its tuples matched.
public struct ConntrackHit: Hashable, Sendable {
    public var entry: Int32
    public var direction: ConntrackDirection
    @inlinable public init(entry: Int32, direction: ConntrackDirection) {
        self.entry = entry
        self.direction = direction
    }
}

/// The outcome of `ConntrackTable.insert`.
public enum ConntrackInsertResult: Hashable, Sendable {
    /// The entry is in the table at this slot.
    case inserted(Int32)
    /// A live entry already owns the original or the reply tuple; nothing was inserted.
    /// Like the kernel's `insert_failed`: the caller drops the packet (a reply could not
    /// be told apart from the existing connection's replies).
    case clash(existing: Int32)
    /// The table is full and no entry near the new one could be evicted; nothing was
    /// inserted. The caller drops the packet, as the kernel does ("table full, dropping
    /// packet").
    case full
}

/// Event counts since the table was created (the `conntrack -S` equivalents).
public struct ConntrackCounters: Hashable, Sendable {
    /// Entries created by `insert` (and `restore`).
    public var inserted: UInt64 = 0
    /// `insert` refused because a tuple was taken (kernel `insert_failed`).
    public var clashes: UInt64 = 0
    /// `insert` refused because the table was full and nothing could be evicted (kernel `drop`).
    public var full: UInt64 = 0
    /// Not-assured entries evicted to make room (kernel `early_drop`).
    public var earlyDrops: UInt64 = 0
    /// Entries that timed out, found by a lookup, an insert or `expire`.
    public var expired: UInt64 = 0
    /// Entries removed on request (`remove`, `removeAll(where:)`).
    public var removed: UInt64 = 0
    /// TCP segments that were invalid in the connection's state (kernel `sIV`).
    public var tcpInvalid: UInt64 = 0
    /// TCP segments ignored in the connection's state (kernel `sIG`).
    public var tcpIgnored: UInt64 = 0
    public init() {}
}

public final class ConntrackTable {
    /// The most entries the table holds.
    public let capacity: Int
    public let timeouts: ConntrackTimeouts
    /// How many index positions, starting at the new flow's home position, a full table
    /// searches for an entry to evict. The kernel scans 8 hash buckets
    /// (`NF_CT_EVICTION_RANGE`) of chained entries; at load ≤ 0.5, 64 positions hold
    /// about 32 keys.
    public let earlyDropScan: Int
    public private(set) var count: Int = 0
    public private(set) var counters = ConntrackCounters()

    private let seed: UInt64
    private let slots: UnsafeMutablePointer<ConntrackEntry>
    private let index: UnsafeMutablePointer<UInt64>
    private let indexSize: Int
    private let indexMask: Int
    private let freeSlots: UnsafeMutablePointer<Int32>
    private var freeCount: Int
    private var gcCursor: Int = 0

    public static let defaultCapacity = 262_144
    /// The index stores `slot << 1 | direction` in 31 bits and home positions in 32.
    public static let maximumCapacity = 1 << 29

    /// - Parameters:
    ///   - capacity: the most entries, fixed for the table's life.
    ///   - hashSeed: slot placement seed; pass a random value in production (see
    ///     `FlowKey.slotHash`), a fixed one in tests.
    public init(capacity: Int = ConntrackTable.defaultCapacity, timeouts: ConntrackTimeouts = .kubernetesDefaults,
                hashSeed: UInt64 = 0, earlyDropScan: Int = 64) {
        precondition(capacity > 0 && capacity <= Self.maximumCapacity, "conntrack capacity out of range")
        precondition(earlyDropScan > 0, "earlyDropScan must be positive")
        self.capacity = capacity
        self.timeouts = timeouts
        self.seed = hashSeed
        // Two keys per entry at load ≤ 0.5.
        var size = 8
        while size < 4 * capacity { size <<= 1 }
        indexSize = size
        indexMask = size - 1
        self.earlyDropScan = min(earlyDropScan, size)
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: .vacant, count: capacity)
        index = .allocate(capacity: size)
        index.initialize(repeating: 0, count: size)
        freeSlots = .allocate(capacity: capacity)
        // Popped from the top: slot 0 first, so small tables fill in slot order.
        for i in 0..<capacity { freeSlots[i] = Int32(capacity - 1 - i) }
        freeCount = capacity
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
        index.deallocate()
        freeSlots.deallocate()
    }

    /// Bytes of storage the table holds (fixed at init).
    public var memoryFootprint: Int {
        capacity * (MemoryLayout<ConntrackEntry>.stride + MemoryLayout<Int32>.stride)
            + indexSize * MemoryLayout<UInt64>.stride
    }

    /// The storage's addresses and sizes, for tests that check nothing is reallocated.
    var storageIdentity: [Int] {
        [Int(bitPattern: slots), Int(bitPattern: index), Int(bitPattern: freeSlots), capacity, indexSize]
    }

    // MARK: Lookup

    /// The entry one of whose tuples is `key`, or nil. An entry whose time is up
    /// (`now >= expires`) is removed here and reported absent.
    public func lookup(_ key: FlowKey, now: Timestamp) -> ConntrackHit? {
        let pos = find(key, tag: tag(key))
        if pos < 0 { return nil }
        let ref = Self.ref(index[pos])
        let slot = ref >> 1
        if now >= slots[slot].expires {
            removeSlot(slot)
            counters.expired &+= 1
            return nil
        }
        return ConntrackHit(entry: Int32(truncatingIfNeeded: slot), direction: ref & 1 == 0 ? .original : .reply)
    }

    /// Is `key` either tuple of an entry, expired or not? (`lookup` is the call that
    /// also drops expired entries.)
    public func contains(_ key: FlowKey) -> Bool {
        find(key, tag: tag(key)) >= 0
    }

    /// The entry in `entry`'s slot. The slot must hold a connection.
    public subscript(entry entry: Int32) -> ConntrackEntry {
        let slot = Int(entry)
        precondition(slot >= 0 && slot < capacity && slots[slot].inUse, "no conntrack entry in this slot")
        return slots[slot]
    }

    // MARK: Insert

    /// Creates an entry for a new flow, accounting the packet that created it (do not
    /// `observe` that packet again).
    ///
    /// Policy, in order:
    /// 1. Clash: if a live entry already owns `original` or `reply`, nothing is inserted
    ///    and `.clash(existing:)` names it. An *expired* owner is removed first and the
    ///    insert goes on. Both tuples must be unique because each indexes the entry; two
    ///    flows whose replies would look the same cannot both be tracked (the kernel
    ///    fails such inserts the same way and counts `insert_failed`).
    /// 2. Full: when every slot is taken, like the kernel's `early_drop`, the table
    ///    looks at the `earlyDropScan` index positions from the new original tuple's
    ///    home position and frees the first expired entry there, else the first one that
    ///    is not assured (`earlyDrops`). Assured connections are never evicted; if the
    ///    scan finds nothing, the insert is refused with `.full`.
    ///
    /// - Parameters:
    ///   - frontend: the service-table frontend that chose the backend, or -1.
    ///   - initialState: from `ConnState.initial(for:tcpFlags:)`; not `.none`.
    ///   - bytes: the creating packet's IP length, counted in the original direction.
    public func insert(original: FlowKey, reply: FlowKey, now: Timestamp, frontend: Int32 = -1,
                       initialState: ConnState, bytes: UInt64 = 0) -> ConntrackInsertResult {
        precondition(initialState != .none, "an entry cannot start in state none")
        let entry = ConntrackEntry(
            original: original, reply: reply, state: initialState,
            expires: now + timeouts.timeout(for: initialState, seenReply: false),
            frontend: frontend, originalPackets: 1, originalBytes: bytes)
        return place(entry, now: now)
    }

    private func place(_ entry: ConntrackEntry, now: Timestamp) -> ConntrackInsertResult {
        let originalTag = tag(entry.original)
        let replyTag = tag(entry.reply)
        if let existing = liveOwner(entry.original, tag: originalTag, now: now) {
            counters.clashes &+= 1
            return .clash(existing: existing)
        }
        // A tuple equal to its own reply (src == dst, same ports, no NAT) is indexed once.
        let selfReverse = entry.original == entry.reply
        if !selfReverse, let existing = liveOwner(entry.reply, tag: replyTag, now: now) {
            counters.clashes &+= 1
            return .clash(existing: existing)
        }
        if freeCount == 0 && !evictOne(near: Int(originalTag) & indexMask, now: now) {
            counters.full &+= 1
            return .full
        }
        freeCount -= 1
        let slot = Int(freeSlots[freeCount])
        slots[slot] = entry
        insertIndex(tag: originalTag, ref: slot << 1)
        if !selfReverse { insertIndex(tag: replyTag, ref: slot << 1 | 1) }
        count += 1
        counters.inserted &+= 1
        return .inserted(Int32(truncatingIfNeeded: slot))
    }

    /// The slot of the live entry that owns `key`; an expired owner is removed.
    private func liveOwner(_ key: FlowKey, tag: UInt32, now: Timestamp) -> Int32? {
        let pos = find(key, tag: tag)
        if pos < 0 { return nil }
        let slot = Self.ref(index[pos]) >> 1
        if now >= slots[slot].expires {
            removeSlot(slot)
            counters.expired &+= 1
            return nil
        }
        return Int32(truncatingIfNeeded: slot)
    }

    /// Frees one slot near `home`: an expired entry if the scan meets one, else the first
    /// entry that is not assured. Returns false when neither is found.
    private func evictOne(near home: Int, now: Timestamp) -> Bool {
        var victim = -1
        var pos = home
        for _ in 0..<earlyDropScan {
            let word = index[pos]
            if word != 0 {
                let slot = Self.ref(word) >> 1
                if now >= slots[slot].expires {
                    removeSlot(slot)
                    counters.expired &+= 1
                    return true
                }
                if victim < 0 && !slots[slot].assured { victim = slot }
            }
            pos = (pos + 1) & indexMask
        }
        if victim < 0 { return false }
        removeSlot(victim)
        counters.earlyDrops &+= 1
        return true
    }

    // MARK: Update

    /// Accounts a packet that matched `entry` in `direction` and runs the state machine:
    /// packets and bytes per direction, `seenReply`/`assured`, the state and the expiry.
    /// Returns the state after the packet.
    ///
    /// - TCP: `TCPConntrack.transition`. A valid segment moves the state and restarts
    ///   the timer with the new state's timeout; an ignored or invalid one changes
    ///   neither (counted in `tcpIgnored`/`tcpInvalid`; a caller that wants to drop
    ///   invalid segments asks `TCPConntrack.transition` first). Assured is set when an
    ///   ACK completes the handshake, or confirms an established connection, after a
    ///   reply was seen (the kernel's rule in `nf_conntrack_tcp_packet`). An RST before any
    ///   reply ends the entry at once (its expiry becomes `now`), as the kernel kills such
    ///   entries; the entry stays readable until the next lookup or `expire`. A SYN in the
    ///   original direction on `timeWait`/`close` reopens the same entry as a new
    ///   connection (seen-reply and assured cleared).
    /// - UDP: a reply marks the entry replied and assured; the timeout is `udpReplied`
    ///   from then on, `udpUnreplied` before.
    /// - ICMP and other protocols: a reply sets `seenReply`; the timeout is refreshed.
    ///
    /// Packets and bytes count every packet, including invalid and ignored segments,
    /// because the forwarder still forwards them.
    @discardableResult
    public func observe(entry: Int32, direction: ConntrackDirection, tcpFlags: TCPFlagBits = [],
                        bytes: UInt64, now: Timestamp) -> ConnState {
        let slot = Int(entry)
        precondition(slot >= 0 && slot < capacity && slots[slot].inUse, "no conntrack entry in this slot")
        let e = slots + slot
        if direction == .original {
            e.pointee.originalPackets &+= 1
            e.pointee.originalBytes &+= bytes
        } else {
            e.pointee.replyPackets &+= 1
            e.pointee.replyBytes &+= bytes
        }
        let old = e.pointee.state
        switch old {
        case .udpUnreplied, .udpReplied:
            if direction == .reply {
                e.pointee.state = .udpReplied
                e.pointee.seenReply = true
                e.pointee.assured = true
            }
        case .icmp, .generic:
            if direction == .reply { e.pointee.seenReply = true }
        default:
            switch TCPConntrack.transition(from: old, direction: direction, flags: tcpFlags) {
            case .invalid:
                counters.tcpInvalid &+= 1
                return old
            case .ignore:
                counters.tcpIgnored &+= 1
                return old
            case .next(let new):
                if tcpFlags.contains(.rst) && !e.pointee.seenReply {
                    // nf_conntrack_tcp_packet: "If only reply is a RST, we can consider
                    // ourselves not to have an established connection ... delete the
                    // conntrack immediately."
                    e.pointee.state = .close
                    e.pointee.expires = now
                    return .close
                }
                if new == .synSent && (old == .timeWait || old == .close) && direction == .original {
                    // Reopen (RFC 9293 3.10.7.4 lets a SYN reopen a TIME-WAIT connection).
                    e.pointee.seenReply = false
                    e.pointee.assured = false
                }
                if direction == .reply { e.pointee.seenReply = true }
                if new == .established && (old == .synRecv || old == .established) && e.pointee.seenReply {
                    e.pointee.assured = true
                }
                e.pointee.state = new
            }
        }
        e.pointee.expires = now + timeouts.timeout(for: e.pointee.state, seenReply: e.pointee.seenReply)
        return e.pointee.state
    }

    // MARK: Removal and expiry

    /// Removes the connection in `entry`'s slot (counted in `removed`).
    public func remove(entry: Int32) {
        let slot = Int(entry)
        precondition(slot >= 0 && slot < capacity && slots[slot].inUse, "no conntrack entry in this slot")
        removeSlot(slot)
        counters.removed &+= 1
    }

    /// Incremental garbage collection: examines the next `budget` slots after a cursor
    /// that survives between calls, removes those whose time is up, and returns how
    /// many it removed. A full sweep takes `capacity / budget` calls; the agent calls this
    /// once per batch so no single call stalls the ring. Lookups remove expired entries
    /// on their own, so this only reclaims entries nobody asks for.
    @discardableResult
    public func expire(now: Timestamp, budget: Int) -> Int {
        var remaining = min(max(budget, 0), capacity)
        var removed = 0
        while remaining > 0 {
            let slot = gcCursor
            gcCursor = slot + 1 == capacity ? 0 : slot + 1
            if slots[slot].inUse && now >= slots[slot].expires {
                removeSlot(slot)
                removed += 1
            }
            remaining -= 1
        }
        counters.expired &+= UInt64(removed)
        return removed
    }

    /// Removes every entry for which `shouldRemove` is true and returns how many.
    /// Control-plane path (e.g. purge UDP entries to an endpoint that went away, as
    /// kube-proxy does with `conntrack -D`); it walks the whole table.
    @discardableResult
    public func removeAll(where shouldRemove: (ConntrackEntry) throws -> Bool) rethrows -> Int {
        var removed = 0
        for slot in 0..<capacity where slots[slot].inUse {
            if try shouldRemove(slots[slot]) {
                removeSlot(slot)
                removed += 1
            }
        }
        counters.removed &+= UInt64(removed)
        return removed
    }

    // MARK: Listing and saving

    /// Calls `body` with every entry (expired ones included until something removes
    /// them), in slot order.
    public func forEach(_ body: (Int32, ConntrackEntry) throws -> Void) rethrows {
        for slot in 0..<capacity where slots[slot].inUse {
            try body(Int32(truncatingIfNeeded: slot), slots[slot])
        }
    }

    /// A copy of every entry, in slot order (allocates; for listing).
    public func entries() -> [ConntrackEntry] {
        var out: [ConntrackEntry] = []
        out.reserveCapacity(count)
        forEach { _, e in out.append(e) }
        return out
    }

    /// Every live entry with its remaining lifetime, for the next process.
    public func export(now: Timestamp) -> [ConntrackRecord] {
        var out: [ConntrackRecord] = []
        out.reserveCapacity(count)
        forEach { _, e in
            if now < e.expires {
                out.append(ConntrackRecord(entry: e, remainingNanoseconds: e.expires.nanoseconds - now.nanoseconds))
            }
        }
        return out
    }

    /// Loads records from `export`, each expiring its remaining lifetime after `now`.
    /// Records go through `insert`'s policy: a clash or a full table skips the record.
    /// Records with no lifetime left, or in state `none`, are skipped. Frontend numbers are
    /// kept as saved: they are only meaningful if the new service table numbers frontends
    /// the same way (the reply path needs only the tuples). Returns how many were loaded.
    @discardableResult
    public func restore(_ records: [ConntrackRecord], now: Timestamp) -> Int {
        var loaded = 0
        for r in records where r.remainingNanoseconds > 0 && r.entry.state != .none {
            if case .inserted = place(r.rebased(now: now), now: now) { loaded += 1 }
        }
        return loaded
    }

    // MARK: Index internals

    @inline(__always)
    private func tag(_ key: FlowKey) -> UInt32 {
        UInt32(truncatingIfNeeded: key.slotHash(seed: seed) >> 32)
    }

    @inline(__always)
    private static func ref(_ word: UInt64) -> Int {
        // Stored +1 so that 0 means empty.
        Int(UInt32(truncatingIfNeeded: word)) - 1
    }

    /// The index position holding `key`, or -1. Terminates because load ≤ 0.5 leaves
    /// empty positions.
    @inline(__always)
    private func find(_ key: FlowKey, tag: UInt32) -> Int {
        var pos = Int(tag) & indexMask
        while true {
            let word = index[pos]
            if word == 0 { return -1 }
            if UInt32(truncatingIfNeeded: word >> 32) == tag {
                let ref = Self.ref(word)
                let e = slots + (ref >> 1)
                if (ref & 1 == 0 ? e.pointee.original : e.pointee.reply) == key { return pos }
            }
            pos = (pos + 1) & indexMask
        }
    }

    @inline(__always)
    private func insertIndex(tag: UInt32, ref: Int) {
        var pos = Int(tag) & indexMask
        while index[pos] != 0 { pos = (pos + 1) & indexMask }
        index[pos] = UInt64(tag) << 32 | UInt64(ref + 1)
    }

    /// Backward-shift deletion: walk the run after the hole and move back every word
    /// whose home position is not in the cyclic interval (hole, word's position], so
    /// every remaining key stays reachable from its home without tombstones.
    private func removeIndex(at start: Int) {
        var hole = start
        var pos = start
        while true {
            pos = (pos + 1) & indexMask
            let word = index[pos]
            if word == 0 { break }
            let home = Int(UInt32(truncatingIfNeeded: word >> 32)) & indexMask
            if (pos - home) & indexMask >= (pos - hole) & indexMask {
                index[hole] = word
                hole = pos
            }
        }
        index[hole] = 0
    }

    private func removeSlot(_ slot: Int) {
        let e = slots[slot]
        let originalPos = find(e.original, tag: tag(e.original))
        precondition(originalPos >= 0, "conntrack index lost an original tuple")
        removeIndex(at: originalPos)
        if e.reply != e.original {
            let replyPos = find(e.reply, tag: tag(e.reply))
            precondition(replyPos >= 0, "conntrack index lost a reply tuple")
            removeIndex(at: replyPos)
        }
        slots[slot] = .vacant
        freeSlots[freeCount] = Int32(truncatingIfNeeded: slot)
        freeCount += 1
        count -= 1
    }
}
