#!/usr/bin/env python3
"""Turn `strace -e write=all -e read=all` hex dumps of netlink syscalls into raw .bin files.

usage: strace2bin.py STRACE_LOG OUT_PREFIX
writes OUT_PREFIX.req.bin (bytes of every sendto/sendmsg, concatenated) and
OUT_PREFIX.resp.bin (bytes of every recvfrom/recvmsg, concatenated). Each syscall carries whole
netlink messages, so each file is a valid stream of netlink messages.
"""
import re, sys

log, prefix = sys.argv[1], sys.argv[2]
out = {"req": bytearray(), "resp": bytearray()}
cur = None
for line in open(log):
    m = re.match(r"^(?:\[pid\s+)?\d*\]?\s*(sendto|sendmsg|recvfrom|recvmsg)\(", line)
    if m:
        cur = "req" if m.group(1).startswith("send") else "resp"
        continue
    if re.match(r"^ \| [0-9a-f]{5}  ", line) and cur:
        # Fixed columns: " | OFFSET  " then 16 hex bytes in 49 columns, then the ASCII.
        out[cur] += bytes.fromhex(line[10:59].replace(" ", ""))
        continue
    if not line.startswith(" *"):
        cur = None
for k, v in out.items():
    if v:
        open(f"{prefix}.{k}.bin", "wb").write(v)
        print(f"{prefix}.{k}.bin: {len(v)} bytes")
