/* Fixture: an integer argument whose declared default is a string.
 * Refused after dlopen with "bad default: argument 'count' must be an
 * integer, got string". */
#include <crund/plugin.h>

static int run(crund_job *job) { return 0; }
static const crund_arg_spec args[] = {
	{.name = "count", .type = CRUND_ARG_INTEGER, .default_json = "\"ten\""},
};
static const crund_job_spec jobs[] = {{.name = "count", .run = run, .args = args, .n_args = 1}};

CRUND_PLUGIN_DEFINE(.name = "bad_default", .version = "1", .jobs = jobs, .n_jobs = 1);
