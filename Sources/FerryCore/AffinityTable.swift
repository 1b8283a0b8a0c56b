import FerryPacket

/// Session affinity by client IP (`sessionAffinity: ClientIP`): remembers which backend a
/// client was sent to for a Service port, so its next connections go there too, until
/// the entry has been idle for the Service's `timeoutSeconds`.
///
/// kube-proxy's iptables mode does this with `-m recent --rcheck --seconds T --reap` on
/// each endpoint and `--set` when a new connection is DNATed to it; so does this table:
/// `lookup` when a new flow arrives, `record` after its backend is chosen, which also
/// refreshes the entry. Established flows never consult it (conntrack pins them).
///
/// Layout: a fixed power-of-two number of slots chosen at init, open addressing with a
/// bounded probe window of `probeWindow` slots starting at the key's hash. No operation
/// allocates, and none costs more than one window: there is no probe chain to break, so
/// deletion just empties a slot (no tombstones).
///
/// When `record` finds every slot of the window taken by other live keys, it evicts the
/// one with the earliest expiry (the least recently refreshed, for equal timeouts) and
/// counts an eviction. A client that loses its entry that way is re-balanced on its
/// next connection, which is what kube-proxy does once `recent`'s list is full too.
///
/// One table per worker; not thread-safe.
public final class AffinityTable {
    public struct Counters: Hashable, Sendable {
        /// Lookups that found a live entry.
        public var hits: UInt64 = 0
        /// Lookups that found none (including an expired one).
        public var misses: UInt64 = 0
        /// Entries found expired and cleared by `lookup` or overwritten by `record`.
        public var expired: UInt64 = 0
        /// New entries written by `record`.
        public var inserts: UInt64 = 0
        /// `record` calls that refreshed an existing entry.
        public var refreshes: UInt64 = 0
        /// Live entries displaced because their probe window was full.
        public var evictions: UInt64 = 0
        /// Entries removed by `removeAll` (an endpoint or a Service port went away).
        public var removals: UInt64 = 0
    }

    /// The number of slots (the requested capacity rounded up to a power of two).
    public let capacity: Int
    /// How many consecutive slots a key may occupy from its hash position.
    public let probeWindow: Int
    public private(set) var counters = Counters()
    /// Occupied slots, live or not yet found expired.
    public private(set) var count = 0

    private struct Slot {
        var client: UInt32
        var servicePort: UInt32
        var backend: UInt32
        var port: UInt16
        var occupied: Bool
        /// `Timestamp.nanoseconds` after which the entry is dead.
        var expiry: UInt64

        static let empty = Slot(client: 0, servicePort: 0, backend: 0, port: 0, occupied: false, expiry: 0)
    }

    private let slots: UnsafeMutablePointer<Slot>
    private let mask: Int

    /// - Parameters:
    ///   - capacity: at least this many slots (rounded up to a power of two, minimum 8).
    ///   - probeWindow: slots searched per operation. 8 slots of 24 bytes are three
    ///     cache lines; a longer window fills the table further before evicting.
    public init(capacity: Int, probeWindow: Int = 8) {
        precondition(capacity > 0 && capacity <= 1 << 30, "affinity table capacity out of range")
        precondition(probeWindow > 0, "probe window must be positive")
        var size = 8
        while size < capacity { size <<= 1 }
        self.capacity = size
        self.probeWindow = min(probeWindow, size)
        mask = size - 1
        slots = .allocate(capacity: size)
        slots.initialize(repeating: .empty, count: size)
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
    }

    @inline(__always)
    private func start(client: UInt32, servicePort: UInt32) -> Int {
        let h = HashMix.murmur((UInt64(client) << 32 | UInt64(servicePort)) ^ HashMix.golden)
        return Int(truncatingIfNeeded: h) & mask
    }

    @inline(__always)
    private static func index(_ servicePort: Int) -> UInt32 {
        // Service port indices are small and only grow by one per new Service port.
        precondition(servicePort >= 0 && servicePort <= Int(UInt32.max), "service port index out of range")
        return UInt32(truncatingIfNeeded: servicePort)
    }

    /// The backend `client` was last sent to for `servicePort`, if that was less than the
    /// timeout ago. An expired entry is cleared and reported as a miss.
    public func lookup(client: IPv4Address, servicePort: Int, now: Timestamp) -> (address: IPv4Address, port: UInt16)? {
        let sp = Self.index(servicePort)
        var i = start(client: client.value, servicePort: sp)
        for _ in 0..<probeWindow {
            let slot = slots[i]
            if slot.occupied && slot.client == client.value && slot.servicePort == sp {
                if now.nanoseconds < slot.expiry {
                    counters.hits &+= 1
                    return (IPv4Address(slot.backend), slot.port)
                }
                slots[i] = .empty
                count -= 1
                counters.expired &+= 1
                counters.misses &+= 1
                return nil
            }
            i = (i &+ 1) & mask
        }
        counters.misses &+= 1
        return nil
    }

    /// Remembers (or refreshes) that `client` goes to `backend:port` for `servicePort`
    /// until `now + timeout`.
    public func record(client: IPv4Address, servicePort: Int, backend: IPv4Address, port: UInt16,
                       timeout: Seconds, now: Timestamp) {
        let sp = Self.index(servicePort)
        let expiry = (now + timeout).nanoseconds
        var i = start(client: client.value, servicePort: sp)
        // The victim if the key is not in the window: the first empty slot, else the
        // slot with the earliest expiry (an expired one always qualifies first).
        var victim = -1
        var victimExpiry = UInt64.max
        var victimIsEmpty = false
        for _ in 0..<probeWindow {
            let slot = slots[i]
            if slot.occupied {
                if slot.client == client.value && slot.servicePort == sp {
                    slots[i].backend = backend.value
                    slots[i].port = port
                    slots[i].expiry = expiry
                    counters.refreshes &+= 1
                    return
                }
                if !victimIsEmpty && slot.expiry < victimExpiry {
                    victim = i
                    victimExpiry = slot.expiry
                }
            } else if !victimIsEmpty {
                victim = i
                victimIsEmpty = true
            }
            i = (i &+ 1) & mask
        }
        if victimIsEmpty {
            count += 1
        } else if victimExpiry <= now.nanoseconds {
            counters.expired &+= 1
        } else {
            counters.evictions &+= 1
        }
        slots[victim] = Slot(client: client.value, servicePort: sp, backend: backend.value, port: port,
                             occupied: true, expiry: expiry)
        counters.inserts &+= 1
    }

    /// Forgets every entry pointing at `backend` (and `port`, when given): the endpoint
    /// went away, and its clients must be re-balanced rather than sent to a dead address.
    /// O(capacity); control-plane path.
    @discardableResult
    public func removeAll(whereBackend backend: IPv4Address, port: UInt16? = nil) -> Int {
        removeAll { $0.backend == backend.value && (port == nil || $0.port == port!) }
    }

    /// Forgets every entry of a Service port that no longer exists. O(capacity).
    @discardableResult
    public func removeAll(servicePort: Int) -> Int {
        let sp = Self.index(servicePort)
        return removeAll { $0.servicePort == sp }
    }

    /// Clears expired entries (they are also cleared lazily by `lookup` and reused by
    /// `record`); lets `count` reflect live entries for monitoring. O(capacity).
    @discardableResult
    public func removeExpired(now: Timestamp) -> Int {
        var removed = 0
        for i in 0..<capacity where slots[i].occupied && slots[i].expiry <= now.nanoseconds {
            slots[i] = .empty
            removed += 1
        }
        count -= removed
        counters.expired &+= UInt64(removed)
        return removed
    }

    private func removeAll(where matches: (Slot) -> Bool) -> Int {
        var removed = 0
        for i in 0..<capacity where slots[i].occupied && matches(slots[i]) {
            slots[i] = .empty
            removed += 1
        }
        count -= removed
        counters.removals &+= UInt64(removed)
        return removed
    }
}
