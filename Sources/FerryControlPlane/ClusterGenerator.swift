// Synthetic clusters for benchmarks and scale tests: the same objects a real cluster's
// `kubectl get svc,endpointslices -A -o yaml` (or `-o json`) prints, with the metadata
// noise (uids, resourceVersions, ownerReferences, last-applied annotations) that the
// loader must read past. Deterministic for a given seed.

public enum ClusterGenerator {
    /// A `v1 List` of `services` Services (about 65% ClusterIP, 20% NodePort, 15%
    /// LoadBalancer while node ports last) and their EndpointSlices, `endpointsPerService`
    /// endpoints each, split into slices of at most 100 as the EndpointSlice controller does.
    /// Names are `svc-00042`; ClusterIPs are in 10.96.0.0/12, pods in 10.244.0.0/16 (one
    /// /24 per node), node ports unique in `nodePortRange` (kube-apiserver's default
    /// 30000-32767), load-balancer IPs in 198.18.0.0/15. When node ports run out, the
    /// remaining Services are ClusterIP, as an API server would refuse more.
    public static func kubectlYAML(services: Int, endpointsPerService: Int, seed: UInt64,
                                   nodePortRange: ClosedRange<UInt16> = 30000...32767) -> String {
        var out = ""
        out.reserveCapacity(services * (1200 + endpointsPerService * 330))
        YAMLEmitter.emitDocument(list(services: services, endpointsPerService: endpointsPerService, seed: seed,
                                      nodePortRange: nodePortRange), into: &out)
        return out
    }

    /// The same cluster as `kubectlYAML`, as `kubectl get -o json` prints it.
    public static func kubectlJSON(services: Int, endpointsPerService: Int, seed: UInt64,
                                   nodePortRange: ClosedRange<UInt16> = 30000...32767) -> String {
        var out = ""
        out.reserveCapacity(services * (1800 + endpointsPerService * 520))
        JSONEmitter.emit(list(services: services, endpointsPerService: endpointsPerService, seed: seed,
                              nodePortRange: nodePortRange), indent: 0, into: &out)
        out += "\n"
        return out
    }

    // MARK: The objects

    private static func list(services count: Int, endpointsPerService: Int, seed: UInt64,
                             nodePortRange: ClosedRange<UInt16>) -> GenValue {
        var rng = SeededGenerator(seed: seed)
        var items: [GenValue] = []
        items.reserveCapacity(count * 2)
        var nextNodePort = Int(nodePortRange.lowerBound)
        let lastNodePort = Int(nodePortRange.upperBound)
        var lbCount: UInt32 = 0
        var externalCount: UInt32 = 0
        var podCounter = 0
        var resourceVersion = 1000

        for i in 0..<count {
            let name = "svc-" + pad(i, 5)
            let namespace = "ns-" + pad(i % 20, 2)
            let serviceUID = rng.uuid()

            // Port layout.
            let layout = rng.below(100)
            struct PortDef { var name: String?; var proto: String; var port: Int; var target: GenValue; var targetNumber: Int }
            var ports: [PortDef]
            if layout < 70 {
                let named = rng.below(4) == 0
                ports = [PortDef(name: "http", proto: "TCP", port: 80, target: named ? .string("http") : .int(8080), targetNumber: 8080)]
            } else if layout < 95 {
                ports = [PortDef(name: "http", proto: "TCP", port: 80, target: .string("http"), targetNumber: 8080),
                         PortDef(name: "metrics", proto: "TCP", port: 9090, target: .string("metrics"), targetNumber: 9090)]
            } else {
                ports = [PortDef(name: "dns", proto: "UDP", port: 53, target: .int(53), targetNumber: 53),
                         PortDef(name: "dns-tcp", proto: "TCP", port: 53, target: .int(53), targetNumber: 53),
                         PortDef(name: "metrics", proto: "TCP", port: 9153, target: .int(9153), targetNumber: 9153)]
            }

            var type = "ClusterIP"
            let kind = rng.below(100)
            if kind >= 65 { type = kind < 85 ? "NodePort" : "LoadBalancer" }
            let local = type != "ClusterIP" && rng.below(10) < 3
            let needed = ports.count + (type == "LoadBalancer" && local ? 1 : 0)
            if type != "ClusterIP" && nextNodePort + needed - 1 > lastNodePort { type = "ClusterIP" }
            let isLocal = local && type != "ClusterIP"

            let clusterIP = ipString(0x0A60_0000 + 11 + UInt32(i))  // 10.96.0.11 onward; .1 and .10 are kubernetes and DNS
            var specPairs: [(String, GenValue)] = [("clusterIP", .string(clusterIP)),
                                                   ("clusterIPs", .list([.string(clusterIP)]))]
            if type == "ClusterIP" && rng.below(50) == 0 {
                externalCount += 1
                specPairs.append(("externalIPs", .list([.string(ipString(0x6440_0000 + externalCount))])))
            }
            if type != "ClusterIP" { specPairs.append(("externalTrafficPolicy", .string(isLocal ? "Local" : "Cluster"))) }
            if type == "LoadBalancer" && isLocal {
                specPairs.append(("healthCheckNodePort", .int(nextNodePort)))
                nextNodePort += 1
            }
            specPairs.append(("internalTrafficPolicy", .string("Cluster")))
            specPairs.append(("ipFamilies", .list([.string("IPv4")])))
            specPairs.append(("ipFamilyPolicy", .string("SingleStack")))
            var portValues: [GenValue] = []
            for p in ports {
                var pairs: [(String, GenValue)] = []
                if let n = p.name { pairs.append(("name", .string(n))) }
                if type != "ClusterIP" {
                    pairs.append(("nodePort", .int(nextNodePort)))
                    nextNodePort += 1
                }
                pairs.append(("port", .int(p.port)))
                pairs.append(("protocol", .string(p.proto)))
                pairs.append(("targetPort", p.target))
                portValues.append(.map(pairs))
            }
            specPairs.append(("ports", .list(portValues)))
            specPairs.append(("selector", .map([("app", .string(name))])))
            if rng.below(10) == 0 {
                specPairs.append(("sessionAffinity", .string("ClientIP")))
                specPairs.append(("sessionAffinityConfig", .map([("clientIP", .map([("timeoutSeconds", .int(10800))]))])))
            } else {
                specPairs.append(("sessionAffinity", .string("None")))
            }
            if type == "LoadBalancer" { specPairs.append(("allocateLoadBalancerNodePorts", .bool(true))) }
            specPairs.append(("type", .string(type)))

            var status: [(String, GenValue)] = [("loadBalancer", .map([]))]
            if type == "LoadBalancer" {
                lbCount += 1
                status = [("loadBalancer", .map([("ingress", .list([.map([("ip", .string(ipString(0xC612_0000 + lbCount))),
                                                                          ("ipMode", .string("VIP"))])]))]))]
            }

            resourceVersion += 1 + rng.below(50)
            var annotations: [(String, GenValue)] = []
            if i % 10 == 0 {
                // kubectl apply leaves the applied object as JSON text in an annotation.
                annotations.append(("kubectl.kubernetes.io/last-applied-configuration",
                                    .string("{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"annotations\":{},\"name\":\"\(name)\",\"namespace\":\"\(namespace)\"},\"spec\":{\"selector\":{\"app\":\"\(name)\"},\"type\":\"\(type)\"}}\n")))
            }
            var meta: [(String, GenValue)] = []
            if !annotations.isEmpty { meta.append(("annotations", .map(annotations))) }
            meta += [("creationTimestamp", .string(timestamp(rng.below(86400)))),
                     ("labels", .map([("app", .string(name)), ("tier", .string(i % 3 == 0 ? "frontend" : "backend"))])),
                     ("name", .string(name)), ("namespace", .string(namespace)),
                     ("resourceVersion", .string(String(resourceVersion))), ("uid", .string(serviceUID))]
            items.append(.map([("apiVersion", .string("v1")), ("kind", .string("Service")), ("metadata", .map(meta)),
                               ("spec", .map(specPairs)), ("status", .map(status))]))

            // EndpointSlices, at most 100 endpoints each (the controller's default
            // --max-endpoints-per-slice).
            let slicePorts: [GenValue] = ports.map { p in
                var pairs: [(String, GenValue)] = []
                if let n = p.name { pairs.append(("name", .string(n))) }
                pairs += [("port", .int(p.targetNumber)), ("protocol", .string(p.proto))]
                return .map(pairs)
            }
            var remaining = endpointsPerService
            repeat {
                let n = min(remaining, 100)
                remaining -= n
                var endpoints: [GenValue] = []
                endpoints.reserveCapacity(n)
                for _ in 0..<n {
                    let third = (podCounter / 254) % 256
                    let address = ipString(0x0AF4_0000 | UInt32(third) << 8 | UInt32(podCounter % 254 + 1))
                    podCounter += 1
                    let roll = rng.below(100)
                    let (ready, serving, terminating) = roll < 95 ? (true, true, false) : roll < 98 ? (false, true, true) : (false, false, false)
                    let pod = name + "-" + rng.token(10, hex: true) + "-" + rng.token(5, hex: false)
                    endpoints.append(.map([
                        ("addresses", .list([.string(address)])),
                        ("conditions", .map([("ready", .bool(ready)), ("serving", .bool(serving)), ("terminating", .bool(terminating))])),
                        ("nodeName", .string("node-\(third)")),
                        ("targetRef", .map([("kind", .string("Pod")), ("name", .string(pod)), ("namespace", .string(namespace)),
                                            ("uid", .string(rng.uuid()))])),
                    ]))
                }
                resourceVersion += 1 + rng.below(50)
                let sliceMeta: [(String, GenValue)] = [
                    ("annotations", .map([("endpoints.kubernetes.io/last-change-trigger-time", .string(timestamp(rng.below(86400))))])),
                    ("creationTimestamp", .string(timestamp(rng.below(86400)))),
                    ("generateName", .string(name + "-")),
                    ("generation", .int(1 + rng.below(20))),
                    ("labels", .map([("app", .string(name)),
                                     ("endpointslice.kubernetes.io/managed-by", .string("endpointslice-controller.k8s.io")),
                                     ("kubernetes.io/service-name", .string(name))])),
                    ("name", .string(name + "-" + rng.token(5, hex: false))),
                    ("namespace", .string(namespace)),
                    ("ownerReferences", .list([.map([("apiVersion", .string("v1")), ("blockOwnerDeletion", .bool(true)),
                                                     ("controller", .bool(true)), ("kind", .string("Service")),
                                                     ("name", .string(name)), ("uid", .string(serviceUID))])])),
                    ("resourceVersion", .string(String(resourceVersion))),
                    ("uid", .string(rng.uuid())),
                ]
                items.append(.map([("addressType", .string("IPv4")), ("apiVersion", .string("discovery.k8s.io/v1")),
                                   ("endpoints", n == 0 ? .null : .list(endpoints)), ("kind", .string("EndpointSlice")),
                                   ("metadata", .map(sliceMeta)), ("ports", n == 0 ? .null : .list(slicePorts))]))
            } while remaining > 0
        }
        return .map([("apiVersion", .string("v1")), ("items", .list(items)), ("kind", .string("List")),
                     ("metadata", .map([("resourceVersion", .string(""))]))])
    }

    private static func pad(_ n: Int, _ width: Int) -> String {
        let s = String(n)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    private static func ipString(_ v: UInt32) -> String {
        "\(v >> 24).\(v >> 16 & 0xFF).\(v >> 8 & 0xFF).\(v & 0xFF)"
    }

    private static func timestamp(_ secondsIntoDay: Int) -> String {
        "2026-11-20T\(pad(secondsIntoDay / 3600, 2)):\(pad(secondsIntoDay / 60 % 60, 2)):\(pad(secondsIntoDay % 60, 2))Z"
    }
}

/// A generated value; mappings keep the order given (Go struct order, as `-o json` prints).
enum GenValue {
    case map([(String, GenValue)])
    case list([GenValue])
    case string(String)
    case int(Int)
    case bool(Bool)
    case null
}

/// SplitMix64 (Steele, Lea, Flood 2014): a small, fast, seedable generator; the output
/// only has to look random, not be secure.
struct SeededGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    /// Lowercase alphanumerics as Kubernetes' generateName suffixes use (no vowels, so no
    /// words), or hex digits for ReplicaSet hashes.
    mutating func token(_ count: Int, hex: Bool) -> String {
        let alphabet: StaticString = hex ? "0123456789abcdef" : "bcdfghjklmnpqrstvwxz2456789"
        return alphabet.withUTF8Buffer { a in
            var bytes: [UInt8] = []
            bytes.reserveCapacity(count)
            for _ in 0..<count { bytes.append(a[below(a.count)]) }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    mutating func uuid() -> String {
        let hi = next(), lo = next()
        func hex(_ v: UInt64, _ digits: Int) -> String {
            let s = String(v, radix: 16)
            return String(repeating: "0", count: max(0, digits - s.count)) + s
        }
        return hex(hi >> 32, 8) + "-" + hex(hi >> 16 & 0xFFFF, 4) + "-4" + hex(hi & 0xFFF, 3) + "-"
            + hex(0x8000 | lo >> 48 & 0x3FFF, 4) + "-" + hex(lo & 0xFFFF_FFFF_FFFF, 12)
    }
}

/// kubectl's YAML layout: keys sorted, two-space indent, list items at their key's indent.
enum YAMLEmitter {
    static func emitDocument(_ v: GenValue, into out: inout String) {
        guard case .map(let pairs) = v else { return }
        mapping(pairs, indent: 0, inlineFirst: false, into: &out)
    }

    static func mapping(_ pairs: [(String, GenValue)], indent: Int, inlineFirst: Bool, into out: inout String) {
        let sortedPairs = pairs.sorted { $0.0 < $1.0 }
        for (n, (key, value)) in sortedPairs.enumerated() {
            if !(n == 0 && inlineFirst) { out += String(repeating: " ", count: indent) }
            out += key
            out += ":"
            switch value {
            case .map(let m) where m.isEmpty:
                out += " {}\n"
            case .map(let m):
                out += "\n"
                mapping(m, indent: indent + 2, inlineFirst: false, into: &out)
            case .list(let l) where l.isEmpty:
                out += " []\n"
            case .list(let l):
                out += "\n"
                list(l, indent: indent, into: &out)
            case .string(let s) where s.contains("\n"):
                out += s.hasSuffix("\n") ? " |\n" : " |-\n"
                for line in s.split(separator: "\n", omittingEmptySubsequences: false).dropLast(s.hasSuffix("\n") ? 1 : 0) {
                    out += String(repeating: " ", count: indent + 2)
                    out += line
                    out += "\n"
                }
            default:
                out += " "
                scalar(value, into: &out)
                out += "\n"
            }
        }
    }

    static func list(_ items: [GenValue], indent: Int, into out: inout String) {
        for item in items {
            out += String(repeating: " ", count: indent)
            out += "- "
            switch item {
            case .map(let m) where !m.isEmpty:
                mapping(m, indent: indent + 2, inlineFirst: true, into: &out)
            case .list(let l) where !l.isEmpty:
                out += "\n"
                list(l, indent: indent + 2, into: &out)
            case .map: out += "{}\n"
            case .list: out += "[]\n"
            default:
                scalar(item, into: &out)
                out += "\n"
            }
        }
    }

    static func scalar(_ v: GenValue, into out: inout String) {
        switch v {
        case .string(let s):
            if needsQuotes(s) {
                out += "\""
                for ch in s.unicodeScalars {
                    switch ch {
                    case "\"": out += "\\\""
                    case "\\": out += "\\\\"
                    default: out.unicodeScalars.append(ch)
                    }
                }
                out += "\""
            } else {
                out += s
            }
        case .int(let n): out += String(n)
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        case .map, .list: break
        }
    }

    /// Quote what a YAML reader would otherwise take for another type or syntax, as
    /// go-yaml does for kubectl: empty strings, numbers, bools, nulls, timestamps, and
    /// text starting with an indicator character.
    static func needsQuotes(_ s: String) -> Bool {
        guard let first = s.utf8.first else { return true }
        switch s {
        case "true", "false", "True", "False", "TRUE", "FALSE", "null", "Null", "NULL", "~",
             "yes", "no", "on", "off", "y", "n": return true
        default: break
        }
        if YAMLReader.looksNumeric(s) { return true }
        if "-?:,[]{}#&*!|>'\"%@`".utf8.contains(first) || first == UInt8(ascii: " ") { return true }
        if s.contains(": ") || s.contains(" #") || s.hasSuffix(":") || s.hasSuffix(" ") { return true }
        // Timestamps (2026-11-20T10:00:00Z) resolve to dates in YAML 1.1.
        if first &- UInt8(ascii: "0") < 10, s.utf8.count >= 10, Array(s.utf8)[4] == UInt8(ascii: "-") { return true }
        return false
    }
}

/// kubectl's JSON layout: four-space indent, keys in the order given.
enum JSONEmitter {
    static func emit(_ v: GenValue, indent: Int, into out: inout String) {
        switch v {
        case .map(let pairs):
            if pairs.isEmpty { out += "{}"; return }
            out += "{\n"
            for (n, (key, value)) in pairs.enumerated() {
                out += String(repeating: " ", count: indent + 4)
                string(key, into: &out)
                out += ": "
                emit(value, indent: indent + 4, into: &out)
                out += n + 1 < pairs.count ? ",\n" : "\n"
            }
            out += String(repeating: " ", count: indent) + "}"
        case .list(let items):
            if items.isEmpty { out += "[]"; return }
            out += "[\n"
            for (n, item) in items.enumerated() {
                out += String(repeating: " ", count: indent + 4)
                emit(item, indent: indent + 4, into: &out)
                out += n + 1 < items.count ? ",\n" : "\n"
            }
            out += String(repeating: " ", count: indent) + "]"
        case .string(let s): string(s, into: &out)
        case .int(let n): out += String(n)
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        }
    }

    static func string(_ s: String, into out: inout String) {
        out += "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if ch.value < 0x20 {
                    let h = String(ch.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(ch)
                }
            }
        }
        out += "\""
    }
}
