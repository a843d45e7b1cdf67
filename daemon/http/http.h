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
 * Long-polls and event streams suspend their connection.  Resuming does
 * not wake the loop (no ITC without an internal thread), so every resume
 * schedules an MHD_run on the loop soon after (crd_http_kick).
 */
#ifndef CRUND_HTTP_H
#define CRUND_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <microhttpd.h>

#include "buf.h"
#include "jobs/jobs.h"
#include "http/route.h"

#if MHD_VERSION >= 0x00097002
typedef enum MHD_Result crd_mhd_result;
#else
typedef int crd_mhd_result;
#endif

typedef struct crd_req crd_req;

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

/* Per-request state (MHD's con_cls), freed when MHD completes it. */
struct crd_req {
	struct MHD_Connection *conn;
	struct crd_http_conn *hc; /* http.c's state of the connection */
	crd_route_match rm;       /* the API's (api.c routes, the wait's Location) */
	crd_buf body;
	uint8_t mode; /* RQ_* (http.c) */
	bool suspended;
	bool too_large;
	unsigned status; /* answered status (metrics) */
	/* long-poll */
	crd_sub sub;
	cr_handle *timer;
	double wait_seconds;
	bool deferred;      /* asked again on MHD's next run (http.c) */
	uint8_t early_asks; /* asks while its job was about to end */
	unsigned pending_status;
	bool pending_location; /* add Location: /v1/jobs/{rm.param} */
	/* The answer's body.  MHD sends it from here without a copy (the
	 * request outlives its answer), and the buffers stay with a pooled
	 * request for the next one. */
	crd_buf out;
	/* event stream */
	crd_buf stream;
	size_t stream_off;
	bool stream_end;
	crd_req *snext, *sprev; /* suspended requests */
	/* a submission waiting for its commit (api.c) */
	struct crd_hold_ticket *ticket;
	int accept_rc;
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
	unsigned idle_timeout, header_timeout, body_timeout; /* s */
	double stream_ping;                                  /* s */
} crd_http_opts;

/* What the transport asks of the layer above it (the API), registered at
 * start as nginx's modules register handlers with its HTTP core: the
 * transport knows no route. */
typedef struct crd_http_handlers {
	/* A request's head has arrived.  Answer now (crd_http_error: 404,
	 * 401, 405...; MHD closes the connection after an answer this
	 * early), or return MHD_YES without answering to have the body read
	 * and `handle` called. */
	crd_mhd_result (*head)(crd_req *req, const char *method, const char *url);
	/* The request with its whole body in req->body. */
	crd_mhd_result (*handle)(crd_req *req);
	/* A request held with crd_http_hold was released: answer it now. */
	crd_mhd_result (*resume)(crd_req *req);
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

/* Queue an answer; takes body (malloc'd, may be NULL when len is 0). */
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
/* Hold the answer until the job ends or `seconds` pass, then answer
 * `status` with the job (Location when `location`). */
crd_mhd_result crd_http_wait(crd_req *req, crd_jobrec *job, double seconds, unsigned status,
			     bool location);
/* Hold the answer (suspend) until crd_http_release: the handler then runs
 * crd_api_resume(req).  The request's ticket is set (owned by the caller
 * that releases it: free it after release, or when ticket->req is NULL). */
crd_mhd_result crd_http_hold(crd_req *req, struct crd_hold_ticket *ticket);
void crd_http_release(struct crd_hold_ticket *ticket);
/* Answer with a text/event-stream of the job's events. */
crd_mhd_result crd_http_stream(crd_req *req, crd_jobrec *job);

/* api/api.c: the v1 API's handlers. */
extern const crd_http_handlers crd_api_handlers;

#endif
