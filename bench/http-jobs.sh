#!/usr/bin/env bash
# bench/http-jobs.sh — requests per second of crund's `http` jobs beside
# aiohttp's client (bench/http_aiohttp.py) making the same requests at the
# same concurrency, and memory per in-flight request, in one invocation.
# Prints one JSON object (every run, medians, ranges, ratios) on stdout;
# progress on stderr.  Not a test: nothing here passes or fails on speed.
#
#   bench/http-jobs.sh [--runs N] [--duration S] [--concurrency C]
#                      [--inflight N] [--build-dir DIR]
#
# Per run, each side against the same target (bench/http-target: a
# libmicrohttpd server answering every request with 200 and a 30-byte JSON
# body):
#   crund   a fresh crund (memory store); wrk -t1 -cC (pinned to CPU 1, as
#           in bench-peers) POSTs {"plugin":"http","job":"request",...}
#           to /v1/jobs?wait=10 for S seconds: each request is a job
#           submitted, its HTTP request made, its result answered.
#           rps = jobs that answered "succeeded" per second; server CPU
#           per job from /proc/PID/stat.
#   aiohttp C workers on one ClientSession GET the target for S seconds
#           and parse each JSON answer.
#   memory  N requests in flight at once to a server that accepts
#           connections but never answers: crund's VmRSS growth per
#           running http job (fresh crund, N jobs submitted, all running),
#           and aiohttp's per in-flight request.
# The crund side does more per request than the aiohttp side (an API
# request in, a job record, a result out), on a 2-CPU machine where wrk,
# crund and the target share the CPUs.
set -euo pipefail

TOP="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD=
RUNS=3
DUR=10
CONC=64
INFLIGHT=1000
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) RUNS=$2; shift 2 ;;
	--duration) DUR=$2; shift 2 ;;
	--concurrency) CONC=$2; shift 2 ;;
	--inflight) INFLIGHT=$2; shift 2 ;;
	--build-dir) BUILD=$2; shift 2 ;;
	-h | --help) sed -n '2,30p' "$0"; exit 0 ;;
	*) echo "http-jobs: unknown option $1" >&2; exit 2 ;;
	esac
done
PY=/usr/bin/python3
command -v wrk >/dev/null || { echo "http-jobs: wrk is needed (apt-get install wrk)" >&2; exit 1; }
"$PY" -c 'import aiohttp' 2>/dev/null ||
	{ echo "http-jobs: $PY cannot import aiohttp (apt-get install python3-aiohttp)" >&2; exit 1; }

if [ -z "$BUILD" ]; then
	# a tree configured in place (./bootstrap) is used as it is; else a
	# -O2 build without sanitizers in _build-bench
	if [ -f "$TOP/config.status" ]; then BUILD=$TOP; else BUILD=$TOP/_build-bench; fi
fi
if [ ! -f "$BUILD/Makefile" ]; then
	mkdir -p "$BUILD"
	(cd "$BUILD" && "$TOP/configure" -q >/dev/null)
fi
if grep -q -- '-fsanitize' "$BUILD/Makefile"; then
	echo "http-jobs: $BUILD is a sanitizer build; use --build-dir with a plain one" >&2
	exit 1
fi
make -C "$BUILD" -s -j2 daemon/crund plugins/http.la bench/http-target >&2

CRUND=$BUILD/daemon/crund
CRUND_ENV=()
if [ -x "$BUILD/daemon/.libs/crund" ]; then # the real binary, not libtool's wrapper (its pid's RSS)
	CRUND=$BUILD/daemon/.libs/crund
	CRUND_ENV=(env "LD_LIBRARY_PATH=$BUILD/lib/.libs")
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/http-jobs.XXXXXX")
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { # URL: until something answers (bounded, 10 s)
	local i
	for ((i = 0; i < 100; i++)); do
		curl -s -o /dev/null --max-time 1 "$1" && return 0
		sleep 0.1
	done
	echo "http-jobs: nothing answers at $1" >&2
	exit 1
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# the target, and a server that accepts and never answers
TP=$(free_port)
"$BUILD/bench/http-target" "$TP" &
PIDS+=($!)
wait_http "http://127.0.0.1:$TP/"
"$PY" - >"$TMP/hole.port" <<'EOF' &
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(4096)  # the kernel completes the handshakes; nobody ever accepts
print(s.getsockname()[1], flush=True)
time.sleep(86400)
EOF
PIDS+=($!)
for ((i = 0; i < 50; i++)); do [ -s "$TMP/hole.port" ] && break; sleep 0.1; done
HP=$(cat "$TMP/hole.port")

CRUND_PID=
start_crund() {
	CP=$(free_port)
	"${CRUND_ENV[@]}" "$CRUND" --listen "127.0.0.1:$CP" --plugin-dir "$BUILD/plugins/.libs" \
		--store memory: --log-level warning --grace 0 --max-queued 100000 \
		--retain-jobs 1000 >"$TMP/crund.log" 2>&1 &
	CRUND_PID=$!
	PIDS+=("$CRUND_PID")
	wait_http "http://127.0.0.1:$CP/v1/health"
}
stop_crund() {
	kill "$CRUND_PID" 2>/dev/null || true
	wait "$CRUND_PID" 2>/dev/null || true
}

cat >"$TMP/jobs.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"plugin":"http","job":"request","args":{"url":"http://127.0.0.1:$TP/"}}'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; bad = 0 end
function response(status, headers, body)
  if status == 201 and string.find(body, '"state":"succeeded"', 1, true) then ok = ok + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); b = b + t:get("bad") end
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"succeeded":%d,"not_succeeded":%d,"socket_errors":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, o, b, e.connect + e.read + e.write + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99)))
end
EOF

RESULTS=$TMP/results.jsonl
HZ=$(getconf CLK_TCK)
for ((run = 1; run <= RUNS; run++)); do
	echo "http-jobs: run $run/$RUNS: crund" >&2
	start_crund
	# warm-up (connections, pages), outside the measurement
	taskset -c 1 wrk -t1 -c"$CONC" -d1s --timeout 10s -s "$TMP/jobs.lua" \
		"http://127.0.0.1:$CP/v1/jobs?wait=10" >/dev/null
	c0=$(cpu_ticks "$CRUND_PID")
	taskset -c 1 wrk -t1 -c"$CONC" -d"${DUR}s" --timeout 10s -s "$TMP/jobs.lua" \
		"http://127.0.0.1:$CP/v1/jobs?wait=10" >"$TMP/wrk.txt"
	c1=$(cpu_ticks "$CRUND_PID")
	stop_crund
	w=$(sed -n 's/^WRKJSON //p' "$TMP/wrk.txt")
	"$PY" -c 'import json, sys
w = json.loads(sys.argv[1]); secs = w["duration_us"] / 1e6
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
w.update(kind="rate", client="crund", run=int(sys.argv[5]), seconds=round(secs, 3),
         rps=round(w["succeeded"] / secs, 1),
         server_cpu_us_per_job=round(cpu * 1e6 / max(w["succeeded"], 1), 1))
print(json.dumps(w))' "$w" "$c0" "$c1" "$HZ" "$run" >>"$RESULTS"

	echo "http-jobs: run $run/$RUNS: aiohttp" >&2
	"$PY" "$TOP/bench/http_aiohttp.py" rate --url "http://127.0.0.1:$TP/" \
		--concurrency "$CONC" --duration "$DUR" |
		"$PY" -c 'import json, sys; d = json.loads(sys.stdin.read()); d.update(kind="rate", run=int(sys.argv[1])); print(json.dumps(d))' "$run" >>"$RESULTS"

	echo "http-jobs: run $run/$RUNS: memory, $INFLIGHT in flight" >&2
	start_crund
	curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
		--data-binary "{\"plugin\":\"http\",\"job\":\"request\",\"args\":{\"url\":\"http://127.0.0.1:$TP/\"}}" \
		"http://127.0.0.1:$CP/v1/jobs?wait=10"
	sleep 0.5
	before=$(rss_kb "$CRUND_PID")
	"$PY" - "$CP" "$HP" "$INFLIGHT" <<'EOF'
import http.client, json, sys
port, hole, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
body = json.dumps({"plugin": "http", "job": "request",
                   "args": {"url": "http://127.0.0.1:%d/" % hole, "timeout": 600}})
for _ in range(n):
    c.request("POST", "/v1/jobs", body, {"Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    assert r.status == 201, r.status
EOF
	running=0
	for ((i = 0; i < 100; i++)); do
		running=$(curl -s "http://127.0.0.1:$CP/metrics" | awk '/^crund_jobs_running /{print $2}')
		[ "$running" -ge "$INFLIGHT" ] && break
		sleep 0.1
	done
	sleep 1
	held=$(rss_kb "$CRUND_PID")
	stop_crund
	"$PY" -c 'import json, sys
b, h, n, r, run = map(int, sys.argv[1:6])
print(json.dumps({"kind": "memory", "client": "crund", "run": run, "n": n, "running": r,
                  "rss_before_kb": b, "rss_held_kb": h, "bytes_per_request": round((h - b) * 1024 / n)}))' \
		"$before" "$held" "$INFLIGHT" "$running" "$run" >>"$RESULTS"
	"$PY" "$TOP/bench/http_aiohttp.py" inflight --url "http://127.0.0.1:$HP/" --n "$INFLIGHT" |
		"$PY" -c 'import json, sys; d = json.loads(sys.stdin.read()); d.update(kind="memory", run=int(sys.argv[1])); print(json.dumps(d))' "$run" >>"$RESULTS"
done

"$PY" - "$RESULTS" "$CONC" "$DUR" "$INFLIGHT" "$(nproc)" "$(curl -V | head -n 1)" <<'EOF'
import json, statistics, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
def stat(kind, client, key):
    v = [r[key] for r in recs if r["kind"] == kind and r["client"] == client]
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "values": v}
rc, ra = stat("rate", "crund", "rps"), stat("rate", "aiohttp", "rps")
mc, ma = stat("memory", "crund", "bytes_per_request"), stat("memory", "aiohttp", "bytes_per_request")
per_run = [c["rps"] / a["rps"] for c in recs if c["kind"] == "rate" and c["client"] == "crund"
           for a in recs if a["kind"] == "rate" and a["client"] == "aiohttp" and a["run"] == c["run"]]
print(json.dumps({
    "bench": "http-jobs", "concurrency": int(sys.argv[2]), "duration_s": float(sys.argv[3]),
    "inflight": int(sys.argv[4]), "cpus": int(sys.argv[5]), "curl": sys.argv[6],
    "rps": {"crund_http_jobs": rc, "aiohttp_client": ra,
            "ratio_of_medians": round(rc["median"] / ra["median"], 2),
            "ratio_per_run": [round(x, 2) for x in per_run]},
    "crund_server_cpu_us_per_job": stat("rate", "crund", "server_cpu_us_per_job"),
    "bytes_per_inflight_request": {"crund_http_job": mc, "aiohttp_request": ma},
    "records": recs}, indent=1))
EOF
