/* Fixture: a plugin built against ABI 1.0, the layout before the
 * descriptor carried its element sizes.  The three structs are declared
 * here exactly as crund/plugin.h 1.0 had them (git show
 * cce337a:include/crund/plugin.h), so this stays a 1.0 plugin whatever
 * the header becomes.  Several jobs with several arguments each: a daemon
 * that indexes the tables with its own (grown) struct sizes reads every
 * entry after the first at the wrong offset. */
#include <crund/plugin.h> /* crund_job, crund_arg_type, the host wrappers */

#include "abi-fixture.h"

struct old_arg_spec {
	const char *name;
	crund_arg_type type;
	bool required;
	const char *default_json;
	const char *description;
	bool has_range;
	double min, max;
};

struct old_job_spec {
	const char *name;
	const char *description;
	crund_job_fn run;
	const struct old_arg_spec *args;
	size_t n_args;
};

struct old_plugin {
	uint64_t magic;
	uint16_t abi_major;
	uint16_t abi_minor;
	uint32_t size;
	const char *name;
	const char *version;
	const char *description;
	const struct old_job_spec *jobs;
	size_t n_jobs;
	int (*init)(const crund_host_api *host, void **ret_state);
	void (*fini)(const crund_host_api *host, void *state);
	uint32_t flags;
};

/* Exported so the test can check each job's run pointer is this one. */
#define RUN(fn, job)                                                 \
	__attribute__((visibility("default"))) int fn(crund_job *j); \
	int fn(crund_job *j) { return crund_job_set_result(j, json_string(job)); }
RUN(abi_run_alpha, "alpha")
RUN(abi_run_beta, "beta")
RUN(abi_run_gamma, "gamma")
RUN(abi_run_delta, "delta")

#define ARG(n, t, r, d, desc, hr, mn, mx) \
	{.name = n,                       \
	 .type = t,                       \
	 .required = r,                   \
	 .default_json = d,               \
	 .description = desc,             \
	 .has_range = hr,                 \
	 .min = mn,                       \
	 .max = mx},
static const struct old_arg_spec alpha_args[] = {ABI_ALPHA_ARGS(ARG)};
static const struct old_arg_spec beta_args[] = {ABI_BETA_ARGS(ARG)};
static const struct old_arg_spec gamma_args[] = {ABI_GAMMA_ARGS(ARG)};

#define N(a) (sizeof(a) / sizeof((a)[0]))
static const struct old_job_spec jobs[] = {
	{"alpha", "the first job", abi_run_alpha, alpha_args, N(alpha_args)},
	{"beta", "the second job", abi_run_beta, beta_args, N(beta_args)},
	{"gamma", "the third job", abi_run_gamma, gamma_args, N(gamma_args)},
	{"delta", "a job without arguments", abi_run_delta, NULL, 0},
};
_Static_assert(sizeof jobs / sizeof jobs[0] == ABI_N_JOBS, "abi-fixture.h lists 4 jobs");

__attribute__((visibility("default"))) extern const struct old_plugin crund_plugin_v1;
const struct old_plugin crund_plugin_v1 = {
	.magic = CRUND_PLUGIN_MAGIC,
	.abi_major = 1,
	.abi_minor = 0,
	.size = sizeof(struct old_plugin),
	.name = "abi_1_0",
	.version = "1.0-layout",
	.description = "a plugin of ABI 1.0",
	.jobs = jobs,
	.n_jobs = N(jobs),
};
