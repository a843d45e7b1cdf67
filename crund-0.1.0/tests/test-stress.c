/*
 * test-stress.c — many tasks: 100k spawn + join, cancellation storms over
 * tasks in every state, stack exhaustion, stack overflow report.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static int small_fn(void *arg, void **ret)
{
	*ret = arg;
	if ((intptr_t)arg % 7 == 0)
		cr_yield();
	return 0;
}

#define NSPAWN 100000

static int spawn_many_main(void *arg, void **ret)
{
	cr_task **t = calloc(NSPAWN, sizeof(*t));
	long sum = 0;

	(void)arg;
	(void)ret;
	ck_assert_ptr_nonnull(t);
	for (intptr_t i = 0; i < NSPAWN; i++)
		ck_assert_int_eq(cr_spawn(small_fn, (void *)i, NULL, &t[i]), 0);
	for (intptr_t i = 0; i < NSPAWN; i++) {
		void *v;

		ck_assert_int_eq(cr_task_join(t[i], &v), 0);
		sum += (long)(intptr_t)v;
		cr_task_unref(t[i]);
	}
	ck_assert_int_eq(sum, (long)NSPAWN * (NSPAWN - 1) / 2);
	free(t);
	return 0;
}

START_TEST(spawn_and_join_100k_tasks) { ck_assert_int_eq(tu_run(spawn_many_main, NULL, NULL), 0); }
END_TEST

/* -------------------------------------------------- cancellation storm */

struct storm {
	cr_event *ev;
	cr_lock *lock;
	cr_sem *sem;
	cr_queue *q;
	int pipe[2];
	int cleanup_ok;
};

static struct storm *g_storm;

static int storm_task(void *arg, void **ret)
{
	struct storm *s = g_storm;
	intptr_t kind = (intptr_t)arg % 8;
	int rc = 0;
	void *item;

	(void)ret;
	switch (kind) {
	case 0:
		rc = cr_sleep(100);
		break;
	case 1:
		for (;;)
			if ((rc = cr_yield()) < 0)
				break;
		break;
	case 2:
		rc = cr_event_wait(s->ev);
		break;
	case 3:
		rc = cr_lock_acquire(s->lock);
		break; /* lock held by main */
	case 4:
		rc = cr_sem_acquire(s->sem);
		break; /* value 0 */
	case 5:
		rc = cr_queue_get(s->q, &item);
		break; /* empty */
	case 6:
		rc = cr_wait_fd(s->pipe[0], CR_READ, -1);
		break; /* never written */
	case 7:
		rc = 0;
		break; /* never started when cancelled */
	}
	if (rc == -ECANCELED && kind != 7) {
		/* Cleanup may await after the cancellation. */
		if (cr_sleep(0) == 0)
			s->cleanup_ok++;
	}
	return rc;
}

static int storm_main(void *arg, void **ret)
{
	int n = (int)(intptr_t)arg;
	cr_task **t = calloc((size_t)n, sizeof(*t));
	struct storm s = {0};
	int *codes = calloc((size_t)n, sizeof(*codes));

	(void)ret;
	g_storm = &s;
	ck_assert_int_eq(cr_event_new(&s.ev), 0);
	ck_assert_int_eq(cr_lock_new(&s.lock), 0);
	ck_assert_int_eq(cr_sem_new(0, &s.sem), 0);
	ck_assert_int_eq(cr_queue_new(0, &s.q), 0);
	ck_assert_int_eq(cr_lock_acquire(s.lock), 0);
	ck_assert_int_eq(pipe(s.pipe), 0);
	for (intptr_t i = 0; i < n; i++)
		if (i % 8 != 7)
			ck_assert_int_eq(cr_spawn(storm_task, (void *)i, NULL, &t[i]), 0);
	cr_sleep(0.01); /* everyone parked (or yielding) */
	for (intptr_t i = 0; i < n; i++)
		if (i % 8 == 7)
			ck_assert_int_eq(cr_spawn(storm_task, (void *)i, NULL, &t[i]), 0);
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(cr_task_cancel(t[i], NULL), 0);
	ck_assert_int_eq(cr_gather(t, (size_t)n, codes), -ECANCELED);
	for (int i = 0; i < n; i++) {
		ck_assert_msg(codes[i] == -ECANCELED, "task %d kind %d: %d", i, i % 8, codes[i]);
		ck_assert(cr_task_cancelled(t[i]));
		cr_task_unref(t[i]);
	}
	ck_assert_int_eq(s.cleanup_ok, n - n / 8);
	/* The primitives are intact after the storm. */
	ck_assert(!cr_event_is_set(s.ev));
	ck_assert_int_eq(cr_lock_release(s.lock), 0);
	ck_assert(!cr_lock_locked(s.lock));
	ck_assert_uint_eq(cr_sem_value(s.sem), 0);
	cr_sem_release(s.sem);
	ck_assert_uint_eq(cr_sem_value(s.sem), 1);
	ck_assert_uint_eq(cr_queue_size(s.q), 0);
	cr_event_free(s.ev);
	cr_lock_free(s.lock);
	cr_sem_free(s.sem);
	cr_queue_free(s.q);
	close(s.pipe[0]);
	close(s.pipe[1]);
	free(t);
	free(codes);
	return 0;
}

START_TEST(cancel_storm_10k_tasks_in_every_state)
{
	ck_assert_int_eq(tu_run(storm_main, (void *)(intptr_t)10000, NULL), 0);
}
END_TEST

/* --------------------------------------------------- stack exhaustion */

static int hold_fn(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	return cr_sleep(0.05);
}

static int exhaust_main(void *arg, void **ret)
{
	cr_spawn_opts o = {.size = sizeof(o), .stack_size = (size_t)8 << 40};
	cr_task *t[64];
	int codes[64], enomem = 0, ok = 0;

	(void)arg;
	(void)ret;
	/* 8 TiB stacks: the address space runs out after a few. */
	for (int i = 0; i < 64; i++)
		ck_assert_int_eq(cr_spawn(hold_fn, NULL, &o, &t[i]), 0);
	cr_gather(t, 64, codes);
	for (int i = 0; i < 64; i++) {
		if (codes[i] == -ENOMEM)
			enomem++;
		else if (codes[i] == 0)
			ok++;
		cr_task_unref(t[i]);
	}
	ck_assert_int_eq(enomem + ok, 64);
	ck_assert(enomem > 0);
	/* Ordinary tasks still work afterwards. */
	ck_assert_int_eq(cr_spawn(hold_fn, NULL, NULL, &t[0]), 0);
	ck_assert_int_eq(cr_task_join(t[0], NULL), 0);
	cr_task_unref(t[0]);
	return enomem;
}

START_TEST(stack_exhaustion_ends_tasks_with_enomem_and_reports)
{
	struct tu_reports rep = {0};
	cr_loop *loop = tu_loop();
	int enomem;

	cr_loop_set_exception_handler(loop, tu_handler, &rep);
	enomem = tu_run_on(loop, exhaust_main, NULL, NULL);
	ck_assert(enomem > 0);
	ck_assert_int_eq(rep.n, enomem);
	ck_assert_int_eq(rep.last_error, -ENOMEM);
	ck_assert_msg(strstr(rep.last, "could not start task"), "%s", rep.last);
	cr_loop_close(loop);
	cr_loop_unref(loop);
}
END_TEST

/* ------------------------------------------------------ stack overflow */

static volatile int depth_limit = 1 << 30; /* never reached: overflows first */

static int recurse(volatile char *prev, int depth)
{
	volatile char buf[512];

	buf[0] = prev ? prev[0] : 1;
	if (depth >= depth_limit)
		return buf[0];
	return recurse(buf, depth + 1) + buf[1];
}

static int overflow_fn(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	return recurse(NULL, 0);
}

START_TEST(stack_overflow_dies_with_task_name)
{
	int p[2], status;
	char buf[4096];
	ssize_t n, off = 0;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		cr_spawn_opts o = {
			.size = sizeof(o), .name = "deep-recursion", .stack_size = 64 * 1024};
		cr_loop *loop;
		cr_task *t;

		dup2(p[1], STDERR_FILENO);
		close(p[0]);
		if (cr_loop_new(NULL, &loop) < 0 ||
		    cr_loop_spawn(loop, overflow_fn, NULL, &o, &t) < 0)
			_exit(3);
		cr_loop_run_until_complete(loop, t);
		_exit(4);
	}
	close(p[1]);
	while (off < (ssize_t)sizeof(buf) - 1 &&
	       (n = read(p[0], buf + off, sizeof(buf) - 1 - (size_t)off)) > 0)
		off += n;
	buf[off] = '\0';
	close(p[0]);
	waitpid(pid, &status, 0);
	ck_assert_msg(!WIFEXITED(status) || (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 4),
		      "child survived the overflow");
	ck_assert_msg(strstr(buf, "stack overflow in task deep-recursion"), "stderr: %s", buf);
}
END_TEST

static Suite *stress_suite(void)
{
	Suite *s = suite_create("stress");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, spawn_and_join_100k_tasks);
	tcase_add_test(tc, cancel_storm_10k_tasks_in_every_state);
	tcase_add_test(tc, stack_exhaustion_ends_tasks_with_enomem_and_reports);
	tcase_add_test(tc, stack_overflow_dies_with_task_name);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return tu_main(stress_suite()); }
