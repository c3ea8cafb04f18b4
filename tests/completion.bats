#!/usr/bin/env bats
# completions/: bash completion for the four tools. Each tool's completion offers exactly
# the options its --help lists (so the two cannot drift apart), completes nothing that is
# an option after an option that takes a value, file names after the options that take a
# file, and the fixed choices where there are some.

load helpers

COMPLETIONS=$BATS_TEST_DIRNAME/../completions

# complete_line TOOL LINE: what bash completion offers at the end of LINE (the tool's
# completion loaded as bash-completion loads it), one a line, sorted. Bash splits the
# line at '=' as well as at blanks (COMP_WORDBREAKS), and so does this.
complete_line() {
	(cd "$BATS_TEST_TMPDIR" && bash -c '
		source /usr/share/bash-completion/bash_completion
		source "$1"
		line=$2
		read -ra COMP_WORDS <<<"${line//=/ = }"
		[[ $line != *" " ]] || COMP_WORDS+=("")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		COMP_LINE=$line
		COMP_POINT=${#line}
		func=$(complete -p "${COMP_WORDS[0]}" | sed -n "s/.* -F \([^ ]*\) .*/\1/p")
		[ -n "$func" ] || { echo "no completion for ${COMP_WORDS[0]}" >&2; exit 1; }
		"$func" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
		[ "${#COMPREPLY[@]}" -eq 0 ] || printf "%s\n" "${COMPREPLY[@]}" | sort
	' _ "$COMPLETIONS/$1" "$2")
}

# help_options TOOL: the options TOOL --help lists, one a line: "LONG SHORT ARG", with "-"
# for no short form and ARG the placeholder of the value the option takes (one space and a
# word after the option, as in "--listen ADDR:PORT"), "-" for a flag.
help_options() {
	"$1" --help | sed -nE 's/^ +(-([A-Za-z0-9]), )?(--[a-z0-9-]+)( ([^ ]+))?.*/\3 -\2 \5/p' |
		awk '{ print $1, $2, (NF > 2 ? $3 : "-") }'
}

# check_options TOOL: the completion offers every option of --help and no other; after an
# option that takes a value (long or short form) it offers no option, but file names for a
# FILE and the choices for a placeholder like text|json; after a flag it offers the options
# again; and every short option it knows is one that --help lists.
check_options() {
	local tool=$1 long short arg offered
	help_options "$tool" >"$BATS_TEST_TMPDIR/help"
	[ -s "$BATS_TEST_TMPDIR/help" ]
	cut -d' ' -f1 "$BATS_TEST_TMPDIR/help" | sort >"$BATS_TEST_TMPDIR/help.long"
	complete_line "$tool" "$tool -" >"$BATS_TEST_TMPDIR/offered"
	diff -u "$BATS_TEST_TMPDIR/help.long" "$BATS_TEST_TMPDIR/offered" ||
		{ echo "$tool: --help (-) and completions/$tool (+) list different options"; return 1; }

	touch "$BATS_TEST_TMPDIR/probe.file"
	while read -r long short arg; do
		for opt in "$long" "$short"; do
			[ "$opt" != - ] || continue
			offered=$(complete_line "$tool" "$tool $opt --")
			if [ "$arg" = - ]; then
				grep -qx -- --help <<<"$offered" || { echo "$tool $opt is a flag, but completion offers: $offered"; return 1; }
				continue
			fi
			[ -z "$offered" ] || { echo "$tool $opt takes a value, but completion offers: $offered"; return 1; }
			offered=$(complete_line "$tool" "$tool $opt ")
			case $arg in
			FILE)
				grep -qx probe.file <<<"$offered" || { echo "$tool $opt FILE: completion offers no file names"; return 1; }
				;;
			*'|'*)
				[ "$offered" = "$(tr '|' '\n' <<<"$arg" | sort)" ] ||
					{ echo "$tool $opt $arg: completion offers: $offered"; return 1; }
				;;
			esac
		done
	done <"$BATS_TEST_TMPDIR/help"

	# the short options in the completion's case patterns (on $prev) are all real
	for short in $(sed -n '/case \$prev in/,/esac/p' "$COMPLETIONS/$tool" | grep -v compgen |
		grep -oE '(^|[ |])-[A-Za-z0-9]( |\)|$)' | tr -dc 'A-Za-z0-9\n'); do
		grep -q " -$short " "$BATS_TEST_TMPDIR/help" || { echo "completions/$tool knows -$short, $tool --help does not"; return 1; }
	done
}

@test "completion: chatd offers exactly the options of chatd --help" {
	check_options chatd
}

@test "completion: chat-post offers exactly the options of chat-post --help" {
	check_options chat-post
}

@test "completion: chat-listen offers exactly the options of chat-listen --help" {
	check_options chat-listen
}

@test "completion: chat-bench offers exactly the options of chat-bench --help" {
	check_options chat-bench
}

@test "completion: a partial option completes to the matching ones" {
	run complete_line chatd "chatd --max-conn"
	[ "$output" = $'--max-connections\n--max-connections-per-ip' ]
	run complete_line chat-listen "chat-listen --fa"
	[ "$output" = --fail-on-gap ]
}

@test "completion: file names after the options that take a file" {
	touch "$BATS_TEST_TMPDIR/secret.jwt" "$BATS_TEST_TMPDIR/keys.txt" "$BATS_TEST_TMPDIR/state.pos"
	mkdir "$BATS_TEST_TMPDIR/sub"
	for opt in --jwt-secret-file --api-key-file --tls-cert --tls-key; do
		run complete_line chatd "chatd -l :3000 $opt se"
		[ "$output" = secret.jwt ]
		run complete_line chatd "chatd $opt=ke" # --opt=FILE
		[ "$output" = keys.txt ]
	done
	run complete_line chatd "chatd --tls-cert "
	[ "$output" = $'keys.txt\nsecret.jwt\nstate.pos\nsub' ]
	for opt in -f --state-file; do
		run complete_line chat-listen "chat-listen -c room $opt st"
		[ "$output" = state.pos ]
	done
	for opt in -f --file --cacert; do
		run complete_line chat-post "chat-post -c room $opt st"
		[ "$output" = state.pos ]
	done
}

@test "completion: the choices of --log-format, --mode and --content-type" {
	run complete_line chatd "chatd --log-format "
	[ "$output" = $'json\ntext' ]
	run complete_line chatd "chatd --log-format=j"
	[ "$output" = json ]
	run complete_line chat-bench "chat-bench -m "
	[ "$output" = $'fanout\nidle\nlatency\nthroughput' ]
	run complete_line chat-bench "chat-bench --mode t"
	[ "$output" = throughput ]
	run complete_line chat-bench "chat-bench --content-type text"
	[ "$output" = text/plain ]
}

@test "completion: --pid offers process ids; a message and free values are left alone" {
	run complete_line chat-bench "chat-bench --pid $$"
	grep -qx "$$" <<<"$output"
	run complete_line chat-post "chat-post -c room hel"
	[ -z "$output" ]
	run complete_line chat-post "chat-post -c "
	[ -z "$output" ]
	run complete_line chatd "chatd --listen "
	[ -z "$output" ]
}
