/*
 * sse.c — an incremental parser for text/event-stream (the HTML "server-sent
 * events" format) as crund sends it on GET /v1/jobs/{id}/events.
 *
 * libcurl hands us the body in chunks of any size, split anywhere, so the
 * parser keeps the partial line between calls.  Lines end in "\n", "\r\n"
 * or "\r"; "event:" names the event, "data:" lines are joined with '\n',
 * lines starting with ':' are comments (keep-alives), and a blank line
 * dispatches the event.  One optional space after the colon is dropped.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crunctl.h"

/* Bound on one line and one event: a stream is outside input. */
#define SSE_MAX_BYTES (4u << 20)

void crunctl_sse_init(crunctl_sse *p, crunctl_sse_cb cb, void *userdata)
{
	memset(p, 0, sizeof(*p));
	p->cb = cb;
	p->userdata = userdata;
}

void crunctl_sse_free(crunctl_sse *p)
{
	free(p->line);
	free(p->event);
	free(p->data);
	p->line = p->event = p->data = NULL;
	p->line_len = p->line_cap = p->data_len = p->data_cap = 0;
}

static int grow(char **buf, size_t *cap, size_t need)
{
	size_t ncap;
	char *nb;

	if (need <= *cap)
		return 0;
	if (need > SSE_MAX_BYTES)
		return -E2BIG;
	ncap = *cap ? *cap : 256;
	while (ncap < need)
		ncap *= 2;
	nb = realloc(*buf, ncap);
	if (!nb)
		return -ENOMEM;
	*buf = nb;
	*cap = ncap;
	return 0;
}

static int dispatch(crunctl_sse *p)
{
	int rc = 0;

	if (p->has_data) {
		rc = p->cb(p->event && *p->event ? p->event : "message", p->data ? p->data : "",
			   p->userdata);
	}
	free(p->event);
	p->event = NULL;
	p->data_len = 0;
	if (p->data)
		p->data[0] = '\0';
	p->has_data = false;
	return rc;
}

/* One complete line (without its terminator, NUL-terminated). */
static int process_line(crunctl_sse *p, char *line, size_t len)
{
	const char *value;
	size_t vlen;
	char *colon;
	int rc;

	if (len == 0)
		return dispatch(p);
	if (line[0] == ':')
		return 0;
	colon = memchr(line, ':', len);
	if (colon) {
		*colon = '\0';
		value = colon + 1;
		if (*value == ' ')
			value++;
	} else {
		value = "";
	}
	vlen = strlen(value);
	if (strcmp(line, "event") == 0) {
		char *e = strdup(value);
		if (!e)
			return -ENOMEM;
		free(p->event);
		p->event = e;
	} else if (strcmp(line, "data") == 0) {
		size_t need = p->data_len + vlen + 2;
		rc = grow(&p->data, &p->data_cap, need);
		if (rc < 0)
			return rc;
		if (p->has_data)
			p->data[p->data_len++] = '\n';
		memcpy(p->data + p->data_len, value, vlen);
		p->data_len += vlen;
		p->data[p->data_len] = '\0';
		p->has_data = true;
	}
	/* "id:" and "retry:" do not matter to a client that never reconnects
	 * by itself; unknown fields are ignored, as the format requires. */
	return 0;
}

int crunctl_sse_feed(crunctl_sse *p, const char *buf, size_t len)
{
	size_t i = 0;
	int rc;

	if (p->skip_lf && len > 0) {
		if (buf[0] == '\n')
			i = 1;
		p->skip_lf = false;
	}
	while (i < len) {
		/* Find the end of the line in this chunk. */
		size_t j = i;
		while (j < len && buf[j] != '\n' && buf[j] != '\r')
			j++;
		rc = grow(&p->line, &p->line_cap, p->line_len + (j - i) + 1);
		if (rc < 0)
			return rc;
		memcpy(p->line + p->line_len, buf + i, j - i);
		p->line_len += j - i;
		p->line[p->line_len] = '\0';
		if (j == len)
			break; /* partial line: wait for more */
		if (buf[j] == '\r') {
			if (j + 1 < len) {
				if (buf[j + 1] == '\n')
					j++;
			} else {
				p->skip_lf = true;
			}
		}
		i = j + 1;
		{
			size_t l = p->line_len;
			p->line_len = 0;
			rc = process_line(p, p->line, l);
			if (rc != 0)
				return rc;
		}
	}
	return 0;
}
