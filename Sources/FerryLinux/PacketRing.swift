// AF_PACKET sockets with mmap'd rings (Documentation/networking/packet_mmap.rst,
// net/packet/af_packet.c). One PacketRing is bound to one interface and owns two
// sockets:
//
//   - a receive socket (ETH_P_ALL) with a TPACKET_V3 or TPACKET_V2 RX ring;
//   - a transmit socket with a TPACKET_V2 TX ring, bound with protocol 0 so that it
//     never receives anything (packet_do_bind: "if (proto == 0 ...) goto out_unlock"
//     skips register_prot_hook).
//
// Two sockets because PACKET_VERSION is per socket and covers both rings: a V3 RX ring
// and a V2 TX ring cannot share one. Since they do not share a socket, skb_loop_sk()
// would not hide our own transmits from the receive socket; PACKET_IGNORE_OUTGOING does
// (and it also hides the kernel's own outgoing frames, which a forwarder never wants).
import CFerryLinux
import Glibc

/// The TPACKET version of the receive ring.
public enum RingVersion: Hashable, Sendable {
    /// TPACKET_V2: fixed-size slots handed over one by one. Lowest latency at light
    /// load; a slot must be sized for the largest frame (64 KB with GSO).
    case v2
    /// TPACKET_V3: variable-length frames packed in blocks, a block handed over when
    /// full or when its retire timer fires. Cheapest per packet at high rate; the
    /// retire timeout is the latency floor at light load (KERNEL-NOTES, "Rings").
    case v3
}

/// How a PacketRing is set up. The defaults are chosen in `init(version:virtioNetHeader:)`.
public struct PacketRingConfiguration: Hashable, Sendable {
    public var version: RingVersion
    /// PACKET_VNET_HDR on both sockets: each frame carries a `VirtioNetHeader`, so
    /// CHECKSUM_PARTIAL and GSO super-frames cross userspace intact.
    public var virtioNetHeader: Bool
    /// PACKET_IGNORE_OUTGOING on the receive socket.
    public var ignoreOutgoing: Bool
    /// PACKET_QDISC_BYPASS on the transmit socket: dev_direct_xmit() instead of the
    /// qdisc. Faster, but no traffic shaping and drops are not retried by the qdisc.
    public var qdiscBypass: Bool

    /// Receive ring block size in bytes (a multiple of the page size). For V3 a block
    /// holds many variable-length frames; for V2 it holds `receiveBlockSize / receiveFrameSize` slots.
    public var receiveBlockSize: Int
    public var receiveBlockCount: Int
    /// V2: the slot size. V3: only the granularity the kernel validates `tp_frame_nr` with.
    public var receiveFrameSize: Int
    /// V3: `tp_retire_blk_tov`, how long a partly filled block waits before it is handed over.
    public var retireTimeoutMilliseconds: Int

    /// Transmit ring slot size (TPACKET_V2). 0 slots means no transmit ring.
    public var transmitFrameSize: Int
    public var transmitBlockSize: Int
    public var transmitBlockCount: Int

    /// Picks defaults:
    ///
    /// - V3 receive: 8 blocks of 1 MiB, 1 ms retire timeout. A 1 MiB block holds about
    ///   8,000 small frames or 15 64 KB GSO super-frames whole (V3 frames are variable
    ///   length, so no slot size caps them). 8 MiB buffers about 50 ms at the 1.3 Mpps
    ///   a V3 capture sustains here, enough to ride out a scheduling hiccup. 1 ms,
    ///   as VPP uses, instead of the kernel's 8 ms default for links of unknown speed
    ///   (prb_calc_retire_blk_tmo, DEFAULT_PRB_RETIRE_TOV), bounds light-load latency.
    /// - V2 receive: with a vnet header, 69,632-byte slots (17 pages: a 64 KiB GSO
    ///   super-frame plus the tpacket2 header, sockaddr_ll and virtio header) in 32
    ///   blocks of 7; without one, 2 KiB slots (a 1500-MTU frame) in 16 blocks of 32.
    /// - Transmit: the same slot sizes as V2 receive; 16 blocks of 7 (vnet) or 16 of 32.
    public init(version: RingVersion = .v3, virtioNetHeader: Bool = false) {
        self.version = version
        self.virtioNetHeader = virtioNetHeader
        ignoreOutgoing = true
        qdiscBypass = false
        let bigSlot = 17 * 4096
        switch (version, virtioNetHeader) {
        case (.v3, _):
            receiveBlockSize = 1 << 20
            receiveBlockCount = 8
            receiveFrameSize = 2048
        case (.v2, true):
            receiveFrameSize = bigSlot
            receiveBlockSize = bigSlot * 7
            receiveBlockCount = 32
        case (.v2, false):
            receiveFrameSize = 2048
            receiveBlockSize = 2048 * 32
            receiveBlockCount = 16
        }
        retireTimeoutMilliseconds = 1
        if virtioNetHeader {
            transmitFrameSize = bigSlot
            transmitBlockSize = bigSlot * 7
        } else {
            transmitFrameSize = 2048
            transmitBlockSize = 2048 * 32
        }
        transmitBlockCount = 16
    }
}

/// Counters kept by a PacketRing. Plain integers: one thread owns the ring.
public struct PacketRingStatistics: Hashable, Sendable {
    /// Frames handed to `receive`'s closure.
    public var framesReceived: UInt64 = 0
    /// Received frames whose slot was too small (`tp_snaplen < tp_len`).
    public var framesTruncated: UInt64 = 0
    /// Frames the kernel took from the transmit ring.
    public var framesSent: UInt64 = 0
    /// `enqueue` calls refused because no transmit slot was free.
    public var ringFull: UInt64 = 0
    /// `enqueue` calls refused because the frame does not fit a slot or is shorter
    /// than an Ethernet header.
    public var frameSizeInvalid: UInt64 = 0
    /// Frames the kernel refused (TP_STATUS_WRONG_FORMAT: bad virtio header, larger
    /// than the MTU without GSO, bad link-layer header).
    public var framesRejected: UInt64 = 0
    /// `send()` calls that failed, and the last errno.
    public var sendErrors: UInt64 = 0
    public var lastSendError: Errno? = nil
    /// Frames the kernel dropped because the receive ring was full
    /// (PACKET_STATISTICS tp_drops, accumulated by `collectKernelStatistics`).
    public var kernelDrops: UInt64 = 0
    /// V3: times the ring was frozen for lack of a free block (tp_freeze_q_cnt).
    public var kernelQueueFreezes: UInt64 = 0
}

/// An AF_PACKET receive ring and transmit ring on one interface.
///
/// One thread uses a PacketRing at a time; it may be created on one thread (for
/// example one that entered a network namespace) and used on another, hence
/// `@unchecked Sendable`. Nothing on the receive or transmit path allocates or locks.
public final class PacketRing: @unchecked Sendable {
    public let configuration: PacketRingConfiguration
    public let interfaceIndex: Int32
    public private(set) var statistics = PacketRingStatistics()

    private let rxFD: Int32
    private let txFD: Int32
    private let rxMap: UnsafeMutableRawPointer?
    private let rxMapLength: Int
    private let txMap: UnsafeMutableRawPointer?
    private let txMapLength: Int

    // Receive ring geometry and cursor.
    private let rxFramesPerBlock: Int
    private let rxFrameCount: Int
    private var rxIndex = 0  // V2: next slot; V3: current block
    private var v3Remaining = 0  // V3: frames left in the block being read (0 = not started)
    private var v3Offset = 0  // V3: offset in the block of the next frame

    // Transmit ring geometry and cursors (see flush()).
    private let txFramesPerBlock: Int
    private let txFrameCount: Int
    private var txTail = 0  // next slot to fill
    private var txHead = 0  // oldest slot handed to the kernel and not yet seen taken (== the kernel's rb->head)
    private var txPending = 0  // slots in SEND_REQUEST between txHead and txTail
    private let txDataOffset = Int(ferry_tpacket2_tx_data_offset())
    /// Largest `tp_len` a slot can carry (tpacket_snd's size_max).
    private let txMaxLength: Int

    /// The descriptor to poll for readability: readable when a receive block or slot
    /// is ready.
    public var receiveDescriptor: FileDescriptor { FileDescriptor(rawValue: rxFD) }
    /// The transmit socket.
    public var transmitDescriptor: FileDescriptor { FileDescriptor(rawValue: txFD) }

    /// Opens and binds both sockets and maps both rings. Must run in the network
    /// namespace of the interface: sockets belong to the namespace they are created in.
    public init(interfaceIndex: Int32, configuration: PacketRingConfiguration = PacketRingConfiguration()) throws(SystemError) {
        self.configuration = configuration
        self.interfaceIndex = interfaceIndex
        let c = configuration
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        precondition(c.receiveBlockSize % page == 0 && c.transmitBlockSize % page == 0, "ring blocks must be page multiples")
        precondition(c.receiveFrameSize % Int(TPACKET_ALIGNMENT) == 0 && c.transmitFrameSize % Int(TPACKET_ALIGNMENT) == 0)

        // Receive socket. Created with protocol 0 so that it sees nothing until the ring
        // exists and bind() names ETH_P_ALL (packet_create registers a hook only if proto != 0).
        let rx = try check("socket(AF_PACKET) for receive", Sys.socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0))
        var rxMapped: UnsafeMutableRawPointer? = nil
        var rxLen = 0
        var tx: Int32 = -1
        var txMapped: UnsafeMutableRawPointer? = nil
        var txLen = 0
        do {
            let version: Int32 = c.version == .v3 ? Int32(TPACKET_V3.rawValue) : Int32(TPACKET_V2.rawValue)
            _ = try check("PACKET_VERSION", Sys.setsockopt(rx, SOL_PACKET, PACKET_VERSION, version))
            if c.virtioNetHeader {
                // Must precede PACKET_RX_RING: packet_setsockopt returns EBUSY once a ring exists.
                _ = try check("PACKET_VNET_HDR", Sys.setsockopt(rx, SOL_PACKET, PACKET_VNET_HDR, Int32(1)))
            }
            if c.ignoreOutgoing {
                _ = try check("PACKET_IGNORE_OUTGOING", Sys.setsockopt(rx, SOL_PACKET, PACKET_IGNORE_OUTGOING, Int32(1)))
            }
            let framesPerBlock = c.receiveBlockSize / c.receiveFrameSize
            precondition(framesPerBlock >= 1, "receive frame larger than a block")
            switch c.version {
            case .v3:
                var req = tpacket_req3()
                req.tp_block_size = UInt32(c.receiveBlockSize)
                req.tp_block_nr = UInt32(c.receiveBlockCount)
                req.tp_frame_size = UInt32(c.receiveFrameSize)
                req.tp_frame_nr = UInt32(framesPerBlock * c.receiveBlockCount)
                req.tp_retire_blk_tov = UInt32(c.retireTimeoutMilliseconds)
                req.tp_sizeof_priv = 0
                req.tp_feature_req_word = 0
                _ = try check("PACKET_RX_RING (TPACKET_V3)", Sys.setsockopt(rx, SOL_PACKET, PACKET_RX_RING, req))
            case .v2:
                var req = tpacket_req()
                req.tp_block_size = UInt32(c.receiveBlockSize)
                req.tp_block_nr = UInt32(c.receiveBlockCount)
                req.tp_frame_size = UInt32(c.receiveFrameSize)
                req.tp_frame_nr = UInt32(framesPerBlock * c.receiveBlockCount)
                _ = try check("PACKET_RX_RING (TPACKET_V2)", Sys.setsockopt(rx, SOL_PACKET, PACKET_RX_RING, req))
            }
            rxLen = c.receiveBlockSize * c.receiveBlockCount
            rxMapped = try check("mmap receive ring", Sys.mmap(length: rxLen, fd: rx))
            var rxAddr = sockaddr_ll()
            rxAddr.sll_family = UInt16(AF_PACKET)
            rxAddr.sll_protocol = UInt16(ETH_P_ALL).bigEndian
            rxAddr.sll_ifindex = interfaceIndex
            _ = try check("bind receive socket to ifindex \(interfaceIndex)", Sys.bind(rx, rxAddr))

            // Transmit socket.
            if c.transmitBlockCount > 0 {
                tx = try check("socket(AF_PACKET) for transmit", Sys.socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0))
                _ = try check("PACKET_VERSION (transmit)", Sys.setsockopt(tx, SOL_PACKET, PACKET_VERSION, Int32(TPACKET_V2.rawValue)))
                if c.virtioNetHeader {
                    _ = try check("PACKET_VNET_HDR (transmit)", Sys.setsockopt(tx, SOL_PACKET, PACKET_VNET_HDR, Int32(1)))
                }
                if c.qdiscBypass {
                    _ = try check("PACKET_QDISC_BYPASS", Sys.setsockopt(tx, SOL_PACKET, PACKET_QDISC_BYPASS, Int32(1)))
                }
                // tpacket_snd charges every in-flight frame to sk_wmem_alloc; with the
                // default 208 KiB send buffer only three 64 KiB GSO frames could be in
                // flight. Ask for the whole ring (SO_SNDBUFFORCE needs CAP_NET_ADMIN;
                // fall back to the capped SO_SNDBUF).
                let want = Int32(clamping: c.transmitBlockSize * c.transmitBlockCount)
                if case .failure = Sys.setsockopt(tx, SOL_SOCKET, SO_SNDBUFFORCE, want) {
                    _ = Sys.setsockopt(tx, SOL_SOCKET, SO_SNDBUF, want)
                }
                let txPerBlock = c.transmitBlockSize / c.transmitFrameSize
                precondition(txPerBlock >= 1, "transmit frame larger than a block")
                var req = tpacket_req()
                req.tp_block_size = UInt32(c.transmitBlockSize)
                req.tp_block_nr = UInt32(c.transmitBlockCount)
                req.tp_frame_size = UInt32(c.transmitFrameSize)
                req.tp_frame_nr = UInt32(txPerBlock * c.transmitBlockCount)
                _ = try check("PACKET_TX_RING", Sys.setsockopt(tx, SOL_PACKET, PACKET_TX_RING, req))
                txLen = c.transmitBlockSize * c.transmitBlockCount
                txMapped = try check("mmap transmit ring", Sys.mmap(length: txLen, fd: tx))
                var txAddr = sockaddr_ll()
                txAddr.sll_family = UInt16(AF_PACKET)
                txAddr.sll_protocol = 0
                txAddr.sll_ifindex = interfaceIndex
                _ = try check("bind transmit socket to ifindex \(interfaceIndex)", Sys.bind(tx, txAddr))
            }
        } catch {
            if let p = rxMapped { Sys.munmap(p, rxLen) }
            if let p = txMapped { Sys.munmap(p, txLen) }
            Sys.close(rx)
            if tx >= 0 { Sys.close(tx) }
            throw error
        }
        rxFD = rx
        txFD = tx
        rxMap = rxMapped
        rxMapLength = rxLen
        txMap = txMapped
        txMapLength = txLen
        rxFramesPerBlock = c.receiveBlockSize / c.receiveFrameSize
        rxFrameCount = rxFramesPerBlock * c.receiveBlockCount
        if c.transmitBlockCount > 0 {
            txFramesPerBlock = c.transmitBlockSize / c.transmitFrameSize
            txFrameCount = txFramesPerBlock * c.transmitBlockCount
        } else {
            txFramesPerBlock = 0
            txFrameCount = 0
        }
        txMaxLength = c.transmitFrameSize - Int(ferry_tpacket2_tx_data_offset())
    }

    /// Looks the interface up by name (in the calling thread's namespace) and opens rings on it.
    public convenience init(interfaceName: String, configuration: PacketRingConfiguration = PacketRingConfiguration()) throws(SystemError) {
        let index = if_nametoindex(interfaceName)
        guard index != 0 else { throw SystemError("if_nametoindex(\(interfaceName))", .noSuchDevice) }
        try self.init(interfaceIndex: Int32(index), configuration: configuration)
    }

    deinit {
        if let p = rxMap { Sys.munmap(p, rxMapLength) }
        if let p = txMap { Sys.munmap(p, txMapLength) }
        Sys.close(rxFD)
        if txFD >= 0 { Sys.close(txFD) }
    }

    // MARK: - Kernel structure offsets (include/uapi/linux/if_packet.h)

    private enum Layout {
        // struct tpacket2_hdr
        static let v2Status = MemoryLayout<tpacket2_hdr>.offset(of: \.tp_status)!
        static let v2Len = MemoryLayout<tpacket2_hdr>.offset(of: \.tp_len)!
        static let v2Snaplen = MemoryLayout<tpacket2_hdr>.offset(of: \.tp_snaplen)!
        static let v2Mac = MemoryLayout<tpacket2_hdr>.offset(of: \.tp_mac)!
        static let v2VlanTCI = MemoryLayout<tpacket2_hdr>.offset(of: \.tp_vlan_tci)!
        /// The sockaddr_ll follows the header at TPACKET_ALIGN(sizeof(struct tpacket2_hdr)).
        static let v2Sockaddr = Int(ferry_tpacket_align(MemoryLayout<tpacket2_hdr>.size))

        // struct tpacket_block_desc { version; offset_to_priv; union tpacket_bd_header_u hdr; }
        static let blockHeader = MemoryLayout<tpacket_block_desc>.offset(of: \.hdr)!
        static let blockStatus = blockHeader + MemoryLayout<tpacket_hdr_v1>.offset(of: \.block_status)!
        static let blockNumPackets = blockHeader + MemoryLayout<tpacket_hdr_v1>.offset(of: \.num_pkts)!
        static let blockFirstPacket = blockHeader + MemoryLayout<tpacket_hdr_v1>.offset(of: \.offset_to_first_pkt)!

        // struct tpacket3_hdr
        static let v3NextOffset = MemoryLayout<tpacket3_hdr>.offset(of: \.tp_next_offset)!
        static let v3Snaplen = MemoryLayout<tpacket3_hdr>.offset(of: \.tp_snaplen)!
        static let v3Len = MemoryLayout<tpacket3_hdr>.offset(of: \.tp_len)!
        static let v3Status = MemoryLayout<tpacket3_hdr>.offset(of: \.tp_status)!
        static let v3Mac = MemoryLayout<tpacket3_hdr>.offset(of: \.tp_mac)!
        static let v3VlanTCI = MemoryLayout<tpacket3_hdr>.offset(of: \.hv1)! + MemoryLayout<tpacket_hdr_variant1>.offset(of: \.tp_vlan_tci)!
        static let v3Sockaddr = Int(ferry_tpacket_align(MemoryLayout<tpacket3_hdr>.size))

        // struct sockaddr_ll
        static let sllIfindex = MemoryLayout<sockaddr_ll>.offset(of: \.sll_ifindex)!
        static let sllPkttype = MemoryLayout<sockaddr_ll>.offset(of: \.sll_pkttype)!
    }

    // MARK: - Receive

    /// Hands up to `maxFrames` ready frames to `body`, one at a time, and returns each
    /// slot (V2) or finished block (V3) to the kernel after `body` returns. Returns the
    /// number of frames handed over; 0 when nothing is ready. Never blocks.
    ///
    /// - Important: the frame and its bytes must not escape `body`.
    @inline(__always)
    public func receive(maxFrames: Int, _ body: (inout ReceivedFrame) -> Void) -> Int {
        guard let base = rxMap else { return 0 }
        switch configuration.version {
        case .v2: return receiveV2(base, maxFrames, body)
        case .v3: return receiveV3(base, maxFrames, body)
        }
    }

    private func receiveV2(_ base: UnsafeMutableRawPointer, _ maxFrames: Int, _ body: (inout ReceivedFrame) -> Void) -> Int {
        let frameSize = configuration.receiveFrameSize
        let blockSize = configuration.receiveBlockSize
        let vnetOn = configuration.virtioNetHeader
        var count = 0
        while count < maxFrames {
            // Slots never straddle blocks: slot i is in block i / framesPerBlock.
            let slot = base + (rxIndex / rxFramesPerBlock) * blockSize + (rxIndex % rxFramesPerBlock) * frameSize
            let status = ferry_ring_load_status(slot + Layout.v2Status)
            guard status & UInt32(TP_STATUS_USER) != 0 else { break }
            let mac = Int(slot.load(fromByteOffset: Layout.v2Mac, as: UInt16.self))
            let snap = Int(slot.load(fromByteOffset: Layout.v2Snaplen, as: UInt32.self))
            let len = Int(slot.load(fromByteOffset: Layout.v2Len, as: UInt32.self))
            let sll = slot + Layout.v2Sockaddr
            var frame = ReceivedFrame(
                bytes: UnsafeMutableRawBufferPointer(start: slot + mac, count: snap),
                capacity: frameSize - mac,
                length: len,
                checksumNotReady: status & UInt32(TP_STATUS_CSUMNOTREADY) != 0,
                checksumValid: status & UInt32(TP_STATUS_CSUM_VALID) != 0,
                // tpacket_rcv writes the header right before the MAC header (h.raw + macoff - sizeof(vnet)).
                vnet: vnetOn ? VirtioNetHeader(unchecked: slot + mac - VirtioNetHeader.size) : nil,
                packetType: PacketType(rawValue: sll.load(fromByteOffset: Layout.sllPkttype, as: UInt8.self)),
                interfaceIndex: sll.load(fromByteOffset: Layout.sllIfindex, as: Int32.self),
                vlanTCI: status & UInt32(TP_STATUS_VLAN_VALID) != 0 ? slot.load(fromByteOffset: Layout.v2VlanTCI, as: UInt16.self) : nil
            )
            if snap < len { statistics.framesTruncated &+= 1 }
            body(&frame)
            ferry_ring_store_status(slot + Layout.v2Status, UInt32(TP_STATUS_KERNEL))
            rxIndex = rxIndex + 1 == rxFrameCount ? 0 : rxIndex + 1
            count += 1
        }
        statistics.framesReceived &+= UInt64(count)
        return count
    }

    private func receiveV3(_ base: UnsafeMutableRawPointer, _ maxFrames: Int, _ body: (inout ReceivedFrame) -> Void) -> Int {
        let blockSize = configuration.receiveBlockSize
        let vnetOn = configuration.virtioNetHeader
        var count = 0
        while count < maxFrames {
            let block = base + rxIndex * blockSize
            if v3Remaining == 0 {
                // Not yet started on this block: is it ours?
                let status = ferry_ring_load_status(block + Layout.blockStatus)
                guard status & UInt32(TP_STATUS_USER) != 0 else { break }
                v3Remaining = Int(block.load(fromByteOffset: Layout.blockNumPackets, as: UInt32.self))
                v3Offset = Int(block.load(fromByteOffset: Layout.blockFirstPacket, as: UInt32.self))
                if v3Remaining == 0 {
                    // A block retired by the timer with no frames: give it back.
                    releaseV3Block(block)
                    continue
                }
            }
            let packet = block + v3Offset
            let status = packet.load(fromByteOffset: Layout.v3Status, as: UInt32.self)
            let mac = Int(packet.load(fromByteOffset: Layout.v3Mac, as: UInt16.self))
            let snap = Int(packet.load(fromByteOffset: Layout.v3Snaplen, as: UInt32.self))
            let len = Int(packet.load(fromByteOffset: Layout.v3Len, as: UInt32.self))
            let next = Int(packet.load(fromByteOffset: Layout.v3NextOffset, as: UInt32.self))
            let sll = packet + Layout.v3Sockaddr
            // Room up to the next frame's header, or to the end of the block for the last.
            let room = next != 0 ? next - mac : blockSize - v3Offset - mac
            var frame = ReceivedFrame(
                bytes: UnsafeMutableRawBufferPointer(start: packet + mac, count: snap),
                capacity: max(room, snap),
                length: len,
                checksumNotReady: status & UInt32(TP_STATUS_CSUMNOTREADY) != 0,
                checksumValid: status & UInt32(TP_STATUS_CSUM_VALID) != 0,
                vnet: vnetOn ? VirtioNetHeader(unchecked: packet + mac - VirtioNetHeader.size) : nil,
                packetType: PacketType(rawValue: sll.load(fromByteOffset: Layout.sllPkttype, as: UInt8.self)),
                interfaceIndex: sll.load(fromByteOffset: Layout.sllIfindex, as: Int32.self),
                vlanTCI: status & UInt32(TP_STATUS_VLAN_VALID) != 0 ? UInt16(truncatingIfNeeded: packet.load(fromByteOffset: Layout.v3VlanTCI, as: UInt32.self)) : nil
            )
            if snap < len { statistics.framesTruncated &+= 1 }
            body(&frame)
            count += 1
            v3Remaining -= 1
            v3Offset += next
            if v3Remaining == 0 { releaseV3Block(block) }
        }
        statistics.framesReceived &+= UInt64(count)
        return count
    }

    @inline(__always) private func releaseV3Block(_ block: UnsafeMutableRawPointer) {
        ferry_ring_store_status(block + Layout.blockStatus, UInt32(TP_STATUS_KERNEL))
        v3Remaining = 0
        v3Offset = 0
        rxIndex = rxIndex + 1 == configuration.receiveBlockCount ? 0 : rxIndex + 1
    }

    /// Adds the kernel's PACKET_STATISTICS (drops for lack of ring space, V3 queue
    /// freezes) to `statistics`. Reading resets the kernel's counters, so call it from
    /// the ring's own thread, between batches.
    public func collectKernelStatistics() {
        switch configuration.version {
        case .v3:
            var s = tpacket_stats_v3()
            if case .success = Sys.getsockopt(rxFD, SOL_PACKET, PACKET_STATISTICS, into: &s) {
                statistics.kernelDrops &+= UInt64(s.tp_drops)
                statistics.kernelQueueFreezes &+= UInt64(s.tp_freeze_q_cnt)
            }
        case .v2:
            var s = tpacket_stats()
            if case .success = Sys.getsockopt(rxFD, SOL_PACKET, PACKET_STATISTICS, into: &s) {
                statistics.kernelDrops &+= UInt64(s.tp_drops)
            }
        }
    }

    // MARK: - Transmit

    @inline(__always) private func txSlot(_ base: UnsafeMutableRawPointer, _ i: Int) -> UnsafeMutableRawPointer {
        base + (i / txFramesPerBlock) * configuration.transmitBlockSize + (i % txFramesPerBlock) * configuration.transmitFrameSize
    }

    /// Copies `frame` (starting at the Ethernet header) into the next free transmit
    /// slot, preceded by `vnet` when the ring has PACKET_VNET_HDR (a header that asks
    /// for nothing when `vnet` is nil). The frame leaves on the next `flush()`.
    ///
    /// Returns false, and counts it, when no slot is free (never waits) or when the
    /// frame cannot fit a slot. With a vnet header and `gsoType` set, a frame may be
    /// up to 64 KiB: the kernel segments it at the egress device.
    ///
    /// - Precondition: `vnet` is nil unless the ring was opened with `virtioNetHeader`.
    @inline(__always)
    public func enqueue(copying frame: UnsafeRawBufferPointer, vnet: VirtioNetHeader?) -> Bool {
        precondition(vnet == nil || configuration.virtioNetHeader, "vnet header on a ring without PACKET_VNET_HDR")
        guard let base = txMap, let src = frame.baseAddress else { return false }
        let header = configuration.virtioNetHeader ? VirtioNetHeader.size : 0
        let total = header + frame.count
        // 14 = ETH_HLEN: dev_validate_header() rejects shorter frames on Ethernet.
        guard frame.count >= 14, total <= txMaxLength else {
            statistics.frameSizeInvalid &+= 1
            return false
        }
        let slot = txSlot(base, txTail)
        guard txPending < txFrameCount,
            ferry_ring_load_status(slot + Layout.v2Status) == UInt32(TP_STATUS_AVAILABLE)
        else {
            statistics.ringFull &+= 1
            return false
        }
        let data = slot + txDataOffset
        if configuration.virtioNetHeader { (vnet ?? .none).store(to: data) }
        (data + header).copyMemory(from: src, byteCount: frame.count)
        slot.storeBytes(of: UInt32(total), toByteOffset: Layout.v2Len, as: UInt32.self)
        ferry_ring_store_status(slot + Layout.v2Status, UInt32(TP_STATUS_SEND_REQUEST))
        txTail = txTail + 1 == txFrameCount ? 0 : txTail + 1
        txPending += 1
        return true
    }

    /// Frames enqueued and not yet taken by the kernel.
    public var pendingTransmits: Int { txPending }

    /// Hands every enqueued frame to the kernel with one `send(fd, NULL, 0, MSG_DONTWAIT)`.
    ///
    /// The kernel (tpacket_snd) walks the ring from its head while slots are
    /// SEND_REQUEST. A slot it cannot parse is marked TP_STATUS_WRONG_FORMAT and its head
    /// stays there, so every later send would stop at it (PACKET_LOSS would skip such
    /// slots silently instead, and they could not be counted). So a rejected slot is
    /// counted and removed here by moving the frames queued behind it down one slot,
    /// and the rest is sent again. That copy is the error path only.
    public func flush() {
        guard let base = txMap, txPending > 0 else { return }
        var rounds = 0
        while txPending > 0 && rounds <= txFrameCount {
            rounds += 1
            switch Sys.send(txFD, nil, 0, Int32(MSG_DONTWAIT)) {
            case .success: break
            case .failure(let e):
                statistics.sendErrors &+= 1
                statistics.lastSendError = e
            }
            // Walk from the head over the slots the kernel took (SENDING or already
            // AVAILABLE again); stop at the first it left.
            var rejectedAt: Int? = nil
            while txPending > 0 {
                let status = ferry_ring_load_status(txSlot(base, txHead) + Layout.v2Status)
                if status == UInt32(TP_STATUS_SEND_REQUEST) { break }
                if status & UInt32(TP_STATUS_WRONG_FORMAT) != 0 {
                    rejectedAt = txHead
                    break
                }
                statistics.framesSent &+= 1
                txHead = txHead + 1 == txFrameCount ? 0 : txHead + 1
                txPending -= 1
            }
            guard let bad = rejectedAt else { return }
            statistics.framesRejected &+= 1
            dropRejectedSlot(base, bad)
        }
    }

    /// Removes the slot at `bad` (== txHead) from the queue by shifting later pending
    /// frames down. Safe without synchronisation: the kernel reads the ring only inside
    /// our own send() call.
    private func dropRejectedSlot(_ base: UnsafeMutableRawPointer, _ bad: Int) {
        var dst = bad
        var moved = 1
        while moved < txPending {
            let src = dst + 1 == txFrameCount ? 0 : dst + 1
            let s = txSlot(base, src)
            let d = txSlot(base, dst)
            let len = Int(s.load(fromByteOffset: Layout.v2Len, as: UInt32.self))
            (d + txDataOffset).copyMemory(from: s + txDataOffset, byteCount: len)
            d.storeBytes(of: UInt32(len), toByteOffset: Layout.v2Len, as: UInt32.self)
            ferry_ring_store_status(d + Layout.v2Status, UInt32(TP_STATUS_SEND_REQUEST))
            dst = src
            moved += 1
        }
        ferry_ring_store_status(txSlot(base, dst) + Layout.v2Status, UInt32(TP_STATUS_AVAILABLE))
        txTail = dst
        txPending -= 1
    }
}
