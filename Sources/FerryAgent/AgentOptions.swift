import FerryCore
import FerryPacket

/// Everything `ferry agent` is told on its command line.
public struct AgentOptions: Sendable {
    public enum RingKind: String, Sendable {
        case v2, v3
    }

    public var configPath: String
    public var nodeName: String = ""
    public var clusterCIDRs: [IPv4Prefix] = []
    public var nodePortAddresses: [IPv4Prefix] = []
    public var masqueradeAll = false
    public var healthzBindAddress = "0.0.0.0:10256"
    public var metricsBindAddress: String? = "127.0.0.1:10249"
    /// nil: every non-loopback interface, including ones that appear later.
    public var interfaces: [String]? = nil
    public var adminSocket = "/run/ferry/admin.sock"
    public var conntrackCapacity = 262_144
    /// TPACKET_V2 by default: measured faster than V3 here in packets per second, and V3's
    /// block retire timer (1 ms at best) sets a latency floor at light load (docs/benchmarks.md).
    public var ring: RingKind = .v2
    public var ringTimeoutMs = 1
    public var vnetHeader = true
    /// Keep polling the rings, without sleeping, for this long after the last frame
    /// (0: sleep in poll() as soon as the rings are empty). Trades a core's idle time for
    /// the wake-up a sleeping thread pays per packet; what the kernel's `net.core.busy_poll`
    /// does for sockets. Off by default: while traffic keeps coming it holds a core busy.
    public var busyPollMicroseconds = 0
    public var selection: BackendSelector.Strategy = .maglev()
    /// Where conntrack entries are saved on a clean exit and restored at start, so an
    /// upgraded agent keeps live flows (nil: not kept).
    public var conntrackStatePath: String? = nil
    /// How long to wait after a file change before reloading (editors write in bursts).
    public var reloadDebounceMs = 100

    public init(configPath: String) { self.configPath = configPath }
}

/// `host:port` as kube-proxy's `--*-bind-address` flags spell it.
func splitHostPort(_ s: String, defaultPort: Int) -> (String, Int) {
    guard let colon = s.lastIndex(of: ":") else { return (s, defaultPort) }
    let host = String(s[..<colon])
    let port = Int(s[s.index(after: colon)...]) ?? defaultPort
    return (host.isEmpty ? "0.0.0.0" : host, port)
}
