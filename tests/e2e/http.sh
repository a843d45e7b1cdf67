#!/bin/bash
# http.sh — the bundled http plugin through a real crund, against a local
# test server (tests/e2e/httpserver.py on a free loopback port): statuses,
# JSON, text and binary bodies, slow answers and timeouts, oversized
# bodies, a refused connection, redirects followed or not (and checked
# against --http-allow), Idempotency-Key, Retry-After with retries, and a
# request cancelled while in flight.  Prints TAP.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

# ---------------------------------------------------------- the server
srv_out="$E2E_TMP/httpserver.out"
bg "$PY" "$top_srcdir/tests/e2e/httpserver.py" >"$srv_out" 2>&1
SRV_PID=$BG_PID
SP=
for ((i = 0; i < $(slow 100); i++)); do
	SP=$(awk '/^PORT /{print $2}' "$srv_out")
	[ -n "$SP" ] && break
	sleep 0.1
done
[ -n "$SP" ] || bail "the test server did not start: $(cat "$srv_out")"
S="http://127.0.0.1:$SP"

# request ARGS-JSON [SUBMISSION-EXTRA]: submit an http request job and wait
# for its end (?wait); the answer is the finished job.
request() {
	submit "{\"plugin\":\"http\",\"job\":\"request\",\"args\":$1${2:+,$2}}" "?wait=$(slow 20)"
	if [ "$(j 'd["state"]')" = queued ] || [ "$(j 'd["state"]')" = running ]; then
		job_wait "$JOB_ID" "$(slow 20)"
	fi
}

start_crund || bail "crund did not start"

req GET /v1/plugins/http
is "$HTTP_STATUS" 200 "the http plugin is loaded by default"
jt '[j["name"] for j in d["jobs"]] == ["request"]' "it has one job, request"

# ---------------------------------------------------------- bodies
request "{\"url\":\"$S/json\"}"
jt 'd["state"] == "succeeded" and d["result"]["status"] == 200' "GET /json succeeds with status 200"
jt 'd["result"]["body"] == {"hello": "world", "n": 1}' "a JSON answer's body is parsed"
jt 'd["result"]["headers"]["content-type"].startswith("application/json")' \
	"the answer's headers are in the result (lower-case names)"
# nested deeper than crund takes JSON (128 levels: writing a deeper value
# could overflow the job's coroutine stack and end the daemon)
request "{\"url\":\"$S/deep?n=2000\"}"
jt 'd["state"] == "succeeded" and d["result"]["body"] == "[" * 2000 + "]" * 2000' \
	"a JSON answer 2000 levels deep is kept as text (crund did not crash)"
request "{\"url\":\"$S/deep?n=127\"}"
jt 'd["state"] == "succeeded" and isinstance(d["result"]["body"], list)' \
	"127 levels (128 in the result): parsed"

# the same through crunctl (arguments typed from the job's spec)
CRUNCTL=$top_builddir/client/crunctl
out=$("$CRUNCTL" --url "$CRUND_URL" submit http request "url=$S/json" --wait 2>&1)
st=$?
is "$st" 0 "crunctl submit http request url=... --wait: exit 0"
like "$out" '"hello": "world"' "  and prints the result with the parsed body"
out=$("$CRUNCTL" --url "$CRUND_URL" submit http request "url=$S/status/503" --wait 2>&1)
st=$?
is "$st" 1 "crunctl: a 503 fails the job (exit 1)"
like "$out" 'http_status' "  naming error code http_status"
# crunctl status of a job cancelled while it waits for its third attempt
# (16 s after the second): both attempts are earlier ones (the second was
# taken for the job's own and not shown)
submit '{"plugin":"demo","job":"fail","max_attempts":3}'
wid=$JOB_ID
for ((i = 0; i < $(slow 50); i++)); do
	req GET "/v1/jobs/$wid"
	[ "$(j 'd["attempt"] == 2 and d["state"] == "queued"')" = true ] && break
	sleep 0.1
done
req POST "/v1/jobs/$wid/cancel"
is "$HTTP_STATUS" 202 "a job waiting for its third attempt is cancelled (202)"
out=$("$CRUNCTL" --url "$CRUND_URL" status "$wid" 2>&1)
like "$out" $'Attempt 1: +[0-9-]+ [0-9:]+  failed on purpose' "crunctl status: its first attempt"
like "$out" $'Attempt 2: +[0-9-]+ [0-9:]+  failed on purpose' "crunctl status: its second attempt, though the job ended otherwise"
like "$out" $'Error: +cancelled by request' "crunctl status: the job's error is the cancel"

request "{\"url\":\"$S/text\"}"
jt 'd["state"] == "succeeded" and d["result"]["body"] == "plain text\n"' "a text answer's body is a string"

request "{\"url\":\"$S/binary\"}"
jt 'd["state"] == "succeeded" and d["result"].get("body_encoding") == "base64" and __import__("base64").b64decode(d["result"]["body"]) == bytes(range(256))' \
	"a body that is not UTF-8 comes base64-encoded, marked body_encoding"

request "{\"url\":\"$S/json\",\"method\":\"HEAD\"}"
jt 'd["state"] == "succeeded" and d["result"]["status"] == 200 and d["result"]["body"] == ""' \
	"HEAD: the status and headers, no body"

request "{\"url\":\"$S/echo\",\"method\":\"PUT\",\"json\":{\"a\":[1,2]},\"headers\":{\"X-Test\":\"yes\"}}"
jt 'd["result"]["body"]["method"] == "PUT" and d["result"]["body"]["body"] == "{\"a\":[1,2]}"' \
	"json: sent serialised, with the method given"
jt 'd["result"]["body"]["headers"]["content-type"] == "application/json" and d["result"]["body"]["headers"]["x-test"] == "yes"' \
	"json: Content-Type application/json; the job's headers are sent"
request "{\"url\":\"$S/echo\",\"method\":\"POST\",\"body\":\"a=1&b=2\",\"headers\":{\"Content-Type\":\"application/x-www-form-urlencoded\"}}"
jt 'd["result"]["body"]["body"] == "a=1&b=2" and d["result"]["body"]["headers"]["content-type"] == "application/x-www-form-urlencoded"' \
	"body: sent as is, with the job's Content-Type"

# ---------------------------------------------------------- statuses
request "{\"url\":\"$S/status/404\"}"
jt 'd["state"] == "failed" and d["error"]["code"] == "http_status" and "404" in d["error"]["message"]' \
	"404: fails with http_status, the status in the message"
request "{\"url\":\"$S/status/500\"}"
jt 'd["state"] == "failed" and d["error"]["code"] == "http_status" and "500" in d["error"]["message"]' \
	"500: fails with http_status"
request "{\"url\":\"$S/status/204\"}"
jt 'd["state"] == "succeeded" and d["result"]["status"] == 204' "204: any 2xx succeeds by default"
request "{\"url\":\"$S/status/404\",\"expect_status\":404}"
jt 'd["state"] == "succeeded" and d["result"]["status"] == 404 and d["result"]["body"] == "status 404"' \
	"expect_status 404: a 404 succeeds"
request "{\"url\":\"$S/status/200\",\"expect_status\":[201,418]}"
jt 'd["state"] == "failed" and d["error"]["code"] == "http_status"' \
	"expect_status [201,418]: a 200 fails"
request "{\"url\":\"$S/status/418\",\"expect_status\":[201,418]}"
jt 'd["state"] == "succeeded" and d["result"]["status"] == 418' "expect_status [201,418]: a 418 succeeds"

# ---------------------------------------------------------- refusals at submission
post_json /v1/jobs "{\"plugin\":\"http\",\"job\":\"request\",\"args\":{\"url\":\"ftp://127.0.0.1:$SP/\"}}"
is "$HTTP_STATUS" 400 "an ftp:// url: 400"
is_error invalid_url "  with error code invalid_url"
post_json /v1/jobs '{"plugin":"http","job":"request","args":{"url":"not a url"}}'
is "$HTTP_STATUS" 400 "a url that is not one: 400"
post_json /v1/jobs "{\"plugin\":\"http\",\"job\":\"request\",\"args\":{\"url\":\"$S/\",\"body\":\"x\",\"json\":1}}"
is "$HTTP_STATUS" 400 "body and json together: 400"
is_error invalid_args "  with error code invalid_args"
post_json /v1/jobs "{\"plugin\":\"http\",\"job\":\"request\",\"args\":{\"url\":\"$S/\",\"expect_status\":\"2xx\"}}"
is "$HTTP_STATUS" 400 "expect_status that is not a status or an array of them: 400"
post_json /v1/jobs "{\"plugin\":\"http\",\"job\":\"request\",\"args\":{\"url\":\"$S/\",\"headers\":{\"X-A\":\"a\\r\\nX-B: b\"}}}"
is "$HTTP_STATUS" 400 "a header value with a line break (header injection): 400"
# a Content-Length shorter than the body left the rest on the kept-alive
# connection as the next request: later jobs got the answers of others
for h in Content-Length transfer-encoding Connection Keep-Alive; do
	post_json /v1/jobs "{\"plugin\":\"http\",\"job\":\"request\",\"args\":{\"url\":\"$S/echo\",\"method\":\"POST\",\"headers\":{\"$h\":\"1\"},\"body\":\"xy\"}}"
	is "$HTTP_STATUS" 400 "header $h (it frames the message): 400"
	jt "'$h' in d['error']['message'] and 'set by crund' in d['error']['message']" "  the message names it"
done
post_json /v1/jobs "{\"plugin\":\"http\",\"job\":\"request\",\"args\":{\"url\":\"$S/\",\"method\":\"get me\"}}"
is "$HTTP_STATUS" 400 "a method that is not a token of capitals: 400"

# ---------------------------------------------------------- slow, timeouts, sizes
request "{\"url\":\"$S/slow?s=0.3\",\"timeout\":$(slow 10)}"
jt 'd["state"] == "succeeded" and d["result"]["body"] == "slow"' "a slow answer within the timeout succeeds"
request "{\"url\":\"$S/slow?s=30\",\"timeout\":0.5}"
jt 'd["state"] == "failed" and d["error"]["code"] == "timeout"' "an answer slower than timeout: fails with timeout"
jt 'secs(d["finished_at"]) - secs(d["started_at"]) < 25' "  ended by the timeout, not by the answer"

request "{\"url\":\"$S/big?n=1000\",\"max_response_bytes\":1000}"
jt 'd["state"] == "succeeded" and len(d["result"]["body"]) == 1000' "a body of exactly max_response_bytes is accepted"
request "{\"url\":\"$S/big?n=1001\",\"max_response_bytes\":1000}"
jt 'd["state"] == "failed" and d["error"]["code"] == "response_too_large"' \
	"a larger body (Content-Length): response_too_large"
request "{\"url\":\"$S/chunked?n=5000000\",\"max_response_bytes\":100000}"
jt 'd["state"] == "failed" and d["error"]["code"] == "response_too_large"' \
	"a larger chunked body (no length): response_too_large, stopped while it comes"

# the limit is the decoded body's: not Content-Length, compressed or HEAD's
request "{\"url\":\"$S/gzip?n=1000\",\"max_response_bytes\":1000}"
jt 'd["state"] == "succeeded" and d["result"]["body_encoding"] == "base64" and len(__import__("base64").b64decode(d["result"]["body"])) == 1000' \
	"a gzip answer longer on the wire than max_response_bytes, not once decoded: accepted"
request "{\"url\":\"$S/gzip?n=1001\",\"max_response_bytes\":1000}"
jt 'd["state"] == "failed" and d["error"]["code"] == "response_too_large"' \
	"a gzip answer larger than max_response_bytes once decoded: response_too_large"
request "{\"url\":\"$S/big?n=2000000\",\"method\":\"HEAD\"}"
jt 'd["state"] == "succeeded" and d["result"]["status"] == 200 and d["result"]["headers"]["content-length"] == "2000000"' \
	"HEAD of a body larger than max_response_bytes: no body comes, succeeds"

BH=$(awk '/^BLACKHOLE /{print $2}' "$srv_out")
if [ "${BH:-0}" != 0 ]; then
	request "{\"url\":\"http://127.0.0.1:$BH/\",\"connect_timeout\":1,\"timeout\":$(slow 20)}"
	jt 'd["state"] == "failed" and d["error"]["code"] == "connect_error" and "connect_timeout (1 s" in d["error"]["message"]' \
		"no connection within connect_timeout: connect_error, naming connect_timeout"
	jt 'secs(d["finished_at"]) - secs(d["started_at"]) < 10' "  ended by connect_timeout, not by timeout"
else
	ok 0 "# SKIP this kernel completes connections to a full listen queue (no connect timeout to provoke)"
	ok 0 "# SKIP this kernel completes connections to a full listen queue"
fi

closed=$(free_port) || bail "no free port"
request "{\"url\":\"http://127.0.0.1:$closed/\"}"
jt 'd["state"] == "failed" and d["error"]["code"] == "connect_error"' "a refused connection: connect_error"

# ---------------------------------------------------------- redirects
request "{\"url\":\"$S/redirect?to=/json\"}"
jt 'd["state"] == "failed" and d["error"]["code"] == "http_status" and "302" in d["error"]["message"]' \
	"a redirect is not followed by default (302 is not 2xx)"
request "{\"url\":\"$S/redirect?to=/json\",\"expect_status\":302}"
jt 'd["state"] == "succeeded" and d["result"]["headers"]["location"] == "/json"' \
	"not followed: the 302 and its Location are the result"
request "{\"url\":\"$S/redirect?to=/json\",\"follow_redirects\":true}"
jt 'd["state"] == "succeeded" and d["result"]["status"] == 200 and d["result"]["body"]["hello"] == "world"' \
	"follow_redirects: the final answer is the result"
request "{\"url\":\"$S/redirect?to=/echo%3Fx=1&code=303\",\"method\":\"POST\",\"body\":\"data\",\"follow_redirects\":true}"
jt 'd["result"]["body"]["method"] == "GET" and d["result"]["body"]["body"] == ""' \
	"a 303 after a POST is followed with a GET and no body"
request "{\"url\":\"$S/redirect?to=/echo&code=307\",\"method\":\"POST\",\"body\":\"data\",\"follow_redirects\":true}"
jt 'd["result"]["body"]["method"] == "POST" and d["result"]["body"]["body"] == "data"' \
	"a 307 keeps the method and the body"
other="http://localhost:$SP/echo"
request "{\"url\":\"$S/redirect?to=/echo\",\"follow_redirects\":true,\"headers\":{\"Authorization\":\"Bearer s3cret\"}}"
jt 'd["result"]["body"]["headers"].get("authorization") == "Bearer s3cret"' \
	"a same-origin redirect keeps Authorization"
request "{\"url\":\"$S/redirect?to=$other\",\"follow_redirects\":true,\"headers\":{\"Authorization\":\"Bearer s3cret\"}}"
jt 'd["state"] == "succeeded" and "authorization" not in d["result"]["body"]["headers"]' \
	"a redirect to another origin drops Authorization"
request "{\"url\":\"$S/redirect?to=$S/redirect%3Fto=/json\",\"follow_redirects\":true}"
jt 'd["state"] == "succeeded" and d["result"]["status"] == 200' "two hops are followed"

# ---------------------------------------------------------- Idempotency-Key
request "{\"url\":\"$S/echo\",\"method\":\"POST\",\"body\":\"x\"}" '"idempotency_key":"order-42"'
jt 'd["result"]["body"]["headers"].get("idempotency-key") == "order-42"' \
	"a job's idempotency key is sent as Idempotency-Key"
request "{\"url\":\"$S/echo\"}"
jt '"idempotency-key" not in d["result"]["body"]["headers"]' "no key, no Idempotency-Key header"

# ---------------------------------------------------------- Retry-After
request "{\"url\":\"$S/retry-after?v=3&code=503\"}" '"max_attempts":2'
jt 'd["state"] == "failed" and d["attempt"] == 2 and d["error"]["code"] == "http_status"' \
	"503 with Retry-After and max_attempts 2: both attempts ran, the job fails"
jt 'secs(d["started_at"]) - secs(d["attempts"][0]["finished_at"]) >= 2.9' \
	"the second attempt waited the Retry-After (3 s), not the 1 s backoff"
date_ra=$("$PY" -c 'import email.utils, time; print(email.utils.formatdate(time.time() + 4, usegmt=True))')
date_q=$("$PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$date_ra")
request "{\"url\":\"$S/retry-after?v=$date_q&code=429\"}" '"max_attempts":2'
jt 'd["state"] == "failed" and d["attempt"] == 2 and secs(d["started_at"]) - secs(d["attempts"][0]["finished_at"]) >= 2' \
	"429 with Retry-After as an HTTP date: the next attempt waits until then"

# ---------------------------------------------------------- many at once, cancel
ids=()
for ((i = 0; i < 40; i++)); do
	submit "{\"plugin\":\"http\",\"job\":\"request\",\"args\":{\"url\":\"$S/slow?s=0.5\"}}"
	ids+=("$JOB_ID")
done
good=0
for id in "${ids[@]}"; do
	job_wait "$id" "$(slow 20)"
	[ "$(j 'd["state"]')" = succeeded ] && good=$((good + 1))
done
is "$good" 40 "40 slow requests in flight at once all succeed"

submit "{\"plugin\":\"http\",\"job\":\"request\",\"args\":{\"url\":\"$S/slow?s=60\",\"timeout\":120}}"
slow_id=$JOB_ID
hits=0
for ((i = 0; i < $(slow 50); i++)); do
	hits=$(curl -s "$S/hits?path=/slow" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["hits"])')
	[ "$hits" -ge 42 ] && break
	sleep 0.1
done
check "the slow request reached the server" test "$hits" -ge 42
req POST "/v1/jobs/$slow_id/cancel"
is "$HTTP_STATUS" 202 "cancel of an in-flight request: 202"
job_wait "$slow_id" "$(slow 5)"
jt 'd["state"] == "cancelled"' "the request's job ends cancelled (the transfer is stopped)"
req GET /metrics
is "$HTTP_STATUS" 200 "crund still answers"

stop_and_check_crund

# ---------------------------------------------------------- http-allow
start_crund --http-allow 127.0.0.1 --http-allow "[::1]:$SP" || bail "crund did not start with --http-allow"
request "{\"url\":\"$S/json\"}"
jt 'd["state"] == "succeeded"' "http-allow 127.0.0.1: a request to 127.0.0.1 runs"
post_json /v1/jobs "{\"plugin\":\"http\",\"job\":\"request\",\"args\":{\"url\":\"http://localhost:$SP/json\"}}"
is "$HTTP_STATUS" 400 "http-allow 127.0.0.1: localhost is refused at submission (400)"
is_error host_not_allowed "  with error code host_not_allowed"
jt '"localhost" in d["error"]["message"] and "http-allow" in d["error"]["message"]' \
	"  the message names the host and the setting"
post_json /v1/jobs "{\"plugin\":\"http\",\"job\":\"request\",\"args\":{\"url\":\"http://[::1]:1/\"}}"
is "$HTTP_STATUS" 400 "a pattern with a port allows that port only"
post_json /v1/jobs "{\"plugin\":\"http\",\"job\":\"request\",\"args\":{\"url\":\"http://127.0.0.1:$SP@localhost:$SP/json\"}}"
is "$HTTP_STATUS" 400 "user info that looks like an allowed host does not pass (the host is localhost)"
request "{\"url\":\"http://localhost:$SP@127.0.0.1:$SP/json\"}"
jt 'd["state"] == "succeeded"' "  and user info naming another host does not refuse an allowed one"
request "{\"url\":\"$S/redirect?to=http://localhost:$SP/json\",\"follow_redirects\":true}"
jt 'd["state"] == "failed" and d["error"]["code"] == "host_not_allowed"' \
	"a redirect to a host outside http-allow fails with host_not_allowed"
stop_and_check_crund "crund with --http-allow"

kill "$SRV_PID" 2>/dev/null
done_testing
