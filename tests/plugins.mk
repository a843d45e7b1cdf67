# plugins test suites
if HAVE_CHECK
# Fixture plugins: each broken in one way (see the comment atop each
# file), plus the guide's example.  check_LTLIBRARIES are built by `make
# check` only; -rpath makes libtool build a shared module although it is
# never installed.
PLUGIN_FIXTURE_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared -rpath /nowhere
PLUGIN_FIXTURE_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
PLUGIN_FIXTURES = tests/plugins/bad-magic.la tests/plugins/newer-major.la \
	tests/plugins/newer-minor.la tests/plugins/no-symbol.la tests/plugins/too-small.la \
	tests/plugins/bad-run.la tests/plugins/bad-default.la tests/plugins/ctor.la \
	tests/plugins/commands.la tests/plugins/init-fail.la tests/plugins/awaits.la \
	tests/plugins/abi-1-0.la tests/plugins/abi-wide.la tests/plugins/services.la \
	examples/plugin-hello/hello.la
check_LTLIBRARIES += $(PLUGIN_FIXTURES)
tests_plugins_bad_magic_la_SOURCES = tests/plugins/bad-magic.c
tests_plugins_bad_magic_la_CFLAGS = $(PLUGIN_FIXTURE_CFLAGS)
tests_plugins_bad_magic_la_LDFLAGS = $(PLUGIN_FIXTURE_LDFLAGS)
tests_plugins_newer_major_la_SOURCES = tests/plugins/newer-major.c
tests_plugins_newer_major_la_CFLAGS = $(PLUGIN_FIXTURE_CFLAGS)
tests_plugins_newer_major_la_LDFLAGS = $(PLUGIN_FIXTURE_LDFLAGS)
tests_plugins_newer_minor_la_SOURCES = tests/plugins/newer-minor.c
tests_plugins_newer_minor_la_CFLAGS = $(PLUGIN_FIXTURE_CFLAGS)
tests_plugins_newer_minor_la_LDFLAGS = $(PLUGIN_FIXTURE_LDFLAGS)
tests_plugins_no_symbol_la_SOURCES = tests/plugins/no-symbol.c
tests_plugins_no_symbol_la_CFLAGS = $(PLUGIN_FIXTURE_CFLAGS)
tests_plugins_no_symbol_la_LDFLAGS = $(PLUGIN_FIXTURE_LDFLAGS)
tests_plugins_too_small_la_SOURCES = tests/plugins/too-small.c
tests_plugins_too_small_la_CFLAGS = $(PLUGIN_FIXTURE_CFLAGS)
tests_plugins_too_small_la_LDFLAGS = $(PLUGIN_FIXTURE_LDFLAGS)
tests_plugins_bad_run_la_SOURCES = tests/plugins/bad-run.c
tests_plugins_bad_run_la_CFLAGS = $(PLUGIN_FIXTURE_CFLAGS)
tests_plugins_bad_run_la_LDFLAGS = $(PLUGIN_FIXTURE_LDFLAGS)
tests_plugins_bad_default_la_SOURCES = tests/plugins/bad-default.c
tests_plugins_bad_default_la_CFLAGS = $(PLUGIN_FIXTURE_CFLAGS)
tests_plugins_bad_default_la_LDFLAGS = $(PLUGIN_FIXTURE_LDFLAGS)
tests_plugins_ctor_la_SOURCES = tests/plugins/ctor.c
tests_plugins_ctor_la_CFLAGS = $(PLUGIN_FIXTURE_CFLAGS)
# Old-style DT_HASH symbol hash, so the loader's PT_DYNAMIC path is
# tested with both hash tables (the others have DT_GNU_HASH).
tests_plugins_ctor_la_LDFLAGS = $(PLUGIN_FIXTURE_LDFLAGS) -Wl,--hash-style=sysv
tests_plugins_commands_la_SOURCES = tests/plugins/commands.c
tests_plugins_commands_la_CFLAGS = $(PLUGIN_FIXTURE_CFLAGS)
tests_plugins_commands_la_LDFLAGS = $(PLUGIN_FIXTURE_LDFLAGS)
tests_plugins_init_fail_la_SOURCES = tests/plugins/init-fail.c
tests_plugins_init_fail_la_CFLAGS = $(PLUGIN_FIXTURE_CFLAGS)
tests_plugins_init_fail_la_LDFLAGS = $(PLUGIN_FIXTURE_LDFLAGS)
tests_plugins_awaits_la_SOURCES = tests/plugins/awaits.c
tests_plugins_awaits_la_CFLAGS = $(PLUGIN_FIXTURE_CFLAGS)
tests_plugins_awaits_la_LDFLAGS = $(PLUGIN_FIXTURE_LDFLAGS)
tests_plugins_awaits_la_LIBADD = lib/libcrunner.la
# The ABI layout fixtures: the same jobs (abi-fixture.h) in the ABI 1.0
# layout and in a layout with fields appended.
tests_plugins_abi_1_0_la_SOURCES = tests/plugins/abi-1-0.c tests/plugins/abi-fixture.h
tests_plugins_abi_1_0_la_CFLAGS = $(PLUGIN_FIXTURE_CFLAGS)
tests_plugins_abi_1_0_la_LDFLAGS = $(PLUGIN_FIXTURE_LDFLAGS)
tests_plugins_abi_1_0_la_LIBADD = $(JANSSON_LIBS)
tests_plugins_abi_wide_la_SOURCES = tests/plugins/abi-wide.c tests/plugins/abi-fixture.h
tests_plugins_abi_wide_la_CFLAGS = $(PLUGIN_FIXTURE_CFLAGS)
tests_plugins_abi_wide_la_LDFLAGS = $(PLUGIN_FIXTURE_LDFLAGS)
tests_plugins_abi_wide_la_LIBADD = $(JANSSON_LIBS)
tests_plugins_services_la_SOURCES = tests/plugins/services.c
tests_plugins_services_la_CFLAGS = $(PLUGIN_FIXTURE_CFLAGS)
tests_plugins_services_la_LDFLAGS = $(PLUGIN_FIXTURE_LDFLAGS)
tests_plugins_services_la_LIBADD = $(JANSSON_LIBS)
examples_plugin_hello_hello_la_SOURCES = examples/plugin-hello/hello.c
examples_plugin_hello_hello_la_CFLAGS = $(PLUGIN_FIXTURE_CFLAGS)
examples_plugin_hello_hello_la_LDFLAGS = $(PLUGIN_FIXTURE_LDFLAGS)
examples_plugin_hello_hello_la_LIBADD = lib/libcrunner.la $(JANSSON_LIBS)

# test-plugins: the loader (ELF pre-check, refusals, security, JSON
# views), init/fini as coroutines, and the demo plugin's jobs driven
# through a fake host inside cr_run().
PLUGIN_TESTS += tests/test-plugins tests/test-args
check_PROGRAMS += tests/test-plugins tests/test-args
tests_test_plugins_SOURCES = tests/test-plugins.c daemon/plugins/registry.c daemon/plugins/elf.c \
	daemon/plugins/abi.c daemon/plugins/args.c daemon/plugins/plugins.h
tests_test_plugins_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon \
	-DTEST_BUILDDIR='"$(abs_top_builddir)"'
tests_test_plugins_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(JANSSON_CFLAGS)
tests_test_plugins_LDADD = lib/libcrunner.la $(CHECK_LIBS) $(JANSSON_LIBS)
# The suite loads these; make sure they are built before it runs.
EXTRA_tests_test_plugins_DEPENDENCIES = plugins/demo.la $(PLUGIN_FIXTURES)

# abi-e2e: a real crund (tests/e2e/lib.sh) loads the ABI layout fixtures
# and shows and runs their jobs through the API.
PLUGIN_TESTS += tests/plugins/abi-e2e.sh tests/plugins/services-e2e.sh \
	tests/plugins/lifecycle-e2e.sh
EXTRA_DIST += tests/plugins/abi-e2e.sh tests/plugins/services-e2e.sh \
	tests/plugins/lifecycle-e2e.sh

tests_test_args_SOURCES = tests/test-args.c daemon/plugins/args.c daemon/plugins/plugins.h
tests_test_args_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon
tests_test_args_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(JANSSON_CFLAGS)
tests_test_args_LDADD = $(CHECK_LIBS) $(JANSSON_LIBS)
# test-curl: libcurl's multi interface on the loop (daemon/plugins/curl.c)
# against an HTTP server that is a task on the same loop.
PLUGIN_TESTS += tests/test-curl
check_PROGRAMS += tests/test-curl
tests_test_curl_SOURCES = tests/test-curl.c daemon/plugins/curl.c daemon/plugins/curl.h
tests_test_curl_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon
tests_test_curl_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(CURL_CFLAGS) $(LIBEVENT_CFLAGS)
tests_test_curl_LDADD = lib/libcrunner.la $(CHECK_LIBS) $(CURL_LIBS) $(LIBEVENT_LIBS)
endif
