/*
 * crund/plugin.h — the plugin ABI of crund.
 *
 * A plugin is a shared object that exports ONE symbol, CRUND_PLUGIN_SYMBOL
 * ("crund_plugin_v1"), a `const crund_plugin` descriptor.  The daemon reads
 * and checks the descriptor (magic, ABI major equal, minor not newer than
 * the daemon's, sizes, job table) before it runs any plugin code.
 *
 * Plugins never link against daemon symbols: everything the daemon offers
 * comes through the `crund_host_api` table reached from each crund_job and
 * from init/fini (the inline wrappers below).  For awaiting, plugins use
 * libcrunner (crunner.h: cr_sleep, cr_spawn, cr_gather, cr_run_in_executor,
 * context variables, ...): job functions run as coroutines on the daemon's
 * single runner.
 *
 * Build out of tree:
 *     cc -shared -fPIC -o myplugin.so myplugin.c $(pkg-config --cflags --libs crund-plugin)
 * and install into $(pkg-config --variable=plugindir crund-plugin).
 *
 * ABI rules (version CRUND_PLUGIN_ABI_MAJOR.CRUND_PLUGIN_ABI_MINOR):
 *
 *  - A daemon loads plugins of its own major and of any minor up to its
 *    own.  A plugin built against a newer minor is refused (it may rely on
 *    fields this daemon would ignore), as is any other major.
 *  - Fields are only ever appended, at the end of crund_plugin,
 *    crund_job_spec, crund_arg_spec or crund_host_api, and every append
 *    bumps the minor.  Nothing is removed, reordered, resized or given a
 *    new meaning; such a change bumps the major.
 *  - Every appended field means "as before" when it is zero/NULL: that is
 *    what the daemon sees for a plugin built against an older minor.
 *  - The job table and each job's argument table are arrays whose element
 *    size grows with the minor, so the descriptor says which size the
 *    plugin was compiled with (job_spec_size, arg_spec_size, since 1.1;
 *    CRUND_PLUGIN_DEFINE fills them).  The daemon steps through the tables
 *    by those sizes, never by its own, and copies each element into a
 *    zero-filled struct of its own layout; a 1.0 descriptor (without the
 *    two fields) is read with the 1.0 sizes.  Which fields exist is told
 *    by abi_minor, not by the sizes: an appended field may sit in what was
 *    the previous version's tail padding.
 *  - crund_host_api goes the other way: the daemon fills it, and a plugin
 *    reads a field added in minor N only when host->abi_minor >= N.
 *
 * Appending a field therefore takes: the field at the end of its struct
 * with its meaning when zero, CRUND_PLUGIN_ABI_MINOR + 1, a line below, and
 * (in crund's tree) the new minor's entry in layouts[] of
 * daemon/plugins/abi.c, whose _Static_asserts fail the build without it.
 *
 * History: 1.0 first version; 1.1 appended job_spec_size and
 * arg_spec_size to crund_plugin; 1.2 appended max_attempts and flags to
 * crund_job_spec (retries and re-running after an interruption); 1.3
 * appended check to crund_job_spec (refusing a submission with an error
 * of the plugin's own) and to crund_host_api job_log_line,
 * job_idempotency_key, job_attempt, job_retry_after, config_list and
 * curl_perform (the services the built-in exec and http plugins use).
 */
#ifndef CRUND_PLUGIN_H
#define CRUND_PLUGIN_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <crunner.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CRUND_PLUGIN_MAGIC     UINT64_C(0x31474c50444e5243) /* "CRNDPLG1" */
#define CRUND_PLUGIN_ABI_MAJOR 1
#define CRUND_PLUGIN_ABI_MINOR 3
#define CRUND_PLUGIN_SYMBOL    "crund_plugin_v1"

/* Argument types a job can declare; submissions are validated against
 * them before a job is created (400 naming the argument). */
typedef enum crund_arg_type {
	CRUND_ARG_STRING = 1,
	CRUND_ARG_INTEGER = 2, /* JSON integer */
	CRUND_ARG_NUMBER = 3,  /* JSON integer or real */
	CRUND_ARG_BOOLEAN = 4,
	CRUND_ARG_ANY = 5, /* any JSON value */
	CRUND_ARG_OBJECT = 6,
	CRUND_ARG_ARRAY = 7,
} crund_arg_type;

typedef struct crund_arg_spec {
	const char *name;
	crund_arg_type type;
	bool required;
	const char *default_json; /* JSON text of the default, or NULL */
	const char *description;
	bool has_range; /* numbers: min <= value <= max */
	double min, max;
} crund_arg_spec;

typedef struct crund_job crund_job; /* opaque, owned by the daemon */
typedef struct crund_host_api crund_host_api;

/* Why a job's check refused a submission (crund_job_spec.check, ABI 1.3):
 * the submission answers 400 with {"error":{"code","message"}}. */
typedef struct crund_check_error {
	char code[48];     /* [a-z_]+, e.g. "command_not_allowed"; empty: "invalid_args" */
	char message[256]; /* a sentence naming what was refused */
} crund_check_error;

/* A job body: a coroutine on the daemon's runner.  Return 0 on success
 * (the result is what crund_job_set_result() stored, JSON null if none),
 * -ECANCELED when cancelled (pass the code of the await on), any other
 * negative code for failure (crund_job_fail() sets the message; without
 * it the message is cr_strerror(code)). */
typedef int (*crund_job_fn)(crund_job *job);

typedef struct crund_job_spec {
	const char *name; /* [a-z0-9_]+ */
	const char *description;
	crund_job_fn run;
	const crund_arg_spec *args; /* n_args entries */
	size_t n_args;
	/* --- ABI 1.2 --- */
	/* Attempts a submission gets when it names no max_attempts (a failed
	 * attempt is retried with backoff while attempts are left); 0: 1,
	 * at most CRUND_JOB_MAX_ATTEMPTS. */
	uint32_t max_attempts;
	uint32_t flags; /* CRUND_JOB_* */
	/* --- ABI 1.3 --- */
	/* Optional check of a submission's arguments beyond the spec (already
	 * validated, defaults filled), run on the loop before the job is
	 * created, so it must not await.  Return 0 to accept; to refuse, fill
	 * err and return a negative code: the submission answers 400 with
	 * err's code and message.  plugin_state is what init stored. */
	int (*check)(const crund_host_api *host, void *plugin_state, const json_t *args,
		     crund_check_error *err);
} crund_job_spec;

/* Job flags (crund_job_spec.flags, ABI 1.2) */
/* Running the job again after crund died (or stopped) while it ran is
 * safe: its on_interrupt policy defaults to "retry" (re-queued at the
 * next start; after a crash only with attempts left, the interrupted
 * attempt counting against max_attempts) instead of "fail" (ended
 * failed, code "interrupted").  A submission may override it with
 * "on_interrupt". */
#define CRUND_JOB_RERUN_SAFE 0x1u

/* The most attempts a job may have (crund_job_spec.max_attempts, and a
 * submission's "max_attempts"). */
#define CRUND_JOB_MAX_ATTEMPTS 1000

/* Descriptor flags */
#define CRUND_PLUGIN_RUNS_COMMANDS \
	0x1u /* runs arbitrary commands: loaded
	      * only when configured to allow */

typedef struct crund_plugin {
	uint64_t magic;     /* CRUND_PLUGIN_MAGIC */
	uint16_t abi_major; /* CRUND_PLUGIN_ABI_MAJOR */
	uint16_t abi_minor; /* CRUND_PLUGIN_ABI_MINOR */
	uint32_t size;      /* sizeof(crund_plugin) */
	const char *name;   /* [a-z0-9_-]+, unique among plugins */
	const char *version;
	const char *description;
	const crund_job_spec *jobs;
	size_t n_jobs;
	/* Optional coroutines run on the runner: init after loading (a
	 * negative return refuses the plugin, logged with the message given
	 * to host->log or cr_strerror), fini at shutdown.  *ret_state is
	 * handed to every job as crund_job_plugin_state(). */
	int (*init)(const crund_host_api *host, void **ret_state);
	void (*fini)(const crund_host_api *host, void *state);
	uint32_t flags; /* CRUND_PLUGIN_* */
	/* --- ABI 1.1 --- */
	/* sizeof(crund_job_spec) and sizeof(crund_arg_spec) as this plugin
	 * was compiled: the element sizes of `jobs` and of every job's
	 * `args`.  The daemon indexes the tables by them. */
	uint32_t job_spec_size;
	uint32_t arg_spec_size;
} crund_plugin;

/* Declare the descriptor:  CRUND_PLUGIN_DEFINE(.name = "demo", ...);
 * It fills the head (magic, ABI version, sizes); you give the rest. */
#define CRUND_PLUGIN_DEFINE(...)                                                          \
	__attribute__((visibility("default"))) extern const crund_plugin crund_plugin_v1; \
	const crund_plugin crund_plugin_v1 = {.magic = CRUND_PLUGIN_MAGIC,                \
					      .abi_major = CRUND_PLUGIN_ABI_MAJOR,        \
					      .abi_minor = CRUND_PLUGIN_ABI_MINOR,        \
					      .size = sizeof(crund_plugin),               \
					      .job_spec_size = sizeof(crund_job_spec),    \
					      .arg_spec_size = sizeof(crund_arg_spec),    \
					      __VA_ARGS__}

enum { CRUND_LOG_ERROR = 3, CRUND_LOG_WARNING = 4, CRUND_LOG_INFO = 6, CRUND_LOG_DEBUG = 7 };

/* The daemon's services.  Reached through the inline wrappers. */
struct crund_host_api {
	uint32_t size; /* sizeof(crund_host_api) of the daemon */
	uint16_t abi_major, abi_minor;
	/* job services */
	const json_t *(*job_args)(crund_job *job);
	const char *(*job_id)(crund_job *job);
	void *(*job_plugin_state)(crund_job *job);
	int (*job_set_result)(crund_job *job, json_t *result);
	int (*job_fail)(crund_job *job, const char *code, const char *fmt, va_list ap);
	int (*job_progress)(crund_job *job, double fraction, const char *message);
	void (*job_log)(crund_job *job, int level, const char *fmt, va_list ap);
	/* plugin-level log (init/fini and background work) */
	void (*log)(const crund_host_api *host, int level, const char *fmt, va_list ap);
	const char *daemon_version;
	/* --- ABI 1.3 (read only when abi_minor >= 3: the wrappers check) --- */
	/* A line from a named stream ("stdout", "stderr", ...): stored in the
	 * job's log as "TIME STREAM line" and sent on its events as a log event
	 * with "stream".  len bytes; a trailing newline is dropped, other
	 * control characters become spaces. */
	void (*job_log_line)(crund_job *job, const char *stream, const char *line, size_t len);
	/* The submission's idempotency key, or NULL. */
	const char *(*job_idempotency_key)(crund_job *job);
	/* The attempt this run is: 1 for the first. */
	unsigned (*job_attempt)(crund_job *job);
	/* If this attempt fails and attempts are left, start the next one no
	 * sooner than `seconds` after this one ends (e.g. an HTTP Retry-After;
	 * capped by --retry-max-delay).  0, or -EINVAL. */
	int (*job_retry_after)(crund_job *job, double seconds);
	/* The operator's values of a repeatable plugin setting ("exec-allow",
	 * "http-allow"): NULL-terminated, borrowed for the daemon's life, never
	 * NULL (empty when the setting is unset or unknown). */
	const char *const *(*config_list)(const crund_host_api *host, const char *key);
	/* AWAITS (in a job's coroutine): run a libcurl easy handle (a CURL *)
	 * on the daemon's loop, through one multi handle the daemon shares
	 * among all jobs.  0 with the transfer's CURLcode in *ret_code;
	 * -ECANCELED when the job was cancelled while it ran (the transfer is
	 * stopped and the handle can be cleaned up); -ENOMEM; -ENOSYS when the
	 * daemon was built without libcurl. */
	int (*curl_perform)(crund_job *job, void *easy, int *ret_code);
};

struct crund_job { /* the public head of the daemon's job */
	const crund_host_api *api;
};

/* The job's validated arguments, defaults filled in (borrowed; valid for
 * the job's life). */
static inline const json_t *crund_job_args(crund_job *job) { return job->api->job_args(job); }
static inline const char *crund_job_id(crund_job *job) { return job->api->job_id(job); }
static inline void *crund_job_plugin_state(crund_job *job)
{
	return job->api->job_plugin_state(job);
}

/* Set the result (steals the reference; any JSON).  -E2BIG when larger
 * than the daemon's result limit (the job then fails with result_too_large). */
static inline int crund_job_set_result(crund_job *job, json_t *result)
{
	return job->api->job_set_result(job, result);
}

/* Record the failure message (code NULL: "plugin_error").  Returns a
 * negative code to return from the job: `return crund_job_fail(job, NULL, "bad %s", x);` */
static inline int __attribute__((format(printf, 3, 4)))
crund_job_fail(crund_job *job, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = job->api->job_fail(job, code, fmt, ap);
	va_end(ap);
	return rc;
}

/* Report progress: fraction in [0,1], message may be NULL. */
static inline int crund_job_progress(crund_job *job, double fraction, const char *message)
{
	return job->api->job_progress(job, fraction, message);
}

/* Append a line to the job's log (bounded; also sent on the event stream). */
static inline void __attribute__((format(printf, 3, 4)))
crund_job_log(crund_job *job, int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	job->api->job_log(job, level, fmt, ap);
	va_end(ap);
}

/* ABI 1.3 services.  On an older daemon: the line goes to crund_job_log,
 * no key, attempt 1, -ENOSYS, an empty list, -ENOSYS. */
static inline void crund_job_log_line(crund_job *job, const char *stream, const char *line,
				      size_t len)
{
	if (job->api->abi_minor >= 3)
		job->api->job_log_line(job, stream, line, len);
	else
		crund_job_log(job, CRUND_LOG_INFO, "%s: %.*s", stream, (int)len, line);
}
static inline const char *crund_job_idempotency_key(crund_job *job)
{
	return job->api->abi_minor >= 3 ? job->api->job_idempotency_key(job) : NULL;
}
static inline unsigned crund_job_attempt(crund_job *job)
{
	return job->api->abi_minor >= 3 ? job->api->job_attempt(job) : 1;
}
static inline int crund_job_retry_after(crund_job *job, double seconds)
{
	return job->api->abi_minor >= 3 ? job->api->job_retry_after(job, seconds) : -ENOSYS;
}
static inline const char *const *crund_config_list(const crund_host_api *host, const char *key)
{
	static const char *const none[] = {NULL};
	return host->abi_minor >= 3 ? host->config_list(host, key) : none;
}
static inline int crund_curl_perform(crund_job *job, void *easy, int *ret_code)
{
	return job->api->abi_minor >= 3 ? job->api->curl_perform(job, easy, ret_code) : -ENOSYS;
}

static inline void __attribute__((format(printf, 3, 4)))
crund_host_log(const crund_host_api *host, int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	host->log(host, level, fmt, ap);
	va_end(ap);
}

#ifdef __cplusplus
}
#endif
#endif /* CRUND_PLUGIN_H */
