/*
 * store/postgresql.c — the shared store: several crund nodes on one
 * PostgreSQL database (docs/ARCHITECTURE.md §8.5).
 *
 * The database is the only shared state.  Tables (prefixed crund_, so a
 * database may hold other things too): crund_jobs (one row per job, the
 * columns of crd_store_job plus the lease: node, lease_until,
 * cancel_requested), crund_nodes (heartbeats), crund_meta (the id prefix
 * shared by every node), crund_schema (the version), and the sequence
 * crund_seq_block that hands each node blocks of job numbers.
 *
 * Everything runs on the loop thread, in tasks that await libpq's
 * non-blocking calls (store/pg.c); nothing blocks the loop.  A node uses
 * four connections: commits (store.c's group commit: one statement per
 * batch), work (claims, lease renewal, the election and what the elected
 * node does), reads (API reads of jobs held elsewhere) and listen
 * (LISTEN crund).  Each keeps its order of statements; reads never wait
 * behind a claim.
 *
 * One commit is one statement: every row of the batch as one JSON
 * parameter (json_to_recordset), upserted in a single INSERT ... ON
 * CONFLICT, deletions in a CTE, and one NOTIFY with the batch's job
 * numbers (wakes idle nodes when a row is claimable, and nodes that watch
 * one of the jobs).  An update is fenced: a running row changes only for
 * the node and attempt that hold it (or that node's release of it), a
 * queued row only forward, an ended row never; so a node that lost its
 * lease (paused, partitioned) cannot overwrite the attempt that replaced
 * its own, nor a job that ended meanwhile.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/utf8.h"
#include "store/backend.h"
#include "store/pg.h"

#define DEFAULT_LEASE       30.0
#define POLL_INTERVAL       1.0  /* s: claims and watched jobs without a NOTIFY */
#define PRUNE_INTERVAL      5.0  /* s between the elected node's prunes */
#define GONE_CHECK_INTERVAL 60.0 /* s between check_gone()s without a reconnection */
#define RETRY_SOON          0.25 /* s before a failed renewal is tried again */
#define QUERY_TIMEOUT       15.0 /* s before a silent server counts as lost */
#define READ_TIMEOUT        5.0  /* ... for the API's reads (a client waits on them) */
#define BLOCK_BITS          20   /* job numbers per block: 2^20 */
#define NOTIFY_MAX          7000 /* payload bytes (PostgreSQL's limit is 8000) */
#define ADVISORY_MIGRATE    0x6372756e0001LL
#define ADVISORY_LEADER     0x6372756e0002LL

/* Forward migrations: MIGRATIONS[i] takes schema version i to i + 1. */
static const char *const MIGRATIONS[] = {
	/* 0 → 1: the first schema */
	"CREATE TABLE crund_schema (version integer NOT NULL);"
	"INSERT INTO crund_schema VALUES (0);"
	"CREATE TABLE crund_meta (key text PRIMARY KEY, value text NOT NULL);"
	"CREATE SEQUENCE crund_seq_block;"
	"CREATE TABLE crund_jobs ("
	" seq bigint PRIMARY KEY,"
	" id text NOT NULL UNIQUE,"
	" plugin text NOT NULL,"
	" job text NOT NULL,"
	" args text NOT NULL,"
	" state smallint NOT NULL,"
	" attempt integer NOT NULL DEFAULT 0,"
	" max_attempts integer NOT NULL DEFAULT 1,"
	" on_interrupt smallint NOT NULL DEFAULT 0,"
	" isolated boolean NOT NULL DEFAULT false,"
	" timeout float8 NOT NULL DEFAULT 0,"
	" run_at float8 NOT NULL DEFAULT 0,"
	" idempotency_key text,"
	" result text,"
	" error_code text,"
	" error_message text,"
	" progress float8 NOT NULL DEFAULT -1,"
	" progress_message text,"
	" created_at float8 NOT NULL,"
	" started_at float8 NOT NULL DEFAULT 0,"
	" finished_at float8 NOT NULL DEFAULT 0,"
	" attempts text,"
	" log text,"
	" log_truncated boolean NOT NULL DEFAULT false,"
	" node text,"
	" lease_until float8 NOT NULL DEFAULT 0,"
	" cancel_requested boolean NOT NULL DEFAULT false);"
	"CREATE INDEX crund_jobs_queued ON crund_jobs (seq) WHERE state = 0;"
	"CREATE INDEX crund_jobs_running ON crund_jobs (node) WHERE state = 1;"
	"CREATE INDEX crund_jobs_ended ON crund_jobs (finished_at) WHERE state >= 2;"
	"CREATE INDEX crund_jobs_idem ON crund_jobs (idempotency_key)"
	" WHERE idempotency_key IS NOT NULL;"
	"CREATE TABLE crund_nodes (id text PRIMARY KEY, started_at float8 NOT NULL,"
	" seen_at float8 NOT NULL);",
	/* 1 → 2: an idempotency key names one job among all the nodes (a
	 * version 1 database may hold a key twice, submitted on two nodes:
	 * the oldest job keeps it) */
	"UPDATE crund_jobs j SET idempotency_key = NULL WHERE idempotency_key IS NOT NULL"
	" AND EXISTS (SELECT 1 FROM crund_jobs o WHERE o.idempotency_key = j.idempotency_key"
	" AND o.seq < j.seq);"
	"DROP INDEX crund_jobs_idem;"
	"CREATE UNIQUE INDEX crund_jobs_idem ON crund_jobs (idempotency_key)"
	" WHERE idempotency_key IS NOT NULL;",
	/* 2 → 3: a node's heartbeat names the session of its work connection,
	 * the one that holds the election's lock (see DEPOSE_SQL) */
	"ALTER TABLE crund_nodes ADD COLUMN IF NOT EXISTS pid integer;",
};
#define SCHEMA_VERSION ((int)(sizeof(MIGRATIONS) / sizeof(*MIGRATIONS)))

#define COLS                                                                                    \
	"seq, id, plugin, job, args, state, attempt, max_attempts, on_interrupt, isolated,"     \
	" timeout, run_at, idempotency_key, result, error_code, error_message, progress,"       \
	" progress_message, created_at, started_at, finished_at, attempts, log, log_truncated," \
	" node"
#define NOW "extract(epoch FROM clock_timestamp())"

/* One batch in one statement: deletions, upserts fenced by node and attempt
 * (a node that lost a job cannot overwrite its new attempt), the highest
 * job number, one NOTIFY of the rows put ($6) and one per NOTIFY_MAX of
 * the rows deleted ($7: "d:SEQ,...", so that other nodes drop their
 * copies).  A new row whose idempotency key another job
 * holds is left out.  The answer: the rows left out, with true for those
 * (their submissions are answered with the job that holds the key) and
 * false for the fenced ones (another attempt, another node, or another
 * state: a fail-policy job the elected node ended `interrupted` while its
 * node was paused, which then came back with its own end).  Two nodes inserting one key at once: the
 * unique index makes the later statement fail (23505), and it is run again
 * (it then sees the other's row).  New keyed rows go in in key order, so two
 * batches that share several keys wait for each other in one order, not in
 * a cycle (a deadlock, 40P01, is run again too). */
static const char COMMIT_SQL[] =
	"WITH x AS (SELECT * FROM json_to_recordset($1::json) AS x(seq bigint, id text,"
	" plugin text, job text, args text, state smallint, attempt integer,"
	" max_attempts integer, on_interrupt smallint, isolated boolean, timeout float8,"
	" run_at float8, idempotency_key text, result text, error_code text,"
	" error_message text, progress float8, progress_message text, created_at float8,"
	" started_at float8, finished_at float8, attempts text, log text,"
	" log_truncated boolean, node text, cancel_requested boolean)),"
	" d AS (DELETE FROM crund_jobs WHERE seq = ANY($2::bigint[]) RETURNING 1),"
	" u AS (INSERT INTO crund_jobs AS j (" COLS ", lease_until, cancel_requested)"
	" SELECT seq, id, plugin, job, args, state, attempt, max_attempts, on_interrupt,"
	" isolated, timeout, run_at, idempotency_key, result, error_code, error_message,"
	" progress, progress_message, created_at, started_at, finished_at, attempts, log,"
	" log_truncated, node,"
	" CASE WHEN state = 1 THEN " NOW " + $3::float8 ELSE 0 END,"
	" state = 1 AND coalesce(cancel_requested, false) FROM x"
	" WHERE x.idempotency_key IS NULL OR NOT EXISTS (SELECT 1 FROM crund_jobs k"
	" WHERE k.idempotency_key = x.idempotency_key AND k.seq <> x.seq"
	" AND k.seq <> ALL($2::bigint[]))"
	" ORDER BY x.idempotency_key, x.seq"
	" ON CONFLICT (seq) DO UPDATE SET state = excluded.state, attempt = excluded.attempt,"
	" max_attempts = excluded.max_attempts, on_interrupt = excluded.on_interrupt,"
	" run_at = excluded.run_at, result = excluded.result, error_code = excluded.error_code,"
	" error_message = excluded.error_message, progress = excluded.progress,"
	" progress_message = excluded.progress_message, started_at = excluded.started_at,"
	" finished_at = excluded.finished_at, attempts = excluded.attempts, log = excluded.log,"
	" log_truncated = excluded.log_truncated,"
	" node = CASE WHEN excluded.state = 0 THEN NULL ELSE excluded.node END,"
	/* the fence below compares excluded.node: the row's node as the node
	 * sent it (its own name when it puts back a job it ran: a retry, a
	 * release), so the insert keeps it too */
	" lease_until = excluded.lease_until,"
	" cancel_requested = excluded.state = 1 AND (excluded.cancel_requested"
	" OR (j.cancel_requested AND j.attempt = excluded.attempt))"
	" WHERE (j.state = 0 AND excluded.attempt >= j.attempt)"
	" OR (j.state = 1 AND j.node IS NOT DISTINCT FROM excluded.node"
	" AND (excluded.attempt = j.attempt"
	" OR (excluded.attempt = j.attempt - 1 AND excluded.state = 0)))"
	" RETURNING j.seq),"
	" hi AS (UPDATE crund_meta SET value = $4::text WHERE key = 'max_seq' AND $5::boolean"
	" AND value::bigint < $4::bigint RETURNING 1),"
	" n AS (SELECT pg_notify('crund', $6) WHERE $6 <> ''),"
	" m AS (SELECT pg_notify('crund', p) FROM unnest($7::text[]) p)"
	" SELECT x.seq, c.seq IS NULL FROM x LEFT JOIN crund_jobs c ON c.seq = x.seq"
	" WHERE x.seq NOT IN (SELECT seq FROM u)"
	" AND (c.seq IS NULL AND x.idempotency_key IS NOT NULL AND EXISTS (SELECT 1"
	" FROM crund_jobs k WHERE k.idempotency_key = x.idempotency_key AND k.seq <> x.seq"
	" AND k.seq <> ALL($2::bigint[]))"
	" OR c.attempt <> x.attempt OR c.node IS DISTINCT FROM x.node OR c.state <> x.state)"
	" AND (SELECT count(*) FROM d) >= 0 AND (SELECT count(*) FROM hi) >= 0"
	" AND (SELECT count(*) FROM n) >= 0 AND (SELECT count(*) FROM m) >= 0";

/* Claim up to $2 due queued jobs for node $1: oldest first, rows other
 * nodes are claiming skipped. */
static const char CLAIM_SQL[] =
	"WITH c AS (SELECT seq FROM crund_jobs WHERE state = 0 AND run_at <= " NOW
	" ORDER BY seq LIMIT $2::integer FOR UPDATE SKIP LOCKED)"
	" UPDATE crund_jobs j SET state = 1, attempt = j.attempt + 1, node = $1,"
	" started_at = " NOW ", run_at = 0, lease_until = " NOW " + $3::float8,"
	" cancel_requested = false, result = NULL FROM c WHERE j.seq = c.seq"
	" RETURNING j.seq, j.id, j.plugin, j.job, j.args, j.state, j.attempt, j.max_attempts,"
	" j.on_interrupt, j.isolated, j.timeout, j.run_at, j.idempotency_key, j.result,"
	" j.error_code, j.error_message, j.progress, j.progress_message, j.created_at,"
	" j.started_at, j.finished_at, j.attempts, j.log, j.log_truncated, j.node";

/* Renew the leases of the jobs this node holds ($4: the jobs module's
 * list), in one statement, with the node's heartbeat; the answer names
 * jobs somebody asked to cancel. */
static const char RENEW_SQL[] =
	"WITH r AS (UPDATE crund_jobs SET lease_until = " NOW " + $2::float8"
	" WHERE state = 1 AND node = $1 AND seq = ANY($4::bigint[])"
	" RETURNING seq, cancel_requested),"
	" h AS (INSERT INTO crund_nodes (id, started_at, seen_at, pid) VALUES ($1, $3::float8, " NOW
	", pg_backend_pid()) ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at,"
	" pid = excluded.pid RETURNING 1)"
	" SELECT seq FROM r WHERE cancel_requested AND (SELECT count(*) FROM h) >= 0";

/* Another live process with this node's id: its heartbeat is fresh and
 * the session that sent it is still there. */
static const char NODE_TAKEN_SQL[] = "SELECT n.pid::text, round((" NOW
				     " - n.seen_at)::numeric, 1)::text"
				     " FROM crund_nodes n JOIN pg_stat_activity a ON a.pid = n.pid"
				     " WHERE n.id = $1 AND n.seen_at > " NOW " - $2::float8";

static const char NODES_SQL[] =
	"SELECT coalesce(json_agg(id ORDER BY id), '[]')::text FROM crund_nodes"
	" WHERE seen_at > " NOW " - $1::float8";

#define FMT_TIME(x)                                                                \
	"CASE WHEN " x " > 0 THEN to_char(to_timestamp(" x ") AT TIME ZONE 'UTC'," \
	" 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') END"

/* The elected node: jobs whose lease ran out go back to the queue
 * (on_interrupt retry, attempts left; due after the backoff of a failed
 * attempt, attempt^4 s ± 10 % capped at $2) or fail, as a restart does
 * with an SQLite store.  Not within $1 s of the server's start: while it was down
 * no node could renew, and the live ones need that long to connect again
 * and renew (their jobs ran on, and their ends are on the way).  One
 * somebody asked to cancel ends cancelled instead (as a restart ends it
 * with SQLite): REQUEUE is the condition for the queue. */
#define REQUEUE    "(NOT j.cancel_requested AND j.on_interrupt = 1 AND j.attempt < j.max_attempts)"
#define STARTED_AT FMT_TIME("j.started_at")
static const char EXPIRE_SQL[] =
	"WITH e AS (SELECT seq FROM crund_jobs WHERE state = 1 AND lease_until < " NOW
	" AND extract(epoch FROM pg_postmaster_start_time()) < " NOW " - $1::float8"
	" FOR UPDATE SKIP LOCKED),"
	" u AS (UPDATE crund_jobs j SET"
	" state = CASE WHEN " REQUEUE " THEN 0 WHEN j.cancel_requested THEN 4 ELSE 3 END,"
	" finished_at = CASE WHEN " REQUEUE " THEN 0 ELSE " NOW " END,"
	" error_code = CASE WHEN j.cancel_requested THEN 'cancelled' ELSE 'interrupted' END,"
	" error_message = CASE WHEN j.cancel_requested THEN 'cancelled by request; node '"
	" || coalesce(j.node, '?') || ' stopped or lost its lease before the job''s cleanup"
	" ended' ELSE 'node ' || coalesce(j.node, '?') || ' stopped or lost its lease while"
	" the job ran (attempt ' || j.attempt || ' of ' || j.max_attempts || ')' END,"
	" attempts = CASE WHEN " REQUEUE " THEN (coalesce(j.attempts, '[]')::jsonb"
	" || jsonb_build_array(jsonb_build_object('attempt', j.attempt, 'started_at', " STARTED_AT
	", 'finished_at', NULL, 'error', jsonb_build_object('code', 'interrupted', 'message',"
	" 'node ' || coalesce(j.node, '?') || ' stopped or lost its lease while the job ran'),"
	" 'node', j.node)))::text ELSE j.attempts END,"
	" node = CASE WHEN " REQUEUE " THEN NULL ELSE j.node END, cancel_requested = false,"
	" lease_until = 0, run_at = CASE WHEN " REQUEUE " THEN " NOW " + least($2::float8,"
	" power(j.attempt, 4) * (0.9 + 0.2 * random())) ELSE 0 END,"
	" result = NULL FROM e WHERE j.seq = e.seq RETURNING j.seq)"
	" SELECT count(*), (SELECT pg_notify('crund', 'w:*') WHERE (SELECT count(*) FROM u) > 0)"
	" FROM u";

/* The elected node's session holds the lock for as long as it lives, also
 * while the node is paused (SIGSTOP) or cut off from its clients and jobs
 * but not from the database: then nobody would requeue anything.  A node
 * that does not win the election ends the holder's session when the
 * holder's heartbeat (its row, written by that very session) is older
 * than a lease: its lock goes with it, and the next round elects a live
 * node.  A heartbeat that old also means the holder's own jobs' leases
 * ran out.  A session no fresh row names is left alone (a reused pid, a
 * node that reconnected and has not written its heartbeat yet). */
static const char DEPOSE_SQL[] =
	"SELECT pg_terminate_backend(l.pid), n.id FROM pg_locks l JOIN crund_nodes n ON n.pid = "
	"l.pid"
	" WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
	" AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
	" AND l.classid = $1::bigint AND l.objid = $2::bigint"
	" AND n.seen_at < " NOW " - $3::float8"
	" AND NOT EXISTS (SELECT 1 FROM crund_nodes f WHERE f.pid = l.pid AND f.seen_at >= " NOW
	" - $3::float8)";

/* Retention, with a NOTIFY per 300 deleted jobs ("d:SEQ,...": 300 numbers
 * of up to 20 characters stay under the 8000 bytes of a payload), so that
 * the nodes drop their copies. */
static const char PRUNE_SQL[] =
	"WITH a AS (DELETE FROM crund_jobs WHERE state >= 2 AND finished_at < " NOW
	" - $1::float8 RETURNING seq),"
	" c AS (DELETE FROM crund_jobs WHERE seq IN (SELECT seq FROM crund_jobs WHERE state >= 2"
	" ORDER BY finished_at DESC OFFSET $2::integer) RETURNING seq),"
	" n AS (DELETE FROM crund_nodes WHERE seen_at < " NOW " - 3 * $3::float8 RETURNING 1),"
	" g AS (SELECT seq, (row_number() OVER () - 1) / 300 AS k"
	" FROM (SELECT seq FROM a UNION SELECT seq FROM c) s),"
	" m AS (SELECT pg_notify('crund', 'd:' || string_agg(seq::text, ',')) FROM g GROUP BY k)"
	" SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM c), (SELECT count(*) FROM n),"
	" (SELECT count(*) FROM m)";

/* The shared queue's length, counted no further than $1 (the index of
 * queued rows: a bounded read once a second per node). */
static const char QUEUED_SQL[] =
	"SELECT count(*) FROM (SELECT 1 FROM crund_jobs WHERE state = 0 LIMIT $1::bigint) q";

static const char CANCEL_SQL[] =
	"WITH q AS (UPDATE crund_jobs SET state = 4, finished_at = " NOW ","
	" error_code = 'cancelled', error_message = 'cancelled by request before it started',"
	" run_at = 0 WHERE seq = $1::bigint AND state = 0 RETURNING seq),"
	" r AS (UPDATE crund_jobs SET cancel_requested = true WHERE seq = $1::bigint"
	" AND state = 1 RETURNING node)"
	" SELECT pg_notify('crund', 'c ' || coalesce((SELECT node FROM r), '-') || ' ' || $1),"
	" (SELECT count(*) FROM q)";

struct op;

/* Job numbers a NOTIFY brought, for the node's task to act on. */
typedef struct seqlist {
	uint64_t *v;
	size_t n, cap;
} seqlist;

typedef struct pgs {
	char *url;
	char describe[600];
	char prefix[16];
	uint64_t max_seq;
	cr_loop *loop;
	crd_pg *wc; /* commits */
	crd_pg *kc; /* work: claims, leases, election */
	crd_pg *rc; /* reads for the API */
	crd_pg *lc; /* LISTEN */
	char node[128];
	double lease;
	unsigned retain_jobs;
	double retain_seconds;
	double retry_max_delay; /* as crd_store_opts */
	double started_at;

	/* the node's tasks (crd_store_join .. crd_store_leave) */
	const crd_store_node_hooks *h;
	void *harg;
	cr_task *main_task, *listen_task;
	cr_event *wake_ev;
	bool stopping;
	bool claim_now;   /* a NOTIFY said there is work */
	bool refresh_all; /* watched jobs: read them again */
	bool check_gone;  /* the LISTEN connection came back: check_gone() */
	double next_gone_check;
	seqlist cancels; /* jobs a NOTIFY asked this node to cancel */
	seqlist gone;    /* jobs a NOTIFY said were deleted */
	bool leader;
	bool depose_warned;
	unsigned leader_gen; /* the work connection that holds the lock */
	unsigned kc_gen;     /* the work connection lead() saw last */
	uint64_t *held;      /* renew(): the jobs this node holds */
	size_t capheld;
	double regained_at; /* when it connected again after a loss (mono) */
	double next_renew, next_leader, next_prune;
	char nodes_json[4096];
	char health[900]; /* pg_health's sentence */
	/* job number blocks */
	uint64_t spare_lo; /* 0: none fetched */
	bool need_block;
	struct op *ops; /* reads in flight */
	char errbuf[512];
} pgs;

/* ------------------------------------------------------------ helpers */

static double now_real(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A growable text buffer (the batch's JSON). */
typedef struct tb {
	char *p;
	size_t len, cap;
	bool oom;
} tb;

static void tb_need(tb *b, size_t n)
{
	if (b->oom || b->len + n + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + n + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void tb_add(tb *b, const char *s, size_t n)
{
	tb_need(b, n);
	if (b->oom)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void tb_adds(tb *b, const char *s) { tb_add(b, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void tb_addf(tb *b, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		tb_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* A JSON string (or null); bytes that are not UTF-8 become U+FFFD (the
 * database keeps text, and one bad log line must not fail every commit). */
static void tb_jstr(tb *b, const char *s, size_t n)
{
	if (!s) {
		tb_add(b, "null", 4);
		return;
	}
	tb_need(b, n + 2);
	tb_add(b, "\"", 1);
	size_t i = 0;
	while (i < n && !b->oom) {
		size_t run = i;
		while (run < n && (unsigned char)s[run] >= 0x20 && s[run] != '"' &&
		       s[run] != '\\' && (unsigned char)s[run] < 0x80)
			run++;
		if (run > i)
			tb_add(b, s + i, run - i);
		i = run;
		if (i >= n)
			break;
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			tb_add(b, e, 2);
			i++;
		} else if (c < 0x20) {
			tb_addf(b, "\\u%04x", c);
			i++;
		} else {
			size_t k = crd_utf8_seq((const unsigned char *)s + i, n - i);
			if (k) {
				tb_add(b, s + i, k);
				i += k;
			} else {
				tb_adds(b, "\\ufffd");
				i++;
			}
		}
	}
	tb_add(b, "\"", 1);
}

static void tb_num(tb *b, double v) { tb_addf(b, "%.17g", isfinite(v) ? v : 0.0); }

static const char *val(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static double dval(const PGresult *r, int row, int col)
{
	const char *v = val(r, row, col);
	return v ? strtod(v, NULL) : 0;
}

/* A row of COLS into j (strings borrowed from r). */
static void row_of(const PGresult *r, int i, crd_store_job *j)
{
	memset(j, 0, sizeof(*j));
	j->seq = strtoull(PQgetvalue(r, i, 0), NULL, 10);
	j->id = val(r, i, 1);
	j->plugin = val(r, i, 2);
	j->job = val(r, i, 3);
	j->args = val(r, i, 4);
	j->state = atoi(PQgetvalue(r, i, 5));
	j->attempt = (unsigned)atoi(PQgetvalue(r, i, 6));
	j->max_attempts = (unsigned)atoi(PQgetvalue(r, i, 7));
	j->on_interrupt = atoi(PQgetvalue(r, i, 8));
	j->isolated = PQgetvalue(r, i, 9)[0] == 't';
	j->timeout = dval(r, i, 10);
	j->run_at = dval(r, i, 11);
	j->idem_key = val(r, i, 12);
	j->result = val(r, i, 13);
	j->err_code = val(r, i, 14);
	j->err_msg = val(r, i, 15);
	j->progress = dval(r, i, 16);
	j->progress_msg = val(r, i, 17);
	j->created_at = dval(r, i, 18);
	j->started_at = dval(r, i, 19);
	j->finished_at = dval(r, i, 20);
	j->attempts = val(r, i, 21);
	j->log = val(r, i, 22);
	j->log_len = j->log ? (size_t)PQgetlength(r, i, 22) : 0;
	j->log_truncated = PQgetvalue(r, i, 23)[0] == 't';
	j->node = val(r, i, 24);
}

/* ------------------------------------------------------- open, close */

static void default_node_id(char *out, size_t n)
{
	static const char b32[] = "0123456789abcdefghjkmnpqrstvwxyz";
	char host[64] = "node";
	uint32_t r = 0;
	if (gethostname(host, sizeof(host)) < 0 || !host[0])
		snprintf(host, sizeof(host), "node");
	host[sizeof(host) - 1] = '\0';
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint32_t)getpid() * 2654435761u ^ (uint32_t)time(NULL);
	char suf[7];
	for (int i = 5; i >= 0; i--) {
		suf[i] = b32[r & 31];
		r >>= 5;
	}
	suf[6] = '\0';
	snprintf(out, n, "%s-%s", host, suf);
}

/* The store as logs and /v1/health name it: a password in a URI
 * (user:PASSWORD@, ?password=) or in a keyword string (password=...) is
 * shown as ***. */
static void describe_url(const char *url, char *out, size_t n)
{
	char tmp[512];
	const char *at = strchr(url, '@'), *scheme = strstr(url, "://");
	const char *colon = scheme && at && at > scheme
				    ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3))
				    : NULL;
	if (colon)
		snprintf(tmp, sizeof(tmp), "%.*s:***%s", (int)(colon - url), url, at);
	else
		snprintf(tmp, sizeof(tmp), "%s", url);
	const char *pw = strstr(tmp, "password");
	const char *eq = pw ? pw + 8 : NULL;
	while (eq && *eq == ' ')
		eq++;
	if (!eq || *eq != '=') {
		size_t len = strlen(tmp) < n ? strlen(tmp) : n - 1;
		memcpy(out, tmp, len);
		out[len] = '\0';
		return;
	}
	const char *v = eq + 1, *end;
	while (*v == ' ')
		v++;
	if (scheme) {
		end = v + strcspn(v, "&#");
	} else if (*v == '\'') {
		for (end = v + 1; *end && *end != '\''; end += end[0] == '\\' && end[1] ? 2 : 1)
			;
		if (*end)
			end++;
	} else {
		end = v + strcspn(v, " ");
	}
	snprintf(out, n, "%.*s***%s", (int)(v - tmp), tmp, end);
}

static void pg_close(void *be)
{
	pgs *s = be;
	if (!s)
		return;
	crd_pg_free(s->wc);
	crd_pg_free(s->kc);
	crd_pg_free(s->rc);
	crd_pg_free(s->lc);
	cr_event_free(s->wake_ev);
	free(s->cancels.v);
	free(s->gone.v);
	free(s->held);
	free(s->url);
	free(s);
}

static int q(crd_pg *c, const char *sql, int n, const char *const *v, PGresult **ret, char *err,
	     size_t errlen)
{
	return crd_pg_exec(c, sql, n, v, QUERY_TIMEOUT, ret, err, errlen);
}

/* An API read (a job held elsewhere, a list, a cancel): its client waits. */
static int qr(crd_pg *c, const char *sql, int n, const char *const *v, PGresult **ret, char *err,
	      size_t errlen)
{
	return crd_pg_exec(c, sql, n, v, READ_TIMEOUT, ret, err, errlen);
}

/* Bring the schema to SCHEMA_VERSION under an advisory lock: nodes that
 * start at once migrate once (the others wait, then find it done). */
static int migrate(pgs *s, char *err, size_t errlen)
{
	PGresult *r = NULL;
	char lk[64];
	int rc;
	snprintf(lk, sizeof(lk), "SELECT pg_advisory_lock(%lld)", ADVISORY_MIGRATE);
	if ((rc = q(s->kc, lk, -1, NULL, NULL, err, errlen)) < 0)
		return rc;
	long version = 0;
	rc = q(s->kc,
	       "SELECT CASE WHEN to_regclass('crund_schema') IS NULL THEN -1 ELSE"
	       " (SELECT 0) END",
	       0, NULL, &r, err, errlen);
	if (rc == 0 && atol(PQgetvalue(r, 0, 0)) == 0) {
		PQclear(r);
		r = NULL;
		rc = q(s->kc, "SELECT version FROM crund_schema", 0, NULL, &r, err, errlen);
		if (rc == 0)
			version = PQntuples(r) ? atol(PQgetvalue(r, 0, 0)) : 0;
	}
	PQclear(r);
	if (rc == 0 && version > SCHEMA_VERSION) {
		snprintf(err, errlen,
			 "store %.200s: written by a newer crund (schema version %ld; this crund "
			 "knows up to %d); run that version, or give another --store",
			 s->describe, version, SCHEMA_VERSION);
		rc = -EPROTO;
	}
	for (long v = version; rc == 0 && v < SCHEMA_VERSION; v++) {
		char sql[256], p[14];
		crd_store_new_prefix(p);
		snprintf(sql, sizeof(sql),
			 "UPDATE crund_schema SET version = %ld;"
			 "INSERT INTO crund_meta VALUES ('id_prefix', '%s'), ('max_seq', '0')"
			 " ON CONFLICT DO NOTHING;",
			 v + 1, p);
		if ((rc = q(s->kc, "BEGIN", -1, NULL, NULL, err, errlen)) < 0)
			break;
		if ((rc = q(s->kc, MIGRATIONS[v], -1, NULL, NULL, err, errlen)) < 0 ||
		    (rc = q(s->kc, sql, -1, NULL, NULL, err, errlen)) < 0 ||
		    (rc = q(s->kc, "COMMIT", -1, NULL, NULL, err, errlen)) < 0) {
			char e2[64];
			q(s->kc, "ROLLBACK", -1, NULL, NULL, e2, sizeof(e2));
			break;
		}
	}
	char e3[128];
	snprintf(lk, sizeof(lk), "SELECT pg_advisory_unlock(%lld)", ADVISORY_MIGRATE);
	q(s->kc, lk, -1, NULL, NULL, e3, sizeof(e3));
	return rc;
}

static int read_meta(pgs *s, char *err, size_t errlen)
{
	PGresult *r = NULL;
	int rc = q(s->kc,
		   "SELECT (SELECT value FROM crund_meta WHERE key = 'id_prefix'),"
		   " GREATEST((SELECT value::bigint FROM crund_meta WHERE key = 'max_seq'),"
		   " (SELECT coalesce(max(seq), 0) FROM crund_jobs))",
		   0, NULL, &r, err, errlen);
	if (rc < 0)
		return rc;
	if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
		PQclear(r);
		snprintf(err, errlen, "store %.200s: damaged (no id prefix in crund_meta)",
			 s->describe);
		return -EPROTO;
	}
	snprintf(s->prefix, sizeof(s->prefix), "%.13s", PQgetvalue(r, 0, 0));
	s->max_seq = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
	PQclear(r);
	return 0;
}

/* One process per node id: two with one id overwrite each other's
 * heartbeat (and, one of them paused, kept the election from moving on).
 * A node that just died (kill -9, then a restart) leaves a session for a
 * moment: the check waits up to a second for it to go. */
static int node_id_free(pgs *s, const char *shown, char *err, size_t errlen)
{
	char lease[32], e[400];
	snprintf(lease, sizeof(lease), "%g", s->lease);
	const char *v[2] = {s->node, lease};
	for (int i = 0;; i++) {
		PGresult *r = NULL;
		int rc = q(s->kc, NODE_TAKEN_SQL, 2, v, &r, e, sizeof(e));
		if (rc < 0) {
			snprintf(err, errlen, "store %s: cannot read the nodes: %s", shown, e);
			return -EIO;
		}
		bool taken = PQntuples(r) > 0;
		if (taken && (i >= 4 || (double)i * 0.25 >= s->lease)) {
			snprintf(err, errlen,
				 "store %s: node id '%s' is in use by a running node (database "
				 "session %s, heartbeat %s s ago): give each node its own "
				 "--node-id",
				 shown, s->node, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
			PQclear(r);
			return -EADDRINUSE;
		}
		PQclear(r);
		if (!taken)
			return 0;
		nanosleep(&(struct timespec){.tv_nsec = 250000000}, NULL);
	}
}

static int pg_open(const char *where, const crd_store_opts *o, void **ret_be, char *err,
		   size_t errlen)
{
	pgs *s = calloc(1, sizeof(*s));
	int rc = -ENOMEM;
	char app[160];
	if (!s || !(s->url = strdup(where)))
		goto oom;
	/* "postgresql:" followed by a libpq keyword string: hand libpq the
	 * string alone */
	const char *conninfo = where;
	if (!strncmp(where, "postgresql:", 11) && strncmp(where, "postgresql://", 13))
		conninfo = where + 11;
	else if (!strncmp(where, "postgres:", 9) && strncmp(where, "postgres://", 11))
		conninfo = where + 9;
	s->loop = o->loop;
	if (o->node_id && *o->node_id)
		snprintf(s->node, sizeof(s->node), "%s", o->node_id);
	else
		default_node_id(s->node, sizeof(s->node));
	s->lease = o->lease > 0 ? o->lease : DEFAULT_LEASE;
	s->retain_jobs = o->retain_jobs;
	s->retry_max_delay = o->retry_max_delay;
	s->retain_seconds = o->retain_seconds > 0 ? o->retain_seconds : 7 * 86400.0;
	s->started_at = now_real();
	snprintf(s->nodes_json, sizeof(s->nodes_json), "[]");
	char shown[400];
	describe_url(where, shown, sizeof(shown));
	snprintf(s->describe, sizeof(s->describe), "%.400s (PostgreSQL, node %.128s)", shown,
		 s->node);
	snprintf(app, sizeof(app), "crund %s", s->node);
	if (crd_pg_new(conninfo, app, &s->wc) < 0 || crd_pg_new(conninfo, app, &s->kc) < 0 ||
	    crd_pg_new(conninfo, app, &s->rc) < 0 || crd_pg_new(conninfo, app, &s->lc) < 0 ||
	    cr_event_new(&s->wake_ev) < 0)
		goto oom;
	/* commits: synchronous_commit as --sync says */
	crd_pg_on_connect(s->wc, o->sync == CRD_STORE_SYNC_NORMAL ? "SET synchronous_commit = off"
								  : "SET synchronous_commit = on");
	crd_pg_on_connect(s->lc, "LISTEN crund");
	char e[400];
	if ((rc = crd_pg_connect(s->kc, e, sizeof(e))) < 0) {
		snprintf(err, errlen,
			 "store %s: %s (is the server up, and the URL right? any libpq "
			 "connection string or URI works)",
			 shown, e);
		goto out;
	}
	if ((rc = migrate(s, e, sizeof(e))) < 0 || (rc = read_meta(s, e, sizeof(e))) < 0) {
		if (rc != -EPROTO)
			snprintf(err, errlen, "store %s: cannot set up its tables: %s", shown, e);
		else
			snprintf(err, errlen, "%s", e);
		if (rc != -EPROTO)
			rc = -EIO;
		goto out;
	}
	if ((rc = node_id_free(s, shown, err, errlen)) < 0)
		goto out;
	*ret_be = s;
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	rc = -ENOMEM;
out:
	pg_close(s);
	return rc;
}

static const char *pg_describe(void *be) { return ((pgs *)be)->describe; }
static const char *pg_prefix(void *be) { return ((pgs *)be)->prefix; }
static uint64_t pg_max_seq(void *be) { return ((pgs *)be)->max_seq; }

static int pg_load(void *be, int (*fn)(const crd_store_job *row, void *arg), void *arg)
{
	pgs *s = be;
	PGresult *r = NULL;
	char e[400];
	int rc = q(s->kc, "SELECT " COLS " FROM crund_jobs ORDER BY seq", 0, NULL, &r, e,
		   sizeof(e));
	if (rc < 0)
		return rc;
	for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
		crd_store_job j;
		row_of(r, i, &j);
		rc = fn(&j, arg);
	}
	PQclear(r);
	return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------- commits */

static void add_row(tb *b, const crd_store_job *j)
{
	tb_addf(b, "{\"seq\":%" PRIu64 ",\"id\":", j->seq);
	tb_jstr(b, j->id, j->id ? strlen(j->id) : 0);
	tb_adds(b, ",\"plugin\":");
	tb_jstr(b, j->plugin, j->plugin ? strlen(j->plugin) : 0);
	tb_adds(b, ",\"job\":");
	tb_jstr(b, j->job, j->job ? strlen(j->job) : 0);
	tb_adds(b, ",\"args\":");
	tb_jstr(b, j->args ? j->args : "{}", j->args ? strlen(j->args) : 2);
	tb_addf(b, ",\"state\":%d,\"attempt\":%u,\"max_attempts\":%u,\"on_interrupt\":%d,",
		j->state, j->attempt, j->max_attempts, j->on_interrupt);
	tb_adds(b,
		j->isolated ? "\"isolated\":true,\"timeout\":" : "\"isolated\":false,\"timeout\":");
	tb_num(b, j->timeout);
	tb_adds(b, ",\"run_at\":");
	tb_num(b, j->run_at);
	tb_adds(b, ",\"idempotency_key\":");
	tb_jstr(b, j->idem_key, j->idem_key ? strlen(j->idem_key) : 0);
	tb_adds(b, ",\"result\":");
	tb_jstr(b, j->result, j->result ? strlen(j->result) : 0);
	tb_adds(b, ",\"error_code\":");
	tb_jstr(b, j->err_code, j->err_code ? strlen(j->err_code) : 0);
	tb_adds(b, ",\"error_message\":");
	tb_jstr(b, j->err_msg, j->err_msg ? strlen(j->err_msg) : 0);
	tb_adds(b, ",\"progress\":");
	tb_num(b, j->progress);
	tb_adds(b, ",\"progress_message\":");
	tb_jstr(b, j->progress_msg, j->progress_msg ? strlen(j->progress_msg) : 0);
	tb_adds(b, ",\"created_at\":");
	tb_num(b, j->created_at);
	tb_adds(b, ",\"started_at\":");
	tb_num(b, j->started_at);
	tb_adds(b, ",\"finished_at\":");
	tb_num(b, j->finished_at);
	tb_adds(b, ",\"attempts\":");
	tb_jstr(b, j->attempts, j->attempts ? strlen(j->attempts) : 0);
	tb_adds(b, ",\"log\":");
	tb_jstr(b, j->log_len ? j->log : NULL, j->log_len);
	tb_adds(b, j->log_truncated ? ",\"log_truncated\":true,\"node\":"
				    : ",\"log_truncated\":false,\"node\":");
	tb_jstr(b, j->node, j->node ? strlen(j->node) : 0);
	tb_adds(b, j->cancel_requested ? ",\"cancel_requested\":true}"
				       : ",\"cancel_requested\":false}");
}

/* The new rows COMMIT_SQL left out (r: its answer) because another job
 * holds their idempotency key: read those jobs and hand each to the jobs
 * module with the row it replaces (or NULL when the read failed: that
 * submission is answered 503 and may be sent again). */
static void duplicates(pgs *s, const PGresult *r, crd_store_row *const *rows, size_t n)
{
	tb keys = {0};
	PGresult *got = NULL;
	char e[400];
	tb_add(&keys, "[", 1);
	for (int i = 0; i < PQntuples(r); i++) {
		if (PQgetvalue(r, i, 1)[0] != 't')
			continue;
		uint64_t seq = strtoull(PQgetvalue(r, i, 0), NULL, 10);
		for (size_t k = 0; k < n; k++) {
			const crd_store_job *j = &rows[k]->job;
			if (!rows[k]->del && j->seq == seq && j->idem_key) {
				tb_adds(&keys, keys.len > 1 ? "," : "");
				tb_jstr(&keys, j->idem_key, strlen(j->idem_key));
				break;
			}
		}
	}
	tb_add(&keys, "]", 1);
	const char *v[1] = {keys.p};
	if (keys.oom || q(s->wc,
			  "SELECT " COLS " FROM crund_jobs WHERE idempotency_key IN"
			  " (SELECT json_array_elements_text($1::json))",
			  1, v, &got, e, sizeof(e)) < 0)
		got = NULL;
	for (int i = 0; i < PQntuples(r); i++) {
		if (PQgetvalue(r, i, 1)[0] != 't')
			continue;
		uint64_t seq = strtoull(PQgetvalue(r, i, 0), NULL, 10);
		const char *key = NULL;
		for (size_t k = 0; k < n && !key; k++)
			if (!rows[k]->del && rows[k]->job.seq == seq)
				key = rows[k]->job.idem_key;
		crd_store_job held, *found = NULL;
		for (int g = 0; got && key && !found && g < PQntuples(got); g++) {
			if (!strcmp(PQgetvalue(got, g, 12), key)) {
				row_of(got, g, &held);
				found = &held;
			}
		}
		if (s->h && s->h->duplicate)
			s->h->duplicate(s->harg, seq, found);
	}
	PQclear(got);
	free(keys.p);
}

static int pg_commit(void *be, crd_store_row *const *rows, size_t n, uint64_t hi_seq, char *err,
		     size_t errlen)
{
	pgs *s = be;
	tb js = {0}, del = {0}, note = {0}, gone = {0};
	uint64_t hi = hi_seq;
	bool any_del = false, claimable = false;
	size_t gone_start = 0;
	size_t nput = 0, nkeyed = 0;
	int rc;
	if (n == 0) /* a probe: can the store take a write again? */
		return q(s->wc, "SELECT 1", 0, NULL, NULL, err, errlen);
	tb_add(&js, "[", 1);
	tb_add(&del, "{", 1);
	for (size_t i = 0; i < n; i++) {
		const crd_store_job *j = &rows[i]->job;
		if (rows[i]->del) {
			tb_addf(&del, "%s%" PRIu64, any_del ? "," : "", j->seq);
			any_del = true;
			/* "{"d:1,2","d:3"}": a new payload when this one is full */
			size_t mark = gone.len;
			tb_addf(&gone, "%s%" PRIu64, gone.len ? "," : "{\"d:", j->seq);
			if (gone.len - gone_start > NOTIFY_MAX) {
				gone.len = mark;
				gone_start = gone.len + 2;
				tb_addf(&gone, "\",\"d:%" PRIu64, j->seq);
			}
			continue;
		}
		if (nput++)
			tb_add(&js, ",", 1);
		add_row(&js, j);
		if (j->seq > hi)
			hi = j->seq;
		if (j->state == 0)
			claimable = true;
		if (j->idem_key && nkeyed < 100)
			nkeyed++;
		if (note.len < NOTIFY_MAX)
			tb_addf(&note, "%s%" PRIu64, note.len ? "," : "", j->seq);
	}
	tb_add(&js, "]", 1);
	tb_add(&del, "}", 1);
	tb_adds(&gone, gone.len ? "\"}" : "{}");
	/* NOTIFY once per batch: "w" when a row is claimable, then the jobs */
	tb payload = {0};
	if (nput) {
		tb_adds(&payload, claimable ? "w:" : ":");
		if (note.len >= NOTIFY_MAX)
			tb_adds(&payload, "*");
		else if (note.p)
			tb_adds(&payload, note.p);
	}
	char lease[32], hib[32];
	snprintf(lease, sizeof(lease), "%g", s->lease);
	snprintf(hib, sizeof(hib), "%" PRIu64, hi);
	if (js.oom || del.oom || note.oom || payload.oom || gone.oom) {
		snprintf(err, errlen, "store %s: out of memory", s->describe);
		rc = -ENOMEM;
	} else {
		const char *v[7] = {js.p,
				    del.p,
				    lease,
				    hib,
				    any_del ? "true" : "false",
				    payload.p ? payload.p : "",
				    gone.p};
		char e[400];
		PGresult *r = NULL;
		/* each conflict is a key another batch committed meanwhile, which
		 * the next run leaves out: at most one run per keyed row */
		for (size_t tries = 0; tries < 3 + nkeyed; tries++) {
			rc = q(s->wc, COMMIT_SQL, 7, v, &r, e, sizeof(e));
			if (rc != -EEXIST && rc != -EDEADLK)
				break; /* else another node took a key meanwhile */
		}
		if (rc < 0)
			snprintf(err, errlen, "store %s: cannot write: %s", s->describe, e);
		else if (hi > s->max_seq)
			s->max_seq = hi;
		size_t ndup = 0;
		for (int i = 0; r && i < PQntuples(r); i++) {
			uint64_t seq = strtoull(PQgetvalue(r, i, 0), NULL, 10);
			if (PQgetvalue(r, i, 1)[0] == 't')
				ndup++;
			else if (s->h && s->h->fenced)
				/* the fence kept it out: this node's view of the
				 * job is stale (it lost the lease); let go of it */
				s->h->fenced(s->harg, seq);
		}
		if (ndup)
			duplicates(s, r, rows, n);
		PQclear(r);
	}
	free(js.p);
	free(del.p);
	free(gone.p);
	free(note.p);
	free(payload.p);
	/* the database is unreachable or broke the connection: a sentence
	 * for /v1/health; store.c retries (and the connection reconnects) */
	return rc == -EEXIST || rc == -EDEADLK ? -EIO : rc;
}

/* ------------------------------------------------------- node tasks */

static void wake(pgs *s)
{
	if (s->wake_ev)
		cr_event_set(s->wake_ev);
}

static void pg_wake(void *be)
{
	pgs *s = be;
	s->claim_now = true;
	wake(s);
}

/* Add seq to l; false when out of memory (the lease renewal, or the
 * poll, brings what is lost). */
static bool seq_push(seqlist *l, uint64_t seq)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 16;
		uint64_t *p = realloc(l->v, nc * sizeof(*p));
		if (!p)
			return false;
		l->v = p;
		l->cap = nc;
	}
	l->v[l->n++] = seq;
	return true;
}

static void on_notify(void *arg, const char *channel, const char *payload)
{
	pgs *s = arg;
	(void)channel;
	if (!payload)
		return;
	if (payload[0] == 'c' && payload[1] == ' ') {
		/* "c NODE SEQ": a cancel request */
		const char *sp = strrchr(payload, ' ');
		size_t nl = (size_t)(sp - payload - 2);
		uint64_t seq = strtoull(sp + 1, NULL, 10);
		if (nl == strlen(s->node) && !memcmp(payload + 2, s->node, nl))
			seq_push(&s->cancels, seq);
		s->refresh_all = true;
		wake(s);
		return;
	}
	if (payload[0] == 'd' && payload[1] == ':') {
		/* "d:SEQ,SEQ,...": jobs deleted (a DELETE, retention) */
		const char *p = payload + 2;
		while (*p) {
			char *end;
			uint64_t seq = strtoull(p, &end, 10);
			if (end == p || !seq_push(&s->gone, seq))
				break;
			p = *end == ',' ? end + 1 : end;
		}
		wake(s);
		return;
	}
	/* "[w]:SEQ,SEQ,..." or "[w]:*": a batch committed */
	if (payload[0] == 'w')
		s->claim_now = true;
	const char *list = strchr(payload, ':');
	if (list && list[1])
		s->refresh_all = true; /* cheap: only watched jobs are read */
	wake(s);
}

static int listen_main(void *arg, void **ret)
{
	pgs *s = arg;
	char e[400];
	(void)ret;
	bool was_connected = false;
	while (!s->stopping) {
		int rc = crd_pg_wait_notify(s->lc, POLL_INTERVAL, e, sizeof(e));
		if (rc == -ECANCELED)
			break;
		bool now_connected = crd_pg_connected(s->lc);
		if (now_connected && !was_connected) {
			/* (re)connected: what was notified meanwhile is lost */
			s->claim_now = s->refresh_all = s->check_gone = true;
			wake(s);
		}
		was_connected = now_connected;
		if (rc < 0 && cr_sleep(0.2) == -ECANCELED)
			break;
	}
	return 0;
}

static void claim(pgs *s, unsigned n)
{
	PGresult *r = NULL;
	char nb[16], lease[32], e[400];
	snprintf(nb, sizeof(nb), "%u", n);
	snprintf(lease, sizeof(lease), "%g", s->lease);
	const char *v[3] = {s->node, nb, lease};
	if (q(s->kc, CLAIM_SQL, 3, v, &r, e, sizeof(e)) < 0)
		return;
	int got = PQntuples(r);
	for (int i = 0; i < got && !s->stopping; i++) {
		crd_store_job j;
		row_of(r, i, &j);
		s->h->adopt(s->harg, &j);
	}
	PQclear(r);
	if ((unsigned)got == n)
		s->claim_now = true; /* there may be more */
}

/* The jobs the node holds (ended ones from `since` on) as an array
 * literal in *list; -1 without memory. */
static int held_list(pgs *s, double since, tb *list)
{
	size_t n;
	while ((n = s->h->held(s->harg, since, s->held, s->capheld)) > s->capheld) {
		uint64_t *p = realloc(s->held, n * 2 * sizeof(*p));
		if (!p)
			return -1;
		s->held = p;
		s->capheld = n * 2;
	}
	tb_add(list, "{", 1);
	for (size_t i = 0; i < n; i++)
		tb_addf(list, "%s%" PRIu64, i ? "," : "", s->held[i]);
	tb_add(list, "}", 1);
	if (list->oom) {
		free(list->p);
		list->p = NULL;
		return -1;
	}
	return 0;
}

/* The jobs this node keeps that the database no longer has (deleted or
 * pruned while a NOTIFY of it could not arrive: the LISTEN connection
 * was lost): their copies go.  After each reconnection of the LISTEN
 * connection, and every GONE_CHECK_INTERVAL, since NOTIFY is only a
 * hint. */
static void check_gone(pgs *s)
{
	tb list = {0};
	if (held_list(s, 0, &list) < 0)
		return;
	PGresult *r = NULL;
	char e[400];
	const char *v[1] = {list.p};
	if (q(s->kc,
	      "SELECT x FROM unnest($1::bigint[]) x"
	      " WHERE NOT EXISTS (SELECT 1 FROM crund_jobs j WHERE j.seq = x)",
	      1, v, &r, e, sizeof(e)) == 0) {
		for (int i = 0; i < PQntuples(r); i++)
			s->h->gone(s->harg, strtoull(PQgetvalue(r, i, 0), NULL, 10));
		PQclear(r);
	}
	free(list.p);
}

static int renew(pgs *s)
{
	PGresult *r = NULL;
	char lease[32], started[32], e[400];
	snprintf(lease, sizeof(lease), "%g", s->lease);
	snprintf(started, sizeof(started), "%.6f", s->started_at);
	/* what the node holds; ended ones for two leases (their end may be
	 * waiting for the database) */
	tb list = {0};
	if (held_list(s, now_real() - 2 * s->lease, &list) < 0)
		return -1;
	const char *v[4] = {s->node, lease, started, list.p};
	int rc = q(s->kc, RENEW_SQL, 4, v, &r, e, sizeof(e));
	free(list.p);
	if (rc < 0)
		return -1;
	for (int i = 0; i < PQntuples(r); i++)
		s->h->cancel(s->harg, strtoull(PQgetvalue(r, i, 0), NULL, 10));
	PQclear(r);
	r = NULL;
	const char *v2[1] = {lease};
	if (q(s->kc, NODES_SQL, 1, v2, &r, e, sizeof(e)) == 0 && PQntuples(r) == 1)
		snprintf(s->nodes_json, sizeof(s->nodes_json), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}

/* Not elected: end the session of an elected node that stopped beating
 * (DEPOSE_SQL). */
static void depose(pgs *s)
{
	PGresult *r = NULL;
	char cls[24], obj[24], lease[32], e[400];
	snprintf(cls, sizeof(cls), "%lld", (long long)((unsigned long long)ADVISORY_LEADER >> 32));
	snprintf(obj, sizeof(obj), "%lld", (long long)(ADVISORY_LEADER & 0xffffffffLL));
	snprintf(lease, sizeof(lease), "%g", s->lease);
	const char *v[3] = {cls, obj, lease};
	int rc = q(s->kc, DEPOSE_SQL, 3, v, &r, e, sizeof(e));
	char msg[600];
	if (rc == 0) {
		for (int i = 0; i < PQntuples(r); i++) {
			snprintf(
				msg, sizeof(msg),
				"node %s held the election but its heartbeat is over %g s old "
				"(paused or cut off): %s its database session, so that a live node "
				"requeues the jobs whose lease ran out",
				PQgetvalue(r, i, 1), s->lease,
				PQgetvalue(r, i, 0)[0] == 't' ? "ended" : "could not end");
			s->h->warn(s->harg, msg);
		}
	} else if (rc == -EIO && !s->depose_warned) {
		s->depose_warned = true;
		snprintf(msg, sizeof(msg),
			 "cannot check the elected node's heartbeat (%s): a paused elected node "
			 "keeps the election until its session ends",
			 e);
		s->h->warn(s->harg, msg);
	}
	PQclear(r);
}

/* The elected node (a session advisory lock: it stays elected while its
 * work connection lives, or until a node ends that session: depose). */
static void lead(pgs *s, double now)
{
	PGresult *r = NULL;
	char sql[96], e[400];
	if (!s->leader || !crd_pg_connected(s->kc) || crd_pg_generation(s->kc) != s->leader_gen) {
		/* (again): a new connection does not hold the old one's lock */
		s->leader = false;
		snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock(%lld)", ADVISORY_LEADER);
		if (q(s->kc, sql, 0, NULL, &r, e, sizeof(e)) < 0)
			return;
		s->leader = PQgetvalue(r, 0, 0)[0] == 't';
		s->leader_gen = crd_pg_generation(s->kc);
		PQclear(r);
		r = NULL;
		if (!s->leader) {
			depose(s);
			return;
		}
	}
	/* after a lost connection of its own (a network cut, a server that
	 * crashed and recovered) the other nodes may have lost theirs too:
	 * the same grace as after the server's start */
	double grace_s = s->lease + CRD_PG_BACKOFF_MAX + POLL_INTERVAL;
	unsigned gen = crd_pg_generation(s->kc);
	if (gen != s->kc_gen) {
		if (s->kc_gen)
			s->regained_at = now;
		s->kc_gen = gen;
	}
	if (s->regained_at && now - s->regained_at < grace_s)
		return;
	char grace[32], cap[32];
	snprintf(grace, sizeof(grace), "%g", grace_s);
	snprintf(cap, sizeof(cap), "%g",
		 s->retry_max_delay > 0   ? s->retry_max_delay
		 : s->retry_max_delay < 0 ? 0
					  : 3600);
	const char *gv[2] = {grace, cap};
	if (q(s->kc, EXPIRE_SQL, 2, gv, &r, e, sizeof(e)) < 0) {
		s->leader = crd_pg_connected(s->kc);
		return;
	}
	PQclear(r);
	r = NULL;
	if (now >= s->next_prune) {
		char secs[32], count[32], lease[32];
		s->next_prune = now + PRUNE_INTERVAL;
		snprintf(secs, sizeof(secs), "%g", s->retain_seconds);
		snprintf(count, sizeof(count), "%u", s->retain_jobs ? s->retain_jobs : 1000000u);
		snprintf(lease, sizeof(lease), "%g", s->lease);
		const char *v[3] = {secs, count, lease};
		if (q(s->kc, PRUNE_SQL, 3, v, &r, e, sizeof(e)) == 0)
			PQclear(r);
	}
}

/* Watched jobs (records of jobs held elsewhere): read them again. */
static void refresh(pgs *s)
{
	uint64_t seqs[256];
	size_t n = s->h->watch_list(s->harg, seqs, 256);
	if (!n)
		return;
	tb list = {0};
	tb_add(&list, "{", 1);
	for (size_t i = 0; i < n; i++)
		tb_addf(&list, "%s%" PRIu64, i ? "," : "", seqs[i]);
	tb_add(&list, "}", 1);
	PGresult *r = NULL;
	char e[400];
	const char *v[1] = {list.p};
	if (!list.oom && q(s->rc, "SELECT " COLS " FROM crund_jobs WHERE seq = ANY($1::bigint[])",
			   1, v, &r, e, sizeof(e)) == 0) {
		for (int i = 0; i < PQntuples(r); i++) {
			crd_store_job j;
			row_of(r, i, &j);
			s->h->changed(s->harg, &j);
		}
		PQclear(r);
	}
	free(list.p);
}

/* The shared queue's length, for --max-queued. */
static void count_queue(pgs *s)
{
	if (!s->h->queued || !s->h->queue_cap)
		return;
	PGresult *r = NULL;
	char cap[32], e[400];
	snprintf(cap, sizeof(cap), "%" PRIu64, s->h->queue_cap(s->harg));
	const char *v[1] = {cap};
	if (q(s->kc, QUEUED_SQL, 1, v, &r, e, sizeof(e)) < 0)
		return; /* the last count stands; submissions wait on the store */
	s->h->queued(s->harg, strtoull(PQgetvalue(r, 0, 0), NULL, 10));
	PQclear(r);
}

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fetch_block(pgs *s)
{
	PGresult *r = NULL;
	char e[400];
	if (q(s->kc, "SELECT nextval('crund_seq_block')", 0, NULL, &r, e, sizeof(e)) < 0)
		return;
	s->spare_lo = strtoull(PQgetvalue(r, 0, 0), NULL, 10) << BLOCK_BITS;
	s->need_block = false;
	PQclear(r);
}

static int node_main(void *arg, void **ret)
{
	pgs *s = arg;
	(void)ret;
	double next_poll = 0;
	while (!s->stopping) {
		double now = mono();
		cr_event_clear(s->wake_ev);
		while (s->cancels.n) /* asked by a NOTIFY */
			s->h->cancel(s->harg, s->cancels.v[--s->cancels.n]);
		while (s->gone.n)
			s->h->gone(s->harg, s->gone.v[--s->gone.n]);
		if (s->need_block)
			fetch_block(s);
		unsigned free_slots = s->h->free_slots(s->harg);
		if (free_slots && (s->claim_now || now >= next_poll)) {
			s->claim_now = false;
			claim(s, free_slots);
		}
		if (now >= s->next_renew) {
			/* a failed renewal is tried again soon: the lease runs */
			s->next_renew = now + s->lease / 3;
			if (renew(s) < 0)
				s->next_renew = now + fmin(s->lease / 3, RETRY_SOON);
		}
		if (now >= s->next_leader) {
			s->next_leader = now + POLL_INTERVAL;
			lead(s, now);
		}
		if (s->refresh_all || now >= next_poll) {
			s->refresh_all = false;
			refresh(s);
		}
		if (s->check_gone || now >= s->next_gone_check) {
			s->check_gone = false;
			s->next_gone_check = now + GONE_CHECK_INTERVAL;
			check_gone(s);
		}
		if (now >= next_poll) {
			count_queue(s);
			next_poll = now + POLL_INTERVAL;
		}
		if (s->stopping)
			break;
		/* Round again at once only for work this node can take: with no
		 * slot free (all busy, or draining) a pending claim waits for the
		 * wake of a freed slot; going round would spin the loop thread
		 * without ever yielding it (the HTTP API stalled, the drain at a
		 * stop waited on its POLL_INTERVAL rounds). */
		if (cr_event_is_set(s->wake_ev) || (s->claim_now && s->h->free_slots(s->harg)))
			continue;
		cr_timeout_scope sc;
		if (cr_timeout_enter(&sc, POLL_INTERVAL) < 0) {
			if (cr_sleep(POLL_INTERVAL) == -ECANCELED)
				break;
			continue;
		}
		int rc = cr_timeout_exit(&sc, cr_event_wait(s->wake_ev));
		if (rc == -ECANCELED)
			break;
	}
	return 0;
}

static const char *pg_node_id(void *be) { return ((pgs *)be)->node; }
static const char *pg_nodes_json(void *be) { return ((pgs *)be)->nodes_json; }

static int pg_join(void *be, const crd_store_node_hooks *h, void *arg)
{
	pgs *s = be;
	int rc;
	char e[400];
	s->h = h;
	s->harg = arg;
	fetch_block(s); /* the first block before serving (may wait) */
	renew(s);       /* the node's row, and the live nodes */
	crd_pg_on_notify(s->lc, on_notify, s);
	cr_spawn_opts o = {.size = sizeof(o), .name = "store-node"};
	if ((rc = cr_loop_spawn(s->loop, node_main, s, &o, &s->main_task)) < 0)
		return rc;
	o.name = "store-listen";
	if ((rc = cr_loop_spawn(s->loop, listen_main, s, &o, &s->listen_task)) < 0)
		return rc;
	(void)e;
	return 0;
}

static void stop_task(cr_task **t)
{
	if (!*t)
		return;
	cr_task_cancel(*t, NULL);
	cr_task_join(*t, NULL);
	*t = cr_task_unref(*t);
}

static void pg_leave(void *be)
{
	pgs *s = be;
	char e[400];
	s->stopping = true;
	stop_task(&s->main_task);
	stop_task(&s->listen_task);
	if (!crd_pg_connected(s->kc))
		crd_pg_reset(s->kc); /* no backoff for the goodbye */
	const char *v[1] = {s->node};
	q(s->kc, "DELETE FROM crund_nodes WHERE id = $1", 1, v, NULL, e, sizeof(e));
	crd_pg_reset(s->kc); /* gives up the election */
	s->leader = false;
}

static int pg_seq_block(void *be, uint64_t *ret_lo, uint64_t *ret_hi)
{
	pgs *s = be;
	if (!s->spare_lo) {
		s->need_block = true;
		wake(s);
		return -EAGAIN;
	}
	*ret_lo = s->spare_lo;
	*ret_hi = s->spare_lo + ((uint64_t)1 << BLOCK_BITS);
	s->spare_lo = 0;
	s->need_block = true; /* the next one, ahead of need */
	wake(s);
	return 0;
}

/* -------------------------------------------------- reads for the API */

typedef struct op {
	struct op *next, *prev;
	pgs *s;
	cr_task *task;
	int kind; /* 0 fetch, 1 list, 2 cancel */
	char *id;
	unsigned mask;
	char *plugin;
	uint64_t before, seq;
	size_t limit;
	crd_store_rows_fn done;
	void *arg;
} op;

static void op_unlink(op *o)
{
	if (o->prev)
		o->prev->next = o->next;
	else
		o->s->ops = o->next;
	if (o->next)
		o->next->prev = o->prev;
}

static void op_free(op *o)
{
	free(o->id);
	free(o->plugin);
	free(o);
}

static void give_rows(op *o, int rc, PGresult *r, bool more_possible)
{
	if (!o->done)
		return;
	if (rc < 0) {
		o->done(o->arg, rc, NULL, 0, false);
		return;
	}
	int n = PQntuples(r);
	bool more = false;
	if (more_possible && (size_t)n > o->limit) {
		more = true;
		n = (int)o->limit;
	}
	crd_store_job *rows = calloc((size_t)(n ? n : 1), sizeof(*rows));
	if (!rows) {
		o->done(o->arg, -ENOMEM, NULL, 0, false);
		return;
	}
	for (int i = 0; i < n; i++)
		row_of(r, i, &rows[i]);
	if (n == 0 && o->kind != 1)
		o->done(o->arg, -ENOENT, NULL, 0, false);
	else
		o->done(o->arg, 0, rows, (size_t)n, more);
	free(rows);
}

static int op_main(void *arg, void **ret)
{
	op *o = arg;
	pgs *s = o->s;
	PGresult *r = NULL;
	char e[400], a[32], b[32], c[32];
	int rc;
	(void)ret;
	if (o->kind == 0) {
		const char *v[1] = {o->id};
		rc = qr(s->rc, "SELECT " COLS " FROM crund_jobs WHERE id = $1", 1, v, &r, e,
			sizeof(e));
		give_rows(o, rc, r, false);
	} else if (o->kind == 1) {
		snprintf(a, sizeof(a), "%u", o->mask);
		snprintf(b, sizeof(b), "%" PRIu64, o->before);
		snprintf(c, sizeof(c), "%zu", o->limit + 1);
		const char *v[4] = {a, o->plugin, b, c};
		rc = qr(s->rc,
			"SELECT " COLS " FROM crund_jobs WHERE ($1::integer = 0"
			" OR ((1 << state) & $1::integer) <> 0) AND ($2::text IS NULL OR plugin = "
			"$2)"
			" AND ($3::bigint = 0 OR seq < $3::bigint) ORDER BY seq DESC"
			" LIMIT $4::integer",
			4, v, &r, e, sizeof(e));
		give_rows(o, rc, r, true);
	} else {
		snprintf(a, sizeof(a), "%" PRIu64, o->seq);
		const char *v[1] = {a};
		rc = qr(s->rc, CANCEL_SQL, 1, v, NULL, e, sizeof(e));
		if (rc == 0)
			rc = qr(s->rc, "SELECT " COLS " FROM crund_jobs WHERE seq = $1::bigint", 1,
				v, &r, e, sizeof(e));
		give_rows(o, rc, r, false);
	}
	PQclear(r);
	return 0;
}

static void op_done(cr_task *t, void *arg)
{
	op *o = arg;
	if (cr_task_cancelled(t) && o->done && o->task) {
		o->task = NULL;
		o->done(o->arg, -ECANCELED, NULL, 0, false);
	}
	cr_task_unref(t);
	op_unlink(o);
	op_free(o);
}

static int op_start(pgs *s, op *o)
{
	cr_task *t;
	o->s = s;
	if (cr_loop_spawn(s->loop, op_main, o, NULL, &t) < 0) {
		op_free(o);
		return -ENOMEM;
	}
	if (cr_task_add_done_callback(t, op_done, o) < 0) {
		cr_task_cancel(t, NULL);
		cr_task_unref(t);
		return -ENOMEM; /* cannot be told: leaks o until the loop closes */
	}
	o->task = t;
	o->next = s->ops;
	if (s->ops)
		s->ops->prev = o;
	s->ops = o;
	return 0;
}

static int pg_fetch(void *be, const char *id, crd_store_rows_fn done, void *arg)
{
	op *o = calloc(1, sizeof(*o));
	if (!o || !(o->id = strdup(id))) {
		free(o);
		return -ENOMEM;
	}
	o->kind = 0;
	o->done = done;
	o->arg = arg;
	return op_start(be, o);
}

static int pg_list(void *be, unsigned state_mask, const char *plugin, uint64_t before, size_t limit,
		   crd_store_rows_fn done, void *arg)
{
	op *o = calloc(1, sizeof(*o));
	if (!o || (plugin && !(o->plugin = strdup(plugin)))) {
		free(o);
		return -ENOMEM;
	}
	o->kind = 1;
	o->mask = state_mask;
	o->before = before;
	o->limit = limit;
	o->done = done;
	o->arg = arg;
	return op_start(be, o);
}

static int pg_cancel(void *be, uint64_t seq, crd_store_rows_fn done, void *arg)
{
	op *o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->kind = 2;
	o->seq = seq;
	o->done = done;
	o->arg = arg;
	return op_start(be, o);
}

static const char *pg_health(void *be, int *ret_code)
{
	pgs *s = be;
	const char *down = crd_pg_down(s->kc);
	if (!down)
		return NULL;
	snprintf(s->health, sizeof(s->health), "store %s: the database cannot be reached: %s",
		 s->describe, down);
	if (ret_code)
		*ret_code = -ECONNREFUSED;
	return s->health;
}

static const crd_store_shared_ops shared_ops = {
	.node_id = pg_node_id,
	.join = pg_join,
	.leave = pg_leave,
	.wake = pg_wake,
	.seq_block = pg_seq_block,
	.fetch = pg_fetch,
	.list = pg_list,
	.cancel = pg_cancel,
	.nodes_json = pg_nodes_json,
	.health = pg_health,
};

/* postgresql://... and postgres://... (libpq's other spelling): one
 * backend under two schemes */
#define PG_BACKEND(name)                                                             \
	{                                                                            \
		.scheme = name, .durable = true, .on_loop = true, .whole_url = true, \
		.open = pg_open, .close = pg_close, .describe = pg_describe,         \
		.id_prefix = pg_prefix, .max_seq = pg_max_seq, .load = pg_load,      \
		.commit = pg_commit, .shared = &shared_ops,                          \
	}
const crd_store_backend crd_store_postgresql = PG_BACKEND("postgresql");
const crd_store_backend crd_store_postgres = PG_BACKEND("postgres");
