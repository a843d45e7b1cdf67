/*
 * test-subprocess.c — child processes on the loop: exit codes, signals,
 * pipes read as data comes, stdin, cwd, environment, exec failures,
 * process groups, descriptors, many children, cancellation; through the
 * pidfd watcher and through the SIGCHLD fallback.  Public header only,
 * plus the test switch that forces the fallback.
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crunner.h"
#include "testutil.h"

/* lib/subprocess.c's test switch (exported as cr__test_*, declared in
 * lib/internal.h, which this suite does not include). */
void cr__test_subprocess_force_sigchld(bool on);

#define SH "/bin/sh"

static int spawn(const char *const *argv, int in, int out, int err, cr_subprocess **ret)
{
	cr_subprocess_opts o = {.size = sizeof(o),
				.argv = argv,
				.stdin_mode = in,
				.stdout_mode = out,
				.stderr_mode = err};

	return cr_subprocess_spawn(&o, ret);
}

/* Read fd to end of file into buf (NUL-terminated); returns the length. */
static size_t read_all(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;

	while ((n = cr_read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	ck_assert_int_eq(n, 0);
	buf[len] = '\0';
	return len;
}

/* Run `sh -c script` with stdout and stderr piped; returns the status. */
static int run_sh(const char *script, char *out, size_t outcap, char *err, size_t errcap)
{
	const char *argv[] = {SH, "-c", script, NULL};
	cr_subprocess *p;
	int status = -1;

	ck_assert_int_eq(spawn(argv, CR_STDIO_DEVNULL, CR_STDIO_PIPE, CR_STDIO_PIPE, &p), 0);
	read_all(cr_subprocess_fd(p, 1), out, outcap);
	read_all(cr_subprocess_fd(p, 2), err, errcap);
	ck_assert_int_eq(cr_subprocess_wait(p, &status), 0);
	cr_subprocess_free(p);
	return status;
}

static void both_paths(cr_fn fn)
{
	cr__test_subprocess_force_sigchld(false);
	ck_assert_int_eq(tu_run(fn, NULL, NULL), 0);
	cr__test_subprocess_force_sigchld(true);
	ck_assert_int_eq(tu_run(fn, NULL, NULL), 0);
	cr__test_subprocess_force_sigchld(false);
}

/* No child of ours is left: neither running nor a zombie. */
static void assert_no_children(void)
{
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
}

/* ------------------------------------------------------------ exit status */

static int exit_main(void *arg, void **ret)
{
	char out[256], err[256];
	int st;

	(void)arg;
	(void)ret;
	st = run_sh("exit 3", out, sizeof(out), err, sizeof(err));
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 3);
	st = run_sh("true", out, sizeof(out), err, sizeof(err));
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	st = run_sh("kill -TERM $$", out, sizeof(out), err, sizeof(err));
	ck_assert(WIFSIGNALED(st));
	ck_assert_int_eq(WTERMSIG(st), SIGTERM);
	return 0;
}

START_TEST(wait_reports_exit_code_and_signal_death)
{
	both_paths(exit_main);
	assert_no_children();
}
END_TEST

static int capture_main(void *arg, void **ret)
{
	char out[256], err[256];
	int st;

	(void)arg;
	(void)ret;
	st = run_sh("echo out1; echo err1 >&2; echo out2", out, sizeof(out), err, sizeof(err));
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_str_eq(out, "out1\nout2\n");
	ck_assert_str_eq(err, "err1\n");
	return 0;
}

START_TEST(stdout_and_stderr_are_captured_separately)
{
	ck_assert_int_eq(tu_run(capture_main, NULL, NULL), 0);
}
END_TEST

/* ------------------------------------------------------- output as it comes */

static int live_main(void *arg, void **ret)
{
	/* The second line needs our answer on stdin: seeing the first one
	 * before the child exits is a matter of order, not of timing. */
	const char *argv[] = {SH, "-c", "echo one; read x; echo two $x", NULL};
	cr_subprocess *p;
	char buf[256] = "";
	size_t len = 0;
	ssize_t n;
	int st;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(spawn(argv, CR_STDIO_PIPE, CR_STDIO_PIPE, CR_STDIO_INHERIT, &p), 0);
	while (!memchr(buf, '\n', len)) {
		n = cr_read(cr_subprocess_fd(p, 1), buf + len, sizeof(buf) - 1 - len);
		ck_assert_int_gt(n, 0);
		len += (size_t)n;
	}
	buf[len] = '\0';
	ck_assert_str_eq(buf, "one\n");
	ck_assert_int_eq(cr_subprocess_poll(p, &st), -EAGAIN);
	ck_assert_int_eq(cr_write_all(cr_subprocess_fd(p, 0), "go\n", 3), 0);
	ck_assert_int_eq(cr_subprocess_close_fd(p, 0), 0);
	ck_assert_int_eq(cr_subprocess_fd(p, 0), -EBADF);
	read_all(cr_subprocess_fd(p, 1), buf, sizeof(buf));
	ck_assert_str_eq(buf, "two go\n");
	ck_assert_int_eq(cr_subprocess_wait(p, &st), 0);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_int_eq(cr_subprocess_poll(p, &st), 0);
	cr_subprocess_free(p);
	return 0;
}

START_TEST(output_is_read_as_it_comes_before_the_child_exits) { both_paths(live_main); }
END_TEST

/* ----------------------------------------------------------------- stdin */

#define CAT_BYTES (1u << 20)

struct cat_state {
	cr_subprocess *p;
	char *data;
};

static int cat_feeder_fn(void *arg, void **ret)
{
	struct cat_state *c = arg;
	int rc;

	(void)ret;
	rc = cr_write_all(cr_subprocess_fd(c->p, 0), c->data, CAT_BYTES);
	cr_subprocess_close_fd(c->p, 0);
	return rc;
}

static int stdin_main(void *arg, void **ret)
{
	const char *argv[] = {"cat", NULL}; /* found in PATH */
	struct cat_state c;
	char *back = malloc(CAT_BYTES + 1);
	cr_task *feeder;
	int st;

	(void)arg;
	(void)ret;
	c.data = malloc(CAT_BYTES);
	ck_assert_ptr_nonnull(c.data);
	ck_assert_ptr_nonnull(back);
	for (size_t i = 0; i < CAT_BYTES; i++)
		c.data[i] = (char)('a' + i % 26);
	ck_assert_int_eq(spawn(argv, CR_STDIO_PIPE, CR_STDIO_PIPE, CR_STDIO_INHERIT, &c.p), 0);
	/* Both directions at once: a 1 MiB stdin cannot fit the pipes. */
	ck_assert_int_eq(cr_spawn(cat_feeder_fn, &c, NULL, &feeder), 0);
	ck_assert_uint_eq(read_all(cr_subprocess_fd(c.p, 1), back, CAT_BYTES + 1), CAT_BYTES);
	ck_assert(memcmp(back, c.data, CAT_BYTES) == 0);
	ck_assert_int_eq(cr_task_join(feeder, NULL), 0);
	cr_task_unref(feeder);
	ck_assert_int_eq(cr_subprocess_wait(c.p, &st), 0);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_subprocess_free(c.p);
	free(c.data);
	free(back);
	return 0;
}

START_TEST(stdin_pipe_feeds_the_child_while_its_output_is_read)
{
	ck_assert_int_eq(tu_run(stdin_main, NULL, NULL), 0);
}
END_TEST

static int devnull_main(void *arg, void **ret)
{
	const char *argv[] = {"cat", NULL};
	cr_subprocess *p;
	char buf[16];
	int st;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(spawn(argv, CR_STDIO_DEVNULL, CR_STDIO_PIPE, CR_STDIO_DEVNULL, &p), 0);
	ck_assert_int_eq(cr_subprocess_fd(p, 0), -EBADF);
	ck_assert_int_eq(cr_subprocess_fd(p, 2), -EBADF);
	ck_assert_uint_eq(read_all(cr_subprocess_fd(p, 1), buf, sizeof(buf)), 0);
	ck_assert_int_eq(cr_subprocess_wait(p, &st), 0);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_subprocess_free(p);
	return 0;
}

START_TEST(devnull_stdin_gives_the_child_end_of_file)
{
	ck_assert_int_eq(tu_run(devnull_main, NULL, NULL), 0);
}
END_TEST

/* ------------------------------------------------------------ cwd and env */

static int cwd_env_main(void *arg, void **ret)
{
	const char *dir = arg;
	const char *pwd_argv[] = {"pwd", NULL};
	const char *env_argv[] = {SH, "-c", "echo \"$CRT_A|$CRT_B|$PATH\"", NULL};
	const char *envp[] = {"CRT_A=alpha", "PATH=/nowhere", NULL};
	cr_subprocess_opts o = {
		.size = sizeof(o), .argv = pwd_argv, .cwd = dir, .stdout_mode = CR_STDIO_PIPE};
	cr_subprocess *p;
	char buf[PATH_MAX + 8], want[PATH_MAX + 8];
	int st;

	(void)ret;
	ck_assert_int_eq(cr_subprocess_spawn(&o, &p), 0);
	read_all(cr_subprocess_fd(p, 1), buf, sizeof(buf));
	snprintf(want, sizeof(want), "%s\n", dir);
	ck_assert_str_eq(buf, want);
	ck_assert_int_eq(cr_subprocess_wait(p, &st), 0);
	cr_subprocess_free(p);

	/* Given: exactly that environment. */
	o.argv = env_argv;
	o.cwd = NULL;
	o.envp = envp;
	ck_assert_int_eq(cr_subprocess_spawn(&o, &p), 0);
	read_all(cr_subprocess_fd(p, 1), buf, sizeof(buf));
	ck_assert_str_eq(buf, "alpha||/nowhere\n");
	ck_assert_int_eq(cr_subprocess_wait(p, &st), 0);
	cr_subprocess_free(p);

	/* NULL: ours. */
	o.envp = NULL;
	ck_assert_int_eq(cr_subprocess_spawn(&o, &p), 0);
	read_all(cr_subprocess_fd(p, 1), buf, sizeof(buf));
	snprintf(want, sizeof(want), "|beta|%s\n", getenv("PATH"));
	ck_assert_str_eq(buf, want);
	ck_assert_int_eq(cr_subprocess_wait(p, &st), 0);
	cr_subprocess_free(p);
	return 0;
}

START_TEST(cwd_and_environment_are_the_ones_asked_for)
{
	char tmpl[] = "/tmp/crunner-cwd-XXXXXX", real[PATH_MAX];

	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	ck_assert_ptr_nonnull(realpath(tmpl, real));
	setenv("CRT_B", "beta", 1);
	unsetenv("CRT_A");
	ck_assert_int_eq(tu_run(cwd_env_main, real, NULL), 0);
	unsetenv("CRT_B");
	rmdir(real);
}
END_TEST

/* ---------------------------------------------------------- exec failures */

static int fail_main(void *arg, void **ret)
{
	const char *missing[] = {"/nonexistent/program", NULL};
	const char *unknown[] = {"crunner-no-such-program", NULL};
	const char *noexec[] = {arg, NULL};
	const char *ok[] = {"true", NULL};
	cr_subprocess_opts o = {.size = sizeof(o), .argv = ok, .cwd = "/nonexistent-dir"};
	cr_subprocess *p = NULL;

	(void)ret;
	ck_assert_int_eq(spawn(missing, 0, 0, 0, &p), -ENOENT);
	ck_assert_ptr_null(p);
	ck_assert_int_eq(spawn(unknown, 0, 0, 0, &p), -ENOENT);
	ck_assert_int_eq(spawn(noexec, 0, 0, 0, &p), -EACCES);
	ck_assert_int_eq(cr_subprocess_spawn(&o, &p), -ENOENT);
	ck_assert_ptr_nonnull(strstr(cr_last_error(), "chdir"));
	ck_assert_ptr_null(p);
	ck_assert_int_eq(spawn(NULL, 0, 0, 0, &p), -EINVAL);
	ck_assert_int_eq(spawn(ok, 7, 0, 0, &p), -EINVAL);
	/* No child was left behind by any of them. */
	assert_no_children();
	return 0;
}

START_TEST(exec_failure_is_returned_as_an_error_not_an_exit_127)
{
	char path[] = "/tmp/crunner-noexec-XXXXXX";
	const char *argv[] = {"true", NULL};
	cr_subprocess *p;
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "#!/bin/sh\n", 10), 10);
	close(fd); /* mode 0600: not executable */
	ck_assert_int_eq(tu_run(fail_main, path, NULL), 0);
	unlink(path);
	/* Outside a running loop. */
	ck_assert_int_eq(spawn(argv, 0, 0, 0, &p), -EPERM);
	ck_assert_int_eq(cr_subprocess_wait(NULL, NULL), -EPERM);
}
END_TEST

/* ------------------------------------------------- process group, signals */

static int pgroup_main(void *arg, void **ret)
{
	const char *argv[] = {"cat", NULL};
	cr_subprocess *p;
	pid_t pid;
	int st;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(spawn(argv, CR_STDIO_PIPE, CR_STDIO_DEVNULL, CR_STDIO_INHERIT, &p), 0);
	pid = cr_subprocess_pid(p);
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(getpgid(pid), pid);
	ck_assert_int_ne(getpgid(pid), getpgrp());
	ck_assert_int_eq(cr_subprocess_kill(p, 0), 0);
	ck_assert_int_eq(cr_subprocess_close_fd(p, 0), 0);
	ck_assert_int_eq(cr_subprocess_wait(p, &st), 0);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_subprocess_free(p);
	return 0;
}

START_TEST(child_leads_its_own_process_group)
{
	ck_assert_int_eq(tu_run(pgroup_main, NULL, NULL), 0);
}
END_TEST

/* Is pid gone (or a zombie nobody reaped yet)? */
static bool process_gone(pid_t pid)
{
	char path[64], buf[512], *s;
	FILE *f;
	bool gone = true;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return true;
	if (fgets(buf, sizeof(buf), f) && (s = strrchr(buf, ')')))
		gone = s[2] == 'Z' || s[2] == 'X';
	fclose(f);
	return gone;
}

static int grandchild_main(void *arg, void **ret)
{
	const char *argv[] = {SH, "-c", "sleep 100 & echo $!; wait", NULL};
	cr_subprocess *p;
	char buf[64] = "";
	size_t len = 0;
	pid_t gpid;
	int st, i;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(spawn(argv, CR_STDIO_DEVNULL, CR_STDIO_PIPE, CR_STDIO_INHERIT, &p), 0);
	while (!memchr(buf, '\n', len)) {
		ssize_t n = cr_read(cr_subprocess_fd(p, 1), buf + len, sizeof(buf) - 1 - len);

		ck_assert_int_gt(n, 0);
		len += (size_t)n;
	}
	buf[len] = '\0';
	gpid = (pid_t)atoi(buf);
	ck_assert_int_gt(gpid, 0);
	ck_assert_int_eq(getpgid(gpid), cr_subprocess_pid(p));
	ck_assert(!process_gone(gpid));
	ck_assert_int_eq(cr_subprocess_kill(p, SIGTERM), 0);
	ck_assert_int_eq(cr_subprocess_wait(p, &st), 0);
	ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
	/* The grandchild got it too; its new parent reaps it (bounded wait,
	 * not a timing assertion). */
	for (i = 0; i < 1000 && !process_gone(gpid); i++)
		ck_assert_int_eq(cr_sleep(0.01), 0);
	ck_assert(process_gone(gpid));
	cr_subprocess_free(p);
	return 0;
}

START_TEST(kill_reaches_the_whole_process_group_grandchildren_included)
{
	ck_assert_int_eq(tu_run(grandchild_main, NULL, NULL), 0);
}
END_TEST

/* ------------------------------------------------------------ opts.path */

static int path_main(void *arg, void **ret)
{
	const char *argv[] = {"a-name-of-its-own", "-c", "echo $0", NULL};
	const char *missing[] = {"sh", NULL};
	cr_subprocess_opts o = {.size = sizeof(o),
				.argv = argv,
				.path = SH,
				.stdin_mode = CR_STDIO_DEVNULL,
				.stdout_mode = CR_STDIO_PIPE,
				.stderr_mode = CR_STDIO_INHERIT};
	cr_subprocess *p;
	char out[128];
	int st;

	(void)arg;
	(void)ret;
	/* The file named by path runs; argv[0] is only the name it sees. */
	ck_assert_int_eq(cr_subprocess_spawn(&o, &p), 0);
	read_all(cr_subprocess_fd(p, 1), out, sizeof(out));
	ck_assert_str_eq(out, "a-name-of-its-own\n");
	ck_assert_int_eq(cr_subprocess_wait(p, &st), 0);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_subprocess_free(p);
	/* No PATH search for path: "sh" is a file in cwd, and /tmp has none
	 * (while argv[0] "sh" alone would have been found in PATH). */
	o.argv = missing;
	o.path = "sh";
	o.cwd = "/tmp";
	ck_assert_int_eq(cr_subprocess_spawn(&o, &p), -ENOENT);
	/* ...and a relative path is taken from cwd. */
	o.argv = argv;
	o.cwd = "/bin";
	ck_assert_int_eq(cr_subprocess_spawn(&o, &p), 0);
	read_all(cr_subprocess_fd(p, 1), out, sizeof(out));
	ck_assert_str_eq(out, "a-name-of-its-own\n");
	ck_assert_int_eq(cr_subprocess_wait(p, &st), 0);
	cr_subprocess_free(p);
	return 0;
}

START_TEST(path_names_the_file_run_and_argv0_only_its_name)
{
	both_paths(path_main);
	assert_no_children();
}
END_TEST

/* ------------------------------------------------------- parent death */

/* In a process of its own (the test's child): spawn a long sleep, tell
 * the test its pid, and die without any cleanup, as crund killed by
 * SIGKILL would. */
static int orphan_main(void *arg, void **ret)
{
	const char *argv[] = {"sleep", "1000", NULL};
	int *wfd = arg;
	cr_subprocess *p;
	pid_t pid;

	(void)ret;
	if (spawn(argv, CR_STDIO_DEVNULL, CR_STDIO_DEVNULL, CR_STDIO_INHERIT, &p) < 0)
		_exit(3);
	pid = (pid_t)cr_subprocess_pid(p);
	if (write(*wfd, &pid, sizeof(pid)) != (ssize_t)sizeof(pid))
		_exit(4);
	_exit(0);
}

START_TEST(child_is_killed_when_the_spawning_process_dies)
{
	int fds[2], st;
	pid_t mid, orphan = 0;

	/* The orphan is re-parented to us (not to init), so we can reap it
	 * and see how it ended. */
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	ck_assert_int_eq(pipe(fds), 0);
	mid = fork();
	ck_assert_int_ge(mid, 0);
	if (mid == 0) {
		close(fds[0]);
		tu_run(orphan_main, &fds[1], NULL);
		_exit(5);
	}
	close(fds[1]);
	ck_assert_int_eq(read(fds[0], &orphan, sizeof(orphan)), (ssize_t)sizeof(orphan));
	close(fds[0]);
	ck_assert_int_eq(waitpid(mid, &st, 0), mid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* Without PR_SET_PDEATHSIG the sleep would outlive its parent (and
	 * this wait would last until the suite's timeout). */
	ck_assert_int_eq(waitpid(orphan, &st, 0), orphan);
	ck_assert(WIFSIGNALED(st));
	ck_assert_int_eq(WTERMSIG(st), SIGKILL);
	assert_no_children();
}
END_TEST

/* ------------------------------------------------------------ descriptors */

static int fds_main(void *arg, void **ret)
{
	const char *argv[] = {"cat", NULL};
	cr_subprocess *p;
	char path[64];
	struct dirent *d;
	char buf[8];
	DIR *dir;
	int seen = 0, st;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(spawn(argv, CR_STDIO_PIPE, CR_STDIO_PIPE, CR_STDIO_DEVNULL, &p), 0);
	/* Once cat echoes a line, its dynamic loader is done (it opens the
	 * libraries on fd 3 for a moment after exec), and cat is blocked
	 * reading stdin: look at its descriptors from here. */
	ck_assert_int_eq(cr_write_all(cr_subprocess_fd(p, 0), "x\n", 2), 0);
	ck_assert_int_eq(cr_read(cr_subprocess_fd(p, 1), buf, sizeof(buf)), 2);
	snprintf(path, sizeof(path), "/proc/%d/fd", cr_subprocess_pid(p));
	ck_assert_ptr_nonnull(dir = opendir(path));
	while ((d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		ck_assert_msg(atoi(d->d_name) <= 2, "fd %s leaked into the child", d->d_name);
		seen |= 1 << atoi(d->d_name);
	}
	closedir(dir);
	ck_assert_int_eq(seen, 7);
	cr_subprocess_close_fd(p, 0);
	ck_assert_int_eq(cr_subprocess_wait(p, &st), 0);
	cr_subprocess_free(p);
	return 0;
}

START_TEST(no_descriptor_but_stdio_leaks_into_the_child)
{
	int leak[2], extra;

	/* Inheritable descriptors (no CLOEXEC), as careless code leaves. */
	ck_assert_int_eq(pipe(leak), 0);
	ck_assert_int_ge(extra = dup(2), 0);
	ck_assert_int_eq(fcntl(extra, F_SETFD, 0), 0);
	ck_assert_int_eq(tu_run(fds_main, NULL, NULL), 0);
	close(leak[0]);
	close(leak[1]);
	close(extra);
}
END_TEST

/* --------------------------------------------------------- many children */

#define NCHILDREN 200

static int one_child_fn(void *arg, void **ret)
{
	intptr_t i = (intptr_t)arg;
	char num[16], out[32];
	const char *sleep_argv[] = {"sleep", "0.1", NULL};
	const char *echo_argv[] = {"echo", num, NULL};
	cr_subprocess *p;
	int st, rc;

	(void)ret;
	snprintf(num, sizeof(num), "%d", (int)i);
	if (i % 2) {
		rc = spawn(sleep_argv, CR_STDIO_DEVNULL, CR_STDIO_DEVNULL, CR_STDIO_INHERIT, &p);
		if (rc < 0)
			return rc;
	} else {
		rc = spawn(echo_argv, CR_STDIO_DEVNULL, CR_STDIO_PIPE, CR_STDIO_INHERIT, &p);
		if (rc < 0)
			return rc;
		read_all(cr_subprocess_fd(p, 1), out, sizeof(out));
		ck_assert_int_eq(atoi(out), (int)i);
	}
	rc = cr_subprocess_wait(p, &st);
	cr_subprocess_free(p);
	if (rc < 0)
		return rc;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

static int many_main(void *arg, void **ret)
{
	cr_task *tasks[NCHILDREN];
	int codes[NCHILDREN];

	(void)arg;
	(void)ret;
	for (intptr_t i = 0; i < NCHILDREN; i++)
		ck_assert_int_eq(cr_spawn(one_child_fn, (void *)i, NULL, &tasks[i]), 0);
	ck_assert_int_eq(cr_gather(tasks, NCHILDREN, codes), 0);
	for (int i = 0; i < NCHILDREN; i++) {
		ck_assert_int_eq(codes[i], 0);
		cr_task_unref(tasks[i]);
	}
	return 0;
}

START_TEST(two_hundred_children_run_at_once)
{
	both_paths(many_main);
	assert_no_children();
}
END_TEST

/* ------------------------------------------------------------ cancellation */

static int waiter_fn(void *arg, void **ret)
{
	(void)ret;
	return cr_subprocess_wait(arg, NULL);
}

static int cancel_main(void *arg, void **ret)
{
	const char *argv[] = {"cat", NULL};
	cr_subprocess *p;
	cr_task *t;
	int st;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(spawn(argv, CR_STDIO_PIPE, CR_STDIO_DEVNULL, CR_STDIO_INHERIT, &p), 0);
	ck_assert_int_eq(cr_spawn(waiter_fn, p, NULL, &t), 0);
	ck_assert_int_eq(cr_yield(), 0);
	ck_assert_int_eq(cr_task_cancel(t, NULL), 0);
	ck_assert_int_eq(cr_task_join(t, NULL), -ECANCELED);
	cr_task_unref(t);
	/* The child runs on; a timeout scope bounds a wait the same way. */
	ck_assert_int_eq(cr_subprocess_poll(p, &st), -EAGAIN);
	{
		cr_timeout_scope s;
		int rc;

		ck_assert_int_eq(cr_timeout_enter(&s, 0.01), 0);
		rc = cr_subprocess_wait(p, &st);
		ck_assert_int_eq(cr_timeout_exit(&s, rc), -ETIMEDOUT);
	}
	ck_assert_int_eq(cr_subprocess_kill(p, SIGKILL), 0);
	ck_assert_int_eq(cr_subprocess_wait(p, &st), 0);
	ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	cr_subprocess_free(p);
	return 0;
}

START_TEST(cancelling_a_waiter_leaves_the_child_running)
{
	both_paths(cancel_main);
	assert_no_children();
}
END_TEST

/* A record freed while its child runs: the loop reaps the child later. */
static int detach_main(void *arg, void **ret)
{
	const char *argv[] = {"cat", NULL};
	cr_subprocess *p;
	pid_t pid;
	int i;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(spawn(argv, CR_STDIO_PIPE, CR_STDIO_DEVNULL, CR_STDIO_INHERIT, &p), 0);
	pid = cr_subprocess_pid(p);
	cr_subprocess_free(p); /* closes stdin: cat exits */
	for (i = 0; i < 1000 && kill(pid, 0) == 0; i++)
		ck_assert_int_eq(cr_sleep(0.01), 0);
	ck_assert_int_eq(kill(pid, 0), -1); /* reaped, not a zombie */
	return 0;
}

START_TEST(freeing_a_running_child_lets_the_loop_reap_it)
{
	both_paths(detach_main);
	assert_no_children();
}
END_TEST

static Suite *subprocess_suite(void)
{
	Suite *s = suite_create("subprocess");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, wait_reports_exit_code_and_signal_death);
	tcase_add_test(tc, stdout_and_stderr_are_captured_separately);
	tcase_add_test(tc, output_is_read_as_it_comes_before_the_child_exits);
	tcase_add_test(tc, stdin_pipe_feeds_the_child_while_its_output_is_read);
	tcase_add_test(tc, devnull_stdin_gives_the_child_end_of_file);
	tcase_add_test(tc, cwd_and_environment_are_the_ones_asked_for);
	tcase_add_test(tc, exec_failure_is_returned_as_an_error_not_an_exit_127);
	tcase_add_test(tc, child_leads_its_own_process_group);
	tcase_add_test(tc, kill_reaches_the_whole_process_group_grandchildren_included);
	tcase_add_test(tc, no_descriptor_but_stdio_leaks_into_the_child);
	tcase_add_test(tc, two_hundred_children_run_at_once);
	tcase_add_test(tc, cancelling_a_waiter_leaves_the_child_running);
	tcase_add_test(tc, freeing_a_running_child_lets_the_loop_reap_it);
	tcase_add_test(tc, path_names_the_file_run_and_argv0_only_its_name);
	tcase_add_test(tc, child_is_killed_when_the_spawning_process_dies);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	/* The child of a write to a closed pipe would kill us otherwise. */
	signal(SIGPIPE, SIG_IGN);
	return tu_main(subprocess_suite());
}
