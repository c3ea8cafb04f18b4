#!/usr/bin/env bats
# Redis Sentinel: chatd finds the master through the sentinels, follows a failover, and
# with --redis-wait 1 loses no acknowledged message when the master is killed.

load helpers
load sentinel

@test "chatd finds the master through the sentinels and serves" {
	sentinel_start
	start_chatd --sentinel "$SENTINEL_ADDRS" --sentinel-master "$SENTINEL_NAME"
	wait_healthy "$CHATD_URL"
	run curl -s "$CHATD_URL/healthz"
	[[ "$output" == *"\"broker\":\"redis 127.0.0.1:$MASTER_PORT (master $SENTINEL_NAME via sentinel)\""* ]]
	run post '{"chan":"s","msg":"hello"}'
	[[ "$output" == '200 {"ok":true,"chan":"s","seq":1,'* ]]
	run redis-cli -p "$MASTER_PORT" xlen 'chatd:{s}:h'
	[ "$output" = 1 ]
}

@test "a master killed during steady publishing: every acknowledged message is kept and delivered once, in order" {
	# With --redis-wait 1 a publish is acknowledged only once the replica has it, so the
	# promoted replica holds every acknowledged message. After the failover the new master
	# has no replica until the old one comes back as one: publishes are refused (503) in
	# between, and the publisher retries them under the same keys.
	sentinel_start
	start_chatd --sentinel "$SENTINEL_ADDRS" --sentinel-master "$SENTINEL_NAME" --redis-wait 1
	wait_healthy "$CHATD_URL"
	local n=60 ready=$BATS_TEST_TMPDIR/ready
	bg ws "ws://127.0.0.1:$CHATD_PORT/ws/f" --count "$n" --timeout 60 --ready "$ready"
	local sub=$BG_PID sub_out=$BG_OUT
	wait_until 5 test -e "$ready"
	# a publisher that retries under one key per message until it is acknowledged
	cat >"$BATS_TEST_TMPDIR/pub.sh" <<-EOF
	for i in \$(seq $n); do
		chat-post -u "$CHATD_URL" -c f --retry 100 --key "m\$i" -j "\$i" || echo "gave up on \$i"
		sleep 0.05
	done
	echo done
	EOF
	bg sh "$BATS_TEST_TMPDIR/pub.sh"
	local pub=$BG_PID pub_out=$BG_OUT
	wait_until 10 sh -c "curl -s '$CHATD_URL/history/f' | grep -q '\"seq\":10,'"
	sentinel_failover
	sentinel_restart_old_master
	wait_until 60 grep -q done "$pub_out"
	[ -z "$(grep 'gave up' "$pub_out")" ]
	finished "$sub"
	# the live subscriber: 1..n, each once, in order
	run "$PY" -c 'import json,sys; print(" ".join(str(json.loads(l)["msg"]) for l in open(sys.argv[1]) if l.startswith("{\"chan\"")))' "$sub_out"
	[ "$output" = "$(seq -s ' ' "$n")" ]
	# the history on the new master: the same
	run sh -c "curl -s '$CHATD_URL/history/f?limit=1000' | $PY -c 'import json,sys; print(\" \".join(str(m[\"msg\"]) for m in json.load(sys.stdin)[\"messages\"]))'"
	[ "$output" = "$(seq -s ' ' "$n")" ]
	run curl -s "$CHATD_URL/healthz"
	[[ "$output" == *"redis 127.0.0.1:$MASTER_PORT (master"* ]]
	grep -q "redis master $SENTINEL_NAME is at 127.0.0.1:$MASTER_PORT" "$CHATD_LOG"
}

@test "sentinel options: both or neither, and a bad address list is a usage error" {
	run chatd --sentinel 127.0.0.1:26379
	[ "$status" -eq 64 ]
	[[ "$output" == *"--sentinel and --sentinel-master go together"* ]]
	run chatd --sentinel '127.0.0.1:99999' --sentinel-master m
	[ "$status" -eq 64 ]
	[[ "$output" == *"--sentinel: "* ]]
}

@test "no sentinel answers: /healthz says why, and chatd connects once one does" {
	local port
	port=$(free_port)
	start_chatd --sentinel "127.0.0.1:$port" --sentinel-master nowhere
	wait_until 10 sh -c "curl -s $CHATD_URL/healthz | grep -q 'no master from the sentinels'"
	run post '{"chan":"x","msg":1}'
	[[ "$output" == "503 "* ]]
}
