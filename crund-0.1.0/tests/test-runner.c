/*
 * test-runner.c — asyncio.Runner / asyncio.run (lib/runner.c), one test
 * per behaviour of the seed page (shared/seed/asyncio-runners.txt).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crunner.h"
#include "testutil.h"

#define IV(x) ((void *)(intptr_t)(x))
#define VI(p) ((int)(intptr_t)(p))

static char last_message[256];
static int last_error;
static int reports;
static char order[32];

static void note(char c)
{
	size_t n = strlen(order);

	if (n + 1 < sizeof(order)) {
		order[n] = c;
		order[n + 1] = 0;
	}
}

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
	reports = 0;
	last_error = 0;
	last_message[0] = 0;
	order[0] = 0;
	unsetenv("CRUNNER_DEBUG");
	/* Check's runner forwards SIGINT to the test's process group; in the
	 * test process SIGINT must have its default disposition. */
	signal(SIGINT, SIG_DFL);
}

static void msleep(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int return_value(void *arg, void **ret)
{
	*ret = arg;
	return 3;
}

/* A runner whose loop reports errors to `handler`. */
static cr_runner *new_runner(const cr_runner_opts *opts)
{
	cr_runner *r;
	cr_loop *loop;

	ck_assert_int_eq(cr_runner_new(opts, &r), 0);
	ck_assert_int_eq(cr_runner_get_loop(r, &loop), 0);
	cr_loop_set_exception_handler(loop, handler, NULL);
	return r;
}

/* ------------------------------------------------------- run / cr_run */

START_TEST(run_returns_coroutine_result)
{
	cr_runner *r;
	void *v = NULL;

	ck_assert_int_eq(cr_runner_new(NULL, &r), 0);
	ck_assert_int_eq(cr_runner_run(r, return_value, IV(9), NULL, &v), 3);
	ck_assert_int_eq(VI(v), 9);
	cr_runner_free(r);
}
END_TEST

static int fails(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	return -EIO;
}

START_TEST(run_raises_coroutine_error)
{
	cr_runner *r;
	void *v = IV(5);

	ck_assert_int_eq(cr_runner_new(NULL, &r), 0);
	ck_assert_int_eq(cr_runner_run(r, fails, NULL, NULL, &v), -EIO);
	ck_assert_ptr_eq(v, IV(5));
	cr_runner_free(r);
}
END_TEST

static int awaits_then_returns(void *arg, void **ret)
{
	(void)arg;
	if (cr_sleep(0.001) < 0)
		return -EPROTO;
	*ret = IV(42);
	return 0;
}

START_TEST(asyncio_run_executes_coroutine_and_returns_result)
{
	void *v = NULL;

	ck_assert_int_eq(cr_run(awaits_then_returns, NULL, &v, NULL), 0);
	ck_assert_int_eq(VI(v), 42);
	/* No loop is left running or current afterwards. */
	ck_assert_ptr_null(cr_loop_current());
}
END_TEST

static cr_loop *factory_loop;
static int factory_calls;

static int factory(void *data, cr_loop **ret_loop)
{
	cr_loop_opts lo = {.size = sizeof(lo), .debug = data ? CR_DEBUG_ON : CR_DEBUG_OFF};
	int e;

	factory_calls++;
	e = cr_loop_new(&lo, ret_loop);
	if (e == 0) {
		factory_loop = cr_loop_ref(*ret_loop);
		cr_loop_set_exception_handler(*ret_loop, handler, NULL);
	}
	return e;
}

static int current_loop_is(void *arg, void **ret)
{
	(void)ret;
	return cr_loop_current() == arg ? 0 : -EPROTO;
}

static int check_factory_loop(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	return cr_loop_current() == factory_loop ? 0 : -EPROTO;
}

START_TEST(asyncio_run_uses_loop_factory_and_closes_loop)
{
	cr_runner_opts o = {.size = sizeof(o), .debug = CR_DEBUG_DEFAULT, .loop_factory = factory};

	factory_calls = 0;
	ck_assert_int_eq(cr_run(check_factory_loop, NULL, NULL, &o), 0);
	ck_assert_int_eq(factory_calls, 1);
	ck_assert(cr_loop_is_closed(factory_loop));
	factory_loop = cr_loop_unref(factory_loop);
}
END_TEST

static int nested_cr_run(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	return cr_run(return_value, NULL, NULL, NULL);
}

START_TEST(asyncio_run_refused_inside_running_loop)
{
	ck_assert_int_eq(cr_run(nested_cr_run, NULL, NULL, NULL), -EBUSY);
}
END_TEST

static atomic_bool gen_cleaned, exec_done, exec_started;
static cr_agen *kept_gen; /* kept alive so only the teardown closes it */

static int gen_body(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	if (cr_agen_yield(IV(1)) == -ESHUTDOWN) {
		if (cr_sleep(0.001) == 0) /* cleanup awaits */
			atomic_store(&gen_cleaned, true);
		note('G');
	}
	return 0;
}

static int slow_blocking(void *arg, void **ret)
{
	(void)ret;
	atomic_store(&exec_started, true);
	msleep(VI(arg));
	atomic_store(&exec_done, true);
	return 0;
}

static int leave_gen_and_executor(void *arg, void **ret)
{
	cr_agen *g;

	(void)arg;
	(void)ret;
	if (cr_agen_new(gen_body, NULL, NULL, &g) < 0 || cr_agen_next(g, NULL) < 0)
		return -EPROTO;
	kept_gen = g; /* suspended; the teardown closes it */
	return cr_run_in_executor(slow_blocking, IV(1), NULL);
}

START_TEST(asyncio_run_finalizes_asyncgens_and_closes_executor)
{
	atomic_store(&gen_cleaned, false);
	atomic_store(&exec_done, false);
	ck_assert_int_eq(cr_run(leave_gen_and_executor, NULL, NULL, NULL), 0);
	ck_assert(atomic_load(&gen_cleaned));
	ck_assert(atomic_load(&exec_done));
	kept_gen = cr_agen_unref(kept_gen);
}
END_TEST

/* ------------------------------------------------------- lazy init */

START_TEST(get_loop_lazy_initialisation)
{
	cr_runner_opts o = {.size = sizeof(o), .loop_factory = factory};
	cr_runner *r;
	cr_loop *l1, *l2;

	factory_calls = 0;
	ck_assert_int_eq(cr_runner_new(&o, &r), 0);
	ck_assert_int_eq(factory_calls, 0); /* the constructor creates nothing */
	ck_assert_int_eq(cr_runner_get_loop(r, &l1), 0);
	ck_assert_int_eq(factory_calls, 1);
	ck_assert_int_eq(cr_runner_get_loop(r, &l2), 0);
	ck_assert_ptr_eq(l1, l2);
	ck_assert_int_eq(cr_runner_run(r, current_loop_is, l1, NULL, NULL), 0);
	cr_runner_free(r);
	factory_loop = cr_loop_unref(factory_loop);
}
END_TEST

START_TEST(first_run_initialises_loop_and_context)
{
	cr_runner_opts o = {.size = sizeof(o), .loop_factory = factory};
	cr_runner *r;
	cr_context *c1, *c2;

	factory_calls = 0;
	ck_assert_int_eq(cr_runner_new(&o, &r), 0);
	ck_assert_int_eq(cr_runner_run(r, check_factory_loop, NULL, NULL, NULL), 0);
	ck_assert_int_eq(factory_calls, 1);
	ck_assert_int_eq(cr_runner_get_context(r, &c1), 0);
	ck_assert_int_eq(cr_runner_get_context(r, &c2), 0);
	ck_assert_ptr_eq(c1, c2);
	ck_assert_int_eq(factory_calls, 1);
	cr_runner_free(r);
	factory_loop = cr_loop_unref(factory_loop);
}
END_TEST

START_TEST(loop_factory_called_once_and_used_as_is)
{
	cr_runner_opts o = {.size = sizeof(o),
			    .debug = CR_DEBUG_DEFAULT,
			    .loop_factory = factory,
			    .loop_factory_data = IV(1)};
	cr_runner *r;
	cr_loop *l;

	factory_calls = 0;
	ck_assert_int_eq(cr_runner_new(&o, &r), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(cr_runner_run(r, check_factory_loop, NULL, NULL, NULL), 0);
	ck_assert_int_eq(cr_runner_get_loop(r, &l), 0);
	ck_assert_ptr_eq(l, factory_loop);
	ck_assert_int_eq(factory_calls, 1);
	/* Debug left as the factory made it (ON) with CR_DEBUG_DEFAULT. */
	ck_assert_int_eq(cr_loop_get_debug(l), 1);
	ck_assert_int_eq(cr_runner_close(r), 0);
	ck_assert(cr_loop_is_closed(factory_loop));
	cr_runner_free(r);
	factory_loop = cr_loop_unref(factory_loop);
}
END_TEST

/* ----------------------------------------------------------- contexts */

static cr_ctxvar *var;

static int set_var(void *arg, void **ret)
{
	(void)ret;
	return cr_ctxvar_set(var, arg, NULL);
}

static int get_var(void *arg, void **ret)
{
	void *v;
	int e;

	(void)arg;
	e = cr_ctxvar_get(var, &v);
	if (e < 0)
		return e;
	*ret = v;
	return 0;
}

START_TEST(runner_context_persists_across_run_calls)
{
	cr_runner *r;
	cr_context *c;
	void *v = NULL;

	ck_assert_int_eq(cr_ctxvar_new("rv", false, NULL, &var), 0);
	ck_assert_int_eq(cr_runner_new(NULL, &r), 0);
	ck_assert_int_eq(cr_runner_run(r, set_var, IV(5), NULL, NULL), 0);
	ck_assert_int_eq(cr_runner_run(r, get_var, NULL, NULL, &v), 0);
	ck_assert_int_eq(VI(v), 5);
	ck_assert_int_eq(cr_runner_get_context(r, &c), 0);
	ck_assert_int_eq(cr_context_get(c, var, &v), 0);
	ck_assert_int_eq(VI(v), 5);
	/* The runner's context is its own: the thread's base never saw it. */
	ck_assert_int_eq(cr_ctxvar_get(var, &v), -ENOENT);
	cr_runner_free(r);
	cr_ctxvar_free(var);
}
END_TEST

START_TEST(runner_context_starts_as_copy_of_creator_context)
{
	cr_runner *r;
	void *v = NULL;

	ck_assert_int_eq(cr_ctxvar_new("rv", false, NULL, &var), 0);
	ck_assert_int_eq(cr_ctxvar_set(var, IV(1), NULL), 0);
	ck_assert_int_eq(cr_runner_new(NULL, &r), 0);
	ck_assert_int_eq(cr_runner_run(r, get_var, NULL, NULL, &v), 0);
	ck_assert_int_eq(VI(v), 1);
	cr_runner_free(r);
	cr_ctxvar_free(var);
}
END_TEST

START_TEST(run_with_given_context_uses_it_as_is)
{
	cr_runner *r;
	cr_context *mine, *runner_ctx;
	void *v;

	ck_assert_int_eq(cr_ctxvar_new("rv", false, NULL, &var), 0);
	ck_assert_int_eq(cr_context_new(&mine), 0);
	ck_assert_int_eq(cr_runner_new(NULL, &r), 0);
	ck_assert_int_eq(cr_runner_run(r, set_var, IV(8), mine, NULL), 0);
	ck_assert_int_eq(cr_context_get(mine, var, &v), 0);
	ck_assert_int_eq(VI(v), 8);
	ck_assert_int_eq(cr_runner_get_context(r, &runner_ctx), 0);
	ck_assert_int_eq(cr_context_get(runner_ctx, var, &v), -ENOENT);
	ck_assert_int_eq(cr_runner_run(r, get_var, NULL, mine, &v), 0);
	ck_assert_int_eq(VI(v), 8);
	cr_runner_free(r);
	cr_context_unref(mine);
	cr_ctxvar_free(var);
}
END_TEST

/* ----------------------------------------------------------- refusals */

static cr_runner *outer;

static int run_nested(void *arg, void **ret)
{
	cr_runner *inner = arg;
	int e;

	(void)ret;
	e = cr_runner_run(inner, return_value, NULL, NULL, NULL);
	if (e != -EBUSY ||
	    strcmp(cr_last_error(), "Runner.run() cannot be called from a running event loop") != 0)
		return -EPROTO;
	/* Also the runner whose loop is running. */
	e = cr_runner_run(outer, return_value, NULL, NULL, NULL);
	if (e != -EBUSY)
		return -EPROTO;
	/* And closing it from inside. */
	return cr_runner_close(outer) == -EBUSY ? 0 : -EPROTO;
}

START_TEST(run_refused_inside_running_loop)
{
	cr_runner *inner;

	ck_assert_int_eq(cr_runner_new(NULL, &outer), 0);
	ck_assert_int_eq(cr_runner_new(NULL, &inner), 0);
	ck_assert_int_eq(cr_runner_run(outer, run_nested, inner, NULL, NULL), 0);
	cr_runner_free(inner);
	cr_runner_free(outer);
}
END_TEST

START_TEST(closed_runner_refuses_run)
{
	cr_runner *r;
	cr_loop *l;
	cr_context *c;

	ck_assert_int_eq(cr_runner_new(NULL, &r), 0);
	ck_assert_int_eq(cr_runner_run(r, return_value, NULL, NULL, NULL), 3);
	ck_assert_int_eq(cr_runner_close(r), 0);
	ck_assert_int_eq(cr_runner_run(r, return_value, NULL, NULL, NULL), -ESHUTDOWN);
	ck_assert_str_eq(cr_last_error(), "Runner is closed");
	ck_assert_int_eq(cr_runner_get_loop(r, &l), -ESHUTDOWN);
	ck_assert_int_eq(cr_runner_get_context(r, &c), -ESHUTDOWN);
	cr_runner_free(r);
}
END_TEST

START_TEST(close_is_idempotent)
{
	cr_runner_opts o = {.size = sizeof(o), .loop_factory = factory};
	cr_runner *r;

	/* Never used: close creates nothing. */
	factory_calls = 0;
	ck_assert_int_eq(cr_runner_new(&o, &r), 0);
	ck_assert_int_eq(cr_runner_close(r), 0);
	ck_assert_int_eq(cr_runner_close(r), 0);
	ck_assert_int_eq(factory_calls, 0);
	cr_runner_free(r);
	/* Used. */
	ck_assert_int_eq(cr_runner_new(NULL, &r), 0);
	ck_assert_int_eq(cr_runner_run(r, return_value, NULL, NULL, NULL), 3);
	ck_assert_int_eq(cr_runner_close(r), 0);
	ck_assert_int_eq(cr_runner_close(r), 0);
	cr_runner_free(r);
	cr_runner_free(NULL);
}
END_TEST

/* ------------------------------------------------------------ teardown */

static int sleeper(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	if (cr_sleep(100) == -ECANCELED)
		note('T');
	return -ECANCELED;
}

static int fails_on_cancel(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	cr_sleep(100);
	cr_sleep(0.001); /* cleanup may await */
	note('T');
	return -EIO;
}

static int leave_tasks(void *arg, void **ret)
{
	cr_task *a, *b;

	(void)arg;
	(void)ret;
	if (cr_spawn(sleeper, NULL, NULL, &a) < 0 || cr_spawn(fails_on_cancel, NULL, NULL, &b) < 0)
		return -ENOMEM;
	cr_task_unref(a);
	cr_task_unref(b);
	return cr_yield();
}

START_TEST(leftover_tasks_cancelled_and_errors_reported)
{
	cr_runner *r = new_runner(NULL);

	ck_assert_int_eq(cr_runner_run(r, leave_tasks, NULL, NULL, NULL), 0);
	ck_assert_int_eq(reports, 0);
	ck_assert_int_eq(cr_runner_close(r), 0);
	ck_assert_str_eq(order, "TT");
	ck_assert_int_eq(reports, 1);
	ck_assert_int_eq(last_error, -EIO);
	ck_assert_str_eq(last_message, "unhandled exception during Runner.close() shutdown");
	cr_runner_free(r);
}
END_TEST

static int call_executor_slow(void *arg, void **ret)
{
	(void)ret;
	return cr_run_in_executor(slow_blocking, arg, NULL);
}

static int leave_everything(void *arg, void **ret)
{
	cr_agen *g;
	cr_task *t, *e;

	(void)arg;
	(void)ret;
	if (cr_spawn(sleeper, NULL, NULL, &t) < 0)
		return -ENOMEM;
	cr_task_unref(t);
	if (cr_agen_new(gen_body, NULL, NULL, &g) < 0 || cr_agen_next(g, NULL) < 0)
		return -EPROTO;
	kept_gen = g;
	/* A blocking call whose caller is left over: cancelled at close,
	 * the worker keeps running and close waits for it. */
	atomic_store(&exec_started, false);
	if (cr_spawn(call_executor_slow, IV(60), NULL, &e) < 0)
		return -ENOMEM;
	cr_task_unref(e);
	/* Once started it runs to its end (a queued call would be dropped). */
	while (!atomic_load(&exec_started))
		cr_sleep(0.001);
	return 0;
}

START_TEST(close_tears_down_in_asyncio_order)
{
	cr_runner *r = new_runner(NULL);
	cr_loop *l;

	atomic_store(&exec_done, false);
	ck_assert_int_eq(cr_runner_get_loop(r, &l), 0);
	cr_loop_ref(l);
	ck_assert_int_eq(cr_runner_run(r, leave_everything, NULL, NULL, NULL), 0);
	ck_assert(!atomic_load(&exec_done));
	ck_assert_int_eq(cr_runner_close(r), 0);
	/* Tasks first, then generators; the executor was waited for; the
	 * loop is closed. */
	ck_assert_str_eq(order, "TG");
	ck_assert(atomic_load(&exec_done));
	ck_assert(cr_loop_is_closed(l));
	ck_assert_int_eq(reports, 0);
	cr_loop_unref(l);
	cr_runner_free(r);
	kept_gen = cr_agen_unref(kept_gen);
}
END_TEST

START_TEST(asyncgen_finalised_at_close_and_cleanup_awaits)
{
	cr_runner *r = new_runner(NULL);

	atomic_store(&gen_cleaned, false);
	atomic_store(&exec_done, true);
	ck_assert_int_eq(cr_runner_run(r, leave_gen_and_executor, NULL, NULL, NULL), 0);
	ck_assert(!atomic_load(&gen_cleaned));
	ck_assert_int_eq(cr_runner_close(r), 0);
	ck_assert(atomic_load(&gen_cleaned));
	cr_runner_free(r);
	kept_gen = cr_agen_unref(kept_gen);
}
END_TEST

static int start_slow_worker(void *arg, void **ret)
{
	cr_task *t;

	(void)arg;
	(void)ret;
	atomic_store(&exec_started, false);
	if (cr_spawn(call_executor_slow, IV(300), NULL, &t) < 0)
		return -ENOMEM;
	cr_task_unref(t);
	while (!atomic_load(&exec_started))
		cr_sleep(0.001);
	return 0;
}

START_TEST(executor_shutdown_timeout_warns)
{
	cr_runner_opts o = {.size = sizeof(o), .executor_timeout = 0.05};
	cr_runner *r = new_runner(&o);

	atomic_store(&exec_done, false);
	ck_assert_int_eq(cr_runner_run(r, start_slow_worker, NULL, NULL, NULL), 0);
	ck_assert_int_eq(cr_runner_close(r), 0);
	ck_assert_int_eq(reports, 1);
	ck_assert_str_eq(last_message,
			 "The executor did not finishing joining its threads within 0.05 seconds.");
	ck_assert(!atomic_load(&exec_done));
	cr_runner_free(r);
	/* The late worker ends on its own without touching the freed loop. */
	while (!atomic_load(&exec_done))
		msleep(5);
	msleep(30);
}
END_TEST

/* --------------------------------------------------------------- debug */

static int debug_of(const cr_runner_opts *o)
{
	cr_runner *r;
	cr_loop *l;
	int d;

	ck_assert_int_eq(cr_runner_new(o, &r), 0);
	ck_assert_int_eq(cr_runner_get_loop(r, &l), 0);
	d = cr_loop_get_debug(l);
	cr_runner_free(r);
	if (factory_loop)
		factory_loop = cr_loop_unref(factory_loop);
	return d;
}

START_TEST(debug_tri_state_follows_env)
{
	cr_runner_opts o = {.size = sizeof(o)};

	o.debug = CR_DEBUG_DEFAULT;
	ck_assert_int_eq(debug_of(&o), 0);
	ck_assert_int_eq(debug_of(NULL), 0);
	setenv("CRUNNER_DEBUG", "1", 1);
	ck_assert_int_eq(debug_of(&o), 1);
	ck_assert_int_eq(debug_of(NULL), 1);
	o.debug = CR_DEBUG_OFF;
	ck_assert_int_eq(debug_of(&o), 0);
	unsetenv("CRUNNER_DEBUG");
	o.debug = CR_DEBUG_ON;
	ck_assert_int_eq(debug_of(&o), 1);
	/* With a factory: explicit settings are applied to its loop,
	 * the default leaves it alone (factory data: 1 = debug on). */
	o.loop_factory = factory;
	o.loop_factory_data = NULL;
	o.debug = CR_DEBUG_ON;
	ck_assert_int_eq(debug_of(&o), 1);
	o.loop_factory_data = IV(1);
	o.debug = CR_DEBUG_OFF;
	ck_assert_int_eq(debug_of(&o), 0);
	o.debug = CR_DEBUG_DEFAULT;
	ck_assert_int_eq(debug_of(&o), 1);
	o.loop_factory_data = NULL;
	setenv("CRUNNER_DEBUG", "1", 1);
	ck_assert_int_eq(debug_of(&o), 0);
	unsetenv("CRUNNER_DEBUG");
}
END_TEST

/* -------------------------------------------------------------- SIGINT */

static int main_rc;

static void raise_sigint(void *arg)
{
	(void)arg;
	raise(SIGINT);
}

static int sleeps_long(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	cr_call_later(cr_loop_current(), 0.01, raise_sigint, NULL, NULL);
	main_rc = cr_sleep(5);
	return main_rc;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(sigint_once_cancels_main_task)
{
	cr_runner *r;
	struct sigaction sa;
	double t0 = now();

	ck_assert_int_eq(cr_runner_new(NULL, &r), 0);
	main_rc = 1;
	ck_assert_int_eq(cr_runner_run(r, sleeps_long, NULL, NULL, NULL), -EINTR);
	ck_assert_str_eq(cr_last_error(), "interrupted");
	ck_assert_int_eq(main_rc, -ECANCELED);
	ck_assert(now() - t0 < 2.5);
	/* The runner is still usable. */
	ck_assert_int_eq(cr_runner_run(r, return_value, NULL, NULL, NULL), 3);
	ck_assert_int_eq(cr_runner_close(r), 0);
	/* The original disposition is back once the last runner closed. */
	ck_assert_int_eq(sigaction(SIGINT, NULL, &sa), 0);
	ck_assert_ptr_eq((void *)sa.sa_handler, (void *)SIG_DFL);
	cr_runner_free(r);
}
END_TEST

static atomic_bool main_started;

static void *raise_twice(void *arg)
{
	(void)arg;
	/* Only once the run is under way (valgrind makes starting slow). */
	while (!atomic_load(&main_started))
		msleep(1);
	msleep(20);
	kill(getpid(), SIGINT);
	msleep(30);
	kill(getpid(), SIGINT);
	return NULL;
}

static int ignores_first_cancel(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	atomic_store(&main_started, true);
	if (cr_sleep(5) == -ECANCELED)
		note('1');
	cr_task_uncancel(cr_current_task());
	/* Keeps going: only the second SIGINT can stop this. */
	if (cr_sleep(5) == -ECANCELED)
		note('2');
	return 0;
}

START_TEST(sigint_twice_interrupts)
{
	cr_runner *r;
	pthread_t th;
	double t0 = now();
	struct sigaction sa;

	atomic_store(&main_started, false);
	ck_assert_int_eq(cr_runner_new(NULL, &r), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, raise_twice, NULL), 0);
	ck_assert_int_eq(cr_runner_run(r, ignores_first_cancel, NULL, NULL, NULL), -EINTR);
	pthread_join(th, NULL);
	ck_assert(now() - t0 < 2.5);
	ck_assert_str_eq(order, "1");
	/* The interrupted main task is a leftover: close cancels it. */
	ck_assert_int_eq(cr_runner_close(r), 0);
	ck_assert_str_eq(order, "12");
	ck_assert_int_eq(sigaction(SIGINT, NULL, &sa), 0);
	ck_assert_ptr_eq((void *)sa.sa_handler, (void *)SIG_DFL);
	cr_runner_free(r);
}
END_TEST

static void *unblock_and_kill(void *arg)
{
	sigset_t set;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	while (!atomic_load(&main_started))
		msleep(1);
	msleep(20);
	/* Only this thread accepts SIGINT: the handler runs here while the
	 * loop thread is blocked in its poll and must be woken. */
	kill(getpid(), SIGINT);
	return NULL;
}

static int sleeps_until_cancelled(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	atomic_store(&main_started, true);
	return cr_sleep(5);
}

START_TEST(sigint_on_another_thread_wakes_the_blocked_loop)
{
	cr_runner *r;
	pthread_t th;
	sigset_t set, old;
	double t0 = now();

	atomic_store(&main_started, false);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
	ck_assert_int_eq(cr_runner_new(NULL, &r), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, unblock_and_kill, NULL), 0);
	ck_assert_int_eq(cr_runner_run(r, sleeps_until_cancelled, NULL, NULL, NULL), -EINTR);
	pthread_join(th, NULL);
	ck_assert(now() - t0 < 2.5);
	ck_assert_int_eq(cr_runner_close(r), 0);
	cr_runner_free(r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}
END_TEST

static volatile sig_atomic_t own_handler_hits;

static void own_handler(int s)
{
	(void)s;
	own_handler_hits++;
}

static int raise_and_finish(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	raise(SIGINT);
	return cr_sleep(0.01);
}

START_TEST(sigint_left_alone_when_not_default_or_disabled)
{
	struct sigaction sa = {.sa_handler = own_handler};
	cr_runner_opts off = {.size = sizeof(off), .sigint = CR_SIGINT_OFF};
	cr_runner *r;

	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGINT, &sa, NULL), 0);
	own_handler_hits = 0;
	/* A handler of the program's own: the runner does not take over. */
	ck_assert_int_eq(cr_runner_new(NULL, &r), 0);
	ck_assert_int_eq(cr_runner_run(r, raise_and_finish, NULL, NULL, NULL), 0);
	ck_assert_int_eq(own_handler_hits, 1);
	cr_runner_free(r);
	/* Disabled explicitly. */
	ck_assert_int_eq(cr_runner_new(&off, &r), 0);
	ck_assert_int_eq(cr_runner_run(r, raise_and_finish, NULL, NULL, NULL), 0);
	ck_assert_int_eq(own_handler_hits, 2);
	cr_runner_free(r);
	ck_assert_int_eq(sigaction(SIGINT, NULL, &sa), 0);
	ck_assert_ptr_eq((void *)sa.sa_handler, (void *)own_handler);
}
END_TEST

static void *thread_runs(void *arg)
{
	struct sigaction sa;
	cr_runner *r;
	int e;

	(void)arg;
	if (cr_runner_new(NULL, &r) < 0)
		return IV(-ENOMEM);
	e = cr_runner_run(r, return_value, NULL, NULL, NULL);
	/* Not the main thread: SIGINT is not touched. */
	sigaction(SIGINT, NULL, &sa);
	if (sa.sa_handler != SIG_DFL)
		e = -EPROTO;
	cr_runner_free(r);
	return IV(e);
}

START_TEST(sigint_not_handled_outside_main_thread)
{
	pthread_t th;
	void *res;

	ck_assert_int_eq(pthread_create(&th, NULL, thread_runs, NULL), 0);
	ck_assert_int_eq(pthread_join(th, &res), 0);
	ck_assert_int_eq(VI(res), 3);
}
END_TEST

START_TEST(sigint_between_runs_behaves_like_default)
{
	pid_t pid = fork();
	int status;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		cr_runner *r;

		if (cr_runner_new(NULL, &r) < 0 ||
		    cr_runner_run(r, return_value, NULL, NULL, NULL) != 3)
			_exit(2);
		/* The runner is open but not running: default action. */
		raise(SIGINT);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status));
	ck_assert_int_eq(WTERMSIG(status), SIGINT);
}
END_TEST

/* --------------------------------------------- issue 11: asyncio parity */

/* asyncio's Runner.close() does nothing unless the runner was initialised:
 * a runner closed before any use still runs. */
START_TEST(closing_unused_runner_keeps_it_usable)
{
	cr_runner *r;
	cr_loop *l;

	ck_assert_int_eq(cr_runner_new(NULL, &r), 0);
	ck_assert_int_eq(cr_runner_close(r), 0);
	ck_assert_int_eq(cr_runner_run(r, return_value, NULL, NULL, NULL), 3);
	ck_assert_int_eq(cr_runner_get_loop(r, &l), 0);
	ck_assert_int_eq(cr_runner_close(r), 0);
	ck_assert_int_eq(cr_runner_run(r, return_value, NULL, NULL, NULL), -ESHUTDOWN);
	cr_runner_free(r);
}
END_TEST

START_TEST(asyncio_run_names_itself_in_leftover_report)
{
	cr_runner_opts o = {.size = sizeof(o), .loop_factory = factory};

	ck_assert_int_eq(cr_run(leave_tasks, NULL, NULL, &o), 0);
	ck_assert_int_eq(reports, 1);
	ck_assert_int_eq(last_error, -EIO);
	ck_assert_str_eq(last_message, "unhandled exception during asyncio.run() shutdown");
	factory_loop = cr_loop_unref(factory_loop);
}
END_TEST

/* A generator whose cleanup awaits (or not: arg) and then fails. */
static int cleanup_fails_edom(void *arg, void **ret)
{
	(void)ret;
	if (cr_agen_yield(IV(1)) == -ESHUTDOWN) {
		if (arg)
			cr_sleep(0.001);
		atomic_store(&gen_cleaned, true);
		return -EDOM;
	}
	return 0;
}

/* Take one value, drop the generator, return at once. */
static int drop_gen_and_return(void *arg, void **ret)
{
	cr_agen *g;

	(void)ret;
	if (cr_agen_new(cleanup_fails_edom, arg, NULL, &g) < 0)
		return -ENOMEM;
	if (cr_agen_next(g, NULL) < 0)
		return -EPROTO;
	cr_agen_unref(g);
	return 0;
}

START_TEST(asyncgen_cleanup_error_reported_when_main_returns_after_drop)
{
	for (int awaits = 0; awaits < 2; awaits++) {
		cr_runner *r = new_runner(NULL);

		reports = 0;
		last_error = 0;
		atomic_store(&gen_cleaned, false);
		ck_assert_int_eq(cr_runner_run(r, drop_gen_and_return, IV(awaits), NULL, NULL), 0);
		ck_assert_int_eq(cr_runner_close(r), 0);
		ck_assert(atomic_load(&gen_cleaned));
		ck_assert_int_eq(reports, 1);
		ck_assert_int_eq(last_error, -EDOM);
		cr_runner_free(r);
	}
}
END_TEST

static int raise_sigint_and_return(void *arg, void **ret)
{
	(void)arg;
	raise(SIGINT);
	*ret = IV(42);
	return 42;
}

/* asyncio raises KeyboardInterrupt when SIGINT lands during the main
 * coroutine's last step; the next run is not affected. */
START_TEST(sigint_during_last_step_interrupts_run)
{
	cr_runner *r;
	void *v = NULL;

	ck_assert_int_eq(cr_runner_new(NULL, &r), 0);
	ck_assert_int_eq(cr_runner_run(r, raise_sigint_and_return, NULL, NULL, &v), -EINTR);
	ck_assert_ptr_null(v);
	ck_assert_int_eq(cr_runner_run(r, return_value, IV(7), NULL, &v), 3);
	ck_assert_int_eq(VI(v), 7);
	cr_runner_free(r);
	ck_assert_int_eq(cr_run(raise_sigint_and_return, NULL, NULL, NULL), -EINTR);
}
END_TEST

static atomic_int late_calls;

static void late_cb(void *arg)
{
	(void)arg;
	atomic_fetch_add(&late_calls, 1);
}

static atomic_bool main_returning;

/* A blocking call that, once the main coroutine returned, sends a
 * callback to the loop, then waits (up to 5 s) for it and the timer to
 * have run: the close waits for this job meanwhile. */
static int slow_then_call_back(void *arg, void **ret)
{
	(void)ret;
	atomic_store(&exec_started, true);
	while (!atomic_load(&main_returning))
		msleep(1);
	msleep(20);
	if (cr_call_soon_threadsafe(arg, late_cb, NULL) == 0)
		atomic_fetch_add(&late_calls, 10);
	for (int i = 0; i < 500 && atomic_load(&late_calls) < 12; i++)
		msleep(10);
	return 0;
}

static int call_slow_then_call_back(void *arg, void **ret)
{
	(void)ret;
	return cr_run_in_executor(slow_then_call_back, arg, NULL);
}

static int leave_executor_and_timer(void *arg, void **ret)
{
	cr_task *t;

	(void)arg;
	(void)ret;
	atomic_store(&exec_started, false);
	if (cr_spawn(call_slow_then_call_back, cr_loop_current(), NULL, &t) < 0)
		return -ENOMEM;
	while (!atomic_load(&exec_started))
		cr_sleep(0.001);
	/* Its caller gives up: no task is left, the job runs on. */
	cr_task_cancel(t, NULL);
	if (cr_task_join(t, NULL) != -ECANCELED)
		return -EPROTO;
	cr_task_unref(t);
	atomic_store(&main_returning, true);
	return cr_call_later(cr_loop_current(), 0.05, late_cb, NULL, NULL);
}

/* asyncio keeps the loop running while it waits for the executor: a timer
 * due meanwhile runs, and so does a callback a worker sends meanwhile. */
START_TEST(loop_runs_while_default_executor_shuts_down)
{
	cr_runner *r = new_runner(NULL);

	atomic_store(&late_calls, 0);
	atomic_store(&main_returning, false);
	ck_assert_int_eq(cr_runner_run(r, leave_executor_and_timer, NULL, NULL, NULL), 0);
	ck_assert_int_eq(cr_runner_close(r), 0);
	/* 10 for the accepted threadsafe call, 1 per callback run. */
	ck_assert_int_eq(atomic_load(&late_calls), 12);
	ck_assert_int_eq(reports, 0);
	cr_runner_free(r);
}
END_TEST

static int set_loop_executor_timeout(void *data, cr_loop **ret_loop)
{
	int e = factory(data, ret_loop);

	if (e == 0)
		cr_loop_set_executor_timeout(*ret_loop, 0.05);
	return e;
}

/* opts.executor_timeout 0: the loop's own setting. */
START_TEST(executor_timeout_zero_uses_loop_setting)
{
	cr_runner_opts o = {.size = sizeof(o), .loop_factory = set_loop_executor_timeout};
	cr_runner *r;

	ck_assert_int_eq(cr_runner_new(&o, &r), 0);
	atomic_store(&exec_done, false);
	ck_assert_int_eq(cr_runner_run(r, start_slow_worker, NULL, NULL, NULL), 0);
	ck_assert_int_eq(cr_runner_close(r), 0);
	ck_assert_int_eq(reports, 1);
	ck_assert_str_eq(last_message,
			 "The executor did not finishing joining its threads within 0.05 seconds.");
	cr_runner_free(r);
	factory_loop = cr_loop_unref(factory_loop);
	while (!atomic_load(&exec_done))
		msleep(5);
	msleep(30);
}
END_TEST

static Suite *runner_suite(void)
{
	Suite *s = suite_create("runner");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, run_returns_coroutine_result);
	tcase_add_test(tc, run_raises_coroutine_error);
	tcase_add_test(tc, asyncio_run_executes_coroutine_and_returns_result);
	tcase_add_test(tc, asyncio_run_uses_loop_factory_and_closes_loop);
	tcase_add_test(tc, asyncio_run_refused_inside_running_loop);
	tcase_add_test(tc, asyncio_run_finalizes_asyncgens_and_closes_executor);
	tcase_add_test(tc, get_loop_lazy_initialisation);
	tcase_add_test(tc, first_run_initialises_loop_and_context);
	tcase_add_test(tc, loop_factory_called_once_and_used_as_is);
	tcase_add_test(tc, runner_context_persists_across_run_calls);
	tcase_add_test(tc, runner_context_starts_as_copy_of_creator_context);
	tcase_add_test(tc, run_with_given_context_uses_it_as_is);
	tcase_add_test(tc, run_refused_inside_running_loop);
	tcase_add_test(tc, closed_runner_refuses_run);
	tcase_add_test(tc, close_is_idempotent);
	tcase_add_test(tc, leftover_tasks_cancelled_and_errors_reported);
	tcase_add_test(tc, close_tears_down_in_asyncio_order);
	tcase_add_test(tc, asyncgen_finalised_at_close_and_cleanup_awaits);
	tcase_add_test(tc, executor_shutdown_timeout_warns);
	tcase_add_test(tc, debug_tri_state_follows_env);
	tcase_add_test(tc, sigint_once_cancels_main_task);
	tcase_add_test(tc, sigint_twice_interrupts);
	tcase_add_test(tc, sigint_on_another_thread_wakes_the_blocked_loop);
	tcase_add_test(tc, sigint_left_alone_when_not_default_or_disabled);
	tcase_add_test(tc, sigint_not_handled_outside_main_thread);
	tcase_add_test(tc, sigint_between_runs_behaves_like_default);
	tcase_add_test(tc, closing_unused_runner_keeps_it_usable);
	tcase_add_test(tc, asyncio_run_names_itself_in_leftover_report);
	tcase_add_test(tc, asyncgen_cleanup_error_reported_when_main_returns_after_drop);
	tcase_add_test(tc, sigint_during_last_step_interrupts_run);
	tcase_add_test(tc, loop_runs_while_default_executor_shuts_down);
	tcase_add_test(tc, executor_timeout_zero_uses_loop_setting);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return tu_main(runner_suite()); }
