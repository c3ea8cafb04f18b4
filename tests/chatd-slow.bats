#!/usr/bin/env bats
# A subscriber that stops reading must not slow the others down or make chatd's memory
# grow without bound: once 4096 messages are queued for it, it is cut off (1013).

load helpers

@test "a subscriber that never reads is cut off; an honest one receives everything" {
	start_chatd -v
	# the stuck client: tiny receive buffer, upgrade, then never read again
	bg $PY -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /ws/flood HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
print(s.recv(12).decode(), flush=True)
time.sleep(60)' "$CHATD_PORT"
	local stuck=$BG_PID
	wait_until 5 grep -q 101 "$BG_OUT"
	# 8000 messages of 1 KiB, far more than the socket buffers and the 4096-message queue;
	# chat-bench's own two subscribers must get every one (it exits non-zero on any loss)
	run chat-bench -u "$CHATD_URL" -c flood -s 2 -n 8000 -p 4 --size 1K --timeout 30
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q 'WARN ws: subscriber too slow, disconnecting peer=127.0.0.1 queued=4096' "$CHATD_LOG"
	# the stuck connection is gone from the server (dropped when it took no close frame)
	wait_until 10 sh -c "curl -s $CHATD_URL/healthz | grep -q '\"websockets\":0'"
	kill "$stuck"
}
