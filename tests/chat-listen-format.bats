#!/usr/bin/env bats
# chat-listen's output and access: --format templates and their errors, -0 (NUL-separated
# records), colour only on a terminal or when asked, --token against a chatd that checks
# tokens (a refusal exits 77 with chatd's reason, the token never shows), and wss:// with
# --cacert, -k, or neither (a clear certificate error).

load helpers

# envelope CHAN: the one message stored in CHAN, as chatd sent it (from GET /history).
envelope() {
	curl -s "$CHATD_URL/history/$1" | sed -n 's/^.*"messages":\[\(.*\)\]}$/\1/p'
}

# member NAME JSON: a number or string member of a flat JSON object, unquoted.
member() {
	sed -n "s/.*\"$1\":\"\\{0,1\\}\\([^\",]*\\).*/\\1/p" <<<"$2"
}

jwt() { "$PY" "$TESTS_DIR/jwt.py" "$SECRET" "$@"; }

# start_auth: chatd that checks JWTs signed with $SECRET.
start_auth() {
	SECRET=$BATS_TEST_TMPDIR/secret
	head -c 32 /dev/urandom | base64 >"$SECRET"
	start_chatd --jwt-secret-file "$SECRET" "$@"
}

@test "--format fills in every field: local time, raw ms, channel, seq, epoch, message, envelope" {
	start_chatd
	TZ=IST-5:30 listen -u "$CHATD_URL" -c fmt -n 1 \
		--format '{ts}|{ts_ms}|{chan}|{seq}|{epoch}|{sender}|{msg}|{json}'
	chat-post -u "$CHATD_URL" -c fmt 'hello there'
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	local env ms epoch when
	env=$(envelope fmt)
	ms=$(member ts "$env")
	epoch=$(member epoch "$env")
	[ -n "$ms" ]
	[ -n "$epoch" ]
	when=$(TZ=IST-5:30 date -d "@$((ms / 1000))" '+%Y-%m-%d %H:%M:%S')
	[ "$(cat "$BG_OUT")" = "$when|$ms|fmt|1|$epoch||hello there|$env" ]
}

@test "--format: {msg} is a string's text (newlines kept) or compact JSON; {{ }} \\t \\n \\\\ are literal" {
	start_chatd
	listen -u "$CHATD_URL" -c kinds -n 3 --format '{{{chan}}}\t{msg}\\\n--'
	chat-post -u "$CHATD_URL" -c kinds "$(printf 'two\nlines')"
	chat-post -u "$CHATD_URL" -c kinds -j '{ "a" : [1, 2.5, "x"] }'
	chat-post -u "$CHATD_URL" -c kinds -j null
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	[ "$(cat "$BG_OUT")" = "{kinds}	two
lines\\
--
{kinds}	{\"a\":[1,2.5,\"x\"]}\\
--
{kinds}	null\\
--" ]
}

@test "--format errors are usage errors that name the fault; nothing connects" {
	local port
	port=$(free_port) # nothing listens there: a usage error must come first
	run timeout 10 chat-listen -u "http://127.0.0.1:$port" --format '{ts} {chan} {who}: {msg}'
	[ "$status" -eq 64 ]
	[ "$output" = 'chat-listen: --format: unknown field {who}; the fields are {chan} {seq} {epoch} {ts} {ts_ms} {sender} {msg} {json}' ]
	run timeout 10 chat-listen -u "http://127.0.0.1:$port" --format '{msg'
	[ "$status" -eq 64 ]
	[ "$output" = 'chat-listen: --format: "{" without its "}" (write {{ for a literal brace)' ]
	run timeout 10 chat-listen -u "http://127.0.0.1:$port" --format 'a } b'
	[ "$status" -eq 64 ]
	[ "$output" = 'chat-listen: --format: "}" without its "{" (write }} for a literal brace)' ]
	run timeout 10 chat-listen -u "http://127.0.0.1:$port" --format '\e[1m{msg}'
	[ "$status" -eq 64 ]
	[ "$output" = 'chat-listen: --format: unknown escape \e (the escapes are \t, \n and \\)' ]
	run timeout 10 chat-listen -u "http://127.0.0.1:$port" --format '{msg}\'
	[ "$status" -eq 64 ]
	[ "$output" = 'chat-listen: --format: "\" at the end (write \\ for a backslash)' ]
	run timeout 10 chat-listen -u "http://127.0.0.1:$port" --json --format '{msg}'
	[ "$status" -eq 64 ]
	[ "$output" = "chat-listen: --json and --format do not go together (--format '{json}' prints the envelopes)" ]
	run timeout 10 chat-listen -u "http://127.0.0.1:$port" --color=sometimes
	[ "$status" -eq 64 ]
	[ "$output" = 'chat-listen: --color takes auto, always or never, not "sometimes"' ]
}

@test "-0 ends each record with a NUL, newlines inside a message kept, for xargs -0" {
	start_chatd
	listen -u "$CHATD_URL" -c nul -n 3 -0
	chat-post -u "$CHATD_URL" -c nul one "$(printf 'two\nlines')" 'three'
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	[ "$(od -An -c "$BG_OUT" | tr -s ' \n' ' ')" = ' o n e \0 t w o \n l i n e s \0 t h r e e \0 ' ]
	run xargs -0 -n 1 printf '<%s>\n' <"$BG_OUT"
	[ "$output" = "<one>
<two
lines>
<three>" ]
	# with --format and --json too
	listen -u "$CHATD_URL" -c nul -n 1 --null --format '{chan}:{msg}'
	local bg2_pid=$BG_PID bg2_out=$BG_OUT
	listen -u "$CHATD_URL" -c nul -n 1 -0 --json
	chat-post -u "$CHATD_URL" -c nul four
	finished "$bg2_pid"
	[ "$(od -An -c "$bg2_out" | tr -s ' \n' ' ')" = ' n u l : f o u r \0 ' ]
	finished "$BG_PID"
	[ "$(tail -c 1 "$BG_OUT" | od -An -tx1 | tr -d ' ')" = 00 ]
	[ "$(tr '\0' '\n' <"$BG_OUT")" = "$(envelope nul | sed 's/},{/}\n{/g' | tail -n 1)" ]
}

@test "colour: never when piped (whatever TERM says), escapes with --color=always" {
	start_chatd
	TERM=xterm-256color listen -u "$CHATD_URL" -c hue -n 1 --format '{ts} {chan} {sender}: {msg}'
	local bg2_pid=$BG_PID bg2_out=$BG_OUT
	TZ=UTC listen -u "$CHATD_URL" -c hue -n 1 --format '{ts} {chan} {sender}: {msg}' --color=always
	chat-post -u "$CHATD_URL" -c hue 'in colour'
	finished "$bg2_pid"
	finished "$BG_PID"
	local ms when
	ms=$(member ts "$(envelope hue)")
	when=$(TZ=UTC date -d "@$((ms / 1000))" '+%Y-%m-%d %H:%M:%S')
	[ "$(cat "$bg2_out")" = "$when hue : in colour" ]
	[ -z "$(grep $'\e' "$bg2_out")" ]
	# dim time, cyan channel, each reset; an empty sender gets no escapes
	[ "$(cat "$BG_OUT")" = $'\e[2m'"$when"$'\e[0m \e[36mhue\e[0m : in colour' ]
}

@test "colour: --color=auto colours a terminal, unless NO_COLOR is set or TERM is dumb; never leaves none" {
	start_chatd
	# script(1) gives chat-listen a terminal as standard output
	local cmd="chat-listen -u $CHATD_URL -c tty -n 1 --format '{chan}: {msg}'"
	TERM=xterm script -qfec "$cmd" /dev/null >"$BATS_TEST_TMPDIR/auto" 3>&- &
	local auto=$!
	STARTED_PIDS+=("$auto")
	NO_COLOR=1 TERM=xterm script -qfec "$cmd" /dev/null >"$BATS_TEST_TMPDIR/nocolor" 3>&- &
	STARTED_PIDS+=("$!")
	TERM=dumb script -qfec "$cmd" /dev/null >"$BATS_TEST_TMPDIR/dumb" 3>&- &
	STARTED_PIDS+=("$!")
	TERM=xterm script -qfec "$cmd --color=never" /dev/null >"$BATS_TEST_TMPDIR/never" 3>&- &
	STARTED_PIDS+=("$!")
	# all four are subscribed once a message posted now reaches each
	wait_until 10 sh -c "chat-post -u $CHATD_URL -c tty hi; for f in auto nocolor dumb never; do grep -q hi $BATS_TEST_TMPDIR/\$f || exit 1; done"
	finished "$auto"
	[ "$(tr -d '\r' <"$BATS_TEST_TMPDIR/auto")" = $'\e[36mtty\e[0m: hi' ]
	for f in nocolor dumb never; do
		[ "$(tr -d '\r' <"$BATS_TEST_TMPDIR/$f")" = 'tty: hi' ] || { echo "$f: $(od -c "$BATS_TEST_TMPDIR/$f")"; false; }
	done
}

@test "--token reads from a chatd that checks tokens; {sender} is the publisher, in a colour of its own" {
	start_auth
	local reader writer
	reader=$(jwt '{"sub":"rita","subscribe":["room.*"]}')
	writer=$(jwt '{"sub":"ann","publish":["room.*"]}')
	listen -u "$CHATD_URL" -c room.a -n 2 --token "$reader" --format '{sender}: {msg}'
	local bg2_pid=$BG_PID bg2_out=$BG_OUT
	CHAT_TOKEN=$reader listen -u "$CHATD_URL" -c room.a -n 1 --format '{sender}: {msg}' --color=always
	chat-post -u "$CHATD_URL" -c room.a --token "$writer" 'hello'
	chat-post -u "$CHATD_URL" -c room.a --token "$writer" 'again'
	finished "$bg2_pid"
	[ "$status" -eq 0 ]
	[ "$(cat "$bg2_out")" = "ann: hello
ann: again" ]
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	[[ "$(cat "$BG_OUT")" =~ ^$'\e'\[1\;3[1-5]mann$'\e'\[0m:\ hello$ ]]
	# the token went in a header: neither the URL nor any line shows it
	[ -z "$(grep -F "${reader##*.}" "$bg2_out" "$bg2_out.err" "$BG_OUT" "$BG_OUT.err")" ]
	grep -q "subscribed url=ws://127.0.0.1:$CHATD_PORT/ws?chan=room.a\$" "$bg2_out.err"
}

@test "a refused token exits 77 with chatd's reason, without retrying; the token is never shown; others are still served" {
	start_auth
	local reader other
	reader=$(jwt '{"sub":"rita","subscribe":["room.*"]}')
	run timeout 10 chat-listen -u "$CHATD_URL" -c room.a
	[ "$status" -eq 77 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *" ERROR chat-listen: server refused the subscription url=ws://127.0.0.1:$CHATD_PORT/ws?chan=room.a reason=\"authentication required: send a token as Authorization: Bearer TOKEN, ?token=TOKEN, or \"token\" in the JSON body (close 4401)\" hint=\"no token was given (--token, \$CHAT_TOKEN)\"" ]]
	run timeout 10 chat-listen -v -u "$CHATD_URL" -c room.a -c secret --token "$reader"
	[ "$status" -eq 77 ]
	[[ "$output" == *" ERROR chat-listen: server refused the subscription url=ws://127.0.0.1:$CHATD_PORT/ws?chan=room.a&chan=secret reason=\"forbidden: this token does not allow reading channel secret (close 4403)\"" ]]
	[ "$(grep -c connecting <<<"$output")" -eq 1 ]
	[[ "$output" != *"${reader##*.}"* ]]
	other=$BATS_TEST_TMPDIR/other
	head -c 32 /dev/urandom | base64 >"$other"
	local forged
	forged=$("$PY" "$TESTS_DIR/jwt.py" "$other" '{"subscribe":["*"]}')
	CHAT_TOKEN=$forged run timeout 10 chat-listen -v -u "$CHATD_URL" -c room.a
	[ "$status" -eq 77 ]
	[[ "$output" == *'reason="invalid token: token signature does not verify (close 4401)"' ]]
	[[ "$output" != *"${forged##*.}"* ]]
	# a token that cannot go in a header is a usage error that does not repeat it
	run timeout 10 chat-listen -u "$CHATD_URL" --token "$reader two"
	[ "$status" -eq 64 ]
	[ "$output" = 'chat-listen: the token (--token, $CHAT_TOKEN) may only hold visible ASCII characters, no spaces or control characters' ]
	# the server still serves an honest reader
	listen -u "$CHATD_URL" -c room.a -n 1 --token "$reader"
	chat-post -u "$CHATD_URL" -c room.a --token "$(jwt '{"publish":["*"]}')" still
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	[ "$(cat "$BG_OUT")" = still ]
}

@test "a token that expires while connected ends it with 77, not a reconnect loop" {
	start_auth
	local soon
	soon=$(jwt "{\"subscribe\":[\"*\"],\"exp\":$(($(date +%s) + 3))}")
	listen -u "$CHATD_URL" -c x --token "$soon"
	finished "$BG_PID"
	[ "$status" -eq 77 ]
	grep -q 'ERROR chat-listen: server refused the subscription url=ws://127.0.0.1:'"$CHATD_PORT"'/ws?chan=x reason="token expired (close 4401)"$' "$BG_OUT.err"
	[ "$(grep -c connecting "$BG_OUT.err")" -eq 1 ]
}


@test "wss: --cacert trusts the server's certificate, -k skips the check, neither fails clearly with 69" {
	start_tls
	local ca=$BATS_TEST_TMPDIR/cert.pem
	listen -u "$CHATD_URL" -c t -n 1 --cacert "$ca"
	local bg2_pid=$BG_PID bg2_out=$BG_OUT
	listen -u "wss://127.0.0.1:$CHATD_PORT" -c t -n 1 -k --format '{chan}: {msg}'
	chat-post -u "$CHATD_URL" -c t --cacert "$ca" 'over tls'
	finished "$bg2_pid"
	[ "$status" -eq 0 ]
	[ "$(cat "$bg2_out")" = 'over tls' ]
	grep -q "subscribed url=wss://127.0.0.1:$CHATD_PORT/ws?chan=t\$" "$bg2_out.err"
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	[ "$(cat "$BG_OUT")" = 't: over tls' ]
	run timeout 10 chat-listen -u "$CHATD_URL" -c t
	[ "$status" -eq 69 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *" ERROR chat-listen: cannot connect url=wss://127.0.0.1:$CHATD_PORT/ws?chan=t reason=\"TLS: the server's certificate is not trusted: self-signed certificate\" hint=\"--cacert FILE trusts the authority that signed it, -k skips the check\"" ]]
	# another authority's certificate is no better
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$BATS_TEST_TMPDIR/other.key" \
		-out "$BATS_TEST_TMPDIR/other.pem" -days 2 -subj "/CN=other" 2>/dev/null
	run timeout 10 chat-listen -u "$CHATD_URL" -c t --cacert "$BATS_TEST_TMPDIR/other.pem"
	[ "$status" -eq 69 ]
	[[ "$output" == *"reason=\"TLS: the server's certificate is not trusted: self-signed certificate\""* ]]
	run timeout 10 chat-listen -u "$CHATD_URL" -c t --cacert "$BATS_TEST_TMPDIR/missing.pem"
	[ "$status" -eq 66 ]
	[ "$output" = "chat-listen: cannot read --cacert $BATS_TEST_TMPDIR/missing.pem: No such file or directory" ]
}

@test "wss with a token: the header goes over TLS too" {
	SECRET=$BATS_TEST_TMPDIR/secret
	head -c 32 /dev/urandom | base64 >"$SECRET"
	start_tls --jwt-secret-file "$SECRET"
	local reader
	reader=$(jwt '{"subscribe":["*"]}')
	listen -u "$CHATD_URL" -c s -n 1 --cacert "$BATS_TEST_TMPDIR/cert.pem" --token "$reader"
	chat-post -u "$CHATD_URL" -c s --cacert "$BATS_TEST_TMPDIR/cert.pem" --token "$(jwt '{"sub":"tls","publish":["*"]}')" secure
	finished "$BG_PID"
	[ "$status" -eq 0 ]
	[ "$(cat "$BG_OUT")" = secure ]
	run timeout 10 chat-listen -u "$CHATD_URL" -c s -k
	[ "$status" -eq 77 ]
	[[ "$output" == *'reason="authentication required: '*'(close 4401)"'* ]]
}
