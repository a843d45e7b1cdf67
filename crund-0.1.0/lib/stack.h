/*
 * stack.h — coroutine stacks (internal): mmap'd, guarded, cached, budgeted.
 *
 * A stack is [map, map + map_size): one guard page at the low end (stacks
 * grow down), then `size` usable bytes.  Memory is committed lazily
 * (MAP_NORESERVE), so a sleeping task costs the pages it touched.  Stacks
 * are carved out of slabs (one mapping holding several stacks of one size,
 * see stack.c) and go back, when freed, first to the loop's pool (no lock:
 * the loop thread only), then in batches to a process-wide cache shared by
 * every loop, which unmaps whole slabs once it holds more than its bound.
 */
#ifndef CR_STACK_H
#define CR_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cr__slab;

struct cr__stack {
	struct cr__stack *next; /* pool / cache link */
	struct cr__slab *slab;  /* the mapping it was carved from */
	char *map;              /* whole mapping, guard included */
	size_t map_size;
	char *lo; /* usable: [lo, lo + size) */
	size_t size;
	size_t color;   /* bytes left unused at the top (see stack.c) */
	unsigned vg_id; /* valgrind stack id */
	bool canary;    /* debug: a canary was written (high-water) */
	bool fresh;     /* never handed out: top page not faulted in yet */
	/* Owner, for the "stack overflow in task NAME" message (read from the
	 * SIGSEGV handler: a name string that lives as long as the task, or
	 * NULL and the "Task-N" number). */
	const char *owner_name;
	uint64_t owner_id;
};

/* A loop's own free stacks (used by its thread only, no lock). */
typedef struct cr__stack_pool {
	struct cr__stack *head;
	size_t count;
	size_t max; /* bound; beyond it, half goes to the process cache */
} cr__stack_pool;

#define CR__STACK_DEFAULT_SIZE  (256 * 1024)
#define CR__STACK_MIN_SIZE      (16 * 1024)
#define CR__STACK_POOL_MAX      256
/* Process-wide cache bound, in bytes of address space (guard pages
 * included): ~2,000 default stacks.  What it costs in memory is only the
 * pages the cached stacks' last tasks touched. */
#define CR__STACK_CACHE_BYTES   ((size_t)512 << 20)
/* Stacks per slab: the first slab of a size holds a few, each next one
 * twice as many up to this, and never more than CR__STACK_SLAB_BYTES. */
#define CR__STACK_SLAB_MAX      64
#define CR__STACK_SLAB_BYTES    ((size_t)64 << 20)
#define CR__STACK_ASAN_UNPOISON (256 * 1024)

/* Usable size for a request (rounded up to pages, at least the minimum). */
size_t cr__stack_round(size_t size);

/* A stack of usable size cr__stack_round(size): from the pool when one of
 * that size is there, else from the process cache (taking a few more for
 * the pool), else from a new slab.  debug: write a high-water
 * canary (checked by cr__stack_put).  -ENOMEM when the mapping budget
 * (vm.max_map_count) is used up or mmap fails; sets cr_last_error. */
int cr__stack_get(cr__stack_pool *pool, size_t size, bool debug, struct cr__stack **ret);

/* Give a stack back (to the pool; beyond its bound, half the pool goes to
 * the process cache, which unmaps slabs left wholly free beyond its own).  Returns
 * false when the debug canary shows the stack was used nearly to its
 * limit (the caller warns). */
bool cr__stack_put(cr__stack_pool *pool, struct cr__stack *st);

/* Give back the stack of a coroutine abandoned in the middle of its work
 * (loop closed under it): no canary check, fully cleaned for reuse. */
void cr__stack_abandon(cr__stack_pool *pool, struct cr__stack *st);

/* Hand every pooled stack to the process cache (slabs left wholly free
 * are unmapped when the cache is beyond its bound). */
void cr__stack_pool_drain(cr__stack_pool *pool);

/* Test knob: cap the kernel mappings all stacks may use (< 0: back to the
 * default derived from /proc/sys/vm/max_map_count). */
void cr__stack_set_budget(long vmas);
long cr__stack_vmas_in_use(void);

/* Test knob: the process cache bound in bytes and the most stacks per slab
 * (< 0: the defaults).  cache 0 with slab 1 is "one mapping per stack,
 * unmapped when it leaves a pool".  Wholly free slabs beyond the new bound
 * are unmapped at once. */
void cr__stack_set_cache(long cache_bytes, long slab_stacks);

/* Whether guard pages are installed inside a mapping (MADV_GUARD_INSTALL:
 * a slab costs one kernel mapping) rather than by mprotect (two mappings
 * per stack, and one stack per slab).  Known once a stack was made. */
bool cr__stack_guard_in_mapping(void);

/* Install (once per process) the SIGSEGV handler that recognises a guard
 * page hit, and give the calling thread an alternate signal stack. */
void cr__stack_prepare_thread(void);

/* The stack of the coroutine running on this thread (NULL: none); set by
 * the scheduler around every switch. */
extern __thread struct cr__stack *cr__stack_running __attribute__((tls_model("initial-exec")));

#endif
