/*
 * test-context.c — context variables (lib/context.c).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "crunner.h"
#include "testutil.h"

#define IV(x) ((void *)(intptr_t)(x))
#define VI(p) ((int)(intptr_t)(p))

static cr_ctxvar *var_x, *var_d;

static void setup(void)
{
	ck_assert_int_eq(cr_ctxvar_new("x", false, NULL, &var_x), 0);
	ck_assert_int_eq(cr_ctxvar_new("d", true, IV(42), &var_d), 0);
}

static void teardown(void)
{
	cr_ctxvar_free(var_x);
	cr_ctxvar_free(var_d);
}

/* Run fn as a task on a fresh loop (optionally in ctx) to completion. */
static int run_task(cr_fn fn, void *arg, cr_context *ctx)
{
	cr_loop *loop;
	cr_task *t;
	cr_spawn_opts so = {.size = sizeof(so), .context = ctx};
	int r;

	ck_assert_int_eq(cr_loop_new(NULL, &loop), 0);
	ck_assert_int_eq(cr_loop_spawn(loop, fn, arg, &so, &t), 0);
	r = cr_loop_run_until_complete(loop, t);
	cr_task_unref(t);
	cr_loop_close(loop);
	cr_loop_unref(loop);
	return r;
}

START_TEST(unset_var_without_default_is_lookup_error)
{
	void *v = IV(7);

	ck_assert_int_eq(cr_ctxvar_get(var_x, &v), -ENOENT);
	ck_assert_ptr_eq(v, IV(7)); /* untouched on failure */
	ck_assert_int_eq(cr_ctxvar_get(var_d, &v), 0);
	ck_assert_int_eq(VI(v), 42);
	ck_assert_str_eq(cr_ctxvar_name(var_x), "x");
}
END_TEST

START_TEST(set_get_and_reset_restores_previous_state)
{
	cr_ctxtoken *t1, *t2;
	void *v;

	ck_assert_int_eq(cr_ctxvar_set(var_x, IV(1), &t1), 0);
	ck_assert_int_eq(cr_ctxvar_get(var_x, &v), 0);
	ck_assert_int_eq(VI(v), 1);
	ck_assert_int_eq(cr_ctxvar_set(var_x, IV(2), &t2), 0);
	ck_assert_int_eq(cr_ctxvar_get(var_x, &v), 0);
	ck_assert_int_eq(VI(v), 2);
	ck_assert_int_eq(cr_ctxvar_reset(var_x, t2), 0);
	ck_assert_int_eq(cr_ctxvar_get(var_x, &v), 0);
	ck_assert_int_eq(VI(v), 1);
	ck_assert_int_eq(cr_ctxvar_reset(var_x, t1), 0);
	ck_assert_int_eq(cr_ctxvar_get(var_x, &v), -ENOENT);
	cr_ctxtoken_free(t1);
	cr_ctxtoken_free(t2);
}
END_TEST

START_TEST(token_used_twice_is_rejected)
{
	cr_ctxtoken *t;
	void *v;

	ck_assert_int_eq(cr_ctxvar_set(var_x, IV(1), &t), 0);
	ck_assert_int_eq(cr_ctxvar_reset(var_x, t), 0);
	ck_assert_int_eq(cr_ctxvar_set(var_x, IV(5), NULL), 0);
	ck_assert_int_eq(cr_ctxvar_reset(var_x, t), -EINVAL);
	ck_assert_int_eq(cr_ctxvar_get(var_x, &v), 0);
	ck_assert_int_eq(VI(v), 5); /* the refused reset changed nothing */
	cr_ctxtoken_free(t);
}
END_TEST

struct tokarg {
	cr_ctxtoken *tok;
};

static int set_in_ctx(void *arg)
{
	struct tokarg *a = arg;

	return cr_ctxvar_set(var_x, IV(9), &a->tok);
}

START_TEST(token_from_another_context_is_rejected)
{
	cr_context *ctx;
	struct tokarg a = {0};
	cr_ctxtoken *t;

	ck_assert_int_eq(cr_context_new(&ctx), 0);
	ck_assert_int_eq(cr_context_run(ctx, set_in_ctx, &a), 0);
	ck_assert_int_eq(cr_ctxvar_reset(var_x, a.tok), -EINVAL);
	/* ...and a token of another variable. */
	ck_assert_int_eq(cr_ctxvar_set(var_d, IV(1), &t), 0);
	ck_assert_int_eq(cr_ctxvar_reset(var_x, t), -EINVAL);
	ck_assert_int_eq(cr_ctxvar_reset(var_d, t), 0);
	cr_ctxtoken_free(t);
	cr_ctxtoken_free(a.tok);
	cr_context_unref(ctx);
}
END_TEST

static int set_x_3(void *arg)
{
	(void)arg;
	return cr_ctxvar_set(var_x, IV(3), NULL);
}

static int set_x_4(void *arg)
{
	(void)arg;
	return cr_ctxvar_set(var_x, IV(4), NULL);
}

START_TEST(context_copy_isolated)
{
	cr_context *a, *b;
	void *v;

	ck_assert_int_eq(cr_context_new(&a), 0);
	ck_assert_uint_eq(cr_context_size(a), 0);
	ck_assert_int_eq(cr_context_run(a, set_x_3, NULL), 0);
	ck_assert_int_eq(cr_context_copy(a, &b), 0);
	ck_assert_uint_eq(cr_context_size(b), 1);
	ck_assert_int_eq(cr_context_get(b, var_x, &v), 0);
	ck_assert_int_eq(VI(v), 3);
	/* A set in the copy does not reach the original... */
	ck_assert_int_eq(cr_context_run(b, set_x_4, NULL), 0);
	ck_assert_int_eq(cr_context_get(a, var_x, &v), 0);
	ck_assert_int_eq(VI(v), 3);
	ck_assert_int_eq(cr_context_get(b, var_x, &v), 0);
	ck_assert_int_eq(VI(v), 4);
	cr_context_unref(b);
	/* ...nor the other way round. */
	ck_assert_int_eq(cr_context_copy(a, &b), 0);
	ck_assert_int_eq(cr_context_run(a, set_x_4, NULL), 0);
	ck_assert_int_eq(cr_context_get(b, var_x, &v), 0);
	ck_assert_int_eq(VI(v), 3);
	ck_assert_int_eq(cr_context_get(b, var_d, &v), 0);
	ck_assert_int_eq(VI(v), 42);
	cr_context_unref(a);
	cr_context_unref(b);
}
END_TEST

START_TEST(copy_current_snapshots_base_context)
{
	cr_context *c;
	void *v;

	ck_assert_ptr_nonnull(cr_context_current());
	ck_assert_ptr_eq(cr_context_current(), cr_context_current());
	ck_assert_int_eq(cr_ctxvar_set(var_x, IV(1), NULL), 0);
	ck_assert_int_eq(cr_context_copy_current(&c), 0);
	ck_assert_int_eq(cr_ctxvar_set(var_x, IV(2), NULL), 0);
	ck_assert_int_eq(cr_context_get(c, var_x, &v), 0);
	ck_assert_int_eq(VI(v), 1);
	cr_context_unref(c);
}
END_TEST

#define NVARS 100

START_TEST(many_variables_in_copies)
{
	cr_ctxvar *vars[NVARS];
	cr_context *a, *b;
	void *v;

	for (int i = 0; i < NVARS; i++)
		ck_assert_int_eq(cr_ctxvar_new("v", false, NULL, &vars[i]), 0);
	/* Set in reverse order to exercise insertion in the middle. */
	for (int i = NVARS - 1; i >= 0; i -= 2)
		ck_assert_int_eq(cr_ctxvar_set(vars[i], IV(i), NULL), 0);
	ck_assert_int_eq(cr_context_copy_current(&a), 0);
	for (int i = 0; i < NVARS; i += 2)
		ck_assert_int_eq(cr_ctxvar_set(vars[i], IV(i), NULL), 0);
	ck_assert_int_eq(cr_context_copy_current(&b), 0);
	ck_assert_uint_eq(cr_context_size(a), NVARS / 2);
	ck_assert_uint_eq(cr_context_size(b), NVARS);
	for (int i = 0; i < NVARS; i++) {
		ck_assert_int_eq(cr_context_get(b, vars[i], &v), 0);
		ck_assert_int_eq(VI(v), i);
		if (i % 2 == 0) {
			ck_assert_int_eq(cr_context_get(a, vars[i], &v), -ENOENT);
		} else {
			ck_assert_int_eq(cr_context_get(a, vars[i], &v), 0);
			ck_assert_int_eq(VI(v), i);
		}
	}
	cr_context_unref(a);
	cr_context_unref(b);
	for (int i = 0; i < NVARS; i++)
		cr_ctxvar_free(vars[i]);
}
END_TEST

static int check_inside(void *arg) { return cr_context_current() == arg ? 0 : -EPROTO; }

static int nested_run(void *arg) { return cr_context_run(arg, check_inside, arg); }

START_TEST(context_run_enters_and_restores)
{
	cr_context *base = cr_context_current(), *c;

	ck_assert_int_eq(cr_context_new(&c), 0);
	ck_assert_int_eq(cr_context_run(c, check_inside, c), 0);
	ck_assert_ptr_eq(cr_context_current(), base);
	/* Entering an already entered context is refused. */
	ck_assert_int_eq(cr_context_run(c, nested_run, c), -EBUSY);
	ck_assert_int_eq(cr_context_run(base, check_inside, base), -EBUSY);
	cr_context_unref(c);
}
END_TEST

static int child_sets(void *arg, void **ret)
{
	void *v;

	(void)arg;
	(void)ret;
	if (cr_ctxvar_get(var_x, &v) < 0 || VI(v) != 1)
		return -EPROTO;
	return cr_ctxvar_set(var_x, IV(2), NULL);
}

static int parent_spawns(void *arg, void **ret)
{
	cr_task *t;
	void *v;
	int r;

	(void)arg;
	(void)ret;
	if (cr_ctxvar_set(var_x, IV(1), NULL) < 0)
		return -EIO;
	if (cr_spawn(child_sets, NULL, NULL, &t) < 0)
		return -EIO;
	r = cr_task_join(t, NULL);
	cr_task_unref(t);
	if (r < 0)
		return r;
	if (cr_ctxvar_get(var_x, &v) < 0 || VI(v) != 1)
		return -EPROTO; /* the child's set leaked into its creator */
	return 0;
}

START_TEST(task_without_context_runs_in_a_copy)
{
	void *v;

	ck_assert_int_eq(run_task(parent_spawns, NULL, NULL), 0);
	/* The base context never saw the task's sets either. */
	ck_assert_int_eq(cr_ctxvar_get(var_x, &v), -ENOENT);
}
END_TEST

static int setter(void *arg, void **ret)
{
	(void)ret;
	return cr_ctxvar_set(var_x, arg, NULL);
}

static int reader(void *arg, void **ret)
{
	void *v;

	(void)arg;
	(void)ret;
	if (cr_ctxvar_get(var_x, &v) < 0)
		return -ENOENT;
	return VI(v);
}

static int two_tasks_shared(void *arg, void **ret)
{
	cr_spawn_opts so = {.size = sizeof(so), .context = arg};
	cr_task *a, *b;
	int r;

	(void)ret;
	if (cr_spawn(setter, IV(11), &so, &a) < 0)
		return -EIO;
	r = cr_task_join(a, NULL);
	cr_task_unref(a);
	if (r < 0)
		return r;
	if (cr_spawn(reader, NULL, &so, &b) < 0)
		return -EIO;
	r = cr_task_join(b, NULL);
	cr_task_unref(b);
	return r;
}

START_TEST(tasks_given_one_context_share_it)
{
	cr_context *c;
	void *v;

	ck_assert_int_eq(cr_context_new(&c), 0);
	ck_assert_int_eq(run_task(two_tasks_shared, c, NULL), 11);
	ck_assert_int_eq(cr_context_get(c, var_x, &v), 0);
	ck_assert_int_eq(VI(v), 11);
	cr_context_unref(c);
}
END_TEST

static void *thread_reads(void *arg)
{
	void *v;

	(void)arg;
	return IV(cr_ctxvar_get(var_x, &v));
}

START_TEST(threads_have_their_own_base_context)
{
	pthread_t th;
	void *res;

	ck_assert_int_eq(cr_ctxvar_set(var_x, IV(1), NULL), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, thread_reads, NULL), 0);
	ck_assert_int_eq(pthread_join(th, &res), 0);
	ck_assert_int_eq(VI(res), -ENOENT);
}
END_TEST

static Suite *context_suite(void)
{
	Suite *s = suite_create("context");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, unset_var_without_default_is_lookup_error);
	tcase_add_test(tc, set_get_and_reset_restores_previous_state);
	tcase_add_test(tc, token_used_twice_is_rejected);
	tcase_add_test(tc, token_from_another_context_is_rejected);
	tcase_add_test(tc, context_copy_isolated);
	tcase_add_test(tc, copy_current_snapshots_base_context);
	tcase_add_test(tc, many_variables_in_copies);
	tcase_add_test(tc, context_run_enters_and_restores);
	tcase_add_test(tc, task_without_context_runs_in_a_copy);
	tcase_add_test(tc, tasks_given_one_context_share_it);
	tcase_add_test(tc, threads_have_their_own_base_context);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return tu_main(context_suite()); }
