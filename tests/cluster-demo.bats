#!/usr/bin/env bats
# scripts/cluster-demo: Redis, three chatd nodes and nginx in front of them; a message
# crosses nodes, and every process the script started is gone when it ends.

load helpers

DEMO=$BATS_TEST_DIRNAME/../scripts/cluster-demo

# demo_pids FILE: every pid the script printed, one a line.
demo_pids() {
	grep -o '(pid [0-9]*)' "$1" | tr -dc '0-9\n'
}

# all_gone FILE: none of the processes the script printed is alive, and its directory is gone.
all_gone() {
	local pid dir
	[ -n "$(demo_pids "$1")" ]
	for pid in $(demo_pids "$1"); do
		gone "$pid" || { echo "pid $pid is still running: $(tr "\0" " " <"/proc/$pid/cmdline")"; return 1; }
	done
	dir=$(sed -n 's/^cluster-demo: files in //p' "$1")
	[ -n "$dir" ] && [ ! -e "$dir" ]
	! pgrep -f "$dir" >/dev/null
}

@test "cluster-demo: messages cross nodes through nginx; nothing is left running" {
	TMPDIR=$BATS_TEST_TMPDIR run "$DEMO"
	echo "$output" >"$BATS_TEST_TMPDIR/demo.out"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"chat-listen (pid "*") subscribed to 'demo' through nginx: nginx chose node "[123]* ]]
	[[ "$output" == *"cluster-demo: ok: messages crossed nodes: posted to node "[123]" and node "[123]", delivered by node "[123]" (WebSocket); all 4 reached both subscribers"* ]]
	# both subscribers printed all four messages, wherever they were posted
	[ "$(grep -c '^    hello from node [123]$' <<<"$output")" -eq 6 ]
	[ "$(grep -c '^    hello through nginx$' <<<"$output")" -eq 2 ]
	[[ "$output" == *"cluster-demo: stopped nginx (pid "*"), node 3 (pid "*"), node 2 (pid "*"), node 1 (pid "*"), redis (pid "*")"* ]]
	# redis, three nodes, nginx, chat-listen and the SSE curl
	[ "$(demo_pids "$BATS_TEST_TMPDIR/demo.out" | sort -u | wc -l)" -eq 7 ]
	all_gone "$BATS_TEST_TMPDIR/demo.out"
}

@test "cluster-demo --keep: stays up serving through nginx until SIGTERM, then stops everything" {
	TMPDIR=$BATS_TEST_TMPDIR bg "$DEMO" --keep
	local demo_pid=$BG_PID out=$BG_OUT
	wait_until 30 grep -q 'up until Ctrl-C' "$out"
	local url
	url=$(sed -n 's|^cluster-demo:   chat page and API  \(http://[0-9.:]*\)/ .*|\1|p' "$out")
	[ -n "$url" ]
	run curl -s "$url/healthz"
	[[ "$output" == '{"ok":true,"broker":"redis 127.0.0.1:'* ]]
	# a WebSocket and a POST through nginx after the demonstration
	listen -u "$url" -c later -n 1
	local listen_pid=$BG_PID listen_out=$BG_OUT
	run chat-post -u "$url" -c later 'still up'
	[ "$status" -eq 0 ]
	finished "$listen_pid"
	[ "$(cat "$listen_out")" = 'still up' ]
	# the demonstration's clients are already gone; the servers are not
	for pid in $(demo_pids "$out" | head -n 5); do
		kill -0 "$pid"
	done

	kill -TERM "$demo_pid"
	finished "$demo_pid"
	[ "$status" -eq 0 ]
	grep -q '^cluster-demo: stopped nginx (pid ' "$out"
	all_gone "$out"
}

@test "cluster-demo: an unknown argument is a usage error" {
	run "$DEMO" --bogus
	[ "$status" -eq 64 ]
	[ "$output" = "usage: cluster-demo [--keep]" ]
}
