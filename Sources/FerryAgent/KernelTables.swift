import FerryCore
import FerryLinux
import FerryPacket

/// Converts what netlink says (FerryLinux) into the core's routing tables. The only
/// place the two layers meet, besides the packet loop.
enum KernelTables {
    /// Interfaces Ferry forwards on: the named ones, or every non-loopback one; up only.
    static func forwardingInterfaces(_ k: KernelNetworkState, wanted: [String]?) -> Set<Int32> {
        var set = Set<Int32>()
        for l in k.links where !l.isLoopback && l.isUp {
            if let wanted, !wanted.contains(l.name) { continue }
            set.insert(l.index)
        }
        return set
    }

    static func interfaces(_ k: KernelNetworkState, forwarding: Set<Int32>) -> InterfaceTable {
        var byIndex: [Int32: [InterfaceAddress]] = [:]
        for a in k.addresses { byIndex[a.interfaceIndex, default: []].append(InterfaceAddress(a.address, prefixLength: a.prefixLength)) }
        return InterfaceTable(k.links.map { l in
            InterfaceInfo(index: InterfaceIndex(l.index), name: l.name, mac: l.mac, mtu: Int(l.mtu),
                          addresses: byIndex[l.index] ?? [], isForwarding: forwarding.contains(l.index))
        })
    }

    static func routes(_ k: KernelNetworkState) -> RouteTable {
        var out: [Route] = []
        for r in k.routes {
            let kind: Route.Kind
            switch r.type {
            case .unicast: kind = .unicast
            case .local: kind = .local
            case .blackhole, .unreachable, .prohibit: kind = .blackhole
            default: continue  // broadcast, multicast, throw…: not ours to forward
            }
            // A multipath route: the first next hop (the node's own ECMP is rare; the
            // router in front of the nodes does the spreading).
            var gateway = r.gateway
            var oif = r.outputInterface
            if oif <= 0, let first = r.nextHops.first {
                gateway = first.gateway
                oif = first.interfaceIndex
            }
            if kind == .unicast && oif <= 0 { continue }
            out.append(Route(destination: r.destination, gateway: gateway, interface: InterfaceIndex(oif),
                             preferredSource: r.preferredSource, kind: kind, metric: r.priority))
        }
        return RouteTable(routes: out)
    }

    static func neighbours(_ k: KernelNetworkState) -> NeighbourTable {
        NeighbourTable(k.neighbours.compactMap { n in
            guard let mac = n.mac, n.state.isValid else { return nil }
            return (InterfaceIndex(n.interfaceIndex), n.address, mac)
        })
    }
}
