#!/usr/bin/env bash
# Context switches per replicated event, per daemon thread (issue 5, sleep/wake).
#
# Makes two namespaces joined by a veth (10.231.77.1/24 and .2, names carry the PID, removed
# on exit), starts our daemon in the first with a NOTRACK/UDP config towards the second
# (nobody listens there: only the daemon's own work is measured), and runs one ctgen load in
# it: MODE=churn (the default: $RATE events/s for $DUR s around $LIVE live entries, the shape
# where every pipeline thread wakes for small batches) or MODE=burst ($N creates at full
# speed). Then it prints, per thread, the voluntary and involuntary context switches and CPU
# ticks the load cost (/proc/<pid>/task/*/status and stat), and the switches per event.
#
# These are counts, not wall time. A paced churn fixes when events arrive (ctgen sends each
# $SLICE_US slice at once), so the counts hold on a loaded machine much better than a rate does.
# A burst does not: how much work a thread finds per wake-up then depends on the neighbours.
#
# Usage: [MODE=churn RATE=20000 DUR=5 LIVE=1000 SLICE_US=1000 | MODE=burst N=100000] [RUNS=3]
#        perf/wakeups.sh
# Needs root, target/release/conntrackd and target/release/ctgen
# (cargo build --release --bin conntrackd -p conntrackd && cargo build --release -p conntrackd-perf).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${MODE:-churn}
N=${N:-100000}
RATE=${RATE:-20000}
DUR=${DUR:-5}
LIVE=${LIVE:-1000}
SLICE_US=${SLICE_US:-1000}
RUNS=${RUNS:-3}
SETTLE_S=${SETTLE_S:-20}
bin=$PWD/target/release/conntrackd
ctgen=$PWD/target/release/ctgen
A=ctwakeA$$
B=ctwakeB$$
dir=$(mktemp -d /tmp/ctwake.XXXXXX)
pid=

cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    ip netns del "$A" 2>/dev/null || true
    ip netns del "$B" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

ip netns add "$A"
ip netns add "$B"
ip -n "$A" link set lo up
ip -n "$A" link add ctw0 type veth peer name ctw1 netns "$B"
ip -n "$A" addr add 10.231.77.1/24 dev ctw0
ip -n "$B" addr add 10.231.77.2/24 dev ctw1
ip -n "$A" link set ctw0 up
ip -n "$B" link set ctw1 up
ip netns exec "$A" sysctl -qw net.netfilter.nf_conntrack_events=1

cat >"$dir/ct.conf" <<EOF
Sync {
	Mode NOTRACK {
	}
	UDP {
		IPv4_address 10.231.77.1
		IPv4_Destination_Address 10.231.77.2
		Port 3781
		Interface ctw0
	}
}
General {
	HashSize 65536
	HashLimit 1048576
	LogFile $dir/ct.log
	LockFile $dir/ct.lock
	UNIX { Path $dir/ct.ctl }
	NetlinkBufferSize 2097152
	NetlinkBufferSizeMaxGrowth 134217728
}
EOF

snapshot() { # pid -> "comm vol invol utime stime" per thread, sorted by comm
    local t comm vol inv ut st
    for t in /proc/"$1"/task/*; do
        comm=$(cat "$t/comm")
        vol=$(awk '/^voluntary_ctxt_switches/{print $2}' "$t/status")
        inv=$(awk '/^nonvoluntary_ctxt_switches/{print $2}' "$t/status")
        # utime and stime are fields 14 and 15; after the ")" that ends comm, 12 and 13.
        read -r ut st < <(sed 's/.*) //' "$t/stat" | awk '{print $12, $13}')
        echo "$comm $vol $inv $ut $st"
    done | sort
}

json() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$dir/ctgen.json" "$1"; }

for run in $(seq "$RUNS"); do
    "$ctgen" --netns "$A" flush >/dev/null
    rm -f "$dir/ct.lock" "$dir/ct.ctl"
    ip netns exec "$A" "$bin" -C "$dir/ct.conf" >"$dir/daemon.out" 2>&1 &
    pid=$!
    for _ in $(seq 100); do [ -S "$dir/ct.ctl" ] && break; sleep 0.1; done
    sleep 1
    before=$(snapshot "$pid")
    if [ "$MODE" = burst ]; then
        "$ctgen" --netns "$A" --json burst "$N" >"$dir/ctgen.json"
        events=$N
        creates=$N
    else
        "$ctgen" --netns "$A" --json churn --rate "$RATE" --duration "$DUR" --live "$LIVE" --slice-us "$SLICE_US" >"$dir/ctgen.json"
        events=$(json 'j["events"] + j["prefill"]')
        creates=$(json 'j["creates"] + j["prefill"]')
    fi
    # Wait until the internal cache has seen every create ("connections created" of -s).
    got=0
    for _ in $(seq $((SETTLE_S * 10))); do
        got=$(ip netns exec "$A" "$bin" -C "$dir/ct.conf" -s 2>/dev/null | awk '/connections created/{print $3; exit}' || true)
        [ "${got:-0}" -ge "$creates" ] 2>/dev/null && break
        sleep 0.1
    done
    sleep 0.5
    after=$(snapshot "$pid")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
    echo "run $run: $MODE, $events events, ctgen rate $(json 'j["rate"]')/s, creates seen ${got:-?}/$creates"
    join <(echo "$before") <(echo "$after") | awk -v n="$events" '
        { vol = $6 - $2; inv = $7 - $3; cpu = $8 + $9 - $4 - $5
          printf "  %-12s vol %7d (%6.4f/event)  invol %6d  cpu %4d ticks\n", $1, vol, vol / n, inv, cpu
          tv += vol; ti += inv; tc += cpu }
        END { printf "  %-12s vol %7d (%6.4f/event)  invol %6d  cpu %4d ticks\n", "TOTAL", tv, tv / n, ti, tc }'
done
