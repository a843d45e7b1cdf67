/*
 * events.c — GET /v1/events: one text/event-stream of every job's state
 * changes (docs/ARCHITECTURE.md §5.8), fed by the jobs module's watchers
 * and its ring of recent events (jobs/events.c), sent through the same
 * streamed answer, ping and slow-reader bound as a job's own stream
 * (stream.c).
 *
 * Filters: ?plugin=NAME and ?state=STATE, each repeatable and each value a
 * comma-separated list (?state=failed,cancelled&plugin=demo); a job event
 * passes when its plugin is one of the plugins named (if any) and its new
 * state one of the states named (if any).
 *
 * Resumption: `Last-Event-ID` (or ?last_event_id=, for clients that
 * cannot set headers) names the last event the client saw; the kept events
 * after it are replayed before the live ones.  When some of them have left
 * the window, or the id is not one of this process's (a restart), the
 * first event is a `reset`: the client missed events and should reload
 * what it shows (GET /v1/jobs), then carry on from the reset's id.  A
 * client that does not read gets the same treatment: past the stream's
 * bound events are dropped, and a `reset` follows once it has caught up,
 * instead of a silent hole.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

/* Filter values: at most this many names in all, each at most this long
 * (longer names match no plugin anyway). */
#define EVENTS_MAX_FILTERS 64
#define EVENTS_NAME_MAX    64

/* What a stream buffers of the window's events before it waits for the
 * client to read them: a replay (or a reader that fell behind) goes on
 * from the window as the client reads, instead of piling up. */
#define EVENTS_CHUNK ((size_t)64 << 10)

struct crd_api_events {
	crd_watch watch;
	crd_req *req;
	crd_jobs *jobs;
	unsigned states; /* bit per state; 0: all */
	bool lost;       /* events were dropped: a reset follows */
	bool bad;        /* a filter value was refused */
	bool behind;     /* replaying from the window, not live */
	uint64_t cursor; /* the last event passed: sent, or filtered out */
	uint64_t sent;   /* the last id written to the stream */
	size_t n_plugins;
	char plugins[EVENTS_MAX_FILTERS][EVENTS_NAME_MAX + 1];
};

static struct crd_api_events *of_watch(crd_watch *w)
{
	return (struct crd_api_events *)((char *)w - offsetof(struct crd_api_events, watch));
}

static bool wanted(const struct crd_api_events *ev, const crd_job_event *e)
{
	if (ev->states && !(ev->states & (1u << e->state)))
		return false;
	if (!ev->n_plugins)
		return true;
	for (size_t i = 0; i < ev->n_plugins; i++)
		if (!strcmp(ev->plugins[i], e->plugin))
			return true;
	return false;
}

static void add_id(struct crd_api_events *ev, uint64_t id)
{
	crd_buf *b = &crd_api_req_of(ev->req)->stream;
	char text[CRD_EVENT_ID_MAX];
	crd_jobs_event_id(ev->jobs, id, text);
	crd_buf_adds(b, "id: ");
	crd_buf_adds(b, text);
	crd_buf_addc(b, '\n');
	ev->sent = ev->cursor = id;
}

static void add_event(struct crd_api_events *ev, const crd_job_event *e)
{
	crd_buf *b = &crd_api_req_of(ev->req)->stream;
	add_id(ev, e->id);
	crd_buf_adds(b, "event: job\ndata: ");
	crd_buf_add(b, e->data, e->len);
	crd_buf_adds(b, "\n\n");
}

/* A `reset`: the events before it are incomplete; carry on from its id. */
static void add_reset(struct crd_api_events *ev, const char *reason, const char *last)
{
	crd_buf *b = &crd_api_req_of(ev->req)->stream;
	add_id(ev, crd_jobs_last_event(ev->jobs));
	crd_buf_adds(b, "event: reset\ndata: {\"reason\":\"");
	crd_buf_adds(b, reason);
	crd_buf_adds(b, "\",\"last_event_id\":");
	crd_buf_add_jstr(b, last);
	crd_buf_adds(b, "}\n\n");
	ev->behind = false;
}

static size_t pending(const struct crd_api_events *ev)
{
	const crd_api_req *a = crd_api_req_of(ev->req);
	return a->stream.len - a->stream_off;
}

static void on_job_event(crd_watch *w, const crd_job_event *e)
{
	struct crd_api_events *ev = of_watch(w);
	if (!e->data) {
		ev->lost = true; /* the jobs module ran out of memory */
	} else if (ev->lost || ev->behind) {
		/* a reset is owed, or the replay reaches this one from the window */
		if (!wanted(ev, e))
			return;
	} else if (!wanted(ev, e)) {
		/* filtered out: nothing to send, no wake-up, unless the client's
		 * last id is half a window behind: an id alone then moves it, or
		 * a reconnect would be told it missed events it never wanted */
		ev->cursor = e->id;
		if (e->id - ev->sent < ev->jobs->ev.window / 2)
			return;
	} else if (pending(ev) > EVENTS_CHUNK) {
		ev->behind = true; /* a slow reader: on from the window as it reads */
	} else {
		add_event(ev, e);
	}
	crd_http_resume(ev->req);
}

static bool replay_one(const crd_job_event *e, void *arg)
{
	struct crd_api_events *ev = arg;
	if (wanted(ev, e))
		add_event(ev, e);
	ev->cursor = e->id;
	return pending(ev) <= EVENTS_CHUNK;
}

/* Go on with a replay from the window, a chunk at a time. */
static void replay_more(struct crd_api_events *ev)
{
	int rc = crd_jobs_events_after(ev->jobs, ev->cursor, replay_one, ev);
	if (rc == -ESTALE)
		/* the client read too slowly to keep up with the window */
		add_reset(ev, "overflow", NULL);
	else if (rc == 0)
		ev->behind = false; /* caught up: live from here */
}

static ssize_t events_read(crd_req *r, char *buf, size_t max)
{
	crd_api_req *a = crd_api_req_of(r);
	struct crd_api_events *ev = a->events;
	if (ev && !a->stream_end) {
		if (ev->lost && !pending(ev)) {
			/* caught up after dropping events: say so before going on */
			ev->lost = false;
			add_reset(ev, "overflow", NULL);
		} else if (!ev->lost && ev->behind && pending(ev) <= EVENTS_CHUNK / 2) {
			replay_more(ev);
		}
		if (!ev->lost && !ev->behind && ev->cursor > ev->sent && !pending(ev)) {
			/* events filtered out since the last id: an id alone (an
			 * empty event) moves the client's last id past them */
			add_id(ev, ev->cursor);
			crd_buf_addc(&a->stream, '\n');
		}
	}
	return crd_api_stream_read(r, buf, max);
}

/* One ?plugin= value: a comma-separated list of plugin names.  (?state=
 * lists are crd_parse_state_mask's, as for GET /v1/jobs.) */
static void add_plugins(struct crd_api_events *ev, const char *v)
{
	while (*v) {
		size_t n = strcspn(v, ",");
		if (n == 0 || n > EVENTS_NAME_MAX || ev->n_plugins == EVENTS_MAX_FILTERS) {
			ev->bad = true;
			return;
		}
		memcpy(ev->plugins[ev->n_plugins], v, n);
		ev->plugins[ev->n_plugins++][n] = '\0';
		v += n;
		if (*v == ',' && !*++v) { /* "demo,": an empty last name */
			ev->bad = true;
			return;
		}
	}
}

static crd_mhd_result each_arg(void *cls, enum MHD_ValueKind kind, const char *key,
			       const char *value)
{
	struct crd_api_events *ev = cls;
	(void)kind;
	unsigned mask;
	if (!strcmp(key, "state")) {
		if (!value || crd_parse_state_mask(value, &mask) < 0)
			ev->bad = true;
		else
			ev->states |= mask;
	} else if (!strcmp(key, "plugin")) {
		if (!value || !*value)
			ev->bad = true;
		else
			add_plugins(ev, value);
	}
	return MHD_YES;
}

crd_mhd_result crd_api_events(crd_req *req, crd_jobs *jobs, double ping)
{
	crd_api_req *a = crd_api_req_of(req);
	struct crd_api_events *ev = calloc(1, sizeof(*ev));
	if (!ev)
		return crd_http_error(req, 500, "internal", NULL, "out of memory");
	ev->req = req;
	ev->jobs = jobs;
	ev->watch.on_event = on_job_event;
	a->events = ev;
	MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, each_arg, ev);
	if (ev->bad)
		return crd_http_error(req, 400, "invalid_parameter", NULL,
				      "'state' must list states (queued, running, succeeded, "
				      "failed, cancelled) and 'plugin' plugin names, each "
				      "repeatable or comma-separated, at most %d names of at "
				      "most %d bytes",
				      EVENTS_MAX_FILTERS, EVENTS_NAME_MAX);
	if (crd_jobs_watch(jobs, &ev->watch) < 0)
		return crd_http_error(req, 500, "internal", NULL, "out of memory");

	const char *last = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Last-Event-ID");
	if (!last || !*last)
		last = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
						   "last_event_id");
	a->phase = CRD_API_STREAM;
	uint64_t from;
	if (last && *last) {
		/* the events after it come from the window, a chunk at a time
		 * as the client reads (events_read goes on) */
		if (crd_jobs_event_parse(jobs, last, &from) < 0) {
			add_reset(ev, "unknown", last);
		} else {
			ev->sent = ev->cursor = from;
			ev->behind = true;
			int rc = crd_jobs_events_after(jobs, from, replay_one, ev);
			if (rc == -ESTALE)
				add_reset(ev, "window", last);
			else if (rc == 0)
				ev->behind = false;
		}
	} else {
		/* no event yet: the id alone (an empty event, which SSE clients
		 * take as their last id) lets a reconnect miss nothing */
		add_id(ev, crd_jobs_last_event(jobs));
		crd_buf_addc(&a->stream, '\n');
	}
	crd_api_stream_ping(req, ping);
	crd_resp_opts o = {.content_type = "text/event-stream; charset=utf-8", .no_cache = true};
	return crd_http_stream(req, 200, &o, events_read);
}

void crd_api_events_done(crd_req *req)
{
	crd_api_req *a = crd_api_req_of(req);
	if (!a->events)
		return;
	crd_jobs_unwatch(a->events->jobs, &a->events->watch);
	free(a->events);
	a->events = NULL;
}

void crd_api_events_close(crd_jobs *jobs)
{
	crd_watch *w = jobs->ev.watchers;
	while (w) {
		crd_watch *next = w->next;
		struct crd_api_events *ev = of_watch(w);
		crd_api_req *a = crd_api_req_of(ev->req);
		crd_jobs_unwatch(jobs, w);
		/* a stream still replaying names the last event it passed */
		add_id(ev, ev->behind || ev->lost ? ev->sent : crd_jobs_last_event(jobs));
		crd_buf_adds(&a->stream, "event: shutdown\ndata: {}\n\n");
		a->stream_end = true;
		if (a->timer) {
			cr_handle_cancel(a->timer);
			a->timer = cr_handle_unref(a->timer);
		}
		crd_http_resume(ev->req);
		w = next;
	}
}
