/*
 * api.h — the HTTP API v1 (docs/ARCHITECTURE.md §5) above the transport:
 * its handler table, its per-request state (kept in the transport's
 * opaque area of each request), and the long-poll (wait.c) and event
 * stream (stream.c) semantics built on the transport's deferral,
 * suspend/resume and streamed answers.
 */
#ifndef CRUND_API_H
#define CRUND_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http/http.h"
#include "http/route.h"
#include "jobs/jobs.h"

/* What `again` continues (crd_api_req.phase). */
enum {
	CRD_API_NONE,
	CRD_API_HELD,       /* a submission waiting for its commit */
	CRD_API_ACCEPTED,   /* ... committed (or failed): accept_rc */
	CRD_API_WAIT,       /* a long-poll, deferred or parked */
	CRD_API_STREAM,     /* an event stream */
	CRD_API_FETCH,      /* shared store: reading a job held elsewhere */
	CRD_API_FETCHED,    /* ... read (or failed): accept_rc */
	CRD_API_LISTED,     /* shared store: a list read (rendered in `stream`) */
	CRD_API_DELETING,   /* a DELETE waiting for its commit */
	CRD_API_DELETED,    /* ... committed (or failed): accept_rc */
	CRD_API_CANCELLING, /* a running job's cancel waiting for its commit */
	CRD_API_CANCELLED,  /* ... committed (or failed): accept_rc */
};

/* The API's state of one request: the transport's area of it
 * (crd_http_data), zeroed for every request. */
typedef struct crd_api_req {
	crd_route_match rm;  /* the route; rm.param: the job id (Location) */
	uint8_t phase;       /* CRD_API_* */
	int accept_rc;       /* the commit's result (CRD_API_ACCEPTED, _DELETED, _CANCELLED) */
	bool remote;         /* a cancel of a job held elsewhere (shared store) */
	double wait_seconds; /* ?wait of a held submission */
	/* long-poll and event stream */
	crd_sub sub;
	cr_handle *timer;
	/* long-poll */
	bool ready;         /* the answer is rendered in the request's out */
	bool parked;        /* suspended, with its timer */
	uint8_t early_asks; /* asks while its job was about to end */
	unsigned status;    /* the answer's status */
	bool location;      /* add Location: /v1/jobs/{rm.param} */
	bool keep_out;      /* the answer is rendered already (a list): wait, then send it */
	/* its job's end is not committed (its store, for the cause): 503,
	 * not the end */
	crd_store *unsettled_st;
	/* event stream */
	double ping; /* s between SSE comments */
	crd_buf stream;
	size_t stream_off;
	bool stream_end;
	bool owe_state;                /* its first `state` is sent with the end (unsettled end) */
	struct crd_api_events *events; /* GET /v1/events (events.c), owned */
} crd_api_req;

/* A client that does not read does not get to grow our memory: past this
 * many unread bytes of an event stream, events are dropped (a job's `end`
 * never; /v1/events says so with a `reset`). */
#define CRD_API_STREAM_MAX_PENDING ((size_t)1 << 20)

/* A plain GET of a job whose end is not durable yet waits at most this
 * long for its commit (the store then fails: the answer tells the end). */
#define CRD_API_SETTLE_WAIT 5.0

static inline crd_api_req *crd_api_req_of(crd_req *req) { return crd_http_data(req); }

/* api.c: the v1 API's handlers (crd_http_start). */
extern const crd_http_handlers crd_api_handlers;

/* wait.c: answer `status` with the job (Location when `location`) once
 * it ends or `seconds` pass, whichever first (the job's state then; at
 * once when it has ended already or the transport stops); with
 * keep_out set, with the request's out as rendered before.  The
 * request is first deferred, parked (suspended, with a timer) only when
 * its job is not about to end. */
crd_mhd_result crd_api_wait(crd_req *req, crd_jobrec *job, double seconds, unsigned status,
			    bool location);
/* wait.c: `again` for a long-poll (phase CRD_API_WAIT). */
crd_mhd_result crd_api_wait_again(crd_req *req);

/* stream.c: answer with a text/event-stream of the job's events: its
 * state now, then state/progress/log events, then `end`; an SSE comment
 * every `ping` seconds while nothing happens. */
crd_mhd_result crd_api_stream(crd_req *req, crd_jobrec *job, double ping);

/* stream.c: the streamed answer's reader over a->stream (the transport
 * suspends while it is empty; the end once a->stream_end and drained),
 * and the keep-alive comment every `ping` seconds. */
ssize_t crd_api_stream_read(crd_req *req, char *buf, size_t max);
void crd_api_stream_ping(crd_req *req, double ping);

/* events.c: answer with a text/event-stream of every job's state changes
 * (query: plugin, state, last_event_id; header Last-Event-ID). */
crd_mhd_result crd_api_events(crd_req *req, crd_jobs *jobs, double ping);
/* events.c: let go of the request's watch (from crd_api_req_done). */
void crd_api_events_done(crd_req *req);
/* events.c: end every /v1/events stream with a `shutdown` event (the
 * graceful close, once every job has its final state). */
void crd_api_events_close(crd_jobs *jobs);

/* ui.c: GET /ui/{name}: one of the dashboard's files ("": a redirect to
 * /ui/). */
crd_mhd_result crd_api_ui(crd_req *req, const char *name);

/* wait.c: the request is over: unsubscribe, cancel the timer, free the
 * stream buffer (the handler table's `done`). */
void crd_api_req_done(crd_req *req);

#endif
