#!/bin/bash
# tests/plugins/services-e2e.sh — the host services of plugin ABI 1.3
# through a real crund: log lines from named streams (in /log and on the
# event stream), the idempotency key and attempt a job sees, the
# operator's plugin settings (exec-allow, http-allow), a job spec's check
# refusing a submission with the plugin's own code, and a plugin's
# Retry-After raising the backoff of the next attempt.  The fixture is
# tests/plugins/services.c.  Uses tests/e2e/lib.sh; prints TAP.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
: "${top_srcdir:?top_srcdir must be set (the harness exports it)}"
# shellcheck source=tests/e2e/lib.sh
. "$top_srcdir/tests/e2e/lib.sh"

pdir="$E2E_TMP/plugins"
mkdir "$pdir"
chmod 755 "$pdir"
cp "$top_builddir/tests/plugins/.libs/services.so" "$pdir/services.so" ||
	bail "fixture services.so not built"
chmod 644 "$pdir"/*.so
CRUND_PLUGIN_ARGS=(--plugin-dir "$pdir" --exec-allow /usr/bin/true --exec-allow '/opt/*'
	--http-allow '*.example.com' --retry-max-delay 60)
# shellcheck disable=SC2119 # no extra flags
start_crund || bail "crund did not start"

# --- named streams, key, attempt, settings
submit '{"plugin":"services","job":"lines","args":{"count":4},"idempotency_key":"k-1"}' '?wait=10'
jt 'd["state"] == "succeeded"' "lines: succeeded"
jt 'd["result"]["attempt"] == 1 and d["result"]["idempotency_key"] == "k-1"' \
	"the job sees its attempt (1) and its idempotency key"
jt 'd["result"]["exec_allow"] == ["/usr/bin/true", "/opt/*"] and d["result"]["http_allow"] == ["*.example.com"]' \
	"crund_config_list gives the operator's exec-allow and http-allow in order"
id=$JOB_ID
req GET "/v1/jobs/$id/log"
is "$(sed 's/^[^ ]* //' "$HTTP_BODY_FILE" | tr '\n' '|')" "stdout line 0|stderr line 1|stdout line 2|stderr line 3|" \
	"/log stores 'TIME STREAM line' in order, the newline dropped"
submit '{"plugin":"services","job":"lines","args":{"count":0}}' '?wait=10'
jt 'd["result"]["idempotency_key"] is None' "no idempotency key: NULL"

# the event stream carries the stream's name
out="$E2E_TMP/events"
submit '{"plugin":"services","job":"lines","args":{"count":2},"delay":1}'
curl -sN --max-time "$(slow 10)" "$CRUND_URL/v1/jobs/$JOB_ID/events" >"$out"
sse_json "$out" >"$E2E_TMP/events.json"
jt_events() { if [ "$(jf "$E2E_TMP/events.json" "bool($1)")" = true ]; then ok 0 "$2"; else ok 1 "$2"; diag "$(head -c 800 "$out")"; fi; }
jt_events '[(e["data"]["stream"], e["data"]["message"]) for e in d if e["event"] == "log"] == [("stdout", "line 0"), ("stderr", "line 1")]' \
	"log events name the stream"
logs=$("$top_builddir/client/crunctl" --url "$CRUND_URL" log "$JOB_ID" 2>&1)
like "$logs" 'stdout line 0' "crunctl log shows the stream's name"

# --- the job spec's check
post_json /v1/jobs '{"plugin":"services","job":"checked","args":{"value":"bad-one"}}'
is "$HTTP_STATUS" 400 "a refused check -> 400"
is_error 'value_refused' "with the plugin's own code"
jt '"bad-one" in d["error"]["message"]' "and its message"
submit '{"plugin":"services","job":"checked","args":{"value":"good"}}' '?wait=10'
jt 'd["state"] == "succeeded" and d["result"] == "good"' "an accepted check runs the job"

# --- Retry-After: attempt 1 asks for 2 s (the default backoff of attempt 1
# is 1 s +-10%), so the second attempt starts >= 2 s after the first ended
submit '{"plugin":"services","job":"retry_after","args":{"seconds":2}}' '?wait=20'
jt 'd["state"] == "succeeded" and d["result"] == 2 and d["attempt"] == 2' "retry_after: the second attempt succeeds"
jt 'secs(d["started_at"]) - secs(d["attempts"][0]["finished_at"]) >= 1.99' \
	"the next attempt waited at least the Retry-After (not the 1 s backoff)"

# --- curl_perform refuses a NULL handle without crashing
submit '{"plugin":"services","job":"curl"}' '?wait=10'
jt 'd["state"] == "succeeded" and d["result"]["rc"] < 0' "crund_curl_perform(NULL) -> a negative code"

stop_and_check_crund "crund with the services fixture"
done_testing
