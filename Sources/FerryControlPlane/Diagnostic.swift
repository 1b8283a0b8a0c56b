// What the loader says about a file. Bad files and bad configuration are typed errors
// with file, line and field (STYLE.md rule 8): a person reading
//
//   cluster.yaml:42: Service default/web: spec.ports[0].nodePort: 40000 is outside the NodePort range 30000-32767
//
// knows which line to open and what to change without reading Ferry's source.

/// One finding about a manifest file: an error (the file is rejected) or a warning (the
/// file loads, but something in it is ignored or behaves differently under Ferry).
public struct Diagnostic: Hashable, Sendable, CustomStringConvertible {
    public enum Severity: String, Hashable, Sendable {
        case error
        case warning
    }

    /// What kind of finding this is. Raw values are stable: tools and tests match on them,
    /// and a retired code stays reserved rather than being reused.
    public enum Code: String, Hashable, Sendable, CaseIterable {
        // Reading the file.
        case unreadableFile = "unreadable-file"
        case syntax = "syntax"
        // One field of one object.
        case missingField = "missing-field"
        case wrongType = "wrong-type"
        case invalidValue = "invalid-value"
        case invalidAddress = "invalid-address"
        case portOutOfRange = "port-out-of-range"
        case invalidProtocol = "invalid-protocol"
        case nodePortOutOfRange = "node-port-out-of-range"
        case nodePortNotAllowed = "node-port-not-allowed"
        case trafficPolicyNotAllowed = "traffic-policy-not-allowed"
        case healthCheckNodePortNotAllowed = "health-check-node-port-not-allowed"
        case invalidRange = "invalid-range"
        // Across objects.
        case duplicateService = "duplicate-service"
        case duplicateEndpointSlice = "duplicate-endpoint-slice"
        case duplicateClusterConfig = "duplicate-cluster-config"
        case duplicatePort = "duplicate-port"
        case duplicateNodePort = "duplicate-node-port"
        case duplicateFrontend = "duplicate-frontend"
        case orphanEndpointSlice = "orphan-endpoint-slice"
        case unresolvedTargetPort = "unresolved-target-port"
        // Warnings.
        case unsupportedFeature = "unsupported-feature"
        case skippedKind = "skipped-kind"
        case notAllocated = "not-allocated"
    }

    public var severity: Severity
    public var code: Code
    /// The file name as given to the loader (`cluster.yaml`).
    public var file: String
    /// 1-based line and column of the value at fault; nil when the finding is about the
    /// whole file (it could not be read).
    public var line: Int?
    public var column: Int?
    /// `Service default/web`, `EndpointSlice default/web-abc12`, `ClusterConfig`; nil for
    /// syntax errors and findings about the file.
    public var object: String?
    /// The field path in the object, `spec.ports[1].nodePort`; nil when the finding is
    /// about the whole object or file.
    public var field: String?
    /// What is wrong and what was expected.
    public var message: String

    public init(severity: Severity, code: Code, file: String, line: Int?, column: Int?,
                object: String?, field: String?, message: String) {
        self.severity = severity
        self.code = code
        self.file = file
        self.line = line
        self.column = column
        self.object = object
        self.field = field
        self.message = message
    }

    /// `cluster.yaml:42: Service default/web: spec.ports[0].nodePort: 40000 is outside …`,
    /// the same for warnings: callers say the severity their own way (a log level, a
    /// `warning:` prefix).
    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        s += ": "
        if let object { s += object + ": " }
        if let field { s += field + ": " }
        s += message
        return s
    }
}

/// A manifest file that Ferry refuses, with every error found in it (not only the first),
/// sorted by line.
public struct ControlPlaneError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]
    /// Warnings found before the file was refused; shown with the errors so a person
    /// fixes everything in one pass.
    public var warnings: [Diagnostic]

    public init(diagnostics: [Diagnostic], warnings: [Diagnostic] = []) {
        self.diagnostics = diagnostics
        self.warnings = warnings
    }

    /// One diagnostic per line, errors first, then warnings marked `warning:`.
    public var description: String {
        (diagnostics.map(\.description) + warnings.map { "warning: \($0)" }).joined(separator: "\n")
    }
}
