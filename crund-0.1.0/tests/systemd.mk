# systemd test suites (owned by the systemd area)
#   units.sh       the generated units: verify, security exposure, sysusers/tmpfiles
#   notify.sh      sd_notify: READY=1, WATCHDOG=1, STOPPING=1 over NOTIFY_SOCKET
#   activation.sh  socket activation: LISTEN_FDS over TCP and a Unix socket
#   syscalls.sh    SystemCallFilter= and MemoryDenyWriteExecute= against an strace of crund
#   user.sh        crund as User= runs it: unprivileged, no capabilities, root-owned plugins
SYSTEMD_TESTS += \
	tests/systemd/units.sh \
	tests/systemd/notify.sh \
	tests/systemd/activation.sh \
	tests/systemd/syscalls.sh \
	tests/systemd/user.sh
EXTRA_DIST += $(SYSTEMD_TESTS) tests/systemd/common.inc
