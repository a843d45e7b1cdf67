/*
 * route.c — routing table and query parsers; see route.h.
 *
 * Hand-written matching over a handful of fixed prefixes: cheaper than a
 * general router on the hot path (POST /v1/jobs is a strcmp).
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "http/route.h"
#include "jobs/jobs.h"

crd_method crd_method_parse(const char *m)
{
	if (!strcmp(m, "GET"))
		return CRUND_M_GET;
	if (!strcmp(m, "POST"))
		return CRUND_M_POST;
	if (!strcmp(m, "HEAD"))
		return CRUND_M_HEAD;
	if (!strcmp(m, "DELETE"))
		return CRUND_M_DELETE;
	return CRUND_M_OTHER;
}

static bool param_ok(const char *p, size_t n)
{
	if (n == 0 || n >= 128)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == '~'))
			return false;
	}
	return true;
}

/* Method sets per route. */
enum { A_GET = 1, A_POST = 2, A_DELETE = 4 };

static void finish(crd_route_match *m, crd_route_id r, unsigned allowed, const char *allow)
{
	bool ok;
	switch (m->method) {
	case CRUND_M_GET:
	case CRUND_M_HEAD:
		ok = allowed & A_GET;
		break;
	case CRUND_M_POST:
		ok = allowed & A_POST;
		break;
	case CRUND_M_DELETE:
		ok = allowed & A_DELETE;
		break;
	default:
		ok = false;
		break;
	}
	m->route = r;
	m->allow = allow;
	m->status = ok ? 0 : 405;
}

void crd_route(const char *method, const char *path, crd_route_match *m)
{
	m->route = CRUND_R_NONE;
	m->method = crd_method_parse(method);
	m->status = 404;
	m->allow = NULL;
	m->param[0] = '\0';

	if (!strcmp(path, "/metrics")) {
		finish(m, CRUND_R_METRICS, A_GET, "GET, HEAD");
		return;
	}
	/* the dashboard: "/ui" redirects to "/ui/" (param empty), a file is
	 * one path segment ("/ui/" is index.html) */
	if (!strcmp(path, "/ui")) {
		finish(m, CRUND_R_UI, A_GET, "GET, HEAD");
		return;
	}
	if (!strncmp(path, "/ui/", 4)) {
		const char *f = path + 4;
		size_t n = strlen(f);
		if (n == 0)
			f = "index.html", n = 10;
		if (!param_ok(f, n))
			return;
		memcpy(m->param, f, n + 1);
		finish(m, CRUND_R_UI, A_GET, "GET, HEAD");
		return;
	}
	if (strncmp(path, "/v1/", 4))
		return;
	const char *p = path + 4;
	if (!strncmp(p, "jobs", 4) && (p[4] == '\0' || p[4] == '/')) {
		if (!p[4]) {
			finish(m, CRUND_R_JOBS, A_GET | A_POST, "GET, HEAD, POST");
			return;
		}
		const char *id = p + 5, *slash = strchr(id, '/');
		size_t n = slash ? (size_t)(slash - id) : strlen(id);
		if (!param_ok(id, n))
			return;
		memcpy(m->param, id, n);
		m->param[n] = '\0';
		if (!slash) {
			finish(m, CRUND_R_JOB, A_GET | A_DELETE, "GET, HEAD, DELETE");
		} else if (!strcmp(slash, "/cancel")) {
			finish(m, CRUND_R_JOB_CANCEL, A_POST, "POST");
		} else if (!strcmp(slash, "/retry")) {
			finish(m, CRUND_R_JOB_RETRY, A_POST, "POST");
		} else if (!strcmp(slash, "/events")) {
			finish(m, CRUND_R_JOB_EVENTS, A_GET, "GET, HEAD");
		} else if (!strcmp(slash, "/log")) {
			finish(m, CRUND_R_JOB_LOG, A_GET, "GET, HEAD");
		} else {
			m->param[0] = '\0';
		}
		return;
	}
	if (!strncmp(p, "plugins", 7) && (p[7] == '\0' || p[7] == '/')) {
		if (!p[7]) {
			finish(m, CRUND_R_PLUGINS, A_GET, "GET, HEAD");
			return;
		}
		const char *name = p + 8;
		size_t n = strlen(name);
		if (!param_ok(name, n))
			return;
		memcpy(m->param, name, n + 1);
		finish(m, CRUND_R_PLUGIN, A_GET, "GET, HEAD");
		return;
	}
	if (!strcmp(p, "info"))
		finish(m, CRUND_R_INFO, A_GET, "GET, HEAD");
	else if (!strcmp(p, "events"))
		finish(m, CRUND_R_EVENTS, A_GET, "GET, HEAD");
	else if (!strcmp(p, "stats"))
		finish(m, CRUND_R_STATS, A_GET, "GET, HEAD");
	else if (!strcmp(p, "health"))
		finish(m, CRUND_R_HEALTH, A_GET, "GET, HEAD");
}

int crd_parse_wait(const char *s, double *ret)
{
	char *end;
	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	double d = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(d) || d < 0 || d > CRUND_WAIT_MAX)
		return -EINVAL;
	*ret = d;
	return 0;
}

int crd_parse_limit(const char *s, size_t *ret)
{
	if (!s) {
		*ret = CRUND_LIST_DEFAULT;
		return 0;
	}
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > CRUND_LIST_MAX)
		return -EINVAL;
	*ret = (size_t)v;
	return 0;
}

int crd_parse_state_mask(const char *s, unsigned *ret)
{
	unsigned mask = 0;
	if (!s) {
		*ret = 0;
		return 0;
	}
	if (!*s)
		return -EINVAL;
	while (*s) {
		const char *c = strchr(s, ',');
		size_t n = c ? (size_t)(c - s) : strlen(s);
		char name[16];
		if (n == 0 || n >= sizeof(name))
			return -EINVAL;
		memcpy(name, s, n);
		name[n] = '\0';
		int st = crd_job_state_parse(name);
		if (st < 0)
			return -EINVAL;
		mask |= 1u << st;
		s += n;
		if (*s == ',' && !*++s)
			return -EINVAL; /* "failed,": an empty last name */
	}
	*ret = mask;
	return 0;
}
