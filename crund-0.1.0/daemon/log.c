/*
 * log.c — stderr logging with systemd priority prefixes; see log.h.
 *
 * The line is formatted into a thread-local buffer, not on the stack: job
 * coroutines log through here, and a big stack buffer would touch pages of
 * every job's coroutine stack (memory per held job is a product figure).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

static int log_max = CRUND_LOG_INFO;
static int log_systemd = -1; /* -1: not yet detected */

void crd_log_setup(int max_level)
{
	log_max = max_level;
	const char *js = getenv("JOURNAL_STREAM"), *inv = getenv("INVOCATION_ID");
	log_systemd = (js && *js) || (inv && *inv);
}

int crd_log_level(void) { return log_max; }

int crd_log_parse_level(const char *s)
{
	if (!strcasecmp(s, "error") || !strcasecmp(s, "err"))
		return CRUND_LOG_ERROR;
	if (!strcasecmp(s, "warning") || !strcasecmp(s, "warn"))
		return CRUND_LOG_WARNING;
	if (!strcasecmp(s, "info"))
		return CRUND_LOG_INFO;
	if (!strcasecmp(s, "debug"))
		return CRUND_LOG_DEBUG;
	return -1;
}

const char *crd_log_level_name(int level)
{
	if (level <= CRUND_LOG_ERROR)
		return "error";
	if (level == CRUND_LOG_WARNING)
		return "warning";
	if (level >= CRUND_LOG_DEBUG)
		return "debug";
	return "info"; /* info, and notice (5) between warning and info */
}

void crd_logv(int level, const char *job_id, const char *fmt, va_list ap)
{
	static __thread char line[4096];
	size_t n = 0, cap = sizeof(line) - 2; /* room for '\n' and NUL */
	int saved = errno;

	if (level > log_max)
		return;
	if (log_systemd < 0)
		crd_log_setup(log_max);
	if (level < 0)
		level = 0;
	if (log_systemd) {
		n = (size_t)snprintf(line, cap, "<%d>", level > 7 ? 7 : level);
	} else {
		struct timespec ts;
		char t[40];
		clock_gettime(CLOCK_REALTIME, &ts);
		crd_format_time((double)ts.tv_sec + (double)ts.tv_nsec / 1e9, t, sizeof(t));
		n = (size_t)snprintf(line, cap, "%s crund[%ld] %s: ", t, (long)getpid(),
				     crd_log_level_name(level));
	}
	if (job_id && n < cap)
		n += (size_t)snprintf(line + n, cap - n, "job %s: ", job_id);
	if (n < cap) {
		errno = saved; /* %m in fmt */
		int k = vsnprintf(line + n, cap - n, fmt, ap);
		if (k > 0)
			n += (size_t)k;
	}
	if (n > cap)
		n = cap;
	/* Keep one line per record: a newline inside the message (a plugin's
	 * text) would fake a second record with the wrong priority. */
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
	errno = saved;
}

void crd_log(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	crd_logv(level, NULL, fmt, ap);
	va_end(ap);
}

void crd_log_job(int level, const char *job_id, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	crd_logv(level, job_id, fmt, ap);
	va_end(ap);
}
