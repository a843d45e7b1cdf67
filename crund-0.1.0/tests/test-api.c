/*
 * test-api.c — the API's long-poll (daemon/api/wait.c) and event stream
 * (daemon/api/stream.c) over the real transport and a real jobs module
 * (no durable store): a small handler table routes GET /w/ID and GET
 * /s/ID to crd_api_wait and crd_api_stream, a client thread talks to it
 * with plain sockets, and loop timers end or advance the jobs.  Checked:
 * ?wait answers at once for an ended job, when a running job ends, and
 * with the current state when the wait runs out; a job about to end keeps
 * its long-poll deferred; the stop answers a parked long-poll; a stream
 * carries state, progress and end.  Every wait is bounded; nothing asserts
 * a speed.
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
#include <unistd.h>

#include "api/api.h"
#include "daemon.h"
#include "testutil.h"

/* ------------------------------------------------------ the jobs module */

static crund_plugin desc = {.name = "demo"};
static crd_loaded_plugin plug = {.desc = &desc};
static crund_job_spec spec = {.name = "noop"};
static crd_jobs S;
static bool about_to_end; /* what jobs/run.c would say of every job */
static int n_about_asks;

bool crd_exec_about_to_end(const crd_jobrec *job)
{
	(void)job;
	n_about_asks++;
	return about_to_end;
}

static int fake_start(crd_jobrec *j, void *data)
{
	(void)j;
	(void)data;
	return 0;
}

static crd_jobrec *new_job(void)
{
	crd_job_req req = {.plugin = &plug, .spec = &spec, .args = json_object()};
	crd_jobrec *j = NULL;
	ck_assert_int_eq(crd_jobs_submit(&S, &req, &j, NULL), 0);
	ck_assert_int_eq(j->state, CRUND_JOB_RUNNING);
	return j;
}

static void finish_now(void *arg)
{
	crd_jobrec *j = crd_jobs_find(&S, arg);
	if (j)
		crd_jobs_finish(&S, j, CRUND_JOB_SUCCEEDED, NULL, NULL);
}

static void progress_now(void *arg)
{
	crd_jobrec *j = crd_jobs_find(&S, arg);
	if (j)
		crd_jobs_set_progress(j, 0.5, "half");
}

/* ------------------------------------------------------ the handler table */

static double wait_seconds;
static cr_loop *test_loop;
static char job_id[CRUND_JOB_ID_MAX];
static double finish_after; /* > 0: a timer ends the job then; 0: soon */
static bool finish_soon;

static crd_mhd_result t_head(crd_req *r, const char *method, const char *url)
{
	(void)method;
	crd_api_req *a = crd_api_req_of(r);
	a->rm.route = url[1] == 's' ? CRUND_R_JOB_EVENTS : CRUND_R_JOB;
	snprintf(a->rm.param, sizeof(a->rm.param), "%s", url + 3);
	return MHD_YES;
}

static crd_mhd_result t_handle(crd_req *r)
{
	crd_api_req *a = crd_api_req_of(r);
	crd_jobrec *j = crd_jobs_find(&S, a->rm.param);
	if (!j)
		return crd_http_error(r, 404, "not_found", NULL, "no job");
	if (finish_soon)
		ck_assert_int_eq(cr_call_soon(test_loop, finish_now, job_id, NULL), 0);
	if (a->rm.route == CRUND_R_JOB_EVENTS)
		return crd_api_stream(r, j, 30);
	return crd_api_wait(r, j, wait_seconds, 200, false);
}

static crd_mhd_result t_again(crd_req *r) { return crd_api_wait_again(r); }

static const crd_http_handlers table = {.req_size = sizeof(crd_api_req),
					.head = t_head,
					.handle = t_handle,
					.again = t_again,
					.done = crd_api_req_done};

/* ------------------------------------------------------ the harness */

static char listen0[] = "127.0.0.1:0";
static char *listen_spec[] = {listen0};
static unsigned short port;
static atomic_bool client_done, client_sent;
static bool stop_while_waiting; /* stop the transport once the client sent */
static void (*client_fn)(void);
static size_t parked_seen; /* most suspended requests seen at once */

static void *client_main(void *arg)
{
	(void)arg;
	client_fn();
	atomic_store(&client_done, true);
	return NULL;
}

static int serve(void *arg, void **ret)
{
	crd_http_opts o = {.loop = arg,
			   .listen = listen_spec,
			   .n_listen = 1,
			   .max_body = 64,
			   .max_connections = 16,
			   .idle_timeout = 30,
			   .header_timeout = 10,
			   .body_timeout = 10};
	crd_http *h = NULL;
	pthread_t t;
	(void)ret;
	test_loop = arg;
	ck_assert_int_eq(crd_http_start(&o, &table, &h), 0);
	port = (unsigned short)atoi(strrchr(crd_http_urls(h)[0], ':') + 1);
	atomic_store(&client_done, false);
	atomic_store(&client_sent, false);
	parked_seen = 0;
	ck_assert_int_eq(pthread_create(&t, NULL, client_main, NULL), 0);
	for (int i = 0; i < 2000 && !atomic_load(&client_done); i++) {
		cr_sleep(0.005);
		if (crd_http_suspended(h) > parked_seen)
			parked_seen = crd_http_suspended(h);
		if (stop_while_waiting && atomic_load(&client_sent) && parked_seen) {
			crd_http_stop(h); /* answers what waits */
			h = NULL;
			break;
		}
	}
	pthread_join(t, NULL);
	crd_http_stop(h);
	return 0;
}

static void run_with(void (*fn)(void))
{
	cr_loop *loop = tu_loop();
	client_fn = fn;
	ck_assert_int_eq(tu_run_on(loop, serve, loop, NULL), 0);
	ck_assert_int_eq(cr_loop_close(loop), 0);
	cr_loop_unref(loop);
}

static void setup(void)
{
	crd_jobs_limits lim = {8, 8, 100, 3600, 1024, 64, 0};
	crd_jobs_ops ops = {fake_start, NULL, NULL, NULL};
	ck_assert_int_eq(crd_jobs_init(&S, &lim, &ops, NULL, NULL), 0);
	crd_jobs_set_prefix(&S, "tst");
	about_to_end = finish_soon = stop_while_waiting = false;
	n_about_asks = 0;
	wait_seconds = 20;
	finish_after = 0;
}

static void teardown(void) { crd_jobs_free(&S); }

/* ------------------------------------------------------ client helpers */

static char buf[8192];

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

/* GET path; read until the connection closes (Connection: close). */
static int get(const char *path)
{
	char req[256];
	int fd = dial();
	size_t len = 0;
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
	ck_assert_int_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
	atomic_store(&client_sent, true);
	for (;;) {
		ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	close(fd);
	return len > 12 ? atoi(buf + 9) : -1;
}

static char path[64];

static void client_wait(void) { ck_assert_int_eq(get(path), 200); }

/* ------------------------------------------------------------- tests */

START_TEST(wait_answers_at_once_for_an_ended_job)
{
	crd_jobrec *j = new_job();
	snprintf(job_id, sizeof(job_id), "%s", j->id);
	crd_jobs_finish(&S, j, CRUND_JOB_SUCCEEDED, NULL, NULL);
	snprintf(path, sizeof(path), "/w/%s", job_id);
	run_with(client_wait);
	ck_assert_ptr_nonnull(strstr(buf, "\"state\":\"succeeded\""));
	ck_assert_uint_eq(parked_seen, 0);
	ck_assert_int_eq(n_about_asks, 0); /* not even deferred */
}
END_TEST

START_TEST(wait_answers_when_a_running_job_ends)
{
	crd_jobrec *j = new_job();
	snprintf(job_id, sizeof(job_id), "%s", j->id);
	snprintf(path, sizeof(path), "/w/%s", job_id);
	cr_handle *h = NULL;
	cr_loop *loop = tu_loop();
	client_fn = client_wait;
	/* ends 0.3 s after the start: the long-poll is parked by then */
	ck_assert_int_eq(cr_call_later(loop, 0.3, finish_now, job_id, &h), 0);
	ck_assert_int_eq(tu_run_on(loop, serve, loop, NULL), 0);
	cr_handle_unref(h);
	ck_assert_int_eq(cr_loop_close(loop), 0);
	cr_loop_unref(loop);
	ck_assert_ptr_nonnull(strstr(buf, "\"state\":\"succeeded\""));
	ck_assert_uint_eq(parked_seen, 1);
}
END_TEST

START_TEST(wait_that_runs_out_answers_the_current_state)
{
	crd_jobrec *j = new_job();
	snprintf(job_id, sizeof(job_id), "%s", j->id);
	snprintf(path, sizeof(path), "/w/%s", job_id);
	wait_seconds = 0.2;
	run_with(client_wait);
	ck_assert_ptr_nonnull(strstr(buf, "\"state\":\"running\""));
	ck_assert_uint_eq(parked_seen, 1);
	ck_assert_ptr_eq(crd_jobs_find(&S, job_id)->subs, NULL); /* unsubscribed */
}
END_TEST

START_TEST(a_job_about_to_end_keeps_its_wait_deferred_not_parked)
{
	crd_jobrec *j = new_job();
	snprintf(job_id, sizeof(job_id), "%s", j->id);
	snprintf(path, sizeof(path), "/w/%s", job_id);
	about_to_end = true;
	finish_soon = true; /* ends on the loop's next turn */
	run_with(client_wait);
	ck_assert_ptr_nonnull(strstr(buf, "\"state\":\"succeeded\""));
	ck_assert_uint_eq(parked_seen, 0);
}
END_TEST

START_TEST(the_stop_answers_a_parked_wait_with_the_current_state)
{
	crd_jobrec *j = new_job();
	snprintf(job_id, sizeof(job_id), "%s", j->id);
	snprintf(path, sizeof(path), "/w/%s", job_id);
	stop_while_waiting = true;
	run_with(client_wait);
	ck_assert_ptr_nonnull(strstr(buf, "\"state\":\"running\""));
	ck_assert_ptr_eq(crd_jobs_find(&S, job_id)->subs, NULL);
}
END_TEST

static void client_stream(void) { ck_assert_int_eq(get(path), 200); }

START_TEST(a_stream_carries_state_progress_and_end)
{
	crd_jobrec *j = new_job();
	snprintf(job_id, sizeof(job_id), "%s", j->id);
	snprintf(path, sizeof(path), "/s/%s", job_id);
	cr_handle *h1 = NULL, *h2 = NULL;
	cr_loop *loop = tu_loop();
	client_fn = client_stream;
	ck_assert_int_eq(cr_call_later(loop, 0.2, progress_now, job_id, &h1), 0);
	ck_assert_int_eq(cr_call_later(loop, 0.4, finish_now, job_id, &h2), 0);
	ck_assert_int_eq(tu_run_on(loop, serve, loop, NULL), 0);
	cr_handle_unref(h1);
	cr_handle_unref(h2);
	ck_assert_int_eq(cr_loop_close(loop), 0);
	cr_loop_unref(loop);
	ck_assert_ptr_nonnull(strcasestr(buf, "Content-Type: text/event-stream"));
	char *st = strstr(buf, "event: state\ndata: "), *pr = strstr(buf, "event: progress\n"),
	     *end = strstr(buf, "event: end\ndata: ");
	ck_assert_msg(st && pr && end && st < pr && pr < end, "%s", buf);
	ck_assert_ptr_nonnull(strstr(end, "\"state\":\"succeeded\""));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("api");
	TCase *tc = tcase_create("wait+stream");
	tcase_set_timeout(tc, 15);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, wait_answers_at_once_for_an_ended_job);
	tcase_add_test(tc, wait_answers_when_a_running_job_ends);
	tcase_add_test(tc, wait_that_runs_out_answers_the_current_state);
	tcase_add_test(tc, a_job_about_to_end_keeps_its_wait_deferred_not_parked);
	tcase_add_test(tc, the_stop_answers_a_parked_wait_with_the_current_state);
	tcase_add_test(tc, a_stream_carries_state_progress_and_end);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return tu_main(suite()); }
