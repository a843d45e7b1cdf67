/*
 * ui.c — the dashboard's files under /ui/ (docs/ARCHITECTURE.md §5.10):
 * compiled in (ui.h), served without the token (they hold no data; every
 * API call the page makes needs it), revalidated by ETag, and locked to
 * this origin by a Content-Security-Policy: no script, style, image or
 * connection to another host, no inline script, no framing.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "api/ui.h"

#define UI_CSP                                                                           \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "      \
	"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; " \
	"frame-ancestors 'none'"

static const char *content_type(const char *name)
{
	const char *dot = strrchr(name, '.');
	if (!dot)
		return "application/octet-stream";
	if (!strcmp(dot, ".html"))
		return "text/html; charset=utf-8";
	if (!strcmp(dot, ".js"))
		return "text/javascript; charset=utf-8";
	if (!strcmp(dot, ".css"))
		return "text/css; charset=utf-8";
	if (!strcmp(dot, ".svg"))
		return "image/svg+xml";
	return "application/octet-stream";
}

/* A strong ETag from the file's bytes (FNV-1a, 64 bits): the files change
 * only with the binary, so it is computed once per file. */
static const char *etag_of(size_t i)
{
	static char tags[64][24];
	if (i >= sizeof(tags) / sizeof(tags[0]))
		return NULL;
	if (!tags[i][0]) {
		uint64_t h = UINT64_C(0xcbf29ce484222325);
		for (size_t k = 0; k < crd_ui_files[i].len; k++) {
			h ^= crd_ui_files[i].data[k];
			h *= UINT64_C(0x100000001b3);
		}
		snprintf(tags[i], sizeof(tags[i]), "\"%016" PRIx64 "\"", h);
	}
	return tags[i];
}

crd_mhd_result crd_api_ui(crd_req *r, const char *name)
{
	if (!*name) {
		static const char moved[] = "the dashboard is at /ui/\n";
		crd_resp_opts o = {.location = "/ui/", .content_type = "text/plain; charset=utf-8"};
		return crd_http_respond(r, 301, moved, sizeof(moved) - 1, &o);
	}
	size_t i;
	for (i = 0; crd_ui_files[i].name; i++)
		if (!strcmp(crd_ui_files[i].name, name))
			break;
	if (!crd_ui_files[i].name)
		return crd_http_error(r, 404, "not_found", NULL, "no file /ui/%s", name);
	const char *etag = etag_of(i);
	const char *headers[] = {
		"Content-Security-Policy",
		UI_CSP,
		"X-Content-Type-Options",
		"nosniff",
		"Referrer-Policy",
		"no-referrer",
		/* revalidate every time: a new crund may serve new files */
		"Cache-Control",
		"no-cache",
		etag ? "ETag" : NULL,
		etag,
		NULL,
	};
	crd_resp_opts o = {.content_type = content_type(name), .headers = headers};
	const char *inm = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
						      MHD_HTTP_HEADER_IF_NONE_MATCH);
	if (etag && inm && (strstr(inm, etag) || !strcmp(inm, "*")))
		return crd_http_respond(r, 304, NULL, 0, &o);
	return crd_http_respond(r, 200, (const char *)crd_ui_files[i].data, crd_ui_files[i].len,
				&o);
}
