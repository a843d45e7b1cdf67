/*
 * test-timeout.c — timeout scopes (asyncio.timeout semantics).
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <time.h>

#include "testutil.h"

static int expiry_main(void *arg, void **ret)
{
	cr_timeout_scope s;
	cr_task *self = cr_current_task();
	int rc;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_timeout_enter(&s, 0.01), 0);
	rc = cr_sleep(10);
	ck_assert_int_eq(rc, -ECANCELED);
	ck_assert(cr_timeout_expired(&s));
	ck_assert_int_eq(cr_timeout_exit(&s, rc), -ETIMEDOUT);
	ck_assert_int_eq(cr_task_cancelling(self), 0);
	/* Nothing left behind. */
	ck_assert_int_eq(cr_sleep(0.001), 0);

	ck_assert_int_eq(cr_timeout_enter(&s, 5), 0);
	rc = cr_sleep(0.001);
	ck_assert_int_eq(cr_timeout_exit(&s, rc), 0);
	ck_assert(!cr_timeout_expired(&s));
	ck_assert_int_eq(cr_timeout_exit(&s, 42), 42);
	return 0;
}

START_TEST(expiry_cancels_awaits_and_exit_turns_it_into_etimedout)
{
	ck_assert_int_eq(tu_run(expiry_main, NULL, NULL), 0);
}
END_TEST

static int nested_inner_main(void *arg, void **ret)
{
	cr_timeout_scope outer, inner;
	int rc;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_timeout_enter(&outer, 5), 0);
	ck_assert_int_eq(cr_timeout_enter(&inner, 0.005), 0);
	rc = cr_sleep(10);
	rc = cr_timeout_exit(&inner, rc);
	ck_assert_int_eq(rc, -ETIMEDOUT);
	/* The outer scope is unaffected and its awaits still work. */
	ck_assert_int_eq(cr_sleep(0.001), 0);
	ck_assert_int_eq(cr_timeout_exit(&outer, 0), 0);
	ck_assert(!cr_timeout_expired(&outer));
	return 0;
}

START_TEST(inner_scope_expiry_leaves_outer_scope_alone)
{
	ck_assert_int_eq(tu_run(nested_inner_main, NULL, NULL), 0);
}
END_TEST

static int nested_outer_main(void *arg, void **ret)
{
	cr_timeout_scope outer, inner;
	int rc;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_timeout_enter(&outer, 0.005), 0);
	ck_assert_int_eq(cr_timeout_enter(&inner, 5), 0);
	rc = cr_sleep(10);
	ck_assert_int_eq(rc, -ECANCELED);
	/* Not the inner scope's expiry: stays a cancellation... */
	rc = cr_timeout_exit(&inner, rc);
	ck_assert_int_eq(rc, -ECANCELED);
	/* ...which the outer scope turns into a timeout. */
	ck_assert_int_eq(cr_timeout_exit(&outer, rc), -ETIMEDOUT);
	return 0;
}

START_TEST(outer_scope_expiry_passes_through_inner_scope)
{
	ck_assert_int_eq(tu_run(nested_outer_main, NULL, NULL), 0);
}
END_TEST

static int both_main(void *arg, void **ret)
{
	cr_timeout_scope outer, inner;
	int rc;

	(void)arg;
	(void)ret;
	double now = cr_loop_time(cr_loop_current());
	ck_assert_int_eq(cr_timeout_enter_at(&outer, now + 0.005), 0);
	ck_assert_int_eq(cr_timeout_enter_at(&inner, now + 0.005), 0);
	/* Busy past both deadlines without awaiting, then await. */
	struct timespec ts = {0, 10000000};
	nanosleep(&ts, NULL);
	cr_yield(); /* both timers fire in this iteration */
	rc = cr_sleep(10);
	ck_assert_int_eq(rc, -ECANCELED);
	rc = cr_timeout_exit(&inner, rc);
	ck_assert_int_eq(rc, -ECANCELED); /* the outer one still counts */
	ck_assert_int_eq(cr_timeout_exit(&outer, rc), -ETIMEDOUT);
	ck_assert_int_eq(cr_task_cancelling(cr_current_task()), 0);
	return 0;
}

START_TEST(nested_scopes_expiring_together_report_timeout_once)
{
	ck_assert_int_eq(tu_run(both_main, NULL, NULL), 0);
}
END_TEST

static int resched_main(void *arg, void **ret)
{
	cr_timeout_scope s;
	int rc;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_timeout_enter(&s, 0.005), 0);
	cr_timeout_reschedule(&s, cr_loop_time(cr_loop_current()) + 5);
	rc = cr_sleep(0.02);
	ck_assert_int_eq(rc, 0);
	cr_timeout_reschedule(&s, cr_loop_time(cr_loop_current()) + 0.002);
	rc = cr_sleep(5);
	ck_assert_int_eq(cr_timeout_exit(&s, rc), -ETIMEDOUT);
	/* No deadline at all. */
	ck_assert_int_eq(cr_timeout_enter_at(&s, INFINITY), 0);
	ck_assert_int_eq(cr_timeout_exit(&s, cr_sleep(0.001)), 0);
	return 0;
}

START_TEST(reschedule_moves_the_deadline) { ck_assert_int_eq(tu_run(resched_main, NULL, NULL), 0); }
END_TEST

static int scoped_sleeper(void *arg, void **ret)
{
	cr_timeout_scope s;
	int rc;

	(void)arg;
	(void)ret;
	cr_timeout_enter(&s, 5);
	rc = cr_sleep(10);
	return cr_timeout_exit(&s, rc);
}

static int external_main(void *arg, void **ret)
{
	cr_task *t;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_spawn(scoped_sleeper, NULL, NULL, &t), 0);
	cr_sleep(0.001);
	cr_task_cancel(t, NULL);
	/* A cancellation from outside stays a cancellation. */
	ck_assert_int_eq(cr_task_join(t, NULL), -ECANCELED);
	cr_task_unref(t);
	return 0;
}

START_TEST(external_cancel_inside_scope_stays_cancelled)
{
	ck_assert_int_eq(tu_run(external_main, NULL, NULL), 0);
}
END_TEST

static int no_await_main(void *arg, void **ret)
{
	cr_timeout_scope s;
	struct timespec ts = {0, 5000000};

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_timeout_enter(&s, 0.001), 0);
	nanosleep(&ts, NULL);
	ck_assert_int_eq(cr_timeout_exit(&s, 0), 0);
	/* Expired after the body but nothing was pending at exit. */
	ck_assert_int_eq(cr_sleep(0.001), 0);

	ck_assert_int_eq(cr_timeout_enter(&s, 0), 0);
	ck_assert_int_eq(cr_yield(), -ECANCELED);
	ck_assert_int_eq(cr_timeout_exit(&s, -ECANCELED), -ETIMEDOUT);
	ck_assert_int_eq(cr_yield(), 0);
	return 0;
}

START_TEST(expired_deadline_without_delivery_is_withdrawn_at_exit)
{
	ck_assert_int_eq(tu_run(no_await_main, NULL, NULL), 0);
}
END_TEST

START_TEST(scope_outside_a_task_is_refused)
{
	cr_timeout_scope s;

	ck_assert_int_eq(cr_timeout_enter(&s, 1), -EPERM);
}
END_TEST

static Suite *timeout_suite(void)
{
	Suite *s = suite_create("timeout");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, expiry_cancels_awaits_and_exit_turns_it_into_etimedout);
	tcase_add_test(tc, inner_scope_expiry_leaves_outer_scope_alone);
	tcase_add_test(tc, outer_scope_expiry_passes_through_inner_scope);
	tcase_add_test(tc, nested_scopes_expiring_together_report_timeout_once);
	tcase_add_test(tc, reschedule_moves_the_deadline);
	tcase_add_test(tc, external_cancel_inside_scope_stays_cancelled);
	tcase_add_test(tc, expired_deadline_without_delivery_is_withdrawn_at_exit);
	tcase_add_test(tc, scope_outside_a_task_is_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return tu_main(timeout_suite()); }
