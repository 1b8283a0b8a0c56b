// The kernel's links, IPv4 addresses, main-table IPv4 routes and neighbours, as plain
// values. Read with libnl-route-3 (rtnl_*_alloc_cache dumps) and kept current by
// NetlinkMonitor. The forwarder reads a snapshot; it never asks the kernel per packet.
import CFerryLinux
import CNetlinkRoute
import FerryPacket
import Glibc

/// One network interface (RTM_NEWLINK).
public struct LinkInfo: Hashable, Sendable {
    public var index: Int32
    public var name: String
    /// The hardware address; `.zero` for links without one.
    public var mac: MACAddress
    public var mtu: UInt32
    /// IFF_UP (administratively up).
    public var isUp: Bool
    /// IFF_LOWER_UP (carrier): a veth whose peer is down is up but not running.
    public var isRunning: Bool
    public var isLoopback: Bool
    /// IFLA_INFO_KIND ("veth", "bridge", …); nil for physical devices and loopback.
    public var kind: String?

    public init(index: Int32, name: String, mac: MACAddress, mtu: UInt32, isUp: Bool, isRunning: Bool, isLoopback: Bool, kind: String?) {
        self.index = index
        self.name = name
        self.mac = mac
        self.mtu = mtu
        self.isUp = isUp
        self.isRunning = isRunning
        self.isLoopback = isLoopback
        self.kind = kind
    }
}

/// One IPv4 address on an interface (RTM_NEWADDR, AF_INET).
public struct AddressInfo: Hashable, Sendable {
    public var interfaceIndex: Int32
    public var address: IPv4Address
    public var prefixLength: UInt8

    public init(interfaceIndex: Int32, address: IPv4Address, prefixLength: UInt8) {
        self.interfaceIndex = interfaceIndex
        self.address = address
        self.prefixLength = prefixLength
    }
}

/// `rtm_type` (include/uapi/linux/rtnetlink.h, RTN_*).
public enum RouteType: Hashable, Sendable {
    case unicast, local, broadcast, anycast, multicast, blackhole, unreachable, prohibit, `throw`, nat
    case unknown(UInt8)

    public init(rawValue: UInt8) {
        switch rawValue {
        case 1: self = .unicast
        case 2: self = .local
        case 3: self = .broadcast
        case 4: self = .anycast
        case 5: self = .multicast
        case 6: self = .blackhole
        case 7: self = .unreachable
        case 8: self = .prohibit
        case 9: self = .throw
        case 10: self = .nat
        default: self = .unknown(rawValue)
        }
    }
}

/// `rtm_scope` (RT_SCOPE_*).
public enum RouteScope: Hashable, Sendable {
    case universe, site, link, host, nowhere
    case unknown(UInt8)

    public init(rawValue: UInt8) {
        switch rawValue {
        case 0: self = .universe
        case 200: self = .site
        case 253: self = .link
        case 254: self = .host
        case 255: self = .nowhere
        default: self = .unknown(rawValue)
        }
    }
}

/// One next hop of a route (RTA_MULTIPATH entries, or the single RTA_GATEWAY/RTA_OIF).
public struct NextHop: Hashable, Sendable {
    public var gateway: IPv4Address?
    public var interfaceIndex: Int32
    /// The multipath weight as `ip route` prints and takes it (1…256): rtnh_hops + 1.
    public var weight: UInt16

    public init(gateway: IPv4Address?, interfaceIndex: Int32, weight: UInt16) {
        self.gateway = gateway
        self.interfaceIndex = interfaceIndex
        self.weight = weight
    }
}

/// One IPv4 route of the main table (RTM_NEWROUTE, RT_TABLE_MAIN).
public struct RouteInfo: Hashable, Sendable {
    public var destination: IPv4Prefix
    /// The first next hop's gateway; nil for directly connected routes.
    public var gateway: IPv4Address?
    /// The first next hop's interface; 0 for routes without one (blackhole, unreachable).
    public var outputInterface: Int32
    /// RTA_PREFSRC.
    public var preferredSource: IPv4Address?
    /// RTA_PRIORITY (the metric).
    public var priority: UInt32
    public var scope: RouteScope
    public var type: RouteType
    /// Every next hop; more than one for multipath routes.
    public var nextHops: [NextHop]

    public init(
        destination: IPv4Prefix, gateway: IPv4Address?, outputInterface: Int32, preferredSource: IPv4Address?,
        priority: UInt32, scope: RouteScope, type: RouteType, nextHops: [NextHop]
    ) {
        self.destination = destination
        self.gateway = gateway
        self.outputInterface = outputInterface
        self.preferredSource = preferredSource
        self.priority = priority
        self.scope = scope
        self.type = type
        self.nextHops = nextHops
    }
}

/// `ndm_state` bits (NUD_*, include/uapi/linux/neighbour.h).
public struct NeighbourState: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let incomplete = NeighbourState(rawValue: 0x01)
    public static let reachable = NeighbourState(rawValue: 0x02)
    public static let stale = NeighbourState(rawValue: 0x04)
    public static let delay = NeighbourState(rawValue: 0x08)
    public static let probe = NeighbourState(rawValue: 0x10)
    public static let failed = NeighbourState(rawValue: 0x20)
    public static let noARP = NeighbourState(rawValue: 0x40)
    public static let permanent = NeighbourState(rawValue: 0x80)

    /// NUD_VALID (include/net/neighbour.h): the MAC may be used to send.
    public var isValid: Bool {
        !intersection([.permanent, .noARP, .reachable, .probe, .stale, .delay]).isEmpty
    }

    public var description: String {
        let names: [(NeighbourState, String)] = [
            (.incomplete, "INCOMPLETE"), (.reachable, "REACHABLE"), (.stale, "STALE"), (.delay, "DELAY"),
            (.probe, "PROBE"), (.failed, "FAILED"), (.noARP, "NOARP"), (.permanent, "PERMANENT"),
        ]
        let s = names.filter { contains($0.0) }.map(\.1)
        return s.isEmpty ? "NONE" : s.joined(separator: "|")
    }
}

/// One IPv4 neighbour (ARP) entry (RTM_NEWNEIGH, AF_INET).
public struct NeighbourInfo: Hashable, Sendable {
    public var interfaceIndex: Int32
    public var address: IPv4Address
    /// Nil while the entry is INCOMPLETE or FAILED.
    public var mac: MACAddress?
    public var state: NeighbourState

    public init(interfaceIndex: Int32, address: IPv4Address, mac: MACAddress?, state: NeighbourState) {
        self.interfaceIndex = interfaceIndex
        self.address = address
        self.mac = mac
        self.state = state
    }
}

/// A consistent-enough picture of the kernel's L2/L3 state in one network namespace.
public struct KernelNetworkState: Hashable, Sendable {
    public var links: [LinkInfo]
    public var addresses: [AddressInfo]
    public var routes: [RouteInfo]
    public var neighbours: [NeighbourInfo]

    public init(links: [LinkInfo] = [], addresses: [AddressInfo] = [], routes: [RouteInfo] = [], neighbours: [NeighbourInfo] = []) {
        self.links = links
        self.addresses = addresses
        self.routes = routes
        self.neighbours = neighbours
    }

    public func link(named name: String) -> LinkInfo? { links.first { $0.name == name } }
    public func link(index: Int32) -> LinkInfo? { links.first { $0.index == index } }
    public func neighbour(_ address: IPv4Address, interfaceIndex: Int32) -> NeighbourInfo? {
        neighbours.first { $0.address == address && $0.interfaceIndex == interfaceIndex }
    }

    /// Dumps links, addresses, routes and neighbours of the calling thread's namespace.
    public static func read() throws(NetlinkError) -> KernelNetworkState {
        let socket = try RouteSocket()
        return try socket.dumpState()
    }
}

// MARK: - libnl

/// A connected NETLINK_ROUTE socket from libnl. Not thread-safe; one owner.
final class RouteSocket {
    let sk: OpaquePointer

    init() throws(NetlinkError) {
        guard let s = nl_socket_alloc() else { throw NetlinkError(code: -NLE_NOMEM, operation: "nl_socket_alloc", message: "out of memory") }
        let r = nl_connect(s, NETLINK_ROUTE)
        guard r >= 0 else {
            nl_socket_free(s)
            throw NetlinkError(libnl: r, "nl_connect(NETLINK_ROUTE)")
        }
        sk = s
    }

    deinit { nl_socket_free(sk) }

    var descriptor: Int32 { nl_socket_get_fd(sk) }

    /// IFF_LOWER_UP (include/uapi/linux/if.h, 1<<16); glibc's <net/if.h> lacks it.
    static let iffLowerUp: UInt32 = 0x10000

    func dumpState() throws(NetlinkError) -> KernelNetworkState {
        KernelNetworkState(links: try links(), addresses: try addresses(), routes: try routes(), neighbours: try neighbours())
    }

    /// Runs `alloc` to fill a cache, walks it with `visit`, frees it.
    private func withCache(_ what: String, _ alloc: (inout OpaquePointer?) -> Int32, _ visit: (OpaquePointer) -> Void) throws(NetlinkError) {
        var cache: OpaquePointer? = nil
        let r = alloc(&cache)
        guard r >= 0, let c = cache else { throw NetlinkError(libnl: r, what) }
        defer { nl_cache_free(c) }
        var obj = nl_cache_get_first(c)
        while let o = obj {
            visit(o)
            obj = nl_cache_get_next(o)
        }
    }

    func links() throws(NetlinkError) -> [LinkInfo] {
        var out: [LinkInfo] = []
        try withCache("rtnl_link_alloc_cache", { rtnl_link_alloc_cache(sk, AF_UNSPEC, &$0) }) { o in
            let l = ferry_nl_as_link(o)
            let flags = rtnl_link_get_flags(l)
            out.append(LinkInfo(
                index: rtnl_link_get_ifindex(l),
                name: rtnl_link_get_name(l).map { String(cString: $0) } ?? "",
                mac: macAddress(rtnl_link_get_addr(l)) ?? .zero,
                mtu: rtnl_link_get_mtu(l),
                isUp: flags & UInt32(IFF_UP) != 0,
                isRunning: flags & Self.iffLowerUp != 0,
                isLoopback: flags & UInt32(IFF_LOOPBACK) != 0,
                kind: rtnl_link_get_type(l).map { String(cString: $0) }
            ))
        }
        return out.sorted { $0.index < $1.index }
    }

    func addresses() throws(NetlinkError) -> [AddressInfo] {
        var out: [AddressInfo] = []
        try withCache("rtnl_addr_alloc_cache", { rtnl_addr_alloc_cache(sk, &$0) }) { o in
            let a = ferry_nl_as_addr(o)
            guard rtnl_addr_get_family(a) == AF_INET, let local = ipv4Address(rtnl_addr_get_local(a)) else { return }
            out.append(AddressInfo(interfaceIndex: rtnl_addr_get_ifindex(a), address: local, prefixLength: UInt8(rtnl_addr_get_prefixlen(a))))
        }
        return out.sorted { ($0.interfaceIndex, $0.address.value) < ($1.interfaceIndex, $1.address.value) }
    }

    func routes() throws(NetlinkError) -> [RouteInfo] {
        var out: [RouteInfo] = []
        try withCache("rtnl_route_alloc_cache", { rtnl_route_alloc_cache(sk, AF_INET, 0, &$0) }) { o in
            let r = ferry_nl_as_route(o)
            guard rtnl_route_get_table(r) == UInt32(RT_TABLE_MAIN.rawValue) else { return }
            // The default route's RTA_DST is absent: libnl then reports an empty address.
            let dstAddr = rtnl_route_get_dst(r)
            let dst = ipv4Address(dstAddr) ?? .any
            let plen = dstAddr.map { Int(nl_addr_get_prefixlen($0)) } ?? 0
            guard let prefix = IPv4Prefix(address: dst, length: plen) else { return }
            var hops: [NextHop] = []
            let n = rtnl_route_get_nnexthops(r)
            for i in 0..<max(n, 0) {
                guard let nh = rtnl_route_nexthop_n(r, i) else { continue }
                hops.append(NextHop(
                    gateway: ipv4Address(rtnl_route_nh_get_gateway(nh)),
                    interfaceIndex: rtnl_route_nh_get_ifindex(nh),
                    // libnl returns the raw rtnh_hops, which is the weight minus one.
                    weight: UInt16(rtnl_route_nh_get_weight(nh)) + 1
                ))
            }
            out.append(RouteInfo(
                destination: prefix,
                gateway: hops.first?.gateway,
                outputInterface: hops.first?.interfaceIndex ?? 0,
                preferredSource: ipv4Address(rtnl_route_get_pref_src(r)),
                priority: rtnl_route_get_priority(r),
                scope: RouteScope(rawValue: rtnl_route_get_scope(r)),
                type: RouteType(rawValue: rtnl_route_get_type(r)),
                nextHops: hops
            ))
        }
        return out.sorted { ($0.destination.address.value, $0.destination.length, $0.priority) < ($1.destination.address.value, $1.destination.length, $1.priority) }
    }

    func neighbours() throws(NetlinkError) -> [NeighbourInfo] {
        var out: [NeighbourInfo] = []
        try withCache("rtnl_neigh_alloc_cache", { rtnl_neigh_alloc_cache(sk, &$0) }) { o in
            let n = ferry_nl_as_neigh(o)
            guard rtnl_neigh_get_family(n) == AF_INET, let dst = ipv4Address(rtnl_neigh_get_dst(n)) else { return }
            let state = NeighbourState(rawValue: UInt16(truncatingIfNeeded: rtnl_neigh_get_state(n)))
            let mac = macAddress(rtnl_neigh_get_lladdr(n))
            out.append(NeighbourInfo(
                interfaceIndex: rtnl_neigh_get_ifindex(n),
                address: dst,
                // An entry that is not NUD_VALID may still carry a stale lladdr; do not offer it.
                mac: state.isValid ? mac : nil,
                state: state
            ))
        }
        return out.sorted { ($0.interfaceIndex, $0.address.value) < ($1.interfaceIndex, $1.address.value) }
    }

    /// Sends RTM_NEWNEIGH with NTF_USE for `address` on `interfaceIndex` and waits for
    /// the kernel's acknowledgement.
    ///
    /// In net/core/neighbour.c, neigh_add() creates the entry when NLM_F_CREATE is set
    /// (___neigh_create) and then, because NTF_USE is set, calls neigh_event_send()
    /// instead of __neigh_update(): exactly what a packet routed to that next hop would
    /// do. An entry in NUD_NONE/FAILED goes INCOMPLETE and ARP solicits are sent; STALE
    /// goes DELAY then PROBE. The state in the request is NUD_NONE, not `ip neigh`'s
    /// default NUD_PERMANENT, because a permanent flag at creation would exempt the entry
    /// from garbage collection (exempt_from_gc = ndm_permanent).
    func requestNeighbourResolution(address: IPv4Address, interfaceIndex: Int32) throws(NetlinkError) {
        guard let msg = nlmsg_alloc_simple(Int32(RTM_NEWNEIGH), NLM_F_CREATE | NLM_F_REPLACE) else {
            throw NetlinkError(code: -NLE_NOMEM, operation: "nlmsg_alloc_simple", message: "out of memory")
        }
        defer { nlmsg_free(msg) }
        var ndm = ndmsg()
        ndm.ndm_family = UInt8(AF_INET)
        ndm.ndm_ifindex = interfaceIndex
        ndm.ndm_state = 0  // NUD_NONE
        ndm.ndm_flags = UInt8(NTF_USE)
        ndm.ndm_type = UInt8(RTN_UNICAST)
        var r = nlmsg_append(msg, &ndm, MemoryLayout<ndmsg>.size, Int32(NLMSG_ALIGNTO))
        guard r >= 0 else { throw NetlinkError(libnl: r, "nlmsg_append(ndmsg)") }
        var dst = address.value.bigEndian
        r = nla_put(msg, Int32(NDA_DST), 4, &dst)
        guard r >= 0 else { throw NetlinkError(libnl: r, "nla_put(NDA_DST)") }
        r = nl_send_auto(sk, msg)
        guard r >= 0 else { throw NetlinkError(libnl: r, "nl_send_auto(RTM_NEWNEIGH)") }
        r = nl_wait_for_ack(sk)
        guard r >= 0 else { throw NetlinkError(libnl: r, "RTM_NEWNEIGH NTF_USE \(address) ifindex \(interfaceIndex)") }
    }
}

extension NetlinkError {
    init(libnl code: Int32, _ operation: String) {
        self.init(code: code, operation: operation, message: String(cString: nl_geterror(code)))
    }
}

/// Asks the kernel to resolve `address` on `interfaceIndex` (RTM_NEWNEIGH with NTF_USE,
/// what `ip neigh replace ADDR dev DEV use` sends) instead of guessing a MAC. The answer
/// arrives later as a neighbour notification: watch it with NetlinkMonitor.
/// Runs in the calling thread's network namespace.
public func requestNeighbourResolution(address: IPv4Address, interfaceIndex: Int32) throws(NetlinkError) {
    try RouteSocket().requestNeighbourResolution(address: address, interfaceIndex: interfaceIndex)
}

private func ipv4Address(_ a: OpaquePointer?) -> IPv4Address? {
    guard let a, nl_addr_get_family(a) == AF_INET, nl_addr_get_len(a) == 4, let p = nl_addr_get_binary_addr(a) else { return nil }
    let b = p.assumingMemoryBound(to: UInt8.self)
    return IPv4Address(b[0], b[1], b[2], b[3])
}

private func macAddress(_ a: OpaquePointer?) -> MACAddress? {
    guard let a, nl_addr_get_len(a) == 6, let p = nl_addr_get_binary_addr(a) else { return nil }
    let b = p.assumingMemoryBound(to: UInt8.self)
    return MACAddress(b[0], b[1], b[2], b[3], b[4], b[5])
}
