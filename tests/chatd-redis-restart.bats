#!/usr/bin/env bats
# Redis going away under load and coming back: what chatd acknowledged is what its live
# subscribers get, once each and in order, on every node, whether Redis died or only a
# node's subscriber connection was cut (the node fills the gap from the history when it
# resubscribes); what it could not store it refuses (503); and a position from before
# Redis lost its data is answered with a gap frame.
#
# Redis runs with its append-only file fsynced at every write, so a kill -9 loses nothing
# Redis acknowledged and a restart on the same directory brings the channels back in the
# same epoch.

load helpers

# aof_redis: start Redis with AOF on; called again after a kill, it restarts on the same
# port and the same directory. Sets REDIS_PID, REDIS_PORT, REDIS_URL.
aof_redis() {
	REDIS_PORT=${REDIS_PORT:-$(free_port)}
	REDIS_URL=redis://127.0.0.1:$REDIS_PORT
	mkdir -p "$BATS_TEST_TMPDIR/aof"
	redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly yes \
		--appendfsync always --dir "$BATS_TEST_TMPDIR/aof" \
		>>"$BATS_TEST_TMPDIR/redis.log" 2>&1 3>&- &
	REDIS_PID=$!
	STARTED_PIDS+=("$REDIS_PID")
	wait_until 5 redis-cli -p "$REDIS_PORT" ping
}

kill_redis() {
	kill -KILL "$REDIS_PID"
	wait "$REDIS_PID" 2>/dev/null || true
}

# two_nodes: chatd A and B on the same Redis, both healthy.
two_nodes() {
	start_chatd --redis "$REDIS_URL"
	A_URL=$CHATD_URL A_PORT=$CHATD_PORT A_LOG=$CHATD_LOG
	start_chatd --redis "$REDIS_URL"
	B_URL=$CHATD_URL B_PORT=$CHATD_PORT B_LOG=$CHATD_LOG
	wait_healthy "$A_URL"
	wait_healthy "$B_URL"
}

# record PORT CHAN: a live subscriber on that node, in the background (BG_PID, BG_OUT), that
# prints every frame until the message "end"; returns once it is connected.
record() {
	local ready=$BATS_TEST_TMPDIR/ready.$RANDOM
	bg "$PY" "$TESTS_DIR/wsrecord.py" "ws://127.0.0.1:$1/ws?chan=$2" --until '"end"' \
		--ready "$ready" --timeout 40
	wait_until 5 test -e "$ready"
}

# record_both CHAN: a recorder on each of the two nodes (SUB_PIDS, a_out, b_out); returns
# once both nodes are subscribed to CHAN in Redis.
record_both() {
	record "$A_PORT" "$1"
	SUB_PIDS=("$BG_PID") a_out=$BG_OUT
	record "$B_PORT" "$1"
	SUB_PIDS+=("$BG_PID") b_out=$BG_OUT
	wait_until 5 subscribed "$1" 2
}

# subscribed CHAN N: N nodes are subscribed to CHAN in Redis.
subscribed() {
	[ "$(redis-cli -p "$REDIS_PORT" pubsub numsub "$1" | tail -n 1)" = "$2" ]
}

# The publisher: publoop.py into CHAN on URL, stopped by touching $STOP.
start_publisher() {
	PUBLOG=$BATS_TEST_TMPDIR/publog
	STOP=$BATS_TEST_TMPDIR/stop
	bg "$PY" "$TESTS_DIR/publoop.py" "$1" "$2" "$PUBLOG" --stop "$STOP"
	PUB_PID=$BG_PID PUB_URL=$1
	wait_until 5 test -e "$PUBLOG"
}

stop_publisher() {
	touch "$STOP"
	finished "$PUB_PID"
	[ "$status" -eq 0 ]
}

# answered STATUS N: the publisher got at least N answers with STATUS ("!200": not 200).
answered() {
	local n
	case $1 in
	!*) n=$(awk -v s="${1#!}" '$2 != s' "$PUBLOG" | wc -l) ;;
	*) n=$(awk -v s="$1" '$2 == s' "$PUBLOG" | wc -l) ;;
	esac
	[ "$n" -ge "$2" ]
}

acked() {
	awk '$2 == 200' "$PUBLOG" | wc -l
}

# finish_and_check CHAN OUT... [--min-503 N]: publish the marker, wait for the subscribers
# (all of the background processes still running), and compare what they got with the
# publisher's log (see check-delivery.py for exactly what is asserted).
finish_and_check() {
	local chan=$1 pid
	shift
	run curl -s -X POST -d "{\"chan\":\"$chan\",\"msg\":\"end\"}" "$PUB_URL/"
	[[ "$output" == '{"ok":true'* ]]
	for pid in "${SUB_PIDS[@]}"; do
		finished "$pid"
	done
	run "$PY" "$TESTS_DIR/check-delivery.py" "$chan" "$PUBLOG" "$@"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "kill -9 Redis mid-stream, restart it on its AOF: every acknowledged message reaches live subscribers on both nodes once, in order" {
	aof_redis
	two_nodes
	record_both flow
	start_publisher "$A_URL" flow

	wait_until 10 answered 200 200
	kill_redis
	wait_until 10 answered '!200' 20 # the stream goes on, answered 503, while Redis is down
	aof_redis
	wait_healthy "$A_URL"
	wait_healthy "$B_URL"
	local n
	n=$(acked)
	wait_until 10 answered 200 $((n + 200))
	stop_publisher

	# Asserted: every answer was 200 or a 503 with Retry-After and a JSON error, at least
	# one 503; each subscriber got seq 1, 2, 3... of one epoch (no hole, no repeat), every
	# 200 message exactly once at its seq, nothing refused ("not accepted"), and each
	# "not acknowledged" message (reply lost in the kill) at most once.
	finish_and_check flow "$a_out" "$b_out" --min-503 1
}

# pubsub_ids: the ids of Redis's pub/sub clients (every node's subscriber connection is
# one: it is always subscribed to the node's heartbeat channel).
pubsub_ids() {
	redis-cli -p "$REDIS_PORT" client list type pubsub | sed -n 's/^id=\([0-9]*\) .*/\1/p'
}

npubsub() {
	[ "$(pubsub_ids | wc -l)" -eq "$1" ]
}

@test "only the subscriber connections drop (CLIENT KILL): live subscribers still get every acknowledged message once, in order" {
	aof_redis
	two_nodes
	record_both sublost
	# The publisher's node C has no subscriber of its own. Rounds 1 and 2 cut only the
	# subscriber connections of A and B: C keeps acknowledging while they are not
	# subscribed, and what it acknowledges then reaches their subscribers only if A and B
	# fill the gap from the history once resubscribed. Round 3 is CLIENT KILL TYPE pubsub:
	# every node's subscriber connection at once, C's too.
	local before c_sub
	before=$(pubsub_ids)
	start_chatd --redis "$REDIS_URL"
	wait_healthy "$CHATD_URL"
	wait_until 5 npubsub 3
	c_sub=$(pubsub_ids | grep -vxF "$before")
	[ -n "$c_sub" ]
	start_publisher "$CHATD_URL" sublost

	local round n id killed
	for round in 1 2 3; do
		n=$(acked)
		wait_until 10 answered 200 $((n + 100))
		if [ "$round" -lt 3 ]; then
			killed=0
			for id in $(pubsub_ids | grep -vxF "$c_sub"); do
				run redis-cli -p "$REDIS_PORT" client kill id "$id"
				[ "$output" = 1 ]
				killed=$((killed + 1))
			done
			[ "$killed" -eq 2 ] # A's and B's
		else
			run redis-cli -p "$REDIS_PORT" client kill type pubsub
			[ "$output" = 3 ] # A's, B's and C's
		fi
		wait_until 10 subscribed sublost 2
	done
	n=$(acked)
	wait_until 10 answered 200 $((n + 100))
	stop_publisher
	grep -q 'ERROR broker: redis subscriber connection to .* is down (connection lost' "$A_LOG"
	grep -q 'ERROR broker: redis subscriber connection to .* is down (connection lost' "$B_LOG"

	# The same assertions as above (see check-delivery.py), without requiring a 503.
	finish_and_check sublost "$a_out" "$b_out"
}

@test "Redis down: /healthz 503 and POST 503 with Retry-After; back up: 200, same epoch" {
	aof_redis
	start_chatd --redis "$REDIS_URL"
	wait_healthy "$CHATD_URL"
	run post '{"chan":"hc","msg":"before"}'
	[[ "$output" =~ ^200\ \{\"ok\":true,\"chan\":\"hc\",\"seq\":1,\"epoch\":\"([0-9a-z]+)\" ]]
	local epoch=${BASH_REMATCH[1]}

	kill_redis
	wait_until 5 sh -c "curl -s -o /dev/null -w '%{http_code}' $CHATD_URL/healthz | grep -qx 503"
	run curl -s -i "$CHATD_URL/healthz"
	[[ "$output" == 'HTTP/1.1 503'* ]]
	[[ "$output" == *$'retry-after: 1\r'* ]]
	[[ "$output" == *'{"ok":false,"broker":"redis 127.0.0.1:'"$REDIS_PORT"'","error":"redis '*' is down ('* ]]
	run curl -s -i -X POST -d '{"chan":"hc","msg":"during"}' "$CHATD_URL/"
	[[ "$output" == 'HTTP/1.1 503'* ]]
	[[ "$output" == *$'retry-after: 1\r'* ]]
	[[ "$output" == *'{"ok":false,"error":"message not accepted, try again: redis '*' is down ('* ]]

	aof_redis
	wait_healthy "$CHATD_URL"
	run curl -s -i "$CHATD_URL/healthz"
	[[ "$output" == 'HTTP/1.1 200'* ]]
	[[ "$output" == *'{"ok":true,"broker":"redis 127.0.0.1:'"$REDIS_PORT"'"'* ]]
	run post '{"chan":"hc","msg":"after"}'
	[[ "$output" == '200 {"ok":true,"chan":"hc","seq":2,"epoch":"'"$epoch"'"'* ]]
	# the refused message was not stored either
	run curl -s "$CHATD_URL/history/hc"
	[[ "$output" == *'"last":2,"messages":[{"chan":"hc","seq":1,'*'"msg":"before"},{"chan":"hc","seq":2,'*'"msg":"after"}]}' ]]
}

@test "a resume from before FLUSHALL gets a gap frame naming the new epoch, then the new epoch's messages" {
	aof_redis
	start_chatd --redis "$REDIS_URL"
	wait_healthy "$CHATD_URL"
	local live_ready=$BATS_TEST_TMPDIR/live.ready i old new
	bg ws "ws://127.0.0.1:$CHATD_PORT/ws/fl" --count 5 --timeout 10 --ready "$live_ready"
	local live_pid=$BG_PID live_out=$BG_OUT
	wait_until 5 test -e "$live_ready"
	wait_until 5 subscribed fl 1
	for i in 1 2 3; do
		run post "{\"chan\":\"fl\",\"msg\":\"old $i\"}"
		[[ "$output" =~ ^200\ \{\"ok\":true,\"chan\":\"fl\",\"seq\":$i,\"epoch\":\"([0-9a-z]+)\" ]]
		old=${BASH_REMATCH[1]}
	done

	run redis-cli -p "$REDIS_PORT" flushall
	[ "$output" = OK ]
	for i in 1 2; do
		run post "{\"chan\":\"fl\",\"msg\":\"new $i\"}"
		[[ "$output" =~ ^200\ \{\"ok\":true,\"chan\":\"fl\",\"seq\":$i,\"epoch\":\"([0-9a-z]+)\" ]]
		new=${BASH_REMATCH[1]}
	done
	[ "$new" != "$old" ]

	run ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=fl&since=fl:3:$old" --count 3
	[ "${lines[0]}" = '{"type":"gap","chan":"fl","asked":{"since":3,"epoch":"'"$old"'"},"available":{"first":1,"last":2,"epoch":"'"$new"'"}}' ]
	[[ "${lines[1]}" == '{"chan":"fl","seq":1,"epoch":"'"$new"'",'*'"msg":"new 1"}' ]]
	[[ "${lines[2]}" == '{"chan":"fl","seq":2,"epoch":"'"$new"'",'*'"msg":"new 2"}' ]]
	[ "${lines[3]}" = 'CLOSE 1000 ' ]

	# A subscriber that was live across the flush got both epochs, the new one after the
	# old (seq 1 of a new epoch is not mistaken for a duplicate).
	finished "$live_pid"
	run cat "$live_out"
	[ "${#lines[@]}" -eq 6 ]
	for i in 1 2 3; do
		[[ "${lines[i - 1]}" == '{"chan":"fl","seq":'$i',"epoch":"'"$old"'",'*'"msg":"old '$i'"}' ]]
	done
	for i in 1 2; do
		[[ "${lines[i + 2]}" == '{"chan":"fl","seq":'$i',"epoch":"'"$new"'",'*'"msg":"new '$i'"}' ]]
	done
	[ "${lines[5]}" = 'CLOSE 1000 ' ]
}

@test "a subscriber that had received nothing yet when its node lost Redis gets what was published meanwhile, and nothing from before it came" {
	aof_redis
	# Node A logs in as a Redis user of its own, so that it alone can be kept out a while;
	# node C publishes. The default user gets a password too, or a refused AUTH would
	# leave A's connections logged in as the default user.
	run redis-cli -p "$REDIS_PORT" acl setuser default on '>pw-d'
	[ "$output" = OK ]
	export REDISCLI_AUTH=pw-d # for every redis-cli from here on
	run redis-cli -p "$REDIS_PORT" acl setuser node-a on '>pw-a' '~*' '&*' '+@all'
	[ "$output" = OK ]
	start_chatd --redis "redis://node-a:pw-a@127.0.0.1:$REDIS_PORT"
	A_URL=$CHATD_URL A_PORT=$CHATD_PORT A_LOG=$CHATD_LOG
	start_chatd --redis "redis://:pw-d@127.0.0.1:$REDIS_PORT"
	wait_healthy "$A_URL"
	wait_healthy "$CHATD_URL"
	local i
	for i in 1 2; do # stored before the subscriber came: not for it
		run post "{\"chan\":\"quiet\",\"msg\":\"before $i\"}"
		[[ "$output" == "200 {\"ok\":true,\"chan\":\"quiet\",\"seq\":$i,"* ]]
	done
	record "$A_PORT" quiet
	local sub_pid=$BG_PID out=$BG_OUT
	wait_until 5 subscribed quiet 1

	run redis-cli -p "$REDIS_PORT" acl setuser node-a off
	[ "$output" = OK ]
	run redis-cli -p "$REDIS_PORT" client kill user node-a
	[ "$output" = 2 ] # A's command and subscriber connections, which cannot come back yet
	wait_until 5 grep -q 'is down (refused: WRONGPASS' "$A_LOG"
	for i in 1 2 3 4 5; do
		run post "{\"chan\":\"quiet\",\"msg\":\"meanwhile $i\"}"
		[[ "$output" == "200 {\"ok\":true,\"chan\":\"quiet\",\"seq\":$((i + 2)),"* ]]
	done
	run redis-cli -p "$REDIS_PORT" acl setuser node-a on
	wait_healthy "$A_URL"
	wait_until 10 subscribed quiet 1
	run post '{"chan":"quiet","msg":"end"}'
	[[ "$output" == '200 {"ok":true,"chan":"quiet","seq":8,'* ]]

	finished "$sub_pid"
	run cat "$out"
	echo "$output"
	for i in 1 2 3 4 5; do
		[[ "${lines[i - 1]}" == "{\"chan\":\"quiet\",\"seq\":$((i + 2)),"*"\"msg\":\"meanwhile $i\"}" ]]
	done
	[[ "${lines[5]}" == '{"chan":"quiet","seq":8,'*'"msg":"end"}' ]]
	[ "${lines[6]}" = END ]
	[ "${#lines[@]}" -eq 7 ]
}
