/* Fixture: a minor five above the daemon's (1.6 against 1.1).  Refused by the
 * ELF pre-check with "ABI minor 6 newer than 1". */
#include <crund/plugin.h>

static int run(crund_job *job) { return 0; }
static const crund_job_spec jobs[] = {{.name = "x", .run = run}};

__attribute__((visibility("default"))) extern const crund_plugin crund_plugin_v1;
const crund_plugin crund_plugin_v1 = {
	.magic = CRUND_PLUGIN_MAGIC,
	.abi_major = CRUND_PLUGIN_ABI_MAJOR,
	.abi_minor = CRUND_PLUGIN_ABI_MINOR + 5,
	.size = sizeof(crund_plugin),
	.name = "newer_minor",
	.jobs = jobs,
	.n_jobs = 1,
};
