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

static int job_main(void *arg, void **ret_value)
{
	crd_jobrec *j = arg;
	int rc;

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
			j->flags |= CRUND_JF_TIMED_OUT;
	} else {
		rc = j->spec->run(&j->head);
	}
	crd_watchdog_job(NULL);
	return rc;
}

static void end_job(crd_jobrec *j, int rc, bool cancelled);

static void job_done(cr_task *t, void *arg)
{
	crd_jobrec *j = arg;
	int rc = cr_task_result(t, NULL);
	bool cancelled = cr_task_cancelled(t);

	j->task = NULL;
	cr_task_unref(t);
	live_tasks--;
	if (crd_job_state_ended(j->state)) {
		/* ended by force at shutdown; the record was waiting for us */
		crd_jobs_task_gone(j);
		return;
	}
	end_job(j, rc, cancelled);
}

/* Log one line about the end (job id on it), then record it: the record
 * may be forgotten by retention as soon as it is recorded. */
static void finish(crd_jobrec *j, int state, const char *code, const char *message)
{
	if (state == CRUND_JOB_SUCCEEDED)
		crd_log_job(CRUND_LOG_DEBUG, j->id, "%s/%s succeeded", j->plugin->desc->name,
			    j->spec->name);
	else
		crd_log_job(state == CRUND_JOB_FAILED ? CRUND_LOG_INFO : CRUND_LOG_DEBUG, j->id,
			    "%s/%s %s: %s: %s", j->plugin->desc->name, j->spec->name,
			    crd_job_state_name(state), code ? code : "", message ? message : "");
	crd_jobs_finish(j->store, j, state, code, message);
}

static void end_job(crd_jobrec *j, int rc, bool cancelled)
{
	char msg[160];

	if (j->flags & CRUND_JF_TIMED_OUT) {
		snprintf(msg, sizeof(msg), "the job did not finish within its timeout of %g s",
			 j->timeout);
		finish(j, CRUND_JOB_FAILED, "timeout", msg);
	} else if (rc == -ECANCELED || cancelled) {
		const char *code = j->cancel_code ? j->cancel_code : "cancelled";
		finish(j, CRUND_JOB_CANCELLED, code,
		       !strcmp(code, "shutdown") ? "the daemon shut down while the job ran"
						 : "cancelled by request");
	} else if (j->flags & CRUND_JF_RESULT_BIG) {
		snprintf(msg, sizeof(msg), "the job's result is larger than the limit of %zu bytes",
			 j->store->lim.max_result_bytes);
		finish(j, CRUND_JOB_FAILED, "result_too_large", msg);
	} else if (rc < 0) {
		if (j->flags & CRUND_JF_FAIL_SET)
			finish(j, CRUND_JOB_FAILED, j->err_code, j->err_msg);
		else
			finish(j, CRUND_JOB_FAILED, "plugin_error", cr_strerror(rc));
	} else {
		finish(j, CRUND_JOB_SUCCEEDED, NULL, NULL);
	}
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

bool crd_exec_about_to_end(const crd_jobrec *j)
{
	if (!j || j->state != CRUND_JOB_RUNNING || !j->task)
		return false;
	return !(j->flags & CRUND_JF_STEPPED) || cr_task_done(j->task);
}
