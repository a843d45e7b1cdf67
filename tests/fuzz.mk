# fuzz targets (owned by the fuzz area), see tests/fuzz/README.md
#
# Each tests/fuzz/fuzz-NAME.c is a libFuzzer target.  In `make check` it is
# linked with tests/fuzz/replay.c, a main() that replays the committed
# corpus tests/fuzz/corpus/NAME/ plus 2000 deterministic mutations of it:
# a plain exit-status test, no clang needed.  Real fuzzing: README.md.
FUZZ_TESTS = tests/fuzz/fuzz-route tests/fuzz/fuzz-args tests/fuzz/fuzz-body \
	tests/fuzz/fuzz-config tests/fuzz/fuzz-elf tests/fuzz/fuzz-sse tests/fuzz/fuzz-kv
check_PROGRAMS += $(FUZZ_TESTS)

FUZZ_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon -I$(top_srcdir)/client \
	-I$(top_srcdir)/tests/fuzz
FUZZ_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(SQLITE_CFLAGS) $(LIBPQ_CFLAGS)
FUZZ_COMMON = tests/fuzz/replay.c tests/fuzz/fuzz.h
# The corpus dirs, read by replay.c at run time.
FUZZ_CORPUS_DIR = $(abs_top_srcdir)/tests/fuzz/corpus

tests_fuzz_fuzz_route_SOURCES = tests/fuzz/fuzz-route.c $(FUZZ_COMMON) \
	daemon/http/route.c daemon/jobs/jobs.c daemon/jobs/events.c $(STORE_SOURCES) daemon/buf.c
tests_fuzz_fuzz_route_CPPFLAGS = $(FUZZ_CPPFLAGS) -DFUZZ_CORPUS='"$(FUZZ_CORPUS_DIR)/route"'
tests_fuzz_fuzz_route_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_route_LDADD = lib/libcrunner.la $(JANSSON_LIBS) $(SQLITE_LIBS) $(LIBPQ_LIBS) -lpthread -lm

# args and body read the demo plugin's real job table: its source is
# linked in (its job bodies need libcrunner; they never run here).
tests_fuzz_fuzz_args_SOURCES = tests/fuzz/fuzz-args.c $(FUZZ_COMMON) \
	daemon/plugins/args.c plugins/demo/demo.c
tests_fuzz_fuzz_args_CPPFLAGS = $(FUZZ_CPPFLAGS) -DFUZZ_CORPUS='"$(FUZZ_CORPUS_DIR)/args"'
tests_fuzz_fuzz_args_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_args_LDADD = lib/libcrunner.la $(JANSSON_LIBS) -lm

tests_fuzz_fuzz_body_SOURCES = tests/fuzz/fuzz-body.c $(FUZZ_COMMON) \
	daemon/plugins/args.c daemon/plugins/registry.c daemon/plugins/elf.c daemon/plugins/abi.c \
	daemon/jobs/jobs.c daemon/jobs/events.c $(STORE_SOURCES) daemon/buf.c daemon/http/route.c \
	plugins/demo/demo.c
tests_fuzz_fuzz_body_CPPFLAGS = $(FUZZ_CPPFLAGS) -DFUZZ_CORPUS='"$(FUZZ_CORPUS_DIR)/body"'
tests_fuzz_fuzz_body_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_body_LDADD = lib/libcrunner.la $(JANSSON_LIBS) $(SQLITE_LIBS) $(LIBPQ_LIBS) -lpthread -ldl -lm

tests_fuzz_fuzz_config_SOURCES = tests/fuzz/fuzz-config.c $(FUZZ_COMMON) \
	daemon/settings.c daemon/log.c daemon/buf.c
tests_fuzz_fuzz_config_CPPFLAGS = $(FUZZ_CPPFLAGS) -DFUZZ_CORPUS='"$(FUZZ_CORPUS_DIR)/config"'
tests_fuzz_fuzz_config_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_config_LDADD = $(JANSSON_LIBS) -lm

tests_fuzz_fuzz_elf_SOURCES = tests/fuzz/fuzz-elf.c $(FUZZ_COMMON) \
	daemon/plugins/elf.c daemon/plugins/abi.c
tests_fuzz_fuzz_elf_CPPFLAGS = $(FUZZ_CPPFLAGS) -DFUZZ_CORPUS='"$(FUZZ_CORPUS_DIR)/elf"'
tests_fuzz_fuzz_elf_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_elf_LDADD =

tests_fuzz_fuzz_sse_SOURCES = tests/fuzz/fuzz-sse.c $(FUZZ_COMMON) client/sse.c
tests_fuzz_fuzz_sse_CPPFLAGS = $(FUZZ_CPPFLAGS) -DFUZZ_CORPUS='"$(FUZZ_CORPUS_DIR)/sse"'
tests_fuzz_fuzz_sse_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_sse_LDADD = $(JANSSON_LIBS)

tests_fuzz_fuzz_kv_SOURCES = tests/fuzz/fuzz-kv.c $(FUZZ_COMMON) \
	client/args.c client/format.c common/rfc3339.c daemon/plugins/args.c
tests_fuzz_fuzz_kv_CPPFLAGS = $(FUZZ_CPPFLAGS) -DFUZZ_CORPUS='"$(FUZZ_CORPUS_DIR)/kv"'
tests_fuzz_fuzz_kv_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_kv_LDADD = $(JANSSON_LIBS) -lm

EXTRA_DIST += tests/fuzz/README.md tests/fuzz/build-libfuzzer.sh tests/fuzz/corpus
