#!/bin/bash
# tests/plugins/abi-e2e.sh — a real crund loads plugins built against other
# layouts of the plugin ABI (tests/plugins/abi-1-0.so: ABI 1.0;
# abi-wide.so: fields appended to every struct) and shows every job and
# argument over GET /v1/plugins/NAME, and runs their jobs.  The unit-level
# checks are in tests/test-plugins.c; this is the same through the API.
# Uses tests/e2e/lib.sh; prints TAP.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
: "${top_srcdir:?top_srcdir must be set (the harness exports it)}"
# shellcheck source=tests/e2e/lib.sh
. "$top_srcdir/tests/e2e/lib.sh"

pdir="$E2E_TMP/plugins"
mkdir "$pdir"
chmod 755 "$pdir"
for f in abi-1-0 abi-wide; do
	cp "$top_builddir/tests/plugins/.libs/$f.so" "$pdir/$f.so" || bail "fixture $f.so not built"
done
cp "$CRUND_PLUGIN_DIR/demo.so" "$pdir/demo.so"
chmod 644 "$pdir"/*.so
CRUND_PLUGIN_ARGS=(--plugin-dir "$pdir")
# shellcheck disable=SC2119 # no extra flags
start_crund || bail "crund did not start"

req GET /v1/plugins
jt 'sorted(p["name"] for p in (d if isinstance(d, list) else d["plugins"])) == ["abi_1_0", "abi_wide", "demo"]' \
	"both layouts load next to demo"
check "the log names each plugin's ABI" grep -q 'plugin abi_1_0 1.0-layout loaded from .*(4 jobs, ABI 1.0)' "$CRUND_LOG"

# What both fixtures declare (tests/plugins/abi-fixture.h), as the API shows it
# (max_attempts and on_interrupt are ABI 1.2 fields: their defaults here).
want='[
 {"name": "alpha", "description": "the first job", "max_attempts": 1, "on_interrupt": "fail", "args": [
  {"name": "count", "type": "integer", "required": False, "default": 5, "description": "how many times", "min": 1, "max": 10},
  {"name": "label", "type": "string", "required": True, "description": "what to call it"},
  {"name": "ratio", "type": "number", "required": False, "default": 0.25, "description": "a fraction", "min": 0.0, "max": 1.0}]},
 {"name": "beta", "description": "the second job", "max_attempts": 1, "on_interrupt": "fail", "args": [
  {"name": "flag", "type": "boolean", "required": False, "default": True, "description": "a switch"},
  {"name": "payload", "type": "any", "required": True, "description": "any JSON value"}]},
 {"name": "gamma", "description": "the third job", "max_attempts": 1, "on_interrupt": "fail", "args": [
  {"name": "items", "type": "array", "required": False, "default": [1, 2], "description": "a list"},
  {"name": "options", "type": "object", "required": False, "default": {"a": 1}, "description": "an object"},
  {"name": "offset", "type": "integer", "required": False, "description": "bounded, no default", "min": -100, "max": 100},
  {"name": "note", "type": "string", "required": False, "default": "none", "description": "a note"}]},
 {"name": "delta", "description": "a job without arguments", "max_attempts": 1, "on_interrupt": "fail", "args": []}]'
want=$(printf '%s' "$want" | tr -d '\n')

for name in abi_1_0 abi_wide; do
	req GET "/v1/plugins/$name"
	is "$HTTP_STATUS" 200 "GET /v1/plugins/$name -> 200"
	jt "d[\"jobs\"] == $want" "$name: every job and argument as declared"
	submit "{\"plugin\":\"$name\",\"job\":\"gamma\",\"args\":{}}" '?wait=10'
	jt 'd["state"] == "succeeded" and d["result"] == "gamma" and d["args"] == {"items": [1, 2], "options": {"a": 1}, "note": "none"}' \
		"$name: gamma runs with the declared defaults"
	submit "{\"plugin\":\"$name\",\"job\":\"delta\"}" '?wait=10'
	jt 'd["state"] == "succeeded" and d["result"] == "delta"' "$name: the last job runs its own function"
	post_json /v1/jobs "{\"plugin\":\"$name\",\"job\":\"alpha\",\"args\":{\"label\":\"x\",\"count\":11}}"
	is "$HTTP_STATUS" 400 "$name: alpha's range is enforced -> 400"
done
stop_and_check_crund "crund with both layouts"

done_testing
