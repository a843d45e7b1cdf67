/*
 * test-http.c — the HTTP transport (daemon/http/http.c) on its own: it is
 * started on an ephemeral loopback port inside a test loop with a fake
 * handler table (no routes, no API), and a client thread talks to it with
 * plain blocking sockets while the loop runs.  Checked: answers come from
 * the handler table, keep-alive and the request pool, the body limit, the
 * connection limits' fast 503s, the header deadline, that a closed client
 * frees its slot, and the building blocks offered to the layer above:
 * deferral, hold/release from a timer, a streamed answer suspended while
 * its reader has nothing, and a client that never reads a large answer.
 * Every wait is bounded; nothing asserts a speed.
 */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/http.h"
#include "testutil.h"

/* ------------------------------------------------------ fake handlers */

static int n_head, n_handle, n_again, n_done;
static cr_loop *test_loop;

/* The fake layer's per-request area (crd_http_data). */
struct fake_req {
	char path[32];
	int asks;
	int chunks; /* /stream: chunks sent */
};

static struct fake_req *fake_of(crd_req *r) { return crd_http_data(r); }

static crd_mhd_result fake_head(crd_req *r, const char *method, const char *url)
{
	(void)method;
	n_head++;
	if (strcmp(url, "/nope") == 0)
		return crd_http_error(r, 404, "not_found", NULL, "no route for %s", url);
	snprintf(fake_of(r)->path, sizeof(fake_of(r)->path), "%s", url);
	return MHD_YES;
}

/* /hold: released from a loop timer (the ticket outlives the request). */
static void release_later(void *arg)
{
	struct crd_hold_ticket *t = arg;
	crd_http_release(t);
	free(t);
}

#define BIG_ANSWER ((size_t)16 << 20)

/* /stream: 5 chunks, the next one fed from a timer while the connection
 * is suspended for want of data. */
static void feed_later(void *arg) { crd_http_resume(arg); }

static ssize_t fake_read(crd_req *r, char *buf, size_t max)
{
	struct fake_req *f = fake_of(r);
	if (f->chunks == 5)
		return CRD_HTTP_STREAM_END;
	if (f->asks == f->chunks) { /* nothing new: ask a timer for more */
		f->asks++;
		ck_assert_int_eq(cr_call_later(test_loop, 0.02, feed_later, r, NULL), 0);
		return 0;
	}
	f->chunks++;
	return snprintf(buf, max, "chunk%d;", f->chunks);
}

static crd_mhd_result fake_handle(crd_req *r)
{
	struct fake_req *f = fake_of(r);
	n_handle++;
	if (strcmp(f->path, "/defer") == 0)
		return crd_http_defer(r);
	if (strcmp(f->path, "/hold") == 0) {
		struct crd_hold_ticket *t = calloc(1, sizeof(*t));
		ck_assert_ptr_nonnull(t);
		ck_assert_int_eq(cr_call_later(test_loop, 0.1, release_later, t, NULL), 0);
		return crd_http_hold(r, t);
	}
	if (strcmp(f->path, "/big") == 0) {
		crd_buf *b = crd_http_out(r);
		for (size_t i = 0; i < BIG_ANSWER / 64; i++)
			crd_buf_add(
				b,
				"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n",
				64);
		return crd_http_send(r, 200, NULL);
	}
	if (strcmp(f->path, "/stream") == 0) {
		crd_resp_opts o = {.content_type = "text/plain"};
		return crd_http_stream(r, 200, &o, fake_read);
	}
	crd_buf *b = crd_http_out(r);
	crd_buf_addf(b, "{\"len\":%zu}", r->body.len);
	return crd_http_send(r, 200, NULL);
}

static crd_mhd_result fake_again(crd_req *r)
{
	struct fake_req *f = fake_of(r);
	n_again++;
	f->asks++;
	if (strcmp(f->path, "/defer") == 0 && f->asks < 3 && !crd_http_stopping())
		return crd_http_defer(r);
	crd_buf *b = crd_http_out(r);
	crd_buf_addf(b, "{\"asks\":%d}", f->asks);
	return crd_http_send(r, 200, NULL);
}

static void fake_done(crd_req *r)
{
	(void)r;
	n_done++;
}

static const crd_http_handlers fake = {.req_size = sizeof(struct fake_req),
				       .head = fake_head,
				       .handle = fake_handle,
				       .again = fake_again,
				       .done = fake_done};

/* ------------------------------------------------------ the harness */

static char listen0[] = "127.0.0.1:0";
static char *listen_spec[] = {listen0};
static crd_http_opts opts;
static unsigned short port;
static crd_http_stats stats; /* copied after the client is done */
static atomic_bool client_done;
static void (*client_fn)(void);

static void *client_main(void *arg)
{
	(void)arg;
	client_fn();
	atomic_store(&client_done, true);
	return NULL;
}

/* The test's main task: start the transport, run the client thread while
 * the loop turns, stop. */
static int serve(void *arg, void **ret)
{
	crd_http *h = NULL;
	pthread_t t;
	(void)ret;
	opts.loop = arg;
	test_loop = arg;
	ck_assert_int_eq(crd_http_start(&opts, &fake, &h), 0);
	const char *url = crd_http_urls(h)[0];
	ck_assert_ptr_nonnull(strrchr(url, ':'));
	port = (unsigned short)atoi(strrchr(url, ':') + 1);
	atomic_store(&client_done, false);
	ck_assert_int_eq(pthread_create(&t, NULL, client_main, NULL), 0);
	for (int i = 0; i < 2000 && !atomic_load(&client_done); i++)
		cr_sleep(0.005);
	pthread_join(t, NULL);
	/* the daemon sees the client's last closes on its next turns */
	for (int i = 0; i < 400; i++) {
		crd_http_get_stats(h, &stats);
		if (!stats.connections)
			break;
		cr_sleep(0.005);
	}
	crd_http_stop(h);
	return 0;
}

static void run_with(void (*fn)(void))
{
	cr_loop *loop = tu_loop();
	client_fn = fn;
	n_head = n_handle = n_again = n_done = 0;
	ck_assert_int_eq(tu_run_on(loop, serve, loop, NULL), 0);
	ck_assert_int_eq(cr_loop_close(loop), 0);
	cr_loop_unref(loop);
}

static void defaults(void)
{
	memset(&opts, 0, sizeof(opts));
	opts.listen = listen_spec;
	opts.n_listen = 1;
	opts.max_body = 64;
	opts.max_connections = 16;
	opts.unix_reserve = 0;
	opts.idle_timeout = 30;
	opts.header_timeout = 10;
	opts.body_timeout = 10;
}

/* ------------------------------------------------------ client helpers */

static int dial(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct timeval tv = {5, 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_ge(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void put(int fd, const char *s)
{
	ck_assert_int_eq(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* Read one answer (head + Content-Length body) into buf; returns its
 * status, 0 when the connection closed first, -1 on a timeout. */
static int answer(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	char *end = NULL;
	while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
		ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n == 0)
			return 0;
		if (n < 0)
			return errno == EAGAIN ? -1 : 0;
		len += (size_t)n;
		buf[len] = 0;
	}
	const char *cl = strcasestr(buf, "Content-Length:");
	size_t body = cl ? strtoul(cl + 15, NULL, 10) : 0;
	size_t want = (size_t)(end + 4 - buf) + body;
	while (len < want && len < cap - 1) {
		ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	return atoi(buf + 9);
}

/* ------------------------------------------------------------- tests */

static char buf[4096];

static void client_handler_table(void)
{
	int fd = dial();
	put(fd, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
	ck_assert_int_eq(answer(fd, buf, sizeof(buf)), 200);
	ck_assert_ptr_nonnull(strstr(buf, "{\"len\":0}"));
	ck_assert_ptr_nonnull(strcasestr(buf, "Content-Type: application/json"));
	/* keep-alive: the same connection, a request with a body */
	put(fd, "POST /y HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
	ck_assert_int_eq(answer(fd, buf, sizeof(buf)), 200);
	ck_assert_ptr_nonnull(strstr(buf, "{\"len\":5}"));
	/* answered from the head: the handler's 404 */
	put(fd, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
	ck_assert_int_eq(answer(fd, buf, sizeof(buf)), 404);
	ck_assert_ptr_nonnull(strstr(buf, "\"code\":\"not_found\""));
	close(fd);
}

START_TEST(answers_come_from_the_handler_table)
{
	defaults();
	run_with(client_handler_table);
	ck_assert_int_eq(n_head, 3);
	ck_assert_int_eq(n_handle, 2);
	ck_assert_uint_eq(stats.status[200], 2);
	ck_assert_uint_eq(stats.status[404], 1);
}
END_TEST

static void client_pool(void)
{
	/* many requests on one connection, bodies of every size up to the
	 * limit: the pooled request's buffers are emptied between them */
	int fd = dial();
	char req[256], want[32];
	for (int i = 0; i <= 64; i++) {
		char body[65];
		memset(body, 'b', (size_t)i);
		body[i] = 0;
		snprintf(req, sizeof(req),
			 "POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s", i, body);
		put(fd, req);
		ck_assert_int_eq(answer(fd, buf, sizeof(buf)), 200);
		snprintf(want, sizeof(want), "{\"len\":%d}", i);
		ck_assert_msg(strstr(buf, want), "request %d: %s", i, buf);
	}
	close(fd);
}

START_TEST(keep_alive_requests_reuse_pooled_buffers)
{
	defaults();
	run_with(client_pool);
	ck_assert_int_eq(n_handle, 65);
}
END_TEST

static void client_too_large(void)
{
	int fd = dial();
	put(fd, "POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n");
	ck_assert_int_eq(answer(fd, buf, sizeof(buf)), 413);
	ck_assert_ptr_nonnull(strstr(buf, "body_too_large"));
	close(fd);
}

START_TEST(a_body_over_max_body_is_413_without_the_handler)
{
	defaults();
	run_with(client_too_large);
	ck_assert_int_eq(n_handle, 0);
}
END_TEST

static void client_limits(void)
{
	int held[3];
	for (int i = 0; i < 3; i++)
		held[i] = dial();
	/* the fourth: refused at once with a complete answer */
	int fd = dial();
	ck_assert_int_eq(answer(fd, buf, sizeof(buf)), 503);
	ck_assert_ptr_nonnull(strstr(buf, "too_many_connections"));
	ck_assert_ptr_nonnull(strcasestr(buf, "Retry-After: 1"));
	close(fd);
	/* a held connection still works */
	put(held[0], "GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
	ck_assert_int_eq(answer(held[0], buf, sizeof(buf)), 200);
	/* closing frees the slots: a new client gets in (bounded retries:
	 * the daemon sees the close on its next loop turn) */
	for (int i = 0; i < 3; i++)
		close(held[i]);
	int st = 0;
	for (int i = 0; i < 100 && st != 200; i++) {
		fd = dial();
		put(fd, "GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
		st = answer(fd, buf, sizeof(buf));
		close(fd);
		if (st != 200)
			usleep(20000);
	}
	ck_assert_int_eq(st, 200);
}

START_TEST(per_client_limit_answers_503_and_closed_clients_free_their_slots)
{
	defaults();
	opts.max_client_conns = 3;
	run_with(client_limits);
	ck_assert_uint_ge(stats.refused[CRD_HTTP_REFUSED_CLIENT], 1);
	ck_assert_uint_eq(stats.refused[CRD_HTTP_REFUSED_LIMIT], 0);
}
END_TEST

START_TEST(max_connections_answers_503)
{
	defaults();
	opts.max_connections = 3;
	opts.max_client_conns = 10;
	run_with(client_limits);
	ck_assert_uint_ge(stats.refused[CRD_HTTP_REFUSED_LIMIT], 1);
}
END_TEST

static void client_slow_head(void)
{
	/* one byte every 0.3 s: MHD's idle timeout (30 s) never fires, the
	 * header deadline (1 s) does */
	const char *req =
		"GET /slow HTTP/1.1\r\nHost: t\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
	int fd = dial();
	struct timeval tv = {0, 300000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	int closed = 0;
	for (size_t i = 0; i < strlen(req) && !closed; i++) {
		if (send(fd, req + i, 1, MSG_NOSIGNAL) != 1) {
			closed = 1;
			break;
		}
		char c;
		ssize_t n = recv(fd, &c, 1, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN))
			closed = 1;
		ck_assert_int_le(n, 0); /* never an answer */
	}
	ck_assert_msg(closed, "the slow client was not closed");
	close(fd);
}

START_TEST(a_head_dribbled_byte_by_byte_is_closed_at_the_header_timeout)
{
	defaults();
	opts.header_timeout = 1;
	run_with(client_slow_head);
	ck_assert_uint_eq(stats.timeouts[CRD_HTTP_TIMEOUT_HEADER], 1);
	ck_assert_int_eq(n_handle, 0);
}
END_TEST

/* --header-timeout 1.5: the deadline keeps its fraction (it was a whole
 * number of seconds, and crund refused 1.5).  A deadline of 1 s, checked
 * every 0.25 s, closes by 1.25 s after the dial; 1.5 s not before 1.5 s.
 * Only that lower bound is asserted (a loaded machine closes later, never
 * earlier), and the close within 10 s. */
static double secs_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void client_head_never_whole(void)
{
	struct timeval tv = {10, 0};
	char c;
	double t0 = secs_now();
	int fd = dial();

	put(fd, "GET /slow HTTP/1.1\r\nHost: t\r\n");
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ssize_t n = recv(fd, &c, 1, 0);
	double took = secs_now() - t0;
	ck_assert_msg(n == 0 || (n < 0 && errno != EAGAIN), "still open after 10 s");
	ck_assert_msg(took >= 1.4, "closed %.2f s after the dial: before the 1.5 s deadline", took);
	close(fd);
}

START_TEST(a_header_timeout_with_a_fraction_is_kept)
{
	defaults();
	opts.header_timeout = 1.5;
	run_with(client_head_never_whole);
	ck_assert_uint_eq(stats.timeouts[CRD_HTTP_TIMEOUT_HEADER], 1);
	ck_assert_int_eq(n_handle, 0);
}
END_TEST

static void client_defer(void)
{
	int fd = dial();
	put(fd, "GET /defer HTTP/1.1\r\nHost: t\r\n\r\n");
	ck_assert_int_eq(answer(fd, buf, sizeof(buf)), 200);
	ck_assert_ptr_nonnull(strstr(buf, "{\"asks\":3}"));
	/* keep-alive after a deferred answer */
	put(fd, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
	ck_assert_int_eq(answer(fd, buf, sizeof(buf)), 200);
	close(fd);
}

START_TEST(a_deferred_request_is_asked_again_until_it_answers)
{
	defaults();
	run_with(client_defer);
	ck_assert_int_eq(n_handle, 2);
	ck_assert_int_eq(n_again, 3);
	ck_assert_int_eq(n_done, 2);
	ck_assert_uint_eq(stats.held, 0); /* deferred, never suspended */
}
END_TEST

static void client_hold(void)
{
	int fd = dial(), other = dial();
	put(fd, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
	/* while it is held, another connection is served */
	put(other, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
	ck_assert_int_eq(answer(other, buf, sizeof(buf)), 200);
	close(other);
	/* the timer releases it: asked again once */
	ck_assert_int_eq(answer(fd, buf, sizeof(buf)), 200);
	ck_assert_ptr_nonnull(strstr(buf, "{\"asks\":1}"));
	put(fd, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
	ck_assert_int_eq(answer(fd, buf, sizeof(buf)), 200);
	close(fd);
}

START_TEST(a_held_request_answers_once_released_from_a_timer)
{
	defaults();
	run_with(client_hold);
	ck_assert_int_eq(n_again, 1);
	ck_assert_int_eq(n_done, 3);
}
END_TEST

static void client_stream(void)
{
	int fd = dial();
	size_t len = 0;
	put(fd, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
	/* chunked: read until the last chunk */
	while (!memmem(buf, len, "\r\n0\r\n\r\n", 7) && len < sizeof(buf) - 1) {
		ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		ck_assert_int_gt(n, 0);
		len += (size_t)n;
		buf[len] = 0;
	}
	ck_assert_int_eq(atoi(buf + 9), 200);
	ck_assert_ptr_nonnull(strcasestr(buf, "Content-Type: text/plain"));
	for (int i = 1; i <= 5; i++) {
		char want[16];
		snprintf(want, sizeof(want), "chunk%d;", i);
		ck_assert_msg(strstr(buf, want), "no %s in %s", want, buf);
	}
	close(fd);
}

START_TEST(a_streamed_answer_is_suspended_when_empty_and_resumed)
{
	defaults();
	run_with(client_stream);
	ck_assert_int_eq(n_done, 1);
	ck_assert_uint_eq(stats.status[200], 1);
}
END_TEST

static void client_never_reads(void)
{
	/* a client asks for 16 MiB and reads none of it: MHD sends what the
	 * socket takes and waits; the loop serves others meanwhile */
	int lazy = dial();
	int rcv = 4096;
	setsockopt(lazy, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	put(lazy, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
	for (int i = 0; i < 20; i++) {
		int fd = dial();
		put(fd, "GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
		ck_assert_int_eq(answer(fd, buf, sizeof(buf)), 200);
		close(fd);
	}
	/* it goes away: its connection (and the big buffer) is freed */
	close(lazy);
}

START_TEST(a_client_that_never_reads_its_answer_blocks_nobody_and_is_freed)
{
	defaults();
	opts.max_client_conns = 4;
	run_with(client_never_reads);
	ck_assert_int_eq(n_handle, 21);
	ck_assert_int_eq(n_done, 21);
	ck_assert_uint_eq(stats.connections, 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("transport");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, answers_come_from_the_handler_table);
	tcase_add_test(tc, keep_alive_requests_reuse_pooled_buffers);
	tcase_add_test(tc, a_body_over_max_body_is_413_without_the_handler);
	tcase_add_test(tc, per_client_limit_answers_503_and_closed_clients_free_their_slots);
	tcase_add_test(tc, max_connections_answers_503);
	tcase_add_test(tc, a_head_dribbled_byte_by_byte_is_closed_at_the_header_timeout);
	tcase_add_test(tc, a_header_timeout_with_a_fraction_is_kept);
	tcase_add_test(tc, a_deferred_request_is_asked_again_until_it_answers);
	tcase_add_test(tc, a_held_request_answers_once_released_from_a_timer);
	tcase_add_test(tc, a_streamed_answer_is_suspended_when_empty_and_resumed);
	tcase_add_test(tc, a_client_that_never_reads_its_answer_blocks_nobody_and_is_freed);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return tu_main(suite()); }
