#!/usr/bin/env bats
# Several chatd nodes on one Redis are one chat; Redis going away is reported, never
# hidden, and the nodes recover by themselves when it returns.

load helpers

setup() {
	start_redis
	start_chatd --redis "$REDIS_URL"
	A_URL=$CHATD_URL A_PORT=$CHATD_PORT A_PID=$CHATD_PID A_LOG=$CHATD_LOG
	start_chatd --redis "$REDIS_URL"
	B_URL=$CHATD_URL B_PORT=$CHATD_PORT B_PID=$CHATD_PID
	wait_healthy "$A_URL"
	wait_healthy "$B_URL"
}

# sub_on PORT CHAN COUNT [TIMEOUT]: background subscriber on that node, subscribed in Redis
# on return.
sub_on() {
	local ready=$BATS_TEST_TMPDIR/ready.$RANDOM
	bg ws "ws://127.0.0.1:$1/ws/$2" --count "$3" --timeout "${4:-8}" --ready "$ready"
	wait_until 5 test -e "$ready"
	# the node subscribes in Redis when its first local subscriber arrives
	wait_until 5 sh -c "redis-cli -p $REDIS_PORT pubsub numsub $2 | tail -n 1 | grep -qv '^0$'"
}

@test "a message posted to one node reaches subscribers on both" {
	sub_on "$B_PORT" room 2
	local b_pid=$BG_PID b_out=$BG_OUT
	sub_on "$A_PORT" room 2
	run curl -s -X POST -d '{"chan":"room","msg":"from A"}' "$A_URL/"
	[[ "$output" == '{"ok":true'* ]]
	run curl -s -X POST --data-binary 'from B' "$B_URL/pub/room"
	[[ "$output" == '{"ok":true'* ]]
	wait "$b_pid"
	wait "$BG_PID"
	for out in "$b_out" "$BG_OUT"; do
		[ "$(sed -n 1p "$out" | grep -c '"chan":"room",.*"msg":"from A"')" -eq 1 ]
		[ "$(sed -n 2p "$out" | grep -c '"chan":"room",.*"msg":"from B"')" -eq 1 ]
	done
}

@test "a WebSocket publish on one node reaches the other" {
	sub_on "$B_PORT" ws-cross 1
	run ws "ws://127.0.0.1:$A_PORT/ws/ws-cross" --count 1 --send 'over the wire'
	wait "$BG_PID"
	grep -q '"msg":"over the wire"' "$BG_OUT"
}

@test "a node subscribes in Redis only while it has local subscribers" {
	# (each node always has its own heartbeat channel, 'chatd heartbeat ID')
	run sh -c "redis-cli -p $REDIS_PORT pubsub channels | grep -v '^chatd heartbeat '"
	[ -z "$output" ]
	run redis-cli -p "$REDIS_PORT" pubsub channels 'chatd heartbeat *'
	[ "${#lines[@]}" -eq 2 ]
	sub_on "$A_PORT" transient 1
	run redis-cli -p "$REDIS_PORT" pubsub numsub transient
	[ "${lines[1]}" -eq 1 ]
	post_a() { curl -s -X POST -d '{"chan":"transient","msg":1}' "$A_URL/"; }
	post_a
	wait "$BG_PID"
	# unsubscribed a little after the last local subscriber left
	wait_until 6 sh -c "[ -z \"\$(redis-cli -p $REDIS_PORT pubsub channels transient)\" ]"
}

@test "Redis down: POST answers 503 with Retry-After, /healthz 503; both recover" {
	sub_on "$B_PORT" steady 1
	local sub_pid=$BG_PID sub_out=$BG_OUT
	stop_pid "$REDIS_PID"
	wait_until 5 sh -c "curl -s -o /dev/null -w '%{http_code}' $A_URL/healthz | grep -q 503"
	run curl -s -i -X POST -d '{"chan":"steady","msg":"lost?"}' "$A_URL/"
	[[ "$output" == *"HTTP/1.1 503"* ]]
	[[ "$output" == *$'retry-after: 1\r'* ]]
	[[ "$output" == *'"ok":false,"error":"message not accepted, try again: redis '* ]]
	run curl -s "$A_URL/healthz"
	[[ "$output" == '{"ok":false,"broker":"redis 127.0.0.1:'*'is down'* ]]
	grep -q 'ERROR broker: redis' "$A_LOG"

	redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no >/dev/null 2>&1 3>&- &
	STARTED_PIDS+=($!)
	wait_healthy "$A_URL"
	wait_healthy "$B_URL"
	# B resubscribed its live subscriber's channel: a new message reaches it
	wait_until 10 sh -c "redis-cli -p $REDIS_PORT pubsub numsub steady | tail -n 1 | grep -qv '^0$'"
	run curl -s -X POST -d '{"chan":"steady","msg":"after restart"}' "$A_URL/"
	[[ "$output" == '{"ok":true'* ]]
	wait "$sub_pid"
	grep -q '"msg":"after restart"' "$sub_out"
	! grep -q 'lost?' "$sub_out"
}

@test "a Redis host name is resolved once, at start" {
	start_chatd --redis "redis://localhost:$REDIS_PORT"
	wait_healthy "$CHATD_URL"
	grep -q "INFO chatd: redis host localhost is 127.0.0.1 (resolved once, at start)" "$CHATD_LOG"
}

@test "chatd starts while Redis is down and becomes healthy when it comes up" {
	local port
	port=$(free_port)
	start_chatd --redis "redis://127.0.0.1:$port"
	run curl -s -o /dev/null -w '%{http_code}' "$CHATD_URL/healthz"
	[ "$output" = 503 ]
	redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no >/dev/null 2>&1 3>&- &
	STARTED_PIDS+=($!)
	wait_healthy "$CHATD_URL"
	run curl -s -X POST -d '{"chan":"late","msg":1}' "$CHATD_URL/"
	[[ "$output" == '{"ok":true'* ]]
}

@test "Redis with a password: AUTH from the URL; a wrong password is reported" {
	stop_all
	start_redis --requirepass s3cret
	start_chatd --redis "redis://:s3cret@127.0.0.1:$REDIS_PORT"
	wait_healthy "$CHATD_URL"
	start_chatd --redis "redis://:wrong@127.0.0.1:$REDIS_PORT"
	wait_until 5 grep -q 'refused: WRONGPASS' "$CHATD_LOG"
	run curl -s "$CHATD_URL/healthz"
	[[ "$output" == *'refused: WRONGPASS'* ]]
	! grep -q s3cret "$CHATD_LOG"
}

@test "a Redis that stops answering (SIGSTOP) is found: 503 within seconds, health says why" {
	sub_on "$B_PORT" frozen 3 30
	local sub_pid=$BG_PID sub_out=$BG_OUT
	kill -STOP "$REDIS_PID"
	run curl -s -m 15 -o "$BATS_TEST_TMPDIR/body" -w '%{http_code}' -X POST -d '{"chan":"frozen","msg":"held"}' "$A_URL/"
	kill -CONT "$REDIS_PID"
	[ "$output" = 503 ]
	grep -q 'not confirmed: lost the connection to redis before it answered' "$BATS_TEST_TMPDIR/body"
	grep -q 'no answer from redis for 3 s' "$A_LOG"
	# It recovers once Redis answers again. ("held" sat in the socket buffer, so Redis
	# may still run it: a 503 "not confirmed" is a maybe, as chat-protocol(7) says.)
	wait_healthy "$A_URL"
	wait_healthy "$B_URL"
	wait_until 10 sh -c "curl -s -X POST -d '{\"chan\":\"frozen\",\"msg\":\"thawed\"}' $A_URL/ >/dev/null; grep -q thawed $sub_out"
	kill "$sub_pid"
}

@test "a quiet subscribed node stays healthy (its PINGs are answered in subscribe mode)" {
	sub_on "$A_PORT" quiet 1
	sleep 6 # several liveness rounds with no traffic at all
	! grep -q 'no answer from redis' "$A_LOG"
	run curl -s -o /dev/null -w '%{http_code}' "$A_URL/healthz"
	[ "$output" = 200 ]
}

@test "a WebSocket publish while Redis is down gets an error frame" {
	stop_pid "$REDIS_PID"
	wait_until 5 sh -c "curl -s -o /dev/null -w '%{http_code}' $A_URL/healthz | grep -q 503"
	run ws "ws://127.0.0.1:$A_PORT/ws/down" --send 'into the void' --count 1
	[[ "${lines[0]}" == '{"type":"error","error":"publish failed: redis '*'is down'* ]]
}

@test "after its subscriber connection is cut, a quiet node resubscribes and stays healthy" {
	sub_on "$A_PORT" calm 1 20
	redis-cli -p "$REDIS_PORT" client kill type pubsub >/dev/null
	wait_until 10 sh -c "redis-cli -p $REDIS_PORT pubsub numsub calm | tail -n 1 | grep -q 1"
	sleep 5 # several liveness rounds on a quiet, subscribed connection
	! grep -q 'no answer from redis' "$A_LOG"
	run curl -s -X POST -d '{"chan":"calm","msg":"still live"}' "$A_URL/"
	[[ "$output" == '{"ok":true'* ]]
	wait "$BG_PID"
	grep -q '"msg":"still live"' "$BG_OUT"
}

@test "--redis unix:///PATH: a node on Redis's UNIX socket and one on TCP are one chat" {
	local sock=$BATS_TEST_TMPDIR/redis.sock
	start_redis --unixsocket "$sock" --unixsocketperm 700
	start_chatd --redis "unix://$sock"
	local u_url=$CHATD_URL u_log=$CHATD_LOG
	wait_healthy "$u_url" || { cat "$u_log"; false; }
	start_chatd --redis "$REDIS_URL"
	wait_healthy "$CHATD_URL"
	sub_on "$CHATD_PORT" via-unix 1
	run curl -s -X POST -d '{"chan":"via-unix","msg":"over the socket"}' "$u_url/"
	[[ "$output" == '{"ok":true'* ]]
	wait "$BG_PID"
	grep -q '"msg":"over the socket"' "$BG_OUT"
	grep -q "broker=redis unix:$sock" "$u_log"
}
