/*
 * args.c — turning what a user types into values: durations, counts, the
 * `key=value` job arguments typed by the job's declared argument spec, and
 * the JSON object of `--args JSON|@FILE|-` they extend.
 *
 * Nothing here talks to the network, so all of it is unit-tested in
 * tests/test-crunctl-args.c.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/rfc3339.h"
#include "crunctl.h"

/* Largest --args file (or standard input) read. */
#define ARGS_FILE_MAX (16u << 20)

int crunctl_parse_duration(const char *text, double *ret_seconds)
{
	static const struct {
		const char *suffix;
		double scale;
	} units[] = {
		{"", 1.0},     {"s", 1.0},    {"ms", 0.001},  {"m", 60.0},
		{"min", 60.0}, {"h", 3600.0}, {"d", 86400.0},
	};
	char *end;
	double v;

	if (!text || !*text || isspace((unsigned char)*text) || *text == '-' || *text == '+')
		return -EINVAL;
	errno = 0;
	v = strtod(text, &end);
	if (end == text || errno == ERANGE || !isfinite(v) || v < 0)
		return -EINVAL;
	/* strtod accepts "inf", "nan" and hex floats: only plain decimals here. */
	for (const char *p = text; p < end; p++)
		if (!isdigit((unsigned char)*p) && *p != '.')
			return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].suffix) == 0) {
			v *= units[i].scale;
			if (!isfinite(v))
				return -EINVAL;
			*ret_seconds = v;
			return 0;
		}
	}
	return -EINVAL;
}

int crunctl_parse_count(const char *text, long *ret_count)
{
	char *end;
	long v;

	if (!text || !isdigit((unsigned char)*text))
		return -EINVAL;
	errno = 0;
	v = strtol(text, &end, 10);
	if (*end || errno == ERANGE || v <= 0)
		return -EINVAL;
	*ret_count = v;
	return 0;
}

/* n decimal digits at *p, moved past them; -EINVAL when there are fewer. */
static int fixed_digits(const char **p, int n, int *ret)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -EINVAL;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*ret = v;
	return 0;
}

int crunctl_parse_time(const char *text, double *ret_epoch)
{
	const char *p = text;
	struct tm tm = {.tm_isdst = -1};
	int y, mo, d, h, mi, sec = 0;
	time_t t;

	if (!text)
		return -EINVAL;
	if (crd_rfc3339_parse(text, ret_epoch) == 0)
		return 0;
	/* Without an offset: a local time, as status prints them, so a time
	 * seen there can be typed back. */
	if (fixed_digits(&p, 4, &y) || *p++ != '-' || fixed_digits(&p, 2, &mo) || *p++ != '-' ||
	    fixed_digits(&p, 2, &d) || (*p != ' ' && *p != 'T' && *p != 't'))
		return -EINVAL;
	p++;
	if (fixed_digits(&p, 2, &h) || *p++ != ':' || fixed_digits(&p, 2, &mi))
		return -EINVAL;
	if (*p == ':') {
		p++;
		if (fixed_digits(&p, 2, &sec))
			return -EINVAL;
	}
	if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = mktime(&tm);
	/* mktime normalises 31 April to 1 May: refuse what it had to move */
	if (t == (time_t)-1 || tm.tm_mday != d || tm.tm_mon != mo - 1)
		return -EINVAL;
	*ret_epoch = (double)t;
	return 0;
}

int crunctl_split_kv(const char *arg, char **ret_key, const char **ret_value, bool *ret_raw)
{
	const char *eq = strchr(arg, '=');
	size_t klen;
	bool raw = false;
	char *key;

	if (!eq)
		return -EINVAL;
	klen = (size_t)(eq - arg);
	if (klen > 0 && arg[klen - 1] == ':') {
		raw = true;
		klen--;
	}
	if (klen == 0)
		return -EINVAL;
	key = strndup(arg, klen);
	if (!key)
		return -ENOMEM;
	*ret_key = key;
	*ret_value = eq + 1;
	*ret_raw = raw;
	return 0;
}

static int parse_bool(const char *text, bool *ret)
{
	static const char *const yes[] = {"true", "yes", "on", "1", "y"};
	static const char *const no[] = {"false", "no", "off", "0", "n"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* A whole-string integer in the range JSON integers take in jansson. */
static int parse_integer(const char *text, json_int_t *ret)
{
	char *end;
	long long v;

	if (!*text || isspace((unsigned char)*text))
		return -EINVAL;
	errno = 0;
	v = strtoll(text, &end, 10);
	if (*end || errno == ERANGE)
		return -EINVAL;
	*ret = (json_int_t)v;
	return 0;
}

/* A finite decimal number; written as a JSON integer when it has no
 * fraction or exponent, so "3" stays 3 and not 3.0. */
static json_t *parse_number(const char *text)
{
	json_int_t i;
	char *end;
	double d;

	if (parse_integer(text, &i) == 0)
		return json_integer(i);
	if (!*text || isspace((unsigned char)*text))
		return NULL;
	for (const char *p = text; *p; p++)
		if (!isdigit((unsigned char)*p) && !strchr("+-.eE", *p))
			return NULL; /* no "inf", "nan", hex */
	errno = 0;
	d = strtod(text, &end);
	if (*end || errno == ERANGE || !isfinite(d))
		return NULL;
	return json_real(d);
}

static json_t *parse_json_text(const char *text)
{
	/* JSON_DECODE_ANY: scalars too ("5", "\"x\"", "null"). */
	return json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
}

int crunctl_typed_value(const char *key, const char *type, const char *text, json_t **ret,
			char *err, size_t errlen)
{
	json_t *v = NULL;

	if (!type || strcmp(type, "string") == 0) {
		v = json_string(text);
		if (!v) /* only when the text is not valid UTF-8 */
			goto bad_utf8;
	} else if (strcmp(type, "integer") == 0) {
		json_int_t i;
		if (parse_integer(text, &i) < 0) {
			snprintf(err, errlen, "argument '%s' must be an integer, got '%s'", key,
				 text);
			return -EINVAL;
		}
		v = json_integer(i);
	} else if (strcmp(type, "number") == 0) {
		v = parse_number(text);
		if (!v) {
			snprintf(err, errlen, "argument '%s' must be a number, got '%s'", key,
				 text);
			return -EINVAL;
		}
	} else if (strcmp(type, "boolean") == 0) {
		bool b;
		if (parse_bool(text, &b) < 0) {
			snprintf(err, errlen,
				 "argument '%s' must be a boolean (true/false, yes/no, 1/0), got "
				 "'%s'",
				 key, text);
			return -EINVAL;
		}
		v = json_boolean(b);
	} else if (strcmp(type, "object") == 0 || strcmp(type, "array") == 0) {
		bool want_object = type[0] == 'o';
		v = parse_json_text(text);
		if (!v || (want_object ? !json_is_object(v) : !json_is_array(v))) {
			json_decref(v);
			snprintf(err, errlen, "argument '%s' must be a JSON %s, got '%s'", key,
				 type, text);
			return -EINVAL;
		}
	} else if (strcmp(type, "any") == 0) {
		/* Convenience: `name=bob` means the string "bob", while `n=5`
		 * or `tags=["a"]` mean what they look like. */
		v = parse_json_text(text);
		if (!v) {
			v = json_string(text);
			if (!v)
				goto bad_utf8;
		}
	} else {
		/* A type newer than this client: let the daemon judge the text. */
		v = json_string(text);
		if (!v)
			goto bad_utf8;
	}
	if (!v) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	*ret = v;
	return 0;

bad_utf8:
	snprintf(err, errlen, "argument '%s' is not valid UTF-8", key);
	return -EINVAL;
}

int crunctl_raw_value(const char *key, const char *text, json_t **ret, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);

	if (!v) {
		snprintf(err, errlen, "argument '%s:=' is not valid JSON: %s", key, jerr.text);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

json_t *crunctl_job_find_arg(json_t *job_spec, const char *name)
{
	json_t *args = json_object_get(job_spec, "args");
	json_t *a;
	size_t i;

	/* An object keyed by name is accepted too, in case the API grows one. */
	if (json_is_object(args))
		return json_object_get(args, name);
	json_array_foreach(args, i, a)
	{
		const char *n = json_string_value(json_object_get(a, "name"));
		if (n && strcmp(n, name) == 0)
			return a;
	}
	return NULL;
}

/* Append ", name" (or "name" first) to a growing string; 0 or -ENOMEM. */
static int append_name(char **out, size_t *len, size_t *cap, const char *name)
{
	size_t nl = strlen(name);

	if (*len + nl + 3 > *cap) {
		size_t ncap = (*len + nl + 3) * 2;
		char *grown = realloc(*out, ncap);
		if (!grown)
			return -ENOMEM;
		*out = grown;
		*cap = ncap;
	}
	if (*len) {
		memcpy(*out + *len, ", ", 2);
		*len += 2;
	}
	memcpy(*out + *len, name, nl + 1);
	*len += nl;
	return 0;
}

char *crunctl_job_arg_names(json_t *job_spec)
{
	json_t *args = json_object_get(job_spec, "args");
	size_t cap = 64, len = 0, i;
	char *out = malloc(cap);
	const char *key;
	json_t *a;
	int rc = 0;

	if (!out)
		return NULL;
	out[0] = '\0';
	if (json_is_object(args)) {
		json_object_foreach(args, key, a) if (rc == 0)
			rc = append_name(&out, &len, &cap, key);
	} else {
		json_array_foreach(args, i, a)
		{
			const char *n = json_string_value(json_object_get(a, "name"));
			if (n && rc == 0)
				rc = append_name(&out, &len, &cap, n);
		}
	}
	if (rc < 0 || len == 0) {
		free(out);
		return rc < 0 ? NULL : strdup("none");
	}
	return out;
}

json_t *crunctl_plugin_find_job(json_t *plugin, const char *job)
{
	json_t *jobs = json_object_get(plugin, "jobs");
	json_t *j;
	size_t i;

	if (json_is_object(jobs))
		return json_object_get(jobs, job);
	json_array_foreach(jobs, i, j)
	{
		const char *n = json_string_value(json_object_get(j, "name"));
		if (n && strcmp(n, job) == 0)
			return j;
	}
	return NULL;
}

bool crunctl_state_is_final(const char *state)
{
	return state && (strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
			 strcmp(state, "cancelled") == 0);
}

int crunctl_exit_for_state(const char *state)
{
	if (!state)
		return CRUNCTL_EXIT_INTERNAL;
	if (strcmp(state, "succeeded") == 0)
		return CRUNCTL_EXIT_OK;
	if (strcmp(state, "failed") == 0)
		return CRUNCTL_EXIT_JOB_FAILED;
	if (strcmp(state, "cancelled") == 0)
		return CRUNCTL_EXIT_CANCELLED;
	return CRUNCTL_EXIT_WAIT_TIMEOUT;
}

/* ------------------------------------------------------------- --args */

/* Put a sentence into *ret_error and return `code`, or -ENOMEM (and NULL). */
__attribute__((format(printf, 3, 4))) static int fail(char **ret_error, int code, const char *fmt,
						      ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(ret_error, fmt, ap);
	va_end(ap);
	if (r < 0) {
		*ret_error = NULL;
		return -ENOMEM;
	}
	return code;
}

/* All of f, NUL-terminated, into *ret (caller frees).  -EIO with a
 * sentence naming `what` in *ret_error, or -ENOMEM. */
static int read_all(FILE *f, const char *what, char **ret, char **ret_error)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		size_t n;
		if (len + 1 == cap) {
			char *nb;
			if (cap >= ARGS_FILE_MAX) {
				free(buf);
				return fail(ret_error, -EIO, "%s is larger than %u MiB", what,
					    ARGS_FILE_MAX >> 20);
			}
			nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
			cap *= 2;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		int e = errno;
		free(buf);
		return fail(ret_error, -EIO, "cannot read %s: %s", what, strerror(e));
	}
	buf[len] = '\0';
	*ret = buf;
	return 0;
}

/* The text of --args: *ret NULL when spec is the JSON itself; `what` names
 * it in messages. */
static int args_text(const char *spec, char **ret, char *what, size_t what_len, char **ret_error)
{
	FILE *f;
	int r;

	*ret = NULL;
	if (strcmp(spec, "-") == 0) {
		snprintf(what, what_len, "standard input");
		return read_all(stdin, what, ret, ret_error);
	}
	if (spec[0] != '@') {
		snprintf(what, what_len, "--args");
		return 0;
	}
	snprintf(what, what_len, "'%s'", spec + 1);
	f = fopen(spec + 1, "r");
	if (!f)
		return fail(ret_error, -EIO, "cannot open %s: %s", what, strerror(errno));
	r = read_all(f, what, ret, ret_error);
	fclose(f);
	return r;
}

int crunctl_load_args(const char *spec, json_t **ret, char **ret_error)
{
	char *text, what[512];
	json_error_t jerr;
	json_t *v;
	int r;

	*ret_error = NULL;
	r = args_text(spec, &text, what, sizeof(what), ret_error);
	if (r < 0)
		return r;
	v = json_loads(text ? text : spec, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (v && json_is_object(v)) {
		*ret = v;
		return 0;
	}
	if (v) {
		json_decref(v);
		return fail(ret_error, -EINVAL, "%s must be a JSON object", what);
	}
	return fail(ret_error, -EINVAL, "%s is not valid JSON: %s (line %d, column %d)", what,
		    jerr.text, jerr.line, jerr.column);
}

/* ---------------------------------------------------------- key=value */

bool crunctl_is_kv_arg(const char *arg)
{
	return strchr(arg, '=') && arg[0] != '=' && !(arg[0] == ':' && arg[1] == '=');
}

/* Type one key=value by the job's spec into args; -EINVAL with a sentence,
 * or -ENOMEM. */
static int apply_one(json_t *job_spec, const char *plugin, const char *job, const char *arg,
		     json_t *args, char **ret_error)
{
	char *key, err[1024];
	const char *text;
	bool raw;
	json_t *a, *v;
	int r = 0;

	if (crunctl_split_kv(arg, &key, &text, &raw) < 0)
		return fail(ret_error, -EINVAL, "'%s' is not key=value", arg);
	a = crunctl_job_find_arg(job_spec, key);
	if (!a) {
		char *names = crunctl_job_arg_names(job_spec);
		r = fail(ret_error, -EINVAL, "job %s/%s has no argument '%s'; its arguments: %s",
			 plugin, job, key, names ? names : "?");
		free(names);
	} else if ((raw ? crunctl_raw_value(key, text, &v, err, sizeof(err))
			: crunctl_typed_value(key, crunctl_jstr(a, "type"), text, &v, err,
					      sizeof(err))) < 0) {
		r = (*ret_error = strdup(err)) ? -EINVAL : -ENOMEM;
	} else if (json_object_set_new(args, key, v) < 0) {
		r = -ENOMEM;
	}
	free(key);
	return r;
}

int crunctl_apply_kv(json_t *job_spec, const char *plugin, const char *job, char *const *kv,
		     int n_kv, json_t *args, char **ret_error)
{
	int r = 0;

	*ret_error = NULL;
	for (int i = 0; i < n_kv && r == 0; i++)
		r = apply_one(job_spec, plugin, job, kv[i], args, ret_error);
	return r;
}
