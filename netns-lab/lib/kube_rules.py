#!/usr/bin/env python3
"""kube-proxy-shaped kernel rules for one node, from the lab's description.

Two outputs, each a full replacement of kube-proxy's state on that node:

  iptables  input for `iptables-restore` (filter and nat tables), the shape of
            kube-proxy's iptables mode (pkg/proxy/iptables/proxier.go):
            KUBE-SERVICES -> KUBE-SVC-* (1/N `statistic` cascade) -> KUBE-SEP-* DNAT,
            KUBE-NODEPORTS / LB IPs -> KUBE-EXT-* (masquerade for Cluster policy,
            KUBE-SVL-* with only local endpoints for Local policy),
            KUBE-MARK-MASQ + KUBE-POSTROUTING masquerade, REJECT for Services
            without endpoints and DROP for Local policy without local endpoints.
  nftables  input for `nft -f`, the shape of kube-proxy's nftables mode
            (pkg/proxy/nftables/proxier.go and its README): table `ip kube-proxy`,
            verdict maps service-ips / service-nodeports / no-endpoint-*,
            per-port service-*/external-*/local-*/endpoint-* chains and
            `numgen random mod N vmap` endpoint selection.

Chain names are derived like kube-proxy's (SHA-256 of the service port name,
base32) so the rules read like the real ones in `iptables-save` / `nft list`.
Not modelled (the lab does not use them): session affinity,
loadBalancerSourceRanges, topology hints, terminating-endpoint fallback.

Usage: kube_rules.py {iptables|nftables} DESCRIPTION --node NAME
"""

import base64
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labmodel  # noqa: E402

MASQ_MARK = "0x4000"


def _b32(text):
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()


def _q(comment):
    # iptables-restore splits on spaces; kube-proxy quotes comments that contain them.
    return '"%s"' % comment if " " in comment else comment


# ---------------------------------------------------------------------------
# iptables mode
# ---------------------------------------------------------------------------

def iptables_rules(desc, node):
    cidr = desc["clusterCIDR"]
    node_names = {n["name"] for n in desc["nodes"]}
    if node not in node_names:
        raise SystemExit("kube_rules: unknown node %r (have %s)" % (node, ", ".join(sorted(node_names))))

    f_chains = ["KUBE-NODEPORTS", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD",
                "KUBE-PROXY-FIREWALL"]
    f_rules = [
        # Jumps from the built-in chains, as kube-proxy installs them. Filtering happens
        # only on NEW connections: established flows keep working after an endpoint goes.
        '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
        '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
        '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
        '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
        '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
        '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark %s/%s -j ACCEPT' % (MASQ_MARK, MASQ_MARK),
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    ]
    n_chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
    n_rules = [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        # The mark survives DNAT; KUBE-POSTROUTING masquerades marked packets once the
        # egress interface (and so the source address) is known.
        '-A KUBE-MARK-MASQ -j MARK --or-mark %s' % MASQ_MARK,
        '-A KUBE-POSTROUTING -m mark ! --mark %s/%s -j RETURN' % (MASQ_MARK, MASQ_MARK),
        '-A KUBE-POSTROUTING -j MARK --xor-mark %s' % MASQ_MARK,
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    ]
    svc_rules = []

    for sp in labmodel.service_ports(desc):
        name, proto = sp["portName"], sp["protocol"].lower()
        pm = "-m %s -p %s" % (proto, proto)
        h = _b32(name + proto)[:16]
        svc_chain, svl_chain, ext_chain = "KUBE-SVC-" + h, "KUBE-SVL-" + h, "KUBE-EXT-" + h
        eps = sp["endpoints"]
        local = [e for e in eps if e["node"] == node]
        external_local = sp["externalTrafficPolicy"] == "Local"
        has_external = bool(sp["nodePort"] or sp["externalIPs"] or sp["loadBalancerIPs"])

        if sp["healthCheckNodePort"] and external_local:
            # Lets the cloud LB's health probe reach kube-proxy's health server.
            f_rules.append('-A KUBE-NODEPORTS -m comment --comment %s -m tcp -p tcp --dport %d -j ACCEPT'
                           % (_q(name + " health check node port"), sp["healthCheckNodePort"]))

        if not eps:
            # No endpoints anywhere: reject at once (ICMP port unreachable) rather than
            # let the client time out -- kube-proxy's "has no endpoints" rules.
            c = _q(name + " has no endpoints")
            f_rules.append("-A KUBE-SERVICES -m comment --comment %s %s -d %s --dport %d -j REJECT"
                           % (c, pm, sp["clusterIP"], sp["port"]))
            for ip in sp["externalIPs"] + sp["loadBalancerIPs"]:
                f_rules.append("-A KUBE-EXTERNAL-SERVICES -m comment --comment %s %s -d %s --dport %d -j REJECT"
                               % (c, pm, ip, sp["port"]))
            if sp["nodePort"]:
                f_rules.append("-A KUBE-EXTERNAL-SERVICES -m comment --comment %s -m addrtype --dst-type LOCAL %s --dport %d -j REJECT"
                               % (c, pm, sp["nodePort"]))
            continue

        # ClusterIP (internal traffic policy is Cluster in the lab; Local would use SVL).
        internal_chain = svc_chain
        if sp["internalTrafficPolicy"] == "Local":
            internal_chain = svl_chain
        n_chains.append(svc_chain)
        n_rules.append("-A KUBE-SERVICES -m comment --comment %s %s -d %s --dport %d -j %s"
                       % (_q(name + " cluster IP"), pm, sp["clusterIP"], sp["port"], internal_chain))
        # Off-cluster sources reaching a ClusterIP (e.g. a node process) are masqueraded so
        # the reply returns through this node's conntrack.
        n_rules.append("-A %s -m comment --comment %s %s -d %s --dport %d ! -s %s -j KUBE-MARK-MASQ"
                       % (svc_chain, _q(name + " cluster IP"), pm, sp["clusterIP"], sp["port"], cidr))
        n_rules += _cascade(svc_chain, name, eps, proto)

        uses_svl = bool(local) and (external_local or sp["internalTrafficPolicy"] == "Local")
        if uses_svl:
            n_chains.append(svl_chain)
            n_rules += _cascade(svl_chain, name, local, proto)

        for e in eps:
            sep = "KUBE-SEP-" + _b32(name + proto + "%s:%d" % (e["ip"], e["port"]))[:16]
            n_chains.append(sep)
            # Hairpin: a pod reaching its own Service may land on itself; masquerading makes
            # the reply come back through the node instead of straight to the pod's own socket.
            n_rules.append("-A %s -m comment --comment %s -s %s -j KUBE-MARK-MASQ" % (sep, _q(name), e["ip"]))
            n_rules.append("-A %s -m comment --comment %s %s -j DNAT --to-destination %s:%d"
                           % (sep, _q(name), pm, e["ip"], e["port"]))

        if not has_external:
            continue
        n_chains.append(ext_chain)
        if not external_local:
            n_rules.append("-A %s -m comment --comment %s -j KUBE-MARK-MASQ"
                           % (ext_chain, _q("masquerade traffic for %s external destinations" % name)))
            n_rules.append("-A %s -j %s" % (ext_chain, svc_chain))
        else:
            # Local policy keeps the client address, so only this node's endpoints may
            # answer. Pods and the node itself are not "external" and may use any endpoint.
            n_rules.append("-A %s -m comment --comment %s -s %s -j %s"
                           % (ext_chain, _q("pod traffic for %s external destinations" % name), cidr, svc_chain))
            n_rules.append("-A %s -m comment --comment %s -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ"
                           % (ext_chain, _q("masquerade LOCAL traffic for %s external destinations" % name)))
            n_rules.append("-A %s -m comment --comment %s -m addrtype --src-type LOCAL -j %s"
                           % (ext_chain, _q("route LOCAL traffic for %s external destinations" % name), svc_chain))
            if local:
                n_rules.append("-A %s -j %s" % (ext_chain, svl_chain))
            else:
                # No local endpoint: DROP, not REJECT -- the client times out. This is the
                # "NodePort hangs on a node without the pod" of field notes 000 and 002.
                c = _q(name + " has no local endpoints")
                for ip in sp["externalIPs"] + sp["loadBalancerIPs"]:
                    f_rules.append("-A KUBE-EXTERNAL-SERVICES -m comment --comment %s %s -d %s --dport %d -j DROP"
                                   % (c, pm, ip, sp["port"]))
                if sp["nodePort"]:
                    f_rules.append("-A KUBE-EXTERNAL-SERVICES -m comment --comment %s -m addrtype --dst-type LOCAL %s --dport %d -j DROP"
                                   % (c, pm, sp["nodePort"]))
        for ip in sp["externalIPs"]:
            n_rules.append("-A KUBE-SERVICES -m comment --comment %s %s -d %s --dport %d -j %s"
                           % (_q(name + " external IP"), pm, ip, sp["port"], ext_chain))
        for ip in sp["loadBalancerIPs"]:
            n_rules.append("-A KUBE-SERVICES -m comment --comment %s %s -d %s --dport %d -j %s"
                           % (_q(name + " loadbalancer IP"), pm, ip, sp["port"], ext_chain))
        if sp["nodePort"]:
            svc_rules.append("-A KUBE-NODEPORTS -m comment --comment %s %s --dport %d -j %s"
                             % (_q(name), pm, sp["nodePort"], ext_chain))

    # NodePorts match any local destination address, so this jump must come last:
    # a ClusterIP or LB IP rule must win over it.
    n_rules += svc_rules
    n_rules.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')

    out = ["# kube-proxy iptables-mode rules for %s, generated by netns-lab/lib/kube_rules.py" % node,
           "*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    out += [":%s - [0:0]" % c for c in _uniq(f_chains)]
    out += f_rules + ["COMMIT", "*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]",
                      ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]"]
    out += [":%s - [0:0]" % c for c in _uniq(n_chains)]
    out += n_rules + ["COMMIT"]
    return "\n".join(out) + "\n"


def _cascade(chain, name, eps, proto):
    """kube-proxy's endpoint choice: rule i matches with probability 1/(n-i), so each of
    n endpoints is picked with probability 1/n; the last rule always matches."""
    rules = []
    n = len(eps)
    for i, e in enumerate(eps):
        sep = "KUBE-SEP-" + _b32(name + proto + "%s:%d" % (e["ip"], e["port"]))[:16]
        c = _q("%s -> %s:%d" % (name, e["ip"], e["port"]))
        if i < n - 1:
            rules.append("-A %s -m comment --comment %s -m statistic --mode random --probability %.10f -j %s"
                         % (chain, c, 1.0 / (n - i), sep))
        else:
            rules.append("-A %s -m comment --comment %s -j %s" % (chain, c, sep))
    return rules


def _uniq(xs):
    seen, out = set(), []
    for x in xs:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


# ---------------------------------------------------------------------------
# nftables mode
# ---------------------------------------------------------------------------

def nft_rules(desc, node):
    cidr = desc["clusterCIDR"]
    addr = {n["name"]: n["address"] for n in desc["nodes"]}
    if node not in addr:
        raise SystemExit("kube_rules: unknown node %r" % node)
    T = "ip kube-proxy"
    out = [
        "# kube-proxy nftables-mode rules for %s, generated by netns-lab/lib/kube_rules.py" % node,
        # Add-then-delete makes the file replace any previous copy of the table atomically.
        "add table %s" % T,
        "delete table %s" % T,
        'add table %s { comment "rules for kube-proxy" ; }' % T,
        'add set %s cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }' % T,
        'add set %s nodeport-ips { type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }' % T,
        'add map %s no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }' % T,
        'add map %s no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }' % T,
        'add map %s service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }' % T,
        'add map %s service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }' % T,
        "add chain %s cluster-ips-check" % T,
        "add chain %s filter-forward { type filter hook forward priority 0 ; }" % T,
        "add chain %s filter-input { type filter hook input priority 0 ; }" % T,
        "add chain %s filter-output { type filter hook output priority 0 ; }" % T,
        "add chain %s mark-for-masquerade" % T,
        "add chain %s masquerading" % T,
        "add chain %s nat-output { type nat hook output priority -100 ; }" % T,
        "add chain %s nat-postrouting { type nat hook postrouting priority 100 ; }" % T,
        "add chain %s nat-prerouting { type nat hook prerouting priority -100 ; }" % T,
        "add chain %s nodeport-endpoints-check" % T,
        'add chain %s reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }' % T,
        "add chain %s services" % T,
        "add chain %s service-endpoints-check" % T,
        'add rule %s cluster-ips-check ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"' % T,
        'add rule %s cluster-ips-check ip daddr { %s } drop comment "Drop traffic to unallocated ClusterIPs"' % (T, desc["serviceCIDR"]),
        "add rule %s filter-forward ct state new jump service-endpoints-check" % T,
        "add rule %s filter-forward ct state new jump cluster-ips-check" % T,
        "add rule %s filter-input ct state new jump nodeport-endpoints-check" % T,
        "add rule %s filter-input ct state new jump service-endpoints-check" % T,
        "add rule %s filter-output ct state new jump service-endpoints-check" % T,
        "add rule %s filter-output ct state new jump cluster-ips-check" % T,
        "add rule %s mark-for-masquerade mark set mark or %s" % (T, MASQ_MARK),
        "add rule %s masquerading mark and %s == 0 return" % (T, MASQ_MARK),
        "add rule %s masquerading mark set mark xor %s" % (T, MASQ_MARK),
        "add rule %s masquerading masquerade fully-random" % T,
        "add rule %s nat-output jump services" % T,
        "add rule %s nat-postrouting jump masquerading" % T,
        "add rule %s nat-prerouting jump services" % T,
        "add rule %s nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports" % T,
        "add rule %s reject-chain reject" % T,
        "add rule %s services ip daddr . meta l4proto . th dport vmap @service-ips" % T,
        "add rule %s services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports" % T,
        "add rule %s service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services" % T,
        # kube-proxy's default --nodeport-addresses is the node's primary IP.
        "add element %s nodeport-ips { %s }" % (T, addr[node]),
    ]
    for sp in labmodel.service_ports(desc):
        proto = sp["protocol"].lower()
        base = "%s-%s/%s/%s/%s" % (_b32(sp["portName"] + proto)[:8], sp["namespace"], sp["service"],
                                   proto, sp["portLabel"])
        svc_chain, local_chain, ext_chain = "service-" + base, "local-" + base, "external-" + base
        eps = sp["endpoints"]
        local = [e for e in eps if e["node"] == node]
        external_local = sp["externalTrafficPolicy"] == "Local"
        has_external = bool(sp["nodePort"] or sp["externalIPs"] or sp["loadBalancerIPs"])
        ext_addrs = sp["externalIPs"] + sp["loadBalancerIPs"]
        comment = '"%s"' % sp["portName"]
        out.append("# %s" % sp["portName"])
        out.append("add element %s cluster-ips { %s }" % (T, sp["clusterIP"]))

        if not eps:
            for ip in [sp["clusterIP"]] + ext_addrs:
                out.append("add element %s no-endpoint-services { %s . %s . %d comment %s : goto reject-chain }"
                           % (T, ip, proto, sp["port"], comment))
            if sp["nodePort"]:
                out.append("add element %s no-endpoint-nodeports { %s . %d comment %s : goto reject-chain }"
                           % (T, proto, sp["nodePort"], comment))
            continue

        def endpoint_chain(e):
            return "endpoint-%s-%s/%s/%s/%s__%s/%d" % (
                _b32(sp["portName"] + proto + "%s:%d" % (e["ip"], e["port"]))[:8],
                sp["namespace"], sp["service"], proto, sp["portLabel"], e["ip"], e["port"])

        def pick(chain, chosen):
            vmap = " , ".join("%d : goto %s" % (i, endpoint_chain(e)) for i, e in enumerate(chosen))
            out.append("add rule %s %s numgen random mod %d vmap { %s }" % (T, chain, len(chosen), vmap))

        # Endpoint chains first: nft resolves a `goto` target when the rule is added.
        for e in eps:
            ch = endpoint_chain(e)
            out.append("add chain %s %s" % (T, ch))
            # Hairpin: masquerade a pod that reaches itself through the Service.
            out.append("add rule %s %s ip saddr %s jump mark-for-masquerade" % (T, ch, e["ip"]))
            out.append("add rule %s %s meta l4proto %s dnat to %s:%d" % (T, ch, proto, e["ip"], e["port"]))
        out.append("add chain %s %s" % (T, svc_chain))
        out.append("add rule %s %s ip daddr %s ip saddr != %s jump mark-for-masquerade"
                   % (T, svc_chain, sp["clusterIP"], cidr))
        pick(svc_chain, eps)
        if local and (external_local or sp["internalTrafficPolicy"] == "Local"):
            out.append("add chain %s %s" % (T, local_chain))
            pick(local_chain, local)
        internal = local_chain if sp["internalTrafficPolicy"] == "Local" else svc_chain
        out.append("add element %s service-ips { %s . %s . %d : goto %s }"
                   % (T, sp["clusterIP"], proto, sp["port"], internal))

        if has_external:
            out.append("add chain %s %s" % (T, ext_chain))
            if not external_local:
                out.append("add rule %s %s jump mark-for-masquerade" % (T, ext_chain))
                out.append("add rule %s %s goto %s" % (T, ext_chain, svc_chain))
            else:
                out.append('add rule %s %s ip saddr %s goto %s comment "short-circuit pod traffic"'
                           % (T, ext_chain, cidr, svc_chain))
                out.append('add rule %s %s fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"'
                           % (T, ext_chain))
                out.append('add rule %s %s fib saddr type local goto %s comment "short-circuit local traffic"'
                           % (T, ext_chain, svc_chain))
                if local:
                    out.append("add rule %s %s goto %s" % (T, ext_chain, local_chain))
                else:
                    # Local policy without a local endpoint drops (client times out).
                    for ip in ext_addrs:
                        out.append("add element %s no-endpoint-services { %s . %s . %d comment %s : drop }"
                                   % (T, ip, proto, sp["port"], comment))
                    if sp["nodePort"]:
                        out.append("add element %s no-endpoint-nodeports { %s . %d comment %s : drop }"
                                   % (T, proto, sp["nodePort"], comment))
            for ip in ext_addrs:
                out.append("add element %s service-ips { %s . %s . %d : goto %s }"
                           % (T, ip, proto, sp["port"], ext_chain))
            if sp["nodePort"]:
                out.append("add element %s service-nodeports { %s . %d : goto %s }"
                           % (T, proto, sp["nodePort"], ext_chain))

    return "\n".join(out) + "\n"


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="kube-proxy-style kernel rules for one node")
    ap.add_argument("mode", choices=["iptables", "nftables"])
    ap.add_argument("description")
    ap.add_argument("--node", required=True)
    a = ap.parse_args(argv)
    desc = labmodel.load(a.description)
    sys.stdout.write(iptables_rules(desc, a.node) if a.mode == "iptables" else nft_rules(desc, a.node))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
