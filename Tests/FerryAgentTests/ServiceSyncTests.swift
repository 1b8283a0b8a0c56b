import FerryAgent
import FerryControlPlane
import FerryCore
import FerryPacket
import Foundation
import Testing

/// Reloads driven through the real pipeline, no root: a flow keeps its backend across a
/// reload that changes other endpoints, a broken file changes nothing, and UDP entries to
/// a removed endpoint are cleared.
@Suite struct ServiceSyncTests {
    // node-1: eth0 on the underlay, a client pod on vp-c. Backends live on node-2, so
    // every DNATed packet leaves on eth0 towards node-2's MAC.
    static let eth0 = InterfaceIndex(2)
    static let vpC = InterfaceIndex(5)
    static let eth0MAC = MACAddress(0x02_00_00_00_01_00)
    static let vpCMAC = MACAddress(0x02_00_00_00_01_0c)
    static let clientMAC = MACAddress(0x0a_00_00_00_01_14)
    static let node2MAC = MACAddress(0x02_00_00_00_02_00)
    static let client = IPv4Address(10, 244, 1, 20)
    static let vip = IPv4Address(10, 96, 0, 10)

    static func yaml(endpoints: [String], nodePort: Int = 30080) -> String {
        var s = """
        apiVersion: v1
        kind: List
        items:
        - apiVersion: ferry.dev/v1
          kind: ClusterConfig
          clusterCIDRs: [10.244.0.0/16]
        - apiVersion: v1
          kind: Service
          metadata: {name: web, namespace: default}
          spec:
            type: NodePort
            clusterIP: 10.96.0.10
            ports:
            - {name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: \(nodePort)}
            - {name: dns, protocol: UDP, port: 53, targetPort: 5353}
        - apiVersion: discovery.k8s.io/v1
          kind: EndpointSlice
          metadata:
            name: web-abc
            namespace: default
            labels: {kubernetes.io/service-name: web}
          addressType: IPv4
          ports:
          - {name: http, protocol: TCP, port: 8080}
          - {name: dns, protocol: UDP, port: 5353}
          endpoints:

        """
        for e in endpoints {
            s += """
              - addresses: [\(e)]
                nodeName: node-2
                conditions: {ready: true}

            """
        }
        return s
    }

    final class Harness {
        let dir: String
        let path: String
        let sync: ServiceSync
        var pipeline: Pipeline
        var state: ForwardingState
        var now = Timestamp.seconds(1000)

        init(endpoints: [String]) throws {
            dir = NSTemporaryDirectory() + "ferry-sync-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            path = dir + "/cluster.yaml"
            try ServiceSyncTests.yaml(endpoints: endpoints).write(toFile: path, atomically: true, encoding: .utf8)
            let node = NodeIdentity(name: "node-1")
            sync = try ServiceSync(path: path, node: node)
            let interfaces = InterfaceTable([
                InterfaceInfo(index: ServiceSyncTests.eth0, name: "eth0", mac: ServiceSyncTests.eth0MAC,
                              addresses: [InterfaceAddress(IPv4Address(172, 18, 0, 11), prefixLength: 24)]),
                InterfaceInfo(index: ServiceSyncTests.vpC, name: "vp-c", mac: ServiceSyncTests.vpCMAC,
                              addresses: [InterfaceAddress(IPv4Address(10, 244, 1, 1), prefixLength: 32)]),
            ])
            let routes = RouteTable(routes: [
                Route(destination: IPv4Prefix("172.18.0.0/24")!, interface: ServiceSyncTests.eth0),
                Route(destination: IPv4Prefix("10.244.2.0/24")!, gateway: IPv4Address(172, 18, 0, 12), interface: ServiceSyncTests.eth0),
                Route(destination: IPv4Prefix("10.244.1.20/32")!, interface: ServiceSyncTests.vpC),
            ])
            let neighbours = NeighbourTable([
                (ServiceSyncTests.eth0, IPv4Address(172, 18, 0, 12), ServiceSyncTests.node2MAC),
                (ServiceSyncTests.vpC, ServiceSyncTests.client, ServiceSyncTests.clientMAC),
            ])
            state = ForwardingState(services: sync.table, routes: routes, neighbours: neighbours,
                                    interfaces: interfaces, cluster: sync.cluster, node: node, generation: 1)
            pipeline = Pipeline(conntrack: ConntrackTable(capacity: 1024), affinity: AffinityTable(capacity: 64),
                                snat: SNATPortAllocator(range: 20000...20999))
        }

        deinit { try? FileManager.default.removeItem(atPath: dir) }

        func write(_ text: String) throws { try text.write(toFile: path, atomically: true, encoding: .utf8) }

        /// Sends one packet from the client pod and returns the backend it was DNATed to.
        func send(_ transport: TransportFields) -> (Verdict, IPv4Address?, UInt16?) {
            var frame = PacketBuilder.frame(
                EthernetFields(destination: ServiceSyncTests.vpCMAC, source: ServiceSyncTests.clientMAC),
                IPv4Fields(sourceAddress: ServiceSyncTests.client, destinationAddress: ServiceSyncTests.vip, protocol: transport.protocol),
                transport)
            var tracer = NoTrace()
            let count = frame.count
            let v = frame.withUnsafeMutableBytes { buf in
                pipeline.process(buf, length: count, info: FrameInfo(ingress: ServiceSyncTests.vpC), now: now,
                                 state: state, tracer: &tracer)
            }
            guard case .forward = v else { return (v, nil, nil) }
            return frame.withUnsafeMutableBytes { buf in
                let ip = IPv4View(unchecked: UnsafeMutableRawBufferPointer(rebasing: buf[EthernetView.headerLength...]))
                let ports = UDPView(unchecked: ip.payload)  // ports sit at the same offsets in TCP
                return (v, ip.destinationAddress, ports.destinationPort)
            }
        }

        func reload() -> ServiceSync.Outcome {
            let outcome = sync.reload()
            if case .applied(let a) = outcome {
                state = state.with(services: a.table, cluster: a.cluster, generation: state.generation + 1)
                pipeline.conntrack.removeUDPEntries(a.removedUDPBackends)
            }
            return outcome
        }
    }

    static let backends = ["10.244.2.10", "10.244.2.11", "10.244.2.12", "10.244.2.13"]

    @Test("An established TCP flow keeps its backend across a reload that adds and removes other endpoints")
    func establishedFlowKeepsBackend() throws {
        let h = try Harness(endpoints: Self.backends)
        let syn = TransportFields.tcp(TCPFields(sourcePort: 40000, destinationPort: 80, flags: .syn))
        let (v1, chosen, port) = h.send(syn)
        #expect(v1 == .forward(egress: Self.eth0))
        let backend = try #require(chosen)
        #expect(port == 8080)

        // Drop two other endpoints, add two new ones.
        var next = Self.backends.filter { $0 != backend.description }
        next.removeFirst(2)
        next += ["10.244.2.20", "10.244.2.21"]
        next.append(backend.description)
        try h.write(Self.yaml(endpoints: next))
        guard case .applied(let a) = h.reload() else { Issue.record("reload refused"); return }
        #expect(!a.diff.isEmpty)

        h.now = h.now + Seconds(5)
        let ack = TransportFields.tcp(TCPFields(sourcePort: 40000, destinationPort: 80, sequenceNumber: 1, flags: .ack))
        let (v2, again, _) = h.send(ack)
        #expect(v2 == .forward(egress: Self.eth0))
        #expect(again == backend)
        // New flows only go to endpoints of the new table.
        for sport in UInt16(41000)..<41050 {
            let (_, b, _) = h.send(.tcp(TCPFields(sourcePort: sport, destinationPort: 80, flags: .syn)))
            #expect(next.contains(b?.description ?? "none"))
        }
    }

    @Test("A broken file is refused with file, line and field, and changes nothing")
    func brokenFileChangesNothing() throws {
        let h = try Harness(endpoints: Self.backends)
        let before = h.sync.table
        let (_, backend, _) = h.send(.tcp(TCPFields(sourcePort: 40001, destinationPort: 80, flags: .syn)))
        try h.write(Self.yaml(endpoints: ["10.244.2.99"], nodePort: 40000))
        guard case .refused(let error) = h.reload() else { Issue.record("a NodePort out of range was accepted"); return }
        let d = try #require(error.diagnostics.first)
        #expect(d.file == "cluster.yaml")
        #expect(d.line != nil)
        #expect(d.field?.contains("nodePort") == true)
        #expect(h.sync.table === before)
        #expect(h.state.services === before)
        let (v, again, _) = h.send(.tcp(TCPFields(sourcePort: 40001, destinationPort: 80, sequenceNumber: 1, flags: .ack)))
        #expect(v == .forward(egress: Self.eth0))
        #expect(again == backend)
        // Syntax errors too.
        try h.write("apiVersion: v1\nkind: List\nitems: [\n")
        guard case .refused = h.reload() else { Issue.record("broken YAML was accepted"); return }
        #expect(h.sync.table === before)
    }

    @Test("UDP conntrack entries to a removed endpoint are gone after the reload; TCP entries stay")
    func udpEntriesToRemovedEndpointAreCleared() throws {
        let h = try Harness(endpoints: Self.backends)
        let (_, udpBackend, udpPort) = h.send(.udp(UDPFields(sourcePort: 5000, destinationPort: 53, payload: Array("q".utf8))))
        let gone = try #require(udpBackend)
        #expect(udpPort == 5353)
        // A TCP flow to the same endpoint, found by trying source ports.
        var tcpPort: UInt16 = 0
        for sport in UInt16(42000)..<43000 {
            let (_, b, _) = h.send(.tcp(TCPFields(sourcePort: sport, destinationPort: 80, flags: .syn)))
            if b == gone { tcpPort = sport; break }
        }
        #expect(tcpPort != 0)
        let udpKey = FlowKey(protocol: .udp, source: Self.client, sourcePort: 5000, destination: Self.vip, destinationPort: 53)
        let tcpKey = FlowKey(protocol: .tcp, source: Self.client, sourcePort: tcpPort, destination: Self.vip, destinationPort: 80)
        #expect(h.pipeline.conntrack.lookup(udpKey, now: h.now) != nil)

        try h.write(Self.yaml(endpoints: Self.backends.filter { $0 != gone.description }))
        guard case .applied(let a) = h.reload() else { Issue.record("reload refused"); return }
        #expect(a.removedUDPBackends.contains(RemovedUDPBackend(frontendAddress: Self.vip, frontendPort: 53, endpoint: gone)))
        #expect(h.pipeline.conntrack.lookup(udpKey, now: h.now) == nil)
        #expect(h.pipeline.conntrack.lookup(tcpKey, now: h.now) != nil)
        // The next datagram of that client picks a live backend.
        let (_, fresh, _) = h.send(.udp(UDPFields(sourcePort: 5000, destinationPort: 53, payload: Array("q".utf8))))
        #expect(fresh != nil && fresh != gone)
    }
}

@Suite struct PacketTraceTests {
    @Test("ferry trace explains a NodePort packet from outside the cluster step by step")
    func traceExplainsNodePort() throws {
        let h = try ServiceSyncTests.Harness(endpoints: ["10.244.2.10"])
        var r = TraceRequest(configPath: h.path, nodeName: "node-1", protocol: .tcp,
                             source: IPv4Address(203, 0, 113, 10), sourcePort: 40000,
                             destination: IPv4Address(172, 18, 0, 11), destinationPort: 30080)
        r.ingress = "eth0"
        let lines = try PacketTrace.trace(r, state: h.state)
        #expect(lines.first?.hasPrefix("eth0: received") == true)
        #expect(lines.contains { $0.contains("matches NodePort frontend 172.18.0.11:30080 of Service default/web") })
        #expect(lines.contains { $0.contains("backend 10.244.2.10:8080 on node-2 chosen by Maglev") })
        #expect(lines.contains { $0.contains("source masqueraded to 172.18.0.11:") && $0.contains("externalTrafficPolicy is Cluster") })
        #expect(lines.last == "verdict: forward on if2")
        // The agent's own tables are untouched: a trace uses a conntrack of its own.
        #expect(h.pipeline.conntrack.count == 0)
    }

    @Test("ferry trace without a way back to the source asks where the packet arrives")
    func traceNeedsIngress() throws {
        let h = try ServiceSyncTests.Harness(endpoints: ["10.244.2.10"])
        let r = TraceRequest(configPath: h.path, nodeName: "node-1", protocol: .udp,
                             source: IPv4Address(198, 51, 100, 7), sourcePort: 1, destination: ServiceSyncTests.vip,
                             destinationPort: 53)
        #expect(throws: AgentError.self) { try PacketTrace.trace(r, state: h.state) }
    }
}
