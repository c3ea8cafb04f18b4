#!/usr/bin/env bats
# SIGINT and SIGTERM: stop accepting, close every WebSocket with 1001, exit 0 promptly.

load helpers

# open_subscribers N: N WebSocket clients waiting for messages; sets SUB_PIDS, SUB_OUTS.
open_subscribers() {
	SUB_PIDS=() SUB_OUTS=()
	for i in $(seq "$1"); do
		bg ws "ws://127.0.0.1:$CHATD_PORT/ws/s$i" --timeout 10 --ready "$BATS_TEST_TMPDIR/ready.$i"
		SUB_PIDS+=("$BG_PID") SUB_OUTS+=("$BG_OUT")
	done
	for i in $(seq "$1"); do wait_until 5 test -e "$BATS_TEST_TMPDIR/ready.$i"; done
}

# silent_client: a raw TCP client that completes the upgrade, then never reads or
# answers again; returns once the upgrade is done.
silent_client() {
	bg $PY -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
print(s.recv(200).split(b"\r\n")[0].decode(), flush=True)
time.sleep(30)' "$CHATD_PORT"
	wait_until 5 grep -q 101 "$BG_OUT"
}

# stop_and_time SIGNAL: signal chatd, wait for it; sets STOP_STATUS and STOP_MS.
stop_and_time() {
	local t0 t1
	t0=$(date +%s%N)
	kill "-$1" "$CHATD_PID"
	wait "$CHATD_PID" && STOP_STATUS=0 || STOP_STATUS=$?
	t1=$(date +%s%N)
	STOP_MS=$(((t1 - t0) / 1000000))
}

@test "SIGTERM closes every WebSocket with 1001 and exits 0" {
	start_chatd
	open_subscribers 5
	stop_and_time TERM
	echo "exit $STOP_STATUS after ${STOP_MS} ms"
	[ "$STOP_STATUS" -eq 0 ]
	for i in 0 1 2 3 4; do
		wait "${SUB_PIDS[$i]}"
		[ "$(cat "${SUB_OUTS[$i]}")" = "CLOSE 1001 server shutting down" ]
	done
	grep -q 'INFO chatd: Terminated: closing 5 subscriber connections and exiting' "$CHATD_LOG"
	grep -q 'INFO chatd: stopped' "$CHATD_LOG"
}

@test "SIGINT (Ctrl-C) does the same, in Redis mode too" {
	start_redis
	start_chatd --redis "$REDIS_URL"
	wait_healthy "$CHATD_URL"
	open_subscribers 2
	stop_and_time INT
	[ "$STOP_STATUS" -eq 0 ]
	# a second or two at most: the grace period is 1.5 s for clients that never answer
	[ "$STOP_MS" -lt 5000 ]
	wait "${SUB_PIDS[0]}"
	[ "$(cat "${SUB_OUTS[0]}")" = "CLOSE 1001 server shutting down" ]
}

@test "a client that never answers the close does not hold up the exit" {
	start_chatd
	silent_client
	stop_and_time TERM
	[ "$STOP_STATUS" -eq 0 ]
	[ "$STOP_MS" -lt 5000 ]
}

@test "after the signal, new connections are refused" {
	start_chatd
	silent_client
	kill -TERM "$CHATD_PID"
	sleep 0.2 # inside the grace period: chatd still runs, waiting for the silent client
	kill -0 "$CHATD_PID"
	run curl -s -m 2 -o /dev/null -w '%{http_code}' "$CHATD_URL/healthz"
	[ "$output" = "000" ]
}
