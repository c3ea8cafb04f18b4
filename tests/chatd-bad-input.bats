#!/usr/bin/env bats
# Bad input: every case gets the exact error chat-protocol(7) documents, and an honest
# client on the same server is served normally right afterwards.

load helpers

setup() {
	start_chatd --max-message 1K
}

# still_serving: a fresh subscriber receives a fresh post.
still_serving() {
	local ready=$BATS_TEST_TMPDIR/ready.$RANDOM
	bg ws "ws://127.0.0.1:$CHATD_PORT/ws/honest" --count 1 --timeout 5 --ready "$ready"
	wait_until 5 test -e "$ready"
	run post '{"chan":"honest","msg":"still here"}'
	[[ "$output" == "200 "* ]]
	wait "$BG_PID"
	grep -q '"msg":"still here"' "$BG_OUT"
	kill -0 "$CHATD_PID"
}

# expect_http STATUS ERROR_SUBSTRING CURL_ARGS...
expect_http() {
	local want_status=$1 want_err=$2
	shift 2
	run curl -s -o "$BATS_TEST_TMPDIR/body" -w '%{http_code}' "$@"
	echo "status $output, body $(cat "$BATS_TEST_TMPDIR/body")"
	[ "$output" = "$want_status" ]
	$PY -c 'import json,sys
b=json.load(open(sys.argv[1]))
assert b["ok"] is False and sys.argv[2] in b["error"], b' "$BATS_TEST_TMPDIR/body" "$want_err"
}

@test "malformed JSON: 400" {
	expect_http 400 'body is not valid JSON (unexpected character at byte 8)' -X POST -d '{"chan":,' "$CHATD_URL/"
	still_serving
}

@test "trailing garbage after the object: 400" {
	expect_http 400 'body is not valid JSON' -X POST -d '{"chan":"a","msg":1} x' "$CHATD_URL/"
	still_serving
}

@test "a body that is not an object: 400" {
	expect_http 400 'body must be a JSON object like {"chan":"pubsub","msg":"hello"}' -X POST -d '["pubsub","x"]' "$CHATD_URL/"
	still_serving
}

@test "missing chan: 400" {
	expect_http 400 'missing "chan"' -X POST -d '{"msg":"x"}' "$CHATD_URL/"
	still_serving
}

@test "chan of the wrong type: 400" {
	expect_http 400 '"chan" must be a string' -X POST -d '{"chan":["a"],"msg":"x"}' "$CHATD_URL/"
	still_serving
}

@test "invalid channel name: 400" {
	expect_http 400 'invalid channel name "no spaces": channel name may only use A-Z a-z 0-9 _ - . :' \
		-X POST -d '{"chan":"no spaces","msg":"x"}' "$CHATD_URL/"
	expect_http 400 'channel name is empty' -X POST -d '{"chan":"","msg":"x"}' "$CHATD_URL/"
	expect_http 400 'channel name is longer than 64 characters' \
		-X POST -d "{\"chan\":\"$(printf 'x%.0s' $(seq 65))\",\"msg\":\"x\"}" "$CHATD_URL/"
	expect_http 400 'invalid channel name in path' -X POST -d 'x' "$CHATD_URL/pub/a%20b"
	still_serving
}

@test "missing msg: 400" {
	expect_http 400 'missing "msg"' -X POST -d '{"chan":"a"}' "$CHATD_URL/"
	still_serving
}

@test "invalid UTF-8: 400" {
	printf '{"chan":"a","msg":"\xc3\x28"}' >"$BATS_TEST_TMPDIR/bad"
	expect_http 400 'body is not valid UTF-8' -X POST --data-binary @"$BATS_TEST_TMPDIR/bad" "$CHATD_URL/"
	printf '\xff\xfe' >"$BATS_TEST_TMPDIR/bad"
	expect_http 400 'message is not valid UTF-8' -X POST --data-binary @"$BATS_TEST_TMPDIR/bad" "$CHATD_URL/pub/a"
	still_serving
}

@test "a body over --max-message: 413" {
	head -c 2000 /dev/zero | tr '\0' x >"$BATS_TEST_TMPDIR/big"
	expect_http 413 'body is 2000 bytes; the limit is 1024 (chatd --max-message)' \
		-X POST --data-binary @"$BATS_TEST_TMPDIR/big" "$CHATD_URL/pub/a"
	still_serving
}

@test "a POST without Content-Length (chunked): 411" {
	expect_http 411 'a POST needs a Content-Length header' \
		-X POST -H 'Transfer-Encoding: chunked' -d '{"chan":"a","msg":1}' "$CHATD_URL/"
	still_serving
}

@test "wrong method: 405 with Allow" {
	expect_http 405 'method not allowed on /; use GET, HEAD, POST' -X PUT -d 'x' "$CHATD_URL/"
	expect_http 405 'method not allowed on /healthz; use GET, HEAD' -X POST -d 'x' "$CHATD_URL/healthz"
	expect_http 405 'method not allowed on /pub/a; use POST' "$CHATD_URL/pub/a"
	run curl -s -i -X DELETE "$CHATD_URL/"
	[[ "$output" == *$'allow: GET, HEAD, POST\r'* ]]
	still_serving
}

@test "unknown path: 404" {
	expect_http 404 'no such endpoint: /nope' "$CHATD_URL/nope"
	expect_http 404 'no such endpoint: /nope' -X POST -d '{}' "$CHATD_URL/nope"
	still_serving
}

@test "the WebSocket endpoint without an upgrade: 426" {
	expect_http 426 'this is the WebSocket endpoint' "$CHATD_URL/ws?chan=a"
	still_serving
}

@test "WebSocket: a binary frame closes with 1003" {
	run ws "ws://127.0.0.1:$CHATD_PORT/ws" --send-binary 00ff
	[ "$output" = "CLOSE 1003 binary frames are not accepted; send text" ]
	still_serving
}

@test "WebSocket: invalid UTF-8 in a text frame closes with 1007" {
	run ws "ws://127.0.0.1:$CHATD_PORT/ws" --send-text-hex c328
	[ "$output" = "CLOSE 1007 text frame is not valid UTF-8" ]
	still_serving
}

@test "WebSocket: a message over --max-message closes with 1009" {
	run ws "ws://127.0.0.1:$CHATD_PORT/ws" --send "$(head -c 1500 /dev/zero | tr '\0' y)"
	[ "$output" = "CLOSE 1009 message larger than 1024 bytes (--max-message)" ]
	run ws "ws://127.0.0.1:$CHATD_PORT/ws" --send-fragments "$(head -c 600 /dev/zero | tr '\0' y)" "$(head -c 600 /dev/zero | tr '\0' y)"
	[ "$output" = "CLOSE 1009 message larger than 1024 bytes (--max-message)" ]
	still_serving
}

@test "WebSocket: an invalid channel in the URL closes with 1008" {
	run ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=a%2Fb"
	[ "$output" = 'CLOSE 1008 invalid channel name "a/b": channel name may only use A-Z a-z 0-9 _ - . :' ]
	run ws "ws://127.0.0.1:$CHATD_PORT/ws/$(printf 'x%.0s' $(seq 65))"
	[ "$output" = 'CLOSE 1008 invalid channel name in path: channel name is longer than 64 characters' ]
	run ws "ws://127.0.0.1:$CHATD_PORT/elsewhere"
	[ "$output" = 'CLOSE 1008 no WebSocket endpoint at /elsewhere; use /ws?chan=NAME or /ws/NAME' ]
	still_serving
}

@test "WebSocket: more than 16 channels closes with 1008" {
	q=$(for i in $(seq 17); do printf 'chan=c%d&' "$i"; done)
	run ws "ws://127.0.0.1:$CHATD_PORT/ws?$q"
	[ "$output" = 'CLOSE 1008 too many channels: at most 16 per connection' ]
	still_serving
}

@test "WebSocket: a bad publish gets an error frame and the connection stays usable" {
	run ws "ws://127.0.0.1:$CHATD_PORT/ws/w" --count 3 --send '{"chan":"bad name","msg":1}' \
		--send '{"chan":7,"msg":1}' --send '{"chan":"w","msg":"fine"}'
	[ "${lines[0]}" = '{"type":"error","error":"invalid channel name \"bad name\": channel name may only use A-Z a-z 0-9 _ - . :"}' ]
	[ "${lines[1]}" = '{"type":"error","error":"\"chan\" must be a string"}' ]
	[[ "${lines[2]}" == *'"chan":"w",'*'"msg":"fine"}' ]]
	still_serving
}

@test "bad option values are refused before start" {
	run chatd --listen nowhere:99999
	[ "$status" -eq 64 ]
	[[ "$output" == *"bad port"* ]]
	run chatd --redis http://x
	[ "$status" -eq 64 ]
	[[ "$output" == *"Redis URL must look like redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]"* ]]
	run chatd --max-message lots
	[ "$status" -eq 64 ]
	run chatd --listen "127.0.0.1:$(free_port)" --redis redis://no-such-host.invalid:1
	[ "$status" -eq 69 ]
	[[ "$output" == *"cannot resolve redis host no-such-host.invalid"* ]]
	run chatd --listen "127.0.0.1:$CHATD_PORT"
	[ "$status" -eq 69 ]
	[[ "$output" == *"cannot listen on 127.0.0.1:$CHATD_PORT: Address already in use"* ]]
}

@test "JSON that lenient parsers accept is refused: leading zeros, raw control characters, lone surrogates" {
	expect_http 400 'body is not valid JSON (leading zero in a number at byte 19)' -X POST -d '{"chan":"a","msg":01}' "$CHATD_URL/"
	expect_http 400 'body is not valid JSON (control character inside a string (escape it) at byte 20)' \
		-X POST --data-binary $'{"chan":"a","msg":"a\tb"}' "$CHATD_URL/"
	expect_http 400 'unpaired surrogate' -X POST -d '{"chan":"a","msg":"\ud800"}' "$CHATD_URL/"
	expect_http 400 'invalid channel name "a?b"' -X POST -d '{"chan":"a\u0000b","msg":1}' "$CHATD_URL/"
	expect_http 400 'nested too deeply' -X POST -d "{\"chan\":\"a\",\"msg\":$(printf '[%.0s' $(seq 600))}" "$CHATD_URL/"
	still_serving
}

@test "msg is relayed as written: every digit of a number, escapes as sent" {
	local ready=$BATS_TEST_TMPDIR/ready
	bg ws "ws://127.0.0.1:$CHATD_PORT/ws/exact" --count 1 --timeout 5 --ready "$ready"
	wait_until 5 test -e "$ready"
	run post '{"chan":"exact", "msg": {"n": 0.30000000000000004, "big": 9007199254740993, "s": "caf\u00e9 \"q\""}}'
	[[ "$output" == "200 "* ]]
	wait "$BG_PID"
	grep -qF '"msg":{"n":0.30000000000000004,"big":9007199254740993,"s":"caf\u00e9 \"q\""}}' "$BG_OUT"
}

# raw FILE: send FILE's bytes in one write; prints the answers' count, the first status
# line, and whether one said Connection: close (tests/rawhttp.py)
raw() {
	$PY "$BATS_TEST_DIRNAME/rawhttp.py" "$CHATD_PORT" "$1"
}

@test "pipelined requests: the first is answered, then the connection is closed; nobody else suffers" {
	printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{"chan":"a","msg":1}' \
		>"$BATS_TEST_TMPDIR/req"
	run raw "$BATS_TEST_TMPDIR/req"
	[ "$output" = "1 HTTP/1.1 200 OK False" ]
	still_serving
}

# pipe PATH two|garbage: a publish to PATH and, in the same write, the same publish again
# or garbage
pipe() {
	local body=raw
	[ "$1" != / ] || body='{"chan":"pp","msg":1}'
	printf 'POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s' "$1" "${#body}" "$body" \
		>"$BATS_TEST_TMPDIR/req"
	if [ "$2" = two ]; then
		cat "$BATS_TEST_TMPDIR/req" "$BATS_TEST_TMPDIR/req" >"$BATS_TEST_TMPDIR/req2"
	else
		{ cat "$BATS_TEST_TMPDIR/req"; printf garbage; } >"$BATS_TEST_TMPDIR/req2"
	fi
	raw "$BATS_TEST_TMPDIR/req2"
}

@test "pipelined publishes (memory): each first one answered, then closed; chatd keeps serving" {
	local path extra
	for path in / /pub/pp; do
		for extra in two garbage; do
			run pipe "$path" "$extra"
			[ "$output" = "1 HTTP/1.1 200 OK True" ]
		done
	done
	run curl -s "$CHATD_URL/history/pp"
	[[ "$output" == *'"last":4,'* ]]
	still_serving
}

@test "Redis: pipelined publishes: the first is stored and answered, then the connection is closed" {
	start_redis
	start_chatd --redis "$REDIS_URL"
	wait_healthy "$CHATD_URL"
	run pipe / two
	[ "$output" = "1 HTTP/1.1 200 OK True" ]
	run curl -s "$CHATD_URL/history/pp"
	[[ "$output" == *'"last":1,'* ]]
	[[ "$output" == *'"msg":1}]}' ]]
}

@test "a Content-Length that is not one plain number is 400, and its body is never read as a request" {
	local cl
	# with "abc" lws took 0, and the body, a GET, was answered as a second request
	for cl in abc -5 +23 23abc '23, 5'; do
		printf 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %s\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' \
			"$cl" >"$BATS_TEST_TMPDIR/req"
		run raw "$BATS_TEST_TMPDIR/req"
		echo "Content-Length: $cl -> $output"
		[ "$output" = "1 HTTP/1.1 400 Bad Request True" ]
	done
	# two headers, even equal ones
	printf 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\nContent-Length: 20\r\n\r\n{"chan":"a","msg":1}' \
		>"$BATS_TEST_TMPDIR/req"
	run raw "$BATS_TEST_TMPDIR/req"
	[ "$output" = "1 HTTP/1.1 400 Bad Request True" ]
	run curl -s -H 'Content-Length: abc' --data-binary '{"chan":"a","msg":1}' "$CHATD_URL/"
	[ "$output" = '{"ok":false,"error":"Content-Length must be one decimal number of bytes"}' ]
	# a number too big to hold is too big, not malformed
	printf 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n' >"$BATS_TEST_TMPDIR/req"
	run raw "$BATS_TEST_TMPDIR/req"
	[ "$output" = "1 HTTP/1.1 413 Request Entity Too Large True" ]
	run curl -s "$CHATD_URL/history/a"
	[[ "$output" == *'"last":0,'* ]]
	still_serving
}

@test "a body still trickling in 10 s after its headers is answered 408 and not published" {
	# lws' timeout restarts with each byte: one byte every 0.5 s was read for as long as it came
	run $PY - "$CHATD_PORT" <<'EOF'
import socket, sys, time
body = b'{"chan":"slow","msg":"' + b"x" * 40 + b'"}'
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
s.settimeout(0.01)
got, t0 = b"", time.time()
for i in range(len(body)):
    try:
        s.sendall(body[i:i + 1])
    except OSError:
        break
    time.sleep(0.5)
    try:
        d = s.recv(4096)
    except socket.timeout:
        continue
    except OSError:
        break
    if not d:
        break
    got += d
print(got.split(b"\r\n")[0].decode(), "after %d s" % (time.time() - t0), got.split(b"\r\n\r\n")[-1].decode())
EOF
	echo "$output"
	[[ "$output" == "HTTP/1.1 408 Request Timeout after 1"[01]" s "'{"ok":false,"error":"the body did not arrive within 10 s of the headers"}' ]]
	run curl -s "$CHATD_URL/history/slow"
	[[ "$output" == *'"last":0,'* ]]
	still_serving
}

@test "Transfer-Encoding next to Content-Length: 411, connection closed" {
	run curl -s -i -X POST -H 'Content-Length: 5' -H 'Transfer-Encoding: chunked' \
		--data-binary $'0\r\n\r\n' "$CHATD_URL/pub/a"
	[[ "$output" == "HTTP/1.1 411"* ]]
	[[ "$output" == *$'connection: close\r'* ]]
	still_serving
}

@test "empty and oversized URL arguments are neither skipped over nor ignored" {
	run ws "ws://127.0.0.1:$CHATD_PORT/ws?&chan=zz" --send 'x' --count 1
	[[ "${lines[0]}" == '{"chan":"zz",'* ]]
	run ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=zz&&chan=yy" --send '{"chan":"yy","msg":1}' --count 1
	[[ "${lines[0]}" == '{"chan":"yy",'* ]]
	run ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=$(printf 'a%.0s' $(seq 300))"
	[[ "$output" == "CLOSE 1008 invalid channel name \"aaaa"*'": channel name is longer than 64 characters' ]]
	still_serving
}

@test "bytes that are not UTF-8 are never echoed back raw" {
	run ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=%FF%FE"
	[ "$output" = 'CLOSE 1008 invalid channel name "??": channel name may only use A-Z a-z 0-9 _ - . :' ]
	expect_http 404 'no such endpoint: /??' "$CHATD_URL/%FF%C0"
	still_serving
}

@test "HEAD answers the headers of GET and no body" {
	run curl -s -I "$CHATD_URL/healthz"
	[[ "$output" == "HTTP/1.1 200"* ]]
	[[ "$output" == *"content-length: "* ]]
	run curl -s -X HEAD -m 3 -o "$BATS_TEST_TMPDIR/head" -w '%{http_code} %{size_download}' "$CHATD_URL/"
	[ "$output" = "200 0" ]
	run curl -s -i -X DELETE "$CHATD_URL/healthz"
	[[ "$output" == *$'allow: GET, HEAD\r'* ]]
	still_serving
}
