# sentinel.bash: a Redis Sentinel set-up for bats files: one master, one replica and three
# sentinels (quorum 2), all on free 127.0.0.1 ports, tuned to fail over within seconds
# (down-after-milliseconds 1000, failover-timeout 3000). Load it after helpers.bash, whose
# free_port, wait_until and STARTED_PIDS (stopped by teardown) it uses:
#
#   load helpers
#   load sentinel
#
#   @test "..." {
#       sentinel_start                      # returns once the set can fail over
#       chatd ... --sentinel "$SENTINEL_ADDRS" --sentinel-master "$SENTINEL_NAME"
#       sentinel_failover                   # kill -9 the master, wait for the promotion
#       ...                                 # MASTER_PORT is now the promoted replica's
#   }
#
# Sentinel runs as `redis-server CONF --sentinel`: the same binary, so Debian's
# redis-sentinel package is not needed. Each sentinel rewrites its own config file under
# $BATS_TEST_TMPDIR; logs go next to it (sentinel.PORT.log, redis.PORT.log).

SENTINEL_NAME=${SENTINEL_NAME:-mymaster}

# _sentinel_redis PORT [ARGS...]: one data node for the set, in the background; sets
# _SENTINEL_PID. No persistence, and no 5 s diskless-sync delay before a replica's first
# sync (a replica that never synced is not eligible for promotion).
_sentinel_redis() {
	local port=$1
	shift
	mkdir -p "$BATS_TEST_TMPDIR/redis.$port"
	redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
		--repl-diskless-sync no --dir "$BATS_TEST_TMPDIR/redis.$port" "$@" \
		>>"$BATS_TEST_TMPDIR/redis.$port.log" 2>&1 3>&- &
	_SENTINEL_PID=$!
	STARTED_PIDS+=("$_SENTINEL_PID")
	wait_until 5 _sentinel_cli "$port" ping
}

# _sentinel_cli PORT ARGS...: redis-cli with a time limit: a stopped (SIGSTOP) server
# accepts connections but never answers, and redis-cli would wait for ever.
_sentinel_cli() {
	local port=$1
	shift
	timeout 1 redis-cli -p "$port" "$@"
}

# _sentinel_field PORT FIELD: one field of SENTINEL MASTER (a flat field/value list).
_sentinel_field() {
	_sentinel_cli "$1" SENTINEL master "$SENTINEL_NAME" 2>/dev/null |
		awk -v f="$2" 'NR % 2 == 1 { k = $0; next } k == f { print; exit }'
}

# sentinel_ready: every sentinel sees the replica and the two other sentinels and can
# authorise a failover, and the replica has finished its first sync.
sentinel_ready() {
	local p
	_sentinel_cli "$REPLICA_PORT" info replication | grep -q '^master_link_status:up' || return 1
	for p in "${SENTINEL_PORTS[@]}"; do
		[ "$(_sentinel_field "$p" num-slaves)" -ge 1 ] 2>/dev/null || return 1
		[ "$(_sentinel_field "$p" num-other-sentinels)" = 2 ] || return 1
		_sentinel_cli "$p" SENTINEL ckquorum "$SENTINEL_NAME" | grep -q '^OK' || return 1
	done
}

# sentinel_start: the master, its replica and three sentinels; returns once sentinel_ready
# (about 2-3 s: sentinels find each other through hello messages every 2 s). Sets
# MASTER_PORT MASTER_PID REPLICA_PORT REPLICA_PID, SENTINEL_PORTS SENTINEL_PIDS (arrays),
# SENTINEL_ADDRS ("127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3") and SENTINEL_NAME (the
# master's name, "mymaster" unless set before).
sentinel_start() {
	local i port conf
	MASTER_PORT=$(free_port)
	_sentinel_redis "$MASTER_PORT" || return 1
	MASTER_PID=$_SENTINEL_PID
	REPLICA_PORT=$(free_port)
	_sentinel_redis "$REPLICA_PORT" --replicaof 127.0.0.1 "$MASTER_PORT" || return 1
	REPLICA_PID=$_SENTINEL_PID
	SENTINEL_PORTS=()
	SENTINEL_PIDS=()
	for i in 1 2 3; do
		port=$(free_port)
		conf=$BATS_TEST_TMPDIR/sentinel.$port.conf
		mkdir -p "$BATS_TEST_TMPDIR/sentinel.$port"
		cat >"$conf" <<-EOF
			bind 127.0.0.1
			port $port
			dir $BATS_TEST_TMPDIR/sentinel.$port
			sentinel resolve-hostnames no
			sentinel announce-ip 127.0.0.1
			sentinel monitor $SENTINEL_NAME 127.0.0.1 $MASTER_PORT 2
			sentinel down-after-milliseconds $SENTINEL_NAME 1000
			sentinel failover-timeout $SENTINEL_NAME 3000
			sentinel parallel-syncs $SENTINEL_NAME 1
		EOF
		redis-server "$conf" --sentinel >"$BATS_TEST_TMPDIR/sentinel.$port.log" 2>&1 3>&- &
		SENTINEL_PIDS+=($!)
		STARTED_PIDS+=($!)
		SENTINEL_PORTS+=("$port")
	done
	# Sentinel looks at a replica with INFO every 10 s and waits 4 hello periods (8 s)
	# before it turns a restarted stale master into a replica: up to 18 s, close to a
	# test's patience on a loaded machine. Redis 7's SENTINEL DEBUG shortens both.
	for port in "${SENTINEL_PORTS[@]}"; do
		wait_until 5 _sentinel_cli "$port" ping || return 1
		_sentinel_cli "$port" SENTINEL DEBUG info-period 1000 publish-period 500 >/dev/null ||
			return 1
	done
	SENTINEL_ADDRS=$(printf '127.0.0.1:%s,' "${SENTINEL_PORTS[@]}")
	SENTINEL_ADDRS=${SENTINEL_ADDRS%,}
	wait_until 20 sentinel_ready || {
		echo "the sentinel set did not get ready; sentinel logs:" >&2
		tail -n 20 "$BATS_TEST_TMPDIR"/sentinel.*.log >&2
		return 1
	}
}

# sentinel_get_master [SENTINEL_PORT]: "HOST PORT" as a sentinel (default: the first)
# answers SENTINEL get-master-addr-by-name.
sentinel_get_master() {
	_sentinel_cli "${1:-${SENTINEL_PORTS[0]}}" SENTINEL get-master-addr-by-name "$SENTINEL_NAME" |
		paste -sd' '
}

# sentinels_agree PORT: every sentinel that is up (at least one) names 127.0.0.1:PORT as
# the master. A test may have stopped some sentinels.
sentinels_agree() {
	local p up=0
	for p in "${SENTINEL_PORTS[@]}"; do
		_sentinel_cli "$p" ping >/dev/null 2>&1 || continue
		up=$((up + 1))
		[ "$(sentinel_get_master "$p")" = "127.0.0.1 $1" ] || return 1
	done
	[ "$up" -gt 0 ]
}

# sentinel_failover [SECONDS]: kill -9 the master and wait (default 30 s) until every
# sentinel names the replica as master. Then MASTER_PORT/MASTER_PID are the promoted
# replica's, OLD_MASTER_PORT is the dead one's (REPLICA_PORT/REPLICA_PID are cleared), and
# FAILOVER_MS is how long it took from the kill. With these settings: about 3 to 6 s.
sentinel_failover() {
	local t0 limit=${1:-30}
	t0=$(date +%s%3N)
	kill -KILL "$MASTER_PID"
	wait "$MASTER_PID" 2>/dev/null || true
	wait_until "$limit" sentinels_agree "$REPLICA_PORT" || {
		echo "no failover within $limit s; sentinels say: $(sentinel_get_master)" >&2
		tail -n 30 "$BATS_TEST_TMPDIR"/sentinel.*.log >&2
		return 1
	}
	FAILOVER_MS=$(($(date +%s%3N) - t0))
	OLD_MASTER_PORT=$MASTER_PORT
	MASTER_PORT=$REPLICA_PORT
	MASTER_PID=$REPLICA_PID
	REPLICA_PORT=
	REPLICA_PID=
}

# sentinel_role PORT: the first word of ROLE ("master", "slave").
sentinel_role() {
	_sentinel_cli "$1" ROLE 2>/dev/null | head -n 1
}

# sentinel_is_replica PORT: ROLE says slave.
sentinel_is_replica() {
	[ "$(sentinel_role "$1")" = slave ]
}

# sentinel_restart_old_master [SECONDS]: start the killed master again on its port, as a
# master: a stale one, as after a crash and reboot. The sentinels turn it into a replica of
# the new master (about 3 s with sentinel_start's periods); this waits (default 30 s)
# until it says so in ROLE. Sets REPLICA_PORT
# and REPLICA_PID to it.
sentinel_restart_old_master() {
	_sentinel_redis "$OLD_MASTER_PORT" || return 1
	REPLICA_PORT=$OLD_MASTER_PORT
	REPLICA_PID=$_SENTINEL_PID
	wait_until "${1:-30}" sentinel_is_replica "$REPLICA_PORT"
}
