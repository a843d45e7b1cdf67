/*
 * coro.h — the coroutine context switch (internal).
 *
 * A cr__coro is the saved execution state of one coroutine (or of the
 * scheduler, which runs on the thread's own stack).  Two implementations,
 * chosen by configure:
 *   - hand-written assembly (switch-x86_64.S, switch-aarch64.S): saves the
 *     callee-saved registers on the stack being left and keeps only the
 *     stack pointer in the struct, so a switch is a few loads and stores;
 *   - ucontext (CR_CORO_UCONTEXT): portable but slower (swapcontext saves
 *     the signal mask, one syscall per switch).  The ucontext_t of a
 *     coroutine lives at the top of its own stack so that the task record
 *     stays small.
 * Under AddressSanitizer every switch is announced with
 * __sanitizer_start/finish_switch_fiber.
 */
#ifndef CR_CORO_H
#define CR_CORO_H

#include <stddef.h>

typedef struct cr__coro {
	void *sp; /* asm: saved stack pointer; ucontext: its ucontext_t (NULL
	           * for a coroutine without own stack, e.g. the scheduler) */
#ifdef CR_HAVE_ASAN
	const void *asan_bottom; /* stack bounds as ASan wants them */
	size_t asan_size;
	void *asan_fake; /* fake stack saved while switched out */
#endif
} cr__coro;

/* Prepare `c` to run entry(arg) on the stack [lo, lo + size) from its
 * first switch on.  entry must never return: it ends with
 * cr__coro_switch_final().  Touches only the top of the stack. */
void cr__coro_init(cr__coro *c, void *lo, size_t size, void (*entry)(void *), void *arg);

/* Save the running state into `from` and resume `to`.  Returns when some
 * coroutine switches back to `from`.  A zeroed cr__coro is a valid `from`
 * (the thread's own stack). */
void cr__coro_switch(cr__coro *from, cr__coro *to);

/* The last switch out of a dying coroutine: its stack may be reused as
 * soon as `to` runs.  Never returns. */
__attribute__((noreturn)) void cr__coro_switch_final(cr__coro *from, cr__coro *to);

#endif
