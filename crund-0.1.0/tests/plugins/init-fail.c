/* Fixture: a valid plugin whose init logs why and returns -EIO.  Loaded,
 * then removed by crd_plugins_init() with "init failed". */
#include <errno.h>

#include <crund/plugin.h>

static int run(crund_job *job) { return 0; }
static const crund_job_spec jobs[] = {{.name = "x", .run = run}};

static int init(const crund_host_api *host, void **ret_state)
{
	crund_host_log(host, CRUND_LOG_ERROR, "init_fail: cannot reach the backend");
	return -EIO;
}

CRUND_PLUGIN_DEFINE(.name = "init_fail", .version = "1", .jobs = jobs, .n_jobs = 1, .init = init);
