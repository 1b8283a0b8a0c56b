import FerryPacket

// Fixed, seedless hashing for the forwarding core.
//
// Why no seed: a flow's backend is chosen as `MaglevTable[flowHash(tuple)]`, and the
// Maglev table itself is built from hashes of the backends' addresses. With fixed
// functions every node in the cluster computes the same table and picks the same backend
// for the same flow, and an agent that restarts (losing its conntrack) sends a
// surviving flow back to the backend that already holds its TCP state. A per-process
// random seed (what Swift's `Hasher` uses) would break both.
//
// Changing any constant below re-maps flows across an upgrade: treat them as part of
// Ferry's behaviour, not an implementation detail.
//
// Hash flooding: an attacker who knows these functions can aim many flows at one
// backend, exactly as with Maglev or ECMP in hardware. No table here degrades under
// collisions (Maglev is a direct index; the affinity table has a bounded probe window
// and a stated eviction rule), so the cost is imbalance, not CPU.

/// The 64-bit mixers behind `flowHash`, the Maglev permutations and the affinity table.
/// Both are bijections on `UInt64` with full avalanche (every input bit flips each output
/// bit with probability close to 1/2).
enum HashMix {
    /// MurmurHash3's 64-bit finalizer `fmix64` (Austin Appleby, public domain).
    @inline(__always)
    static func murmur(_ k: UInt64) -> UInt64 {
        var h = k
        h ^= h >> 33
        h &*= 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        h &*= 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return h
    }

    /// David Stafford's "Mix13" variant of the SplitMix64 finalizer. Different shifts and
    /// multipliers from `murmur`, so the two give unrelated values for the same input;
    /// Maglev needs two independent hashes of each backend (NSDI 2016, §3.4).
    @inline(__always)
    static func stafford13(_ k: UInt64) -> UInt64 {
        var z = k
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The fractional part of the golden ratio, 2^64/φ. XORed into an input before a
    /// mixer so that the all-zero input does not map to zero (both mixers fix 0).
    static let golden: UInt64 = 0x9E37_79B9_7F4A_7C15
    /// A second odd constant (Marsaglia's xorshift64* multiplier) for the second input word.
    static let second: UInt64 = 0x2545_F491_4F6C_DD1D
}

/// A fixed, seedless, well-mixed hash of a flow's 5-tuple, used to index the Maglev table.
///
/// Construction: the addresses form one 64-bit word `source << 32 | destination`, the
/// ports and protocol another, `sourcePort << 32 | destinationPort << 16 | protocol`.
/// The first word goes through MurmurHash3's `fmix64`, the result is XORed with the
/// second word and goes through Stafford's Mix13; the high 32 bits are returned.
/// Both rounds are bijections, so two flows that differ only in ports (or only in
/// addresses) never collide before the final truncation to 32 bits.
///
/// The hash is directional: a reply's tuple hashes differently. Only the forward
/// direction of a new flow is ever hashed.
@inline(__always)
public func flowHash(source: IPv4Address, destination: IPv4Address, sourcePort: UInt16,
                     destinationPort: UInt16, protocol: IPProtocol) -> UInt32 {
    let addresses = UInt64(source.value) << 32 | UInt64(destination.value)
    let rest = UInt64(sourcePort) << 32 | UInt64(destinationPort) << 16 | UInt64(`protocol`.rawValue)
    let h = HashMix.stafford13(HashMix.murmur(addresses ^ HashMix.golden) ^ rest ^ HashMix.second)
    return UInt32(truncatingIfNeeded: h >> 32)
}
