#!/usr/bin/env bats
# chat-post --retry and --key: a message the server could not take is sent again under the
# same idempotency key, so it is stored exactly once however the attempts went; what is not
# worth retrying is not retried; the final failure names the message and the exit status
# is the one chat-post(1) documents.

load helpers
bats_require_minimum_version 1.5.0

# start_chatd_at PORT [ARGS...]: start_chatd on a port picked beforehand, for a server that
# comes up while chat-post is already retrying.
start_chatd_at() {
	CHATD_PORT=$1
	shift
	CHATD_URL=http://127.0.0.1:$CHATD_PORT
	CHATD_LOG=$BATS_TEST_TMPDIR/chatd.$CHATD_PORT.log
	chatd --listen "127.0.0.1:$CHATD_PORT" "$@" 2>"$CHATD_LOG" 3>&- &
	CHATD_PID=$!
	STARTED_PIDS+=("$CHATD_PID")
	wait_until 5 curl -s -o /dev/null "$CHATD_URL/healthz"
}

# restart_redis: a new redis-server on the port of the one start_redis started (and a
# test stopped): empty, as after a crash without persistence.
restart_redis() {
	redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
		--dir "$BATS_TEST_TMPDIR/redis.$REDIS_PORT" >>"$BATS_TEST_TMPDIR/redis.$REDIS_PORT.log" 2>&1 3>&- &
	REDIS_PID=$!
	STARTED_PIDS+=("$REDIS_PID")
	wait_until 5 redis-cli -p "$REDIS_PORT" ping
}

# start_proxy [ARGS...]: tests/flakyproxy.py in front of $CHATD_URL. Sets PROXY_URL and
# PROXY_LOG (one line per POST: "POST PATH key=KEY STATUS ACTION BODY").
start_proxy() {
	local port ready=$BATS_TEST_TMPDIR/proxy.ready
	port=$(free_port)
	PROXY_URL=http://127.0.0.1:$port
	PROXY_LOG=$BATS_TEST_TMPDIR/proxy.log
	rm -f "$ready"
	$PY "$TESTS_DIR/flakyproxy.py" --port "$port" --upstream "$CHATD_URL" --log "$PROXY_LOG" \
		--ready "$ready" "$@" 2>"$BATS_TEST_TMPDIR/proxy.err" 3>&- &
	STARTED_PIDS+=("$!")
	wait_until 5 test -e "$ready"
}

# stored CHAN: the msg of each message chatd stored in CHAN, one per line, oldest first
stored() {
	curl -s "$CHATD_URL/history/$1" |
		$PY -c 'import json,sys; [print(m["msg"]) for m in json.load(sys.stdin)["messages"]]'
}

# attempts: the proxy's log with each key replaced by K1, K2, ... in order of first use and
# each answer cut to its status, action, seq and duplicate flag: "K1 200 dropped seq=1".
attempts() {
	$PY - "$PROXY_LOG" <<-'EOF'
		import json, sys
		keys = {}
		for line in open(sys.argv[1]):
		    method, path, key, status, action, body = line.rstrip("\n").split(" ", 5)
		    key = key[len("key="):]
		    if key != "-":
		        key = keys.setdefault(key, "K%d" % (len(keys) + 1))
		    answer = json.loads(body)
		    out = [key, status, action]
		    if "seq" in answer:
		        out.append("seq=%d" % answer["seq"])
		    if answer.get("duplicate"):
		        out.append("duplicate")
		    print(" ".join(out))
	EOF
}

# ended PID: like finished, with room for a backoff that has grown to its 5 s cap.
ended() {
	wait_until 30 gone "$1"
	finished "$1"
}

@test "a server that is down when chat-post starts and comes up during the retries gets the message once" {
	local port
	port=$(free_port)
	bg chat-post -v --retry 30 -u "http://127.0.0.1:$port" -c late "hello, late server"
	wait_until 10 grep -q 'attempt 2 of 31: cannot reach chatd' "$BG_OUT.err"
	start_chatd_at "$port"
	ended "$BG_PID"
	[ "$status" -eq 0 ]
	# the one answer on stdout is a first publish, not a duplicate
	run cat "$BG_OUT"
	[[ "$output" == '{"ok":true,"chan":"late","seq":1,"epoch":"'*'","ts":'*'}' ]]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" != *duplicate* ]]
	# every line on stderr is a retry that was logged because of -v; no failure
	run grep -vc "^chat-post: argument 1: attempt [0-9]* of 31: cannot reach chatd at http://127.0.0.1:$port/: .*; retrying in [0-9.]* s$" "$BG_OUT.err"
	[ "$output" = 0 ]
	run stored late
	[ "$output" = "hello, late server" ]
}

@test "Redis down, then back during the retries: 503s are retried after Retry-After, the message stored once" {
	start_redis
	start_chatd --redis "$REDIS_URL"
	wait_healthy "$CHATD_URL"
	stop_pid "$REDIS_PID"
	wait_until 10 sh -c "! curl -sf -o /dev/null $CHATD_URL/healthz"
	bg chat-post -v --retry 30 -u "$CHATD_URL" -c red "through redis"
	wait_until 10 grep -q '^chat-post: argument 1: attempt 1 of 31: 503 message not accepted, try again: .* (Retry-After: 1); retrying in 1\.[0-2] s$' "$BG_OUT.err"
	restart_redis
	ended "$BG_PID"
	[ "$status" -eq 0 ]
	[[ "$(cat "$BG_OUT")" == '{"ok":true,"chan":"red","seq":1,'* ]]
	run stored red
	[ "$output" = "through redis" ]
	# and the server is serving others as usual
	run chat-post -u "$CHATD_URL" -c red after
	[ "$status" -eq 0 ]
	run stored red
	[ "$output" = "through redis
after" ]
}

@test "an answer lost after chatd stored the message: the retry carries the same key and is not published again" {
	start_chatd
	start_proxy --drop 1
	run --separate-stderr chat-post -v --retry 3 -u "$PROXY_URL" -c once first second
	[ "$status" -eq 0 ]
	# stdout: chatd's answers; the first is the original position, flagged as a duplicate
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[0]}" == '{"ok":true,"chan":"once","seq":1,"epoch":"'*'","ts":'*',"duplicate":true}' ]]
	[[ "${lines[1]}" == '{"ok":true,"chan":"once","seq":2,"epoch":"'* ]]
	[[ "${lines[1]}" != *duplicate* ]]
	# stderr: the one retry, logged because of -v
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "chat-post: argument 1: attempt 1 of 4: cannot reach chatd at $PROXY_URL/: "*"; retrying in "*" s" ]]
	run attempts
	[ "$output" = "K1 200 dropped seq=1
K1 200 forwarded seq=1 duplicate
K2 200 forwarded seq=2" ]
	run stored once
	[ "$output" = "first
second" ]
	# a generated key is 128 random bits in hex and a counter
	run grep -c '^POST / key=[0-9a-f]\{32\}-[12] ' "$PROXY_LOG"
	[ "$output" = 3 ]
}

@test "each chat-post process makes its own keys: the same text posted twice is published twice" {
	start_chatd
	start_proxy
	chat-post --retry 1 -u "$PROXY_URL" -c twice same
	chat-post --retry 1 -u "$PROXY_URL" -c twice same
	run attempts
	[ "$output" = "K1 200 forwarded seq=1
K2 200 forwarded seq=2" ]
	run stored twice
	[ "$output" = "same
same" ]
}

@test "--retry 0 (the default) sends no key and does not retry: a lost answer is reported, exit 69" {
	start_chatd
	start_proxy --drop 1
	run chat-post -u "$PROXY_URL" -c lost one
	[ "$status" -eq 69 ]
	[[ "$output" == "chat-post: argument 1: cannot reach chatd at $PROXY_URL/: "* ]]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" != *attempt* ]]
	run attempts
	[ "$output" = "- 200 dropped seq=1" ]
	# chatd did store it: this is the case --retry with a key exists for
	run stored lost
	[ "$output" = one ]
}

@test "--key: the same key in two chat-post runs publishes once; another message under it is a 422" {
	start_chatd
	export CHAT_URL=$CHATD_URL
	run chat-post -v --key nightly-2026-11-27 -c jobs "backup done"
	[ "$status" -eq 0 ]
	[[ "$output" == '{"ok":true,"chan":"jobs","seq":1,"epoch":"'*'","ts":'*'}' ]]
	[[ "$output" != *duplicate* ]]
	local first=$output
	run chat-post -v --key nightly-2026-11-27 -c jobs "backup done"
	[ "$status" -eq 0 ]
	[ "$output" = "${first%\}},\"duplicate\":true}" ]
	run chat-post --key nightly-2026-11-27 -c jobs "backup failed"
	[ "$status" -eq 65 ]
	[ "$output" = "chat-post: argument 1: 422 this idempotency key was already used for a different message" ]
	# keys are per channel; and the server still publishes what has a new key
	run chat-post -v --key nightly-2026-11-27 -c other "backup done"
	[[ "$output" == '{"ok":true,"chan":"other","seq":1,'* ]]
	[[ "$output" != *duplicate* ]]
	chat-post --key nightly-2026-11-28 -c jobs "next backup done"
	run stored jobs
	[ "$output" = "backup done
next backup done" ]
}

@test "--key with --retry: every attempt carries the given key" {
	start_chatd
	start_proxy --drop 1
	run chat-post --retry 2 --key order-17 -u "$PROXY_URL" -c orders paid
	[ "$status" -eq 0 ]
	[ "$output" = "" ]
	run grep -c '^POST / key=order-17 200 ' "$PROXY_LOG"
	[ "$output" = 2 ]
	run stored orders
	[ "$output" = paid ]
}

@test "429 and Retry-After are retried, quietly when the message gets through" {
	start_chatd
	start_proxy --refuse 2 --status 429 --retry-after 0
	run chat-post --retry 2 -u "$PROXY_URL" -c slow "not now"
	[ "$status" -eq 0 ]
	[ "$output" = "" ]
	run attempts
	[ "$output" = "K1 429 refused
K1 429 refused
K1 200 forwarded seq=1" ]
	run stored slow
	[ "$output" = "not now" ]
}

@test "a 4xx other than 408 and 429 is not retried: one attempt, the server's reason, exit 65" {
	start_chatd --max-message 1K
	start_proxy
	run chat-post --retry 5 -u "$PROXY_URL" -c big before "$(head -c 2000 /dev/zero | tr '\0' x)" after
	[ "$status" -eq 65 ]
	[ "$output" = "chat-post: argument 2: 413 body is 2023 bytes; the limit is 1024 (chatd --max-message)" ]
	run attempts
	[ "$output" = "K1 200 forwarded seq=1
K2 413 forwarded
K3 200 forwarded seq=2" ]
	# a key conflict (422) is final too
	chat-post --key k -u "$CHATD_URL" -c big before
	: >"$PROXY_LOG"
	run chat-post --retry 5 --key k -u "$PROXY_URL" -c big changed
	[ "$status" -eq 65 ]
	[ "$output" = "chat-post: argument 1: 422 this idempotency key was already used for a different message" ]
	[ "$(wc -l <"$PROXY_LOG")" -eq 1 ]
	run stored big
	[ "$output" = "before
after
before" ]
}

@test "501 is not retried either; it is still 'unavailable', exit 69" {
	start_chatd
	start_proxy --refuse 1 --status 501
	run chat-post --retry 5 -u "$PROXY_URL" -c nope hello
	[ "$status" -eq 69 ]
	[ "$output" = "chat-post: argument 1: 501 refused by flakyproxy" ]
	[ "$(wc -l <"$PROXY_LOG")" -eq 1 ]
}

@test "retries spent: one final line per message naming it, the attempts made, exit 69" {
	start_chatd
	start_proxy --refuse 100 --status 503 --retry-after 0
	run chat-post --retry 2 -u "$PROXY_URL" -c full < <(printf 'one\ntwo\n')
	[ "$status" -eq 69 ]
	[ "$output" = "chat-post: line 1: 503 refused by flakyproxy (Retry-After: 0); gave up after 3 attempts
chat-post: line 2: 503 refused by flakyproxy (Retry-After: 0); gave up after 3 attempts" ]
	run attempts
	[ "$output" = "K1 503 refused
K1 503 refused
K1 503 refused
K2 503 refused
K2 503 refused
K2 503 refused" ]
}

@test "an unreachable server with --retry: each attempt on stderr with -v, then the final line" {
	local port
	port=$(free_port)
	run chat-post -v --retry 2 -u "http://127.0.0.1:$port" gone
	[ "$status" -eq 69 ]
	[ "${#lines[@]}" -eq 3 ]
	# the backoff starts at 100 ms and doubles (plus up to 20%)
	[[ "${lines[0]}" == "chat-post: argument 1: attempt 1 of 3: cannot reach chatd at http://127.0.0.1:$port/: "*"; retrying in 0.1 s" ]]
	[[ "${lines[1]}" == "chat-post: argument 1: attempt 2 of 3: cannot reach chatd at http://127.0.0.1:$port/: "*"; retrying in 0.2 s" ]]
	[[ "${lines[2]}" == "chat-post: argument 1: cannot reach chatd at http://127.0.0.1:$port/: "*"; gave up after 3 attempts" ]]
}

@test "bad --retry and --key values are usage errors; nothing is sent and the server still serves" {
	start_chatd
	export CHAT_URL=$CHATD_URL
	local v
	for v in x -1 1001 '' 2.5 ' 3'; do
		run chat-post --retry "$v" -c bad hello
		[ "$status" -eq 64 ]
		[ "$output" = "chat-post: --retry wants a number from 0 to 1000, not \"$v\"" ]
	done
	run chat-post --retry
	[ "$status" -eq 64 ]
	[ "${lines[0]}" = "chat-post: option '--retry' requires an argument" ]
	run chat-post --key '' -c bad hello
	[ "$status" -eq 64 ]
	[ "$output" = 'chat-post: invalid --key "": it is empty' ]
	run chat-post --key 'a b' -c bad hello
	[ "$status" -eq 64 ]
	[ "$output" = 'chat-post: invalid --key "a b": it may only use visible ASCII characters, no spaces' ]
	run chat-post --key 'café' -c bad hello
	[ "$status" -eq 64 ]
	[ "$output" = 'chat-post: invalid --key "café": it may only use visible ASCII characters, no spaces' ]
	run chat-post --key "$(printf 'k%.0s' $(seq 101))" -c bad hello
	[ "$status" -eq 64 ]
	[[ "$output" == *'": it is longer than 100 characters' ]]
	run chat-post --key one -c bad hello world
	[ "$status" -eq 64 ]
	[ "$output" = "chat-post: --key names one message: give exactly one MSG argument (or --file)" ]
	run chat-post --key one -c bad <<<"from stdin"
	[ "$status" -eq 64 ]
	[ "$output" = "chat-post: --key names one message: give exactly one MSG argument (or --file)" ]
	run stored bad
	[ "$output" = "" ]
	# the limits themselves are fine
	run chat-post --retry 1000 --key "$(printf 'k%.0s' $(seq 100))" -c bad '!~'
	[ "$status" -eq 0 ]
	run stored bad
	[ "$output" = '!~' ]
}
