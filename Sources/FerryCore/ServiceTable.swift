import FerryPacket

/// The endpoints of one Service port, for introspection (`ferry service list`) and for
/// the pipeline's sets.
public struct ServicePortEndpoints: Sendable {
    /// See `Frontend.servicePortIndex`.
    public let servicePortIndex: Int
    public let service: ServiceName
    public let port: ServicePortSpec
    /// Every endpoint matched to this port, whatever its conditions, sorted by (address, port).
    public let endpoints: [Backend]
    /// The usable endpoints for traffic policy Cluster (`EndpointSelection.categorize`).
    public let cluster: [Backend]
    /// The usable endpoints on this node, for traffic policy Local.
    public let local: [Backend]
}

/// What a build did, for logs and the admin API.
public struct ServiceTableBuildStatistics: Hashable, Sendable {
    public var services = 0
    public var servicePorts = 0
    public var frontends = 0
    /// Frontends whose address:port:protocol was already taken by an earlier one (two
    /// Services claiming the same external IP and port); the earlier one keeps it.
    public var shadowedFrontends = 0
    /// Maglev tables populated in this build.
    public var maglevTablesBuilt = 0
    /// Maglev tables taken unchanged from the previous table (same backend list).
    public var maglevTablesReused = 0
    /// Backend sets that shared a table with an identical set in the same build.
    public var maglevTablesShared = 0
    /// Bytes held by this table's distinct Maglev tables.
    public var maglevBytes = 0
}

/// Runs the Maglev table fills of one build, which are independent of each other
/// (each reads its own backend list and writes its own table). FerryCore has no threads
/// (stdlib only), so the default runs them one after another; the control plane passes
/// one that fans them out (`DispatchQueue.concurrentPerform`). `body(i)` for every `i`
/// in `0..<iterations` must have returned when `run` returns.
public struct TableBuildExecutor: Sendable {
    public let run: @Sendable (_ iterations: Int, _ body: @Sendable (Int) -> Void) -> Void

    public init(_ run: @escaping @Sendable (_ iterations: Int, _ body: @Sendable (Int) -> Void) -> Void) {
        self.run = run
    }

    /// In order, on the calling thread.
    public static let serial = TableBuildExecutor { iterations, body in
        for i in 0..<iterations { body(i) }
    }
}

/// The Services this node proxies, indexed for the per-packet path: frontend lookup by
/// destination, and backend selection per Service port.
///
/// An immutable snapshot (STYLE.md rule 9): the control plane builds a new one when a
/// Service or EndpointSlice changes and publishes it; workers pick it up between
/// batches. Every lookup is O(1) and allocation-free.
///
/// Building never fails: its input was validated by the control-plane loader. Where
/// the input is contradictory anyway (two Services claiming one address:port), the
/// rule is stated at the point it is applied.
public final class ServiceTable: Sendable {
    /// Every frontend; `Frontend.id` is its position.
    public let frontends: [Frontend]
    /// The proxied Services (`ServiceSpec.isProxied`), sorted by name.
    public let services: [ServiceSpec]
    /// Every Service port of the proxied Services, in Service order then port order.
    public let servicePorts: [ServicePortEndpoints]
    public let node: NodeIdentity
    public let cluster: ClusterConfig
    public let strategy: BackendSelector.Strategy
    public let statistics: ServiceTableBuildStatistics

    // Hot-path indexes.
    let exactFrontends: [FrontendKey: Int]
    let nodePortFrontends: [FrontendKey: Int]
    let serviceAddresses: Set<IPv4Address>
    /// Frontend id → position in `servicePorts` / `clusterSets` / `localSets`.
    let portPositionByFrontend: [Int]
    let clusterSets: [BackendSet]
    let localSets: [BackendSet]

    // Carried to the next generation.
    let servicePortIndexByIdentity: [ServicePortIdentity: Int]
    let nextServicePortIndex: Int
    let maglevTablesByBackends: [[UInt64]: MaglevTable]
    let portRangeByService: [ServiceName: Range<Int>]
    /// Each Service's slices, and the Maglev keys of each position's sets: with
    /// `servicePorts`, `clusterSets` and `localSets` they let the next build take a
    /// Service whose ports and slices did not change as it is, without resolving its
    /// endpoints or looking its tables up again (a reload usually changes a few Services
    /// out of thousands).
    let slicesByService: [ServiceName: [EndpointSliceSpec]]
    let setKeys: [SetKeys]

    struct SetKeys: Sendable {
        /// The Maglev keys of the Cluster / Local set; empty when the set has no table.
        let cluster: [UInt64]
        let local: [UInt64]
        /// The Local set is the Cluster set (every usable endpoint is on this node).
        let localIsCluster: Bool
    }

    struct BackendSet: Sendable {
        let backends: [Backend]
        let selector: BackendSelector
    }

    /// kube-proxy's `ServicePortName`: what makes a Service port "the same" across reloads.
    struct ServicePortIdentity: Hashable, Sendable {
        let service: ServiceName
        let portName: String
        let `protocol`: ServiceProtocol
    }

    /// Builds the table.
    ///
    /// - Parameters:
    ///   - services: every Service; only proxied ones (`isProxied`) get frontends.
    ///   - slices: every EndpointSlice; slices of unknown Services are ignored.
    ///   - node: this node, for the Local sets.
    ///   - strategy: how backends are chosen (must be valid, see `Strategy.isValid`).
    ///   - previous: the table this one replaces. Its Service port indices are kept, and
    ///     its Maglev tables are reused for backend lists that did not change, so that a
    ///     one-endpoint change costs one table, not all of them.
    ///   - executor: runs the Maglev fills this build needs (see `TableBuildExecutor`).
    public init(services: [ServiceSpec], slices: [EndpointSliceSpec], node: NodeIdentity,
                cluster: ClusterConfig, strategy: BackendSelector.Strategy = .maglev(),
                reusing previous: ServiceTable? = nil, executor: TableBuildExecutor = .serial) {
        precondition(strategy.isValid, "invalid backend selection strategy \(strategy)")
        self.node = node
        self.cluster = cluster
        self.strategy = strategy

        // Services in name order so frontend ids, port positions and the winner of an
        // address clash do not depend on input order. A repeated name keeps the first.
        var seen = Set<ServiceName>()
        let proxied = services.filter(\.isProxied).sorted { $0.name < $1.name }.filter { seen.insert($0.name).inserted }

        var slicesByService: [ServiceName: [EndpointSliceSpec]] = [:]
        for slice in slices where seen.contains(slice.service) {
            slicesByService[slice.service, default: []].append(slice)
        }

        var stats = ServiceTableBuildStatistics()
        stats.services = proxied.count

        let previousIndices = previous?.servicePortIndexByIdentity ?? [:]
        var nextIndex = previous?.nextServicePortIndex ?? 0
        // A table is reusable only if it was built with the same table size.
        let previousTables = previous?.strategy == strategy ? previous?.maglevTablesByBackends ?? [:] : [:]
        var tables: [[UInt64]: MaglevTable] = [:]
        var fresh: [[UInt64]: MaglevTable] = [:]
        // A Service's resolved ports carry over when the table size and the node (which
        // decides the Local sets) are the same, and its ports and slices are equal.
        let carried = previous.flatMap { $0.strategy == strategy && $0.node.name == node.name ? $0 : nil }

        /// `keys`: the set's Maglev keys (empty when it needs no table).
        func makeSet(_ backends: [Backend], keys: [UInt64]) -> BackendSet {
            guard case .maglev = strategy, backends.count > 1 else {
                return BackendSet(backends: backends, selector: BackendSelector(strategy: strategy, keys: backends.map(\.key)))
            }
            let table: MaglevTable
            if let shared = tables[keys] {
                table = shared
                stats.maglevTablesShared += 1
            } else if let old = previousTables[keys] {
                table = old
                tables[keys] = old
                stats.maglevTablesReused += 1
                stats.maglevBytes += old.size * old.bytesPerSlot
            } else {
                // Filled before the sets are made (see `pending` below).
                table = fresh[keys]!
                tables[keys] = table
                stats.maglevTablesBuilt += 1
                stats.maglevBytes += table.size * table.bytesPerSlot
            }
            return BackendSet(backends: backends,
                              selector: BackendSelector(strategy: strategy, backendCount: backends.count, table: table))
        }

        var frontends: [Frontend] = []
        var servicePorts: [ServicePortEndpoints] = []
        var exact: [FrontendKey: Int] = [:]
        var nodePorts: [FrontendKey: Int] = [:]
        var addresses = Set<IPv4Address>()
        var portPositionByFrontend: [Int] = []
        var clusterSets: [BackendSet] = []
        var localSets: [BackendSet] = []
        var indexByIdentity: [ServicePortIdentity: Int] = [:]
        var portRangeByService: [ServiceName: Range<Int>] = [:]
        // For each position, the previous table's position of the same Service port when
        // it carries over unchanged.
        var carriedPosition: [Int?] = []
        let portCount = proxied.reduce(0) { $0 + $1.ports.count }
        servicePorts.reserveCapacity(portCount)
        carriedPosition.reserveCapacity(portCount)
        clusterSets.reserveCapacity(portCount)
        localSets.reserveCapacity(portCount)
        indexByIdentity.reserveCapacity(portCount)
        exact.reserveCapacity(portCount)

        for service in proxied {
            let firstPort = servicePorts.count
            let serviceSlices = slicesByService[service.name] ?? []
            var previousFirst: Int?
            if let carried, let range = carried.portRangeByService[service.name], range.count == service.ports.count,
               zip(range, service.ports).allSatisfy({ carried.servicePorts[$0].port == $1 }),
               carried.slicesByService[service.name] ?? [] == serviceSlices {
                previousFirst = range.lowerBound
            }
            for (portOffset, port) in service.ports.enumerated() {
                let position = servicePorts.count
                let identity = ServicePortIdentity(service: service.name, portName: port.name ?? "", protocol: port.protocol)
                // A repeated (name, protocol) within one Service is invalid upstream; if it
                // gets here it shares the first one's index (and affinity).
                let spIndex: Int
                if let known = indexByIdentity[identity] ?? previousIndices[identity] {
                    spIndex = known
                } else {
                    spIndex = nextIndex
                    nextIndex += 1
                }
                indexByIdentity[identity] = spIndex

                if let carried, let first = previousFirst {
                    let old = carried.servicePorts[first + portOffset]
                    servicePorts.append(ServicePortEndpoints(servicePortIndex: spIndex, service: service.name, port: port,
                                                             endpoints: old.endpoints, cluster: old.cluster, local: old.local))
                    carriedPosition.append(first + portOffset)
                } else {
                    let endpoints = EndpointSelection.endpoints(for: port, in: serviceSlices, nodeName: node.name)
                    let (clusterBackends, localBackends) = EndpointSelection.categorize(endpoints)
                    servicePorts.append(ServicePortEndpoints(servicePortIndex: spIndex, service: service.name, port: port,
                                                             endpoints: endpoints, cluster: clusterBackends, local: localBackends))
                    carriedPosition.append(nil)
                }

                func add(_ kind: FrontendKind, _ address: IPv4Address, _ dport: UInt16, _ ranges: [IPv4Prefix] = []) {
                    let id = frontends.count
                    let policy = kind == .clusterIP ? service.internalTrafficPolicy : service.externalTrafficPolicy
                    frontends.append(Frontend(id: id, kind: kind, service: service.name, portName: port.name,
                                              protocol: port.protocol, address: address, port: dport,
                                              trafficPolicy: policy, affinity: service.sessionAffinity,
                                              sourceRanges: ranges, healthCheckNodePort: service.healthCheckNodePort,
                                              servicePortIndex: spIndex))
                    portPositionByFrontend.append(position)
                    let key = FrontendKey(address: address, protocol: port.protocol, port: dport)
                    if kind == .nodePort {
                        if nodePorts[key] == nil { nodePorts[key] = id } else { stats.shadowedFrontends += 1 }
                    } else {
                        // Two Services on one external or LB address:port: the first in name
                        // order keeps it (kube-proxy's rule order makes the same kind of choice).
                        if exact[key] == nil { exact[key] = id } else { stats.shadowedFrontends += 1 }
                        addresses.insert(address)
                    }
                }

                if let clusterIP = service.clusterIP { add(.clusterIP, clusterIP, port.port) }
                for ip in service.externalIPs { add(.externalIP, ip, port.port) }
                if service.type == .loadBalancer {
                    for ip in service.loadBalancerIPs { add(.loadBalancer, ip, port.port, service.loadBalancerSourceRanges) }
                }
                if let nodePort = port.nodePort, service.type == .nodePort || service.type == .loadBalancer {
                    add(.nodePort, .any, nodePort)
                }
            }
            portRangeByService[service.name] = firstPort..<servicePorts.count
        }

        // The Maglev tables this build needs and the previous one does not have: every
        // distinct backend list of more than one backend. They are independent of each
        // other, so `executor` may fill them in parallel; the sets below only look up.
        var setKeys: [SetKeys] = []
        setKeys.reserveCapacity(servicePorts.count)
        let isMaglev = if case .maglev = strategy { true } else { false }
        for (position, sp) in servicePorts.enumerated() {
            if let old = carriedPosition[position] {
                setKeys.append(carried!.setKeys[old])
                continue
            }
            let cluster = isMaglev && sp.cluster.count > 1 ? sp.cluster.map(\.key) : []
            // Every endpoint on this node is usable: the Local set is the Cluster set.
            let localIsCluster = sp.local == sp.cluster
            let local = localIsCluster ? cluster : isMaglev && sp.local.count > 1 ? sp.local.map(\.key) : []
            setKeys.append(SetKeys(cluster: cluster, local: local, localIsCluster: localIsCluster))
        }
        if isMaglev {
            var pending: [[UInt64]] = []
            var queued = Set<[UInt64]>()
            for (position, keys) in setKeys.enumerated() where carriedPosition[position] == nil {
                for list in keys.localIsCluster ? [keys.cluster] : [keys.cluster, keys.local] where !list.isEmpty {
                    if previousTables[list] == nil, queued.insert(list).inserted { pending.append(list) }
                }
            }
            if !pending.isEmpty {
                let size = strategy.maglevTableSize
                var filled = [MaglevTable?](repeating: nil, count: pending.count)
                filled.withUnsafeMutableBufferPointer { out in
                    let slots = TableSlots(base: out.baseAddress!)
                    let lists = pending
                    executor.run(lists.count) { i in slots.base[i] = MaglevTable(keys: lists[i], size: size) }
                }
                fresh.reserveCapacity(pending.count)
                for (keys, table) in zip(pending, filled) { fresh[keys] = table! }
            }
        }
        // A carried set keeps its table; it is registered under its keys so that the
        // next build, and equal sets in this one, find it.
        func register(_ keys: [UInt64], _ set: BackendSet) {
            guard !keys.isEmpty, let table = set.selector.maglevTable else { return }
            if tables[keys] != nil {
                stats.maglevTablesShared += 1
            } else {
                tables[keys] = table
                stats.maglevTablesReused += 1
                stats.maglevBytes += table.size * table.bytesPerSlot
            }
        }
        for (position, sp) in servicePorts.enumerated() {
            if let old = carriedPosition[position], let carried {
                let keys = setKeys[position]
                register(keys.cluster, carried.clusterSets[old])
                if !keys.localIsCluster { register(keys.local, carried.localSets[old]) }
                clusterSets.append(carried.clusterSets[old])
                localSets.append(carried.localSets[old])
                continue
            }
            let clusterSet = makeSet(sp.cluster, keys: setKeys[position].cluster)
            let localSet = setKeys[position].localIsCluster ? clusterSet : makeSet(sp.local, keys: setKeys[position].local)
            clusterSets.append(clusterSet)
            localSets.append(localSet)
        }

        stats.servicePorts = servicePorts.count
        stats.frontends = frontends.count
        self.frontends = frontends
        self.services = proxied
        self.servicePorts = servicePorts
        self.statistics = stats
        exactFrontends = exact
        nodePortFrontends = nodePorts
        serviceAddresses = addresses
        self.portPositionByFrontend = portPositionByFrontend
        self.clusterSets = clusterSets
        self.localSets = localSets
        // Indices of Service ports that disappeared are dropped here and never handed out
        // again (`nextServicePortIndex` only grows), so a stale affinity entry can never
        // be read as another Service's.
        servicePortIndexByIdentity = indexByIdentity
        nextServicePortIndex = nextIndex
        maglevTablesByBackends = tables
        self.portRangeByService = portRangeByService
        self.slicesByService = slicesByService
        self.setKeys = setKeys
    }

    /// An empty table (no Services), the state before the first load.
    public convenience init(node: NodeIdentity, cluster: ClusterConfig, strategy: BackendSelector.Strategy = .maglev()) {
        self.init(services: [], slices: [], node: node, cluster: cluster, strategy: strategy)
    }

    // MARK: Per-packet lookups (O(1), allocation-free)

    /// The frontend for a destination ClusterIP, external IP or load-balancer IP.
    @inline(__always)
    public func lookup(address: IPv4Address, protocol: ServiceProtocol, port: UInt16) -> Int? {
        exactFrontends[FrontendKey(address: address, protocol: `protocol`, port: port)]
    }

    /// The NodePort frontend for a port, whatever node address it arrived on (the caller
    /// checks that the destination is one of the node's NodePort addresses).
    @inline(__always)
    public func lookupNodePort(protocol: ServiceProtocol, port: UInt16) -> Int? {
        nodePortFrontends[FrontendKey(address: .any, protocol: `protocol`, port: port)]
    }

    /// Whether `address` is a ClusterIP, external IP or load-balancer IP of some Service.
    /// The pipeline uses it to drop, rather than route, a packet to a VIP on a port or
    /// protocol no Service uses, and fragments to a VIP.
    @inline(__always)
    public func isServiceAddress(_ address: IPv4Address) -> Bool {
        serviceAddresses.contains(address)
    }

    @inline(__always)
    func backendSet(frontend: Int, set: BackendSetKind) -> BackendSet {
        let position = portPositionByFrontend[frontend]
        return set == .cluster ? clusterSets[position] : localSets[position]
    }

    /// The number of usable backends of a frontend's Service port in `set`.
    public func backendCount(frontend: Int, set: BackendSetKind) -> Int {
        backendSet(frontend: frontend, set: set).backends.count
    }

    /// Chooses a backend for a new flow, or nil when `set` is empty. `hash` is
    /// `flowHash(...)` for Maglev, a random number for `.random`.
    @inline(__always)
    public func selectBackend(frontend: Int, set: BackendSetKind, hash: UInt32) -> Backend? {
        // Index the stored arrays in place rather than copying a `BackendSet` out: the
        // copy would retain and release its arrays and table on every packet.
        let position = portPositionByFrontend[frontend]
        if set == .cluster {
            guard let i = clusterSets[position].selector.select(hash: hash) else { return nil }
            return clusterSets[position].backends[i]
        }
        guard let i = localSets[position].selector.select(hash: hash) else { return nil }
        return localSets[position].backends[i]
    }

    /// The backend `address:port` of a frontend's `set`, if it is still in it. Binary
    /// search (the set is sorted): used to check an affinity entry before following it.
    public func backend(frontend: Int, set: BackendSetKind, address: IPv4Address, port: UInt16) -> Backend? {
        let backends = backendSet(frontend: frontend, set: set).backends
        let key = MaglevTable.key(address: address, port: port)
        var low = 0
        var high = backends.count
        while low < high {
            let mid = (low + high) / 2
            let k = backends[mid].key
            if k == key { return backends[mid] }
            if k < key { low = mid + 1 } else { high = mid }
        }
        return nil
    }

    /// Whether the frontend's Service port has any usable endpoint anywhere in the
    /// cluster (kube-proxy's `hasAnyEndpoints`): the pipeline rejects with ICMP when not,
    /// and drops when only the Local set is empty.
    public func hasEndpoints(frontend: Int) -> Bool {
        !clusterSets[portPositionByFrontend[frontend]].backends.isEmpty
    }

    // MARK: Introspection

    /// The usable backends of a frontend's Service port in `set`, sorted by (address, port).
    public func backends(frontend: Int, set: BackendSetKind) -> [Backend] {
        backendSet(frontend: frontend, set: set).backends
    }

    /// The selector of a frontend's set (its strategy and Maglev table).
    public func selector(frontend: Int, set: BackendSetKind) -> BackendSelector {
        backendSet(frontend: frontend, set: set).selector
    }

    /// The Service ports of a Service, with all their endpoints and conditions.
    public func servicePorts(of service: ServiceName) -> [ServicePortEndpoints] {
        guard let range = portRangeByService[service] else { return [] }
        return Array(servicePorts[range])
    }

    /// The Service port a frontend belongs to.
    public func servicePort(frontend: Int) -> ServicePortEndpoints {
        servicePorts[portPositionByFrontend[frontend]]
    }

    /// The frontends of a Service.
    public func frontends(of service: ServiceName) -> [Frontend] {
        frontends.filter { $0.service == service }
    }
}

/// The output array of a parallel Maglev fill. Unchecked Sendable is safe here: each
/// iteration writes only its own element, nothing reads until `run` has returned, and
/// the array outlives the call (`withUnsafeMutableBufferPointer`).
private struct TableSlots: @unchecked Sendable {
    let base: UnsafeMutablePointer<MaglevTable?>
}

extension BackendSelector.Strategy {
    /// The Maglev table size, or the default for strategies without a table.
    var maglevTableSize: Int {
        if case .maglev(let size) = self { return size }
        return MaglevTable.defaultSize
    }
}
