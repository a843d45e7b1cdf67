#!/bin/bash
# limits.sh — the daemon's configured bounds and start-up checks (docs/ARCHITECTURE.md §5.6):
# the config file, bounded result and log size, retention of ended jobs by
# count and by age, ids unique across restarts, plugin loading (a bad .so
# is refused and the others load; a directory writable by others is
# refused), --help / --version.  Prints TAP.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

# ------------------------------------------------------------ config file
conf="$E2E_TMP/crund.conf"
cat >"$conf" <<'EOF'
# e2e: every key is a long option without the dashes
max-running = 2
max-queued = 5
retain-jobs = 3
max-result-bytes = 256
max-log-bytes = 200
EOF
start_crund --config "$conf" || bail "crund did not start with --config"
req GET /v1/info
jt 'd["limits"]["max_running"] == 2 and d["limits"]["max_queued"] == 5' "config file: max-running and max-queued applied"
jt 'd["limits"]["retain_jobs"] == 3 and d["limits"]["max_result_bytes"] == 256 and d["limits"]["max_log_bytes"] == 200' \
	"config file: retain-jobs, max-result-bytes, max-log-bytes applied"

# a long-poll on a job queued behind max-running 2 waits for its turn
# (2 s sleeps: the third submission must arrive while both still run, also
# when each submission takes a loaded machine's second)
submit '{"plugin":"demo","job":"sleep","args":{"seconds":2}}'
sleep1=$JOB_ID
submit '{"plugin":"demo","job":"sleep","args":{"seconds":2}}'
sleep2=$JOB_ID
submit '{"plugin":"demo","job":"noop"}' '?wait=10'
is "$HTTP_STATUS" 201 "POST ?wait behind max-running -> 201"
jt 'd["state"] == "succeeded" and d["result"] == {"ok": True}' \
	"POST ?wait behind max-running: answered when the queued job ended"
noop_started=$(j 'secs(d["started_at"])')
# (the other sleep may still be running then: no end is "not yet")
req GET "/v1/jobs/$sleep1"
first_end=$(j 'secs(d["finished_at"]) if d["finished_at"] else 1e18')
req GET "/v1/jobs/$sleep2"
second_end=$(j 'secs(d["finished_at"]) if d["finished_at"] else 1e18')
# an order, not a duration: it started when a running job had ended
check "POST ?wait behind max-running: the job started only once a slot was free" \
	"$PY" -c 'import sys; s, a, b = map(float, sys.argv[1:]); sys.exit(0 if s >= min(a, b) - 0.002 else 1)' \
	"$noop_started" "$first_end" "$second_end"

# bounded result: a 1000-byte echo over max-result-bytes 256
submit '{"plugin":"demo","job":"echo","args":{"value":"'"$(printf 'x%.0s' {1..1000})"'"}}' '?wait=5'
jt 'd["state"] == "failed" and d["result"] is None and d["error"]["code"] not in ("", "plugin_error")' \
	"result over max-result-bytes: job failed, no result, a daemon error code"
diag "result over the limit: error.code $(j 'd["error"]["code"]')"
submit '{"plugin":"demo","job":"echo","args":{"value":"small"}}' '?wait=5'
jt 'd["state"] == "succeeded" and d["result"] == "small"' "result under max-result-bytes: succeeded"

# bounded log: 40 lines of ~20 bytes into max-log-bytes 200
submit '{"plugin":"demo","job":"progress","args":{"steps":40,"interval":0}}' '?wait=5'
big_log_id=$JOB_ID
jt 'd["state"] == "succeeded"' "a job whose log overflows still succeeds"
req GET "/v1/jobs/$big_log_id/log"
is "$HTTP_STATUS" 200 "log of the overflowing job -> 200"
check "log is bounded by max-log-bytes (plus a truncation note)" test "$(wc -c <"$HTTP_BODY_FILE")" -le 400
check "log keeps its first lines" grep -q 'step 1/40' "$HTTP_BODY_FILE"
check "log says it was truncated" grep -qi 'truncat' "$HTTP_BODY_FILE"
# the daemon's own log took the lines the job's log kept, then one notice
# (40 lines went to the journal before)
check "the daemon's log has the job's first lines" grep -q "job $big_log_id: step 1/40 done" "$CRUND_LOG"
check "the daemon's log says the job's log is full" grep -q "job $big_log_id: its log reached --max-log-bytes" "$CRUND_LOG"
# shellcheck disable=SC2317 # called through check
check_not_in_log() { ! grep -q "$1" "$CRUND_LOG"; }
check "and takes none of its lines after that" check_not_in_log "job $big_log_id: step 40/40 done"

# retention by count: retain-jobs 3 keeps the three newest ended jobs
ids=()
for i in 1 2 3 4 5; do
	submit '{"plugin":"demo","job":"noop"}' '?wait=5'
	ids+=("$JOB_ID")
done
req GET "/v1/jobs/${ids[0]}"
is "$HTTP_STATUS" 404 "retain-jobs 3: the oldest ended job is forgotten"
req GET "/v1/jobs/${ids[1]}"
is "$HTTP_STATUS" 404 "retain-jobs 3: the fourth newest is forgotten"
req GET "/v1/jobs/${ids[2]}"
is "$HTTP_STATUS" 200 "retain-jobs 3: the third newest is kept"
req GET "/v1/jobs/${ids[4]}"
is "$HTTP_STATUS" 200 "retain-jobs 3: the newest is kept"
req GET /v1/jobs
jt 'len(jobs(d)) == 3' "retain-jobs 3: the list holds three jobs"
first_daemon_id=${ids[4]}
stop_and_check_crund "crund with a config file"

# ------------------------------------------------------------ ids across restarts
start_crund || bail "crund did not restart"
req GET "/v1/jobs/$first_daemon_id"
is "$HTTP_STATUS" 200 "a job of the previous start is still there (durable store)"
jt "d['id'] == '$first_daemon_id' and d['state'] == 'succeeded'" "... with its id and its end"
stop_crund

# ------------------------------------------------------------ retention by age
retain=$(slow 2)
start_crund --retain-seconds "$retain" || bail "crund did not restart"
# an active job older than retain-seconds by the time the ended one is gone
submit '{"plugin":"demo","job":"sleep","args":{"seconds":30}}'
active_id=$JOB_ID
submit '{"plugin":"demo","job":"noop"}' '?wait=5'
aged_id=$JOB_ID
check "job ids are unique across restarts" test -n "$aged_id" -a "$aged_id" != "$first_daemon_id"
req GET "/v1/jobs/$aged_id"
is "$HTTP_STATUS" 200 "retain-seconds $retain: a fresh ended job is there"
for ((i = 0; i < $(slow 50); i++)); do
	req GET "/v1/jobs/$aged_id"
	[ "$HTTP_STATUS" = 404 ] && break
	sleep 0.1
done
is "$HTTP_STATUS" 404 "retain-seconds $retain: the ended job is forgotten after its age"
is "$(job_state "$active_id")" running "retain-seconds never forgets an active job"
req POST "/v1/jobs/$active_id/cancel"
stop_and_check_crund "crund with --retain-seconds"

# ------------------------------------------------------------ config errors
port=$(free_port)
start_fail help --help
is "$START_STATUS" 0 "--help exits 0"
check "--help prints the usage" grep -q 'Usage' "$START_LOG"
start_fail version --version
is "$START_STATUS" 0 "--version exits 0"
check "--version prints a version number" grep -Eq '[0-9]+\.[0-9]+' "$START_LOG"

printf 'max-running = 2\nno-such-key = 1\n' >"$E2E_TMP/bad-key.conf"
start_fail bad-key --listen "127.0.0.1:$port" --plugin-dir "$CRUND_PLUGIN_DIR" --config "$E2E_TMP/bad-key.conf"
is "$START_STATUS" 2 "config file with an unknown key: exit 2"
check "config error names the key" grep -q 'no-such-key' "$START_LOG"
printf 'max-running = lots\n' >"$E2E_TMP/bad-value.conf"
start_fail bad-value --listen "127.0.0.1:$port" --plugin-dir "$CRUND_PLUGIN_DIR" --config "$E2E_TMP/bad-value.conf"
is "$START_STATUS" 2 "config file with a bad value: exit 2"
start_fail no-conf --listen "127.0.0.1:$port" --plugin-dir "$CRUND_PLUGIN_DIR" --config "$E2E_TMP/no-such.conf"
is "$START_STATUS" 2 "missing config file: exit 2"
start_fail bad-flag-value --listen "127.0.0.1:$port" --plugin-dir "$CRUND_PLUGIN_DIR" --max-running 0
is "$START_STATUS" 2 "--max-running 0: exit 2"

# ------------------------------------------------------------ plugin loading
pdir="$E2E_TMP/plugins"
mkdir "$pdir"
chmod 755 "$pdir"
cp "$CRUND_PLUGIN_DIR/demo.so" "$pdir/demo.so"
head -c 4096 /dev/urandom >"$pdir/bogus.so"
printf '\177ELF not really\n' >"$pdir/truncated.so"
chmod 644 "$pdir"/*.so
# shellcheck disable=SC2034 # CRUND_PLUGIN_ARGS is read by lib.sh's start_crund
CRUND_PLUGIN_ARGS=(--plugin-dir "$pdir")
start_crund || bail "crund did not start with a bad plugin next to demo"
req GET /v1/plugins
jt '[p["name"] for p in (d if isinstance(d, list) else d["plugins"])] == ["demo"]' "a bad .so is refused, the good plugin loads"
check "the refusal is logged naming bogus.so" grep -q 'bogus.so' "$CRUND_LOG"
check "the refusal is logged naming truncated.so" grep -q 'truncated.so' "$CRUND_LOG"
submit '{"plugin":"demo","job":"noop"}' '?wait=5'
jt 'd["state"] == "succeeded"' "the good plugin runs jobs"
stop_and_check_crund "crund with a bad plugin"

rm -f "$pdir/bogus.so" "$pdir/truncated.so"
chmod 777 "$pdir"
start_fail insecure --listen "127.0.0.1:$port" --plugin-dir "$pdir"
check "a plugin dir writable by others is refused (non-zero exit)" test "$START_STATUS" != 0 -a "$START_STATUS" != still-running
check "the refusal says the dir is writable" grep -qi 'writable' "$START_LOG"
chmod 755 "$pdir"
chmod 666 "$pdir/demo.so"
start_crund
req GET /v1/plugins
jt 'all(p["name"] != "demo" for p in (d if isinstance(d, list) else d["plugins"]))' "a plugin file writable by others is not loaded"
check "the refused file is logged as writable" grep -qi 'writable' "$CRUND_LOG"
stop_and_check_crund "crund with an insecure plugin file"
chmod 777 "$pdir"
start_crund --allow-insecure-plugins
req GET /v1/plugins
jt '[p["name"] for p in (d if isinstance(d, list) else d["plugins"])] == ["demo"]' "--allow-insecure-plugins accepts the writable dir"
stop_and_check_crund "crund with --allow-insecure-plugins"

done_testing
