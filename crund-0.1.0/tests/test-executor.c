/*
 * test-executor.c — the default executor (lib/executor.c).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crunner.h"
#include "testutil.h"

#define IV(x) ((void *)(intptr_t)(x))
#define VI(p) ((int)(intptr_t)(p))

static cr_loop *loop;
static char last_message[256];
static int reports;

static void handler(cr_loop *l, const cr_error_report *r, void *data)
{
	(void)l;
	(void)data;
	reports++;
	snprintf(last_message, sizeof(last_message), "%s", r->message);
}

static void setup(void)
{
	ck_assert_int_eq(cr_loop_new(NULL, &loop), 0);
	cr_loop_set_exception_handler(loop, handler, NULL);
	reports = 0;
	last_message[0] = 0;
}

static void teardown(void)
{
	if (loop) {
		/* Join the workers so that none outlives the test. */
		if (!cr_loop_is_closed(loop))
			cr_loop_shutdown_default_executor(loop, 5);
		cr_loop_close(loop);
		loop = cr_loop_unref(loop);
	}
}

static int run_main(cr_fn fn, void *arg)
{
	cr_task *t;
	int r;

	ck_assert_int_eq(cr_loop_spawn(loop, fn, arg, NULL, &t), 0);
	r = cr_loop_run_until_complete(loop, t);
	cr_task_unref(t);
	return r;
}

static void msleep(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ------------------------------------------------------------ basics */

static pthread_t main_thread;

static int blocking_echo(void *arg, void **ret)
{
	if (pthread_equal(pthread_self(), main_thread))
		return -EPROTO; /* must run on a worker */
	*ret = arg;
	return 7;
}

static int call_echo(void *arg, void **ret)
{
	void *v = NULL;
	int r;

	(void)arg;
	(void)ret;
	r = cr_run_in_executor(blocking_echo, IV(123), &v);
	if (r != 7 || VI(v) != 123)
		return -EPROTO;
	if (!pthread_equal(pthread_self(), main_thread))
		return -EPROTO; /* result must come back on the loop thread */
	return 0;
}

START_TEST(result_comes_back_on_loop_thread)
{
	main_thread = pthread_self();
	ck_assert_int_eq(run_main(call_echo, NULL), 0);
}
END_TEST

START_TEST(outside_coroutine_is_refused)
{
	void *v;

	ck_assert_int_eq(cr_run_in_executor(blocking_echo, NULL, &v), -EPERM);
}
END_TEST

static int add_one(void *arg, void **ret)
{
	*ret = IV(VI(arg) + 1);
	return 0;
}

static int one_call(void *arg, void **ret)
{
	void *v = NULL;
	int r = cr_run_in_executor(add_one, arg, &v);

	(void)ret;
	if (r < 0)
		return r;
	return VI(v) == VI(arg) + 1 ? 0 : -EPROTO;
}

#define BATCH 1000

static int gather_many(void *arg, void **ret)
{
	static cr_task *tasks[BATCH];
	int codes[BATCH];
	int r;

	(void)arg;
	(void)ret;
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < BATCH; i++)
			if (cr_spawn(one_call, IV(i), NULL, &tasks[i]) < 0)
				return -ENOMEM;
		r = cr_gather(tasks, BATCH, codes);
		for (int i = 0; i < BATCH; i++)
			cr_task_unref(tasks[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

START_TEST(many_gathered_calls_all_complete)
{
	ck_assert_int_eq(run_main(gather_many, NULL), 0);
	ck_assert_int_eq(cr_loop_shutdown_default_executor(loop, 10), 0);
}
END_TEST

/* ------------------------------------------------- thread count */

static atomic_int started, running_now, max_running;
static atomic_bool release_all;

static int block_until_released(void *arg, void **ret)
{
	int now;

	(void)arg;
	(void)ret;
	atomic_fetch_add(&started, 1);
	now = atomic_fetch_add(&running_now, 1) + 1;
	for (int m = atomic_load(&max_running); now > m;)
		if (atomic_compare_exchange_weak(&max_running, &m, now))
			break;
	while (!atomic_load(&release_all))
		msleep(1);
	atomic_fetch_sub(&running_now, 1);
	return 0;
}

static int call_block(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	return cr_run_in_executor(block_until_released, NULL, NULL);
}

static int saturate(void *arg, void **ret)
{
	int n = VI(arg), expected = n < 40 ? n : 40;
	cr_task *tasks[40];
	int r;

	(void)ret;
	(void)expected;
	for (int i = 0; i < 40; i++)
		if (cr_spawn(call_block, NULL, NULL, &tasks[i]) < 0)
			return -ENOMEM;
	/* Wait until the pool stops growing. */
	for (int i = 0; i < 200 && atomic_load(&started) < n; i++)
		cr_sleep(0.005);
	cr_sleep(0.05);
	atomic_store(&release_all, true);
	r = cr_gather(tasks, 40, NULL);
	for (int i = 0; i < 40; i++)
		cr_task_unref(tasks[i]);
	return r;
}

static void reset_counters(void)
{
	atomic_store(&started, 0);
	atomic_store(&running_now, 0);
	atomic_store(&max_running, 0);
	atomic_store(&release_all, false);
}

START_TEST(worker_count_follows_setting)
{
	reset_counters();
	ck_assert_int_eq(cr_loop_set_executor_threads(loop, 3), 0);
	ck_assert_int_eq(run_main(saturate, IV(3)), 0);
	ck_assert_int_eq(atomic_load(&max_running), 3);
}
END_TEST

START_TEST(default_worker_count_is_cpus_plus_4_capped_at_32)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int expected = (int)(cpus + 4 < 32 ? cpus + 4 : 32);

	reset_counters();
	ck_assert_int_eq(run_main(saturate, IV(expected)), 0);
	ck_assert_int_eq(atomic_load(&max_running), expected);
}
END_TEST

/* Workers that went to sleep after a first burst are all woken by a
 * second one of blocking calls (the baton passes while items pile up). */
static int saturate_twice(void *arg, void **ret)
{
	int r = saturate(arg, ret);

	if (r < 0)
		return r;
	cr_sleep(0.05); /* the workers spin out and block */
	reset_counters();
	return saturate(arg, ret);
}

START_TEST(sleeping_workers_all_wake_for_a_burst)
{
	reset_counters();
	ck_assert_int_eq(cr_loop_set_executor_threads(loop, 4), 0);
	ck_assert_int_eq(run_main(saturate_twice, IV(4)), 0);
	ck_assert_int_eq(atomic_load(&max_running), 4);
	ck_assert_int_eq(atomic_load(&started), 40);
}
END_TEST

/* ---------------------------------------------------------- cancel */

static atomic_bool worker_done;
static atomic_bool worker_go;
static atomic_bool worker_in;

static int slow_fn(void *arg, void **ret)
{
	(void)arg;
	atomic_store(&worker_in, true);
	while (!atomic_load(&worker_go))
		msleep(1);
	*ret = malloc(16); /* a result nobody will take: dropped */
	free(*ret);
	atomic_store(&worker_done, true);
	return 5;
}

static int call_slow(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	return cr_run_in_executor(slow_fn, NULL, NULL);
}

static int cancel_waiting_caller(void *arg, void **ret)
{
	cr_task *t;
	double t0;
	int r;

	(void)arg;
	(void)ret;
	if (cr_spawn(call_slow, NULL, NULL, &t) < 0)
		return -ENOMEM;
	while (!atomic_load(&worker_in))
		cr_sleep(0.001); /* the worker is now inside slow_fn */
	t0 = cr_loop_time(cr_loop_current());
	cr_task_cancel(t, NULL);
	r = cr_task_join(t, NULL);
	cr_task_unref(t);
	if (r != -ECANCELED)
		return -EPROTO;
	if (atomic_load(&worker_done))
		return -EPROTO; /* did not return at once */
	if (cr_loop_time(cr_loop_current()) - t0 > 1.0)
		return -ETIMEDOUT;
	atomic_store(&worker_go, true);
	/* Let the dropped completion come back and be freed. */
	while (!atomic_load(&worker_done))
		cr_sleep(0.001);
	cr_sleep(0.01);
	return 0;
}

START_TEST(cancel_while_waiting_returns_at_once_and_drops_result)
{
	atomic_store(&worker_done, false);
	atomic_store(&worker_go, false);
	atomic_store(&worker_in, false);
	ck_assert_int_eq(run_main(cancel_waiting_caller, NULL), 0);
	ck_assert_int_eq(cr_loop_shutdown_default_executor(loop, 5), 0);
}
END_TEST

static atomic_int queued_runs;

static int count_run(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	atomic_fetch_add(&queued_runs, 1);
	return 0;
}

static int call_count_run(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	return cr_run_in_executor(count_run, NULL, NULL);
}

static int cancel_queued_call(void *arg, void **ret)
{
	cr_task *busy, *queued;
	int r;

	(void)arg;
	(void)ret;
	if (cr_spawn(call_slow, NULL, NULL, &busy) < 0)
		return -ENOMEM;
	while (!atomic_load(&worker_in))
		cr_sleep(0.001); /* the only worker is busy */
	if (cr_spawn(call_count_run, NULL, NULL, &queued) < 0)
		return -ENOMEM;
	cr_sleep(0.005);
	cr_task_cancel(queued, NULL);
	r = cr_task_join(queued, NULL);
	cr_task_unref(queued);
	atomic_store(&worker_go, true);
	if (cr_task_join(busy, NULL) != 5)
		r = -EPROTO;
	cr_task_unref(busy);
	return r;
}

START_TEST(cancelled_queued_call_never_runs)
{
	atomic_store(&worker_done, false);
	atomic_store(&worker_go, false);
	atomic_store(&worker_in, false);
	atomic_store(&queued_runs, 0);
	ck_assert_int_eq(cr_loop_set_executor_threads(loop, 1), 0);
	ck_assert_int_eq(run_main(cancel_queued_call, NULL), -ECANCELED);
	ck_assert_int_eq(cr_loop_shutdown_default_executor(loop, 5), 0);
	ck_assert_int_eq(atomic_load(&queued_runs), 0);
}
END_TEST

/* -------------------------------------------------------- shutdown */

static int shutdown_then_submit(void *arg, void **ret)
{
	int r;

	(void)arg;
	(void)ret;
	r = cr_loop_shutdown_default_executor(cr_loop_current(), 5);
	if (r < 0)
		return r;
	return cr_run_in_executor(add_one, IV(1), NULL);
}

START_TEST(shutdown_refuses_new_work)
{
	ck_assert_int_eq(run_main(shutdown_then_submit, NULL), -ESHUTDOWN);
}
END_TEST

static int sleep_50ms(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	atomic_store(&worker_go, true);
	msleep(50);
	atomic_store(&worker_done, true);
	return 0;
}

static int call_sleep_50(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	return cr_run_in_executor(sleep_50ms, NULL, NULL);
}

static int shutdown_while_busy(void *arg, void **ret)
{
	cr_task *t;
	int r, rj;

	(void)arg;
	(void)ret;
	atomic_store(&worker_go, false);
	if (cr_spawn(call_sleep_50, NULL, NULL, &t) < 0)
		return -ENOMEM;
	while (!atomic_load(&worker_go))
		cr_sleep(0.001);
	r = cr_loop_shutdown_default_executor(cr_loop_current(), 5);
	if (!atomic_load(&worker_done))
		r = -EPROTO; /* returned before the worker finished */
	/* The loop kept running meanwhile: the caller got its result. */
	rj = cr_task_join(t, NULL);
	cr_task_unref(t);
	return r < 0 ? r : rj;
}

START_TEST(shutdown_from_coroutine_waits_for_workers)
{
	atomic_store(&worker_done, false);
	ck_assert_int_eq(run_main(shutdown_while_busy, NULL), 0);
}
END_TEST

static int start_sleep_50(void *arg, void **ret)
{
	cr_task *t;

	(void)arg;
	(void)ret;
	atomic_store(&worker_go, false);
	if (cr_spawn(call_sleep_50, NULL, NULL, &t) < 0)
		return -ENOMEM;
	cr_task_unref(t);
	while (!atomic_load(&worker_go))
		cr_sleep(0.001);
	return 0;
}

START_TEST(shutdown_outside_loop_blocks_until_workers_end)
{
	atomic_store(&worker_done, false);
	ck_assert_int_eq(run_main(start_sleep_50, NULL), 0);
	ck_assert_int_eq(cr_loop_shutdown_default_executor(loop, 5), 0);
	ck_assert(atomic_load(&worker_done));
	ck_assert_int_eq(reports, 0);
	/* A second shutdown is harmless. */
	ck_assert_int_eq(cr_loop_shutdown_default_executor(loop, 5), 0);
}
END_TEST

START_TEST(shutdown_without_executor_then_submit_refused)
{
	ck_assert_int_eq(cr_loop_shutdown_default_executor(loop, 1), 0);
	ck_assert_int_eq(run_main(one_call, IV(1)), -ESHUTDOWN);
}
END_TEST

static atomic_bool worker_started;

static int sleep_300ms(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	atomic_store(&worker_started, true);
	msleep(300);
	atomic_store(&worker_done, true);
	return 0;
}

static int call_sleep_300(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	return cr_run_in_executor(sleep_300ms, NULL, NULL);
}

static int start_sleep_300(void *arg, void **ret)
{
	cr_task *t;
	int r;

	(void)ret;
	atomic_store(&worker_started, false);
	if (cr_spawn(call_sleep_300, NULL, NULL, &t) < 0)
		return -ENOMEM;
	/* Running, not queued: a queued call would be dropped on cancel. */
	while (!atomic_load(&worker_started))
		cr_sleep(0.001);
	r = arg ? cr_loop_shutdown_default_executor(cr_loop_current(), 0.05) : 0;
	cr_task_cancel(t, NULL);
	cr_task_join(t, NULL);
	cr_task_unref(t);
	return r;
}

START_TEST(executor_shutdown_timeout_warns)
{
	atomic_store(&worker_done, false);
	/* From a coroutine... */
	ck_assert_int_eq(run_main(start_sleep_300, IV(1)), -ETIMEDOUT);
	ck_assert_int_eq(reports, 1);
	ck_assert_str_eq(last_message,
			 "The executor did not finishing joining its threads within 0.05 seconds.");
	ck_assert(!atomic_load(&worker_done));
	while (!atomic_load(&worker_done))
		msleep(5);
	msleep(20);
}
END_TEST

START_TEST(executor_shutdown_timeout_warns_outside_loop)
{
	atomic_store(&worker_done, false);
	ck_assert_int_eq(run_main(start_sleep_300, NULL), 0);
	ck_assert_int_eq(cr_loop_shutdown_default_executor(loop, 0.05), -ETIMEDOUT);
	ck_assert_int_eq(reports, 1);
	ck_assert_str_eq(last_message,
			 "The executor did not finishing joining its threads within 0.05 seconds.");
	while (!atomic_load(&worker_done))
		msleep(5);
	msleep(20);
}
END_TEST

START_TEST(late_worker_never_touches_closed_loop)
{
	atomic_store(&worker_done, false);
	ck_assert_int_eq(run_main(start_sleep_300, NULL), 0);
	ck_assert_int_eq(cr_loop_shutdown_default_executor(loop, 0.02), -ETIMEDOUT);
	/* Close and free the loop while the worker still runs; when it ends
	 * it must only free its item (ASan / valgrind watch the rest). */
	ck_assert_int_eq(cr_loop_close(loop), 0);
	loop = cr_loop_unref(loop);
	ck_assert(!atomic_load(&worker_done));
	while (!atomic_load(&worker_done))
		msleep(5);
	msleep(30);
}
END_TEST

START_TEST(loop_closed_without_shutdown_releases_workers)
{
	atomic_store(&worker_done, false);
	ck_assert_int_eq(run_main(start_sleep_50, NULL), 0);
	ck_assert_int_eq(cr_loop_close(loop), 0);
	loop = cr_loop_unref(loop);
	while (!atomic_load(&worker_done))
		msleep(5);
	msleep(30);
}
END_TEST

static Suite *executor_suite(void)
{
	Suite *s = suite_create("executor");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, result_comes_back_on_loop_thread);
	tcase_add_test(tc, outside_coroutine_is_refused);
	tcase_add_test(tc, many_gathered_calls_all_complete);
	tcase_add_test(tc, worker_count_follows_setting);
	tcase_add_test(tc, default_worker_count_is_cpus_plus_4_capped_at_32);
	tcase_add_test(tc, sleeping_workers_all_wake_for_a_burst);
	tcase_add_test(tc, cancel_while_waiting_returns_at_once_and_drops_result);
	tcase_add_test(tc, cancelled_queued_call_never_runs);
	tcase_add_test(tc, shutdown_refuses_new_work);
	tcase_add_test(tc, shutdown_from_coroutine_waits_for_workers);
	tcase_add_test(tc, shutdown_outside_loop_blocks_until_workers_end);
	tcase_add_test(tc, shutdown_without_executor_then_submit_refused);
	tcase_add_test(tc, executor_shutdown_timeout_warns);
	tcase_add_test(tc, executor_shutdown_timeout_warns_outside_loop);
	tcase_add_test(tc, late_worker_never_touches_closed_loop);
	tcase_add_test(tc, loop_closed_without_shutdown_releases_workers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return tu_main(executor_suite()); }
