/*
 * shutdown.c — the graceful close (docs/ARCHITECTURE.md §4.1).
 *
 * SIGTERM or SIGINT: tell systemd STOPPING=1, refuse new jobs (503),
 * cancel the queued ones ("shutdown"), give the running ones --grace
 * seconds, then cancel them and await their cleanup for a bounded time.
 * A job whose task still does not end is settled anyway, as if it had
 * stopped (crd_jobs_abandon: queued for the next start, or cancelled),
 * and its task abandoned to the runner's close.  Waiting clients get the
 * final state before their connections close.  A second signal skips
 * what is left of the grace.
 *
 * The waits poll every POLL seconds instead of juggling events: the
 * drain happens once, and polling cannot miss a wake-up.
 */
#include "config.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "api/api.h"
#include "http/http.h"
#include "log.h"
#include "notify.h"

#define POLL          0.02
#define CLEANUP_BOUND 10.0 /* s for cancelled jobs to finish cleanup */
#define FLUSH_BOUND   2.0  /* s for answers to reach waiting clients */

/* The one draining state is the job store's (crd_jobs_drain): from here on
 * submissions get -ESHUTDOWN (503 in the API), health and /metrics say
 * so, and the queued jobs end "shutdown". */
static void drain(void)
{
	if (crd_d.jobs.draining)
		return;
	crd_notify("STOPPING=1\nSTATUS=draining");
	size_t queued = crd_jobs_drain(&crd_d.jobs);
	if (queued && crd_store_durable(crd_d.store))
		crd_log(CRUND_LOG_INFO, "%zu queued jobs stay queued for the next start", queued);
	else if (queued)
		crd_log(CRUND_LOG_INFO, "cancelled %zu queued jobs (shutdown)", queued);
}

static void on_signal(void *arg)
{
	int signo = (int)(intptr_t)arg;
	if (!cr_event_is_set(crd_d.stop_ev)) {
		crd_log(CRUND_LOG_INFO,
			"received %s: draining (no new jobs; running jobs get %g s to finish; "
			"send it again to cancel them now)",
			signo == SIGINT ? "SIGINT" : "SIGTERM", crd_d.cfg.grace);
		drain();
		cr_event_set(crd_d.stop_ev);
		if (crd_d.starting) /* a plugin's init: the start is given up */
			cr_task_cancel(crd_d.starting, "shutdown");
	} else if (!crd_d.force) {
		crd_d.force = true;
		crd_log(CRUND_LOG_WARNING, "received %s again: cancelling running jobs now",
			signo == SIGINT ? "SIGINT" : "SIGTERM");
	}
}

/* SIGHUP (a closed terminal, a reload by habit), SIGUSR1, SIGUSR2: their
 * default action ended crund at once, without the close, and with the
 * memory: store every job with it.  crund has no reload: they are noted
 * in the log and change nothing. */
static void on_ignored_signal(void *arg)
{
	int signo = (int)(intptr_t)arg;
	crd_log(CRUND_LOG_WARNING,
		"received %s: ignored (crund has no reload; restart it to change its settings "
		"or plugins, SIGTERM to stop it)",
		signo == SIGHUP    ? "SIGHUP"
		: signo == SIGUSR1 ? "SIGUSR1"
				   : "SIGUSR2");
}

int crd_shutdown_install_signals(cr_loop *loop)
{
	int rc = cr_loop_add_signal_handler(loop, SIGTERM, on_signal, (void *)(intptr_t)SIGTERM);
	if (rc < 0)
		return rc;
	if ((rc = cr_loop_add_signal_handler(loop, SIGINT, on_signal, (void *)(intptr_t)SIGINT)) <
	    0)
		return rc;
	static const int ignored[] = {SIGHUP, SIGUSR1, SIGUSR2};
	for (size_t i = 0; i < sizeof(ignored) / sizeof(*ignored); i++)
		if ((rc = cr_loop_add_signal_handler(loop, ignored[i], on_ignored_signal,
						     (void *)(intptr_t)ignored[i])) < 0)
			return rc;
	return 0;
}

static size_t running(void) { return crd_d.jobs.n_state[CRUND_JOB_RUNNING]; }

void crd_shutdown_run(void)
{
	cr_loop *loop = crd_d.loop;
	double t0 = cr_loop_time(loop);

	drain(); /* done by the signal already, unless the serve loop ended */

	/* 1. the grace period */
	double deadline = t0 + crd_d.cfg.grace;
	while (running() && !crd_d.force && cr_loop_time(loop) < deadline)
		if (cr_sleep(POLL) < 0)
			break;

	/* 2. cancel what still runs, await the cleanup (bounded) */
	if (running()) {
		crd_log(CRUND_LOG_INFO, "%s: cancelling %zu running jobs",
			crd_d.force ? "drain skipped" : "grace period over", running());
		crd_jobs_cancel_running(&crd_d.jobs, "shutdown");
		deadline = cr_loop_time(loop) + CLEANUP_BOUND;
		while (running() && cr_loop_time(loop) < deadline)
			if (cr_sleep(POLL) < 0)
				break;
	}
	/* 3. jobs that ignore cancellation: recorded, their tasks abandoned */
	if (running()) {
		crd_log(CRUND_LOG_WARNING,
			"%zu jobs did not stop within %g s of cancellation; their tasks are "
			"abandoned: recording them cancelled (or, with a durable store and "
			"their policy retry, queued for the next start)",
			running(), CLEANUP_BOUND);
		crd_exec_abandon();
		/* One at a time, each found by a fresh walk: finishing runs
		 * retention, which may free ended records next to the one just
		 * finished, so a walk does not go on past a finish.  No list to
		 * allocate, so none can be skipped for want of memory; the walks
		 * are bounded by the retained records, once, at exit. */
		crd_jobrec *j;
		do {
			for (j = crd_d.jobs.newest; j && j->state != CRUND_JOB_RUNNING;
			     j = j->older)
				;
			if (j)
				crd_jobs_abandon(&crd_d.jobs, j);
		} while (j);
		/* their tasks get the cancellation once more, as the runner's
		 * close would give it: a cleanup that awaits is interrupted, so
		 * the tasks can end before the plugins' fini */
		for (j = crd_d.jobs.newest; j; j = j->older)
			if (j->task)
				cr_task_cancel(j->task, "shutdown");
	}
	/* 4. let the answers of long-polls and event streams go out; the
	 * streams of every job's events end here, after the last job did;
	 * those of jobs a durable store keeps for the next start get the
	 * job as it is now */
	crd_jobs_release_subscribers(&crd_d.jobs);
	crd_api_events_close(&crd_d.jobs);
	deadline = cr_loop_time(loop) + FLUSH_BOUND;
	while (crd_http_suspended(crd_d.http) && cr_loop_time(loop) < deadline)
		if (cr_sleep(POLL) < 0)
			break;
	cr_sleep(POLL); /* one more turn for MHD to write what was resumed last */
	crd_log(CRUND_LOG_INFO, "drained in %.1f s", cr_loop_time(loop) - t0);
}
