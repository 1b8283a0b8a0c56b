// Golden bytes for the virtio-net header (include/uapi/linux/virtio_net.h).
import FerryLinux
import Testing

@Suite("VirtioNetHeader")
struct VirtioNetHeaderTests {
    /// A TCPv4 GSO header as tpacket_rcv writes it for a 64 KB super-frame from a
    /// local sender on veth: NEEDS_CSUM, gso_type TCPV4, hdr_len 66 (14+20+32),
    /// gso_size 1448, csum_start 34, csum_offset 16. 16-bit fields little-endian.
    static let gsoBytes: [UInt8] = [0x01, 0x01, 0x42, 0x00, 0xA8, 0x05, 0x22, 0x00, 0x10, 0x00]

    @Test("deconstruct: a TCPv4 GSO header")
    func deconstruct() throws {
        let h = try #require(Self.gsoBytes.withUnsafeBytes { VirtioNetHeader(checking: $0) })
        #expect(h.flags == .needsChecksum)
        #expect(h.needsChecksum && !h.dataValid)
        #expect(h.gsoType == .tcpv4 && !h.gsoECN && h.isGSO)
        #expect(h.headerLength == 66)
        #expect(h.gsoSize == 1448)
        #expect(h.checksumStart == 34)
        #expect(h.checksumOffset == 16)
    }

    @Test("construct: the same header emits the same bytes; ECN and unknown GSO types survive")
    func construct() {
        let h = VirtioNetHeader(flags: .needsChecksum, gsoType: .tcpv4, headerLength: 66, gsoSize: 1448, checksumStart: 34, checksumOffset: 16)
        var out = [UInt8](repeating: 0xEE, count: VirtioNetHeader.size)
        out.withUnsafeMutableBytes { h.store(to: $0.baseAddress!) }
        #expect(out == Self.gsoBytes)

        let odd = VirtioNetHeader(flags: .dataValid, gsoType: .unknown(9), gsoECN: true)
        odd.store(to: &out)
        #expect(out[0] == 0x02 && out[1] == 0x89)
        #expect(out.withUnsafeBytes { VirtioNetHeader(checking: $0) } == odd)
    }

    @Test("checking init refuses short buffers")
    func short() {
        let bytes = [UInt8](repeating: 0, count: 9)
        #expect(bytes.withUnsafeBytes { VirtioNetHeader(checking: $0) } == nil)
    }
}
