// Ethernet II framing (IEEE 802.3 clause 3.2, DIX Ethernet II type field).
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                  Destination MAC (6 octets)                   |
//  +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                               |                               |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+     Source MAC (6 octets)     +
//  |                                                               |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |           EtherType           |   Payload ...
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The frame as a packet socket delivers it: no preamble and no FCS. An 802.1Q tag
// shows up as EtherType 0x8100 (`.vlan`); this view does not look inside it.

/// An Ethernet II frame header read and written in place.
///
/// Validation contract: `init(unchecked:)` only wraps the buffer; the caller promises at
/// least `EthernetView.headerLength` bytes. Once `init(checking:)` has returned, no
/// accessor or setter of the view traps. The view never owns or outlives its buffer
/// (a ring slot): do not store it.
public struct EthernetView {
    @usableFromInline enum Offset {
        @usableFromInline static let destination = 0
        @usableFromInline static let source = 6
        @usableFromInline static let etherType = 12
    }

    /// Destination, source and type: 14 octets.
    public static let headerLength = 14

    /// The whole frame.
    public let bytes: UnsafeMutableRawBufferPointer

    /// Wraps `bytes` without looking at it. The caller guarantees `bytes.count >= 14`.
    @inlinable public init(unchecked bytes: UnsafeMutableRawBufferPointer) {
        self.bytes = bytes
    }

    /// Wraps `bytes` after checking it holds a whole Ethernet header.
    @inlinable public init(checking bytes: UnsafeMutableRawBufferPointer) throws(PacketError) {
        guard bytes.count >= EthernetView.headerLength else { throw .truncated }
        self.bytes = bytes
    }

    @inlinable public var destination: MACAddress {
        get { bytes.macAddress(at: Offset.destination) }
        nonmutating set { bytes.setMACAddress(newValue, at: Offset.destination) }
    }

    @inlinable public var source: MACAddress {
        get { bytes.macAddress(at: Offset.source) }
        nonmutating set { bytes.setMACAddress(newValue, at: Offset.source) }
    }

    @inlinable public var etherType: EtherType {
        get { EtherType(rawValue: bytes.networkUInt16(at: Offset.etherType)) }
        nonmutating set { bytes.setNetworkUInt16(newValue.rawValue, at: Offset.etherType) }
    }

    /// Everything after the header, including any padding to the 60-octet minimum
    /// (IPv4View.payload cuts that off using the IP total length).
    @inlinable public var payload: UnsafeMutableRawBufferPointer {
        bytes.clampedSlice(EthernetView.headerLength, bytes.count)
    }
}
