/*
 * curl.c — libcurl's multi interface on the runner's loop (the host
 * service crund_curl_perform), done once here so no plugin drives curl
 * itself.  The shape is curl's docs/examples/multi-event.c:
 *
 *  - CURLMOPT_SOCKETFUNCTION: libcurl says which sockets it wants watched
 *    for what; each gets a persistent libevent event on the loop's base
 *    (cr_loop_event_base), whose callback hands readiness back with
 *    curl_multi_socket_action;
 *  - CURLMOPT_TIMERFUNCTION: libcurl asks for one timeout; it is a loop
 *    timer (cr_call_later), never run from inside the callback (libcurl
 *    forbids re-entering socket_action there), so a 0 ms timeout runs on
 *    the next loop iteration;
 *  - after each socket_action, curl_multi_info_read reports finished
 *    transfers: each is removed from the multi and the task waiting on it
 *    is woken through a cr_event.
 *
 * One multi for the whole daemon means one connection cache and one DNS
 * cache shared by every job: keep-alive connections to the same server
 * are reused from one job to the next.  Name resolution runs in libcurl's
 * threaded resolver (AsynchDNS, checked and logged at start by main.c):
 * the resolver thread's completion reaches the loop like any socket, so
 * no lookup blocks the loop.
 *
 * A waiting transfer lives on its task's coroutine stack and is linked in
 * a list, so crd_curl_close() can end the ones still running; the easy
 * handle's CURLOPT_PRIVATE points at it while it runs (so a finished
 * message finds its waiter in O(1)).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "plugins/curl.h"

/* The connection cache's size (open connections kept, busy or idle).
 * libcurl's default follows the number of transfers running at the moment
 * a connection is handed back; with jobs coming and going that number dips,
 * and keep-alive connections were closed and reopened for ~9 % of the
 * requests at 64 in flight (strace: 391 connects for 4510 jobs).  A fixed
 * bound keeps them, and still caps the descriptors idle connections hold. */
#define CRD_CURL_MAX_CONNECTIONS 1024

typedef struct crd_curl_xfer {
	CURL *easy;
	cr_event *done;
	CURLcode code;
	bool finished; /* left the multi: code is its result (or closed) */
	bool closed;   /* ended by crd_curl_close, not by libcurl */
	struct crd_curl_xfer *prev, *next;
} crd_curl_xfer;

/* A socket libcurl asked us to watch. */
typedef struct crd_curl_sock {
	curl_socket_t fd;
	struct event *ev;
	struct crd_curl_sock *prev, *next;
} crd_curl_sock;

static struct {
	cr_loop *loop;
	struct event_base *base;
	CURLM *multi;
	cr_handle *timer;
	crd_curl_xfer *xfers; /* running transfers */
	size_t n_xfers;
	crd_curl_sock *socks; /* watched sockets (freed at close if libcurl did not) */
	bool closed;
} g;

int crd_curl_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void crd_curl_global_cleanup(void) { curl_global_cleanup(); }

bool crd_curl_describe(char *buf, size_t len)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	bool async = v && (v->features & CURL_VERSION_ASYNCHDNS);

	if (buf && len)
		snprintf(buf, len, "libcurl %s (%s), %s", v ? v->version : "?",
			 v && v->ssl_version ? v->ssl_version : "no TLS",
			 async ? "asynchronous DNS"
			       : "synchronous DNS: a host name lookup blocks the loop");
	return async;
}

static void check_finished(void)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(g.multi, &left))) {
		crd_curl_xfer *x = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		CURLcode code = m->data.result;
		/* m is invalid once its handle leaves the multi */
		curl_multi_remove_handle(g.multi, m->easy_handle);
		if (!x)
			continue;
		x->code = code;
		x->finished = true;
		if (x->prev)
			x->prev->next = x->next;
		else
			g.xfers = x->next;
		if (x->next)
			x->next->prev = x->prev;
		x->prev = x->next = NULL;
		g.n_xfers--;
		cr_event_set(x->done);
	}
}

static void sock_ready(evutil_socket_t fd, short what, void *arg)
{
	int flags = 0, running;
	(void)arg;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(g.multi, fd, flags, &running);
	check_finished();
}

static void sock_forget(crd_curl_sock *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		g.socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	event_free(s->ev);
	free(s);
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for `what` (CURL_POLL_*). */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	crd_curl_sock *s = socketp;
	(void)easy;
	(void)userp;

	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(g.multi, fd, NULL);
			sock_forget(s);
		}
		return 0;
	}
	if (!s) {
		if (!(s = calloc(1, sizeof(*s))))
			return -1;
		s->fd = fd;
		if (!(s->ev = event_new(g.base, fd, 0, sock_ready, s))) {
			free(s);
			return -1;
		}
		s->next = g.socks;
		if (g.socks)
			g.socks->prev = s;
		g.socks = s;
		curl_multi_assign(g.multi, fd, s);
	} else {
		event_del(s->ev);
	}
	short kind = EV_PERSIST;
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (event_assign(s->ev, g.base, fd, kind, sock_ready, s) < 0 || event_add(s->ev, NULL) < 0)
		return -1;
	return 0;
}

static void timer_due(void *arg)
{
	int running;
	(void)arg;

	/* Ran: drop our reference before socket_action may ask for a new
	 * timer (on_timer replaces g.timer). */
	g.timer = cr_handle_unref(g.timer);
	curl_multi_socket_action(g.multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_finished();
}

/* CURLMOPT_TIMERFUNCTION: one timeout, replaced on every call; -1 stops it. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	(void)userp;

	if (g.timer) {
		cr_handle_cancel(g.timer);
		g.timer = cr_handle_unref(g.timer);
	}
	if (timeout_ms < 0)
		return 0;
	return cr_call_later(g.loop, (double)timeout_ms / 1000.0, timer_due, NULL, &g.timer) < 0
		       ? -1
		       : 0;
}

int crd_curl_open(cr_loop *loop)
{
	if (!loop)
		return -EINVAL;
	if (g.multi)
		return -EALREADY;
	struct event_base *base = cr_loop_event_base(loop);
	if (!base)
		return -EIO;
	CURLM *m = curl_multi_init();
	if (!m)
		return -ENOMEM;
	if (curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
	    curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_timer) != CURLM_OK ||
	    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)CRD_CURL_MAX_CONNECTIONS) !=
		    CURLM_OK) {
		curl_multi_cleanup(m);
		return -ENOMEM;
	}
	memset(&g, 0, sizeof(g));
	g.loop = loop;
	g.base = base;
	g.multi = m;
	return 0;
}

size_t crd_curl_in_flight(void) { return g.n_xfers; }

int crd_curl_perform(void *easy, int *ret_code)
{
	crd_curl_xfer x = {.easy = easy};
	void *saved = NULL;
	int rc;

	if (!easy || !ret_code)
		return -EINVAL;
	if (!g.multi)
		return g.closed ? -ECANCELED : -EPERM;
	if (!cr_current_task() || cr_loop_current() != g.loop)
		return -EPERM;
	if ((rc = cr_event_new(&x.done)) < 0)
		return rc;
	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&saved);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, &x);
	CURLMcode mc = curl_multi_add_handle(g.multi, easy);
	if (mc != CURLM_OK) {
		curl_easy_setopt(easy, CURLOPT_PRIVATE, saved);
		cr_event_free(x.done);
		return mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
	}
	x.next = g.xfers;
	if (g.xfers)
		g.xfers->prev = &x;
	g.xfers = &x;
	g.n_xfers++;

	rc = 0;
	while (!x.finished && rc == 0)
		rc = cr_event_wait(x.done);
	if (!x.finished) {
		/* Cancelled while it ran: the multi must let go of the
		 * handle before the caller frees it. */
		curl_multi_remove_handle(g.multi, easy);
		if (x.prev)
			x.prev->next = x.next;
		else
			g.xfers = x.next;
		if (x.next)
			x.next->prev = x.prev;
		g.n_xfers--;
	}
	curl_easy_setopt(easy, CURLOPT_PRIVATE, saved);
	cr_event_free(x.done);
	if (rc < 0)
		return rc;
	if (x.closed)
		return -ECANCELED;
	*ret_code = (int)x.code;
	return 0;
}

void crd_curl_close(void)
{
	if (!g.multi)
		return;
	while (g.xfers) {
		crd_curl_xfer *x = g.xfers;

		g.xfers = x->next;
		x->prev = x->next = NULL;
		curl_multi_remove_handle(g.multi, x->easy);
		x->finished = x->closed = true;
		cr_event_set(x->done);
	}
	g.n_xfers = 0;
	if (g.timer) {
		cr_handle_cancel(g.timer);
		g.timer = cr_handle_unref(g.timer);
	}
	curl_multi_cleanup(g.multi);
	g.multi = NULL;
	while (g.socks)
		sock_forget(g.socks);
	g.loop = NULL;
	g.base = NULL;
	g.closed = true;
}
