/*
 * test-args.c — crd_args_validate(): every rule, every message.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <string.h>

#include "plugins/plugins.h"

static int run_dummy(crund_job *job) { return 0; }

static const crund_arg_spec sleep_args[] = {
	{.name = "seconds",
	 .type = CRUND_ARG_NUMBER,
	 .required = true,
	 .has_range = true,
	 .min = 0,
	 .max = 3600},
};
static const crund_job_spec sleep_job = {
	.name = "sleep", .run = run_dummy, .args = sleep_args, .n_args = 1};

static const crund_job_spec noop_job = {.name = "noop", .run = run_dummy};

static const crund_arg_spec fanout_args[] = {
	{.name = "n",
	 .type = CRUND_ARG_INTEGER,
	 .default_json = "10",
	 .has_range = true,
	 .min = 1,
	 .max = 10000},
	{.name = "seconds",
	 .type = CRUND_ARG_NUMBER,
	 .default_json = "0.1",
	 .has_range = true,
	 .min = 0,
	 .max = 3600},
};
static const crund_job_spec fanout_job = {
	.name = "fanout", .run = run_dummy, .args = fanout_args, .n_args = 2};

static const crund_arg_spec typed_args[] = {
	{.name = "s", .type = CRUND_ARG_STRING}, {.name = "i", .type = CRUND_ARG_INTEGER},
	{.name = "n", .type = CRUND_ARG_NUMBER}, {.name = "b", .type = CRUND_ARG_BOOLEAN},
	{.name = "a", .type = CRUND_ARG_ANY},    {.name = "o", .type = CRUND_ARG_OBJECT},
	{.name = "l", .type = CRUND_ARG_ARRAY},
};
static const crund_job_spec typed_job = {
	.name = "typed", .run = run_dummy, .args = typed_args, .n_args = 7};

/* Validate JSON text; returns the code, fills err and (on success) *out. */
static int validate(const crund_job_spec *spec, const char *text, json_t **out, char *err,
		    size_t errlen)
{
	json_t *args = NULL;
	if (text) {
		args = json_loads(text, JSON_DECODE_ANY, NULL);
		ck_assert_ptr_nonnull(args);
	}
	json_t *res = NULL;
	err[0] = '\0';
	int rc = crd_args_validate(spec, args, &res, err, errlen);
	json_decref(args);
	if (out)
		*out = res;
	else
		json_decref(res);
	if (rc == 0)
		ck_assert_ptr_nonnull(res);
	return rc;
}

/* Expect a refusal with exactly this message. */
static void expect_error(const crund_job_spec *spec, const char *text, const char *message)
{
	char err[256];
	json_t *out = NULL;
	int rc = validate(spec, text, &out, err, sizeof err);
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_ptr_null(out);
	ck_assert_str_eq(err, message);
}

/* Expect success and compare the filled-in arguments to `expected`. */
static void expect_ok(const crund_job_spec *spec, const char *text, const char *expected)
{
	char err[256];
	json_t *out = NULL;
	int rc = validate(spec, text, &out, err, sizeof err);
	ck_assert_msg(rc == 0, "refused %s: %s", text ? text : "NULL", err);
	json_t *want = json_loads(expected, 0, NULL);
	ck_assert_ptr_nonnull(want);
	char *got = json_dumps(out, JSON_SORT_KEYS | JSON_COMPACT);
	ck_assert_msg(json_equal(out, want), "got %s, want %s", got, expected);
	free(got);
	json_decref(want);
	json_decref(out);
}

START_TEST(missing_required_names_the_argument)
{
	expect_error(&sleep_job, "{}", "missing required argument 'seconds'");
	expect_error(&sleep_job, NULL, "missing required argument 'seconds'");
}
END_TEST

START_TEST(unknown_argument_lists_what_the_job_takes)
{
	expect_error(&sleep_job, "{\"secs\": 1}",
		     "unknown argument 'secs' (job sleep takes: seconds)");
	expect_error(&fanout_job, "{\"count\": 1}",
		     "unknown argument 'count' (job fanout takes: n, seconds)");
	expect_error(&noop_job, "{\"x\": 1}", "unknown argument 'x' (job noop takes no arguments)");
}
END_TEST

START_TEST(unknown_is_reported_before_missing)
{
	/* A misspelt required argument: the spelling is the mistake. */
	expect_error(&sleep_job, "{\"second\": 1}",
		     "unknown argument 'second' (job sleep takes: seconds)");
}
END_TEST

START_TEST(wrong_type_says_expected_and_got)
{
	expect_error(&sleep_job, "{\"seconds\": \"5\"}",
		     "argument 'seconds' must be a number, got string");
	expect_error(&sleep_job, "{\"seconds\": null}",
		     "argument 'seconds' must be a number, got null");
	expect_error(&sleep_job, "{\"seconds\": true}",
		     "argument 'seconds' must be a number, got boolean");
	expect_error(&typed_job, "{\"s\": 1}", "argument 's' must be a string, got integer");
	expect_error(&typed_job, "{\"i\": \"1\"}", "argument 'i' must be an integer, got string");
	expect_error(&typed_job, "{\"b\": 0}", "argument 'b' must be a boolean, got integer");
	expect_error(&typed_job, "{\"o\": []}", "argument 'o' must be an object, got array");
	expect_error(&typed_job, "{\"l\": {}}", "argument 'l' must be an array, got object");
	expect_error(&typed_job, "{\"n\": [1]}", "argument 'n' must be a number, got array");
}
END_TEST

START_TEST(every_type_accepts_its_values)
{
	expect_ok(&typed_job,
		  "{\"s\": \"x\", \"i\": -3, \"n\": 2.5, \"b\": false, \"a\": null, \"o\": {\"k\": "
		  "1},"
		  " \"l\": [1, \"two\"]}",
		  "{\"s\": \"x\", \"i\": -3, \"n\": 2.5, \"b\": false, \"a\": null, \"o\": {\"k\": "
		  "1},"
		  " \"l\": [1, \"two\"]}");
	expect_ok(&typed_job, "{\"a\": [1, {}]}", "{\"a\": [1, {}]}");
	expect_ok(&typed_job, "{\"n\": 7}", "{\"n\": 7}"); /* integers are numbers */
}
END_TEST

START_TEST(range_is_inclusive_and_named)
{
	expect_ok(&sleep_job, "{\"seconds\": 0}", "{\"seconds\": 0}");
	expect_ok(&sleep_job, "{\"seconds\": 3600}", "{\"seconds\": 3600}");
	expect_ok(&sleep_job, "{\"seconds\": 0.5}", "{\"seconds\": 0.5}");
	expect_error(&sleep_job, "{\"seconds\": 3600.5}",
		     "argument 'seconds' must be between 0 and 3600, got 3600.5");
	expect_error(&sleep_job, "{\"seconds\": -1}",
		     "argument 'seconds' must be between 0 and 3600, got -1");
	expect_error(&fanout_job, "{\"n\": 0}", "argument 'n' must be between 1 and 10000, got 0");
	expect_error(&fanout_job, "{\"seconds\": 1e9}",
		     "argument 'seconds' must be between 0 and 3600, got 1000000000");
}
END_TEST

START_TEST(integers_accept_integral_reals)
{
	/* 3.0 is what many JSON encoders write for 3: accepted, passed on
	 * as the integer the job expects. */
	char err[256];
	json_t *out = NULL;
	ck_assert_int_eq(validate(&fanout_job, "{\"n\": 3.0}", &out, err, sizeof err), 0);
	json_t *n = json_object_get(out, "n");
	ck_assert(json_is_integer(n));
	ck_assert_int_eq(json_integer_value(n), 3);
	json_decref(out);

	expect_error(&fanout_job, "{\"n\": 1.5}", "argument 'n' must be an integer, got 1.5");
	expect_error(&typed_job, "{\"i\": 1e30}", "argument 'i' must be an integer, got 1e+30");
	expect_error(&fanout_job, "{\"n\": 20000.0}",
		     "argument 'n' must be between 1 and 10000, got 20000");
}
END_TEST

START_TEST(defaults_are_filled_in)
{
	expect_ok(&fanout_job, "{}", "{\"n\": 10, \"seconds\": 0.1}");
	expect_ok(&fanout_job, NULL, "{\"n\": 10, \"seconds\": 0.1}");
	expect_ok(&fanout_job, "{\"n\": 3}", "{\"n\": 3, \"seconds\": 0.1}");
	expect_ok(&fanout_job, "{\"seconds\": 0}", "{\"n\": 10, \"seconds\": 0}");
}
END_TEST

START_TEST(optional_without_default_stays_absent)
{
	expect_ok(&typed_job, "{}", "{}");
	expect_ok(&typed_job, "{\"b\": true}", "{\"b\": true}");
}
END_TEST

START_TEST(arguments_must_be_an_object)
{
	expect_error(&sleep_job, "[1]", "arguments must be a JSON object, got array");
	expect_error(&sleep_job, "5", "arguments must be a JSON object, got integer");
	expect_error(&sleep_job, "\"x\"", "arguments must be a JSON object, got string");
}
END_TEST

START_TEST(input_is_not_modified_and_output_is_new)
{
	json_t *args = json_pack("{s:f}", "n", 4.0);
	json_t *out = NULL;
	char err[128];
	ck_assert_int_eq(crd_args_validate(&fanout_job, args, &out, err, sizeof err), 0);
	ck_assert_ptr_ne(out, args);
	ck_assert_int_eq(json_object_size(args), 1);
	ck_assert(json_is_real(json_object_get(args, "n")));
	ck_assert_int_eq(json_object_size(out), 2);
	ck_assert_int_eq(out->refcount, 1);
	json_decref(out);
	json_decref(args);
}
END_TEST

START_TEST(error_buffer_may_be_small_or_absent)
{
	json_t *args = json_pack("{s:s}", "seconds", "x");
	json_t *out = (json_t *)0x1;
	ck_assert_int_eq(crd_args_validate(&sleep_job, args, &out, NULL, 0), -EINVAL);
	ck_assert_ptr_eq(out, (json_t *)0x1); /* not written on failure */
	char tiny[10];
	memset(tiny, 'z', sizeof tiny);
	ck_assert_int_eq(crd_args_validate(&sleep_job, args, &out, tiny, sizeof tiny), -EINVAL);
	ck_assert_str_eq(tiny, "argument ");
	json_decref(args);
}
END_TEST

START_TEST(bad_declared_default_is_refused)
{
	static const crund_arg_spec bad[] = {
		{.name = "count", .type = CRUND_ARG_INTEGER, .default_json = "\"ten\""},
	};
	static const crund_job_spec job = {
		.name = "count", .run = run_dummy, .args = bad, .n_args = 1};
	expect_error(&job, "{}", "argument 'count' must be an integer, got string");
	expect_ok(&job, "{\"count\": 2}", "{\"count\": 2}");
}
END_TEST

START_TEST(arg_check_single_value)
{
	char err[128];
	json_t *v = json_real(2.0), *out = NULL;
	ck_assert_int_eq(crd_arg_check(&fanout_args[0], v, &out, err, sizeof err), 0);
	ck_assert(json_is_integer(out));
	json_decref(out);
	out = NULL;
	ck_assert_int_eq(crd_arg_check(&sleep_args[0], v, &out, err, sizeof err), 0);
	ck_assert_ptr_eq(out, v); /* same value, new reference */
	json_decref(out);
	json_decref(v);
}
END_TEST

START_TEST(type_names)
{
	ck_assert_str_eq(crd_arg_type_name(CRUND_ARG_STRING), "string");
	ck_assert_str_eq(crd_arg_type_name(CRUND_ARG_INTEGER), "integer");
	ck_assert_str_eq(crd_arg_type_name(CRUND_ARG_NUMBER), "number");
	ck_assert_str_eq(crd_arg_type_name(CRUND_ARG_BOOLEAN), "boolean");
	ck_assert_str_eq(crd_arg_type_name(CRUND_ARG_ANY), "any");
	ck_assert_str_eq(crd_arg_type_name(CRUND_ARG_OBJECT), "object");
	ck_assert_str_eq(crd_arg_type_name(CRUND_ARG_ARRAY), "array");
	ck_assert_str_eq(crd_arg_type_name((crund_arg_type)99), "unknown");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("args");
	TCase *tc = tcase_create("validate");
	tcase_add_test(tc, missing_required_names_the_argument);
	tcase_add_test(tc, unknown_argument_lists_what_the_job_takes);
	tcase_add_test(tc, unknown_is_reported_before_missing);
	tcase_add_test(tc, wrong_type_says_expected_and_got);
	tcase_add_test(tc, every_type_accepts_its_values);
	tcase_add_test(tc, range_is_inclusive_and_named);
	tcase_add_test(tc, integers_accept_integral_reals);
	tcase_add_test(tc, defaults_are_filled_in);
	tcase_add_test(tc, optional_without_default_stays_absent);
	tcase_add_test(tc, arguments_must_be_an_object);
	tcase_add_test(tc, input_is_not_modified_and_output_is_new);
	tcase_add_test(tc, error_buffer_may_be_small_or_absent);
	tcase_add_test(tc, bad_declared_default_is_refused);
	tcase_add_test(tc, arg_check_single_value);
	tcase_add_test(tc, type_names);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
