/*
 * common/rfc3339.c — see rfc3339.h.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "common/rfc3339.h"

/* n decimal digits at p, or -1. */
static int digits(const char *p, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

int crd_rfc3339_parse(const char *s, double *ret_epoch)
{
	if (!s || strlen(s) < 20 || s[4] != '-' || s[7] != '-' ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' || s[16] != ':')
		return -EINVAL;
	int Y = digits(s, 4), M = digits(s + 5, 2), D = digits(s + 8, 2);
	int h = digits(s + 11, 2), m = digits(s + 14, 2), sec = digits(s + 17, 2);
	/* any year RFC 3339 writes (0000-9999): a time before 1970 is a
	 * time past like any other */
	if (Y < 0 || M < 1 || M > 12 || D < 1 || D > 31 || h < 0 || h > 23 || m < 0 || m > 59 ||
	    sec < 0 || sec > 60)
		return -EINVAL;
	const char *p = s + 19;
	double frac = 0;
	if (*p == '.') {
		double scale = 0.1;
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		while (*p >= '0' && *p <= '9') {
			frac += (*p - '0') * scale;
			scale /= 10;
			p++;
		}
	}
	int off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh = digits(p + 1, 2), om = p[3] == ':' ? digits(p + 4, 2) : -1;
		if (oh < 0 || oh > 23 || om < 0 || om > 59)
			return -EINVAL;
		off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p)
		return -EINVAL;
	/* A leap second (:60) is the second after :59 (POSIX time has none);
	 * timegm would carry it into the next minute, and at the end of a
	 * month into a day the check below refuses. */
	struct tm tm = {.tm_year = Y - 1900,
			.tm_mon = M - 1,
			.tm_mday = D,
			.tm_hour = h,
			.tm_min = m,
			.tm_sec = sec == 60 ? 59 : sec};
	errno = 0;
	time_t t = timegm(&tm); /* -1 is also 1969-12-31T23:59:59Z: errno tells */
	if ((t == (time_t)-1 && errno) || tm.tm_mday != D) /* 2026-02-31 normalises */
		return -EINVAL;
	*ret_epoch = (double)t + (sec == 60) - off + frac;
	return 0;
}
