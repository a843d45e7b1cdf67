/*
 * submit.c — POST /v1/jobs bodies; see submit.h.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/jsondepth.h"
#include "common/rfc3339.h"
#include "jobs/jobs.h"
#include "jobs/submit.h"

static int bad(const char **ret_code, const char *code, char *msg, size_t msglen, const char *fmt,
	       ...) __attribute__((format(printf, 5, 6)));
static int bad(const char **ret_code, const char *code, char *msg, size_t msglen, const char *fmt,
	       ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
	*ret_code = code;
	return -EINVAL;
}

static bool known_field(const char *k)
{
	return !strcmp(k, "plugin") || !strcmp(k, "job") || !strcmp(k, "args") ||
	       !strcmp(k, "timeout") || !strcmp(k, "context") || !strcmp(k, "idempotency_key") ||
	       !strcmp(k, "max_attempts") || !strcmp(k, "delay") || !strcmp(k, "run_at") ||
	       !strcmp(k, "on_interrupt");
}

void crd_submission_free(crd_submission *s)
{
	json_decref(s->args);
	free((char *)s->idem_key); /* ours: strdup in crd_submission_parse */
	memset(s, 0, sizeof(*s));
}

int crd_submission_parse(const crd_plugin_registry *reg, const char *body, size_t len,
			 crd_submission *ret, const char **ret_code, char *msg, size_t msglen)
{
	json_error_t jerr;
	crd_submission s;
	const char *key;
	json_t *v, *root;
	int rc;

	memset(&s, 0, sizeof(s));
	if (!len)
		return bad(ret_code, "invalid_json", msg, msglen,
			   "the request body is empty; send a JSON object such as "
			   "{\"plugin\":\"demo\",\"job\":\"noop\"}");
	root = json_loadb(body, len, JSON_DECODE_ANY, &jerr);
	if (!root)
		return bad(ret_code, "invalid_json", msg, msglen,
			   "the body is not valid JSON: %s at line %d, column %d", jerr.text,
			   jerr.line, jerr.column);
#define BAD(...)                                                                 \
	do {                                                                     \
		rc = bad(ret_code, "invalid_request", msg, msglen, __VA_ARGS__); \
		goto out;                                                        \
	} while (0)
	if (!json_is_object(root))
		BAD("the body must be a JSON object with \"plugin\" and \"job\"");
	json_object_foreach(root, key, v)
	{
		if (!known_field(key))
			BAD("unknown field '%.64s' (expected plugin, job, args, timeout, context, "
			    "idempotency_key, max_attempts, delay, run_at, on_interrupt)",
			    key);
	}
	json_t *jp = json_object_get(root, "plugin"), *jj = json_object_get(root, "job");
	json_t *ja = json_object_get(root, "args"), *jt = json_object_get(root, "timeout");
	json_t *jc = json_object_get(root, "context"),
	       *jk = json_object_get(root, "idempotency_key");
	json_t *jm = json_object_get(root, "max_attempts"), *jd = json_object_get(root, "delay");
	json_t *jr = json_object_get(root, "run_at"), *ji = json_object_get(root, "on_interrupt");
	s.on_interrupt = -1;
	if (!json_is_string(jp))
		BAD("field 'plugin' must be a string naming a plugin");
	if (!json_is_string(jj))
		BAD("field 'job' must be a string naming a job of the plugin");
	if (ja && !json_is_object(ja) && !json_is_null(ja))
		BAD("field 'args' must be an object");
	if (ja && crd_json_too_deep(ja, CRD_JSON_DEPTH_MAX))
		BAD("field 'args' nests arrays and objects more than %d levels deep",
		    CRD_JSON_DEPTH_MAX);
	if (jt && !json_is_null(jt)) {
		double t = json_number_value(jt);
		if (!json_is_number(jt) || !(t > 0) || t > CRUND_TIMEOUT_MAX)
			BAD("field 'timeout' must be a number of seconds greater than 0 (at most "
			    "%g)",
			    CRUND_TIMEOUT_MAX);
		s.timeout = t;
	}
	if (jc && !json_is_null(jc)) {
		const char *c = json_string_value(jc);
		if (!c || (strcmp(c, "shared") && strcmp(c, "isolated")))
			BAD("field 'context' must be \"shared\" or \"isolated\"");
		s.isolated = !strcmp(c, "isolated");
	}
	if (jk && !json_is_null(jk)) {
		const char *k = json_string_value(jk);
		if (!k || !*k || strlen(k) > CRUND_IDEM_KEY_MAX)
			BAD("field 'idempotency_key' must be a non-empty string of at most %d "
			    "bytes",
			    CRUND_IDEM_KEY_MAX);
		if (!(s.idem_key = strdup(k))) {
			rc = -ENOMEM;
			goto out;
		}
	}
	if (jm && !json_is_null(jm)) {
		json_int_t n = json_integer_value(jm);
		if (!json_is_integer(jm) || n < 1 || n > CRUND_JOB_MAX_ATTEMPTS)
			BAD("field 'max_attempts' must be an integer from 1 to %d",
			    CRUND_JOB_MAX_ATTEMPTS);
		s.max_attempts = (unsigned)n;
	}
	if (jd && !json_is_null(jd) && jr && !json_is_null(jr))
		BAD("give 'delay' or 'run_at', not both");
	if (jd && !json_is_null(jd)) {
		double d = json_number_value(jd);
		if (!json_is_number(jd) || !(d >= 0) || d > CRUND_DELAY_MAX)
			BAD("field 'delay' must be a number of seconds from 0 to %.0f (a year)",
			    CRUND_DELAY_MAX);
		if (d > 0)
			s.run_at = crd_now_realtime() + d;
	}
	if (jr && !json_is_null(jr)) {
		const char *t = json_string_value(jr);
		double when;
		if (!t || crd_rfc3339_parse(t, &when) < 0)
			BAD("field 'run_at' must be an RFC 3339 time such as "
			    "\"2026-12-03T10:00:00Z\"");
		if (when > crd_now_realtime() + CRUND_DELAY_MAX)
			BAD("field 'run_at' is more than a year ahead");
		s.run_at = when > crd_now_realtime() ? when : 0;
	}
	if (ji && !json_is_null(ji)) {
		const char *c = json_string_value(ji);
		if (!c || (strcmp(c, "retry") && strcmp(c, "fail")))
			BAD("field 'on_interrupt' must be \"retry\" or \"fail\"");
		s.on_interrupt = !strcmp(c, "retry") ? CRD_ON_INTERRUPT_RETRY
						     : CRD_ON_INTERRUPT_FAIL;
	}
#undef BAD
	const char *pname = json_string_value(jp), *jname = json_string_value(jj);
	s.plugin = crd_plugins_find(reg, pname);
	if (!s.plugin) {
		bad(ret_code, "unknown_plugin", msg, msglen,
		    "no plugin named '%.64s' (GET /v1/plugins lists them)", pname);
		rc = -ENOENT;
		goto out;
	}
	s.spec = crd_plugins_find_job(s.plugin, jname);
	if (!s.spec) {
		bad(ret_code, "unknown_job", msg, msglen,
		    "plugin '%s' has no job named '%.64s' (GET /v1/plugins/%s lists them)",
		    s.plugin->desc->name, jname, s.plugin->desc->name);
		rc = -ENOENT;
		goto out;
	}
	if (crd_args_validate(s.spec, json_is_object(ja) ? ja : NULL, &s.args, msg, msglen) < 0) {
		*ret_code = "invalid_args";
		rc = -EINVAL;
		goto out;
	}
	if (s.spec->check && reg->host) {
		/* The job's own check (ABI 1.3): its code outlives this call in a
		 * buffer of ours (everything here runs on the loop thread). */
		static char check_code[sizeof(((crund_check_error *)0)->code)];
		crund_check_error e;
		memset(&e, 0, sizeof(e));
		if (s.spec->check(reg->host, s.plugin->state, s.args, &e) < 0) {
			e.code[sizeof(e.code) - 1] = e.message[sizeof(e.message) - 1] = '\0';
			snprintf(check_code, sizeof(check_code), "%s",
				 e.code[0] ? e.code : "invalid_args");
			*ret_code = check_code;
			snprintf(msg, msglen, "%s",
				 e.message[0] ? e.message : "the job refused these arguments");
			rc = -EINVAL;
			goto out;
		}
	}
	json_decref(root);
	*ret = s;
	return 0;
out:
	json_decref(root);
	crd_submission_free(&s);
	return rc;
}
