#!/bin/sh
#
# demo.sh - a two-firewall conntrackd cluster in network namespaces, failed over
# for real. Run it through `make demo` (builds the release binary first), as root.
#
#   client --(LAN switch)-- fw1, fw2 --(WAN switch)-- server
#                            fw1 ====== fw2   dedicated sync link
#
# keepalived (VRRP) gives the master firewall the two floating gateway addresses;
# conntrackd on both firewalls replicates the connection table over the sync
# link (FTFW over UDP). The demo opens TCP and UDP flows through the master,
# shows the replicated caches, kills the master the hard way (frozen, unplugged,
# killed) and shows the backup committing the replicated flows to its kernel
# and a long-lived TCP connection carrying on.
#
# Environment:
#   CONNTRACKD   the conntrackd binary on both firewalls
#                (default: target/release/conntrackd, ours)
#   SYNC_MODE    FTFW (default) or ALARM
#
# Everything lives in namespaces named ctdemo-<pid>-*, a temp dir and
# processes started here; all of it is removed on exit, Ctrl-C included.
# Addresses are from 10.231.0.0/16 and 10.232.0.0/16 only.

set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CONNTRACKD=${CONNTRACKD:-$ROOT/target/release/conntrackd}
SYNC_MODE=${SYNC_MODE:-FTFW}
P=ctdemo-$$
DIR=$(mktemp -d /tmp/ctdemo.XXXXXX)
NS_ALL="$P-client $P-sw $P-fw1 $P-fw2 $P-server"
PORT_TCP=5000
PORT_UDP=5001
STREAM_PORT=45000

# ---------------------------------------------------------------- helpers --

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
step() { printf '\n\033[1;34m==> %s\033[0m\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
    printf '\033[1;31mdemo: %s\033[0m\n' "$*" >&2
    for f in "$DIR"/fw1/*.log "$DIR"/fw2/*.log "$DIR"/fw?/conntrackd.out; do
        [ -s "$f" ] || continue
        printf '%s\n' "--- last lines of ${f#"$DIR"/} ---" >&2
        tail -n 8 "$f" >&2
    done
    exit 1
}
now() { date +%s.%N; }
# elapsed START [END]: seconds between two `now` stamps, 2 decimals.
elapsed() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.2f", b - a }'; }
nsx() {
    ns=$1
    shift
    ip netns exec "$P-$ns" "$@"
}
ctl() {
    fw=$1
    shift
    nsx "$fw" "$CONNTRACKD" -C "$DIR/$fw/conntrackd.conf" "$@"
}
# count_lines FW -i|-e: entries in that firewall's internal/external cache.
cache_count() {
    out=$(ctl "$1" "$2" 2>/dev/null) || {
        echo "?"
        return
    }
    printf '%s\n' "$out" | grep -c .
}
# wait_for SECONDS WHAT COMMAND...: poll every 0.1 s.
wait_for() {
    limit=$1
    what=$2
    shift 2
    start=$(now)
    while ! "$@" >/dev/null 2>&1; do
        if [ "$(elapsed "$start" | cut -d. -f1)" -ge "$limit" ]; then
            die "timed out after ${limit}s waiting for $what"
        fi
        sleep 0.1
    done
}
has_vip() { nsx "$1" ip -4 addr show dev lan0 | grep -q "10.231.1.1/"; }
master() {
    for fw in fw1 fw2; do
        if has_vip "$fw"; then
            echo "$fw"
            return
        fi
    done
    echo none
}

cleanup() {
    trap - EXIT INT TERM
    # Quiet: the shell reports every killed background job.
    exec 2>/dev/null
    for ns in $NS_ALL; do
        [ -e "/run/netns/$ns" ] || continue
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -CONT "$pid" 2>/dev/null
            kill -KILL "$pid" 2>/dev/null
        done
    done
    # Pipelines of this script outside the namespaces (the stream reader).
    for pid in $BG_PIDS; do kill "$pid" 2>/dev/null; done
    wait 2>/dev/null
    for ns in $NS_ALL; do
        [ -e "/run/netns/$ns" ] && ip netns del "$ns"
    done
    rm -rf "$DIR"
}
BG_PIDS=""
trap cleanup EXIT
trap 'echo; echo "demo: interrupted, cleaning up"; exit 130' INT TERM

# ----------------------------------------------------------------- checks --

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, nftables, keepalived): sudo make demo"
for tool in ip nft keepalived socat conntrack awk perl; do
    command -v "$tool" >/dev/null 2>&1 || die "missing '$tool': run 'make deps' first"
done
[ -x "$CONNTRACKD" ] || die "no conntrackd binary at $CONNTRACKD (run 'cargo build --release', or set CONNTRACKD=/usr/sbin/conntrackd)"
case "$SYNC_MODE" in FTFW | ALARM) ;; *) die "SYNC_MODE must be FTFW or ALARM" ;; esac

T0=$(now)
bold "conntrackd failover demo: $SYNC_MODE sync, conntrackd = $CONNTRACKD"
"$CONNTRACKD" -v 2>/dev/null | head -n 1 | sed 's/^/    /'

# ---------------------------------------------------------------- testbed --

step "Building the testbed (5 network namespaces $P-*)"
# Safety net, as in the test suite: the host never routes the demo's ranges.
ip route replace blackhole 10.231.0.0/16 2>/dev/null
ip route replace blackhole 10.232.0.0/16 2>/dev/null
for ns in $NS_ALL; do
    ip netns add "$ns" || die "ip netns add $ns"
    nsx "${ns#"$P"-}" ip link set lo up
done
# Two switches (bridges) in their own namespace; STP off so ports forward at once.
for br in lan wan; do
    nsx sw ip link add "br$br" type bridge stp_state 0 mcast_snooping 0
    nsx sw ip link set "br$br" up
done
# veth NAME_IN_NS NS NAME_ON_SWITCH BRIDGE ADDR
port() {
    ip -n "$P-$2" link add "$1" type veth peer name "$3" netns "$P-sw"
    nsx sw ip link set "$3" master "$4" up
    nsx "$2" ip link set "$1" up
    nsx "$2" ip addr add "$5" dev "$1"
}
port eth0 client c-lan brlan 10.231.1.10/24
port lan0 fw1 fw1-lan brlan 10.231.1.2/24
port lan0 fw2 fw2-lan brlan 10.231.1.3/24
port wan0 fw1 fw1-wan brwan 10.232.1.2/24
port wan0 fw2 fw2-wan brwan 10.232.1.3/24
port eth0 server s-wan brwan 10.232.1.10/24
ip -n "$P-fw1" link add sync0 type veth peer name sync0 netns "$P-fw2"
nsx fw1 ip link set sync0 up
nsx fw2 ip link set sync0 up
nsx fw1 ip addr add 10.231.254.1/30 dev sync0
nsx fw2 ip addr add 10.231.254.2/30 dev sync0
nsx client ip route add default via 10.231.1.1
nsx server ip route add default via 10.232.1.1
note "client 10.231.1.10 -> gateway VIP 10.231.1.1 | fw1, fw2 | VIP 10.232.1.1 <- server 10.232.1.10"
note "sync link fw1 10.231.254.1 <-> fw2 10.231.254.2"

for fw in fw1 fw2; do
    nsx "$fw" sh -c '
        sysctl -qw net.ipv4.ip_forward=1
        sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0
        sysctl -qw net.netfilter.nf_conntrack_events=1'
    # Stateful forwarding: only established/related packets, plus a bare SYN
    # to the TCP service or a new UDP flow to the UDP service. Mid-stream
    # packets of a flow this kernel does not know are INVALID and dropped, so
    # a connection survives a failover only if its state was replicated.
    nsx "$fw" nft -f - <<EOF || die "nft on $fw"
table inet demo {
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state invalid counter drop
        ct state established,related counter accept
        tcp dport $PORT_TCP tcp flags & (fin | syn | rst | ack) == syn ct state new counter accept
        udp dport $PORT_UDP ct state new counter accept
    }
}
EOF
done

# ------------------------------------------------------------- conntrackd --

step "Starting conntrackd on fw1 and fw2 ($SYNC_MODE over the sync link)"
if [ "$SYNC_MODE" = FTFW ]; then
    MODE_BLOCK="Mode FTFW { }"
else
    MODE_BLOCK="Mode ALARM { RefreshTime 1 CacheTimeout 10 }"
fi
for fw in fw1 fw2; do
    mkdir -p "$DIR/$fw"
    if [ "$fw" = fw1 ]; then me=1 peer=2; else me=2 peer=1; fi
    cat >"$DIR/$fw/conntrackd.conf" <<EOF
Sync {
    $MODE_BLOCK
    UDP {
        IPv4_address 10.231.254.$me
        IPv4_Destination_Address 10.231.254.$peer
        Port 3780
        Interface sync0
        Checksum on
    }
}
General {
    LogFile $DIR/$fw/conntrackd.log
    Syslog off
    LockFile $DIR/$fw/lock
    UNIX {
        Path $DIR/$fw/ctl
    }
    Filter From Userspace {
        Protocol Accept {
            TCP
            UDP
        }
        Address Ignore {
            IPv4_address 127.0.0.1
            IPv4_address 10.231.254.0/30
            IPv4_address 10.231.1.2
            IPv4_address 10.231.1.3
            IPv4_address 10.232.1.2
            IPv4_address 10.232.1.3
        }
    }
}
EOF
    nsx "$fw" "$CONNTRACKD" -C "$DIR/$fw/conntrackd.conf" \
        >"$DIR/$fw/conntrackd.out" 2>&1 </dev/null &
done
for fw in fw1 fw2; do
    wait_for 10 "conntrackd on $fw to answer" ctl "$fw" -s
done
note "both daemons answer on their control sockets"

# -------------------------------------------------------------- keepalived --

step "Starting keepalived (VRRPv3, adverts every 0.3 s; fw1 priority 150, fw2 100)"
for fw in fw1 fw2; do
    if [ "$fw" = fw1 ]; then prio=150; else prio=100; fi
    sed -e "s|@ROUTER_ID@|$P-$fw|" \
        -e "s|@ADVERT_INT@|0.3|" \
        -e "s|@PRIORITY@|$prio|" \
        -e "s|@LAN_IF@|lan0|g; s|@WAN_IF@|wan0|g" \
        -e "s|@LAN_VRID@|31|; s|@WAN_VRID@|32|" \
        -e "s|@LAN_VIP@|10.231.1.1/24|; s|@WAN_VIP@|10.232.1.1/24|" \
        -e "s|@CONNTRACKD_BIN@|$CONNTRACKD|g" \
        -e "s|@CONNTRACKD_CONFIG@|$DIR/$fw/conntrackd.conf|g" \
        -e "s|@NOTIFY_LOG@|$DIR/$fw/notify.log|g" \
        -e "s|@NOTIFY_SCRIPT@|$ROOT/conf/primary-backup.sh|g" \
        "$ROOT/conf/keepalived.conf.in" >"$DIR/$fw/keepalived.conf"
    nsx "$fw" keepalived -n -l -G -P -f "$DIR/$fw/keepalived.conf" \
        -p "$DIR/$fw/keepalived.pid" -r "$DIR/$fw/vrrp.pid" -c "$DIR/$fw/check.pid" \
        >"$DIR/$fw/keepalived.log" 2>&1 </dev/null &
done
wait_for 15 "fw1 to become master" has_vip fw1
note "master: $(master) (holds 10.231.1.1 and 10.232.1.1)"
wait_for 10 "fw1's notify script" grep -q "primary: done" "$DIR/fw1/notify.log"

# ----------------------------------------------------------------- traffic --

step "Opening a long-lived TCP stream through fw1 (client port $STREAM_PORT, a numbered line every 0.1 s, echoed)"
nsx server socat TCP-LISTEN:$PORT_TCP,fork,reuseaddr EXEC:cat >/dev/null 2>&1 </dev/null &
nsx server socat -u UDP-RECV:$PORT_UDP /dev/null >/dev/null 2>&1 </dev/null &
sleep 0.3
# The long-lived stream: the client sends a numbered line every 0.1 s and the
# server echoes it; each echo is stamped on arrival (perl, one process: a shell
# loop forking `date` per line lags behind on a busy machine). socat's exit status tells
# a reset (non-zero) from a clean end.
(
    i=0
    while :; do
        i=$((i + 1))
        echo "$i"
        sleep 0.1
    done
) | (
    nsx client socat - TCP:10.232.1.10:$PORT_TCP,nodelay,sourceport=$STREAM_PORT,reuseaddr
    echo "$?" >"$DIR/stream.exit"
) 2>"$DIR/stream.err" | perl -MTime::HiRes=time -ne '$| = 1; printf "%.3f %s", time, $_' >"$DIR/stream.log" &
BG_PIDS="$BG_PIDS $!"
wait_for 10 "the TCP stream's first echo" test -s "$DIR/stream.log"

last_echo() { tail -n 1 "$DIR/stream.log" 2>/dev/null | awk '{ print $2 }'; }
# One line of cache sizes; on a terminal it rewrites itself in place.
if [ -t 1 ]; then CR='\r'; else CR='\n'; fi
fw_caches() {
    if [ -e "$DIR/$1.down" ]; then
        printf '%s: %-27s' "$1" "down"
    else
        printf '%s: internal %3s external %3s' "$1" "$(cache_count "$1" -i)" "$(cache_count "$1" -e)"
    fi
}
progress() {
    printf "$CR    %s | %s | stream echo #%s" "$(fw_caches fw1)" "$(fw_caches fw2)" "$(last_echo)"
}

step "Replication, live: 4 more TCP and 4 UDP flows open (internal cache = this node's flows, external = the peer's)"
progress
# Quieter flows, one at a time so that the caches visibly fill: TCP connections
# that send a line every second, UDP flows from distinct source ports.
for k in 1 2 3 4; do
    (while :; do echo "tcp$k"; sleep 1; done) |
        nsx client socat - TCP:10.232.1.10:$PORT_TCP >/dev/null 2>&1 &
    BG_PIDS="$BG_PIDS $!"
    sleep 0.3
    progress
    (while :; do echo "udp$k"; sleep 0.5; done) |
        nsx client socat - UDP-SENDTO:10.232.1.10:$PORT_UDP,sourceport=$((40000 + k)) >/dev/null 2>&1 &
    BG_PIDS="$BG_PIDS $!"
    sleep 0.3
    progress
done
i=0
while [ $i -lt 4 ]; do
    sleep 0.4
    progress
    i=$((i + 1))
done
echo
note "fw2's external cache (the flows fw1 replicated to it):"
ctl fw2 -e 2>/dev/null | sed 's/^/      /'
[ "$(cache_count fw2 -e)" -ge 9 ] 2>/dev/null ||
    die "fw2 did not receive fw1's flows (expected at least 9 in its external cache); conntrackd log: $DIR/fw2/conntrackd.log"
note "fw2's kernel knows none of them yet: $(nsx fw2 conntrack -L -p tcp --dport $PORT_TCP 2>/dev/null | grep -c .) TCP entries to port $PORT_TCP"

# ---------------------------------------------------------------- failover --

step "Hard failure of fw1: freeze all its processes, unplug its links, kill them"
before=$(last_echo)
T_FAIL=$(now)
pids=$(ip netns pids "$P-fw1")
for pid in $pids; do kill -STOP "$pid" 2>/dev/null; done
for l in lan0 wan0 sync0; do nsx fw1 ip link set "$l" down; done
for pid in $pids; do kill -KILL "$pid" 2>/dev/null; done
touch "$DIR/fw1.down"
note "fw1 is gone at echo #$before"

wait_for 10 "fw2 to take over the VIPs" has_vip fw2
T_MASTER=$(now)
note "fw2 is master after $(elapsed "$T_FAIL" "$T_MASTER") s (VRRP: 3 missed adverts + skew)"
wait_for 15 "fw2's notify script to finish" grep -q "primary: done" "$DIR/fw2/notify.log"
note "fw2's notify script (conf/primary-backup.sh primary):"
grep " primary" "$DIR/fw2/notify.log" | sed 's/^/      /'
note "fw2's conntrackd log about the commit:"
grep -i -E "commit" "$DIR/fw2/conntrackd.log" | sed 's/^/      /'

# The stream resumes when the client's TCP retransmits after the takeover: an
# echo stamped after fw2 took the addresses (fw1 was long gone by then).
resumed() { tail -n 1 "$DIR/stream.log" | awk -v t="$T_MASTER" '$1 > t + 0 { ok = 1 } END { exit !ok }'; }
wait_for 20 "the TCP stream to resume through fw2" resumed
# The longest silence between two echoes, from the last one before the failure on.
gap=$(awk -v f="$T_FAIL" '
    $1 <= f { prev = $1; next }
    { if (prev != "" && $1 - prev > max) max = $1 - prev; prev = $1 }
    END { printf "%.2f", max }' "$DIR/stream.log")
# Still flowing a second later (at least 5 more echoes), and never reset.
n=$(last_echo)
sleep 1
if [ -e "$DIR/stream.exit" ]; then
    die "the TCP stream ended (socat exit $(cat "$DIR/stream.exit")): it was reset"
fi
[ "$(last_echo)" -ge $((n + 5)) ] ||
    die "the TCP stream stalled again after resuming (echo #$n, then #$(last_echo) a second later)"
step "The long-lived TCP connection survived"
note "fw2's kernel entry for it (committed from the replicated state):"
nsx fw2 conntrack -L -p tcp --sport $STREAM_PORT --dport $PORT_TCP 2>/dev/null | sed 's/^/      /'
progress
echo

# ----------------------------------------------------------------- summary --

committed=$(grep -o "Committed [0-9]* new entries" "$DIR/fw2/conntrackd.log" | tail -n 1)
step "Summary"
cat <<EOF
    The master firewall fw1 was frozen, unplugged and killed at echo #$before.
    keepalived on fw2 noticed after $(elapsed "$T_FAIL" "$T_MASTER") s and took the gateway addresses;
    its notify script had conntrackd commit the flows fw1 had replicated
    (${committed:-see the log above}), so fw2's firewall accepted the
    existing connections instead of dropping them as INVALID.
    The TCP stream went silent for $gap s (TCP retransmission back-off) and
    carried on with no reset: now at echo #$(last_echo).
    Total demo time: $(elapsed "$T0") s.
EOF
