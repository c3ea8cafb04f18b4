#!/usr/bin/env bats
# Server-Sent Events at GET /events: the same subscription as a WebSocket, read with curl.

load helpers

# sse URL_SUFFIX [CURL ARGS...]: curl -N the stream in the background (BG_PID, BG_OUT).
sse() {
	local suffix=$1
	shift
	bg curl -sN "$@" "$CHATD_URL/events$suffix"
	wait_until 5 sh -c "curl -s $CHATD_URL/healthz | grep -q '\"sse\":[1-9]'"
}

# events FILE: "ID DATA.msg" for each event with an id, one per line
events() {
	$PY - "$1" <<'EOF'
import json, sys
ev = {}
for line in open(sys.argv[1]).read().split("\n"):
    if line == "":
        if "data" in ev and "id" in ev:
            print(ev["id"], json.dumps(json.loads(ev["data"])["msg"]))
        ev = {}
    elif not line.startswith(":"):
        k, _, v = line.partition(": ")
        ev[k] = v
EOF
}

@test "each message is an event: the envelope as data, every channel's position as id" {
	start_chatd
	sse "?chan=a&chan=b" -i
	post '{"chan":"a","msg":"one"}'
	post '{"chan":"b","msg":{"x":1}}'
	post '{"chan":"c","msg":"not subscribed"}'
	post '{"chan":"a","msg":"two"}'
	wait_until 5 grep -q two "$BG_OUT"
	grep -q '^HTTP/1.1 200' "$BG_OUT"
	grep -qi '^content-type: text/event-stream' "$BG_OUT"
	local e
	e=$(curl -s "$CHATD_URL/history/a" | $PY -c 'import json,sys; print(json.load(sys.stdin)["epoch"])')
	run events "$BG_OUT"
	[ "${lines[0]}" = "a:1:$e \"one\"" ]
	[ "${lines[1]}" = "a:1:$e,b:1:$e {\"x\": 1}" ]
	[ "${lines[2]}" = "a:2:$e,b:1:$e \"two\"" ]
	[ "${#lines[@]}" -eq 3 ]
	grep -q '^data: {"chan":"a","seq":2,"epoch":"'"$e"'","ts":[0-9]*,"msg":"two"}' "$BG_OUT"
}

@test "Last-Event-ID resumes every channel it names; since= and last= work as on a WebSocket" {
	start_chatd
	for i in 1 2 3; do post "{\"chan\":\"a\",\"msg\":\"a$i\"}" >/dev/null; done
	for i in 1 2; do post "{\"chan\":\"b\",\"msg\":\"b$i\"}" >/dev/null; done
	local e
	e=$(curl -s "$CHATD_URL/history/a" | $PY -c 'import json,sys; print(json.load(sys.stdin)["epoch"])')
	sse "?chan=a&chan=b&since=a:0" -H "Last-Event-ID: a:1:$e,b:1:$e,gone:9:$e"
	post '{"chan":"b","msg":"live"}'
	wait_until 5 grep -q live "$BG_OUT"
	run events "$BG_OUT"
	[ "$output" = "a:2:$e \"a2\"
a:3:$e \"a3\"
a:3:$e,b:2:$e \"b2\"
a:3:$e,b:3:$e \"live\"" ]
	[ -z "$(grep '^event: gap' "$BG_OUT")" ]

	sse "/a?since=a:2:$e"
	wait_until 5 grep -q a3 "$BG_OUT"
	run events "$BG_OUT"
	[ "$output" = "a:3:$e \"a3\"" ]

	sse "?chan=b&last=2"
	wait_until 5 grep -q live "$BG_OUT"
	run events "$BG_OUT"
	[ "$output" = "b:2:$e \"b2\"
b:3:$e \"live\"" ]
}

@test "a position no longer stored gets a gap event first, then what is available" {
	start_chatd --history 3
	for i in $(seq 6); do post "{\"chan\":\"g\",\"msg\":$i}" >/dev/null; done
	sse "?chan=g&since=g:1"
	wait_until 5 grep -q '"msg":6' "$BG_OUT"
	run grep -A1 -m1 '^event: gap' "$BG_OUT"
	[[ "${lines[1]}" == 'data: {"type":"gap","chan":"g","asked":{"since":1,"epoch":""},"available":{"first":4,"last":6,"epoch":"'* ]]
	# the gap event comes before any message
	[ "$(grep -m1 -n '^event: gap' "$BG_OUT" | cut -d: -f1)" -lt "$(grep -m1 -n '^id:' "$BG_OUT" | cut -d: -f1)" ]
	run events "$BG_OUT"
	[ "${#lines[@]}" -eq 3 ]
	[[ "${lines[0]}" == "g:4:"*" 4" ]]
}

@test "bad requests get 400 or 405 with a JSON error; the server still serves" {
	start_chatd
	run curl -s -w ' %{http_code}' "$CHATD_URL/events?chan=a%20b"
	[[ "$output" == '{"ok":false,"error":"invalid channel name \"a b\": '*'"} 400' ]]
	run curl -s -w ' %{http_code}' "$CHATD_URL/events?chan=a&since=zz"
	[ "$output" = '{"ok":false,"error":"since must be CHAN:SEQ[:EPOCH] for a subscribed channel"} 400' ]
	local id
	# malformed, whichever channel it names (a well-formed id of another channel is
	# skipped); these were ignored, and the stream began live as if there were no id
	for id in 'a:x:y' garbage a : 'bad name:1:e' 'a:1:e,garbage' 'other:1:E' 'a:99999999999999999999999:e' 'other:99999999999999999999999:e'; do
		run curl -s -m 3 -w ' %{http_code}' -H "Last-Event-ID: $id" "$CHATD_URL/events?chan=a"
		echo "$id -> $output"
		[ "$output" = '{"ok":false,"error":"Last-Event-ID must be CHAN:SEQ:EPOCH[,CHAN:SEQ:EPOCH...] as chatd sent it"} 400' ]
	done
	run curl -s -w ' %{http_code}' "$CHATD_URL/events?chan=a&since=a:99999999999999999999999"
	[ "$output" = '{"ok":false,"error":"since must be CHAN:SEQ[:EPOCH] with a number and an epoch of 0-9 a-z"} 400' ]
	run curl -s -w ' %{http_code}' "$CHATD_URL/events/too/deep"
	[[ "$output" == *'"error":"invalid channel name in path: '*' 400' ]]
	run curl -s -w ' %{http_code}' -d x "$CHATD_URL/events"
	[ "$output" = '{"ok":false,"error":"method not allowed on /events; use GET"} 405' ]
	run curl -s -o /dev/null -w '%{http_code}' -I "$CHATD_URL/events"
	[ "$output" = 405 ]
	sse "/ok"
	post '{"chan":"ok","msg":"fine"}'
	wait_until 5 grep -q fine "$BG_OUT"
}

@test "a client that hangs up is noticed and its subscription dropped" {
	start_chatd
	curl -sN --max-time 1 "$CHATD_URL/events?chan=x" || true
	wait_until 10 sh -c "curl -s $CHATD_URL/healthz | grep -q '\"sse\":0,.*\"channels\":0'"
}

@test "shutdown ends the stream with a close event (1001) and curl exits" {
	start_chatd
	sse "?chan=s"
	stop_pid "$CHATD_PID"
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	grep -A1 '^event: close' "$BG_OUT" | grep -qx 'data: {"type":"close","code":1001}'
}

@test "with Redis, an SSE subscriber on one node gets what is posted on another" {
	start_redis
	start_chatd -r "$REDIS_URL"
	local a=$CHATD_URL
	start_chatd -r "$REDIS_URL"
	wait_healthy "$a" && wait_healthy "$CHATD_URL"
	sse "?chan=r&since=r:0" # from the start: no race with the node's Redis subscription
	curl -s -d '{"chan":"r","msg":"across"}' "$a/" >/dev/null
	wait_until 5 grep -q across "$BG_OUT"
	run events "$BG_OUT"
	[[ "$output" == "r:1:r"*' "across"' ]]
}
