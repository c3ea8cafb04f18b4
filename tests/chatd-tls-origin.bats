#!/usr/bin/env bats
# TLS (https, wss) and the Origin check (browsers from other origins are refused; CORS
# for the allowed ones).

load helpers

# wsorigin URL ORIGIN: connect with an Origin header (as a browser would); prints the
# first frame or "CLOSE code reason"
wsorigin() {
	"$PY" - "$@" "$BATS_TEST_TMPDIR/cert.pem" <<'EOF'
import asyncio, ssl, sys, websockets
async def main(url, origin, ca):
    ctx = ssl.create_default_context(cafile=ca) if url.startswith("wss:") else None
    try:
        async with websockets.connect(url, origin=origin or None, ssl=ctx) as ws:
            print(await asyncio.wait_for(ws.recv(), 3))
    except websockets.ConnectionClosed as e:
        print("CLOSE", e.code, e.reason)
asyncio.run(main(*sys.argv[1:4]))
EOF
}

@test "TLS: https and wss with a certificate the client trusts; plain http is not served" {
	start_tls
	grep -q "listening on https://127.0.0.1:$CHATD_PORT" "$CHATD_LOG"
	run curl -s --cacert "$BATS_TEST_TMPDIR/cert.pem" -d '{"chan":"t","msg":"secret"}' "$CHATD_URL/"
	[[ "$output" == '{"ok":true,"chan":"t","seq":1,'* ]]
	run curl -s -o /dev/null -w '%{http_version}' --cacert "$BATS_TEST_TMPDIR/cert.pem" "$CHATD_URL/healthz"
	[ "$output" = 1.1 ]
	run wsorigin "wss://127.0.0.1:$CHATD_PORT/ws/t?last=1" ""
	[[ "$output" == '{"chan":"t","seq":1,'*'"msg":"secret"}' ]]
	run curl -s -N --max-time 2 --cacert "$BATS_TEST_TMPDIR/cert.pem" "$CHATD_URL/events?chan=t&last=1"
	[[ "$output" == *'data: {"chan":"t","seq":1,'* ]]
	# an untrusted certificate is refused by the client, plain http gets nothing
	run curl -s "$CHATD_URL/healthz"
	[ "$status" -eq 60 ]
	run curl -s "http://127.0.0.1:$CHATD_PORT/healthz"
	[ "$status" -ne 0 ]
	run curl -s -o /dev/null -w '%{http_code}' --cacert "$BATS_TEST_TMPDIR/cert.pem" "$CHATD_URL/healthz"
	[ "$output" = 200 ]
}

@test "TLS options: both or neither, and readable" {
	tls_cert
	run chatd --tls-cert "$BATS_TEST_TMPDIR/cert.pem"
	[ "$status" -eq 64 ]
	[[ "$output" == *"--tls-cert and --tls-key go together"* ]]
	run chatd --tls-cert "$BATS_TEST_TMPDIR/nope.pem" --tls-key "$BATS_TEST_TMPDIR/key.pem"
	[ "$status" -eq 66 ]
	[[ "$output" == *"cannot read $BATS_TEST_TMPDIR/nope.pem: No such file or directory"* ]]
}

@test "Origin: a page from another origin is refused on every path; the own origin and no Origin are served" {
	start_chatd
	local evil=https://evil.example
	run curl -s -w ' %{http_code}' -H "Origin: $evil" -d '{"chan":"o","msg":1}' "$CHATD_URL/"
	[ "$output" = '{"ok":false,"error":"origin https://evil.example is not allowed here (chatd --allow-origin)"} 403' ]
	run curl -s -w ' %{http_code}' -H "Origin: $evil" "$CHATD_URL/history/o"
	[[ "$output" == *' 403' ]]
	run curl -s -w ' %{http_code}' -H "Origin: $evil" "$CHATD_URL/events?chan=o"
	[[ "$output" == *' 403' ]]
	run wsorigin "ws://127.0.0.1:$CHATD_PORT/ws/o" "$evil"
	[ "$output" = "CLOSE 4403 origin https://evil.example is not allowed (chatd --allow-origin)" ]
	# the page chatd serves itself, and non-browser clients (no Origin)
	run curl -s -w ' %{http_code}' -H "Origin: http://127.0.0.1:$CHATD_PORT" -d '{"chan":"o","msg":1}' "$CHATD_URL/"
	[[ "$output" == '{"ok":true,"chan":"o","seq":1,'*' 200' ]]
	post '{"chan":"o","msg":2}'
	run wsorigin "ws://127.0.0.1:$CHATD_PORT/ws/o?last=1" "http://127.0.0.1:$CHATD_PORT"
	[[ "$output" == '{"chan":"o","seq":2,'* ]]
	# https://127.0.0.1:PORT is another origin than http://127.0.0.1:PORT
	run curl -s -o /dev/null -w '%{http_code}' -H "Origin: https://127.0.0.1:$CHATD_PORT" "$CHATD_URL/history/o"
	[ "$output" = 403 ]
}

@test "--allow-origin: CORS headers and preflight for allowed origins; * allows any" {
	start_chatd --allow-origin https://app.example --allow-origin http://localhost:8080
	run curl -s -i -X OPTIONS -H "Origin: https://app.example" -H 'Access-Control-Request-Method: POST' "$CHATD_URL/"
	[[ "$output" == "HTTP/1.1 204"* ]]
	grep -qi '^access-control-allow-origin: https://app.example' <<<"$output"
	grep -qi '^access-control-allow-methods: GET, POST' <<<"$output"
	grep -qi '^access-control-allow-headers: content-type, authorization, idempotency-key, last-event-id' <<<"$output"
	run curl -s -i -H "Origin: http://localhost:8080" -d '{"chan":"c","msg":1}' "$CHATD_URL/"
	grep -qi '^access-control-allow-origin: http://localhost:8080' <<<"$output"
	[[ "$output" == *'{"ok":true,"chan":"c",'* ]]
	run wsorigin "ws://127.0.0.1:$CHATD_PORT/ws/c?last=1" https://app.example
	[[ "$output" == '{"chan":"c","seq":1,'* ]]
	run curl -s -o /dev/null -w '%{http_code}' -X OPTIONS -H "Origin: https://other.example" "$CHATD_URL/"
	[ "$output" = 403 ]
	stop_pid "$CHATD_PID"
	start_chatd --allow-origin '*'
	run wsorigin "ws://127.0.0.1:$CHATD_PORT/ws/c" https://anything.example
	[ "$output" != "CLOSE 4403"* ]
	run chatd --allow-origin app.example
	[ "$status" -eq 64 ]
	[[ "$output" == *"--allow-origin: want an origin like https://chat.example.com"* ]]
}

@test "--allow-origin: an event stream carries the CORS header for an allowed page" {
	start_chatd --allow-origin https://app.example
	run curl -s -i -N --max-time 1 -H 'Origin: https://app.example' "$CHATD_URL/events?chan=c"
	grep -qi '^access-control-allow-origin: https://app.example' <<<"$output"
}
