import FerryCore
import FerryPacket
import Foundation
import Testing
@testable import FerryControlPlane

// The Manifests/ files are what `kubectl get svc,endpointslices -A -o yaml` (and `-o json`)
// print for a small lab: a NodePort Service with externalTrafficPolicy Local, a
// LoadBalancer with a health-check node port and an ingress IP, a headless Service, a
// multi-port Service with named targetPorts, their EndpointSlices (managedFields and all),
// and Ferry's ClusterConfig.

func manifestPath(_ name: String) throws -> String {
    let url = try #require(Bundle.module.url(forResource: "Manifests/\(name)", withExtension: nil)
        ?? Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Manifests"))
    return url.path
}

func ip(_ s: String) -> IPv4Address { IPv4Address(s)! }
func prefix(_ s: String) -> IPv4Prefix { IPv4Prefix(s)! }

@Suite struct ManifestLoadingTests {
    let document: ControlPlaneDocument

    init() throws {
        document = try ControlPlaneLoader.load(contentsOf: try manifestPath("cluster.yaml"))
    }

    func service(_ ns: String, _ name: String) throws -> ServiceSpec {
        try #require(document.services.first { $0.name == ServiceName(namespace: ns, name: name) })
    }

    @Test func nodePortServiceWithLocalPolicy() throws {
        let web = try service("default", "web")
        #expect(web == ServiceSpec(
            name: ServiceName(namespace: "default", name: "web"), type: .nodePort, clusterIP: ip("10.96.12.34"),
            ports: [ServicePortSpec(name: "http", protocol: .tcp, port: 80, targetPort: .number(8080), nodePort: 30080)],
            externalTrafficPolicy: .local, internalTrafficPolicy: .cluster, healthCheckNodePort: nil,
            sessionAffinity: .none))
        #expect(web.isProxied)
    }

    @Test func loadBalancerWithHealthCheckAndIngressIP() throws {
        let shop = try service("store", "shop")
        #expect(shop.type == .loadBalancer)
        #expect(shop.clusterIP == ip("10.96.40.7"))
        #expect(shop.loadBalancerIPs == [ip("192.0.2.10")])
        #expect(shop.externalIPs == [])
        #expect(shop.externalTrafficPolicy == .local)
        #expect(shop.healthCheckNodePort == 32001)
        #expect(shop.ports == [ServicePortSpec(name: "https", protocol: .tcp, port: 443, targetPort: .number(8443), nodePort: 31443)])
        #expect(shop.loadBalancerSourceRanges == [prefix("203.0.113.0/24"), prefix("198.51.100.7/32")])
    }

    @Test func headlessServiceHasNoClusterIPAndIsNotProxied() throws {
        let db = try service("store", "db")
        #expect(db.clusterIP == nil)
        #expect(!db.isProxied)
        #expect(db.ports == [ServicePortSpec(name: "postgres", port: 5432, targetPort: .number(5432))])
    }

    @Test func multiPortServiceKeepsNamedTargetPortsAndAffinity() throws {
        let api = try service("store", "api")
        #expect(api.ports == [
            ServicePortSpec(name: "http", protocol: .tcp, port: 80, targetPort: .name("web")),
            ServicePortSpec(name: "grpc", protocol: .tcp, port: 9000, targetPort: .name("grpc")),
            ServicePortSpec(name: "stats", protocol: .udp, port: 8125, targetPort: .number(8125)),
        ])
        #expect(api.sessionAffinity == .clientIP(timeoutSeconds: 600))
        #expect(api.internalTrafficPolicy == .local)
        #expect(api.externalTrafficPolicy == .cluster)
    }

    @Test func endpointSlicesBecomeOneEndpointPerAddressWithAPIConditionDefaults() throws {
        #expect(document.slices.map(\.name) == ["web-8xk2m", "shop-p7t9w", "db-h4n2c", "api-r5v8k"])
        let web = document.slices[0]
        #expect(web.service == ServiceName(namespace: "default", name: "web"))
        #expect(web.ports == [EndpointPortSpec(name: "http", protocol: .tcp, port: 8080)])
        #expect(web.endpoints == [
            EndpointSpec(address: ip("10.244.1.5"), nodeName: "node-1", ready: true, serving: true, terminating: false,
                         targetName: "web-7d9f8b6c5-x2k4p"),
            EndpointSpec(address: ip("10.244.2.9"), nodeName: "node-2", ready: false, serving: true, terminating: true,
                         targetName: "web-7d9f8b6c5-q8r7s"),
        ])
        let api = document.slices[3]
        #expect(api.ports == [EndpointPortSpec(name: "http", port: 8080), EndpointPortSpec(name: "grpc", port: 9090),
                              EndpointPortSpec(name: "stats", protocol: .udp, port: 8125)])
        // No conditions at all: ready and serving true, terminating false. Only `ready:
        // false` given: serving still defaults to true (the API's nil semantics).
        #expect(api.endpoints[0] == EndpointSpec(address: ip("10.244.1.30"), nodeName: "node-1", ready: true,
                                                 serving: true, terminating: false, targetName: "api-6f7a8b9c0-mn4pq"))
        #expect(api.endpoints[1].ready == false)
        #expect(api.endpoints[1].serving == true)
        #expect(api.endpoints[1].terminating == false)
    }

    @Test func clusterConfigAndNodes() throws {
        let cluster = try #require(document.cluster)
        #expect(cluster == ClusterConfig(clusterCIDRs: [prefix("10.244.0.0/16")], nodePortRange: 30000...32767,
                                         snatPortRange: 20000...29999, masqueradeAll: false))
        #expect(document.nodes == [
            NodeAddresses(name: "node-1", addresses: [ip("172.18.0.2")]),
            NodeAddresses(name: "node-2", addresses: [ip("172.18.0.3")]),
            NodeAddresses(name: "node-3", addresses: [ip("172.18.0.4"), ip("192.168.50.4")]),
        ])
    }

    @Test func summaryAndNoWarnings() {
        #expect(document.warnings == [])
        #expect(document.summary == "cluster.yaml: 4 services, 6 endpoints, 0 warnings")
    }

    @Test func jsonFormOfTheSameObjectsGivesTheSameModel() throws {
        let json = try ControlPlaneLoader.load(contentsOf: try manifestPath("cluster.json"))
        #expect(json.services == document.services)
        #expect(json.slices == document.slices)
        #expect(json.cluster == document.cluster)
        #expect(json.nodes == document.nodes)
        #expect(json.summary == "cluster.json: 4 services, 6 endpoints, 0 warnings")
    }

    @Test func multiDocumentStreamGivesTheSameModelAsTheList() throws {
        // The same objects as separate documents (`kubectl get -o yaml` per object, joined by ---).
        let text = try String(contentsOfFile: try manifestPath("cluster.yaml"), encoding: .utf8)
        var documents: [String] = []
        var current: [Substring] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("- ") {
                if !current.isEmpty { documents.append(current.joined(separator: "\n")) }
                current = [line.dropFirst(2)]
            } else if line.hasPrefix("  ") {
                current.append(line.dropFirst(2))
            } else if line.hasPrefix("kind: List") {
                break
            }
        }
        documents.append(current.joined(separator: "\n"))
        #expect(documents.count == 9)
        let stream = try ControlPlaneLoader.parse(documents.joined(separator: "\n---\n") + "\n---\n", fileName: "stream.yaml")
        #expect(stream.services == document.services)
        #expect(stream.slices == document.slices)
        #expect(stream.nodes == document.nodes)
    }

    @Test func singleObjectFile() throws {
        let doc = try ControlPlaneLoader.parse("""
            apiVersion: v1
            kind: Service
            metadata:
              name: one
            spec:
              clusterIP: 10.96.0.50
              ports:
              - port: 53
                protocol: UDP
            """, fileName: "one.yaml")
        #expect(doc.services == [ServiceSpec(name: ServiceName(namespace: "default", name: "one"), clusterIP: ip("10.96.0.50"),
                                             ports: [ServicePortSpec(protocol: .udp, port: 53)])])
        #expect(doc.cluster == nil)
        #expect(doc.summary == "one.yaml: 1 service, 0 endpoints, 0 warnings")
    }

    @Test func unreadableFileIsATypedError() {
        #expect {
            _ = try ControlPlaneLoader.load(contentsOf: "/nonexistent/cluster.yaml")
        } throws: { error in
            guard let e = error as? ControlPlaneError else { return false }
            return e.diagnostics.count == 1 && e.diagnostics[0].code == .unreadableFile
                && e.description == "cluster.yaml: cannot read /nonexistent/cluster.yaml: no such file"
        }
    }
}
