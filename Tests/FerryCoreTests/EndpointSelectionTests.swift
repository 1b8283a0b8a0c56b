import FerryPacket
import Testing

@testable import FerryCore

// kube-proxy's endpoint rules, one golden row per rule: the slices as a manifest would
// give them, the Service port, and the endpoints (address:port [conditions]) expected in
// the full list, the Cluster set and the Local set on node-1.

private func ip(_ s: String) -> IPv4Address { IPv4Address(s)! }

private let svc = ServiceName(namespace: "shop", name: "cart")

private struct EndpointCase: CustomTestStringConvertible, Sendable {
    let description: String
    let port: ServicePortSpec
    let slices: [EndpointSliceSpec]
    let all: [String]
    let cluster: [String]
    let local: [String]
    var testDescription: String { description }
}

private func slice(_ name: String, _ ports: [EndpointPortSpec], _ endpoints: [EndpointSpec]) -> EndpointSliceSpec {
    EndpointSliceSpec(name: name, service: svc, ports: ports, endpoints: endpoints)
}

private let endpointCases: [EndpointCase] = [
    EndpointCase(
        description: "unnamed Service port matches the slice port named \"\" and takes the slice's port number",
        port: ServicePortSpec(name: nil, protocol: .tcp, port: 80, targetPort: .number(8080)),
        slices: [slice("cart-a", [EndpointPortSpec(name: "", protocol: .tcp, port: 8080)],
                       [EndpointSpec(address: ip("10.244.2.7"), nodeName: "node-2"),
                        EndpointSpec(address: ip("10.244.1.5"), nodeName: "node-1")])],
        all: ["10.244.1.5:8080", "10.244.2.7:8080"],
        cluster: ["10.244.1.5:8080", "10.244.2.7:8080"],
        local: ["10.244.1.5:8080"]),
    EndpointCase(
        description: "named Service port ignores slice ports with another name or another protocol",
        port: ServicePortSpec(name: "dns", protocol: .udp, port: 53, targetPort: .name("dns")),
        slices: [slice("cart-a", [EndpointPortSpec(name: "dns-tcp", protocol: .tcp, port: 5353),
                                  EndpointPortSpec(name: "dns", protocol: .tcp, port: 5300),
                                  EndpointPortSpec(name: "dns", protocol: .udp, port: 5353)],
                       [EndpointSpec(address: ip("10.244.1.9"), nodeName: "node-1")])],
        all: ["10.244.1.9:5353"], cluster: ["10.244.1.9:5353"], local: ["10.244.1.9:5353"]),
    EndpointCase(
        description: "slice port numbered 0 is ignored, as kube-proxy does",
        port: ServicePortSpec(name: "http", port: 80),
        slices: [slice("cart-a", [EndpointPortSpec(name: "http", port: 0)],
                       [EndpointSpec(address: ip("10.244.1.9"), nodeName: "node-1")])],
        all: [], cluster: [], local: []),
    EndpointCase(
        description: "the same address:port in two slices is kept once, from the first slice by name",
        port: ServicePortSpec(name: "http", port: 80),
        slices: [slice("cart-b", [EndpointPortSpec(name: "http", port: 8080)],
                       [EndpointSpec(address: ip("10.244.2.7"), nodeName: "node-2", ready: false)]),
                 slice("cart-a", [EndpointPortSpec(name: "http", port: 8080)],
                       [EndpointSpec(address: ip("10.244.2.7"), nodeName: "node-2", ready: true)])],
        all: ["10.244.2.7:8080"], cluster: ["10.244.2.7:8080"], local: []),
    EndpointCase(
        description: "a local duplicate replaces a remote one (kube-proxy favours isLocal)",
        port: ServicePortSpec(name: "http", port: 80),
        slices: [slice("cart-a", [EndpointPortSpec(name: "http", port: 8080)],
                       [EndpointSpec(address: ip("10.244.1.5"), nodeName: "node-9")]),
                 slice("cart-b", [EndpointPortSpec(name: "http", port: 8080)],
                       [EndpointSpec(address: ip("10.244.1.5"), nodeName: "node-1")])],
        all: ["10.244.1.5:8080"], cluster: ["10.244.1.5:8080"], local: ["10.244.1.5:8080"]),
    EndpointCase(
        description: "ready endpoints are used and terminating ones are not while any is ready",
        port: ServicePortSpec(name: "http", port: 80),
        slices: [slice("cart-a", [EndpointPortSpec(name: "http", port: 8080)],
                       [EndpointSpec(address: ip("10.244.1.5"), nodeName: "node-1", ready: false, serving: true, terminating: true),
                        EndpointSpec(address: ip("10.244.2.7"), nodeName: "node-2")])],
        all: ["10.244.1.5:8080", "10.244.2.7:8080"],
        cluster: ["10.244.2.7:8080"],
        // Local falls back on its own: node-1 has no ready endpoint, one serving-terminating.
        local: ["10.244.1.5:8080"]),
    EndpointCase(
        description: "with no ready endpoint anywhere, serving-and-terminating ones are used (KEP-1669)",
        port: ServicePortSpec(name: "http", port: 80),
        slices: [slice("cart-a", [EndpointPortSpec(name: "http", port: 8080)],
                       [EndpointSpec(address: ip("10.244.1.5"), nodeName: "node-1", ready: false, serving: false, terminating: true),
                        EndpointSpec(address: ip("10.244.2.7"), nodeName: "node-2", ready: false, serving: true, terminating: true),
                        EndpointSpec(address: ip("10.244.3.3"), nodeName: "node-3", ready: false, serving: false, terminating: false)])],
        all: ["10.244.1.5:8080", "10.244.2.7:8080", "10.244.3.3:8080"],
        cluster: ["10.244.2.7:8080"],
        local: []),
    EndpointCase(
        description: "not-ready endpoints that are not terminating are never used",
        port: ServicePortSpec(name: "http", port: 80),
        slices: [slice("cart-a", [EndpointPortSpec(name: "http", port: 8080)],
                       [EndpointSpec(address: ip("10.244.1.5"), nodeName: "node-1", ready: false, serving: true, terminating: false)])],
        all: ["10.244.1.5:8080"], cluster: [], local: []),
]

@Test(arguments: endpointCases)
private func endpointsFollowKubeProxy(_ c: EndpointCase) {
    let all = EndpointSelection.endpoints(for: c.port, in: c.slices, nodeName: "node-1")
    let (cluster, local) = EndpointSelection.categorize(all)
    #expect(all.map { "\($0.address):\($0.port)" } == c.all)
    #expect(cluster.map { "\($0.address):\($0.port)" } == c.cluster)
    #expect(local.map { "\($0.address):\($0.port)" } == c.local)
    #expect(local.allSatisfy { $0.isLocal })
}

@Test func endpointConditionsAndNamesAreCarriedIntoBackends() {
    let all = EndpointSelection.endpoints(
        for: ServicePortSpec(name: "http", port: 80),
        in: [slice("cart-a", [EndpointPortSpec(name: "http", port: 8080)],
                   [EndpointSpec(address: ip("10.244.1.5"), nodeName: "node-1", ready: false, serving: true,
                                 terminating: true, targetName: "cart-7d4b9c6f5-x2x9q")])],
        nodeName: "node-1")
    #expect(all == [Backend(address: ip("10.244.1.5"), port: 8080, nodeName: "node-1", targetName: "cart-7d4b9c6f5-x2x9q",
                            isLocal: true, ready: false, serving: true, terminating: true)])
}

@Test func anEmptyNodeNameMakesNoEndpointLocal() {
    let all = EndpointSelection.endpoints(
        for: ServicePortSpec(port: 80),
        in: [slice("cart-a", [EndpointPortSpec(name: "", port: 80)], [EndpointSpec(address: ip("10.244.1.5"), nodeName: "")])],
        nodeName: "")
    #expect(all.count == 1)
    #expect(!all[0].isLocal)
}
