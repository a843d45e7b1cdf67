#!/bin/bash
# abuse.sh — the HTTP front door under abuse (issue 12), through raw
# sockets (tests/e2e/abuse.py): partial requests by the thousand, one
# client holding every connection it may, slowloris on the head, the body
# and a keep-alive connection's next request, clients that never read their
# answer.  Asserted: refusals are fast 503s, not hangs; the operator gets in
# (another address, the Unix socket's reserve); closed clients free their
# slots at once; slow clients are closed at the header and body timeouts;
# the daemon survives and loses no job.  Counts and times are bounded;
# nothing asserts a speed beyond "it did not hang".  Prints TAP.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
. "$(dirname "$0")/lib.sh"
# The front door only: jobs need not outlive each daemon here (a long job
# requeued at the next start would hold up its graceful stop).
CRUND_STORE=memory:

ABUSE=("$PY" "$top_srcdir/tests/e2e/abuse.py")
LIMIT=$(slow 10)
# kv FILE KEY: the value of a key=value line
kv() { sed -n "s/^$2=//p" "$1" | head -n 1; }

# 1,200 partial requests need ~2,400 fds on this side and the daemon's
need=3000
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need" ]; then
	echo "1..0 # SKIP the fd hard limit ($(ulimit -Hn)) is below $need"
	exit 0
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null

sock="$E2E_TMP/crund.sock"
start_crund --listen "unix:$sock" --grace 0 || bail "crund did not start"
submit '{"plugin":"demo","job":"sleep","args":{"seconds":600}}'
is "$HTTP_STATUS" 201 "a long job is accepted before the abuse"
long=$JOB_ID

# ------------------------------------------- one client, 1,200 partial requests
out="$E2E_TMP/flood1.txt"
"${ABUSE[@]}" flood --port "$CRUND_PORT" --unix "$sock" --limit "$LIMIT" \
	--srcs 127.0.0.1 --each 1200 --probe 127.0.0.1,127.0.0.9 >"$out"
diag "$(tr '\n' ' ' <"$out")"
is "$(kv "$out" held)" 500 "one client holds at most half of --max-connections (default 1000)"
is "$(kv "$out" refused)" 700 "the other 700 connections get an answer, not a hang"
like "$(kv "$out" reasons)" '^too_many_connections:700$' "... a 503 too_many_connections"
is "$(kv "$out" health_127.0.0.1)" 503 "the same client's next connection gets a fast 503"
is "$(kv "$out" health_127.0.0.9)" 200 "another client's health check answers 200"
is "$(kv "$out" submit_tcp)" 201 "another client's submission is accepted"
is "$(kv "$out" submit_unix)" 201:succeeded "a submission over the Unix socket succeeds"
check "refusals are counted in /metrics (per_client: $(kv "$out" metric_refused_per_client))" \
	test "$(kv "$out" metric_refused_per_client)" -ge 700
is "$(kv "$out" freed)" yes "closing the 1,200 sockets frees their slots at once (not at a timeout)"
is "$(kv "$out" health_after)" 200 "the flooding client gets in again afterwards"

# ----------------------------------- many clients at the limit, operator on Unix
out="$E2E_TMP/flood2.txt"
"${ABUSE[@]}" flood --port "$CRUND_PORT" --unix "$sock" --limit "$LIMIT" \
	--srcs 127.0.0.2,127.0.0.3,127.0.0.4 --each 400 --probe 127.0.0.1 >"$out"
diag "$(tr '\n' ' ' <"$out")"
is "$(kv "$out" held)" 1000 "three clients fill --max-connections"
is "$(kv "$out" refused)" 200 "the 200 beyond it get a 503"
is "$(kv "$out" health_127.0.0.1)" 503 "at the limit a new TCP client gets a fast 503"
is "$(kv "$out" submit_unix)" 201:succeeded "at the limit a submission over the Unix socket succeeds (its reserve)"
check "refusals at the limit are counted (max_connections: $(kv "$out" metric_refused_max_connections))" \
	test "$(kv "$out" metric_refused_max_connections)" -ge 200
is "$(kv "$out" freed)" yes "closing them frees every slot at once"
is "$(kv "$out" health_after)" 200 "TCP clients get in again"

# ------------------------------------------------ clients that never read
"$PY" -c 'import json; print(json.dumps({"plugin":"demo","job":"echo","args":{"value":"x"*600000}}))' >"$E2E_TMP/big.json"
post_json '/v1/jobs?wait=10' "@$E2E_TMP/big.json"
like "$(grep -o '"state":"[a-z]*"' "$HTTP_BODY_FILE")" succeeded "a job with a 600 kB result"
bigid=$(header Location | sed 's|.*/||')
out="$E2E_TMP/noread.txt"
"${ABUSE[@]}" noread --port "$CRUND_PORT" --limit "$LIMIT" --count 40 --big "$bigid" \
	--stream "$long" --rounds 5 >"$out"
diag "$(tr '\n' ' ' <"$out")"
is "$(kv "$out" rounds_ok)" "5 of 5" "40 clients that never read their answer do not block health and submissions"

is "$(job_state "$long")" running "the long job runs on through all of it"
req GET /metrics
sub=$(sed -n 's/^crund_jobs_submitted_total //p' "$HTTP_BODY_FILE")
known=$(awk '/^crund_jobs\{/ { n += $2 } END { print n }' "$HTTP_BODY_FILE")
check "no job lost: $sub submitted, $known known" test "$sub" = "$known" -a "$sub" -ge 10
stop_and_check_crund "crund after floods"

# ------------------------------------------------------------- slowloris
# --idle-timeout stays at 75: only the new, absolute deadlines can close
# these clients, which send a byte every 0.5 s (so MHD never sees them idle).
start_crund --header-timeout 1 --body-timeout 1 || bail "crund did not start with --header-timeout"
for phase in head body keepalive; do
	"${ABUSE[@]}" slow --port "$CRUND_PORT" --phase "$phase" --interval 0.5 \
		--limit "$LIMIT" >"$E2E_TMP/slow-$phase.txt" 7>&- 8<&- &
	BG_PIDS+=($!)
done
wait "${BG_PIDS[@]}"
BG_PIDS=()
for phase in head body keepalive; do
	out="$E2E_TMP/slow-$phase.txt"
	diag "$phase: $(tr '\n' ' ' <"$out")"
	is "$(kv "$out" result)" closed "slowloris ($phase): the daemon closes the connection"
done
like "$(kv "$E2E_TMP/slow-keepalive.txt" first_status)" '^200$' "... after answering the keep-alive connection's first request"
req GET /metrics
like "$(grep '^crund_http_timeouts_total{phase="header"}' "$HTTP_BODY_FILE")" ' [2-9]$' "header timeouts are counted"
like "$(grep '^crund_http_timeouts_total{phase="body"}' "$HTTP_BODY_FILE")" ' [1-9]$' "body timeouts are counted"
req GET /v1/health
is "$HTTP_STATUS" 200 "the daemon still answers"
post_json '/v1/jobs?wait=10' '{"plugin":"demo","job":"noop"}'
like "$(grep -o '"state":"[a-z]*"' "$HTTP_BODY_FILE")" succeeded "and runs jobs"
# The deadlines bound a request's arrival, not its answer: a long-poll
# outlives them (a submission's ?wait, a GET's ?wait, the body and head
# deadlines of 1 s).
post_json '/v1/jobs?wait=10' '{"plugin":"demo","job":"sleep","args":{"seconds":2.5}}'
is "$HTTP_STATUS" 201 "a submission's ?wait outlives --body-timeout and --header-timeout"
like "$(grep -o '"state":"[a-z]*"' "$HTTP_BODY_FILE")" succeeded "... and answers the job's end"
submit '{"plugin":"demo","job":"sleep","args":{"seconds":2.5}}'
req GET "/v1/jobs/$JOB_ID?wait=10"
is "$HTTP_STATUS" 200 "a GET's ?wait outlives them too"
jt 'd["state"] == "succeeded"' "... and answers the job's end"
stop_and_check_crund "crund after slowloris"

# ------------------------------------------------------------- gone waiters
# Long-polls and event streams whose clients went away release their
# connections at once: they count against --max-connections-per-client, so
# held until their job ended they would lock the client out.
start_crund --max-connections-per-client 4 || bail "crund did not start with --max-connections-per-client 4"
submit '{"plugin":"demo","job":"sleep","args":{"seconds":60}}'
gone_id=$JOB_ID
gone=()
for _ in 1 2 3; do
	curl -sS -o /dev/null --max-time 60 "$CRUND_URL/v1/jobs/$gone_id?wait=60" 2>/dev/null 7>&- 8<&- &
	gone+=($!)
done
curl -sS -N -o /dev/null --max-time 60 "$CRUND_URL/v1/jobs/$gone_id/events" 2>/dev/null 7>&- 8<&- &
gone+=($!)
sleep 1 # all four held
kill "${gone[@]}" 2>/dev/null
wait "${gone[@]}" 2>/dev/null
poll_health "$(slow 3)"
is "$HTTP_STATUS" 200 "clients gone from their long-polls and stream: the client is served again"
req GET /metrics
is "$(sed -n 's/^crund_http_held_connections //p' "$HTTP_BODY_FILE")" 0 "... and no held connection is left"
req POST "/v1/jobs/$gone_id/cancel"
stop_and_check_crund "crund after gone waiters"

# ------------------------------------------------- closed, however they close
# A client that closes with bytes of the answer unread (an event stream's
# client nearly always has some: an event or a ping came after what it
# read) makes its kernel send a reset, not a FIN; so does SO_LINGER 0.
# crund's watch of a held connection saw only a FIN: a reset stream was
# held until its next ping failed (--stream-ping, 15 s), a reset ?wait
# until its answer, and meanwhile the loop woke on every turn.  40 held
# requests (a job's stream, /v1/events, a ?wait), opened and closed in
# turn, each is released within 2 s of its close (it took 15 s).
start_crund || bail "crund did not start"
submit '{"plugin":"demo","job":"sleep","args":{"seconds":60}}'
out="$E2E_TMP/gone.txt"
"${ABUSE[@]}" gone --port "$CRUND_PORT" --limit "$LIMIT" --count 40 --stream "$JOB_ID" \
	--settle "$(slow 2)" >"$out"
diag "$(tr '\n' ' ' <"$out")"
is "$(kv "$out" not_held)/$(kv "$out" errors)" 0/0 "40 long-polls and streams were held, then closed by their clients"
is "$(kv "$out" released_late)" 0 "each is released at once: a FIN, a close with bytes unread, a reset"
is "$(kv "$out" held_after)" 0 "... and none is held afterwards"
req POST "/v1/jobs/$JOB_ID/cancel"
stop_and_check_crund "crund after closed streams"

# ------------------------------------------------- a chunked body past --max-body
# Without a Content-Length the size is known only as the body comes: crund
# read it all (to --body-timeout) and answered 413 only at its end, to a
# client that was still sending.  Now the 413 comes as the body passes
# --max-body (1 MiB), and the connection is closed: the rest is not read.
start_crund || bail "crund did not start"
out="$E2E_TMP/bigbody.txt"
"${ABUSE[@]}" bigbody --port "$CRUND_PORT" --limit "$LIMIT" >"$out"
diag "$(tr '\n' ' ' <"$out")"
is "$(kv "$out" status):$(kv "$out" code)" 413:body_too_large "a chunked body past --max-body is answered 413 body_too_large while it comes"
check "... once it passes --max-body, not at its end (answered after $(kv "$out" sent_at_answer) bytes)" \
	test "$(kv "$out" sent_at_answer)" != none -a "$(kv "$out" sent_at_answer)" -le $((3 << 20))
like "$(kv "$out" end)" '^(eof|reset)$' "... and the connection is closed: the rest of the body is not read"
up=$(head -c 20000000 /dev/zero | curl -sS -T - -X POST --limit-rate 1M --max-time "$(slow 20)" \
	-o "$E2E_TMP/bigbody.json" -w '%{http_code} %{size_upload}' "$CRUND_URL/v1/jobs")
is "${up% *}" 413 "curl uploading 20 MB chunked at 1 MB/s gets 413"
check "... after at most 3 MiB of it (${up#* } bytes)" test "${up#* }" -le $((3 << 20))
like "$(cat "$E2E_TMP/bigbody.json")" '"code":"body_too_large"' "... with its error body"
req GET /v1/health
is "$HTTP_STATUS" 200 "the daemon still answers"
stop_and_check_crund "crund after large bodies"

# ------------------------------------------------------------- configuration
for bad in "--header-timeout 0" "--body-timeout 0" "--max-connections-per-client -1"; do
	# shellcheck disable=SC2086
	crund_cmd $bad --listen 127.0.0.1:1
	"${CRUND_CMD[@]}" >"$E2E_TMP/bad.log" 2>&1
	is "$?" 2 "$bad is refused (exit 2)"
done

done_testing
