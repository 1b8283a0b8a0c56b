// KernelNetworkState, NetlinkMonitor and NTF_USE neighbour resolution in throwaway namespaces.
import FerryLinux
import FerryPacket
import Glibc
import Testing

@Suite("Netlink state and monitor", .serialized, .enabled(if: TestNamespaces.canRun))
struct NetlinkTests {
    @Test("links, addresses, routes (gateway, blackhole, multipath) and neighbours added with ip appear in the snapshot")
    func snapshot() throws {
        let ns = try TestNamespaces(["a", "b"])
        try ns.veth("a", "a0", "b", "b0")
        try ns.ip("a", "link", "set", "a0", "mtu", "1400")
        let local = ns.address(1), peer = ns.address(2), other = ns.address(3)
        try ns.ip("a", "addr", "add", "\(local)/24", "dev", "a0")
        try ns.ip("a", "route", "add", "10.77.0.0/16", "via", "\(peer)", "metric", "7")
        try ns.ip("a", "route", "add", "blackhole", "10.78.0.0/16")
        try ns.ip("a", "route", "add", "10.79.0.0/16", "nexthop", "via", "\(peer)", "weight", "1", "nexthop", "via", "\(other)", "weight", "3")
        try ns.ip("a", "neigh", "add", "\(ns.address(9))", "lladdr", "02:00:00:00:00:09", "dev", "a0", "nud", "permanent")
        let state = try ns.run("a") { try KernelNetworkState.read() }

        let a0 = try #require(state.link(named: "a0"))
        #expect(a0.kind == "veth")
        #expect(a0.mtu == 1400)
        #expect(a0.isUp && !a0.isLoopback)
        #expect(a0.mac != .zero)
        let lo = try #require(state.link(named: "lo"))
        #expect(lo.isLoopback)
        #expect(state.addresses.contains(AddressInfo(interfaceIndex: a0.index, address: local, prefixLength: 24)))

        let connected = try #require(state.routes.first { $0.destination == IPv4Prefix(address: local, length: 24) })
        #expect(connected.gateway == nil)
        #expect(connected.outputInterface == a0.index)
        #expect(connected.scope == .link)
        #expect(connected.preferredSource == local)
        #expect(connected.type == .unicast)

        let viaPeer = try #require(state.routes.first { $0.destination == IPv4Prefix("10.77.0.0/16") })
        #expect(viaPeer.gateway == peer)
        #expect(viaPeer.outputInterface == a0.index)
        #expect(viaPeer.priority == 7)
        #expect(viaPeer.scope == .universe)

        let hole = try #require(state.routes.first { $0.destination == IPv4Prefix("10.78.0.0/16") })
        #expect(hole.type == .blackhole)
        #expect(hole.outputInterface == 0)

        let multi = try #require(state.routes.first { $0.destination == IPv4Prefix("10.79.0.0/16") })
        #expect(multi.nextHops == [NextHop(gateway: peer, interfaceIndex: a0.index, weight: 1), NextHop(gateway: other, interfaceIndex: a0.index, weight: 3)])

        let n = try #require(state.neighbour(ns.address(9), interfaceIndex: a0.index))
        #expect(n.mac == MACAddress("02:00:00:00:00:09"))
        #expect(n.state == .permanent)
        // Only the main table: the local table's broadcast and local routes are not here.
        #expect(!state.routes.contains { $0.type == .local })
    }

    /// Polls the monitor until `condition` holds or 25 idle polls of 200 ms pass.
    private func waitFor(_ monitor: NetlinkMonitor, _ condition: (KernelNetworkState) -> Bool) throws -> Bool {
        var poller = Poller()
        let token = poller.add(monitor.descriptor)
        var idle = 0
        while !condition(monitor.state) && idle < 25 {
            if try poller.wait(timeoutMilliseconds: 200) == 0 { idle += 1; continue }
            if poller.isReady(token) { _ = try monitor.processEvents() }
        }
        return condition(monitor.state)
    }

    @Test("the monitor reports a route added after start, and interfaces that come and go")
    func monitor() throws {
        let ns = try TestNamespaces(["a", "b"])
        try ns.veth("a", "a0", "b", "b0")
        let local = ns.address(1), peer = ns.address(2)
        try ns.ip("a", "addr", "add", "\(local)/24", "dev", "a0")
        let monitor = try ns.run("a") { try NetlinkMonitor() }
        let prefix = IPv4Prefix("10.88.0.0/16")!
        #expect(!monitor.state.routes.contains { $0.destination == prefix })
        #expect(try monitor.processEvents() == false)

        try ns.ip("a", "route", "add", "10.88.0.0/16", "via", "\(peer)")
        #expect(try waitFor(monitor) { $0.routes.contains { $0.destination == prefix && $0.gateway == peer } })

        try ns.ip("a", "link", "add", "x0", "type", "veth", "peer", "name", "x1")
        #expect(try waitFor(monitor) { $0.link(named: "x0") != nil && $0.link(named: "x1") != nil })
        try ns.ip("a", "link", "del", "x0")
        #expect(try waitFor(monitor) { $0.link(named: "x0") == nil && $0.link(named: "x1") == nil })

        try ns.ip("a", "route", "del", "10.88.0.0/16")
        #expect(try waitFor(monitor) { !$0.routes.contains { $0.destination == prefix } })
    }

    @Test("NTF_USE resolution of the peer's address makes the neighbour REACHABLE with the peer's MAC")
    func neighbourResolution() throws {
        let ns = try TestNamespaces(["a", "b"])
        try ns.veth("a", "a0", "b", "b0")
        let local = ns.address(1), peer = ns.address(2)
        try ns.ip("a", "addr", "add", "\(local)/24", "dev", "a0")
        try ns.ip("b", "addr", "add", "\(peer)/24", "dev", "b0")
        let peerMAC = try ns.mac("b", "b0")
        let index = try ns.ifindex("a", "a0")
        let monitor = try ns.run("a") { try NetlinkMonitor() }
        #expect(monitor.state.neighbour(peer, interfaceIndex: index) == nil)

        try monitor.requestNeighbourResolution(address: peer, interfaceIndex: index)
        #expect(try waitFor(monitor) { $0.neighbour(peer, interfaceIndex: index)?.state == .reachable })
        let n = try #require(monitor.state.neighbour(peer, interfaceIndex: index))
        #expect(n.mac == peerMAC)
        #expect(n.state == .reachable)
    }
}

@Suite("System helpers")
struct SystemTests {
    @Test("inotify reports rename-into-place and truncate-and-write")
    func directoryWatcher() throws {
        var template = Array("/tmp/ferrytest-inotify-XXXXXX".utf8CString)
        let dir = try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) })
        defer { _ = try? Command.run(["rm", "-rf", dir]) }
        let watcher = try DirectoryWatcher(path: dir)
        #expect(try watcher.readEvents().isEmpty)

        // An editor's save: write a temporary file, rename it over the real name.
        try write(dir + "/.svc.yaml.tmp", "kind: Service\n", flags: O_CREAT | O_WRONLY | O_TRUNC)
        #expect(rename(dir + "/.svc.yaml.tmp", dir + "/svc.yaml") == 0)
        #expect(try watcher.readEvents().contains("svc.yaml"))

        // `cmd > file` on an existing file: truncate and write in place.
        try write(dir + "/svc.yaml", "kind: Service\nmetadata: {}\n", flags: O_WRONLY | O_TRUNC)
        #expect(try watcher.readEvents() == ["svc.yaml"])

        #expect(unlink(dir + "/svc.yaml") == 0)
        #expect(try watcher.readEvents() == ["svc.yaml"])
        #expect(try watcher.readEvents().isEmpty)
    }

    private func write(_ path: String, _ text: String, flags: Int32) throws {
        let fd = open(path, flags, 0o644)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else { throw Errno(rawValue: errno) }
    }

    @Test("an eventfd signalled from another thread wakes a poll")
    func eventFD() throws {
        let event = try EventFD()
        var poller = Poller()
        let token = poller.add(event.descriptor)
        #expect(try poller.wait(timeoutMilliseconds: 0) == 0)
        let t = TestThread { event.signal(); event.signal() }
        t.join()
        #expect(try poller.wait(timeoutMilliseconds: -1) == 1)
        let ready = poller.isReady(token)
        #expect(ready)
        #expect(event.drain() == 2)
        #expect(try poller.wait(timeoutMilliseconds: 0) == 0)
    }

    @Test("Command.run returns exit status, stdout and stderr")
    func command() throws {
        let ok = try Command.run(["sh", "-c", "printf 'out'; printf 'err' >&2; exit 3"])
        #expect(ok.status == 3)
        #expect(ok.stdout == "out")
        #expect(ok.stderr == "err")
        #expect(throws: SystemError.self) { try Command.run(["/nonexistent/ferry-no-such-binary"]) }
    }

    @Test("Sysctl reads /proc/sys by dotted or slashed name")
    func sysctl() throws {
        let a = try Sysctl.read("net.ipv4.ip_forward")
        let b = try Sysctl.read("net/ipv4/ip_forward")
        #expect(a == b)
        #expect(a == "0" || a == "1")
        #expect(throws: SystemError.self) { try Sysctl.read("net/ipv4/no_such_sysctl") }
    }

    @Test("MonotonicClock never goes backwards")
    func clock() {
        let a = MonotonicClock.now()
        let b = MonotonicClock.now()
        #expect(b >= a)
        #expect(a > 0)
    }
}
