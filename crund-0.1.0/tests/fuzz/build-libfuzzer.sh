#!/bin/sh
# build-libfuzzer.sh — build the fuzz targets with clang's libFuzzer,
# ASan and UBSan, for real (coverage-guided) fuzzing; see README.md.
#
#   tests/fuzz/build-libfuzzer.sh BUILDDIR [OUTDIR]
#
# BUILDDIR is a configured build tree of crund (its config.h is used) in
# which lib/libcrunner.la is built (`make lib/libcrunner.la`); the targets
# that need the runtime (args, body, elf: the demo plugin's table and
# plugins.c) link its shared library, uninstrumented, which is fine: none
# of its code runs.  OUTDIR defaults to BUILDDIR/fuzz-bin.
# CC (default clang) and FUZZ_CFLAGS can be overridden.
set -eu

if [ $# -lt 1 ]; then
	echo "usage: $0 BUILDDIR [OUTDIR]" >&2
	exit 2
fi
builddir=$(cd "$1" && pwd)
outdir=${2:-$builddir/fuzz-bin}
srcdir=$(cd "$(dirname "$0")/../.." && pwd)
cc=${CC:-clang}
cflags=${FUZZ_CFLAGS:--g -O1 -fno-omit-frame-pointer}
san="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"

if [ ! -f "$builddir/config.h" ]; then
	echo "$0: $builddir/config.h missing: configure the build dir first" >&2
	exit 2
fi
mkdir -p "$outdir"

jansson_cflags=$(pkg-config --cflags jansson 2>/dev/null || true)
jansson_libs=$(pkg-config --libs jansson 2>/dev/null || echo -ljansson)
crunner="-L$builddir/lib/.libs -lcrunner -Wl,-rpath,$builddir/lib/.libs"

# build NAME SOURCES-AND-LIBS...: tests/fuzz/fuzz-NAME.c with the same
# defines as the Makefile (AM_CPPFLAGS; the plugin dir is never read).
# The flag variables hold several words each: split on purpose.
build() {
	name=$1
	shift
	echo "  CC+LD    $outdir/fuzz-$name"
	# shellcheck disable=SC2086
	$cc $cflags $san -I"$srcdir/lib" -I"$srcdir/include" -I"$builddir" -I"$srcdir/daemon" \
		-I"$srcdir/client" -I"$srcdir/tests/fuzz" -DCRUND_PLUGIN_DIR='"/nonexistent"' \
		-DCRUND_SYSCONFDIR='"/etc"' $jansson_cflags \
		-o "$outdir/fuzz-$name" "$srcdir/tests/fuzz/fuzz-$name.c" "$@"
}

cd "$srcdir"
need_crunner() {
	if [ ! -e "$builddir/lib/.libs/libcrunner.so" ]; then
		echo "$0: build lib/libcrunner.la in $builddir first" >&2
		exit 2
	fi
}
need_crunner
# The sources of each target as in tests/fuzz.mk.
# shellcheck disable=SC2086
{
	build route daemon/http/route.c daemon/jobs/jobs.c daemon/buf.c $jansson_libs -lm
	build args daemon/plugins/args.c plugins/demo/demo.c $crunner $jansson_libs -lm
	build body daemon/plugins/args.c daemon/plugins/registry.c daemon/jobs/jobs.c daemon/buf.c \
		daemon/http/route.c plugins/demo/demo.c $crunner $jansson_libs -ldl -lm
	build config daemon/settings.c daemon/log.c -lm
	build elf daemon/plugins/registry.c daemon/plugins/args.c $crunner $jansson_libs -ldl -lm
	build sse client/sse.c $jansson_libs
	build kv client/args.c client/format.c daemon/plugins/args.c $jansson_libs -lm
}
echo "built in $outdir"
