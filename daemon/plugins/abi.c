/*
 * plugins/abi.c — read a plugin's descriptor, built against any ABI minor
 * this daemon supports, into the daemon's own layout.
 *
 * The job table and each job's argument table are C arrays in the
 * plugin, laid out with the struct sizes of the header the plugin was
 * compiled with.  Appending a field to crund_job_spec or crund_arg_spec
 * (an ABI minor bump) changes that size, so indexing a plugin's table with
 * the daemon's sizeof would read every entry after the first at the wrong
 * offset.  Here each table is stepped through by the plugin's own element
 * size (job_spec_size and arg_spec_size, since 1.1; the frozen 1.0 sizes
 * for a 1.0 descriptor) and each element is copied into a zero-filled
 * struct of the daemon's layout: fields the plugin was built without read
 * as zero/NULL, bytes the daemon does not know are ignored.
 *
 * Which fields a plugin has is decided by its abi_minor, never by a size
 * alone: an appended field may sit in the tail padding of the previous
 * version (1.1's job_spec_size does, in a 1.0 crund_plugin), where a 1.0
 * plugin has bytes that nobody promised to be zero.  So each minor's
 * layout is written down below as "where its fields end", and at most
 * that much of an element is copied.
 *
 * The copy is the only descriptor the rest of the daemon sees
 * (crd_loaded_plugin.desc): it can index jobs[] and args[] as ordinary C
 * arrays and never touches the plugin's tables.
 *
 * Appending a field (say a retry policy to crund_job_spec) therefore
 * takes: the field at the end of the struct in plugin.h, a documented
 * meaning for zero, CRUND_PLUGIN_ABI_MINOR + 1, and one more line in
 * layouts[] below (the _Static_asserts say when it is missing).
 */
#include "config.h"

#include <errno.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugins/plugins.h"

#define END_OF(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/* ------------------------------------------------- the frozen 1.0 layout */

/* The structs exactly as ABI 1.0 declared them.  Never change these: they
 * describe plugins already built. */
struct arg_spec_1_0 {
	const char *name;
	crund_arg_type type;
	bool required;
	const char *default_json;
	const char *description;
	bool has_range;
	double min, max;
};

struct job_spec_1_0 {
	const char *name;
	const char *description;
	crund_job_fn run;
	const struct arg_spec_1_0 *args;
	size_t n_args;
};

struct plugin_1_0 {
	uint64_t magic;
	uint16_t abi_major;
	uint16_t abi_minor;
	uint32_t size;
	const char *name;
	const char *version;
	const char *description;
	const struct job_spec_1_0 *jobs;
	size_t n_jobs;
	int (*init)(const crund_host_api *host, void **ret_state);
	void (*fini)(const crund_host_api *host, void *state);
	uint32_t flags;
};

/* Today's structs start with the 1.0 fields, at the same offsets: only
 * appends happened since. */
#define SAME_FIELD(new, old, f)                         \
	(offsetof(new, f) == offsetof(struct old, f) && \
	 sizeof(((new *)0)->f) == sizeof(((struct old *)0)->f))
_Static_assert(SAME_FIELD(crund_arg_spec, arg_spec_1_0, name) &&
		       SAME_FIELD(crund_arg_spec, arg_spec_1_0, type) &&
		       SAME_FIELD(crund_arg_spec, arg_spec_1_0, required) &&
		       SAME_FIELD(crund_arg_spec, arg_spec_1_0, default_json) &&
		       SAME_FIELD(crund_arg_spec, arg_spec_1_0, description) &&
		       SAME_FIELD(crund_arg_spec, arg_spec_1_0, has_range) &&
		       SAME_FIELD(crund_arg_spec, arg_spec_1_0, min) &&
		       SAME_FIELD(crund_arg_spec, arg_spec_1_0, max),
	       "crund_arg_spec must begin with the 1.0 layout");
_Static_assert(SAME_FIELD(crund_job_spec, job_spec_1_0, name) &&
		       SAME_FIELD(crund_job_spec, job_spec_1_0, description) &&
		       SAME_FIELD(crund_job_spec, job_spec_1_0, run) &&
		       SAME_FIELD(crund_job_spec, job_spec_1_0, args) &&
		       SAME_FIELD(crund_job_spec, job_spec_1_0, n_args),
	       "crund_job_spec must begin with the 1.0 layout");
_Static_assert(SAME_FIELD(crund_plugin, plugin_1_0, magic) &&
		       SAME_FIELD(crund_plugin, plugin_1_0, abi_major) &&
		       SAME_FIELD(crund_plugin, plugin_1_0, abi_minor) &&
		       SAME_FIELD(crund_plugin, plugin_1_0, size) &&
		       SAME_FIELD(crund_plugin, plugin_1_0, name) &&
		       SAME_FIELD(crund_plugin, plugin_1_0, version) &&
		       SAME_FIELD(crund_plugin, plugin_1_0, description) &&
		       SAME_FIELD(crund_plugin, plugin_1_0, jobs) &&
		       SAME_FIELD(crund_plugin, plugin_1_0, n_jobs) &&
		       SAME_FIELD(crund_plugin, plugin_1_0, init) &&
		       SAME_FIELD(crund_plugin, plugin_1_0, fini) &&
		       SAME_FIELD(crund_plugin, plugin_1_0, flags),
	       "crund_plugin must begin with the 1.0 layout");

/* ---------------------------------------------------- layout per minor */

/* Where each minor's fields end, in bytes from the start of the struct.
 * An element of a plugin built against minor m is read up to
 * min(its element size, layouts[m].x_end); the rest of the daemon's copy
 * stays zero.  One entry per minor, index = minor. */
static const struct abi_layout {
	size_t desc_end, job_end, arg_end;
} layouts[] = {
	[0] = {END_OF(struct plugin_1_0, flags), END_OF(struct job_spec_1_0, n_args),
	       END_OF(struct arg_spec_1_0, max)},
	[1] = {END_OF(crund_plugin, arg_spec_size), END_OF(struct job_spec_1_0, n_args),
	       END_OF(struct arg_spec_1_0, max)},
	[2] = {END_OF(crund_plugin, arg_spec_size), END_OF(crund_job_spec, flags),
	       END_OF(struct arg_spec_1_0, max)},
	[3] = {END_OF(crund_plugin, arg_spec_size), END_OF(crund_job_spec, check),
	       END_OF(struct arg_spec_1_0, max)},
};
_Static_assert(sizeof layouts / sizeof layouts[0] == CRUND_PLUGIN_ABI_MINOR + 1,
	       "bumping CRUND_PLUGIN_ABI_MINOR needs that minor's entry in layouts[]");
/* The newest entry describes this daemon's own structs.  An append that
 * grows one of them fails here until NEWEST_*_END and layouts[] follow (an
 * append that fits in the old tail padding does not grow it: the minor
 * bump it needs is what the assert above catches). */
#define NEWEST_DESC_END END_OF(crund_plugin, arg_spec_size)
#define NEWEST_JOB_END  END_OF(crund_job_spec, check)
#define NEWEST_ARG_END  END_OF(crund_arg_spec, max)
_Static_assert(sizeof(crund_plugin) - NEWEST_DESC_END < alignof(crund_plugin) &&
		       sizeof(crund_job_spec) - NEWEST_JOB_END < alignof(crund_job_spec) &&
		       sizeof(crund_arg_spec) - NEWEST_ARG_END < alignof(crund_arg_spec),
	       "a field was appended: update NEWEST_*_END and add the minor to layouts[]");

size_t crd_plugin_desc_min_size(unsigned minor)
{
	return minor <= CRUND_PLUGIN_ABI_MINOR ? layouts[minor].desc_end : 0;
}

/* ------------------------------------------------------------- import */

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* An element size a plugin declares: at least its minor's fields, a whole
 * number of the struct's alignment, and not absurd. */
static int check_elem_size(const char *field, uint32_t size, size_t need, size_t align,
			   unsigned minor, char *why, size_t whylen)
{
	if (size < need) {
		snprintf(why, whylen,
			 "%s %u is smaller than ABI %d.%u's %zu bytes (build the plugin with "
			 "CRUND_PLUGIN_DEFINE, which sets it)",
			 field, size, CRUND_PLUGIN_ABI_MAJOR, minor, need);
		return -EPROTO;
	}
	if (size > CRD_PLUGIN_MAX_SPEC_SIZE) {
		snprintf(why, whylen, "%s %u is larger than the %d bytes a table entry may have",
			 field, size, CRD_PLUGIN_MAX_SPEC_SIZE);
		return -EPROTO;
	}
	if (size % align) {
		snprintf(why, whylen, "%s %u is not a multiple of %zu (not an array element size)",
			 field, size, align);
		return -EPROTO;
	}
	return 0;
}

/* Element i of a plugin table: a zero-filled daemon struct with the first
 * `len` bytes of the plugin's element copied in. */
static void read_elem(void *dst, size_t dst_size, const void *table, size_t elem_size, size_t i,
		      size_t len)
{
	memset(dst, 0, dst_size);
	memcpy(dst, (const unsigned char *)table + i * elem_size, len);
}

static size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

int crd_plugin_import(const crund_plugin *raw, crund_plugin **ret_copy, char *why, size_t whylen)
{
	/* The head is the same in every version. */
	struct crd_plugin_head h;
	memcpy(&h, raw, sizeof h);
	int rc = crd_plugin_check_head(&h, why, whylen);
	if (rc < 0)
		return rc;
	unsigned minor = h.abi_minor; /* <= ours: checked with the head */
	const struct abi_layout *lay = &layouts[minor];

	crund_plugin d;
	memset(&d, 0, sizeof d);
	memcpy(&d, raw, min_size(h.size, lay->desc_end));

	size_t job_size = sizeof(struct job_spec_1_0), arg_size = sizeof(struct arg_spec_1_0);
	if (minor >= 1) {
		rc = check_elem_size("job_spec_size", d.job_spec_size, lay->job_end,
				     alignof(struct job_spec_1_0), minor, why, whylen);
		if (rc == 0)
			rc = check_elem_size("arg_spec_size", d.arg_spec_size, lay->arg_end,
					     alignof(struct arg_spec_1_0), minor, why, whylen);
		if (rc < 0)
			return rc;
		job_size = d.job_spec_size;
		arg_size = d.arg_spec_size;
	}
	size_t job_len = min_size(job_size, lay->job_end);
	size_t arg_len = min_size(arg_size, lay->arg_end);

	const char *pname = d.name ? d.name : "(null)";
	if (d.n_jobs > CRUND_PLUGIN_MAX_JOBS || (d.n_jobs && !d.jobs)) {
		snprintf(why, whylen, "plugin '%s': bad job table (%zu jobs, at most %d, table %s)",
			 pname, d.n_jobs, CRUND_PLUGIN_MAX_JOBS, d.jobs ? "present" : "NULL");
		return -EINVAL;
	}

	/* One block: the descriptor, then the jobs, then every job's args.
	 * The jobs are read first (into the block's job slots, each read
	 * once) to learn how many args there are; the block then grows to
	 * hold those. */
	size_t jobs_at = align_up(sizeof(crund_plugin), alignof(crund_job_spec));
	size_t args_at = align_up(jobs_at + d.n_jobs * sizeof(crund_job_spec),
				  alignof(crund_arg_spec));
	unsigned char *block = calloc(1, args_at);
	if (!block)
		goto nomem;
	crund_job_spec *jobs = (crund_job_spec *)(block + jobs_at);
	size_t total_args = 0;
	for (size_t i = 0; i < d.n_jobs; i++) {
		read_elem(&jobs[i], sizeof jobs[i], d.jobs, job_size, i, job_len);
		if (jobs[i].n_args > CRUND_PLUGIN_MAX_ARGS || (jobs[i].n_args && !jobs[i].args)) {
			snprintf(why, whylen,
				 "job '%s': bad argument table (%zu args, at most %d, table %s)",
				 jobs[i].name ? jobs[i].name : "(null)", jobs[i].n_args,
				 CRUND_PLUGIN_MAX_ARGS, jobs[i].args ? "present" : "NULL");
			free(block);
			return -EINVAL;
		}
		total_args += jobs[i].n_args;
	}
	if (total_args) {
		unsigned char *grown = realloc(block,
					       args_at + total_args * sizeof(crund_arg_spec));
		if (!grown) {
			free(block);
			goto nomem;
		}
		block = grown;
		jobs = (crund_job_spec *)(block + jobs_at);
	}
	crund_arg_spec *args = (crund_arg_spec *)(block + args_at);
	for (size_t i = 0; i < d.n_jobs; i++) {
		const void *raw_args = jobs[i].args;
		jobs[i].args = jobs[i].n_args ? args : NULL;
		for (size_t k = 0; k < jobs[i].n_args; k++)
			read_elem(args++, sizeof *args, raw_args, arg_size, k, arg_len);
	}
	crund_plugin *copy = (crund_plugin *)block;
	*copy = d;
	copy->abi_minor = CRUND_PLUGIN_ABI_MINOR; /* it is in this daemon's layout now */
	copy->size = sizeof(crund_plugin);
	copy->job_spec_size = sizeof(crund_job_spec);
	copy->arg_spec_size = sizeof(crund_arg_spec);
	copy->jobs = d.n_jobs ? jobs : NULL;
	*ret_copy = copy;
	return 0;
nomem:
	snprintf(why, whylen, "out of memory");
	return -ENOMEM;
}
