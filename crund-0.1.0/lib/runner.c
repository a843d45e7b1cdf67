/*
 * runner.c — asyncio.Runner and asyncio.run.
 *
 * A runner owns (lazily) one loop and one context; run() spawns the
 * coroutine as a task IN that context (or a given one) and runs the loop
 * until it is done; close() tears down in asyncio's order: cancel the
 * leftover tasks and wait for them, close async generators, shut the
 * default executor down with its timeout, close the loop, release the
 * context.
 *
 * SIGINT, like asyncio: only in the main thread, only when opts.sigint is
 * CR_SIGINT_AUTO and SIGINT has its default disposition.  The first SIGINT
 * cancels the main task (run() returns -EINTR); a second one stops the
 * loop at once.  Runner.run() must stay cheap (a few µs), so instead of
 * two sigaction() calls per run, one process-wide handler is installed at
 * the first run that needs it and stays until the last such runner
 * closes.  Per run only an atomic "current runner" pointer is set and
 * cleared.  With no runner running, the handler behaves like the default:
 * it restores the original disposition and re-raises.  The handler only
 * counts and wakes the runner's loop (cr__loop_signal_wake: an atomic flag
 * and, if the loop is blocked, an eventfd write); the loop then runs the
 * runner's hook on its own thread.  No pipe and no libevent event: a run
 * that never blocks needs no event base at all (loop.c).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "loop.h"

enum { R_INITIAL, R_INITIALIZED, R_CLOSED };

struct cr_runner {
	cr_runner_opts opts;
	int state;
	cr_loop *loop;           /* reference */
	cr_context *ctx;         /* reference: the shared context */
	cr_task *main_task;      /* the task of the run in progress */
	atomic_int sigint_count; /* SIGINTs during the current run */
	int sigint_seen;         /* SIGINTs handled on the loop thread */
	bool interrupted;        /* a second SIGINT stopped the loop */
	int sigint_mode;         /* SIGINT handling: unknown, on, off */
	bool is_run;             /* made by cr_run (names asyncio.run) */
};

enum { SIGINT_UNKNOWN, SIGINT_ON, SIGINT_OFF };

/* ------------------------------------------------------- process SIGINT */

/* Main thread only (enforced before use), so the bookkeeping below needs
 * no lock; the handler reads only the atomics and the fd. */
static struct sigaction sigint_orig;
static bool sigint_installed;
static unsigned sigint_users; /* runners registered */
static _Atomic(cr_runner *) sigint_current;

static void on_sigint(int signo)
{
	cr_runner *r = atomic_load(&sigint_current);
	int saved = errno;

	if (!r) {
		/* No runner running: behave as if we were not there. */
		sigaction(SIGINT, &sigint_orig, NULL);
		raise(signo);
		errno = saved;
		return;
	}
	atomic_fetch_add(&r->sigint_count, 1);
	cr__loop_signal_wake(r->loop);
	errno = saved;
}

static bool is_main_thread(void)
{
	static __thread int main_thread = -1;

	if (main_thread < 0)
		main_thread = syscall(SYS_gettid) == getpid();
	return main_thread;
}

/* The loop's signal hook, on the loop thread. */
static void sigint_hook(void *arg)
{
	cr_runner *r = arg;
	int n;

	if (atomic_load(&sigint_current) != r)
		return;
	n = atomic_load(&r->sigint_count);
	if (n > r->sigint_seen && r->sigint_seen == 0 && r->main_task &&
	    !cr_task_done(r->main_task)) {
		/* Seen only once it cancels: a SIGINT too late to cancel
		 * the main task is run()'s to report (-EINTR). */
		r->sigint_seen = 1;
		cr_task_cancel(r->main_task, "interrupted");
	}
	if (n >= 2 && !r->interrupted) {
		/* Second SIGINT: asyncio raises KeyboardInterrupt wherever it
		 * is; we stop the loop now, close() cleans up. */
		r->sigint_seen = n;
		r->interrupted = true;
		cr_loop_stop(r->loop);
	}
}

/* Decide at the runner's first run whether it handles SIGINT, and set up
 * the process handler and this loop's hook when it does.
 *
 * sigaction is a good part of a cr_run (bench/README.md, cr_run), so installing and
 * restoring take one call each instead of a query plus a change: ours is
 * swapped in and the previous one put back if it was not the default
 * (SIGINT arriving in between reaches on_sigint with no runner running,
 * which restores sigint_orig, already filled in by the swap, and
 * re-raises: the previous handler still gets it). */
static void sigint_setup(cr_runner *r)
{
	struct sigaction cur, sa;

	r->sigint_mode = SIGINT_OFF;
	if (r->opts.sigint != CR_SIGINT_AUTO || !is_main_thread())
		return;
	if (sigint_installed) {
		if (sigaction(SIGINT, NULL, &cur) < 0 || cur.sa_handler != on_sigint)
			return; /* someone replaced ours: not the default */
	} else {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_sigint;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = SA_RESTART;
		if (sigaction(SIGINT, &sa, &sigint_orig) < 0)
			return;
		if (sigint_orig.sa_handler != SIG_DFL || (sigint_orig.sa_flags & SA_SIGINFO)) {
			sigaction(SIGINT, &sigint_orig, NULL);
			return;
		}
		sigint_installed = true;
	}
	cr__loop_set_sig_hook(r->loop, sigint_hook, r);
	sigint_users++;
	r->sigint_mode = SIGINT_ON;
}

static void sigint_release(cr_runner *r)
{
	struct sigaction cur;

	if (r->sigint_mode != SIGINT_ON)
		return;
	r->sigint_mode = SIGINT_OFF;
	cr__loop_set_sig_hook(r->loop, NULL, NULL);
	if (--sigint_users == 0 && sigint_installed) {
		/* Restore, and if ours was no longer the handler, put back the
		 * one that replaced it. */
		if (sigaction(SIGINT, &sigint_orig, &cur) == 0 && cur.sa_handler != on_sigint)
			sigaction(SIGINT, &cur, NULL);
		sigint_installed = false;
	}
}

/* ---------------------------------------------------------------- runner */

int cr_runner_new(const cr_runner_opts *opts, cr_runner **ret_runner)
{
	cr_runner *r;

	if (!ret_runner)
		return cr__error(-EINVAL, "cr_runner_new: ret_runner is NULL");
	if (opts && opts->size && opts->size < offsetof(cr_runner_opts, sigint) + sizeof(int))
		return cr__error(-EINVAL, "cr_runner_new: opts.size is too small");
	if (opts && (opts->debug < CR_DEBUG_DEFAULT || opts->debug > CR_DEBUG_ON))
		return cr__error(-EINVAL, "cr_runner_new: opts.debug must be a CR_DEBUG_* value");
	if (opts && opts->executor_timeout < 0)
		return cr__error(-EINVAL, "cr_runner_new: opts.executor_timeout is negative");
	r = cr__calloc(1, sizeof(*r));
	if (!r)
		return cr__error(-ENOMEM, "out of memory creating a runner");
	if (opts)
		r->opts = *opts;
	else
		r->opts.debug = CR_DEBUG_DEFAULT;
	r->opts.size = sizeof(r->opts);
	r->state = R_INITIAL;
	*ret_runner = r;
	return 0;
}

static int lazy_init(cr_runner *r)
{
	cr_loop *loop = NULL;
	cr_context *ctx = NULL;
	int e;

	if (r->state == R_CLOSED)
		return cr__error(-ESHUTDOWN, "Runner is closed");
	if (r->state == R_INITIALIZED)
		return 0;
	if (r->opts.loop_factory) {
		e = r->opts.loop_factory(r->opts.loop_factory_data, &loop);
		if (e < 0)
			return e;
		if (!loop)
			return cr__error(-EINVAL, "the loop factory returned no loop");
		/* Used as is: only an explicit setting changes its debug mode. */
		if (r->opts.debug != CR_DEBUG_DEFAULT)
			cr_loop_set_debug(loop, r->opts.debug == CR_DEBUG_ON);
	} else {
		cr_loop_opts lo = {.size = sizeof(lo), .debug = r->opts.debug};

		e = cr_loop_new(&lo, &loop);
		if (e < 0)
			return e;
	}
	e = cr_context_copy_current(&ctx);
	if (e < 0) {
		/* The factory was called: the runner cannot retry it, so close. */
		cr_loop_close(loop);
		cr_loop_unref(loop);
		r->state = R_CLOSED;
		return e;
	}
	r->loop = loop;
	r->ctx = ctx;
	r->state = R_INITIALIZED;
	return 0;
}

int cr_runner_get_loop(cr_runner *r, cr_loop **ret_loop)
{
	int e;

	if (!r || !ret_loop)
		return cr__error(-EINVAL, "cr_runner_get_loop: NULL argument");
	e = lazy_init(r);
	if (e < 0)
		return e;
	*ret_loop = r->loop;
	return 0;
}

int cr_runner_get_context(cr_runner *r, cr_context **ret_ctx)
{
	int e;

	if (!r || !ret_ctx)
		return cr__error(-EINVAL, "cr_runner_get_context: NULL argument");
	e = lazy_init(r);
	if (e < 0)
		return e;
	*ret_ctx = r->ctx;
	return 0;
}

int cr_runner_run(cr_runner *r, cr_fn fn, void *arg, cr_context *ctx, void **ret_value)
{
	cr_spawn_opts so = {.size = sizeof(so)};
	cr_task *task;
	void *value = NULL;
	int e;

	if (!r || !fn)
		return cr__error(-EINVAL, "cr_runner_run: NULL argument");
	if (cr_loop_current())
		return cr__error(-EBUSY, "Runner.run() cannot be called from a running event loop");
	e = lazy_init(r);
	if (e < 0)
		return e;
	so.context = ctx ? ctx : r->ctx;
	e = cr_loop_spawn(r->loop, fn, arg, &so, &task);
	if (e < 0)
		return e;
	if (r->sigint_mode == SIGINT_UNKNOWN)
		sigint_setup(r);
	if (r->sigint_mode == SIGINT_ON) {
		atomic_store(&r->sigint_count, 0);
		r->sigint_seen = 0;
		r->interrupted = false;
		r->main_task = task;
		atomic_store(&sigint_current, r);
	}
	e = cr_loop_run_until_complete(r->loop, task);
	if (r->sigint_mode == SIGINT_ON) {
		atomic_store(&sigint_current, NULL);
		r->main_task = NULL;
		if (r->interrupted) {
			/* Stopped by the second SIGINT: the task is a leftover
			 * for close() to cancel. */
			cr_task_unref(task);
			return cr__error(-EINTR, "interrupted");
		}
		if (atomic_load(&r->sigint_count) > 0 && e == -ECANCELED &&
		    cr_task_uncancel(task) == 0) {
			cr_task_unref(task);
			return cr__error(-EINTR, "interrupted");
		}
		if (atomic_load(&r->sigint_count) > 0 && r->sigint_seen == 0) {
			/* SIGINT arrived while the main task ran its last step
			 * (or the loop ended before its hook ran): too late to
			 * cancel it, so it is the interruption itself, as
			 * asyncio raises KeyboardInterrupt there.  The result
			 * is dropped. */
			cr_task_unref(task);
			return cr__error(-EINTR, "interrupted");
		}
	}
	if (cr_task_done(task)) {
		int rc = cr_task_result(task, &value);

		if (rc != -EAGAIN)
			e = rc;
	}
	cr_task_unref(task);
	if (e >= 0 && ret_value)
		*ret_value = value;
	return e;
}

/* ----------------------------------------------------------------- close */

struct leftovers {
	cr_task **tasks;
	size_t n, cap;
	cr_task *self;
	bool oom;
};

static void collect_task(cr_task *t, void *arg)
{
	struct leftovers *l = arg;

	if (t == l->self || cr__agen_is_body(t))
		return;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		cr_task **nt = cr__realloc(l->tasks, cap * sizeof(*nt));

		if (!nt) {
			/* Still cancel it; we just cannot wait for it. */
			l->oom = true;
			cr_task_cancel(t, NULL);
			return;
		}
		l->tasks = nt;
		l->cap = cap;
	}
	l->tasks[l->n++] = cr_task_ref(t);
}

/* Cancel every other task of the loop, wait for them, report failures
 * (`what` names the shutdown, as asyncio does). */
static void cancel_all_tasks(cr_loop *loop, const char *what)
{
	struct leftovers l = {.self = cr_current_task()};
	int *codes;

	cr__loop_foreach_task(loop, collect_task, &l);
	if (l.n == 0) {
		free(l.tasks);
		return;
	}
	for (size_t i = 0; i < l.n; i++)
		cr_task_cancel(l.tasks[i], NULL);
	codes = cr__calloc(l.n, sizeof(*codes));
	cr_gather(l.tasks, l.n, codes);
	for (size_t i = 0; i < l.n; i++) {
		int rc = codes ? codes[i] : cr_task_result(l.tasks[i], NULL);

		if (rc < 0 && rc != -ECANCELED && !cr_task_cancelled(l.tasks[i])) {
			cr_error_report rep = {
				.message = what,
				.error = rc,
				.task = l.tasks[i],
			};
			cr_loop_call_exception_handler(loop, &rep);
		}
		cr_task_unref(l.tasks[i]);
	}
	free(codes);
	free(l.tasks);
}

/* opts.executor_timeout, else the loop's setting as is (300 s unless
 * changed with cr_loop_set_executor_timeout; 0 there means no wait), the
 * same rule as cr_loop_shutdown_default_executor(loop, -1). */
static double executor_timeout(const cr_runner *r)
{
	double t = r->opts.executor_timeout;

	return t > 0 ? t : cr__loop_executor_timeout(r->loop);
}

static int closer_main(void *arg, void **ret_value)
{
	cr_runner *r = arg;
	double timeout = executor_timeout(r);

	(void)ret_value;
	cancel_all_tasks(r->loop, r->is_run ? "unhandled exception during asyncio.run() shutdown"
					    : "unhandled exception during Runner.close() shutdown");
	cr_loop_shutdown_asyncgens(r->loop);
	if (cr__loop_slot(r->loop, CR__SLOT_EXECUTOR))
		cr_loop_shutdown_default_executor(r->loop, timeout);
	return 0;
}

int cr_runner_close(cr_runner *r)
{
	cr_loop *loop;

	if (!r)
		return 0;
	/* Like asyncio: nothing to do unless initialised, so a runner closed
	 * before its first use still runs (and an R_CLOSED one stays so). */
	if (r->state != R_INITIALIZED)
		return 0;
	loop = r->loop;
	if (cr_loop_current() || cr_loop_is_running(loop))
		return cr__error(-EBUSY,
				 "Runner.close() cannot be called from a running event loop");
	if (!cr_loop_is_closed(loop)) {
		/* The closer task costs a spawn and a loop pass: skip it when
		 * there are no tasks, no generator ever started and no
		 * executor.  With an executor the loop runs while it is waited
		 * for, as in asyncio: timers due meanwhile and callbacks sent
		 * by its workers still run. */
		if (cr__loop_task_count(loop) > 0 || cr__loop_slot(loop, CR__SLOT_AGENS) ||
		    cr__loop_slot(loop, CR__SLOT_EXECUTOR)) {
			cr_spawn_opts so = {
				.size = sizeof(so), .name = "Runner.close", .context = r->ctx};
			cr_task *t;

			if (cr_loop_spawn(loop, closer_main, r, &so, &t) == 0) {
				cr_loop_run_until_complete(loop, t);
				cr_task_unref(t);
			} else if (cr__loop_slot(loop, CR__SLOT_EXECUTOR)) {
				/* No task to run it (out of memory): at least wait
				 * for the workers, outside the loop. */
				cr_loop_shutdown_default_executor(loop, executor_timeout(r));
			}
		}
	}
	sigint_release(r);
	cr_loop_close(loop);
	r->loop = cr_loop_unref(loop);
	r->ctx = cr_context_unref(r->ctx);
	r->state = R_CLOSED;
	return 0;
}

void cr_runner_free(cr_runner *r)
{
	if (!r)
		return;
	if (cr_runner_close(r) < 0)
		/* Freed from inside its own loop: a programming error; leaking
		 * beats a use-after-free. */
		return;
	free(r);
}

int cr_run(cr_fn fn, void *arg, void **ret_value, const cr_runner_opts *opts)
{
	cr_runner *r;
	int e, c;

	if (!fn)
		return cr__error(-EINVAL, "cr_run: fn is NULL");
	/* asyncio.run() checks this before creating anything. */
	if (cr_loop_current())
		return cr__error(-EBUSY,
				 "asyncio.run() cannot be called from a running event loop");
	e = cr_runner_new(opts, &r);
	if (e < 0)
		return e;
	r->is_run = true;
	e = cr_runner_run(r, fn, arg, NULL, ret_value);
	c = cr_runner_close(r);
	free(r);
	return e < 0 ? e : (c < 0 ? c : e);
}
