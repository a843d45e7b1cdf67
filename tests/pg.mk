# PostgreSQL: the shared store's tests.  tests/pg/cluster.sh starts a
# throwaway cluster (initdb in /tmp, a free loopback port, an unprivileged
# user when run as root) and stops it by pid; test-store (tests/daemon.mk)
# and the scripts below use it, or CRUND_TEST_PG_URL when set.  Without
# PostgreSQL installed they skip (exit 77) and say so.
EXTRA_DIST += tests/pg/cluster.sh
#   nodes.sh   three crund nodes on one database: spread and exactly once,
#              any node answers for any job, SIGKILL, SIGSTOP past the
#              lease, the database restarted under load, two nodes starting
#              at once on an empty database, a node with no free slot that
#              hears of work does not spin
PG_TESTS = tests/pg/nodes.sh
TESTS += $(PG_TESTS)
EXTRA_DIST += $(PG_TESTS)
