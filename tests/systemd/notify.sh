#!/bin/sh
# sd_notify as systemd sees it (Type=notify, NotifyAccess=main,
# WatchdogSec=): the real crund is started with NOTIFY_SOCKET pointing at a
# datagram socket this test owns, and WATCHDOG_USEC/WATCHDOG_PID as the
# service manager sets them.  Expected: READY=1 once it answers HTTP,
# WATCHDOG=1 again and again, STOPPING=1 after SIGTERM, exit status 0, every
# message sent by crund's main process; no WATCHDOG=1 when WATCHDOG_PID
# names another process; an abstract NOTIFY_SOCKET ("@name") works too.
. "${top_srcdir:-.}/tests/systemd/common.inc"
require_crund
scratch_init

echo "1..14"

# The listener: one line per assignment, prefixed with the sender's pid
# from SCM_CREDENTIALS (what systemd checks for NotifyAccess=main) and the
# CLOCK_MONOTONIC time it arrived.
cat > "$tmp/listen.py" <<'EOF'
import os, socket, struct, sys, time
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + path[1:] if path.startswith("@") else path)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
open(out + ".ready", "w").close()
with open(out, "a") as f:
    while True:
        data, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = 0
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", cdata[:12])[0]
        for line in data.decode("utf-8", "replace").split("\n"):
            if line:
                f.write("%d %.3f %s\n" % (pid, time.monotonic(), line))
        f.flush()
EOF

# start_listener NAME ADDRESS: sets listener_pid; messages go to $tmp/NAME.msgs
start_listener() {
	"$PYTHON" "$tmp/listen.py" "$2" "$tmp/$1.msgs" &
	listener_pid=$!
	pids_to_kill="$pids_to_kill $listener_pid"
	: > "$tmp/$1.msgs"
	wait_until 10 test -e "$tmp/$1.msgs.ready"
}

# start_crund NAME NOTIFY_SOCKET WATCHDOG_PID_MODE: WATCHDOG_PID is crund's
# own pid ("self", as systemd sets it), another pid ("other") or unset.
# INVOCATION_ID is set, as systemd sets it for every service.
# The shell sets WATCHDOG_PID=$$ and then execs crund, so $$ is its pid.
start_crund() {
	name=$1
	sock="$tmp/$name.sock"
	# The sh -c program expands its own variables (SC2016); crund_cmd prints
	# a command line, split on purpose (SC2046).
	# shellcheck disable=SC2016,SC2046
	NOTIFY_SOCKET=$2 WATCHDOG_USEC=200000 WD_MODE=$3 OTHER_PID=$listener_pid \
		INVOCATION_ID=0123456789abcdef0123456789abcdef \
		sh -c 'case $WD_MODE in
			self) WATCHDOG_PID=$$; export WATCHDOG_PID ;;
			other) WATCHDOG_PID=$OTHER_PID; export WATCHDOG_PID ;;
			esac
			unset WD_MODE OTHER_PID
			exec "$@"' crund $(crund_cmd) --plugin-dir "$(plugin_dir)" \
		--listen "unix:$sock" --grace 5 > "$tmp/$name.log" 2>&1 &
	crund_pid=$!
	pids_to_kill="$pids_to_kill $crund_pid"
}

has_msg() {
	grep -q " $2\$" "$tmp/$1.msgs"
}

count_msg() {
	grep -c " $2\$" "$tmp/$1.msgs"
}

watchdog_twice() {
	[ "$(count_msg main WATCHDOG=1)" -ge 2 ]
}

# --- main run: WATCHDOG_PID = crund's pid -------------------------------
start_listener main "$tmp/notify.sock"
start_crund main "$tmp/notify.sock" self

if wait_until 30 has_msg main READY=1; then
	ok "READY=1 sent"
else
	not_ok "READY=1 sent"
	diag_file "$tmp/main.msgs"
	diag_file "$tmp/main.log"
fi

# READY=1 means "serving": the first request after it must be answered.
# 200, or 503 "stalled" when the loop was just held up for over a second
# (a slow start under valgrind): an answer either way, not a refusal.
code=$(http_status http://localhost/v1/health --unix-socket "$tmp/main.sock")
if [ "$code" = 200 ] || { [ "$code" = 503 ] && grep -q stalled "$tmp/body"; }; then
	ok "GET /v1/health is answered right after READY=1 (got $code)"
else
	not_ok "GET /v1/health is answered right after READY=1 (got $code)"
	diag_file "$tmp/body"
	diag_file "$tmp/main.log"
fi

if wait_until 20 watchdog_twice; then
	ok "WATCHDOG=1 sent repeatedly (WATCHDOG_USEC=200000)"
else
	not_ok "WATCHDOG=1 sent repeatedly (WATCHDOG_USEC=200000)"
	diag_file "$tmp/main.msgs"
fi

# A job that blocks the loop thread (demo/hog) must stop the pings:
# systemd's watchdog is there to catch exactly that.  The longest gap
# between two WATCHDOG=1 must cover most of the 1.5 s the loop is held.
max_gap() {
	awk '$3 == "WATCHDOG=1" { if (prev != "" && $2 - prev > g) g = $2 - prev; prev = $2 }
		END { printf "%.2f\n", g + 0 }' "$tmp/main.msgs"
}
gap_seen() {
	awk -v g="$(max_gap)" 'BEGIN { exit !(g >= 1.0) }'
}
if [ ! -e "$(plugin_dir)/demo.so" ]; then
	skip "WATCHDOG=1 stops while a job blocks the loop: the demo plugin is not built"
else
	code=$(http_status http://localhost/v1/jobs --unix-socket "$tmp/main.sock" \
		-d '{"plugin": "demo", "job": "hog", "args": {"seconds": 1.5}}')
	if [ "$code" = 201 ] && wait_until 20 gap_seen; then
		ok "WATCHDOG=1 stops while a job blocks the loop (gap $(max_gap) s)"
	else
		not_ok "WATCHDOG=1 stops while a job blocks the loop (submit: $code, gap $(max_gap) s)"
		diag_file "$tmp/body"
	fi
fi

kill -TERM "$crund_pid"
if wait_until 20 has_msg main STOPPING=1; then
	ok "STOPPING=1 sent after SIGTERM"
else
	not_ok "STOPPING=1 sent after SIGTERM"
	diag_file "$tmp/main.msgs"
fi

if wait_exit "$crund_pid" 30 && [ "$exit_status" -eq 0 ]; then
	ok "exit status 0 after SIGTERM"
else
	not_ok "exit status 0 after SIGTERM (got $exit_status)"
	diag_file "$tmp/main.log"
fi

# Order: READY=1 first, STOPPING=1 after it, one READY=1 only.
order=$(grep -n -e ' READY=1$' -e ' STOPPING=1$' "$tmp/main.msgs" | sed 's/.* //' | tr '\n' ' ')
check "READY=1 once, then STOPPING=1 (saw: $order)" [ "$order" = "READY=1 STOPPING=1 " ]

# STATUS= lines for `systemctl status`, as crund(8) says.
check "STATUS=running with READY=1, STATUS=draining with STOPPING=1" \
	sh -c "grep -q ' STATUS=running\$' '$tmp/main.msgs' && grep -q ' STATUS=draining\$' '$tmp/main.msgs'"

# Under systemd the log lines carry journald's "<N>" priority prefix and
# no timestamp of their own (valgrind's "==PID==" lines aside).
grep -v -e '^==[0-9]*==' "$tmp/main.log" > "$tmp/main.log.crund"
bad=$(grep -v -e '^<[0-7]>[^0-9<]' "$tmp/main.log.crund" | head -n 3)
if grep -q '^<6>.*SIGTERM' "$tmp/main.log.crund" && [ -z "$bad" ]; then
	ok "log lines carry journald priority prefixes under systemd"
else
	not_ok "log lines carry journald priority prefixes under systemd"
	diag_file "$tmp/main.log"
fi

# NotifyAccess=main: systemd drops messages from any other process.
others=$(awk -v p="$crund_pid" '$1 != p' "$tmp/main.msgs" | head -n 3)
if [ -s "$tmp/main.msgs" ] && [ -z "$others" ]; then
	ok "every message comes from crund's main process (pid $crund_pid)"
else
	not_ok "every message comes from crund's main process (pid $crund_pid)"
	diag "$others"
fi

# --- WATCHDOG_PID names another process: no watchdog pings ---------------
start_listener other "$tmp/notify-other.sock"
start_crund other "$tmp/notify-other.sock" other
if wait_until 30 has_msg other READY=1; then
	# Watch for ten watchdog periods' worth of the loop running.
	sleep 1
	check "no WATCHDOG=1 when WATCHDOG_PID is another process" \
		[ "$(count_msg other WATCHDOG=1)" -eq 0 ]
else
	not_ok "no WATCHDOG=1 when WATCHDOG_PID is another process (no READY=1)"
	diag_file "$tmp/other.log"
fi
kill -TERM "$crund_pid"
wait_exit "$crund_pid" 30

# --- abstract socket address, WATCHDOG_PID unset -------------------------
abstract="@crund-test-notify-$$"
start_listener abstract "$abstract"
start_crund abstract "$abstract" unset
if wait_until 30 has_msg abstract READY=1; then
	ok "READY=1 over an abstract NOTIFY_SOCKET ($abstract)"
else
	not_ok "READY=1 over an abstract NOTIFY_SOCKET ($abstract)"
	diag_file "$tmp/abstract.log"
fi
kill -TERM "$crund_pid"
if wait_exit "$crund_pid" 30 && [ "$exit_status" -eq 0 ] &&
	has_msg abstract STOPPING=1; then
	ok "STOPPING=1 and exit status 0 over the abstract socket"
else
	not_ok "STOPPING=1 and exit status 0 over the abstract socket (status $exit_status)"
	diag_file "$tmp/abstract.msgs"
fi

# --- no NOTIFY_SOCKET: crund runs and stops as usual ----------------------
# It also reads the installed config file with every key uncommented (the
# values shown are the documented defaults; the paths are left out).
conf="$top_builddir/systemd/etc/crund.conf"
sed -n 's/^#\([a-z-]* = \)/\1/p' "$conf" |
	grep -v -e '^listen ' -e '^plugin-dir ' -e '^token-file ' -e '^store ' > "$tmp/full.conf"
diag "config keys set: $(cut -d' ' -f1 "$tmp/full.conf" | tr '\n' ' ')"
(
	unset NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID
	exec $(crund_cmd) --config "$tmp/full.conf" --plugin-dir "$(plugin_dir)" \
		--listen "unix:$tmp/plain.sock" --grace 5 > "$tmp/plain.log" 2>&1
) &
crund_pid=$!
pids_to_kill="$pids_to_kill $crund_pid"
plain_up() {
	[ "$(http_status http://localhost/v1/health --unix-socket "$tmp/plain.sock")" = 200 ]
}
if wait_until 30 plain_up; then
	kill -TERM "$crund_pid"
	wait_exit "$crund_pid" 30
	check "without NOTIFY_SOCKET, with the example config: serves, exits 0 (got $exit_status)" \
		[ "$exit_status" -eq 0 ]
else
	not_ok "without NOTIFY_SOCKET, with the example config: serves, exits 0"
	diag_file "$tmp/plain.log"
fi

tap_done
