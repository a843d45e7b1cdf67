/*
 * fuzz-sse.c — crunctl's text/event-stream parser (client/sse.c) on a
 * stream from the network, split into chunks anywhere, as libcurl does.
 *
 * The check is differential: the events seen must not depend on where
 * the chunks were split, so the input is fed once whole and once in
 * pieces whose sizes come from the first input byte, and both event
 * lists must be equal.  A third run stops from the callback at the
 * second event, and crunctl_sse_feed must return the callback's value.
 *
 * Input: one byte (the split pattern), then the stream.
 */
#include "config.h"

#include <errno.h>

#include "crunctl.h"
#include "fuzz.h"

typedef struct events {
	char *text; /* "name\0data\0" per event */
	size_t len, cap;
	size_t n;
	size_t stop_at; /* 0: never stop */
} events;

static void append(events *e, const char *s)
{
	size_t n = strlen(s) + 1;
	if (e->len + n > e->cap) {
		size_t cap = e->cap ? e->cap : 256;
		while (cap < e->len + n)
			cap *= 2;
		char *t = realloc(e->text, cap);
		if (!t)
			abort();
		e->text = t;
		e->cap = cap;
	}
	memcpy(e->text + e->len, s, n);
	e->len += n;
}

static int on_event(const char *event, const char *data, void *userdata)
{
	events *e = userdata;
	FUZZ_CHECK(event && *event);
	FUZZ_CHECK(data);
	append(e, event);
	append(e, data);
	e->n++;
	return e->stop_at && e->n == e->stop_at ? 42 : 0;
}

/* Feed data split into pieces: 1..16 bytes long, from the pattern byte. */
static int feed_split(crunctl_sse *p, const uint8_t *data, size_t size, uint8_t pattern)
{
	size_t i = 0, k = 0;
	while (i < size) {
		size_t n = 1 + ((pattern >> (k++ % 5)) & 15);
		if (n > size - i)
			n = size - i;
		/* An empty chunk now and then: curl never sends one, but the
		 * parser must not care. */
		int rc = crunctl_sse_feed(p, (const char *)data + i, (k % 7 == 0) ? 0 : n);
		if (rc)
			return rc;
		if (k % 7 != 0)
			i += n;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t pattern = data[0];
	data++;
	size--;

	events whole = {0}, split = {0}, stop = {.stop_at = 2};
	crunctl_sse p;

	crunctl_sse_init(&p, on_event, &whole);
	int rc_whole = crunctl_sse_feed(&p, (const char *)data, size);
	crunctl_sse_free(&p);
	FUZZ_CHECK(rc_whole == 0);

	crunctl_sse_init(&p, on_event, &split);
	int rc_split = feed_split(&p, data, size, pattern);
	crunctl_sse_free(&p);
	FUZZ_CHECK(rc_split == 0);

	if (whole.n != split.n || whole.len != split.len ||
	    (whole.len && memcmp(whole.text, split.text, whole.len)))
		fprintf(stderr, "whole: %zu events, split: %zu events\n", whole.n, split.n);
	FUZZ_CHECK(whole.n == split.n && whole.len == split.len);
	FUZZ_CHECK(!whole.len || !memcmp(whole.text, split.text, whole.len));

	crunctl_sse_init(&p, on_event, &stop);
	int rc_stop = feed_split(&p, data, size, pattern);
	crunctl_sse_free(&p);
	FUZZ_CHECK(rc_stop == (whole.n >= 2 ? 42 : 0));
	FUZZ_CHECK(stop.n == (whole.n >= 2 ? 2 : whole.n));

	free(whole.text);
	free(split.text);
	free(stop.text);
	return 0;
}
