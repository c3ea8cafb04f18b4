#!/usr/bin/python3
"""tcpfreeze.py LISTEN_PORT TARGET_PORT: a loopback TCP proxy that can freeze connections.

Forwards every connection to 127.0.0.1:TARGET_PORT. On SIGUSR1 it freezes every open
connection that has sent a SUBSCRIBE (a Redis subscriber connection): it stops
forwarding in both directions but keeps the sockets open, like a peer behind a dead
NAT or a partition. Connections made afterwards are forwarded normally. Prints "ready"
once listening.
"""
import asyncio
import signal
import sys

conns = []


class Conn:
    def __init__(self):
        self.frozen = False
        self.subscriber = False


async def pipe(conn, reader, writer, watch):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if watch and b"SUBSCRIBE" in data.upper():
                conn.subscriber = True
            while conn.frozen:  # hold the bytes; the socket stays open
                await asyncio.sleep(3600)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        if not conn.frozen:
            writer.close()


async def handle(client_r, client_w, target):
    try:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        client_w.close()
        return
    conn = Conn()
    conns.append(conn)
    await asyncio.gather(pipe(conn, client_r, server_w, True), pipe(conn, server_r, client_w, False))


def freeze():
    for c in conns:
        if c.subscriber:
            c.frozen = True


async def main():
    listen, target = int(sys.argv[1]), int(sys.argv[2])
    server = await asyncio.start_server(lambda r, w: handle(r, w, target), "127.0.0.1", listen)
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, freeze)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
