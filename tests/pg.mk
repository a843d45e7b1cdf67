# PostgreSQL: the shared store's tests.  tests/pg/cluster.sh starts a
# throwaway cluster (initdb in /tmp, a free loopback port, an unprivileged
# user when run as root) and stops it by pid; test-store (tests/daemon.mk)
# and the scripts below use it, or CRUND_TEST_PG_URL when set.  Without
# PostgreSQL installed they skip (exit 77) and say so.
EXTRA_DIST += tests/pg/cluster.sh
