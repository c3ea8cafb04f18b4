#!/usr/bin/python3
"""wsburst.py: send several WebSocket text frames in one TCP write, so the server reads them
in one loop turn (the way a busy server sees many clients at once).

wsburst.py HOST PORT PATH [--wait S] FRAME...

Does the opening handshake by hand (plain sockets: nothing of chatd's), sends every FRAME
as a masked text frame with one sendall(), then prints each text frame the server sends,
one per line, for --wait seconds (default 1), and ends with "CLOSE <code>" if the server
closed, else "END".
"""
import argparse, base64, os, socket, struct, time


def frame(text):
    data = text.encode()
    mask = os.urandom(4)
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("path")
    ap.add_argument("--wait", type=float, default=1)
    ap.add_argument("frames", nargs="*")
    a = ap.parse_intermixed_args()
    s = socket.create_connection((a.host, a.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {a.path} HTTP/1.1\r\nHost: {a.host}:{a.port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            print("CLOSE 0 handshake refused", flush=True)
            return
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        print("CLOSE 0 " + head.split(b"\r\n")[0].decode(), flush=True)
        return
    s.sendall(b"".join(frame(t) for t in a.frames))
    end = time.monotonic() + a.wait
    while True:
        while len(buf) >= 2:
            op, n = buf[0] & 0x0F, buf[1] & 0x7F
            at = 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, at = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, at = struct.unpack("!Q", buf[2:10])[0], 10
            if len(buf) < at + n:
                break
            payload, buf = buf[at:at + n], buf[at + n:]
            if op == 1:
                print(payload.decode(), flush=True)
            elif op == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                print(f"CLOSE {code}", flush=True)
                return
        left = end - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            print("CLOSE 1006", flush=True)
            return
        buf += chunk
    print("END", flush=True)


main()
