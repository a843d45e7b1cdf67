#!/bin/sh
# crund.service's sandbox against what crund really does: the daemon runs
# under strace while it serves requests and jobs (HTTP, the executor
# thread, child tasks, progress, the graceful close), and every system call
# it made must pass the unit's SystemCallFilter= (systemd would answer the
# others with EPERM), and no mapping may be made writable and executable
# or executable after the fact (MemoryDenyWriteExecute=yes refuses it).
. "${top_srcdir:-.}/tests/systemd/common.inc"
require_crund
scratch_init

echo "1..4"

if [ "${CRUND_VALGRIND:-0}" = 1 ]; then
	for i in 1 2 3 4; do skip "strace and valgrind do not mix"; done
	exit 0
fi
if ! command -v strace >/dev/null 2>&1 || ! command -v systemd-analyze >/dev/null 2>&1; then
	for i in 1 2 3 4; do skip "strace or systemd-analyze is not installed"; done
	exit 0
fi

unit="$top_builddir/systemd/crund.service"

# The allowed set: the unit's SystemCallFilter= lines in order (an allow
# list, then "~" lines taking groups away), groups expanded recursively
# with systemd-analyze.
cat > "$tmp/allowed.py" <<'EOF'
import subprocess, sys
cache = {}
def expand(name):
    if not name.startswith("@"):
        return {name}
    if name not in cache:
        out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager", name],
                             capture_output=True, text=True, check=True).stdout
        names = set()
        for line in out.splitlines()[1:]:
            line = line.strip()
            if line and not line.startswith("#"):
                names |= expand(line)
        cache[name] = names
    return cache[name]
allowed = None
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("SystemCallFilter="):
        continue
    value = line.split("=", 1)[1]
    deny = value.startswith("~")
    names = set()
    for item in value.lstrip("~").split():
        names |= expand(item)
    if deny:
        allowed = (allowed or set()) - names
    else:
        allowed = (allowed or set()) | names
for n in sorted(allowed or ()):
    print(n)
EOF
"$PYTHON" "$tmp/allowed.py" "$unit" > "$tmp/allowed" 2> "$tmp/allowed.err"
diag "$(wc -l < "$tmp/allowed") system calls allowed by $(grep -c '^SystemCallFilter=' "$unit") SystemCallFilter= lines"
check "the unit's SystemCallFilter= expands to an allow list" test -s "$tmp/allowed"

# A notify socket that swallows messages, so the sd_notify path runs too.
"$PYTHON" -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    s.recv(4096)' "$tmp/notify.sock" &
pids_to_kill="$pids_to_kill $!"
wait_until 10 test -S "$tmp/notify.sock"

# crund in the build tree may be libtool's wrapper script: let libtool
# put the real binary under strace, so the trace holds crund's calls only.
lt=
[ -x "$top_builddir/libtool" ] && lt="$top_builddir/libtool --mode=execute"
sock="$tmp/crund.sock"
state="$tmp/state"
trace="$tmp/strace.out"
# The unit runs crund as its own user, never root: as root, SQLite also
# gives the files it creates the database's owner (fchown), which the
# unit's filter refuses and an unprivileged crund never calls.  So when
# we are root, the traced daemon drops to uid 65534 as the unit would.
as_user=
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1 &&
	setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$(plugin_dir)/demo.so" 2>/dev/null; then
	chmod 711 "$tmp"
	mkdir -p "$tmp/run"
	chown 65534:65534 "$tmp/run"
	chmod 666 "$tmp/notify.sock"
	sock="$tmp/run/crund.sock"
	state="$tmp/run/state"
	as_user="setpriv --reuid=65534 --regid=65534 --clear-groups"
	trace="$tmp/run/strace.out"
fi
# LeakSanitizer cannot work under ptrace (sanitizer builds): leaks are
# the other suites' business.
# shellcheck disable=SC2086 # $lt and $as_user are empty or a command line: split on purpose
NOTIFY_SOCKET="$tmp/notify.sock" WATCHDOG_USEC=200000 \
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
	$lt $as_user strace -f -qq -o "$trace" \
	"$CRUND" --plugin-dir "$(plugin_dir)" --listen "unix:$sock" --grace 0.5 \
	--store "sqlite:$state/crund.db" \
	> "$tmp/crund.log" 2>&1 &
strace_pid=$!
pids_to_kill="$pids_to_kill $strace_pid"

up() {
	[ "$(http_status http://localhost/v1/health --unix-socket "$sock")" = 200 ]
}
submit() {
	http_status 'http://localhost/v1/jobs?wait=20' --unix-socket "$sock" --max-time 30 -d "$1"
}
served=no
if wait_until 60 up; then
	served=yes
	for path in /v1/info /v1/plugins /v1/jobs /metrics /v1/nope; do
		http_status "http://localhost$path" --unix-socket "$sock" > /dev/null
	done
	if [ -e "$(plugin_dir)/demo.so" ]; then
		for job in '"noop"' '"sleep", "args": {"seconds": 0.05}' \
			'"compute", "args": {"n": 20000}' '"fanout", "args": {"n": 5}' \
			'"progress", "args": {"steps": 2, "interval": 0.01}' \
			'"fail"'; do
			code=$(submit "{\"plugin\": \"demo\", \"job\": $job}")
			[ "$code" = 200 ] || [ "$code" = 201 ] || diag "submit $job: $code"
		done
		# A job still running at SIGTERM: the grace and cancel paths.
		http_status http://localhost/v1/jobs --unix-socket "$sock" \
			-d '{"plugin": "demo", "job": "linger", "args": {"seconds": 60, "cleanup_seconds": 0.05}}' \
			> /dev/null
	else
		diag "the demo plugin is not built: only HTTP is exercised"
	fi
fi
# strace's pid is not crund's: signal the traced daemon itself.
crund_pid=$(awk 'NR == 1 { print $1 }' "$trace")
kill -TERM "$crund_pid" 2>/dev/null
if [ $served = yes ] && wait_exit "$strace_pid" 60 && [ "$exit_status" -eq 0 ]; then
	ok "crund under strace served requests and jobs, exit status 0"
else
	not_ok "crund under strace served requests and jobs, exit status 0 (served: $served, status $exit_status)"
	diag_file "$tmp/crund.log"
fi

# Every system call name in the trace ("PID name(" or "PID <... name
# resumed>"); the first line is strace's own execve of crund, made before
# systemd's filter would apply... and execve is allowed anyway.
sed -n -e 's/^[0-9]* *\([a-z0-9_]*\)(.*/\1/p' -e 's/^[0-9]* *<\.\.\. \([a-z0-9_]*\) resumed>.*/\1/p' \
	"$trace" | sort -u > "$tmp/used"
diag "crund made $(wc -l < "$tmp/used") distinct system calls"
denied=$(comm -23 "$tmp/used" "$tmp/allowed" | tr '\n' ' ')
if [ -s "$tmp/used" ] && [ -z "$denied" ]; then
	ok "every system call crund made passes SystemCallFilter="
else
	not_ok "every system call crund made passes SystemCallFilter= (denied: ${denied:-no trace})"
	for s in $denied; do
		grep -m 2 " $s(" "$trace" | sed 's/^/# /'
	done
fi

# MemoryDenyWriteExecute=yes: no mmap with PROT_WRITE|PROT_EXEC, no
# mprotect/pkey_mprotect adding PROT_EXEC.
wx=$(grep -E -e '(mmap|mmap2)\(.*PROT_WRITE\|PROT_EXEC|PROT_EXEC\|PROT_WRITE' \
	-e '(mprotect|pkey_mprotect)\(.*PROT_EXEC' "$trace" | head -n 5)
if [ -s "$tmp/used" ] && [ -z "$wx" ]; then
	ok "no writable+executable or late-executable mapping (MemoryDenyWriteExecute=yes)"
else
	not_ok "no writable+executable or late-executable mapping (MemoryDenyWriteExecute=yes)"
	diag "$wx"
fi

tap_done
