/*
 * stack.c — coroutine stacks.
 *
 * Cost model (see DESIGN.md): a fresh mmap + guard costs microseconds and
 * the first touch of a page ~11 µs, so stacks are pooled per loop and
 * reused: a task that finishes gives its stack back, the next task to
 * start takes it with no syscall and no page fault.
 *
 * Guard page: MADV_GUARD_INSTALL (Linux 6.13+) marks the low page as a
 * guard inside the same mapping, so a stack costs one kernel mapping
 * (and adjacent ones may even merge).  Older kernels get EINVAL and we fall
 * back to mprotect(PROT_NONE), which splits the mapping in two; its result
 * is always checked (Boost.Context silently loses the guard when the
 * vm.max_map_count limit is hit).
 *
 * Budget: every mapping counts against vm.max_map_count (65530 by
 * default), shared with malloc, libraries and everything else.  We count
 * the mappings our stacks use (1 with a guard installed, 2 with mprotect)
 * and refuse a new stack beyond max_map_count minus a reserve, so a
 * program with too many live coroutines gets -ENOMEM for the next task
 * instead of a crash somewhere else.
 *
 * Cache colouring: stacks are mapped at a fixed stride, so the top frames
 * of all coroutines (where a suspended coroutine keeps its saved
 * registers) would share the same few cache sets and evict each other
 * when many tasks take turns.  Each stack starts its frames a different
 * multiple of 64 bytes below its top (up to 2 KiB, so the first frames of
 * a sleeping task still fit in one page).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#endif
#ifdef CR_HAVE_ASAN
#include <sanitizer/asan_interface.h>
#endif

#include "internal.h"
#include "stack.h"

#if !HAVE_DECL_MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

__thread struct cr__stack *cr__stack_running __attribute__((tls_model("initial-exec")));

static size_t page_size;
static atomic_long vmas_in_use;
static atomic_long vma_budget = -1;   /* -1: not computed yet */
static atomic_bool guard_install_works = true;
static atomic_uint color_next;

static void page_size_init(void)
{
	if (!page_size) {
		long ps = sysconf(_SC_PAGESIZE);

		page_size = ps > 0 ? (size_t)ps : 4096;
	}
}

size_t cr__stack_round(size_t size)
{
	page_size_init();
	if (size == 0)
		size = CR__STACK_DEFAULT_SIZE;
	if (size < CR__STACK_MIN_SIZE)
		size = CR__STACK_MIN_SIZE;
	if (size > SIZE_MAX / 2)
		return SIZE_MAX / 2 & ~(page_size - 1);
	return (size + page_size - 1) & ~(page_size - 1);
}

/* max_map_count minus a reserve for the rest of the process. */
static long default_budget(void)
{
	long max = 65530;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");

	if (f) {
		long v;

		if (fscanf(f, "%ld", &v) == 1 && v > 0)
			max = v;
		fclose(f);
	}
	long reserve = max / 8 > 1024 ? max / 8 : 1024;
	return max > reserve ? max - reserve : max / 2;
}

void cr__stack_set_budget(long vmas)
{
	atomic_store(&vma_budget, vmas < 0 ? default_budget() : vmas);
}

long cr__stack_vmas_in_use(void)
{
	return atomic_load(&vmas_in_use);
}

/* Reserve n mappings; false when the budget is used up. */
static bool budget_take(long n)
{
	long budget = atomic_load(&vma_budget);

	if (budget < 0) {
		budget = default_budget();
		atomic_store(&vma_budget, budget);
	}
	long cur = atomic_load(&vmas_in_use);
	do {
		if (cur + n > budget)
			return false;
	} while (!atomic_compare_exchange_weak(&vmas_in_use, &cur, cur + n));
	return true;
}

static void stack_unmap(struct cr__stack *st)
{
#ifdef HAVE_VALGRIND_VALGRIND_H
	VALGRIND_STACK_DEREGISTER(st->vg_id);
#endif
	munmap(st->map, st->map_size);
	atomic_fetch_sub(&vmas_in_use, (long)st->vmas);
	free(st);
}

static int stack_map(size_t size, struct cr__stack **ret)
{
	struct cr__stack *st;
	size_t map_size = size + page_size;
	bool guard = atomic_load_explicit(&guard_install_works, memory_order_relaxed);

	/* Count the worse case (2 mappings) when the cheap guard is unknown
	 * to work; give one back if it worked. */
	if (!budget_take(guard ? 1 : 2))
		return cr__error(-ENOMEM, "no coroutine stack: %ld kernel mappings in use by stacks "
				 "reach the vm.max_map_count budget", cr__stack_vmas_in_use());
	st = calloc(1, sizeof(*st));
	if (!st) {
		atomic_fetch_sub(&vmas_in_use, guard ? 1 : 2);
		return cr__error(-ENOMEM, "out of memory allocating a stack record");
	}
	st->vmas = guard ? 1 : 2;
	st->map = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (st->map == MAP_FAILED) {
		int e = errno;

		atomic_fetch_sub(&vmas_in_use, (long)st->vmas);
		free(st);
		return cr__error(-ENOMEM, "no coroutine stack: mmap of %zu bytes failed: %s",
				 map_size, strerror(e));
	}
	st->map_size = map_size;
	if (!guard || madvise(st->map, page_size, MADV_GUARD_INSTALL) != 0) {
		if (guard) {
			/* Older kernel: remember, and count the split mapping. */
			atomic_store(&guard_install_works, false);
			if (!budget_take(1)) {
				munmap(st->map, map_size);
				atomic_fetch_sub(&vmas_in_use, 1);
				free(st);
				return cr__error(-ENOMEM, "no coroutine stack: vm.max_map_count budget reached");
			}
			st->vmas = 2;
		}
		if (mprotect(st->map, page_size, PROT_NONE) != 0) {
			int e = errno;

			munmap(st->map, map_size);
			atomic_fetch_sub(&vmas_in_use, (long)st->vmas);
			free(st);
			return cr__error(-ENOMEM, "no coroutine stack: guard page mprotect failed: %s",
					 strerror(e));
		}
	}
	st->lo = st->map + page_size;
	st->size = size;
	st->color = (size_t)(atomic_fetch_add_explicit(&color_next, 1, memory_order_relaxed) % 32) * 64;
#ifdef HAVE_VALGRIND_VALGRIND_H
	st->vg_id = VALGRIND_STACK_REGISTER(st->lo, st->lo + size);
#endif
	*ret = st;
	return 0;
}

/* Debug high-water mark: a canary 1/8 of the stack above its low end; if
 * a coroutine overwrote it, it used more than 7/8 of its stack. */
static const uint64_t canary_value = 0x6372756e63616e61ULL;
#define CANARY_WORDS 64  /* 512 bytes: frames with big untouched arrays rarely jump it */

static uint64_t *canary_at(struct cr__stack *st)
{
	return (uint64_t *)(void *)(st->lo + st->size / 8);
}

int cr__stack_get(cr__stack_pool *pool, size_t size, bool debug, struct cr__stack **ret)
{
	struct cr__stack *st = NULL, **pp;
	int rc;

	size = cr__stack_round(size);
	/* The pool normally holds stacks of the loop's default size only; a
	 * short scan finds them without making odd sizes costly. */
	int scan = 0;
	for (pp = &pool->head; *pp && scan < 8; pp = &(*pp)->next, scan++) {
		if ((*pp)->size == size) {
			st = *pp;
			*pp = st->next;
			pool->count--;
			break;
		}
	}
	if (!st) {
		rc = stack_map(size, &st);
		if (rc < 0)
			return rc;
	}
	st->next = NULL;
	st->owner_name = NULL;
	st->owner_id = 0;
	st->canary = debug;
	if (debug) {
		uint64_t *c = canary_at(st);

		for (int i = 0; i < CANARY_WORDS; i++)
			c[i] = canary_value;
	}
	*ret = st;
	return 0;
}

bool cr__stack_put(cr__stack_pool *pool, struct cr__stack *st)
{
	bool ok = true;

#ifdef CR_HAVE_ASAN
	/* A coroutine that died leaves the redzones of the frames still live
	 * at its last switch poisoned: those near the top (frames that
	 * returned cleaned up after themselves).  Not the whole stack: its
	 * shadow is size/8 bytes to write.  cr__stack_forget() below covers a
	 * coroutine abandoned in the middle of its work. */
	size_t span = st->size < CR__STACK_ASAN_UNPOISON ? st->size : CR__STACK_ASAN_UNPOISON;
	ASAN_UNPOISON_MEMORY_REGION(st->lo + st->size - span, span);
#endif
	if (st->canary) {
		uint64_t *c = canary_at(st);

		for (int i = 0; i < CANARY_WORDS; i++)
			if (c[i] != canary_value)
				ok = false;
		st->canary = false;
	}
	if (pool->count >= pool->max) {
		stack_unmap(st);
		return ok;
	}
	st->next = pool->head;
	pool->head = st;
	pool->count++;
	return ok;
}

void cr__stack_abandon(cr__stack_pool *pool, struct cr__stack *st)
{
#ifdef CR_HAVE_ASAN
	ASAN_UNPOISON_MEMORY_REGION(st->lo, st->size);
#endif
	st->canary = false;
	cr__stack_put(pool, st);
}

void cr__stack_pool_drain(cr__stack_pool *pool)
{
	struct cr__stack *st;

	while ((st = pool->head)) {
		pool->head = st->next;
		stack_unmap(st);
	}
	pool->count = 0;
}

/* ----------------------------------------------------- overflow reports */

static struct sigaction old_segv;
static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static pthread_key_t altstack_key;
#define ALTSTACK_SIZE (64 * 1024)

static size_t fmt_u64(char *buf, uint64_t v)
{
	char tmp[24];
	size_t n = 0, i = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		buf[i++] = tmp[--n];
	return i;
}

static void segv_handler(int sig, siginfo_t *si, void *uctx)
{
	struct cr__stack *st = cr__stack_running;
	char *addr = si->si_addr;

	/* A fault in the guard page (or just below it: a large frame can
	 * jump over one page) of the running coroutine's stack. */
	if (st && addr < st->lo && addr + 65536 >= st->map) {
		char buf[512];
		size_t n = 0;
		static const char pre[] = "crunner: stack overflow in task ";

		memcpy(buf, pre, sizeof(pre) - 1);
		n = sizeof(pre) - 1;
		if (st->owner_name) {
			size_t l = strlen(st->owner_name);

			if (l > 400)
				l = 400;
			memcpy(buf + n, st->owner_name, l);
			n += l;
		} else {
			memcpy(buf + n, "Task-", 5);
			n += 5;
			n += fmt_u64(buf + n, st->owner_id);
		}
		buf[n++] = '\n';
		ssize_t w = write(STDERR_FILENO, buf, n);
		(void)w;
		/* Die of the fault with the previous disposition. */
		sigaction(SIGSEGV, &old_segv, NULL);
		return;
	}
	if (old_segv.sa_flags & SA_SIGINFO) {
		old_segv.sa_sigaction(sig, si, uctx);
	} else if (old_segv.sa_handler == SIG_DFL || old_segv.sa_handler == SIG_IGN) {
		/* Returning re-executes the faulting access, which now kills
		 * the process as it would have without us. */
		sigaction(SIGSEGV, &old_segv, NULL);
	} else {
		old_segv.sa_handler(sig);
	}
}

static void altstack_free(void *p)
{
	stack_t ss = { .ss_flags = SS_DISABLE };

	sigaltstack(&ss, NULL);
	munmap(p, ALTSTACK_SIZE);
}

static void handler_install(void)
{
	struct sigaction sa;

	pthread_key_create(&altstack_key, altstack_free);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = segv_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
}

void cr__stack_prepare_thread(void)
{
	stack_t cur;

	pthread_once(&handler_once, handler_install);
	/* A signal handler cannot run on the stack that overflowed: give this
	 * thread an alternate signal stack unless it has one already. */
	if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
		return;
	void *p = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return;  /* overflows then die without the message */
	stack_t ss = { .ss_sp = p, .ss_size = ALTSTACK_SIZE, .ss_flags = 0 };
	if (sigaltstack(&ss, NULL) != 0) {
		munmap(p, ALTSTACK_SIZE);
		return;
	}
	pthread_setspecific(altstack_key, p);
}
