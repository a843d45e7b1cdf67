/*
 * commands.c — one function per crunctl command.
 *
 * Each command parses its own arguments (global flags such as --json are
 * accepted after the command too), talks to crund through http.c and prints
 * either the API's JSON unchanged (--json) or text for people.  Data goes
 * to stdout; errors, progress and confirmations go to stderr, so
 * `id=$(crunctl submit ...)` and `crunctl submit --wait ... > result.json`
 * capture only what they ask for.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crunctl.h"

/* Requests that do not wait for anything get this long before the client
 * gives up on a stalled daemon; long-polls get their wait plus this. */
#define REQUEST_TIMEOUT       60.0
#define LIST_DEFAULT_LIMIT    50
#define LIST_PAGE_MAX         100
#define ARGS_FILE_MAX         (16u << 20)
#define PROGRESS_BAR_WIDTH    30
/* Reals shown to people: 15 significant digits print 0.1 as "0.1", not
 * as its nearest double "0.10000000000000001" (--json is unaffected). */
#define HUMAN_REAL            JSON_REAL_PRECISION(15)
/* With a progress bar on a terminal, long-polls are this short so the bar
 * moves (two small requests a second while someone watches). */
#define PROGRESS_POLL_SECONDS 0.5

/* ---------------------------------------------------------------- helpers */

static void oom(void) { fprintf(stderr, "crunctl: out of memory\n"); }

/* Print a reply body unchanged (plus a final newline if it lacks one). */
static void print_raw(const crunctl_response *resp)
{
	fwrite(resp->body, 1, resp->len, stdout);
	if (resp->len && resp->body[resp->len - 1] != '\n')
		putchar('\n');
}

/* Request, check the status is one of the good ones (2xx), parse JSON.
 * On success *ret is a new reference (may be NULL when want_json is
 * false) and resp holds the body (caller frees).  Otherwise the error is
 * printed and an exit code returned (resp freed). */
static int call(crunctl *ctl, const char *method, const char *path, const char *body,
		double timeout, crunctl_response *resp, json_t **ret)
{
	json_error_t jerr;
	int rc = crunctl_request(ctl->client, method, path, body, timeout, resp);

	if (rc)
		return rc;
	if (resp->status < 200 || resp->status >= 300) {
		rc = crunctl_report_api_error(resp);
		crunctl_response_free(resp);
		return rc;
	}
	if (!ret)
		return 0;
	*ret = json_loadb(resp->body, resp->len, JSON_DECODE_ANY, &jerr);
	if (!*ret) {
		fprintf(stderr, "crunctl: crund sent a reply that is not JSON (%s)\n", jerr.text);
		crunctl_response_free(resp);
		return CRUNCTL_EXIT_INTERNAL;
	}
	return 0;
}

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* "/v1/jobs/ID" + suffix with the id escaped; NULL on ENOMEM (reported). */
static char *job_path(crunctl *ctl, const char *id, const char *suffix)
{
	char *e = crunctl_escape(ctl->client, id), *p = NULL;

	if (!e || asprintf(&p, "/v1/jobs/%s%s", e, suffix ? suffix : "") < 0)
		p = NULL;
	free(e);
	if (!p)
		oom();
	return p;
}

/* Global flags are accepted after the command as well. */
static bool global_flag(crunctl *ctl, const char *a)
{
	if (strcmp(a, "--json") == 0) {
		ctl->json = true;
		ctl->colour = false;
	} else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
		ctl->quiet = true;
	} else if (strcmp(a, "--no-color") == 0 || strcmp(a, "--no-colour") == 0) {
		ctl->colour = false;
	} else {
		return false;
	}
	return true;
}

/* Option `name` with a value, as "--name VALUE" or "--name=VALUE".
 * Returns 1 when matched (*val set), 0 when argv[*i] is another option,
 * -1 after printing a usage error (the value is missing). */
static int opt_value(const char *cmd, int argc, char **argv, int *i, const char *name,
		     const char **val)
{
	size_t n = strlen(name);
	const char *a = argv[*i];

	if (strncmp(a, name, n) != 0)
		return 0;
	if (a[n] == '=') {
		*val = a + n + 1;
		return 1;
	}
	if (a[n] != '\0')
		return 0;
	if (*i + 1 >= argc) {
		crunctl_usage_error(cmd, "option '%s' needs a value", name);
		return -1;
	}
	*i += 1;
	*val = argv[*i];
	return 1;
}

static bool is_option(const char *a) { return a[0] == '-' && a[1] != '\0'; }

static const char *state_text(crunctl *ctl, const char *state, char *buf, size_t len)
{
	const char *col = crunctl_state_colour(state);

	if (!state)
		return "-";
	if (ctl->colour && col) {
		snprintf(buf, len, "\033[%sm%s\033[0m", col, state);
		return buf;
	}
	return state;
}

static bool time_of(json_t *job, const char *key, double *ret)
{
	const char *t = jstr(job, key);
	return t && crunctl_parse_rfc3339(t, ret) == 0;
}

/* How long the job ran (or has been running); false when it has not started. */
static bool job_duration(json_t *job, double now, double *ret)
{
	double start, end;

	if (!time_of(job, "started_at", &start))
		return false;
	if (!time_of(job, "finished_at", &end))
		end = now;
	*ret = end - start;
	return true;
}

/* ------------------------------------------------------- progress output */

/* Whether a bar is on the terminal now, for the signal handler to erase it. */
static volatile sig_atomic_t bar_drawn;

static void on_interrupt(int sig)
{
	static const char erase[] = "\r\033[K";

	if (bar_drawn) {
		ssize_t w = write(STDERR_FILENO, erase, sizeof(erase) - 1);
		(void)w;
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

typedef struct progress_view {
	crunctl *ctl;
	bool bar; /* draw a bar (stderr is a terminal) */
	double last_fraction;
	char *last_message;
	bool have;
} progress_view;

static void progress_init(progress_view *pv, crunctl *ctl)
{
	memset(pv, 0, sizeof(*pv));
	pv->ctl = ctl;
	pv->bar = ctl->tty_err && !ctl->quiet && !ctl->json;
	pv->last_fraction = -1;
	if (pv->bar) {
		signal(SIGINT, on_interrupt);
		signal(SIGTERM, on_interrupt);
	}
}

static void progress_clear(progress_view *pv)
{
	if (bar_drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		bar_drawn = 0;
	}
}

static void progress_redraw(progress_view *pv)
{
	char line[512];

	if (!pv->bar || !pv->have)
		return;
	crunctl_format_progress(pv->last_fraction, pv->last_message, PROGRESS_BAR_WIDTH, line,
				sizeof(line));
	fprintf(stderr, "\r\033[K%s", line);
	fflush(stderr);
	bar_drawn = 1;
}

/* A progress report {fraction, message}: a bar on a terminal, otherwise
 * (when `lines`) a line per change; nothing when quiet. */
static void progress_update(progress_view *pv, json_t *progress, bool lines)
{
	json_t *f = json_object_get(progress, "fraction");
	const char *msg = jstr(progress, "message");
	double fraction;

	if (!json_is_number(f) || pv->ctl->quiet || pv->ctl->json)
		return;
	fraction = json_number_value(f);
	if (pv->have && fraction == pv->last_fraction &&
	    ((!msg && !pv->last_message) ||
	     (msg && pv->last_message && strcmp(msg, pv->last_message) == 0)))
		return;
	free(pv->last_message);
	pv->last_message = msg ? strdup(msg) : NULL;
	pv->last_fraction = fraction;
	pv->have = true;
	if (pv->bar) {
		progress_redraw(pv);
	} else if (lines) {
		char line[512];
		crunctl_format_progress(fraction, msg, 20, line, sizeof(line));
		fprintf(stderr, "%s\n", line);
	}
}

static void progress_done(progress_view *pv)
{
	progress_clear(pv);
	free(pv->last_message);
	pv->last_message = NULL;
	if (pv->bar) {
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
	}
}

/* ------------------------------------------------------- waiting for jobs */

/* Long-poll GET /v1/jobs/{id}?wait= in chunks of at most 300 s (0.5 s
 * while a progress bar is shown, so it moves) until the job is final or the
 * deadline (INFINITY: none) passes.  *job and *resp hold the last state
 * on return 0 (the caller checks whether it is final). */
static int wait_job(crunctl *ctl, const char *id, double deadline, progress_view *pv, json_t **job,
		    crunctl_response *resp)
{
	char *base = job_path(ctl, id, NULL);
	int rc = 0;

	if (!base)
		return CRUNCTL_EXIT_INTERNAL;
	for (;;) {
		double now = crunctl_now(), left = deadline - now, chunk;
		char *path;
		json_t *j;
		crunctl_response r;

		if (*job && crunctl_state_is_final(jstr(*job, "state")))
			break;
		if (*job && left <= 0)
			break;
		chunk = fmin(left, CRUNCTL_MAX_POLL_SECONDS);
		if (pv->bar)
			chunk = fmin(chunk, PROGRESS_POLL_SECONDS);
		if (chunk >= 0.001)
			rc = asprintf(&path, "%s?wait=%.3f", base, chunk);
		else
			rc = asprintf(&path, "%s", base);
		if (rc < 0) {
			oom();
			rc = CRUNCTL_EXIT_INTERNAL;
			break;
		}
		rc = call(ctl, "GET", path, NULL, fmax(chunk, 0) + REQUEST_TIMEOUT, &r, &j);
		free(path);
		if (rc)
			break;
		json_decref(*job);
		crunctl_response_free(resp);
		*job = j;
		*resp = r;
		if (json_is_object(json_object_get(j, "progress")))
			progress_update(pv, json_object_get(j, "progress"), false);
		/* A daemon that answers a long-poll at once (an older one, or a
		 * progress change) must not make this a busy loop. */
		if (!crunctl_state_is_final(jstr(j, "state")) && crunctl_now() - now < 0.1 &&
		    chunk >= PROGRESS_POLL_SECONDS) {
			struct timespec ts = {0, 100 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	free(base);
	return rc;
}

/* Print the outcome of a waited-for job and return the exit code by its
 * state: the result on stdout (human), or the job object (--json). */
static int finish_job(crunctl *ctl, json_t *job, const crunctl_response *resp, double waited)
{
	const char *state = jstr(job, "state");
	const char *id = jstr(job, "id");
	json_t *err = json_object_get(job, "error");
	const char *emsg = jstr(err, "message"), *ecode = jstr(err, "code");
	int code = crunctl_exit_for_state(state);

	if (ctl->json)
		print_raw(resp);
	if (!state) {
		fprintf(stderr, "crunctl: crund sent a job without a state\n");
		return CRUNCTL_EXIT_INTERNAL;
	}
	switch (code) {
	case CRUNCTL_EXIT_OK:
		if (!ctl->json) {
			json_t *result = json_object_get(job, "result");
			if (result && !json_is_null(result)) {
				char *text = json_dumps(result, JSON_INDENT(2) | JSON_ENCODE_ANY |
									HUMAN_REAL);
				if (!text) {
					oom();
					return CRUNCTL_EXIT_INTERNAL;
				}
				puts(text);
				free(text);
			}
		}
		break;
	case CRUNCTL_EXIT_JOB_FAILED:
	case CRUNCTL_EXIT_CANCELLED:
		fprintf(stderr, "crunctl: job %s %s", id ? id : "?",
			code == CRUNCTL_EXIT_JOB_FAILED ? "failed" : "was cancelled");
		if (emsg)
			fprintf(stderr, ": %s", emsg);
		if (ecode)
			fprintf(stderr, " (%s)", ecode);
		fputc('\n', stderr);
		break;
	default: {
		char d[32];
		fprintf(stderr,
			"crunctl: job %s is still %s after %s; wait for it with: crunctl wait %s\n",
			id ? id : "?", state, crunctl_format_duration(waited, d, sizeof(d)),
			id ? id : "ID");
		break;
	}
	}
	return code;
}

/* ------------------------------------------------------------ job events */

/* Following a job: its event stream, plus the log lines it had before.
 *
 * crund's stream does not replay the log, so the log so far comes from
 * GET /v1/jobs/{id}/log.  To lose no line between the two requests, the
 * stream is opened first and the log fetched (on a second connection) once
 * the stream's first event shows the subscription is in place.  Lines
 * logged between the subscription and the fetch then arrive twice: in the
 * fetched text and as the stream's first log events.  Each log event is
 * rendered as the /log line it stands for ("TIME LEVEL message", time to
 * the millisecond), and the stream's leading events that match the fetched
 * text in order are skipped; the first one that does not ends the overlap. */
typedef struct follow_state {
	crunctl *ctl;
	progress_view *pv;
	const char *id;
	FILE *log_out;      /* where log lines go */
	bool show_progress; /* print progress events */
	bool show_state;    /* print state changes */
	bool ended;         /* the end event arrived */
	bool fetched;       /* the log so far was fetched and printed */
	int fetch_rc;       /* its exit code when it failed */
	char *log_text;     /* the fetched log, for the overlap check */
	size_t overlap_pos; /* where in log_text the next match may start */
	bool overlap;       /* still skipping events already printed */
	char *last_state;
} follow_state;

static bool is_end_event(const char *event)
{
	static const char *const names[] = {"end", "done", "final", "complete", "close"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(event, names[i]) == 0)
			return true;
	return false;
}

/* The /log line a log event stands for: a new string, or NULL when the
 * event has no message (or memory ran out). */
static char *log_event_line(json_t *data)
{
	const char *msg = NULL, *time = jstr(data, "time"), *level = jstr(data, "level");
	char *line = NULL;

	if (json_is_string(data))
		msg = json_string_value(data);
	else if (json_is_object(data))
		msg = jstr(data, "message") ? jstr(data, "message") : jstr(data, "line");
	if (!msg)
		return NULL;
	if (time && level) {
		if (asprintf(&line, "%s %s %s", time, level, msg) < 0)
			line = NULL;
	} else {
		line = strdup(msg);
	}
	return line;
}

/* Is `line` a whole line of the fetched log at or after overlap_pos?  Then
 * move past it. */
static bool consume_overlap(follow_state *fs, const char *line)
{
	size_t n = strlen(line);
	const char *p = fs->log_text + fs->overlap_pos;

	while ((p = strstr(p, line)) != NULL) {
		bool starts = p == fs->log_text || p[-1] == '\n';
		bool whole = p[n] == '\n' || p[n] == '\0';
		if (starts && whole) {
			fs->overlap_pos = (size_t)(p - fs->log_text) + n + (p[n] == '\n');
			return true;
		}
		p++;
	}
	return false;
}

static void print_log_line(follow_state *fs, json_t *data, const char *raw)
{
	char *line = log_event_line(data);

	if (fs->overlap && line && fs->log_text && consume_overlap(fs, line)) {
		free(line);
		return;
	}
	fs->overlap = false;
	if (fs->ctl->json) {
		printf("%s\n", raw);
	} else {
		if (fs->log_out == stderr)
			progress_clear(fs->pv);
		fprintf(fs->log_out, "%s\n", line ? line : raw);
		if (fs->log_out == stderr)
			progress_redraw(fs->pv);
	}
	fflush(fs->log_out);
	free(line);
}

/* GET /v1/jobs/{id}/log, printed where log lines go (as {"message": line}
 * JSON lines with --json) and kept for the overlap check. */
static int fetch_log_so_far(follow_state *fs)
{
	crunctl *ctl = fs->ctl;
	char *path = job_path(ctl, fs->id, "/log");
	crunctl_response resp;
	int rc;

	if (!path)
		return CRUNCTL_EXIT_INTERNAL;
	rc = call(ctl, "GET", path, NULL, REQUEST_TIMEOUT, &resp, NULL);
	free(path);
	if (rc)
		return rc;
	if (ctl->json) {
		for (char *line = resp.body, *nl; line && *line; line = nl ? nl + 1 : NULL) {
			json_t *o;
			char *text;
			nl = strchr(line, '\n');
			if (nl)
				*nl = '\0';
			o = json_pack("{s:s}", "message", line);
			text = o ? json_dumps(o, JSON_COMPACT) : NULL;
			if (text)
				fprintf(fs->log_out, "%s\n", text);
			free(text);
			json_decref(o);
			if (nl)
				*nl = '\n';
		}
	} else {
		if (fs->log_out == stderr)
			progress_clear(fs->pv);
		fwrite(resp.body, 1, resp.len, fs->log_out);
		if (fs->log_out == stderr)
			progress_redraw(fs->pv);
	}
	fflush(fs->log_out);
	fs->log_text = resp.body; /* taken over from resp */
	fs->overlap_pos = 0;
	fs->overlap = true;
	return 0;
}

static int on_event(const char *event, const char *data, void *userdata)
{
	follow_state *fs = userdata;
	json_t *d;
	bool end = is_end_event(event);

	/* The first event (crund sends the job's state) means the stream is
	 * subscribed: fetch the log so far, after showing that state. */
	if (!fs->fetched && strcmp(event, "log") == 0) {
		fs->fetched = true;
		fs->fetch_rc = fetch_log_so_far(fs);
		if (fs->fetch_rc)
			return 1;
	}
	d = json_loads(data, JSON_DECODE_ANY, NULL);
	if (strcmp(event, "log") == 0) {
		print_log_line(fs, d, data);
	} else if (fs->ctl->json) {
		/* JSON lines: each event's data as sent. */
		if (fs->show_progress)
			printf("%s\n", data);
		fflush(stdout);
	} else if (strcmp(event, "progress") == 0 && fs->show_progress) {
		json_t *p = json_object_get(d, "progress");
		progress_update(fs->pv, json_is_object(p) ? p : d, true);
	} else if ((strcmp(event, "state") == 0 || end) && fs->show_state && !fs->ctl->quiet) {
		const char *st = jstr(d, "state");
		json_t *p = json_object_get(d, "progress");
		if (st && (!fs->last_state || strcmp(st, fs->last_state) != 0)) {
			char *copy = strdup(st);
			if (copy) {
				free(fs->last_state);
				fs->last_state = copy;
				progress_clear(fs->pv);
				fprintf(stderr, "job %s: %s\n", jstr(d, "id") ? jstr(d, "id") : "",
					st);
				progress_redraw(fs->pv);
			}
		}
		/* progress reported before the stream was opened */
		if (json_is_object(p) && fs->show_progress)
			progress_update(fs->pv, p, true);
	}
	json_decref(d);
	if (!fs->fetched) {
		fs->fetched = true;
		fs->fetch_rc = fetch_log_so_far(fs);
		if (fs->fetch_rc)
			return 1;
	}
	if (end) {
		fs->ended = true;
		return 1;
	}
	return 0;
}

/* Stream the job's events (with its log so far, see above) until the end
 * event or until the server closes the stream.  Returns 0 or an exit code. */
static int follow_events(crunctl *ctl, const char *id, follow_state *fs)
{
	char *path = job_path(ctl, id, "/events");
	crunctl_response resp;
	int rc;

	if (!path)
		return CRUNCTL_EXIT_INTERNAL;
	fs->id = id;
	rc = crunctl_stream(ctl->client, path, on_event, fs, &resp);
	free(path);
	if (rc == 0 && fs->fetch_rc)
		rc = fs->fetch_rc;
	else if (rc == 0 && resp.status != 200)
		rc = crunctl_report_api_error(&resp);
	else if (rc == 0 && !fs->fetched)
		rc = fetch_log_so_far(fs); /* a stream that sent nothing */
	crunctl_response_free(&resp);
	free(fs->log_text);
	fs->log_text = NULL;
	return rc;
}

/* ---------------------------------------------------------------- submit */

static char *read_all(FILE *f, const char *what)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);

	if (!buf) {
		oom();
		return NULL;
	}
	for (;;) {
		size_t n;
		if (len + 1 == cap) {
			char *nb;
			if (cap >= ARGS_FILE_MAX) {
				fprintf(stderr, "crunctl: %s is larger than %u MiB\n", what,
					ARGS_FILE_MAX >> 20);
				free(buf);
				return NULL;
			}
			nb = realloc(buf, cap * 2);
			if (!nb) {
				oom();
				free(buf);
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		fprintf(stderr, "crunctl: cannot read %s: %s\n", what, strerror(errno));
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	return buf;
}

/* --args JSON | @FILE | - : the base object of the job's arguments. */
static int load_args_option(const char *spec, json_t **ret)
{
	char *text = NULL, what[512];
	json_error_t jerr;
	json_t *v;

	if (strcmp(spec, "-") == 0) {
		snprintf(what, sizeof(what), "standard input");
		text = read_all(stdin, what);
		if (!text)
			return CRUNCTL_EXIT_USAGE;
	} else if (spec[0] == '@') {
		FILE *f = fopen(spec + 1, "r");
		snprintf(what, sizeof(what), "'%s'", spec + 1);
		if (!f) {
			fprintf(stderr, "crunctl: cannot open %s: %s\n", what, strerror(errno));
			return CRUNCTL_EXIT_USAGE;
		}
		text = read_all(f, what);
		fclose(f);
		if (!text)
			return CRUNCTL_EXIT_USAGE;
	} else {
		snprintf(what, sizeof(what), "--args");
	}
	v = json_loads(text ? text : spec, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (!v || !json_is_object(v)) {
		json_decref(v);
		if (v)
			return crunctl_usage_error("submit", "%s must be a JSON object", what);
		return crunctl_usage_error("submit",
					   "%s is not valid JSON: %s (line %d, column %d)", what,
					   jerr.text, jerr.line, jerr.column);
	}
	*ret = v;
	return 0;
}

/* Type every key=value by the job's argument spec (fetched only when some
 * key=value is given, so a plain submit makes one request). */
static int apply_kv_args(crunctl *ctl, const char *plugin, const char *job, char **kv, int n_kv,
			 json_t *args)
{
	crunctl_response resp;
	json_t *pl = NULL, *spec;
	char *esc, *path = NULL, err[1024];
	int rc = 0;

	if (n_kv == 0)
		return 0;
	esc = crunctl_escape(ctl->client, plugin);
	if (!esc || asprintf(&path, "/v1/plugins/%s", esc) < 0) {
		free(esc);
		oom();
		return CRUNCTL_EXIT_INTERNAL;
	}
	free(esc);
	rc = call(ctl, "GET", path, NULL, REQUEST_TIMEOUT, &resp, &pl);
	free(path);
	if (rc)
		return rc;
	crunctl_response_free(&resp);
	/* Accept {"plugin": {...}} as well as the plugin object itself. */
	if (json_is_object(json_object_get(pl, "plugin")))
		spec = crunctl_plugin_find_job(json_object_get(pl, "plugin"), job);
	else
		spec = crunctl_plugin_find_job(pl, job);
	if (!spec) {
		fprintf(stderr, "crunctl: plugin '%s' has no job '%s'; see: crunctl plugins %s\n",
			plugin, job, plugin);
		json_decref(pl);
		return CRUNCTL_EXIT_API;
	}
	for (int i = 0; i < n_kv && rc == 0; i++) {
		char *key;
		const char *text;
		bool raw;
		json_t *a, *v;

		if (crunctl_split_kv(kv[i], &key, &text, &raw) < 0) {
			rc = crunctl_usage_error("submit", "'%s' is not key=value", kv[i]);
			break;
		}
		a = crunctl_job_find_arg(spec, key);
		if (!a) {
			char *names = crunctl_job_arg_names(spec);
			rc = crunctl_usage_error(
				"submit", "job %s/%s has no argument '%s'; its arguments: %s",
				plugin, job, key, names ? names : "?");
			free(names);
		} else if ((raw ? crunctl_raw_value(key, text, &v, err, sizeof(err))
				: crunctl_typed_value(key, jstr(a, "type"), text, &v, err,
						      sizeof(err))) < 0) {
			rc = crunctl_usage_error("submit", "%s", err);
		} else if (json_object_set_new(args, key, v) < 0) {
			oom();
			rc = CRUNCTL_EXIT_INTERNAL;
		}
		free(key);
	}
	json_decref(pl);
	return rc;
}

int crunctl_cmd_submit(crunctl *ctl, int argc, char **argv)
{
	const char *pos[2] = {NULL, NULL}, *args_opt = NULL, *timeout_opt = NULL, *idem = NULL,
		   *val;
	char **kv = calloc((size_t)argc + 1, sizeof(*kv));
	bool isolated = false, wait = false, follow = false, dashdash = false;
	double wait_for = INFINITY, timeout = 0, t0;
	int n_pos = 0, n_kv = 0, rc = 0, m;
	json_t *args = NULL, *body = NULL, *job = NULL;
	crunctl_response resp = {0};
	char *text = NULL, *path = NULL;
	const char *id;

	if (!kv) {
		oom();
		return CRUNCTL_EXIT_INTERNAL;
	}
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (dashdash || !is_option(a)) {
			if (n_pos < 2)
				pos[n_pos++] = a;
			else
				kv[n_kv++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			dashdash = true;
		} else if (global_flag(ctl, a)) {
		} else if (strcmp(a, "--isolated") == 0) {
			isolated = true;
		} else if (strcmp(a, "--follow") == 0 || strcmp(a, "-f") == 0) {
			follow = true;
		} else if (strcmp(a, "--wait") == 0 || strcmp(a, "-w") == 0) {
			wait = true;
		} else if (strncmp(a, "--wait=", 7) == 0) {
			wait = true;
			if (crunctl_parse_duration(a + 7, &wait_for) < 0) {
				rc = crunctl_usage_error(
					"submit", "'%s' is not a duration (e.g. 30, 90s, 5m)",
					a + 7);
				goto out;
			}
		} else if ((m = opt_value("submit", argc, argv, &i, "--args", &val)) != 0) {
			if (m < 0) {
				rc = CRUNCTL_EXIT_USAGE;
				goto out;
			}
			args_opt = val;
		} else if ((m = opt_value("submit", argc, argv, &i, "--timeout", &val)) != 0) {
			if (m < 0) {
				rc = CRUNCTL_EXIT_USAGE;
				goto out;
			}
			timeout_opt = val;
		} else if ((m = opt_value("submit", argc, argv, &i, "--idempotency-key", &val)) !=
			   0) {
			if (m < 0) {
				rc = CRUNCTL_EXIT_USAGE;
				goto out;
			}
			idem = val;
		} else {
			rc = crunctl_usage_error("submit", "unknown option '%s'", a);
			goto out;
		}
	}
	if (n_pos < 2) {
		rc = crunctl_usage_error("submit",
					 n_pos ? "missing JOB" : "missing PLUGIN and JOB");
		goto out;
	}
	for (int i = 0; i < n_kv; i++) {
		if (!strchr(kv[i], '=') || kv[i][0] == '=' ||
		    (kv[i][0] == ':' && kv[i][1] == '=')) {
			rc = crunctl_usage_error(
				"submit",
				"'%s' is not an argument; give arguments as key=value "
				"or key:=JSON",
				kv[i]);
			goto out;
		}
	}
	if (timeout_opt && (crunctl_parse_duration(timeout_opt, &timeout) < 0 || timeout <= 0)) {
		rc = crunctl_usage_error("submit", "'%s' is not a duration (e.g. 30, 90s, 5m)",
					 timeout_opt);
		goto out;
	}
	if (args_opt) {
		rc = load_args_option(args_opt, &args);
		if (rc)
			goto out;
	} else {
		args = json_object();
		if (!args) {
			oom();
			rc = CRUNCTL_EXIT_INTERNAL;
			goto out;
		}
	}
	rc = apply_kv_args(ctl, pos[0], pos[1], kv, n_kv, args);
	if (rc)
		goto out;

	body = json_pack("{s:s, s:s, s:O}", "plugin", pos[0], "job", pos[1], "args", args);
	if (!body || (timeout_opt && json_object_set_new(body, "timeout", json_real(timeout))) ||
	    (isolated && json_object_set_new(body, "context", json_string("isolated"))) ||
	    (idem && json_object_set_new(body, "idempotency_key", json_string(idem)))) {
		fprintf(stderr, "crunctl: the job's plugin, name or key is not valid UTF-8, or "
				"memory ran out\n");
		rc = CRUNCTL_EXIT_USAGE;
		goto out;
	}
	text = json_dumps(body, JSON_COMPACT);
	if (!text) {
		oom();
		rc = CRUNCTL_EXIT_INTERNAL;
		goto out;
	}
	/* --wait without --follow: let the submission itself long-poll, which
	 * saves a round trip for short jobs.  With a progress bar, return at
	 * once so the bar can start moving. */
	t0 = crunctl_now();
	if (wait && !follow && !(ctl->tty_err && !ctl->quiet && !ctl->json) && wait_for > 0) {
		if (asprintf(&path, "/v1/jobs?wait=%.3f",
			     fmin(wait_for, CRUNCTL_MAX_POLL_SECONDS)) < 0)
			path = NULL;
	} else {
		path = strdup("/v1/jobs");
	}
	if (!path) {
		oom();
		rc = CRUNCTL_EXIT_INTERNAL;
		goto out;
	}
	rc = call(ctl, "POST", path, text,
		  (wait ? fmin(wait_for, CRUNCTL_MAX_POLL_SECONDS) : 0) + REQUEST_TIMEOUT, &resp,
		  &job);
	if (rc)
		goto out;
	id = jstr(job, "id");
	if (!id) {
		fprintf(stderr, "crunctl: crund accepted the job but sent no id\n");
		rc = CRUNCTL_EXIT_INTERNAL;
		goto out;
	}
	if (!wait && !follow) {
		if (ctl->json)
			print_raw(&resp);
		else
			printf("%s\n", id);
		goto out;
	}
	{
		char *job_id = strdup(id);
		progress_view pv;
		double deadline = t0 + wait_for;

		if (!job_id) {
			oom();
			rc = CRUNCTL_EXIT_INTERNAL;
			goto out;
		}
		progress_init(&pv, ctl);
		if (pv.bar && !crunctl_state_is_final(jstr(job, "state")))
			fprintf(stderr, "job %s submitted\n", job_id);
		if (follow && !crunctl_state_is_final(jstr(job, "state"))) {
			follow_state fs = {.ctl = ctl,
					   .pv = &pv,
					   .log_out = ctl->json ? stdout : stderr,
					   .show_progress = true,
					   .show_state = true};
			rc = follow_events(ctl, job_id, &fs);
			free(fs.last_state);
			/* Whatever the stream said, the job object is the truth:
			 * fetch it (and keep waiting if the stream broke early). */
			if (rc == 0) {
				json_decref(job);
				job = NULL;
			}
		}
		if (rc == 0)
			rc = wait_job(ctl, job_id, deadline, &pv, &job, &resp);
		progress_done(&pv);
		if (rc == 0)
			rc = finish_job(ctl, job, &resp, crunctl_now() - t0);
		free(job_id);
	}
out:
	crunctl_response_free(&resp);
	json_decref(job);
	json_decref(body);
	json_decref(args);
	free(text);
	free(path);
	free(kv);
	return rc;
}

/* ---------------------------------------------------------------- status */

static void detail_line(const char *label, const char *value) { printf("%-13s%s\n", label, value); }

static void detail_time(json_t *job, const char *key, const char *label, double now)
{
	double t;
	char abs[64], rel[32], line[128];

	if (!time_of(job, key, &t))
		return;
	snprintf(line, sizeof(line), "%s (%s)", crunctl_format_local_time(t, abs, sizeof(abs)),
		 crunctl_format_relative(t, now, rel, sizeof(rel)));
	detail_line(label, line);
}

static void detail_json(const char *label, json_t *v)
{
	char *text;

	if (!v || json_is_null(v))
		return;
	text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | HUMAN_REAL);
	if (text && strlen(text) > 200) {
		/* big values get their own indented block */
		free(text);
		text = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY | HUMAN_REAL);
		if (text) {
			printf("%s\n%s\n", label, text);
			free(text);
		}
		return;
	}
	if (text)
		detail_line(label, text);
	free(text);
}

static void print_job_detail(crunctl *ctl, json_t *job)
{
	double now = crunctl_now(), d;
	char buf[512], sbuf[64];
	json_t *progress = json_object_get(job, "progress"), *err = json_object_get(job, "error");
	json_t *timeout = json_object_get(job, "timeout");

	detail_line("ID:", jstr(job, "id") ? jstr(job, "id") : "-");
	detail_line("Plugin:", jstr(job, "plugin") ? jstr(job, "plugin") : "-");
	detail_line("Job:", jstr(job, "job") ? jstr(job, "job") : "-");
	detail_line("State:", state_text(ctl, jstr(job, "state"), sbuf, sizeof(sbuf)));
	detail_json("Args:", json_object_get(job, "args"));
	detail_time(job, "created_at", "Created:", now);
	detail_time(job, "started_at", "Started:", now);
	detail_time(job, "finished_at", "Finished:", now);
	if (job_duration(job, now, &d)) {
		double end;
		detail_line(time_of(job, "finished_at", &end) ? "Duration:" : "Running for:",
			    crunctl_format_duration(d, buf, sizeof(buf)));
	}
	if (json_is_number(timeout) && json_number_value(timeout) > 0)
		detail_line("Timeout:",
			    crunctl_format_duration(json_number_value(timeout), buf, sizeof(buf)));
	if (json_is_object(progress) && json_is_number(json_object_get(progress, "fraction")))
		detail_line("Progress:",
			    crunctl_format_progress(
				    json_number_value(json_object_get(progress, "fraction")),
				    jstr(progress, "message"), 20, buf, sizeof(buf)));
	if (json_is_object(err)) {
		snprintf(buf, sizeof(buf), "%s (%s)",
			 jstr(err, "message") ? jstr(err, "message") : "-",
			 jstr(err, "code") ? jstr(err, "code") : "-");
		detail_line("Error:", buf);
	}
	detail_json("Result:", json_object_get(job, "result"));
}

static const char *const job_headers[] = {"ID", "PLUGIN", "JOB", "STATE", "AGE", "DURATION"};

static int table_add_job(crunctl_table *t, json_t *job, double now)
{
	char age[32] = "-", dur[32] = "-";
	double created, d;
	const char *state = jstr(job, "state");
	const char *cells[6], *colours[6] = {NULL};

	if (time_of(job, "created_at", &created))
		crunctl_format_relative(created, now, age, sizeof(age));
	if (job_duration(job, now, &d))
		crunctl_format_duration(d, dur, sizeof(dur));
	cells[0] = jstr(job, "id");
	cells[1] = jstr(job, "plugin");
	cells[2] = jstr(job, "job");
	cells[3] = state;
	cells[4] = age;
	cells[5] = dur;
	colours[3] = crunctl_state_colour(state);
	return crunctl_table_add(t, cells, colours);
}

/* Commands taking IDs: options and at least one id. */
static int collect_ids(crunctl *ctl, const char *cmd, int argc, char **argv, char ***ret_ids,
		       int *ret_n)
{
	char **ids = calloc((size_t)argc + 1, sizeof(*ids));
	int n = 0;
	bool dashdash = false;

	if (!ids) {
		oom();
		return CRUNCTL_EXIT_INTERNAL;
	}
	for (int i = 0; i < argc; i++) {
		if (!dashdash && strcmp(argv[i], "--") == 0) {
			dashdash = true;
		} else if (!dashdash && is_option(argv[i])) {
			if (!global_flag(ctl, argv[i])) {
				free(ids);
				return crunctl_usage_error(cmd, "unknown option '%s'", argv[i]);
			}
		} else {
			ids[n++] = argv[i];
		}
	}
	if (n == 0) {
		free(ids);
		return crunctl_usage_error(cmd, "missing job ID");
	}
	*ret_ids = ids;
	*ret_n = n;
	return 0;
}

/* Keep the first failure's exit code but stop at an unreachable daemon. */
static bool merge_rc(int *rc, int one)
{
	if (one && !*rc)
		*rc = one;
	return one == CRUNCTL_EXIT_UNREACHABLE;
}

int crunctl_cmd_status(crunctl *ctl, int argc, char **argv)
{
	char **ids;
	int n, rc = collect_ids(ctl, "status", argc, argv, &ids, &n);
	crunctl_table *t = NULL;

	if (rc)
		return rc;
	if (n > 1 && !ctl->json) {
		t = crunctl_table_new(6, job_headers);
		if (!t) {
			free(ids);
			oom();
			return CRUNCTL_EXIT_INTERNAL;
		}
	}
	for (int i = 0; i < n; i++) {
		crunctl_response resp;
		json_t *job;
		char *path = job_path(ctl, ids[i], NULL);
		int one = path ? call(ctl, "GET", path, NULL, REQUEST_TIMEOUT, &resp, &job)
			       : CRUNCTL_EXIT_INTERNAL;

		free(path);
		if (one == 0) {
			if (ctl->json)
				print_raw(&resp);
			else if (t) {
				if (table_add_job(t, job, crunctl_now()) < 0) {
					oom();
					one = CRUNCTL_EXIT_INTERNAL;
				}
			} else
				print_job_detail(ctl, job);
			json_decref(job);
			crunctl_response_free(&resp);
		}
		if (merge_rc(&rc, one))
			break;
	}
	if (t)
		crunctl_table_print(t, stdout, ctl->colour);
	crunctl_table_free(t);
	free(ids);
	return rc;
}

/* ------------------------------------------------------------------ wait */

int crunctl_cmd_wait(crunctl *ctl, int argc, char **argv)
{
	const char *id = NULL, *val;
	double timeout = INFINITY, t0 = crunctl_now();
	json_t *job = NULL;
	crunctl_response resp = {0};
	progress_view pv;
	int rc, m;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!is_option(a)) {
			if (id)
				return crunctl_usage_error("wait", "wait takes one job ID");
			id = a;
		} else if (global_flag(ctl, a)) {
		} else if ((m = opt_value("wait", argc, argv, &i, "--timeout", &val)) != 0) {
			if (m < 0)
				return CRUNCTL_EXIT_USAGE;
			if (crunctl_parse_duration(val, &timeout) < 0)
				return crunctl_usage_error(
					"wait", "'%s' is not a duration (e.g. 30, 90s, 5m)", val);
		} else {
			return crunctl_usage_error("wait", "unknown option '%s'", a);
		}
	}
	if (!id)
		return crunctl_usage_error("wait", "missing job ID");
	progress_init(&pv, ctl);
	rc = wait_job(ctl, id, t0 + timeout, &pv, &job, &resp);
	progress_done(&pv);
	if (rc == 0)
		rc = finish_job(ctl, job, &resp, crunctl_now() - t0);
	json_decref(job);
	crunctl_response_free(&resp);
	return rc;
}

/* ------------------------------------------------------------- cancel, rm */

int crunctl_cmd_cancel(crunctl *ctl, int argc, char **argv)
{
	char **ids;
	int n, rc = collect_ids(ctl, "cancel", argc, argv, &ids, &n);

	if (rc)
		return rc;
	for (int i = 0; i < n; i++) {
		crunctl_response resp;
		json_t *job;
		char *path = job_path(ctl, ids[i], "/cancel");
		int one = path ? call(ctl, "POST", path, NULL, REQUEST_TIMEOUT, &resp, &job)
			       : CRUNCTL_EXIT_INTERNAL;

		free(path);
		if (one == 0) {
			const char *st = jstr(job, "state");
			if (ctl->json)
				print_raw(&resp);
			else if (!ctl->quiet && crunctl_state_is_final(st))
				fprintf(stderr, "job %s: %s\n", ids[i], st);
			else if (!ctl->quiet)
				fprintf(stderr, "job %s: cancellation requested\n", ids[i]);
			json_decref(job);
			crunctl_response_free(&resp);
		}
		if (merge_rc(&rc, one))
			break;
	}
	free(ids);
	return rc;
}

int crunctl_cmd_rm(crunctl *ctl, int argc, char **argv)
{
	char **ids;
	int n, rc = collect_ids(ctl, "rm", argc, argv, &ids, &n);

	if (rc)
		return rc;
	for (int i = 0; i < n; i++) {
		crunctl_response resp;
		char *path = job_path(ctl, ids[i], NULL);
		int one = path ? call(ctl, "DELETE", path, NULL, REQUEST_TIMEOUT, &resp, NULL)
			       : CRUNCTL_EXIT_INTERNAL;

		free(path);
		if (one == 0) {
			if (ctl->json && resp.len)
				print_raw(&resp);
			else if (!ctl->quiet && !ctl->json)
				fprintf(stderr, "job %s removed\n", ids[i]);
			crunctl_response_free(&resp);
		}
		if (merge_rc(&rc, one))
			break;
	}
	free(ids);
	return rc;
}

/* ------------------------------------------------------------------ list */

/* The next-page cursor of a list reply, whatever the key's spelling. */
static const char *next_cursor(json_t *page)
{
	static const char *const keys[] = {"next_cursor", "cursor", "next"};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *c = jstr(page, keys[i]);
		if (c && *c)
			return c;
	}
	return NULL;
}

static json_t *page_jobs(json_t *page)
{
	return json_is_array(page) ? page : json_object_get(page, "jobs");
}

/* Append "&key=value" (escaped) to *q; 0 or -ENOMEM. */
static int add_query(crunctl *ctl, char **q, const char *key, const char *value)
{
	char *e = crunctl_escape(ctl->client, value), *nq;

	if (!e || asprintf(&nq, "%s%s%s=%s", *q, strchr(*q, '?') ? "&" : "?", key, e) < 0) {
		free(e);
		return -ENOMEM;
	}
	free(e);
	free(*q);
	*q = nq;
	return 0;
}

int crunctl_cmd_list(crunctl *ctl, int argc, char **argv)
{
	const char *state = NULL, *plugin = NULL, *val;
	long limit = LIST_DEFAULT_LIMIT;
	bool limit_given = false, more = false;
	json_t *all = json_array(), *first = NULL;
	char *cursor = NULL;
	int rc = 0, m, n_pages = 0;
	crunctl_response first_resp = {0};

	if (!all) {
		oom();
		return CRUNCTL_EXIT_INTERNAL;
	}
	for (int i = 0; i < argc && rc == 0; i++) {
		const char *a = argv[i];
		if (global_flag(ctl, a)) {
		} else if ((m = opt_value("list", argc, argv, &i, "--state", &val)) != 0) {
			rc = m < 0 ? CRUNCTL_EXIT_USAGE : 0;
			state = val;
		} else if ((m = opt_value("list", argc, argv, &i, "--plugin", &val)) != 0) {
			rc = m < 0 ? CRUNCTL_EXIT_USAGE : 0;
			plugin = val;
		} else if ((m = opt_value("list", argc, argv, &i, "--limit", &val)) != 0) {
			if (m < 0)
				rc = CRUNCTL_EXIT_USAGE;
			else if (crunctl_parse_count(val, &limit) < 0)
				rc = crunctl_usage_error(
					"list", "--limit wants a positive number, got '%s'", val);
			limit_given = true;
		} else {
			rc = crunctl_usage_error("list",
						 is_option(a) ? "unknown option '%s'"
							      : "unexpected argument '%s'",
						 a);
		}
	}
	while (rc == 0 && (long)json_array_size(all) < limit) {
		long want = limit - (long)json_array_size(all);
		char *path = NULL;
		crunctl_response resp;
		json_t *page, *jobs;

		if (asprintf(&path, "/v1/jobs?limit=%ld",
			     want > LIST_PAGE_MAX ? LIST_PAGE_MAX : want) < 0 ||
		    (state && add_query(ctl, &path, "state", state) < 0) ||
		    (plugin && add_query(ctl, &path, "plugin", plugin) < 0) ||
		    (cursor && add_query(ctl, &path, "cursor", cursor) < 0)) {
			free(path);
			oom();
			rc = CRUNCTL_EXIT_INTERNAL;
			break;
		}
		rc = call(ctl, "GET", path, NULL, REQUEST_TIMEOUT, &resp, &page);
		free(path);
		if (rc)
			break;
		n_pages++;
		crunctl_response_free(&first_resp);
		first_resp = resp; /* kept: one page prints unchanged with --json */
		jobs = page_jobs(page);
		if (!json_is_array(jobs)) {
			fprintf(stderr, "crunctl: crund sent a job list without jobs\n");
			json_decref(page);
			rc = CRUNCTL_EXIT_INTERNAL;
			break;
		}
		for (size_t i = 0; i < json_array_size(jobs) && (long)json_array_size(all) < limit;
		     i++)
			json_array_append(all, json_array_get(jobs, i));
		free(cursor);
		cursor = next_cursor(page) ? strdup(next_cursor(page)) : NULL;
		more = cursor != NULL || json_array_size(jobs) > (size_t)want;
		if (!first)
			first = page;
		else
			json_decref(page);
		if (!cursor || json_array_size(jobs) == 0)
			break;
	}
	if (rc == 0 && ctl->json && n_pages == 1) {
		print_raw(&first_resp);
	} else if (rc == 0 && ctl->json) {
		/* One object whatever the number of pages: the first page's
		 * shape, all the jobs, and the cursor to go on from. */
		json_t *out = json_is_object(first) ? json_deep_copy(first) : json_object();
		char *text;
		if (!out || json_object_set(out, "jobs", all) < 0 ||
		    (json_object_get(out, "next_cursor") &&
		     json_object_set_new(out, "next_cursor",
					 cursor ? json_string(cursor) : json_null()) < 0) ||
		    !(text = json_dumps(out, JSON_COMPACT))) {
			oom();
			rc = CRUNCTL_EXIT_INTERNAL;
		} else {
			puts(text);
			free(text);
		}
		json_decref(out);
	} else if (rc == 0) {
		crunctl_table *t = crunctl_table_new(6, job_headers);
		double now = crunctl_now();
		size_t i;
		json_t *job;

		if (!t) {
			oom();
			rc = CRUNCTL_EXIT_INTERNAL;
		} else {
			json_array_foreach(all, i, job)
			{
				if (table_add_job(t, job, now) < 0) {
					oom();
					rc = CRUNCTL_EXIT_INTERNAL;
					break;
				}
			}
			if (json_array_size(all) == 0) {
				if (!ctl->quiet)
					fprintf(stderr, "no jobs\n");
			} else {
				crunctl_table_print(t, stdout, ctl->colour);
			}
			if (more && !limit_given && !ctl->quiet)
				fprintf(stderr, "(the %ld newest; more with --limit N)\n", limit);
			crunctl_table_free(t);
		}
	}
	free(cursor);
	json_decref(first);
	json_decref(all);
	crunctl_response_free(&first_resp);
	return rc;
}

/* ------------------------------------------------------------------- log */

int crunctl_cmd_log(crunctl *ctl, int argc, char **argv)
{
	const char *id = NULL;
	bool follow = false;
	crunctl_response resp;
	char *path;
	int rc;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!is_option(a)) {
			if (id)
				return crunctl_usage_error("log", "log takes one job ID");
			id = a;
		} else if (strcmp(a, "-f") == 0 || strcmp(a, "--follow") == 0) {
			follow = true;
		} else if (!global_flag(ctl, a)) {
			return crunctl_usage_error("log", "unknown option '%s'", a);
		}
	}
	if (!id)
		return crunctl_usage_error("log", "missing job ID");
	if (follow) {
		/* The log so far, then its lines as they come. */
		progress_view pv;
		follow_state fs = {.ctl = ctl, .pv = &pv, .log_out = stdout};
		progress_init(&pv, ctl);
		pv.bar = false;
		rc = follow_events(ctl, id, &fs);
		progress_done(&pv);
		free(fs.last_state);
		return rc;
	}
	path = job_path(ctl, id, "/log");
	if (!path)
		return CRUNCTL_EXIT_INTERNAL;
	rc = call(ctl, "GET", path, NULL, REQUEST_TIMEOUT, &resp, NULL);
	free(path);
	if (rc)
		return rc;
	fwrite(resp.body, 1, resp.len, stdout);
	crunctl_response_free(&resp);
	return 0;
}

/* --------------------------------------------------------------- plugins */

/* "seconds:number [message:string]" — required bare, optional in brackets. */
static char *args_summary(json_t *job)
{
	json_t *args = json_object_get(job, "args"), *a;
	char *out = strdup(""), *n;
	size_t i;

	json_array_foreach(args, i, a)
	{
		const char *name = jstr(a, "name"), *type = jstr(a, "type");
		bool req = json_is_true(json_object_get(a, "required"));
		if (!out || !name)
			continue;
		if (asprintf(&n, "%s%s%s%s:%s%s", out, *out ? " " : "", req ? "" : "[", name,
			     type ? type : "any", req ? "" : "]") < 0)
			n = NULL;
		free(out);
		out = n;
	}
	return out;
}

static json_t *plugins_array(json_t *v)
{
	return json_is_array(v) ? v : json_object_get(v, "plugins");
}

static int print_plugin_detail(crunctl *ctl, json_t *p)
{
	json_t *jobs = json_object_get(p, "jobs"), *job;
	size_t i;

	printf("%s %s", jstr(p, "name") ? jstr(p, "name") : "?",
	       jstr(p, "version") ? jstr(p, "version") : "");
	if (jstr(p, "description") && *jstr(p, "description"))
		printf(" - %s", jstr(p, "description"));
	putchar('\n');
	json_array_foreach(jobs, i, job)
	{
		static const char *const headers[] = {"ARGUMENT", "TYPE", "REQUIRED", "DEFAULT",
						      "DESCRIPTION"};
		json_t *args = json_object_get(job, "args"), *a;
		crunctl_table *t;
		size_t k;

		printf("\n  job %s", jstr(job, "name") ? jstr(job, "name") : "?");
		if (jstr(job, "description") && *jstr(job, "description"))
			printf(" - %s", jstr(job, "description"));
		putchar('\n');
		if (json_array_size(args) == 0) {
			printf("    (no arguments)\n");
			continue;
		}
		t = crunctl_table_new(5, headers);
		if (!t) {
			oom();
			return CRUNCTL_EXIT_INTERNAL;
		}
		json_array_foreach(args, k, a)
		{
			json_t *def = json_object_get(a, "default");
			json_t *mn = json_object_get(a, "min"), *mx = json_object_get(a, "max");
			char *deftext = def ? json_dumps(def, JSON_COMPACT | JSON_ENCODE_ANY |
								      HUMAN_REAL)
					    : NULL;
			char type[128];
			const char *cells[5];
			int r;

			if (json_is_number(mn) && json_is_number(mx))
				snprintf(type, sizeof(type), "%s %g..%g",
					 jstr(a, "type") ? jstr(a, "type") : "any",
					 json_number_value(mn), json_number_value(mx));
			else
				snprintf(type, sizeof(type), "%s",
					 jstr(a, "type") ? jstr(a, "type") : "any");
			cells[0] = jstr(a, "name");
			cells[1] = type;
			cells[2] = json_is_true(json_object_get(a, "required")) ? "yes" : "no";
			cells[3] = deftext;
			cells[4] = jstr(a, "description") && *jstr(a, "description")
					   ? jstr(a, "description")
					   : NULL;
			r = crunctl_table_add(t, cells, NULL);
			free(deftext);
			if (r < 0) {
				crunctl_table_free(t);
				oom();
				return CRUNCTL_EXIT_INTERNAL;
			}
		}
		/* indent the table under its job */
		{
			char *buf = NULL;
			size_t len = 0;
			FILE *mem = open_memstream(&buf, &len);
			if (!mem) {
				crunctl_table_free(t);
				oom();
				return CRUNCTL_EXIT_INTERNAL;
			}
			crunctl_table_print(t, mem, false);
			fclose(mem);
			for (char *line = buf, *nl; line && *line; line = nl ? nl + 1 : NULL) {
				nl = strchr(line, '\n');
				printf("    %.*s\n", nl ? (int)(nl - line) : (int)strlen(line),
				       line);
			}
			free(buf);
		}
		crunctl_table_free(t);
	}
	return 0;
}

int crunctl_cmd_plugins(crunctl *ctl, int argc, char **argv)
{
	const char *name = NULL;
	crunctl_response resp;
	json_t *v;
	char *path = NULL;
	int rc;

	for (int i = 0; i < argc; i++) {
		if (is_option(argv[i])) {
			if (!global_flag(ctl, argv[i]))
				return crunctl_usage_error("plugins", "unknown option '%s'",
							   argv[i]);
		} else if (name) {
			return crunctl_usage_error("plugins", "plugins takes at most one NAME");
		} else {
			name = argv[i];
		}
	}
	if (name) {
		char *e = crunctl_escape(ctl->client, name);
		if (!e || asprintf(&path, "/v1/plugins/%s", e) < 0)
			path = NULL;
		free(e);
	} else {
		path = strdup("/v1/plugins");
	}
	if (!path) {
		oom();
		return CRUNCTL_EXIT_INTERNAL;
	}
	rc = call(ctl, "GET", path, NULL, REQUEST_TIMEOUT, &resp, &v);
	free(path);
	if (rc)
		return rc;
	if (ctl->json) {
		print_raw(&resp);
	} else if (name) {
		json_t *p = json_is_object(json_object_get(v, "plugin"))
				    ? json_object_get(v, "plugin")
				    : v;
		rc = print_plugin_detail(ctl, p);
	} else {
		static const char *const headers[] = {"PLUGIN", "VERSION", "JOB", "ARGUMENTS",
						      "DESCRIPTION"};
		crunctl_table *t = crunctl_table_new(5, headers);
		json_t *plugins = plugins_array(v), *p, *job;
		size_t i, k;

		if (!t) {
			oom();
			rc = CRUNCTL_EXIT_INTERNAL;
		}
		json_array_foreach(plugins, i, p)
		{
			json_t *jobs = json_object_get(p, "jobs");
			if (rc)
				break;
			json_array_foreach(jobs, k, job)
			{
				char *summary = args_summary(job);
				const char *desc = jstr(job, "description");
				const char *cells[5] = {jstr(p, "name"), jstr(p, "version"),
							jstr(job, "name"),
							summary && *summary ? summary : NULL,
							desc && *desc ? desc : NULL};
				if (!summary || crunctl_table_add(t, cells, NULL) < 0) {
					oom();
					rc = CRUNCTL_EXIT_INTERNAL;
				}
				free(summary);
				if (rc)
					break;
			}
		}
		if (rc == 0 && json_array_size(plugins) == 0) {
			if (!ctl->quiet)
				fprintf(stderr, "no plugins loaded\n");
		} else if (rc == 0) {
			crunctl_table_print(t, stdout, false);
		}
		crunctl_table_free(t);
	}
	json_decref(v);
	crunctl_response_free(&resp);
	return rc;
}

/* ------------------------------------------------------------ info, health */

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n > m && strcmp(s + n - m, suffix) == 0;
}

static bool is_seconds_key(const char *key)
{
	return strcmp(key, "uptime") == 0 || ends_with(key, "_seconds") ||
	       strcmp(key, "grace") == 0 || strcmp(key, "timeout") == 0;
}

/* 1048576 → "1.0 MiB"; below 1 KiB the plain count with "B". */
static char *format_bytes(double v, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	size_t u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f B", v);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

/* Flatten nested objects into "limits.max_running" rows. */
static int info_rows(crunctl_table *t, const char *prefix, json_t *obj)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v)
	{
		char *name, *text = NULL;
		char buf[128];
		const char *cells[2];
		double when;
		int r;

		if (asprintf(&name, "%s%s%s", prefix, *prefix ? "." : "", key) < 0)
			return -ENOMEM;
		if (json_is_object(v) && json_object_size(v) > 0) {
			r = info_rows(t, name, v);
			free(name);
			if (r < 0)
				return r;
			continue;
		}
		if (json_is_string(v) && ends_with(key, "_at") &&
		    crunctl_parse_rfc3339(json_string_value(v), &when) == 0) {
			char abs[64], rel[32];
			snprintf(buf, sizeof(buf), "%s (%s)",
				 crunctl_format_local_time(when, abs, sizeof(abs)),
				 crunctl_format_relative(when, crunctl_now(), rel, sizeof(rel)));
			cells[1] = buf;
		} else if (json_is_string(v))
			cells[1] = json_string_value(v);
		else if (json_is_number(v) && ends_with(key, "_bytes"))
			cells[1] = format_bytes(json_number_value(v), buf, sizeof(buf));
		else if (json_is_number(v) && is_seconds_key(key))
			cells[1] = crunctl_format_duration(json_number_value(v), buf, sizeof(buf));
		else
			cells[1] = text = json_dumps(v,
						     JSON_COMPACT | JSON_ENCODE_ANY | HUMAN_REAL);
		cells[0] = name;
		r = crunctl_table_add(t, cells, NULL);
		free(text);
		free(name);
		if (r < 0)
			return r;
	}
	return 0;
}

static int no_args(crunctl *ctl, const char *cmd, int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (is_option(argv[i]) && global_flag(ctl, argv[i]))
			continue;
		return crunctl_usage_error(cmd,
					   is_option(argv[i]) ? "unknown option '%s'"
							      : "unexpected argument '%s'",
					   argv[i]);
	}
	return 0;
}

int crunctl_cmd_info(crunctl *ctl, int argc, char **argv)
{
	static const char *const headers[] = {"KEY", "VALUE"};
	crunctl_response resp;
	crunctl_table *t;
	json_t *v;
	int rc = no_args(ctl, "info", argc, argv);

	if (rc)
		return rc;
	rc = call(ctl, "GET", "/v1/info", NULL, REQUEST_TIMEOUT, &resp, &v);
	if (rc)
		return rc;
	if (ctl->json) {
		print_raw(&resp);
	} else if (!(t = crunctl_table_new(2, headers)) || info_rows(t, "", v) < 0) {
		crunctl_table_free(t);
		oom();
		rc = CRUNCTL_EXIT_INTERNAL;
	} else {
		crunctl_table_print(t, stdout, false);
		crunctl_table_free(t);
	}
	json_decref(v);
	crunctl_response_free(&resp);
	return rc;
}

int crunctl_cmd_health(crunctl *ctl, int argc, char **argv)
{
	crunctl_response resp;
	json_t *v;
	const char *status;
	int rc = no_args(ctl, "health", argc, argv);

	if (rc)
		return rc;
	/* Not through call(): a 503 here is an answer (draining or stalled),
	 * worth its own sentence. */
	rc = crunctl_request(ctl->client, "GET", "/v1/health", NULL, REQUEST_TIMEOUT, &resp);
	if (rc)
		return rc;
	v = json_loads(resp.body, 0, NULL);
	status = jstr(v, "status");
	if (ctl->json)
		print_raw(&resp);
	if (resp.status == 200) {
		if (!ctl->json && !ctl->quiet)
			printf("%s\n", status ? status : "ok");
	} else if (resp.status == 503 && status) {
		fprintf(stderr, "crunctl: crund at %s is not healthy: %s\n",
			crunctl_client_where(ctl->client), status);
		rc = CRUNCTL_EXIT_API;
	} else {
		rc = crunctl_report_api_error(&resp);
	}
	json_decref(v);
	crunctl_response_free(&resp);
	return rc;
}
