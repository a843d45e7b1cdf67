/* Fixture: init and fini that await (cr_sleep) — they run as coroutines
 * on the runner — and log after the await, so the test sees they resumed.
 * $CRUND_TEST_INIT_SLEEP (seconds) makes init sleep longer, so a test can
 * cancel the task running it; $CRUND_TEST_FINI_SLEEP does so for fini. */
#include <errno.h>
#include <stdlib.h>

#include <crund/plugin.h>

static int run(crund_job *job) { return 0; }
static const crund_job_spec jobs[] = {{.name = "x", .run = run}};

static int init(const crund_host_api *host, void **ret_state)
{
	int *state = malloc(sizeof *state);
	if (!state)
		return -ENOMEM;
	const char *env = getenv("CRUND_TEST_INIT_SLEEP");
	int rc = cr_sleep(env ? strtod(env, NULL) : 0.001);
	if (rc < 0) {
		free(state);
		return rc;
	}
	*state = 42;
	crund_host_log(host, CRUND_LOG_INFO, "awaits: init slept");
	*ret_state = state;
	return 0;
}

static void fini(const crund_host_api *host, void *state)
{
	const char *env = getenv("CRUND_TEST_FINI_SLEEP");
	int rc = cr_sleep(env ? strtod(env, NULL) : 0.001);
	crund_host_log(host, CRUND_LOG_INFO, "awaits: fini slept rc=%d state=%d", rc,
		       *(int *)state);
	free(state);
}

CRUND_PLUGIN_DEFINE(.name = "awaits", .version = "1", .jobs = jobs, .n_jobs = 1, .init = init,
		    .fini = fini);
