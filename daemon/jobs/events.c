/*
 * events.c — every job's state changes as one numbered event stream
 * (docs/ARCHITECTURE.md §3.9); see jobs.h.
 *
 * jobs.c calls crd_jobs_announce() where it decides a transition (a job
 * created, started, queued again for a retry, ended).  Each event is
 * rendered once, as a job summary, into a slot of a ring of the last
 * `window` events, and handed to every watcher (the GET /v1/events
 * streams).  A client that reconnects names the last event it saw; the
 * events after it are replayed from the ring, or, when some have left the
 * window, the client is told it missed events (-ESTALE) and reloads.
 *
 * The ring is allocated, and events kept, from the first watch on: a
 * daemon nobody watches renders nothing per transition.  Slots keep their
 * buffers, so a busy daemon with watchers allocates only while summaries
 * grow.  Ids are "EPOCH-N": N counts from 1 in this process and EPOCH is
 * random per process, so an id from before a restart is recognised as
 * foreign instead of being mistaken for a recent one.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>

#include "jobs/jobs.h"

struct crd_event_slot {
	uint64_t id;
	int state;
	size_t plugin_off; /* the plugin's name, after the summary's NUL */
	crd_buf text;      /* summary NUL plugin NUL; the buffer is reused */
};

void crd_jobs_events_window(crd_jobs *s, size_t window)
{
	if (!s->ev.ring && window >= 1 && window <= CRD_EVENTS_WINDOW_MAX)
		s->ev.window = window;
}

static void make_epoch(crd_job_events *e)
{
	uint32_t r = 0;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		r = (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec ^ ((uint32_t)getpid() << 12);
	}
	snprintf(e->epoch, sizeof(e->epoch), "%08" PRIx32, r);
}

int crd_jobs_watch(crd_jobs *s, crd_watch *w)
{
	crd_job_events *e = &s->ev;
	if (!e->ring) {
		if (!e->window)
			e->window = CRD_EVENTS_WINDOW_DEFAULT;
		e->ring = calloc(e->window, sizeof(*e->ring));
		if (!e->ring)
			return -ENOMEM;
		if (!e->epoch[0])
			make_epoch(e);
		e->active = true;
	}
	w->prev = NULL;
	w->next = e->watchers;
	if (e->watchers)
		e->watchers->prev = w;
	e->watchers = w;
	w->linked = true;
	return 0;
}

void crd_jobs_unwatch(crd_jobs *s, crd_watch *w)
{
	if (!w->linked)
		return;
	if (w->prev)
		w->prev->next = w->next;
	else
		s->ev.watchers = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->next = w->prev = NULL;
	w->linked = false;
}

uint64_t crd_jobs_last_event(const crd_jobs *s) { return s->ev.last_id; }

void crd_jobs_event_id(const crd_jobs *s, uint64_t id, char out[CRD_EVENT_ID_MAX])
{
	snprintf(out, CRD_EVENT_ID_MAX, "%s-%" PRIu64, s->ev.epoch, id);
}

static void slot_event(const struct crd_event_slot *sl, crd_job_event *ev)
{
	ev->id = sl->id;
	ev->state = sl->state;
	ev->data = sl->text.data;
	ev->len = sl->plugin_off - 1;
	ev->plugin = sl->text.data + sl->plugin_off;
}

int crd_jobs_event_parse(const crd_jobs *s, const char *text, uint64_t *ret_id)
{
	const crd_job_events *e = &s->ev;
	size_t el = strlen(e->epoch);
	if (!e->active || !text || strncmp(text, e->epoch, el) || text[el] != '-')
		return -EINVAL;
	const char *n = text + el + 1;
	char *end;
	if (*n < '0' || *n > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long id = strtoull(n, &end, 10);
	if (errno || *end || id > e->last_id)
		return -EINVAL;
	*ret_id = id;
	return 0;
}

int crd_jobs_events_after(const crd_jobs *s, uint64_t id,
			  bool (*fn)(const crd_job_event *ev, void *arg), void *arg)
{
	const crd_job_events *e = &s->ev;
	/* the oldest kept event must directly follow `id`, or be older; the
	 * kept ids are consecutive, so the one after `id` is found at once */
	uint64_t oldest = e->n ? e->ring[e->head].id : e->last_id + 1;
	if (id + 1 < oldest)
		return -ESTALE;
	for (uint64_t i = id + 1 - oldest; i < e->n; i++) {
		crd_job_event ev;
		slot_event(&e->ring[(e->head + i) % e->window], &ev);
		if (!fn(&ev, arg))
			return 1;
	}
	return 0;
}

struct since_arg {
	void (*fn)(const crd_job_event *ev, void *arg);
	void *arg;
};

static bool since_one(const crd_job_event *ev, void *arg)
{
	struct since_arg *a = arg;
	a->fn(ev, a->arg);
	return true;
}

int crd_jobs_events_since(const crd_jobs *s, const char *last,
			  void (*fn)(const crd_job_event *ev, void *arg), void *arg)
{
	uint64_t id;
	struct since_arg a = {fn, arg};
	if (crd_jobs_event_parse(s, last, &id) < 0)
		return -EINVAL;
	return crd_jobs_events_after(s, id, since_one, &a);
}

static void add_time(crd_buf *b, const char *key, double t)
{
	crd_buf_adds(b, key);
	if (t <= 0) {
		crd_buf_adds(b, "null");
		return;
	}
	char ts[40];
	crd_format_time(t, ts, sizeof(ts));
	crd_buf_addc(b, '"');
	crd_buf_adds(b, ts);
	crd_buf_addc(b, '"');
}

/* The summary: what a list of jobs shows, nothing that grows with the
 * job (args, result, log, progress). */
static void render_summary(crd_buf *b, const crd_jobrec *j)
{
	crd_buf_adds(b, "{\"id\":");
	crd_buf_add_jstr(b, j->id);
	crd_buf_adds(b, ",\"plugin\":");
	crd_buf_add_jstr(b, j->plugin->desc->name);
	crd_buf_adds(b, ",\"job\":");
	crd_buf_add_jstr(b, j->spec->name);
	crd_buf_addf(b, ",\"state\":\"%s\",\"attempt\":%u,\"max_attempts\":%u,\"error\":",
		     crd_job_state_name(j->state), (unsigned)j->attempt, (unsigned)j->max_attempts);
	if (j->err_code &&
	    (crd_job_state_ended(j->state) || (j->state == CRUND_JOB_QUEUED && j->attempt > 0))) {
		crd_buf_adds(b, "{\"code\":");
		crd_buf_add_jstr(b, j->err_code);
		crd_buf_addc(b, '}');
	} else {
		crd_buf_adds(b, "null");
	}
	add_time(b, ",\"created_at\":", j->created_at);
	add_time(b, ",\"started_at\":", j->started_at);
	add_time(b, ",\"finished_at\":", j->finished_at);
	add_time(b, ",\"run_at\":", j->state == CRUND_JOB_QUEUED ? j->run_at : 0);
	if (j->retry_of) {
		crd_buf_adds(b, ",\"retry_of\":");
		crd_buf_add_jstr(b, j->retry_of);
	}
	if (j->idem_key) {
		crd_buf_adds(b, ",\"idempotency_key\":");
		crd_buf_add_jstr(b, j->idem_key);
	}
	crd_buf_addc(b, '}');
}

void crd_jobs_announce(crd_jobs *s, const crd_jobrec *j)
{
	crd_job_events *e = &s->ev;
	if (!e->active)
		return;
	/* the slot after the newest; a full ring overwrites its oldest */
	size_t at = (e->head + e->n) % e->window;
	if (e->n == e->window)
		e->head = (e->head + 1) % e->window;
	else
		e->n++;
	struct crd_event_slot *sl = &e->ring[at];
	sl->text.len = 0;
	sl->text.oom = false;
	render_summary(&sl->text, j);
	crd_buf_addc(&sl->text, '\0');
	sl->plugin_off = sl->text.len;
	crd_buf_adds(&sl->text, j->plugin->desc->name);
	crd_buf_addc(&sl->text, '\0');
	sl->id = ++e->last_id;
	sl->state = j->state;
	crd_job_event ev = {.id = sl->id, .state = j->state};
	if (crd_buf_ok(&sl->text)) {
		slot_event(sl, &ev);
	} else {
		/* out of memory: the window is forgotten (a client resuming from
		 * before now is told it missed events) and the watchers get an
		 * event without data, which tells them the same */
		e->n = e->head = 0;
	}
	crd_watch *w = e->watchers;
	while (w) {
		crd_watch *next = w->next; /* w may unwatch itself */
		w->on_event(w, &ev);
		w = next;
	}
}

void crd_jobs_events_free(crd_jobs *s)
{
	crd_job_events *e = &s->ev;
	if (e->ring)
		for (size_t i = 0; i < e->window; i++)
			crd_buf_free(&e->ring[i].text);
	free(e->ring);
	e->ring = NULL;
	e->n = e->head = 0;
	e->watchers = NULL;
	e->active = false;
}
