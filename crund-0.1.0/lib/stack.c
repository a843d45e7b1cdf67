/*
 * stack.c — coroutine stacks.
 *
 * Cost model (see docs/ARCHITECTURE.md; measured figures are in
 * bench/README.md's dated results): a fresh mmap + guard costs
 * microseconds, the first touch of a page more, and a munmap a TLB flush
 * on every thread of the process, so stacks are made in slabs and
 * reused: a task that finishes gives its stack back, the next task to
 * start takes it with no syscall and no page fault, whichever loop (and
 * thread) it runs on.
 *
 * Two levels of free stacks:
 *   - the loop's pool (cr__stack_pool), touched by the loop thread only: no
 *     lock, O(1) get and put;
 *   - a process-wide cache under one mutex, reached only in batches: an
 *     empty pool takes several stacks at once, a full pool gives half of
 *     itself back, a closing loop gives back all.  So a burst of tasks, a
 *     batch of executor calls or a sequence of cr_run() reuse warm stacks,
 *     and a loop that dies does not take its stacks with it.
 *
 * Slabs: one mapping holds K stacks of one size side by side, each with
 * its guard page at its low end.  The first slab of a size has a few
 * stacks, each next one twice as many, up to CR__STACK_SLAB_MAX.  The
 * cache unmaps a slab once all its stacks are back and the cache holds
 * more than its bound (CR__STACK_CACHE_BYTES of address space): releasing
 * 50,000 stacks costs ~800 munmaps, not 50,000, and below the bound
 * nothing is unmapped at all.
 *
 * Guard page: MADV_GUARD_INSTALL (Linux 6.13+) marks a page as a guard
 * inside a mapping without splitting it, so a slab costs one kernel
 * mapping whatever K (and adjacent slabs even merge).  Older kernels get
 * EINVAL and we fall back to mprotect(PROT_NONE), which splits the mapping
 * around every guard: then a slab holds one stack (two mappings), so that
 * free stacks can still be unmapped one by one.  The result is always
 * checked (Boost.Context silently loses the guard when the
 * vm.max_map_count limit is hit).
 *
 * Budget: every mapping counts against vm.max_map_count (65530 by
 * default), shared with malloc, libraries and everything else.  We count
 * the mappings our slabs use (1 per slab with guards installed, 2 with
 * mprotect) and refuse a new slab beyond max_map_count minus a reserve, so
 * a program with too many live coroutines gets -ENOMEM for the next task
 * instead of a crash somewhere else.  With guards installed the address
 * space runs out first (~100 TiB: 400 million default stacks).
 *
 * First touch: on a VM a page fault on a fresh stack costs several times
 * a MADV_POPULATE_WRITE of the same page (bench/README.md's dated results
 * give measured figures), so a stack handed out for the first time gets
 * its top page (where every task's first frames live) populated by
 * madvise; older kernels (EINVAL) just fault.
 *
 * Transparent huge pages are refused on slabs (MADV_NOHUGEPAGE): a slab is
 * large and aligned enough that a huge page would make a sleeping task's
 * 4 KiB of stack cost up to 2 MiB.
 *
 * Cache colouring: stacks are laid out at a fixed stride, so the top
 * frames of all coroutines (where a suspended coroutine keeps its saved
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
#include <valgrind/memcheck.h>
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
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

__thread struct cr__stack *cr__stack_running __attribute__((tls_model("initial-exec")));

static size_t page_size;
static atomic_long vmas_in_use;
static atomic_long vma_budget = -1; /* -1: not computed yet */
static atomic_bool guard_install_works = true;
static atomic_bool populate_works = true;
static atomic_uint color_next;

/* A slab: one mapping, `nstacks` stacks.  `free` lists those of its stacks
 * that are in the process cache (not in use, not in a loop's pool). */
struct cr__slab {
	struct cr__slab *prev, *next; /* in its class's list while nfree > 0 */
	struct size_class *cls;
	char *map;
	size_t map_size;
	unsigned vmas; /* counted against the budget */
	unsigned nstacks, nfree;
	struct cr__stack *free;
	struct cr__stack stacks[];
};

/* The slabs of one stack size.  Classes are few (a program uses one or two
 * stack sizes) and live as long as the process. */
struct size_class {
	struct size_class *next;
	size_t size;
	struct cr__slab *partial; /* slabs with free stacks, most recent first */
	unsigned next_k;          /* stacks in the next slab */
};

/* The process cache; everything below under cache_lock. */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct size_class *classes;
static size_t cached_bytes; /* map_size of every cached stack */
static size_t cache_max = CR__STACK_CACHE_BYTES;
static unsigned slab_max = CR__STACK_SLAB_MAX;

/* fork() while another thread holds the cache lock would leave it locked
 * for ever in the child: hold it across fork (a fork-safe library). */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void cache_lock_take(void) { pthread_mutex_lock(&cache_lock); }

static void cache_lock_release(void) { pthread_mutex_unlock(&cache_lock); }

static void atfork_install(void)
{
	pthread_atfork(cache_lock_take, cache_lock_release, cache_lock_release);
}

#define SLAB_FIRST 4  /* stacks in the first slab of a size */
#define REFILL_MAX 32 /* stacks an empty pool takes from the cache at once */

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

long cr__stack_vmas_in_use(void) { return atomic_load(&vmas_in_use); }

bool cr__stack_guard_in_mapping(void) { return atomic_load(&guard_install_works); }

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

static void list_add(struct size_class *c, struct cr__slab *sl)
{
	sl->prev = NULL;
	sl->next = c->partial;
	if (c->partial)
		c->partial->prev = sl;
	c->partial = sl;
}

static void list_del(struct size_class *c, struct cr__slab *sl)
{
	if (sl->prev)
		sl->prev->next = sl->next;
	else
		c->partial = sl->next;
	if (sl->next)
		sl->next->prev = sl->prev;
	sl->prev = sl->next = NULL;
}

/* Lock held.  The class of a size, made on first use (NULL: no memory). */
static struct size_class *class_of(size_t size, bool create)
{
	struct size_class *c;

	for (c = classes; c; c = c->next)
		if (c->size == size)
			return c;
	if (!create || !(c = cr__calloc(1, sizeof(*c))))
		return NULL;
	c->size = size;
	c->next_k = SLAB_FIRST;
	c->next = classes;
	classes = c;
	return c;
}

/* Lock held.  A wholly free slab leaves the cache: unmapped. */
static void slab_unmap(struct cr__slab *sl)
{
	list_del(sl->cls, sl);
	cached_bytes -= sl->map_size;
#ifdef HAVE_VALGRIND_VALGRIND_H
	for (unsigned i = 0; i < sl->nstacks; i++)
		VALGRIND_STACK_DEREGISTER(sl->stacks[i].vg_id);
#endif
	munmap(sl->map, sl->map_size);
	atomic_fetch_sub(&vmas_in_use, (long)sl->vmas);
	free(sl);
}

/* Lock held.  Unmap wholly free slabs while the cache is beyond its
 * bound (after a bound was lowered). */
static void cache_trim(void)
{
	for (struct size_class *c = classes; c && cached_bytes > cache_max; c = c->next) {
		struct cr__slab *sl = c->partial, *next;

		for (; sl && cached_bytes > cache_max; sl = next) {
			next = sl->next;
			if (sl->nfree == sl->nstacks)
				slab_unmap(sl);
		}
	}
}

void cr__stack_set_cache(long cache_bytes, long slab_stacks)
{
	pthread_mutex_lock(&cache_lock);
	cache_max = cache_bytes < 0 ? CR__STACK_CACHE_BYTES : (size_t)cache_bytes;
	slab_max = slab_stacks <= 0 ? CR__STACK_SLAB_MAX : (unsigned)slab_stacks;
	for (struct size_class *c = classes; c; c = c->next)
		if (c->next_k > slab_max)
			c->next_k = slab_max;
	cache_trim();
	pthread_mutex_unlock(&cache_lock);
}

/* Install the guard pages of a fresh slab.  0, 1 (this kernel cannot:
 * fall back to mprotect) or -errno. */
static int guards_install(char *map, unsigned k, size_t stride)
{
	for (unsigned i = 0; i < k; i++) {
		if (madvise(map + (size_t)i * stride, page_size, MADV_GUARD_INSTALL) != 0) {
			if (i == 0 && (errno == EINVAL || errno == ENOSYS))
				return 1;
			return -errno;
		}
	}
	return 0;
}

/* Lock held.  A new slab for class c, its stacks on its free list.  Sets
 * cr_last_error on failure. */
static int slab_new(struct size_class *c)
{
	size_t stride = c->size + page_size;
	bool guard = atomic_load_explicit(&guard_install_works, memory_order_relaxed);
	unsigned k = guard ? c->next_k : 1;
	unsigned vmas = guard ? 1 : 2;
	struct cr__slab *sl;
	char *map;
	int r;

	if (k > slab_max)
		k = slab_max;
	if (k > CR__STACK_SLAB_BYTES / stride)
		k = (unsigned)(CR__STACK_SLAB_BYTES / stride);
	if (k == 0)
		k = 1;
	if (!budget_take(vmas))
		return cr__error(-ENOMEM,
				 "no coroutine stack: %ld kernel mappings in use by stacks "
				 "reach the vm.max_map_count budget",
				 cr__stack_vmas_in_use());
	sl = cr__calloc(1, sizeof(*sl) + k * sizeof(sl->stacks[0]));
	if (!sl) {
		atomic_fetch_sub(&vmas_in_use, vmas);
		return cr__error(-ENOMEM, "out of memory allocating a stack record");
	}
	map = mmap(NULL, stride * k, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (map == MAP_FAILED) {
		int e = errno;

		atomic_fetch_sub(&vmas_in_use, vmas);
		free(sl);
		return cr__error(-ENOMEM, "no coroutine stack: mmap of %zu bytes failed: %s",
				 stride * k, strerror(e));
	}
#ifdef MADV_NOHUGEPAGE
	if (k > 1)
		(void)madvise(map, stride * k, MADV_NOHUGEPAGE); /* advisory: may fail */
#endif
	r = guard ? guards_install(map, k, stride) : 1;
	if (r > 0 && guard) {
		/* Older kernel: remember, and from now on one stack per slab
		 * and two mappings per stack. */
		atomic_store(&guard_install_works, false);
		munmap(map, stride * k);
		atomic_fetch_sub(&vmas_in_use, vmas);
		free(sl);
		return slab_new(c);
	}
	if (r > 0 && mprotect(map, page_size, PROT_NONE) != 0)
		r = -errno;
	if (r < 0) {
		munmap(map, stride * k);
		atomic_fetch_sub(&vmas_in_use, vmas);
		free(sl);
		return cr__error(-ENOMEM, "no coroutine stack: guard page failed: %s",
				 strerror(-r));
	}
	sl->cls = c;
	sl->map = map;
	sl->map_size = stride * k;
	sl->vmas = vmas;
	sl->nstacks = sl->nfree = k;
	/* Free list in address order: the lowest stacks are used first. */
	for (unsigned i = k; i-- > 0;) {
		struct cr__stack *st = &sl->stacks[i];

		st->slab = sl;
		st->map = map + (size_t)i * stride;
		st->map_size = stride;
		st->lo = st->map + page_size;
		st->size = c->size;
		st->fresh = true;
		st->color = (size_t)(atomic_fetch_add_explicit(&color_next, 1,
							       memory_order_relaxed) %
				     32) *
			    64;
#ifdef HAVE_VALGRIND_VALGRIND_H
		st->vg_id = VALGRIND_STACK_REGISTER(st->lo, st->lo + st->size);
#endif
		st->next = sl->free;
		sl->free = st;
	}
	cached_bytes += sl->map_size;
	list_add(c, sl);
	if (guard && c->next_k < slab_max)
		c->next_k = c->next_k * 2 < slab_max ? c->next_k * 2 : slab_max;
	return 0;
}

/* Take up to `want` (>= 1) stacks of usable size `size` from the cache,
 * making a slab if it has none; they are linked through ->next.  Returns
 * how many (>= 1) or -ENOMEM with cr_last_error set. */
static int cache_take(size_t size, unsigned want, struct cr__stack **ret)
{
	struct size_class *c;
	struct cr__stack *list = NULL;
	int n = 0;

	pthread_once(&atfork_once, atfork_install);
	pthread_mutex_lock(&cache_lock);
	c = class_of(size, true);
	if (!c) {
		pthread_mutex_unlock(&cache_lock);
		return cr__error(-ENOMEM, "out of memory allocating a stack record");
	}
	if (!c->partial) {
		int r = slab_new(c);

		if (r < 0) {
			pthread_mutex_unlock(&cache_lock);
			return r;
		}
	}
	while (n < (int)want && c->partial) {
		struct cr__slab *sl = c->partial;
		struct cr__stack *st = sl->free;

		sl->free = st->next;
		st->next = list;
		list = st;
		n++;
		cached_bytes -= st->map_size;
		if (--sl->nfree == 0)
			list_del(c, sl);
	}
	pthread_mutex_unlock(&cache_lock);
	for (struct cr__stack *st = list; st; st = st->next) {
		if (!st->fresh)
			continue;
		st->fresh = false;
		if (atomic_load_explicit(&populate_works, memory_order_relaxed) &&
		    madvise(st->lo + st->size - page_size, page_size, MADV_POPULATE_WRITE) != 0 &&
		    errno == EINVAL)
			atomic_store(&populate_works, false);
	}
	*ret = list;
	return n;
}

/* Give a list of stacks (linked through ->next) to the cache. */
static void cache_give(struct cr__stack *list)
{
	pthread_mutex_lock(&cache_lock);
	while (list) {
		struct cr__stack *st = list;
		struct cr__slab *sl = st->slab;

		list = st->next;
		st->next = sl->free;
		sl->free = st;
		cached_bytes += st->map_size;
		if (sl->nfree++ == 0)
			list_add(sl->cls, sl);
		if (sl->nfree == sl->nstacks && cached_bytes > cache_max)
			slab_unmap(sl);
	}
	pthread_mutex_unlock(&cache_lock);
}

/* Debug high-water mark: a canary 1/8 of the stack above its low end; if
 * a coroutine overwrote it, it used more than 7/8 of its stack. */
static const uint64_t canary_value = 0x6372756e63616e61ULL;
#define CANARY_WORDS 64 /* 512 bytes: frames with big untouched arrays rarely jump it */

static uint64_t *canary_at(struct cr__stack *st)
{
	return (uint64_t *)(void *)(st->lo + st->size / 8);
}

int cr__stack_get(cr__stack_pool *pool, size_t size, bool debug, struct cr__stack **ret)
{
	struct cr__stack *st = NULL, **pp;

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
		/* Take a few more for the next tasks while we hold the lock. */
		size_t room = pool->max > pool->count ? pool->max - pool->count : 0;
		unsigned want = 1 +
				(unsigned)(room / 2 < REFILL_MAX - 1 ? room / 2 : REFILL_MAX - 1);
		int n = cache_take(size, want, &st);

		if (n < 0)
			return n;
		if (n > 1) {
			struct cr__stack *rest = st->next, *last = rest;

			while (last->next)
				last = last->next;
			last->next = pool->head;
			pool->head = rest;
			pool->count += (size_t)n - 1;
		}
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
	 * shadow is size/8 bytes to write.  cr__stack_abandon() below covers
	 * a coroutine abandoned in the middle of its work.  Done here, so a
	 * stack is clean wherever it goes next (pool, cache, another loop). */
	size_t span = st->size < CR__STACK_ASAN_UNPOISON ? st->size : CR__STACK_ASAN_UNPOISON;
	ASAN_UNPOISON_MEMORY_REGION(st->lo + st->size - span, span);
#endif
	if (st->canary) {
		uint64_t *c = canary_at(st);

#ifdef HAVE_VALGRIND_VALGRIND_H
		/* Below the dead coroutine's last stack pointer: memcheck
		 * considers it gone; we only compare our own pattern. */
		VALGRIND_MAKE_MEM_DEFINED(c, CANARY_WORDS * sizeof(*c));
#endif
		for (int i = 0; i < CANARY_WORDS; i++)
			if (c[i] != canary_value)
				ok = false;
		st->canary = false;
	}
	st->owner_name = NULL;
	if (pool->count >= pool->max) {
		/* Full: the older half (the pool is LIFO, its head is the
		 * warmest) goes to the process cache in one batch. */
		size_t keep = pool->max / 2;
		struct cr__stack **pp = &pool->head, *old;

		for (size_t i = 0; i < keep && *pp; i++)
			pp = &(*pp)->next;
		old = *pp;
		*pp = NULL;
		pool->count = keep;
		if (pool->max == 0) {
			st->next = old;
			cache_give(st);
			return ok;
		}
		cache_give(old);
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
	cache_give(pool->head);
	pool->head = NULL;
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
	stack_t ss = {.ss_flags = SS_DISABLE};

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
	void *p = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		       0);
	if (p == MAP_FAILED)
		return; /* overflows then die without the message */
	stack_t ss = {.ss_sp = p, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
	if (sigaltstack(&ss, NULL) != 0) {
		munmap(p, ALTSTACK_SIZE);
		return;
	}
	pthread_setspecific(altstack_key, p);
}
