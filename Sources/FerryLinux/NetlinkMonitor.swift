// Keeps a KernelNetworkState current from rtnetlink notifications.
import CFerryLinux
import CNetlinkRoute
import FerryPacket
import Glibc

/// Subscribes to RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE and
/// RTNLGRP_NEIGH, and re-reads the whole state when any notification arrives.
///
/// Re-dump rather than libnl's cache manager: the notifications only say *that*
/// something changed; one dump per batch of notifications costs a few hundred
/// microseconds on a node with tens of links and routes, and it recovers by itself
/// from a notification overrun (ENOBUFS), which an incremental cache would have to
/// detect and resynchronise anyway. Subscribing before the first dump means no change
/// between dump and subscription is lost.
///
/// Poll `descriptor` and call `processEvents()` when it is readable. One thread at a
/// time; it may be created in a namespace thread and used elsewhere.
public final class NetlinkMonitor: @unchecked Sendable {
    public private(set) var state: KernelNetworkState
    /// Notifications lost to a full socket buffer (each forces a re-dump).
    public private(set) var overruns: UInt64 = 0
    /// How many times the state was re-read.
    public private(set) var dumps: UInt64 = 0

    private let events: RouteSocket
    private let queries: RouteSocket
    private let buffer: UnsafeMutableRawBufferPointer

    /// The notification socket, to poll for readability.
    public var descriptor: FileDescriptor { FileDescriptor(rawValue: events.descriptor) }

    /// Subscribes, then reads the initial state, in the calling thread's namespace.
    public init() throws(NetlinkError) {
        events = try RouteSocket()
        queries = try RouteSocket()
        // Notifications carry sequence numbers of 0; libnl's default check would reject them.
        nl_socket_disable_seq_check(events.sk)
        let groups: [Int32] = [Int32(RTNLGRP_LINK.rawValue), Int32(RTNLGRP_IPV4_IFADDR.rawValue), Int32(RTNLGRP_IPV4_ROUTE.rawValue), Int32(RTNLGRP_NEIGH.rawValue)]
        for g in groups {
            // nl_socket_add_memberships is variadic; add one group at a time.
            let r = nl_socket_add_membership(events.sk, g)
            guard r >= 0 else { throw NetlinkError(libnl: r, "nl_socket_add_membership(\(g))") }
        }
        _ = nl_socket_set_nonblocking(events.sk)
        // A burst of neighbour updates should not overrun the default 32 KiB buffer.
        _ = nl_socket_set_buffer_size(events.sk, 1 << 20, 0)
        buffer = .allocate(byteCount: 64 * 1024, alignment: 8)
        state = KernelNetworkState()
        state = try queries.dumpState()
        dumps = 1
    }

    deinit { buffer.deallocate() }

    /// Drains pending notifications; if there were any, re-reads the state. Returns true
    /// when the state differs from before.
    public func processEvents() throws(NetlinkError) -> Bool {
        var sawAny = false
        drain: while true {
            switch Sys.recv(events.descriptor, buffer.baseAddress!, buffer.count, Int32(MSG_DONTWAIT)) {
            case .success(let n):
                if n == 0 { break drain }
                sawAny = true
            case .failure(let e) where e == .wouldBlock:
                break drain
            case .failure(let e) where e == .noBufferSpace:
                // Notifications were dropped; the dump below resynchronises.
                overruns &+= 1
                sawAny = true
            case .failure(let e):
                throw NetlinkError(code: -NLE_FAILURE, operation: "recv(rtnetlink notifications)", message: e.description)
            }
        }
        guard sawAny else { return false }
        let fresh = try queries.dumpState()
        dumps &+= 1
        guard fresh != state else { return false }
        state = fresh
        return true
    }

    /// Asks the kernel to resolve `address` on `interfaceIndex` (see the free function
    /// `requestNeighbourResolution`); the result arrives as a notification.
    public func requestNeighbourResolution(address: IPv4Address, interfaceIndex: Int32) throws(NetlinkError) {
        try queries.requestNeighbourResolution(address: address, interfaceIndex: interfaceIndex)
    }
}
