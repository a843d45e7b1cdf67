/*
 * daemon.h — the daemon's one global state and the functions its files
 * offer each other.  crund is one process with one runner and one loop
 * thread: everything here is touched only on the loop thread, except the
 * few atomics of the watchdog (watchdog.c).
 */
#ifndef CRUND_DAEMON_H
#define CRUND_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include "crunner.h"
#include "crund/plugin.h"
#include "settings.h"
#include "jobs/jobs.h"
#include "plugins/plugins.h"

typedef struct crd_http crd_http;

typedef struct crd_daemon {
	crd_config cfg;
	cr_runner *runner;
	cr_loop *loop;      /* borrowed from the runner */
	cr_context *shared; /* the runner's shared context (borrowed) */
	crd_plugin_registry reg;
	crd_plugins_opts popts;
	crd_jobs jobs;
	crd_store *store; /* the job store (memory: or durable) */
	crd_http *http;
	int n_listen_fds;  /* socket activation: fds 3.. */
	bool force;        /* second signal: skip the grace */
	cr_event *stop_ev; /* set by the first signal */
	cr_task *starting; /* serve_main's task while plugins initialise (a signal cancels it) */
	double start_mono; /* loop time at start */
	double start_real; /* wall clock at start */
} crd_daemon;

extern crd_daemon crd_d;

/* plugins/host.c: the service table plugins reach through crund_job->api. */
extern const crund_host_api crd_host;

/* jobs/run.c: running a job as a task on the runner (the store's ops). */
int crd_exec_start(crd_jobrec *job, void *data);
void crd_exec_cancel(crd_jobrec *job, void *data);
/* Jobs whose task is still alive (a forced end at shutdown leaves some). */
size_t crd_exec_live_tasks(void);
/* Shutdown settles the records of the jobs still running (crd_jobs_abandon)
 * and leaves their tasks to the runner's close: job_done then leaves the
 * records alone. */
void crd_exec_abandon(void);
/* The jobs module's wake_at: crd_jobs_due() at wall-clock time `when`. */
void crd_exec_wake_at(double when, void *data);
void crd_exec_wake_stop(void);
/* The job runs and its end will be recorded within a loop turn or two: its
 * task has not had its first step yet, or has returned and its done
 * callback is queued.  A task waiting on something, or a queued job, is
 * not about to end.  (The HTTP layer keeps such a long-poll deferred
 * instead of parking it.) */
bool crd_exec_about_to_end(const crd_jobrec *job);

/* watchdog.c: loop heartbeat, stall detection, systemd WATCHDOG=1. */
int crd_watchdog_start(cr_loop *loop);
void crd_watchdog_stop(void);
/* Note the job whose coroutine runs now (stall reports name it). */
void crd_watchdog_job(const crd_jobrec *job);
/* The loop has not turned for over a second, or did not a moment ago. */
bool crd_watchdog_stalled(void);
double crd_watchdog_lag(void);     /* last measured loop lag, s */
double crd_watchdog_lag_max(void); /* the largest since start, s */

/* api/metrics.c: Prometheus text exposition into b. */
void crd_metrics_render(crd_buf *b);
/* api/metrics.c: a sample of the job counters for GET /v1/stats (once a
 * second, from the retention tick), and that answer's JSON into b. */
void crd_metrics_sample(void);
void crd_metrics_render_stats(crd_buf *b);

/* shutdown.c: the graceful close, run by serve_main after the stop event. */
int crd_shutdown_install_signals(cr_loop *loop);
void crd_shutdown_run(void); /* AWAITS */

#endif
