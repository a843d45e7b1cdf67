/*
 * host.c — crund_host_api: the daemon's services as plugins see them.
 *
 * Plugins only hold a `crund_job *`, the public head of a crd_jobrec
 * (its first member), so the cast below is the whole "handle" story.
 * Job coroutines call these on their own (small) stacks: formatting goes
 * into thread-local or heap buffers, never big locals.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "daemon.h"
#include "log.h"

static inline crd_jobrec *rec(crund_job *job) { return (crd_jobrec *)job; }

static const json_t *h_job_args(crund_job *job) { return rec(job)->args; }

static const char *h_job_id(crund_job *job) { return rec(job)->id; }

static void *h_job_plugin_state(crund_job *job) { return rec(job)->plugin->state; }

static int h_job_set_result(crund_job *job, json_t *result)
{
	return crd_jobs_set_result(rec(job), result);
}

__attribute__((format(printf, 3, 0))) static int h_job_fail(crund_job *job, const char *code,
							    const char *fmt, va_list ap)
{
	crd_buf b = CRUND_BUF_INIT;
	crd_buf_addvf(&b, fmt ? fmt : "plugin error", ap);
	if (!crd_buf_ok(&b))
		return -ENOMEM;
	int rc = crd_jobs_set_failure(rec(job), code, b.data ? b.data : "");
	crd_buf_free(&b);
	return rc < 0 ? rc : -EIO;
}

static int h_job_progress(crund_job *job, double fraction, const char *message)
{
	return crd_jobs_set_progress(rec(job), fraction, message);
}

__attribute__((format(printf, 3, 0))) static void h_job_log(crund_job *job, int level,
							    const char *fmt, va_list ap)
{
	crd_jobrec *j = rec(job);
	crd_buf b = CRUND_BUF_INIT;
	va_list aq;

	va_copy(aq, ap);
	crd_logv(level, j->id, fmt, aq);
	va_end(aq);

	/* The stored line: "TIME LEVEL message" (the /log endpoint). */
	char ts[40];
	crd_format_time(crd_now_realtime(), ts, sizeof(ts));
	crd_buf_adds(&b, ts);
	crd_buf_addc(&b, ' ');
	crd_buf_adds(&b, crd_log_level_name(level));
	crd_buf_addc(&b, ' ');
	size_t msg_at = b.len;
	crd_buf_addvf(&b, fmt, ap);
	if (!crd_buf_ok(&b)) {
		crd_buf_free(&b);
		return;
	}
	for (size_t i = 0; i < b.len; i++)
		if (b.data[i] == '\n' || b.data[i] == '\r')
			b.data[i] = ' ';
	crd_jobs_log_append(j, b.data, b.len);
	if (j->subs) {
		crd_buf e = CRUND_BUF_INIT;
		crd_buf_add(&e, "{\"time\":\"", 9);
		crd_buf_adds(&e, ts);
		crd_buf_add(&e, "\",\"level\":\"", 11);
		crd_buf_adds(&e, crd_log_level_name(level));
		crd_buf_add(&e, "\",\"message\":", 12);
		crd_buf_add_jstrn(&e, b.data + msg_at, b.len - msg_at);
		crd_buf_addc(&e, '}');
		if (crd_buf_ok(&e))
			crd_jobs_emit(j, CRUND_EV_LOG, e.data, e.len);
		crd_buf_free(&e);
	}
	crd_buf_free(&b);
}

__attribute__((format(printf, 3, 0))) static void h_log(const crund_host_api *host, int level,
							const char *fmt, va_list ap)
{
	(void)host;
	crd_logv(level, NULL, fmt, ap);
}

const crund_host_api crd_host = {
	.size = sizeof(crund_host_api),
	.abi_major = CRUND_PLUGIN_ABI_MAJOR,
	.abi_minor = CRUND_PLUGIN_ABI_MINOR,
	.job_args = h_job_args,
	.job_id = h_job_id,
	.job_plugin_state = h_job_plugin_state,
	.job_set_result = h_job_set_result,
	.job_fail = h_job_fail,
	.job_progress = h_job_progress,
	.job_log = h_job_log,
	.log = h_log,
	.daemon_version = PACKAGE_VERSION,
};
