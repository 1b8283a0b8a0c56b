import FerryPacket
import Testing

@testable import FerryCore

// sessionAffinity: ClientIP with a stepped clock. Times are seconds from t=0.

private func ip(_ s: String) -> IPv4Address { IPv4Address(s)! }
private let client = ip("10.244.1.5")
private let pod = ip("10.244.2.7")

@Test func clientIsSentToItsBackendUntilTheTimeoutThenForgotten() {
    let table = AffinityTable(capacity: 1024)
    table.record(client: client, servicePort: 3, backend: pod, port: 8080, timeout: Seconds(10800), now: .seconds(100))
    #expect(table.lookup(client: client, servicePort: 3, now: .seconds(100))! == (pod, 8080))
    let lastLiveNanosecond = Timestamp(nanoseconds: Timestamp.seconds(100 + 10800).nanoseconds - 1)
    #expect(table.lookup(client: client, servicePort: 3, now: lastLiveNanosecond)! == (pod, 8080))
    #expect(table.lookup(client: client, servicePort: 3, now: .seconds(100 + 10800)) == nil)
    #expect(table.count == 0)
    #expect(table.counters.hits == 2)
    #expect(table.counters.misses == 1)
    #expect(table.counters.expired == 1)
    // Stays gone.
    #expect(table.lookup(client: client, servicePort: 3, now: .seconds(100 + 10800)) == nil)
    #expect(table.counters.expired == 1)
}

@Test func recordingAgainRefreshesTheTimeoutAndMayMoveTheClient() {
    let table = AffinityTable(capacity: 64)
    table.record(client: client, servicePort: 0, backend: pod, port: 8080, timeout: Seconds(10), now: .seconds(0))
    table.record(client: client, servicePort: 0, backend: pod, port: 8080, timeout: Seconds(10), now: .seconds(8))
    #expect(table.lookup(client: client, servicePort: 0, now: .seconds(15))! == (pod, 8080))
    #expect(table.lookup(client: client, servicePort: 0, now: .seconds(18)) == nil)
    table.record(client: client, servicePort: 0, backend: pod, port: 8080, timeout: Seconds(10), now: .seconds(20))
    table.record(client: client, servicePort: 0, backend: ip("10.244.3.3"), port: 9090, timeout: Seconds(10), now: .seconds(21))
    #expect(table.lookup(client: client, servicePort: 0, now: .seconds(22))! == (ip("10.244.3.3"), 9090))
    #expect(table.count == 1)
    #expect(table.counters.inserts == 2)
    #expect(table.counters.refreshes == 2)
}

@Test func oneClientHasSeparateEntriesPerServicePortAndOthersAreMisses() {
    let table = AffinityTable(capacity: 64)
    table.record(client: client, servicePort: 1, backend: pod, port: 80, timeout: Seconds(60), now: .zero)
    table.record(client: client, servicePort: 2, backend: pod, port: 443, timeout: Seconds(60), now: .zero)
    #expect(table.lookup(client: client, servicePort: 1, now: .seconds(1))! == (pod, 80))
    #expect(table.lookup(client: client, servicePort: 2, now: .seconds(1))! == (pod, 443))
    #expect(table.lookup(client: client, servicePort: 3, now: .seconds(1)) == nil)
    #expect(table.lookup(client: ip("10.244.1.6"), servicePort: 1, now: .seconds(1)) == nil)
}

/// Eight slots and a window of eight: every key's window is the whole table.
@Test func fullWindowEvictsTheEntryWithTheEarliestExpiry() {
    let table = AffinityTable(capacity: 8, probeWindow: 8)
    #expect(table.capacity == 8)
    // Client i recorded at t=i with a 100 s timeout: client 0 expires first.
    for i in 0..<8 as Range<UInt32> {
        table.record(client: IPv4Address(0x0A01_0000 + i), servicePort: 0, backend: pod, port: UInt16(8000 + i),
                     timeout: Seconds(100), now: .seconds(UInt64(i)))
    }
    #expect(table.count == 8)
    // Refreshing client 0 makes client 1 the oldest.
    table.record(client: IPv4Address(0x0A01_0000), servicePort: 0, backend: pod, port: 8000, timeout: Seconds(100), now: .seconds(9))
    table.record(client: ip("10.1.9.9"), servicePort: 0, backend: pod, port: 9999, timeout: Seconds(100), now: .seconds(10))
    #expect(table.counters.evictions == 1)
    #expect(table.count == 8)
    #expect(table.lookup(client: IPv4Address(0x0A01_0001), servicePort: 0, now: .seconds(11)) == nil)
    #expect(table.lookup(client: ip("10.1.9.9"), servicePort: 0, now: .seconds(11))! == (pod, 9999))
    for i in [0, 2, 3, 4, 5, 6, 7] as [UInt32] {
        #expect(table.lookup(client: IPv4Address(0x0A01_0000 + i), servicePort: 0, now: .seconds(11))! == (pod, UInt16(8000 + i)))
    }
}

@Test func fullWindowReusesAnExpiredEntryBeforeEvictingALiveOne() {
    let table = AffinityTable(capacity: 8, probeWindow: 8)
    for i in 0..<8 as Range<UInt32> {
        // Client 5 has a short timeout and is dead by t=20; the others live to t=100+.
        table.record(client: IPv4Address(0x0A01_0000 + i), servicePort: 0, backend: pod, port: 80,
                     timeout: Seconds(i == 5 ? 10 : 100), now: .seconds(UInt64(i)))
    }
    table.record(client: ip("10.1.9.9"), servicePort: 0, backend: pod, port: 80, timeout: Seconds(100), now: .seconds(20))
    #expect(table.counters.evictions == 0)
    #expect(table.counters.expired == 1)
    for i in [0, 1, 2, 3, 4, 6, 7] as [UInt32] {
        #expect(table.lookup(client: IPv4Address(0x0A01_0000 + i), servicePort: 0, now: .seconds(21)) != nil)
    }
}

@Test func removingABackendForgetsOnlyTheClientsPinnedToIt() {
    let table = AffinityTable(capacity: 256)
    let other = ip("10.244.3.3")
    for i in 0..<40 as Range<UInt32> {
        table.record(client: IPv4Address(0x0A01_0000 + i), servicePort: Int(i % 2), backend: i % 4 == 0 ? pod : other,
                     port: i % 8 == 0 ? 8080 : 9090, timeout: Seconds(60), now: .zero)
    }
    // Clients 0, 8, 16, 24, 32 → pod:8080; 4, 12, 20, 28, 36 → pod:9090.
    #expect(table.removeAll(whereBackend: pod, port: 9090) == 5)
    #expect(table.lookup(client: IPv4Address(0x0A01_0000 + 4), servicePort: 0, now: .seconds(1)) == nil)
    #expect(table.lookup(client: IPv4Address(0x0A01_0000 + 8), servicePort: 0, now: .seconds(1))! == (pod, 8080))
    #expect(table.removeAll(whereBackend: pod) == 5)
    #expect(table.count == 30)
    #expect(table.removeAll(servicePort: 1) == 20)
    #expect(table.count == 10)
    #expect(table.counters.removals == 30)
    #expect(table.lookup(client: IPv4Address(0x0A01_0000 + 2), servicePort: 0, now: .seconds(1))! == (other, 9090))
}

@Test func sweepingExpiredEntriesLeavesLiveOnes() {
    let table = AffinityTable(capacity: 64)
    table.record(client: ip("10.1.0.1"), servicePort: 0, backend: pod, port: 80, timeout: Seconds(5), now: .zero)
    table.record(client: ip("10.1.0.2"), servicePort: 0, backend: pod, port: 80, timeout: Seconds(50), now: .zero)
    #expect(table.removeExpired(now: .seconds(5)) == 1)
    #expect(table.count == 1)
    #expect(table.lookup(client: ip("10.1.0.2"), servicePort: 0, now: .seconds(6)) != nil)
}

@Test func capacityIsRoundedUpToAPowerOfTwo() {
    #expect(AffinityTable(capacity: 1000).capacity == 1024)
    #expect(AffinityTable(capacity: 1).capacity == 8)
    #expect(AffinityTable(capacity: 4096).capacity == 4096)
}
