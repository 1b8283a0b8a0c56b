import Dispatch
import FerryCore
import FerryPacket
import Foundation

extension Agent {
    /// Answers one admin request with JSON.
    func answer(_ req: AdminRequest, loop: PacketLoop) -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        switch req.command {
        case .services:
            return (try? enc.encode(serviceListing())) ?? Data()
        case .conntrack:
            let limit = req.limit ?? 1000
            let answer: ([ConntrackEntry], Timestamp)? = loop.request { reply in
                .listConntrack(limit: limit, reply: { rows, now in reply((rows, now)) })
            }
            guard let (rows, now) = answer else { return busy() }
            let stats = statistics(loop: loop)
            return (try? enc.encode(Agent.conntrackListing(rows, now: now, count: stats?.conntrackCount ?? rows.count,
                                                            capacity: stats?.conntrackCapacity ?? 0))) ?? Data()
        case .stats:
            guard let s = statistics(loop: loop) else { return busy() }
            return (try? enc.encode(statsListing(s))) ?? Data()
        }
    }

    private func busy() -> Data {
        Data(#"{"error":"the packet loop did not answer within 2 s"}"#.utf8)
    }

    func statistics(loop: PacketLoop) -> LoopStatistics? {
        loop.request { .statistics(reply: $0) }
    }

    func serviceListing() -> ServiceListing {
        let state = publishedState
        let t = state.services
        var rows: [ServiceListing.FrontendRow] = []
        for f in t.frontends {
            var flags: [String] = []
            if f.trafficPolicy == .local { flags.append("Local") }
            if case let .clientIP(timeout) = f.affinity { flags.append("affinity=ClientIP(\(timeout)s)") }
            if !f.sourceRanges.isEmpty { flags.append("source-ranges=\(f.sourceRanges.map(\.description).joined(separator: "+"))") }
            if let h = f.healthCheckNodePort { flags.append("health-check=\(h)") }
            let local = t.backends(frontend: f.id, set: .local)
            let all = t.servicePort(frontend: f.id).endpoints
            if f.trafficPolicy == .local && local.isEmpty && t.hasEndpoints(frontend: f.id) { flags.append("no-local-endpoints") }
            if !local.isEmpty { flags.append("hairpin-capable") }
            if all.isEmpty { flags.append("no-endpoints:reject") }
            let inUse = Set(t.backends(frontend: f.id, set: f.trafficPolicy == .local ? .local : .cluster).map { "\($0.address):\($0.port)" })
            let backends = all.map { b in
                ServiceListing.BackendRow(
                    address: "\(b.address):\(b.port)", node: b.nodeName, pod: b.targetName,
                    state: b.ready ? "ready" : (b.serving && b.terminating ? "serving-terminating" : (b.terminating ? "terminating" : "not-ready")),
                    local: b.isLocal, inUse: inUse.contains("\(b.address):\(b.port)"))
            }
            let addr = f.kind == .nodePort ? "*" : f.address.description
            rows.append(ServiceListing.FrontendRow(
                id: f.id, frontend: "\(addr):\(f.port)/\(f.protocol.rawValue)",
                service: f.service.description + (f.portName.map { ":\($0)" } ?? ""),
                kind: f.kind.description, flags: flags, backends: backends))
        }
        return ServiceListing(generation: state.generation, node: options.nodeName, frontends: rows)
    }

    static func conntrackListing(_ entries: [ConntrackEntry], now: Timestamp, count: Int, capacity: Int) -> ConntrackListing {
        func tuple(_ k: FlowKey) -> String {
            "src=\(k.source) dst=\(k.destination) sport=\(k.sourcePort) dport=\(k.destinationPort)"
        }
        let rows = entries.map { e in
            ConntrackListing.Row(
                proto: e.protocol.description, state: e.state.description,
                expiresIn: e.expires > now ? (e.expires.nanoseconds - now.nanoseconds) / 1_000_000_000 : 0,
                original: tuple(e.original), reply: tuple(e.reply),
                packets: [e.originalPackets, e.replyPackets], bytes: [e.originalBytes, e.replyBytes],
                assured: e.assured,
                nat: e.isSourceNAT && e.isDestinationNAT ? "snat+dnat" : e.isDestinationNAT ? "dnat" : e.isSourceNAT ? "snat" : "none")
        }
        return ConntrackListing(count: count, capacity: capacity, rows: rows)
    }

    func statsListing(_ s: LoopStatistics) -> StatsListing {
        let state = publishedState
        let interfaces = s.interfaces.sorted { $0.key < $1.key }.map { i, c in
            StatsListing.InterfaceRow(name: state.interfaces[InterfaceIndex(i)]?.name ?? c.name, index: i,
                                      rxFrames: c.rxFrames, rxBytes: c.rxBytes, rxRingFull: c.rxRingFull, txFrames: c.txFrames,
                                      txRingFull: c.txRingFull, sendErrors: c.sendErrors, truncated: c.truncated)
        }
        var drops: [StatsListing.DropRow] = []
        for r in DropReason.allCases {
            var n = s.pipeline.byReason[Int(r.rawValue)]
            if r == .truncatedByRing { n += s.interfaces.values.reduce(0) { $0 + $1.truncated } }
            if n > 0 { drops.append(.init(code: r.rawValue, reason: r.name, count: n, explanation: r.explanation)) }
        }
        let ct = s.conntrack
        let r = reloadStatsSnapshot
        return StatsListing(
            generation: state.generation, uptimeSeconds: Date().timeIntervalSince(startedAt),
            interfaces: interfaces, received: s.pipeline.received, forwarded: s.pipeline.forwarded,
            passed: s.pipeline.passed, rejected: s.pipeline.rejected, dropped: s.pipeline.dropped,
            newFlows: s.pipeline.newFlows, conntrackEntries: s.conntrackCount, conntrackCapacity: s.conntrackCapacity,
            conntrackCounters: ["inserted": ct.inserted, "clashes": ct.clashes, "full": ct.full, "early_drops": ct.earlyDrops,
                                "expired": ct.expired, "removed": ct.removed, "snat_exhausted": s.snat.exhausted,
                                "clash_remapped": s.pipeline.clashRemapped, "icmp_errors_translated": s.pipeline.icmpErrorsTranslated],
            drops: drops, reloads: r.reloads, reloadFailures: r.failures, lastReloadError: r.lastError)
    }

    /// Prometheus text exposition (version 0.0.4) of the same counters.
    func prometheusText(loop: PacketLoop) -> String {
        guard let s = statistics(loop: loop) else { return "# packet loop busy\n" }
        let l = statsListing(s)
        var out = ""
        func metric(_ name: String, _ help: String, _ type: String, _ samples: [(String, UInt64)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, v) in samples { out += "\(name)\(labels.isEmpty ? "" : "{\(labels)}") \(v)\n" }
        }
        metric("ferry_packets_total", "Packets by pipeline verdict.", "counter",
               [("verdict=\"forward\"", l.forwarded), ("verdict=\"pass\"", l.passed),
                ("verdict=\"reject\"", l.rejected), ("verdict=\"drop\"", l.dropped)])
        metric("ferry_drops_total", "Dropped or rejected packets by reason.", "counter",
               DropReason.allCases.map { ("reason=\"\($0.name)\"", s.pipeline.byReason[Int($0.rawValue)]) })
        metric("ferry_interface_rx_frames_total", "Frames received per interface.", "counter",
               l.interfaces.map { ("interface=\"\($0.name)\"", $0.rxFrames) })
        metric("ferry_interface_tx_frames_total", "Frames transmitted per interface.", "counter",
               l.interfaces.map { ("interface=\"\($0.name)\"", $0.txFrames) })
        metric("ferry_conntrack_entries", "Live conntrack entries.", "gauge", [("", UInt64(l.conntrackEntries))])
        metric("ferry_sync_proxy_rules_total", "Control-plane reloads applied.", "counter", [("", l.reloads)])
        metric("ferry_sync_proxy_rules_failures_total", "Control-plane reloads refused (bad file).", "counter", [("", l.reloadFailures)])
        return out
    }
}
