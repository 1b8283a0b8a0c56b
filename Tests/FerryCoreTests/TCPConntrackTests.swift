import FerryPacket
import Testing

@testable import FerryCore

// The TCP/UDP/ICMP state machines on a stepped fake clock (Cilium's conntrack tests:
// advance time, assert). Every timeout is checked at its exact instant: the entry is
// there one nanosecond before and gone at it.

private let client = IPv4Address(10, 244, 1, 5)
private let vip = IPv4Address(10, 96, 0, 10)
private let backend = IPv4Address(10, 244, 2, 7)

private func dnatTCP() -> (original: FlowKey, reply: FlowKey) {
    (FlowKey(protocol: .tcp, source: client, sourcePort: 40_000, destination: vip, destinationPort: 80),
     FlowKey(protocol: .tcp, source: backend, sourcePort: 8080, destination: client, destinationPort: 40_000))
}

private func ns(_ seconds: UInt64) -> UInt64 { seconds * 1_000_000_000 }

private typealias Step = (ConntrackDirection, TCPFlagBits)
private let syn: Step = (.original, [.syn])
private let synAck: Step = (.reply, [.syn, .ack])
private let ack: Step = (.original, [.ack])
private let finAck: Step = (.original, [.fin, .ack])
private let replyAck: Step = (.reply, [.ack])
private let replyFinAck: Step = (.reply, [.fin, .ack])

/// Runs `steps` one second apart starting at t=100 s, the first creating the entry.
/// Returns the table, the entry slot and the time of the last step.
private func run(_ steps: [Step], timeouts: ConntrackTimeouts = .kubernetesDefaults) -> (ConntrackTable, Int32, Timestamp) {
    let table = ConntrackTable(capacity: 64, timeouts: timeouts)
    let (o, r) = dnatTCP()
    var now = Timestamp.seconds(100)
    let first = steps[0]
    precondition(first.0 == .original)
    let state = ConnState.initial(for: .tcp, tcpFlags: first.1)!
    guard case .inserted(let slot) = table.insert(original: o, reply: r, now: now, frontend: 3, initialState: state, bytes: 60) else {
        fatalError("insert failed")
    }
    for step in steps.dropFirst() {
        now = now + Seconds(1)
        let key = step.0 == .original ? o : r
        let hit = table.lookup(key, now: now)
        precondition(hit == ConntrackHit(entry: slot, direction: step.0))
        table.observe(entry: slot, direction: step.0, tcpFlags: step.1, bytes: 52, now: now)
    }
    return (table, slot, now)
}

struct TCPConntrackTests {
    struct Lifetime: CustomStringConvertible, Sendable {
        var state: ConnState
        var steps: [(ConntrackDirection, TCPFlagBits)]
        var seconds: UInt64
        var assured: Bool
        var description: String { "\(state) lives \(seconds) s" }
    }

    static let lifetimes: [Lifetime] = [
        Lifetime(state: .synSent, steps: [syn], seconds: 120, assured: false),
        Lifetime(state: .synRecv, steps: [syn, synAck], seconds: 60, assured: false),
        Lifetime(state: .established, steps: [syn, synAck, ack], seconds: 86_400, assured: true),
        Lifetime(state: .finWait, steps: [syn, synAck, ack, finAck], seconds: 120, assured: true),
        Lifetime(state: .closeWait, steps: [syn, synAck, ack, finAck, replyAck], seconds: 3_600, assured: true),
        Lifetime(state: .lastAck, steps: [syn, synAck, ack, finAck, replyAck, replyFinAck], seconds: 30, assured: true),
        Lifetime(state: .timeWait, steps: [syn, synAck, ack, finAck, replyAck, replyFinAck, ack], seconds: 120, assured: true),
        Lifetime(state: .close, steps: [syn, synAck, ack, (.original, [.rst])], seconds: 10, assured: true),
    ]

    @Test("each TCP state expires exactly at its timeout, not one nanosecond before", arguments: lifetimes)
    func stateLifetime(_ c: Lifetime) {
        let (table, slot, last) = run(c.steps)
        let e = table[entry: slot]
        #expect(e.state == c.state)
        #expect(e.assured == c.assured)
        #expect(e.expires.nanoseconds == last.nanoseconds + ns(c.seconds))

        let original = dnatTCP().original
        #expect(table.lookup(original, now: Timestamp(nanoseconds: e.expires.nanoseconds - 1)) == ConntrackHit(entry: slot, direction: .original))
        #expect(table.lookup(original, now: e.expires) == nil)
        #expect(table.count == 0)
        #expect(table.counters.expired == 1)
    }

    @Test("configured timeouts replace the defaults")
    func configuredTimeouts() {
        var t = ConntrackTimeouts()
        t.tcpEstablished = Seconds(7)
        t.tcpSynSent = Seconds(3)
        let (table, slot, last) = run([syn, synAck, ack], timeouts: t)
        #expect(table[entry: slot].expires == last + Seconds(7))
        let (table2, slot2, last2) = run([syn], timeouts: t)
        #expect(table2[entry: slot2].expires == last2 + Seconds(3))
    }

    @Test("three-way handshake: SYN_SENT, SYN_RECV, then ESTABLISHED and assured on the client's ACK")
    func handshake() {
        let (table, slot, _) = run([syn, synAck])
        var e = table[entry: slot]
        #expect(e.state == .synRecv && e.seenReply && !e.assured)
        let now = Timestamp.seconds(200)
        #expect(table.observe(entry: slot, direction: .original, tcpFlags: [.ack], bytes: 52, now: now) == .established)
        e = table[entry: slot]
        #expect(e.assured)
        #expect(e.originalPackets == 2 && e.replyPackets == 1)
        #expect(e.originalBytes == 60 + 52 && e.replyBytes == 52)
        #expect(e.frontend == 3)
    }

    @Test("kernel transition table rows (nf_conntrack_proto_tcp.c), SYN_SENT2 folded into SYN_SENT")
    func goldenTransitions() {
        typealias Row = (ConnState, ConntrackDirection, TCPFlagBits, TCPTransition)
        let rows: [Row] = [
            (.none, .original, [.syn], .next(.synSent)),
            (.none, .original, [.ack], .next(.established)),             // loose pickup
            (.none, .original, [.ack, .psh], .next(.established)),
            (.none, .original, [.fin, .ack], .invalid),                  // FIN wins over ACK
            (.none, .original, [.syn, .ack], .invalid),
            (.none, .original, [.rst], .invalid),
            (.none, .reply, [.syn], .invalid),
            (.synSent, .original, [.syn], .next(.synSent)),              // retransmitted SYN
            (.synSent, .original, [.ack], .invalid),                     // ACK before SYN-ACK
            (.synSent, .original, [.fin], .invalid),
            (.synSent, .reply, [.syn, .ack], .next(.synRecv)),
            (.synSent, .reply, [.syn], .next(.synSent)),                 // simultaneous open (kernel sS2)
            (.synSent, .reply, [.ack], .ignore),                         // half-open
            (.synSent, .reply, [.rst, .ack], .next(.close)),
            (.synRecv, .original, [.syn], .ignore),
            (.synRecv, .original, [.ack], .next(.established)),
            (.synRecv, .reply, [.syn, .ack], .ignore),                   // retransmitted SYN-ACK
            (.synRecv, .reply, [.ack], .next(.synRecv)),
            (.established, .original, [.syn], .ignore),
            (.established, .original, [.syn, .ack], .invalid),
            (.established, .reply, [.syn], .invalid),
            (.established, .original, [.fin, .ack], .next(.finWait)),
            (.established, .reply, [.fin, .ack], .next(.finWait)),
            (.finWait, .reply, [.ack], .next(.closeWait)),
            (.finWait, .reply, [.fin, .ack], .next(.lastAck)),
            (.closeWait, .reply, [.fin, .ack], .next(.lastAck)),
            (.lastAck, .original, [.ack], .next(.timeWait)),
            (.lastAck, .original, [.fin, .ack], .next(.lastAck)),        // retransmitted FIN
            (.timeWait, .original, [.syn], .next(.synSent)),             // reopen (RFC 1122)
            (.timeWait, .reply, [.syn], .next(.synSent)),
            (.close, .original, [.syn], .next(.synSent)),
            (.close, .reply, [.syn], .invalid),
            (.close, .original, [.ack], .next(.close)),
            (.established, .original, [.rst], .next(.close)),
            (.established, .original, [.rst, .syn], .next(.close)),      // RST wins
            (.established, .original, [.psh], .invalid),                 // no SYN/FIN/ACK/RST
            (.udpReplied, .original, [.ack], .invalid),                  // not a TCP state
        ]
        for (from, direction, flags, expected) in rows {
            #expect(TCPConntrack.transition(from: from, direction: direction, flags: flags) == expected,
                    "\(from) \(direction) flags=\(flags.rawValue)")
        }
    }

    @Test("first packet: SYN and bare ACK create entries; SYN-ACK, FIN, RST and flagless segments do not")
    func initialStates() {
        #expect(ConnState.initial(for: .tcp, tcpFlags: [.syn]) == .synSent)
        #expect(ConnState.initial(for: .tcp, tcpFlags: [.ack]) == .established)
        #expect(ConnState.initial(for: .tcp, tcpFlags: [.syn, .ack]) == nil)
        #expect(ConnState.initial(for: .tcp, tcpFlags: [.fin, .ack]) == nil)
        #expect(ConnState.initial(for: .tcp, tcpFlags: [.rst]) == nil)
        #expect(ConnState.initial(for: .tcp, tcpFlags: []) == nil)
        #expect(ConnState.initial(for: .udp) == .udpUnreplied)
        #expect(ConnState.initial(for: .icmp) == .icmp)
        #expect(ConnState.initial(for: .unknown(47)) == .generic)
    }

    @Test("loose pickup: a mid-stream ACK is ESTABLISHED, unassured, 300 s until the server answers, then 24 h and assured")
    func loosePickup() {
        let (table, slot, last) = run([ack])
        var e = table[entry: slot]
        #expect(e.state == .established && !e.assured && !e.seenReply)
        #expect(e.expires == last + Seconds(300))
        let later = last + Seconds(5)
        #expect(table.observe(entry: slot, direction: .reply, tcpFlags: [.ack], bytes: 1500, now: later) == .established)
        e = table[entry: slot]
        #expect(e.seenReply && e.assured)
        #expect(e.expires == later + Seconds(86_400))
    }

    @Test("an invalid segment changes neither state nor timer and is counted")
    func invalidSegment() {
        let (table, slot, last) = run([syn])
        let before = table[entry: slot]
        // ACK from the client before any SYN-ACK: the kernel's sSS → sIV.
        #expect(table.observe(entry: slot, direction: .original, tcpFlags: [.ack], bytes: 52, now: last + Seconds(50)) == .synSent)
        let after = table[entry: slot]
        #expect(after.state == .synSent)
        #expect(after.expires == before.expires)
        #expect(after.originalPackets == before.originalPackets + 1)  // still forwarded and counted
        #expect(table.counters.tcpInvalid == 1)
    }

    @Test("an ignored segment (late SYN-ACK on ESTABLISHED) leaves state and timer, counted as ignored")
    func ignoredSegment() {
        let (table, slot, last) = run([syn, synAck, ack])
        let before = table[entry: slot]
        #expect(table.observe(entry: slot, direction: .reply, tcpFlags: [.syn, .ack], bytes: 60, now: last + Seconds(9)) == .established)
        #expect(table[entry: slot].expires == before.expires)
        #expect(table.counters.tcpIgnored == 1)
    }

    @Test("RST as the only answer to a SYN ends the entry at once (kernel deletes such entries)")
    func rstBeforeReply() {
        let (table, slot, last) = run([syn])
        let now = last + Seconds(1)
        #expect(table.observe(entry: slot, direction: .reply, tcpFlags: [.rst, .ack], bytes: 40, now: now) == .close)
        #expect(table[entry: slot].expires == now)  // still readable for this packet's rewrite
        #expect(table.lookup(dnatTCP().reply, now: now) == nil)
        #expect(table.count == 0)
    }

    @Test("SYN on TIME_WAIT reopens the same entry as a new, unassured connection")
    func reopenFromTimeWait() {
        let (table, slot, last) = run([syn, synAck, ack, finAck, replyAck, replyFinAck, ack])
        let now = last + Seconds(2)
        #expect(table.observe(entry: slot, direction: .original, tcpFlags: [.syn], bytes: 60, now: now) == .synSent)
        let e = table[entry: slot]
        #expect(!e.assured && !e.seenReply)
        #expect(e.expires == now + Seconds(120))
        #expect(table.observe(entry: slot, direction: .reply, tcpFlags: [.syn, .ack], bytes: 60, now: now) == .synRecv)
    }

    @Test("UDP: 30 s unreplied, then replied and assured with 120 s, each exact to the nanosecond")
    func udpLifetimes() {
        let table = ConntrackTable(capacity: 8)
        let o = FlowKey(protocol: .udp, source: client, sourcePort: 5353, destination: vip, destinationPort: 53)
        let r = FlowKey(protocol: .udp, source: backend, sourcePort: 53, destination: client, destinationPort: 5353)
        let t0 = Timestamp.seconds(10)
        guard case .inserted(let slot) = table.insert(original: o, reply: r, now: t0, initialState: .udpUnreplied, bytes: 70) else {
            Issue.record("insert failed")
            return
        }
        #expect(table[entry: slot].expires == t0 + Seconds(30))
        #expect(!table[entry: slot].assured)
        // A second request 29 s later refreshes the 30 s timer.
        let t1 = t0 + Seconds(29)
        #expect(table.observe(entry: slot, direction: .original, bytes: 70, now: t1) == .udpUnreplied)
        #expect(table[entry: slot].expires == t1 + Seconds(30))
        let t2 = t1 + Seconds(1)
        #expect(table.observe(entry: slot, direction: .reply, bytes: 120, now: t2) == .udpReplied)
        let e = table[entry: slot]
        #expect(e.assured && e.seenReply)
        #expect(e.expires == t2 + Seconds(120))
        #expect(table.lookup(r, now: Timestamp(nanoseconds: e.expires.nanoseconds - 1)) == ConntrackHit(entry: slot, direction: .reply))
        #expect(table.lookup(r, now: e.expires) == nil)
    }

    @Test("ICMP echo: 30 s, and the echo reply is the request key reversed")
    func icmpLifetime() {
        let table = ConntrackTable(capacity: 8)
        let request = FlowKey.icmpEcho(source: client, destination: backend, identifier: 0x1234)
        let t0 = Timestamp.seconds(1)
        guard case .inserted(let slot) = table.insert(original: request, reply: request.reversed(), now: t0, initialState: .icmp) else {
            Issue.record("insert failed")
            return
        }
        let replyKey = FlowKey.icmpEcho(source: backend, destination: client, identifier: 0x1234)
        #expect(table.lookup(replyKey, now: t0) == ConntrackHit(entry: slot, direction: .reply))
        table.observe(entry: slot, direction: .reply, bytes: 84, now: t0 + Seconds(1))
        #expect(table[entry: slot].seenReply)
        #expect(table[entry: slot].expires == t0 + Seconds(31))
        #expect(table.lookup(request, now: t0 + Seconds(31)) == nil)
    }
}
