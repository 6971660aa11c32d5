#!/bin/bash
# perf profile of our daemon (both nodes, release build) while the primary bulk-sends (-B)
# 200k entries to the backup. Namespaces ctp-PID-{a,b}, removed on exit. Uses the FTFW/UDP
# configs of bench/runs/2026-11-25-vm-full-2. Then:
#   perf report -i $OUT/perf.data --no-children --sort comm,sym --stdio
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/ctd-prof}
P=$$; A=ctp-$P-a; B=ctp-$P-b; BIN=$ROOT/target/release/conntrackd; CTGEN=$ROOT/target/release/ctgen
cleanup() { for n in $A $B; do for p in $(ip netns pids $n 2>/dev/null); do kill -9 $p; done; ip netns del $n 2>/dev/null; done; }
trap cleanup EXIT
ip netns add $A; ip netns add $B
ip link add ctsA netns $A type veth peer name ctsB netns $B
ip -n $A addr add 10.231.1.1/24 dev ctsA; ip -n $B addr add 10.231.1.2/24 dev ctsB
ip -n $A link set ctsA up; ip -n $B link set ctsB up; ip -n $A link set lo up; ip -n $B link set lo up
for n in $A $B; do printf 'table inet ctbench {\n chain pre { type filter hook prerouting priority filter; policy accept; ct state invalid counter; }\n chain out { type filter hook output priority filter; policy accept; ct state invalid counter; }\n}\n' | ip netns exec $n nft -f -; done
for side in A B; do d=${OUT:-/tmp/ctd-prof}/$side; rm -rf $d; mkdir -p $d; sed "s|/tmp/ctb-DIR|$d|" $ROOT/bench/runs/2026-11-25-vm-full-2/conntrackd-ftfw-udp-node$side.conf > $d/c.conf; done
ip netns exec $A $BIN -C ${OUT:-/tmp/ctd-prof}/A/c.conf > ${OUT:-/tmp/ctd-prof}/A/out 2>&1 &
ip netns exec $B $BIN -C ${OUT:-/tmp/ctd-prof}/B/c.conf > ${OUT:-/tmp/ctd-prof}/B/out 2>&1 &
sleep 2
ip netns exec $A $CTGEN --netns $A burst 200000 --proto mix > /dev/null 2>&1 || $CTGEN --netns $A burst 200000 --proto mix
sleep 3
ip netns exec $B $BIN -C ${OUT:-/tmp/ctd-prof}/B/c.conf -s | grep -A1 "cache external" | tail -1
ip netns exec $B $BIN -C ${OUT:-/tmp/ctd-prof}/B/c.conf -f external
PA=$(pgrep -f "${OUT:-/tmp/ctd-prof}/A/c.conf" | head -1); PB=$(pgrep -f "${OUT:-/tmp/ctd-prof}/B/c.conf" | head -1)
perf record -F 1999 -g --call-graph dwarf,16384 -o ${OUT:-/tmp/ctd-prof}/perf.data -p $PA,$PB -- sleep 6 > /dev/null 2>&1 &
sleep 0.5
t0=$(date +%s.%N)
ip netns exec $A $BIN -C ${OUT:-/tmp/ctd-prof}/A/c.conf -B
for i in $(seq 1 100); do n=$(ip netns exec $B $BIN -C ${OUT:-/tmp/ctd-prof}/B/c.conf -s | grep -A1 "cache external" | tail -1 | awk '{print $4}'); [ "$n" -ge 200000 ] 2>/dev/null && break; sleep 0.05; done
t1=$(date +%s.%N); echo "bulk: $n entries in $(echo "$t1 - $t0" | bc) s"
wait
