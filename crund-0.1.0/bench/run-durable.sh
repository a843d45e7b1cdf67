#!/usr/bin/env bash
# The durable-store benchmarks (issue 8): crund's D1/D2 (and sequential
# round trips) with --store memory:, sqlite --sync normal and sqlite --sync
# full, and the durable peers of bench-peers/durable (Celery, RQ,
# graphile-worker, pg-boss) with their own clients and workers, in one
# invocation (~3-5 minutes), as one JSON document.  bench/durable.py does
# the measuring; its docstring defines every figure.
#
#   bench/run-durable.sh [wrapper options] [durable.py run options]
#
# Wrapper options:
#   --build-dir DIR  build of ours to use (default: $CRUND_BENCH_BUILD; else
#                    the source tree itself when it is configured, else
#                    _build-bench, configured without sanitizers and built here)
#   --peers DIR      the bench-peers folder (default: $CRUND_BENCH_PEERS, else
#                    ../shared/bench-peers next to the source tree)
#   --no-build       use the build as it is
#   --out FILE       also write the JSON there (default:
#                    durable-<UTC stamp>.json in $TMPDIR or /tmp)
# durable.py options, e.g. --no-peers, --only-peers, --seconds 8,
# --peer-parts redis|pg, --keep-tmp; see `bench/durable.py run --help`.
#   bench/durable.py summarize A.json B.json C.json   # median [min..max] tables
# Needs wrk, perf (syscall tracepoints and a uprobe; run as root) and, for
# the peers, redis-server + python3-celery/-redis/-rq and PostgreSQL 15 +
# node (node_modules is installed with `npm ci` into a writable copy of
# bench-peers/durable, /tmp/crund-durable-peers).  What is missing is
# reported as "skipped" with the reason.
set -euo pipefail

TOP="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${CRUND_BENCH_BUILD:-}"
PEERS="${CRUND_BENCH_PEERS:-$TOP/../shared/bench-peers}"
DO_BUILD=1
OUT=""
PASS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) BUILD="$2"; shift 2 ;;
    --peers) PEERS="$2"; shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) PASS+=("$1"); shift ;;
  esac
done
if [ -z "$BUILD" ]; then
  # a source tree configured in place cannot also host a VPATH build
  if [ -f "$TOP/config.status" ]; then BUILD="$TOP"; else BUILD="$TOP/_build-bench"; fi
fi
[ -d "$PEERS/durable" ] || { echo "run-durable: no durable/ in $PEERS (use --peers DIR)" >&2; exit 1; }
PEERS="$(cd "$PEERS" && pwd)"
command -v wrk >/dev/null || { echo "run-durable: wrk is needed (apt-get install wrk)" >&2; exit 1; }

if [ "$DO_BUILD" = 1 ]; then
  if [ ! -f "$BUILD/Makefile" ]; then
    [ -x "$TOP/configure" ] || { echo "run-durable: $TOP/configure missing; run ./bootstrap first" >&2; exit 1; }
    mkdir -p "$BUILD"
    (cd "$BUILD" && "$TOP/configure" -q)
  fi
  if grep -q -- '-fsanitize' "$BUILD/Makefile"; then
    echo "run-durable: $BUILD is a sanitizer build; use another --build-dir" >&2; exit 1
  fi
  make -s -C "$BUILD" -j2 daemon/crund plugins/demo.la >/dev/null
fi
BUILD="$(cd "$BUILD" && pwd)"
[ -x "$BUILD/daemon/crund" ] || { echo "run-durable: $BUILD/daemon/crund not built" >&2; exit 1; }

# node_modules for graphile-worker and pg-boss, in a writable copy of the
# peers' folder (their package-lock.json; the peers' README says the same)
WORK=/tmp/crund-durable-peers
if command -v npm >/dev/null && [ ! -d "$WORK/node_modules/pg-boss" ]; then
  mkdir -p "$WORK" && cp -r "$PEERS/durable/." "$WORK/" && chmod -R u+w "$WORK"
  echo "run-durable: npm ci in $WORK (graphile-worker, pg-boss)" >&2
  (cd "$WORK" && timeout 600 npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
    echo "run-durable: npm ci failed; the PostgreSQL peers will be skipped" >&2
fi

STAMP=$(date -u +%Y%m%d-%H%M%S)
[ -n "$OUT" ] || OUT="${TMPDIR:-/tmp}/durable-$STAMP.json"
COMMIT=$(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$TOP" diff --quiet HEAD -- daemon lib plugins 2>/dev/null || COMMIT="$COMMIT+dirty"
echo "run-durable: crund $BUILD/daemon/crund ($COMMIT), peers $PEERS, JSON -> $OUT" >&2
exec timeout -s INT 600 /usr/bin/python3 "$TOP/bench/durable.py" run \
  --crund "$BUILD/daemon/crund" --plugin-dir "$BUILD/plugins/.libs" --peers "$PEERS" \
  --peers-work "$WORK" --out "$OUT" --commit "$COMMIT" "${PASS[@]}"
