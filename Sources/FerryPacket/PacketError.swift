// Why a packet could not be parsed or written. Per-packet failures are values the
// pipeline turns into drop verdicts (STYLE.md rule 8), so every case has a stable raw
// value and a one-line explanation an operator can act on. Raw values are never
// reused: a retired case keeps its number reserved.

/// A malformed or unsupported packet, found by a view's checking initializer or by a
/// writer. Thrown with typed throws so that failing costs no allocation.
public enum PacketError: UInt8, Error, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// The buffer is shorter than the fixed header it must hold.
    case truncated = 1
    /// The IPv4 version nibble is not 4.
    case badVersion = 2
    /// IPv4 IHL is below 5 or the header it announces runs past the buffer.
    case badHeaderLength = 3
    /// IPv4 total length is below the header length or beyond the buffer.
    case badTotalLength = 4
    /// The IPv4 packet is a fragment and the caller asked to reject fragments.
    case fragment = 5
    /// TCP data offset is below 5 or the header it announces runs past the segment.
    case badDataOffset = 6
    /// The UDP length field is below 8 or beyond the datagram.
    case badUDPLength = 7
    /// ARP for something other than Ethernet/IPv4 (hardware length 6, protocol length 4).
    case unsupportedARPFormat = 8
    /// The ICMP message is not an error message, so it quotes no packet.
    case notICMPError = 9
    /// The operation does not support this transport protocol (only TCP and UDP carry ports).
    case unsupportedProtocol = 10
    /// The output buffer is too small for what is to be written.
    case bufferTooSmall = 11
    /// RFC 1812 §4.3.2.7 forbids an ICMP error about this packet.
    case icmpErrorNotPermitted = 12

    /// One line a person can act on.
    public var explanation: String {
        switch self {
        case .truncated: "packet shorter than its fixed header"
        case .badVersion: "IP version field is not 4"
        case .badHeaderLength: "IPv4 IHL below 5 or header longer than the packet"
        case .badTotalLength: "IPv4 total length below the header length or beyond the frame"
        case .fragment: "IPv4 fragment where only whole datagrams are accepted"
        case .badDataOffset: "TCP data offset below 5 or header longer than the segment"
        case .badUDPLength: "UDP length below 8 or beyond the IP payload"
        case .unsupportedARPFormat: "ARP not for Ethernet/IPv4 (hlen 6, plen 4)"
        case .notICMPError: "ICMP message is not an error and quotes no packet"
        case .unsupportedProtocol: "transport protocol not supported here (TCP and UDP only)"
        case .bufferTooSmall: "output buffer too small"
        case .icmpErrorNotPermitted: "RFC 1812 4.3.2.7 forbids an ICMP error about this packet"
        }
    }

    public var description: String { explanation }
}
