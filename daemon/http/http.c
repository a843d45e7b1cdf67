/*
 * http.c — libmicrohttpd on the runner's loop; see http.h.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon.h"
#include "http/http.h"
#include "log.h"

#define JSON_CT            "application/json; charset=utf-8"
/* An event stream with nothing to say sends an SSE comment every
 * --stream-ping seconds, so a client that went away is noticed (a suspended
 * connection sees no disconnect until MHD writes to it) and proxies keep
 * the stream open. */
/* Per-connection memory pool: MHD clears it between keep-alive requests,
 * so its size is paid on every request; 16 KiB holds any sane header set
 * (bodies stream through it). */
#define CONNECTION_MEMORY  ((size_t)16 * 1024)
#define STREAM_MAX_PENDING ((size_t)1 << 20) /* unread event-stream bytes */

enum { RQ_NEW, RQ_BODY, RQ_WAITING, RQ_READY, RQ_DONE, RQ_STREAM };

struct server {
	struct MHD_Daemon *d;
	struct event *io, *tm;
	int fd;
	char *unix_path; /* to unlink at stop (ours, not inherited) */
};

struct crd_http {
	struct server *srv;
	size_t n;
	char **urls;   /* n + 1, NULL-terminated */
	crd_req *susp; /* suspended requests */
	size_t n_susp;
	bool stopping; /* no more suspends: crd_http_stop runs */
};

static crd_http *the_http;
static bool kick_pending;

/* ---------------------------------------------------------- driving MHD */

static void rearm(struct server *s)
{
	MHD_UNSIGNED_LONG_LONG ms;
	if (MHD_get_timeout(s->d, &ms) == MHD_YES) {
		struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
		evtimer_add(s->tm, &tv);
	} else {
		evtimer_del(s->tm);
	}
}

static void run_server(struct server *s)
{
	MHD_run(s->d);
	rearm(s);
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run_server(arg);
}

static void kick_cb(void *arg)
{
	(void)arg;
	kick_pending = false;
	if (!the_http)
		return;
	for (size_t i = 0; i < the_http->n; i++)
		run_server(&the_http->srv[i]);
}

void crd_http_kick(void)
{
	if (kick_pending || !the_http)
		return;
	if (cr_call_soon(crd_d.loop, kick_cb, NULL, NULL) == 0)
		kick_pending = true;
}

/* ------------------------------------------------------ suspend / resume */

static void suspend(crd_req *r)
{
	if (r->suspended)
		return;
	MHD_suspend_connection(r->conn);
	r->suspended = true;
	r->sprev = NULL;
	r->snext = the_http->susp;
	if (r->snext)
		r->snext->sprev = r;
	the_http->susp = r;
	the_http->n_susp++;
}

static void unlink_susp(crd_req *r)
{
	if (r->sprev)
		r->sprev->snext = r->snext;
	else if (the_http && the_http->susp == r)
		the_http->susp = r->snext;
	if (r->snext)
		r->snext->sprev = r->sprev;
	r->snext = r->sprev = NULL;
	if (the_http)
		the_http->n_susp--;
}

static void resume(crd_req *r)
{
	if (!r->suspended)
		return;
	r->suspended = false;
	unlink_susp(r);
	MHD_resume_connection(r->conn);
	crd_http_kick();
}

size_t crd_http_suspended(const crd_http *h) { return h ? h->n_susp : 0; }

/* ------------------------------------------------------------- answers */

crd_buf *crd_http_out(crd_req *req)
{
	req->out.len = 0;
	req->out.oom = false;
	return &req->out;
}

static crd_mhd_result send_out(crd_req *req, unsigned status, const crd_resp_opts *o)
{
	/* PERSISTENT: MHD reads the body from req->out while it sends and
	 * never after notify_completed, which is when req is released. */
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		req->out.len, req->out.len ? req->out.data : (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	if (status != 204)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					o && o->content_type ? o->content_type : JSON_CT);
	if (o) {
		if (o->location)
			MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, o->location);
		if (o->allow)
			MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, o->allow);
		if (o->retry_after > 0) {
			char ra[16];
			snprintf(ra, sizeof(ra), "%d", o->retry_after);
			MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
		}
	}
	if (status == 401)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	crd_mhd_result rc = MHD_queue_response(req->conn, status, resp);
	MHD_destroy_response(resp);
	req->status = status;
	req->mode = RQ_DONE;
	crd_metrics_count_status(status);
	return rc;
}

crd_mhd_result crd_http_send(crd_req *req, unsigned status, const crd_resp_opts *o)
{
	if (!crd_buf_ok(&req->out))
		return crd_http_error(req, 500, "internal", NULL, "out of memory");
	return send_out(req, status, o);
}

crd_mhd_result crd_http_respond(crd_req *req, unsigned status, const char *body, size_t len,
				const crd_resp_opts *o)
{
	crd_buf *b = crd_http_out(req);
	if (len)
		crd_buf_add(b, body, len);
	return crd_http_send(req, status, o);
}

crd_mhd_result crd_http_error(crd_req *req, unsigned status, const char *code,
			      const crd_resp_opts *o, const char *fmt, ...)
{
	crd_buf *b = crd_http_out(req);
	char small[256];
	char *msg = small;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(small)) {
		msg = malloc((size_t)n + 1);
		if (!msg)
			return MHD_NO;
		va_start(ap, fmt);
		vsnprintf(msg, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	crd_buf_add(b, "{\"error\":{\"code\":", 17);
	crd_buf_add_jstr(b, code);
	crd_buf_add(b, ",\"message\":", 11);
	crd_buf_add_jstrn(b, msg, (size_t)n);
	crd_buf_add(b, "}}\n", 3);
	if (msg != small)
		free(msg);
	if (!crd_buf_ok(b))
		return MHD_NO;
	return send_out(req, status, o);
}

static crd_mhd_result answer_pending(crd_req *r)
{
	char loc[16 + sizeof(r->rm.param)];
	crd_resp_opts o = {0};
	if (r->pending_location) {
		snprintf(loc, sizeof(loc), "/v1/jobs/%s", r->rm.param);
		o.location = loc;
	}
	return crd_http_send(r, r->pending_status, &o);
}

static void render_pending(crd_req *r, const crd_jobrec *job)
{
	crd_buf *b = crd_http_out(r);
	crd_job_render(b, job);
	crd_buf_addc(b, '\n');
}

/* ------------------------------------------------------------ long-poll */

static void wait_event(crd_sub *sub, crd_jobrec *job, int ev, const char *data, size_t len)
{
	crd_req *r = (crd_req *)((char *)sub - offsetof(crd_req, sub));
	(void)data;
	(void)len;
	if (ev != CRUND_EV_END)
		return;
	if (r->timer) {
		cr_handle_cancel(r->timer);
		r->timer = cr_handle_unref(r->timer);
	}
	render_pending(r, job);
	r->mode = RQ_READY;
	if (r->suspended)
		resume(r);
	else
		crd_http_kick(); /* deferred: MHD asks again on its next run */
}

static void wait_timeout(void *arg)
{
	crd_req *r = arg;
	r->timer = cr_handle_unref(r->timer);
	crd_jobrec *job = r->sub.job;
	crd_jobs_unsubscribe(&r->sub);
	if (job)
		render_pending(r, job);
	r->mode = RQ_READY;
	resume(r);
}

/* A deferred long-poll stays deferred while its job's task has not had its
 * first step yet or has returned with the job's end not yet recorded (its
 * done callback is queued): both resolve within a loop turn or two.  A
 * task waiting on something, or a job queued behind max-running, parks. */
static bool job_about_to_end(const crd_jobrec *j)
{
	if (!j || j->state != CRUND_JOB_RUNNING || !j->task)
		return false;
	return !(j->flags & CRUND_JF_STEPPED) || cr_task_done(j->task);
}

/* Park a waiting request: arm its wait timer and suspend the connection. */
static crd_mhd_result park(crd_req *r)
{
	r->deferred = false;
	if (cr_call_later(crd_d.loop, r->wait_seconds, wait_timeout, r, &r->timer) < 0) {
		crd_jobs_unsubscribe(&r->sub);
		return crd_http_error(r, 500, "internal", NULL, "cannot arm the wait timer");
	}
	suspend(r);
	return MHD_YES;
}

/*
 * A long-poll is first *deferred*: the handler returns without an answer
 * and without suspending.  MHD (epoll mode) keeps such a connection on its
 * ready list, calls the handler again on each of its runs and has a
 * timeout of 0 meanwhile, so the loop runs it at every poll.  The request
 * stays deferred while its job is about to end (job_about_to_end); a job
 * that has ended by then (a quick job: the common case of ?wait) is
 * answered without a suspend/resume pair (two epoll_ctl calls) and without
 * a timer, one that has not is parked.  The wait is measured from the
 * park, a few microseconds late at most.
 */
crd_mhd_result crd_http_wait(crd_req *req, crd_jobrec *job, double seconds, unsigned status,
			     bool location)
{
	req->pending_status = status;
	req->pending_location = location;
	req->wait_seconds = seconds;
	snprintf(req->rm.param, sizeof(req->rm.param), "%s", job->id);
	memset(&req->sub, 0, sizeof(req->sub));
	req->sub.on_event = wait_event;
	if (the_http->stopping) {
		/* nothing may be suspended now: the current state answers */
		render_pending(req, job);
		return answer_pending(req);
	}
	crd_jobs_subscribe(job, &req->sub);
	req->mode = RQ_WAITING;
	req->deferred = true;
	return MHD_YES;
}

/* --------------------------------------------------------- event stream */

static void stream_add_job(crd_req *r, const char *event, const crd_jobrec *job)
{
	crd_buf_adds(&r->stream, "event: ");
	crd_buf_adds(&r->stream, event);
	crd_buf_adds(&r->stream, "\ndata: ");
	crd_job_render(&r->stream, job);
	crd_buf_adds(&r->stream, "\n\n");
}

static void stream_event(crd_sub *sub, crd_jobrec *job, int ev, const char *data, size_t len)
{
	crd_req *r = (crd_req *)((char *)sub - offsetof(crd_req, sub));
	/* A client that does not read does not get to grow our memory:
	 * intermediate events are dropped past the limit, the end never. */
	bool full = r->stream.len - r->stream_off > STREAM_MAX_PENDING;
	switch (ev) {
	case CRUND_EV_STATE:
		if (!full)
			stream_add_job(r, "state", job);
		break;
	case CRUND_EV_PROGRESS:
	case CRUND_EV_LOG:
		if (full)
			break;
		crd_buf_adds(&r->stream,
			     ev == CRUND_EV_LOG ? "event: log\ndata: " : "event: progress\ndata: ");
		crd_buf_add(&r->stream, data, len);
		crd_buf_adds(&r->stream, "\n\n");
		break;
	case CRUND_EV_END:
		stream_add_job(r, "end", job);
		r->stream_end = true;
		if (r->timer) {
			cr_handle_cancel(r->timer);
			r->timer = cr_handle_unref(r->timer);
		}
		break;
	}
	resume(r);
}

static void stream_ping(void *arg)
{
	crd_req *r = arg;
	r->timer = cr_handle_unref(r->timer);
	if (r->stream_end)
		return;
	if (r->stream.len - r->stream_off <= STREAM_MAX_PENDING)
		crd_buf_adds(&r->stream, ": ping\n\n");
	if (cr_call_later(crd_d.loop, crd_d.cfg.stream_ping, stream_ping, r, &r->timer) < 0)
		r->timer = NULL;
	resume(r);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	crd_req *r = cls;
	(void)pos;
	if (r->stream.oom)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	size_t avail = r->stream.len - r->stream_off;
	if (avail) {
		size_t n = avail < max ? avail : max;
		memcpy(buf, r->stream.data + r->stream_off, n);
		r->stream_off += n;
		if (r->stream_off == r->stream.len)
			r->stream.len = r->stream_off = 0;
		return (ssize_t)n;
	}
	if (r->stream_end)
		return MHD_CONTENT_READER_END_OF_STREAM;
	/* Nothing to send: park the connection until the next event. */
	suspend(r);
	return 0;
}

crd_mhd_result crd_http_stream(crd_req *req, crd_jobrec *job)
{
	stream_add_job(req, "state", job);
	if (crd_job_state_ended(job->state)) {
		stream_add_job(req, "end", job);
		req->stream_end = true;
	} else {
		memset(&req->sub, 0, sizeof(req->sub));
		req->sub.on_event = stream_event;
		crd_jobs_subscribe(job, &req->sub);
		/* best effort: without pings a vanished client is noticed at
		 * the job's end */
		if (cr_call_later(crd_d.loop, crd_d.cfg.stream_ping, stream_ping, req,
				  &req->timer) < 0)
			req->timer = NULL;
	}
	struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
								      stream_reader, req, NULL);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/event-stream; charset=utf-8");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	crd_mhd_result rc = MHD_queue_response(req->conn, 200, resp);
	MHD_destroy_response(resp);
	req->status = 200;
	req->mode = RQ_STREAM;
	crd_metrics_count_status(200);
	return rc;
}

/* ------------------------------------------------------- request pool */

/* Released requests keep their body and answer buffers for the next one:
 * a request then costs no allocation of ours.  The pool is bounded, and so
 * are the buffers it keeps. */
#define REQ_POOL_MAX 1024
#define REQ_KEEP_BUF ((size_t)16 * 1024)

static crd_req *req_pool;
static size_t n_req_pool;

static crd_req *req_new(void)
{
	crd_req *r = req_pool;
	if (!r)
		return calloc(1, sizeof(*r));
	req_pool = r->snext;
	n_req_pool--;
	r->snext = NULL;
	return r;
}

static void keep_buf(crd_buf *b)
{
	if (b->cap > REQ_KEEP_BUF)
		crd_buf_free(b);
	b->len = 0;
	b->oom = false;
}

static void req_release(crd_req *r)
{
	crd_buf_free(&r->stream);
	if (n_req_pool >= REQ_POOL_MAX) {
		crd_buf_free(&r->body);
		crd_buf_free(&r->out);
		free(r);
		return;
	}
	crd_buf body = r->body, out = r->out;
	keep_buf(&body);
	keep_buf(&out);
	memset(r, 0, sizeof(*r));
	r->body = body;
	r->out = out;
	r->snext = req_pool;
	req_pool = r;
	n_req_pool++;
}

static void req_pool_free(void)
{
	while (req_pool) {
		crd_req *r = req_pool;
		req_pool = r->snext;
		crd_buf_free(&r->body);
		crd_buf_free(&r->out);
		free(r);
	}
	n_req_pool = 0;
}

/* -------------------------------------------------------- MHD callbacks */

static crd_mhd_result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *upload_data,
				 size_t *upload_size, void **con_cls)
{
	crd_req *r = *con_cls;
	(void)cls;
	(void)version;

	if (!r) {
		r = req_new();
		if (!r)
			return MHD_NO;
		*con_cls = r;
		r->conn = conn;
		crd_route(method, url, &r->rm);
		if (r->rm.status == 404)
			return crd_http_error(r, 404, "not_found", NULL, "no route for %s %s",
					      method, url);
		if (r->rm.route != CRUND_R_HEALTH && !crd_api_authorized(conn))
			return crd_http_error(
				r, 401, "unauthorized", NULL,
				"missing or wrong token: send 'Authorization: Bearer TOKEN'");
		if (r->rm.status == 405) {
			crd_resp_opts o = {.allow = r->rm.allow};
			return crd_http_error(r, 405, "method_not_allowed", &o,
					      "%s is not allowed on %s (allowed: %s)", method, url,
					      r->rm.allow);
		}
		/* Even without a body, answer on the next call: an answer
		 * queued from the first call makes MHD close the connection
		 * (no keep-alive). */
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > crd_d.cfg.max_body)
			return crd_http_error(r, 413, "body_too_large", NULL,
					      "the request body is larger than %zu bytes",
					      crd_d.cfg.max_body);
		r->mode = RQ_BODY;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!r->too_large) {
			if (r->body.len + *upload_size > crd_d.cfg.max_body) {
				r->too_large = true;
				crd_buf_free(&r->body);
			} else {
				crd_buf_add(&r->body, upload_data, *upload_size);
			}
		}
		*upload_size = 0;
		return MHD_YES;
	}
	switch (r->mode) {
	case RQ_BODY:
		if (r->too_large)
			return crd_http_error(r, 413, "body_too_large", NULL,
					      "the request body is larger than %zu bytes",
					      crd_d.cfg.max_body);
		if (r->body.oom)
			return crd_http_error(r, 500, "internal", NULL, "out of memory");
		r->mode = RQ_DONE;
		return crd_api_handle(r);
	case RQ_READY:
		return answer_pending(r);
	case RQ_WAITING:
		/* asked again while deferred: the job is still going */
		if (r->deferred && !the_http->stopping) {
			if (job_about_to_end(r->sub.job) && r->early_asks++ < 16)
				return MHD_YES;
			return park(r);
		}
		/* resumed without an answer (shutdown resumed everyone), or
		 * deferred at shutdown: the job's current state is the answer */
		if (r->sub.job) {
			crd_jobrec *job = r->sub.job;
			crd_jobs_unsubscribe(&r->sub);
			render_pending(r, job);
		}
		if (r->timer) {
			cr_handle_cancel(r->timer);
			r->timer = cr_handle_unref(r->timer);
		}
		return answer_pending(r);
	default:
		return MHD_YES;
	}
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	crd_req *r = *con_cls;
	(void)cls;
	(void)conn;
	(void)toe;
	if (!r)
		return;
	*con_cls = NULL;
	crd_jobs_unsubscribe(&r->sub);
	if (r->timer) {
		cr_handle_cancel(r->timer);
		cr_handle_unref(r->timer);
	}
	if (r->suspended) {
		r->suspended = false;
		unlink_susp(r);
	}
	req_release(r);
}

/* fmt comes from libmicrohttpd: the attribute says it is one. */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	crd_logv(CRUND_LOG_DEBUG, NULL, fmt, ap);
}

/* ----------------------------------------------------------- listening */

static bool addr_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_UNIX)
		return true;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return true;
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			return in6->sin6_addr.s6_addr[12] == 127;
	}
	return false;
}

static char *sock_url(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN], url[300];
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return strdup("?");
	if (ss.ss_family == AF_UNIX) {
		snprintf(url, sizeof(url), "unix:%s", ((struct sockaddr_un *)&ss)->sun_path);
	} else if (ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(url, sizeof(url), "http://%s:%u", host, ntohs(in->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(url, sizeof(url), "http://[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		snprintf(url, sizeof(url), "?");
	}
	return strdup(url);
}

/* Resolve and check one --listen address; bind and listen. */
static int open_listener(const char *spec, int *ret_fd, char **ret_unix_path)
{
	crd_listen_addr a;
	char err[300];
	int fd, rc;

	if (crd_listen_parse(spec, &a, err, sizeof(err)) < 0) {
		crd_log(CRUND_LOG_ERROR, "%s", err);
		return -EINVAL;
	}
	if (a.is_unix) {
		struct sockaddr_un sa;
		struct stat st;
		memset(&sa, 0, sizeof(sa));
		sa.sun_family = AF_UNIX;
		strcpy(sa.sun_path, a.path);
		/* A socket file left by an earlier run is replaced; any other
		 * file is not ours to remove. */
		if (lstat(a.path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(a.path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			return -errno;
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1024) < 0) {
			rc = -errno;
			crd_log(CRUND_LOG_ERROR, "cannot listen on unix:%s: %s", a.path,
				strerror(-rc));
			close(fd);
			return rc;
		}
		*ret_unix_path = strdup(a.path);
		*ret_fd = fd;
		return 0;
	}
	struct addrinfo hints, *res = NULL, *ai;
	char port[8];
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(port, sizeof(port), "%u", a.port);
	rc = getaddrinfo(a.host[0] ? a.host : NULL, port, &hints, &res);
	if (rc != 0) {
		crd_log(CRUND_LOG_ERROR, "--listen %s: cannot resolve '%s': %s", spec, a.host,
			gai_strerror(rc));
		return -EINVAL;
	}
	for (ai = res; ai; ai = ai->ai_next)
		if (!addr_is_loopback(ai->ai_addr) && !crd_d.cfg.token) {
			crd_log(CRUND_LOG_ERROR,
				"refusing to listen on %s beyond loopback without a token: set "
				"--token-file FILE (clients then send 'Authorization: Bearer "
				"TOKEN')",
				spec);
			freeaddrinfo(res);
			return -EINVAL;
		}
	rc = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0) {
			freeaddrinfo(res);
			*ret_fd = fd;
			return 0;
		}
		rc = -errno;
		close(fd);
	}
	freeaddrinfo(res);
	crd_log(CRUND_LOG_ERROR, "cannot listen on %s: %s", spec, strerror(-rc));
	return rc;
}

static int start_server(struct server *s, int fd)
{
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	s->fd = fd;
	s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_LISTEN_SOCKET,
				(MHD_socket)fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)crd_d.cfg.max_connections,
				MHD_OPTION_CONNECTION_TIMEOUT, crd_d.cfg.idle_timeout,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONNECTION_MEMORY,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
	if (!s->d)
		return -EIO;
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info)
		return -EIO;
	struct event_base *base = cr_loop_event_base(crd_d.loop);
	s->io = event_new(base, info->epoll_fd, EV_READ | EV_PERSIST, on_io, s);
	s->tm = evtimer_new(base, on_io, s);
	if (!s->io || !s->tm || event_add(s->io, NULL) < 0)
		return -ENOMEM;
	rearm(s);
	return 0;
}

int crd_http_start(crd_http **ret)
{
	crd_http *h = calloc(1, sizeof(*h));
	size_t n = crd_d.n_listen_fds > 0 ? (size_t)crd_d.n_listen_fds : crd_d.cfg.n_listen;
	int rc = 0;

	if (!h)
		return -ENOMEM;
	h->srv = calloc(n, sizeof(*h->srv));
	h->urls = calloc(n + 1, sizeof(char *));
	if (!h->srv || !h->urls) {
		free(h->srv);
		free(h->urls);
		free(h);
		return -ENOMEM;
	}
	the_http = h;
	for (size_t i = 0; i < n; i++) {
		int fd = -1;
		char *upath = NULL;
		if (crd_d.n_listen_fds > 0) {
			fd = 3 + (int)i;
			struct sockaddr_storage ss;
			socklen_t len = sizeof(ss);
			if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
				crd_log(CRUND_LOG_ERROR, "inherited fd %d is not a socket", fd);
				rc = -EINVAL;
				break;
			}
			if (!addr_is_loopback((struct sockaddr *)&ss) && !crd_d.cfg.token) {
				crd_log(CRUND_LOG_ERROR, "refusing a socket-activated listener "
							 "beyond loopback without a "
							 "token: set --token-file FILE");
				rc = -EINVAL;
				break;
			}
		} else if ((rc = open_listener(crd_d.cfg.listen[i], &fd, &upath)) < 0) {
			break;
		}
		h->n++;
		h->srv[i].unix_path = upath;
		h->urls[i] = sock_url(fd);
		if ((rc = start_server(&h->srv[i], fd)) < 0) {
			crd_log(CRUND_LOG_ERROR, "cannot start the HTTP server on %s", h->urls[i]);
			break;
		}
	}
	if (rc < 0) {
		crd_http_stop(h);
		return rc;
	}
	*ret = h;
	return 0;
}

const char *const *crd_http_urls(const crd_http *h) { return (const char *const *)h->urls; }

void crd_http_stop(crd_http *h)
{
	if (!h)
		return;
	/* Suspended connections neither time out nor see disconnects, and
	 * MHD_stop_daemon must not find one: resume them all first (their
	 * handlers answer with the job's current state) and let MHD send.
	 * Deferred long-polls answer the same way on that run. */
	h->stopping = true;
	while (h->susp) {
		crd_req *r = h->susp;
		r->suspended = false;
		unlink_susp(r);
		if (r->mode == RQ_STREAM) {
			crd_jobs_unsubscribe(&r->sub);
			r->stream_end = true;
		}
		MHD_resume_connection(r->conn);
	}
	for (size_t i = 0; i < h->n; i++)
		if (h->srv[i].d)
			MHD_run(h->srv[i].d);
	for (size_t i = 0; i < h->n; i++) {
		struct server *s = &h->srv[i];
		if (s->io)
			event_free(s->io);
		if (s->tm)
			event_free(s->tm);
		if (s->d) {
			MHD_stop_daemon(s->d); /* closes the listening socket too */
		} else if (s->fd > 0) {
			close(s->fd);
		}
		if (s->unix_path) {
			unlink(s->unix_path);
			free(s->unix_path);
		}
		free(h->urls[i]);
	}
	free(h->srv);
	free(h->urls);
	if (the_http == h)
		the_http = NULL;
	free(h);
	req_pool_free();
}
