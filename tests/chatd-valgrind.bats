#!/usr/bin/env bats
# chatd under valgrind: a short life with the main paths (publish, WebSocket and SSE
# subscribers, history, tokens, a usage error) ends with no memory error and no leak.
# (The whole suite was swept under valgrind once; this keeps the main paths honest.)

load helpers

setup() {
	# valgrind and AddressSanitizer cannot share a process: the ASan run skips this file
	if ldd "$BUILD/chatd" | grep -q libasan; then
		skip "valgrind cannot run an AddressSanitizer build"
	fi
	command -v valgrind >/dev/null || skip "valgrind is not installed (scripts/install-deps)"
}

vg() { # exec: when run in the background, $! is valgrind itself
	exec valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
		--log-file="$BATS_TEST_TMPDIR/vg.%p.log" "$BUILD/chatd" "$@"
}

@test "a usage error after options that allocate exits 64 with no valgrind error" {
	printf 'k-0123456789abcdef publish=*\n' >"$BATS_TEST_TMPDIR/keys"
	run vg --api-key-file "$BATS_TEST_TMPDIR/keys" --allow-origin http://a --allow-origin bad
	[ "$status" -eq 64 ]
}

@test "publish, subscribe (WebSocket and SSE), history and shutdown under valgrind: exit 0, clean" {
	local secret=$BATS_TEST_TMPDIR/secret port
	head -c 32 /dev/urandom | base64 >"$secret"
	port=$(free_port)
	vg -l "127.0.0.1:$port" --jwt-secret-file "$secret" 2>"$BATS_TEST_TMPDIR/chatd.log" 3>&- &
	local pid=$!
	STARTED_PIDS+=("$pid")
	wait_until 20 curl -s -o /dev/null "http://127.0.0.1:$port/healthz"
	local tok
	tok=$("$PY" "$TESTS_DIR/jwt.py" "$secret" '{"sub":"vg","publish":["*"],"subscribe":["*"]}')
	local ready=$BATS_TEST_TMPDIR/ready
	bg ws "ws://127.0.0.1:$port/ws/v?token=$tok" --count 2 --timeout 20 --ready "$ready"
	wait_until 20 test -e "$ready"
	bg curl -sN --max-time 20 "http://127.0.0.1:$port/events?chan=v&token=$tok"
	local sse=$BG_OUT
	wait_until 20 sh -c "curl -s http://127.0.0.1:$port/healthz | grep -q '\"sse\":1'"
	curl -s -H "Authorization: Bearer $tok" -d '{"chan":"v","msg":"one"}' "http://127.0.0.1:$port/" >/dev/null
	curl -s -H "Authorization: Bearer $tok" -H 'Idempotency-Key: k1' -d '{"chan":"v","msg":"two"}' "http://127.0.0.1:$port/" >/dev/null
	curl -s -d '{"chan":"v","msg":"no token"}' "http://127.0.0.1:$port/" >/dev/null
	curl -s "http://127.0.0.1:$port/history/v?token=$tok" >/dev/null
	curl -s "http://127.0.0.1:$port/metrics" >/dev/null
	wait_until 20 grep -q two "$sse"
	kill -TERM "$pid"
	wait_until 30 gone "$pid"
	status=0
	wait "$pid" || status=$?
	[ "$status" -eq 0 ] || { echo "status $status"; cat "$BATS_TEST_TMPDIR"/vg.*.log "$BATS_TEST_TMPDIR/chatd.log"; false; }
}
