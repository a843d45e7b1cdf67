/* Fixture: a valid plugin flagged CRUND_PLUGIN_RUNS_COMMANDS.  Loaded only
 * when the daemon is configured to allow such plugins. */
#include <crund/plugin.h>

static int run(crund_job *job) { return 0; }
static const crund_job_spec jobs[] = {{.name = "shell", .run = run}};

CRUND_PLUGIN_DEFINE(.name = "commands", .version = "1", .jobs = jobs, .n_jobs = 1,
		    .flags = CRUND_PLUGIN_RUNS_COMMANDS);
