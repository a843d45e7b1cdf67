# client test suites
#
# test-crunctl-args: crunctl's offline parts (argument parsing and typing,
# human formatting, the event-stream parser), linked from client/ sources
# that need no libcurl.
# crunctl.sh: drives every crunctl command against a real crund started
# from the build tree on a free port.
if HAVE_CHECK
check_PROGRAMS += tests/test-crunctl-args
CLIENT_TESTS += tests/test-crunctl-args
endif
tests_test_crunctl_args_SOURCES = \
	tests/test-crunctl-args.c \
	client/args.c \
	client/format.c \
	common/rfc3339.c \
	client/sse.c \
	client/crunctl.h
tests_test_crunctl_args_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(JANSSON_CFLAGS)
tests_test_crunctl_args_LDADD = $(CHECK_LIBS) $(JANSSON_LIBS) -lm

CLIENT_TESTS += tests/crunctl.sh
EXTRA_DIST += tests/crunctl.sh
