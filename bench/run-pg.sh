#!/usr/bin/env bash
# crund on one PostgreSQL with 1, 2 and 3 nodes beside graphile-worker and
# pg-boss (bench-peers/durable) on the same server, in one invocation
# (~2-4 minutes), as one JSON document on stdout.  bench/pg.py measures;
# its docstring defines every figure.
#
#   bench/run-pg.sh [--peers DIR] [--build-dir DIR] [pg.py options]
#
#   --peers DIR      the bench-peers folder (default: $CRUND_BENCH_PEERS, else
#                    ../shared/bench-peers next to the source tree)
#   --build-dir DIR  a build of crund (default: the source tree, configured)
# pg.py options: --seconds S (wrk per node, default 5), --jobs N (the
# peers' W1/W2 count, default 5000), --nodes 1,2,3, --no-peers.
# Needs wrk, psql and the PostgreSQL server; the peers need node (their
# node_modules are installed with `npm ci` into a writable copy,
# $TMPDIR/crund-durable-peers).  Run it on an idle machine: the figures
# are CPU-bound.
set -euo pipefail

TOP="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$TOP"
PEERS="${CRUND_BENCH_PEERS:-$TOP/../shared/bench-peers}"
PASS=()
while [ $# -gt 0 ]; do
	case "$1" in
	--peers)
		PEERS="$2"
		shift 2
		;;
	--build-dir)
		BUILD="$2"
		shift 2
		;;
	-h | --help)
		sed -n '2,18p' "$0"
		exit 0
		;;
	*)
		PASS+=("$1")
		shift
		;;
	esac
done
command -v wrk >/dev/null || {
	echo "run-pg: wrk is needed (apt-get install wrk)" >&2
	exit 1
}
[ -x "$BUILD/daemon/crund" ] || {
	echo "run-pg: no crund in $BUILD (./bootstrap && make first)" >&2
	exit 1
}
if grep -q -- '-fsanitize' "$BUILD/Makefile" 2>/dev/null; then
	echo "run-pg: $BUILD is a sanitizer build; benchmark a plain one" >&2
	exit 1
fi
exec /usr/bin/python3 "$TOP/bench/pg.py" --crund "$BUILD/daemon/crund" \
	--plugin-dir "$BUILD/plugins/.libs" --peers "$(cd "$PEERS" && pwd)" "${PASS[@]}"
