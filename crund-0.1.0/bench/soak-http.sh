#!/usr/bin/env bash
# soak-http.sh — the abuse cases of tests/e2e/abuse.sh, repeated for
# minutes against one crund, checking that its RSS and open fds stay flat.
# Not run by CI (it takes minutes); run by hand after changing the HTTP
# layer:
#
#   bench/soak-http.sh [--minutes M] [--build-dir DIR]
#
# Each round: 1,200 partial requests from one address, 1,200 from three
# others (the connection limit), slowloris on the head and the body,
# clients that never read a large answer or an event stream, and a burst
# of ordinary submissions; then the daemon's RSS (VmRSS) and fd count are
# sampled with the connections closed.  The first half of the rounds is the
# warm-up (the request pool fills to its bound, malloc's arenas reach their
# high-water mark); the verdict compares the last sample with the one at
# half-time: fds must not have grown, RSS by at most --rss-slack KiB.
set -euo pipefail

TOP="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$TOP"
MINUTES=5
RSS_SLACK=2048 # KiB
while [ $# -gt 0 ]; do
	case "$1" in
	--minutes) MINUTES="$2"; shift 2 ;;
	--build-dir) BUILD="$2"; shift 2 ;;
	--rss-slack) RSS_SLACK="$2"; shift 2 ;;
	-h | --help) sed -n '2,16p' "$0"; exit 0 ;;
	*) echo "soak-http: unknown option $1" >&2; exit 2 ;;
	esac
done
PY=${PY:-python3}
ABUSE=("$PY" "$TOP/tests/e2e/abuse.py")
ulimit -n "$(ulimit -Hn)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/crund-soak.XXXXXX")
PORT=$((20000 + RANDOM % 20000))
SOCK="$TMP/crund.sock"
CRUND="$BUILD/daemon/.libs/crund"
[ -x "$CRUND" ] || CRUND="$BUILD/daemon/crund"
export LD_LIBRARY_PATH="$BUILD/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$CRUND" --listen "127.0.0.1:$PORT" --listen "unix:$SOCK" \
	--plugin-dir "$BUILD/plugins/.libs" --header-timeout 2 --body-timeout 2 \
	--grace 0 --log-level warning >"$TMP/crund.log" 2>&1 &
PID=$!
cleanup() {
	kill -TERM "$PID" 2>/dev/null || true
	wait "$PID" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
for _ in $(seq 50); do
	curl -sf -o /dev/null "http://127.0.0.1:$PORT/v1/health" && break
	sleep 0.1
done

post() { curl -sf -o "$TMP/out.json" -H 'Content-Type: application/json' --data-binary "$2" "http://127.0.0.1:$PORT$1"; }
post /v1/jobs '{"plugin":"demo","job":"sleep","args":{"seconds":3600}}'
LONG=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$TMP/out.json")
"$PY" -c 'import json; print(json.dumps({"plugin":"demo","job":"echo","args":{"value":"x"*600000}}))' >"$TMP/big.json"
post '/v1/jobs?wait=10' "@$TMP/big.json"
BIG=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$TMP/out.json")

sample() { # prints "rss_kib fds"
	local rss fds
	rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status")
	fds=$(find "/proc/$PID/fd" -mindepth 1 -maxdepth 1 | wc -l)
	echo "$rss $fds"
}

settle() { # wait (bounded) until the daemon holds at most 1 connection
	for _ in $(seq 100); do
		curl -s "http://127.0.0.1:$PORT/metrics" |
			awk '/^crund_http_connections / { exit !($2 <= 1) }' && return 0
		sleep 0.1
	done
}

end=$((SECONDS + MINUTES * 60))
round=0
samples=()
printf '%5s %8s %10s %5s %s\n' round elapsed rss_kib fds notes
while [ $SECONDS -lt $end ]; do
	round=$((round + 1))
	notes=()
	out=$("${ABUSE[@]}" flood --port "$PORT" --unix "$SOCK" --srcs 127.0.0.1 --each 1200 --probe 127.0.0.9)
	grep -q '^health_127.0.0.9=200$' <<<"$out" || notes+=("flood1-health-failed")
	out=$("${ABUSE[@]}" flood --port "$PORT" --unix "$SOCK" --srcs 127.0.0.2,127.0.0.3,127.0.0.4 --each 400 --probe 127.0.0.9)
	grep -q '^submit_unix=201:succeeded$' <<<"$out" || notes+=("flood2-unix-submit-failed")
	slow_pids=()
	for ph in head body keepalive; do
		"${ABUSE[@]}" slow --port "$PORT" --phase "$ph" --interval 0.5 --limit 10 >"$TMP/slow-$ph" &
		slow_pids+=($!)
	done
	out=$("${ABUSE[@]}" noread --port "$PORT" --count 40 --big "$BIG" --stream "$LONG" --rounds 5)
	grep -q '^rounds_ok=5 of 5$' <<<"$out" || notes+=("noread-rounds-failed")
	wait "${slow_pids[@]}"
	for ph in head body keepalive; do
		grep -q '^result=closed$' "$TMP/slow-$ph" || notes+=("slow-$ph-not-closed")
	done
	for _ in $(seq 50); do
		post '/v1/jobs?wait=5' '{"plugin":"demo","job":"noop"}' || notes+=("submit-failed")
	done
	settle
	kill -0 "$PID" || { echo "soak-http: crund died" >&2; exit 1; }
	read -r rss fds < <(sample)
	samples+=("$rss $fds")
	printf '%5d %7ds %10d %5d %s\n' "$round" "$SECONDS" "$rss" "$fds" "${notes[*]:-ok}"
done
read -r rss0 fds0 <<<"${samples[$(((round - 1) / 2))]}"
read -r rss1 fds1 < <(sample)
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^crund_(http_refused|http_timeouts|jobs_submitted)' || true
echo "after round $(((round - 1) / 2 + 1)) of $round: rss ${rss0} KiB, ${fds0} fds; at the end: rss ${rss1} KiB, ${fds1} fds"
if [ "$fds1" -gt "$fds0" ] || [ $((rss1 - rss0)) -gt "$RSS_SLACK" ]; then
	echo "soak-http: NOT flat (fds +$((fds1 - fds0)), rss +$((rss1 - rss0)) KiB)"
	exit 1
fi
echo "soak-http: flat (fds +$((fds1 - fds0)), rss +$((rss1 - rss0)) KiB over $round rounds)"
