/*
 * subprocess.c — child processes on the loop (asyncio's
 * create_subprocess_exec): spawn, pipes, await the exit, signals.
 *
 * Spawning: clone(CLONE_VM | CLONE_VFORK) on a small stack of its own, the
 * way glibc's posix_spawn works inside.  The parent is suspended only
 * until the child calls execve (no page tables are copied, so the cost
 * does not grow with the parent's memory, unlike fork), and, unlike
 * posix_spawn, the child runs our code before exec: it can ask for
 * PR_SET_PDEATHSIG (killed when crund dies) and close every descriptor
 * with close_range, which posix_spawn's file actions cannot express.
 * The child shares our memory until exec, so it only makes raw syscalls
 * (no malloc, no locks, no stdio) with every signal blocked in the parent
 * around the clone; it resets every disposition to SIG_DFL before it
 * unblocks them (a handler of ours must never run in the child).
 *
 * Errors before exec (chdir, dup2, execve itself) travel back through a
 * CLOEXEC pipe (a step number and an errno): the spawn call returns them,
 * and no child exits 127 for the caller to guess about.  Under valgrind
 * the clone becomes a plain fork and the same pipe still works.
 *
 * Exit: a pidfd (Linux >= 5.3) per child, watched by a persistent
 * libevent event; when it becomes readable the child is reaped with
 * waitpid(pid, WNOHANG) and its cr_event is set, so cr_subprocess_wait is
 * a cancellable cr_event_wait.  Without pidfd_open (ENOSYS, or the test
 * switch) a SIGCHLD handler on the loop polls every live child with
 * waitpid(pid, WNOHANG): O(children) per SIGCHLD, acceptable for a
 * fallback, and it never reaps a child that is not ours (no waitpid(-1)).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "loop.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* the same number on every architecture */
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/* The child's stack: its code is a few frames of raw syscalls plus a
 * getdents buffer; generous for sanitizer builds. */
#define CHILD_STACK_SIZE (64 * 1024)

struct cr_subprocess {
	cr_loop *loop;  /* NULL once the loop closed */
	bool holds_ref; /* on loop: until closed or detached */
	pid_t pid;
	int pidfd;                         /* -1 in SIGCHLD mode or once reaped */
	struct event *ev;                  /* on pidfd */
	int fds[3];                        /* our ends of the stdio pipes, -1 when none */
	cr_event *exited;                  /* set once reaped (or the loop closed) */
	int status;                        /* waitpid status, once reaped */
	int wait_error;                    /* 0, or -ECHILD (someone else reaped it) */
	bool reaped;                       /* status (or wait_error) is final */
	bool detached;                     /* freed by its owner: free on exit */
	struct cr_subprocess *prev, *next; /* the loop's live children */
};

/* Per loop (CR__SLOT_SUBPROCESS): the children not yet reaped. */
struct registry {
	struct cr_subprocess *head;
	bool sigchld; /* SIGCHLD handler installed */
};

static bool force_sigchld; /* test switch: behave as if pidfd_open were ENOSYS */
static bool no_pidfd;      /* pidfd_open said ENOSYS once */

void cr__test_subprocess_force_sigchld(bool on) { force_sigchld = on; }

static struct registry *registry_get(cr_loop *loop, bool create)
{
	struct registry *reg = cr__loop_slot(loop, CR__SLOT_SUBPROCESS);

	if (!reg && create) {
		reg = cr__calloc(1, sizeof(*reg));
		if (reg)
			cr__loop_set_slot(loop, CR__SLOT_SUBPROCESS, reg);
	}
	return reg;
}

static void registry_unlink(struct registry *reg, cr_subprocess *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else if (reg->head == p)
		reg->head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->prev = p->next = NULL;
}

static void close_fds(cr_subprocess *p)
{
	for (int i = 0; i < 3; i++) {
		if (p->fds[i] >= 0)
			close(p->fds[i]);
		p->fds[i] = -1;
	}
}

static void destroy(cr_subprocess *p)
{
	if (p->ev)
		event_free(p->ev);
	if (p->pidfd >= 0)
		close(p->pidfd);
	close_fds(p);
	cr_event_free(p->exited);
	if (p->holds_ref)
		cr_loop_unref(p->loop);
	free(p);
}

/* The child is gone (reaped, or lost to someone else's wait): stop
 * watching it and wake its waiters; a detached one is freed. */
static void child_done(cr_subprocess *p, int status, int err)
{
	struct registry *reg = registry_get(p->loop, false);

	p->status = status;
	p->wait_error = err;
	p->reaped = true;
	if (reg)
		registry_unlink(reg, p);
	if (p->ev) {
		event_free(p->ev);
		p->ev = NULL;
	}
	if (p->pidfd >= 0) {
		close(p->pidfd);
		p->pidfd = -1;
	}
	if (p->detached)
		destroy(p);
	else
		cr_event_set(p->exited);
}

/* Reap p if it has exited.  Returns true when it is done. */
static bool try_reap(cr_subprocess *p)
{
	int status = 0;
	pid_t r;

	do
		r = waitpid(p->pid, &status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return false;
	/* ECHILD: SIGCHLD is SIG_IGN (the kernel reaped it) or another
	 * waitpid got it first; the status is lost. */
	child_done(p, status, r < 0 ? -errno : 0);
	return true;
}

static void pidfd_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	try_reap(arg);
}

static void sigchld_cb(void *arg)
{
	struct registry *reg = arg;
	cr_subprocess *p, *next;

	for (p = reg->head; p; p = next) {
		next = p->next; /* try_reap may unlink and free p */
		try_reap(p);
	}
}

void cr__subprocess_loop_closed(cr_loop *loop)
{
	struct registry *reg = registry_get(loop, false);

	if (!reg)
		return;
	/* Children still running: stop watching them (the base goes away).
	 * Detached ones are freed (the child becomes a zombie once it exits,
	 * until crund exits); owned ones stay with their owner, whose wait
	 * now returns -ESHUTDOWN. */
	while (reg->head) {
		cr_subprocess *p = reg->head;

		registry_unlink(reg, p);
		if (p->ev) {
			event_free(p->ev);
			p->ev = NULL;
		}
		if (p->detached) {
			destroy(p);
		} else {
			cr_event_set(p->exited);
			p->holds_ref = false;
			p->loop = cr_loop_unref(p->loop);
		}
	}
	cr__loop_set_slot(loop, CR__SLOT_SUBPROCESS, NULL);
	free(reg);
}

/* --------------------------------------------------------------- child */

/* What the child does before exec, all in raw syscalls (see the top). */
struct child_args {
	const char *path;
	char *const *argv;
	char *const *envp;
	const char *cwd;
	int stdio[3]; /* the fd to dup onto 0, 1, 2 */
	int errfd;    /* write end of the CLOEXEC error pipe */
	pid_t parent;
	int maxfd; /* for the last-resort close loop */
};

/* The step that failed, sent back with its errno. */
enum { STEP_SETPGID = 1, STEP_DUP, STEP_CHDIR, STEP_CLOSE, STEP_EXEC, STEP_PDEATHSIG };

/* For the code the child runs: ASan's instrumentation would touch shadow
 * memory (shared with the parent) from a stack it does not know, and
 * nothing here needs checking. */
#define CHILD_CODE __attribute__((no_sanitize_address))

static CHILD_CODE __attribute__((noreturn)) void child_fail(const struct child_args *a, int step)
{
	int msg[2] = {step, errno};

	while (write(a->errfd, msg, sizeof(msg)) < 0 && errno == EINTR)
		;
	_exit(127);
}

struct linux_dirent64 {
	unsigned long long d_ino;
	long long d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* Close every fd >= 3 but keep: close_range (Linux 5.9), else the list
 * of /proc/self/fd read with getdents64 (no malloc: opendir allocates),
 * else every number up to the limit. */
static CHILD_CODE int close_others(const struct child_args *a)
{
	unsigned keep = (unsigned)a->errfd;
	char buf[1024];
	int dfd;
	long n;

	if ((keep <= 3 || syscall(SYS_close_range, 3U, keep - 1, 0U) == 0) &&
	    syscall(SYS_close_range, keep + 1, ~0U, 0U) == 0)
		return 0;
	dfd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/fd",
			   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		while ((n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0) {
			for (long off = 0; off < n;) {
				struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
				int fd = 0;

				off += d->d_reclen;
				if (d->d_name[0] < '0' || d->d_name[0] > '9')
					continue;
				for (const char *c = d->d_name; *c; c++)
					fd = fd * 10 + (*c - '0');
				if (fd >= 3 && fd != dfd && fd != a->errfd)
					close(fd);
			}
		}
		close(dfd);
		if (n == 0)
			return 0;
	}
	for (int fd = 3; fd < a->maxfd; fd++)
		if (fd != a->errfd)
			close(fd);
	return 0;
}

static CHILD_CODE int child_main(void *arg)
{
	const struct child_args *a = arg;
	struct sigaction sa;
	sigset_t none;
	int src[3];

	/* Dispositions first, while every signal is still blocked. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &sa, NULL); /* EINVAL for glibc's internal ones */
	if (setpgid(0, 0) < 0)
		child_fail(a, STEP_SETPGID);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		child_fail(a, STEP_PDEATHSIG);
	/* The parent may have died before the prctl: then no signal comes. */
	if (getppid() != a->parent)
		_exit(127);
	/* Move sources that sit on 0..2 out of the way first, so that one
	 * dup2 cannot clobber the source of the next. */
	for (int i = 0; i < 3; i++) {
		src[i] = a->stdio[i];
		if (src[i] >= 0 && src[i] < 3 && src[i] != i) {
			src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3);
			if (src[i] < 0)
				child_fail(a, STEP_DUP);
		}
	}
	for (int i = 0; i < 3; i++) {
		if (src[i] < 0)
			continue; /* inherit */
		if (src[i] == i) {
			if (fcntl(i, F_SETFD, 0) < 0)
				child_fail(a, STEP_DUP);
		} else if (dup2(src[i], i) < 0) {
			child_fail(a, STEP_DUP);
		}
	}
	if (a->cwd && chdir(a->cwd) < 0)
		child_fail(a, STEP_CHDIR);
	close_others(a);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(a->path, a->argv, a->envp);
	child_fail(a, STEP_EXEC);
}

/* --------------------------------------------------------------- parent */

/* execvp's search, done in the parent (the child must not allocate): a
 * name without '/' is looked up in PATH, the child's PATH when an
 * environment is given (as Python's subprocess does), else ours.
 * *ret_path is malloc'd.  -ENOENT, -EACCES (found but not executable). */
static int find_program(const char *name, char *const *envp, char **ret_path)
{
	const char *path = NULL;
	int err = -ENOENT;

	if (strchr(name, '/')) {
		*ret_path = cr__strdup(name);
		return *ret_path ? 0 : -ENOMEM;
	}
	if (!*name)
		return -ENOENT;
	if (envp) {
		for (char *const *e = envp; *e; e++)
			if (strncmp(*e, "PATH=", 5) == 0)
				path = *e + 5;
	} else {
		path = getenv("PATH");
	}
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *s = path;; s++) {
		const char *end = strchr(s, ':');
		size_t dlen = end ? (size_t)(end - s) : strlen(s);
		char *cand = cr__malloc(dlen + strlen(name) + 3);
		struct stat st;

		if (!cand)
			return -ENOMEM;
		/* An empty entry is the current directory, as in execvp. */
		snprintf(cand, dlen + strlen(name) + 3, "%.*s%s%s", (int)dlen, dlen ? s : ".", "/",
			 name);
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(cand, X_OK) == 0) {
				*ret_path = cand;
				return 0;
			}
			err = -EACCES;
		}
		free(cand);
		if (!end)
			break;
		s = end;
	}
	return err;
}

static const char *step_name(int step)
{
	switch (step) {
	case STEP_SETPGID:
		return "setpgid";
	case STEP_PDEATHSIG:
		return "prctl(PR_SET_PDEATHSIG)";
	case STEP_DUP:
		return "redirecting stdio";
	case STEP_CHDIR:
		return "chdir";
	case STEP_CLOSE:
		return "closing descriptors";
	default:
		return "exec";
	}
}

#define OPT_HAS(o, f) ((o)->size >= offsetof(cr_subprocess_opts, f) + sizeof((o)->f))

int cr_subprocess_spawn(const cr_subprocess_opts *o, cr_subprocess **ret)
{
	cr_loop *loop = cr_loop_current();
	struct child_args a = {.errfd = -1};
	int pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
	int errpipe[2] = {-1, -1}, devnull = -1, rc, msg[2];
	int modes[3];
	char *path = NULL;
	void *stack = MAP_FAILED;
	cr_subprocess *p = NULL;
	struct registry *reg;
	struct rlimit rl;
	sigset_t all, old;
	pid_t pid;
	ssize_t n;

	if (!o || !ret || !o->argv || !o->argv[0] ||
	    o->size < offsetof(cr_subprocess_opts, stderr_mode) + sizeof(int))
		return cr__error(-EINVAL,
				 "cr_subprocess_spawn: opts, opts.argv[0] and ret are required");
	modes[0] = o->stdin_mode;
	modes[1] = o->stdout_mode;
	modes[2] = o->stderr_mode;
	for (int i = 0; i < 3; i++)
		if (modes[i] < CR_STDIO_INHERIT || modes[i] > CR_STDIO_PIPE)
			return cr__error(-EINVAL,
					 "cr_subprocess_spawn: bad stdio mode %d for fd %d",
					 modes[i], i);
	if (!loop || loop->closed)
		return cr__error(-EPERM,
				 "cr_subprocess_spawn: no running event loop on this thread");
	if (!cr_loop_event_base(loop))
		return cr__error(-EIO, "libevent: no event base to watch a child");
	if (!(reg = registry_get(loop, true)))
		return cr__error(-ENOMEM, "out of memory spawning %s", o->argv[0]);

	if (OPT_HAS(o, path) && o->path) {
		if (!(path = cr__strdup(o->path)))
			return cr__error(-ENOMEM, "out of memory spawning %s", o->path);
	} else if ((rc = find_program(o->argv[0], (char *const *)o->envp, &path)) < 0) {
		return cr__error(rc, "cannot run %s: %s", o->argv[0], cr_strerror(rc));
	}
	p = cr__calloc(1, sizeof(*p));
	if (!p || cr_event_new(&p->exited) < 0) {
		rc = cr__error(-ENOMEM, "out of memory spawning %s", o->argv[0]);
		goto fail;
	}
	p->pidfd = -1;
	p->fds[0] = p->fds[1] = p->fds[2] = -1;

	/* SIGCHLD mode: the handler goes in before the child exists, so no
	 * exit can be missed. */
	if ((force_sigchld || no_pidfd) && !reg->sigchld) {
		if ((rc = cr_loop_add_signal_handler(loop, SIGCHLD, sigchld_cb, reg)) < 0)
			goto fail;
		reg->sigchld = true;
	}

	for (int i = 0; i < 3; i++) {
		a.stdio[i] = -1;
		if (modes[i] == CR_STDIO_PIPE) {
			if (pipe2(pipes[i], O_CLOEXEC) < 0) {
				rc = cr__error(-errno, "cannot make a pipe for %s: %m", o->argv[0]);
				goto fail;
			}
			/* [0] is the read end: the child's for stdin, ours else. */
			a.stdio[i] = pipes[i][i == 0 ? 0 : 1];
			if ((rc = cr_fd_set_nonblocking(pipes[i][i == 0 ? 1 : 0], true)) < 0)
				goto fail;
		} else if (modes[i] == CR_STDIO_DEVNULL) {
			if (devnull < 0 && (devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
				rc = cr__error(-errno, "cannot open /dev/null: %m");
				goto fail;
			}
			a.stdio[i] = devnull;
		}
	}
	if (pipe2(errpipe, O_CLOEXEC) < 0) {
		rc = cr__error(-errno, "cannot make a pipe for %s: %m", o->argv[0]);
		goto fail;
	}
	stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED) {
		rc = cr__error(-ENOMEM, "out of memory spawning %s", o->argv[0]);
		goto fail;
	}
	a.path = path;
	a.argv = (char *const *)o->argv;
	a.envp = o->envp ? (char *const *)o->envp : environ;
	a.cwd = OPT_HAS(o, cwd) ? o->cwd : NULL;
	a.errfd = errpipe[1];
	a.parent = getpid();
	a.maxfd = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
				  rl.rlim_cur < INT_MAX
			  ? (int)rl.rlim_cur
			  : 65536;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = clone(child_main, (char *)stack + CHILD_STACK_SIZE, CLONE_VM | CLONE_VFORK | SIGCHLD,
		    &a);
	rc = pid < 0 ? -errno : 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0) {
		cr__error(rc, "cannot start %s: %s", o->argv[0], cr_strerror(rc));
		goto fail;
	}
	p->pid = pid;
	/* Under a plain fork (valgrind) the child may not have run yet. */
	setpgid(pid, pid);
	close(errpipe[1]);
	errpipe[1] = -1;
	do
		n = read(errpipe[0], msg, sizeof(msg));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(msg)) {
		rc = -msg[1];
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		if (msg[0] == STEP_CHDIR)
			cr__error(rc, "cannot run %s: chdir to %s: %s", o->argv[0], a.cwd,
				  cr_strerror(rc));
		else
			cr__error(rc, "cannot run %s: %s: %s", o->argv[0], step_name(msg[0]),
				  cr_strerror(rc));
		goto fail;
	}

	/* The child runs: from here on nothing may fail back to the caller
	 * without the child being handled, so watching it comes first. */
	p->loop = cr_loop_ref(loop);
	p->holds_ref = true;
	if (!force_sigchld && !no_pidfd) {
		p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (p->pidfd < 0 && errno == ENOSYS)
			no_pidfd = true;
		else if (p->pidfd >= 0)
			fcntl(p->pidfd, F_SETFD, FD_CLOEXEC);
	}
	if (p->pidfd >= 0) {
		p->ev = event_new(loop->base, p->pidfd, EV_READ | EV_PERSIST, pidfd_cb, p);
		if (!p->ev || event_add(p->ev, NULL) != 0) {
			rc = cr__error(-ENOMEM, "cannot watch child %d", (int)pid);
			goto fail_child;
		}
	} else if (!reg->sigchld) {
		/* pidfd_open just failed for the first time. */
		if ((rc = cr_loop_add_signal_handler(loop, SIGCHLD, sigchld_cb, reg)) < 0)
			goto fail_child;
		reg->sigchld = true;
	}
	p->next = reg->head;
	if (reg->head)
		reg->head->prev = p;
	reg->head = p;
	if (!p->ev)
		try_reap(p); /* SIGCHLD mode: it may be gone already */

	for (int i = 0; i < 3; i++) {
		if (modes[i] != CR_STDIO_PIPE)
			continue;
		p->fds[i] = pipes[i][i == 0 ? 1 : 0];
		close(pipes[i][i == 0 ? 0 : 1]);
	}
	if (devnull >= 0)
		close(devnull);
	close(errpipe[0]);
	munmap(stack, CHILD_STACK_SIZE);
	free(path);
	*ret = p;
	return 0;

fail_child:
	kill(-pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
fail:
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 2; j++)
			if (pipes[i][j] >= 0)
				close(pipes[i][j]);
	if (devnull >= 0)
		close(devnull);
	for (int j = 0; j < 2; j++)
		if (errpipe[j] >= 0)
			close(errpipe[j]);
	if (stack != MAP_FAILED)
		munmap(stack, CHILD_STACK_SIZE);
	free(path);
	if (p)
		destroy(p);
	return rc;
}

int cr_subprocess_wait(cr_subprocess *p, int *ret_status)
{
	int rc;

	if (!cr_current_task())
		return cr__error(-EPERM, "cr_subprocess_wait: must be called from a task");
	if (!p)
		return cr__error(-EINVAL, "cr_subprocess_wait: p is NULL");
	if (!p->reaped) {
		if (p->loop && p->loop != cr_task_loop(cr_current_task()))
			return cr__error(-EINVAL,
					 "cr_subprocess_wait: the child belongs to another loop");
		if (!p->loop)
			return cr__error(-ESHUTDOWN, "cr_subprocess_wait: its loop was closed");
		if ((rc = cr_event_wait(p->exited)) < 0)
			return rc;
		if (!p->reaped)
			return cr__error(-ESHUTDOWN, "cr_subprocess_wait: its loop was closed");
	}
	if (p->wait_error)
		return cr__error(p->wait_error,
				 "the exit status of child %d was lost (reaped elsewhere)",
				 (int)p->pid);
	if (ret_status)
		*ret_status = p->status;
	return 0;
}

int cr_subprocess_poll(cr_subprocess *p, int *ret_status)
{
	if (!p)
		return cr__error(-EINVAL, "cr_subprocess_poll: p is NULL");
	if (!p->reaped && p->loop && !p->ev)
		try_reap(p); /* SIGCHLD mode between signals */
	if (!p->reaped)
		return -EAGAIN;
	if (p->wait_error)
		return p->wait_error;
	if (ret_status)
		*ret_status = p->status;
	return 0;
}

int cr_subprocess_kill(cr_subprocess *p, int sig)
{
	if (!p || sig < 0 || sig >= NSIG)
		return cr__error(-EINVAL, "cr_subprocess_kill: bad argument");
	/* The group outlives its leader while a member lives, and its number
	 * cannot be reused meanwhile: after the leader was reaped this still
	 * reaches what it left behind, which is what a cancel wants. */
	if (kill(-p->pid, sig) < 0)
		return cr__error(-errno, "cannot signal process group %d: %m", (int)p->pid);
	return 0;
}

int cr_subprocess_pid(const cr_subprocess *p) { return p ? (int)p->pid : -EINVAL; }

int cr_subprocess_fd(const cr_subprocess *p, int stream)
{
	if (!p || stream < 0 || stream > 2)
		return -EINVAL;
	return p->fds[stream] >= 0 ? p->fds[stream] : -EBADF;
}

int cr_subprocess_close_fd(cr_subprocess *p, int stream)
{
	if (!p || stream < 0 || stream > 2)
		return cr__error(-EINVAL, "cr_subprocess_close_fd: bad argument");
	if (p->fds[stream] < 0)
		return cr__error(-EBADF, "cr_subprocess_close_fd: stream %d is not a pipe", stream);
	close(p->fds[stream]);
	p->fds[stream] = -1;
	return 0;
}

cr_subprocess *cr_subprocess_free(cr_subprocess *p)
{
	if (!p)
		return NULL;
	close_fds(p);
	if (p->reaped || !p->loop) {
		destroy(p);
		return NULL;
	}
	/* Still running: the loop reaps it when it exits, then frees it.  It
	 * no longer keeps the loop alive (the close hook frees it). */
	p->detached = true;
	if (try_reap(p))
		return NULL; /* freed */
	p->holds_ref = false;
	cr_loop_unref(p->loop); /* the last reference closes the loop, whose
	                         * hook frees p */
	return NULL;
}
