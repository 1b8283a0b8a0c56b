import ArgumentParser
import FerryAgent
import FerryCore
import Foundation

/// Left-aligned columns, like `kubectl get` and `cilium-dbg service list`.
func renderTable(_ header: [String], _ rows: [[String]]) -> String {
    var widths = header.map(\.count)
    for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, c in
            i == cells.count - 1 ? c : c.padding(toLength: widths[i] + 2, withPad: " ", startingAt: 0)
        }.joined()
    }
    return ([line(header)] + rows.map(line)).joined(separator: "\n")
}

struct ServiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service", abstract: "Inspect the agent's Service table.", subcommands: [List.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Frontends with their flags and backends (node and state), like cilium-dbg service list.")
        @OptionGroup var admin: AdminOptions

        func run() throws {
            let (l, raw) = try admin.fetch(.services, as: ServiceListing.self)
            if admin.json { print(String(decoding: raw, as: UTF8.self)); return }
            var rows: [[String]] = []
            for f in l.frontends {
                let flags = f.flags.isEmpty ? "" : f.flags.joined(separator: ",")
                if f.backends.isEmpty {
                    rows.append(["\(f.id)", f.frontend, f.kind, f.service, flags, "(none)", ""])
                }
                for (i, b) in f.backends.enumerated() {
                    var state = b.state
                    if b.local { state += ",local" }
                    if !b.inUse { state += ",unused-here" }
                    let backend = b.address + (b.pod.map { " (\($0))" } ?? "")
                    rows.append(i == 0 ? ["\(f.id)", f.frontend, f.kind, f.service, flags, backend, "\(b.node ?? "-") \(state)"]
                                       : ["", "", "", "", "", backend, "\(b.node ?? "-") \(state)"])
                }
            }
            print("node \(l.node), table generation \(l.generation)")
            print(renderTable(["ID", "FRONTEND", "TYPE", "SERVICE", "FLAGS", "BACKEND", "NODE STATE"], rows))
        }
    }
}

struct ConntrackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conntrack", abstract: "Inspect the agent's connection tracking table.", subcommands: [List.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Entries in the style of `conntrack -L`.")
        @OptionGroup var admin: AdminOptions
        @Option(help: "Print at most this many entries.") var limit: Int = 1000

        func run() throws {
            let (l, raw) = try admin.fetch(.conntrack, limit: limit, as: ConntrackListing.self)
            if admin.json { print(String(decoding: raw, as: UTF8.self)); return }
            for r in l.rows {
                var s = "\(r.proto.lowercased()) \(r.expiresIn) "
                if r.proto == "TCP" { s += "\(r.state) " }
                s += "\(r.original) packets=\(r.packets[0]) bytes=\(r.bytes[0]) "
                if r.packets[1] == 0 { s += "[UNREPLIED] " }
                s += "\(r.reply) packets=\(r.packets[1]) bytes=\(r.bytes[1]) "
                if r.assured { s += "[ASSURED] " }
                s += "nat=\(r.nat)"
                print(s)
            }
            print("ferry conntrack: \(l.count) flow entries (capacity \(l.capacity)); \(l.rows.count) shown.")
        }
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-interface counters, verdicts and drops by reason.")
    @OptionGroup var admin: AdminOptions

    func run() throws {
        let (s, raw) = try admin.fetch(.stats, as: StatsListing.self)
        if admin.json { print(String(decoding: raw, as: UTF8.self)); return }
        print("table generation \(s.generation), up \(Int(s.uptimeSeconds)) s, reloads \(s.reloads) (\(s.reloadFailures) refused)")
        if let e = s.lastReloadError { print("last refused reload: \(e)") }
        print(renderTable(["INTERFACE", "RX", "RX BYTES", "RX RING FULL", "TX", "TX RING FULL", "SEND ERRORS", "TRUNCATED"],
                          s.interfaces.map { ["\($0.name) (\($0.index))", "\($0.rxFrames)", "\($0.rxBytes)", "\($0.rxRingFull)", "\($0.txFrames)",
                                              "\($0.txRingFull)", "\($0.sendErrors)", "\($0.truncated)"] }))
        print("")
        print("received \(s.received)  forwarded \(s.forwarded)  passed to kernel \(s.passed)  rejected \(s.rejected)  dropped \(s.dropped)  new flows \(s.newFlows)")
        print("conntrack \(s.conntrackEntries)/\(s.conntrackCapacity) " +
              s.conntrackCounters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        print("")
        if s.drops.isEmpty {
            print("no drops")
        } else {
            print(renderTable(["CODE", "REASON", "COUNT", "WHAT IT MEANS"],
                              s.drops.map { ["\($0.code)", $0.reason, "\($0.count)", $0.explanation] }))
        }
    }
}
