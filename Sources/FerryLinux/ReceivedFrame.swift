// What one received frame looks like to the packet loop. The bytes live in the
// mmap'd ring; a ReceivedFrame is lent to a closure and must not escape it.

/// `sll_pkttype` (include/uapi/linux/if_packet.h, PACKET_HOST …): who the frame was for.
public enum PacketType: Hashable, Sendable {
    /// PACKET_HOST: addressed to this interface's MAC.
    case host
    /// PACKET_BROADCAST.
    case broadcast
    /// PACKET_MULTICAST.
    case multicast
    /// PACKET_OTHERHOST: addressed to another MAC (seen in promiscuous mode).
    case otherHost
    /// PACKET_OUTGOING: sent by this host on the interface.
    case outgoing
    case unknown(UInt8)

    public init(rawValue: UInt8) {
        switch rawValue {
        case 0: self = .host
        case 1: self = .broadcast
        case 2: self = .multicast
        case 3: self = .otherHost
        case 4: self = .outgoing
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: UInt8 {
        switch self {
        case .host: 0
        case .broadcast: 1
        case .multicast: 2
        case .otherHost: 3
        case .outgoing: 4
        case .unknown(let n): n
        }
    }
}

/// One frame in a receive ring, lent to `PacketRing.receive`'s closure.
///
/// - Important: `bytes` points into the ring. Do not let it, or this value, escape the
///   closure: the slot goes back to the kernel as soon as the closure returns.
public struct ReceivedFrame {
    /// The frame in the ring, starting at the Ethernet header, `snapLength` bytes long.
    /// Writable: the packet loop rewrites headers in place and transmits from here.
    public var bytes: UnsafeMutableRawBufferPointer
    /// Bytes available from the start of the frame to the end of its ring slot, for
    /// in-place growth. At least `bytes.count`.
    public let capacity: Int
    /// `tp_len`: the frame's length on the wire (for GSO super-frames, the whole
    /// super-frame), which can exceed `bytes.count` when the slot was too small.
    public let length: Int
    /// `tp_snaplen < tp_len`: the ring slot could not hold the whole frame. Never
    /// forward a truncated frame.
    public var isTruncated: Bool { bytes.count < length }
    /// TP_STATUS_CSUMNOTREADY: the skb was CHECKSUM_PARTIAL. The L4 checksum field
    /// holds only the pseudo-header sum; whoever sends this frame on without a vnet
    /// header must complete the checksum first (KERNEL-NOTES, "Checksums on veth").
    public let checksumNotReady: Bool
    /// TP_STATUS_CSUM_VALID: the checksum was verified already (CHECKSUM_UNNECESSARY
    /// or COMPLETE on an incoming frame).
    public let checksumValid: Bool
    /// The virtio-net header in front of the frame when the ring has `PACKET_VNET_HDR`.
    public let vnet: VirtioNetHeader?
    /// `sll_pkttype`.
    public let packetType: PacketType
    /// `sll_ifindex`: the interface the frame was seen on.
    public let interfaceIndex: Int32
    /// TP_STATUS_VLAN_VALID: `vlanTCI` holds an offloaded 802.1Q tag that is not in `bytes`.
    public let vlanTCI: UInt16?

    @inlinable
    public init(
        bytes: UnsafeMutableRawBufferPointer, capacity: Int, length: Int, checksumNotReady: Bool,
        checksumValid: Bool, vnet: VirtioNetHeader?, packetType: PacketType, interfaceIndex: Int32,
        vlanTCI: UInt16? = nil
    ) {
        self.bytes = bytes
        self.capacity = capacity
        self.length = length
        self.checksumNotReady = checksumNotReady
        self.checksumValid = checksumValid
        self.vnet = vnet
        self.packetType = packetType
        self.interfaceIndex = interfaceIndex
        self.vlanTCI = vlanTCI
    }
}
