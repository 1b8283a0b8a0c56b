import FerryCore
import FerryPacket
import Foundation
import Testing
@testable import FerryControlPlane

@Suite struct ControlPlaneDiffTests {
    let old: ControlPlaneDocument

    init() throws {
        old = try ControlPlaneLoader.load(contentsOf: try manifestPath("cluster.yaml"))
    }

    @Test func identicalDocumentsHaveNoChanges() {
        let diff = ControlPlaneDiff(old: old, new: old)
        #expect(diff.isEmpty)
        #expect(diff.description == "no changes")
    }

    @Test func servicesAddedRemovedChangedAndEndpointsAddedRemovedChanged() throws {
        var new = old
        let web = ServiceName(namespace: "default", name: "web")
        let db = ServiceName(namespace: "store", name: "db")
        let extra = ServiceName(namespace: "store", name: "cache")
        // Remove the headless db (and its slice), add a cache Service, change web's policy.
        new.services.removeAll { $0.name == db }
        new.slices.removeAll { $0.service == db }
        new.services.append(ServiceSpec(name: extra, clusterIP: ip("10.96.40.50"), ports: [ServicePortSpec(port: 6379)]))
        let w = try #require(new.services.firstIndex { $0.name == web })
        new.services[w].externalTrafficPolicy = .cluster
        // web: 10.244.2.9 goes away, 10.244.4.4 arrives, 10.244.1.5 becomes not ready.
        let s = try #require(new.slices.firstIndex { $0.service == web })
        new.slices[s].endpoints.removeAll { $0.address == ip("10.244.2.9") }
        new.slices[s].endpoints.append(EndpointSpec(address: ip("10.244.4.4"), nodeName: "node-4"))
        new.slices[s].endpoints[0].ready = false

        let diff = ControlPlaneDiff(old: old, new: new)
        #expect(diff.addedServices == [extra])
        #expect(diff.removedServices == [db])
        #expect(diff.changedServices == [web])
        #expect(diff.endpoints == [
            ControlPlaneDiff.EndpointChanges(service: web, added: [ip("10.244.4.4")], removed: [ip("10.244.2.9")],
                                             changed: [ip("10.244.1.5")]),
            ControlPlaneDiff.EndpointChanges(service: db, removed: [ip("10.244.3.7")]),
        ])
        #expect(diff.removedEndpoints.map { "\($0.service) \($0.address)" } == ["default/web 10.244.2.9", "store/db 10.244.3.7"])
        #expect(diff.description == """
            service added store/cache
            service removed store/db
            service changed default/web
            endpoints default/web: +10.244.4.4 -10.244.2.9 ~10.244.1.5
            endpoints store/db: -10.244.3.7
            """)
    }

    @Test func aChangedSlicePortChangesItsEndpoints() throws {
        var new = old
        let api = ServiceName(namespace: "store", name: "api")
        let s = try #require(new.slices.firstIndex { $0.service == api })
        new.slices[s].ports[0].port = 8081
        let diff = ControlPlaneDiff(old: old, new: new)
        #expect(diff.endpoints == [ControlPlaneDiff.EndpointChanges(service: api, changed: [ip("10.244.1.30"), ip("10.244.2.31")])])
        #expect(diff.changedServices.isEmpty)
    }
}

@Suite struct ClusterGeneratorTests {
    @Test func generatedYAMLLoadsWithEveryServiceAndEndpoint() throws {
        let text = ClusterGenerator.kubectlYAML(services: 300, endpointsPerService: 3, seed: 42)
        let doc = try ControlPlaneLoader.parse(text, fileName: "gen.yaml")
        #expect(doc.services.count == 300)
        #expect(doc.endpointCount == 900)
        #expect(doc.warnings == [])
        #expect(doc.services[42].name == ServiceName(namespace: "ns-02", name: "svc-00042"))
        let types = Set(doc.services.map(\.type))
        #expect(types == [.clusterIP, .nodePort, .loadBalancer])
        let serviceRange = IPv4Prefix("10.96.0.0/12")!, podRange = IPv4Prefix("10.244.0.0/16")!
        #expect(doc.services.allSatisfy { $0.clusterIP.map(serviceRange.contains) == true })
        #expect(doc.slices.allSatisfy { $0.endpoints.allSatisfy { podRange.contains($0.address) } })
        let nodePorts = doc.services.flatMap { $0.ports.compactMap(\.nodePort) + ($0.healthCheckNodePort.map { [$0] } ?? []) }
        #expect(!nodePorts.isEmpty)
        #expect(nodePorts.allSatisfy { (30000...32767).contains($0) })
        #expect(doc.services.contains { $0.ports.contains { if case .name = $0.targetPort { true } else { false } } })
        #expect(doc.services.contains { $0.healthCheckNodePort != nil && !$0.loadBalancerIPs.isEmpty })
        #expect(text.contains("managed-by: endpointslice-controller.k8s.io"))
    }

    @Test func jsonFormGivesTheSameModelAndSeedsAreDeterministic() throws {
        let yaml = try ControlPlaneLoader.parse(ClusterGenerator.kubectlYAML(services: 30, endpointsPerService: 150, seed: 7), fileName: "g.yaml")
        let json = try ControlPlaneLoader.parse(ClusterGenerator.kubectlJSON(services: 30, endpointsPerService: 150, seed: 7), fileName: "g.json")
        #expect(yaml.services == json.services)
        #expect(yaml.slices == json.slices)
        // 150 endpoints per Service are split into slices of 100 and 50.
        #expect(yaml.slices.count == 60)
        #expect(ClusterGenerator.kubectlYAML(services: 20, endpointsPerService: 2, seed: 7)
            == ClusterGenerator.kubectlYAML(services: 20, endpointsPerService: 2, seed: 7))
        #expect(ClusterGenerator.kubectlYAML(services: 20, endpointsPerService: 2, seed: 7)
            != ClusterGenerator.kubectlYAML(services: 20, endpointsPerService: 2, seed: 8))
    }

    @Test func nodePortsRunningOutTurnsTheRestIntoClusterIPServices() throws {
        let range: ClosedRange<UInt16> = 30000...30099
        let text = ClusterGenerator.kubectlJSON(services: 400, endpointsPerService: 1, seed: 1, nodePortRange: range)
        let doc = try ControlPlaneLoader.parse(text, fileName: "g.json", defaultCluster: ClusterConfig(nodePortRange: range))
        let used = doc.services.flatMap { $0.ports.compactMap(\.nodePort) + ($0.healthCheckNodePort.map { [$0] } ?? []) }
        #expect(Set(used).count == used.count)
        #expect(used.allSatisfy(range.contains))
        // 400 Services would want about 200 node ports: the range is used up (a Service
        // needing two ports may leave one free) and the rest became ClusterIP.
        #expect(used.count >= range.count - 2)
        #expect(doc.services.count == 400)
        #expect(doc.services.suffix(100).allSatisfy { $0.type == .clusterIP })
    }
}
