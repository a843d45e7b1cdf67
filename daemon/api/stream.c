/*
 * stream.c — GET /v1/jobs/{id}/events: a text/event-stream of a job's
 * events (docs/ARCHITECTURE.md §3.7), its body fed to the transport's
 * streamed answer (crd_http_stream); see api.h.
 */
#include "config.h"

#include <string.h>

#include "api/api.h"

static crd_api_req *of_sub(crd_sub *sub)
{
	return (crd_api_req *)((char *)sub - offsetof(crd_api_req, sub));
}

static crd_req *req_of(crd_api_req *a) { return (crd_req *)((char *)a - offsetof(crd_req, data)); }

static void add_job(crd_api_req *a, const char *event, const crd_jobrec *job)
{
	crd_buf_adds(&a->stream, "event: ");
	crd_buf_adds(&a->stream, event);
	crd_buf_adds(&a->stream, "\ndata: ");
	crd_job_render(&a->stream, job);
	crd_buf_adds(&a->stream, "\n\n");
}

/* The stream's last event: `end` with the ended job, or `shutdown` with a
 * job the close keeps queued for the next start (it has not ended: a
 * client reconnects after the restart to follow it on). */
static const char *end_event(const crd_jobrec *job)
{
	return crd_job_state_ended(job->state) ? "end" : "shutdown";
}

static void stream_event(crd_sub *sub, crd_jobrec *job, int ev, const char *data, size_t len)
{
	crd_api_req *a = of_sub(sub);
	bool full = a->stream.len - a->stream_off > CRD_API_STREAM_MAX_PENDING;
	switch (ev) {
	case CRUND_EV_STATE:
		if (!full)
			add_job(a, "state", job);
		break;
	case CRUND_EV_PROGRESS:
	case CRUND_EV_LOG:
		if (full)
			break;
		crd_buf_adds(&a->stream,
			     ev == CRUND_EV_LOG ? "event: log\ndata: " : "event: progress\ndata: ");
		crd_buf_add(&a->stream, data, len);
		crd_buf_adds(&a->stream, "\n\n");
		break;
	case CRUND_EV_END:
		if (a->owe_state)
			add_job(a, "state", job);
		add_job(a, end_event(job), job);
		a->stream_end = true;
		if (a->timer) {
			cr_handle_cancel(a->timer);
			a->timer = cr_handle_unref(a->timer);
		}
		break;
	}
	crd_http_resume(req_of(a));
}

/* An event stream with nothing to say sends an SSE comment every
 * --stream-ping seconds, so proxies keep the stream open, and a client
 * gone without a close the transport saw (no epoll, or a peer that
 * vanished without a FIN or a reset) is noticed when a write fails.  A
 * client that closes, with a FIN or a reset, is released at once by the
 * transport's watch of the suspended connection. */

static void stream_ping(void *arg)
{
	crd_req *r = arg;
	crd_api_req *a = crd_api_req_of(r);
	a->timer = cr_handle_unref(a->timer);
	if (a->stream_end)
		return;
	if (a->stream.len - a->stream_off <= CRD_API_STREAM_MAX_PENDING)
		crd_buf_adds(&a->stream, ": ping\n\n");
	if (cr_call_later(crd_http_loop(), a->ping, stream_ping, r, &a->timer) < 0)
		a->timer = NULL;
	crd_http_resume(r);
}

/* best effort: without pings a vanished client is noticed at the next
 * event (for a job's stream, at the latest its end) */
void crd_api_stream_ping(crd_req *r, double ping)
{
	crd_api_req *a = crd_api_req_of(r);
	a->ping = ping;
	if (cr_call_later(crd_http_loop(), ping, stream_ping, r, &a->timer) < 0)
		a->timer = NULL;
}

ssize_t crd_api_stream_read(crd_req *r, char *buf, size_t max)
{
	crd_api_req *a = crd_api_req_of(r);
	if (a->stream.oom)
		return CRD_HTTP_STREAM_ERROR;
	size_t avail = a->stream.len - a->stream_off;
	if (avail) {
		size_t n = avail < max ? avail : max;
		memcpy(buf, a->stream.data + a->stream_off, n);
		a->stream_off += n;
		if (a->stream_off == a->stream.len)
			a->stream.len = a->stream_off = 0;
		return (ssize_t)n;
	}
	if (a->stream_end)
		return CRD_HTTP_STREAM_END;
	return 0; /* the transport suspends until the next event */
}

crd_mhd_result crd_api_stream(crd_req *req, crd_jobrec *job, double ping)
{
	crd_api_req *a = crd_api_req_of(req);
	a->phase = CRD_API_STREAM;
	/* a job whose end is not durable yet starts its stream at the end */
	a->owe_state = (job->flags & CRUND_JF_END_UNSYNCED) != 0;
	if (!a->owe_state)
		add_job(a, "state", job);
	if (crd_job_settled(job) || crd_job_kept_for_next_start(job)) {
		/* ended, or kept queued for the next start by the close */
		add_job(a, end_event(job), job);
		a->stream_end = true;
	} else {
		memset(&a->sub, 0, sizeof(a->sub));
		a->sub.on_event = stream_event;
		crd_jobs_subscribe(job, &a->sub);
		crd_api_stream_ping(req, ping);
	}
	crd_resp_opts o = {.content_type = "text/event-stream; charset=utf-8", .no_cache = true};
	return crd_http_stream(req, 200, &o, crd_api_stream_read);
}
