/*
 * buf.c — growable byte buffer; see buf.h.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "common/jsondepth.h"
#include "common/utf8.h"

bool crd_buf_reserve(crd_buf *b, size_t extra)
{
	if (b->oom)
		return false;
	if (b->len + extra + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 512;
	while (cap < b->len + extra + 1) {
		if (cap > ((size_t)-1) / 2) {
			b->oom = true;
			return false;
		}
		cap *= 2;
	}
	char *p = realloc(b->data, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

void crd_buf_add(crd_buf *b, const void *p, size_t n)
{
	if (!crd_buf_reserve(b, n))
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void crd_buf_adds(crd_buf *b, const char *s) { crd_buf_add(b, s, strlen(s)); }

void crd_buf_addc(crd_buf *b, char c) { crd_buf_add(b, &c, 1); }

void crd_buf_addvf(crd_buf *b, const char *fmt, va_list ap)
{
	va_list aq;
	if (!crd_buf_reserve(b, 64))
		return;
	va_copy(aq, ap);
	int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, aq);
	va_end(aq);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if ((size_t)n >= b->cap - b->len) {
		if (!crd_buf_reserve(b, (size_t)n))
			return;
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	}
	b->len += (size_t)n;
}

void crd_buf_addf(crd_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	crd_buf_addvf(b, fmt, ap);
	va_end(ap);
}

void crd_buf_add_jstrn(crd_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	if (!crd_buf_reserve(b, n + 2))
		return;
	crd_buf_addc(b, '"');
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x80) {
			/* JSON text is UTF-8: a byte that starts no well-formed
			 * sequence (a URL's %FF, a plugin's Latin-1) becomes U+FFFD */
			size_t k = crd_utf8_seq((const unsigned char *)s + i, n - i);
			if (k) {
				i += k - 1;
				continue;
			}
			crd_buf_add(b, s + start, i - start);
			start = i + 1;
			crd_buf_add(b, "\\ufffd", 6);
			continue;
		}
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		crd_buf_add(b, s + start, i - start);
		start = i + 1;
		switch (c) {
		case '"':
			crd_buf_add(b, "\\\"", 2);
			break;
		case '\\':
			crd_buf_add(b, "\\\\", 2);
			break;
		case '\n':
			crd_buf_add(b, "\\n", 2);
			break;
		case '\r':
			crd_buf_add(b, "\\r", 2);
			break;
		case '\t':
			crd_buf_add(b, "\\t", 2);
			break;
		default: {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			crd_buf_add(b, e, 6);
		}
		}
	}
	crd_buf_add(b, s + start, n - start);
	crd_buf_addc(b, '"');
}

void crd_buf_add_jstr(crd_buf *b, const char *s)
{
	if (!s)
		crd_buf_add(b, "null", 4);
	else
		crd_buf_add_jstrn(b, s, strlen(s));
}

static int dump_cb(const char *p, size_t n, void *data)
{
	crd_buf *b = data;
	crd_buf_add(b, p, n);
	return b->oom ? -1 : 0;
}

void crd_buf_add_json(crd_buf *b, const json_t *v)
{
	if (!v) {
		crd_buf_add(b, "null", 4);
		return;
	}
	/* JSON_ENCODE_ANY: results may be scalars. */
	if (json_dump_callback(v, dump_cb, b,
			       JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15)) != 0)
		b->oom = true;
}

char *crd_json_text(const json_t *v, size_t max, size_t *ret_len)
{
	const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15);
	*ret_len = 0;
	if (crd_json_too_deep(v, CRD_JSON_DEPTH_MAX)) /* writing it could overflow a task's stack */
		return NULL;
	char small[512];
	size_t n = json_dumpb(v, small, sizeof(small), flags);
	*ret_len = n;
	if (n == 0 || n > max)
		return NULL;
	char *t = malloc(n + 1);
	if (!t)
		return NULL;
	if (n <= sizeof(small)) {
		memcpy(t, small, n);
	} else if (json_dumpb(v, t, n, flags) != n) {
		free(t);
		*ret_len = 0;
		return NULL;
	}
	t[n] = '\0';
	return t;
}

void crd_buf_add_num(crd_buf *b, double v)
{
	if (v != v || v > 1e300 || v < -1e300) { /* NaN/inf are not JSON */
		crd_buf_add(b, "null", 4);
		return;
	}
	crd_buf_addf(b, "%.15g", v);
}

char *crd_buf_steal(crd_buf *b, size_t *ret_len)
{
	if (b->oom) {
		crd_buf_free(b);
		return NULL;
	}
	if (!b->data && !crd_buf_reserve(b, 0))
		return NULL;
	if (!b->len)
		b->data[0] = '\0';
	char *p = b->data;
	if (ret_len)
		*ret_len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

void crd_buf_free(crd_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->oom = false;
}

void crd_format_time(double t, char *out, size_t outlen)
{
	/* Every job answer carries up to three timestamps, mostly within
	 * the same second: cache the formatted second (per thread). */
	static __thread time_t cached_sec = -1;
	static __thread char cached[32];
	static __thread size_t cached_len;
	time_t sec = (time_t)t;
	int ms = (int)((t - (double)sec) * 1000.0);
	if (ms > 999)
		ms = 999;
	if (ms < 0)
		ms = 0;
	if (sec != cached_sec) {
		struct tm tm;
		gmtime_r(&sec, &tm);
		cached_len = strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
		cached_sec = sec;
	}
	if (outlen < cached_len + 6) {
		if (outlen)
			out[0] = '\0';
		return;
	}
	memcpy(out, cached, cached_len);
	char *p = out + cached_len;
	p[0] = '.';
	p[1] = (char)('0' + ms / 100);
	p[2] = (char)('0' + ms / 10 % 10);
	p[3] = (char)('0' + ms % 10);
	p[4] = 'Z';
	p[5] = '\0';
}
