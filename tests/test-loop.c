/*
 * test-loop.c — the event loop: callback and timer ordering, handles,
 * clock, run/stop/close, call_soon_threadsafe from threads, signals, fd
 * waits, nesting, debug checks, backends and embedding.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "testutil.h"

struct rec {
	int seq[64];
	int n;
	cr_loop *loop;
	int stop_at;
};

struct rec_arg {
	struct rec *r;
	int id;
};

static void rec_cb(void *arg)
{
	struct rec_arg *a = arg;

	a->r->seq[a->r->n++] = a->id;
	if (a->r->stop_at && a->r->n == a->r->stop_at)
		cr_loop_stop(a->r->loop);
}

/* asyncio's stop() before run_forever(): the run does one iteration (the
 * callbacks ready run) and returns; run_until_complete then says the
 * task was not done (-EAGAIN); the stop is spent by that run. */
static int nap_fn(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	return cr_sleep(0.05);
}

START_TEST(stop_before_the_run_ends_it_after_one_iteration)
{
	struct rec r = {.n = 0};
	struct rec_arg a[2];

	r.loop = tu_loop();
	for (int i = 0; i < 2; i++) {
		a[i] = (struct rec_arg){&r, i};
		ck_assert_int_eq(cr_call_soon(r.loop, rec_cb, &a[i], NULL), 0);
	}
	cr_loop_stop(r.loop);
	ck_assert_int_eq(cr_loop_run_forever(r.loop), 0); /* returns: did not hang */
	ck_assert_int_eq(r.n, 2);

	cr_task *t;
	ck_assert_int_eq(cr_loop_spawn(r.loop, nap_fn, NULL, NULL, &t), 0);
	cr_loop_stop(r.loop);
	ck_assert_int_eq(cr_loop_run_until_complete(r.loop, t), -EAGAIN);
	ck_assert(!cr_task_done(t));
	/* the stop was spent: the next run goes to the end */
	ck_assert_int_eq(cr_loop_run_until_complete(r.loop, t), 0);
	cr_task_unref(t);
	cr_loop_unref(r.loop);
}
END_TEST

START_TEST(call_soon_runs_in_fifo_order)
{
	struct rec r = {.n = 0};
	struct rec_arg a[5];

	r.loop = tu_loop();
	r.stop_at = 5;
	for (int i = 0; i < 5; i++) {
		a[i] = (struct rec_arg){&r, i};
		ck_assert_int_eq(cr_call_soon(r.loop, rec_cb, &a[i], NULL), 0);
	}
	ck_assert_int_eq(cr_loop_run_forever(r.loop), 0);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(r.seq[i], i);
	cr_loop_unref(r.loop);
}
END_TEST

START_TEST(timers_run_by_deadline_then_in_scheduling_order)
{
	struct rec r = {.n = 0};
	struct rec_arg a[6];
	double now;

	r.loop = tu_loop();
	r.stop_at = 6;
	now = cr_loop_time(r.loop);
	for (int i = 0; i < 6; i++)
		a[i] = (struct rec_arg){&r, i};
	ck_assert_int_eq(cr_call_later(r.loop, 0.03, rec_cb, &a[0], NULL), 0);
	ck_assert_int_eq(cr_call_later(r.loop, 0.01, rec_cb, &a[1], NULL), 0);
	ck_assert_int_eq(cr_call_at(r.loop, now + 0.02, rec_cb, &a[2], NULL), 0);
	ck_assert_int_eq(cr_call_at(r.loop, now + 0.02, rec_cb, &a[3], NULL), 0);
	ck_assert_int_eq(cr_call_soon(r.loop, rec_cb, &a[4], NULL), 0);
	ck_assert_int_eq(cr_call_later(r.loop, -1, rec_cb, &a[5], NULL), 0);
	ck_assert_int_eq(cr_loop_run_forever(r.loop), 0);
	int want[6] = {4, 5, 1, 2, 3, 0};
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(r.seq[i], want[i]);
	ck_assert(cr_loop_time(r.loop) - now >= 0.03);
	cr_loop_unref(r.loop);
}
END_TEST

static void stop_cb(void *arg) { cr_loop_stop(arg); }

/* Timers armed in deadline order go to a FIFO, the others to a heap
 * (loop.c): their merge must keep the order of (deadline, scheduling
 * order) exactly, ties across the two included, through cancellations of
 * the FIFO's head, middle and tail and of the heap's top. */
START_TEST(timers_in_and_out_of_order_merge_exactly)
{
	/* deadline offsets; every deadline is already past, so all fire in
	 * one iteration and only the merge decides the order */
	static const double t[16] = {5, 5, 3, 7, 5, 1, 7, 3, 9, 6, 2, 5, 8.5, 4, 7, 8.5};
	static const int cancel1[] = {0, 8, 3, 5, 10, 6};
	static const int want[] = {2, 7, 13, 1, 4, 11, 9, 14, 12, 15};
	struct rec r = {.n = 0};
	struct rec_arg a[18];
	cr_handle *h[18];
	double base;

	r.loop = tu_loop();
	r.stop_at = 10;
	base = cr_loop_time(r.loop) - 100;
	for (int i = 0; i < 18; i++)
		a[i] = (struct rec_arg){&r, i};
	for (int i = 0; i < 11; i++)
		ck_assert_int_eq(cr_call_at(r.loop, base + t[i], rec_cb, &a[i], &h[i]), 0);
	/* leaves the FIFO with its first timer (1, at 5) as the tail, so 11
	 * (at 5 too) is appended after a heap timer of the same deadline */
	for (size_t k = 0; k < sizeof(cancel1) / sizeof(cancel1[0]); k++)
		cr_handle_cancel(h[cancel1[k]]);
	for (int i = 11; i < 16; i++)
		ck_assert_int_eq(cr_call_at(r.loop, base + t[i], rec_cb, &a[i], &h[i]), 0);
	ck_assert_int_eq(cr_loop_run_forever(r.loop), 0);
	ck_assert_int_eq(r.n, 10);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(r.seq[i], want[i]);

	/* A heap timer earlier than the FIFO's head bounds the wait. */
	r.n = 0;
	r.stop_at = 2;
	ck_assert_int_eq(cr_call_later(r.loop, 0.03, rec_cb, &a[16], &h[16]), 0);
	ck_assert_int_eq(cr_call_later(r.loop, 0.01, rec_cb, &a[17], &h[17]), 0);
	ck_assert_int_eq(cr_loop_run_forever(r.loop), 0);
	ck_assert_int_eq(r.n, 2);
	ck_assert_int_eq(r.seq[0], 17);
	ck_assert_int_eq(r.seq[1], 16);
	for (int i = 0; i < 18; i++)
		cr_handle_unref(h[i]);

	/* Close drops the timers of both, and cancelling them after is a
	 * no-op (ASan checks nothing is leaked or used after free). */
	ck_assert_int_eq(cr_call_later(r.loop, 10, rec_cb, &a[0], &h[0]), 0);
	ck_assert_int_eq(cr_call_later(r.loop, 5, rec_cb, &a[1], &h[1]), 0);
	ck_assert_int_eq(cr_call_later(r.loop, 20, rec_cb, &a[2], NULL), 0);
	ck_assert_int_eq(cr_loop_close(r.loop), 0);
	ck_assert_int_eq(r.n, 2);
	cr_handle_cancel(h[0]);
	cr_handle_cancel(h[1]);
	cr_handle_unref(h[0]);
	cr_handle_unref(h[1]);
	cr_loop_unref(r.loop);
}
END_TEST

START_TEST(cancelled_handles_never_run)
{
	struct rec r = {.n = 0};
	struct rec_arg a[3];
	cr_handle *h1, *h2, *h3;

	r.loop = tu_loop();
	for (int i = 0; i < 3; i++)
		a[i] = (struct rec_arg){&r, i};
	ck_assert_int_eq(cr_call_soon(r.loop, rec_cb, &a[0], &h1), 0);
	ck_assert_int_eq(cr_call_later(r.loop, 0.001, rec_cb, &a[1], &h2), 0);
	ck_assert_int_eq(cr_call_later(r.loop, 0.002, rec_cb, &a[2], &h3), 0);
	cr_handle_cancel(h1);
	cr_handle_cancel(h2);
	cr_handle_cancel(h2);
	ck_assert_int_eq(cr_call_later(r.loop, 0.02, stop_cb, r.loop, NULL), 0);
	cr_loop_run_forever(r.loop);
	ck_assert_int_eq(r.n, 1);
	ck_assert_int_eq(r.seq[0], 2);
	cr_handle_cancel(h3); /* already ran: no-op */
	cr_handle_unref(h1);
	cr_handle_unref(h2);
	cr_handle_unref(h3);
	cr_loop_unref(r.loop);
}
END_TEST

struct clock_state {
	cr_loop *loop;
	double a, b;
};

static void clock_cb(void *arg)
{
	struct clock_state *c = arg;
	struct timespec ts = {0, 2000000};

	c->a = cr_loop_time(c->loop);
	nanosleep(&ts, NULL);
	c->b = cr_loop_time(c->loop);
	cr_loop_stop(c->loop);
}

START_TEST(loop_time_is_cached_per_iteration)
{
	struct clock_state c;
	double before;

	c.loop = tu_loop();
	before = cr_loop_time(c.loop);
	cr_call_soon(c.loop, clock_cb, &c, NULL);
	cr_loop_run_forever(c.loop);
	ck_assert(c.a >= before);
	ck_assert(c.a == c.b);
	ck_assert(cr_loop_time(c.loop) >= c.b);
	cr_loop_unref(c.loop);
}
END_TEST

struct close_state {
	cr_loop *loop;
	int rc;
};

static void close_cb(void *arg)
{
	struct close_state *c = arg;

	c->rc = cr_loop_close(c->loop);
	cr_loop_stop(c->loop);
}

START_TEST(close_refused_while_running_then_idempotent)
{
	struct close_state c = {tu_loop(), 0};
	cr_task *t = NULL;

	ck_assert(!cr_loop_is_running(c.loop));
	cr_call_soon(c.loop, close_cb, &c, NULL);
	cr_loop_run_forever(c.loop);
	ck_assert_int_eq(c.rc, -EBUSY);
	ck_assert(!cr_loop_is_closed(c.loop));
	ck_assert_int_eq(cr_loop_close(c.loop), 0);
	ck_assert_int_eq(cr_loop_close(c.loop), 0);
	ck_assert(cr_loop_is_closed(c.loop));
	ck_assert_int_eq(cr_call_soon(c.loop, stop_cb, c.loop, NULL), -ESHUTDOWN);
	ck_assert_int_eq(cr_call_later(c.loop, 1, stop_cb, c.loop, NULL), -ESHUTDOWN);
	ck_assert_int_eq(cr_call_soon_threadsafe(c.loop, stop_cb, c.loop), -ESHUTDOWN);
	ck_assert_int_eq(cr_loop_run_forever(c.loop), -ESHUTDOWN);
	ck_assert_ptr_null(cr_loop_event_base(c.loop));
	(void)t;
	cr_loop_unref(c.loop);
}
END_TEST

START_TEST(close_drops_pending_callbacks_and_timers)
{
	struct rec r = {.n = 0};
	struct rec_arg a = {&r, 1};
	cr_handle *h;

	r.loop = tu_loop();
	cr_call_soon(r.loop, rec_cb, &a, NULL);
	cr_call_later(r.loop, 10, rec_cb, &a, &h);
	ck_assert_int_eq(cr_loop_close(r.loop), 0);
	ck_assert_int_eq(r.n, 0);
	cr_handle_cancel(h);
	cr_handle_unref(h);
	cr_loop_unref(r.loop);
}
END_TEST

#define NTHREADS   4
#define PER_THREAD 2500

struct ts_state {
	cr_loop *loop;
	atomic_int ran;
	atomic_int failed;
};

static void ts_cb(void *arg)
{
	struct ts_state *s = arg;

	if (atomic_fetch_add(&s->ran, 1) + 1 == NTHREADS * PER_THREAD)
		cr_loop_stop(s->loop);
}

static void *ts_thread(void *arg)
{
	struct ts_state *s = arg;

	for (int i = 0; i < PER_THREAD; i++) {
		if (cr_call_soon_threadsafe(s->loop, ts_cb, s) != 0)
			atomic_fetch_add(&s->failed, 1);
		if (i % 500 == 0)
			usleep(1000); /* let the loop fall asleep now and then */
	}
	return NULL;
}

START_TEST(call_soon_threadsafe_from_threads_runs_every_callback)
{
	struct ts_state s;
	pthread_t th[NTHREADS];

	s.loop = tu_loop();
	atomic_init(&s.ran, 0);
	atomic_init(&s.failed, 0);
	for (int i = 0; i < NTHREADS; i++)
		pthread_create(&th[i], NULL, ts_thread, &s);
	cr_loop_run_forever(s.loop);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(atomic_load(&s.failed), 0);
	ck_assert_int_eq(atomic_load(&s.ran), NTHREADS * PER_THREAD);
	cr_loop_unref(s.loop);
}
END_TEST

static void *late_thread(void *arg)
{
	usleep(30000);
	cr_call_soon_threadsafe(arg, stop_cb, arg);
	return NULL;
}

START_TEST(call_soon_threadsafe_wakes_a_sleeping_loop)
{
	cr_loop *loop = tu_loop();
	pthread_t th;

	/* Nothing scheduled: the loop blocks in its poll until woken. */
	pthread_create(&th, NULL, late_thread, loop);
	ck_assert_int_eq(cr_loop_run_forever(loop), 0);
	pthread_join(th, NULL);
	cr_loop_unref(loop);
}
END_TEST

struct sig_state {
	cr_loop *loop;
	int hits;
};

static void sig_cb(void *arg)
{
	struct sig_state *s = arg;

	s->hits++;
	cr_loop_stop(s->loop);
}

static void raise_cb(void *arg)
{
	(void)arg;
	raise(SIGUSR1);
}

START_TEST(signal_handler_runs_on_the_loop)
{
	struct sig_state s = {tu_loop(), 0};

	ck_assert_int_eq(cr_loop_add_signal_handler(s.loop, SIGUSR1, sig_cb, &s), 0);
	ck_assert_int_eq(cr_loop_add_signal_handler(s.loop, SIGKILL, sig_cb, &s), -EINVAL);
	cr_call_soon(s.loop, raise_cb, NULL, NULL);
	cr_loop_run_forever(s.loop);
	ck_assert_int_eq(s.hits, 1);
	ck_assert_int_eq(cr_loop_remove_signal_handler(s.loop, SIGUSR1), 0);
	ck_assert_int_eq(cr_loop_remove_signal_handler(s.loop, SIGUSR1), -ENOENT);
	cr_loop_unref(s.loop);
}
END_TEST

struct pipe_state {
	int fds[2];
};

static int writer_fn(void *arg, void **ret)
{
	struct pipe_state *p = arg;

	(void)ret;
	cr_sleep(0.01);
	return write(p->fds[1], "x", 1) == 1 ? 0 : -EIO;
}

static int fd_main(void *arg, void **ret)
{
	struct pipe_state *p = arg;
	cr_task *w;

	(void)ret;
	ck_assert_int_eq(cr_wait_fd(p->fds[0], CR_READ, 0.005), -ETIMEDOUT);
	ck_assert_int_eq(cr_wait_fd(p->fds[1], CR_WRITE, -1), CR_WRITE);
	ck_assert_int_eq(cr_spawn(writer_fn, p, NULL, &w), 0);
	ck_assert_int_eq(cr_wait_fd(p->fds[0], CR_READ, 5), CR_READ);
	ck_assert_int_eq(cr_task_join(w, NULL), 0);
	cr_task_unref(w);
	ck_assert_int_eq(cr_wait_fd(p->fds[0], 0, 1), -EINVAL);
	ck_assert_int_eq(cr_wait_fd(-1, CR_READ, 1), -EBADF);
	return 0;
}

START_TEST(wait_fd_reports_readiness_and_timeout)
{
	struct pipe_state p;

	ck_assert_int_eq(pipe(p.fds), 0);
	ck_assert_int_eq(tu_run(fd_main, &p, NULL), 0);
	close(p.fds[0]);
	close(p.fds[1]);
}
END_TEST

static int fd_wait_fn(void *arg, void **ret)
{
	(void)ret;
	return cr_wait_fd(*(int *)arg, CR_READ, -1);
}

static int fd_cancel_main(void *arg, void **ret)
{
	cr_task *t;

	(void)ret;
	ck_assert_int_eq(cr_spawn(fd_wait_fn, arg, NULL, &t), 0);
	cr_sleep(0.002);
	cr_task_cancel(t, NULL);
	ck_assert_int_eq(cr_task_join(t, NULL), -ECANCELED);
	cr_task_unref(t);
	return 0;
}

START_TEST(wait_fd_cancelled_while_waiting)
{
	int fds[2];

	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(tu_run(fd_cancel_main, &fds[0], NULL), 0);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

struct starve {
	int fd;
	bool io_done, timer_done;
	long spins;
};

static int spinner_fn(void *arg, void **ret)
{
	struct starve *s = arg;

	(void)ret;
	/* Always runnable: the loop must still poll and run timers. */
	while (!(s->io_done && s->timer_done) && s->spins < 50000000) {
		s->spins++;
		cr_yield();
	}
	return 0;
}

static int io_fn(void *arg, void **ret)
{
	struct starve *s = arg;
	int rc = cr_wait_fd(s->fd, CR_READ, -1);

	(void)ret;
	s->io_done = rc == CR_READ;
	return rc;
}

static int timer_fn(void *arg, void **ret)
{
	struct starve *s = arg;
	int rc = cr_sleep(0.002);

	(void)ret;
	s->timer_done = rc == 0;
	return rc;
}

static int starve_main(void *arg, void **ret)
{
	struct starve *s = arg;
	cr_task *t[3];

	(void)ret;
	ck_assert_int_eq(cr_spawn(spinner_fn, s, NULL, &t[0]), 0);
	ck_assert_int_eq(cr_spawn(io_fn, s, NULL, &t[1]), 0);
	ck_assert_int_eq(cr_spawn(timer_fn, s, NULL, &t[2]), 0);
	cr_gather(t, 3, NULL);
	for (int i = 0; i < 3; i++)
		cr_task_unref(t[i]);
	return 0;
}

START_TEST(busy_yielding_tasks_do_not_starve_io_or_timers)
{
	struct starve s = {0};
	int fds[2];

	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(write(fds[1], "x", 1), 1);
	s.fd = fds[0];
	ck_assert_int_eq(tu_run(starve_main, &s, NULL), 0);
	ck_assert(s.io_done);
	ck_assert(s.timer_done);
	ck_assert(s.spins < 50000000);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

static int nested_main(void *arg, void **ret)
{
	cr_loop *other = arg;

	(void)ret;
	ck_assert_int_eq(cr_loop_run_forever(other), -EBUSY);
	ck_assert_int_eq(cr_loop_run_forever(cr_loop_current()), -EBUSY);
	ck_assert(cr_loop_is_running(cr_loop_current()));
	return 0;
}

START_TEST(running_a_loop_inside_a_running_loop_is_refused)
{
	cr_loop *other = tu_loop();

	ck_assert_ptr_null(cr_loop_current());
	ck_assert_int_eq(tu_run(nested_main, other, NULL), 0);
	ck_assert_ptr_null(cr_loop_current());
	cr_loop_unref(other);
}
END_TEST

struct xthread {
	cr_loop *loop;
	int rc_soon, rc_spawn;
	atomic_bool done;
};

static int noop_fn(void *arg, void **ret)
{
	(void)arg;
	(void)ret;
	return 0;
}

static void *xthread_fn(void *arg)
{
	struct xthread *x = arg;

	x->rc_soon = cr_call_soon(x->loop, stop_cb, x->loop, NULL);
	x->rc_spawn = cr_loop_spawn(x->loop, noop_fn, NULL, NULL, NULL);
	atomic_store(&x->done, true);
	cr_call_soon_threadsafe(x->loop, stop_cb, x->loop);
	return NULL;
}

static pthread_t xth;

static void start_thread_cb(void *arg)
{
	/* Started while the loop runs: its calls are cross-thread. */
	pthread_create(&xth, NULL, xthread_fn, arg);
}

START_TEST(debug_refuses_calls_from_another_thread)
{
	cr_loop_opts o = {.size = sizeof(o), .debug = CR_DEBUG_ON};
	struct xthread x = {0};

	ck_assert_int_eq(cr_loop_new(&o, &x.loop), 0);
	cr_call_soon(x.loop, start_thread_cb, &x, NULL);
	cr_loop_run_forever(x.loop);
	pthread_join(xth, NULL);
	ck_assert(atomic_load(&x.done));
	ck_assert_int_eq(x.rc_soon, -EPERM);
	ck_assert_int_eq(x.rc_spawn, -EPERM);
	cr_loop_unref(x.loop);
}
END_TEST

START_TEST(debug_default_follows_environment)
{
	cr_loop *loop;

	setenv("CRUNNER_DEBUG", "1", 1);
	ck_assert_int_eq(cr_loop_new(NULL, &loop), 0);
	ck_assert_int_eq(cr_loop_get_debug(loop), 1);
	cr_loop_unref(loop);
	setenv("CRUNNER_DEBUG", "0", 1);
	ck_assert_int_eq(cr_loop_new(NULL, &loop), 0);
	ck_assert_int_eq(cr_loop_get_debug(loop), 0);
	cr_loop_set_debug(loop, true);
	ck_assert_int_eq(cr_loop_get_debug(loop), 1);
	cr_loop_unref(loop);
	unsetenv("CRUNNER_DEBUG");
}
END_TEST

/* The lowest free descriptor: a loop that made its base holds some. */
static int lowest_free_fd(void)
{
	int fd = dup(0);

	ck_assert_int_ge(fd, 0);
	close(fd);
	return fd;
}

static int compute_only(void *arg, void **ret)
{
	(void)ret;
	cr_yield();
	*(int *)arg = lowest_free_fd();
	return 0;
}

START_TEST(base_is_made_only_when_needed)
{
	int before = lowest_free_fd(), during = -1;
	const char *name;
	cr_loop *loop = tu_loop();

	/* A loop whose tasks never block makes no base and opens no fd. */
	ck_assert_int_eq(tu_run_on(loop, compute_only, &during, NULL), 0);
	ck_assert_int_eq(during, before);
	name = cr_loop_backend(loop);
	ck_assert_ptr_nonnull(name);
	/* Asking for the base makes it, with the backend announced. */
	ck_assert_ptr_nonnull(cr_loop_event_base(loop));
	ck_assert_int_gt(lowest_free_fd(), before);
	ck_assert_str_eq(cr_loop_backend(loop), name);
	ck_assert_int_eq(cr_loop_close(loop), 0);
	ck_assert_ptr_null(cr_loop_event_base(loop));
	ck_assert_int_eq(lowest_free_fd(), before);
	cr_loop_unref(loop);

	/* A loop with only timers makes its base when it must block. */
	loop = tu_loop();
	cr_call_later(loop, 0.005, stop_cb, loop, NULL);
	ck_assert_int_eq(cr_loop_run_forever(loop), 0);
	ck_assert_int_gt(lowest_free_fd(), before);
	cr_loop_unref(loop);
	ck_assert_int_eq(lowest_free_fd(), before);
}
END_TEST

static void *late_wake(void *arg)
{
	usleep(20000);
	cr_call_soon_threadsafe(arg, stop_cb, arg);
	return NULL;
}

START_TEST(loop_without_fds_still_runs_timers_and_wakes)
{
	struct tu_reports rep = {0};
	struct rlimit old, lim;
	cr_loop *loop = tu_loop();
	pthread_t th;
	double t0;

	/* No descriptor left: the base cannot be made when the loop has to
	 * block.  It reports that once and keeps going by sleeping. */
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)lowest_free_fd();
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
	cr_loop_set_exception_handler(loop, tu_handler, &rep);
	t0 = cr_loop_time(loop);
	cr_call_later(loop, 0.005, stop_cb, loop, NULL);
	ck_assert_int_eq(cr_loop_run_forever(loop), 0);
	ck_assert_double_ge(cr_loop_time(loop) - t0, 0.005);
	ck_assert_int_eq(rep.n, 1);
	/* A cross-thread call still gets through. */
	ck_assert_int_eq(pthread_create(&th, NULL, late_wake, loop), 0);
	ck_assert_int_eq(cr_loop_run_forever(loop), 0);
	pthread_join(th, NULL);
	ck_assert_int_eq(rep.n, 1);
	ck_assert_ptr_null(cr_loop_event_base(loop));
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	cr_loop_unref(loop);
}
END_TEST

START_TEST(backend_can_be_chosen_and_base_embedded)
{
	cr_loop_opts o = {.size = sizeof(o), .backend = "poll"};
	struct event_base *base;
	cr_loop *loop;

	ck_assert_int_eq(cr_loop_new(&o, &loop), 0);
	ck_assert_str_eq(cr_loop_backend(loop), "poll");
	cr_call_later(loop, 0.001, stop_cb, loop, NULL);
	ck_assert_int_eq(cr_loop_run_forever(loop), 0);
	cr_loop_unref(loop);

	o.backend = "no-such-backend";
	ck_assert_int_eq(cr_loop_new(&o, &loop), -EINVAL);
	o.backend = NULL;
	o.slow_callback_duration = -1;
	ck_assert_int_eq(cr_loop_new(&o, &loop), -EINVAL);

	base = event_base_new();
	o = (cr_loop_opts){.size = sizeof(o), .base = base};
	ck_assert_int_eq(cr_loop_new(&o, &loop), 0);
	ck_assert_ptr_eq(cr_loop_event_base(loop), base);
	cr_call_later(loop, 0.001, stop_cb, loop, NULL);
	ck_assert_int_eq(cr_loop_run_forever(loop), 0);
	cr_loop_unref(loop);
	/* Not freed by the loop. */
	ck_assert_int_eq(event_base_loop(base, EVLOOP_NONBLOCK), 1);
	event_base_free(base);
}
END_TEST

START_TEST(exception_handler_receives_reports)
{
	struct tu_reports rep = {0};
	cr_error_report r = {"something broke", -EIO, NULL};
	cr_loop *loop = tu_loop();

	cr_loop_set_exception_handler(loop, tu_handler, &rep);
	cr_loop_call_exception_handler(loop, &r);
	ck_assert_int_eq(rep.n, 1);
	ck_assert_str_eq(rep.last, "something broke");
	ck_assert_int_eq(rep.last_error, -EIO);
	cr_loop_unref(loop);
}
END_TEST

START_TEST(executor_settings_are_kept)
{
	cr_loop *loop = tu_loop();

	ck_assert_int_eq(cr_loop_set_executor_threads(loop, 3), 0);
	cr_loop_set_executor_timeout(loop, 12.5);
	cr_loop_unref(loop);
}
END_TEST

static void slow_cb(void *arg)
{
	struct timespec ts = {0, 30000000};

	nanosleep(&ts, NULL);
	cr_loop_stop(arg);
}

START_TEST(debug_reports_slow_callback)
{
	cr_loop_opts o = {.size = sizeof(o), .debug = CR_DEBUG_ON, .slow_callback_duration = 0.01};
	struct tu_reports rep = {0};
	cr_loop *loop;

	ck_assert_int_eq(cr_loop_new(&o, &loop), 0);
	cr_loop_set_exception_handler(loop, tu_handler, &rep);
	cr_call_soon(loop, slow_cb, loop, NULL);
	cr_loop_run_forever(loop);
	ck_assert_int_eq(rep.n, 1);
	ck_assert_msg(strstr(rep.last, "Executing a callback took"), "%s", rep.last);
	cr_loop_unref(loop);
}
END_TEST

/* cr_call_later from a foreign thread (debug mode) is refused before it
 * touches the loop: the loop's cached time stays the loop's own.  The
 * foreign thread waits until the loop blocks (its clock cache is then
 * empty), calls cr_call_later, reads the clock, and sends a callback that
 * reads the loop's time: that must not be older than the foreign read. */
struct foreign_later {
	cr_loop *loop;
	int rc;
	double after;
	double seen;
	atomic_bool blocked;
};

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void read_time_and_stop(void *arg)
{
	struct foreign_later *f = arg;

	f->seen = cr_loop_time(f->loop);
	cr_loop_stop(f->loop);
}

static void *foreign_call_later(void *arg)
{
	struct foreign_later *f = arg;
	struct timespec ts = {0, 20 * 1000000L};

	while (!atomic_load(&f->blocked))
		nanosleep(&ts, NULL);
	nanosleep(&ts, NULL); /* the loop is in its poll by now */
	f->rc = cr_call_later(f->loop, 0.001, stop_cb, f->loop, NULL);
	f->after = mono();
	cr_call_soon_threadsafe(f->loop, read_time_and_stop, f);
	return NULL;
}

static void mark_blocked(void *arg)
{
	struct foreign_later *f = arg;

	atomic_store(&f->blocked, true);
}

START_TEST(call_later_from_foreign_thread_leaves_loop_clock_alone)
{
	cr_loop_opts o = {.size = sizeof(o), .debug = CR_DEBUG_ON};
	struct foreign_later f = {0};
	pthread_t th;

	ck_assert_int_eq(cr_loop_new(&o, &f.loop), 0);
	cr_call_soon(f.loop, mark_blocked, &f, NULL);
	ck_assert_int_eq(pthread_create(&th, NULL, foreign_call_later, &f), 0);
	ck_assert_int_eq(cr_loop_run_forever(f.loop), 0);
	pthread_join(th, NULL);
	ck_assert_int_eq(f.rc, -EPERM);
	ck_assert_msg(f.seen >= f.after, "loop time %.9f older than the foreign read %.9f", f.seen,
		      f.after);
	cr_loop_close(f.loop);
	cr_loop_unref(f.loop);
}
END_TEST

static Suite *loop_suite(void)
{
	Suite *s = suite_create("loop");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, call_soon_runs_in_fifo_order);
	tcase_add_test(tc, stop_before_the_run_ends_it_after_one_iteration);
	tcase_add_test(tc, timers_run_by_deadline_then_in_scheduling_order);
	tcase_add_test(tc, cancelled_handles_never_run);
	tcase_add_test(tc, timers_in_and_out_of_order_merge_exactly);
	tcase_add_test(tc, loop_time_is_cached_per_iteration);
	tcase_add_test(tc, close_refused_while_running_then_idempotent);
	tcase_add_test(tc, close_drops_pending_callbacks_and_timers);
	tcase_add_test(tc, call_soon_threadsafe_from_threads_runs_every_callback);
	tcase_add_test(tc, call_soon_threadsafe_wakes_a_sleeping_loop);
	tcase_add_test(tc, signal_handler_runs_on_the_loop);
	tcase_add_test(tc, wait_fd_reports_readiness_and_timeout);
	tcase_add_test(tc, wait_fd_cancelled_while_waiting);
	tcase_add_test(tc, busy_yielding_tasks_do_not_starve_io_or_timers);
	tcase_add_test(tc, running_a_loop_inside_a_running_loop_is_refused);
	tcase_add_test(tc, debug_refuses_calls_from_another_thread);
	tcase_add_test(tc, debug_default_follows_environment);
	tcase_add_test(tc, debug_reports_slow_callback);
	tcase_add_test(tc, backend_can_be_chosen_and_base_embedded);
	tcase_add_test(tc, base_is_made_only_when_needed);
	tcase_add_test(tc, loop_without_fds_still_runs_timers_and_wakes);
	tcase_add_test(tc, exception_handler_receives_reports);
	tcase_add_test(tc, executor_settings_are_kept);
	tcase_add_test(tc, call_later_from_foreign_thread_leaves_loop_clock_alone);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return tu_main(loop_suite()); }
