#!/usr/bin/env python3
"""Send the requests in a .bin file (as produced by our emitter) to the kernel, one at a time,
and store every answer. Run inside a private network namespace (see kernel_check.sh).

usage: kernel_check.py REQUESTS.bin ANSWERS.bin
Prints one line per request: its seq and the errno of the NLMSG_ERROR answering it.
"""
import socket, struct, sys

NETLINK_NETFILTER, NLMSG_ERROR = 12, 2
reqs = open(sys.argv[1], "rb").read()
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
s.bind((0, 0))
s.settimeout(2)
answers = bytearray()
off = 0
while off < len(reqs):
    length, _ty, _flags, seq, _pid = struct.unpack_from("=IHHII", reqs, off)
    s.send(reqs[off:off + length])
    off += (length + 3) & ~3
    done = False
    while not done:
        data = s.recv(65536)
        answers += data
        p = 0
        while p + 16 <= len(data):
            mlen, mty, _f, mseq, _ = struct.unpack_from("=IHHII", data, p)
            if mty == NLMSG_ERROR and mseq == seq:
                (err,) = struct.unpack_from("=i", data, p + 16)
                print(f"seq {seq}: errno {-err}")
                done = True
            p += (mlen + 3) & ~3
open(sys.argv[2], "wb").write(answers)
