/*
 * test-plugins.c — the plugin loader and the demo plugin.
 *
 * Loader: each broken fixture plugin (tests/plugins/) is copied into a
 * fresh directory and loaded; the refusal reason is checked word for
 * word.  The ELF pre-check is proven by a fixture whose constructor would
 * write a marker file.  Security (insecure dir/file, owner), duplicates,
 * allow_commands, ordering and the JSON views are checked too.
 *
 * Runtime: init/fini run as coroutines on a cr_runner, and the demo
 * plugin's jobs run through a small fake crund_host_api (what the daemon
 * provides for real), in the runner's shared context or an isolated copy.
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugins/abi-fixture.h"
#include "plugins/plugins.h"

/* Messages name this daemon's ABI minor: written with it, so a bump does
 * not rewrite every expected message (sizes still say which minor). */
#define STR_(x)       #x
#define STR(x)        STR_(x)
#define ABI_MINOR_STR STR(CRUND_PLUGIN_ABI_MINOR)
#if CRUND_PLUGIN_ABI_MINOR == 3
#define MINOR_PLUS_1_STR "4"
#define MINOR_PLUS_5_STR "8"
#else
#error "update MINOR_PLUS_*_STR for this ABI minor"
#endif

/* ------------------------------------------------------------ helpers */

static const char *builddir(void)
{
	const char *d = getenv("top_builddir");
	return d && *d ? d : TEST_BUILDDIR;
}

/* Path of a built plugin: "demo", "hello" or a fixture name. */
static void built_path(const char *name, char *buf, size_t len)
{
	if (strcmp(name, "demo") == 0)
		snprintf(buf, len, "%s/plugins/.libs/demo.so", builddir());
	else if (strcmp(name, "hello") == 0)
		snprintf(buf, len, "%s/examples/plugin-hello/.libs/hello.so", builddir());
	else
		snprintf(buf, len, "%s/tests/plugins/.libs/%s.so", builddir(), name);
}

static char tmpdir[256];

static void copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY);
	ck_assert_msg(in >= 0, "cannot open %s (build the fixtures: make check)", from);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert_msg(out >= 0, "cannot create %s", to);
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof buf)) > 0)
		ck_assert_int_eq(write(out, buf, (size_t)n), n);
	ck_assert_int_eq(n, 0);
	close(in);
	close(out);
}

/* A fresh 0700 directory for this test. */
static const char *new_dir(void)
{
	const char *t = getenv("TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s/crund-plugins-XXXXXX", t && *t ? t : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	return tmpdir;
}

/* Copy built plugin `name` into dir as `as` (NULL: name.so). */
static void add_plugin(const char *dir, const char *name, const char *as)
{
	char from[1024], to[1024];
	built_path(name, from, sizeof from);
	snprintf(to, sizeof to, "%s/%s", dir, as ? as : name);
	if (!as)
		strncat(to, ".so", sizeof to - strlen(to) - 1);
	copy_file(from, to);
}

static void write_text(const char *dir, const char *file, const char *text, size_t len)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char path[1024];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (unlink(path) < 0)
			rmdir(path); /* dir.so of the non-ELF test, after a failure */
	}
	closedir(d);
	rmdir(dir);
}

/* Log capture: every line the loader (or a plugin through the host)
 * logs, newline-separated. */
static char logbuf[32768];

__attribute__((format(printf, 1, 0))) static void capture_vlog(const char *fmt, va_list ap)
{
	size_t used = strlen(logbuf);
	if (used + 2 >= sizeof logbuf)
		return;
	vsnprintf(logbuf + used, sizeof logbuf - used - 1, fmt, ap);
	strcat(logbuf, "\n");
}

static void capture_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void capture_log(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	capture_vlog(fmt, ap);
	va_end(ap);
}

static crd_plugins_opts opts = {.log = capture_log};

static void setup(void)
{
	logbuf[0] = '\0';
	opts = (crd_plugins_opts){.log = capture_log};
	tmpdir[0] = '\0';
}

static void teardown(void)
{
	if (tmpdir[0])
		remove_dir(tmpdir);
}

static int load1(crd_plugin_registry *reg, const char *dir)
{
	const char *dirs[] = {dir};
	return crd_plugins_load(reg, dirs, 1, &opts);
}

/* The recorded refusal reason for a file name in the registry. */
static const char *refusal_of(const crd_plugin_registry *reg, const char *file)
{
	for (size_t i = 0; i < reg->n_refused; i++) {
		const char *slash = strrchr(reg->refused[i].path, '/');
		if (strcmp(slash ? slash + 1 : reg->refused[i].path, file) == 0)
			return reg->refused[i].reason;
	}
	return NULL;
}

/* ------------------------------------------------------------ loader */

START_TEST(demo_loads_with_its_jobs)
{
	const char *dir = new_dir();
	add_plugin(dir, "demo", NULL);
	write_text(dir, "README", "not a plugin\n", 13); /* not *.so: ignored */
	crd_plugin_registry reg = {0};
	ck_assert_int_eq(load1(&reg, dir), 0);
	ck_assert_uint_eq(reg.n, 1);
	ck_assert_uint_eq(reg.n_refused, 0);
	const crd_loaded_plugin *p = crd_plugins_find(&reg, "demo");
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_null(crd_plugins_find(&reg, "demo2"));
	ck_assert_str_eq(p->desc->version, "1.0.0");
	ck_assert(!p->initialized);
	static const char *const names[] = {"noop",   "sleep",   "echo",     "fail",   "counter",
					    "fanout", "compute", "progress", "linger", "hog"};
	ck_assert_uint_eq(p->desc->n_jobs, 10);
	for (size_t i = 0; i < 10; i++) {
		const crund_job_spec *j = crd_plugins_find_job(p, names[i]);
		ck_assert_msg(j != NULL, "job %s missing", names[i]);
		ck_assert_ptr_nonnull(j->description);
		for (size_t k = 0; k < j->n_args; k++)
			ck_assert_msg(j->args[k].description && *j->args[k].description,
				      "%s.%s undocumented", names[i], j->args[k].name);
	}
	ck_assert_ptr_null(crd_plugins_find_job(p, "nope"));
	ck_assert_ptr_nonnull(strstr(logbuf, "plugin demo 1.0.0 loaded from"));
	crd_plugins_free(&reg);
	crd_plugins_free(&reg); /* zeroed: safe again */
}
END_TEST

static const struct {
	const char *fixture;
	const char *reason;
} refusals[] = {
	{"bad-magic", "bad magic 0x0123456789abcdef (expected 0x31474c50444e5243)"},
	{"newer-major", "ABI 2.0 is newer than this daemon's 1." ABI_MINOR_STR},
	{"newer-minor", "ABI minor " MINOR_PLUS_5_STR " newer than " ABI_MINOR_STR},
	{"no-symbol", "not a crund plugin (no crund_plugin_v1 symbol)"},
	{"too-small", "descriptor too small (16 bytes, ABI 1." ABI_MINOR_STR " needs"},
	{"bad-run", "job 'broken' has no run function"},
	{"bad-default",
	 "job 'count': bad default: argument 'count' must be an integer, got string"},
	{"commands", "plugin 'commands' runs arbitrary commands"},
};

START_TEST(broken_fixture_is_refused_with_its_reason)
{
	const char *dir = new_dir();
	add_plugin(dir, refusals[_i].fixture, NULL);
	add_plugin(dir, "demo", NULL); /* the others still load */
	crd_plugin_registry reg = {0};
	ck_assert_int_eq(load1(&reg, dir), 0);
	ck_assert_uint_eq(reg.n, 1);
	ck_assert_str_eq(reg.plugins[0].desc->name, "demo");
	ck_assert_uint_eq(reg.n_refused, 1);
	char file[128];
	snprintf(file, sizeof file, "%s.so", refusals[_i].fixture);
	const char *why = refusal_of(&reg, file);
	ck_assert_ptr_nonnull(why);
	ck_assert_msg(strncmp(why, refusals[_i].reason, strlen(refusals[_i].reason)) == 0,
		      "%s: got \"%s\"", file, why);
	/* and the same sentence is in the log, with the path */
	char line[1024];
	snprintf(line, sizeof line, "plugin %s/%s refused: %s", dir, file, why);
	ck_assert_msg(strstr(logbuf, line) != NULL, "log lacks \"%s\":\n%s", line, logbuf);
	crd_plugins_free(&reg);
}
END_TEST

START_TEST(constructor_never_runs_for_a_refused_plugin)
{
	const char *dir = new_dir();
	add_plugin(dir, "ctor", NULL);
	char marker[512];
	snprintf(marker, sizeof marker, "%s/marker", dir);
	setenv("CRUND_TEST_MARKER", marker, 1);

	crd_plugin_registry reg = {0};
	ck_assert_int_eq(load1(&reg, dir), 0);
	ck_assert_uint_eq(reg.n, 0);
	ck_assert_ptr_nonnull(refusal_of(&reg, "ctor.so"));
	ck_assert_str_eq(refusal_of(&reg, "ctor.so"),
			 "ABI 2.0 is newer than this daemon's 1." ABI_MINOR_STR
			 " (upgrade crund or rebuild the "
			 "plugin against this crund)");
	ck_assert_msg(access(marker, F_OK) != 0, "the plugin's constructor ran");
	crd_plugins_free(&reg);

	/* Control: loading it for real does run the constructor, so the
	 * absence above means something. */
	char path[512];
	snprintf(path, sizeof path, "%s/ctor.so", dir);
	void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	ck_assert_ptr_nonnull(dl);
	ck_assert_int_eq(access(marker, F_OK), 0);
	dlclose(dl);
	unsetenv("CRUND_TEST_MARKER");
}
END_TEST

START_TEST(non_elf_and_truncated_files_are_refused)
{
	const char *dir = new_dir();
	write_text(dir, "text.so",
		   "this is not ELF at all, just text....................."
		   "..............................................\n",
		   101);
	/* The first 200 bytes of a real plugin: a valid ELF header whose
	 * tables point past the end. */
	char demo[1024], head[200];
	built_path("demo", demo, sizeof demo);
	int fd = open(demo, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, head, sizeof head), (ssize_t)sizeof head);
	close(fd);
	write_text(dir, "cut.so", head, sizeof head);
	mkdir(strcat(strcpy(demo, dir), "/dir.so"), 0755);
	/* a FIFO: its open must not wait for a writer (the start hung) */
	char fifo[1024];
	ck_assert_int_eq(mkfifo(strcat(strcpy(fifo, dir), "/fifo.so"), 0644), 0);

	crd_plugin_registry reg = {0};
	ck_assert_int_eq(load1(&reg, dir), 0);
	ck_assert_uint_eq(reg.n, 0);
	ck_assert_uint_eq(reg.n_refused, 4);
	ck_assert_str_eq(refusal_of(&reg, "text.so"), "not an ELF file");
	ck_assert_str_eq(refusal_of(&reg, "cut.so"), "malformed ELF program headers");
	ck_assert_str_eq(refusal_of(&reg, "dir.so"), "not a regular file");
	ck_assert_str_eq(refusal_of(&reg, "fifo.so"), "not a regular file");
	crd_plugins_free(&reg);
	rmdir(demo);
	unlink(fifo);
}
END_TEST

/* Read a whole built plugin into memory. */
static unsigned char *slurp(const char *name, size_t *ret_size)
{
	char path[1024];
	built_path(name, path, sizeof path);
	int fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	unsigned char *buf = malloc((size_t)st.st_size);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*ret_size = (size_t)st.st_size;
	return buf;
}

/* Copy a built plugin into dir with its section headers removed, as
 * sstrip does: the dynamic loader never needs them. */
static void add_without_sections(const char *dir, const char *name, const char *as)
{
	size_t size;
	unsigned char *img = slurp(name, &size);
	Elf64_Ehdr eh;
	memcpy(&eh, img, sizeof eh);
	eh.e_shoff = 0;
	eh.e_shnum = 0;
	eh.e_shstrndx = 0;
	memcpy(img, &eh, sizeof eh);
	write_text(dir, as, (const char *)img, size);
	free(img);
}

START_TEST(stripped_section_headers_use_the_dynamic_segment)
{
	const char *dir = new_dir();
	add_without_sections(dir, "demo", "demo.so"); /* DT_GNU_HASH */
	add_without_sections(dir, "ctor", "ctor.so"); /* DT_HASH (sysv) */
	char marker[512];
	snprintf(marker, sizeof marker, "%s/marker", dir);
	setenv("CRUND_TEST_MARKER", marker, 1);
	crd_plugin_registry reg = {0};
	ck_assert_int_eq(load1(&reg, dir), 0);
	ck_assert_uint_eq(reg.n, 1);
	ck_assert_str_eq(reg.plugins[0].desc->name, "demo");
	ck_assert_uint_eq(reg.n_refused, 1);
	ck_assert_ptr_nonnull(strstr(refusal_of(&reg, "ctor.so"), "ABI 2.0 is newer"));
	ck_assert_msg(access(marker, F_OK) != 0, "the plugin's constructor ran");
	unsetenv("CRUND_TEST_MARKER");
	crd_plugins_free(&reg);
}
END_TEST

/* Every truncation of a real plugin, and many random corruptions of its
 * headers and tables, must be answered with a reason, never a crash or an
 * out-of-bounds read (run under ASan: each image sits in a buffer of its
 * exact size). */
START_TEST(elf_check_survives_truncation_and_corruption)
{
	size_t size;
	unsigned char *img = slurp("demo", &size);
	char why[512];
	ck_assert_int_eq(crd_plugin_check_image(img, size, why, sizeof why), 0);
	size_t refused = 0;
	for (size_t len = 0; len < size; len += len < 2048 ? 1 : 61) {
		unsigned char *cut = malloc(len ? len : 1);
		ck_assert_ptr_nonnull(cut);
		memcpy(cut, img, len);
		why[0] = '\0';
		int rc = crd_plugin_check_image(cut, len, why, sizeof why);
		if (rc < 0) {
			ck_assert_msg(why[0] != '\0', "no reason at length %zu", len);
			refused++;
		}
		free(cut);
	}
	ck_assert_uint_gt(refused, 2000);

	Elf64_Ehdr eh;
	memcpy(&eh, img, sizeof eh);
	/* Corrupt bytes in the headers and the section header table, where
	 * the offsets and counts the parser trusts live. */
	unsigned int seed = 12345;
	unsigned char *bad = malloc(size);
	ck_assert_ptr_nonnull(bad);
	for (int iter = 0; iter < 1500; iter++) {
		memcpy(bad, img, size);
		int flips = 1 + (int)(rand_r(&seed) % 6);
		for (int f = 0; f < flips; f++) {
			size_t at;
			switch (rand_r(&seed) % 3) {
			case 0:
				at = rand_r(&seed) % (sizeof eh + eh.e_phnum * sizeof(Elf64_Phdr));
				break;
			case 1:
				at = eh.e_shoff + rand_r(&seed) % (eh.e_shnum * sizeof(Elf64_Shdr));
				break;
			default:
				at = rand_r(&seed) % size;
				break;
			}
			if (at < size)
				bad[at] = (unsigned char)rand_r(&seed);
		}
		why[0] = '\0';
		int rc = crd_plugin_check_image(bad, size, why, sizeof why);
		ck_assert(rc == 0 || why[0] != '\0');
	}
	free(bad);
	free(img);
}
END_TEST

START_TEST(insecure_dir_is_refused_unless_allowed)
{
	const char *dir = new_dir();
	add_plugin(dir, "demo", NULL);
	crd_plugin_registry reg = {0};

	ck_assert_int_eq(chmod(dir, 0707), 0);
	ck_assert_int_eq(load1(&reg, dir), -EPERM);
	ck_assert_uint_eq(reg.n, 0);
	ck_assert_ptr_nonnull(strstr(logbuf, "refused: the directory is writable by others"));

	ck_assert_int_eq(chmod(dir, 0770), 0);
	logbuf[0] = '\0';
	ck_assert_int_eq(load1(&reg, dir), -EPERM);
	ck_assert_ptr_nonnull(strstr(logbuf, "the directory is writable by its group"));

	opts.allow_insecure_dir = true;
	ck_assert_int_eq(load1(&reg, dir), 0);
	ck_assert_uint_eq(reg.n, 1);
	crd_plugins_free(&reg);
	chmod(dir, 0700);
}
END_TEST

START_TEST(insecure_file_is_refused_unless_allowed)
{
	const char *dir = new_dir();
	add_plugin(dir, "demo", NULL);
	char path[512];
	snprintf(path, sizeof path, "%s/demo.so", dir);
	ck_assert_int_eq(chmod(path, 0646), 0);
	crd_plugin_registry reg = {0};
	ck_assert_int_eq(load1(&reg, dir), 0); /* the dir is fine */
	ck_assert_uint_eq(reg.n, 0);
	ck_assert_str_eq(refusal_of(&reg, "demo.so"),
			 "the file is writable by others (mode 0646); fix with chmod go-w");
	crd_plugins_free(&reg);

	opts.allow_insecure_dir = true;
	ck_assert_int_eq(load1(&reg, dir), 0);
	ck_assert_uint_eq(reg.n, 1);
	crd_plugins_free(&reg);
}
END_TEST

/* Only meaningful as root: chown to a stranger. */
START_TEST(file_owned_by_a_stranger_is_refused)
{
	const char *dir = new_dir();
	add_plugin(dir, "demo", NULL);
	char path[512];
	snprintf(path, sizeof path, "%s/demo.so", dir);
	ck_assert_int_eq(chown(path, 12345, 12345), 0);
	crd_plugin_registry reg = {0};
	ck_assert_int_eq(load1(&reg, dir), 0);
	ck_assert_uint_eq(reg.n, 0);
	ck_assert_ptr_nonnull(strstr(refusal_of(&reg, "demo.so"),
				     "the file is owned by uid 12345, neither root nor"));
	crd_plugins_free(&reg);

	ck_assert_int_eq(chown(dir, 12345, 12345), 0);
	ck_assert_int_eq(load1(&reg, dir), -EPERM);
	ck_assert_ptr_nonnull(strstr(logbuf, "the directory is owned by uid 12345"));
	crd_plugins_free(&reg);
}
END_TEST

START_TEST(duplicate_name_first_wins)
{
	const char *dir = new_dir();
	add_plugin(dir, "demo", "a-demo.so");
	add_plugin(dir, "demo", "b-demo.so");
	crd_plugin_registry reg = {0};
	ck_assert_int_eq(load1(&reg, dir), 0);
	ck_assert_uint_eq(reg.n, 1);
	ck_assert_ptr_nonnull(strstr(reg.plugins[0].path, "/a-demo.so"));
	const char *why = refusal_of(&reg, "b-demo.so");
	ck_assert_ptr_nonnull(why);
	char want[512];
	snprintf(want, sizeof want,
		 "duplicate plugin name 'demo' (already loaded from %s/a-demo.so)", dir);
	ck_assert_str_eq(why, want);

	/* Across dirs too: the dir listed first wins. */
	char dir2[256];
	strcpy(dir2, dir);
	const char *d3 = new_dir();
	add_plugin(d3, "demo", NULL);
	crd_plugin_registry reg2 = {0};
	const char *dirs[] = {d3, dir2};
	ck_assert_int_eq(crd_plugins_load(&reg2, dirs, 2, &opts), 0);
	ck_assert_uint_eq(reg2.n, 1);
	ck_assert_ptr_nonnull(strstr(reg2.plugins[0].path, d3));
	ck_assert_uint_eq(reg2.n_refused, 2);
	crd_plugins_free(&reg2);
	crd_plugins_free(&reg);
	remove_dir(dir2);
}
END_TEST

START_TEST(command_plugin_needs_allow_commands)
{
	const char *dir = new_dir();
	add_plugin(dir, "commands", NULL);
	crd_plugin_registry reg = {0};
	ck_assert_int_eq(load1(&reg, dir), 0);
	ck_assert_uint_eq(reg.n, 0);
	opts.allow_commands = true;
	ck_assert_int_eq(load1(&reg, dir), 0);
	ck_assert_uint_eq(reg.n, 1);
	ck_assert_ptr_nonnull(crd_plugins_find(&reg, "commands"));
	crd_plugins_free(&reg);
}
END_TEST

START_TEST(bad_dirs_are_errors)
{
	crd_plugin_registry reg = {0};
	ck_assert_int_eq(load1(&reg, "/nonexistent/crund-plugins"), -ENOENT);
	ck_assert_ptr_nonnull(strstr(logbuf, "plugin directory /nonexistent/crund-plugins:"));
	const char *dir = new_dir();
	write_text(dir, "file", "x", 1);
	char path[512];
	snprintf(path, sizeof path, "%s/file", dir);
	ck_assert_int_eq(load1(&reg, path), -ENOTDIR);
	/* an empty dir is fine */
	ck_assert_int_eq(load1(&reg, dir), 0);
	ck_assert_uint_eq(reg.n, 0);
	ck_assert_int_eq(crd_plugins_load(&reg, NULL, 0, &opts), 0);
	ck_assert_int_eq(crd_plugins_load(NULL, NULL, 0, &opts), -EINVAL);
	crd_plugins_free(&reg);
	crd_plugins_free(NULL);
}
END_TEST

START_TEST(registry_is_sorted_by_name)
{
	const char *dir = new_dir();
	add_plugin(dir, "hello", "0-hello.so"); /* scanned first */
	add_plugin(dir, "demo", "1-demo.so");
	crd_plugin_registry reg = {0};
	ck_assert_int_eq(load1(&reg, dir), 0);
	ck_assert_uint_eq(reg.n, 2);
	ck_assert_str_eq(reg.plugins[0].desc->name, "demo");
	ck_assert_str_eq(reg.plugins[1].desc->name, "hello");
	ck_assert_ptr_eq(crd_plugins_find(&reg, "hello"), &reg.plugins[1]);
	crd_plugins_free(&reg);
}
END_TEST

/* ------------------------------------------- descriptor validation */

static int dummy_run(crund_job *job) { return 0; }

static crund_arg_spec t_args[2];
static crund_job_spec t_jobs[2];
static crund_plugin t_desc;

/* Build a good descriptor, break it by rule i, and return the reason
 * expected (NULL: rule 0, the good one, passes). */
static const char *break_descriptor(int i)
{
	t_args[0] = (crund_arg_spec){.name = "n",
				     .type = CRUND_ARG_INTEGER,
				     .default_json = "3",
				     .has_range = true,
				     .min = 1,
				     .max = 10};
	t_args[1] = (crund_arg_spec){.name = "s", .type = CRUND_ARG_STRING, .required = true};
	t_jobs[0] = (crund_job_spec){.name = "one", .run = dummy_run, .args = t_args, .n_args = 2};
	t_jobs[1] = (crund_job_spec){.name = "two", .run = dummy_run};
	t_desc = (crund_plugin){.magic = CRUND_PLUGIN_MAGIC,
				.abi_major = CRUND_PLUGIN_ABI_MAJOR,
				.abi_minor = CRUND_PLUGIN_ABI_MINOR,
				.size = sizeof(crund_plugin),
				.name = "t-plugin",
				.jobs = t_jobs,
				.n_jobs = 2,
				.job_spec_size = sizeof(crund_job_spec),
				.arg_spec_size = sizeof(crund_arg_spec)};
	switch (i) {
	case 0:
		return NULL;
	case 1:
		t_desc.name = "Bad Name";
		return "plugin name 'Bad Name' is not [a-z0-9_-]+";
	case 2:
		t_desc.name = NULL;
		return "plugin name '(null)' is not";
	case 3:
		t_desc.jobs = NULL;
		return "plugin 't-plugin': bad job table (2 jobs, at most 256, table NULL)";
	case 4:
		t_desc.n_jobs = 100000;
		return "plugin 't-plugin': bad job table (100000 jobs";
	case 5:
		t_jobs[1].name = "one";
		return "job 'one' is declared twice";
	case 6:
		t_jobs[1].name = "t-w-o";
		return "job name 't-w-o' is not [a-z0-9_]+";
	case 7:
		t_jobs[1].name = "";
		return "job name '' is not [a-z0-9_]+";
	case 8:
		t_jobs[0].run = NULL;
		return "job 'one' has no run function";
	case 9:
		t_jobs[0].args = NULL;
		return "job 'one': bad argument table (2 args, at most 64, table NULL)";
	case 10:
		t_args[1].name = "n";
		return "job 'one': argument 'n' is declared twice";
	case 11:
		t_args[1].name = "S";
		return "job 'one': argument name 'S' is not [a-z0-9_]+";
	case 12:
		t_args[1].type = 0;
		return "job 'one': argument 's' has unknown type 0";
	case 13:
		t_args[1].type = 8;
		return "job 'one': argument 's' has unknown type 8";
	case 14:
		t_args[1].has_range = true;
		return "job 'one': argument 's' has a range but is a string";
	case 15:
		t_args[0].min = 11;
		return "job 'one': argument 'n' has min 11 > max 10";
	case 16:
		t_args[0].max = 1e300;
		return "job 'one': argument 'n' has a range beyond";
	case 17:
		t_args[0].type = CRUND_ARG_NUMBER;
		t_args[0].max = INFINITY;
		return "job 'one': argument 'n' has a range beyond";
	case 18:
		t_args[1].default_json = "\"x\"";
		return "job 'one': argument 's' is required and has a default";
	case 19:
		t_args[0].default_json = "3,";
		return "job 'one': default of argument 'n' is not JSON";
	case 20:
		t_args[0].default_json = "30";
		return "job 'one': bad default: argument 'n' must be between 1 and 10, got 30";
	case 21:
		t_args[0].default_json = "2.5";
		return "job 'one': bad default: argument 'n' must be an integer, got 2.5";
	case 22:
		t_desc.flags = CRUND_PLUGIN_RUNS_COMMANDS;
		return "plugin 't-plugin' runs arbitrary commands";
	case 23:
		t_desc.abi_minor = CRUND_PLUGIN_ABI_MINOR + 1;
		return "ABI minor " MINOR_PLUS_1_STR " newer than " ABI_MINOR_STR;
	case 24:
		t_desc.size = 8;
		return "descriptor too small (8 bytes";
	case 25:
		t_desc.magic = 0;
		return "bad magic";
	case 26:
		t_desc.n_jobs = 0;
		t_desc.jobs = NULL;
		return NULL; /* no jobs is allowed */
	case 27:
		t_args[0].default_json = "2.0";
		return NULL; /* integral real: fine */
	/* The element sizes (since ABI 1.1; the sizes are those of today's
	 * minor: 1.2 appended max_attempts and flags to the job spec, 1.3 check). */
	case 28:
		t_desc.job_spec_size = 0; /* a hand-made descriptor that forgot them */
		return "job_spec_size 0 is smaller than ABI 1." ABI_MINOR_STR
		       "'s 56 bytes (build the "
		       "plugin with "
		       "CRUND_PLUGIN_DEFINE, which sets it)";
	case 29:
		t_desc.arg_spec_size = 48;
		return "arg_spec_size 48 is smaller than ABI 1." ABI_MINOR_STR "'s 56 bytes";
	case 30:
		t_desc.job_spec_size = 4096;
		return "job_spec_size 4096 is larger than the 1024 bytes a table entry may have";
	case 31:
		t_desc.arg_spec_size = 60;
		return "arg_spec_size 60 is not a multiple of 8";
	case 32:
		/* A 1.1 descriptor needs the 1.1 fields. */
		t_desc.size = offsetof(crund_plugin, flags) + sizeof(uint32_t);
		return "descriptor too small (76 bytes, ABI 1." ABI_MINOR_STR " needs 84)";
	case 33:
		t_desc.size = 1u << 20;
		return "descriptor size 1048576 is larger than the 4096 bytes a descriptor may "
		       "have";
	case 34:
		/* A 1.0 descriptor has no element sizes: whatever lies where 1.1
		 * put them (its tail padding) is never read.  (No tables: ours
		 * are in today's layout, a 1.0 plugin's are not.) */
		t_desc.abi_minor = 0;
		t_desc.n_jobs = 0;
		t_desc.jobs = NULL;
		t_desc.size = offsetof(crund_plugin, flags) + sizeof(uint32_t);
		t_desc.job_spec_size = 0xdeadbeef;
		t_desc.arg_spec_size = 3;
		return NULL;
	/* Text is shown as JSON: UTF-8 only (a bad byte made every
	 * GET /v1/plugins answer 500). */
	case 35:
		t_desc.version = "\xc3\x28";
		return "the version of 't-plugin' is not UTF-8 text";
	case 36:
		t_desc.description = "bad \xff";
		return "the description of 't-plugin' is not UTF-8 text";
	case 37:
		t_jobs[1].description = "\xed\xa0\x80"; /* a surrogate */
		return "the description of 'two' is not UTF-8 text";
	case 38:
		t_args[1].description = "caf\xe9";
		return "the description of 's' is not UTF-8 text";
	case 39:
		t_desc.description = "caf\xc3\xa9 \xf0\x9f\x98\x80";
		return NULL;
	/* What a submission may not ask, a spec may not default to. */
	case 40:
		t_jobs[0].max_attempts = 1001;
		return "job 'one': max_attempts 1001 is over 1000";
	case 41:
		t_jobs[0].max_attempts = 1000;
		return NULL;
	case 42:
		t_jobs[1].flags = CRUND_JOB_RERUN_SAFE | 0x6;
		return "job 'two': unknown flags 0x6";
	case 43:
		t_desc.flags = 0x80;
		return "plugin 't-plugin': unknown flags 0x80";
	/* limits named in the refusal */
	case 44:
		t_jobs[1].name =
			"a_name_that_runs_past_the_sixty_four_character_limit_of_names_abc";
		return "job name "
		       "'a_name_that_runs_past_the_sixty_four_character_limit_of_names_abc' "
		       "is not [a-z0-9_]+ (at most 64 characters)";
	case 45:
		t_jobs[0].n_args = 300;
		return "job 'one': bad argument table (300 args, at most 64, table present)";
	}
	return "unreachable";
}
#define N_DESC_RULES 46

/* The JSON view shows a default as a job receives it: an integer
 * argument's "2.0" is 2 (it showed 2.0). */
START_TEST(json_view_shows_defaults_normalised)
{
	break_descriptor(0);
	t_args[0].default_json = "2.0";
	crd_loaded_plugin lp = {.desc = &t_desc};
	json_t *v = crd_plugin_to_json(&lp);
	ck_assert_ptr_nonnull(v);
	json_t *jobs = json_object_get(v, "jobs");
	json_t *args = json_object_get(json_array_get(jobs, 0), "args");
	json_t *def = json_object_get(json_array_get(args, 0), "default");
	ck_assert(json_is_integer(def));
	ck_assert_int_eq(json_integer_value(def), 2);
	json_decref(v);
}
END_TEST

START_TEST(descriptor_rules)
{
	const char *want = break_descriptor(_i);
	char why[512] = "";
	crund_plugin *copy = NULL;
	int rc = crd_plugin_import(&t_desc, &copy, why, sizeof why);
	if (rc == 0) {
		rc = crd_plugin_check_descriptor(copy, &opts, why, sizeof why);
		free(copy);
	}
	if (!want) {
		ck_assert_msg(rc == 0, "rule %d refused: %s", _i, why);
	} else {
		ck_assert_int_lt(rc, 0);
		ck_assert_msg(strncmp(why, want, strlen(want)) == 0,
			      "rule %d: got \"%s\", want \"%s\"", _i, why, want);
	}
}
END_TEST

static json_t *job_json(json_t *plugin, const char *name)
{
	size_t i;
	json_t *j;
	json_array_foreach(json_object_get(plugin, "jobs"), i,
			   j) if (strcmp(json_string_value(json_object_get(j, "name")), name) ==
				  0) return j;
	return NULL;
}

static void assert_json(json_t *v, const char *expected)
{
	json_t *want = json_loads(expected, 0, NULL);
	ck_assert_ptr_nonnull(want);
	char *got = json_dumps(v, JSON_SORT_KEYS | JSON_COMPACT);
	ck_assert_msg(json_equal(v, want), "got %s\nwant %s", got, expected);
	free(got);
	json_decref(want);
}

START_TEST(json_views_describe_jobs_and_args)
{
	const char *dir = new_dir();
	add_plugin(dir, "demo", NULL);
	add_plugin(dir, "hello", NULL);
	crd_plugin_registry reg = {0};
	ck_assert_int_eq(load1(&reg, dir), 0);
	json_t *all = crd_plugins_to_json(&reg);
	ck_assert_ptr_nonnull(all);
	ck_assert_uint_eq(json_array_size(all), 2);
	json_t *demo = json_array_get(all, 0);
	ck_assert_str_eq(json_string_value(json_object_get(demo, "name")), "demo");
	ck_assert_str_eq(json_string_value(json_object_get(demo, "version")), "1.0.0");
	ck_assert(json_is_string(json_object_get(demo, "description")));
	ck_assert_uint_eq(json_array_size(json_object_get(demo, "jobs")), 10);
	ck_assert_ptr_null(json_object_get(demo, "path")); /* no host paths over the API */

	assert_json(json_object_get(job_json(demo, "sleep"), "args"),
		    "[{\"name\": \"seconds\", \"type\": \"number\", \"required\": true,"
		    " \"description\": \"how long to sleep, in seconds\", \"min\": 0.0,"
		    " \"max\": 3600.0}]");
	assert_json(json_array_get(json_object_get(job_json(demo, "fanout"), "args"), 0),
		    "{\"name\": \"n\", \"type\": \"integer\", \"required\": false, \"default\": 10,"
		    " \"description\": \"number of child tasks\", \"min\": 1, \"max\": 10000}");
	assert_json(
		json_object_get(job_json(demo, "fail"), "args"),
		"[{\"name\": \"message\", \"type\": \"string\", \"required\": false,"
		" \"default\": \"failed on purpose\", \"description\": \"the failure message\"}]");
	assert_json(json_object_get(job_json(demo, "noop"), "args"), "[]");
	assert_json(json_object_get(job_json(demo, "echo"), "args"),
		    "[{\"name\": \"value\", \"type\": \"any\", \"required\": true,"
		    " \"description\": \"any JSON value, returned as the result\"}]");
	ck_assert_str_eq(json_string_value(json_object_get(job_json(demo, "noop"), "description")),
			 "do nothing, return {\"ok\": true}");

	json_t *one = crd_plugin_to_json(crd_plugins_find(&reg, "hello"));
	ck_assert(json_equal(one, json_array_get(all, 1)));
	json_decref(one);
	json_decref(all);
	crd_plugins_free(&reg);
}
END_TEST

/* ------------------------------------------------------ fake host */

/* What the daemon's job looks like to us: the public head first. */
struct fake_job {
	crund_job head;
	json_t *args;
	json_t *result;
	void *state;
	char fail_code[64];
	char fail_msg[256];
	int n_progress;
	double last_fraction;
	char last_progress[64];
	int n_logs;
	const crund_job_spec *spec;
	cr_task *task;
	int rc;
};

static const json_t *fake_args(crund_job *job) { return ((struct fake_job *)job)->args; }
static const char *fake_id(crund_job *job) { return "job-1"; }
static void *fake_state(crund_job *job) { return ((struct fake_job *)job)->state; }

static int fake_set_result(crund_job *job, json_t *result)
{
	struct fake_job *j = (struct fake_job *)job;
	json_decref(j->result);
	j->result = result;
	return 0;
}

__attribute__((format(printf, 3, 0))) static int fake_fail(crund_job *job, const char *code,
							   const char *fmt, va_list ap)
{
	struct fake_job *j = (struct fake_job *)job;
	snprintf(j->fail_code, sizeof j->fail_code, "%s", code ? code : "plugin_error");
	vsnprintf(j->fail_msg, sizeof j->fail_msg, fmt, ap);
	return -EIO;
}

static int fake_progress(crund_job *job, double fraction, const char *message)
{
	struct fake_job *j = (struct fake_job *)job;
	j->n_progress++;
	j->last_fraction = fraction;
	snprintf(j->last_progress, sizeof j->last_progress, "%s", message ? message : "");
	return 0;
}

__attribute__((format(printf, 3, 0))) static void fake_job_log(crund_job *job, int level,
							       const char *fmt, va_list ap)
{
	((struct fake_job *)job)->n_logs++;
	capture_vlog(fmt, ap);
}

__attribute__((format(printf, 3, 0))) static void fake_host_log(const crund_host_api *host,
								int level, const char *fmt,
								va_list ap)
{
	capture_vlog(fmt, ap);
}

static const crund_host_api fake_host = {
	.size = sizeof(crund_host_api),
	.abi_major = CRUND_PLUGIN_ABI_MAJOR,
	.abi_minor = CRUND_PLUGIN_ABI_MINOR,
	.job_args = fake_args,
	.job_id = fake_id,
	.job_plugin_state = fake_state,
	.job_set_result = fake_set_result,
	.job_fail = fake_fail,
	.job_progress = fake_progress,
	.job_log = fake_job_log,
	.log = fake_host_log,
	.daemon_version = "test",
};

/* One loaded registry and a runner for the runtime tests. */
static crd_plugin_registry rt_reg;
static cr_runner *runner;

static int init_task(void *arg, void **ret_value)
{
	return crd_plugins_init(&rt_reg, &fake_host, &opts);
}

static int fini_task(void *arg, void **ret_value)
{
	crd_plugins_fini(&rt_reg, &fake_host);
	return 0;
}

static void rt_setup(void)
{
	setup();
	const char *dir = new_dir();
	add_plugin(dir, "demo", NULL);
	memset(&rt_reg, 0, sizeof rt_reg);
	ck_assert_int_eq(load1(&rt_reg, dir), 0);
	ck_assert_uint_eq(rt_reg.n, 1);
	ck_assert_int_eq(cr_runner_new(NULL, &runner), 0);
	ck_assert_int_eq(cr_runner_run(runner, init_task, NULL, NULL, NULL), 0);
	ck_assert(rt_reg.plugins[0].initialized);
}

static void rt_teardown(void)
{
	ck_assert_int_eq(cr_runner_run(runner, fini_task, NULL, NULL, NULL), 0);
	ck_assert_ptr_nonnull(strstr(logbuf, "demo plugin stopped"));
	cr_runner_free(runner);
	runner = NULL;
	crd_plugins_free(&rt_reg);
	teardown();
}

/* Prepare a job of the demo plugin: args validated like the daemon does. */
static void job_prepare(struct fake_job *j, const char *name, const char *args_json)
{
	memset(j, 0, sizeof *j);
	j->head.api = &fake_host;
	const crd_loaded_plugin *p = crd_plugins_find(&rt_reg, "demo");
	j->spec = crd_plugins_find_job(p, name);
	ck_assert_ptr_nonnull(j->spec);
	j->state = p->state;
	json_t *given = json_loads(args_json, 0, NULL);
	ck_assert_ptr_nonnull(given);
	char err[256];
	ck_assert_msg(crd_args_validate(j->spec, given, &j->args, err, sizeof err) == 0, "%s", err);
	json_decref(given);
}

static void job_release(struct fake_job *j)
{
	json_decref(j->args);
	json_decref(j->result);
}

static int job_body(void *arg, void **ret_value)
{
	struct fake_job *j = arg;
	j->rc = j->spec->run(&j->head);
	return j->rc;
}

/* Run a job to completion on the runner (ctx NULL: the shared context). */
static int run_job(struct fake_job *j, cr_context *ctx)
{
	return cr_runner_run(runner, job_body, j, ctx, NULL);
}

static void assert_result(struct fake_job *j, const char *expected)
{
	ck_assert_ptr_nonnull(j->result);
	assert_json(j->result, expected);
}

START_TEST(init_and_fini_run_as_coroutines)
{
	/* rt_setup loaded demo and ran its init on the runner */
	ck_assert_ptr_nonnull(strstr(logbuf, "demo plugin ready: 10 jobs"));
	ck_assert_ptr_nonnull(rt_reg.plugins[0].state);

	/* A second registry: an init that awaits, and one that fails. */
	crd_plugin_registry saved = rt_reg;
	const char *dir = new_dir();
	add_plugin(dir, "awaits", NULL);
	add_plugin(dir, "init-fail", NULL);
	memset(&rt_reg, 0, sizeof rt_reg);
	ck_assert_int_eq(load1(&rt_reg, dir), 0);
	ck_assert_uint_eq(rt_reg.n, 2);
	ck_assert_int_eq(cr_runner_run(runner, init_task, NULL, NULL, NULL), 0);
	ck_assert_uint_eq(rt_reg.n, 1);
	ck_assert_str_eq(rt_reg.plugins[0].desc->name, "awaits");
	ck_assert_ptr_nonnull(strstr(logbuf, "awaits: init slept"));
	ck_assert_ptr_nonnull(strstr(logbuf, "init_fail: cannot reach the backend"));
	char want[128];
	snprintf(want, sizeof want, "init failed: %s", cr_strerror(-EIO));
	ck_assert_str_eq(refusal_of(&rt_reg, "init-fail.so"), want);
	ck_assert_int_eq(cr_runner_run(runner, fini_task, NULL, NULL, NULL), 0);
	ck_assert_ptr_nonnull(strstr(logbuf, "awaits: fini slept rc=0 state=42"));
	ck_assert(!rt_reg.plugins[0].initialized);
	crd_plugins_free(&rt_reg);
	remove_dir(dir);
	rt_reg = saved;
	/* restore rt_setup's dir name for teardown */
	snprintf(tmpdir, sizeof tmpdir, "%s", saved.plugins[0].path);
	*strrchr(tmpdir, '/') = '\0';
}
END_TEST

struct init_cancel {
	int init_rc;
};

static int init_body(void *arg, void **ret_value)
{
	struct init_cancel *ic = arg;
	ic->init_rc = crd_plugins_init(&rt_reg, &fake_host, &opts);
	return 0;
}

static int init_canceller(void *arg, void **ret_value)
{
	cr_task *t = NULL;
	int rc = cr_spawn(init_body, arg, NULL, &t);
	if (rc < 0)
		return rc;
	rc = cr_sleep(0.02);
	if (rc == 0)
		rc = cr_task_cancel(t, "shutdown during init");
	if (rc == 0)
		rc = cr_wait_for(t, 20.0, NULL);
	cr_task_unref(t);
	return rc == -ECANCELED ? 0 : rc;
}

START_TEST(init_cancelled_stops_and_leaves_the_rest_uninitialised)
{
	crd_plugin_registry saved = rt_reg;
	const char *dir = new_dir();
	add_plugin(dir, "awaits", NULL);
	add_plugin(dir, "hello", NULL);
	memset(&rt_reg, 0, sizeof rt_reg);
	ck_assert_int_eq(load1(&rt_reg, dir), 0);
	ck_assert_uint_eq(rt_reg.n, 2);
	setenv("CRUND_TEST_INIT_SLEEP", "3600", 1);
	struct init_cancel ic = {0};
	ck_assert_int_eq(cr_runner_run(runner, init_canceller, &ic, NULL, NULL), 0);
	unsetenv("CRUND_TEST_INIT_SLEEP");
	ck_assert_int_eq(ic.init_rc, -ECANCELED);
	ck_assert_uint_eq(rt_reg.n, 1); /* awaits removed */
	ck_assert_str_eq(rt_reg.plugins[0].desc->name, "hello");
	ck_assert(!rt_reg.plugins[0].initialized);
	ck_assert_ptr_nonnull(
		strstr(refusal_of(&rt_reg, "awaits.so"), "(the daemon is shutting down)"));
	crd_plugins_fini(&rt_reg, &fake_host); /* skips hello: never initialised */
	crd_plugins_free(&rt_reg);
	remove_dir(dir);
	rt_reg = saved;
	snprintf(tmpdir, sizeof tmpdir, "%s", saved.plugins[0].path);
	*strrchr(tmpdir, '/') = '\0';
}
END_TEST

/* ------------------------------------------------- ABI layouts */

/* What abi-1-0.so and abi-wide.so declare (tests/plugins/abi-fixture.h),
 * each in its own struct layout. */
struct want_arg {
	const char *name;
	crund_arg_type type;
	bool required;
	const char *default_json;
	const char *description;
	bool has_range;
	double min, max;
};
#define WANT_ARG(n, t, r, d, desc, hr, mn, mx) {n, t, r, d, desc, hr, mn, mx},
static const struct want_arg want_alpha[] = {ABI_ALPHA_ARGS(WANT_ARG)};
static const struct want_arg want_beta[] = {ABI_BETA_ARGS(WANT_ARG)};
static const struct want_arg want_gamma[] = {ABI_GAMMA_ARGS(WANT_ARG)};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
static const struct {
	const char *name, *description, *run_symbol;
	const struct want_arg *args;
	size_t n_args;
} want_jobs[ABI_N_JOBS] = {
	{"alpha", "the first job", "abi_run_alpha", want_alpha, N_OF(want_alpha)},
	{"beta", "the second job", "abi_run_beta", want_beta, N_OF(want_beta)},
	{"gamma", "the third job", "abi_run_gamma", want_gamma, N_OF(want_gamma)},
	{"delta", "a job without arguments", "abi_run_delta", NULL, 0},
};

static const struct {
	const char *fixture, *name, *version;
	unsigned abi_minor;
} abi_fixtures[] = {
	{"abi-1-0", "abi_1_0", "1.0-layout", 0},    /* the 1.0 structs, no element sizes */
	{"abi-wide", "abi_wide", "wide-layout", 1}, /* fields appended to every struct */
};

static void assert_str_or_null(const char *got, const char *want, const char *what)
{
	if (!want)
		ck_assert_msg(got == NULL, "%s: got \"%s\", want NULL", what, got);
	else
		ck_assert_msg(got && strcmp(got, want) == 0, "%s: got \"%s\", want \"%s\"", what,
			      got ? got : "(null)", want);
}

/* Every job and every argument of a plugin built against another layout
 * than the daemon's reads back exactly as declared: names, descriptions,
 * run functions, types, required, defaults, ranges. */
START_TEST(other_layouts_read_every_job_and_argument)
{
	const char *dir = new_dir();
	add_plugin(dir, abi_fixtures[_i].fixture, NULL);
	crd_plugin_registry reg = {0};
	ck_assert_int_eq(load1(&reg, dir), 0);
	ck_assert_msg(reg.n == 1, "refused: %s", reg.n_refused ? reg.refused[0].reason : "?");
	const crd_loaded_plugin *p = crd_plugins_find(&reg, abi_fixtures[_i].name);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(p->abi_minor, abi_fixtures[_i].abi_minor);
	ck_assert_str_eq(p->desc->version, abi_fixtures[_i].version);
	ck_assert_ptr_null(p->desc->init);
	ck_assert_ptr_null(p->desc->fini);
	ck_assert_uint_eq(p->desc->flags, 0);
	char line[256];
	snprintf(line, sizeof line, "(4 jobs, ABI 1.%u)", abi_fixtures[_i].abi_minor);
	ck_assert_msg(strstr(logbuf, line), "log lacks \"%s\":\n%s", line, logbuf);

	ck_assert_uint_eq(p->desc->n_jobs, ABI_N_JOBS);
	for (size_t i = 0; i < ABI_N_JOBS; i++) {
		const crund_job_spec *j = &p->desc->jobs[i];
		char what[128];
		snprintf(what, sizeof what, "%s job %zu", abi_fixtures[_i].fixture, i);
		assert_str_or_null(j->name, want_jobs[i].name, what);
		assert_str_or_null(j->description, want_jobs[i].description, what);
		ck_assert_ptr_eq(crd_plugins_find_job(p, want_jobs[i].name), j);
		/* The run pointer is the plugin's own function, and runs. */
		ck_assert_ptr_nonnull(j->run);
		void *sym = dlsym(p->dl, want_jobs[i].run_symbol);
		ck_assert_ptr_nonnull(sym);
		ck_assert_msg((void *)j->run == sym, "%s: run is not %s", what,
			      want_jobs[i].run_symbol);
		struct fake_job fj = {.head.api = &fake_host};
		ck_assert_int_eq(j->run(&fj.head), 0);
		ck_assert_str_eq(json_string_value(fj.result), want_jobs[i].name);
		json_decref(fj.result);

		ck_assert_uint_eq(j->n_args, want_jobs[i].n_args);
		if (!j->n_args)
			ck_assert_ptr_null(j->args);
		for (size_t k = 0; k < j->n_args; k++) {
			const crund_arg_spec *a = &j->args[k];
			const struct want_arg *w = &want_jobs[i].args[k];
			snprintf(what, sizeof what, "%s %s arg %zu", abi_fixtures[_i].fixture,
				 want_jobs[i].name, k);
			assert_str_or_null(a->name, w->name, what);
			ck_assert_msg(a->type == w->type, "%s: type %d", what, (int)a->type);
			ck_assert_msg(a->required == w->required, "%s: required", what);
			assert_str_or_null(a->default_json, w->default_json, what);
			assert_str_or_null(a->description, w->description, what);
			ck_assert_msg(a->has_range == w->has_range, "%s: has_range", what);
			ck_assert_msg(a->min == w->min && a->max == w->max, "%s: range %g..%g",
				      what, a->min, a->max);
		}
	}
	ck_assert_ptr_null(crd_plugins_find_job(p, "epsilon"));

	/* What the daemon builds on those tables: defaults filled in, ranges
	 * enforced, the JSON view. */
	json_t *out = NULL;
	char err[256];
	json_t *in = json_loads("{\"label\": \"x\"}", 0, NULL);
	ck_assert_int_eq(
		crd_args_validate(crd_plugins_find_job(p, "alpha"), in, &out, err, sizeof err), 0);
	assert_json(out, "{\"label\": \"x\", \"count\": 5, \"ratio\": 0.25}");
	json_decref(out);
	json_decref(in);
	in = json_loads("{\"offset\": 101}", 0, NULL);
	ck_assert_int_eq(
		crd_args_validate(crd_plugins_find_job(p, "gamma"), in, &out, err, sizeof err),
		-EINVAL);
	ck_assert_str_eq(err, "argument 'offset' must be between -100 and 100, got 101");
	json_decref(in);
	json_t *view = crd_plugin_to_json(p);
	assert_json(
		json_object_get(view, "jobs"),
		"[{\"name\": \"alpha\", \"description\": \"the first job\", \"max_attempts\": 1,"
		" \"on_interrupt\": \"fail\", \"args\": ["
		"  {\"name\": \"count\", \"type\": \"integer\", \"required\": false,"
		"   \"default\": 5, \"description\": \"how many times\", \"min\": 1, \"max\": 10},"
		"  {\"name\": \"label\", \"type\": \"string\", \"required\": true,"
		"   \"description\": \"what to call it\"},"
		"  {\"name\": \"ratio\", \"type\": \"number\", \"required\": false,"
		"   \"default\": 0.25, \"description\": \"a fraction\", \"min\": 0.0,"
		"   \"max\": 1.0}]},"
		" {\"name\": \"beta\", \"description\": \"the second job\", \"max_attempts\": 1,"
		" \"on_interrupt\": \"fail\", \"args\": ["
		"  {\"name\": \"flag\", \"type\": \"boolean\", \"required\": false,"
		"   \"default\": true, \"description\": \"a switch\"},"
		"  {\"name\": \"payload\", \"type\": \"any\", \"required\": true,"
		"   \"description\": \"any JSON value\"}]},"
		" {\"name\": \"gamma\", \"description\": \"the third job\", \"max_attempts\": 1,"
		" \"on_interrupt\": \"fail\", \"args\": ["
		"  {\"name\": \"items\", \"type\": \"array\", \"required\": false,"
		"   \"default\": [1, 2], \"description\": \"a list\"},"
		"  {\"name\": \"options\", \"type\": \"object\", \"required\": false,"
		"   \"default\": {\"a\": 1}, \"description\": \"an object\"},"
		"  {\"name\": \"offset\", \"type\": \"integer\", \"required\": false,"
		"   \"description\": \"bounded, no default\", \"min\": -100, \"max\": 100},"
		"  {\"name\": \"note\", \"type\": \"string\", \"required\": false,"
		"   \"default\": \"none\", \"description\": \"a note\"}]},"
		" {\"name\": \"delta\", \"description\": \"a job without arguments\","
		"  \"max_attempts\": 1, \"on_interrupt\": \"fail\", \"args\": []}]");
	json_decref(view);
	crd_plugins_free(&reg);
}
END_TEST

/* Both layouts side by side in one registry, next to the demo plugin. */
START_TEST(old_and_new_layouts_load_together)
{
	const char *dir = new_dir();
	add_plugin(dir, "abi-1-0", NULL);
	add_plugin(dir, "abi-wide", NULL);
	add_plugin(dir, "demo", NULL);
	crd_plugin_registry reg = {0};
	ck_assert_int_eq(load1(&reg, dir), 0);
	ck_assert_uint_eq(reg.n_refused, 0);
	ck_assert_uint_eq(reg.n, 3);
	const crd_loaded_plugin *old = crd_plugins_find(&reg, "abi_1_0");
	const crd_loaded_plugin *wide = crd_plugins_find(&reg, "abi_wide");
	ck_assert_ptr_nonnull(old);
	ck_assert_ptr_nonnull(wide);
	/* Same declarations, different objects: each job runs its own
	 * plugin's function. */
	for (size_t i = 0; i < ABI_N_JOBS; i++) {
		ck_assert_str_eq(old->desc->jobs[i].name, wide->desc->jobs[i].name);
		ck_assert_ptr_ne((void *)old->desc->jobs[i].run, (void *)wide->desc->jobs[i].run);
		ck_assert_ptr_eq((void *)wide->desc->jobs[i].run,
				 dlsym(wide->dl, want_jobs[i].run_symbol));
	}
	json_t *a = crd_plugin_to_json(old), *b = crd_plugin_to_json(wide);
	ck_assert(json_equal(json_object_get(a, "jobs"), json_object_get(b, "jobs")));
	json_decref(a);
	json_decref(b);
	crd_plugins_free(&reg);
}
END_TEST

START_TEST(plugins_without_init_need_no_coroutine)
{
	/* hello has no init/fini: initialised without awaiting anything */
	crd_plugin_registry reg = {0};
	const char *dir = new_dir();
	add_plugin(dir, "hello", NULL);
	ck_assert_int_eq(load1(&reg, dir), 0);
	ck_assert_int_eq(crd_plugins_init(&reg, &fake_host, &opts), 0);
	ck_assert(reg.plugins[0].initialized);
	crd_plugins_fini(&reg, &fake_host);
	ck_assert(!reg.plugins[0].initialized);
	crd_plugins_free(&reg);
}
END_TEST

START_TEST(demo_noop_echo_sleep)
{
	struct fake_job j;
	job_prepare(&j, "noop", "{}");
	ck_assert_int_eq(run_job(&j, NULL), 0);
	assert_result(&j, "{\"ok\": true}");
	job_release(&j);

	job_prepare(&j, "echo", "{\"value\": {\"a\": [1, 2, null]}}");
	ck_assert_int_eq(run_job(&j, NULL), 0);
	assert_result(&j, "{\"a\": [1, 2, null]}");
	ck_assert_ptr_ne(j.result, json_object_get(j.args, "value")); /* a copy */
	job_release(&j);

	job_prepare(&j, "sleep", "{\"seconds\": 0.01}");
	ck_assert_int_eq(run_job(&j, NULL), 0);
	assert_result(&j, "{\"slept\": 0.01}");
	job_release(&j);

	job_prepare(&j, "hog", "{\"seconds\": 0.01}");
	ck_assert_int_eq(run_job(&j, NULL), 0);
	assert_result(&j, "{\"hogged\": 0.01}");
	job_release(&j);
}
END_TEST

START_TEST(demo_fail_reports_plugin_error)
{
	struct fake_job j;
	job_prepare(&j, "fail", "{}");
	ck_assert_int_eq(run_job(&j, NULL), -EIO); /* what the host's fail returned */
	ck_assert_str_eq(j.fail_code, "plugin_error");
	ck_assert_str_eq(j.fail_msg, "failed on purpose");
	ck_assert_ptr_null(j.result);
	job_release(&j);

	job_prepare(&j, "fail", "{\"message\": \"disk %s full\"}");
	ck_assert_int_eq(run_job(&j, NULL), -EIO);
	ck_assert_str_eq(j.fail_msg, "disk %s full"); /* not a format string */
	job_release(&j);
}
END_TEST

START_TEST(demo_counter_shared_vs_isolated_context)
{
	struct fake_job j;
	for (int i = 1; i <= 3; i++) {
		job_prepare(&j, "counter", "{}");
		ck_assert_int_eq(run_job(&j, NULL), 0);
		ck_assert_int_eq(json_integer_value(json_object_get(j.result, "count")), i);
		job_release(&j);
	}
	/* An isolated copy starts from the shared value; its +1 stays there. */
	cr_context *shared = NULL, *copy = NULL;
	ck_assert_int_eq(cr_runner_get_context(runner, &shared), 0);
	ck_assert_int_eq(cr_context_copy(shared, &copy), 0);
	job_prepare(&j, "counter", "{}");
	ck_assert_int_eq(run_job(&j, copy), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(j.result, "count")), 4);
	job_release(&j);
	job_prepare(&j, "counter", "{}");
	ck_assert_int_eq(run_job(&j, copy), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(j.result, "count")), 5);
	job_release(&j);
	cr_context_unref(copy);
	/* A fresh empty context: the variable's default, 0, then 1. */
	cr_context *fresh = NULL;
	ck_assert_int_eq(cr_context_new(&fresh), 0);
	job_prepare(&j, "counter", "{}");
	ck_assert_int_eq(run_job(&j, fresh), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(j.result, "count")), 1);
	job_release(&j);
	cr_context_unref(fresh);

	job_prepare(&j, "counter", "{}");
	ck_assert_int_eq(run_job(&j, NULL), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(j.result, "count")), 4);
	job_release(&j);
}
END_TEST

START_TEST(demo_fanout_gathers_children)
{
	struct fake_job j;
	job_prepare(&j, "fanout", "{\"n\": 200, \"seconds\": 0.001}");
	ck_assert_int_eq(run_job(&j, NULL), 0);
	assert_result(&j, "{\"children\": 200}");
	job_release(&j);
}
END_TEST

/* Spawn the job as a task, let it start, cancel it, and wait (bounded)
 * for it to end. */
struct cancel_run {
	struct fake_job *job;
	double after;
	int join_rc;
};

static int cancel_driver(void *arg, void **ret_value)
{
	struct cancel_run *c = arg;
	cr_task *t = NULL;
	int rc = cr_spawn(job_body, c->job, NULL, &t);
	if (rc < 0)
		return rc;
	rc = cr_sleep(c->after);
	if (rc == 0)
		rc = cr_task_cancel(t, "test cancels");
	if (rc == 0) {
		/* The children sleep an hour: only a cancelled gather can
		 * end this in time. */
		c->join_rc = cr_wait_for(t, 20.0, NULL);
	}
	cr_task_unref(t);
	return rc;
}

START_TEST(demo_fanout_cancel_cancels_children)
{
	struct fake_job j;
	job_prepare(&j, "fanout", "{\"n\": 100, \"seconds\": 3600}");
	struct cancel_run c = {.job = &j, .after = 0.02};
	ck_assert_int_eq(cr_runner_run(runner, cancel_driver, &c, NULL, NULL), 0);
	ck_assert_int_eq(c.join_rc, -ECANCELED);
	ck_assert_int_eq(j.rc, -ECANCELED);
	ck_assert_ptr_null(j.result);
	job_release(&j);
}
END_TEST

START_TEST(demo_linger_cleanup_awaits_after_cancel)
{
	struct fake_job j;
	job_prepare(&j, "linger", "{\"seconds\": 3600, \"cleanup_seconds\": 0.02}");
	struct cancel_run c = {.job = &j, .after = 0.02};
	ck_assert_int_eq(cr_runner_run(runner, cancel_driver, &c, NULL, NULL), 0);
	ck_assert_int_eq(c.join_rc, -ECANCELED);
	ck_assert_int_eq(j.rc, -ECANCELED);
	/* The cleanup's own await completed: cancellation came only once. */
	ck_assert_ptr_nonnull(strstr(logbuf, "cleaning up\ncleanup done\n"));
	ck_assert_int_eq(j.n_logs, 2);
	job_release(&j);

	job_prepare(&j, "linger", "{\"seconds\": 0.001}");
	ck_assert_int_eq(run_job(&j, NULL), 0);
	assert_result(&j, "{\"lingered\": 0.001}");
	job_release(&j);
}
END_TEST

START_TEST(demo_progress_reports_each_step)
{
	struct fake_job j;
	job_prepare(&j, "progress", "{\"steps\": 4, \"interval\": 0}");
	ck_assert_int_eq(run_job(&j, NULL), 0);
	assert_result(&j, "{\"steps\": 4}");
	ck_assert_int_eq(j.n_progress, 4);
	ck_assert(j.last_fraction == 1.0);
	ck_assert_str_eq(j.last_progress, "step 4/4");
	ck_assert_int_eq(j.n_logs, 4);
	ck_assert_ptr_nonnull(strstr(logbuf, "step 1/4 done\nstep 2/4 done\n"));
	job_release(&j);
}
END_TEST

START_TEST(demo_compute_counts_primes_in_executor)
{
	static const struct {
		const char *args;
		const char *result;
	} cases[] = {
		{"{\"n\": 2}", "{\"primes\": 0}"},    {"{\"n\": 3}", "{\"primes\": 1}"},
		{"{\"n\": 100}", "{\"primes\": 25}"}, {"{\"n\": 101}", "{\"primes\": 25}"},
		{"{\"n\": 102}", "{\"primes\": 26}"}, {"{}", "{\"primes\": 78498}"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fake_job j;
		job_prepare(&j, "compute", cases[i].args);
		ck_assert_int_eq(run_job(&j, NULL), 0);
		assert_result(&j, cases[i].result);
		job_release(&j);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("plugins");
	TCase *tc = tcase_create("loader");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, demo_loads_with_its_jobs);
	tcase_add_loop_test(tc, broken_fixture_is_refused_with_its_reason, 0,
			    sizeof refusals / sizeof refusals[0]);
	tcase_add_test(tc, constructor_never_runs_for_a_refused_plugin);
	tcase_add_test(tc, non_elf_and_truncated_files_are_refused);
	tcase_add_test(tc, stripped_section_headers_use_the_dynamic_segment);
	tcase_add_test(tc, elf_check_survives_truncation_and_corruption);
	tcase_add_test(tc, insecure_dir_is_refused_unless_allowed);
	tcase_add_test(tc, insecure_file_is_refused_unless_allowed);
	if (geteuid() == 0)
		tcase_add_test(tc, file_owned_by_a_stranger_is_refused);
	tcase_add_test(tc, duplicate_name_first_wins);
	tcase_add_test(tc, command_plugin_needs_allow_commands);
	tcase_add_test(tc, bad_dirs_are_errors);
	tcase_add_test(tc, registry_is_sorted_by_name);
	tcase_add_test(tc, json_views_describe_jobs_and_args);
	tcase_add_loop_test(tc, descriptor_rules, 0, N_DESC_RULES);
	tcase_add_test(tc, json_view_shows_defaults_normalised);
	tcase_add_test(tc, plugins_without_init_need_no_coroutine);
	tcase_add_loop_test(tc, other_layouts_read_every_job_and_argument, 0,
			    sizeof abi_fixtures / sizeof abi_fixtures[0]);
	tcase_add_test(tc, old_and_new_layouts_load_together);
	suite_add_tcase(s, tc);

	TCase *rt = tcase_create("runtime");
	tcase_add_checked_fixture(rt, rt_setup, rt_teardown);
	tcase_add_test(rt, init_and_fini_run_as_coroutines);
	tcase_add_test(rt, init_cancelled_stops_and_leaves_the_rest_uninitialised);
	tcase_add_test(rt, demo_noop_echo_sleep);
	tcase_add_test(rt, demo_fail_reports_plugin_error);
	tcase_add_test(rt, demo_counter_shared_vs_isolated_context);
	tcase_add_test(rt, demo_fanout_gathers_children);
	tcase_add_test(rt, demo_fanout_cancel_cancels_children);
	tcase_add_test(rt, demo_linger_cleanup_awaits_after_cancel);
	tcase_add_test(rt, demo_progress_reports_each_step);
	tcase_add_test(rt, demo_compute_counts_primes_in_executor);
	suite_add_tcase(s, rt);

	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
