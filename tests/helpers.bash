# helpers.bash: loaded by every bats file. Finds the build, picks free loopback ports,
# starts chatd and redis-server, and stops everything a test started, by pid.

BUILD=${BUILD:-$(cd "$BATS_TEST_DIRNAME/.." && pwd)/build}
PATH="$BUILD:$PATH"
PY=/usr/bin/python3 # Debian's python3-websockets lives here, not in other interpreters
TESTS_DIR=$BATS_TEST_DIRNAME
STARTED_PIDS=()

free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_until SECONDS CMD...: poll CMD every 50 ms until it succeeds.
wait_until() {
	local limit=$1 i=0
	shift
	while ! "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -lt $((limit * 20)) ] || return 1
		sleep 0.05
	done
}

# start_chatd [ARGS...]: start chatd on a free port. Sets CHATD_PID, CHATD_PORT, CHATD_URL,
# CHATD_LOG, and returns once it answers HTTP (not necessarily healthy: see wait_healthy).
start_chatd() {
	CHATD_PORT=$(free_port)
	CHATD_URL=http://127.0.0.1:$CHATD_PORT
	CHATD_LOG=$BATS_TEST_TMPDIR/chatd.$CHATD_PORT.log
	chatd --listen "127.0.0.1:$CHATD_PORT" "$@" 2>"$CHATD_LOG" 3>&- &
	CHATD_PID=$!
	STARTED_PIDS+=("$CHATD_PID")
	wait_until 5 curl -s -o /dev/null "$CHATD_URL/healthz" || {
		echo "chatd did not start; log:" >&2
		cat "$CHATD_LOG" >&2
		return 1
	}
}

# tls_cert: a self-signed certificate for localhost and 127.0.0.1 in
# $BATS_TEST_TMPDIR/cert.pem, its key in key.pem.
tls_cert() {
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$BATS_TEST_TMPDIR/key.pem" \
		-out "$BATS_TEST_TMPDIR/cert.pem" -days 2 -subj "/CN=localhost" \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
}

# start_tls [ARGS...]: chatd over TLS with tls_cert's certificate, as start_chatd (sets
# CHATD_PID, CHATD_PORT, CHATD_LOG); CHATD_URL is https://.
start_tls() {
	tls_cert
	CHATD_PORT=$(free_port)
	CHATD_URL=https://127.0.0.1:$CHATD_PORT
	CHATD_LOG=$BATS_TEST_TMPDIR/chatd.$CHATD_PORT.log
	chatd -l "127.0.0.1:$CHATD_PORT" --tls-cert "$BATS_TEST_TMPDIR/cert.pem" \
		--tls-key "$BATS_TEST_TMPDIR/key.pem" "$@" 2>"$CHATD_LOG" 3>&- &
	CHATD_PID=$!
	STARTED_PIDS+=("$CHATD_PID")
	wait_until 5 curl -s --cacert "$BATS_TEST_TMPDIR/cert.pem" -o /dev/null "$CHATD_URL/healthz"
}

# wait_healthy URL: until /healthz answers 200 (the broker is usable).
wait_healthy() {
	wait_until 10 curl -sf -o /dev/null "$1/healthz"
}

# start_redis [ARGS...]: a private redis-server on a free port. Sets REDIS_PID, REDIS_PORT,
# REDIS_URL.
start_redis() {
	REDIS_PORT=$(free_port)
	REDIS_URL=redis://127.0.0.1:$REDIS_PORT
	mkdir -p "$BATS_TEST_TMPDIR/redis.$REDIS_PORT"
	redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
		--dir "$BATS_TEST_TMPDIR/redis.$REDIS_PORT" "$@" >"$BATS_TEST_TMPDIR/redis.$REDIS_PORT.log" 2>&1 3>&- &
	REDIS_PID=$!
	STARTED_PIDS+=("$REDIS_PID")
	wait_until 5 redis-cli -p "$REDIS_PORT" ping
}

# bg CMD...: run CMD in the background with output to files; sets BG_PID and BG_OUT.
bg() {
	BG_OUT=$BATS_TEST_TMPDIR/bg.$RANDOM.out
	"$@" >"$BG_OUT" 2>"$BG_OUT.err" 3>&- &
	BG_PID=$!
	STARTED_PIDS+=("$BG_PID")
}

# stop_pid PID: TERM, then KILL after 3 s; returns the exit status.
stop_pid() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 60); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null
}

stop_all() {
	local pid
	for pid in "${STARTED_PIDS[@]}"; do
		stop_pid "$pid"
	done
	STARTED_PIDS=()
}

teardown() {
	stop_all
}

# listen ARGS...: chat-listen -v ARGS in the background (BG_PID, BG_OUT); returns once it
# is subscribed.
listen() {
	bg chat-listen -v "$@"
	wait_until 5 grep -q subscribed "$BG_OUT.err"
}

# gone PID: the process has exited (or is a zombie waiting to be reaped).
gone() {
	! kill -0 "$1" 2>/dev/null || [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" = Z ]
}

# finished PID: wait (at most 10 s) for a background PID to end; its exit status becomes
# $status.
finished() {
	wait_until 10 gone "$1"
	status=0
	wait "$1" || status=$?
}

# ws ARGS...: tests/wsclient.py, a WebSocket client we did not write (Python websockets).
ws() {
	$PY "$TESTS_DIR/wsclient.py" "$@"
}

# post JSON [PATH]: curl POST; prints "STATUS BODY".
post() {
	curl -s -o "$BATS_TEST_TMPDIR/post.body" -w '%{http_code}' -H 'Content-Type: application/json' \
		-X POST --data-binary "$1" "$CHATD_URL${2:-/}"
	echo " $(cat "$BATS_TEST_TMPDIR/post.body")"
}
