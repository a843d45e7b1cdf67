/*
 * loop.h — the event loop's insides, shared by the core files (loop.c,
 * task.c, sync.c, timeout.c).  Not installed.
 */
#ifndef CR_LOOP_H
#define CR_LOOP_H

/* Pacing of the I/O poll while tasks are runnable (see loop.c). */
#define CR__POLL_STEPS    256
#define CR__POLL_CHECK    16
#define CR__POLL_INTERVAL 0.001

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"
#include "coro.h"
#include "stack.h"

/* Ready queue entry: the first member of a cr_handle and of a cr_task, so
 * one intrusive FIFO holds callbacks and task steps without allocating. */
enum { CR__RQ_HANDLE = 1, CR__RQ_TASK = 2 };
struct cr__rq {
	struct cr__rq *next;
	uint8_t kind;
};

/* A timer is either in the FIFO (deadline not before the FIFO's tail:
 * same-duration sleeps, timeouts, periodic timers) or in the heap. */
enum { CR__H_NONE, CR__H_READY, CR__H_HEAP, CR__H_FIFO };

struct cr_handle {
	struct cr__rq rq;
	uint8_t where; /* CR__H_*: queue it is in */
	uint8_t cancelled;
	uint8_t embedded; /* lives inside another object: never freed */
	int refs;         /* the queue's + the caller's (loop thread only) */
	cr_loop *loop;
	cr_callback cb;
	void *arg;
	cr_callback drop; /* internal: releases arg if dropped unrun */
	double when;      /* timers: loop time it is due */
	uint64_t seq;     /* timers: FIFO order among equal times */
	union {
		size_t heap_idx; /* CR__H_HEAP */
		struct {
			cr_handle *prev, *next;
		} fifo; /* CR__H_FIFO */
	} t;
};

/* Heap entry: the sort key is copied in so that sifting compares within
 * the array instead of dereferencing handles (those of cr_sleep live on
 * coroutine stacks, a page -- and a TLB miss -- apart). */
struct cr__heap_ent {
	double when;
	uint64_t seq;
	cr_handle *h;
};

struct cr__sigent;

struct cr_loop {
	atomic_int refs;
	bool running, stopping, closed, own_base;
	bool base_failed;    /* lazy base creation failed (reported once) */
	const char *backend; /* libevent's static name of opts.backend */
	bool debug;
	double slow_duration;
	size_t stack_size;
	struct event_base *base;
	struct event *wake_ev;  /* eventfd: cross-thread wake-up */
	struct event *timer_ev; /* bounds a blocking poll by the next timer */
	int wake_fd;
	pthread_t thread; /* valid while running */
	double now;       /* cached monotonic time of this iteration */
	bool now_valid;   /* `now` was read in this iteration */

	/* ready queue (intrusive FIFO) */
	struct cr__rq *rq_head, **rq_tail;
	struct cr__rq *run_next; /* cursor in this iteration's batch */
	double step_t0;          /* debug: when the running step began */

	/* Timers, ordered by (when, seq): a sorted FIFO (doubly linked
	 * through cr_handle.t.fifo) for timers appended in order, and a
	 * binary min-heap for the others; the next timer is the earlier of
	 * the FIFO head and the heap top.  cr__timer_reserve keeps a free
	 * heap slot, whichever of the two the timer then goes to. */
	cr_handle *fifo_head, *fifo_tail;
	struct cr__heap_ent *heap;
	size_t heap_len, heap_cap;
	size_t ntimers; /* in the FIFO + in the heap */
	uint64_t timer_seq;

	/* cr_call_soon_threadsafe inbox */
	pthread_mutex_t inbox_mu;
	struct cr__rq *inbox_head, **inbox_tail;
	bool inbox_closed;        /* under inbox_mu */
	atomic_int inbox_n;       /* > 0: something to drain */
	atomic_bool polling;      /* the loop may be blocked in the poll */
	atomic_bool wake_pending; /* the eventfd was written, not yet read */

	/* Signal-handler wake-up (cr__loop_signal_wake): the hook runs on
	 * the loop thread at the next iteration. */
	atomic_bool sig_pending;
	cr_callback sig_hook;
	void *sig_hook_arg;

	/* cr__async wake-ups: started ones, and "one of them was sent". */
	struct cr__async *asyncs;
	atomic_bool async_pending;

	/* poll pacing while tasks are runnable */
	unsigned steps_since_poll;
	unsigned iters_since_check;
	double last_poll;

	/* unfinished tasks (doubly linked through cr_task.all_*) */
	cr_task *tasks;
	size_t ntasks;

	cr__stack_pool stacks;
	cr__coro sched;   /* the scheduler (thread's own stack) */
	cr_task *current; /* task running now, or NULL */

	struct cr__sigent *sigs;
	cr_exception_handler exc_handler;
	void *exc_data;
	void *slots[CR__NSLOTS];
	unsigned executor_threads;
	double executor_timeout;
};

/* Append to the ready queue (loop thread only). */
static inline void cr__rq_push(cr_loop *loop, struct cr__rq *e)
{
	e->next = NULL;
	*loop->rq_tail = e;
	loop->rq_tail = &e->next;
}

/* Timers of the loop, used by task.c for cr_sleep with a handle
 * embedded in the sleeping coroutine's frame (no allocation per sleep). */
void cr__handle_init_embedded(cr_handle *h, cr_loop *loop, cr_callback cb, void *arg);
/* cr__timer_reserve first (it can fail), then cr__timer_add cannot. */
int cr__timer_reserve(cr_loop *loop);
void cr__timer_add(cr_loop *loop, cr_handle *h, double when);

/* cr_call_soon whose arg owns something: drop(arg) runs instead of
 * cb(arg) if the loop is closed before the callback ran. */
int cr__call_soon_owned(cr_loop *loop, cr_callback cb, cr_callback drop, void *arg);

/* The hook run on the loop thread after cr__loop_signal_wake (one at a
 * time; NULL removes it).  Loop thread, loop not running. */
void cr__loop_set_sig_hook(cr_loop *loop, cr_callback cb, void *arg);
/* Async-signal-safe: mark the hook pending and wake the loop if it may
 * be blocked.  Any thread. */
void cr__loop_signal_wake(cr_loop *loop);

/* The running loop of this thread. */
extern __thread cr_loop *cr__tls_loop __attribute__((tls_model("initial-exec")));

/* Run one task step (task.c); called by the loop for CR__RQ_TASK entries. */
void cr__task_run_step(cr_loop *loop, cr_task *t);
/* Loop close: destroy tasks still pending (task.c). */
void cr__task_destroy_pending(cr_loop *loop);

/* -EPERM in debug mode when called off the loop's thread while it runs. */
int cr__loop_check_thread(const cr_loop *loop, const char *what);

/* Current cached time; fresh clock when the loop is not running. */
double cr__loop_now(const cr_loop *loop);
double cr__monotonic(void);

#endif
