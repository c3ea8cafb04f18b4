#!/usr/bin/env bats
# The chat page (GET /) in a real browser: Debian's headless Chromium, driven by
# tests/browser/browse.mjs (playwright-core, installed by `npm ci` into tests/browser/).
# The page shows what others publish and publishes what is typed into it, across nodes;
# it reconnects and shows what it missed after a restart or a network drop, or says what
# could not be recovered; and it shows everything as text.

load helpers
bats_require_minimum_version 1.5.0

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export CHROMIUM
BROWSER_DIR=$TESTS_DIR/browser

# need_browser: skip when Chromium is not installed; install playwright-core (npm ci)
# the first time.
need_browser() {
	[ -x "$CHROMIUM" ] || skip "no Chromium at $CHROMIUM (Debian: apt-get install chromium; or set CHROMIUM)"
	[ -d "$BROWSER_DIR/node_modules/playwright-core" ] && return 0
	command -v npm >/dev/null || { echo "npm is needed to install playwright-core" >&2; return 1; }
	npm ci --prefix "$BROWSER_DIR" --no-audit --no-fund >"$BATS_TEST_TMPDIR/npm.log" 2>&1 || {
		echo "npm ci --prefix $BROWSER_DIR failed:" >&2
		cat "$BATS_TEST_TMPDIR/npm.log" >&2
		return 1
	}
}

# browse STEP...: run the browser steps (see tests/browser/browse.mjs); what they print
# is in $output and $lines, and what went wrong is shown if the test fails.
browse() {
	run --separate-stderr node "$BROWSER_DIR/browse.mjs" "$@"
	[ -z "$stderr" ] || echo "$stderr" >&2
	[ "$status" -eq 0 ]
}

# browse_bg STEP...: the same in the background (BG_PID, BG_OUT), for tests that act
# while the page waits; browse_done waits for it and sets $output and $lines.
browse_bg() {
	bg node "$BROWSER_DIR/browse.mjs" "$@"
}
browse_done() {
	local st=0
	wait "$BG_PID" || st=$?
	cat "$BG_OUT.err" >&2
	output=$(cat "$BG_OUT")
	mapfile -t lines <"$BG_OUT"
	[ "$st" -eq 0 ]
}

# page_at FILE: wait until the background page has got to "ready FILE" (fails at once if
# it stopped instead).
page_at() {
	wait_until 30 at_or_gone "$1"
	[ -e "$1" ] || { cat "$BG_OUT.err" >&2; return 1; }
}
at_or_gone() { [ -e "$1" ] || gone "$BG_PID"; }

# json_of PYTHON_EXPR ARG: the expression (which may use sys.argv[1]) as JSON
json_of() {
	"$PY" -c "import json, sys; print(json.dumps($1))" "$2"
}

# chatd_on PORT [ARGS...]: start chatd on PORT (again, after a stop), once it answers.
chatd_on() {
	local port=$1
	shift
	chatd --listen "127.0.0.1:$port" "$@" 2>>"$BATS_TEST_TMPDIR/chatd.$port.log" 3>&- &
	CHATD_PID=$!
	STARTED_PIDS+=("$CHATD_PID")
	wait_until 5 curl -s -o /dev/null "http://127.0.0.1:$port/healthz"
}

@test "the page's script has the hash its Content-Security-Policy allows" {
	run "$PY" - "$TESTS_DIR/../cmd/chatd/page.html" <<-'EOF'
	import base64, hashlib, re, sys
	page = open(sys.argv[1], encoding="utf-8").read()
	scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
	assert len(scripts) == 1, "one inline script, no other"
	want = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
	allowed = re.search(r"script-src 'sha256-([^']*)'", page).group(1)
	if allowed != want:
	    sys.exit(f"page.html: the script changed; put script-src 'sha256-{want}' in its CSP")
	EOF
	[ "$status" -eq 0 ] || { echo "$output" >&2; false; }
}

@test "messages posted with curl appear in the page, with their time and sender" {
	need_browser
	start_chatd
	post '{"chan":"b.curl","msg":"posted before the page opened"}' >/dev/null
	local ready=$BATS_TEST_TMPDIR/ready done=$BATS_TEST_TMPDIR/done
	browse_bg open "$CHATD_URL/?chan=b.curl" state live see 'before the page' ready "$ready" \
		await "$done" see 'hi from bob' log \
		eval "[...document.querySelectorAll('.log:not([hidden]) li.msg time')].map(t => t.textContent).join(' ')"
	page_at "$ready"
	run post '{"chan":"b.curl","msg":"plain text from curl"}'
	local ts=${output##*\"ts\":}
	ts=${ts%\}}
	post '{"chan":"b.curl","msg":{"name":"bob","text":"hi from bob"}}' >/dev/null
	touch "$done"
	browse_done
	[ "${lines[0]}" = "msg posted before the page opened" ]
	[ "${lines[1]}" = "msg plain text from curl" ]
	[ "${lines[2]}" = "msg bob: hi from bob" ]
	[ "${#lines[@]}" -eq 4 ]
	# each message shows the time chatd took it (HH:MM in the browser's time zone)
	[[ "${lines[3]}" == *" $(date -d "@$((ts / 1000))" +%H:%M) "* ]]
}

@test "a message typed in the page reaches chat-listen" {
	need_browser
	start_chatd
	listen -u "$CHATD_URL" -c b.typed -n 1
	browse open "$CHATD_URL/?chan=b.typed" state live name ann say 'hello from the page' \
		see 'hello from the page' log
	[ "$output" = "msg ann: hello from the page" ]
	wait "$BG_PID"
	[ "$(cat "$BG_OUT")" = '{"name":"ann","text":"hello from the page"}' ]
}

@test "two pages on two chatd nodes sharing Redis see each other's messages" {
	need_browser
	start_redis
	start_chatd --redis "$REDIS_URL"
	local a=$CHATD_URL
	start_chatd --redis "$REDIS_URL"
	local b=$CHATD_URL
	wait_healthy "$a"
	wait_healthy "$b"
	browse open "$a/?chan=b.two" state live name ann \
		open "$b/?chan=b.two" state live name bob \
		page 1 say 'ann on node A' page 2 see 'ann on node A' say 'bob on node B' \
		page 1 see 'bob on node B' log page 2 log
	[ "$output" = "msg ann: ann on node A
msg bob: bob on node B
msg ann: ann on node A
msg bob: bob on node B" ]
}

@test "a message containing <script> or markup is shown as text, never run" {
	need_browser
	start_chatd
	local evil='<script>window.pwned=1</script><img src=x onerror="window.pwned=2"><b>bold</b>'
	local ready=$BATS_TEST_TMPDIR/ready done=$BATS_TEST_TMPDIR/done
	browse_bg open "$CHATD_URL/?chan=b.xss" state live ready "$ready" await "$done" \
		name '<i>eve</i>' say "typed $evil" see 'typed <script>' log \
		eval "document.querySelectorAll('#logs script, #logs img, #logs b, #logs i').length + ' ' + typeof window.pwned"
	page_at "$ready"
	post "$(json_of "{'chan': 'b.xss', 'msg': sys.argv[1]}" "$evil")" >/dev/null
	post "$(json_of "{'chan': 'b.xss', 'msg': {'name': '<u>mallory</u>', 'text': sys.argv[1]}}" "$evil")" >/dev/null
	touch "$done"
	browse_done
	[ "${lines[0]}" = "msg $evil" ]
	[ "${lines[1]}" = "msg <u>mallory</u>: $evil" ]
	[ "${lines[2]}" = "msg <i>eve</i>: typed $evil" ]
	[ "${lines[3]}" = "0 undefined" ]
}

@test "after a server restart the page reconnects and shows what it missed, from history" {
	need_browser
	start_redis
	start_chatd --redis "$REDIS_URL"
	local other=$CHATD_URL
	local port
	port=$(free_port)
	chatd_on "$port" --redis "$REDIS_URL"
	local ready=$BATS_TEST_TMPDIR/ready stopped=$BATS_TEST_TMPDIR/stopped noticed=$BATS_TEST_TMPDIR/noticed
	browse_bg open "http://127.0.0.1:$port/?chan=b.restart" state live say 'before the restart' \
		see 'before the restart' ready "$ready" await "$stopped" state reconnecting ready "$noticed" \
		state live see 'missed 70.' log
	page_at "$ready"
	stop_pid "$CHATD_PID"
	# more than the page's first backlog (last=50): only a resume from its position shows all
	seq 70 | sed 's/.*/missed &./' | chat-post -u "$other" -c b.restart
	touch "$stopped"
	page_at "$noticed"
	chatd_on "$port" --redis "$REDIS_URL"
	browse_done
	[ "${lines[0]}" = "msg before the restart" ]
	[ "${lines[1]}" = "note disconnected (server shutting down); reconnecting" ]
	[ "${lines[2]}" = "note reconnected" ]
	[ "$(printf '%s\n' "${lines[@]:3}")" = "$(seq 70 | sed 's/.*/msg missed &./')" ]
}

@test "after a drop, messages no longer stored are counted in a notice" {
	need_browser
	start_redis
	start_chatd --redis "$REDIS_URL" --history 2
	local other=$CHATD_URL
	local port
	port=$(free_port)
	chatd_on "$port" --redis "$REDIS_URL" --history 2
	local ready=$BATS_TEST_TMPDIR/ready stopped=$BATS_TEST_TMPDIR/stopped noticed=$BATS_TEST_TMPDIR/noticed
	local seen=$BATS_TEST_TMPDIR/seen
	browse_bg open "http://127.0.0.1:$port/?chan=b.gap" state live ready "$ready" \
		see m0 ready "$seen" await "$stopped" state reconnecting ready "$noticed" state live see m5 log
	page_at "$ready"
	curl -s -X POST -d '{"chan":"b.gap","msg":"m0"}' "$other/" >/dev/null
	page_at "$seen"
	kill -KILL "$CHATD_PID" # no close frame: the connection is just lost
	for i in 1 2 3 4 5; do
		curl -s -X POST -d "{\"chan\":\"b.gap\",\"msg\":\"m$i\"}" "$other/" >/dev/null
	done
	touch "$stopped"
	page_at "$noticed"
	chatd_on "$port" --redis "$REDIS_URL" --history 2
	browse_done
	[ "$output" = "msg m0
note disconnected (connection lost); reconnecting
note reconnected
gap 3 messages could not be recovered (no longer stored)
msg m4
msg m5" ]
}

@test "a restart of the embedded broker loses its history: the page says so, then goes on" {
	need_browser
	local port
	port=$(free_port)
	chatd_on "$port"
	local ready=$BATS_TEST_TMPDIR/ready noticed=$BATS_TEST_TMPDIR/noticed
	browse_bg open "http://127.0.0.1:$port/?chan=b.epoch" state live say 'in the old epoch' \
		see 'old epoch' ready "$ready" state reconnecting ready "$noticed" state live \
		say 'in the new epoch' see 'new epoch' log
	page_at "$ready"
	stop_pid "$CHATD_PID"
	page_at "$noticed"
	chatd_on "$port"
	browse_done
	[ "$output" = "msg in the old epoch
note disconnected (server shutting down); reconnecting
note reconnected
gap messages could not be recovered: the channel's history was reset (a server restart or lost storage)
msg in the new epoch" ]
}

@test "when the network goes away the page reconnects once it is back, and shows what it missed" {
	need_browser
	start_chatd
	local offline=$BATS_TEST_TMPDIR/offline posted=$BATS_TEST_TMPDIR/posted
	browse_bg open "$CHATD_URL/?chan=b.net" state live offline state reconnecting ready "$offline" \
		await "$posted" online state live see 'while offline' log
	page_at "$offline"
	post '{"chan":"b.net","msg":"while offline"}' >/dev/null
	touch "$posted"
	browse_done
	[ "$output" = "note disconnected (the network is offline); reconnecting
note reconnected
msg while offline" ]
}

@test "a token in the page's URL goes to the WebSocket; chatd's sender is shown as verified" {
	need_browser
	local secret=$BATS_TEST_TMPDIR/secret token
	head -c 32 /dev/urandom | base64 >"$secret"
	token=$("$PY" "$TESTS_DIR/jwt.py" "$secret" '{"sub":"ann","publish":["room.*"],"subscribe":["room.*"]}')
	start_chatd --jwt-secret-file "$secret"
	browse open "$CHATD_URL/?chan=room.t&token=$token" state live name 'not ann' say 'signed' \
		see signed log \
		open "$CHATD_URL/?chan=room.t" state closed eval "document.getElementById('state').textContent"
	[ "${lines[0]}" = "msg ann ✓: signed" ]
	[[ "${lines[1]}" == "closed by the server: authentication required"* ]]
}

@test "keyboard only: focus order, switching channel with Enter; fits a 360 px phone" {
	need_browser
	start_chatd
	browse open "$CHATD_URL/?chan=b.kb" state live eval 'document.activeElement.id' \
		type 'sent with Enter' key Enter see 'sent with Enter' \
		key Shift+Tab eval 'document.activeElement.getAttribute("aria-label")' \
		key Shift+Tab eval 'document.activeElement.id' \
		key Shift+Tab eval 'document.activeElement.id' \
		key Control+A type b.kb2 key Enter state live eval 'document.activeElement.id' \
		eval 'location.search' \
		shot "$BATS_TEST_TMPDIR/phone.png" 360x740 \
		eval 'document.documentElement.scrollWidth <= innerWidth' \
		eval '[...document.querySelectorAll("input, button:not([hidden])")].every(e => { const r = e.getBoundingClientRect(); return r.left >= 0 && r.right <= innerWidth && r.bottom <= innerHeight; })'
	[ "$output" = "text
Messages in #b.kb
name
chan
text
?chan=b.kb2
true
true" ]
}
