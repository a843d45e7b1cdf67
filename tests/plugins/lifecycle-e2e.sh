#!/bin/bash
# tests/plugins/lifecycle-e2e.sh — a plugin's init and fini that do not
# end, through a real crund: an init still running is named in the log
# every 10 s and SIGTERM gives the start up (exit 0; the plugins after it,
# in name order, are not initialised); a fini that does not end is cancelled after
# 10 s and crund exits.  The fixture is tests/plugins/awaits.c (its
# $CRUND_TEST_INIT_SLEEP / $CRUND_TEST_FINI_SLEEP).  Uses tests/e2e/lib.sh;
# prints TAP.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
: "${top_srcdir:?top_srcdir must be set (the harness exports it)}"
# shellcheck source=tests/e2e/lib.sh
. "$top_srcdir/tests/e2e/lib.sh"

pdir="$E2E_TMP/plugins"
mkdir "$pdir"
chmod 755 "$pdir"
cp "$top_builddir/tests/plugins/.libs/awaits.so" "$pdir/awaits.so" ||
	bail "fixture awaits.so not built"
# initialised after awaits (plugins go in name order)
cp "$top_builddir/plugins/.libs/demo.so" "$pdir/demo.so" || bail "demo.so not built"
chmod 644 "$pdir"/*.so
CRUND_PLUGIN_ARGS=(--plugin-dir "$pdir")

# wait_log PATTERN SECONDS: until the daemon's log has a line matching it
# shellcheck disable=SC2317 # called through check
wait_log() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		grep -Eq -- "$1" "$CRUND_LOG" && return 0
		kill -0 "$CRUND_PID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# --- an init that never ends
CRUND_LOG="$E2E_TMP/crund-init.log"
crund_cmd --listen "$CRUND_HOST:$(free_port)" "${CRUND_PLUGIN_ARGS[@]}" --store memory: --log-level debug
CRUND_TEST_INIT_SLEEP=3600 "${CRUND_CMD[@]}" >"$CRUND_LOG" 2>&1 </dev/null 7>&- 8<&- &
CRUND_PID=$!
check "a slow init is named in the log after 10 s" wait_log 'plugin awaits: init still running after 10 s' "$(slow 20)"
kill -TERM "$CRUND_PID"
t0=$EPOCHREALTIME
wait_crund_exit "$(slow 10)"
is "$CRUND_STATUS" 0 "SIGTERM during the init: crund exits 0"
like "$(python3 -c "print(f'{$EPOCHREALTIME - $t0:.1f}')")" '^[0-4]\.' "within 5 s"
log=$(cat "$CRUND_LOG")
like "$log" 'stopped before serving: a signal came during plugin initialisation' "the log says why it stopped"
like "$log" 'awaits.*init failed: .*\(the daemon is shutting down\)' "the plugin's init is given up, logged"
if grep -q 'demo plugin ready' "$CRUND_LOG"; then ok 1 "the plugin after it is not initialised"; else ok 0 "the plugin after it is not initialised"; fi

# --- a fini that never ends
CRUND_TEST_FINI_SLEEP=3600 start_crund --store memory: || bail "crund did not start"
kill -TERM "$CRUND_PID"
t0=$EPOCHREALTIME
wait_crund_exit "$(slow 30)"
is "$CRUND_STATUS" 0 "SIGTERM with a fini that does not end: crund exits 0"
elapsed=$(python3 -c "print(f'{$EPOCHREALTIME - $t0:.1f}')")
like "$elapsed" '^(9|1[0-9])\.' "after the fini's 10 s bound (took $elapsed s)"
log=$(cat "$CRUND_LOG")
like "$log" 'plugin awaits: fini did not end within 10 s: cancelled' "the bound is logged"
like "$log" 'awaits: fini slept rc=-125 state=42' "the fini's await was cancelled (-ECANCELED)"
like "$log" 'demo plugin stopped' "the other plugin's fini ran too"

done_testing
