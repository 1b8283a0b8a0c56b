import FerryCore
import FerryPacket
import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import FerryAgent

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Per-Service health checks over real HTTP on loopback.
@Suite struct HealthCheckServiceTests {
    static let group = MultiThreadedEventLoopGroup.singleton
    /// Quiet: the bind-failure tests log errors on purpose.
    static let logger: Logger = {
        var logger = Logger(label: "test.service-health")
        logger.logLevel = .critical
        return logger
    }()
    static let web = ServiceName(namespace: "shop", name: "web")
    static let api = ServiceName(namespace: "shop", name: "api")
    static let loopback = [IPv4Address(127, 0, 0, 1)]

    /// A healthy proxy (synced once, nothing queued) and its clock.
    func healthyProxy(timeout: Seconds = Seconds(10)) -> (ProxyHealthServer, SteppedClock) {
        let clock = SteppedClock()
        let proxy = ProxyHealthServer(healthTimeout: timeout, clock: clock, logger: Self.logger)
        proxy.updated()
        return (proxy, clock)
    }

    func makeServer(_ proxy: ProxyHealthServer, addresses: [IPv4Address] = loopback) -> ServiceHealthServer {
        ServiceHealthServer(nodeAddresses: addresses, proxyHealth: proxy, group: Self.group, logger: Self.logger)
    }

    func port(of service: ServiceName, on server: ServiceHealthServer) async throws -> Int {
        let addresses = await server.localAddresses(of: service)
        #expect(addresses.count == 1)
        return try #require(addresses.first?.port)
    }

    @Test func localServiceWithNoLocalEndpointsAnswers503WithWeightZero() async throws {
        let (proxy, _) = healthyProxy()
        let server = makeServer(proxy)
        try await server.sync(services: [Self.web: 0], localEndpoints: [:])
        let port = try await port(of: Self.web, on: server)

        let reply = try probe(port: port, path: "/anything/at/all")
        #expect(reply.status == 503)
        #expect(reply.header("Content-Type") == "application/json")
        #expect(reply.header("X-Content-Type-Options") == "nosniff")
        #expect(reply.header("X-Load-Balancing-Endpoint-Weight") == "0")
        // kube-proxy's exact bytes: its tab-indented template, dedented and trimmed.
        #expect(reply.body == "{\n\t\"service\": {\n\t\t\"namespace\": \"shop\",\n\t\t\"name\": \"web\"\n\t},\n\t\"localEndpoints\": 0,\n\t\"serviceProxyHealthy\": true\n}")
        await server.shutdown()
    }

    @Test func localServiceWithThreeLocalEndpointsAnswers200WithWeightThree() async throws {
        let (proxy, _) = healthyProxy()
        let server = makeServer(proxy)
        try await server.sync(services: [Self.web: 0, Self.api: 0], localEndpoints: [Self.web: 3, Self.api: 1])
        let webPort = try await port(of: Self.web, on: server)

        for method in ["GET", "POST"] {
            let reply = try probe(port: webPort, path: "/", method: method)
            #expect(reply.status == 200)
            #expect(reply.header("X-Load-Balancing-Endpoint-Weight") == "3")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any])
            let service = try #require(object["service"] as? [String: Any])
            #expect(service["namespace"] as? String == "shop")
            #expect(service["name"] as? String == "web")
            #expect(object["localEndpoints"] as? Int == 3)
            #expect(object["serviceProxyHealthy"] as? Bool == true)
        }

        let api = try probe(port: try await port(of: Self.api, on: server), path: "/healthz")
        #expect(api.status == 200)
        #expect(api.body.contains("\"name\": \"api\""))
        #expect(api.header("X-Load-Balancing-Endpoint-Weight") == "1")
        await server.shutdown()
    }

    @Test func endpointChangesApplyOnTheSamePortWithoutReopeningIt() async throws {
        let (proxy, _) = healthyProxy()
        let server = makeServer(proxy)
        try await server.sync(services: [Self.web: 0], localEndpoints: [Self.web: 2])
        let port = try await port(of: Self.web, on: server)
        #expect(try probe(port: port).status == 200)

        // The last local endpoint goes away: same listener, now 503 and weight 0.
        try await server.sync(services: [Self.web: 0], localEndpoints: [:])
        #expect(try await self.port(of: Self.web, on: server) == port)
        let drained = try probe(port: port)
        #expect(drained.status == 503)
        #expect(drained.header("X-Load-Balancing-Endpoint-Weight") == "0")
        #expect(drained.body.contains("\"localEndpoints\": 0"))

        try await server.sync(services: [Self.web: 0], localEndpoints: [Self.web: 1])
        #expect(try probe(port: port).status == 200)
        await server.shutdown()
    }

    @Test func unhealthyProxyMakesEveryServiceCheck503() async throws {
        let (proxy, clock) = healthyProxy(timeout: Seconds(10))
        let server = makeServer(proxy)
        try await server.sync(services: [Self.web: 0], localEndpoints: [Self.web: 2])
        let port = try await port(of: Self.web, on: server)

        proxy.queuedUpdate()
        clock.advance(Seconds(10))
        let stale = try probe(port: port)
        #expect(stale.status == 503)
        #expect(stale.header("X-Load-Balancing-Endpoint-Weight") == "2")
        #expect(stale.body == "{\n\t\"service\": {\n\t\t\"namespace\": \"shop\",\n\t\t\"name\": \"web\"\n\t},\n\t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": false\n}")

        proxy.updated()
        #expect(try probe(port: port).status == 200)
        await server.shutdown()
    }

    @Test func syncThatRemovesAServiceClosesItsPortAndItsOpenConnections() async throws {
        let (proxy, _) = healthyProxy()
        let server = makeServer(proxy)
        try await server.sync(services: [Self.web: 0, Self.api: 0], localEndpoints: [Self.web: 1, Self.api: 1])
        let webPort = try await port(of: Self.web, on: server)
        let apiPort = try await port(of: Self.api, on: server)

        // A prober's keep-alive connection, open across the reload.
        let kept = try ProbeConnection(port: webPort)
        try kept.send("GET / HTTP/1.1\r\nHost: node\r\n\r\n")
        #expect(try kept.readReply().status == 200)

        try await server.sync(services: [Self.api: 0], localEndpoints: [Self.api: 1])
        #expect(await server.openPorts == [Self.api: 0])
        #expect(await server.localAddresses(of: Self.web).isEmpty)
        #expect(throws: ProbeError.connect(errno: ECONNREFUSED)) { try probe(port: webPort) }
        #expect(try kept.readsEndOfStream())
        // The service that stayed keeps answering on its port.
        #expect(try probe(port: apiPort).status == 200)

        await server.shutdown()
        #expect(throws: ProbeError.connect(errno: ECONNREFUSED)) { try probe(port: apiPort) }
        #expect(await server.openPorts.isEmpty)
    }

    @Test func changedHealthCheckNodePortMovesTheListener() async throws {
        let (proxy, _) = healthyProxy()
        let server = makeServer(proxy)
        let first = try freeLoopbackPort()
        try await server.sync(services: [Self.web: UInt16(first)], localEndpoints: [Self.web: 1])
        #expect(try probe(port: first).status == 200)

        let second = try freeLoopbackPort()
        try await server.sync(services: [Self.web: UInt16(second)], localEndpoints: [Self.web: 1])
        #expect(await server.openPorts == [Self.web: UInt16(second)])
        #expect(try probe(port: second).status == 200)
        #expect(throws: ProbeError.connect(errno: ECONNREFUSED)) { try probe(port: first) }
        await server.shutdown()
    }

    @Test func portTakenByAnotherSocketIsReportedAndRetriedOnTheNextSync() async throws {
        let (proxy, _) = healthyProxy()
        let server = makeServer(proxy)
        let holder = try PortHolder()

        await #expect {
            try await server.sync(services: [Self.web: UInt16(holder.port), Self.api: 0],
                                  localEndpoints: [Self.web: 1, Self.api: 1])
        } throws: { error in
            guard case .bindFailed(Self.web, "127.0.0.1", holder.port, _) = error as? HealthCheckError else {
                return false
            }
            return true
        }
        // The failure did not stop the other service, and the failed one is not open.
        #expect(await server.openPorts.keys.sorted() == [Self.api])
        #expect(try probe(port: try await port(of: Self.api, on: server)).status == 200)

        // The port is freed; the next reload (same input) opens it.
        holder.release()
        try await server.sync(services: [Self.web: UInt16(holder.port), Self.api: 0],
                              localEndpoints: [Self.web: 1, Self.api: 1])
        #expect(try probe(port: holder.port).status == 200)
        await server.shutdown()
    }

    @Test func healthCheckPortIsOpenedOnEveryNodeAddress() async throws {
        let (proxy, _) = healthyProxy()
        // All of 127/8 is on the loopback interface.
        let server = makeServer(proxy, addresses: [IPv4Address(127, 0, 0, 1), IPv4Address(127, 0, 0, 2)])
        let port = try freeLoopbackPort()
        try await server.sync(services: [Self.web: UInt16(port)], localEndpoints: [Self.web: 1])
        #expect(await server.localAddresses(of: Self.web).count == 2)
        #expect(try probe(port: port, host: "127.0.0.1").status == 200)
        #expect(try probe(port: port, host: "127.0.0.2").status == 200)
        // Only the node's addresses: 127.0.0.3 is on loopback but not given.
        #expect(throws: ProbeError.connect(errno: ECONNREFUSED)) { try probe(port: port, host: "127.0.0.3") }
        await server.shutdown()
    }

    @Test func serviceIsOpenedOnAllOfItsAddressesOrNone() async throws {
        let (proxy, _) = healthyProxy()
        // 192.0.2.1 (TEST-NET-1, RFC 5737) is not an address of this machine.
        let server = makeServer(proxy, addresses: [IPv4Address(127, 0, 0, 1), IPv4Address(192, 0, 2, 1)])
        let port = try freeLoopbackPort()
        await #expect {
            try await server.sync(services: [Self.web: UInt16(port)], localEndpoints: [Self.web: 1])
        } throws: { error in
            guard case .bindFailed(Self.web, "192.0.2.1", port, _) = error as? HealthCheckError else { return false }
            return true
        }
        #expect(await server.openPorts.isEmpty)
        // The listener already opened on 127.0.0.1 was closed again.
        #expect(throws: ProbeError.connect(errno: ECONNREFUSED)) { try probe(port: port) }
    }

    @Test func concurrentSyncsRunOneAtATime() async throws {
        let (proxy, _) = healthyProxy()
        let server = makeServer(proxy)
        let ports = try freeLoopbackPorts(3).map { UInt16($0) }
        async let a: Void = server.sync(services: [Self.web: ports[0]], localEndpoints: [:])
        async let b: Void = server.sync(services: [Self.web: ports[1]], localEndpoints: [:])
        async let c: Void = server.sync(services: [Self.web: ports[2]], localEndpoints: [:])
        _ = try await (a, b, c)
        // They ran one after another in some order: the state is that of the last,
        // and only its port listens (none was left open by an interleaved sync).
        let open = await server.openPorts
        let openPort = try #require(open[Self.web])
        #expect(ports.contains(openPort))
        for other in ports where other != openPort {
            #expect(throws: ProbeError.connect(errno: ECONNREFUSED)) { try probe(port: Int(other)) }
        }
        #expect(try probe(port: Int(openPort)).status == 503)
        await server.shutdown()
    }
}

/// Which Services get a health check, and how many local ready endpoints they have.
@Suite struct HealthCheckInputTests {
    static func service(_ name: String, type: ServiceType = .loadBalancer, policy: TrafficPolicy = .local,
                        healthCheckNodePort: UInt16? = 32000, clusterIP: IPv4Address? = IPv4Address(10, 96, 0, 10)) -> ServiceSpec {
        ServiceSpec(name: ServiceName(namespace: "default", name: name), type: type, clusterIP: clusterIP,
                    ports: [ServicePortSpec(port: 80)], externalTrafficPolicy: policy,
                    healthCheckNodePort: healthCheckNodePort)
    }

    @Test func onlyProxiedLoadBalancerServicesWithLocalPolicyAndAPortGetAHealthCheck() {
        let services = [
            Self.service("lb-local", healthCheckNodePort: 32001),
            Self.service("lb-cluster", policy: .cluster),
            Self.service("nodeport-local", type: .nodePort),
            Self.service("lb-local-no-port", healthCheckNodePort: nil),
            Self.service("lb-local-headless", clusterIP: nil),
        ]
        #expect(ServiceHealthServer.healthCheckNodePorts(services)
                == [ServiceName(namespace: "default", name: "lb-local"): 32001])
    }

    @Test func localReadyEndpointsCountDistinctReadyAddressesOnThisNode() {
        let web = ServiceName(namespace: "shop", name: "web")
        let db = ServiceName(namespace: "shop", name: "db")
        let slices = [
            EndpointSliceSpec(name: "web-a", service: web, ports: [EndpointPortSpec(port: 80), EndpointPortSpec(name: "tls", port: 443)], endpoints: [
                EndpointSpec(address: IPv4Address(10, 244, 1, 5), nodeName: "node-1"),
                EndpointSpec(address: IPv4Address(10, 244, 1, 6), nodeName: "node-1"),
                EndpointSpec(address: IPv4Address(10, 244, 1, 7), nodeName: "node-1", ready: false, serving: true, terminating: true),
                EndpointSpec(address: IPv4Address(10, 244, 2, 5), nodeName: "node-2"),
                EndpointSpec(address: IPv4Address(10, 244, 9, 9), nodeName: nil),
            ]),
            // The same pod listed again by a second slice counts once.
            EndpointSliceSpec(name: "web-b", service: web, ports: [EndpointPortSpec(port: 80)], endpoints: [
                EndpointSpec(address: IPv4Address(10, 244, 1, 5), nodeName: "node-1"),
            ]),
            // Only terminating endpoints locally: no entry, so the check reports 0.
            EndpointSliceSpec(name: "db-a", service: db, ports: [EndpointPortSpec(port: 5432)], endpoints: [
                EndpointSpec(address: IPv4Address(10, 244, 1, 9), nodeName: "node-1", ready: false, terminating: true),
                EndpointSpec(address: IPv4Address(10, 244, 2, 9), nodeName: "node-2"),
            ]),
        ]
        #expect(ServiceHealthServer.localReadyEndpointCounts(slices, nodeName: "node-1") == [web: 2])
        #expect(ServiceHealthServer.localReadyEndpointCounts(slices, nodeName: "node-2") == [web: 1, db: 1])
        #expect(ServiceHealthServer.localReadyEndpointCounts(slices, nodeName: "node-3").isEmpty)
    }
}
