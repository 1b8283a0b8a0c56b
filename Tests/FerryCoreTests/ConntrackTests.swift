import FerryPacket
import Foundation
import Testing

@testable import FerryCore

// The conntrack table: two tuples per entry, NAT derived from them, clash and full-table
// policy, expiry, purge, save/restore, and a randomised cross-check against a
// Dictionary model that also proves the storage is never reallocated.

private let pod = IPv4Address(10, 244, 1, 5)
private let clusterIP = IPv4Address(10, 96, 0, 10)
private let backend = IPv4Address(10, 244, 2, 7)
private let otherBackend = IPv4Address(10, 244, 3, 9)
private let node = IPv4Address(192, 168, 50, 2)

private func tcp(_ s: IPv4Address, _ sp: UInt16, _ d: IPv4Address, _ dp: UInt16) -> FlowKey {
    FlowKey(protocol: .tcp, source: s, sourcePort: sp, destination: d, destinationPort: dp)
}

private func udp(_ s: IPv4Address, _ sp: UInt16, _ d: IPv4Address, _ dp: UInt16) -> FlowKey {
    FlowKey(protocol: .udp, source: s, sourcePort: sp, destination: d, destinationPort: dp)
}

private func slot(_ r: ConntrackInsertResult) -> Int32? {
    if case .inserted(let s) = r { return s }
    return nil
}

/// SplitMix64: a deterministic generator for the randomised tests.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

struct ConntrackTests {
    let t0 = Timestamp.seconds(1_000)

    @Test("FlowKey.reversed swaps ends; an ICMP echo request reversed is its reply")
    func flowKeyReversal() {
        let k = tcp(pod, 40_000, clusterIP, 80)
        #expect(k.reversed() == tcp(clusterIP, 80, pod, 40_000))
        #expect(k.reversed().reversed() == k)
        #expect(k.protocol == .tcp)
        #expect(k.description == "TCP 10.244.1.5:40000 → 10.96.0.10:80")
        let request = FlowKey.icmpEcho(source: pod, destination: backend, identifier: 77)
        #expect(request.reversed() == FlowKey.icmpEcho(source: backend, destination: pod, identifier: 77))
        #expect(k.slotHash(seed: 1) == k.slotHash(seed: 1))
        #expect(k.slotHash(seed: 1) != k.slotHash(seed: 2))
        #expect(k.slotHash(seed: 1) != k.reversed().slotHash(seed: 1))
    }

    @Test("FlowKey encodes addresses as dotted quads and decodes back; bad addresses are rejected")
    func flowKeyCodable() throws {
        let k = udp(pod, 5353, clusterIP, 53)
        let data = try JSONEncoder().encode(k)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("\"10.244.1.5\""))
        #expect(try JSONDecoder().decode(FlowKey.self, from: data) == k)
        let bad = Data(text.replacingOccurrences(of: "10.244.1.5", with: "10.244.1").utf8)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(FlowKey.self, from: bad) }
    }

    @Test("SYN from pod 10.244.1.5:40000 to ClusterIP 10.96.0.10:80, DNATed to 10.244.2.7:8080: both directions find the entry with one lookup")
    func dnatEntryBothDirections() {
        let table = ConntrackTable(capacity: 16)
        let original = tcp(pod, 40_000, clusterIP, 80)
        let reply = tcp(backend, 8080, pod, 40_000)
        let s = slot(table.insert(original: original, reply: reply, now: t0, frontend: 7, initialState: .synSent, bytes: 60))
        #expect(s != nil)
        guard let s else { return }

        let forward = table.lookup(original, now: t0)
        #expect(forward == ConntrackHit(entry: s, direction: .original))
        // Forward rewrite: client → backend (destination NAT only).
        #expect(table[entry: s].translated(.original) == tcp(pod, 40_000, backend, 8080))

        let back = table.lookup(reply, now: t0)
        #expect(back == ConntrackHit(entry: s, direction: .reply))
        // Reverse NAT: the backend's answer leaves as if from the ClusterIP.
        #expect(table[entry: s].translated(.reply) == tcp(clusterIP, 80, pod, 40_000))

        let e = table[entry: s]
        #expect(e.isDestinationNAT && !e.isSourceNAT)
        #expect(e.frontend == 7 && e.originalPackets == 1 && e.originalBytes == 60)
        #expect(table.count == 1 && table.counters.inserted == 1)
        #expect(table.lookup(tcp(pod, 40_001, clusterIP, 80), now: t0) == nil)
    }

    @Test("masqueraded NodePort flow: reply is backend → node:snatPort; the answer is rewritten back to the client from the NodePort")
    func masqueradeEntry() {
        let table = ConntrackTable(capacity: 16)
        let external = IPv4Address(203, 0, 113, 9)
        let original = tcp(external, 51_000, node, 30_080)
        let reply = tcp(backend, 8080, node, 20_001)
        let s = slot(table.insert(original: original, reply: reply, now: t0, initialState: .synSent))!
        #expect(table[entry: s].translated(.original) == tcp(node, 20_001, backend, 8080))
        #expect(table.lookup(reply, now: t0) == ConntrackHit(entry: s, direction: .reply))
        #expect(table[entry: s].translated(.reply) == tcp(node, 30_080, external, 51_000))
        #expect(table[entry: s].isSourceNAT && table[entry: s].isDestinationNAT)
    }

    @Test("tuple clash: a second entry with a taken original or reply tuple is refused, names the owner and is counted")
    func tupleClash() {
        let table = ConntrackTable(capacity: 16)
        let original = tcp(pod, 40_000, clusterIP, 80)
        let reply = tcp(backend, 8080, pod, 40_000)
        let s = slot(table.insert(original: original, reply: reply, now: t0, initialState: .synSent))!

        // Same client flow again (e.g. a second worker's retry): original taken.
        #expect(table.insert(original: original, reply: tcp(otherBackend, 8080, pod, 40_000), now: t0, initialState: .synSent)
                == .clash(existing: s))
        // KERNEL-NOTES' case: the pod talks to the backend directly from the same port.
        // Its reply tuple backend:8080 → pod:40000 is the DNAT entry's reply tuple.
        let direct = tcp(pod, 40_000, backend, 8080)
        #expect(table.insert(original: direct, reply: direct.reversed(), now: t0, initialState: .synSent) == .clash(existing: s))
        #expect(table.counters.clashes == 2)
        #expect(table.count == 1)
        #expect(table.counters.inserted == 1)
        // The refused inserts left the index intact.
        #expect(table.lookup(reply, now: t0) == ConntrackHit(entry: s, direction: .reply))
        #expect(!table.contains(tcp(otherBackend, 8080, pod, 40_000)))
    }

    @Test("an expired owner of a tuple is reaped by insert, which then succeeds")
    func clashWithExpiredOwner() {
        let table = ConntrackTable(capacity: 16)
        let original = udp(pod, 5353, clusterIP, 53)
        _ = table.insert(original: original, reply: udp(backend, 53, pod, 5353), now: t0, initialState: .udpUnreplied)
        let later = t0 + Seconds(30)  // exactly the UDP unreplied timeout
        let r = table.insert(original: original, reply: udp(otherBackend, 53, pod, 5353), now: later, initialState: .udpUnreplied)
        #expect(slot(r) != nil)
        #expect(table.counters.expired == 1 && table.counters.clashes == 0)
        #expect(table.count == 1)
        #expect(!table.contains(udp(backend, 53, pod, 5353)))
        #expect(table.lookup(udp(otherBackend, 53, pod, 5353), now: later)?.direction == .reply)
    }

    @Test("full table of assured entries refuses a new flow and counts it")
    func fullOfAssured() {
        let table = ConntrackTable(capacity: 4)
        for i in 0..<4 {
            let o = udp(pod, UInt16(1000 + i), clusterIP, 53)
            let s = slot(table.insert(original: o, reply: udp(backend, 53, pod, UInt16(1000 + i)), now: t0, initialState: .udpUnreplied))!
            table.observe(entry: s, direction: .reply, bytes: 100, now: t0)  // replied → assured
        }
        #expect(table.count == 4)
        let r = table.insert(original: udp(pod, 2000, clusterIP, 53), reply: udp(backend, 53, pod, 2000), now: t0, initialState: .udpUnreplied)
        #expect(r == .full)
        #expect(table.counters.full == 1 && table.counters.earlyDrops == 0)
        #expect(table.count == 4)
    }

    @Test("full table evicts one unassured entry (early drop) and keeps every assured one")
    func earlyDrop() {
        let table = ConntrackTable(capacity: 4)
        var unassured: FlowKey?
        for i in 0..<4 {
            let o = udp(pod, UInt16(1000 + i), clusterIP, 53)
            let s = slot(table.insert(original: o, reply: udp(backend, 53, pod, UInt16(1000 + i)), now: t0, initialState: .udpUnreplied))!
            if i == 2 { unassured = o } else { table.observe(entry: s, direction: .reply, bytes: 100, now: t0) }
        }
        let newFlow = udp(pod, 2000, clusterIP, 53)
        let r = table.insert(original: newFlow, reply: udp(backend, 53, pod, 2000), now: t0, initialState: .udpUnreplied)
        #expect(slot(r) != nil)
        #expect(table.counters.earlyDrops == 1 && table.counters.full == 0)
        #expect(!table.contains(unassured!))
        #expect(table.count == 4)
        var assured = 0
        table.forEach { _, e in if e.assured { assured += 1 } }
        #expect(assured == 3)
    }

    @Test("full table reclaims an expired entry before evicting a live one")
    func fullReclaimsExpired() {
        let table = ConntrackTable(capacity: 2)
        _ = table.insert(original: udp(pod, 1, clusterIP, 53), reply: udp(backend, 53, pod, 1), now: t0, initialState: .udpUnreplied)
        let t1 = t0 + Seconds(20)
        _ = table.insert(original: udp(pod, 2, clusterIP, 53), reply: udp(backend, 53, pod, 2), now: t1, initialState: .udpUnreplied)
        // At t0+30 s the first entry has expired, the second has not; neither is assured.
        let r = table.insert(original: udp(pod, 3, clusterIP, 53), reply: udp(backend, 53, pod, 3), now: t0 + Seconds(30), initialState: .udpUnreplied)
        #expect(slot(r) != nil)
        #expect(table.counters.expired == 1 && table.counters.earlyDrops == 0)
        #expect(table.contains(udp(pod, 2, clusterIP, 53)))
    }

    @Test("a flow whose tuple is its own reply (same address and port both ends) is indexed once and removable")
    func selfReverseTuple() {
        let table = ConntrackTable(capacity: 4)
        let land = tcp(pod, 80, pod, 80)
        let s = slot(table.insert(original: land, reply: land.reversed(), now: t0, initialState: .synSent))!
        #expect(table.lookup(land, now: t0) == ConntrackHit(entry: s, direction: .original))
        table.remove(entry: s)
        #expect(!table.contains(land) && table.count == 0 && table.counters.removed == 1)
    }

    @Test("expire(now:budget:) sweeps incrementally from a cursor and counts what it removed")
    func incrementalExpiry() {
        let table = ConntrackTable(capacity: 16)
        for i in 0..<10 {
            _ = table.insert(original: udp(pod, UInt16(i), clusterIP, 53), reply: udp(backend, 53, pod, UInt16(i)), now: t0, initialState: .udpUnreplied)
        }
        // One long-lived TCP entry in slot 10.
        _ = table.insert(original: tcp(pod, 9999, clusterIP, 80), reply: tcp(backend, 8080, pod, 9999), now: t0, initialState: .synSent)
        let later = t0 + Seconds(30)
        #expect(table.expire(now: Timestamp(nanoseconds: later.nanoseconds - 1), budget: 16) == 0)
        // Slots fill in order from 0, so the first call (slots 0...3 after the full sweep
        // wrapped the cursor back to 0) removes four.
        #expect(table.expire(now: later, budget: 4) == 4)
        #expect(table.count == 7)
        #expect(table.expire(now: later, budget: 4) == 4)
        #expect(table.expire(now: later, budget: 4) == 2)  // slots 8, 9 (10 is TCP, 11 empty)
        #expect(table.expire(now: later, budget: 4) == 0)
        #expect(table.count == 1 && table.counters.expired == 10)
        #expect(table.contains(tcp(pod, 9999, clusterIP, 80)))
    }

    @Test("removeAll(where:) purges UDP entries to a removed endpoint and nothing else")
    func purgeEndpoint() {
        let table = ConntrackTable(capacity: 32)
        for i in 0..<5 {
            let p = UInt16(3000 + i)
            _ = table.insert(original: udp(pod, p, clusterIP, 53), reply: udp(backend, 53, pod, p), now: t0, initialState: .udpUnreplied)
            _ = table.insert(original: udp(pod, p + 100, clusterIP, 53), reply: udp(otherBackend, 53, pod, p + 100), now: t0, initialState: .udpUnreplied)
            _ = table.insert(original: tcp(pod, p, clusterIP, 80), reply: tcp(backend, 8080, pod, p), now: t0, initialState: .synSent)
        }
        let removed = table.removeAll { $0.protocol == .udp && $0.reply.source == backend }
        #expect(removed == 5)
        #expect(table.count == 10)
        #expect(table.counters.removed == 5)
        table.forEach { _, e in #expect(!(e.protocol == .udp && e.reply.source == backend)) }
        #expect(table.lookup(udp(backend, 53, pod, 3000), now: t0) == nil)
        #expect(table.lookup(tcp(backend, 8080, pod, 3000), now: t0)?.direction == .reply)
    }

    @Test("export then restore into a new process's clock keeps tuples, state, counters and remaining lifetime")
    func exportRestoreRoundTrip() throws {
        let a = ConntrackTable(capacity: 64)
        let established = slot(a.insert(original: tcp(pod, 40_000, clusterIP, 80), reply: tcp(backend, 8080, pod, 40_000),
                                        now: t0, frontend: 4, initialState: .synSent, bytes: 60))!
        a.observe(entry: established, direction: .reply, tcpFlags: [.syn, .ack], bytes: 60, now: t0)
        a.observe(entry: established, direction: .original, tcpFlags: [.ack], bytes: 52, now: t0 + Seconds(1))
        let dns = slot(a.insert(original: udp(pod, 5353, clusterIP, 53), reply: udp(backend, 53, node, 20_000),
                                now: t0 + Seconds(10), frontend: 9, initialState: .udpUnreplied, bytes: 70))!
        // An entry that has expired by export time is not exported.
        _ = a.insert(original: udp(pod, 6000, clusterIP, 53), reply: udp(backend, 53, pod, 6000), now: Timestamp.seconds(900), initialState: .udpUnreplied)

        let exportTime = t0 + Seconds(20)
        let records = a.export(now: exportTime)
        #expect(records.count == 2)
        let data = try JSONEncoder().encode(records)
        let decoded = try JSONDecoder().decode([ConntrackRecord].self, from: data)
        #expect(decoded == records)

        let b = ConntrackTable(capacity: 64, hashSeed: 0xDEAD_BEEF)  // new process, new seed
        let newNow = Timestamp.seconds(5)                          // and a new clock origin
        #expect(b.restore(decoded, now: newNow) == 2)
        #expect(b.count == 2)

        let tcpHit = b.lookup(tcp(backend, 8080, pod, 40_000), now: newNow)
        #expect(tcpHit?.direction == .reply)
        var e = b[entry: tcpHit!.entry]
        let before = a[entry: established]
        #expect(e.state == .established && e.assured && e.seenReply && e.frontend == 4)
        #expect(e.originalPackets == before.originalPackets && e.replyBytes == before.replyBytes)
        // 24 h from t0+1 s, 19 s already spent at export.
        #expect(e.expires == newNow + Seconds(86_400 - 19))

        let dnsHit = b.lookup(udp(pod, 5353, clusterIP, 53), now: newNow)!
        e = b[entry: dnsHit.entry]
        #expect(e.reply == a[entry: dns].reply && e.frontend == 9)
        #expect(e.expires == newNow + Seconds(20))  // 30 s from t0+10 s, 10 s spent
        #expect(b.lookup(udp(pod, 5353, clusterIP, 53), now: newNow + Seconds(20)) == nil)

        // Restoring again: the TCP record clashes with the live entry; the DNS entry
        // expired (and was removed by the lookup above), so its record loads again.
        #expect(b.restore(decoded, now: newNow) == 1)
        #expect(b.counters.clashes == 1)
    }

    @Test("entries() lists every connection; subscripted entries equal listed ones")
    func listing() {
        let table = ConntrackTable(capacity: 8)
        for i in 0..<3 {
            _ = table.insert(original: tcp(pod, UInt16(i), clusterIP, 80), reply: tcp(backend, 8080, pod, UInt16(i)), now: t0, initialState: .synSent)
        }
        let listed = table.entries()
        #expect(listed.count == 3)
        #expect(Set(listed.map(\.original.sourcePort)) == [0, 1, 2])
        table.forEach { s, e in #expect(table[entry: s] == e) }
    }

    @Test("randomised inserts, lookups, updates and removals agree with a Dictionary model; storage never moves")
    func modelCrossCheck() {
        let capacity = 1024
        let table = ConntrackTable(capacity: capacity, hashSeed: 42, earlyDropScan: 8)
        let identity = table.storageIdentity
        var rng = SplitMix64(state: 7)
        // Model: original key → (reply key, slot).
        var model: [FlowKey: (reply: FlowKey, slot: Int32)] = [:]
        var replies: [FlowKey: FlowKey] = [:]  // reply → original
        var earlyDrops: UInt64 = 0
        var fullRefusals: UInt64 = 0
        let now = t0
        for step in 0..<40_000 {
            // Small address/port space so that clashes and re-inserts happen.
            let c = IPv4Address(10, 244, 1, UInt8.random(in: 1...8, using: &rng))
            let port = UInt16.random(in: 1...200, using: &rng)
            let b = IPv4Address(10, 244, 2, UInt8.random(in: 1...4, using: &rng))
            let original = tcp(c, port, clusterIP, 80)
            let reply = tcp(b, 8080, c, port)
            switch Int.random(in: 0..<10, using: &rng) {
            case 0..<5:
                let r = table.insert(original: original, reply: reply, now: now, initialState: .synSent)
                if let owner = model[original] {
                    #expect(r == .clash(existing: owner.slot))
                } else if let o = replies[reply] {
                    #expect(r == .clash(existing: model[o]!.slot))
                } else if model.count == capacity {
                    // Every entry is unassured, so early drop makes room unless the
                    // 8-position scan happens to cross only empty index positions.
                    if r == .full {
                        fullRefusals += 1
                        continue
                    }
                    guard let s = slot(r) else {
                        Issue.record("unexpected \(r) at step \(step)")
                        return
                    }
                    let evicted = model.first { !table.contains($0.key) }!
                    model[evicted.key] = nil
                    replies[evicted.value.reply] = nil
                    model[original] = (reply, s)
                    replies[reply] = original
                    earlyDrops += 1
                } else {
                    guard let s = slot(r) else {
                        Issue.record("insert failed at step \(step): \(r)")
                        return
                    }
                    model[original] = (reply, s)
                    replies[reply] = original
                }
            case 5..<7:
                if let owner = model[original] {
                    table.remove(entry: owner.slot)
                    model[original] = nil
                    replies[owner.reply] = nil
                }
            case 7:
                if let owner = model[original] {
                    table.observe(entry: owner.slot, direction: .reply, tcpFlags: [.syn, .ack], bytes: 60, now: now)
                }
            default:
                let hit = table.lookup(original, now: now)
                #expect(hit == model[original].map { ConntrackHit(entry: $0.slot, direction: .original) })
                let back = table.lookup(reply, now: now)
                if let o = replies[reply] {
                    #expect(back == ConntrackHit(entry: model[o]!.slot, direction: .reply))
                } else {
                    #expect(back == nil)
                }
            }
        }
        #expect(table.count == model.count)
        #expect(earlyDrops > 0)  // the run did reach a full table
        #expect(table.counters.earlyDrops == earlyDrops && table.counters.full == fullRefusals)
        for (original, v) in model {
            #expect(table.lookup(original, now: now) == ConntrackHit(entry: v.slot, direction: .original))
            #expect(table.lookup(v.reply, now: now) == ConntrackHit(entry: v.slot, direction: .reply))
        }
        #expect(table.storageIdentity == identity)
        #expect(table.capacity == capacity)
    }

    @Test("per-entry memory: 80-byte entries, about 116 bytes per entry with the index and free list")
    func memoryPerEntry() {
        #expect(MemoryLayout<FlowKey>.size == 13)
        #expect(MemoryLayout<ConntrackEntry>.stride == 80)
        let table = ConntrackTable(capacity: ConntrackTable.defaultCapacity)
        #expect(table.memoryFootprint == ConntrackTable.defaultCapacity * 116)
    }

    @Test("a 1M-entry table loads 1,048,576 distinct flows and finds them from both directions")
    func oneMillionEntries() {
        let n = 1 << 20
        let table = ConntrackTable(capacity: n, hashSeed: 99)
        let identity = table.storageIdentity
        for i in 0..<n {
            let c = IPv4Address(0x0AF4_0000 | UInt32(i >> 8))  // 10.244.x.y pods
            let port = UInt16(10_000 + (i & 0xFF))
            let r = table.insert(original: tcp(c, port, clusterIP, 80), reply: tcp(backend, 8080, c, port), now: t0, initialState: .synSent)
            if slot(r) == nil {
                Issue.record("insert \(i) failed: \(r)")
                return
            }
        }
        #expect(table.count == n && table.counters.inserted == UInt64(n))
        for i in stride(from: 0, to: n, by: 4099) {
            let c = IPv4Address(0x0AF4_0000 | UInt32(i >> 8))
            let port = UInt16(10_000 + (i & 0xFF))
            #expect(table.lookup(tcp(c, port, clusterIP, 80), now: t0)?.direction == .original)
            #expect(table.lookup(tcp(backend, 8080, c, port), now: t0)?.direction == .reply)
        }
        #expect(table.insert(original: tcp(pod, 1, clusterIP, 443), reply: tcp(backend, 443, pod, 1), now: t0, initialState: .synSent)
                != .full)  // every entry is unassured: early drop makes room
        #expect(table.counters.earlyDrops == 1)
        #expect(table.storageIdentity == identity)
    }
}
