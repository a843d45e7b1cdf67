/*
 * core.c — libcrunner's side of the peer benchmarks ("Part A: runtime core").
 *
 *     bench/core --workload NAME [--quick]
 *
 * NAME: spawn, spawn_all, switch, switch1k, sleepers, ctxvar, executor,
 * runner (the peer workloads of bench-peers/core.py, same definitions and
 * the same N), or switch_raw (ours only: two tasks yielding to each other).
 * Prints exactly one JSON line on stdout with the fields core.py prints,
 * so bench-peers/run.sh --core can put us in the same tables as asyncio and
 * uvloop.  Errors go to stderr with a non-zero exit (run.sh skips the
 * workload then).
 *
 * Rules copied from core.py: one workload per process (peak RSS belongs to
 * it); CLOCK_MONOTONIC around the measured region only; the runner and its
 * loop are created before timing except in `runner`, which is about them;
 * no warm-up; ns_per_op = total_s * 1e9 / N; --quick divides the counts by
 * 10 (except batch sizes, the sleep time and the task count of switch1k).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "crunner.h"

/* ------------------------------------------------------------ report */

/* What a workload hands back to main(): parts, extras and totals.  The
 * fixed sizes are enough for every workload below (checked by add_*). */
enum { MAX_EXTRA = 16, MAX_PARTS = 2 };

struct extra {
	const char *key;
	const char *str; /* string value, or NULL for a number */
	double num;
};

struct part {
	const char *name;
	long n;
	double t_ns;
	double cpu_s; /* process CPU over the same region: on this
	               * shared 2-CPU VM less noisy than wall time */
	bool has_net;
	double net_ns_per_op; /* ctxvar only: minus the empty loop */
};

struct report {
	long n;
	double total_ns;
	struct extra extra[MAX_EXTRA];
	int nextra;
	struct part parts[MAX_PARTS];
	int nparts;
};

static void add_num(struct report *r, const char *key, double v)
{
	if (r->nextra == MAX_EXTRA)
		abort(); /* a programming error in this file, not a runtime one */
	r->extra[r->nextra++] = (struct extra){.key = key, .num = v};
}

static void add_str(struct report *r, const char *key, const char *v)
{
	if (r->nextra == MAX_EXTRA)
		abort();
	r->extra[r->nextra++] = (struct extra){.key = key, .str = v};
}

static struct part *add_part(struct report *r, const char *name, long n, double t_ns, double cpu_s)
{
	if (r->nparts == MAX_PARTS)
		abort();
	struct part *p = &r->parts[r->nparts++];
	*p = (struct part){.name = name, .n = n, .t_ns = t_ns, .cpu_s = cpu_s};
	return p;
}

/* ------------------------------------------------------------ sizes */

/* The workload definition (core.py's SIZES). */
static struct sizes {
	long spawn_n, spawn_batch;
	long spawn_all_n;
	long switch_n;
	long switch1k_tasks, switch1k_yields;
	long sleepers_n;
	double sleepers_s;
	long ctx_gets, ctx_sets;
	long exec_n, exec_batch;
	long runs, runner_runs;
} sz = {
	.spawn_n = 1000000,
	.spawn_batch = 10000,
	.spawn_all_n = 1000000,
	.switch_n = 5000000,
	.switch1k_tasks = 1000,
	.switch1k_yields = 5000,
	.sleepers_n = 100000,
	.sleepers_s = 1.0,
	.ctx_gets = 10000000,
	.ctx_sets = 1000000,
	.exec_n = 100000,
	.exec_batch = 1000,
	.runs = 10000,
	.runner_runs = 100000,
};

static void quick_sizes(void)
{
	/* core.py: every int but batch, sleep_s and tasks is divided by 10 */
	sz.spawn_n /= 10;
	sz.spawn_all_n /= 10;
	sz.switch_n /= 10;
	sz.switch1k_yields /= 10;
	sz.sleepers_n /= 10;
	sz.ctx_gets /= 10;
	sz.ctx_sets /= 10;
	sz.exec_n /= 10;
	sz.runs /= 10;
	sz.runner_runs /= 10;
}

/* ------------------------------------------------------------ helpers */

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* User + system CPU seconds of the whole process (executor threads too). */
static double cpu_now(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static long maxrss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss; /* KiB on Linux */
}

static long vmrss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

/* An empty counted loop the compiler cannot delete or vectorise: the
 * barrier claims to read i and clobber memory on every iteration.  Its
 * cost per iteration is what a C `for` adds around each measured call
 * (core.py reports the Python equivalent as empty_loop_ns_per_iter). */
static double empty_loop_ns(long n)
{
	double t0 = now_ns();

	for (long i = 0; i < n; i++)
		__asm__ volatile("" : : "r"(i) : "memory");
	return (now_ns() - t0) / (double)n;
}

static const char *prog = "bench/core";

static void report_error(const char *what, int rc)
{
	const char *msg = cr_last_error();

	fprintf(stderr, "%s: %s: %s%s%s\n", prog, what, cr_strerror(rc), *msg ? ": " : "", msg);
}

/* Spawn n tasks of fn(arg) on the running loop into tasks[].  On failure
 * the ones made are released and the code returned. */
static int spawn_n(cr_task **tasks, long n, cr_fn fn, void *arg)
{
	for (long i = 0; i < n; i++) {
		int rc = cr_spawn(fn, arg, NULL, &tasks[i]);
		if (rc < 0) {
			report_error("cr_spawn", rc);
			while (i-- > 0)
				tasks[i] = cr_task_unref(tasks[i]);
			return rc;
		}
	}
	return 0;
}

/* Gather tasks[0..n) and drop our references. */
static int gather_n(cr_task **tasks, long n)
{
	int rc = cr_gather(tasks, (size_t)n, NULL);

	if (rc < 0)
		report_error("cr_gather", rc);
	for (long i = 0; i < n; i++)
		tasks[i] = cr_task_unref(tasks[i]);
	return rc;
}

static int noop_fn(void *arg, void **ret_value)
{
	(void)arg;
	(void)ret_value;
	return 0;
}

/* Yield (long)arg times. */
static int yielder_fn(void *arg, void **ret_value)
{
	long n = (long)(intptr_t)arg;

	(void)ret_value;
	for (long i = 0; i < n; i++) {
		int rc = cr_yield();
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------ workloads */

/* n tasks of fn, created `batch` at a time, each batch gathered before the
 * next is created (spawn and executor).  Wall and CPU ns of the whole. */
static int batched(cr_fn fn, long n, long batch, double *ret_t, double *ret_cpu)
{
	cr_task **tasks = calloc((size_t)batch, sizeof *tasks);
	int rc = 0;

	if (!tasks)
		return -ENOMEM;
	double c0 = cpu_now();
	double t0 = now_ns();
	for (long k = 0; k < n / batch && rc >= 0; k++) {
		rc = spawn_n(tasks, batch, fn, NULL);
		if (rc >= 0)
			rc = gather_n(tasks, batch);
	}
	*ret_t = now_ns() - t0;
	*ret_cpu = cpu_now() - c0;
	free(tasks);
	return rc;
}

/* N trivial tasks, created in batches of `batch`, each batch gathered
 * before the next is created. */
static int w_spawn(void *arg, void **ret_value)
{
	struct report *r = arg;
	long n = sz.spawn_n, b = sz.spawn_batch;
	double t, cpu;
	int rc = batched(noop_fn, n, b, &t, &cpu);

	(void)ret_value;
	if (rc < 0)
		return rc;
	r->n = n;
	r->total_ns = t;
	add_num(r, "batch", (double)b);
	add_str(r, "mode", "batches via cr_gather");
	add_part(r, "spawn", n, t, cpu);
	return 0;
}

/* The same N tasks all created first, then one gather. */
static int w_spawn_all(void *arg, void **ret_value)
{
	struct report *r = arg;
	long n = sz.spawn_all_n;
	cr_task **tasks = calloc((size_t)n, sizeof *tasks);
	int rc;

	(void)ret_value;
	if (!tasks)
		return -ENOMEM;
	double c0 = cpu_now();
	double t0 = now_ns();
	rc = spawn_n(tasks, n, noop_fn, NULL);
	if (rc >= 0)
		rc = gather_n(tasks, n);
	double t = now_ns() - t0, cpu = cpu_now() - c0;
	free(tasks);
	if (rc < 0)
		return rc;
	r->n = n;
	r->total_ns = t;
	add_str(r, "mode", "all N created, then one cr_gather");
	add_part(r, "spawn_all", n, t, cpu);
	return 0;
}

static const char switch_note[] =
	"the loop skips the I/O poll while tasks are runnable (polls at bounded "
	"intervals), unlike asyncio/uvloop's one epoll_wait per iteration; with "
	"nothing else runnable cr_yield mostly returns at once (fast path, a full "
	"loop iteration only at intervals)";

/* One task yields N times while the root task joins it. */
static int w_switch(void *arg, void **ret_value)
{
	struct report *r = arg;
	long n = sz.switch_n;
	cr_task *t;
	int rc;

	(void)ret_value;
	double c0 = cpu_now();
	double t0 = now_ns();
	rc = cr_spawn(yielder_fn, (void *)(intptr_t)n, NULL, &t);
	if (rc < 0) {
		report_error("cr_spawn", rc);
		return rc;
	}
	rc = cr_task_join(t, NULL);
	double dt = now_ns() - t0, cpu = cpu_now() - c0;
	cr_task_unref(t);
	if (rc < 0) {
		report_error("cr_task_join", rc);
		return rc;
	}
	r->n = n;
	r->total_ns = dt;
	add_str(r, "note", switch_note);
	add_part(r, "switch", n, dt, cpu);
	return 0;
}

/* Ours only: two tasks yielding alternately (N yields in all), the
 * closest the public API gets to a bare coroutine ping-pong: each yield
 * is a switch out of one task and into the other through the scheduler. */
static int w_switch_raw(void *arg, void **ret_value)
{
	struct report *r = arg;
	long n = sz.switch_n;
	cr_task *tasks[2];
	int rc;

	(void)ret_value;
	double c0 = cpu_now();
	double t0 = now_ns();
	rc = spawn_n(tasks, 2, yielder_fn, (void *)(intptr_t)(n / 2));
	if (rc >= 0)
		rc = gather_n(tasks, 2);
	double t = now_ns() - t0, cpu = cpu_now() - c0;
	if (rc < 0)
		return rc;
	n = n / 2 * 2;
	r->n = n;
	r->total_ns = t;
	add_num(r, "tasks", 2);
	add_str(r, "note",
		"two tasks alternating through cr_yield; one yield = "
		"task -> scheduler -> other task, no I/O poll in between");
	add_part(r, "switch_raw", n, t, cpu);
	return 0;
}

/* `tasks` tasks, each yielding `yields` times, gathered at once. */
static int w_switch1k(void *arg, void **ret_value)
{
	struct report *r = arg;
	long nt = sz.switch1k_tasks, y = sz.switch1k_yields;
	cr_task **tasks = calloc((size_t)nt, sizeof *tasks);
	int rc;

	(void)ret_value;
	if (!tasks)
		return -ENOMEM;
	double c0 = cpu_now();
	double t0 = now_ns();
	rc = spawn_n(tasks, nt, yielder_fn, (void *)(intptr_t)y);
	if (rc >= 0)
		rc = gather_n(tasks, nt);
	double t = now_ns() - t0, cpu = cpu_now() - c0;
	free(tasks);
	if (rc < 0)
		return rc;
	r->n = nt * y;
	r->total_ns = t;
	add_num(r, "tasks", (double)nt);
	add_num(r, "yields_per_task", (double)y);
	add_str(r, "note", switch_note);
	add_part(r, "switch1k", nt * y, t, cpu);
	return 0;
}

static int sleeper_fn(void *arg, void **ret_value)
{
	(void)arg;
	(void)ret_value;
	return cr_sleep(sz.sleepers_s);
}

/* N tasks each sleeping sleep_s, all at once; memory per parked task. */
static int w_sleepers(void *arg, void **ret_value)
{
	struct report *r = arg;
	long n = sz.sleepers_n;
	double s = sz.sleepers_s;
	cr_task **tasks = calloc((size_t)n, sizeof *tasks);
	int rc;

	(void)ret_value;
	if (!tasks)
		return -ENOMEM;
	long base_peak = maxrss_kb();
	long base_rss = vmrss_kb();
	double c0 = cpu_now();
	double t0 = now_ns();
	rc = spawn_n(tasks, n, sleeper_fn, NULL);
	if (rc < 0) {
		free(tasks);
		return rc;
	}
	/* the root parks too: every task's first step (arming its timer)
	 * runs before the root resumes */
	rc = cr_sleep(s / 2 < 0.5 ? s / 2 : 0.5);
	long parked_rss = vmrss_kb();
	double t_parked = now_ns() - t0;
	if (rc < 0)
		report_error("cr_sleep", rc);
	int rc2 = gather_n(tasks, n);
	double t = now_ns() - t0, cpu = cpu_now() - c0;
	free(tasks);
	if (rc < 0 || rc2 < 0)
		return rc < 0 ? rc : rc2;
	long peak = maxrss_kb();
	double over_ns = t - s * 1e9;
	r->n = n;
	r->total_ns = t;
	add_num(r, "sleep_s", s);
	add_num(r, "wall_s", t / 1e9);
	add_num(r, "overhead_s", over_ns / 1e9);
	add_num(r, "parked_after_s", t_parked / 1e9);
	add_num(r, "baseline_maxrss_kb", (double)base_peak);
	add_num(r, "end_maxrss_kb", (double)peak);
	add_num(r, "bytes_per_task", (double)(peak - base_peak) * 1024 / (double)n);
	add_num(r, "baseline_vmrss_kb", (double)base_rss);
	add_num(r, "parked_vmrss_kb", (double)parked_rss);
	add_num(r, "bytes_per_task_vmrss", (double)(parked_rss - base_rss) * 1024 / (double)n);
	add_part(r, "overhead", n, over_ns, cpu);
	return 0;
}

/* Made here, freed by main() after the runner (and so the context holding
 * a value for it) is gone. */
static cr_ctxvar *bench_var;

/* Inside a task: `gets` gets of a set variable, then `sets` sets (no
 * tokens); the cost of an empty loop of the same length alongside. */
static int w_ctxvar(void *arg, void **ret_value)
{
	struct report *r = arg;
	long g = sz.ctx_gets, s = sz.ctx_sets;
	uintptr_t sink = 0;
	void *v;
	int rc;

	(void)ret_value;
	rc = cr_ctxvar_new("bench", true, (void *)0, &bench_var);
	if (rc < 0) {
		report_error("cr_ctxvar_new", rc);
		return rc;
	}
	rc = cr_ctxvar_set(bench_var, (void *)1, NULL);
	if (rc < 0) {
		report_error("cr_ctxvar_set", rc);
		return rc;
	}

	double c0 = cpu_now();
	double t0 = now_ns();
	for (long i = 0; i < g; i++) {
		cr_ctxvar_get(bench_var, &v);
		sink += (uintptr_t)v;
	}
	double tg = now_ns() - t0, cg = cpu_now() - c0;

	c0 = cpu_now();
	t0 = now_ns();
	for (long i = 0; i < s; i++) {
		rc = cr_ctxvar_set(bench_var, (void *)(intptr_t)i, NULL);
		if (rc < 0)
			break;
	}
	double ts = now_ns() - t0, cs = cpu_now() - c0;
	if (rc < 0) {
		report_error("cr_ctxvar_set", rc);
		return rc;
	}
	if (sink != (uintptr_t)g) {
		fprintf(stderr, "%s: cr_ctxvar_get returned a wrong value\n", prog);
		return -EINVAL;
	}

	double empty = empty_loop_ns(g);
	r->n = g + s;
	r->total_ns = tg + ts;
	add_num(r, "empty_loop_ns_per_iter", empty);
	struct part *p = add_part(r, "get", g, tg, cg);
	p->has_net = true;
	p->net_ns_per_op = tg / (double)g - empty;
	p = add_part(r, "set", s, ts, cs);
	p->has_net = true;
	p->net_ns_per_op = ts / (double)s - empty;
	return 0;
}

static int trivial_blocking(void *arg, void **ret_value)
{
	(void)arg;
	(void)ret_value;
	return 0;
}

/* cr_run_in_executor awaits, so each call is a task of its own. */
static int executor_call_fn(void *arg, void **ret_value)
{
	(void)arg;
	return cr_run_in_executor(trivial_blocking, NULL, ret_value);
}

/* N offloads to the default executor, `batch` in flight at a time; the
 * pool's threads start inside the timed region (first use). */
static int w_executor(void *arg, void **ret_value)
{
	struct report *r = arg;
	long n = sz.exec_n, b = sz.exec_batch;
	double t, cpu;
	int rc = batched(executor_call_fn, n, b, &t, &cpu);

	(void)ret_value;
	if (rc < 0)
		return rc;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	r->n = n;
	r->total_ns = t;
	add_num(r, "batch", (double)b);
	add_num(r, "max_workers", (double)(cpus + 4 < 32 ? cpus + 4 : 32));
	add_part(r, "executor", n, t, cpu);
	return 0;
}

static int trivial_fn(void *arg, void **ret_value)
{
	(void)arg;
	*ret_value = (void *)1;
	return 0;
}

/* Not inside a loop: (a) `runs` sequential cr_run(trivial) (create, run,
 * tear down a runner and its loop each time); (b) one runner, its loop
 * made before timing, `runner_runs` sequential cr_runner_run(trivial). */
static int w_runner(struct report *r)
{
	long ra = sz.runs, rb = sz.runner_runs;
	void *v = NULL;
	cr_runner *runner;
	cr_loop *loop;
	int rc = 0;

	double c0 = cpu_now();
	double t0 = now_ns();
	for (long i = 0; i < ra && rc >= 0; i++)
		rc = cr_run(trivial_fn, NULL, &v, NULL);
	double ta = now_ns() - t0, ca = cpu_now() - c0;
	if (rc < 0) {
		report_error("cr_run", rc);
		return rc;
	}
	if (v != (void *)1) {
		fprintf(stderr, "%s: cr_run returned a wrong value\n", prog);
		return -EINVAL;
	}

	rc = cr_runner_new(NULL, &runner);
	if (rc < 0) {
		report_error("cr_runner_new", rc);
		return rc;
	}
	rc = cr_runner_get_loop(runner, &loop);
	if (rc < 0) {
		report_error("cr_runner_get_loop", rc);
		cr_runner_free(runner);
		return rc;
	}
	v = NULL;
	c0 = cpu_now();
	t0 = now_ns();
	for (long i = 0; i < rb && rc >= 0; i++)
		rc = cr_runner_run(runner, trivial_fn, NULL, NULL, &v);
	double tb = now_ns() - t0, cb = cpu_now() - c0;
	int rc2 = cr_runner_close(runner);
	cr_runner_free(runner);
	if (rc < 0 || rc2 < 0) {
		report_error(rc < 0 ? "cr_runner_run" : "cr_runner_close", rc < 0 ? rc : rc2);
		return rc < 0 ? rc : rc2;
	}
	if (v != (void *)1) {
		fprintf(stderr, "%s: cr_runner_run returned a wrong value\n", prog);
		return -EINVAL;
	}
	r->n = ra + rb;
	r->total_ns = ta + tb;
	add_part(r, "asyncio.run", ra, ta, ca);
	add_part(r, "Runner.run", rb, tb, cb);
	return 0;
}

/* Run a workload as the root task of a runner whose loop exists before
 * timing (core.py: asyncio.run(top()), loop creation outside the timing). */
static int run_in_runner(cr_fn fn, struct report *r, char *backend, size_t backend_size)
{
	cr_runner *runner;
	cr_loop *loop;
	int rc;

	rc = cr_runner_new(NULL, &runner);
	if (rc < 0) {
		report_error("cr_runner_new", rc);
		return rc;
	}
	rc = cr_runner_get_loop(runner, &loop);
	if (rc < 0) {
		report_error("cr_runner_get_loop", rc);
		cr_runner_free(runner);
		return rc;
	}
	/* copied: the name may live in the loop, which close frees */
	snprintf(backend, backend_size, "%s", cr_loop_backend(loop) ? cr_loop_backend(loop) : "");
	rc = cr_runner_run(runner, fn, r, NULL, NULL);
	if (rc < 0)
		report_error("workload", rc);
	int rc2 = cr_runner_close(runner);
	if (rc2 < 0 && rc >= 0) {
		report_error("cr_runner_close", rc2);
		rc = rc2;
	}
	cr_runner_free(runner);
	return rc;
}

/* ------------------------------------------------------------ JSON out */

/* Numbers as Python's json would print them: integers without a point,
 * the rest with enough digits; non-finite as null. */
static void put_num(double v)
{
	if (!isfinite(v))
		fputs("null", stdout);
	else if (v == floor(v) && fabs(v) < 1e15)
		printf("%.0f", v);
	else
		printf("%.10g", v);
}

static void put_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void put_key(const char *k)
{
	put_str(k);
	fputs(": ", stdout);
}

static void put_metric(bool *first, const char *workload, const char *part, const char *suffix,
		       double v)
{
	char key[128];

	if (part)
		snprintf(key, sizeof key, "%s.%s.%s", workload, part, suffix);
	else
		snprintf(key, sizeof key, "%s.%s", workload, suffix);
	if (!*first)
		fputs(", ", stdout);
	*first = false;
	put_key(key);
	put_num(v);
}

static void print_report(const char *workload, bool quick, const char *backend, double probe,
			 const struct report *r)
{
	struct rusage ru;
	char version[32];

	getrusage(RUSAGE_SELF, &ru);
	snprintf(version, sizeof version, "%d.%d.%d", CR_VERSION_MAJOR, CR_VERSION_MINOR,
		 CR_VERSION_PATCH);
	putchar('{');
	put_key("workload");
	put_str(workload);
	fputs(", ", stdout);
	put_key("loop");
	put_str("crunner");
	fputs(", ", stdout);
	put_key("loop_version");
	put_str(version);
	fputs(", ", stdout);
	put_key("backend");
	put_str(backend);
	fputs(", ", stdout);
	put_key("quick");
	fputs(quick ? "true" : "false", stdout);
	fputs(", ", stdout);
	put_key("N");
	put_num((double)r->n);
	fputs(", ", stdout);
	put_key("total_s");
	put_num(r->total_ns / 1e9);
	fputs(", ", stdout);
	put_key("ns_per_op");
	if (r->nparts == 1)
		put_num(r->parts[0].t_ns / (double)r->parts[0].n);
	else
		fputs("null", stdout);
	/* Not "probe_empty_loop_ns": bench_util.py takes the smallest probe
	 * of all core records as the quiet reference, and a C loop's ~0.3 ns
	 * would mark every Python measurement as run in a slow episode. */
	fputs(", ", stdout);
	put_key("probe_c_empty_loop_ns");
	put_num(probe);
	fputs(", ", stdout);
	put_key("peak_rss_kb");
	put_num((double)ru.ru_maxrss);
	fputs(", ", stdout);
	put_key("minor_faults");
	put_num((double)ru.ru_minflt);
	fputs(", ", stdout);
	put_key("cpu_user_s");
	put_num((double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6);
	fputs(", ", stdout);
	put_key("cpu_sys_s");
	put_num((double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
	for (int i = 0; i < r->nextra; i++) {
		fputs(", ", stdout);
		put_key(r->extra[i].key);
		if (r->extra[i].str)
			put_str(r->extra[i].str);
		else
			put_num(r->extra[i].num);
	}
	fputs(", ", stdout);
	put_key("parts");
	putchar('[');
	for (int i = 0; i < r->nparts; i++) {
		const struct part *p = &r->parts[i];
		if (i)
			fputs(", ", stdout);
		putchar('{');
		put_key("name");
		put_str(p->name);
		fputs(", ", stdout);
		put_key("N");
		put_num((double)p->n);
		fputs(", ", stdout);
		put_key("total_s");
		put_num(p->t_ns / 1e9);
		fputs(", ", stdout);
		put_key("ns_per_op");
		put_num(p->t_ns / (double)p->n);
		fputs(", ", stdout);
		put_key("cpu_s");
		put_num(p->cpu_s);
		fputs(", ", stdout);
		put_key("cpu_ns_per_op");
		put_num(p->cpu_s * 1e9 / (double)p->n);
		if (p->has_net) {
			fputs(", ", stdout);
			put_key("net_ns_per_op");
			put_num(p->net_ns_per_op);
		}
		putchar('}');
	}
	putchar(']');

	/* flat metrics, keyed exactly as core.py keys them */
	bool first = true;
	fputs(", ", stdout);
	put_key("metrics");
	putchar('{');
	for (int i = 0; i < r->nparts; i++) {
		const struct part *p = &r->parts[i];
		bool own = strcmp(p->name, workload) == 0;
		put_metric(&first, workload, own ? NULL : p->name, "ns_per_op",
			   p->t_ns / (double)p->n);
		put_metric(&first, workload, own ? NULL : p->name, "cpu_ns_per_op",
			   p->cpu_s * 1e9 / (double)p->n);
	}
	put_metric(&first, workload, NULL, "peak_rss_kb", (double)ru.ru_maxrss);
	for (int i = 0; i < r->nextra; i++) {
		const struct extra *e = &r->extra[i];
		if (strcmp(workload, "sleepers") == 0 && !e->str &&
		    (strcmp(e->key, "overhead_s") == 0 || strcmp(e->key, "bytes_per_task") == 0 ||
		     strcmp(e->key, "bytes_per_task_vmrss") == 0))
			put_metric(&first, workload, NULL, e->key, e->num);
	}
	for (int i = 0; i < r->nparts; i++)
		if (r->parts[i].has_net)
			put_metric(&first, workload, r->parts[i].name, "net_ns_per_op",
				   r->parts[i].net_ns_per_op);
	fputs("}}\n", stdout);
	fflush(stdout);
}

/* ------------------------------------------------------------ main */

static const struct {
	const char *name;
	cr_fn fn; /* NULL: runner, which runs outside any loop */
} workloads[] = {
	{"spawn", w_spawn},       {"spawn_all", w_spawn_all}, {"switch", w_switch},
	{"switch1k", w_switch1k}, {"sleepers", w_sleepers},   {"ctxvar", w_ctxvar},
	{"executor", w_executor}, {"runner", NULL},           {"switch_raw", w_switch_raw},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: %s --workload NAME [--quick]\nNAME:", prog);
	for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++)
		fprintf(f, " %s", workloads[i].name);
	fputc('\n', f);
}

int main(int argc, char **argv)
{
	const char *workload = NULL;
	bool quick = false;
	int which = -1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--workload") == 0 && i + 1 < argc) {
			workload = argv[++i];
		} else if (strcmp(argv[i], "--quick") == 0) {
			quick = true;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "%s: unknown argument '%s'\n", prog, argv[i]);
			usage(stderr);
			return 2;
		}
	}
	for (size_t i = 0; workload && i < sizeof workloads / sizeof workloads[0]; i++)
		if (strcmp(workload, workloads[i].name) == 0)
			which = (int)i;
	if (which < 0) {
		if (workload)
			fprintf(stderr, "%s: unknown workload '%s'\n", prog, workload);
		usage(stderr);
		return 2;
	}
	if (quick)
		quick_sizes();

	/* speed probe, outside any timed region (see print_report) */
	double probe = empty_loop_ns(2000000);

	static struct report r; /* static: zeroed, off the stack */
	char backend[32] = "";
	int rc;
	if (workloads[which].fn)
		rc = run_in_runner(workloads[which].fn, &r, backend, sizeof backend);
	else
		rc = w_runner(&r);
	if (bench_var)
		cr_ctxvar_free(bench_var);
	if (rc < 0)
		return 1;
	print_report(workload, quick, backend, probe, &r);
	return 0;
}
