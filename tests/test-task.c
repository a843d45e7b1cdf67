/*
 * test-task.c — tasks: spawn, join, names, cancellation rules, shield,
 * wait_for, gather, wait, sleep/yield ordering, done callbacks, contexts,
 * debug-mode reports.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "testutil.h"

static int ret_value_fn(void *arg, void **ret)
{
	*ret = arg;
	return 7;
}

static int fail_fn(void *arg, void **ret)
{
	(void)ret;
	return (int)(intptr_t)arg;
}

static int sleep_fn(void *arg, void **ret)
{
	(void)ret;
	return cr_sleep(*(double *)arg);
}

static int forever_fn(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	return cr_sleep(1000);
}

/* ------------------------------------------------------------------ */

static int join_main(void *arg, void **ret)
{
	cr_task *t;
	void *v = NULL;
	int rc;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_spawn(ret_value_fn, (void *)0x1234, NULL, &t), 0);
	ck_assert(!cr_task_done(t));
	ck_assert_int_eq(cr_task_result(t, &v), -EAGAIN);
	rc = cr_task_join(t, &v);
	ck_assert_int_eq(rc, 7);
	ck_assert_ptr_eq(v, (void *)0x1234);
	ck_assert(cr_task_done(t));
	ck_assert(!cr_task_cancelled(t));
	ck_assert_int_eq(cr_task_result(t, &v), 7);
	ck_assert_ptr_eq(cr_task_loop(t), cr_loop_current());
	cr_task_unref(t);
	return 0;
}

START_TEST(join_returns_code_and_value) { ck_assert_int_eq(tu_run(join_main, NULL, NULL), 0); }
END_TEST

static int name_main(void *arg, void **ret)
{
	cr_task *a, *b;
	char buf[] = "worker";
	cr_spawn_opts o = {.size = sizeof(o), .name = buf};

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_spawn(ret_value_fn, NULL, NULL, &a), 0);
	ck_assert_int_eq(cr_spawn(ret_value_fn, NULL, &o, &b), 0);
	buf[0] = 'X'; /* the name was copied */
	ck_assert(strncmp(cr_task_name(a), "Task-", 5) == 0);
	ck_assert(atoi(cr_task_name(a) + 5) > 0);
	ck_assert_str_eq(cr_task_name(b), "worker");
	ck_assert(strncmp(cr_task_name(cr_current_task()), "Task-", 5) == 0);
	cr_task_join(a, NULL);
	cr_task_join(b, NULL);
	cr_task_unref(a);
	cr_task_unref(b);
	return 0;
}

START_TEST(default_name_is_task_n_and_given_name_is_copied)
{
	ck_assert_int_eq(tu_run(name_main, NULL, NULL), 0);
}
END_TEST

static int yield_loop_fn(void *arg, void **ret)
{
	int *seen = arg;
	int rc;

	(void)ret;
	for (;;) {
		rc = cr_yield();
		if (rc < 0) {
			*seen = rc;
			return rc;
		}
	}
}

static int cancel_next_await_main(void *arg, void **ret)
{
	cr_task *t;
	int seen = 0;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_spawn(yield_loop_fn, &seen, NULL, &t), 0);
	for (int i = 0; i < 5; i++)
		cr_yield();
	ck_assert_int_eq(cr_task_cancel(t, "stop it"), 0);
	ck_assert_int_eq(cr_task_cancelling(t), 1);
	ck_assert_str_eq(cr_task_cancel_message(t), "stop it");
	ck_assert_int_eq(cr_task_join(t, NULL), -ECANCELED);
	ck_assert_int_eq(seen, -ECANCELED);
	ck_assert(cr_task_cancelled(t));
	ck_assert_int_eq(cr_task_cancel(t, NULL), -EALREADY);
	cr_task_unref(t);
	return 0;
}

START_TEST(cancel_delivered_at_next_await)
{
	ck_assert_int_eq(tu_run(cancel_next_await_main, NULL, NULL), 0);
}
END_TEST

static int must_not_run_fn(void *arg, void **ret)
{
	(void)ret;
	*(int *)arg = 1;
	return 0;
}

static int cancel_before_start_main(void *arg, void **ret)
{
	cr_task *t;
	int ran = 0;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_spawn(must_not_run_fn, &ran, NULL, &t), 0);
	ck_assert_int_eq(cr_task_cancel(t, NULL), 0);
	ck_assert_int_eq(cr_task_join(t, NULL), -ECANCELED);
	ck_assert_int_eq(ran, 0);
	cr_task_unref(t);
	return 0;
}

START_TEST(cancel_before_start_never_runs_body)
{
	ck_assert_int_eq(tu_run(cancel_before_start_main, NULL, NULL), 0);
}
END_TEST

struct cleanup_state {
	int first, second, third;
};

static int cleanup_fn(void *arg, void **ret)
{
	struct cleanup_state *s = arg;

	(void)ret;
	s->first = cr_sleep(100);
	/* Delivered once: cleanup can await. */
	s->second = cr_sleep(0.001);
	s->third = cr_yield();
	return s->first;
}

/* Cancel a task parked in its first await `times` times before it runs
 * again: it gets one -ECANCELED (asyncio throws one CancelledError for
 * them all), every request is counted, and its cleanup awaits. */
static void cancel_parked(int times)
{
	struct cleanup_state s = {1, 1, 1};
	cr_task *t;

	ck_assert_int_eq(cr_spawn(cleanup_fn, &s, NULL, &t), 0);
	cr_yield();
	double t0 = cr_loop_time(cr_loop_current());
	for (int i = 0; i < times; i++)
		ck_assert_int_eq(cr_task_cancel(t, NULL), 0);
	ck_assert_int_eq(cr_task_cancelling(t), times);
	ck_assert_int_eq(cr_task_join(t, NULL), -ECANCELED);
	ck_assert(cr_loop_time(cr_loop_current()) - t0 < 10);
	ck_assert_int_eq(s.first, -ECANCELED);
	ck_assert_int_eq(s.second, 0);
	ck_assert_int_eq(s.third, 0);
	cr_task_unref(t);
}

static int cleanup_main(void *arg, void **ret)
{
	(void)ret;
	for (int times = 1; times <= *(int *)arg; times++)
		cancel_parked(times);
	return 0;
}

START_TEST(cancel_delivered_once_so_cleanup_can_await)
{
	int times = 1;
	ck_assert_int_eq(tu_run(cleanup_main, &times, NULL), 0);
}
END_TEST

START_TEST(cancels_before_the_task_runs_again_are_delivered_together)
{
	int times = 3;
	ck_assert_int_eq(tu_run(cleanup_main, &times, NULL), 0);
}
END_TEST

static int swallow_fn(void *arg, void **ret)
{
	bool uncancel = *(bool *)arg;
	int rc = cr_sleep(100);

	(void)ret;
	ck_assert_int_eq(rc, -ECANCELED);
	if (uncancel)
		ck_assert_int_eq(cr_task_uncancel(cr_current_task()), 0);
	return 0; /* swallow */
}

static int swallow_main(void *arg, void **ret)
{
	bool uncancel = false;
	cr_task *t;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_spawn(swallow_fn, &uncancel, NULL, &t), 0);
	cr_yield();
	cr_task_cancel(t, NULL);
	/* Success while a cancellation is counted: ends cancelled. */
	ck_assert_int_eq(cr_task_join(t, NULL), -ECANCELED);
	ck_assert(cr_task_cancelled(t));
	cr_task_unref(t);

	uncancel = true;
	ck_assert_int_eq(cr_spawn(swallow_fn, &uncancel, NULL, &t), 0);
	cr_yield();
	cr_task_cancel(t, NULL);
	ck_assert_int_eq(cr_task_join(t, NULL), 0);
	ck_assert(!cr_task_cancelled(t));
	cr_task_unref(t);
	return 0;
}

START_TEST(success_while_cancelled_ends_cancelled_unless_uncancelled)
{
	ck_assert_int_eq(tu_run(swallow_main, NULL, NULL), 0);
}
END_TEST

static int count_fn(void *arg, void **ret)
{
	cr_task *self = cr_current_task();

	(void)arg;
	(void)ret;
	cr_task_cancel(self, NULL);
	cr_task_cancel(self, "second");
	ck_assert_int_eq(cr_task_cancelling(self), 2);
	ck_assert_int_eq(cr_task_uncancel(self), 1);
	/* Still one pending: the next await gets it. */
	ck_assert_int_eq(cr_yield(), -ECANCELED);
	ck_assert_int_eq(cr_yield(), 0);
	ck_assert_int_eq(cr_task_uncancel(self), 0);
	ck_assert_int_eq(cr_task_uncancel(self), 0);
	/* Cancelled and uncancelled before delivery: withdrawn. */
	cr_task_cancel(self, NULL);
	ck_assert_int_eq(cr_task_uncancel(self), 0);
	ck_assert_int_eq(cr_yield(), 0);
	return 0;
}

START_TEST(cancel_is_counted_and_uncancel_withdraws)
{
	ck_assert_int_eq(tu_run(count_fn, NULL, NULL), 0);
}
END_TEST

static int join_cancel_main(void *arg, void **ret)
{
	cr_task *inner = arg;

	(void)ret;
	return cr_task_join(inner, NULL);
}

static int join_propagates_main(void *arg, void **ret)
{
	cr_task *inner, *outer;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_spawn(forever_fn, NULL, NULL, &inner), 0);
	ck_assert_int_eq(cr_spawn(join_cancel_main, inner, NULL, &outer), 0);
	cr_sleep(0.001);
	cr_task_cancel(outer, "bye");
	ck_assert_int_eq(cr_task_join(outer, NULL), -ECANCELED);
	ck_assert(cr_task_cancelled(inner));
	ck_assert_str_eq(cr_task_cancel_message(inner), "bye");
	cr_task_unref(inner);
	cr_task_unref(outer);
	return 0;
}

START_TEST(join_cancelled_cancels_awaited_task)
{
	ck_assert_int_eq(tu_run(join_propagates_main, NULL, NULL), 0);
}
END_TEST

static int shield_fn(void *arg, void **ret)
{
	(void)ret;
	return cr_shield(arg, NULL);
}

static int shield_main(void *arg, void **ret)
{
	cr_task *inner, *outer;
	double d = 0.02;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_spawn(sleep_fn, &d, NULL, &inner), 0);
	ck_assert_int_eq(cr_spawn(shield_fn, inner, NULL, &outer), 0);
	cr_yield();
	cr_yield();
	cr_task_cancel(outer, NULL);
	ck_assert_int_eq(cr_task_join(outer, NULL), -ECANCELED);
	ck_assert(!cr_task_done(inner));
	ck_assert_int_eq(cr_task_join(inner, NULL), 0);
	cr_task_unref(inner);
	cr_task_unref(outer);
	return 0;
}

START_TEST(shield_keeps_inner_running) { ck_assert_int_eq(tu_run(shield_main, NULL, NULL), 0); }
END_TEST

static int wait_for_main(void *arg, void **ret)
{
	cr_task *t;
	void *v = NULL;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_spawn(forever_fn, NULL, NULL, &t), 0);
	ck_assert_int_eq(cr_wait_for(t, 0.01, &v), -ETIMEDOUT);
	ck_assert(cr_task_cancelled(t));
	ck_assert_int_eq(cr_task_cancelling(cr_current_task()), 0);
	cr_task_unref(t);

	ck_assert_int_eq(cr_spawn(ret_value_fn, (void *)0x42, NULL, &t), 0);
	ck_assert_int_eq(cr_wait_for(t, 5, &v), 7);
	ck_assert_ptr_eq(v, (void *)0x42);
	cr_task_unref(t);

	ck_assert_int_eq(cr_spawn(ret_value_fn, NULL, NULL, &t), 0);
	ck_assert_int_eq(cr_wait_for(t, -1, NULL), 7);
	cr_task_unref(t);
	/* The scopes left nothing behind: a later await works. */
	ck_assert_int_eq(cr_sleep(0.001), 0);
	return 0;
}

START_TEST(wait_for_times_out_cancels_inner_else_returns_result)
{
	ck_assert_int_eq(tu_run(wait_for_main, NULL, NULL), 0);
}
END_TEST

static int gather_main(void *arg, void **ret)
{
	cr_task *t[4];
	int codes[4];
	double d = 0.005;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_spawn(sleep_fn, &d, NULL, &t[0]), 0);
	ck_assert_int_eq(cr_spawn(fail_fn, (void *)(intptr_t)-EIO, NULL, &t[1]), 0);
	ck_assert_int_eq(cr_spawn(fail_fn, (void *)(intptr_t)-ENOENT, NULL, &t[2]), 0);
	ck_assert_int_eq(cr_spawn(fail_fn, (void *)(intptr_t)3, NULL, &t[3]), 0);
	ck_assert_int_eq(cr_gather(t, 4, codes), -EIO);
	ck_assert_int_eq(codes[0], 0);
	ck_assert_int_eq(codes[1], -EIO);
	ck_assert_int_eq(codes[2], -ENOENT);
	ck_assert_int_eq(codes[3], 3);
	for (int i = 0; i < 4; i++)
		cr_task_unref(t[i]);
	ck_assert_int_eq(cr_gather(NULL, 0, NULL), 0);
	return 0;
}

START_TEST(gather_returns_first_failure_by_position)
{
	ck_assert_int_eq(tu_run(gather_main, NULL, NULL), 0);
}
END_TEST

struct gather_arg {
	cr_task *t[3];
};

static int gatherer_fn(void *arg, void **ret)
{
	struct gather_arg *g = arg;

	(void)ret;
	return cr_gather(g->t, 3, NULL);
}

static int gather_cancel_main(void *arg, void **ret)
{
	struct gather_arg g;
	cr_task *outer;

	(void)arg;
	(void)ret;
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(cr_spawn(forever_fn, NULL, NULL, &g.t[i]), 0);
	ck_assert_int_eq(cr_spawn(gatherer_fn, &g, NULL, &outer), 0);
	cr_sleep(0.001);
	cr_task_cancel(outer, NULL);
	ck_assert_int_eq(cr_task_join(outer, NULL), -ECANCELED);
	for (int i = 0; i < 3; i++) {
		ck_assert(cr_task_cancelled(g.t[i]));
		cr_task_unref(g.t[i]);
	}
	cr_task_unref(outer);
	return 0;
}

START_TEST(gather_cancelled_cancels_children_and_waits_for_them)
{
	ck_assert_int_eq(tu_run(gather_cancel_main, NULL, NULL), 0);
}
END_TEST

static int wait_main(void *arg, void **ret)
{
	cr_task *t[3];
	/* d2 far from the 0.01 s wait below, so a slow run (valgrind on a
	 * loaded machine) cannot see t[1] finish within it */
	double d1 = 0.001, d2 = 0.5;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_spawn(sleep_fn, &d1, NULL, &t[0]), 0);
	ck_assert_int_eq(cr_spawn(sleep_fn, &d2, NULL, &t[1]), 0);
	ck_assert_int_eq(cr_spawn(forever_fn, NULL, NULL, &t[2]), 0);
	ck_assert_int_eq(cr_wait(t, 3, CR_WAIT_FIRST_COMPLETED, -1), 1);
	ck_assert(cr_task_done(t[0]));
	ck_assert_int_eq(cr_wait(t, 3, CR_WAIT_ALL, 0.01), 1);
	ck_assert(!cr_task_done(t[2])); /* not cancelled on timeout */
	ck_assert_int_eq(cr_wait(t, 2, CR_WAIT_ALL, -1), 2);
	cr_task_cancel(t[2], NULL);
	ck_assert_int_eq(cr_wait(t, 3, CR_WAIT_ALL, -1), 3);
	for (int i = 0; i < 3; i++)
		cr_task_unref(t[i]);

	ck_assert_int_eq(cr_spawn(forever_fn, NULL, NULL, &t[0]), 0);
	ck_assert_int_eq(cr_spawn(fail_fn, (void *)(intptr_t)-EIO, NULL, &t[1]), 0);
	ck_assert_int_eq(cr_wait(t, 2, CR_WAIT_FIRST_ERROR, -1), 1);
	ck_assert_int_eq(cr_task_result(t[1], NULL), -EIO);
	cr_task_cancel(t[0], NULL);
	cr_task_join(t[0], NULL);
	cr_task_unref(t[0]);
	cr_task_unref(t[1]);

	/* a cancelled task is no error for FIRST_ERROR (FIRST_EXCEPTION
	 * skips cancelled futures): it waits for the other one */
	ck_assert_int_eq(cr_spawn(fail_fn, (void *)(intptr_t)-ECANCELED, NULL, &t[0]), 0);
	ck_assert_int_eq(cr_spawn(sleep_fn, &d1, NULL, &t[1]), 0);
	ck_assert_int_eq(cr_wait(t, 2, CR_WAIT_FIRST_ERROR, -1), 2);
	ck_assert(cr_task_cancelled(t[0]));
	ck_assert_int_eq(cr_task_result(t[1], NULL), 0);
	/* and one already cancelled does not end the wait at once either */
	cr_task_unref(t[1]);
	ck_assert_int_eq(cr_spawn(sleep_fn, &d1, NULL, &t[1]), 0);
	ck_assert_int_eq(cr_wait(t, 2, CR_WAIT_FIRST_ERROR, -1), 2);
	cr_task_unref(t[0]);
	cr_task_unref(t[1]);
	return 0;
}

START_TEST(wait_modes_and_timeout_return_finished_count)
{
	ck_assert_int_eq(tu_run(wait_main, NULL, NULL), 0);
}
END_TEST

struct order {
	int seq[16];
	int n;
};

struct order_arg {
	struct order *o;
	int id;
	double delay;
};

static int order_sleep_fn(void *arg, void **ret)
{
	struct order_arg *a = arg;

	(void)ret;
	cr_sleep(a->delay);
	a->o->seq[a->o->n++] = a->id;
	return 0;
}

static int sleep_order_main(void *arg, void **ret)
{
	struct order o = {.n = 0};
	struct order_arg a[4] = {
		{&o, 0, 0.03},
		{&o, 1, 0.01},
		{&o, 2, 0.02},
		{&o, 3, 0.01},
	};
	cr_task *t[4];

	(void)arg;
	(void)ret;
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(cr_spawn(order_sleep_fn, &a[i], NULL, &t[i]), 0);
	ck_assert_int_eq(cr_gather(t, 4, NULL), 0);
	ck_assert_int_eq(o.seq[0], 1);
	ck_assert_int_eq(o.seq[1], 3);
	ck_assert_int_eq(o.seq[2], 2);
	ck_assert_int_eq(o.seq[3], 0);
	for (int i = 0; i < 4; i++)
		cr_task_unref(t[i]);
	return 0;
}

START_TEST(sleepers_wake_in_deadline_order)
{
	ck_assert_int_eq(tu_run(sleep_order_main, NULL, NULL), 0);
}
END_TEST

static int rr_fn(void *arg, void **ret)
{
	struct order_arg *a = arg;

	(void)ret;
	for (int i = 0; i < 3; i++) {
		a->o->seq[a->o->n++] = a->id;
		cr_yield();
	}
	return 0;
}

static int rr_main(void *arg, void **ret)
{
	struct order o = {.n = 0};
	struct order_arg a[3] = {{&o, 0, 0}, {&o, 1, 0}, {&o, 2, 0}};
	cr_task *t[3];

	(void)arg;
	(void)ret;
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(cr_spawn(rr_fn, &a[i], NULL, &t[i]), 0);
	ck_assert_int_eq(cr_gather(t, 3, NULL), 0);
	ck_assert_int_eq(o.n, 9);
	for (int i = 0; i < 9; i++)
		ck_assert_int_eq(o.seq[i], i % 3);
	for (int i = 0; i < 3; i++)
		cr_task_unref(t[i]);
	return 0;
}

START_TEST(yielding_tasks_take_turns_in_spawn_order)
{
	ck_assert_int_eq(tu_run(rr_main, NULL, NULL), 0);
}
END_TEST

struct cb_state {
	int calls;
	cr_task *seen;
	bool was_done;
};

static void done_cb(cr_task *t, void *arg)
{
	struct cb_state *s = arg;

	s->calls++;
	s->seen = t;
	s->was_done = cr_task_done(t);
}

static int done_cb_main(void *arg, void **ret)
{
	struct cb_state s = {0}, s2 = {0};
	cr_task *t;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_spawn(ret_value_fn, NULL, NULL, &t), 0);
	ck_assert_int_eq(cr_task_add_done_callback(t, done_cb, &s), 0);
	cr_task_join(t, NULL);
	/* Done callbacks run soon after, not synchronously. */
	ck_assert_int_eq(s.calls, 0);
	cr_yield();
	ck_assert_int_eq(s.calls, 1);
	ck_assert_ptr_eq(s.seen, t);
	ck_assert(s.was_done);
	ck_assert_int_eq(cr_task_add_done_callback(t, done_cb, &s2), 0);
	ck_assert_int_eq(s2.calls, 0);
	cr_yield();
	ck_assert_int_eq(s2.calls, 1);
	ck_assert_int_eq(s.calls, 1);
	cr_task_unref(t);
	return 0;
}

START_TEST(done_callbacks_run_soon_after_completion)
{
	ck_assert_int_eq(tu_run(done_cb_main, NULL, NULL), 0);
}
END_TEST

START_TEST(awaiting_outside_a_task_returns_eperm)
{
	cr_task *t = NULL;

	ck_assert_int_eq(cr_yield(), -EPERM);
	ck_assert_int_eq(cr_sleep(0.1), -EPERM);
	ck_assert_int_eq(cr_spawn(ret_value_fn, NULL, NULL, &t), -EPERM);
	ck_assert_int_eq(cr_gather(NULL, 0, NULL), -EPERM);
	ck_assert_int_eq(cr_wait_fd(0, CR_READ, 0), -EPERM);
	ck_assert_ptr_null(cr_current_task());
	ck_assert_ptr_null(cr_loop_current());
}
END_TEST

static int self_join_fn(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	return cr_task_join(cr_current_task(), NULL);
}

START_TEST(joining_itself_is_refused)
{
	ck_assert_int_eq(tu_run(self_join_fn, NULL, NULL), -EDEADLK);
}
END_TEST

START_TEST(spawn_on_closed_loop_fails)
{
	cr_loop *loop = tu_loop();
	cr_task *t = NULL;

	cr_loop_close(loop);
	ck_assert_int_eq(cr_loop_spawn(loop, ret_value_fn, NULL, NULL, &t), -ESHUTDOWN);
	cr_loop_unref(loop);
}
END_TEST

static cr_ctxvar *var;

static int ctx_child(void *arg, void **ret)
{
	void *v = NULL;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_ctxvar_get(var, &v), 0);
	ck_assert_ptr_eq(v, (void *)1);
	cr_ctxvar_set(var, (void *)2, NULL);
	return 0;
}

static int ctx_main(void *arg, void **ret)
{
	cr_task *t;
	void *v = NULL;
	cr_context *shared;
	cr_spawn_opts o = {.size = sizeof(o)};

	(void)arg;
	(void)ret;
	cr_ctxvar_set(var, (void *)1, NULL);
	/* A copy: the child's set is not seen here. */
	ck_assert_int_eq(cr_spawn(ctx_child, NULL, NULL, &t), 0);
	ck_assert_int_eq(cr_task_join(t, NULL), 0);
	cr_task_unref(t);
	ck_assert_int_eq(cr_ctxvar_get(var, &v), 0);
	ck_assert_ptr_eq(v, (void *)1);
	/* Given a context: runs IN it. */
	ck_assert_int_eq(cr_context_copy_current(&shared), 0);
	o.context = shared;
	ck_assert_int_eq(cr_spawn(ctx_child, NULL, &o, &t), 0);
	ck_assert_int_eq(cr_task_join(t, NULL), 0);
	cr_task_unref(t);
	ck_assert_int_eq(cr_context_get(shared, var, &v), 0);
	ck_assert_ptr_eq(v, (void *)2);
	cr_context_unref(shared);
	return 0;
}

START_TEST(task_runs_in_copy_of_creator_context_or_in_given_one)
{
	ck_assert_int_eq(cr_ctxvar_new("v", false, NULL, &var), 0);
	ck_assert_int_eq(tu_run(ctx_main, NULL, NULL), 0);
	cr_ctxvar_free(var);
}
END_TEST

static double real_now(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

static int busy_fn(void *arg, void **ret)
{
	double until = real_now() + *(double *)arg;
	struct timespec ts = {0, 1000000};

	(void)ret;
	/* Hold the loop without awaiting. */
	while (real_now() < until)
		nanosleep(&ts, NULL);
	return -EIO;
}

static int spawn_failing_main(void *arg, void **ret)
{
	(void)ret;
	ck_assert_int_eq(cr_spawn(fail_fn, (void *)(intptr_t)-EIO, NULL, arg), 0);
	cr_yield();
	cr_yield();
	return 0;
}

struct debug_reports {
	int slow_busy; /* "Executing task busy took ..." */
	int never;     /* "Task exception was never retrieved" */
	int never_error;
};

static void debug_handler(cr_loop *loop, const cr_error_report *r, void *data)
{
	struct debug_reports *d = data;

	(void)loop;
	/* Under valgrind other steps may be slow too: count only ours. */
	if (strstr(r->message, "Executing task busy took"))
		d->slow_busy++;
	if (strcmp(r->message, "Task exception was never retrieved") == 0) {
		d->never++;
		d->never_error = r->error;
	}
}

START_TEST(debug_reports_slow_step_and_unretrieved_failure)
{
	cr_loop_opts o = {.size = sizeof(o), .debug = CR_DEBUG_ON, .slow_callback_duration = 0.01};
	cr_spawn_opts so = {.size = sizeof(so), .name = "busy"};
	struct debug_reports rep = {0};
	cr_loop *loop;
	cr_task *t, *child = NULL;
	double d = 0.03;

	ck_assert_int_eq(cr_loop_new(&o, &loop), 0);
	ck_assert_int_eq(cr_loop_get_debug(loop), 1);
	cr_loop_set_exception_handler(loop, debug_handler, &rep);
	ck_assert_int_eq(cr_loop_spawn(loop, busy_fn, &d, &so, &t), 0);
	cr_loop_run_until_complete(loop, t);
	ck_assert_int_eq(rep.slow_busy, 1);
	cr_task_unref(t);
	ck_assert_int_eq(rep.never, 0); /* its result was retrieved by the run */

	ck_assert_int_eq(tu_run_on(loop, spawn_failing_main, &child, NULL), 0);
	ck_assert(cr_task_done(child));
	ck_assert_int_eq(rep.never, 0);
	cr_task_unref(child);
	/* Never joined, failure never retrieved: reported when freed. */
	ck_assert_int_eq(rep.never, 1);
	ck_assert_int_eq(rep.never_error, -EIO);
	cr_loop_close(loop);
	cr_loop_unref(loop);
}
END_TEST

static int deep(int n)
{
	volatile char buf[1024];

	for (int i = 0; i < 1024; i++)
		buf[i] = (char)n;
	if (n == 0)
		return buf[0];
	return deep(n - 1) + buf[0];
}

/* Bytes one level of deep() takes (differs with sanitizers). */
static long frame_size(volatile char *prev)
{
	volatile char buf[1024];

	buf[0] = 0;
	if (prev)
		return (long)(prev - buf);
	return frame_size(buf);
}

static int deep_fn(void *arg, void **ret)
{
	int kib = *(int *)arg; /* how much stack to use */
	long frame = frame_size(NULL);

	(void)ret;
	if (frame < 0)
		frame = -frame;
	return deep((int)((long)kib * 1024 / frame)) >= 0 ? 0 : 1;
}

START_TEST(debug_warns_when_stack_use_nears_limit)
{
	cr_loop_opts o = {.size = sizeof(o), .debug = CR_DEBUG_ON};
	cr_spawn_opts so = {.size = sizeof(so), .stack_size = 64 * 1024};
	struct tu_reports rep = {0};
	cr_loop *loop;
	cr_task *t;
	int depth = 5; /* KiB */

	ck_assert_int_eq(cr_loop_new(&o, &loop), 0);
	cr_loop_set_exception_handler(loop, tu_handler, &rep);
	ck_assert_int_eq(cr_loop_spawn(loop, deep_fn, &depth, &so, &t), 0);
	ck_assert_int_eq(cr_loop_run_until_complete(loop, t), 0);
	cr_task_unref(t);
	ck_assert_int_eq(rep.n, 0);
	depth = 57; /* of 64 KiB (the canary sits at 56), minus colouring */
	ck_assert_int_eq(cr_loop_spawn(loop, deep_fn, &depth, &so, &t), 0);
	ck_assert_int_eq(cr_loop_run_until_complete(loop, t), 0);
	cr_task_unref(t);
	ck_assert_int_eq(rep.n, 1);
	ck_assert_msg(strstr(rep.last, "stack"), "%s", rep.last);
	cr_loop_close(loop);
	cr_loop_unref(loop);
}
END_TEST

START_TEST(close_destroys_pending_tasks_and_drops_done_callbacks)
{
	struct tu_reports rep = {0};
	struct cb_state s = {0};
	cr_loop *loop = tu_loop();
	cr_task *t, *pending, *unstarted;

	cr_loop_set_exception_handler(loop, tu_handler, &rep);
	ck_assert_int_eq(cr_loop_spawn(loop, forever_fn, NULL, NULL, &pending), 0);
	ck_assert_int_eq(cr_loop_spawn(loop, ret_value_fn, NULL, NULL, &t), 0);
	ck_assert_int_eq(cr_task_add_done_callback(t, done_cb, &s), 0);
	ck_assert_int_eq(cr_loop_run_until_complete(loop, t), 7);
	ck_assert_int_eq(cr_loop_spawn(loop, ret_value_fn, NULL, NULL, &unstarted), 0);
	ck_assert_int_eq(cr_loop_close(loop), 0);
	/* The done callback was still queued: dropped, never run. */
	ck_assert_int_eq(s.calls, 0);
	ck_assert_int_eq(rep.n, 2);
	ck_assert_str_eq(rep.last, "Task was destroyed but it is pending!");
	ck_assert(cr_task_done(pending));
	ck_assert(cr_task_done(unstarted));
	cr_task_unref(t);
	cr_task_unref(pending);
	cr_task_unref(unstarted);
	cr_loop_unref(loop);
}
END_TEST

static int inf_sleep_fn(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	return cr_sleep(INFINITY);
}

static int inf_main(void *arg, void **ret)
{
	cr_task *t;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_spawn(inf_sleep_fn, NULL, NULL, &t), 0);
	cr_sleep(0.002); /* the loop blocks with only an infinite timer */
	ck_assert(!cr_task_done(t));
	cr_task_cancel(t, NULL);
	ck_assert_int_eq(cr_task_join(t, NULL), -ECANCELED);
	cr_task_unref(t);
	ck_assert_int_eq(cr_sleep(NAN), -EINVAL);
	return 0;
}

START_TEST(infinite_sleep_waits_until_cancelled)
{
	ck_assert_int_eq(tu_run(inf_main, NULL, NULL), 0);
}
END_TEST

static Suite *task_suite(void)
{
	Suite *s = suite_create("task");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, join_returns_code_and_value);
	tcase_add_test(tc, default_name_is_task_n_and_given_name_is_copied);
	tcase_add_test(tc, cancel_delivered_at_next_await);
	tcase_add_test(tc, cancels_before_the_task_runs_again_are_delivered_together);
	tcase_add_test(tc, cancel_before_start_never_runs_body);
	tcase_add_test(tc, cancel_delivered_once_so_cleanup_can_await);
	tcase_add_test(tc, success_while_cancelled_ends_cancelled_unless_uncancelled);
	tcase_add_test(tc, cancel_is_counted_and_uncancel_withdraws);
	tcase_add_test(tc, join_cancelled_cancels_awaited_task);
	tcase_add_test(tc, shield_keeps_inner_running);
	tcase_add_test(tc, wait_for_times_out_cancels_inner_else_returns_result);
	tcase_add_test(tc, gather_returns_first_failure_by_position);
	tcase_add_test(tc, gather_cancelled_cancels_children_and_waits_for_them);
	tcase_add_test(tc, wait_modes_and_timeout_return_finished_count);
	tcase_add_test(tc, sleepers_wake_in_deadline_order);
	tcase_add_test(tc, infinite_sleep_waits_until_cancelled);
	tcase_add_test(tc, yielding_tasks_take_turns_in_spawn_order);
	tcase_add_test(tc, done_callbacks_run_soon_after_completion);
	tcase_add_test(tc, awaiting_outside_a_task_returns_eperm);
	tcase_add_test(tc, joining_itself_is_refused);
	tcase_add_test(tc, spawn_on_closed_loop_fails);
	tcase_add_test(tc, task_runs_in_copy_of_creator_context_or_in_given_one);
	tcase_add_test(tc, close_destroys_pending_tasks_and_drops_done_callbacks);
	tcase_add_test(tc, debug_reports_slow_step_and_unretrieved_failure);
	tcase_add_test(tc, debug_warns_when_stack_use_nears_limit);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return tu_main(task_suite()); }
