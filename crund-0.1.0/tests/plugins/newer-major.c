/* Fixture: built for ABI 2.0, newer than the daemon's 1.x.  Refused by
 * the ELF pre-check with "ABI 2.0 is newer than this daemon's 1.0". */
#include <crund/plugin.h>

static int run(crund_job *job) { return 0; }
static const crund_job_spec jobs[] = {{.name = "x", .run = run}};

__attribute__((visibility("default"))) extern const crund_plugin crund_plugin_v1;
const crund_plugin crund_plugin_v1 = {
	.magic = CRUND_PLUGIN_MAGIC,
	.abi_major = CRUND_PLUGIN_ABI_MAJOR + 1,
	.abi_minor = 0,
	.size = sizeof(crund_plugin),
	.name = "newer_major",
	.jobs = jobs,
	.n_jobs = 1,
};
