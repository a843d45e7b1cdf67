/*
 * test-alloc.c — out of memory everywhere, as SQLite's test_malloc: the
 * N-th allocation of the runtime fails, for N = 1, 2, ... until a whole
 * runner lifecycle (create, run with tasks, contexts, timers, an executor
 * job and async generators, close, free) completes without reaching the
 * N-th allocation.  Each run must end with its result or a clean -ENOMEM,
 * never crash or hang; leaks are for ASan / valgrind to report.  Once in
 * "transient" mode (only the N-th fails) and once in "persistent" mode
 * (the N-th and every later one fail, as when memory is really gone).
 *
 * The injector, cr__test_alloc_fail, is test-only (lib/alloc.c); the
 * lifecycle uses the public header only.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "crunner.h"
#include "internal.h"
#include "testutil.h"

#define IV(x) ((void *)(intptr_t)(x))
#define VI(p) ((int)(intptr_t)(p))

/* A bound on N: far above what one lifecycle allocates (~100); reaching
 * it means the loop never saw a clean run. */
enum { MAX_N = 5000 };

static int reports;

static void count_reports(cr_loop *loop, const cr_error_report *r, void *data)
{
	(void)loop;
	(void)r;
	(void)data;
	reports++;
}

static cr_ctxvar *var;

static int child(void *arg, void **ret)
{
	void *v = NULL;
	int rc;

	if ((rc = cr_ctxvar_set(var, arg, NULL)) < 0)
		return rc;
	if ((rc = cr_sleep(0.0005)) < 0)
		return rc;
	if ((rc = cr_ctxvar_get(var, &v)) < 0)
		return rc;
	*ret = v;
	return v == arg ? 0 : -EPROTO;
}

static int blocking(void *arg, void **ret)
{
	*ret = arg;
	return 0;
}

static int gen(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	for (int i = 1;; i++) {
		int rc = cr_agen_yield(IV(i));

		if (rc == -ESHUTDOWN) {
			cr_yield(); /* the cleanup awaits */
			return 0;
		}
		if (rc < 0)
			return rc;
	}
}

static void tick(void *arg) { (*(int *)arg)++; }

/* The main coroutine: every failure is returned as is. */
static int lifecycle_main(void *arg, void **ret)
{
	cr_spawn_opts named = {.size = sizeof(named), .name = "child"};
	cr_task *tasks[3] = {0};
	cr_context *ctx = NULL;
	cr_agen *g = NULL, *dropped = NULL;
	cr_handle *h = NULL;
	void *v = NULL;
	int ticks = 0, rc, n = 0;

	(void)arg;
	if ((rc = cr_ctxvar_set(var, IV(1), NULL)) < 0)
		return rc;
	if ((rc = cr_context_copy_current(&ctx)) < 0)
		return rc;
	named.context = ctx;
	if ((rc = cr_spawn(child, IV(2), &named, &tasks[n])) < 0)
		goto out;
	n++;
	if ((rc = cr_spawn(child, IV(3), NULL, &tasks[n])) < 0)
		goto out;
	n++;
	if ((rc = cr_spawn(child, IV(4), NULL, &tasks[n])) < 0)
		goto out;
	n++;
	if ((rc = cr_call_soon(cr_loop_current(), tick, &ticks, NULL)) < 0)
		goto out;
	if ((rc = cr_call_later(cr_loop_current(), 0.0001, tick, &ticks, &h)) < 0)
		goto out;
	if ((rc = cr_gather(tasks, 3, NULL)) < 0)
		goto out;
	if ((rc = cr_run_in_executor(blocking, IV(5), &v)) < 0)
		goto out;
	if (VI(v) != 5) {
		rc = -EPROTO;
		goto out;
	}
	if ((rc = cr_agen_new(gen, NULL, NULL, &g)) < 0)
		goto out;
	if ((rc = cr_agen_next(g, &v)) < 0 || (rc = cr_agen_next(g, &v)) < 0)
		goto out;
	if ((rc = cr_agen_aclose(g)) < 0)
		goto out;
	/* One dropped while suspended: closed by the loop's finaliser. */
	if ((rc = cr_agen_new(gen, NULL, NULL, &dropped)) < 0)
		goto out;
	rc = cr_agen_next(dropped, &v);
	dropped = cr_agen_unref(dropped);
	if (rc < 0)
		goto out;
	while (ticks < 2)
		if ((rc = cr_sleep(0.0001)) < 0)
			goto out;
	*ret = IV(42);
	rc = 0;
out:
	for (int i = 0; i < n; i++) {
		cr_task_cancel(tasks[i], NULL); /* no-op once done */
		cr_task_unref(tasks[i]);
	}
	cr_handle_unref(h);
	cr_agen_unref(g);
	cr_agen_unref(dropped);
	cr_context_unref(ctx);
	return rc;
}

/* One lifecycle; returns 0 with the result checked, or the first
 * failure. */
static int lifecycle(void)
{
	cr_runner *r = NULL;
	cr_loop *loop;
	void *v = NULL;
	int rc, c;

	var = NULL;
	if ((rc = cr_ctxvar_new("v", true, NULL, &var)) < 0)
		return rc;
	if ((rc = cr_runner_new(NULL, &r)) < 0)
		goto out;
	if ((rc = cr_runner_get_loop(r, &loop)) < 0)
		goto out;
	cr_loop_set_exception_handler(loop, count_reports, NULL);
	rc = cr_runner_run(r, lifecycle_main, NULL, NULL, &v);
	if (rc == 0 && VI(v) != 42)
		rc = -EPROTO;
	c = cr_runner_close(r);
	if (rc == 0)
		rc = c;
out:
	cr_runner_free(r);
	cr_ctxvar_free(var);
	return rc;
}

static void oom_loop(bool persistent)
{
	long n;

	/* A clean run first: the lifecycle itself works. */
	ck_assert_int_eq(lifecycle(), 0);
	for (n = 1; n <= MAX_N; n++) {
		long failures;
		int rc;

		reports = 0;
		if (getenv("TA_TRACE")) /* which N hangs, if one does */
			fprintf(stderr, "n=%ld\n", n);
		cr__test_alloc_fail(n, persistent);
		rc = lifecycle();
		failures = cr__test_alloc_failures();
		cr__test_alloc_fail(0, false);
		ck_assert_msg(rc == 0 || rc == -ENOMEM,
			      "allocation %ld failed (%s): the lifecycle returned %d (%s)", n,
			      persistent ? "persistent" : "transient", rc, cr_strerror(rc));
		if (failures == 0) {
			/* Never reached the n-th allocation: every one before
			 * it was failed in turn. */
			ck_assert_int_eq(rc, 0);
			break;
		}
	}
	ck_assert_msg(n > 10 && n <= MAX_N, "%ld allocations", n - 1);
	/* Still healthy afterwards. */
	ck_assert_int_eq(lifecycle(), 0);
}

START_TEST(every_allocation_failure_is_a_clean_enomem) { oom_loop(false); }
END_TEST

START_TEST(persistent_allocation_failure_is_a_clean_enomem) { oom_loop(true); }
END_TEST

static Suite *alloc_suite(void)
{
	Suite *s = suite_create("alloc");
	TCase *tc = tcase_create("oom");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, every_allocation_failure_is_a_clean_enomem);
	tcase_add_test(tc, persistent_allocation_failure_is_a_clean_enomem);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return tu_main(alloc_suite()); }
