# shellcheck shell=bash
# tests/e2e/lib.sh — shared helpers for the end-to-end tests (bash only).
#
# Sourced by tests/e2e/*.sh.  Each script starts a real crund from the build
# tree on a free loopback port, drives it with real curl, and prints TAP.
# The harness exports top_builddir and top_srcdir; running a script by hand
# needs the same two variables.
#
# CRUND_VALGRIND=1: crund runs under valgrind (memcheck, --error-exitcode=99)
# and every bound below is stretched, because valgrind is ~20x slower.

: "${top_builddir:?top_builddir must be set (the harness exports it)}"
: "${top_srcdir:?top_srcdir must be set (the harness exports it)}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_stack_use_after_return=0:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

# Slowness factor for every bound (never for pass/fail on speed itself).
E2E_SLOW=1
[ "${CRUND_VALGRIND:-0}" = 1 ] && E2E_SLOW=10
slow() { echo $(($1 * E2E_SLOW)); }

E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/crund-e2e.XXXXXX") || exit 99
CRUND_BIN="$top_builddir/daemon/crund"
CRUND_PLUGIN_DIR="$top_builddir/plugins/.libs"
CRUND_STORE="sqlite:$E2E_TMP/crund.db"  # start_crund's default --store
CRUND_PID=
CRUND_PORT=
CRUND_URL=
CRUND_LOG=
CRUND_STATUS=
CRUND_N=0           # how many daemons this script started (log file names)
CRUND_PLUGIN_ARGS=(--plugin-dir "$CRUND_PLUGIN_DIR")  # start_crund's plugin flags
CRUND_HOST=127.0.0.1  # start_crund's listening address (the URL stays on loopback)
CURL_AUTH=()        # extra curl args for every request (auth.sh sets a token)
BG_PIDS=()          # background helpers (curl clients) to reap at exit

# ---------------------------------------------------------------- TAP
tap_n=0
tap_failed=0

# ok STATUS DESCRIPTION: STATUS 0 = pass.
ok() {
	tap_n=$((tap_n + 1))
	[ -n "${E2E_TIMING:-}" ] && echo "# t=${EPOCHREALTIME}"
	if [ "$1" -eq 0 ]; then
		echo "ok $tap_n - $2"
	else
		tap_failed=$((tap_failed + 1))
		echo "not ok $tap_n - $2"
	fi
	return "$1"
}

diag() { printf '%s\n' "$@" | sed 's/^/# /'; }

# is GOT WANT DESCRIPTION
is() {
	if [ "$1" = "$2" ]; then
		ok 0 "$3"
	else
		ok 1 "$3"
		diag "got:  '$1'" "want: '$2'"
		req_diag
		return 1
	fi
}

# like GOT EXTENDED-REGEX DESCRIPTION
like() {
	if printf '%s' "$1" | grep -Eq -- "$2"; then
		ok 0 "$3"
	else
		ok 1 "$3"
		diag "got:  '$(printf '%s' "$1" | head -c 400)'" "want match: /$2/"
		req_diag
		return 1
	fi
}

# check DESCRIPTION COMMAND [ARGS...]: pass when the command exits 0.
check() {
	local desc=$1
	shift
	if "$@"; then
		ok 0 "$desc"
	else
		ok 1 "$desc"
		req_diag
		return 1
	fi
}

# Call at the very end: prints the plan, dumps the daemon log on failure.
done_testing() {
	echo "1..$tap_n"
	if [ "$tap_failed" -ne 0 ]; then
		local f
		for f in "$E2E_TMP"/crund-*.log; do
			[ -e "$f" ] || continue
			diag "---- tail of $f"
			tail -n 15 "$f" | sed 's/^/# /'
		done
	fi
	exit 0
}

bail() {
	echo "Bail out! $*"
	exit 99
}

# ---------------------------------------------------------------- cleanup
e2e_cleanup() {
	local p
	exec 7>&- 8<&-
	kill "$JF_PID" 2>/dev/null
	for p in "${BG_PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	if [ -n "$CRUND_PID" ] && kill -0 "$CRUND_PID" 2>/dev/null; then
		kill -TERM "$CRUND_PID" 2>/dev/null
		local i
		for ((i = 0; i < 50; i++)); do
			kill -0 "$CRUND_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$CRUND_PID" 2>/dev/null
	fi
	wait 2>/dev/null
	if [ -n "${E2E_KEEP:-}" ]; then
		echo "# kept $E2E_TMP" >&2
	else
		rm -rf "$E2E_TMP"
	fi
}
trap e2e_cleanup EXIT
trap 'exit 98' INT TERM HUP

# ---------------------------------------------------------------- daemon
# free_port: a free loopback port (start_crund retries when crund loses
# the race for it).
# shellcheck source=tests/e2e/port.sh
. "$top_srcdir/tests/e2e/port.sh"

# crund_cmd ARGS...: sets CRUND_CMD to the command line running crund
# (through valgrind when CRUND_VALGRIND=1).
# The libtool wrapper script costs ~0.5 s per start on a loaded machine
# and the scripts start crund ~25 times: when the real binary sits in
# .libs (a shared libcrunner), run it directly with the build tree's
# library path, which is all the wrapper would set.
CRUND_REAL="$top_builddir/daemon/.libs/crund"
if [ -x "$CRUND_REAL" ] && [ -d "$top_builddir/lib/.libs" ] && grep -q 'libtool' "$CRUND_BIN" 2>/dev/null; then
	CRUND_ENV=(env "LD_LIBRARY_PATH=$top_builddir/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
else
	CRUND_REAL=$CRUND_BIN
	CRUND_ENV=()
fi

crund_cmd() {
	if [ "${CRUND_VALGRIND:-0}" = 1 ]; then
		# libtool looks through its wrapper so valgrind sees crund itself
		CRUND_CMD=("$top_builddir/libtool" --mode=execute
			valgrind --error-exitcode=99 -q --leak-check=full --errors-for-leak-kinds=definite
			--suppressions="$top_srcdir/build-aux/valgrind.supp" "$CRUND_BIN" "$@")
	else
		CRUND_CMD=("${CRUND_ENV[@]}" "$CRUND_REAL" "$@")
	fi
}

# start_crund [EXTRA FLAGS...]: starts crund listening on a fresh port with
# the build tree's plugins and, unless the flags name a --store, the
# durable store $CRUND_STORE (an SQLite file in this script's temporary
# directory: a restart finds the jobs of the previous start); waits
# (bounded) for /v1/health to answer 200.
# Sets CRUND_PID, CRUND_PORT, CRUND_URL, CRUND_LOG.  Returns non-zero (with
# the log in diagnostics) if the daemon never became healthy.
start_crund() {
	[ -x "$CRUND_BIN" ] || bail "crund not built: $CRUND_BIN"
	local attempt i code a
	local store=(--store "$CRUND_STORE")
	for a in "$@"; do
		[ "$a" = --store ] && store=()
	done
	for ((attempt = 0; attempt < 3; attempt++)); do
		CRUND_PORT=$(free_port) || bail "no free port"
		CRUND_URL="http://127.0.0.1:$CRUND_PORT"
		CRUND_N=$((CRUND_N + 1))
		CRUND_LOG="$E2E_TMP/crund-$CRUND_N.log"
		CRUND_STATUS=
		crund_cmd --listen "$CRUND_HOST:$CRUND_PORT" "${CRUND_PLUGIN_ARGS[@]}" "${store[@]}" "$@"
		"${CRUND_CMD[@]}" >"$CRUND_LOG" 2>&1 </dev/null 7>&- 8<&- &
		CRUND_PID=$!
		for ((i = 0; i < $(slow 100); i++)); do
			if ! kill -0 "$CRUND_PID" 2>/dev/null; then
				break
			fi
			code=$(curl -s --max-time 1 -o /dev/null -w '%{http_code}' "$CRUND_URL/v1/health" 2>/dev/null)
			[ "$code" = 200 ] && return 0
			sleep 0.1
		done
		if kill -0 "$CRUND_PID" 2>/dev/null; then
			# Alive but never healthy within the bound: not a port race.
			diag "crund did not answer /v1/health within $(slow 10) s"
			kill -KILL "$CRUND_PID" 2>/dev/null
			wait "$CRUND_PID" 2>/dev/null
			CRUND_PID=
			tail -n 20 "$CRUND_LOG" | sed 's/^/# /'
			return 1
		fi
		wait "$CRUND_PID" 2>/dev/null
		CRUND_PID=
		grep -qi "address already in use" "$CRUND_LOG" || break
	done
	diag "crund exited at start:"
	tail -n 20 "$CRUND_LOG" | sed 's/^/# /'
	return 1
}

# wait_crund_exit SECONDS: waits (bounded) for the daemon to exit; sets
# CRUND_STATUS to its exit status, or "timeout" (then it is killed).
wait_crund_exit() {
	local i limit=$(($1 * 10))
	for ((i = 0; i < limit; i++)); do
		kill -0 "$CRUND_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$CRUND_PID" 2>/dev/null; then
		kill -KILL "$CRUND_PID" 2>/dev/null
		wait "$CRUND_PID" 2>/dev/null
		CRUND_STATUS=timeout
	else
		wait "$CRUND_PID"
		CRUND_STATUS=$?
	fi
	CRUND_PID=
}

# stop_crund: SIGTERM and a bounded wait; sets CRUND_STATUS.
stop_crund() {
	[ -n "$CRUND_PID" ] || return 0
	kill -TERM "$CRUND_PID" 2>/dev/null
	wait_crund_exit "$(slow 15)"
}

# Sanitizer / UBSan / valgrind reports in the current daemon log?
log_is_clean() {
	! grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error|ERROR SUMMARY: [1-9]|Invalid (read|write)|uninitialised' "$CRUND_LOG"
}

# Runtime hygiene: the runner reports tasks that leaked or lost an error.
log_has_no_leaked_tasks() {
	! grep -Eq 'never retrieved|destroyed but it is pending|tasks are still alive' "$CRUND_LOG"
}

# The checks every script ends each daemon with.
stop_and_check_crund() {
	local what=${1:-crund}
	stop_crund
	is "$CRUND_STATUS" 0 "$what exits 0 on SIGTERM"
	check "$what log has no sanitizer/valgrind reports" log_is_clean ||
		grep -E -m5 -A5 'AddressSanitizer|LeakSanitizer|runtime error|ERROR SUMMARY' "$CRUND_LOG" | sed 's/^/# /'
	check "$what log reports no leaked tasks" log_has_no_leaked_tasks ||
		grep -E -m5 'never retrieved|destroyed but it is pending|tasks are still alive' "$CRUND_LOG" | sed 's/^/# /'
}

# start_fail NAME ARGS...: runs crund expecting it to exit by itself;
# sets START_STATUS ("still-running" if it did not within the bound) and
# START_LOG.
start_fail() {
	local name=$1 i
	shift
	START_LOG="$E2E_TMP/start-$name.log"
	crund_cmd "$@"
	"${CRUND_CMD[@]}" >"$START_LOG" 2>&1 </dev/null 7>&- 8<&- &
	local pid=$!
	for ((i = 0; i < $(slow 5) * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
		wait "$pid" 2>/dev/null
		# shellcheck disable=SC2034 # START_STATUS is read by the test scripts
		START_STATUS=still-running
	else
		wait "$pid"
		# shellcheck disable=SC2034 # START_STATUS is read by the test scripts
		START_STATUS=$?
	fi
}

# ---------------------------------------------------------------- HTTP
# req METHOD PATH [CURL ARGS...]: one request to the daemon.  Sets
# HTTP_STATUS (000 when curl failed), HTTP_BODY, and leaves the headers in
# $HTTP_HDR_FILE and the body in $HTTP_BODY_FILE.
HTTP_BODY_FILE="$E2E_TMP/body"
HTTP_HDR_FILE="$E2E_TMP/headers"
REQ_TIMEOUT=$(slow 10)
REQ_DESC=
req() {
	local method=$1 path=$2
	shift 2
	: >"$HTTP_BODY_FILE"
	: >"$HTTP_HDR_FILE"
	REQ_DESC="$method $path"
	HTTP_STATUS=$(curl -sS --max-time "$REQ_TIMEOUT" -X "$method" -o "$HTTP_BODY_FILE" \
		-D "$HTTP_HDR_FILE" -w '%{http_code}' "${CURL_AUTH[@]}" "$@" \
		"$CRUND_URL$path" 2>"$E2E_TMP/curl.err") || true
	[ -n "$HTTP_STATUS" ] || HTTP_STATUS=000
	# shellcheck disable=SC2034 # HTTP_BODY is read by the test scripts
	HTTP_BODY=$(cat "$HTTP_BODY_FILE")
}

# post_json PATH JSON [CURL ARGS...]
post_json() {
	local path=$1 body=$2
	shift 2
	req POST "$path" -H 'Content-Type: application/json' --data-binary "$body" "$@"
}

# Print the last request for a failed assertion.
req_diag() {
	[ -n "$REQ_DESC" ] || return 0
	diag "last request: $REQ_DESC -> $HTTP_STATUS" "body: $(head -c 600 "$HTTP_BODY_FILE" 2>/dev/null)"
	[ -s "$E2E_TMP/curl.err" ] && diag "curl: $(cat "$E2E_TMP/curl.err")"
	return 0
}

# header NAME: value of a response header of the last request (first one).
header() {
	tr -d '\r' <"$HTTP_HDR_FILE" | awk -v n="$1" 'BEGIN { n = tolower(n) }
		{ i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == n) {
			v = substr($0, i + 1); sub(/^[ \t]+/, "", v); print v; exit } }'
}

# ---------------------------------------------------------------- JSON
# jf FILE EXPR: evaluate a Python expression over the JSON in FILE (bound
# to `d`); strings print raw, everything else as compact JSON (newlines in
# the answer print as \n).  Prints nothing and fails if the file is not
# JSON or the expression raises.  One python process serves every call
# through two fifos: starting python costs ~0.1-0.2 s on a busy machine,
# and the scripts evaluate hundreds of expressions.
JF_PY='
import json, re, sys
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
def rfc3339(s):
    return isinstance(s, str) and bool(RFC3339.match(s))
def secs(s):
    """An RFC 3339 time (as crund writes it) in seconds since the epoch."""
    from datetime import datetime
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
def jobs(x):
    """The job array of a list answer, whatever it is wrapped in."""
    if isinstance(x, list):
        return x
    for k in ("jobs", "items", "data"):
        if isinstance(x.get(k), list):
            return x[k]
    raise KeyError("no job array")
def jobof(x):
    """The job inside an event or answer that may wrap it as {"job": {...}}."""
    return x["job"] if isinstance(x, dict) and isinstance(x.get("job"), dict) else x
def cursor(x):
    if isinstance(x, list):
        return None
    for k in ("next_cursor", "cursor", "next"):
        if k in x:
            return x[k]
    return None
inp = open(sys.argv[1])
out = open(sys.argv[2], "w")
for line in inp:
    path, _, expr = line.rstrip("\n").partition("\t")
    try:
        with open(path) as f:
            d = json.load(f)
        v = eval(expr, {"d": d, "rfc3339": rfc3339, "jobs": jobs, "cursor": cursor,
                        "jobof": jobof, "re": re, "secs": secs})
        v = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
        out.write("=" + v.replace("\n", "\\n") + "\n")
    except Exception as e:
        out.write("!" + repr(e).replace("\n", " ") + "\n")
    out.flush()
'
mkfifo "$E2E_TMP/jf.in" "$E2E_TMP/jf.out" || exit 99
"$PY" -S -c "$JF_PY" "$E2E_TMP/jf.in" "$E2E_TMP/jf.out" &
JF_PID=$!
exec 7>"$E2E_TMP/jf.in" 8<"$E2E_TMP/jf.out"
JF_ERR=
jf() {
	local line
	printf '%s\t%s\n' "$1" "${2//$'\n'/ }" >&7
	IFS= read -r line <&8 || return 2
	case $line in
	=*) printf '%s\n' "${line#=}" ;;
	*) JF_ERR=${line#!}; return 1 ;;
	esac
}

# j EXPR: jf over the last response body.
j() { jf "$HTTP_BODY_FILE" "$1"; }

# jt EXPR DESCRIPTION: pass when EXPR is true over the last response body.
jt() {
	if [ "$(j "bool($1)")" = true ]; then
		ok 0 "$2"
	else
		ok 1 "$2"
		diag "expected: $1"
		[ -n "$JF_ERR" ] && diag "python: $JF_ERR"
		JF_ERR=
		req_diag
		return 1
	fi
}

# Error body check: {"error":{"code":CODE,"message":non-empty}}.
# is_error CODE-REGEX DESCRIPTION
is_error() {
	jt "isinstance(d.get('error'), dict) and re.fullmatch(r'$1', d['error'].get('code') or '') is not None and isinstance(d['error'].get('message'), str) and len(d['error']['message']) > 0" "$2"
}

# ---------------------------------------------------------------- jobs
# submit JSON [QUERY]: POST /v1/jobs; sets JOB_ID from the answer.
submit() {
	post_json "/v1/jobs${2:-}" "$1"
	# shellcheck disable=SC2034 # JOB_ID is read by the test scripts
	JOB_ID=$(j 'd["id"]')
}

# job_wait ID [SECONDS]: GET /v1/jobs/ID?wait=SECONDS (long-poll).
job_wait() {
	local w=${2:-$(slow 10)}
	REQ_TIMEOUT=$((w + 5)) req GET "/v1/jobs/$1?wait=$w"
}

# job_state ID: prints the job's state (one GET).
job_state() {
	req GET "/v1/jobs/$1"
	j 'd["state"]'
}

# wait_held N [URL]: waits (up to `slow 10` s) until the crund at URL
# (default $CRUND_URL) holds N long-polls and event streams: clients
# started in the background are connected, not only forked.  1 if not.
wait_held() {
	local n=$1 url=${2:-$CRUND_URL} i h
	for ((i = 0; i < $(slow 10) * 10; i++)); do
		h=$(curl -s "${CURL_AUTH[@]}" "$url/metrics" | sed -n 's/^crund_http_held_connections //p')
		[ "${h:-0}" -ge "$n" ] && return 0
		sleep 0.1
	done
	return 1
}

# poll_state ID STATE-REGEX SECONDS: polls (10/s) until the state matches.
poll_state() {
	local i s
	for ((i = 0; i < $3 * 10; i++)); do
		s=$(job_state "$1")
		printf '%s' "$s" | grep -Eqx -- "$2" && return 0
		sleep 0.1
	done
	return 1
}

# poll_health SECONDS: polls GET /v1/health (10/s) until it answers 200;
# HTTP_STATUS holds the last answer's status.
poll_health() {
	local i
	for ((i = 0; i < $1 * 10; i++)); do
		req GET /v1/health
		[ "$HTTP_STATUS" = 200 ] && return 0
		sleep 0.1
	done
	return 1
}

# bg CMD...: runs a helper in the background and remembers its pid (BG_PID).
bg() {
	"$@" 7>&- 8<&- &
	BG_PID=$!
	BG_PIDS+=("$BG_PID")
}

# now_ms: wall clock in milliseconds (for bounds, never for pass/fail on speed).
now_ms() { date +%s%3N; }

# sse_json FILE: parses a text/event-stream capture into a JSON array of
# {"event": NAME, "data": PARSED-JSON-or-string} (printed on stdout).
sse_json() {
	"$PY" - "$1" <<'PYEOF'
import json, sys
events, name, data = [], None, []
for line in open(sys.argv[1], encoding="utf-8", errors="replace").read().splitlines():
    if line == "":
        if data or name:
            text = "\n".join(data)
            try:
                val = json.loads(text)
            except Exception:
                val = text
            events.append({"event": name or "message", "data": val})
        name, data = None, []
        continue
    if line.startswith(":"):
        continue
    field, _, value = line.partition(":")
    if value.startswith(" "):
        value = value[1:]
    if field == "event":
        name = value
    elif field == "data":
        data.append(value)
if data or name:
    events.append({"event": name or "message", "data": "\n".join(data), "unterminated": True})
print(json.dumps(events))
PYEOF
}
