#!/bin/sh
# Proves the kernel accepts what our emitter builds: sends emitted_requests.bin (written by
# `NLCODEC_BLESS=1 cargo test --lib golden`) into a fresh namespace with kernel_check.py,
# stores the answers in emitted_requests.resp.bin, then dumps the resulting tables with
# conntrack(8) under strace (emitted_dump4/6/exp.resp.bin). Run as root from this directory.
set -u
NS="nlcodec-$$-k"
T=$(mktemp -d)
cleanup() { ip netns del "$NS" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT INT TERM
ip netns add "$NS"
# Labels are only kept in a namespace where something uses them (any label rule will do).
ip netns exec "$NS" nft -f - <<NFT
table ip t {
  chain c {
    type filter hook prerouting priority 0;
    ct label 1 counter
  }
}
NFT
ip netns exec "$NS" python3 ./kernel_check.py emitted_requests.bin emitted_requests.resp.bin
for d in "emitted_dump4 -L" "emitted_dump6 -L -f ipv6" "emitted_dumpexp -L expect"; do
    set -- $d; name=$1; shift
    ip netns exec "$NS" strace -qq -f -e trace=sendto,recvfrom,recvmsg -e read=all \
        -o "$T/$name.log" conntrack "$@"
    python3 ./strace2bin.py "$T/$name.log" "./$name"
    rm -f "./$name.req.bin"
done
