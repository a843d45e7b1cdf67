#!/bin/bash
# stream.sh — connection lifetimes: an idle event stream gets an SSE
# comment every --stream-ping seconds, and a client that went away is
# noticed (its held connection is released) long before its job ends; an
# idle or stalled connection is closed after --idle-timeout.  Prints TAP.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

start_crund --stream-ping 0.2 --grace 0 || bail "crund did not start with --stream-ping"

submit '{"plugin":"demo","job":"sleep","args":{"seconds":1.5}}'
is "$HTTP_STATUS" 201 "sleep job accepted"
out="$E2E_TMP/stream.txt"
curl -sN --max-time "$(slow 10)" "$CRUND_URL/v1/jobs/$JOB_ID/events" >"$out"
pings=$(grep -c '^: ping$' "$out")
check "an idle stream carries keep-alive comments (saw $pings)" test "$pings" -ge 2
like "$(grep '^event:' "$out" | tail -n 1)" '^event: end$' "the stream still ends with the end event"

# A client that disconnects from a long job's stream: with pings the write
# fails and the held connection is released, without waiting for the job.
submit '{"plugin":"demo","job":"sleep","args":{"seconds":60},"on_interrupt":"fail"}'
long=$JOB_ID
curl -sN --max-time 1 "$CRUND_URL/v1/jobs/$long/events" >/dev/null
held=
for ((i = 0; i < $(slow 30); i++)); do
	req GET /metrics
	held=$(grep '^crund_http_held_connections ' "$HTTP_BODY_FILE" | awk '{print $2}')
	[ "$held" = 0 ] && break
	sleep 0.1
done
is "$held" 0 "a vanished stream client is released while its job still runs"
is "$(job_state "$long")" running "the job itself is unaffected"

stop_and_check_crund

# --idle-timeout: a client that connects and sends nothing, and one that
# stops half-way through its request, are both disconnected by the daemon.
start_crund --idle-timeout 1 || bail "crund did not start with --idle-timeout"
closed=$("$PY" - "$CRUND_PORT" "$(slow 10)" <<'PYEOF'
import socket, sys, time
port, limit = int(sys.argv[1]), float(sys.argv[2])
def closed_after(payload):
    s = socket.create_connection(("127.0.0.1", port))
    if payload:
        s.sendall(payload)
    s.settimeout(limit)
    t0 = time.monotonic()
    try:
        data = s.recv(4096)
    except socket.timeout:
        return "open"
    finally:
        s.close()
    return "closed" if data == b"" else "answered"
print(closed_after(b""), closed_after(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"))
PYEOF
)
is "$closed" "closed closed" "idle and stalled connections are closed after --idle-timeout"
req GET /v1/health
is "$HTTP_STATUS" 200 "the daemon still answers afterwards"
stop_and_check_crund

# Configuration: the value is checked like every other option.
crund_cmd --stream-ping 0 --listen 127.0.0.1:1
"${CRUND_CMD[@]}" >"$E2E_TMP/bad.log" 2>&1
is "$?" 2 "--stream-ping 0 is refused (exit 2)"
like "$(cat "$E2E_TMP/bad.log")" 'stream-ping' "the message names the option"
crund_cmd --idle-timeout 0 --listen 127.0.0.1:1
"${CRUND_CMD[@]}" >"$E2E_TMP/bad.log" 2>&1
is "$?" 2 "--idle-timeout 0 is refused (exit 2)"

done_testing
