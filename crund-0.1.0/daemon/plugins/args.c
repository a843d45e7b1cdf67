/*
 * args.c — validate a job submission's arguments against the job's
 * declared argument specs, and fill in defaults.
 *
 * The messages are for the person who typed the submission: each names
 * the argument and says what was expected and what came.  Unknown keys
 * are checked first: a misspelt optional argument would otherwise be
 * silently ignored, and a misspelt required one would be reported as
 * "missing" when the real mistake is the spelling.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "plugins/plugins.h"

const char *crd_arg_type_name(crund_arg_type type)
{
	switch (type) {
	case CRUND_ARG_STRING:
		return "string";
	case CRUND_ARG_INTEGER:
		return "integer";
	case CRUND_ARG_NUMBER:
		return "number";
	case CRUND_ARG_BOOLEAN:
		return "boolean";
	case CRUND_ARG_ANY:
		return "any";
	case CRUND_ARG_OBJECT:
		return "object";
	case CRUND_ARG_ARRAY:
		return "array";
	}
	return "unknown";
}

static const char *with_article(crund_arg_type type)
{
	switch (type) {
	case CRUND_ARG_STRING:
		return "a string";
	case CRUND_ARG_INTEGER:
		return "an integer";
	case CRUND_ARG_NUMBER:
		return "a number";
	case CRUND_ARG_BOOLEAN:
		return "a boolean";
	case CRUND_ARG_ANY:
		return "any JSON value";
	case CRUND_ARG_OBJECT:
		return "an object";
	case CRUND_ARG_ARRAY:
		return "an array";
	}
	return "an unknown type";
}

/* What a JSON value is, in the words of the messages. */
static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
		return "integer";
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	case JSON_NULL:
		return "null";
	}
	return "unknown";
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* A bound as a person writes it: 3600, not 3600.000000 or 3.6e+03. */
static void fmt_num(char *buf, size_t len, double x)
{
	if (x == floor(x) && fabs(x) < 1e15)
		snprintf(buf, len, "%.0f", x);
	else
		snprintf(buf, len, "%g", x);
}

/* 2^63: the first double outside json_int_t. */
#define INT_LIMIT 9223372036854775808.0

int crd_arg_check(const crund_arg_spec *spec, const json_t *value, json_t **ret_value, char *err,
		  size_t errlen)
{
	json_t *out = NULL;
	bool ok;
	switch (spec->type) {
	case CRUND_ARG_STRING:
		ok = json_is_string(value);
		break;
	case CRUND_ARG_INTEGER:
		ok = json_is_integer(value);
		if (!ok && json_is_real(value)) {
			double x = json_real_value(value);
			if (x != floor(x) || x < -INT_LIMIT || x >= INT_LIMIT) {
				char got[64];
				fmt_num(got, sizeof got, x);
				set_err(err, errlen, "argument '%s' must be an integer, got %s",
					spec->name, got);
				return -EINVAL;
			}
			if (!(out = json_integer((json_int_t)x))) {
				set_err(err, errlen, "out of memory");
				return -ENOMEM;
			}
			ok = true;
		}
		break;
	case CRUND_ARG_NUMBER:
		ok = json_is_number(value);
		break;
	case CRUND_ARG_BOOLEAN:
		ok = json_is_boolean(value);
		break;
	case CRUND_ARG_ANY:
		ok = true;
		break;
	case CRUND_ARG_OBJECT:
		ok = json_is_object(value);
		break;
	case CRUND_ARG_ARRAY:
		ok = json_is_array(value);
		break;
	default:
		set_err(err, errlen, "argument '%s' has an unknown declared type", spec->name);
		return -EINVAL;
	}
	if (!ok) {
		set_err(err, errlen, "argument '%s' must be %s, got %s", spec->name,
			with_article(spec->type), json_kind(value));
		return -EINVAL;
	}
	if (spec->has_range && json_is_number(out ? out : value)) {
		double x = json_number_value(out ? out : value);
		if (!(x >= spec->min && x <= spec->max)) {
			char lo[64], hi[64], got[64];
			fmt_num(lo, sizeof lo, spec->min);
			fmt_num(hi, sizeof hi, spec->max);
			fmt_num(got, sizeof got, x);
			set_err(err, errlen, "argument '%s' must be between %s and %s, got %s",
				spec->name, lo, hi, got);
			json_decref(out);
			return -EINVAL;
		}
	}
	*ret_value = out ? out : json_incref((json_t *)value);
	return 0;
}

/* "seconds, interval" — the names a job takes, for the unknown-key message. */
static void list_names(const crund_job_spec *spec, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < spec->n_args && used < len; i++) {
		int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", spec->args[i].name);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

static const crund_arg_spec *find_arg(const crund_job_spec *spec, const char *name)
{
	for (size_t i = 0; i < spec->n_args; i++)
		if (strcmp(spec->args[i].name, name) == 0)
			return &spec->args[i];
	return NULL;
}

int crd_args_validate(const crund_job_spec *spec, const json_t *args, json_t **ret_args, char *err,
		      size_t errlen)
{
	if (args && !json_is_object(args)) {
		set_err(err, errlen, "arguments must be a JSON object, got %s", json_kind(args));
		return -EINVAL;
	}
	if (args) {
		const char *key;
		json_t *v;
		json_object_foreach((json_t *)args, key, v)
		{
			if (find_arg(spec, key))
				continue;
			if (spec->n_args == 0) {
				set_err(err, errlen,
					"unknown argument '%s' (job %s takes no arguments)", key,
					spec->name);
			} else {
				char names[512];
				list_names(spec, names, sizeof names);
				set_err(err, errlen, "unknown argument '%s' (job %s takes: %s)",
					key, spec->name, names);
			}
			return -EINVAL;
		}
	}

	if (spec->n_args == 0) {
		/* A job without arguments gets one shared, never-changed {}
		 * (args reach plugins const): no allocation per job. */
		static json_t *none;
		if (!none)
			none = json_object();
		if (!none) {
			set_err(err, errlen, "out of memory");
			return -ENOMEM;
		}
		*ret_args = json_incref(none);
		return 0;
	}
	json_t *out = json_object();
	if (!out) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < spec->n_args; i++) {
		const crund_arg_spec *a = &spec->args[i];
		json_t *given = args ? json_object_get(args, a->name) : NULL;
		json_t *use = NULL;
		int rc;
		if (given) {
			rc = crd_arg_check(a, given, &use, err, errlen);
		} else if (a->default_json) {
			/* Checked at load; checked again so a default can never
			 * reach a job with a type the job does not expect. */
			json_t *def = json_loads(a->default_json, JSON_DECODE_ANY, NULL);
			if (!def) {
				set_err(err, errlen, "default of argument '%s' is not valid JSON",
					a->name);
				rc = -EINVAL;
			} else {
				rc = crd_arg_check(a, def, &use, err, errlen);
				json_decref(def);
			}
		} else if (a->required) {
			set_err(err, errlen, "missing required argument '%s'", a->name);
			rc = -EINVAL;
		} else {
			continue;
		}
		if (rc == 0 && json_object_set_new(out, a->name, use) < 0) {
			set_err(err, errlen, "out of memory");
			rc = -ENOMEM;
		}
		if (rc < 0) {
			json_decref(out);
			return rc;
		}
	}
	*ret_args = out;
	return 0;
}
