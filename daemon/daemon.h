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

typedef struct crund_http crund_http;

typedef struct crund_daemon {
	crund_config cfg;
	cr_runner *runner;
	cr_loop *loop;      /* borrowed from the runner */
	cr_context *shared; /* the runner's shared context (borrowed) */
	crund_plugin_registry reg;
	crund_plugins_opts popts;
	crund_jobs jobs;
	crund_http *http;
	int n_listen_fds;  /* socket activation: fds 3.. */
	bool draining;     /* first signal seen */
	bool force;        /* second signal: skip the grace */
	cr_event *stop_ev; /* set by the first signal */
	double start_mono; /* loop time at start */
	double start_real; /* wall clock at start */
} crund_daemon;

extern crund_daemon crund_d;

/* plugins/host.c: the service table plugins reach through crund_job->api. */
extern const crund_host_api crund_host;

/* jobs/run.c: running a job as a task on the runner (the store's ops). */
int crund_exec_start(crund_jobrec *job, void *data);
void crund_exec_cancel(crund_jobrec *job, void *data);
/* Jobs whose task is still alive (a forced end at shutdown leaves some). */
size_t crund_exec_live_tasks(void);

/* watchdog.c: loop heartbeat, stall detection, systemd WATCHDOG=1. */
int crund_watchdog_start(cr_loop *loop);
void crund_watchdog_stop(void);
/* Note the job whose coroutine runs now (stall reports name it). */
void crund_watchdog_job(const crund_jobrec *job);
/* The loop has not turned for over a second, or did not a moment ago. */
bool crund_watchdog_stalled(void);
double crund_watchdog_lag(void); /* last measured loop lag, s */

/* api/metrics.c */
void crund_metrics_count_status(unsigned status);
/* Prometheus text exposition into b. */
void crund_metrics_render(crund_buf *b);

/* shutdown.c: the graceful close, run by serve_main after the stop event. */
int crund_shutdown_install_signals(cr_loop *loop);
void crund_shutdown_run(void); /* AWAITS */

#endif
