/*
 * coro.c — coroutine start-up and switching around the raw switch
 * (assembly or ucontext), plus the sanitizer announcements.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef CR_CORO_UCONTEXT
#include <ucontext.h>
#endif
#ifdef CR_HAVE_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#include "coro.h"

/* The coroutine that switched to the one now resuming: lets the resumed
 * side tell ASan whose stack it left and lets a starting ucontext
 * coroutine find its entry point. */
#if defined(CR_HAVE_ASAN) || defined(CR_CORO_UCONTEXT)
static __thread cr__coro *tls_from __attribute__((tls_model("initial-exec")));
static __thread cr__coro *tls_to __attribute__((tls_model("initial-exec")));
#endif

/* Called on the new stack by the trampoline (assembly) or by makecontext
 * (ucontext) at a coroutine's first run.  Not static: the assembly calls it. */
void cr__coro_boot(void *arg, void (*entry)(void *))
	__attribute__((visibility("hidden"), noreturn));

void cr__coro_boot(void *arg, void (*entry)(void *))
{
#ifdef CR_HAVE_ASAN
	/* First arrival on this stack: no fake stack to restore. */
	__sanitizer_finish_switch_fiber(NULL, &tls_from->asan_bottom, &tls_from->asan_size);
#endif
	entry(arg);
	/* entry ends with cr__coro_switch_final(); reaching here is a bug. */
	abort();
}

#ifdef CR_CORO_UCONTEXT

/* Stored at the top of a coroutine's stack. */
struct uctx_area {
	ucontext_t uc;
	void (*entry)(void *);
	void *arg;
};

/* The scheduler (and any other coroutine without a stack of its own)
 * saves its state here: one per thread is enough because only one loop
 * runs per thread. */
static __thread ucontext_t tls_main_uc;

static void uctx_start(void)
{
	struct uctx_area *a = tls_to->sp;

	cr__coro_boot(a->arg, a->entry);
}

void cr__coro_init(cr__coro *c, void *lo, size_t size, void (*entry)(void *), void *arg)
{
	uintptr_t top = ((uintptr_t)lo + size - sizeof(struct uctx_area)) & ~(uintptr_t)63;
	struct uctx_area *a = (struct uctx_area *)top;

	memset(c, 0, sizeof(*c));
	getcontext(&a->uc);
	a->uc.uc_link = NULL;
	a->uc.uc_stack.ss_sp = lo;
	a->uc.uc_stack.ss_size = top - (uintptr_t)lo;
	a->entry = entry;
	a->arg = arg;
	makecontext(&a->uc, uctx_start, 0);
	c->sp = a;
#ifdef CR_HAVE_ASAN
	c->asan_bottom = lo;
	c->asan_size = size;
#endif
}

static inline ucontext_t *uc_of(cr__coro *c)
{
	return c->sp ? &((struct uctx_area *)c->sp)->uc : &tls_main_uc;
}

static inline void raw_switch(cr__coro *from, cr__coro *to) { swapcontext(uc_of(from), uc_of(to)); }

#else /* assembly */

void cr__coro_swap(void **save_sp, void *load_sp) __attribute__((visibility("hidden")));
void cr__coro_trampoline(void) __attribute__((visibility("hidden")));

void cr__coro_init(cr__coro *c, void *lo, size_t size, void (*entry)(void *), void *arg)
{
	uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
	void **sp;

	memset(c, 0, sizeof(*c));
#if defined(__x86_64__)
	/* Frame popped by cr__coro_swap: r15 r14 r13 r12 rbx rbp, then the
	 * return address (the trampoline).  After that `ret` the stack
	 * pointer is top - 16, 16-byte aligned for the trampoline's call. */
	sp = (void **)(top - 72);
	sp[0] = NULL;                        /* r15 */
	sp[1] = NULL;                        /* r14 */
	sp[2] = arg;                         /* r13 */
	sp[3] = (void *)entry;               /* r12 */
	sp[4] = NULL;                        /* rbx */
	sp[5] = NULL;                        /* rbp: ends frame-pointer walks */
	sp[6] = (void *)cr__coro_trampoline; /* return address */
	sp[7] = NULL;
	sp[8] = NULL;
#elif defined(__aarch64__)
	/* Frame popped by cr__coro_swap: x19..x30, d8..d15 (160 bytes). */
	sp = (void **)(top - 160);
	memset(sp, 0, 160);
	sp[0] = (void *)entry;                /* x19 */
	sp[1] = arg;                          /* x20 */
	sp[10] = NULL;                        /* x29: ends frame-pointer walks */
	sp[11] = (void *)cr__coro_trampoline; /* x30: return address */
#else
#error "no assembly context switch for this architecture (configure should use ucontext)"
#endif
	c->sp = sp;
#ifdef CR_HAVE_ASAN
	c->asan_bottom = lo;
	c->asan_size = size;
#endif
}

static inline void raw_switch(cr__coro *from, cr__coro *to) { cr__coro_swap(&from->sp, to->sp); }

#endif

void cr__coro_switch(cr__coro *from, cr__coro *to)
{
#if defined(CR_HAVE_ASAN) || defined(CR_CORO_UCONTEXT)
	tls_from = from;
	tls_to = to;
#endif
#ifdef CR_HAVE_ASAN
	__sanitizer_start_switch_fiber(&from->asan_fake, to->asan_bottom, to->asan_size);
#endif
	raw_switch(from, to);
#ifdef CR_HAVE_ASAN
	/* Back in `from`: record the bounds of the stack we came from (this is
	 * how the scheduler's own stack bounds become known). */
	__sanitizer_finish_switch_fiber(from->asan_fake, &tls_from->asan_bottom,
					&tls_from->asan_size);
#endif
}

void cr__coro_switch_final(cr__coro *from, cr__coro *to)
{
#if defined(CR_HAVE_ASAN) || defined(CR_CORO_UCONTEXT)
	tls_from = from;
	tls_to = to;
#endif
#ifdef CR_HAVE_ASAN
	/* NULL fake stack: this stack is dying, ASan may drop its fake frames. */
	__sanitizer_start_switch_fiber(NULL, to->asan_bottom, to->asan_size);
#endif
	raw_switch(from, to);
	abort();
}
