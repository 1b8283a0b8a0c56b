// Parsed header values (smoltcp's `Repr`): what tests and packet builders use. A view
// reads and writes in place inside a ring slot; a `…Fields` value is owned, comparable
// and printable, and `emit` writes it back through a view. These allocate (options and
// payload are arrays), so they stay off the forwarding path.

/// An Ethernet II header.
public struct EthernetFields: Hashable, Sendable {
    public var destination: MACAddress
    public var source: MACAddress
    public var etherType: EtherType

    public init(destination: MACAddress, source: MACAddress, etherType: EtherType = .ipv4) {
        self.destination = destination
        self.source = source
        self.etherType = etherType
    }

    public init(_ view: EthernetView) {
        self.init(destination: view.destination, source: view.source, etherType: view.etherType)
    }

    public func emit(into view: EthernetView) {
        view.destination = destination
        view.source = source
        view.etherType = etherType
    }
}

/// An Ethernet/IPv4 ARP packet.
public struct ARPFields: Hashable, Sendable {
    public var operation: ARPOperation
    public var senderHardwareAddress: MACAddress
    public var senderProtocolAddress: IPv4Address
    public var targetHardwareAddress: MACAddress
    public var targetProtocolAddress: IPv4Address

    public init(
        operation: ARPOperation, senderHardwareAddress: MACAddress, senderProtocolAddress: IPv4Address,
        targetHardwareAddress: MACAddress, targetProtocolAddress: IPv4Address
    ) {
        self.operation = operation
        self.senderHardwareAddress = senderHardwareAddress
        self.senderProtocolAddress = senderProtocolAddress
        self.targetHardwareAddress = targetHardwareAddress
        self.targetProtocolAddress = targetProtocolAddress
    }

    public init(_ view: ARPView) {
        self.init(
            operation: view.operation, senderHardwareAddress: view.senderHardwareAddress,
            senderProtocolAddress: view.senderProtocolAddress, targetHardwareAddress: view.targetHardwareAddress,
            targetProtocolAddress: view.targetProtocolAddress)
    }

    /// Writes all 28 octets, including the fixed Ethernet/IPv4 type and length fields.
    public func emit(into view: ARPView) {
        view.hardwareType = ARPView.ethernetHardwareType
        view.protocolType = .ipv4
        view.hardwareAddressLength = 6
        view.protocolAddressLength = 4
        view.operation = operation
        view.senderHardwareAddress = senderHardwareAddress
        view.senderProtocolAddress = senderProtocolAddress
        view.targetHardwareAddress = targetHardwareAddress
        view.targetProtocolAddress = targetProtocolAddress
    }
}

/// An IPv4 header. Total length and checksum are derived when emitting.
public struct IPv4Fields: Hashable, Sendable {
    public var typeOfService: UInt8
    public var identification: UInt16
    public var dontFragment: Bool
    public var moreFragments: Bool
    /// In units of 8 octets.
    public var fragmentOffset: UInt16
    public var timeToLive: UInt8
    public var `protocol`: IPProtocol
    public var sourceAddress: IPv4Address
    public var destinationAddress: IPv4Address
    /// Raw option octets; emitted padded with zeros (End of Option List) to a multiple of 4.
    public var options: [UInt8]

    public init(
        sourceAddress: IPv4Address, destinationAddress: IPv4Address, protocol proto: IPProtocol,
        timeToLive: UInt8 = 64, identification: UInt16 = 0, dontFragment: Bool = true,
        moreFragments: Bool = false, fragmentOffset: UInt16 = 0, typeOfService: UInt8 = 0, options: [UInt8] = []
    ) {
        self.sourceAddress = sourceAddress
        self.destinationAddress = destinationAddress
        self.protocol = proto
        self.timeToLive = timeToLive
        self.identification = identification
        self.dontFragment = dontFragment
        self.moreFragments = moreFragments
        self.fragmentOffset = fragmentOffset
        self.typeOfService = typeOfService
        self.options = options
    }

    public init(_ view: IPv4View) {
        self.init(
            sourceAddress: view.sourceAddress, destinationAddress: view.destinationAddress, protocol: view.protocol,
            timeToLive: view.timeToLive, identification: view.identification, dontFragment: view.dontFragment,
            moreFragments: view.moreFragments, fragmentOffset: view.fragmentOffset,
            typeOfService: view.typeOfService, options: Array(view.options))
    }

    /// Header length in octets, options padded to 32 bits.
    public var headerLength: Int { IPv4View.minimumHeaderLength + (options.count + 3) / 4 * 4 }

    /// Writes the header for a payload of `payloadLength` octets and computes its checksum.
    /// - Precondition: options fit in 40 octets and the datagram in 65535.
    public func emit(into view: IPv4View, payloadLength: Int) {
        precondition(headerLength <= IPv4View.maximumHeaderLength, "IPv4 options longer than 40 octets")
        precondition(headerLength + payloadLength <= Int(UInt16.max), "IPv4 datagram longer than 65535 octets")
        view.bytes[0] = 0x40 | UInt8(headerLength / 4)
        view.typeOfService = typeOfService
        view.totalLength = UInt16(headerLength + payloadLength)
        view.identification = identification
        view.flagsAndFragmentOffset =
            (dontFragment ? 0x4000 : 0) | (moreFragments ? 0x2000 : 0) | (fragmentOffset & 0x1FFF)
        view.timeToLive = timeToLive
        view.protocol = self.protocol
        view.sourceAddress = sourceAddress
        view.destinationAddress = destinationAddress
        let opts = view.options
        for i in 0..<opts.count { opts[i] = i < options.count ? options[i] : 0 }
        view.updateHeaderChecksum()
    }
}

/// A TCP segment: header fields, options and data.
public struct TCPFields: Hashable, Sendable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var sequenceNumber: UInt32
    public var acknowledgmentNumber: UInt32
    public var flags: TCPFlags
    public var window: UInt16
    public var urgentPointer: UInt16
    /// Raw option octets; emitted padded with zeros to a multiple of 4.
    public var options: [UInt8]
    public var payload: [UInt8]

    public init(
        sourcePort: UInt16, destinationPort: UInt16, sequenceNumber: UInt32 = 0, acknowledgmentNumber: UInt32 = 0,
        flags: TCPFlags, window: UInt16 = 65535, urgentPointer: UInt16 = 0, options: [UInt8] = [], payload: [UInt8] = []
    ) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.sequenceNumber = sequenceNumber
        self.acknowledgmentNumber = acknowledgmentNumber
        self.flags = flags
        self.window = window
        self.urgentPointer = urgentPointer
        self.options = options
        self.payload = payload
    }

    public init(_ view: TCPView) {
        self.init(
            sourcePort: view.sourcePort, destinationPort: view.destinationPort, sequenceNumber: view.sequenceNumber,
            acknowledgmentNumber: view.acknowledgmentNumber, flags: view.flags, window: view.window,
            urgentPointer: view.urgentPointer, options: Array(view.options), payload: Array(view.payload))
    }

    public var headerLength: Int { TCPView.minimumHeaderLength + (options.count + 3) / 4 * 4 }
    public var length: Int { headerLength + payload.count }

    /// Writes header, options and data into `view` (exactly `length` octets) and the
    /// checksum in the requested form.
    public func emit(into view: TCPView, source: IPv4Address, destination: IPv4Address, checksum: TransportChecksum) {
        precondition(headerLength <= 60, "TCP options longer than 40 octets")
        view.sourcePort = sourcePort
        view.destinationPort = destinationPort
        view.sequenceNumber = sequenceNumber
        view.acknowledgmentNumber = acknowledgmentNumber
        view.bytes[12] = UInt8(headerLength / 4) << 4  // data offset; reserved bits zero
        view.flags = flags
        view.window = window
        view.checksum = 0
        view.urgentPointer = urgentPointer
        let opts = view.options
        for i in 0..<opts.count { opts[i] = i < options.count ? options[i] : 0 }
        view.payload.copyBytes(from: payload)
        switch checksum {
        case .full: view.updateChecksum(source: source, destination: destination, mode: .full)
        case .partial: view.updateChecksum(source: source, destination: destination, mode: .partial)
        case .zero: view.checksum = 0
        }
    }
}

/// A UDP datagram.
public struct UDPFields: Hashable, Sendable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var payload: [UInt8]

    public init(sourcePort: UInt16, destinationPort: UInt16, payload: [UInt8] = []) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.payload = payload
    }

    public init(_ view: UDPView) {
        self.init(sourcePort: view.sourcePort, destinationPort: view.destinationPort, payload: Array(view.payload))
    }

    public var length: Int { UDPView.headerLength + payload.count }

    /// Writes the datagram into `view` (exactly `length` octets). `.zero` sends no
    /// checksum, which RFC 768 allows over IPv4.
    public func emit(into view: UDPView, source: IPv4Address, destination: IPv4Address, checksum: TransportChecksum) {
        view.sourcePort = sourcePort
        view.destinationPort = destinationPort
        view.length = UInt16(length)
        view.checksum = 0
        view.payload.copyBytes(from: payload)
        switch checksum {
        case .full: view.updateChecksum(source: source, destination: destination, mode: .full)
        case .partial: view.updateChecksum(source: source, destination: destination, mode: .partial)
        case .zero: view.checksum = 0
        }
    }
}

/// An ICMP message: type, code, the type-specific second word and the data.
public struct ICMPFields: Hashable, Sendable {
    public var type: ICMPType
    public var code: UInt8
    public var restOfHeader: UInt32
    public var payload: [UInt8]

    public init(type: ICMPType, code: UInt8, restOfHeader: UInt32 = 0, payload: [UInt8] = []) {
        self.type = type
        self.code = code
        self.restOfHeader = restOfHeader
        self.payload = payload
    }

    public init(_ view: ICMPView) {
        self.init(type: view.type, code: view.code, restOfHeader: view.restOfHeader, payload: Array(view.payload))
    }

    public static func echoRequest(identifier: UInt16, sequenceNumber: UInt16, payload: [UInt8] = []) -> ICMPFields {
        ICMPFields(
            type: .echoRequest, code: 0, restOfHeader: UInt32(identifier) << 16 | UInt32(sequenceNumber), payload: payload)
    }

    public static func echoReply(identifier: UInt16, sequenceNumber: UInt16, payload: [UInt8] = []) -> ICMPFields {
        ICMPFields(
            type: .echoReply, code: 0, restOfHeader: UInt32(identifier) << 16 | UInt32(sequenceNumber), payload: payload)
    }

    public var length: Int { ICMPView.headerLength + payload.count }

    /// Writes the message and its checksum (`.zero` leaves the checksum 0, for tests of
    /// invalid packets; `.partial` is the same as `.full`, ICMP has no offload form).
    public func emit(into view: ICMPView, checksum: TransportChecksum) {
        view.type = type
        view.code = code
        view.checksum = 0
        view.restOfHeader = restOfHeader
        view.payload.copyBytes(from: payload)
        if checksum != .zero { view.updateChecksum() }
    }
}
