/* Fixture: a plugin (ABI 1.3) that uses each host service 1.3 added, so a
 * real crund shows them through the API (tests/plugins/services-e2e.sh):
 *   lines       crund_job_log_line on "stdout" and "stderr"; the result
 *               names the attempt, the idempotency key and the operator's
 *               exec-allow / http-allow lists (crund_config_list)
 *   checked     a job spec check: a value starting with "bad" is refused
 *               with the plugin's own code
 *   retry_after the first attempt asks for a backoff of `seconds`
 *               (crund_job_retry_after) and fails; the next succeeds
 *   curl        crund_curl_perform with a NULL handle: the code it gives */
#include <stdio.h>
#include <string.h>

#include <crund/plugin.h>

static json_t *list_json(const char *const *v)
{
	json_t *a = json_array();
	for (; a && *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

static const crund_host_api *host_api;

static int init(const crund_host_api *host, void **ret_state)
{
	host_api = host;
	*ret_state = NULL;
	return 0;
}

static int run_lines(crund_job *job)
{
	json_int_t n = json_integer_value(json_object_get(crund_job_args(job), "count"));
	char line[64];
	for (json_int_t i = 0; i < n; i++) {
		int len = snprintf(line, sizeof(line), "line %lld\n", (long long)i);
		crund_job_log_line(job, i % 2 ? "stderr" : "stdout", line, (size_t)len);
	}
	const char *key = crund_job_idempotency_key(job);
	return crund_job_set_result(
		job,
		json_pack("{s:I, s:o, s:o, s:o}", "attempt", (json_int_t)crund_job_attempt(job),
			  "idempotency_key", key ? json_string(key) : json_null(), "exec_allow",
			  list_json(crund_config_list(host_api, "exec-allow")), "http_allow",
			  list_json(crund_config_list(host_api, "http-allow"))));
}

static int check_value(const crund_host_api *host, void *state, const json_t *args,
		       crund_check_error *err)
{
	(void)host;
	(void)state;
	const char *v = json_string_value(json_object_get(args, "value"));
	if (v && !strncmp(v, "bad", 3)) {
		snprintf(err->code, sizeof(err->code), "value_refused");
		snprintf(err->message, sizeof(err->message), "value '%.64s' is refused", v);
		return -EPERM;
	}
	return 0;
}

static int run_checked(crund_job *job)
{
	return crund_job_set_result(job,
				    json_incref(json_object_get(crund_job_args(job), "value")));
}

static int run_retry_after(crund_job *job)
{
	if (crund_job_attempt(job) == 1) {
		double s = json_number_value(json_object_get(crund_job_args(job), "seconds"));
		int rc = crund_job_retry_after(job, s);
		if (rc < 0)
			return crund_job_fail(job, NULL, "retry_after: %d", rc);
		return crund_job_fail(job, NULL, "first attempt fails (retry after %g s)", s);
	}
	return crund_job_set_result(job, json_integer(crund_job_attempt(job)));
}

static int run_curl(crund_job *job)
{
	int code = -1;
	int rc = crund_curl_perform(job, NULL, &code);
	return crund_job_set_result(job, json_pack("{s:i}", "rc", rc));
}

static const crund_arg_spec lines_args[] = {
	{.name = "count",
	 .type = CRUND_ARG_INTEGER,
	 .default_json = "4",
	 .has_range = true,
	 .min = 0,
	 .max = 1000,
	 .description = "lines to log"},
};
static const crund_arg_spec checked_args[] = {
	{.name = "value", .type = CRUND_ARG_STRING, .required = true, .description = "a value"},
};
static const crund_arg_spec retry_args[] = {
	{.name = "seconds",
	 .type = CRUND_ARG_NUMBER,
	 .required = true,
	 .has_range = true,
	 .min = 0,
	 .max = 3600,
	 .description = "backoff asked for"},
};

static const crund_job_spec jobs[] = {
	{.name = "lines",
	 .description = "log lines on streams",
	 .run = run_lines,
	 .args = lines_args,
	 .n_args = 1},
	{.name = "checked",
	 .description = "a job with a check",
	 .run = run_checked,
	 .args = checked_args,
	 .n_args = 1,
	 .check = check_value},
	{.name = "retry_after",
	 .description = "asks for a backoff",
	 .run = run_retry_after,
	 .args = retry_args,
	 .n_args = 1,
	 .max_attempts = 2},
	{.name = "curl", .description = "curl_perform with no handle", .run = run_curl},
};

CRUND_PLUGIN_DEFINE(.name = "services", .version = "1.3", .description = "ABI 1.3 host services",
		    .jobs = jobs, .n_jobs = sizeof(jobs) / sizeof(jobs[0]), .init = init);
