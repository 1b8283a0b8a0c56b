import FerryCore
import FerryPacket

// Checks that span objects. Each conflict names both sides: the diagnostic sits on the
// later occurrence and its message gives the earlier one's object and line, so a person
// can decide which of the two is wrong.

extension ManifestDecoder {
    mutating func validate(defaultCluster: ClusterConfig) {
        let config = cluster ?? defaultCluster
        let rangeText = "\(config.nodePortRange.lowerBound)-\(config.nodePortRange.upperBound)"

        // Duplicate Service names.
        var serviceIndex: [ServiceName: Int] = [:]
        for (i, s) in services.enumerated() {
            if let other = serviceIndex[s.spec.name] {
                error(.duplicateService, at: s.location, s.ref, "metadata.name",
                      "a second Service named \(s.spec.name); the first is at \(file):\(services[other].location.line)")
            } else {
                serviceIndex[s.spec.name] = i
            }
        }

        // Node ports: inside the range, and each (port, protocol) owned by one Service port.
        // The health-check node port is TCP (kube-proxy serves HTTP on it) and shares the
        // same space on every node.
        struct Owner { var service: Int; var field: String; var location: SourceLocation }
        var nodePortOwners: [UInt32: Owner] = [:]
        func claim(_ key: UInt32, _ owner: Owner, describe: String, decoder: inout ManifestDecoder) {
            if let other = nodePortOwners[key] {
                let o = decoder.services[other.service]
                decoder.error(.duplicateNodePort, at: owner.location, decoder.services[owner.service].ref, owner.field,
                              "\(describe) is already used by \(o.ref) \(other.field) (\(decoder.file):\(other.location.line))")
            } else {
                nodePortOwners[key] = owner
            }
        }
        for (si, s) in services.enumerated() {
            for np in s.nodePorts {
                guard config.nodePortRange.contains(np.value) else {
                    error(.nodePortOutOfRange, at: np.location, s.ref, np.field,
                          "\(np.value) is outside the NodePort range \(rangeText)")
                    continue
                }
                claim(UInt32(np.value) << 8 | UInt32(np.protocol.ipProtocol.rawValue),
                      Owner(service: si, field: np.field, location: np.location),
                      describe: "\(np.value)/\(np.protocol.rawValue)", decoder: &self)
            }
            if let hc = s.spec.healthCheckNodePort, let loc = s.healthCheckNodePort {
                guard config.nodePortRange.contains(hc) else {
                    error(.nodePortOutOfRange, at: loc, s.ref, "spec.healthCheckNodePort",
                          "\(hc) is outside the NodePort range \(rangeText)")
                    continue
                }
                claim(UInt32(hc) << 8 | UInt32(IPProtocol.tcp.rawValue),
                      Owner(service: si, field: "spec.healthCheckNodePort", location: loc),
                      describe: "\(hc)/TCP", decoder: &self)
            }
        }

        // Frontends: an (address, port, protocol) may belong to one Service only, whether
        // the address is a clusterIP, an externalIP or a load-balancer IP.
        var frontendOwners: [UInt64: Owner] = [:]
        for (si, s) in services.enumerated() where s.spec.isProxied || !s.spec.externalIPs.isEmpty {
            var claimedHere: Set<UInt64> = []
            for (address, field, location) in s.addressFields {
                for (pi, p) in s.spec.ports.enumerated() {
                    let key = UInt64(address.value) << 32 | UInt64(p.port) << 8 | UInt64(p.protocol.ipProtocol.rawValue)
                    guard claimedHere.insert(key).inserted else { continue }
                    if let other = frontendOwners[key], other.service != si {
                        let o = services[other.service]
                        error(.duplicateFrontend, at: location, s.ref, field,
                              "\(address):\(p.port)/\(p.protocol.rawValue) (spec.ports[\(pi)]) is already a frontend of \(o.ref) \(other.field) (\(file):\(other.location.line))")
                    } else if frontendOwners[key] == nil {
                        frontendOwners[key] = Owner(service: si, field: field, location: location)
                    }
                }
            }
        }

        // EndpointSlices: unique names, and each belongs to a Service in this file.
        var sliceIndex: [String: Int] = [:]
        var slicesByService: [ServiceName: [Int]] = [:]
        for (i, sl) in slices.enumerated() {
            let key = (sl.ref.namespace ?? "default") + "/" + sl.ref.name
            if let other = sliceIndex[key] {
                error(.duplicateEndpointSlice, at: sl.location, sl.ref, "metadata.name",
                      "a second EndpointSlice named \(key); the first is at \(file):\(slices[other].location.line)")
                continue
            }
            sliceIndex[key] = i
            guard sl.hasServiceLabel else {
                error(.orphanEndpointSlice, at: sl.labelLocation, sl.ref, "metadata.labels",
                      "no kubernetes.io/service-name label; expected the name of the Service this slice belongs to")
                continue
            }
            if serviceIndex[sl.spec.service] == nil {
                if skippedServices.contains(sl.spec.service) { continue }
                error(.orphanEndpointSlice, at: sl.labelLocation, sl.ref, "metadata.labels[kubernetes.io/service-name]",
                      "names Service \(sl.spec.service), which is not in this file")
                continue
            }
            slicesByService[sl.spec.service, default: []].append(i)
        }

        // Named targetPorts. The EndpointSlice controller resolves a named targetPort per pod
        // and publishes the number under the *Service port's* name; kube-proxy then matches
        // slice ports to Service ports by name and protocol (pkg/proxy/endpointslicecache.go).
        // A Service whose slices have endpoints but no such port has pods that do not expose
        // the named port: every connection to it would fail.
        for s in services where !s.namedTargetPorts.isEmpty {
            guard let indices = slicesByService[s.spec.name] else { continue }
            let withEndpoints = indices.filter { !slices[$0].spec.endpoints.isEmpty }
            guard !withEndpoints.isEmpty else { continue }
            for named in s.namedTargetPorts {
                let p = s.spec.ports[named.portIndex]
                let carried = withEndpoints.contains { si in
                    slices[si].spec.ports.contains { $0.name == p.name && $0.protocol == p.protocol }
                }
                if !carried, case .name(let targetName) = p.targetPort {
                    let portLabel = p.name.map { "\"\($0)\"" } ?? "(unnamed)"
                    let sliceNames = withEndpoints.map { slices[$0].ref.name }.joined(separator: ", ")
                    error(.unresolvedTargetPort, at: named.location, s.ref, "spec.ports[\(named.fileIndex)].targetPort",
                          "\"\(targetName)\" is not resolved by any EndpointSlice of the Service (\(sliceNames)): none carries a \(p.protocol.rawValue) port named \(portLabel)")
                }
            }
        }
    }

}
