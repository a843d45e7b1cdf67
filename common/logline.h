/*
 * common/logline.h — a job's stored log line, "TIME LABEL message", as
 * the daemon writes it (daemon/plugins/host.c; GET /v1/jobs/ID/log) and
 * as two readers take it apart again into the stream's log event
 * {"time","level","message"} (+ "stream"): the daemon for a job that runs
 * on another node, crunctl --json for the log read before a stream.
 *
 * LABEL is a level (debug, info, warning, error: daemon/log.c's names) or
 * the name of the stream a command's line came from (stdout, stderr:
 * logged at info).
 */
#ifndef CRUND_COMMON_LOGLINE_H
#define CRUND_COMMON_LOGLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

typedef struct crd_log_line {
	const char *time, *label, *message;
	size_t time_len, label_len, message_len;
	bool label_is_level; /* else a stream's name */
} crd_log_line;

/* The parts of the line s[0..n) (pointers into it); false when it is not
 * of that shape (then it is a message alone). */
static inline bool crd_log_line_split(const char *s, size_t n, crd_log_line *ret)
{
	static const char *const levels[] = {"debug", "info", "warning", "error"};
	const char *end = s + n;
	const char *sp1 = memchr(s, ' ', n);
	const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1)) : NULL;
	if (!sp2 || sp1 == s || sp2 == sp1 + 1 || s[0] < '0' || s[0] > '9')
		return false;
	ret->time = s;
	ret->time_len = (size_t)(sp1 - s);
	ret->label = sp1 + 1;
	ret->label_len = (size_t)(sp2 - sp1 - 1);
	ret->message = sp2 + 1;
	ret->message_len = (size_t)(end - sp2 - 1);
	ret->label_is_level = false;
	for (size_t i = 0; i < sizeof(levels) / sizeof(*levels); i++)
		if (strlen(levels[i]) == ret->label_len &&
		    !memcmp(ret->label, levels[i], ret->label_len))
			ret->label_is_level = true;
	return true;
}

#endif
