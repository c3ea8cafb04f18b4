#!/usr/bin/python3
"""wsrecord.py: a WebSocket subscriber for tests that records until a marker message.

wsrecord.py URL --until JSON [--ready FILE] [--timeout S]

Connects (Python websockets, not our code), creates FILE once the handshake is done, and
prints every text frame received, one per line, until a frame that is an envelope whose
msg equals the JSON value given to --until. Ends with "END" after the marker, "TIMEOUT"
when S seconds passed without it, or "CLOSE <code> <reason>" when the server closed.
"""
import argparse, asyncio, json
import websockets


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--until", required=True)
    ap.add_argument("--ready")
    ap.add_argument("--timeout", type=float, default=30)
    a = ap.parse_args()
    until = json.loads(a.until)
    ws = await websockets.connect(a.url, max_size=None)
    if a.ready:
        open(a.ready, "w").close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + a.timeout
    try:
        while True:
            m = await asyncio.wait_for(ws.recv(), max(deadline - loop.time(), 0.001))
            print(m if isinstance(m, str) else "BINARY " + m.hex(), flush=True)
            try:
                o = json.loads(m)
            except ValueError:
                continue
            if isinstance(o, dict) and "type" not in o and o.get("msg") == until:
                print("END", flush=True)
                break
    except asyncio.TimeoutError:
        print("TIMEOUT", flush=True)
    except websockets.ConnectionClosed:
        print(f"CLOSE {ws.close_code} {ws.close_reason}", flush=True)
        return
    await ws.close()


asyncio.run(main())
