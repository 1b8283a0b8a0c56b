import FerryPacket

// The kernel's routing state as the pipeline sees it. The agent reads it through netlink
// (FerryLinux) and builds these immutable values off the packet path; the pipeline only
// indexes them (Katran's rule: the data plane indexes, the control plane computes).

/// One IPv4 route of the main table, reduced to what forwarding needs.
public struct Route: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        /// Forward: on-link when `gateway` is nil, else via the gateway.
        case unicast
        /// Addressed to this node (the kernel's `local` table entries).
        case local
        /// blackhole / unreachable / prohibit: drop.
        case blackhole
    }
    public var destination: IPv4Prefix
    public var gateway: IPv4Address?
    public var interface: InterfaceIndex
    public var preferredSource: IPv4Address?
    public var kind: Kind
    /// Lower wins among routes of the same prefix (the kernel's priority/metric).
    public var metric: UInt32

    public init(destination: IPv4Prefix, gateway: IPv4Address? = nil, interface: InterfaceIndex,
                preferredSource: IPv4Address? = nil, kind: Kind = .unicast, metric: UInt32 = 0) {
        self.destination = destination
        self.gateway = gateway
        self.interface = interface
        self.preferredSource = preferredSource
        self.kind = kind
        self.metric = metric
    }
}

/// Longest-prefix match over a fixed set of routes: one flat hash map keyed by (prefix
/// length, masked address), probed from the longest length in use down. A node has a
/// handful of lengths (/32 pod routes, /24 pod CIDRs, the underlay /24, /0), so a lookup
/// is a few probes over flat memory and never allocates.
public struct RouteTable: Sendable {
    public let routes: [Route]
    @usableFromInline let lengths: [UInt8]      // non-empty lengths, longest first
    @usableFromInline let index: FixedHashMap   // (length << 32 | masked address) → route

    public init(routes: [Route]) {
        var best: [UInt64: Int] = [:]
        var kept: [Route] = []
        for r in routes {
            let key = UInt64(r.destination.length) << 32 | UInt64(r.destination.address.value)
            if let existing = best[key] {
                // Same prefix twice: the lower metric wins, as in the kernel's FIB.
                if r.metric < kept[existing].metric { kept[existing] = r }
                continue
            }
            best[key] = kept.count
            kept.append(r)
        }
        self.routes = kept
        self.index = FixedHashMap(best.map { ($0.key, Int32($0.value)) })
        self.lengths = Array(Set(kept.map(\.destination.length))).sorted(by: >)
    }

    @inlinable public func lookup(_ destination: IPv4Address) -> Route? {
        for len in lengths {
            let key = UInt64(len) << 32 | UInt64(destination.value & IPv4Prefix.mask(Int(len)))
            if let i = index.value(for: key) { return routes[Int(i)] }
        }
        return nil
    }
}

/// The neighbour (ARP) table: (interface, next hop) → MAC, for reachable, stale, delay,
/// probe and permanent entries. Incomplete and failed entries are left out: their MAC is
/// not usable.
public struct NeighbourTable: Sendable {
    @usableFromInline let macs: [MACAddress]
    @usableFromInline let keys: [(InterfaceIndex, IPv4Address)]
    @usableFromInline let index: FixedHashMap   // (ifindex << 32 | address) → mac

    public init(_ entries: [(InterfaceIndex, IPv4Address, MACAddress)] = []) {
        var slot: [UInt64: Int] = [:]
        var macs: [MACAddress] = []
        var keys: [(InterfaceIndex, IPv4Address)] = []
        for (i, a, m) in entries {
            let k = NeighbourTable.key(i, a)
            if let s = slot[k] { macs[s] = m; continue }
            slot[k] = macs.count
            macs.append(m)
            keys.append((i, a))
        }
        self.macs = macs
        self.keys = keys
        self.index = FixedHashMap(slot.map { ($0.key, Int32($0.value)) })
    }

    @inlinable static func key(_ interface: InterfaceIndex, _ address: IPv4Address) -> UInt64 {
        UInt64(UInt32(bitPattern: interface.rawValue)) << 32 | UInt64(address.value)
    }

    @inlinable public func mac(for address: IPv4Address, on interface: InterfaceIndex) -> MACAddress? {
        guard let i = index.value(for: NeighbourTable.key(interface, address)) else { return nil }
        return macs[Int(i)]
    }

    public var count: Int { macs.count }
    public var all: [(InterfaceIndex, IPv4Address, MACAddress)] {
        zip(keys, macs).map { ($0.0, $0.1, $1) }.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
    }
}

/// An address assigned to an interface: the host address and its prefix length
/// (`10.244.1.1/24`), unlike `IPv4Prefix`, which keeps only the network.
public struct InterfaceAddress: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv4Address
    public var prefixLength: UInt8
    public init(_ address: IPv4Address, prefixLength: UInt8 = 32) {
        self.address = address
        self.prefixLength = prefixLength
    }
    public var network: IPv4Prefix { IPv4Prefix(address: address, length: Int(prefixLength))! }
    public var description: String { "\(address)/\(prefixLength)" }
}

/// An interface Ferry knows: its MAC (the source of frames it sends), addresses, and
/// whether Ferry forwards on it.
public struct InterfaceInfo: Hashable, Sendable {
    public var index: InterfaceIndex
    public var name: String
    public var mac: MACAddress
    public var mtu: Int
    public var addresses: [InterfaceAddress]
    /// Ferry has a ring on it (it is in `--interfaces` and up).
    public var isForwarding: Bool

    public init(index: InterfaceIndex, name: String, mac: MACAddress, mtu: Int = 1500,
                addresses: [InterfaceAddress] = [], isForwarding: Bool = true) {
        self.index = index
        self.name = name
        self.mac = mac
        self.mtu = mtu
        self.addresses = addresses
        self.isForwarding = isForwarding
    }

    /// The address Ferry uses as the masquerade source on this interface: the first one,
    /// as the kernel's MASQUERADE picks the interface's primary address.
    public var primaryAddress: IPv4Address? { addresses.first?.address }
}

/// Interfaces by index, in a dense array (Linux ifindexes are small integers) so the
/// per-packet lookup is one bounds check.
public struct InterfaceTable: Sendable {
    /// What the packet path needs of an interface, as plain values: reading it copies no
    /// String or Array (so it retains nothing).
    public struct Port: Sendable, Equatable {
        public var mac: MACAddress
        public var primaryAddress: IPv4Address?
        public var isForwarding: Bool
        public var mtu: Int
    }
    @usableFromInline let slots: [InterfaceInfo?]
    @usableFromInline let ports: [Port?]
    public let all: [InterfaceInfo]
    /// Every address on every interface: "addressed to this node".
    @usableFromInline let localAddresses: Set<UInt32>

    public init(_ interfaces: [InterfaceInfo]) {
        let maxIndex = interfaces.map { Int($0.index.rawValue) }.max() ?? 0
        var slots = [InterfaceInfo?](repeating: nil, count: max(maxIndex, 0) + 1)
        var local = Set<UInt32>()
        for i in interfaces where i.index.rawValue >= 0 {
            slots[Int(i.index.rawValue)] = i
            for a in i.addresses { local.insert(a.address.value) }
        }
        self.slots = slots
        self.ports = slots.map { i in
            i.map { Port(mac: $0.mac, primaryAddress: $0.primaryAddress, isForwarding: $0.isForwarding, mtu: $0.mtu) }
        }
        self.all = interfaces.sorted { $0.index < $1.index }
        self.localAddresses = local
    }

    @inlinable public subscript(index: InterfaceIndex) -> InterfaceInfo? {
        let i = Int(index.rawValue)
        return i >= 0 && i < slots.count ? slots[i] : nil
    }

    /// The hot-path view of an interface; nil for an index Ferry does not know.
    @inlinable public func port(_ index: InterfaceIndex) -> Port? {
        let i = Int(index.rawValue)
        return i >= 0 && i < ports.count ? ports[i] : nil
    }

    @inlinable public func isLocal(_ address: IPv4Address) -> Bool {
        localAddresses.contains(address.value)
    }
}
