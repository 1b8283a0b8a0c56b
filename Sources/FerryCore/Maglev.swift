import FerryPacket

/// A Maglev lookup table: `size` slots, each holding the index of a backend in a list
/// sorted by (address, port).
///
/// Follows Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
/// Balancer", NSDI 2016, §3.4 and Pseudocode 1. Each backend `i` has a permutation of
/// the slots, `permutation[i][j] = (offset_i + j·skip_i) mod M`, with
/// `offset_i = h1(backend) mod M` and `skip_i = h2(backend) mod (M − 1) + 1` (M prime,
/// so every permutation visits every slot). Backends take turns claiming the next free
/// slot of their own permutation until the table is full.
///
/// What that buys:
/// - Balance: each backend owns ⌊M/N⌋ or ⌈M/N⌉ slots (one per round).
/// - Minimal disruption: removing one backend of N re-maps its own slots and only a
///   small fraction of the others (the paper measures this; `MaglevTests` asserts it).
/// - Agreement: h1 and h2 are fixed functions of `address:port` (see `FlowHash.swift`),
///   so every node builds the same table from the same backends.
///
/// Storage is compact: one byte per slot up to 255 backends, two bytes up to 65,535,
/// four beyond. A 16,381-slot table for a typical Service is 16 KiB.
public final class MaglevTable: Sendable, Equatable, CustomStringConvertible {
    /// The table size Cilium and Katran also default to: a prime, large enough that
    /// backends differ by at most 1 slot in ~1,600 at N = 10 (0.06 %).
    public static let defaultSize = 16381

    /// The number of slots, M (a prime).
    public let size: Int
    /// The number of backends, N; every slot holds a value in `0..<backendCount`.
    public let backendCount: Int

    enum Storage: Sendable, Equatable {
        case narrow([UInt8])
        case medium([UInt16])
        case wide([UInt32])
    }
    let storage: Storage

    /// Builds the table for backends given as `(address, port)`, in the order given: the
    /// index stored in a slot is the position in `backends`. Callers that want the same
    /// table on every node pass the backends sorted by (address, port), as `ServiceTable`
    /// and `BackendSelector` do.
    ///
    /// - Precondition: `backends` is not empty and `size` is prime.
    public convenience init(backends: [(address: IPv4Address, port: UInt16)], size: Int = MaglevTable.defaultSize) {
        self.init(keys: backends.map { MaglevTable.key(address: $0.address, port: $0.port) }, size: size)
    }

    /// Builds the table from backend keys (`MaglevTable.key(address:port:)`), in order.
    init(keys: [UInt64], size: Int) {
        precondition(!keys.isEmpty, "a Maglev table needs at least one backend")
        precondition(MaglevTable.isPrime(size), "Maglev table size \(size) is not prime")
        self.size = size
        backendCount = keys.count
        let scratch = UnsafeMutablePointer<UInt32>.allocate(capacity: size)
        defer { scratch.deallocate() }
        MaglevTable.populate(scratch, size: size, keys: keys)
        // Narrow once at the end: populate runs on one concrete type (fast even in a
        // debug build), and the copy is O(M).
        if keys.count <= Int(UInt8.max) {
            storage = .narrow(Array(unsafeUninitializedCapacity: size) { buf, n in
                let out = buf.baseAddress!
                for s in 0..<size { out[s] = UInt8(truncatingIfNeeded: scratch[s]) }
                n = size
            })
        } else if keys.count <= Int(UInt16.max) {
            storage = .medium(Array(unsafeUninitializedCapacity: size) { buf, n in
                let out = buf.baseAddress!
                for s in 0..<size { out[s] = UInt16(truncatingIfNeeded: scratch[s]) }
                n = size
            })
        } else {
            storage = .wide(Array(UnsafeBufferPointer(start: scratch, count: size)))
        }
    }

    /// The backend key the permutation hashes: `address << 16 | port`.
    @inline(__always)
    static func key(address: IPv4Address, port: UInt16) -> UInt64 {
        UInt64(address.value) << 16 | UInt64(port)
    }

    /// Pseudocode 1 of the paper, with the permutation generated on the fly
    /// (`next += skip mod M`) instead of stored: O(N) state, no per-slot allocation.
    /// The expected work is about M·ln M probes (the last free slots are the slowest
    /// to find), independent of N.
    static func populate(_ entry: UnsafeMutablePointer<UInt32>, size m: Int, keys: [UInt64]) {
        let n = keys.count
        let empty = UInt32.max
        entry.initialize(repeating: empty, count: m)
        // position[i]: the slot backend i tries next (its permutation at index next[i]).
        let position = UnsafeMutablePointer<Int>.allocate(capacity: n)
        let skip = UnsafeMutablePointer<Int>.allocate(capacity: n)
        defer {
            position.deallocate()
            skip.deallocate()
        }
        for i in 0..<n {
            let offset = HashMix.murmur(keys[i] ^ HashMix.golden) % UInt64(m)
            let step = HashMix.stafford13(keys[i] ^ HashMix.second) % UInt64(m - 1) + 1
            position[i] = Int(offset)
            skip[i] = Int(step)
        }
        var filled = 0
        while true {
            for i in 0..<n {
                var c = position[i]
                let s = skip[i]
                // Safe: c < m and s < m, so c + s < 2m and one subtraction wraps it.
                while entry[c] != empty {
                    c &+= s
                    if c >= m { c &-= m }
                }
                entry[c] = UInt32(truncatingIfNeeded: i)
                c &+= s
                if c >= m { c &-= m }
                position[i] = c
                filled &+= 1
                if filled == m { return }
            }
        }
    }

    /// The backend index for a flow hash.
    ///
    /// The slot is `⌊hash · M / 2³²⌋` (Lemire's multiply-shift range reduction) rather
    /// than the paper's `hash mod M`: equally uniform for a well-mixed hash, and no
    /// division per packet.
    @inline(__always)
    public func backendIndex(hash: UInt32) -> Int {
        let slot = Int(truncatingIfNeeded: (UInt64(hash) &* UInt64(size)) >> 32)
        switch storage {
        case .narrow(let e): return Int(e[slot])
        case .medium(let e): return Int(e[slot])
        case .wide(let e): return Int(e[slot])
        }
    }

    /// The backend index stored in `slot` (0..<size).
    public subscript(slot: Int) -> Int {
        switch storage {
        case .narrow(let e): Int(e[slot])
        case .medium(let e): Int(e[slot])
        case .wide(let e): Int(e[slot])
        }
    }

    /// Bytes per slot: 1, 2 or 4.
    public var bytesPerSlot: Int {
        switch storage {
        case .narrow: 1
        case .medium: 2
        case .wide: 4
        }
    }

    /// How many slots each backend owns (index = backend index).
    public var slotsPerBackend: [Int] {
        var counts = [Int](repeating: 0, count: backendCount)
        for s in 0..<size { counts[self[s]] += 1 }
        return counts
    }

    public static func == (a: MaglevTable, b: MaglevTable) -> Bool {
        a === b || (a.size == b.size && a.backendCount == b.backendCount && a.storage == b.storage)
    }

    public var description: String { "MaglevTable(M=\(size), N=\(backendCount), \(bytesPerSlot) B/slot)" }

    /// Trial division; table sizes are at most a few hundred thousand.
    public static func isPrime(_ n: Int) -> Bool {
        if n < 2 { return false }
        if n < 4 { return true }
        if n % 2 == 0 || n % 3 == 0 { return false }
        var d = 5
        while d * d <= n {
            if n % d == 0 || n % (d + 2) == 0 { return false }
            d += 6
        }
        return true
    }
}
