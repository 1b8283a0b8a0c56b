// ARP for IPv4 over Ethernet (RFC 826).
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |         Hardware Type         |         Protocol Type         |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  | HW Addr Length| Proto Addr Len|           Operation           |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |        Sender Hardware Address (6)  |  Sender Protocol Address (4)
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |        Target Hardware Address (6)  |  Target Protocol Address (4)
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

/// ARP operation codes (RFC 826; IANA "Operation Codes").
public struct ARPOperation: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let request = ARPOperation(rawValue: 1)
    public static let reply = ARPOperation(rawValue: 2)
}

/// An Ethernet/IPv4 ARP packet read and written in place.
///
/// Validation contract: `init(unchecked:)` only wraps; the caller guarantees
/// `ARPView.length` bytes. Once `init(checking:)` has returned, no accessor or setter
/// traps. The checking init accepts only hardware length 6 and protocol length 4,
/// because the address accessors assume those sizes. Never store the view.
public struct ARPView {
    @usableFromInline enum Offset {
        @usableFromInline static let hardwareType = 0
        @usableFromInline static let protocolType = 2
        @usableFromInline static let hardwareAddressLength = 4
        @usableFromInline static let protocolAddressLength = 5
        @usableFromInline static let operation = 6
        @usableFromInline static let senderHardwareAddress = 8
        @usableFromInline static let senderProtocolAddress = 14
        @usableFromInline static let targetHardwareAddress = 18
        @usableFromInline static let targetProtocolAddress = 24
    }

    /// Length of an Ethernet/IPv4 ARP packet.
    public static let length = 28
    /// Hardware type 1 is Ethernet (IANA "Hardware Types").
    public static let ethernetHardwareType: UInt16 = 1

    public let bytes: UnsafeMutableRawBufferPointer

    @inlinable public init(unchecked bytes: UnsafeMutableRawBufferPointer) {
        self.bytes = bytes
    }

    @inlinable public init(checking bytes: UnsafeMutableRawBufferPointer) throws(PacketError) {
        guard bytes.count >= ARPView.length else { throw .truncated }
        guard bytes[Offset.hardwareAddressLength] == 6, bytes[Offset.protocolAddressLength] == 4 else {
            throw .unsupportedARPFormat
        }
        self.bytes = bytes
    }

    @inlinable public var hardwareType: UInt16 {
        get { bytes.networkUInt16(at: Offset.hardwareType) }
        nonmutating set { bytes.setNetworkUInt16(newValue, at: Offset.hardwareType) }
    }

    @inlinable public var protocolType: EtherType {
        get { EtherType(rawValue: bytes.networkUInt16(at: Offset.protocolType)) }
        nonmutating set { bytes.setNetworkUInt16(newValue.rawValue, at: Offset.protocolType) }
    }

    @inlinable public var hardwareAddressLength: UInt8 {
        get { bytes[Offset.hardwareAddressLength] }
        nonmutating set { bytes[Offset.hardwareAddressLength] = newValue }
    }

    @inlinable public var protocolAddressLength: UInt8 {
        get { bytes[Offset.protocolAddressLength] }
        nonmutating set { bytes[Offset.protocolAddressLength] = newValue }
    }

    @inlinable public var operation: ARPOperation {
        get { ARPOperation(rawValue: bytes.networkUInt16(at: Offset.operation)) }
        nonmutating set { bytes.setNetworkUInt16(newValue.rawValue, at: Offset.operation) }
    }

    @inlinable public var senderHardwareAddress: MACAddress {
        get { bytes.macAddress(at: Offset.senderHardwareAddress) }
        nonmutating set { bytes.setMACAddress(newValue, at: Offset.senderHardwareAddress) }
    }

    @inlinable public var senderProtocolAddress: IPv4Address {
        get { IPv4Address(bytes.networkUInt32(at: Offset.senderProtocolAddress)) }
        nonmutating set { bytes.setNetworkUInt32(newValue.value, at: Offset.senderProtocolAddress) }
    }

    @inlinable public var targetHardwareAddress: MACAddress {
        get { bytes.macAddress(at: Offset.targetHardwareAddress) }
        nonmutating set { bytes.setMACAddress(newValue, at: Offset.targetHardwareAddress) }
    }

    @inlinable public var targetProtocolAddress: IPv4Address {
        get { IPv4Address(bytes.networkUInt32(at: Offset.targetProtocolAddress)) }
        nonmutating set { bytes.setNetworkUInt32(newValue.value, at: Offset.targetProtocolAddress) }
    }

    /// True for Ethernet hardware and IPv4 protocol, the only kind Ferry answers.
    @inlinable public var isEthernetIPv4: Bool {
        hardwareType == ARPView.ethernetHardwareType && protocolType == .ipv4
    }
}
