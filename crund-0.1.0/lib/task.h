/*
 * task.h — the task record and the waiting primitives shared by task.c,
 * sync.c and timeout.c (internal).
 */
#ifndef CR_TASK_H
#define CR_TASK_H

#include "loop.h"

enum {
	CR__T_NEW,      /* spawned, never ran, holds no stack */
	CR__T_READY,    /* in the ready queue */
	CR__T_RUNNING,  /* its coroutine runs now */
	CR__T_PARKED,   /* suspended in cr__task_park */
	CR__T_FINISHED, /* body returned; the scheduler completes it */
	CR__T_DONE,     /* result final */
};

/* Someone waiting for a task to end (joiners, gather, wait): lives in the
 * waiter's frame; fn runs on the loop thread when the task completes,
 * after which the node is unlinked. */
struct cr__waiter {
	struct cr__waiter *next, *prev;
	void (*fn)(struct cr__waiter *w, cr_task *done);
	void *data;
	cr_task *task; /* the task waited for (set by cr__task_add_waiter) */
};

struct cr__donecb;

/* Kept small: a million unstarted tasks must fit in memory (160 bytes
 * on x86-64, plus the context copy). */
struct cr_task {
	struct cr__rq rq;    /* first: ready queue entry */
	uint8_t state;       /* CR__T_* */
	uint8_t must_cancel; /* cancellation requested, not yet delivered */
	uint8_t observed;    /* result retrieved (join, result, ...) */
	uint8_t in_rq;
	atomic_int refs;
	cr_loop *loop;                /* holds a loop reference */
	cr_task *all_prev, *all_next; /* loop's unfinished tasks */
	cr_fn fn;
	union {
		void *arg;   /* until the body runs */
		void *value; /* once done: what the body stored */
	};
	cr_context *ctx;         /* owned reference while unfinished */
	struct cr__stack *stack; /* from first step to the end */
	cr__coro coro;
	char *name; /* owned; NULL: "Task-<id>" made on demand */
	uint64_t id;
	void (*on_cancel)(void *arg); /* while parked */
	void *on_cancel_arg;
	struct cr__waiter *waiters;
	struct cr__donecb *donecbs;
	char *cancel_msg; /* owned */
	int rc;
	int wake_rc;
	int cancelling;
	uint32_t stack_4k; /* usable stack wanted, in 4 KiB units; 0: loop's */
};

static inline cr_task *cr__task_all_next(cr_task *t) { return t->all_next; }

/* Register / unregister a waiter on an unfinished task. */
void cr__task_add_waiter(cr_task *t, struct cr__waiter *w);
void cr__task_remove_waiter(cr_task *t, struct cr__waiter *w); /* idempotent */

/* Deliver a pending cancellation (returns -ECANCELED once) or 0. */
int cr__task_check_cancel(cr_task *t);

#endif
