/* Fixture: a shared object without the crund_plugin_v1 symbol (it exports
 * a near miss).  Refused with "not a crund plugin (no crund_plugin_v1
 * symbol)". */
#include <crund/plugin.h>

static int run(crund_job *job) { return 0; }
static const crund_job_spec jobs[] = {{.name = "x", .run = run}};

__attribute__((visibility("default"))) extern const crund_plugin crund_plugin_v0;
const crund_plugin crund_plugin_v0 = {
	.magic = CRUND_PLUGIN_MAGIC,
	.abi_major = CRUND_PLUGIN_ABI_MAJOR,
	.abi_minor = CRUND_PLUGIN_ABI_MINOR,
	.size = sizeof(crund_plugin),
	.name = "no_symbol",
	.jobs = jobs,
	.n_jobs = 1,
};
