#!/usr/bin/env bats
# Observability: GET /metrics (Prometheus text), --log-format json, and the status line
# on SIGUSR1.

load helpers

# metric NAME: its value in /metrics (NAME may include labels)
metric() {
	curl -s "$CHATD_URL/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}

@test "/metrics counts connections, publishes, deliveries, refusals and latency, without per-channel labels" {
	local secret=$BATS_TEST_TMPDIR/secret
	head -c 32 /dev/urandom | base64 >"$secret"
	start_chatd --jwt-secret-file "$secret"
	local tok
	tok=$("$PY" "$TESTS_DIR/jwt.py" "$secret" '{"publish":["*"],"subscribe":["*"]}')
	local ready=$BATS_TEST_TMPDIR/ready
	bg ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=a&chan=b&token=$tok" --count 3 --timeout 5 --ready "$ready"
	wait_until 5 test -e "$ready"
	[ "$(metric 'chatd_connections{kind="websocket"}')" = 1 ]
	[ "$(metric chatd_channels)" = 2 ]
	for c in a b a; do
		curl -s -H "Authorization: Bearer $tok" -d "{\"chan\":\"$c\",\"msg\":\"0123456789\"}" "$CHATD_URL/" >/dev/null
	done
	curl -s -d '{"chan":"a","msg":1}' "$CHATD_URL/" >/dev/null # no token: 401
	finished "$BG_PID"
	[ "$(metric chatd_messages_published_total)" = 3 ]
	[ "$(metric chatd_messages_delivered_total)" = 3 ]
	[ "$(metric 'chatd_auth_failures_total{status="401"}')" = 1 ]
	[ "$(metric chatd_publish_latency_seconds_count)" = 3 ]
	[ "$(metric 'chatd_publish_latency_seconds_bucket{le="+Inf"}')" = 3 ]
	[ "$(metric chatd_broker_up)" = 1 ]
	local bytes
	bytes=$(metric chatd_bytes_out_total)
	[ "$bytes" -gt 200 ]
	run curl -s -i "$CHATD_URL/metrics"
	grep -qi '^content-type: text/plain; version=0.0.4' <<<"$output"
	grep -q '^# TYPE chatd_publish_latency_seconds histogram' <<<"$output"
	# bounded cardinality: no channel name anywhere
	[ -z "$(grep -E 'chan="|"a"|"b"' <<<"$output")" ]
}

@test "/metrics: broker down and reconnects, slow subscribers, gap notices" {
	start_redis --appendonly yes
	local redis_pid=$REDIS_PID redis_port=$REDIS_PORT
	start_chatd -r "$REDIS_URL" --history 2
	wait_healthy "$CHATD_URL"
	for i in 1 2 3 4; do post '{"chan":"g","msg":1}' >/dev/null; done
	ws "ws://127.0.0.1:$CHATD_PORT/ws/g?since=g:1" --count 2 --timeout 3 >/dev/null || true
	[ "$(metric chatd_gap_notices_total)" = 1 ]
	[ "$(metric chatd_history_replays_total)" -ge 1 ]
	kill -9 "$redis_pid"
	wait_until 10 sh -c "curl -s $CHATD_URL/metrics | grep -qx 'chatd_broker_up 0'"
	redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --dir "$BATS_TEST_TMPDIR/redis.$redis_port" \
		--appendonly yes >/dev/null 2>&1 3>&- &
	STARTED_PIDS+=("$!")
	wait_healthy "$CHATD_URL"
	[ "$(metric chatd_broker_reconnects_total)" -ge 1 ]
}

@test "--log-format json: one JSON object per line; SIGUSR1 logs a status line" {
	start_chatd --log-format json
	post '{"chan":"s","msg":1}' >/dev/null
	kill -USR1 "$CHATD_PID"
	wait_until 5 grep -q '"component":"status"' "$CHATD_LOG"
	run "$PY" -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]; print("ok")' "$CHATD_LOG"
	[ "$output" = ok ]
	grep -q '"level":"info","component":"status","msg":"connections=[0-9]* websockets=0 sse=0 channels=0 in=[0-9]*/s out=0/s broker=up"' "$CHATD_LOG"
	run chatd --log-format xml
	[ "$status" -eq 64 ]
}
