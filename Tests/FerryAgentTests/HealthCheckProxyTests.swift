import FerryCore
import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import FerryAgent

/// /healthz and /livez over real HTTP on 127.0.0.1, with a stepped clock.
@Suite struct HealthCheckProxyTests {
    static let group = MultiThreadedEventLoopGroup.singleton
    /// Quiet: the bind-failure tests log errors on purpose.
    static let logger: Logger = {
        var logger = Logger(label: "test.proxy-health")
        logger.logLevel = .critical
        return logger
    }()

    /// A running proxy health server on a free loopback port, and its clock.
    func startServer(timeout: Seconds = Seconds(10)) async throws -> (ProxyHealthServer, SteppedClock, Int) {
        let clock = SteppedClock()
        let server = ProxyHealthServer(host: "127.0.0.1", port: 0, healthTimeout: timeout, clock: clock,
                                       logger: Self.logger)
        let address = try await server.start(group: Self.group)
        return (server, clock, try #require(address.port))
    }

    @Test func freshProxyIsHealthyAndReportsTheCurrentTimeAsLastUpdated() async throws {
        let (server, _, port) = try await startServer()
        defer { Task { await server.stop() } }

        let reply = try probe(port: port, path: "/healthz")
        #expect(reply.status == 200)
        #expect(reply.header("Content-Type") == "application/json")
        #expect(reply.header("X-Content-Type-Options") == "nosniff")
        // No update yet: no per-family status, and lastUpdated is "now".
        #expect(reply.body == #"{"lastUpdated":"2024-05-01T12:00:00.5Z","currentTime":"2024-05-01T12:00:00.5Z","nodeEligible":true,"healthy":true}"#)
    }

    @Test func queuedUpdateNotAppliedWithinTheTimeoutTurnsHealthz503UntilUpdated() async throws {
        let (server, clock, port) = try await startServer(timeout: Seconds(10))
        defer { Task { await server.stop() } }

        server.updated()                      // 12:00:00.5
        clock.advance(Seconds(1))
        server.queuedUpdate()                 // 12:00:01.5, the oldest pending change
        clock.advance(Seconds(5))
        server.queuedUpdate()                 // a later change does not restart the timeout
        clock.advance(nanoseconds: Seconds(5).nanoseconds - 1)   // 9.999999999 s after the first queue

        let late = try probe(port: port, path: "/healthz")
        #expect(late.status == 200)
        #expect(server.isHealthy)
        #expect(late.body == #"{"lastUpdated":"2024-05-01T12:00:11.499999999Z","currentTime":"2024-05-01T12:00:11.499999999Z","nodeEligible":true,"healthy":true,"status":{"IPv4":{"lastUpdated":"2024-05-01T12:00:00.5Z","healthy":true}}}"#)

        clock.advance(nanoseconds: 1)         // exactly healthTimeout: unhealthy (kube-proxy: elapsed < timeout is healthy)
        let stale = try probe(port: port, path: "/healthz")
        #expect(stale.status == 503)
        #expect(!server.isHealthy)
        // Unhealthy: lastUpdated is the real last update, not "now".
        #expect(stale.body == #"{"lastUpdated":"2024-05-01T12:00:00.5Z","currentTime":"2024-05-01T12:00:11.5Z","nodeEligible":true,"healthy":false,"status":{"IPv4":{"lastUpdated":"2024-05-01T12:00:00.5Z","healthy":false}}}"#)
        let live = try probe(port: port, path: "/livez")
        #expect(live.status == 503)

        clock.advance(Seconds(2))
        server.updated()                      // 12:00:13.5
        let recovered = try probe(port: port, path: "/healthz")
        #expect(recovered.status == 200)
        #expect(server.isHealthy)
        #expect(recovered.body == #"{"lastUpdated":"2024-05-01T12:00:13.5Z","currentTime":"2024-05-01T12:00:13.5Z","nodeEligible":true,"healthy":true,"status":{"IPv4":{"lastUpdated":"2024-05-01T12:00:13.5Z","healthy":true}}}"#)
    }

    @Test func changesQueuedBeforeTheFirstUpdateDoNotMakeTheProxyUnhealthy() async throws {
        // kube-proxy judges only proxiers that synced once: startup is healthy.
        let clock = SteppedClock()
        let server = ProxyHealthServer(healthTimeout: Seconds(10), clock: clock, logger: Self.logger)
        server.queuedUpdate()
        clock.advance(Seconds(3600))
        #expect(server.isHealthy)
        #expect(server.health().lastUpdated == nil)

        // Once synced, the change queued an hour ago is still pending: unhealthy.
        server.updated()
        server.queuedUpdate()
        clock.advance(Seconds(10))
        #expect(!server.isHealthy)
    }

    @Test func nodeBeingDrainedFailsHealthzButNotLivez() async throws {
        let (server, _, port) = try await startServer()
        defer { Task { await server.stop() } }
        server.updated()
        server.syncNode(beingDeleted: false, taintKeys: ["node.kubernetes.io/unschedulable", "ToBeDeletedByClusterAutoscaler"])
        #expect(!server.nodeEligible)

        let healthz = try probe(port: port, path: "/healthz")
        #expect(healthz.status == 503)
        // Proxy itself healthy; the node is not eligible. Go's encoding prints the
        // real lastUpdated when the answer is 503.
        #expect(healthz.body == #"{"lastUpdated":"2024-05-01T12:00:00.5Z","currentTime":"2024-05-01T12:00:00.5Z","nodeEligible":false,"healthy":true,"status":{"IPv4":{"lastUpdated":"2024-05-01T12:00:00.5Z","healthy":true}}}"#)

        let livez = try probe(port: port, path: "/livez")
        #expect(livez.status == 200)
        #expect(livez.header("Content-Type") == "application/json")
        #expect(livez.body == #"{"lastUpdated":"2024-05-01T12:00:00.5Z","currentTime":"2024-05-01T12:00:00.5Z","healthy":true,"status":{"IPv4":{"lastUpdated":"2024-05-01T12:00:00.5Z","healthy":true}}}"#)

        server.syncNode(beingDeleted: true, taintKeys: [])
        #expect(!server.nodeEligible)
        server.syncNode(beingDeleted: false, taintKeys: ["node.kubernetes.io/unschedulable"])
        #expect(server.nodeEligible)
        #expect(try probe(port: port, path: "/healthz").status == 200)
    }

    @Test func healthzBodyIsValidJSONWithKubeProxysFields() async throws {
        let (server, _, port) = try await startServer()
        defer { Task { await server.stop() } }
        server.updated()
        let reply = try probe(port: port, path: "/healthz?verbose=1")
        #expect(reply.status == 200)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any])
        #expect(Set(object.keys) == ["lastUpdated", "currentTime", "nodeEligible", "healthy", "status"])
        #expect(object["healthy"] as? Bool == true)
        #expect(object["nodeEligible"] as? Bool == true)
        // RFC 3339 as Go writes it; Foundation's ISO 8601 parser reads it back.
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let currentText = try #require(object["currentTime"] as? String)
        let current = try #require(formatter.date(from: currentText))
        #expect(current.timeIntervalSince1970 == 1_714_564_800.5)
    }

    @Test func otherPathsAnswer404LikeGosServeMux() async throws {
        let (server, _, port) = try await startServer()
        defer { Task { await server.stop() } }
        for path in ["/", "/healthz/", "/metrics", "/livezz"] {
            let reply = try probe(port: port, path: path)
            #expect(reply.status == 404, "\(path)")
            #expect(reply.body == "404 page not found\n")
        }
        let head = try probe(port: port, path: "/healthz", method: "HEAD")
        #expect(head.status == 200)
        #expect(head.header("Content-Type") == "application/json")
    }

    @Test func stopClosesThePortAndAServerStartsOnlyOnce() async throws {
        let (server, _, port) = try await startServer()
        await #expect(throws: HealthCheckError.alreadyStarted) { try await server.start(group: Self.group) }
        #expect(server.localAddress?.port == port)
        await server.stop()
        #expect(server.localAddress == nil)
        #expect(throws: ProbeError.connect(errno: ECONNREFUSED)) { try probe(port: port, path: "/healthz") }
    }

    @Test func bindFailureIsAnErrorNotACrash() async throws {
        let holder = try PortHolder()
        defer { holder.release() }
        let server = ProxyHealthServer(host: "127.0.0.1", port: holder.port, logger: Self.logger)
        await #expect {
            try await server.start(group: Self.group)
        } throws: { error in
            guard case .bindFailed(nil, "127.0.0.1", holder.port, _) = error as? HealthCheckError else { return false }
            return true
        }
        #expect(server.localAddress == nil)
    }
}

/// RFC 3339 text as Go's encoding/json writes a time.Time (RFC3339Nano layout).
@Suite struct HealthCheckRFC3339Tests {
    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00Z"),
        (1_714_564_800_500_000_000, "2024-05-01T12:00:00.5Z"),
        (1_709_164_800_000_000_001, "2024-02-29T00:00:00.000000001Z"),   // leap day
        (951_868_799_999_999_999, "2000-02-29T23:59:59.999999999Z"),     // 400-year leap year
        (951_868_800_120_000_000, "2000-03-01T00:00:00.12Z"),
        (4_107_542_400_000_000_000, "2100-03-01T00:00:00Z"),             // 2100 is not a leap year
        (-1, "1969-12-31T23:59:59.999999999Z"),
        (-86_400_000_000_000, "1969-12-31T00:00:00Z"),
        (Int64.max, "2262-04-11T23:47:16.854775807Z"),                  // the last instant an Int64 holds
    ])
    func formatsLikeGo(unixNanoseconds: Int64, expected: String) {
        #expect(RFC3339.format(unixNanoseconds: unixNanoseconds) == expected)
    }

    @Test func systemClockReadsTheWallClock() {
        // Compared with Foundation's own reading of the wall clock, within a minute.
        let reading = SystemHealthCheckClock().now()
        let foundation = Date().timeIntervalSince1970
        #expect(abs(Double(reading.unixNanoseconds) / 1e9 - foundation) < 60)
    }
}
