#!/usr/bin/env bats
# The wire protocol of chatd as chat-protocol(7) documents it, exercised with clients we
# did not write: curl and Python's websockets.

load helpers

setup() {
	start_chatd
}

# subscribe_bg URL COUNT: a WebSocket subscriber in the background, ready when this returns.
subscribe_bg() {
	local ready=$BATS_TEST_TMPDIR/ready.$RANDOM
	bg ws "$1" --count "$2" --timeout 5 --ready "$ready"
	SUB_PID=$BG_PID
	SUB_OUT=$BG_OUT
	wait_until 5 test -e "$ready"
}

# await_sub: wait for the background subscriber to finish; its output is in $SUB_OUT.
await_sub() {
	wait "$SUB_PID"
}

@test "the origin curl command reaches a WebSocket subscriber" {
	subscribe_bg "ws://127.0.0.1:$CHATD_PORT/ws?chan=pubsub" 1
	run curl -s -H 'Content-Type: application/json' -X POST -d '{"chan":"pubsub", "msg":"test message"}' "http://127.0.0.1:$CHATD_PORT/"
	[ "$status" -eq 0 ]
	[[ "$output" == '{"ok":true,"chan":"pubsub","seq":1,"epoch":"'* ]]
	local answer=$output
	await_sub
	run head -n 1 "$SUB_OUT"
	[[ "$output" =~ ^\{\"chan\":\"pubsub\",\"seq\":1,\"epoch\":\"[a-z0-9]+\",\"ts\":[0-9]{13},\"msg\":\"test\ message\"\}$ ]]
	# the answer's ts is the envelope's
	ts_of() { sed 's/.*"ts":\([0-9]*\).*/\1/' <<<"$1"; }
	[ "$(ts_of "$answer")" = "$(ts_of "$output")" ]
}

@test "msg is relayed unchanged, whatever JSON value it is" {
	subscribe_bg "ws://127.0.0.1:$CHATD_PORT/ws/values" 6
	for v in '"s"' 42 '{"a":[1,{"b":null}]}' '[1,2]' true null; do
		run post "{\"chan\":\"values\",\"msg\":$v}"
		[[ "$output" == "200 "* ]]
	done
	await_sub
	run $PY -c '
import json,sys
got=[json.loads(l)["msg"] for l in open(sys.argv[1]) if l.startswith("{")]
assert got==["s",42,{"a":[1,{"b":None}]},[1,2],True,None], got' "$SUB_OUT"
	[ "$status" -eq 0 ]
}

@test "POST /pub/NAME publishes the raw body as a string" {
	printf 'line one\nline "two"\n' >"$BATS_TEST_TMPDIR/body"
	subscribe_bg "ws://127.0.0.1:$CHATD_PORT/ws?chan=raw" 1
	run curl -s --data-binary @"$BATS_TEST_TMPDIR/body" "$CHATD_URL/pub/raw"
	[[ "$output" == '{"ok":true,"chan":"raw",'* ]]
	await_sub
	run $PY -c 'import json,sys; print(json.dumps(json.loads(open(sys.argv[1]).readline())["msg"]))' "$SUB_OUT"
	[ "$output" = '"line one\nline \"two\"\n"' ]
}

@test "/ws?chan= may repeat; each subscriber gets only its channels" {
	subscribe_bg "ws://127.0.0.1:$CHATD_PORT/ws?chan=a&chan=b&chan=a" 2
	local both_pid=$SUB_PID both_out=$SUB_OUT
	subscribe_bg "ws://127.0.0.1:$CHATD_PORT/ws/b" 1
	post '{"chan":"c","msg":"nobody"}'
	post '{"chan":"a","msg":"to a"}'
	post '{"chan":"b","msg":"to b"}'
	wait "$both_pid"
	await_sub
	run grep -c '"msg"' "$both_out"
	[ "$output" -eq 2 ]
	grep -q '"chan":"a","seq":1,"epoch":"[a-z0-9]*","ts":[0-9]*,"msg":"to a"' "$both_out"
	grep -q '"chan":"b","seq":1,"epoch":"[a-z0-9]*","ts":[0-9]*,"msg":"to b"' "$both_out"
	run head -n 1 "$SUB_OUT"
	[[ "$output" == *'"msg":"to b"}' ]]
	! grep -q nobody "$both_out" "$SUB_OUT"
}

@test "/ws without a channel subscribes to pubsub" {
	subscribe_bg "ws://127.0.0.1:$CHATD_PORT/ws" 1
	post '{"chan":"pubsub","msg":"default"}'
	await_sub
	grep -q '"chan":"pubsub".*"msg":"default"' "$SUB_OUT"
}

@test "a WebSocket client publishes JSON objects to their channel and plain text to its first" {
	subscribe_bg "ws://127.0.0.1:$CHATD_PORT/ws?chan=other" 1
	run ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=mine&chan=other" --count 4 \
		--send 'plain words' --send '{"msg":{"n":1}}' --send '{"chan":"other","msg":"there"}' --send '[1,2]'
	[[ "${lines[0]}" == *'"chan":"mine","seq":1,"epoch":"'*',"msg":"plain words"}' ]]
	[[ "${lines[1]}" == *'"chan":"mine","seq":2,"epoch":"'*',"msg":{"n":1}}' ]]
	[[ "${lines[2]}" == *'"chan":"other","seq":1,"epoch":"'*',"msg":"there"}' ]]
	[[ "${lines[3]}" == *'"chan":"mine","seq":3,"epoch":"'*',"msg":"[1,2]"}' ]] # not an object: text
	await_sub
	grep -q '"msg":"there"' "$SUB_OUT"
}

@test "a fragmented WebSocket message is reassembled" {
	run ws "ws://127.0.0.1:$CHATD_PORT/ws/frag" --count 1 --send-fragments 'hel' 'lo ' 'world'
	[[ "${lines[0]}" == *'"msg":"hello world"}' ]]
}

@test "GET / serves the chat page and /healthz reports the broker" {
	run curl -s -i "$CHATD_URL/"
	[[ "$output" == *"HTTP/1.1 200"* ]]
	[[ "$output" == *"content-type: text/html; charset=utf-8"* ]]
	[[ "$output" == *"<title>chatd</title>"* ]]
	run curl -s -w ' %{http_code}' "$CHATD_URL/healthz"
	[[ "$output" == '{"ok":true,"broker":"memory",'*' 200' ]]
}

@test "keep-alive: several requests on one connection" {
	run curl -s -w '%{num_connects}\n' -X POST -d '{"chan":"k","msg":1}' "$CHATD_URL/" \
		--next -s -w '%{num_connects}\n' -X POST -d '{"chan":"k","msg":2}' "$CHATD_URL/" \
		--next -s -w '%{num_connects}\n' "$CHATD_URL/healthz"
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "$output" | grep -c '"ok":true')" -eq 3 ]
	[[ "$output" == *'}0'* ]] # a later request reused the first connection
}

@test "the start-up line names the address and the broker; -v logs connections" {
	stop_all
	start_chatd -v
	run ws "ws://127.0.0.1:$CHATD_PORT/ws/logged" --timeout 0.3
	wait_until 3 grep -q 'DEBUG ws: closed' "$CHATD_LOG"
	grep -q "INFO chatd: listening on http://127.0.0.1:$CHATD_PORT broker=memory" "$CHATD_LOG"
	grep -q 'DEBUG ws: open peer=127.0.0.1 chans=logged' "$CHATD_LOG"
}

@test "--listen unix:PATH serves on a UNIX socket" {
	stop_all
	local sock=$BATS_TEST_TMPDIR/chatd.sock
	chatd --listen "unix:$sock" 2>"$BATS_TEST_TMPDIR/unix.log" 3>&- &
	STARTED_PIDS+=($!)
	wait_until 5 test -S "$sock"
	run curl -s --unix-socket "$sock" -X POST -d '{"chan":"u","msg":1}' http://chatd/
	[[ "$output" == '{"ok":true,"chan":"u",'* ]]
	grep -q "listening on unix:$sock broker=memory" "$BATS_TEST_TMPDIR/unix.log"
}

@test "a server-initiated close is one close frame: the client's answer is not echoed" {
	# Browsers fail a connection (1006) that receives a second close frame.
	run $PY - "$CHATD_PORT" <<'PY'
import os, socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /ws?chan=bad! HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(4096)
buf = buf.split(b"\r\n\r\n", 1)[1]
def frame():
    global buf
    while len(buf) < 2:
        d = s.recv(4096)
        if not d:
            return None
        buf += d
    n = buf[1] & 127
    while len(buf) < 2 + n:
        buf += s.recv(4096)
    f, buf = buf[:2 + n], buf[2 + n:]
    return f
f = frame()
print("first opcode", f[0] & 15, "code", struct.unpack(">H", f[2:4])[0])
mask = os.urandom(4)
payload = f[2:4]
s.sendall(bytes([0x88, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
s.settimeout(3)
print("then", "eof" if frame() is None else "another frame")
PY
	[ "${lines[0]}" = "first opcode 8 code 1008" ]
	[ "${lines[1]}" = "then eof" ]
}

# coalesce_run ARGS...: chatd with ARGS; 50 messages posted one by one over one
# connection reach a subscriber once each, in order
coalesce_run() {
	start_chatd "$@"
	local ready=$BATS_TEST_TMPDIR/ready.$RANDOM
	bg ws "ws://127.0.0.1:$CHATD_PORT/ws/co" --count 50 --timeout 10 --ready "$ready"
	wait_until 5 test -e "$ready"
	seq 50 | chat-post -u "$CHATD_URL" -c co --json
	wait "$BG_PID"
	[ "$($PY -c '
import json, sys
print(" ".join(str(json.loads(l)["msg"]) for l in open(sys.argv[1]) if l.startswith("{")))' "$BG_OUT")" = "$(seq -s ' ' 50)" ]
}

# epoll_ctl_per_50: how many epoll_ctl calls chatd ($CHATD_PID) makes for 50 publishes
# on one keep-alive connection (strace -c)
epoll_ctl_per_50() {
	local urls=() i st
	for i in $(seq 50); do urls+=("$CHATD_URL/"); done
	strace -f -c -e trace=epoll_ctl -o "$BATS_TEST_TMPDIR/counts" -p "$CHATD_PID" 2>"$BATS_TEST_TMPDIR/strace.err" &
	st=$!
	wait_until 5 grep -q attached "$BATS_TEST_TMPDIR/strace.err"
	curl -s -H 'Content-Type: application/json' --data '{"chan":"e","msg":1}' "${urls[@]}" >/dev/null
	kill -INT "$st"
	wait "$st" || true
	awk '$NF == "epoll_ctl" { print $4 }' "$BATS_TEST_TMPDIR/counts"
}

# cmd/chatd/uvpoll.c: libuv 1.44 makes every uv_poll_start a DEL and an ADD, 7 a request
# (350) in either mode without it
@test "Redis: a keep-alive publish costs chatd no epoll_ctl call (no-op poll restarts skipped, lws' POLLOUT owed)" {
	command -v strace >/dev/null || skip "strace is not installed"
	start_redis
	start_chatd -r "$REDIS_URL"
	wait_healthy "$CHATD_URL"
	local calls
	calls=$(epoll_ctl_per_50)
	echo "epoll_ctl calls for 50 publishes: $calls"
	# 4 a request (about 200) when restarts are skipped but changes are a DEL and an ADD;
	# 2 (about 110) with changes made in place but lws' POLLOUT asked of the kernel; about
	# 4 in all (the connection's own) with it owed
	[ "$calls" -le 25 ]
}

@test "memory: a keep-alive publish costs chatd about 4 epoll_ctl calls" {
	command -v strace >/dev/null || skip "strace is not installed"
	start_chatd
	wait_healthy "$CHATD_URL"
	local calls
	calls=$(epoll_ctl_per_50)
	echo "epoll_ctl calls for 50 publishes: $calls"
	[ "$calls" -le 260 ]
}

# The window is a gauge in /metrics, in seconds.
coalesce_window() {
	curl -s "$CHATD_URL/metrics" | awk '$1 == "chatd_coalesce_window_seconds" { print $2 }'
}

@test "--coalesce: messages faster than 3 per interval double the window (up to 4x); one after a quiet spell halves it" {
	start_chatd --coalesce 100000
	[ "$(coalesce_window)" = 0.1 ]
	local ready=$BATS_TEST_TMPDIR/ready
	bg ws "ws://127.0.0.1:$CHATD_PORT/ws/cw" --count 21 --timeout 10 --ready "$ready"
	wait_until 5 test -e "$ready"
	# the first goes at once; the other 19, posted within the 100 ms, go in the next round
	seq 20 | chat-post -u "$CHATD_URL" -c cw --json
	wait_until 5 sh -c "curl -s $CHATD_URL/metrics | grep -Eqx 'chatd_coalesce_window_seconds 0.[24]'"
	# after a quiet spell one message goes at once, alone, and halves the window
	sleep 0.5
	local before
	before=$(coalesce_window)
	chat-post -u "$CHATD_URL" -c cw 21
	finished "$BG_PID"
	[ "$(coalesce_window)" = "$($PY -c "print('%g' % ($before / 2))")" ]
}

@test "--coalesce: a rate slower than 3 per interval shrinks the window from 4x, though rounds there gather 2 or 3" {
	start_chatd --coalesce 100000
	local ready=$BATS_TEST_TMPDIR/ready stop=$BATS_TEST_TMPDIR/stop feeder i
	bg ws "ws://127.0.0.1:$CHATD_PORT/ws/cs" --count 100000 --timeout 30 --ready "$ready"
	wait_until 5 test -e "$ready"
	# about 100 a second until the window is at its cap, 0.4 s
	(i=0; while [ ! -e "$stop" ] && [ $i -lt 1000 ]; do i=$((i + 1)); echo "$i"; sleep 0.01; done) |
		chat-post -u "$CHATD_URL" -c cs >/dev/null 3>&- &
	feeder=$!
	STARTED_PIDS+=("$feeder")
	wait_until 8 sh -c "curl -s $CHATD_URL/metrics | grep -qx 'chatd_coalesce_window_seconds 0.4'"
	touch "$stop"
	wait "$feeder"
	# then about 6 a second: under 3 per 0.1 s interval, though a 0.4 s window gathers 2 or
	# 3 a round (when rounds were counted, that held it at 0.4)
	for i in $(seq 12); do
		chat-post -u "$CHATD_URL" -c cs "slow $i"
		sleep 0.15
	done
	[ "$(coalesce_window)" = 0.1 ]
	grep -q '"msg":"slow 12"' "$BG_OUT"
}

@test "--coalesce: every message once and in order, writing at once or gathering 100 ms" {
	coalesce_run --coalesce 0
	stop_pid "$CHATD_PID"
	coalesce_run --coalesce 100000
	run chatd --coalesce 100001
	[ "$status" -eq 64 ]
	[[ "$output" == *"--coalesce: want microseconds from 0 to 100000"* ]]
}
