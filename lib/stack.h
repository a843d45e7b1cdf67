/*
 * stack.h — coroutine stacks (internal): mmap'd, guarded, pooled, budgeted.
 *
 * A stack is [map, map + map_size): one guard page at the low end (stacks
 * grow down), then `size` usable bytes.  Memory is committed lazily
 * (MAP_NORESERVE), so a sleeping task costs the pages it touched.  Stacks
 * come from a pool owned by the loop; the pool is bounded and releases
 * stacks beyond its bound to the kernel.
 */
#ifndef CR_STACK_H
#define CR_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cr__stack {
	struct cr__stack *next;  /* pool link */
	char *map;               /* whole mapping, guard included */
	size_t map_size;
	char *lo;                /* usable: [lo, lo + size) */
	size_t size;
	size_t color;            /* bytes left unused at the top (see stack.c) */
	unsigned vmas;           /* kernel mappings counted against the budget */
	unsigned vg_id;          /* valgrind stack id */
	bool canary;             /* debug: a canary was written (high-water) */
	/* Owner, for the "stack overflow in task NAME" message (read from the
	 * SIGSEGV handler: a name string that lives as long as the task, or
	 * NULL and the "Task-N" number). */
	const char *owner_name;
	uint64_t owner_id;
};

typedef struct cr__stack_pool {
	struct cr__stack *head;
	size_t count;
	size_t max;              /* bound; stacks beyond it are unmapped */
} cr__stack_pool;

#define CR__STACK_DEFAULT_SIZE (256 * 1024)
#define CR__STACK_MIN_SIZE (16 * 1024)
#define CR__STACK_POOL_MAX 64
#define CR__STACK_ASAN_UNPOISON (256 * 1024)

/* Usable size for a request (rounded up to pages, at least the minimum). */
size_t cr__stack_round(size_t size);

/* A stack of usable size cr__stack_round(size): from the pool when one of
 * that size is there, else a fresh mapping.  debug: write a high-water
 * canary (checked by cr__stack_put).  -ENOMEM when the mapping budget
 * (vm.max_map_count) is used up or mmap fails; sets cr_last_error. */
int cr__stack_get(cr__stack_pool *pool, size_t size, bool debug, struct cr__stack **ret);

/* Give a stack back (to the pool, or unmapped beyond the bound).  Returns
 * false when the debug canary shows the stack was used nearly to its
 * limit (the caller warns). */
bool cr__stack_put(cr__stack_pool *pool, struct cr__stack *st);

/* Give back the stack of a coroutine abandoned in the middle of its work
 * (loop closed under it): no canary check, fully cleaned for reuse. */
void cr__stack_abandon(cr__stack_pool *pool, struct cr__stack *st);

/* Unmap every pooled stack. */
void cr__stack_pool_drain(cr__stack_pool *pool);

/* Test knob: cap the kernel mappings all stacks may use (< 0: back to the
 * default derived from /proc/sys/vm/max_map_count). */
void cr__stack_set_budget(long vmas);
long cr__stack_vmas_in_use(void);

/* Install (once per process) the SIGSEGV handler that recognises a guard
 * page hit, and give the calling thread an alternate signal stack. */
void cr__stack_prepare_thread(void);

/* The stack of the coroutine running on this thread (NULL: none); set by
 * the scheduler around every switch. */
extern __thread struct cr__stack *cr__stack_running __attribute__((tls_model("initial-exec")));

#endif
