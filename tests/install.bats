#!/usr/bin/env bats
# make install / make uninstall: binaries, man pages, bash completions and the example
# systemd unit land where they belong, under PREFIX and DESTDIR, and go away again.

load helpers

TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)

# make_install ARGS...: make ARGS with the binaries under test, as they are (-o: make never
# rebuilds them, nor the package flags, from inside a test).
make_install() {
	make -s -C "$TOP" BUILD="$BUILD" -o "$BUILD/config.mk" \
		-o "$BUILD/chatd" -o "$BUILD/chat-post" -o "$BUILD/chat-listen" -o "$BUILD/chat-bench" "$@"
}

TOOLS="chatd chat-post chat-listen chat-bench"

@test "make install PREFIX=DIR: binaries, man pages, completions and the unit land under DIR" {
	local p=$BATS_TEST_TMPDIR/p
	run make_install install PREFIX="$p"
	echo "$output"
	[ "$status" -eq 0 ]
	for t in $TOOLS; do
		[ -x "$p/bin/$t" ]
		cmp "$BUILD/$t" "$p/bin/$t"
		[ -f "$p/share/man/man1/$t.1" ]
		[ "$(stat -c %a "$p/share/bash-completion/completions/$t")" = 644 ]
		cmp "$TOP/completions/$t" "$p/share/bash-completion/completions/$t"
	done
	[ -f "$p/share/man/man7/chat-protocol.7" ]
	run "$p/bin/chatd" --version
	[ "$status" -eq 0 ]
	# the unit, as an example, runs the chatd just installed
	local unit=$p/share/doc/chatd/chatd.service
	[ "$(stat -c %a "$unit")" = 644 ]
	grep -qx "ExecStart=$p/bin/chatd \$CHATD_OPTS" "$unit"
	[ "$(grep -c /usr/local/bin "$unit")" -eq 0 ]
}

@test "make install DESTDIR=STAGE PREFIX=/usr: staged under STAGE, the unit names /usr/bin/chatd" {
	local stage=$BATS_TEST_TMPDIR/stage
	run make_install install DESTDIR="$stage" PREFIX=/usr
	[ "$status" -eq 0 ]
	[ -x "$stage/usr/bin/chatd" ]
	[ -f "$stage/usr/share/bash-completion/completions/chat-listen" ]
	grep -qx 'ExecStart=/usr/bin/chatd $CHATD_OPTS' "$stage/usr/share/doc/chatd/chatd.service"
	# nothing outside the stage's /usr
	[ "$(ls "$stage")" = usr ]
}

@test "the installed completion is found by bash-completion's loader" {
	local p=$BATS_TEST_TMPDIR/p
	make_install install PREFIX="$p"
	# bash-completion looks in each XDG_DATA_DIRS entry's bash-completion/completions/
	for t in $TOOLS; do
		run env XDG_DATA_DIRS="$p/share" bash -c \
			'source /usr/share/bash-completion/bash_completion; __load_completion "$1" && complete -p "$1"' _ "$t"
		[ "$status" -eq 0 ]
		[[ "$output" == "complete -F _${t//-/_} $t" ]]
	done
}

@test "make uninstall removes everything make install put there" {
	local p=$BATS_TEST_TMPDIR/p
	make_install install PREFIX="$p"
	[ -n "$(find "$p" -type f)" ]
	run make_install uninstall PREFIX="$p"
	[ "$status" -eq 0 ]
	run find "$p" -type f
	[ -z "$output" ]
	[ ! -e "$p/share/doc/chatd" ]
}

@test "the installed systemd unit passes systemd-analyze verify" {
	command -v systemd-analyze >/dev/null || skip "no systemd-analyze (Debian package systemd)"
	local p=$BATS_TEST_TMPDIR/p
	make_install install PREFIX="$p"
	run systemd-analyze verify --man=no "$p/share/doc/chatd/chatd.service"
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}
