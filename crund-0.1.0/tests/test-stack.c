/*
 * test-stack.c — coroutine stacks: pooling, sizes, guard page, mapping
 * budget, debug canary, overflow message, slabs and the process cache
 * (built from lib/stack.c directly: cr__ symbols are not exported by the
 * library).
 *
 * The "one" case runs with one stack per slab and no process cache
 * (cr__stack_set_cache(0, 1)): each stack is then its own mapping, as
 * counted exactly by the budget.  The "slabs" case runs with the defaults.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "stack.h"

START_TEST(stack_is_reused_from_the_pool)
{
	cr__stack_pool pool = {.max = 4};
	struct cr__stack *a, *b;

	ck_assert_int_eq(cr__stack_get(&pool, 0, false, &a), 0);
	ck_assert_uint_eq(a->size, CR__STACK_DEFAULT_SIZE);
	a->lo[a->size - 1] = 1; /* usable to the top */
	a->lo[0] = 1;           /* and to the bottom */
	ck_assert(cr__stack_put(&pool, a));
	ck_assert_uint_eq(pool.count, 1);
	ck_assert_int_eq(cr__stack_get(&pool, 0, false, &b), 0);
	ck_assert_ptr_eq(a, b);
	ck_assert_uint_eq(pool.count, 0);
	/* Another size is not taken from the pool. */
	cr__stack_put(&pool, b);
	ck_assert_int_eq(cr__stack_get(&pool, 64 * 1024, false, &a), 0);
	ck_assert_ptr_ne(a, b);
	ck_assert_uint_eq(a->size, 64 * 1024);
	cr__stack_put(&pool, a);
	cr__stack_pool_drain(&pool);
	ck_assert_uint_eq(pool.count, 0);
	ck_assert_int_eq(cr__stack_vmas_in_use(), 0);
}
END_TEST

START_TEST(sizes_are_rounded_to_pages_with_a_minimum)
{
	long ps = sysconf(_SC_PAGESIZE);

	ck_assert_uint_eq(cr__stack_round(1), CR__STACK_MIN_SIZE);
	ck_assert_uint_eq(cr__stack_round(0), CR__STACK_DEFAULT_SIZE);
	ck_assert_uint_eq(cr__stack_round(100000) % (size_t)ps, 0);
	ck_assert(cr__stack_round(100000) >= 100000);
}
END_TEST

START_TEST(pool_is_bounded_and_unmaps_beyond)
{
	cr__stack_pool pool = {.max = 2};
	struct cr__stack *s[4];
	long before = cr__stack_vmas_in_use();

	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(cr__stack_get(&pool, 0, false, &s[i]), 0);
	ck_assert(cr__stack_vmas_in_use() >= before + 4);
	for (int i = 0; i < 4; i++)
		cr__stack_put(&pool, s[i]);
	ck_assert_uint_eq(pool.count, 2);
	ck_assert(cr__stack_vmas_in_use() <= before + 4);
	cr__stack_pool_drain(&pool);
	ck_assert_int_eq(cr__stack_vmas_in_use(), before);
}
END_TEST

START_TEST(budget_exhausted_gives_enomem_not_a_crash)
{
	cr__stack_pool pool = {.max = 8};
	struct cr__stack *s[8];
	int got = 0, rc = 0;

	cr__stack_set_budget(cr__stack_vmas_in_use() + 4);
	for (int i = 0; i < 8; i++) {
		rc = cr__stack_get(&pool, 0, false, &s[got]);
		if (rc < 0)
			break;
		got++;
	}
	ck_assert_int_eq(rc, -ENOMEM);
	ck_assert(got >= 2 && got <= 4);
	ck_assert_msg(strstr(cr_last_error(), "max_map_count"), "%s", cr_last_error());
	for (int i = 0; i < got; i++)
		cr__stack_put(&pool, s[i]);
	/* Freed stacks make room again. */
	ck_assert_int_eq(cr__stack_get(&pool, 0, false, &s[0]), 0);
	cr__stack_put(&pool, s[0]);
	cr__stack_pool_drain(&pool);
	cr__stack_set_budget(-1);
}
END_TEST

START_TEST(huge_stack_request_fails_cleanly)
{
	cr__stack_pool pool = {.max = 8};
	struct cr__stack *s[64];
	int got = 0, rc = 0;

	/* 8 TiB each: the address space runs out long before 64. */
	for (int i = 0; i < 64; i++) {
		rc = cr__stack_get(&pool, (size_t)8 << 40, false, &s[got]);
		if (rc < 0)
			break;
		got++;
	}
	ck_assert_int_eq(rc, -ENOMEM);
	for (int i = 0; i < got; i++)
		cr__stack_put(&pool, s[i]);
	cr__stack_pool_drain(&pool);
}
END_TEST

START_TEST(debug_canary_detects_deep_use)
{
	cr__stack_pool pool = {.max = 2};
	struct cr__stack *s;

	ck_assert_int_eq(cr__stack_get(&pool, 64 * 1024, true, &s), 0);
	memset(s->lo + s->size / 2, 1, s->size / 2); /* half: fine */
	ck_assert(cr__stack_put(&pool, s));
	ck_assert_int_eq(cr__stack_get(&pool, 64 * 1024, true, &s), 0);
	memset(s->lo + 1024, 1, s->size - 1024); /* nearly all */
	ck_assert(!cr__stack_put(&pool, s));
	cr__stack_pool_drain(&pool);
}
END_TEST

static void one_per_slab(void) { cr__stack_set_cache(0, 1); }

static void defaults(void)
{
	cr__stack_set_cache(-1, -1);
	cr__stack_set_budget(-1);
}

static long maps_lines(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	long n = 0;
	int ch;

	ck_assert_ptr_nonnull(f);
	while ((ch = getc(f)) != EOF)
		if (ch == '\n')
			n++;
	fclose(f);
	return n;
}

#define MANY 2000

START_TEST(slabs_hold_many_stacks_per_mapping)
{
	cr__stack_pool pool = {.max = 64};
	static struct cr__stack *s[MANY];

	cr__stack_set_cache(0, -1); /* start from an empty cache */
	cr__stack_set_cache(-1, -1);
	long vmas0 = cr__stack_vmas_in_use(), lines0 = maps_lines();

	for (int i = 0; i < MANY; i++) {
		ck_assert_int_eq(cr__stack_get(&pool, 64 * 1024, false, &s[i]), 0);
		ck_assert_uint_eq(s[i]->size, 64 * 1024);
		s[i]->lo[0] = (char)i;              /* usable to the bottom */
		s[i]->lo[s[i]->size - 1] = (char)i; /* and to the top */
	}
	/* Distinct, non-overlapping, each with its own guard below it. */
	for (int i = 1; i < MANY; i++)
		ck_assert(s[i]->map >= s[i - 1]->lo + s[i - 1]->size ||
			  s[i]->lo + s[i]->size <= s[i - 1]->map);
	for (int i = 0; i < MANY; i++)
		ck_assert_int_eq(s[i]->lo[0], (char)i);
	if (cr__stack_guard_in_mapping()) {
		/* 4 + 8 + ... + 64 per slab: ~35 slabs, one mapping each, and
		 * the kernel sees no more (adjacent ones may merge). */
		ck_assert_int_le(cr__stack_vmas_in_use() - vmas0, 40);
		ck_assert_int_le(maps_lines() - lines0, 40);
	} else {
		ck_assert_int_eq(cr__stack_vmas_in_use() - vmas0, 2 * MANY);
	}
	long vmas1 = cr__stack_vmas_in_use();
	for (int i = 0; i < MANY; i++)
		cr__stack_put(&pool, s[i]);
	ck_assert_uint_le(pool.count, pool.max);
	cr__stack_pool_drain(&pool);
	/* Below its bound the cache keeps them: no munmap, no new mmap. */
	ck_assert_int_eq(cr__stack_vmas_in_use(), vmas1);
	for (int i = 0; i < MANY; i++)
		ck_assert_int_eq(cr__stack_get(&pool, 64 * 1024, false, &s[i]), 0);
	ck_assert_int_eq(cr__stack_vmas_in_use(), vmas1);
	for (int i = 0; i < MANY; i++)
		cr__stack_put(&pool, s[i]);
	cr__stack_pool_drain(&pool);
	/* Beyond the bound, wholly free slabs are unmapped. */
	cr__stack_set_cache(0, -1);
	ck_assert_int_eq(cr__stack_vmas_in_use(), vmas0);
}
END_TEST

START_TEST(cache_passes_stacks_between_pools)
{
	cr__stack_pool a = {.max = 4}, b = {.max = 4};
	struct cr__stack *s, *t;
	long vmas;

	ck_assert_int_eq(cr__stack_get(&a, 0, false, &s), 0);
	s->lo[s->size - 1] = 7;
	vmas = cr__stack_vmas_in_use();
	cr__stack_put(&a, s);
	cr__stack_pool_drain(&a); /* a loop closes */
	ck_assert_uint_eq(a.count, 0);
	ck_assert_int_eq(cr__stack_get(&b, 0, false, &t), 0); /* another loop */
	ck_assert_int_eq(cr__stack_vmas_in_use(), vmas);
	ck_assert_ptr_eq(t->slab, s->slab);
	ck_assert_uint_eq(t->size, CR__STACK_DEFAULT_SIZE);
	ck_assert_ptr_null(t->owner_name);
	cr__stack_put(&b, t);
	cr__stack_pool_drain(&b);
}
END_TEST

START_TEST(full_pool_gives_half_to_the_cache)
{
	cr__stack_pool none = {.max = 0}, pool = {.max = 8};
	struct cr__stack *s[9];

	for (int i = 0; i < 9; i++)
		ck_assert_int_eq(cr__stack_get(&none, 0, false, &s[i]), 0);
	ck_assert_uint_eq(none.count, 0);
	for (int i = 0; i < 8; i++)
		cr__stack_put(&pool, s[i]);
	ck_assert_uint_eq(pool.count, 8);
	cr__stack_put(&pool, s[8]);
	ck_assert_uint_eq(pool.count, 5);
	/* The warmest (last put) stays in the pool. */
	ck_assert_ptr_eq(pool.head, s[8]);
	cr__stack_pool_drain(&pool);
}
END_TEST

START_TEST(slab_budget_exhausted_gives_enomem)
{
	cr__stack_pool pool = {.max = 0};
	static struct cr__stack *s[200];
	int got = 0, rc = 0;

	/* Room for two more mappings: two slabs (or one stack with mprotect). */
	cr__stack_set_budget(cr__stack_vmas_in_use() + 2);
	for (int i = 0; i < 200; i++) {
		rc = cr__stack_get(&pool, 32 * 1024, false, &s[got]);
		if (rc < 0)
			break;
		got++;
	}
	ck_assert_int_eq(rc, -ENOMEM);
	ck_assert_msg(strstr(cr_last_error(), "max_map_count"), "%s", cr_last_error());
	if (cr__stack_guard_in_mapping())
		ck_assert_int_eq(got, 4 + 8);
	else
		ck_assert_int_eq(got, 1);
	cr__stack_put(&pool, s[0]);
	ck_assert_int_eq(cr__stack_get(&pool, 32 * 1024, false, &s[0]), 0);
	for (int i = 0; i < got; i++)
		cr__stack_put(&pool, s[i]);
	cr__stack_pool_drain(&pool);
}
END_TEST

/* A stack in the middle of a slab: its guard is the page right above the
 * stack below it. */
static void touch_middle_guard(void)
{
	cr__stack_pool pool = {.max = 0};
	struct cr__stack *s[3];

	for (int i = 0; i < 3; i++)
		if (cr__stack_get(&pool, 0, false, &s[i]) < 0)
			_exit(3);
	if (s[1]->slab != s[0]->slab && s[1]->slab != s[2]->slab)
		_exit(5); /* one stack per slab: nothing to test here */
	cr__stack_prepare_thread();
	s[1]->owner_name = "middle";
	cr__stack_running = s[1];
	memset(s[0]->lo, 1, s[0]->size); /* neighbours are plain memory */
	memset(s[2]->lo, 1, s[2]->size);
	((volatile char *)s[1]->lo)[-16] = 1;
	_exit(4); /* not reached */
}

/* Run fn in a child; returns its wait status and its stderr in buf. */
static int in_child(void (*fn)(void), char *buf, size_t len)
{
	int p[2], status;
	ssize_t n, off = 0;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		dup2(p[1], STDERR_FILENO);
		close(p[0]);
		fn();
		_exit(0);
	}
	close(p[1]);
	while (off < (ssize_t)len - 1 && (n = read(p[0], buf + off, len - 1 - (size_t)off)) > 0)
		off += n;
	buf[off] = '\0';
	close(p[0]);
	waitpid(pid, &status, 0);
	return status;
}

static void touch_guard(void)
{
	cr__stack_pool pool = {.max = 1};
	struct cr__stack *s;

	if (cr__stack_get(&pool, 0, false, &s) < 0)
		_exit(3);
	cr__stack_prepare_thread();
	s->owner_name = "guard-toucher";
	cr__stack_running = s;
	((volatile char *)s->lo)[-16] = 1;
	_exit(4); /* not reached */
}

START_TEST(guard_page_hit_dies_naming_the_task)
{
	char buf[1024];
	int status = in_child(touch_guard, buf, sizeof(buf));

	ck_assert_msg(!WIFEXITED(status) || WEXITSTATUS(status) != 4, "guard page not enforced");
	ck_assert_msg(!WIFEXITED(status) || WEXITSTATUS(status) != 0, "child survived");
	ck_assert_msg(strstr(buf, "stack overflow in task guard-toucher"), "stderr: %s", buf);
}
END_TEST

START_TEST(middle_guard_hit_dies_naming_the_task)
{
	char buf[1024];
	int status = in_child(touch_middle_guard, buf, sizeof(buf));

	if (WIFEXITED(status) && WEXITSTATUS(status) == 5) {
		ck_assert(!cr__stack_guard_in_mapping());
		return;
	}
	ck_assert_msg(!WIFEXITED(status) || WEXITSTATUS(status) != 4, "guard page not enforced");
	ck_assert_msg(!WIFEXITED(status) || WEXITSTATUS(status) != 0, "child survived");
	ck_assert_msg(strstr(buf, "stack overflow in task middle"), "stderr: %s", buf);
}
END_TEST

static void touch_other(void)
{
	cr__stack_pool pool = {.max = 1};
	struct cr__stack *s;
	volatile int *volatile bad = NULL;

	if (cr__stack_get(&pool, 0, false, &s) < 0)
		_exit(3);
	cr__stack_prepare_thread();
	cr__stack_running = s;
	*bad = 1; /* a plain NULL-page fault */
	_exit(4);
}

START_TEST(other_faults_are_not_called_overflows)
{
	char buf[1024];
	int status = in_child(touch_other, buf, sizeof(buf));

	ck_assert(!WIFEXITED(status) || WEXITSTATUS(status) != 4);
	ck_assert_msg(!strstr(buf, "stack overflow"), "stderr: %s", buf);
}
END_TEST

static Suite *stack_suite(void)
{
	Suite *s = suite_create("stack");
	TCase *tc = tcase_create("one");
	TCase *ts = tcase_create("slabs");

	tcase_add_test(tc, stack_is_reused_from_the_pool);
	tcase_add_test(tc, sizes_are_rounded_to_pages_with_a_minimum);
	tcase_add_test(tc, pool_is_bounded_and_unmaps_beyond);
	tcase_add_test(tc, budget_exhausted_gives_enomem_not_a_crash);
	tcase_add_test(tc, huge_stack_request_fails_cleanly);
	tcase_add_test(tc, debug_canary_detects_deep_use);
	tcase_add_test(tc, guard_page_hit_dies_naming_the_task);
	tcase_add_test(tc, other_faults_are_not_called_overflows);
	tcase_add_checked_fixture(tc, one_per_slab, defaults);
	suite_add_tcase(s, tc);
	tcase_add_test(ts, slabs_hold_many_stacks_per_mapping);
	tcase_add_test(ts, cache_passes_stacks_between_pools);
	tcase_add_test(ts, full_pool_gives_half_to_the_cache);
	tcase_add_test(ts, slab_budget_exhausted_gives_enomem);
	tcase_add_test(ts, guard_page_hit_dies_naming_the_task);
	tcase_add_test(ts, middle_guard_hit_dies_naming_the_task);
	tcase_add_checked_fixture(ts, defaults, defaults);
	suite_add_tcase(s, ts);
	return s;
}

int main(void) { return tu_main(stack_suite()); }
