/*
 * route.h — the HTTP API's routing table and query-parameter parsers:
 * pure functions (no MHD, no daemon state) so they are unit-tested
 * directly (tests/test-http.c).
 */
#ifndef CRUND_ROUTE_H
#define CRUND_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum crd_route_id {
	CRUND_R_NONE = 0,
	CRUND_R_JOBS,       /* /v1/jobs                GET POST */
	CRUND_R_JOB,        /* /v1/jobs/{id}           GET DELETE */
	CRUND_R_JOB_CANCEL, /* /v1/jobs/{id}/cancel    POST */
	CRUND_R_JOB_EVENTS, /* /v1/jobs/{id}/events    GET */
	CRUND_R_JOB_LOG,    /* /v1/jobs/{id}/log       GET */
	CRUND_R_PLUGINS,    /* /v1/plugins             GET */
	CRUND_R_PLUGIN,     /* /v1/plugins/{name}      GET */
	CRUND_R_INFO,       /* /v1/info                GET */
	CRUND_R_HEALTH,     /* /v1/health              GET */
	CRUND_R_METRICS,    /* /metrics                GET */
	CRUND_R_JOB_RETRY,  /* /v1/jobs/{id}/retry     POST */
	CRUND_R_EVENTS,     /* /v1/events              GET */
	CRUND_R_STATS,      /* /v1/stats               GET */
	CRUND_R_UI,         /* /ui, /ui/{file}, /      GET (the dashboard's files) */
} crd_route_id;

typedef enum crd_method {
	CRUND_M_OTHER = 0,
	CRUND_M_GET,
	CRUND_M_HEAD,
	CRUND_M_POST,
	CRUND_M_DELETE,
} crd_method;

crd_method crd_method_parse(const char *m);

typedef struct crd_route_match {
	crd_route_id route; /* CRUND_R_NONE when status is 404 */
	crd_method method;
	unsigned status;   /* 0: matched; 404 unknown path; 405 wrong method */
	const char *allow; /* for 405: the Allow header value */
	char param[128];   /* {id} or {name}, when the route has one */
} crd_route_match;

/* Match a request path (no query string: MHD strips it) and method.
 * HEAD is accepted wherever GET is.  A path parameter must be 1..127
 * bytes of [A-Za-z0-9._~-] (anything else is 404: ids and plugin names
 * never contain other bytes).  A trailing slash does not match. */
void crd_route(const char *method, const char *path, crd_route_match *ret);

/* ?wait=SECONDS: a number 0 < s <= 300 ("0" means no wait and gives 0).
 * -EINVAL otherwise. */
int crd_parse_wait(const char *s, double *ret);
/* ?limit=N: 1..1000; NULL gives the default 100. */
int crd_parse_limit(const char *s, size_t *ret);
/* ?state=a,b: a bit per state (jobs.h order); NULL gives 0 (all). */
int crd_parse_state_mask(const char *s, unsigned *ret);

#define CRUND_WAIT_MAX     300.0
#define CRUND_LIST_DEFAULT 100
#define CRUND_LIST_MAX     1000

#endif
