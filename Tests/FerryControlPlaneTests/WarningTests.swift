import FerryCore
import FerryPacket
import Foundation
import Testing
@testable import FerryControlPlane

// Fields Ferry does not implement but that change behaviour are warned about once per
// file each (with the first place and a count), and kinds Ferry does not read are skipped
// with one warning per kind. Nothing is dropped silently.

@Suite struct WarningTests {
    @Test func unsupportedFeaturesAreWarnedOnceEach() throws {
        let dualStack = serviceYAML("dual", clusterIP: "10.96.0.20", spec: """
              clusterIPs:
              - 10.96.0.20
              - fd00:10:96::20
              ipFamilies:
              - IPv4
              - IPv6
              trafficDistribution: PreferClose
            """)
        let lb = serviceYAML("lb", type: "LoadBalancer", clusterIP: "10.96.0.21", spec: "  loadBalancerClass: example.com/lb",
                             ports: "  - name: http\n    nodePort: 30001\n    port: 80\n  - name: sctp\n    nodePort: 30002\n    port: 9\n    protocol: SCTP")
        let hinted = { (name: String) in
            sliceYAML(name, service: "dual", endpoints: "- addresses:\n  - 10.244.1.5\n  hints:\n    forZones:\n    - name: zone-a")
        }
        let text = stream(dualStack, lb, hinted("dual-aaaaa"), hinted("dual-bbbbb"))
        let doc = try ControlPlaneLoader.parse(text, fileName: "cluster.yaml")

        let byField = Dictionary(grouping: doc.warnings, by: { $0.field ?? "" })
        #expect(doc.warnings.allSatisfy { $0.severity == .warning && $0.code == .unsupportedFeature })
        // IPv6 shows up in clusterIPs and ipFamilies but is one warning, at its first place.
        let ipv6 = doc.warnings.filter { $0.message.hasPrefix("IPv6") }
        #expect(ipv6.count == 1)
        #expect(ipv6.first?.line == line(of: "fd00:10:96::20", in: text))
        #expect(ipv6.first?.message.hasSuffix("(2 places in this file; the first is shown)") == true)
        #expect(byField["spec.trafficDistribution"]?.count == 1)
        #expect(byField["spec.loadBalancerClass"]?.count == 1)
        #expect(byField["spec.ports[1].protocol"]?.first?.message == "SCTP is not supported; the port is not proxied")
        let hints = try #require(byField["endpoints[0].hints"])
        #expect(hints.count == 1)
        #expect(hints[0].object == "EndpointSlice default/dual-aaaaa")
        #expect(hints[0].message.hasSuffix("(2 places in this file; the first is shown)"))
        #expect(doc.warnings.count == 5)
        #expect(doc.summary == "cluster.yaml: 2 services, 2 endpoints, 5 warnings")

        // The model keeps what Ferry can proxy: the IPv4 family and the TCP port.
        #expect(doc.services[0].clusterIP == IPv4Address("10.96.0.20"))
        #expect(doc.services[1].ports.map(\.name) == ["http"])
        #expect(ipv6.first?.description == "cluster.yaml:\(line(of: "fd00:10:96::20", in: text)): Service default/dual: spec.clusterIPs[1]: IPv6 is not supported; Ferry proxies the IPv4 family only and ignores IPv6 addresses (2 places in this file; the first is shown)")
    }

    @Test func otherKindsAreSkippedWithOneWarningPerKind() throws {
        let pod = { (name: String) in "apiVersion: v1\nkind: Pod\nmetadata:\n  name: \(name)\nspec:\n  containers: []" }
        let text = stream(serviceYAML("web", clusterIP: "10.96.0.20"), pod("a"), pod("b"),
                          "apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: web\nsubsets: []",
                          "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata: {}")
        let doc = try ControlPlaneLoader.parse(text, fileName: "cluster.yaml")
        #expect(doc.services.count == 1)
        #expect(doc.warnings.map(\.code) == [.skippedKind, .skippedKind, .skippedKind])
        #expect(doc.warnings[0].description == "cluster.yaml:\(line(of: "kind: Pod", in: text) - 1): skipped 2 Pod objects (apiVersion v1): Ferry reads v1 Service, discovery.k8s.io/v1 EndpointSlice and ferry.dev/v1 ClusterConfig")
        #expect(doc.warnings[1].message.contains("1 Endpoints object") && doc.warnings[1].message.contains("EndpointSlices replace v1 Endpoints"))
        #expect(doc.warnings[2].message.contains("1 ConfigMap object"))
    }

    @Test func ipv6OnlyServiceAndItsSliceAreSkippedNotRejected() throws {
        let v6 = serviceYAML("v6", clusterIP: "fd00:10:96::30")
        let slice = """
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: v6-abcde
              namespace: default
              labels:
                kubernetes.io/service-name: v6
            addressType: IPv6
            endpoints:
            - addresses:
              - fd00:10:244::5
            """
        let doc = try ControlPlaneLoader.parse(stream(v6, slice), fileName: "cluster.yaml")
        #expect(doc.services.isEmpty)
        #expect(doc.slices.isEmpty)
        #expect(doc.warnings.count == 2)
        #expect(doc.warnings.map(\.field) == ["spec.clusterIP", "addressType"])
    }

    @Test func serviceForAnotherProxyIsSkippedWithAWarning() throws {
        let text = stream("""
            apiVersion: v1
            kind: Service
            metadata:
              name: other
              namespace: default
              labels:
                service.kubernetes.io/service-proxy-name: someone-else
            spec:
              clusterIP: 10.96.0.44
              ports:
              - port: 80
            """, sliceYAML("other-abcde", service: "other"))
        let doc = try ControlPlaneLoader.parse(text, fileName: "cluster.yaml")
        #expect(doc.services.isEmpty)
        #expect(doc.warnings.map(\.line) == [line(of: "service-proxy-name", in: text)])
    }

    @Test func unallocatedNodePortIsAWarning() throws {
        let text = stream(serviceYAML("web", type: "NodePort", clusterIP: "10.96.0.20"))
        let doc = try ControlPlaneLoader.parse(text, fileName: "cluster.yaml")
        #expect(doc.services[0].ports[0].nodePort == nil)
        #expect(doc.warnings.map(\.code) == [.notAllocated])
        #expect(doc.warnings.first?.field == "spec.ports[0].nodePort")
    }

    @Test func errorsCarryTheWarningsFoundAlongside() {
        let text = stream(serviceYAML("web", clusterIP: "10.96.0.20", spec: "  trafficDistribution: PreferClose"),
                          serviceYAML("web", clusterIP: "10.96.0.21"))
        do {
            _ = try ControlPlaneLoader.parse(text, fileName: "cluster.yaml")
            Issue.record("a duplicate Service must be refused")
        } catch {
            #expect(error.diagnostics.map(\.code) == [.duplicateService])
            #expect(error.warnings.map(\.code) == [.unsupportedFeature])
            let lines = error.description.split(separator: "\n")
            #expect(lines.count == 2)
            #expect(lines.last?.hasPrefix("warning: cluster.yaml:\(line(of: "trafficDistribution", in: text)): Service default/web: spec.trafficDistribution:") == true)
        }
    }
}
