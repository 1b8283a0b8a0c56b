#!/usr/bin/env python3
"""The datapath benchmark's Services and generator configs.

    model.py describe --services N [--web]    description JSON (lib/labmodel.py format)
    model.py trafgen --flows N --dst IP --dport P --src-mac M --dst-mac M [--src-base IP]
                                              a trafgen(8) packet config on stdout

The description is the lab's format, so the same file gives the Ferry agent its
cluster.yaml (labmodel.py yaml) and the kernel its kube-proxy rules
(kube_rules.py iptables|nftables): the three datapaths always serve the same
Services.

Addresses (see netns-lab/bench):
  node1  172.18.0.11 (eth0), 10.244.1.1 on vp-be       node2 = the client namespace
  client 172.18.0.12, pod address 10.244.2.10, trafgen sources 10.244.2.16-31
  backend pods 10.244.1.2 and 10.244.1.3 (one namespace, two addresses)
"""

import argparse
import json
import sys

BENCH_CLUSTER_IP = "10.96.0.10"
WEB_CLUSTER_IP = "10.96.0.11"
WEB_NODE_PORT = 30080
BACKENDS = ["10.244.1.2", "10.244.1.3"]

# Service port -> pod port. The pps port's target is dropped (and counted) at the
# backend's ingress, so no socket and no ICMP port-unreachable ever costs anything.
PPS_PORT, PPS_TARGET = 9, 9999
SOCKPERF_PORT = 11111
IPERF_PORT = 5201
HTTP_PORT = 8080


def _filler_ip(i):
    # 10.96.0.0/12 from 10.97.0.0 on: never the measured Services' addresses.
    n = (1 << 16) + i
    return "10.%d.%d.%d" % (96 + (n >> 16), (n >> 8) & 0xFF, n & 0xFF)


def describe(services, web):
    desc = {
        "clusterCIDR": "10.244.0.0/16",
        "serviceCIDR": "10.96.0.0/12",
        "nodePortRange": "30000-32767",
        "snatPortRange": "20000-29999",
        "nodes": [
            {"name": "node1", "address": "172.18.0.11", "podCIDR": "10.244.1.0/24"},
            {"name": "node2", "address": "172.18.0.12", "podCIDR": "10.244.2.0/24"},
        ],
        "pods": [],
        "services": [],
    }
    eps = [{"ip": ip, "node": "node1", "pod": "be-%d" % i} for i, ip in enumerate(BACKENDS)]
    # Filler Services first: kube-proxy's iptables mode matches a new flow against
    # KUBE-SERVICES rule by rule, and the measured Service is written last, so each new
    # iptables flow walks every filler rule (the worst case; kube-proxy's order is the
    # order of a Go map, so on average half of them). nftables and Ferry look up a map.
    for i in range(services - 1):
        desc["services"].append({
            "name": "filler-%05d" % i, "type": "ClusterIP", "clusterIP": _filler_ip(i),
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}],
            # Endpoints that exist only on paper (another node's pods): rules and table
            # entries as a real cluster has them, no traffic.
            "endpoints": [{"ip": "10.244.3.%d" % (2 + i % 250), "node": "node3"},
                          {"ip": "10.244.4.%d" % (2 + i % 250), "node": "node4"}],
        })
    desc["services"].append({
        "name": "bench", "type": "ClusterIP", "clusterIP": BENCH_CLUSTER_IP,
        "ports": [
            {"name": "pps", "protocol": "UDP", "port": PPS_PORT, "targetPort": PPS_TARGET},
            {"name": "sockperf-udp", "protocol": "UDP", "port": SOCKPERF_PORT, "targetPort": SOCKPERF_PORT},
            {"name": "sockperf-tcp", "protocol": "TCP", "port": SOCKPERF_PORT, "targetPort": SOCKPERF_PORT},
            {"name": "iperf", "protocol": "TCP", "port": IPERF_PORT, "targetPort": IPERF_PORT},
        ],
        "endpoints": eps,
    })
    if web:
        # NodePort with the default Cluster policy: kube-proxy masquerades it.
        desc["services"].append({
            "name": "web", "type": "NodePort", "clusterIP": WEB_CLUSTER_IP,
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": HTTP_PORT,
                       "nodePort": WEB_NODE_PORT}],
            "externalTrafficPolicy": "Cluster",
            "endpoints": eps,
        })
    return desc


def trafgen_config(flows, dst, dport, src_mac, dst_mac, src_base, templates):
    """`templates` packet templates, one per source address, each stepping its source
    port through flows/templates values. trafgen sends templates round robin and each
    template's dinc() advances only when that template is sent, so the flows are the
    product (16 x 4096 = 65,536) -- unlike two dinc() fields in one template, whose
    periods (both powers of two) would repeat after the larger one alone."""
    if flows < 1 or flows % templates:
        raise SystemExit("trafgen: flows must be a multiple of %d" % templates)
    per = flows // templates
    a, b, c, d = (int(x) for x in src_base.split("."))
    # 14 Ethernet + 20 IPv4 + 8 UDP + 22 payload = 64 bytes in the buffer (veth carries
    # no FCS, so this is a 64-byte frame as the sender and the packet socket see it).
    out = ["/* %d UDP flows to %s:%d, 64-byte frames */" % (flows, dst, dport)]
    for t in range(templates):
        src = "%d.%d.%d.%d" % (a, b, c, d + t)
        sport = "dinc(%d, %d, 1)" % (10000, 10000 + per - 1) if per > 1 else "10000"
        out.append("{ eth(da=%s, sa=%s), ipv4(sa=%s, da=%s, ttl=64), udp(sp=%s, dp=%d), fill(0x5a, 22) }"
                   % (dst_mac, src_mac, src, dst, sport, dport))
    return "\n".join(out) + "\n"


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("describe")
    d.add_argument("--services", type=int, default=1)
    d.add_argument("--web", action="store_true")
    t = sub.add_parser("trafgen")
    t.add_argument("--flows", type=int, required=True)
    t.add_argument("--dst", required=True)
    t.add_argument("--dport", type=int, required=True)
    t.add_argument("--src-mac", required=True)
    t.add_argument("--dst-mac", required=True)
    t.add_argument("--src-base", default="10.244.2.16")
    t.add_argument("--templates", type=int, default=0, help="default: 1 for one flow, else 16")
    a = ap.parse_args(argv)
    if a.cmd == "describe":
        if a.services < 1:
            raise SystemExit("--services must be at least 1")
        json.dump(describe(a.services, a.web), sys.stdout)
        sys.stdout.write("\n")
    else:
        n = a.templates or (1 if a.flows == 1 else 16)
        sys.stdout.write(trafgen_config(a.flows, a.dst, a.dport, a.src_mac, a.dst_mac, a.src_base, n))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
