#!/usr/bin/env bats
# The build and install as a user meets them: every tool answers --help and --version,
# `make install` puts binaries and man pages where PREFIX says, and every man page renders
# without warnings.

load helpers

TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)

@test "every tool has --help (exit 0, to stdout) and --version" {
	for t in chatd chat-post chat-listen chat-bench; do
		run "$t" --help
		[ "$status" -eq 0 ]
		[[ "$output" == *"usage: $t"* || "$output" == *"Usage: $t"* ]]
		run "$t" --version
		[ "$status" -eq 0 ]
		[ "$output" = "$t (chatd) 0.1.0" ]
		run "$t" --no-such-option
		[ "$status" -eq 64 ]
	done
}

@test "make install PREFIX=... installs the four tools and five man pages" {
	local dest=$BATS_TEST_TMPDIR/prefix
	run make -C "$TOP" --no-print-directory BUILD="$BUILD" install PREFIX="$dest"
	[ "$status" -eq 0 ]
	for t in chatd chat-post chat-listen chat-bench; do
		[ -x "$dest/bin/$t" ]
		[ -f "$dest/share/man/man1/$t.1" ]
	done
	[ -f "$dest/share/man/man7/chat-protocol.7" ]
	run "$dest/bin/chatd" --version
	[ "$output" = "chatd (chatd) 0.1.0" ]
}

@test "every man page renders without warnings" {
	for page in "$TOP"/man/*.[17]; do
		run groff -ww -man -Tutf8 "$page"
		[ "$status" -eq 0 ]
		[ -z "$(groff -ww -man -Tutf8 "$page" 2>&1 >/dev/null)" ]
	done
}
