#!/usr/bin/env bats
# chatd's command line as chatd(1) describes it: the --listen forms, which of them are safe
# without authentication, and what the start-up line says. Also scripts/install-deps's
# advice to a user who is not root.

load helpers

# chatd_at LISTEN [ARGS...]: chatd -l LISTEN in the background, logging to $CHATD_LOG;
# returns once it answers on $CHATD_URL (set CHATD_PORT and CHATD_URL first).
chatd_at() {
	CHATD_LOG=$BATS_TEST_TMPDIR/chatd.$CHATD_PORT.log
	chatd -l "$@" 2>"$CHATD_LOG" 3>&- &
	CHATD_PID=$!
	STARTED_PIDS+=("$CHATD_PID")
	wait_until 5 curl -s -o /dev/null "$CHATD_URL/healthz" || {
		cat "$CHATD_LOG" >&2
		return 1
	}
}

# The first interface that is not a loopback one (IFF_LOOPBACK is 0x8), or nothing.
non_loopback_iface() {
	local d
	for d in /sys/class/net/*; do
		[ -r "$d/flags" ] || continue
		(($(cat "$d/flags") & 0x8)) || { basename "$d"; return; }
	done
}

# listening PORT: every address a socket is listening on at PORT, one a line, as the
# kernel has it (/proc/net/tcp and tcp6), not as chatd says.
listening() {
	python3 - "$1" <<'EOF'
import socket, struct, sys
port = int(sys.argv[1])
for fam, path in ((socket.AF_INET, "/proc/net/tcp"), (socket.AF_INET6, "/proc/net/tcp6")):
    try:
        rows = open(path).read().splitlines()[1:]
    except OSError:
        continue
    for row in rows:
        f = row.split()
        addr, p = f[1].split(":")
        if f[3] == "0A" and int(p, 16) == port:  # 0A: LISTEN
            raw = b"".join(struct.pack("=I", int(addr[i:i + 8], 16)) for i in range(0, len(addr), 8))
            print(socket.inet_ntop(fam, raw))
EOF
}

# listen_on ADDR LOGGED: chatd -l ADDR on a free port (PORT in ADDR and LOGGED stands for
# it); its start-up line must say "listening on LOGGED"
listen_on() {
	CHATD_PORT=$(free_port)
	CHATD_URL=http://127.0.0.1:$CHATD_PORT
	chatd_at "${1//PORT/$CHATD_PORT}"
	grep -q "INFO chatd: listening on ${2//PORT/$CHATD_PORT}" "$CHATD_LOG"
}

@test "a bare port listens on 127.0.0.1 and the start-up line says so" {
	listen_on PORT "http://127.0.0.1:PORT broker=memory"
	run post '{"chan":"p","msg":1}'
	[[ "$output" == '200 {"ok":true,"chan":"p",'* ]]
	# and only there: lws 4.1.6, given an IPv4 address, bound an IPv6 socket to "::"
	run listening "$CHATD_PORT"
	[ "$output" = 127.0.0.1 ]
}

@test "localhost:PORT is logged as the address it binds, and binds only that" {
	listen_on localhost:PORT "http://127.0.0.1:PORT broker=memory"
	run listening "$CHATD_PORT"
	[ "$output" = 127.0.0.1 ]
}

@test "[::1]:PORT listens on ::1 alone" {
	[ -e /proc/net/if_inet6 ] || skip "no IPv6 on this machine"
	CHATD_PORT=$(free_port)
	CHATD_URL="http://[::1]:$CHATD_PORT"
	chatd_at "[::1]:$CHATD_PORT"
	run listening "$CHATD_PORT"
	[ "$output" = ::1 ]
}

@test "the loopback interface lo needs no authentication and serves on 127.0.0.1" {
	[ -e /sys/class/net/lo ] || skip "no interface named lo"
	listen_on lo:PORT "http://127.0.0.1:PORT (lo) broker=memory auth=none"
	run post '{"chan":"lo","msg":1}'
	[[ "$output" == '200 {"ok":true,"chan":"lo",'* ]]
	run curl -s "$CHATD_URL/healthz"
	[[ "$output" == '{"ok":true,'* ]]
	run listening "$CHATD_PORT"
	[[ "$output" == 127.0.0.1 || "$output" == ::ffff:127.0.0.1 ]]
}

@test "a non-loopback interface is refused without authentication" {
	local iface
	iface=$(non_loopback_iface)
	[ -n "$iface" ] || skip "no interface other than loopback"
	run chatd -l "$iface:1"
	[ "$status" -eq 64 ]
	[[ "$output" == "chatd: refusing to serve $iface:1 without authentication: anyone who can reach it could read and publish."* ]]
	run chatd -l "no-such-iface0:1"
	[ "$status" -eq 64 ]
	[[ "$output" == *"refusing to serve no-such-iface0:1 without authentication"* ]]
}

@test "install-deps as a user tells how to become root with su, and with sudo" {
	# Stubs: a user that is not root, and one package missing.
	local bin=$BATS_TEST_TMPDIR/bin
	mkdir -p "$bin"
	printf '#!/bin/sh\necho 1000\n' >"$bin/id"
	printf '#!/bin/sh\nfor a; do :; done\n[ "$a" = valgrind ] && exit 1\necho "install ok installed"\n' >"$bin/dpkg-query"
	chmod +x "$bin/id" "$bin/dpkg-query"
	local cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends valgrind"
	PATH=$bin:$PATH run "$BATS_TEST_DIRNAME/../scripts/install-deps"
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "install-deps: run as root:" ]
	[ "${lines[1]}" = "  su -c '$cmd'" ]
	[ "${lines[2]}" = "install-deps: or, where sudo is set up:" ]
	[ "${lines[3]}" = "  sudo sh -c '$cmd'" ]
	[ "${#lines[@]}" -eq 4 ]
}
