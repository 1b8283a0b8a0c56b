import ArgumentParser
import FerryAgent
import FerryControlPlane
import FerryCore
import FerryPacket
import Foundation
import Logging

@main
struct Ferry: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferry",
        abstract: "A userspace Kubernetes Service dataplane on AF_PACKET rings.",
        subcommands: [AgentCommand.self, Validate.self, ServiceCommand.self, ConntrackCommand.self,
                      Stats.self, TraceCommand.self]
    )
}

/// Where `ferry agent` listens and the other subcommands connect by default.
let defaultAdminSocket = "/run/ferry/admin.sock"

struct AdminOptions: ParsableArguments {
    @Option(name: .customLong("admin-socket"), help: "The agent's admin Unix socket.")
    var adminSocket: String = defaultAdminSocket

    @Flag(name: .customLong("json"), help: "Print the agent's JSON answer as is.")
    var json = false

    func fetch<T: Decodable>(_ command: AdminCommand, limit: Int? = nil, as: T.Type) throws -> (T, Data) {
        let data = try AdminClient.request(AdminRequest(command: command, limit: limit), socketPath: adminSocket)
        if let err = try? JSONDecoder().decode([String: String].self, from: data), let m = err["error"] {
            throw ValidationError(m)
        }
        return (try JSONDecoder().decode(T.self, from: data), data)
    }
}

struct AgentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run the node agent in this network namespace (root)."
    )

    @Option(name: .customLong("config"), help: "The control-plane file: Services and EndpointSlices (YAML or JSON).")
    var config: String

    @Option(name: .customLong("hostname-override"), help: "This node's name, as EndpointSlices' nodeName spells it.")
    var hostname: String?

    @Option(name: .customLong("cluster-cidr"), help: "Pod CIDR(s), comma-separated; traffic from here is pod traffic.")
    var clusterCIDR: String?

    @Option(name: .customLong("nodeport-addresses"), help: "CIDRs whose local addresses answer NodePorts (default: all).")
    var nodePortAddresses: String?

    @Flag(name: .customLong("masquerade-all"), help: "Masquerade all Service traffic.")
    var masqueradeAll = false

    @Option(name: .customLong("healthz-bind-address"), help: "ip:port for /healthz and /livez.")
    var healthzBindAddress: String = "0.0.0.0:10256"

    @Option(name: .customLong("metrics-bind-address"), help: "ip:port for Prometheus /metrics (empty: off).")
    var metricsBindAddress: String = "127.0.0.1:10249"

    @Option(name: .customLong("interfaces"), help: "Interfaces to forward on, comma-separated (default: every non-loopback interface).")
    var interfaces: String?

    @Option(name: .customLong("admin-socket"), help: "The admin Unix socket (mode 0600).")
    var adminSocket: String = defaultAdminSocket

    @Option(name: .customLong("conntrack-max"), help: "Conntrack table capacity (entries).")
    var conntrackMax: Int = 262_144

    @Option(name: .customLong("ring"), help: "Packet ring: v2 (frame by frame; the default: lowest latency, and the faster one measured) or v3 (blocks, handed over when full or after the retire timeout).")
    var ring: String = "v2"

    @Option(name: .customLong("ring-timeout-ms"), help: "TPACKET_V3 block retire timeout in milliseconds.")
    var ringTimeoutMs: Int = 1

    @Flag(inversion: .prefixedNo, help: "Use PACKET_VNET_HDR so GSO super-frames and partial checksums pass whole.")
    var vnetHeader = true

    @Option(name: .customLong("busy-poll"), help: "Microseconds to keep polling the rings without sleeping after the last frame (0: off). Lower latency under load for a core kept busy while traffic flows.")
    var busyPoll: Int = 0

    @Option(name: .customLong("selection"), help: "Backend selection: maglev or random.")
    var selection: String = "maglev"

    @Option(name: .customLong("conntrack-state"), help: "Hand over to the next agent: on exit save conntrack here and keep the namespace changes; at start restore from it (restarts and upgrades keep live flows).")
    var conntrackState: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        var o = AgentOptions(configPath: config)
        o.nodeName = hostname ?? ProcessInfo.processInfo.hostName
        o.clusterCIDRs = try parsePrefixes(clusterCIDR, flag: "--cluster-cidr")
        o.nodePortAddresses = try parsePrefixes(nodePortAddresses, flag: "--nodeport-addresses")
        o.masqueradeAll = masqueradeAll
        o.healthzBindAddress = healthzBindAddress
        o.metricsBindAddress = metricsBindAddress.isEmpty ? nil : metricsBindAddress
        o.interfaces = interfaces.map { $0.split(separator: ",").map(String.init) }
        o.adminSocket = adminSocket
        o.conntrackCapacity = conntrackMax
        guard let r = AgentOptions.RingKind(rawValue: ring) else { throw ValidationError("--ring must be v2 or v3") }
        o.ring = r
        o.ringTimeoutMs = ringTimeoutMs
        o.vnetHeader = vnetHeader
        guard (0...1_000_000).contains(busyPoll) else { throw ValidationError("--busy-poll takes 0 to 1000000 microseconds") }
        o.busyPollMicroseconds = busyPoll
        o.conntrackStatePath = conntrackState
        switch selection {
        case "maglev": o.selection = .maglev()
        case "random": o.selection = .random
        default: throw ValidationError("--selection must be maglev or random")
        }
        try Agent(options: o).run()
    }
}

func parsePrefixes(_ text: String?, flag: String) throws -> [IPv4Prefix] {
    guard let text, !text.isEmpty else { return [] }
    return try text.split(separator: ",").map {
        guard let p = IPv4Prefix($0.trimmingCharacters(in: .whitespaces)) else {
            throw ValidationError("\(flag): '\($0)' is not an IPv4 CIDR")
        }
        return p
    }
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a control-plane file; print every error with file, line and field."
    )
    @Argument(help: "The control-plane file.") var file: String

    func run() throws {
        do {
            let doc = try ControlPlaneLoader.load(contentsOf: file)
            for w in doc.warnings { print("warning: \(w)") }
            print(doc.summary)
        } catch {
            for d in error.diagnostics { print("error: \(d)") }
            print("\(file): \(error.diagnostics.count) error(s); not valid")
            throw ExitCode(1)
        }
    }
}

struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Explain, step by step, what Ferry does with a packet (run it in the node's namespace).",
        discussion: """
        Runs the real pipeline on the first packet of a flow against this namespace's routes, \
        neighbours and interfaces and the control-plane file's Services. Example, why a NodePort \
        hangs on a node without local endpoints:
          ferry trace --config cluster.yaml --node node3 tcp 203.0.113.10:40000 172.18.0.13:30081
        """
    )
    @Option(name: .customLong("config"), help: "The control-plane file.") var config: String
    @Option(name: .customLong("node"), help: "This node's name (--hostname-override).") var node: String
    @Option(name: .customLong("cluster-cidr"), help: "Pod CIDR(s), comma-separated.") var clusterCIDR: String?
    @Option(name: .customLong("in"), help: "The interface the packet arrives on (default: towards its source).") var ingress: String?
    @Argument(help: "tcp or udp.") var proto: String
    @Argument(help: "Source address:port.") var from: String
    @Argument(help: "Destination address:port.") var to: String

    func run() throws {
        guard let p = ServiceProtocol(rawValue: proto.uppercased()) else { throw ValidationError("protocol must be tcp or udp") }
        let (s, sp) = try endpoint(from)
        let (d, dp) = try endpoint(to)
        var r = TraceRequest(configPath: config, nodeName: node, protocol: p, source: s, sourcePort: sp,
                             destination: d, destinationPort: dp)
        r.clusterCIDRs = try parsePrefixes(clusterCIDR, flag: "--cluster-cidr")
        r.ingress = ingress
        for (i, line) in try PacketTrace.run(r).enumerated() { print("\(i + 1). \(line)") }
    }

    func endpoint(_ text: String) throws -> (IPv4Address, UInt16) {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let a = IPv4Address(parts[0]), let p = UInt16(parts[1]) else {
            throw ValidationError("'\(text)' is not address:port")
        }
        return (a, p)
    }
}
