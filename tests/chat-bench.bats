#!/usr/bin/env bats
# chat-bench: small runs against chatd (memory and Redis brokers) deliver everything and say
# so, in the table and in --json; a missing server and bad arguments fail clearly.
# No timing assertions: the numbers depend on the machine.

load helpers
bats_require_minimum_version 1.5.0

# json_check EXPR: EXPR over the JSON object d on stdin (from $output) must hold.
json_check() {
	printf '%s\n' "$output" | $PY -c '
import json, sys
d = json.load(sys.stdin)
ok = eval(sys.argv[1])
if not ok:
    print("json check failed:", sys.argv[1], json.dumps(d), file=sys.stderr)
sys.exit(0 if ok else 1)' "$1"
}

# table_value NAME: the number after NAME in the table in $output.
table_value() {
	printf '%s\n' "$output" | awk -v k="$1" 'substr($0, 1, 14) == sprintf("%-13s ", k) { print $NF; exit }'
}

@test "chat-bench --help and --version" {
	run chat-bench --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"usage: chat-bench"* ]]
	[[ "$output" == *"--subscribers"* ]]
	run chat-bench --version
	[ "$status" -eq 0 ]
	[ "$output" = "chat-bench (chatd) 0.1.0" ]
}

@test "chat-bench: a small run against chatd (memory) loses nothing" {
	start_chatd
	run chat-bench -u "$CHATD_URL" -s 5 -n 200 -p 4
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(table_value sent)" = 200 ]
	[ "$(table_value accepted)" = 200 ]
	[ "$(table_value refused)" = 0 ]
	[ "$(table_value expected)" = 1000 ]
	[ "$(table_value delivered)" = 1000 ]
	[ "$(table_value lost)" = 0 ]
	[ "$(table_value duplicated)" = 0 ]
	[ "$(table_value out-of-order)" = 0 ]
	[[ "$output" == *"latency p99"* ]]
}

@test "chat-bench --json: one object, delivered == expected (memory)" {
	start_chatd
	run --separate-stderr chat-bench -u "$CHATD_URL" -c json.test -s 5 -n 200 -p 4 --size 100 --json
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1 ]
	json_check 'd["delivered"] == d["expected"] == 1000'
	json_check 'd["sent"] == d["accepted"] == 200 and d["refused"] == 0 and d["failed"] == 0'
	json_check 'd["lost"] == 0 and d["duplicated"] == 0 and d["out_of_order"] == 0'
	json_check 'd["ok"] is True and d["chan"] == "json.test" and d["size"] == 100'
	json_check 'all(k in d["latency_ms"] for k in ("p50", "p90", "p99", "max"))'
	json_check 'd["published_per_s"] > 0 and d["delivered_per_s"] > 0'
}

@test "chat-bench: a small run against chatd with Redis loses nothing" {
	start_redis
	start_chatd --redis "$REDIS_URL"
	wait_healthy "$CHATD_URL"
	run chat-bench -u "$CHATD_URL" -s 5 -n 200 -p 4
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(table_value delivered)" = 1000 ]
	[ "$(table_value lost)" = 0 ]
	[ "$(table_value duplicated)" = 0 ]
	run --separate-stderr chat-bench -u "$CHATD_URL" -s 5 -n 200 -p 4 --json
	echo "$output"
	[ "$status" -eq 0 ]
	json_check 'd["delivered"] == d["expected"] == 1000 and d["lost"] == 0 and d["duplicated"] == 0'
}

@test "chat-bench: two runs on one channel keep their messages apart" {
	start_chatd
	bg chat-bench -u "$CHATD_URL" -c shared -s 3 -n 300 -p 2 --json
	run --separate-stderr chat-bench -u "$CHATD_URL" -c shared -s 3 -n 300 -p 2 --json
	echo "$output"
	[ "$status" -eq 0 ]
	json_check 'd["delivered"] == d["expected"] == 900 and d["lost"] == 0 and d["duplicated"] == 0'
	wait "$BG_PID"
	output=$(cat "$BG_OUT")
	json_check 'd["delivered"] == d["expected"] == 900 and d["lost"] == 0 and d["duplicated"] == 0'
}

@test "chat-bench: no server at the URL fails clearly" {
	port=$(free_port)
	run --separate-stderr chat-bench -u "http://127.0.0.1:$port" -s 2 -n 10 --timeout 3
	echo "$stderr"
	[ "$status" -eq 69 ]
	[ -z "$output" ]
	[[ "$stderr" == "chat-bench: 2 of 2 subscribers could not connect to ws://127.0.0.1:$port/ws?chan=bench: "* ]]
}

@test "chat-bench: no server and no subscribers: every post failed, exit 1" {
	port=$(free_port)
	run --separate-stderr chat-bench -u "http://127.0.0.1:$port" -s 0 -n 10 --timeout 3
	echo "$stderr"
	[ "$status" -eq 1 ]
	[ "$(table_value failed)" = 10 ]
	[[ "$stderr" == *"chat-bench: FAILED: 0 of 10 posts refused, 10 failed (no answer); first: "* ]]
}

@test "chat-bench: a URL chatd does not serve is refused with the server's reason" {
	start_chatd
	run --separate-stderr chat-bench -u "$CHATD_URL/nowhere" -s 2 -n 10 --timeout 3
	echo "$stderr"
	[ "$status" -eq 69 ]
	[[ "$stderr" == "chat-bench: "* ]]
	[[ "$stderr" == *"/nowhere"* ]]
	# and chatd still serves a correct run
	run chat-bench -u "$CHATD_URL" -s 2 -n 10
	[ "$status" -eq 0 ]
}

@test "chat-bench: bad arguments say what is wrong" {
	run --separate-stderr chat-bench -c 'no spaces'
	[ "$status" -eq 64 ]
	[[ "$stderr" == 'chat-bench: invalid channel name "no spaces": '* ]]
	run --separate-stderr chat-bench -s many
	[ "$status" -eq 64 ]
	[ "$stderr" = 'chat-bench: --subscribers wants a number from 0 to 1000000, not "many"' ]
	run --separate-stderr chat-bench -p 0
	[ "$status" -eq 64 ]
	[ "$stderr" = 'chat-bench: --publishers wants a number from 1 to 4096, not "0"' ]
	run --separate-stderr chat-bench --size 10Q
	[ "$status" -eq 64 ]
	[ "$stderr" = 'chat-bench: --size wants a length up to 64M, like 64 or 4K, not "10Q"' ]
	run --separate-stderr chat-bench --timeout -1
	[ "$status" -eq 64 ]
	[[ "$stderr" == 'chat-bench: --timeout wants seconds'* ]]
	run --separate-stderr chat-bench -u ftp://127.0.0.1/
	[ "$status" -eq 64 ]
	[[ "$stderr" == 'chat-bench: unsupported URL scheme "ftp"'* ]]
}

# --- modes, server figures, templates, and what a faulty relay looks like ---

@test "chat-bench --mode latency: a fixed rate, latency from when each message was due" {
	start_chatd
	run --separate-stderr chat-bench -u "$CHATD_URL" -m latency -r 400 -s 3 -n 100 --json
	echo "$output"
	[ "$status" -eq 0 ]
	json_check 'd["mode"] == "latency" and d["rate"] == 400 and d["batch_us"] == 0'
	json_check 'd["delivered"] == d["expected"] == 300 and d["ok"] is True'
	json_check 'all(k in d["latency_ms"] for k in ("p50", "p90", "p99", "p999", "max"))'
	json_check 'd["send_lag_max_ms"] >= 0'
	run chat-bench -u "$CHATD_URL" -r 400 -s 2 -n 40
	[ "$status" -eq 0 ]
	[[ "$output" == *"latency from when each was due"* ]]
	[[ "$output" == *"send lag max"* ]]
}

@test "chat-bench --mode throughput: defaults to 1 subscriber and 16 publishers" {
	start_chatd
	run --separate-stderr chat-bench -u "$CHATD_URL" -m throughput -n 500 --json
	echo "$output"
	[ "$status" -eq 0 ]
	json_check 'd["mode"] == "throughput" and d["subscribers"] == 1 and d["publishers"] == 16'
	json_check 'd["delivered"] == d["accepted"] == 500 and d["ok"] is True'
}

@test "chat-bench --pid: the server's CPU time and memory per connection from /proc" {
	start_chatd
	run --separate-stderr chat-bench -u "$CHATD_URL" -s 20 -n 300 --pid "$CHATD_PID" --json
	echo "$output"
	[ "$status" -eq 0 ]
	json_check "d['server_pids'] == [$CHATD_PID]"
	json_check 'd["server_cpu_s"] >= 0 and d["server_cpu_us_per_delivery"] >= 0'
	json_check 'd["server_rss_kb_after"] > 0 and d["server_rss_kb_before"] > 0'
	json_check 'd["client_cpu_s"] >= 0 and 0 <= d["machine_idle"] <= 1'
	# without --pid the keys are there, and null
	run --separate-stderr chat-bench -u "$CHATD_URL" -s 2 -n 10 --json
	json_check 'd["server_cpu_s"] is None and d["server_rss_kb_per_connection"] is None'
	json_check 'd["server_pids"] == []'
	run chat-bench -u "$CHATD_URL" -s 2 -n 10 --pid "$CHATD_PID"
	[ "$status" -eq 0 ]
	[[ "$output" == *"server cpu"*"us per delivery"* ]]
	[[ "$output" == *"KB per connection"* ]]
}

@test "chat-bench --mode idle: opens the connections, publishes nothing, reports memory" {
	start_chatd
	run --separate-stderr chat-bench -u "$CHATD_URL" -m idle -s 200 --hold 0.3 --pid "$CHATD_PID" --json
	echo "$output"
	[ "$status" -eq 0 ]
	json_check 'd["mode"] == "idle" and d["subscribers"] == 200 and d["messages"] == 0'
	json_check 'd["sent"] == 0 and d["ok"] is True and d["hold_s"] >= 0.3'
	json_check 'isinstance(d["server_rss_kb_per_connection"], (int, float))'
	run chat-bench -u "$CHATD_URL" -m idle -s 20 --hold 0.1
	[ "$status" -eq 0 ]
	[[ "$output" == *"held"* ]]
	[[ "$output" != *"delivered"* ]]
	# chatd still serves a normal run afterwards
	run chat-bench -u "$CHATD_URL" -s 2 -n 10
	[ "$status" -eq 0 ]
}

@test "chat-bench --sources: subscribers come from several loopback addresses" {
	start_chatd
	run --separate-stderr chat-bench -u "$CHATD_URL" -s 30 -n 50 --sources 3 --json
	echo "$output"
	[ "$status" -eq 0 ]
	json_check 'd["source_addresses"] == 3 and d["delivered"] == d["expected"] == 1500'
	run chat-bench -u "$CHATD_URL" -s 30 -n 10 --sources 3
	[[ "$output" == *"(from 3 source addresses)"* ]]
}

@test "chat-bench templates: chatd's raw POST /pub/{chan} and a --body with {chan} and {payload}" {
	start_chatd
	run --separate-stderr chat-bench -u "$CHATD_URL" -c tmpl.raw --pub-url "$CHATD_URL/pub/{chan}" -s 3 -n 100 --json
	echo "$output"
	[ "$status" -eq 0 ]
	json_check 'd["target"] == "template" and d["publish_url"].endswith("/pub/tmpl.raw")'
	json_check 'd["delivered"] == d["expected"] == 300 and d["seq_gaps"] == 0'
	run --separate-stderr chat-bench -c tmpl.body --pub-url "$CHATD_URL/" \
		--body '{"msg":"{payload}","chan":"{chan}"}' --content-type application/json \
		--sub-url "ws://127.0.0.1:$CHATD_PORT/ws?chan={chan}" -s 3 -n 100 --json
	echo "$output"
	[ "$status" -eq 0 ]
	json_check 'd["subscribe_url"].endswith("/ws?chan=tmpl.body") and d["delivered"] == 300'
}

@test "chat-bench: bad templates and new options say what is wrong" {
	run --separate-stderr chat-bench --pub-url http://127.0.0.1:1/ --body 'no payload'
	[ "$status" -eq 64 ]
	[ "$stderr" = 'chat-bench: --body must contain {payload} exactly once, not "no payload"' ]
	run --separate-stderr chat-bench --sub-url 'wss://127.0.0.1:1/sub/{chan}'
	[ "$status" -eq 64 ]
	[ "$stderr" = 'chat-bench: subscribers speak plain WebSocket only (ws://), not "wss://127.0.0.1:1/sub/bench"' ]
	run --separate-stderr chat-bench -m sideways
	[ "$status" -eq 64 ]
	[ "$stderr" = 'chat-bench: --mode wants fanout, throughput, latency or idle, not "sideways"' ]
	run --separate-stderr chat-bench -m idle -n 5
	[ "$status" -eq 64 ]
	[ "$stderr" = 'chat-bench: --mode idle publishes nothing: -n and --rate do not apply' ]
	run --separate-stderr chat-bench -r 0
	[ "$status" -eq 64 ]
	[[ "$stderr" == 'chat-bench: --rate wants messages per second (more than 0, '* ]]
	pid=$(sh -c 'echo $$')
	run --separate-stderr chat-bench --pid "$pid"
	[ "$status" -eq 64 ]
	[ "$stderr" = "chat-bench: --pid $pid: no such process" ]
}

# A relay with faults on purpose, for the counting: POST /pub/CHAN on one port (answers 202),
# WebSocket /sub/CHAN on another. Measured messages are recognised by the payload's id,
# which chat-bench puts after "chb:RUN:"; ids from --below on are probes, left alone.
write_fakerelay() {
	cat >"$BATS_TEST_TMPDIR/fakerelay.py" <<'PY'
import argparse, asyncio, re, sys
import websockets

ap = argparse.ArgumentParser()
ap.add_argument("--http", type=int)
ap.add_argument("--ws", type=int)
ap.add_argument("--below", type=int, default=0)
ap.add_argument("--drop", type=int, default=0)      # do not deliver ids with id % K == 1
ap.add_argument("--dup", type=int, default=0)       # deliver ids with id % K == 1 twice
ap.add_argument("--reorder", type=int, default=0)   # deliver ids with id % K == 1 after the next
ap.add_argument("--fragment", action="store_true")  # every message in three frames
ap.add_argument("--ping", action="store_true")      # a ping before every message
ap.add_argument("--drop-conn", type=int, default=0)  # close a kept-alive connection, unannounced, after every K answers
ap.add_argument("--answer", default="length")  # length, close (Connection: close), chunked, eof (no length: ends at the close), never
ap.add_argument("--ready")
a = ap.parse_args()
subs, held = {}, {}

def msg_id(body):
    m = re.match(r"chb:[0-9a-f]+:(\d+):", body)
    n = int(m.group(1)) if m else -1
    return n if 0 <= n < a.below else -1

async def send(ws, body):
    if a.ping:
        await ws.ping()
    if a.fragment:
        await ws.send([body[:5], body[5:20], body[20:]])
    else:
        await ws.send(body)

async def publish(chan, body):
    n = msg_id(body)
    for ws in list(subs.get(chan, ())):
        if n >= 0 and a.drop and n % a.drop == 1:
            continue
        if n >= 0 and a.reorder and n % a.reorder == 1:
            held[ws] = body
            continue
        await send(ws, body)
        if n >= 0 and a.dup and n % a.dup == 1:
            await send(ws, body)
        if ws in held:
            await send(ws, held.pop(ws))

answered = 0

async def http(reader, writer):
    global answered
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        path = lines[0].split()[1]
        length = next(int(l.split(":")[1]) for l in lines if l.lower().startswith("content-length"))
        body = (await reader.readexactly(length)).decode()
        if a.answer == "never":
            continue
        await publish(path.rsplit("/", 1)[1], body)
        writer.write({"length": b"HTTP/1.1 202 Accepted\r\nContent-Length: 3\r\n\r\nok\n",
                      "close": b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 3\r\n\r\nok\n",
                      "chunked": b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nok\n\r\n0\r\n\r\n",
                      "eof": b"HTTP/1.1 202 Accepted\r\n\r\nok\n"}[a.answer])
        await writer.drain()
        answered += 1
        if a.answer in ("close", "eof") or (a.drop_conn and answered % a.drop_conn == 0):
            writer.close()
            return

async def ws_handler(ws, path):
    chan = path.rsplit("/", 1)[1]
    subs.setdefault(chan, set()).add(ws)
    try:
        await ws.wait_closed()
    finally:
        subs[chan].discard(ws)

async def main():
    async def guarded(r, w):
        try:
            await http(r, w)
        except (asyncio.IncompleteReadError, ConnectionError):
            w.close()
    await asyncio.start_server(guarded, "127.0.0.1", a.http)
    async with websockets.serve(ws_handler, "127.0.0.1", a.ws, ping_interval=None):
        open(a.ready, "w").close()
        await asyncio.Future()

asyncio.run(main())
PY
}

# start_fakerelay ARGS...: sets RELAY_ARGS, the chat-bench arguments that reach it.
start_fakerelay() {
	local hport wport
	write_fakerelay
	rm -f "$BATS_TEST_TMPDIR/relay.ready"
	hport=$(free_port)
	wport=$(free_port)
	bg $PY "$BATS_TEST_TMPDIR/fakerelay.py" --http "$hport" --ws "$wport" \
		--ready "$BATS_TEST_TMPDIR/relay.ready" "$@"
	wait_until 5 test -e "$BATS_TEST_TMPDIR/relay.ready"
	RELAY_ARGS=(--pub-url "http://127.0.0.1:$hport/pub/{chan}" --sub-url "ws://127.0.0.1:$wport/sub/{chan}")
}

@test "chat-bench: a relay that loses messages fails the run, loudly, with the count" {
	start_fakerelay --below 100 --drop 10
	run --separate-stderr chat-bench "${RELAY_ARGS[@]}" -s 3 -n 100 -p 1 --timeout 1 --json
	echo "$output"
	echo "$stderr"
	[ "$status" -eq 1 ]
	json_check 'd["lost"] == 30 and d["delivered"] == 270 and d["ok"] is False'
	[[ "$stderr" == *"chat-bench: FAILED: 30 of 300 expected deliveries lost (3 of 3 subscribers missed messages)"* ]]
	run chat-bench "${RELAY_ARGS[@]}" -s 3 -n 100 -p 1 --timeout 1
	[ "$status" -eq 1 ]
	[ "$(table_value lost)" = 30 ]
	[[ "$output" == *"result"*"FAILED"* ]]
}

@test "chat-bench: duplicated and reordered deliveries are counted, and only warned about" {
	start_fakerelay --below 100 --dup 10
	run --separate-stderr chat-bench "${RELAY_ARGS[@]}" -s 3 -n 100 -p 1 --json
	echo "$output"
	[ "$status" -eq 0 ]
	json_check 'd["duplicated"] == 30 and d["lost"] == 0 and d["out_of_order"] == 0'
	[[ "$stderr" == *"chat-bench: warning: 30 deliveries duplicated, 0 out of order"* ]]
	stop_all || true # the relay ends on TERM with status 143
	start_fakerelay --below 100 --reorder 10
	run --separate-stderr chat-bench "${RELAY_ARGS[@]}" -s 3 -n 100 -p 1 --json
	echo "$output"
	[ "$status" -eq 0 ]
	json_check 'd["out_of_order"] == 30 and d["lost"] == 0 and d["delivered"] == 300'
}

@test "chat-bench publishers: kept-alive connections the relay drops, Connection: close, chunked and unsized answers" {
	# each a corner of the publishers' HTTP client: every post is accepted and delivered
	for answer in "--drop-conn 7" "--answer close" "--answer chunked" "--answer eof"; do
		# shellcheck disable=SC2086 # two words
		start_fakerelay --below 200 $answer
		run --separate-stderr chat-bench "${RELAY_ARGS[@]}" -s 2 -n 200 -p 4 --timeout 3 --json
		echo "$answer: $output $stderr"
		[ "$status" -eq 0 ]
		json_check 'd["accepted"] == 200 and d["failed"] == 0 and d["delivered"] == 400 and d["lost"] == 0'
	done
}

@test "chat-bench publishers: a relay that never answers fails every post after --timeout" {
	start_fakerelay --answer never
	run --separate-stderr chat-bench "${RELAY_ARGS[@]}" -s 0 -n 6 -p 3 --timeout 1
	echo "$output $stderr"
	[ "$status" -eq 1 ]
	[ "$(table_value failed)" = 6 ]
	[[ "$stderr" == *"6 failed (no answer); first: timed out"* ]]
}

@test "chat-bench: fragmented messages and pings from the relay are handled" {
	start_fakerelay --below 200 --fragment --ping
	run --separate-stderr chat-bench "${RELAY_ARGS[@]}" -s 4 -n 200 -p 2 --size 300 --json
	echo "$output"
	[ "$status" -eq 0 ]
	json_check 'd["delivered"] == d["expected"] == 800 and d["other_frames"] == 0'
}

@test "chat-bench: large messages (300K, read in many pieces) arrive whole" {
	# one publisher: chatd cuts off a subscriber whose queue outgrows its limit
	start_chatd --max-message 1M
	run --separate-stderr chat-bench -u "$CHATD_URL" -s 3 -n 20 -p 1 --size 300K --json
	echo "$output"
	[ "$status" -eq 0 ]
	json_check 'd["delivered"] == d["expected"] == 60 and d["other_frames"] == 0'
}

# nchan, when the peer and nginx are installed: the same tool measures another relay.
@test "chat-bench against nchan (memory): templates for another relay" {
	peers=${PEERS_DIR:-$BATS_TEST_DIRNAME/../../shared/peers}
	[ -x "$peers/nchan/start.sh" ] && [ -e /usr/lib/nginx/modules/ngx_nchan_module.so ] ||
		skip "nchan peer not installed (needs ../shared/peers and libnginx-mod-nchan)"
	export PEERS_RUN=$BATS_TEST_TMPDIR/peers PORT=$(free_port) REDIS_PORT=$(free_port)
	NCHAN_STOP="$peers/nchan/stop.sh"
	"$peers/nchan/start.sh" memory 3>&-
	run --separate-stderr chat-bench --pub-url "http://127.0.0.1:$PORT/pub/{chan}" \
		--sub-url "ws://127.0.0.1:$PORT/sub/{chan}" -c nb.test -s 5 -n 200 -p 4 \
		--pid "$(cat "$PEERS_RUN/nchan/nginx.pid")" --json
	echo "$output"
	[ "$status" -eq 0 ]
	json_check 'd["delivered"] == d["expected"] == 1000 and d["lost"] == 0 and d["seq_gaps"] is None'
}

teardown() {
	stop_all || true
	if [ -n "${NCHAN_STOP:-}" ]; then "$NCHAN_STOP"; fi
}

@test "--token / CHAT_TOKEN authenticate publishers and subscribers; without one the run fails with chatd's reason" {
	local secret=$BATS_TEST_TMPDIR/secret
	head -c 32 /dev/urandom | base64 >"$secret"
	start_chatd --jwt-secret-file "$secret"
	local tok
	tok=$("$PY" "$TESTS_DIR/jwt.py" "$secret" '{"publish":["bench"],"subscribe":["bench"]}')
	run chat-bench -q -u "$CHATD_URL" -s 3 -n 50 --token "$tok"
	[ "$status" -eq 0 ]
	[[ "$output" == *"lost                     0"* ]]
	[ -z "$(grep -F "${tok##*.}" <<<"$output")" ]
	CHAT_TOKEN=$tok run chat-bench -q -u "$CHATD_URL" -s 2 -n 10
	[ "$status" -eq 0 ]
	run chat-bench -q -u "$CHATD_URL" -s 2 -n 10
	[ "$status" -ne 0 ]
	[[ "$output" == *"closed by the server: authentication required"* ]]
	run chat-bench --token "$(printf 'a\r\nX-Injected: 1')"
	[ "$status" -eq 64 ]
}
