/*
 * http.c — crunctl's one libcurl easy handle, the mapping of transport
 * and API failures to the exit codes and sentences people read, and the
 * API's paths.
 *
 * One handle serves every request of a run, so a command that makes several
 * requests (submit with typed arguments, list following cursors, wait in
 * chunks) reuses one kept-alive connection.  Options common to all requests
 * are set once; each request sets only the method, URL, body and timeout.
 * Only a request made while that handle carries an event stream (the log
 * fetched once a stream is subscribed) gets a second handle, duplicated
 * from the first.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "crunctl.h"

/* Replies larger than this are refused: the daemon bounds results and logs
 * well below it, so anything bigger is not crund talking. */
#define CRUNCTL_MAX_REPLY       (64u << 20)
#define CRUNCTL_CONNECT_TIMEOUT 10L

/* One easy handle and the state of the transfer it carries. */
typedef struct xfer {
	CURL *curl;
	char errbuf[CURL_ERROR_SIZE];
	crunctl_response *resp;
	crunctl_sse *sse; /* streaming: body goes here when status is 200 */
	int sse_rc;       /* callback's stop value or parser error */
	bool too_big;
} xfer;

struct crunctl_client {
	xfer main; /* every request */
	xfer side; /* lazily: a request made while `main` streams */
	bool streaming;
	struct curl_slist *headers;
	char *base;  /* URL prefix without trailing '/' */
	char *where; /* for messages */
};

static size_t on_header(char *buf, size_t size, size_t n, void *userdata)
{
	xfer *c = userdata;
	size_t len = size * n;
	static const char name[] = "retry-after:";

	if (c->resp && len > sizeof(name) - 1 && strncasecmp(buf, name, sizeof(name) - 1) == 0) {
		const char *v = buf + sizeof(name) - 1;
		while (*v == ' ' || *v == '\t')
			v++;
		if (isdigit((unsigned char)*v))
			c->resp->retry_after = strtod(v, NULL);
	}
	return len;
}

static int append_body(crunctl_response *r, const char *buf, size_t len)
{
	char *nb;

	if (r->len + len + 1 > CRUNCTL_MAX_REPLY)
		return -E2BIG;
	nb = realloc(r->body, r->len + len + 1);
	if (!nb)
		return -ENOMEM;
	memcpy(nb + r->len, buf, len);
	r->body = nb;
	r->len += len;
	r->body[r->len] = '\0';
	return 0;
}

static size_t on_body(char *buf, size_t size, size_t n, void *userdata)
{
	xfer *c = userdata;
	size_t len = size * n;
	long status = 0;

	if (c->sse) {
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
		if (status == 200) {
			c->sse_rc = crunctl_sse_feed(c->sse, buf, len);
			return c->sse_rc ? 0 : len; /* 0 stops the transfer */
		}
	}
	if (append_body(c->resp, buf, len) < 0) {
		c->too_big = true;
		return 0;
	}
	return len;
}

/* Does the URL point at this machine?  Then no proxy from the environment
 * may carry the request (http_proxy without no_proxy is common). */
static bool url_is_loopback(const char *url)
{
	CURLU *u = curl_url();
	char *host = NULL;
	bool loop = false;

	if (!u)
		return false;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		loop = strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
		       strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0;
		curl_free(host);
	}
	curl_url_cleanup(u);
	return loop;
}

/* Point the handle's callbacks and error buffer at its own transfer state
 * (needed again after curl_easy_duphandle, which copies the pointers). */
static void bind_xfer(xfer *x)
{
	curl_easy_setopt(x->curl, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(x->curl, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->curl, CURLOPT_HEADERDATA, x);
}

crunctl_client *crunctl_client_new(const crunctl_client_opts *opts)
{
	crunctl_client *c = calloc(1, sizeof(*c));
	const char *url = opts->url ? opts->url : "http://127.0.0.1:7733";
	struct curl_slist *h;
	size_t n;

	if (!c)
		goto oom;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "crunctl: cannot initialise libcurl\n");
		free(c);
		return NULL;
	}
	c->main.curl = curl_easy_init();
	if (!c->main.curl) {
		fprintf(stderr, "crunctl: cannot initialise libcurl\n");
		goto fail;
	}
	if (opts->socket_path) {
		/* The host part is only for the Host header over a Unix socket. */
		c->base = strdup("http://localhost");
		if (asprintf(&c->where, "unix:%s", opts->socket_path) < 0)
			c->where = NULL;
		if (!c->base || !c->where)
			goto oom;
		curl_easy_setopt(c->main.curl, CURLOPT_UNIX_SOCKET_PATH, opts->socket_path);
	} else {
		c->base = strdup(url);
		c->where = strdup(url);
		if (!c->base || !c->where)
			goto oom;
		n = strlen(c->base);
		while (n > 0 && c->base[n - 1] == '/')
			c->base[--n] = '\0';
		if (url_is_loopback(c->base))
			curl_easy_setopt(c->main.curl, CURLOPT_NOPROXY, "*");
	}

	c->headers = curl_slist_append(NULL, "Accept: application/json");
	if (!c->headers)
		goto oom;
	/* No "Expect: 100-continue" round trip for bodies over 1 KiB. */
	if (!curl_slist_append(c->headers, "Expect:"))
		goto oom;
	if (opts->token) {
		char *auth;
		if (asprintf(&auth, "Authorization: Bearer %s", opts->token) < 0)
			goto oom;
		h = curl_slist_append(c->headers, auth);
		/* the list holds its own copy; do not leave a second one around */
		explicit_bzero(auth, strlen(auth));
		free(auth);
		if (!h)
			goto oom;
	}

	curl_easy_setopt(c->main.curl, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(c->main.curl, CURLOPT_USERAGENT, "crunctl/" PACKAGE_VERSION);
	curl_easy_setopt(c->main.curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->main.curl, CURLOPT_CONNECTTIMEOUT, CRUNCTL_CONNECT_TIMEOUT);
	curl_easy_setopt(c->main.curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->main.curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c->main.curl, CURLOPT_TCP_KEEPALIVE, 1L);
	if (opts->verbose)
		curl_easy_setopt(c->main.curl, CURLOPT_VERBOSE, 1L);
	bind_xfer(&c->main);
	return c;

oom:
	fprintf(stderr, "crunctl: out of memory\n");
fail:
	crunctl_client_free(c);
	return NULL;
}

void crunctl_client_free(crunctl_client *c)
{
	if (!c)
		return;
	if (c->main.curl)
		curl_easy_cleanup(c->main.curl);
	if (c->side.curl)
		curl_easy_cleanup(c->side.curl);
	curl_slist_free_all(c->headers);
	free(c->base);
	free(c->where);
	free(c);
	curl_global_cleanup();
}

const char *crunctl_client_where(const crunctl_client *c) { return c->where; }

char *crunctl_escape(crunctl_client *c, const char *segment)
{
	char *e = curl_easy_escape(c->main.curl, segment, 0);
	char *copy;

	if (!e)
		return NULL;
	copy = strdup(e);
	curl_free(e);
	return copy;
}

char *crunctl_job_path(crunctl_client *c, const char *id, const char *suffix)
{
	char *e = crunctl_escape(c, id), *p = NULL;

	if (!e || asprintf(&p, "/v1/jobs/%s%s", e, suffix ? suffix : "") < 0)
		p = NULL;
	free(e);
	if (!p)
		crunctl_oom();
	return p;
}

char *crunctl_plugin_path(crunctl_client *c, const char *name)
{
	char *e = crunctl_escape(c, name), *p = NULL;

	if (!e || asprintf(&p, "/v1/plugins/%s", e) < 0)
		p = NULL;
	free(e);
	if (!p)
		crunctl_oom();
	return p;
}

void crunctl_print_raw(const crunctl_response *resp)
{
	fwrite(resp->body, 1, resp->len, stdout);
	if (resp->len && resp->body[resp->len - 1] != '\n')
		putchar('\n');
}

void crunctl_response_free(crunctl_response *resp)
{
	free(resp->body);
	resp->body = NULL;
	resp->len = 0;
}

/* Lower-case the first letter of a system message so it reads inside a
 * sentence ("connection refused"). */
static void reason_text(xfer *c, CURLcode code, char *out, size_t len)
{
	long os_errno = 0;

	curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
	if (code == CURLE_COULDNT_CONNECT && os_errno)
		snprintf(out, len, "%s", strerror((int)os_errno));
	else if (code == CURLE_OPERATION_TIMEDOUT)
		snprintf(out, len, "timed out");
	else if (code == CURLE_COULDNT_RESOLVE_HOST)
		snprintf(out, len, "unknown host");
	else if (c->errbuf[0])
		snprintf(out, len, "%s", c->errbuf);
	else
		snprintf(out, len, "%s", curl_easy_strerror(code));
	if (out[0] && isupper((unsigned char)out[0]) && !isupper((unsigned char)out[1]))
		out[0] = (char)tolower((unsigned char)out[0]);
}

static int transport_error(crunctl_client *cl, xfer *c, CURLcode code)
{
	char reason[CURL_ERROR_SIZE + 64];

	switch (code) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
		reason_text(c, code, reason, sizeof(reason));
		fprintf(stderr,
			"crund is not reachable at %s (%s). Is the service running? "
			"Try: systemctl status crund\n",
			cl->where, reason);
		return CRUNCTL_EXIT_UNREACHABLE;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		reason_text(c, code, reason, sizeof(reason));
		fprintf(stderr,
			"crund at %s closed the connection (%s). Is the service restarting? "
			"Try: systemctl status crund\n",
			cl->where, reason);
		return CRUNCTL_EXIT_UNREACHABLE;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		fprintf(stderr, "crunctl: '%s' is not a URL crunctl can use (%s)\n", cl->where,
			c->errbuf[0] ? c->errbuf : curl_easy_strerror(code));
		return CRUNCTL_EXIT_USAGE;
	default:
		reason_text(c, code, reason, sizeof(reason));
		fprintf(stderr, "crunctl: request to %s failed: %s\n", cl->where, reason);
		return CRUNCTL_EXIT_INTERNAL;
	}
}

static int setup(crunctl_client *cl, xfer *c, const char *method, const char *path,
		 const char *body, double timeout, crunctl_response *resp)
{
	char *url;

	memset(resp, 0, sizeof(*resp));
	resp->retry_after = -1;
	c->resp = resp;
	c->errbuf[0] = '\0';
	c->too_big = false;
	if (asprintf(&url, "%s%s", cl->base, path) < 0) {
		fprintf(stderr, "crunctl: out of memory\n");
		return CRUNCTL_EXIT_INTERNAL;
	}
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	free(url); /* libcurl keeps its own copy */
		   /* crund speaks HTTP: another scheme (ftp://, file://) is a usage
	 * error at once, not a protocol talking to an HTTP server until the
	 * timeout */
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	/* HTTPGET resets any earlier POST body and custom method. */
	curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, NULL);
	/* A POST (a submission, a retry: not idempotent) goes on a new
	 * connection: on a reused one that dies before the answer, libcurl
	 * sends the request again by itself, and crund may have taken it
	 * the first time (two jobs). */
	curl_easy_setopt(c->curl, CURLOPT_FRESH_CONNECT, strcmp(method, "POST") == 0 ? 1L : 0L);
	if (strcmp(method, "POST") == 0) {
		const char *b = body ? body : "";
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(b));
		curl_easy_setopt(c->curl, CURLOPT_COPYPOSTFIELDS, b);
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	}
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000.0));
	return 0;
}

/* The transfer for a plain request: the main handle, or while it carries
 * an event stream a second handle (a request made from a stream callback,
 * e.g. fetching the log once the stream is subscribed). */
static xfer *request_xfer(crunctl_client *cl)
{
	if (!cl->streaming)
		return &cl->main;
	if (!cl->side.curl) {
		cl->side.curl = curl_easy_duphandle(cl->main.curl);
		if (!cl->side.curl)
			return NULL;
		bind_xfer(&cl->side);
	}
	return &cl->side;
}

int crunctl_request(crunctl_client *cl, const char *method, const char *path, const char *body,
		    double timeout, crunctl_response *resp)
{
	CURLcode code;
	xfer *c = request_xfer(cl);
	int rc;

	if (!c) {
		memset(resp, 0, sizeof(*resp));
		fprintf(stderr, "crunctl: cannot initialise libcurl\n");
		return CRUNCTL_EXIT_INTERNAL;
	}
	rc = setup(cl, c, method, path, body, timeout, resp);
	static const char ctype[] = "Content-Type: application/json";
	struct curl_slist *extra = NULL;

	if (rc)
		return rc;
	if (body) {
		/* Content-Type only on requests that carry JSON: a temporary list
		 * chained in front of the common headers. */
		extra = curl_slist_append(NULL, ctype);
		if (!extra) {
			fprintf(stderr, "crunctl: out of memory\n");
			return CRUNCTL_EXIT_INTERNAL;
		}
		extra->next = cl->headers;
		curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, extra);
	}
	code = curl_easy_perform(c->curl);
	if (extra) {
		curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, cl->headers);
		extra->next = NULL;
		curl_slist_free_all(extra);
	}
	c->resp = NULL;
	if (c->too_big) {
		fprintf(stderr, "crunctl: the reply from %s is too large or memory ran out\n",
			cl->where);
		crunctl_response_free(resp);
		return CRUNCTL_EXIT_INTERNAL;
	}
	if (code != CURLE_OK) {
		crunctl_response_free(resp);
		return transport_error(cl, c, code);
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &resp->status);
	if (!resp->body && append_body(resp, "", 0) < 0) {
		fprintf(stderr, "crunctl: out of memory\n");
		return CRUNCTL_EXIT_INTERNAL;
	}
	return 0;
}

int crunctl_stream(crunctl_client *cl, const char *path, crunctl_sse_cb cb, void *userdata,
		   crunctl_response *resp)
{
	xfer *c = &cl->main;
	crunctl_sse sse;
	CURLcode code;
	int rc = setup(cl, c, "GET", path, NULL, 0, resp);

	if (rc)
		return rc;
	crunctl_sse_init(&sse, cb, userdata);
	c->sse = &sse;
	c->sse_rc = 0;
	cl->streaming = true;
	code = curl_easy_perform(c->curl);
	cl->streaming = false;
	c->sse = NULL;
	c->resp = NULL;
	crunctl_sse_free(&sse);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &resp->status);
	if (code == CURLE_WRITE_ERROR && c->sse_rc > 0)
		return 0; /* the callback asked to stop */
	if (code == CURLE_WRITE_ERROR && c->sse_rc < 0) {
		fprintf(stderr, "crunctl: cannot read the event stream from %s: %s\n", cl->where,
			strerror(-c->sse_rc));
		return CRUNCTL_EXIT_INTERNAL;
	}
	if (c->too_big) {
		fprintf(stderr, "crunctl: the reply from %s is too large or memory ran out\n",
			cl->where);
		crunctl_response_free(resp);
		return CRUNCTL_EXIT_INTERNAL;
	}
	if (code != CURLE_OK) {
		crunctl_response_free(resp);
		return transport_error(cl, c, code);
	}
	if (!resp->body && append_body(resp, "", 0) < 0) {
		fprintf(stderr, "crunctl: out of memory\n");
		return CRUNCTL_EXIT_INTERNAL;
	}
	return 0;
}

int crunctl_report_api_error(const crunctl_response *resp)
{
	json_t *root = resp->body ? json_loads(resp->body, 0, NULL) : NULL;
	json_t *err = json_object_get(root, "error");
	const char *msg = json_string_value(json_object_get(err, "message"));
	const char *code = json_string_value(json_object_get(err, "code"));

	if (msg)
		fprintf(stderr, "crunctl: %s", msg);
	else
		fprintf(stderr, "crunctl: crund answered HTTP %ld", resp->status);
	if (code)
		fprintf(stderr, " (%s)", code);
	fputc('\n', stderr);
	if (resp->status == 401)
		fprintf(stderr, "crunctl: give the daemon's token with --token-file FILE or "
				"CRUND_TOKEN_FILE\n");
	if ((resp->status == 503 || resp->status == 429) && resp->retry_after >= 0)
		fprintf(stderr, "crunctl: try again in %.0f s\n", resp->retry_after);
	json_decref(root);
	return CRUNCTL_EXIT_API;
}

int crunctl_call(crunctl *ctl, const char *method, const char *path, const char *body,
		 double timeout, crunctl_response *resp, json_t **ret)
{
	json_error_t jerr;
	int rc = crunctl_request(ctl->client, method, path, body, timeout, resp);

	if (rc)
		return rc;
	if (resp->status < 200 || resp->status >= 300) {
		/* --json: the API's answer unchanged on stdout, the error's
		 * JSON too (the sentence still goes to stderr) */
		if (ctl->json && resp->len && resp->body[0] == '{') {
			fwrite(resp->body, 1, resp->len, stdout);
			if (resp->body[resp->len - 1] != '\n')
				putchar('\n');
			fflush(stdout);
		}
		rc = crunctl_report_api_error(resp);
		crunctl_response_free(resp);
		return rc;
	}
	if (!ret)
		return 0;
	*ret = json_loadb(resp->body, resp->len, JSON_DECODE_ANY, &jerr);
	if (!*ret) {
		fprintf(stderr, "crunctl: crund sent a reply that is not JSON (%s)\n", jerr.text);
		crunctl_response_free(resp);
		return CRUNCTL_EXIT_INTERNAL;
	}
	return 0;
}
