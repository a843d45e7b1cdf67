#!/bin/bash
# shutdown.sh — crund's graceful close (docs/ARCHITECTURE.md §4.1): drain
# answers, grace period, cancellation with awaited cleanup, queued jobs
# ended "shutdown" (memory: store) or kept for the next start (durable
# store), a running job whose policy is retry queued again, waiting
# clients told the final state, exit 0; a second signal skips the grace.
# Prints TAP.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

final_state() { # FILE: "state/error.code" of a job JSON (or a final SSE event) in FILE
	jf "$1" '(lambda j: "%s/%s" % (j.get("state"), (j.get("error") or {}).get("code")))(jobof(d))'
}

# ============================================================ 1: drain
# grace + cleanup is the window the drain checks below run in: wide enough
# for a loaded machine, short enough to keep the script quick.
grace=$(slow 2)
start_crund --store memory: --grace "$grace" --max-running 1 || bail "crund did not start"

submit '{"plugin":"demo","job":"linger","args":{"seconds":60,"cleanup_seconds":1}}'
linger_id=$JOB_ID
poll_state "$linger_id" running 5
submit '{"plugin":"demo","job":"sleep","args":{"seconds":60}}'
queued_id=$JOB_ID
is "$(job_state "$queued_id")" queued "drain setup: a running linger job and a queued job"

# waiting clients: a long-poll on each job and an event stream on the running one
bg curl -sS --max-time "$(slow 30)" -o "$E2E_TMP/lp-linger.json" -w '%{http_code}' \
	"$CRUND_URL/v1/jobs/$linger_id?wait=30" >"$E2E_TMP/lp-linger.code"
lp1=$BG_PID
bg curl -sS --max-time "$(slow 30)" -o "$E2E_TMP/lp-queued.json" -w '%{http_code}' \
	"$CRUND_URL/v1/jobs/$queued_id?wait=30" >"$E2E_TMP/lp-queued.code"
lp2=$BG_PID
bg curl -sS -N --max-time "$(slow 30)" -o "$E2E_TMP/ev-linger.txt" \
	"$CRUND_URL/v1/jobs/$linger_id/events"
ev1=$BG_PID
wait_held 3 # the clients are connected and suspended

# also still waiting: the long-polls must not have answered yet
check "long-poll clients are waiting before SIGTERM" kill -0 "$lp1"

t0=$(now_ms)
kill -TERM "$CRUND_PID"
sleep 0.1
post_json /v1/jobs '{"plugin":"demo","job":"noop"}'
is "$HTTP_STATUS" 503 "draining: POST /v1/jobs -> 503"
like "$(header Retry-After)" '^[0-9]+$' "draining: 503 has Retry-After"
is_error '[a-z_]+' "draining: 503 has an error body"
req GET /v1/health
is "$HTTP_STATUS" 503 "draining: health -> 503"
req GET "/v1/jobs/$linger_id"
is "$HTTP_STATUS" 200 "draining: GET /v1/jobs/{id} still 200"
req GET /v1/info
jt 'd["state"] == "draining"' "draining: info state is draining"

wait_crund_exit "$(slow 15)"
t1=$(now_ms)
is "$CRUND_STATUS" 0 "drained daemon exits 0"
diag "SIGTERM to exit: $((t1 - t0)) ms (grace $grace s + cleanup 1 s)"

for p in "$lp1" "$lp2" "$ev1"; do
	wait "$p"
done
is "$(cat "$E2E_TMP/lp-linger.code")" 200 "long-poll on the running job answered 200"
is "$(final_state "$E2E_TMP/lp-linger.json")" cancelled/shutdown "long-poll got the running job's final state: cancelled, shutdown"
is "$(cat "$E2E_TMP/lp-queued.code")" 200 "long-poll on the queued job answered 200"
is "$(final_state "$E2E_TMP/lp-queued.json")" cancelled/shutdown "queued job ends cancelled, error.code shutdown"
sse_json "$E2E_TMP/ev-linger.txt" >"$E2E_TMP/ev-linger.json"
is "$(jf "$E2E_TMP/ev-linger.json" '(lambda j: "%s/%s" % (j.get("state"), (j.get("error") or {}).get("code")))(jobof(d[-1]["data"]))')" \
	cancelled/shutdown "event stream got the final event before closing"
check "linger job's cleanup was awaited before exit (logged)" grep -q "$linger_id.*cleanup done" "$CRUND_LOG"
check "drain log has no sanitizer/valgrind reports" log_is_clean
check "drain log reports no leaked tasks" log_has_no_leaked_tasks

# ============================================================ 2: job ends within the grace
start_crund --grace "$(slow 5)" || bail "crund did not restart"
submit '{"plugin":"demo","job":"sleep","args":{"seconds":0.8}}'
short_id=$JOB_ID
poll_state "$short_id" running 5
bg curl -sS --max-time "$(slow 30)" -o "$E2E_TMP/lp-short.json" "$CRUND_URL/v1/jobs/$short_id?wait=30"
lp3=$BG_PID
wait_held 1 # (or the job ended first: then the long-poll answered at once)
kill -TERM "$CRUND_PID"
wait_crund_exit "$(slow 15)"
is "$CRUND_STATUS" 0 "daemon with a short job exits 0"
wait "$lp3"
is "$(final_state "$E2E_TMP/lp-short.json")" succeeded/None "a job that finishes within the grace ends succeeded"
check "grace log has no sanitizer/valgrind reports" log_is_clean

# ============================================================ 3: second signal
start_crund --grace 30 || bail "crund did not restart"
submit '{"plugin":"demo","job":"sleep","args":{"seconds":60},"on_interrupt":"fail"}'
long_id=$JOB_ID
poll_state "$long_id" running 5
# SIGHUP, SIGUSR1, SIGUSR2: logged, nothing else (their default action
# killed crund, its jobs with it)
for sig in HUP USR1 USR2; do
	kill -"$sig" "$CRUND_PID"
done
sleep 0.3
check "SIGHUP, SIGUSR1, SIGUSR2: crund still runs" kill -0 "$CRUND_PID"
is "$(job_state "$long_id")" running "... and so does its job"
for sig in HUP USR1 USR2; do
	check "... SIG$sig is logged as ignored" grep -q "received SIG$sig: ignored (crund has no reload" "$CRUND_LOG"
done
# stopped and continued (SIGSTOP, a paused VM): no job is blamed for
# blocking the loop (the watchdog's own thread was stopped too)
kill -STOP "$CRUND_PID"
sleep 3
kill -CONT "$CRUND_PID"
sleep 1
check "after SIGSTOP and SIGCONT crund still runs" kill -0 "$CRUND_PID"
check "... and blames no job for the time it was stopped" bash -c "! grep -q 'probably blocking it' '$CRUND_LOG'"
bg curl -sS --max-time "$(slow 30)" -o "$E2E_TMP/lp-long.json" "$CRUND_URL/v1/jobs/$long_id?wait=30"
lp4=$BG_PID
wait_held 1
kill -TERM "$CRUND_PID"
sleep 0.3
check "first SIGTERM with --grace 30: still draining" kill -0 "$CRUND_PID"
kill -TERM "$CRUND_PID"
t0=$(now_ms)
wait_crund_exit "$(slow 10)"
t1=$(now_ms)
is "$CRUND_STATUS" 0 "second SIGTERM skips the 30 s grace: exits 0 within $(slow 10) s"
diag "second SIGTERM to exit: $((t1 - t0)) ms"
wait "$lp4"
is "$(final_state "$E2E_TMP/lp-long.json")" cancelled/shutdown "second signal: running job ends cancelled, shutdown"
check "second-signal log has no sanitizer/valgrind reports" log_is_clean
check "second-signal log reports no leaked tasks" log_has_no_leaked_tasks

# ============================================================ 4: executor and child tasks at shutdown
# --grace 0: a sieve on an executor thread and a fanout of 500 sleeping
# children are cancelled at once; the daemon must still exit 0, record both
# ends, and leak no task.
start_crund --grace 0 || bail "crund did not restart"
submit '{"plugin":"demo","job":"fanout","args":{"n":500,"seconds":60},"on_interrupt":"fail"}'
fan_id=$JOB_ID
submit '{"plugin":"demo","job":"compute","args":{"n":100000000},"on_interrupt":"fail"}'
comp_id=$JOB_ID
poll_state "$fan_id" running 5
bg curl -sS --max-time "$(slow 30)" -o "$E2E_TMP/lp-fan.json" "$CRUND_URL/v1/jobs/$fan_id?wait=30"
lp5=$BG_PID
bg curl -sS --max-time "$(slow 30)" -o "$E2E_TMP/lp-comp.json" "$CRUND_URL/v1/jobs/$comp_id?wait=30"
lp6=$BG_PID
wait_held 2 # (the compute job may have ended: then one)
kill -TERM "$CRUND_PID"
wait_crund_exit "$(slow 15)"
is "$CRUND_STATUS" 0 "--grace 0 with executor work and 500 child tasks: exits 0"
wait "$lp5" "$lp6"
is "$(final_state "$E2E_TMP/lp-fan.json")" cancelled/shutdown "fanout job ends cancelled, shutdown"
like "$(final_state "$E2E_TMP/lp-comp.json")" '^(cancelled/shutdown|succeeded/None)$' "compute job has a recorded end (cancelled, shutdown or succeeded)"
check "executor shutdown log has no sanitizer/valgrind reports" log_is_clean
check "executor shutdown log reports no leaked tasks" log_has_no_leaked_tasks

# ============================================================ 5: durable store
# queued jobs wait for the next start; a running job whose policy is retry
# is queued again (its interrupted attempt does not count), one whose
# policy is fail ends cancelled, shutdown.
start_crund --grace 0 --max-running 2 || bail "crund did not restart"
# linger is marked rerun-safe by the demo plugin: retry is its default
submit '{"plugin":"demo","job":"linger","args":{"seconds":60,"cleanup_seconds":0.1}}'
retry_id=$JOB_ID
jt 'd["on_interrupt"] == "retry"' "durable: a rerun-safe job's on_interrupt defaults to retry"
submit '{"plugin":"demo","job":"sleep","args":{"seconds":60},"on_interrupt":"fail"}'
fail_id=$JOB_ID
poll_state "$retry_id" running 5
poll_state "$fail_id" running 5
submit '{"plugin":"demo","job":"noop"}'
kept_id=$JOB_ID
is "$(job_state "$kept_id")" queued "durable: a third job waits behind max-running 2"
# clients waiting on jobs the close keeps for the next start get the job
# as it is then and a clean end, not a cut connection: long-polls on the
# requeued job and the queued one, an event stream on each
for w in retry kept; do
	id_var=${w}_id
	curl -sS --max-time "$(slow 30)" "${CURL_AUTH[@]}" -o "$E2E_TMP/dlp-$w.json" -w '%{http_code}' \
		"$CRUND_URL/v1/jobs/${!id_var}?wait=60" >"$E2E_TMP/dlp-$w.code" 2>>"$E2E_TMP/curl.err" 7>&- 8<&- &
	BG_PIDS+=($!)
	curl -sS -N --max-time "$(slow 30)" "${CURL_AUTH[@]}" -o "$E2E_TMP/dsse-$w.txt" \
		"$CRUND_URL/v1/jobs/${!id_var}/events" 2>>"$E2E_TMP/curl.err" 7>&- 8<&- &
	BG_PIDS+=($!)
done
wait_held 4 # subscribed
kill -TERM "$CRUND_PID"
wait_crund_exit "$(slow 15)"
is "$CRUND_STATUS" 0 "durable: exits 0"
wait "${BG_PIDS[@]}"
BG_PIDS=()
for w in retry kept; do
	is "$(cat "$E2E_TMP/dlp-$w.code")" 200 "durable: a long-poll on the $w job is answered at the close"
	is "$(final_state "$E2E_TMP/dlp-$w.json")" queued/None "durable: ... with the job as it is: queued for the next start"
	check "durable: the $w job's event stream ends with a shutdown event (not end: the job has not ended)" \
		test "$(grep '^event:' "$E2E_TMP/dsse-$w.txt" | tail -n 1)" = "event: shutdown"
	check "durable: ... whose data is the job, queued" \
		python3 -c 'import json,sys; l = [x for x in open(sys.argv[1]) if x.startswith("data: ")][-1]; d = json.loads(l[6:]); assert d["state"] == "queued", d' \
		"$E2E_TMP/dsse-$w.txt"
done
check "durable: the log says the queued job stays queued" grep -q "1 queued jobs stay queued" "$CRUND_LOG"
start_crund --grace 0 --max-running 2 || bail "crund did not restart on its store"
job_wait "$kept_id"
jt 'd["state"] == "succeeded"' "durable: the queued job ran at the next start"
req GET "/v1/jobs/$fail_id"
jt 'd["state"] == "cancelled" and d["error"]["code"] == "shutdown"' \
	"durable: the running job with on_interrupt fail ended cancelled, shutdown"
poll_state "$retry_id" running 5
req GET "/v1/jobs/$retry_id"
jt 'd["state"] == "running" and d["attempt"] == 1 and d["attempts"] == []' \
	"durable: the running job with on_interrupt retry runs again (attempt 1: the stop's interruption is not an attempt)"
req POST "/v1/jobs/$retry_id/cancel"
job_wait "$retry_id"
jt 'd["state"] == "cancelled" and d["error"]["code"] == "cancelled"' "durable: cancelled by request, never retried"
stop_and_check_crund

# ============================================================ 6: SIGINT
start_crund || bail "crund did not restart"
kill -INT "$CRUND_PID"
wait_crund_exit "$(slow 10)"
is "$CRUND_STATUS" 0 "idle daemon exits 0 on SIGINT"
check "SIGINT log has no sanitizer/valgrind reports" log_is_clean

# ============================================================ 7: signals during the close
# More SIGTERMs while crund closes (an impatient operator, a second
# `systemctl stop`): the first drains, a second skips the grace, and any
# after the loop is gone must not kill the close half-way (the loop's
# handlers are gone then; the default action is death).  A burst of three
# at several delays after the first, across the whole close.  (That last
# part of the close took ~140 ms while the watchdog's stop waited for its
# sleep, and a burst 0.15 s after the first SIGTERM killed the daemon
# without the fix; it takes milliseconds now, so most bursts land in the
# drain or after the exit.)
killed=0
for delay in 0.02 0.06 0.1 0.15 0.2 0.3 0.4; do
	start_crund --store "sqlite:$E2E_TMP/signals.db" || bail "crund did not restart (signals during the close)"
	submit '{"plugin":"demo","job":"noop"}' '?wait=5'
	kill -TERM "$CRUND_PID"
	sleep "$delay"
	for _ in 1 2 3; do kill -TERM "$CRUND_PID" 2>/dev/null; done
	wait_crund_exit "$(slow 15)"
	if [ "$CRUND_STATUS" != 0 ] || ! grep -q ' stopped$' "$CRUND_LOG"; then
		killed=$((killed + 1))
		diag "SIGTERMs $delay s after the first: exit status $CRUND_STATUS"
	fi
done
is "$killed" 0 "more SIGTERMs during the close: crund still closes cleanly (exit 0, 'stopped' logged), 7 of 7"

done_testing
