#!/usr/bin/env bash
# Run the peer benchmarks (bench-peers/run.sh: asyncio, uvloop, aiohttp,
# libmicrohttpd) with our runtime core (bench/core) and our daemon (crund)
# as column "c", in the same invocation, so the tables compare like with like.
#
#   bench/run-peers.sh [wrapper options] [run.sh options]
#
# Wrapper options:
#   --build-dir DIR  build of ours to use (default: $CRUND_BENCH_BUILD, else
#                    the source tree when it is configured in place, else
#                    _build-bench in the source tree, configured without
#                    sanitizers at the default -O2 and built here)
#   --peers DIR      the bench-peers folder (default: $CRUND_BENCH_PEERS, else
#                    ../shared/bench-peers next to the source tree)
#   --no-build       use the build dir as it is
#   --name NAME      column name (default: c)
# Environment: CRUND_BENCH_SERVER_ARGS replaces the daemon's extra flags
# (default: limits lifted to the reference server's shape, see below).
# Everything else goes to run.sh, e.g.
#   bench/run-peers.sh --only core --runs 1
#   bench/run-peers.sh --only http --runs 1 --no-gearman
# --core is passed when run.sh will run the core part, --server when it will
# run the http part (both when no --only is given).  run.sh wants the paths
# relative to its own folder; they are computed here.
set -euo pipefail

TOP="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${CRUND_BENCH_BUILD:-}"
PEERS="${CRUND_BENCH_PEERS:-$TOP/../shared/bench-peers}"
DO_BUILD=1
NAME=c
PASS=()
ONLY=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) BUILD="$2"; shift 2 ;;
    --peers) PEERS="$2"; shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    --name) NAME="$2"; shift 2 ;;
    --only) ONLY+=("$2"); PASS+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) PASS+=("$1"); shift ;;
  esac
done
want() { # section: as run.sh decides it
  [ ${#ONLY[@]} -eq 0 ] && return 0
  local s; for s in "${ONLY[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1
}

if [ -z "$BUILD" ]; then
  # a source tree configured in place (./bootstrap) cannot host a VPATH build
  if [ -f "$TOP/config.status" ]; then BUILD="$TOP"; else BUILD="$TOP/_build-bench"; fi
fi
if [ ! -x "$PEERS/run.sh" ]; then
  echo "run-peers: no run.sh in $PEERS (use --peers DIR)" >&2; exit 1
fi
PEERS="$(cd "$PEERS" && pwd)"

if [ "$DO_BUILD" = 1 ]; then
  if [ ! -f "$BUILD/Makefile" ]; then
    if [ ! -x "$TOP/configure" ]; then
      echo "run-peers: $TOP/configure missing; run ./bootstrap first" >&2; exit 1
    fi
    mkdir -p "$BUILD"
    (cd "$BUILD" && "$TOP/configure" -q)
  fi
  want core && make -s -C "$BUILD" -j2 bench/core
  # the daemon and its plugins: everything ("all") builds them
  want http && make -s -C "$BUILD" -j2 all
fi
BUILD="$(cd "$BUILD" && pwd)"
REL="$(realpath --relative-to="$PEERS" "$BUILD")"

ARGS=()
if want core; then
  [ -x "$BUILD/bench/core" ] || { echo "run-peers: $BUILD/bench/core not built" >&2; exit 1; }
  ARGS+=(--core "$NAME=$REL/bench/core")
fi
if want http; then
  [ -x "$BUILD/daemon/crund" ] || { echo "run-peers: $BUILD/daemon/crund not built" >&2; exit 1; }
  # The reference server (server.py) has no job limits and keeps every job
  # record for its whole life; crund's defaults (1024 running, 10,000
  # queued, 10,000 retained) would turn D3's 50,000 held jobs into queued
  # ones or 429s and evict D1's records, so lift them to the same shape.
  # --grace 0: run.sh stops each server with SIGTERM; draining 50,000 sleep
  # jobs would only make it wait.  The libtool wrapper execs the real
  # binary, so the pid run.sh reads is the server's.  --store memory: the
  # peers here keep jobs in memory too, and a shared default store would
  # grow from one server start to the next (bench/run-durable.sh measures
  # the durable stores).
  SERVER_ARGS="${CRUND_BENCH_SERVER_ARGS:---store memory: --max-running 1000000 --max-queued 1000000 --retain-jobs 10000000 --retain-seconds 86400 --grace 0 --log-level warning}"
  ARGS+=(--server "$NAME=$REL/daemon/crund --listen 127.0.0.1:{PORT} --plugin-dir $REL/plugins/.libs $SERVER_ARGS")
fi
echo "run-peers: $PEERS/run.sh ${ARGS[*]} ${PASS[*]}" >&2
exec "$PEERS/run.sh" "${ARGS[@]}" "${PASS[@]}"
