/*
 * test-route.c — the API's routing table and query parsers
 * (daemon/http/route.c): every route, 404 for unknown paths and bad path
 * parameters, 405 with the Allow header's value; POST /v1/jobs bodies
 * (daemon/jobs/submit.c): every field, and a message naming each bad one.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <string.h>

#include "http/route.h"
#include "jobs/jobs.h"
#include "jobs/submit.h"
#include "testutil.h"

static crd_route_match m;

#define ROUTE(meth, path) crd_route(meth, path, &m)

START_TEST(every_route_matches_its_methods)
{
	struct {
		const char *method, *path;
		crd_route_id id;
		const char *param;
	} ok[] = {
		{"GET", "/v1/jobs", CRUND_R_JOBS, ""},
		{"POST", "/v1/jobs", CRUND_R_JOBS, ""},
		{"HEAD", "/v1/jobs", CRUND_R_JOBS, ""},
		{"GET", "/v1/jobs/abc123", CRUND_R_JOB, "abc123"},
		{"DELETE", "/v1/jobs/abc123", CRUND_R_JOB, "abc123"},
		{"POST", "/v1/jobs/abc123/cancel", CRUND_R_JOB_CANCEL, "abc123"},
		{"GET", "/v1/jobs/abc123/events", CRUND_R_JOB_EVENTS, "abc123"},
		{"GET", "/v1/jobs/abc123/log", CRUND_R_JOB_LOG, "abc123"},
		{"GET", "/v1/plugins", CRUND_R_PLUGINS, ""},
		{"GET", "/v1/plugins/demo", CRUND_R_PLUGIN, "demo"},
		{"GET", "/v1/plugins/my-plugin_2", CRUND_R_PLUGIN, "my-plugin_2"},
		{"GET", "/v1/info", CRUND_R_INFO, ""},
		{"GET", "/v1/health", CRUND_R_HEALTH, ""},
		{"HEAD", "/v1/health", CRUND_R_HEALTH, ""},
		{"GET", "/metrics", CRUND_R_METRICS, ""},
		{"POST", "/v1/jobs/abc123/retry", CRUND_R_JOB_RETRY, "abc123"},
		{"GET", "/v1/events", CRUND_R_EVENTS, ""},
		{"GET", "/v1/stats", CRUND_R_STATS, ""},
		{"GET", "/ui", CRUND_R_UI, ""},
		{"GET", "/ui/", CRUND_R_UI, "index.html"},
		{"GET", "/ui/app.js", CRUND_R_UI, "app.js"},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ROUTE(ok[i].method, ok[i].path);
		ck_assert_msg(m.status == 0, "%s %s: status %u", ok[i].method, ok[i].path,
			      m.status);
		ck_assert_int_eq(m.route, ok[i].id);
		ck_assert_str_eq(m.param, ok[i].param);
	}
}
END_TEST

START_TEST(unknown_paths_are_404)
{
	const char *bad[] = {
		"/",
		"/v1",
		"/v1/",
		"/v2/jobs",
		"/v1/jobs/",
		"/v1/jobsx",
		"/v1/jobs/a/b",
		"/v1/jobs/a/cancel/x",
		"/v1/jobs/a/",
		"/v1/plugins/",
		"/v1/plugins/a/b",
		"/v1/infox",
		"/v1/health/",
		"/metrics/",
		"/v1/jobs/a%20b",
		"/v1/jobs/a b",
		"/v1/jobs/../info",
		"/v1/jobs//cancel",
		"/V1/jobs",
		"/ui/a/b",
		"/ui//",
		"/uix",
		"/v1/events/",
		"/v1/jobs/a/retry/",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ROUTE("GET", bad[i]);
		ck_assert_msg(m.status == 404, "%s: status %u", bad[i], m.status);
		ck_assert_int_eq(m.route, CRUND_R_NONE);
	}
}
END_TEST

START_TEST(too_long_parameter_is_404)
{
	char path[300] = "/v1/jobs/";
	memset(path + 9, 'a', 200);
	path[209] = '\0';
	ROUTE("GET", path);
	ck_assert_uint_eq(m.status, 404);
	memset(path + 9, 'a', 127);
	path[9 + 127] = '\0';
	ROUTE("GET", path);
	ck_assert_uint_eq(m.status, 0);
	ck_assert_uint_eq(strlen(m.param), 127);
}
END_TEST

START_TEST(wrong_method_is_405_with_allow)
{
	struct {
		const char *method, *path, *allow;
	} bad[] = {
		{"PUT", "/v1/jobs", "GET, HEAD, POST"},
		{"DELETE", "/v1/jobs", "GET, HEAD, POST"},
		{"POST", "/v1/jobs/x", "GET, HEAD, DELETE"},
		{"GET", "/v1/jobs/x/cancel", "POST"},
		{"DELETE", "/v1/jobs/x/cancel", "POST"},
		{"POST", "/v1/jobs/x/events", "GET, HEAD"},
		{"POST", "/v1/jobs/x/log", "GET, HEAD"},
		{"POST", "/v1/plugins", "GET, HEAD"},
		{"DELETE", "/v1/plugins/demo", "GET, HEAD"},
		{"POST", "/v1/info", "GET, HEAD"},
		{"POST", "/v1/health", "GET, HEAD"},
		{"OPTIONS", "/metrics", "GET, HEAD"},
		{"BREW", "/v1/jobs", "GET, HEAD, POST"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ROUTE(bad[i].method, bad[i].path);
		ck_assert_msg(m.status == 405, "%s %s: status %u", bad[i].method, bad[i].path,
			      m.status);
		ck_assert_str_eq(m.allow, bad[i].allow);
	}
}
END_TEST

START_TEST(methods_parse)
{
	ck_assert_int_eq(crd_method_parse("GET"), CRUND_M_GET);
	ck_assert_int_eq(crd_method_parse("POST"), CRUND_M_POST);
	ck_assert_int_eq(crd_method_parse("HEAD"), CRUND_M_HEAD);
	ck_assert_int_eq(crd_method_parse("DELETE"), CRUND_M_DELETE);
	ck_assert_int_eq(crd_method_parse("get"), CRUND_M_OTHER);
	ck_assert_int_eq(crd_method_parse(""), CRUND_M_OTHER);
}
END_TEST

START_TEST(wait_parses_seconds_in_range)
{
	double d = -1;
	ck_assert_int_eq(crd_parse_wait("5", &d), 0);
	ck_assert(d == 5);
	ck_assert_int_eq(crd_parse_wait("0.25", &d), 0);
	ck_assert(d == 0.25);
	ck_assert_int_eq(crd_parse_wait("300", &d), 0);
	ck_assert_int_eq(crd_parse_wait("0", &d), 0);
	ck_assert(d == 0);
	const char *bad[] = {"", "abc", "-1", "300.5", "1e9", "5s", "nan", "inf", " 5x", "0x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(crd_parse_wait(bad[i], &d) == -EINVAL, "'%s' accepted", bad[i]);
	ck_assert_int_eq(crd_parse_wait(NULL, &d), -EINVAL);
}
END_TEST

START_TEST(limit_parses_with_default_and_bounds)
{
	size_t n = 0;
	ck_assert_int_eq(crd_parse_limit(NULL, &n), 0);
	ck_assert_uint_eq(n, 100);
	ck_assert_int_eq(crd_parse_limit("1", &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(crd_parse_limit("1000", &n), 0);
	ck_assert_int_eq(crd_parse_limit("1001", &n), -EINVAL);
	ck_assert_int_eq(crd_parse_limit("0", &n), -EINVAL);
	ck_assert_int_eq(crd_parse_limit("-3", &n), -EINVAL);
	ck_assert_int_eq(crd_parse_limit("10x", &n), -EINVAL);
	ck_assert_int_eq(crd_parse_limit("", &n), -EINVAL);
}
END_TEST

START_TEST(state_filter_parses_lists)
{
	unsigned mask = 99;
	ck_assert_int_eq(crd_parse_state_mask(NULL, &mask), 0);
	ck_assert_uint_eq(mask, 0);
	ck_assert_int_eq(crd_parse_state_mask("running", &mask), 0);
	ck_assert_uint_eq(mask, 1u << CRUND_JOB_RUNNING);
	ck_assert_int_eq(crd_parse_state_mask("queued,failed,cancelled", &mask), 0);
	ck_assert_uint_eq(mask, 1u << CRUND_JOB_QUEUED | 1u << CRUND_JOB_FAILED |
					1u << CRUND_JOB_CANCELLED);
	ck_assert_int_eq(crd_parse_state_mask("", &mask), -EINVAL);
	ck_assert_int_eq(crd_parse_state_mask("done", &mask), -EINVAL);
	/* an empty name anywhere in the list, as /v1/events and crunctl
	 * refuse it */
	ck_assert_int_eq(crd_parse_state_mask("running,", &mask), -EINVAL);
	ck_assert_int_eq(crd_parse_state_mask(",running", &mask), -EINVAL);
	ck_assert_int_eq(crd_parse_state_mask("running,,failed", &mask), -EINVAL);
	ck_assert_int_eq(crd_parse_state_mask("averyveryverylongstatename", &mask), -EINVAL);
}
END_TEST

/* ------------------------------------------------ POST /v1/jobs bodies */

static int run_noop(crund_job *job)
{
	(void)job;
	return 0;
}
static const crund_arg_spec sleep_args[] = {
	{.name = "seconds",
	 .type = CRUND_ARG_NUMBER,
	 .required = true,
	 .has_range = true,
	 .min = 0,
	 .max = 10},
	{.name = "label", .type = CRUND_ARG_STRING, .default_json = "\"x\""},
};
static const crund_job_spec jobs_tbl[] = {
	{.name = "noop", .run = run_noop},
	{.name = "sleep", .run = run_noop, .args = sleep_args, .n_args = 2},
};
static const crund_plugin desc = {.magic = CRUND_PLUGIN_MAGIC,
				  .abi_major = 1,
				  .name = "demo",
				  .version = "1",
				  .jobs = jobs_tbl,
				  .n_jobs = 2};
static crd_loaded_plugin loaded = {.desc = &desc, .path = (char *)"demo.so"};
static const crd_plugin_registry reg = {.plugins = &loaded, .n = 1};

static int parse_body(const char *body, crd_submission *s, const char **code, char *msg)
{
	return crd_submission_parse(&reg, body, strlen(body), s, code, msg, 300);
}

START_TEST(submission_parses_every_field)
{
	crd_submission s;
	const char *code = NULL;
	char msg[300];
	ck_assert_int_eq(
		parse_body("{\"plugin\":\"demo\",\"job\":\"sleep\",\"args\":{\"seconds\":1.5},"
			   "\"timeout\":2,\"context\":\"isolated\",\"idempotency_key\":\"k\"}",
			   &s, &code, msg),
		0);
	ck_assert_ptr_eq(s.plugin, &loaded);
	ck_assert_ptr_eq(s.spec, &jobs_tbl[1]);
	ck_assert(s.timeout == 2);
	ck_assert(s.isolated);
	ck_assert_str_eq(s.idem_key, "k");
	ck_assert(json_real_value(json_object_get(s.args, "seconds")) == 1.5);
	ck_assert_str_eq(json_string_value(json_object_get(s.args, "label")), "x"); /* default */
	crd_submission_free(&s);
	ck_assert_int_eq(parse_body("{\"plugin\":\"demo\",\"job\":\"noop\",\"args\":null,"
				    "\"timeout\":null,\"context\":\"shared\"}",
				    &s, &code, msg),
			 0);
	ck_assert(!s.isolated);
	ck_assert(s.timeout == 0);
	ck_assert_ptr_null(s.idem_key);
	crd_submission_free(&s);
}
END_TEST

START_TEST(bad_submissions_name_the_problem)
{
	struct {
		const char *body, *code, *needle;
	} cases[] = {
		{"", "invalid_json", "empty"},
		{"{\"plugin\":", "invalid_json", "line 1, column"},
		{"{\n\"plugin\" \"demo\"}", "invalid_json", "line 2"},
		{"\xff\xfe", "invalid_json", "not valid JSON"},
		{"[1,2]", "invalid_request", "JSON object"},
		{"\"demo\"", "invalid_request", "JSON object"},
		{"{\"job\":\"noop\"}", "invalid_request", "'plugin'"},
		{"{\"plugin\":1,\"job\":\"noop\"}", "invalid_request", "'plugin'"},
		{"{\"plugin\":\"demo\"}", "invalid_request", "'job'"},
		{"{\"plugin\":\"demo\",\"job\":\"noop\",\"args\":[1]}", "invalid_request",
		 "'args'"},
		{"{\"plugin\":\"demo\",\"job\":\"noop\",\"timeout\":0}", "invalid_request",
		 "'timeout'"},
		{"{\"plugin\":\"demo\",\"job\":\"noop\",\"timeout\":-1}", "invalid_request",
		 "'timeout'"},
		{"{\"plugin\":\"demo\",\"job\":\"noop\",\"timeout\":\"5\"}", "invalid_request",
		 "'timeout'"},
		{"{\"plugin\":\"demo\",\"job\":\"noop\",\"context\":\"mine\"}", "invalid_request",
		 "'context'"},
		{"{\"plugin\":\"demo\",\"job\":\"noop\",\"idempotency_key\":\"\"}",
		 "invalid_request", "'idempotency_key'"},
		{"{\"plugin\":\"demo\",\"job\":\"noop\",\"idempotency_key\":7}", "invalid_request",
		 "'idempotency_key'"},
		{"{\"plugin\":\"demo\",\"job\":\"noop\",\"extra\":1}", "invalid_request",
		 "'extra'"},
		{"{\"plugin\":\"nope\",\"job\":\"noop\"}", "unknown_plugin", "'nope'"},
		{"{\"plugin\":\"demo\",\"job\":\"nope\"}", "unknown_job", "'nope'"},
		{"{\"plugin\":\"demo\",\"job\":\"sleep\"}", "invalid_args", "seconds"},
		{"{\"plugin\":\"demo\",\"job\":\"sleep\",\"args\":{\"seconds\":\"1\"}}",
		 "invalid_args", "seconds"},
		{"{\"plugin\":\"demo\",\"job\":\"sleep\",\"args\":{\"seconds\":99}}",
		 "invalid_args", "seconds"},
		{"{\"plugin\":\"demo\",\"job\":\"sleep\",\"args\":{\"seconds\":1,\"zz\":1}}",
		 "invalid_args", "zz"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		crd_submission s;
		const char *code = NULL;
		char msg[300] = "";
		int rc = parse_body(cases[i].body, &s, &code, msg);
		bool unknown = !strcmp(cases[i].code, "unknown_plugin") ||
			       !strcmp(cases[i].code, "unknown_job");
		ck_assert_msg(rc == (unknown ? -ENOENT : -EINVAL), "case %zu: rc %d", i, rc);
		ck_assert_msg(code && !strcmp(code, cases[i].code), "case %zu: code %s, want %s", i,
			      code ? code : "(null)", cases[i].code);
		ck_assert_msg(strstr(msg, cases[i].needle) != NULL, "case %zu: '%s' lacks '%s'", i,
			      msg, cases[i].needle);
	}
}
END_TEST

START_TEST(oversized_idempotency_key_is_refused)
{
	char body[600], key[300];
	memset(key, 'k', 201);
	key[201] = '\0';
	snprintf(body, sizeof(body),
		 "{\"plugin\":\"demo\",\"job\":\"noop\",\"idempotency_key\":\"%s\"}", key);
	crd_submission s;
	const char *code = NULL;
	char msg[300];
	ck_assert_int_eq(parse_body(body, &s, &code, msg), -EINVAL);
	key[200] = '\0';
	snprintf(body, sizeof(body),
		 "{\"plugin\":\"demo\",\"job\":\"noop\",\"idempotency_key\":\"%s\"}", key);
	ck_assert_int_eq(parse_body(body, &s, &code, msg), 0);
	crd_submission_free(&s);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("route");
	TCase *tc = tcase_create("routing");
	tcase_add_test(tc, every_route_matches_its_methods);
	tcase_add_test(tc, unknown_paths_are_404);
	tcase_add_test(tc, too_long_parameter_is_404);
	tcase_add_test(tc, wrong_method_is_405_with_allow);
	tcase_add_test(tc, methods_parse);
	suite_add_tcase(s, tc);
	tc = tcase_create("query");
	tcase_add_test(tc, wait_parses_seconds_in_range);
	tcase_add_test(tc, limit_parses_with_default_and_bounds);
	tcase_add_test(tc, state_filter_parses_lists);
	suite_add_tcase(s, tc);
	tc = tcase_create("body");
	tcase_add_test(tc, submission_parses_every_field);
	tcase_add_test(tc, bad_submissions_name_the_problem);
	tcase_add_test(tc, oversized_idempotency_key_is_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return tu_main(suite()); }
