/*
 * test-curl.c — libcurl's multi interface on the loop (daemon/plugins/curl.c,
 * the host service behind crund_curl_perform).
 *
 * The HTTP server these transfers talk to is a task on the SAME loop
 * (accept, read the request head, answer by path): if a transfer blocked
 * the loop, the server could never answer and the test would hang until
 * Check's timeout.  So every passing transfer also shows that the loop
 * kept turning while curl worked.
 */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "plugins/curl.h"
#include "testutil.h"

/* ------------------------------------------------------- the test server */

#define MAX_CONNS 128

typedef struct server {
	int lfd;
	int port;
	cr_task *acceptor;
	cr_task *conns[MAX_CONNS];
	struct conn_arg {
		struct server *srv;
		int fd;
	} args[MAX_CONNS];
	size_t n;
	int requests; /* request heads read */
} server;

typedef struct conn_arg conn_arg;

/* Answer one request: /ok → 200 "hello", /slow → never (until cancelled). */
static int conn_main(void *arg, void **ret)
{
	conn_arg *c = arg;
	char buf[2048];
	size_t len = 0;
	(void)ret;

	while (len < sizeof(buf) - 1) {
		ssize_t n = cr_read(c->fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			return n < 0 ? (int)n : 0;
		len += (size_t)n;
		buf[len] = 0;
		if (strstr(buf, "\r\n\r\n"))
			break;
	}
	c->srv->requests++;
	if (strncmp(buf, "GET /slow ", 10) == 0)
		return cr_sleep(3600);
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
				 "Connection: close\r\n\r\nhello";
	return cr_write_all(c->fd, ok, sizeof(ok) - 1);
}

static int acceptor_main(void *arg, void **ret)
{
	server *s = arg;
	(void)ret;

	for (;;) {
		int rc = cr_wait_fd(s->lfd, CR_READ, -1);
		if (rc < 0)
			return rc;
		int fd = accept(s->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		ck_assert_uint_lt(s->n, MAX_CONNS);
		ck_assert_int_eq(cr_fd_set_nonblocking(fd, true), 0);
		s->args[s->n].srv = s;
		s->args[s->n].fd = fd;
		ck_assert_int_eq(cr_spawn(conn_main, &s->args[s->n], NULL, &s->conns[s->n]), 0);
		s->n++;
	}
}

static void server_start(server *s)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);

	memset(s, 0, sizeof(*s));
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(s->lfd, 0);
	ck_assert_int_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(s->lfd, 256), 0);
	ck_assert_int_eq(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
	s->port = ntohs(a.sin_port);
	ck_assert_int_eq(cr_spawn(acceptor_main, s, NULL, &s->acceptor), 0);
}

static void server_stop(server *s)
{
	cr_task_cancel(s->acceptor, NULL);
	cr_task_join(s->acceptor, NULL);
	s->acceptor = cr_task_unref(s->acceptor);
	for (size_t i = 0; i < s->n; i++) {
		cr_task_cancel(s->conns[i], NULL);
		cr_task_join(s->conns[i], NULL);
		s->conns[i] = cr_task_unref(s->conns[i]);
		close(s->args[i].fd);
	}
	close(s->lfd);
}

/* A closed loopback port: bound, never listened on, then closed. */
static int closed_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* ------------------------------------------------------------ transfers */

typedef struct xfer {
	CURL *easy;
	char body[64];
	size_t len;
	int code;
	int rc;
} xfer;

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
	xfer *x = ud;
	size_t len = size * n;

	if (x->len + len >= sizeof(x->body))
		return 0;
	memcpy(x->body + x->len, p, len);
	x->len += len;
	x->body[x->len] = 0;
	return len;
}

static void xfer_init(xfer *x, const char *host, int port, const char *path)
{
	char url[128];

	memset(x, 0, sizeof(*x));
	x->code = -1;
	x->easy = curl_easy_init();
	ck_assert_ptr_nonnull(x->easy);
	snprintf(url, sizeof(url), "http://%s:%d%s", host, port, path);
	curl_easy_setopt(x->easy, CURLOPT_URL, url);
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
}

static int xfer_main(void *arg, void **ret)
{
	xfer *x = arg;
	(void)ret;

	x->rc = crd_curl_perform(x->easy, &x->code);
	return x->rc;
}

/* ------------------------------------------------------------------ tests */

static int outside_main(void *arg, void **ret)
{
	int code = 12345;
	(void)arg;
	(void)ret;

	/* in a task, but nothing opened */
	CURL *e = curl_easy_init();
	ck_assert_int_eq(crd_curl_perform(e, &code), -EPERM);
	ck_assert_int_eq(crd_curl_open(cr_loop_current()), 0);
	ck_assert_int_eq(crd_curl_open(cr_loop_current()), -EALREADY);
	ck_assert_int_eq(crd_curl_perform(NULL, &code), -EINVAL);
	ck_assert_int_eq(crd_curl_perform(e, NULL), -EINVAL);
	ck_assert_int_eq(code, 12345);
	crd_curl_close();
	crd_curl_close(); /* idempotent */
	ck_assert_int_eq(crd_curl_perform(e, &code), -ECANCELED);
	curl_easy_cleanup(e);
	return 0;
}

START_TEST(perform_refuses_bad_arguments_and_a_closed_multi)
{
	CURL *e = curl_easy_init();
	int code = 0;

	ck_assert_int_eq(tu_run(outside_main, NULL, NULL), 0);
	/* outside any task (the multi is closed): never awaits */
	ck_assert_int_lt(crd_curl_perform(e, &code), 0);
	curl_easy_cleanup(e);
}
END_TEST

static int ok_main(void *arg, void **ret)
{
	server s;
	xfer x;
	long status = 0;
	(void)arg;
	(void)ret;

	ck_assert_int_eq(crd_curl_open(cr_loop_current()), 0);
	server_start(&s);
	/* "localhost" goes through the resolver (threaded: it must not
	 * block the loop, whose server task answers). */
	xfer_init(&x, "localhost", s.port, "/ok");
	curl_easy_setopt(x.easy, CURLOPT_IPRESOLVE, CURL_IPRESOLVE_V4);
	ck_assert_int_eq(crd_curl_perform(x.easy, &x.code), 0);
	ck_assert_int_eq(x.code, CURLE_OK);
	ck_assert_str_eq(x.body, "hello");
	curl_easy_getinfo(x.easy, CURLINFO_RESPONSE_CODE, &status);
	ck_assert_int_eq(status, 200);
	ck_assert_uint_eq(crd_curl_in_flight(), 0);
	/* the handle left the multi: it can run again */
	x.len = 0;
	ck_assert_int_eq(crd_curl_perform(x.easy, &x.code), 0);
	ck_assert_str_eq(x.body, "hello");
	ck_assert_int_eq(s.requests, 2);
	curl_easy_cleanup(x.easy);
	server_stop(&s);
	crd_curl_close();
	return 0;
}

START_TEST(perform_runs_a_transfer_while_the_loop_serves_the_other_end)
{
	ck_assert_int_eq(tu_run(ok_main, NULL, NULL), 0);
}
END_TEST

#define MANY 64

static int many_main(void *arg, void **ret)
{
	server s;
	static xfer x[MANY];
	cr_task *t[MANY];
	(void)arg;
	(void)ret;

	ck_assert_int_eq(crd_curl_open(cr_loop_current()), 0);
	server_start(&s);
	for (int i = 0; i < MANY; i++) {
		xfer_init(&x[i], "127.0.0.1", s.port, "/ok");
		ck_assert_int_eq(cr_spawn(xfer_main, &x[i], NULL, &t[i]), 0);
	}
	/* once every task took its first step, all run at once */
	while (crd_curl_in_flight() < MANY && s.requests == 0)
		ck_assert_int_eq(cr_yield(), 0);
	ck_assert_uint_eq(crd_curl_in_flight(), MANY);
	ck_assert_int_eq(cr_gather(t, MANY, NULL), 0);
	for (int i = 0; i < MANY; i++) {
		ck_assert_int_eq(x[i].code, CURLE_OK);
		ck_assert_str_eq(x[i].body, "hello");
		curl_easy_cleanup(x[i].easy);
		cr_task_unref(t[i]);
	}
	ck_assert_int_eq(s.requests, MANY);
	ck_assert_uint_eq(crd_curl_in_flight(), 0);
	server_stop(&s);
	crd_curl_close();
	return 0;
}

START_TEST(many_transfers_run_at_once_on_one_multi)
{
	ck_assert_int_eq(tu_run(many_main, NULL, NULL), 0);
}
END_TEST

static int refused_main(void *arg, void **ret)
{
	xfer x;
	(void)arg;
	(void)ret;

	ck_assert_int_eq(crd_curl_open(cr_loop_current()), 0);
	xfer_init(&x, "127.0.0.1", closed_port(), "/ok");
	ck_assert_int_eq(crd_curl_perform(x.easy, &x.code), 0);
	ck_assert_int_eq(x.code, CURLE_COULDNT_CONNECT);
	curl_easy_cleanup(x.easy);
	crd_curl_close();
	return 0;
}

START_TEST(a_refused_connection_is_the_transfers_code)
{
	ck_assert_int_eq(tu_run(refused_main, NULL, NULL), 0);
}
END_TEST

static int timeout_main(void *arg, void **ret)
{
	server s;
	xfer x;
	(void)arg;
	(void)ret;

	ck_assert_int_eq(crd_curl_open(cr_loop_current()), 0);
	server_start(&s);
	xfer_init(&x, "127.0.0.1", s.port, "/slow");
	/* only libcurl's timer (a loop timer here) can end this transfer */
	curl_easy_setopt(x.easy, CURLOPT_TIMEOUT_MS, 200L);
	ck_assert_int_eq(crd_curl_perform(x.easy, &x.code), 0);
	ck_assert_int_eq(x.code, CURLE_OPERATION_TIMEDOUT);
	ck_assert_int_eq(s.requests, 1);
	curl_easy_cleanup(x.easy);
	server_stop(&s);
	crd_curl_close();
	return 0;
}

START_TEST(curls_timeout_fires_through_the_loop_timer)
{
	ck_assert_int_eq(tu_run(timeout_main, NULL, NULL), 0);
}
END_TEST

static int cancel_main(void *arg, void **ret)
{
	server s;
	xfer x;
	cr_task *t;
	(void)arg;
	(void)ret;

	ck_assert_int_eq(crd_curl_open(cr_loop_current()), 0);
	server_start(&s);
	xfer_init(&x, "127.0.0.1", s.port, "/slow");
	ck_assert_int_eq(cr_spawn(xfer_main, &x, NULL, &t), 0);
	while (s.requests == 0) /* the request reached the server */
		ck_assert_int_eq(cr_sleep(0.005), 0);
	ck_assert_uint_eq(crd_curl_in_flight(), 1);
	ck_assert_int_eq(cr_task_cancel(t, NULL), 0);
	ck_assert_int_eq(cr_task_join(t, NULL), -ECANCELED);
	ck_assert_int_eq(x.rc, -ECANCELED);
	ck_assert_int_eq(x.code, -1); /* not written */
	ck_assert_uint_eq(crd_curl_in_flight(), 0);
	t = cr_task_unref(t);

	/* the handle was removed from the multi: it runs again */
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", s.port);
	curl_easy_setopt(x.easy, CURLOPT_URL, url);
	ck_assert_int_eq(crd_curl_perform(x.easy, &x.code), 0);
	ck_assert_int_eq(x.code, CURLE_OK);
	ck_assert_str_eq(x.body, "hello");
	curl_easy_cleanup(x.easy);
	server_stop(&s);
	crd_curl_close();
	return 0;
}

START_TEST(cancelling_a_task_removes_its_transfer_from_the_multi)
{
	ck_assert_int_eq(tu_run(cancel_main, NULL, NULL), 0);
}
END_TEST

static int close_main(void *arg, void **ret)
{
	server s;
	xfer x;
	cr_task *t;
	(void)arg;
	(void)ret;

	ck_assert_int_eq(crd_curl_open(cr_loop_current()), 0);
	server_start(&s);
	xfer_init(&x, "127.0.0.1", s.port, "/slow");
	ck_assert_int_eq(cr_spawn(xfer_main, &x, NULL, &t), 0);
	while (s.requests == 0)
		ck_assert_int_eq(cr_sleep(0.005), 0);
	crd_curl_close();
	ck_assert_uint_eq(crd_curl_in_flight(), 0);
	ck_assert_int_eq(cr_task_join(t, NULL), -ECANCELED);
	ck_assert_int_eq(x.code, -1);
	t = cr_task_unref(t);
	/* a new multi after close works as the first */
	ck_assert_int_eq(crd_curl_open(cr_loop_current()), 0);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", s.port);
	curl_easy_setopt(x.easy, CURLOPT_URL, url);
	ck_assert_int_eq(crd_curl_perform(x.easy, &x.code), 0);
	ck_assert_str_eq(x.body, "hello");
	curl_easy_cleanup(x.easy);
	server_stop(&s);
	crd_curl_close();
	return 0;
}

START_TEST(close_ends_running_transfers_with_ecanceled)
{
	ck_assert_int_eq(tu_run(close_main, NULL, NULL), 0);
}
END_TEST

START_TEST(describe_names_libcurl_and_its_resolver)
{
	char buf[160];
	bool async = crd_curl_describe(buf, sizeof(buf));
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

	ck_assert_ptr_nonnull(strstr(buf, v->version));
	ck_assert_int_eq(async, !!(v->features & CURL_VERSION_ASYNCHDNS));
	ck_assert_ptr_nonnull(strstr(buf, async ? "asynchronous DNS" : "synchronous DNS"));
}
END_TEST

static Suite *curl_suite(void)
{
	Suite *s = suite_create("curl");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, perform_refuses_bad_arguments_and_a_closed_multi);
	tcase_add_test(tc, perform_runs_a_transfer_while_the_loop_serves_the_other_end);
	tcase_add_test(tc, many_transfers_run_at_once_on_one_multi);
	tcase_add_test(tc, a_refused_connection_is_the_transfers_code);
	tcase_add_test(tc, curls_timeout_fires_through_the_loop_timer);
	tcase_add_test(tc, cancelling_a_task_removes_its_transfer_from_the_multi);
	tcase_add_test(tc, close_ends_running_transfers_with_ecanceled);
	tcase_add_test(tc, describe_names_libcurl_and_its_resolver);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (crd_curl_global_init() < 0)
		return 99;
	int rc = tu_main(curl_suite());
	crd_curl_global_cleanup();
	return rc;
}
