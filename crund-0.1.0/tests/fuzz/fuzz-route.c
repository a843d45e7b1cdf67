/*
 * fuzz-route.c — the request line and the query values of the HTTP API:
 * crd_route() (method + path, as libmicrohttpd hands them over, query
 * string already stripped) and the ?wait, ?limit and ?state parsers
 * (daemon/route.c).
 *
 * Input: up to five '\n'-separated fields: METHOD, PATH, wait, limit,
 * state; a missing field is NULL (the parameter was absent), which the
 * parsers must take too.
 */
#include "config.h"

#include <errno.h>
#include <math.h>

#include "fuzz.h"
#include "jobs/jobs.h"
#include "http/route.h"

static bool param_chars_ok(const char *p)
{
	size_t n = strlen(p);
	if (n == 0 || n > 127)
		return false;
	for (; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~",
			    *p))
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size);
	char *f[5];
	fuzz_split_lines(text, f, 5);

	if (f[0] && f[1]) {
		crd_route_match m;
		memset(&m, 0xa5, sizeof(m)); /* every field must be written */
		crd_route(f[0], f[1], &m);
		FUZZ_CHECK(m.status == 0 || m.status == 404 || m.status == 405);
		FUZZ_CHECK(memchr(m.param, '\0', sizeof(m.param)));
		if (m.status == 404) {
			FUZZ_CHECK(m.route == CRUND_R_NONE);
		} else {
			FUZZ_CHECK(m.route > CRUND_R_NONE && m.route <= CRUND_R_METRICS);
			FUZZ_CHECK(m.allow && *m.allow);
			/* The path parameter is a substring of the path made only of
			 * the bytes the header promises (ids end up in messages). */
			if (m.param[0]) {
				FUZZ_CHECK(param_chars_ok(m.param));
				FUZZ_CHECK(strstr(f[1], m.param));
			}
			FUZZ_CHECK(!strncmp(f[1], "/v1/", 4) || !strcmp(f[1], "/metrics"));
		}
		/* HEAD is GET without a body: they route the same. */
		if (!strcmp(f[0], "GET")) {
			crd_route_match h;
			crd_route("HEAD", f[1], &h);
			FUZZ_CHECK(h.route == m.route && h.status == m.status);
			FUZZ_CHECK(!strcmp(h.param, m.param));
		}
	}

	double wait = -1;
	int rc = crd_parse_wait(f[2], &wait);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc == 0)
		FUZZ_CHECK(isfinite(wait) && wait >= 0 && wait <= CRUND_WAIT_MAX);

	size_t limit = 0;
	rc = crd_parse_limit(f[3], &limit);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc == 0)
		FUZZ_CHECK(limit >= 1 && limit <= CRUND_LIST_MAX);

	unsigned mask = 0xdead;
	rc = crd_parse_state_mask(f[4], &mask);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc == 0)
		FUZZ_CHECK(mask < (1u << CRUND_JOB_NSTATES) && (f[4] == NULL || mask != 0));

	free(text);
	return 0;
}
