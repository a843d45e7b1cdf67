/*
 * jobs.h — the job store: records, ids, the state machine, the FIFO queue
 * behind max-running, retention of ended jobs (count and age),
 * idempotency keys, cursor listing and subscribers (long-polls and event
 * streams waiting on a job).
 *
 * This module owns the job record: every transition is decided here and
 * handed to the durable store (store/store.h) when one is configured.  It
 * knows nothing of tasks or HTTP: starting and cancelling a running job
 * and waking it for a delayed start go through crd_jobs_ops (jobs/run.c
 * spawns a task on the runner; the unit tests use fakes).  Everything runs
 * on the loop thread.
 *
 * States: queued → running → succeeded | failed | cancelled; a queued job
 * may also go straight to cancelled.  A failed attempt with attempts left
 * goes back to queued with a run_at (backoff); so does a delayed job
 * until its time.  Every job that was accepted ends in one terminal
 * state, recorded once (crd_jobs_finish ignores later calls).
 */
#ifndef CRUND_JOBS_H
#define CRUND_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "crund/plugin.h"
#include "buf.h"
#include "plugins/plugins.h"
#include "store/store.h"

typedef enum crd_job_state {
	CRUND_JOB_QUEUED = 0,
	CRUND_JOB_RUNNING,
	CRUND_JOB_SUCCEEDED,
	CRUND_JOB_FAILED,
	CRUND_JOB_CANCELLED,
	CRUND_JOB_NSTATES
} crd_job_state;

const char *crd_job_state_name(int state);
/* -1 when s names no state. */
int crd_job_state_parse(const char *s);
static inline bool crd_job_state_ended(int st) { return st >= CRUND_JOB_SUCCEEDED; }

/* Events for subscribers. */
enum { CRUND_EV_STATE, CRUND_EV_PROGRESS, CRUND_EV_LOG, CRUND_EV_END };

typedef struct crd_jobrec crd_jobrec;
typedef struct crd_sub crd_sub;
/* A subscriber lives in the subscriber's own memory (a request).  on_event
 * gets JSON text in data for PROGRESS ({"fraction","message"}) and LOG
 * ({"level","message"}); NULL for STATE and END (render the job).  Before
 * END the subscriber is already unlinked: it may free itself in on_event.
 * For other events it may unsubscribe itself (only itself). */
struct crd_sub {
	crd_sub *next, *prev;
	crd_jobrec *job;
	void (*on_event)(crd_sub *s, crd_jobrec *job, int ev, const char *data, size_t len);
};

/* The event stream of every job (jobs/events.c, docs/ARCHITECTURE.md
 * §3.9): each state change of each job is one event, numbered from 1 in
 * this process and kept in a ring of the last `window` events, so a
 * client that reconnects with the last id it saw misses nothing that is
 * still in the window.  An event's data is a job summary (JSON text): id,
 * plugin, job, state, attempt, max_attempts, error code, times, retry_of
 * and idempotency_key -- never args, result or log, so the ring stays
 * small whatever the jobs hold. */
#define CRD_EVENTS_WINDOW_DEFAULT 1024u
#define CRD_EVENTS_WINDOW_MAX     1000000u
#define CRD_EVENT_ID_MAX          48 /* "EPOCH-N" as text, with its NUL */

typedef struct crd_job_event {
	uint64_t id;
	int state;
	const char *plugin; /* the job's plugin */
	const char *data;   /* the summary, NUL-terminated */
	size_t len;
} crd_job_event;

/* A watcher of every job's events lives in its owner's memory (an event
 * stream's request).  on_event may unwatch itself (only itself).  An event
 * with data NULL was lost (out of memory): the watcher missed it. */
typedef struct crd_watch crd_watch;
struct crd_watch {
	crd_watch *next, *prev;
	bool linked;
	void (*on_event)(crd_watch *w, const crd_job_event *ev);
};

struct crd_event_slot;
typedef struct crd_job_events {
	struct crd_event_slot *ring; /* `window` slots, allocated at the first watch */
	size_t window, head, n;      /* the oldest kept is ring[head]; n kept */
	uint64_t last_id;            /* the newest event's id; 0: none yet */
	crd_watch *watchers;
	char epoch[12]; /* this process's event id prefix */
	bool active;    /* events are kept (someone has watched) */
} crd_job_events;

/* flags */
enum {
	CRUND_JF_ISOLATED = 0x01,     /* runs in a copy of the shared context */
	CRUND_JF_PROGRESS = 0x02,     /* progress reported */
	CRUND_JF_LOG_TRUNC = 0x04,    /* log limit reached */
	CRUND_JF_RESULT_BIG = 0x08,   /* set_result over the limit */
	CRUND_JF_TIMED_OUT = 0x10,    /* its timeout ran out */
	CRUND_JF_CANCEL_REQ = 0x20,   /* cancellation requested */
	CRUND_JF_FAIL_SET = 0x40,     /* job_fail() recorded code/message */
	CRUND_JF_STEPPED = 0x80,      /* its task has begun to run */
	CRUND_JF_DELAYED = 0x100,     /* queued, in the delayed list (run_at) */
	CRUND_JF_UNCOMMITTED = 0x200, /* submitted, its row not yet durable */
	CRUND_JF_DIRTY = 0x400,       /* on the dirty list: log/progress to hand to the store */
	/* shared store (several nodes, docs/ARCHITECTURE.md §8.5) */
	CRUND_JF_REMOTE = 0x800,        /* a copy of a job held elsewhere: never run nor
	                                 * written here, not counted, dropped when unused */
	CRUND_JF_CLAIMED = 0x1000,      /* its row makes it this node's (claimed): its
	                                 * start writes nothing more */
	CRUND_JF_NODE_OWNED = 0x2000,   /* node is the record's own copy */
	CRUND_JF_DUPLICATE = 0x4000,    /* uncommitted, left out of its commit: another
	                                 * node's job holds its idempotency key */
	CRUND_JF_END_UNSYNCED = 0x8000, /* ended, its end not yet durable: nobody
	                                 * is told before its commit (settled) */
};

#define CRUND_JOB_ID_MAX 32

/* A job.  Kept compact: the daemon can hold tens of thousands at once. */
struct crd_jobrec {
	struct crund_job head; /* public head handed to plugins: first */
	struct crd_jobs *store;
	uint64_t seq;              /* creation order, 1.. */
	crd_jobrec *older, *newer; /* every job, creation order */
	crd_jobrec *hnext;         /* id hash chain */
	crd_jobrec *lprev, *lnext; /* the FIFO queue (queued) or the
	                            * ended list (ended), never both */
	crd_sub *subs;
	const crd_loaded_plugin *plugin;
	const crund_job_spec *spec;
	/* Ended records are kept as text: a json_t tree costs ~200 bytes
	 * even for {}, and every render would serialise it again. */
	json_t *args;    /* owned, validated, defaults filled;
	                  * NULL once ended and its task gone */
	char *args_json; /* args as compact JSON text, owned */
	char *result;    /* the result as compact JSON text,
	                  * owned, or NULL */
	uint32_t args_len, result_len;
	char *err_code, *err_msg; /* owned, or NULL */
	char *progress_msg;       /* owned, or NULL */
	char *log;                /* owned lines, or NULL */
	uint32_t log_len, log_cap;
	char *idem_key;                             /* owned, or NULL */
	char *retry_of;                             /* the job this one reruns, owned, or NULL */
	void *task;                                 /* cr_task* while the task lives (run.c) */
	double created_at, started_at, finished_at; /* CLOCK_REALTIME s, 0 unset */
	double timeout;                             /* seconds, 0: none */
	const char *cancel_code;                    /* static: "cancelled" or "shutdown" */
	double progress;
	double run_at;     /* queued: not before (delay, backoff); 0: due */
	char *attempts;    /* JSON array text of the earlier attempts, owned, or NULL */
	crd_jobrec *dnext; /* dirty list (log/progress to persist) */
	const char *node;  /* shared store: the node of the current or last
	                    * attempt (this node's id, or owned: NODE_OWNED) */
	double cached_at;  /* REMOTE: when it was read (monotonic-ish wall clock) */
	uint16_t attempt;  /* the current or last attempt, 1..; 0 before the first */
	uint16_t max_attempts;
	uint8_t on_interrupt; /* CRD_ON_INTERRUPT_* */
	uint8_t state;
	uint16_t flags;
	float retry_after; /* this attempt asked for at least this backoff (s) */
	char id[CRUND_JOB_ID_MAX];
};

/* Ended, and its end is durable (or needs not be): what answers and
 * events may tell.  A job whose on_interrupt is fail ends in memory
 * first and settles at its end row's commit (crd_jobs_finish). */
static inline bool crd_job_settled(const crd_jobrec *j)
{
	return crd_job_state_ended(j->state) && !(j->flags & CRUND_JF_END_UNSYNCED);
}

/* A latency histogram (Prometheus): cumulative counts of observations
 * <= crd_hist_bounds[i] seconds, their count and sum. */
#define CRD_HIST_N 14
extern const double crd_hist_bounds[CRD_HIST_N];
typedef struct crd_hist {
	uint64_t le[CRD_HIST_N];
	uint64_t count;
	double sum;
} crd_hist;
void crd_hist_observe(crd_hist *h, double seconds);

/* Run time of the last attempt of ended jobs, by plugin, job and state. */
typedef struct crd_run_hist {
	struct crd_run_hist *next;
	const crd_loaded_plugin *plugin;
	const crund_job_spec *spec;
	int state;
	crd_hist h;
} crd_run_hist;

typedef struct crd_jobs_limits {
	unsigned max_running;
	unsigned max_queued;
	unsigned retain_jobs;
	double retain_seconds;
	size_t max_result_bytes;
	size_t max_log_bytes;
	double retry_max_delay; /* backoff cap, seconds; 0: 3600; < 0: no backoff */
} crd_jobs_limits;

typedef const crund_job_spec *(*crd_jobs_resolve_fn)(void *arg, const char *plugin, const char *job,
						     const crd_loaded_plugin **ret_plugin);

typedef struct crd_jobs_ops {
	/* Start a job the store just marked running (spawn its task).  A
	 * negative return ends the job failed with code "internal". */
	int (*start)(crd_jobrec *job, void *data);
	/* Ask a running job to stop (cancel its task); it ends later through
	 * crd_jobs_finish. */
	void (*cancel)(crd_jobrec *job, void *data);
	/* Optional: a job reached its terminal state (after subscribers). */
	void (*ended)(crd_jobrec *job, void *data);
	/* Optional: call crd_jobs_due() at wall-clock time `when` (the
	 * earliest run_at of a delayed job; a later call replaces it). */
	void (*wake_at)(double when, void *data);
	/* Optional: a sentence for the operator's log (a shared store's
	 * election deposed a paused node, ...). */
	void (*warn)(const char *message, void *data);
} crd_jobs_ops;

/* A slab of job records (jobs.c): this head, then the records. */
struct crd_rec_slab {
	struct crd_rec_slab *next;
};

typedef struct crd_jobs {
	crd_jobs_limits lim;
	crd_jobs_ops ops;
	void *ops_data;
	double (*now)(void); /* wall clock, seconds */
	char prefix[16];     /* per-process random id prefix */
	size_t prefix_len;
	uint64_t next_seq;
	crd_jobrec **htab;
	size_t hsize, count;
	crd_jobrec **old_htab;     /* being emptied into htab, or NULL */
	size_t old_hsize, old_pos; /* old_pos: buckets moved so far */
	crd_jobrec *newest, *oldest;
	crd_jobrec *q_head, *q_tail;
	crd_jobrec *e_head, *e_tail;
	/* the last job to end whose end is not durable yet: once it is, so
	 * are the ends before it (rows commit in the order they are put) */
	crd_jobrec *last_unsynced;
	size_t n_state[CRUND_JOB_NSTATES]; /* live records by state */
	uint64_t n_submitted;
	uint64_t n_ended_total[CRUND_JOB_NSTATES];
	json_t *idem; /* idempotency key → seq */
	bool draining;
	crd_store *st;               /* durable store, or NULL (memory:) */
	crd_jobrec *d_head, *d_tail; /* delayed (queued with run_at), by run_at */
	crd_jobrec *dirty;           /* records with log/progress to persist */
	double wake_armed;           /* the wake_at asked for, 0: none */
	uint64_t n_retries, n_interrupted, n_store_errors;
	size_t n_load_skipped;    /* stored rows not read back: damaged (crd_jobs_load) */
	crd_run_hist *run_hists;  /* run time by plugin, job and outcome */
	crd_hist queue_wait;      /* from due (created, or run_at) to start */
	bool loading;             /* crd_jobs_load: start nothing yet */
	struct crd_ghost *ghosts; /* stand-ins for plugins no longer loaded */
	/* record slabs (jobs.c) */
	bool rec_plain; /* calloc/free: sanitizers, valgrind */
	struct crd_rec_slab *slabs;
	char *slab_pos, *slab_pop; /* next record; populated up to */
	size_t slab_left;
	bool pop_whole;       /* no MADV_POPULATE_WRITE: MAP_POPULATE */
	crd_jobrec *rec_free; /* free records, linked by hnext */
	crd_job_events ev;    /* every job's events (jobs/events.c) */
	/* shared store (crd_store_shared): several nodes */
	bool shared;
	const char *node_id; /* the store's node id */
	uint64_t seq_end;    /* the current block of job numbers ends here */
	unsigned n_claiming; /* submissions claimed at insert, not committed yet */
	size_t n_remote;     /* REMOTE records */
	/* shared: the database's queue as a node counted it last (each
	 * second), and the jobs queued here since (--max-queued) */
	uint64_t shared_queued, queued_since_count;
	bool explicit_delete;       /* job_forget: the row goes too (DELETE) */
	crd_store_done_fn del_done; /* ... and its commit is told here (DELETE) */
	void *del_arg;
	bool del_pending;            /* ... and will be */
	crd_jobs_resolve_fn resolve; /* plugin lookup for claimed jobs */
	void *resolve_arg;
	uint64_t n_claimed, n_lease_fenced;
	/* submissions left out of their commit for another node's job with
	 * their idempotency key: which job answers them (see hook_duplicate) */
	struct crd_dup {
		uint64_t seq, held;
		int rc; /* 1: the same submission (200), -EEXIST: another (409) */
	} * dups;
	size_t ndups, capdups;
	uint64_t n_idem_remote; /* submissions answered with another node's job */
} crd_jobs;

/* now NULL: CLOCK_REALTIME.  The id prefix comes from getrandom(). */
int crd_jobs_init(crd_jobs *s, const crd_jobs_limits *lim, const crd_jobs_ops *ops, void *ops_data,
		  double (*now)(void));
/* Free every record (tasks must be gone: after the runner closed). */
void crd_jobs_free(crd_jobs *s);
/* Set the id prefix (tests); 1..13 chars of [0-9a-z]. */
void crd_jobs_set_prefix(crd_jobs *s, const char *prefix);

double crd_now_realtime(void);

/* Use a durable store (NULL or memory: none).  Before crd_jobs_load. */
void crd_jobs_set_store(crd_jobs *s, crd_store *st);
/* Read the store's jobs at start: ids continue the store's, queued jobs
 * keep their order and run_at, a job recorded `running` (its process
 * died) follows its on_interrupt policy.  Jobs of plugins no longer loaded
 * are kept if ended, and fail with "plugin_missing" if not.  Starts what
 * can run.  0 or a negative code (the store's, or -ENOMEM). */
int crd_jobs_load(crd_jobs *s, crd_jobs_resolve_fn resolve, void *arg);
/* After a load: start what can run now (the daemon serves).  Until then
 * loaded jobs wait, so a start that fails half-way runs nothing. */
void crd_jobs_run(crd_jobs *s);

/* A submission, already validated (jobs/submit.h parses a body into one:
 * crd_submission is this struct). */
typedef struct crd_job_req {
	const crd_loaded_plugin *plugin;
	const crund_job_spec *spec;
	json_t *args;   /* STOLEN (also on failure) */
	double timeout; /* 0: none */
	bool isolated;
	const char *idem_key;  /* copied; NULL: none */
	unsigned max_attempts; /* 0: 1 */
	double run_at;         /* wall clock; 0: now */
	int on_interrupt;      /* CRD_ON_INTERRUPT_*, -1: the default (fail) */
	const char *retry_of;  /* copied; the id of the ended job this one reruns */
	/* With a durable store the job waits for its commit: accepted(arg,
	 * job, rc) runs later on the loop thread, rc 0 once it is durable (it
	 * is queued or started then), 1 when it named the idempotency key of a
	 * submission still waiting for its commit and that one committed (job
	 * is that one), or the store's error (the job is gone).
	 * Required when a store is set. */
	void (*accepted)(void *arg, crd_jobrec *job, int rc);
	void *accepted_arg;
} crd_job_req;

#define CRD_JOBS_PENDING 1

/* Create a job: it starts at once when a running slot is free, or waits
 * in the FIFO queue (or the delayed list until run_at).  *ret_job is
 * borrowed (store-owned).  Returns 0, CRD_JOBS_PENDING (durable store:
 * req->accepted will tell; until then the job is invisible), or:
 *   -EEXIST     idempotency key used with a different submission
 *   -EAGAIN     the queue is full
 *   -ESHUTDOWN  draining
 *   -EIO        the durable store is failing (crd_store_error says why)
 *   -ENOMEM, or the start hook's error (nothing kept).
 * With an idempotency key seen before and the same submission, returns 0
 * with the existing job and *ret_existing = true. */
int crd_jobs_submit(crd_jobs *s, crd_job_req *req, crd_jobrec **ret_job, bool *ret_existing);

/* Delayed jobs whose run_at has come are queued (ops.wake_at asked). */
void crd_jobs_due(crd_jobs *s);
/* Hand records with new log lines or progress to the store (a second's
 * batching; their transitions write them anyway). */
void crd_jobs_flush_dirty(crd_jobs *s);

/* AWAITS, in the job's task before the plugin's code: a job whose
 * on_interrupt policy is `fail` runs only once its start (state running,
 * the attempt) is durable.  Otherwise it would start while its start row
 * waits for a lazy commit, and a crash then would leave it queued in the
 * store: the next start would run it again.  A failed commit (disk full)
 * is waited out: the store tries again, and so does this.  0 at once for
 * other jobs and stores (memory; a shared store's claim wrote the start);
 * -ECANCELED when the task is cancelled meanwhile, -ENOMEM. */
int crd_jobs_await_durable_start(crd_jobrec *job);
/* The attempt's outcome, decided from how the task ended: rc is the job
 * function's return, cancelled whether the task was cancelled, timed_out
 * whether its timeout ran out.  Retries a failed attempt with attempts
 * left (backoff), or records the terminal state. */
void crd_jobs_attempt_ended(crd_jobs *s, crd_jobrec *job, int rc, bool cancelled, bool timed_out);
/* Shutdown: a running job whose task did not end when cancelled (the task
 * is abandoned to the runner's close).  With a durable store a job that
 * may run again (policy retry, or its plugin code never ran) is queued
 * for the next start, as if it had stopped in time; the others end
 * cancelled "shutdown". */
void crd_jobs_abandon(crd_jobs *s, crd_jobrec *job);
/* The plugin's failure message for this attempt (copied; code NULL:
 * "plugin_error").  0 or -ENOMEM. */
int crd_jobs_set_failure(crd_jobrec *job, const char *code, const char *message);
/* Progress: fraction clamped to [0,1]; message copied (may be NULL);
 * subscribers get a PROGRESS event.  -EINVAL for a NaN, -ENOMEM. */
int crd_jobs_set_progress(crd_jobrec *job, double fraction, const char *message);

/* The id of sequence number seq into out (CRUND_JOB_ID_MAX bytes). */
void crd_jobs_format_id(const crd_jobs *s, uint64_t seq, char *out);

/* Look a job up by id; NULL when unknown (or evicted). */
crd_jobrec *crd_jobs_find(crd_jobs *s, const char *id);
crd_jobrec *crd_jobs_find_seq(crd_jobs *s, uint64_t seq);
/* Decode an id of this process into its sequence number; -EINVAL else. */
int crd_jobs_parse_id(const crd_jobs *s, const char *id, uint64_t *ret_seq);

/* Record the terminal state (once; later calls are ignored).  code and
 * message are copied (may be NULL).  Notifies subscribers (END), runs the
 * ended hook, starts queued jobs when slots are free and applies the
 * count retention — so `job` may be freed on return. */
void crd_jobs_finish(crd_jobs *s, crd_jobrec *job, int state, const char *code,
		     const char *message);

/* Set the result of a running job (steals the reference): kept as text.
 * -E2BIG over max_result_bytes (CRUND_JF_RESULT_BIG is set), -EINVAL when
 * result is NULL or cannot be written as JSON, -ENOMEM. */
int crd_jobs_set_result(crd_jobrec *job, json_t *result);

/* The task of a job that ended by force is gone: drop what only a running
 * job needs (its json_t args; the text stays). */
void crd_jobs_task_gone(crd_jobrec *job);

/* Cancel: a queued job ends cancelled at once; a running one is asked to
 * stop (ops.cancel) and ends later.  code: "cancelled" or "shutdown"
 * (static strings).  -EALREADY when the job already ended. */
int crd_jobs_cancel(crd_jobs *s, crd_jobrec *job, const char *code);
/* The same, for a running job on a durable store: the request is written
 * (a restart ends the job cancelled instead of running it again) and
 * done(arg, rc) runs at its commit: returns CRD_JOBS_PENDING.  Else as
 * crd_jobs_cancel (done never runs). */
int crd_jobs_cancel_then(crd_jobs *s, crd_jobrec *job, const char *code, crd_store_done_fn done,
			 void *arg);

/* Forget an ended job (DELETE).  With a durable store and a done, the
 * deletion is committed now and done(arg, rc) runs at its commit (rc < 0:
 * the commit failed; the store keeps trying): returns CRD_JOBS_PENDING.
 * Else 0 (the record is gone; a store writes the deletion later).  -EBUSY
 * while the job is active; -EAGAIN while its end is not written (a failing
 * store): forgetting it would tell that end. */
int crd_jobs_delete(crd_jobs *s, crd_jobrec *job, crd_store_done_fn done, void *arg);

/* Age retention: forget ended jobs older than retain_seconds. */
void crd_jobs_expire(crd_jobs *s);

/* Draining: refuse submissions and start nothing more.  Without a durable
 * store queued jobs end cancelled ("shutdown"); with one they wait for the
 * next start.  Returns how many queued jobs were cancelled or kept. */
size_t crd_jobs_drain(crd_jobs *s);
/* Ask every running job to stop with code (see crd_jobs_cancel). */
void crd_jobs_cancel_running(crd_jobs *s, const char *code);
/* At the close: every subscriber of a job that has not ended (one kept
 * queued for the next start by a durable store) gets END now, with the
 * job as it is: a long-poll answers its state, an event stream ends
 * cleanly, instead of being cut when the transport stops. */
void crd_jobs_release_subscribers(crd_jobs *s);
/* The job will not change in this process: the close kept it queued for
 * the next start (its subscribers are answered at once). */
static inline bool crd_job_kept_for_next_start(const crd_jobrec *j)
{
	return j->store->draining && j->state == CRUND_JOB_QUEUED;
}
size_t crd_jobs_active(const crd_jobs *s); /* queued + running */

/* Subscribers */
void crd_jobs_subscribe(crd_jobrec *job, crd_sub *sub);
void crd_jobs_unsubscribe(crd_sub *sub); /* no-op when not linked */
/* Send an event to the job's subscribers (progress/log/state). */
void crd_jobs_emit(crd_jobrec *job, int ev, const char *data, size_t len);

/* Log: append a line (bounded by max_log_bytes; sets LOG_TRUNC once full). */
void crd_jobs_log_append(crd_jobrec *job, const char *line, size_t len);
/* The running attempt asks that a retry wait at least `seconds` (a plugin's
 * Retry-After); --retry-max-delay still caps it. */
void crd_jobs_set_retry_after(crd_jobrec *job, double seconds);

/* Listing, newest first.  state_mask: bit per state (0: all); plugin NULL:
 * all.  Start after `cursor` (a job id from a previous page; NULL: from
 * the newest).  fn is called for up to `limit` jobs; *ret_more says
 * whether more matching jobs follow (the last one's id is the next
 * cursor).  -EINVAL for a cursor not from this process. */
int crd_jobs_list(crd_jobs *s, unsigned state_mask, const char *plugin, const char *cursor,
		  size_t limit, void (*fn)(crd_jobrec *job, void *arg), void *arg, bool *ret_more);

/* Every job's events (jobs/events.c).  Nothing is kept until the first
 * watch: a daemon nobody watches pays nothing per transition. */
/* The ring's size (before the first watch; 1..CRD_EVENTS_WINDOW_MAX). */
void crd_jobs_events_window(crd_jobs *s, size_t window);
/* Start keeping events (the first time) and call w for each new one.
 * -ENOMEM when the ring cannot be allocated (w is not linked). */
int crd_jobs_watch(crd_jobs *s, crd_watch *w);
void crd_jobs_unwatch(crd_jobs *s, crd_watch *w); /* no-op when not linked */
/* The id of the newest event (0: none) and its text form. */
uint64_t crd_jobs_last_event(const crd_jobs *s);
void crd_jobs_event_id(const crd_jobs *s, uint64_t id, char out[CRD_EVENT_ID_MAX]);
/* Replay the kept events newer than the event named `last` (text, as sent
 * in an SSE id) through fn, oldest first.  0 when nothing after `last`
 * was lost; -ESTALE when some events after it have left the window (fn
 * is not called); -EINVAL when `last` is not an event id of this process
 * (another process's, or garbage). */
int crd_jobs_events_since(const crd_jobs *s, const char *last,
			  void (*fn)(const crd_job_event *ev, void *arg), void *arg);
/* The number of the event an SSE id names: 0, or -EINVAL (as above). */
int crd_jobs_event_parse(const crd_jobs *s, const char *text, uint64_t *ret_id);
/* Replay the kept events after event number `id` through fn, oldest first,
 * while fn answers true: 0 when all were replayed, 1 when fn stopped it,
 * -ESTALE when some after `id` have left the window (fn is not called). */
int crd_jobs_events_after(const crd_jobs *s, uint64_t id,
			  bool (*fn)(const crd_job_event *ev, void *arg), void *arg);
/* jobs.c: a job's state changed (or it was created): number the event,
 * keep it, tell the watchers.  A no-op until the first watch. */
void crd_jobs_announce(crd_jobs *s, const crd_jobrec *job);
void crd_jobs_events_free(crd_jobs *s);

/* The same with more filters: each set field must match; text is a
 * substring of the id or of the idempotency key. */
typedef struct crd_jobs_filter {
	unsigned state_mask; /* bit per state; 0: all */
	const char *plugin;  /* NULL: all */
	const char *job;     /* the job's name in its plugin; NULL: all */
	const char *text;    /* NULL: all */
} crd_jobs_filter;
int crd_jobs_list_where(crd_jobs *s, const crd_jobs_filter *f, const char *cursor, size_t limit,
			void (*fn)(crd_jobrec *job, void *arg), void *arg, bool *ret_more);

/* The job's JSON object, appended to b (see docs/ARCHITECTURE.md §5.1). */
void crd_job_render(crd_buf *b, const crd_jobrec *job);

/* ------------------------------------------------------- shared store
 *
 * With a shared store (postgresql:) this node holds only the jobs it runs
 * (claimed from the database in batches, or claimed at insert when a slot
 * is free) and, for a while, the ones it submitted; queued jobs wait in
 * the database for any node.  Jobs held elsewhere are read on demand and
 * kept as REMOTE records while a request or subscriber uses them.
 * crd_jobs_load reads nothing and crd_jobs_run joins the nodes. */

/* AWAITS: leave the nodes (shutdown, after the store drained). */
void crd_jobs_leave(crd_jobs *s);
/* A row read from the shared store: the local record of that job, made or
 * refreshed as a REMOTE record unless this node holds the job.  NULL
 * without memory.  Borrowed. */
crd_jobrec *crd_jobs_cache_row(crd_jobs *s, const crd_store_job *row);
/* The JSON object of a row read from the shared store (as crd_job_render
 * would render its record). */
void crd_jobs_render_row(crd_jobs *s, crd_buf *b, const crd_store_job *row);

#endif
