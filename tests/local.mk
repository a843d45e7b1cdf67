# Test fragments, one per area; each appends to TESTS and check_PROGRAMS.
LIB_TESTS =
DAEMON_TESTS =
CLIENT_TESTS =
include tests/lib.mk
include tests/daemon.mk
include tests/client.mk
TESTS += $(LIB_TESTS) $(DAEMON_TESTS) $(CLIENT_TESTS)

# `make check-lib`: only the runtime's suites (the ucontext CI build uses it).
check-lib:
	$(MAKE) $(AM_MAKEFLAGS) check TESTS='$(LIB_TESTS)'
.PHONY: check-lib
