#!/bin/sh
# Regenerates the ctnetlink test vectors in this directory from the running kernel.
# Run as root from this directory:  sh capture.sh
# Every scenario runs in a private network namespace (nlcodec-PID-N) that is deleted
# afterwards; `strace -e write=all -e read=all` records the exact bytes conntrack(8) 1.4.7
# (libnetfilter_conntrack) sends and the kernel answers; strace2bin.py turns them into
# NAME.req.bin (requests) and NAME.resp.bin (kernel answers).
set -u
T=$(mktemp -d)
NS=""
N=0
cleanup() {
    for ns in $(ip netns list | awk '{print $1}' | grep "^nlcodec-$$-"); do ip netns del "$ns"; done
    rm -rf "$T"
}
trap cleanup EXIT INT TERM

fresh() { # a new, empty namespace for the next scenario
    [ -n "$NS" ] && ip netns del "$NS"
    N=$((N + 1)); NS="nlcodec-$$-$N"
    ip netns add "$NS"
}
ct() { # NAME conntrack-args...: run conntrack in the namespace under strace, keep the bytes
    name=$1; shift
    echo "== $name: conntrack $*"
    ip netns exec "$NS" strace -qq -f -e trace=sendto,sendmsg,recvfrom,recvmsg \
        -e write=all -e read=all -o "$T/$name.log" conntrack "$@"
    python3 ./strace2bin.py "$T/$name.log" "./$name"
}

# IPv4 TCP ESTABLISHED, ASSURED, zone; then EEXIST, delete ACK, ENOENT; events NEW + DESTROY.
# (No -m here: conntrack 1.4.7 combined with -u sends the status value as CTA_MARK.)
fresh
ip netns exec "$NS" strace -qq -f -e trace=recvfrom,recvmsg -e read=all -o "$T/tcp4_events.log" \
    timeout -s INT 3 conntrack -E &
sleep 1
ct tcp4_create -I -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 1000 --dport 80 --state ESTABLISHED \
    -t 100 -u ASSURED -w 5
ct tcp4_dump -L
ct tcp4_eexist -I -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 1000 --dport 80 --state ESTABLISHED \
    -t 100 -u ASSURED -w 5
ct tcp4_delete -D -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 1000 --dport 80 -w 5
ct tcp4_enoent -G -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 1000 --dport 80
wait
python3 ./strace2bin.py "$T/tcp4_events.log" ./tcp4_events

# IPv4 UDP with a mark and labels (bits 1 and 66): connlabel.conf via an overlay on /etc in a
# private mount namespace, so the host's /etc is untouched. The kernel only keeps labels in a
# namespace where something uses them, hence the nft rule.
fresh
mkdir -p "$T/up/xtables" "$T/work"
printf '1 one\n66 sixtysix\n' > "$T/up/xtables/connlabel.conf"
cp "$T/up/xtables/connlabel.conf" "$T/up/connlabel.conf"
unshare -m sh -c "mount -t overlay overlay -o lowerdir=/etc,upperdir=$T/up,workdir=$T/work /etc &&
    ip netns exec $NS nft add table ip t &&
    ip netns exec $NS nft add chain ip t c '{ type filter hook prerouting priority 0; }' &&
    ip netns exec $NS nft add rule ip t c ct label one counter &&
    ip netns exec $NS strace -qq -f -e trace=sendto,sendmsg,recvfrom,recvmsg -e write=all \
        -e read=all -o $T/udp4_labels_create.log conntrack -I -p udp -s 10.0.1.1 -d 10.0.1.2 \
        --sport 5353 --dport 53 -t 30 -m 0x12345678 --label-add one,sixtysix"
python3 ./strace2bin.py "$T/udp4_labels_create.log" ./udp4_labels_create
ct udp4_labels_dump -L

# ICMP echo.
fresh
ct icmp4_create -I -p icmp -s 10.0.2.1 -d 10.0.2.2 --icmp-type 8 --icmp-code 0 --icmp-id 4660 -t 30
ct icmp4_dump -L

# IPv6 TCP SYN_SENT with a mark.
fresh
ct tcp6_create -I -p tcp -s 2001:db8::1 -d 2001:db8::2 --sport 40000 --dport 443 \
    --state SYN_SENT -t 120 -m 42
ct tcp6_dump -L -f ipv6

# ICMPv6 echo.
fresh
ct icmp6_create -I -p icmpv6 -s 2001:db8::1 -d 2001:db8::2 --icmpv6-type 128 \
    --icmpv6-code 0 --icmpv6-id 77 -t 30
ct icmp6_dump -L -f ipv6

# SCTP ESTABLISHED with verification tags 0x11223344 / 0x55667788 (decimal: conntrack 1.4.7
# reads hex as 0 here).
fresh
ct sctp4_create -I -p sctp -s 10.0.3.1 -d 10.0.3.2 --sport 3868 --dport 3869 --state ESTABLISHED \
    --orig-vtag 287454020 --reply-vtag 1432778632 -t 200
ct sctp4_dump -L

# GRE with keys.
fresh
ct gre4_create -I -p gre -s 10.0.4.1 -d 10.0.4.2 --srckey 0x1234 --dstkey 0x5678 -t 60
ct gre4_dump -L

# Source NAT (address and port) and destination NAT.
fresh
ct snat4_create -I -p tcp -s 192.168.1.10 -d 198.51.100.7 --sport 33000 --dport 80 \
    --state ESTABLISHED -t 300 -u SEEN_REPLY --src-nat 203.0.113.5:50000
ct dnat4_create -I -p udp -s 198.51.100.9 -d 203.0.113.5 --sport 40001 --dport 53 -t 30 \
    --dst-nat 192.168.1.53:5353
ct nat4_dump -L

# IPv6 source NAT, and a per-direction zone (CTA_TUPLE_ZONE in the original tuple only).
fresh
ct snat6_create -I -p tcp -s 2001:db8::10 -d 2001:db8::20 --sport 1234 --dport 80 \
    --state ESTABLISHED -t 100 --src-nat 2001:db8::99
ct snat6_dump -L -f ipv6
ct zone4_create -I -p udp -s 10.1.1.1 -d 10.1.1.2 --sport 1 --dport 2 -t 100 --orig-zone 3
ct zone4_dump -L

# A real FTP control connection over lo with the ftp helper attached by nft: real TCP window
# scale / flags, helper name, and an expectation made by the helper (PORT command). Then an
# expectation created with conntrack -I expect (the ftp helper allows one, so it replaces the
# first). Expectation events are recorded too.
fresh
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" nft -f - <<NFT
table inet t {
  ct helper ftp-std { type "ftp" protocol tcp; }
  chain out { type filter hook output priority 0; tcp dport 21 ct helper set "ftp-std"; }
  chain pre { type filter hook prerouting priority 0; tcp dport 21 ct helper set "ftp-std"; }
}
NFT
ip netns exec "$NS" strace -qq -f -e trace=recvfrom,recvmsg -e read=all -o "$T/ftp_exp_events.log" \
    timeout -s INT 4 conntrack -E expect &
sleep 1
ip netns exec "$NS" python3 ./ftp_session.py 3 &
sleep 1
ct ftp_ct_dump -L
ct ftp_exp_dump -L expect
ct ftp_exp_create -I expect --orig-src 127.0.0.1 --orig-dst 127.0.0.1 -p tcp --sport 40021 \
    --dport 21 --tuple-src 127.0.0.2 --tuple-dst 127.0.0.1 --mask-src 255.255.255.255 \
    --mask-dst 255.255.255.255 --tuple-port-src 0 --tuple-port-dst 2020 --mask-port-src 0 \
    --mask-port-dst 65535 -t 200
ct ftp_exp_dump2 -L expect
wait
python3 ./strace2bin.py "$T/ftp_exp_events.log" ./ftp_exp_events

# The same over IPv6 (::1, EPRT): an IPv6 expectation.
fresh
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" nft -f - <<NFT
table inet t {
  ct helper ftp-std { type "ftp" protocol tcp; }
  chain out { type filter hook output priority 0; tcp dport 21 ct helper set "ftp-std"; }
  chain pre { type filter hook prerouting priority 0; tcp dport 21 ct helper set "ftp-std"; }
}
NFT
ip netns exec "$NS" python3 ./ftp_session.py 2 6 &
sleep 1
ct ftp6_exp_dump -L expect -f ipv6
wait

# Accounting and timestamps on: a real UDP flow over lo (two datagrams to a closed port), its
# dump line (counters, start time) and its destroy event (counters, start and stop time).
fresh
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" sysctl -q -w net.netfilter.nf_conntrack_acct=1 net.netfilter.nf_conntrack_timestamp=1
ip netns exec "$NS" nft -f - <<NFT
table inet t {
  chain out {
    type filter hook output priority 0;
    ct state new counter
  }
}
NFT
ip netns exec "$NS" strace -qq -f -e trace=recvfrom,recvmsg -e read=all -o "$T/acct_events.log" \
    timeout -s INT 3 conntrack -E &
sleep 1
ip netns exec "$NS" python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 40000)); [s.sendto(b"x" * 10, ("127.0.0.1", 9)) for _ in range(2)]'
ct acct_dump -L -p udp
ct acct_delete -D -p udp
wait
python3 ./strace2bin.py "$T/acct_events.log" ./acct_events
