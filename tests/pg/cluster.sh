#!/usr/bin/env bash
# tests/pg/cluster.sh — a throwaway PostgreSQL cluster for the tests and
# benchmarks.
#
#   tests/pg/cluster.sh start [DIR]   initdb in DIR (default: a new
#                                     /tmp/crund-pg.XXXXXX), start the server
#                                     on a free loopback port with its unix
#                                     socket in DIR; prints DIR
#   tests/pg/cluster.sh url DIR       the libpq URL of its database "crund"
#   tests/pg/cluster.sh stop DIR      stop the server (by its pid), remove DIR
#   tests/pg/cluster.sh restart DIR [SECONDS]
#                                     stop the server, keep it down SECONDS
#                                     (default 0), start it again (same
#                                     port, same data): the database restarted
#
# The server runs as an unprivileged user when called as root (PostgreSQL
# refuses root; CI runs as root): the `postgres` user of the Debian package,
# else nobody.  Settings are for tests: fsync off, trust authentication on
# loopback and the socket only.  PG_BIN overrides where the server binaries
# are (default: pg_config's bindir, else /usr/lib/postgresql/*/bin).
#
# Exit status: 0, or 77 with a sentence on stderr when PostgreSQL is not
# installed (the tests then skip), or 1 when it is but would not start.
set -u

die() {
	echo "cluster.sh: $*" >&2
	exit 1
}

find_bin() {
	local d
	if [ -n "${PG_BIN:-}" ] && [ -x "$PG_BIN/initdb" ]; then
		echo "$PG_BIN"
		return 0
	fi
	# shellcheck disable=SC2012 # version directories: plain names, sorted by version
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -Vr) \
		"$(pg_config --bindir 2>/dev/null)"; do
		[ -x "$d/initdb" ] && [ -x "$d/postgres" ] && {
			echo "$d"
			return 0
		}
	done
	return 1
}

# as_user CMD...: run CMD as the cluster's owner.
as_user() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u "$PG_USER" -- "$@"
	else
		"$@"
	fi
}

# shellcheck source=tests/e2e/port.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/port.sh"

# run_server DIR PORT: start postgres in the background; 0 once it answers.
run_server() {
	local dir=$1 port=$2 i
	as_user "$BIN/postgres" -D "$dir/data" -p "$port" -k "$dir" \
		-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
		-c max_connections=200 -c shared_buffers=64MB \
		>>"$dir/server.log" 2>&1 </dev/null &
	local starter=$!
	echo "$starter" >"$dir/pid"
	echo "$port" >"$dir/port"
	for ((i = 0; i < 300; i++)); do
		kill -0 "$starter" 2>/dev/null || return 1
		if "$BIN/pg_isready" -q -h "$dir" -p "$port"; then
			# the postmaster's own pid (the starter is runuser or a subshell)
			head -n 1 "$dir/data/postmaster.pid" >"$dir/pid"
			return 0
		fi
		sleep 0.05
	done
	return 1
}

stop_server() {
	local dir=$1 pid i
	pid=$(cat "$dir/pid" 2>/dev/null) || return 0
	kill -INT "$pid" 2>/dev/null || return 0 # fast shutdown
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null
}

cmd=${1:-}
dir=${2:-}
BIN=$(find_bin) || {
	[ "$cmd" = stop ] || {
		echo "cluster.sh: PostgreSQL server binaries not found (apt-get install postgresql, or set PG_BIN)" >&2
		exit 77
	}
}
PG_USER=postgres
getent passwd postgres >/dev/null 2>&1 || PG_USER=nobody

case $cmd in
start)
	if [ -z "$dir" ]; then
		dir=$(mktemp -d /tmp/crund-pg.XXXXXX) || die "cannot make a directory in /tmp"
	fi
	mkdir -p "$dir" || die "cannot make $dir"
	chmod 0755 "$dir"
	[ "$(id -u)" -eq 0 ] && chown "$PG_USER" "$dir"
	as_user "$BIN/initdb" -D "$dir/data" -U crund -A trust -E UTF8 --no-sync \
		>"$dir/initdb.log" 2>&1 || die "initdb failed: $(tail -n 5 "$dir/initdb.log")"
	ok=
	for ((try = 0; try < 5; try++)); do
		port=$(free_port) || die "no free port"
		if run_server "$dir" "$port"; then
			ok=1
			break
		fi
		stop_server "$dir"
	done
	[ -n "$ok" ] || die "the server did not start: $(tail -n 5 "$dir/server.log")"
	"$BIN/psql" -q -h "$dir" -p "$port" -U crund -d postgres \
		-c 'CREATE DATABASE crund' >/dev/null || die "cannot create the database"
	echo "$dir"
	;;
url)
	[ -f "$dir/port" ] || die "no cluster in '$dir'"
	echo "postgresql://crund@127.0.0.1:$(cat "$dir/port")/crund"
	;;
restart)
	[ -f "$dir/port" ] || die "no cluster in '$dir'"
	stop_server "$dir"
	sleep "${3:-0}"
	run_server "$dir" "$(cat "$dir/port")" || die "the server did not start again: $(tail -n 5 "$dir/server.log")"
	;;
stop)
	[ -n "$dir" ] || die "usage: cluster.sh stop DIR"
	stop_server "$dir"
	case $dir in
	/tmp/crund-pg.* | */pg) rm -rf "$dir" ;;
	esac
	;;
*)
	echo "usage: cluster.sh start [DIR] | url DIR | restart DIR [SECONDS] | stop DIR" >&2
	exit 2
	;;
esac
