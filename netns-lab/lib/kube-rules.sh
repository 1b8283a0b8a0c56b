#!/usr/bin/env bash
# Install or remove kube-proxy-style kernel rules in a network namespace, generated
# from a lab service description (see lib/labmodel.py for its format). The lab uses
# it for --dataplane iptables|nftables; benchmarks reuse it to compare Ferry with
# the kernel on the same Services.
#
#   kube-rules.sh apply  {iptables|nftables} DESCRIPTION NODE NETNS [--save FILE]
#   kube-rules.sh flush  {iptables|nftables} NETNS
#   kube-rules.sh render {iptables|nftables} DESCRIPTION NODE      (print, apply nothing)
#
# Each apply replaces the whole kube-proxy state in that namespace atomically
# (iptables-restore of filter+nat; nft add/delete/add of table ip kube-proxy), as
# a kube-proxy full sync does. NODE decides which endpoints are local.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2; }

render() {
    local mode=$1 desc=$2 node=$3
    "$(lab_python)" "$LAB_DIR/lib/kube_rules.py" "$mode" "$desc" --node "$node"
}

cmd=${1:-}; shift || true
case $cmd in
render)
    (($# == 3)) || usage
    render "$@"
    ;;
apply)
    (($# >= 4)) || usage
    mode=$1 desc=$2 node=$3 ns=$4; shift 4
    save=""
    [[ ${1:-} == --save ]] && save=${2:?--save needs a file}
    rules=$(render "$mode" "$desc" "$node")
    [[ -n $save ]] && printf '%s\n' "$rules" >"$save"
    case $mode in
    iptables) printf '%s\n' "$rules" | nsx "$ns" iptables-restore ;;
    nftables) printf '%s\n' "$rules" | nsx "$ns" nft -f - ;;
    *) usage ;;
    esac
    ;;
flush)
    (($# == 2)) || usage
    mode=$1 ns=$2
    case $mode in
    iptables)
        # Only the namespace's filter and nat tables: kube-proxy's state lives there.
        nsx "$ns" iptables -t nat -F; nsx "$ns" iptables -t nat -X
        nsx "$ns" iptables -t filter -F; nsx "$ns" iptables -t filter -X
        ;;
    nftables) nsx "$ns" nft delete table ip kube-proxy 2>/dev/null || true ;;
    *) usage ;;
    esac
    ;;
*) usage ;;
esac
