# shellcheck shell=bash
# Shared helpers for the netns lab scripts (lab, demo, e2e, lib/*.sh). Source it;
# it defines functions and path variables only and touches nothing.

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_ROOT="$(cd "$LAB_DIR/.." && pwd)"
LAB_OUT="$LAB_DIR/out"

log()  { printf '%s\n' "$*" >&2; }
die()  { printf 'error: %s\n' "$*" >&2; exit 1; }

need_root() {
    [[ $(id -u) -eq 0 ]] || die "run as root (network namespaces, veth and netfilter need CAP_NET_ADMIN)"
}

# Install what the lab needs when a fresh machine lacks it. `apt-get update` runs
# at most once per invocation, and only when something is missing.
_LAB_APT_UPDATED=0
ensure_tools() {
    local -A pkg_of=(
        [ip]=iproute2 [bridge]=iproute2 [nft]=nftables [iptables]=iptables
        [iptables-restore]=iptables [curl]=curl [conntrack]=conntrack
        [setsid]=util-linux [sha256sum]=coreutils [timeout]=coreutils
    )
    local missing=() cmd
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg_of[$cmd]:-$cmd}")
    done
    if ! lab_python >/dev/null 2>&1; then missing+=(python3); fi
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    if ((!_LAB_APT_UPDATED)); then
        log "installing ${missing[*]} (apt-get update first)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
        _LAB_APT_UPDATED=1
    fi
    # shellcheck disable=SC2046
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(printf '%s\n' "${missing[@]}" | sort -u) >&2 \
        || die "apt-get install ${missing[*]} failed"
}

# The real interpreter behind `python3`. A pyenv shim is a shell script that
# re-resolves itself on every run (slow, and it depends on $HOME and $PATH inside
# `ip netns exec`); the resolved binary runs the same everywhere.
_LAB_PYTHON=""
lab_python() {
    if [[ -z $_LAB_PYTHON ]]; then
        local p
        for p in "${PYTHON:-}" python3 /usr/bin/python3; do
            [[ -n $p ]] || continue
            _LAB_PYTHON=$("$p" -c 'import sys; print(sys.executable)' 2>/dev/null) && [[ -x $_LAB_PYTHON ]] && break
            _LAB_PYTHON=""
        done
        [[ -n $_LAB_PYTHON ]] || return 1
    fi
    printf '%s\n' "$_LAB_PYTHON"
}

# Run a command inside one of the lab's namespaces.
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# Lab IDs: a letter then letters/digits, no '-', so that "${ID}-" is an unambiguous
# prefix (a lab "a" must never match a lab "a-b"'s namespaces).
valid_lab_id() { [[ $1 =~ ^[a-z][a-z0-9]{1,15}$ ]]; }

# Every lab on this machine: those with a state directory and those whose
# namespaces survive without one (a crash, a deleted out/). Every lab has an
# underlay namespace "${ID}-ul", so that is the marker.
all_lab_ids() {
    {
        local d
        for d in "$LAB_OUT"/*/; do
            [[ -f $d/env ]] && basename "$d"
        done
        ip netns list 2>/dev/null | awk '{print $1}' | sed -n 's/^\([a-z][a-z0-9]*\)-ul$/\1/p'
    } | sort -u
}

lab_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$1-" || true; }

# Load a lab's env file (written by `lab up`), or pick the only running lab.
lab_load() {
    local id=${1:-}
    if [[ -z $id ]]; then
        local ids
        mapfile -t ids < <(all_lab_ids)
        ((${#ids[@]} == 1)) || die "say which lab with --name (running: ${ids[*]:-none})"
        id=${ids[0]}
    fi
    [[ -f $LAB_OUT/$id/env ]] || die "no lab '$id' (no $LAB_OUT/$id/env)"
    # shellcheck disable=SC1090
    source "$LAB_OUT/$id/env"
}

# Namespace of a pod / node / the client, from a loaded env.
pod_ns()  { printf '%s-pod-%s\n' "$LAB_ID" "$1"; }
node_ns() { printf '%s-%s\n' "$LAB_ID" "$1"; }

# `name node ip` of every pod, from the loaded lab's description.
lab_pods() { "$(lab_python)" "$LAB_DIR/lib/labmodel.py" pods "$LAB_DESC"; }

# Wait until a command succeeds, up to $1 seconds (polling every 0.2 s).
wait_for() {
    local secs=$1; shift
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}
