/*
 * internal.h — what the runtime's files tell each other (not installed).
 *
 * The runtime is split by concept: coro (context switch), stack, loop,
 * task, sync, timeout (core); context, executor, agen, runner (built on the
 * core through the hooks below).  Names are cr__ (internal).
 */
#ifndef CRUNNER_INTERNAL_H
#define CRUNNER_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "crunner.h"

/* -------------------------------------------------- errors (errors.c) */
/* Record the message cr_last_error() returns and return `err` (negative). */
int cr__error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------ allocation (alloc.c) */
/* Every allocation of the runtime goes through these, so that tests can
 * make the N-th one fail (cr__test_alloc_fail).  Freed with free(). */
extern atomic_long cr__alloc_countdown;
bool cr__alloc_fail_now(void); /* the injector's slow path */

static inline bool cr__alloc_fails(void)
{
	return __builtin_expect(
		       atomic_load_explicit(&cr__alloc_countdown, memory_order_relaxed) != 0, 0) &&
	       cr__alloc_fail_now();
}
static inline void *cr__malloc(size_t n) { return cr__alloc_fails() ? NULL : malloc(n); }
static inline void *cr__calloc(size_t n, size_t size)
{
	return cr__alloc_fails() ? NULL : calloc(n, size);
}
static inline void *cr__realloc(void *p, size_t n)
{
	return cr__alloc_fails() ? NULL : realloc(p, n);
}
char *cr__strdup(const char *s);

/* Test only (exported, declared nowhere else): from now on, the n-th
 * allocation fails (n <= 0: none); persistent: every later one too.
 * Resets the count of injected failures, which the second one returns. */
void cr__test_alloc_fail(long n, bool persistent);
long cr__test_alloc_failures(void);

/* ---------------------------------------- current context (context.c) */
/* The context current on this thread: the running task's, or the thread's
 * base context outside tasks (created on first use).  task.c switches it
 * on every switch into / out of a task by assigning cr__tls_context. */
extern __thread cr_context *cr__tls_context __attribute__((tls_model("initial-exec")));
cr_context *cr__context_base(void); /* the thread's base context */

/* ------------------------------------------ parking (task.c provides) */
/* Suspend the current task until cr__task_wake(task, rc) is called and
 * return rc.  If the task is cancelled while parked, on_cancel(arg) runs
 * first (on the loop thread, so the waker can forget the task) and park
 * returns -ECANCELED.  A pending cancellation is delivered at once (park
 * returns -ECANCELED without suspending, on_cancel not called).
 * -EPERM outside a task. */
int cr__task_park(void (*on_cancel)(void *arg), void *arg);
/* Make a parked task runnable; its park returns rc.  Loop thread only.
 * A second wake before it runs is ignored. */
void cr__task_wake(cr_task *t, int rc);

/* Every unfinished task of the loop: calls fn for each (the runner cancels
 * leftovers with it).  fn may cancel but not free tasks. */
void cr__loop_foreach_task(cr_loop *loop, void (*fn)(cr_task *t, void *arg), void *arg);
size_t cr__loop_task_count(const cr_loop *loop);

/* ------------------------------------------------- per-loop extensions */
/* Slots where extensions hang their per-loop state; the loop calls the
 * close hooks from cr_loop_close() (before freeing anything). */
enum { CR__SLOT_EXECUTOR, CR__SLOT_AGENS, CR__SLOT_RUNNER, CR__SLOT_SUBPROCESS, CR__NSLOTS };
void *cr__loop_slot(const cr_loop *loop, int slot);
void cr__loop_set_slot(cr_loop *loop, int slot, void *value);
void cr__executor_loop_closed(cr_loop *loop);   /* executor.c */
void cr__agen_loop_closed(cr_loop *loop);       /* agen.c */
void cr__subprocess_loop_closed(cr_loop *loop); /* subprocess.c */
/* Test only (exported): spawn as if pidfd_open were missing, so that
 * children are watched through SIGCHLD (the fallback for Linux < 5.3). */
void cr__test_subprocess_force_sigchld(bool on);
/* agen.c: is t the body of an async generator?  Such tasks are not
 * "leftover tasks" for the runner (asyncio's all_tasks() never lists a
 * generator): they are closed by cr_loop_shutdown_asyncgens instead. */
bool cr__agen_is_body(cr_task *t);

/* An allocation-free wake-up from any thread (libuv's uv_async_t): its
 * owner embeds one and starts it on the loop thread; then any thread may
 * send it, and cb(arg) runs once on the loop thread at the next iteration
 * however many sends came before.  Sending cannot fail, unlike
 * cr_call_soon_threadsafe (which allocates): the executor's completions
 * travel this way so that no result is stranded by a failed allocation.
 * Stop it (loop thread) before it is freed, and make sure no thread sends
 * it afterwards. */
struct cr__async {
	cr_callback cb;
	void *arg;
	atomic_bool pending;
	struct cr__async *prev, *next; /* the loop's list */
};
void cr__async_start(cr_loop *loop, struct cr__async *a, cr_callback cb, void *arg);
void cr__async_stop(cr_loop *loop, struct cr__async *a);
void cr__async_send(cr_loop *loop, struct cr__async *a); /* any thread */

/* Executor settings kept by the loop (cr_loop_set_executor_*). */
unsigned cr__loop_executor_threads(const cr_loop *loop);
double cr__loop_executor_timeout(const cr_loop *loop);

/* Debug mode: the running loop's setting (0 outside). */
bool cr__debug(void);

#endif
