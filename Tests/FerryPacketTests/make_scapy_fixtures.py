#!/usr/bin/python3
"""Builds reference frames with scapy and writes ScapyFixtures.swift.

Run with Debian's python (python3-scapy is importable only from there):

    /usr/bin/python3 Tests/FerryPacketTests/make_scapy_fixtures.py

Each NAT case holds an original frame and the frame scapy builds with the translated
addresses and ports, every checksum recomputed by scapy from scratch. The tests apply
Ferry's incremental setters to the original and expect the translated bytes exactly.

The CHECKSUM_PARTIAL cases put the folded, uncomplemented pseudo-header sum in the
transport checksum field (what Linux's tcp_v4_send_check() leaves for veth). That sum is
computed below with plain integer arithmetic, independently of scapy's layer code.
"""

import os
import struct

from scapy.all import ICMP, IP, TCP, UDP, Ether, IPOption_NOP, IPOption_Router_Alert, Raw, raw
import scapy

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "ScapyFixtures.swift")

CLIENT_MAC = "02:00:00:00:00:01"
NODE_MAC = "02:00:00:00:00:02"
CLIENT = "10.0.1.5"
VIP = "10.96.0.10"
BACKEND = "10.244.2.5"
NODE = "192.168.1.2"


def ip_int(text):
    a, b, c, d = (int(x) for x in text.split("."))
    return a << 24 | b << 16 | c << 8 | d


def eth():
    return Ether(src=CLIENT_MAC, dst=NODE_MAC)


def pseudo_header_partial(src, dst, proto, length):
    """Folded, uncomplemented one's complement sum of the IPv4 pseudo-header (RFC 793)."""
    s = 0
    for addr in (ip_int(src), ip_int(dst)):
        s += addr >> 16
        s += addr & 0xFFFF
    s += proto
    s += length
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def with_partial_checksum(frame_bytes, l4_checksum_offset, src, dst, proto):
    """Replaces the transport checksum of a plain Ethernet/IPv4 frame by its partial form."""
    b = bytearray(frame_bytes)
    ihl = (b[14] & 0x0F) * 4
    total = struct.unpack("!H", b[16:18])[0]
    l4_len = total - ihl
    off = 14 + ihl + l4_checksum_offset
    b[off:off + 2] = struct.pack("!H", pseudo_header_partial(src, dst, proto, l4_len))
    return bytes(b)


def check_scapy_roundtrip(frame_bytes):
    """Guards against a fixture scapy itself would not accept."""
    assert raw(Ether(frame_bytes)) == frame_bytes


# ---------------------------------------------------------------- NAT cases
# (name, original, translated, new src, new sport, new dst, new dport)
nat_cases = []

tcp_opts = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (12345, 0)), ("NOP", None), ("WScale", 7)]

def add_nat(name, build, new_src, new_sport, new_dst, new_dport, orig=(CLIENT, 40000, VIP, 80)):
    original = raw(build(*orig))
    translated = raw(build(new_src, new_sport, new_dst, new_dport))
    check_scapy_roundtrip(original)
    check_scapy_roundtrip(translated)
    nat_cases.append((name, original, translated, new_src, new_sport, new_dst, new_dport))


add_nat(
    "tcpSyn",
    lambda s, sp, d, dp: eth() / IP(src=s, dst=d, id=0x1c46, ttl=64) /
    TCP(sport=sp, dport=dp, flags="S", seq=0x6B8B4567, window=64240, options=tcp_opts),
    CLIENT, 40000, BACKEND, 8080)

add_nat(
    "tcpPayload",
    lambda s, sp, d, dp: eth() / IP(src=s, dst=d, id=0x2201, ttl=63) /
    TCP(sport=sp, dport=dp, flags="PA", seq=1000, ack=2000, window=502) /
    Raw(b"GET / HTTP/1.1\r\nHost: svc\r\n\r\n"),
    NODE, 61000, BACKEND, 8080)

add_nat(
    "udpDNS",
    lambda s, sp, d, dp: eth() / IP(src=s, dst=d, id=7, ttl=64) /
    UDP(sport=sp, dport=dp) / Raw(bytes.fromhex("abcd01000001000000000000076578616d706c6503636f6d0000010001")),
    CLIENT, 53000, BACKEND, 5353, orig=(CLIENT, 53000, VIP, 53))

add_nat(
    "udpOddLength",
    lambda s, sp, d, dp: eth() / IP(src=s, dst=d, id=8, ttl=64) / UDP(sport=sp, dport=dp) / Raw(b"odd"),
    NODE, 30001, BACKEND, 9000, orig=(CLIENT, 12345, VIP, 90))

add_nat(
    "udpZeroChecksum",
    lambda s, sp, d, dp: eth() / IP(src=s, dst=d, id=9, ttl=64) /
    UDP(sport=sp, dport=dp, chksum=0) / Raw(b"no checksum here"),
    NODE, 40001, BACKEND, 8125, orig=(CLIENT, 40001, VIP, 8125))

add_nat(
    "ipv4OptionsUDP",
    lambda s, sp, d, dp: eth() / IP(src=s, dst=d, id=10, ttl=1,
                                    options=[IPOption_Router_Alert(), IPOption_NOP(), IPOption_NOP(),
                                             IPOption_NOP(), IPOption_NOP()]) /
    UDP(sport=sp, dport=dp) / Raw(b"with options"),
    NODE, 5000, BACKEND, 6000, orig=(CLIENT, 5000, VIP, 600))

# ICMP echo: addresses and identifier (the echo "port" masquerade rewrites).
add_nat(
    "icmpEcho",
    lambda s, sp, d, dp: eth() / IP(src=s, dst=d, id=11, ttl=64) /
    ICMP(type=8, code=0, id=sp, seq=dp) / Raw(b"0123456789abcdefghijklmnopqrstuv"),
    NODE, 0x9001, BACKEND, 1, orig=(CLIENT, 0x1234, VIP, 1))

# ---------------------------------------------------------------- ICMP error cases
# An error sent by the backend about a DNATed packet (client -> backend). Reverse NAT:
# outer source backend -> VIP, quoted destination backend:port -> VIP:port.
# (name, original error, translated error, new outer src, new outer dst,
#  quoted src, quoted sport, quoted dst, quoted dport)
icmp_error_cases = []


def add_icmp_error(name, icmp_layer, inner_build, quote_len_l4, outer_from, new_outer_from,
                   inner, new_inner):
    def build(outer_src, inner_tuple):
        inner_pkt = inner_build(*inner_tuple)
        b = raw(inner_pkt)
        ihl = (b[0] & 0x0F) * 4
        quoted = b[:ihl + quote_len_l4]
        return raw(eth() / IP(src=outer_src, dst=CLIENT, id=0x77, ttl=64) / icmp_layer() / Raw(quoted))
    original = build(outer_from, inner)
    translated = build(new_outer_from, new_inner)
    check_scapy_roundtrip(original)
    icmp_error_cases.append((name, original, translated, new_outer_from, CLIENT) + tuple(new_inner))


add_icmp_error(
    "portUnreachableQuotingUDP",
    lambda: ICMP(type=3, code=3),
    lambda s, sp, d, dp: IP(src=s, dst=d, id=0x3344, ttl=63) / UDP(sport=sp, dport=dp) / Raw(b"query payload!"),
    8, BACKEND, VIP,
    (CLIENT, 53000, BACKEND, 5353), (CLIENT, 53000, VIP, 53))

add_icmp_error(
    "fragmentationNeededQuotingWholeTCPHeader",
    lambda: ICMP(type=3, code=4, nexthopmtu=1400),
    lambda s, sp, d, dp: IP(src=s, dst=d, id=0x5566, ttl=63, flags="DF") /
    TCP(sport=sp, dport=dp, flags="PA", seq=77, ack=88) / Raw(b"x" * 100),
    28, BACKEND, VIP,
    (CLIENT, 40000, BACKEND, 8080), (CLIENT, 40000, VIP, 80))

add_icmp_error(
    "timeExceededQuotingTCPFirst8Octets",
    lambda: ICMP(type=11, code=0),
    lambda s, sp, d, dp: IP(src=s, dst=d, id=0x99, ttl=1) / TCP(sport=sp, dport=dp, flags="S", seq=5),
    8, "10.244.2.1", "10.244.2.1",
    (CLIENT, 40000, BACKEND, 8080), (CLIENT, 40000, VIP, 80))

# ---------------------------------------------------------------- ICMP error writer
# (name, original datagram, expected error datagram, type, code, mtu, source, destination, id)
writer_cases = []


def add_writer(name, original_pkt, icmp_type, code, mtu, source, ident):
    original = raw(original_pkt)
    ihl = (original[0] & 0x0F) * 4
    quote = original[:ihl + 8]
    icmp = ICMP(type=icmp_type, code=code)
    if icmp_type == 3 and code == 4:
        icmp = ICMP(type=icmp_type, code=code, nexthopmtu=mtu)
    error = raw(IP(src=source, dst=original_pkt[IP].src, ttl=64, flags=0, id=ident, tos=0xC0) / icmp / Raw(quote))
    writer_cases.append((name, original, error, icmp_type, code, mtu, source, original_pkt[IP].src, ident))


add_writer("portUnreachableForUDP",
           IP(src=CLIENT, dst=VIP, id=5, ttl=64) / UDP(sport=53000, dport=53) / Raw(b"a dns query with no endpoints"),
           3, 3, 0, VIP, 0)
add_writer("fragmentationNeededForTCP",
           IP(src=CLIENT, dst=BACKEND, id=6, ttl=64, flags="DF") / TCP(sport=40000, dport=8080, flags="A") / Raw(b"y" * 1500),
           3, 4, 1400, NODE, 0xBEEF)
add_writer("timeExceededWithOptions",
           IP(src=CLIENT, dst=BACKEND, id=7, ttl=1, options=[IPOption_Router_Alert()]) / UDP(sport=1, dport=2) / Raw(b"zz"),
           11, 0, 0, NODE, 1)

# ---------------------------------------------------------------- CHECKSUM_PARTIAL cases
# (name, full original, partial original, full translated, partial translated, nat tuple)
partial_cases = []


def add_partial(name, build, proto, csum_off, orig, new):
    full_orig = raw(build(*orig))
    full_new = raw(build(*new))
    part_orig = with_partial_checksum(full_orig, csum_off, orig[0], orig[2], proto)
    part_new = with_partial_checksum(full_new, csum_off, new[0], new[2], proto)
    partial_cases.append((name, full_orig, part_orig, full_new, part_new) + tuple(new))


add_partial(
    "tcpSynPartial",
    lambda s, sp, d, dp: eth() / IP(src=s, dst=d, id=0x4000, ttl=64) /
    TCP(sport=sp, dport=dp, flags="S", seq=0x01020304, window=64240, options=tcp_opts),
    6, 16, (CLIENT, 41000, VIP, 80), (NODE, 62000, BACKEND, 8080))

add_partial(
    "tcpPayloadPartial",
    lambda s, sp, d, dp: eth() / IP(src=s, dst=d, id=0x4001, ttl=64) /
    TCP(sport=sp, dport=dp, flags="PA", seq=9, ack=10) / Raw(b"partial checksum payload, odd length"),
    6, 16, (CLIENT, 41001, VIP, 443), (CLIENT, 41001, BACKEND, 8443))

add_partial(
    "udpPartial",
    lambda s, sp, d, dp: eth() / IP(src=s, dst=d, id=0x4002, ttl=64) /
    UDP(sport=sp, dport=dp) / Raw(b"udp offloaded"),
    17, 6, (CLIENT, 5000, VIP, 53), (NODE, 63000, BACKEND, 5353))


# ---------------------------------------------------------------- Swift output
def swift_bytes(b, indent="        "):
    lines = []
    for i in range(0, len(b), 16):
        lines.append(indent + ", ".join("0x%02x" % x for x in b[i:i + 16]) + ",")
    return "[\n" + "\n".join(lines) + "\n" + indent[:-4] + "]"


def addr(text):
    return "IPv4Address(0x%08X)" % ip_int(text)


out = []
out.append("// Generated by Tests/FerryPacketTests/make_scapy_fixtures.py with scapy %s. Do not edit;" % scapy.VERSION)
out.append("// run `/usr/bin/python3 Tests/FerryPacketTests/make_scapy_fixtures.py` to regenerate.")
out.append("")
out.append("import FerryPacket")
out.append("import Testing")
out.append("")
out.append("/// A frame and the frame scapy builds after translating addresses and ports.")
out.append("struct ScapyNATCase: Sendable, CustomTestStringConvertible {")
out.append("    let name: String")
out.append("    let original: [UInt8]")
out.append("    let translated: [UInt8]")
out.append("    let source: IPv4Address")
out.append("    let sourcePort: UInt16")
out.append("    let destination: IPv4Address")
out.append("    let destinationPort: UInt16")
out.append("    var testDescription: String { name }")
out.append("}")
out.append("")
out.append("/// An ICMP error and the error after reverse NAT of its outer and quoted headers.")
out.append("struct ScapyICMPErrorCase: Sendable, CustomTestStringConvertible {")
out.append("    let name: String")
out.append("    let original: [UInt8]")
out.append("    let translated: [UInt8]")
out.append("    let outerSource: IPv4Address")
out.append("    let outerDestination: IPv4Address")
out.append("    let quotedSource: IPv4Address")
out.append("    let quotedSourcePort: UInt16")
out.append("    let quotedDestination: IPv4Address")
out.append("    let quotedDestinationPort: UInt16")
out.append("    var testDescription: String { name }")
out.append("}")
out.append("")
out.append("/// An offending IPv4 datagram and the ICMP error datagram scapy builds for it.")
out.append("struct ScapyICMPWriterCase: Sendable, CustomTestStringConvertible {")
out.append("    let name: String")
out.append("    let original: [UInt8]")
out.append("    let error: [UInt8]")
out.append("    let type: UInt8")
out.append("    let code: UInt8")
out.append("    let nextHopMTU: UInt16")
out.append("    let source: IPv4Address")
out.append("    let destination: IPv4Address")
out.append("    let identification: UInt16")
out.append("    var testDescription: String { name }")
out.append("}")
out.append("")
out.append("/// Frames with full and CHECKSUM_PARTIAL transport checksums, before and after NAT.")
out.append("struct ScapyPartialCase: Sendable, CustomTestStringConvertible {")
out.append("    let name: String")
out.append("    let fullOriginal: [UInt8]")
out.append("    let partialOriginal: [UInt8]")
out.append("    let fullTranslated: [UInt8]")
out.append("    let partialTranslated: [UInt8]")
out.append("    let source: IPv4Address")
out.append("    let sourcePort: UInt16")
out.append("    let destination: IPv4Address")
out.append("    let destinationPort: UInt16")
out.append("    var testDescription: String { name }")
out.append("}")
out.append("")
out.append("enum ScapyFixtures {")

out.append("    static let natCases: [ScapyNATCase] = [")
for name, o, t, s, sp, d, dp in nat_cases:
    out.append("        ScapyNATCase(")
    out.append('            name: "%s",' % name)
    out.append("            original: %s," % swift_bytes(o, " " * 16))
    out.append("            translated: %s," % swift_bytes(t, " " * 16))
    out.append("            source: %s, sourcePort: %d, destination: %s, destinationPort: %d)," % (addr(s), sp, addr(d), dp))
out.append("    ]")
out.append("")

out.append("    static let icmpErrorCases: [ScapyICMPErrorCase] = [")
for name, o, t, os_, od, qs, qsp, qd, qdp in icmp_error_cases:
    out.append("        ScapyICMPErrorCase(")
    out.append('            name: "%s",' % name)
    out.append("            original: %s," % swift_bytes(o, " " * 16))
    out.append("            translated: %s," % swift_bytes(t, " " * 16))
    out.append("            outerSource: %s, outerDestination: %s," % (addr(os_), addr(od)))
    out.append("            quotedSource: %s, quotedSourcePort: %d, quotedDestination: %s, quotedDestinationPort: %d)," % (addr(qs), qsp, addr(qd), qdp))
out.append("    ]")
out.append("")

out.append("    static let icmpWriterCases: [ScapyICMPWriterCase] = [")
for name, o, e, ty, co, mtu, src, dst, ident in writer_cases:
    out.append("        ScapyICMPWriterCase(")
    out.append('            name: "%s",' % name)
    out.append("            original: %s," % swift_bytes(o, " " * 16))
    out.append("            error: %s," % swift_bytes(e, " " * 16))
    out.append("            type: %d, code: %d, nextHopMTU: %d, source: %s, destination: %s, identification: %d)," % (ty, co, mtu, addr(src), addr(dst), ident))
out.append("    ]")
out.append("")

out.append("    static let partialCases: [ScapyPartialCase] = [")
for name, fo, po, ft, pt, s, sp, d, dp in partial_cases:
    out.append("        ScapyPartialCase(")
    out.append('            name: "%s",' % name)
    out.append("            fullOriginal: %s," % swift_bytes(fo, " " * 16))
    out.append("            partialOriginal: %s," % swift_bytes(po, " " * 16))
    out.append("            fullTranslated: %s," % swift_bytes(ft, " " * 16))
    out.append("            partialTranslated: %s," % swift_bytes(pt, " " * 16))
    out.append("            source: %s, sourcePort: %d, destination: %s, destinationPort: %d)," % (addr(s), sp, addr(d), dp))
out.append("    ]")
out.append("}")
out.append("")

with open(OUT, "w") as f:
    f.write("\n".join(out))
print("wrote", OUT, len(nat_cases), len(icmp_error_cases), len(writer_cases), len(partial_cases))
