/*
 * http.c — the bundled `http` plugin: one job, `request`, that calls a URL
 * and returns {status, headers, body}.
 *
 * The transfer runs on the daemon's loop through crund_curl_perform (one
 * shared libcurl multi: sockets and timer on the loop, threaded DNS), so
 * a thousand requests in flight cost a thousand small records, not a
 * thousand threads; this file only sets up an easy handle per request and
 * reads what came back.
 *
 * Redirects are followed here, one hop at a time, not by libcurl
 * (CURLOPT_FOLLOWLOCATION stays off): every hop's URL goes through the
 * same checks as the submitted one (http or https, and --http-allow), and
 * the method, body and credentials change the way a browser's do (303,
 * and 301/302 after a POST, become a GET without a body; Authorization
 * and Cookie are not sent to another origin).
 *
 * Server-side request forgery: whoever may submit jobs can make crund
 * send requests from where it runs (to 127.0.0.1, the local network, a
 * cloud's metadata address).  --http-allow restricts the hosts; it
 * matches the URL's host name, not the address it resolves to.  See the
 * README's "The http plugin".
 */
#define _GNU_SOURCE /* asprintf */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <crund/plugin.h>
#include <curl/curl.h>

#include "common/jsondepth.h"

#define HTTP_MAX_REDIRECTS    10
#define HTTP_MAX_HEADER_BYTES (256 * 1024) /* all response header lines of one answer */
#define HTTP_MAX_METHOD       16

/* ------------------------------------------------------- http-allow */

/* Case-insensitive glob: '*' any run, '?' one character; nothing else is
 * special (so "[::1]" is literal). */
static bool glob_match(const char *p, const char *s)
{
	const char *star = NULL, *back = NULL;

	while (*s) {
		if (*p == '*') {
			star = ++p;
			back = s;
		} else if (*p == '?' ||
			   (*p && tolower((unsigned char)*p) == tolower((unsigned char)*s))) {
			p++;
			s++;
		} else if (star) {
			p = star;
			s = ++back;
		} else {
			return false;
		}
	}
	while (*p == '*')
		p++;
	return !*p;
}

/* One --http-allow pattern against a host (as the URL writes it: IPv6 in
 * brackets) and port.  A pattern is HOSTGLOB or HOSTGLOB:PORT, where PORT
 * is digits or '*'; an IPv6 host is written in brackets. */
static bool allow_match(const char *pattern, const char *host, long port)
{
	char hp[256];
	const char *colon = strrchr(pattern, ':');
	const char *close = strrchr(pattern, ']');
	const char *portpat = NULL;

	if (colon && (!close || colon > close) &&
	    (pattern[0] == '[' || !strchr(pattern, ':') || colon == strchr(pattern, ':')))
		portpat = colon + 1;
	size_t hlen = portpat ? (size_t)(colon - pattern) : strlen(pattern);
	if (hlen >= sizeof(hp))
		return false;
	memcpy(hp, pattern, hlen);
	hp[hlen] = '\0';
	if (!glob_match(hp, host))
		return false;
	if (!portpat || !strcmp(portpat, "*"))
		return true;
	char *end;
	long want = strtol(portpat, &end, 10);
	return *portpat && !*end && want == port;
}

/* The URL's host and port are allowed by --http-allow (all are when it
 * is empty). */
static bool host_allowed(const crund_host_api *host, const char *h, long port)
{
	const char *const *allow = crund_config_list(host, "http-allow");

	if (!allow[0])
		return true;
	for (size_t i = 0; allow[i]; i++)
		if (allow_match(allow[i], h, port))
			return true;
	return false;
}

/* Parse and check a URL: http or https, a host, allowed.  On success
 * *ret_u owns the parsed URL (curl_url_cleanup).  On failure code and
 * message say why. */
static int url_check(const crund_host_api *host, const char *url, CURLU **ret_u, char *code,
		     size_t codelen, char *msg, size_t msglen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *h = NULL, *portstr = NULL;
	int rc = -EINVAL;

	if (!u)
		return -ENOMEM;
	CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
	if (uc != CURLUE_OK) {
		snprintf(code, codelen, "invalid_url");
		snprintf(msg, msglen, "url '%.160s' is not a valid URL (%s)", url,
			 uc == CURLUE_BAD_SCHEME ? "no http:// or https://" : "unparsable");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") && strcmp(scheme, "https"))) {
		snprintf(code, codelen, "invalid_url");
		snprintf(msg, msglen, "url '%.160s': only http and https are allowed", url);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK || !h[0]) {
		snprintf(code, codelen, "invalid_url");
		snprintf(msg, msglen, "url '%.160s' has no host", url);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_PORT, &portstr, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		snprintf(code, codelen, "invalid_url");
		snprintf(msg, msglen, "url '%.160s' has no port", url);
		goto out;
	}
	long port = strtol(portstr, NULL, 10);
	if (!host_allowed(host, h, port)) {
		snprintf(code, codelen, "host_not_allowed");
		snprintf(msg, msglen,
			 "host '%.100s' port %ld is not allowed by http-allow (the operator's "
			 "list of hosts this daemon may call)",
			 h, port);
		goto out;
	}
	*ret_u = u;
	u = NULL;
	rc = 0;
out:
	curl_free(scheme);
	curl_free(h);
	curl_free(portstr);
	curl_url_cleanup(u);
	return rc;
}

/* ------------------------------------------------------- arguments */

static bool method_ok(const char *m)
{
	size_t n = 0;
	if (!m)
		return false;
	for (; m[n]; n++)
		if (n >= HTTP_MAX_METHOD || m[n] < 'A' || m[n] > 'Z')
			return false;
	return n > 0;
}

/* A header name is an RFC 9110 token; a value has no CR, LF or NUL. */
static bool header_ok(const char *name, const char *value)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~";
	if (!name[0])
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(tchar, *p))
			return false;
	for (const char *p = value; *p; p++)
		if (*p == '\r' || *p == '\n')
			return false;
	return true;
}

/* Headers that frame the message on the connection: libcurl sets them
 * from the body it sends.  Given by a job, a Content-Length shorter than
 * the body left the rest on a kept-alive connection as the next request,
 * and every later job to that host got the answer of the one before. */
static bool framing_header(const char *name)
{
	static const char *const names[] = {"Content-Length", "Transfer-Encoding", "Connection",
					    "Keep-Alive",     "Upgrade",           "TE",
					    "Trailer"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcasecmp(name, names[i]))
			return true;
	return false;
}

static bool status_ok(const json_t *v)
{
	return json_is_integer(v) && json_integer_value(v) >= 100 && json_integer_value(v) <= 599;
}

/* expect_status: absent (any 2xx), an integer, or a non-empty array of
 * integers, each 100..599. */
static bool expect_ok(const json_t *e)
{
	if (!e || json_is_null(e) || status_ok(e))
		return true;
	if (!json_is_array(e) || !json_array_size(e))
		return false;
	size_t i;
	json_t *v;
	json_array_foreach(e, i, v) if (!status_ok(v)) return false;
	return true;
}

static bool expected(const json_t *e, long status)
{
	if (!e || json_is_null(e))
		return status >= 200 && status <= 299;
	if (json_is_integer(e))
		return json_integer_value(e) == status;
	size_t i;
	json_t *v;
	json_array_foreach(e, i, v) if (json_integer_value(v) == status) return true;
	return false;
}

#define REFUSE(c, ...)                                                     \
	do {                                                               \
		snprintf(err->code, sizeof(err->code), "%s", c);           \
		snprintf(err->message, sizeof(err->message), __VA_ARGS__); \
		return -EINVAL;                                            \
	} while (0)

/* The submission's check (ABI 1.3): what the argument specs cannot say. */
static int request_check(const crund_host_api *host, void *state, const json_t *args,
			 crund_check_error *err)
{
	(void)state;
	const char *method = json_string_value(json_object_get(args, "method"));
	if (!method_ok(method))
		REFUSE("invalid_args",
		       "argument 'method' must be 1 to %d capital letters, got '%.32s'",
		       HTTP_MAX_METHOD, method);
	const json_t *hdrs = json_object_get(args, "headers");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)hdrs, k, v)
	{
		if (!json_is_string(v))
			REFUSE("invalid_args", "header '%.64s' must be a string", k);
		if (!header_ok(k, json_string_value(v)))
			REFUSE("invalid_args",
			       "header '%.64s' is not a valid header name, or its value has a line "
			       "break",
			       k);
		if (framing_header(k))
			REFUSE("invalid_args",
			       "header '%.64s' is set by crund from the request it sends (it "
			       "frames the message on the connection)",
			       k);
	}
	if (json_object_get(args, "body") && json_object_get(args, "json"))
		REFUSE("invalid_args", "give 'body' (text) or 'json', not both");
	if (!expect_ok(json_object_get(args, "expect_status")))
		REFUSE("invalid_args", "argument 'expect_status' must be a status (100-599) or a "
				       "non-empty array of them");
	CURLU *u = NULL;
	int rc = url_check(host, json_string_value(json_object_get(args, "url")), &u, err->code,
			   sizeof(err->code), err->message, sizeof(err->message));
	curl_url_cleanup(u);
	return rc;
}

/* ---------------------------------------------------------- request */

typedef struct request {
	crund_job *job;
	CURL *easy;
	struct curl_slist *hdrs;
	char *method;     /* this hop's */
	const char *body; /* this hop's (NULL: none) */
	size_t body_len;
	char *json_body; /* the serialised 'json' argument (owned) */
	bool drop_credentials;
	/* the answer */
	char *data;
	size_t len, cap, max;
	bool too_large;
	double connect_timeout; /* s, this hop's; 0: not before the request's timeout */
	size_t header_bytes;
	json_t *headers; /* lowercase name -> value (repeats joined by ", ") */
	char errbuf[CURL_ERROR_SIZE];
} request;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	request *r = ud;
	size_t len = size * n;

	if (len > r->max - r->len) {
		r->too_large = true;
		return 0; /* CURLE_WRITE_ERROR */
	}
	if (r->len + len + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < r->len + len + 1)
			cap *= 2;
		char *d = realloc(r->data, cap);
		if (!d)
			return 0;
		r->data = d;
		r->cap = cap;
	}
	memcpy(r->data + r->len, p, len);
	r->len += len;
	r->data[r->len] = '\0';
	return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	request *r = ud;
	size_t len = size * n;

	r->header_bytes += len;
	if (r->header_bytes > HTTP_MAX_HEADER_BYTES) {
		r->too_large = true;
		return 0;
	}
	if (len >= 5 && !memcmp(p, "HTTP/", 5)) {
		/* a new answer (after a 100 Continue, or an interim one):
		 * only the last one's headers are kept */
		json_object_clear(r->headers);
		r->header_bytes = len;
		return len;
	}
	const char *colon = memchr(p, ':', len);
	if (!colon || colon == p)
		return len; /* the blank line, or not a header */
	size_t nlen = (size_t)(colon - p);
	const char *v = colon + 1, *end = p + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
		end--;
	char name[128];
	if (nlen >= sizeof(name))
		return len;
	for (size_t i = 0; i < nlen; i++)
		name[i] = (char)tolower((unsigned char)p[i]);
	name[nlen] = '\0';
	json_t *value = json_stringn(v, (size_t)(end - v));
	if (!value) /* not UTF-8: keep it readable */
		return len;
	json_t *old = json_object_get(r->headers, name);
	if (old) {
		size_t ol = json_string_length(old);
		char *j = malloc(ol + 2 + json_string_length(value) + 1);
		if (j) {
			memcpy(j, json_string_value(old), ol);
			memcpy(j + ol, ", ", 2);
			memcpy(j + ol + 2, json_string_value(value), json_string_length(value) + 1);
			json_object_set_new(r->headers, name, json_string(j));
			free(j);
		}
		json_decref(value);
	} else {
		json_object_set_new(r->headers, name, value);
	}
	return len;
}

/* The user's headers (without credentials after a cross-origin redirect)
 * plus ours: Idempotency-Key, Content-Type for 'json', no Expect. */
static int build_headers(request *r, const json_t *args)
{
	const json_t *hdrs = json_object_get(args, "headers");
	const char *k, *key = crund_job_idempotency_key(r->job);
	json_t *v;
	bool have_ctype = false, have_idem = false;
	char *line = NULL;
	int rc = 0;

	curl_slist_free_all(r->hdrs);
	r->hdrs = NULL;
	json_object_foreach((json_t *)hdrs, k, v)
	{
		const char *val = json_string_value(v);
		if (r->drop_credentials &&
		    (!strcasecmp(k, "authorization") || !strcasecmp(k, "cookie")))
			continue;
		if (!strcasecmp(k, "content-type")) {
			if (!r->body)
				continue; /* the body went (a 303): so does its type */
			have_ctype = true;
		}
		if (!strcasecmp(k, "idempotency-key"))
			have_idem = true;
		free(line);
		/* "Name;" is libcurl's way to send a header with an empty value */
		if (asprintf(&line, val[0] ? "%s: %s" : "%s;", k, val) < 0) {
			line = NULL;
			return -ENOMEM;
		}
		struct curl_slist *l = curl_slist_append(r->hdrs, line);
		if (!l) {
			rc = -ENOMEM;
			goto out;
		}
		r->hdrs = l;
	}
	const char *extra[3];
	size_t n = 0;
	char idem[600];
	if (key && !have_idem) {
		snprintf(idem, sizeof(idem), "Idempotency-Key: %s", key);
		extra[n++] = idem;
	}
	if (r->body && r->json_body && r->body == r->json_body && !have_ctype)
		extra[n++] = "Content-Type: application/json";
	extra[n++] = "Expect:"; /* no 100-continue round trip before a body */
	for (size_t i = 0; i < n; i++) {
		struct curl_slist *l = curl_slist_append(r->hdrs, extra[i]);
		if (!l) {
			rc = -ENOMEM;
			goto out;
		}
		r->hdrs = l;
	}
out:
	free(line);
	return rc;
}

/* Set one hop up on the (reset) easy handle. */
static int setup_hop(request *r, const json_t *args, CURLU *u, double remaining)
{
	CURL *e = r->easy;
	const crund_host_api *host = r->job->api;
	char ua[64];
	int rc;

	curl_easy_reset(e);
	if ((rc = build_headers(r, args)) < 0)
		return rc;
	snprintf(ua, sizeof(ua), "crund/%s", host->daemon_version ? host->daemon_version : "?");
	double ct = json_number_value(json_object_get(args, "connect_timeout"));
	long total_ms = (long)ceil(remaining * 1000.0);
	long ct_ms = (long)ceil(ct * 1000.0);
	if (total_ms < 1)
		total_ms = 1;
	if (ct_ms > total_ms)
		ct_ms = total_ms;
	r->connect_timeout = ct_ms < total_ms ? ct : 0; /* 0: the request's time ends first */
	r->errbuf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_CURLU, u);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, ua);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, total_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ct_ms);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* what libcurl can decode */
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	/* max_response_bytes is the decoded body's limit, counted in on_body:
	 * not CURLOPT_MAXFILESIZE, which libcurl checks against Content-Length
	 * (a compressed size, and announced by HEAD answers too). */

	bool is_get = !strcmp(r->method, "GET"), is_post = !strcmp(r->method, "POST");
	if (!strcmp(r->method, "HEAD")) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else if (r->body || is_post) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
		if (!is_post)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
	} else if (!is_get) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
	}
	return 0;
}

/* The failure of a transfer that did not end with an answer. */
static int transfer_failed(request *r, int code, const char *url, double timeout)
{
	const char *why = r->errbuf[0] ? r->errbuf : curl_easy_strerror((CURLcode)code);

	if (r->too_large || code == CURLE_FILESIZE_EXCEEDED)
		return crund_job_fail(r->job, "response_too_large",
				      "%s %s: the answer is larger than max_response_bytes (%zu)",
				      r->method, url, r->max);
	curl_off_t connected = 0;
	switch (code) {
	case CURLE_OPERATION_TIMEDOUT:
		/* before the connection was made: connect_timeout ran out (unless
		 * the whole request's time did first) */
		if (curl_easy_getinfo(r->easy, CURLINFO_CONNECT_TIME_T, &connected) == CURLE_OK &&
		    connected == 0 && r->connect_timeout > 0)
			return crund_job_fail(
				r->job, "connect_error",
				"%s %s: no connection within connect_timeout (%g s; %s)", r->method,
				url, r->connect_timeout, why);
		return crund_job_fail(r->job, "timeout",
				      "%s %s: no complete answer within %g s (%s)", r->method, url,
				      timeout, why);
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
		return crund_job_fail(r->job, "connect_error", "%s %s: %s", r->method, url, why);
	case CURLE_OUT_OF_MEMORY:
		/* libcurl says so too of one header line over its 100 KiB
		 * (CURL_MAX_HTTP_HEADER): the answer's fault, most likely */
		return crund_job_fail(r->job, "transfer_error",
				      "%s %s: %s (a header line of the answer over libcurl's "
				      "100 KiB, or no memory)",
				      r->method, url, why);
	default:
		return crund_job_fail(r->job, "transfer_error", "%s %s: %s", r->method, url, why);
	}
}

/* Retry-After: delay-seconds or an HTTP date; -1 when absent or bad. */
static double retry_after(const json_t *headers)
{
	const char *v = json_string_value(json_object_get(headers, "retry-after"));
	if (!v || !*v)
		return -1;
	bool digits = true;
	for (const char *p = v; *p; p++)
		if (!isdigit((unsigned char)*p))
			digits = false;
	if (digits)
		return strlen(v) > 9 ? 1e9 : (double)strtol(v, NULL, 10);
	time_t t = curl_getdate(v, NULL);
	if (t == (time_t)-1)
		return -1;
	double d = difftime(t, time(NULL));
	return d > 0 ? d : 0;
}

static bool is_json_type(const json_t *headers)
{
	const char *ct = json_string_value(json_object_get(headers, "content-type"));
	if (!ct)
		return false;
	size_t n = strcspn(ct, ";");
	while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
		n--;
	if (n == 16 && !strncasecmp(ct, "application/json", 16))
		return true;
	return n > 5 && !strncasecmp(ct + n - 5, "+json", 5);
}

static char *base64(const char *d, size_t n)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)d[i] << 16;
		if (i + 1 < n)
			v |= (unsigned char)d[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)d[i + 2];
		*o++ = tbl[(v >> 18) & 63];
		*o++ = tbl[(v >> 12) & 63];
		*o++ = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
		*o++ = i + 2 < n ? tbl[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

/* {status, headers, body[, body_encoding]}: the body parsed when the
 * answer says JSON (and is), else text, else base64. */
static json_t *make_result(request *r, long status)
{
	json_t *body = NULL;
	const char *encoding = NULL;

	if (r->len && is_json_type(r->headers))
		body = json_loadb(r->data ? r->data : "", r->len, JSON_DECODE_ANY | JSON_ALLOW_NUL,
				  NULL);
	if (body && crd_json_too_deep(body, CRD_JSON_DEPTH_MAX - 1)) { /* kept as text */
		json_decref(body);
		body = NULL;
	}
	if (!body)
		body = json_stringn(r->data ? r->data : "", r->len);
	if (!body) {
		char *b = base64(r->data, r->len);
		if (!b)
			return NULL;
		body = json_string(b);
		free(b);
		encoding = "base64";
	}
	json_t *res = json_pack("{s:I,s:O,s:o}", "status", (json_int_t)status, "headers",
				r->headers, "body", body);
	if (res && encoding)
		json_object_set_new(res, "body_encoding", json_string(encoding));
	return res;
}

/* The next hop of a redirect: method and body as a browser changes them. */
static void redirect_method(request *r, long status)
{
	if ((status == 303 && strcmp(r->method, "HEAD")) ||
	    ((status == 301 || status == 302) && !strcmp(r->method, "POST"))) {
		free(r->method);
		r->method = strdup("GET");
		r->body = NULL;
		r->body_len = 0;
	}
}

/* scheme://host:port of a parsed URL, for "same origin?" */
static char *origin(CURLU *u)
{
	char *s = NULL, *h = NULL, *p = NULL, *o = NULL;
	if (curl_url_get(u, CURLUPART_SCHEME, &s, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) == CURLUE_OK &&
	    asprintf(&o, "%s://%s:%s", s, h, p) < 0)
		o = NULL;
	curl_free(s);
	curl_free(h);
	curl_free(p);
	return o;
}

static int job_request(crund_job *job)
{
	const json_t *args = crund_job_args(job);
	const char *url0 = json_string_value(json_object_get(args, "url"));
	double timeout = json_number_value(json_object_get(args, "timeout"));
	bool follow = json_is_true(json_object_get(args, "follow_redirects"));
	const json_t *expect = json_object_get(args, "expect_status");
	const json_t *jbody = json_object_get(args, "json");
	CURLU *u = NULL;
	char *url = NULL, *first_origin = NULL;
	char code[48], msg[256];
	int rc, cc = 0;
	long status = 0;

	request *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->job = job;
	r->max = (size_t)json_integer_value(json_object_get(args, "max_response_bytes"));
	r->headers = json_object();
	r->method = strdup(json_string_value(json_object_get(args, "method")));
	r->easy = curl_easy_init();
	if (!r->headers || !r->method || !r->easy) {
		rc = -ENOMEM;
		goto out;
	}
	if (jbody) {
		r->json_body = json_dumps(jbody, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!r->json_body) {
			rc = -ENOMEM;
			goto out;
		}
		r->body = r->json_body;
		r->body_len = strlen(r->json_body);
	} else if (json_is_string(json_object_get(args, "body"))) {
		r->body = json_string_value(json_object_get(args, "body"));
		r->body_len = json_string_length(json_object_get(args, "body"));
	}
	/* Checked at submission; again here, as the list may have changed
	 * since (a job kept across a restart). */
	if ((rc = url_check(job->api, url0, &u, code, sizeof(code), msg, sizeof(msg))) < 0) {
		rc = rc == -ENOMEM ? rc : crund_job_fail(job, code, "%s", msg);
		goto out;
	}
	if (!(first_origin = origin(u)) || !(url = strdup(url0))) {
		rc = -ENOMEM;
		goto out;
	}
	double deadline = cr_loop_time(cr_loop_current()) + timeout;
	for (int hop = 0;; hop++) {
		json_object_clear(r->headers);
		r->len = 0;
		r->header_bytes = 0;
		r->too_large = false;
		if ((rc = setup_hop(r, args, u, deadline - cr_loop_time(cr_loop_current()))) < 0)
			goto out;
		if ((rc = crund_curl_perform(job, r->easy, &cc)) < 0)
			goto out; /* -ECANCELED: cancelled (the transfer was stopped) */
		if (cc != CURLE_OK) {
			rc = transfer_failed(r, cc, url, timeout);
			goto out;
		}
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
		char *next = NULL;
		bool redirect = status == 301 || status == 302 || status == 303 || status == 307 ||
				status == 308;
		if (!follow || !redirect ||
		    curl_easy_getinfo(r->easy, CURLINFO_REDIRECT_URL, &next) != CURLE_OK || !next)
			break;
		if (hop + 1 > HTTP_MAX_REDIRECTS) {
			rc = crund_job_fail(job, "too_many_redirects",
					    "%s %s: more than %d redirects", r->method, url0,
					    HTTP_MAX_REDIRECTS);
			goto out;
		}
		CURLU *nu = NULL;
		if ((rc = url_check(job->api, next, &nu, code, sizeof(code), msg, sizeof(msg))) <
		    0) {
			rc = rc == -ENOMEM
				     ? rc
				     : crund_job_fail(job, code, "redirect from %s: %s", url, msg);
			goto out;
		}
		crund_job_log(job, CRUND_LOG_INFO, "%s %s: %ld, redirected to %s", r->method, url,
			      status, next);
		char *nurl = strdup(next), *norigin = origin(nu);
		if (!nurl || !norigin) {
			free(nurl);
			free(norigin);
			curl_url_cleanup(nu);
			rc = -ENOMEM;
			goto out;
		}
		if (strcmp(norigin, first_origin))
			r->drop_credentials = true;
		free(norigin);
		free(url);
		url = nurl;
		curl_url_cleanup(u);
		u = nu;
		redirect_method(r, status);
		if (!r->method) {
			rc = -ENOMEM;
			goto out;
		}
	}
	if (!expected(expect, status)) {
		double ra = (status == 429 || status == 503) ? retry_after(r->headers) : -1;
		if (ra >= 0) {
			crund_job_retry_after(job, ra);
			crund_job_log(job, CRUND_LOG_INFO, "%s %s: %ld with Retry-After %g s",
				      r->method, url, status, ra);
		}
		char *want = expect && !json_is_null(expect)
				     ? json_dumps(expect, JSON_COMPACT | JSON_ENCODE_ANY)
				     : NULL;
		rc = crund_job_fail(job, "http_status", "%s %s answered HTTP %ld (expected %s)",
				    r->method, url, status, want ? want : "2xx");
		free(want);
		goto out;
	}
	json_t *res = make_result(r, status);
	rc = res ? crund_job_set_result(job, res) : -ENOMEM;
out:
	curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->hdrs);
	curl_url_cleanup(u);
	json_decref(r->headers);
	free(r->json_body);
	free(r->data);
	free(r->method);
	free(url);
	free(first_origin);
	free(r);
	return rc;
}

static const crund_arg_spec request_args[] = {
	{.name = "url",
	 .type = CRUND_ARG_STRING,
	 .required = true,
	 .description = "http:// or https:// URL"},
	{.name = "method",
	 .type = CRUND_ARG_STRING,
	 .default_json = "\"GET\"",
	 .description = "GET, POST, PUT, PATCH, DELETE, HEAD, ... (capital letters)"},
	{.name = "headers",
	 .type = CRUND_ARG_OBJECT,
	 .description = "request headers, name -> string value"},
	{.name = "body", .type = CRUND_ARG_STRING, .description = "request body (text)"},
	{.name = "json",
	 .type = CRUND_ARG_ANY,
	 .description = "request body as JSON (Content-Type: application/json)"},
	{.name = "timeout",
	 .type = CRUND_ARG_NUMBER,
	 .default_json = "30",
	 .description = "seconds for the whole request, redirects included",
	 .has_range = true,
	 .min = 0.001,
	 .max = 86400},
	{.name = "connect_timeout",
	 .type = CRUND_ARG_NUMBER,
	 .default_json = "10",
	 .description = "seconds to connect (per hop)",
	 .has_range = true,
	 .min = 0.001,
	 .max = 3600},
	{.name = "follow_redirects",
	 .type = CRUND_ARG_BOOLEAN,
	 .default_json = "false",
	 .description = "follow 301/302/303/307/308 (at most 10), each hop checked"},
	{.name = "max_response_bytes",
	 .type = CRUND_ARG_INTEGER,
	 .default_json = "1048576",
	 .description = "largest body accepted (decoded); beyond: response_too_large",
	 .has_range = true,
	 .min = 0,
	 .max = 1073741824},
	{.name = "expect_status",
	 .type = CRUND_ARG_ANY,
	 .description = "status or array of statuses that succeed (default: any 2xx)"},
};

static const crund_job_spec http_jobs[] = {
	{.name = "request",
	 .description = "call a URL: {status, headers, body}; fails with http_status, "
			"connect_error, timeout, response_too_large",
	 .run = job_request,
	 .args = request_args,
	 .n_args = sizeof request_args / sizeof request_args[0],
	 .check = request_check},
};

CRUND_PLUGIN_DEFINE(.name = "http", .version = "1.0.0",
		    .description = "HTTP requests (libcurl on the daemon's loop)",
		    .jobs = http_jobs, .n_jobs = sizeof http_jobs / sizeof http_jobs[0]);
