/*
 * crunner.h — asyncio's Runner in C: one event loop, stackful coroutines,
 * tasks, context variables, a default executor and async generators.
 *
 * Conventions (the whole API follows them):
 *  - Functions that can fail return 0 (or a non-negative count) on success
 *    and a negative errno-style code on failure.  A call that fails leaves
 *    no half state and runs no callback.  cr_strerror() names a code;
 *    cr_last_error() gives the message of the last failure in this thread
 *    (asyncio's wording where it has one: "Runner is closed", ...).
 *  - Out-parameters start with ret_ and are written only on success.
 *  - Objects are reference counted: *_ref() returns its argument, *_unref()
 *    accepts NULL and always returns NULL (so `x = cr_task_unref(x);`).
 *  - "Awaiting" calls (marked AWAITS) suspend the calling coroutine; they
 *    may only be called from inside a task running on a loop and return
 *    -EPERM otherwise.  Any await returns -ECANCELED when the task is
 *    cancelled while it waits (or was cancelled before the await): the
 *    cancellation is delivered once, so cleanup code may await again.
 *  - Everything but cr_call_soon_threadsafe() (and the _ref and _unref
 *    functions of loops, tasks and contexts, which are atomic) must be
 *    called on the loop's thread; in debug mode the scheduling calls
 *    check it (-EPERM).
 *  - Every function returning int lists its codes under "Errors:".  -EINVAL
 *    (a NULL or out-of-range argument) and, for AWAITS calls, -EPERM
 *    (outside a task) and -ECANCELED are listed once here, not repeated.
 *
 * Codes used beyond their usual meaning:
 *   -ECANCELED  the task was cancelled        (asyncio.CancelledError)
 *   -ETIMEDOUT  a timeout ran out             (TimeoutError)
 *   -EINTR      interrupted by SIGINT          (KeyboardInterrupt)
 *   -EBUSY      called from a running event loop
 *   -ESHUTDOWN  the runner or loop is closed
 *   -EPERM      an awaiting call outside a coroutine
 *   -ENODATA    async generator exhausted     (StopAsyncIteration)
 *   -ENOMEM     allocation, or no coroutine stack could be had
 */
#ifndef CRUNNER_H
#define CRUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CR_VERSION_MAJOR 0
#define CR_VERSION_MINOR 1
#define CR_VERSION_PATCH 0

/* ------------------------------------------------------------------ errors */

/* Short description of a code returned by this library (never NULL). */
const char *cr_strerror(int err);

/* Message of the last failed call on this thread, or "" when none.  The
 * string is thread-local and valid until the next failing call. */
const char *cr_last_error(void);

/* --------------------------------------------------------------- types */

typedef struct cr_loop cr_loop;
typedef struct cr_task cr_task;
typedef struct cr_handle cr_handle;
typedef struct cr_context cr_context;
typedef struct cr_ctxvar cr_ctxvar;
typedef struct cr_ctxtoken cr_ctxtoken;
typedef struct cr_event cr_event;
typedef struct cr_lock cr_lock;
typedef struct cr_sem cr_sem;
typedef struct cr_queue cr_queue;
typedef struct cr_agen cr_agen;
typedef struct cr_runner cr_runner;
typedef struct cr_subprocess cr_subprocess;

/* A coroutine body.  Returns 0 (or a positive value) on success, a
 * negative code on failure.  It may store a result pointer in *ret_value
 * (initialised to NULL); ownership of that pointer is the coroutine's
 * contract with whoever joins it. */
typedef int (*cr_fn)(void *arg, void **ret_value);

/* A plain callback run by the loop (not a coroutine: must not await). */
typedef void (*cr_callback)(void *arg);

/* ------------------------------------------------------------------ loop */

/* Debug setting: CR_DEBUG_DEFAULT follows the environment variable
 * CRUNNER_DEBUG (set, not empty and not "0" → on), like
 * PYTHONASYNCIODEBUG. */
enum { CR_DEBUG_DEFAULT = -1, CR_DEBUG_OFF = 0, CR_DEBUG_ON = 1 };

typedef struct cr_loop_opts {
	size_t size;                   /* sizeof(cr_loop_opts), for ABI growth */
	struct event_base *base;       /* embed this libevent base (not freed by the
	                                * loop); NULL: the loop makes its own */
	const char *backend;           /* libevent method to prefer ("epoll",
	                                * "poll", ...), NULL: libevent's choice */
	int debug;                     /* CR_DEBUG_* */
	size_t stack_size;             /* default coroutine stack size, 0: 256 KiB */
	double slow_callback_duration; /* debug: warn when one step holds the
	                                * loop longer than this (s), 0: 0.1 */
} cr_loop_opts;

/* Create a loop.  opts may be NULL (defaults).  *ret_loop owns one
 * reference.  Errors: -ENOMEM, -EINVAL (bad opts), -EIO (libevent). */
int cr_loop_new(const cr_loop_opts *opts, cr_loop **ret_loop);
cr_loop *cr_loop_ref(cr_loop *loop);
cr_loop *cr_loop_unref(cr_loop *loop);

/* The loop running on this thread, or NULL (asyncio.get_running_loop). */
cr_loop *cr_loop_current(void);

/* Run the loop until `task` is done (asyncio's run_until_complete).
 * Returns the task's result code; value via cr_task_result().
 * Errors: -EBUSY (a loop already runs on this thread), -ESHUTDOWN
 * (closed), -EAGAIN (cr_loop_stop() before the task was done), -EINVAL
 * (the task belongs to another loop). */
int cr_loop_run_until_complete(cr_loop *loop, cr_task *task);

/* Run the loop until cr_loop_stop() is called.  Returns 0.
 * Errors: -EBUSY, -ESHUTDOWN as cr_loop_run_until_complete(). */
int cr_loop_run_forever(cr_loop *loop);
/* End the run after the current iteration.  Called while the loop is not
 * running, it ends the next run after its first iteration (callbacks
 * ready then run; I/O is polled without waiting), as asyncio's stop(). */
void cr_loop_stop(cr_loop *loop);
bool cr_loop_is_running(const cr_loop *loop);
bool cr_loop_is_closed(const cr_loop *loop);

/* Close the loop: drops pending callbacks and timers, frees the libevent
 * base it created.  Does not cancel tasks (the runner does that first).
 * Idempotent.  Errors: -EBUSY (running). */
int cr_loop_close(cr_loop *loop);

/* Monotonic time in seconds (CLOCK_MONOTONIC), cached per loop iteration. */
double cr_loop_time(const cr_loop *loop);

/* The libevent base, to add one's own events (valid until close).  The
 * loop makes its base on first need (a loop that never blocks, waits on an
 * fd or handles a signal has none), so this may create it: call it on the
 * loop's thread, or before the loop runs.  NULL if it cannot be made. */
struct event_base *cr_loop_event_base(cr_loop *loop);
const char *cr_loop_backend(const cr_loop *loop);

/* 1 when debug mode is on, else 0 (never fails). */
int cr_loop_get_debug(const cr_loop *loop);
void cr_loop_set_debug(cr_loop *loop, bool on);
void cr_loop_set_slow_callback_duration(cr_loop *loop, double seconds);

/* Schedule cb(arg) for the next loop iteration.  The handle may be NULL
 * if not wanted; otherwise *ret_handle owns a reference (cr_handle_unref).
 * Unlike asyncio's call_soon, which runs the callback in a copy of the
 * caller's context, callbacks (of cr_call_soon, cr_call_later, cr_call_at,
 * cr_call_soon_threadsafe) run in the thread's base context: a callback
 * that needs a task's variables takes them through arg.
 * Errors: -ENOMEM, -ESHUTDOWN (loop closed), -EPERM (debug: another
 * thread). */
int cr_call_soon(cr_loop *loop, cr_callback cb, void *arg, cr_handle **ret_handle);

/* From any thread: schedule cb(arg) and wake the loop.  Safe after the
 * loop closed: returns -ESHUTDOWN and never runs cb.  Errors: -ENOMEM,
 * -ESHUTDOWN. */
int cr_call_soon_threadsafe(cr_loop *loop, cr_callback cb, void *arg);

/* Run cb(arg) after `delay` seconds (call_later) or at loop time `when`.
 * Errors: -EINVAL (NaN), -ENOMEM, -ESHUTDOWN, -EPERM (debug: another
 * thread; refused before the loop's state is touched). */
int cr_call_later(cr_loop *loop, double delay, cr_callback cb, void *arg, cr_handle **ret_handle);
int cr_call_at(cr_loop *loop, double when, cr_callback cb, void *arg, cr_handle **ret_handle);

/* Cancel a scheduled callback (no-op when it already ran). */
void cr_handle_cancel(cr_handle *h);
cr_handle *cr_handle_unref(cr_handle *h);

/* Signals: run cb(arg) on the loop thread when signo arrives; adding a
 * handler for a signal that has one replaces it.  Errors (add): -EINVAL
 * (SIGKILL, SIGSTOP, out of range), -ENOMEM, -ESHUTDOWN, -EIO (libevent
 * could not watch it), -EPERM (debug: another thread).  Errors (remove):
 * -ENOENT (no handler for signo). */
int cr_loop_add_signal_handler(cr_loop *loop, int signo, cr_callback cb, void *arg);
int cr_loop_remove_signal_handler(cr_loop *loop, int signo);

/* Exception handler: receives errors nobody else will see (a leftover
 * task's failure at teardown, a task never joined, a failing async
 * generator cleanup, a slow step in debug mode...).  The default handler
 * logs to stderr.  `task` may be NULL. */
typedef struct cr_error_report {
	const char *message; /* what happened, a sentence */
	int error;           /* the negative code, or 0 */
	cr_task *task;       /* task concerned, or NULL */
} cr_error_report;
typedef void (*cr_exception_handler)(cr_loop *loop, const cr_error_report *r, void *data);
void cr_loop_set_exception_handler(cr_loop *loop, cr_exception_handler h, void *data);
void cr_loop_call_exception_handler(cr_loop *loop, const cr_error_report *r);

/* ----------------------------------------------------------------- tasks */

typedef struct cr_spawn_opts {
	size_t size;         /* sizeof(cr_spawn_opts) */
	const char *name;    /* copied; NULL: "Task-N" */
	cr_context *context; /* run IN this context; NULL: a copy of the
	                      * creator's current context */
	size_t stack_size;   /* 0: the loop's default */
} cr_spawn_opts;

/* Create a task running fn(arg) on `loop`, scheduled for the next
 * iteration.  No stack is taken until its first step.  *ret_task owns a
 * reference.  Errors: -ENOMEM, -ESHUTDOWN (loop closed), -EPERM (debug:
 * another thread). */
int cr_loop_spawn(cr_loop *loop, cr_fn fn, void *arg, const cr_spawn_opts *opts,
		  cr_task **ret_task);
/* The same on the running loop (asyncio.create_task).  -EPERM outside. */
int cr_spawn(cr_fn fn, void *arg, const cr_spawn_opts *opts, cr_task **ret_task);

cr_task *cr_task_ref(cr_task *t);
cr_task *cr_task_unref(cr_task *t);

/* The task whose coroutine is running now, or NULL. */
cr_task *cr_current_task(void);

const char *cr_task_name(const cr_task *t);
cr_loop *cr_task_loop(const cr_task *t);
bool cr_task_done(const cr_task *t);
bool cr_task_cancelled(const cr_task *t);

/* Non-blocking: the finished task's code (and value).  Errors: -EAGAIN
 * (not done). */
int cr_task_result(cr_task *t, void **ret_value);

/* AWAITS until t is done; returns its result code.  Joining marks the
 * task as observed (no "never retrieved" report).  Errors: -EDEADLK (t
 * is the caller), -EINVAL (t on another loop); cancelling the caller
 * cancels t too (asyncio's await), and the caller waits for it, then
 * returns -ECANCELED even when t swallowed the cancellation and
 * succeeded (asyncio's await would return t's result there): the
 * caller's own cancellation is never lost; t's code stays readable with
 * cr_task_result(). */
int cr_task_join(cr_task *t, void **ret_value);

/* Request cancellation: delivered as -ECANCELED at t's current or next
 * await.  Counted (cr_task_cancelling).  msg (copied) may be NULL.
 * Returns 0.  Errors: -EALREADY (t is done), -ENOMEM (copying msg),
 * -EPERM (debug: another thread).  A task that ends with a
 * success while a cancellation is still counted (never uncancelled) ends
 * cancelled: a cancellation cannot be lost silently. */
int cr_task_cancel(cr_task *t, const char *msg);
/* The number of cancellation requests not yet uncancelled (never fails). */
int cr_task_cancelling(const cr_task *t);
/* Decrement the count; returns the remaining count. */
int cr_task_uncancel(cr_task *t);
const char *cr_task_cancel_message(const cr_task *t);

/* Called with the task when it finishes (done callbacks run soon after).
 * Errors: -ENOMEM, -ESHUTDOWN (t is done and its loop closed). */
int cr_task_add_done_callback(cr_task *t, void (*cb)(cr_task *t, void *arg), void *arg);

/* AWAITS: yield to the other runnable tasks (asyncio.sleep(0)). */
int cr_yield(void);
/* AWAITS: sleep `seconds` (≤ 0 is a yield).  Errors: -ENOMEM. */
int cr_sleep(double seconds);

/* AWAITS: wait for t for at most `timeout` seconds (< 0: forever).  On
 * timeout t is cancelled, awaited, and -ETIMEDOUT returned, even when t
 * swallowed the cancellation and returned a result (asyncio 3.12+ would
 * return that result; read it with cr_task_result()).  If the caller is
 * cancelled, t is cancelled too (and cr_task_join()'s rule applies).
 * Errors: as cr_task_join(), -ENOMEM (the timer), -ETIMEDOUT. */
int cr_wait_for(cr_task *t, double timeout, void **ret_value);

/* AWAITS: wait for t without propagating the caller's cancellation to it
 * (asyncio.shield).  The caller gets -ECANCELED, t keeps running.
 * Errors: -EDEADLK, -EINVAL as cr_task_join(). */
int cr_shield(cr_task *t, void **ret_value);

/* AWAITS: wait for all n tasks.  ret_codes (may be NULL) receives each
 * result code.  Returns 0 when all succeeded, otherwise the first failure
 * code by position.  If the caller is cancelled, every unfinished task is
 * cancelled, and gather waits for them to end before returning -ECANCELED.
 * Errors: -ENOMEM (nothing awaited), -EDEADLK, -EINVAL as cr_task_join(). */
int cr_gather(cr_task *const *tasks, size_t n, int *ret_codes);

/* AWAITS: asyncio.wait.  Returns when `mode` is satisfied or timeout (< 0:
 * none) ran out; returns the number of finished tasks (tasks are not
 * cancelled on timeout).  CR_WAIT_FIRST_ERROR: the first task to end with
 * an error other than -ECANCELED (a cancelled task is no error there, as
 * for FIRST_EXCEPTION), else all.  n may be 0: returns 0 at once
 * (asyncio.wait raises ValueError).  Errors: -ENOMEM, -EDEADLK, -EINVAL. */
enum { CR_WAIT_ALL = 0, CR_WAIT_FIRST_COMPLETED = 1, CR_WAIT_FIRST_ERROR = 2 };
int cr_wait(cr_task *const *tasks, size_t n, int mode, double timeout);

/* Timeout scopes (asyncio.timeout / timeout_at): a deadline for the
 * enclosed awaits of the current task.
 *     cr_timeout_scope s;
 *     cr_timeout_enter(&s, 2.5);
 *     rc = work();                       // awaits get -ECANCELED on expiry
 *     rc = cr_timeout_exit(&s, rc);      // → -ETIMEDOUT if it expired
 * Scopes nest.  The struct lives on the coroutine's stack.
 * Errors (enter): -EPERM (outside a task), -EINVAL (NaN), -ENOMEM (the
 * timer).  cr_timeout_exit returns rc, or -ETIMEDOUT for the -ECANCELED
 * of its own expiry. */
typedef struct cr_timeout_scope {
	cr_task *task;
	cr_handle *timer;
	double deadline;
	int state;
} cr_timeout_scope;
int cr_timeout_enter(cr_timeout_scope *s, double delay);
int cr_timeout_enter_at(cr_timeout_scope *s, double when);
void cr_timeout_reschedule(cr_timeout_scope *s, double when);
int cr_timeout_exit(cr_timeout_scope *s, int rc);
bool cr_timeout_expired(const cr_timeout_scope *s);

/* AWAITS: wait until fd is readable (CR_READ) and/or writable (CR_WRITE),
 * or `timeout` seconds (< 0: forever).  Returns the ready events mask,
 * -ETIMEDOUT, or -ECANCELED.  Errors: -EBADF (bad or unwatchable fd),
 * -ENOMEM, -EIO (no libevent base). */
enum { CR_READ = 0x02, CR_WRITE = 0x04 };
int cr_wait_fd(int fd, int events, double timeout);

/* ------------------------------------------------------------------ I/O */

/* Reads and writes that await instead of blocking.  The fd must be in
 * non-blocking mode (cr_fd_set_nonblocking; the pipes of a subprocess
 * are): each call tries the syscall first and waits on the loop
 * (cr_wait_fd) only when the kernel says EAGAIN; on a blocking fd it
 * would block the whole loop.  The fd stays the caller's.  Timeouts come
 * from timeout scopes (cr_timeout_enter) around the call.  Writing to a
 * pipe or socket whose reader is gone raises SIGPIPE, which kills the
 * process unless it is ignored (crund ignores it; asyncio's Python does);
 * with SIGPIPE ignored the write returns -EPIPE. */

/* Set (on) or clear O_NONBLOCK.  Errors: -EBADF, the errno of fcntl. */
int cr_fd_set_nonblocking(int fd, bool on);

/* AWAITS: read up to len bytes into buf once data is there.  Returns the
 * count (> 0), 0 at end of file, or a negative errno.  Errors: -EBADF,
 * -EIO (no libevent base), -ENOMEM, and read(2)'s errors (-EINTR is
 * retried, never returned). */
ssize_t cr_read(int fd, void *buf, size_t len);

/* AWAITS: write what the fd takes now, waiting until it takes at least
 * one byte.  Returns the count written (> 0 unless len is 0).  Errors:
 * as cr_read(), -EPIPE. */
ssize_t cr_write(int fd, const void *buf, size_t len);

/* AWAITS: write all len bytes.  Returns 0.  On an error or cancellation
 * an unknown prefix was written: loop on cr_write() to know how much.
 * Errors: as cr_write(). */
int cr_write_all(int fd, const void *buf, size_t len);

/* ----------------------------------------------------------- subprocesses */

/* What a child's stdin, stdout or stderr is. */
enum {
	CR_STDIO_INHERIT = 0, /* the parent's own fd 0, 1 or 2 */
	CR_STDIO_DEVNULL = 1, /* /dev/null */
	CR_STDIO_PIPE = 2,    /* a pipe; our end via cr_subprocess_fd() */
};

typedef struct cr_subprocess_opts {
	size_t size;             /* sizeof(cr_subprocess_opts) */
	const char *const *argv; /* NULL-terminated; argv[0] is the program,
	                          * looked up in PATH when it has no '/' (the
	                          * PATH of envp if given, else ours).  No
	                          * shell.  Copied by the spawn. */
	const char *cwd;         /* directory to run in; NULL: ours */
	const char *const *envp; /* NULL-terminated "K=V"; NULL: inherit */
	int stdin_mode;          /* CR_STDIO_* for fd 0 */
	int stdout_mode;         /* ... fd 1 */
	int stderr_mode;         /* ... fd 2 */
	const char *path;        /* the file to execute, exactly as given
	                          * (no PATH search; a relative one is taken
	                          * from cwd), while argv[0] is only what the
	                          * program sees as its name; NULL: argv[0]
	                          * looked up as above.  For a caller that
	                          * checks which file runs before it does. */
} cr_subprocess_opts;

/* Start a child process (asyncio.create_subprocess_exec) from the loop's
 * thread while the loop runs (in a task or a callback).  The child:
 *  - is the leader of a new process group (its pgid is its pid), so
 *    cr_subprocess_kill() reaches whatever it starts;
 *  - inherits no descriptor but 0, 1, 2 as asked;
 *  - starts with every signal at its default disposition and none blocked;
 *  - gets SIGKILL when the process (the thread that cloned it) exits
 *    (prctl PR_SET_PDEATHSIG).
 * Spawning does not copy the parent's memory (clone with CLONE_VFORK,
 * which suspends the cloning thread until the child has called exec).
 * Called from a task, it AWAITS: one of libcrunner's spawner threads
 * (long-lived, so PDEATHSIG only fires with the process) clones while the
 * loop runs on; cancelled meanwhile, the child that started is killed and
 * reaped and -ECANCELED returned.  Called from a callback, it clones
 * inline (the loop is held until the child's exec).  The exit is
 * watched with a pidfd (Linux >= 5.3) or else a SIGCHLD handler on the
 * loop, which then replaces any handler of the caller's for SIGCHLD.
 * A failure before the program runs (not found, not executable, bad cwd)
 * is returned here, with no child left behind.  *ret owns the child's
 * record (cr_subprocess_free).
 * Errors: -EPERM (no running loop on this thread), -ENOENT (no such
 * program or cwd), -EACCES, -ENOEXEC, -ENOTDIR and other errors of execve
 * or chdir, -EMFILE/-ENFILE (pipes), -EAGAIN (fork limit), -ENOMEM, -EIO
 * (libevent), -ECANCELED (the task was cancelled while it awaited). */
int cr_subprocess_spawn(const cr_subprocess_opts *opts, cr_subprocess **ret);

/* AWAITS the child's exit; *ret_status (may be NULL) receives its
 * waitpid(2) status (WIFEXITED, WEXITSTATUS, WIFSIGNALED, WTERMSIG).
 * Returns at once when it has exited already; any number of tasks may
 * wait.  Cancelling the caller leaves the child running.  Bound it with a
 * timeout scope.  Errors: -ESHUTDOWN (the loop was closed first), -ECHILD
 * (reaped behind our back: SIGCHLD is SIG_IGN, or a waitpid(-1) elsewhere),
 * -EINVAL (another loop's child). */
int cr_subprocess_wait(cr_subprocess *p, int *ret_status);

/* Non-blocking: 0 with the status when the child has exited, -EAGAIN
 * when it runs.  Errors: -ECHILD as cr_subprocess_wait(). */
int cr_subprocess_poll(cr_subprocess *p, int *ret_status);

/* Send sig to the child's whole process group (kill(-pid, sig)); sig 0
 * only checks that the group exists.  Works after the child exited while
 * something it started still runs in the group.  Errors: -ESRCH (the
 * group is gone), -EPERM. */
int cr_subprocess_kill(cr_subprocess *p, int sig);

/* The child's pid (also its process group id); -EINVAL for NULL. */
int cr_subprocess_pid(const cr_subprocess *p);

/* Our end of the pipe of stream 0 (stdin: write to it), 1 or 2 (read
 * from them), non-blocking, for cr_read/cr_write/cr_wait_fd.  Borrowed:
 * the record owns it.  Errors: -EBADF (not a pipe, or closed). */
int cr_subprocess_fd(const cr_subprocess *p, int stream);

/* Close our end of a pipe early (stdin: the child sees end of file).  No
 * task may be waiting on it.  Errors: -EBADF (not a pipe, or closed). */
int cr_subprocess_close_fd(cr_subprocess *p, int stream);

/* Close the pipes and free the record.  A child still running is not
 * killed (cr_subprocess_kill first if that is wanted): the loop reaps it
 * when it exits.  NULL ok; returns NULL. */
cr_subprocess *cr_subprocess_free(cr_subprocess *p);

/* ----------------------------------------------------- synchronisation */

/* Errors: *_new -ENOMEM; the AWAITS calls -ESHUTDOWN when the object is
 * freed under a waiter; cr_lock_release -EPERM (not locked);
 * cr_queue_put_nowait -EAGAIN (full) or -ENOMEM (growing the ring),
 * cr_queue_get_nowait -EAGAIN (empty); cr_queue_put also -ENOMEM. */

/* asyncio.Event */
int cr_event_new(cr_event **ret);
cr_event *cr_event_free(cr_event *e); /* waiters get -ESHUTDOWN; NULL ok */
void cr_event_set(cr_event *e);
void cr_event_clear(cr_event *e);
bool cr_event_is_set(const cr_event *e);
int cr_event_wait(cr_event *e); /* AWAITS */

/* asyncio.Lock (FIFO, not reentrant) */
int cr_lock_new(cr_lock **ret);
cr_lock *cr_lock_free(cr_lock *l);
int cr_lock_acquire(cr_lock *l); /* AWAITS */
int cr_lock_release(cr_lock *l); /* -EPERM when not locked */
bool cr_lock_locked(const cr_lock *l);

/* asyncio.Semaphore */
int cr_sem_new(unsigned value, cr_sem **ret);
cr_sem *cr_sem_free(cr_sem *s);
int cr_sem_acquire(cr_sem *s); /* AWAITS */
void cr_sem_release(cr_sem *s);
unsigned cr_sem_value(const cr_sem *s);

/* asyncio.Queue of pointers; maxsize 0 = unbounded.  The queue does not
 * own the items. */
int cr_queue_new(size_t maxsize, cr_queue **ret);
cr_queue *cr_queue_free(cr_queue *q);
int cr_queue_put(cr_queue *q, void *item);             /* AWAITS when full */
int cr_queue_get(cr_queue *q, void **ret_item);        /* AWAITS when empty */
int cr_queue_put_nowait(cr_queue *q, void *item);      /* -EAGAIN when full */
int cr_queue_get_nowait(cr_queue *q, void **ret_item); /* -EAGAIN empty */
size_t cr_queue_size(const cr_queue *q);

/* ------------------------------------------------------------- contexts */

/* contextvars.  A context maps variables to values; copies are O(1)
 * (copy-on-write) and independent afterwards.  Values are plain pointers
 * (or integers through intptr_t) and are not owned by the context. */

/* A new variable.  name is copied.  has_default=false: get() of an unset
 * variable returns -ENOENT (LookupError).  Variables live until freed;
 * free them only when no context will be read with them again. */
int cr_ctxvar_new(const char *name, bool has_default, void *default_value, cr_ctxvar **ret_var);
/* Errors of this section: -ENOMEM (new, set, reset, copies, and get on a
 * thread whose base context cannot be made); get: -ENOENT (unset, no
 * default); reset: -EINVAL (token used, or from another variable or
 * context); cr_context_run: -EBUSY (ctx is already entered), otherwise
 * fn's own return value. */
void cr_ctxvar_free(cr_ctxvar *var);
const char *cr_ctxvar_name(const cr_ctxvar *var);

/* In the current context (the running task's, or the thread's base
 * context outside tasks). */
int cr_ctxvar_get(const cr_ctxvar *var, void **ret_value);
/* Set; *ret_token (may be NULL) lets reset() restore the previous state.
 * The caller owns the token and frees it with cr_ctxtoken_free() (reset
 * only marks it used, so a second reset can fail safely with -EINVAL). */
int cr_ctxvar_set(cr_ctxvar *var, void *value, cr_ctxtoken **ret_token);
/* Restore; -EINVAL for a token used twice or made in another context. */
int cr_ctxvar_reset(cr_ctxvar *var, cr_ctxtoken *token);
void cr_ctxtoken_free(cr_ctxtoken *token);

int cr_context_new(cr_context **ret_ctx); /* empty context */
int cr_context_copy(const cr_context *ctx, cr_context **ret_ctx);
int cr_context_copy_current(cr_context **ret_ctx); /* copy_context() */
cr_context *cr_context_current(void);              /* borrowed */
cr_context *cr_context_ref(cr_context *ctx);
cr_context *cr_context_unref(cr_context *ctx);
/* Lookup in a given context without entering it. */
int cr_context_get(const cr_context *ctx, const cr_ctxvar *var, void **ret_value);
size_t cr_context_size(const cr_context *ctx);
/* Run fn(arg) (a plain function, may not await) with ctx current. */
int cr_context_run(cr_context *ctx, int (*fn)(void *arg), void *arg);

/* ------------------------------------------------------------- executor */

/* A blocking function for a worker thread. */
typedef int (*cr_blocking_fn)(void *arg, void **ret_value);

/* AWAITS: run fn(arg) on the loop's default executor (a thread pool made
 * on first use) and return its result on the loop thread. If the caller
 * is cancelled, it gets -ECANCELED at once; the function still runs to
 * its end on the worker (threads cannot be interrupted) and its result is
 * dropped.  -ESHUTDOWN after the executor was shut down.  The workers
 * block every asynchronous signal (they are the loop's, see
 * cr_loop_add_signal_handler); faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
 * SIGTRAP, SIGABRT, SIGSYS) still reach them. */
int cr_run_in_executor(cr_blocking_fn fn, void *arg, void **ret_value);

/* Errors (cr_run_in_executor): -ENOMEM, -ESHUTDOWN, -EAGAIN (no worker
 * thread could be started); otherwise fn's own return code. */

/* Worker count of the default executor (before first use), 0: min(32,
 * cpus + 4).  Errors: -EBUSY (the executor exists). */
int cr_loop_set_executor_threads(cr_loop *loop, unsigned n);
/* Shutdown timeout in seconds (≥ 0; 0: do not wait; default 300 s),
 * used by cr_loop_shutdown_default_executor(loop, -1) and by a runner
 * whose opts.executor_timeout is 0.  Negative values are ignored. */
void cr_loop_set_executor_timeout(cr_loop *loop, double seconds);

/* AWAITS (or call outside a coroutine with the loop not running):
 * refuse new work, wait up to `timeout` seconds (< 0: the loop's setting)
 * for the workers to finish; when it runs out, warn through the exception
 * handler ("The executor did not finishing joining its threads within N
 * seconds.") and leave the late workers detached: they never touch the
 * loop again.  Returns 0.  Errors: -ETIMEDOUT, -ENOMEM, -EBUSY (loop
 * running and not called from a coroutine on it), -ECANCELED (the
 * caller was cancelled: the workers are waited for by the next call). */
int cr_loop_shutdown_default_executor(cr_loop *loop, double timeout);

/* -------------------------------------------------------- async generators */

/* A generator body: calls cr_agen_yield() to produce values, returns when
 * exhausted.  Runs on its own stack, in the context of its consumer.
 * Errors: -ENOMEM. */
int cr_agen_new(cr_fn fn, void *arg, const cr_spawn_opts *opts, cr_agen **ret_gen);
/* Inside the generator: hand `value` to the consumer and wait for the next
 * request.  Returns 0 to continue, -ECANCELED when the consumer cancelled,
 * or -ESHUTDOWN when the generator is being closed (the body must clean up
 * — it may await — and return).  Errors: -EPERM (not in a generator). */
int cr_agen_yield(void *value);
/* AWAITS: the next value.  -ENODATA when the generator finished; a
 * negative code the generator returned is passed through once.  A
 * cancelled next() returns -ECANCELED at once, without waiting for the
 * body to see the cancellation (asyncio's anext waits for it, and may
 * return a value the body yields after catching it): the body gets
 * -ECANCELED from its cr_agen_yield() and its next value goes to the
 * next cr_agen_next().
 * Errors: -EBUSY (another next() or aclose() is under way), -ENOMEM and
 * the body task's start errors (first call). */
int cr_agen_next(cr_agen *g, void **ret_value);
/* AWAITS: close (aclose): the body sees -ESHUTDOWN from its yield, runs
 * its cleanup, and this returns its result (0 when it returned cleanly).
 * If the caller is cancelled meanwhile, the cleanup is cancelled too and
 * still awaited (asyncio throws CancelledError into the generator): a
 * cleanup error then replaces -ECANCELED.  Errors: -EBUSY (a next() is
 * under way). */
int cr_agen_aclose(cr_agen *g);
/* Free a generator; one not yet closed is closed by the loop later. */
cr_agen *cr_agen_unref(cr_agen *g);
cr_agen *cr_agen_ref(cr_agen *g);

/* AWAITS: close every live async generator of the running loop
 * (loop.shutdown_asyncgens); cleanup errors go to the exception handler.
 * Errors: -EPERM (not in a task on `loop`), -ENOMEM. */
int cr_loop_shutdown_asyncgens(cr_loop *loop);

/* ---------------------------------------------------------------- runner */

/* A loop factory: make and return a loop (with one reference).  Called
 * once, lazily; the loop is used as is. */
typedef int (*cr_loop_factory)(void *data, cr_loop **ret_loop);

enum { CR_SIGINT_AUTO = 0, CR_SIGINT_OFF = 1 };

typedef struct cr_runner_opts {
	size_t size;                  /* sizeof(cr_runner_opts) */
	int debug;                    /* CR_DEBUG_* */
	cr_loop_factory loop_factory; /* NULL: cr_loop_new(NULL) */
	void *loop_factory_data;
	double executor_timeout; /* shutdown timeout (s), 0: the loop's
	                          * (cr_loop_set_executor_timeout, 300 s
	                          * unless changed) */
	int sigint;              /* CR_SIGINT_AUTO: like asyncio, only
	                          * in the main thread and when SIGINT
	                          * has its default disposition */
} cr_runner_opts;

/* Create a runner (asyncio.Runner).  Lazy: no loop or context until the
 * first run() or get_loop().  opts may be NULL.  Errors: -ENOMEM,
 * -EINVAL (opts.size too small, bad debug value, negative timeout). */
int cr_runner_new(const cr_runner_opts *opts, cr_runner **ret_runner);

/* Run fn(arg) as a task on the runner's loop until it completes and return
 * its code (value through ret_value).  ctx NULL: the runner's own context,
 * shared by every run() call; otherwise ctx is used as is.
 * Errors: -EBUSY "Runner.run() cannot be called from a running event
 * loop", -ESHUTDOWN "Runner is closed", -ENOMEM, the loop factory's
 * code, -EINTR (KeyboardInterrupt): SIGINT cancelled the main task and it
 * ended cancelled, or arrived too late to cancel it (during its last
 * step; its result is dropped), or a second SIGINT stopped the loop.
 *
 * Differences from asyncio.Runner, where C has no exceptions: the main
 * task's failure is its negative code; KeyboardInterrupt is -EINTR;
 * CancelledError is -ECANCELED. */
int cr_runner_run(cr_runner *r, cr_fn fn, void *arg, cr_context *ctx, void **ret_value);

/* The runner's loop (initialising lazily); borrowed.  Errors:
 * -ESHUTDOWN (closed), -ENOMEM, the loop factory's code. */
int cr_runner_get_loop(cr_runner *r, cr_loop **ret_loop);
/* The runner's shared context (initialising lazily); borrowed.  Errors:
 * as cr_runner_get_loop(). */
int cr_runner_get_context(cr_runner *r, cr_context **ret_ctx);

/* Close: cancel leftover tasks and wait for them (their errors go to the
 * exception handler, "unhandled exception during Runner.close()
 * shutdown"), close async generators, shut the default executor down with
 * its timeout while the loop keeps running (timers due and callbacks sent
 * meanwhile run), close the loop, release the context.  Idempotent, and
 * like asyncio a no-op on a runner never initialised: that one can still
 * run.  Errors: -EBUSY (from inside the running loop). */
int cr_runner_close(cr_runner *r);
/* Close (if needed) and free.  NULL ok. */
void cr_runner_free(cr_runner *r);

/* asyncio.run: a runner for one call (leftover task failures are reported
 * as "... during asyncio.run() shutdown").  opts may be NULL.  Returns
 * fn's code.  Errors: as cr_runner_new() and cr_runner_run(). */
int cr_run(cr_fn fn, void *arg, void **ret_value, const cr_runner_opts *opts);

#ifdef __cplusplus
}
#endif
#endif /* CRUNNER_H */
