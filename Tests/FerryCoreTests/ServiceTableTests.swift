import FerryPacket
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@testable import FerryCore

// Golden tables: each fixture is shaped like the manifests it stands for (a Service and
// its EndpointSlices as `kubectl get -o yaml` shows them, after the loader's defaults),
// and lists every frontend the table must have, one row per frontend:
//   address:port/proto kind policy | cluster set | local set (on this node)

private func ip(_ s: String) -> IPv4Address { IPv4Address(s)! }
private func prefix(_ s: String) -> IPv4Prefix { IPv4Prefix(s)! }
private func name(_ n: String, _ ns: String = "default") -> ServiceName { ServiceName(namespace: ns, name: n) }

private struct Row: Equatable, CustomStringConvertible {
    var frontend: String
    var policy: TrafficPolicy
    var cluster: [String]
    var local: [String]
    var sourceRanges: [String] = []
    var description: String {
        "\(frontend) \(policy.rawValue) | \(cluster) | \(local)" + (sourceRanges.isEmpty ? "" : " from \(sourceRanges)")
    }
}

private struct Fixture: CustomTestStringConvertible, Sendable {
    let description: String
    let node: String
    let services: [ServiceSpec]
    let slices: [EndpointSliceSpec]
    let rows: [String]  // Row descriptions, in frontend id order
    var testDescription: String { description }
}

private func rows(_ table: ServiceTable) -> [String] {
    table.frontends.map { f in
        let ends = { (set: BackendSetKind) in table.backends(frontend: f.id, set: set).map { "\($0.address):\($0.port)" } }
        let address = f.kind == .nodePort ? "*" : "\(f.address)"
        return Row(frontend: "\(address):\(f.port)/\(f.protocol.rawValue) \(f.kind)", policy: f.trafficPolicy,
                   cluster: ends(.cluster), local: ends(.local), sourceRanges: f.sourceRanges.map(\.description)).description
    }
}

private let fixtures: [Fixture] = [
    Fixture(
        description: "NodePort with externalTrafficPolicy Local on node-1: the NodePort balances over node-1's pod only, the ClusterIP over both",
        node: "node-1",
        services: [ServiceSpec(name: name("web"), type: .nodePort, clusterIP: ip("10.96.0.20"),
                               ports: [ServicePortSpec(name: "http", protocol: .tcp, port: 80, targetPort: .number(8080), nodePort: 30080)],
                               externalTrafficPolicy: .local, healthCheckNodePort: 32000)],
        slices: [EndpointSliceSpec(name: "web-x7k2p", service: name("web"),
                                   ports: [EndpointPortSpec(name: "http", protocol: .tcp, port: 8080)],
                                   endpoints: [EndpointSpec(address: ip("10.244.2.7"), nodeName: "node-2"),
                                               EndpointSpec(address: ip("10.244.1.5"), nodeName: "node-1")])],
        rows: [
            #"10.96.0.20:80/TCP ClusterIP Cluster | ["10.244.1.5:8080", "10.244.2.7:8080"] | ["10.244.1.5:8080"]"#,
            #"*:30080/TCP NodePort Local | ["10.244.1.5:8080", "10.244.2.7:8080"] | ["10.244.1.5:8080"]"#,
        ]),
    Fixture(
        description: "LoadBalancer with two ingress IPs and loadBalancerSourceRanges: ranges apply to the LB IPs only",
        node: "node-1",
        services: [ServiceSpec(name: name("gateway", "ingress"), type: .loadBalancer, clusterIP: ip("10.96.5.5"),
                               loadBalancerIPs: [ip("192.0.2.10"), ip("192.0.2.11")],
                               ports: [ServicePortSpec(name: "https", port: 443, targetPort: .name("https"), nodePort: 31443)],
                               loadBalancerSourceRanges: [prefix("203.0.113.0/24"), prefix("198.51.100.64/26")])],
        slices: [EndpointSliceSpec(name: "gateway-abcde", service: name("gateway", "ingress"),
                                   ports: [EndpointPortSpec(name: "https", port: 8443)],
                                   endpoints: [EndpointSpec(address: ip("10.244.3.9"), nodeName: "node-3")])],
        rows: [
            #"10.96.5.5:443/TCP ClusterIP Cluster | ["10.244.3.9:8443"] | []"#,
            #"192.0.2.10:443/TCP LoadBalancer Cluster | ["10.244.3.9:8443"] | [] from ["203.0.113.0/24", "198.51.100.64/26"]"#,
            #"192.0.2.11:443/TCP LoadBalancer Cluster | ["10.244.3.9:8443"] | [] from ["203.0.113.0/24", "198.51.100.64/26"]"#,
            #"*:31443/TCP NodePort Cluster | ["10.244.3.9:8443"] | []"#,
        ]),
    Fixture(
        description: "headless and ExternalName Services get no frontends",
        node: "node-1",
        services: [ServiceSpec(name: name("db-headless"), clusterIP: nil, ports: [ServicePortSpec(port: 5432)]),
                   ServiceSpec(name: name("upstream"), type: .externalName, clusterIP: nil, ports: [ServicePortSpec(port: 443)])],
        slices: [EndpointSliceSpec(name: "db-headless-1", service: name("db-headless"),
                                   ports: [EndpointPortSpec(name: "", port: 5432)],
                                   endpoints: [EndpointSpec(address: ip("10.244.1.20"), nodeName: "node-1")])],
        rows: []),
    Fixture(
        description: "multi-port Service maps each port by name to the slice's port number, whatever the slice's port order",
        node: "node-1",
        services: [ServiceSpec(name: name("postgres", "data"), clusterIP: ip("10.96.7.7"),
                               ports: [ServicePortSpec(name: "pg", port: 5432, targetPort: .name("postgres")),
                                       ServicePortSpec(name: "metrics", port: 9187, targetPort: .name("metrics")),
                                       ServicePortSpec(name: "dns", protocol: .udp, port: 53, targetPort: .number(5353))])],
        slices: [EndpointSliceSpec(name: "postgres-q9w8e", service: name("postgres", "data"),
                                   ports: [EndpointPortSpec(name: "metrics", port: 9100),
                                           EndpointPortSpec(name: "dns", protocol: .udp, port: 5353),
                                           EndpointPortSpec(name: "pg", port: 15432)],
                                   endpoints: [EndpointSpec(address: ip("10.244.1.30"), nodeName: "node-1"),
                                               EndpointSpec(address: ip("10.244.2.30"), nodeName: "node-2")])],
        rows: [
            #"10.96.7.7:5432/TCP ClusterIP Cluster | ["10.244.1.30:15432", "10.244.2.30:15432"] | ["10.244.1.30:15432"]"#,
            #"10.96.7.7:9187/TCP ClusterIP Cluster | ["10.244.1.30:9100", "10.244.2.30:9100"] | ["10.244.1.30:9100"]"#,
            #"10.96.7.7:53/UDP ClusterIP Cluster | ["10.244.1.30:5353", "10.244.2.30:5353"] | ["10.244.1.30:5353"]"#,
        ]),
    Fixture(
        description: "rolling update with only terminating pods left: serving-and-terminating endpoints keep the Service up",
        node: "node-1",
        services: [ServiceSpec(name: name("api"), clusterIP: ip("10.96.8.8"), ports: [ServicePortSpec(port: 80, targetPort: .number(8080))])],
        slices: [EndpointSliceSpec(name: "api-1", service: name("api"), ports: [EndpointPortSpec(name: "", port: 8080)],
                                   endpoints: [EndpointSpec(address: ip("10.244.1.40"), nodeName: "node-1", ready: false, serving: true, terminating: true),
                                               EndpointSpec(address: ip("10.244.2.40"), nodeName: "node-2", ready: false, serving: false, terminating: true)])],
        rows: [#"10.96.8.8:80/TCP ClusterIP Cluster | ["10.244.1.40:8080"] | ["10.244.1.40:8080"]"#]),
    Fixture(
        description: "internalTrafficPolicy Local on a node without endpoints: the Local set is empty, the Cluster set is not",
        node: "node-3",
        services: [ServiceSpec(name: name("cache"), clusterIP: ip("10.96.9.9"), ports: [ServicePortSpec(name: "redis", port: 6379)],
                               internalTrafficPolicy: .local)],
        slices: [EndpointSliceSpec(name: "cache-1", service: name("cache"), ports: [EndpointPortSpec(name: "redis", port: 6379)],
                                   endpoints: [EndpointSpec(address: ip("10.244.1.50"), nodeName: "node-1"),
                                               EndpointSpec(address: ip("10.244.2.50"), nodeName: "node-2")])],
        rows: [#"10.96.9.9:6379/TCP ClusterIP Local | ["10.244.1.50:6379", "10.244.2.50:6379"] | []"#]),
    Fixture(
        description: "externalIPs on a ClusterIP Service: one frontend per external IP with the external traffic policy",
        node: "node-2",
        services: [ServiceSpec(name: name("legacy"), clusterIP: ip("10.96.10.10"),
                               externalIPs: [ip("198.51.100.7"), ip("198.51.100.8")],
                               ports: [ServicePortSpec(name: "http", port: 80, targetPort: .number(8080))],
                               externalTrafficPolicy: .local)],
        slices: [EndpointSliceSpec(name: "legacy-1", service: name("legacy"), ports: [EndpointPortSpec(name: "http", port: 8080)],
                                   endpoints: [EndpointSpec(address: ip("10.244.2.60"), nodeName: "node-2")])],
        rows: [
            #"10.96.10.10:80/TCP ClusterIP Cluster | ["10.244.2.60:8080"] | ["10.244.2.60:8080"]"#,
            #"198.51.100.7:80/TCP ExternalIP Local | ["10.244.2.60:8080"] | ["10.244.2.60:8080"]"#,
            #"198.51.100.8:80/TCP ExternalIP Local | ["10.244.2.60:8080"] | ["10.244.2.60:8080"]"#,
        ]),
]

@Test(arguments: fixtures)
private func serviceTableFrontendsMatchTheManifests(_ f: Fixture) {
    let table = ServiceTable(services: f.services, slices: f.slices, node: NodeIdentity(name: f.node), cluster: ClusterConfig())
    #expect(rows(table) == f.rows)
    #expect(table.frontends.map(\.id) == Array(0..<table.frontends.count))
    // Every frontend is found by the lookup the pipeline uses for it.
    for fe in table.frontends {
        if fe.kind == .nodePort {
            #expect(table.lookupNodePort(protocol: fe.protocol, port: fe.port) == fe.id)
        } else {
            #expect(table.lookup(address: fe.address, protocol: fe.protocol, port: fe.port) == fe.id)
            #expect(table.isServiceAddress(fe.address))
        }
    }
}

private func table(_ f: Int, node: String? = nil) -> ServiceTable {
    ServiceTable(services: fixtures[f].services, slices: fixtures[f].slices,
                 node: NodeIdentity(name: node ?? fixtures[f].node), cluster: ClusterConfig())
}

@Test func tcpToTheNodePortFromOutsideIsBalancedOverNode1sPodOnlyAndUDPToItFindsNothing() {
    let t = table(0)
    let np = t.lookupNodePort(protocol: .tcp, port: 30080)!
    #expect(t.frontends[np].backendSet == .local)
    #expect(t.frontends[np].healthCheckNodePort == 32000)
    for hash: UInt32 in [0, 1, 0x8000_0000, 0xFFFF_FFFF] {
        #expect(t.selectBackend(frontend: np, set: .local, hash: hash)?.address == ip("10.244.1.5"))
    }
    #expect(t.lookupNodePort(protocol: .udp, port: 30080) == nil)
    #expect(t.lookupNodePort(protocol: .tcp, port: 30081) == nil)
    // A NodePort is not an address: nothing is registered for 0.0.0.0.
    #expect(!t.isServiceAddress(.any))
}

@Test func loadBalancerIPAdmitsSourcesInsideItsRangesOnlyWhileClusterIPAndNodePortAdmitAll() {
    let t = table(1)
    let lb = t.lookup(address: ip("192.0.2.11"), protocol: .tcp, port: 443)!
    #expect(t.frontends[lb].admits(source: ip("203.0.113.77")))
    #expect(t.frontends[lb].admits(source: ip("198.51.100.65")))
    #expect(!t.frontends[lb].admits(source: ip("198.51.100.1")))
    let vip = t.lookup(address: ip("10.96.5.5"), protocol: .tcp, port: 443)!
    #expect(t.frontends[vip].admits(source: ip("198.51.100.1")))
    let np = t.lookupNodePort(protocol: .tcp, port: 31443)!
    #expect(t.frontends[np].admits(source: ip("198.51.100.1")))
    // All frontends of the one Service port share its index.
    #expect(Set(t.frontends.map(\.servicePortIndex)).count == 1)
}

@Test func headlessServiceHasNoFrontendsAndIsNotListed() {
    let t = table(2)
    #expect(t.frontends.isEmpty)
    #expect(t.services.isEmpty)
    #expect(t.servicePorts(of: name("db-headless")).isEmpty)
    #expect(!t.isServiceAddress(ip("10.244.1.20")))
}

@Test func multiPortServicePortsHaveDistinctIndicesAndUDPDoesNotMatchTCP() {
    let t = table(3)
    #expect(Set(t.frontends.map(\.servicePortIndex)).count == 3)
    #expect(t.lookup(address: ip("10.96.7.7"), protocol: .udp, port: 5432) == nil)
    #expect(t.lookup(address: ip("10.96.7.7"), protocol: .tcp, port: 53) == nil)
    #expect(t.isServiceAddress(ip("10.96.7.7")))
    let dns = t.lookup(address: ip("10.96.7.7"), protocol: .udp, port: 53)!
    #expect(t.frontends[dns].portName == "dns")
    let ports = t.servicePorts(of: name("postgres", "data"))
    #expect(ports.map(\.port.name) == ["pg", "metrics", "dns"])
    #expect(ports.map { $0.endpoints.count } == [2, 2, 2])
}

@Test func terminatingOnlyServiceStillHasEndpointsAndListsTheUnusableOneWithItsConditions() {
    let t = table(4)
    let vip = t.lookup(address: ip("10.96.8.8"), protocol: .tcp, port: 80)!
    #expect(t.hasEndpoints(frontend: vip))
    #expect(t.backendCount(frontend: vip, set: .cluster) == 1)
    let listed = t.servicePorts(of: name("api"))[0].endpoints
    #expect(listed.map(\.description) == ["10.244.1.40:8080 [serving,terminating,local] on node-1",
                                          "10.244.2.40:8080 [terminating] on node-2"])
}

@Test func clusterIPWithInternalPolicyLocalOnANodeWithoutEndpointsSelectsNothingLocallyButHasEndpoints() {
    let t = table(5)
    let vip = t.lookup(address: ip("10.96.9.9"), protocol: .tcp, port: 6379)!
    #expect(t.frontends[vip].backendSet == .local)
    #expect(t.backendCount(frontend: vip, set: .local) == 0)
    #expect(t.selectBackend(frontend: vip, set: .local, hash: 12345) == nil)
    #expect(t.hasEndpoints(frontend: vip))
    #expect(t.selectBackend(frontend: vip, set: .cluster, hash: 12345) != nil)
}

@Test func serviceWithoutAnyEndpointHasNoneAndSelectsNothing() {
    let t = ServiceTable(services: fixtures[5].services, slices: [], node: NodeIdentity(name: "node-1"), cluster: ClusterConfig())
    let vip = t.lookup(address: ip("10.96.9.9"), protocol: .tcp, port: 6379)!
    #expect(!t.hasEndpoints(frontend: vip))
    #expect(t.selectBackend(frontend: vip, set: .cluster, hash: 7) == nil)
}

@Test func externalIPOnAnotherPortIsStillAServiceAddressButHasNoFrontend() {
    let t = table(6)
    #expect(t.lookup(address: ip("198.51.100.8"), protocol: .tcp, port: 8080) == nil)
    #expect(t.isServiceAddress(ip("198.51.100.8")))
    #expect(!t.isServiceAddress(ip("198.51.100.9")))
}

@Test func affinityBackendCheckFindsOnlyBackendsStillInTheSet() {
    let t = table(0)
    let vip = t.lookup(address: ip("10.96.0.20"), protocol: .tcp, port: 80)!
    #expect(t.backend(frontend: vip, set: .cluster, address: ip("10.244.2.7"), port: 8080)?.nodeName == "node-2")
    #expect(t.backend(frontend: vip, set: .cluster, address: ip("10.244.2.7"), port: 8081) == nil)
    #expect(t.backend(frontend: vip, set: .local, address: ip("10.244.2.7"), port: 8080) == nil)
}

// MARK: Generations

private func web(_ n: String, vip: UInt32, pods: [UInt32], port: UInt16 = 80) -> (ServiceSpec, EndpointSliceSpec) {
    let service = ServiceSpec(name: name(n), clusterIP: IPv4Address(0x0A60_0000 | vip),
                              ports: [ServicePortSpec(name: "http", port: port, targetPort: .number(8080))],
                              sessionAffinity: .clientIP(timeoutSeconds: 10800))
    let slice = EndpointSliceSpec(name: "\(n)-1", service: name(n), ports: [EndpointPortSpec(name: "http", port: 8080)],
                                  endpoints: pods.map { EndpointSpec(address: IPv4Address(0x0AF4_0000 | $0), nodeName: "node-\($0 % 3)") })
    return (service, slice)
}

@Test func servicePortIndicesSurviveReloadsAndAreNeverHandedToAnotherServicePort() {
    let (a, sa) = web("alpha", vip: 1, pods: [1, 2])
    let (b, sb) = web("bravo", vip: 2, pods: [3, 4])
    let (z, sz) = web("aaa-first", vip: 3, pods: [5])
    let node = NodeIdentity(name: "node-1")
    let t1 = ServiceTable(services: [a, b], slices: [sa, sb], node: node, cluster: ClusterConfig())
    let index1 = Dictionary(uniqueKeysWithValues: t1.frontends.map { ($0.service.name, $0.servicePortIndex) })
    // A Service sorting first is added: the others keep their indices, it gets a new one.
    let t2 = ServiceTable(services: [z, a, b], slices: [sz, sa, sb], node: node, cluster: ClusterConfig(), reusing: t1)
    let index2 = Dictionary(uniqueKeysWithValues: t2.frontends.map { ($0.service.name, $0.servicePortIndex) })
    #expect(index2["alpha"] == index1["alpha"])
    #expect(index2["bravo"] == index1["bravo"])
    #expect(index2["aaa-first"] == 2)
    // bravo goes away and comes back: it gets a fresh index, not its old one nor a reused one.
    let t3 = ServiceTable(services: [z, a], slices: [sz, sa], node: node, cluster: ClusterConfig(), reusing: t2)
    let t4 = ServiceTable(services: [z, a, b], slices: [sz, sa, sb], node: node, cluster: ClusterConfig(), reusing: t3)
    let index4 = Dictionary(uniqueKeysWithValues: t4.frontends.map { ($0.service.name, $0.servicePortIndex) })
    #expect(index4["bravo"] == 3)
    #expect(index4["alpha"] == index1["alpha"])
}

@Test func oneEndpointChangeRebuildsOneMaglevTableAndReusesTheOthers() {
    let (a, sa) = web("alpha", vip: 1, pods: [1, 2, 3, 4, 5])
    let (b, sb) = web("bravo", vip: 2, pods: [11, 12, 13, 14, 15])
    let node = NodeIdentity(name: "node-9")
    let t1 = ServiceTable(services: [a, b], slices: [sa, sb], node: node, cluster: ClusterConfig())
    #expect(t1.statistics.maglevTablesBuilt == 2)
    #expect(t1.statistics.maglevBytes == 2 * MaglevTable.defaultSize)

    var sa2 = sa
    sa2.endpoints.removeLast()
    let t2 = ServiceTable(services: [a, b], slices: [sa2, sb], node: node, cluster: ClusterConfig(), reusing: t1)
    #expect(t2.statistics.maglevTablesBuilt == 1)
    #expect(t2.statistics.maglevTablesReused == 1)
    let bravo1 = t1.lookup(address: b.clusterIP!, protocol: .tcp, port: 80)!
    let bravo2 = t2.lookup(address: b.clusterIP!, protocol: .tcp, port: 80)!
    #expect(t2.selector(frontend: bravo2, set: .cluster).maglevTable === t1.selector(frontend: bravo1, set: .cluster).maglevTable)

    // A different table size cannot reuse anything.
    let t3 = ServiceTable(services: [a, b], slices: [sa2, sb], node: node, cluster: ClusterConfig(),
                          strategy: .maglev(tableSize: 1021), reusing: t2)
    #expect(t3.statistics.maglevTablesBuilt == 2)
    #expect(t3.selector(frontend: 0, set: .cluster).maglevTable?.size == 1021)
}

@Test func servicesWithIdenticalBackendsShareOneMaglevTable() {
    let (a, sa) = web("alpha", vip: 1, pods: [1, 2, 3])
    var (b, sb) = web("bravo", vip: 2, pods: [1, 2, 3])
    b.externalIPs = [ip("198.51.100.7")]
    sb.name = "bravo-1"
    let t = ServiceTable(services: [a, b], slices: [sa, sb], node: NodeIdentity(name: "node-1"), cluster: ClusterConfig())
    #expect(t.statistics.maglevTablesBuilt == 1)
    let tables = t.frontends.map { t.selector(frontend: $0.id, set: .cluster).maglevTable! }
    #expect(tables.count == 3)
    #expect(tables.allSatisfy { $0 === tables[0] })
}

@Test func inputOrderDoesNotChangeFrontendsBackendsOrChoices() {
    let pods: [UInt32] = [9, 3, 7, 1, 5, 8, 2, 6, 4, 10]
    let (a, sa) = web("alpha", vip: 1, pods: pods)
    let (b, sb) = web("bravo", vip: 2, pods: pods.reversed())
    // Split alpha's endpoints over two slices, listed in the opposite order.
    var sa1 = sa, sa2 = sa
    sa1.name = "alpha-b"; sa1.endpoints = Array(sa.endpoints.prefix(4))
    sa2.name = "alpha-a"; sa2.endpoints = Array(sa.endpoints.suffix(6).reversed())
    let node = NodeIdentity(name: "node-1")
    let t1 = ServiceTable(services: [a, b], slices: [sa, sb], node: node, cluster: ClusterConfig())
    let t2 = ServiceTable(services: [b, a], slices: [sb, sa1, sa2], node: node, cluster: ClusterConfig())
    #expect(t1.frontends == t2.frontends)
    for f in t1.frontends {
        #expect(t1.backends(frontend: f.id, set: .cluster) == t2.backends(frontend: f.id, set: .cluster))
        #expect(t1.selector(frontend: f.id, set: .cluster).maglevTable == t2.selector(frontend: f.id, set: .cluster).maglevTable)
        for i in 0..<2000 as Range<UInt32> {
            let h = flowHash(source: IPv4Address(0x0A01_0000 | i), destination: f.address,
                             sourcePort: UInt16(truncatingIfNeeded: 40000 &+ i), destinationPort: f.port, protocol: .tcp)
            #expect(t1.selectBackend(frontend: f.id, set: .cluster, hash: h) == t2.selectBackend(frontend: f.id, set: .cluster, hash: h))
        }
    }
}

@Test func twoServicesClaimingOneExternalIPAndPortLeaveItToTheFirstByName() {
    var (a, sa) = web("alpha", vip: 1, pods: [1])
    var (b, sb) = web("bravo", vip: 2, pods: [2])
    a.externalIPs = [ip("198.51.100.7")]
    b.externalIPs = [ip("198.51.100.7")]
    let t = ServiceTable(services: [b, a], slices: [sa, sb], node: NodeIdentity(name: "node-1"), cluster: ClusterConfig())
    let f = t.lookup(address: ip("198.51.100.7"), protocol: .tcp, port: 80)!
    #expect(t.frontends[f].service == name("alpha"))
    #expect(t.statistics.shadowedFrontends == 1)
}

@Test func randomStrategyPicksEveryBackendAndBuildsNoTable() {
    let (a, sa) = web("alpha", vip: 1, pods: [1, 2, 3, 4])
    let t = ServiceTable(services: [a], slices: [sa], node: NodeIdentity(name: "node-1"), cluster: ClusterConfig(), strategy: .random)
    #expect(t.statistics.maglevTablesBuilt == 0)
    #expect(t.selector(frontend: 0, set: .cluster).maglevTable == nil)
    let picks = Set((0..<4 as Range<UInt32>).compactMap { t.selectBackend(frontend: 0, set: .cluster, hash: $0 << 30 | 0x1234)?.address })
    #expect(picks.count == 4)
}

// MARK: Scale

/// The load goal is < 1 s for 10,000 Services on this 2-core machine. This builds 10,000
/// ClusterIP Services × 10 endpoints (debug build, Maglev with the table size in
/// FERRY_SCALE_TABLE_SIZE, default 16381) and prints how long it took, then how long a
/// rebuild with one endpoint changed took. The assertions check what was built, not
/// the time (a timing assertion would fail on a busy machine, not on a bug).
@Test func tenThousandServicesWithTenEndpointsEachBuildOneTableEachAndRebuildOneAfterAChange() {
    let count = 10_000
    var services: [ServiceSpec] = []
    var slices: [EndpointSliceSpec] = []
    services.reserveCapacity(count)
    slices.reserveCapacity(count)
    for s in 0..<count {
        let n = name("svc-\(s)", "load")
        services.append(ServiceSpec(name: n, clusterIP: IPv4Address(0x0A60_0000 | UInt32(s)),
                                    ports: [ServicePortSpec(name: "http", port: 80, targetPort: .number(8080))]))
        slices.append(EndpointSliceSpec(
            name: "svc-\(s)-1", service: n, ports: [EndpointPortSpec(name: "http", port: 8080)],
            endpoints: (0..<10).map { EndpointSpec(address: IPv4Address(0x0A80_0000 | UInt32(s * 10 + $0)), nodeName: "node-\($0)") }))
    }
    let env = ProcessEnvironment.value("FERRY_SCALE_TABLE_SIZE").flatMap { Int($0) }
    let strategy = BackendSelector.Strategy.maglev(tableSize: env ?? MaglevTable.defaultSize)
    let node = NodeIdentity(name: "node-1")
    let clock = ContinuousClock()
    var table: ServiceTable?
    let first = clock.measure {
        table = ServiceTable(services: services, slices: slices, node: node, cluster: ClusterConfig(), strategy: strategy)
    }
    let t1 = table!
    #expect(t1.frontends.count == count)
    #expect(t1.statistics.maglevTablesBuilt == count)
    slices[4242].endpoints[3].ready = false
    let second = clock.measure {
        table = ServiceTable(services: services, slices: slices, node: node, cluster: ClusterConfig(), strategy: strategy, reusing: t1)
    }
    let t2 = table!
    #expect(t2.statistics.maglevTablesBuilt == 1)
    #expect(t2.statistics.maglevTablesReused == count - 1)
    let changed = t2.lookup(address: IPv4Address(0x0A60_0000 | 4242), protocol: .tcp, port: 80)!
    #expect(t2.backendCount(frontend: changed, set: .cluster) == 9)
    print("scale: \(count) services × 10 endpoints, \(strategy): build \(first), rebuild after one endpoint change \(second), "
          + "Maglev memory \(t1.statistics.maglevBytes / 1024) KiB")
}

private enum ProcessEnvironment {
    static func value(_ key: String) -> String? {
        guard let raw = getenv(key) else { return nil }
        return String(cString: raw)
    }
}
