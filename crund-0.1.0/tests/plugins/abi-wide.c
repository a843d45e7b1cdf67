/* Fixture: a plugin whose structs are larger than the daemon's: fields
 * appended to crund_job_spec and crund_arg_spec, and bytes appended to the
 * descriptor, as a later minor's header would have them.  It declares ABI
 * 1.1 (the first with element sizes) and job_spec_size / arg_spec_size of
 * its own larger structs; the appended fields hold non-zero values.  The
 * daemon must step through the tables by the declared sizes and ignore
 * what it does not know.  Same jobs and arguments as abi-1-0.c. */
#include <crund/plugin.h> /* crund_job, crund_arg_type, the host wrappers */

#include "abi-fixture.h"

struct wide_arg_spec {
	const char *name;
	crund_arg_type type;
	bool required;
	const char *default_json;
	const char *description;
	bool has_range;
	double min, max;
	/* appended */
	const char *example_json;
	uint64_t future_flags;
};

struct wide_job_spec {
	const char *name;
	const char *description;
	crund_job_fn run;
	const struct wide_arg_spec *args;
	size_t n_args;
	/* appended */
	uint32_t max_attempts;
	double backoff_seconds;
	const char *queue;
};

struct wide_plugin {
	uint64_t magic;
	uint16_t abi_major;
	uint16_t abi_minor;
	uint32_t size;
	const char *name;
	const char *version;
	const char *description;
	const struct wide_job_spec *jobs;
	size_t n_jobs;
	int (*init)(const crund_host_api *host, void **ret_state);
	void (*fini)(const crund_host_api *host, void *state);
	uint32_t flags;
	uint32_t job_spec_size; /* ABI 1.1 */
	uint32_t arg_spec_size;
	/* appended */
	uint64_t future[4];
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
	 .max = mx,                       \
	 .example_json = "\"not read\"",  \
	 .future_flags = ~UINT64_C(0)},
static const struct wide_arg_spec alpha_args[] = {ABI_ALPHA_ARGS(ARG)};
static const struct wide_arg_spec beta_args[] = {ABI_BETA_ARGS(ARG)};
static const struct wide_arg_spec gamma_args[] = {ABI_GAMMA_ARGS(ARG)};

#define N(a)  (sizeof(a) / sizeof((a)[0]))
#define EXTRA .max_attempts = 7, .backoff_seconds = 2.5, .queue = "not read"
static const struct wide_job_spec jobs[] = {
	{"alpha", "the first job", abi_run_alpha, alpha_args, N(alpha_args), EXTRA},
	{"beta", "the second job", abi_run_beta, beta_args, N(beta_args), EXTRA},
	{"gamma", "the third job", abi_run_gamma, gamma_args, N(gamma_args), EXTRA},
	{"delta", "a job without arguments", abi_run_delta, NULL, 0, EXTRA},
};
_Static_assert(N(jobs) == ABI_N_JOBS, "abi-fixture.h lists 4 jobs");

__attribute__((visibility("default"))) extern const struct wide_plugin crund_plugin_v1;
const struct wide_plugin crund_plugin_v1 = {
	.magic = CRUND_PLUGIN_MAGIC,
	.abi_major = 1,
	.abi_minor = 1,
	.size = sizeof(struct wide_plugin),
	.name = "abi_wide",
	.version = "wide-layout",
	.description = "a plugin with fields the daemon does not know",
	.jobs = jobs,
	.n_jobs = N(jobs),
	.job_spec_size = sizeof(struct wide_job_spec),
	.arg_spec_size = sizeof(struct wide_arg_spec),
	.future = {1, 2, 3, 4},
};
