import FerryCore
import FerryLinux
import Logging

/// The changes the agent makes to its namespace so the kernel does not also forward or
/// answer the packets Ferry handles (KERNEL-NOTES.md, "Keeping the kernel out"). Each is
/// logged when made and undone on a clean exit; a crashed agent's leftovers are removed
/// by the next start (the nft table is replaced whole, sysctls are set again).
///
/// 1. `net.ipv4.ip_forward = 0`: the kernel drops transit packets silently (only
///    IpInAddrErrors counts them) while the packet socket still sees them, so Ferry is
///    the only forwarder.
/// 2. `net.ipv4.ip_local_reserved_ports` gains the SNAT port range: the kernel never
///    picks those as ephemeral ports, so a masqueraded flow's reply port is never also
///    a local socket's.
/// 3. nftables table `ip ferry`, input hook: drop TCP/UDP addressed to this node on a
///    Service's NodePort, and on the SNAT range. Those packets are Ferry's (it forwards
///    them from its own copy); without the rule the kernel would answer them with a TCP
///    RST or ICMP port unreachable. Health-check NodePorts and every other local port
///    (SSH, /healthz, the admin API) still reach the node's sockets.
final class KernelSetup {
    static let table = "ferry"
    private var saved: [(String, String)] = []
    private let logger: Logger
    private let snatRange: ClosedRange<UInt16>
    private var installed = false

    init(snatRange: ClosedRange<UInt16>, logger: Logger) {
        self.snatRange = snatRange
        self.logger = logger
    }

    func apply(nodePorts: [(ServiceProtocol, UInt16)]) throws {
        try set("net/ipv4/ip_forward", "0", why: "Ferry forwards; the kernel must not forward its own copy")
        let reserved = (try? Sysctl.read("net/ipv4/ip_local_reserved_ports"))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        let range = "\(snatRange.lowerBound)-\(snatRange.upperBound)"
        let merged = reserved.isEmpty ? range : (reserved.contains(range) ? reserved : reserved + "," + range)
        try set("net/ipv4/ip_local_reserved_ports", merged, why: "keep the kernel's ephemeral ports out of the SNAT range")
        let (lo, hi) = try ephemeralRange()
        if !(hi < Int(snatRange.lowerBound) || lo > Int(snatRange.upperBound)) {
            logger.warning("kernel ephemeral range \(lo)-\(hi) overlaps the SNAT range \(range); reserved ports keep them apart")
        }
        try installTable(nodePorts: nodePorts)
    }

    private func ephemeralRange() throws -> (Int, Int) {
        let parts = try Sysctl.read("net/ipv4/ip_local_port_range").split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
        return (Int(parts.first ?? "") ?? 32768, Int(parts.dropFirst().first ?? "") ?? 60999)
    }

    private func set(_ name: String, _ value: String, why: String) throws {
        let old = try Sysctl.read(name).trimmingCharacters(in: .whitespacesAndNewlines)
        if !saved.contains(where: { $0.0 == name }) { saved.append((name, old)) }
        if old != value {
            try Sysctl.write(name, value)
        }
        logger.info("namespace change: \(name.replacingOccurrences(of: "/", with: ".")) = \(value) (was \(old)): \(why)")
    }

    private func script(nodePorts: [(ServiceProtocol, UInt16)]) -> String {
        let tcp = nodePorts.filter { $0.0 == .tcp }.map { "\($0.1)" }
        let udp = nodePorts.filter { $0.0 == .udp }.map { "\($0.1)" }
        let range = "\(snatRange.lowerBound)-\(snatRange.upperBound)"
        return """
        table ip \(Self.table) {
          set nodeports_tcp { type inet_service; \(tcp.isEmpty ? "" : "elements = { \(tcp.joined(separator: ", ")) }") }
          set nodeports_udp { type inet_service; \(udp.isEmpty ? "" : "elements = { \(udp.joined(separator: ", ")) }") }
          chain input {
            type filter hook input priority filter; policy accept;
            tcp dport @nodeports_tcp counter drop comment "NodePorts: Ferry forwards these"
            udp dport @nodeports_udp counter drop comment "NodePorts: Ferry forwards these"
            tcp dport \(range) counter drop comment "SNAT return range: replies Ferry reverse-NATs"
            udp dport \(range) counter drop comment "SNAT return range: replies Ferry reverse-NATs"
          }
        }

        """
    }

    /// Replaces the whole table in one transaction (`nft -f`), so a reload never leaves
    /// a moment without the rules.
    func installTable(nodePorts: [(ServiceProtocol, UInt16)]) throws {
        var text = ""
        if installed || tableExists() { text += "delete table ip \(Self.table)\n" }
        text += script(nodePorts: nodePorts)
        let file = NSTemporaryDirectory() + "ferry-nft-\(getpidValue()).nft"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        _ = try Command.runChecked(["nft", "-f", file])
        if !installed {
            logger.info("namespace change: nft table ip \(Self.table) drops NodePorts \(nodePorts.map { "\($0.1)/\($0.0.rawValue)" }.joined(separator: ",")) and the SNAT range on input; health-check ports and other local ports are untouched")
        }
        installed = true
    }

    private func tableExists() -> Bool {
        (try? Command.run(["nft", "list", "table", "ip", Self.table]))?.status == 0
    }

    /// The values the namespace had before any agent changed them, for a handover.
    var originals: [(String, String)] { saved }

    /// Takes over the originals a previous agent recorded, so that undoing (whenever an
    /// agent finally exits without handing over) restores what the namespace had before
    /// the first agent, not what the previous agent left. Call before `apply`.
    func adopt(originals: [(String, String)]) {
        saved = originals
    }

    /// Undoes every change, in reverse order.
    func undo() {
        if installed || tableExists() {
            _ = try? Command.run(["nft", "delete", "table", "ip", Self.table])
            installed = false
            logger.info("namespace restored: nft table ip \(Self.table) removed")
        }
        for (name, old) in saved.reversed() {
            try? Sysctl.write(name, old)
            logger.info("namespace restored: \(name.replacingOccurrences(of: "/", with: ".")) = \(old)")
        }
        saved = []
    }
}

import Foundation
@inline(__always) func getpidValue() -> Int32 { ProcessInfo.processInfo.processIdentifier }
