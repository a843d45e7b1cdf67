/*
 * store.h — the job store seam: where the jobs module makes its records
 * durable.  See docs/ARCHITECTURE.md, "The store seam".
 *
 * The jobs module (daemon/jobs/) owns every job record and decides every
 * transition; the store only keeps what the jobs module hands it, so that
 * a restart finds the same jobs.  A backend is chosen by the URL given to
 * --store:
 *
 *   memory:          nothing is kept; the jobs module skips the store
 *                    altogether (crd_store_durable() is false).
 *   sqlite:PATH      one file, WAL, one crund per file (a lock file next
 *                    to it names the pid that holds it).
 *   postgresql://... (or postgres://, or any libpq connection string
 *                    after "postgresql:") several nodes on one database:
 *                    the shared mode below.
 *
 * Writes are asynchronous and batch themselves (group commit): a row put
 * while a commit is in flight joins the next one, and puts of the same job
 * before its commit collapse into the newest.  Each put may carry a
 * callback that runs on the loop thread once the row is durable (rc 0) or
 * once its commit failed (rc < 0; the row stays pending and is tried
 * again with the next commit).  The loop thread never waits for a commit
 * (SQLite commits on a writer thread of its own; PostgreSQL uses libpq's
 * non-blocking calls from a task on the loop).  Opening, loading and closing
 * run before the daemon serves and after it stopped, and may block.
 *
 * Everything here is called on the loop thread.
 */
#ifndef CRUND_STORE_H
#define CRUND_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crunner.h"

/* on_interrupt policies */
enum {
	CRD_ON_INTERRUPT_FAIL = 0,
	CRD_ON_INTERRUPT_RETRY = 1,
};

/* A job as the store keeps it: the durable fields of the record.  Strings
 * are NUL-terminated text (JSON text for args, result and attempts);
 * NULL where the job has none.  Times are CLOCK_REALTIME seconds, 0:
 * unset.  The store copies what it is given; rows it hands out are
 * borrowed for the duration of the callback. */
typedef struct crd_store_job {
	uint64_t seq; /* creation order; the row's key */
	const char *id;
	const char *plugin, *job;
	const char *args; /* JSON object text */
	int state;        /* CRUND_JOB_* (jobs.h) */
	unsigned attempt; /* 0 before the first start */
	unsigned max_attempts;
	int on_interrupt; /* CRD_ON_INTERRUPT_* */
	bool isolated;
	double timeout; /* 0: none */
	double run_at;  /* not before (delay, retry backoff); 0: due */
	const char *idem_key;
	const char *result; /* JSON text */
	const char *err_code, *err_msg;
	double progress; /* < 0: none reported */
	const char *progress_msg;
	double created_at, started_at, finished_at;
	const char *attempts; /* JSON array text of earlier attempts, or NULL */
	const char *log;      /* the log lines, '\n'-terminated */
	size_t log_len;
	bool log_truncated;
	const char *retry_of;  /* the id of the job this one runs again, or NULL */
	const char *node;      /* shared mode: the node of the current or last attempt */
	bool cancel_requested; /* running, and somebody asked to cancel it: a restart
	                        * (or, shared, an expired lease) ends it cancelled */
} crd_store_job;

typedef enum crd_store_sync {
	CRD_STORE_SYNC_FULL = 0, /* a commit survives power loss */
	CRD_STORE_SYNC_NORMAL,   /* survives a crash of crund, not of the machine */
} crd_store_sync;

typedef struct crd_store_opts {
	crd_store_sync sync;
	cr_loop *loop; /* where callbacks run */
	/* shared mode (postgresql:) only; 0 / NULL: the defaults */
	const char *node_id;   /* this node's name (default: host name + a suffix) */
	double lease;          /* s a running job is held without renewal (30) */
	unsigned retain_jobs;  /* ended jobs the elected node keeps (count) */
	double retain_seconds; /* ... and for how long */
	/* the cap of the backoff before an interrupted attempt runs again
	 * (--retry-max-delay: < 0 none, 0 the default hour) */
	double retry_max_delay;
} crd_store_opts;

typedef struct crd_store crd_store;

/* A put's completion: rc 0 once the row is durable, or the commit's error
 * (-ENOSPC disk full, -EROFS read-only, -EIO, -ENOMEM, ...). */
typedef void (*crd_store_done_fn)(void *arg, int rc);

/* The default store URL for this process: sqlite:$STATE_DIRECTORY/crund.db
 * under systemd, else /var/lib/crund/crund.db for root and
 * $XDG_STATE_HOME/crund/crund.db (~/.local/state/crund/) for others.
 * Returns a malloc'd string, "" when there is none (not root, no
 * STATE_DIRECTORY, no HOME nor absolute XDG_STATE_HOME), or NULL without
 * memory. */
char *crd_store_default_url(void);

/* Open (creating the file, its directory 0700 and the schema as needed;
 * migrating an older schema forward) and lock the store.  On failure
 * returns a negative code and writes a sentence into err naming the path
 * and what to do:
 *   -EINVAL     a URL this build does not know
 *   -EBUSY      another crund holds the store (its pid in err)
 *   -EPROTO     the file is not a crund store, or a newer schema
 *   -EACCES, -EROFS, -ENOSPC, -EIO, -ENOMEM  as the system said. */
int crd_store_open(const char *url, const crd_store_opts *o, crd_store **ret, char *err,
		   size_t errlen);
/* AWAITS: commit what is pending and wait until nothing is pending nor
 * in flight, at most `timeout` seconds (-ETIMEDOUT then; the rows stay
 * pending).  For shutdown, before crd_store_close.  memory: returns 0. */
int crd_store_drain(crd_store *st, double timeout);
/* Flush what is pending (waiting for the last commit, then writing what
 * is left on the calling thread), unlock and free.  Call it once the loop
 * runs no more callbacks (after the runner closed, as crund does) or right
 * after crd_store_drain returned 0: it schedules nothing on the loop.
 * NULL is a no-op. */
void crd_store_close(crd_store *st);

/* false for memory: (nothing to write; callers skip the store). */
bool crd_store_durable(const crd_store *st);
/* The URL as given, and a form for logs ("sqlite:/path (WAL, sync full)"). */
const char *crd_store_url(const crd_store *st);
const char *crd_store_describe(const crd_store *st);

/* The store's job id prefix (fixed when the store was created, so ids stay
 * unique across restarts) and the highest sequence number it ever gave
 * out.  For memory: NULL and 0. */
const char *crd_store_id_prefix(const crd_store *st);
uint64_t crd_store_max_seq(const crd_store *st);

/* Read every job, oldest first, into fn (at start, before serving).  A
 * negative return of fn stops and is returned. */
int crd_store_load(crd_store *st, int (*fn)(const crd_store_job *row, void *arg), void *arg);

/* Write (insert or replace) a job; done may be NULL.  Returns 0, or
 * -ENOMEM (nothing queued, done never runs). */
int crd_store_put(crd_store *st, const crd_store_job *row, crd_store_done_fn done, void *arg);
/* A row the job's next transition is likely to replace soon (a job's
 * start: most jobs end within milliseconds): the writer leaves it out of
 * its batches for up to 5 ms (the delay of a row nobody waits for), so a
 * job that ends meanwhile is written once, as ended.  0 or -ENOMEM. */
int crd_store_put_soft(crd_store *st, const crd_store_job *row);
/* Forget a job (retention, DELETE); done may be NULL.  A deletion nobody
 * waits for (retention: the next start prunes again) may be written
 * later, with others; one with a done is committed now, like any put with
 * a waiter.  0 or -ENOMEM (done never runs). */
int crd_store_delete(crd_store *st, uint64_t seq, crd_store_done_fn done, void *arg);

/* Health: NULL while the last commit succeeded, else a sentence naming
 * the cause (e.g. "disk full: /var/lib/crund/crund.db") and its code. */
const char *crd_store_error(const crd_store *st, int *ret_code);

/* Counters for /metrics. */
#define CRD_STORE_LAT_N  12 /* commit latency buckets */
#define CRD_STORE_ROWS_N 11 /* jobs-per-commit buckets */
typedef struct crd_store_stats {
	uint64_t commits, commit_failures;
	uint64_t rows_committed;
	uint64_t pending; /* rows waiting for a commit */
	/* commit latency histogram (seconds), cumulative buckets */
	uint64_t lat_le[CRD_STORE_LAT_N];
	double lat_sum;
	/* rows (one per job) per committed transaction, cumulative buckets */
	uint64_t rows_le[CRD_STORE_ROWS_N];
} crd_store_stats;
extern const double crd_store_lat_bounds[CRD_STORE_LAT_N];
extern const double crd_store_rows_bounds[CRD_STORE_ROWS_N];
void crd_store_get_stats(const crd_store *st, crd_store_stats *ret);

/* ------------------------------------------------------ shared mode
 *
 * With postgresql: several nodes share the database, and the database is
 * the only shared state (docs/ARCHITECTURE.md §8.5).  A node does not load
 * every job at start: it claims queued jobs in batches up to its free
 * slots, holds running jobs on a lease it renews, and reads jobs it does
 * not hold from the database.  The jobs module drives this through the
 * calls below; memory: and sqlite: are never shared and these calls are
 * not used with them. */

/* true for a store shared by several nodes (postgresql:). */
bool crd_store_shared(const crd_store *st);
/* This node's id (shared mode), else NULL. */
const char *crd_store_node_id(const crd_store *st);

/* What the store asks of the jobs module (all on the loop thread). */
typedef struct crd_store_node_hooks {
	/* How many jobs this node may claim now (0 while draining). */
	unsigned (*free_slots)(void *arg);
	/* A job this node claimed (state running, attempt and node set in
	 * the row): run it. */
	void (*adopt)(void *arg, const crd_store_job *row);
	/* The jobs this node holds: running here, claimed and about to
	 * start, or ended at or after `since` (their end may still be on its
	 * way to the database).  Up to max of their numbers into out; returns
	 * how many there are (more than max: call again with room for all).
	 * Only their leases are renewed: a row the database says this node
	 * runs but the node does not know (a claim whose answer was lost, a
	 * previous start with the same --node-id) runs out and is requeued. */
	size_t (*held)(void *arg, double since, uint64_t *out, size_t max);
	/* Someone asked to cancel a job this node runs. */
	void (*cancel)(void *arg, uint64_t seq);
	/* The jobs this node watches (records of jobs held elsewhere): up to
	 * max of their numbers into out, returns how many.  When the database
	 * says they may have changed (NOTIFY, or every second), they are read
	 * again and handed to changed. */
	size_t (*watch_list)(void *arg, uint64_t *out, size_t max);
	void (*changed)(void *arg, const crd_store_job *row);
	/* A row this node wrote was kept out by the fence: another node (or
	 * the elected one) holds the job now. */
	void (*fenced)(void *arg, uint64_t seq);
	/* A new job's row was left out of its commit because another job
	 * (`held`, borrowed for the call; NULL when it could not be read)
	 * holds its idempotency key: its submission is answered with that
	 * job.  Called before the row's done callback. */
	void (*duplicate)(void *arg, uint64_t seq, const crd_store_job *held);
	/* A job was deleted from the shared store (a DELETE on some node, or
	 * the elected node's retention): a copy this node keeps of it goes. */
	void (*gone)(void *arg, uint64_t seq);
	/* How many jobs the shared queue holds (queued, due or delayed), read
	 * once a second; counted no further than queue_cap's answer. */
	void (*queued)(void *arg, uint64_t n);
	uint64_t (*queue_cap)(void *arg);
	/* Something the operator should read in the log (a sentence). */
	void (*warn)(void *arg, const char *message);
} crd_store_node_hooks;

/* Join the nodes: heartbeat, claims, lease renewal, the election of the
 * node that requeues expired jobs and prunes, LISTEN.  Runs tasks on the
 * store's loop until crd_store_leave.  0 or -ENOMEM. */
int crd_store_join(crd_store *st, const crd_store_node_hooks *h, void *arg);
/* AWAITS: stop those tasks and say goodbye (the node's row goes). */
void crd_store_leave(crd_store *st);
/* A claim round soon (a slot became free). */
void crd_store_wake(crd_store *st);

/* A block of sequence numbers [*ret_lo, *ret_hi) for this node's new jobs
 * (unique among the nodes).  0, or -EAGAIN while the next block is being
 * fetched (the submission is refused with 503; it is fetched ahead). */
int crd_store_seq_block(crd_store *st, uint64_t *ret_lo, uint64_t *ret_hi);

/* Reads for jobs this node does not hold.  done runs later on the loop
 * thread with the rows (borrowed for the call), or rc < 0 (-ENOENT: no
 * such job; -ECONNRESET, -EIO ...: the database failed).  0, or -ENOMEM
 * (done never runs). */
typedef void (*crd_store_rows_fn)(void *arg, int rc, const crd_store_job *rows, size_t n,
				  bool more);
int crd_store_fetch(crd_store *st, const char *id, crd_store_rows_fn done, void *arg);
/* Newest first: jobs whose state's bit is in state_mask (0: all), of
 * plugin (NULL: all), with seq < before (0: from the newest), up to limit
 * (more: others follow). */
int crd_store_list(crd_store *st, unsigned state_mask, const char *plugin, uint64_t before,
		   size_t limit, crd_store_rows_fn done, void *arg);
/* Cancel a job held elsewhere or queued in the database: a queued one
 * ends cancelled at once, a running one is flagged and its node told
 * (NOTIFY).  done (may be NULL) gets the row afterwards. */
int crd_store_cancel(crd_store *st, uint64_t seq, crd_store_rows_fn done, void *arg);

/* The live nodes as a JSON array text ("[]" when not shared). */
const char *crd_store_nodes_json(const crd_store *st);

#endif
