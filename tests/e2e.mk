# e2e test suites: a real crund from the build tree on a free loopback port,
# driven with real curl (tests/e2e/lib.sh has the shared helpers).  Bash TAP
# scripts; CRUND_VALGRIND=1 (make check-valgrind) runs crund under valgrind.
E2E_TESTS += \
	tests/e2e/api.sh \
	tests/e2e/badinput.sh \
	tests/e2e/shutdown.sh \
	tests/e2e/limits.sh \
	tests/e2e/auth.sh \
	tests/e2e/stream.sh \
	tests/e2e/durable.sh \
	tests/e2e/abuse.sh \
	tests/e2e/http.sh \
	tests/e2e/exec.sh \
	tests/e2e/events.sh
EXTRA_DIST += tests/e2e/lib.sh tests/e2e/port.sh tests/e2e/abuse.py tests/e2e/httpserver.py $(E2E_TESTS) tests/soak/kill9.sh
