# Test fragments, one per area; each appends to its own list and to
# check_PROGRAMS / EXTRA_DIST as needed.
LIB_TESTS =
DAEMON_TESTS =
PLUGIN_TESTS =
CLIENT_TESTS =
E2E_TESTS =
SYSTEMD_TESTS =
UI_TESTS =
include tests/lib.mk
include tests/daemon.mk
include tests/plugins.mk
include tests/client.mk
include tests/e2e.mk
include tests/systemd.mk
include tests/fuzz.mk
include tests/ui.mk
include tests/pg.mk
TESTS += $(LIB_TESTS) $(DAEMON_TESTS) $(PLUGIN_TESTS) $(CLIENT_TESTS) $(E2E_TESTS) $(SYSTEMD_TESTS) $(FUZZ_TESTS) $(UI_TESTS)

# `make check-lib`: only the runtime's suites (the ucontext CI build uses it).
check-lib:
	$(MAKE) $(AM_MAKEFLAGS) check TESTS='$(LIB_TESTS)'
.PHONY: check-lib
