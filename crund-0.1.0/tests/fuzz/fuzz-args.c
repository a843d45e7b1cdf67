/*
 * fuzz-args.c — a submission's "args" against a job's declared argument
 * specs: crd_args_validate() and crd_arg_check() (daemon/args.c).
 *
 * The specs are the real ones of the demo plugin (plugins/demo/demo.c is
 * linked in; its descriptor is read, no plugin code runs), plus one job
 * here that declares every type, with and without ranges.
 *
 * Input: "JOB\nJSON".  JOB names a demo job, or anything else for the
 * every-type job; JSON is any JSON text (a non-object must be refused).
 */
#include "config.h"

#include <errno.h>
#include <math.h>

#include "fuzz.h"
#include "plugins/plugins.h"

/* plugins/demo/demo.c, linked in. */
extern const crund_plugin crund_plugin_v1;

static int run_none(crund_job *job)
{
	(void)job;
	return 0;
}

static const crund_arg_spec typed_args[] = {
	{.name = "s", .type = CRUND_ARG_STRING},
	{.name = "i", .type = CRUND_ARG_INTEGER},
	{.name = "ir", .type = CRUND_ARG_INTEGER, .has_range = true, .min = -5, .max = 1e18},
	{.name = "n", .type = CRUND_ARG_NUMBER},
	{.name = "nr", .type = CRUND_ARG_NUMBER, .has_range = true, .min = -0.5, .max = 0.5},
	{.name = "b", .type = CRUND_ARG_BOOLEAN, .default_json = "false"},
	{.name = "a", .type = CRUND_ARG_ANY},
	{.name = "o", .type = CRUND_ARG_OBJECT, .default_json = "{\"k\":[1,2]}"},
	{.name = "l", .type = CRUND_ARG_ARRAY},
	{.name = "req", .type = CRUND_ARG_STRING, .required = true, .default_json = "\"d\""},
};
static const crund_job_spec typed_job = {.name = "typed",
					 .run = run_none,
					 .args = typed_args,
					 .n_args = sizeof(typed_args) / sizeof(typed_args[0])};

static const crund_job_spec *pick_job(const char *name)
{
	for (size_t i = 0; i < crund_plugin_v1.n_jobs; i++)
		if (!strcmp(crund_plugin_v1.jobs[i].name, name))
			return &crund_plugin_v1.jobs[i];
	return &typed_job;
}

static const crund_arg_spec *find_spec(const crund_job_spec *job, const char *name)
{
	for (size_t i = 0; i < job->n_args; i++)
		if (!strcmp(job->args[i].name, name))
			return &job->args[i];
	return NULL;
}

/* A value accepted for spec a has the declared type and range. */
static void check_value(const crund_arg_spec *a, const json_t *v)
{
	switch (a->type) {
	case CRUND_ARG_STRING:
		FUZZ_CHECK(json_is_string(v));
		break;
	case CRUND_ARG_INTEGER:
		FUZZ_CHECK(json_is_integer(v));
		break;
	case CRUND_ARG_NUMBER:
		FUZZ_CHECK(json_is_number(v));
		break;
	case CRUND_ARG_BOOLEAN:
		FUZZ_CHECK(json_is_boolean(v));
		break;
	case CRUND_ARG_OBJECT:
		FUZZ_CHECK(json_is_object(v));
		break;
	case CRUND_ARG_ARRAY:
		FUZZ_CHECK(json_is_array(v));
		break;
	case CRUND_ARG_ANY:
		FUZZ_CHECK(v != NULL);
		break;
	}
	if (a->has_range && json_is_number(v)) {
		double x = json_number_value(v);
		FUZZ_CHECK(x >= a->min && x <= a->max);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t jlen = nl ? (size_t)(nl - data) : 0;
	char *job_name = fuzz_strndup(data, jlen);
	const crund_job_spec *job = pick_job(job_name);
	const char *json = nl ? (const char *)nl + 1 : (const char *)data;
	size_t json_len = size - (size_t)(json - (const char *)data);

	json_t *args = json_loadb(json, json_len, JSON_DECODE_ANY, NULL);
	char err[300];
	json_t *out = NULL;

	memset(err, 0, sizeof(err));
	int rc = crd_args_validate(job, args, &out, err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (args && !json_is_object(args))
		FUZZ_CHECK(rc == -EINVAL);
	if (rc < 0) {
		FUZZ_CHECK(fuzz_err_ok(err, sizeof(err)));
		/* Without args only a required argument lacking a default fails. */
		if (!args) {
			bool needs = false;
			for (size_t i = 0; i < job->n_args; i++)
				needs |= job->args[i].required && !job->args[i].default_json;
			FUZZ_CHECK(needs);
		}
	} else {
		FUZZ_CHECK(json_is_object(out));
		/* Only declared names; every required one present; each value
		 * of its declared type and in range. */
		const char *key;
		json_t *v;
		json_object_foreach(out, key, v)
		{
			const crund_arg_spec *a = find_spec(job, key);
			FUZZ_CHECK(a != NULL);
			check_value(a, v);
		}
		for (size_t i = 0; i < job->n_args; i++)
			if (job->args[i].required || job->args[i].default_json)
				FUZZ_CHECK(json_object_get(out, job->args[i].name));
		/* Validated arguments validate again to themselves: the daemon
		 * may check a stored submission again (idempotent resubmit). */
		json_t *again = NULL;
		FUZZ_CHECK(crd_args_validate(job, out, &again, err, sizeof(err)) == 0);
		FUZZ_CHECK(json_equal(again, out));
		json_decref(again);
		/* And they serialise: the job is rendered and sent. */
		char *dump = json_dumps(out, JSON_COMPACT);
		FUZZ_CHECK(dump != NULL);
		free(dump);
		json_decref(out);
	}

	/* The whole value against every spec of the every-type job. */
	if (args) {
		for (size_t i = 0; i < typed_job.n_args; i++) {
			json_t *one = NULL;
			memset(err, 0, sizeof(err));
			rc = crd_arg_check(&typed_args[i], args, &one, err, sizeof(err));
			FUZZ_CHECK(rc == 0 || rc == -EINVAL);
			if (rc == 0) {
				check_value(&typed_args[i], one);
				json_decref(one);
			} else {
				FUZZ_CHECK(fuzz_err_ok(err, sizeof(err)));
			}
		}
	}
	json_decref(args);
	free(job_name);
	return 0;
}
