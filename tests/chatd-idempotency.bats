#!/usr/bin/env bats
# Idempotency keys: a publish that repeats a key is answered with the original position
# and published once; the same key for another message is a 422; --redis-wait makes an
# acknowledgement wait for replicas.

load helpers

# kpost KEY JSON [PATH]: post with an Idempotency-Key header; prints "STATUS BODY".
kpost() {
	curl -s -o "$BATS_TEST_TMPDIR/post.body" -w '%{http_code}' -H "Idempotency-Key: $1" \
		--data-binary "$2" "$CHATD_URL${3:-/}"
	echo " $(cat "$BATS_TEST_TMPDIR/post.body")"
}

# msgs CHAN: the msg of each stored message of CHAN, space-separated
msgs() {
	curl -s "$CHATD_URL/history/$1" |
		$PY -c 'import json,sys; print(" ".join(json.dumps(m["msg"]) for m in json.load(sys.stdin)["messages"]))'
}

repeat_is_answered_with_the_original() {
	run kpost k1 '{"chan":"i","msg":"first"}'
	[[ "$output" == '200 {"ok":true,"chan":"i","seq":1,"epoch":"'*'","ts":'*'}' ]]
	local first=${output#200 }
	run kpost k1 '{"chan":"i","msg":"first"}'
	[ "$output" = "200 ${first%\}},\"duplicate\":true}" ]
	# the key may also come in the body, and /pub takes the header
	run post '{"chan":"i","msg":"first","key":"k1"}'
	[ "$output" = "200 ${first%\}},\"duplicate\":true}" ]
	run kpost k2 second /pub/i
	[[ "$output" == '200 {"ok":true,"chan":"i","seq":2,'* ]]
	run kpost k2 second /pub/i
	[[ "$output" == '200 {"ok":true,"chan":"i","seq":2,'*'"duplicate":true}' ]]
	# a key is per channel
	run kpost k1 '{"chan":"j","msg":"first"}'
	[[ "$output" == '200 {"ok":true,"chan":"j","seq":1,'*'}' ]]
	[[ "$output" != *duplicate* ]]
	run msgs i
	[ "$output" = '"first" "second"' ]
}

@test "a repeated key is answered with the original position and published once (memory)" {
	start_chatd
	repeat_is_answered_with_the_original
}

@test "a repeated key is answered with the original position and published once (Redis)" {
	start_redis
	start_chatd -r "$REDIS_URL"
	wait_healthy "$CHATD_URL"
	repeat_is_answered_with_the_original
	run redis-cli -p "$REDIS_PORT" pttl 'chatd:{i}:k:k1'
	[ "$output" -gt 86000000 ]
}

@test "the same key for a different message is refused with 422 and the original's position" {
	start_chatd
	kpost k '{"chan":"c","msg":1}'
	run kpost k '{"chan":"c","msg":2}'
	[[ "$output" == '422 {"ok":false,"error":"this idempotency key was already used for a different message","chan":"c","seq":1,'* ]]
	run msgs c
	[ "$output" = 1 ]
}

@test "bad keys are a 400 that says what a key is" {
	start_chatd
	run kpost "$(printf 'k%.0s' $(seq 101))" '{"chan":"c","msg":1}'
	[ "$output" = '400 {"ok":false,"error":"an idempotency key has 1 to 100 characters"}' ]
	run curl -s -w ' %{http_code}' -H 'Idempotency-Key;' -d '{"chan":"c","msg":1}' "$CHATD_URL/"
	[ "$output" = '{"ok":false,"error":"an idempotency key has 1 to 100 characters"} 400' ]
	run post '{"chan":"c","msg":1,"key":"a b"}'
	[ "$output" = '400 {"ok":false,"error":"an idempotency key has only visible ASCII characters (no spaces)"}' ]
	run post '{"chan":"c","msg":1,"key":"caf\u00e9"}'
	[ "$output" = '400 {"ok":false,"error":"an idempotency key has only visible ASCII characters (no spaces)"}' ]
	run post '{"chan":"c","msg":1,"key":7}'
	[ "$output" = '400 {"ok":false,"error":"\"key\" must be a string"}' ]
	run kpost other '{"chan":"c","msg":1,"key":"one"}'
	[ "$output" = '400 {"ok":false,"error":"the Idempotency-Key header and the \"key\" member differ; give one key"}' ]
	# the same key in both places is fine, and nothing above was published
	run kpost one '{"chan":"c","msg":1,"key":"one"}'
	[[ "$output" == '200 {"ok":true,"chan":"c","seq":1,'* ]]
}

@test "keys are shared by every node on one Redis" {
	start_redis
	start_chatd -r "$REDIS_URL"
	local first=$CHATD_URL
	start_chatd -r "$REDIS_URL"
	wait_healthy "$first" && wait_healthy "$CHATD_URL"
	run curl -s -H 'Idempotency-Key: x' -d '{"chan":"n","msg":"m"}' "$first/"
	[[ "$output" == '{"ok":true,"chan":"n","seq":1,'* ]]
	run kpost x '{"chan":"n","msg":"m"}'
	[[ "$output" == '200 {"ok":true,"chan":"n","seq":1,'*'"duplicate":true}' ]]
}

@test "a WebSocket publish with a key is published once" {
	start_chatd
	local ready=$BATS_TEST_TMPDIR/ready
	bg ws "ws://127.0.0.1:$CHATD_PORT/ws/w" --count 2 --timeout 5 --ready "$ready"
	wait_until 5 test -e "$ready"
	ws "ws://127.0.0.1:$CHATD_PORT/ws/other" \
		--send '{"chan":"w","msg":"a","key":"K"}' --send '{"chan":"w","msg":"a","key":"K"}' \
		--send '{"chan":"w","msg":"b","key":"K"}' --send '{"chan":"w","msg":"end"}' \
		--count 1 --timeout 3 >"$BATS_TEST_TMPDIR/pub.out" || true
	grep -q 'already used for a different message' "$BATS_TEST_TMPDIR/pub.out"
	finished "$BG_PID"
	run $PY -c 'import json,sys; print(" ".join(json.loads(l)["msg"] for l in open(sys.argv[1]) if l.startswith("{")))' "$BG_OUT"
	[ "$output" = "a end" ]
}

@test "--idempotency-window: a key is forgotten after the window; 0 ignores keys" {
	start_chatd --idempotency-window 1
	kpost k '{"chan":"t","msg":"x"}'
	run kpost k '{"chan":"t","msg":"x"}'
	[[ "$output" == *'"seq":1,'*duplicate* ]]
	sleep 1.2
	run kpost k '{"chan":"t","msg":"x"}'
	[[ "$output" == '200 {"ok":true,"chan":"t","seq":2,'* ]]
	[[ "$output" != *duplicate* ]]
	stop_pid "$CHATD_PID"
	start_chatd --idempotency-window 0
	kpost k '{"chan":"t","msg":"x"}'
	run kpost k '{"chan":"t","msg":"x"}'
	[[ "$output" == '200 {"ok":true,"chan":"t","seq":2,'* ]]
	run chatd --idempotency-window soon
	[ "$status" -eq 64 ]
	[[ "$output" == *"--idempotency-window: want seconds"* ]]
}

@test "--redis-wait: acknowledged once a replica has it, 503 when none confirms, a keyed retry is safe" {
	start_redis
	local master=$REDIS_PORT
	start_redis --replicaof 127.0.0.1 "$master"
	local replica=$REDIS_PORT replica_pid=$REDIS_PID
	wait_until 10 sh -c "redis-cli -p $master info replication | grep -q 'state=online'"
	start_chatd -r "redis://127.0.0.1:$master" --redis-wait 1
	wait_healthy "$CHATD_URL"
	run kpost a '{"chan":"r","msg":"one"}'
	[[ "$output" == '200 {"ok":true,"chan":"r","seq":1,'* ]]
	run redis-cli -p "$replica" xlen 'chatd:{r}:h'
	[ "$output" = 1 ]
	kill -STOP "$replica_pid"
	run kpost b '{"chan":"r","msg":"two"}'
	kill -CONT "$replica_pid"
	[[ "$output" == '503 {"ok":false,"error":"message not acknowledged, try again: not confirmed: stored on the redis master but only 0 of 1 replicas confirmed it in time; the message may still be delivered"}' ]]
	# the retry with the same key finds the stored message and waits for the replica again
	run kpost b '{"chan":"r","msg":"two"}'
	[[ "$output" == '200 {"ok":true,"chan":"r","seq":2,'*'"duplicate":true}' ]]
	run msgs r
	[ "$output" = '"one" "two"' ]
	run chatd --redis-wait 1
	[ "$status" -eq 64 ]
	[[ "$output" == *"--redis-wait needs a Redis broker"* ]]
}

# burst CHANS FRAME...: send the frames in one TCP write on a WebSocket subscribed to CHANS
# (so chatd reads them in one loop turn), print what comes back within 1.5 s
burst() {
	local chans=$1
	shift
	$PY "$BATS_TEST_DIRNAME/wsburst.py" 127.0.0.1 "$CHATD_PORT" "/ws?$chans" --wait 1.5 "$@"
}

burst_is_published_in_order_with_keys() {
	local frames=() i
	for i in $(seq 30); do frames+=("{\"chan\":\"a\",\"msg\":$i}"); done
	frames+=('{"chan":"a","msg":"k","key":"k1"}' '{"chan":"a","msg":"k","key":"k1"}'
		'{"chan":"b","msg":"other"}' '{"chan":"a","msg":"changed","key":"k1"}'
		'{"chan":"a","msg":"last"}')
	run burst 'chan=a&chan=b' "${frames[@]}"
	[ "${lines[-1]}" = END ]
	# everything came back once, in the order sent; the repeated key once
	[ "$(printf '%s\n' "${lines[@]}" | $PY -c '
import json, sys
for l in sys.stdin:
    o = json.loads(l) if l.startswith("{") else {}
    if "seq" in o:
        print("%s:%s:%s" % (o["chan"], o["seq"], json.dumps(o["msg"])))
' | tr '\n' ' ')" = "$(for i in $(seq 30); do printf 'a:%s:%s ' "$i" "$i"; done)a:31:\"k\" b:1:\"other\" a:32:\"last\" " ]
	# the changed message under a used key refused (its answer may pass the deliveries:
	# in Redis mode they come on another connection)
	[ "$(printf '%s\n' "${lines[@]}" | grep -c '"type":"error"')" = 1 ]
	[[ "${lines[*]}" == *'{"type":"error","error":"publish failed: this idempotency key was already used for a different message"}'* ]]
	[ "$(msgs a)" = "$(seq -s ' ' 30) \"k\" \"last\"" ]
	[ "$(msgs b)" = '"other"' ]
}

@test "a burst of WebSocket publishes read in one turn is published in order, keys kept (memory)" {
	start_chatd
	burst_is_published_in_order_with_keys
}

@test "Redis: a burst goes to Redis in script calls of up to 8 publishes, in order, keys kept" {
	start_redis
	start_chatd --redis "$REDIS_URL"
	wait_healthy "$CHATD_URL"
	redis-cli -p "$REDIS_PORT" config resetstat >/dev/null
	burst_is_published_in_order_with_keys
	# a run of publishes to one channel in one loop turn is one script call per 8: a x32,
	# b, a x2 are 4 + 1 + 1 calls, and a few more if lws reads the burst in two or three
	# turns (its receive buffer is 512 bytes); 35 unbatched (history reads go as EVAL)
	local calls
	calls=$(redis-cli -p "$REDIS_PORT" info commandstats |
		awk -F'[=,:]' '/^cmdstat_evalsha:/ { print $3 }')
	echo "publish script calls: $calls"
	[ "$calls" -ge 6 ] && [ "$calls" -le 9 ]
}

@test "Redis: a repeat after the channel's counters expired is answered and changes nothing" {
	start_redis
	start_chatd --redis "$REDIS_URL"
	wait_healthy "$CHATD_URL"
	run kpost k7 '{"chan":"exp","msg":"x"}'
	[[ "$output" == '200 {"ok":true,"chan":"exp","seq":1,'* ]]
	redis-cli -p "$REDIS_PORT" del 'chatd:{exp}:m' >/dev/null
	run kpost k7 '{"chan":"exp","msg":"x"}'
	[[ "$output" == '200 {"ok":true,"chan":"exp","seq":1,'*'"duplicate":true}' ]]
	# no new epoch made for it: the stored message is still there, no counters made
	[ "$(redis-cli -p "$REDIS_PORT" xlen 'chatd:{exp}:h')" = 1 ]
	[ "$(redis-cli -p "$REDIS_PORT" exists 'chatd:{exp}:m')" = 0 ]
}
