import Benchmark
import FerryCore
import FerryPacket

// Microbenchmarks of the forwarding core (docs/benchmarks.md, "Microbenchmarks").
//
// Packet benchmarks run 1,000 packets per measured iteration (`scalingFactor: .kilo`), so
// the reported wall clock is per packet, in nanoseconds, and `mallocCountTotal` is mallocs
// per packet. Everything a benchmark needs (tables, frame buffers, the conntrack) is built
// in its `setup` hook or before `startMeasurement()`, so the measured region holds only
// per-packet work: the pipeline's "allocates nothing per packet" rule (STYLE.md 9) shows
// as a malloc count of 0.
//
// Every packet benchmark processes one frame buffer over and over. The pipeline rewrites
// MACs, TTL, addresses, ports and checksums in place, so each packet first copies the
// pristine frame back (a memcpy of 60 octets). That copy is part of what is measured;
// "Baseline: frame reset" measures it alone, so subtract it to get the pipeline's share.
// New-flow benchmarks also give the frame a new source address:port (two RFC 1624
// checksum updates), measured alone by "Baseline: frame reset + new source".

/// Packet benchmarks: ns per packet, mallocs per packet. A baseline comparison fails on
/// any malloc (absolute 0) and on a p50 wall-clock regression beyond 10 %.
func packetConfiguration(maxDuration: Duration = .seconds(2)) -> Benchmark.Configuration {
    Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .nanoseconds,
        warmupIterations: 5,
        scalingFactor: .kilo,
        maxDuration: maxDuration,
        maxIterations: 10_000,
        thresholds: [
            .wallClock: BenchmarkThresholds(relative: [.p50: 10.0, .p75: 15.0]),
            .mallocCountTotal: BenchmarkThresholds(absolute: [.p0: 0, .p50: 0, .p100: 0]),
        ])
}

/// Table builds: milliseconds per build, mallocs per build.
func buildConfiguration(maxIterations: Int) -> Benchmark.Configuration {
    Benchmark.Configuration(
        metrics: [.wallClock, .mallocCountTotal, .peakMemoryResident],
        timeUnits: .milliseconds,
        warmupIterations: 1,
        scalingFactor: .one,
        maxDuration: .seconds(10),
        maxIterations: maxIterations,
        thresholds: [.wallClock: BenchmarkThresholds(relative: [.p50: 15.0])])
}

/// The benchmarks' clock: one instant for the whole run. Entries live for seconds, a run
/// takes a couple, and nothing in a benchmark should expire halfway.
let now = Timestamp.seconds(1_000)

/// Holds a benchmark's state between its setup hook, its iterations and its teardown.
final class Box<State> {
    var state: State?
    var value: State {
        guard let state else { fatalError("benchmark state used before setup") }
        return state
    }
}

// MARK: - Established flows (benchmarks 1, 3, 5)

/// One TCP connection from pod a to the `web` ClusterIP, through the handshake, so that
/// both directions hit an ESTABLISHED conntrack entry.
final class EstablishedFlow {
    var pipeline: Pipeline
    let state: ForwardingState
    /// pod a 10.244.1.10:40000 → 10.96.0.10:80, ACK, arriving on vp-a.
    let original: FrameBuffer
    /// backend:8080 → pod a 10.244.1.10:40000, ACK, arriving on eth0.
    let reply: FrameBuffer
    let originalInfo = FrameInfo(ingress: Node1.vpA)
    let replyInfo = FrameInfo(ingress: Node1.eth0)

    init() throws {
        var pipeline = Fixture.pipeline(conntrackCapacity: 65_536)
        let state = Fixture.state()
        let originalInfo = self.originalInfo, replyInfo = self.replyInfo
        var tracer = NoTrace()
        func send(_ frame: [UInt8], _ info: FrameInfo) -> (Verdict, FrameBuffer) {
            let buffer = FrameBuffer(frame)
            let v = pipeline.process(buffer.bytes, length: buffer.length, info: info, now: now, state: state,
                                     tracer: &tracer)
            return (v, buffer)
        }
        let (synVerdict, syn) = send(Fixture.tcpFrame(from: Node1.podAMAC, to: Node1.vpAMAC, Node1.podA, 40000,
                                                      Svc.web, Svc.webPort, flags: .syn), originalInfo)
        try expectForward(synVerdict, on: Node1.eth0, "SYN to the ClusterIP")
        let backend = syn.ip.destinationAddress
        guard Svc.endpoints(base: 10).contains(backend), TCPView(unchecked: syn.ip.payload).destinationPort == Svc.targetPort
        else { throw FixtureError.unexpected("SYN was not DNATed to a web endpoint: \(backend)") }
        let backendMAC = backend.value & 0xFF00 == 0x0200 ? Node1.node2MAC : Node1.node3MAC

        let replyFrame = { (flags: TCPFlags) in
            Fixture.tcpFrame(from: backendMAC, to: Node1.eth0MAC, backend, Svc.targetPort, Node1.podA, 40000, flags: flags)
        }
        let (synAckVerdict, _) = send(replyFrame([.syn, .ack]), replyInfo)
        try expectForward(synAckVerdict, on: Node1.vpA, "SYN-ACK from the backend")
        let ackFrame = Fixture.tcpFrame(from: Node1.podAMAC, to: Node1.vpAMAC, Node1.podA, 40000, Svc.web, Svc.webPort,
                                        flags: .ack)
        let (ackVerdict, _) = send(ackFrame, originalInfo)
        try expectForward(ackVerdict, on: Node1.eth0, "ACK completing the handshake")
        guard let hit = pipeline.conntrack.lookup(FlowKey(protocol: .tcp, source: Node1.podA, sourcePort: 40000,
                                                          destination: Svc.web, destinationPort: Svc.webPort), now: now),
              pipeline.conntrack[entry: hit.entry].state == .established
        else { throw FixtureError.unexpected("the handshake did not leave an ESTABLISHED entry") }

        // The reply leaves with the ClusterIP as its source (reverse NAT).
        let (v, out) = send(replyFrame(.ack), replyInfo)
        try expectForward(v, on: Node1.vpA, "reply")
        guard out.ip.sourceAddress == Svc.web else { throw FixtureError.unexpected("reply was not reverse-NATed") }

        self.pipeline = pipeline
        self.state = state
        original = FrameBuffer(ackFrame)
        reply = FrameBuffer(replyFrame(.ack))
    }

    /// Every measured packet must have been forwarded: a benchmark that drops would
    /// measure the drop path.
    func checkAllForwarded() throws {
        let c = pipeline.counters
        guard c.forwarded == c.received, c.newFlows == 1 else {
            throw FixtureError.unexpected("received \(c.received), forwarded \(c.forwarded), new flows \(c.newFlows)")
        }
    }
}

func establishedBenchmarks() {
    let flow = Box<EstablishedFlow>()
    let setup: Benchmark.BenchmarkSetupHook = { flow.state = try EstablishedFlow() }
    let teardown: Benchmark.BenchmarkTeardownHook = {
        try flow.state?.checkAllForwarded()
        flow.state = nil
    }

    // 1. Conntrack hit → rewrite to the backend → route → MACs.
    Benchmark("Pipeline: DNAT, established flow (ClusterIP, original direction)",
              configuration: packetConfiguration(), closure: { benchmark in
        let f = flow.value
        var tracer = NoTrace()
        for _ in benchmark.scaledIterations {
            f.original.reset()
            blackHole(f.pipeline.process(f.original.bytes, length: f.original.length, info: f.originalInfo, now: now,
                                         state: f.state, tracer: &tracer))
        }
    }, setup: setup, teardown: teardown)

    // 3. The reply direction: conntrack hit on the reply tuple → source back to the ClusterIP.
    Benchmark("Pipeline: reply, reverse NAT (ClusterIP)", configuration: packetConfiguration(), closure: { benchmark in
        let f = flow.value
        var tracer = NoTrace()
        for _ in benchmark.scaledIterations {
            f.reply.reset()
            blackHole(f.pipeline.process(f.reply.bytes, length: f.reply.length, info: f.replyInfo, now: now,
                                         state: f.state, tracer: &tracer))
        }
    }, setup: setup, teardown: teardown)

    // 5. The same established packet with each tracer. NoTrace is what the packet loop
    // uses: the events are autoclosures it never calls. TraceLog is `ferry trace`.
    Benchmark("Tracing: established DNAT, NoTrace", configuration: packetConfiguration(), closure: { benchmark in
        let f = flow.value
        var tracer = NoTrace()
        for _ in benchmark.scaledIterations {
            f.original.reset()
            blackHole(f.pipeline.process(f.original.bytes, length: f.original.length, info: f.originalInfo, now: now,
                                         state: f.state, tracer: &tracer))
        }
    }, setup: setup, teardown: teardown)

    Benchmark("Tracing: established DNAT, TraceLog reused (capacity kept)", configuration: packetConfiguration(),
              closure: { benchmark in
        let f = flow.value
        var tracer = TraceLog()
        tracer.events.reserveCapacity(32)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            f.original.reset()
            tracer.events.removeAll(keepingCapacity: true)
            blackHole(f.pipeline.process(f.original.bytes, length: f.original.length, info: f.originalInfo, now: now,
                                         state: f.state, tracer: &tracer))
        }
        blackHole(tracer.events.count)
    }, setup: setup, teardown: teardown)

    Benchmark("Tracing: established DNAT, new TraceLog per packet", configuration: packetConfiguration(),
              closure: { benchmark in
        let f = flow.value
        for _ in benchmark.scaledIterations {
            f.original.reset()
            var tracer = TraceLog()
            blackHole(f.pipeline.process(f.original.bytes, length: f.original.length, info: f.originalInfo, now: now,
                                         state: f.state, tracer: &tracer))
            blackHole(tracer.events.count)
        }
    }, setup: setup, teardown: teardown)
}

// MARK: - New flows (benchmarks 2 and 4)

/// "forwarded 10 of 12; snat-ports-exhausted: 2", for a failed check.
func dropSummary(_ c: PipelineCounters) -> String {
    var s = "forwarded \(c.forwarded) of \(c.received)"
    for (raw, n) in c.byReason.enumerated() where n > 0 {
        s += "; \(DropReason(rawValue: UInt8(raw)).map(\.name) ?? "reason \(raw)"): \(n)"
    }
    return s
}

/// A stream of first packets, each from a source address:port never seen before.
final class NewFlows {
    let state = Fixture.state()
    let conntrackCapacity: Int
    /// Start a fresh conntrack (outside the measurement) before it holds more than this.
    let resetAbove: Int
    var pipeline: Pipeline
    let frame: FrameBuffer
    let info: FrameInfo
    let sourceBase: IPv4Address
    let egress: InterfaceIndex
    /// Flows sent so far, over the whole run: the next flow's source.
    var sent = 0
    var measuredFlows: UInt64 = 0

    init(frame: [UInt8], info: FrameInfo, sourceBase: IPv4Address, egress: InterfaceIndex,
         conntrackCapacity: Int, resetAbove: Int, expect: (IPv4View) -> Bool) throws {
        self.conntrackCapacity = conntrackCapacity
        self.resetAbove = resetAbove
        self.pipeline = Fixture.pipeline(conntrackCapacity: conntrackCapacity)
        self.frame = FrameBuffer(frame)
        self.info = info
        self.sourceBase = sourceBase
        self.egress = egress
        // One packet through a throwaway pipeline: it must take the path to be measured.
        var probe = Fixture.pipeline(conntrackCapacity: 1024)
        var tracer = NoTrace()
        let v = probe.process(self.frame.bytes, length: self.frame.length, info: info, now: now, state: state, tracer: &tracer)
        try expectForward(v, on: egress, "first packet")
        guard probe.counters.newFlows == 1, expect(self.frame.ip) else {
            throw FixtureError.unexpected("first packet was not translated as expected")
        }
    }

    /// Called before `startMeasurement()`: the measured packets must all find room.
    func prepare(packets: Int) {
        if pipeline.conntrack.count + packets > resetAbove {
            measuredFlows &+= pipeline.counters.newFlows
            pipeline = Fixture.pipeline(conntrackCapacity: conntrackCapacity)
        }
    }

    @inline(__always) func sendNext<T: PacketTracer>(tracer: inout T) -> Verdict {
        frame.reset()
        let (address, port) = flowSource(sent, base: sourceBase)
        sent &+= 1
        frame.setSource(address, port: port)
        return pipeline.process(frame.bytes, length: frame.length, info: info, now: now, state: state, tracer: &tracer)
    }

    func checkAllNew() throws {
        let total = measuredFlows &+ pipeline.counters.newFlows
        guard total == UInt64(sent), pipeline.counters.forwarded == pipeline.counters.received else {
            throw FixtureError.unexpected("sent \(sent) first packets, \(total) created a flow; \(dropSummary(pipeline.counters))")
        }
    }
}

func newFlowBenchmarks() {
    // 2. SYN from a pod to the ClusterIP: conntrack miss, frontend lookup, Maglev,
    // conntrack insert, DNAT, route. Sources 10.244.128.0+ (in the cluster CIDR: no
    // masquerade). A 1M-entry conntrack, replaced before it would fill.
    let clusterIP = Box<NewFlows>()
    Benchmark("Pipeline: new flow (SYN to ClusterIP)", configuration: packetConfiguration(), closure: { benchmark in
        let f = clusterIP.value
        f.prepare(packets: benchmark.scaledIterations.count)
        var tracer = NoTrace()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(f.sendNext(tracer: &tracer))
        }
    }, setup: {
        clusterIP.state = try NewFlows(
            frame: Fixture.tcpFrame(from: Node1.podAMAC, to: Node1.vpAMAC, Node1.podA, 40000, Svc.web, Svc.webPort, flags: .syn),
            info: FrameInfo(ingress: Node1.vpA), sourceBase: IPv4Address(10, 244, 128, 0), egress: Node1.eth0,
            conntrackCapacity: 1 << 20, resetAbove: 1 << 20,
            expect: { ip in ip.sourceAddress == Node1.podA && Svc.endpoints(base: 10).contains(ip.destinationAddress) })
    }, teardown: {
        try clusterIP.state?.checkAllNew()
        clusterIP.state = nil
    })

    // 4. SYN from an external client to a NodePort with externalTrafficPolicy Cluster:
    // frontend miss then NodePort lookup, Maglev, SNAT port allocation (masquerade to
    // the node's address), conntrack insert, DNAT + SNAT. Sources 198.18.0.0+ (RFC 2544's
    // benchmarking range).
    //
    // `SNATPortAllocator` starts every search for one backend at the same port (its
    // offset hashes the reply tuple without the port) and gives up after 128 probes, so
    // the k-th live masqueraded flow to a backend costs k probes, and the 129th is
    // dropped (snat-ports-exhausted) however large the port range. The Service has 40
    // endpoints and the conntrack is replaced (outside the measurement) every 1,000 or
    // 3,000 flows, so no backend gets near 128 live flows (about 25 or 75 at most), and
    // the cost is shown at those two occupancies.
    for (label, resetAbove) in [("fresh conntrack every 1k flows", 1_000), ("fresh conntrack every 3k flows", 3_000)] {
        let nodePort = Box<NewFlows>()
        Benchmark("Pipeline: new flow, masquerade (NodePort, Cluster policy), \(label)",
                  configuration: packetConfiguration(), closure: { benchmark in
            let f = nodePort.value
            f.prepare(packets: benchmark.scaledIterations.count)
            var tracer = NoTrace()
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(f.sendNext(tracer: &tracer))
            }
        }, setup: {
            nodePort.state = try NewFlows(
                frame: Fixture.tcpFrame(from: Node1.routerMAC, to: Node1.eth0MAC, IPv4Address(198, 18, 0, 1), 40000,
                                        Node1.address, Svc.edgeNodePort, flags: .syn),
                info: FrameInfo(ingress: Node1.eth0), sourceBase: IPv4Address(198, 18, 0, 0), egress: Node1.eth0,
                conntrackCapacity: 4096, resetAbove: resetAbove,
                expect: { ip in
                    ip.sourceAddress == Node1.address && Svc.endpoints(base: 40, count: 40).contains(ip.destinationAddress)
                        && Node1.snatRange.contains(TCPView(unchecked: ip.payload).sourcePort)
                })
        }, teardown: {
            try nodePort.state?.checkAllNew()
            nodePort.state = nil
        })
    }

    // What the packet benchmarks spend outside the pipeline.
    let frame = Box<FrameBuffer>()
    let syn = { FrameBuffer(Fixture.tcpFrame(from: Node1.podAMAC, to: Node1.vpAMAC, Node1.podA, 40000, Svc.web,
                                             Svc.webPort, flags: .syn)) }
    Benchmark("Baseline: frame reset (memcpy 60 B)", configuration: packetConfiguration(maxDuration: .seconds(1)),
              closure: { benchmark in
        let f = frame.value
        for _ in benchmark.scaledIterations {
            f.reset()
            blackHole(f.bytes[23])
        }
    }, setup: { frame.state = syn() }, teardown: { frame.state = nil })

    let counter = Box<Int>()
    Benchmark("Baseline: frame reset + new source address:port", configuration: packetConfiguration(maxDuration: .seconds(1)),
              closure: { benchmark in
        let f = frame.value
        var n = counter.state ?? 0
        for _ in benchmark.scaledIterations {
            f.reset()
            let (address, port) = flowSource(n, base: IPv4Address(10, 244, 128, 0))
            n &+= 1
            f.setSource(address, port: port)
            blackHole(f.bytes[23])
        }
        counter.state = n
    }, setup: { frame.state = syn() }, teardown: { frame.state = nil })
}

// MARK: - Tables (benchmark 6)

/// A conntrack holding one million live TCP flows to the `web` ClusterIP.
final class LoadedConntrack {
    static let flows = 1_000_000
    let table = ConntrackTable(capacity: 1 << 20, hashSeed: 0x5EED)
    var next = 0

    static func original(_ n: Int) -> FlowKey {
        let (source, port) = flowSource(n, base: IPv4Address(10, 244, 128, 0))
        return FlowKey(protocol: .tcp, source: source, sourcePort: port, destination: Svc.web, destinationPort: Svc.webPort)
    }

    init() throws {
        let backends = Svc.endpoints(base: 10)
        let initial = ConnState.initial(for: .tcp, tcpFlags: .syn)!
        for n in 0..<Self.flows {
            let o = Self.original(n)
            let reply = FlowKey(protocol: .tcp, source: backends[n % backends.count], sourcePort: Svc.targetPort,
                                destination: o.source, destinationPort: o.sourcePort)
            guard case .inserted = table.insert(original: o, reply: reply, now: now, initialState: initial) else {
                throw FixtureError.unexpected("insert \(n) failed")
            }
        }
        guard table.count == Self.flows else { throw FixtureError.unexpected("\(table.count) entries") }
    }

    /// The n-th lookup's flow: a fixed permutation of the million (611,953 is coprime
    /// with 10^6), so consecutive lookups land far apart in the index, as real traffic
    /// from many flows does, rather than in one cache line.
    @inline(__always) func nextKey() -> FlowKey {
        let n = (next &* 611_953) % Self.flows
        next &+= 1
        return Self.original(n)
    }
}

/// Services × 10 endpoints each, all on other nodes (one Maglev table per Service port:
/// the Local set is empty), each with its own endpoint list so no two share a table.
final class ServiceSet {
    let services: [ServiceSpec]
    let slices: [EndpointSliceSpec]
    /// `slices` with one endpoint of one Service replaced.
    let changedSlices: [EndpointSliceSpec]
    var previous: ServiceTable?
    /// The last measured build, kept so that freeing it is not measured.
    var last: ServiceTable?

    init(count: Int, withPrevious: Bool) throws {
        var services: [ServiceSpec] = []
        var slices: [EndpointSliceSpec] = []
        services.reserveCapacity(count)
        slices.reserveCapacity(count)
        let base = IPv4Address(10, 128, 0, 0).value
        for i in 0..<count {
            let clusterIP = IPv4Address(IPv4Address(10, 96, 0, 0).value + UInt32(i))
            let endpoints = (0..<10).map { k in IPv4Address(base + UInt32(i * 16 + k)) }
            let name = ServiceName(namespace: "bench", name: "svc-\(i)")
            services.append(ServiceSpec(name: name, clusterIP: clusterIP,
                                        ports: [ServicePortSpec(name: "http", port: 80, targetPort: .number(8080))]))
            slices.append(EndpointSliceSpec(
                name: "svc-\(i)-abcde", service: name, ports: [EndpointPortSpec(name: "http", port: 8080)],
                endpoints: endpoints.enumerated().map { k, a in EndpointSpec(address: a, nodeName: "node-\(2 + k % 2)") }))
        }
        var changed = slices
        changed[count / 2].endpoints[0].address = IPv4Address(base + UInt32(count * 16))
        self.services = services
        self.slices = slices
        self.changedSlices = changed
        if withPrevious {
            let table = build()
            guard table.statistics.maglevTablesBuilt == count else {
                throw FixtureError.unexpected("\(table.statistics.maglevTablesBuilt) Maglev tables for \(count) Services")
            }
            previous = table
            let again = rebuild()
            guard again.statistics.maglevTablesBuilt == 1, again.statistics.maglevTablesReused == count - 1 else {
                throw FixtureError.unexpected("rebuild built \(again.statistics.maglevTablesBuilt), reused \(again.statistics.maglevTablesReused)")
            }
        }
    }

    func build() -> ServiceTable {
        ServiceTable(services: services, slices: slices, node: Fixture.node, cluster: Fixture.cluster)
    }

    func rebuild() -> ServiceTable {
        ServiceTable(services: services, slices: changedSlices, node: Fixture.node, cluster: Fixture.cluster,
                     reusing: previous)
    }
}

func tableBenchmarks() {
    let conntrack = Box<LoadedConntrack>()
    Benchmark("Conntrack: lookup hit at 1M live entries", configuration: packetConfiguration(), closure: { benchmark in
        let c = conntrack.value
        for _ in benchmark.scaledIterations {
            let hit = c.table.lookup(c.nextKey(), now: now)
            precondition(hit != nil, "a live flow was not found")
            blackHole(hit)
        }
    }, setup: { conntrack.state = try LoadedConntrack() }, teardown: { conntrack.state = nil })

    for (count, iterations) in [(1_000, 30), (10_000, 5)] {
        let label = count == 1_000 ? "1k" : "10k"
        let set = Box<ServiceSet>()
        Benchmark("ServiceTable: build, \(label) Services × 10 endpoints (Maglev 16381)",
                  configuration: buildConfiguration(maxIterations: iterations), closure: { benchmark in
            let s = set.value
            let table = s.build()
            // Freed outside the measurement, when the next build replaces it.
            benchmark.stopMeasurement()
            s.last = table
        }, setup: { set.state = try ServiceSet(count: count, withPrevious: false) }, teardown: { set.state = nil })

        let changed = Box<ServiceSet>()
        Benchmark("ServiceTable: rebuild after one-endpoint change, \(label) Services (reusing previous)",
                  configuration: buildConfiguration(maxIterations: iterations * 4), closure: { benchmark in
            let s = changed.value
            let table = s.rebuild()
            benchmark.stopMeasurement()
            s.last = table
        }, setup: { changed.state = try ServiceSet(count: count, withPrevious: true) }, teardown: { changed.state = nil })
    }
}

let benchmarks: @Sendable () -> Void = {
    establishedBenchmarks()
    newFlowBenchmarks()
    tableBenchmarks()
}
