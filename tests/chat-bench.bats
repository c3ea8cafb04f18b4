#!/usr/bin/env bats
# chat-bench: small runs against chatd (memory and Redis brokers) deliver everything and say
# so, in the table and in --json; a missing server and bad arguments fail clearly.
# No timing assertions: the numbers depend on the machine.

load helpers
bats_require_minimum_version 1.5.0

# json_check EXPR: EXPR over the JSON object d on stdin (from $output) must hold.
json_check() {
	printf '%s\n' "$output" | $PY -c '
import json, sys
d = json.load(sys.stdin)
ok = eval(sys.argv[1])
if not ok:
    print("json check failed:", sys.argv[1], json.dumps(d), file=sys.stderr)
sys.exit(0 if ok else 1)' "$1"
}

# table_value NAME: the number after NAME in the table in $output.
table_value() {
	printf '%s\n' "$output" | awk -v k="$1" 'substr($0, 1, 14) == sprintf("%-13s ", k) { print $NF; exit }'
}

@test "chat-bench --help and --version" {
	run chat-bench --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"usage: chat-bench"* ]]
	[[ "$output" == *"--subscribers"* ]]
	run chat-bench --version
	[ "$status" -eq 0 ]
	[ "$output" = "chat-bench (chatd) 0.1.0" ]
}

@test "chat-bench: a small run against chatd (memory) loses nothing" {
	start_chatd
	run chat-bench -u "$CHATD_URL" -s 5 -n 200 -p 4
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(table_value sent)" = 200 ]
	[ "$(table_value accepted)" = 200 ]
	[ "$(table_value refused)" = 0 ]
	[ "$(table_value expected)" = 1000 ]
	[ "$(table_value delivered)" = 1000 ]
	[ "$(table_value lost)" = 0 ]
	[ "$(table_value duplicated)" = 0 ]
	[ "$(table_value out-of-order)" = 0 ]
	[[ "$output" == *"latency p99"* ]]
}

@test "chat-bench --json: one object, delivered == expected (memory)" {
	start_chatd
	run --separate-stderr chat-bench -u "$CHATD_URL" -c json.test -s 5 -n 200 -p 4 --size 100 --json
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1 ]
	json_check 'd["delivered"] == d["expected"] == 1000'
	json_check 'd["sent"] == d["accepted"] == 200 and d["refused"] == 0 and d["failed"] == 0'
	json_check 'd["lost"] == 0 and d["duplicated"] == 0 and d["out_of_order"] == 0'
	json_check 'd["ok"] is True and d["chan"] == "json.test" and d["size"] == 100'
	json_check 'all(k in d["latency_ms"] for k in ("p50", "p90", "p99", "max"))'
	json_check 'd["published_per_s"] > 0 and d["delivered_per_s"] > 0'
}

@test "chat-bench: a small run against chatd with Redis loses nothing" {
	start_redis
	start_chatd --redis "$REDIS_URL"
	wait_healthy "$CHATD_URL"
	run chat-bench -u "$CHATD_URL" -s 5 -n 200 -p 4
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(table_value delivered)" = 1000 ]
	[ "$(table_value lost)" = 0 ]
	[ "$(table_value duplicated)" = 0 ]
	run --separate-stderr chat-bench -u "$CHATD_URL" -s 5 -n 200 -p 4 --json
	echo "$output"
	[ "$status" -eq 0 ]
	json_check 'd["delivered"] == d["expected"] == 1000 and d["lost"] == 0 and d["duplicated"] == 0'
}

@test "chat-bench: two runs on one channel keep their messages apart" {
	start_chatd
	bg chat-bench -u "$CHATD_URL" -c shared -s 3 -n 300 -p 2 --json
	run --separate-stderr chat-bench -u "$CHATD_URL" -c shared -s 3 -n 300 -p 2 --json
	echo "$output"
	[ "$status" -eq 0 ]
	json_check 'd["delivered"] == d["expected"] == 900 and d["lost"] == 0 and d["duplicated"] == 0'
	wait "$BG_PID"
	output=$(cat "$BG_OUT")
	json_check 'd["delivered"] == d["expected"] == 900 and d["lost"] == 0 and d["duplicated"] == 0'
}

@test "chat-bench: no server at the URL fails clearly" {
	port=$(free_port)
	run --separate-stderr chat-bench -u "http://127.0.0.1:$port" -s 2 -n 10 --timeout 3
	echo "$stderr"
	[ "$status" -eq 69 ]
	[ -z "$output" ]
	[[ "$stderr" == "chat-bench: 2 of 2 subscribers could not connect to ws://127.0.0.1:$port/ws?chan=bench: "* ]]
}

@test "chat-bench: no server and no subscribers: every post failed, exit 1" {
	port=$(free_port)
	run --separate-stderr chat-bench -u "http://127.0.0.1:$port" -s 0 -n 10 --timeout 3
	echo "$stderr"
	[ "$status" -eq 1 ]
	[ "$(table_value failed)" = 10 ]
	[[ "$stderr" == *"chat-bench: FAILED: 0 of 10 posts refused, 10 failed (no answer); first: "* ]]
}

@test "chat-bench: a URL chatd does not serve is refused with the server's reason" {
	start_chatd
	run --separate-stderr chat-bench -u "$CHATD_URL/nowhere" -s 2 -n 10 --timeout 3
	echo "$stderr"
	[ "$status" -eq 69 ]
	[[ "$stderr" == "chat-bench: "* ]]
	[[ "$stderr" == *"/nowhere"* ]]
	# and chatd still serves a correct run
	run chat-bench -u "$CHATD_URL" -s 2 -n 10
	[ "$status" -eq 0 ]
}

@test "chat-bench: bad arguments say what is wrong" {
	run --separate-stderr chat-bench -c 'no spaces'
	[ "$status" -eq 64 ]
	[[ "$stderr" == 'chat-bench: invalid channel name "no spaces": '* ]]
	run --separate-stderr chat-bench -s many
	[ "$status" -eq 64 ]
	[ "$stderr" = 'chat-bench: --subscribers wants a number from 0 to 1000000, not "many"' ]
	run --separate-stderr chat-bench -p 0
	[ "$status" -eq 64 ]
	[ "$stderr" = 'chat-bench: --publishers wants a number from 1 to 4096, not "0"' ]
	run --separate-stderr chat-bench --size 10Q
	[ "$status" -eq 64 ]
	[ "$stderr" = 'chat-bench: --size wants a length up to 64M, like 64 or 4K, not "10Q"' ]
	run --separate-stderr chat-bench --timeout -1
	[ "$status" -eq 64 ]
	[[ "$stderr" == 'chat-bench: --timeout wants seconds'* ]]
	run --separate-stderr chat-bench -u ftp://127.0.0.1/
	[ "$status" -eq 64 ]
	[[ "$stderr" == 'chat-bench: unsupported URL scheme "ftp"'* ]]
}
