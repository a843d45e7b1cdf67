/*
 * task.c — tasks: stackful coroutines scheduled by the loop, and the ways
 * to wait for them (join, shield, wait_for, gather, wait) or for time and
 * file descriptors (yield, sleep, wait_fd).
 *
 * Switching: the scheduler (run_once in loop.c) switches into a task's
 * coroutine directly on the loop's thread; the task switches back to the
 * scheduler when it awaits.  Around each switch in we set the task's
 * context (cr__tls_context) and its stack (for the overflow handler), and
 * restore them on the way out.
 *
 * Cancellation (asyncio's rules, as errors instead of exceptions):
 *   - cr_task_cancel counts the request (cr_task_cancelling) and delivers
 *     it as -ECANCELED: at once if the task is parked (the park's
 *     on_cancel hook lets the primitive forget the task), else at its next
 *     await (must_cancel).  A task cancelled before its first step ends
 *     cancelled without running and without taking a stack;
 *   - delivery happens once, so cleanup code can await afterwards
 *     (cancellations that come before the task runs again are delivered
 *     together);
 *   - a wake-up that already happened wins over a later cancel: the await
 *     returns its result (an item, a lock) and the cancellation comes at
 *     the next await, so nothing handed over is lost;
 *   - a task that returns success while a cancellation is still counted
 *     ends cancelled (-ECANCELED): a cancellation is never lost silently.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

#include "task.h"

static atomic_uint_fast64_t task_counter;

/* Task records are recycled through a per-thread cache: a burst of tasks
 * freed and spawned again (batches of cr_spawn + cr_gather) would
 * otherwise let malloc trim its heap after every batch and fault the pages
 * back in (bench/README.md: spawn_all).  Bounded; freed on thread exit.
 * Off under AddressSanitizer and valgrind, which must see a freed task as
 * freed to report a use after free. */
#ifdef CR_HAVE_ASAN
#define TASK_CACHE_MAX 0
#else
#define TASK_CACHE_MAX 16384
#endif
static bool on_valgrind(void)
{
#ifdef HAVE_VALGRIND_VALGRIND_H
	return RUNNING_ON_VALGRIND;
#else
	return false;
#endif
}

struct task_cache {
	cr_task *head;
	unsigned n;
};
static __thread struct task_cache task_cache;
static pthread_key_t task_cache_key;
static pthread_once_t task_cache_once = PTHREAD_ONCE_INIT;

static void task_cache_free(void *arg)
{
	struct task_cache *c = arg;

	while (c->head) {
		cr_task *t = c->head;

		c->head = *(cr_task **)(void *)t;
		free(t);
	}
	c->n = 0;
}

static void task_cache_init(void) { pthread_key_create(&task_cache_key, task_cache_free); }

static cr_task *task_alloc(void)
{
	cr_task *t = task_cache.head;

	if (!t)
		return cr__malloc(sizeof(*t));
	task_cache.head = *(cr_task **)(void *)t;
	task_cache.n--;
	return t;
}

/* n + 1 > MAX rather than n >= MAX: with MAX 0 (sanitizers) the latter is
 * an always-true unsigned comparison, an error under -Werror. */
static void task_release(cr_task *t)
{
	if (task_cache.n + 1 > TASK_CACHE_MAX || on_valgrind()) {
		free(t);
		return;
	}
	if (!task_cache.head) {
		pthread_once(&task_cache_once, task_cache_init);
		pthread_setspecific(task_cache_key, &task_cache);
	}
	*(cr_task **)(void *)t = task_cache.head;
	task_cache.head = t;
	task_cache.n++;
}

struct cr__donecb {
	struct cr__donecb *next;
	void (*cb)(cr_task *t, void *arg);
	void *arg;
};

static inline cr_task *current(void)
{
	cr_loop *loop = cr__tls_loop;

	return loop ? loop->current : NULL;
}

static inline bool is_done(const cr_task *t) { return t->state >= CR__T_FINISHED; }

static int no_task(const char *what)
{
	return cr__error(-EPERM, "%s must be awaited from inside a task running on a loop", what);
}

/* ------------------------------------------------------------- spawn */

int cr_loop_spawn(cr_loop *loop, cr_fn fn, void *arg, const cr_spawn_opts *opts, cr_task **ret_task)
{
	const char *name = NULL;
	cr_context *ctx = NULL;
	size_t stack_size = 0;
	cr_task *t;
	int rc;

	if (!loop || !fn)
		return cr__error(-EINVAL, "cr_loop_spawn: NULL argument");
	if (loop->closed)
		return cr__error(-ESHUTDOWN, "Event loop is closed");
	if ((rc = cr__loop_check_thread(loop, "spawn")) < 0)
		return rc;
	if (opts) {
		size_t sz = opts->size ? opts->size : sizeof(*opts);

		if (sz >= offsetof(cr_spawn_opts, name) + sizeof(opts->name))
			name = opts->name;
		if (sz >= offsetof(cr_spawn_opts, context) + sizeof(opts->context))
			ctx = opts->context;
		if (sz >= offsetof(cr_spawn_opts, stack_size) + sizeof(opts->stack_size))
			stack_size = opts->stack_size;
	}
	t = task_alloc();
	if (!t)
		return cr__error(-ENOMEM, "out of memory creating a task");
	memset(t, 0, sizeof(*t));
	if (name && !(t->name = cr__strdup(name))) {
		task_release(t);
		return cr__error(-ENOMEM, "out of memory creating a task");
	}
	if (ctx) {
		t->ctx = cr_context_ref(ctx);
	} else if ((rc = cr_context_copy_current(&t->ctx)) < 0) {
		free(t->name);
		task_release(t);
		return rc;
	}
	t->rq.kind = CR__RQ_TASK;
	t->state = CR__T_NEW;
	atomic_init(&t->refs, ret_task ? 2 : 1); /* the loop's while unfinished */
	t->loop = cr_loop_ref(loop);
	t->fn = fn;
	t->arg = arg;
	t->id = atomic_fetch_add_explicit(&task_counter, 1, memory_order_relaxed) + 1;
	if (stack_size) {
		size_t units = cr__stack_round(stack_size) / 4096;

		t->stack_4k = units > UINT32_MAX ? UINT32_MAX : (uint32_t)units;
	}
	t->all_next = loop->tasks;
	if (loop->tasks)
		loop->tasks->all_prev = t;
	loop->tasks = t;
	loop->ntasks++;
	t->in_rq = 1;
	cr__rq_push(loop, &t->rq);
	if (ret_task)
		*ret_task = t;
	return 0;
}

int cr_spawn(cr_fn fn, void *arg, const cr_spawn_opts *opts, cr_task **ret_task)
{
	if (!cr__tls_loop)
		return cr__error(-EPERM, "cr_spawn: no running event loop");
	return cr_loop_spawn(cr__tls_loop, fn, arg, opts, ret_task);
}

/* ------------------------------------------------------ ref / accessors */

static void report(cr_loop *loop, cr_task *t, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void report(cr_loop *loop, cr_task *t, int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	cr_error_report r;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r.message = msg;
	r.error = err;
	r.task = t;
	cr_loop_call_exception_handler(loop, &r);
}

cr_task *cr_task_ref(cr_task *t)
{
	if (t)
		atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	return t;
}

static void donecbs_free(cr_task *t)
{
	struct cr__donecb *d;

	while ((d = t->donecbs)) {
		t->donecbs = d->next;
		free(d);
	}
}

cr_task *cr_task_unref(cr_task *t)
{
	if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
		return NULL;
	/* Only done tasks get here: the loop holds unfinished ones. */
	if (t->rc < 0 && t->rc != -ECANCELED && !t->observed && t->loop->debug)
		report(t->loop, t, t->rc, "Task exception was never retrieved");
	donecbs_free(t);
	cr_context_unref(t->ctx);
	cr_loop_unref(t->loop);
	free(t->cancel_msg);
	free(t->name);
	task_release(t);
	return NULL;
}

cr_task *cr_current_task(void) { return current(); }

const char *cr_task_name(const cr_task *ct)
{
	cr_task *t = (cr_task *)ct; /* the default name is made lazily */

	if (!t)
		return "(null)";
	if (!t->name) {
		char buf[32];

		snprintf(buf, sizeof(buf), "Task-%" PRIu64, t->id);
		t->name = cr__strdup(buf);
		if (!t->name)
			return "Task";
	}
	return t->name;
}

cr_loop *cr_task_loop(const cr_task *t) { return t ? t->loop : NULL; }

bool cr_task_done(const cr_task *t) { return t && is_done(t); }

bool cr_task_cancelled(const cr_task *t) { return t && is_done(t) && t->rc == -ECANCELED; }

int cr_task_result(cr_task *t, void **ret_value)
{
	if (!t)
		return cr__error(-EINVAL, "cr_task_result: task is NULL");
	if (!is_done(t))
		return cr__error(-EAGAIN, "Result is not set (task %s is not done)",
				 cr_task_name(t));
	t->observed = 1;
	if (ret_value)
		*ret_value = t->value;
	return t->rc;
}

int cr_task_cancelling(const cr_task *t) { return t ? t->cancelling : 0; }

int cr_task_uncancel(cr_task *t)
{
	if (!t)
		return 0;
	if (t->cancelling > 0)
		t->cancelling--;
	/* Like Python 3.13: once nothing is counted, a cancellation not yet
	 * delivered is withdrawn too. */
	if (t->cancelling == 0)
		t->must_cancel = 0;
	return t->cancelling;
}

const char *cr_task_cancel_message(const cr_task *t) { return t ? t->cancel_msg : NULL; }

/* ------------------------------------------------------------ stepping */

static void task_main(void *p)
{
	cr_task *t = p;
	void *value = NULL;
	int rc = t->fn(t->arg, &value);

	if (rc >= 0 && t->cancelling > 0)
		rc = -ECANCELED; /* success while cancelled: not lost */
	t->rc = rc;
	t->value = value;
	t->state = CR__T_FINISHED;
	cr__coro_switch_final(&t->coro, &t->loop->sched);
}

static void run_donecbs(void *arg)
{
	cr_task *t = arg;
	struct cr__donecb *d;

	while ((d = t->donecbs)) {
		t->donecbs = d->next;
		d->cb(t, d->arg);
		free(d);
	}
	cr_task_unref(t);
}

/* The loop closed before the done callbacks ran. */
static void drop_donecbs(void *arg)
{
	cr_task *t = arg;

	donecbs_free(t);
	cr_task_unref(t);
}

static void schedule_donecbs(cr_task *t)
{
	cr_task_ref(t);
	if (cr__call_soon_owned(t->loop, run_donecbs, drop_donecbs, t) < 0)
		run_donecbs(t); /* out of memory: run them now rather than never */
}

/* The task's result is final: tell the waiters, schedule the done
 * callbacks and drop the loop's reference. */
static void complete(cr_loop *loop, cr_task *t)
{
	struct cr__waiter *w;

	t->state = CR__T_DONE;
	if (t->all_prev)
		t->all_prev->all_next = t->all_next;
	else
		loop->tasks = t->all_next;
	if (t->all_next)
		t->all_next->all_prev = t->all_prev;
	t->all_prev = t->all_next = NULL;
	loop->ntasks--;
	t->ctx = cr_context_unref(t->ctx);
	while ((w = t->waiters)) {
		t->waiters = w->next;
		if (w->next)
			w->next->prev = NULL;
		w->next = w->prev = w; /* unlinked */
		w->fn(w, t);
	}
	if (t->donecbs)
		schedule_donecbs(t);
	cr_task_unref(t);
}

static void release_stack(cr_loop *loop, cr_task *t)
{
	struct cr__stack *st = t->stack;
	size_t size = st->size;

	t->stack = NULL;
	if (!cr__stack_put(&loop->stacks, st))
		report(loop, t, 0,
		       "task %s used more than 7/8 of its %zu-byte stack; "
		       "spawn it with a larger stack_size",
		       cr_task_name(t), size);
}

/* Bookkeeping at the start and end of a task step, wherever the switch
 * happens (scheduler or task to task). */
static inline void step_begin(cr_loop *loop, cr_task *t)
{
	t->in_rq = 0;
	t->state = CR__T_RUNNING;
	loop->current = t;
	cr__tls_context = t->ctx;
	cr__stack_running = t->stack;
	if (loop->debug)
		loop->step_t0 = cr__monotonic();
}

static inline void step_end(cr_loop *loop, cr_task *t)
{
	if (loop->debug) {
		double dt = cr__monotonic() - loop->step_t0;

		if (dt >= loop->slow_duration)
			report(loop, t, 0, "Executing task %s took %.3f seconds", cr_task_name(t),
			       dt);
	}
}

void cr__task_run_step(cr_loop *loop, cr_task *t)
{
	cr_context *prev;
	cr_task *last;

	if (t->state == CR__T_NEW) {
		int rc;

		t->in_rq = 0;
		if (t->must_cancel) {
			/* Cancelled before it ever ran: no stack, no body. */
			t->must_cancel = 0;
			t->value = NULL;
			t->rc = -ECANCELED;
			complete(loop, t);
			return;
		}
		rc = cr__stack_get(&loop->stacks,
				   t->stack_4k ? (size_t)t->stack_4k * 4096 : loop->stack_size,
				   loop->debug, &t->stack);
		if (rc < 0) {
			t->rc = rc;
			t->value = NULL; /* was arg */
			report(loop, t, rc, "could not start task %s: %s", cr_task_name(t),
			       cr_last_error());
			complete(loop, t);
			return;
		}
		t->stack->owner_name = t->name;
		t->stack->owner_id = t->id;
		cr__coro_init(&t->coro, t->stack->lo, t->stack->size - t->stack->color, task_main,
			      t);
	}
	prev = cr__tls_context;
	step_begin(loop, t);
	cr__coro_switch(&loop->sched, &t->coro);
	/* Back on the scheduler: from t or from a task t switched to. */
	last = loop->current;
	step_end(loop, last);
	loop->current = NULL;
	cr__stack_running = NULL;
	cr__tls_context = prev;
	if (last->state == CR__T_FINISHED) {
		release_stack(loop, last);
		complete(loop, last);
	}
}

void cr__task_destroy_pending(cr_loop *loop)
{
	cr_task *t;

	while ((t = loop->tasks)) {
		loop->tasks = t->all_next;
		if (t->all_next)
			t->all_next->all_prev = NULL;
		t->all_prev = t->all_next = NULL;
		loop->ntasks--;
		report(loop, t, 0, "Task was destroyed but it is pending!");
		/* Its frames are abandoned; waiter nodes in its list may live on
		 * other abandoned stacks: forget them without touching. */
		if (t->stack) {
			cr__stack_abandon(&loop->stacks, t->stack);
			t->stack = NULL;
		}
		t->state = CR__T_DONE;
		t->rc = -ECANCELED;
		t->value = NULL; /* may still hold arg */
		t->observed = 1;
		t->waiters = NULL;
		t->ctx = cr_context_unref(t->ctx);
		donecbs_free(t);
		cr_task_unref(t);
	}
}

/* --------------------------------------------------------------- parking */

/* Switch away from the current task t (its state already says why).  If
 * the next entry of this iteration's batch is a started task, switch to it
 * directly: one switch instead of two through the scheduler. */
static inline void suspend(cr_task *t)
{
	cr_loop *loop = t->loop;
	struct cr__rq *e = loop->run_next;

	if (e && e->kind == CR__RQ_TASK && ((cr_task *)e)->state == CR__T_READY) {
		cr_task *n = (cr_task *)e;
		struct cr__rq *after = e->next;

		/* Many tasks taking turns miss the cache on each one's record
		 * and saved frame: fetch the following task's while this
		 * switch runs (its record was fetched one step earlier). */
		if (after) {
			if (after->kind == CR__RQ_TASK)
				__builtin_prefetch(((cr_task *)after)->coro.sp);
			if (after->next)
				__builtin_prefetch(after->next);
		}
		loop->run_next = after;
		loop->steps_since_poll++;
		step_end(loop, t);
		step_begin(loop, n);
		cr__coro_switch(&t->coro, &n->coro);
	} else {
		cr__coro_switch(&t->coro, &loop->sched);
	}
}

int cr__task_check_cancel(cr_task *t)
{
	if (t->must_cancel) {
		t->must_cancel = 0;
		return -ECANCELED;
	}
	return 0;
}

int cr__task_park(void (*on_cancel)(void *arg), void *arg)
{
	cr_task *t = current();

	if (!t)
		return no_task("an awaiting call");
	if (t->must_cancel) {
		t->must_cancel = 0;
		return -ECANCELED;
	}
	t->state = CR__T_PARKED;
	t->on_cancel = on_cancel;
	t->on_cancel_arg = arg;
	suspend(t);
	/* read once: a READY task's wake_rc is its pending wake-up's (see
	 * cr_task_cancel) */
	int rc = t->wake_rc;
	t->wake_rc = 0;
	return rc;
}

void cr__task_wake(cr_task *t, int rc)
{
	if (t->state != CR__T_PARKED)
		return;
	t->state = CR__T_READY;
	t->wake_rc = rc;
	t->on_cancel = NULL;
	t->in_rq = 1;
	cr__rq_push(t->loop, &t->rq);
}

int cr_task_cancel(cr_task *t, const char *msg)
{
	int rc;

	if (!t)
		return cr__error(-EINVAL, "cr_task_cancel: task is NULL");
	if (is_done(t))
		return -EALREADY;
	if ((rc = cr__loop_check_thread(t->loop, "cancel")) < 0)
		return rc;
	if (msg) {
		char *m = cr__strdup(msg);

		if (!m)
			return cr__error(-ENOMEM, "out of memory copying a cancel message");
		free(t->cancel_msg);
		t->cancel_msg = m;
	}
	t->cancelling++;
	if (t->state == CR__T_PARKED) {
		void (*oc)(void *) = t->on_cancel;

		t->on_cancel = NULL;
		if (oc)
			oc(t->on_cancel_arg);
		cr__task_wake(t, -ECANCELED);
	} else if (!(t->state == CR__T_READY && t->wake_rc == -ECANCELED)) {
		/* (a task woken by a cancellation and not yet resumed gets this
		 * one with it: asyncio throws one CancelledError for both) */
		t->must_cancel = 1;
	}
	return 0;
}

int cr_task_add_done_callback(cr_task *t, void (*cb)(cr_task *t, void *arg), void *arg)
{
	struct cr__donecb *d, **pp;
	bool was_empty;

	if (!t || !cb)
		return cr__error(-EINVAL, "cr_task_add_done_callback: NULL argument");
	if (is_done(t) && t->loop->closed)
		return cr__error(-ESHUTDOWN, "Event loop is closed");
	d = cr__malloc(sizeof(*d));
	if (!d)
		return cr__error(-ENOMEM, "out of memory adding a done callback");
	d->next = NULL;
	d->cb = cb;
	d->arg = arg;
	was_empty = !t->donecbs;
	for (pp = &t->donecbs; *pp; pp = &(*pp)->next)
		;
	*pp = d;
	/* Already done: run soon (one run takes the whole list). */
	if (is_done(t) && was_empty) {
		cr_task_ref(t);
		if (cr__call_soon_owned(t->loop, run_donecbs, drop_donecbs, t) < 0) {
			*pp = NULL;
			free(d);
			cr_task_unref(t);
			return cr__error(-ENOMEM, "out of memory adding a done callback");
		}
	}
	return 0;
}

/* ----------------------------------------------------------- waiters */

void cr__task_add_waiter(cr_task *t, struct cr__waiter *w)
{
	w->task = t;
	w->prev = NULL;
	w->next = t->waiters;
	if (t->waiters)
		t->waiters->prev = w;
	t->waiters = w;
}

void cr__task_remove_waiter(cr_task *t, struct cr__waiter *w)
{
	if (w->prev == w)
		return; /* already unlinked by completion */
	if (w->prev)
		w->prev->next = w->next;
	else
		t->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->next = w->prev = w;
}

static void wake_waiter(struct cr__waiter *w, cr_task *done)
{
	(void)done;
	cr__task_wake(w->data, 0);
}

static int check_target(cr_task *self, cr_task *t, const char *what)
{
	if (!t)
		return cr__error(-EINVAL, "%s: task is NULL", what);
	if (t == self)
		return cr__error(-EDEADLK, "%s: a task cannot await itself", what);
	if (t->loop != self->loop)
		return cr__error(-EINVAL, "%s: the task belongs to another loop", what);
	return 0;
}

struct join_ctx {
	cr_task *self;
	cr_task *target;
	bool cancelled;
};

static void join_on_cancel(void *arg)
{
	struct join_ctx *j = arg;

	/* Like awaiting a task in asyncio: cancelling the awaiter cancels
	 * the awaited task; the awaiter still waits for it to end. */
	j->cancelled = true;
	cr_task_cancel(j->target, j->self->cancel_msg);
}

int cr_task_join(cr_task *t, void **ret_value)
{
	cr_task *self = current();
	int rc;

	if (!self)
		return no_task("cr_task_join");
	if ((rc = check_target(self, t, "cr_task_join")) < 0)
		return rc;
	if (!is_done(t)) {
		struct cr__waiter w = {.fn = wake_waiter, .data = self};
		struct join_ctx j = {self, t, false};

		if ((rc = cr__task_check_cancel(self)) < 0)
			return rc; /* cancelled before awaiting: t is not touched */
		cr__task_add_waiter(t, &w);
		while (!is_done(t))
			cr__task_park(join_on_cancel, &j);
		cr__task_remove_waiter(t, &w);
		if (j.cancelled)
			return -ECANCELED;
	}
	t->observed = 1;
	if (ret_value && t->rc >= 0)
		*ret_value = t->value;
	return t->rc;
}

struct shield_ctx {
	cr_task *target;
	struct cr__waiter *w;
};

static void shield_on_cancel(void *arg)
{
	struct shield_ctx *s = arg;

	cr__task_remove_waiter(s->target, s->w);
}

int cr_shield(cr_task *t, void **ret_value)
{
	cr_task *self = current();
	int rc;

	if (!self)
		return no_task("cr_shield");
	if ((rc = check_target(self, t, "cr_shield")) < 0)
		return rc;
	if (!is_done(t)) {
		struct cr__waiter w = {.fn = wake_waiter, .data = self};
		struct shield_ctx s = {t, &w};

		cr__task_add_waiter(t, &w);
		rc = cr__task_park(shield_on_cancel, &s);
		cr__task_remove_waiter(t, &w);
		if (rc < 0)
			return rc; /* the caller was cancelled; t runs on */
	}
	t->observed = 1;
	if (ret_value && t->rc >= 0)
		*ret_value = t->value;
	return t->rc;
}

int cr_wait_for(cr_task *t, double timeout, void **ret_value)
{
	cr_timeout_scope s;
	int rc;

	if (!current())
		return no_task("cr_wait_for");
	if (isnan(timeout))
		return cr__error(-EINVAL, "cr_wait_for: timeout is NaN");
	if (timeout < 0)
		return cr_task_join(t, ret_value);
	if ((rc = cr_timeout_enter(&s, timeout)) < 0)
		return rc;
	rc = cr_task_join(t, ret_value);
	return cr_timeout_exit(&s, rc);
}

/* gather: one waiter per unfinished task, woken when all are done. */
struct gather_ctx {
	cr_task *self;
	cr_task *const *tasks;
	size_t n;
	size_t pending;
	bool cancelled;
};

static void gather_done(struct cr__waiter *w, cr_task *done)
{
	struct gather_ctx *g = w->data;

	(void)done;
	if (--g->pending == 0)
		cr__task_wake(g->self, 0);
}

static void gather_on_cancel(void *arg)
{
	struct gather_ctx *g = arg;

	g->cancelled = true;
	for (size_t i = 0; i < g->n; i++)
		if (!is_done(g->tasks[i]))
			cr_task_cancel(g->tasks[i], g->self->cancel_msg);
}

int cr_gather(cr_task *const *tasks, size_t n, int *ret_codes)
{
	cr_task *self = current();
	struct cr__waiter *ws = NULL;
	struct gather_ctx g = {self, tasks, n, 0, false};
	int rc;

	if (!self)
		return no_task("cr_gather");
	if (n && !tasks)
		return cr__error(-EINVAL, "cr_gather: tasks is NULL");
	for (size_t i = 0; i < n; i++)
		if ((rc = check_target(self, tasks[i], "cr_gather")) < 0)
			return rc;
	for (size_t i = 0; i < n; i++)
		if (!is_done(tasks[i]))
			g.pending++;
	if (g.pending) {
		ws = cr__calloc(g.pending, sizeof(*ws));
		if (!ws)
			return cr__error(-ENOMEM, "out of memory in cr_gather");
		for (size_t i = 0, k = 0; i < n; i++) {
			if (is_done(tasks[i]))
				continue;
			ws[k].fn = gather_done;
			ws[k].data = &g;
			cr__task_add_waiter(tasks[i], &ws[k++]);
		}
		/* A cancellation pending from before counts as "the caller is
		 * cancelled" too: the children are cancelled and awaited. */
		if (cr__task_check_cancel(self) < 0)
			gather_on_cancel(&g);
		while (g.pending > 0)
			cr__task_park(gather_on_cancel, &g);
		free(ws);
	}
	rc = 0;
	for (size_t i = 0; i < n; i++) {
		tasks[i]->observed = 1;
		if (ret_codes)
			ret_codes[i] = tasks[i]->rc;
		if (rc == 0 && tasks[i]->rc < 0)
			rc = tasks[i]->rc;
	}
	return g.cancelled ? -ECANCELED : rc;
}

/* wait: returns when the mode is satisfied or the timeout ran out. */
struct wait_ctx {
	cr_task *self;
	int mode;
	size_t left; /* unfinished */
};

/* CR_WAIT_FIRST_ERROR's error: a task that failed, not one cancelled
 * (asyncio's FIRST_EXCEPTION skips cancelled futures). */
static bool failed(const cr_task *t) { return t->rc < 0 && t->rc != -ECANCELED; }

static bool wait_satisfied(int mode, size_t left, bool error_seen, bool any_done)
{
	if (left == 0)
		return true;
	if (mode == CR_WAIT_FIRST_COMPLETED)
		return any_done;
	if (mode == CR_WAIT_FIRST_ERROR)
		return error_seen;
	return false;
}

static void wait_done(struct cr__waiter *w, cr_task *done)
{
	struct wait_ctx *c = w->data;

	c->left--;
	if (wait_satisfied(c->mode, c->left, failed(done), true))
		cr__task_wake(c->self, 0);
}

static void wait_timeout(void *arg) { cr__task_wake(arg, -ETIMEDOUT); }

static void wait_on_cancel(void *arg) { (void)arg; /* asyncio.wait does not cancel the tasks */ }

int cr_wait(cr_task *const *tasks, size_t n, int mode, double timeout)
{
	cr_task *self = current();
	struct wait_ctx c = {self, mode, 0};
	struct cr__waiter *ws;
	bool error_seen = false, any_done = false;
	size_t ndone = 0;
	cr_handle timer;
	int rc;

	if (!self)
		return no_task("cr_wait");
	if (mode < CR_WAIT_ALL || mode > CR_WAIT_FIRST_ERROR || isnan(timeout) || (n && !tasks))
		return cr__error(-EINVAL, "cr_wait: bad argument");
	for (size_t i = 0; i < n; i++)
		if ((rc = check_target(self, tasks[i], "cr_wait")) < 0)
			return rc;
	for (size_t i = 0; i < n; i++) {
		if (is_done(tasks[i])) {
			any_done = true;
			if (failed(tasks[i]))
				error_seen = true;
		} else {
			c.left++;
		}
	}
	if ((rc = cr__task_check_cancel(self)) < 0)
		return rc;
	if (wait_satisfied(mode, c.left, error_seen, any_done) || timeout == 0) {
		ndone = n - c.left;
		return (int)ndone;
	}
	size_t nw = c.left;

	ws = cr__calloc(nw, sizeof(*ws));
	if (!ws)
		return cr__error(-ENOMEM, "out of memory in cr_wait");
	if (timeout > 0 && cr__timer_reserve(self->loop) < 0) {
		free(ws);
		return cr__error(-ENOMEM, "out of memory in cr_wait");
	}
	for (size_t i = 0, k = 0; i < n; i++) {
		if (is_done(tasks[i]))
			continue;
		ws[k].fn = wait_done;
		ws[k].data = &c;
		cr__task_add_waiter(tasks[i], &ws[k++]);
	}
	cr__handle_init_embedded(&timer, self->loop, wait_timeout, self);
	if (timeout > 0)
		cr__timer_add(self->loop, &timer, cr__loop_now(self->loop) + timeout);
	rc = cr__task_park(wait_on_cancel, NULL);
	cr_handle_cancel(&timer);
	for (size_t k = 0; k < nw; k++)
		cr__task_remove_waiter(ws[k].task, &ws[k]);
	free(ws);
	if (rc == -ECANCELED)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (is_done(tasks[i]))
			ndone++;
	return (int)ndone;
}

/* ----------------------------------------------------- yield, sleep, fd */

int cr_yield(void)
{
	cr_task *t = current();
	cr_loop *loop;
	int rc;

	if (!t)
		return no_task("cr_yield");
	if ((rc = cr__task_check_cancel(t)) < 0)
		return rc;
	loop = t->loop;
	if (!loop->run_next && !loop->rq_head && !loop->ntimers && !loop->stopping &&
	    !loop->debug && loop->steps_since_poll + 1 < CR__POLL_STEPS &&
	    loop->iters_since_check + 1 < CR__POLL_CHECK &&
	    atomic_load_explicit(&loop->inbox_n, memory_order_relaxed) == 0) {
		/* Fast path: nothing else is ready, no timer, no poll due: the
		 * next iteration would only run this task again, so account
		 * for it and go on without the two switches. */
		loop->steps_since_poll++;
		loop->iters_since_check++;
		loop->now_valid = false;
		return 0;
	}
	t->state = CR__T_READY;
	t->in_rq = 1;
	cr__rq_push(loop, &t->rq);
	suspend(t);
	/* Cancelled while waiting for its turn. */
	return cr__task_check_cancel(t);
}

static void sleep_wake(void *arg) { cr__task_wake(arg, 0); }

static void sleep_cancel(void *arg) { cr_handle_cancel(arg); }

int cr_sleep(double seconds)
{
	cr_task *t = current();
	cr_handle timer; /* in this frame: no allocation per sleep */
	int rc;

	if (isnan(seconds))
		return cr__error(-EINVAL, "cr_sleep: NaN seconds");
	if (seconds <= 0)
		return cr_yield();
	if (!t)
		return no_task("cr_sleep");
	if ((rc = cr__task_check_cancel(t)) < 0)
		return rc;
	if (cr__timer_reserve(t->loop) < 0)
		return cr__error(-ENOMEM, "out of memory in cr_sleep");
	cr__handle_init_embedded(&timer, t->loop, sleep_wake, t);
	cr__timer_add(t->loop, &timer, cr__loop_now(t->loop) + seconds);
	return cr__task_park(sleep_cancel, &timer);
}

struct fd_wait {
	cr_task *t;
	struct event *ev;
};

static void fd_ready(evutil_socket_t fd, short what, void *arg)
{
	struct fd_wait *w = arg;

	(void)fd;
	if (what & EV_TIMEOUT)
		cr__task_wake(w->t, -ETIMEDOUT);
	else
		cr__task_wake(w->t, what & (CR_READ | CR_WRITE));
}

static void fd_cancel(void *arg)
{
	struct fd_wait *w = arg;

	event_del(w->ev);
}

int cr_wait_fd(int fd, int events, double timeout)
{
	cr_task *t = current();
	struct fd_wait w;
	struct timeval tv;
	int rc;

	if (!t)
		return no_task("cr_wait_fd");
	if (fd < 0)
		return cr__error(-EBADF, "cr_wait_fd: bad file descriptor %d", fd);
	if (!events || (events & ~(CR_READ | CR_WRITE)) || isnan(timeout))
		return cr__error(-EINVAL, "cr_wait_fd: events must be CR_READ and/or CR_WRITE");
	if ((rc = cr__task_check_cancel(t)) < 0)
		return rc;
	/* CR_READ/CR_WRITE have libevent's EV_READ/EV_WRITE values. */
	w.t = t;
	/* The loop makes its libevent base on first need (loop.c). */
	if (!cr_loop_event_base(t->loop))
		return cr__error(-EIO, "libevent: no event base to watch fd %d", fd);
	w.ev = event_new(t->loop->base, fd, (short)events, fd_ready, &w);
	if (!w.ev)
		return cr__error(-ENOMEM, "out of memory waiting for fd %d", fd);
	if (timeout >= 1e8)
		timeout = -1; /* beyond ~3 years (or inf): forever */
	if (timeout >= 0) {
		tv.tv_sec = (time_t)timeout;
		tv.tv_usec = (suseconds_t)((timeout - (double)tv.tv_sec) * 1e6);
	}
	if (event_add(w.ev, timeout >= 0 ? &tv : NULL) != 0) {
		event_free(w.ev);
		return cr__error(-EBADF, "cannot watch fd %d", fd);
	}
	rc = cr__task_park(fd_cancel, &w);
	event_free(w.ev);
	return rc;
}
