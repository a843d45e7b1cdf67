/*
 * coro-switch.c — the bare context switch under libcrunner's tasks.
 *
 *     bench/coro-switch [--quick]
 *
 * Built from lib/coro.c and the per-architecture switch directly (those
 * symbols are internal, not exported by libcrunner.so): the main stack and
 * one coroutine hand control back and forth N times with
 * cr__coro_switch(), nothing else.  This is the floor under bench/core's
 * switch figures; the difference is the scheduler (ready queue, loop
 * iteration, clock read, cancellation checks).  Prints one JSON line like
 * bench/core: N round trips, ns per switch (one direction) and per round
 * trip.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "coro.h"

enum { STACK_SIZE = 64 * 1024 };

static cr__coro main_coro, peer_coro;

/* The peer: switch straight back, forever.  It is never resumed after the
 * last round trip, so it never needs to end (its stack is simply freed). */
static void peer_entry(void *arg)
{
	(void)arg;
	for (;;)
		cr__coro_switch(&peer_coro, &main_coro);
}

/* Process CPU seconds: on a shared VM, wall time includes time spent
 * descheduled. */
static double cpu_now(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long n = 20000000; /* round trips */
	bool quick = false;
	void *stack;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			quick = true;
			n /= 10;
		} else {
			fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
			return 2;
		}
	}
	stack = aligned_alloc(64, STACK_SIZE);
	if (!stack) {
		fprintf(stderr, "%s: out of memory\n", argv[0]);
		return 1;
	}
	cr__coro_init(&peer_coro, stack, STACK_SIZE, peer_entry, NULL);
	cr__coro_switch(&main_coro, &peer_coro); /* start it (not timed) */

	double c0 = cpu_now();
	double t0 = now_ns();
	for (long i = 0; i < n; i++)
		cr__coro_switch(&main_coro, &peer_coro);
	double t = now_ns() - t0, cpu = cpu_now() - c0;

	printf("{\"workload\": \"coro_switch\", \"loop\": \"crunner\", \"quick\": %s, "
	       "\"N\": %ld, \"total_s\": %.9f, \"ns_per_switch\": %.4f, "
	       "\"ns_per_round_trip\": %.4f, \"cpu_s\": %.6f, "
	       "\"cpu_ns_per_switch\": %.4f, \"switch\": \"%s\"}\n",
	       quick ? "true" : "false", n, t / 1e9, t / (2.0 * (double)n), t / (double)n, cpu,
	       cpu * 1e9 / (2.0 * (double)n), CORO_SWITCH_KIND);
	free(stack);
	return 0;
}
