/* Fixture: a valid head but a job without a run function.  Passes the
 * ELF pre-check, refused after dlopen with "job 'broken' has no run
 * function". */
#include <crund/plugin.h>

static int run(crund_job *job) { return 0; }
static const crund_job_spec jobs[] = {
	{.name = "fine", .run = run},
	{.name = "broken", .run = NULL},
};

CRUND_PLUGIN_DEFINE(.name = "bad_run", .version = "1", .jobs = jobs, .n_jobs = 2);
