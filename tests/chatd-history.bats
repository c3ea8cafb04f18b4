#!/usr/bin/env bats
# Positions and history: every message gets the next seq of its channel and the channel's
# epoch; GET /history/NAME returns what is stored, bounded by --history and --history-ttl.

load helpers

# field JSON NAME: one top-level member of a JSON document, as JSON
field() {
	$PY -c 'import json,sys; print(json.dumps(json.loads(sys.argv[1])[sys.argv[2]]))' "$1" "$2"
}

# seqs JSON: the seq of each message in a /history answer, space-separated
seqs() {
	$PY -c 'import json,sys; print(" ".join(str(m["seq"]) for m in json.loads(sys.argv[1])["messages"]))' "$1"
}

@test "each message gets the next seq of its channel; answer and envelope agree" {
	start_chatd
	local ready=$BATS_TEST_TMPDIR/ready
	bg ws "ws://127.0.0.1:$CHATD_PORT/ws/n" --count 3 --ready "$ready"
	wait_until 5 test -e "$ready"
	run post '{"chan":"n","msg":"a"}'
	[[ "$output" == '200 {"ok":true,"chan":"n","seq":1,"epoch":"'* ]]
	local epoch
	epoch=$(field "${output#200 }" epoch)
	run post '{"chan":"other","msg":"x"}'
	[[ "$output" == '200 {"ok":true,"chan":"other","seq":1,'* ]]
	post '{"chan":"n","msg":"b"}'
	run post '{"chan":"n","msg":"c"}'
	[[ "$output" == '200 {"ok":true,"chan":"n","seq":3,"epoch":'"$epoch"* ]]
	wait "$BG_PID"
	run $PY -c 'import json,sys; print(" ".join("%d:%s:%s" % (m["seq"], m["epoch"], m["msg"]) for m in map(json.loads, open(sys.argv[1])) ))' <(grep '^{' "$BG_OUT")
	[ "$output" = "1:${epoch//\"/}:a 2:${epoch//\"/}:b 3:${epoch//\"/}:c" ]
}

@test "GET /history returns the newest --history messages; since and limit page through them" {
	start_chatd --history 5
	for i in $(seq 8); do post "{\"chan\":\"h\",\"msg\":$i}" >/dev/null; done
	run curl -s "$CHATD_URL/history/h"
	[[ "$output" == '{"ok":true,"chan":"h","epoch":"'*'","first":4,"last":8,"messages":[{"chan":"h","seq":4,'* ]]
	[ "$(seqs "$output")" = "4 5 6 7 8" ]
	run curl -s "$CHATD_URL/history/h?since=5&limit=2"
	[ "$(seqs "$output")" = "6 7" ]
	run curl -s "$CHATD_URL/history/h?since=8"
	[ "$(seqs "$output")" = "" ]
	# asking from before what is stored: the answer's first says what was lost
	run curl -s "$CHATD_URL/history/h?since=1"
	[ "$(field "$output" first)" = 4 ]
	[ "$(seqs "$output")" = "4 5 6 7 8" ]
	run curl -s "$CHATD_URL/history/never"
	[ "$output" = '{"ok":true,"chan":"never","epoch":"","first":1,"last":0,"messages":[]}' ]
}

@test "--history 0 keeps nothing but still numbers messages" {
	start_chatd --history 0
	post '{"chan":"z","msg":1}' >/dev/null
	run post '{"chan":"z","msg":2}'
	[[ "$output" == '200 {"ok":true,"chan":"z","seq":2,'* ]]
	run curl -s "$CHATD_URL/history/z"
	[ "$(field "$output" first)" = 3 ]
	[ "$(field "$output" last)" = 2 ]
	[ "$(seqs "$output")" = "" ]
}

@test "a restarted memory broker starts a new epoch" {
	start_chatd
	run post '{"chan":"e","msg":1}'
	local first_epoch
	first_epoch=$(field "${output#200 }" epoch)
	stop_all
	start_chatd
	run post '{"chan":"e","msg":1}'
	[[ "$output" == '200 {"ok":true,"chan":"e","seq":1,'* ]]
	[ "$(field "${output#200 }" epoch)" != "$first_epoch" ]
}

@test "bad history requests: 400 and 405" {
	start_chatd
	run curl -s -w ' %{http_code}' "$CHATD_URL/history/a%20b"
	[[ "$output" == '{"ok":false,"error":"invalid channel name in path: '*' 400' ]]
	run curl -s -w ' %{http_code}' "$CHATD_URL/history/a?since=-1"
	[ "$output" = '{"ok":false,"error":"since must be a sequence number (0 or more) and limit a count from 1 to 1000"} 400' ]
	run curl -s -o /dev/null -w '%{http_code}' "$CHATD_URL/history/a?limit=0"
	[ "$output" = 400 ]
	run curl -s -o /dev/null -w '%{http_code}' "$CHATD_URL/history/a?limit=1001"
	[ "$output" = 400 ]
	run curl -s -o /dev/null -w '%{http_code}' -X POST -d x "$CHATD_URL/history/a"
	[ "$output" = 405 ]
}

@test "Redis: nodes share one numbering and one history; a flush starts a new epoch" {
	start_redis
	start_chatd --redis "$REDIS_URL" --history 100
	local a=$CHATD_URL
	start_chatd --redis "$REDIS_URL" --history 100
	local b=$CHATD_URL
	wait_healthy "$a"
	wait_healthy "$b"
	for i in $(seq 10); do
		curl -s -X POST -d "{\"chan\":\"shared\",\"msg\":$i}" "$a/" >/dev/null
		curl -s -X POST -d "{\"chan\":\"shared\",\"msg\":$i}" "$b/" >/dev/null
	done
	run curl -s "$a/history/shared"
	[ "$(seqs "$output")" = "$(seq -s ' ' 20)" ]
	local epoch
	epoch=$(field "$output" epoch)
	run curl -s "$b/history/shared?since=15"
	[ "$(seqs "$output")" = "16 17 18 19 20" ]
	[ "$(field "$output" epoch)" = "$epoch" ]
	redis-cli -p "$REDIS_PORT" flushall >/dev/null
	run curl -s -X POST -d '{"chan":"shared","msg":"after"}' "$a/"
	[[ "$output" == '{"ok":true,"chan":"shared","seq":1,'* ]]
	[ "$(field "$output" epoch)" != "$epoch" ]
}

@test "Redis: --history bounds what reads return exactly and the stream roughly; --history-ttl drops old messages" {
	start_redis
	start_chatd --redis "$REDIS_URL" --history 3 --history-ttl 1
	wait_healthy "$CHATD_URL"
	for i in $(seq 6); do post "{\"chan\":\"t\",\"msg\":$i}" >/dev/null; done
	run curl -s "$CHATD_URL/history/t"
	[ "$(seqs "$output")" = "4 5 6" ]
	[ "$(field "$output" first)" = 4 ]
	run curl -s "$CHATD_URL/history/t?since=1"
	[ "$(seqs "$output")" = "4 5 6" ]
	seq 300 | "$BUILD/chat-post" -u "$CHATD_URL" -c t >/dev/null
	run curl -s "$CHATD_URL/history/t"
	[ "$(seqs "$output")" = "304 305 306" ]
	# trimmed a stream node at a time (MAXLEN ~): never more than 100 past the count
	local n
	n=$(redis-cli -p "$REDIS_PORT" xlen 'chatd:{t}:h')
	[ "$n" -ge 3 ] && [ "$n" -le 103 ]
	# the history lives --history-ttl after the last message, the numbering 30 days
	n=$(redis-cli -p "$REDIS_PORT" pttl 'chatd:{t}:h')
	[ "$n" -gt 0 ] && [ "$n" -le 1000 ]
	n=$(redis-cli -p "$REDIS_PORT" pttl 'chatd:{t}:m')
	[ "$n" -gt 2591000000 ] && [ "$n" -le 2592000000 ]
	sleep 1.2 # let the stored messages pass the 1 s age limit
	run curl -s "$CHATD_URL/history/t"
	[ "$(seqs "$output")" = "" ]
	[ "$(field "$output" last)" = 306 ]
}

@test "memory: --history-ttl drops old messages too" {
	start_chatd --history 10 --history-ttl 1
	post '{"chan":"t","msg":1}' >/dev/null
	sleep 1.2 # past the 1 s age limit
	post '{"chan":"t","msg":2}' >/dev/null
	run curl -s "$CHATD_URL/history/t"
	[ "$(seqs "$output")" = "2" ]
	[ "$(field "$output" first)" = 2 ]
}

@test "Redis: a since= past every position is an empty answer, not a Redis error" {
	start_redis
	start_chatd --redis "$REDIS_URL"
	wait_healthy "$CHATD_URL"
	post '{"chan":"far","msg":1}' >/dev/null
	run curl -s -w ' %{http_code}' "$CHATD_URL/history/far?since=100000000000000"
	[[ "$output" == *'"messages":[]} 200' ]]
	run curl -s -w ' %{http_code}' "$CHATD_URL/history/far?since=9223372036854775807"
	[[ "$output" == *'"messages":[]} 200' ]]
}

@test "Redis: a stream changed behind chatd's back refuses that message alone, and the numbering heals" {
	start_redis
	start_chatd --redis "$REDIS_URL"
	wait_healthy "$CHATD_URL"
	post '{"chan":"bent","msg":1}' >/dev/null
	redis-cli -p "$REDIS_PORT" xadd 'chatd:{bent}:h' 3-0 e junk t 1 >/dev/null
	run post '{"chan":"bent","msg":2}'
	[[ "$output" == "503 "*"redis refused the message: ERR The ID specified in XADD"* ]]
	run post '{"chan":"bent","msg":3}'
	[[ "$output" == "503 "* ]]
	run post '{"chan":"bent","msg":4}'
	[[ "$output" == '200 {"ok":true,"chan":"bent","seq":4,'* ]]
}
