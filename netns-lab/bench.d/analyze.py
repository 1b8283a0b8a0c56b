#!/usr/bin/env python3
"""Summaries of the datapath benchmark's raw samples.

    analyze.py summarize RESULTS_DIR [--previous OLD/results.json]
        samples.jsonl -> results.json (every raw sample, medians, spreads, ratios to
        kernel nftables, the goals), table.md and chart.svg
    analyze.py relabel SAMPLES OLD_VARIANT NEW_VARIANT
        renames the variant of the last latency samples written (scale steps)
    analyze.py forwarded-delta STATS_JSON_BEFORE STATS_JSON_AFTER
        packets the agent forwarded between two `ferry stats --json` answers

Standard library only. Ratios are taken per round (each datapath against kernel
nftables of the same round, which ran minutes apart at most), then the median and
the min-max of those per-round ratios are reported: interleaved rounds pair up, so
slow drifts of a shared machine cancel instead of widening every bar.
"""

import json
import math
import os
import statistics
import sys

REFERENCE = "nftables"
ORDER = ["forward", "iptables", "nftables", "ferry", "ferry-busypoll", "ferry-v2", "ferry-v3"]
COLORS = {"forward": "#7f7f7f", "iptables": "#1f77b4", "nftables": "#2ca02c",
          "ferry": "#d62728", "ferry-busypoll": "#8c564b", "ferry-v2": "#ff7f0e", "ferry-v3": "#9467bd"}
LABELS = {"forward": "kernel forward (no NAT)", "iptables": "kernel iptables DNAT",
          "nftables": "kernel nftables DNAT", "ferry": "Ferry (defaults)",
          "ferry-busypoll": "Ferry (--busy-poll 50)", "ferry-v2": "Ferry (--ring v2)", "ferry-v3": "Ferry (--ring v3)"}

# (test, variant, metric, row label, higher is better)
ROWS = [
    ("pps", "1flows", "pps", "pps, 1 flow", True),
    ("pps", "65536flows", "pps", "pps, 65,536 flows", True),
    ("pps", "65536flows", "cpu_per_packet", "CPU ns per packet, 65,536 flows", False),
    ("latency", "udp-light", "p50", "UDP latency p50, light", False),
    ("latency", "udp-light", "p99", "UDP latency p99, light", False),
    ("latency", "udp-light", "p99.9", "UDP latency p99.9, light", False),
    ("latency", "tcp-light", "p50", "TCP latency p50, light", False),
    ("latency", "tcp-light", "p99", "TCP latency p99, light", False),
    ("latency", "udp-loaded", "p50", "UDP latency p50, loaded", False),
    ("latency", "udp-loaded", "p99", "UDP latency p99, loaded", False),
    ("latency", "tcp-loaded", "p50", "TCP latency p50, loaded", False),
    ("throughput", "1stream", "gbps", "TCP throughput, 1 stream", True),
    ("throughput", "4stream", "gbps", "TCP throughput, 4 streams", True),
    ("connrate", "nodeport", "conn_per_s", "new connections/s, NodePort", True),
]
SCALE_STEPS = ["1", "1000", "10000", "ct1m"]
for _s in SCALE_STEPS:
    _name = {"1": "1 Service", "1000": "1k Services", "10000": "10k Services", "ct1m": "1M conntrack"}[_s]
    ROWS += [
        ("pps", "scale-" + _s, "pps", "pps, %s" % _name, True),
        ("latency", "scale-" + _s, "p50", "UDP p50, %s" % _name, False),
        ("latency", "scale-" + _s, "p99", "UDP p99, %s" % _name, False),
        ("scale", "scale-" + _s, "agent_rss_mib", "agent RSS MiB, %s" % _name, False),
    ]
CHART_ROWS = [r for r in ROWS if r[2] in ("pps", "p50", "gbps", "conn_per_s", "cpu_per_packet")
              and not (r[1].startswith("scale-") and r[2] == "p50" and r[1] not in ("scale-10000", "scale-ct1m"))]


def load_samples(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def group(samples):
    """{(test, variant, metric): {datapath: {round: value}}}"""
    g = {}
    for s in samples:
        g.setdefault((s["test"], s["variant"], s["metric"]), {}).setdefault(s["datapath"], {})[s["round"]] = s["value"]
    return g


def stats(values):
    v = sorted(values)
    med = statistics.median(v)
    return {"median": med, "min": v[0], "max": v[-1], "n": len(v),
            "spread": (v[-1] - v[0]) / med if med else None}


def summarize_groups(g):
    out = []
    for (test, variant, metric), by_dp in sorted(g.items()):
        ref = by_dp.get(REFERENCE, {})
        for dp, rounds in by_dp.items():
            row = {"test": test, "variant": variant, "metric": metric, "datapath": dp,
                   "values": [rounds[r] for r in sorted(rounds)]}
            row.update(stats(row["values"]))
            ratios = [rounds[r] / ref[r] for r in sorted(rounds) if r in ref and ref[r]]
            if ratios:
                row["ratio_to_nftables"] = stats(ratios)
            out.append(row)
    return out


def find(summary, test, variant, metric, dp):
    for r in summary:
        if (r["test"], r["variant"], r["metric"], r["datapath"]) == (test, variant, metric, dp):
            return r
    return None


def goals(summary, g):
    out = []

    def ratio_goal(name, test, variant, metric, dp, ref_dp, op, bound):
        a, b = find(summary, test, variant, metric, dp), find(summary, test, variant, metric, ref_dp)
        if not a or not b or not b["median"]:
            return
        r = a["median"] / b["median"]
        ok = r >= bound if op == ">=" else r <= bound
        out.append({"goal": name, "datapath": dp, "against": ref_dp, "ratio": r, "bound": "%s %.1fx" % (op, bound),
                    "met": ok})

    for dp in ("ferry", "ferry-busypoll", "ferry-v2", "ferry-v3"):
        ratio_goal("pps at 65,536 flows >= 1.0x kernel nftables", "pps", "65536flows", "pps", dp, "nftables", ">=", 1.0)
        ratio_goal("UDP latency p50 <= 2x nftables (light)", "latency", "udp-light", "p50", dp, "nftables", "<=", 2.0)
        ratio_goal("TCP latency p50 <= 2x nftables (light)", "latency", "tcp-light", "p50", dp, "nftables", "<=", 2.0)
        ratio_goal("UDP latency p50 <= 2x nftables (loaded)", "latency", "udp-loaded", "p50", dp, "nftables", "<=", 2.0)
        ratio_goal("TCP latency p50 <= 2x nftables (loaded)", "latency", "tcp-loaded", "p50", dp, "nftables", "<=", 2.0)
        ratio_goal("TCP throughput 1 stream >= 0.5x kernel forwarding", "throughput", "1stream", "gbps", dp, "forward", ">=", 0.5)
        ratio_goal("TCP throughput 1 stream >= 0.5x kernel nftables", "throughput", "1stream", "gbps", dp, "nftables", ">=", 0.5)
        thread = find(summary, "alloc", "alloc-65536flows-thread", "allocations", dp)
        if thread:
            out.append({"goal": "0 allocations per forwarded packet (packet thread, malloc uprobes)", "datapath": dp,
                        "value": thread["max"], "met": thread["max"] == 0})
    return out


# Diagnostics, not figures: how many ping-pongs sockperf completed depends on the latency
# itself, and allocations are 0 or not (a goal of their own).
NOT_COMPARED_METRICS = ("observations", "allocations")


def median_inside(a, b):
    """One run's median lies within the other's min-max over its rounds."""
    return a["min"] <= b["median"] <= a["max"] or b["min"] <= a["median"] <= b["max"]


def ranges_overlap(a, b):
    """The two runs' min-max ranges over their rounds have a point in common."""
    return a["min"] <= b["max"] and b["min"] <= a["max"]


def compare_previous(summary, previous):
    """Do two runs agree within their spread? Each figure is compared twice: strictly
    (one run's median lies within the other's min-max) and loosely (the two min-max
    ranges overlap); with three rounds a min-max is a narrow picture of the spread, so
    both are reported. Done for the raw figures (packets/s, microseconds, ...) of every
    datapath, and for each datapath's per-round ratios to kernel nftables, which is
    what the tables and the goals quote."""
    out = {"previous": previous.get("machine", {}).get("started"),
           "previous_commit": previous.get("machine", {}).get("ferry_commit")}
    lists = {k: [] for k in ("agree", "disagreeing", "overlap_disagreeing",
                             "ratios_agree", "ratios_disagreeing", "ratios_overlap_disagreeing")}
    prev = {(r["test"], r["variant"], r["metric"], r["datapath"]): r for r in previous.get("summary", [])}
    for r in summary:
        p = prev.get((r["test"], r["variant"], r["metric"], r["datapath"]))
        if not p or r["metric"] in NOT_COMPARED_METRICS or r["n"] < 2 or p["n"] < 2:
            continue
        name = "%s/%s/%s %s" % (r["test"], r["variant"], r["metric"], r["datapath"])
        line = "%s: %.4g (%.4g–%.4g) vs %.4g (%.4g–%.4g)" % (name, r["median"], r["min"], r["max"],
                                                             p["median"], p["min"], p["max"])
        lists["agree" if median_inside(r, p) else "disagreeing"].append(line)
        if not ranges_overlap(r, p):
            lists["overlap_disagreeing"].append(line)
        rr, pr = r.get("ratio_to_nftables"), p.get("ratio_to_nftables")
        if rr and pr and rr["n"] >= 2 and pr["n"] >= 2:
            line = "%s: ×%.2f (%.2f–%.2f) vs ×%.2f (%.2f–%.2f)" % (name, rr["median"], rr["min"], rr["max"],
                                                                   pr["median"], pr["min"], pr["max"])
            lists["ratios_agree" if median_inside(rr, pr) else "ratios_disagreeing"].append(line)
            if not ranges_overlap(rr, pr):
                lists["ratios_overlap_disagreeing"].append(line)
    n = len(lists["agree"]) + len(lists["disagreeing"])
    nr = len(lists["ratios_agree"]) + len(lists["ratios_disagreeing"])
    out.update({"compared": n, "agree": len(lists["agree"]), "disagree": len(lists["disagreeing"]),
                "disagreeing": lists["disagreeing"], "overlap_disagree": len(lists["overlap_disagreeing"]),
                "overlap_disagreeing": lists["overlap_disagreeing"],
                "ratios_compared": nr, "ratios_agree": len(lists["ratios_agree"]),
                "ratios_disagree": len(lists["ratios_disagreeing"]), "ratios_disagreeing": lists["ratios_disagreeing"],
                "ratios_overlap_disagree": len(lists["ratios_overlap_disagreeing"]),
                "ratios_overlap_disagreeing": lists["ratios_overlap_disagreeing"]})
    return out


def fmt(v, metric):
    if v is None:
        return "-"
    if metric == "pps":
        return "%.0fk" % (v / 1e3) if v < 1e6 else "%.3fM" % (v / 1e6)
    if metric in ("p50", "p99", "p99.9"):
        return "%.1f" % v if v < 100 else "%.0f" % v
    if metric == "gbps":
        return "%.2f" % v
    if metric in ("conn_per_s", "cpu_per_packet", "allocations", "conntrack_live", "setup_s"):
        return "%.0f" % v
    return "%.4g" % v


UNITS = {"pps": "packets/s", "cpu_per_packet": "ns", "p50": "µs", "p99": "µs", "p99.9": "µs",
         "gbps": "Gbit/s", "conn_per_s": "conn/s", "agent_rss_mib": "MiB"}


def table_md(results, dps):
    m = results["machine"]
    lines = ["<!-- generated by netns-lab/bench.d/analyze.py from %s -->" % results["dir"], ""]
    lines.append("Run %s on %s, %s CPUs (%s), %.0f GiB; kernel %s; %s. Load average at start %s, at end %s. "
                 "Ferry at %s. %d round(s) of %d s per measurement%s." % (
                     m.get("started", "?"), m.get("host", "this machine"), m.get("cpus"), m.get("cpu"),
                     m.get("mem_kib", 0) / 1048576, m.get("kernel"), m.get("iptables"),
                     " ".join(m.get("loadavg", [])), " ".join(results.get("machine_end", {}).get("loadavg", [])),
                     m.get("ferry_commit", "?"), m.get("rounds", 0), m.get("duration_s", 0), " (quick)" if m.get("quick") else ""))
    phase = results.get("machine_end", {}).get("phase", "")
    if "interrupted" in phase:
        lines.append("")
        lines.append("**This run was %s.** Rounds after the signal are missing; each cell's count of "
                     "rounds is in results.json." % phase.split(" (")[0].replace("end (", "").strip()
                     if False else "**This run did not finish:** %s. Figures with fewer rounds are in "
                     "results.json (`n`)." % phase[phase.find("(") + 1:].rstrip(")"))
    lines.append("")
    lines.append("Each cell: median over rounds (min–max), then × the median per-round ratio to kernel nftables. "
                 "↑ higher is better, ↓ lower is better.")
    lines.append("")
    head = "| measurement | unit | " + " | ".join(LABELS.get(d, d) for d in dps) + " |"
    lines += [head, "|" + "---|" * (len(dps) + 2)]
    for test, variant, metric, label, higher in ROWS:
        cells, any_ = [], False
        for dp in dps:
            r = find(results["summary"], test, variant, metric, dp)
            if not r:
                cells.append("-")
                continue
            any_ = True
            c = "%s (%s–%s)" % (fmt(r["median"], metric), fmt(r["min"], metric), fmt(r["max"], metric)) \
                if r["n"] > 1 else fmt(r["median"], metric)
            if dp != REFERENCE and "ratio_to_nftables" in r:
                c += " ×%.2f" % r["ratio_to_nftables"]["median"]
            cells.append(c)
        if any_:
            lines.append("| %s %s | %s | %s |" % (label, "↑" if higher else "↓", UNITS.get(metric, ""), " | ".join(cells)))
    ct = [r for r in results["summary"] if r["metric"] == "conntrack_live"]
    if ct:
        lines += ["", "Conntrack entries live in the 1M step: " + ", ".join(
            "%s %s" % (r["datapath"], fmt(r["median"], "conntrack_live")) for r in ct) + "."]
    al = [r for r in results["summary"] if r["test"] == "alloc"]
    if al:
        lines += ["", "Allocation calls (libc malloc/calloc/realloc/posix_memalign/aligned_alloc uprobes) "
                      "while forwarding 65,536 flows at full rate:"]
        for r in al:
            fw = [s["extra"].get("forwarded") for s in results["samples"]
                  if s["test"] == "alloc" and s["variant"] == r["variant"] and s["datapath"] == r["datapath"]]
            lines.append("- %s, %s: %s calls while it forwarded %s packets" % (
                r["datapath"], r["variant"].rsplit("-", 1)[1], fmt(r["max"], "allocations"),
                ", ".join(str(x) for x in fw)))
    if results.get("goals"):
        lines += ["", "| goal | datapath | measured | met |", "|---|---|---|---|"]
        for gl in results["goals"]:
            meas = ("%.2f× %s" % (gl["ratio"], gl["against"])) if "ratio" in gl else "%d calls" % gl["value"]
            lines.append("| %s | %s | %s | %s |" % (gl["goal"], gl["datapath"], meas, "yes" if gl["met"] else "**no**"))
    cmp_ = results.get("previous_comparison")
    if cmp_:
        other = cmp_.get("previous_commit") and cmp_.get("previous_commit") != m.get("ferry_commit")
        lines += ["", "Against the previous full run (%s%s). Strict: one run's median lies within the other's "
                      "min–max; loose: the two min–max ranges overlap." % (
            cmp_.get("previous"),
            ", Ferry at %s, this run at %s: Ferry's rows differ by code, not only by noise"
            % (cmp_.get("previous_commit"), m.get("ferry_commit")) if other else "")]

        def listing(items):
            return (": " + "; ".join(items[:12]) + ("; …" if len(items) > 12 else "")) if items else ""
        if "overlap_disagree" in cmp_:
            lines.append("- figures: %d of %d agree strictly, %d of %d loosely; apart even loosely%s." % (
                cmp_["agree"], cmp_["compared"], cmp_["compared"] - cmp_["overlap_disagree"], cmp_["compared"],
                listing(cmp_["overlap_disagreeing"]) or ": none"))
            lines.append("- ratios to kernel nftables: %d of %d agree strictly, %d of %d loosely; apart even loosely%s." % (
                cmp_["ratios_agree"], cmp_["ratios_compared"], cmp_["ratios_compared"] - cmp_["ratios_overlap_disagree"],
                cmp_["ratios_compared"], listing(cmp_["ratios_overlap_disagreeing"]) or ": none"))
        else:
            lines.append("- figures: %d agree, %d do not%s." % (cmp_["agree"], cmp_["disagree"], listing(cmp_["disagreeing"])))
    return "\n".join(lines) + "\n"


def chart_svg(results, dps):
    """Horizontal bars of per-round ratios to kernel nftables (median) with min–max
    whiskers, on a log2 axis centred on 1 (nftables itself)."""
    bar_dps = [d for d in dps if d != REFERENCE]
    rows = []
    for test, variant, metric, label, higher in CHART_ROWS:
        bars = []
        for dp in bar_dps:
            r = find(results["summary"], test, variant, metric, dp)
            if r and "ratio_to_nftables" in r:
                bars.append((dp, r["ratio_to_nftables"]))
        if bars:
            rows.append((label + (" ↑" if higher else " ↓"), bars))
    bh, gap, left, right, top = 9, 8, 250, 40, 62
    width = 900
    plot_w = width - left - right
    lo, hi = -6, 6  # log2 range: 1/64 .. 64
    height = top + sum(len(b) * bh + gap for _, b in rows) + 50

    def x(ratio):
        l2 = max(lo, min(hi, math.log2(ratio))) if ratio > 0 else lo
        return left + (l2 - lo) / (hi - lo) * plot_w

    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
         'font-family="sans-serif" font-size="11">' % (width, height, width, height),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="10" y="18" font-size="14" font-weight="bold">Ferry vs the kernel: ratio to kernel nftables '
         'DNAT (1 = same; median of per-round ratios, whiskers min–max)</text>',
         '<text x="10" y="34" fill="#555">%s; %s CPUs, kernel %s; %d round(s). ↑: higher is better, ↓: lower is better. '
         'Log scale.</text>' % (results["machine"].get("started", ""), results["machine"].get("cpus"),
                                results["machine"].get("kernel"), results["machine"].get("rounds", 0))]
    lx = 10
    for dp in bar_dps:
        o.append('<rect x="%d" y="42" width="10" height="10" fill="%s"/>' % (lx, COLORS.get(dp, "#000")))
        o.append('<text x="%d" y="51">%s</text>' % (lx + 14, LABELS.get(dp, dp)))
        lx += 14 + 7 * len(LABELS.get(dp, dp)) + 16
    y = top
    axis_bottom = height - 40
    for e in range(lo, hi + 1):
        xx = x(2.0 ** e)
        o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="%s"/>' % (
            xx, top - 4, xx, axis_bottom, "#000" if e == 0 else "#ddd", "1.2" if e == 0 else "0.6"))
        lab = ("%g" % (2.0 ** e)) if e >= 0 else "1/%d" % (2 ** -e)
        o.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s×</text>' % (xx, axis_bottom + 14, lab))
    for label, bars in rows:
        gh = len(bars) * bh
        o.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (left - 8, y + gh / 2 + 4, label))
        for dp, rs in bars:
            x0, x1 = x(1.0), x(rs["median"])
            o.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: ×%.3f (%.3f–%.3f)</title></rect>'
                     % (min(x0, x1), y, max(abs(x1 - x0), 1), bh - 1, COLORS.get(dp, "#000"), LABELS.get(dp, dp),
                        rs["median"], rs["min"], rs["max"]))
            # The value beside the bar, past its whisker (bars clamp at 1/64 and 64).
            if rs["median"] >= 1:
                o.append('<text x="%.1f" y="%d" font-size="8" fill="#333">×%.2g</text>'
                         % (x(rs["max"]) + 3, y + bh - 2, rs["median"]))
            elif rs["min"] < 2.0 ** lo:
                # Clamped at the left edge: the figure goes right of the 1× line instead.
                o.append('<text x="%.1f" y="%d" font-size="8" fill="#333">×%.2g (off scale)</text>'
                         % (x(1.0) + 3, y + bh - 2, rs["median"]))
            else:
                o.append('<text x="%.1f" y="%d" font-size="8" fill="#333" text-anchor="end">×%.2g</text>'
                         % (x(rs["min"]) - 3, y + bh - 2, rs["median"]))
            if rs["n"] > 1:
                a, b, cy = x(rs["min"]), x(rs["max"]), y + (bh - 1) / 2
                o.append('<path d="M%.1f %.1fH%.1fM%.1f %.1fV%.1fM%.1f %.1fV%.1f" stroke="#000" stroke-width="1" fill="none"/>'
                         % (a, cy, b, a, cy - 3, cy + 3, b, cy - 3, cy + 3))
            y += bh
        y += gap
    o.append('<text x="%d" y="%d" fill="#555">ratio to kernel nftables DNAT (kube-proxy nftables mode)</text>'
             % (left, axis_bottom + 30))
    o.append("</svg>")
    return "\n".join(o) + "\n"


def summarize(d, previous):
    samples = load_samples(os.path.join(d, "samples.jsonl"))
    machine = {}
    p = os.path.join(d, "machine-start.json")
    if os.path.exists(p):
        machine = json.load(open(p))
    machine.setdefault("started", os.path.basename(os.path.normpath(d)))
    end = {}
    p = os.path.join(d, "machine-end.json")
    if os.path.exists(p):
        end = json.load(open(p))
    g = group(samples)
    summary = summarize_groups(g)
    results = {"dir": os.path.basename(os.path.normpath(d)), "machine": machine, "machine_end": end,
               "samples": samples, "summary": summary, "goals": goals(summary, g)}
    profiles = sorted(f for f in os.listdir(d) if f.startswith("profile-") and f.endswith(".txt"))
    results["profiles"] = profiles
    if previous and os.path.exists(previous):
        results["previous_comparison"] = compare_previous(summary, json.load(open(previous)))
    dps = [x for x in ORDER if any(s["datapath"] == x for s in samples)]
    dps += sorted({s["datapath"] for s in samples} - set(dps))
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(d, "table.md"), "w") as f:
        f.write(table_md(results, dps))
    with open(os.path.join(d, "chart.svg"), "w") as f:
        f.write(chart_svg(results, dps))


def relabel(path, old, new):
    lines = open(path).read().splitlines()
    # Only the trailing run of latency samples with the old variant (just written).
    i = len(lines) - 1
    while i >= 0:
        s = json.loads(lines[i])
        if s["test"] != "latency" or s["variant"] != old:
            break
        s["variant"] = new
        lines[i] = json.dumps(s, separators=(",", ":"))
        i -= 1
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def forwarded_delta(a, b):
    try:
        print(int(json.loads(b).get("forwarded", 0)) - int(json.loads(a).get("forwarded", 0)))
    except (ValueError, TypeError):
        print(0)


def main(argv):
    if not argv:
        sys.exit(__doc__)
    cmd = argv[0]
    if cmd == "summarize":
        prev = None
        if "--previous" in argv:
            prev = argv[argv.index("--previous") + 1]
        summarize(argv[1], prev)
    elif cmd == "relabel":
        relabel(argv[1], argv[2], argv[3])
    elif cmd == "forwarded-delta":
        forwarded_delta(argv[1], argv[2])
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
