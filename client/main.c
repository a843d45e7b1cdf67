/*
 * main.c — crunctl's entry: global options, the environment, the token
 * file, help texts and dispatch to the commands (crunctl-VERB.c).
 *
 * Start-up stays cheap: no request is made and libcurl is not even set up
 * for `help`, `--version` or a usage error.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crunctl.h"

#define TOKEN_MAX 4096

typedef struct command {
	const char *name;
	int (*run)(crunctl *ctl, int argc, char **argv);
	const char *usage;   /* after "crunctl " */
	const char *summary; /* one line for the command list */
	const char *help;    /* the rest of `crunctl help NAME` */
} command;

static const command commands[] = {
	{"submit", crunctl_cmd_submit,
	 "submit PLUGIN JOB [key=value | key:=JSON ...] [--args JSON|@FILE|-] [--timeout S]\n"
	 "               [--isolated] [--idempotency-key K] [--delay S | --at TIME]\n"
	 "               [--max-attempts N] [--on-interrupt retry|fail] [--wait[=S]] [--follow]",
	 "submit a job; prints its id (or its result with --wait)",
	 "Submit job JOB of plugin PLUGIN.  Arguments are given as key=value, typed by the\n"
	 "job's argument spec (integer and number become JSON numbers; boolean takes\n"
	 "true/false, yes/no, on/off, 1/0; object, array and any are parsed as JSON, any\n"
	 "falling back to a string), or as key:=JSON for raw JSON.  --args gives a JSON\n"
	 "object (inline, @FILE, or - for standard input) that key=value arguments extend.\n"
	 "\n"
	 "  --timeout S            fail the job with code 'timeout' after S (90, 90s, 5m, 2h)\n"
	 "  --isolated             run in a copy of the daemon's shared context\n"
	 "  --idempotency-key K    submitting K again returns the existing job\n"
	 "  --delay S              run the job S from now (30, 90s, 5m, 2h), queued until then\n"
	 "  --at TIME              run the job at TIME: RFC 3339 (2026-12-03T10:00:00Z,\n"
	 "                         ...+01:00) or local time (2026-12-03 11:00[:00]); not\n"
	 "                         with --delay\n"
	 "  --max-attempts N       run a failed job again, up to N attempts in all (1..1000),\n"
	 "                         after a growing back-off (default: the job's spec, else 1)\n"
	 "  --on-interrupt retry|fail\n"
	 "                         when crund dies or stops while the job runs, queue it\n"
	 "                         again for the next start (retry) or end it (fail)\n"
	 "                         (default: the job's spec)\n"
	 "  --wait[=S]             wait for the job to end (at most S); print its result\n"
	 "                         and exit by its state (0, 1 failed, 3 cancelled, 4 still\n"
	 "                         running when S ran out)\n"
	 "  --follow, -f           print the job's progress and log lines (on stderr) while\n"
	 "                         it runs, then its result, as --wait\n"
	 "Without --wait or --follow the job's id is printed and crunctl exits 0."},
	{"status", crunctl_cmd_status, "status ID...", "show jobs",
	 "Show one job in detail, or several as a table.  The detail has the attempt\n"
	 "(\"2 of 5\"), when a queued job will run (Runs at:), the on-interrupt policy\n"
	 "and one line per earlier failed attempt.  --json prints each job object."},
	{"wait", crunctl_cmd_wait, "wait ID [--timeout S]",
	 "wait for a job to end; print its result",
	 "Wait until the job ends (at most S), print its result and exit by its state:\n"
	 "0 succeeded, 1 failed, 3 cancelled, 4 still active when the timeout ran out."},
	{"cancel", crunctl_cmd_cancel, "cancel ID...", "ask running or queued jobs to stop",
	 "Request cancellation.  A job that already ended is an error (exit 6)."},
	{"retry", crunctl_cmd_retry, "retry ID...", "run ended jobs again as new jobs",
	 "Run each ended job again: a new job with the same arguments, linked to the old\n"
	 "one by retry_of; its id is printed.  A job still active is an error (exit 6)."},
	{"rm", crunctl_cmd_rm, "rm ID...", "forget ended jobs",
	 "Remove ended jobs from the daemon.  An active job cannot be removed (exit 6)."},
	{"list", crunctl_cmd_list, "list [--state S] [--plugin P] [--limit N]", "list jobs",
	 "List jobs, newest first: at most N (default 50, any number), following the API's\n"
	 "pages.  With --json, one object whose next_cursor goes on after the last job.\n"
	 "ATTEMPT is the attempt and the most allowed (\"2/3\"; \"-\" before the first start).\n"
	 "DURATION is how long the job ran, or for a queued job that waits for a delay or a\n"
	 "retry, when it will run (\"in 12s\").\n"
	 "States: queued, running, succeeded, failed, cancelled."},
	{"log", crunctl_cmd_log, "log ID [-f]", "print a job's log",
	 "Print the job's log lines.  -f (--follow) prints them as they come until the\n"
	 "job ends."},
	{"plugins", crunctl_cmd_plugins, "plugins [NAME]", "list plugins, jobs and arguments",
	 "Without NAME, one line per job of every loaded plugin with its arguments\n"
	 "(optional ones in brackets).  With NAME, every job of that plugin and a table\n"
	 "of its arguments: type, range, required, default and description."},
	{"info", crunctl_cmd_info, "info", "show the daemon's version, limits and counts",
	 "Show GET /v1/info: version, loop backend, uptime, job counts, limits, state."},
	{"health", crunctl_cmd_health, "health", "check that the daemon is up",
	 "Print 'ok' and exit 0 when crund answers and its loop turns ({\"status\":\"ok\"});\n"
	 "exit 6 when it is draining or stalled, 5 when it cannot be reached, 7 when the\n"
	 "reply is not crund's (another server's page)."},
	{"help", NULL, "help [COMMAND]", "show help", "Show the help of crunctl or of COMMAND."},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const command *find_command(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static const char exit_codes[] =
	"Exit status:\n"
	"  0  success: the command worked (for --wait, wait: the job succeeded)\n"
	"  1  the job failed\n"
	"  2  usage error: bad command line, arguments or options\n"
	"  3  the job was cancelled\n"
	"  4  the wait ran out while the job was still queued or running\n"
	"  5  crund could not be reached\n"
	"  6  crund answered with an error (unknown job, conflict, bad token, ...)\n"
	"  7  internal error (out of memory, a reply crunctl does not understand)\n";

static void print_help(FILE *out)
{
	fprintf(out, "Usage: crunctl [OPTIONS] COMMAND [ARGS...]\n"
		     "Talk to crund, the job daemon: submit jobs, wait for them, inspect them.\n"
		     "\n"
		     "Commands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(out,
		"\n"
		"Options (before or after the command):\n"
		"  --url URL          crund's address (default $CRUND_URL, else\n"
		"                     http://127.0.0.1:7733; unix:PATH for a socket)\n"
		"  --socket PATH      talk over a Unix socket (default $CRUND_SOCKET)\n"
		"  --token-file FILE  send the token in FILE (default $CRUND_TOKEN_FILE)\n"
		"  --json             print the API's JSON unchanged\n"
		"  -q, --quiet        no confirmations, no progress bar\n"
		"  --no-color         no colour (also when NO_COLOR is set)\n"
		"  -h, --help         this help; 'crunctl help COMMAND' for a command\n"
		"  -V, --version      print the version\n"
		"\n"
		"Examples:\n"
		"  crunctl submit demo sleep seconds=2 --wait\n"
		"  id=$(crunctl submit demo progress steps=20) && crunctl log -f \"$id\"\n"
		"  crunctl list --state failed\n"
		"\n"
		"%s",
		exit_codes);
}

int crunctl_usage_error(const char *command_name, const char *fmt, ...)
{
	const command *c = command_name ? find_command(command_name) : NULL;

	if (fmt) {
		va_list ap;
		fputs("crunctl: ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	if (c) {
		fprintf(stderr, "Usage: crunctl %s\n", c->usage);
		fprintf(stderr, "Try 'crunctl help %s'.\n", c->name);
	} else {
		fprintf(stderr, "Usage: crunctl [OPTIONS] COMMAND [ARGS...]\n");
		fprintf(stderr, "Try 'crunctl help'.\n");
	}
	return CRUNCTL_EXIT_USAGE;
}

static int cmd_help(int argc, char **argv)
{
	const command *c;

	if (argc == 0) {
		print_help(stdout);
		return CRUNCTL_EXIT_OK;
	}
	if (argc > 1)
		return crunctl_usage_error("help", "help takes one COMMAND");
	c = find_command(argv[0]);
	if (!c)
		return crunctl_usage_error("help", "unknown command '%s'", argv[0]);
	printf("Usage: crunctl %s\n%c%s.\n\n%s\n", c->usage, toupper((unsigned char)c->summary[0]),
	       c->summary + 1, c->help);
	if (c->run == crunctl_cmd_submit || c->run == crunctl_cmd_wait)
		printf("\n%s", exit_codes);
	return CRUNCTL_EXIT_OK;
}

/* The token: the file's first line without surrounding white space. */
static int read_token(const char *file, char **ret)
{
	char buf[TOKEN_MAX + 2];
	FILE *f = fopen(file, "r");
	size_t n, start = 0;

	if (!f) {
		fprintf(stderr, "crunctl: cannot read the token file '%s': %s\n", file,
			strerror(errno));
		return CRUNCTL_EXIT_USAGE;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = '\0';
	while (buf[start] == ' ' || buf[start] == '\t')
		start++;
	if (!buf[start] || n > TOKEN_MAX) {
		fprintf(stderr, "crunctl: the token file '%s' %s\n", file,
			buf[start] ? "is too long" : "is empty");
		return CRUNCTL_EXIT_USAGE;
	}
	*ret = strdup(buf + start);
	explicit_bzero(buf, sizeof(buf));
	if (!*ret) {
		fprintf(stderr, "crunctl: out of memory\n");
		return CRUNCTL_EXIT_INTERNAL;
	}
	return 0;
}

/* --url, --socket and --token-file, as "--opt VALUE" or "--opt=VALUE", at
 * argv[*i].  Returns 1 when one was taken (*i moved past its value), 0 when
 * argv[*i] is something else, -1 after a usage error. */
static int connection_option(int argc, char **argv, int *i, const char **url,
			     const char **socket_path, const char **token_file)
{
	static const char *const names[] = {"--url", "--socket", "--token-file"};
	const char **targets[] = {url, socket_path, token_file};
	const char *a = argv[*i];

	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		size_t n = strlen(names[k]);
		const char *v;

		if (strncmp(a, names[k], n) != 0 || (a[n] != '\0' && a[n] != '='))
			continue;
		if (a[n] == '=') {
			v = a + n + 1;
		} else if (*i + 1 < argc) {
			*i += 1;
			v = argv[*i];
		} else {
			crunctl_usage_error(NULL, "option '%s' needs a value", names[k]);
			return -1;
		}
		if (!*v) {
			crunctl_usage_error(NULL, "option '%s' needs a value", names[k]);
			return -1;
		}
		*targets[k] = v;
		return 1;
	}
	return 0;
}

/* Options of the commands that take a separate value. */
static bool takes_value(const char *a)
{
	static const char *const names[] = {
		"--args",  "--timeout",      "--idempotency-key", "--delay",  "--at",
		"--state", "--max-attempts", "--on-interrupt",    "--plugin", "--limit"};

	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		if (strcmp(a, names[k]) == 0)
			return true;
	return false;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* Where and how to connect, from the options and the environment. */
typedef struct connection {
	const char *url, *socket_path, *token_file;
	bool no_colour;
} connection;

/* Used by the functions below for "go on": every exit code is >= 0. */
#define GO_ON (-1)

/* The options before the command; *i ends at the command.  GO_ON, or the
 * exit code (--help, --version, a usage error). */
static int global_options(crunctl *ctl, connection *conn, int argc, char **argv, int *i)
{
	int rc;

	for (*i = 1; *i < argc; (*i)++) {
		const char *a = argv[*i];

		if (a[0] != '-' || strcmp(a, "-") == 0)
			break;
		if (strcmp(a, "--") == 0) {
			(*i)++;
			break;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			print_help(stdout);
			return CRUNCTL_EXIT_OK;
		}
		if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
			printf("crunctl %s\n", PACKAGE_VERSION);
			return CRUNCTL_EXIT_OK;
		}
		if (strcmp(a, "--json") == 0) {
			ctl->json = true;
			continue;
		}
		if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
			ctl->quiet = true;
			continue;
		}
		if (strcmp(a, "--no-color") == 0 || strcmp(a, "--no-colour") == 0) {
			conn->no_colour = true;
			continue;
		}
		rc = connection_option(argc, argv, i, &conn->url, &conn->socket_path,
				       &conn->token_file);
		if (rc < 0)
			return CRUNCTL_EXIT_USAGE;
		if (rc == 0)
			return crunctl_usage_error(NULL, "unknown option '%s'", a);
	}
	return GO_ON;
}

/* After the command at argv[i]: `crunctl submit --help`, and the
 * connection options, which are taken out of what the command sees (the
 * rest is moved down to argv[i + 1...], *ret_argc of them).  Values of the
 * commands' own options are stepped over, so `--args --url` stays an
 * --args.  GO_ON, or the exit code. */
static int command_arguments(const command *cmd, connection *conn, int argc, char **argv, int i,
			     int *ret_argc)
{
	char **cmd_argv = argv + i + 1;
	int cmd_argc = 0;

	for (int k = i + 1; k < argc; k++) {
		const char *a = argv[k];
		int m;

		if (strcmp(a, "--") == 0) {
			while (k < argc)
				cmd_argv[cmd_argc++] = argv[k++];
			break;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			char *name = (char *)cmd->name;
			return cmd_help(1, &name);
		}
		m = connection_option(argc, argv, &k, &conn->url, &conn->socket_path,
				      &conn->token_file);
		if (m < 0)
			return CRUNCTL_EXIT_USAGE;
		if (m > 0)
			continue;
		cmd_argv[cmd_argc++] = argv[k];
		if (takes_value(a) && k + 1 < argc)
			cmd_argv[cmd_argc++] = argv[++k];
	}
	*ret_argc = cmd_argc;
	return GO_ON;
}

/* The address (options, else the environment: CRUND_URL before
 * CRUND_SOCKET) and the token into *opts; *ret_token is the token to
 * wipe and free after use.  GO_ON, or the exit code. */
static int connection_settings(connection *conn, crunctl_client_opts *opts, char **ret_token)
{
	int rc;

	if (conn->url && conn->socket_path)
		return crunctl_usage_error(NULL, "give --url or --socket, not both");
	if (!conn->url && !conn->socket_path) {
		conn->url = env("CRUND_URL");
		if (!conn->url)
			conn->socket_path = env("CRUND_SOCKET");
	}
	if (conn->url && strncmp(conn->url, "unix:", 5) == 0) {
		conn->socket_path = conn->url + 5;
		conn->url = NULL;
		if (!*conn->socket_path)
			return crunctl_usage_error(NULL, "'unix:' needs a socket path");
	}
	if (!conn->token_file)
		conn->token_file = env("CRUND_TOKEN_FILE");
	if (conn->token_file) {
		rc = read_token(conn->token_file, ret_token);
		if (rc)
			return rc;
	}
	opts->url = conn->url;
	opts->socket_path = conn->socket_path;
	opts->token = *ret_token;
	opts->verbose = env("CRUNCTL_DEBUG") != NULL;
	return GO_ON;
}

/* Run the command with a client; flush stdout and report a failed write. */
static int run_command(crunctl *ctl, const command *cmd, int argc, char **argv)
{
	int rc = cmd->run(ctl, argc, argv);

	crunctl_client_free(ctl->client);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "crunctl: cannot write the output: %s\n", strerror(errno));
		if (rc == 0)
			rc = CRUNCTL_EXIT_INTERNAL;
	}
	return rc;
}

int main(int argc, char **argv)
{
	crunctl ctl = {.prog = "crunctl"};
	crunctl_client_opts opts = {0};
	connection conn = {0};
	char *token = NULL;
	const command *cmd;
	int i, rc, cmd_argc = 0;

	rc = global_options(&ctl, &conn, argc, argv, &i);
	if (rc != GO_ON)
		return rc;
	if (i >= argc)
		return crunctl_usage_error(NULL, "missing COMMAND");
	cmd = find_command(argv[i]);
	if (!cmd)
		return crunctl_usage_error(NULL, "unknown command '%s'", argv[i]);
	if (!cmd->run)
		return cmd_help(argc - i - 1, argv + i + 1);
	rc = command_arguments(cmd, &conn, argc, argv, i, &cmd_argc);
	if (rc == GO_ON)
		rc = connection_settings(&conn, &opts, &token);
	if (rc != GO_ON)
		return rc;
	ctl.colour = !conn.no_colour && !ctl.json && isatty(STDOUT_FILENO) && !env("NO_COLOR") &&
		     !(env("TERM") && strcmp(env("TERM"), "dumb") == 0);
	ctl.tty_err = isatty(STDERR_FILENO) && !(env("TERM") && strcmp(env("TERM"), "dumb") == 0);
	ctl.client = crunctl_client_new(&opts);
	if (token) {
		explicit_bzero(token, strlen(token));
		free(token);
	}
	if (!ctl.client)
		return CRUNCTL_EXIT_INTERNAL;
	return run_command(&ctl, cmd, cmd_argc, argv + i + 1);
}
