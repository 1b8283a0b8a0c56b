import FerryCore
import FerryPacket
import Foundation

/// A node of the lab cluster and its addresses (`ClusterConfig.nodes`).
public struct NodeAddresses: Hashable, Sendable {
    public var name: String
    public var addresses: [IPv4Address]
    public init(name: String, addresses: [IPv4Address]) {
        self.name = name
        self.addresses = addresses
    }
}

/// A manifest file that passed validation: what the agent programs into its tables.
public struct ControlPlaneDocument: Sendable {
    /// The file name as given (used in `summary` and in the warnings).
    public var fileName: String
    /// Services in file order; Services Ferry skips (IPv6-only, another proxy's) are absent.
    public var services: [ServiceSpec]
    /// IPv4 EndpointSlices in file order.
    public var slices: [EndpointSliceSpec]
    /// The file's `ferry.dev/v1 ClusterConfig`, or nil when it has none.
    public var cluster: ClusterConfig?
    /// `ClusterConfig.nodes`, in file order.
    public var nodes: [NodeAddresses]
    public var warnings: [Diagnostic]

    public init(fileName: String, services: [ServiceSpec], slices: [EndpointSliceSpec], cluster: ClusterConfig?,
                nodes: [NodeAddresses], warnings: [Diagnostic]) {
        self.fileName = fileName
        self.services = services
        self.slices = slices
        self.cluster = cluster
        self.nodes = nodes
        self.warnings = warnings
    }

    /// Endpoint addresses over all slices (one per `EndpointSpec`).
    public var endpointCount: Int { slices.reduce(0) { $0 + $1.endpoints.count } }

    /// One line for `ferry validate`: `cluster.yaml: 5 services, 12 endpoints, 1 warning`.
    public var summary: String {
        func count(_ n: Int, _ word: String) -> String { "\(n) \(word)\(n == 1 ? "" : "s")" }
        return "\(fileName): \(count(services.count, "service")), \(count(endpointCount, "endpoint")), \(count(warnings.count, "warning"))"
    }

    /// The slices of one Service.
    public func slices(of service: ServiceName) -> [EndpointSliceSpec] {
        slices.filter { $0.service == service }
    }
}

/// Reads a manifest file into FerryCore's model.
///
/// The file is YAML or JSON (told apart by its first character): a `v1 List` (what
/// `kubectl get svc,endpointslices -A -o yaml` prints), a multi-document YAML stream, or a
/// single object, holding v1 Services, discovery.k8s.io/v1 EndpointSlices and at most one
/// `ferry.dev/v1 ClusterConfig`. Other kinds are skipped with one warning per kind.
public enum ControlPlaneLoader {
    /// Reads and validates the file at `path`. Diagnostics name the file by its last path
    /// component, as a person would say it.
    public static func load(contentsOf path: String,
                            defaultCluster: ClusterConfig = ClusterConfig()) throws(ControlPlaneError) -> ControlPlaneDocument {
        let fileName = path.split(separator: "/").last.map(String.init) ?? path
        guard var bytes = readFile(path) else {
            throw ControlPlaneError(diagnostics: [Diagnostic(
                severity: .error, code: .unreadableFile, file: fileName, line: nil, column: nil, object: nil,
                field: nil, message: "cannot read \(path): \(fileProblem(path))")])
        }
        let tree: ManifestTree
        switch format(of: bytes) {
        case .json:
            // The JSON reader checks UTF-8 itself and takes the bytes over without a copy.
            tree = try readJSON(&bytes, fileName: fileName)
        case .yaml:
            guard let text = String(bytes: bytes, encoding: .utf8) else {
                throw ControlPlaneError(diagnostics: [Diagnostic(
                    severity: .error, code: .unreadableFile, file: fileName, line: nil, column: nil, object: nil,
                    field: nil, message: "not UTF-8 text; Kubernetes manifests are UTF-8 (YAML 1.2 section 5.2)")])
            }
            tree = try readYAML(text, fileName: fileName)
        }
        return try decode(tree, fileName: fileName, defaultCluster: defaultCluster)
    }

    /// Parses and validates manifest text. `defaultCluster` supplies the NodePort range
    /// when the text holds no ClusterConfig (the agent passes its flags here).
    public static func parse(_ text: String, fileName: String,
                             defaultCluster: ClusterConfig = ClusterConfig()) throws(ControlPlaneError) -> ControlPlaneDocument {
        let tree: ManifestTree
        switch format(of: text.utf8) {
        case .json:
            var bytes = Array(text.utf8)
            tree = try readJSON(&bytes, fileName: fileName)
        case .yaml:
            tree = try readYAML(text, fileName: fileName)
        }
        return try decode(tree, fileName: fileName, defaultCluster: defaultCluster)
    }

    private static func readJSON(_ bytes: inout [UInt8], fileName: String) throws(ControlPlaneError) -> ManifestTree {
        do {
            return try JSONReader.read(consuming: &bytes)
        } catch {
            throw ControlPlaneError(diagnostics: [Diagnostic(
                severity: .error, code: .syntax, file: fileName, line: error.line, column: error.column,
                object: nil, field: nil, message: "JSON syntax error at column \(error.column): \(error.message)")])
        }
    }

    private static func readYAML(_ text: String, fileName: String) throws(ControlPlaneError) -> ManifestTree {
        do {
            return try YAMLReader.read(text)
        } catch {
            let at = error.column.map { " at column \($0)" } ?? ""
            throw ControlPlaneError(diagnostics: [Diagnostic(
                severity: .error, code: .syntax, file: fileName, line: error.line, column: error.column,
                object: nil, field: nil, message: "YAML syntax error\(at): \(error.message)")])
        }
    }

    private static func decode(_ tree: ManifestTree, fileName: String,
                               defaultCluster: ClusterConfig) throws(ControlPlaneError) -> ControlPlaneDocument {
        var decoder = ManifestDecoder(tree: tree, file: fileName)
        decoder.decodeAll()
        decoder.validate(defaultCluster: defaultCluster)
        decoder.flushOnceWarnings()
        let warnings = sorted(decoder.warnings)
        if !decoder.errors.isEmpty {
            throw ControlPlaneError(diagnostics: sorted(decoder.errors), warnings: warnings)
        }
        return ControlPlaneDocument(fileName: fileName, services: decoder.services.map(\.spec),
                                    slices: decoder.slices.map(\.spec), cluster: decoder.cluster,
                                    nodes: decoder.nodes, warnings: warnings)
    }

    /// The whole file as bytes, read straight into the array the JSON reader will own
    /// (a 10,000-Service file is ~100 MB: no Data, no String, no second copy).
    private static func readFile(_ path: String) -> [UInt8]? {
        guard let f = fopen(path, "rb") else { return nil }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var chunk = 1 << 20
        if fseek(f, 0, SEEK_END) == 0 {
            let size = ftell(f)
            if size > 0 { chunk = size + 1 }
            rewind(f)
        }
        while true {
            let before = bytes.count
            var got = 0
            bytes.append(contentsOf: repeatElement(0, count: chunk))
            bytes.withUnsafeMutableBufferPointer { b in
                got = fread(b.baseAddress! + before, 1, chunk, f)
            }
            bytes.removeLast(chunk - got)
            if got < chunk {
                if ferror(f) != 0 { return nil }
                return bytes
            }
        }
    }

    enum Format { case json, yaml }

    /// JSON when the first significant character opens an object or array. YAML flow
    /// collections start the same way, but kubectl never prints a whole file in flow style,
    /// and JSON is the form that needs the fast reader.
    static func format(of bytes: some Sequence<UInt8>) -> Format {
        for b in bytes {
            switch b {
            case 0x20, 0x09, 0x0A, 0x0D, 0xEF, 0xBB, 0xBF: continue  // whitespace and a UTF-8 BOM
            case UInt8(ascii: "{"), UInt8(ascii: "["): return .json
            default: return .yaml
            }
        }
        return .yaml
    }

    private static func sorted(_ d: [Diagnostic]) -> [Diagnostic] {
        // Stable: diagnostics on the same line keep the order they were found in.
        d.enumerated().sorted { a, b in
            let la = a.element.line ?? 0, lb = b.element.line ?? 0
            if la != lb { return la < lb }
            return a.offset < b.offset
        }.map(\.element)
    }

    private static func fileProblem(_ path: String) -> String {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) { return "no such file" }
        if isDirectory.boolValue { return "it is a directory" }
        return "permission denied or I/O error"
    }
}
