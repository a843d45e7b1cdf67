#!/bin/sh
# Socket activation as crund.socket does it: the listening sockets (TCP on
# loopback and a Unix socket) are made by someone else and handed over
# through LISTEN_FDS/LISTEN_PID.  systemd-socket-activate plays systemd
# (it binds, waits for the first connection, then execs crund in place);
# without it a python3 helper does the same.  Expected: both sockets serve
# /v1/health, crund binds nothing of its own, SIGTERM ends it with status
# 0; LISTEN_FDS meant for another pid (LISTEN_PID mismatch) is ignored.
. "${top_srcdir:-.}/tests/systemd/common.inc"
require_crund
scratch_init

echo "1..7"

# Fallback activator: bind, put the sockets on fds 3.., set LISTEN_*,
# exec the command (same pid, as systemd-socket-activate does).  With
# --wrong-pid it names pid 1 in LISTEN_PID: the fds are not for crund.
cat > "$tmp/activate.py" <<'EOF'
import fcntl, os, socket, sys
args = sys.argv[1:]
wrong_pid = False
addrs = []
while args and args[0] in ("-l", "--wrong-pid"):
    if args[0] == "--wrong-pid":
        wrong_pid = True
        args = args[1:]
    else:
        addrs.append(args[1])
        args = args[2:]
fds = []
for a in addrs:
    if a.startswith("/"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(a)
    else:
        host, port = a.rsplit(":", 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, int(port)))
    s.listen(128)
    fds.append(s.detach())
# Move them out of the way first (a socket may already sit on fd 3 or 4),
# then into place; dup2 onto itself would leave close-on-exec set.
high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in fds]
for fd in fds:
    os.close(fd)
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i, inheritable=True)
    os.close(fd)
os.environ["LISTEN_FDS"] = str(len(fds))
os.environ["LISTEN_PID"] = "1" if wrong_pid else str(os.getpid())
os.execvp(args[0], args)
EOF

activator=python
if command -v systemd-socket-activate >/dev/null 2>&1; then
	activator=systemd-socket-activate
fi
diag "activator: $activator"

port=$(free_port)
usock="$tmp/crund.sock"
# As crund.service starts it: with the installed (all commented) config
# file; the plugins come from the build tree.
conf="$top_builddir/systemd/etc/crund.conf"

if [ $activator = python ]; then
	# shellcheck disable=SC2046 # crund_cmd prints a command line (crund, or valgrind-wrap crund): split on purpose
	"$PYTHON" "$tmp/activate.py" -l "127.0.0.1:$port" -l "$usock" \
		$(crund_cmd) --config "$conf" --plugin-dir "$(plugin_dir)" --grace 5 \
		> "$tmp/crund.log" 2>&1 &
else
	# It passes on only PATH, HOME, TERM and what -E names.
	keep=
	for v in top_builddir top_srcdir ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS \
		LD_LIBRARY_PATH CRUNNER_DEBUG STATE_DIRECTORY; do
		eval "[ -n \"\${$v+set}\" ]" && keep="$keep -E $v"
	done
	# shellcheck disable=SC2046,SC2086 # $keep is a list of -E options; crund_cmd prints a command line
	systemd-socket-activate $keep -l "127.0.0.1:$port" -l "$usock" \
		$(crund_cmd) --config "$conf" --plugin-dir "$(plugin_dir)" --grace 5 \
		> "$tmp/crund.log" 2>&1 &
fi
crund_pid=$!
pids_to_kill="$pids_to_kill $crund_pid"
wait_until 10 test -S "$usock"

# health_status URL [curl args...]: http_status of /v1/health.  Under
# valgrind crund's first loop turns are slow enough for its stall watchdog,
# and /v1/health answers 503 "stalled" for a second after: ask again then
# (bounded).  Without valgrind the first answer is the answer.
health_status() {
	hs=$(http_status "$@")
	hs_n=0
	while [ "${CRUND_VALGRIND:-0}" = 1 ] && [ "$hs" = 503 ] && [ "$hs_n" -lt 10 ] &&
		grep -q stalled "$tmp/body"; do
		sleep 0.5
		hs=$(http_status "$@")
		hs_n=$((hs_n + 1))
	done
	echo "$hs"
}

# The first connection starts crund (systemd-socket-activate execs it
# then); the request waits in the socket's backlog meanwhile.
code=$(health_status "http://127.0.0.1:$port/v1/health" --max-time 30)
if [ "$code" = 200 ] && grep -q '"status" *: *"ok"' "$tmp/body"; then
	ok "GET /v1/health over the inherited TCP socket: 200 ok"
else
	not_ok "GET /v1/health over the inherited TCP socket: 200 ok (got $code)"
	diag_file "$tmp/body"
	diag_file "$tmp/crund.log"
fi

code=$(health_status http://localhost/v1/health --unix-socket "$usock")
if [ "$code" = 200 ] && grep -q '"status" *: *"ok"' "$tmp/body"; then
	ok "GET /v1/health over the inherited Unix socket: 200 ok"
else
	not_ok "GET /v1/health over the inherited Unix socket: 200 ok (got $code)"
	diag_file "$tmp/crund.log"
fi

# A second request on the same sockets: crund accepts in a loop.
code=$(http_status "http://127.0.0.1:$port/v1/info")
check "GET /v1/info over the inherited TCP socket: 200 (got $code)" [ "$code" = 200 ]

# With sockets passed in, crund does not bind its default 127.0.0.1:7733
# (or anything else) on its own.
if ! command -v ss >/dev/null 2>&1; then
	skip "crund binds nothing besides the inherited sockets: ss is not installed"
else
	own=$(ss -H -ltnp 2>/dev/null | grep "pid=$crund_pid," | awk '{ print $4 }' | sort | tr '\n' ' ')
	check "crund listens on the inherited TCP socket only (saw: $own)" \
		[ "$own" = "127.0.0.1:$port " ]
fi

kill -TERM "$crund_pid"
if wait_exit "$crund_pid" 30 && [ "$exit_status" -eq 0 ]; then
	ok "socket-activated crund exits 0 on SIGTERM"
else
	not_ok "socket-activated crund exits 0 on SIGTERM (got $exit_status)"
	diag_file "$tmp/crund.log"
fi

# LISTEN_PID names another process: the fds are not crund's, it must use
# its --listen address instead (sd_listen_fds semantics).
port2=$(free_port)
own="$tmp/own.sock"
# shellcheck disable=SC2046 # crund_cmd prints a command line: split on purpose
"$PYTHON" "$tmp/activate.py" --wrong-pid -l "127.0.0.1:$port2" \
	$(crund_cmd) --plugin-dir "$(plugin_dir)" --listen "unix:$own" --grace 5 \
	> "$tmp/crund2.log" 2>&1 &
crund_pid=$!
pids_to_kill="$pids_to_kill $crund_pid"
own_up() {
	[ "$(http_status http://localhost/v1/health --unix-socket "$own")" = 200 ]
}
if wait_until 30 own_up; then
	ok "LISTEN_PID of another process: serves on its --listen address"
else
	not_ok "LISTEN_PID of another process: serves on its --listen address"
	diag_file "$tmp/crund2.log"
fi
kill -TERM "$crund_pid"
if wait_exit "$crund_pid" 30 && [ "$exit_status" -eq 0 ]; then
	ok "... and exits 0 on SIGTERM"
else
	not_ok "... and exits 0 on SIGTERM (got $exit_status)"
	diag_file "$tmp/crund2.log"
fi

tap_done
