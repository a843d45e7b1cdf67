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
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "daemon.h"
#include "log.h"
#include "plugins/curl.h"

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

/* Store a log line "TIME LABEL message" (the /log endpoint) and send it
 * to the job's subscribers as {"time","level","message"} plus "stream"
 * when the line came from one.  b holds "TIME LABEL " and the message from
 * msg_at; line breaks in it become spaces. */
static void log_append(crd_jobrec *j, crd_buf *b, const char *ts, size_t msg_at, const char *level,
		       const char *stream)
{
	if (!crd_buf_ok(b))
		return;
	for (size_t i = msg_at; i < b->len; i++)
		if ((unsigned char)b->data[i] < 0x20 && b->data[i] != '\t')
			b->data[i] = ' ';
	crd_jobs_log_append(j, b->data, b->len);
	if (!j->subs)
		return;
	crd_buf e = CRUND_BUF_INIT;
	crd_buf_add(&e, "{\"time\":\"", 9);
	crd_buf_adds(&e, ts);
	crd_buf_add(&e, "\",\"level\":\"", 11);
	crd_buf_adds(&e, level);
	crd_buf_addc(&e, '"');
	if (stream) {
		crd_buf_adds(&e, ",\"stream\":");
		crd_buf_add_jstr(&e, stream);
	}
	crd_buf_add(&e, ",\"message\":", 11);
	crd_buf_add_jstrn(&e, b->data + msg_at, b->len - msg_at);
	crd_buf_addc(&e, '}');
	if (crd_buf_ok(&e))
		crd_jobs_emit(j, CRUND_EV_LOG, e.data, e.len);
	crd_buf_free(&e);
}

__attribute__((format(printf, 3, 0))) static void h_job_log(crund_job *job, int level,
							    const char *fmt, va_list ap)
{
	crd_jobrec *j = rec(job);
	crd_buf b = CRUND_BUF_INIT;

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
	/* The daemon's log gets the line as the job's log keeps it (control
	 * characters blanked: no terminal escapes in the journal), and only
	 * while the job's log takes lines: a job that logs without end fills
	 * its own --max-log-bytes, not the journal. */
	bool was_full = j->flags & CRUND_JF_LOG_TRUNC;
	log_append(j, &b, ts, msg_at, crd_log_level_name(level), NULL);
	if (!was_full && (j->flags & CRUND_JF_LOG_TRUNC))
		crd_log_job(CRUND_LOG_WARNING, j->id,
			    "its log reached --max-log-bytes: its further lines are dropped, "
			    "there and here");
	else if (!was_full)
		crd_log_job(level, j->id, "%.*s", (int)(b.len - msg_at), b.data + msg_at);
	crd_buf_free(&b);
}

/* A stream's name in a log line: [a-z0-9_-], at most 16 bytes. */
static bool stream_name_ok(const char *s)
{
	size_t n = 0;
	for (; s && s[n]; n++)
		if (n >= 16 || !((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') ||
				 s[n] == '_' || s[n] == '-'))
			return false;
	return n > 0;
}

static void h_job_log_line(crund_job *job, const char *stream, const char *line, size_t len)
{
	crd_jobrec *j = rec(job);
	if (!stream_name_ok(stream))
		stream = "out";
	if (!line)
		len = 0;
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	/* Not copied to the daemon's own log: a command's output is the job's. */
	char ts[40];
	crd_buf b = CRUND_BUF_INIT;
	crd_format_time(crd_now_realtime(), ts, sizeof(ts));
	crd_buf_adds(&b, ts);
	crd_buf_addc(&b, ' ');
	crd_buf_adds(&b, stream);
	crd_buf_addc(&b, ' ');
	size_t msg_at = b.len;
	crd_buf_add(&b, line, len);
	log_append(j, &b, ts, msg_at, "info", stream);
	crd_buf_free(&b);
}

static const char *h_job_idempotency_key(crund_job *job) { return rec(job)->idem_key; }

static unsigned h_job_attempt(crund_job *job)
{
	unsigned a = rec(job)->attempt;
	return a ? a : 1;
}

static int h_job_retry_after(crund_job *job, double seconds)
{
	if (!(seconds >= 0) || !isfinite(seconds))
		return -EINVAL;
	crd_jobs_set_retry_after(rec(job), seconds);
	return 0;
}

static const char *const *h_config_list(const crund_host_api *host, const char *key)
{
	static const char *const none[] = {NULL};
	(void)host;
	const crd_config *c = &crd_d.cfg;
	if (key && !strcmp(key, "exec-allow") && c->exec_allow)
		return (const char *const *)c->exec_allow;
	if (key && !strcmp(key, "http-allow") && c->http_allow)
		return (const char *const *)c->http_allow;
	return none;
}

/* The transfer runs on the daemon's shared multi (curl.c); the job only
 * names whose task awaits it (the current one). */
static int h_curl_perform(crund_job *job, void *easy, int *ret_code)
{
	(void)job;
	return crd_curl_perform(easy, ret_code);
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
	.job_log_line = h_job_log_line,
	.job_idempotency_key = h_job_idempotency_key,
	.job_attempt = h_job_attempt,
	.job_retry_after = h_job_retry_after,
	.config_list = h_config_list,
	.curl_perform = h_curl_perform,
};
