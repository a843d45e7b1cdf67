/*
 * exec.c — the bundled `exec` plugin: job `run` runs a command.
 *
 *   {"plugin":"exec","job":"run","args":{"argv":["make","-C","/src"]}}
 *   → {"exit_code":0,"stdout":"...","stderr":"...","truncated":{...},"duration":1.2}
 *
 * What it gives a caller is running any program the operator allowed, as
 * crund's user, with the caller's arguments, environment and stdin: the
 * descriptor says CRUND_PLUGIN_RUNS_COMMANDS, so crund loads it only with
 * --allow-command-plugins, and a command runs only when its program
 * matches an `exec-allow` pattern (none by default).  The program checked
 * is the file that runs: argv[0] is resolved against the PATH of the
 * job's own environment, made absolute and normalised, matched, and that
 * very path is executed (cr_subprocess_opts.path).  With "shell": true
 * the program is /bin/sh, so allowing /bin/sh allows every command.  The
 * check runs at submission (a 400 naming the program) and again when the
 * job starts (a queued or restarted job meets today's list).
 *
 * The process: its own process group (libcrunner's spawn), SIGKILL if
 * crund dies (PR_SET_PDEATHSIG), no descriptor but 0-2.  stdout and
 * stderr are read as they come by one task each: every line goes to the
 * job's log under its stream's name (crunctl log -f, /events), and each
 * stream keeps its first and last max_output_bytes/2 bytes for the
 * result.  stdin, when given, is written by a third task.
 *
 * Ending: cancel, the job's timeout, the plugin's `timeout` and daemon
 * shutdown all stop the whole group the same way: kill_signal to the
 * group, then SIGKILL once kill_grace has passed with the leader or any
 * member still there (at shutdown the grace is at most SHUTDOWN_GRACE,
 * so the cleanup fits in the daemon's bound for cancelled jobs).  A job
 * owns its group: when the command exits and leaves members behind
 * (`sleep 100 &`), they are stopped the same way before the job ends, as
 * systemd does with a service's control group.  The job returns only when
 * the leader was reaped and the group is gone, so no process of a
 * cancelled job survives it -- except one that left the group on purpose
 * (setsid, or a double fork into a new session): a process group cannot
 * hold it.  Use the systemd unit (its cgroup kills everything at stop)
 * for that.  Once the group is gone, output still held open by such an
 * escapee is read for at most DRAIN_BOUND seconds, then dropped.
 *
 * Uses only crund/plugin.h and crunner.h, like every plugin.
 */
#define _GNU_SOURCE /* environ, strcasecmp */
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <crund/plugin.h>

/* Defaults and limits of the arguments (their specs below repeat them). */
#define DEFAULT_MAX_OUTPUT (64 * 1024)        /* bytes kept per stream */
#define MAX_OUTPUT_LIMIT   (16 * 1024 * 1024) /* largest max_output_bytes */
#define MAX_ARGV           4096               /* argv entries */
#define MAX_ENV            4096               /* env entries */
#define LOG_LINE_MAX       4096               /* a longer line is logged in pieces */
#define READ_CHUNK         16384
#define SHUTDOWN_GRACE     5.0  /* s: the daemon waits 10 s for cancelled jobs */
#define GROUP_POLL         0.02 /* s between looks at a dying group */
#define DRAIN_BOUND        2.0  /* s to read output once the group is gone */
#define MINIMAL_PATH       "/usr/local/bin:/usr/bin:/bin"
#define SHELL              "/bin/sh"

/* Plugin state: the allowlist (borrowed from the daemon for its life)
 * and how long spawns took (awaited: libcrunner clones on its spawner
 * threads while the loop runs on; logged at fini, bench/exec.sh reads
 * it). */
struct exec_state {
	const char *const *allow;
	unsigned long spawns;
	double spawn_max, spawn_sum; /* s a spawn took (awaited) */
};

static double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ UTF-8 */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid
 * (overlong forms, surrogates and code points above U+10FFFF included). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* A command's bytes as valid UTF-8 (JSON strings must be): each invalid
 * byte becomes U+FFFD.  Returns s itself when it is valid already, else a
 * malloc'd copy (*ret_len its length); NULL when out of memory. */
static const char *utf8_clean(const char *s, size_t n, size_t *ret_len, char **ret_alloc)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, k;
	char *out;

	*ret_alloc = NULL;
	while (i < n && (k = utf8_seq(u + i, n - i)))
		i += k;
	if (i == n) {
		*ret_len = n;
		return s;
	}
	if (!(out = malloc(n * 3 + 1)))
		return NULL;
	memcpy(out, s, i);
	size_t o = i;
	while (i < n) {
		if ((k = utf8_seq(u + i, n - i))) {
			memcpy(out + o, s + i, k);
			o += k;
			i += k;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	*ret_len = o;
	*ret_alloc = out;
	return out;
}

/* ------------------------------------------------------------ signals */

static const struct {
	const char *name;
	int sig;
} signals[] = {
	{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ABRT", SIGABRT},
	{"KILL", SIGKILL}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"PIPE", SIGPIPE},
	{"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},
};

/* "TERM", "SIGTERM", "15" or 15 → the number; -EINVAL otherwise. */
static int parse_signal(const json_t *v)
{
	const char *s;
	char *end;
	long n;

	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		return i >= 1 && i < NSIG ? (int)i : -EINVAL;
	}
	if (!(s = json_string_value(v)) || !*s)
		return -EINVAL;
	n = strtol(s, &end, 10);
	if (*end == '\0')
		return n >= 1 && n < NSIG ? (int)n : -EINVAL;
	if (!strncasecmp(s, "SIG", 3))
		s += 3;
	for (size_t i = 0; i < sizeof signals / sizeof *signals; i++)
		if (!strcasecmp(s, signals[i].name))
			return signals[i].sig;
	return -EINVAL;
}

static const char *signal_name(int sig)
{
	for (size_t i = 0; i < sizeof signals / sizeof *signals; i++)
		if (signals[i].sig == sig)
			return signals[i].name;
	return NULL;
}

/* "SIGTERM", or "signal 35" (in a thread-local buffer) for messages. */
static const char *signal_label(int sig)
{
	static __thread char buf[32];
	const char *name = signal_name(sig);

	if (name)
		snprintf(buf, sizeof buf, "SIG%s", name);
	else
		snprintf(buf, sizeof buf, "signal %d", sig);
	return buf;
}

/* ------------------------------------------------------------ the command */

/* A submission's arguments made ready to spawn.  Strings are borrowed
 * from the job's arguments unless noted. */
struct cmd {
	const char **argv; /* malloc'd array */
	char **envp;       /* malloc'd array of malloc'd "K=V" */
	size_t n_env;
	char *path;      /* malloc'd: the absolute, normalised file to run */
	const char *cwd; /* NULL: crund's */
	const char *stdin_text;
	size_t stdin_len;
	double timeout; /* 0: none */
	int kill_signal;
	double kill_grace;
	size_t max_output;
};

static void cmd_free(struct cmd *c)
{
	free(c->argv);
	for (size_t i = 0; i < c->n_env; i++)
		free(c->envp[i]);
	free(c->envp);
	free(c->path);
	memset(c, 0, sizeof(*c));
}

/* Why prepare() refused: the code and a sentence (the check's error). */
struct why {
	char code[48];
	char message[256];
};

__attribute__((format(printf, 3, 4))) static int refuse(struct why *w, const char *code,
							const char *fmt, ...)
{
	va_list ap;
	snprintf(w->code, sizeof w->code, "%s", code);
	va_start(ap, fmt);
	vsnprintf(w->message, sizeof w->message, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int env_add(struct cmd *c, const char *key, size_t klen, const char *val)
{
	size_t vlen = strlen(val);
	char *kv = malloc(klen + vlen + 2);

	if (!kv)
		return -ENOMEM;
	memcpy(kv, key, klen);
	kv[klen] = '=';
	memcpy(kv + klen + 1, val, vlen + 1);
	/* a later value for the same name replaces the earlier one */
	for (size_t i = 0; i < c->n_env; i++)
		if (!strncmp(c->envp[i], kv, klen + 1)) {
			free(c->envp[i]);
			c->envp[i] = kv;
			return 0;
		}
	c->envp[c->n_env++] = kv;
	c->envp[c->n_env] = NULL;
	return 0;
}

static const char *env_get(const struct cmd *c, const char *key)
{
	size_t klen = strlen(key);
	for (size_t i = 0; i < c->n_env; i++)
		if (!strncmp(c->envp[i], key, klen) && c->envp[i][klen] == '=')
			return c->envp[i] + klen + 1;
	return NULL;
}

/* Variables that make a program (the dynamic loader, a shell, an
 * interpreter) run code or load files of the caller's choice: with them
 * an allowed bash script would run whatever the caller sends (BASH_ENV=
 * /dev/stdin and its stdin).  A caller's `env` may not set them (sudo's
 * list, shortened, with the hooks of common interpreters and tools: git,
 * Lua, Node, Ruby, Java, OpenSSL, pagers; an operator who needs one sets
 * it in a wrapper).  A deny list cannot know every program's variables:
 * README says to allow commands that are safe with any environment. */
static bool env_runs_code(const char *name)
{
	static const char *const prefixes[] = {"LD_",  "BASH_FUNC_", "_RLD",   "DYLD_",
					       "LUA_", "GIT_",       "NODE_",  "PERL5",
					       "RUBY", "OPENSSL_",   "GCONV_", "JDK_JAVA_"};
	static const char *const names[] = {
		"BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "IFS", "CDPATH", "GLOBIGNORE",
		"FPATH", "ZDOTDIR", "NULLCMD", "READNULLCMD", "PERL5LIB", "PERLLIB", "PERL5OPT",
		"PERL5DB", "PERLIO_DEBUG", "PYTHONSTARTUP", "PYTHONPATH", "PYTHONHOME",
		"PYTHONINSPECT", "PYTHONUSERBASE", "RUBYLIB", "RUBYOPT", "NODE_OPTIONS",
		"JAVA_TOOL_OPTIONS", "GCONV_PATH", "LOCPATH", "NLSPATH", "HOSTALIASES",
		"RES_OPTIONS", "LOCALDOMAIN", "TERMINFO", "TERMINFO_DIRS", "TERMCAP", "TERMPATH",
		"TMPPREFIX",
		/* a warning filter names a module to import, a breakpoint hook a
		 * callable, a browser or pager a command line */
		"PYTHONWARNINGS", "PYTHONBREAKPOINT", "PYTHONPLATLIBDIR", "PYTHONEXECUTABLE",
		"_JAVA_OPTIONS", "JAVA_OPTIONS", "CLASSPATH", "GLIBC_TUNABLES", "BROWSER", "PAGER",
		"MANPAGER", "EDITOR", "VISUAL", "LESSOPEN", "LESSCLOSE", "SSH_ASKPASS",
		"SUDO_ASKPASS", "TCLLIBPATH", "PROMPT_COMMAND", "SSLKEYLOGFILE"};
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (!strncmp(name, prefixes[i], strlen(prefixes[i])))
			return true;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(name, names[i]))
			return true;
	return false;
}

/* The job's environment: crund's own (inherit_env) or a minimal one,
 * then the caller's `env` over it. */
static int build_env(struct cmd *c, const json_t *args, struct why *w)
{
	const json_t *env = json_object_get(args, "env");
	bool inherit = json_is_true(json_object_get(args, "inherit_env"));
	size_t n = 3 + (env ? json_object_size(env) : 0);
	const char *key;
	json_t *v;
	int rc = 0;

	if (env && !json_is_object(env))
		return refuse(w, "invalid_args", "env must be an object of strings");
	if (env && json_object_size(env) > MAX_ENV)
		return refuse(w, "invalid_args", "env has more than %d entries", MAX_ENV);
	if (inherit)
		for (char **e = environ; *e; e++)
			n++;
	if (!(c->envp = calloc(n + 1, sizeof *c->envp)))
		return -ENOMEM;
	if (inherit) {
		for (char **e = environ; *e && rc == 0; e++) {
			const char *eq = strchr(*e, '=');
			if (eq)
				rc = env_add(c, *e, (size_t)(eq - *e), eq + 1);
		}
	} else {
		const char *home = getenv("HOME");
		rc = env_add(c, "PATH", 4, MINIMAL_PATH);
		if (rc == 0)
			rc = env_add(c, "LANG", 4, "C.UTF-8");
		if (rc == 0)
			rc = env_add(c, "HOME", 4, home && *home ? home : "/");
	}
	json_object_foreach((json_t *)env, key, v)
	{
		if (rc < 0)
			break;
		if (!*key || strchr(key, '='))
			return refuse(w, "invalid_args",
				      "env: '%.64s' is not a variable name (empty or with '=')",
				      key);
		if (!json_is_string(v))
			return refuse(w, "invalid_args", "env: the value of %.64s is not a string",
				      key);
		if (env_runs_code(key))
			return refuse(
				w, "env_not_allowed",
				"env: %.64s would let the caller choose code the program runs "
				"(the loader's, a shell's or an interpreter's variables may not "
				"be set by a job)",
				key);
		rc = env_add(c, key, strlen(key), json_string_value(v));
	}
	return rc;
}

/* Lexical normalisation of an absolute path in place: no "//", "/./" or
 * "/../" (above the root stays the root).  Symbolic links stay as they
 * are: the operator's patterns name the paths people type. */
static void normalise(char *p)
{
	char *out = p, *s = p;

	while (*s) {
		while (*s == '/')
			s++;
		char *seg = s;
		while (*s && *s != '/')
			s++;
		size_t len = (size_t)(s - seg);
		if (len == 0 || (len == 1 && seg[0] == '.'))
			continue;
		if (len == 2 && seg[0] == '.' && seg[1] == '.') {
			while (out > p && *--out != '/')
				;
			continue;
		}
		*out++ = '/';
		memmove(out, seg, len);
		out += len;
	}
	if (out == p)
		*out++ = '/';
	*out = '\0';
}

/* dir/name made absolute (a relative dir is taken from cwd, else from
 * crund's own directory) and normalised; malloc'd, NULL on ENOMEM. */
static char *absolute(const char *cwd, const char *dir, size_t dlen, const char *name)
{
	char here[PATH_MAX];
	const char *base = "";
	size_t n;
	char *p;

	if (dlen == 0 || dir[0] != '/') {
		base = cwd;
		if (!base || base[0] != '/') {
			if (!getcwd(here, sizeof here))
				snprintf(here, sizeof here, "/");
			base = here;
			if (cwd) { /* a relative cwd is taken from crund's */
				n = strlen(here);
				snprintf(here + n, sizeof here - n, "/%s", cwd);
			}
		}
	}
	n = strlen(base) + dlen + strlen(name) + 3;
	if (!(p = malloc(n)))
		return NULL;
	snprintf(p, n, "%s/%.*s/%s", base, (int)dlen, dir, name);
	normalise(p);
	return p;
}

/* The file argv[0] names, as execvp would find it in the job's PATH. */
static int resolve(struct cmd *c, const char *name, struct why *w)
{
	const char *path;

	if (strchr(name, '/')) {
		c->path = name[0] == '/' ? absolute(NULL, name, strlen(name), "")
					 : absolute(c->cwd, "", 0, name);
		return c->path ? 0 : -ENOMEM;
	}
	if (!(path = env_get(c, "PATH")))
		path = MINIMAL_PATH;
	for (const char *s = path;;) {
		const char *end = strchr(s, ':');
		size_t dlen = end ? (size_t)(end - s) : strlen(s);
		char *cand = absolute(c->cwd, s, dlen, name);
		struct stat st;

		if (!cand)
			return -ENOMEM;
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0) {
			c->path = cand;
			return 0;
		}
		free(cand);
		if (!end)
			break;
		s = end + 1;
	}
	return refuse(w, "command_not_found", "no program '%.64s' in the job's PATH (%.120s)", name,
		      path);
}

static bool allowed(const char *const *allow, const char *path)
{
	for (const char *const *a = allow; a && *a; a++)
		if (**a == '/' && fnmatch(*a, path, FNM_PATHNAME | FNM_PERIOD) == 0)
			return true;
	return false;
}

static void num_or(const json_t *args, const char *name, double dflt, double *ret)
{
	const json_t *v = json_object_get(args, name);
	*ret = json_is_number(v) ? json_number_value(v) : dflt;
}

/* Check the arguments and make them ready to run (the job's check and
 * its start both call it).  0, or -EINVAL with *w filled, or -ENOMEM. */
static int prepare(const json_t *args, const char *const *allow, struct cmd *c, struct why *w)
{
	const json_t *argv = json_object_get(args, "argv");
	const json_t *command = json_object_get(args, "command");
	bool shell = json_is_true(json_object_get(args, "shell"));
	const json_t *v;
	size_t n;
	int rc;

	memset(c, 0, sizeof(*c));
	if (argv && command)
		return refuse(w, "invalid_args", "give either argv or command, not both");
	if (command && !shell)
		return refuse(w, "invalid_args",
			      "command runs through /bin/sh: it needs \"shell\": true (or give "
			      "argv, which runs without a shell)");
	if (!argv && !command)
		return refuse(w, "invalid_args", "argv (an array of strings) is required");
	if (argv && shell)
		return refuse(w, "invalid_args", "\"shell\": true goes with command, not argv");
	if (argv) {
		n = json_array_size(argv);
		if (!json_is_array(argv) || n == 0 || n > MAX_ARGV)
			return refuse(w, "invalid_args", "argv must be an array of 1 to %d strings",
				      MAX_ARGV);
		if (!(c->argv = calloc(n + 1, sizeof *c->argv)))
			return -ENOMEM;
		for (size_t i = 0; i < n; i++) {
			const char *s = json_string_value(json_array_get(argv, i));
			if (!s || (i == 0 && !*s))
				return refuse(w, "invalid_args",
					      "argv[%zu] is not a (non-empty) string", i);
			if (strlen(s) != json_string_length(json_array_get(argv, i)))
				return refuse(w, "invalid_args", "argv[%zu] contains a NUL", i);
			c->argv[i] = s;
		}
	} else {
		const char *s = json_string_value(command);
		if (!s || !*s || strlen(s) != json_string_length(command))
			return refuse(w, "invalid_args",
				      "command must be a non-empty string without NUL");
		if (!(c->argv = calloc(4, sizeof *c->argv)))
			return -ENOMEM;
		c->argv[0] = "sh";
		c->argv[1] = "-c";
		c->argv[2] = s;
	}
	if ((v = json_object_get(args, "cwd")) && !json_is_null(v)) {
		if (!(c->cwd = json_string_value(v)) || !*c->cwd)
			return refuse(w, "invalid_args", "cwd must be a non-empty string");
	}
	if ((v = json_object_get(args, "stdin")) && !json_is_null(v)) {
		if (!json_is_string(v))
			return refuse(w, "invalid_args", "stdin must be a string");
		c->stdin_text = json_string_value(v);
		c->stdin_len = json_string_length(v);
	}
	num_or(args, "timeout", 0, &c->timeout);
	num_or(args, "kill_grace", 10, &c->kill_grace);
	if (!(c->timeout >= 0) || !(c->kill_grace >= 0))
		return refuse(w, "invalid_args", "timeout and kill_grace must be >= 0");
	v = json_object_get(args, "kill_signal");
	c->kill_signal = v ? parse_signal(v) : SIGTERM;
	if (c->kill_signal < 0)
		return refuse(w, "invalid_args",
			      "kill_signal: not a signal (a name such as \"TERM\", \"SIGINT\", "
			      "\"KILL\", or a number)");
	v = json_object_get(args, "max_output_bytes");
	c->max_output = v ? (size_t)json_integer_value(v) : DEFAULT_MAX_OUTPUT;
	if ((rc = build_env(c, args, w)) < 0)
		return rc;
	if (shell) {
		if (!(c->path = strdup(SHELL)))
			return -ENOMEM;
	} else if ((rc = resolve(c, c->argv[0], w)) < 0) {
		return rc;
	}
	if (!allowed(allow, c->path))
		return refuse(w, "command_not_allowed",
			      "%.160s%s is not allowed to run here (the operator's exec-allow "
			      "patterns do not match it)",
			      c->path, shell ? " (the shell of \"shell\": true)" : "");
	return 0;
}

static int job_check(const crund_host_api *host, void *state, const json_t *args,
		     crund_check_error *err)
{
	struct exec_state *st = state;
	struct cmd c;
	struct why w = {"", ""};
	int rc;

	(void)host;
	rc = prepare(args, st ? st->allow : NULL, &c, &w);
	cmd_free(&c);
	if (rc == -ENOMEM)
		refuse(&w, "out_of_memory", "out of memory checking the job");
	if (rc < 0) {
		snprintf(err->code, sizeof err->code, "%s", w.code);
		snprintf(err->message, sizeof err->message, "%s", w.message);
	}
	return rc;
}

/* ------------------------------------------------------------ a run */

struct run;

/* One output stream: read as it comes, logged line by line, and kept
 * for the result as its first head_cap and last tail_cap bytes. */
struct stream {
	struct run *r;
	const char *name; /* "stdout", "stderr" */
	int fd;
	size_t head_cap, tail_cap;
	char *head;
	size_t head_len, head_alloc;
	char *tail; /* ring of tail_cap bytes */
	size_t tail_pos, tail_len;
	unsigned long long total;
	char line[LOG_LINE_MAX]; /* the unfinished line */
	size_t line_len;
	char chunk[READ_CHUNK];
};

struct run {
	crund_job *job;
	struct cmd cmd;
	cr_subprocess *p;
	struct stream out[2];
	cr_task *tasks[3]; /* the readers, the stdin writer */
	size_t n_tasks;
	int status; /* waitpid status of the leader */
	bool reaped;
};

static void log_line(struct stream *s, const char *line, size_t len)
{
	char *alloc;
	size_t clen;
	const char *clean = utf8_clean(line, len, &clen, &alloc);

	if (clean)
		crund_job_log_line(s->r->job, s->name, clean, clen);
	free(alloc);
}

static void keep(struct stream *s, const char *b, size_t n)
{
	s->total += n;
	if (s->head_len < s->head_cap) {
		size_t take = s->head_cap - s->head_len < n ? s->head_cap - s->head_len : n;
		if (s->head_len + take > s->head_alloc) {
			size_t want = s->head_alloc ? s->head_alloc * 2 : 4096;
			while (want < s->head_len + take)
				want *= 2;
			if (want > s->head_cap)
				want = s->head_cap;
			char *h = realloc(s->head, want);
			if (!h)
				return; /* the result says truncated */
			s->head = h;
			s->head_alloc = want;
		}
		memcpy(s->head + s->head_len, b, take);
		s->head_len += take;
		b += take;
		n -= take;
	}
	if (!n || !s->tail_cap)
		return;
	if (!s->tail && !(s->tail = malloc(s->tail_cap)))
		return;
	if (n >= s->tail_cap) {
		memcpy(s->tail, b + n - s->tail_cap, s->tail_cap);
		s->tail_pos = 0;
		s->tail_len = s->tail_cap;
		return;
	}
	size_t first = s->tail_cap - s->tail_pos < n ? s->tail_cap - s->tail_pos : n;
	memcpy(s->tail + s->tail_pos, b, first);
	memcpy(s->tail, b + first, n - first);
	s->tail_pos = (s->tail_pos + n) % s->tail_cap;
	s->tail_len = s->tail_len + n > s->tail_cap ? s->tail_cap : s->tail_len + n;
}

/* Log the complete lines of b; the rest waits in s->line (a line longer
 * than LOG_LINE_MAX goes out in pieces). */
static void log_lines(struct stream *s, const char *b, size_t n)
{
	while (n) {
		const char *nl = memchr(b, '\n', n);
		size_t len = nl ? (size_t)(nl - b) : n;

		if (nl && s->line_len == 0 && len <= LOG_LINE_MAX) {
			log_line(s, b, len); /* the usual case: no copy */
		} else {
			for (size_t at = 0; at < len;) {
				size_t take = LOG_LINE_MAX - s->line_len;
				if (take > len - at)
					take = len - at;
				memcpy(s->line + s->line_len, b + at, take);
				s->line_len += take;
				at += take;
				if (s->line_len == LOG_LINE_MAX) {
					log_line(s, s->line, s->line_len);
					s->line_len = 0;
				}
			}
			if (nl && s->line_len) {
				log_line(s, s->line, s->line_len);
				s->line_len = 0;
			}
		}
		len += nl ? 1 : 0;
		b += len;
		n -= len;
	}
}

static int reader_main(void *arg, void **ret_value)
{
	struct stream *s = arg;
	ssize_t n;

	(void)ret_value;
	while ((n = cr_read(s->fd, s->chunk, sizeof s->chunk)) > 0) {
		keep(s, s->chunk, (size_t)n);
		log_lines(s, s->chunk, (size_t)n);
		/* a full chunk: more is likely waiting, and cr_read returns it
		 * without a turn of the loop; a command that prints lines
		 * faster than they are logged held the loop for seconds (seq
		 * 2000000: /v1/health answered after 4.8 s) */
		if ((size_t)n == sizeof s->chunk && (n = cr_yield()) < 0)
			break;
	}
	if (s->line_len) {
		log_line(s, s->line, s->line_len);
		s->line_len = 0;
	}
	return n < 0 ? (int)n : 0;
}

static int writer_main(void *arg, void **ret_value)
{
	struct run *r = arg;
	int rc;

	(void)ret_value;
	rc = cr_write_all(cr_subprocess_fd(r->p, 0), r->cmd.stdin_text, r->cmd.stdin_len);
	cr_subprocess_close_fd(r->p, 0); /* end of file for the child */
	return rc == -EPIPE ? 0 : rc;    /* it need not read it all */
}

/* The stream's kept bytes as a JSON string (head, a marker, tail). */
static json_t *stream_json(const struct stream *s)
{
	size_t kept = s->head_len + s->tail_len;
	char marker[64] = "";
	char *buf, *alloc;
	size_t len = 0, clen;
	json_t *v = NULL;

	if (s->total > kept)
		snprintf(marker, sizeof marker, "\n[... %llu bytes omitted ...]\n",
			 s->total - kept);
	if (!(buf = malloc(kept + strlen(marker) + 1)))
		return NULL;
	if (s->head_len) /* head is NULL when nothing came */
		memcpy(buf, s->head, s->head_len);
	len = s->head_len;
	memcpy(buf + len, marker, strlen(marker));
	len += strlen(marker);
	if (s->tail_len) {
		size_t start = (s->tail_pos + s->tail_cap - s->tail_len) % s->tail_cap;
		size_t first = s->tail_cap - start < s->tail_len ? s->tail_cap - start
								 : s->tail_len;
		memcpy(buf + len, s->tail + start, first);
		memcpy(buf + len + first, s->tail, s->tail_len - first);
		len += s->tail_len;
	}
	const char *clean = utf8_clean(buf, len, &clen, &alloc);
	if (clean)
		v = json_stringn(clean, clen);
	free(alloc);
	free(buf);
	return v;
}

static bool group_alive(struct run *r) { return cr_subprocess_kill(r->p, 0) == 0; }

static void note_reaped(struct run *r)
{
	if (!r->reaped && cr_subprocess_poll(r->p, &r->status) == 0)
		r->reaped = true;
}

/* Stop the whole group: kill_signal, then SIGKILL once the grace is over
 * with anything left; returns when the leader was reaped.  Runs after a
 * cancellation (which is delivered once, so it may await); a second one
 * (a shutdown after a cancel) cuts the grace short. */
static void terminate(struct run *r)
{
	const char *why = cr_task_cancel_message(cr_current_task());
	double grace = r->cmd.kill_grace;
	bool hurry = false;
	cr_timeout_scope sc;
	int rc;

	if (why && !strcmp(why, "shutdown") && grace > SHUTDOWN_GRACE)
		grace = SHUTDOWN_GRACE;
	double deadline = now_mono() + grace;
	cr_subprocess_kill(r->p, r->cmd.kill_signal);
	note_reaped(r);
	if (!r->reaped && cr_timeout_enter(&sc, grace) == 0) {
		rc = cr_subprocess_wait(r->p, &r->status);
		rc = cr_timeout_exit(&sc, rc);
		if (rc == 0)
			r->reaped = true;
		else if (rc == -ECANCELED)
			hurry = true;
	}
	/* The leader is gone; members of its group may not be (their exit
	 * cannot be awaited: they are not our children). */
	while (!hurry && r->reaped && group_alive(r) && now_mono() < deadline)
		if (cr_sleep(GROUP_POLL) == -ECANCELED)
			hurry = true;
	if (!r->reaped || group_alive(r)) {
		crund_job_log(r->job, CRUND_LOG_WARNING,
			      "the command's processes did not stop within %g s of %s: SIGKILL",
			      grace, signal_label(r->cmd.kill_signal));
		cr_subprocess_kill(r->p, SIGKILL);
	}
	/* SIGKILL cannot be ignored: this wait is short, and it is not given
	 * up on a further cancellation (that would leave the child behind). */
	while (!r->reaped) {
		rc = cr_subprocess_wait(r->p, &r->status);
		if (rc == 0)
			r->reaped = true;
		else if (rc != -ECANCELED)
			break;
	}
	/* SIGKILL is delivered at once but the members' exits are not ours
	 * to await: look until they are gone (bounded: a member that died
	 * stays a zombie until its new parent reaps it). */
	for (int i = 0; i < 50 && group_alive(r); i++)
		cr_sleep(GROUP_POLL);
}

/* Wait for the readers and the writer, at most DRAIN_BOUND once the group
 * is gone (only a process that left the group can still hold a pipe). */
static void drain(struct run *r)
{
	int rc = 0;

	if (!r->n_tasks)
		return;
	rc = cr_wait(r->tasks, r->n_tasks, CR_WAIT_ALL, DRAIN_BOUND);
	if (rc < (int)r->n_tasks) {
		if (rc >= 0)
			crund_job_log(r->job, CRUND_LOG_WARNING,
				      "output is still held open by a process outside the job's "
				      "process group (one that called setsid?): not read further");
		for (size_t i = 0; i < r->n_tasks; i++)
			if (!cr_task_done(r->tasks[i]))
				cr_task_cancel(r->tasks[i], NULL);
	}
	/* Joining waits for a cancelled task to end (it is on our stack). */
	for (size_t i = 0; i < r->n_tasks; i++) {
		while (cr_task_join(r->tasks[i], NULL) == -ECANCELED && !cr_task_done(r->tasks[i]))
			;
		r->tasks[i] = cr_task_unref(r->tasks[i]);
	}
	r->n_tasks = 0;
}

static json_t *result_json(struct run *r, double duration)
{
	json_t *res = json_object(), *trunc = json_object();
	json_t *out = stream_json(&r->out[0]), *err = stream_json(&r->out[1]);
	int bad = !res || !trunc || !out || !err;

	if (!bad && WIFEXITED(r->status))
		bad |= json_object_set_new(res, "exit_code", json_integer(WEXITSTATUS(r->status)));
	else if (!bad) {
		const char *name = signal_name(WTERMSIG(r->status));
		bad |= json_object_set_new(res, "signal", json_integer(WTERMSIG(r->status)));
		if (name)
			bad |= json_object_set_new(res, "signal_name", json_string(name));
	}
	if (!bad) {
		bad |= json_object_set_new(res, "stdout", out);
		bad |= json_object_set_new(res, "stderr", err);
		out = err = NULL;
		for (int i = 0; i < 2; i++)
			bad |= json_object_set_new(
				trunc, r->out[i].name,
				json_boolean(r->out[i].total >
					     r->out[i].head_len + r->out[i].tail_len));
		bad |= json_object_set_new(res, "truncated", trunc);
		trunc = NULL;
		bad |= json_object_set_new(res, "duration", json_real(duration));
	}
	json_decref(out);
	json_decref(err);
	json_decref(trunc);
	if (bad) {
		json_decref(res);
		return NULL;
	}
	return res;
}

/* The last line of a stream's kept bytes (at most cap - 1 bytes of it,
 * valid UTF-8, control characters as spaces), for a failure's message: a
 * failed job keeps no result, so the message says what to look at. */
static void last_line(const struct stream *s, char *buf, size_t cap)
{
	char tmp[256];
	size_t n = 0, start, end, clen, o = 0;
	char *alloc;

	buf[0] = '\0';
	/* the last bytes kept, in order */
	for (size_t i = 0; i < sizeof tmp; i++) {
		if (i < s->tail_len)
			tmp[sizeof tmp - 1 - n++] =
				s->tail[(s->tail_pos + s->tail_cap - 1 - i) % s->tail_cap];
		else if (!s->tail_len && i < s->head_len)
			tmp[sizeof tmp - 1 - n++] = s->head[s->head_len - 1 - i];
	}
	const char *t = tmp + sizeof tmp - n;
	end = n;
	while (end && (t[end - 1] == '\n' || t[end - 1] == '\r'))
		end--;
	start = end;
	while (start && t[start - 1] != '\n')
		start--;
	if (end - start > cap - 1)
		start = end - (cap - 1);
	const char *clean = utf8_clean(t + start, end - start, &clen, &alloc);
	if (!clean)
		return;
	/* copy whole characters only */
	for (size_t i = 0; i < clen;) {
		size_t k = utf8_seq((const unsigned char *)clean + i, clen - i);
		if (!k || o + k > cap - 1)
			break;
		for (size_t m = 0; m < k; m++)
			buf[o++] = (unsigned char)clean[i + m] < 0x20 ? ' ' : clean[i + m];
		i += k;
	}
	buf[o] = '\0';
	free(alloc);
}

static int job_run(crund_job *job)
{
	struct exec_state *st = crund_job_plugin_state(job);
	struct run *r = calloc(1, sizeof *r);
	struct why w = {"", ""};
	bool cancelled = false, timed_out = false;
	double t0, spawned;
	int rc;

	if (!r)
		return -ENOMEM;
	r->job = job;
	rc = prepare(crund_job_args(job), st->allow, &r->cmd, &w);
	if (rc < 0) {
		if (rc != -ENOMEM)
			rc = crund_job_fail(job, w.code, "%s", w.message);
		goto out;
	}

	cr_subprocess_opts o = {
		.size = sizeof(o),
		.argv = r->cmd.argv,
		.cwd = r->cmd.cwd,
		.envp = (const char *const *)r->cmd.envp,
		.stdin_mode = r->cmd.stdin_len ? CR_STDIO_PIPE : CR_STDIO_DEVNULL,
		.stdout_mode = CR_STDIO_PIPE,
		.stderr_mode = CR_STDIO_PIPE,
		.path = r->cmd.path,
	};
	t0 = now_mono();
	rc = cr_subprocess_spawn(&o, &r->p);
	spawned = now_mono();
	st->spawns++;
	st->spawn_sum += spawned - t0;
	if (spawned - t0 > st->spawn_max)
		st->spawn_max = spawned - t0;
	/* cancelled while its spawn was awaited: the child that started was
	 * killed and reaped; the job ends cancelled (it ended spawn_failed,
	 * with the message of another call) */
	if (rc == -ECANCELED)
		goto out;
	if (rc < 0) {
		rc = crund_job_fail(job, "spawn_failed", "%s", cr_last_error());
		goto out;
	}

	/* The helpers run in the job's own context (no copy to make). */
	cr_spawn_opts so = {.size = sizeof(so), .context = cr_context_current()};
	for (int i = 0; i < 2; i++) {
		struct stream *s = &r->out[i];
		s->r = r;
		s->name = i ? "stderr" : "stdout";
		s->fd = cr_subprocess_fd(r->p, i + 1);
		s->head_cap = r->cmd.max_output - r->cmd.max_output / 2;
		s->tail_cap = r->cmd.max_output / 2;
		if ((rc = cr_spawn(reader_main, s, &so, &r->tasks[r->n_tasks])) < 0)
			break;
		r->n_tasks++;
	}
	if (rc == 0 && r->cmd.stdin_len &&
	    (rc = cr_spawn(writer_main, r, &so, &r->tasks[r->n_tasks])) == 0)
		r->n_tasks++;

	if (rc == 0 && r->cmd.timeout > 0) {
		cr_timeout_scope sc;
		if ((rc = cr_timeout_enter(&sc, r->cmd.timeout)) == 0) {
			rc = cr_subprocess_wait(r->p, &r->status);
			rc = cr_timeout_exit(&sc, rc);
		}
	} else if (rc == 0) {
		rc = cr_subprocess_wait(r->p, &r->status);
	}
	if (rc == 0)
		r->reaped = true;
	timed_out = rc == -ETIMEDOUT;
	cancelled = rc == -ECANCELED;
	if (rc < 0) {
		/* cancelled, timed out, or could not start the readers */
		if (timed_out)
			crund_job_log(job, CRUND_LOG_INFO,
				      "timeout of %g s reached: stopping the command",
				      r->cmd.timeout);
		terminate(r);
	} else if (group_alive(r)) {
		crund_job_log(job, CRUND_LOG_INFO,
			      "the command exited and left processes in its group: stopping them");
		terminate(r);
	}
	drain(r);
	double duration = now_mono() - t0;

	if (cancelled) {
		rc = -ECANCELED;
	} else if (timed_out) {
		rc = crund_job_fail(job, "timeout",
				    "the command did not finish within its timeout of %g s "
				    "(stopped with %s)",
				    r->cmd.timeout, signal_label(r->cmd.kill_signal));
	} else if (rc < 0 || !r->reaped) {
		rc = crund_job_fail(job, NULL, "the command's end could not be awaited: %s",
				    cr_strerror(rc < 0 ? rc : -ECHILD));
	} else if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0) {
		json_t *res = result_json(r, duration);
		rc = res ? crund_job_set_result(job, res) : -ENOMEM;
	} else {
		char last[160], what[64];
		last_line(&r->out[1], last, sizeof last);
		if (WIFEXITED(r->status))
			snprintf(what, sizeof what, "exited with status %d",
				 WEXITSTATUS(r->status));
		else
			snprintf(what, sizeof what, "was killed by signal %d (%s)",
				 WTERMSIG(r->status), signal_label(WTERMSIG(r->status)));
		rc = crund_job_fail(job, "exit_status", "%s %s after %.3f s%s%s", r->cmd.argv[0],
				    what, duration, *last ? "; last stderr line: " : "", last);
	}
out:
	cr_subprocess_free(r->p);
	for (int i = 0; i < 2; i++) {
		free(r->out[i].head);
		free(r->out[i].tail);
	}
	cmd_free(&r->cmd);
	free(r);
	return rc;
}

/* ------------------------------------------------------------ init / fini */

static int exec_init(const crund_host_api *host, void **ret_state)
{
	struct exec_state *st = calloc(1, sizeof *st);
	size_t n = 0;

	if (!st)
		return -ENOMEM;
	st->allow = crund_config_list(host, "exec-allow");
	for (const char *const *a = st->allow; *a; a++, n++)
		if (**a != '/')
			crund_host_log(host, CRUND_LOG_WARNING,
				       "exec: exec-allow pattern '%s' is not an absolute path: it "
				       "never matches",
				       *a);
	if (n == 0)
		crund_host_log(host, CRUND_LOG_WARNING,
			       "exec: no exec-allow patterns are set, so every command is refused "
			       "(set exec-allow to the programs jobs may run)");
	else
		crund_host_log(host, CRUND_LOG_INFO, "exec: %zu exec-allow pattern%s", n,
			       n == 1 ? "" : "s");
	*ret_state = st;
	return 0;
}

static void exec_fini(const crund_host_api *host, void *state)
{
	struct exec_state *st = state;

	if (st && st->spawns)
		crund_host_log(host, CRUND_LOG_INFO,
			       "exec: %lu commands started; a spawn took %.3f ms at most, %.3f "
			       "ms on average (awaited: the loop runs on meanwhile)",
			       st->spawns, st->spawn_max * 1e3,
			       st->spawn_sum * 1e3 / (double)st->spawns);
	free(st);
}

/* ------------------------------------------------------------ the table */

static const crund_arg_spec run_args[] = {
	{.name = "argv",
	 .type = CRUND_ARG_ARRAY,
	 .description = "program and arguments, run without a shell (argv[0] looked up in the "
			"job's PATH)"},
	{.name = "command",
	 .type = CRUND_ARG_STRING,
	 .description = "a command line for /bin/sh -c (needs \"shell\": true)"},
	{.name = "shell",
	 .type = CRUND_ARG_BOOLEAN,
	 .default_json = "false",
	 .description = "run `command` through /bin/sh -c"},
	{.name = "cwd", .type = CRUND_ARG_STRING, .description = "working directory"},
	{.name = "env",
	 .type = CRUND_ARG_OBJECT,
	 .description = "environment variables (strings), over the base environment"},
	{.name = "inherit_env",
	 .type = CRUND_ARG_BOOLEAN,
	 .default_json = "false",
	 .description = "start from crund's environment instead of PATH, LANG and HOME only"},
	{.name = "stdin", .type = CRUND_ARG_STRING, .description = "text written to stdin"},
	{.name = "timeout",
	 .type = CRUND_ARG_NUMBER,
	 .default_json = "0",
	 .has_range = true,
	 .min = 0,
	 .max = 31536000,
	 .description = "seconds before the command is stopped (0: none)"},
	{.name = "kill_signal",
	 .type = CRUND_ARG_ANY,
	 .default_json = "\"TERM\"",
	 .description = "signal that stops the command's process group: a name (\"TERM\", "
			"\"SIGINT\") or a number"},
	{.name = "kill_grace",
	 .type = CRUND_ARG_NUMBER,
	 .default_json = "10",
	 .has_range = true,
	 .min = 0,
	 .max = 3600,
	 .description = "seconds between kill_signal and SIGKILL"},
	{.name = "max_output_bytes",
	 .type = CRUND_ARG_INTEGER,
	 .default_json = "65536",
	 .has_range = true,
	 .min = 0,
	 .max = MAX_OUTPUT_LIMIT,
	 .description = "bytes of stdout and of stderr kept for the result (the first and "
			"last halves)"},
};

static const crund_job_spec jobs[] = {
	{.name = "run",
	 .description = "run a command: {exit_code | signal, stdout, stderr, truncated, "
			"duration}",
	 .run = job_run,
	 .args = run_args,
	 .n_args = sizeof run_args / sizeof *run_args,
	 .check = job_check},
};

CRUND_PLUGIN_DEFINE(.name = "exec", .version = "1.0",
		    .description = "runs commands an operator allowed (exec-allow)", .jobs = jobs,
		    .n_jobs = sizeof jobs / sizeof *jobs, .init = exec_init, .fini = exec_fini,
		    .flags = CRUND_PLUGIN_RUNS_COMMANDS);
