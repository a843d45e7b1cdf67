#!/bin/bash
# badinput.sh — hostile and malformed input against a real crund: bad JSON,
# wrong types, bad arguments, oversized bodies, unknown routes and methods,
# garbage on the socket, idle and slow clients, a full queue.  Prints TAP.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

start_crund --max-body 4096 --max-running 1 --max-queued 2 || bail "crund did not start"

# ------------------------------------------------------------ request bodies
post_json /v1/jobs '{"plugin":'
is "$HTTP_STATUS" 400 "malformed JSON -> 400"
is_error 'invalid_json' "malformed JSON -> error.code invalid_json"
like "$(header Content-Type)" '^application/json' "error answers are application/json"

post_json /v1/jobs ''
is "$HTTP_STATUS" 400 "empty body -> 400"
post_json /v1/jobs '[1,2]'
is "$HTTP_STATUS" 400 "a JSON array body -> 400"
is_error '[a-z_]+' "array body -> error body"

post_json /v1/jobs '{"plugin":42,"job":"noop"}'
is "$HTTP_STATUS" 400 "plugin as a number -> 400"
jt '"plugin" in d["error"]["message"]' "plugin as a number: message names plugin"
post_json /v1/jobs '{"job":"noop"}'
is "$HTTP_STATUS" 400 "missing plugin -> 400"
jt '"plugin" in d["error"]["message"]' "missing plugin: message names plugin"
post_json /v1/jobs '{"plugin":"demo","job":"noop","args":[1]}'
is "$HTTP_STATUS" 400 "args as an array -> 400"
jt '"args" in d["error"]["message"]' "args as an array: message names args"
# nesting: 1000 levels (2 KB) overflowed the job's coroutine stack when the
# result was written, and crund died (again at every restart)
nest() { python3 -c "import sys; n = int(sys.argv[1]); print('{\"plugin\":\"demo\",\"job\":\"echo\",\"args\":{\"value\":' + '[' * n + ']' * n + '}}')" "$1"; }
post_json /v1/jobs "$(nest 1000)"
is "$HTTP_STATUS" 400 "args nested 1000 levels deep -> 400"
jt '"args" in d["error"]["message"] and "128 levels" in d["error"]["message"]' "  the message names args and the limit"
post_json /v1/jobs "$(nest 128)"
is "$HTTP_STATUS" 400 "args nested 129 levels deep (args, then 128 arrays) -> 400"
post_json '/v1/jobs?wait=10' "$(nest 127)"
jt 'd["state"] == "succeeded" and d["result"] == __import__("json").loads("[" * 127 + "]" * 127)' \
	"args nested 128 levels deep: accepted, the echo job's result written"
post_json /v1/jobs '{"plugin":"demo","job":"noop","timeout":"soon"}'
is "$HTTP_STATUS" 400 "timeout as a string -> 400"
jt '"timeout" in d["error"]["message"]' "timeout as a string: message names timeout"
post_json /v1/jobs '{"plugin":"demo","job":"noop","context":"elsewhere"}'
is "$HTTP_STATUS" 400 "context not shared/isolated -> 400"
jt '"context" in d["error"]["message"]' "bad context: message names context"

post_json /v1/jobs '{"plugin":"nosuchplugin","job":"noop"}'
is "$HTTP_STATUS" 404 "unknown plugin -> 404"
is_error '[a-z_]+' "unknown plugin -> error body"
post_json /v1/jobs '{"plugin":"demo","job":"nosuchjob"}'
like "$HTTP_STATUS" '^(400|404)$' "unknown job name -> 404 (or 400)"
jt '"nosuchjob" in d["error"]["message"]' "unknown job name: message names the job"

# argument validation against the job's declared specs
post_json /v1/jobs '{"plugin":"demo","job":"sleep"}'
is "$HTTP_STATUS" 400 "sleep without seconds -> 400"
jt '"seconds" in d["error"]["message"]' "missing argument: message names seconds"
post_json /v1/jobs '{"plugin":"demo","job":"sleep","args":{"seconds":"x"}}'
is "$HTTP_STATUS" 400 "seconds=\"x\" -> 400"
jt '"seconds" in d["error"]["message"]' "wrong type: message names seconds"
post_json /v1/jobs '{"plugin":"demo","job":"sleep","args":{"seconds":-1}}'
is "$HTTP_STATUS" 400 "seconds=-1 -> 400"
jt '"seconds" in d["error"]["message"]' "out of range: message names seconds"
post_json /v1/jobs '{"plugin":"demo","job":"sleep","args":{"seconds":0.1,"bogus":1}}'
is "$HTTP_STATUS" 400 "unknown argument -> 400"
jt '"bogus" in d["error"]["message"]' "unknown argument: message names it"

# JSON body with a wrong Content-Type is still accepted (curl -d)
req POST /v1/jobs -H 'Content-Type: text/plain' --data-binary '{"plugin":"demo","job":"noop"}'
is "$HTTP_STATUS" 201 "JSON body with Content-Type text/plain -> 201"
req POST /v1/jobs -d '{"plugin":"demo","job":"noop"}'
is "$HTTP_STATUS" 201 "curl -d (form Content-Type) -> 201"

# body larger than --max-body 4096
big="$E2E_TMP/big.json"
"$PY" -c 'import sys; sys.stdout.write("{\"plugin\":\"demo\",\"job\":\"echo\",\"args\":{\"value\":\"" + "x" * (1 << 20) + "\"}}")' >"$big"
req POST /v1/jobs -H 'Content-Type: application/json' --data-binary "@$big"
is "$HTTP_STATUS" 413 "1 MB body with --max-body 4096 -> 413"
is_error '[a-z_]+' "413 has an error body"
"$PY" -c 'import sys; sys.stdout.write("{\"plugin\":\"demo\",\"job\":\"echo\",\"args\":{\"value\":\"" + "x" * 5000 + "\"}}")' >"$big"
req POST /v1/jobs -H 'Content-Type: application/json' -H 'Expect:' --data-binary "@$big"
is "$HTTP_STATUS" 413 "5 kB body (no Expect) with --max-body 4096 -> 413"

# ------------------------------------------------------------ query strings
submit '{"plugin":"demo","job":"noop"}' '?wait=5'
noop_id=$JOB_ID
req GET "/v1/jobs/$noop_id?wait=abc"
is "$HTTP_STATUS" 400 "GET ?wait=abc -> 400"
is_error '[a-z_]+' "?wait=abc -> error body"
jt '"wait" in d["error"]["message"]' "?wait=abc: message names wait"
post_json '/v1/jobs?wait=abc' '{"plugin":"demo","job":"noop"}'
is "$HTTP_STATUS" 400 "POST ?wait=abc -> 400"
req GET "/v1/jobs?limit=abc"
is "$HTTP_STATUS" 400 "GET /v1/jobs?limit=abc -> 400"

# ------------------------------------------------------------ routes, methods
req GET /v1/nosuchroute
is "$HTTP_STATUS" 404 "unknown route -> 404"
is_error '[a-z_]+' "unknown route -> error body"
req GET /nosuchroute
is "$HTTP_STATUS" 404 "unknown top-level route -> 404"
req GET "/v1/jobs/$noop_id/nosuchthing"
is "$HTTP_STATUS" 404 "unknown job sub-route -> 404"

req PUT /v1/jobs
is "$HTTP_STATUS" 405 "PUT /v1/jobs -> 405"
like "$(header Allow)" 'GET' "405 on /v1/jobs: Allow has GET"
like "$(header Allow)" 'POST' "405 on /v1/jobs: Allow has POST"
is_error '[a-z_]+' "405 -> error body"
req POST /v1/health
is "$HTTP_STATUS" 405 "POST /v1/health -> 405"
like "$(header Allow)" 'GET' "405 on /v1/health: Allow has GET"
req GET "/v1/jobs/$noop_id/cancel"
is "$HTTP_STATUS" 405 "GET /v1/jobs/{id}/cancel -> 405"
like "$(header Allow)" 'POST' "405 on cancel: Allow has POST"
req PATCH "/v1/jobs/$noop_id"
is "$HTTP_STATUS" 405 "PATCH /v1/jobs/{id} -> 405"
like "$(header Allow)" 'DELETE' "405 on a job: Allow has DELETE"

# ------------------------------------------------------------ socket abuse
head -c 8192 /dev/urandom | timeout 3 bash -c "cat > /dev/tcp/127.0.0.1/$CRUND_PORT" 2>/dev/null
printf 'GARBAGE /\x01\x02 HTTP/9.9\r\nX: \xff\xfe\r\n\r\n' | timeout 3 bash -c "cat > /dev/tcp/127.0.0.1/$CRUND_PORT" 2>/dev/null
printf 'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}' | timeout 3 bash -c "cat > /dev/tcp/127.0.0.1/$CRUND_PORT" 2>/dev/null
req GET /v1/health
is "$HTTP_STATUS" 200 "health answers after garbage bytes on the socket"

idle_out=$("$PY" - "$CRUND_PORT" "$(slow 5)" <<'EOF'
import socket, sys, urllib.request
port, limit = int(sys.argv[1]), float(sys.argv[2])
socks = []
for _ in range(200):
    s = socket.create_connection(("127.0.0.1", port), timeout=limit)
    socks.append(s)
try:
    with urllib.request.urlopen("http://127.0.0.1:%d/v1/health" % port, timeout=limit) as r:
        print(r.status)
except Exception as e:
    print("error: %s" % e)
for s in socks:
    s.close()
EOF
)
is "$idle_out" 200 "health answers with 200 idle connections open"

slow_out=$("$PY" - "$CRUND_PORT" "$(slow 5)" <<'EOF'
import socket, sys, urllib.request
port, limit = int(sys.argv[1]), float(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=limit)
s.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"plugin\":")
t = socket.create_connection(("127.0.0.1", port), timeout=limit)
t.sendall(b"GET /v1/hea")
try:
    with urllib.request.urlopen("http://127.0.0.1:%d/v1/health" % port, timeout=limit) as r:
        print(r.status)
except Exception as e:
    print("error: %s" % e)
s.close()
t.close()
EOF
)
is "$slow_out" 200 "a slow client (half a request) does not block others"
req GET /v1/health
is "$HTTP_STATUS" 200 "health still 200 after the socket abuse"

# ------------------------------------------------------------ request framing
# What MHD would guess at is refused and the connection closed, so bytes
# after the body (a request a proxy in front framed otherwise) are never
# read as a request of their own: the smuggled GET of a missing route must
# get no answer (its 404 would name it).
framing_out=$("$PY" - "$CRUND_PORT" "$(slow 5)" <<'EOF'
import json, socket, sys
port, limit = int(sys.argv[1]), float(sys.argv[2])
BODY = b'{"plugin":"demo","job":"noop"}'
SMUGGLED = b"GET /v1/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
CASES = [
    ("two Content-Lengths", b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY + SMUGGLED),
    ("two Content-Lengths, swapped", b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nContent-Length: 0\r\n\r\n" % len(BODY) + BODY + SMUGGLED),
    ("Content-Length and Transfer-Encoding", b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 200\r\n\r\n%x\r\n" % len(BODY) + BODY + b"\r\n0\r\n\r\n" + SMUGGLED),
    ("a header name with a space", b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY + SMUGGLED),
    ("Transfer-Encoding other than chunked", b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n" + BODY + SMUGGLED),
    ("HTTP/1.1 without Host", b"GET /v1/health HTTP/1.1\r\n\r\n" + SMUGGLED),
]
for name, raw in CASES:
    s = socket.create_connection(("127.0.0.1", port), timeout=limit)
    s.sendall(raw)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        data += b"<timeout>"
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    status = head.split(b" ")[1].decode() if head.startswith(b"HTTP/1.1 ") else "?"
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    body, after = (rest[:length[0]], rest[length[0]:]) if length else (rest, b"")
    try:
        code = json.loads(body)["error"]["code"]
    except Exception:
        code = "?"
    print("%s: %s %s %s" % (name, status, code, "smuggled" if after else "alone"))
EOF
)
for want in "two Content-Lengths: 400 invalid_request alone" \
	"two Content-Lengths, swapped: 400 invalid_request alone" \
	"Content-Length and Transfer-Encoding: 400 invalid_request alone" \
	"a header name with a space: 400 invalid_request alone" \
	"Transfer-Encoding other than chunked: 501 not_implemented alone" \
	"HTTP/1.1 without Host: 400 invalid_request alone"; do
	like "$framing_out" "^${want}\$" "framing: ${want%%:*} -> ${want#*: } (one answer, then closed)"
done
# an absolute-form target (RFC 9112 §3.2.2) is routed by its path
abs_out=$("$PY" - "$CRUND_PORT" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET http://127.0.0.1/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
data = b""
while True:
    c = s.recv(65536)
    if not c:
        break
    data += c
print(data.split(b"\r\n")[0].decode(), data.partition(b"\r\n\r\n")[2].decode().strip())
EOF
)
is "$abs_out" 'HTTP/1.1 200 OK {"status":"ok"}' "an absolute-form request target is routed by its path"
# an error that quotes the request's bytes stays UTF-8 JSON
code=$(curl -s -o "$E2E_TMP/bad-utf8.json" -w '%{http_code}' "$CRUND_URL/v1/jobs/%FF%FEab")
is "$code" 404 "GET /v1/jobs/%FF%FEab -> 404"
check "... its body is UTF-8 JSON (the bytes as U+FFFD)" "$PY" -c '
import json, sys
d = json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))
assert d["error"]["code"] == "not_found" and "\ufffd\ufffdab" in d["error"]["message"], d
' "$E2E_TMP/bad-utf8.json"

# ------------------------------------------------------------ clients that go away
# A long-poll and an event stream whose clients hang up while suspended:
# the daemon must notice nothing bad when the job later ends.
submit '{"plugin":"demo","job":"sleep","args":{"seconds":1}}'
gone_id=$JOB_ID
curl -sS --max-time 0.3 -o /dev/null "$CRUND_URL/v1/jobs/$gone_id?wait=30" 2>/dev/null
curl -sS -N --max-time 0.3 -o /dev/null "$CRUND_URL/v1/jobs/$gone_id/events" 2>/dev/null
job_wait "$gone_id" 5
jt 'd["state"] == "succeeded"' "a job whose waiting clients hung up still ends succeeded"
req GET /v1/health
is "$HTTP_STATUS" 200 "health 200 after waiting clients hung up"

# ------------------------------------------------------------ queue full
submit '{"plugin":"demo","job":"sleep","args":{"seconds":30}}'
q1=$JOB_ID
submit '{"plugin":"demo","job":"sleep","args":{"seconds":30}}'
q2=$JOB_ID
submit '{"plugin":"demo","job":"sleep","args":{"seconds":30}}'
q3=$JOB_ID
is "$HTTP_STATUS" 201 "max-running 1 + max-queued 2: third job accepted"
poll_state "$q1" running 5
check "first job runs" test "$(job_state "$q1")" = running
is "$(job_state "$q2")" queued "second job waits queued (max-running 1)"
submit '{"plugin":"demo","job":"sleep","args":{"seconds":30}}'
is "$HTTP_STATUS" 429 "queue full -> 429"
like "$(header Retry-After)" '^[0-9]+$' "429 has Retry-After seconds"
is_error '[a-z_]+' "429 -> error body"
req POST "/v1/jobs/$q1/cancel"
poll_state "$q2" running 5
is "$(job_state "$q2")" running "queue is FIFO: cancelling the running job starts the next"
is "$(job_state "$q3")" queued "third job still queued"
req POST "/v1/jobs/$q3/cancel"
is "$HTTP_STATUS" 202 "cancel a queued job -> 202"
job_wait "$q3" 5
jt 'd["state"] == "cancelled" and d["started_at"] is None' "cancelled queued job ends cancelled without starting"
req POST "/v1/jobs/$q2/cancel"
job_wait "$q2" 5
jt 'd["state"] == "cancelled"' "second job cancelled"
submit '{"plugin":"demo","job":"noop"}' '?wait=5'
jt 'd["state"] == "succeeded"' "after the queue drained new jobs run again"

stop_and_check_crund
done_testing
