# bench rules (owned by the bench area)
#
# bench/core: libcrunner's side of the peer benchmarks (bench-peers/core.py's
# workloads, same N, same JSON line); bench/run-peers.sh runs it and the
# daemon against asyncio, uvloop and libmicrohttpd through bench-peers/run.sh.
noinst_PROGRAMS += bench/core
bench_core_SOURCES = bench/core.c
bench_core_LDADD = lib/libcrunner.la

# bench/coro-switch: the bare context switch (lib/coro.c and the assembly
# switch compiled in, since their symbols are internal to the library).
noinst_PROGRAMS += bench/coro-switch
bench_coro_switch_SOURCES = bench/coro-switch.c lib/coro.c lib/coro.h
if CORO_ASM_X86_64
bench_coro_switch_SOURCES += lib/switch-x86_64.S
endif
if CORO_ASM_AARCH64
bench_coro_switch_SOURCES += lib/switch-aarch64.S
endif
bench_coro_switch_CPPFLAGS = $(AM_CPPFLAGS) -DCORO_SWITCH_KIND='"$(CORO_SWITCH)"'

# bench/http-target: the fixed-answer HTTP server bench/http-jobs.sh sends
# crund's http jobs and aiohttp's requests to (libmicrohttpd).
noinst_PROGRAMS += bench/http-target
bench_http_target_SOURCES = bench/http-target.c
bench_http_target_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS)
bench_http_target_LDADD = $(MHD_LIBS) -lpthread

# bench/spawn-floor: the machine's floor for bench/exec.sh (a bare
# posix_spawn and wait loop of the same program at the same concurrency).
noinst_PROGRAMS += bench/spawn-floor
bench_spawn_floor_SOURCES = bench/spawn-floor.c

EXTRA_DIST += bench/README.md bench/run-peers.sh bench/soak-http.sh bench/run-durable.sh \
	bench/durable.py bench/http-jobs.sh bench/http_aiohttp.py bench/exec.sh bench/exec.py \
	bench/exec_asyncio.py bench/run-pg.sh bench/pg.py
