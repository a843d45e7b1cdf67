/*
 * store/store.c — the store seam: URL dispatch, group commit, the writer
 * thread; see store.h.
 *
 * Rows put by the jobs module wait in `pending` (one entry per job: a
 * newer put of the same job replaces the older one and inherits its
 * waiters).  The writer thread takes every pending row as one batch when
 * a row has a waiter (a submission waits for its 201), when the lazy
 * timer asks, or when a drain or a retry does; rows put while it commits
 * wait for the next batch, which it takes as soon as the commit is done,
 * without waiting for the loop thread to see the completion.  So a commit
 * (and its fsync) is shared by everything that arrived during the
 * previous one: one commit per batch at low load, large batches at high
 * load, and the writer never idles while a submission waits.  `pending`
 * and the writer's state are shared with the writer under `mu`; the loop
 * thread holds it only to add rows and to collect completed batches.
 *
 * A failed commit reports its error to the rows' waiters, puts the rows
 * back (unless a newer version of the same job is pending) and tries
 * again after RETRY_DELAY: an acknowledged row was committed, and a
 * transition that was not is kept until a commit succeeds.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/backend.h"
#include "thread.h"

#define RETRY_DELAY 1.0 /* seconds between commits while the store fails */
/* A row nobody waits for (a job's start, end, log) may wait this long for
 * a commit that some submission asks for anyway: rows ride along instead
 * of each costing a commit (and an fsync) of its own.  A crash in this
 * window loses such a row, never an acknowledged submission: the job's
 * last durable state is then its start, and the next start treats it as
 * interrupted (its on_interrupt policy). */
#define LAZY_DELAY  0.005

const double crd_store_lat_bounds[CRD_STORE_LAT_N] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
						      0.01,   0.025,   0.05,   0.1,   0.25,   1.0};
const double crd_store_rows_bounds[CRD_STORE_ROWS_N] = {1,  2,   4,   8,   16,  32,
							64, 128, 256, 512, 1024};

struct crd_store_waiter {
	struct crd_store_waiter *next;
	crd_store_done_fn done;
	void *arg;
};

/* One batch handed to the writer thread. */
typedef struct batch {
	struct batch *next; /* the completed list */
	crd_store_row **rows;
	size_t n;
	uint64_t hi_seq;
	int rc;
	char err[256];
	double seconds;
} batch;

struct crd_store {
	char *url;
	char *describe;
	const crd_store_backend *be;
	void *bs; /* backend state */
	cr_loop *loop;

	/* pending rows, and seq → index into them (open addressing) */
	crd_store_row **pend;
	size_t npend, cappend;
	uint64_t *hkeys; /* seq + 1; 0: empty */
	size_t *hvals;
	size_t hcap;

	uint64_t hi_seq;      /* highest sequence number put */
	bool closing;         /* crd_store_close: the loop may be gone, schedule nothing */
	bool flush_scheduled; /* inline backends: a flush is scheduled */
	bool kick_scheduled;  /* threaded: kick_cb runs at the end of this turn */
	cr_handle *lazy;      /* LAZY_DELAY timer for rows without waiters */
	cr_handle *retry;
	cr_event *idle;       /* set while nothing is pending nor in flight */
	cr_task *commit_task; /* on_loop backends: the commit running */

	int err_code;
	char err[256];
	crd_store_stats stats;

	/* Shared with the writer thread under mu: pend..hi_seq above, and */
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool want;                          /* commit what is pending now (a waiter, lazy, drain) */
	bool all;                           /* ... soft rows too (lazy, drain, retry) */
	size_t nsoft;                       /* soft rows put since the last batch (at most) */
	bool probe;                         /* commit even with nothing pending (after a failure) */
	bool paused;                        /* a commit failed: wait for the retry timer */
	bool complete_sent;                 /* on_complete is scheduled on the loop */
	batch *inflight;                    /* being committed (inline backends: in finish) */
	batch *completed, **completed_tail; /* done, for the loop to finish */
	bool quit;
};

/* ------------------------------------------------------------- URLs */

static char *join_path(const char *dir, const char *rest)
{
	size_t n = strlen(dir) + strlen(rest) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, rest);
	return p;
}

char *crd_store_default_url(void)
{
	const char *sd = getenv("STATE_DIRECTORY");
	char *path = NULL;
	if (sd && *sd) {
		/* systemd may list several, separated by ':': the first is ours */
		char *first = strndup(sd, strcspn(sd, ":"));
		path = first ? join_path(first, "crund.db") : NULL;
		free(first);
	} else if (geteuid() == 0) {
		path = strdup("/var/lib/crund/crund.db");
	} else {
		const char *xdg = getenv("XDG_STATE_HOME");
		const char *home = getenv("HOME");
		if (xdg && *xdg == '/')
			path = join_path(xdg, "crund/crund.db");
		else if (home && *home)
			path = join_path(home, ".local/state/crund/crund.db");
		else
			return strdup(""); /* no place of its own: the caller says so */
	}
	if (!path)
		return NULL;
	char *url = join_path("sqlite:", path);
	free(path);
	if (url) /* join_path wrote "sqlite:/path": drop the slash it added */
		memmove(url + 7, url + 8, strlen(url + 8) + 1);
	return url;
}

/* ----------------------------------------------------------- rows */

static size_t slen(const char *s) { return s ? strlen(s) + 1 : 0; }

static const char *scopy(char **pos, const char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s) + 1;
	char *d = *pos;
	memcpy(d, s, n);
	*pos += n;
	return d;
}

/* One allocation: the row, then every string it holds. */
crd_store_row *crd_store_row_copy(const crd_store_job *j, bool del)
{
	size_t n = sizeof(crd_store_row);
	if (!del)
		n += slen(j->id) + slen(j->plugin) + slen(j->job) + slen(j->args) +
		     slen(j->idem_key) + slen(j->result) + slen(j->err_code) + slen(j->err_msg) +
		     slen(j->progress_msg) + slen(j->attempts) + slen(j->retry_of) + slen(j->node) +
		     j->log_len + 1;
	crd_store_row *r = malloc(n);
	if (!r)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->del = del;
	r->job.seq = j->seq;
	if (del)
		return r;
	char *pos = (char *)(r + 1);
	r->job = *j;
	r->job.id = scopy(&pos, j->id);
	r->job.plugin = scopy(&pos, j->plugin);
	r->job.job = scopy(&pos, j->job);
	r->job.args = scopy(&pos, j->args);
	r->job.idem_key = scopy(&pos, j->idem_key);
	r->job.result = scopy(&pos, j->result);
	r->job.err_code = scopy(&pos, j->err_code);
	r->job.err_msg = scopy(&pos, j->err_msg);
	r->job.progress_msg = scopy(&pos, j->progress_msg);
	r->job.attempts = scopy(&pos, j->attempts);
	r->job.retry_of = scopy(&pos, j->retry_of);
	r->job.node = scopy(&pos, j->node);
	if (j->log_len)
		memcpy(pos, j->log, j->log_len);
	pos[j->log_len] = '\0';
	r->job.log = pos;
	return r;
}

static void tell_waiters(crd_store_row *r, int rc)
{
	struct crd_store_waiter *w = r->waiters;
	r->waiters = NULL;
	while (w) {
		struct crd_store_waiter *n = w->next;
		w->done(w->arg, rc);
		free(w);
		w = n;
	}
}

void crd_store_new_prefix(char out[14])
{
	static const char b32[] = "0123456789abcdefghjkmnpqrstvwxyz";
	uint64_t r = 0;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint64_t)time(NULL) * UINT64_C(0x9e3779b97f4a7c15) ^ (uint64_t)getpid();
	for (int i = 12; i >= 0; i--) {
		out[i] = b32[r & 31];
		r >>= 5;
	}
	out[13] = '\0';
}

void crd_store_row_free(crd_store_row *r)
{
	if (!r)
		return;
	/* waiters are told before a row is freed; none may be left */
	struct crd_store_waiter *w = r->waiters;
	while (w) {
		struct crd_store_waiter *n = w->next;
		free(w);
		w = n;
	}
	free(r);
}

/* ---------------------------------------------------------- pending */

static size_t hslot(const crd_store *st, uint64_t seq)
{
	size_t h = (size_t)(seq * UINT64_C(0x9e3779b97f4a7c15) >> 17) & (st->hcap - 1);
	while (st->hkeys[h] && st->hkeys[h] != seq + 1)
		h = (h + 1) & (st->hcap - 1);
	return h;
}

static int hgrow(crd_store *st)
{
	size_t ncap = st->hcap ? st->hcap * 2 : 256;
	uint64_t *k = calloc(ncap, sizeof(*k));
	size_t *v = calloc(ncap, sizeof(*v));
	if (!k || !v) {
		free(k);
		free(v);
		return -ENOMEM;
	}
	free(st->hkeys);
	free(st->hvals);
	st->hkeys = k;
	st->hvals = v;
	st->hcap = ncap;
	for (size_t i = 0; i < st->npend; i++) {
		size_t h = hslot(st, st->pend[i]->job.seq);
		st->hkeys[h] = st->pend[i]->job.seq + 1;
		st->hvals[h] = i;
	}
	return 0;
}

static void kick(crd_store *st, bool waited, bool all);
static void schedule_kick(crd_store *st);
static void schedule_lazy(crd_store *st);

/* Take r into pending: it replaces an older row of the same job (whose
 * waiters it inherits).  With `only_if_absent` (a failed row coming back)
 * a newer pending row wins and r is freed.  0 or -ENOMEM (r untouched). */
static int pend_add(crd_store *st, crd_store_row *r, bool only_if_absent)
{
	if ((st->npend + 1) * 2 > st->hcap && hgrow(st) < 0)
		return -ENOMEM;
	size_t h = hslot(st, r->job.seq);
	if (st->hkeys[h]) {
		crd_store_row *old = st->pend[st->hvals[h]];
		if (only_if_absent) {
			crd_store_row_free(r);
			return 0;
		}
		/* the newer row takes the older one's waiters */
		struct crd_store_waiter **tail = &r->waiters;
		while (*tail)
			tail = &(*tail)->next;
		*tail = old->waiters;
		old->waiters = NULL;
		crd_store_row_free(old);
		st->pend[st->hvals[h]] = r;
		return 0;
	}
	if (st->npend == st->cappend) {
		size_t ncap = st->cappend ? st->cappend * 2 : 64;
		crd_store_row **p = realloc(st->pend, ncap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		st->pend = p;
		st->cappend = ncap;
	}
	st->hkeys[h] = r->job.seq + 1;
	st->hvals[h] = st->npend;
	st->pend[st->npend++] = r;
	return 0;
}

static double mono(void);

/* Add a row to pending (under mu: the writer takes rows from there) and
 * see that it gets committed: at once when someone waits for it, else
 * within LAZY_DELAY. */
static int put_row(crd_store *st, crd_store_row *r, crd_store_done_fn done, void *arg, uint64_t seq)
{
	if (done) {
		struct crd_store_waiter *w = malloc(sizeof(*w));
		if (!w) {
			crd_store_row_free(r);
			return -ENOMEM;
		}
		w->next = NULL;
		w->done = done;
		w->arg = arg;
		r->waiters = w;
	}
	pthread_mutex_lock(&st->mu);
	int rc = pend_add(st, r, false);
	if (rc == 0 && seq > st->hi_seq)
		st->hi_seq = seq;
	bool lazy = rc == 0 && !done && (!st->want || r->soft_until);
	if (rc == 0 && r->soft_until)
		st->nsoft++;
	pthread_mutex_unlock(&st->mu);
	if (rc < 0) {
		crd_store_row_free(r);
		return -ENOMEM;
	}
	if (st->idle)
		cr_event_clear(st->idle);
	if (done)
		schedule_kick(st);
	else if (lazy)
		schedule_lazy(st);
	return 0;
}

int crd_store_put(crd_store *st, const crd_store_job *row, crd_store_done_fn done, void *arg)
{
	crd_store_row *r = crd_store_row_copy(row, false);
	if (!r)
		return -ENOMEM;
	return put_row(st, r, done, arg, row->seq);
}

int crd_store_put_soft(crd_store *st, const crd_store_job *row)
{
	crd_store_row *r = crd_store_row_copy(row, false);
	if (!r)
		return -ENOMEM;
	if (st->be->threaded) /* inline backends take every row anyway */
		r->soft_until = mono() + LAZY_DELAY;
	return put_row(st, r, NULL, NULL, row->seq);
}

int crd_store_delete(crd_store *st, uint64_t seq, crd_store_done_fn done, void *arg)
{
	crd_store_job j = {.seq = seq};
	crd_store_row *r = crd_store_row_copy(&j, true);
	return r ? put_row(st, r, done, arg, 0) : -ENOMEM;
}

/* ------------------------------------------------------- the writer */

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_complete(void *arg);
static void finish_batch(crd_store *st, batch *b);

/* Soft rows still young and without waiters stay pending (unless `all`). */
static bool held(const crd_store_row *r, double now) { return r->soft_until > now && !r->waiters; }

/* Every pending row as one batch (under mu), but young soft rows unless
 * `all`: they stay pending.  NULL without memory. */
static batch *take_pending(crd_store *st, bool all)
{
	batch *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	crd_store_row **keep = NULL;
	size_t nkeep = 0;
	if (!all && st->nsoft) {
		double now = mono();
		for (size_t i = 0; i < st->npend; i++)
			nkeep += held(st->pend[i], now);
		if (nkeep && (keep = malloc(nkeep * sizeof(*keep)))) {
			size_t k = 0;
			nkeep = 0;
			for (size_t i = 0; i < st->npend; i++) {
				if (held(st->pend[i], now))
					keep[nkeep++] = st->pend[i];
				else
					st->pend[k++] = st->pend[i];
			}
			st->npend = k;
		} else {
			nkeep = 0; /* none, or no memory: take them all */
		}
	}
	b->rows = st->pend;
	b->n = st->npend;
	b->hi_seq = st->hi_seq;
	st->pend = NULL;
	st->npend = st->cappend = 0;
	if (st->hkeys)
		memset(st->hkeys, 0, st->hcap * sizeof(*st->hkeys));
	st->nsoft = 0;
	if (nkeep) { /* the hash has room: it held them all a moment ago */
		st->pend = keep;
		st->cappend = nkeep;
		for (size_t i = 0; i < nkeep; i++)
			pend_add(st, keep[i], false);
		st->nsoft = nkeep;
	}
	st->want = st->probe = false;
	return b;
}

/* The writer has something to commit (under mu). */
static bool writer_ready(const crd_store *st)
{
	return !st->paused && ((st->want && st->npend) || st->probe);
}

static void *writer_main(void *arg)
{
	crd_store *st = arg;
	pthread_mutex_lock(&st->mu);
	for (;;) {
		while (!st->quit && !writer_ready(st)) {
			st->want = st->want && st->npend; /* nothing left to want */
			pthread_cond_wait(&st->cv, &st->mu);
		}
		if (st->quit)
			break;
		bool probe = st->probe, all = st->all;
		st->all = false;
		batch *b = take_pending(st, all);
		if (b && !b->n && !probe) { /* every row held back (soft) */
			free(b->rows);
			free(b);
			continue;
		}
		if (!b) { /* out of memory: the rows stay pending; try again soon */
			pthread_mutex_unlock(&st->mu);
			nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
			pthread_mutex_lock(&st->mu);
			continue;
		}
		st->inflight = b;
		pthread_mutex_unlock(&st->mu);

		double t0 = mono();
		b->err[0] = '\0';
		b->rc = st->be->commit(st->bs, b->rows, b->n, b->hi_seq, b->err, sizeof(b->err));
		b->seconds = mono() - t0;

		pthread_mutex_lock(&st->mu);
		st->inflight = NULL;
		*st->completed_tail = b;
		st->completed_tail = &b->next;
		if (b->rc < 0)
			st->paused = true; /* until the loop's retry timer */
		bool send = !st->complete_sent;
		st->complete_sent = true;
		pthread_cond_broadcast(&st->cv);
		pthread_mutex_unlock(&st->mu);
		/* -ESHUTDOWN: the loop is closing; crd_store_close collects it */
		if (send)
			cr_call_soon_threadsafe(st->loop, on_complete, st);
		pthread_mutex_lock(&st->mu);
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

static void after_inline_commit(crd_store *st, batch *b);

/* An on_loop backend's commit: a task on the loop (the backend awaits
 * inside its commit), one at a time like the writer's. */
static int commit_task(void *arg, void **ret)
{
	crd_store *st = arg;
	batch *b = st->inflight;
	(void)ret;
	double t0 = mono();
	b->err[0] = '\0';
	b->rc = st->be->commit(st->bs, b->rows, b->n, b->hi_seq, b->err, sizeof(b->err));
	b->seconds = mono() - t0;
	return 0;
}

static void commit_task_done(cr_task *t, void *arg)
{
	crd_store *st = arg;
	if (cr_task_cancelled(t) && st->inflight) {
		st->inflight->rc = -ECANCELED;
		snprintf(st->inflight->err, sizeof(st->inflight->err), "the commit was cancelled");
	}
	cr_task_unref(t);
	st->commit_task = NULL;
	if (st->inflight && !st->closing)
		after_inline_commit(st, st->inflight);
}

static void set_idle_if_done(crd_store *st)
{
	if (!st->idle)
		return;
	pthread_mutex_lock(&st->mu);
	bool done = !st->npend && !st->inflight && !st->completed;
	pthread_mutex_unlock(&st->mu);
	if (done)
		cr_event_set(st->idle);
}

/* Inline backends (memory): commit on the loop thread. */
static void schedule_flush(crd_store *st);
static void flush(void *arg)
{
	crd_store *st = arg;
	st->flush_scheduled = false;
	if (st->lazy) { /* this flush takes the lazy rows too */
		cr_handle_cancel(st->lazy);
		st->lazy = cr_handle_unref(st->lazy);
	}
	if ((st->err_code && st->retry) || st->inflight)
		return; /* the retry timer, or the commit in flight, flushes again */
	if (!st->npend && !st->err_code) {
		set_idle_if_done(st);
		return;
	}
	batch *b = take_pending(st, true);
	if (!b) {
		schedule_flush(st); /* try again on the next turn */
		return;
	}
	st->inflight = b;
	if (st->be->on_loop) {
		cr_task *t;
		if (cr_loop_spawn(st->loop, commit_task, st, NULL, &t) < 0) {
			b->rc = -ENOMEM;
			snprintf(b->err, sizeof(b->err), "out of memory");
			after_inline_commit(st, b);
			return;
		}
		if (cr_task_add_done_callback(t, commit_task_done, st) < 0) {
			cr_task_cancel(t, NULL);
			cr_task_unref(t);
			return; /* cannot be told: the batch stays in flight */
		}
		st->commit_task = t;
		return;
	}
	b->rc = st->be->commit(st->bs, b->rows, b->n, b->hi_seq, b->err, sizeof(b->err));
	after_inline_commit(st, b);
}

/* An inline or on_loop commit is done: its rows are told, what came
 * meanwhile goes next. */
static void after_inline_commit(crd_store *st, batch *b)
{
	st->inflight = NULL;
	finish_batch(st, b);
	if (st->npend) {
		/* at once when a row has a waiter (a submission), else lazily */
		bool waited = false;
		for (size_t i = 0; i < st->npend && !waited; i++)
			waited = st->pend[i]->waiters != NULL;
		if (waited)
			schedule_flush(st);
		else
			schedule_lazy(st);
	}
	set_idle_if_done(st);
}

static void schedule_flush(crd_store *st)
{
	if (st->closing || st->flush_scheduled || (st->err_code && st->retry))
		return;
	if (cr_call_soon(st->loop, flush, st, NULL) == 0)
		st->flush_scheduled = true;
}

/* Commit what is pending: now when someone waits (`waited`), else when the
 * writer is free; young soft rows too with `all`. */
static void kick(crd_store *st, bool waited, bool all)
{
	if (!st->be->threaded) {
		if (waited)
			schedule_flush(st);
		else
			schedule_lazy(st);
		return;
	}
	pthread_mutex_lock(&st->mu);
	st->want = true;
	st->all = st->all || all;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
}

static void kick_cb(void *arg)
{
	crd_store *st = arg;
	st->kick_scheduled = false;
	kick(st, true, false);
}

/* A row with a waiter: the writer is told once this turn of the loop is
 * over, so the puts of one turn (a burst of submissions read in one run of
 * the HTTP server) go to the writer together. */
static void schedule_kick(crd_store *st)
{
	if (!st->be->threaded) {
		schedule_flush(st);
		return;
	}
	if (st->kick_scheduled || st->closing)
		return;
	if (cr_call_soon(st->loop, kick_cb, st, NULL) == 0)
		st->kick_scheduled = true;
	else
		kick(st, true, false);
}

static void lazy_cb(void *arg)
{
	crd_store *st = arg;
	st->lazy = cr_handle_unref(st->lazy);
	if (st->be->threaded)
		kick(st, true, true);
	else
		schedule_flush(st);
}

static void schedule_lazy(crd_store *st)
{
	if (st->closing || st->flush_scheduled || st->lazy || (st->err_code && st->retry))
		return; /* a commit will come anyway (or close writes it) */
	if (cr_call_later(st->loop, LAZY_DELAY, lazy_cb, st, &st->lazy) < 0) {
		st->lazy = NULL;
		kick(st, true, true);
	}
}

/* After a failed commit: try again (with nothing pending: a probe that
 * the store can commit again). */
static void retry_now(crd_store *st)
{
	if (!st->be->threaded) {
		schedule_flush(st);
		return;
	}
	pthread_mutex_lock(&st->mu);
	st->paused = false;
	st->probe = true;
	st->want = true;
	st->all = true;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
}

static void retry_cb(void *arg)
{
	crd_store *st = arg;
	cr_handle_unref(st->retry);
	st->retry = NULL;
	retry_now(st);
}

/* Count v in a histogram's cumulative buckets. */
static void observe(uint64_t *le, const double *bounds, size_t n, double v)
{
	for (size_t i = 0; i < n; i++)
		if (v <= bounds[i])
			le[i]++;
}

/* A batch came back from the writer (loop thread, or close). */
static void finish_batch(crd_store *st, batch *b)
{
	observe(st->stats.lat_le, crd_store_lat_bounds, CRD_STORE_LAT_N, b->seconds);
	st->stats.lat_sum += b->seconds;
	if (b->rc == 0) {
		st->stats.commits++;
		st->stats.rows_committed += b->n;
		observe(st->stats.rows_le, crd_store_rows_bounds, CRD_STORE_ROWS_N, (double)b->n);
		st->err_code = 0;
		st->err[0] = '\0';
		for (size_t i = 0; i < b->n; i++) {
			tell_waiters(b->rows[i], 0);
			crd_store_row_free(b->rows[i]);
		}
	} else {
		st->stats.commit_failures++;
		st->err_code = b->rc;
		snprintf(st->err, sizeof(st->err), "%s", b->err[0] ? b->err : "commit failed");
		for (size_t i = 0; i < b->n; i++) {
			tell_waiters(b->rows[i], b->rc);
			/* keep it for the next commit, unless a newer one waits */
			pthread_mutex_lock(&st->mu);
			int rc = pend_add(st, b->rows[i], true);
			pthread_mutex_unlock(&st->mu);
			if (rc < 0) /* out of memory: lost (the error is reported) */
				crd_store_row_free(b->rows[i]);
		}
		if (!st->retry && !st->closing)
			cr_call_later(st->loop, RETRY_DELAY, retry_cb, st, &st->retry);
	}
	free(b->rows);
	free(b);
}

/* The batches the writer finished, collected on the loop thread. */
static batch *take_completed(crd_store *st)
{
	pthread_mutex_lock(&st->mu);
	batch *b = st->completed;
	st->completed = NULL;
	st->completed_tail = &st->completed;
	st->complete_sent = false;
	pthread_mutex_unlock(&st->mu);
	return b;
}

static void on_complete(void *arg)
{
	crd_store *st = arg;
	for (batch *b = take_completed(st), *next; b; b = next) {
		next = b->next;
		finish_batch(st, b);
	}
	set_idle_if_done(st);
}

/* ------------------------------------------------------- open, close */

static const crd_store_backend *const backends[] = {&crd_store_sqlite, &crd_store_memory,
						    &crd_store_postgresql, &crd_store_postgres};

int crd_store_open(const char *url, const crd_store_opts *o, crd_store **ret, char *err,
		   size_t errlen)
{
	const crd_store_backend *be = NULL;
	const char *where = NULL;
	int rc;

	for (size_t i = 0; i < sizeof(backends) / sizeof(*backends); i++) {
		size_t n = strlen(backends[i]->scheme);
		if (!strncmp(url, backends[i]->scheme, n) && url[n] == ':') {
			be = backends[i];
			where = url + n + 1;
		}
	}
	if (!be) {
		snprintf(err, errlen,
			 "store '%s': unknown kind; use sqlite:PATH (a file), "
			 "postgresql://USER@HOST/DB (shared by several nodes) or memory: "
			 "(nothing kept)",
			 url);
		return -EINVAL;
	}
	if (be->whole_url)
		where = url;
	if (be->durable && !*where) {
		snprintf(err, errlen, "store '%s': no path after '%s:'", url, be->scheme);
		return -EINVAL;
	}
	crd_store *st = calloc(1, sizeof(*st));
	if (!st || !(st->url = strdup(url))) {
		free(st);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* a reference: rows put while the runner closes (a job abandoned at
	 * shutdown logs as its task ends) and after (the last flush) find a
	 * closed loop that refuses calls (-ESHUTDOWN), not a freed one */
	st->loop = cr_loop_ref(o->loop);
	st->completed_tail = &st->completed;
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	if ((rc = be->open(where, o, &st->bs, err, errlen)) < 0) {
		pthread_mutex_destroy(&st->mu);
		pthread_cond_destroy(&st->cv);
		cr_loop_unref(st->loop);
		free(st->url);
		free(st);
		return rc;
	}
	st->be = be;
	st->describe = strdup(be->describe(st->bs));
	rc = st->describe ? cr_event_new(&st->idle) : -ENOMEM;
	if (rc == 0 && be->threaded)
		rc = -crd_thread_start(&st->thread, writer_main, st);
	if (rc < 0) {
		snprintf(err, errlen, "store %s: cannot start it: %s", url, strerror(-rc));
		crd_store_close(st);
		return rc;
	}
	st->thread_started = be->threaded;
	cr_event_set(st->idle);
	*ret = st;
	return 0;
}

int crd_store_drain(crd_store *st, double timeout)
{
	if (!st)
		return 0;
	/* a failing store: try once more now instead of at the timer */
	if (st->retry) {
		cr_handle_cancel(st->retry);
		cr_handle_unref(st->retry);
		st->retry = NULL;
		retry_now(st);
	} else {
		kick(st, true, true);
	}
	if (cr_event_is_set(st->idle))
		return 0;
	cr_timeout_scope sc;
	int rc = cr_timeout_enter(&sc, timeout);
	if (rc < 0)
		return rc;
	rc = cr_event_wait(st->idle);
	rc = cr_timeout_exit(&sc, rc);
	return rc;
}

void crd_store_close(crd_store *st)
{
	if (!st)
		return;
	st->closing = true; /* called after the runner closed: no more loop calls */
	if (st->thread_started) {
		/* the writer ends after the commit it is in, if any */
		pthread_mutex_lock(&st->mu);
		st->quit = true;
		pthread_cond_broadcast(&st->cv);
		pthread_mutex_unlock(&st->mu);
		pthread_join(st->thread, NULL);
		st->thread_started = false;
	}
	/* completions the loop did not run (it is closing) */
	for (batch *b = take_completed(st), *next; b; b = next) {
		next = b->next;
		finish_batch(st, b);
	}
	/* an on_loop commit the closing runner cancelled: its rows may or may
	 * not have been written; write them again (puts are idempotent) */
	if (st->inflight && st->be->on_loop) {
		batch *b = st->inflight;
		st->inflight = NULL;
		for (size_t i = 0; i < b->n; i++)
			if (pend_add(st, b->rows[i], true) < 0)
				crd_store_row_free(b->rows[i]);
		free(b->rows);
		free(b);
		st->err_code = 0;
	}
	/* what is still pending is written now, on this thread */
	if (st->be && st->npend && !st->err_code) {
		char err[256];
		if (st->be->commit(st->bs, st->pend, st->npend, st->hi_seq, err, sizeof(err)) ==
		    0) {
			for (size_t i = 0; i < st->npend; i++)
				tell_waiters(st->pend[i], 0);
		} else {
			st->err_code = -EIO;
			snprintf(st->err, sizeof(st->err), "%s", err);
		}
	}
	for (size_t i = 0; i < st->npend; i++) {
		tell_waiters(st->pend[i], st->err_code ? st->err_code : -ESHUTDOWN);
		crd_store_row_free(st->pend[i]);
	}
	if (st->retry) {
		cr_handle_cancel(st->retry);
		cr_handle_unref(st->retry);
	}
	if (st->lazy) {
		cr_handle_cancel(st->lazy);
		cr_handle_unref(st->lazy);
	}
	if (st->be)
		st->be->close(st->bs);
	pthread_mutex_destroy(&st->mu);
	pthread_cond_destroy(&st->cv);
	cr_event_free(st->idle);
	cr_loop_unref(st->loop);
	free(st->pend);
	free(st->hkeys);
	free(st->hvals);
	free(st->describe);
	free(st->url);
	free(st);
}

/* ------------------------------------------------------------ queries */

bool crd_store_durable(const crd_store *st) { return st && st->be->durable; }
const char *crd_store_url(const crd_store *st) { return st->url; }
const char *crd_store_describe(const crd_store *st) { return st->describe; }

const char *crd_store_id_prefix(const crd_store *st) { return st->be->id_prefix(st->bs); }

uint64_t crd_store_max_seq(const crd_store *st) { return st->be->max_seq(st->bs); }

int crd_store_load(crd_store *st, int (*fn)(const crd_store_job *row, void *arg), void *arg)
{
	return st->be->load(st->bs, fn, arg);
}

const char *crd_store_error(const crd_store *st, int *ret_code)
{
	if (ret_code)
		*ret_code = st->err_code;
	if (st->err_code)
		return st->err;
	/* shared: a node that cannot reach the database commits nothing, even
	 * with nothing to commit now */
	if (st->be->shared && st->be->shared->health)
		return st->be->shared->health(st->bs, ret_code);
	return NULL;
}

void crd_store_get_stats(const crd_store *st, crd_store_stats *ret)
{
	*ret = st->stats;
	pthread_mutex_lock((pthread_mutex_t *)&st->mu);
	ret->pending = st->npend + (st->inflight ? st->inflight->n : 0);
	pthread_mutex_unlock((pthread_mutex_t *)&st->mu);
}

/* ------------------------------------------------------- shared mode */

bool crd_store_shared(const crd_store *st) { return st && st->be->shared; }

const char *crd_store_node_id(const crd_store *st)
{
	return crd_store_shared(st) ? st->be->shared->node_id(st->bs) : NULL;
}

int crd_store_join(crd_store *st, const crd_store_node_hooks *h, void *arg)
{
	return crd_store_shared(st) ? st->be->shared->join(st->bs, h, arg) : 0;
}

void crd_store_leave(crd_store *st)
{
	if (crd_store_shared(st))
		st->be->shared->leave(st->bs);
}

void crd_store_wake(crd_store *st)
{
	if (crd_store_shared(st))
		st->be->shared->wake(st->bs);
}

int crd_store_seq_block(crd_store *st, uint64_t *ret_lo, uint64_t *ret_hi)
{
	if (!crd_store_shared(st))
		return -EOPNOTSUPP;
	return st->be->shared->seq_block(st->bs, ret_lo, ret_hi);
}

int crd_store_fetch(crd_store *st, const char *id, crd_store_rows_fn done, void *arg)
{
	if (!crd_store_shared(st))
		return -EOPNOTSUPP;
	return st->be->shared->fetch(st->bs, id, done, arg);
}

int crd_store_list(crd_store *st, unsigned state_mask, const char *plugin, uint64_t before,
		   size_t limit, crd_store_rows_fn done, void *arg)
{
	if (!crd_store_shared(st))
		return -EOPNOTSUPP;
	return st->be->shared->list(st->bs, state_mask, plugin, before, limit, done, arg);
}

int crd_store_cancel(crd_store *st, uint64_t seq, crd_store_rows_fn done, void *arg)
{
	if (!crd_store_shared(st))
		return -EOPNOTSUPP;
	return st->be->shared->cancel(st->bs, seq, done, arg);
}

const char *crd_store_nodes_json(const crd_store *st)
{
	return crd_store_shared(st) ? st->be->shared->nodes_json(st->bs) : "[]";
}
