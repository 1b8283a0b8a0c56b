import FerryCore
import FerryPacket
import Foundation
import Testing
@testable import FerryControlPlane

// Each bad file must be refused with a diagnostic that names the line and the field, and
// every error in a file is reported, not only the first.

/// The diagnostics a file is refused with (empty when it loads).
func refusal(_ text: String, fileName: String = "cluster.yaml") -> [Diagnostic] {
    do {
        _ = try ControlPlaneLoader.parse(text, fileName: fileName)
        return []
    } catch {
        return error.diagnostics
    }
}

/// 1-based line of the `occurrence`-th line containing `needle`.
func line(of needle: String, in text: String, occurrence: Int = 1) -> Int {
    var seen = 0
    for (n, l) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where l.contains(needle) {
        seen += 1
        if seen == occurrence { return n + 1 }
    }
    Issue.record("\(needle) not found")
    return -1
}

/// A Service document in kubectl's layout.
func serviceYAML(_ name: String, namespace: String = "default", type: String = "ClusterIP", clusterIP: String,
                 spec extra: String = "", ports: String = "  - name: http\n    port: 80\n    protocol: TCP\n    targetPort: 8080") -> String {
    """
    apiVersion: v1
    kind: Service
    metadata:
      name: \(name)
      namespace: \(namespace)
    spec:
      clusterIP: \(clusterIP)
    \(extra.isEmpty ? "" : extra + "\n")  ports:
    \(ports)
      type: \(type)
    """
}

func sliceYAML(_ name: String, namespace: String = "default", service: String?, endpoints: String = "- addresses:\n  - 10.244.1.5",
               ports: String = "- name: http\n  port: 8080\n  protocol: TCP", extra: String = "") -> String {
    """
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata:
      name: \(name)
      namespace: \(namespace)
    \(service.map { "  labels:\n    kubernetes.io/service-name: \($0)\n" } ?? "")addressType: IPv4
    endpoints:\(endpoints == "null" ? " null" : "\n" + endpoints)
    ports:\(ports == "null" ? " null" : "\n" + ports)
    \(extra)
    """
}

func stream(_ docs: String...) -> String { docs.joined(separator: "\n---\n") + "\n" }

@Suite struct ValidationTests {
    @Test func nodePortOutsideTheRangeNamesLineFieldAndRange() {
        let text = stream(serviceYAML("web", type: "NodePort", clusterIP: "10.96.0.20",
                                      ports: "  - name: http\n    nodePort: 40000\n    port: 80\n    targetPort: 8080"))
        let d = refusal(text)
        #expect(d.count == 1)
        #expect(d.first?.code == .nodePortOutOfRange)
        #expect(d.first?.description
            == "cluster.yaml:\(line(of: "nodePort: 40000", in: text)): Service default/web: spec.ports[0].nodePort: 40000 is outside the NodePort range 30000-32767")
    }

    @Test func nodePortRangeComesFromTheClusterConfig() throws {
        let svc = serviceYAML("web", type: "NodePort", clusterIP: "10.96.0.20",
                              ports: "  - name: http\n    nodePort: 40000\n    port: 80\n    targetPort: 8080")
        let config = "apiVersion: ferry.dev/v1\nkind: ClusterConfig\nnodePortRange: 40000-40999\nsnatPortRange: 20000-29999"
        let doc = try ControlPlaneLoader.parse(stream(svc, config), fileName: "cluster.yaml")
        #expect(doc.services[0].ports[0].nodePort == 40000)
        #expect(doc.cluster?.nodePortRange == 40000...40999)
        // The agent's default range applies when the file has no ClusterConfig.
        let wide = ClusterConfig(nodePortRange: 30000...40000)
        #expect(try ControlPlaneLoader.parse(stream(svc), fileName: "c.yaml", defaultCluster: wide).services.count == 1)
    }

    @Test func duplicateNodePortAcrossServicesNamesBoth() {
        let text = stream(
            serviceYAML("web", type: "NodePort", clusterIP: "10.96.0.20", ports: "  - name: http\n    nodePort: 30080\n    port: 80"),
            serviceYAML("api", namespace: "store", type: "NodePort", clusterIP: "10.96.0.21",
                        ports: "  - name: http\n    nodePort: 30080\n    port: 8080"))
        let d = refusal(text)
        #expect(d.count == 1)
        #expect(d.first?.code == .duplicateNodePort)
        #expect(d.first?.description == "cluster.yaml:\(line(of: "nodePort: 30080", in: text, occurrence: 2)): Service store/api: spec.ports[0].nodePort: 30080/TCP is already used by Service default/web spec.ports[0].nodePort (cluster.yaml:\(line(of: "nodePort: 30080", in: text)))")
    }

    @Test func sameNodePortNumberWithDifferentProtocolsIsAllowed() throws {
        let text = stream(serviceYAML("dns", type: "NodePort", clusterIP: "10.96.0.10", ports: """
              - name: dns
                nodePort: 30053
                port: 53
                protocol: UDP
              - name: dns-tcp
                nodePort: 30053
                port: 53
                protocol: TCP
            """))
        let doc = try ControlPlaneLoader.parse(text, fileName: "cluster.yaml")
        #expect(doc.services[0].ports.map(\.nodePort) == [30053, 30053])
    }

    @Test func healthCheckNodePortMayNotReuseANodePort() {
        let text = stream(serviceYAML("shop", type: "LoadBalancer", clusterIP: "10.96.0.30",
                                      spec: "  externalTrafficPolicy: Local\n  healthCheckNodePort: 31443",
                                      ports: "  - name: https\n    nodePort: 31443\n    port: 443"))
        let d = refusal(text)
        #expect(d.map(\.code) == [.duplicateNodePort])
        #expect(d.first?.field == "spec.healthCheckNodePort")
        #expect(d.first?.line == line(of: "healthCheckNodePort: 31443", in: text))
    }

    @Test func namedTargetPortThatNoSlicePortCarries() {
        let text = stream(
            serviceYAML("api", clusterIP: "10.96.0.40", ports: "  - name: grpc\n    port: 9000\n    targetPort: grpc"),
            sliceYAML("api-abcde", service: "api", ports: "- name: http\n  port: 8080"))
        let d = refusal(text)
        #expect(d.count == 1)
        #expect(d.first?.code == .unresolvedTargetPort)
        #expect(d.first?.description == "cluster.yaml:\(line(of: "targetPort: grpc", in: text)): Service default/api: spec.ports[0].targetPort: \"grpc\" is not resolved by any EndpointSlice of the Service (api-abcde): none carries a TCP port named \"grpc\"")
    }

    @Test func namedTargetPortWithoutEndpointsYetIsNotAnError() throws {
        // A Service whose pods are not up has a slice with no endpoints and no ports.
        let text = stream(
            serviceYAML("api", clusterIP: "10.96.0.40", ports: "  - name: grpc\n    port: 9000\n    targetPort: grpc"),
            sliceYAML("api-abcde", service: "api", endpoints: "null", ports: "null"))
        let doc = try ControlPlaneLoader.parse(text, fileName: "cluster.yaml")
        #expect(doc.slices[0].endpoints.isEmpty)
    }

    @Test func sliceNamingAMissingServiceOrNoServiceAtAll() {
        let text = stream(
            serviceYAML("web", clusterIP: "10.96.0.20"),
            sliceYAML("ghost-abcde", service: "ghost"),
            sliceYAML("nolabel-abcde", service: nil))
        let d = refusal(text)
        #expect(d.map(\.code) == [.orphanEndpointSlice, .orphanEndpointSlice])
        #expect(d[0].description == "cluster.yaml:\(line(of: "kubernetes.io/service-name: ghost", in: text)): EndpointSlice default/ghost-abcde: metadata.labels[kubernetes.io/service-name]: names Service default/ghost, which is not in this file")
        #expect(d[1].line == line(of: "kind: EndpointSlice", in: text, occurrence: 2) - 1)  // the object's first line
        #expect(d[1].description.contains("EndpointSlice default/nolabel-abcde: metadata.labels: no kubernetes.io/service-name label"))
    }

    @Test func invalidAddressesAnywhere() {
        let text = stream(
            serviceYAML("web", clusterIP: "10.96.0.300", spec: "  externalIPs:\n  - 203.0.113.x"),
            serviceYAML("api", clusterIP: "10.96.0.21"),
            sliceYAML("api-abcde", service: "api", endpoints: "- addresses:\n  - 10.244.1"))
        let d = refusal(text)
        #expect(d.map(\.code) == [.invalidAddress, .invalidAddress, .invalidAddress])
        #expect(d.map(\.field) == ["spec.clusterIP", "spec.externalIPs[0]", "endpoints[0].addresses[0]"])
        #expect(d.map(\.line) == [line(of: "10.96.0.300", in: text), line(of: "203.0.113.x", in: text), line(of: "- 10.244.1", in: text)])
        #expect(d[0].description == "cluster.yaml:\(line(of: "10.96.0.300", in: text)): Service default/web: spec.clusterIP: \"10.96.0.300\" is not a valid IPv4 address")
    }

    @Test func portsOutOfRangeAndProtocolsOtherThanTCPOrUDP() {
        let text = stream(serviceYAML("web", clusterIP: "10.96.0.20", ports: """
              - name: a
                port: 70000
              - name: b
                port: 81
                targetPort: 0
              - name: c
                port: 82
                protocol: ICMP
            """))
        let d = refusal(text)
        #expect(d.map(\.code) == [.portOutOfRange, .portOutOfRange, .invalidProtocol])
        #expect(d.map(\.field) == ["spec.ports[0].port", "spec.ports[1].targetPort", "spec.ports[2].protocol"])
        #expect(d[0].description == "cluster.yaml:\(line(of: "port: 70000", in: text)): Service default/web: spec.ports[0].port: 70000 is not a port number; expected 1-65535")
        #expect(d[2].description == "cluster.yaml:\(line(of: "ICMP", in: text)): Service default/web: spec.ports[2].protocol: ICMP is not a Service protocol; expected TCP or UDP")
    }

    @Test func localExternalTrafficPolicyOnAClusterIPService() {
        let text = stream(serviceYAML("web", clusterIP: "10.96.0.20", spec: "  externalTrafficPolicy: Local"))
        let d = refusal(text)
        #expect(d.map(\.code) == [.trafficPolicyNotAllowed])
        #expect(d.first?.description == "cluster.yaml:\(line(of: "externalTrafficPolicy", in: text)): Service default/web: spec.externalTrafficPolicy: Local is only allowed on NodePort and LoadBalancer Services (or with externalIPs); this one is ClusterIP")
    }

    @Test func healthCheckNodePortNeedsLocalLoadBalancer() {
        let text = stream(
            serviceYAML("a", type: "LoadBalancer", clusterIP: "10.96.0.20", spec: "  healthCheckNodePort: 32001",
                        ports: "  - name: http\n    nodePort: 30001\n    port: 80"),
            serviceYAML("b", type: "NodePort", clusterIP: "10.96.0.21", spec: "  externalTrafficPolicy: Local\n  healthCheckNodePort: 32002",
                        ports: "  - name: http\n    nodePort: 30002\n    port: 80"))
        let d = refusal(text)
        #expect(d.map(\.code) == [.healthCheckNodePortNotAllowed, .healthCheckNodePortNotAllowed])
        #expect(d.map(\.line) == [line(of: "32001", in: text), line(of: "32002", in: text)])
        #expect(d[0].description.hasSuffix("Service default/a: spec.healthCheckNodePort: 32001 is only allowed on a LoadBalancer Service with externalTrafficPolicy Local; this one is LoadBalancer with Cluster"))
    }

    @Test func duplicateServiceNames() {
        let text = stream(serviceYAML("web", clusterIP: "10.96.0.20"), serviceYAML("web", clusterIP: "10.96.0.21"))
        let d = refusal(text)
        #expect(d.map(\.code) == [.duplicateService])
        #expect(d.first?.line == line(of: "apiVersion: v1", in: text, occurrence: 2))
        #expect(d.first?.description.contains("a second Service named default/web; the first is at cluster.yaml:1") == true)
    }

    @Test func duplicateFrontendAcrossServicesNamesBoth() {
        let text = stream(serviceYAML("web", clusterIP: "10.96.0.20"),
                          serviceYAML("web2", clusterIP: "10.96.0.20"),
                          serviceYAML("web3", clusterIP: "10.96.0.22", spec: "  externalIPs:\n  - 10.96.0.20"))
        let d = refusal(text)
        #expect(d.map(\.code) == [.duplicateFrontend, .duplicateFrontend])
        #expect(d[0].description == "cluster.yaml:\(line(of: "clusterIP: 10.96.0.20", in: text, occurrence: 2)): Service default/web2: spec.clusterIP: 10.96.0.20:80/TCP (spec.ports[0]) is already a frontend of Service default/web spec.clusterIP (cluster.yaml:\(line(of: "clusterIP: 10.96.0.20", in: text)))")
        #expect(d[1].field == "spec.externalIPs[0]")
    }

    @Test func malformedClusterConfigRanges() {
        let text = stream("""
            apiVersion: ferry.dev/v1
            kind: ClusterConfig
            clusterCIDRs:
            - 10.244.0.0/33
            nodePortRange: 32767-30000
            snatPortRange: 30000-40000
            """)
        let d = refusal(text)
        #expect(d.map(\.code) == [.invalidAddress, .invalidRange, .invalidRange])
        #expect(d.map(\.field) == ["clusterCIDRs[0]", "nodePortRange", "snatPortRange"])
        #expect(d[1].description == "cluster.yaml:5: ClusterConfig (unnamed): nodePortRange: \"32767-30000\" is not a port range; expected first-last such as 30000-32767")
        // With the NodePort range at its default, 30000-40000 overlaps it.
        #expect(d[2].description == "cluster.yaml:6: ClusterConfig (unnamed): snatPortRange: 30000-40000 overlaps the NodePort range 30000-32767 (the default)")
    }

    @Test func yamlSyntaxErrorNamesTheLine() {
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n   namespace: default\nspec: {}\n"
        let d = refusal(text)
        #expect(d.count == 1)
        #expect(d.first?.code == .syntax)
        #expect(d.first?.line == 5)
        #expect(d.first?.description.hasPrefix("cluster.yaml:5: YAML syntax error at column") == true)
    }

    @Test func jsonSyntaxErrorNamesLineAndColumn() {
        let text = "{\n    \"apiVersion\": \"v1\",\n    \"kind\": \"List\",\n    \"items\": [\n        {\"kind\": \"Service\",}\n    ]\n}\n"
        let d = refusal(text, fileName: "cluster.json")
        #expect(d.count == 1)
        #expect(d.first?.line == 5)
        #expect(d.first?.column == 28)
        #expect(d.first?.description == "cluster.json:5: JSON syntax error at column 28: expected a string key, found '}'")
    }

    @Test func jsonFieldErrorsNameTheirLines() {
        let text = """
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {
                    "clusterIP": "10.96.0.20",
                    "ports": [
                        {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}
                    ]
                }
            }
            """
        let d = refusal(text, fileName: "cluster.json")
        #expect(d.map(\.code) == [.nodePortNotAllowed])
        #expect(d.first?.line == 8)
        #expect(d.first?.field == "spec.ports[0].nodePort")
    }

    @Test func everyErrorIsReportedSortedByLine() {
        let text = stream(
            serviceYAML("web", type: "NodePort", clusterIP: "10.96.0.20", ports: "  - name: http\n    nodePort: 40000\n    port: 80"),
            serviceYAML("api", clusterIP: "10.96.0.999"),
            sliceYAML("ghost-abcde", service: "ghost"))
        let d = refusal(text)
        #expect(d.map(\.code) == [.nodePortOutOfRange, .invalidAddress, .orphanEndpointSlice])
        #expect(d.map { $0.line ?? 0 } == d.map { $0.line ?? 0 }.sorted())
        #expect(d.allSatisfy { $0.severity == .error && $0.file == "cluster.yaml" && $0.line != nil && $0.field != nil })
    }

    @Test func wrongTypesAreReportedNotGuessed() {
        let text = stream(serviceYAML("web", clusterIP: "10.96.0.20", ports: "  - name: http\n    port: \"80\""))
        let d = refusal(text)
        #expect(d.map(\.code) == [.wrongType])
        #expect(d.first?.description == "cluster.yaml:\(line(of: "port: \"80\"", in: text)): Service default/web: spec.ports[0].port: expected an integer, found \"80\"")
    }
}
