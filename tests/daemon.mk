# daemon test suites (Check): pure logic of the daemon, no sockets.
#   test-route   routing table (404/405 + Allow), query parsers, POST bodies
#                (http/route.c, jobs/submit.c)
#   test-http    the transport (http/http.c) on a loopback port with a fake
#                handler table, driven by a client thread: answers,
#                keep-alive, body limit, connection limits, header deadline,
#                deferral, hold/release, streamed answers, a client that
#                never reads
#   test-api     the API's long-poll and event stream (api/wait.c,
#                api/stream.c) over the real transport and jobs module
#   test-jobs    job store: ids, state machine, FIFO queue, retention,
#                idempotency, cursor listing, subscribers, rendering
#   test-config  flags, config file, token file, listen addresses
if HAVE_CHECK
DAEMON_TESTS += tests/test-route tests/test-http tests/test-api tests/test-jobs tests/test-config
check_PROGRAMS += tests/test-route tests/test-http tests/test-api tests/test-jobs tests/test-config
DAEMON_TEST_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(JANSSON_CFLAGS) $(SQLITE_CFLAGS) $(LIBPQ_CFLAGS) -I$(top_srcdir)/daemon
DAEMON_TEST_LIBS = $(CHECK_LIBS) $(JANSSON_LIBS) $(SQLITE_LIBS) $(LIBPQ_LIBS) -lpthread -lm

tests_test_route_SOURCES = tests/test-route.c daemon/http/route.c daemon/jobs/jobs.c daemon/jobs/events.c $(STORE_SOURCES) \
	daemon/buf.c daemon/jobs/submit.c common/rfc3339.c daemon/plugins/registry.c daemon/plugins/elf.c \
	daemon/plugins/abi.c daemon/plugins/args.c
tests_test_route_CFLAGS = $(DAEMON_TEST_CFLAGS)
tests_test_route_LDADD = lib/libcrunner.la $(DAEMON_TEST_LIBS) -ldl

tests_test_http_SOURCES = tests/test-http.c daemon/http/http.c daemon/buf.c daemon/log.c \
	daemon/settings.c
tests_test_http_CFLAGS = $(DAEMON_TEST_CFLAGS) $(MHD_CFLAGS) $(LIBEVENT_CFLAGS)
tests_test_http_LDADD = lib/libcrunner.la $(DAEMON_TEST_LIBS) $(MHD_LIBS) $(LIBEVENT_LIBS) -lpthread

tests_test_api_SOURCES = tests/test-api.c daemon/api/wait.c daemon/api/stream.c daemon/api/events.c \
	daemon/http/http.c daemon/http/route.c daemon/jobs/jobs.c daemon/jobs/events.c $(STORE_SOURCES) daemon/buf.c daemon/log.c \
	daemon/settings.c
tests_test_api_CFLAGS = $(DAEMON_TEST_CFLAGS) $(MHD_CFLAGS) $(LIBEVENT_CFLAGS)
tests_test_api_LDADD = lib/libcrunner.la $(DAEMON_TEST_LIBS) $(MHD_LIBS) $(LIBEVENT_LIBS) -lpthread

tests_test_jobs_SOURCES = tests/test-jobs.c daemon/jobs/jobs.c daemon/jobs/events.c $(STORE_SOURCES) daemon/buf.c
tests_test_jobs_CFLAGS = $(DAEMON_TEST_CFLAGS)
tests_test_jobs_LDADD = lib/libcrunner.la $(DAEMON_TEST_LIBS)

tests_test_config_SOURCES = tests/test-config.c daemon/settings.c daemon/log.c daemon/buf.c
tests_test_config_CFLAGS = $(DAEMON_TEST_CFLAGS)
tests_test_config_LDADD = $(DAEMON_TEST_LIBS)
endif

# test-store: the store seam, the same cases against memory: and sqlite:,
# then what only a file shows (reopen, lock, foreign/newer files, a failing
# disk).
if HAVE_CHECK
DAEMON_TESTS += tests/test-store
check_PROGRAMS += tests/test-store
tests_test_store_SOURCES = tests/test-store.c tests/testutil.h $(STORE_SOURCES)
tests_test_store_CFLAGS = $(DAEMON_TEST_CFLAGS)
tests_test_store_LDADD = lib/libcrunner.la $(DAEMON_TEST_LIBS)
endif
