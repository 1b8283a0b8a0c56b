// The legacy virtio-net header that PACKET_VNET_HDR puts in front of every frame
// (include/uapi/linux/virtio_net.h, struct virtio_net_hdr; 10 bytes).
//
//   0      1        2          4          6            8             10
//   +------+--------+----------+----------+------------+-------------+
//   | flags|gso_type| hdr_len  | gso_size | csum_start | csum_offset |
//   +------+--------+----------+----------+------------+-------------+
//
// The 16-bit fields are "__virtio16": af_packet converts them with vio_le(), i.e.
// virtio_legacy_is_little_endian(), which is true on every little-endian host
// (net/packet/af_packet.c). Ferry runs on x86-64 and arm64, so they are little-endian.

/// The per-frame offload metadata the kernel exchanges with a packet socket that set
/// `PACKET_VNET_HDR`: checksum-offload position and GSO segmentation parameters.
public struct VirtioNetHeader: Hashable, Sendable {
    /// The size of the header in front of each frame.
    public static let size = 10

    private enum Offset {
        static let flags = 0
        static let gsoType = 1
        static let hdrLen = 2
        static let gsoSize = 4
        static let csumStart = 6
        static let csumOffset = 8
    }

    /// `VIRTIO_NET_HDR_F_*`.
    public struct Flags: OptionSet, Hashable, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// VIRTIO_NET_HDR_F_NEEDS_CSUM: the L4 checksum field holds only the
        /// pseudo-header sum; sum from `checksumStart` and store at
        /// `checksumStart + checksumOffset` (the kernel's CHECKSUM_PARTIAL).
        public static let needsChecksum = Flags(rawValue: 1)
        /// VIRTIO_NET_HDR_F_DATA_VALID: the checksum was verified (CHECKSUM_UNNECESSARY).
        public static let dataValid = Flags(rawValue: 2)
        /// VIRTIO_NET_HDR_F_RSC_INFO.
        public static let rscInfo = Flags(rawValue: 4)
    }

    /// `VIRTIO_NET_HDR_GSO_*` without the ECN bit.
    public enum GSOType: Hashable, Sendable {
        case none
        case tcpv4
        case udp
        case tcpv6
        case udpL4
        case unknown(UInt8)

        public init(rawValue: UInt8) {
            switch rawValue {
            case 0: self = .none
            case 1: self = .tcpv4
            case 3: self = .udp
            case 4: self = .tcpv6
            case 5: self = .udpL4
            default: self = .unknown(rawValue)
            }
        }

        public var rawValue: UInt8 {
            switch self {
            case .none: 0
            case .tcpv4: 1
            case .udp: 3
            case .tcpv6: 4
            case .udpL4: 5
            case .unknown(let n): n
            }
        }
    }

    /// VIRTIO_NET_HDR_GSO_ECN: the segments carry CWR and must be set on the first only.
    static let gsoECNBit: UInt8 = 0x80

    public var flags: Flags
    public var gsoType: GSOType
    /// VIRTIO_NET_HDR_GSO_ECN.
    public var gsoECN: Bool
    /// `hdr_len`: bytes of headers (Ethernet + IP + L4) repeated in each segment.
    public var headerLength: UInt16
    /// `gso_size`: payload bytes per segment (the MSS for TCP).
    public var gsoSize: UInt16
    /// `csum_start`: offset from the start of the Ethernet header where checksumming starts.
    public var checksumStart: UInt16
    /// `csum_offset`: where, after `checksumStart`, the checksum is stored.
    public var checksumOffset: UInt16

    public init(
        flags: Flags = [], gsoType: GSOType = .none, gsoECN: Bool = false, headerLength: UInt16 = 0,
        gsoSize: UInt16 = 0, checksumStart: UInt16 = 0, checksumOffset: UInt16 = 0
    ) {
        self.flags = flags
        self.gsoType = gsoType
        self.gsoECN = gsoECN
        self.headerLength = headerLength
        self.gsoSize = gsoSize
        self.checksumStart = checksumStart
        self.checksumOffset = checksumOffset
    }

    /// A header that asks for nothing: no checksum offload, no segmentation.
    public static let none = VirtioNetHeader()

    public var needsChecksum: Bool { flags.contains(.needsChecksum) }
    public var dataValid: Bool { flags.contains(.dataValid) }
    public var isGSO: Bool { gsoType != .none }

    /// Reads a header from `bytes`, which must hold at least `size` bytes.
    public init?(checking bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.size, let base = bytes.baseAddress else { return nil }
        self.init(unchecked: base)
    }

    /// Reads a header at `pointer`; the caller guarantees `size` readable bytes.
    public init(unchecked pointer: UnsafeRawPointer) {
        flags = Flags(rawValue: pointer.load(fromByteOffset: Offset.flags, as: UInt8.self))
        let g = pointer.load(fromByteOffset: Offset.gsoType, as: UInt8.self)
        gsoType = GSOType(rawValue: g & ~Self.gsoECNBit)
        gsoECN = g & Self.gsoECNBit != 0
        headerLength = Self.le16(pointer, Offset.hdrLen)
        gsoSize = Self.le16(pointer, Offset.gsoSize)
        checksumStart = Self.le16(pointer, Offset.csumStart)
        checksumOffset = Self.le16(pointer, Offset.csumOffset)
    }

    /// Writes the header at `pointer`; the caller guarantees `size` writable bytes.
    public func store(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: flags.rawValue, toByteOffset: Offset.flags, as: UInt8.self)
        pointer.storeBytes(of: gsoType.rawValue | (gsoECN ? Self.gsoECNBit : 0), toByteOffset: Offset.gsoType, as: UInt8.self)
        Self.storeLE16(headerLength, pointer, Offset.hdrLen)
        Self.storeLE16(gsoSize, pointer, Offset.gsoSize)
        Self.storeLE16(checksumStart, pointer, Offset.csumStart)
        Self.storeLE16(checksumOffset, pointer, Offset.csumOffset)
    }

    @inline(__always) private static func le16(_ p: UnsafeRawPointer, _ offset: Int) -> UInt16 {
        // Byte-wise: the header sits 10 bytes before the Ethernet header and need not be aligned.
        UInt16(p.load(fromByteOffset: offset, as: UInt8.self)) | UInt16(p.load(fromByteOffset: offset + 1, as: UInt8.self)) << 8
    }

    @inline(__always) private static func storeLE16(_ v: UInt16, _ p: UnsafeMutableRawPointer, _ offset: Int) {
        p.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: offset, as: UInt8.self)
        p.storeBytes(of: UInt8(truncatingIfNeeded: v >> 8), toByteOffset: offset + 1, as: UInt8.self)
    }
}
