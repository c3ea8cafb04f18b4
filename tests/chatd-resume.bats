#!/usr/bin/env bats
# Resume on the WebSocket: since=CHAN:SEQ[:EPOCH] and last=N replay what is stored, then
# switch to live with no gap, no duplicate and no reordering; what cannot be replayed is
# announced by a gap frame first, never skipped silently.

load helpers

# seqs FILE: the seq of every message frame in a wsclient output, space-separated
seqs() {
	$PY -c 'import json,sys
print(" ".join(str(json.loads(l)["seq"]) for l in open(sys.argv[1]) if l.startswith("{\"chan\"")))' "$1"
}

# epoch_of_post JSON: post and print the epoch of the answer
epoch_of_post() {
	curl -s -X POST -d "$1" "$CHATD_URL/" | sed 's/.*"epoch":"\([a-z0-9]*\)".*/\1/'
}

@test "since=CHAN:SEQ:EPOCH replays what came after, then live messages follow" {
	start_chatd
	for i in 1 2 3 4; do epoch=$(epoch_of_post "{\"chan\":\"r\",\"msg\":$i}"); done
	local ready=$BATS_TEST_TMPDIR/ready
	bg ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=r&since=r:2:$epoch" --count 4 --ready "$ready"
	wait_until 5 test -e "$ready"
	wait_until 5 sh -c "[ \$(grep -c seq $BG_OUT) -ge 2 ]"
	post '{"chan":"r","msg":5}' >/dev/null
	post '{"chan":"r","msg":6}' >/dev/null
	wait "$BG_PID"
	[ "$(seqs "$BG_OUT")" = "3 4 5 6" ]
	! grep -q '"type":"gap"' "$BG_OUT"
}

@test "last=N replays the newest N" {
	start_chatd
	for i in $(seq 6); do post "{\"chan\":\"l\",\"msg\":$i}" >/dev/null; done
	run ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=l&last=2" --count 2
	[ "$(printf '%s\n' "$output" | grep -c '"seq":[56],')" = 2 ]
}

@test "a position no longer stored: the gap frame comes first, then what is available" {
	start_chatd --history 3
	for i in $(seq 6); do epoch=$(epoch_of_post "{\"chan\":\"g\",\"msg\":$i}"); done
	run ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=g&since=g:1:$epoch" --count 4
	[ "${lines[0]}" = "{\"type\":\"gap\",\"chan\":\"g\",\"asked\":{\"since\":1,\"epoch\":\"$epoch\"},\"available\":{\"first\":4,\"last\":6,\"epoch\":\"$epoch\"}}" ]
	[[ "${lines[1]}" == '{"chan":"g","seq":4,'* ]]
	[[ "${lines[3]}" == '{"chan":"g","seq":6,'* ]]
}

@test "another epoch: a gap frame, then the whole current epoch" {
	start_chatd
	for i in 1 2; do post "{\"chan\":\"x\",\"msg\":$i}" >/dev/null; done
	run ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=x&since=x:7:oldepoch" --count 3
	[[ "${lines[0]}" == '{"type":"gap","chan":"x","asked":{"since":7,"epoch":"oldepoch"},"available":{"first":1,"last":2,'* ]]
	[[ "${lines[1]}" == '{"chan":"x","seq":1,'* ]]
	[[ "${lines[2]}" == '{"chan":"x","seq":2,'* ]]
}

@test "bad resume parameters close with 1008" {
	start_chatd
	run ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=a&since=b:1"
	[ "$output" = "CLOSE 1008 since must be CHAN:SEQ[:EPOCH] for a subscribed channel" ]
	run ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=a&since=a:x"
	[ "$output" = "CLOSE 1008 since must be CHAN:SEQ[:EPOCH] with a number and an epoch of 0-9 a-z" ]
	# a number past 2^64-1 was taken as 2^64-1
	run ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=a&since=a:18446744073709551616"
	[ "$output" = "CLOSE 1008 since must be CHAN:SEQ[:EPOCH] with a number and an epoch of 0-9 a-z" ]
	run ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=a&last=0"
	[ "$output" = "CLOSE 1008 last must be a count from 1 to 1000" ]
}

# switch_under_load ARGS...: publish 3000 numbered messages while a subscriber resumes
# from the start part-way through; it must get 1..3000 exactly, in order.
switch_under_load() {
	wait_healthy "$CHATD_URL"
	seq 3000 | chat-post -u "$CHATD_URL" -c sw 2>"$BATS_TEST_TMPDIR/post.err" 3>&- &
	local poster=$!
	wait_until 10 sh -c "curl -s '$CHATD_URL/history/sw?limit=1&since=200' | grep -q '\"seq\":201'"
	run ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=sw&since=sw:0" --count 3000 --timeout 30
	wait "$poster"
	printf '%s\n' "$output" >"$BATS_TEST_TMPDIR/sw"
	[ "$(seqs "$BATS_TEST_TMPDIR/sw")" = "$(seq -s ' ' 3000)" ]
}

@test "the switch from replay to live loses and repeats nothing (memory)" {
	start_chatd --history 5000
	switch_under_load
}

@test "the switch from replay to live loses and repeats nothing (Redis)" {
	start_redis
	start_chatd --redis "$REDIS_URL" --history 5000
	switch_under_load
}

@test "a position in an epoch the channel no longer has at all (history lost, nothing new): a gap frame at once" {
	start_chatd
	run ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=x&since=x:1:oldepoch" --count 1 --timeout 3
	[ "${lines[0]}" = '{"type":"gap","chan":"x","asked":{"since":1,"epoch":"oldepoch"},"available":{"first":1,"last":0,"epoch":""}}' ]
}

@test "a channel name with colons resumes too (since= matches the subscribed name)" {
	start_chatd
	for i in 1 2 3; do post "{\"chan\":\"a:b\",\"msg\":$i}" >/dev/null; done
	run ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=a:b&since=a:b:1" --count 2 --timeout 3
	[[ "${lines[0]}" == '{"chan":"a:b","seq":2,'* ]]
	[[ "${lines[1]}" == '{"chan":"a:b","seq":3,'* ]]
}

@test "a negative since is refused with 1008, not read as a huge position" {
	start_chatd
	run ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=n&since=n:-1" --timeout 3
	[ "$output" = 'CLOSE 1008 since must be CHAN:SEQ[:EPOCH] with a number and an epoch of 0-9 a-z' ]
}
