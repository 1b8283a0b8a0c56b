# shellcheck shell=bash
# Measurements. Each prints nothing and appends JSON lines to $SAMPLES through
# emit(); ROUND and DP are set by the caller. Sourced by netns-lab/bench.

# emit TEST VARIANT METRIC VALUE UNIT [EXTRA_JSON]
emit() {
    printf '{"round":%d,"datapath":"%s","test":"%s","variant":"%s","metric":"%s","value":%s,"unit":"%s","extra":%s}\n' \
        "$ROUND" "$DP" "$1" "$2" "$3" "$4" "$5" "${6:-{\}}" >>"$SAMPLES"
}

backend_rx() {
    nsx "$NS_B" nft list counter netdev bench rx | awk '{for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1)}'
}

now_ns() { date +%s%N; }

# CPU time (ns) of every task of the given pids, from /proc/PID/task/TID/schedstat
# (field 1: time on CPU, ns; sched_info, kernel/sched/stats.c).
cpu_ns_of() {
    local p t sum=0 v
    for p in "$@"; do
        for t in /proc/"$p"/task/*/schedstat; do
            read -r v _ <"$t" 2>/dev/null || continue
            sum=$((sum + v))
        done
    done
    echo "$sum"
}

# Everything the benchmark's packets cost: every process in the three namespaces
# (generator, agent, servers) plus the softirq threads. On veth the kernel's
# forwarding (netif_rx backlog, ip_forward, NAT, the egress veth) runs in softirq
# context on the sending CPU, i.e. is charged to the generator or ksoftirqd, so the
# *difference* between datapaths at the same generator is what the node costs.
bench_pids() {
    ip netns pids "$NS_C"; ip netns pids "$NS_N"; ip netns pids "$NS_B"
    pgrep -x 'ksoftirqd/[0-9]+' || true
}

# System-wide busy jiffies (user+nice+system+irq+softirq+steal) from /proc/stat,
# recorded raw: other work on a shared machine lands here too.
stat_busy() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# The agent's RX RING FULL summed over its interfaces (frames the kernel dropped for
# want of ring space); 0 for the kernel datapaths.
agent_rx_ring_full() {
    [[ -n ${AGENT_PID:-} ]] || { echo 0; return; }
    agent_stats_json | "$PY" -c 'import json,sys
print(sum(i.get("rxRingFull", 0) for i in json.load(sys.stdin).get("interfaces", [])))' 2>/dev/null || echo 0
}

# Per-CPU "busy total" jiffies, one CPU a line, for cpu_busy_json.
stat_cpus() { awk '/^cpu[0-9]/{b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6}' /proc/stat; }

# BEFORE AFTER (two stat_cpus outputs) -> {"cpu0":0.97,"cpu1":0.55}: the busy share of
# each CPU between them. Whether a window left a CPU idle explains a latency: a
# ping-pong that has to wait for a busy CPU, or one that pays an idle CPU's wake-up.
cpu_busy_json() {
    paste -d' ' <(printf '%s\n' "$1") <(printf '%s\n' "$2") | awk '
        { db = $3 - $1; dt = $4 - $2; s = s (NR > 1 ? "," : "") sprintf("\"cpu%d\":%.2f", NR - 1, dt > 0 ? db / dt : 0) }
        END { print "{" s "}" }'
}

trafgen_cfg() { # FLOWS DATAPATH [SRC_BASE] -> path of the config
    local flows=$1 dp=$2 base=${3:-10.244.2.16}
    local dst port f
    dst=$(target_ip "$dp")
    [[ $dp == forward ]] && port=9999 || port=9
    f=$ST/cfg/trafgen-$flows-$dst-$port-$base.cfg
    [[ -f $f ]] || "$(lab_python)" "$BENCH_D/model.py" trafgen --flows "$flows" --dst "$dst" --dport "$port" \
        --src-mac "$CLIENT_MAC" --dst-mac "$NODE_MAC" --src-base "$base" >"$f"
    echo "$f"
}

# trafgen on CPU 0, one process, TX ring, qdisc bypassed; --no-sock-mem and --notouch-irq keep it off the
# host's socket-memory sysctls and IRQ affinities.
TRAFGEN_PID=""
trafgen_start() { # CONFIG [extra trafgen args]
    local cfg=$1; shift
    ip netns exec "$NS_C" setsid taskset -c 0 trafgen -o eth0 -i "$cfg" -P 1 --no-sock-mem --notouch-irq "$@" \
        </dev/null >>"$ST/logs/trafgen.log" 2>&1 &
    TRAFGEN_PID=$!
}
trafgen_stop() {
    [[ -n $TRAFGEN_PID ]] || return 0
    pkill -INT -P "$TRAFGEN_PID" 2>/dev/null || true   # its forked worker
    kill -INT "$TRAFGEN_PID" 2>/dev/null || true
    wait "$TRAFGEN_PID" 2>/dev/null || true
    TRAFGEN_PID=""
}

# Ready when a short burst to the pps port reaches the backend (rules loaded, rings
# open, neighbours known). Up to $1 seconds.
wait_forwarding() {
    local secs=${1:-60} cfg before deadline=$((SECONDS + ${1:-60}))
    cfg=$(trafgen_cfg 1 "$DP")
    while ((SECONDS < deadline)); do
        before=$(backend_rx)
        ip netns exec "$NS_C" trafgen -o eth0 -i "$cfg" -P 1 --no-sock-mem --notouch-irq -n 20 >/dev/null 2>&1 || true
        sleep 0.2
        (($(backend_rx) > before)) && return 0
        sleep 0.3
    done
    return 1
}

# pps FLOWS: full-rate 64-byte UDP for WARM + DURATION seconds; the rate is what the
# backend counted during DURATION.
measure_pps() {
    local flows=$1 variant=${2:-${1}flows} cfg
    cfg=$(trafgen_cfg "$flows" "$DP")
    trafgen_start "$cfg"
    sleep "$WARM"
    local -a pids
    mapfile -t pids < <(bench_pids)
    local c0 t0 cpu0 ag0=0 st0 c1 t1 cpu1 ag1=0 st1
    c0=$(backend_rx); cpu0=$(cpu_ns_of "${pids[@]}"); st0=$(stat_busy); t0=$(now_ns)
    [[ -n $AGENT_PID ]] && ag0=$(cpu_ns_of "$AGENT_PID")
    local -a side=()
    if [[ -n ${MALLOC_PROBE:-} && -n $AGENT_PID ]]; then malloc_count "$DURATION" "$variant" & side+=($!); fi
    if [[ -n ${PROFILE:-} && -n $AGENT_PID ]]; then profile_agent "$DURATION" "$variant" & side+=($!); fi
    sleep "$DURATION"
    c1=$(backend_rx); cpu1=$(cpu_ns_of "${pids[@]}"); st1=$(stat_busy); t1=$(now_ns)
    [[ -n $AGENT_PID ]] && ag1=$(cpu_ns_of "$AGENT_PID")
    trafgen_stop
    ((${#side[@]} == 0)) || wait "${side[@]}" || true
    local pkts=$((c1 - c0)) dt=$((t1 - t0))
    local pps=$((pkts * 1000000000 / dt))
    local cpp=0 acpp=0
    ((pkts > 0)) && cpp=$(((cpu1 - cpu0) / pkts)) && acpp=$(((ag1 - ag0) / pkts))
    local extra
    extra=$(printf '{"packets":%d,"seconds":%s,"cpu_ns":%d,"agent_cpu_ns":%d,"stat_busy_jiffies":%d,"agent_cpu_ns_per_packet":%d}' \
        "$pkts" "$(awk -v d="$dt" 'BEGIN{printf "%.3f", d/1e9}')" $((cpu1 - cpu0)) $((ag1 - ag0)) $((st1 - st0)) "$acpp")
    emit pps "$variant" pps "$pps" pps "$extra"
    emit pps "$variant" cpu_per_packet "$cpp" ns "$extra"
    LAST_PPS=$pps
}

# sockperf ping-pong PROTO (udp|tcp) LOAD_PPS (0: light load): the half round trip
# sockperf reports, p50/p99/p99.9 in microseconds.
measure_latency() {
    local proto=$1 load=$2 variant out target
    target=$(target_ip "$DP")
    variant="$proto-$([[ $load == 0 ]] && echo light || echo loaded)"
    if [[ $load != 0 ]]; then
        # Background: 65,536 flows at half the measured maximum, in trafgen's slow
        # (sendto per packet) mode.
        trafgen_start "$(trafgen_cfg 65536 "$DP")" -b "${load}pps"
        sleep 1
    fi
    sockperf_server "$proto"
    local args=(ping-pong -i "$target" -p 11111 -t "$DURATION" -m 64)
    [[ $proto == tcp ]] && args+=(--tcp)
    out=$ST/logs/sockperf-$ROUND-$DP-$variant.log
    local before=0 cpus0 cpus1 ring0 ring1
    [[ $load != 0 ]] && before=$(backend_rx)
    ring0=$(agent_rx_ring_full)
    cpus0=$(stat_cpus)
    ip netns exec "$NS_C" timeout $((DURATION + 20)) sockperf "${args[@]}" >"$out" 2>&1 || true
    cpus1=$(stat_cpus)
    ring1=$(agent_rx_ring_full)
    local bg=0
    [[ $load != 0 ]] && bg=$(($(backend_rx) - before))
    trafgen_stop
    # sockperf prints no percentile when no reply came back in time (a lost datagram
    # stalls UDP ping-pong); the count of observations says so in the samples.
    local obs
    obs=$(sed -n 's/.*ReceivedMessages=\([0-9]*\).*/\1/p' "$out" | tail -n1)
    emit latency "$variant" observations "${obs:-0}" messages \
        "$(printf '{"load_pps":%d,"agent_rx_ring_full":%d}' "$load" "$((ring1 - ring0))")"
    local p
    for p in 50.000:p50 99.000:p99 99.900:p99.9; do
        local v
        v=$(awk -v q="${p%%:*}" '$0 ~ "percentile " q " =" {print $NF}' "$out" | tail -n1)
        [[ -n $v ]] || { log "  sockperf gave no percentile ${p%%:*} ($out)"; continue; }
        emit latency "$variant" "${p##*:}" "$v" us "$(printf '{"load_pps":%d,"background_received":%d,"cpu_busy":%s}' \
            "$load" "$bg" "$(cpu_busy_json "$cpus0" "$cpus1")")"
    done
}

# iperf3 STREAMS: TCP goodput through the Service, veth offloads left as a default
# veth has them (TSO/GSO on).
measure_throughput() {
    local streams=$1 out target
    target=$(target_ip "$DP")
    out=$ST/logs/iperf3-$ROUND-$DP-$streams.json
    ip netns exec "$NS_C" timeout $((DURATION + 30)) iperf3 -c "$target" -p 5201 -t "$DURATION" -O 1 \
        -P "$streams" -J >"$out" 2>/dev/null || true
    local bps
    bps=$("$(lab_python)" -c 'import json,sys
try: print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]))
except Exception: print("")' "$out")
    [[ -n $bps ]] || { log "  iperf3 failed ($out)"; return 0; }
    emit throughput "${streams}stream" gbps "$(awk -v b="$bps" 'BEGIN{printf "%.3f", b/1e9}')" Gbit/s
}

# New TCP connections per second through the NodePort: wrk with "Connection: close",
# so every request is a new connection (nginx answers and closes).
measure_connrate() {
    local url out
    if [[ $DP == forward ]]; then url=http://${BACKEND_IPS[0]}:8080/; else url=http://$NODE_IP:30080/; fi
    out=$ST/logs/wrk-$ROUND-$DP.log
    ip netns exec "$NS_C" timeout $((DURATION + 20)) wrk -t1 -c32 -d"${DURATION}s" -H 'Connection: close' "$url" \
        >"$out" 2>&1 || true
    local rps errs
    rps=$(awk '/^Requests\/sec:/{print $2}' "$out")
    errs=$(awk '/Socket errors:/{gsub(/,/, ""); print $4 + $6 + $8 + $10}' "$out")
    [[ -n $rps ]] || { log "  wrk failed ($out)"; return 0; }
    local extra
    extra=$(printf '{"socket_errors":%d}' "${errs:-0}")
    if [[ -n $AGENT_PID ]]; then
        extra=$("$(lab_python)" -c 'import json,sys
e = json.loads(sys.argv[1]); s = json.loads(sys.argv[2] or "{}")
e["agent_stats"] = s
print(json.dumps(e, separators=(",", ":")))' "$extra" "$(agent_stats_json)")
    fi
    emit connrate nodeport conn_per_s "$rps" conn/s "$extra"
}

# ---------------------------------------------------------------------------
# Evidence for "no allocation per forwarded packet" and the profile
# ---------------------------------------------------------------------------

LIBC_PATH=""
MALLOC_PROBES=()
# uprobes on libc's allocation entry points (perf probe -x libc). Swift's runtime
# allocates through swift_slowAlloc -> malloc (or posix_memalign/aligned_alloc for
# over-aligned types), and Foundation/NIO through the same libc, so a count of zero
# on the packet thread while it forwards means no heap allocation on that thread.
malloc_probe_add() {
    LIBC_PATH=$(ldd "$FERRY_BIN" | awk '/libc\.so\.6/{print $3}')
    [[ -n $LIBC_PATH ]] || return 1
    local fn ev
    for fn in malloc calloc realloc posix_memalign aligned_alloc; do
        ev=${BID}_$fn
        if perf probe -q -x "$LIBC_PATH" --add "$ev=$fn" 2>>"$ST/logs/perf-probe.log"; then
            MALLOC_PROBES+=("probe_libc:$ev")
        fi
    done
    ((${#MALLOC_PROBES[@]}))
}
malloc_probe_del() {
    local ev
    for ev in "${MALLOC_PROBES[@]}"; do perf probe -q -d "$ev" 2>/dev/null || true; done
    MALLOC_PROBES=()
}

# Counts allocation calls on the packet thread and in the whole agent for SECONDS,
# next to the packets the agent forwarded meanwhile; emits one sample per scope. The
# thread's calls are recorded with their call stacks (every call: the probe's period
# is 1), so a non-zero count names its call site in alloc-stacks-*.txt.
malloc_count() {
    local secs=$1 variant=$2 tid ev_list f0 f1 rss0 rss1
    tid=$(agent_packet_tid)
    [[ -n $tid ]] || return 0
    ev_list=$(IFS=,; echo "${MALLOC_PROBES[*]}")
    f0=$(agent_stats_json); rss0=$(agent_rss_kib)
    perf record -q -e "$ev_list" -c 1 -g -t "$tid" -o "$ST/logs/malloc-thread.data" -- sleep "$secs" \
        >/dev/null 2>&1 &
    local thread_perf=$!
    perf stat -x, -e "$ev_list" -p "$AGENT_PID" -o "$ST/logs/malloc-process.csv" -- sleep "$secs" 2>/dev/null || true
    wait "$thread_perf" || true
    f1=$(agent_stats_json); rss1=$(agent_rss_kib)
    local fwd n_thread n_process
    fwd=$("$(lab_python)" "$BENCH_D/analyze.py" forwarded-delta "$f0" "$f1")
    n_thread=$(perf script -i "$ST/logs/malloc-thread.data" -F event 2>/dev/null | grep -c . || true)
    n_process=$(awk -F, '$1 ~ /^[0-9]+$/ {s += $1} END {print s + 0}' "$ST/logs/malloc-process.csv")
    {
        echo "# libc allocation calls on the agent's packet thread (tid $tid) during pps $variant ($DP),"
        echo "# $secs s, $fwd packets forwarded; callers first"
        perf report -i "$ST/logs/malloc-thread.data" --stdio --no-children -G --percent-limit 2 2>/dev/null | grep -v '^$'
    } | { if command -v swift >/dev/null; then swift demangle --simplified; else cat; fi; } \
        >"$RESULTS/alloc-stacks-$DP.txt" 2>/dev/null || true
    local scope n
    for scope in thread process; do
        [[ $scope == thread ]] && n=${n_thread:-0} || n=${n_process:-0}
        emit alloc "$variant-$scope" allocations "$n" calls \
            "$(printf '{"forwarded":%s,"seconds":%s,"rss_kib_before":%d,"rss_kib_after":%d,"probes":"%s"}' "${fwd:-0}" "$secs" "$rss0" "$rss1" "$ev_list")"
    done
}

profile_agent() {
    local secs=$1 variant=$2 tid
    tid=$(agent_packet_tid)
    [[ -n $tid ]] || return 0
    perf record -q -e cpu-clock -F 997 -g -t "$tid" -o "$RESULTS/perf-$DP-$variant.data" -- sleep "$secs" \
        >/dev/null 2>&1 || return 0
    {
        echo "# perf record -e cpu-clock -g on the agent's packet thread during pps $variant ($DP), round $ROUND"
        perf report -i "$RESULTS/perf-$DP-$variant.data" --stdio --no-children --sort symbol \
            --percent-limit 1 -g none 2>/dev/null | grep -v '^$'
    } | { if command -v swift >/dev/null; then swift demangle --simplified; else cat; fi; } \
        >"$RESULTS/profile-$DP-$variant.txt" 2>/dev/null || true
}
