// PacketRing against real veth pairs in throwaway namespaces.
import FerryLinux
import FerryPacket
import Glibc
import Testing

@Suite("PacketRing on veth", .serialized, .enabled(if: TestNamespaces.canRun))
struct PacketRingTests {
    /// Two namespaces joined by a0 (in "a") — b0 (in "b").
    private func pair() throws -> TestNamespaces {
        let ns = try TestNamespaces(["a", "b"])
        try ns.veth("a", "a0", "b", "b0")
        return ns
    }

    @Test("frames sent from B arrive whole in a V3 ring and a V2 ring in A, with their metadata")
    func receiveV3AndV2() throws {
        let ns = try pair()
        let macA = try ns.mac("a", "a0")
        let macB = try ns.mac("b", "b0")
        let index = try ns.ifindex("a", "a0")
        let (v3, v2) = try ns.run("a") {
            (try PacketRing(interfaceName: "a0", configuration: .init(version: .v3)),
             try PacketRing(interfaceName: "a0", configuration: .init(version: .v2)))
        }
        let unicast = TestFrames.experimental(dst: macA, src: macB, payload: Array("unicast to a0".utf8) + [UInt8](repeating: 0xA5, count: 100))
        let broadcast = TestFrames.experimental(dst: .broadcast, src: macB, payload: Array("broadcast".utf8) + [UInt8](repeating: 0x5A, count: 50))
        try ns.run("b") { try TestSockets.sendFrames(ifname: "b0", [unicast, broadcast]) }

        struct Seen { var bytes: [UInt8]; var type: PacketType; var index: Int32; var length: Int; var truncated: Bool; var csumNotReady: Bool; var vnet: Bool }
        var seen: [[Seen]] = [[], []]
        try receiveUntil([v3, v2], { ring, f in
            let b = UnsafeRawBufferPointer(f.bytes)
            guard TestFrames.etherType(b) == 0x88B5 else { return }
            seen[ring].append(Seen(bytes: Array(b), type: f.packetType, index: f.interfaceIndex, length: f.length, truncated: f.isTruncated, csumNotReady: f.checksumNotReady, vnet: f.vnet != nil))
            #expect(f.capacity >= f.bytes.count)
        }, done: { seen[0].count >= 2 && seen[1].count >= 2 })

        for (ring, frames) in seen.enumerated() {
            #expect(frames.count == 2, "ring \(ring == 0 ? "V3" : "V2") got \(frames.count) test frames")
            guard frames.count == 2 else { continue }
            #expect(frames[0].bytes == unicast)
            #expect(frames[0].type == .host)
            #expect(frames[1].bytes == broadcast)
            #expect(frames[1].type == .broadcast)
            for f in frames {
                #expect(f.index == index)
                #expect(f.length == f.bytes.count)
                #expect(!f.truncated)
                #expect(!f.csumNotReady)
                #expect(!f.vnet)
            }
        }
        #expect(v3.statistics.framesReceived >= 2)
        #expect(v2.statistics.framesReceived >= 2)
    }

    @Test("a frame enqueued on A's TX ring arrives in B; a frame the kernel rejects is counted and does not block the ring")
    func transmit() throws {
        let ns = try pair()
        let macA = try ns.mac("a", "a0")
        let macB = try ns.mac("b", "b0")
        let ring = try ns.run("a") { try PacketRing(interfaceName: "a0", configuration: .init(version: .v2)) }
        let capture = try ns.run("b") { try PacketRing(interfaceName: "b0", configuration: .init(version: .v3)) }

        let first = TestFrames.experimental(dst: macB, src: macA, payload: Array("first".utf8) + [UInt8](repeating: 1, count: 60))
        // Larger than the 1500-byte MTU without a vnet header: tpacket_snd refuses it
        // (size_max = mtu + hard_header_len + VLAN_HLEN) with TP_STATUS_WRONG_FORMAT.
        let oversize = TestFrames.experimental(dst: macB, src: macA, payload: [UInt8](repeating: 2, count: 1600))
        let second = TestFrames.experimental(dst: macB, src: macA, payload: Array("second".utf8) + [UInt8](repeating: 3, count: 60))
        for f in [first, oversize, second] {
            #expect(f.withUnsafeBytes { ring.enqueue(copying: $0, vnet: nil) })
        }
        #expect(ring.pendingTransmits == 3)
        ring.flush()
        #expect(ring.pendingTransmits == 0)
        #expect(ring.statistics.framesRejected == 1)
        #expect(ring.statistics.framesSent == 2)

        var got: [[UInt8]] = []
        try receiveUntil([capture], { _, f in
            let b = UnsafeRawBufferPointer(f.bytes)
            if TestFrames.etherType(b) == 0x88B5 { got.append(Array(b)) }
        }, done: { got.count >= 2 })
        #expect(got == [first, second])

        // The ring keeps working after the rejection, and wraps around its slots.
        let total = 1200
        var accepted = 0
        for i in 0..<total {
            let f = TestFrames.experimental(dst: macB, src: macA, payload: [UInt8(i & 0xFF), UInt8(i >> 8)] + [UInt8](repeating: 9, count: 44))
            if f.withUnsafeBytes({ ring.enqueue(copying: $0, vnet: nil) }) { accepted += 1 } else { ring.flush() }
        }
        ring.flush()
        #expect(ring.statistics.framesSent == 2 + UInt64(accepted))
        #expect(accepted + Int(ring.statistics.ringFull) == total)
    }

    @Test("a TCP SYN from a real connect() shows CSUMNOTREADY without vnet and NEEDS_CSUM with vnet")
    func synChecksumPartial() throws {
        let ns = try pair()
        let a = ns.address(1), b = ns.address(2)
        try ns.ip("a", "addr", "add", "\(a)/24", "dev", "a0")
        try ns.ip("b", "addr", "add", "\(b)/24", "dev", "b0")
        let (plain, vnet, vnetV2) = try ns.run("a") {
            (try PacketRing(interfaceName: "a0", configuration: .init(version: .v3, virtioNetHeader: false)),
             try PacketRing(interfaceName: "a0", configuration: .init(version: .v3, virtioNetHeader: true)),
             try PacketRing(interfaceName: "a0", configuration: .init(version: .v2, virtioNetHeader: true)))
        }
        let fd = try ns.run("b") { try TestSockets.connectNonBlocking(a, 4321) }
        defer { close(fd) }

        var synFlags: [(notReady: Bool, vnet: VirtioNetHeader?)?] = [nil, nil, nil]
        try receiveUntil([plain, vnet, vnetV2], { ring, f in
            guard let t = TestFrames.tcp(UnsafeRawBufferPointer(f.bytes)), t.flags & 0x02 != 0, t.destinationPort == 4321 else { return }
            synFlags[ring] = (f.checksumNotReady, f.vnet)
        }, done: { synFlags.allSatisfy { $0 != nil } })

        #expect(synFlags[0]?.notReady == true)
        #expect(synFlags[0]?.vnet == nil)
        for i in 1...2 {
            let h = try #require(synFlags[i]?.vnet)
            #expect(h.needsChecksum)
            #expect(h.checksumStart == 34)  // Ethernet 14 + IPv4 20
            #expect(h.checksumOffset == 16)  // TCP checksum field (RFC 9293 §3.1)
            #expect(h.gsoType == .none)
        }
    }

    @Test("with vnet, a bulk TCP send produces whole GSO super-frames longer than 1514 bytes in V3 and V2 rings")
    func gsoSuperFrames() throws {
        let ns = try pair()
        let a = ns.address(1), b = ns.address(2)
        try ns.ip("a", "addr", "add", "\(a)/24", "dev", "a0")
        try ns.ip("b", "addr", "add", "\(b)/24", "dev", "b0")
        let (v3, v2) = try ns.run("a") {
            (try PacketRing(interfaceName: "a0", configuration: .init(version: .v3, virtioNetHeader: true)),
             try PacketRing(interfaceName: "a0", configuration: .init(version: .v2, virtioNetHeader: true)))
        }
        let listener = try ns.run("a") { try TestSockets.listen(a, 5001) }
        defer { close(listener) }
        // A reader in A so the window stays open while B sends.
        let reader = TestThread {
            let c = accept(listener, nil, nil)
            guard c >= 0 else { return }
            var buf = [UInt8](repeating: 0, count: 65536)
            while buf.withUnsafeMutableBytes({ recv(c, $0.baseAddress, $0.count, 0) }) > 0 {}
            close(c)
        }
        let sent = try ns.run("b") { () -> Int in
            let fd = try TestSockets.connect(a, 5001)
            defer { close(fd) }
            return TestSockets.sendPattern(fd, count: 4 << 20)
        }
        #expect(sent == 4 << 20)

        var best: [(length: Int, header: VirtioNetHeader, truncated: Bool)?] = [nil, nil]
        try receiveUntil([v3, v2], { ring, f in
            guard let h = f.vnet, h.isGSO, TestFrames.tcp(UnsafeRawBufferPointer(f.bytes)) != nil else { return }
            if f.length > (best[ring]?.length ?? 0) { best[ring] = (f.length, h, f.isTruncated) }
        }, done: { best.allSatisfy { ($0?.length ?? 0) > 1514 } })
        reader.join()

        for (i, name) in ["V3", "V2"].enumerated() {
            let s = try #require(best[i], "\(name) ring saw no GSO frame")
            #expect(s.length > 1514, "\(name)")
            #expect(!s.truncated, "\(name)")
            #expect(s.header.gsoType == .tcpv4, "\(name)")
            #expect(s.header.gsoSize > 0 && s.header.gsoSize <= 1448, "\(name)")
            #expect(s.header.needsChecksum, "\(name)")
        }
        #expect(v3.statistics.framesTruncated == 0)
        #expect(v2.statistics.framesTruncated == 0)
    }

    @Test("a userspace bridge with vnet rings carries a bulk TCP transfer: GSO super-frames leave whole and the kernel segments them")
    func forwardGSOThroughRings() throws {
        let ns = try TestNamespaces(["b", "a", "c"])
        try ns.veth("b", "b0", "a", "a1")
        try ns.veth("a", "a2", "c", "c0")
        let clientIP = ns.address(1), serverIP = ns.address(2)
        try ns.ip("b", "addr", "add", "\(clientIP)/24", "dev", "b0")
        try ns.ip("c", "addr", "add", "\(serverIP)/24", "dev", "c0")
        let config = PacketRingConfiguration(version: .v3, virtioNetHeader: true)
        let (left, right) = try ns.run("a") {
            (try PacketRing(interfaceName: "a1", configuration: config), try PacketRing(interfaceName: "a2", configuration: config))
        }
        let stop = try EventFD()
        let forwarded = Shared((frames: 0, gso: 0, largest: 0))
        let bridge = TestThread {
            var poller = Poller()
            _ = poller.add(left.receiveDescriptor)
            _ = poller.add(right.receiveDescriptor)
            let wake = poller.add(stop.descriptor)
            var frames = 0, gso = 0, largest = 0
            while true {
                var n = 0
                for (from, to) in [(left, right), (right, left)] {
                    n += from.receive(maxFrames: 64) { f in
                        guard !f.isTruncated else { return }
                        if f.vnet?.isGSO == true { gso += 1 }
                        largest = max(largest, f.length)
                        if to.enqueue(copying: UnsafeRawBufferPointer(f.bytes), vnet: f.vnet) { frames += 1 }
                    }
                    to.flush()
                }
                if n == 0 {
                    _ = try? poller.wait(timeoutMilliseconds: 100)
                    if poller.isReady(wake) { break }
                }
            }
            forwarded.value = (frames, gso, largest)
        }
        defer {
            stop.signal()
            bridge.join()
        }

        let listener = try ns.run("c") { try TestSockets.listen(serverIP, 5002) }
        defer { close(listener) }
        let received = Shared(0)
        let server = TestThread {
            let c = accept(listener, nil, nil)
            guard c >= 0 else { return }
            var total = 0
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                total += n
            }
            close(c)
            received.value = total
        }
        let size = 8 << 20
        let sent = try ns.run("b") { () -> Int in
            let fd = try TestSockets.connect(serverIP, 5002)
            defer { close(fd) }
            return TestSockets.sendPattern(fd, count: size)
        }
        server.join()
        stop.signal()
        bridge.join()
        #expect(sent == size)
        #expect(received.value == size)
        let f = forwarded.value
        #expect(f.gso > 0, "no GSO super-frame was forwarded")
        #expect(f.largest > 1514)
        #expect(left.statistics.framesRejected == 0 && right.statistics.framesRejected == 0)
    }
    /// Completes a CHECKSUM_PARTIAL TCP or UDP checksum the way skb_checksum_help()
    /// does: the field holds the folded pseudo-header sum, so summing the L4 segment
    /// including it and storing the complement gives the full checksum (RFC 1071).
    private static func completeChecksum(_ f: UnsafeMutableRawBufferPointer) -> Bool {
        guard f.count >= 34, f[12] == 0x08, f[13] == 0x00 else { return false }
        let ihl = Int(f[14] & 0x0F) * 4
        let l4 = 14 + ihl
        let totalLength = Int(f[16]) << 8 | Int(f[17])
        let end = 14 + totalLength
        let field: Int
        switch f[23] {
        case 6: field = l4 + 16
        case 17: field = l4 + 6
        default: return false
        }
        guard end <= f.count, field + 2 <= end else { return false }
        var sum: UInt32 = 0
        var i = l4
        while i + 1 < end {
            sum += UInt32(f[i]) << 8 | UInt32(f[i + 1])
            i += 2
        }
        if i < end { sum += UInt32(f[i]) << 8 }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        var result = ~UInt16(sum)
        if f[23] == 17 && result == 0 { result = 0xFFFF }
        f[field] = UInt8(result >> 8)
        f[field + 1] = UInt8(result & 0xFF)
        return true
    }

    @Test("without vnet, a userspace bridge carries TCP when it completes CSUMNOTREADY checksums (senders' TSO/GSO off)")
    func forwardCompletingChecksums() throws {
        let ns = try TestNamespaces(["b", "a", "c"])
        try ns.veth("b", "b0", "a", "a1")
        try ns.veth("a", "a2", "c", "c0")
        let clientIP = ns.address(1), serverIP = ns.address(2)
        try ns.ip("b", "addr", "add", "\(clientIP)/24", "dev", "b0")
        try ns.ip("c", "addr", "add", "\(serverIP)/24", "dev", "c0")
        // Without a vnet header a super-frame cannot be sent (larger than the MTU), so
        // the senders must segment; checksum offload stays on, so frames still arrive
        // CHECKSUM_PARTIAL (KERNEL-NOTES, "Checksums and offloads on veth").
        for (n, dev) in [("b", "b0"), ("c", "c0")] {
            try Command.runChecked(["ip", "netns", "exec", ns.name(n), "ethtool", "-K", dev, "tso", "off", "gso", "off"])
        }
        let config = PacketRingConfiguration(version: .v2, virtioNetHeader: false)
        let (left, right) = try ns.run("a") {
            (try PacketRing(interfaceName: "a1", configuration: config), try PacketRing(interfaceName: "a2", configuration: config))
        }
        let stop = try EventFD()
        let counts = Shared((completed: 0, truncated: 0))
        let bridge = TestThread {
            var poller = Poller()
            _ = poller.add(left.receiveDescriptor)
            _ = poller.add(right.receiveDescriptor)
            let wake = poller.add(stop.descriptor)
            var completed = 0, truncated = 0
            while true {
                var n = 0
                for (from, to) in [(left, right), (right, left)] {
                    n += from.receive(maxFrames: 64) { f in
                        guard !f.isTruncated else { truncated += 1; return }
                        if f.checksumNotReady {
                            guard Self.completeChecksum(f.bytes) else { return }
                            completed += 1
                        }
                        _ = to.enqueue(copying: UnsafeRawBufferPointer(f.bytes), vnet: nil)
                    }
                    to.flush()
                }
                if n == 0 {
                    _ = try? poller.wait(timeoutMilliseconds: 100)
                    if poller.isReady(wake) { break }
                }
            }
            counts.value = (completed, truncated)
        }
        defer {
            stop.signal()
            bridge.join()
        }
        let listener = try ns.run("c") { try TestSockets.listen(serverIP, 5003) }
        defer { close(listener) }
        let received = Shared(0)
        let server = TestThread {
            let c = accept(listener, nil, nil)
            guard c >= 0 else { return }
            var total = 0
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                total += n
            }
            close(c)
            received.value = total
        }
        let size = 2 << 20
        let sent = try ns.run("b") { () -> Int in
            let fd = try TestSockets.connect(serverIP, 5003)
            defer { close(fd) }
            return TestSockets.sendPattern(fd, count: size)
        }
        server.join()
        stop.signal()
        bridge.join()
        #expect(sent == size)
        #expect(received.value == size)
        #expect(counts.value.completed > 0)
        #expect(counts.value.truncated == 0)
    }
}
