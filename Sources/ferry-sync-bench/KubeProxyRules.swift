import FerryControlPlane
import FerryCore
import FerryPacket
import Foundation

/// The rules kube-proxy would program on one node for the same cluster Ferry loads, in
/// its two kernel modes, as full syncs and as the partial sync of a one-endpoint change.
///
/// Shapes follow kube-proxy's proxiers (pkg/proxy/iptables/proxier.go and
/// pkg/proxy/nftables/proxier.go, v1.28 onward; netns-lab/lib/kube_rules.py writes the
/// same shapes for the lab's small cluster):
/// - iptables: nat KUBE-SERVICES → KUBE-SVC-* (masquerade off-cluster sources, then the
///   `statistic --mode random --probability 1/(n-i)` cascade) → KUBE-SEP-* (hairpin
///   masquerade, DNAT); KUBE-EXT-* for NodePorts, external and LB IPs; KUBE-SVL-* for
///   Local policy; KUBE-MARK-MASQ and KUBE-POSTROUTING; filter REJECT/DROP for Services
///   without (local) endpoints. ClientIP affinity uses `-m recent`, as kube-proxy does.
///   With more than 1,000 endpoints kube-proxy is in "large cluster mode" and leaves the
///   comments off the per-endpoint rules; every size here is past that, so they do too.
///   A partial sync (MinimizeIPTablesRestore) rewrites the filter table and KUBE-SERVICES,
///   KUBE-NODEPORTS, KUBE-POSTROUTING and KUBE-MARK-MASQ in full, and only the SVC, SVL,
///   EXT and SEP chains of changed Services; it is applied with `--noflush`, and stale
///   SEP chains are deleted on a later sync in large cluster mode, not in this one.
/// - nftables: table `ip kube-proxy`, verdict maps service-ips and service-nodeports,
///   per-port service/external/local chains with `numgen random mod N vmap`, one chain
///   per endpoint. A partial sync rebuilds every set and map (flush and re-add each
///   element, as the proxier does on every sync) and rewrites only the changed Services'
///   chains; a stale endpoint chain is flushed now and deleted later.
///
/// Chain names have kube-proxy's form and length (a 16-character base32 hash for
/// iptables, 8 for nft); the hash here is two FNV-1a passes instead of SHA-256, which
/// changes nothing the kernel does.
/// Not written (the generated clusters do not use them): loadBalancerSourceRanges
/// (KUBE-FW-*), topology hints.
enum KubeProxyRules {
    static func run(_ o: Options) throws {
        let file = try o.string("file")
        let changedFile = try o.string("changed")
        let node = NodeIdentity(name: o.string("node", default: "node-0"))
        let out = try o.string("out")
        let settings = Settings(clusterCIDR: o.string("cluster-cidr", default: "10.244.0.0/16"),
                                serviceCIDR: o.string("service-cidr", default: "10.96.0.0/12"),
                                nodeAddress: o.string("node-address", default: "10.0.0.1"),
                                affinity: !o.flag("no-affinity"))
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)

        let base = try model(file, node: node)
        let changed = try model(changedFile, node: node)

        let ipBase = IPTablesRules(base, settings)
        let ipChanged = IPTablesRules(changed, settings)
        let nftBase = NFTRules(base, settings)
        let nftChanged = NFTRules(changed, settings)
        let changedServices = Set(ipChanged.blocks.keys.filter { ipChanged.blocks[$0] != ipBase.blocks[$0] })
            .union(nftChanged.blocks.keys.filter { nftChanged.blocks[$0] != nftBase.blocks[$0] })

        let files: [(String, String)] = [
            ("iptables-full.rules", ipBase.full()),
            ("iptables-partial.rules", ipChanged.partial(changed: changedServices)),
            ("nft-full.nft", nftBase.full()),
            ("nft-partial.nft", nftChanged.partial(changed: changedServices, staleFrom: nftBase)),
        ]
        var sizes: [String: Any] = [:]
        for (name, text) in files {
            try writeFile(text, to: out + "/" + name)
            var lines = 0
            for b in text.utf8 where b == 0x0A { lines += 1 }
            sizes[name] = ["bytes": text.utf8.count, "lines": lines]
        }
        printJSON([
            "files": sizes,
            "changedServices": changedServices.map(\.description).sorted(),
            "iptables": ["natChains": ipBase.natChainCount, "natRules": ipBase.natRuleCount],
            "nft": ["chains": nftBase.chainCount, "rules": nftBase.ruleCount, "elements": nftBase.elementCount],
            "largeClusterMode": base.endpointCount > 1000,
        ] as [String: Any])
    }

    struct Settings {
        var clusterCIDR: String
        var serviceCIDR: String
        var nodeAddress: String
        var affinity: Bool
    }

    /// What both modes need for one Service port.
    struct Port {
        var service: ServiceSpec
        var spec: ServicePortSpec
        /// kube-proxy's ServicePortName string: `namespace/name:port` (`namespace/name`
        /// when the port has no name).
        var name: String
        var proto: String
        var cluster: [Backend]
        var local: [Backend]
        var label: String { spec.name.map { $0.isEmpty ? String(spec.port) : $0 } ?? String(spec.port) }
    }

    struct Model {
        var ports: [Port]
        var endpointCount: Int
    }

    /// Loads, validates and resolves the endpoints per Service port with Ferry's own
    /// loader and the same kube-proxy endpoint rules the table uses (a `.random` table:
    /// no Maglev work is needed to list the endpoints).
    static func model(_ path: String, node: NodeIdentity) throws -> Model {
        let doc = try ControlPlaneLoader.load(contentsOf: path)
        let table = ServiceTable(services: doc.services, slices: doc.slices, node: node,
                                 cluster: doc.cluster ?? ClusterConfig(), strategy: .random)
        var specs: [ServiceName: ServiceSpec] = [:]
        for s in table.services { specs[s.name] = s }
        let ports = table.servicePorts.map { sp in
            let portName = (sp.port.name ?? "").isEmpty ? "\(sp.service)" : "\(sp.service):\(sp.port.name!)"
            return Port(service: specs[sp.service]!, spec: sp.port, name: portName,
                        proto: sp.port.protocol == .tcp ? "tcp" : "udp", cluster: sp.cluster, local: sp.local)
        }
        return Model(ports: ports, endpointCount: doc.endpointCount)
    }

    /// A 16-character base32 name hash, the length kube-proxy takes from SHA-256.
    static func hash(_ text: String, length: Int = 16) -> String {
        var a: UInt64 = 0xcbf2_9ce4_8422_2325, b: UInt64 = 0x84222325_cbf29ce4
        for byte in text.utf8 {
            a = (a ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            b = (b ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 ^ (b >> 29)
        }
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(length)
        var bits = a, other = b
        for i in 0..<length {
            if i == 12 { bits = other; other = 0 }
            out.append(alphabet[Int(bits & 31)])
            bits >>= 5
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// kube-proxy's iptables mode.
struct IPTablesRules {
    typealias Port = KubeProxyRules.Port
    /// Per Service: its own nat chains' declarations and rules (what a partial sync skips
    /// when the Service did not change).
    struct Block: Equatable {
        var chains: [String] = []
        var rules: [String] = []
    }
    var blocks: [ServiceName: Block] = [:]
    var order: [ServiceName] = []
    var filterChains = ["KUBE-NODEPORTS", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-PROXY-FIREWALL"]
    var filterRules: [String] = []
    var servicesRules: [String] = []
    var nodePortRules: [String] = []
    var natChainCount = 0
    var natRuleCount = 0
    let settings: KubeProxyRules.Settings
    static let masqMark = "0x4000"

    init(_ model: KubeProxyRules.Model, _ settings: KubeProxyRules.Settings) {
        self.settings = settings
        filterRules = [
            "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
            "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark \(Self.masqMark)/\(Self.masqMark) -j ACCEPT",
            "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        ]
        for port in model.ports { add(port) }
        natChainCount = 4 + blocks.values.reduce(0) { $0 + $1.chains.count }
        natRuleCount = 7 + servicesRules.count + nodePortRules.count + 1 + blocks.values.reduce(0) { $0 + $1.rules.count }
    }

    static func quote(_ s: String) -> String { s.contains(" ") ? "\"\(s)\"" : s }

    mutating func add(_ p: Port) {
        let h = KubeProxyRules.hash(p.name + p.proto)
        let svc = "KUBE-SVC-" + h, svl = "KUBE-SVL-" + h, ext = "KUBE-EXT-" + h
        let pm = "-m \(p.proto) -p \(p.proto)"
        let s = p.service
        let clusterIP = s.clusterIP!
        var block = blocks[s.name] ?? { order.append(s.name); return Block() }()
        defer { blocks[s.name] = block }
        let externalAddresses = s.externalIPs + (s.type == .loadBalancer ? s.loadBalancerIPs : [])
        let nodePort = (s.type == .nodePort || s.type == .loadBalancer) ? p.spec.nodePort : nil
        let hasExternal = nodePort != nil || !externalAddresses.isEmpty
        let externalLocal = s.externalTrafficPolicy == .local && hasExternal

        if let hc = s.healthCheckNodePort, externalLocal {
            filterRules.append("-A KUBE-NODEPORTS -m comment --comment \(Self.quote(p.name + " health check node port")) -m tcp -p tcp --dport \(hc) -j ACCEPT")
        }
        if p.cluster.isEmpty {
            let c = Self.quote(p.name + " has no endpoints")
            filterRules.append("-A KUBE-SERVICES -m comment --comment \(c) \(pm) -d \(clusterIP) --dport \(p.spec.port) -j REJECT")
            for ip in externalAddresses {
                filterRules.append("-A KUBE-EXTERNAL-SERVICES -m comment --comment \(c) \(pm) -d \(ip) --dport \(p.spec.port) -j REJECT")
            }
            if let np = nodePort {
                filterRules.append("-A KUBE-EXTERNAL-SERVICES -m comment --comment \(c) -m addrtype --dst-type LOCAL \(pm) --dport \(np) -j REJECT")
            }
            return
        }
        func sep(_ e: Backend) -> String { "KUBE-SEP-" + KubeProxyRules.hash(p.name + p.proto + "\(e.address):\(e.port)") }

        let internalLocal = s.internalTrafficPolicy == .local
        let internalChain = internalLocal ? svl : svc
        if internalLocal && p.local.isEmpty {
            filterRules.append("-A KUBE-SERVICES -m comment --comment \(Self.quote(p.name + " has no local endpoints")) \(pm) -d \(clusterIP) --dport \(p.spec.port) -j DROP")
        } else {
            servicesRules.append("-A KUBE-SERVICES -m comment --comment \(Self.quote(p.name + " cluster IP")) \(pm) -d \(clusterIP) --dport \(p.spec.port) -j \(internalChain)")
        }
        block.chains.append(svc)
        block.rules.append("-A \(svc) -m comment --comment \(Self.quote(p.name + " cluster IP")) \(pm) -d \(clusterIP) --dport \(p.spec.port) ! -s \(settings.clusterCIDR) -j KUBE-MARK-MASQ")
        cascade(svc, p, p.cluster, sep, into: &block)
        let usesLocal = !p.local.isEmpty && (externalLocal || internalLocal)
        if usesLocal {
            block.chains.append(svl)
            cascade(svl, p, p.local, sep, into: &block)
        }
        var seen = Set<UInt64>()
        for e in p.cluster + (usesLocal ? p.local : []) where seen.insert(e.key).inserted {
            let chain = sep(e)
            block.chains.append(chain)
            block.rules.append("-A \(chain) -s \(e.address) -j KUBE-MARK-MASQ")
            let recent = affinitySeconds(p) != nil ? " -m recent --name \(chain) --set" : ""
            block.rules.append("-A \(chain)\(recent) \(pm) -j DNAT --to-destination \(e.address):\(e.port)")
        }

        guard hasExternal else { return }
        block.chains.append(ext)
        if !externalLocal {
            block.rules.append("-A \(ext) -m comment --comment \(Self.quote("masquerade traffic for \(p.name) external destinations")) -j KUBE-MARK-MASQ")
            block.rules.append("-A \(ext) -j \(svc)")
        } else {
            block.rules.append("-A \(ext) -m comment --comment \(Self.quote("pod traffic for \(p.name) external destinations")) -s \(settings.clusterCIDR) -j \(svc)")
            block.rules.append("-A \(ext) -m comment --comment \(Self.quote("masquerade LOCAL traffic for \(p.name) external destinations")) -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ")
            block.rules.append("-A \(ext) -m comment --comment \(Self.quote("route LOCAL traffic for \(p.name) external destinations")) -m addrtype --src-type LOCAL -j \(svc)")
            if usesLocal {
                block.rules.append("-A \(ext) -j \(svl)")
            } else {
                let c = Self.quote(p.name + " has no local endpoints")
                for ip in externalAddresses {
                    filterRules.append("-A KUBE-EXTERNAL-SERVICES -m comment --comment \(c) \(pm) -d \(ip) --dport \(p.spec.port) -j DROP")
                }
                if let np = nodePort {
                    filterRules.append("-A KUBE-EXTERNAL-SERVICES -m comment --comment \(c) -m addrtype --dst-type LOCAL \(pm) --dport \(np) -j DROP")
                }
            }
        }
        for ip in s.externalIPs {
            servicesRules.append("-A KUBE-SERVICES -m comment --comment \(Self.quote(p.name + " external IP")) \(pm) -d \(ip) --dport \(p.spec.port) -j \(ext)")
        }
        if s.type == .loadBalancer {
            for ip in s.loadBalancerIPs {
                servicesRules.append("-A KUBE-SERVICES -m comment --comment \(Self.quote(p.name + " loadbalancer IP")) \(pm) -d \(ip) --dport \(p.spec.port) -j \(ext)")
            }
        }
        if let np = nodePort {
            nodePortRules.append("-A KUBE-NODEPORTS -m comment --comment \(Self.quote(p.name)) \(pm) --dport \(np) -j \(ext)")
        }
    }

    func affinitySeconds(_ p: Port) -> UInt32? {
        guard settings.affinity, case .clientIP(let t) = p.service.sessionAffinity else { return nil }
        return t
    }

    /// kube-proxy's writeServiceToEndpointRules: affinity checks first, then rule i of n
    /// matches with probability 1/(n−i) (printed `%0.10f`), the last always.
    func cascade(_ chain: String, _ p: Port, _ eps: [Backend], _ sep: (Backend) -> String, into block: inout Block) {
        if let seconds = affinitySeconds(p) {
            for e in eps {
                block.rules.append("-A \(chain) -m recent --name \(sep(e)) --rcheck --seconds \(seconds) --reap -j \(sep(e))")
            }
        }
        let n = eps.count
        for (i, e) in eps.enumerated() {
            if i < n - 1 {
                block.rules.append("-A \(chain) -m statistic --mode random --probability \(String(format: "%0.10f", 1.0 / Double(n - i))) -j \(sep(e))")
            } else {
                block.rules.append("-A \(chain) -j \(sep(e))")
            }
        }
    }

    func filterTable(into out: inout String) {
        out += "*filter\n"
        for c in filterChains { out += ":\(c) - [0:0]\n" }
        for r in filterRules { out += r; out += "\n" }
        out += "COMMIT\n"
    }

    func natHead(into out: inout String) {
        out += "*nat\n"
        for c in ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"] { out += ":\(c) - [0:0]\n" }
    }

    func natTail(into out: inout String) {
        let m = Self.masqMark
        out += "-A KUBE-MARK-MASQ -j MARK --or-mark \(m)\n"
        out += "-A KUBE-POSTROUTING -m mark ! --mark \(m)/\(m) -j RETURN\n"
        out += "-A KUBE-POSTROUTING -j MARK --xor-mark \(m)\n"
        out += "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n"
        for r in servicesRules { out += r; out += "\n" }
        out += "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n"
        for r in nodePortRules { out += r; out += "\n" }
    }

    /// The first sync on an empty node, with the jumps from the built-in chains that
    /// kube-proxy installs once at start-up (it checks them with `iptables -C`).
    func full() -> String {
        var out = "# kube-proxy iptables mode, full sync\n"
        out.reserveCapacity(natRuleCount * 110)
        filterTable(into: &out)
        out += "*nat\n"
        for c in ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"] { out += ":\(c) - [0:0]\n" }
        for name in order { for c in blocks[name]!.chains { out += ":\(c) - [0:0]\n" } }
        out += "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
        out += "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
        out += "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n"
        natTail(into: &out)
        for name in order { for r in blocks[name]!.rules { out += r; out += "\n" } }
        out += "COMMIT\n"
        return out
    }

    /// The partial sync after `changed` Services changed (applied with `--noflush`).
    func partial(changed: Set<ServiceName>) -> String {
        var out = "# kube-proxy iptables mode, partial sync of \(changed.count) changed Service(s)\n"
        filterTable(into: &out)
        natHead(into: &out)
        for name in order where changed.contains(name) { for c in blocks[name]!.chains { out += ":\(c) - [0:0]\n" } }
        natTail(into: &out)
        for name in order where changed.contains(name) { for r in blocks[name]!.rules { out += r; out += "\n" } }
        out += "COMMIT\n"
        return out
    }
}

/// kube-proxy's nftables mode.
struct NFTRules {
    typealias Port = KubeProxyRules.Port
    struct Block: Equatable {
        /// Chain name → its rules, in creation order (endpoint chains before the chains
        /// that `goto` them: nft resolves a target when the rule is added).
        var chains: [(String, [String])] = []
        static func == (a: Block, b: Block) -> Bool {
            a.chains.count == b.chains.count && zip(a.chains, b.chains).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        }
    }
    var blocks: [ServiceName: Block] = [:]
    var order: [ServiceName] = []
    /// `add element` lines; a partial sync rebuilds them all.
    var elements: [String] = []
    var chainCount = 0
    var ruleCount = 0
    var elementCount: Int { elements.count }
    let settings: KubeProxyRules.Settings
    static let table = "ip kube-proxy"
    static let maps = ["cluster-ips", "nodeport-ips", "no-endpoint-nodeports", "no-endpoint-services", "service-ips", "service-nodeports"]

    init(_ model: KubeProxyRules.Model, _ settings: KubeProxyRules.Settings) {
        self.settings = settings
        elements.append("add element \(Self.table) nodeport-ips { \(settings.nodeAddress) }")
        for p in model.ports { add(p) }
        chainCount = blocks.values.reduce(0) { $0 + $1.chains.count }
        ruleCount = blocks.values.reduce(0) { $0 + $1.chains.reduce(0) { $0 + $1.1.count } }
    }

    mutating func add(_ p: Port) {
        let T = Self.table
        let s = p.service
        let clusterIP = s.clusterIP!
        let base = "\(KubeProxyRules.hash(p.name + p.proto, length: 8))-\(s.name.namespace)/\(s.name.name)/\(p.proto)/\(p.label)"
        let svcChain = "service-" + base, localChain = "local-" + base, extChain = "external-" + base
        var block = blocks[s.name] ?? { order.append(s.name); return Block() }()
        defer { blocks[s.name] = block }
        let externalAddresses = s.externalIPs + (s.type == .loadBalancer ? s.loadBalancerIPs : [])
        let nodePort = (s.type == .nodePort || s.type == .loadBalancer) ? p.spec.nodePort : nil
        let hasExternal = nodePort != nil || !externalAddresses.isEmpty
        let externalLocal = s.externalTrafficPolicy == .local && hasExternal
        let comment = "\"\(p.name)\""
        elements.append("add element \(T) cluster-ips { \(clusterIP) }")

        if p.cluster.isEmpty {
            for ip in [clusterIP] + externalAddresses {
                elements.append("add element \(T) no-endpoint-services { \(ip) . \(p.proto) . \(p.spec.port) comment \(comment) : goto reject-chain }")
            }
            if let np = nodePort {
                elements.append("add element \(T) no-endpoint-nodeports { \(p.proto) . \(np) comment \(comment) : goto reject-chain }")
            }
            return
        }
        func endpointChain(_ e: Backend) -> String {
            "endpoint-\(KubeProxyRules.hash(p.name + p.proto + "\(e.address):\(e.port)", length: 8))-\(s.name.namespace)/\(s.name.name)/\(p.proto)/\(p.label)__\(e.address)/\(e.port)"
        }
        func pick(_ eps: [Backend]) -> String {
            let vmap = eps.enumerated().map { "\($0.offset) : goto \(endpointChain($0.element))" }.joined(separator: " , ")
            return "numgen random mod \(eps.count) vmap { \(vmap) }"
        }
        let internalLocal = s.internalTrafficPolicy == .local
        let usesLocal = !p.local.isEmpty && (externalLocal || internalLocal)
        var seen = Set<UInt64>()
        for e in p.cluster + (usesLocal ? p.local : []) where seen.insert(e.key).inserted {
            block.chains.append((endpointChain(e), ["ip saddr \(e.address) jump mark-for-masquerade",
                                                    "meta l4proto \(p.proto) dnat to \(e.address):\(e.port)"]))
        }
        block.chains.append((svcChain, ["ip daddr \(clusterIP) ip saddr != \(settings.clusterCIDR) jump mark-for-masquerade",
                                        pick(p.cluster)]))
        if usesLocal { block.chains.append((localChain, [pick(p.local)])) }
        if internalLocal && p.local.isEmpty {
            elements.append("add element \(T) no-endpoint-services { \(clusterIP) . \(p.proto) . \(p.spec.port) comment \(comment) : drop }")
        } else {
            elements.append("add element \(T) service-ips { \(clusterIP) . \(p.proto) . \(p.spec.port) : goto \(internalLocal ? localChain : svcChain) }")
        }
        guard hasExternal else { return }
        var ext: [String] = []
        if !externalLocal {
            ext = ["jump mark-for-masquerade", "goto \(svcChain)"]
        } else {
            ext = ["ip saddr \(settings.clusterCIDR) goto \(svcChain) comment \"short-circuit pod traffic\"",
                   "fib saddr type local jump mark-for-masquerade comment \"masquerade local traffic\"",
                   "fib saddr type local goto \(svcChain) comment \"short-circuit local traffic\""]
            if usesLocal {
                ext.append("goto \(localChain)")
            } else {
                for ip in externalAddresses {
                    elements.append("add element \(T) no-endpoint-services { \(ip) . \(p.proto) . \(p.spec.port) comment \(comment) : drop }")
                }
                if let np = nodePort {
                    elements.append("add element \(T) no-endpoint-nodeports { \(p.proto) . \(np) comment \(comment) : drop }")
                }
            }
        }
        block.chains.append((extChain, ext))
        for ip in externalAddresses {
            elements.append("add element \(T) service-ips { \(ip) . \(p.proto) . \(p.spec.port) : goto \(extChain) }")
        }
        if let np = nodePort {
            elements.append("add element \(T) service-nodeports { \(p.proto) . \(np) : goto \(extChain) }")
        }
    }

    /// The fixed part of the table (kube-proxy's setupNFTables), as netns-lab/lib/kube_rules.py has it.
    func skeleton(into out: inout String) {
        let T = Self.table
        out += """
        add table \(T)
        delete table \(T)
        add table \(T) { comment "rules for kube-proxy" ; }
        add set \(T) cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }
        add set \(T) nodeport-ips { type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }
        add map \(T) no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }
        add map \(T) no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }
        add map \(T) service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }
        add map \(T) service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }
        add chain \(T) cluster-ips-check
        add chain \(T) filter-forward { type filter hook forward priority 0 ; }
        add chain \(T) filter-input { type filter hook input priority 0 ; }
        add chain \(T) filter-output { type filter hook output priority 0 ; }
        add chain \(T) mark-for-masquerade
        add chain \(T) masquerading
        add chain \(T) nat-output { type nat hook output priority -100 ; }
        add chain \(T) nat-postrouting { type nat hook postrouting priority 100 ; }
        add chain \(T) nat-prerouting { type nat hook prerouting priority -100 ; }
        add chain \(T) nodeport-endpoints-check
        add chain \(T) reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }
        add chain \(T) services
        add chain \(T) service-endpoints-check
        add rule \(T) cluster-ips-check ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"
        add rule \(T) cluster-ips-check ip daddr { \(settings.serviceCIDR) } drop comment "Drop traffic to unallocated ClusterIPs"
        add rule \(T) filter-forward ct state new jump service-endpoints-check
        add rule \(T) filter-forward ct state new jump cluster-ips-check
        add rule \(T) filter-input ct state new jump nodeport-endpoints-check
        add rule \(T) filter-input ct state new jump service-endpoints-check
        add rule \(T) filter-output ct state new jump service-endpoints-check
        add rule \(T) filter-output ct state new jump cluster-ips-check
        add rule \(T) mark-for-masquerade mark set mark or 0x4000
        add rule \(T) masquerading mark and 0x4000 == 0 return
        add rule \(T) masquerading mark set mark xor 0x4000
        add rule \(T) masquerading masquerade fully-random
        add rule \(T) nat-output jump services
        add rule \(T) nat-postrouting jump masquerading
        add rule \(T) nat-prerouting jump services
        add rule \(T) nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports
        add rule \(T) reject-chain reject
        add rule \(T) services ip daddr . meta l4proto . th dport vmap @service-ips
        add rule \(T) services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports
        add rule \(T) service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services

        """
    }

    func chains(of name: ServiceName, into out: inout String, flush: Bool) {
        let T = Self.table
        for (chain, rules) in blocks[name]!.chains {
            out += "add chain \(T) \(chain)\n"
            if flush { out += "flush chain \(T) \(chain)\n" }
            for r in rules { out += "add rule \(T) \(chain) \(r)\n" }
        }
    }

    func full() -> String {
        var out = "# kube-proxy nftables mode, full sync\n"
        out.reserveCapacity((ruleCount + elements.count) * 120)
        skeleton(into: &out)
        for name in order { chains(of: name, into: &out, flush: false) }
        for e in elements { out += e; out += "\n" }
        return out
    }

    /// The partial sync after `changed` Services changed: every set and map rebuilt,
    /// the changed Services' chains rewritten, their stale endpoint chains flushed.
    func partial(changed: Set<ServiceName>, staleFrom previous: NFTRules) -> String {
        let T = Self.table
        var out = "# kube-proxy nftables mode, partial sync of \(changed.count) changed Service(s)\n"
        for m in Self.maps { out += "flush \(m == "cluster-ips" || m == "nodeport-ips" ? "set" : "map") \(T) \(m)\n" }
        for name in order where changed.contains(name) { chains(of: name, into: &out, flush: true) }
        for name in changed {
            let now = Set((blocks[name]?.chains ?? []).map(\.0))
            for (chain, _) in previous.blocks[name]?.chains ?? [] where !now.contains(chain) {
                out += "flush chain \(T) \(chain)\n"
            }
        }
        for e in elements { out += e; out += "\n" }
        return out
    }
}
