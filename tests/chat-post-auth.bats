#!/usr/bin/env bats
# chat-post: --file, --token / CHAT_TOKEN, and https with --cacert or -k.

load helpers

@test "--file posts a whole file as one message (text, or JSON with -j); - is standard input" {
	start_chatd
	printf 'line one\nline two\n' >"$BATS_TEST_TMPDIR/notes.txt"
	chat-post -u "$CHATD_URL" -c f --file "$BATS_TEST_TMPDIR/notes.txt"
	printf '{"a":[1,2]}' | chat-post -u "$CHATD_URL" -c f -j --file -
	run curl -s "$CHATD_URL/history/f"
	[[ "$output" == *'"msg":"line one\nline two\n"}'*'"msg":{"a":[1,2]}}]}' ]]
	run chat-post -u "$CHATD_URL" --file "$BATS_TEST_TMPDIR/missing"
	[ "$status" -eq 66 ]
	[[ "$output" == *"missing: No such file or directory"* ]]
	run chat-post -u "$CHATD_URL" --file "$BATS_TEST_TMPDIR/notes.txt" extra
	[ "$status" -eq 64 ]
}

@test "--token and CHAT_TOKEN authenticate; a refused token says why and exits 65; the token is never printed" {
	local secret=$BATS_TEST_TMPDIR/secret
	head -c 32 /dev/urandom | base64 >"$secret"
	start_chatd --jwt-secret-file "$secret"
	local tok
	tok=$("$PY" "$TESTS_DIR/jwt.py" "$secret" '{"sub":"cron","publish":["ops"]}')
	run chat-post -v -u "$CHATD_URL" -c ops --token "$tok" 'disk full'
	[ "$status" -eq 0 ]
	[ -z "$(grep -F "${tok##*.}" <<<"$output")" ]
	CHAT_TOKEN=$tok run chat-post -u "$CHATD_URL" -c ops 'from env'
	[ "$status" -eq 0 ]
	run chat-post -u "$CHATD_URL" -c ops 'no token'
	[ "$status" -eq 65 ]
	[[ "$output" == "chat-post: argument 1: 401 authentication required: "* ]]
	run chat-post -u "$CHATD_URL" -c other --token "$tok" 'forbidden'
	[ "$status" -eq 65 ]
	[[ "$output" == "chat-post: argument 1: 403 forbidden: this token does not allow publishing to channel other" ]]
	run curl -s "$CHATD_URL/history/ops?token=$("$PY" "$TESTS_DIR/jwt.py" "$secret" '{"subscribe":["*"]}')"
	[[ "$output" == *'"sender":"cron","msg":"disk full"}'*'"sender":"cron","msg":"from env"}]}' ]]
}

@test "https: --cacert trusts the server's certificate, -k skips the check, neither fails clearly" {
	start_tls
	local port=$CHATD_PORT
	run chat-post -u "https://127.0.0.1:$port" -c t --cacert "$BATS_TEST_TMPDIR/cert.pem" 'trusted'
	[ "$status" -eq 0 ]
	run chat-post -u "https://127.0.0.1:$port" -c t -k 'unchecked'
	[ "$status" -eq 0 ]
	run chat-post -u "https://127.0.0.1:$port" -c t 'untrusted'
	[ "$status" -eq 69 ]
	[[ "$output" == *"certificate"* ]]
	run curl -sk "https://127.0.0.1:$port/history/t"
	[[ "$output" == *'"msg":"trusted"}'*'"msg":"unchecked"}]}' ]]
}
