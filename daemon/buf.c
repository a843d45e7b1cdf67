/*
 * buf.c — growable byte buffer; see buf.h.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

bool crund_buf_reserve(crund_buf *b, size_t extra)
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

void crund_buf_add(crund_buf *b, const void *p, size_t n)
{
	if (!crund_buf_reserve(b, n))
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void crund_buf_adds(crund_buf *b, const char *s) { crund_buf_add(b, s, strlen(s)); }

void crund_buf_addc(crund_buf *b, char c) { crund_buf_add(b, &c, 1); }

void crund_buf_addvf(crund_buf *b, const char *fmt, va_list ap)
{
	va_list aq;
	if (!crund_buf_reserve(b, 64))
		return;
	va_copy(aq, ap);
	int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, aq);
	va_end(aq);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if ((size_t)n >= b->cap - b->len) {
		if (!crund_buf_reserve(b, (size_t)n))
			return;
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	}
	b->len += (size_t)n;
}

void crund_buf_addf(crund_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	crund_buf_addvf(b, fmt, ap);
	va_end(ap);
}

void crund_buf_add_jstrn(crund_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	if (!crund_buf_reserve(b, n + 2))
		return;
	crund_buf_addc(b, '"');
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		crund_buf_add(b, s + start, i - start);
		start = i + 1;
		switch (c) {
		case '"':
			crund_buf_add(b, "\\\"", 2);
			break;
		case '\\':
			crund_buf_add(b, "\\\\", 2);
			break;
		case '\n':
			crund_buf_add(b, "\\n", 2);
			break;
		case '\r':
			crund_buf_add(b, "\\r", 2);
			break;
		case '\t':
			crund_buf_add(b, "\\t", 2);
			break;
		default: {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			crund_buf_add(b, e, 6);
		}
		}
	}
	crund_buf_add(b, s + start, n - start);
	crund_buf_addc(b, '"');
}

void crund_buf_add_jstr(crund_buf *b, const char *s)
{
	if (!s)
		crund_buf_add(b, "null", 4);
	else
		crund_buf_add_jstrn(b, s, strlen(s));
}

static int dump_cb(const char *p, size_t n, void *data)
{
	crund_buf *b = data;
	crund_buf_add(b, p, n);
	return b->oom ? -1 : 0;
}

void crund_buf_add_json(crund_buf *b, const json_t *v)
{
	if (!v) {
		crund_buf_add(b, "null", 4);
		return;
	}
	/* JSON_ENCODE_ANY: results may be scalars. */
	if (json_dump_callback(v, dump_cb, b,
			       JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15)) != 0)
		b->oom = true;
}

char *crund_json_text(const json_t *v, size_t max, size_t *ret_len)
{
	const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15);
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

void crund_buf_add_num(crund_buf *b, double v)
{
	if (v != v || v > 1e300 || v < -1e300) { /* NaN/inf are not JSON */
		crund_buf_add(b, "null", 4);
		return;
	}
	crund_buf_addf(b, "%.15g", v);
}

char *crund_buf_steal(crund_buf *b, size_t *ret_len)
{
	if (b->oom) {
		crund_buf_free(b);
		return NULL;
	}
	if (!b->data && !crund_buf_reserve(b, 0))
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

void crund_buf_free(crund_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->oom = false;
}
