/*
 * bench/spawn-floor.c — the machine's floor for bench/exec.sh: how many
 * times a second a bare C program can run argv, N times with C children
 * at once (posix_spawn, then wait), with nothing else: no loop, no HTTP,
 * no job records.  No job runner spawning the same program can beat it on
 * the same machine; bench/exec.py puts crund's and asyncio's rates beside
 * it.  Prints one JSON line.
 *
 *   spawn-floor N C PROGRAM [ARG...]
 */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: spawn-floor N CONCURRENCY PROGRAM [ARG...]\n");
		return 2;
	}
	long n = strtol(argv[1], NULL, 10), conc = strtol(argv[2], NULL, 10);
	if (n < 1 || conc < 1) {
		fprintf(stderr, "spawn-floor: N and CONCURRENCY must be positive\n");
		return 2;
	}
	long started = 0, done = 0, inflight = 0, failures = 0;
	double t0 = now();
	while (done < n) {
		while (started < n && inflight < conc) {
			pid_t pid;
			int rc = posix_spawn(&pid, argv[3], NULL, NULL, argv + 3, environ);
			if (rc != 0) {
				fprintf(stderr, "spawn-floor: %s: %s\n", argv[3], strerror(rc));
				return 1;
			}
			started++;
			inflight++;
		}
		int status;
		pid_t w = wait(&status);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			perror("spawn-floor: wait");
			return 1;
		}
		done++;
		inflight--;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failures++;
	}
	double s = now() - t0;
	printf("{\"impl\": \"floor\", \"jobs\": %ld, \"concurrency\": %ld, \"seconds\": %.4f, "
	       "\"jobs_per_s\": %.1f, \"failures\": %ld}\n",
	       n, conc, s, (double)n / s, failures);
	return failures ? 1 : 0;
}
