import FerryCore
import FerryPacket

// Kubernetes objects (as `kubectl get svc,endpointslices -A -o yaml|json` prints them) to
// FerryCore's model. Each object is decoded on its own and every problem is collected;
// checks that span objects (duplicate nodePorts, orphan slices, named targetPorts) run
// afterwards in Validation.swift on the located values recorded here.
//
// Field rules follow the API server's validation (kubernetes pkg/apis/core/validation/
// validation.go, ValidateService; pkg/apis/discovery/validation) so that a file Ferry
// accepts is one the API server would have accepted, and defaults follow the API types'
// documented defaults (k8s.io/api core/v1 and discovery/v1 types.go).

/// `Service default/web` in messages.
struct ObjectRef: CustomStringConvertible {
    var kind: String
    var namespace: String?
    var name: String
    var description: String {
        if let namespace { return "\(kind) \(namespace)/\(name)" }
        return "\(kind) \(name)"
    }
}

/// A Service with the places its cross-checked values came from.
struct DecodedService {
    var spec: ServiceSpec
    var ref: ObjectRef
    var location: SourceLocation
    struct LocatedPort {
        var portIndex: Int
        var value: UInt16
        var `protocol`: ServiceProtocol
        var location: SourceLocation
        var field: String { "spec.ports[\(portIndex)].nodePort" }
    }
    var nodePorts: [LocatedPort] = []
    var healthCheckNodePort: SourceLocation?
    struct LocatedTargetPort {
        /// Index into `spec.ports`, which skips ports Ferry cannot proxy.
        var portIndex: Int
        /// Index in the file's `spec.ports`, for messages.
        var fileIndex: Int
        var location: SourceLocation
    }
    /// Ports whose targetPort is a name, by index into `spec.ports`.
    var namedTargetPorts: [LocatedTargetPort] = []
    /// Where each frontend address came from, in the order clusterIP, externalIPs, LB IPs.
    var addressFields: [(IPv4Address, String, SourceLocation)] = []
}

struct DecodedSlice {
    var spec: EndpointSliceSpec
    var ref: ObjectRef
    var location: SourceLocation
    /// The service-name label's location (the object's when the label is missing).
    var labelLocation: SourceLocation
    var hasServiceLabel: Bool
}

/// Features that change behaviour and that Ferry does not implement. Each is reported
/// once per file (with the first place it appears and how often), never dropped silently.
enum UnsupportedFeature: Int, CaseIterable {
    case ipv6
    case sctp
    case trafficDistribution
    case topologyHints
    case loadBalancerClass
    case loadBalancerHostname
    case loadBalancerIPModeProxy
    case serviceProxyName
    case nonIPv4EndpointSlice
    case portlessEndpointPort

    var explanation: String {
        switch self {
        case .ipv6: return "IPv6 is not supported; Ferry proxies the IPv4 family only and ignores IPv6 addresses"
        case .sctp: return "SCTP is not supported; the port is not proxied"
        case .trafficDistribution:
            return "trafficDistribution is not supported; Ferry spreads traffic over all ready endpoints"
        case .topologyHints:
            return "topology-aware routing (hints) is not supported; Ferry ignores zone hints and uses all ready endpoints"
        case .loadBalancerClass:
            return "loadBalancerClass is not supported; Ferry proxies the Service's load-balancer IPs as for the default class"
        case .loadBalancerHostname:
            return "a load-balancer ingress with only a hostname is not supported; it gets no frontend"
        case .loadBalancerIPModeProxy:
            return "ipMode Proxy is not supported; Ferry captures the load-balancer IP as with ipMode VIP"
        case .serviceProxyName:
            return "the service.kubernetes.io/service-proxy-name label hands the Service to another proxy; Ferry skips it, as kube-proxy does"
        case .nonIPv4EndpointSlice:
            return "only IPv4 EndpointSlices are supported; this slice is skipped"
        case .portlessEndpointPort:
            return "an EndpointSlice port without a number (all ports) is not supported; the port is skipped"
        }
    }
}

struct ManifestDecoder {
    let tree: ManifestTree
    let file: String
    var errors: [Diagnostic] = []
    var warnings: [Diagnostic] = []
    var services: [DecodedService] = []
    var slices: [DecodedSlice] = []
    var cluster: ClusterConfig?
    var clusterLocation: SourceLocation?
    var nodes: [NodeAddresses] = []
    /// Services Ferry knows of but does not proxy (IPv6-only, another proxy's): slices that
    /// name them are not orphans.
    var skippedServices: Set<ServiceName> = []

    private var featureUses: [(first: Diagnostic, count: Int)?] = Array(repeating: nil, count: UnsupportedFeature.allCases.count)
    private var skippedKinds: [String: (first: SourceLocation, kind: String, apiVersion: String, count: Int)] = [:]
    private var skippedKindOrder: [String] = []

    init(tree: ManifestTree, file: String) {
        self.tree = tree
        self.file = file
    }

    typealias Index = ManifestTree.Index

    // MARK: Reporting

    mutating func error(_ code: Diagnostic.Code, at i: Index?, _ ref: ObjectRef?, _ field: String?, _ message: String) {
        let loc = i.map(tree.location)
        error(code, at: loc, ref, field, message)
    }

    mutating func error(_ code: Diagnostic.Code, at loc: SourceLocation?, _ ref: ObjectRef?, _ field: String?, _ message: String) {
        errors.append(Diagnostic(severity: .error, code: code, file: file, line: loc?.line, column: loc?.column,
                                 object: ref?.description, field: field, message: message))
    }

    mutating func warning(_ code: Diagnostic.Code, at i: Index?, _ ref: ObjectRef?, _ field: String?, _ message: String) {
        let loc = i.map(tree.location)
        warnings.append(Diagnostic(severity: .warning, code: code, file: file, line: loc?.line, column: loc?.column,
                                   object: ref?.description, field: field, message: message))
    }

    mutating func unsupported(_ feature: UnsupportedFeature, at i: Index, _ ref: ObjectRef, _ field: @autoclosure () -> String) {
        let loc = tree.location(i)
        var count = 1
        if let use = featureUses[feature.rawValue] {
            count = use.count + 1
            // Keep the earliest place in the file (fields are not decoded in file order).
            if let l = use.first.line, let c = use.first.column, (l, c) <= (loc.line, loc.column) {
                featureUses[feature.rawValue] = (use.first, count)
                return
            }
        }
        featureUses[feature.rawValue] = (Diagnostic(severity: .warning, code: .unsupportedFeature, file: file,
                                                    line: loc.line, column: loc.column, object: ref.description,
                                                    field: field(), message: feature.explanation), count)
    }

    /// Warnings for unsupported features and skipped kinds, one each.
    mutating func flushOnceWarnings() {
        for case let (first, count)? in featureUses {
            var d = first
            if count > 1 { d.message += " (\(count) places in this file; the first is shown)" }
            warnings.append(d)
        }
        featureUses = Array(repeating: nil, count: UnsupportedFeature.allCases.count)
        for key in skippedKindOrder {
            guard let s = skippedKinds[key] else { continue }
            let objects = s.count == 1 ? "1 \(s.kind) object" : "\(s.count) \(s.kind) objects"
            var why = "Ferry reads v1 Service, discovery.k8s.io/v1 EndpointSlice and ferry.dev/v1 ClusterConfig"
            if s.kind == "Endpoints" { why += " (EndpointSlices replace v1 Endpoints)" }
            warnings.append(Diagnostic(severity: .warning, code: .skippedKind, file: file, line: s.first.line,
                                       column: s.first.column, object: nil, field: nil,
                                       message: "skipped \(objects) (apiVersion \(s.apiVersion)): \(why)"))
        }
        skippedKinds = [:]
        skippedKindOrder = []
    }

    // MARK: Typed field access

    /// A text field: nil when absent or null; a type error when it holds a number, a list
    /// or a mapping (the API's JSON decoding rejects those).
    mutating func string(_ key: StaticString, in m: Index, _ ref: ObjectRef?, _ path: @autoclosure () -> String) -> (String, Index)? {
        guard let v = tree.value(key, in: m) else { return nil }
        switch tree.kind(v) {
        case .string, .plain: return (tree.string(v) ?? "", v)
        case .null: return nil
        default:
            error(.wrongType, at: v, ref, path(), "expected a string, found \(tree.describe(v))")
            return nil
        }
    }

    mutating func integer(_ key: StaticString, in m: Index, _ ref: ObjectRef?, _ path: @autoclosure () -> String) -> (Int, Index)? {
        guard let v = tree.value(key, in: m) else { return nil }
        if tree.kind(v) == .null { return nil }
        guard let n = tree.integer(v) else {
            error(.wrongType, at: v, ref, path(), "expected an integer, found \(tree.describe(v))")
            return nil
        }
        return (n, v)
    }

    mutating func bool(_ key: StaticString, in m: Index, _ ref: ObjectRef?, _ path: @autoclosure () -> String) -> Bool? {
        guard let v = tree.value(key, in: m) else { return nil }
        if tree.kind(v) == .null { return nil }
        guard let b = tree.bool(v) else {
            error(.wrongType, at: v, ref, path(), "expected true or false, found \(tree.describe(v))")
            return nil
        }
        return b
    }

    /// A list field: nil when absent or null, a type error for anything but a list.
    mutating func list(_ key: StaticString, in m: Index, _ ref: ObjectRef?, _ path: @autoclosure () -> String) -> Index? {
        guard let v = tree.value(key, in: m) else { return nil }
        switch tree.kind(v) {
        case .sequence: return v
        case .null: return nil
        default:
            error(.wrongType, at: v, ref, path(), "expected a list, found \(tree.describe(v))")
            return nil
        }
    }

    mutating func mapping(_ key: StaticString, in m: Index, _ ref: ObjectRef?, _ path: @autoclosure () -> String) -> Index? {
        guard let v = tree.value(key, in: m) else { return nil }
        switch tree.kind(v) {
        case .mapping: return v
        case .null: return nil
        default:
            error(.wrongType, at: v, ref, path(), "expected a mapping, found \(tree.describe(v))")
            return nil
        }
    }

    /// A port number in 1...65535 (the API's `validation.IsValidPortNum`).
    mutating func port(_ key: StaticString, in m: Index, _ ref: ObjectRef?, _ path: @autoclosure () -> String) -> (UInt16, Index)? {
        guard let (n, v) = integer(key, in: m, ref, path()) else { return nil }
        guard (1...65535).contains(n) else {
            error(.portOutOfRange, at: v, ref, path(), "\(n) is not a port number; expected 1-65535")
            return nil
        }
        return (UInt16(n), v)
    }

    /// `protocol`, defaulting to TCP as the API does. SCTP is valid Kubernetes that Ferry
    /// does not proxy (a warning, and the caller skips the port); anything else is an error.
    enum ProtocolResult { case ok(ServiceProtocol), sctp, invalid }

    mutating func serviceProtocol(in m: Index, _ ref: ObjectRef, _ path: @autoclosure () -> String) -> ProtocolResult {
        guard let v = tree.value("protocol", in: m), tree.kind(v) != .null else { return .ok(.tcp) }
        if tree.equals(v, "TCP") { return .ok(.tcp) }
        if tree.equals(v, "UDP") { return .ok(.udp) }
        if tree.equals(v, "SCTP") {
            unsupported(.sctp, at: v, ref, path())
            return .sctp
        }
        error(.invalidProtocol, at: v, ref, path(), "\(tree.describe(v)) is not a Service protocol; expected TCP or UDP")
        return .invalid
    }

    /// An IPv4 address, or nil after reporting: IPv6 text is the `ipv6` warning, anything
    /// else an invalid-address error.
    mutating func ipv4(_ v: Index, _ ref: ObjectRef, _ path: @autoclosure () -> String) -> IPv4Address? {
        guard tree.kind(v) == .string || tree.kind(v) == .plain, let s = tree.string(v) else {
            error(.wrongType, at: v, ref, path(), "expected an IP address, found \(tree.describe(v))")
            return nil
        }
        if let a = IPv4Address(s) { return a }
        if isIPv6(s) {
            unsupported(.ipv6, at: v, ref, path())
            return nil
        }
        error(.invalidAddress, at: v, ref, path(), "\"\(s)\" is not a valid IPv4 address")
        return nil
    }

    /// Enough to tell an IPv6 address (or prefix) from a typo: hex digits, colons, at most
    /// one "::", an optional embedded IPv4 tail and prefix length.
    func isIPv6(_ s: String) -> Bool {
        let addr = s.split(separator: "/", maxSplits: 1).first ?? ""
        guard addr.contains(":") else { return false }
        var colons = 0
        for u in addr.utf8 {
            switch u {
            case UInt8(ascii: ":"): colons += 1
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"),
                 UInt8(ascii: "A")...UInt8(ascii: "F"), UInt8(ascii: "."): break
            default: return false
            }
        }
        return colons >= 2 && colons <= 7
    }

    // MARK: Documents

    mutating func decodeAll() {
        for root in tree.roots { decodeDocument(root) }
    }

    mutating func decodeDocument(_ root: Index) {
        switch tree.kind(root) {
        case .null:
            return  // an empty YAML document (a trailing `---`)
        case .mapping:
            break
        default:
            error(.wrongType, at: root, nil, nil,
                  "expected a Kubernetes object (a mapping with apiVersion and kind), found \(tree.describe(root))")
            return
        }
        // A `kind: List` (kubectl get -o yaml/json) or `ServiceList`, `EndpointSliceList`.
        if let k = tree.value("kind", in: root), let kind = tree.string(k), kind.hasSuffix("List"),
           let items = tree.value("items", in: root) {
            switch tree.kind(items) {
            case .sequence:
                var index = 0
                for item in tree.items(items) {
                    decodeObject(item, path: "items[\(index)]")
                    index += 1
                }
            case .null:
                return
            default:
                error(.wrongType, at: items, nil, "items", "expected a list of objects, found \(tree.describe(items))")
            }
            return
        }
        decodeObject(root, path: nil)
    }

    mutating func decodeObject(_ obj: Index, path: @autoclosure () -> String?) {
        guard tree.kind(obj) == .mapping else {
            error(.wrongType, at: obj, nil, path(), "expected a Kubernetes object, found \(tree.describe(obj))")
            return
        }
        guard let kv = tree.value("kind", in: obj), let kind = tree.string(kv), !kind.isEmpty else {
            error(.missingField, at: obj, nil, path().map { $0 + ".kind" } ?? "kind", "missing; every object needs apiVersion and kind")
            return
        }
        let apiVersion = tree.value("apiVersion", in: obj).flatMap(tree.string) ?? ""
        switch (apiVersion, kind) {
        case ("v1", "Service"):
            decodeService(obj)
        case ("discovery.k8s.io/v1", "EndpointSlice"):
            decodeSlice(obj)
        case ("ferry.dev/v1", "ClusterConfig"):
            decodeClusterConfig(obj)
        default:
            let key = apiVersion + " " + kind
            if let s = skippedKinds[key] {
                skippedKinds[key] = (s.first, s.kind, s.apiVersion, s.count + 1)
            } else {
                skippedKinds[key] = (tree.location(obj), kind, apiVersion.isEmpty ? "missing" : apiVersion, 1)
                skippedKindOrder.append(key)
            }
        }
    }

    /// `metadata.name` and `metadata.namespace` (which kubectl always prints for namespaced
    /// objects; a hand-written file without one means `default`).
    mutating func metadata(_ obj: Index, kind: String) -> (ObjectRef, Index?)? {
        let meta = mapping("metadata", in: obj, ObjectRef(kind: kind, namespace: nil, name: "?"), "metadata")
        guard let meta, let (name, _) = string("name", in: meta, nil, "metadata.name"), !name.isEmpty else {
            error(.missingField, at: meta ?? obj, ObjectRef(kind: kind, namespace: nil, name: "(unnamed)"),
                  "metadata.name", "missing; expected the object's name")
            return nil
        }
        let namespace = string("namespace", in: meta, nil, "metadata.namespace")?.0 ?? "default"
        return (ObjectRef(kind: kind, namespace: namespace.isEmpty ? "default" : namespace, name: name), meta)
    }

    /// A label value from `metadata.labels`.
    func label(_ key: StaticString, in meta: Index?) -> Index? {
        guard let meta, let labels = tree.value("labels", in: meta), tree.kind(labels) == .mapping else { return nil }
        return tree.value(key, in: labels)
    }

    func annotation(_ key: StaticString, in meta: Index?) -> Index? {
        guard let meta, let a = tree.value("annotations", in: meta), tree.kind(a) == .mapping else { return nil }
        return tree.value(key, in: a)
    }

    // MARK: Service

    mutating func decodeService(_ obj: Index) {
        guard let (ref, meta) = metadata(obj, kind: "Service") else { return }
        let name = ServiceName(namespace: ref.namespace ?? "default", name: ref.name)
        guard let spec = mapping("spec", in: obj, ref, "spec") else {
            error(.missingField, at: obj, ref, "spec", "missing; a Service needs a spec")
            return
        }
        if let v = label("service.kubernetes.io/service-proxy-name", in: meta) {
            // kube-proxy ignores Services carrying this label (pkg/proxy/servicechangetracker
            // via the informer's label selector): another proxy implements them.
            unsupported(.serviceProxyName, at: v, ref, "metadata.labels")
            skippedServices.insert(name)
            return
        }
        for key: StaticString in ["service.kubernetes.io/topology-mode", "service.kubernetes.io/topology-aware-hints"] {
            if let v = annotation(key, in: meta) {
                unsupported(.topologyHints, at: v, ref, "metadata.annotations[\(key)]")
            }
        }

        // type
        var type = ServiceType.clusterIP
        if let (t, v) = string("type", in: spec, ref, "spec.type") {
            if let parsed = ServiceType(rawValue: t) {
                type = parsed
            } else {
                error(.invalidValue, at: v, ref, "spec.type",
                      "\"\(t)\" is not a Service type; expected ClusterIP, NodePort, LoadBalancer or ExternalName")
            }
        }
        var decoded = DecodedService(spec: ServiceSpec(name: name, type: type, clusterIP: nil, ports: []),
                                     ref: ref, location: tree.location(obj))

        if let fams = list("ipFamilies", in: spec, ref, "spec.ipFamilies") {
            for f in tree.items(fams) where tree.equals(f, "IPv6") {
                unsupported(.ipv6, at: f, ref, "spec.ipFamilies")
            }
        }

        // clusterIP / clusterIPs. "None" is headless; "" (not yet allocated) is treated as absent.
        var headless = false
        var clusterIP: IPv4Address?
        var clusterIPText: String?
        if let (s, v) = string("clusterIP", in: spec, ref, "spec.clusterIP"), !s.isEmpty {
            clusterIPText = s
            if s == "None" {
                headless = true
            } else if isIPv6(s) {
                // An IPv6 single-stack (or IPv6-primary) Service: nothing for an IPv4 proxy.
                unsupported(.ipv6, at: v, ref, "spec.clusterIP")
                skippedServices.insert(name)
                return
            } else if let a = ipv4(v, ref, "spec.clusterIP") {
                clusterIP = a
                decoded.addressFields.append((a, "spec.clusterIP", tree.location(v)))
            }
        }
        if let ips = list("clusterIPs", in: spec, ref, "spec.clusterIPs") {
            var i = 0
            for v in tree.items(ips) {
                defer { i += 1 }
                guard let s = tree.string(v), tree.kind(v) == .string || tree.kind(v) == .plain else {
                    error(.wrongType, at: v, ref, "spec.clusterIPs[\(i)]", "expected an IP address, found \(tree.describe(v))")
                    continue
                }
                if i == 0, let first = clusterIPText, s != first {
                    // The API server requires clusterIPs[0] == clusterIP (validateServiceClusterIPsRelatedFields).
                    error(.invalidValue, at: v, ref, "spec.clusterIPs[0]",
                          "\"\(s)\" differs from spec.clusterIP \"\(first)\"; the first clusterIP must equal clusterIP")
                    continue
                }
                if s == "None" {
                    if i == 0 { headless = true }
                    continue
                }
                if let a = ipv4(v, ref, "spec.clusterIPs[\(i)]"), clusterIP == nil, !headless {
                    clusterIP = a
                    decoded.addressFields.append((a, "spec.clusterIPs[\(i)]", tree.location(v)))
                }
            }
        }
        if type == .externalName {
            clusterIP = nil
        } else if headless {
            if type == .nodePort || type == .loadBalancer {
                error(.invalidValue, at: tree.value("clusterIP", in: spec) ?? spec, ref, "spec.clusterIP",
                      "None (headless) is not allowed for type \(type.rawValue)")
            }
        } else if clusterIP == nil && clusterIPText == nil {
            error(.missingField, at: spec, ref, "spec.clusterIP",
                  "missing; expected the allocated IPv4 address (or None for a headless Service)")
        }
        decoded.spec.clusterIP = headless ? nil : clusterIP

        // externalIPs
        if let ips = list("externalIPs", in: spec, ref, "spec.externalIPs") {
            var i = 0
            for v in tree.items(ips) {
                if let a = ipv4(v, ref, "spec.externalIPs[\(i)]") {
                    if !decoded.spec.externalIPs.contains(a) { decoded.spec.externalIPs.append(a) }
                    decoded.addressFields.append((a, "spec.externalIPs[\(i)]", tree.location(v)))
                }
                i += 1
            }
        }

        // Load-balancer IPs: status.loadBalancer.ingress[].ip, plus the deprecated
        // spec.loadBalancerIP where a cloud provider honours it.
        if let lbClass = tree.value("loadBalancerClass", in: spec), tree.kind(lbClass) != .null {
            unsupported(.loadBalancerClass, at: lbClass, ref, "spec.loadBalancerClass")
        }
        if let (s, v) = string("loadBalancerIP", in: spec, ref, "spec.loadBalancerIP"), !s.isEmpty,
           let a = ipv4(v, ref, "spec.loadBalancerIP"), type == .loadBalancer {
            decoded.spec.loadBalancerIPs.append(a)
            decoded.addressFields.append((a, "spec.loadBalancerIP", tree.location(v)))
        }
        if let status = mapping("status", in: obj, ref, "status"),
           let lb = mapping("loadBalancer", in: status, ref, "status.loadBalancer"),
           let ingress = list("ingress", in: lb, ref, "status.loadBalancer.ingress") {
            var i = 0
            for entry in tree.items(ingress) {
                defer { i += 1 }
                guard tree.kind(entry) == .mapping else {
                    error(.wrongType, at: entry, ref, "status.loadBalancer.ingress[\(i)]", "expected a mapping, found \(tree.describe(entry))")
                    continue
                }
                if let v = tree.value("ip", in: entry), tree.kind(v) != .null {
                    if let a = ipv4(v, ref, "status.loadBalancer.ingress[\(i)].ip"), type == .loadBalancer {
                        if !decoded.spec.loadBalancerIPs.contains(a) { decoded.spec.loadBalancerIPs.append(a) }
                        decoded.addressFields.append((a, "status.loadBalancer.ingress[\(i)].ip", tree.location(v)))
                    }
                } else if let h = tree.value("hostname", in: entry) {
                    unsupported(.loadBalancerHostname, at: h, ref, "status.loadBalancer.ingress[\(i)].hostname")
                }
                if let m = tree.value("ipMode", in: entry), tree.equals(m, "Proxy") {
                    unsupported(.loadBalancerIPModeProxy, at: m, ref, "status.loadBalancer.ingress[\(i)].ipMode")
                }
            }
        }

        if let td = tree.value("trafficDistribution", in: spec), tree.kind(td) != .null {
            unsupported(.trafficDistribution, at: td, ref, "spec.trafficDistribution")
        }

        decodePorts(spec, type: type, headless: headless, into: &decoded)

        // Traffic policies. The API server accepts externalTrafficPolicy only on Services
        // reachable from outside (validateServiceExternalTrafficPolicy: NodePort,
        // LoadBalancer, or ClusterIP with externalIPs).
        let externallyAccessible = type == .nodePort || type == .loadBalancer
            || (type == .clusterIP && !decoded.spec.externalIPs.isEmpty)
        if let (s, v) = string("externalTrafficPolicy", in: spec, ref, "spec.externalTrafficPolicy") {
            if let p = TrafficPolicy(rawValue: s) {
                if p == .local && !externallyAccessible {
                    error(.trafficPolicyNotAllowed, at: v, ref, "spec.externalTrafficPolicy",
                          "Local is only allowed on NodePort and LoadBalancer Services (or with externalIPs); this one is \(type.rawValue)")
                } else {
                    decoded.spec.externalTrafficPolicy = p
                }
            } else {
                error(.invalidValue, at: v, ref, "spec.externalTrafficPolicy", "\"\(s)\" is not a traffic policy; expected Cluster or Local")
            }
        }
        if let (s, v) = string("internalTrafficPolicy", in: spec, ref, "spec.internalTrafficPolicy") {
            if let p = TrafficPolicy(rawValue: s) {
                decoded.spec.internalTrafficPolicy = p
            } else {
                error(.invalidValue, at: v, ref, "spec.internalTrafficPolicy", "\"\(s)\" is not a traffic policy; expected Cluster or Local")
            }
        }
        if let (p, v) = port("healthCheckNodePort", in: spec, ref, "spec.healthCheckNodePort") {
            // Only a LoadBalancer with externalTrafficPolicy Local has a health-check port
            // (the API's NeedsHealthCheck); elsewhere the API server rejects the field.
            if type == .loadBalancer && decoded.spec.externalTrafficPolicy == .local {
                decoded.spec.healthCheckNodePort = p
                decoded.healthCheckNodePort = tree.location(v)
            } else {
                error(.healthCheckNodePortNotAllowed, at: v, ref, "spec.healthCheckNodePort",
                      "\(p) is only allowed on a LoadBalancer Service with externalTrafficPolicy Local; this one is \(type.rawValue) with \(decoded.spec.externalTrafficPolicy.rawValue)")
            }
        }

        // Session affinity (core/v1 types.go: ClientIPConfig.TimeoutSeconds defaults to
        // 10800 and must be in 1...86400).
        if let (s, v) = string("sessionAffinity", in: spec, ref, "spec.sessionAffinity") {
            switch s {
            case "None": decoded.spec.sessionAffinity = .none
            case "ClientIP":
                var timeout: UInt32 = 10800
                if let cfg = mapping("sessionAffinityConfig", in: spec, ref, "spec.sessionAffinityConfig"),
                   let cip = mapping("clientIP", in: cfg, ref, "spec.sessionAffinityConfig.clientIP"),
                   let (t, tv) = integer("timeoutSeconds", in: cip, ref, "spec.sessionAffinityConfig.clientIP.timeoutSeconds") {
                    if (1...86400).contains(t) {
                        timeout = UInt32(t)
                    } else {
                        error(.invalidValue, at: tv, ref, "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                              "\(t) is out of range; expected 1-86400 seconds")
                    }
                }
                decoded.spec.sessionAffinity = .clientIP(timeoutSeconds: timeout)
            default:
                error(.invalidValue, at: v, ref, "spec.sessionAffinity", "\"\(s)\" is not a session affinity; expected None or ClientIP")
            }
        }

        if let ranges = list("loadBalancerSourceRanges", in: spec, ref, "spec.loadBalancerSourceRanges") {
            var i = 0
            for v in tree.items(ranges) {
                defer { i += 1 }
                guard let s = tree.string(v), tree.kind(v) == .string || tree.kind(v) == .plain else {
                    error(.wrongType, at: v, ref, "spec.loadBalancerSourceRanges[\(i)]", "expected a CIDR, found \(tree.describe(v))")
                    continue
                }
                let trimmed = s.trimmingSpaces
                if let p = IPv4Prefix(trimmed) {
                    decoded.spec.loadBalancerSourceRanges.append(p)
                } else if isIPv6(trimmed) {
                    unsupported(.ipv6, at: v, ref, "spec.loadBalancerSourceRanges[\(i)]")
                } else {
                    error(.invalidAddress, at: v, ref, "spec.loadBalancerSourceRanges[\(i)]", "\"\(s)\" is not an IPv4 CIDR such as 203.0.113.0/24")
                }
            }
        }

        services.append(decoded)
    }

    private mutating func decodePorts(_ spec: Index, type: ServiceType, headless: Bool, into decoded: inout DecodedService) {
        let ref = decoded.ref
        guard let ports = list("ports", in: spec, ref, "spec.ports"), tree.count(ports) > 0 else {
            // Headless Services may omit ports (they publish DNS only); ExternalName has none.
            if !headless && type != .externalName {
                error(.missingField, at: tree.value("ports", in: spec) ?? spec, ref, "spec.ports",
                      "missing; a \(type.rawValue) Service needs at least one port")
            }
            return
        }
        let many = tree.count(ports) > 1
        var names: [String: Int] = [:]
        var seen: [UInt32: Int] = [:]
        var i = 0
        for p in tree.items(ports) {
            defer { i += 1 }
            guard tree.kind(p) == .mapping else {
                error(.wrongType, at: p, ref, "spec.ports[\(i)]", "expected a mapping, found \(tree.describe(p))")
                continue
            }
            var portName: String?
            if let (s, v) = string("name", in: p, ref, "spec.ports[\(i)].name"), !s.isEmpty {
                portName = s
                if let other = names[s] {
                    error(.duplicatePort, at: v, ref, "spec.ports[\(i)].name", "\"\(s)\" is also the name of spec.ports[\(other)]; port names must be unique")
                } else {
                    names[s] = i
                }
            } else if many {
                error(.missingField, at: p, ref, "spec.ports[\(i)].name", "missing; every port needs a name when a Service has more than one")
            }
            let proto: ServiceProtocol
            switch serviceProtocol(in: p, ref, "spec.ports[\(i)].protocol") {
            case .ok(let x): proto = x
            case .sctp, .invalid: continue
            }
            guard let (number, numberIndex) = port("port", in: p, ref, "spec.ports[\(i)].port") else {
                if tree.value("port", in: p) == nil {
                    error(.missingField, at: p, ref, "spec.ports[\(i)].port", "missing; expected the Service port (1-65535)")
                }
                continue
            }
            let key = UInt32(number) << 8 | UInt32(proto.ipProtocol.rawValue)
            if let other = seen[key] {
                error(.duplicatePort, at: numberIndex, ref, "spec.ports[\(i)].port",
                      "\(number)/\(proto.rawValue) is also spec.ports[\(other)]; a Service may list a port and protocol once")
                continue
            }
            seen[key] = i

            var target = TargetPort.number(number)
            if let tv = tree.value("targetPort", in: p), tree.kind(tv) != .null {
                switch tree.kind(tv) {
                case .number:
                    if let n = tree.integer(tv), (1...65535).contains(n) {
                        target = .number(UInt16(n))
                    } else {
                        error(.portOutOfRange, at: tv, ref, "spec.ports[\(i)].targetPort", "\(tree.describe(tv)) is not a port number; expected 1-65535 or a port name")
                        continue
                    }
                case .string, .plain:
                    let s = tree.string(tv) ?? ""
                    guard isServicePortName(s) else {
                        error(.invalidValue, at: tv, ref, "spec.ports[\(i)].targetPort",
                              "\"\(s)\" is neither a port number nor a port name (IANA_SVC_NAME: 1-15 lowercase letters, digits and '-', with at least one letter)")
                        continue
                    }
                    target = .name(s)
                    decoded.namedTargetPorts.append(.init(portIndex: decoded.spec.ports.count, fileIndex: i, location: tree.location(tv)))
                default:
                    error(.wrongType, at: tv, ref, "spec.ports[\(i)].targetPort", "expected a port number or name, found \(tree.describe(tv))")
                    continue
                }
            }

            var nodePort: UInt16?
            if let (n, v) = integer("nodePort", in: p, ref, "spec.ports[\(i)].nodePort"), n != 0 {
                // 0 means "allocate one"; a dump never holds it, a hand-written file may.
                if type != .nodePort && type != .loadBalancer {
                    error(.nodePortNotAllowed, at: v, ref, "spec.ports[\(i)].nodePort",
                          "\(n) is set on a \(type.rawValue) Service; only NodePort and LoadBalancer Services have node ports")
                } else if !(1...65535).contains(n) {
                    error(.portOutOfRange, at: v, ref, "spec.ports[\(i)].nodePort", "\(n) is not a port number; expected 1-65535")
                } else {
                    nodePort = UInt16(n)
                    decoded.nodePorts.append(.init(portIndex: i, value: UInt16(n), protocol: proto, location: tree.location(v)))
                }
            } else if type == .nodePort
                || (type == .loadBalancer && bool("allocateLoadBalancerNodePorts", in: spec, ref, "spec.allocateLoadBalancerNodePorts") != false) {
                warning(.notAllocated, at: p, ref, "spec.ports[\(i)].nodePort",
                        "no node port allocated; this port is reachable only on its Service addresses")
            }
            decoded.spec.ports.append(ServicePortSpec(name: portName, protocol: proto, port: number,
                                                      targetPort: target, nodePort: nodePort))
        }
    }

    /// IANA_SVC_NAME (RFC 6335 section 5.1, as the API's `validation.IsValidPortName`):
    /// 1-15 characters of a-z, 0-9 and '-', at least one letter, no leading, trailing or
    /// doubled '-'.
    func isServicePortName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard (1...15).contains(u.count), u.first != UInt8(ascii: "-"), u.last != UInt8(ascii: "-") else { return false }
        var letter = false
        var previousHyphen = false
        for b in u {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"): letter = true; previousHyphen = false
            case UInt8(ascii: "0")...UInt8(ascii: "9"): previousHyphen = false
            case UInt8(ascii: "-"):
                if previousHyphen { return false }
                previousHyphen = true
            default: return false
            }
        }
        return letter
    }

    // MARK: EndpointSlice

    mutating func decodeSlice(_ obj: Index) {
        guard let (ref, meta) = metadata(obj, kind: "EndpointSlice") else { return }
        var serviceName = ""
        var labelLocation = tree.location(obj)
        var hasLabel = false
        if let v = label("kubernetes.io/service-name", in: meta), let s = tree.string(v), !s.isEmpty {
            serviceName = s
            labelLocation = tree.location(v)
            hasLabel = true
        }
        guard let (addressType, atv) = string("addressType", in: obj, ref, "addressType") else {
            error(.missingField, at: obj, ref, "addressType", "missing; expected IPv4")
            return
        }
        switch addressType {
        case "IPv4": break
        case "IPv6", "FQDN":
            unsupported(.nonIPv4EndpointSlice, at: atv, ref, "addressType")
            return
        default:
            error(.invalidValue, at: atv, ref, "addressType", "\"\(addressType)\" is not an address type; expected IPv4, IPv6 or FQDN")
            return
        }

        var ports: [EndpointPortSpec] = []
        if let portList = list("ports", in: obj, ref, "ports") {
            var i = 0
            for p in tree.items(portList) {
                defer { i += 1 }
                guard tree.kind(p) == .mapping else {
                    error(.wrongType, at: p, ref, "ports[\(i)]", "expected a mapping, found \(tree.describe(p))")
                    continue
                }
                let name = string("name", in: p, ref, "ports[\(i)].name")?.0
                let proto: ServiceProtocol
                switch serviceProtocol(in: p, ref, "ports[\(i)].protocol") {
                case .ok(let x): proto = x
                case .sctp, .invalid: continue
                }
                guard let (n, _) = port("port", in: p, ref, "ports[\(i)].port") else {
                    if tree.value("port", in: p).map({ tree.kind($0) == .null }) ?? true {
                        unsupported(.portlessEndpointPort, at: p, ref, "ports[\(i)].port")
                    }
                    continue
                }
                // "" and a missing name are the same unnamed port (discovery/v1 types.go).
                ports.append(EndpointPortSpec(name: name?.isEmpty == false ? name : nil, protocol: proto, port: n))
            }
        }

        var endpoints: [EndpointSpec] = []
        if let endpointList = list("endpoints", in: obj, ref, "endpoints") {
            endpoints.reserveCapacity(tree.count(endpointList))
            var i = 0
            for e in tree.items(endpointList) {
                defer { i += 1 }
                guard tree.kind(e) == .mapping else {
                    error(.wrongType, at: e, ref, "endpoints[\(i)]", "expected a mapping, found \(tree.describe(e))")
                    continue
                }
                // Conditions: ready and serving absent mean true, terminating absent means
                // false (discovery/v1 EndpointConditions documentation).
                var ready = true, serving = true, terminating = false
                if let c = mapping("conditions", in: e, ref, "endpoints[\(i)].conditions") {
                    ready = bool("ready", in: c, ref, "endpoints[\(i)].conditions.ready") ?? true
                    serving = bool("serving", in: c, ref, "endpoints[\(i)].conditions.serving") ?? true
                    terminating = bool("terminating", in: c, ref, "endpoints[\(i)].conditions.terminating") ?? false
                }
                let nodeName = string("nodeName", in: e, ref, "endpoints[\(i)].nodeName")?.0
                var targetName: String?
                if let t = mapping("targetRef", in: e, ref, "endpoints[\(i)].targetRef") {
                    targetName = string("name", in: t, ref, "endpoints[\(i)].targetRef.name")?.0
                }
                if let h = tree.value("hints", in: e), tree.kind(h) != .null {
                    unsupported(.topologyHints, at: h, ref, "endpoints[\(i)].hints")
                }
                guard let addrs = list("addresses", in: e, ref, "endpoints[\(i)].addresses"), tree.count(addrs) > 0 else {
                    error(.missingField, at: e, ref, "endpoints[\(i)].addresses", "missing; an endpoint needs at least one address")
                    continue
                }
                var j = 0
                for a in tree.items(addrs) {
                    if let ip = ipv4(a, ref, "endpoints[\(i)].addresses[\(j)]") {
                        endpoints.append(EndpointSpec(address: ip, nodeName: nodeName, ready: ready, serving: serving,
                                                      terminating: terminating, targetName: targetName))
                    }
                    j += 1
                }
            }
        }
        let spec = EndpointSliceSpec(name: ref.name, service: ServiceName(namespace: ref.namespace ?? "default", name: serviceName),
                                     ports: ports, endpoints: endpoints)
        slices.append(DecodedSlice(spec: spec, ref: ref, location: tree.location(obj), labelLocation: labelLocation,
                                   hasServiceLabel: hasLabel))
    }

    // MARK: ClusterConfig

    mutating func decodeClusterConfig(_ obj: Index) {
        let ref = ObjectRef(kind: "ClusterConfig", namespace: nil, name: tree.value("metadata", in: obj)
            .flatMap { tree.value("name", in: $0) }.flatMap(tree.string) ?? "(unnamed)")
        if let first = clusterLocation {
            error(.duplicateClusterConfig, at: obj, ref, nil,
                  "a second ClusterConfig; the first is at \(file):\(first.line) and a file may hold one")
            return
        }
        clusterLocation = tree.location(obj)
        // Fields at the top level, as the lab writes them; a `spec:` mapping is read instead
        // when present, as with Kubernetes-style objects.
        let body = tree.value("spec", in: obj).flatMap { tree.kind($0) == .mapping ? $0 : nil } ?? obj
        let prefix = body == obj ? "" : "spec."
        var config = ClusterConfig()
        if let cidrs = list("clusterCIDRs", in: body, ref, prefix + "clusterCIDRs") {
            var i = 0
            for v in tree.items(cidrs) {
                defer { i += 1 }
                guard let s = tree.string(v), let p = IPv4Prefix(s) else {
                    error(.invalidAddress, at: v, ref, prefix + "clusterCIDRs[\(i)]", "\(tree.describe(v)) is not an IPv4 CIDR such as 10.244.0.0/16")
                    continue
                }
                config.clusterCIDRs.append(p)
            }
        }
        var nodePortRange: (ClosedRange<UInt16>, Index)?
        if let (s, v) = string("nodePortRange", in: body, ref, prefix + "nodePortRange") {
            if let r = parsePortRange(s) {
                config.nodePortRange = r
                nodePortRange = (r, v)
            } else {
                error(.invalidRange, at: v, ref, prefix + "nodePortRange", "\"\(s)\" is not a port range; expected first-last such as 30000-32767")
            }
        } else if let v = tree.value("nodePortRange", in: body), tree.kind(v) == .number {
            error(.invalidRange, at: v, ref, prefix + "nodePortRange", "\(tree.describe(v)) is not a port range; expected first-last such as 30000-32767")
        }
        if let (s, v) = string("snatPortRange", in: body, ref, prefix + "snatPortRange") {
            if let r = parsePortRange(s) {
                config.snatPortRange = r
                if r.overlaps(config.nodePortRange) {
                    // Masqueraded flows would take source ports that NodePorts listen on.
                    let np = config.nodePortRange
                    error(.invalidRange, at: v, ref, prefix + "snatPortRange",
                          "\(r.lowerBound)-\(r.upperBound) overlaps the NodePort range \(np.lowerBound)-\(np.upperBound)\(nodePortRange.map { " (line \(tree.location($0.1).line))" } ?? " (the default)")")
                }
            } else {
                error(.invalidRange, at: v, ref, prefix + "snatPortRange", "\"\(s)\" is not a port range; expected first-last such as 20000-29999")
            }
        } else if let v = tree.value("snatPortRange", in: body), tree.kind(v) == .number {
            error(.invalidRange, at: v, ref, prefix + "snatPortRange", "\(tree.describe(v)) is not a port range; expected first-last such as 20000-29999")
        }
        if let b = bool("masqueradeAll", in: body, ref, prefix + "masqueradeAll") { config.masqueradeAll = b }
        if let nodeList = list("nodes", in: body, ref, prefix + "nodes") {
            var i = 0
            var seen: [String: Int] = [:]
            for n in tree.items(nodeList) {
                defer { i += 1 }
                guard tree.kind(n) == .mapping else {
                    error(.wrongType, at: n, ref, prefix + "nodes[\(i)]", "expected a mapping with name and addresses, found \(tree.describe(n))")
                    continue
                }
                guard let (name, nv) = string("name", in: n, ref, prefix + "nodes[\(i)].name"), !name.isEmpty else {
                    error(.missingField, at: n, ref, prefix + "nodes[\(i)].name", "missing; expected the node's name")
                    continue
                }
                if let other = seen[name] {
                    error(.invalidValue, at: nv, ref, prefix + "nodes[\(i)].name", "\"\(name)\" is also \(prefix)nodes[\(other)]; node names must be unique")
                    continue
                }
                seen[name] = i
                var addresses: [IPv4Address] = []
                if let al = list("addresses", in: n, ref, prefix + "nodes[\(i)].addresses") {
                    var j = 0
                    for a in tree.items(al) {
                        if let ip = ipv4(a, ref, prefix + "nodes[\(i)].addresses[\(j)]") { addresses.append(ip) }
                        j += 1
                    }
                }
                nodes.append(NodeAddresses(name: name, addresses: addresses))
            }
        }
        cluster = config
    }

    /// kube-apiserver's `--service-node-port-range` syntax (k8s.io/apimachinery
    /// util/net.ParsePortRange): `first-last`, `first+count`, or a single port.
    func parsePortRange(_ text: String) -> ClosedRange<UInt16>? {
        let s = text.trimmingSpaces
        func num(_ t: Substring) -> Int? {
            guard !t.isEmpty, t.utf8.count <= 5, t.utf8.allSatisfy({ $0 &- UInt8(ascii: "0") < 10 }) else { return nil }
            return Int(t)
        }
        var lo: Int, hi: Int
        if let dash = s.firstIndex(of: "-") {
            guard let a = num(s[..<dash]), let b = num(s[s.index(after: dash)...]) else { return nil }
            lo = a; hi = b
        } else if let plus = s.firstIndex(of: "+") {
            guard let a = num(s[..<plus]), let n = num(s[s.index(after: plus)...]) else { return nil }
            lo = a; hi = a + n
        } else {
            guard let a = num(s[...]) else { return nil }
            lo = a; hi = a
        }
        guard 1 <= lo, lo <= hi, hi <= 65535 else { return nil }
        return UInt16(lo)...UInt16(hi)
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
