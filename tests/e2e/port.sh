# shellcheck shell=bash
# tests/e2e/port.sh — free_port, shared by tests/e2e/lib.sh and
# tests/pg/cluster.sh (sourced; bash).
# A free loopback port: random in 20000-60000, probed with /dev/tcp (a
# refused connection means nobody listens).  The caller may still lose a
# race for it, so callers retry with another port.
free_port() {
	local i p
	for ((i = 0; i < 50; i++)); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40001))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}
