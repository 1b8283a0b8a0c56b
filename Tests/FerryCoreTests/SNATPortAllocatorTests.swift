import FerryPacket
import Testing

@testable import FerryCore

// Masquerade source ports: unique reply tuples, a bounded deterministic search, counted
// exhaustion, and reuse once an entry goes.

private let node = IPv4Address(192, 168, 50, 2)
private let nodePortIP = IPv4Address(192, 168, 50, 2)
private let backend = IPv4Address(10, 244, 2, 7)
private let otherBackend = IPv4Address(10, 244, 3, 9)

private func external(_ i: Int) -> IPv4Address { IPv4Address(203, 0, 113, UInt8(1 + i)) }

/// NodePort 30080 → backend:8080 from external client `i`, masqueraded to node:P.
private func masqueradedFlow(_ i: Int, port: UInt16, backendAddress: IPv4Address = backend) -> (FlowKey, FlowKey) {
    (FlowKey(protocol: .tcp, source: external(i), sourcePort: 40_000, destination: nodePortIP, destinationPort: 30_080),
     FlowKey(protocol: .tcp, source: backendAddress, sourcePort: 8080, destination: node, destinationPort: port))
}

private func template(_ b: IPv4Address = backend) -> FlowKey {
    FlowKey(protocol: .tcp, source: b, sourcePort: 8080, destination: node, destinationPort: 0)
}

struct SNATPortAllocatorTests {
    let now = Timestamp.seconds(50)

    @Test("a range of 8 ports serves 8 flows to one backend; the 9th is refused and counted")
    func eightPortsFillUp() {
        let table = ConntrackTable(capacity: 64)
        var snat = SNATPortAllocator(range: 20_000...20_007)
        var ports: Set<UInt16> = []
        for i in 0..<8 {
            guard let p = snat.allocate(replyTemplate: template(), table: table) else {
                Issue.record("flow \(i) got no port")
                return
            }
            #expect((20_000...20_007).contains(p))
            ports.insert(p)
            let (o, r) = masqueradedFlow(i, port: p)
            #expect(table.insert(original: o, reply: r, now: now, initialState: .synSent) != .full)
        }
        #expect(ports.count == 8)
        #expect(snat.allocate(replyTemplate: template(), table: table) == nil)
        #expect(snat.counters.allocated == 8 && snat.counters.exhausted == 1)
        // Exhaustive for a range within maxAttempts: the refusal probed all 8 ports.
        #expect(snat.counters.probes >= 8)

        // A different backend has its own reply tuples: the same ports are free for it.
        #expect(snat.allocate(replyTemplate: template(otherBackend), table: table) != nil)
    }

    @Test("freeing one entry lets the next flow in, on the freed port")
    func freedPortIsReused() {
        let table = ConntrackTable(capacity: 64)
        var snat = SNATPortAllocator(range: 20_000...20_007)
        var slots: [UInt16: Int32] = [:]
        for i in 0..<8 {
            let p = snat.allocate(replyTemplate: template(), table: table)!
            let (o, r) = masqueradedFlow(i, port: p)
            if case .inserted(let s) = table.insert(original: o, reply: r, now: now, initialState: .synSent) { slots[p] = s }
        }
        #expect(snat.allocate(replyTemplate: template(), table: table) == nil)
        table.remove(entry: slots[20_005]!)
        #expect(snat.allocate(replyTemplate: template(), table: table) == 20_005)
        #expect(snat.counters.exhausted == 1 && snat.counters.allocated == 9)
    }

    @Test("with now, an expired entry does not hold its port; without, it does until something removes it")
    func expiredEntriesFreePorts() {
        let table = ConntrackTable(capacity: 64)
        var snat = SNATPortAllocator(range: 20_000...20_003)
        for i in 0..<4 {
            let p = snat.allocate(replyTemplate: template(), table: table)!
            let (o, r) = masqueradedFlow(i, port: p)
            _ = table.insert(original: o, reply: r, now: now, initialState: .synSent)  // 120 s
        }
        let later = now + Seconds(120)
        #expect(snat.allocate(replyTemplate: template(), table: table) == nil)
        #expect(snat.allocate(replyTemplate: template(), table: table, now: Timestamp(nanoseconds: later.nanoseconds - 1)) == nil)
        #expect(snat.allocate(replyTemplate: template(), table: table, now: later) != nil)
        #expect(table.counters.expired == 1)
    }

    @Test("the search is deterministic per flow and seed, starting at a hash of the reply tuple")
    func deterministicStart() {
        let table = ConntrackTable(capacity: 8)
        var a = SNATPortAllocator(range: 20_000...29_999, seed: 5)
        var b = SNATPortAllocator(range: 20_000...29_999, seed: 5)
        var starts: Set<UInt16> = []
        for i in 0..<16 {
            let t = template(IPv4Address(10, 244, 2, UInt8(i + 1)))
            let p = a.allocate(replyTemplate: t, table: table)
            #expect(p == b.allocate(replyTemplate: t, table: table))
            if let p { starts.insert(p) }
        }
        // Different backends start at different places in the range.
        #expect(starts.count > 12)
        // The template's own destination port is ignored.
        var withPort = template()
        withPort.destinationPort = 12_345
        #expect(a.allocate(replyTemplate: withPort, table: table) == b.allocate(replyTemplate: template(), table: table))
    }

    @Test("at most maxAttempts probes in all: a full larger range is refused after exactly maxAttempts probes")
    func boundedSearch() {
        let table = ConntrackTable(capacity: 64)
        var snat = SNATPortAllocator(range: 20_000...20_015, maxAttempts: 4)
        // Every port of the range owned by a live entry.
        for (i, port) in (UInt16(20_000)...20_015).enumerated() {
            let (o, r) = masqueradedFlow(i, port: port)
            _ = table.insert(original: o, reply: r, now: now, initialState: .synSent)
        }
        let probesBefore = snat.counters.probes
        #expect(snat.allocate(replyTemplate: template(), table: table, flow: masqueradedFlow(99, port: 0).0) == nil)
        #expect(snat.counters.probes - probesBefore == 4)
        #expect(snat.counters.exhausted == 1)
    }

    @Test("flows to one backend start at different ports: 3,000 live flows cost about one probe each and none is refused")
    func flowsSpreadOverTheRange() {
        let table = ConntrackTable(capacity: 8192)
        var snat = SNATPortAllocator(range: 20_000...29_999)
        for i in 0..<3000 {
            // 3,000 clients: 203.0.113.0/24 does not hold them, so spread them over a /16.
            let o = FlowKey(protocol: .tcp, source: IPv4Address(198, 18, UInt8(i / 250), UInt8(1 + i % 250)),
                            sourcePort: 40_000, destination: nodePortIP, destinationPort: 30_080)
            guard let p = snat.allocate(replyTemplate: template(), table: table, flow: o) else {
                Issue.record("flow \(i) refused with \(table.count) live flows in a 10,000-port range")
                return
            }
            var r = template()
            r.destinationPort = p
            guard case .inserted = table.insert(original: o, reply: r, now: now, initialState: .synSent) else {
                Issue.record("flow \(i): the allocated port \(p) was taken")
                return
            }
        }
        #expect(snat.counters.exhausted == 0)
        // Without the flow's hash every search would start at one port and the k-th flow
        // would probe k ports (≈ 4.5 million probes in all here).
        #expect(snat.counters.probes < 3000 * 2)
    }

    @Test("a port held by a TCP entry in TIME_WAIT is taken over by a new flow (nf_nat_used_tuple_harder); an ESTABLISHED one is not")
    func timeWaitPortsAreReused() {
        let table = ConntrackTable(capacity: 64)
        var snat = SNATPortAllocator(range: 20_000...20_007)
        for (i, port) in (UInt16(20_000)...20_007).enumerated() {
            let (o, r) = masqueradedFlow(i, port: port)
            _ = table.insert(original: o, reply: r, now: now, initialState: i == 3 ? .timeWait : .established)
        }
        let p = snat.allocate(replyTemplate: template(), table: table, now: now, flow: masqueradedFlow(50, port: 0).0)
        #expect(p == 20_003)
        #expect(snat.counters.reusedClosing == 1)
        #expect(table.count == 7)
        // Every other port is ESTABLISHED: the next flow is refused.
        let (o, r) = masqueradedFlow(50, port: 20_003)
        _ = table.insert(original: o, reply: r, now: now, initialState: .established)
        #expect(snat.allocate(replyTemplate: template(), table: table, now: now, flow: masqueradedFlow(51, port: 0).0) == nil)
    }

    @Test("ICMP echo: the allocated identifier is both ports of the reply tuple")
    func icmpIdentifier() {
        let table = ConntrackTable(capacity: 8)
        var snat = SNATPortAllocator(range: 20_000...20_001)
        let echo = FlowKey.icmpEcho(source: IPv4Address(10, 244, 1, 5), destination: IPv4Address(8, 8, 8, 8), identifier: 7)
        let replyTemplate = FlowKey.icmpEcho(source: IPv4Address(8, 8, 8, 8), destination: node, identifier: 0)
        let id = snat.allocate(replyTemplate: replyTemplate, table: table)!
        let reply = FlowKey.icmpEcho(source: IPv4Address(8, 8, 8, 8), destination: node, identifier: id)
        _ = table.insert(original: echo, reply: reply, now: now, initialState: .icmp)
        let second = snat.allocate(replyTemplate: replyTemplate, table: table)!
        #expect(second != id)
        #expect(table.lookup(reply, now: now)?.direction == .reply)
    }

    @Test("insert's clash rule backs the allocator: reusing a taken port is refused as a tuple clash")
    func clashWithoutAllocator() {
        let table = ConntrackTable(capacity: 8)
        var snat = SNATPortAllocator(range: 20_000...20_007)
        let p = snat.allocate(replyTemplate: template(), table: table)!
        let (o1, r1) = masqueradedFlow(1, port: p)
        guard case .inserted(let first) = table.insert(original: o1, reply: r1, now: now, initialState: .synSent) else {
            Issue.record("first insert failed")
            return
        }
        // A second client forced onto the same port would receive the first client's replies.
        let (o2, r2) = masqueradedFlow(2, port: p)
        #expect(table.insert(original: o2, reply: r2, now: now, initialState: .synSent) == .clash(existing: first))
        #expect(table.counters.clashes == 1)
        let q = snat.allocate(replyTemplate: template(), table: table)!
        #expect(q != p)
        let (o3, r3) = masqueradedFlow(2, port: q)
        #expect(table.insert(original: o3, reply: r3, now: now, initialState: .synSent) != .clash(existing: first))
    }
}
