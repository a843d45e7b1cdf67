/*
 * hello.c — a complete crund plugin, built out of tree:
 *
 *     cc -shared -fPIC -o hello.so hello.c $(pkg-config --cflags --libs crund-plugin)
 *
 * One job, "greet": waits `delay` seconds without blocking the daemon,
 * then returns {"greeting": "hello, <name>"}.
 */
#include <errno.h>

#include <crund/plugin.h>

static int greet(crund_job *job)
{
	const json_t *args = crund_job_args(job); /* validated, defaults filled */
	const char *name = json_string_value(json_object_get(args, "name"));
	double delay = json_number_value(json_object_get(args, "delay"));

	crund_job_log(job, CRUND_LOG_INFO, "greeting %s in %.1f s", name, delay);
	int rc = cr_sleep(delay); /* an await: other jobs run meanwhile */
	if (rc < 0)
		return rc; /* -ECANCELED: the job was cancelled */

	json_t *result = json_pack("{s:s+}", "greeting", "hello, ", name);
	if (!result)
		return -ENOMEM;
	return crund_job_set_result(job, result);
}

static const crund_arg_spec greet_args[] = {
	{.name = "name", .type = CRUND_ARG_STRING, .required = true, .description = "who to greet"},
	{.name = "delay",
	 .type = CRUND_ARG_NUMBER,
	 .default_json = "0",
	 .description = "seconds to wait first",
	 .has_range = true,
	 .min = 0,
	 .max = 60},
};

static const crund_job_spec hello_jobs[] = {
	{.name = "greet",
	 .description = "say hello after a delay",
	 .run = greet,
	 .args = greet_args,
	 .n_args = 2},
};

CRUND_PLUGIN_DEFINE(.name = "hello", .version = "1.0", .description = "the plugin guide's example",
		    .jobs = hello_jobs, .n_jobs = 1);
