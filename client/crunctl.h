/*
 * crunctl.h — internals of crunctl, the command-line client of crund.
 *
 * The client is split so that everything that does not talk to the network
 * can be unit-tested without a daemon (tests/test-crunctl-args.c):
 *   args.c            values typed on the command line: durations, counts,
 *                     key=value typed by the job's spec, --args JSON|@FILE|-
 *   format.c          human output: durations, times, tables, colour, progress
 *                     bar, the job table's rows
 *   sse.c             the incremental text/event-stream parser
 *   http.c            the one libcurl handle, the API error mapping, API paths
 *   options.c         the one option parser of the commands (getopt_long)
 *   follow.c          waiting for a job: long-poll, progress view, the event
 *                     stream (submit --wait/--follow, wait, log -f)
 *   crunctl-VERB.c    one file per command (submit, status, wait, ...)
 *   main.c            global options, dispatch, help texts
 */
#ifndef CRUNCTL_H
#define CRUNCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include <getopt.h>
#include <jansson.h>

/* Exit status, documented in crunctl(1) and `crunctl help`.  Scripts rely
 * on these numbers: never renumber them. */
enum crunctl_exit {
	CRUNCTL_EXIT_OK = 0,           /* success: job succeeded / command ok */
	CRUNCTL_EXIT_JOB_FAILED = 1,   /* the job ended in state failed */
	CRUNCTL_EXIT_USAGE = 2,        /* bad command line */
	CRUNCTL_EXIT_CANCELLED = 3,    /* the job ended in state cancelled */
	CRUNCTL_EXIT_WAIT_TIMEOUT = 4, /* the wait ran out, job still active */
	CRUNCTL_EXIT_UNREACHABLE = 5,  /* crund could not be reached */
	CRUNCTL_EXIT_API = 6,          /* the API answered 4xx/5xx */
	CRUNCTL_EXIT_INTERNAL = 7,     /* anything else (out of memory, bad reply) */
};

/* Longest single long-poll the client asks for; longer waits are split. */
#define CRUNCTL_MAX_POLL_SECONDS 300.0

/* Requests that do not wait for anything get this long before the client
 * gives up on a stalled daemon; long-polls get their wait plus this. */
#define CRUNCTL_REQUEST_TIMEOUT 60.0

/* Reals shown to people: 15 significant digits print 0.1 as "0.1", not
 * as its nearest double "0.10000000000000001" (--json is unaffected). */
#define CRUNCTL_HUMAN_REAL JSON_REAL_PRECISION(15)

/* The string member `key` of a JSON object; borrowed, NULL when o is not an
 * object or the member is missing or not a string. */
static inline const char *crunctl_jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* ---- args.c ---------------------------------------------------------- */

/* Parse a duration given by a user: "90", "1.5", "250ms", "90s", "5m",
 * "2h", "1d".  A bare number is seconds.  Negative, NaN, infinite and
 * trailing garbage are refused.  Returns 0 and writes *ret_seconds, or
 * -EINVAL. */
int crunctl_parse_duration(const char *text, double *ret_seconds);

/* Parse a positive integer (e.g. --limit); 0 or -EINVAL. */
int crunctl_parse_count(const char *text, long *ret_count);

/* Parse a moment given by a user (submit --at): an RFC 3339 time with
 * its offset ("2024-05-01T12:00:00Z", "...+02:00"), or a local time as
 * crunctl prints it, "YYYY-MM-DD HH:MM[:SS]" ('T' accepted for the space),
 * read in the local time zone.  Returns 0 and writes *ret_epoch (seconds
 * since the epoch), or -EINVAL. */
int crunctl_parse_time(const char *text, double *ret_epoch);

/* Split a command-line argument "key=value" or "key:=JSON".  On success
 * *ret_key is a new string (caller frees), *ret_value points INTO arg (not
 * owned), *ret_raw tells whether the value is raw JSON (":=").  Returns
 * -EINVAL when arg has no '=' or an empty key. */
int crunctl_split_kv(const char *arg, char **ret_key, const char **ret_value, bool *ret_raw);

/* Turn the text of a key=value argument into JSON by the argument's
 * declared type ("string", "integer", "number", "boolean", "any",
 * "object", "array"; NULL or unknown: string):
 *   integer → JSON integer, number → JSON integer or real,
 *   boolean → true/false/yes/no/on/off/1/0 (any case),
 *   object/array → the JSON text, which must be of that kind,
 *   any → the JSON text if it parses, else the text as a string,
 *   string → the text unchanged.
 * On success *ret is a new reference.  On error returns -EINVAL and
 * writes a sentence naming the key into err. */
int crunctl_typed_value(const char *key, const char *type, const char *text, json_t **ret,
			char *err, size_t errlen);

/* Parse raw JSON given as `key:=JSON`; as above. */
int crunctl_raw_value(const char *key, const char *text, json_t **ret, char *err, size_t errlen);

/* Find the argument spec named `name` in a job object from the plugins API
 * ({"name", "args": [{"name", "type", ...}]}); borrowed or NULL. */
json_t *crunctl_job_find_arg(json_t *job_spec, const char *name);

/* The job's argument names, comma separated ("seconds, message"), or
 * "none" — for error messages.  New string, caller frees; NULL on ENOMEM. */
char *crunctl_job_arg_names(json_t *job_spec);

/* Find job `job` in a plugin object ({"jobs": [...]}); borrowed or NULL. */
json_t *crunctl_plugin_find_job(json_t *plugin, const char *job);

/* --args JSON | @FILE | - : the base object of a job's arguments (the
 * text itself, a file, or standard input; at most 16 MiB).  On success
 * *ret is a new reference.  Errors return a negative errno code and put a
 * sentence into *ret_error (new string, caller frees; NULL after -ENOMEM):
 *   -EINVAL  not JSON or not an object (a usage error),
 *   -EIO     the file or standard input could not be read or is too big,
 *   -ENOMEM  memory ran out. */
int crunctl_load_args(const char *spec, json_t **ret, char **ret_error);

/* Does a command-line operand look like an argument (key=value or
 * key:=JSON with a non-empty key)? */
bool crunctl_is_kv_arg(const char *arg);

/* Type each of kv[0..n_kv) ("key=value" or "key:=JSON") by the argument
 * spec of job `job_spec` (an object of GET /v1/plugins/NAME's "jobs",
 * named plugin/job in messages) and set it in `args` (an object; a later
 * key replaces an earlier one and a key of --args).  Stops at the first
 * error: -EINVAL with a sentence in *ret_error (new string, caller frees)
 * for an operand that is not key=value, an unknown key or a value of the
 * wrong type; -ENOMEM (*ret_error NULL). */
int crunctl_apply_kv(json_t *job_spec, const char *plugin, const char *job, char *const *kv,
		     int n_kv, json_t *args, char **ret_error);

/* Is `state` one of the final states (succeeded, failed, cancelled)? */
bool crunctl_state_is_final(const char *state);

/* The exit status a finished (or not) job state maps to. */
int crunctl_exit_for_state(const char *state);

/* ---- format.c -------------------------------------------------------- */

/* Seconds as people read them: "350ms", "1.2s", "42.0s", "3m04s",
 * "2h05m", "3d04h".  Negative values print as "0ms".  Writes into buf
 * (at least 16 bytes) and returns buf. */
char *crunctl_format_duration(double seconds, char *buf, size_t len);

/* Parsing RFC 3339 times: crd_rfc3339_parse (common/rfc3339.h), the
 * daemon's own parser. */

/* An RFC 3339 time in UTC for the API: "2024-05-01T12:00:03Z", with
 * milliseconds ("...03.250Z") when the moment has a fraction.  Returns
 * buf (at least 32 bytes). */
char *crunctl_format_rfc3339(double epoch, char *buf, size_t len);

/* A moment relative to `now`: "just now", "5s ago", "3m ago", "2h ago",
 * "4d ago", "in 5s" (clock skew).  Returns buf. */
char *crunctl_format_relative(double epoch, double now, char *buf, size_t len);

/* Local time "YYYY-MM-DD HH:MM:SS".  Returns buf. */
char *crunctl_format_local_time(double epoch, char *buf, size_t len);

/* Current wall-clock time, seconds since the epoch. */
double crunctl_now(void);

/* A progress bar line "[#######.............]  35% message", exactly
 * `width` cells for the bar; fraction clamped to [0,1].  Returns buf. */
char *crunctl_format_progress(double fraction, const char *message, int width, char *buf,
			      size_t len);

/* An aligned table of text cells, printed at once when complete.  Cells
 * may carry a colour (an SGR code such as "32"); colour never counts
 * toward a column's width. */
typedef struct crunctl_table crunctl_table;

/* New table with n_cols columns and these headers (copied).  NULL on ENOMEM. */
crunctl_table *crunctl_table_new(size_t n_cols, const char *const *headers);

/* Append a row: exactly n_cols cells (copied; NULL prints as "-") and
 * optional per-cell SGR colour codes (NULL array or NULL entries: none).
 * 0 or -ENOMEM. */
int crunctl_table_add(crunctl_table *t, const char *const *cells, const char *const *colours);

/* Print to out; colour codes are emitted only when `colour` is true.
 * The last column is not padded. */
void crunctl_table_print(const crunctl_table *t, FILE *out, bool colour);

/* Free; NULL is fine. */
void crunctl_table_free(crunctl_table *t);

/* SGR colour code for a job state ("32" green succeeded, "31" red failed,
 * "33" yellow cancelled/running) or NULL. */
const char *crunctl_state_colour(const char *state);

/* A job state for a person: "-" for NULL, the state in its colour when
 * `colour`, else the state.  Returns buf, `state` or a literal. */
const char *crunctl_state_text(const char *state, bool colour, char *buf, size_t len);

/* The time `key` of a job object ("created_at", ...) in seconds since the
 * epoch; false when it is missing or not RFC 3339. */
bool crunctl_job_time(json_t *job, const char *key, double *ret_epoch);

/* How long the job ran (or, unfinished, has been running at `now`); false
 * when it has not started. */
bool crunctl_job_duration(json_t *job, double now, double *ret_seconds);

/* The attempt of a job for a table cell: "2/5", or "-" before its first
 * start (attempt 0) and when the job has no attempt (an older crund).
 * Returns buf. */
char *crunctl_format_attempt(json_t *job, char *buf, size_t len);

/* When a queued job waiting for its run_at (a delay or a retry's backoff)
 * will run: true and *ret_epoch, else false (no run_at: it is due). */
bool crunctl_job_run_at(json_t *job, double *ret_epoch);

/* The columns of a table of jobs (status of several, list). */
#define CRUNCTL_JOB_COLUMNS 7
extern const char *const crunctl_job_headers[CRUNCTL_JOB_COLUMNS];

/* Add a job object as a row of a table made with crunctl_job_headers:
 * id, plugin, job, state (coloured), attempt ("1/3", "-"), age at `now`,
 * and the duration — for a queued job, when it will run ("in 12s", or "-"
 * when due).  0 or -ENOMEM. */
int crunctl_table_add_job(crunctl_table *t, json_t *job, double now);

/* "crunctl: out of memory" on stderr. */
void crunctl_oom(void);

/* ---- sse.c ----------------------------------------------------------- */

/* Called for each complete event: name ("message" when the event had no
 * "event:" line) and data (data lines joined with '\n').  Both borrowed
 * for the call only.  Return 0 to go on, non-zero to stop: crunctl_sse_feed
 * then returns that value. */
typedef int (*crunctl_sse_cb)(const char *event, const char *data, void *userdata);

typedef struct crunctl_sse {
	char *line; /* partial line carried between chunks */
	size_t line_len, line_cap;
	char *event; /* "event:" of the event being built */
	char *data;  /* "data:" lines of the event being built */
	size_t data_len, data_cap;
	bool has_data;
	bool skip_lf; /* last chunk ended in '\r': drop a leading '\n' */
	crunctl_sse_cb cb;
	void *userdata;
} crunctl_sse;

void crunctl_sse_init(crunctl_sse *p, crunctl_sse_cb cb, void *userdata);

/* Feed bytes as they arrive (any split).  Returns 0, -ENOMEM, -E2BIG for
 * a line or event over 4 MiB, or the callback's non-zero value. */
int crunctl_sse_feed(crunctl_sse *p, const char *buf, size_t len);

/* Release buffers (an unfinished event is dropped, as the spec says). */
void crunctl_sse_free(crunctl_sse *p);

/* ---- http.c ---------------------------------------------------------- */

typedef struct crunctl_client crunctl_client;

typedef struct crunctl_response {
	long status; /* HTTP status */
	char *body;  /* NUL-terminated, owned (crunctl_response_free) */
	size_t len;
	double retry_after; /* Retry-After in seconds, or -1 */
} crunctl_response;

typedef struct crunctl_client_opts {
	const char *url;         /* base URL, or NULL */
	const char *socket_path; /* Unix socket, or NULL */
	const char *token;       /* bearer token, or NULL */
	bool verbose;            /* CRUNCTL_DEBUG: curl's verbose trace */
} crunctl_client_opts;

/* Make the client (one curl easy handle, reused for every request so the
 * connection is kept alive).  NULL on failure (message printed). */
crunctl_client *crunctl_client_new(const crunctl_client_opts *opts);
void crunctl_client_free(crunctl_client *c);

/* Where the client talks to, for messages ("http://127.0.0.1:7733",
 * "unix:/run/crund.sock"). Borrowed. */
const char *crunctl_client_where(const crunctl_client *c);

/* One request: method "GET" "POST" "DELETE"; path starts with "/" and is
 * appended to the base URL; body is JSON text or NULL; timeout in seconds
 * (0: none).  On transport success returns 0 and fills *resp (any HTTP
 * status; caller frees).  When crund cannot be reached prints the
 * "not reachable" sentence and returns CRUNCTL_EXIT_UNREACHABLE; other
 * failures print and return CRUNCTL_EXIT_INTERNAL. */
int crunctl_request(crunctl_client *c, const char *method, const char *path, const char *body,
		    double timeout, crunctl_response *resp);

/* Stream GET path through the SSE parser until the server closes or the
 * callback stops.  Returns 0 (ended normally or stopped by the callback),
 * or an exit code as crunctl_request (HTTP errors: the body is put into
 * *resp for the caller to report; *resp is always initialised). */
int crunctl_stream(crunctl_client *c, const char *path, crunctl_sse_cb cb, void *userdata,
		   crunctl_response *resp);

void crunctl_response_free(crunctl_response *resp);

/* Print "crunctl: MESSAGE (code)" for an error reply (falls back to the
 * status line when the body is not the API's error shape) and return
 * CRUNCTL_EXIT_API. */
int crunctl_report_api_error(const crunctl_response *resp);

/* A path segment escaped for a URL; new string or NULL (ENOMEM). */
char *crunctl_escape(crunctl_client *c, const char *segment);

/* "/v1/jobs/ID" + suffix ("/log", or NULL for none), the id escaped;
 * "/v1/plugins/NAME".  New strings; NULL when memory ran out (reported). */
char *crunctl_job_path(crunctl_client *c, const char *id, const char *suffix);
char *crunctl_plugin_path(crunctl_client *c, const char *name);

/* Print a reply body unchanged on stdout (plus a final newline if it lacks
 * one). */
void crunctl_print_raw(const crunctl_response *resp);

/* ---- the program ----------------------------------------------------- */

typedef struct crunctl {
	crunctl_client *client;
	bool json;        /* --json: the API's JSON unchanged */
	bool quiet;       /* --quiet: no confirmations, no progress */
	bool colour;      /* colour on stdout */
	bool tty_err;     /* stderr is a terminal (progress bar) */
	const char *prog; /* "crunctl" */
} crunctl;

/* Request, check the status is 2xx, parse the body as JSON.  On success
 * *resp holds the reply (caller frees) and, when ret is not NULL, *ret the
 * parsed body (new reference).  Otherwise the error is printed, *resp is
 * freed and an exit code returned. */
int crunctl_call(crunctl *ctl, const char *method, const char *path, const char *body,
		 double timeout, crunctl_response *resp, json_t **ret);

/* ---- options.c ------------------------------------------------------- */

/* What options.c's parser passes for an operand (not an option). */
#define CRUNCTL_OPT_OPERAND 1

/* Called for each operand (opt CRUNCTL_OPT_OPERAND, arg the operand) and
 * each of the command's own options (opt its `val`, arg its value or NULL),
 * in command-line order.  Return 0 to go on, or an exit code (after
 * printing why) to stop the parse with it. */
typedef int (*crunctl_option_cb)(crunctl *ctl, int opt, const char *arg, void *userdata);

/* The syntax of one command. */
typedef struct crunctl_syntax {
	const char *command;          /* for usage errors: "submit" */
	const char *short_options;    /* getopt's: "fw", or NULL; flags only */
	const struct option *options; /* getopt_long's, {0}-terminated, or NULL;
	                               * `val` below 0x1000, not 1 */
	bool dashdash;                /* "--" ends the options; without, it is an
	                               * unknown option */
	crunctl_option_cb on_option;
} crunctl_syntax;

/* Parse the arguments of a command (argv after its name) with getopt_long.
 * The global flags --json, -q/--quiet, --no-color/--no-colour are accepted
 * here too and applied to ctl.  Every option must be spelled out as
 * written in the table: "--name", "--name=VALUE" or "--name VALUE" (a
 * required value), "-c"; abbreviations, bundles ("-qf") and "--flag=x" are
 * "unknown option".  Returns 0, an exit code from the callback, or
 * CRUNCTL_EXIT_USAGE after printing the usage error. */
int crunctl_parse_options(crunctl *ctl, const crunctl_syntax *syntax, int argc, char **argv,
			  void *userdata);

/* The arguments of the commands that act on jobs (status, cancel, rm):
 * the global flags and at least one ID.  *ret_ids (free it; the strings
 * are argv's) and *ret_n on success; else an exit code, the error printed. */
int crunctl_parse_ids(crunctl *ctl, const char *command, int argc, char **argv, char ***ret_ids,
		      int *ret_n);

/* For commands acting on several jobs: keep the first failure's exit code
 * in *rc; true when the daemon is unreachable (no point going on). */
static inline bool crunctl_merge_rc(int *rc, int one)
{
	if (one && !*rc)
		*rc = one;
	return one == CRUNCTL_EXIT_UNREACHABLE;
}

/* ---- follow.c -------------------------------------------------------- */

/* What shows a job's progress while crunctl waits: a bar redrawn in place
 * on stderr when it is a terminal (and neither --quiet nor --json), else
 * nothing or a line per change.  On the stack of the command. */
typedef struct crunctl_progress {
	crunctl *ctl;
	bool bar; /* draw a bar (stderr is a terminal) */
	double last_fraction;
	char *last_message;
	bool have;
} crunctl_progress;

/* Start a view; with `allow_bar` a bar is drawn when stderr is a terminal,
 * and SIGINT/SIGTERM erase it before ending crunctl. */
void crunctl_progress_init(crunctl_progress *pv, crunctl *ctl, bool allow_bar);

/* Erase the bar and restore the signals. */
void crunctl_progress_done(crunctl_progress *pv);

/* Long-poll GET /v1/jobs/{id}?wait= in chunks of at most 300 s (0.5 s
 * while a progress bar is shown, so it moves) until the job is final or
 * the deadline (crunctl_now() based; INFINITY: none) passes.  *job and
 * *resp come in with the last state known (or NULL and zeroed) and hold
 * the last state on return 0; the caller checks whether it is final.
 * Otherwise an exit code (error printed). */
int crunctl_wait_job(crunctl *ctl, const char *id, double deadline, crunctl_progress *pv,
		     json_t **job, crunctl_response *resp);

/* Print the outcome of a waited-for job and return the exit code by its
 * state: the result on stdout (or the job object with --json), a failure
 * ("failed after 3 attempts: ..." when it had more than one) or "still
 * running after `waited` s" on stderr. */
int crunctl_finish_job(crunctl *ctl, json_t *job, const crunctl_response *resp, double waited);

/* How crunctl_follow_job shows a job. */
typedef struct crunctl_follow_opts {
	FILE *log_out;      /* where log lines go */
	bool show_progress; /* progress events: the view (JSON lines with --json) */
	bool show_state;    /* state changes: "job ID: STATE" on stderr */
} crunctl_follow_opts;

/* Print the job's log so far and then its events as they come, until the
 * end event or until crund closes the stream.  Returns 0 or an exit code
 * (error printed). */
int crunctl_follow_job(crunctl *ctl, const char *id, crunctl_progress *pv,
		       const crunctl_follow_opts *opts);

/* ---- crunctl-VERB.c: each takes the arguments after the command name. */
int crunctl_cmd_submit(crunctl *ctl, int argc, char **argv);
int crunctl_cmd_status(crunctl *ctl, int argc, char **argv);
int crunctl_cmd_wait(crunctl *ctl, int argc, char **argv);
int crunctl_cmd_cancel(crunctl *ctl, int argc, char **argv);
int crunctl_cmd_retry(crunctl *ctl, int argc, char **argv);
int crunctl_cmd_rm(crunctl *ctl, int argc, char **argv);
int crunctl_cmd_list(crunctl *ctl, int argc, char **argv);
int crunctl_cmd_log(crunctl *ctl, int argc, char **argv);
int crunctl_cmd_plugins(crunctl *ctl, int argc, char **argv);
int crunctl_cmd_info(crunctl *ctl, int argc, char **argv);
int crunctl_cmd_health(crunctl *ctl, int argc, char **argv);

/* main.c: print the usage line of a command and the "Try" hint to stderr,
 * after "crunctl: " + msg when msg is not NULL.  Returns CRUNCTL_EXIT_USAGE. */
int crunctl_usage_error(const char *command, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* CRUNCTL_H */
