import FerryPacket
import Testing

@testable import FerryCore

// A rebuild that carries unchanged Services over from the previous table, and a build
// whose Maglev fills run through another executor, must give exactly the table a build
// from nothing gives: same frontends, same endpoints and sets, same slot-for-slot Maglev
// tables, same choices.

private func cluster(services: Int, localNode: String) -> ([ServiceSpec], [EndpointSliceSpec]) {
    var specs: [ServiceSpec] = []
    var slices: [EndpointSliceSpec] = []
    for s in 0..<services {
        let n = ServiceName(namespace: "ns-\(s % 3)", name: "svc-\(s)")
        let twoPorts = s % 4 == 0
        var ports = [ServicePortSpec(name: "http", port: 80, targetPort: .number(8080))]
        if twoPorts { ports.append(ServicePortSpec(name: "metrics", port: 9090, targetPort: .number(9090))) }
        let type: ServiceType = s % 5 == 0 ? .nodePort : .clusterIP
        if type == .nodePort { ports = ports.enumerated().map { var p = $1; p.nodePort = UInt16(30000 + s * 2 + $0); return p } }
        specs.append(ServiceSpec(name: n, type: type, clusterIP: IPv4Address(0x0A60_0000 | UInt32(s + 1)), ports: ports,
                                 externalTrafficPolicy: s % 10 == 0 ? .local : .cluster))
        var slicePorts = [EndpointPortSpec(name: "http", port: 8080)]
        if twoPorts { slicePorts.append(EndpointPortSpec(name: "metrics", port: 9090)) }
        slices.append(EndpointSliceSpec(
            name: "svc-\(s)-abcde", service: n, ports: slicePorts,
            endpoints: (0..<(s % 7 == 3 ? 1 : 6)).map { e in
                EndpointSpec(address: IPv4Address(0x0AF4_0000 | UInt32(s * 8 + e + 1)),
                             nodeName: e % 3 == 0 ? localNode : "node-\(e)", ready: e != 4, serving: true, terminating: e == 4)
            }))
    }
    return (specs, slices)
}

/// Everything a reader of the table can see, frontend by frontend. Service port indices
/// are compared only when both tables numbered the same ports (they survive reloads, so
/// a table built after an addition or removal numbers differently from a fresh one).
private func expectSameTable(_ a: ServiceTable, _ b: ServiceTable, sameIndices: Bool = true,
                             sourceLocation: SourceLocation = #_sourceLocation) {
    if sameIndices {
        #expect(a.frontends == b.frontends, sourceLocation: sourceLocation)
    } else {
        func fields(_ f: Frontend) -> String {
            "\(f) \(f.trafficPolicy) \(f.affinity) \(f.sourceRanges) \(String(describing: f.healthCheckNodePort))"
        }
        #expect(a.frontends.map(fields) == b.frontends.map(fields), sourceLocation: sourceLocation)
    }
    #expect(a.services == b.services, sourceLocation: sourceLocation)
    #expect(a.servicePorts.map(\.endpoints) == b.servicePorts.map(\.endpoints), sourceLocation: sourceLocation)
    for f in a.frontends {
        for set in BackendSetKind.allCases {
            #expect(a.backends(frontend: f.id, set: set) == b.backends(frontend: f.id, set: set), sourceLocation: sourceLocation)
            #expect(a.selector(frontend: f.id, set: set).maglevTable == b.selector(frontend: f.id, set: set).maglevTable,
                    sourceLocation: sourceLocation)
            for hash: UInt32 in [0, 0x1234_5678, 0x9E37_79B9, 0xFFFF_FFFF] {
                #expect(a.selectBackend(frontend: f.id, set: set, hash: hash) == b.selectBackend(frontend: f.id, set: set, hash: hash),
                        sourceLocation: sourceLocation)
            }
        }
    }
}

@Test func rebuildAfterOneEndpointChangeEqualsAFreshBuildAndFillsOneTable() {
    let node = NodeIdentity(name: "node-local")
    let strategy = BackendSelector.Strategy.maglev(tableSize: 1021)
    var (services, slices) = cluster(services: 60, localNode: node.name)
    let t1 = ServiceTable(services: services, slices: slices, node: node, cluster: ClusterConfig(), strategy: strategy)

    // svc-18 (one port, six endpoints) loses a ready remote endpoint to a new address.
    slices[18].endpoints[1].address = IPv4Address(10, 245, 0, 7)
    let t2 = ServiceTable(services: services, slices: slices, node: node, cluster: ClusterConfig(), strategy: strategy, reusing: t1)
    let fresh = ServiceTable(services: services, slices: slices, node: node, cluster: ClusterConfig(), strategy: strategy)
    expectSameTable(t2, fresh)
    // One Cluster set changed; its Local set (endpoints 0 and 3) did not and is carried by keys.
    #expect(t2.statistics.maglevTablesBuilt == 1)
    #expect(t2.statistics.maglevTablesReused + t2.statistics.maglevTablesBuilt
            == fresh.statistics.maglevTablesBuilt)
    #expect(t2.statistics.maglevBytes == fresh.statistics.maglevBytes)
    #expect(t2.statistics.maglevTablesShared == fresh.statistics.maglevTablesShared)

    // A Service changed (a port added) and one removed: still equal to a fresh build.
    services[20].ports.append(ServicePortSpec(name: "admin", port: 8081, targetPort: .number(8081)))
    services.remove(at: 33)
    let t3 = ServiceTable(services: services, slices: slices, node: node, cluster: ClusterConfig(), strategy: strategy, reusing: t2)
    expectSameTable(t3, ServiceTable(services: services, slices: slices, node: node, cluster: ClusterConfig(), strategy: strategy),
                    sameIndices: false)
    #expect(t3.statistics.maglevTablesBuilt == 0)
}

@Test func nothingCarriesOverToAnotherNodeOrTableSize() {
    let (services, slices) = cluster(services: 12, localNode: "node-a")
    let t1 = ServiceTable(services: services, slices: slices, node: NodeIdentity(name: "node-a"), cluster: ClusterConfig(),
                          strategy: .maglev(tableSize: 1021))
    // Another node name changes every Local set: they must be resolved again.
    let otherNode = ServiceTable(services: services, slices: slices, node: NodeIdentity(name: "node-1"), cluster: ClusterConfig(),
                                 strategy: .maglev(tableSize: 1021), reusing: t1)
    expectSameTable(otherNode, ServiceTable(services: services, slices: slices, node: NodeIdentity(name: "node-1"),
                                            cluster: ClusterConfig(), strategy: .maglev(tableSize: 1021)))
    let otherSize = ServiceTable(services: services, slices: slices, node: NodeIdentity(name: "node-a"), cluster: ClusterConfig(),
                                 strategy: .maglev(tableSize: 4093), reusing: t1)
    #expect(otherSize.statistics.maglevTablesReused == 0)
    #expect(otherSize.frontends.allSatisfy { otherSize.selector(frontend: $0.id, set: .cluster).maglevTable.map { $0.size == 4093 } ?? true })
}

@Test func maglevFillsThroughAnotherExecutorGiveTheSameTable() {
    let node = NodeIdentity(name: "node-local")
    let (services, slices) = cluster(services: 40, localNode: node.name)
    // Runs the iterations last to first, as a parallel executor may: the result must not
    // depend on the order the fills finish in.
    let calls = Counter()
    let reversed = TableBuildExecutor { n, body in
        calls.add(n)
        for i in (0..<n).reversed() { body(i) }
    }
    let serial = ServiceTable(services: services, slices: slices, node: node, cluster: ClusterConfig(), strategy: .maglev(tableSize: 1021))
    let other = ServiceTable(services: services, slices: slices, node: node, cluster: ClusterConfig(), strategy: .maglev(tableSize: 1021),
                             executor: reversed)
    expectSameTable(other, serial)
    #expect(calls.value == serial.statistics.maglevTablesBuilt)
    #expect(other.statistics == serial.statistics)
}

private final class Counter: @unchecked Sendable {
    // Only touched from the executor's caller thread in this test.
    var value = 0
    func add(_ n: Int) { value += n }
}
