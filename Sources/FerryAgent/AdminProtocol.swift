import Foundation

// The agent's local admin API: a Unix stream socket (mode 0600, root only), one JSON
// request line in, one JSON document out, then the agent closes. `ferry service list`,
// `ferry conntrack list` and `ferry stats` are clients; anything that speaks JSON over a
// Unix socket (`socat`, `nc -U`) can be one too.

public enum AdminCommand: String, Codable, Sendable, CaseIterable {
    case services
    case conntrack
    case stats
}

public struct AdminRequest: Codable, Sendable {
    public var command: AdminCommand
    /// For `conntrack`: at most this many entries (newest state of the table, any order).
    public var limit: Int?
    public init(command: AdminCommand, limit: Int? = nil) {
        self.command = command
        self.limit = limit
    }
}

/// `ferry service list`: one row per frontend, with its backends (like `cilium-dbg service list`).
public struct ServiceListing: Codable, Sendable {
    public struct BackendRow: Codable, Sendable {
        public var address: String
        public var node: String?
        public var pod: String?
        public var state: String          // ready / serving-terminating / not-ready
        public var local: Bool
        public var inUse: Bool            // in the set this frontend selects from on this node
    }
    public struct FrontendRow: Codable, Sendable {
        public var id: Int
        public var frontend: String       // "10.96.0.10:80/TCP", "*:30080/TCP"
        public var service: String        // "default/web:http"
        public var kind: String           // ClusterIP / NodePort / LoadBalancer / ExternalIP
        public var flags: [String]        // Local, affinity, source-ranges, health-check:32081, no-local-endpoints…
        public var backends: [BackendRow]
    }
    public var generation: UInt64
    public var node: String
    public var frontends: [FrontendRow]
}

/// `ferry conntrack list`, in the spirit of `conntrack -L`.
public struct ConntrackListing: Codable, Sendable {
    public struct Row: Codable, Sendable {
        public var proto: String
        public var state: String
        public var expiresIn: UInt64      // seconds
        public var original: String       // "src=… dst=… sport=… dport=…"
        public var reply: String
        public var packets: [UInt64]      // original, reply
        public var bytes: [UInt64]
        public var assured: Bool
        public var nat: String            // dnat / snat+dnat / none
    }
    public var count: Int
    public var capacity: Int
    public var rows: [Row]
}

/// `ferry stats`: per-interface I/O counters, pipeline verdicts and drops by reason.
public struct StatsListing: Codable, Sendable {
    public struct InterfaceRow: Codable, Sendable {
        public var name: String
        public var index: Int32
        public var rxFrames: UInt64
        public var rxBytes: UInt64
        /// Dropped by the kernel for want of room in the RX ring: never seen by the agent.
        public var rxRingFull: UInt64
        public var txFrames: UInt64
        public var txRingFull: UInt64
        public var sendErrors: UInt64
        public var truncated: UInt64
    }
    public struct DropRow: Codable, Sendable {
        public var code: UInt8
        public var reason: String
        public var count: UInt64
        public var explanation: String
    }
    public var generation: UInt64
    public var uptimeSeconds: Double
    public var interfaces: [InterfaceRow]
    public var received: UInt64
    public var forwarded: UInt64
    public var passed: UInt64
    public var rejected: UInt64
    public var dropped: UInt64
    public var newFlows: UInt64
    public var conntrackEntries: Int
    public var conntrackCapacity: Int
    public var conntrackCounters: [String: UInt64]
    public var drops: [DropRow]
    public var reloads: UInt64
    public var reloadFailures: UInt64
    public var lastReloadError: String?
}
