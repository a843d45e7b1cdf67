#!/bin/bash
# durable.sh — the SQLite store through the real interfaces: kill -9 under
# submission load, restarted on the same store, round after round (every
# job that got a 201 is there after the restart; none ran twice unless its
# policy is retry and it was running at a kill; every job ends once the
# daemon runs long enough); a fail-policy job's end is in the store before
# an answer names it (kill -9 right after ?wait, GET, event stream answers;
# commits slowed with strace); a cancel and a DELETE are in the store
# before their answers (kill -9 right after them); retries with backoff;
# delayed jobs (delay and run_at); idempotency across restarts; a second
# crund on the same store; a foreign file; a store that cannot be created.
# Prints TAP.
#
# CRUND_KILL_ROUNDS sets the number of kill -9 rounds (default 50; the
# soak in tests/soak/ runs many more).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
. "$(dirname "$0")/lib.sh"

rounds=${CRUND_KILL_ROUNDS:-50}
[ "${CRUND_VALGRIND:-0}" = 1 ] && rounds=3

# ------------------------------------------------------------ kill -9 rounds
# A client keeps 8 connections submitting a mix of jobs and writes the id of
# every job that got a 201 (with its policy) to a file, one line each,
# flushed before the next request: what it wrote was acknowledged.
cat >"$E2E_TMP/load.py" <<'EOF'
import http.client, json, sys, threading, time, uuid
port, out, seconds, cap, runs = (int(sys.argv[1]), sys.argv[2], float(sys.argv[3]),
                                 int(sys.argv[4]), sys.argv[5])
# The exec job leaves a trace outside crund: its token, appended to the
# runs file each time it runs, so a job run twice is seen even when the
# store has only one attempt of it.
EXEC = ('fail', {"plugin": "exec", "job": "run", "on_interrupt": "fail",
                 "args": {"argv": ["/bin/sh", "-c", 'echo "$0" >> "$1"', "TOKEN", runs]}})
bodies = [
    ('fail', {"plugin": "demo", "job": "noop", "on_interrupt": "fail"}),
    ('retry', {"plugin": "demo", "job": "sleep", "args": {"seconds": 0.02},
               "on_interrupt": "retry", "max_attempts": 1000}),
    ('fail', {"plugin": "demo", "job": "sleep", "args": {"seconds": 0.01},
              "on_interrupt": "fail"}),
    EXEC,
]
lock = threading.Lock()
f = open(out, "a")
acked = [0]
stop = time.time() + seconds
def run(k):
    i = k
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        while time.time() < stop and acked[0] < cap:
            pol, b = bodies[i % len(bodies)]
            i += 1
            token = "-"
            if b is EXEC[1]:
                token = uuid.uuid4().hex
                b = json.loads(json.dumps(b).replace("TOKEN", token))
            c.request("POST", "/v1/jobs", json.dumps(b), {"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            if r.status == 201:
                with lock:
                    f.write("%s %s %s\n" % (json.loads(data)["id"], pol, token))
                    f.flush()
                    acked[0] += 1
    except Exception:
        pass  # the daemon was killed
ts = [threading.Thread(target=run, args=(k,)) for k in range(8)]
for t in ts: t.start()
for t in ts: t.join()
EOF
acked="$E2E_TMP/acked.txt"
runs="$E2E_TMP/exec-runs.txt"
: >"$acked"
: >"$runs"
# (an interrupted attempt waits for its backoff, as a failed one does:
# capped at 2 s so that the jobs end soon after the last round)
kill_flags=(--retain-jobs 1000000 --max-running 64 --allow-command-plugins --exec-allow /bin/sh
	--exec-allow '/usr/bin/*' --retry-max-delay 2)
lost=0
start_crund "${kill_flags[@]}" || bail "crund did not start"
for ((round = 1; round <= rounds; round++)); do
	before=$(wc -l <"$acked")
	"$PY" "$E2E_TMP/load.py" "$CRUND_PORT" "$acked" "$(slow 10)" 300 "$runs" &
	loadpid=$!
	# once the load is on (a first 201), kill at a moment up to 300 ms later
	for ((i = 0; i < $(slow 10) * 50; i++)); do
		[ "$(wc -l <"$acked")" -gt "$before" ] && break
		sleep 0.02
	done
	sleep "0.$(printf '%03d' $((RANDOM % 300)))"
	kill -KILL "$CRUND_PID"
	wait "$CRUND_PID" 2>/dev/null
	wait "$loadpid"
	start_crund "${kill_flags[@]}" || bail "crund did not restart in round $round"
	# every job acknowledged in this round is there
	missing=$("$PY" - "$CRUND_PORT" "$acked" "$before" <<'EOF'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
n = 0
for line in open(sys.argv[2]).readlines()[int(sys.argv[3]):]:
    jid = line.split()[0]
    c.request("GET", "/v1/jobs/" + jid); r = c.getresponse(); r.read()
    if r.status != 200:
        n += 1
        print("missing", jid, r.status, file=sys.stderr)
print(n)
EOF
)
	lost=$((lost + missing))
done
total=$(wc -l <"$acked")
diag "$rounds kill -9 rounds, $total jobs acknowledged"
is "$lost" 0 "kill -9 x $rounds: every job that got a 201 is there after each restart"
check "the load was real: over $rounds jobs acknowledged" test "$total" -gt "$rounds"

# let everything end, then check each job's story
for ((i = 0; i < $(slow 60) * 10; i++)); do
	req GET /v1/info
	[ "$(j 'd["jobs"]["queued"] + d["jobs"]["running"]')" = 0 ] && break
	sleep 0.1
done
req GET /v1/info
jt 'd["jobs"]["queued"] + d["jobs"]["running"] == 0' "after the rounds every job has ended"
bad=$("$PY" - "$CRUND_PORT" "$acked" "$runs" <<'EOF'
import collections, http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
ran = collections.Counter(l.strip() for l in open(sys.argv[3]))
bad = 0
for line in open(sys.argv[2]):
    jid, pol, token = line.split()
    c.request("GET", "/v1/jobs/" + jid); r = c.getresponse(); d = json.loads(r.read())
    # the attempts before the last (the last, once ended, is listed too)
    ints = [a for a in d["attempts"]
            if a["attempt"] < d["attempt"] and (a["error"] or {}).get("code") == "interrupted"]
    ok = d["state"] in ("succeeded", "failed")
    if pol == "fail":
        # never run twice: one attempt; interrupted ones end failed
        ok = ok and d["attempt"] <= 1 and not ints
        ok = ok and (d["state"] == "succeeded" or d["error"]["code"] == "interrupted")
        if token != "-":  # the exec job: its runs, as its command saw them
            n = ran[token]
            ok = ok and n <= 1 and (n == 1 or d["state"] != "succeeded")
    else:
        # ran again only after an interruption, once per interruption
        ok = ok and d["attempt"] == 1 + len(ints) and d["state"] == "succeeded"
    if not ok:
        bad += 1
        if bad <= 5:
            print(json.dumps(d), file=sys.stderr)
print(bad)
EOF
)
is "$bad" 0 "no job ran twice unless its policy is retry and a kill interrupted it; each ended once"
check "the exec jobs left their trace (each run of one appends its token)" test -s "$runs"
stop_and_check_crund "after the kill rounds, crund"

# ------------------------------------------------------------ --sync normal
# normal survives a crash of crund (not of the machine): jobs that got a
# 201 are there after kill -9, with the sync mode named in the log
storen="sqlite:$E2E_TMP/normal.db"
start_crund --store "$storen" --sync normal || bail "crund did not start with --sync normal"
check "--sync normal is named in the log" grep -q 'sync normal' "$CRUND_LOG"
ids=()
for i in $(seq 30); do
	submit "{\"plugin\":\"demo\",\"job\":\"noop\",\"delay\":600,\"idempotency_key\":\"n-$i\"}"
	[ "$HTTP_STATUS" = 201 ] && ids+=("$JOB_ID")
done
is "${#ids[@]}" 30 "--sync normal: 30 delayed jobs acknowledged"
kill -KILL "$CRUND_PID"
wait "$CRUND_PID" 2>/dev/null
start_crund --store "$storen" --sync normal || bail "crund did not restart with --sync normal"
found=0
for id in "${ids[@]}"; do
	[ "$(job_state "$id")" = queued ] && found=$((found + 1))
done
is "$found" 30 "--sync normal: every acknowledged job is there, still queued, after kill -9"
stop_and_check_crund "crund --sync normal"

# ------------------------------------------------------------ a start
# A job's start is written within milliseconds even when nothing else is
# committed (it waits up to 5 ms for the job's end, which would replace
# it): a retry job killed while it sleeps is seen as interrupted, runs
# again, and its first attempt is in its story.
storei="sqlite:$E2E_TMP/start.db"
start_crund --store "$storei" || bail "crund did not start"
submit '{"plugin":"demo","job":"sleep","args":{"seconds":2},"on_interrupt":"retry","max_attempts":3}'
sid=$JOB_ID
poll_state "$sid" running "$(slow 5)" || diag "the sleep job did not start"
sleep 0.3
kill -KILL "$CRUND_PID"
wait "$CRUND_PID" 2>/dev/null
start_crund --store "$storei" || bail "crund did not restart"
req GET /v1/info
restarted=$(j 'd["started_at"]')
job_wait "$sid" "$(slow 10)"
jt 'd["state"] == "succeeded" and d["attempt"] == 2' "a job killed while running ran again: attempt 2"
jt "secs(d['started_at']) - secs('$restarted') >= 0.85" \
	"... after its backoff (attempt 1: 1 s ± 10 % from the restart), as a failed attempt"
jt '[a["error"]["code"] for a in d["attempts"] if a["error"]] == ["interrupted"]' \
	"its first attempt is recorded interrupted (its start had reached the store)"
stop_and_check_crund "crund after a killed start"

# ------------------------------------------------------------ a told end
# An answer that names how a job ended is sent once that end is in the
# store when the job's policy is fail (the next start would otherwise end it
# "interrupted" after its client was told it succeeded).  crund is killed
# right after the answer (curl, then kill: no time for a later commit) and
# restarted; it must still hold what it told.  Three ways to be told: a
# ?wait submission, a plain GET polled until the job ends, the job's event
# stream.
storee="sqlite:$E2E_TMP/told.db"
: >"$E2E_TMP/told"
told_body() { # WAY ROUND: prints the answer that names the end
	local sub="{\"plugin\":\"demo\",\"job\":\"sleep\",\"args\":{\"seconds\":0.$2},\"on_interrupt\":\"fail\"}"
	local c=(curl -sS --max-time "$(slow 10)" "${CURL_AUTH[@]}")
	if [ "$1" = wait ]; then
		"${c[@]}" -H 'Content-Type: application/json' --data-binary "$sub" \
			"$CRUND_URL/v1/jobs?wait=$(slow 5)"
		return
	fi
	local id
	id=$("${c[@]}" -H 'Content-Type: application/json' --data-binary "$sub" "$CRUND_URL/v1/jobs" |
		sed -n 's/^{"id":"\([^"]*\)".*/\1/p')
	if [ "$1" = get ]; then
		local b i
		for ((i = 0; i < 2000; i++)); do
			b=$("${c[@]}" "$CRUND_URL/v1/jobs/$id")
			case $b in *'"state":"succeeded"'*) break ;; esac
		done
		printf '%s\n' "$b"
	else # the stream's end event
		"${c[@]}" -N "$CRUND_URL/v1/jobs/$id/events" | sed -n 's/^data: //p' | tail -n 1
	fi
}
for way in wait get events; do
	for i in 1 2 3 4; do
		start_crund --store "$storee" || bail "crund did not start (told end, $way $i)"
		told_body "$way" "$i" >"$E2E_TMP/told.$way.$i" 2>>"$E2E_TMP/curl.err" || true
		kill -KILL "$CRUND_PID"
		wait "$CRUND_PID" 2>/dev/null
		tid=$(jf "$E2E_TMP/told.$way.$i" 'd["id"] if d["state"] == "succeeded" else ""') || tid=
		[ -n "$tid" ] && echo "$way $tid" >>"$E2E_TMP/told"
	done
done
is "$(wc -l <"$E2E_TMP/told")" 12 "a told end: 12 fail-policy jobs told succeeded (?wait, GET, events), each followed by kill -9"
start_crund --store "$storee" || bail "crund did not restart (told end)"
kept=0
while read -r way tid; do
	req GET "/v1/jobs/$tid"
	if [ "$(j 'd["state"]')" = succeeded ]; then
		kept=$((kept + 1))
	else
		diag "told by $way:" && req_diag
	fi
done <"$E2E_TMP/told"
is "$kept" 12 "a told end: after each kill -9 the store holds the end the answer named"
stop_and_check_crund "crund after told ends"

# ------------------------------------------------ a told cancel, a told DELETE
# A cancel and a DELETE are answered once they are in the store, whatever
# the job's policy: crund killed right after the answer (curl, then kill)
# must not run a job it said was cancelled (or was being cancelled), nor
# bring back one it said was deleted.  Four kinds, two rounds each: the
# cancel of a queued (delayed) job, answered 202 `cancelled`; the cancel of
# a running retry-policy job, told `cancelled` by ?wait; the cancel of a
# running retry-policy job that takes 30 s to clean up, answered 202
# `running` (killed during the cleanup: the next start ends it cancelled,
# it does not run it again); the DELETE of an ended job, answered 204.
storec="sqlite:$E2E_TMP/cancel.db"
: >"$E2E_TMP/told-cancel"
c=(curl -sS --max-time "$(slow 10)" "${CURL_AUTH[@]}")
for kind in queued running cleanup delete; do
	for i in 1 2; do
		start_crund --store "$storec" || bail "crund did not start (told $kind $i)"
		case $kind in
		queued)
			submit '{"plugin":"demo","job":"noop","delay":600,"on_interrupt":"retry"}'
			cid=$JOB_ID
			b=$("${c[@]}" -X POST "$CRUND_URL/v1/jobs/$cid/cancel" 2>>"$E2E_TMP/curl.err")
			;;
		running)
			submit '{"plugin":"demo","job":"sleep","args":{"seconds":30},"on_interrupt":"retry"}'
			cid=$JOB_ID
			poll_state "$cid" running "$(slow 5)" || diag "told running $i: not running"
			# one curl: the cancel, then at once the long-poll on its end
			b=$("${c[@]}" -o /dev/null -X POST "$CRUND_URL/v1/jobs/$cid/cancel" \
				--next "${c[@]:1}" "$CRUND_URL/v1/jobs/$cid?wait=$(slow 5)" 2>>"$E2E_TMP/curl.err")
			;;
		cleanup)
			submit '{"plugin":"demo","job":"linger","args":{"seconds":30,"cleanup_seconds":30},"on_interrupt":"retry"}'
			cid=$JOB_ID
			poll_state "$cid" running "$(slow 5)" || diag "told cleanup $i: not running"
			b=$("${c[@]}" -X POST "$CRUND_URL/v1/jobs/$cid/cancel" 2>>"$E2E_TMP/curl.err")
			;;
		delete)
			submit '{"plugin":"demo","job":"noop","on_interrupt":"retry"}' "?wait=$(slow 5)"
			cid=$JOB_ID
			b=$("${c[@]}" -o /dev/null -w 'status %{http_code}' -X DELETE "$CRUND_URL/v1/jobs/$cid" \
				2>>"$E2E_TMP/curl.err")
			;;
		esac
		kill -KILL "$CRUND_PID"
		wait "$CRUND_PID" 2>/dev/null
		case $kind:$b in
		cleanup:*'"state":"running"'* | *'"state":"cancelled"'* | *:'status 204')
			echo "$kind $cid" >>"$E2E_TMP/told-cancel"
			;;
		*) diag "told $kind $i: $b" ;;
		esac
	done
done
is "$(wc -l <"$E2E_TMP/told-cancel")" 8 "a told cancel: 4 jobs told cancelled (queued: the 202; running: ?wait), 2 told being cancelled (202 running) and 2 told deleted (204), each followed by kill -9"
start_crund --store "$storec" || bail "crund did not restart (told cancel)"
kept=0
while read -r kind cid; do
	req GET "/v1/jobs/$cid"
	if [ "$kind" = delete ] && [ "$HTTP_STATUS" = 404 ]; then
		kept=$((kept + 1))
	elif [ "$kind" != delete ] && [ "$(j 'd["state"]')" = cancelled ] &&
		[ "$(j 'd["attempt"]')" = "$([ "$kind" = queued ] && echo 0 || echo 1)" ]; then
		kept=$((kept + 1))
	else
		diag "told $kind:" && req_diag
	fi
done <"$E2E_TMP/told-cancel"
is "$kept" 8 "a told cancel: after each kill -9 the cancelled jobs stay (or end) cancelled, not run again, and the deleted ones stay gone"
stop_and_check_crund "crund after told cancels"

# A told cancel, then a graceful stop during the job's cleanup: the stop
# cancels again after --grace (the cleanup is interrupted), but the job
# was cancelled by request: it ends cancelled, it is not queued again for
# the next start as a retry job the stop interrupted would be.
start_crund --store "$storec" --grace 1 || bail "crund did not start (told cancel, graceful stop)"
submit '{"plugin":"demo","job":"linger","args":{"seconds":30,"cleanup_seconds":30},"on_interrupt":"retry"}'
gid=$JOB_ID
poll_state "$gid" running "$(slow 5)" || diag "told cancel, graceful stop: not running"
req POST "/v1/jobs/$gid/cancel"
is "$HTTP_STATUS" 202 "a told cancel, then a graceful stop: the cancel is answered 202"
stop_and_check_crund "crund stopped during a cancelled job's cleanup"
start_crund --store "$storec" || bail "crund did not restart (told cancel, graceful stop)"
req GET "/v1/jobs/$gid"
jt 'd["state"] == "cancelled" and d["error"]["code"] == "cancelled" and d["attempt"] == 1' \
	"a told cancel, then a graceful stop: the job ended cancelled by the request, attempt 1, and does not run again"
stop_and_check_crund "crund after a told cancel and a graceful stop"

# A graceful stop whose cancellation a retry job's cleanup outlasts (12 s,
# over the 10 s crund waits for cleanups): its task is abandoned, yet the
# job waits for the next start like one that stopped in time (it was
# recorded cancelled "shutdown" and never ran again).  Beside it a job
# cancelled by request, in its cleanup at the stop (which the stop's
# cancellation interrupts): cancelled by the request, not queued again.
storea="sqlite:$E2E_TMP/abandon.db"
start_crund --store "$storea" --grace 0.5 || bail "crund did not start (abandoned cleanup)"
submit '{"plugin":"demo","job":"linger","args":{"seconds":60,"cleanup_seconds":12}}'
aid=$JOB_ID
submit '{"plugin":"demo","job":"linger","args":{"seconds":60,"cleanup_seconds":12}}'
cid=$JOB_ID
poll_state "$aid" running "$(slow 5)" || diag "abandoned cleanup: not running"
poll_state "$cid" running "$(slow 5)" || diag "abandoned cleanup: the other not running"
req POST "/v1/jobs/$cid/cancel"
stop_crund
is "$CRUND_STATUS" 0 "crund stopped while cleanups outlast it exits 0"
check "  its log has no sanitizer/valgrind reports" log_is_clean
like "$(cat "$CRUND_LOG")" '1 jobs did not stop within 10 s of cancellation' "the abandoned cleanup is logged"
start_crund --store "$storea" || bail "crund did not restart (abandoned cleanup)"
req GET "/v1/jobs/$aid"
jt 'd["state"] in ("queued", "running") and d["attempt"] <= 1 and d["error"] is None' \
	"a retry job whose cleanup outlasted the stop is queued for the next start, its attempt not counted"
req GET "/v1/jobs/$cid"
jt 'd["state"] == "cancelled" and d["error"]["code"] == "cancelled"' \
	"one cancelled by request, in its cleanup at the stop: cancelled by the request"
kill -KILL "$CRUND_PID"
wait "$CRUND_PID" 2>/dev/null
CRUND_PID=

# ------------------------------------------------------------ a slow commit
# strace holds each of crund's writes to the store 40 ms (fault injection:
# a commit is several), so the commit of a fail-policy job's end is pending
# for a good part of a second: a plain GET, a list (GET /v1/jobs) and the
# same idempotency key submitted again, polled until they name the end,
# and the job's event stream and the /v1/events feed, both opened before
# the end, tell it only after that commit.  crund is killed right after the
# answer and must hold the end it told.  Skipped where strace cannot trace.
if command -v strace >/dev/null 2>&1 && strace -qq -o /dev/null true >/dev/null 2>&1; then
	stores="sqlite:$E2E_TMP/slow.db"
	for way in get list idem events feed; do
		start_crund --store "$stores" || bail "crund did not start (slow commit, $way)"
		slow_body='{"plugin":"demo","job":"sleep","args":{"seconds":0.6},"on_interrupt":"fail","idempotency_key":"slow-'$way'"}'
		submit "$slow_body"
		sid=$JOB_ID
		# the streams are opened while the job runs
		if [ "$way" = events ]; then
			curl -sS -N --max-time "$(slow 10)" "${CURL_AUTH[@]}" "$CRUND_URL/v1/jobs/$sid/events" \
				>"$E2E_TMP/slow.events" 7>&- 8<&- &
			ev_pid=$!
		elif [ "$way" = feed ]; then
			curl -sS -N --max-time "$(slow 10)" "${CURL_AUTH[@]}" \
				"$CRUND_URL/v1/events?state=succeeded" >"$E2E_TMP/slow.feed" 7>&- 8<&- &
			ev_pid=$!
		fi
		bg strace -qq -f -o /dev/null -e trace=pwrite64 -e inject=pwrite64:delay_enter=40000 \
			-p "$CRUND_PID"
		st_pid=$BG_PID
		sleep 0.2 # attached
		if [ "$way" = get ]; then
			for ((i = 0; i < 1000; i++)); do
				b=$(curl -sS --max-time "$(slow 10)" "${CURL_AUTH[@]}" "$CRUND_URL/v1/jobs/$sid")
				case $b in *'"state":"running"'* | *'"state":"queued"'*) ;; *) break ;; esac
			done
		elif [ "$way" = list ]; then # newest first: the job is the page's one
			for ((i = 0; i < 1000; i++)); do
				b=$(curl -sS --max-time "$(slow 10)" "${CURL_AUTH[@]}" "$CRUND_URL/v1/jobs?limit=1")
				case $b in *"\"$sid\""*'"state":"running"'* | *"\"$sid\""*'"state":"queued"'*) ;; *) break ;; esac
			done
			like "$b" "\"$sid\"" "a slow commit: the list's page is the job"
		elif [ "$way" = idem ]; then # the same key again: 200 and that job
			for ((i = 0; i < 1000; i++)); do
				b=$(curl -sS --max-time "$(slow 10)" "${CURL_AUTH[@]}" -H 'Content-Type: application/json' \
					--data-binary "$slow_body" "$CRUND_URL/v1/jobs")
				case $b in *'"state":"running"'* | *'"state":"queued"'*) ;; *) break ;; esac
			done
			like "$b" "\"$sid\"" "a slow commit: the same idempotency key answers with the job"
		elif [ "$way" = events ]; then
			wait "$ev_pid"
			b=$(sed -n 's/^data: //p' "$E2E_TMP/slow.events" | tail -n 1)
		else # the feed's first entry for the job (it names only ends)
			b=
			for ((i = 0; i < $(slow 10) * 200; i++)); do
				b=$(grep -F "\"$sid\"" "$E2E_TMP/slow.feed" | sed -n 's/^data: //p' | head -n 1)
				[ -n "$b" ] && break
				sleep 0.005
			done
		fi
		kill -KILL "$CRUND_PID"
		wait "$CRUND_PID" 2>/dev/null
		wait "$st_pid" 2>/dev/null
		[ "$way" = feed ] && wait "$ev_pid"
		like "$b" '"state":"succeeded"' "a slow commit: the $way answer names the end"
		start_crund --store "$stores" || bail "crund did not restart (slow commit, $way)"
		is "$(job_state "$sid")" succeeded "a slow commit: after kill -9 the store holds the end the $way answer named"
		stop_and_check_crund "crund after a slow commit ($way)"
	done
	# A DELETE still held for its commit when the stop begins is answered,
	# not dropped (204 once the stop's drain has written it; 503 draining
	# were the store unable to write it within the drain's bound), and the
	# deletion is written before crund exits.
	start_crund --store "$stores" || bail "crund did not start (held DELETE at the stop)"
	submit '{"plugin":"demo","job":"noop"}' "?wait=$(slow 5)"
	did=$JOB_ID
	# a running job keeps the stop going for a second: strace is gone
	# before crund exits (LeakSanitizer cannot run traced)
	submit '{"plugin":"demo","job":"sleep","args":{"seconds":1}}'
	bg strace -qq -f -o /dev/null -e trace=pwrite64 -e inject=pwrite64:delay_enter=40000 \
		-p "$CRUND_PID"
	st_pid=$BG_PID
	sleep 0.2 # attached
	curl -sS --max-time "$(slow 20)" "${CURL_AUTH[@]}" -o "$E2E_TMP/held-del.out" -w '%{http_code}' \
		-X DELETE "$CRUND_URL/v1/jobs/$did" >"$E2E_TMP/held-del.code" 2>>"$E2E_TMP/curl.err" 7>&- 8<&- &
	del_pid=$!
	sleep 0.03 # the DELETE waits for its commit, each write held 40 ms
	kill -TERM "$CRUND_PID"
	sleep 0.3
	kill "$st_pid" 2>/dev/null # detached while the sleep job still runs
	wait "$st_pid" 2>/dev/null
	wait "$del_pid"
	stop_and_check_crund "crund stopped while a DELETE waits for its commit"
	held=$(cat "$E2E_TMP/held-del.code")
	case $held in
	503) held="$held $(grep -o '"code":"[a-z_]*"' "$E2E_TMP/held-del.out")" ;;
	esac
	case $held in
	'503 "code":"draining"' | 204) ok 0 "a DELETE held at the stop is answered ($held)" ;;
	*) ok 1 "a DELETE held at the stop is answered (503 draining or 204; got '$held')" ;;
	esac
	start_crund --store "$stores" || bail "crund did not restart (held DELETE at the stop)"
	req GET "/v1/jobs/$did"
	is "$HTTP_STATUS" 404 "a DELETE held at the stop: its deletion was written before crund exited"
	stop_crund
else
	for _ in $(seq 32); do ok 0 "# SKIP strace cannot trace here"; done
fi

# ------------------------------------------------------------ retention
# Retention's deletions reach the file in groups (and at a clean stop); one
# lost in a kill -9 brings a forgotten job back, and the next start's
# retention forgets it again: after the restart the store still holds only
# the newest --retain-jobs ended jobs, and a key of a forgotten job is free.
storer="sqlite:$E2E_TMP/retain.db"
start_crund --store "$storer" --retain-jobs 3 || bail "crund did not start with --retain-jobs 3"
rids=()
for i in $(seq 10); do
	submit "{\"plugin\":\"demo\",\"job\":\"noop\",\"idempotency_key\":\"r-$i\"}" "?wait=$(slow 5)"
	[ "$HTTP_STATUS" = 201 ] && [ "$(j 'd["state"]')" = succeeded ] && rids+=("$JOB_ID")
done
is "${#rids[@]}" 10 "retention: 10 keyed jobs ran to the end"
sleep 0.2 # their ends reach the store (a lazy commit, 5 ms)
kill -KILL "$CRUND_PID"
wait "$CRUND_PID" 2>/dev/null
start_crund --store "$storer" --retain-jobs 3 || bail "crund did not restart with --retain-jobs 3"
req GET "/v1/jobs?limit=100"
jt "len(jobs(d)) == 3" "retention after kill -9: the list holds the 3 newest ended jobs"
kept=0
for id in "${rids[@]:7}"; do
	[ "$(job_state "$id")" = succeeded ] && kept=$((kept + 1))
done
is "$kept" 3 "retention after kill -9: the 3 newest are there"
req GET "/v1/jobs/${rids[0]}"
is "$HTTP_STATUS" 404 "retention after kill -9: the oldest is forgotten"
submit '{"plugin":"demo","job":"noop","idempotency_key":"r-1"}'
is "$HTTP_STATUS" 201 "retention after kill -9: the key of a forgotten job makes a new job"
stop_and_check_crund "crund --retain-jobs 3"
start_crund --store "$storer" --retain-jobs 3 || bail "crund did not restart after a clean stop"
req GET "/v1/jobs?limit=100"
jt "len(jobs(d)) == 3" "retention after a clean stop: still the 3 newest"
stop_and_check_crund "crund --retain-jobs 3, restarted"
# --retain-seconds: jobs forgotten before a kill -9 whose deletions had not
# reached the store are forgotten again at the start, before any answer
sleep 1.1 # the 3 jobs kept ended more than a second ago
start_crund --store "$storer" --retain-seconds 1 || bail "crund did not start with --retain-seconds 1"
req GET "/v1/jobs?limit=100"
jt "len(jobs(d)) == 0" "--retain-seconds 1: the old jobs are forgotten at the start"
submit '{"plugin":"demo","job":"noop"}' "?wait=$(slow 5)"
aged_id=$JOB_ID
for ((i = 0; i < $(slow 5) * 10; i++)); do
	[ "$(job_state "$aged_id")" = "" ] && break
	sleep 0.1
done
is "$(job_state "$aged_id")" "" "--retain-seconds 1: an ended job is forgotten after a second or two"
kill -KILL "$CRUND_PID"
wait "$CRUND_PID" 2>/dev/null
start_crund --store "$storer" --retain-seconds 1 || bail "crund did not restart with --retain-seconds 1"
req GET "/v1/jobs/$aged_id"
is "$HTTP_STATUS" 404 "--retain-seconds 1 after kill -9: the forgotten job does not come back"
stop_and_check_crund "crund --retain-seconds 1"

# ------------------------------------------------------------ retries
# --retry-max-delay 0: no backoff, a retry is due at once (a cap of 0,
# not the default hour; the first backoff would be 0.9-1.1 s)
start_crund --store memory: --retry-max-delay 0 || bail "crund did not start (--retry-max-delay 0)"
submit '{"plugin":"demo","job":"fail","args":{"message":"nope"},"max_attempts":3}' '?wait=10'
jt 'd["state"] == "failed" and d["attempt"] == 3' "--retry-max-delay 0: the attempts ran, then the job failed"
jt 'len(d["attempts"]) == 3 and all(secs(b["started_at"]) - secs(a["finished_at"]) < 0.8 for a, b in zip(d["attempts"], d["attempts"][1:]))' \
	"--retry-max-delay 0: each retry was due at once (no backoff)"
stop_and_check_crund "crund --retry-max-delay 0"
# A retry frees its running slot at once: a job queued behind it starts
# then, not when the retry's backoff ends (0.9-1.1 s for the first one).
start_crund --store memory: --max-running 1 || bail "crund did not start (--max-running 1)"
submit '{"plugin":"demo","job":"sleep","args":{"seconds":0.3}}'
submit '{"plugin":"demo","job":"fail","args":{"message":"nope"},"max_attempts":3}'
rfail_id=$JOB_ID
submit '{"plugin":"demo","job":"noop"}' '?wait=10'
jt 'd["state"] == "succeeded"' "a retry's slot: the job queued behind it ran"
noop_started=$(j 'd["started_at"]')
req GET "/v1/jobs/$rfail_id"
jt "len(d['attempts']) >= 1 and secs('$noop_started') - secs(d['attempts'][0]['finished_at']) < 0.8" \
	"a retry's slot: the queued job started when the failed attempt ended, not after its backoff"
# cancelled while it waits for its next attempt (1 s, then 16 s away)
req POST "/v1/jobs/$rfail_id/cancel"
req GET "/v1/jobs/$rfail_id"
jt 'd["state"] == "cancelled" and "waited for another attempt" in d["error"]["message"]' \
	"a job cancelled while it waits for a retry says so"
jt 'd["attempt"] >= 1 and [a["attempt"] for a in d["attempts"]] == list(range(1, d["attempt"] + 1))' \
	"... and lists each attempt once"
stop_and_check_crund "crund --max-running 1 (retries)"

store2="sqlite:$E2E_TMP/retry.db"
start_crund --store "$store2" --retry-max-delay 0.2 || bail "crund did not start"
submit '{"plugin":"demo","job":"fail","args":{"message":"nope"},"max_attempts":3}'
fail_id=$JOB_ID
job_wait "$fail_id"
jt 'd["state"] == "failed" and d["attempt"] == 3 and d["max_attempts"] == 3' \
	"retries: a failing job is tried max_attempts times, then fails"
jt '[a["attempt"] for a in d["attempts"]] == [1, 2, 3] and all(a["error"]["code"] == "plugin_error" for a in d["attempts"])' \
	"retries: every attempt's error and times are kept, the last one's too"
jt 'secs(d["finished_at"]) > secs(d["created_at"])' "retries: the attempts took time (backoff)"
submit '{"plugin":"demo","job":"linger","args":{"seconds":60},"max_attempts":5}'
linger_id=$JOB_ID
poll_state "$linger_id" running 5
req POST "/v1/jobs/$linger_id/cancel"
job_wait "$linger_id"
jt 'd["state"] == "cancelled" and d["attempt"] == 1' "retries: a job cancelled by request is never retried"
# a burst of 32 submissions at once: group commit puts several in one
# transaction (crund_store_commit_jobs)
burst=()
for _ in $(seq 32); do
	curl -sS -o /dev/null --max-time "$(slow 20)" "${CURL_AUTH[@]}" -H 'Content-Type: application/json' \
		--data-binary '{"plugin":"demo","job":"noop"}' "$CRUND_URL/v1/jobs" 7>&- 8<&- &
	burst+=($!)
done
wait "${burst[@]}"
req GET /metrics
metric() { grep -E "^$1 " "$HTTP_BODY_FILE" | awk '{print $2}'; }
check "metrics: retries counted (crund_job_retries_total >= 2)" test "$(metric crund_job_retries_total)" -ge 2
is "$(metric crund_store_up)" 1 "metrics: the store is up"
is "$(metric crund_store_durable)" 1 "metrics: the store is durable"
check "metrics: commits and rows counted" test "$(metric crund_store_rows_committed_total)" -ge "$(metric crund_store_commits_total)" -a "$(metric crund_store_commits_total)" -gt 0
is "$(metric crund_store_commit_jobs_count)" "$(metric crund_store_commits_total)" \
	"metrics: the jobs-per-commit histogram counts every commit"
is "$(metric 'crund_store_commit_jobs_bucket\{le="\+Inf"\}')" "$(metric crund_store_commits_total)" \
	"metrics: ... its +Inf bucket too"
is "$(metric crund_store_commit_jobs_sum | cut -d. -f1)" "$(metric crund_store_rows_committed_total)" \
	"metrics: ... and its sum is the rows committed"
check "metrics: after a burst of 32 submissions some commit carried several jobs" \
	test "$(metric 'crund_store_commit_jobs_bucket\{le="1"\}')" -lt "$(metric crund_store_commits_total)"
check "metrics: run time of the failed job by plugin, job and outcome" \
	grep -q '^crund_job_run_seconds_count{plugin="demo",job="fail",outcome="failed"} 1$' "$HTTP_BODY_FILE"
check "metrics: queue wait histogram" grep -q '^crund_job_queue_wait_seconds_bucket{le="+Inf"} [1-9]' "$HTTP_BODY_FILE"

# ------------------------------------------------------------ delayed jobs
submit '{"plugin":"demo","job":"noop","delay":1.5}'
delayed_id=$JOB_ID
is "$HTTP_STATUS" 201 "delay: accepted"
jt 'd["state"] == "queued" and d["run_at"] is not None' "delay: queued with a run_at"
at=$("$PY" -c 'import datetime; print((datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1.5)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:23] + "Z")')
submit "{\"plugin\":\"demo\",\"job\":\"noop\",\"run_at\":\"$at\",\"idempotency_key\":\"durable-k\"}"
at_id=$JOB_ID
jt 'd["state"] == "queued" and d["run_at"] is not None' "run_at: queued with a run_at"
submit '{"plugin":"demo","job":"progress","args":{"steps":2,"interval":0.05}}' '?wait=10'
prog_id=$JOB_ID
jt 'd["state"] == "succeeded"' "a progress job with log lines ended before the restart"
# restart before they are due: they keep their run_at
stop_crund
start_crund --store "$store2" --retry-max-delay 0.2 || bail "crund did not restart"
req GET "/v1/jobs/$delayed_id"
jt 'd["state"] in ("queued", "succeeded")' "delay: still there after a restart"
job_wait "$delayed_id"
jt 'd["state"] == "succeeded" and secs(d["started_at"]) >= secs(d["created_at"]) + 1.4' \
	"delay: ran once its time had come, not before"
job_wait "$at_id"
jt 'd["state"] == "succeeded"' "run_at: ran after the restart"
req GET "/v1/jobs/$prog_id/log"
check "after a restart: /log of a job from before has its lines" grep -q 'step 2/2' "$HTTP_BODY_FILE"
job_wait "$prog_id" 2
jt 'd["state"] == "succeeded" and d["progress"]["fraction"] == 1' "after a restart: ?wait on a job from before answers its end and last progress"
curl -sN --max-time "$(slow 5)" "$CRUND_URL/v1/jobs/$prog_id/events" >"$E2E_TMP/ev-old.txt"
check "after a restart: /events of a job from before ends with its end event" grep -q '^event: end' "$E2E_TMP/ev-old.txt"
submit "{\"plugin\":\"demo\",\"job\":\"noop\",\"run_at\":\"$at\",\"idempotency_key\":\"durable-k\"}"
is "$HTTP_STATUS" 200 "idempotency across a restart: the same key answers 200"
jt "d['id'] == '$at_id'" "idempotency across a restart: the existing job"
post_json /v1/jobs '{"plugin":"demo","job":"noop","delay":1,"run_at":"2030-01-01T00:00:00Z"}'
is "$HTTP_STATUS" 400 "delay and run_at together: 400"
post_json /v1/jobs '{"plugin":"demo","job":"noop","run_at":"tomorrow"}'
is "$HTTP_STATUS" 400 "run_at that is not RFC 3339: 400"
is_error invalid_request "run_at that is not RFC 3339: invalid_request"
post_json '/v1/jobs?wait=10' '{"plugin":"demo","job":"noop","run_at":"1969-07-20T20:17:00Z"}'
jt 'd["state"] == "succeeded" and d["run_at"] is None' "run_at before 1970: a time past, due at once"
post_json /v1/jobs '{"plugin":"demo","job":"noop","max_attempts":0}'
is "$HTTP_STATUS" 400 "max_attempts 0: 400"
post_json /v1/jobs '{"plugin":"demo","job":"noop","on_interrupt":"maybe"}'
is "$HTTP_STATUS" 400 "on_interrupt other than retry or fail: 400"

# The same key twice at once: the second often arrives while the first
# waits for its commit; both answer with one job (201 for one, 200 for the
# other), never 429 nor a second job.
pairs="$E2E_TMP/idem-pairs"
mkdir -p "$pairs"
pids=()
for i in $(seq 20); do
	for k in 1 2; do
		curl -s -o "$pairs/$i-$k.json" -w '%{http_code}' --max-time "$(slow 10)" \
			-H 'Content-Type: application/json' \
			--data-binary "{\"plugin\":\"demo\",\"job\":\"noop\",\"idempotency_key\":\"twice-$i\"}" \
			"$CRUND_URL/v1/jobs" >"$pairs/$i-$k.status" &
		pids+=($!)
	done
done
wait "${pids[@]}"
"$PY" - "$pairs" >"$E2E_TMP/idem-verdict" <<'PYEOF'
import json, os, sys
d = sys.argv[1]
bad = []
for i in range(1, 21):
    got = []
    for k in (1, 2):
        try:
            status = int(open(os.path.join(d, "%d-%d.status" % (i, k))).read() or 0)
            body = json.load(open(os.path.join(d, "%d-%d.json" % (i, k))))
        except Exception as e:
            bad.append((i, repr(e))); continue
        got.append((status, body.get("id")))
    if sorted(s for s, _ in got) != [200, 201] or len({j for _, j in got}) != 1:
        bad.append((i, got))
print("ok" if not bad else "bad: %r" % bad[:3])
PYEOF
is "$(cat "$E2E_TMP/idem-verdict")" ok "the same idempotency key twice at once: one job, 201 and 200 (20 pairs)"

# ------------------------------------------------------------ defaults from the job spec
req GET /v1/plugins/demo
jt '[(j["name"], j["on_interrupt"]) for j in d["jobs"] if j["name"] in ("sleep", "counter")] == [("sleep", "retry"), ("counter", "fail")]' \
	"the plugin view shows each job's on_interrupt default (demo: sleep is rerun-safe, counter is not)"
jt 'all(j["max_attempts"] == 1 for j in d["jobs"])' "the plugin view shows each job's max_attempts default"
submit '{"plugin":"demo","job":"counter"}'
jt 'd["on_interrupt"] == "fail"' "a job that is not rerun-safe defaults to on_interrupt fail"
submit '{"plugin":"demo","job":"counter","on_interrupt":"retry"}'
jt 'd["on_interrupt"] == "retry"' "a submission overrides the job's on_interrupt"

# ------------------------------------------------------------ one crund per store
keep_pid=$CRUND_PID
start_fail second --listen 127.0.0.1:0 --plugin-dir "$CRUND_PLUGIN_DIR" --store "$store2"
is "$START_STATUS" 1 "a second crund on the same store exits 1"
check "it names the pid that holds the store" grep -q "in use by another crund (pid $keep_pid)" "$START_LOG"
stop_and_check_crund "the store's first crund"

# ------------------------------------------------------------ a failing disk
# A file-size limit (prlimit on the running daemon) stands in for a full
# disk: writes past it fail.  Submissions answer 503 store_unavailable,
# health says so, reads keep working, nothing acknowledged is lost, and the
# daemon recovers by itself once writes work again.
if command -v prlimit >/dev/null 2>&1; then
	store3="sqlite:$E2E_TMP/full.db"
	start_crund --store "$store3" --max-running 1 || bail "crund did not start"
	submit '{"plugin":"demo","job":"noop"}' '?wait=5'
	before_id=$JOB_ID
	submit '{"plugin":"demo","job":"noop"}' '?wait=5'
	del_id=$JOB_ID
	# one job runs, two wait behind it while the disk fills: a refused
	# submission must not take the queue with it (the running one is
	# cancelled on the full disk)
	submit '{"plugin":"demo","job":"sleep","args":{"seconds":60}}'
	sleep_id=$JOB_ID
	submit '{"plugin":"demo","job":"noop"}'
	queued1=$JOB_ID
	submit '{"plugin":"demo","job":"noop"}'
	queued2=$JOB_ID
	# counter is not rerun-safe (on_interrupt fail): it may only run once
	# its start is recorded
	submit '{"plugin":"demo","job":"counter"}'
	counter_id=$JOB_ID
	prlimit --pid "$CRUND_PID" --fsize=4096:  # the soft limit only: it can be raised again
	post_json /v1/jobs '{"plugin":"demo","job":"noop"}'
	is "$HTTP_STATUS" 503 "disk full: a submission answers 503"
	is_error store_unavailable "disk full: error.code store_unavailable"
	jt '"full.db" in d["error"]["message"]' "disk full: the message names the store"
	req GET /v1/health
	is "$HTTP_STATUS" 503 "disk full: /v1/health answers 503"
	jt 'd["status"] == "store_unavailable"' "disk full: health says store_unavailable"
	req GET "/v1/jobs/$before_id"
	jt 'd["state"] == "succeeded"' "disk full: reads keep working"
	req DELETE "/v1/jobs/$del_id"
	is "$HTTP_STATUS" 503 "disk full: a DELETE is not answered 204 before its deletion is written"
	is_error store_unavailable "disk full: the DELETE's error.code is store_unavailable"
	req POST "/v1/jobs/$sleep_id/cancel"
	is "$HTTP_STATUS" 503 "disk full: the cancel of a running job is not answered 202 before it is written"
	is_error store_unavailable "disk full: the cancel's error.code is store_unavailable"
	jt '"being cancelled" in d["error"]["message"]' "disk full: the cancel's message says the job is still being cancelled"
	req GET /metrics
	check "disk full: /metrics says crund_store_up 0" grep -q '^crund_store_up 0$' "$HTTP_BODY_FILE"
	job_wait "$queued2" # the jobs ahead of counter end (in memory)
	req GET "/v1/jobs/$counter_id"
	jt 'd["state"] == "running" and d["result"] is None' \
		"disk full: a job whose policy is fail does not run before its start is recorded"
	prlimit --pid "$CRUND_PID" --fsize=unlimited:
	poll_health "$(slow 10)"
	is "$HTTP_STATUS" 200 "disk free again: health recovers by itself"
	job_wait "$queued1"
	jt 'd["state"] == "succeeded"' "disk free again: a job queued before the refusal runs"
	job_wait "$queued2"
	jt 'd["state"] == "succeeded"' "disk free again: ... and the one queued after it"
	job_wait "$counter_id"
	jt 'd["state"] == "succeeded" and d["attempt"] == 1' \
		"disk free again: the job whose start waited runs, once"
	submit '{"plugin":"demo","job":"noop"}' '?wait=5'
	is "$HTTP_STATUS" 201 "disk free again: submissions are accepted"
	# the journal tells when and why the store failed, and when it
	# recovered (logged at the next second's tick)
	for ((i = 0; i < $(slow 5) * 10; i++)); do
		grep -q 'writes again' "$CRUND_LOG" && break
		sleep 0.1
	done
	check "disk full: the log says the store cannot write, and why" \
		grep -q 'warning: store .*full.db: cannot write: a file reached crund.s file-size limit.*503 store_unavailable' "$CRUND_LOG"
	check "disk free again: the log says the store writes again" \
		grep -q 'info: store sqlite:.*full.db.* writes again' "$CRUND_LOG"
	stop_and_check_crund "after a failing disk, crund"
	start_crund --store "$store3" || bail "crund did not restart"
	req GET "/v1/jobs/$before_id"
	is "$HTTP_STATUS" 200 "disk full: the job acknowledged before is still there after a restart"
	req GET "/v1/jobs/$del_id"
	is "$HTTP_STATUS" 404 "disk free again: the deletion refused with 503 was written once it could be"
	req GET "/v1/jobs/$sleep_id"
	jt 'd["state"] == "cancelled" and d["error"]["code"] == "cancelled" and d["attempt"] == 1' \
		"disk free again: the job whose cancel was refused with 503 ended cancelled, once"
	# SIGTERM while the disk is full: the close waits for the store a
	# bounded time (10 s), says what it could not write, and exits; a
	# waiter on a running job gets its state; the next start has every
	# acknowledged job.
	stop_crund
	start_crund --store "$store3" --grace 1 || bail "crund did not restart"
	submit '{"plugin":"demo","job":"noop"}' '?wait=5'
	acked_id=$JOB_ID
	submit '{"plugin":"demo","job":"sleep","args":{"seconds":60}}'
	held_id=$JOB_ID
	poll_state "$held_id" running "$(slow 5)"
	prlimit --pid "$CRUND_PID" --fsize=4096:
	bg curl -s -o "$E2E_TMP/lp_full.json" "$CRUND_URL/v1/jobs/$held_id?wait=60"
	lp_full=$BG_PID
	wait_held 1
	post_json /v1/jobs '{"plugin":"demo","job":"noop"}'
	is "$HTTP_STATUS" 503 "full disk at the stop: submissions answer 503"
	t0=$(now_ms)
	kill -TERM "$CRUND_PID"
	wait_crund_exit "$(slow 30)"
	took=$(($(now_ms) - t0))
	is "$CRUND_STATUS" 0 "full disk at the stop: crund exits 0"
	check "full disk at the stop: it exits within --grace and the store's 10 s bound (${took} ms)" \
		test "$took" -lt "$(slow 20)000"
	check "full disk at the stop: the log says what could not be written" \
		grep -q 'warning: store sqlite:.*full.db.*could not write everything within 10 s: .*file-size limit' "$CRUND_LOG"
	wait "$lp_full" 2>/dev/null
	check "full disk at the stop: a long-poll on the running job is answered" \
		python3 -c 'import json,sys; d = json.load(open(sys.argv[1])); assert d["id"] == sys.argv[2] and d["state"] in ("queued", "cancelled"), d' \
		"$E2E_TMP/lp_full.json" "$held_id"
	start_crund --store "$store3" || bail "crund did not restart"
	req GET "/v1/jobs/$acked_id"
	jt 'd["state"] == "succeeded"' "full disk at the stop: the job acknowledged before is there after the restart"
	req GET "/v1/jobs/$held_id"
	is "$HTTP_STATUS" 200 "full disk at the stop: the job running at the stop is there after the restart"
	stop_crund
	# Ends and cancels the disk does not take are not told: a fail-policy
	# job that ends while the disk is full, and the cancel of a delayed
	# job, were answered (succeeded; 202 cancelled) although nothing was
	# written, and a kill -9 then undid them (failed interrupted; the job
	# ran).  They are 503 until the store writes again, then told.
	start_crund --store "sqlite:$E2E_TMP/full2.db" || bail "crund did not start"
	submit '{"plugin":"demo","job":"sleep","args":{"seconds":1},"on_interrupt":"fail"}'
	end_id=$JOB_ID
	poll_state "$end_id" running 5
	submit '{"plugin":"demo","job":"noop","delay":600}'
	delayed_id=$JOB_ID
	prlimit --pid "$CRUND_PID" --fsize=4096:
	post_json /v1/jobs '{"plugin":"demo","job":"noop"}'
	is "$HTTP_STATUS" 503 "full disk (2): submissions answer 503"
	req GET "/v1/jobs/$end_id?wait=8"
	is "$HTTP_STATUS:$(j 'd["error"]["code"]')" 503:store_unavailable \
		"full disk: a fail-policy job's end that is not written is not told (a ?wait answers 503)"
	like "$(j 'd["error"]["message"]')" "has ended, but its end is not in the store yet" "... saying why"
	req POST "/v1/jobs/$delayed_id/cancel"
	is "$HTTP_STATUS:$(j 'd["error"]["code"]')" 503:store_unavailable \
		"full disk: the cancel of a delayed job is not answered 202 before it is written"
	# its DELETE would forget it and so tell its end: refused too
	req DELETE "/v1/jobs/$delayed_id"
	is "$HTTP_STATUS:$(j 'd["error"]["code"]')" 503:store_unavailable \
		"full disk: a DELETE of a job whose end is not written is refused (503), not a way to tell that end"
	prlimit --pid "$CRUND_PID" --fsize=unlimited:
	poll_health "$(slow 10)"
	job_wait "$end_id"
	jt 'd["state"] == "succeeded"' "disk free again: the job's end is written, then told: succeeded"
	req GET "/v1/jobs/$delayed_id"
	jt 'd["state"] == "cancelled"' "disk free again: the refused cancel was written once it could be"
	kill -KILL "$CRUND_PID"
	wait "$CRUND_PID" 2>/dev/null
	CRUND_PID=
	start_crund --store "sqlite:$E2E_TMP/full2.db" || bail "crund did not restart"
	req GET "/v1/jobs/$end_id"
	jt 'd["state"] == "succeeded"' "after kill -9: the end told is the end kept"
	req GET "/v1/jobs/$delayed_id"
	jt 'd["state"] == "cancelled"' "after kill -9: the cancel told is the cancel kept"
	stop_crund
else
	for _ in $(seq 39); do ok 0 "# SKIP prlimit is not installed"; done
fi

# The store's files removed (or replaced) under a running crund: what it
# commits then goes to files no start opens again.  It went on answering
# 201 with health ok, and those jobs were gone after the restart.  Now the
# next write fails: 503 store_unavailable saying what happened, health 503.
for victim in db wal; do
	rm_db="$E2E_TMP/removed-$victim.db"
	start_crund --store "sqlite:$rm_db" || bail "crund did not start"
	submit '{"plugin":"demo","job":"noop"}' '?wait=5'
	is "$HTTP_STATUS" 201 "store file removed ($victim): a job before"
	if [ "$victim" = db ]; then rm -f "$rm_db" "$rm_db-wal"; else rm -f "$rm_db-wal"; fi
	post_json /v1/jobs '{"plugin":"demo","job":"noop","delay":600}'
	is "$HTTP_STATUS:$(j 'd["error"]["code"]')" 503:store_unavailable \
		"store file removed ($victim): a submission is refused, 503 store_unavailable"
	like "$(j 'd["error"]["message"]')" "was removed or replaced while crund runs.*restart crund" \
		"... saying what happened and what to do"
	req GET /v1/health
	is "$HTTP_STATUS" 503 "... and /v1/health answers 503"
	kill -KILL "$CRUND_PID"
	wait "$CRUND_PID" 2>/dev/null
	CRUND_PID=
done

# a read-only store (an immutable file) is refused at start
ro_db="$E2E_TMP/ro.db"
start_crund --store "sqlite:$ro_db" || bail "crund did not start"
stop_crund
if chattr +i "$ro_db" 2>/dev/null; then
	start_fail readonly --listen 127.0.0.1:0 --plugin-dir "$CRUND_PLUGIN_DIR" --store "sqlite:$ro_db"
	chattr -i "$ro_db"
	is "$START_STATUS" 1 "a read-only store: exit 1"
	check "the message says read-only and names the file" grep -q "ro.db is read-only" "$START_LOG"
else
	ok 0 "# SKIP chattr +i is not possible here (not root, or the file system has no immutable flag)"
	ok 0 "# SKIP chattr +i is not possible here"
fi

# ------------------------------------------------------------ bad stores
printf 'not a database, just text\n%.0s' $(seq 1 200) >"$E2E_TMP/garbage.db"
start_fail garbage --listen 127.0.0.1:0 --plugin-dir "$CRUND_PLUGIN_DIR" --store "sqlite:$E2E_TMP/garbage.db"
is "$START_STATUS" 1 "a file that is not a store: exit 1"
check "the message names the file" grep -q "garbage.db" "$START_LOG"
check "... and what to do" grep -q "garbage.db: cannot open it: not a crund store, or damaged (.*); if it is crund's, restore it from a backup, else move it away, or give another --store" "$START_LOG"
# a new store file is crund's user's alone (it holds every job's
# arguments and results), whatever the umask
saved_umask=$(umask)
umask 022
start_crund --store "sqlite:$E2E_TMP/modes/c.db" || bail "crund did not start (modes)"
umask "$saved_umask"
submit '{"plugin":"demo","job":"noop"}' '?wait=5'
is "$(stat -c %a "$E2E_TMP/modes/c.db") $(stat -c %a "$E2E_TMP/modes/c.db-wal") $(stat -c %a "$E2E_TMP/modes")" \
	"600 600 700" "with umask 022 a new store file and its WAL are 0600, its new directory 0700"
stop_crund
: >"$E2E_TMP/afile"
start_fail nodir --listen 127.0.0.1:0 --plugin-dir "$CRUND_PLUGIN_DIR" --store "sqlite:$E2E_TMP/afile/sub/crund.db"
is "$START_STATUS" 1 "a store whose directory cannot be made: exit 1"
check "the message names the path" grep -q "afile" "$START_LOG"
start_fail unknown --listen 127.0.0.1:0 --plugin-dir "$CRUND_PLUGIN_DIR" --store "redis://x"
is "$START_STATUS" 2 "an unknown store URL: exit 2 (a configuration error)"
check "the message says which URLs work" grep -q "sqlite:PATH" "$START_LOG"
mkdir "$E2E_TMP/adir"
start_fail adir --listen 127.0.0.1:0 --plugin-dir "$CRUND_PLUGIN_DIR" --store "sqlite:$E2E_TMP/adir"
is "$START_STATUS" 1 "a directory as the store: exit 1"
check "the message says it is a directory and what to give" grep -q "adir is a directory: give the path of a file in it" "$START_LOG"
mkfifo "$E2E_TMP/afifo"
start_fail afifo --listen 127.0.0.1:0 --plugin-dir "$CRUND_PLUGIN_DIR" --store "sqlite:$E2E_TMP/afifo"
is "$START_STATUS" 1 "a FIFO (not a regular file) as the store: exit 1"
check "... saying so" grep -q "afifo is not a regular file" "$START_LOG"
check "... and leaving nothing beside it (no .lock, no -journal)" test ! -e "$E2E_TMP/afifo.lock" -a ! -e "$E2E_TMP/afifo-journal"
start_fail memfoo --listen 127.0.0.1:0 --plugin-dir "$CRUND_PLUGIN_DIR" --store "memory:foo"
is "$START_STATUS" 2 "memory: with a path: exit 2 (a configuration error)"
check "the message says memory: takes no path" grep -q "memory: takes nothing after the colon" "$START_LOG"
# not root, no STATE_DIRECTORY, HOME nor XDG_STATE_HOME: no default store
# (it was a crund.db in whatever the working directory was)
nobody=(setpriv --reuid 65534 --regid 65534 --clear-groups)
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1 &&
	"${nobody[@]}" test -x "$CRUND_REAL" 2>/dev/null; then
	crund_cmd --listen 127.0.0.1:0 --plugin-dir "$CRUND_PLUGIN_DIR"
	(cd / && env -u HOME -u XDG_STATE_HOME -u STATE_DIRECTORY "${nobody[@]}" "${CRUND_CMD[@]}") \
		>"$E2E_TMP/nohome.log" 2>&1 </dev/null 7>&- 8<&-
	is "$?" 2 "no HOME nor XDG_STATE_HOME (not root): exit 2"
	check "... the message says why and what to give" grep -q "no place for the job store: HOME and XDG_STATE_HOME are unset" "$E2E_TMP/nohome.log"
else
	for _ in 1 2; do ok 0 "# SKIP needs root, setpriv and a build the nobody user can run"; done
fi

# damaged files: an empty schema version, rows crund cannot read back
# (edited with Python's sqlite3, as a disk fault or a hand would)
stored="$E2E_TMP/damaged.db"
start_crund --store "sqlite:$stored" || bail "crund did not start (damaged rows)"
submit '{"plugin":"demo","job":"noop"}' "?wait=$(slow 5)"
good_id=$JOB_ID
submit '{"plugin":"demo","job":"noop"}' "?wait=$(slow 5)"
state_id=$JOB_ID
submit '{"plugin":"demo","job":"noop"}' "?wait=$(slow 5)"
args_id=$JOB_ID
stop_and_check_crund "crund before its rows are damaged"
"$PY" - "$stored" "$state_id" "$args_id" <<'PYEOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE jobs SET state = 77 WHERE id = ?", (sys.argv[2],))
db.execute("UPDATE jobs SET args = 'not json' WHERE id = ?", (sys.argv[3],))
db.commit()
PYEOF
start_crund --store "sqlite:$stored" || bail "crund did not start on damaged rows"
req GET "/v1/jobs/$good_id"
is "$HTTP_STATUS" 200 "damaged rows: the sound job is read back"
req GET "/v1/jobs/$state_id"
is "$HTTP_STATUS" 404 "damaged rows: a row with an unknown state is skipped"
req GET "/v1/jobs/$args_id"
is "$HTTP_STATUS" 404 "damaged rows: a row whose arguments are not JSON is skipped"
req GET "/v1/jobs?limit=100"
jt "len(jobs(d)) == 1" "damaged rows: the list is valid JSON with the sound job only"
check "damaged rows: the log says how many were skipped" grep -q "2 stored jobs skipped: damaged rows" "$CRUND_LOG"
stop_and_check_crund "crund on damaged rows"
"$PY" -c 'import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute("DELETE FROM schema_version"); db.commit()' "$stored"
start_fail noversion --listen 127.0.0.1:0 --plugin-dir "$CRUND_PLUGIN_DIR" --store "sqlite:$stored"
is "$START_STATUS" 1 "an empty schema_version table: exit 1"
check "the message says so and what to do" grep -q "schema_version table is empty: damaged; restore it from a backup" "$START_LOG"

done_testing
