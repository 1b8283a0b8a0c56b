import FerryPacket

// The per-packet pipeline: one function from (frame, ingress, now) to a verdict. Its call
// order follows Cilium's lb4 path (STYLE.md): parse → conntrack lookup → service lookup →
// backend selection → conntrack create → NAT → route → neighbour → verdict; replies take
// the reverse-NAT branch of the same lookup. Each step reports to the tracer.
//
// The pipeline only *indexes* (Katran's rule): tables come in the published
// ForwardingState; the conntrack, affinity table and counters are this worker's own.
// Nothing here allocates per packet, takes a lock, reads a clock or a global.

/// Knobs of the pipeline that are not Kubernetes state.
public struct PipelineConfig: Sendable {
    /// Complete partial L4 checksums in userspace before transmit. True when the rings
    /// carry no virtio-net header: the receiving namespace would otherwise verify the
    /// pseudo-header-only field and drop the segment (KERNEL-NOTES "ping works, TCP does
    /// not"). False with PACKET_VNET_HDR: NEEDS_CSUM travels with the frame instead.
    public var completePartialChecksums: Bool
    /// Verify the IPv4 header checksum (the kernel's ip_rcv does).
    public var verifyIPv4HeaderChecksum: Bool
    /// Send ICMP time exceeded when TTL runs out (a router's duty, RFC 1812 §5.3.1);
    /// traceroute through a node shows the node.
    public var sendTimeExceeded: Bool

    public init(completePartialChecksums: Bool = true, verifyIPv4HeaderChecksum: Bool = true,
                sendTimeExceeded: Bool = true) {
        self.completePartialChecksums = completePartialChecksums
        self.verifyIPv4HeaderChecksum = verifyIPv4HeaderChecksum
        self.sendTimeExceeded = sendTimeExceeded
    }
}

/// Counters the pipeline keeps; the agent sums them for `ferry stats` and metrics.
public struct PipelineCounters: Sendable {
    public var received: UInt64 = 0
    public var forwarded: UInt64 = 0
    public var passed: UInt64 = 0
    public var rejected: UInt64 = 0
    public var dropped: UInt64 = 0
    public var newFlows: UInt64 = 0
    public var dnat: UInt64 = 0
    public var snat: UInt64 = 0
    public var reverseNAT: UInt64 = 0
    public var icmpErrorsTranslated: UInt64 = 0
    public var checksumsCompleted: UInt64 = 0
    public var clashRemapped: UInt64 = 0
    /// Drops and rejects by `DropReason.rawValue`.
    public var byReason: [UInt64] = Array(repeating: 0, count: 256)

    public init() {}

    public func count(_ reason: DropReason) -> UInt64 { byReason[Int(reason.rawValue)] }
}

/// Next hops the pipeline could not resolve; the agent asks the kernel to resolve them
/// (netlink NTF_USE) after the batch. Fixed size: when full, later requests in the same
/// batch are dropped (the retransmit asks again).
public struct NeighbourRequests: Sendable {
    public static let capacity = 16
    @usableFromInline var items: [(InterfaceIndex, IPv4Address)]
    public private(set) var count = 0

    public init() {
        items = Array(repeating: (InterfaceIndex(0), .any), count: NeighbourRequests.capacity)
    }

    @usableFromInline mutating func add(_ interface: InterfaceIndex, _ address: IPv4Address) {
        for i in 0..<count where items[i].0 == interface && items[i].1 == address { return }
        guard count < NeighbourRequests.capacity else { return }
        items[count] = (interface, address)
        count += 1
    }

    /// Hands the pending requests to `body` and clears them.
    public mutating func drain(_ body: (InterfaceIndex, IPv4Address) -> Void) {
        for i in 0..<count { body(items[i].0, items[i].1) }
        count = 0
    }
}

/// A small deterministic generator for the random backend strategy (SplitMix64), so a
/// seeded pipeline is reproducible in tests.
public struct SplitMix64: Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    @inlinable public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// One worker's pipeline: its conntrack, affinity table, SNAT allocator and counters.
public struct Pipeline {
    public var config: PipelineConfig
    public let conntrack: ConntrackTable
    public var affinity: AffinityTable
    public var snat: SNATPortAllocator
    public var counters = PipelineCounters()
    public var neighbourRequests = NeighbourRequests()
    public var random: SplitMix64
    /// IP identification of the ICMP errors this worker writes (RFC 6864 §4.2).
    var icmpIdentification: UInt16 = 0

    public init(config: PipelineConfig = PipelineConfig(), conntrack: ConntrackTable,
                affinity: AffinityTable, snat: SNATPortAllocator, randomSeed: UInt64 = 0x4665_7272_79) {
        self.config = config
        self.conntrack = conntrack
        self.affinity = affinity
        self.snat = snat
        self.random = SplitMix64(seed: randomSeed)
    }

    /// Processes one frame in place.
    ///
    /// - Parameters:
    ///   - frame: the frame's buffer, starting at the Ethernet header. Its `count` is the
    ///     room available; a reject writes its ICMP error here (it needs at most 110 bytes).
    ///   - length: the frame's length (≤ `frame.count`).
    /// - Returns: the verdict; for `.forward` the frame has been rewritten in place.
    public mutating func process<T: PacketTracer>(
        _ frame: UnsafeMutableRawBufferPointer, length: Int, info: FrameInfo, now: Timestamp,
        state: ForwardingState, tracer: inout T
    ) -> Verdict {
        counters.received &+= 1
        tracer.record(.received(ingress: info.ingress, length: length, checksumPartial: info.l4ChecksumPartial))
        let v = decide(frame, length: length, info: info, now: now, state: state, tracer: &tracer)
        switch v {
        case .forward: counters.forwarded &+= 1
        case .pass: counters.passed &+= 1
        case .reject(_, _, let r):
            counters.rejected &+= 1
            counters.byReason[Int(r.rawValue)] &+= 1
        case .drop(let r):
            counters.dropped &+= 1
            counters.byReason[Int(r.rawValue)] &+= 1
        }
        tracer.record(.verdict(v))
        return v
    }

    @inline(__always)
    mutating func decide<T: PacketTracer>(
        _ frame: UnsafeMutableRawBufferPointer, length: Int, info: FrameInfo, now: Timestamp,
        state: ForwardingState, tracer: inout T
    ) -> Verdict {
        let bytes = UnsafeMutableRawBufferPointer(rebasing: frame[0..<min(length, frame.count)])
        let eth: EthernetView
        do { eth = try EthernetView(checking: bytes) } catch { return .drop(.truncatedFrame) }

        guard let ingress = state.interfaces.port(info.ingress) else {
            tracer.record(.notMine("interface \(info.ingress) is not one Ferry forwards on"))
            return .pass
        }
        // Frames for other hosts (a bridge flooding, promiscuous taps) and broadcast or
        // multicast frames (ARP, DHCP, mDNS) are the kernel's business.
        let dstMAC = eth.destination
        if dstMAC != ingress.mac {
            tracer.record(.notMine(dstMAC.value & 0x0100_0000_0000 != 0 ? "broadcast or multicast frame" : "frame for another MAC"))
            return .pass
        }
        guard eth.etherType == .ipv4 else {
            tracer.record(.notMine("not IPv4 (ARP, IPv6 and others go to the kernel)"))
            return .pass
        }

        let ip: IPv4View
        do { ip = try IPv4View(checking: eth.payload) } catch { return .drop(Self.reason(for: error)) }
        if config.verifyIPv4HeaderChecksum && !ip.isHeaderChecksumValid { return .drop(.badIPv4Checksum) }

        let src = ip.sourceAddress
        let dst = ip.destinationAddress
        if dst.isMulticast || dst == .broadcast {
            tracer.record(.notMine("multicast or broadcast destination"))
            return .pass
        }
        if src.isMulticast || src.isLoopback || src == .broadcast {
            return .drop(.martianSource)
        }

        // Fragments carry no ports after the first: Ferry cannot NAT them, so it refuses
        // those aimed at a Service and routes all others untouched.
        if ip.isFragment {
            if state.services.isServiceAddress(dst) { return .drop(.fragmentToService) }
            if state.interfaces.isLocal(dst) {
                tracer.record(.notMine("fragment addressed to this node"))
                return .pass
            }
            return route(eth: eth, ip: ip, frame: frame, length: length, info: info, rewrote: false,
                         state: state, tracer: &tracer)
        }

        switch ip.protocol {
        case .tcp, .udp:
            return l4Flow(eth: eth, ip: ip, frame: frame, length: length, info: info, now: now,
                          state: state, tracer: &tracer)
        case .icmp:
            return icmp(eth: eth, ip: ip, frame: frame, length: length, info: info, now: now,
                        state: state, tracer: &tracer)
        default:
            if state.services.isServiceAddress(dst) { return .drop(.unsupportedProtocolToService) }
            return plain(eth: eth, ip: ip, frame: frame, length: length, info: info, state: state, tracer: &tracer)
        }
    }

    @usableFromInline static func reason(for error: PacketError) -> DropReason {
        switch error {
        case .badVersion, .badHeaderLength: .badIPv4Header
        case .badTotalLength: .badIPv4TotalLength
        case .truncated: .truncatedFrame
        default: .badL4Header
        }
    }

    // MARK: TCP and UDP

    @inline(__always)
    mutating func l4Flow<T: PacketTracer>(
        eth: EthernetView, ip: IPv4View, frame: UnsafeMutableRawBufferPointer, length: Int,
        info: FrameInfo, now: Timestamp, state: ForwardingState, tracer: inout T
    ) -> Verdict {
        let isTCP = ip.protocol == .tcp
        let sport: UInt16, dport: UInt16, tcpFlags: UInt8
        if isTCP {
            guard let tcp = try? TCPView(checking: ip.payload) else { return .drop(.badL4Header) }
            sport = tcp.sourcePort
            dport = tcp.destinationPort
            tcpFlags = tcp.flags.rawValue
        } else {
            guard let udp = try? UDPView(checking: ip.payload) else { return .drop(.badL4Header) }
            sport = udp.sourcePort
            dport = udp.destinationPort
            tcpFlags = 0
        }
        let src = ip.sourceAddress, dst = ip.destinationAddress
        let proto = ip.protocol
        tracer.record(.parsed(protocol: proto, source: src, sourcePort: sport, destination: dst, destinationPort: dport))
        let key = FlowKey(protocol: proto, source: src, sourcePort: sport, destination: dst, destinationPort: dport)
        let payloadBytes = UInt64(ip.totalLength)

        // 1. Conntrack: both directions of a known flow find their entry here.
        if let hit = conntrack.lookup(key, now: now) {
            let entry = conntrack[entry: hit.entry]
            tracer.record(.conntrackHit(entry: hit.entry, reply: hit.direction == .reply))
            conntrack.observe(entry: hit.entry, direction: hit.direction, tcpFlags: TCPFlagBits(rawValue: tcpFlags),
                              bytes: payloadBytes, now: now)
            // The packet leaves looking like the other direction's tuple reversed.
            let out = hit.direction == .original ? entry.reply.reversed() : entry.original.reversed()
            if hit.direction == .reply { counters.reverseNAT &+= 1 }
            let changed = rewrite(ip: ip, isTCP: isTCP, to: out, partial: info.l4ChecksumPartial)
            if changed {
                tracer.record(.rewritten(source: out.source, sourcePort: out.sourcePort,
                                         destination: out.destination, destinationPort: out.destinationPort))
            }
            return route(eth: eth, ip: ip, frame: frame, length: length, info: info, rewrote: changed,
                         state: state, tracer: &tracer)
        }
        tracer.record(.conntrackMiss)

        // 2. Service lookup: exact frontends first, then NodePorts on node addresses.
        guard let sproto = ServiceProtocol(proto) else { return .drop(.unsupportedProtocolToService) }
        var fid = state.services.lookup(address: dst, protocol: sproto, port: dport)
        if fid == nil && state.isNodePortAddress(dst) {
            fid = state.services.lookupNodePort(protocol: sproto, port: dport)
        }
        guard let frontendID = fid else {
            tracer.record(.noFrontend)
            if state.interfaces.isLocal(dst) {
                tracer.record(.notMine("addressed to this node and not a Service port"))
                return .pass
            }
            if state.services.isServiceAddress(dst) {
                // A Service IP on a port it does not expose: refuse at once, like
                // kube-proxy's nftables mode, rather than leak it to the default route.
                return reject(ip: ip, frame: frame, info: info, reason: .noServicePort, state: state)
            }
            return route(eth: eth, ip: ip, frame: frame, length: length, info: info, rewrote: false,
                         state: state, tracer: &tracer)
        }
        let frontend = state.services.frontends[frontendID]
        tracer.record(.frontend(service: frontend.service.description, kind: frontend.kind.description,
                                address: frontend.kind == .nodePort ? dst : frontend.address, port: frontend.port))

        // Only a packet that can open a connection gets a backend. A stray SYN-ACK, FIN or
        // RST is INVALID to the kernel's tcp_new, so kube-proxy's NAT and REJECT rules (state
        // NEW) never see it: it must not pin an affinity entry, probe SNAT ports or draw an
        // ICMP error. Fail closed: no entry, no NAT (Cilium's policy too).
        guard let initial = ConnState.initial(for: proto, tcpFlags: TCPFlagBits(rawValue: tcpFlags)) else {
            return .drop(.tcpNotOpening)
        }

        // 3. loadBalancerSourceRanges (kube-proxy's KUBE-FW chain drops the rest).
        if !frontend.sourceRanges.isEmpty {
            var allowed = false
            for r in frontend.sourceRanges where r.contains(src) { allowed = true; break }
            if !allowed { return .drop(.sourceRangeDenied) }
        }

        // 4. Which endpoints: kube-proxy's traffic policy rules.
        let fromPod = state.cluster.isInCluster(src)
        let isExternalKind = frontend.kind != .clusterIP
        let setKind: BackendSetKind
        let choice: BackendSetChoice
        if frontend.trafficPolicy == .local && !(isExternalKind && fromPod) {
            setKind = .local
            choice = .local
        } else {
            setKind = .cluster
            choice = isExternalKind && frontend.trafficPolicy == .local ? .clusterForPodTraffic : .cluster
        }
        let candidates = state.services.backendCount(frontend: frontendID, set: setKind)
        tracer.record(.backendSet(choice, candidates: candidates))
        if candidates == 0 {
            // No endpoints at all: reject (connection refused), as kube-proxy and Cilium
            // do. Endpoints elsewhere but none here under Local: drop, as kube-proxy does
            // — the load balancer's health check keeps traffic away from this node.
            if setKind == .local && state.services.hasEndpoints(frontend: frontendID) {
                return .drop(.noLocalEndpoints)
            }
            return reject(ip: ip, frame: frame, info: info, reason: .noEndpoints, state: state)
        }

        // 5. Backend: session affinity first, then the selector.
        var backend: Backend? = nil
        var how = "Maglev"
        if case let .clientIP(timeout) = frontend.affinity,
           let (a, p) = affinity.lookup(client: src, servicePort: frontend.servicePortIndex, now: now) {
            backend = state.services.backend(frontend: frontendID, set: setKind, address: a, port: p)
            if backend != nil {
                how = "session affinity (ClientIP)"
                affinity.record(client: src, servicePort: frontend.servicePortIndex, backend: a, port: p,
                                timeout: Seconds(UInt64(timeout)), now: now)
            }
        }
        if backend == nil {
            let hash: UInt32
            if case .maglev = state.services.strategy {
                hash = flowHash(source: src, destination: dst, sourcePort: sport, destinationPort: dport,
                                protocol: proto)
            } else {
                hash = UInt32(truncatingIfNeeded: random.next())
                how = "random"
            }
            backend = state.services.selectBackend(frontend: frontendID, set: setKind, hash: hash)
            if let b = backend, case let .clientIP(timeout) = frontend.affinity {
                affinity.record(client: src, servicePort: frontend.servicePortIndex, backend: b.address,
                                port: b.port, timeout: Seconds(UInt64(timeout)), now: now)
            }
        }
        guard let b = backend else {
            return reject(ip: ip, frame: frame, info: info, reason: .noEndpoints, state: state)
        }
        tracer.record(.backendChosen(address: b.address, port: b.port, node: b.nodeName, by: how))

        // 6. Masquerade decision (kube-proxy's KUBE-MARK-MASQ rules), plus one of a
        // router's: a packet that would leave by the link it came in on must be
        // masqueraded, or the backend answers the client directly over that link (a pod
        // on a bridge reaching another pod on it through a ClusterIP) and the reply is
        // never reverse-NATed. kube-proxy needs br_netfilter for that case.
        let backendRoute = state.routes.lookup(b.address)
        var masq: MasqueradeReason? = nil
        if state.cluster.masqueradeAll {
            masq = .masqueradeAll
        } else if b.address == src {
            masq = .hairpin
        } else if isExternalKind && frontend.trafficPolicy == .cluster {
            masq = .externalClusterPolicy
        } else if !isExternalKind && !state.cluster.clusterCIDRs.isEmpty && !fromPod {
            masq = .offClusterToClusterIP
        } else if let r = backendRoute, r.kind == .unicast, r.interface == info.ingress {
            masq = .sameLink
        }

        // 7. The reply tuple, allocating a source port if masquerading. The route to the
        // backend decides the masquerade address (the egress interface's, like MASQUERADE).
        var reply = FlowKey(protocol: proto, source: b.address, sourcePort: b.port, destination: src,
                            destinationPort: sport)
        if let why = masq {
            guard let r = backendRoute, r.kind == .unicast,
                  let egress = state.interfaces.port(r.interface),
                  let snatAddress = r.preferredSource ?? egress.primaryAddress
            else { return .drop(.noRoute) }
            reply.destination = snatAddress
            guard let port = snat.allocate(replyTemplate: reply, table: conntrack, now: now, flow: key) else {
                return .drop(.snatPortsExhausted)
            }
            reply.destinationPort = port
            tracer.record(.masquerade(source: snatAddress, port: port, why: why))
        } else {
            tracer.record(.sourceKept)
        }

        // 8. Create the entry. Fail closed: no entry, no NAT (Cilium's policy too).
        var result = conntrack.insert(original: key, reply: reply, now: now, frontend: Int32(frontendID),
                                      initialState: initial, bytes: payloadBytes)
        if case .clash = result {
            // The reply tuple is taken (e.g. a plain flow from the same client port straight
            // to the backend, KERNEL-NOTES). Resolve it like the kernel's NAT does: keep the
            // address, pick another source port from the SNAT range.
            guard let port = snat.allocate(replyTemplate: reply, table: conntrack, now: now, flow: key) else {
                return .drop(.conntrackTupleClash)
            }
            reply.destinationPort = port
            counters.clashRemapped &+= 1
            result = conntrack.insert(original: key, reply: reply, now: now, frontend: Int32(frontendID),
                                      initialState: initial, bytes: payloadBytes)
        }
        let entryIndex: Int32
        switch result {
        case .inserted(let e): entryIndex = e
        case .full: return .drop(.conntrackFull)
        case .clash: return .drop(.conntrackTupleClash)
        }
        tracer.record(.conntrackCreated(entry: entryIndex))
        counters.newFlows &+= 1
        counters.dnat &+= 1
        if masq != nil || reply.destinationPort != sport { counters.snat &+= 1 }

        let out = reply.reversed()
        _ = rewrite(ip: ip, isTCP: isTCP, to: out, partial: info.l4ChecksumPartial)
        tracer.record(.rewritten(source: out.source, sourcePort: out.sourcePort, destination: out.destination,
                                 destinationPort: out.destinationPort))
        return route(eth: eth, ip: ip, frame: frame, length: length, info: info, rewrote: true,
                     state: state, tracer: &tracer)
    }

    /// Rewrites addresses and ports to `to`, fixing the IPv4 header checksum and the L4
    /// checksum incrementally (RFC 1624). Returns whether anything changed.
    @inline(__always)
    func rewrite(ip: IPv4View, isTCP: Bool, to: FlowKey, partial: Bool) -> Bool {
        let mode: L4ChecksumMode = partial ? .partial : .full
        let oldSrc = ip.sourceAddress, oldDst = ip.destinationAddress
        var changed = false
        if isTCP {
            let tcp = TCPView(unchecked: ip.payload)
            if tcp.sourcePort != to.sourcePort { tcp.setSourcePort(to.sourcePort, checksum: mode); changed = true }
            if tcp.destinationPort != to.destinationPort { tcp.setDestinationPort(to.destinationPort, checksum: mode); changed = true }
            if oldSrc != to.source { tcp.updateChecksumForAddressChange(from: oldSrc, to: to.source, checksum: mode) }
            if oldDst != to.destination { tcp.updateChecksumForAddressChange(from: oldDst, to: to.destination, checksum: mode) }
        } else {
            let udp = UDPView(unchecked: ip.payload)
            if udp.sourcePort != to.sourcePort { udp.setSourcePort(to.sourcePort, checksum: mode); changed = true }
            if udp.destinationPort != to.destinationPort { udp.setDestinationPort(to.destinationPort, checksum: mode); changed = true }
            if oldSrc != to.source { udp.updateChecksumForAddressChange(from: oldSrc, to: to.source, checksum: mode) }
            if oldDst != to.destination { udp.updateChecksumForAddressChange(from: oldDst, to: to.destination, checksum: mode) }
        }
        if oldSrc != to.source { ip.setSourceAddressUpdatingChecksum(to.source); changed = true }
        if oldDst != to.destination { ip.setDestinationAddressUpdatingChecksum(to.destination); changed = true }
        return changed
    }

    // MARK: ICMP

    @inline(__always)
    mutating func icmp<T: PacketTracer>(
        eth: EthernetView, ip: IPv4View, frame: UnsafeMutableRawBufferPointer, length: Int,
        info: FrameInfo, now: Timestamp, state: ForwardingState, tracer: inout T
    ) -> Verdict {
        guard let icmp = try? ICMPView(checking: ip.payload) else { return .drop(.badL4Header) }
        // Errors about a NATed flow are translated back, quoted header included
        // (the kernel's nf_nat_icmp_reply_translation).
        if icmp.type.isError,
           let v = translateICMPError(eth: eth, ip: ip, icmp: icmp, frame: frame, length: length, info: info,
                                      now: now, state: state, tracer: &tracer) {
            return v
        }
        if state.services.isServiceAddress(ip.destinationAddress) && !state.interfaces.isLocal(ip.destinationAddress) {
            // A ping to a ClusterIP gets no answer from kube-proxy either.
            return .drop(.unsupportedProtocolToService)
        }
        return plain(eth: eth, ip: ip, frame: frame, length: length, info: info, state: state, tracer: &tracer)
    }

    /// Returns nil when the error is about no known flow (then it is routed as is).
    @inline(__always)
    mutating func translateICMPError<T: PacketTracer>(
        eth: EthernetView, ip: IPv4View, icmp: ICMPView, frame: UnsafeMutableRawBufferPointer, length: Int,
        info: FrameInfo, now: Timestamp, state: ForwardingState, tracer: inout T
    ) -> Verdict? {
        guard let quoted = try? IPv4View(checkingQuotedHeader: icmp.quotedPacket),
              quoted.fragmentOffset == 0, quoted.protocol == .tcp || quoted.protocol == .udp,
              quoted.payload.count >= 8
        else { return nil }
        // TCP and UDP both start with the two ports.
        let ports = UDPView(unchecked: quoted.payload)
        let q = FlowKey(protocol: quoted.protocol, source: quoted.sourceAddress, sourcePort: ports.sourcePort,
                        destination: quoted.destinationAddress, destinationPort: ports.destinationPort)
        // The quoted packet went the other way: its reversed tuple is this flow's tuple.
        guard let hit = conntrack.lookup(q.reversed(), now: now) else { return nil }
        let entry = conntrack[entry: hit.entry]
        // The quote becomes what the other side sent before translation, and the outer
        // addresses that named the translated ends are translated with it.
        let target = hit.direction == .reply ? entry.original : entry.reply
        let newOuterDst = ip.destinationAddress == q.source ? target.source : ip.destinationAddress
        let newOuterSrc = ip.sourceAddress == q.destination ? target.destination : ip.sourceAddress
        do {
            try icmp.rewriteQuotedPacket(source: target.source, destination: target.destination,
                                         sourcePort: target.sourcePort, destinationPort: target.destinationPort)
        } catch {
            return nil
        }
        if newOuterSrc != ip.sourceAddress { ip.setSourceAddressUpdatingChecksum(newOuterSrc) }
        if newOuterDst != ip.destinationAddress { ip.setDestinationAddressUpdatingChecksum(newOuterDst) }
        counters.icmpErrorsTranslated &+= 1
        tracer.record(.icmpErrorTranslated(entry: hit.entry))
        return route(eth: eth, ip: ip, frame: frame, length: length, info: info, rewrote: true,
                     state: state, tracer: &tracer)
    }

    // MARK: Routing

    /// Not a Service packet: local ones go to the kernel, the rest are routed.
    @inline(__always)
    mutating func plain<T: PacketTracer>(
        eth: EthernetView, ip: IPv4View, frame: UnsafeMutableRawBufferPointer, length: Int,
        info: FrameInfo, state: ForwardingState, tracer: inout T
    ) -> Verdict {
        if state.interfaces.isLocal(ip.destinationAddress) {
            tracer.record(.notMine("addressed to this node"))
            return .pass
        }
        return route(eth: eth, ip: ip, frame: frame, length: length, info: info, rewrote: false,
                     state: state, tracer: &tracer)
    }

    /// Longest-prefix match, TTL, neighbour, MACs, checksum completion.
    @inline(__always)
    mutating func route<T: PacketTracer>(
        eth: EthernetView, ip: IPv4View, frame: UnsafeMutableRawBufferPointer, length: Int,
        info: FrameInfo, rewrote: Bool, state: ForwardingState, tracer: inout T
    ) -> Verdict {
        let dst = ip.destinationAddress
        guard let r = state.routes.lookup(dst) else { return .drop(.noRoute) }
        switch r.kind {
        case .blackhole: return .drop(.blackholeRoute)
        case .local:
            // A NATed packet now addressed to this node (a hostNetwork endpoint) cannot be
            // handed to the kernel from a packet socket; untranslated ones are the kernel's.
            if rewrote { return .drop(.egressInterfaceUnknown) }
            tracer.record(.notMine("addressed to this node"))
            return .pass
        case .unicast: break
        }
        tracer.record(.routed(via: r.gateway, egress: r.interface, prefix: r.destination))
        guard let egress = state.interfaces.port(r.interface), egress.isForwarding else {
            return .drop(.egressInterfaceUnknown)
        }
        if ip.timeToLive <= 1 {
            if config.sendTimeExceeded {
                return icmpError(ip: ip, frame: frame, info: info, type: .timeExceeded,
                                 code: ICMPCode.TimeExceeded.timeToLiveExceededInTransit, reason: .ttlExceeded,
                                 state: state)
            }
            return .drop(.ttlExceeded)
        }
        let nextHop = r.gateway ?? dst
        guard let mac = state.neighbours.mac(for: nextHop, on: r.interface) else {
            neighbourRequests.add(r.interface, nextHop)
            return .drop(.neighbourUnresolved)
        }
        tracer.record(.neighbour(mac))
        ip.decrementTimeToLive()
        eth.source = egress.mac
        eth.destination = mac
        if info.l4ChecksumPartial && config.completePartialChecksums && !info.isGSO {
            switch ip.protocol {
            case .tcp: TCPView(unchecked: ip.payload).completePartialChecksum()
            case .udp: UDPView(unchecked: ip.payload).completePartialChecksum()
            default: break
            }
            counters.checksumsCompleted &+= 1
            tracer.record(.checksumCompleted)
        }
        return .forward(egress: r.interface)
    }

    // MARK: Rejects

    @inline(__always)
    mutating func reject(ip: IPv4View, frame: UnsafeMutableRawBufferPointer, info: FrameInfo,
                         reason: DropReason, state: ForwardingState) -> Verdict {
        icmpError(ip: ip, frame: frame, info: info, type: .destinationUnreachable,
                  code: ICMPCode.DestinationUnreachable.portUnreachable, reason: reason, state: state)
    }

    /// Replaces the frame with an ICMP error to its sender, sent back out of the ingress
    /// interface to the MAC it came from. A reject comes from the address the sender tried
    /// to reach (the Service IP), so the client's stack matches it to its socket and
    /// reports ECONNREFUSED; time exceeded comes from the ingress interface's address.
    /// Where RFC 1812 §4.3.2.7 forbids an error (about an ICMP error, a broadcast…), the
    /// packet is only dropped.
    mutating func icmpError(ip: IPv4View, frame: UnsafeMutableRawBufferPointer, info: FrameInfo,
                            type: ICMPType, code: UInt8, reason: DropReason, state: ForwardingState) -> Verdict {
        guard let ingress = state.interfaces.port(info.ingress) else { return .drop(reason) }
        if ip.protocol == .icmp, let i = try? ICMPView(checking: ip.payload), i.type.isError {
            return .drop(reason)
        }
        let source: IPv4Address
        if type == .timeExceeded {
            guard let a = ingress.primaryAddress else { return .drop(reason) }
            source = a
        } else {
            source = ip.destinationAddress
        }
        let destination = ip.sourceAddress
        let eth = EthernetView(unchecked: frame)
        let peerMAC = eth.source
        let out = UnsafeMutableRawBufferPointer(rebasing: frame[EthernetView.headerLength...])
        icmpIdentification &+= 1
        let written: Int
        do {
            written = try ICMPErrorWriter.write(type: type, code: code, source: source, destination: destination,
                                                quoting: ip, into: out, identification: icmpIdentification)
        } catch {
            return .drop(reason)
        }
        eth.destination = peerMAC
        eth.source = ingress.mac
        eth.etherType = .ipv4
        return .reject(egress: info.ingress, length: EthernetView.headerLength + written, reason: reason)
    }
}
