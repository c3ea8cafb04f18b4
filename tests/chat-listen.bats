#!/usr/bin/env bats
# chat-listen: what it prints for each kind of message, -n, several channels, pipelines,
# a closed pipe, signals, reconnecting across a server restart, and refusals.

load helpers

setup() {
	start_chatd
	export CHAT_URL=$CHATD_URL
}

# only_info FILE: every line of a -v log is INFO, so nothing was reported.
only_info() {
	! grep -v ' INFO chat-listen: ' "$1"
}

# seen N PATTERN FILE: FILE has at least N lines matching PATTERN.
seen() {
	[ "$(grep -c "$2" "$3")" -ge "$1" ]
}

# chatd_on PORT: start chatd on a given port (for restarts); sets CHATD_PID.
chatd_on() {
	chatd --listen "127.0.0.1:$1" 2>>"$BATS_TEST_TMPDIR/chatd.$1.log" 3>&- &
	CHATD_PID=$!
	STARTED_PIDS+=("$CHATD_PID")
	wait_until 5 curl -s -o /dev/null "http://127.0.0.1:$1/healthz"
}

@test "strings print as their text, other values as compact JSON; -n exits 0 after COUNT" {
	listen -c kinds -n 6
	post '{"chan":"kinds","msg":"plain text"}'
	post '{"chan":"kinds","msg":42}'
	post '{"chan":"kinds","msg":{ "a" : [1, 2.5, "x"] }}'
	post '{"chan":"kinds","msg":null}'
	post '{"chan":"kinds","msg":"tab\tand \"quotes\""}'
	post 'raw body, published as a string' /pub/kinds
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	[ "$(cat "$BG_OUT")" = 'plain text
42
{"a":[1,2.5,"x"]}
null
tab	and "quotes"
raw body, published as a string' ]
	only_info "$BG_OUT.err"
}

@test "other values print as published, only whitespace dropped: every digit, escape and member order kept" {
	# cJSON would print these through doubles: null, 1.2345678901234567e+19, {"x":1.1}
	local want='1e400
12345678901234567890
{"x":1.10}
{"z":[1,2.50,"a\u00e9 \"q\"\n"],"a":-0.0E+2,"m":{}}
[]'
	listen -c exact -n 5
	local plain_pid=$BG_PID plain_out=$BG_OUT
	listen -c exact -n 5 --format '{msg}'
	chat-post -c exact -j 1e400
	chat-post -c exact -j 12345678901234567890
	chat-post -c exact -j '{"x":1.10}'
	chat-post -c exact -j '{ "z" : [1, 2.50, "a\u00e9 \"q\"\n"] ,
		"a":-0.0E+2, "m": { } }'
	chat-post -c exact -j ' [ ] '
	finished "$plain_pid"
	[ "$status" -eq 0 ]
	[ "$(cat "$plain_out")" = "$want" ]
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	[ "$(cat "$BG_OUT")" = "$want" ]
	only_info "$BG_OUT.err"
}

@test "-n stops after exactly COUNT messages even when more arrive" {
	listen -c count -n 2
	chat-post -c count one two three four
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	[ "$(cat "$BG_OUT")" = "one
two" ]
}

@test "--json prints each envelope as received, with chan, ts and msg" {
	listen --json -c env -n 2
	chat-post -c env hello
	chat-post -c env -j '{"k":[true]}'
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	run cat "$BG_OUT"
	[[ "${lines[0]}" =~ ^\{\"chan\":\"env\",\"seq\":1,\"epoch\":\"[a-z0-9]+\",\"ts\":[0-9]{13},\"msg\":\"hello\"\}$ ]]
	[[ "${lines[1]}" =~ ^\{\"chan\":\"env\",\"seq\":2,\"epoch\":\"[a-z0-9]+\",\"ts\":[0-9]{13},\"msg\":\{\"k\":\[true\]\}\}$ ]]
}

@test "several -c follow several channels over one connection, and only those" {
	listen -u "ws://127.0.0.1:$CHATD_PORT" -c red -c green -n 3
	chat-post -c red r1
	chat-post -c blue not-followed
	chat-post -c green g1
	chat-post -c red r2
	finished "$BG_PID"
	[ "$(cat "$BG_OUT")" = "r1
g1
r2" ]
	[ "$(grep -c subscribed "$BG_OUT.err")" -eq 1 ]
	grep -q 'url=ws://127.0.0.1:'"$CHATD_PORT"'/ws?chan=red&chan=green' "$BG_OUT.err"
}

@test "CHAT_URL and CHAT_CHAN give the defaults" {
	CHAT_CHAN=fromenv listen -n 1
	chat-post -c fromenv hi
	finished "$BG_PID"
	[ "$(cat "$BG_OUT")" = "hi" ]
}

@test "chat-listen | grep --line-buffered sees each line while chat-listen still runs" {
	bash -c 'timeout 10 chat-listen -v -c grep -n 3 2>"$1" | grep --line-buffered keep' \
		_ "$BATS_TEST_TMPDIR/listen.err" >"$BATS_TEST_TMPDIR/grep.out" 3>&- &
	local pipe_pid=$!
	STARTED_PIDS+=("$pipe_pid")
	wait_until 5 grep -q subscribed "$BATS_TEST_TMPDIR/listen.err"
	chat-post -c grep "drop this" "keep this"
	wait_until 5 grep -qx "keep this" "$BATS_TEST_TMPDIR/grep.out"
	chat-post -c grep "keep the last"
	finished "$pipe_pid"
	[ "$status" -eq 0 ]
	[ "$(cat "$BATS_TEST_TMPDIR/grep.out")" = "keep this
keep the last" ]
}

@test "chat-listen | head -n 1: exits 0 quietly once the reader is gone, with no further message" {
	bash -c 'timeout 10 chat-listen -v -c head 2>"$1" | head -n 1; echo "status ${PIPESTATUS[*]}"' \
		_ "$BATS_TEST_TMPDIR/listen.err" >"$BATS_TEST_TMPDIR/head.out" 3>&- &
	local pipe_pid=$!
	STARTED_PIDS+=("$pipe_pid")
	wait_until 5 grep -q subscribed "$BATS_TEST_TMPDIR/listen.err"
	chat-post -c head first
	finished "$pipe_pid"
	[ "$(cat "$BATS_TEST_TMPDIR/head.out")" = "first
status 0 0" ]
	only_info "$BATS_TEST_TMPDIR/listen.err"
}

@test "a closed pipe met while writing ends it quietly too" {
	# The reader exits before the burst, so some write hits EPIPE (or the watchdog sees it).
	bash -c 'timeout 10 chat-listen -v -c burst 2>"$1" | { read -r line; echo "$line"; }; echo "status ${PIPESTATUS[*]}"' \
		_ "$BATS_TEST_TMPDIR/listen.err" >"$BATS_TEST_TMPDIR/out" 3>&- &
	local pipe_pid=$!
	STARTED_PIDS+=("$pipe_pid")
	wait_until 5 grep -q subscribed "$BATS_TEST_TMPDIR/listen.err"
	seq 50 | chat-post -c burst
	finished "$pipe_pid"
	[ "$(cat "$BATS_TEST_TMPDIR/out")" = "1
status 0 0" ]
	only_info "$BATS_TEST_TMPDIR/listen.err"
}

@test "SIGTERM and SIGINT end it cleanly with status 0" {
	listen -c sig
	status=0
	stop_pid "$BG_PID" || status=$?
	[ "$status" -eq 0 ]
	only_info "$BG_OUT.err"
	listen -c sig
	kill -INT "$BG_PID"
	finished "$BG_PID"
	[ "$status" -eq 0 ]
}

@test "SIGTERM also ends it while it waits for a server that is down" {
	bg chat-listen -u "http://127.0.0.1:$(free_port)"
	wait_until 5 grep -q 'cannot connect, retrying' "$BG_OUT.err"
	kill -TERM "$BG_PID"
	finished "$BG_PID"
	[ "$status" -eq 0 ]
}

@test "reconnects when chatd restarts on the same port; one line per outage, not per attempt" {
	local port
	port=$(free_port)
	chatd_on "$port"
	listen -u "http://127.0.0.1:$port" -c phoenix
	chat-post -u "http://127.0.0.1:$port" -c phoenix before
	wait_until 5 grep -qx before "$BG_OUT"
	local epoch
	epoch=$(curl -s "http://127.0.0.1:$port/history/phoenix" | sed 's/.*"epoch":"\([a-z0-9]*\)".*/\1/')
	[ -n "$epoch" ]
	stop_pid "$CHATD_PID" || true
	# stay down until several attempts have failed
	wait_until 10 seen 3 'retrying in' "$BG_OUT.err"
	chatd_on "$port"
	wait_until 10 seen 2 subscribed "$BG_OUT.err"
	chat-post -u "http://127.0.0.1:$port" -c phoenix after
	wait_until 5 grep -qx after "$BG_OUT"
	[ "$(cat "$BG_OUT")" = "before
after" ]
	run grep -v ' INFO ' "$BG_OUT.err"
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[0]}" == *" WARN chat-listen: connection lost, reconnecting url=ws://127.0.0.1:$port/ws?chan=phoenix reason=\"server shutting down (close 1001)\"" ]]
	# the restarted embedded broker lost the history: the resume is told so, once
	# (the new chatd has no epoch for the channel yet: the line says so, naming no empty one)
	[[ "${lines[1]}" == *" WARN chat-listen: gap in phoenix: asked after 1 (epoch $epoch), server has none stored (no epoch yet); any message after 1 of epoch $epoch is lost" ]]
}

@test "waits for a server that is not up yet: one line, then it subscribes when chatd starts" {
	local port
	port=$(free_port)
	bg chat-listen -u "http://127.0.0.1:$port" -c early -n 1
	wait_until 5 grep -q 'cannot connect, retrying' "$BG_OUT.err"
	chatd_on "$port"
	# not subscribed yet for sure: post until the message gets through
	wait_until 10 sh -c "chat-post -u http://127.0.0.1:$port -c early hello; grep -q hello $BG_OUT"
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	[ "$(cat "$BG_OUT")" = "hello" ]
	[ "$(wc -l < "$BG_OUT.err")" -eq 1 ]
	[[ "$(cat "$BG_OUT.err")" == *" WARN chat-listen: cannot connect, retrying url=ws://127.0.0.1:$port/ws?chan=early reason="* ]]
}

@test "-q keeps outages quiet" {
	# The first attempt fails at once; a second later timeout's TERM ends it.
	run timeout 1 chat-listen -q -u "http://127.0.0.1:$(free_port)"
	[ "$status" -eq 124 ]
	[ "$output" = "" ]
}

@test "messages published on another chatd arrive through Redis" {
	start_redis
	start_chatd --redis "$REDIS_URL"
	local url_a=$CHATD_URL
	start_chatd --redis "$REDIS_URL"
	wait_healthy "$url_a"
	wait_healthy "$CHATD_URL"
	bg chat-listen -u "$url_a" -c across -n 1
	# the Redis SUBSCRIBE completes asynchronously: post until it gets through
	wait_until 10 sh -c "chat-post -u $CHATD_URL -c across 'from b'; grep -q 'from b' $BG_OUT"
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	[ "$(cat "$BG_OUT")" = "from b" ]
}

@test "a refused subscription is reported and exits 69; the server still serves" {
	run chat-listen -u "$CHATD_URL/nope"
	[ "$status" -eq 69 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *" ERROR chat-listen: server refused the subscription url=ws://127.0.0.1:$CHATD_PORT/nope/ws?chan=pubsub reason=\""*"(close 1008)\"" ]]
	listen -c still -n 1
	chat-post -c still ok
	finished "$BG_PID"
	[ "$(cat "$BG_OUT")" = "ok" ]
}

@test "usage errors: invalid channel, bad -n, bad URL, stray argument" {
	run chat-listen -c ok -c 'bad/name'
	[ "$status" -eq 64 ]
	[ "$output" = 'chat-listen: invalid channel name "bad/name": channel name may only use A-Z a-z 0-9 _ - . :' ]
	run chat-listen -n 0
	[ "$status" -eq 64 ]
	[ "$output" = 'chat-listen: -n needs a positive number, not "0"' ]
	run chat-listen -n 3x
	[ "$status" -eq 64 ]
	run chat-listen -u 127.0.0.1:3000
	[ "$status" -eq 64 ]
	[ "$output" = 'chat-listen: "127.0.0.1:3000" is not a URL; use http://HOST:PORT' ]
	run chat-listen $(for i in $(seq 17); do printf -- '-c c%d ' "$i"; done)
	[ "$status" -eq 64 ]
	[ "$output" = "chat-listen: at most 16 channels (-c) per connection" ]
	run chat-listen extra
	[ "$status" -eq 64 ]
	[ "$output" = "usage: chat-listen [-jqv] [-u URL] [-c CHAN]... [-n COUNT]" ]
}

@test "--help, --version and a bad option" {
	run chat-listen --version
	[ "$status" -eq 0 ]
	[ "$output" = "chat-listen (chatd) 0.1.0" ]
	run chat-listen --help
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "usage: chat-listen [-jqv] [-u URL] [-c CHAN]... [-n COUNT]" ]
	[[ "$output" == *"--count COUNT"* ]]
	run chat-listen --bogus
	[ "$status" -eq 64 ]
	[ "${lines[1]}" = "usage: chat-listen [-jqv] [-u URL] [-c CHAN]... [-n COUNT]" ]
}
