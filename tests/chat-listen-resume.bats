#!/usr/bin/env bats
# chat-listen as a resumable filter: --since, the state file across restarts (memory and
# Redis), duplicates dropped on the client, every reconnect resuming where printing
# stopped, gap notices and --fail-on-gap, a dead connection noticed by ping, and the
# errors for bad positions and bad state files.

load helpers

# epoch_of CHAN: the channel's current epoch, from GET /history.
epoch_of() {
	curl -s "$CHATD_URL/history/$1?limit=1" | sed 's/.*"epoch":"\([a-z0-9]*\)".*/\1/'
}

# lines_in N FILE: FILE has at least N lines.
lines_in() {
	[ "$(wc -l <"$2")" -ge "$1" ]
}

# fake_server PORT SCRIPT LOG: a WebSocket server (Python websockets, not our code) that
# logs the request path of each connection to LOG and, on the Nth connection, sends the
# frames on line N of SCRIPT (a JSON array of strings), or the last line's for later ones.
# It closes the connections before the last line's, so the client has to reconnect.
# Sets FAKE_PID.
fake_server() {
	$PY -c '
import asyncio, json, sys, websockets
port, script, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
conns = [json.loads(l) for l in open(script) if l.strip()]
n = 0
async def serve(ws, path):
    global n
    with open(log, "a") as f:
        print(path, file=f)
    frames = conns[min(n, len(conns) - 1)]
    n += 1
    for fr in frames:
        await ws.send(fr)
    if n < len(conns):
        await ws.close()
    else:
        await asyncio.Future()
async def main():
    async with websockets.serve(serve, "127.0.0.1", port):
        await asyncio.Future()
asyncio.run(main())
' "$@" 2>"$BATS_TEST_TMPDIR/fake.err" 3>&- &
	FAKE_PID=$!
	STARTED_PIDS+=("$FAKE_PID")
	wait_until 5 curl -s -o /dev/null "http://127.0.0.1:$1/"
}

# env SEQ EPOCH MSG: an envelope as chatd writes it, as a JSON string for a fake_server script.
env() {
	printf '"{\\"chan\\":\\"f\\",\\"seq\\":%s,\\"epoch\\":\\"%s\\",\\"ts\\":1,\\"msg\\":\\"%s\\"}"' "$1" "$2" "$3"
}

@test "--since CHAN:SEQ:EPOCH and plain SEQ replay what came after, then live messages follow" {
	start_chatd
	chat-post -u "$CHATD_URL" -c s m1 m2 m3 m4
	local epoch
	epoch=$(epoch_of s)
	listen -u "$CHATD_URL" -c s -c other --since "s:2:$epoch" -n 3
	wait_until 5 lines_in 2 "$BG_OUT"
	grep -q "connecting url=ws://127.0.0.1:$CHATD_PORT/ws?chan=s&chan=other&since=s:2:$epoch\$" "$BG_OUT.err"
	chat-post -u "$CHATD_URL" -c s m5
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	[ "$(cat "$BG_OUT")" = "m3
m4
m5" ]
	run timeout 20 chat-listen -u "$CHATD_URL" -c s --since 3 -n 2
	[ "$status" -eq 0 ]
	[ "$output" = "m4
m5" ]
}

# restart_keeps_order URL1 URL2: a listener with a state file on URL1 is stopped, more is
# posted, and a second one with the same file on URL2 prints exactly what the first did not.
restart_keeps_order() {
	local state=$BATS_TEST_TMPDIR/state first second
	listen -u "$1" -c room -c side --since room:0 --since side:0 --state-file "$state"
	first=$BG_OUT
	chat-post -u "$1" -c room one two three
	chat-post -u "$1" -c side s1
	wait_until 10 lines_in 4 "$first"
	stop_pid "$BG_PID"
	chat-post -u "$2" -c room four five
	chat-post -u "$2" -c side s2
	chat-post -u "$2" -c room six
	listen -u "$2" -c room -c side --state-file "$state" -n 5
	second=$BG_OUT
	wait_until 10 lines_in 4 "$second"
	chat-post -u "$2" -c room seven
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	# order is kept within a channel; the replays of two channels may interleave
	[ "$(grep -v '^s[0-9]' "$first")" = "one
two
three" ]
	[ "$(grep '^s[0-9]' "$first")" = s1 ]
	[ "$(grep -v '^s[0-9]' "$second")" = "four
five
six
seven" ]
	[ "$(grep '^s[0-9]' "$second")" = s2 ]
	grep -q "since=room:3:[a-z0-9]*&since=side:1:[a-z0-9]*\$" "$BG_OUT.err"
	[ "$(grep -c '^room 7 [a-z0-9]*$' "$state")" -eq 1 ]
	[ "$(grep -c '^side 2 [a-z0-9]*$' "$state")" -eq 1 ]
}

@test "a restart with --state-file prints what came meanwhile, once, in order (memory broker)" {
	start_chatd
	restart_keeps_order "$CHATD_URL" "$CHATD_URL"
}

@test "a restart with --state-file prints what came meanwhile, once, in order (Redis, another node)" {
	start_redis
	start_chatd --redis "$REDIS_URL"
	local a=$CHATD_URL
	start_chatd --redis "$REDIS_URL"
	wait_healthy "$a"
	wait_healthy "$CHATD_URL"
	restart_keeps_order "$a" "$CHATD_URL"
}

@test "the state file: its line format, replaced whole by rename, other channels kept, --since wins" {
	start_chatd
	local state=$BATS_TEST_TMPDIR/st/state snaps=$BATS_TEST_TMPDIR/snaps inode epoch
	mkdir "$BATS_TEST_TMPDIR/st"
	printf 'kept 5 abc\n# a comment\n\nburst 999 zzz\n' >"$state"
	inode=$(stat -c %i "$state")
	listen -u "$CHATD_URL" -c burst --since burst:0 --state-file "$state" -n 200
	# read the file over and over while it is rewritten 200 times: every read is whole
	bash -c 'while kill -0 "$1" 2>/dev/null; do cat "$2"; echo "--"; done' _ "$BG_PID" "$state" >"$snaps" 3>&- &
	STARTED_PIDS+=("$!")
	seq 200 | chat-post -u "$CHATD_URL" -c burst
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	[ "$(wc -l <"$BG_OUT")" -eq 200 ]
	epoch=$(epoch_of burst)
	[ "$(cat "$state")" = "# chat-listen state: CHAN SEQ EPOCH of the last message printed
kept 5 abc
burst 200 $epoch" ]
	[ "$(stat -c %i "$state")" != "$inode" ]
	[ "$(ls "$BATS_TEST_TMPDIR/st")" = state ]
	stop_all
	[ "$(grep -c '^burst ' "$snaps")" -gt 0 ]
	# every read saw a whole file: the header, then both channels
	$PY -c 'import re, sys
head = "# chat-listen state: CHAN SEQ EPOCH of the last message printed"
bad = [b for b in open(sys.argv[1]).read().split("--\n")[:-1]
       if not re.fullmatch(re.escape(head) + "\nkept 5 abc\nburst [0-9]+ (-|" + sys.argv[2] + ")\n", b)]
print(len(bad), "torn reads:", bad[:3])
sys.exit(1 if bad else 0)' "$snaps" "$epoch"
}

@test "duplicates are dropped on the client, and every reconnect resumes after the last message printed" {
	local port script=$BATS_TEST_TMPDIR/script log=$BATS_TEST_TMPDIR/paths
	port=$(free_port)
	{
		echo "[$(env 1 e1 m1), $(env 2 e1 m2), $(env 2 e1 m2-again), $(env 1 e1 m1-again)]"
		echo "[$(env 2 e1 m2-replayed), $(env 3 e1 m3)]"
		echo "[$(env 3 e1 m3-replayed), $(env 4 e1 m4)]"
	} >"$script"
	fake_server "$port" "$script" "$log"
	bg chat-listen -u "http://127.0.0.1:$port" -c f -n 4
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	[ "$(cat "$BG_OUT")" = "m1
m2
m3
m4" ]
	[ "$(cat "$log")" = "/ws?chan=f
/ws?chan=f&since=f:2:e1
/ws?chan=f&since=f:3:e1" ]
}

@test "a hole the server did not announce is reported, and with --fail-on-gap ends it before the message" {
	local port script=$BATS_TEST_TMPDIR/script log=$BATS_TEST_TMPDIR/paths
	port=$(free_port)
	echo "[$(env 1 e1 m1), $(env 2 e1 m2), $(env 5 e1 m5), $(env 1 e2 new1), $(env 3 e3 new3)]" >"$script"
	fake_server "$port" "$script" "$log"
	run timeout 20 chat-listen -u "http://127.0.0.1:$port" -c f -n 5
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = m1 ]
	[ "${lines[1]}" = m2 ]
	[[ "${lines[2]}" == *" WARN chat-listen: gap in f: got 5 right after 2 (epoch e1), with no gap notice from the server; messages 3..4 are lost" ]]
	[ "${lines[3]}" = m5 ]
	[[ "${lines[4]}" == *" INFO chat-listen: history of f was reset: printed up to 5 of epoch e1, now at 1 of epoch e2; any message after 5 of epoch e1 is lost" ]]
	[ "${lines[5]}" = new1 ]
	[[ "${lines[6]}" == *" WARN chat-listen: gap in f: the channel's history was reset: printed up to 1 of epoch e2, now at 3 of epoch e3; any message after 1 of epoch e2 is lost, and so are messages 1..2 of epoch e3" ]]
	[ "${lines[7]}" = new3 ]
	[ "${#lines[@]}" -eq 8 ]
	run timeout 20 chat-listen -u "http://127.0.0.1:$port" -c f --fail-on-gap
	[ "$status" -eq 3 ]
	[ "${lines[0]}" = m1 ]
	[ "${lines[1]}" = m2 ]
	[[ "${lines[2]}" == *" ERROR chat-listen: gap in f: got 5 right after 2 (epoch e1), with no gap notice from the server; messages 3..4 are lost; exiting (--fail-on-gap)" ]]
	[ "${#lines[@]}" -eq 3 ]
}

@test "a gap notice goes to stderr, and with --json also to stdout as the server sent it" {
	start_chatd --history 5
	chat-post -u "$CHATD_URL" -c g $(seq 10)
	local epoch
	epoch=$(epoch_of g)
	bg chat-listen -u "$CHATD_URL" -c g --since "g:2:$epoch" --json -n 5
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	run cat "$BG_OUT"
	[ "${lines[0]}" = "{\"type\":\"gap\",\"chan\":\"g\",\"asked\":{\"since\":2,\"epoch\":\"$epoch\"},\"available\":{\"first\":6,\"last\":10,\"epoch\":\"$epoch\"}}" ]
	[[ "${lines[1]}" == "{\"chan\":\"g\",\"seq\":6,"* ]]
	[[ "${lines[5]}" == "{\"chan\":\"g\",\"seq\":10,"* ]]
	[ "${#lines[@]}" -eq 6 ]
	run cat "$BG_OUT.err"
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *" WARN chat-listen: gap in g: asked after 2 (epoch $epoch), server has 6..10 (epoch $epoch); messages 3..5 are lost" ]]
	# without --json, only the messages reach stdout
	timeout 20 chat-listen -u "$CHATD_URL" -c g --since g:4 -n 2 >"$BATS_TEST_TMPDIR/out" 2>/dev/null
	[ "$(cat "$BATS_TEST_TMPDIR/out")" = "6
7" ]
	# an epoch that is gone: the whole current epoch follows
	run timeout 20 chat-listen -u "$CHATD_URL" -c g --since g:4:gone -n 1
	[[ "${lines[0]}" == *" WARN chat-listen: gap in g: asked after 4 (epoch gone), server has 6..10 (epoch $epoch); any message after 4 of epoch gone is lost, and so are messages 1..5 of epoch $epoch" ]]
	[ "${lines[1]}" = 6 ]
}

@test "a position in a channel the server has no history of (a restarted chatd): the gap line names no empty epoch" {
	start_chatd
	bg chat-listen -u "$CHATD_URL" -c r --since r:3:old -n 1
	wait_until 5 grep -q 'gap in r' "$BG_OUT.err"
	chat-post -u "$CHATD_URL" -c r hello
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	[ "$(cat "$BG_OUT")" = hello ]
	# the first message of the new epoch follows the gap: nothing more to report
	run cat "$BG_OUT.err"
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *" WARN chat-listen: gap in r: asked after 3 (epoch old), server has none stored (no epoch yet); any message after 3 of epoch old is lost" ]]
	run timeout 20 chat-listen -u "$CHATD_URL" -c q --since q:3:old --fail-on-gap
	[ "$status" -eq 3 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *" ERROR chat-listen: gap in q: asked after 3 (epoch old), server has none stored (no epoch yet); any message after 3 of epoch old is lost; exiting (--fail-on-gap)" ]]
}

@test "--fail-on-gap exits 3 at a gap without printing what follows; the state file is left as it was" {
	start_chatd --history 5
	chat-post -u "$CHATD_URL" -c g $(seq 10)
	local epoch state=$BATS_TEST_TMPDIR/state
	epoch=$(epoch_of g)
	printf 'g 3 %s\n' "$epoch" >"$state"
	run timeout 20 chat-listen -u "$CHATD_URL" -c g --state-file "$state" --fail-on-gap
	[ "$status" -eq 3 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *" ERROR chat-listen: gap in g: asked after 3 (epoch $epoch), server has 6..10 (epoch $epoch); messages 4..5 are lost; exiting (--fail-on-gap)" ]]
	grep -qx "g 3 $epoch" "$state"
	bg chat-listen -u "$CHATD_URL" -c g --state-file "$state" --fail-on-gap --json
	finished "$BG_PID"
	[ "$status" -eq 3 ]
	[ "$(cat "$BG_OUT")" = "{\"type\":\"gap\",\"chan\":\"g\",\"asked\":{\"since\":3,\"epoch\":\"$epoch\"},\"available\":{\"first\":6,\"last\":10,\"epoch\":\"$epoch\"}}" ]
	# a position still stored is no gap
	run timeout 20 chat-listen -u "$CHATD_URL" -c g --since "g:5:$epoch" --fail-on-gap -n 5
	[ "$status" -eq 0 ]
	[ "$output" = "$(seq 6 10)" ]
}

@test "a server that stops answering is noticed by ping; the reconnect resumes and loses nothing" {
	start_redis
	start_chatd --redis "$REDIS_URL"
	local a_port=$CHATD_PORT a_pid=$CHATD_PID b=$CHATD_URL
	start_chatd --redis "$REDIS_URL"
	b=$CHATD_URL
	wait_healthy "http://127.0.0.1:$a_port"
	wait_healthy "$b"
	chat-post -u "$b" -c live m1
	listen -u "http://127.0.0.1:$a_port" -c live --since live:0 --ping 1 -n 6
	chat-post -u "$b" -c live m2
	wait_until 5 lines_in 2 "$BG_OUT"
	kill -STOP "$a_pid"
	chat-post -u "$b" -c live m3
	wait_until 10 grep -q 'connection lost' "$BG_OUT.err"
	chat-post -u "$b" -c live m4
	kill -KILL "$a_pid"
	wait "$a_pid" 2>/dev/null || true
	chatd --listen "127.0.0.1:$a_port" --redis "$REDIS_URL" 2>>"$BATS_TEST_TMPDIR/a2.log" 3>&- &
	STARTED_PIDS+=("$!")
	chat-post -u "$b" -c live m5
	wait_until 10 lines_in 5 "$BG_OUT"
	chat-post -u "$b" -c live m6
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	[ "$(cat "$BG_OUT")" = "m1
m2
m3
m4
m5
m6" ]
	[ "$(grep -c ' WARN ' "$BG_OUT.err")" -eq 1 ]
	grep -q " WARN chat-listen: connection lost, reconnecting url=ws://127.0.0.1:$a_port/ws?chan=live reason=\"no message or pong for 2 s\"" "$BG_OUT.err"
	grep -q "connecting url=ws://127.0.0.1:$a_port/ws?chan=live&since=live:2:[a-z0-9]*\$" "$BG_OUT.err"
}

@test "a quiet healthy connection answers the pings and stays up" {
	start_chatd
	listen -u "$CHATD_URL" -c quiet --ping 1 -n 1
	# three ping intervals with nothing published: the connection must survive them
	sleep 3.5
	chat-post -u "$CHATD_URL" -c quiet still-here
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	[ "$(cat "$BG_OUT")" = still-here ]
	[ "$(grep -c subscribed "$BG_OUT.err")" -eq 1 ]
	! grep -q 'connection lost' "$BG_OUT.err"
}

@test "a malformed state file is refused with its line and exit 65, and left untouched" {
	local f=$BATS_TEST_TMPDIR/state
	check() { # CONTENT EXPECTED-MESSAGE
		printf "$1" >"$f"
		run timeout 20 chat-listen -u "http://127.0.0.1:$(free_port)" -c room --state-file "$f"
		[ "$status" -eq 65 ]
		[ "$output" = "chat-listen: state file $f, $2" ]
		[ "$(cat "$f")" = "$(printf "$1")" ]
	}
	check 'room 1 abc\nroom 2 abc\n' 'line 2: channel "room" appears twice'
	check '# ok\nroom x abc\n' 'line 2: SEQ must be a number from 0 to 9007199254740991, not "x"'
	check 'room 9007199254740992 abc\n' 'line 1: SEQ must be a number from 0 to 9007199254740991, not "9007199254740992"'
	check 'room 1\n' 'line 1: expected "CHAN SEQ EPOCH", found 2 fields'
	check 'room 1 abc extra\n' 'line 1: expected "CHAN SEQ EPOCH", found 4 fields'
	check 'room 1 ABC\n' 'line 1: EPOCH must be 1 to 24 of 0-9 a-z, or -, not "ABC"'
	check 'ro/om 1 abc\n' 'line 1: invalid channel name "ro/om": channel name may only use A-Z a-z 0-9 _ - . :'
	check 'room 1 abc' 'line 1: no newline at its end (a truncated file?)'
	check 'a 1 abc\nroom 2 ab' 'line 2: no newline at its end (a truncated file?)'
	# unreadable, and unwritable
	run timeout 20 chat-listen -c room --state-file "$BATS_TEST_TMPDIR"
	[ "$status" -eq 66 ]
	[ "$output" = "chat-listen: cannot read state file $BATS_TEST_TMPDIR: Is a directory" ]
	run timeout 20 chat-listen -c room --state-file "$BATS_TEST_TMPDIR/no/such/dir"
	[ "$status" -eq 73 ]
	[ "$output" = "chat-listen: cannot write state file $BATS_TEST_TMPDIR/no/such/dir: No such file or directory" ]
}

@test "an empty or comment-only state file is a fresh start, and - is an unknown epoch" {
	start_chatd
	local f=$BATS_TEST_TMPDIR/state
	: >"$f"
	listen -u "$CHATD_URL" -c e --state-file "$f" -n 1
	chat-post -u "$CHATD_URL" -c e hello
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	[ "$(cat "$BG_OUT")" = hello ]
	chat-post -u "$CHATD_URL" -c e a b c
	printf '# mine\ne 2 -\n' >"$f"
	run timeout 20 chat-listen -v -u "$CHATD_URL" -c e --state-file "$f" -n 2
	[ "$status" -eq 0 ]
	[[ "$output" == *"connecting url=ws://127.0.0.1:$CHATD_PORT/ws?chan=e&since=e:2"$'\n'* ]]
	[ "$(printf '%s\n' "$output" | grep -v ' INFO ')" = "b
c" ]
}

@test "bad --since, --last and --ping values are usage errors" {
	run timeout 20 chat-listen -c a -c b --since 3
	[ "$status" -eq 64 ]
	[ "$output" = 'chat-listen: --since "3": expected CHAN:SEQ[:EPOCH] for a channel given with -c (SEQ a number, EPOCH 1 to 24 of 0-9 a-z)' ]
	run timeout 20 chat-listen -c a --since b:3
	[ "$status" -eq 64 ]
	[ "$output" = 'chat-listen: --since "b:3": expected CHAN:SEQ[:EPOCH] for a channel given with -c, or SEQ[:EPOCH] (SEQ a number, EPOCH 1 to 24 of 0-9 a-z)' ]
	run timeout 20 chat-listen -c a --since a:3:UPPER
	[ "$status" -eq 64 ]
	run timeout 20 chat-listen -c a --since a:-1
	[ "$status" -eq 64 ]
	run timeout 20 chat-listen -c a -c b --since a:1 --since b:2 --since a:3
	[ "$status" -eq 64 ]
	[ "$output" = 'chat-listen: --since names channel "a" twice' ]
	run timeout 20 chat-listen -c x:y --since x:y:4
	[ "$status" -eq 64 ]
	[ "$output" = "chat-listen: --since cannot resume \"x:y\": chatd does not take since= for a channel name with ':'" ]
	run timeout 20 chat-listen --last 0
	[ "$status" -eq 64 ]
	[ "$output" = 'chat-listen: --last needs a number from 1 to 1000, not "0"' ]
	run timeout 20 chat-listen --ping 2s
	[ "$status" -eq 64 ]
	[ "$output" = 'chat-listen: --ping needs seconds from 0 to 3600, not "2s"' ]
}

@test "--last N replays the newest N of channels without a position" {
	start_chatd
	chat-post -u "$CHATD_URL" -c l1 a b c d
	chat-post -u "$CHATD_URL" -c l2 w x y z
	run timeout 20 chat-listen -u "$CHATD_URL" -c l1 -c l2 --since l1:3 --last 2 -n 3
	[ "$status" -eq 0 ]
	# per channel order is kept; the two channels' replays may interleave
	[ "$(printf '%s\n' "$output" | grep -c '^[dyz]$')" -eq 3 ]
	[ "$(printf '%s\n' "$output" | grep '^[yz]$' | tr -d '\n')" = yz ]
}
