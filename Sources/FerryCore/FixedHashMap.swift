// An immutable open-addressing map from 64-bit keys to 32-bit values, for the tables the
// packet path indexes (routes by prefix, neighbours by next hop). Built once off the
// packet path; a lookup is a multiply-shift hash and a short linear probe over flat
// memory, with no Hasher (SipHash) and no reference counting of nested collections.

public final class FixedHashMap: @unchecked Sendable {
    // Immutable after init, so sharing between threads is safe.
    @usableFromInline let keys: UnsafeMutablePointer<UInt64>
    @usableFromInline let values: UnsafeMutablePointer<Int32>
    @usableFromInline let mask: Int
    @usableFromInline let shift: UInt64
    public let count: Int

    /// Later duplicates of a key replace earlier ones.
    public init(_ pairs: [(UInt64, Int32)]) {
        var capacity = 8
        while capacity < pairs.count * 2 { capacity <<= 1 }  // load ≤ 0.5
        keys = .allocate(capacity: capacity)
        values = .allocate(capacity: capacity)
        values.initialize(repeating: -1, count: capacity)
        keys.initialize(repeating: 0, count: capacity)
        mask = capacity - 1
        shift = UInt64(64 - capacity.trailingZeroBitCount)
        var n = 0
        for (k, v) in pairs {
            var i = FixedHashMap.slot(k, shift)
            while values[i] >= 0 && keys[i] != k { i = (i + 1) & mask }
            if values[i] < 0 { n += 1 }
            keys[i] = k
            values[i] = v
        }
        count = n
    }

    deinit {
        keys.deallocate()
        values.deallocate()
    }

    /// Fibonacci hashing: the top bits of key × 2^64/φ.
    @inlinable @inline(__always)
    static func slot(_ key: UInt64, _ shift: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    @inlinable @inline(__always)
    public func value(for key: UInt64) -> Int32? {
        var i = FixedHashMap.slot(key, shift)
        while true {
            let v = values[i]
            if v < 0 { return nil }
            if keys[i] == key { return v }
            i = (i + 1) & mask
        }
    }
}
