/*
 * plugins/registry.c — the plugin registry: find plugin files, check them, load
 * them, run their init/fini, and describe them as JSON.
 *
 * The order of the checks is the point of this file.  dlopen() runs the
 * object's constructors (and those of everything it links), so a plugin
 * that is merely *built for another ABI* would already be executing code
 * by the time dlsym() could tell us so.  We therefore read the descriptor
 * out of the ELF file ourselves first (elf.c: dynamic symbol table, then
 * the PT_LOAD segment holding the symbol) and check its fixed head (magic,
 * ABI major/minor, size) without running anything.  Only a file that
 * passes is dlopen()ed; the in-memory descriptor is then read into the
 * daemon's own layout (abi.c: the same head, the element sizes, the
 * tables copied entry by entry) and that copy is checked for everything
 * behind pointers, which only exists after relocation: names, job table,
 * argument specs, defaults.  From then on the daemon reads only the copy.
 *
 * Security: the plugin directory and each .so must be writable only by
 * their owner, and that owner must be root or us; otherwise anyone who can
 * write there runs code inside the daemon.  A file could still be swapped
 * between the check and dlopen() by someone allowed to write the
 * directory — which those same checks limit to root and ourselves.
 */
#include "config.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <float.h>
#include <fcntl.h>
#include <inttypes.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/utf8.h"
#include "plugins/plugins.h"

#define PLUGIN_FILE_MAX (512u << 20) /* larger .so files are not plugins */

/* ------------------------------------------------------------ logging */

static void plog(const crd_plugins_opts *opts, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void plog(const crd_plugins_opts *opts, int level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (opts && opts->log)
		opts->log(level, "%s", buf);
	else
		fprintf(stderr, "crund: %s\n", buf);
}

/* Record a refusal (logged by the caller).  Allocation failure loses
 * only the record, never the log line. */
static void add_refusal(crd_plugin_registry *reg, const char *path, const char *reason)
{
	crd_plugin_refusal *r = realloc(reg->refused, (reg->n_refused + 1) * sizeof *r);
	if (!r)
		return;
	reg->refused = r;
	char *p = strdup(path), *why = strdup(reason);
	if (!p || !why) {
		free(p);
		free(why);
		return;
	}
	r[reg->n_refused].path = p;
	r[reg->n_refused].reason = why;
	reg->n_refused++;
}

static void refuse_at(crd_plugin_registry *reg, const crd_plugins_opts *opts, int level,
		      const char *path, const char *reason)
{
	plog(opts, level, "plugin %s refused: %s", path, reason);
	add_refusal(reg, path, reason);
}

static void refuse(crd_plugin_registry *reg, const crd_plugins_opts *opts, const char *path,
		   const char *reason)
{
	refuse_at(reg, opts, CRUND_LOG_ERROR, path, reason);
}

/* Security of a file or dir we are about to trust. */
static int check_owner_mode(const struct stat *st, const char *what, char *why, size_t whylen)
{
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(why, whylen, "%s is writable by %s (mode %04o); fix with chmod go-w", what,
			 (st->st_mode & S_IWOTH) ? "others" : "its group",
			 (unsigned)(st->st_mode & 07777));
		return -EPERM;
	}
	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		snprintf(why, whylen, "%s is owned by uid %u, neither root nor the daemon's uid %u",
			 what, (unsigned)st->st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	return 0;
}

/* Open, stat and pre-check one file.  Returns 0 when it may be loaded. */
static int precheck_file(const char *path, const crd_plugins_opts *opts, char *why, size_t whylen)
{
	/* O_NONBLOCK: a FIFO named *.so must not stop the start (its open
	 * would wait for a writer); fstat then refuses it */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		int err = errno;
		snprintf(why, whylen, "cannot open: %s", strerror(err));
		return -err;
	}
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(why, whylen, "cannot stat: %s", strerror(-rc));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "not a regular file");
		rc = -EINVAL;
		goto out;
	}
	if (!(opts && opts->allow_insecure_dir)) {
		rc = check_owner_mode(&st, "the file", why, whylen);
		if (rc < 0)
			goto out;
	}
	if ((uint64_t)st.st_size > PLUGIN_FILE_MAX) {
		snprintf(why, whylen, "%jd bytes: larger than the %u MiB a plugin may be",
			 (intmax_t)st.st_size, PLUGIN_FILE_MAX >> 20);
		rc = -EFBIG;
		goto out;
	}
	if (st.st_size < (off_t)sizeof(ElfW(Ehdr))) {
		snprintf(why, whylen, "not an ELF file (size %jd)", (intmax_t)st.st_size);
		rc = -ENOEXEC;
		goto out;
	}
	void *img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (img == MAP_FAILED) {
		rc = -errno;
		snprintf(why, whylen, "cannot map: %s", strerror(-rc));
		goto out;
	}
	rc = crd_plugin_check_image(img, (size_t)st.st_size, why, whylen);
	munmap(img, (size_t)st.st_size);
out:
	close(fd);
	return rc;
}

/* ------------------------------------------------ descriptor checks */

static bool valid_name(const char *s, bool allow_dash)
{
	if (!s || !*s || strlen(s) > CRUND_PLUGIN_MAX_NAME)
		return false;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
		      (allow_dash && c == '-')))
			return false;
	}
	return true;
}

/* A descriptor's text is shown as JSON (GET /v1/plugins): UTF-8 only. */
static int check_text(const char *s, const char *what, const char *name, char *why, size_t whylen)
{
	if (!s || crd_utf8_valid(s))
		return 0;
	snprintf(why, whylen, "%s of '%s' is not UTF-8 text", what, name);
	return -EINVAL;
}

static int check_arg_spec(const crund_job_spec *job, const crund_arg_spec *a, char *why,
			  size_t whylen)
{
	if (!valid_name(a->name, false)) {
		snprintf(
			why, whylen,
			"job '%s': argument name '%.80s' is not [a-z0-9_]+ (at most %d characters)",
			job->name, a->name ? a->name : "(null)", CRUND_PLUGIN_MAX_NAME);
		return -EINVAL;
	}
	if (check_text(a->description, "the description", a->name, why, whylen) < 0)
		return -EINVAL;
	if (a->type < CRUND_ARG_STRING || a->type > CRUND_ARG_ARRAY) {
		snprintf(why, whylen, "job '%s': argument '%s' has unknown type %d", job->name,
			 a->name, (int)a->type);
		return -EINVAL;
	}
	if (a->has_range) {
		if (a->type != CRUND_ARG_INTEGER && a->type != CRUND_ARG_NUMBER) {
			snprintf(why, whylen, "job '%s': argument '%s' has a range but is a %s",
				 job->name, a->name, crd_arg_type_name(a->type));
			return -EINVAL;
		}
		if (!(a->min <= a->max)) { /* also catches NaN */
			snprintf(why, whylen, "job '%s': argument '%s' has min %g > max %g",
				 job->name, a->name, a->min, a->max);
			return -EINVAL;
		}
		/* Bounds are shown as JSON (no infinities) and, for integers,
		 * as JSON integers. */
		double lim = a->type == CRUND_ARG_INTEGER ? 9007199254740992.0 /* 2^53 */ : DBL_MAX;
		if (!(a->min >= -lim && a->max <= lim)) {
			snprintf(why, whylen, "job '%s': argument '%s' has a range beyond %g",
				 job->name, a->name, lim);
			return -EINVAL;
		}
	}
	if (a->required && a->default_json) {
		snprintf(why, whylen, "job '%s': argument '%s' is required and has a default",
			 job->name, a->name);
		return -EINVAL;
	}
	if (a->default_json) {
		json_error_t jerr;
		json_t *v = json_loads(a->default_json, JSON_DECODE_ANY, &jerr);
		if (!v) {
			snprintf(why, whylen, "job '%s': default of argument '%s' is not JSON: %s",
				 job->name, a->name, jerr.text);
			return -EINVAL;
		}
		char err[256];
		json_t *norm = NULL;
		int rc = crd_arg_check(a, v, &norm, err, sizeof err);
		json_decref(v);
		json_decref(norm);
		if (rc < 0) {
			snprintf(why, whylen, "job '%s': bad default: %s", job->name, err);
			return -EINVAL;
		}
	}
	return 0;
}

int crd_plugin_check_descriptor(const crund_plugin *d, const crd_plugins_opts *opts, char *why,
				size_t whylen)
{
	int rc;
	if (!valid_name(d->name, true)) {
		snprintf(why, whylen, "plugin name '%s' is not [a-z0-9_-]+ (at most %d characters)",
			 d->name ? d->name : "(null)", CRUND_PLUGIN_MAX_NAME);
		return -EINVAL;
	}
	if ((d->flags & CRUND_PLUGIN_RUNS_COMMANDS) && !(opts && opts->allow_commands)) {
		snprintf(why, whylen,
			 "plugin '%s' runs arbitrary commands, and such plugins are not "
			 "allowed (start crund with --allow-command-plugins to load it)",
			 d->name);
		return -EPERM;
	}
	if (d->flags & ~CRUND_PLUGIN_RUNS_COMMANDS) {
		snprintf(why, whylen, "plugin '%s': unknown flags 0x%" PRIx32, d->name,
			 d->flags & ~CRUND_PLUGIN_RUNS_COMMANDS);
		return -EINVAL;
	}
	if ((rc = check_text(d->version, "the version", d->name, why, whylen)) < 0 ||
	    (rc = check_text(d->description, "the description", d->name, why, whylen)) < 0)
		return rc;
	if (d->n_jobs > CRUND_PLUGIN_MAX_JOBS || (d->n_jobs && !d->jobs)) { /* import checked */
		snprintf(why, whylen, "plugin '%s': bad job table (%zu jobs, at most %d, table %s)",
			 d->name, d->n_jobs, CRUND_PLUGIN_MAX_JOBS, d->jobs ? "present" : "NULL");
		return -EINVAL;
	}
	for (size_t i = 0; i < d->n_jobs; i++) {
		const crund_job_spec *j = &d->jobs[i];
		if (!valid_name(j->name, false)) {
			snprintf(why, whylen,
				 "job name '%.80s' is not [a-z0-9_]+ (at most %d characters)",
				 j->name ? j->name : "(null)", CRUND_PLUGIN_MAX_NAME);
			return -EINVAL;
		}
		for (size_t k = 0; k < i; k++)
			if (strcmp(d->jobs[k].name, j->name) == 0) {
				snprintf(why, whylen, "job '%s' is declared twice", j->name);
				return -EINVAL;
			}
		if (!j->run) {
			snprintf(why, whylen, "job '%s' has no run function", j->name);
			return -EINVAL;
		}
		if ((rc = check_text(j->description, "the description", j->name, why, whylen)) < 0)
			return rc;
		if (j->max_attempts > CRUND_JOB_MAX_ATTEMPTS) {
			snprintf(why, whylen, "job '%s': max_attempts %" PRIu32 " is over %d",
				 j->name, j->max_attempts, CRUND_JOB_MAX_ATTEMPTS);
			return -EINVAL;
		}
		if (j->flags & ~CRUND_JOB_RERUN_SAFE) {
			snprintf(why, whylen, "job '%s': unknown flags 0x%" PRIx32, j->name,
				 j->flags & ~CRUND_JOB_RERUN_SAFE);
			return -EINVAL;
		}
		if (j->n_args > CRUND_PLUGIN_MAX_ARGS || (j->n_args && !j->args)) {
			snprintf(why, whylen,
				 "job '%s': bad argument table (%zu args, at most %d, table %s)",
				 j->name, j->n_args, CRUND_PLUGIN_MAX_ARGS,
				 j->args ? "present" : "NULL");
			return -EINVAL;
		}
		for (size_t k = 0; k < j->n_args; k++) {
			rc = check_arg_spec(j, &j->args[k], why, whylen);
			if (rc < 0)
				return rc;
			for (size_t m = 0; m < k; m++)
				if (strcmp(j->args[m].name, j->args[k].name) == 0) {
					snprintf(why, whylen,
						 "job '%s': argument '%s' is declared twice",
						 j->name, j->args[k].name);
					return -EINVAL;
				}
		}
	}
	return 0;
}

/* ------------------------------------------------------------ loading */

static void loaded_release(crd_loaded_plugin *p)
{
	free(p->desc_copy); /* before dlclose: nothing reads it after */
	if (p->dl)
		dlclose(p->dl);
	free(p->path);
	memset(p, 0, sizeof *p);
}

const crd_loaded_plugin *crd_plugins_find(const crd_plugin_registry *reg, const char *name)
{
	if (!reg || !name)
		return NULL;
	for (size_t i = 0; i < reg->n; i++)
		if (strcmp(reg->plugins[i].desc->name, name) == 0)
			return &reg->plugins[i];
	return NULL;
}

const crund_job_spec *crd_plugins_find_job(const crd_loaded_plugin *p, const char *job)
{
	if (!p || !job)
		return NULL;
	for (size_t i = 0; i < p->desc->n_jobs; i++)
		if (strcmp(p->desc->jobs[i].name, job) == 0)
			return &p->desc->jobs[i];
	return NULL;
}

/* Check, load and register one file.  Refusals are logged and recorded;
 * returns -ENOMEM only (the caller's scan goes on otherwise). */
static int load_one(crd_plugin_registry *reg, const char *path, const crd_plugins_opts *opts)
{
	char why[512];
	if (precheck_file(path, opts, why, sizeof why) < 0) {
		refuse(reg, opts, path, why);
		return 0;
	}

	/* Past this point the plugin's constructors run.  RTLD_LOCAL keeps
	 * its symbols (every plugin has a crund_plugin_v1) from colliding. */
	dlerror();
	void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		const char *e = dlerror();
		snprintf(why, sizeof why, "dlopen failed: %s", e ? e : "unknown error");
		refuse(reg, opts, path, why);
		return 0;
	}
	/* From here on only the daemon-layout copy is read (abi.c). */
	const crund_plugin *raw = dlsym(dl, CRUND_PLUGIN_SYMBOL);
	crund_plugin *d = NULL;
	int rc;
	if (!raw) {
		snprintf(why, sizeof why, "not a crund plugin (no %s symbol)", CRUND_PLUGIN_SYMBOL);
		rc = -ENOEXEC;
	} else {
		rc = crd_plugin_import(raw, &d, why, sizeof why);
		if (rc == -ENOMEM) {
			dlclose(dl);
			plog(opts, CRUND_LOG_ERROR, "plugin %s: out of memory", path);
			return -ENOMEM;
		}
	}
	if (rc == 0)
		rc = crd_plugin_check_descriptor(d, opts, why, sizeof why);
	if (rc == 0) {
		const crd_loaded_plugin *other = crd_plugins_find(reg, d->name);
		if (other) {
			snprintf(why, sizeof why,
				 "duplicate plugin name '%s' (already loaded from %s)", d->name,
				 other->path);
			rc = -EEXIST;
		}
	}
	if (rc < 0) {
		dlclose(dl);
		/* A plugin that runs commands, not allowed here, is the operator's
		 * choice (the bundled exec plugin is installed next to the others):
		 * said once at info, not as an error on every start. */
		bool by_choice = rc == -EPERM && d && (d->flags & CRUND_PLUGIN_RUNS_COMMANDS) &&
				 !(opts && opts->allow_commands);
		free(d);
		refuse_at(reg, opts, by_choice ? CRUND_LOG_INFO : CRUND_LOG_ERROR, path, why);
		return 0;
	}

	char *p = strdup(path);
	crd_loaded_plugin *arr = p ? realloc(reg->plugins, (reg->n + 1) * sizeof *arr) : NULL;
	if (!arr) {
		free(p);
		free(d);
		dlclose(dl);
		plog(opts, CRUND_LOG_ERROR, "plugin %s: out of memory", path);
		return -ENOMEM;
	}
	reg->plugins = arr;
	arr[reg->n++] = (crd_loaded_plugin){
		.desc = d, .desc_copy = d, .abi_minor = raw->abi_minor, .path = p, .dl = dl};
	plog(opts, CRUND_LOG_INFO, "plugin %s %s loaded from %s (%zu job%s, ABI %u.%u)", d->name,
	     d->version ? d->version : "(no version)", path, d->n_jobs, d->n_jobs == 1 ? "" : "s",
	     (unsigned)raw->abi_major, (unsigned)raw->abi_minor);
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_plugins(const void *a, const void *b)
{
	const crd_loaded_plugin *x = a, *y = b;
	return strcmp(x->desc->name, y->desc->name);
}

static bool has_so_suffix(const char *name)
{
	size_t n = strlen(name);
	return n > 3 && strcmp(name + n - 3, ".so") == 0 && name[0] != '.';
}

static int load_dir(crd_plugin_registry *reg, const char *dir, const crd_plugins_opts *opts)
{
	char why[512];
	struct stat st;
	if (stat(dir, &st) < 0) {
		int err = errno;
		plog(opts, CRUND_LOG_ERROR, "plugin directory %s: %s", dir, strerror(err));
		return -err;
	}
	if (!S_ISDIR(st.st_mode)) {
		plog(opts, CRUND_LOG_ERROR, "plugin directory %s: not a directory", dir);
		return -ENOTDIR;
	}
	if (!(opts && opts->allow_insecure_dir) &&
	    check_owner_mode(&st, "the directory", why, sizeof why) < 0) {
		plog(opts, CRUND_LOG_ERROR, "plugin directory %s refused: %s", dir, why);
		return -EPERM;
	}

	DIR *d = opendir(dir);
	if (!d) {
		int err = errno;
		plog(opts, CRUND_LOG_ERROR, "plugin directory %s: %s", dir, strerror(err));
		return -err;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!has_so_suffix(de->d_name))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **nn = realloc(names, ncap * sizeof *nn);
			if (!nn) {
				rc = -ENOMEM;
				break;
			}
			names = nn;
			cap = ncap;
		}
		if (!(names[n] = strdup(de->d_name))) {
			rc = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (rc == 0) {
		/* Sorted, so "the first wins" among duplicates does not depend
		 * on readdir's order. */
		if (n)
			qsort(names, n, sizeof *names, cmp_names);
		for (size_t i = 0; i < n && rc == 0; i++) {
			size_t len = strlen(dir) + 1 + strlen(names[i]) + 1;
			char *path = malloc(len);
			if (!path) {
				rc = -ENOMEM;
				break;
			}
			snprintf(path, len, "%s/%s", dir, names[i]);
			rc = load_one(reg, path, opts);
			free(path);
		}
	} else {
		plog(opts, CRUND_LOG_ERROR, "plugin directory %s: out of memory", dir);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

int crd_plugins_load(crd_plugin_registry *reg, const char *const *dirs, size_t n_dirs,
		     const crd_plugins_opts *opts)
{
	if (!reg || (n_dirs && !dirs))
		return -EINVAL;
	int rc = 0;
	for (size_t i = 0; i < n_dirs && rc == 0; i++)
		rc = load_dir(reg, dirs[i], opts);
	if (reg->n > 1)
		qsort(reg->plugins, reg->n, sizeof *reg->plugins, cmp_plugins);
	return rc;
}

/* --------------------------------------------------------- init / fini */

#define INIT_WARN_EVERY 10.0 /* s between the lines about an init still running */
#define FINI_BOUND      10.0 /* s for a plugin's fini; then it is cancelled */

/* A plugin's init that takes long says so (which plugin holds the start). */
struct slow_init {
	const crd_plugins_opts *opts;
	const char *name;
	cr_loop *loop;
	double waited;
	cr_handle *h;
};

static void slow_init_cb(void *arg)
{
	struct slow_init *w = arg;
	w->h = cr_handle_unref(w->h);
	w->waited += INIT_WARN_EVERY;
	plog(w->opts, CRUND_LOG_WARNING,
	     "plugin %s: init still running after %g s (crund serves once every init is "
	     "done; SIGTERM gives up the start)",
	     w->name, w->waited);
	if (cr_call_later(w->loop, INIT_WARN_EVERY, slow_init_cb, w, &w->h) < 0)
		w->h = NULL;
}

static void remove_at(crd_plugin_registry *reg, size_t i)
{
	loaded_release(&reg->plugins[i]);
	memmove(&reg->plugins[i], &reg->plugins[i + 1], (reg->n - i - 1) * sizeof *reg->plugins);
	reg->n--;
}

int crd_plugins_init(crd_plugin_registry *reg, const crund_host_api *host,
		     const crd_plugins_opts *opts)
{
	reg->host = host;
	reg->opts = opts;
	for (size_t i = 0; i < reg->n;) {
		crd_loaded_plugin *p = &reg->plugins[i];
		if (p->initialized) {
			i++;
			continue;
		}
		if (!p->desc->init) {
			p->initialized = true;
			i++;
			continue;
		}
		void *state = NULL;
		struct slow_init w = {
			.opts = opts, .name = p->desc->name, .loop = cr_loop_current()};
		if (w.loop && cr_call_later(w.loop, INIT_WARN_EVERY, slow_init_cb, &w, &w.h) < 0)
			w.h = NULL;
		int rc = p->desc->init(host, &state);
		if (w.h) {
			cr_handle_cancel(w.h);
			cr_handle_unref(w.h);
		}
		if (rc >= 0) {
			p->state = state;
			p->initialized = true;
			i++;
			continue;
		}
		cr_task *self = cr_current_task();
		bool we_were_cancelled = rc == -ECANCELED && self && cr_task_cancelling(self) > 0;
		char why[256];
		snprintf(why, sizeof why, "init failed: %s%s", cr_strerror(rc),
			 we_were_cancelled ? " (the daemon is shutting down)" : "");
		refuse(reg, opts, p->path, why);
		remove_at(reg, i);
		if (we_were_cancelled)
			return -ECANCELED;
	}
	return 0;
}

void crd_plugins_fini(crd_plugin_registry *reg, const crund_host_api *host)
{
	for (size_t i = reg->n; i-- > 0;) {
		crd_loaded_plugin *p = &reg->plugins[i];
		if (!p->initialized)
			continue;
		/* fini may await; even if our task is being cancelled each
		 * plugin still gets its call, so its state is released. */
		if (p->desc->fini) {
			cr_timeout_scope sc;
			bool bounded = cr_timeout_enter(&sc, FINI_BOUND) == 0;
			p->desc->fini(host, p->state);
			bool expired = bounded && cr_timeout_expired(&sc);
			if (bounded)
				cr_timeout_exit(&sc, 0);
			if (expired)
				plog(reg->opts, CRUND_LOG_WARNING,
				     "plugin %s: fini did not end within %g s: cancelled",
				     p->desc->name, FINI_BOUND);
		}
		p->state = NULL;
		p->initialized = false;
	}
}

void crd_plugins_free(crd_plugin_registry *reg)
{
	if (!reg)
		return;
	for (size_t i = reg->n; i-- > 0;)
		loaded_release(&reg->plugins[i]);
	free(reg->plugins);
	for (size_t i = 0; i < reg->n_refused; i++) {
		free(reg->refused[i].path);
		free(reg->refused[i].reason);
	}
	free(reg->refused);
	memset(reg, 0, sizeof *reg);
}

/* ------------------------------------------------------------- JSON */

/* json_object_set_new that turns a NULL value into a failure. */
static int set_new(json_t *o, const char *key, json_t *v)
{
	return v ? json_object_set_new(o, key, v) : -1;
}

static json_t *str_or_empty(const char *s) { return json_string(s ? s : ""); }

static json_t *arg_to_json(const crund_arg_spec *a)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	int bad = set_new(o, "name", json_string(a->name)) |
		  set_new(o, "type", json_string(crd_arg_type_name(a->type))) |
		  set_new(o, "required", json_boolean(a->required)) |
		  set_new(o, "description", str_or_empty(a->description));
	if (a->default_json) {
		/* as a job receives it: an integer's "3.0" is 3 */
		json_t *v = json_loads(a->default_json, JSON_DECODE_ANY, NULL), *norm = NULL;
		char e[160];
		if (v && crd_arg_check(a, v, &norm, e, sizeof e) == 0 && norm) {
			json_decref(v);
			v = norm;
		}
		bad |= set_new(o, "default", v);
	}
	if (a->has_range) {
		if (a->type == CRUND_ARG_INTEGER)
			bad |= set_new(o, "min", json_integer((json_int_t)a->min)) |
			       set_new(o, "max", json_integer((json_int_t)a->max));
		else
			bad |= set_new(o, "min", json_real(a->min)) |
			       set_new(o, "max", json_real(a->max));
	}
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *job_to_json(const crund_job_spec *j)
{
	json_t *o = json_object(), *args = json_array();
	if (!o || !args)
		goto fail;
	for (size_t i = 0; i < j->n_args; i++)
		if (json_array_append_new(args, arg_to_json(&j->args[i])) < 0)
			goto fail;
	if (set_new(o, "name", json_string(j->name)) |
	    set_new(o, "description", str_or_empty(j->description)) |
	    set_new(o, "max_attempts", json_integer(j->max_attempts ? j->max_attempts : 1)) |
	    set_new(o, "on_interrupt",
		    json_string(j->flags & CRUND_JOB_RERUN_SAFE ? "retry" : "fail")))
		goto fail;
	if (json_object_set_new(o, "args", args) < 0) {
		args = NULL;
		goto fail;
	}
	return o;
fail:
	json_decref(args);
	json_decref(o);
	return NULL;
}

json_t *crd_plugin_to_json(const crd_loaded_plugin *p)
{
	const crund_plugin *d = p->desc;
	json_t *o = json_object(), *jobs = json_array();
	if (!o || !jobs)
		goto fail;
	for (size_t i = 0; i < d->n_jobs; i++)
		if (json_array_append_new(jobs, job_to_json(&d->jobs[i])) < 0)
			goto fail;
	if (set_new(o, "name", json_string(d->name)) |
	    set_new(o, "version", str_or_empty(d->version)) |
	    set_new(o, "description", str_or_empty(d->description)))
		goto fail;
	if (json_object_set_new(o, "jobs", jobs) < 0) {
		jobs = NULL;
		goto fail;
	}
	return o;
fail:
	json_decref(jobs);
	json_decref(o);
	return NULL;
}

json_t *crd_plugins_to_json(const crd_plugin_registry *reg)
{
	json_t *a = json_array();
	if (!a)
		return NULL;
	for (size_t i = 0; i < reg->n; i++)
		if (json_array_append_new(a, crd_plugin_to_json(&reg->plugins[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}
