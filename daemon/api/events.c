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

struct crd_api_events {
	crd_watch watch;
	crd_req *req;
	crd_jobs *jobs;
	unsigned states; /* bit per state; 0: all */
	bool lost;       /* events were dropped: a reset follows */
	bool bad;        /* a filter value was refused */
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

static void add_id(crd_buf *b, crd_jobs *jobs, uint64_t id)
{
	char text[CRD_EVENT_ID_MAX];
	crd_jobs_event_id(jobs, id, text);
	crd_buf_adds(b, "id: ");
	crd_buf_adds(b, text);
	crd_buf_addc(b, '\n');
}

static void add_event(crd_buf *b, crd_jobs *jobs, const crd_job_event *e)
{
	add_id(b, jobs, e->id);
	crd_buf_adds(b, "event: job\ndata: ");
	crd_buf_add(b, e->data, e->len);
	crd_buf_adds(b, "\n\n");
}

/* A `reset`: the events before it are incomplete; carry on from its id. */
static void add_reset(crd_buf *b, crd_jobs *jobs, const char *reason, const char *last)
{
	add_id(b, jobs, crd_jobs_last_event(jobs));
	crd_buf_adds(b, "event: reset\ndata: {\"reason\":\"");
	crd_buf_adds(b, reason);
	crd_buf_adds(b, "\",\"last_event_id\":");
	crd_buf_add_jstr(b, last);
	crd_buf_adds(b, "}\n\n");
}

static void on_job_event(crd_watch *w, const crd_job_event *e)
{
	struct crd_api_events *ev = of_watch(w);
	crd_api_req *a = crd_api_req_of(ev->req);
	if (!e->data) {
		ev->lost = true; /* the jobs module ran out of memory */
	} else if (!wanted(ev, e)) {
		return; /* filtered out: nothing to send, no wake-up */
	} else if (a->stream.len - a->stream_off > CRD_API_STREAM_MAX_PENDING) {
		ev->lost = true;
	} else if (!ev->lost) {
		add_event(&a->stream, ev->jobs, e);
	}
	crd_http_resume(ev->req);
}

static void replay_one(const crd_job_event *e, void *arg)
{
	struct crd_api_events *ev = arg;
	crd_api_req *a = crd_api_req_of(ev->req);
	if (!wanted(ev, e))
		return;
	if (a->stream.len - a->stream_off > CRD_API_STREAM_MAX_PENDING)
		ev->lost = true;
	else if (!ev->lost)
		add_event(&a->stream, ev->jobs, e);
}

static ssize_t events_read(crd_req *r, char *buf, size_t max)
{
	crd_api_req *a = crd_api_req_of(r);
	struct crd_api_events *ev = a->events;
	if (ev && ev->lost && a->stream.len == a->stream_off && !a->stream_end) {
		/* caught up after dropping events: say so before going on */
		ev->lost = false;
		add_reset(&a->stream, ev->jobs, "overflow", NULL);
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
	if (last && *last) {
		int rc = crd_jobs_events_since(jobs, last, replay_one, ev);
		if (rc < 0) {
			a->stream.len = a->stream_off = 0;
			ev->lost = false;
			add_reset(&a->stream, jobs, rc == -ESTALE ? "window" : "unknown", last);
		}
	} else {
		/* no event yet: the id alone (an empty event, which SSE clients
		 * take as their last id) lets a reconnect miss nothing */
		add_id(&a->stream, jobs, crd_jobs_last_event(jobs));
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
		add_id(&a->stream, jobs, crd_jobs_last_event(jobs));
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
