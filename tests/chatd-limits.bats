#!/usr/bin/env bats
# Limits that keep one client from hurting the others: connection caps, header size and
# time, idle WebSockets, and the publish rate. Each case checks that an honest client on
# the same server is still served.

load helpers

# rawconns N: open N TCP connections to chatd, report how many chatd kept open
rawconns() {
	"$PY" - "$CHATD_PORT" "$1" <<'EOF'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
time.sleep(0.5)
alive = 0
for s in socks:
    s.settimeout(0.2)
    try:
        alive += s.recv(1) != b""
    except socket.timeout:
        alive += 1
    except OSError:
        pass
print(alive)
EOF
}

honest() {
	run post '{"chan":"h","msg":"still served"}'
	[[ "$output" == '200 {"ok":true,"chan":"h",'* ]]
}

@test "--max-connections-per-ip: connections past the cap are closed at once and logged" {
	start_chatd --max-connections-per-ip 5
	run rawconns 8
	[ "$output" = 5 ]
	grep -q 'WARN limits: connection refused: 5 connections from 127.0.0.1 (--max-connections-per-ip)' "$CHATD_LOG"
	# the slots come back once those connections are gone
	wait_until 5 sh -c "curl -s $CHATD_URL/healthz | grep -q '\"connections\":1,'"
	honest
}

@test "--max-connections caps the total" {
	start_chatd --max-connections 4
	run rawconns 6
	[ "$output" = 4 ]
	grep -q 'connection refused: 4 connections open (--max-connections)' "$CHATD_LOG"
	wait_until 5 curl -sf -o /dev/null "$CHATD_URL/healthz"
	honest
	run chatd --max-connections lots
	[ "$status" -eq 64 ]
}

@test "a header block past 8 KiB (10,000 headers) is dropped; others are served" {
	start_chatd
	run "$PY" - "$CHATD_PORT" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(5)
try:
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(10000)) + b"\r\n")
except OSError:
    pass
try:
    print(repr(s.recv(100)))
except OSError as e:
    print("closed:", type(e).__name__)
EOF
	[[ "$output" == "b''" || "$output" == "closed: "* ]]
	honest
}

@test "slowloris: a client trickling its headers is cut off (10 s); others are served meanwhile" {
	start_chatd
	cat >"$BATS_TEST_TMPDIR/slow.py" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
for i in range(40):
    try:
        s.send(b"X")
        s.settimeout(1)
        if s.recv(100) == b"":
            print("cut off"); break
    except socket.timeout:
        pass
    except OSError:
        print("cut off"); break
else:
    print("still open after 40 s")
EOF
	bg "$PY" "$BATS_TEST_TMPDIR/slow.py" "$CHATD_PORT" # (a background job's stdin is /dev/null)
	honest
	wait_until 30 grep -q . "$BG_OUT"
	[ "$(cat "$BG_OUT")" = "cut off" ]
}

@test "--ping-interval: a WebSocket that never answers pings is closed; a live one stays" {
	start_chatd --ping-interval 1
	cat >"$BATS_TEST_TMPDIR/mute.py" <<'EOF'
import base64, os, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
key = base64.b64encode(os.urandom(16)).decode()
s.send(("GET /ws/p HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
time.sleep(0.5)
s.settimeout(0.5)
got = b""
t0 = time.time()
while time.time() - t0 < 15:  # read what comes (pings), never answer
    try:
        d = s.recv(4096)
        if d == b"":
            print("closed"); sys.exit(0)
        got += d
    except socket.timeout:
        pass
    except OSError:
        print("closed"); sys.exit(0)
print("still open")
EOF
	bg "$PY" "$BATS_TEST_TMPDIR/mute.py" "$CHATD_PORT"
	local mute_out=$BG_OUT
	local ready=$BATS_TEST_TMPDIR/ready
	bg ws "ws://127.0.0.1:$CHATD_PORT/ws/p" --count 1 --timeout 12 --ready "$ready"
	wait_until 5 test -e "$ready"
	wait_until 14 grep -q . "$mute_out"
	[ "$(cat "$mute_out")" = closed ]
	post '{"chan":"p","msg":"alive"}'
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	grep -q '"msg":"alive"' "$BG_OUT"
}

@test "--publish-rate: over the rate is 429 with Retry-After (an error frame on a WebSocket); per user" {
	local secret=$BATS_TEST_TMPDIR/secret
	head -c 32 /dev/urandom | base64 >"$secret"
	start_chatd --publish-rate 1/s --publish-burst 3 --jwt-secret-file "$secret"
	local ann bob
	ann=$("$PY" "$TESTS_DIR/jwt.py" "$secret" '{"sub":"ann","publish":["*"],"subscribe":["*"]}')
	bob=$("$PY" "$TESTS_DIR/jwt.py" "$secret" '{"sub":"bob","publish":["*"]}')
	local codes=""
	for i in 1 2 3 4; do
		codes="$codes $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ann" -d '{"chan":"r","msg":1}' "$CHATD_URL/")"
	done
	[ "$codes" = " 200 200 200 429" ]
	run curl -s -i -H "Authorization: Bearer $ann" -d '{"chan":"r","msg":1}' "$CHATD_URL/"
	[[ "$output" == *$'retry-after: 1\r'* ]]
	[[ "$output" == *'{"ok":false,"error":"rate limited: at most 1 messages a second (burst 3); try again in '*' s"}' ]]
	# another user has a bucket of its own
	run curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $bob" -d '{"chan":"r","msg":1}' "$CHATD_URL/"
	[ "$output" = 200 ]
	# ann's WebSocket publishes share her bucket
	run ws "ws://127.0.0.1:$CHATD_PORT/ws/r?token=$ann" --send '{"chan":"r","msg":"ws"}' --count 1 --timeout 3
	[[ "${lines[0]}" == '{"type":"error","error":"rate limited: at most 1 messages a second (burst 3); try again in '* ]]
	run chatd --publish-rate fast
	[ "$status" -eq 64 ]
}
