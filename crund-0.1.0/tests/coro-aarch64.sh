#!/bin/sh
# coro-aarch64.sh — run the standalone context-switch test
# (tests/coro-switch-test.c) on aarch64 under qemu user-mode emulation, so
# the hand-written lib/switch-aarch64.S is executed even on an x86-64
# build machine.  Cross-compiles the test with lib/coro.c twice: with the
# assembly switch and with the ucontext fallback.  Prints TAP; skips when
# the cross compiler or qemu is not installed (Debian: gcc-aarch64-linux-gnu
# libc6-dev-arm64-cross qemu-user).
#
# Environment (exported by the harness): top_srcdir.
set -u

top_srcdir=${top_srcdir:-.}
CROSS_CC=${CROSS_CC:-aarch64-linux-gnu-gcc}
SYSROOT=${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu}

QEMU=
for q in qemu-aarch64 qemu-aarch64-static; do
	if command -v "$q" >/dev/null 2>&1; then
		QEMU=$q
		break
	fi
done
if ! command -v "$CROSS_CC" >/dev/null 2>&1 || [ -z "$QEMU" ]; then
	echo "1..1"
	echo "ok 1 # SKIP aarch64 cross tools not installed"
	exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/coro-aarch64.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

# A toolchain without the cross libc cannot build anything: that is a
# missing tool, not a failure of crund.
printf 'int main(void) { return 0; }\n' > "$tmp/hello.c"
if ! "$CROSS_CC" -o "$tmp/hello" "$tmp/hello.c" >/dev/null 2>&1 ||
   ! "$QEMU" -L "$SYSROOT" "$tmp/hello" >/dev/null 2>&1; then
	echo "1..1"
	echo "ok 1 # SKIP aarch64 cross tools not installed (no working cross libc or qemu sysroot)"
	exit 0
fi

# coro.c and the test include "config.h": a minimal one per variant stands
# in for the one configure writes for the host.
mkdir "$tmp/asm" "$tmp/ucontext" || exit 1
: > "$tmp/asm/config.h"
echo '#define CR_CORO_UCONTEXT 1' > "$tmp/ucontext/config.h"

CFLAGS="-std=gnu11 -O2 -g -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror"
RUN_TIMEOUT=
if command -v timeout >/dev/null 2>&1; then
	RUN_TIMEOUT="timeout 120"
fi

echo "1..4"
n=0
for variant in asm ucontext; do
	if [ "$variant" = asm ]; then
		extra="$top_srcdir/lib/switch-aarch64.S"
	else
		extra=
	fi
	n=$((n + 1))
	# shellcheck disable=SC2086  # CFLAGS and extra are word lists
	if "$CROSS_CC" $CFLAGS -I"$tmp/$variant" -I"$top_srcdir/lib" -o "$tmp/coro-switch-test-$variant" \
		"$top_srcdir/tests/coro-switch-test.c" "$top_srcdir/lib/coro.c" $extra > "$tmp/build.log" 2>&1; then
		echo "ok $n - aarch64 cross-build of coro-switch-test ($variant switch)"
	else
		echo "not ok $n - aarch64 cross-build of coro-switch-test ($variant switch)"
		sed 's/^/# /' "$tmp/build.log"
		n=$((n + 1))
		echo "not ok $n - coro-switch-test under $QEMU ($variant switch) # not built"
		continue
	fi
	n=$((n + 1))
	# shellcheck disable=SC2086
	$RUN_TIMEOUT "$QEMU" -L "$SYSROOT" "$tmp/coro-switch-test-$variant" > "$tmp/run.log" 2>&1
	rc=$?
	sed 's/^/# /' "$tmp/run.log"
	if [ "$rc" -eq 0 ]; then
		echo "ok $n - coro-switch-test under $QEMU ($variant switch)"
	else
		echo "not ok $n - coro-switch-test under $QEMU ($variant switch): exit status $rc"
	fi
done
exit 0
