/*
 * loop.c — the event loop: ready queue, timers (sorted FIFO + heap),
 * cross-thread inbox, signals and fd readiness through libevent.
 *
 * One iteration (run_once):
 *   1. poll for I/O: blocking (bounded by the next timer) when nothing is
 *      runnable, non-blocking now and then when something is (below);
 *   2. read the clock once (cr_loop_time() is this cached value);
 *   3. move the inbox of cr_call_soon_threadsafe into the ready queue;
 *   4. move due timers into the ready queue;
 *   5. run what was ready at that point (entries added meanwhile wait for
 *      the next iteration, so a task yielding in a loop cannot starve I/O).
 *
 * Poll pacing.  A non-blocking poll (event_base_loop with
 * EVLOOP_NONBLOCK) is an epoll_wait syscall, many times the cost of a
 * whole task switch (bench/README.md's dated results give both figures
 * on the machine they were measured on).  So while tasks are runnable we
 * do NOT poll on every iteration: only after CR__POLL_STEPS steps
 * (callbacks or task steps) or when CR__POLL_INTERVAL seconds passed since
 * the last poll (checked every CR__POLL_CHECK iterations), whichever comes
 * first.  I/O readiness is then noticed a few µs to ~1 ms late under
 * load and is never starved; when nothing is runnable we block in the
 * poll.
 *
 * Lazy clock.  clock_gettime can cost more than a whole yield on a
 * virtual machine (kvm-clock; see bench/README.md's dated results), so the loop reads the clock at most once per iteration and
 * only when something needs it (a timer is pending, a task asks for
 * cr_loop_time or sleeps, the pacing check); the value is then cached for
 * the rest of the iteration.
 *
 * The libevent base only sees fd and signal events; timers live in our own
 * FIFO and heap and the earliest deadline bounds the blocking poll, so
 * libevent's own timer queue stays nearly empty.
 *
 * Lazy base.  Unless given one (opts.base) or told a backend, the loop
 * makes its base, wake-up eventfd and poll timer only when first needed:
 * to block, to watch an fd or a signal, or when cr_loop_event_base is
 * called.  Until then a poll has nothing to look at and is skipped, so a
 * short cr_run makes no syscall for the loop (~25 before).  The SIGINT
 * handling of runners goes through cr__loop_signal_wake, not the base.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "loop.h"
#include "task.h"

__thread cr_loop *cr__tls_loop __attribute__((tls_model("initial-exec")));

struct cr__sigent {
	struct cr__sigent *next;
	cr_loop *loop;
	int signo;
	struct event *ev;
	cr_callback cb;
	void *arg;
};

double cr__monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double cr__loop_now(const cr_loop *cloop)
{
	cr_loop *loop = (cr_loop *)cloop; /* the cache is not observable state */

	if (!loop->running)
		return cr__monotonic();
	if (!loop->now_valid) {
		loop->now = cr__monotonic();
		loop->now_valid = true;
	}
	return loop->now;
}

int cr__loop_check_thread(const cr_loop *loop, const char *what)
{
	if (loop->debug && loop->running && !pthread_equal(loop->thread, pthread_self()))
		return cr__error(-EPERM,
				 "Non-thread-safe operation %s invoked on an event loop "
				 "other than the current one",
				 what);
	return 0;
}

/* ------------------------------------------------------------- options */

static bool env_debug(void)
{
	const char *v = getenv("CRUNNER_DEBUG");

	return v && *v && strcmp(v, "0") != 0;
}

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;
static int evthread_rc;

static void evthread_init(void) { evthread_rc = evthread_use_pthreads(); }

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	cr_loop *loop = arg;
	uint64_t v;

	(void)what;
	/* Drain first, then clear the flag.  Clearing first would lose a
	 * wake-up: a caller could set the flag and write between the clear
	 * and the read, the read would eat its write, and every later caller
	 * would see the flag set and not write.  This way a caller that saw
	 * the flag still set had pushed its callback already, and the loop
	 * looks at the inbox right after this poll returns. */
	while (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		;
	atomic_store(&loop->wake_pending, false);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	/* Only ends the blocking poll; the heap is checked by run_once. */
	(void)fd;
	(void)what;
	(void)arg;
}

#define OPT_HAS(o, f) ((o)->size == 0 || (o)->size >= offsetof(cr_loop_opts, f) + sizeof((o)->f))

/* Make the libevent base and the loop's own events on first need: when
 * the loop has to block, or someone asks for the base (fd waits,
 * signals, cr_loop_event_base).  A loop whose tasks never wait on
 * anything external (a cr_run of a short computation) then costs no
 * syscall at all, instead of ~25 (epoll_create, eventfds, epoll_ctl,
 * closes).  Loop thread only, or before the loop runs. */
static int ensure_base(cr_loop *loop)
{
	struct event_config *cfg;
	struct event_base *base;

	if (loop->base)
		return 0;
	if (loop->closed)
		return -ESHUTDOWN;
	cfg = event_config_new();
	if (!cfg)
		return -ENOMEM;
	/* No EVENT_BASE_FLAG_PRECISE_TIMER: our own clock decides when
	 * timers are due, libevent only bounds the blocking poll by a
	 * relative timeout (rounded up to the ms), and the precise timer
	 * would cost a timerfd_settime syscall per poll.  IGNORE_ENV: the
	 * EVENT_NO* variables cost four get*id syscalls per base (libevent's
	 * setuid check) and must not change the backend behind our back. */
	event_config_set_flag(cfg, EVENT_BASE_FLAG_IGNORE_ENV);
	if (loop->backend) {
		const char **m = event_get_supported_methods();

		for (int i = 0; m && m[i]; i++)
			if (strcmp(m[i], loop->backend) != 0)
				event_config_avoid_method(cfg, m[i]);
	}
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (!base)
		return -EIO;
	loop->base = base;
	loop->own_base = true;
	return 0;
}

/* The loop's own events on its base: the cross-thread wake-up eventfd and
 * the timer that bounds a blocking poll. */
static int ensure_events(cr_loop *loop)
{
	int rc;

	if (loop->wake_ev)
		return 0;
	/* The eventfd first: out of descriptors, libevent's base creation
	 * exits the process (event_sock_err on its signal socketpair), while
	 * this failure is ours to survive (poll_without_base). */
	if (loop->wake_fd < 0) {
		loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (loop->wake_fd < 0)
			return -errno;
	}
	if ((rc = ensure_base(loop)) < 0)
		return rc;
	if (!loop->timer_ev) {
		loop->timer_ev = evtimer_new(loop->base, timer_cb, loop);
		if (!loop->timer_ev)
			return -ENOMEM;
	}
	loop->wake_ev = event_new(loop->base, loop->wake_fd, EV_READ | EV_PERSIST, wake_cb, loop);
	if (!loop->wake_ev)
		return -ENOMEM;
	if (event_add(loop->wake_ev, NULL) != 0) {
		event_free(loop->wake_ev);
		loop->wake_ev = NULL;
		return -EIO;
	}
	return 0;
}

int cr_loop_new(const cr_loop_opts *opts, cr_loop **ret_loop)
{
	cr_loop *loop;
	int debug = CR_DEBUG_DEFAULT;
	size_t stack_size = 0;
	double slow = 0;
	const char *backend = NULL;
	struct event_base *base = NULL;
	int rc;

	if (!ret_loop)
		return cr__error(-EINVAL, "cr_loop_new: ret_loop is NULL");
	if (opts) {
		if (OPT_HAS(opts, base))
			base = opts->base;
		if (OPT_HAS(opts, backend))
			backend = opts->backend;
		if (OPT_HAS(opts, debug))
			debug = opts->debug;
		if (OPT_HAS(opts, stack_size))
			stack_size = opts->stack_size;
		if (OPT_HAS(opts, slow_callback_duration))
			slow = opts->slow_callback_duration;
	}
	if (debug < CR_DEBUG_DEFAULT || debug > CR_DEBUG_ON)
		return cr__error(-EINVAL,
				 "cr_loop_new: debug must be CR_DEBUG_DEFAULT, _OFF or _ON");
	if (slow < 0 || isnan(slow))
		return cr__error(-EINVAL, "cr_loop_new: slow_callback_duration must be >= 0");
	pthread_once(&evthread_once, evthread_init);
	if (evthread_rc != 0)
		return cr__error(-EIO, "libevent: evthread_use_pthreads failed");

	loop = cr__calloc(1, sizeof(*loop));
	if (!loop)
		return cr__error(-ENOMEM, "out of memory creating a loop");
	atomic_init(&loop->refs, 1);
	loop->debug = debug == CR_DEBUG_DEFAULT ? env_debug() : debug == CR_DEBUG_ON;
	loop->slow_duration = slow > 0 ? slow : 0.1;
	loop->stack_size = cr__stack_round(stack_size);
	loop->rq_tail = &loop->rq_head;
	loop->inbox_tail = &loop->inbox_head;
	loop->stacks.max = CR__STACK_POOL_MAX;
	loop->executor_timeout = 300;
	loop->wake_fd = -1;
	pthread_mutex_init(&loop->inbox_mu, NULL);

	if (backend) {
		const char **m = event_get_supported_methods();

		for (int i = 0; m && m[i]; i++)
			if (strcmp(m[i], backend) == 0)
				loop->backend = m[i];
		if (!loop->backend) {
			pthread_mutex_destroy(&loop->inbox_mu);
			free(loop);
			return cr__error(-EINVAL, "libevent backend '%s' is not supported here",
					 backend);
		}
	}
	/* A given base is used at once.  A chosen backend is made now, so
	 * that it fails here rather than at the first poll.  Otherwise the
	 * base waits for its first use (ensure_base). */
	if (base) {
		loop->base = base;
	} else if (backend) {
		rc = ensure_base(loop);
		if (rc < 0) {
			pthread_mutex_destroy(&loop->inbox_mu);
			free(loop);
			return cr__error(rc,
					 "libevent: could not create an event base with backend %s",
					 backend);
		}
	}
	if (loop->base && (rc = ensure_events(loop)) < 0) {
		cr_loop_close(loop);
		pthread_mutex_destroy(&loop->inbox_mu);
		free(loop);
		return cr__error(rc, "could not set up the loop's events: %s", strerror(-rc));
	}
	loop->now = cr__monotonic();
	*ret_loop = loop;
	return 0;
}

cr_loop *cr_loop_ref(cr_loop *loop)
{
	if (loop)
		atomic_fetch_add_explicit(&loop->refs, 1, memory_order_relaxed);
	return loop;
}

cr_loop *cr_loop_unref(cr_loop *loop)
{
	if (!loop)
		return NULL;
	if (atomic_fetch_sub_explicit(&loop->refs, 1, memory_order_acq_rel) != 1)
		return NULL;
	if (!loop->closed)
		cr_loop_close(loop);
	pthread_mutex_destroy(&loop->inbox_mu);
	free(loop);
	return NULL;
}

cr_loop *cr_loop_current(void) { return cr__tls_loop; }

bool cr__debug(void) { return cr__tls_loop && cr__tls_loop->debug; }

bool cr_loop_is_running(const cr_loop *loop) { return loop && loop->running; }

bool cr_loop_is_closed(const cr_loop *loop) { return !loop || loop->closed; }

double cr_loop_time(const cr_loop *loop) { return cr__loop_now(loop); }

struct event_base *cr_loop_event_base(cr_loop *loop)
{
	if (loop->closed || ensure_events(loop) < 0)
		return NULL;
	return loop->base;
}

const char *cr_loop_backend(const cr_loop *loop)
{
	const char **m;

	if (loop->base)
		return event_base_get_method(loop->base);
	if (loop->backend)
		return loop->backend;
	/* Not made yet: libevent takes the first method it supports (its
	 * environment is ignored, see ensure_base). */
	m = event_get_supported_methods();
	return m && m[0] ? m[0] : "none";
}

int cr_loop_get_debug(const cr_loop *loop) { return loop->debug; }

void cr_loop_set_debug(cr_loop *loop, bool on) { loop->debug = on; }

void cr_loop_set_slow_callback_duration(cr_loop *loop, double seconds)
{
	if (seconds > 0)
		loop->slow_duration = seconds;
}

void *cr__loop_slot(const cr_loop *loop, int slot)
{
	return slot >= 0 && slot < CR__NSLOTS ? loop->slots[slot] : NULL;
}

void cr__loop_set_slot(cr_loop *loop, int slot, void *value)
{
	if (slot >= 0 && slot < CR__NSLOTS)
		loop->slots[slot] = value;
}

int cr_loop_set_executor_threads(cr_loop *loop, unsigned n)
{
	if (!loop)
		return cr__error(-EINVAL, "cr_loop_set_executor_threads: loop is NULL");
	if (cr__loop_slot(loop, CR__SLOT_EXECUTOR))
		return cr__error(-EBUSY, "the default executor already exists");
	loop->executor_threads = n;
	return 0;
}

void cr_loop_set_executor_timeout(cr_loop *loop, double seconds)
{
	if (loop && seconds >= 0)
		loop->executor_timeout = seconds;
}

unsigned cr__loop_executor_threads(const cr_loop *loop) { return loop->executor_threads; }

double cr__loop_executor_timeout(const cr_loop *loop) { return loop->executor_timeout; }

/* ---------------------------------------------------- exception handler */

void cr_loop_set_exception_handler(cr_loop *loop, cr_exception_handler h, void *data)
{
	loop->exc_handler = h;
	loop->exc_data = data;
}

void cr_loop_call_exception_handler(cr_loop *loop, const cr_error_report *r)
{
	if (loop && loop->exc_handler) {
		loop->exc_handler(loop, r, loop->exc_data);
		return;
	}
	/* Default: one line on stderr (asyncio logs through logging.error). */
	fprintf(stderr, "crunner: %s", r->message ? r->message : "error");
	if (r->error)
		fprintf(stderr, ": %s", cr_strerror(r->error));
	if (r->task)
		fprintf(stderr, " (task %s)", cr_task_name(r->task));
	fputc('\n', stderr);
}

/* ------------------------------------------------------------- handles */

static cr_handle *handle_new(cr_loop *loop, cr_callback cb, void *arg)
{
	cr_handle *h = cr__malloc(sizeof(*h));

	if (!h)
		return NULL;
	memset(h, 0, sizeof(*h));
	h->rq.kind = CR__RQ_HANDLE;
	h->refs = 1;
	h->loop = loop;
	h->cb = cb;
	h->arg = arg;
	return h;
}

void cr__handle_init_embedded(cr_handle *h, cr_loop *loop, cr_callback cb, void *arg)
{
	memset(h, 0, sizeof(*h));
	h->rq.kind = CR__RQ_HANDLE;
	h->embedded = 1;
	h->refs = 1;
	h->loop = loop;
	h->cb = cb;
	h->arg = arg;
}

cr_handle *cr_handle_unref(cr_handle *h)
{
	if (h && !h->embedded && --h->refs == 0)
		free(h);
	return NULL;
}

/* --------------------------------------------------------------- timers */

/*
 * Most timers are armed in deadline order (sleeps and timeouts of one
 * duration, periodic timers): those are appended to a sorted FIFO, O(1)
 * both ways; only a timer earlier than the FIFO's tail goes to the heap.
 * Before, every timer went to the heap, and with the cr_sleep handles on
 * coroutine stacks each level of a sift was a TLB miss: 30% of the CPU
 * of 100,000 sleepers.  seq still breaks ties, so the order in which
 * timers fire is exactly that of a single heap on (when, seq).
 */

static inline bool key_before(double wa, uint64_t sa, double wb, uint64_t sb)
{
	return wa < wb || (wa == wb && sa < sb);
}

static inline bool ent_before(const struct cr__heap_ent *a, const struct cr__heap_ent *b)
{
	return key_before(a->when, a->seq, b->when, b->seq);
}

static inline void heap_set(cr_loop *loop, size_t i, struct cr__heap_ent e)
{
	loop->heap[i] = e;
	e.h->t.heap_idx = i;
}

static void heap_up(cr_loop *loop, size_t i)
{
	struct cr__heap_ent e = loop->heap[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (!ent_before(&e, &loop->heap[p]))
			break;
		heap_set(loop, i, loop->heap[p]);
		i = p;
	}
	heap_set(loop, i, e);
}

static void heap_down(cr_loop *loop, size_t i)
{
	struct cr__heap_ent e = loop->heap[i];
	size_t n = loop->heap_len;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && ent_before(&loop->heap[c + 1], &loop->heap[c]))
			c++;
		if (!ent_before(&loop->heap[c], &e))
			break;
		heap_set(loop, i, loop->heap[c]);
		i = c;
	}
	heap_set(loop, i, e);
}

static void heap_remove(cr_loop *loop, cr_handle *h)
{
	size_t i = h->t.heap_idx;
	struct cr__heap_ent last = loop->heap[--loop->heap_len];

	if (last.h == h)
		return;
	heap_set(loop, i, last);
	if (i > 0 && ent_before(&last, &loop->heap[(i - 1) / 2]))
		heap_up(loop, i);
	else
		heap_down(loop, i);
}

static int heap_reserve(cr_loop *loop)
{
	if (loop->heap_len < loop->heap_cap)
		return 0;
	size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
	struct cr__heap_ent *nh = cr__realloc(loop->heap, cap * sizeof(*nh));

	if (!nh)
		return -ENOMEM;
	loop->heap = nh;
	loop->heap_cap = cap;
	return 0;
}

static void fifo_remove(cr_loop *loop, cr_handle *h)
{
	cr_handle *p = h->t.fifo.prev, *n = h->t.fifo.next;

	if (p)
		p->t.fifo.next = n;
	else
		loop->fifo_head = n;
	if (n)
		n->t.fifo.prev = p;
	else
		loop->fifo_tail = p;
}

/* Take a pending timer out of whichever structure holds it. */
static void timer_unlink(cr_loop *loop, cr_handle *h)
{
	if (h->where == CR__H_FIFO)
		fifo_remove(loop, h);
	else
		heap_remove(loop, h);
	h->where = CR__H_NONE;
	loop->ntimers--;
}

/* The earliest pending timer, or NULL. */
static cr_handle *timer_first(const cr_loop *loop)
{
	cr_handle *f = loop->fifo_head;

	if (!loop->heap_len)
		return f;
	if (f && key_before(f->when, f->seq, loop->heap[0].when, loop->heap[0].seq))
		return f;
	return loop->heap[0].h;
}

/* The heap must have room (heap_reserve) — embedded timers of cr_sleep
 * reserve before they park. */
void cr__timer_add(cr_loop *loop, cr_handle *h, double when)
{
	cr_handle *tail = loop->fifo_tail;

	h->when = when;
	h->seq = loop->timer_seq++;
	h->cancelled = 0;
	loop->ntimers++;
	/* when >= tail's, and a larger seq: the FIFO stays sorted. */
	if (!tail || when >= tail->when) {
		h->where = CR__H_FIFO;
		h->t.fifo.prev = tail;
		h->t.fifo.next = NULL;
		if (tail)
			tail->t.fifo.next = h;
		else
			loop->fifo_head = h;
		loop->fifo_tail = h;
		return;
	}
	h->where = CR__H_HEAP;
	loop->heap[loop->heap_len++] = (struct cr__heap_ent){when, h->seq, h};
	heap_up(loop, loop->heap_len - 1);
}

int cr__timer_reserve(cr_loop *loop) { return heap_reserve(loop); }

void cr_handle_cancel(cr_handle *h)
{
	if (!h || h->cancelled)
		return;
	h->cancelled = 1;
	if (h->where == CR__H_HEAP || h->where == CR__H_FIFO) {
		timer_unlink(h->loop, h);
		cr_handle_unref(h); /* the timer queue's reference */
	}
	/* In the ready queue: skipped (and released) when popped. */
}

/* ------------------------------------------------------------ call_soon */

int cr_call_soon(cr_loop *loop, cr_callback cb, void *arg, cr_handle **ret_handle)
{
	cr_handle *h;
	int rc;

	if (!loop || !cb)
		return cr__error(-EINVAL, "cr_call_soon: NULL argument");
	if (loop->closed)
		return cr__error(-ESHUTDOWN, "Event loop is closed");
	if ((rc = cr__loop_check_thread(loop, "call_soon")) < 0)
		return rc;
	h = handle_new(loop, cb, arg);
	if (!h)
		return cr__error(-ENOMEM, "out of memory scheduling a callback");
	h->where = CR__H_READY;
	cr__rq_push(loop, &h->rq);
	if (ret_handle) {
		h->refs++;
		*ret_handle = h;
	}
	return 0;
}

int cr__call_soon_owned(cr_loop *loop, cr_callback cb, cr_callback drop, void *arg)
{
	cr_handle *h;
	int rc = cr_call_soon(loop, cb, arg, &h);

	if (rc < 0)
		return rc;
	h->drop = drop;
	cr_handle_unref(h);
	return 0;
}

/* A handle discarded by close without running. */
static void handle_drop(cr_handle *h)
{
	h->where = CR__H_NONE;
	if (!h->cancelled && h->drop)
		h->drop(h->arg);
	h->cancelled = 1;
	cr_handle_unref(h);
}

int cr_call_at(cr_loop *loop, double when, cr_callback cb, void *arg, cr_handle **ret_handle)
{
	cr_handle *h;
	int rc;

	if (!loop || !cb || isnan(when))
		return cr__error(-EINVAL, "cr_call_at: bad argument");
	if (loop->closed)
		return cr__error(-ESHUTDOWN, "Event loop is closed");
	if ((rc = cr__loop_check_thread(loop, "call_at")) < 0)
		return rc;
	h = handle_new(loop, cb, arg);
	if (!h || heap_reserve(loop) < 0) {
		free(h);
		return cr__error(-ENOMEM, "out of memory scheduling a timer");
	}
	cr__timer_add(loop, h, when);
	if (ret_handle) {
		h->refs++;
		*ret_handle = h;
	}
	return 0;
}

int cr_call_later(cr_loop *loop, double delay, cr_callback cb, void *arg, cr_handle **ret_handle)
{
	int rc;

	if (!loop)
		return cr__error(-EINVAL, "cr_call_later: loop is NULL");
	if (isnan(delay))
		return cr__error(-EINVAL, "cr_call_later: delay is NaN");
	/* Before reading the loop's time: that read fills the loop's clock
	 * cache, which only the loop's thread may write. */
	if ((rc = cr__loop_check_thread(loop, "call_later")) < 0)
		return rc;
	return cr_call_at(loop, cr__loop_now(loop) + delay, cb, arg, ret_handle);
}

/* From any thread.  The eventfd is written only when the loop may be
 * blocked in its poll (polling) and nobody wrote it since it last
 * drained it (wake_pending): a burst of calls costs one write.  The
 * ordering (inbox_n then polling here, polling then inbox_n in the loop,
 * both sequentially consistent) guarantees that either the loop sees the
 * new entry before blocking or we see it blocking and wake it. */
int cr_call_soon_threadsafe(cr_loop *loop, cr_callback cb, void *arg)
{
	cr_handle *h;

	if (!loop || !cb)
		return cr__error(-EINVAL, "cr_call_soon_threadsafe: NULL argument");
	h = handle_new(loop, cb, arg);
	if (!h)
		return cr__error(-ENOMEM, "out of memory scheduling a callback");
	pthread_mutex_lock(&loop->inbox_mu);
	if (loop->inbox_closed) {
		pthread_mutex_unlock(&loop->inbox_mu);
		free(h);
		return cr__error(-ESHUTDOWN, "Event loop is closed");
	}
	h->where = CR__H_READY;
	h->rq.next = NULL;
	*loop->inbox_tail = &h->rq;
	loop->inbox_tail = &h->rq.next;
	atomic_fetch_add(&loop->inbox_n, 1);
	if (atomic_load(&loop->polling) && !atomic_exchange(&loop->wake_pending, true)) {
		uint64_t one = 1;
		ssize_t w = write(loop->wake_fd, &one, sizeof(one));

		(void)w; /* EAGAIN: the counter is full, the loop wakes anyway */
	}
	pthread_mutex_unlock(&loop->inbox_mu);
	return 0;
}

static void drain_inbox(cr_loop *loop)
{
	struct cr__rq *head;

	pthread_mutex_lock(&loop->inbox_mu);
	head = loop->inbox_head;
	if (head) {
		*loop->rq_tail = head;
		loop->rq_tail = loop->inbox_tail;
	}
	loop->inbox_head = NULL;
	loop->inbox_tail = &loop->inbox_head;
	atomic_store(&loop->inbox_n, 0);
	pthread_mutex_unlock(&loop->inbox_mu);
}

/* -------------------------------------------------------------- signals */

static void signal_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cr__sigent *s = arg;

	(void)fd;
	(void)what;
	s->cb(s->arg);
}

int cr_loop_add_signal_handler(cr_loop *loop, int signo, cr_callback cb, void *arg)
{
	struct cr__sigent *s;
	int rc;

	if (!loop || !cb || signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP)
		return cr__error(-EINVAL, "cr_loop_add_signal_handler: bad argument");
	if (loop->closed)
		return cr__error(-ESHUTDOWN, "Event loop is closed");
	if ((rc = cr__loop_check_thread(loop, "add_signal_handler")) < 0)
		return rc;
	for (s = loop->sigs; s; s = s->next) {
		if (s->signo == signo) {
			s->cb = cb;
			s->arg = arg;
			return 0;
		}
	}
	s = cr__calloc(1, sizeof(*s));
	if (!s)
		return cr__error(-ENOMEM, "out of memory adding a signal handler");
	s->loop = loop;
	s->signo = signo;
	s->cb = cb;
	s->arg = arg;
	if (ensure_events(loop) < 0) {
		free(s);
		return cr__error(-EIO, "libevent: no event base to watch signal %d", signo);
	}
	s->ev = evsignal_new(loop->base, signo, signal_cb, s);
	if (!s->ev || event_add(s->ev, NULL) != 0) {
		if (s->ev)
			event_free(s->ev);
		free(s);
		return cr__error(-EIO, "libevent: could not watch signal %d", signo);
	}
	s->next = loop->sigs;
	loop->sigs = s;
	return 0;
}

int cr_loop_remove_signal_handler(cr_loop *loop, int signo)
{
	struct cr__sigent **pp, *s;

	if (!loop)
		return cr__error(-EINVAL, "cr_loop_remove_signal_handler: loop is NULL");
	for (pp = &loop->sigs; (s = *pp); pp = &s->next) {
		if (s->signo == signo) {
			*pp = s->next;
			event_free(s->ev);
			free(s);
			return 0;
		}
	}
	return cr__error(-ENOENT, "no handler for signal %d", signo);
}

/* ----------------------------------------------------------------- run */

/* The base could not be made when the loop had to block (out of fds or
 * memory): report it once, then sleep in short slices so that timers and
 * cr_call_soon_threadsafe still progress (the latter up to 1 ms late). */
static void poll_without_base(cr_loop *loop, int rc)
{
	double dt = 0.001;

	if (!loop->base_failed) {
		cr_error_report r = {"could not create the libevent base; polling by sleeping", rc,
				     NULL};

		loop->base_failed = true;
		cr_loop_call_exception_handler(loop, &r);
	}
	if (loop->ntimers) {
		double t = timer_first(loop)->when - cr__monotonic();

		if (t < dt)
			dt = t;
	}
	if (dt > 0 && atomic_load(&loop->inbox_n) == 0 && !atomic_load(&loop->sig_pending) &&
	    !atomic_load(&loop->async_pending)) {
		struct timespec ts = {0, (long)(dt * 1e9) + 1};

		nanosleep(&ts, NULL);
	}
}

static void poll_io(cr_loop *loop, bool block)
{
	int rc;

	if (!loop->wake_ev) {
		/* No base yet, hence no fd or signal event to poll: only a
		 * blocking wait needs one. */
		if (block && (rc = ensure_events(loop)) < 0)
			poll_without_base(loop, rc);
		if (!loop->wake_ev) {
			loop->steps_since_poll = 0;
			loop->iters_since_check = 0;
			return;
		}
	}
	if (block) {
		bool timer = false;

		if (loop->ntimers) {
			double dt = timer_first(loop)->when - cr__monotonic();

			if (dt <= 0) {
				block = false;
			} else if (dt < 1e8) { /* beyond ~3 years (or inf): no bound */
				struct timeval tv;

				tv.tv_sec = (time_t)dt;
				tv.tv_usec = (suseconds_t)((dt - (double)tv.tv_sec) * 1e6) + 1;
				if (tv.tv_usec >= 1000000) {
					tv.tv_sec++;
					tv.tv_usec -= 1000000;
				}
				evtimer_add(loop->timer_ev, &tv);
				timer = true;
			}
		}
		if (block) {
			atomic_store(&loop->polling, true);
			if (atomic_load(&loop->inbox_n) > 0 || atomic_load(&loop->sig_pending) ||
			    atomic_load(&loop->async_pending))
				block = false;
		}
		event_base_loop(loop->base, block ? EVLOOP_ONCE : EVLOOP_ONCE | EVLOOP_NONBLOCK);
		atomic_store(&loop->polling, false);
		if (timer)
			evtimer_del(loop->timer_ev);
	} else {
		event_base_loop(loop->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	}
	loop->steps_since_poll = 0;
	loop->iters_since_check = 0;
}

static void run_handle(cr_loop *loop, cr_handle *h)
{
	h->where = CR__H_NONE;
	if (!h->cancelled) {
		h->cancelled = 1; /* ran: a later cancel is a no-op */
		if (loop->debug) {
			double t0 = cr__monotonic(), dt;

			h->cb(h->arg);
			dt = cr__monotonic() - t0;
			if (dt >= loop->slow_duration) {
				char msg[128];
				cr_error_report r = {msg, 0, NULL};

				snprintf(msg, sizeof(msg), "Executing a callback took %.3f seconds",
					 dt);
				cr_loop_call_exception_handler(loop, &r);
			}
		} else {
			h->cb(h->arg);
		}
	}
	cr_handle_unref(h);
}

/* The cr__async wake-ups sent since the last look.  A callback may stop
 * its own async (not another one). */
static void run_asyncs(cr_loop *loop)
{
	struct cr__async *a, *next;

	for (a = loop->asyncs; a; a = next) {
		next = a->next;
		if (atomic_load_explicit(&a->pending, memory_order_relaxed) &&
		    atomic_exchange(&a->pending, false))
			a->cb(a->arg);
	}
}

static void run_once(cr_loop *loop)
{
	struct cr__rq *e;

	loop->now_valid = false;
	if (!loop->rq_head && !loop->stopping) {
		poll_io(loop, true);
		loop->last_poll = cr__loop_now(loop);
	} else if (loop->steps_since_poll >= CR__POLL_STEPS ||
		   (++loop->iters_since_check >= CR__POLL_CHECK &&
		    (loop->iters_since_check = 0,
		     cr__loop_now(loop) - loop->last_poll >= CR__POLL_INTERVAL))) {
		poll_io(loop, false);
		loop->last_poll = cr__loop_now(loop);
	}
	if (atomic_load_explicit(&loop->inbox_n, memory_order_acquire) > 0)
		drain_inbox(loop);
	if (atomic_load_explicit(&loop->sig_pending, memory_order_relaxed) &&
	    atomic_exchange(&loop->sig_pending, false) && loop->sig_hook)
		loop->sig_hook(loop->sig_hook_arg);
	if (atomic_load_explicit(&loop->async_pending, memory_order_relaxed) &&
	    atomic_exchange(&loop->async_pending, false))
		run_asyncs(loop);
	for (cr_handle *h; (h = timer_first(loop)) && h->when <= cr__loop_now(loop);) {
		timer_unlink(loop, h);
		h->where = CR__H_READY;
		cr__rq_push(loop, &h->rq);
	}
	/* Run what is ready now; entries queued meanwhile wait.  run_next
	 * is shared with task.c: a task that suspends may switch straight to
	 * the next ready task and consume its entry. */
	loop->run_next = loop->rq_head;
	loop->rq_head = NULL;
	loop->rq_tail = &loop->rq_head;
	while ((e = loop->run_next)) {
		loop->run_next = e->next;
		loop->steps_since_poll++;
		if (e->kind == CR__RQ_TASK)
			cr__task_run_step(loop, (cr_task *)e);
		else
			run_handle(loop, (cr_handle *)e);
	}
}

static __thread bool thread_prepared;

void cr__loop_set_sig_hook(cr_loop *loop, cr_callback cb, void *arg)
{
	loop->sig_hook = cb;
	loop->sig_hook_arg = arg;
}

/* Called from a signal handler, on any thread: only atomics and write(2).
 * The order (sig_pending then polling here, polling then sig_pending in
 * poll_io) makes the loop either see the flag before blocking or be
 * woken by the write.  polling is only ever set once the eventfd exists. */
void cr__loop_signal_wake(cr_loop *loop)
{
	atomic_store(&loop->sig_pending, true);
	if (atomic_load(&loop->polling)) {
		uint64_t one = 1;
		ssize_t w = write(loop->wake_fd, &one, sizeof(one));

		(void)w; /* EAGAIN: the counter is full, the loop wakes anyway */
	}
}

void cr__async_start(cr_loop *loop, struct cr__async *a, cr_callback cb, void *arg)
{
	a->cb = cb;
	a->arg = arg;
	atomic_init(&a->pending, false);
	a->prev = NULL;
	a->next = loop->asyncs;
	if (loop->asyncs)
		loop->asyncs->prev = a;
	loop->asyncs = a;
}

void cr__async_stop(cr_loop *loop, struct cr__async *a)
{
	if (a->prev)
		a->prev->next = a->next;
	else if (loop->asyncs == a)
		loop->asyncs = a->next;
	if (a->next)
		a->next->prev = a->prev;
	a->prev = a->next = NULL;
}

/* Any thread: the same ordering as cr_call_soon_threadsafe (flags, then
 * `polling`; the loop sets `polling`, then looks at the flags), without
 * the inbox and its allocation. */
void cr__async_send(cr_loop *loop, struct cr__async *a)
{
	atomic_store(&a->pending, true);
	atomic_store(&loop->async_pending, true);
	if (atomic_load(&loop->polling) && !atomic_exchange(&loop->wake_pending, true)) {
		uint64_t one = 1;
		ssize_t w = write(loop->wake_fd, &one, sizeof(one));

		(void)w; /* EAGAIN: the counter is full, the loop wakes anyway */
	}
}

static int run_enter(cr_loop *loop)
{
	if (loop->closed)
		return cr__error(-ESHUTDOWN, "Event loop is closed");
	if (loop->running)
		return cr__error(-EBUSY, "This event loop is already running");
	if (cr__tls_loop)
		return cr__error(-EBUSY, "Cannot run the event loop while another loop is running");
	/* Once per thread: it queries sigaltstack, a syscall per run. */
	if (!thread_prepared) {
		cr__stack_prepare_thread();
		thread_prepared = true;
	}
	loop->running = true;
	/* stopping stays: a cr_loop_stop() before the run ends it after one
	 * iteration (asyncio's rule); run_leave clears it */
	loop->thread = pthread_self();
	loop->now_valid = false;
	loop->last_poll = cr__monotonic();
	cr__tls_loop = loop;
	return 0;
}

static void run_leave(cr_loop *loop)
{
	loop->running = false;
	loop->stopping = false;
	cr__tls_loop = NULL;
}

int cr_loop_run_forever(cr_loop *loop)
{
	int rc = run_enter(loop);

	if (rc < 0)
		return rc;
	do
		run_once(loop); /* at least once, even when stopped before */
	while (!loop->stopping);
	run_leave(loop);
	return 0;
}

int cr_loop_run_until_complete(cr_loop *loop, cr_task *task)
{
	int rc;

	if (!task)
		return cr__error(-EINVAL, "cr_loop_run_until_complete: task is NULL");
	if (cr_task_loop(task) != loop)
		return cr__error(-EINVAL, "the task belongs to another loop");
	rc = run_enter(loop);
	if (rc < 0)
		return rc;
	cr_task_ref(task);
	while (task->state < CR__T_FINISHED) {
		run_once(loop);
		if (loop->stopping) /* also a stop before the run: one iteration */
			break;
	}
	run_leave(loop);
	if (task->state < CR__T_FINISHED) {
		cr_task_unref(task);
		return cr__error(-EAGAIN, "Event loop stopped before the task completed.");
	}
	rc = cr_task_result(task, NULL);
	cr_task_unref(task);
	return rc;
}

void cr_loop_stop(cr_loop *loop)
{
	if (loop)
		loop->stopping = true;
}

int cr_loop_close(cr_loop *loop)
{
	struct cr__rq *e, *next;

	if (!loop)
		return cr__error(-EINVAL, "cr_loop_close: loop is NULL");
	if (loop->running)
		return cr__error(-EBUSY, "Cannot close a running event loop");
	if (loop->closed)
		return 0;
	/* Extensions first: they may still need the loop's state. */
	cr__executor_loop_closed(loop);
	cr__agen_loop_closed(loop);
	cr__subprocess_loop_closed(loop);

	pthread_mutex_lock(&loop->inbox_mu);
	loop->inbox_closed = true;
	pthread_mutex_unlock(&loop->inbox_mu);
	loop->closed = true;
	drain_inbox(loop);
	/* Pending tasks are dropped out of the queue first (their records
	 * are released by cr__task_destroy_pending below). */
	for (e = loop->rq_head; e; e = next) {
		next = e->next;
		if (e->kind == CR__RQ_HANDLE)
			handle_drop((cr_handle *)e);
	}
	loop->rq_head = NULL;
	loop->rq_tail = &loop->rq_head;
	for (cr_handle *h; (h = timer_first(loop));) {
		timer_unlink(loop, h);
		handle_drop(h);
	}
	free(loop->heap);
	loop->heap = NULL;
	loop->heap_cap = 0;
	cr__task_destroy_pending(loop);
	cr__stack_pool_drain(&loop->stacks);
	while (loop->sigs)
		cr_loop_remove_signal_handler(loop, loop->sigs->signo);
	if (loop->wake_ev)
		event_free(loop->wake_ev);
	if (loop->timer_ev)
		event_free(loop->timer_ev);
	loop->wake_ev = loop->timer_ev = NULL;
	if (loop->wake_fd >= 0)
		close(loop->wake_fd);
	loop->wake_fd = -1;
	if (loop->own_base && loop->base)
		event_base_free(loop->base);
	loop->base = NULL;
	return 0;
}

/* ------------------------------------------------------------ task list */

void cr__loop_foreach_task(cr_loop *loop, void (*fn)(cr_task *t, void *arg), void *arg)
{
	cr_task *t, *next;

	/* fn may cancel, which never unlinks a task synchronously, but take
	 * the next pointer first anyway. */
	for (t = loop->tasks; t; t = next) {
		next = cr__task_all_next(t);
		fn(t, arg);
	}
}

size_t cr__loop_task_count(const cr_loop *loop) { return loop->ntasks; }
