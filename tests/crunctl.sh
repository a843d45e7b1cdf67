#!/bin/sh
# crunctl.sh — drive every crunctl command and exit status against a real
# crund started from the build tree (demo plugin) on a free port, with a
# token and a Unix socket as well.  Prints TAP.
#
# Environment (exported by the harness): top_builddir, top_srcdir.
set -u

top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
CRUND=$top_builddir/daemon/crund
CRUNCTL=$top_builddir/client/crunctl
PLUGINS=$top_builddir/plugins/.libs

if [ ! -x "$CRUND" ] || [ ! -x "$CRUNCTL" ] || [ ! -f "$PLUGINS/demo.so" ]; then
	echo "1..0 # SKIP crund, crunctl or the demo plugin is not built"
	exit 0
fi
if ! command -v curl >/dev/null 2>&1; then
	echo "1..0 # SKIP curl is not installed"
	exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/crunctl-test.XXXXXX") || exit 1
pid=
pid2=
cleanup()
{
	for p in $pid $pid2; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
# wait_port_file FILE: until a test server has written its port (5 s at most)
wait_port_file() {
	wp_i=0
	while [ ! -s "$1" ] && [ $wp_i -lt 100 ]; do
		sleep 0.05
		wp_i=$((wp_i + 1))
	done
}
not_ok()
{
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
	# what crunctl said, as TAP diagnostics
	sed 's/^/# out: /' "$tmp/out" 2>/dev/null | head -n 20 | cut -c 1-300
	sed 's/^/# err: /' "$tmp/err" 2>/dev/null | head -n 20
}

# Under `make check-valgrind` (CRUND_VALGRIND=1) every eighth crunctl run
# goes through memcheck: a memory error or a definite leak makes it exit 99,
# which fails the test.  (All of them would take minutes.)
runs=0
vg_every=0
if [ "${CRUND_VALGRIND:-0}" = 1 ] && command -v valgrind >/dev/null 2>&1; then
	vg_every=8
fi

# run WANT_RC NAME crunctl-args...: crunctl's stdout in $tmp/out, stderr in
# $tmp/err; the test passes when the exit status is WANT_RC.
run()
{
	want=$1
	name=$2
	shift 2
	runs=$((runs + 1))
	if [ $vg_every -gt 0 ] && [ $((runs % vg_every)) -eq 0 ]; then
		valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
			--suppressions="$top_srcdir/build-aux/valgrind.supp" \
			"$CRUNCTL" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
	else
		"$CRUNCTL" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
	fi
	got=$?
	if [ "$got" -eq "$want" ]; then
		ok "$name (exit $want)"
	else
		echo "# crunctl $* exited $got, want $want"
		not_ok "$name (exit $want)"
	fi
	return 0
}

# check NAME FILE PATTERN: grep -E PATTERN in $tmp/FILE
check()
{
	if grep -Eq -- "$3" "$tmp/$2"; then
		ok "$1"
	else
		echo "# no /$3/ in $2"
		not_ok "$1"
	fi
}

# check_not NAME FILE PATTERN
check_not()
{
	if grep -Eq -- "$3" "$tmp/$2"; then
		echo "# unexpected /$3/ in $2"
		not_ok "$1"
	else
		ok "$1"
	fi
}

free_port()
{
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' &&
			return
	fi
	echo $((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
}

# Start crund; a port taken between free_port and bind is retried.  Its
# store is a file of this run (never the default under /var/lib or $HOME),
# and retries wait at most 0.2 s, so a job with --max-attempts ends quickly.
printf 's3cret-token\n' >"$tmp/token"
chmod 600 "$tmp/token"
printf 'wrong-token\n' >"$tmp/badtoken"
sock=$tmp/crund.sock
started=no
for _ in 1 2 3 4 5; do
	port=$(free_port)
	"$CRUND" --listen "127.0.0.1:$port" --listen "unix:$sock" --plugin-dir "$PLUGINS" \
		--token-file "$tmp/token" --grace 60 --store "sqlite:$tmp/crund.db" \
		--retry-max-delay 0.2 >"$tmp/crund.log" 2>&1 &
	pid=$!
	i=0
	while [ $i -lt 100 ]; do
		if curl -fsS -o /dev/null "http://127.0.0.1:$port/v1/health" 2>/dev/null; then
			started=yes
			break
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	[ $started = yes ] && break
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	pid=
done
if [ $started != yes ]; then
	echo "Bail out! crund did not start"
	sed 's/^/# crund: /' "$tmp/crund.log"
	exit 1
fi

export CRUND_URL="http://127.0.0.1:$port"
export CRUND_TOKEN_FILE="$tmp/token"
unset CRUND_SOCKET NO_COLOR CRUNCTL_DEBUG

# --- no daemon needed ----------------------------------------------------
run 0 "--version" --version
check "--version names crunctl" out '^crunctl [0-9]'
run 0 "--help" --help
check "--help documents the exit codes" out 'wait ran out'
run 0 "help submit" help submit
check "help submit shows its usage" out '^Usage: crunctl submit PLUGIN JOB'
run 2 "help of an unknown command" help frobnicate
run 2 "no command" 
run 2 "unknown command" frobnicate
check "unknown command names it" err "unknown command 'frobnicate'"
run 2 "unknown global option" --frob list
run 2 "--url and --socket together" --url http://x --socket /x health
# crund speaks HTTP: another scheme is a usage error at once (ftp:// talked
# FTP to the daemon until the 10 s timeout, exit 5)
run 2 "--url ftp://... is not a URL crunctl can use" --url "ftp://127.0.0.1:1" info
check "... and says so" err "is not a URL crunctl can use"
run 2 "bad --state with an empty name" list --state failed,
run 2 "submit without JOB" submit demo
check "usage error shows the command's usage" err "^Usage: crunctl submit "
check "usage error says where to read more" err "Try 'crunctl help submit'"
run 2 "bad --timeout" submit demo noop --timeout soon
run 2 "bad --wait value" submit demo noop --wait=later
run 2 "bad --limit" list --limit 0
run 2 "bad --state" list --state bogus
check "--state names the states" err 'queued, running, succeeded, failed or cancelled'
run 2 "bad --state in a list" list --state queued,bogus
run 2 "status without ID" status
run 2 "wait takes one ID" wait a b
run 2 "unreadable token file" --token-file "$tmp/nope" health
run 2 "--args that is not an object" submit demo echo --args '[1]'
run 2 "--args from a missing file" submit demo echo --args @"$tmp/nope.json"
run 2 "--delay with --at" submit demo noop --delay 30 --at 2030-01-01T00:00:00Z
check "--delay with --at says why" err 'give --delay or --at, not both'
run 2 "--max-attempts 0" submit demo noop --max-attempts 0
check "--max-attempts 0 names the option" err "^crunctl: --max-attempts wants an integer from 1 to 1000, got '0'"
run 2 "--max-attempts over 1000" submit demo noop --max-attempts=1001
run 2 "bad --delay" submit demo noop --delay soon
check "bad --delay names the option" err "^crunctl: --delay wants a duration"
run 2 "bad --at" submit demo noop --at tomorrow
check "bad --at names the option" err "^crunctl: --at wants an RFC 3339 time"
run 2 "--at a day its month does not have" submit demo noop --at 2026-02-31T00:00:00Z
check "--at 2026-02-31 is refused as crund refuses it" err "^crunctl: --at wants an RFC 3339 time"
run 2 "bad --on-interrupt" submit demo noop --on-interrupt never
check "bad --on-interrupt names the option" err "^crunctl: --on-interrupt wants 'retry' or 'fail'"
run 0 "help submit documents the new options" help submit
check "help submit: --delay and --at" out '--delay S +run the job S from now'
check "help submit: --max-attempts and --on-interrupt" out '--on-interrupt retry\|fail'

# --- reachability --------------------------------------------------------
run 5 "unreachable daemon" --url "http://127.0.0.1:1" health
check "unreachable reads like a sentence" err \
	'^crund is not reachable at http://127.0.0.1:1 \(connection refused\)\. Is the service running\?'
run 5 "missing socket" --socket "$tmp/none.sock" health
check "missing socket names it" err "unix:$tmp/none.sock"

# --- health, info, plugins ------------------------------------------------
run 0 "health" health
check "health prints ok" out '^ok$'
unset CRUND_TOKEN_FILE
run 0 "health without a token" health
run 6 "info without a token is refused" info
check "401 explains the token" err 'token'
export CRUND_TOKEN_FILE="$tmp/token"
run 6 "wrong token is refused" --token-file "$tmp/badtoken" info
run 0 "health over the Unix socket" --socket "$sock" health
run 0 "info over unix:PATH" --url "unix:$sock" info
run 0 "connection options after the command" info --url "unix:$sock" --json
check "--json after the command" out '^\{'
run 5 "--url=URL after the command" health --url=http://127.0.0.1:1
run 0 "info" info
check "info shows the version" out '^version +[0-9]'
run 0 "info --json" --json info
check "info --json is JSON" out '^\{'
run 0 "plugins" plugins
check "plugins lists demo jobs" out '^demo +1\.0\.0 +sleep +seconds:number'
check "plugins shows optional args in brackets" out '\[message:string\]'
run 0 "plugins demo" plugins demo
check "plugins demo shows an argument table" out 'seconds +number 0\.\.3600 +yes'
check "plugins demo shows what a submission gets by default" out '^    max_attempts 1, on_interrupt retry$'
run 6 "plugins of an unknown plugin" plugins nosuch
check "API error printed with its code" err '^crunctl: .*\(not_found\)$'
run 0 "plugins --json" plugins --json
check "plugins --json is the API's object" out '"plugins"'

# --- submit and key=value typing ------------------------------------------
run 0 "submit prints an id" submit demo noop
id_noop=$(cat "$tmp/out")
check "the id is one line" out '^[A-Za-z0-9._~-]+$'
run 0 "submit --wait prints the result" submit demo echo value=bob --wait
check "any falls back to a string" out '^"bob"$'
run 0 "typed number" submit demo sleep seconds=0.01 --wait
run 0 "raw JSON with :=" --json submit demo echo 'value:={"a":[1,true]}' --wait
check "raw JSON arrives as JSON" out '"result": *\{"a": *\[1, *true\]\}'
run 0 "any parses JSON" --json submit demo echo 'value=[1,2]' --wait
check "any value parsed as an array" out '"result": *\[1, *2\]'
run 2 "unknown argument key" submit demo sleep secs=1
check "unknown key names the job's arguments" err "its arguments: seconds"
run 2 "number refuses text" submit demo sleep seconds=soon
check "typing error names the argument" err "argument 'seconds' must be a number"
run 2 "integer refuses a fraction" submit demo progress steps=1.5
run 6 "unknown job" submit demo nosuch x=1
run 6 "unknown plugin" submit nosuch noop
run 6 "daemon-side validation (out of range)" submit demo sleep seconds=99999
check "daemon's 400 message is shown" err "seconds"
echo '{"value": {"from": "file"}}' >"$tmp/args.json"
run 0 "--args @FILE" --json submit demo echo --args @"$tmp/args.json" --wait
check "--args file used" out '"from": *"file"'
run 0 "--args JSON extended by key=value" --json submit demo echo --args '{"value":1}' value=2 --wait
check "key=value wins over --args" out '"result": *2'
if "$CRUNCTL" --json submit demo echo --args - --wait <"$tmp/args.json" >"$tmp/out" 2>"$tmp/err" &&
	grep -q '"file"' "$tmp/out"; then ok "--args - reads stdin"; else not_ok "--args - reads stdin"; fi
run 0 "--idempotency-key first" submit demo noop --idempotency-key k-1
id_idem=$(cat "$tmp/out")
run 0 "--idempotency-key again" submit demo noop --idempotency-key k-1
if [ "$(cat "$tmp/out")" = "$id_idem" ]; then ok "same key, same job"; else not_ok "same key, same job"; fi
run 0 "--isolated and --timeout accepted" --json submit demo noop --isolated --timeout 1m --wait
check "timeout sent in seconds" out '"timeout": *60'

# --- final states and exit codes ------------------------------------------
run 1 "failed job exits 1" submit demo fail --wait
check "failure message and code" err "failed: failed on purpose \(plugin_error\)"
run 4 "wait ran out exits 4" submit demo sleep seconds=30 --wait=0.2
check "still running says how to wait" err "crunctl wait "
run 0 "status of a running job" status "$(sed -n 's/.*crunctl wait \([^ ]*\)$/\1/p' "$tmp/err")"
check "status shows the state" out '^State: +running'
id_long=$(sed -n 's/^ID: *//p' "$tmp/out")
run 4 "wait --timeout exits 4" wait "$id_long" --timeout 0.2
run 0 "cancel" cancel "$id_long"
run 3 "wait for a cancelled job exits 3" wait "$id_long" --timeout 10
check "cancelled is said" err "was cancelled"
run 6 "cancel of an ended job is a conflict" cancel "$id_long"
check "conflict reported" err '\(.*conflict.*\)|already'
run 4 "a lingering job outlives --wait=0.1" submit demo linger seconds=30 --wait=0.1
id_linger=$(sed -n 's/.*crunctl wait \([^ ]*\)$/\1/p' "$tmp/err")
run 0 "cancel a lingering job" --quiet cancel "$id_linger"
check_not "--quiet cancel says nothing" err '.'
run 3 "its wait ends cancelled" wait "$id_linger" --timeout 20
run 0 "retry an ended job" retry "$id_linger"
id_again=$(cat "$tmp/out")
check "retry prints the new job's id" out '^[0-9a-z]+$'
check "retry says which job it runs again" err "runs job $id_linger again"
run 0 "the new job's status" --json status "$id_again"
check "the new job has retry_of" out "\"retry_of\": *\"$id_linger\""
run 6 "retry of an active job is a conflict" retry "$id_again"
check "the conflict is reported" err 'still (queued|running)'
run 0 "cancel the new job" --quiet cancel "$id_again"
run 0 "wait for a succeeded job" wait "$id_noop"
check "noop result printed" out '"ok": *true'
run 0 "status of several jobs is a table" status "$id_noop" "$id_long"
check "table header" out '^ID +PLUGIN +JOB +STATE +ATTEMPT +AGE +DURATION$'
check_not "no colour when not a terminal" out "$(printf '\033')"
run 6 "status of an unknown job" status nosuchjob
run 6 "status goes on after an unknown job" status nosuchjob "$id_noop"
check "the known job is still shown" out "$id_noop"

# --- delayed jobs, retries, attempts ----------------------------------------
# No timing: a delay of 30 s is far longer than these few commands, and
# retries wait at most 0.2 s (--retry-max-delay) while --wait waits for the end.
run 0 "submit --delay 30 --on-interrupt retry" submit demo noop --delay 30 --on-interrupt retry
id_delay=$(cat "$tmp/out")
run 0 "list with a delayed job" list
check "a delayed job is queued, not started, and says when it runs" out \
	"^$id_delay +demo +noop +queued +- +[^ ].* in [0-9]+s$"
run 0 "status of a delayed job" status "$id_delay"
check "status shows when it runs" out \
	'^Runs at: +[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} \(in [0-9]+s\)$'
check "status shows the attempt before the first start" out '^Attempt: +0 of 1$'
check "status shows the on-interrupt policy" out '^On interrupt: +retry$'
run 0 "status --json of a delayed job" --json status "$id_delay"
check "--json stays the job object with run_at" out '"run_at": *"[0-9]{4}-[^"]*Z"'
run 0 "cancel the delayed job" cancel "$id_delay"
if date -d @0 +%s >/dev/null 2>&1; then
	# --at in local time, as status prints it, one hour ahead
	at_local=$(date -d "@$(($(date +%s) + 3600))" '+%Y-%m-%d %H:%M:%S')
	run 0 "submit --at a local time" --json submit demo noop --at "$at_local"
	check "the job has a run_at" out '"run_at": *"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}(\.[0-9]+)?Z"'
	id_at=$(sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' "$tmp/out")
	run 0 "status of a job submitted with --at" status "$id_at"
	check "it runs at the local time given" out "^Runs at: +$at_local \\(in (59m[0-9]+s|1h)\\)$"
	run 0 "cancel the --at job" cancel "$id_at"
else
	ok "--at in local time # SKIP no GNU date"
fi
run 1 "a failing job with --max-attempts 3" submit demo fail --max-attempts 3 --wait
check "the failure counts its attempts" err 'failed after 3 attempts: failed on purpose \(plugin_error\)$'
id_retry=$(sed -n 's/^crunctl: job \([^ ]*\) failed.*/\1/p' "$tmp/err")
run 1 "wait for the retried job" wait "$id_retry"
check "wait says it failed after 3 attempts" err "job $id_retry failed after 3 attempts"
run 0 "status of the retried job" status "$id_retry"
check "status: attempt 3 of 3" out '^Attempt: +3 of 3$'
check "status: the first attempt" out \
	'^Attempt 1: +[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}  failed on purpose \(plugin_error\)$'
check "status: the second attempt" out '^Attempt 2: +[0-9-]+ [0-9:]+  failed on purpose'
check_not "status: the last attempt is the job's error, not an earlier one" out '^Attempt 3:'
check "status: the job's error" out '^Error: +failed on purpose \(plugin_error\)$'
run 0 "list shows the attempts" list --limit 20
check "list: 3/3 after STATE" out "^$id_retry +demo +fail +failed +3/3 "
run 0 "--max-attempts and --on-interrupt sent" --json submit demo noop --max-attempts 2 --on-interrupt fail --wait
check "max_attempts sent" out '"max_attempts": *2'
check "on_interrupt sent" out '"on_interrupt": *"fail"'
check "a job that succeeds at once took one attempt" out '"attempt": *1[,}]'
# the value of --on-interrupt is stepped over, never read as a connection option
run 2 "--on-interrupt takes the next word as its value" submit demo noop --on-interrupt --url http://127.0.0.1:1
check "that value is judged by --on-interrupt" err "got '--url'"

# --- follow, log ----------------------------------------------------------
run 0 "submit --follow" submit demo progress steps=3 interval=0.05 --follow
check "--follow prints log lines" err 'step 3'
check "--follow prints progress" err '100%'
check "--follow prints the result" out '.'
run 0 "log" log "$(sed -n 's/^job \([^:]*\): .*/\1/p' "$tmp/err" | head -n 1)"
check "log has the job's lines" out 'step 1'
run 0 "submit a job to follow" submit demo progress steps=4 interval=0.1
id_prog=$(cat "$tmp/out")
run 0 "log -f until the end" log -f "$id_prog"
check "log -f got the last line" out 'step 4'
lines=$(grep -c 'step 2' "$tmp/out")
if [ "$lines" -eq 1 ]; then ok "log -f prints a line once"; else not_ok "log -f prints a line once ($lines)"; fi
# A job that logs fast while it is followed: every line once, in order.
run 0 "submit a fast logging job" submit demo progress steps=200 interval=0.001
id_fast=$(cat "$tmp/out")
run 0 "log -f of a fast job" log -f "$id_fast"
lines=$(grep -c 'step [0-9]*/200 done' "$tmp/out")
uniq=$(sort -u "$tmp/out" | grep -c 'step [0-9]*/200 done')
if [ "$lines" -eq 200 ] && [ "$uniq" -eq 200 ]; then
	ok "log -f lost and repeated no line"
else
	not_ok "log -f lost and repeated no line ($lines lines, $uniq distinct)"
fi
sed -n 's/.*step \([0-9]*\)\/200 done$/\1/p' "$tmp/out" >"$tmp/order"
if sort -n "$tmp/order" | cmp -s - "$tmp/order"; then ok "log -f keeps the order"; else not_ok "log -f keeps the order"; fi
run 0 "--json --follow prints JSON lines" --json submit demo progress steps=2 interval=0.2 --follow
check "JSON lines" out '^\{'
ended=$(grep -c '"state":"succeeded"' "$tmp/out")
if [ "$ended" -eq 1 ]; then ok "--json --follow prints the ended job once"; else not_ok "--json --follow prints the ended job once ($ended times)"; fi
# The log so far (read from /log) and the lines that follow (events) are
# the same JSON shape: {"time","level","message"}.
run 0 "submit a job to follow as JSON" submit demo progress steps=3 interval=0.4
id_jf=$(cat "$tmp/out")
sleep 0.6
run 0 "--json log -f" --json log -f "$id_jf"
if python3 -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
logs = [l for l in lines if "step" in l.get("message", "") and "done" in l["message"]]
assert [l["message"] for l in logs] == ["step %d/3 done" % i for i in (1, 2, 3)], logs
assert all(l.get("level") == "info" and l.get("time", "").endswith("Z") for l in logs), logs
' "$tmp/out"; then
	ok "--json log -f: earlier and later lines have one shape"
else
	not_ok "--json log -f: earlier and later lines have one shape"
fi
run 6 "log of an unknown job" log nosuchjob
run 6 "--json status of an unknown job" --json status nosuchjob
if python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["error"]["code"] == "not_found"' "$tmp/out"; then
	ok "--json: an API error's JSON body is on stdout"
else
	not_ok "--json: an API error's JSON body is on stdout"
fi
check "... and its sentence on stderr" err "crunctl: .*not_found"

# --- list, rm --------------------------------------------------------------
run 0 "list" list
check "list has a header" out '^ID +PLUGIN +JOB +STATE +ATTEMPT +AGE +DURATION$'
check "list has the failed job" out ' failed '
run 0 "list --state failed" list --state failed
check_not "list --state filters" out ' succeeded '
run 0 "list --limit 2" list --limit 2
rows=$(($(wc -l <"$tmp/out") - 1))
if [ "$rows" -eq 2 ]; then ok "list --limit 2 shows 2 jobs"; else not_ok "list --limit 2 shows 2 jobs ($rows)"; fi
run 0 "list --plugin demo --json" --json list --plugin demo --limit 3
check "list --json has jobs" out '"jobs"'
run 0 "rm an ended job" rm "$id_noop"
check "rm confirms" err 'removed'
run 6 "rm it again" rm "$id_noop"
run 0 "submit a long job" submit demo sleep seconds=30
id_active=$(cat "$tmp/out")
run 6 "rm of an active job is a conflict" rm "$id_active"
run 0 "cancel it" cancel "$id_active"

# --- list follows the API's pages for any --limit ---------------------------
# A crund of its own (memory store, no token) with 1100 jobs: more than the
# API's largest page (?limit=1000), so a --limit past it takes two pages.
# crunctl stopped at 200 jobs whatever N (it read a page it had freed, whose
# jobs then looked empty), and --json printed a cursor from the middle.
if command -v python3 >/dev/null 2>&1; then
	url2=
	for _ in 1 2 3 4 5; do
		port2=$(free_port)
		"$CRUND" --listen "127.0.0.1:$port2" --plugin-dir "$PLUGINS" --store memory: \
			>"$tmp/crund2.log" 2>&1 &
		pid2=$!
		i=0
		while [ $i -lt 100 ]; do
			if curl -fsS -o /dev/null "http://127.0.0.1:$port2/v1/health" 2>/dev/null; then
				url2=http://127.0.0.1:$port2
				break
			fi
			kill -0 "$pid2" 2>/dev/null || break
			sleep 0.1
			i=$((i + 1))
		done
		[ -n "$url2" ] && break
		kill "$pid2" 2>/dev/null
		wait "$pid2" 2>/dev/null
		pid2=
	done
fi
if [ -n "${url2:-}" ] && python3 - "$port2" <<'PYEOF'; then
import http.client, json, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
for _ in range(1100):
    c.request("POST", "/v1/jobs", json.dumps({"plugin": "demo", "job": "noop"}),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    assert r.status in (200, 201, 202), r.status
# all of them ended: the lists below do not change under them
for _ in range(600):
    c.request("GET", "/v1/jobs?limit=1&state=queued,running")
    r = c.getresponse()
    if not json.loads(r.read())["jobs"]:
        break
    time.sleep(0.1)
else:
    sys.exit("the jobs did not end")
PYEOF
	# the API's own pages: every job, newest first, and after each id the
	# job whose page starts at its cursor
	python3 - "$url2" >"$tmp/all.ids" <<'PYEOF'
import json, sys, urllib.request
cursor, n = None, 0
while True:
    q = "/v1/jobs?limit=1000" + ("&cursor=" + cursor if cursor else "")
    page = json.load(urllib.request.urlopen(sys.argv[1] + q))
    for j in page["jobs"]:
        print(j["id"])
    cursor = page["next_cursor"]
    if not cursor:
        break
PYEOF
	# check_page NAME N WANT_JOBS: $tmp/out is --json list --limit N: the
	# API's first WANT_JOBS jobs, and a next_cursor that goes on after the
	# last of them (null when there are no more)
	check_page()
	{
		if python3 - "$tmp/out" "$tmp/all.ids" "$3" "$url2" <<'PYEOF'; then
import json, sys, urllib.request
out = json.load(open(sys.argv[1]))
ids = open(sys.argv[2]).read().split()
want = int(sys.argv[3])
got = [j["id"] for j in out["jobs"]]
assert got == ids[:want], "%d jobs, %d distinct, want the %d newest" % (len(got), len(set(got)), want)
if want == len(ids):
    assert out["next_cursor"] is None, out["next_cursor"]
else:
    nxt = json.load(urllib.request.urlopen("%s/v1/jobs?limit=1&cursor=%s" % (sys.argv[4], out["next_cursor"])))
    assert [j["id"] for j in nxt["jobs"]] == [ids[want]], "next_cursor %s does not go on after the last job" % out["next_cursor"]
PYEOF
			ok "$1"
		else
			not_ok "$1"
		fi
	}
	total=$(wc -l <"$tmp/all.ids")
	if [ "$total" -eq 1100 ]; then ok "1100 jobs to list"; else not_ok "1100 jobs to list ($total)"; fi
	run 0 "list --limit 300" --url "$url2" list --limit 300
	rows=$(($(wc -l <"$tmp/out") - 1))
	if [ "$rows" -eq 300 ]; then ok "list --limit 300 shows 300 jobs"; else not_ok "list --limit 300 shows 300 jobs ($rows)"; fi
	run 0 "list --limit 1050 (two pages)" --url "$url2" list --limit 1050
	rows=$(($(wc -l <"$tmp/out") - 1))
	if [ "$rows" -eq 1050 ]; then ok "list --limit 1050 shows 1050 jobs"; else not_ok "list --limit 1050 shows 1050 jobs ($rows)"; fi
	check_not "... with no 'more' notice (--limit was given)" err 'more with --limit'
	run 0 "--json list --limit 300" --url "$url2" --json list --limit 300
	check_page "--json list --limit 300: the 300 newest, next_cursor after the last" 300 300
	run 0 "--json list --limit 1000 (one whole page)" --url "$url2" --json list --limit 1000
	check_page "--json list --limit 1000: the 1000 newest, next_cursor after the last" 1000 1000
	run 0 "--json list --limit 1050 (two pages)" --url "$url2" --json list --limit 1050
	check_page "--json list --limit 1050: the 1050 newest, next_cursor after the last" 1050 1050
	run 0 "--json list --limit 5000 (more than there are)" --url "$url2" --json list --limit 5000
	check_page "--json list --limit 5000: all 1100, next_cursor null" 5000 1100
	run 0 "--json list --state succeeded --limit 1100 (pages of a filter)" --url "$url2" --json list --state succeeded --limit 1100
	check_page "--json list --state succeeded --limit 1100: all of them, next_cursor null" 1100 1100
	run 0 "list without --limit" --url "$url2" list
	rows=$(($(wc -l <"$tmp/out") - 1))
	if [ "$rows" -eq 50 ]; then ok "list shows 50 jobs by default"; else not_ok "list shows 50 jobs by default ($rows)"; fi
	check "... and says there are more" err '^\(the 50 newest; more with --limit N\)$'
else
	for _ in $(seq 19); do
		ok "# SKIP python3 is missing or the second crund did not start"
	done
fi
if [ -n "$pid2" ]; then
	kill "$pid2" 2>/dev/null
	wait "$pid2" 2>/dev/null
	pid2=
fi

# --- a submission is sent once ---------------------------------------------
# A server that answers the plugin's spec on a keep-alive connection, then
# closes the connection of every POST without an answer: libcurl sends a
# request again by itself when a reused connection dies before the answer,
# which for a POST would submit the job twice.  crunctl must give up after
# one POST (exit 5), and the server must have seen one.
if command -v python3 >/dev/null 2>&1; then
	python3 - "$tmp/posts" >"$tmp/fake.port" 2>"$tmp/fake.err" <<'PYEOF' &
import http.server, socketserver, sys
posts = sys.argv[1]
open(posts, "w").close()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        b = (b'{"name":"demo","jobs":[{"name":"sleep","args":'
             b'[{"name":"seconds","type":"number","required":true}]}]}')
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(posts, "a") as f:
            f.write("POST\n")
        self.close_connection = True
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
srv = S(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.timeout = 20
for _ in range(8):
    srv.handle_request()
PYEOF
	fake_pid=$!
	wait_port_file "$tmp/fake.port"
	fake_url="http://127.0.0.1:$(cat "$tmp/fake.port")"
	# with arguments: crunctl reads the job's spec first, on the same
	# connection, so the POST goes on a reused one
	run 5 "a POST whose connection dies unanswered: unreachable" --url "$fake_url" \
		submit demo sleep seconds=1
	check "... it says the connection was closed" err 'closed the connection'
	if [ "$(grep -c POST "$tmp/posts")" = 1 ]; then
		ok "... and the job was POSTed once, not again by libcurl"
	else
		echo "# POSTs the server saw: $(grep -c POST "$tmp/posts")"
		not_ok "... and the job was POSTed once, not again by libcurl"
	fi
	kill "$fake_pid" 2>/dev/null
	wait "$fake_pid" 2>/dev/null
else
	for _ in 1 2 3; do ok "# SKIP python3 is missing"; done
fi

# --- health asks for crund's answer -----------------------------------------
# A web server that is not crund answers 200 at /v1/health (a file of that
# name, a proxy's page): crunctl said "ok" and exited 0 for any 200.  Its
# answer must be crund's {"status":"ok"}; another is a reply crunctl does
# not understand (exit 7), as for info.
if command -v python3 >/dev/null 2>&1; then
	python3 - >"$tmp/web.port" 2>"$tmp/web.err" <<'PYEOF' &
import http.server, socketserver
bodies = {
    "/text/v1/health": (b"ok\n", "text/plain"),
    "/html/v1/health": (b"<html><body>It works</body></html>\n", "text/html"),
    "/json/v1/health": (b'{"healthy": true}\n', "application/json"),
    "/crund/v1/health": (b'{"status":"ok"}\n', "application/json"),
}
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        b, ct = bodies.get(self.path, (b"not found\n", "text/plain"))
        self.send_response(200 if self.path in bodies else 404)
        self.send_header("Content-Type", ct)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
srv = S(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.timeout = 30
for _ in range(12):
    srv.handle_request()
PYEOF
	web_pid=$!
	wait_port_file "$tmp/web.port"
	web="http://127.0.0.1:$(cat "$tmp/web.port")"
	run 7 "health: a web server's 200 in text is not crund's answer" --url "$web/text" health
	check "... it says the reply is not JSON" err '^crunctl: crund sent a reply that is not JSON'
	check_not "... and prints no ok" out 'ok'
	run 7 "health: a web server's page is not crund's answer" --url "$web/html" health
	run 7 "health --json: a 200 of other JSON is not crund's answer" --url "$web/json" --json health
	check "... it says the status is missing" err '"status": "ok"'
	check_not "... and prints nothing on stdout" out '.'
	run 0 "health: crund's own answer is ok" --url "$web/crund" health
	check "... and prints ok" out '^ok$'
	run 6 "health: a 404 is an error of the server" --url "$web/none" health
	kill "$web_pid" 2>/dev/null
	wait "$web_pid" 2>/dev/null
else
	for _ in $(seq 10); do ok "# SKIP python3 is missing"; done
fi

# --- a draining daemon ------------------------------------------------------
# SIGTERM with a job running and a long grace: crund stays draining (no timing
# involved) until the job is cancelled, then exits.
run 0 "submit a job that outlives the drain" submit demo linger seconds=600 cleanup_seconds=0
id_drain=$(cat "$tmp/out")
kill -TERM "$pid"
i=0
while [ $i -lt 100 ]; do
	"$CRUNCTL" health >"$tmp/out" 2>"$tmp/err"
	[ $? -eq 6 ] && break
	sleep 0.1
	i=$((i + 1))
done
run 6 "health while draining" health
check "health says draining" err 'not healthy: draining'
run 6 "submit while draining is refused" submit demo noop
check "503 says when to retry" err 'try again in [0-9]+ s'
run 0 "status still works while draining" status "$id_drain"
check "the job still runs" out '^State: +running'
run 0 "cancel while draining" cancel "$id_drain"
i=0
while [ $i -lt 100 ] && kill -0 "$pid" 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
if kill -0 "$pid" 2>/dev/null; then
	not_ok "crund exits once its last job ended"
	kill -KILL "$pid" 2>/dev/null
else
	ok "crund exits once its last job ended"
fi
wait "$pid" 2>/dev/null
pid=
run 5 "after crund exited: unreachable" health

echo "1..$n"
[ $failed -eq 0 ]
