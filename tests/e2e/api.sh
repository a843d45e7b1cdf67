#!/bin/bash
# api.sh — every route of HTTP API v1 (docs/ARCHITECTURE.md §5) against a real crund with
# the demo plugin, driven by curl.  Prints TAP.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

start_crund || bail "crund did not start"

# ------------------------------------------------------------ submit + get
submit '{"plugin":"demo","job":"noop"}'
is "$HTTP_STATUS" 201 "POST /v1/jobs noop -> 201"
like "$(header Location)" "^(http://[^/]+)?/v1/jobs/$JOB_ID\$" "POST /v1/jobs: Location names the new job"
is "$(header Content-Type)" 'application/json; charset=utf-8' "POST /v1/jobs: Content-Type application/json; charset=utf-8"
like "$JOB_ID" '^[A-Za-z0-9_~.-]+$' "job id is URL-safe"
jt 'all(k in d for k in ("id","plugin","job","args","state","result","error","progress","created_at","started_at","finished_at","timeout"))' \
	"job object has every documented field"
jt 'd["plugin"] == "demo" and d["job"] == "noop" and isinstance(d["args"], dict)' "job echoes plugin, job and args"
jt 'd["state"] in ("queued","running","succeeded")' "new job state is queued, running or succeeded"
jt 'rfc3339(d["created_at"])' "created_at is RFC 3339"
noop_id=$JOB_ID

job_wait "$noop_id" 5
is "$HTTP_STATUS" 200 "GET /v1/jobs/{id}?wait=5 -> 200"
jt 'd["id"] == "'"$noop_id"'" and d["state"] == "succeeded"' "noop job ends succeeded"
jt 'd["result"] == {"ok": True}' "noop result is {\"ok\":true}"
jt 'd["error"] is None' "succeeded job has error null"
jt 'rfc3339(d["started_at"]) and rfc3339(d["finished_at"])' "started_at and finished_at are RFC 3339"
jt 'd["created_at"] <= d["started_at"] <= d["finished_at"] or d["created_at"][:19] <= d["started_at"][:19] <= d["finished_at"][:19]' \
	"created_at <= started_at <= finished_at"

req GET "/v1/jobs/$noop_id"
is "$HTTP_STATUS" 200 "GET /v1/jobs/{id} -> 200"
jt 'd["state"] == "succeeded"' "GET without wait shows the ended job"

# ------------------------------------------------------------ long-poll
submit '{"plugin":"demo","job":"sleep","args":{"seconds":0.3}}' '?wait=5'
is "$HTTP_STATUS" 201 "POST ?wait=5 sleep 0.3 -> 201"
jt 'd["state"] == "succeeded"' "POST ?wait holds the answer until the job ended"
jt 'd["result"] == {"slept": 0.3}' "sleep result is {\"slept\":0.3}"

submit '{"plugin":"demo","job":"sleep","args":{"seconds":30}}' '?wait=0.3'
is "$HTTP_STATUS" 201 "POST ?wait=0.3 sleep 30 -> 201"
jt 'd["state"] in ("running","queued")' "POST ?wait that runs out answers the active job"
long_id=$JOB_ID
REQ_TIMEOUT=5 req GET "/v1/jobs/$long_id?wait=0.3"
is "$HTTP_STATUS" 200 "GET ?wait=0.3 on a running job -> 200"
jt 'd["state"] == "running"' "GET ?wait that runs out answers state running"

# ------------------------------------------------------------ cancel / delete
req DELETE "/v1/jobs/$long_id"
is "$HTTP_STATUS" 409 "DELETE of a running job -> 409"
is_error '[a-z_]+' "DELETE 409 has an error body"

req POST "/v1/jobs/$long_id/cancel"
is "$HTTP_STATUS" 202 "POST /v1/jobs/{id}/cancel on a running job -> 202"
jt 'd["id"] == "'"$long_id"'"' "cancel answers the job"
job_wait "$long_id" 5
jt 'd["state"] == "cancelled"' "cancelled job ends cancelled"
jt 'd["error"]["code"] == "cancelled"' "cancelled job has error.code cancelled"
jt 'd["result"] is None and rfc3339(d["finished_at"])' "cancelled job: result null, finished_at set"

req POST "/v1/jobs/$long_id/cancel"
is "$HTTP_STATUS" 409 "cancel of an ended job -> 409"
is_error '[a-z_]+' "cancel 409 has an error body"

req DELETE "/v1/jobs/$long_id"
is "$HTTP_STATUS" 204 "DELETE of an ended job -> 204"
is "$HTTP_BODY" "" "DELETE 204 has no body"
req GET "/v1/jobs/$long_id"
is "$HTTP_STATUS" 404 "GET of a deleted job -> 404"
is_error '[a-z_]+' "404 has an error body"
req DELETE "/v1/jobs/$long_id"
is "$HTTP_STATUS" 404 "DELETE of a deleted job -> 404"
req POST "/v1/jobs/$long_id/cancel"
is "$HTTP_STATUS" 404 "cancel of an unknown job -> 404"
req GET "/v1/jobs/nosuchjob0000"
is "$HTTP_STATUS" 404 "GET of an unknown job id -> 404"

# ------------------------------------------------------------ list
ids=()
for v in one two three; do
	submit '{"plugin":"demo","job":"echo","args":{"value":"'$v'"}}' '?wait=5'
	ids+=("$JOB_ID")
done
jt 'd["state"] == "succeeded" and d["result"] == "three"' "echo returns its value"
req GET "/v1/jobs"
is "$HTTP_STATUS" 200 "GET /v1/jobs -> 200"
listed=$(j '" ".join(x["id"] for x in jobs(d))')
# newest first: three, two, one appear in that order
jt '[x["id"] for x in jobs(d) if x["id"] in ("'"${ids[0]}"'","'"${ids[1]}"'","'"${ids[2]}"'")] == ["'"${ids[2]}"'","'"${ids[1]}"'","'"${ids[0]}"'"]' \
	"list is newest first"
jt 'all("state" in x and "plugin" in x for x in jobs(d))' "list entries are job objects"
total=$(j 'len(jobs(d))')

req GET "/v1/jobs?state=succeeded"
is "$HTTP_STATUS" 200 "GET /v1/jobs?state=succeeded -> 200"
jt 'len(jobs(d)) >= 5 and all(x["state"] == "succeeded" for x in jobs(d))' "state filter keeps only succeeded jobs"
req GET "/v1/jobs?state=cancelled"
jt 'all(x["state"] == "cancelled" for x in jobs(d))' "state=cancelled filter"
req GET "/v1/jobs?state=succeeded,cancelled"
jt 'len(jobs(d)) >= 5 and all(x["state"] in ("succeeded","cancelled") for x in jobs(d))' "state filter with two states"
req GET "/v1/jobs?state=bogus"
is "$HTTP_STATUS" 400 "state filter with an unknown state -> 400"
# ?state= repeated counts each (as /v1/events does); it kept the first only
req GET "/v1/jobs?state=cancelled&state=succeeded"
jt 'len(jobs(d)) >= 5 and all(x["state"] in ("succeeded","cancelled") for x in jobs(d))' \
	"?state= repeated: the states of each"
req GET "/v1/jobs?state=running&state=bogus"
is "$HTTP_STATUS" 400 "?state= repeated with an unknown state -> 400"
req GET "/v1/jobs?limit=1&limit=3"
is "$HTTP_STATUS:$(j 'd["error"]["code"]')" 400:invalid_parameter "?limit= given twice -> 400 (it took the first)"
like "$(j 'd["error"]["message"]')" "'limit' is given more than once" "... naming it"
req GET "/v1/jobs?plugin=demo"
jt 'len(jobs(d)) == '"$total"' and all(x["plugin"] == "demo" for x in jobs(d))' "plugin filter keeps demo jobs"
req GET "/v1/jobs?plugin=nosuchplugin"
is "$HTTP_STATUS" 200 "plugin filter with no match -> 200"
jt 'jobs(d) == []' "plugin filter with no match -> empty list"

# limit + cursor: walk the whole list two at a time
req GET "/v1/jobs?limit=2"
is "$HTTP_STATUS" 200 "GET /v1/jobs?limit=2 -> 200"
jt 'len(jobs(d)) == 2 and cursor(d) not in (None, "")' "limit=2 gives two jobs and a cursor"
seen=$(j '" ".join(x["id"] for x in jobs(d))')
cur=$(j 'cursor(d)')
pages=1
# ids are URL-safe (checked above), and so is a cursor made of them
while [ -n "$cur" ] && [ "$cur" != null ] && [ $pages -lt 20 ]; do
	req GET "/v1/jobs?limit=2&cursor=$cur"
	[ "$HTTP_STATUS" = 200 ] || break
	seen="$seen $(j '" ".join(x["id"] for x in jobs(d))')"
	cur=$(j 'cursor(d)')
	pages=$((pages + 1))
done
is "$seen" "$listed" "cursor pagination walks the whole list once, in order"

# ------------------------------------------------------------ events + log
# 4 steps 0.3 s apart (1 s under valgrind): the stream connects well
# before the job ends.
interval=0.3
[ "$E2E_SLOW" -gt 1 ] && interval=1
submit '{"plugin":"demo","job":"progress","args":{"steps":4,"interval":'$interval'}}'
prog_id=$JOB_ID
ev_file="$E2E_TMP/events.txt"
ev_hdr="$E2E_TMP/events.hdr"
curl -sS -N --max-time "$(slow 10)" -D "$ev_hdr" "${CURL_AUTH[@]}" "$CRUND_URL/v1/jobs/$prog_id/events" >"$ev_file" 2>"$E2E_TMP/events.err"
ev_rc=$?
is "$ev_rc" 0 "event stream closes by itself when the job ends"
like "$(tr -d '\r' <"$ev_hdr" | grep -i '^content-type:')" 'text/event-stream' "events Content-Type is text/event-stream"
sse_json "$ev_file" >"$E2E_TMP/events.json"
evj() { jf "$E2E_TMP/events.json" "$1"; }
ev_check() {
	if [ "$(evj "bool($1)")" = true ]; then ok 0 "$2"; else
		ok 1 "$2"; diag "events: $(head -c 1500 "$ev_file")"; fi
}
ev_check 'any(e["event"] == "state" for e in d)' "events: a state event"
ev_check '(lambda f: len(f) >= 1 and f == sorted(f) and f[-1] == 1.0)([e["data"]["fraction"] for e in d if e["event"] == "progress"])' \
	"events: progress events, fraction rising to 1"
ev_check 'all(isinstance(e["data"].get("message"), str) for e in d if e["event"] == "progress")' "events: progress events with a message"
ev_check 'sum(e["event"] == "log" for e in d) >= 1 and all("message" in e["data"] for e in d if e["event"] == "log")' "events: log events with a message"
ev_check 'isinstance(d[-1]["data"], dict) and jobof(d[-1]["data"]).get("state") == "succeeded"' \
	"events: the last event carries the final state succeeded"
ev_check 'not d[-1].get("unterminated")' "events: the final event is complete"

req GET "/v1/jobs/$prog_id"
jt 'd["state"] == "succeeded" and isinstance(d["progress"], dict) and "fraction" in d["progress"]' "progress job: progress {fraction,message} kept"

req GET "/v1/jobs/$prog_id/log"
is "$HTTP_STATUS" 200 "GET /v1/jobs/{id}/log -> 200"
like "$(header Content-Type)" '^text/plain' "log Content-Type is text/plain"
check "log has a line per step" test "$(printf '%s\n' "$HTTP_BODY" | grep -c .)" -eq 4
check "daemon log lines of the job carry its id" grep -q "$prog_id.*step 1/4 done" "$CRUND_LOG"
req GET "/v1/jobs/nosuchjob0000/log"
is "$HTTP_STATUS" 404 "log of an unknown job -> 404"

# events of an already ended job: the final event, then close
REQ_TIMEOUT=5 req GET "/v1/jobs/$prog_id/events"
is "$HTTP_STATUS" 200 "events of an ended job -> 200 and closes"
cp "$HTTP_BODY_FILE" "$ev_file"
sse_json "$ev_file" >"$E2E_TMP/events.json"
ev_check 'len(d) >= 1 and isinstance(d[-1]["data"], dict) and jobof(d[-1]["data"]).get("state") == "succeeded"' \
	"events of an ended job: final state succeeded"

# ------------------------------------------------------------ plugins, info, health
req GET /v1/plugins
is "$HTTP_STATUS" 200 "GET /v1/plugins -> 200"
jt 'any(p["name"] == "demo" for p in (d if isinstance(d, list) else d["plugins"]))' "plugin list has demo"
req GET /v1/plugins/demo
is "$HTTP_STATUS" 200 "GET /v1/plugins/demo -> 200"
jt 'd["name"] == "demo" and "version" in d' "plugin has name and version"
jt '{"noop","sleep","echo","fail","counter","fanout","compute","progress","linger","hog"} <= {x["name"] for x in d["jobs"]}' \
	"demo lists its jobs"
jt 'any(a["name"] == "seconds" and a.get("required") is True and a.get("type") in ("number","integer") for x in d["jobs"] if x["name"] == "sleep" for a in x["args"])' \
	"sleep declares argument seconds (number, required)"
req GET /v1/plugins/nosuchplugin
is "$HTTP_STATUS" 404 "GET /v1/plugins/unknown -> 404"
is_error '[a-z_]+' "unknown plugin 404 has an error body"

req GET /v1/info
is "$HTTP_STATUS" 200 "GET /v1/info -> 200"
jt 'isinstance(d.get("version"), str) and d.get("state") == "running"' "info: version and state running"
jt 'any(k in d for k in ("backend","loop_backend")) or isinstance(d.get("loop"), dict)' "info: loop backend"
jt '"debug" in d and any(k in d for k in ("uptime","uptime_seconds"))' "info: debug and uptime"
jt 'any(k in d for k in ("counts","jobs")) and "limits" in d' "info: counts and limits"

req GET /v1/health
is "$HTTP_STATUS" 200 "GET /v1/health -> 200"
jt 'd["status"] == "ok"' "health says ok"

# ------------------------------------------------------------ idempotency
submit '{"plugin":"demo","job":"noop","idempotency_key":"e2e-key-1"}'
is "$HTTP_STATUS" 201 "first submission with an idempotency key -> 201"
idem_id=$JOB_ID
submit '{"plugin":"demo","job":"noop","idempotency_key":"e2e-key-1"}'
is "$HTTP_STATUS" 200 "same idempotency key again -> 200"
is "$JOB_ID" "$idem_id" "same idempotency key -> the same job"
submit '{"plugin":"demo","job":"noop","idempotency_key":"e2e-key-2"}'
check "another key -> a new job" test "$HTTP_STATUS" = 201 -a "$JOB_ID" != "$idem_id"
submit '{"plugin":"demo","job":"echo","args":{"value":1},"idempotency_key":"e2e-key-1"}'
is "$HTTP_STATUS" 409 "same idempotency key for a different submission -> 409"
is_error '[a-z_]+' "idempotency conflict -> error body"
# max_attempts and on_interrupt, when a resubmission gives them, are part
# of the submission; delay is not (a later resubmission cannot repeat it)
submit '{"plugin":"demo","job":"noop","idempotency_key":"e2e-key-3","max_attempts":2,"on_interrupt":"retry"}'
is "$HTTP_STATUS" 201 "a keyed submission with max_attempts and on_interrupt -> 201"
submit '{"plugin":"demo","job":"noop","idempotency_key":"e2e-key-3","max_attempts":2,"on_interrupt":"retry"}'
is "$HTTP_STATUS" 200 "... the same again -> 200"
submit '{"plugin":"demo","job":"noop","idempotency_key":"e2e-key-3"}'
is "$HTTP_STATUS" 200 "... without them -> 200"
submit '{"plugin":"demo","job":"noop","idempotency_key":"e2e-key-3","max_attempts":3}'
is "$HTTP_STATUS" 409 "... with another max_attempts -> 409"
submit '{"plugin":"demo","job":"noop","idempotency_key":"e2e-key-3","on_interrupt":"fail"}'
is "$HTTP_STATUS" 409 "... with another on_interrupt -> 409"
submit '{"plugin":"demo","job":"noop","idempotency_key":"e2e-key-3","delay":60}'
is "$HTTP_STATUS" 200 "... with a delay -> 200 (not compared)"

# ------------------------------------------------------------ timeout, fail
submit '{"plugin":"demo","job":"sleep","args":{"seconds":30},"timeout":0.3}' '?wait=5'
jt 'd["timeout"] == 0.3' "job shows its timeout"
jt 'd["state"] == "failed" and d["error"]["code"] == "timeout"' "per-job timeout -> failed, error.code timeout"

submit '{"plugin":"demo","job":"fail","args":{"message":"boom e2e"}}' '?wait=5'
jt 'd["state"] == "failed" and d["error"]["code"] == "plugin_error"' "fail job -> failed, error.code plugin_error"
jt '"boom e2e" in d["error"]["message"] and d["result"] is None' "fail job: message kept, result null"

# ------------------------------------------------------------ contexts
submit '{"plugin":"demo","job":"counter"}' '?wait=5'
c1=$(j 'd["result"]["count"]')
submit '{"plugin":"demo","job":"counter"}' '?wait=5'
c2=$(j 'd["result"]["count"]')
check "shared context: counter counts up across jobs ($c1, $c2)" test -n "$c1" -a "$c2" = "$((c1 + 1))" 2>/dev/null
submit '{"plugin":"demo","job":"counter","context":"isolated"}' '?wait=5'
c3=$(j 'd["result"]["count"]')
is "$c3" "$((c2 + 1))" "isolated context starts from a copy of the shared one"
submit '{"plugin":"demo","job":"counter","context":"shared"}' '?wait=5'
c4=$(j 'd["result"]["count"]')
is "$c4" "$((c2 + 1))" "an isolated job's change is not seen by later shared jobs"

# ------------------------------------------------------------ fanout cancel
submit '{"plugin":"demo","job":"fanout","args":{"n":4,"seconds":30}}' '?wait=0.3'
fan_id=$JOB_ID
jt 'd["state"] == "running"' "fanout job is running"
req POST "/v1/jobs/$fan_id/cancel"
is "$HTTP_STATUS" 202 "cancel fanout -> 202"
job_wait "$fan_id" 5
jt 'd["state"] == "cancelled"' "cancelling fanout cancels it and its children"

# ------------------------------------------------------------ compute (executor)
submit '{"plugin":"demo","job":"compute","args":{"n":100}}' '?wait=5'
jt 'd["state"] == "succeeded" and d["result"] == {"primes": 25}' "compute n=100 -> 25 primes"
submit '{"plugin":"demo","job":"compute","args":{"n":100000000}}'
comp_id=$JOB_ID
REQ_TIMEOUT=2 req GET /v1/health
h=$HTTP_STATUS
comp_state=$(job_state "$comp_id")
if [ "$comp_state" = running ]; then
	is "$h" 200 "health answers 200 while compute runs in the executor"
else
	# The sieve ended before health was asked: the check says nothing.
	ok 0 "health answers 200 while compute runs in the executor # SKIP compute ended first ($comp_state)"
fi
job_wait "$comp_id" "$(slow 30)"
jt 'd["state"] == "succeeded" and d["result"] == {"primes": 5761455}' "compute n=10^8 -> 5761455 primes"

# ------------------------------------------------------------ stall detection
# hog blocks the loop thread for 1.5 s: health cannot answer meanwhile, and
# right after it the watchdog must still report the stall (docs/ARCHITECTURE.md §2.3: 503 when
# the loop has not turned for a second), then recover.
submit '{"plugin":"demo","job":"hog","args":{"seconds":1.5}}'
hog_id=$JOB_ID
sleep 0.3
REQ_TIMEOUT=$(slow 10) req GET /v1/health
is "$HTTP_STATUS" 503 "health right after a 1.5 s loop stall -> 503"
jt 'd["status"] == "stalled"' "stalled health says status stalled"
ok_after=000
for ((i = 0; i < $(slow 50); i++)); do
	ok_after=$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "$CRUND_URL/v1/health")
	[ "$ok_after" = 200 ] && break
	sleep 0.1
done
is "$ok_after" 200 "health recovers to 200 after the stall"
check "the stall is logged naming the job" grep -Eq "(not turned|block).*$hog_id|$hog_id.*(not turned|block)" "$CRUND_LOG"

# ------------------------------------------------------------ crowds
# Many clients at once: 40 long-polls on one job, 60 concurrent submissions.
many_out=$("$PY" - "$CRUND_URL" "$(slow 10)" 2>"$E2E_TMP/crowd.err" <<'EOF2'
import json, sys, threading, urllib.request
url, limit = sys.argv[1], float(sys.argv[2])
def post(body, q=""):
    r = urllib.request.Request(url + "/v1/jobs" + q, data=json.dumps(body).encode(),
                               headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(r, timeout=limit) as resp:
        return resp.status, json.load(resp)
_, job = post({"plugin": "demo", "job": "sleep", "args": {"seconds": 0.5}})
polls, subs, lock = [], [], threading.Lock()
def poll():
    try:
        with urllib.request.urlopen("%s/v1/jobs/%s?wait=%d" % (url, job["id"], limit), timeout=limit + 5) as r:
            v = json.load(r)["state"]
    except Exception as e:
        v = "error: %s" % e
    with lock:
        polls.append(v)
def sub(i):
    try:
        st, j = post({"plugin": "demo", "job": "echo", "args": {"value": i}}, "?wait=5")
        v = (st, j["state"], j["result"] == i, j["id"])
    except Exception as e:
        v = ("error: %s" % e,)
        sys.stderr.write("submission %d: %s\n" % (i, e))
    with lock:
        subs.append(v)
ts = [threading.Thread(target=poll) for _ in range(40)] + [threading.Thread(target=sub, args=(i,)) for i in range(60)]
for t in ts:
    t.start()
for t in ts:
    t.join()
ok_polls = sum(v == "succeeded" for v in polls)
ok_subs = sum(len(v) == 4 and v[:3] == (201, "succeeded", True) for v in subs)
ids = len({v[3] for v in subs if len(v) == 4})
print(ok_polls, ok_subs, ids)
EOF2
)
is "$many_out" "40 60 60" "40 concurrent long-polls all see succeeded; 60 concurrent submissions all succeed with distinct ids" ||
	diag "$(head -5 "$E2E_TMP/crowd.err")"
req GET /v1/health
is "$HTTP_STATUS" 200 "health 200 after the crowd"

# ------------------------------------------------------------ metrics
req GET /v1/info
submitted=$(j 'd["jobs_submitted"]')
req GET /metrics
is "$HTTP_STATUS" 200 "GET /metrics -> 200"
like "$(header Content-Type)" '^text/plain' "metrics Content-Type is text/plain"
check "metrics are Prometheus text (# TYPE lines)" grep -q '^# TYPE ' "$HTTP_BODY_FILE"
# shellcheck disable=SC2016 # an awk program: $NF is awk's
check "metrics count jobs (a non-zero crund job counter)" \
	awk '/^crund_[a-z_]*jobs?[a-z_]*(\{[^}]*\})? +[0-9.e+]+$/ { if ($NF + 0 > 0) found = 1 } END { exit !found }' "$HTTP_BODY_FILE"
is "$(awk '$1 == "crund_jobs_submitted_total" { print $2 }' "$HTTP_BODY_FILE")" "$submitted" \
	"metrics: crund_jobs_submitted_total matches info's jobs_submitted"
check "metrics: every sample line is well formed" \
	awk '!/^#/ && NF && !/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? +[-+0-9.eEInfa]+( +[0-9]+)?$/ { bad = 1; print } END { exit bad }' "$HTTP_BODY_FILE"

stop_and_check_crund
done_testing
