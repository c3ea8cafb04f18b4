#!/usr/bin/env bats
# A subscriber connection that dies silently (no FIN, no RST: a dead NAT, a partition)
# must not look healthy: the heartbeat through Redis pub/sub finds it, /healthz says so,
# and chatd reconnects it.

load helpers

@test "a silently frozen subscriber connection is found by the heartbeat, reported, and replaced" {
	start_redis
	local proxy
	proxy=$(free_port)
	bg "$PY" "$TESTS_DIR/tcpfreeze.py" "$proxy" "$REDIS_PORT"
	local proxy_pid=$BG_PID
	wait_until 5 grep -q ready "$BG_OUT"
	start_chatd -r "redis://127.0.0.1:$proxy"
	wait_healthy "$CHATD_URL"
	local ready=$BATS_TEST_TMPDIR/ready
	bg ws "ws://127.0.0.1:$CHATD_PORT/ws/hb" --count 2 --timeout 20 --ready "$ready"
	wait_until 5 test -e "$ready"
	wait_until 5 sh -c "redis-cli -p $REDIS_PORT pubsub channels hb | grep -q hb"
	post '{"chan":"hb","msg":"before"}'
	kill -USR1 "$proxy_pid"
	# publishes still work (the command connection is fine), the subscriber's is not
	wait_until 10 sh -c "curl -s $CHATD_URL/healthz | grep -q 'redis subscriber connection to 127.0.0.1:$proxy is down (no heartbeat through redis pub/sub for 3 s)'"
	grep -q 'no heartbeat through redis pub/sub' "$CHATD_LOG"
	wait_healthy "$CHATD_URL"
	post '{"chan":"hb","msg":"after"}'
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	run $PY -c 'import json,sys; print(" ".join(json.loads(l)["msg"] for l in open(sys.argv[1]) if l.startswith("{")))' "$BG_OUT"
	[ "$output" = "before after" ]
}

@test "the heartbeat channel is this node's own and never reaches clients" {
	start_redis
	start_chatd -r "$REDIS_URL"
	wait_healthy "$CHATD_URL"
	run redis-cli -p "$REDIS_PORT" pubsub channels '*'
	[[ "$output" == "chatd heartbeat "* ]]
	local ready=$BATS_TEST_TMPDIR/ready
	bg ws "ws://127.0.0.1:$CHATD_PORT/ws/x" --count 1 --timeout 4 --ready "$ready"
	wait_until 5 test -e "$ready"
	sleep 2.5 # a couple of beats
	post '{"chan":"x","msg":"only this"}'
	finished "$BG_PID"
	run grep -c '^{' "$BG_OUT"
	[ "$output" = 1 ]
}

@test "publishes use the cached script (EVALSHA); after SCRIPT FLUSH one publish is refused 503 and the next works" {
	start_redis
	start_chatd -r "$REDIS_URL"
	wait_healthy "$CHATD_URL"
	post '{"chan":"s","msg":1}' >/dev/null
	run redis-cli -p "$REDIS_PORT" info commandstats
	[[ "$output" == *cmdstat_evalsha:calls=* ]]
	redis-cli -p "$REDIS_PORT" script flush >/dev/null
	run post '{"chan":"s","msg":2}'
	[[ "$output" == '503 {"ok":false,"error":"message not acknowledged, try again: redis lost chatd'\''s publish script (SCRIPT FLUSH?); it is being loaded again"}' ]]
	run post '{"chan":"s","msg":3}'
	[[ "$output" == '200 {"ok":true,"chan":"s","seq":2,'* ]]
}
