// Helpers shared by the FerryPacket tests.

import FerryPacket

/// Runs `body` over a mutable copy's bytes and returns the copy (views never escape).
func mutating(_ bytes: [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows -> [UInt8] {
    var copy = bytes
    try copy.withUnsafeMutableBytes { try body($0) }
    return copy
}

/// Views of an Ethernet/IPv4 frame, checked. Traps the test on a bad fixture.
struct FrameViews {
    let ethernet: EthernetView
    let ip: IPv4View

    init(_ buffer: UnsafeMutableRawBufferPointer) throws {
        ethernet = try EthernetView(checking: buffer)
        ip = try IPv4View(checking: ethernet.payload)
    }

    func tcp() throws -> TCPView { try TCPView(checking: ip.payload) }
    func udp() throws -> UDPView { try UDPView(checking: ip.payload) }
    func icmp() throws -> ICMPView { try ICMPView(checking: ip.payload) }
}

func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    var s = ""
    for b in bytes {
        s.append(digits[Int(b >> 4)])
        s.append(digits[Int(b & 0xF)])
    }
    return s
}

/// A small, fixed-seed xorshift64* generator: the property tests are reproducible
/// without depending on the standard library's unspecified random algorithms.
struct XorShift64Star: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        precondition(seed != 0, "xorshift needs a nonzero seed")
        state = seed
    }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }

    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in byte() } }
}

/// The `PacketError` that `body` throws over a copy of `bytes`, or nil if it succeeds.
func packetError(_ bytes: [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws -> Void) -> PacketError? {
    var copy = bytes
    do {
        try copy.withUnsafeMutableBytes { try body($0) }
        return nil
    } catch let error as PacketError {
        return error
    } catch {
        return nil
    }
}
