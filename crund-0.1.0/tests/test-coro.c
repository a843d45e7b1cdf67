/*
 * test-coro.c — the raw context switch (built from lib/coro.c and the
 * assembly directly: cr__ symbols are not exported by the library).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

#include "testutil.h"
#include "coro.h"

#define STK (128 * 1024)

static cr__coro main_c, a_c, b_c;
static int trace[32], ntrace;

static void a_entry(void *arg)
{
	int base = (int)(intptr_t)arg;

	for (int i = 0; i < 3; i++) {
		trace[ntrace++] = base + i;
		cr__coro_switch(&a_c, &b_c);
	}
	trace[ntrace++] = -1;
	cr__coro_switch_final(&a_c, &main_c);
}

static void b_entry(void *arg)
{
	int base = (int)(intptr_t)arg;

	for (int i = 0; i < 3; i++) {
		trace[ntrace++] = base + i;
		cr__coro_switch(&b_c, &a_c);
	}
	cr__coro_switch_final(&b_c, &main_c);
}

static void *stack_new(void)
{
	void *p = mmap(NULL, STK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert(p != MAP_FAILED);
#ifdef HAVE_VALGRIND_VALGRIND_H
	/* Never deregistered: the test process is short-lived. */
	VALGRIND_STACK_REGISTER(p, (char *)p + STK);
#endif
	return p;
}

START_TEST(coroutines_switch_back_and_forth_directly)
{
	void *sa = stack_new(), *sb = stack_new();

	ntrace = 0;
	cr__coro_init(&a_c, sa, STK, a_entry, (void *)10);
	cr__coro_init(&b_c, sb, STK, b_entry, (void *)20);
	cr__coro_switch(&main_c, &a_c);
	/* a, b, a, b, a, b, a(end) */
	int want[] = {10, 20, 11, 21, 12, 22, -1};
	ck_assert_int_eq(ntrace, 7);
	for (int i = 0; i < 7; i++)
		ck_assert_int_eq(trace[i], want[i]);
	munmap(sa, STK);
	munmap(sb, STK);
}
END_TEST

static cr__coro fp_c;
static volatile double fp_seen;

static double fp_work(double x)
{
	/* Keeps values in callee-saved and FP registers across a switch. */
	double a = x * 1.5, b = x + 2.25;
	long i1 = (long)x * 3, i2 = (long)x + 7, i3 = (long)x ^ 5;

	cr__coro_switch(&fp_c, &main_c);
	return a + b + (double)(i1 + i2 + i3);
}

static void fp_entry(void *arg)
{
	(void)arg;
	fp_seen = fp_work(4.0);
	cr__coro_switch_final(&fp_c, &main_c);
}

START_TEST(values_live_across_a_switch_survive)
{
	void *s = stack_new();
	double x = 3.0, y = 0.5;
	long k = 99;

	cr__coro_init(&fp_c, s, STK, fp_entry, NULL);
	cr__coro_switch(&main_c, &fp_c);
	x *= 2;
	k += 1;
	cr__coro_switch(&main_c, &fp_c);
	/* a=6, b=6.25, i1=12, i2=11, i3=1 */
	ck_assert(fp_seen == 6.0 + 6.25 + 24.0);
	ck_assert(x == 6.0 && y == 0.5 && k == 100);
	munmap(s, STK);
}
END_TEST

static cr__coro deep_c;
static int deep_result;

static int recurse(int n)
{
	volatile char pad[256];

	pad[0] = (char)n;
	return n == 0 ? 0 : recurse(n - 1) + 1 + (pad[0] - (char)n);
}

static void deep_entry(void *arg)
{
	deep_result = recurse((int)(intptr_t)arg);
	cr__coro_switch_final(&deep_c, &main_c);
}

START_TEST(coroutine_can_use_most_of_its_stack)
{
	void *s = stack_new();

	cr__coro_init(&deep_c, s, STK, deep_entry, (void *)300); /* ~90 KiB */
	cr__coro_switch(&main_c, &deep_c);
	ck_assert_int_eq(deep_result, 300);
	munmap(s, STK);
}
END_TEST

static Suite *coro_suite(void)
{
	Suite *s = suite_create("coro");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, coroutines_switch_back_and_forth_directly);
	tcase_add_test(tc, values_live_across_a_switch_survive);
	tcase_add_test(tc, coroutine_can_use_most_of_its_stack);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return tu_main(coro_suite()); }
