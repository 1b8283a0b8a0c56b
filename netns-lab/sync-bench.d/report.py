#!/usr/bin/env python3
"""Summarise a netns-lab/sync-bench results directory as Markdown.

Usage: report.py RESULTS_DIR [--docs docs/benchmarks.md]

Writes RESULTS_DIR/summary.md and, with --docs, replaces the text between the
`<!-- sync-bench:begin -->` and `<!-- sync-bench:end -->` markers of the
"## Control-plane sync" section (creating the section, or the file, when missing).
Other sections of the file are left as they are.
"""

import glob
import json
import os
import statistics
import sys

BEGIN = "<!-- sync-bench:begin -->"
END = "<!-- sync-bench:end -->"
HEADING = "## Control-plane sync"


def load(path):
    with open(path) as f:
        return json.load(f)


def med(values):
    """Median of the numeric runs; a timeout or failure anywhere is reported as such."""
    bad = [v for v in values if not _num(v)]
    if bad:
        return bad[0]
    return statistics.median(float(v) for v in values) if values else None


def _num(v):
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


TIMEOUT_S = 0  # set from machine.json: a timed-out run took at least this long


class Note(str):
    """A cell that is text, not a time."""


class Marked:
    """A time from fewer runs than asked."""

    def __init__(self, value, runs):
        self.value, self.runs = value, runs


def ms(v):
    if isinstance(v, Marked):
        return "%s (%d run%s)" % (ms(v.value), v.runs, "" if v.runs == 1 else "s")
    if v is None:
        return "–"
    if v == "timeout":
        return "> %s (timed out)" % ms(TIMEOUT_S * 1000) if TIMEOUT_S else "timed out"
    if not _num(v):
        return str(v)
    v = float(v)
    if v >= 10000:
        return "%.1f s" % (v / 1000)
    if v >= 100:
        return "%.0f ms" % v
    if v >= 10:
        return "%.1f ms" % v
    return "%.2f ms" % v


def mib(b):
    return "%.1f MiB" % (b / 1048576.0)


def ratio(kernel, ferry):
    if isinstance(kernel, Marked):
        kernel = kernel.value
    if kernel == "timeout" and TIMEOUT_S and _num(ferry):
        return "> %.0f×" % (TIMEOUT_S * 1000.0 / float(ferry))
    if not (_num(kernel) and _num(ferry)) or float(ferry) <= 0:
        return "–"
    r = float(kernel) / float(ferry)
    return "%.0f×" % r if r >= 10 else "%.1f×" % r


def summarize(results):
    global TIMEOUT_S
    machine = load(os.path.join(results, "machine.json"))
    TIMEOUT_S = int(machine.get("timeoutSeconds", 0))
    sizes = [int(x) for x in machine["sizes"].split()]
    tables = [int(m) for m in machine["tableSizes"].split()]
    formats = machine["formats"].split()
    default_m = 16381 if 16381 in tables else tables[0]
    out = []
    end_load = os.path.join(results, "load-average-at-end.txt")
    out.append("Run `%s`: kernel %s, %d CPUs, %s, %s; %s repetitions, medians. "
               "Load average (1, 5, 15 min) %s at the start, %s at the end: other work shared the machine."
               % (machine["timestamp"], machine["kernel"], int(machine["cpus"]), machine["iptables"],
                  machine["nft"], machine["repetitions"], machine.get("loadAverageAtStart", "?"),
                  open(end_load).read().strip() if os.path.exists(end_load) else "?"))
    out.append("")

    def ferry(size, fmt):
        p = os.path.join(results, "ferry-%d-%s.json" % (size, fmt))
        return load(p) if os.path.exists(p) else None

    def build(f, m, mode):
        for b in f["builds"]:
            if b["tableSize"] == m and b["mode"] == mode:
                return b
        return None

    reps = int(machine["repetitions"])

    def kernel(size, tool):
        """(full, partial) medians; fewer runs than asked are marked, a skipped tool says so."""
        p = os.path.join(results, "kernel-%d-%s.json" % (size, tool))
        if not os.path.exists(p):
            return None, None
        k = load(p)
        if k.get("skipped"):
            return Note("not run¹"), Note("not run¹")
        runs = k["runs"]
        full = med([r["fullMs"] for r in runs])
        partials = [r["partialMs"] for r in runs if r["partialMs"] not in ("null", None)]
        if not partials:
            return Marked(full, len(runs)) if len(runs) < reps and full != "timeout" else full, \
                Note("not measured (no full load)")
        partial = med(partials)
        if 0 < len(runs) < reps:
            return Marked(full, len(runs)), Marked(partial, len(runs))
        return full, partial

    def faster(a, b):
        """The faster of two kernel times (a timeout or a missing one loses): the ratio is
        taken against the better iptables backend, the conservative comparison."""
        va = a.value if isinstance(a, Marked) else a
        vb = b.value if isinstance(b, Marked) else b
        if not _num(va):
            return b if _num(vb) or vb == "timeout" else a
        if not _num(vb):
            return a
        return a if float(va) <= float(vb) else b

    def fmt_cols(title):
        return " | ".join("%s %s" % (title, f.upper()) for f in formats)

    # Full load.
    out.append("**Full load** — Ferry: read, parse and validate the file, then build the table "
               "(Maglev M=%d, table fills in parallel); kernel: the full rule set into an empty "
               "namespace. Ratio: the faster iptables backend's time ÷ Ferry's." % default_m)
    out.append("")
    out.append("| Services | endpoints | %s | iptables-nft restore | iptables-legacy restore | nft -f | %s |"
               % (fmt_cols("Ferry"), fmt_cols("÷")))
    out.append("|---:|---:|" + "---:|" * (2 * len(formats) + 3))
    for size in sizes:
        fs = [ferry(size, f) for f in formats]
        if not any(fs):
            continue
        loads = [build(f, default_m, "parallel")["firstLoadMs"] if f else None for f in fs]
        ipt, leg, nft = kernel(size, "iptables-nft"), kernel(size, "iptables-legacy"), kernel(size, "nft")
        endpoints = next(f for f in fs if f)["counts"]["endpoints"]
        out.append("| %d | %d | %s | %s | %s | %s | %s |" % (
            size, endpoints, " | ".join(ms(v) for v in loads), ms(ipt[0]), ms(leg[0]), ms(nft[0]),
            " | ".join(ratio(faster(ipt[0], leg[0]), v) for v in loads)))
    out.append("")

    # One-endpoint change.
    out.append("**One-endpoint change** — Ferry: `ServiceSync.reload`, the agent's path, from the file "
               "written to the next table ready to publish (read, parse, validate, table update, diff); "
               "\"table update\" is the part after parsing. Kernel: the partial sync kube-proxy would apply. "
               "Ratio: the faster iptables backend's partial sync ÷ Ferry's reload.")
    out.append("")
    out.append("| Services | %s | %s | iptables-nft partial | iptables-legacy partial | nft partial | %s |"
               % (fmt_cols("Ferry"), fmt_cols("table update"), fmt_cols("÷")))
    out.append("|---:|" + "---:|" * (3 * len(formats) + 3))
    for size in sizes:
        fs = [ferry(size, f) for f in formats]
        if not any(fs):
            continue
        changes = [f["oneEndpointChange"]["medianReloadMs"] if f else None for f in fs]
        updates = [f["oneEndpointChange"]["medianTableUpdateMs"] if f else None for f in fs]
        ipt, leg, nft = kernel(size, "iptables-nft"), kernel(size, "iptables-legacy"), kernel(size, "nft")
        out.append("| %d | %s | %s | %s | %s | %s | %s |" % (
            size, " | ".join(ms(v) for v in changes), " | ".join(ms(v) for v in updates),
            ms(ipt[1]), ms(leg[1]), ms(nft[1]), " | ".join(ratio(faster(ipt[1], leg[1]), v) for v in changes)))
    out.append("")

    # First load by table size.
    out.append("**Ferry's first load by Maglev table size** — parse is read + parse + validate; "
               "heap is what the built table holds (malloc_info before and after).")
    out.append("")
    out.append("| Services | M | %s | build, serial | build, parallel | Maglev tables | Maglev memory | table heap |"
               % " | ".join("parse %s" % f.upper() for f in formats))
    out.append("|---:|---:|" + "---:|" * (len(formats) + 5))
    for size in sizes:
        fs = [ferry(size, f) for f in formats]
        ref = next((f for f in fs if f), None)
        if not ref:
            continue
        for m in tables:
            s, p = build(ref, m, "serial"), build(ref, m, "parallel")
            if not s:
                continue
            out.append("| %d | %d | %s | %s | %s | %d | %s | %s |" % (
                size, m, " | ".join(ms(f["parse"]["medianMs"]) if f else "–" for f in fs),
                ms(s["medianBuildMs"]), ms(p["medianBuildMs"]) if p else "–",
                s["maglevTablesBuilt"], mib(s["maglevBytes"]), mib(s["heapBytes"])))
    out.append("")

    # Reload phases.
    out.append("**Ferry's one-endpoint change by phase** (M=%d, the agent's serial executor)" % default_m)
    out.append("")
    out.append("| Services | input | read+parse+validate | table update | diff + purge list | total | Maglev tables built / reused |")
    out.append("|---:|---|---:|---:|---:|---:|---:|")
    for size in sizes:
        for fmt in formats:
            f = ferry(size, fmt)
            if not f:
                continue
            c = f["oneEndpointChange"]
            out.append("| %d | %s | %s | %s | %s | %s | %d / %d |" % (
                size, fmt.upper(), ms(c["medianReadParseValidateMs"]), ms(c["medianBuildMs"]),
                ms(c["medianDiffMs"]), ms(c["medianReloadMs"]), c["maglevTablesBuilt"], c["maglevTablesReused"]))
    out.append("")

    skipped = []
    for path in sorted(glob.glob(os.path.join(results, "kernel-*.json"))):
        k = load(path)
        if k.get("skipped"):
            skipped.append("%s at %s Services (%s)" % (k["tool"], os.path.basename(path).split("-")[1], k["skipped"]))
    if skipped:
        out.append("¹ Not run: " + "; ".join(skipped) + ". A larger rule set only takes longer.")
        out.append("")

    out.append("**kube-proxy rule volume** (what the kernel tools were given)")
    out.append("")
    out.append("| Services | iptables nat chains | iptables nat rules | restore input | partial input "
               "| nft chains | nft rules | nft map/set elements | nft input | nft partial input |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        p = os.path.join(results, "rules-%d.json" % size)
        if not os.path.exists(p):
            continue
        r = load(p)
        files = r["files"]
        out.append("| %d | %d | %d | %s | %s | %d | %d | %d | %s | %s |" % (
            size, r["iptables"]["natChains"], r["iptables"]["natRules"],
            mib(files["iptables-full.rules"]["bytes"]), mib(files["iptables-partial.rules"]["bytes"]),
            r["nft"]["chains"], r["nft"]["rules"], r["nft"]["elements"],
            mib(files["nft-full.nft"]["bytes"]), mib(files["nft-partial.nft"]["bytes"])))
    return "\n".join(out) + "\n"


def update_docs(path, table):
    block = BEGIN + "\n" + table + END + "\n"
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block.rstrip("\n") + tail
    elif HEADING in text:
        # Append at the end of the section: before the next "## " heading, or at the end.
        start = text.index(HEADING)
        nxt = text.find("\n## ", start + len(HEADING))
        if nxt < 0:
            text = text.rstrip("\n") + "\n\n" + block
        else:
            text = text[:nxt].rstrip("\n") + "\n\n" + block + text[nxt:]
    else:
        text = text.rstrip("\n") + "\n\n" + HEADING + "\n\n" + block
    with open(path, "w") as f:
        f.write(text)


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    results = argv[0]
    table = summarize(results)
    with open(os.path.join(results, "summary.md"), "w") as f:
        f.write(table)
    sys.stdout.write(table)
    if len(argv) >= 3 and argv[1] == "--docs":
        update_docs(argv[2], table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
