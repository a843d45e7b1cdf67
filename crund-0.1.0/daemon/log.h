/*
 * log.h — the daemon's log: one line per call on stderr.
 *
 * Under systemd (JOURNAL_STREAM or INVOCATION_ID set) each line starts with
 * the kernel-style priority prefix "<N>" that journald understands, and no
 * timestamp (journald adds its own).  Otherwise lines read
 *     2025-01-02T03:04:05.678Z crund[PID] info: message
 * Lines about a job carry "job ID: " before the message.  Each line is one
 * write(2), so lines from the watchdog thread never interleave.
 */
#ifndef CRUND_LOG_H
#define CRUND_LOG_H

#include <stdarg.h>
#include "crund/plugin.h" /* CRUND_LOG_* levels */

/* Detect systemd, set the threshold (CRUND_LOG_*: lines above it are dropped). */
void crd_log_setup(int max_level);
int crd_log_level(void);
/* "error", "warning", "info", "debug" → level; -1 for anything else. */
int crd_log_parse_level(const char *s);
/* The word for a level (the inverse; levels between map to the nearest). */
const char *crd_log_level_name(int level);

void crd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void crd_log_job(int level, const char *job_id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* job_id may be NULL. */
void crd_logv(int level, const char *job_id, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

#endif
