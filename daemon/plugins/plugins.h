/*
 * plugins.h — the daemon's plugin registry: find, check, load, init and
 * fini plugins; look jobs up; validate submitted arguments against a job's
 * declared argument specs.  Owned by daemon/plugins/registry.c, elf.c (the
 * pre-check of a file before dlopen), abi.c (a descriptor of any supported
 * ABI minor read into the daemon's layout) and args.c.
 */
#ifndef CRUND_PLUGINS_H
#define CRUND_PLUGINS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "crund/plugin.h"

typedef struct crd_loaded_plugin {
	/* The descriptor in this daemon's layout (crd_plugin_import()'s copy
	 * of the plugin's own, whatever ABI minor it was built against), with
	 * its job and argument tables also copied.  The rest of the daemon
	 * reads only this, so it may index desc->jobs[] and jobs[].args[] as
	 * C arrays; the plugin's own tables are never indexed outside abi.c.
	 * Strings and functions still point into the loaded object. */
	const crund_plugin *desc;
	crund_plugin *desc_copy; /* owns desc (NULL: desc belongs to the caller) */
	uint16_t abi_minor;      /* the ABI minor the plugin was built against */
	char *path;              /* the .so file */
	void *dl;                /* dlopen handle */
	void *state;             /* from init */
	bool initialized;        /* init ran and succeeded */
} crd_loaded_plugin;

/* A plugin file that was refused, and why (also logged). */
typedef struct crd_plugin_refusal {
	char *path;   /* the .so file */
	char *reason; /* one sentence, e.g. "bad magic" */
} crd_plugin_refusal;

typedef struct crd_plugin_registry {
	crd_loaded_plugin *plugins; /* n entries, sorted by name */
	size_t n;
	size_t n_refused;                    /* plugins refused (logged) */
	crd_plugin_refusal *refused;         /* n_refused entries, in refusal order */
	const crund_host_api *host;          /* given to crd_plugins_init (job checks use it) */
	const struct crd_plugins_opts *opts; /* given to crd_plugins_init (fini logs with it) */
} crd_plugin_registry;

/* Limits on what a descriptor may declare (a bigger table is refused as
 * garbage rather than trusted). */
#define CRUND_PLUGIN_MAX_JOBS    256
#define CRUND_PLUGIN_MAX_ARGS    64
#define CRUND_PLUGIN_MAX_NAME    64 /* plugin, job and argument names */
/* Largest descriptor size and job_spec_size / arg_spec_size a plugin may
 * declare: far above any real layout, so a bigger one is garbage. */
#define CRD_PLUGIN_MAX_DESC_SIZE 4096
#define CRD_PLUGIN_MAX_SPEC_SIZE 1024

typedef struct crd_plugins_opts {
	bool allow_insecure_dir; /* accept group/other-writable dir/files */
	bool allow_commands;     /* load CRUND_PLUGIN_RUNS_COMMANDS plugins */
	/* log sink for refusals etc.: level = CRUND_LOG_*, one line, no '\n' */
	void (*log)(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
} crd_plugins_opts;

/* Scan each dir (*.so, sorted), check each descriptor BEFORE running any
 * plugin code (ELF read of the exported symbol: magic, ABI major equal,
 * minor <= ours, size), then dlopen + validate the job table.  A refused
 * plugin is logged with the reason, recorded in reg->refused and skipped;
 * duplicate names: the first wins.  Security: a dir or .so writable by
 * group/others, or owned by neither root nor our euid, is refused unless
 * opts->allow_insecure_dir.  May be called again on the same registry to
 * add more dirs, but only before any job runs (entries move).  Returns 0
 * (even if some were refused), -errno for a dir
 * that cannot be read (-ENOENT, -EACCES, ...) or is insecure (-EPERM),
 * message logged; plugins loaded before the error stay loaded.  opts may
 * be NULL (defaults, log to stderr). */
int crd_plugins_load(crd_plugin_registry *reg, const char *const *dirs, size_t n_dirs,
		     const crd_plugins_opts *opts);

/* The fixed head every descriptor version starts with (the first 16
 * bytes of crund_plugin). */
struct crd_plugin_head {
	uint64_t magic;
	uint16_t abi_major;
	uint16_t abi_minor;
	uint32_t size;
};

/* Check a descriptor head against this daemon's ABI (magic, major, minor,
 * and a size that holds at least the fields of that minor).  Returns 0, or
 * -EPROTO with the reason in why.  Shared by the file check and the
 * in-memory import, so both say the same thing. */
int crd_plugin_check_head(const struct crd_plugin_head *h, char *why, size_t whylen);

/* The smallest crund_plugin a plugin built against ABI minor `minor` (of
 * our major) can have: the end of that minor's last field.  0 for a minor
 * newer than ours. */
size_t crd_plugin_desc_min_size(unsigned minor);

/* Read a descriptor as dlsym() found it, built against any ABI minor up
 * to ours, into this daemon's layout (daemon/plugins/abi.c): checks the
 * head, the element sizes it declares (job_spec_size, arg_spec_size; the
 * 1.0 sizes for a 1.0 descriptor) and the bounds of its tables, then
 * copies the descriptor, its job table and every argument table, stepping
 * through each by the plugin's element size and copying only the fields
 * of its minor into zero-filled structs.  On success *ret_copy is one
 * allocation the caller frees with free(); its tables are ordinary arrays
 * of this daemon's structs (jobs NULL when there are none, args NULL for a
 * job without arguments) and its head says this daemon's ABI and sizes.
 * Names and other rules are checked by crd_plugin_check_descriptor().
 * Returns 0, -EPROTO (head, sizes) or -EINVAL (tables) with the reason in
 * why, or -ENOMEM. */
int crd_plugin_import(const crund_plugin *raw, crund_plugin **ret_copy, char *why, size_t whylen);

/* The ELF pre-check on an image of a whole .so file in memory (no code of
 * it runs): finds the exported CRUND_PLUGIN_SYMBOL (.dynsym, or the
 * dynamic segment when section headers are stripped) and checks the
 * descriptor head it points to in the file.  Returns 0, or -ENOEXEC (not
 * a plugin / malformed) or -EPROTO (bad magic, ABI, size) with the reason
 * in why.  crd_plugins_load() runs it on every file. */
int crd_plugin_check_image(const void *image, size_t size, char *why, size_t whylen);

/* The rules for a descriptor in this daemon's layout (one from
 * crd_plugin_import()): the plugin name, flags against opts
 * (allow_commands), and the whole job table (names, run functions,
 * argument specs, defaults).  Returns 0, or a negative code with the
 * reason in why.  opts may be NULL. */
int crd_plugin_check_descriptor(const crund_plugin *desc, const crd_plugins_opts *opts, char *why,
				size_t whylen);

/* AWAITS (call from a task on the runner): run every plugin's init as a
 * coroutine, in name order; a plugin whose init fails is logged, recorded
 * in reg->refused and removed (dlclosed).  An init that runs long is
 * logged every INIT_WARN_EVERY seconds (no bound: cancel the calling task
 * to give up).  Returns 0, or -ECANCELED when the calling task was
 * cancelled during an init: that plugin is removed and the ones after it
 * stay uninitialised (fini skips them). */
int crd_plugins_init(crd_plugin_registry *reg, const crund_host_api *host,
		     const crd_plugins_opts *opts);

/* AWAITS: fini of every initialised plugin (reverse order), each within
 * FINI_BOUND seconds (then its awaits are cancelled, and that is logged;
 * outside a task, unbounded).  The objects
 * stay mapped (job specs and names stay readable) until
 * crd_plugins_free(), so call it only when no job of theirs runs. */
void crd_plugins_fini(crd_plugin_registry *reg, const crund_host_api *host);

/* Release everything (dlclose, free).  Safe on a zeroed registry. */
void crd_plugins_free(crd_plugin_registry *reg);

const crd_loaded_plugin *crd_plugins_find(const crd_plugin_registry *reg, const char *name);
const crund_job_spec *crd_plugins_find_job(const crd_loaded_plugin *p, const char *job);

/* JSON views for the API: one plugin {name, version, description, jobs:
 * [{name, description, args: [{name,type,required,default,description,
 * min,max}]}]} and the list. New references (NULL on ENOMEM).  "default"
 * is the parsed JSON value and present only when the arg has one;
 * "min"/"max" only when it declares a range; "type" is
 * crd_arg_type_name(). */
json_t *crd_plugin_to_json(const crd_loaded_plugin *p);
json_t *crd_plugins_to_json(const crd_plugin_registry *reg);

/* "string", "integer", "number", "boolean", "any", "object", "array";
 * "unknown" for anything else.  Static string. */
const char *crd_arg_type_name(crund_arg_type type);

/* Check one value against one argument spec (type and range).  On
 * success *ret_value is a new reference to the value to use: the same
 * value, or for an integer argument given as an integral real (3.0) the
 * JSON integer 3.  On error -EINVAL and a sentence naming the argument in
 * err.  Used for submissions and for the declared defaults at load. */
int crd_arg_check(const crund_arg_spec *spec, const json_t *value, json_t **ret_value, char *err,
		  size_t errlen);

/* Validate `args` (an object, or NULL = {}) against the job's spec: unknown
 * keys, missing required, wrong types, out-of-range numbers are errors.
 * On success *ret_args is a new object with defaults filled in.  On error
 * returns -EINVAL and writes a sentence naming the argument into err
 * (e.g. "argument 'seconds' must be a number, got string"). */
int crd_args_validate(const crund_job_spec *spec, const json_t *args, json_t **ret_args, char *err,
		      size_t errlen);

#endif
