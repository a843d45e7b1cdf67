/*
 * crunctl-info.c — `crunctl info`: GET /v1/info as a KEY/VALUE table,
 * nested objects flattened ("limits.max_running"), sizes, durations and
 * times written for people.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rfc3339.h"
#include "crunctl.h"

static int on_info_option(crunctl *ctl, int opt, const char *arg, void *userdata)
{
	return crunctl_usage_error("info", "unexpected argument '%s'", arg);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n > m && strcmp(s + n - m, suffix) == 0;
}

static bool is_seconds_key(const char *key)
{
	return strcmp(key, "uptime") == 0 || ends_with(key, "_seconds") ||
	       strcmp(key, "grace") == 0 || strcmp(key, "timeout") == 0;
}

/* 1048576 → "1.0 MiB"; below 1 KiB the plain count with "B". */
static char *format_bytes(double v, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	size_t u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f B", v);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

/* The text of a value named `key`: into buf, or a new string in *ret_text
 * (caller frees; NULL when buf or v's own string is used). */
static const char *value_text(const char *key, json_t *v, char *buf, size_t len, char **ret_text)
{
	double when;

	*ret_text = NULL;
	if (json_is_string(v) && ends_with(key, "_at") &&
	    crd_rfc3339_parse(json_string_value(v), &when) == 0) {
		char abs[64], rel[32];
		snprintf(buf, len, "%s (%s)", crunctl_format_local_time(when, abs, sizeof(abs)),
			 crunctl_format_relative(when, crunctl_now(), rel, sizeof(rel)));
		return buf;
	}
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_number(v) && ends_with(key, "_bytes"))
		return format_bytes(json_number_value(v), buf, len);
	if (json_is_number(v) && is_seconds_key(key))
		return crunctl_format_duration(json_number_value(v), buf, len);
	return *ret_text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | CRUNCTL_HUMAN_REAL);
}

/* Flatten nested objects into "limits.max_running" rows. */
static int info_rows(crunctl_table *t, const char *prefix, json_t *obj)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v)
	{
		char *name, *text, buf[128];
		const char *cells[2];
		int r;

		if (asprintf(&name, "%s%s%s", prefix, *prefix ? "." : "", key) < 0)
			return -ENOMEM;
		if (json_is_object(v) && json_object_size(v) > 0) {
			r = info_rows(t, name, v);
			free(name);
			if (r < 0)
				return r;
			continue;
		}
		cells[0] = name;
		cells[1] = value_text(key, v, buf, sizeof(buf), &text);
		r = crunctl_table_add(t, cells, NULL);
		free(text);
		free(name);
		if (r < 0)
			return r;
	}
	return 0;
}

int crunctl_cmd_info(crunctl *ctl, int argc, char **argv)
{
	static const char *const headers[] = {"KEY", "VALUE"};
	static const crunctl_syntax syntax = {.command = "info", .on_option = on_info_option};
	crunctl_response resp;
	crunctl_table *t;
	json_t *v;
	int rc = crunctl_parse_options(ctl, &syntax, argc, argv, NULL);

	if (rc)
		return rc;
	rc = crunctl_call(ctl, "GET", "/v1/info", NULL, CRUNCTL_REQUEST_TIMEOUT, &resp, &v);
	if (rc)
		return rc;
	if (ctl->json) {
		crunctl_print_raw(&resp);
	} else if (!(t = crunctl_table_new(2, headers)) || info_rows(t, "", v) < 0) {
		crunctl_table_free(t);
		crunctl_oom();
		rc = CRUNCTL_EXIT_INTERNAL;
	} else {
		crunctl_table_print(t, stdout, false);
		crunctl_table_free(t);
	}
	json_decref(v);
	crunctl_response_free(&resp);
	return rc;
}
