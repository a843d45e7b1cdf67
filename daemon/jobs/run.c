/*
 * jobs/run.c — a job runs as a task on the runner's loop (the store's ops).
 *
 * The task body calls the plugin's coroutine, under the job's timeout
 * scope when it has one.  The terminal state is decided in the task's done
 * callback, not in the body: a task cancelled before its first step never
 * runs its body, and the callback sees every way a task can end.
 *
 * Memory per held job matters (tens of thousands sleeping at once), so the
 * body's own frame stays small: no buffers on the coroutine stack.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "log.h"

static size_t live_tasks;
/* Shutdown gave up on the tasks still running (crd_exec_abandon): their
 * records are settled; when they end at the runner's close, only the
 * task goes. */
static bool abandoned;

static int job_main(void *arg, void **ret_value)
{
	crd_jobrec *j = arg;
	int rc = crd_jobs_await_durable_start(j);

	if (rc < 0)
		return rc;
	j->flags |= CRUND_JF_STEPPED;
	crd_watchdog_job(j);
	if (j->timeout > 0) {
		cr_timeout_scope sc;
		rc = cr_timeout_enter(&sc, j->timeout);
		if (rc < 0)
			return rc;
		rc = j->spec->run(&j->head);
		rc = cr_timeout_exit(&sc, rc);
		if (cr_timeout_expired(&sc))
			j->flags |= CRUND_JF_TIMED_OUT; /* read back in job_done */
	} else {
		rc = j->spec->run(&j->head);
	}
	crd_watchdog_job(NULL);
	return rc;
}

static void job_done(cr_task *t, void *arg)
{
	crd_jobrec *j = arg;
	int rc = cr_task_result(t, NULL);
	bool cancelled = cr_task_cancelled(t);

	j->task = NULL;
	cr_task_unref(t);
	live_tasks--;
	if (abandoned && !crd_job_state_ended(j->state))
		return; /* queued again for the next start: it keeps its args */
	if (crd_job_state_ended(j->state)) {
		/* ended by force at shutdown; the record was waiting for us */
		crd_jobs_task_gone(j);
		return;
	}
	if (rc < 0 && rc != -ECANCELED && !cancelled && !(j->flags & CRUND_JF_TIMED_OUT))
		crd_log_job(CRUND_LOG_INFO, j->id, "%s/%s attempt %u failed: %s",
			    j->plugin->desc->name, j->spec->name, (unsigned)j->attempt,
			    (j->flags & CRUND_JF_FAIL_SET) && j->err_msg ? j->err_msg
									 : cr_strerror(rc));
	/* the jobs module decides: success, retry, or which terminal state */
	crd_jobs_attempt_ended(j->store, j, rc, cancelled, (j->flags & CRUND_JF_TIMED_OUT) != 0);
}

int crd_exec_start(crd_jobrec *j, void *data)
{
	cr_spawn_opts o;
	cr_context *copy = NULL;
	cr_task *t;
	int rc;

	(void)data;
	memset(&o, 0, sizeof(o));
	o.size = sizeof(o);
	o.context = crd_d.shared;
	/* The task name is only shown by debug reports; naming every task
	 * costs an allocation per job, so only in debug mode. */
	if (crd_d.cfg.debug)
		o.name = j->id;
	if (j->flags & CRUND_JF_ISOLATED) {
		rc = cr_context_copy(crd_d.shared, &copy);
		if (rc < 0)
			return rc;
		o.context = copy;
	}
	j->head.api = &crd_host;
	rc = cr_loop_spawn(crd_d.loop, job_main, j, &o, &t);
	cr_context_unref(copy); /* the task holds its own reference */
	if (rc < 0)
		return rc;
	rc = cr_task_add_done_callback(t, job_done, j);
	if (rc < 0) {
		cr_task_cancel(t, NULL);
		cr_task_unref(t);
		return rc;
	}
	j->task = t;
	live_tasks++;
	return 0;
}

void crd_exec_cancel(crd_jobrec *j, void *data)
{
	(void)data;
	if (j->task)
		cr_task_cancel(j->task, j->cancel_code);
}

size_t crd_exec_live_tasks(void) { return live_tasks; }

void crd_exec_abandon(void) { abandoned = true; }

/* One timer for the earliest delayed job (the jobs module asks again
 * whenever the earliest changes). */
static cr_handle *wake_h;

static void wake_cb(void *arg)
{
	(void)arg;
	cr_handle_unref(wake_h);
	wake_h = NULL;
	crd_jobs_due(&crd_d.jobs);
}

void crd_exec_wake_at(double when, void *data)
{
	(void)data;
	double delay = when - crd_now_realtime();
	crd_exec_wake_stop();
	if (cr_call_later(crd_d.loop, delay > 0 ? delay + 0.001 : 0, wake_cb, NULL, &wake_h) < 0)
		wake_h = NULL; /* out of memory: the next submission or end asks again */
}

void crd_exec_wake_stop(void)
{
	if (wake_h) {
		cr_handle_cancel(wake_h);
		wake_h = cr_handle_unref(wake_h);
	}
}

bool crd_exec_about_to_end(const crd_jobrec *j)
{
	if (!j || j->state != CRUND_JOB_RUNNING || !j->task)
		return false;
	return !(j->flags & CRUND_JF_STEPPED) || cr_task_done(j->task);
}
