import FerryCore
import FerryPacket

/// What changed between two loads of the manifest file. The agent logs it, and purges the
/// UDP conntrack entries of removed endpoints: UDP has no FIN, so without a purge a client
/// keeps sending to a backend that is gone until the entry times out (kube-proxy does the
/// same with `conntrack -D`, pkg/proxy/conntrack/cleanup.go).
public struct ControlPlaneDiff: Hashable, Sendable, CustomStringConvertible {
    /// Endpoint changes of one Service, by address (an endpoint listed in several slices
    /// of the Service counts once).
    public struct EndpointChanges: Hashable, Sendable {
        public var service: ServiceName
        /// Addresses new to the Service.
        public var added: [IPv4Address]
        /// Addresses no longer listed for the Service: their flows must be purged.
        public var removed: [IPv4Address]
        /// Addresses still listed whose conditions, node or ports changed.
        public var changed: [IPv4Address]

        public init(service: ServiceName, added: [IPv4Address] = [], removed: [IPv4Address] = [],
                    changed: [IPv4Address] = []) {
            self.service = service
            self.added = added
            self.removed = removed
            self.changed = changed
        }
    }

    /// Sorted by name.
    public var addedServices: [ServiceName]
    public var removedServices: [ServiceName]
    /// Services present in both whose spec differs.
    public var changedServices: [ServiceName]
    /// Services whose endpoints changed, sorted by name; addresses sorted.
    public var endpoints: [EndpointChanges]

    public var isEmpty: Bool {
        addedServices.isEmpty && removedServices.isEmpty && changedServices.isEmpty && endpoints.isEmpty
    }

    public init(old: ControlPlaneDocument, new: ControlPlaneDocument) {
        self.init(oldServices: old.services, oldSlices: old.slices, newServices: new.services, newSlices: new.slices)
    }

    public init(oldServices: [ServiceSpec], oldSlices: [EndpointSliceSpec],
                newServices: [ServiceSpec], newSlices: [EndpointSliceSpec]) {
        if oldServices == newServices {
            // The common case on an endpoint change: no Service was touched.
            addedServices = []
            removedServices = []
            changedServices = []
        } else {
            var before: [ServiceName: ServiceSpec] = [:]
            for s in oldServices { before[s.name] = s }
            var after: [ServiceName: ServiceSpec] = [:]
            for s in newServices { after[s.name] = s }
            addedServices = after.keys.filter { before[$0] == nil }.sorted()
            removedServices = before.keys.filter { after[$0] == nil }.sorted()
            changedServices = after.compactMap { name, spec in
                guard let old = before[name], old != spec else { return nil }
                return name
            }.sorted()
        }

        // A reload usually changes a few slices out of thousands: when the two lists line
        // up (same length, the file's order kept), only the Services of slices that differ
        // need their endpoints compared, and equal slices are skipped without building the
        // per-address maps (which cost more than the rest of a reload's table update).
        var candidates: Set<ServiceName>?
        if oldSlices.count == newSlices.count {
            var differing = Set<ServiceName>()
            for i in oldSlices.indices where oldSlices[i] != newSlices[i] {
                differing.insert(oldSlices[i].service)
                differing.insert(newSlices[i].service)
            }
            candidates = differing
        }
        let oldEndpoints: [ServiceName: [IPv4Address: EndpointState]]
        let newEndpoints: [ServiceName: [IPv4Address: EndpointState]]
        if let candidates {
            oldEndpoints = candidates.isEmpty ? [:] : ControlPlaneDiff.endpointsByService(oldSlices.filter { candidates.contains($0.service) })
            newEndpoints = candidates.isEmpty ? [:] : ControlPlaneDiff.endpointsByService(newSlices.filter { candidates.contains($0.service) })
        } else {
            oldEndpoints = ControlPlaneDiff.endpointsByService(oldSlices)
            newEndpoints = ControlPlaneDiff.endpointsByService(newSlices)
        }
        var changes: [EndpointChanges] = []
        for service in Set(oldEndpoints.keys).union(newEndpoints.keys).sorted() {
            let o = oldEndpoints[service] ?? [:]
            let n = newEndpoints[service] ?? [:]
            var c = EndpointChanges(service: service)
            for (address, state) in n {
                if let previous = o[address] {
                    if previous != state { c.changed.append(address) }
                } else {
                    c.added.append(address)
                }
            }
            for address in o.keys where n[address] == nil { c.removed.append(address) }
            guard !(c.added.isEmpty && c.removed.isEmpty && c.changed.isEmpty) else { continue }
            c.added.sort()
            c.removed.sort()
            c.changed.sort()
            changes.append(c)
        }
        endpoints = changes
    }

    /// Every removed (service, address) pair: the conntrack purge list.
    public var removedEndpoints: [(service: ServiceName, address: IPv4Address)] {
        endpoints.flatMap { c in c.removed.map { (c.service, $0) } }
    }

    /// One line per change, for the agent's log:
    /// `service added default/web`, `endpoints default/web: +10.244.1.5 -10.244.2.7 ~10.244.3.1`.
    public var description: String {
        var lines: [String] = []
        for s in addedServices { lines.append("service added \(s)") }
        for s in removedServices { lines.append("service removed \(s)") }
        for s in changedServices { lines.append("service changed \(s)") }
        for c in endpoints {
            let parts = c.added.map { "+\($0)" } + c.removed.map { "-\($0)" } + c.changed.map { "~\($0)" }
            lines.append("endpoints \(c.service): " + parts.joined(separator: " "))
        }
        return lines.isEmpty ? "no changes" : lines.joined(separator: "\n")
    }

    /// What an endpoint is to the dataplane: its conditions, node and the ports of its slice.
    private struct EndpointState: Hashable {
        var endpoint: EndpointSpec
        var ports: [EndpointPortSpec]
    }

    private static func endpointsByService(_ slices: [EndpointSliceSpec]) -> [ServiceName: [IPv4Address: EndpointState]] {
        var result: [ServiceName: [IPv4Address: EndpointState]] = [:]
        for slice in slices {
            let ports = slice.ports.sorted { a, b in
                (a.name ?? "", a.protocol.rawValue, a.port) < (b.name ?? "", b.protocol.rawValue, b.port)
            }
            // Mutated in place: a copy taken out and stored back would be copied whole
            // on the first insert while the dictionary still holds the original.
            for e in slice.endpoints where result[slice.service, default: [:]][e.address] == nil {
                result[slice.service, default: [:]][e.address] = EndpointState(endpoint: e, ports: ports)
            }
        }
        return result
    }
}
