# shellcheck shell=bash
# The benchmark topology and the four datapaths on it. Sourced by netns-lab/bench
# after lib/common.sh; uses BID (namespace prefix) and ST (state directory).
#
#   ${BID}-cli  eth0 172.18.0.12/24 + 10.244.2.10/32 ("node2" and its pod)
#        |  veth
#   ${BID}-node eth0 172.18.0.11/24 ; vp-be 10.244.1.1/32       (the node under test)
#        |  veth
#   ${BID}-be   eth0 10.244.1.2/32 + 10.244.1.3/32              (the two backend pods)
#
# The client plays node2: its pod address 10.244.2.10 and the generator's sources
# 10.244.2.16-47 (65,536 flows) and .64-95 (the 1M conntrack fill) are in the
# cluster CIDR, so ClusterIP traffic is DNATed without masquerade on every datapath,
# as pod-to-Service traffic is. NodePort traffic comes from 172.18.0.12 (a node
# address, outside the cluster CIDR) and is masqueraded, as kube-proxy does.

NODE_IP=172.18.0.11
CLIENT_IP=172.18.0.12
CLIENT_POD_IP=10.244.2.10
BACKEND_IPS=(10.244.1.2 10.244.1.3)

NS_C=$BID-cli
NS_N=$BID-node
NS_B=$BID-be

AGENT_PID=""
AGENT_SOCK=""

bench_ns_create() {
    local ns=$1
    ip netns add "$ns"
    nsx "$ns" ip link set lo up
    nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    nsx "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
}

# Start a long-running helper inside a namespace; its pid goes to $ST/pids/NAME. Its
# output is appended to LOGFILE, so a helper started again keeps its earlier log.
bench_bg() { # name ns logfile cmd...
    local name=$1 ns=$2 logf=$3; shift 3
    ip netns exec "$ns" setsid "$@" </dev/null >>"$logf" 2>&1 &
    echo $! >"$ST/pids/$name"
}

# A fresh sockperf server for PROTO (udp|tcp), listening before this returns. The TCP
# server blocks in recvfrom() on one connection at a time: a connection whose FIN was
# lost (the datapath changed under it between two tests) keeps it from ever serving the
# next client, so every latency test starts its own.
sockperf_server() {
    local proto=$1 pidf=$ST/pids/sockperf-$1 i
    if [[ -f $pidf ]]; then
        kill "$(cat "$pidf")" 2>/dev/null || true
        for i in $(seq 50); do kill -0 "$(cat "$pidf")" 2>/dev/null || break; sleep 0.05; done
    fi
    local args=(sockperf server -i 0.0.0.0 -p 11111) listening=-Hlun
    if [[ $proto == tcp ]]; then args+=(--tcp); listening=-Hltn; fi
    bench_bg "sockperf-$proto" "$NS_B" "$ST/logs/sockperf-$proto.log" "${args[@]}"
    for i in $(seq 100); do
        ip netns exec "$NS_B" ss "$listening" 'sport = :11111' | grep -q . && return 0
        sleep 0.02
    done
    log "  sockperf $proto server did not start listening (see $ST/logs/sockperf-$proto.log)"
}

topo_up() {
    # Generator configs name this topology's MACs: never reuse another run's.
    rm -rf "$ST"
    mkdir -p "$ST"/{pids,logs,cfg}
    bench_ns_create "$NS_C"; bench_ns_create "$NS_N"; bench_ns_create "$NS_B"
    # Both ends are created inside their namespaces: nothing appears in the host's.
    ip -n "$NS_C" link add eth0 type veth peer name eth0 netns "$NS_N"
    ip -n "$NS_N" link add vp-be type veth peer name eth0 netns "$NS_B"
    local ns
    for ns in "$NS_C" "$NS_N" "$NS_B"; do ip -n "$ns" link set eth0 up; done
    ip -n "$NS_N" link set vp-be up

    ip -n "$NS_C" addr add "$CLIENT_IP/24" dev eth0
    ip -n "$NS_C" addr add "$CLIENT_POD_IP/32" dev eth0
    # Service and pod traffic leaves from the pod address; NodePort traffic (on-link
    # 172.18.0.0/24) from the node address.
    ip -n "$NS_C" route add 10.96.0.0/12 via "$NODE_IP" src "$CLIENT_POD_IP"
    ip -n "$NS_C" route add 10.244.1.0/24 via "$NODE_IP" src "$CLIENT_POD_IP"

    ip -n "$NS_N" addr add "$NODE_IP/24" dev eth0
    ip -n "$NS_N" addr add 10.244.1.1/32 dev vp-be
    ip -n "$NS_N" route add 10.244.2.0/24 via "$CLIENT_IP"
    local b
    for b in "${BACKEND_IPS[@]}"; do ip -n "$NS_N" route add "$b/32" dev vp-be; done
    # As in the lab: kernel ephemeral ports stay out of the SNAT and NodePort ranges.
    nsx "$NS_N" sysctl -qw net.ipv4.ip_local_port_range="32768 60999" \
        net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0

    for b in "${BACKEND_IPS[@]}"; do ip -n "$NS_B" addr add "$b/32" dev eth0; done
    ip -n "$NS_B" route add 10.244.1.1 dev eth0 scope link
    ip -n "$NS_B" route add default via 10.244.1.1 src "${BACKEND_IPS[0]}"
    # The receiver must not be the bottleneck: the generator's packets (UDP to 9999)
    # are counted and dropped at the backend veth's ingress hook, before ip_rcv, so
    # no socket, no ICMP port-unreachable and no IP stack work is spent on them.
    nsx "$NS_B" nft -f - <<'NFT'
table netdev bench {
    counter rx { }
    chain ingress {
        type filter hook ingress device "eth0" priority 0;
        ip protocol udp udp dport 9999 counter name "rx" drop
    }
}
NFT
    # Servers for the latency, throughput and connection-rate tests.
    sockperf_server udp
    sockperf_server tcp
    bench_bg iperf3 "$NS_B" "$ST/logs/iperf3.log" iperf3 -s -p 5201
    mkdir -p "$ST/nginx"
    cat >"$ST/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $ST/nginx/nginx.pid;
error_log $ST/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $ST/nginx/body;
    proxy_temp_path $ST/nginx/proxy;
    fastcgi_temp_path $ST/nginx/fastcgi;
    uwsgi_temp_path $ST/nginx/uwsgi;
    scgi_temp_path $ST/nginx/scgi;
    server { listen 8080 reuseport; location / { return 200 "ok\n"; } }
}
NGINX
    bench_bg nginx "$NS_B" "$ST/logs/nginx.log" nginx -p "$ST/nginx" -c "$ST/nginx/nginx.conf" -g "daemon off;"
    # Neighbours resolved once (one UDP datagram each to the discard port), so no
    # first-packet ARP lands in a measurement.
    local a
    for a in "${BACKEND_IPS[@]}" "$CLIENT_IP"; do
        nsx "$NS_N" bash -c "echo >/dev/udp/$a/9" 2>/dev/null || true
    done
    nsx "$NS_C" bash -c "echo >/dev/udp/$NODE_IP/9" 2>/dev/null || true
    NODE_MAC=$(nsx "$NS_N" cat /sys/class/net/eth0/address)
    CLIENT_MAC=$(nsx "$NS_C" cat /sys/class/net/eth0/address)
    wait_for 10 nsx "$NS_B" ss -ltn 'sport = :8080' | grep -q 8080 || true
}

topo_down() {
    agent_stop 2>/dev/null || true
    local ns pid
    local -a pids=()
    for ns in "$NS_C" "$NS_N" "$NS_B"; do
        ip netns list 2>/dev/null | grep -q "^$ns\b" || continue
        mapfile -t -O "${#pids[@]}" pids < <(ip netns pids "$ns" 2>/dev/null)
    done
    if ((${#pids[@]})); then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        sleep 0.5
        kill -KILL "${pids[@]}" 2>/dev/null || true
    fi
    for ns in "$NS_B" "$NS_C" "$NS_N"; do ip netns del "$ns" 2>/dev/null || true; done
}

# ---------------------------------------------------------------------------
# Datapaths
# ---------------------------------------------------------------------------

# The address and port a test aims at: the ClusterIP, or for "forward" (no NAT, the
# ceiling) the first backend itself.
target_ip() { [[ $1 == forward ]] && echo "${BACKEND_IPS[0]}" || echo 10.96.0.10; }

# dp_on DATAPATH DESCRIPTION [agent flags...]
dp_on() {
    local dp=$1 desc=$2; shift 2
    case $dp in
    forward)
        nsx "$NS_N" sysctl -qw net.ipv4.ip_forward=1 ;;
    iptables | nftables)
        nsx "$NS_N" sysctl -qw net.ipv4.ip_forward=1
        "$LAB_DIR/lib/kube-rules.sh" apply "$dp" "$desc" node1 "$NS_N" --save "$ST/cfg/rules.$dp" ;;
    ferry | ferry-v2 | ferry-v3 | ferry-busypoll)
        # "ferry" is the agent as it ships (its default ring); the others name the ring,
        # or turn on busy polling (50 µs after the last frame).
        local extra=()
        [[ $dp == ferry-v2 ]] && extra=(--ring v2)
        [[ $dp == ferry-v3 ]] && extra=(--ring v3)
        [[ $dp == ferry-busypoll ]] && extra=(--busy-poll 50)
        agent_start "$desc" "${extra[@]}" "$@" ;;
    *) die "unknown datapath $dp" ;;
    esac
}

dp_off() {
    local dp=$1
    case $dp in
    ferry*) agent_stop ;;
    esac
    # Nothing of one datapath may stay for the next: no table (an empty iptables-nft
    # nat table alone would keep conntrack on for "forward"), no conntrack entry.
    nsx "$NS_N" nft flush ruleset
    nsx "$NS_N" conntrack -F >/dev/null 2>&1 || true
    nsx "$NS_N" sysctl -qw net.ipv4.ip_forward=0
}

agent_start() {
    local desc=$1; shift
    "$(lab_python)" "$LAB_DIR/lib/labmodel.py" yaml "$desc" >"$ST/cfg/cluster.yaml"
    AGENT_SOCK=$ST/node1.sock
    rm -f "$AGENT_SOCK"
    # The agent is pinned to CPU 1 and the generator to CPU 0 (trafgen pins its one
    # process itself), so the forwarder never competes with the generator; the
    # kernel datapaths run wherever the packets are received (veth: the sender's CPU).
    ip netns exec "$NS_N" setsid taskset -c 1 "$FERRY_BIN" agent --config "$ST/cfg/cluster.yaml" \
        --hostname-override node1 --cluster-cidr 10.244.0.0/16 --interfaces eth0,vp-be \
        --admin-socket "$AGENT_SOCK" --healthz-bind-address 127.0.0.1:10256 --metrics-bind-address "" \
        "$@" ${FERRY_AGENT_ARGS:-} </dev/null >>"$ST/logs/agent.log" 2>&1 &
    AGENT_PID=$!
    echo "$AGENT_PID" >"$ST/pids/agent"
    local i
    for i in $(seq 1 600); do
        kill -0 "$AGENT_PID" 2>/dev/null || { tail -n 20 "$ST/logs/agent.log" >&2; die "ferry agent exited"; }
        [[ -S $AGENT_SOCK ]] && "$FERRY_BIN" stats --admin-socket "$AGENT_SOCK" >/dev/null 2>&1 && break
        sleep 0.2
    done
    [[ -S $AGENT_SOCK ]] || die "ferry agent did not open $AGENT_SOCK"
}

agent_stop() {
    [[ -n $AGENT_PID ]] || return 0
    kill -TERM "$AGENT_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 100); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$AGENT_PID" 2>/dev/null || true
    wait "$AGENT_PID" 2>/dev/null || true
    AGENT_PID=""
}

# The packet thread of the agent: the one named "ferry-packets" if the name reached
# the kernel (Foundation's Thread.name does not always call pthread_setname_np), else
# the thread with the most CPU time -- while packets flow, the packet loop.
agent_packet_tid() {
    local t best="" most=-1 v
    for t in /proc/"$AGENT_PID"/task/*; do
        if [[ $(cat "$t/comm" 2>/dev/null) == ferry-packets ]]; then basename "$t"; return 0; fi
        read -r v _ <"$t/schedstat" 2>/dev/null || continue
        ((v > most)) && most=$v best=$(basename "$t")
    done
    echo "$best"
}

agent_rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$AGENT_PID/status" 2>/dev/null || echo 0; }

agent_stats_json() { "$FERRY_BIN" stats --json --admin-socket "$AGENT_SOCK" 2>/dev/null || echo '{}'; }
