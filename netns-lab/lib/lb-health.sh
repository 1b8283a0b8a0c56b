#!/usr/bin/env bash
# The lab's cloud load balancer: runs in the router namespace and keeps, for each
# LoadBalancer IP, an ECMP route over the nodes that pass its health check -- what
# a cloud network LB does with a Service's healthCheckNodePort.
#
#   lb-health.sh TARGETS MODE STATEDIR
#
# TARGETS: lines `lbIP port policy hcPort allNodeIPs localNodeIPs` (labmodel.py
# lb-targets), re-read every second so a scenario may rewrite it.
# MODE ferry: probe each node over HTTP every second, like a cloud LB:
#   Local policy   -> http://node:healthCheckNodePort/  must answer 200
#                     (kube-proxy's service health server, served here by the agent)
#   Cluster policy -> http://node:10256/healthz must answer 200 (proxy health)
# MODE iptables|nftables: the kernel has no health check server (kube-proxy would
#   run it), so nodes are taken from the endpoint list instead: Local policy keeps
#   nodes that hold an endpoint, Cluster policy keeps all nodes.
# With no healthy node the route falls back to all nodes ("fail open"), as GCP and
# AWS network load balancers do, rather than blackholing the VIP.
# The ECMP route hashes on L4 (net.ipv4.fib_multipath_hash_policy=1, set by `lab up`),
# so each flow sticks to one node and different flows spread.
set -uo pipefail

targets=$1 mode=$2 state=$3
mkdir -p "$state"

probe() { # node port path -> exit 0 if HTTP 200
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --connect-timeout 0.5 --max-time 0.8 "http://$1:$2$3") || return 1
    [[ $code == 200 ]]
}

healthy_nodes() { # lbip policy hcport allnodes localnodes -> comma list
    local lbip=$1 policy=$2 hc=$3 all=$4 local=$5 n
    local -a nodes out=()
    IFS=, read -ra nodes <<<"$all"
    if [[ $mode != ferry ]]; then
        if [[ $policy == Local ]]; then [[ $local == - ]] || printf '%s' "$local"; else printf '%s' "$all"; fi
        return
    fi
    local port=$hc path=/
    [[ $policy == Local && $hc != 0 ]] || { port=10256; path=/healthz; }
    local tmp; tmp=$(mktemp -d)
    for n in "${nodes[@]}"; do
        (probe "$n" "$port" "$path" && touch "$tmp/$n") &
    done
    wait
    for n in "${nodes[@]}"; do [[ -e $tmp/$n ]] && out+=("$n"); done
    rm -rf "$tmp"
    (IFS=,; printf '%s' "${out[*]}")
}

set_route() { # lbip comma-list
    local lbip=$1 list=$2 n
    local -a nodes args=()
    IFS=, read -ra nodes <<<"$list"
    if ((${#nodes[@]} == 1)); then
        ip route replace "$lbip/32" via "${nodes[0]}"
    else
        for n in "${nodes[@]}"; do args+=(nexthop via "$n"); done
        ip route replace "$lbip/32" "${args[@]}"
    fi
}

declare -A current=()
while :; do
    if [[ -r $targets ]]; then
        while read -r lbip _port policy hc all local; do
            [[ -n ${lbip:-} && $lbip != \#* ]] || continue
            healthy=$(healthy_nodes "$lbip" "$policy" "$hc" "$all" "$local")
            want=$healthy
            [[ -n $want ]] || want=$all   # fail open
            if [[ ${current[$lbip]:-} != "$want" ]]; then
                if set_route "$lbip" "$want"; then
                    current[$lbip]=$want
                    printf '%s %s healthy=[%s] route=[%s]\n' "$(date +%T)" "$lbip" "$healthy" "$want"
                fi
            fi
            printf '%s\n' "${healthy:--}" >"$state/$lbip.healthy"
        done <"$targets"
    fi
    sleep 1
done
