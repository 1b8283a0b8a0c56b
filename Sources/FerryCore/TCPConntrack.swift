import FerryPacket

// Connection states and the TCP state machine, after the kernel's
// net/netfilter/nf_conntrack_proto_tcp.c (`tcp_conntracks[2][6][TCP_CONNTRACK_MAX]`),
// simplified to flags: Ferry does no sequence-window tracking (`tcp_in_window`), so it
// behaves like the kernel with `nf_conntrack_tcp_be_liberal=1` on window checks.
//
// Simplifications, each stated where it is applied:
// - SYN_SENT2 (simultaneous open) is folded into `synSent`: both time out after 120 s,
//   and a simultaneous open through a Service VIP does not happen in practice.
// - A SYN in the original direction on a `timeWait` or `close` entry reopens the *same*
//   entry (same backend, like Cilium's CT reopen) instead of the kernel's
//   kill-and-lookup-again, which could pick another backend mid-conversation.
// - No retransmission or unacknowledged-data timers (they need sequence tracking); the
//   one kernel cap kept is the mid-stream pickup cap (`tcpUnreplied`).

/// TCP header flag bits (RFC 9293 section 3.1), as in the header's byte 13.
public struct TCPFlagBits: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let fin = TCPFlagBits(rawValue: 0x01)
    public static let syn = TCPFlagBits(rawValue: 0x02)
    public static let rst = TCPFlagBits(rawValue: 0x04)
    public static let psh = TCPFlagBits(rawValue: 0x08)
    public static let ack = TCPFlagBits(rawValue: 0x10)
    public static let urg = TCPFlagBits(rawValue: 0x20)
}

/// The state of a tracked connection. Raw values are stable (they are saved across
/// restarts); the TCP ones equal the kernel's `enum tcp_conntrack`
/// (include/uapi/linux/netfilter/nf_conntrack_tcp.h), which ctnetlink also exposes.
public enum ConnState: UInt8, Hashable, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case none = 0
    case synSent = 1
    case synRecv = 2
    case established = 3
    case finWait = 4
    case closeWait = 5
    case lastAck = 6
    case timeWait = 7
    case close = 8
    /// UDP, packets seen in the original direction only.
    case udpUnreplied = 16
    /// UDP, packets seen both ways ("assured" in the kernel's terms).
    case udpReplied = 17
    /// ICMP echo.
    case icmp = 32
    /// Any other IP protocol (the kernel's generic tracker).
    case generic = 48

    public var description: String {
        switch self {
        case .none: "NONE"
        case .synSent: "SYN_SENT"
        case .synRecv: "SYN_RECV"
        case .established: "ESTABLISHED"
        case .finWait: "FIN_WAIT"
        case .closeWait: "CLOSE_WAIT"
        case .lastAck: "LAST_ACK"
        case .timeWait: "TIME_WAIT"
        case .close: "CLOSE"
        case .udpUnreplied: "UDP_UNREPLIED"
        case .udpReplied: "UDP_REPLIED"
        case .icmp: "ICMP"
        case .generic: "GENERIC"
        }
    }

    @inlinable public var isTCP: Bool { rawValue <= ConnState.close.rawValue }

    /// The state a new entry starts in for the packet that creates it, or nil when that
    /// packet must not create an entry (the caller drops it).
    ///
    /// TCP follows the kernel's `tcp_new`: the `none` column of the original-direction
    /// table. A SYN starts `synSent`. Loose pickup (`nf_conntrack_tcp_loose=1`, the
    /// kernel default): a bare ACK (with or without PSH/data) starts `established`, so
    /// connections that were open before the agent started (or before a restore)
    /// keep working; such an entry is not assured and keeps the `tcpUnreplied` timeout
    /// until a reply is seen. SYN-ACK, FIN, RST and flagless segments create nothing.
    @inlinable
    public static func initial(for protocol: IPProtocol, tcpFlags: TCPFlagBits = []) -> ConnState? {
        switch `protocol` {
        case .tcp:
            if case .next(let s) = TCPConntrack.transition(from: .none, direction: .original, flags: tcpFlags) {
                return s
            }
            return nil
        case .udp: return .udpUnreplied
        case .icmp: return .icmp
        case .unknown: return .generic
        }
    }
}

/// How long an entry lives after the last packet that refreshed it. Every value is
/// configurable; the defaults are the kernel's (`tcp_timeouts[]` in
/// nf_conntrack_proto_tcp.c, `udp_timeouts[]`, `nf_ct_icmp_timeout`,
/// `nf_ct_generic_timeout`) except `tcpEstablished` and `tcpCloseWait`, which are
/// kube-proxy's `--conntrack-tcp-timeout-established` (24 h) and
/// `--conntrack-tcp-timeout-close-wait` (1 h).
public struct ConntrackTimeouts: Hashable, Sendable {
    public var tcpSynSent = Seconds(120)
    public var tcpSynRecv = Seconds(60)
    public var tcpEstablished = Seconds(86_400)
    public var tcpFinWait = Seconds(120)
    public var tcpCloseWait = Seconds(3_600)
    public var tcpLastAck = Seconds(30)
    public var tcpTimeWait = Seconds(120)
    public var tcpClose = Seconds(10)
    /// Cap for `established` while no reply has been seen (mid-stream pickup): the
    /// kernel's `TCP_CONNTRACK_UNACK` (5 min), applied in `nf_conntrack_tcp_packet` when
    /// `IPS_SEEN_REPLY` is clear, so a one-sided pickup does not pin an entry for a day.
    public var tcpUnreplied = Seconds(300)
    /// `nf_conntrack_udp_timeout`.
    public var udpUnreplied = Seconds(30)
    /// `nf_conntrack_udp_timeout_stream`.
    public var udpReplied = Seconds(120)
    /// `nf_conntrack_icmp_timeout`.
    public var icmp = Seconds(30)
    /// `nf_conntrack_generic_timeout`.
    public var generic = Seconds(600)

    public init() {}

    public static let kubernetesDefaults = ConntrackTimeouts()

    /// The lifetime an entry gets when a packet moves it to `state`.
    @inlinable
    public func timeout(for state: ConnState, seenReply: Bool) -> Seconds {
        switch state {
        case .none: return tcpClose  // never stored; the shortest TCP timeout if it were
        case .synSent: return tcpSynSent
        case .synRecv: return tcpSynRecv
        case .established:
            if !seenReply && tcpUnreplied < tcpEstablished { return tcpUnreplied }
            return tcpEstablished
        case .finWait: return tcpFinWait
        case .closeWait: return tcpCloseWait
        case .lastAck: return tcpLastAck
        case .timeWait: return tcpTimeWait
        case .close: return tcpClose
        case .udpUnreplied: return udpUnreplied
        case .udpReplied: return udpReplied
        case .icmp: return icmp
        case .generic: return generic
        }
    }
}

/// What a TCP segment does to a connection's state.
public enum TCPTransition: Hashable, Sendable {
    /// A valid segment: the connection moves to (or stays in) this state and its timer restarts.
    case next(ConnState)
    /// The kernel's `sIG`: possibly valid (a retransmitted SYN-ACK, a SYN the receiver will
    /// answer with RST); the state and timer are left alone.
    case ignore
    /// The kernel's `sIV`: not valid in this state (ACK before SYN-ACK, FIN in SYN_SENT);
    /// state and timer are left alone.
    case invalid
}

/// The flag-driven TCP state machine.
public enum TCPConntrack {
    /// The kernel's `enum tcp_bit_set`: which table row a segment uses.
    public enum FlagClass: Int, Hashable, Sendable {
        case syn = 0, synAck, fin, ack, rst, none
    }

    /// The kernel's `get_conntrack_index`: RST wins, then SYN (with or without ACK),
    /// then FIN, then ACK.
    @inlinable
    public static func flagClass(_ flags: TCPFlagBits) -> FlagClass {
        if flags.contains(.rst) { return .rst }
        if flags.contains(.syn) { return flags.contains(.ack) ? .synAck : .syn }
        if flags.contains(.fin) { return .fin }
        if flags.contains(.ack) { return .ack }
        return .none
    }

    // Table cells: a state's raw value (0...8), or one of these two markers. A row holds
    // one 4-bit cell per current state, packed into a UInt64, so the whole table lives in
    // constants: no global array to initialise and nothing to allocate per packet.
    @usableFromInline static let sIG: UInt64 = 0xE
    @usableFromInline static let sIV: UInt64 = 0xF
    @usableFromInline static let sSS: UInt64 = 1, sSR: UInt64 = 2, sES: UInt64 = 3, sFW: UInt64 = 4
    @usableFromInline static let sCW: UInt64 = 5, sLA: UInt64 = 6, sTW: UInt64 = 7, sCL: UInt64 = 8

    /// Packs a row; the parameters are the columns for current states
    /// none, synSent, synRecv, established, finWait, closeWait, lastAck, timeWait, close.
    @inlinable @inline(__always)
    static func row(_ no: UInt64, _ ss: UInt64, _ sr: UInt64, _ es: UInt64, _ fw: UInt64,
                    _ cw: UInt64, _ la: UInt64, _ tw: UInt64, _ cl: UInt64) -> UInt64 {
        no | ss << 4 | sr << 8 | es << 12 | fw << 16 | cw << 20 | la << 24 | tw << 28 | cl << 32
    }

    /// The state machine: what a segment with `flags`, travelling in `direction`, does to a
    /// connection in state `from`. Rows are the kernel's `tcp_conntracks` with SYN_SENT2
    /// folded into SYN_SENT (see the file comment); `none` (no SYN/FIN/ACK/RST) is
    /// always invalid. Non-TCP states are invalid inputs.
    @inlinable
    public static func transition(from: ConnState, direction: ConntrackDirection, flags: TCPFlagBits) -> TCPTransition {
        guard from.isTCP else { return .invalid }
        let packed: UInt64
        switch (direction, flagClass(flags)) {
        //                                 sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL
        case (.original, .syn):    packed = row(sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS)
        case (.original, .synAck): packed = row(sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV)
        case (.original, .fin):    packed = row(sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL)
        case (.original, .ack):    packed = row(sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL)
        case (.original, .rst):    packed = row(sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL)
        // Reply SYN in synSent is the kernel's sSS → sS2 (simultaneous open), folded.
        case (.reply, .syn):       packed = row(sIV, sSS, sIV, sIV, sIV, sIV, sIV, sSS, sIV)
        case (.reply, .synAck):    packed = row(sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG)
        case (.reply, .fin):       packed = row(sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL)
        case (.reply, .ack):       packed = row(sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL)
        case (.reply, .rst):       packed = row(sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL)
        case (_, .none):           return .invalid
        }
        let cell = (packed >> (UInt64(from.rawValue) &* 4)) & 0xF
        switch cell {
        case sIG: return .ignore
        case sIV: return .invalid
        default: return .next(ConnState(rawValue: UInt8(truncatingIfNeeded: cell))!)
        }
    }
}
