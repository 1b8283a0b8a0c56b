import FerryPacket

/// A UDP backend that left a Service frontend: the frontend's address (nil for a NodePort,
/// which answers on every node address) and port, and the endpoint's address.
public struct RemovedUDPBackend: Hashable, Sendable {
    public var frontendAddress: IPv4Address?
    public var frontendPort: UInt16
    public var endpoint: IPv4Address
    public init(frontendAddress: IPv4Address?, frontendPort: UInt16, endpoint: IPv4Address) {
        self.frontendAddress = frontendAddress
        self.frontendPort = frontendPort
        self.endpoint = endpoint
    }
}

extension ServiceTable {
    /// The UDP frontends of `service` paired with each of `endpoints`, for
    /// `ConntrackTable.removeUDPEntries`. Call it on the table the endpoints were in.
    public func removedUDPBackends(service: ServiceName, endpoints: [IPv4Address]) -> [RemovedUDPBackend] {
        var out: [RemovedUDPBackend] = []
        for f in frontends(of: service) where f.protocol == .udp {
            for e in endpoints {
                out.append(RemovedUDPBackend(frontendAddress: f.kind == .nodePort ? nil : f.address,
                                             frontendPort: f.port, endpoint: e))
            }
        }
        return out
    }
}

extension ConntrackTable {
    /// Clears the UDP entries from a Service frontend to a backend that left it.
    ///
    /// Policy, as kube-proxy's conntrack cleanup (`conntrack -D -p udp --orig-dst <VIP>
    /// --dst-nat <endpoint>`, and by NodePort): UDP has no connection to end, so an entry
    /// to a gone endpoint would blackhole its client (a DNS resolver above all) until it
    /// times out; removing it lets the next datagram pick a live backend. TCP entries are
    /// kept: a removed endpoint is often still draining (terminating), and to a dead one
    /// the client's retransmits fail and it reconnects into a new flow. Session affinity to
    /// a removed endpoint is ignored at selection time (the backend is no longer in the
    /// set) and expires on its own timeout.
    /// - Returns: how many entries were removed.
    @discardableResult
    public func removeUDPEntries(_ removed: Set<RemovedUDPBackend>) -> Int {
        guard !removed.isEmpty else { return 0 }
        return removeAll { e in
            guard e.protocol == .udp else { return false }
            let port = e.original.destinationPort
            let backend = e.reply.source
            return removed.contains(RemovedUDPBackend(frontendAddress: e.original.destination, frontendPort: port, endpoint: backend))
                || removed.contains(RemovedUDPBackend(frontendAddress: nil, frontendPort: port, endpoint: backend))
        }
    }
}
