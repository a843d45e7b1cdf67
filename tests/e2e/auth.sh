#!/bin/bash
# auth.sh — the token (--token-file) on every route but /v1/health, the
# refusal to listen beyond loopback without one, start-up errors (exit 2),
# and listening on a Unix socket.  Prints TAP.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

token="e2e-$RANDOM$RANDOM-secret"
token_file="$E2E_TMP/token"
printf '%s\n' "$token" >"$token_file"
chmod 600 "$token_file"

# ------------------------------------------------------------ token checks
start_crund --token-file "$token_file" || bail "crund did not start with --token-file"

req GET /v1/info
is "$HTTP_STATUS" 401 "no token: GET /v1/info -> 401"
is_error '[a-z_]+' "401 has an error body"
like "$(header Content-Type)" '^application/json' "401 is application/json"
req GET /v1/info -H "Authorization: Bearer wrong-$token"
is "$HTTP_STATUS" 401 "wrong token -> 401"
req GET /v1/info -H "Authorization: Bearer ${token%?}"
is "$HTTP_STATUS" 401 "token prefix -> 401"
req GET /v1/info -H "Authorization: Basic $token"
is "$HTTP_STATUS" 401 "token with a non-Bearer scheme -> 401"
post_json /v1/jobs '{"plugin":"demo","job":"noop"}'
is "$HTTP_STATUS" 401 "no token: POST /v1/jobs -> 401"
req GET /v1/jobs
is "$HTTP_STATUS" 401 "no token: GET /v1/jobs -> 401"
req GET /v1/plugins
is "$HTTP_STATUS" 401 "no token: GET /v1/plugins -> 401"
req GET /metrics
is "$HTTP_STATUS" 401 "no token: GET /metrics -> 401"
req GET /v1/nosuchroute
like "$HTTP_STATUS" '^(401|404)$' "no token: unknown route -> 401 or 404"
req GET /v1/health
is "$HTTP_STATUS" 200 "no token: GET /v1/health -> 200 (health needs no token)"

CURL_AUTH=(-H "Authorization: Bearer $token")
req GET /v1/info
is "$HTTP_STATUS" 200 "right token: GET /v1/info -> 200"
submit '{"plugin":"demo","job":"noop"}' '?wait=5'
is "$HTTP_STATUS" 201 "right token: POST /v1/jobs -> 201"
jt 'd["state"] == "succeeded"' "right token: the job runs"
req GET "/v1/jobs/$JOB_ID/events"
is "$HTTP_STATUS" 200 "right token: events of an ended job -> 200"
# shellcheck disable=SC2034 # CURL_AUTH is read by lib.sh's req
CURL_AUTH=()
req GET "/v1/jobs/$JOB_ID/events"
is "$HTTP_STATUS" 401 "no token: events -> 401"
req GET "/v1/jobs/$JOB_ID/log"
is "$HTTP_STATUS" 401 "no token: log -> 401"
stop_and_check_crund "crund with a token"

# ------------------------------------------------------------ start-up refusals
port=$(free_port)
start_fail open --listen "0.0.0.0:$port" --plugin-dir "$CRUND_PLUGIN_DIR"
is "$START_STATUS" 2 "--listen 0.0.0.0 without --token-file: refused, exit 2"
check "refusal message names the token option" grep -q -- 'token-file' "$START_LOG" ||
	diag "$(head -c 500 "$START_LOG")"

start_fail missing-token --listen "127.0.0.1:$port" --plugin-dir "$CRUND_PLUGIN_DIR" --token-file "$E2E_TMP/no-such-token"
is "$START_STATUS" 2 "missing token file: exit 2"
check "missing token file: message names the file" grep -q -- "no-such-token" "$START_LOG" ||
	diag "$(head -c 500 "$START_LOG")"

# Root reads any file whatever its mode: a directory is unreadable as a file for everyone.
mkdir "$E2E_TMP/token-dir"
start_fail unreadable-token --listen "127.0.0.1:$port" --plugin-dir "$CRUND_PLUGIN_DIR" --token-file "$E2E_TMP/token-dir"
is "$START_STATUS" 2 "unreadable token file: exit 2"

: >"$E2E_TMP/empty-token"
chmod 600 "$E2E_TMP/empty-token"
start_fail empty-token --listen "127.0.0.1:$port" --plugin-dir "$CRUND_PLUGIN_DIR" --token-file "$E2E_TMP/empty-token"
is "$START_STATUS" 2 "empty token file: exit 2"

start_fail unknown-flag --listen "127.0.0.1:$port" --plugin-dir "$CRUND_PLUGIN_DIR" --no-such-flag
is "$START_STATUS" 2 "unknown flag: exit 2"
check "unknown flag: message names it" grep -q -- "no-such-flag" "$START_LOG" ||
	diag "$(head -c 500 "$START_LOG")"

start_fail bad-listen --listen "127.0.0.1:notaport" --plugin-dir "$CRUND_PLUGIN_DIR"
is "$START_STATUS" 2 "--listen with a bad port: exit 2"

# ------------------------------------------------------------ wildcard with token, unix socket
sock="$E2E_TMP/crund.sock"
# shellcheck disable=SC2034 # CRUND_HOST is read by lib.sh's start_crund
CRUND_HOST=0.0.0.0
start_crund --listen "unix:$sock" --token-file "$token_file"
CRUND_HOST=127.0.0.1
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$CRUND_URL/v1/health")
is "$code" 200 "--listen 0.0.0.0 with --token-file starts"
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' --unix-socket "$sock" http://localhost/v1/health)
is "$code" 200 "--listen unix:PATH answers health on the socket"
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' --unix-socket "$sock" http://localhost/v1/info)
is "$code" 401 "unix socket: the token is checked there too"
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" --unix-socket "$sock" http://localhost/v1/info)
is "$code" 200 "unix socket: right token -> 200"
# a second crund on the same socket path refuses to start: the socket is
# live (before, it unlinked it and took it over)
port2=$(free_port) || bail "no free port"
start_fail second-on-socket --listen "127.0.0.1:$port2" --listen "unix:$sock" \
	--plugin-dir "$CRUND_PLUGIN_DIR" --store memory:
is "$START_STATUS" 1 "a second crund on a live unix socket exits 1"
check "... saying a process listens on it" grep -q "unix:$sock: a process listens on it" "$START_LOG"
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' --unix-socket "$sock" http://localhost/v1/health)
is "$code" 200 "... and the first crund still answers on it"
stop_and_check_crund "crund on 0.0.0.0 + unix socket"
# a socket file nobody listens on (left by a crash) is replaced
"$PY" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$E2E_TMP/stale.sock"
start_crund --listen "unix:$E2E_TMP/stale.sock" || bail "crund did not start on a stale socket file"
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' --unix-socket "$E2E_TMP/stale.sock" http://localhost/v1/health)
is "$code" 200 "a stale socket file (nobody listening) is replaced"
stop_crund

# ------------------------------------------------------------ pages of other origins (CSRF)
# Without a token (loopback only), any web page the machine's browser opens
# could POST to crund: a POST or DELETE whose Origin is not crund's own,
# or that a browser marks cross-site, is refused 403; GETs, clients that
# are not browsers (no Origin) and the dashboard's own calls are not.
start_crund --store memory: || bail "crund did not start"
post_json /v1/jobs '{"plugin":"demo","job":"noop"}' -H 'Origin: http://evil.example' -H 'Content-Type: text/plain'
is "$HTTP_STATUS:$(j 'd["error"]["code"]')" 403:cross_origin "a POST from a page of another origin -> 403 cross_origin"
like "$(j 'd["error"]["message"]')" "http://evil.example" "... naming the origin"
req GET "/v1/jobs?limit=5"
jt "d['jobs'] == []" "... and no job was made"
own=${CRUND_URL#http://}
post_json "/v1/jobs?wait=5" '{"plugin":"demo","job":"noop"}' -H "Origin: http://$own"
jt "d['state'] == 'succeeded'" "a POST from crund's own origin (the dashboard) is taken"
ok_id=$(j 'd["id"]')
post_json /v1/jobs '{"plugin":"demo","job":"noop"}' -H "Origin: http://127.0.0.1:1"
is "$HTTP_STATUS" 403 "another port of the same host is another origin: 403"
post_json /v1/jobs '{"plugin":"demo","job":"noop"}' -H 'Origin: http://rebound.example:7733' -H 'Host: rebound.example:7733'
is "$HTTP_STATUS" 403 "a page whose name was rebound to 127.0.0.1 (Origin = Host, a name), no token -> 403"
post_json /v1/jobs '{"plugin":"demo","job":"noop"}' -H 'Origin: http://localhost:7733' -H 'Host: localhost:7733'
is "$HTTP_STATUS" 201 "... but localhost is taken"
post_json /v1/jobs '{"plugin":"demo","job":"noop"}' -H 'Origin: null'
is "$HTTP_STATUS" 403 "Origin: null (a sandboxed page, a file) -> 403"
post_json /v1/jobs '{"plugin":"demo","job":"noop"}' -H 'Sec-Fetch-Site: cross-site'
is "$HTTP_STATUS" 403 "a request a browser marks Sec-Fetch-Site: cross-site -> 403"
req POST "/v1/jobs/$ok_id/retry" -H 'Origin: http://evil.example' -H 'Content-Type: application/x-www-form-urlencoded'
is "$HTTP_STATUS" 403 "a retry from another origin -> 403"
req DELETE "/v1/jobs/$ok_id" -H 'Origin: http://evil.example'
is "$HTTP_STATUS" 403 "a DELETE from another origin -> 403"
req GET "/v1/jobs/$ok_id" -H 'Origin: http://evil.example'
is "$HTTP_STATUS" 200 "a GET with another Origin is answered (the browser keeps it from that page: no CORS header)"
check "... without Access-Control-Allow-Origin" bash -c "! grep -qi '^access-control-allow-origin' '$HTTP_HDR_FILE'"
req DELETE "/v1/jobs/$ok_id"
is "$HTTP_STATUS" 204 "a DELETE without Origin (curl) is taken"
stop_and_check_crund "crund refusing other origins"

done_testing
