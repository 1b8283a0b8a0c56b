import FerryPacket

/// A Linux interface index, as netlink and AF_PACKET report it.
public struct InterfaceIndex: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    @inlinable public init(_ rawValue: Int32) { self.rawValue = rawValue }
    @inlinable public static func < (a: InterfaceIndex, b: InterfaceIndex) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "if\(rawValue)" }
}

/// What the pipeline decided for one frame (STYLE.md rule 6).
public enum Verdict: Equatable, Sendable {
    /// The frame was rewritten in place (addresses, ports, checksums, TTL and both MACs);
    /// transmit it, unchanged in length, on `egress`.
    case forward(egress: InterfaceIndex)
    /// The frame was replaced in place by an ICMP error of `length` bytes addressed back
    /// to the sender; transmit it on `egress`. `reason` says why (counted like a drop).
    case reject(egress: InterfaceIndex, length: Int, reason: DropReason)
    /// Not Ferry's packet: the kernel handles its own copy (local delivery, ARP, IPv6,
    /// frames for other hosts). The agent does nothing.
    case pass
    /// Dropped; the kernel's copy is dropped too (ip_forward=0 or a kernel-side rule).
    case drop(DropReason)
}

/// Per-frame facts the I/O layer knows and the packet does not say.
public struct FrameInfo: Sendable {
    public var ingress: InterfaceIndex
    /// The L4 checksum field holds only the pseudo-header sum (TP_STATUS_CSUMNOTREADY, or
    /// a virtio-net header with VIRTIO_NET_HDR_F_NEEDS_CSUM). See KERNEL-NOTES.md.
    public var l4ChecksumPartial: Bool
    /// The frame is a GSO super-frame the kernel will segment on transmit (vnet header);
    /// its checksum must stay partial.
    public var isGSO: Bool

    @inlinable public init(ingress: InterfaceIndex, l4ChecksumPartial: Bool = false, isGSO: Bool = false) {
        self.ingress = ingress
        self.l4ChecksumPartial = l4ChecksumPartial
        self.isGSO = isGSO
    }
}
