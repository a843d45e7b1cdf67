/*
 * testutil.h — small helpers shared by the runtime's Check suites.
 */
#ifndef CR_TESTUTIL_H
#define CR_TESTUTIL_H

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "crunner.h"

/* Exception handler that counts reports and keeps the last message. */
struct tu_reports {
	int n;
	int last_error;
	char last[512];
};

static inline void tu_handler(cr_loop *loop, const cr_error_report *r, void *data)
{
	struct tu_reports *rep = data;

	(void)loop;
	rep->n++;
	rep->last_error = r->error;
	snprintf(rep->last, sizeof(rep->last), "%s", r->message ? r->message : "");
}

static inline cr_loop *tu_loop(void)
{
	cr_loop *loop = NULL;

	ck_assert_int_eq(cr_loop_new(NULL, &loop), 0);
	return loop;
}

/* Run fn(arg) as the main task of a fresh loop; returns its code. */
static inline int tu_run_on(cr_loop *loop, cr_fn fn, void *arg, void **ret_value)
{
	cr_task *t = NULL;
	int rc;

	ck_assert_int_eq(cr_loop_spawn(loop, fn, arg, NULL, &t), 0);
	rc = cr_loop_run_until_complete(loop, t);
	if (ret_value)
		cr_task_result(t, ret_value);
	cr_task_unref(t);
	return rc;
}

static inline int tu_run(cr_fn fn, void *arg, void **ret_value)
{
	cr_loop *loop = tu_loop();
	int rc = tu_run_on(loop, fn, arg, ret_value);

	ck_assert_int_eq(cr_loop_close(loop), 0);
	cr_loop_unref(loop);
	return rc;
}

/* Run a suite, print Check's summary, exit 0 when all passed. */
static inline int tu_main(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

#endif
