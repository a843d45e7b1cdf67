/*
 * alloc.c — every allocation of the runtime goes through cr__malloc and
 * friends (internal.h), so that tests can make the N-th one fail, as
 * SQLite's test_malloc does: a test arms the injector with
 * cr__test_alloc_fail(n, persistent), runs the runner's whole lifecycle,
 * and repeats with n = 1, 2, ... until a run completes without reaching
 * the n-th allocation.  Every failure must come back as a clean -ENOMEM
 * (or be survived), with no crash and no leak (ASan / valgrind).
 *
 * Cost when disarmed: one relaxed atomic load and a predictable branch per
 * allocation (inlined), a small fraction of malloc's own cost.  The counter
 * is process-wide and atomic because executor workers allocate too
 * (cr_call_soon_threadsafe); with them the N-th allocation is not always
 * the same one from run to run, which only widens what the loop covers.
 *
 * The cr__test_ functions are exported (the library's export pattern lets
 * them through) but declared only in internal.h: they are for tests.
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* 0: off; n > 0: the n-th allocation from now fails; -1: every one fails
 * (persistent mode, once the n-th was reached). */
atomic_long cr__alloc_countdown;
static atomic_bool alloc_persistent;
static atomic_long alloc_failures;

bool cr__alloc_fail_now(void)
{
	long n = atomic_load(&cr__alloc_countdown);

	for (;;) {
		long next;

		if (n == 0)
			return false;
		if (n < 0) {
			atomic_fetch_add(&alloc_failures, 1);
			return true;
		}
		next = n > 1 ? n - 1 : (atomic_load(&alloc_persistent) ? -1 : 0);
		if (atomic_compare_exchange_weak(&cr__alloc_countdown, &n, next)) {
			if (n > 1)
				return false;
			atomic_fetch_add(&alloc_failures, 1);
			return true;
		}
	}
}

void cr__test_alloc_fail(long n, bool persistent)
{
	atomic_store(&cr__alloc_countdown, 0);
	atomic_store(&alloc_failures, 0);
	atomic_store(&alloc_persistent, persistent);
	atomic_store(&cr__alloc_countdown, n > 0 ? n : 0);
}

long cr__test_alloc_failures(void) { return atomic_load(&alloc_failures); }

char *cr__strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = cr__malloc(n);

	if (d)
		memcpy(d, s, n);
	return d;
}
