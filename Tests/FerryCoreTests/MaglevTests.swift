import FerryPacket
import Testing

@testable import FerryCore

// Maglev's three promises (NSDI 2016 §3.4), measured over 100,000 flows hashed with
// `flowHash`, plus the properties of the hash itself.

/// SplitMix64: a deterministic source of test inputs (not the code under test).
private struct TestRandom {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private func backends(_ n: Int, base: UInt32 = 0x0AF4_0000) -> [Backend] {
    (1...n).map { Backend(address: IPv4Address(base + UInt32($0)), port: 8080) }
}

/// 100,000 client flows to one VIP: sources 10.1.0.0/16, ephemeral ports.
private let flowHashes: [UInt32] = {
    var r = TestRandom(state: 1)
    let vip = IPv4Address(10, 96, 0, 10)
    return (0..<100_000).map { _ in
        let x = r.next()
        return flowHash(source: IPv4Address(0x0A01_0000 | UInt32(x & 0xFFFF)), destination: vip,
                        sourcePort: UInt16(32768 + (x >> 16) % 28232), destinationPort: 80, protocol: .tcp)
    }
}()

@Test func removingOneOfTenBackendsMovesItsFlowsAndKeepsAtLeast95PercentOfTheOthers() {
    let ten = backends(10)
    let removed = ten[3]
    let nine = ten.filter { $0 != removed }
    let before = BackendSelector(strategy: .maglev(), backends: ten)
    let after = BackendSelector(strategy: .maglev(), backends: nine)
    var onRemoved = 0
    var others = 0
    var kept = 0
    for h in flowHashes {
        let old = ten[before.select(hash: h)!]
        let new = nine[after.select(hash: h)!]
        #expect(new != removed)
        if old == removed {
            onRemoved += 1
        } else {
            others += 1
            if old == new { kept += 1 }
        }
    }
    let keptShare = Double(kept) / Double(others)
    print("maglev 10→9 backends: \(onRemoved) of \(flowHashes.count) flows were on the removed one; "
          + "\(kept) of \(others) others kept their backend (\(keptShare * 100) %)")
    #expect(keptShare >= 0.95)
    // The removed backend held about a tenth of the flows (±10 % of that tenth).
    #expect(abs(onRemoved - flowHashes.count / 10) <= flowHashes.count / 100)
}

@Test func tenBackendsEachReceiveATenthOfTheFlowsWithin10Percent() {
    let selector = BackendSelector(strategy: .maglev(), backends: backends(10))
    var counts = [Int](repeating: 0, count: 10)
    for h in flowHashes { counts[selector.select(hash: h)!] += 1 }
    let even = flowHashes.count / 10
    #expect(counts.allSatisfy { abs($0 - even) <= even / 10 }, "flows per backend: \(counts)")
}

@Test func eachBackendOwnsTheFloorOrCeilingOfItsShareOfSlots() {
    for n in [2, 3, 10, 97, 255, 256] {
        let table = MaglevTable(backends: backends(n).map { ($0.address, $0.port) }, size: MaglevTable.defaultSize)
        let slots = table.slotsPerBackend
        let floor = MaglevTable.defaultSize / n
        #expect(slots.allSatisfy { $0 == floor || $0 == floor + 1 }, "N=\(n): \(slots.min()!)...\(slots.max()!)")
        #expect(slots.reduce(0, +) == MaglevTable.defaultSize)
    }
}

@Test func identicalBackendsInAnyOrderGiveIdenticalTables() {
    var r = TestRandom(state: 42)
    let sorted = backends(25, base: 0x0AF4_0100) + backends(25, base: 0x0AF5_0000)
    let reference = MaglevTable(backends: sorted.map { ($0.address, $0.port) })
    for _ in 0..<5 {
        var shuffled = sorted
        for i in stride(from: shuffled.count - 1, to: 0, by: -1) {
            shuffled.swapAt(i, Int(r.next() % UInt64(i + 1)))
        }
        // What ServiceTable does: order by (address, port) before building.
        let table = MaglevTable(backends: shuffled.sorted { $0.key < $1.key }.map { ($0.address, $0.port) })
        #expect(table == reference)
        #expect(table !== reference)
    }
    // The table depends on the backends, not on anything else: a different port is a
    // different backend and a different table.
    var moved = sorted
    moved[7].port = 8081
    #expect(MaglevTable(backends: moved.map { ($0.address, $0.port) }) != reference)
}

@Test func tablesUseOneBytePerSlotUpTo255BackendsAndTwoBeyond() {
    #expect(MaglevTable(backends: backends(255).map { ($0.address, $0.port) }, size: 1021).bytesPerSlot == 1)
    #expect(MaglevTable(backends: backends(256).map { ($0.address, $0.port) }, size: 1021).bytesPerSlot == 2)
}

@Test func oneBackendNeedsNoTableAndNoBackendsSelectsNothing() {
    let one = BackendSelector(strategy: .maglev(), backends: backends(1))
    #expect(one.maglevTable == nil)
    #expect(one.select(hash: 0xDEAD_BEEF) == 0)
    let none = BackendSelector(strategy: .maglev(), backends: [])
    #expect(none.select(hash: 0xDEAD_BEEF) == nil)
    #expect(BackendSelector(strategy: .random, backends: []).select(hash: 1) == nil)
}

@Test func randomStrategySpreadsUniformNumbersEvenly() {
    let selector = BackendSelector(strategy: .random, backends: backends(7))
    var r = TestRandom(state: 9)
    var counts = [Int](repeating: 0, count: 7)
    for _ in 0..<70_000 { counts[selector.select(hash: UInt32(truncatingIfNeeded: r.next()))!] += 1 }
    #expect(counts.allSatisfy { abs($0 - 10_000) <= 1_000 }, "\(counts)")
}

@Test func tableSizesMustBePrime() {
    #expect(BackendSelector.Strategy.maglev().isValid)
    #expect(BackendSelector.Strategy.maglev(tableSize: 65537).isValid)
    #expect(!BackendSelector.Strategy.maglev(tableSize: 16384).isValid)
    #expect(!BackendSelector.Strategy.maglev(tableSize: 1).isValid)
    #expect(BackendSelector.Strategy.random.isValid)
    let primes = (0..<100).filter(MaglevTable.isPrime)
    #expect(primes == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97])
    #expect(!MaglevTable.isPrime(16383))  // 3 · 43 · 127
    #expect(MaglevTable.isPrime(16381))
}

// MARK: flowHash

@Test func flowHashFlipsAboutHalfTheOutputBitsForAnyOneFlippedInputBit() {
    var r = TestRandom(state: 7)
    // 104 input bits: source, destination, source port, destination port, protocol.
    var flips = [Int](repeating: 0, count: 104)
    let trials = 400
    for _ in 0..<trials {
        let a = r.next(), b = r.next()
        let s = UInt32(truncatingIfNeeded: a), d = UInt32(truncatingIfNeeded: a >> 32)
        let sp = UInt16(truncatingIfNeeded: b), dp = UInt16(truncatingIfNeeded: b >> 16)
        let p = UInt8(truncatingIfNeeded: b >> 32)
        func h(_ s: UInt32, _ d: UInt32, _ sp: UInt16, _ dp: UInt16, _ p: UInt8) -> UInt32 {
            flowHash(source: IPv4Address(s), destination: IPv4Address(d), sourcePort: sp, destinationPort: dp,
                     protocol: IPProtocol(rawValue: p))
        }
        let base = h(s, d, sp, dp, p)
        for bit in 0..<104 {
            let v: UInt32
            switch bit {
            case 0..<32: v = h(s ^ 1 << UInt32(bit), d, sp, dp, p)
            case 32..<64: v = h(s, d ^ 1 << UInt32(bit - 32), sp, dp, p)
            case 64..<80: v = h(s, d, sp ^ 1 << UInt16(bit - 64), dp, p)
            case 80..<96: v = h(s, d, sp, dp ^ 1 << UInt16(bit - 80), p)
            default: v = h(s, d, sp, dp, p ^ 1 << UInt8(bit - 96))
            }
            flips[bit] += (base ^ v).nonzeroBitCount
        }
    }
    // 16 of 32 bits on average; 400 trials put the mean within ±1 with a huge margin.
    let means = flips.map { Double($0) / Double(trials) }
    #expect(means.allSatisfy { $0 > 15 && $0 < 17 }, "mean flipped bits per input bit: \(means.min()!)...\(means.max()!)")
}

@Test func flowHashOfSequentialSourcePortsFillsBucketsEvenly() {
    var buckets = [Int](repeating: 0, count: 64)
    for port in 0..<64_000 {
        let h = flowHash(source: IPv4Address(10, 1, 2, 3), destination: IPv4Address(10, 96, 0, 10),
                         sourcePort: UInt16(port), destinationPort: 443, protocol: .tcp)
        buckets[Int(h >> 26)] += 1
    }
    #expect(buckets.allSatisfy { abs($0 - 1000) <= 150 }, "\(buckets.min()!)...\(buckets.max()!)")
}

@Test func flowHashIsDirectionalAndDependsOnTheProtocol() {
    let a = IPv4Address(10, 1, 2, 3), b = IPv4Address(10, 96, 0, 10)
    let forward = flowHash(source: a, destination: b, sourcePort: 40000, destinationPort: 53, protocol: .udp)
    #expect(forward == flowHash(source: a, destination: b, sourcePort: 40000, destinationPort: 53, protocol: .udp))
    #expect(forward != flowHash(source: b, destination: a, sourcePort: 53, destinationPort: 40000, protocol: .udp))
    #expect(forward != flowHash(source: a, destination: b, sourcePort: 40000, destinationPort: 53, protocol: .tcp))
}
