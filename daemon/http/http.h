/*
 * http.h — libmicrohttpd driven from the runner's loop.
 *
 * One MHD daemon per listening socket, each started without an internal
 * thread (MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME); its epoll fd is a
 * persistent libevent read event on the loop's base and its timeout a
 * libevent timer re-armed from MHD_get_timeout() after EVERY MHD_run
 * (otherwise connections hang: systemd #7130).  No per-wait event
 * registration, so the hot path makes no syscalls beyond MHD's own.
 *
 * The layer above (api/) registers a handler table at start; the transport
 * offers it building blocks and knows nothing of routes or jobs: answers
 * from the request's own buffer, deferral (ask again on MHD's next run),
 * suspend/resume, holding until a release, and streamed bodies.  Resuming
 * does not wake the loop (no ITC without an internal thread), so every
 * resume schedules an MHD_run on the loop soon after (crd_http_kick).
 */
#ifndef CRUND_HTTP_H
#define CRUND_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <microhttpd.h>

#include "buf.h"
#include "crunner.h"

#if MHD_VERSION >= 0x00097002
typedef enum MHD_Result crd_mhd_result;
#else
typedef int crd_mhd_result;
#endif

typedef struct crd_http crd_http;
typedef struct crd_req crd_req;

/* A streamed answer's body, fed by the layer above (crd_http_stream):
 * copy up to max bytes into buf and return how many; 0 when there is
 * nothing to send now (the transport suspends the connection until
 * crd_http_resume), CRD_HTTP_STREAM_END at the end, CRD_HTTP_STREAM_ERROR
 * to cut the connection. */
typedef ssize_t (*crd_http_reader)(crd_req *req, char *buf, size_t max);
#define CRD_HTTP_STREAM_END   ((ssize_t)-1)
#define CRD_HTTP_STREAM_ERROR ((ssize_t)-2)

/* Why a connection was refused (a 503 written at the accept). */
enum {
	CRD_HTTP_REFUSED_LIMIT,  /* --max-connections (+ the Unix reserve) */
	CRD_HTTP_REFUSED_CLIENT, /* --max-connections-per-client */
	CRD_HTTP_REFUSED_FDS,    /* accept failed: out of fds or memory */
	CRD_HTTP_REFUSED_N
};
/* Which deadline closed a connection. */
enum {
	CRD_HTTP_TIMEOUT_HEADER, /* --header-timeout */
	CRD_HTTP_TIMEOUT_BODY,   /* --body-timeout */
	CRD_HTTP_TIMEOUT_IDLE,   /* --idle-timeout, a keep-alive request line */
	CRD_HTTP_TIMEOUT_N
};

/* The transport's counters, read by /metrics. */
typedef struct crd_http_stats {
	uint64_t status[600]; /* answers by status code */
	uint64_t refused[CRD_HTTP_REFUSED_N];
	uint64_t timeouts[CRD_HTTP_TIMEOUT_N];
	size_t connections; /* open now */
	size_t held;        /* suspended long-polls and streams */
} crd_http_stats;

/* Per-request state (MHD's con_cls), the transport's only: pooled, and
 * zeroed (with the area of the layer above) for every request.  The layer
 * above keeps its own state in the area after it (crd_http_data), sized by
 * its handler table, as nginx's modules keep theirs in a request's ctx. */
struct crd_req {
	struct MHD_Connection *conn;
	struct crd_http_conn *hc; /* http.c's state of the connection */
	crd_buf body;
	uint8_t mode; /* RQ_* (http.c) */
	bool suspended;
	uint8_t asks;      /* held: MHD runs it was asked again while deferred */
	uint8_t idle_asks; /* held: of them, runs after one that did nothing else */
	unsigned status;   /* answered status (metrics) */
	/* The answer's body.  MHD sends it from here without a copy (the
	 * request outlives its answer), and the buffers stay with a pooled
	 * request for the next one. */
	crd_buf out;
	crd_req *snext, *sprev;         /* suspended requests; the pool's list */
	struct crd_hold_ticket *ticket; /* held: who will release it */
	/* a streamed answer (crd_http_stream) */
	crd_http_reader reader;
	/* suspended without a hold (a long-poll, a stream): the peer's close,
	 * a FIN or a reset, resumes it (peer_gone), as MHD does not watch a
	 * suspended socket */
	struct event *gone_ev;
	bool peer_gone;
	max_align_t data[]; /* the layer above's area (crd_http_data) */
};

/* A held request's link to whoever will release it: the request clears
 * `req` when it goes away first (client gone), so a late release finds
 * nothing to answer. */
struct crd_hold_ticket {
	crd_req *req;
};

/* Extra answer headers. */
typedef struct crd_resp_opts {
	const char *content_type; /* NULL: application/json; charset=utf-8 */
	const char *location;     /* Location, or NULL */
	const char *allow;        /* Allow (405), or NULL */
	int retry_after;          /* seconds, 0: none */
	bool no_cache;            /* Cache-Control: no-cache, X-Accel-Buffering: no */
	/* more headers: name, value, name, value, ..., NULL (borrowed), or NULL */
	const char *const *headers;
} crd_resp_opts;

/* What the transport is told at start: where to listen, its limits. */
typedef struct crd_http_opts {
	cr_loop *loop;
	char **listen; /* n_listen "HOST:PORT" / "unix:PATH" (borrowed) */
	size_t n_listen;
	int n_listen_fds;  /* > 0: socket activation, fds 3.. instead */
	const char *token; /* set: may listen beyond loopback */
	size_t max_body;
	unsigned max_connections;
	unsigned max_client_conns; /* 0: half of max_connections */
	unsigned unix_reserve;
	unsigned idle_timeout;               /* s, whole (MHD's connection timeout) */
	double header_timeout, body_timeout; /* s */
} crd_http_opts;

/* What the transport asks of the layer above it (the API), registered at
 * start as nginx's modules register handlers with its HTTP core: the
 * transport knows no route, no job, no long-poll. */
typedef struct crd_http_handlers {
	/* Bytes of the layer's own per-request area (crd_http_data), zeroed
	 * for every request. */
	size_t req_size;
	/* A request's head has arrived.  Answer now (crd_http_error: 404,
	 * 401, 405...; MHD closes the connection after an answer this
	 * early), or return MHD_YES without answering to have the body read
	 * and `handle` called. */
	crd_mhd_result (*head)(crd_req *req, const char *method, const char *url);
	/* The request with its whole body in req->body.  Answer, or leave it
	 * unanswered with crd_http_defer, crd_http_suspend or crd_http_hold:
	 * `again` is called later. */
	crd_mhd_result (*handle)(crd_req *req);
	/* A request left unanswered is asked again: deferred, on MHD's next
	 * run; suspended or held, once resumed or released; and when the
	 * transport stops (crd_http_stopping() true: answer now, nothing may
	 * wait any more). */
	crd_mhd_result (*again)(crd_req *req);
	/* The request is over (answered and sent, or its client went away):
	 * let go of whatever the area holds.  May be NULL. */
	void (*done)(crd_req *req);
} crd_http_handlers;

/* Start listening on every configured address (or the inherited
 * socket-activation fds).  o and hd are copied (o's strings borrowed for
 * the transport's life).  -EINVAL after logging when an address is
 * refused (beyond loopback without a token: a configuration error). */
int crd_http_start(const crd_http_opts *o, const crd_http_handlers *hd, crd_http **ret);
/* Resume every suspended request (answers go out), then stop and free. */
void crd_http_stop(crd_http *h);
/* Suspended long-polls and streams still open. */
size_t crd_http_suspended(const crd_http *h);
/* A copy of the counters into *ret. */
void crd_http_get_stats(const crd_http *h, crd_http_stats *ret);
/* Schedule an MHD_run of every daemon on the loop soon. */
void crd_http_kick(void);
/* The listening addresses as "http://HOST:PORT" / "unix:PATH" (for logs
 * and /v1/info), a NULL-terminated static array. */
const char *const *crd_http_urls(const crd_http *h);

/* The answer's body buffer, emptied: build the body here, then send it
 * with crd_http_send. */
crd_buf *crd_http_out(crd_req *req);
/* Answer with req->out (500 when building it ran out of memory). */
crd_mhd_result crd_http_send(crd_req *req, unsigned status, const crd_resp_opts *o);
/* Answer with a copy of body (len 0: no body). */
crd_mhd_result crd_http_respond(crd_req *req, unsigned status, const char *body, size_t len,
				const crd_resp_opts *o);
/* Queue a JSON error {"error":{"code","message"}}. */
crd_mhd_result crd_http_error(crd_req *req, unsigned status, const char *code,
			      const crd_resp_opts *o, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* The layer above's area of req (handlers.req_size bytes). */
static inline void *crd_http_data(crd_req *req) { return req->data; }
/* The transport's loop (for the layer above's timers). */
cr_loop *crd_http_loop(void);
/* crd_http_stop runs: nothing may be deferred or suspended any more. */
bool crd_http_stopping(void);

/* Leave the request unanswered and have `again` called on MHD's next run,
 * without suspending: MHD keeps such a connection on its ready list (a
 * timeout of 0), so the loop runs it at its next poll.  For an answer
 * expected within a loop turn or two (no epoll_ctl pair, no timer). */
crd_mhd_result crd_http_defer(crd_req *req);
/* Leave the request unanswered and suspend its connection (no reads, no
 * timeout, no disconnect noticed) until crd_http_resume. */
crd_mhd_result crd_http_suspend(crd_req *req);
/* Have `again` called soon: a suspended request is resumed, a deferred
 * one asked again at MHD's next run.  Only for a request still open
 * (the layer above lets go of it in `done`). */
void crd_http_resume(crd_req *req);
/* Leave the request unanswered until crd_http_release(ticket), for a
 * releaser that may outlive the request (the client may go first:
 * ticket->req is then NULL).  The request stays deferred while MHD's runs
 * have other work (a store commit usually ends within a loop turn or two
 * under load), and is suspended once a run had none: a quick release costs
 * no epoll_ctl pair, and an idle loop does not turn for the request.  The ticket is owned by the caller that releases it: free it
 * after the release, or when ticket->req is NULL. */
crd_mhd_result crd_http_hold(crd_req *req, struct crd_hold_ticket *ticket);
void crd_http_release(struct crd_hold_ticket *ticket);
/* Answer with a body of unknown length fed by reader (status, o's
 * headers; o->content_type required).  The reader runs when MHD can send;
 * when it has nothing it returns 0 and the connection is suspended until
 * crd_http_resume.  At stop, the transport resumes it once more. */
crd_mhd_result crd_http_stream(crd_req *req, unsigned status, const crd_resp_opts *o,
			       crd_http_reader reader);

#endif
