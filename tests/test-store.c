/*
 * test-store.c — the store seam (daemon/store/): the same cases against
 * every backend (memory:, sqlite:, postgresql:), then what only a file can
 * show (reopening, the lock, foreign and newer files, a failing disk) and
 * what only a shared database can (two nodes migrating at once).
 *
 * PostgreSQL: CRUND_TEST_PG_URL names a server to use (each test gets a
 * schema of its own); without it the suite starts a throwaway cluster with
 * tests/pg/cluster.sh and stops it at the end.  When PostgreSQL is not
 * installed the postgresql cases are left out, with a message saying so.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"
#include "testutil.h"

static const char *const KINDS[] = {"memory", "sqlite", "postgresql"};
static int NKINDS = 2;       /* 3 when a PostgreSQL server is there */
static char pg_base[512];    /* its URL */
static char pg_cluster[512]; /* a cluster this suite started, or "" */
static int pg_schema_n;

static char dir[256];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/crund-test-store-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* A fresh schema on the PostgreSQL server, and the URL that uses it. */
static void pg_url(char *out, size_t n)
{
	char schema[64], sql[300];
	snprintf(schema, sizeof(schema), "t%ld_%d", (long)getpid(), pg_schema_n++);
	PGconn *c = PQconnectdb(pg_base);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	snprintf(sql, sizeof(sql),
		 "SET client_min_messages = warning; DROP SCHEMA IF EXISTS %s CASCADE;"
		 " CREATE SCHEMA %s",
		 schema, schema);
	PGresult *r = PQexec(c, sql);
	ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	PQfinish(c);
	snprintf(out, n, "%s%coptions=-csearch_path%%3D%s", pg_base,
		 strchr(pg_base, '?') ? '&' : '?', schema);
}

static void url_for(int kind, char *out, size_t n)
{
	if (kind == 0)
		snprintf(out, n, "memory:");
	else if (kind == 1)
		snprintf(out, n, "sqlite:%s/sub/crund.db", dir);
	else
		pg_url(out, n);
}

/* A test body runs as a task on a loop (the store's callbacks need one). */
typedef struct tctx {
	int kind;
	cr_loop *loop;
	crd_store *st;
	char url[700];
} tctx;

static crd_store *open_ok(tctx *t)
{
	crd_store_opts o = {.sync = CRD_STORE_SYNC_NORMAL, .loop = t->loop};
	char err[512] = "";
	crd_store *st = NULL;
	int rc = crd_store_open(t->url, &o, &st, err, sizeof(err));
	ck_assert_msg(rc == 0, "open %s: %d %s", t->url, rc, err);
	return st;
}

static crd_store_job sample(uint64_t seq, int state)
{
	static char id[32];
	snprintf(id, sizeof(id), "test%llu", (unsigned long long)seq);
	crd_store_job j = {
		.seq = seq,
		.id = id,
		.plugin = "demo",
		.job = "echo",
		.args = "{\"value\":[1,2,3]}",
		.state = state,
		.attempt = 1,
		.max_attempts = 3,
		.on_interrupt = CRD_ON_INTERRUPT_RETRY,
		.isolated = true,
		.timeout = 2.5,
		.run_at = 0,
		.result = state == 2 ? "[1,2,3]" : NULL,
		.err_code = NULL,
		.progress = 0.5,
		.progress_msg = "half",
		.created_at = 1700000000.25,
		.started_at = 1700000001.5,
		.attempts = "[]",
		.log = "line one\nline two\n",
		.log_len = 18,
	};
	return j;
}

struct seen {
	int n;
	uint64_t seqs[256];
	int states[256];
	char last_log[64];
	char last_args[64];
	char last_result[64];
	double last_timeout, last_created;
	unsigned last_attempt, last_max;
	int last_oi;
	bool last_isolated;
	bool cancel_requested[256];
};

static int collect(const crd_store_job *j, void *arg)
{
	struct seen *s = arg;
	ck_assert_int_lt(s->n, 256);
	s->seqs[s->n] = j->seq;
	s->states[s->n] = j->state;
	s->n++;
	snprintf(s->last_log, sizeof(s->last_log), "%.*s", (int)j->log_len, j->log ? j->log : "");
	snprintf(s->last_args, sizeof(s->last_args), "%s", j->args);
	snprintf(s->last_result, sizeof(s->last_result), "%s", j->result ? j->result : "(null)");
	s->last_timeout = j->timeout;
	s->last_created = j->created_at;
	s->last_attempt = j->attempt;
	s->last_max = j->max_attempts;
	s->last_oi = j->on_interrupt;
	s->last_isolated = j->isolated;
	s->cancel_requested[s->n - 1] = j->cancel_requested;
	return 0;
}

struct done_rec {
	int calls;
	int last_rc;
};

static void on_done(void *arg, int rc)
{
	struct done_rec *d = arg;
	d->calls++;
	d->last_rc = rc;
}

static int run_body(int kind, cr_fn fn)
{
	tctx t = {.kind = kind};
	t.loop = tu_loop();
	url_for(kind, t.url, sizeof(t.url));
	int rc = tu_run_on(t.loop, fn, &t, NULL);
	ck_assert_int_eq(cr_loop_close(t.loop), 0);
	cr_loop_unref(t.loop);
	return rc;
}

/* ------------------------------------------------- every backend */

static int body_put_load(void *arg, void **ret)
{
	tctx *t = arg;
	(void)ret;
	crd_store *st = open_ok(t);
	ck_assert_ptr_nonnull(crd_store_id_prefix(st));
	ck_assert_int_eq(strlen(crd_store_id_prefix(st)), 13);
	struct done_rec d = {0};
	for (uint64_t s = 1; s <= 10; s++) {
		crd_store_job j = sample(s, s % 2 ? 0 : 2);
		ck_assert_int_eq(crd_store_put(st, &j, on_done, &d), 0);
	}
	ck_assert_int_eq(d.calls, 0); /* nothing is durable before a commit */
	ck_assert_int_eq(crd_store_drain(st, 10), 0);
	ck_assert_int_eq(d.calls, 10);
	ck_assert_int_eq(d.last_rc, 0);
	struct seen s = {0};
	ck_assert_int_eq(crd_store_load(st, collect, &s), 0);
	ck_assert_int_eq(s.n, 10);
	for (int i = 0; i < 10; i++) {
		ck_assert_uint_eq(s.seqs[i], (uint64_t)i + 1); /* oldest first */
		ck_assert_int_eq(s.states[i], (i + 1) % 2 ? 0 : 2);
	}
	ck_assert_str_eq(s.last_log, "line one\nline two\n");
	ck_assert_str_eq(s.last_args, "{\"value\":[1,2,3]}");
	ck_assert_str_eq(s.last_result, "[1,2,3]");
	ck_assert_double_eq(s.last_timeout, 2.5);
	ck_assert_double_eq(s.last_created, 1700000000.25);
	ck_assert_uint_eq(s.last_attempt, 1);
	ck_assert_uint_eq(s.last_max, 3);
	ck_assert_int_eq(s.last_oi, CRD_ON_INTERRUPT_RETRY);
	ck_assert(s.last_isolated);
	ck_assert_uint_eq(crd_store_max_seq(st), 10);
	ck_assert_ptr_null(crd_store_error(st, NULL));
	crd_store_close(st);
	return 0;
}

START_TEST(put_then_load_gives_every_field_back)
{
	ck_assert_int_eq(run_body(_i, body_put_load), 0);
}
END_TEST

static int body_coalesce(void *arg, void **ret)
{
	tctx *t = arg;
	(void)ret;
	crd_store *st = open_ok(t);
	struct done_rec d = {0};
	/* three versions of one job before the flush runs: one row, the newest */
	for (int state = 0; state < 3; state++) {
		crd_store_job j = sample(7, state);
		ck_assert_int_eq(crd_store_put(st, &j, on_done, &d), 0);
	}
	crd_store_stats stats;
	crd_store_get_stats(st, &stats);
	ck_assert_uint_eq(stats.pending, 1);
	ck_assert_int_eq(crd_store_drain(st, 10), 0);
	ck_assert_int_eq(d.calls, 3); /* every waiter is told */
	struct seen s = {0};
	ck_assert_int_eq(crd_store_load(st, collect, &s), 0);
	ck_assert_int_eq(s.n, 1);
	ck_assert_int_eq(s.states[0], 2);
	crd_store_get_stats(st, &stats);
	ck_assert_uint_eq(stats.rows_committed, 1);
	crd_store_close(st);
	return 0;
}

START_TEST(puts_of_one_job_collapse_into_the_newest)
{
	ck_assert_int_eq(run_body(_i, body_coalesce), 0);
}
END_TEST

static int body_group(void *arg, void **ret)
{
	tctx *t = arg;
	(void)ret;
	crd_store *st = open_ok(t);
	for (uint64_t s = 1; s <= 200; s++) {
		crd_store_job j = sample(s, 0);
		ck_assert_int_eq(crd_store_put(st, &j, NULL, NULL), 0);
	}
	ck_assert_int_eq(crd_store_drain(st, 10), 0);
	crd_store_stats stats;
	crd_store_get_stats(st, &stats);
	/* all put in one loop turn: one commit holds them all */
	ck_assert_uint_eq(stats.commits, 1);
	ck_assert_uint_eq(stats.rows_committed, 200);
	ck_assert_uint_eq(stats.pending, 0);
	crd_store_close(st);
	return 0;
}

START_TEST(puts_in_one_turn_share_one_commit) { ck_assert_int_eq(run_body(_i, body_group), 0); }
END_TEST

/* Puts while a commit is in flight wait for the next one, together: the
 * first commit holds row 1 (and rows 2-5 too if the writer had not taken
 * it yet when they came), never a commit for each. */
struct chain {
	crd_store *st;
	int commits_seen;
	struct done_rec d2;
};

static void first_done(void *arg, int rc)
{
	struct chain *c = arg;
	ck_assert_int_eq(rc, 0);
	c->commits_seen++;
}

static int body_next_commit(void *arg, void **ret)
{
	tctx *t = arg;
	(void)ret;
	struct chain c = {0};
	c.st = open_ok(t);
	crd_store_job j = sample(1, 0);
	ck_assert_int_eq(crd_store_put(c.st, &j, first_done, &c), 0);
	ck_assert_int_eq(cr_sleep(0), 0); /* the flush runs: commit 1 is under way */
	for (uint64_t s = 2; s <= 5; s++) {
		crd_store_job k = sample(s, 0);
		ck_assert_int_eq(crd_store_put(c.st, &k, on_done, &c.d2), 0);
	}
	ck_assert_int_eq(crd_store_drain(c.st, 10), 0);
	ck_assert_int_eq(c.commits_seen, 1);
	ck_assert_int_eq(c.d2.calls, 4);
	crd_store_stats stats;
	crd_store_get_stats(c.st, &stats);
	ck_assert_uint_ge(stats.commits, 1);
	ck_assert_uint_le(stats.commits, 2);
	ck_assert_uint_eq(stats.rows_committed, 5);
	crd_store_close(c.st);
	return 0;
}

START_TEST(puts_during_a_commit_join_the_next)
{
	ck_assert_int_eq(run_body(_i, body_next_commit), 0);
}
END_TEST

static int body_delete(void *arg, void **ret)
{
	tctx *t = arg;
	(void)ret;
	crd_store *st = open_ok(t);
	for (uint64_t s = 1; s <= 5; s++) {
		crd_store_job j = sample(s, 2);
		ck_assert_int_eq(crd_store_put(st, &j, NULL, NULL), 0);
	}
	ck_assert_int_eq(crd_store_drain(st, 10), 0);
	ck_assert_int_eq(crd_store_delete(st, 2, NULL, NULL), 0);
	ck_assert_int_eq(crd_store_delete(st, 4, NULL, NULL), 0);
	ck_assert_int_eq(crd_store_delete(st, 99, NULL, NULL), 0); /* unknown: no error */
	ck_assert_int_eq(crd_store_drain(st, 10), 0);
	struct seen s = {0};
	ck_assert_int_eq(crd_store_load(st, collect, &s), 0);
	ck_assert_int_eq(s.n, 3);
	ck_assert_uint_eq(s.seqs[0], 1);
	ck_assert_uint_eq(s.seqs[1], 3);
	ck_assert_uint_eq(s.seqs[2], 5);
	ck_assert_uint_eq(crd_store_max_seq(st), 5); /* deletions keep the high-water mark */
	crd_store_close(st);
	return 0;
}

START_TEST(delete_forgets_a_job) { ck_assert_int_eq(run_body(_i, body_delete), 0); }
END_TEST

/* Jobs 1..n, ended, committed; job `keyed` has the idempotency key `key`. */
static void put_ended(crd_store *st, uint64_t n, uint64_t keyed, const char *key)
{
	for (uint64_t s = 1; s <= n; s++) {
		crd_store_job j = sample(s, 2);
		j.idem_key = s == keyed ? key : NULL;
		ck_assert_int_eq(crd_store_put(st, &j, NULL, NULL), 0);
	}
	ck_assert_int_eq(crd_store_drain(st, 10), 0);
}

/* A new job with the idempotency key `key` commits. */
static void put_keyed_ok(crd_store *st, uint64_t seq, const char *key)
{
	crd_store_job j = sample(seq, 0);
	j.idem_key = key;
	struct done_rec d = {0};
	ck_assert_int_eq(crd_store_put(st, &j, on_done, &d), 0);
	ck_assert_int_eq(crd_store_drain(st, 10), 0);
	ck_assert_int_eq(d.calls, 1);
	ck_assert_int_eq(d.last_rc, 0);
}

/* Deletions in one batch go in runs of consecutive numbers (retention
 * forgets the oldest jobs), and a job forgotten in a batch frees its
 * idempotency key for a new job in the same batch. */
static int body_delete_runs(void *arg, void **ret)
{
	tctx *t = arg;
	(void)ret;
	crd_store *st = open_ok(t);
	put_ended(st, 12, 3, "key-3");
	static const uint64_t gone[] = {5, 2, 3, 4, 8, 11, 10, 12};
	for (size_t i = 0; i < sizeof(gone) / sizeof(*gone); i++)
		ck_assert_int_eq(crd_store_delete(st, gone[i], NULL, NULL), 0);
	put_keyed_ok(st, 13, "key-3");
	struct seen s = {0};
	ck_assert_int_eq(crd_store_load(st, collect, &s), 0);
	static const uint64_t kept[] = {1, 6, 7, 9, 13};
	ck_assert_int_eq(s.n, 5);
	for (int i = 0; i < 5; i++)
		ck_assert_uint_eq(s.seqs[i], kept[i]);
	ck_assert_ptr_null(crd_store_error(st, NULL));
	crd_store_close(st);
	return 0;
}

START_TEST(deletions_in_runs_and_a_freed_key_commit)
{
	ck_assert_int_eq(run_body(_i, body_delete_runs), 0);
}
END_TEST

/* A soft row (a job's start) is written without a drain or another
 * commit to ride along (within the 5 ms of a lazy row), and one replaced
 * by the job's next row is not written at all. */
static int body_soft(void *arg, void **ret)
{
	tctx *t = arg;
	(void)ret;
	crd_store *st = open_ok(t);
	crd_store_job j = sample(1, 0);
	struct done_rec d = {0};
	ck_assert_int_eq(crd_store_put(st, &j, on_done, &d), 0);
	ck_assert_int_eq(crd_store_drain(st, 10), 0);
	crd_store_stats a, b;
	crd_store_get_stats(st, &a);
	j.state = 1; /* running */
	ck_assert_int_eq(crd_store_put_soft(st, &j), 0);
	for (int i = 0; i < 200; i++) { /* up to 2 s (valgrind) */
		crd_store_get_stats(st, &b);
		if (b.rows_committed > a.rows_committed && !b.pending)
			break;
		ck_assert_int_eq(cr_sleep(0.01), 0);
	}
	ck_assert_uint_eq(b.rows_committed, a.rows_committed + 1);
	/* job 2: its start, then at once its end: one row */
	crd_store_job k = sample(2, 1);
	ck_assert_int_eq(crd_store_put_soft(st, &k), 0);
	k.state = 2;
	ck_assert_int_eq(crd_store_put(st, &k, NULL, NULL), 0);
	ck_assert_int_eq(crd_store_drain(st, 10), 0);
	crd_store_get_stats(st, &a);
	ck_assert_uint_eq(a.rows_committed, b.rows_committed + 1);
	struct seen s = {0};
	ck_assert_int_eq(crd_store_load(st, collect, &s), 0);
	if (crd_store_durable(st)) {
		ck_assert_int_eq(s.n, 2);
		ck_assert_int_eq(s.states[0], 1);
		ck_assert_int_eq(s.states[1], 2);
	}
	crd_store_close(st);
	return 0;
}

START_TEST(a_soft_row_is_written_by_itself_or_replaced)
{
	ck_assert_int_eq(run_body(_i, body_soft), 0);
}
END_TEST

static int body_reopen(void *arg, void **ret)
{
	tctx *t = arg;
	(void)ret;
	crd_store *st = open_ok(t);
	char prefix[16];
	snprintf(prefix, sizeof(prefix), "%s", crd_store_id_prefix(st));
	for (uint64_t s = 1; s <= 3; s++) {
		crd_store_job j = sample(s, 1);
		ck_assert_int_eq(crd_store_put(st, &j, NULL, NULL), 0);
	}
	ck_assert_int_eq(crd_store_delete(st, 3, NULL, NULL), 0);
	ck_assert_int_eq(crd_store_drain(st, 10), 0);
	crd_store_close(st);

	st = open_ok(t);
	struct seen s = {0};
	ck_assert_int_eq(crd_store_load(st, collect, &s), 0);
	if (crd_store_durable(st)) {
		ck_assert_int_eq(s.n, 2);
		ck_assert_str_eq(crd_store_id_prefix(st), prefix); /* ids stay unique */
		ck_assert_uint_eq(crd_store_max_seq(st), 3);
	} else {
		ck_assert_int_eq(s.n, 0); /* memory: keeps nothing */
		ck_assert_uint_eq(crd_store_max_seq(st), 0);
	}
	crd_store_close(st);
	return 0;
}

START_TEST(reopening_finds_the_jobs_only_when_durable)
{
	ck_assert_int_eq(run_body(_i, body_reopen), 0);
}
END_TEST

/* A running job's cancel request is kept with its row (a restart ends the
 * job cancelled), and a deletion somebody waits for is told at its commit.
 * (That the file has it then, not only at close, is tests/e2e/durable.sh's
 * kill -9 after a DELETE: here the store hides its deferred deletions.) */
static int body_cancel_delete(void *arg, void **ret)
{
	tctx *t = arg;
	(void)ret;
	crd_store *st = open_ok(t);
	struct done_rec d = {0};
	for (uint64_t s = 1; s <= 3; s++) {
		crd_store_job j = sample(s, s == 3 ? 2 : 1);
		j.cancel_requested = s == 1;
		ck_assert_int_eq(crd_store_put(st, &j, NULL, NULL), 0);
	}
	ck_assert_int_eq(crd_store_drain(st, 10), 0);
	ck_assert_int_eq(crd_store_delete(st, 3, on_done, &d), 0);
	ck_assert_int_eq(crd_store_drain(st, 10), 0);
	ck_assert_int_eq(d.calls, 1);
	ck_assert_int_eq(d.last_rc, 0);
	struct seen s = {0};
	ck_assert_int_eq(crd_store_load(st, collect, &s), 0);
	ck_assert_int_eq(s.n, 2);
	ck_assert(s.cancel_requested[0]);
	ck_assert(!s.cancel_requested[1]);
	bool durable = crd_store_durable(st);
	crd_store_close(st);
	if (!durable)
		return 0;
	st = open_ok(t);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(crd_store_load(st, collect, &s), 0);
	ck_assert_int_eq(s.n, 2);
	ck_assert_uint_eq(s.seqs[0], 1);
	ck_assert(s.cancel_requested[0]);
	ck_assert(!s.cancel_requested[1]);
	crd_store_close(st);
	return 0;
}

START_TEST(a_cancel_request_and_a_waited_deletion_are_written)
{
	ck_assert_int_eq(run_body(_i, body_cancel_delete), 0);
}
END_TEST

/* ------------------------------------------------------ sqlite only */

static int try_open(const char *url, char *err, size_t errlen)
{
	crd_store_opts o = {.sync = CRD_STORE_SYNC_FULL, .loop = NULL};
	crd_store *st = NULL;
	int rc = crd_store_open(url, &o, &st, err, errlen);
	if (rc == 0)
		crd_store_close(st);
	return rc;
}

START_TEST(sqlite_creates_its_directory_0700)
{
	char url[300], err[512];
	snprintf(url, sizeof(url), "sqlite:%s/a/b/crund.db", dir);
	ck_assert_int_eq(try_open(url, err, sizeof(err)), 0);
	char p[300];
	struct stat sb;
	snprintf(p, sizeof(p), "%s/a/b", dir);
	ck_assert_int_eq(stat(p, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0700);
	snprintf(p, sizeof(p), "%s/a", dir);
	ck_assert_int_eq(stat(p, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0700);
}
END_TEST

START_TEST(a_second_opener_is_refused_with_the_holders_pid)
{
	char url[300], err[512] = "";
	snprintf(url, sizeof(url), "sqlite:%s/crund.db", dir);
	int p2c[2], c2p[2];
	ck_assert_int_eq(pipe(p2c), 0);
	ck_assert_int_eq(pipe(c2p), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) { /* the holder */
		crd_store_opts o = {.loop = NULL};
		crd_store *st = NULL;
		char e[512];
		char c = crd_store_open(url, &o, &st, e, sizeof(e)) == 0 ? 'y' : 'n';
		if (write(c2p[1], &c, 1) != 1 || read(p2c[0], &c, 1) < 0)
			_exit(2);
		crd_store_close(st);
		_exit(0);
	}
	char c = 0;
	ck_assert_int_eq(read(c2p[0], &c, 1), 1);
	ck_assert_int_eq(c, 'y');
	ck_assert_int_eq(try_open(url, err, sizeof(err)), -EBUSY);
	char want[64];
	snprintf(want, sizeof(want), "pid %ld", (long)pid);
	ck_assert_msg(strstr(err, want) != NULL, "message: %s", err);
	ck_assert_ptr_nonnull(strstr(err, "crund.db"));
	ck_assert_int_eq(write(p2c[1], "x", 1), 1);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* once the holder is gone, the store opens */
	ck_assert_int_eq(try_open(url, err, sizeof(err)), 0);
}
END_TEST

START_TEST(foreign_and_garbage_files_are_refused)
{
	char path[300], url[320], err[512] = "";
	/* an SQLite database of another program */
	snprintf(path, sizeof(path), "%s/other.db", dir);
	sqlite3 *db;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(
		sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);", NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(db);
	snprintf(url, sizeof(url), "sqlite:%s", path);
	ck_assert_int_eq(try_open(url, err, sizeof(err)), -EPROTO);
	ck_assert_msg(strstr(err, "not a crund store") != NULL, "message: %s", err);
	/* not a database at all */
	snprintf(path, sizeof(path), "%s/garbage.db", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < 512; i++)
		fputs("this is not a database ", f);
	fclose(f);
	snprintf(url, sizeof(url), "sqlite:%s", path);
	int rc = try_open(url, err, sizeof(err));
	ck_assert_int_eq(rc, -EPROTO);
	ck_assert_ptr_nonnull(strstr(err, path));
	/* a directory where the file should be */
	snprintf(path, sizeof(path), "%s/adir", dir);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	snprintf(url, sizeof(url), "sqlite:%s", path);
	ck_assert_int_lt(try_open(url, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, path));
}
END_TEST

START_TEST(a_store_from_a_newer_crund_is_refused)
{
	char url[320], path[300], err[512] = "";
	snprintf(path, sizeof(path), "%s/crund.db", dir);
	snprintf(url, sizeof(url), "sqlite:%s", path);
	ck_assert_int_eq(try_open(url, err, sizeof(err)), 0);
	sqlite3 *db;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(
		sqlite3_exec(db, "UPDATE schema_version SET version = 999", NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(try_open(url, err, sizeof(err)), -EPROTO);
	ck_assert_msg(strstr(err, "newer crund") != NULL, "message: %s", err);
}
END_TEST

/* The first schema, as version 1 wrote it, opens and loads. */
START_TEST(the_first_schema_version_opens_and_loads)
{
	char url[320], path[300], err[512] = "";
	snprintf(path, sizeof(path), "%s/v1.db", dir);
	sqlite3 *db;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	const char *v1 =
		"PRAGMA application_id=1668445550;"
		"CREATE TABLE schema_version (version INTEGER NOT NULL);"
		"INSERT INTO schema_version VALUES (1);"
		"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
		"INSERT INTO meta VALUES ('id_prefix', 'abcdefghjkmnp'), ('max_seq', '41');"
		"CREATE TABLE jobs (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
		" plugin TEXT NOT NULL, job TEXT NOT NULL, args TEXT NOT NULL, state INTEGER NOT "
		"NULL,"
		" attempt INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL DEFAULT 1,"
		" on_interrupt INTEGER NOT NULL DEFAULT 0, isolated INTEGER NOT NULL DEFAULT 0,"
		" timeout REAL NOT NULL DEFAULT 0, run_at REAL NOT NULL DEFAULT 0,"
		" idempotency_key TEXT UNIQUE, result TEXT, error_code TEXT, error_message TEXT,"
		" progress REAL NOT NULL DEFAULT -1, progress_message TEXT, created_at REAL NOT "
		"NULL,"
		" started_at REAL NOT NULL DEFAULT 0, finished_at REAL NOT NULL DEFAULT 0,"
		" attempts TEXT, log TEXT, log_truncated INTEGER NOT NULL DEFAULT 0);"
		"INSERT INTO jobs (seq, id, plugin, job, args, state, created_at)"
		" VALUES (40, 'abcdefghjkmnp18', 'demo', 'noop', '{}', 0, 1700000000);"
		"INSERT INTO jobs (seq, id, plugin, job, args, state, created_at, idempotency_key)"
		" VALUES (41, 'abcdefghjkmnp19', 'demo', 'noop', '{}', 2, 1700000001, 'k1');";
	ck_assert_int_eq(sqlite3_exec(db, v1, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	snprintf(url, sizeof(url), "sqlite:%s", path);
	tctx t = {.kind = 1};
	snprintf(t.url, sizeof(t.url), "%s", url);
	t.loop = tu_loop();
	crd_store *st = open_ok(&t);
	ck_assert_str_eq(crd_store_id_prefix(st), "abcdefghjkmnp");
	ck_assert_uint_eq(crd_store_max_seq(st), 41);
	struct seen s = {0};
	ck_assert_int_eq(crd_store_load(st, collect, &s), 0);
	ck_assert_int_eq(s.n, 2);
	ck_assert_uint_eq(s.seqs[0], 40);
	ck_assert_uint_eq(s.seqs[1], 41);
	crd_store_close(st);
	ck_assert_int_eq(cr_loop_close(t.loop), 0);
	cr_loop_unref(t.loop);
	/* migrated to the newest version: the key is still the only one */
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *q;
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &q, NULL),
			 SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(q, 0), 4);
	sqlite3_finalize(q);
	ck_assert_int_ne(sqlite3_exec(db,
				      "INSERT INTO jobs (seq, id, plugin, job, args, state,"
				      " created_at, idempotency_key) VALUES (42, 'x', 'demo',"
				      " 'noop', '{}', 0, 1, 'k1')",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db,
				      "INSERT INTO jobs (seq, id, plugin, job, args, state,"
				      " created_at) VALUES (43, 'y', 'demo', 'noop', '{}', 0, 1),"
				      " (44, 'z', 'demo', 'noop', '{}', 0, 1)",
				      NULL, NULL, NULL),
			 SQLITE_OK); /* jobs without a key: no constraint */
	sqlite3_close(db);
	(void)err;
}
END_TEST

/* SQLite writes a few deletions (retention's) only once enough are due:
 * meanwhile a load does not show them, a job with the idempotency key of
 * a deleted one still commits, and closing the store writes them. */
static int body_deferred_deletions(void *arg, void **ret)
{
	tctx *t = arg;
	(void)ret;
	crd_store *st = open_ok(t);
	put_ended(st, 20, 20, "k-20");
	for (uint64_t s = 1; s <= 5; s++)
		ck_assert_int_eq(crd_store_delete(st, s, NULL, NULL), 0);
	ck_assert_int_eq(crd_store_drain(st, 10), 0);
	ck_assert_int_eq(crd_store_delete(st, 20, NULL, NULL), 0);
	ck_assert_int_eq(crd_store_drain(st, 10), 0);
	struct seen s = {0};
	ck_assert_int_eq(crd_store_load(st, collect, &s), 0);
	ck_assert_int_eq(s.n, 14);
	ck_assert_uint_eq(s.seqs[0], 6);
	ck_assert_uint_eq(s.seqs[13], 19);
	/* a later batch takes the key of job 20 (deleted, not written yet) */
	put_keyed_ok(st, 21, "k-20");
	ck_assert_int_eq(crd_store_delete(st, 6, NULL, NULL), 0);
	ck_assert_int_eq(crd_store_drain(st, 10), 0);
	ck_assert_ptr_null(crd_store_error(st, NULL));
	crd_store_close(st);

	st = open_ok(t);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(crd_store_load(st, collect, &s), 0);
	ck_assert_int_eq(s.n, 14); /* 7..19 and 21: the close wrote job 6's */
	ck_assert_uint_eq(s.seqs[0], 7);
	ck_assert_uint_eq(s.seqs[12], 19);
	ck_assert_uint_eq(s.seqs[13], 21);
	ck_assert_uint_eq(crd_store_max_seq(st), 21);
	crd_store_close(st);
	return 0;
}

START_TEST(sqlite_defers_a_few_deletions_and_writes_them_at_close)
{
	ck_assert_int_eq(run_body(1, body_deferred_deletions), 0);
}
END_TEST

/* A disk that refuses writes (a file-size limit stands in for a full
 * disk): the put's waiter hears the error, the store says why, and once
 * writes work again the row is committed without being put again. */
static int body_failing_disk(void *arg, void **ret)
{
	tctx *t = arg;
	(void)ret;
	crd_store *st = open_ok(t);
	crd_store_job j = sample(1, 0);
	ck_assert_int_eq(crd_store_put(st, &j, NULL, NULL), 0);
	ck_assert_int_eq(crd_store_drain(st, 10), 0);

	signal(SIGXFSZ, SIG_IGN);
	struct rlimit old, lim;
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 4096; /* smaller than the WAL already is */
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);

	static char big[200000];
	memset(big, 'x', sizeof(big) - 1);
	crd_store_job k = sample(2, 0);
	k.log = big;
	k.log_len = sizeof(big) - 1;
	struct done_rec d = {0};
	ck_assert_int_eq(crd_store_put(st, &k, on_done, &d), 0);
	for (int i = 0; i < 500 && !d.calls; i++)
		ck_assert_int_eq(cr_sleep(0.01), 0);
	ck_assert_int_eq(d.calls, 1);
	ck_assert_int_lt(d.last_rc, 0);
	int code = 0;
	const char *why = crd_store_error(st, &code);
	ck_assert_ptr_nonnull(why);
	ck_assert_int_lt(code, 0);
	ck_assert_ptr_nonnull(strstr(why, "crund.db"));
	crd_store_stats stats;
	crd_store_get_stats(st, &stats);
	ck_assert_uint_ge(stats.commit_failures, 1);
	ck_assert_uint_eq(stats.pending, 1); /* kept for the next commit */

	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	/* the store retries by itself */
	for (int i = 0; i < 500 && crd_store_error(st, NULL); i++)
		ck_assert_int_eq(cr_sleep(0.01), 0);
	ck_assert_ptr_null(crd_store_error(st, NULL));
	ck_assert_int_eq(crd_store_drain(st, 10), 0);
	crd_store_close(st);

	st = open_ok(t);
	struct seen s = {0};
	ck_assert_int_eq(crd_store_load(st, collect, &s), 0);
	ck_assert_int_eq(s.n, 2);
	ck_assert_uint_eq(s.seqs[1], 2);
	crd_store_close(st);
	return 0;
}

START_TEST(a_failing_disk_is_reported_and_recovered_from)
{
	ck_assert_int_eq(run_body(1, body_failing_disk), 0);
}
END_TEST

START_TEST(unknown_urls_are_refused_clearly)
{
	char err[512] = "";
	ck_assert_int_eq(try_open("redis://x", err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "sqlite:PATH"));
	ck_assert_ptr_nonnull(strstr(err, "postgresql://"));
	ck_assert_int_eq(try_open("sqlite:", err, sizeof(err)), -EINVAL);
}
END_TEST

/* ------------------------------------------------- postgresql only */

START_TEST(postgresql_refuses_an_unreachable_server_with_the_reason)
{
	char err[512] = "";
	int rc = try_open("postgresql://crund@127.0.0.1:1/crund?connect_timeout=2", err,
			  sizeof(err));
	ck_assert_int_lt(rc, 0);
	ck_assert_ptr_nonnull(strstr(err, "127.0.0.1"));
	ck_assert_ptr_nonnull(strstr(err, "connect"));
}
END_TEST

/* Two nodes open an empty database at the same moment: the migration runs
 * once (under the advisory lock), both see the same id prefix. */
START_TEST(two_nodes_opening_an_empty_database_migrate_once)
{
	char url[700];
	pg_url(url, sizeof(url));
	int fds[2][2];
	pid_t pids[2];
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(pipe(fds[i]), 0);
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			char e[512], out[64] = "fail";
			crd_store *st = NULL;
			cr_loop *loop = tu_loop();
			crd_store_opts o = {.loop = loop};
			if (crd_store_open(url, &o, &st, e, sizeof(e)) == 0) {
				snprintf(out, sizeof(out), "%s", crd_store_id_prefix(st));
				crd_store_close(st);
			}
			if (write(fds[i][1], out, strlen(out)) < 0)
				_exit(2);
			_exit(0);
		}
		close(fds[i][1]);
	}
	char got[2][64];
	for (int i = 0; i < 2; i++) {
		ssize_t n = read(fds[i][0], got[i], sizeof(got[i]) - 1);
		got[i][n > 0 ? n : 0] = '\0';
		close(fds[i][0]);
		int status;
		waitpid(pids[i], &status, 0);
	}
	ck_assert_str_ne(got[0], "fail");
	ck_assert_str_eq(got[0], got[1]);
	/* one schema version row: migrated once */
	char sch[64];
	snprintf(sch, sizeof(sch), "t%ld_%d", (long)getpid(), pg_schema_n - 1);
	PGconn *c = PQconnectdb(pg_base);
	char sql[160];
	snprintf(sql, sizeof(sql), "SELECT count(*), max(version) FROM %s.crund_schema", sch);
	PGresult *r = PQexec(c, sql);
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	ck_assert_str_eq(PQgetvalue(r, 0, 0), "1");
	ck_assert_str_eq(PQgetvalue(r, 0, 1), "3"); /* the latest schema version */
	PQclear(r);
	PQfinish(c);
}
END_TEST

/* PostgreSQL for the suite: CRUND_TEST_PG_URL, or a throwaway cluster. */
static void pg_setup(void)
{
	const char *u = getenv("CRUND_TEST_PG_URL");
	if (u && *u) {
		snprintf(pg_base, sizeof(pg_base), "%s", u);
		NKINDS = 3;
		return;
	}
	const char *src = getenv("top_srcdir");
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "'%s/tests/pg/cluster.sh' start", src ? src : ".");
	FILE *p = popen(cmd, "r");
	if (!p || !fgets(pg_cluster, sizeof(pg_cluster), p)) {
		if (p)
			pclose(p);
		pg_cluster[0] = '\0';
		fprintf(stderr, "test-store: no PostgreSQL (tests/pg/cluster.sh could not start "
				"one): the postgresql cases are left out\n");
		return;
	}
	pclose(p);
	pg_cluster[strcspn(pg_cluster, "\n")] = '\0';
	snprintf(cmd, sizeof(cmd), "'%s/tests/pg/cluster.sh' url '%s'", src ? src : ".",
		 pg_cluster);
	p = popen(cmd, "r");
	if (p && fgets(pg_base, sizeof(pg_base), p)) {
		pg_base[strcspn(pg_base, "\n")] = '\0';
		NKINDS = 3;
	}
	if (p)
		pclose(p);
}

static void pg_teardown(void)
{
	if (!pg_cluster[0])
		return;
	const char *src = getenv("top_srcdir");
	char cmd[1100];
	snprintf(cmd, sizeof(cmd), "'%s/tests/pg/cluster.sh' stop '%s'", src ? src : ".",
		 pg_cluster);
	if (system(cmd) != 0)
		fprintf(stderr, "test-store: could not stop the cluster in %s\n", pg_cluster);
}

START_TEST(the_default_url_follows_systemd_and_xdg)
{
	setenv("STATE_DIRECTORY", "/srv/state:/other", 1);
	char *u = crd_store_default_url();
	ck_assert_str_eq(u, "sqlite:/srv/state/crund.db");
	free(u);
	unsetenv("STATE_DIRECTORY");
	if (geteuid() != 0) {
		setenv("XDG_STATE_HOME", "/home/u/.st", 1);
		u = crd_store_default_url();
		ck_assert_str_eq(u, "sqlite:/home/u/.st/crund/crund.db");
		free(u);
	} else {
		u = crd_store_default_url();
		ck_assert_str_eq(u, "sqlite:/var/lib/crund/crund.db");
		free(u);
	}
}
END_TEST

int main(void)
{
	pg_setup();
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("every backend");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, put_then_load_gives_every_field_back, 0, NKINDS);
	tcase_add_loop_test(tc, puts_of_one_job_collapse_into_the_newest, 0, NKINDS);
	tcase_add_loop_test(tc, puts_in_one_turn_share_one_commit, 0, NKINDS);
	tcase_add_loop_test(tc, puts_during_a_commit_join_the_next, 0, NKINDS);
	tcase_add_loop_test(tc, delete_forgets_a_job, 0, NKINDS);
	tcase_add_loop_test(tc, deletions_in_runs_and_a_freed_key_commit, 0, NKINDS);
	tcase_add_loop_test(tc, reopening_finds_the_jobs_only_when_durable, 0, NKINDS);
	/* PostgreSQL keeps cancel requests in the database (tests/pg/nodes.sh) */
	tcase_add_loop_test(tc, a_cancel_request_and_a_waited_deletion_are_written, 0, 2);
	tcase_add_loop_test(tc, a_soft_row_is_written_by_itself_or_replaced, 0, NKINDS);
	suite_add_tcase(s, tc);
	tc = tcase_create("sqlite");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, sqlite_creates_its_directory_0700);
	tcase_add_test(tc, a_second_opener_is_refused_with_the_holders_pid);
	tcase_add_test(tc, foreign_and_garbage_files_are_refused);
	tcase_add_test(tc, a_store_from_a_newer_crund_is_refused);
	tcase_add_test(tc, the_first_schema_version_opens_and_loads);
	tcase_add_test(tc, a_failing_disk_is_reported_and_recovered_from);
	tcase_add_test(tc, sqlite_defers_a_few_deletions_and_writes_them_at_close);
	tcase_add_test(tc, unknown_urls_are_refused_clearly);
	tcase_add_test(tc, the_default_url_follows_systemd_and_xdg);
	suite_add_tcase(s, tc);
	if (NKINDS == 3) {
		tc = tcase_create("postgresql");
		tcase_add_test(tc, postgresql_refuses_an_unreachable_server_with_the_reason);
		tcase_add_test(tc, two_nodes_opening_an_empty_database_migrate_once);
		suite_add_tcase(s, tc);
	}
	(void)KINDS;
	int rc = tu_main(s);
	pg_teardown();
	return rc;
}
