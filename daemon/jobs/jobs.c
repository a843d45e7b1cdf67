/*
 * jobs.c — the job store; see jobs.h.
 *
 * Data structures, all intrusive (no allocation beyond the record):
 *  - a hash of records by sequence number (ids are prefix + base32(seq),
 *    so sequential numbers spread perfectly over a power-of-two table);
 *  - a doubly linked list in creation order (listing, cursors);
 *  - one more list link used by the FIFO queue while queued and by the
 *    ended list (finish order, for retention) once ended.
 *
 * Records come from slabs whose pages are populated ahead of use, 64 KiB
 * at a time (MADV_POPULATE_WRITE; Linux < 5.14: the whole slab at mmap):
 * a daemon that keeps every ended job grows by one record per request, and
 * a page first touched through a fault costs several microseconds on a
 * virtual machine, a populated one a fraction of that; small steps keep
 * each pause a tenth of a whole slab's (the commit that made them has the
 * measurements).  Freed
 * records go to a free list (slabs are kept: the retention
 * limits bound how many records live at once).  Under AddressSanitizer
 * and valgrind records are plain calloc/free, so those tools still see
 * every use after free.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

#include "common/logline.h"
#include "jobs/jobs.h"

static const char b32[] = "0123456789abcdefghjkmnpqrstvwxyz"; /* Crockford */

const double crd_hist_bounds[CRD_HIST_N] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
					    0.1,    0.25,  0.5,    1,     2.5,  10,    60};

void crd_hist_observe(crd_hist *h, double s)
{
	if (!(s >= 0))
		s = 0;
	for (int i = CRD_HIST_N - 1; i >= 0 && s <= crd_hist_bounds[i]; i--)
		h->le[i]++;
	h->count++;
	h->sum += s;
}

static void observe_run(crd_jobs *s, const crd_jobrec *j)
{
	crd_run_hist *r;
	if (j->started_at <= 0 || j->finished_at < j->started_at)
		return; /* never ran (cancelled while queued) */
	for (r = s->run_hists; r; r = r->next)
		if (r->spec == j->spec && r->plugin == j->plugin && r->state == j->state)
			break;
	if (!r) {
		if (!(r = calloc(1, sizeof(*r))))
			return; /* out of memory: one observation less */
		r->plugin = j->plugin;
		r->spec = j->spec;
		r->state = j->state;
		r->next = s->run_hists;
		s->run_hists = r;
	}
	crd_hist_observe(&r->h, j->finished_at - j->started_at);
}

static const char *const state_names[CRUND_JOB_NSTATES] = {
	"queued", "running", "succeeded", "failed", "cancelled",
};

const char *crd_job_state_name(int state)
{
	return state >= 0 && state < CRUND_JOB_NSTATES ? state_names[state] : "unknown";
}

int crd_job_state_parse(const char *s)
{
	for (int i = 0; i < CRUND_JOB_NSTATES; i++)
		if (!strcmp(s, state_names[i]))
			return i;
	return -1;
}

double crd_now_realtime(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int b32_val(char c)
{
	const char *p = strchr(b32, c);
	return c && p ? (int)(p - b32) : -1;
}

void crd_jobs_set_prefix(crd_jobs *s, const char *prefix)
{
	size_t n = strlen(prefix);
	if (n > 13)
		n = 13;
	memcpy(s->prefix, prefix, n);
	s->prefix[n] = '\0';
	s->prefix_len = n;
}

/* ------------------------------------------------------------- records */

#define SLAB_BYTES ((size_t)2 * 1024 * 1024)
#define POP_CHUNK  ((size_t)64 * 1024)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
#define REC_SIZE ((sizeof(crd_jobrec) + 15) & ~(size_t)15)

#define SLAB_HEAD ((sizeof(struct crd_rec_slab) + 63) & ~(size_t)63)

static bool plain_records(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	return true;
#endif
#endif
#ifdef HAVE_VALGRIND_VALGRIND_H
	if (RUNNING_ON_VALGRIND)
		return true;
#endif
	return false;
}

static crd_jobrec *rec_alloc(crd_jobs *s)
{
	crd_jobrec *j = s->rec_free;
	if (s->rec_plain)
		return calloc(1, sizeof(*j));
	if (j) {
		s->rec_free = j->hnext;
	} else {
		if (s->slab_left < REC_SIZE) {
			int flags = MAP_PRIVATE | MAP_ANONYMOUS | (s->pop_whole ? MAP_POPULATE : 0);
			struct crd_rec_slab *sl = mmap(NULL, SLAB_BYTES, PROT_READ | PROT_WRITE,
						       flags, -1, 0);
			if (sl == MAP_FAILED)
				return NULL;
			sl->next = s->slabs;
			s->slabs = sl;
			s->slab_pos = (char *)sl + SLAB_HEAD;
			s->slab_left = SLAB_BYTES - SLAB_HEAD;
			s->slab_pop = (char *)sl;
		}
		if (s->slab_pos + REC_SIZE > s->slab_pop && !s->pop_whole) {
			if (madvise(s->slab_pop, POP_CHUNK, MADV_POPULATE_WRITE) < 0 &&
			    errno == EINVAL)
				s->pop_whole =
					true; /* older kernel: MAP_POPULATE from the next slab */
			s->slab_pop += POP_CHUNK;
		}
		j = (crd_jobrec *)s->slab_pos;
		s->slab_pos += REC_SIZE;
		s->slab_left -= REC_SIZE;
	}
	memset(j, 0, sizeof(*j));
	return j;
}

static void rec_free(crd_jobs *s, crd_jobrec *j)
{
	if (s->rec_plain) {
		free(j);
		return;
	}
	j->hnext = s->rec_free;
	s->rec_free = j;
}

int crd_jobs_init(crd_jobs *s, const crd_jobs_limits *lim, const crd_jobs_ops *ops, void *ops_data,
		  double (*now)(void))
{
	uint64_t r = 0;
	memset(s, 0, sizeof(*s));
	s->lim = *lim;
	s->ops = *ops;
	s->ops_data = ops_data;
	s->now = now ? now : crd_now_realtime;
	s->rec_plain = plain_records();
	s->next_seq = 1;
	s->hsize = 1024;
	s->htab = calloc(s->hsize, sizeof(*s->htab));
	s->idem = json_object();
	if (!s->htab || !s->idem) {
		free(s->htab);
		json_decref(s->idem);
		return -ENOMEM;
	}
	/* 64 random bits make ids unique across restarts; fall back to time
	 * and pid mixed when getrandom is unavailable (old kernels). */
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		r = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16);
		r *= UINT64_C(0x9e3779b97f4a7c15);
	}
	/* 13 base32 digits = 65 bits; the first digit carries 4 bits. */
	char p[14];
	for (int i = 12; i >= 0; i--) {
		p[i] = b32[r & 31];
		r >>= 5;
	}
	p[13] = '\0';
	crd_jobs_set_prefix(s, p);
	return 0;
}

/* The args text of a job without arguments: shared, never freed. */
static char empty_args[] = "{}";

static void job_free(crd_jobs *s, crd_jobrec *j)
{
	json_decref(j->args);
	if (j->args_json != empty_args)
		free(j->args_json);
	free(j->result);
	free(j->err_code);
	free(j->err_msg);
	free(j->progress_msg);
	free(j->log);
	free(j->idem_key);
	free(j->retry_of);
	free(j->attempts);
	if (j->flags & CRUND_JF_NODE_OWNED)
		free((char *)j->node);
	rec_free(s, j);
}

/* A plugin (or one of its jobs) that recorded jobs name but that is not
 * loaded now: ended jobs keep their names through it. */
struct crd_ghost {
	struct crd_ghost *next;
	crund_plugin desc;
	crd_loaded_plugin lp;
	crund_job_spec spec;
	char names[];
};

void crd_jobs_free(crd_jobs *s)
{
	crd_jobrec *j = s->oldest;
	while (j) {
		crd_jobrec *n = j->newer;
		/* detach subscribers (their owners are gone by now) */
		j->subs = NULL;
		job_free(s, j);
		j = n;
	}
	while (s->slabs) {
		struct crd_rec_slab *sl = s->slabs;
		s->slabs = sl->next;
		munmap(sl, SLAB_BYTES);
	}
	free(s->htab);
	free(s->old_htab);
	free(s->dups);
	json_decref(s->idem);
	while (s->ghosts) {
		struct crd_ghost *g = s->ghosts;
		s->ghosts = g->next;
		free(g);
	}
	while (s->run_hists) {
		crd_run_hist *r = s->run_hists;
		s->run_hists = r->next;
		free(r);
	}
	crd_jobs_events_free(s);
	memset(s, 0, sizeof(*s));
}

/* ----------------------------------------------------------- hash / ids */

/*
 * The table doubles when it holds as many records as buckets, and the
 * records move to the new table a few buckets per submission instead of
 * all at once: moving a million records at once stops the loop for tens
 * of milliseconds (each one a cache miss), which every request in flight
 * would wait for.  While
 * a move is on, a record is in the old table (a bucket not moved yet) or
 * in the new one.  REHASH_STEP buckets per submission finish the move
 * long before the next doubling (that needs hsize/2 more records).
 */
#define REHASH_STEP 4

static void rehash_step(crd_jobs *s, size_t buckets)
{
	while (s->old_htab && buckets--) {
		crd_jobrec *j = s->old_htab[s->old_pos];
		s->old_htab[s->old_pos] = NULL;
		while (j) {
			crd_jobrec *n = j->hnext;
			size_t h = j->seq & (s->hsize - 1);
			j->hnext = s->htab[h];
			s->htab[h] = j;
			j = n;
		}
		if (++s->old_pos == s->old_hsize) {
			free(s->old_htab);
			s->old_htab = NULL;
			s->old_hsize = s->old_pos = 0;
		}
	}
}

static int hash_grow(crd_jobs *s)
{
	size_t nsize = s->hsize * 2;
	crd_jobrec **nt = calloc(nsize, sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	rehash_step(s, SIZE_MAX); /* a move still on (deletions only slow it) */
	s->old_htab = s->htab;
	s->old_hsize = s->hsize;
	s->old_pos = 0;
	s->htab = nt;
	s->hsize = nsize;
	return 0;
}

static bool chain_remove(crd_jobrec **pp, crd_jobrec *j)
{
	while (*pp && *pp != j)
		pp = &(*pp)->hnext;
	if (!*pp)
		return false;
	*pp = j->hnext;
	return true;
}

static void hash_remove(crd_jobs *s, crd_jobrec *j)
{
	if (!chain_remove(&s->htab[j->seq & (s->hsize - 1)], j) && s->old_htab)
		chain_remove(&s->old_htab[j->seq & (s->old_hsize - 1)], j);
}

crd_jobrec *crd_jobs_find_seq(crd_jobs *s, uint64_t seq)
{
	crd_jobrec *j = s->htab[seq & (s->hsize - 1)];
	while (j && j->seq != seq)
		j = j->hnext;
	if (!j && s->old_htab) {
		j = s->old_htab[seq & (s->old_hsize - 1)];
		while (j && j->seq != seq)
			j = j->hnext;
	}
	return j;
}

int crd_jobs_parse_id(const crd_jobs *s, const char *id, uint64_t *ret_seq)
{
	size_t n = strlen(id);
	if (n <= s->prefix_len || n > s->prefix_len + 12 || memcmp(id, s->prefix, s->prefix_len))
		return -EINVAL;
	uint64_t seq = 0;
	const char *p = id + s->prefix_len;
	if (*p == '0')
		return -EINVAL; /* canonical form only */
	for (; *p; p++) {
		int v = b32_val(*p);
		if (v < 0)
			return -EINVAL;
		seq = seq * 32 + (uint64_t)v;
	}
	*ret_seq = seq;
	return 0;
}

crd_jobrec *crd_jobs_find(crd_jobs *s, const char *id)
{
	uint64_t seq;
	if (crd_jobs_parse_id(s, id, &seq) < 0)
		return NULL;
	crd_jobrec *j = crd_jobs_find_seq(s, seq);
	return j && !(j->flags & CRUND_JF_UNCOMMITTED) ? j : NULL;
}

static void make_id(const crd_jobs *s, uint64_t seq, char *out)
{
	char tmp[16];
	int n = 0;
	do {
		tmp[n++] = b32[seq & 31];
		seq >>= 5;
	} while (seq);
	memcpy(out, s->prefix, s->prefix_len);
	size_t k = s->prefix_len;
	while (n)
		out[k++] = tmp[--n];
	out[k] = '\0';
}

/* A new record into the id hash and, as the newest, the creation list;
 * counted by its state. */
static void link_new(crd_jobs *s, crd_jobrec *j)
{
	size_t h = j->seq & (s->hsize - 1);
	j->hnext = s->htab[h];
	s->htab[h] = j;
	j->older = s->newest;
	if (s->newest)
		s->newest->newer = j;
	else
		s->oldest = j;
	s->newest = j;
	s->count++;
	s->n_state[j->state]++;
}

/* ------------------------------------------------------------- store */

void crd_jobs_set_store(crd_jobs *s, crd_store *st)
{
	s->st = crd_store_durable(st) ? st : NULL;
	if (s->st) {
		const char *p = crd_store_id_prefix(st);
		if (p && *p)
			crd_jobs_set_prefix(s, p);
		if (crd_store_max_seq(st) >= s->next_seq)
			s->next_seq = crd_store_max_seq(st) + 1;
		s->shared = crd_store_shared(st);
		s->node_id = crd_store_node_id(st);
		s->seq_end = s->shared ? s->next_seq
				       : 0; /* a block is taken at the first submission */
	}
}

/* Hand the record's durable fields to the store (a row; the store copies
 * it).  A put that cannot even be queued (out of memory) is counted; the
 * record's next transition writes it again. */
/* Hand the record's state to the store.  0, or -ENOMEM: nothing was
 * queued and done will not run (counted in n_store_errors). */
static int persist_row(crd_jobs *s, crd_jobrec *j, crd_store_done_fn done, void *arg, bool soft)
{
	if (!s->st)
		return 0;
	crd_store_job row = {
		.seq = j->seq,
		.id = j->id,
		.plugin = j->plugin->desc->name,
		.job = j->spec->name,
		.args = j->args_json,
		.state = j->state,
		.attempt = j->attempt,
		.max_attempts = j->max_attempts,
		.on_interrupt = j->on_interrupt,
		.isolated = (j->flags & CRUND_JF_ISOLATED) != 0,
		.timeout = j->timeout,
		.run_at = j->run_at,
		.idem_key = j->idem_key,
		.result = j->state == CRUND_JOB_SUCCEEDED ? j->result : NULL,
		.err_code = j->err_code,
		.err_msg = j->err_msg,
		.progress = (j->flags & CRUND_JF_PROGRESS) ? j->progress : -1,
		.progress_msg = j->progress_msg,
		.created_at = j->created_at,
		.started_at = j->started_at,
		.finished_at = j->finished_at,
		.attempts = j->attempts,
		.log = j->log,
		.log_len = j->log_len,
		.log_truncated = (j->flags & CRUND_JF_LOG_TRUNC) != 0,
		.retry_of = j->retry_of,
		.node = s->shared ? j->node : NULL,
		.cancel_requested = j->state == CRUND_JOB_RUNNING &&
				    (j->flags & CRUND_JF_CANCEL_REQ) && j->cancel_code &&
				    strcmp(j->cancel_code, "shutdown") != 0,
	};
	if (j->flags & CRUND_JF_REMOTE)
		return 0; /* held elsewhere: that node writes it */
	if ((j->flags & CRUND_JF_CLAIMED) && j->state == CRUND_JOB_QUEUED) {
		/* shared store, a slot free: the row claims the job for this node
		 * (it starts once committed, without another write) */
		row.state = CRUND_JOB_RUNNING;
		row.attempt = j->attempt + 1u;
		row.started_at = s->now();
		row.node = s->node_id;
	}
	/* CRUND_JF_DIRTY stays: it says the record is on the dirty list, which
	 * only crd_jobs_flush_dirty and dirty_remove take it off (a record
	 * freed while still listed would be read after free). */
	int rc = soft ? crd_store_put_soft(s->st, &row) : crd_store_put(s->st, &row, done, arg);
	if (rc < 0)
		s->n_store_errors++;
	return rc;
}

static int persist(crd_jobs *s, crd_jobrec *j, crd_store_done_fn done, void *arg)
{
	return persist_row(s, j, done, arg, false);
}

static void mark_dirty(crd_jobrec *j)
{
	crd_jobs *s = j->store;
	if (!s->st || (j->flags & CRUND_JF_DIRTY))
		return;
	j->flags |= CRUND_JF_DIRTY;
	j->dnext = s->dirty;
	s->dirty = j;
}

void crd_jobs_flush_dirty(crd_jobs *s)
{
	crd_jobrec *j = s->dirty;
	s->dirty = NULL;
	while (j) {
		crd_jobrec *n = j->dnext;
		j->dnext = NULL;
		j->flags &= (uint16_t)~CRUND_JF_DIRTY;
		persist(s, j, NULL, NULL);
		j = n;
	}
}

static void dirty_remove(crd_jobs *s, crd_jobrec *j)
{
	for (crd_jobrec **pp = &s->dirty; *pp; pp = &(*pp)->dnext)
		if (*pp == j) {
			*pp = j->dnext;
			break;
		}
	j->dnext = NULL;
	j->flags &= (uint16_t)~CRUND_JF_DIRTY;
}

/* ------------------------------------------------------------- lists */

/* The job ended: each subscriber gets END once.  The whole list is
 * detached first, so each may free itself. */
static void end_subs(crd_jobrec *j)
{
	crd_sub *sub = j->subs;
	j->subs = NULL;
	while (sub) {
		crd_sub *n = sub->next;
		sub->next = sub->prev = NULL;
		sub->job = NULL;
		sub->on_event(sub, j, CRUND_EV_END, NULL, 0);
		sub = n;
	}
}

void crd_jobs_release_subscribers(crd_jobs *s)
{
	for (crd_jobrec *j = s->newest; j; j = j->older)
		if (j->subs && !crd_job_state_ended(j->state))
			end_subs(j);
}

/* The job's end may be told: to the event feed and its subscribers. */
static void settle(crd_jobs *s, crd_jobrec *j)
{
	j->flags &= (uint16_t)~CRUND_JF_END_UNSYNCED;
	if (s->last_unsynced == j)
		s->last_unsynced = NULL;
	crd_jobs_announce(s, j);
	end_subs(j);
}

static void q_push(crd_jobrec **head, crd_jobrec **tail, crd_jobrec *j);
static void enqueue(crd_jobs *s, crd_jobrec *j);
static void start_queued(crd_jobs *s);
static void arm_wake(crd_jobs *s);
static void retain_count(crd_jobs *s);
static void set_state(crd_jobs *s, crd_jobrec *j, int st);
static void requeue(crd_jobs *s, crd_jobrec *j, double run_at);
static double backoff(const crd_jobs *s, unsigned attempt, double at_least);
static void record_attempt(crd_jobrec *j, double finished, const char *code, const char *msg);
static int set_error(crd_jobrec *j, const char *code, const char *message);

static const crund_job_spec *ghost_spec(crd_jobs *s, const char *plugin, const char *job,
					const crd_loaded_plugin **ret_plugin)
{
	for (struct crd_ghost *g = s->ghosts; g; g = g->next)
		if (!strcmp(g->desc.name, plugin) && !strcmp(g->spec.name, job)) {
			*ret_plugin = &g->lp;
			return &g->spec;
		}
	size_t pl = strlen(plugin) + 1, jl = strlen(job) + 1;
	struct crd_ghost *g = calloc(1, sizeof(*g) + pl + jl);
	if (!g)
		return NULL;
	memcpy(g->names, plugin, pl);
	memcpy(g->names + pl, job, jl);
	g->desc.name = g->names;
	g->spec.name = g->names + pl;
	g->lp.desc = &g->desc;
	g->next = s->ghosts;
	s->ghosts = g;
	*ret_plugin = &g->lp;
	return &g->spec;
}

static char *dup_or_null(const char *t) { return t ? strdup(t) : NULL; }

struct load_ctx {
	crd_jobs *s;
	crd_jobs_resolve_fn resolve;
	void *arg;
};

/* One stored job back into a record. */
/* A record (not linked anywhere) from a stored row: *ret_rc 0 and NULL
 * for a row this crund did not write (skip it), -ENOMEM.  *ret_missing:
 * its plugin job is not loaded (a ghost stands in). */
static crd_jobrec *rec_of_row(crd_jobs *s, const crd_store_job *row, crd_jobs_resolve_fn resolve,
			      void *arg, bool *ret_missing, int *ret_rc)
{
	const crd_loaded_plugin *p = NULL;
	const crund_job_spec *spec = resolve ? resolve(arg, row->plugin, row->job, &p) : NULL;
	bool missing = !spec;
	*ret_rc = -ENOMEM;
	*ret_missing = missing;
	if (missing && !(spec = ghost_spec(s, row->plugin, row->job, &p)))
		return NULL;
	*ret_rc = 0;
	if (!row->id || !row->args || row->state < 0 || row->state >= CRUND_JOB_NSTATES ||
	    strlen(row->id) >= CRUND_JOB_ID_MAX)
		return NULL; /* not a row this crund wrote: skip it */
	*ret_rc = -ENOMEM;
	crd_jobrec *j = rec_alloc(s);
	if (!j)
		return NULL;
	j->store = s;
	j->seq = row->seq;
	memcpy(j->id, row->id, strlen(row->id) + 1);
	j->plugin = p;
	j->spec = spec;
	j->args_json = strdup(row->args);
	j->args_len = j->args_json ? (uint32_t)strlen(j->args_json) : 0;
	j->idem_key = dup_or_null(row->idem_key);
	j->result = dup_or_null(row->result);
	j->result_len = j->result ? (uint32_t)strlen(j->result) : 0;
	j->err_code = dup_or_null(row->err_code);
	j->err_msg = dup_or_null(row->err_msg);
	j->progress_msg = dup_or_null(row->progress_msg);
	j->attempts = dup_or_null(row->attempts);
	j->retry_of = dup_or_null(row->retry_of);
	if (row->log_len) {
		size_t n = row->log_len < s->lim.max_log_bytes ? row->log_len
							       : s->lim.max_log_bytes;
		if ((j->log = malloc(n + 1))) {
			memcpy(j->log, row->log, n);
			j->log_len = j->log_cap = (uint32_t)n;
		}
	}
	bool oom = !j->args_json || (row->idem_key && !j->idem_key) ||
		   (row->result && !j->result) || (row->err_code && !j->err_code) ||
		   (row->attempts && !j->attempts) || (row->retry_of && !j->retry_of);
	if (oom) {
		job_free(s, j);
		return NULL;
	}
	/* queued and running jobs will run: they need their args as a tree;
	 * ended ones are answered with the text, which must be JSON */
	json_error_t jerr;
	j->args = json_loads(j->args_json, 0, &jerr);
	if (!j->args) {
		job_free(s, j);
		if (json_error_code(&jerr) == json_error_out_of_memory)
			return NULL;
		*ret_rc = 0;
		return NULL; /* damaged: skip it */
	}
	if (crd_job_state_ended(row->state)) {
		json_decref(j->args);
		j->args = NULL;
	}
	j->timeout = row->timeout;
	j->progress = row->progress;
	if (row->progress >= 0)
		j->flags |= CRUND_JF_PROGRESS;
	if (row->isolated)
		j->flags |= CRUND_JF_ISOLATED;
	if (row->log_truncated)
		j->flags |= CRUND_JF_LOG_TRUNC;
	j->created_at = row->created_at;
	j->started_at = row->started_at;
	j->finished_at = row->finished_at;
	j->attempt = (uint16_t)row->attempt;
	j->max_attempts = (uint16_t)(row->max_attempts ? row->max_attempts : 1);
	j->on_interrupt = row->on_interrupt == CRD_ON_INTERRUPT_RETRY ? CRD_ON_INTERRUPT_RETRY
								      : CRD_ON_INTERRUPT_FAIL;
	j->run_at = row->run_at;
	j->state = (uint8_t)row->state;
	if (row->node && s->shared) {
		if ((j->node = strdup(row->node)))
			j->flags |= CRUND_JF_NODE_OWNED;
	}
	*ret_rc = 0;
	return j;
}

static int load_row(const crd_store_job *row, void *arg)
{
	struct load_ctx *c = arg;
	crd_jobs *s = c->s;
	bool missing;
	int rc;
	if (s->count >= s->hsize && hash_grow(s) < 0)
		return -ENOMEM;
	rehash_step(s, REHASH_STEP);
	crd_jobrec *j = rec_of_row(s, row, c->resolve, c->arg, &missing, &rc);
	if (!j) {
		if (rc == 0)
			s->n_load_skipped++;
		return rc;
	}
	if (j->idem_key &&
	    json_object_set_new(s->idem, j->idem_key, json_integer((json_int_t)j->seq)) < 0) {
		job_free(s, j);
		return -ENOMEM;
	}
	link_new(s, j);
	if (j->seq >= s->next_seq)
		s->next_seq = j->seq + 1;

	if (crd_job_state_ended(j->state)) {
		q_push(&s->e_head, &s->e_tail, j);
	} else if (missing) {
		if (j->state == CRUND_JOB_RUNNING)
			s->n_interrupted++;
		char msg[200];
		snprintf(msg, sizeof(msg), "the plugin job %s/%s is not loaded any more",
			 row->plugin, row->job);
		if (j->state == CRUND_JOB_QUEUED)
			enqueue(s, j); /* so finish finds it where queued jobs are */
		crd_jobs_finish(s, j, CRUND_JOB_FAILED, "plugin_missing", msg);
	} else if (j->state == CRUND_JOB_QUEUED) {
		enqueue(s, j);
	} else if (row->cancel_requested) {
		/* running, and somebody had asked to cancel it: never again */
		s->n_interrupted++;
		crd_jobs_finish(
			s, j, CRUND_JOB_CANCELLED, "cancelled",
			"cancelled by request; crund stopped before the job's cleanup ended");
	} else {
		/* running when its crund died */
		char msg[160];
		s->n_interrupted++;
		snprintf(msg, sizeof(msg), "crund stopped while the job ran (attempt %u of %u)",
			 (unsigned)j->attempt, (unsigned)j->max_attempts);
		if (j->on_interrupt == CRD_ON_INTERRUPT_RETRY && j->attempt < j->max_attempts) {
			/* a failed attempt like any other: again after its backoff
			 * (a job that crashes crund would else crash it at once) */
			record_attempt(j, 0, "interrupted", msg);
			set_error(j, "interrupted", msg);
			requeue(s, j, s->now() + backoff(s, j->attempt, 0));
			s->n_retries--; /* counted as an interruption */
		} else {
			crd_jobs_finish(s, j, CRUND_JOB_FAILED, "interrupted", msg);
		}
	}
	return 0;
}

int crd_jobs_load(crd_jobs *s, crd_jobs_resolve_fn resolve, void *arg)
{
	s->resolve = resolve;
	s->resolve_arg = arg;
	if (!s->st || s->shared)
		return 0; /* shared: jobs are claimed, not loaded */
	struct load_ctx c = {s, resolve, arg};
	s->loading = true;
	int rc = crd_store_load(s->st, load_row, &c);
	if (rc < 0)
		return rc;
	/* retention now, not at the first tick: deletions are written in
	 * groups, so a crash can bring forgotten jobs back */
	retain_count(s);
	crd_jobs_expire(s);
	return 0; /* nothing runs before crd_jobs_run */
}

static int join_nodes(crd_jobs *s);

void crd_jobs_run(crd_jobs *s)
{
	s->loading = false;
	if (s->shared && join_nodes(s) < 0)
		s->n_store_errors++;
	start_queued(s);
	arm_wake(s);
}

static void q_push(crd_jobrec **head, crd_jobrec **tail, crd_jobrec *j)
{
	j->lnext = NULL;
	j->lprev = *tail;
	if (*tail)
		(*tail)->lnext = j;
	else
		*head = j;
	*tail = j;
}

static void q_unlink(crd_jobrec **head, crd_jobrec **tail, crd_jobrec *j)
{
	if (!j->lprev && *head != j)
		return; /* not in this list (a submission forgotten before its commit) */
	if (j->lprev)
		j->lprev->lnext = j->lnext;
	else
		*head = j->lnext;
	if (j->lnext)
		j->lnext->lprev = j->lprev;
	else
		*tail = j->lprev;
	j->lprev = j->lnext = NULL;
}

/* Remove a record from every structure and free it. */
static void job_forget(crd_jobs *s, crd_jobrec *j)
{
	if (j->flags & CRUND_JF_END_UNSYNCED)
		settle(s, j); /* deleted before its end's commit */
	hash_remove(s, j);
	if (j->older)
		j->older->newer = j->newer;
	else
		s->oldest = j->newer;
	if (j->newer)
		j->newer->older = j->older;
	else
		s->newest = j->older;
	bool remote = (j->flags & CRUND_JF_REMOTE) != 0;
	if (remote)
		; /* in no list */
	else if (j->state == CRUND_JOB_QUEUED && (j->flags & CRUND_JF_DELAYED))
		q_unlink(&s->d_head, &s->d_tail, j);
	else if (j->state == CRUND_JOB_QUEUED && !(j->flags & CRUND_JF_UNCOMMITTED))
		q_unlink(&s->q_head, &s->q_tail, j);
	else if (crd_job_state_ended(j->state))
		q_unlink(&s->e_head, &s->e_tail, j);
	if (j->flags & CRUND_JF_DIRTY)
		dirty_remove(s, j);
	/* shared: forgetting a record is not forgetting the job (the elected
	 * node prunes by retention), unless it is a DELETE */
	if (s->st && !(j->flags & CRUND_JF_UNCOMMITTED) && (!s->shared || s->explicit_delete)) {
		crd_store_done_fn done = s->explicit_delete ? s->del_done : NULL;
		if (crd_store_delete(s->st, j->seq, done, s->del_arg) < 0)
			s->n_store_errors++;
		else if (done)
			s->del_pending = true;
	}
	if (j->idem_key) {
		json_t *v = json_object_get(s->idem, j->idem_key);
		if (v && (uint64_t)json_integer_value(v) == j->seq)
			json_object_del(s->idem, j->idem_key);
	}
	if (remote)
		s->n_remote--;
	else
		s->n_state[j->state]--;
	s->count--;
	job_free(s, j);
}

/* Count retention: oldest ended first; a record whose task still runs
 * (forced end at shutdown) is kept until the task is gone. */
static void retain_count(crd_jobs *s)
{
	crd_jobrec *j = s->e_head;
	size_t ended = s->n_state[CRUND_JOB_SUCCEEDED] + s->n_state[CRUND_JOB_FAILED] +
		       s->n_state[CRUND_JOB_CANCELLED];
	while (j && ended > s->lim.retain_jobs) {
		crd_jobrec *n = j->lnext;
		if (!j->task && !(j->flags & CRUND_JF_END_UNSYNCED)) {
			job_forget(s, j);
			ended--;
		}
		j = n;
	}
}

static void drop_remote(crd_jobs *s);

void crd_jobs_expire(crd_jobs *s)
{
	if (s->n_remote)
		drop_remote(s);
	double limit = s->now() - s->lim.retain_seconds;
	crd_jobrec *j = s->e_head;
	while (j && j->finished_at < limit) {
		crd_jobrec *n = j->lnext;
		if (!j->task && !(j->flags & CRUND_JF_END_UNSYNCED))
			job_forget(s, j);
		j = n;
	}
}

/* ---------------------------------------------------------- state machine */

static void set_state(crd_jobs *s, crd_jobrec *j, int st)
{
	s->n_state[j->state]--;
	j->state = (uint8_t)st;
	s->n_state[st]++;
}

/* A job that may not run before its start is durable (on_interrupt fail,
 * a store of this node's own): its task writes the start and awaits the
 * commit (crd_jobs_await_durable_start). */
static bool start_awaited(const crd_jobs *s, const crd_jobrec *j)
{
	return s->st && !s->shared && j->on_interrupt == CRD_ON_INTERRUPT_FAIL;
}

static int start_job(crd_jobs *s, crd_jobrec *j)
{
	double prev_started = j->started_at;
	double due = j->run_at > j->created_at ? j->run_at : j->created_at;
	set_state(s, j, CRUND_JOB_RUNNING);
	j->started_at = s->now();
	j->run_at = 0;
	j->attempt++;
	j->retry_after = 0;
	/* a new attempt: its own outcome flags */
	j->flags &= (uint16_t) ~(CRUND_JF_TIMED_OUT | CRUND_JF_CANCEL_REQ | CRUND_JF_FAIL_SET |
				 CRUND_JF_STEPPED | CRUND_JF_RESULT_BIG);
	int rc = s->ops.start ? s->ops.start(j, s->ops_data) : 0;
	if (rc < 0) {
		set_state(s, j, CRUND_JOB_QUEUED);
		j->started_at = prev_started;
		j->attempt--;
		return rc;
	}
	if (j->attempt == 1 || due > j->created_at)
		crd_hist_observe(&s->queue_wait, j->started_at - due);
	if (s->shared) {
		if (j->flags & CRUND_JF_NODE_OWNED)
			free((char *)j->node);
		j->flags &= (uint16_t)~CRUND_JF_NODE_OWNED;
		j->node = s->node_id;
	}
	/* A claim wrote the start; a task that awaits its start writes it.
	 * Else the start is a soft row: the job's end may replace it unwritten. */
	if (j->flags & CRUND_JF_CLAIMED)
		j->flags &= (uint16_t)~CRUND_JF_CLAIMED;
	else if (!start_awaited(s, j))
		persist_row(s, j, NULL, NULL, true);
	crd_jobs_announce(s, j);
	if (j->subs)
		crd_jobs_emit(j, CRUND_EV_STATE, NULL, 0);
	return 0;
}

/* ------------------------------------------------------- delayed jobs */

/* Insert into the delayed list, ordered by run_at (from the tail: retry
 * and delay times mostly arrive in order). */
static void delay_push(crd_jobs *s, crd_jobrec *j)
{
	crd_jobrec *after = s->d_tail;
	while (after && after->run_at > j->run_at)
		after = after->lprev;
	j->flags |= CRUND_JF_DELAYED;
	j->lprev = after;
	j->lnext = after ? after->lnext : s->d_head;
	if (j->lnext)
		j->lnext->lprev = j;
	else
		s->d_tail = j;
	if (after)
		after->lnext = j;
	else
		s->d_head = j;
}

static void arm_wake(crd_jobs *s)
{
	if (!s->d_head || !s->ops.wake_at || s->draining)
		return;
	if (s->wake_armed == s->d_head->run_at)
		return;
	s->wake_armed = s->d_head->run_at;
	s->ops.wake_at(s->wake_armed, s->ops_data);
}

void crd_jobs_due(crd_jobs *s)
{
	double now = s->now();
	s->wake_armed = 0;
	while (s->d_head && s->d_head->run_at <= now) {
		crd_jobrec *j = s->d_head;
		q_unlink(&s->d_head, &s->d_tail, j);
		j->flags &= (uint16_t)~CRUND_JF_DELAYED;
		q_push(&s->q_head, &s->q_tail, j);
	}
	start_queued(s);
	arm_wake(s);
}

/* Queue a job: the delayed list when its time has not come, else FIFO. */
static void enqueue(crd_jobs *s, crd_jobrec *j)
{
	if (j->run_at > s->now()) {
		delay_push(s, j);
		arm_wake(s);
	} else {
		j->run_at = 0;
		q_push(&s->q_head, &s->q_tail, j);
	}
}

/* Fill free running slots from the queue (FIFO). */
static void start_queued(crd_jobs *s)
{
	while (s->q_head && s->n_state[CRUND_JOB_RUNNING] < s->lim.max_running && !s->draining &&
	       !s->loading) {
		crd_jobrec *j = s->q_head;
		q_unlink(&s->q_head, &s->q_tail, j);
		int rc = start_job(s, j);
		if (rc < 0) {
			/* it is no longer queued nor running: finish records it */
			crd_jobs_finish(
				s, j, CRUND_JOB_FAILED, "internal",
				"the job could not be started (out of memory or coroutine stacks)");
			return; /* finish called start_queued again */
		}
	}
}

static bool same_args(const crd_jobrec *j, const json_t *args)
{
	if (j->args)
		return json_equal(j->args, args);
	/* ended: compare with the text read back (rare: a retry after the end) */
	json_t *old = json_loadb(j->args_json, j->args_len, 0, NULL);
	bool same = old && json_equal(old, args);
	json_decref(old);
	return same;
}

static bool same_submission(const crd_jobrec *j, const crd_job_req *r)
{
	return j->plugin == r->plugin && j->spec == r->spec && same_args(j, r->args) &&
	       j->timeout == r->timeout && !!(j->flags & CRUND_JF_ISOLATED) == r->isolated &&
	       (!r->max_attempts || j->max_attempts == r->max_attempts) &&
	       (r->on_interrupt < 0 || j->on_interrupt == r->on_interrupt);
}

static int args_text(crd_jobrec *j)
{
	size_t len;
	if (json_object_size(j->args) == 0 && json_is_object(j->args)) {
		j->args_json = empty_args;
		j->args_len = 2;
		return 0;
	}
	j->args_json = crd_json_text(j->args, UINT32_MAX, &len);
	if (!j->args_json)
		return len ? -ENOMEM : -EINVAL;
	j->args_len = (uint32_t)len;
	return 0;
}

static void shared_committed(crd_jobs *s, crd_jobrec *j, bool claimed);

/* ---- a submission left out for another node's job with its key ---- */

/* Whether the job held by another node was submitted as `a` is. */
static bool same_request(const crd_jobrec *a, const crd_jobrec *b)
{
	if (a->plugin != b->plugin || a->spec != b->spec || a->timeout != b->timeout ||
	    (a->flags & CRUND_JF_ISOLATED) != (b->flags & CRUND_JF_ISOLATED) ||
	    a->max_attempts != b->max_attempts)
		return false;
	json_t *args = a->args ? a->args : json_loadb(a->args_json, a->args_len, 0, NULL);
	bool same = args && same_args(b, args);
	if (args != a->args)
		json_decref(args);
	return same;
}

/* Submission seq was left out of its commit: `held` (another node's job)
 * holds its idempotency key.  Its commit's waiters answer it with that job
 * (on_committed); the flag needs no memory, so a failed allocation here
 * only turns those answers into a 503.  Entries live until the next call:
 * the waiters of one commit are all told before the next commit. */
static void hook_duplicate(void *arg, uint64_t seq, const crd_store_job *held)
{
	crd_jobs *s = arg;
	crd_jobrec *j = crd_jobs_find_seq(s, seq), *h;
	size_t k = 0;
	for (size_t i = 0; i < s->ndups; i++) { /* those answered already */
		crd_jobrec *o = crd_jobs_find_seq(s, s->dups[i].seq);
		if (o && (o->flags & CRUND_JF_DUPLICATE))
			s->dups[k++] = s->dups[i];
	}
	s->ndups = k;
	if (!j || !(j->flags & CRUND_JF_UNCOMMITTED))
		return;
	j->flags |= CRUND_JF_DUPLICATE;
	if (!held || !(h = crd_jobs_cache_row(s, held)))
		return;
	if (s->ndups == s->capdups) {
		size_t nc = s->capdups ? s->capdups * 2 : 8;
		struct crd_dup *p = realloc(s->dups, nc * sizeof(*p));
		if (!p)
			return;
		s->dups = p;
		s->capdups = nc;
	}
	s->dups[s->ndups++] = (struct crd_dup){
		.seq = seq, .held = held->seq, .rc = same_request(j, h) ? 1 : -EEXIST};
}

/* How a waiter of submission seq (left out, see hook_duplicate) is
 * answered: *ret_held and 1 or -EEXIST, or -EIO (unknown: 503). */
static int dup_answer(crd_jobs *s, uint64_t seq, crd_jobrec **ret_held)
{
	*ret_held = NULL;
	for (size_t i = 0; i < s->ndups; i++) {
		if (s->dups[i].seq == seq) {
			*ret_held = crd_jobs_find_seq(s, s->dups[i].held);
			return *ret_held ? s->dups[i].rc : -EIO;
		}
	}
	return -EIO;
}

struct accept_wait;
static void duplicate_committed(crd_jobs *s, struct accept_wait *w, crd_jobrec *j);

/* A submission waiting for its commit. */
struct accept_wait {
	crd_jobs *s;
	uint64_t seq;
	void (*accepted)(void *arg, crd_jobrec *job, int rc);
	void *arg;
	bool again; /* the same idempotency key again before the first commit */
};

static void on_committed(void *arg, int rc)
{
	struct accept_wait *w = arg;
	crd_jobs *s = w->s;
	crd_jobrec *j = crd_jobs_find_seq(s, w->seq);
	if (w->again && rc == 0 && (!j || (j->flags & CRUND_JF_DUPLICATE))) {
		/* the first one was left out for another node's job */
		crd_jobrec *held;
		int drc = dup_answer(s, w->seq, &held);
		if (w->accepted)
			w->accepted(w->arg, held, drc);
		free(w);
		return;
	}
	if (w->again) {
		/* the first submission's commit decides; this one learns it (its
		 * row may be committed with the first one's or right after it) */
		if (w->accepted)
			w->accepted(w->arg, rc == 0 ? j : NULL, rc < 0 ? rc : j ? 1 : -ENOENT);
		free(w);
		return;
	}
	bool claimed = j && (j->flags & CRUND_JF_UNCOMMITTED) && (j->flags & CRUND_JF_CLAIMED);
	if (claimed)
		s->n_claiming--;
	if (j && (j->flags & CRUND_JF_DUPLICATE) && rc == 0) {
		duplicate_committed(s, w, j);
		return;
	}
	if (j && (j->flags & CRUND_JF_UNCOMMITTED)) {
		j->flags &= (uint16_t)~CRUND_JF_UNCOMMITTED;
		if (rc < 0) {
			/* not acknowledged: it never existed (the store keeps the
			 * row pending and may still write it: delete it there too,
			 * also on a shared store, where forgetting a record is not
			 * deleting its row) */
			bool was = s->explicit_delete;
			s->explicit_delete = true;
			s->n_submitted--;
			job_forget(s, j);
			s->explicit_delete = was;
			j = NULL;
		} else if (s->shared) {
			shared_committed(s, j, claimed);
		} else {
			enqueue(s, j); /* draining: it waits for the next start */
			crd_jobs_announce(s, j);
		}
	}
	if (w->accepted)
		w->accepted(w->arg, j, j ? 0 : (rc < 0 ? rc : -ENOENT));
	free(w);
	if (j && rc == 0)
		start_queued(s);
}

int crd_jobs_submit(crd_jobs *s, crd_job_req *req, crd_jobrec **ret_job, bool *ret_existing)
{
	json_t *args = req->args;
	req->args = NULL;
	int rc;

	if (s->draining) {
		json_decref(args);
		return -ESHUTDOWN;
	}
	if (req->idem_key) {
		json_t *v = json_object_get(s->idem, req->idem_key);
		crd_jobrec *old = v ? crd_jobs_find_seq(s, (uint64_t)json_integer_value(v)) : NULL;
		if (old) {
			req->args = args;
			bool same = same_submission(old, req);
			req->args = NULL;
			json_decref(args);
			if (!same)
				return -EEXIST;
			if (old->flags & CRUND_JF_UNCOMMITTED) {
				/* the same key again before the first one is durable:
				 * answered with the first one's commit */
				struct accept_wait *w = malloc(sizeof(*w));
				if (!w)
					return -ENOMEM;
				*w = (struct accept_wait){.s = s,
							  .seq = old->seq,
							  .accepted = req->accepted,
							  .arg = req->accepted_arg,
							  .again = true};
				if (persist(s, old, on_committed, w) < 0) {
					free(w);
					return -ENOMEM;
				}
				*ret_job = old;
				if (ret_existing)
					*ret_existing = true;
				return CRD_JOBS_PENDING;
			}
			*ret_job = old;
			if (ret_existing)
				*ret_existing = true;
			return 0;
		}
	}
	if (s->st && crd_store_error(s->st, NULL)) {
		json_decref(args);
		return -EIO; /* refused fast while the store fails; it retries alone */
	}
	bool due = req->run_at <= s->now();
	bool slot = due && s->n_state[CRUND_JOB_RUNNING] < s->lim.max_running && !s->q_head;
	if (s->shared) {
		/* the queue is the database's; a free slot claims at insert */
		slot = due && s->n_state[CRUND_JOB_RUNNING] + s->n_claiming < s->lim.max_running;
		if (s->next_seq >= s->seq_end) {
			uint64_t lo, hi;
			if (crd_store_seq_block(s->st, &lo, &hi) < 0) {
				json_decref(args);
				return -EIO; /* the next block is on its way */
			}
			s->next_seq = lo;
			s->seq_end = hi;
		}
	}
	/* shared: the queue is the database's, counted once a second, plus
	 * what this node queued since */
	uint64_t queued = s->shared ? s->shared_queued + s->queued_since_count
				    : s->n_state[CRUND_JOB_QUEUED];
	if (!slot && queued >= s->lim.max_queued) {
		json_decref(args);
		return -EAGAIN;
	}
	if (s->shared && !slot)
		s->queued_since_count++;
	rehash_step(s, REHASH_STEP);
	if (s->count >= s->hsize && hash_grow(s) < 0) {
		json_decref(args);
		return -ENOMEM;
	}
	crd_jobrec *j = rec_alloc(s);
	if (!j) {
		json_decref(args);
		return -ENOMEM;
	}
	if ((req->idem_key && !(j->idem_key = strdup(req->idem_key))) ||
	    (req->retry_of && !(j->retry_of = strdup(req->retry_of)))) {
		free(j->idem_key);
		rec_free(s, j);
		json_decref(args);
		return -ENOMEM;
	}
	j->store = s;
	j->seq = s->next_seq++;
	make_id(s, j->seq, j->id);
	j->plugin = req->plugin;
	j->spec = req->spec;
	j->args = args;
	if ((rc = args_text(j)) < 0) {
		job_free(s, j);
		return rc;
	}
	j->timeout = req->timeout;
	j->progress = -1;
	/* what the submission does not say, the job spec does */
	unsigned attempts = req->max_attempts ? req->max_attempts : req->spec->max_attempts;
	if (attempts > UINT16_MAX)
		attempts = UINT16_MAX;
	j->max_attempts = (uint16_t)(attempts ? attempts : 1);
	int oi = req->on_interrupt >= 0                      ? req->on_interrupt
		 : (req->spec->flags & CRUND_JOB_RERUN_SAFE) ? CRD_ON_INTERRUPT_RETRY
							     : CRD_ON_INTERRUPT_FAIL;
	j->on_interrupt = oi == CRD_ON_INTERRUPT_RETRY ? CRD_ON_INTERRUPT_RETRY
						       : CRD_ON_INTERRUPT_FAIL;
	j->run_at = due ? 0 : req->run_at;
	j->state = CRUND_JOB_QUEUED;
	if (req->isolated)
		j->flags |= CRUND_JF_ISOLATED;
	j->created_at = s->now();
	if (j->idem_key) {
		if (json_object_set_new(s->idem, j->idem_key, json_integer((json_int_t)j->seq)) <
		    0) {
			job_free(s, j);
			return -ENOMEM;
		}
	}
	link_new(s, j); /* queued */

	if (s->st) {
		/* durable: nothing runs and nobody sees it before its commit */
		struct accept_wait *w = malloc(sizeof(*w));
		if (!w) {
			job_forget(s, j);
			return -ENOMEM;
		}
		j->flags |= CRUND_JF_UNCOMMITTED;
		if (s->shared && slot) {
			j->flags |= CRUND_JF_CLAIMED;
			s->n_claiming++;
		}
		w->s = s;
		w->seq = j->seq;
		w->accepted = req->accepted;
		w->arg = req->accepted_arg;
		w->again = false;
		if (persist(s, j, on_committed, w) < 0) {
			free(w);
			if (j->flags & CRUND_JF_CLAIMED)
				s->n_claiming--;
			job_forget(s, j);
			return -ENOMEM;
		}
		s->n_submitted++;
		*ret_job = j;
		if (ret_existing)
			*ret_existing = false;
		return CRD_JOBS_PENDING;
	}
	if (slot) {
		if ((rc = start_job(s, j)) < 0) {
			/* not accepted: undo completely */
			job_forget(s, j);
			return rc;
		}
	} else {
		enqueue(s, j);
		crd_jobs_announce(s, j);
	}
	s->n_submitted++;
	*ret_job = j;
	if (ret_existing)
		*ret_existing = false;
	return 0;
}

/* A job whose policy is fail: its end is told only once it is durable.
 * Else a crash between the answer and the commit would leave the job
 * running in the store, and the next start would end it "interrupted"
 * after its client was told how it ended.  (A retry job runs again after
 * such a crash, as its policy allows, and its end rides the next commit.)
 * A cancel (not a shutdown's) too, whatever the policy: a job told
 * cancelled must not run again after a crash, queued or retried. */
static bool end_awaited(const crd_jobs *s, const crd_jobrec *j, int state, const char *code)
{
	if (!s->st || (j->flags & CRUND_JF_REMOTE))
		return false;
	if (state == CRUND_JOB_CANCELLED && code && strcmp(code, "shutdown") != 0)
		return true;
	return j->on_interrupt == CRD_ON_INTERRUPT_FAIL;
}

struct end_wait {
	crd_jobs *s;
	uint64_t seq;
};

/* The end row's commit is done.  A failed one tells nobody: the row goes
 * in again with this waiter (the store tries again) and the end is told at
 * the commit that holds it; meanwhile the answers that would tell it are
 * 503 store_unavailable once their wait runs out (api/wait.c), never the
 * end a crash could undo.  At the close (draining) it stays untold. */
static void end_committed(void *arg, int rc)
{
	struct end_wait *w = arg;
	crd_jobs *s = w->s;
	crd_jobrec *j = crd_jobs_find_seq(s, w->seq);
	if (!j || !(j->flags & CRUND_JF_END_UNSYNCED)) {
		free(w);
		return;
	}
	if (rc < 0) {
		if (s->draining || persist(s, j, end_committed, w) < 0)
			free(w); /* out of memory too: untold until the next start */
		return;
	}
	settle(s, j);
	if (!s->draining)
		retain_count(s); /* it was kept past the limit meanwhile */
	free(w);
}

void crd_jobs_finish(crd_jobs *s, crd_jobrec *j, int state, const char *code, const char *message)
{
	if (crd_job_state_ended(j->state) || !crd_job_state_ended(state))
		return;
	bool awaited = end_awaited(s, j, state, code); /* code may be freed below */
	if (j->state == CRUND_JOB_QUEUED && (j->flags & CRUND_JF_DELAYED)) {
		q_unlink(&s->d_head, &s->d_tail, j);
		j->flags &= (uint16_t)~CRUND_JF_DELAYED;
	} else if (j->state == CRUND_JOB_QUEUED && (j->lprev || s->q_head == j)) {
		q_unlink(&s->q_head, &s->q_tail, j);
	}
	set_state(s, j, state);
	j->run_at = 0;
	j->finished_at = s->now();
	if (state == CRUND_JOB_SUCCEEDED) {
		/* an earlier attempt's error no longer applies */
		free(j->err_code);
		free(j->err_msg);
		j->err_code = j->err_msg = NULL;
	} else {
		/* copy first: code/message may point at the old strings */
		char *nc = strdup(code ? code : "internal");
		char *nm = message ? strdup(message) : NULL;
		free(j->err_code);
		free(j->err_msg);
		j->err_code = nc;
		j->err_msg = nm;
		free(j->result);
		j->result = NULL;
		j->result_len = 0;
	}
	if (!j->task)
		crd_jobs_task_gone(j);
	q_push(&s->e_head, &s->e_tail, j);
	s->n_ended_total[state]++;
	observe_run(s, j);
	struct end_wait *ew = awaited ? malloc(sizeof(*ew)) : NULL;
	if (ew) {
		*ew = (struct end_wait){.s = s, .seq = j->seq};
		if (persist(s, j, end_committed, ew) == 0) {
			j->flags |= CRUND_JF_END_UNSYNCED;
			s->last_unsynced = j;
		} else
			free(ew);
	} else {
		persist(s, j, NULL, NULL);
	}
	if (!(j->flags & CRUND_JF_END_UNSYNCED))
		settle(s, j);
	if (s->ops.ended)
		s->ops.ended(j, s->ops_data);
	if (s->shared)
		crd_store_wake(s->st); /* a slot is free: claim */
	start_queued(s);
	retain_count(s);
}

int crd_jobs_set_result(crd_jobrec *j, json_t *result)
{
	size_t len;
	if (!result)
		return -EINVAL;
	char *text = crd_json_text(result, j->store->lim.max_result_bytes, &len);
	json_decref(result);
	if (!text) {
		if (len > j->store->lim.max_result_bytes) {
			j->flags |= CRUND_JF_RESULT_BIG;
			return -E2BIG;
		}
		return len ? -ENOMEM : -EINVAL;
	}
	free(j->result);
	j->result = text;
	j->result_len = (uint32_t)len;
	j->flags &= (uint16_t)~CRUND_JF_RESULT_BIG;
	return 0;
}

/* ------------------------------------------------------ attempts */

static double backoff(const crd_jobs *s, unsigned attempt, double at_least)
{
	/* attempt^4 seconds, ±10% jitter (River, Sidekiq), at least what the
	 * attempt asked for (Retry-After), capped (negative: no backoff) */
	double cap = s->lim.retry_max_delay > 0   ? s->lim.retry_max_delay
		     : s->lim.retry_max_delay < 0 ? 0
						  : 3600;
	double a = attempt, d = a * a * a * a;
	uint32_t r = 0;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint32_t)(attempt * 2654435761u);
	d *= 0.9 + 0.2 * ((double)r / 4294967295.0);
	if (d < at_least)
		d = at_least;
	return d < cap ? d : cap;
}

void crd_jobs_set_retry_after(crd_jobrec *job, double seconds)
{
	job->retry_after = seconds < 0 ? 0 : seconds > 1e9 ? 1e9f : (float)seconds;
}

/* Append this attempt to the job's history: {attempt, started_at,
 * finished_at, error}.  Out of memory: the history misses it. */
static void record_attempt(crd_jobrec *j, double finished, const char *code, const char *msg)
{
	crd_buf b = CRUND_BUF_INIT;
	char ts[40];
	if (j->attempts && strlen(j->attempts) > 2) {
		crd_buf_add(&b, j->attempts, strlen(j->attempts) - 1);
		crd_buf_addc(&b, ',');
	} else {
		crd_buf_addc(&b, '[');
	}
	crd_buf_addf(&b, "{\"attempt\":%u,\"started_at\":", (unsigned)j->attempt);
	if (j->started_at > 0) {
		crd_format_time(j->started_at, ts, sizeof(ts));
		crd_buf_add_jstr(&b, ts);
	} else {
		crd_buf_adds(&b, "null");
	}
	crd_buf_adds(&b, ",\"finished_at\":");
	if (finished > 0) {
		crd_format_time(finished, ts, sizeof(ts));
		crd_buf_add_jstr(&b, ts);
	} else {
		crd_buf_adds(&b, "null");
	}
	crd_buf_adds(&b, ",\"error\":");
	if (code) {
		crd_buf_adds(&b, "{\"code\":");
		crd_buf_add_jstr(&b, code);
		crd_buf_adds(&b, ",\"message\":");
		crd_buf_add_jstr(&b, msg ? msg : code);
		crd_buf_addc(&b, '}');
	} else {
		crd_buf_adds(&b, "null");
	}
	if (j->store->shared && j->node) {
		crd_buf_adds(&b, ",\"node\":");
		crd_buf_add_jstr(&b, j->node);
	}
	crd_buf_adds(&b, "}]");
	char *t = crd_buf_steal(&b, NULL);
	if (t) {
		free(j->attempts);
		j->attempts = t;
	}
}

static int set_error(crd_jobrec *j, const char *code, const char *message)
{
	char *nc = strdup(code ? code : "internal");
	char *nm = message ? strdup(message) : NULL;
	if (!nc || (message && !nm)) {
		free(nc);
		free(nm);
		return -ENOMEM;
	}
	free(j->err_code);
	free(j->err_msg);
	j->err_code = nc;
	j->err_msg = nm;
	return 0;
}

/* Failures another attempt may cure.  The http plugin's http_status,
 * connect_error and transfer_error are; its refusals (host_not_allowed,
 * response_too_large, too_many_redirects) are not. */
static bool retryable(const char *code)
{
	return code && (!strcmp(code, "plugin_error") || !strcmp(code, "timeout") ||
			!strcmp(code, "interrupted") || !strcmp(code, "exit_status") ||
			!strcmp(code, "http_status") || !strcmp(code, "connect_error") ||
			!strcmp(code, "transfer_error"));
}

/* A running (or, at load, interrupted) job goes back to the queue for
 * another attempt at run_at. */
static void go_remote(crd_jobs *s, crd_jobrec *j);

static void requeue(crd_jobs *s, crd_jobrec *j, double run_at)
{
	set_state(s, j, CRUND_JOB_QUEUED);
	j->run_at = run_at;
	free(j->result);
	j->result = NULL;
	j->result_len = 0;
	s->n_retries++;
	if (s->shared) {
		/* back to the database's queue, for any node */
		persist(s, j, NULL, NULL);
		go_remote(s, j);
		if (j->subs)
			crd_jobs_emit(j, CRUND_EV_STATE, NULL, 0);
		crd_store_wake(s->st); /* its slot is free: claim */
		return;
	}
	enqueue(s, j);
	persist(s, j, NULL, NULL);
	crd_jobs_announce(s, j);
	if (j->subs)
		crd_jobs_emit(j, CRUND_EV_STATE, NULL, 0);
	/* its slot is free: a queued job takes it (or this one, when its
	 * retry is due at once) */
	start_queued(s);
}

/* The attempt failed with code/message: retry when it may, else end. */
static void attempt_failed(crd_jobs *s, crd_jobrec *j, int state, const char *code,
			   const char *message)
{
	/* while draining only a durable store can keep the retry for later */
	if (state == CRUND_JOB_FAILED && retryable(code) && j->attempt < j->max_attempts &&
	    (!s->draining || s->st)) {
		double now = s->now();
		record_attempt(j, now, code, message);
		set_error(j, code, message); /* shown while it waits */
		requeue(s, j, now + backoff(s, j->attempt, j->retry_after));
		return;
	}
	crd_jobs_finish(s, j, state, code, message);
}

/* A job's task waiting for its start row: the task and the store's
 * callback each hold a reference (the task may be cancelled first). */
struct start_wait {
	cr_event *ev;
	int rc;
	int refs;
};

static void start_wait_unref(struct start_wait *w)
{
	if (--w->refs > 0)
		return;
	cr_event_free(w->ev);
	free(w);
}

static void start_committed(void *arg, int rc)
{
	struct start_wait *w = arg;
	w->rc = rc;
	cr_event_set(w->ev);
	start_wait_unref(w);
}

int crd_jobs_await_durable_start(crd_jobrec *j)
{
	crd_jobs *s = j->store;
	if (!start_awaited(s, j))
		return 0;
	for (;;) {
		struct start_wait *w = calloc(1, sizeof(*w));
		int rc = w ? cr_event_new(&w->ev) : -ENOMEM;
		if (rc < 0) {
			free(w);
			return rc;
		}
		w->refs = 2;
		/* the start's row (start_job left it to us), with a waiter;
		 * after a failed commit it takes the pending row's place */
		if ((rc = persist(s, j, start_committed, w)) < 0) {
			w->refs = 1;
			start_wait_unref(w);
			return rc;
		}
		rc = cr_event_wait(w->ev); /* -ECANCELED: the task was cancelled */
		int commit_rc = w->rc;
		start_wait_unref(w);
		if (rc < 0)
			return rc;
		if (commit_rc == 0 || commit_rc == -ESHUTDOWN || commit_rc == -ENOMEM)
			return commit_rc;
		/* the commit failed: the store keeps the row and tries again */
	}
}

/* Stopped by the daemon's shutdown, not by anyone's wish: with a durable
 * store a job whose policy is retry (or whose plugin code never ran: it
 * waited for its start to be recorded) runs again at the next start, and
 * this attempt does not count (no entry in its history either: the next
 * start's run has the same number).  False: it ends cancelled. */
static bool requeue_for_restart(crd_jobs *s, crd_jobrec *j)
{
	if (!s->st || (j->on_interrupt != CRD_ON_INTERRUPT_RETRY && (j->flags & CRUND_JF_STEPPED)))
		return false;
	j->attempt--;
	j->cancel_code = NULL;
	requeue(s, j, 0);
	s->n_retries--;
	return true;
}

void crd_jobs_abandon(crd_jobs *s, crd_jobrec *j)
{
	if (j->state != CRUND_JOB_RUNNING)
		return;
	/* as crd_jobs_attempt_ended would have decided, had it stopped */
	const char *code = j->cancel_code ? j->cancel_code : "shutdown";
	bool shutdown = !strcmp(code, "shutdown");
	if (shutdown && requeue_for_restart(s, j))
		return;
	crd_jobs_finish(s, j, CRUND_JOB_CANCELLED, code,
			shutdown ? "the daemon shut down; the job did not stop when cancelled"
				 : "cancelled by request");
}

void crd_jobs_attempt_ended(crd_jobs *s, crd_jobrec *j, int rc, bool cancelled, bool timed_out)
{
	char msg[160];
	if (crd_job_state_ended(j->state))
		return;
	if (timed_out) {
		snprintf(msg, sizeof(msg), "the job did not finish within its timeout of %g s",
			 j->timeout);
		attempt_failed(s, j, CRUND_JOB_FAILED, "timeout", msg);
	} else if (rc == -ECANCELED || cancelled) {
		const char *code = j->cancel_code ? j->cancel_code : "cancelled";
		bool shutdown = !strcmp(code, "shutdown");
		if (shutdown && requeue_for_restart(s, j))
			return;
		bool asked = j->cancel_code || (j->flags & CRUND_JF_CANCEL_REQ);
		crd_jobs_finish(s, j, CRUND_JOB_CANCELLED, code,
				shutdown ? "the daemon shut down while the job ran"
				: asked  ? "cancelled by request"
					 : "the job's code ended it cancelled (-ECANCELED) though "
					   "nobody cancelled it");
	} else if (j->flags & CRUND_JF_RESULT_BIG) {
		snprintf(msg, sizeof(msg), "the job's result is larger than the limit of %zu bytes",
			 s->lim.max_result_bytes);
		crd_jobs_finish(s, j, CRUND_JOB_FAILED, "result_too_large", msg);
	} else if (rc < 0) {
		if (j->flags & CRUND_JF_FAIL_SET) {
			/* finish copies before it frees the old strings */
			attempt_failed(s, j, CRUND_JOB_FAILED, j->err_code, j->err_msg);
		} else {
			attempt_failed(s, j, CRUND_JOB_FAILED, "plugin_error", cr_strerror(rc));
		}
	} else {
		crd_jobs_finish(s, j, CRUND_JOB_SUCCEEDED, NULL, NULL);
	}
}

int crd_jobs_set_failure(crd_jobrec *j, const char *code, const char *message)
{
	int rc = set_error(j, code && *code ? code : "plugin_error", message);
	if (rc == 0)
		j->flags |= CRUND_JF_FAIL_SET;
	return rc;
}

/* The job's progress to its subscribers: {"fraction","message"}. */
static void emit_progress(crd_jobrec *j)
{
	crd_buf b = CRUND_BUF_INIT;
	crd_buf_add(&b, "{\"fraction\":", 12);
	crd_buf_add_num(&b, j->progress);
	crd_buf_add(&b, ",\"message\":", 11);
	crd_buf_add_jstr(&b, j->progress_msg);
	crd_buf_addc(&b, '}');
	if (crd_buf_ok(&b))
		crd_jobs_emit(j, CRUND_EV_PROGRESS, b.data, b.len);
	crd_buf_free(&b);
}

int crd_jobs_set_progress(crd_jobrec *j, double fraction, const char *message)
{
	if (!isfinite(fraction))
		return -EINVAL;
	if (fraction < 0)
		fraction = 0;
	if (fraction > 1)
		fraction = 1;
	char *m = NULL;
	if (message && !(m = strdup(message)))
		return -ENOMEM;
	free(j->progress_msg);
	j->progress_msg = m;
	j->progress = fraction;
	j->flags |= CRUND_JF_PROGRESS;
	mark_dirty(j);
	if (j->subs)
		emit_progress(j);
	return 0;
}

void crd_jobs_task_gone(crd_jobrec *j)
{
	json_decref(j->args);
	j->args = NULL;
}

int crd_jobs_cancel(crd_jobs *s, crd_jobrec *j, const char *code)
{
	return crd_jobs_cancel_then(s, j, code, NULL, NULL);
}

int crd_jobs_cancel_then(crd_jobs *s, crd_jobrec *j, const char *code, crd_store_done_fn done,
			 void *arg)
{
	if (crd_job_state_ended(j->state))
		return -EALREADY;
	if (j->flags & CRUND_JF_REMOTE) /* its node is told (or, queued, it ends there) */
		return crd_store_cancel(s->st, j->seq, NULL, NULL);
	bool shutdown = code && !strcmp(code, "shutdown");
	if (j->state == CRUND_JOB_QUEUED) {
		/* queued: not started yet, or waiting to run again */
		const char *msg = j->attempt
					  ? (shutdown ? "the daemon shut down while the job "
							"waited for another attempt"
						      : "cancelled by request while the job waited "
							"for another attempt")
					  : (shutdown
						     ? "the daemon shut down before the job started"
						     : "cancelled by request before it started");
		crd_jobs_finish(s, j, CRUND_JOB_CANCELLED, shutdown ? "shutdown" : "cancelled",
				msg);
		return 0;
	}
	/* A later "shutdown" cancels again (it interrupts the cleanup the
	 * request started) but the request stays the reason: a job somebody
	 * cancelled ends cancelled, and a shutdown does not queue it again
	 * for the next start as it would a job it stopped. */
	int rc = 0;
	bool requested = (j->flags & CRUND_JF_CANCEL_REQ) &&
			 strcmp(j->cancel_code, "shutdown") != 0;
	if (!(j->flags & CRUND_JF_CANCEL_REQ) || shutdown) {
		j->flags |= CRUND_JF_CANCEL_REQ;
		if (!requested)
			j->cancel_code = shutdown ? "shutdown" : "cancelled";
		/* a durable store keeps the request (the row's cancel_requested)
		 * from before the task hears of it */
		if (!shutdown && s->st && persist(s, j, done, arg) == 0 && done)
			rc = CRD_JOBS_PENDING;
		if (s->ops.cancel)
			s->ops.cancel(j, s->ops_data);
	} else if (done && s->st && strcmp(j->cancel_code, "shutdown") != 0 &&
		   persist(s, j, done, arg) == 0) {
		rc = CRD_JOBS_PENDING; /* asked again: told with (or after) the first */
	}
	return rc;
}

int crd_jobs_delete(crd_jobs *s, crd_jobrec *j, crd_store_done_fn done, void *arg)
{
	if (!crd_job_state_ended(j->state) || j->task)
		return -EBUSY;
	if (j->flags & CRUND_JF_END_UNSYNCED)
		return -EAGAIN; /* its end is not written: forgetting it would tell it */
	s->explicit_delete = true;
	s->del_done = done;
	s->del_arg = arg;
	s->del_pending = false;
	job_forget(s, j);
	s->explicit_delete = false;
	s->del_done = NULL;
	s->del_arg = NULL;
	return s->del_pending ? CRD_JOBS_PENDING : 0;
}

size_t crd_jobs_drain(crd_jobs *s)
{
	size_t n = s->n_state[CRUND_JOB_QUEUED];
	s->draining = true;
	if (s->st)
		return n; /* durable: they wait for the next start */
	while (s->q_head)
		crd_jobs_cancel(s, s->q_head, "shutdown");
	while (s->d_head)
		crd_jobs_cancel(s, s->d_head, "shutdown");
	return n;
}

void crd_jobs_cancel_running(crd_jobs *s, const char *code)
{
	/* newest first is as good as any order; collect nothing: cancel only
	 * asks, records change later in finish. */
	for (crd_jobrec *j = s->newest; j; j = j->older)
		if (j->state == CRUND_JOB_RUNNING && !(j->flags & CRUND_JF_REMOTE))
			crd_jobs_cancel(s, j, code);
}

size_t crd_jobs_active(const crd_jobs *s)
{
	return s->n_state[CRUND_JOB_QUEUED] + s->n_state[CRUND_JOB_RUNNING];
}

/* ----------------------------------------------------------- subscribers */

void crd_jobs_subscribe(crd_jobrec *job, crd_sub *sub)
{
	sub->job = job;
	sub->prev = NULL;
	sub->next = job->subs;
	if (job->subs)
		job->subs->prev = sub;
	job->subs = sub;
}

void crd_jobs_unsubscribe(crd_sub *sub)
{
	crd_jobrec *j = sub->job;
	if (!j)
		return;
	if (sub->prev)
		sub->prev->next = sub->next;
	else
		j->subs = sub->next;
	if (sub->next)
		sub->next->prev = sub->prev;
	sub->next = sub->prev = NULL;
	sub->job = NULL;
}

void crd_jobs_emit(crd_jobrec *job, int ev, const char *data, size_t len)
{
	crd_sub *sub = job->subs;
	while (sub) {
		crd_sub *n = sub->next;
		sub->on_event(sub, job, ev, data, len);
		sub = n;
	}
}

void crd_jobs_log_append(crd_jobrec *j, const char *line, size_t len)
{
	size_t max = j->store->lim.max_log_bytes;
	if (j->flags & CRUND_JF_LOG_TRUNC)
		return;
	if ((size_t)j->log_len + len + 1 > max) {
		j->flags |= CRUND_JF_LOG_TRUNC;
		return;
	}
	if (j->log_len + len + 1 > j->log_cap) {
		size_t cap = j->log_cap ? j->log_cap : 128;
		while (cap < j->log_len + len + 1)
			cap *= 2;
		if (cap > max)
			cap = max;
		char *p = realloc(j->log, cap);
		if (!p) {
			j->flags |= CRUND_JF_LOG_TRUNC;
			return;
		}
		j->log = p;
		j->log_cap = (uint32_t)cap;
	}
	memcpy(j->log + j->log_len, line, len);
	j->log_len += (uint32_t)len;
	j->log[j->log_len++] = '\n';
	mark_dirty(j);
}

/* ---------------------------------------------------------------- listing */

static bool list_match(const crd_jobrec *j, const crd_jobs_filter *f)
{
	if (f->state_mask && !(f->state_mask & (1u << j->state)))
		return false;
	if (j->flags & CRUND_JF_UNCOMMITTED)
		return false;
	if (f->plugin && strcmp(f->plugin, j->plugin->desc->name))
		return false;
	if (f->job && strcmp(f->job, j->spec->name))
		return false;
	if (f->text && !strstr(j->id, f->text) && !(j->idem_key && strstr(j->idem_key, f->text)))
		return false;
	return true;
}

int crd_jobs_list(crd_jobs *s, unsigned state_mask, const char *plugin, const char *cursor,
		  size_t limit, void (*fn)(crd_jobrec *job, void *arg), void *arg, bool *ret_more)
{
	crd_jobs_filter f = {.state_mask = state_mask, .plugin = plugin};
	return crd_jobs_list_where(s, &f, cursor, limit, fn, arg, ret_more);
}

int crd_jobs_list_where(crd_jobs *s, const crd_jobs_filter *f, const char *cursor, size_t limit,
			void (*fn)(crd_jobrec *job, void *arg), void *arg, bool *ret_more)
{
	crd_jobrec *j = s->newest;
	if (cursor) {
		uint64_t seq;
		if (crd_jobs_parse_id(s, cursor, &seq) < 0)
			return -EINVAL;
		crd_jobrec *c = crd_jobs_find_seq(s, seq);
		if (c) {
			j = c->older;
		} else {
			/* the cursor's job was forgotten meanwhile: resume at the
			 * first older one */
			while (j && j->seq >= seq)
				j = j->older;
		}
	}
	size_t n = 0;
	*ret_more = false;
	for (; j; j = j->older) {
		if (!list_match(j, f))
			continue;
		if (n == limit) {
			*ret_more = true;
			break;
		}
		fn(j, arg);
		n++;
	}
	return 0;
}

/* -------------------------------------------------------------- rendering */

void crd_jobs_format_id(const crd_jobs *s, uint64_t seq, char *out) { make_id(s, seq, out); }

/* key and t as a JSON time (or null); with keep, the formatted time is
 * left there ("" for null) to be written again without formatting it
 * twice. */
static void add_time_keep(crd_buf *b, const char *key, double t, char keep[40])
{
	char own[40];
	char *ts = keep ? keep : own;
	crd_buf_adds(b, key);
	if (t <= 0) {
		ts[0] = '\0';
		crd_buf_add(b, "null", 4);
		return;
	}
	crd_format_time(t, ts, 40);
	crd_buf_addc(b, '"');
	crd_buf_adds(b, ts);
	crd_buf_addc(b, '"');
}

static void add_time(crd_buf *b, const char *key, double t) { add_time_keep(b, key, t, NULL); }

/* key and a time add_time_keep formatted before */
static void add_kept_time(crd_buf *b, const char *key, const char *ts)
{
	crd_buf_adds(b, key);
	if (!*ts) {
		crd_buf_add(b, "null", 4);
		return;
	}
	crd_buf_addc(b, '"');
	crd_buf_adds(b, ts);
	crd_buf_addc(b, '"');
}

/* An ended job's last attempt ran and is not in its recorded attempts
 * (those hold the attempts that were followed by another, or by a wait
 * for one: a job cancelled while it waited for a retry ended with its
 * last attempt recorded already). */
static bool final_attempt_unrecorded(const crd_jobrec *j)
{
	if (!crd_job_state_ended(j->state) || !j->attempt || j->started_at <= 0)
		return false;
	const char *p = j->attempts, *hit = NULL;
	while (p && (p = strstr(p, "{\"attempt\":")))
		hit = p++;
	return !hit || strtoul(hit + 11, NULL, 10) != j->attempt;
}

void crd_job_render(crd_buf *b, const crd_jobrec *j)
{
	crd_buf_add(b, "{\"id\":\"", 7);
	crd_buf_adds(b, j->id);
	crd_buf_add(b, "\",\"plugin\":", 11);
	crd_buf_add_jstr(b, j->plugin->desc->name);
	crd_buf_add(b, ",\"job\":", 7);
	crd_buf_add_jstr(b, j->spec->name);
	crd_buf_add(b, ",\"args\":", 8);
	crd_buf_add(b, j->args_json, j->args_len);
	crd_buf_add(b, ",\"state\":\"", 10);
	crd_buf_adds(b, state_names[j->state]);
	crd_buf_add(b, "\",\"result\":", 11);
	if (j->state == CRUND_JOB_SUCCEEDED && j->result)
		crd_buf_add(b, j->result, j->result_len);
	else
		crd_buf_add(b, "null", 4);
	crd_buf_add(b, ",\"error\":", 9);
	if (j->err_code &&
	    (crd_job_state_ended(j->state) || (j->state == CRUND_JOB_QUEUED && j->attempt > 0))) {
		crd_buf_add(b, "{\"code\":", 8);
		crd_buf_add_jstr(b, j->err_code);
		crd_buf_add(b, ",\"message\":", 11);
		crd_buf_add_jstr(b, j->err_msg ? j->err_msg : j->err_code);
		crd_buf_addc(b, '}');
	} else {
		crd_buf_add(b, "null", 4);
	}
	crd_buf_add(b, ",\"progress\":", 12);
	if (j->flags & CRUND_JF_PROGRESS) {
		crd_buf_add(b, "{\"fraction\":", 12);
		crd_buf_add_num(b, j->progress);
		crd_buf_add(b, ",\"message\":", 11);
		crd_buf_add_jstr(b, j->progress_msg);
		crd_buf_addc(b, '}');
	} else {
		crd_buf_add(b, "null", 4);
	}
	add_time(b, ",\"created_at\":", j->created_at);
	char started[40], finished[40];
	add_time_keep(b, ",\"started_at\":", j->started_at, started);
	add_time_keep(b, ",\"finished_at\":", j->finished_at, finished);
	crd_buf_add(b, ",\"timeout\":", 11);
	if (j->timeout > 0)
		crd_buf_add_num(b, j->timeout);
	else
		crd_buf_add(b, "null", 4);
	crd_buf_add(b,
		    (j->flags & CRUND_JF_ISOLATED) ? ",\"context\":\"isolated\""
						   : ",\"context\":\"shared\"",
		    (j->flags & CRUND_JF_ISOLATED) ? 21 : 19);
	if (j->idem_key) {
		crd_buf_add(b, ",\"idempotency_key\":", 19);
		crd_buf_add_jstr(b, j->idem_key);
	}
	if (j->retry_of) {
		crd_buf_add(b, ",\"retry_of\":", 12);
		crd_buf_add_jstr(b, j->retry_of);
	}
	crd_buf_addf(b, ",\"attempt\":%u,\"max_attempts\":%u", (unsigned)j->attempt,
		     (unsigned)j->max_attempts);
	add_time(b, ",\"run_at\":", j->state == CRUND_JOB_QUEUED ? j->run_at : 0);
	crd_buf_adds(b, j->on_interrupt == CRD_ON_INTERRUPT_RETRY ? ",\"on_interrupt\":\"retry\""
								  : ",\"on_interrupt\":\"fail\"");
	if (j->node && j->store->shared && j->attempt > 0) {
		crd_buf_add(b, ",\"node\":", 8);
		crd_buf_add_jstr(b, j->node);
	}
	crd_buf_add(b, ",\"attempts\":", 12);
	bool last = final_attempt_unrecorded(j);
	if (j->attempts && strlen(j->attempts) > 2)
		crd_buf_add(b, j->attempts, strlen(j->attempts) - (last ? 1 : 0));
	else
		crd_buf_adds(b, last ? "[" : "[]");
	if (last) {
		/* the ended job's last attempt: its own fields (not stored
		 * twice); an interrupted one has no known end */
		if (j->attempts && strlen(j->attempts) > 2)
			crd_buf_addc(b, ',');
		crd_buf_addf(b, "{\"attempt\":%u", (unsigned)j->attempt);
		add_kept_time(b, ",\"started_at\":", started);
		bool interrupted = j->err_code && !strcmp(j->err_code, "interrupted");
		add_kept_time(b, ",\"finished_at\":", interrupted ? "" : finished);
		crd_buf_adds(b, ",\"error\":");
		if (j->state != CRUND_JOB_SUCCEEDED && j->err_code) {
			crd_buf_adds(b, "{\"code\":");
			crd_buf_add_jstr(b, j->err_code);
			crd_buf_adds(b, ",\"message\":");
			crd_buf_add_jstr(b, j->err_msg ? j->err_msg : j->err_code);
			crd_buf_addc(b, '}');
		} else {
			crd_buf_add(b, "null", 4);
		}
		if (j->store->shared && j->node) {
			crd_buf_adds(b, ",\"node\":");
			crd_buf_add_jstr(b, j->node);
		}
		crd_buf_adds(b, "}]");
	}
	crd_buf_addc(b, '}');
}

/* ------------------------------------------------------- shared store */

/* The record becomes a copy of a job held elsewhere (or queued in the
 * database): out of every list and count; subscribers stay. */
static void go_remote(crd_jobs *s, crd_jobrec *j)
{
	if (j->flags & CRUND_JF_REMOTE)
		return;
	if (j->flags & CRUND_JF_DIRTY)
		dirty_remove(s, j);
	s->n_state[j->state]--;
	j->flags |= CRUND_JF_REMOTE;
	j->cached_at = s->now();
	s->n_remote++;
	if (j->args && !j->task)
		crd_jobs_task_gone(j);
}

/* A shared submission committed: claimed at insert, it starts here;
 * otherwise it waits in the database for any node. */
static void shared_committed(crd_jobs *s, crd_jobrec *j, bool claimed)
{
	if (!claimed) {
		crd_jobs_announce(s, j); /* accepted, queued in the database */
		go_remote(s, j);
		return;
	}
	if (s->draining) {
		/* its row holds it for this node: give it back */
		j->node = s->node_id;
		j->flags &= (uint16_t)~CRUND_JF_CLAIMED;
		requeue(s, j, 0);
		s->n_retries--;
		return;
	}
	if (start_job(s, j) < 0) {
		j->flags &= (uint16_t)~CRUND_JF_CLAIMED;
		crd_jobs_finish(s, j, CRUND_JOB_FAILED, "internal",
				"the job could not be started (out of memory or coroutine stacks)");
	}
}

/* Forget REMOTE records nobody uses (a request reads one within a few
 * seconds of fetching it; subscribers keep theirs). */
#define REMOTE_KEEP 10.0

static void drop_remote(crd_jobs *s)
{
	double old = s->now() - REMOTE_KEEP;
	crd_jobrec *j = s->oldest;
	while (j && s->n_remote) {
		crd_jobrec *n = j->newer;
		if ((j->flags & CRUND_JF_REMOTE) && !j->subs && j->cached_at < old)
			job_forget(s, j);
		j = n;
	}
}

/* Take a row's fields into a REMOTE record (strings replaced). */
static int refresh_remote(crd_jobs *s, crd_jobrec *j, const crd_store_job *row)
{
	bool missing;
	int rc;
	crd_jobrec *f = rec_of_row(s, row, s->resolve, s->resolve_arg, &missing, &rc);
	if (!f)
		return rc < 0 ? rc : -EINVAL;
		/* swap the owned fields: f gets the old ones and is freed */
#define SWAP(field)                                 \
	do {                                        \
		__typeof__(j->field) t_ = j->field; \
		j->field = f->field;                \
		f->field = t_;                      \
	} while (0)
	SWAP(args);
	SWAP(args_json);
	SWAP(args_len);
	SWAP(result);
	SWAP(result_len);
	SWAP(err_code);
	SWAP(err_msg);
	SWAP(progress_msg);
	SWAP(log);
	SWAP(log_len);
	SWAP(log_cap);
	SWAP(attempts);
	SWAP(node);
#undef SWAP
	uint16_t owned = f->flags & CRUND_JF_NODE_OWNED;
	f->flags = (uint16_t)((f->flags & ~CRUND_JF_NODE_OWNED) | (j->flags & CRUND_JF_NODE_OWNED));
	j->flags = (uint16_t)((j->flags &
			       ~(CRUND_JF_NODE_OWNED | CRUND_JF_PROGRESS | CRUND_JF_LOG_TRUNC)) |
			      owned | (f->flags & (CRUND_JF_PROGRESS | CRUND_JF_LOG_TRUNC)));
	j->progress = f->progress;
	j->created_at = f->created_at;
	j->started_at = f->started_at;
	j->finished_at = f->finished_at;
	j->attempt = f->attempt;
	j->max_attempts = f->max_attempts;
	j->run_at = f->run_at;
	j->timeout = f->timeout;
	j->state = f->state;
	j->cached_at = s->now();
	job_free(s, f);
	return 0;
}

/* A stored log line (common/logline.h) to the job's subscribers as the
 * event the node that runs it sent. */
static void emit_stored_log_line(crd_jobrec *j, const char *line, size_t len)
{
	crd_log_line l;
	crd_buf e = CRUND_BUF_INIT;
	if (!crd_log_line_split(line, len, &l)) {
		crd_buf_adds(&e, "{\"message\":");
		crd_buf_add_jstrn(&e, line, len);
	} else {
		crd_buf_adds(&e, "{\"time\":");
		crd_buf_add_jstrn(&e, l.time, l.time_len);
		crd_buf_adds(&e, ",\"level\":");
		if (l.label_is_level) {
			crd_buf_add_jstrn(&e, l.label, l.label_len);
		} else {
			crd_buf_adds(&e, "\"info\",\"stream\":");
			crd_buf_add_jstrn(&e, l.label, l.label_len);
		}
		crd_buf_adds(&e, ",\"message\":");
		crd_buf_add_jstrn(&e, l.message, l.message_len);
	}
	crd_buf_addc(&e, '}');
	if (crd_buf_ok(&e))
		crd_jobs_emit(j, CRUND_EV_LOG, e.data, e.len);
	crd_buf_free(&e);
}

/* A remote job read again: its subscribers get the log lines and the
 * progress that came since the last read, as the node running it sent
 * them to its own (later: the log reaches the database in batches). */
static void emit_remote_news(crd_jobrec *j, size_t old_log, bool had_progress, double old_progress,
			     const char *old_msg)
{
	if (j->log && j->log_len > old_log) {
		const char *p = j->log + old_log, *end = j->log + j->log_len;
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
			emit_stored_log_line(j, p, n);
			p += n + 1;
		}
	}
	if ((j->flags & CRUND_JF_PROGRESS) &&
	    (!had_progress || j->progress != old_progress ||
	     strcmp(j->progress_msg ? j->progress_msg : "", old_msg ? old_msg : "") != 0))
		emit_progress(j);
}

crd_jobrec *crd_jobs_cache_row(crd_jobs *s, const crd_store_job *row)
{
	crd_jobrec *j = crd_jobs_find_seq(s, row->seq);
	if (j && !(j->flags & CRUND_JF_REMOTE))
		return j; /* held here: the record is the truth */
	if (j) {
		int old = j->state;
		size_t old_log = j->log ? j->log_len : 0;
		bool had_progress = (j->flags & CRUND_JF_PROGRESS) != 0;
		double old_progress = j->progress;
		char *old_msg = j->subs && j->progress_msg ? strdup(j->progress_msg) : NULL;
		if (refresh_remote(s, j, row) < 0) {
			free(old_msg);
			return j;
		}
		if (j->subs)
			emit_remote_news(j, old_log, had_progress, old_progress, old_msg);
		free(old_msg);
		if (j->subs && old != j->state) {
			if (!crd_job_state_ended(j->state)) {
				crd_jobs_emit(j, CRUND_EV_STATE, NULL, 0);
			} else {
				end_subs(j);
			}
		}
		return j;
	}
	if (s->count >= s->hsize && hash_grow(s) < 0)
		return NULL;
	bool missing;
	int rc;
	j = rec_of_row(s, row, s->resolve, s->resolve_arg, &missing, &rc);
	if (!j)
		return NULL;
	if (j->args && crd_job_state_ended(j->state) == false)
		crd_jobs_task_gone(j); /* it does not run here */
	j->flags |= CRUND_JF_REMOTE;
	j->cached_at = s->now();
	/* link_new counts by state: undo that for a REMOTE record */
	link_new(s, j);
	s->n_state[j->state]--;
	s->n_remote++;
	return j;
}

void crd_jobs_render_row(crd_jobs *s, crd_buf *b, const crd_store_job *row)
{
	crd_jobrec *j = crd_jobs_find_seq(s, row->seq);
	if (j && !(j->flags & CRUND_JF_REMOTE)) {
		crd_job_render(b, j); /* held here: fresher than the row */
		return;
	}
	bool missing;
	int rc;
	crd_jobrec *t = rec_of_row(s, row, s->resolve, s->resolve_arg, &missing, &rc);
	if (!t) {
		crd_buf_adds(b, "null");
		return;
	}
	crd_job_render(b, t);
	job_free(s, t);
}

/* --- what the store asks of this node */

static unsigned hook_free_slots(void *arg)
{
	crd_jobs *s = arg;
	size_t busy = s->n_state[CRUND_JOB_RUNNING] + s->n_claiming;
	if (s->draining || s->loading || busy >= s->lim.max_running)
		return 0;
	return (unsigned)(s->lim.max_running - busy);
}

static void hook_adopt(void *arg, const crd_store_job *row)
{
	crd_jobs *s = arg;
	crd_jobrec *j = crd_jobs_find_seq(s, row->seq);
	bool missing = false;
	int rc;
	if (j && (j->flags & CRUND_JF_UNCOMMITTED)) {
		/* this node's own submission, claimed by its claim round before
		 * the answer of the row's commit came back (another connection):
		 * it starts at that answer, as one claimed at insert.  It was
		 * left alone, and its lease ran out: the job never ran and ended
		 * interrupted (or ran again elsewhere). */
		if (!(j->flags & CRUND_JF_CLAIMED)) {
			j->flags |= CRUND_JF_CLAIMED;
			s->n_claiming++;
			s->n_claimed++;
			j->attempt = (uint16_t)(row->attempt ? row->attempt - 1 : 0);
			j->run_at = 0;
		}
		return;
	}
	if (j && !(j->flags & CRUND_JF_REMOTE))
		return; /* cannot be: a claim takes queued rows only */
	if (j) {
		/* a copy of it was cached: it becomes this node's */
		if (refresh_remote(s, j, row) < 0)
			return; /* its lease runs out; the elected node requeues it */
		if (!j->args && !(j->args = json_loads(j->args_json, 0, NULL)))
			return;
		j->flags &= (uint16_t)~CRUND_JF_REMOTE;
		s->n_remote--;
		missing = !j->spec->run;
	} else {
		if (s->count >= s->hsize && hash_grow(s) < 0)
			return;
		rehash_step(s, REHASH_STEP);
		if (!(j = rec_of_row(s, row, s->resolve, s->resolve_arg, &missing, &rc)))
			return;
		link_new(s, j);
		s->n_state[j->state]--; /* counted again below, as queued */
	}
	s->n_claimed++;
	/* the claim made it running, attempt and node set: start_job redoes
	 * that from queued without writing */
	j->state = CRUND_JOB_QUEUED;
	s->n_state[CRUND_JOB_QUEUED]++;
	j->attempt = (uint16_t)(row->attempt ? row->attempt - 1 : 0);
	j->run_at = 0;
	j->flags |= CRUND_JF_CLAIMED;
	if (missing || !j->spec->run) {
		char msg[200];
		snprintf(msg, sizeof(msg), "the plugin job %s/%s is not loaded on node %s",
			 row->plugin, row->job, s->node_id);
		j->flags &= (uint16_t)~CRUND_JF_CLAIMED;
		j->attempt++;
		j->node = s->node_id;
		set_state(s, j, CRUND_JOB_RUNNING);
		crd_jobs_finish(s, j, CRUND_JOB_FAILED, "plugin_missing", msg);
		return;
	}
	if (start_job(s, j) < 0) {
		j->flags &= (uint16_t)~CRUND_JF_CLAIMED;
		j->attempt++;
		j->node = s->node_id;
		set_state(s, j, CRUND_JOB_RUNNING);
		crd_jobs_finish(s, j, CRUND_JOB_FAILED, "internal",
				"the job could not be started (out of memory or coroutine stacks)");
	}
}

static size_t hook_held(void *arg, double since, uint64_t *out, size_t max)
{
	crd_jobs *s = arg;
	size_t n = 0;
	for (crd_jobrec *j = s->newest; j; j = j->older) {
		if (j->flags & CRUND_JF_REMOTE)
			continue;
		bool held = j->state == CRUND_JOB_RUNNING ||
			    (j->state == CRUND_JOB_QUEUED && (j->flags & CRUND_JF_CLAIMED)) ||
			    (crd_job_state_ended(j->state) && j->finished_at >= since);
		if (!held)
			continue;
		if (n < max)
			out[n] = j->seq;
		n++;
	}
	return n;
}

static void hook_cancel(void *arg, uint64_t seq)
{
	crd_jobs *s = arg;
	crd_jobrec *j = crd_jobs_find_seq(s, seq);
	if (j && !(j->flags & CRUND_JF_REMOTE) && j->state == CRUND_JOB_RUNNING)
		crd_jobs_cancel(s, j, "cancelled");
}

static size_t hook_watch_list(void *arg, uint64_t *out, size_t max)
{
	crd_jobs *s = arg;
	size_t n = 0;
	if (!s->n_remote)
		return 0;
	for (crd_jobrec *j = s->newest; j && n < max; j = j->older)
		if ((j->flags & CRUND_JF_REMOTE) && j->subs)
			out[n++] = j->seq;
	return n;
}

static void hook_changed(void *arg, const crd_store_job *row)
{
	crd_jobs *s = arg;
	crd_jobrec *j = crd_jobs_find_seq(s, row->seq);
	if (j && (j->flags & CRUND_JF_REMOTE))
		crd_jobs_cache_row(s, row);
}

/* This node wrote a job it no longer holds (its lease ran out while it
 * was paused or cut off; the job was requeued and may run elsewhere): a
 * running one is stopped, an ended one becomes a REMOTE copy, so what this
 * node answers comes from the database again. */
static void hook_fenced(void *arg, uint64_t seq)
{
	crd_jobs *s = arg;
	crd_jobrec *j = crd_jobs_find_seq(s, seq);
	if (!j || (j->flags & (CRUND_JF_REMOTE | CRUND_JF_UNCOMMITTED)))
		return;
	s->n_lease_fenced++;
	if (j->state == CRUND_JOB_RUNNING) {
		crd_jobs_cancel(s, j, "cancelled"); /* its end is fenced too, then dropped */
		return;
	}
	if (!crd_job_state_ended(j->state) || j->task)
		return;
	q_unlink(&s->e_head, &s->e_tail, j);
	go_remote(s, j);
	j->cached_at = 0; /* read again at the next request */
}

/* The commit of a submission left out for another node's job with its
 * key: the submission never existed here; it is answered with that job
 * (200), or 409 when the key was used for a different submission. */
static void duplicate_committed(crd_jobs *s, struct accept_wait *w, crd_jobrec *j)
{
	crd_jobrec *held;
	int rc = dup_answer(s, j->seq, &held);
	j->flags &= (uint16_t) ~(CRUND_JF_UNCOMMITTED | CRUND_JF_CLAIMED);
	s->n_submitted--;
	job_forget(s, j);
	if (rc == 1)
		s->n_idem_remote++;
	if (w->accepted)
		w->accepted(w->arg, held, rc);
	free(w);
}

/* A job deleted from the shared store (a DELETE on another node, the
 * elected node's retention): this node's ended copy of it goes too.  A
 * copy still in use (a task, a subscriber, an end not yet in the database)
 * is left to its own course. */
static void hook_gone(void *arg, uint64_t seq)
{
	crd_jobs *s = arg;
	crd_jobrec *j = crd_jobs_find_seq(s, seq);
	if (!j || j->task || j->subs || !crd_job_state_ended(j->state) ||
	    (j->flags & (CRUND_JF_UNCOMMITTED | CRUND_JF_DIRTY | CRUND_JF_END_UNSYNCED)))
		return;
	job_forget(s, j);
}

static void hook_queued(void *arg, uint64_t n)
{
	crd_jobs *s = arg;
	s->shared_queued = n;
	s->queued_since_count = 0;
}

static uint64_t hook_queue_cap(void *arg)
{
	return (uint64_t)((crd_jobs *)arg)->lim.max_queued + 1;
}

static void hook_warn(void *arg, const char *message)
{
	crd_jobs *s = arg;
	if (s->ops.warn)
		s->ops.warn(message, s->ops_data);
}

static const crd_store_node_hooks node_hooks = {
	.warn = hook_warn,
	.duplicate = hook_duplicate,
	.fenced = hook_fenced,
	.free_slots = hook_free_slots,
	.adopt = hook_adopt,
	.held = hook_held,
	.cancel = hook_cancel,
	.watch_list = hook_watch_list,
	.changed = hook_changed,
	.gone = hook_gone,
	.queued = hook_queued,
	.queue_cap = hook_queue_cap,
};

static int join_nodes(crd_jobs *s) { return crd_store_join(s->st, &node_hooks, s); }

void crd_jobs_leave(crd_jobs *s)
{
	if (s->shared)
		crd_store_leave(s->st);
}
