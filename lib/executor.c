/*
 * executor.c — the loop's default executor: a lazily created thread pool
 * for blocking functions (loop.run_in_executor(None, ...)).
 *
 * Shape:
 *   - One `struct pool` per loop, hung on CR__SLOT_EXECUTOR, created on the
 *     first cr_run_in_executor() (or by a shutdown, to remember it).  The
 *     pool is refcounted: the loop holds one reference, each worker thread
 *     one, so a worker that outlives the loop (shutdown timed out) still
 *     has valid state to look at.
 *   - The caller's task parks (cr__task_park) on a work item; a worker
 *     runs it and pushes it on a completion list.  Only the worker that
 *     finds that list empty sends the pool's cr__async (no allocation,
 *     so it cannot fail and strand a result): a burst of completions
 *     costs one loop wake-up, and the loop-side flush wakes every
 *     finished task in one go.
 *   - Workers drain the queue without sleeping between items.  One
 *     worker at most spins briefly before blocking (more would steal the
 *     CPU from the loop thread that feeds them on a small machine), and a
 *     worker that takes an item while more are queued wakes the next
 *     sleeper: a burst of submissions costs a few futex wakes, not one per
 *     item, and the submitter signals only when nobody awake is free.
 *   - `detached` (set under the lock when the loop closes) tells late
 *     workers the loop is gone: they free what they finish and exit
 *     without touching the loop.  cr__async_send() is only ever
 *     called with the lock held and `detached` false, and the loop sets
 *     `detached` under the same lock before it frees anything, so a worker
 *     can never reach a closed loop.
 *
 * Work item states (all transitions under the pool lock, except WOKEN
 * which only the loop thread sees):
 *   QUEUED → RUNNING → DONE (on the completion list) → WOKEN (task woken)
 * An item whose task was cancelled is "abandoned" (task = NULL): if still
 * queued it is unlinked and freed at once (the function never runs, like a
 * pending concurrent future being cancelled); if running, the flush (or a
 * detached worker) frees it when it ends.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define EXECUTOR_MAX_DEFAULT_THREADS 32
#define EXECUTOR_DEFAULT_TIMEOUT     300.0
/* Spin (pause instructions) of the one worker waiting for work before it
 * blocks on the condition variable.  Adaptive: doubled after a spin that
 * caught the next submission (a batch is under way), halved after one
 * that ran out (idle: blocking sooner wastes less), within these bounds;
 * and every EXECUTOR_SPIN_YIELD iterations the spinner yields its CPU, so
 * on a small, busy machine it does not keep the loop thread that feeds it
 * off a core. */
#define EXECUTOR_SPIN_MIN            32
#define EXECUTOR_SPIN_START          400
#define EXECUTOR_SPIN_MAX            4096
#define EXECUTOR_SPIN_YIELD          256

/* Item states.  QUEUED → RUNNING is taken by a worker and QUEUED →
 * ABANDONED by a cancelled caller, both by compare-and-swap, so exactly
 * one of them owns a queued item. */
enum { W_QUEUED, W_RUNNING, W_ABANDONED, W_WOKEN };

struct work {
	struct work *next;
	cr_blocking_fn fn;
	void *arg;
	void *value;
	int rc;
	atomic_int state;
	cr_task *task; /* parked caller, NULL when abandoned (loop thread) */
};

/* Submissions and completions travel through lock-free stacks: the loop
 * thread pushes work on `incoming` without taking the pool lock, workers
 * (under the lock, one at a time) take the whole stack into their FIFO;
 * workers push results on `done`, the loop thread takes the whole stack.
 * Taking a whole stack (exchange) avoids the ABA problem of popping. */
struct pool {
	pthread_mutex_t lock;
	pthread_cond_t work_cv;          /* workers wait for work */
	pthread_cond_t exit_cv;          /* shutdown waits for workers to exit */
	atomic_uint refs;                /* the loop + one per live worker */
	_Atomic(struct work *) incoming; /* submitted, LIFO */
	_Atomic(struct work *) done;     /* finished, LIFO */
	atomic_uint pending;             /* submitted and not yet taken by a worker */
	atomic_uint idle;                /* threads not running an item */
	atomic_uint sleeping;            /* threads blocked (or about to) on work_cv */
	atomic_uint wakes;               /* signals sent and not yet consumed */
	atomic_uint spinning;            /* threads spinning for work (0 or 1) */
	unsigned spin;                   /* current spin length (the spinner's only) */
	atomic_bool shutdown;            /* refuse new work; workers exit when idle */
	atomic_bool detached;            /* the loop is closed (set under lock) */
	struct cr__async flush;          /* workers wake the loop's flush with it */
	cr_loop *loop;                   /* not a reference; never used once detached */
	struct work *head, *tail;        /* workers' FIFO (under lock) */
	bool joined;                     /* shutdown finished joining or detaching */
	unsigned max_threads;
	unsigned nthreads;  /* threads started and not yet exited (lock) */
	pthread_t *threads; /* started threads, for join / detach */
	unsigned nstarted;  /* loop thread, under lock */
};

static void free_list(struct work *w)
{
	while (w) {
		struct work *n = w->next;

		free(w);
		w = n;
	}
}

static void pool_unref(struct pool *p)
{
	if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
		return;
	/* Only reached once every worker exited and the loop let go. */
	free_list(p->head);
	free_list(atomic_exchange(&p->incoming, NULL));
	free_list(atomic_exchange(&p->done, NULL));
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work_cv);
	pthread_cond_destroy(&p->exit_cv);
	free(p->threads);
	free(p);
}

static unsigned default_threads(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = (cpus > 0 ? (unsigned)cpus : 1) + 4;

	return n < EXECUTOR_MAX_DEFAULT_THREADS ? n : EXECUTOR_MAX_DEFAULT_THREADS;
}

static void flush_completions(void *arg);

static struct pool *pool_get(cr_loop *loop, bool create)
{
	struct pool *p = cr__loop_slot(loop, CR__SLOT_EXECUTOR);
	unsigned n;

	if (p || !create)
		return p;
	p = cr__calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	n = cr__loop_executor_threads(loop);
	p->max_threads = n ? n : default_threads();
	p->threads = cr__calloc(p->max_threads, sizeof(pthread_t));
	if (!p->threads) {
		free(p);
		return NULL;
	}
	if (pthread_mutex_init(&p->lock, NULL) != 0)
		goto fail;
	if (pthread_cond_init(&p->work_cv, NULL) != 0) {
		pthread_mutex_destroy(&p->lock);
		goto fail;
	}
	if (pthread_cond_init(&p->exit_cv, NULL) != 0) {
		pthread_cond_destroy(&p->work_cv);
		pthread_mutex_destroy(&p->lock);
		goto fail;
	}
	atomic_init(&p->refs, 1);
	atomic_init(&p->incoming, NULL);
	atomic_init(&p->done, NULL);
	atomic_init(&p->pending, 0);
	atomic_init(&p->idle, 0);
	atomic_init(&p->sleeping, 0);
	atomic_init(&p->wakes, 0);
	atomic_init(&p->spinning, 0);
	p->spin = EXECUTOR_SPIN_START;
	atomic_init(&p->shutdown, false);
	atomic_init(&p->detached, false);
	p->loop = loop;
	cr__async_start(loop, &p->flush, flush_completions, p);
	cr__loop_set_slot(loop, CR__SLOT_EXECUTOR, p);
	return p;
fail:
	free(p->threads);
	free(p);
	return NULL;
}

static void push(_Atomic(struct work *) *stack, struct work *w, bool *was_empty)
{
	struct work *head = atomic_load_explicit(stack, memory_order_relaxed);

	do
		w->next = head;
	while (!atomic_compare_exchange_weak_explicit(stack, &head, w, memory_order_seq_cst,
						      memory_order_relaxed));
	if (was_empty)
		*was_empty = head == NULL;
}

/* Take a whole stack, in push (FIFO) order. */
static struct work *take_all(_Atomic(struct work *) *stack)
{
	struct work *list = atomic_exchange(stack, NULL), *rev = NULL;

	while (list) {
		struct work *w = list;

		list = w->next;
		w->next = rev;
		rev = w;
	}
	return rev;
}

/* ------------------------------------------------------------ loop side */

/* Loop thread: hand every finished item back to its task. */
static void flush_completions(void *arg)
{
	struct pool *p = arg;
	struct work *w = take_all(&p->done);

	while (w) {
		struct work *next = w->next;

		if (!w->task) {
			free(w); /* abandoned: the caller was cancelled */
		} else {
			atomic_store_explicit(&w->state, W_WOKEN, memory_order_relaxed);
			cr__task_wake(w->task, w->rc);
		}
		w = next;
	}
}

/* Lock held.  Next item for a worker, refilling from `incoming`. */
static struct work *queue_pop(struct pool *p)
{
	struct work *w = p->head;

	if (!w) {
		w = take_all(&p->incoming);
		if (!w)
			return NULL;
		p->head = w;
		for (p->tail = w; p->tail->next; p->tail = p->tail->next)
			;
	}
	p->head = w->next;
	if (!p->head)
		p->tail = NULL;
	atomic_fetch_sub_explicit(&p->pending, 1, memory_order_relaxed);
	return w;
}

static inline void consume_wake(struct pool *p)
{
	unsigned n = atomic_load(&p->wakes);

	/* Erring low only costs an extra signal later. */
	while (n && !atomic_compare_exchange_weak(&p->wakes, &n, n - 1))
		;
}

/* Lock held.  Wake one sleeper if there is one not already being woken. */
static void wake_one(struct pool *p)
{
	if (atomic_load(&p->sleeping) > atomic_load(&p->wakes)) {
		atomic_fetch_add(&p->wakes, 1);
		pthread_cond_signal(&p->work_cv);
	}
}

/* Lock held: a completion was pushed on an empty list; queue the flush
 * unless the loop is gone (then the results are nobody's: free them). */
static void schedule_flush(struct pool *p)
{
	if (atomic_load(&p->detached)) {
		free_list(atomic_exchange(&p->done, NULL));
		return;
	}
	/* Under the lock: the loop sets `detached` under it before closing,
	 * so it cannot close while we reach into it.  Cannot fail (no
	 * allocation): a completion is never stranded. */
	cr__async_send(p->loop, &p->flush);
}

/* Without the lock, by the one spinning worker (`spinning` set): wait a
 * little for a submission; adapt the next spin to whether one came. */
static void spin_for_work(struct pool *p)
{
	unsigned limit = p->spin;
	bool caught = false;

	for (unsigned i = 1; i <= limit; i++) {
		if (atomic_load_explicit(&p->incoming, memory_order_relaxed)) {
			caught = true;
			break;
		}
		if (i % EXECUTOR_SPIN_YIELD == 0) {
			sched_yield();
		} else {
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause();
#elif defined(__aarch64__)
			__asm__ __volatile__("yield");
#endif
		}
	}
	if (caught)
		p->spin = limit * 2 < EXECUTOR_SPIN_MAX ? limit * 2 : EXECUTOR_SPIN_MAX;
	else
		p->spin = limit / 2 > EXECUTOR_SPIN_MIN ? limit / 2 : EXECUTOR_SPIN_MIN;
}

static void *worker_main(void *arg)
{
	struct pool *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct work *w;
		bool was_empty;
		int expected = W_QUEUED;

		if (atomic_load(&p->detached)) {
			/* Nobody can receive results any more: drop queued work. */
			free_list(p->head);
			p->head = p->tail = NULL;
			free_list(atomic_exchange(&p->incoming, NULL));
			break;
		}
		w = queue_pop(p);
		if (!w) {
			if (atomic_load(&p->shutdown))
				break;
			if (!atomic_load(&p->spinning)) {
				/* Spin briefly without the lock: in a batch the
				 * next item is usually microseconds away. */
				atomic_store(&p->spinning, 1);
				pthread_mutex_unlock(&p->lock);
				spin_for_work(p);
				pthread_mutex_lock(&p->lock);
				atomic_store(&p->spinning, 0);
				continue;
			}
			/* Announce the sleep before the last look: a submitter
			 * pushes then reads `sleeping`, we bump `sleeping` then
			 * read `incoming` (both sequentially consistent), so one
			 * of us sees the other and no wake-up is lost. */
			atomic_fetch_add(&p->sleeping, 1);
			if (!atomic_load(&p->incoming) && !atomic_load(&p->shutdown) &&
			    !atomic_load(&p->detached))
				pthread_cond_wait(&p->work_cv, &p->lock);
			atomic_fetch_sub(&p->sleeping, 1);
			consume_wake(p);
			continue;
		}
		if (!atomic_compare_exchange_strong(&w->state, &expected, W_RUNNING)) {
			free(w); /* its caller was cancelled before it started */
			continue;
		}
		atomic_fetch_sub(&p->idle, 1);
		/* More queued than the awake free workers (the spinner, one
		 * between two items, those being woken) will take: pass the
		 * baton to a sleeper.  Trivial functions keep the queue short
		 * and a burst wakes nobody; blocking ones pile up and wake as
		 * many workers as they need, one by one. */
		if (p->head || atomic_load(&p->incoming)) {
			int awake_free = (int)atomic_load(&p->idle) -
					 (int)atomic_load(&p->sleeping) +
					 (int)atomic_load(&p->wakes);

			if ((int)atomic_load(&p->pending) > awake_free)
				wake_one(p);
		}
		pthread_mutex_unlock(&p->lock);

		w->value = NULL;
		w->rc = w->fn(w->arg, &w->value);

		/* A detached pool drops the result; checking before the push
		 * is only an optimisation, schedule_flush re-checks. */
		push(&p->done, w, &was_empty);
		pthread_mutex_lock(&p->lock);
		atomic_fetch_add(&p->idle, 1);
		if (was_empty)
			schedule_flush(p);
	}
	p->nthreads--;
	atomic_fetch_sub(&p->idle, 1);
	pthread_cond_broadcast(&p->exit_cv);
	pthread_mutex_unlock(&p->lock);
	pool_unref(p);
	return NULL;
}

/* Loop thread.  Start one more worker when no awake one is free and the
 * cap allows. */
static void maybe_start_worker(struct pool *p)
{
	pthread_attr_t attr;
	int r;

	/* Idle threads (asleep ones included: they can be woken) suffice. */
	if (p->nstarted >= p->max_threads || atomic_load(&p->idle) >= atomic_load(&p->pending))
		return;
	if (pthread_attr_init(&attr) != 0)
		return;
	/* Blocking functions rarely need much stack; keep thread creation
	 * cheap but leave room for libc (DNS lookups...). */
	pthread_attr_setstacksize(&attr, 1024 * 1024);
	atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
	/* Asynchronous signals are the loop's (cr_loop_add_signal_handler):
	 * a worker takes none of them (it inherits this mask); a fault of its
	 * own still reaches it. */
	sigset_t async, old;
	sigfillset(&async);
	sigdelset(&async, SIGSEGV);
	sigdelset(&async, SIGBUS);
	sigdelset(&async, SIGFPE);
	sigdelset(&async, SIGILL);
	sigdelset(&async, SIGTRAP);
	sigdelset(&async, SIGABRT);
	sigdelset(&async, SIGSYS);
	pthread_sigmask(SIG_BLOCK, &async, &old);
	pthread_mutex_lock(&p->lock);
	r = pthread_create(&p->threads[p->nstarted], &attr, worker_main, p);
	if (r == 0) {
		p->nstarted++;
		p->nthreads++;
		atomic_fetch_add(&p->idle, 1);
	}
	pthread_mutex_unlock(&p->lock);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (r != 0)
		atomic_fetch_sub_explicit(&p->refs, 1, memory_order_relaxed);
}

/* Loop thread, after a push: wake a sleeper when no awake worker is free
 * for the pending items (awake idle = idle - sleeping, plus the wakes
 * already on their way). */
static void maybe_wake(struct pool *p)
{
	int sleeping = (int)atomic_load(&p->sleeping), wakes = (int)atomic_load(&p->wakes);
	int idle = (int)atomic_load(&p->idle);

	if (sleeping <= wakes)
		return; /* nobody asleep, or enough already being woken */
	if (idle - sleeping + wakes >= (int)atomic_load(&p->pending))
		return; /* awake free workers will take the work */
	pthread_mutex_lock(&p->lock);
	wake_one(p);
	pthread_mutex_unlock(&p->lock);
}

struct waiter {
	struct pool *pool;
	struct work *work;
	bool abandoned;
};

/* Loop thread: the caller gives up on its item. */
static void abandon(struct waiter *wt)
{
	struct work *w = wt->work;
	int expected = W_QUEUED;

	if (wt->abandoned)
		return;
	wt->abandoned = true;
	/* Still queued: the worker that reaches it frees it unrun.  Running
	 * or finished: the flush (or a detached worker) frees it.  Both only
	 * read w->task on the loop thread, where we are. */
	if (!atomic_compare_exchange_strong(&w->state, &expected, W_ABANDONED))
		w->task = NULL;
}

static void on_cancel(void *arg) { abandon(arg); }

int cr_run_in_executor(cr_blocking_fn fn, void *arg, void **ret_value)
{
	cr_loop *loop = cr_loop_current();
	cr_task *self = cr_current_task();
	struct waiter wt;
	struct pool *p;
	struct work *w;
	int r;

	if (!loop || !self)
		return cr__error(-EPERM, "cr_run_in_executor() must be called from a coroutine");
	if (!fn)
		return cr__error(-EINVAL, "cr_run_in_executor: fn is NULL");
	p = pool_get(loop, true);
	if (!p)
		return cr__error(-ENOMEM, "out of memory creating the default executor");
	if (atomic_load_explicit(&p->shutdown, memory_order_relaxed))
		return cr__error(-ESHUTDOWN, "Executor shutdown has been called");
	w = cr__malloc(sizeof(*w));
	if (!w)
		return cr__error(-ENOMEM, "out of memory submitting to the executor");
	w->fn = fn;
	w->arg = arg;
	w->value = NULL;
	w->rc = 0;
	atomic_init(&w->state, W_QUEUED);
	w->task = self;

	atomic_fetch_add(&p->pending, 1);
	push(&p->incoming, w, NULL);
	maybe_start_worker(p);
	if (p->nstarted == 0) {
		/* Not even one thread could be started; nobody saw the item. */
		free_list(atomic_exchange(&p->incoming, NULL));
		atomic_store(&p->pending, 0);
		return cr__error(-EAGAIN, "could not start an executor thread");
	}
	maybe_wake(p);

	wt.pool = p;
	wt.work = w;
	wt.abandoned = false;
	r = cr__task_park(on_cancel, &wt);
	if (!wt.abandoned && atomic_load_explicit(&w->state, memory_order_relaxed) == W_WOKEN) {
		r = w->rc;
		if (ret_value)
			*ret_value = w->value;
		free(w);
		return r;
	}
	/* Cancelled (before or while parked): give the item up; its result
	 * will be dropped. */
	abandon(&wt);
	return r < 0 ? r : -ECANCELED;
}

/* ------------------------------------------------------------- shutdown */

static double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Lock held.  Every worker exited: join them. */
static void join_all(struct pool *p)
{
	unsigned n = p->nstarted;

	p->joined = true;
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < n; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_lock(&p->lock);
}

/* Lock held.  Time ran out: let the late workers go on their own. */
static void detach_all(struct pool *p)
{
	for (unsigned i = 0; i < p->nstarted; i++)
		pthread_detach(p->threads[i]);
	p->joined = true;
}

static void warn_timeout(cr_loop *loop, double timeout)
{
	char msg[160];
	cr_error_report rep = {.message = msg, .error = -ETIMEDOUT, .task = NULL};

	snprintf(msg, sizeof(msg),
		 "The executor did not finishing joining its threads within %g seconds.", timeout);
	cr_loop_call_exception_handler(loop, &rep);
}

int cr_loop_shutdown_default_executor(cr_loop *loop, double timeout)
{
	struct pool *p;
	double deadline;
	int r = 0;

	if (!loop)
		return cr__error(-EINVAL, "cr_loop_shutdown_default_executor: loop is NULL");
	if (timeout < 0)
		timeout = cr__loop_executor_timeout(loop);
	if (timeout < 0)
		timeout = EXECUTOR_DEFAULT_TIMEOUT;
	if (cr_loop_is_closed(loop))
		return 0; /* the close already let the workers go */
	p = pool_get(loop, true);
	if (!p)
		return cr__error(-ENOMEM, "out of memory shutting the executor down");

	pthread_mutex_lock(&p->lock);
	atomic_store(&p->shutdown, true);
	pthread_cond_broadcast(&p->work_cv);
	if (p->joined) {
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	deadline = now_mono() + timeout;

	if (cr_loop_current() == loop && cr_current_task()) {
		/* In a coroutine: poll, letting the loop deliver completions
		 * meanwhile.  The interval grows from 0.1 ms to 10 ms. */
		double step = 0.0001;

		while (p->nthreads > 0) {
			double left = deadline - now_mono();

			if (left <= 0)
				break;
			pthread_mutex_unlock(&p->lock);
			r = cr_sleep(step < left ? step : left);
			pthread_mutex_lock(&p->lock);
			if (r < 0)
				break;
			if (step < 0.01)
				step *= 2;
		}
		if (r < 0) {
			/* Cancelled: the pool stays shut down, threads keep running
			 * and are joined by a later shutdown or detached at close. */
			pthread_mutex_unlock(&p->lock);
			return r;
		}
	} else if (cr_loop_is_running(loop)) {
		pthread_mutex_unlock(&p->lock);
		return cr__error(-EBUSY, "cr_loop_shutdown_default_executor: call it from a "
					 "coroutine or with the loop stopped");
	} else {
		/* exit_cv uses the default (realtime) clock. */
		struct timespec ts;
		double abs_rt;

		clock_gettime(CLOCK_REALTIME, &ts);
		abs_rt = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + (deadline - now_mono());
		ts.tv_sec = (time_t)abs_rt;
		ts.tv_nsec = (long)((abs_rt - (double)ts.tv_sec) * 1e9);
		if (ts.tv_nsec < 0)
			ts.tv_nsec = 0;
		if (ts.tv_nsec > 999999999L)
			ts.tv_nsec = 999999999L;
		while (p->nthreads > 0) {
			if (pthread_cond_timedwait(&p->exit_cv, &p->lock, &ts) == ETIMEDOUT)
				break;
		}
	}
	if (p->joined) {
		/* Another shutdown finished while we slept. */
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	if (p->nthreads == 0) {
		join_all(p);
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	detach_all(p);
	pthread_mutex_unlock(&p->lock);
	warn_timeout(loop, timeout);
	return cr__error(-ETIMEDOUT,
			 "The executor did not finishing joining its threads within %g seconds.",
			 timeout);
}

void cr__executor_loop_closed(cr_loop *loop)
{
	struct pool *p = cr__loop_slot(loop, CR__SLOT_EXECUTOR);

	if (!p)
		return;
	cr__loop_set_slot(loop, CR__SLOT_EXECUTOR, NULL);
	pthread_mutex_lock(&p->lock);
	atomic_store(&p->detached, true);
	atomic_store(&p->shutdown, true);
	pthread_cond_broadcast(&p->work_cv);
	/* Workers send only under the lock and not detached: none will. */
	cr__async_stop(loop, &p->flush);
	/* Completions nobody will flush any more (a worker pushing later
	 * finds `detached` in schedule_flush and frees its own). */
	free_list(atomic_exchange(&p->done, NULL));
	/* Threads never joined (the loop closed without a shutdown): let them
	 * exit on their own; they only touch the refcounted pool. */
	if (!p->joined)
		detach_all(p);
	pthread_mutex_unlock(&p->lock);
	pool_unref(p);
}
