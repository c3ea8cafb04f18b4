#!/usr/bin/env bats
# Authentication and per-channel permissions: JWT (HS256 only) and API keys, on every
# publish and read path. Tokens are minted by tests/jwt.py (Python's hmac), not by chatd.

load helpers

setup() {
	SECRET=$BATS_TEST_TMPDIR/secret
	head -c 32 /dev/urandom | base64 >"$SECRET"
	KEYS=$BATS_TEST_TMPDIR/keys
	cat >"$KEYS" <<-EOF
	# scripts
	k-cron-0123456789abcdef publish=alerts,ops.* name=cron
	k-read-0123456789abcdef subscribe=*
	EOF
	ANN=$(jwt '{"sub":"ann","publish":["room.*"],"subscribe":["room.*"],"exp":4000000000}')
}

jwt() { "$PY" "$TESTS_DIR/jwt.py" "$SECRET" "$@"; }

# apost TOKEN JSON [PATH]: POST with a bearer token; prints "STATUS BODY"
apost() {
	curl -s -o "$BATS_TEST_TMPDIR/post.body" -w '%{http_code}' -H "Authorization: Bearer $1" \
		--data-binary "$2" "$CHATD_URL${3:-/}"
	echo " $(cat "$BATS_TEST_TMPDIR/post.body")"
}

# honest: an allowed client still publishes and reads
honest() {
	run apost "$ANN" '{"chan":"room.ok","msg":"still fine"}'
	[[ "$output" == '200 {"ok":true,"chan":"room.ok",'* ]]
}

@test "refused tokens: 401 with WWW-Authenticate and the reason; an honest client still works" {
	start_chatd --jwt-secret-file "$SECRET" --api-key-file "$KEYS"
	local other=$BATS_TEST_TMPDIR/other
	head -c 32 /dev/urandom | base64 >"$other"
	local cases=(
		"|authentication required: send a token as Authorization: Bearer TOKEN, ?token=TOKEN, or \\\"token\\\" in the JSON body"
		"$("$PY" "$TESTS_DIR/jwt.py" "$other" '{"publish":["*"]}')|invalid token: token signature does not verify"
		"$(jwt '{"publish":["*"],"exp":1000000000}')|invalid token: token expired"
		"$(jwt '{"publish":["*"],"nbf":4000000000}')|invalid token: token not valid yet (nbf is in the future)"
		"$(jwt '{"publish":["*"]}' --alg none --unsigned)|invalid token: token algorithm \\\"none\\\" is not accepted; chatd takes HS256 only"
		"$(jwt '{"publish":["*"]}' --alg HS512)|invalid token: token algorithm \\\"HS512\\\" is not accepted; chatd takes HS256 only"
		"$(jwt '{"publish":["*"]}' --alg RS256)|invalid token: token algorithm \\\"RS256\\\" is not accepted; chatd takes HS256 only"
		"$(jwt '{"publish":"*"}')|invalid token: malformed token: publish and subscribe must be arrays of channel patterns"
		"not.a.jwt|invalid token: malformed token: its header and payload must be base64url JSON objects"
		"k-cron-0123456789abcdeX|invalid token: unknown API key"
	)
	for c in "${cases[@]}"; do
		local tok=${c%%|*} why=${c#*|}
		run curl -s -i -H "Authorization: Bearer $tok" -d '{"chan":"room.a","msg":1}' "$CHATD_URL/"
		[[ "$output" == "HTTP/1.1 401 "* ]] || { echo "case: $why"; echo "$output"; false; }
		grep -qi '^www-authenticate: Bearer realm="chatd"' <<<"$output"
		[[ "$output" == *"{\"ok\":false,\"error\":\"$why\"}" ]] || { echo "case: $why"; echo "$output"; false; }
		honest
	done
	# nothing was published by the refused ones
	run curl -s "$CHATD_URL/history/room.a?token=$ANN"
	[[ "$output" == *'"messages":[]}' ]]
	# tokens never reach the log
	[ -z "$(grep -F "${ANN##*.}" "$CHATD_LOG")" ]
	[ -z "$(grep -F k-cron "$CHATD_LOG")" ]
}

@test "a forbidden channel is 403 on every publish and read path; WebSockets get 4403 or an error frame" {
	start_chatd --jwt-secret-file "$SECRET"
	run apost "$ANN" '{"chan":"other","msg":1}'
	[ "$output" = '403 {"ok":false,"error":"forbidden: this token does not allow publishing to channel other"}' ]
	run apost "$ANN" 'raw' /pub/other
	[ "$output" = '403 {"ok":false,"error":"forbidden: this token does not allow publishing to channel other"}' ]
	run curl -s -w ' %{http_code}' -d "{\"chan\":\"other\",\"msg\":1,\"token\":\"$ANN\"}" "$CHATD_URL/"
	[ "$output" = '{"ok":false,"error":"forbidden: this token does not allow publishing to channel other"} 403' ]
	run curl -s -w ' %{http_code}' "$CHATD_URL/history/other?token=$ANN"
	[ "$output" = '{"ok":false,"error":"forbidden: this token does not allow reading channel other"} 403' ]
	run curl -s -w ' %{http_code}' "$CHATD_URL/events?chan=room.a&chan=other&token=$ANN"
	[ "$output" = '{"ok":false,"error":"forbidden: this token does not allow reading channel other"} 403' ]
	run ws "ws://127.0.0.1:$CHATD_PORT/ws?chan=room.a&chan=other&token=$ANN" --timeout 3
	[ "$output" = 'CLOSE 4403 forbidden: this token does not allow reading channel other' ]
	run ws "ws://127.0.0.1:$CHATD_PORT/ws/room.a" --timeout 3
	[[ "$output" == 'CLOSE 4401 authentication required: '* ]]
	run ws "ws://127.0.0.1:$CHATD_PORT/ws/room.a?token=$ANN" --send '{"chan":"other","msg":1}' --count 1 --timeout 3
	[ "${lines[0]}" = '{"type":"error","error":"forbidden: this token does not allow publishing to channel other"}' ]
	honest
}

@test "the token's sub is the envelope's sender, and a sender in the body cannot forge it" {
	start_chatd --jwt-secret-file "$SECRET"
	local ready=$BATS_TEST_TMPDIR/ready
	bg ws "ws://127.0.0.1:$CHATD_PORT/ws/room.s?token=$ANN" --count 3 --timeout 5 --ready "$ready"
	wait_until 5 test -e "$ready"
	apost "$ANN" '{"chan":"room.s","msg":"hi","sender":"mallory"}'
	ws "ws://127.0.0.1:$CHATD_PORT/ws/room.x?token=$ANN" --send '{"chan":"room.s","msg":"ws","sender":"mallory"}' --timeout 1 >/dev/null
	local named
	named=$(jwt '{"sub":"a \"quoted\" name","publish":["room.*"]}')
	apost "$named" '{"chan":"room.s","msg":"q"}'
	finished "$BG_PID"
	run grep -c '"sender":"ann","msg":"hi"}$' "$BG_OUT"
	[ "$output" = 1 ]
	run grep -c '"sender":"ann","msg":"ws"}$' "$BG_OUT"
	[ "$output" = 1 ]
	run grep -c '"sender":"a \\"quoted\\" name","msg":"q"}$' "$BG_OUT"
	[ "$output" = 1 ]
	[ -z "$(grep mallory "$BG_OUT")" ]
}

@test "API keys: publish and read by pattern, named as the sender" {
	start_chatd --api-key-file "$KEYS"
	run apost k-cron-0123456789abcdef '{"chan":"ops.db","msg":"disk"}'
	[[ "$output" == '200 {"ok":true,"chan":"ops.db","seq":1,'* ]]
	run apost k-cron-0123456789abcdef '{"chan":"room","msg":1}'
	[ "$output" = '403 {"ok":false,"error":"forbidden: this token does not allow publishing to channel room"}' ]
	run curl -s "$CHATD_URL/history/ops.db?token=k-read-0123456789abcdef"
	[[ "$output" == *'"sender":"cron","msg":"disk"}]}' ]]
	run curl -s -w ' %{http_code}' "$CHATD_URL/history/ops.db?token=k-cron-0123456789abcdef"
	[[ "$output" == *' 403' ]]
	# JWTs are not accepted without a secret
	run apost "$ANN" '{"chan":"room.a","msg":1}'
	[ "$output" = '401 {"ok":false,"error":"invalid token: JWTs are not accepted here (chatd has no --jwt-secret-file)"}' ]
}

@test "a WebSocket or SSE stream ends with 4401 when its token expires" {
	start_chatd --jwt-secret-file "$SECRET"
	local soon
	soon=$(jwt "{\"subscribe\":[\"*\"],\"exp\":$(($(date +%s) + 2))}")
	run ws "ws://127.0.0.1:$CHATD_PORT/ws/x?token=$soon" --timeout 8
	[ "$output" = 'CLOSE 4401 token expired' ]
	soon=$(jwt "{\"subscribe\":[\"*\"],\"exp\":$(($(date +%s) + 2))}")
	run curl -sN --max-time 12 "$CHATD_URL/events?chan=x&token=$soon"
	[[ "$output" == *'event: close'*'data: {"type":"close","code":4401}'* ]]
}

@test "safe by default: no authentication means loopback or a UNIX socket only" {
	run chatd -l 0.0.0.0:1
	[ "$status" -eq 64 ]
	[[ "$output" == *"refusing to serve 0.0.0.0:1 without authentication"* ]]
	[[ "$output" == *"--jwt-secret-file FILE or --api-key-file FILE, or --no-auth"* ]]
	run chatd -l :1
	[ "$status" -eq 64 ]
	run chatd -l 0.0.0.0:1 --no-auth --jwt-secret-file "$SECRET"
	[ "$status" -eq 64 ]
	[[ "$output" == *"--no-auth contradicts"* ]]
	local short=$BATS_TEST_TMPDIR/short
	echo tooshort >"$short"
	run chatd --jwt-secret-file "$short"
	[ "$status" -eq 64 ]
	[[ "$output" == *"the secret is 8 bytes; HS256 wants at least 32"* ]]
	printf 'short publish=x\n' >"$short"
	run chatd --api-key-file "$short"
	[ "$status" -eq 64 ]
	[[ "$output" == *"$short:1: an API key needs at least 16 characters"* ]]
	# --no-auth passes the check: it gets as far as binding (tests bind loopback only, so
	# an address this machine does not have shows it)
	run chatd -l 192.0.2.1:1 --no-auth
	[ "$status" -eq 69 ]
	[[ "$output" == *"cannot listen on 192.0.2.1:1"* ]]
}

@test "idempotency keys belong to the user: the same key from two users publishes twice, from one user once" {
	start_chatd --jwt-secret-file "$SECRET"
	local bob
	bob=$(jwt '{"sub":"bob","publish":["room.*"],"subscribe":["room.*"]}')
	run curl -s -H "Authorization: Bearer $ANN" -H 'Idempotency-Key: 1' -d '{"chan":"room.k","msg":"ann"}' "$CHATD_URL/"
	[[ "$output" == '{"ok":true,"chan":"room.k","seq":1,'* ]]
	run curl -s -H "Authorization: Bearer $bob" -H 'Idempotency-Key: 1' -d '{"chan":"room.k","msg":"bob"}' "$CHATD_URL/"
	[[ "$output" == '{"ok":true,"chan":"room.k","seq":2,'* ]]
	[[ "$output" != *duplicate* ]]
	run curl -s -H "Authorization: Bearer $ANN" -H 'Idempotency-Key: 1' -d '{"chan":"room.k","msg":"ann"}' "$CHATD_URL/"
	[[ "$output" == '{"ok":true,"chan":"room.k","seq":1,'*'"duplicate":true}' ]]
}
