/*
 * test-agen.c — async generators (lib/agen.c).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crunner.h"
#include "testutil.h"

#define IV(x) ((void *)(intptr_t)(x))
#define VI(p) ((int)(intptr_t)(p))

static cr_loop *loop;
static char last_message[256];
static int last_error;
static int reports;
static int cleanups;

static void handler(cr_loop *l, const cr_error_report *r, void *data)
{
	(void)l;
	(void)data;
	reports++;
	last_error = r->error;
	snprintf(last_message, sizeof(last_message), "%s", r->message);
}

static void setup(void)
{
	ck_assert_int_eq(cr_loop_new(NULL, &loop), 0);
	cr_loop_set_exception_handler(loop, handler, NULL);
	reports = 0;
	cleanups = 0;
	last_error = 0;
	last_message[0] = 0;
}

static void teardown(void)
{
	cr_loop_close(loop);
	loop = cr_loop_unref(loop);
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

/* Yields 0..n-1 (n = arg); on close awaits, counts the cleanup, returns. */
static int count_to(void *arg, void **ret)
{
	int n = VI(arg);

	(void)ret;
	for (int i = 0; i < n; i++) {
		int r = cr_agen_yield(IV(i));

		if (r < 0) {
			cr_sleep(0.001); /* cleanup may await */
			cleanups++;
			return r;
		}
	}
	return 0;
}

static int consume_all(void *arg, void **ret)
{
	cr_agen *g;
	void *v;
	int i = 0, r;

	(void)arg;
	(void)ret;
	if (cr_agen_new(count_to, IV(5), NULL, &g) < 0)
		return -ENOMEM;
	while ((r = cr_agen_next(g, &v)) == 0) {
		if (VI(v) != i)
			return -EPROTO;
		i++;
	}
	if (r != -ENODATA || i != 5)
		return -EPROTO;
	/* Exhausted stays exhausted. */
	r = cr_agen_next(g, &v);
	cr_agen_unref(g);
	return r == -ENODATA ? 0 : -EPROTO;
}

START_TEST(yields_values_then_reports_exhaustion)
{
	ck_assert_int_eq(run_main(consume_all, NULL), 0);
}
END_TEST

static int fail_after_one(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	if (cr_agen_yield(IV(1)) < 0)
		return 0;
	return -EIO;
}

static int consume_failing(void *arg, void **ret)
{
	cr_agen *g;
	void *v;
	int r1, r2, r3;

	(void)arg;
	(void)ret;
	if (cr_agen_new(fail_after_one, NULL, NULL, &g) < 0)
		return -ENOMEM;
	r1 = cr_agen_next(g, &v);
	r2 = cr_agen_next(g, &v);
	r3 = cr_agen_next(g, &v);
	cr_agen_unref(g);
	return r1 == 0 && r2 == -EIO && r3 == -ENODATA ? 0 : -EPROTO;
}

START_TEST(body_error_is_passed_through_once)
{
	ck_assert_int_eq(run_main(consume_failing, NULL), 0);
}
END_TEST

static int close_midway(void *arg, void **ret)
{
	cr_agen *g;
	void *v;
	int r;

	(void)arg;
	(void)ret;
	if (cr_agen_new(count_to, IV(10), NULL, &g) < 0)
		return -ENOMEM;
	if (cr_agen_next(g, &v) < 0 || cr_agen_next(g, &v) < 0)
		return -EPROTO;
	r = cr_agen_aclose(g);
	if (r != 0 || cleanups != 1)
		return -EPROTO;
	/* Closed: exhausted, and closing again is a no-op. */
	if (cr_agen_next(g, &v) != -ENODATA || cr_agen_aclose(g) != 0)
		return -EPROTO;
	cr_agen_unref(g);
	return 0;
}

START_TEST(aclose_runs_cleanup_that_awaits) { ck_assert_int_eq(run_main(close_midway, NULL), 0); }
END_TEST

static int close_unstarted(void *arg, void **ret)
{
	cr_agen *g;
	void *v;

	(void)arg;
	(void)ret;
	if (cr_agen_new(count_to, IV(3), NULL, &g) < 0)
		return -ENOMEM;
	if (cr_agen_aclose(g) != 0 || cr_agen_next(g, &v) != -ENODATA)
		return -EPROTO;
	cr_agen_unref(g);
	return cleanups == 0 ? 0 : -EPROTO;
}

START_TEST(aclose_before_first_next_never_runs_body)
{
	ck_assert_int_eq(run_main(close_unstarted, NULL), 0);
}
END_TEST

static cr_ctxvar *var;

static int yield_var(void *arg, void **ret)
{
	void *v = NULL;

	(void)arg;
	(void)ret;
	if (cr_ctxvar_get(var, &v) < 0)
		return -ENOENT;
	cr_agen_yield(v);
	return 0;
}

static int consume_in_context(void *arg, void **ret)
{
	cr_agen *g;
	void *v = NULL;
	int r;

	(void)arg;
	(void)ret;
	cr_ctxvar_set(var, IV(77), NULL);
	if (cr_agen_new(yield_var, NULL, NULL, &g) < 0)
		return -ENOMEM;
	r = cr_agen_next(g, &v);
	cr_agen_aclose(g);
	cr_agen_unref(g);
	return r == 0 && VI(v) == 77 ? 0 : -EPROTO;
}

START_TEST(body_runs_in_consumer_context)
{
	ck_assert_int_eq(cr_ctxvar_new("agen-var", false, NULL, &var), 0);
	ck_assert_int_eq(run_main(consume_in_context, NULL), 0);
	cr_ctxvar_free(var);
}
END_TEST

static int body_sleep_rc;

static int slow_body(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	body_sleep_rc = cr_sleep(10);
	if (body_sleep_rc < 0)
		return body_sleep_rc;
	cr_agen_yield(IV(1));
	return 0;
}

static int consumer_task(void *arg, void **ret)
{
	void *v;

	(void)ret;
	return cr_agen_next(arg, &v);
}

static int cancel_consumer(void *arg, void **ret)
{
	cr_agen *g;
	cr_task *t;
	int r;

	(void)arg;
	(void)ret;
	if (cr_agen_new(slow_body, NULL, NULL, &g) < 0)
		return -ENOMEM;
	if (cr_spawn(consumer_task, g, NULL, &t) < 0)
		return -ENOMEM;
	cr_sleep(0.01);
	cr_task_cancel(t, NULL);
	r = cr_task_join(t, NULL);
	cr_task_unref(t);
	if (r != -ECANCELED)
		return -EPROTO;
	cr_sleep(0.01);
	/* The generator was cancelled at its await and is finished. */
	if (body_sleep_rc != -ECANCELED)
		return -EPROTO;
	r = cr_agen_next(g, NULL);
	cr_agen_unref(g);
	return r == -ENODATA ? 0 : -EPROTO;
}

START_TEST(consumer_cancelled_while_awaiting_next)
{
	body_sleep_rc = 1;
	ck_assert_int_eq(run_main(cancel_consumer, NULL), 0);
}
END_TEST

static int two_consumers(void *arg, void **ret)
{
	cr_agen *g;
	cr_task *t;
	int r;

	(void)arg;
	(void)ret;
	body_sleep_rc = 1;
	if (cr_agen_new(slow_body, NULL, NULL, &g) < 0)
		return -ENOMEM;
	if (cr_spawn(consumer_task, g, NULL, &t) < 0)
		return -ENOMEM;
	cr_sleep(0.005);
	r = cr_agen_next(g, NULL);
	cr_task_cancel(t, NULL);
	cr_task_join(t, NULL);
	cr_task_unref(t);
	cr_agen_unref(g);
	return r == -EBUSY ? 0 : -EPROTO;
}

START_TEST(next_while_running_is_refused) { ck_assert_int_eq(run_main(two_consumers, NULL), 0); }
END_TEST

static int yield_outside(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	return cr_agen_yield(NULL);
}

START_TEST(yield_outside_generator_is_refused)
{
	ck_assert_int_eq(cr_agen_yield(NULL), -EPERM);
	ck_assert_int_eq(run_main(yield_outside, NULL), -EPERM);
}
END_TEST

static int cleanup_fails(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	if (cr_agen_yield(IV(1)) == -ESHUTDOWN) {
		cr_sleep(0.001);
		cleanups++;
		return -EIO;
	}
	return 0;
}

static int start_two_and_shutdown(void *arg, void **ret)
{
	cr_spawn_opts so = {.size = sizeof(so), .name = "bad-gen"};
	cr_agen *a, *b;
	int r;

	(void)arg;
	(void)ret;
	if (cr_agen_new(count_to, IV(10), NULL, &a) < 0 ||
	    cr_agen_new(cleanup_fails, NULL, &so, &b) < 0)
		return -ENOMEM;
	if (cr_agen_next(a, NULL) < 0 || cr_agen_next(b, NULL) < 0)
		return -EPROTO;
	r = cr_loop_shutdown_asyncgens(cr_loop_current());
	cr_agen_unref(a);
	cr_agen_unref(b);
	return r;
}

START_TEST(shutdown_asyncgens_closes_all_and_reports_errors)
{
	ck_assert_int_eq(run_main(start_two_and_shutdown, NULL), 0);
	ck_assert_int_eq(cleanups, 2);
	ck_assert_int_eq(reports, 1);
	ck_assert_int_eq(last_error, -EIO);
	ck_assert_ptr_nonnull(strstr(last_message, "bad-gen"));
	ck_assert_ptr_nonnull(strstr(last_message, "asynchronous generator"));
}
END_TEST

static int drop_suspended(void *arg, void **ret)
{
	cr_agen *g;

	(void)arg;
	(void)ret;
	if (cr_agen_new(count_to, IV(10), NULL, &g) < 0)
		return -ENOMEM;
	if (cr_agen_next(g, NULL) < 0)
		return -EPROTO;
	cr_agen_unref(g);
	for (int i = 0; i < 100 && cleanups == 0; i++)
		cr_sleep(0.001);
	return cleanups == 1 ? 0 : -EPROTO;
}

START_TEST(dropped_generator_is_closed_by_the_loop)
{
	ck_assert_int_eq(run_main(drop_suspended, NULL), 0);
}
END_TEST

/* Generator ids come from one process-wide counter, like task ids: two
 * loops in two threads never hand out the same default name. */
enum { ID_GENS = 20000 };
static char *id_names[2][ID_GENS];

static int name_body(void *arg, void **ret)
{
	char **slot = arg;

	(void)ret;
	*slot = strdup(cr_task_name(cr_current_task()));
	return 0;
}

static int make_named(void *arg, void **ret)
{
	char **names = arg;

	(void)ret;
	for (int i = 0; i < ID_GENS; i++) {
		cr_agen *g;

		if (cr_agen_new(name_body, &names[i], NULL, &g) < 0)
			return -ENOMEM;
		if (cr_agen_next(g, NULL) != -ENODATA)
			return -EPROTO;
		cr_agen_unref(g);
	}
	return 0;
}

static void *names_thread(void *arg) { return (void *)(intptr_t)tu_run(make_named, arg, NULL); }

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

START_TEST(generator_ids_unique_across_threads)
{
	pthread_t th[2];
	void *rc;
	char **all = malloc(sizeof(char *) * 2 * ID_GENS);

	for (int k = 0; k < 2; k++)
		ck_assert_int_eq(pthread_create(&th[k], NULL, names_thread, id_names[k]), 0);
	for (int k = 0; k < 2; k++) {
		pthread_join(th[k], &rc);
		ck_assert_int_eq(VI(rc), 0);
	}
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < ID_GENS; i++) {
			ck_assert_ptr_nonnull(id_names[k][i]);
			all[k * ID_GENS + i] = id_names[k][i];
		}
	qsort(all, 2 * ID_GENS, sizeof(char *), cmp_str);
	for (int i = 1; i < 2 * ID_GENS; i++)
		ck_assert_msg(strcmp(all[i - 1], all[i]) != 0, "duplicate name %s", all[i]);
	for (int i = 0; i < 2 * ID_GENS; i++)
		free(all[i]);
	free(all);
}
END_TEST

static Suite *agen_suite(void)
{
	Suite *s = suite_create("agen");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, yields_values_then_reports_exhaustion);
	tcase_add_test(tc, body_error_is_passed_through_once);
	tcase_add_test(tc, aclose_runs_cleanup_that_awaits);
	tcase_add_test(tc, aclose_before_first_next_never_runs_body);
	tcase_add_test(tc, body_runs_in_consumer_context);
	tcase_add_test(tc, consumer_cancelled_while_awaiting_next);
	tcase_add_test(tc, next_while_running_is_refused);
	tcase_add_test(tc, yield_outside_generator_is_refused);
	tcase_add_test(tc, shutdown_asyncgens_closes_all_and_reports_errors);
	tcase_add_test(tc, dropped_generator_is_closed_by_the_loop);
	tcase_add_test(tc, generator_ids_unique_across_threads);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return tu_main(agen_suite()); }
