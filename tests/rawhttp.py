#!/usr/bin/python3
"""rawhttp.py PORT FILE: send FILE's bytes to 127.0.0.1:PORT in one write, read until the
server closes (5 s at most), print: the number of HTTP answers, the first status line, and
True/False for whether any answer said "connection: close"."""
import socket, sys

s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(open(sys.argv[2], "rb").read())
s.settimeout(5)
data = b""
while True:
    try:
        d = s.recv(4096)
    except socket.timeout:
        break
    if not d:
        break
    data += d
print(data.count(b"HTTP/1.1 "), data.split(b"\r\n")[0].decode(), b"connection: close" in data)
