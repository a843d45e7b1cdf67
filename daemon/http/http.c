/*
 * http.c — libmicrohttpd on the runner's loop; see http.h.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "http/http.h"
#include "log.h"
#include "settings.h"

#define JSON_CT           "application/json; charset=utf-8"
/* Per-connection memory pool: MHD clears it between keep-alive requests,
 * so its size is paid on every request; 16 KiB holds any sane header set
 * (bodies stream through it). */
#define CONNECTION_MEMORY ((size_t)16 * 1024)

/* A request's mode: its body is being read; it was left unanswered
 * (deferred, suspended or held: the layer above is asked again); it is
 * answered. */
enum { RQ_BODY, RQ_WAIT, RQ_DONE };

/* A held request (see crd_http_hold) is asked again on MHD's runs.  While
 * the loop has other work that is every run; when a run did nothing but
 * ask held requests, the next one is PARK_MS later (or sooner, at the
 * release or at I/O), not at once, so the loop sleeps in epoll instead of
 * turning.  The connection stays in MHD's epoll set: suspending it would
 * cost two epoll_ctl and a recv per request.  A request still held after
 * HOLD_IDLE_RUNS such runs, or HOLD_ASKS runs in all, is suspended. */
#define HOLD_ASKS         64
#define HOLD_IDLE_RUNS    20
#define PARK_MS           1
/* Accepts per listener event: enough to empty a burst's backlog quickly,
 * few enough that one listener does not starve the loop. */
#define ACCEPT_BATCH      128
/* Out of fds (EMFILE): stop accepting this long rather than spin. */
#define ACCEPT_PAUSE_MS   100
#define CLIENT_BUCKETS    256
/* How often the request deadlines are checked: a deadline (seconds, with
 * fractions) is kept within this much. */
#define SWEEP_INTERVAL_MS 250

/*
 * A connection's phase decides its deadline.  MHD's own timeout
 * (--idle-timeout) is reset by every byte, so a client that sends one byte
 * every few seconds would hold its connection for ever; these deadlines are
 * absolute: the head must be whole --header-timeout after it began (after
 * the accept, or after the request line of a keep-alive connection's next
 * request), the body --body-timeout after the head.  While the request is
 * answered (long-polls, streams, a client slow to read) only MHD's idle
 * timeout applies.
 */
enum { PH_HEAD, PH_BODY, PH_ANSWER, PH_IDLE };

/* A client: a source address, or a uid on a Unix socket. */
struct client {
	struct client *next;
	unsigned n; /* its connections */
	uint8_t key_len;
	unsigned char key[1 + 16];
};

/* One accepted connection, ours from the accept to MHD's CLOSED notice. */
typedef struct crd_http_conn hconn;
struct crd_http_conn {
	hconn *next, *prev;
	struct client *client;
	int fd;
	uint8_t phase;   /* PH_* */
	double deadline; /* loop time; 0: none */
};

struct server {
	struct MHD_Daemon *d;
	struct event *io, *tm;
	struct event *accept_ev, *accept_pause;
	int fd;
	bool is_unix;
	char *unix_path; /* to unlink at stop (ours, not inherited) */
};

struct crd_http {
	crd_http_opts o;      /* strings borrowed */
	crd_http_handlers hd; /* the layer above: routes, answers */
	struct server *srv;
	size_t n;
	char **urls;   /* n + 1, NULL-terminated */
	crd_req *susp; /* suspended requests */
	size_t n_susp;
	bool stopping; /* no more suspends: crd_http_stop runs */
	/* connections */
	hconn *conns;
	hconn *adding; /* handed to MHD_add_connection right now */
	struct client *clients[CLIENT_BUCKETS];
	unsigned per_client; /* the effective per-client limit */
	struct event *sweep;
	crd_http_stats stats;
};

static crd_http *the_http;
static bool kick_pending;
/* MHD callbacks other than a held request asked again, and whether the
 * last MHD_run had none (the loop turns only for the held requests); held
 * requests asked and left in MHD's epoll set. */
static unsigned long n_useful;
static bool last_run_idle;
static unsigned long n_parked;

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
	unsigned long before = n_useful, parked = n_parked;
	MHD_run(s->d);
	last_run_idle = n_useful == before;
	if (last_run_idle && n_parked != parked) {
		/* only held requests to ask again: MHD's timeout is 0 */
		struct timeval tv = {0, PARK_MS * 1000};
		evtimer_add(s->tm, &tv);
	} else {
		rearm(s);
	}
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
	if (cr_call_soon(the_http->o.loop, kick_cb, NULL, NULL) == 0)
		kick_pending = true;
}

/* ------------------------------------------------------ suspend / resume */

static void resume(crd_req *r);

/* The peer of a suspended long-poll or stream closed its end: resumed, a
 * long-poll answers (to nobody) and MHD closes the connection; a stream
 * ends (stream_reader).  Else it would hold its connection, and count
 * against --max-connections(-per-client), until its job ended.
 *
 * The watch is EV_READ | EV_CLOSED, edge-triggered, not EV_CLOSED alone:
 * a client that closes with bytes of ours unread (an event stream's client
 * nearly always has some) makes its kernel send a reset, not a FIN, and
 * libevent reports epoll's EPOLLERR / EPOLLHUP as EV_READ | EV_WRITE, never
 * EV_CLOSED.  An EV_CLOSED watch then stayed silent, the connection held
 * until a write failed (a stream's next ping, a long-poll's answer) while
 * the level-triggered error woke the loop on every turn.  Edge-triggered,
 * bytes the client sends while it waits (a pipelined request) wake the
 * watch once per arrival, not on every turn; poll() tells them from a
 * close. */
static bool peer_closed(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLRDHUP};
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static void on_peer_event(evutil_socket_t fd, short what, void *arg)
{
	crd_req *r = arg;
	if (!r->suspended || (!(what & EV_CLOSED) && !peer_closed(fd)))
		return; /* bytes from a client still there */
	r->peer_gone = true;
	resume(r);
}

static void watch_peer(crd_req *r)
{
	if (r->ticket || !r->hc || r->peer_gone)
		return; /* held for a commit: released within milliseconds */
	struct event_base *base = cr_loop_event_base(the_http->o.loop);
	if (!(event_base_get_features(base) & EV_FEATURE_EARLY_CLOSE))
		return; /* no EPOLLRDHUP (not epoll): the idle timeout and pings */
	if (!r->gone_ev)
		r->gone_ev = event_new(base, r->hc->fd, EV_READ | EV_CLOSED | EV_ET | EV_PERSIST,
				       on_peer_event, r);
	if (r->gone_ev)
		event_add(r->gone_ev, NULL);
}

static void suspend(crd_req *r)
{
	if (r->suspended)
		return;
	MHD_suspend_connection(r->conn);
	watch_peer(r);
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
	if (r->gone_ev)
		event_del(r->gone_ev);
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

static void conn_answering(crd_req *req);

static crd_mhd_result send_out(crd_req *req, unsigned status, const crd_resp_opts *o)
{
	conn_answering(req);
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
		for (const char *const *h = o->headers; h && h[0] && h[1]; h += 2)
			MHD_add_response_header(resp, h[0], h[1]);
	}
	if (status == 401)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	crd_mhd_result rc = MHD_queue_response(req->conn, status, resp);
	MHD_destroy_response(resp);
	req->status = status;
	req->mode = RQ_DONE;
	if (status < 600)
		the_http->stats.status[status]++;
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

/* ------------------------------------------- leaving a request unanswered */

cr_loop *crd_http_loop(void) { return the_http ? the_http->o.loop : NULL; }

bool crd_http_stopping(void) { return !the_http || the_http->stopping; }

crd_mhd_result crd_http_defer(crd_req *req)
{
	req->mode = RQ_WAIT;
	return MHD_YES;
}

crd_mhd_result crd_http_suspend(crd_req *req)
{
	req->mode = RQ_WAIT;
	if (!the_http->stopping)
		suspend(req);
	return MHD_YES;
}

void crd_http_resume(crd_req *req)
{
	if (req->suspended)
		resume(req);
	else
		crd_http_kick(); /* deferred: MHD asks again on its next run */
}

crd_mhd_result crd_http_hold(crd_req *req, struct crd_hold_ticket *ticket)
{
	ticket->req = req;
	req->ticket = ticket;
	req->asks = 0;
	req->idle_asks = 0;
	return crd_http_defer(req);
}

void crd_http_release(struct crd_hold_ticket *ticket)
{
	crd_req *r = ticket->req;
	if (!r)
		return;
	ticket->req = NULL;
	r->ticket = NULL;
	crd_http_resume(r);
}

/* ------------------------------------------------------ streamed answers */

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	crd_req *r = cls;
	(void)pos;
	if (r->peer_gone)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	ssize_t n = r->reader(r, buf, max);
	if (n == CRD_HTTP_STREAM_END)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n < 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	n_useful++;
	if (n == 0) {
		if (the_http->stopping) /* nothing may wait now */
			return MHD_CONTENT_READER_END_OF_STREAM;
		/* Nothing to send: park the connection until crd_http_resume. */
		suspend(r);
	}
	return n;
}

crd_mhd_result crd_http_stream(crd_req *req, unsigned status, const crd_resp_opts *o,
			       crd_http_reader reader)
{
	req->reader = reader;
	struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
								      stream_reader, req, NULL);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, o->content_type);
	if (o->no_cache) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
		MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	}
	conn_answering(req);
	crd_mhd_result rc = MHD_queue_response(req->conn, status, resp);
	MHD_destroy_response(resp);
	req->status = status;
	req->mode = RQ_DONE;
	if (status < 600)
		the_http->stats.status[status]++;
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

/* A request and the layer above's area after it. */
static size_t req_bytes(void) { return sizeof(crd_req) + the_http->hd.req_size; }

static crd_req *req_new(void)
{
	crd_req *r = req_pool;
	if (!r)
		return calloc(1, req_bytes());
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
	if (r->gone_ev)
		event_free(r->gone_ev);
	r->gone_ev = NULL;
	if (n_req_pool >= REQ_POOL_MAX) {
		crd_buf_free(&r->body);
		crd_buf_free(&r->out);
		free(r);
		return;
	}
	crd_buf body = r->body, out = r->out;
	keep_buf(&body);
	keep_buf(&out);
	memset(r, 0, req_bytes());
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

/* ---------------------------------------------------------- connections */

/*
 * crund accepts on its listening sockets itself and hands each accepted
 * socket to MHD (MHD_add_connection).  Left to MHD, a daemon at its
 * connection limit stops accepting: new clients wait in the listen backlog
 * (a hang, not an answer), and the ones that gave up are accepted later
 * and held until the idle timeout although their peer is gone.  Accepting
 * ourselves, every connection is taken at once and either admitted or
 * answered with a 503 and closed, and the per-client limit and the Unix
 * socket's reserve can be applied before MHD sees the connection.
 */

static double now(void) { return cr_loop_time(the_http->o.loop); }

static hconn *conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

static void conn_set(hconn *c, uint8_t phase, double timeout)
{
	c->phase = phase;
	c->deadline = timeout ? now() + timeout : 0;
}

/* The answer phase: no deadline of ours (see PH_*). */
static void conn_answering(crd_req *req)
{
	if (req->hc)
		conn_set(req->hc, PH_ANSWER, 0);
}

static unsigned client_hash(const unsigned char *key, size_t len)
{
	unsigned h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % CLIENT_BUCKETS;
}

/* The client key of an accepted socket: family + address, or the peer's
 * uid on a Unix socket (SO_PEERCRED). */
static size_t client_key(int fd, const struct sockaddr_storage *ss, unsigned char *key)
{
	if (ss->ss_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &((const struct sockaddr_in *)ss)->sin_addr, 4);
		return 5;
	}
	if (ss->ss_family == AF_INET6) {
		key[0] = 6;
		memcpy(key + 1, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
		return 17;
	}
	key[0] = 'u';
	uint32_t uid = UINT32_MAX; /* unknown: one shared client */
#ifdef SO_PEERCRED
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		uid = (uint32_t)cred.uid;
#else
	(void)fd;
#endif
	memcpy(key + 1, &uid, 4);
	return 5;
}

static struct client *client_get(crd_http *h, const unsigned char *key, size_t len)
{
	struct client **b = &h->clients[client_hash(key, len)];
	for (struct client *c = *b; c; c = c->next)
		if (c->key_len == len && memcmp(c->key, key, len) == 0)
			return c;
	struct client *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->key_len = (uint8_t)len;
	memcpy(c->key, key, len);
	c->next = *b;
	*b = c;
	return c;
}

static void client_put(crd_http *h, struct client *c)
{
	if (--c->n)
		return;
	struct client **p = &h->clients[client_hash(c->key, c->key_len)];
	while (*p != c)
		p = &(*p)->next;
	*p = c->next;
	free(c);
}

/* A complete answer written on a connection without MHD, which has
 * nothing of its own to send on it then (a connection just accepted, or
 * one whose request body is being read): it fits any socket buffer.  Then
 * FIN: the connection closes right after.  Closing with unread request
 * bytes would reset the connection and could destroy the answer before the
 * client reads it: what already arrived is discarded first (at most 64
 * KiB; what comes later is not read).  False when nothing could be sent. */
static bool answer_raw(int fd, const char *status, const char *headers, const char *body)
{
	char head[256];
	size_t blen = strlen(body);
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %s\r\nContent-Type: " JSON_CT
			 "\r\n%sConnection: close\r\nContent-Length: %zu\r\n\r\n",
			 status, headers, blen);
	struct iovec iov[2] = {{head, (size_t)n}, {(void *)body, blen}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
	if (n < 0 || (size_t)n >= sizeof(head) ||
	    sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) <= 0)
		return false;
	char sink[4096];
	shutdown(fd, SHUT_WR);
	for (int i = 0; i < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
		;
	return true;
}

/* A refused connection gets a complete answer written without waiting,
 * and the socket is closed right after. */
static void refuse(crd_http *h, int fd, int reason)
{
	static const char msg[][160] = {
		[CRD_HTTP_REFUSED_LIMIT] = "{\"error\":{\"code\":\"too_many_connections\","
					   "\"message\":\"the daemon is at --max-connections; "
					   "retry later\"}}\n",
		[CRD_HTTP_REFUSED_CLIENT] = "{\"error\":{\"code\":\"too_many_connections\","
					    "\"message\":\"this client holds "
					    "--max-connections-per-client connections\"}}\n",
	};
	h->stats.refused[reason]++;
	h->stats.status[503]++;
	answer_raw(fd, "503 Service Unavailable", "Retry-After: 1\r\n", msg[reason]);
	close(fd);
}

static void admit(crd_http *h, struct server *s, int fd, struct sockaddr_storage *ss, socklen_t len)
{
	unsigned limit = the_http->o.max_connections + (s->is_unix ? the_http->o.unix_reserve : 0);
	if (h->stats.connections >= limit) {
		refuse(h, fd, CRD_HTTP_REFUSED_LIMIT);
		return;
	}
	unsigned char key[sizeof(((struct client *)0)->key)];
	size_t klen = client_key(fd, ss, key);
	struct client *cl = client_get(h, key, klen);
	hconn *c = cl ? calloc(1, sizeof(*c)) : NULL;
	if (!c) {
		if (cl && !cl->n) {
			cl->n = 1;
			client_put(h, cl);
		}
		close(fd);
		return;
	}
	if (cl->n >= h->per_client) {
		free(c);
		cl->n++;
		client_put(h, cl);
		refuse(h, fd, CRD_HTTP_REFUSED_CLIENT);
		return;
	}
	cl->n++;
	c->client = cl;
	c->fd = fd;
	conn_set(c, PH_HEAD, the_http->o.header_timeout);
	c->next = h->conns;
	if (c->next)
		c->next->prev = c;
	h->conns = c;
	h->stats.connections++;
	if (h->stats.connections == 1) {
		struct timeval tv = {0, SWEEP_INTERVAL_MS * 1000};
		event_add(h->sweep, &tv);
	}
	/* MHD notifies STARTED from inside this call (no internal thread):
	 * on_connection picks c up there. */
	h->adding = c;
	if (MHD_add_connection(s->d, fd, (struct sockaddr *)ss, len) != MHD_YES && h->adding) {
		/* refused before STARTED: MHD closed the socket */
		h->adding = NULL;
		h->stats.connections--;
		if (c->prev)
			c->prev->next = c->next;
		else
			h->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		client_put(h, cl);
		free(c);
	}
	h->adding = NULL;
}

static void on_accept_pause_end(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	(void)fd;
	(void)what;
	event_add(s->accept_ev, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct server *s = arg;
	crd_http *h = the_http;
	(void)what;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* the connection stays in the backlog; try later */
				if (!h->stats.refused[CRD_HTTP_REFUSED_FDS]++)
					crd_log(CRUND_LOG_WARNING,
						"cannot accept a connection: %s (raise the fd "
						"limit or lower --max-connections)",
						strerror(errno));
				struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
				event_del(s->accept_ev);
				evtimer_add(s->accept_pause, &tv);
			}
			break;
		}
		if (len == 0 || ss.ss_family == AF_UNSPEC) /* unnamed Unix peer */
			ss.ss_family = AF_UNIX;
		admit(h, s, fd, &ss, len);
	}
	run_server(s);
}

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	n_useful++;
	crd_http *h = the_http;
	(void)cls;
	(void)mc;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		*socket_context = h->adding;
		h->adding = NULL;
		return;
	}
	hconn *c = *socket_context;
	if (!c)
		return;
	*socket_context = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	h->stats.connections--;
	client_put(h, c->client);
	free(c);
	if (!h->stats.connections)
		evtimer_del(h->sweep);
}

/* The request line of a request has arrived (MHD's URI log callback):
 * a keep-alive connection's next request starts its head deadline. */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *mc)
{
	(void)cls;
	(void)uri;
	hconn *c = conn_of(mc);
	if (c && c->phase == PH_IDLE)
		conn_set(c, PH_HEAD, the_http->o.header_timeout);
	return NULL;
}

/* Close every connection past its deadline.  shutdown() rather than
 * close(): the socket stays MHD's; MHD sees the end of the stream on its
 * next run and releases the connection (CLOSED notice). */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	crd_http *h = arg;
	double t = now();
	bool any = false;
	(void)fd;
	(void)what;
	for (hconn *c = h->conns; c; c = c->next) {
		if (!c->deadline || t < c->deadline)
			continue;
		c->deadline = 0;
		if (c->phase == PH_HEAD)
			h->stats.timeouts[CRD_HTTP_TIMEOUT_HEADER]++;
		else if (c->phase == PH_BODY)
			h->stats.timeouts[CRD_HTTP_TIMEOUT_BODY]++;
		else
			h->stats.timeouts[CRD_HTTP_TIMEOUT_IDLE]++;
		shutdown(c->fd, SHUT_RDWR);
		any = true;
	}
	if (any)
		for (size_t i = 0; i < h->n; i++)
			run_server(&h->srv[i]);
}

void crd_http_get_stats(const crd_http *h, crd_http_stats *ret)
{
	*ret = h->stats;
	ret->held = h->n_susp;
}

/* -------------------------------------------------------- MHD callbacks */

/* How the request says its body is framed (RFC 9112 §6): what MHD would
 * guess at is refused instead.  Two Content-Lengths (MHD reads the first),
 * a Content-Length beside Transfer-Encoding, a header name with white
 * space ("Transfer-Encoding : chunked", which MHD keeps as another name):
 * a proxy in front of crund may have framed such a request otherwise, and
 * the bytes after the body as MHD reads it would be taken as a request of
 * its own (request smuggling).  The answer comes from the first call, so
 * MHD closes the connection after it. */
struct framing {
	unsigned n_length, n_te;
	bool te_chunked, bad_name, host;
};

static crd_mhd_result framing_of(void *cls, enum MHD_ValueKind kind, const char *key,
				 const char *value)
{
	struct framing *f = cls;
	(void)kind;
	if (!key)
		return MHD_YES;
	if (strpbrk(key, " \t"))
		f->bad_name = true;
	if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
		f->n_length++;
	else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
		f->n_te++;
		f->te_chunked = value && !strcasecmp(value, "chunked");
	} else if (!strcasecmp(key, MHD_HTTP_HEADER_HOST))
		f->host = true;
	return MHD_YES;
}

/* An answer for a request whose framing is refused, or MHD_YES (go on). */
static crd_mhd_result check_framing(crd_req *r, const char *version)
{
	struct framing f = {0};
	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, framing_of, &f);
	if (f.bad_name)
		return crd_http_error(r, 400, "invalid_request", NULL,
				      "a header name has white space in it");
	if (f.n_length > 1)
		return crd_http_error(r, 400, "invalid_request", NULL,
				      "the request has %u Content-Length headers", f.n_length);
	if (f.n_te && f.n_length)
		return crd_http_error(r, 400, "invalid_request", NULL,
				      "the request has both Content-Length and Transfer-Encoding");
	if (f.n_te && (f.n_te > 1 || !f.te_chunked))
		return crd_http_error(r, 501, "not_implemented", NULL,
				      "Transfer-Encoding: only chunked is understood");
	if (!f.host && version && !strcmp(version, MHD_HTTP_VERSION_1_1))
		return crd_http_error(r, 400, "invalid_request", NULL,
				      "an HTTP/1.1 request needs a Host header");
	return MHD_YES;
}

/* The path of an absolute-form request target (RFC 9112 §3.2.2,
 * "http://host/v1/jobs"), else url itself. */
static const char *origin_form(const char *url)
{
	const char *p = NULL;
	if (!strncasecmp(url, "http://", 7))
		p = url + 7;
	else if (!strncasecmp(url, "https://", 8))
		p = url + 8;
	if (!p)
		return url;
	p = strchr(p, '/');
	return p ? p : "/";
}

/*
 * A body without a Content-Length (chunked) that grows past --max-body:
 * answered 413 at once and the connection closed, the rest of the body
 * not read.  MHD (0.9.75 and 1.0 alike) queues an answer only once the
 * head is read or the whole request is, not while the body is being read:
 * waiting for the body's end read the whole upload (or up to
 * --body-timeout, which then closed the connection without an answer).
 * So the answer is written on the socket directly (MHD has nothing to send
 * on it while it reads the body: a 100 Continue is sent before), and
 * MHD_NO has MHD close the connection now.
 */
static crd_mhd_result body_too_large(crd_req *r)
{
	char msg[128];
	snprintf(msg, sizeof(msg),
		 "{\"error\":{\"code\":\"body_too_large\",\"message\":\"the request body "
		 "is larger than %zu bytes\"}}\n",
		 the_http->o.max_body);
	r->mode = RQ_DONE;
	if (r->hc && answer_raw(r->hc->fd, "413 Content Too Large", "", msg)) {
		r->status = 413;
		the_http->stats.status[413]++;
	}
	return MHD_NO;
}

static crd_mhd_result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *upload_data,
				 size_t *upload_size, void **con_cls)
{
	crd_req *r = *con_cls;
	(void)cls;

	if (!r || r->mode != RQ_WAIT)
		n_useful++;
	if (!r) {
		r = req_new();
		if (!r)
			return MHD_NO;
		*con_cls = r;
		r->conn = conn;
		r->hc = conn_of(conn);
		r->mode = RQ_BODY;
		crd_mhd_result frc = check_framing(r, version);
		if (r->mode != RQ_BODY)
			return frc; /* answered; MHD closes the connection after it */
		/* The layer above answers now (routing, auth: the connection
		 * closes after it) or leaves the request in RQ_BODY. */
		crd_mhd_result rc = the_http->hd.head(r, method, origin_form(url));
		if (r->mode != RQ_BODY)
			return rc;
		/* Even without a body, answer on the next call: an answer
		 * queued from the first call makes MHD close the connection
		 * (no keep-alive). */
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > the_http->o.max_body)
			return crd_http_error(r, 413, "body_too_large", NULL,
					      "the request body is larger than %zu bytes",
					      the_http->o.max_body);
		r->mode = RQ_BODY;
		if (r->hc)
			conn_set(r->hc, PH_BODY, the_http->o.body_timeout);
		return MHD_YES;
	}
	if (*upload_size) {
		if (r->body.len + *upload_size > the_http->o.max_body)
			return body_too_large(r);
		crd_buf_add(&r->body, upload_data, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	switch (r->mode) {
	case RQ_BODY:
		if (r->body.oom)
			return crd_http_error(r, 500, "internal", NULL, "out of memory");
		r->mode = RQ_DONE;
		/* the request is whole: a long-poll or a submission held for
		 * its commit is an answer under way, not a slow body */
		conn_answering(r);
		return the_http->hd.handle(r);
	case RQ_WAIT:
		if (r->ticket && !the_http->stopping) {
			/* held, not released yet: asked again on the next
			 * run (see HOLD_ASKS) */
			if (r->asks++ >= HOLD_ASKS ||
			    (last_run_idle && ++r->idle_asks > HOLD_IDLE_RUNS))
				suspend(r);
			else
				n_parked++;
			return MHD_YES;
		}
		n_useful++;
		/* deferred, resumed, released, or resumed by the stop */
		if (r->ticket) { /* held, resumed by the stop before its release */
			r->ticket->req = NULL;
			r->ticket = NULL;
		}
		r->mode = RQ_DONE;
		return the_http->hd.again(r);
	default:
		return MHD_YES;
	}
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	n_useful++;
	crd_req *r = *con_cls;
	(void)cls;
	(void)toe;
	hconn *c = conn_of(conn);
	if (c)
		conn_set(c, PH_IDLE, the_http->o.idle_timeout);
	if (!r)
		return;
	*con_cls = NULL;
	if (the_http->hd.done)
		the_http->hd.done(r);
	if (r->ticket) { /* held: its release will find nobody */
		r->ticket->req = NULL;
		r->ticket = NULL;
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
		/* A socket file left by an earlier run is replaced; one that a
		 * process still listens on (another crund) is not, nor any
		 * other file. */
		if (lstat(a.path, &st) == 0 && S_ISSOCK(st.st_mode)) {
			int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			bool live = probe >= 0 &&
				    (connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0 ||
				     errno == EAGAIN || errno == EINPROGRESS);
			if (probe >= 0)
				close(probe);
			if (live) {
				crd_log(CRUND_LOG_ERROR,
					"cannot listen on unix:%s: a process listens on it "
					"(another crund?); stop it or choose another path",
					a.path);
				return -EADDRINUSE;
			}
			unlink(a.path);
		}
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
		if (!addr_is_loopback(ai->ai_addr) && !the_http->o.token) {
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
	/* The listening socket stays ours (see "connections"): MHD gets the
	 * accepted ones and enforces no limit of its own. */
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
			 MHD_USE_NO_LISTEN_SOCKET;
	unsigned mhd_limit = the_http->o.max_connections + the_http->o.unix_reserve + 16;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	s->fd = fd;
	/* accept4 until EAGAIN: an inherited (socket-activated) listener
	 * may be blocking */
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	s->is_unix = getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_UNIX;
	s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_NOTIFY_COMPLETED,
				on_completed, NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
				NULL, MHD_OPTION_URI_LOG_CALLBACK, on_request_line, NULL,
				MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
				MHD_OPTION_CONNECTION_TIMEOUT, the_http->o.idle_timeout,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONNECTION_MEMORY,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
	if (!s->d)
		return -EIO;
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info)
		return -EIO;
	struct event_base *base = cr_loop_event_base(the_http->o.loop);
	s->io = event_new(base, info->epoll_fd, EV_READ | EV_PERSIST, on_io, s);
	s->tm = evtimer_new(base, on_io, s);
	s->accept_ev = event_new(base, fd, EV_READ | EV_PERSIST, on_accept, s);
	s->accept_pause = evtimer_new(base, on_accept_pause_end, s);
	if (!s->io || !s->tm || !s->accept_ev || !s->accept_pause || event_add(s->io, NULL) < 0 ||
	    event_add(s->accept_ev, NULL) < 0)
		return -ENOMEM;
	rearm(s);
	return 0;
}

int crd_http_start(const crd_http_opts *o, const crd_http_handlers *hd, crd_http **ret)
{
	crd_http *h = calloc(1, sizeof(*h));
	size_t n = o->n_listen_fds > 0 ? (size_t)o->n_listen_fds : o->n_listen;
	int rc = 0;

	if (!h)
		return -ENOMEM;
	h->o = *o;
	h->hd = *hd;
	h->srv = calloc(n, sizeof(*h->srv));
	h->urls = calloc(n + 1, sizeof(char *));
	if (!h->srv || !h->urls) {
		free(h->srv);
		free(h->urls);
		free(h);
		return -ENOMEM;
	}
	the_http = h;
	h->per_client = the_http->o.max_client_conns ? the_http->o.max_client_conns
						     : (the_http->o.max_connections + 1) / 2;
	h->sweep = event_new(cr_loop_event_base(the_http->o.loop), -1, EV_PERSIST, on_sweep, h);
	if (!h->sweep) {
		free(h->srv);
		free(h->urls);
		free(h);
		the_http = NULL;
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		int fd = -1;
		char *upath = NULL;
		if (the_http->o.n_listen_fds > 0) {
			fd = 3 + (int)i;
			struct sockaddr_storage ss;
			socklen_t len = sizeof(ss);
			if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
				crd_log(CRUND_LOG_ERROR, "inherited fd %d is not a socket", fd);
				rc = -EINVAL;
				break;
			}
			if (!addr_is_loopback((struct sockaddr *)&ss) && !the_http->o.token) {
				crd_log(CRUND_LOG_ERROR, "refusing a socket-activated listener "
							 "beyond loopback without a "
							 "token: set --token-file FILE");
				rc = -EINVAL;
				break;
			}
		} else if ((rc = open_listener(the_http->o.listen[i], &fd, &upath)) < 0) {
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
	 * MHD_stop_daemon must not find one: resume them all first and let
	 * MHD send.  The layer above, asked again with crd_http_stopping()
	 * true, answers now (a long-poll with the job's current state);
	 * deferred requests are asked on that run too, and a stream's reader
	 * with nothing left ends the stream. */
	h->stopping = true;
	while (h->susp) {
		crd_req *r = h->susp;
		r->suspended = false;
		unlink_susp(r);
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
		if (s->accept_ev)
			event_free(s->accept_ev);
		if (s->accept_pause)
			event_free(s->accept_pause);
		if (s->d)
			MHD_stop_daemon(s->d); /* CLOSED notices for its connections */
		if (s->fd > 0)
			close(s->fd);
		if (s->unix_path) {
			unlink(s->unix_path);
			free(s->unix_path);
		}
		free(h->urls[i]);
	}
	free(h->srv);
	free(h->urls);
	if (h->sweep)
		event_free(h->sweep);
	req_pool_free();
	if (the_http == h)
		the_http = NULL;
	free(h);
}
