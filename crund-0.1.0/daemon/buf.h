/*
 * buf.h — a growable byte buffer for building answers (JSON by hand, SSE
 * frames, Prometheus text, log lines) without a json_t tree per request.
 *
 * Allocation failures are sticky: the buffer records `oom` and every later
 * append is a no-op, so a caller checks once at the end (crd_buf_ok).
 */
#ifndef CRUND_BUF_H
#define CRUND_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

typedef struct crd_buf {
	char *data; /* owned; NUL-terminated when len > 0 */
	size_t len, cap;
	bool oom;
} crd_buf;

#define CRUND_BUF_INIT            \
	{                         \
		NULL, 0, 0, false \
	}

bool crd_buf_reserve(crd_buf *b, size_t extra);
void crd_buf_add(crd_buf *b, const void *p, size_t n);
void crd_buf_adds(crd_buf *b, const char *s);
void crd_buf_addc(crd_buf *b, char c);
void crd_buf_addf(crd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void crd_buf_addvf(crd_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* A JSON string literal (quoted, escaped) of s; NULL gives `null`. */
void crd_buf_add_jstr(crd_buf *b, const char *s);
void crd_buf_add_jstrn(crd_buf *b, const char *s, size_t n);
/* Compact JSON of v (NULL gives `null`). */
void crd_buf_add_json(crd_buf *b, const json_t *v);
/* Compact JSON text of v (the form crd_buf_add_json writes) in an
 * exact-size, NUL-terminated allocation; *ret_len is its length.  NULL when
 * v cannot be written (*ret_len 0), when the text is longer than max
 * (*ret_len is the length it would have) or when memory runs out. */
char *crd_json_text(const json_t *v, size_t max, size_t *ret_len);
/* A JSON number for a double (shortest of %.17g that round-trips is not
 * needed here: %.6g for fractions/timeouts is enough). */
void crd_buf_add_num(crd_buf *b, double v);
static inline bool crd_buf_ok(const crd_buf *b) { return !b->oom; }
/* Hand the data over (caller frees); the buffer is reset.  Never NULL on
 * success: an empty buffer gives "".  NULL after an allocation failure. */
char *crd_buf_steal(crd_buf *b, size_t *ret_len);
void crd_buf_free(crd_buf *b);

/* RFC 3339 UTC with milliseconds ("2026-12-03T10:00:00.123Z"), into out
 * (>= 25 bytes): the one time format of answers, job logs and crund's own
 * log lines. */
void crd_format_time(double t, char *out, size_t outlen);

#endif
