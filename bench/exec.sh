#!/usr/bin/env bash
# exec jobs of /bin/true through crund (1,000 jobs, 64 at once) beside
# asyncio's create_subprocess_exec doing the same (bench/exec_asyncio.py),
# in one invocation; prints JSON (bench/exec.py has the definitions).
#
#   bench/exec.sh [--build-dir DIR] [exec.py options: --runs 3 --jobs 1000
#                  --concurrency 64 --argv /bin/true]
# The build dir (default: the source tree when configured in place) must
# have daemon/crund and plugins/exec.la built (make); its bench/spawn-floor,
# when built, adds the machine's floor (a bare spawn-and-wait loop in C).  Numbers from a
# sanitizer build are not the daemon's: configure without them to measure.
set -euo pipefail
TOP="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$TOP"
if [ "${1:-}" = --build-dir ]; then BUILD="$2"; shift 2; fi
CRUND="$BUILD/daemon/.libs/crund"
[ -x "$CRUND" ] || CRUND="$BUILD/daemon/crund"
[ -e "$BUILD/plugins/.libs/exec.so" ] || { echo "exec.sh: build $BUILD first (make)" >&2; exit 1; }
FLOOR=()
[ -x "$BUILD/bench/spawn-floor" ] && FLOOR=(--floor "$BUILD/bench/spawn-floor")
exec python3 "$TOP/bench/exec.py" --crund "$CRUND" --plugin-dir "$BUILD/plugins/.libs" \
	--lib-dir "$BUILD/lib/.libs" "${FLOOR[@]}" "$@"
