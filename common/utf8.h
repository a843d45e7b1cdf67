/*
 * common/utf8.h — well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), as JSON text must be: the JSON
 * writer's sanitising (daemon/buf.c), PostgreSQL's text columns
 * (daemon/store/postgresql.c) and the plugin descriptor's strings
 * (daemon/plugins/registry.c).
 */
#ifndef CRUND_COMMON_UTF8_H
#define CRUND_COMMON_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* The length of the well-formed sequence at p (left > 0 bytes there): 1
 * for ASCII, 2-4 for the others, 0 when the bytes are not UTF-8. */
static inline size_t crd_utf8_seq(const unsigned char *p, size_t left)
{
	unsigned c = p[0];
	size_t len;
	unsigned min;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, min = 0x10000;
	else
		return 0;
	if (left < len)
		return 0;
	unsigned cp = c & (0x7fu >> len);
	for (size_t k = 1; k < len; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[k] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Whether the NUL-terminated s is well-formed UTF-8. */
static inline bool crd_utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t left = 0;
	while (p[left])
		left++;
	while (left) {
		size_t k = crd_utf8_seq(p, left);
		if (!k)
			return false;
		p += k;
		left -= k;
	}
	return true;
}

#endif
