#!/usr/bin/env python3
"""A minimal FTP control exchange over loopback, enough for the kernel's ftp helper to create
an expectation: the helper only parses a command that follows a complete line in the same
direction, hence USER before PORT/EPRT.

usage: ftp_session.py SECONDS [6]
Holds the connection open for SECONDS. With "6": IPv6 (::1, EPRT), else IPv4 (PORT).
"""
import socket, sys, time

v6 = len(sys.argv) > 2 and sys.argv[2] == "6"
fam, host = (socket.AF_INET6, "::1") if v6 else (socket.AF_INET, "127.0.0.1")
srv = socket.socket(fam)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((host, 21))
srv.listen(1)
cli = socket.socket(fam)
cli.bind((host, 40021))
cli.connect((host, 21))
conn, _ = srv.accept()
conn.sendall(b"220 hi\r\n"); cli.recv(100)
cli.sendall(b"USER a\r\n"); conn.recv(100); conn.sendall(b"331 ok\r\n"); cli.recv(100)
cli.sendall(b"EPRT |2|::1|51210|\r\n" if v6 else b"PORT 127,0,0,1,200,10\r\n"); conn.recv(100)
conn.sendall(b"200 ok\r\n"); cli.recv(100)
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 1)
