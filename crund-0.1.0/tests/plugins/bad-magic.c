/* Fixture: a descriptor whose magic is wrong.  Refused by the ELF
 * pre-check with "bad magic". */
#include <crund/plugin.h>

static int run(crund_job *job) { return 0; }
static const crund_job_spec jobs[] = {{.name = "x", .run = run}};

__attribute__((visibility("default"))) extern const crund_plugin crund_plugin_v1;
const crund_plugin crund_plugin_v1 = {
	.magic = UINT64_C(0x0123456789abcdef),
	.abi_major = CRUND_PLUGIN_ABI_MAJOR,
	.abi_minor = CRUND_PLUGIN_ABI_MINOR,
	.size = sizeof(crund_plugin),
	.name = "bad_magic",
	.jobs = jobs,
	.n_jobs = 1,
};
