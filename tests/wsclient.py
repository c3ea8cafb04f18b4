#!/usr/bin/python3
"""wsclient.py: a WebSocket client for tests, built on Python's websockets (not our code).

wsclient.py URL [--send TEXT]... [--send-binary HEX] [--send-text-hex HEX]
            [--send-fragments A B ...] [--count N] [--timeout S] [--ready FILE]

Connects, writes FILE (if --ready) once the handshake is done, sends each --send as a
text frame, then prints every text frame received, one per line, until N frames (if
--count), the timeout, or the server closes. Always ends with a line
"CLOSE <code> <reason>" (code 0 if the handshake failed: "CLOSE 0 <error>";
"TIMEOUT" if nothing closed the connection in time).
"""
import argparse, asyncio, sys
import websockets


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--send", action="append", default=[])
    ap.add_argument("--send-binary")
    ap.add_argument("--send-text-hex", help="a text frame with these raw bytes (may be invalid UTF-8)")
    ap.add_argument("--send-fragments", nargs="+", help="one text message sent as these fragments")
    ap.add_argument("--count", type=int)
    ap.add_argument("--timeout", type=float, default=5)
    ap.add_argument("--ready")
    ap.add_argument("--origin")
    a = ap.parse_args()
    try:
        ws = await asyncio.wait_for(
            websockets.connect(a.url, max_size=None, origin=a.origin), a.timeout)
    except Exception as e:  # handshake refused: report what happened
        print(f"CLOSE 0 {type(e).__name__}: {e}", flush=True)
        return
    if a.ready:
        open(a.ready, "w").close()
    for t in a.send:
        await ws.send(t)
    if a.send_binary:
        await ws.send(bytes.fromhex(a.send_binary))
    if a.send_text_hex:
        await ws.write_frame(True, 0x1, bytes.fromhex(a.send_text_hex))
    if a.send_fragments:
        await ws.send(iter(a.send_fragments))
    got = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + a.timeout
    try:
        while a.count is None or got < a.count:
            left = deadline - loop.time()
            if left <= 0:
                print("TIMEOUT", flush=True)
                await ws.close()
                return
            m = await asyncio.wait_for(ws.recv(), left)
            print(m if isinstance(m, str) else "BINARY " + m.hex(), flush=True)
            got += 1
        await ws.close()
    except asyncio.TimeoutError:
        print("TIMEOUT", flush=True)
        await ws.close()
        return
    except websockets.ConnectionClosed:
        pass
    print(f"CLOSE {ws.close_code} {ws.close_reason}", flush=True)


asyncio.run(main())
