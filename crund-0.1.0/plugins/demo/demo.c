/*
 * demo.c — the bundled demo plugin: one job per thing a plugin can do.
 *
 * It is the example plugin authors copy, and the fixture the daemon's
 * tests and the end-to-end tests drive, so every job is small and does
 * exactly one thing:
 *
 *   noop      returns {"ok": true}
 *   sleep     awaits cr_sleep(seconds)                   → {"slept": seconds}
 *   echo      returns its argument                       → value
 *   fail      fails with a message (error code plugin_error)
 *   counter   +1 on a context variable                   → {"count": n}
 *   fanout    n child tasks sleeping, gathered           → {"children": n}
 *   compute   prime sieve on an executor thread          → {"primes": count}
 *   progress  progress + log line per step               → {"steps": steps}
 *   linger    on cancellation, awaits its cleanup first
 *   hog       blocks the loop thread on purpose (stall detection)
 *
 * Only crund/plugin.h (the daemon's services) and crunner.h (awaiting)
 * are used: a plugin never links against the daemon.
 */
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <crund/plugin.h>

/* Plugin state made by init, handed to every job, freed by fini. */
struct demo_state {
	cr_ctxvar *counter; /* value: the count, as intptr_t */
};

/* Set the result; a NULL value (json_pack failed) is out of memory. */
static int set_result(crund_job *job, json_t *v)
{
	if (!v)
		return -ENOMEM;
	return crund_job_set_result(job, v);
}

static double num_arg(crund_job *job, const char *name)
{
	return json_number_value(json_object_get(crund_job_args(job), name));
}

static json_int_t int_arg(crund_job *job, const char *name)
{
	return json_integer_value(json_object_get(crund_job_args(job), name));
}

/* ----------------------------------------------------------- noop */

static int job_noop(crund_job *job) { return set_result(job, json_pack("{s:b}", "ok", 1)); }

/* ---------------------------------------------------------- sleep */

static int job_sleep(crund_job *job)
{
	double seconds = num_arg(job, "seconds");
	int rc = cr_sleep(seconds);
	if (rc < 0)
		return rc; /* -ECANCELED: cancelled (or timed out) while asleep */
	return set_result(job, json_pack("{s:f}", "slept", seconds));
}

/* ----------------------------------------------------------- echo */

static int job_echo(crund_job *job)
{
	/* The arguments are borrowed: the result gets its own copy. */
	return set_result(job, json_deep_copy(json_object_get(crund_job_args(job), "value")));
}

/* ----------------------------------------------------------- fail */

static int job_fail(crund_job *job)
{
	const char *message = json_string_value(json_object_get(crund_job_args(job), "message"));
	return crund_job_fail(job, NULL, "%s", message);
}

/* -------------------------------------------------------- counter */

/* The count lives in a context variable, so what a job sees depends on
 * the context it runs in: jobs in the runner's shared context (the
 * default) count 1, 2, 3...; a job in an isolated copy starts from the
 * shared value at submission and its +1 is seen by nobody else. */
static int job_counter(crund_job *job)
{
	struct demo_state *st = crund_job_plugin_state(job);
	void *v = NULL;
	int rc = cr_ctxvar_get(st->counter, &v);
	if (rc < 0)
		return rc;
	intptr_t n = (intptr_t)v + 1;
	rc = cr_ctxvar_set(st->counter, (void *)n, NULL);
	if (rc < 0)
		return rc;
	return set_result(job, json_pack("{s:I}", "count", (json_int_t)n));
}

/* --------------------------------------------------------- fanout */

static int fanout_child(void *arg, void **ret_value)
{
	const double *seconds = arg;
	return cr_sleep(*seconds);
}

static int job_fanout(crund_job *job)
{
	size_t n = (size_t)int_arg(job, "n");
	/* Children read it until gather returns, and gather returns only
	 * when all of them ended: the job's stack is a safe home. */
	double seconds = num_arg(job, "seconds");
	cr_task **tasks = calloc(n, sizeof *tasks);
	if (!tasks)
		return -ENOMEM;
	size_t spawned = 0;
	int rc = 0;
	for (; spawned < n; spawned++) {
		rc = cr_spawn(fanout_child, &seconds, NULL, &tasks[spawned]);
		if (rc < 0)
			break;
	}
	if (rc < 0) {
		/* Could not start them all: stop the ones that did start
		 * and wait for them before reporting. */
		for (size_t i = 0; i < spawned; i++)
			cr_task_cancel(tasks[i], "fanout failed to start");
		cr_gather(tasks, spawned, NULL);
	} else {
		/* If this job is cancelled, gather cancels every child and
		 * waits for them, then returns -ECANCELED. */
		rc = cr_gather(tasks, n, NULL);
	}
	for (size_t i = 0; i < spawned; i++)
		cr_task_unref(tasks[i]);
	free(tasks);
	if (rc < 0)
		return rc;
	return set_result(job, json_pack("{s:I}", "children", (json_int_t)n));
}

/* -------------------------------------------------------- compute */

/* Count primes below n (Eratosthenes, one bit per number).  Runs on an
 * executor thread, so it must not call cr_ functions.  If the job is
 * cancelled, cr_run_in_executor() returns -ECANCELED at once while this
 * may still run (or never start): so nothing here may point into the
 * job's stack or be owned by the job.  The input travels in the pointer
 * itself and the count comes back the same way; the only memory is the
 * sieve's own, freed here. */
static int sieve_run(void *arg, void **ret_value)
{
	size_t n = (size_t)(uintptr_t)arg;
	unsigned char *composite = calloc(n / 8 + 1, 1);
	if (!composite)
		return -ENOMEM;
	intptr_t count = 0;
	for (size_t i = 2; i < n; i++) {
		if (composite[i / 8] & (1u << (i % 8)))
			continue;
		count++;
		if (i > (n - 1) / i)
			continue; /* i*i >= n: nothing left to cross out */
		for (size_t k = i * i; k < n; k += i)
			composite[k / 8] |= (unsigned char)(1u << (k % 8));
	}
	free(composite);
	*ret_value = (void *)count;
	return 0;
}

static int job_compute(crund_job *job)
{
	size_t n = (size_t)int_arg(job, "n");
	void *count = NULL;
	int rc = cr_run_in_executor(sieve_run, (void *)(uintptr_t)n, &count);
	if (rc < 0)
		return rc;
	return set_result(job, json_pack("{s:I}", "primes", (json_int_t)(intptr_t)count));
}

/* ------------------------------------------------------- progress */

static int job_progress(crund_job *job)
{
	json_int_t steps = int_arg(job, "steps");
	double interval = num_arg(job, "interval");
	for (json_int_t i = 1; i <= steps; i++) {
		char msg[64];
		snprintf(msg, sizeof msg, "step %lld/%lld", (long long)i, (long long)steps);
		crund_job_progress(job, (double)i / (double)steps, msg);
		crund_job_log(job, CRUND_LOG_INFO, "%s done", msg);
		int rc = cr_sleep(interval);
		if (rc < 0)
			return rc;
	}
	return set_result(job, json_pack("{s:I}", "steps", steps));
}

/* --------------------------------------------------------- linger */

/* Cancellation arrives as -ECANCELED from the await in progress, and
 * only once: the cleanup below may await again (here it just sleeps, as
 * a real plugin would flush or close a connection) before the job
 * reports that it was cancelled. */
static int job_linger(crund_job *job)
{
	double seconds = num_arg(job, "seconds");
	int rc = cr_sleep(seconds);
	if (rc == -ECANCELED) {
		crund_job_log(job, CRUND_LOG_INFO, "cleaning up");
		rc = cr_sleep(num_arg(job, "cleanup_seconds"));
		crund_job_log(job, CRUND_LOG_INFO,
			      rc == 0 ? "cleanup done" : "cleanup interrupted");
		return -ECANCELED;
	}
	if (rc < 0)
		return rc;
	return set_result(job, json_pack("{s:f}", "lingered", seconds));
}

/* ------------------------------------------------------------ hog */

/* What a plugin must NOT do: spin on the loop thread without awaiting.
 * Every other job and every HTTP request waits meanwhile; the daemon's
 * stall detection should notice and say so. */
static int job_hog(crund_job *job)
{
	double seconds = num_arg(job, "seconds");
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9 <
		 seconds);
	return set_result(job, json_pack("{s:f}", "hogged", seconds));
}

/* ------------------------------------------------------- the table */

static const crund_arg_spec sleep_args[] = {
	{.name = "seconds",
	 .type = CRUND_ARG_NUMBER,
	 .required = true,
	 .description = "how long to sleep, in seconds",
	 .has_range = true,
	 .min = 0,
	 .max = 3600},
};
static const crund_arg_spec echo_args[] = {
	{.name = "value",
	 .type = CRUND_ARG_ANY,
	 .required = true,
	 .description = "any JSON value, returned as the result"},
};
static const crund_arg_spec fail_args[] = {
	{.name = "message",
	 .type = CRUND_ARG_STRING,
	 .default_json = "\"failed on purpose\"",
	 .description = "the failure message"},
};
static const crund_arg_spec fanout_args[] = {
	{.name = "n",
	 .type = CRUND_ARG_INTEGER,
	 .default_json = "10",
	 .description = "number of child tasks",
	 .has_range = true,
	 .min = 1,
	 .max = 10000},
	{.name = "seconds",
	 .type = CRUND_ARG_NUMBER,
	 .default_json = "0.1",
	 .description = "how long each child sleeps",
	 .has_range = true,
	 .min = 0,
	 .max = 3600},
};
static const crund_arg_spec compute_args[] = {
	{.name = "n",
	 .type = CRUND_ARG_INTEGER,
	 .default_json = "1000000",
	 .description = "count the primes below n",
	 .has_range = true,
	 .min = 2,
	 .max = 100000000},
};
static const crund_arg_spec progress_args[] = {
	{.name = "steps",
	 .type = CRUND_ARG_INTEGER,
	 .default_json = "5",
	 .description = "number of steps",
	 .has_range = true,
	 .min = 1,
	 .max = 10000},
	{.name = "interval",
	 .type = CRUND_ARG_NUMBER,
	 .default_json = "0.1",
	 .description = "seconds between steps",
	 .has_range = true,
	 .min = 0,
	 .max = 60},
};
static const crund_arg_spec linger_args[] = {
	{.name = "seconds",
	 .type = CRUND_ARG_NUMBER,
	 .default_json = "60",
	 .description = "how long to sleep before finishing",
	 .has_range = true,
	 .min = 0,
	 .max = 86400},
	{.name = "cleanup_seconds",
	 .type = CRUND_ARG_NUMBER,
	 .default_json = "1",
	 .description = "how long the cleanup takes once cancelled",
	 .has_range = true,
	 .min = 0,
	 .max = 3600},
};
static const crund_arg_spec hog_args[] = {
	{.name = "seconds",
	 .type = CRUND_ARG_NUMBER,
	 .default_json = "1",
	 .description = "how long to block the loop thread",
	 .has_range = true,
	 .min = 0,
	 .max = 60},
};

#define ARGS(a) .args = a, .n_args = sizeof(a) / sizeof((a)[0])

/* CRUND_JOB_RERUN_SAFE: the job may run again after crund died while it
 * ran (it has no effect outside its result).  counter and hog do not say
 * so: counter's effect on the shared context would count twice, and hog
 * is not something to repeat. */
static const crund_job_spec demo_jobs[] = {
	{.name = "noop",
	 .flags = CRUND_JOB_RERUN_SAFE,
	 .description = "do nothing, return {\"ok\": true}",
	 .run = job_noop},
	{.name = "sleep",
	 .flags = CRUND_JOB_RERUN_SAFE,
	 .description = "sleep without blocking the loop",
	 .run = job_sleep,
	 ARGS(sleep_args)},
	{.name = "echo",
	 .flags = CRUND_JOB_RERUN_SAFE,
	 .description = "return the value given",
	 .run = job_echo,
	 ARGS(echo_args)},
	{.name = "fail",
	 .flags = CRUND_JOB_RERUN_SAFE,
	 .description = "fail with a message (error code plugin_error)",
	 .run = job_fail,
	 ARGS(fail_args)},
	{.name = "counter",
	 .description = "add one to a context variable: shared jobs count 1, 2, 3...; "
			"isolated jobs do not affect the others",
	 .run = job_counter},
	{.name = "fanout",
	 .flags = CRUND_JOB_RERUN_SAFE,
	 .description = "spawn n child tasks that sleep, and gather them",
	 .run = job_fanout,
	 ARGS(fanout_args)},
	{.name = "compute",
	 .flags = CRUND_JOB_RERUN_SAFE,
	 .description = "count primes below n on an executor thread (the loop stays responsive)",
	 .run = job_compute,
	 ARGS(compute_args)},
	{.name = "progress",
	 .flags = CRUND_JOB_RERUN_SAFE,
	 .description = "report progress and a log line at each step",
	 .run = job_progress,
	 ARGS(progress_args)},
	{.name = "linger",
	 .flags = CRUND_JOB_RERUN_SAFE,
	 .description = "sleep; when cancelled, await a cleanup before ending cancelled",
	 .run = job_linger,
	 ARGS(linger_args)},
	{.name = "hog",
	 .description = "block the loop thread on purpose (for stall detection)",
	 .run = job_hog,
	 ARGS(hog_args)},
};

/* ------------------------------------------------------ init / fini */

static int demo_init(const crund_host_api *host, void **ret_state)
{
	struct demo_state *st = calloc(1, sizeof *st);
	if (!st)
		return -ENOMEM;
	int rc = cr_ctxvar_new("demo.counter", true, NULL, &st->counter);
	if (rc < 0) {
		free(st);
		return rc;
	}
	crund_host_log(host, CRUND_LOG_INFO, "demo plugin ready: %zu jobs",
		       sizeof demo_jobs / sizeof demo_jobs[0]);
	*ret_state = st;
	return 0;
}

static void demo_fini(const crund_host_api *host, void *state)
{
	struct demo_state *st = state;
	/* No job runs any more: nothing reads the variable again. */
	cr_ctxvar_free(st->counter);
	free(st);
	crund_host_log(host, CRUND_LOG_INFO, "demo plugin stopped");
}

CRUND_PLUGIN_DEFINE(.name = "demo", .version = "1.0.0",
		    .description = "demonstration jobs: sleep, echo, fail, counter, fanout, "
				   "compute, progress, linger, hog",
		    .jobs = demo_jobs, .n_jobs = sizeof demo_jobs / sizeof demo_jobs[0],
		    .init = demo_init, .fini = demo_fini);
