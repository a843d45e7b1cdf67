#!/bin/bash
# events.sh — GET /v1/events (every job's state changes: ids, filters,
# Last-Event-ID resumption, the window and its reset, the token, the clean
# end at shutdown), POST /v1/jobs/{id}/retry, the list filters the
# dashboard uses (?job=, ?q=), GET /v1/stats and the dashboard's files
# under /ui/.  Prints TAP.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

# sse FILE [CURL ARGS...] PATH: follow an event stream into FILE in the
# background (BG_PID), bounded.
sse() {
	local file=$1
	shift
	bg curl -sN --max-time "$(slow 30)" "${CURL_AUTH[@]}" "$@" -o "$file"
}

# await_in FILE REGEX: wait (bounded) until FILE has a line matching REGEX.
# shellcheck disable=SC2317 # called through check
await_in() {
	local i
	for ((i = 0; i < $(slow 100); i++)); do
		grep -Eq -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# events FILE: the stream's events as JSON (lib.sh's sse_json), into FILE.json
events() { sse_json "$1" >"$1.json"; }

start_crund --store memory: --event-window 6 --grace 0 || bail "crund did not start"

# ---------------------------------------------------------------- the stream
all="$E2E_TMP/all.sse"
sse "$all" "$CRUND_URL/v1/events"
all_pid=$BG_PID
check "a new stream first says where it starts (an id alone)" await_in "$all" '^id: [0-9a-f]{8}-0$'
submit '{"plugin":"demo","job":"noop"}'
noop=$JOB_ID
submit '{"plugin":"demo","job":"fail","args":{"message":"boom"}}'
failed=$JOB_ID
check "the stream carries the jobs' ends" await_in "$all" "\"id\":\"$failed\".*\"state\":\"failed\""
last=$(grep '^id: ' "$all" | tail -n 1 | cut -c5-)
events "$all"
jf "$all.json" '[e["data"]["state"] for e in d if e["event"] == "job" and e["data"]["id"] == "'"$noop"'"]' >"$E2E_TMP/noop-states"
is "$(cat "$E2E_TMP/noop-states")" '["running","succeeded"]' "a job's events: running (it started at once), then succeeded"
is "$(jf "$all.json" '[e["data"]["error"] for e in d if e["event"] == "job" and e["data"]["state"] == "failed"][0]')" '{"code":"plugin_error"}' "a failed job's event carries its error code"
is "$(jf "$all.json" 'sorted(set(k for e in d if e["event"] == "job" for k in e["data"]))')" \
	'["attempt","created_at","error","finished_at","id","job","max_attempts","plugin","run_at","started_at","state"]' \
	"an event's data is a job summary (no args, result or log)"
ids=$(grep '^id: ' "$all" | cut -c5-)
like "$(printf '%s\n' "$ids" | tr '\n' ' ')" '^([0-9a-f]{8})-0 \1-1 \1-2 \1-3 \1-4 $' "every event has an id, numbered in order"
epoch=$(printf '%s\n' "$ids" | head -n 1 | cut -d- -f1)
like "$(curl -sN -o /dev/null -D - --max-time 1 "$CRUND_URL/v1/events" | tr -d '\r')" \
	'Content-Type: text/event-stream' "the stream is text/event-stream"

# -------------------------------------------------------------- filters
fp="$E2E_TMP/filtered.sse"
sse "$fp" "$CRUND_URL/v1/events?state=succeeded,cancelled&plugin=nosuch&plugin=demo"
fs="$E2E_TMP/failed.sse"
sse "$fs" "$CRUND_URL/v1/events?state=failed"
fx="$E2E_TMP/other.sse"
sse "$fx" "$CRUND_URL/v1/events?plugin=nosuch"
check "the filtered streams have started" await_in "$fx" '^id: '
submit '{"plugin":"demo","job":"noop"}'
n2=$JOB_ID
submit '{"plugin":"demo","job":"fail"}'
f2=$JOB_ID
check "the state filter passes the succeeded job" await_in "$fp" "\"id\":\"$n2\""
check "the failed-only stream gets the failure" await_in "$fs" "\"id\":\"$f2\""
events "$fp"
is "$(jf "$fp.json" '[e["data"]["state"] for e in d if e["event"] == "job"]')" '["succeeded"]' \
	"?state=succeeded,cancelled&plugin=nosuch&plugin=demo: only the succeeded job's end (lists and repeats combine)"
events "$fs"
is "$(jf "$fs.json" '[e["data"]["id"] for e in d if e["event"] == "job"]')" "[\"$f2\"]" "?state=failed: only the failure"
events "$fx"
is "$(jf "$fx.json" 'len([e for e in d if e["event"] == "job"])')" 0 "?plugin=nosuch: nothing"
req GET "/v1/events?state=bogus"
is "$HTTP_STATUS" 400 "an unknown state -> 400"
is_error invalid_parameter "... invalid_parameter"
req GET "/v1/events?plugin="
is "$HTTP_STATUS" 400 "an empty plugin filter -> 400"
for q in "state=failed," "state=,failed" "state=failed,,succeeded" "plugin=demo,"; do
	req GET "/v1/events?$q"
	is "$HTTP_STATUS" 400 "an empty name in a list ($q) -> 400"
done
req POST /v1/events
is "$HTTP_STATUS" 405 "POST /v1/events -> 405"

# ------------------------------------------------------------ resumption
# Where the first stream was after the first two jobs: event 4 (the fail's
# end).  Events 5.. are the second pair's; replaying from 4 gives them.
is "$last" "$epoch-4" "the first stream's last id before the second pair"
rs="$E2E_TMP/resume.sse"
: >"$rs"
curl -sN --max-time 1 -H "Last-Event-ID: $last" "$CRUND_URL/v1/events" -o "$rs"
events "$rs"
is "$(jf "$rs.json" '[(e["data"]["id"], e["data"]["state"]) for e in d if e["event"] == "job"]')" \
	"[[\"$n2\",\"running\"],[\"$n2\",\"succeeded\"],[\"$f2\",\"running\"],[\"$f2\",\"failed\"]]" \
	"Last-Event-ID replays exactly the events after it, in order"
like "$(grep '^id: ' "$rs" | head -n 1)" "^id: $epoch-5\$" "... starting with the next id"
: >"$rs"
curl -sN --max-time 1 "$CRUND_URL/v1/events?last_event_id=$epoch-6&state=failed" -o "$rs"
events "$rs"
is "$(jf "$rs.json" '[e["data"]["id"] for e in d if e["event"] == "job"]')" "[\"$f2\"]" \
	"?last_event_id= resumes too (EventSource cannot set headers), with filters applied to the replay"
: >"$rs"
curl -sN --max-time 1 -H "Last-Event-ID: $epoch-8" "$CRUND_URL/v1/events" -o "$rs"
events "$rs"
is "$(jf "$rs.json" 'len(d)')" 0 "resuming from the newest id replays nothing"

# the window holds 6 events: resuming from before it is a reset
: >"$rs"
curl -sN --max-time 1 -H "Last-Event-ID: $epoch-1" "$CRUND_URL/v1/events" -o "$rs"
events "$rs"
is "$(jf "$rs.json" 'd[0]["event"]')" reset "an id older than the window (6 events) -> a first event 'reset'"
is "$(jf "$rs.json" 'd[0]["data"]["reason"]')" window "... reason window"
is "$(jf "$rs.json" 'len([e for e in d if e["event"] == "job"])')" 0 "... and no partial replay"
like "$(grep '^id: ' "$rs" | head -n 1)" "^id: $epoch-8\$" "... with the newest id, to carry on from"
: >"$rs"
curl -sN --max-time 1 -H "Last-Event-ID: $epoch-2" "$CRUND_URL/v1/events" -o "$rs"
events "$rs"
is "$(jf "$rs.json" '[e["event"] for e in d][:1] + [len(d)]')" '["job",6]' "the oldest id still in the window replays the whole window"
for bad in "00000000-1" "$epoch-99" "garbage" "$epoch-x"; do
	: >"$rs"
	curl -sN --max-time 1 -H "Last-Event-ID: $bad" "$CRUND_URL/v1/events" -o "$rs"
	events "$rs"
	is "$(jf "$rs.json" 'd[0]["event"] + " " + d[0]["data"]["reason"]')" "reset unknown" \
		"Last-Event-ID '$bad' (another process's, from the future, not an id) -> reset unknown"
done

# --------------------------------------------------------------- retry
submit '{"plugin":"demo","job":"echo","args":{"value":[1,2]},"timeout":30,"max_attempts":2,"context":"isolated","idempotency_key":"e2e-retry"}' '?wait=10'
orig=$JOB_ID
is "$(j 'd["state"]')" succeeded "the original job succeeded"
req POST "/v1/jobs/$orig/retry?wait=10"
is "$HTTP_STATUS" 201 "POST /v1/jobs/{id}/retry of an ended job -> 201"
new=$(j 'd["id"]')
like "$new" '^[0-9a-z]+$' "... with a new job"
check "... a different one" test "$new" != "$orig"
is "$(header Location)" "/v1/jobs/$new" "... Location names the new job"
jt 'd["retry_of"] == "'"$orig"'" and d["args"] == {"value":[1,2]} and d["timeout"] == 30 and d["max_attempts"] == 2 and d["context"] == "isolated"' \
	"... retry_of the old job, the same args, timeout, max_attempts and context"
jt '"idempotency_key" not in d and d["state"] == "succeeded" and d["result"] == [1,2]' "... without the idempotency key; ?wait waited for its end"
req GET "/v1/jobs/$orig"
jt '"retry_of" not in d and d["state"] == "succeeded" and d["idempotency_key"] == "e2e-retry"' "the old job is unchanged"
req POST "/v1/jobs/$new/retry"
newer=$(j 'd["id"]')
is "$(j 'd["retry_of"]')" "$new" "a rerun can be run again (retry_of names its own parent)"
submit '{"plugin":"demo","job":"linger","args":{"seconds":60,"cleanup_seconds":0}}'
lj=$JOB_ID
req POST "/v1/jobs/$lj/retry"
is "$HTTP_STATUS" 409 "retry of a running job -> 409"
is_error job_active "... job_active"
req POST /v1/jobs/nosuchjob0/retry
is "$HTTP_STATUS" 404 "retry of an unknown job -> 404"
is_error not_found "... not_found"
req GET "/v1/jobs/$lj/retry"
is "$HTTP_STATUS" 405 "GET .../retry -> 405"
req POST "/v1/jobs/$lj/cancel"
poll_state "$lj" cancelled "$(slow 10)"
req POST "/v1/jobs/$lj/retry"
is "$HTTP_STATUS" 201 "a cancelled job can be run again"
lj2=$(j 'd["id"]')
req POST "/v1/jobs/$lj2/cancel"
check "the new event stream saw the rerun with retry_of" await_in "$all" "\"id\":\"$newer\".*\"retry_of\":\"$new\""

# -------------------------------------------------- list filters for the UI
req GET "/v1/jobs?job=echo"
jt '[x["id"] for x in jobs(d)] == ["'"$newer"'","'"$new"'","'"$orig"'"]' "GET /v1/jobs?job=echo: the echo jobs, newest first"
req GET "/v1/jobs?plugin=demo&job=linger&state=cancelled"
jt 'sorted(x["id"] for x in jobs(d)) == sorted(["'"$lj"'","'"$lj2"'"])' "?job= combines with ?plugin= and ?state="
req GET "/v1/jobs?q=e2e-re"
jt '[x["id"] for x in jobs(d)] == ["'"$orig"'"]' "?q= finds text in the idempotency key"
req GET "/v1/jobs?q=$orig"
jt '[x["id"] for x in jobs(d)] == ["'"$orig"'"]' "?q= finds text in the id"
req GET "/v1/jobs?q=${orig:0:13}&limit=2"
jt 'len(jobs(d)) == 2 and cursor(d) is not None' "?q= pages with the cursor"
req GET "/v1/jobs?q=zzzz-none"
jt 'jobs(d) == []' "?q= with no match: an empty page"

# ---------------------------------------------------------------- stats
req GET /v1/stats
is "$HTTP_STATUS" 200 "GET /v1/stats -> 200"
jt 'd["jobs_by_plugin"]["demo"]["succeeded"] >= 4 and d["step_seconds"] == 10 and isinstance(d["points"], list) and d["loop_lag_seconds"] >= 0' \
	"GET /v1/stats: jobs by plugin and state, the step, points, loop lag"

# ------------------------------------------------------------ the files
req GET /ui/
is "$HTTP_STATUS" 200 "GET /ui/ -> 200"
like "$(header Content-Type)" '^text/html; charset=utf-8$' "... text/html"
like "$(header Content-Security-Policy)" "default-src 'none'; script-src 'self'" "... with a Content-Security-Policy of this origin only"
etag=$(header ETag)
like "$etag" '^"[0-9a-f]{16}"$' "... an ETag"
is "$(header Cache-Control)" no-cache "... revalidated (Cache-Control: no-cache)"
req GET /ui/ -H "If-None-Match: $etag"
is "$HTTP_STATUS" 304 "the same ETag -> 304"
req GET /ui/ -H "If-None-Match: *"
is "$HTTP_STATUS" 304 "If-None-Match: * -> 304 (any representation matches)"
req GET /ui/app.js
like "$(header Content-Type)" '^text/javascript' "app.js is text/javascript"
req GET /ui/style.css
like "$(header Content-Type)" '^text/css' "style.css is text/css"
req GET /ui/nosuch.js
is "$HTTP_STATUS" 404 "an unknown file -> 404"
req GET /ui
is "$HTTP_STATUS" 301 "/ui -> 301"
is "$(header Location)" /ui/ "... to /ui/"
like "$(header Content-Type):$HTTP_BODY" '^text/plain.*:the dashboard is at /ui/' "... as text saying so (it was an empty application/json)"
check "nothing in the files names another host" bash -c "! grep -Eo 'https?://[^\" )]+' '$top_srcdir/ui/index.html' '$top_srcdir/ui/app.js' '$top_srcdir/ui/style.css' | grep -v 'www.w3.org/2000/svg'"

# ------------------------------------------------- shutdown ends the stream
kill -TERM "$CRUND_PID"
wait "$all_pid"
is "$?" 0 "at shutdown the stream ends cleanly (curl exits 0)"
events "$all"
is "$(jf "$all.json" 'd[-1]["event"]')" shutdown "... with a last event 'shutdown'"
is "$(jf "$all.json" '[e["data"]["state"] for e in d if e["event"] == "job" and e["data"]["id"] == "'"$lj2"'"][-1]')" cancelled \
	"... after the final state of every job"
wait_crund_exit "$(slow 15)"
is "$CRUND_STATUS" 0 "crund exits 0 with event streams open"
check "crund log has no sanitizer/valgrind reports" log_is_clean

# ------------------------------------------------------------ slow reader
# A client that does not read while 40000 events pass (the window keeps
# 1024): once it reads again a `reset` (reason overflow) says it fell out
# of the window; the events before it are whole and in order.  A small
# receive buffer keeps the kernel from absorbing much of the backlog (still
# a few MB on loopback: 20000 jobs make ~13 MB of events).
start_crund --store memory: || bail "crund did not start for the slow reader"
slow_out=$("$PY" - "$CRUND_PORT" "$(slow 60)" <<'PYEOF'
import json, socket, sys, time
port, bound = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", port))
# HTTP/1.0: the body is not chunked, so event lines are never split
s.sendall(b"GET /v1/events HTTP/1.0\r\n\r\n")
time.sleep(0.2)
body = json.dumps({"plugin": "demo", "job": "noop"}).encode()
req = b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
c = socket.create_connection(("127.0.0.1", port))
c.settimeout(bound)
n, pending = 20000, b""
for i in range(0, n, 50):
    c.sendall(req * 50)
    got = 0
    while got < 50:
        pending += c.recv(65536)
        while b"\r\n\r\n" in pending:
            head, _, rest = pending.partition(b"\r\n\r\n")
            length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
            if len(rest) < length:
                break
            pending = rest[length:]
            got += 1
s.settimeout(bound)
data, deadline = b"", time.monotonic() + bound
while time.monotonic() < deadline and b"event: reset" not in data:
    chunk = s.recv(1 << 20)
    if not chunk:
        break
    data += chunk
text = data.decode("utf-8", "replace")
ids = [int(l.split("-")[1]) for l in text.splitlines() if l.startswith("id: ") and "-" in l]
reset = text.find("event: reset")
# the ids before the reset (the last one is the reset's own: the newest)
before = [int(l.split("-")[1]) for l in text[:reset].splitlines() if l.startswith("id: ")][:-1] if reset >= 0 else []
reason = json.loads(text[reset:].split("data: ", 1)[1].split("\n", 1)[0])["reason"] if reset >= 0 else None
contiguous = before[1:] == list(range(before[1], before[1] + len(before) - 1)) if len(before) > 2 else False
print(reason, "contiguous" if contiguous else "holes", len(before))
PYEOF
)
like "$slow_out" '^overflow contiguous [0-9]+$' "a client that does not read gets a reset (overflow) after the events it had, not a silent hole ($slow_out)"
req GET /v1/health
is "$HTTP_STATUS" 200 "the daemon is fine after the slow reader"
stop_and_check_crund "crund after a slow reader"

# ------------------------------------ a replay larger than a stream's buffer
# Resuming 10000 events (2.6 MB) of a 20000-event window: every one, in
# order, no reset.  The replay was put in the stream's 1 MiB buffer at once,
# and what did not fit was dropped: 3811 events, then a reset (overflow).
start_crund --store memory: --event-window 20000 --max-queued 100000 || bail "crund did not start with --event-window 20000"
first=$(curl -sN --max-time 1 "$CRUND_URL/v1/events" | sed -n 's/^id: //p' | head -n 1)
"$PY" - "$CRUND_PORT" <<'PYEOF'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
for i in range(5000):
    c.request("POST", "/v1/jobs", body='{"plugin":"demo","job":"noop"}', headers={"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    assert r.status == 201, r.status
PYEOF
curl -sN --max-time "$(slow 10)" -H "Last-Event-ID: $first" "$CRUND_URL/v1/events" >"$E2E_TMP/replay.txt"
is "$(grep -c '^event: job' "$E2E_TMP/replay.txt")" 10000 "a resume replays all 10000 events of the window (2.6 MB)"
is "$(grep -c '^event: reset' "$E2E_TMP/replay.txt")" 0 "... with no reset"
check "... in order, each once" "$PY" -c '
import sys
ids = [int(l.split("-")[1]) for l in open(sys.argv[1]) if l.startswith("id: ")]
assert ids == list(range(1, 10001)), (ids[:3], ids[-3:], len(ids))' "$E2E_TMP/replay.txt"
stop_and_check_crund "crund after a large replay"

# ------------------------------------ a filter that passes nothing
# A ?state=failed stream on a daemon whose jobs all succeed: its client's
# last id moves on with the events it does not want (an id alone), so a
# reconnect is not told it missed events once they leave the window.
start_crund --store memory: --event-window 4 --stream-ping 1 || bail "crund did not start with --event-window 4"
curl -sN --max-time "$(slow 4)" "$CRUND_URL/v1/events?state=failed" >"$E2E_TMP/filtered.txt" &
fpid=$!
wait_held 1
for _ in 1 2 3 4 5 6; do
	submit '{"plugin":"demo","job":"noop"}' '?wait=5'
done
wait "$fpid"
is "$(grep -c '^event:' "$E2E_TMP/filtered.txt")" 0 "a ?state=failed stream sends no event while every job succeeds"
flast=$(sed -n 's/^id: //p' "$E2E_TMP/filtered.txt" | tail -n 1)
like "$flast" "-1[0-9]\$" "... but its last id moves past the 12 events it filtered out ($flast)"
curl -sN --max-time "$(slow 3)" -H "Last-Event-ID: $flast" "$CRUND_URL/v1/events?state=failed" >"$E2E_TMP/filtered2.txt" &
fpid=$!
wait_held 1
submit '{"plugin":"demo","job":"fail"}' '?wait=5'
wait "$fpid"
is "$(grep -c '^event: reset' "$E2E_TMP/filtered2.txt")" 0 "a reconnect from that id is not told it missed events"
is "$(grep -c '^event: job' "$E2E_TMP/filtered2.txt")" 1 "... and gets the one failed job"
stop_and_check_crund "crund with a filtered stream"

# ------------------------------------ retry_of is kept by a durable store
start_crund || bail "crund did not start with its SQLite store"
submit '{"plugin":"demo","job":"noop"}' '?wait=10'
first=$JOB_ID
req POST "/v1/jobs/$first/retry?wait=10"
again=$(j 'd["id"]')
stop_crund
start_crund || bail "crund did not restart with its SQLite store"
req GET "/v1/jobs/$again"
jt 'd["retry_of"] == "'"$first"'" and d["state"] == "succeeded"' "after a restart the rerun still names the job it ran again"
stop_and_check_crund
# a job whose plugin is loaded but whose job is not (renamed in the store):
# counted under its plugin, which is named once (a second "demo" key came
# after the first, and the dashboard read that one)
"$PY" -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("UPDATE jobs SET job = ? WHERE id = ?", ("gone_job", sys.argv[2])); c.commit()' \
	"${CRUND_STORE#sqlite:}" "$first"
start_crund || bail "crund did not restart with its SQLite store"
req GET /v1/stats
is "$(grep -o '"demo":' "$HTTP_BODY_FILE" | wc -l)" 1 "GET /v1/stats names a plugin once, also with a job of it not loaded"
stop_and_check_crund
# started again without the demo plugin: its jobs in the store are still
# counted by plugin and state (the Overview's table was empty)
mkdir -p "$E2E_TMP/no-plugins"
saved_plugin_args=("${CRUND_PLUGIN_ARGS[@]}")
CRUND_PLUGIN_ARGS=(--plugin-dir "$E2E_TMP/no-plugins")
start_crund || bail "crund did not restart without plugins"
req GET /v1/stats
jt 'd["jobs_by_plugin"].get("demo", {}).get("succeeded", 0) >= 2' \
	"GET /v1/stats counts the jobs of a plugin that is not loaded now (${HTTP_BODY:0:120})"
stop_and_check_crund "crund without plugins"
CRUND_PLUGIN_ARGS=("${saved_plugin_args[@]}")

# ------------------------------------------------------------------ auth
token="e2e-$RANDOM$RANDOM-secret"
printf '%s\n' "$token" >"$E2E_TMP/token"
chmod 600 "$E2E_TMP/token"
start_crund --store memory: --token-file "$E2E_TMP/token" || bail "crund did not start with --token-file"
req GET /v1/events
is "$HTTP_STATUS" 401 "with a token: GET /v1/events without it -> 401"
req POST /v1/jobs/x/retry
like "$HTTP_STATUS" '^(401|404)$' "... POST .../retry without it -> 401 (or 404)"
req GET /v1/stats
is "$HTTP_STATUS" 401 "... GET /v1/stats without it -> 401"
req GET /ui/
is "$HTTP_STATUS" 200 "... the dashboard's files need no token (they hold no data)"
CURL_AUTH=(-H "Authorization: Bearer $token")
sa="$E2E_TMP/auth.sse"
sse "$sa" "$CRUND_URL/v1/events"
check "with the token the stream opens" await_in "$sa" '^id: '
submit '{"plugin":"demo","job":"noop"}'
check "... and carries events" await_in "$sa" "\"id\":\"$JOB_ID\".*succeeded"
stop_and_check_crund

done_testing
