#!/usr/bin/env python3
"""The lab's service description and what is derived from it.

One JSON document (the *description*) says which nodes, pods and Services the
lab has. Everything else is computed from it, so the control-plane file the
Ferry agent reads, the kube-proxy-style kernel rules (kube_rules.py) and the
load balancer's health targets can never disagree:

    description.json --labmodel.py yaml------> cluster.yaml (kubectl-style)
                     --labmodel.py lb-targets-> lines for lb-health.sh
                     --kube_rules.py ---------> iptables-restore / nft -f input

Endpoints follow the EndpointSlice controller: a pod backs a Service when the
Service's selector matches its labels; a Service may instead list
"endpoints" explicitly (benchmarks describe thousands of Services that way).
Standard library only, so it runs under any python3.

Description format (every field shown; defaults in DEFAULTS below):
{
  "clusterCIDR": "10.244.0.0/16", "serviceCIDR": "10.96.0.0/12",
  "nodePortRange": "30000-32767", "snatPortRange": "20000-29999",
  "nodes": [{"name": "node1", "address": "172.18.0.11", "podCIDR": "10.244.1.0/24"}],
  "pods":  [{"name": "web-1a", "namespace": "default", "node": "node1", "ip": "10.244.1.2",
             "labels": {"app": "web"}, "ready": true,
             "ports": [{"name": "http", "protocol": "TCP", "port": 8080}]}],
  "services": [{"name": "web", "namespace": "default", "type": "ClusterIP",
                "clusterIP": "10.96.0.10", "selector": {"app": "web"},
                "ports": [{"name": "http", "protocol": "TCP", "port": 80,
                           "targetPort": 8080, "nodePort": null}],
                "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster",
                "healthCheckNodePort": null, "externalIPs": [], "loadBalancerIPs": [],
                "endpoints": null}]
}
"""

import hashlib
import ipaddress
import json
import sys

DEFAULTS = {
    "clusterCIDR": "10.244.0.0/16",
    "serviceCIDR": "10.96.0.0/12",
    "nodePortRange": "30000-32767",
    "snatPortRange": "20000-29999",
}

# The pod server's ports (podserver.py); Services target them by number.
POD_HTTP_PORT = 8080
POD_UDP_PORT = 5353


# ---------------------------------------------------------------------------
# The lab's default cluster
# ---------------------------------------------------------------------------

def node_address(n):
    return "172.18.0.%d" % (10 + n)


def default_description(nodes=3, placement=(2, 1)):
    """The lab's cluster: `nodes` nodes, web pods placed unevenly (node1 two,
    node2 one, the rest none by default) so that Local traffic policy has a
    node without endpoints to show, as in field notes 000 and 002."""
    desc = dict(DEFAULTS)
    desc["nodes"] = [
        {"name": "node%d" % n, "address": node_address(n), "podCIDR": "10.244.%d.0/24" % n}
        for n in range(1, nodes + 1)
    ]
    pods = []
    for n in range(1, nodes + 1):
        count = placement[n - 1] if n - 1 < len(placement) else 0
        for i in range(count):
            pods.append({
                "name": "web-%d%s" % (n, "abcdefghijklmnopqrstuvwxyz"[i]),
                "namespace": "default",
                "node": "node%d" % n,
                # .1 is the node's own address on every pod veth.
                "ip": "10.244.%d.%d" % (n, i + 2),
                "labels": {"app": "web"},
                "ready": True,
                "ports": [
                    {"name": "http", "protocol": "TCP", "port": POD_HTTP_PORT},
                    {"name": "dns", "protocol": "UDP", "port": POD_UDP_PORT},
                ],
            })
    desc["pods"] = pods
    web = {"app": "web"}
    http = {"name": "http", "protocol": "TCP", "port": 80, "targetPort": POD_HTTP_PORT}
    desc["services"] = [
        {"name": "web", "namespace": "default", "type": "ClusterIP", "clusterIP": "10.96.0.10",
         "selector": web,
         "ports": [dict(http),
                   {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": POD_UDP_PORT}]},
        {"name": "web-np", "namespace": "default", "type": "NodePort", "clusterIP": "10.96.0.11",
         "selector": web, "ports": [dict(http, nodePort=30080)],
         "externalTrafficPolicy": "Cluster"},
        {"name": "web-local", "namespace": "default", "type": "NodePort", "clusterIP": "10.96.0.12",
         "selector": web, "ports": [dict(http, nodePort=30081)],
         # No healthCheckNodePort: the API server rejects one on a NodePort Service
         # ("may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy`
         # is 'Local'", pkg/apis/core/validation), and kube-proxy serves none for it.
         "externalTrafficPolicy": "Local"},
        {"name": "web-lb", "namespace": "default", "type": "LoadBalancer", "clusterIP": "10.96.0.13",
         "selector": web, "ports": [dict(http, nodePort=30082)],
         "externalTrafficPolicy": "Local", "healthCheckNodePort": 32082,
         "loadBalancerIPs": ["198.51.100.10"]},
        {"name": "empty", "namespace": "default", "type": "ClusterIP", "clusterIP": "10.96.0.20",
         "selector": {"app": "nothing-matches"}, "ports": [dict(http)]},
    ]
    return desc


# ---------------------------------------------------------------------------
# Model: services, ports and their endpoints
# ---------------------------------------------------------------------------

def load(path):
    with open(path) as f:
        desc = json.load(f)
    for k, v in DEFAULTS.items():
        desc.setdefault(k, v)
    desc.setdefault("pods", [])
    for svc in desc["services"]:
        svc.setdefault("namespace", "default")
        svc.setdefault("type", "ClusterIP")
        svc.setdefault("externalTrafficPolicy", "Cluster")
        svc.setdefault("internalTrafficPolicy", "Cluster")
        svc.setdefault("externalIPs", [])
        svc.setdefault("loadBalancerIPs", [])
        svc.setdefault("healthCheckNodePort", None)
        for p in svc["ports"]:
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p["port"])
            p.setdefault("nodePort", None)
            p.setdefault("name", None)
    return desc


def _matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def endpoints_of(desc, svc):
    """The Service's endpoints as EndpointSlice endpoints: dicts with ip, node,
    pod (targetRef name or None), ready, and ports {(name, protocol): port}."""
    if svc.get("endpoints") is not None:
        out = []
        for ep in svc["endpoints"]:
            ports = {}
            for p in svc["ports"]:
                tp = p["targetPort"]
                ports[(p["name"], p["protocol"])] = ep.get("port", tp if isinstance(tp, int) else p["port"])
            out.append({"ip": ep["ip"], "node": ep.get("node"), "pod": ep.get("pod"),
                        "ready": ep.get("ready", True), "ports": ports})
        return out
    out = []
    for pod in desc["pods"]:
        if pod.get("namespace", "default") != svc["namespace"]:
            continue
        if not _matches(svc.get("selector"), pod.get("labels", {})):
            continue
        ports = {}
        for p in svc["ports"]:
            tp = p["targetPort"]
            if isinstance(tp, int):
                ports[(p["name"], p["protocol"])] = tp
            else:
                # A named targetPort resolves per pod, as the EndpointSlice
                # controller does (pod.spec.containers[].ports[].name).
                for pp in pod.get("ports", []):
                    if pp["name"] == tp and pp.get("protocol", "TCP") == p["protocol"]:
                        ports[(p["name"], p["protocol"])] = pp["port"]
        out.append({"ip": pod["ip"], "node": pod["node"], "pod": pod["name"],
                    "ready": pod.get("ready", True), "ports": ports})
    return out


def service_ports(desc):
    """Yield one record per (Service, port): everything a proxy needs for it.
    `endpoints` are the ready endpoints serving this port (ip, port, node)."""
    for svc in desc["services"]:
        if svc["type"] == "ExternalName" or svc.get("clusterIP") in (None, "None"):
            continue  # kube-proxy does not proxy headless or ExternalName Services
        eps = endpoints_of(desc, svc)
        for p in svc["ports"]:
            key = (p["name"], p["protocol"])
            ready = [{"ip": e["ip"], "port": e["ports"][key], "node": e["node"], "pod": e["pod"]}
                     for e in eps if e["ready"] and key in e["ports"]]
            yield {
                "namespace": svc["namespace"], "service": svc["name"],
                # kube-proxy's ServicePortName string: "ns/name:port" ("ns/name" when unnamed)
                "portName": "%s/%s%s" % (svc["namespace"], svc["name"],
                                         ":" + p["name"] if p["name"] else ""),
                "portLabel": p["name"] or "",
                "type": svc["type"],
                "protocol": p["protocol"],
                "clusterIP": svc["clusterIP"],
                "port": p["port"],
                "nodePort": p["nodePort"] if svc["type"] in ("NodePort", "LoadBalancer") else None,
                "externalIPs": list(svc["externalIPs"]),
                "loadBalancerIPs": list(svc["loadBalancerIPs"]) if svc["type"] == "LoadBalancer" else [],
                "externalTrafficPolicy": svc["externalTrafficPolicy"],
                "internalTrafficPolicy": svc["internalTrafficPolicy"],
                "healthCheckNodePort": svc["healthCheckNodePort"],
                "endpoints": ready,
            }


# ---------------------------------------------------------------------------
# kubectl-style YAML
# ---------------------------------------------------------------------------

def _scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    s = str(v)
    # Quote what YAML would read as something other than a string, as kubectl does
    # for resourceVersion, timestamps and the like.
    plain_ok = (s and s[0] not in "-?:,[]{}#&*!|>'\"%@`~ " and ": " not in s and " #" not in s
                and s.lower() not in ("true", "false", "null", "yes", "no", "on", "off", "~")
                and not _looks_numeric(s) and s == s.strip())
    return s if plain_ok else json.dumps(s)


def _looks_numeric(s):
    try:
        float(s)
        return True
    except ValueError:
        return s[:1].isdigit() and ":" in s  # timestamps, sexagesimal


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts, lists and scalars (enough for Kubernetes
    objects; keys kept in the order given)."""
    pad = " " * indent
    lines = []
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        for k, v in obj.items():
            if isinstance(v, dict) and v:
                lines.append("%s%s:\n%s" % (pad, k, to_yaml(v, indent + 2)))
            elif isinstance(v, list) and v:
                lines.append("%s%s:\n%s" % (pad, k, to_yaml(v, indent)))
            elif isinstance(v, (dict, list)):
                lines.append("%s%s: %s\n" % (pad, k, "{}" if isinstance(v, dict) else "[]"))
            else:
                lines.append("%s%s: %s\n" % (pad, k, _scalar(v)))
        return "".join(lines)
    if isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict) and item:
                body = to_yaml(item, indent + 2)
                lines.append(pad + "- " + body[indent + 2:])
            elif isinstance(item, list) and item:
                lines.append(pad + "-\n" + to_yaml(item, indent + 2))
            else:
                lines.append("%s- %s\n" % (pad, _scalar(item) if not isinstance(item, (dict, list))
                                            else ("{}" if isinstance(item, dict) else "[]")))
        return "".join(lines)
    return pad + _scalar(obj) + "\n"


def _uid(*parts):
    h = hashlib.sha256("/".join(parts).encode()).hexdigest()
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:32])


CREATED = "2025-01-01T00:00:00Z"


def kubernetes_objects(desc):
    """Services, EndpointSlices and the ferry.dev/v1 ClusterConfig, shaped like
    `kubectl get svc,endpointslices -o yaml` prints them."""
    objs = [{
        "apiVersion": "ferry.dev/v1",
        "kind": "ClusterConfig",
        "metadata": {"name": "lab"},
        "clusterCIDRs": [desc["clusterCIDR"]],
        "nodePortRange": desc["nodePortRange"],
        "snatPortRange": desc["snatPortRange"],
        "masqueradeAll": False,
        "nodes": [{"name": n["name"], "addresses": [n["address"]]} for n in desc["nodes"]],
    }]
    rv = 1000
    for svc in desc["services"]:
        rv += 1
        spec = {}
        if svc.get("clusterIP"):
            spec["clusterIP"] = svc["clusterIP"]
            spec["clusterIPs"] = [svc["clusterIP"]]
        if svc["externalIPs"]:
            spec["externalIPs"] = list(svc["externalIPs"])
        if svc["type"] in ("NodePort", "LoadBalancer"):
            spec["externalTrafficPolicy"] = svc["externalTrafficPolicy"]
        if svc["healthCheckNodePort"]:
            spec["healthCheckNodePort"] = svc["healthCheckNodePort"]
        spec["internalTrafficPolicy"] = svc["internalTrafficPolicy"]
        spec["ipFamilies"] = ["IPv4"]
        spec["ipFamilyPolicy"] = "SingleStack"
        ports = []
        for p in svc["ports"]:
            port = {}
            if p["name"]:
                port["name"] = p["name"]
            if p["nodePort"] and svc["type"] in ("NodePort", "LoadBalancer"):
                port["nodePort"] = p["nodePort"]
            port["port"] = p["port"]
            port["protocol"] = p["protocol"]
            port["targetPort"] = p["targetPort"]
            ports.append(port)
        spec["ports"] = ports
        if svc.get("selector"):
            spec["selector"] = dict(svc["selector"])
        spec["sessionAffinity"] = "None"
        spec["type"] = svc["type"]
        status = {"loadBalancer": {}}
        if svc["type"] == "LoadBalancer" and svc["loadBalancerIPs"]:
            status["loadBalancer"] = {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in svc["loadBalancerIPs"]]}
        uid = _uid("svc", svc["namespace"], svc["name"])
        objs.append({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "creationTimestamp": CREATED,
                "labels": {"app": svc["name"]},
                "name": svc["name"],
                "namespace": svc["namespace"],
                "resourceVersion": str(rv),
                "uid": uid,
            },
            "spec": spec,
            "status": status,
        })
        # One slice per Service, as the controller writes for fewer than 100 endpoints.
        rv += 1
        eps = endpoints_of(desc, svc)
        suffix = hashlib.sha256(svc["name"].encode()).hexdigest()[:5]
        endpoints = []
        for e in eps:
            ep = {"addresses": [e["ip"]],
                  "conditions": {"ready": e["ready"], "serving": e["ready"], "terminating": False}}
            if e["node"]:
                ep["nodeName"] = e["node"]
            if e["pod"]:
                ep["targetRef"] = {"kind": "Pod", "name": e["pod"], "namespace": svc["namespace"],
                                   "uid": _uid("pod", svc["namespace"], e["pod"])}
            endpoints.append(ep)
        slice_ports = []
        for p in svc["ports"]:
            key = (p["name"], p["protocol"])
            nums = sorted({e["ports"][key] for e in eps if key in e["ports"]})
            # Pods that all agree give one port entry; the lab's pods always do.
            port = {"name": p["name"] or ""}
            port["port"] = nums[0] if nums else (p["targetPort"] if isinstance(p["targetPort"], int) else None)
            port["protocol"] = p["protocol"]
            slice_ports.append(port)
        objs.append({
            "addressType": "IPv4",
            "apiVersion": "discovery.k8s.io/v1",
            # kubectl prints `endpoints: null` for an empty slice; an empty list says
            # the same thing and every YAML loader reads it as a list.
            "endpoints": endpoints,
            "kind": "EndpointSlice",
            "metadata": {
                "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": CREATED},
                "creationTimestamp": CREATED,
                "generateName": svc["name"] + "-",
                "generation": 1,
                "labels": {
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                    "kubernetes.io/service-name": svc["name"],
                },
                "name": "%s-%s" % (svc["name"], suffix),
                "namespace": svc["namespace"],
                "ownerReferences": [{"apiVersion": "v1", "blockOwnerDeletion": True, "controller": True,
                                     "kind": "Service", "name": svc["name"], "uid": uid}],
                "resourceVersion": str(rv),
                "uid": _uid("slice", svc["namespace"], svc["name"]),
            },
            "ports": slice_ports,
        })
    return objs


def cluster_yaml(desc):
    head = ("# Generated by netns-lab/lib/labmodel.py from the lab's description.\n"
            "# A multi-document stream: the ferry.dev/v1 ClusterConfig, then each Service\n"
            "# and its EndpointSlice as kubectl prints them.\n")
    return head + "".join("---\n" + to_yaml(o) for o in kubernetes_objects(desc))


# ---------------------------------------------------------------------------
# Load balancer targets for lb-health.sh
# ---------------------------------------------------------------------------

def lb_targets(desc):
    """One line per LoadBalancer IP: `ip port policy hcport nodeIP,... localNodeIP,...`.
    `localNodeIP` lists the nodes that hold a ready endpoint: what the cloud LB's
    health check would find when kube-proxy (not running in the kernel modes)
    served healthCheckNodePort."""
    addr = {n["name"]: n["address"] for n in desc["nodes"]}
    all_nodes = ",".join(n["address"] for n in desc["nodes"])
    lines = []
    for sp in service_ports(desc):
        for ip in sp["loadBalancerIPs"]:
            local = sorted({addr[e["node"]] for e in sp["endpoints"] if e["node"] in addr},
                           key=lambda a: ipaddress.ip_address(a))
            lines.append("%s %d %s %s %s %s" % (
                ip, sp["port"], sp["externalTrafficPolicy"], sp["healthCheckNodePort"] or 0,
                all_nodes, ",".join(local) or "-"))
    return "".join(l + "\n" for l in lines)


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("describe", help="print the lab's default description (JSON)")
    d.add_argument("--nodes", type=int, default=3)
    d.add_argument("--placement", default="2,1",
                   help="web pods per node, comma-separated (node1,node2,...); missing = 0")
    for name, h in (("yaml", "kubectl-style control-plane file"),
                    ("lb-targets", "LoadBalancer IPs and their health targets"),
                    ("pods", "pods as `name node ip` lines"),
                    ("ports", "service ports and endpoints as JSON lines")):
        p = sub.add_parser(name, help=h)
        p.add_argument("description")
    a = ap.parse_args(argv)
    if a.cmd == "describe":
        placement = tuple(int(x) for x in a.placement.split(",") if x != "")
        json.dump(default_description(a.nodes, placement), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    desc = load(a.description)
    if a.cmd == "yaml":
        sys.stdout.write(cluster_yaml(desc))
    elif a.cmd == "lb-targets":
        sys.stdout.write(lb_targets(desc))
    elif a.cmd == "pods":
        for p in desc["pods"]:
            sys.stdout.write("%s %s %s\n" % (p["name"], p["node"], p["ip"]))
    elif a.cmd == "ports":
        for sp in service_ports(desc):
            sys.stdout.write(json.dumps(sp) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
