#!/bin/sh
# crund as crund.service runs it: an unprivileged system user (User=crund),
# no capabilities, no_new_privs, UMask=0077, with the plugins owned by root
# (as `make install` leaves them).  The plugin checks must accept root's
# plugins under that uid and refuse a directory owned by another user.
# Needs root (to switch user with setpriv); "nobody" stands for crund.
. "${top_srcdir:-.}/tests/systemd/common.inc"
require_crund
scratch_init

echo "1..4"

if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null 2>&1; then
	for _ in 1 2 3 4; do skip "needs root and setpriv to switch to an unprivileged user"; done
	exit 0
fi
if [ ! -e "$(plugin_dir)/demo.so" ]; then
	for _ in 1 2 3 4; do skip "the demo plugin is not built"; done
	exit 0
fi
uid=65534
gid=65534

# The unprivileged user must reach the build tree (as it reaches
# /usr/lib/crund/plugins) and a directory of its own for the socket.
if ! setpriv --reuid=$uid --regid=$gid --clear-groups test -r "$(plugin_dir)/demo.so"; then
	for _ in 1 2 3 4; do skip "uid $uid cannot read $(plugin_dir)"; done
	exit 0
fi
chmod 711 "$tmp"
mkdir "$tmp/run"
chown $uid:$gid "$tmp/run"
chmod 700 "$tmp/run"
sock="$tmp/run/crund.sock"

as_service_user() {
	# exec: run in the background, the function must be crund itself.
	exec setpriv --reuid=$uid --regid=$gid --clear-groups --no-new-privs \
		--inh-caps=-all --bounding-set=-all sh -c 'umask 077; exec "$@"' crund "$@"
}

# shellcheck disable=SC2046 # crund_cmd prints a command line: split on purpose
as_service_user $(crund_cmd) --plugin-dir "$(plugin_dir)" --listen "unix:$sock" --grace 1 \
	--store "sqlite:$tmp/run/state/crund.db" \
	> "$tmp/crund.log" 2>&1 &
crund_pid=$!
pids_to_kill="$pids_to_kill $crund_pid"
up() {
	[ "$(http_status http://localhost/v1/health --unix-socket "$sock")" = 200 ]
}
if wait_until 30 up; then
	ok "crund serves as uid $uid without capabilities, umask 077"
else
	not_ok "crund serves as uid $uid without capabilities, umask 077"
	diag_file "$tmp/crund.log"
fi

code=$(http_status http://localhost/v1/plugins/demo --unix-socket "$sock")
if [ "$code" = 200 ]; then
	ok "a root-owned plugin is loaded by the unprivileged daemon"
else
	not_ok "a root-owned plugin is loaded by the unprivileged daemon (GET /v1/plugins/demo: $code)"
	diag_file "$tmp/crund.log"
fi

kill -TERM "$crund_pid"
if wait_exit "$crund_pid" 30 && [ "$exit_status" -eq 0 ]; then
	ok "... and exits 0 on SIGTERM"
else
	not_ok "... and exits 0 on SIGTERM (got $exit_status)"
	diag_file "$tmp/crund.log"
fi

# A plugin directory owned by some other unprivileged user (uid 1): the
# daemon's user could be made to load code that user controls.  Refused,
# exit status 2 (the configuration's fault, see crund(8)).
mkdir "$tmp/theirs"
cp "$(plugin_dir)/demo.so" "$tmp/theirs/"
chown -R 1:1 "$tmp/theirs"
chmod 755 "$tmp/theirs"
# shellcheck disable=SC2046 # crund_cmd prints a command line: split on purpose
as_service_user $(crund_cmd) --plugin-dir "$tmp/theirs" --listen "unix:$tmp/run/theirs.sock" \
	--store memory: \
	> "$tmp/theirs.log" 2>&1 &
crund_pid=$!
pids_to_kill="$pids_to_kill $crund_pid"
if wait_exit "$crund_pid" 30 && [ "$exit_status" -eq 2 ] && grep -q 'owned by uid 1' "$tmp/theirs.log"; then
	ok "a plugin directory owned by another user is refused (exit 2)"
else
	not_ok "a plugin directory owned by another user is refused (exit 2; got $exit_status)"
	diag_file "$tmp/theirs.log"
fi

tap_done
