import FerryCore
import FerryLinux
import FerryPacket
import Foundation
import Logging

/// A value guarded by a lock, for the few things threads share.
final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
    var current: Value { withLock { $0 } }
}

/// Per-interface I/O counters the loop keeps beside the ring's own.
struct InterfaceCounters: Sendable {
    var name = ""
    var rxFrames: UInt64 = 0
    var rxBytes: UInt64 = 0
    var truncated: UInt64 = 0
    /// Frames the kernel dropped because this interface's RX ring was full
    /// (PACKET_STATISTICS tp_drops): they never reached the agent.
    var rxRingFull: UInt64 = 0
    var txFrames: UInt64 = 0
    var txRingFull: UInt64 = 0
    var sendErrors: UInt64 = 0
}

/// What the loop reports to `ferry stats`.
struct LoopStatistics: Sendable {
    var pipeline = PipelineCounters()
    var interfaces: [Int32: InterfaceCounters] = [:]
    var conntrackCount = 0
    var conntrackCapacity = 0
    var conntrack = ConntrackCounters()
    var snat = SNATPortAllocator.Counters()
    var affinity: AffinityTable.Counters? = nil
    var neighbourRequests: UInt64 = 0
    var batches: UInt64 = 0
}

/// Requests other threads hand the packet loop; it serves them between batches, so the
/// conntrack table keeps a single owner and needs no lock.
enum LoopCommand: @unchecked Sendable {
    case purgeUDP(Set<RemovedUDPBackend>)
    case listConntrack(limit: Int, reply: @Sendable ([ConntrackEntry], Timestamp) -> Void)
    case statistics(reply: @Sendable (LoopStatistics) -> Void)
    case exportConntrack(reply: @Sendable ([ConntrackRecord]) -> Void)
}

/// The forwarding thread: one poll over every interface's ring, a batch from each, the
/// pipeline on every frame in place, forwarded frames copied once into the egress TX
/// ring, one flush per ring per batch.
final class PacketLoop: @unchecked Sendable {
    /// Frames taken from one ring before what they produced is sent: small enough that a
    /// frame does not wait behind a long batch (its own ring's, or another ring's) to be
    /// sent, large enough that one send() carries many frames under load.
    static let batchSize = 64
    private let options: AgentOptions
    private let published: Locked<ForwardingState>
    private let commands = Locked<[LoopCommand]>([])
    let wake: EventFD
    private let stopRequested = Locked(false)
    private var pipeline: Pipeline
    private var rings: [Int32: PacketRing] = [:]
    private var ringOrder: [PacketRing] = []
    /// The rings by ifindex, dense, for the per-packet egress lookup (no hashing).
    private var ringByIndex: [PacketRing?] = []
    /// Per-packet TX counters by ifindex, dense; folded into `counters` for reports.
    private var txFrames: [UInt64] = []
    private var txRingFull: [UInt64] = []
    /// Ifindexes of exactly the rings holding frames not yet handed to the kernel, in
    /// first-enqueue order; capacity kept for every ring, so appending never allocates.
    private var dirty: [Int32] = []
    private var counters: [Int32: InterfaceCounters] = [:]
    private var ringGeneration: UInt64 = .max
    private let logger: Logger
    private var neighbourRequests: UInt64 = 0
    private var batches: UInt64 = 0

    init(options: AgentOptions, published: Locked<ForwardingState>, pipeline: Pipeline, logger: Logger) throws {
        self.options = options
        self.published = published
        self.pipeline = pipeline
        self.logger = logger
        wake = try EventFD()
    }

    /// Submits a command that the packet thread answers through `reply`, and waits up to
    /// `timeout` seconds for that answer (nil if the loop did not answer in time).
    func request<T>(timeout: Double = 2, _ command: (_ reply: @escaping @Sendable (T) -> Void) -> LoopCommand) -> T? {
        let box = Locked<T?>(nil)
        let answered = DispatchSemaphore(value: 0)
        submit(command { value in
            box.withLock { $0 = value }
            answered.signal()
        })
        guard answered.wait(timeout: .now() + timeout) == .success else { return nil }
        return box.current
    }

    func submit(_ c: LoopCommand) {
        commands.withLock { $0.append(c) }
        wake.signal()
    }

    func stop() {
        stopRequested.withLock { $0 = true }
        wake.signal()
    }

    private func ringConfiguration() -> PacketRingConfiguration {
        var c = PacketRingConfiguration(version: options.ring == .v2 ? .v2 : .v3, virtioNetHeader: options.vnetHeader)
        c.retireTimeoutMilliseconds = options.ringTimeoutMs
        return c
    }

    /// Opens rings for new forwarding interfaces and closes those gone. Slow path: runs
    /// only when the published state's generation changed.
    private func reconcileRings(_ state: ForwardingState) {
        let wanted = Set(state.interfaces.all.filter(\.isForwarding).map(\.index.rawValue))
        for index in rings.keys where !wanted.contains(index) {
            logger.info("interface \(index) gone or no longer forwarded: ring closed")
            rings[index] = nil
        }
        for index in wanted where rings[index] == nil {
            do {
                rings[index] = try PacketRing(interfaceIndex: index, configuration: ringConfiguration())
                let name = state.interfaces[InterfaceIndex(index)]?.name ?? "if\(index)"
                counters[index, default: InterfaceCounters()].name = name
                logger.info("forwarding on \(name) (ifindex \(index)), ring \(options.ring.rawValue), vnet header \(options.vnetHeader ? "on" : "off")\(options.busyPollMicroseconds > 0 ? ", busy poll \(options.busyPollMicroseconds) µs" : "")")
            } catch {
                logger.error("cannot open a packet ring on ifindex \(index): \(error)")
            }
        }
        ringOrder = rings.keys.sorted().compactMap { rings[$0] }
        let size = Int((rings.keys.max() ?? 0) + 1)
        ringByIndex = (0..<size).map { rings[Int32($0)] }
        // A ring closed with frames a failed send() left queued takes them along.
        dirty.removeAll { rings[$0] == nil }
        dirty.reserveCapacity(ringOrder.count)
        if txFrames.count < size {
            txFrames += [UInt64](repeating: 0, count: size - txFrames.count)
            txRingFull += [UInt64](repeating: 0, count: size - txRingFull.count)
        }
    }

    func run() {
        var state = published.current
        var poller = Poller(capacity: 16)
        var pollGeneration: UInt64 = .max
        var noTrace = NoTrace()
        let busyPollNs = UInt64(max(options.busyPollMicroseconds, 0)) * 1000
        var lastFrameNs: UInt64 = 0
        var lastHousekeepingNs: UInt64 = 0
        while !stopRequested.current {
            // A new snapshot is picked up between batches, never within one.
            let latest = published.current
            if latest !== state || ringGeneration == .max {
                state = latest
                if ringGeneration != state.generation {
                    reconcileRings(state)
                    ringGeneration = state.generation
                }
            }
            if pollGeneration != ringGeneration {
                poller = Poller(capacity: ringOrder.count + 1)
                _ = poller.add(wake.descriptor)
                for r in ringOrder { _ = poller.add(r.receiveDescriptor) }
                pollGeneration = ringGeneration
            }
            // Sleep until a ring or the command queue has something, unless busy polling
            // and a frame came within the window: then look at the rings' status words
            // again straight away (no system call). 100 ms bounds how late conntrack
            // expiry and commands can be at idle.
            if busyPollNs == 0 || MonotonicClock.now() &- lastFrameNs > busyPollNs {
                _ = try? poller.wait(timeoutMilliseconds: 100)
                _ = wake.drain()
            }

            let nowNs = MonotonicClock.now()
            let now = Timestamp(nanoseconds: nowNs)
            var received: UInt64 = 0
            for ring in ringOrder {
                let ifindex = ring.interfaceIndex
                var rxFrames: UInt64 = 0, rxBytes: UInt64 = 0, truncated: UInt64 = 0
                _ = ring.receive(maxFrames: Self.batchSize) { frame in
                    rxFrames &+= 1
                    rxBytes &+= UInt64(frame.length)
                    if frame.isTruncated {
                        truncated &+= 1
                        return
                    }
                    let partial = frame.vnet?.needsChecksum ?? frame.checksumNotReady
                    let info = FrameInfo(ingress: InterfaceIndex(frame.interfaceIndex), l4ChecksumPartial: partial,
                                         isGSO: frame.vnet?.isGSO ?? false)
                    let room = UnsafeMutableRawBufferPointer(start: frame.bytes.baseAddress, count: max(frame.capacity, frame.bytes.count))
                    let verdict = pipeline.process(room, length: frame.bytes.count, info: info, now: now, state: state,
                                                   tracer: &noTrace)
                    switch verdict {
                    case .forward(let egress):
                        transmit(UnsafeRawBufferPointer(frame.bytes), vnet: frame.vnet, on: egress.rawValue)
                    case .reject(let egress, let length, _):
                        transmit(UnsafeRawBufferPointer(rebasing: room[0..<length]), vnet: nil, on: egress.rawValue)
                    case .pass, .drop:
                        break
                    }
                }
                received &+= rxFrames
                // What this ring's batch produced leaves now, before the next ring's batch.
                flushDirty()
                if rxFrames > 0 {
                    counters[ifindex, default: InterfaceCounters()].rxFrames &+= rxFrames
                    counters[ifindex, default: InterfaceCounters()].rxBytes &+= rxBytes
                    counters[ifindex, default: InterfaceCounters()].truncated &+= truncated
                }
            }
            if received > 0 {
                lastFrameNs = nowNs
            } else if busyPollNs > 0 && nowNs &- lastHousekeepingNs < 100_000 {
                // An empty spin: the housekeeping below waits for a batch, or 100 µs.
                continue
            }
            lastHousekeepingNs = nowNs
            batches &+= 1

            pipeline.neighbourRequests.drain { interface, address in
                neighbourRequests &+= 1
                do {
                    try requestNeighbourResolution(address: address, interfaceIndex: interface.rawValue)
                } catch {
                    logger.debug("neighbour resolution of \(address) on \(interface) failed: \(error)")
                }
            }
            _ = pipeline.conntrack.expire(now: now, budget: 256)
            serveCommands(now: now)
        }
    }

    @inline(__always)
    private func transmit(_ bytes: UnsafeRawBufferPointer, vnet: VirtioNetHeader?, on egress: Int32) {
        let i = Int(egress)
        guard i >= 0, i < ringByIndex.count, let ring = ringByIndex[i] else {
            // The pipeline chose an interface whose ring is not open (it failed to open,
            // or the interface just appeared): counted as a drop with that reason.
            pipeline.counters.byReason[Int(DropReason.egressInterfaceUnknown.rawValue)] &+= 1
            return
        }
        let header: VirtioNetHeader? = options.vnetHeader ? (vnet ?? VirtioNetHeader.none) : nil
        if ring.enqueue(copying: bytes, vnet: header) {
            txFrames[i] &+= 1
            if ring.pendingTransmits == 1 { dirty.append(egress) }
            return
        }
        // Full: hand what is queued to the kernel now (one send(); on veth the frames are
        // delivered before it returns, freeing their slots) and try once more. Still full:
        // count and drop, never spin. A vnet ring's slots are sized for 64 KB GSO frames,
        // so it holds fewer frames than a receive batch.
        if ring.pendingTransmits > 0 {
            ring.flush()
            if ring.enqueue(copying: bytes, vnet: header) {
                txFrames[i] &+= 1
                return
            }
            // Emptied, yet the next slot is still the kernel's: the ring leaves the list
            // (error path only), which keeps it exact.
            if ring.pendingTransmits == 0 { dirty.removeAll { $0 == egress } }
        }
        txRingFull[i] &+= 1
        pipeline.counters.byReason[Int(DropReason.txRingFull.rawValue)] &+= 1
    }

    /// Hands every ring's queued frames to the kernel (one send() each). A ring whose
    /// send() left frames queued stays listed, and is tried again after the next batch.
    @inline(__always)
    private func flushDirty() {
        if dirty.isEmpty { return }
        for i in dirty { ringByIndex[Int(i)]?.flush() }
        dirty.removeAll { (ringByIndex[Int($0)]?.pendingTransmits ?? 0) == 0 }
    }

    private func serveCommands(now: Timestamp) {
        // Swap the queue out: no copy, and nothing allocated when it is empty (the common
        // case, once per batch).
        let pending: [LoopCommand] = commands.withLock { c in
            if c.isEmpty { return [] }
            let taken = c
            c = []
            return taken
        }
        if pending.isEmpty { return }
        for c in pending {
            switch c {
            case .purgeUDP(let removed):
                let n = pipeline.conntrack.removeUDPEntries(removed)
                if n > 0 { logger.info("removed \(n) UDP conntrack entries to endpoints that left (as kube-proxy does)") }
            case .listConntrack(let limit, let reply):
                var rows: [ConntrackEntry] = []
                pipeline.conntrack.forEach { _, e in if rows.count < limit { rows.append(e) } }
                reply(rows, now)
            case .statistics(let reply):
                var s = LoopStatistics()
                s.pipeline = pipeline.counters
                for (i, r) in rings {
                    r.collectKernelStatistics()
                    counters[i, default: InterfaceCounters()].rxRingFull = r.statistics.kernelDrops
                    counters[i, default: InterfaceCounters()].sendErrors = r.statistics.sendErrors
                    if Int(i) < txFrames.count {
                        counters[i, default: InterfaceCounters()].txFrames = txFrames[Int(i)]
                        counters[i, default: InterfaceCounters()].txRingFull = txRingFull[Int(i)]
                    }
                }
                s.interfaces = counters
                s.conntrackCount = pipeline.conntrack.count
                s.conntrackCapacity = pipeline.conntrack.capacity
                s.conntrack = pipeline.conntrack.counters
                s.snat = pipeline.snat.counters
                s.affinity = pipeline.affinity.counters
                s.neighbourRequests = neighbourRequests
                s.batches = batches
                reply(s)
            case .exportConntrack(let reply):
                reply(pipeline.conntrack.export(now: now))
            }
        }
    }
}
