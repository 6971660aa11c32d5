#!/bin/bash
# The primary's RSS (VmRSS, VmHWM) after a 1M-entry burst has reached the backup, with the
# FTFW/UDP bench config and NetlinkBufferSize = $1 bytes; prints the primary's netlink
# overrun count too. Raises nf_conntrack_max for the run and restores it on exit.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/ctd-prof}
P=$$; A=ctr-$P-a; B=ctr-$P-b; BIN=$ROOT/target/release/conntrackd; CTGEN=$ROOT/target/release/ctgen
OLDMAX=$(sysctl -n net.netfilter.nf_conntrack_max)
cleanup() { for n in $A $B; do for p in $(ip netns pids $n 2>/dev/null); do kill -9 $p; done; ip netns del $n 2>/dev/null; done; sysctl -qw net.netfilter.nf_conntrack_max=$OLDMAX; }
trap cleanup EXIT
sysctl -qw net.netfilter.nf_conntrack_max=1250000
ip netns add $A; ip netns add $B
ip link add ctsA netns $A type veth peer name ctsB netns $B
ip -n $A addr add 10.231.1.1/24 dev ctsA; ip -n $B addr add 10.231.1.2/24 dev ctsB
ip -n $A link set ctsA up; ip -n $B link set ctsB up; ip -n $A link set lo up; ip -n $B link set lo up
for n in $A $B; do printf 'table inet ctbench {\n chain pre { type filter hook prerouting priority filter; policy accept; ct state invalid counter; }\n chain out { type filter hook output priority filter; policy accept; ct state invalid counter; }\n}\n' | ip netns exec $n nft -f -; done
for side in A B; do d=${OUT:-/tmp/ctd-prof}/r$side; rm -rf $d; mkdir -p $d; sed "s|/tmp/ctb-DIR|$d|; s|NetlinkBufferSize 2097152|NetlinkBufferSize $1|" $ROOT/bench/runs/2026-11-25-vm-full-2/conntrackd-ftfw-udp-node$side.conf > $d/c.conf; done
ip netns exec $A $BIN -C ${OUT:-/tmp/ctd-prof}/rA/c.conf > ${OUT:-/tmp/ctd-prof}/rA/out 2>&1 &
ip netns exec $B $BIN -C ${OUT:-/tmp/ctd-prof}/rB/c.conf > ${OUT:-/tmp/ctd-prof}/rB/out 2>&1 &
sleep 2
$CTGEN --netns $A burst 1000000 --proto mix > /dev/null 2>&1
for i in $(seq 1 120); do n=$(ip netns exec $B $BIN -C ${OUT:-/tmp/ctd-prof}/rB/c.conf -s | grep -A1 "cache external" | tail -1 | awk '{print $4}'); [ "$n" -ge 1000000 ] 2>/dev/null && break; sleep 0.5; done
PA=$(pgrep -f "${OUT:-/tmp/ctd-prof}/rA/c.conf" | head -1)
echo "buffer $1: B external $n after ${i} polls; A overruns: $(ip netns exec $A $BIN -C ${OUT:-/tmp/ctd-prof}/rA/c.conf -s runtime | grep -i overrun)"
grep -E "VmRSS|VmHWM" /proc/$PA/status
