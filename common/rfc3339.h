/*
 * common/rfc3339.h — the RFC 3339 timestamp parser that crund (a
 * submission's run_at) and crunctl (--at, the daemon's times) share, so
 * that both take and refuse the same texts.
 */
#ifndef CRUND_COMMON_RFC3339_H
#define CRUND_COMMON_RFC3339_H

/* YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), 'T' or 't' or a space
 * between date and time, 'Z' or 'z'; a year from 1970, a day that exists
 * in its month (2026-02-31 is refused, not read as March 3) and a second up
 * to 60.  Seconds since the epoch into *ret_epoch: 0, or -EINVAL. */
int crd_rfc3339_parse(const char *text, double *ret_epoch);

#endif
