/*
 * test-crunctl-args.c — crunctl's offline parts: parsing of durations and
 * counts and times, key=value typing by argument spec, the exit code of a
 * state, human formatting of durations and times, tables and the rows of a
 * job table, the progress bar and the text/event-stream parser.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "../client/crunctl.h"
#include "common/rfc3339.h"

/* --------------------------------------------------------------- durations */

START_TEST(parse_duration_accepts_units)
{
	double s = -1;

	ck_assert_int_eq(crunctl_parse_duration("90", &s), 0);
	ck_assert_double_eq(s, 90);
	ck_assert_int_eq(crunctl_parse_duration("1.5", &s), 0);
	ck_assert_double_eq(s, 1.5);
	ck_assert_int_eq(crunctl_parse_duration("250ms", &s), 0);
	ck_assert_double_eq_tol(s, 0.25, 1e-12);
	ck_assert_int_eq(crunctl_parse_duration("90s", &s), 0);
	ck_assert_double_eq(s, 90);
	ck_assert_int_eq(crunctl_parse_duration("5m", &s), 0);
	ck_assert_double_eq(s, 300);
	ck_assert_int_eq(crunctl_parse_duration("2h", &s), 0);
	ck_assert_double_eq(s, 7200);
	ck_assert_int_eq(crunctl_parse_duration("1d", &s), 0);
	ck_assert_double_eq(s, 86400);
	ck_assert_int_eq(crunctl_parse_duration("0", &s), 0);
	ck_assert_double_eq(s, 0);
}
END_TEST

START_TEST(parse_duration_refuses_garbage)
{
	static const char *const bad[] = {"",    "-1",   "+1",  " 1",  "1x", "abc",   "inf",
					  "nan", "0x10", "1e3", "5 m", "s",  "1.5.2h"};
	double s = 42;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(crunctl_parse_duration(bad[i], &s) == -EINVAL, "accepted '%s'",
			      bad[i]);
		ck_assert_double_eq(s, 42); /* untouched on error */
	}
	ck_assert_int_eq(crunctl_parse_duration(NULL, &s), -EINVAL);
}
END_TEST

START_TEST(parse_count_positive_only)
{
	long n = 0;

	ck_assert_int_eq(crunctl_parse_count("10", &n), 0);
	ck_assert_int_eq(n, 10);
	ck_assert_int_eq(crunctl_parse_count("0", &n), -EINVAL);
	ck_assert_int_eq(crunctl_parse_count("-3", &n), -EINVAL);
	ck_assert_int_eq(crunctl_parse_count("3x", &n), -EINVAL);
	ck_assert_int_eq(crunctl_parse_count("", &n), -EINVAL);
	ck_assert_int_eq(crunctl_parse_count("99999999999999999999999", &n), -EINVAL);
}
END_TEST

START_TEST(parse_time_rfc3339_or_local)
{
	static const char *const bad[] = {"tomorrow",
					  "2024-05-01",
					  "2024-05-01 10",
					  "2024-05-01 24:00",
					  "2024-02-30 10:00",
					  "2024-05-01 10:00:00junk",
					  "2024-05-01 10:60",
					  "2024-05-01T12:00:03+0200",
					  "",
					  "12:00"};
	double t = 0;

	/* RFC 3339 with its offset: the zone of the machine does not matter */
	setenv("TZ", "Etc/GMT+5", 1);
	tzset();
	ck_assert_int_eq(crunctl_parse_time("2024-05-01T12:00:03Z", &t), 0);
	ck_assert_double_eq_tol(t, 1714564803, 1e-6);
	ck_assert_int_eq(crunctl_parse_time("2024-05-01T14:00:03.5+02:00", &t), 0);
	ck_assert_double_eq_tol(t, 1714564803.5, 1e-6);
	/* no offset: local time, as status prints it, seconds optional */
	setenv("TZ", "Etc/GMT-2", 1); /* POSIX sign: two hours east */
	tzset();
	ck_assert_int_eq(crunctl_parse_time("2024-05-01 14:00:03", &t), 0);
	ck_assert_double_eq_tol(t, 1714564803, 1e-6);
	ck_assert_int_eq(crunctl_parse_time("2024-05-01 14:00", &t), 0);
	ck_assert_double_eq_tol(t, 1714564800, 1e-6);
	ck_assert_int_eq(crunctl_parse_time("2024-05-01T14:00", &t), 0);
	ck_assert_double_eq_tol(t, 1714564800, 1e-6);
	t = 42;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(crunctl_parse_time(bad[i], &t) == -EINVAL, "accepted '%s'", bad[i]);
		ck_assert_double_eq(t, 42); /* untouched on error */
	}
	ck_assert_int_eq(crunctl_parse_time(NULL, &t), -EINVAL);
	unsetenv("TZ");
	tzset();
}
END_TEST

/* ------------------------------------------------------------- key=value */

START_TEST(split_kv_plain_and_raw)
{
	char *key;
	const char *val;
	bool raw;

	ck_assert_int_eq(crunctl_split_kv("seconds=2", &key, &val, &raw), 0);
	ck_assert_str_eq(key, "seconds");
	ck_assert_str_eq(val, "2");
	ck_assert(!raw);
	free(key);
	ck_assert_int_eq(crunctl_split_kv("tags:=[1,2]", &key, &val, &raw), 0);
	ck_assert_str_eq(key, "tags");
	ck_assert_str_eq(val, "[1,2]");
	ck_assert(raw);
	free(key);
	/* only the first '=' splits: values may contain '=' */
	ck_assert_int_eq(crunctl_split_kv("expr=a=b", &key, &val, &raw), 0);
	ck_assert_str_eq(key, "expr");
	ck_assert_str_eq(val, "a=b");
	free(key);
	ck_assert_int_eq(crunctl_split_kv("empty=", &key, &val, &raw), 0);
	ck_assert_str_eq(val, "");
	free(key);
	ck_assert_int_eq(crunctl_split_kv("novalue", &key, &val, &raw), -EINVAL);
	ck_assert_int_eq(crunctl_split_kv("=x", &key, &val, &raw), -EINVAL);
	ck_assert_int_eq(crunctl_split_kv(":=x", &key, &val, &raw), -EINVAL);
}
END_TEST

/* Type text and compare the JSON encoding with `want` (NULL: must fail). */
static void check_typed(const char *type, const char *text, const char *want)
{
	char err[256] = "";
	json_t *v = NULL;
	int rc = crunctl_typed_value("k", type, text, &v, err, sizeof(err));

	if (!want) {
		ck_assert_msg(rc == -EINVAL, "type %s accepted '%s'", type ? type : "(null)", text);
		ck_assert_msg(strstr(err, "'k'") != NULL, "error does not name the key: %s", err);
		return;
	}
	ck_assert_msg(rc == 0, "type %s refused '%s': %s", type ? type : "(null)", text, err);
	{
		char *got = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		ck_assert_msg(strcmp(got, want) == 0, "type %s '%s' gave %s, want %s",
			      type ? type : "(null)", text, got, want);
		free(got);
	}
	json_decref(v);
}

START_TEST(typed_integer)
{
	check_typed("integer", "42", "42");
	check_typed("integer", "-7", "-7");
	check_typed("integer", "4.5", NULL);
	check_typed("integer", "x", NULL);
	check_typed("integer", "", NULL);
	check_typed("integer", "99999999999999999999", NULL);
}
END_TEST

START_TEST(typed_number)
{
	check_typed("number", "3", "3");
	check_typed("number", "0.5", "0.5");
	check_typed("number", "-2.5e3", "-2500.0");
	check_typed("number", "nan", NULL);
	check_typed("number", "inf", NULL);
	check_typed("number", "0x10", NULL);
	check_typed("number", "1..2", NULL);
	check_typed("number", "abc", NULL);
}
END_TEST

START_TEST(typed_boolean)
{
	static const char *const yes[] = {"true", "TRUE", "yes", "Yes", "1", "on", "y"};
	static const char *const no[] = {"false", "False", "no", "NO", "0", "off", "n"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		check_typed("boolean", yes[i], "true");
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		check_typed("boolean", no[i], "false");
	check_typed("boolean", "maybe", NULL);
	check_typed("boolean", "", NULL);
}
END_TEST

START_TEST(typed_string_keeps_text)
{
	check_typed("string", "42", "\"42\"");
	check_typed("string", "true", "\"true\"");
	check_typed("string", "", "\"\"");
	check_typed("string", "a \"q\"", "\"a \\\"q\\\"\"");
	/* no spec type or a type newer than the client: a string */
	check_typed(NULL, "5", "\"5\"");
	check_typed("duration", "5m", "\"5m\"");
	check_typed("string", "\xff\xfe", NULL); /* not UTF-8 */
}
END_TEST

START_TEST(typed_json_kinds)
{
	check_typed("object", "{\"a\":1}", "{\"a\":1}");
	check_typed("object", "[1]", NULL);
	check_typed("object", "nope", NULL);
	check_typed("array", "[1,\"x\"]", "[1,\"x\"]");
	check_typed("array", "{}", NULL);
	check_typed("any", "5", "5");
	check_typed("any", "null", "null");
	check_typed("any", "[true]", "[true]");
	check_typed("any", "{\"a\":[]}", "{\"a\":[]}");
	/* not JSON: the text as a string */
	check_typed("any", "bob", "\"bob\"");
	check_typed("any", "{broken", "\"{broken\"");
}
END_TEST

START_TEST(raw_value_parses_json)
{
	char err[256];
	json_t *v;

	ck_assert_int_eq(crunctl_raw_value("k", "[1, 2]", &v, err, sizeof(err)), 0);
	ck_assert(json_is_array(v) && json_array_size(v) == 2);
	json_decref(v);
	ck_assert_int_eq(crunctl_raw_value("k", "\"s\"", &v, err, sizeof(err)), 0);
	ck_assert_str_eq(json_string_value(v), "s");
	json_decref(v);
	ck_assert_int_eq(crunctl_raw_value("k", "bob", &v, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_ne(strstr(err, "'k:='"), NULL);
}
END_TEST

static json_t *demo_plugin(void)
{
	return json_loads(
		"{\"name\":\"demo\",\"jobs\":["
		"{\"name\":\"sleep\",\"args\":[{\"name\":\"seconds\",\"type\":\"number\"},"
		"{\"name\":\"message\",\"type\":\"string\"}]},"
		"{\"name\":\"noargs\",\"args\":[]}]}",
		0, NULL);
}

START_TEST(spec_lookup)
{
	json_t *p = demo_plugin(), *job, *arg;
	char *names;

	ck_assert_ptr_nonnull(p);
	job = crunctl_plugin_find_job(p, "sleep");
	ck_assert_ptr_nonnull(job);
	ck_assert_ptr_null(crunctl_plugin_find_job(p, "nope"));
	arg = crunctl_job_find_arg(job, "seconds");
	ck_assert_ptr_nonnull(arg);
	ck_assert_str_eq(json_string_value(json_object_get(arg, "type")), "number");
	ck_assert_ptr_null(crunctl_job_find_arg(job, "second"));
	names = crunctl_job_arg_names(job);
	ck_assert_str_eq(names, "seconds, message");
	free(names);
	names = crunctl_job_arg_names(crunctl_plugin_find_job(p, "noargs"));
	ck_assert_str_eq(names, "none");
	free(names);
	json_decref(p);
}
END_TEST

START_TEST(exit_codes_by_state)
{
	ck_assert_int_eq(crunctl_exit_for_state("succeeded"), CRUNCTL_EXIT_OK);
	ck_assert_int_eq(crunctl_exit_for_state("failed"), CRUNCTL_EXIT_JOB_FAILED);
	ck_assert_int_eq(crunctl_exit_for_state("cancelled"), CRUNCTL_EXIT_CANCELLED);
	ck_assert_int_eq(crunctl_exit_for_state("running"), CRUNCTL_EXIT_WAIT_TIMEOUT);
	ck_assert_int_eq(crunctl_exit_for_state("queued"), CRUNCTL_EXIT_WAIT_TIMEOUT);
	ck_assert_int_eq(crunctl_exit_for_state(NULL), CRUNCTL_EXIT_INTERNAL);
	ck_assert(crunctl_state_is_final("failed"));
	ck_assert(!crunctl_state_is_final("running"));
	ck_assert(!crunctl_state_is_final(NULL));
	/* the documented numbers */
	ck_assert_int_eq(CRUNCTL_EXIT_USAGE, 2);
	ck_assert_int_eq(CRUNCTL_EXIT_WAIT_TIMEOUT, 4);
	ck_assert_int_eq(CRUNCTL_EXIT_UNREACHABLE, 5);
	ck_assert_int_eq(CRUNCTL_EXIT_API, 6);
	ck_assert_int_eq(CRUNCTL_EXIT_INTERNAL, 7);
}
END_TEST

/* ---------------------------------------------------------------- format */

static void check_duration(double s, const char *want)
{
	char buf[32];
	crunctl_format_duration(s, buf, sizeof(buf));
	ck_assert_msg(strcmp(buf, want) == 0, "%g s printed as %s, want %s", s, buf, want);
}

START_TEST(duration_formats)
{
	check_duration(0, "0ms");
	check_duration(-3, "0ms");
	check_duration(NAN, "0ms");
	check_duration(0.0004, "0ms");
	check_duration(0.35, "350ms");
	check_duration(0.9994, "999ms");
	check_duration(0.9996, "1.0s");
	check_duration(1.2, "1.2s");
	check_duration(1.25001, "1.3s");
	check_duration(42, "42.0s");
	check_duration(59.94, "59.9s");
	check_duration(59.96, "1m00s");
	check_duration(184, "3m04s");
	check_duration(3599.4, "59m59s");
	check_duration(3599.6, "1h00m");
	check_duration(2 * 3600 + 5 * 60, "2h05m");
	check_duration(86399, "1d00h"); /* rounds up into days, never "24h00m" */
}
END_TEST

START_TEST(duration_days)
{
	check_duration(86400, "1d00h");
	check_duration(3 * 86400 + 4 * 3600, "3d04h");
}
END_TEST

START_TEST(rfc3339_parses)
{
	double t;

	ck_assert_int_eq(crd_rfc3339_parse("1970-01-01T00:00:00Z", &t), 0);
	ck_assert_double_eq(t, 0);
	ck_assert_int_eq(crd_rfc3339_parse("2024-05-01T12:00:03.250Z", &t), 0);
	ck_assert_double_eq_tol(t, 1714564803.25, 1e-6);
	ck_assert_int_eq(crd_rfc3339_parse("2024-05-01T14:00:03+02:00", &t), 0);
	ck_assert_double_eq_tol(t, 1714564803, 1e-6);
	ck_assert_int_eq(crd_rfc3339_parse("2024-05-01T10:30:03-01:30", &t), 0);
	ck_assert_double_eq_tol(t, 1714564803, 1e-6);
	ck_assert_int_eq(crd_rfc3339_parse("2024-05-01 12:00:03Z", &t), 0);
	ck_assert_int_eq(crd_rfc3339_parse("2024-05-01T12:00:03", &t), -EINVAL);
	ck_assert_int_eq(crd_rfc3339_parse("2024-13-01T12:00:03Z", &t), -EINVAL);
	ck_assert_int_eq(crd_rfc3339_parse("2024-05-01T12:00:03.Z", &t), -EINVAL);
	ck_assert_int_eq(crd_rfc3339_parse("2024-05-01T12:00:03Zjunk", &t), -EINVAL);
	ck_assert_int_eq(crd_rfc3339_parse("yesterday", &t), -EINVAL);
	/* the daemon's parser: a day its month does not have and an offset
	 * out of range are refused as crund refuses them; a time before 1970
	 * is a time (past) */
	ck_assert_int_eq(crd_rfc3339_parse("2026-02-31T00:00:00Z", &t), -EINVAL);
	ck_assert_int_eq(crd_rfc3339_parse("1969-12-31T23:59:59Z", &t), 0);
	ck_assert_double_eq(t, -1.0);
	ck_assert_int_eq(crd_rfc3339_parse("1969-07-20T20:17:00Z", &t), 0);
	ck_assert_double_eq(t, -14182980.0);
	ck_assert_int_eq(crd_rfc3339_parse("0001-01-01T00:00:00Z", &t), 0);
	ck_assert_double_eq(t, -62135596800.0);
	ck_assert_int_eq(crd_rfc3339_parse("2026-02-01T00:00:00+24:00", &t), -EINVAL);
	ck_assert_int_eq(crd_rfc3339_parse("2024-02-29T00:00:00Z", &t), 0); /* leap day */
	ck_assert_double_eq(t, 1709164800.0);
	/* RFC 3339 allows second 60 (a leap second): the next second in POSIX
	 * time, also at the end of a month and of a year */
	ck_assert_int_eq(crd_rfc3339_parse("2016-12-31T23:59:60Z", &t), 0);
	ck_assert_double_eq(t, 1483228800.0);
	ck_assert_int_eq(crd_rfc3339_parse("2015-06-30T23:59:60.5Z", &t), 0);
	ck_assert_double_eq_tol(t, 1435708800.5, 1e-6);
	ck_assert_int_eq(crd_rfc3339_parse("2015-06-30T23:59:61Z", &t), -EINVAL);
	ck_assert_int_eq(crd_rfc3339_parse(NULL, &t), -EINVAL);
}
END_TEST

START_TEST(rfc3339_formats_utc)
{
	char buf[40];
	double t;

	setenv("TZ", "Etc/GMT-2", 1); /* the local zone must not leak in */
	tzset();
	ck_assert_str_eq(crunctl_format_rfc3339(0, buf, sizeof(buf)), "1970-01-01T00:00:00Z");
	ck_assert_str_eq(crunctl_format_rfc3339(1714564803, buf, sizeof(buf)),
			 "2024-05-01T12:00:03Z");
	ck_assert_str_eq(crunctl_format_rfc3339(1714564803.25, buf, sizeof(buf)),
			 "2024-05-01T12:00:03.250Z");
	/* a fraction that rounds up to the next second carries into it */
	ck_assert_str_eq(crunctl_format_rfc3339(1714564803.9996, buf, sizeof(buf)),
			 "2024-05-01T12:00:04Z");
	/* what it writes, the parser reads back */
	ck_assert_int_eq(
		crd_rfc3339_parse(crunctl_format_rfc3339(1714564803.125, buf, sizeof(buf)), &t), 0);
	ck_assert_double_eq_tol(t, 1714564803.125, 1e-6);
	unsetenv("TZ");
	tzset();
}
END_TEST

START_TEST(relative_times)
{
	char buf[32];
	double now = 1714564803;

	ck_assert_str_eq(crunctl_format_relative(now - 0.4, now, buf, sizeof(buf)), "just now");
	ck_assert_str_eq(crunctl_format_relative(now - 5.9, now, buf, sizeof(buf)), "5s ago");
	ck_assert_str_eq(crunctl_format_relative(now - 200, now, buf, sizeof(buf)), "3m ago");
	ck_assert_str_eq(crunctl_format_relative(now - 7300, now, buf, sizeof(buf)), "2h ago");
	ck_assert_str_eq(crunctl_format_relative(now - 3 * 86400 - 5, now, buf, sizeof(buf)),
			 "3d ago");
	ck_assert_str_eq(crunctl_format_relative(now + 5, now, buf, sizeof(buf)), "in 5s");
	/* when a job will run: two units, rounded up */
	ck_assert_str_eq(crunctl_format_relative(now + 7199.9, now, buf, sizeof(buf)), "in 2h");
	ck_assert_str_eq(crunctl_format_relative(now + 10 * 3600 + 27 * 60, now, buf, sizeof(buf)),
			 "in 10h27m");
	ck_assert_str_eq(crunctl_format_relative(now + 90, now, buf, sizeof(buf)), "in 1m30s");
	ck_assert_str_eq(crunctl_format_relative(now + 120, now, buf, sizeof(buf)), "in 2m");
	ck_assert_str_eq(crunctl_format_relative(now + 3599.3, now, buf, sizeof(buf)), "in 1h");
	ck_assert_str_eq(crunctl_format_relative(now + 86400 + 3600 * 5 - 1, now, buf, sizeof(buf)),
			 "in 1d5h");
}
END_TEST

START_TEST(local_time_format)
{
	char buf[64];

	setenv("TZ", "UTC", 1);
	tzset();
	ck_assert_str_eq(crunctl_format_local_time(1714564803.9, buf, sizeof(buf)),
			 "2024-05-01 12:00:03");
	setenv("TZ", "Etc/GMT-2", 1); /* POSIX sign: two hours east */
	tzset();
	ck_assert_str_eq(crunctl_format_local_time(1714564803, buf, sizeof(buf)),
			 "2024-05-01 14:00:03");
	unsetenv("TZ");
	tzset();
}
END_TEST

START_TEST(progress_bar)
{
	char buf[128];

	ck_assert_str_eq(crunctl_format_progress(0.5, "half", 10, buf, sizeof(buf)),
			 "[#####.....]  50% half");
	ck_assert_str_eq(crunctl_format_progress(0, NULL, 4, buf, sizeof(buf)), "[....]   0%");
	ck_assert_str_eq(crunctl_format_progress(1, "", 4, buf, sizeof(buf)), "[####] 100%");
	ck_assert_str_eq(crunctl_format_progress(7, NULL, 4, buf, sizeof(buf)), "[####] 100%");
	ck_assert_str_eq(crunctl_format_progress(-1, NULL, 4, buf, sizeof(buf)), "[....]   0%");
	ck_assert_str_eq(crunctl_format_progress(0.29, NULL, 10, buf, sizeof(buf)),
			 "[##........]  29%");
	/* too small a buffer: empty, not overrun */
	ck_assert_str_eq(crunctl_format_progress(0.5, NULL, 10, buf, 8), "");
}
END_TEST

START_TEST(state_colours)
{
	ck_assert_str_eq(crunctl_state_colour("succeeded"), "32");
	ck_assert_str_eq(crunctl_state_colour("failed"), "31");
	ck_assert_str_eq(crunctl_state_colour("cancelled"), "33");
	ck_assert_str_eq(crunctl_state_colour("running"), "33");
	ck_assert_ptr_null(crunctl_state_colour("queued"));
	ck_assert_ptr_null(crunctl_state_colour(NULL));
}
END_TEST

static char *table_text(const crunctl_table *t, bool colour)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	crunctl_table_print(t, f, colour);
	fclose(f);
	return buf;
}

START_TEST(table_aligns_columns)
{
	static const char *const h[] = {"ID", "STATE", "AGE"};
	const char *r1[] = {"abc", "succeeded", "5s ago"};
	const char *r2[] = {"x", NULL, "1h ago"};
	const char *c1[] = {NULL, "32", NULL};
	crunctl_table *t = crunctl_table_new(3, h);
	char *out;

	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(crunctl_table_add(t, r1, c1), 0);
	ck_assert_int_eq(crunctl_table_add(t, r2, NULL), 0);
	out = table_text(t, false);
	ck_assert_str_eq(out, "ID   STATE      AGE\n"
			      "abc  succeeded  5s ago\n"
			      "x    -          1h ago\n");
	free(out);
	/* colour codes do not shift the columns */
	out = table_text(t, true);
	ck_assert_str_eq(out, "ID   STATE      AGE\n"
			      "abc  \033[32msucceeded\033[0m  5s ago\n"
			      "x    -          1h ago\n");
	free(out);
	crunctl_table_free(t);
	crunctl_table_free(NULL);
}
END_TEST

START_TEST(table_counts_utf8_code_points)
{
	static const char *const h[] = {"A", "B"};
	const char *r1[] = {"\xc3\xa9t\xc3\xa9", "x"}; /* "été": 3 cells, 5 bytes */
	crunctl_table *t = crunctl_table_new(2, h);
	char *out;

	ck_assert_int_eq(crunctl_table_add(t, r1, NULL), 0);
	out = table_text(t, false);
	ck_assert_str_eq(out, "A    B\n\xc3\xa9t\xc3\xa9  x\n");
	free(out);
	crunctl_table_free(t);
}
END_TEST

START_TEST(attempt_cells)
{
	char buf[48];
	json_t *j = json_object();

	ck_assert_str_eq(crunctl_format_attempt(j, buf, sizeof(buf)), "-"); /* older crund */
	json_object_set_new(j, "attempt", json_integer(0));
	json_object_set_new(j, "max_attempts", json_integer(3));
	ck_assert_str_eq(crunctl_format_attempt(j, buf, sizeof(buf)), "-"); /* not started */
	json_object_set_new(j, "attempt", json_integer(2));
	ck_assert_str_eq(crunctl_format_attempt(j, buf, sizeof(buf)), "2/3");
	json_object_del(j, "max_attempts");
	ck_assert_str_eq(crunctl_format_attempt(j, buf, sizeof(buf)), "2");
	json_decref(j);
}
END_TEST

/* One job row of a job table at `now`, without the header. */
static char *job_row(const char *job_json, double now)
{
	crunctl_table *t = crunctl_table_new(CRUNCTL_JOB_COLUMNS, crunctl_job_headers);
	json_t *job = json_loads(job_json, 0, NULL);
	char *out, *row;

	ck_assert_ptr_nonnull(job);
	ck_assert_int_eq(crunctl_table_add_job(t, job, now), 0);
	out = table_text(t, false);
	row = strdup(strchr(out, '\n') + 1);
	free(out);
	json_decref(job);
	crunctl_table_free(t);
	return row;
}

START_TEST(job_rows_show_attempt_and_run_at)
{
	double now = 1714564803; /* 2024-05-01T12:00:03Z */
	char *row;

	/* delayed: not started, runs in 30 s */
	row = job_row("{\"id\":\"a\",\"plugin\":\"p\",\"job\":\"j\",\"state\":\"queued\","
		      "\"created_at\":\"2024-05-01T12:00:00Z\",\"attempt\":0,"
		      "\"max_attempts\":1,\"run_at\":\"2024-05-01T12:00:33Z\"}",
		      now);
	ck_assert_str_eq(row, "a   p       j    queued  -        3s ago  in 30s\n");
	free(row);
	/* waiting for a retry: its last start is no duration; due now: "-" */
	row = job_row("{\"id\":\"b\",\"plugin\":\"p\",\"job\":\"j\",\"state\":\"queued\","
		      "\"created_at\":\"2024-05-01T12:00:00Z\","
		      "\"started_at\":\"2024-05-01T12:00:01Z\",\"attempt\":1,"
		      "\"max_attempts\":3,\"run_at\":\"2024-05-01T12:00:03.5Z\"}",
		      now);
	ck_assert_str_eq(row, "b   p       j    queued  1/3      3s ago  -\n");
	free(row);
	/* running its second attempt */
	row = job_row("{\"id\":\"c\",\"plugin\":\"p\",\"job\":\"j\",\"state\":\"running\","
		      "\"created_at\":\"2024-05-01T12:00:00Z\","
		      "\"started_at\":\"2024-05-01T11:59:58Z\",\"attempt\":2,"
		      "\"max_attempts\":3,\"run_at\":null}",
		      now);
	ck_assert_str_eq(row, "c   p       j    running  2/3      3s ago  5.0s\n");
	free(row);
}
END_TEST

/* ------------------------------------------------------------------- SSE */

typedef struct sse_log {
	char text[4096];
	int n;
	int stop_after;
} sse_log;

static int record_event(const char *event, const char *data, void *userdata)
{
	sse_log *l = userdata;
	size_t used = strlen(l->text);

	snprintf(l->text + used, sizeof(l->text) - used, "<%s|%s>", event, data);
	l->n++;
	return l->stop_after && l->n >= l->stop_after ? 99 : 0;
}

static void feed_split(const char *stream, size_t chunk, sse_log *l)
{
	crunctl_sse p;
	size_t len = strlen(stream);

	memset(l, 0, sizeof(*l));
	crunctl_sse_init(&p, record_event, l);
	for (size_t i = 0; i < len; i += chunk) {
		size_t n = len - i < chunk ? len - i : chunk;
		ck_assert_int_eq(crunctl_sse_feed(&p, stream + i, n), 0);
	}
	crunctl_sse_free(&p);
}

START_TEST(sse_events_any_split)
{
	static const char stream[] = ": keep-alive\n"
				     "event: state\n"
				     "data: {\"state\":\"running\"}\n"
				     "\n"
				     "event: log\r\n"
				     "data:line one\r\n"
				     "data: line two\r\n"
				     "\r\n"
				     "id: 7\n"
				     "data: plain\r"
				     "\r"
				     "event: end\n"
				     "\n" /* no data: not dispatched */
				     "event: end\n"
				     "data: {}\n"
				     "\n"
				     "event: lost\n"
				     "data: unfinished\n";
	static const char want[] = "<state|{\"state\":\"running\"}>"
				   "<log|line one\nline two>"
				   "<message|plain>"
				   "<end|{}>";
	sse_log l;

	/* every chunk size, including one byte at a time (splits inside
	 * "\r\n" and inside field names) */
	for (size_t chunk = 1; chunk <= sizeof(stream); chunk++) {
		feed_split(stream, chunk, &l);
		ck_assert_msg(strcmp(l.text, want) == 0, "chunk %zu: %s", chunk, l.text);
	}
}
END_TEST

START_TEST(sse_callback_stops)
{
	static const char stream[] = "data: a\n\ndata: b\n\ndata: c\n\n";
	crunctl_sse p;
	sse_log l;

	memset(&l, 0, sizeof(l));
	l.stop_after = 2;
	crunctl_sse_init(&p, record_event, &l);
	ck_assert_int_eq(crunctl_sse_feed(&p, stream, strlen(stream)), 99);
	ck_assert_int_eq(l.n, 2);
	crunctl_sse_free(&p);
}
END_TEST

START_TEST(sse_refuses_huge_line)
{
	crunctl_sse p;
	sse_log l;
	size_t chunk = 1 << 20;
	char *big = malloc(chunk);
	int rc = 0;

	ck_assert_ptr_nonnull(big);
	memset(big, 'x', chunk);
	memset(&l, 0, sizeof(l));
	crunctl_sse_init(&p, record_event, &l);
	for (int i = 0; i < 8 && rc == 0; i++)
		rc = crunctl_sse_feed(&p, big, chunk);
	ck_assert_int_eq(rc, -E2BIG);
	crunctl_sse_free(&p);
	free(big);
}
END_TEST

static Suite *crunctl_suite(void)
{
	Suite *s = suite_create("crunctl");
	TCase *tc = tcase_create("args");

	tcase_add_test(tc, parse_duration_accepts_units);
	tcase_add_test(tc, parse_duration_refuses_garbage);
	tcase_add_test(tc, parse_count_positive_only);
	tcase_add_test(tc, parse_time_rfc3339_or_local);
	tcase_add_test(tc, split_kv_plain_and_raw);
	tcase_add_test(tc, typed_integer);
	tcase_add_test(tc, typed_number);
	tcase_add_test(tc, typed_boolean);
	tcase_add_test(tc, typed_string_keeps_text);
	tcase_add_test(tc, typed_json_kinds);
	tcase_add_test(tc, raw_value_parses_json);
	tcase_add_test(tc, spec_lookup);
	tcase_add_test(tc, exit_codes_by_state);
	suite_add_tcase(s, tc);

	tc = tcase_create("format");
	tcase_add_test(tc, duration_formats);
	tcase_add_test(tc, duration_days);
	tcase_add_test(tc, rfc3339_parses);
	tcase_add_test(tc, rfc3339_formats_utc);
	tcase_add_test(tc, relative_times);
	tcase_add_test(tc, local_time_format);
	tcase_add_test(tc, progress_bar);
	tcase_add_test(tc, state_colours);
	tcase_add_test(tc, table_aligns_columns);
	tcase_add_test(tc, table_counts_utf8_code_points);
	tcase_add_test(tc, attempt_cells);
	tcase_add_test(tc, job_rows_show_attempt_and_run_at);
	suite_add_tcase(s, tc);

	tc = tcase_create("sse");
	tcase_add_test(tc, sse_events_any_split);
	tcase_add_test(tc, sse_callback_stops);
	tcase_add_test(tc, sse_refuses_huge_line);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(crunctl_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
