#!/usr/bin/env bats
# chat-post: messages from arguments and from standard input reach subscribers, JSON values
# with --json, and the exact errors and exit status a user gets when something fails.

load helpers

setup() {
	start_chatd
	export CHAT_URL=$CHATD_URL
}

@test "each argument is one message, in order, and success is quiet" {
	listen -c args -n 4
	run chat-post -c args one "two words" "" 'quote " and \ backslash'
	[ "$status" -eq 0 ]
	[ "$output" = "" ]
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	[ "$(cat "$BG_OUT")" = 'one
two words

quote " and \ backslash' ]
}

@test "the request is the documented JSON: another WebSocket client sees the envelopes" {
	bg ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=wire" --count 2 --ready "$BATS_TEST_TMPDIR/ready"
	wait_until 5 test -e "$BATS_TEST_TMPDIR/ready"
	chat-post -c wire hello 'ünïcödé ✓'
	finished "$BG_PID"
	run sed 's/"epoch":"[a-z0-9]*","ts":[0-9]*,/"epoch":E,"ts":T,/' "$BG_OUT"
	[ "${lines[0]}" = '{"chan":"wire","seq":1,"epoch":E,"ts":T,"msg":"hello"}' ]
	[ "${lines[1]}" = '{"chan":"wire","seq":2,"epoch":E,"ts":T,"msg":"ünïcödé ✓"}' ]
	[ "${lines[2]}" = "CLOSE 1000 " ]
}

@test "each line of stdin is one message: CRLF stripped, empty lines skipped, last line without newline" {
	listen -c lines -n 4
	run chat-post -c lines < <(printf 'first\r\nsecond\n\n\nthird line\nlast')
	[ "$status" -eq 0 ]
	[ "$output" = "" ]
	finished "$BG_PID"
	[ "$(cat "$BG_OUT")" = "first
second
third line
last" ]
}

@test "a line is posted as soon as it is read, not when input ends" {
	listen -c stream
	mkfifo "$BATS_TEST_TMPDIR/fifo"
	chat-post -c stream <"$BATS_TEST_TMPDIR/fifo" >"$BATS_TEST_TMPDIR/post.out" 2>&1 3>&- &
	local post_pid=$!
	STARTED_PIDS+=("$post_pid")
	exec 4>"$BATS_TEST_TMPDIR/fifo"
	echo "one" >&4
	wait_until 5 grep -qx one "$BG_OUT"
	echo "two" >&4
	wait_until 5 grep -qx two "$BG_OUT"
	exec 4>&-
	finished "$post_pid"
	[ "$status" -eq 0 ]
	[ ! -s "$BATS_TEST_TMPDIR/post.out" ]
	[ "$(cat "$BG_OUT")" = "one
two" ]
}

@test "seq | chat-post: many lines arrive complete and in order" {
	listen -c seq -n 200
	seq 200 | chat-post -c seq
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	[ "$(cat "$BG_OUT")" = "$(seq 200)" ]
}

@test "--json sends values: a subscriber gets a number, an object, a string and null" {
	listen -c values -n 5 --json
	run chat-post --json -c values 42 '{ "cpu": 0.5, "tags": ["a", "b"] }' '"just text"' null '[1,{"x":true}]'
	[ "$status" -eq 0 ]
	finished "$BG_PID"
	run sed 's/"epoch":"[a-z0-9]*","ts":[0-9]*/"epoch":E,"ts":T/' "$BG_OUT"
	[ "$output" = '{"chan":"values","seq":1,"epoch":E,"ts":T,"msg":42}
{"chan":"values","seq":2,"epoch":E,"ts":T,"msg":{"cpu":0.5,"tags":["a","b"]}}
{"chan":"values","seq":3,"epoch":E,"ts":T,"msg":"just text"}
{"chan":"values","seq":4,"epoch":E,"ts":T,"msg":null}
{"chan":"values","seq":5,"epoch":E,"ts":T,"msg":[1,{"x":true}]}' ]
}

@test "--json reads JSON Lines from stdin; an invalid line is reported by number and the rest still go" {
	listen -c jl -n 2
	run chat-post -j -c jl < <(printf '{"n":1}\n{"n":\n[2]\n')
	[ "$status" -eq 65 ]
	[ "$output" = "chat-post: line 2: invalid JSON (unexpected end at byte 5)" ]
	finished "$BG_PID"
	[ "$(cat "$BG_OUT")" = '{"n":1}
[2]' ]
}

@test "--json refuses an argument that is not exactly one JSON value" {
	run chat-post -j -c jl '1 2' 'bare words'
	[ "$status" -eq 65 ]
	[ "$output" = "chat-post: argument 1: invalid JSON (unexpected text after the value at byte 2)
chat-post: argument 2: invalid JSON (unexpected character at byte 0)" ]
}

@test "text that is not UTF-8 is refused locally, by line number" {
	listen -c utf -n 1
	run chat-post -c utf < <(printf '\xff\xfe\nfine\n')
	[ "$status" -eq 65 ]
	[ "$output" = "chat-post: line 1: message is not valid UTF-8" ]
	finished "$BG_PID"
	[ "$(cat "$BG_OUT")" = "fine" ]
}

@test "an invalid channel name is a usage error and nothing is sent; the server still serves" {
	run chat-post -c 'no spaces' hello
	[ "$status" -eq 64 ]
	[ "$output" = 'chat-post: invalid channel name "no spaces": channel name may only use A-Z a-z 0-9 _ - . :' ]
	run chat-post -c "$(printf 'x%.0s' $(seq 65))" hello
	[ "$status" -eq 64 ]
	[[ "$output" == *": channel name is longer than 64 characters" ]]
	listen -c fine -n 1
	chat-post -c fine still-serving
	finished "$BG_PID"
	[ "$(cat "$BG_OUT")" = "still-serving" ]
}

@test "a message the server refuses (413) is reported with status and reason; the others are delivered" {
	start_chatd --max-message 1K
	export CHAT_URL=$CHATD_URL
	listen -c big -n 2
	run chat-post -c big before "$(head -c 2000 /dev/zero | tr '\0' x)" after
	[ "$status" -eq 65 ]
	[[ "$output" == "chat-post: argument 2: 413 "*"1024"* ]]
	[ "${#lines[@]}" -eq 1 ]
	finished "$BG_PID"
	[ "$(cat "$BG_OUT")" = "before
after" ]
}

@test "an unreachable server: one error per message, exit 69" {
	local port
	port=$(free_port)
	run chat-post -u "http://127.0.0.1:$port" one two
	[ "$status" -eq 69 ]
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[0]}" == "chat-post: argument 1: cannot reach chatd at http://127.0.0.1:$port/: "* ]]
	[[ "${lines[1]}" == "chat-post: argument 2: cannot reach chatd at http://127.0.0.1:$port/: "* ]]
}

@test "a server whose Redis is down answers 503: reason and Retry-After shown, exit 69" {
	start_redis
	start_chatd --redis "$REDIS_URL"
	wait_healthy "$CHATD_URL"
	stop_pid "$REDIS_PID"
	wait_until 10 sh -c "! curl -sf -o /dev/null $CHATD_URL/healthz"
	run chat-post -u "$CHATD_URL" -c down hello
	[ "$status" -eq 69 ]
	[[ "$output" == "chat-post: argument 1: 503 "*" (Retry-After: 1)" ]]
}

@test "unavailable (69) outranks rejected (65) when both happen" {
	run chat-post -j -u "http://127.0.0.1:$(free_port)" '{bad' 1
	[ "$status" -eq 69 ]
	[ "${#lines[@]}" -eq 2 ]
}

@test "-v prints each answer on stdout, so chat-post | grep works" {
	run sh -c 'chat-post -v -c answers a b c | grep -c "^{\"ok\":true,\"chan\":\"answers\",\"seq\":[1-3],\"epoch\":\"[a-z0-9]*\",\"ts\":[0-9]*}$"'
	[ "$status" -eq 0 ]
	[ "$output" = 3 ]
}

@test "URL forms: ws:// is accepted, CHAT_CHAN sets the channel, a bad scheme is a usage error" {
	listen -c envchan -n 2
	CHAT_CHAN=envchan chat-post -u "ws://127.0.0.1:$CHATD_PORT" via-ws
	CHAT_CHAN=envchan CHAT_URL="http://127.0.0.1:$CHATD_PORT/" chat-post via-env
	finished "$BG_PID"
	[ "$(cat "$BG_OUT")" = "via-ws
via-env" ]
	run chat-post -u ftp://example.com hi
	[ "$status" -eq 64 ]
	[ "$output" = 'chat-post: unsupported URL scheme "ftp"; use http, https, ws or wss' ]
}

@test "--help, --version and a bad option" {
	run chat-post --version
	[ "$status" -eq 0 ]
	[ "$output" = "chat-post (chatd) 0.1.0" ]
	run chat-post --help
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "usage: chat-post [-jkv] [-u URL] [-c CHAN] [--retry N] [--key KEY] [--token T] [MSG ...]" ]
	[[ "$output" == *"--json"* ]]
	run chat-post -h
	[ "$status" -eq 0 ]
	run chat-post --bogus
	[ "$status" -eq 64 ]
	[ "${lines[1]}" = "usage: chat-post [-jkv] [-u URL] [-c CHAN] [--retry N] [--key KEY] [--token T] [MSG ...]" ]
}
