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
 *   postgresql://... several nodes on one database (the next backend;
 *                    refused with a clear message until it lands).
 *
 * Writes are asynchronous and batch themselves (group commit): a row put
 * while a commit is in flight joins the next one, and puts of the same job
 * before its commit collapse into the newest.  Each put may carry a
 * callback that runs on the loop thread once the row is durable (rc 0) or
 * once its commit failed (rc < 0; the row stays pending and is tried
 * again with the next commit).  The loop thread never waits for a commit
 * (SQLite commits on a writer thread of its own; PostgreSQL will use
 * libpq's non-blocking calls on the loop).  Opening, loading and closing
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
	const char *retry_of; /* the id of the job this one runs again, or NULL */
} crd_store_job;

typedef enum crd_store_sync {
	CRD_STORE_SYNC_FULL = 0, /* a commit survives power loss */
	CRD_STORE_SYNC_NORMAL,   /* survives a crash of crund, not of the machine */
} crd_store_sync;

typedef struct crd_store_opts {
	crd_store_sync sync;
	cr_loop *loop; /* where callbacks run */
} crd_store_opts;

typedef struct crd_store crd_store;

/* A put's completion: rc 0 once the row is durable, or the commit's error
 * (-ENOSPC disk full, -EROFS read-only, -EIO, -ENOMEM, ...). */
typedef void (*crd_store_done_fn)(void *arg, int rc);

/* The default store URL for this process: sqlite:$STATE_DIRECTORY/crund.db
 * under systemd, else /var/lib/crund/crund.db for root and
 * $XDG_STATE_HOME/crund/crund.db (~/.local/state/crund/) for others.
 * Returns a malloc'd string, or NULL without memory. */
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
/* Forget a job (retention, DELETE).  0 or -ENOMEM. */
int crd_store_delete(crd_store *st, uint64_t seq);

/* Health: NULL while the last commit succeeded, else a sentence naming
 * the cause (e.g. "disk full: /var/lib/crund/crund.db") and its code. */
const char *crd_store_error(const crd_store *st, int *ret_code);

/* Counters for /metrics. */
typedef struct crd_store_stats {
	uint64_t commits, commit_failures;
	uint64_t rows_committed;
	uint64_t pending; /* rows waiting for a commit */
	/* commit latency histogram (seconds), cumulative buckets */
	uint64_t lat_le[12];
	double lat_sum;
} crd_store_stats;
extern const double crd_store_lat_bounds[12];
void crd_store_get_stats(const crd_store *st, crd_store_stats *ret);

#endif
