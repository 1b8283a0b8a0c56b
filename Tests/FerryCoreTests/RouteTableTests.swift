import FerryCore
import FerryPacket
import Testing

@Suite struct RouteTableTests {
    @Test("Longest prefix wins; the lower metric wins between equal prefixes; no route is nil")
    func longestPrefixAndMetric() {
        let t = RouteTable(routes: [
            Route(destination: IPv4Prefix("0.0.0.0/0")!, gateway: IPv4Address(172, 18, 0, 1), interface: InterfaceIndex(2)),
            Route(destination: IPv4Prefix("10.244.0.0/16")!, interface: InterfaceIndex(3), metric: 100),
            Route(destination: IPv4Prefix("10.244.0.0/16")!, interface: InterfaceIndex(4), metric: 10),
            Route(destination: IPv4Prefix("10.244.1.0/24")!, gateway: IPv4Address(172, 18, 0, 11), interface: InterfaceIndex(2)),
            Route(destination: IPv4Prefix("10.244.1.7/32")!, interface: InterfaceIndex(9)),
        ])
        #expect(t.lookup(IPv4Address(10, 244, 1, 7))?.interface == InterfaceIndex(9))
        #expect(t.lookup(IPv4Address(10, 244, 1, 8))?.gateway == IPv4Address(172, 18, 0, 11))
        #expect(t.lookup(IPv4Address(10, 244, 9, 9))?.interface == InterfaceIndex(4))
        #expect(t.lookup(IPv4Address(8, 8, 8, 8))?.gateway == IPv4Address(172, 18, 0, 1))
        #expect(RouteTable(routes: [Route(destination: IPv4Prefix("10.0.0.0/8")!, interface: InterfaceIndex(2))])
            .lookup(IPv4Address(11, 0, 0, 1)) == nil)
    }

    @Test("Lookups agree with a brute-force longest-prefix match over 2,000 random routes")
    func agreesWithBruteForce() {
        var rng = SplitMix64(seed: 7)
        var routes: [Route] = []
        for i in 0..<2000 {
            let len = Int(rng.next() % 33)
            let a = IPv4Address(UInt32(truncatingIfNeeded: rng.next()) & 0x0AFF_FFFF | 0x0A00_0000)
            routes.append(Route(destination: IPv4Prefix(address: a, length: len)!, interface: InterfaceIndex(Int32(i)),
                                metric: UInt32(rng.next() % 4)))
        }
        let t = RouteTable(routes: routes)
        for _ in 0..<5000 {
            let d = IPv4Address(UInt32(truncatingIfNeeded: rng.next()) & 0x0AFF_FFFF | 0x0A00_0000)
            // The model: longest matching prefix, then the lowest metric, then the first given.
            var best: Route? = nil
            for r in routes where r.destination.contains(d) {
                guard let b = best else { best = r; continue }
                if r.destination.length > b.destination.length
                    || (r.destination.length == b.destination.length && r.metric < b.metric) { best = r }
            }
            #expect(t.lookup(d) == best)
        }
    }

    @Test("Neighbours are per interface; a later entry for the same next hop replaces the earlier")
    func neighbours() {
        let m1 = MACAddress(0x02_00_00_00_00_01), m2 = MACAddress(0x02_00_00_00_00_02)
        let n = NeighbourTable([(InterfaceIndex(2), IPv4Address(172, 18, 0, 12), m1),
                                (InterfaceIndex(3), IPv4Address(172, 18, 0, 12), m2),
                                (InterfaceIndex(2), IPv4Address(172, 18, 0, 12), m2)])
        #expect(n.mac(for: IPv4Address(172, 18, 0, 12), on: InterfaceIndex(2)) == m2)
        #expect(n.mac(for: IPv4Address(172, 18, 0, 12), on: InterfaceIndex(3)) == m2)
        #expect(n.mac(for: IPv4Address(172, 18, 0, 13), on: InterfaceIndex(2)) == nil)
        #expect(n.count == 2)
    }

    @Test("FixedHashMap finds every key it was built with and none it was not")
    func fixedHashMap() {
        var rng = SplitMix64(seed: 11)
        var pairs: [(UInt64, Int32)] = []
        var model: [UInt64: Int32] = [:]
        for i in 0..<10_000 {
            let k = rng.next() % 50_000  // duplicates on purpose
            pairs.append((k, Int32(i)))
            model[k] = Int32(i)
        }
        let m = FixedHashMap(pairs)
        #expect(m.count == model.count)
        for k in UInt64(0)..<50_000 { #expect(m.value(for: k) == model[k]) }
    }
}
