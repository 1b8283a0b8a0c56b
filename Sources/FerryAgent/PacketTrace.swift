import FerryCore
import FerryLinux
import FerryPacket

/// `ferry trace`: what the pipeline would do with one packet, step by step, in words.
///
/// It runs the real pipeline on a packet built from the request, against the node's real
/// routes, neighbours and interfaces (netlink, in the namespace it runs in) and the
/// Services of the control-plane file, with a conntrack of its own: the running agent's
/// tables are not touched, so the trace shows the first packet of a new flow.
public struct TraceRequest: Sendable {
    public var configPath: String
    public var nodeName: String
    public var clusterCIDRs: [IPv4Prefix] = []
    public var `protocol`: ServiceProtocol
    public var source: IPv4Address
    public var sourcePort: UInt16
    public var destination: IPv4Address
    public var destinationPort: UInt16
    /// The interface the packet arrives on; by default the one the route back to the
    /// source leaves by (where a reply would go, so where the packet comes from).
    public var ingress: String?

    public init(configPath: String, nodeName: String, protocol: ServiceProtocol, source: IPv4Address,
                sourcePort: UInt16, destination: IPv4Address, destinationPort: UInt16) {
        self.configPath = configPath
        self.nodeName = nodeName
        self.protocol = `protocol`
        self.source = source
        self.sourcePort = sourcePort
        self.destination = destination
        self.destinationPort = destinationPort
    }
}

public enum PacketTrace {
    public static func run(_ r: TraceRequest) throws -> [String] {
        let node = NodeIdentity(name: r.nodeName)
        let sync: ServiceSync
        do {
            sync = try ServiceSync(path: r.configPath, node: node, clusterCIDRs: r.clusterCIDRs)
        } catch {
            throw AgentError(description: error.diagnostics.map(\.description).joined(separator: "\n"))
        }
        let kernel: KernelNetworkState
        do { kernel = try KernelNetworkState.read() } catch { throw AgentError(description: "netlink: \(error)") }
        let forwarding = KernelTables.forwardingInterfaces(kernel, wanted: nil)
        let state = ForwardingState(services: sync.table, routes: KernelTables.routes(kernel),
                                    neighbours: KernelTables.neighbours(kernel),
                                    interfaces: KernelTables.interfaces(kernel, forwarding: forwarding),
                                    cluster: sync.cluster, node: node)
        return try trace(r, state: state)
    }

    /// The same against a given state (tests, and the agent's own tables later).
    public static func trace(_ r: TraceRequest, state: ForwardingState) throws -> [String] {
        let ingress: InterfaceInfo
        if let name = r.ingress {
            guard let i = state.interfaces.all.first(where: { $0.name == name }) else {
                throw AgentError(description: "no interface \(name) here")
            }
            ingress = i
        } else {
            guard let route = state.routes.lookup(r.source), let i = state.interfaces[route.interface] else {
                throw AgentError(description: "no route back to \(r.source): say where the packet arrives with --in")
            }
            ingress = i
        }
        // From the neighbour that would send it (the route's gateway, or the source itself).
        let back = state.routes.lookup(r.source)
        let peer = back?.gateway ?? r.source
        let peerMAC = state.neighbours.mac(for: peer, on: ingress.index) ?? MACAddress(0x02_00_00_00_00_01)
        let transport: TransportFields = r.protocol == .tcp
            ? .tcp(TCPFields(sourcePort: r.sourcePort, destinationPort: r.destinationPort, flags: .syn))
            : .udp(UDPFields(sourcePort: r.sourcePort, destinationPort: r.destinationPort, payload: Array("ferry trace".utf8)))
        var frame = PacketBuilder.frame(EthernetFields(destination: ingress.mac, source: peerMAC),
                                        IPv4Fields(sourceAddress: r.source, destinationAddress: r.destination,
                                                   protocol: r.protocol.ipProtocol),
                                        transport)
        let length = frame.count
        frame += [UInt8](repeating: 0, count: 128)  // room for a reject
        var pipeline = Pipeline(conntrack: ConntrackTable(capacity: 16), affinity: AffinityTable(capacity: 16),
                                snat: SNATPortAllocator(range: state.cluster.snatPortRange))
        var log = TraceLog()
        _ = frame.withUnsafeMutableBytes { buf in
            pipeline.process(buf, length: length, info: FrameInfo(ingress: ingress.index), now: .seconds(1),
                             state: state, tracer: &log)
        }
        return ["\(ingress.name): " + (log.lines.first ?? "")] + log.lines.dropFirst()
    }
}
