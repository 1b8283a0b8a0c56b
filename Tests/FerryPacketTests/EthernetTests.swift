// Ethernet and ARP: golden deconstruct / construct (smoltcp style).

import FerryPacket
import Testing

@Suite("Ethernet and ARP")
struct EthernetARPTests {
    /// Broadcast ARP request "who has 10.0.1.1? tell 10.0.1.5" from 02:00:00:00:00:01.
    static let arpRequestFrame: [UInt8] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x01,
        0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x01, 0x05,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x01, 0x01,
    ]
    static let requester = MACAddress(0x02, 0, 0, 0, 0, 0x01)

    @Test("Deconstruct an ARP request frame")
    func deconstruct() throws {
        var frame = Self.arpRequestFrame
        try frame.withUnsafeMutableBytes { buffer in
            let eth = try EthernetView(checking: buffer)
            #expect(eth.destination == .broadcast)
            #expect(eth.source == Self.requester)
            #expect(eth.etherType == .arp)
            #expect(eth.payload.count == 28)
            let arp = try ARPView(checking: eth.payload)
            #expect(arp.isEthernetIPv4)
            #expect(arp.operation == .request)
            #expect(arp.senderHardwareAddress == Self.requester)
            #expect(arp.senderProtocolAddress == IPv4Address(10, 0, 1, 5))
            #expect(arp.targetHardwareAddress == .zero)
            #expect(arp.targetProtocolAddress == IPv4Address(10, 0, 1, 1))
        }
    }

    @Test("Construct the same ARP request from fields (padded to 60 octets)")
    func construct() {
        let built = PacketBuilder.frame(
            EthernetFields(destination: .broadcast, source: Self.requester),
            arp: ARPFields(
                operation: .request, senderHardwareAddress: Self.requester, senderProtocolAddress: IPv4Address(10, 0, 1, 5),
                targetHardwareAddress: .zero, targetProtocolAddress: IPv4Address(10, 0, 1, 1)))
        #expect(built.count == PacketBuilder.minimumFrameLength)
        #expect(hex(Array(built[..<Self.arpRequestFrame.count])) == hex(Self.arpRequestFrame))
        #expect(built[Self.arpRequestFrame.count...].allSatisfy { $0 == 0 })
    }

    @Test("Fields round-trip through the views")
    func roundTrip() throws {
        var frame = Self.arpRequestFrame
        try frame.withUnsafeMutableBytes { buffer in
            let eth = try EthernetView(checking: buffer)
            let arp = try ARPView(checking: eth.payload)
            var fields = ARPFields(arp)
            fields.operation = .reply
            swap(&fields.senderProtocolAddress, &fields.targetProtocolAddress)
            fields.emit(into: arp)
            #expect(ARPFields(arp) == fields)
            let ethFields = EthernetFields(destination: Self.requester, source: MACAddress(0x02, 0, 0, 0, 0, 0x02), etherType: .arp)
            ethFields.emit(into: eth)
            #expect(EthernetFields(eth) == ethFields)
        }
    }

    @Test("Short frames and non-Ethernet/IPv4 ARP are rejected")
    func rejects() {
        #expect(packetError(Array(Self.arpRequestFrame[..<13])) { _ = try EthernetView(checking: $0) } == .truncated)
        #expect(packetError(Array(Self.arpRequestFrame[14..<41])) { _ = try ARPView(checking: $0) } == .truncated)
        var badLength = Array(Self.arpRequestFrame[14...])
        badLength[4] = 8  // hardware address length 8
        #expect(packetError(badLength) { _ = try ARPView(checking: $0) } == .unsupportedARPFormat)
        #expect(packetError(Self.arpRequestFrame) { _ = try EthernetView(checking: $0) } == nil)
    }
}
