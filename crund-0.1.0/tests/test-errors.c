/*
 * test-errors.c — cr_strerror and the thread-local cr_last_error.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include "testutil.h"

START_TEST(strerror_names_the_library_codes)
{
	ck_assert_str_eq(cr_strerror(-ECANCELED), "Task cancelled");
	ck_assert_str_eq(cr_strerror(-ETIMEDOUT), "Timed out");
	ck_assert_str_eq(cr_strerror(-ESHUTDOWN), "Runner or loop is closed");
	ck_assert_str_eq(cr_strerror(ECANCELED), "Task cancelled");
	ck_assert_str_eq(cr_strerror(0), "Success");
	ck_assert_ptr_nonnull(cr_strerror(-EMFILE));
	ck_assert(strlen(cr_strerror(-EMFILE)) > 0);
	ck_assert_ptr_nonnull(cr_strerror(-99999));
}
END_TEST

static void *other_thread(void *arg)
{
	(void)arg;
	/* Each thread has its own last error. */
	return (void *)(intptr_t)(cr_last_error()[0] == '\0');
}

START_TEST(last_error_is_set_by_a_failing_call_per_thread)
{
	cr_loop *loop = tu_loop();
	pthread_t th;
	void *empty;

	ck_assert_int_eq(cr_loop_close(loop), 0);
	ck_assert_int_eq(cr_call_soon(loop, NULL, NULL, NULL), -EINVAL);
	ck_assert(strlen(cr_last_error()) > 0);
	ck_assert_int_eq(cr_loop_spawn(loop, (cr_fn)1, NULL, NULL, NULL), -ESHUTDOWN);
	ck_assert_str_eq(cr_last_error(), "Event loop is closed");
	pthread_create(&th, NULL, other_thread, NULL);
	pthread_join(th, &empty);
	ck_assert(empty != NULL);
	cr_loop_unref(loop);
}
END_TEST

static Suite *errors_suite(void)
{
	Suite *s = suite_create("errors");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, strerror_names_the_library_codes);
	tcase_add_test(tc, last_error_is_set_by_a_failing_call_per_thread);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return tu_main(errors_suite()); }
