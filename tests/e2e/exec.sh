#!/bin/bash
# tests/e2e/exec.sh — the exec plugin through a real crund and curl: it is
# not loaded without --allow-command-plugins; with it, commands that
# succeed, fail (exit status, signal, retries), print a lot (head and tail
# kept), read stdin, get their environment and directory, never end
# (timeout), ignore SIGTERM (SIGKILL after kill_grace), fork grandchildren
# (all gone after a cancel); a refused command (400 command_not_allowed);
# output lines live on the event stream and in crunctl log; no process
# left after shutdown or after crund is killed.  Prints TAP.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
: "${top_srcdir:?top_srcdir must be set (the harness exports it)}"
# shellcheck source=tests/e2e/lib.sh
. "$top_srcdir/tests/e2e/lib.sh"

[ -e "$top_builddir/plugins/.libs/exec.so" ] || bail "plugins/exec.so not built"

# The live (non-zombie) processes whose process group is $1.
group_members() {
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v g="$1" '
		{ s = $0; sub(/.*\) /, "", s); split(s, f, " ")
		  if (f[3] == g && f[1] != "Z") n++ }
		END { print n + 0 }'
}

# wait_group_empty PGID SECONDS: bounded wait for the group to be gone.
# shellcheck disable=SC2317 # called through check
wait_group_empty() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[ "$(group_members "$1")" = 0 ] && return 0
		sleep 0.1
	done
	return 1
}

# first_stdout_line ID: waits (bounded) for the job's first stdout line in
# /log and prints it.
first_stdout_line() {
	local i line
	for ((i = 0; i < $(slow 100); i++)); do
		req GET "/v1/jobs/$1/log"
		line=$(awk '$2 == "stdout" { print $3; exit }' "$HTTP_BODY_FILE")
		[ -n "$line" ] && echo "$line" && return 0
		sleep 0.1
	done
	return 1
}

run() { submit "{\"plugin\":\"exec\",\"job\":\"run\",$1}" "?wait=$(slow 20)"; }

# --- 1. not loaded without --allow-command-plugins ------------------------
# shellcheck disable=SC2119 # no extra flags
start_crund || bail "crund did not start"
like "$(cat "$CRUND_LOG")" 'exec\.so refused: .*runs arbitrary commands.*--allow-command-plugins' \
	"without --allow-command-plugins the exec plugin is refused, with a log line saying why"
post_json /v1/jobs '{"plugin":"exec","job":"run","args":{"argv":["true"]}}'
like "$HTTP_STATUS" '^4' "and an exec job is not accepted ($HTTP_STATUS)"
submit '{"plugin":"demo","job":"noop"}' '?wait=5'
jt 'd["state"] == "succeeded"' "the daemon runs the other plugins' jobs"
stop_and_check_crund "crund without command plugins"

# --- 2. with it ---------------------------------------------------------
mkdir -p "$E2E_TMP/bin" "$E2E_TMP/work"
printf '#!/bin/sh\necho ok-tool\n' >"$E2E_TMP/bin/ok-tool"
printf '#!/bin/sh\necho other\n' >"$E2E_TMP/bin/other"
chmod 755 "$E2E_TMP/bin/ok-tool" "$E2E_TMP/bin/other"
start_crund --allow-command-plugins --exec-allow '/usr/bin/*' --exec-allow /bin/sh \
	--exec-allow "$E2E_TMP/bin/ok-*" || bail "crund did not start"

# success
run '"args":{"argv":["echo","hello","world"]}'
jt 'd["state"] == "succeeded" and d["result"]["exit_code"] == 0' "argv: echo succeeds, exit_code 0"
jt 'd["result"]["stdout"] == "hello world\n" and d["result"]["stderr"] == ""' "stdout and stderr are in the result"
jt 'd["result"]["truncated"] == {"stdout": False, "stderr": False} and d["result"]["duration"] >= 0' \
	"truncated (per stream) and duration"
req GET "/v1/jobs/$JOB_ID/log"
like "$HTTP_BODY" ' stdout hello world' "the output line is in the job's log under its stream"

# shell, failure with a code
run '"args":{"command":"echo partial; echo oops >&2; exit 3","shell":true}'
jt 'd["state"] == "failed" and d["error"]["code"] == "exit_status"' "exit 3 fails the job: exit_status"
jt '"status 3" in d["error"]["message"] and "oops" in d["error"]["message"]' \
	"the message has the code and the last stderr line"
# killed by a signal
run '"args":{"argv":["sh","-c","kill -KILL $$"]}'
jt 'd["state"] == "failed" and d["error"]["code"] == "exit_status" and "signal 9" in d["error"]["message"]' \
	"a command killed by a signal fails: exit_status naming the signal"
# retries apply
run '"args":{"argv":["false"]},"max_attempts":2'
jt 'd["state"] == "failed" and d["attempt"] == 2 and [a["attempt"] for a in d["attempts"]] == [1, 2]' \
	"exit_status is retried while attempts are left"

# refused, invalid
post_json /v1/jobs '{"plugin":"exec","job":"run","args":{"argv":["'"$E2E_TMP"'/bin/other"]}}'
is "$HTTP_STATUS" 400 "a program outside exec-allow -> 400"
is_error command_not_allowed "error.code command_not_allowed"
jt '"/bin/other" in d["error"]["message"]' "the message names the program"
post_json /v1/jobs '{"plugin":"exec","job":"run","args":{"argv":["/usr/bin/../..'"$E2E_TMP"'/bin/other"]}}'
is_error command_not_allowed "a path through /usr/bin/.. is checked as the file it names"
post_json /v1/jobs '{"plugin":"exec","job":"run","args":{"argv":["no-such-program-here"]}}'
is_error command_not_found "a name not in the job's PATH -> command_not_found"
run '"args":{"argv":["'"$E2E_TMP"'/bin/ok-tool"]}'
jt 'd["state"] == "succeeded" and d["result"]["stdout"] == "ok-tool\n"' "a glob pattern allows what it matches"
post_json /v1/jobs '{"plugin":"exec","job":"run","args":{"command":"true"}}'
is_error invalid_args "command without \"shell\": true -> invalid_args"
post_json /v1/jobs '{"plugin":"exec","job":"run","args":{"argv":["true"],"kill_signal":"BOGUS"}}'
is_error invalid_args "an unknown kill_signal -> invalid_args"
# variables that make an allowed shell (or the loader, an interpreter) run
# the caller's code: BASH_ENV=/dev/stdin ran the job's stdin as bash
# (PYTHONWARNINGS names a module to import, BROWSER a command: together they
# ran the caller's command from an allowed Python script)
for name in BASH_ENV LD_PRELOAD 'BASH_FUNC_ls%%' PYTHONSTARTUP ENV PYTHONWARNINGS BROWSER \
	_JAVA_OPTIONS JDK_JAVA_OPTIONS OPENSSL_CONF LUA_INIT NODE_PATH GIT_SSH_COMMAND GLIBC_TUNABLES PAGER; do
	post_json /v1/jobs '{"plugin":"exec","job":"run","args":{"argv":["/bin/sh","-c","true"],"env":{"'"$name"'":"/dev/stdin"},"stdin":"echo caught"}}'
	is "$HTTP_STATUS" 400 "env $name -> 400"
	is_error env_not_allowed "env $name -> env_not_allowed"
done

# a command that prints lines faster than they are logged does not hold
# the loop: seq 2000000 blocked it 5.3 s (/v1/health answered after 4.8 s);
# here the longest lag is bounded by 1 s (it was 2-3 s on this build)
submit '{"plugin":"exec","job":"run","args":{"argv":["seq","1","3000000"]}}'
poll_state "$JOB_ID" succeeded "$(slow 60)"
req GET "/v1/jobs/$JOB_ID"
jt 'd["state"] == "succeeded" and d["result"]["truncated"]["stdout"] is True' "3,000,000 lines: succeeded, truncated"
req GET /metrics
lag=$(sed -n 's/^crund_loop_lag_max_seconds //p' "$HTTP_BODY_FILE")
check "... and the loop turned meanwhile (longest lag ${lag} s; a bound, not a timing: it was 2-5 s)" \
	"$PY" -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 1.0 else 1)' "${lag:-99}"

# a lot of output: head and tail kept
run '"args":{"argv":["seq","1","20000"],"max_output_bytes":1000}'
jt 'd["state"] == "succeeded" and d["result"]["truncated"]["stdout"] is True' "20000 lines with max_output_bytes 1000: truncated"
jt 'd["result"]["stdout"].startswith("1\n2\n3\n") and d["result"]["stdout"].endswith("19999\n20000\n")' \
	"the head and the tail are kept"
jt '"bytes omitted" in d["result"]["stdout"] and len(d["result"]["stdout"]) < 1100' "with a marker between, within the limit"
req GET "/v1/jobs/$JOB_ID/log"
is "$(awk '$2 == "stdout" { print $3 }' "$HTTP_BODY_FILE" | head -n 3 | tr '\n' ' ')" "1 2 3 " \
	"each line went to the job's log, in order"
check "the log holds lines up to its limit (--max-log-bytes keeps the first ones)" \
	test "$(grep -c ' stdout ' "$HTTP_BODY_FILE")" -gt 1000

# output that is not UTF-8 still makes valid JSON
run '"args":{"argv":["printf","\\377ok\\n"]}'
jt 'd["result"]["stdout"] == "\ufffdok\n"' "bytes that are not UTF-8 become U+FFFD in the result"

# stdin, environment, cwd
run '"args":{"argv":["cat"],"stdin":"fed\nto stdin\n"}'
jt 'd["result"]["stdout"] == "fed\nto stdin\n"' "stdin is written to the command"
run '"args":{"argv":["env"],"env":{"FOO":"bar"}}'
jt 'sorted(l.split("=")[0] for l in d["result"]["stdout"].splitlines()) == ["FOO", "HOME", "LANG", "PATH"]' \
	"inherit_env false: PATH, LANG, HOME and the job's env only"
run '"args":{"argv":["pwd"],"cwd":"'"$E2E_TMP"'/work"}'
jt 'd["result"]["stdout"] == "'"$E2E_TMP"'/work\n"' "cwd is the directory asked for"

# never ends: timeout, and nothing left behind
run '"args":{"command":"echo $$; exec sleep 1000","shell":true,"timeout":1}'
jt 'd["state"] == "failed" and d["error"]["code"] == "timeout"' "a command that never ends: error.code timeout"
pg=$(first_stdout_line "$JOB_ID")
is "$(group_members "$pg")" 0 "after the timeout no process of its group is left"

# ignores SIGTERM: SIGKILL after kill_grace
run '"args":{"command":"trap \"\" TERM; echo $$; while :; do sleep 0.1; done","shell":true,"timeout":1,"kill_grace":1}'
jt 'd["state"] == "failed" and d["error"]["code"] == "timeout"' "a command ignoring SIGTERM still ends"
req GET "/v1/jobs/$JOB_ID/log"
like "$HTTP_BODY" 'did not stop within 1 s of SIGTERM: SIGKILL' "SIGKILL after kill_grace, logged"
pg=$(first_stdout_line "$JOB_ID")
is "$(group_members "$pg")" 0 "and none of its processes is left"

# grandchildren, cancelled
submit '{"plugin":"exec","job":"run","args":{"command":"sleep 1000 & sleep 1000 & echo $$; wait","shell":true}}'
id=$JOB_ID
pg=$(first_stdout_line "$id")
check "the job's command and two grandchildren run in one group" test "$(group_members "$pg")" -ge 3
req POST "/v1/jobs/$id/cancel"
job_wait "$id"
jt 'd["state"] == "cancelled"' "cancel ends the job cancelled"
is "$(group_members "$pg")" 0 "when it ended, no process of the group was left (grandchildren included)"

# kill_signal by name: the command sees SIGINT and may clean up
submit '{"plugin":"exec","job":"run","args":{"command":"trap \"echo got INT; exit 0\" INT; echo $$; while :; do sleep 0.1; done","shell":true,"kill_signal":"SIGINT"}}'
id=$JOB_ID
pg=$(first_stdout_line "$id")
req POST "/v1/jobs/$id/cancel"
job_wait "$id"
req GET "/v1/jobs/$id/log"
like "$HTTP_BODY" ' stdout got INT' "kill_signal SIGINT reaches the command's trap"

# lines live on the event stream and in crunctl log
out="$E2E_TMP/events"
submit '{"plugin":"exec","job":"run","args":{"command":"echo first; echo to-err >&2; sleep 0.5; echo second","shell":true},"delay":1}'
curl -sN --max-time "$(slow 10)" "$CRUND_URL/v1/jobs/$JOB_ID/events" >"$out"
sse_json "$out" >"$E2E_TMP/events.json"
ev=$(jf "$E2E_TMP/events.json" '[(e["data"]["stream"], e["data"]["message"]) for e in d if e["event"] == "log"]')
is "$ev" '[["stdout","first"],["stderr","to-err"],["stdout","second"]]' "log events carry each line with its stream, in order"
logs=$("$top_builddir/client/crunctl" --url "$CRUND_URL" log "$JOB_ID" 2>&1)
like "$logs" 'stdout first' "crunctl log shows the lines"

# a queued job meets the allowlist of the day: submitted now, it starts
# cancels that arrive while the spawn is awaited (8 at once, 0-18 ms after
# the submission): each job ends cancelled; a third ended failed
# spawn_failed with another call's message ("cannot signal process group")
counts=$("$PY" - "$CRUND_PORT" <<'PYEOF'
import json, sys, time, urllib.request, concurrent.futures
from collections import Counter
port = sys.argv[1]
def one(i):
    u = "http://127.0.0.1:%s" % port
    req = urllib.request.Request(u + "/v1/jobs", data=json.dumps({"plugin": "exec", "job": "run", "args": {"argv": ["sh", "-c", "sleep 417 & sleep 418"]}}).encode(), headers={"Content-Type": "application/json"})
    d = json.load(urllib.request.urlopen(req, timeout=30))
    time.sleep(0.002 * (i % 10))
    urllib.request.urlopen(urllib.request.Request(u + "/v1/jobs/%s/cancel" % d["id"], method="POST"), timeout=30).read()
    d = json.load(urllib.request.urlopen(u + "/v1/jobs/%s?wait=30" % d["id"], timeout=40))
    return "%s/%s" % (d["state"], (d["error"] or {}).get("code"))
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    print(" ".join("%s=%d" % kv for kv in sorted(Counter(ex.map(one, range(40))).items())))
PYEOF
)
is "$counts" "cancelled/cancelled=40" "40 jobs cancelled while their spawn is awaited all end cancelled"
check "... and leave no process behind" bash -c "! pgrep -f 'sleep 41[78]' >/dev/null"

# after a restart whose exec-allow no longer names its program (below)
submit '{"plugin":"exec","job":"run","args":{"argv":["'"$E2E_TMP"'/bin/ok-tool"]},"delay":3}'
queued=$JOB_ID

# shutdown: a second SIGTERM cancels the running command, which is stopped
submit '{"plugin":"exec","job":"run","args":{"command":"echo $$; exec sleep 1000","shell":true}}'
pg=$(first_stdout_line "$JOB_ID")
kill -TERM "$CRUND_PID"
sleep 0.2
stop_and_check_crund "crund with exec jobs"
is "$(group_members "$pg")" 0 "after shutdown the command is gone"

# --- 3. crund killed: PR_SET_PDEATHSIG takes its child with it -----------
start_crund --allow-command-plugins --exec-allow '/usr/bin/*' || bail "crund did not start"
job_wait "$queued" "$(slow 15)"
jt 'd["state"] == "failed" and d["error"]["code"] == "command_not_allowed"' \
	"a job accepted before a restart is checked again when it starts"
submit '{"plugin":"exec","job":"run","args":{"argv":["sleep","1000"]}}'
id=$JOB_ID
poll_state "$id" running "$(slow 10)"
child=$(pgrep -P "$CRUND_PID" -x sleep | head -n1)
check "the command runs as crund's child" test -n "$child"
kill -KILL "$CRUND_PID"
wait "$CRUND_PID" 2>/dev/null
CRUND_PID=
check "killing crund kills its child (PR_SET_PDEATHSIG)" wait_group_empty "${child:-0}" "$(slow 5)"

done_testing
