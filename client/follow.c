/*
 * follow.c — waiting for a job and showing it while it runs: the long-poll
 * loop (submit --wait, wait), the progress view on stderr, and following
 * the job's event stream with its log (submit --follow, log -f).
 *
 * Data goes to stdout (the result, log lines of `log -f`); progress, state
 * changes and the log lines of `submit --follow` go to stderr, so a result
 * redirected to a file stays clean.
 */
#include "config.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/logline.h"
#include "crunctl.h"

#define PROGRESS_BAR_WIDTH    30
/* With a progress bar on a terminal, long-polls are this short so the bar
 * moves (two small requests a second while someone watches). */
#define PROGRESS_POLL_SECONDS 0.5

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

void crunctl_progress_init(crunctl_progress *pv, crunctl *ctl, bool allow_bar)
{
	memset(pv, 0, sizeof(*pv));
	pv->ctl = ctl;
	pv->bar = allow_bar && ctl->tty_err && !ctl->quiet && !ctl->json;
	pv->last_fraction = -1;
	if (pv->bar) {
		signal(SIGINT, on_interrupt);
		signal(SIGTERM, on_interrupt);
	}
}

static void progress_clear(crunctl_progress *pv)
{
	if (bar_drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		bar_drawn = 0;
	}
}

static void progress_redraw(crunctl_progress *pv)
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
static void progress_update(crunctl_progress *pv, json_t *progress, bool lines)
{
	json_t *f = json_object_get(progress, "fraction");
	const char *msg = crunctl_jstr(progress, "message");
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

void crunctl_progress_done(crunctl_progress *pv)
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

/* Long-poll in chunks until the job is final or the deadline passed. */
int crunctl_wait_job(crunctl *ctl, const char *id, double deadline, crunctl_progress *pv,
		     json_t **job, crunctl_response *resp)
{
	char *base = crunctl_job_path(ctl->client, id, NULL);
	int rc = 0;

	if (!base)
		return CRUNCTL_EXIT_INTERNAL;
	for (;;) {
		double now = crunctl_now(), left = deadline - now, chunk;
		char *path;
		json_t *j;
		crunctl_response r;

		if (*job && crunctl_state_is_final(crunctl_jstr(*job, "state")))
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
			crunctl_oom();
			rc = CRUNCTL_EXIT_INTERNAL;
			break;
		}
		rc = crunctl_call(ctl, "GET", path, NULL, fmax(chunk, 0) + CRUNCTL_REQUEST_TIMEOUT,
				  &r, &j);
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
		if (!crunctl_state_is_final(crunctl_jstr(j, "state")) &&
		    crunctl_now() - now < 0.1 && chunk >= PROGRESS_POLL_SECONDS) {
			struct timespec ts = {0, 100 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	free(base);
	return rc;
}

/* The outcome of a waited-for job: the result on stdout (human), or the
 * job object (--json); the exit code by its state. */
int crunctl_finish_job(crunctl *ctl, json_t *job, const crunctl_response *resp, double waited)
{
	const char *state = crunctl_jstr(job, "state");
	const char *id = crunctl_jstr(job, "id");
	json_t *err = json_object_get(job, "error");
	const char *emsg = crunctl_jstr(err, "message"), *ecode = crunctl_jstr(err, "code");
	long long attempt = json_integer_value(json_object_get(job, "attempt"));
	int code = crunctl_exit_for_state(state);

	if (ctl->json)
		crunctl_print_raw(resp);
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
									CRUNCTL_HUMAN_REAL);
				if (!text) {
					crunctl_oom();
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
		if (attempt > 1)
			fprintf(stderr, " after %lld attempts", attempt);
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
	crunctl_progress *pv;
	const char *id;
	crunctl_follow_opts o;
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
	const char *msg = NULL, *time = crunctl_jstr(data, "time"),
		   *level = crunctl_jstr(data, "level");
	char *line = NULL;

	/* a line from a job's stream (stdout, stderr) is labelled by it, as
	 * /log stores it */
	if (crunctl_jstr(data, "stream"))
		level = crunctl_jstr(data, "stream");
	if (json_is_string(data))
		msg = json_string_value(data);
	else if (json_is_object(data))
		msg = crunctl_jstr(data, "message") ? crunctl_jstr(data, "message")
						    : crunctl_jstr(data, "line");
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
		if (fs->o.log_out == stderr)
			progress_clear(fs->pv);
		fprintf(fs->o.log_out, "%s\n", line ? line : raw);
		if (fs->o.log_out == stderr)
			progress_redraw(fs->pv);
	}
	fflush(fs->o.log_out);
	free(line);
}

/* A stored log line (common/logline.h) as the event the stream sends for
 * it; a line of another shape is {"message": line}. */
static json_t *log_line_event(const char *line)
{
	crd_log_line l;
	if (!crd_log_line_split(line, strlen(line), &l))
		return json_pack("{s:s}", "message", line);
	json_t *o = json_pack("{s:s%,s:s%,s:s%}", "time", l.time, l.time_len, "level",
			      l.label_is_level ? l.label : "info",
			      l.label_is_level ? l.label_len : strlen("info"), "message", l.message,
			      l.message_len);
	if (o && !l.label_is_level &&
	    json_object_set_new(o, "stream", json_stringn(l.label, l.label_len)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* GET /v1/jobs/{id}/log, printed where log lines go (with --json as JSON
 * lines shaped like the stream's log events) and kept for the overlap
 * check. */
static int fetch_log_so_far(follow_state *fs)
{
	crunctl *ctl = fs->ctl;
	char *path = crunctl_job_path(ctl->client, fs->id, "/log");
	crunctl_response resp;
	int rc;

	if (!path)
		return CRUNCTL_EXIT_INTERNAL;
	rc = crunctl_call(ctl, "GET", path, NULL, CRUNCTL_REQUEST_TIMEOUT, &resp, NULL);
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
			o = log_line_event(line);
			text = o ? json_dumps(o, JSON_COMPACT) : NULL;
			if (text)
				fprintf(fs->o.log_out, "%s\n", text);
			free(text);
			json_decref(o);
			if (nl)
				*nl = '\n';
		}
	} else {
		if (fs->o.log_out == stderr)
			progress_clear(fs->pv);
		fwrite(resp.body, 1, resp.len, fs->o.log_out);
		if (fs->o.log_out == stderr)
			progress_redraw(fs->pv);
	}
	fflush(fs->o.log_out);
	fs->log_text = resp.body; /* taken over from resp */
	fs->overlap_pos = 0;
	fs->overlap = true;
	return 0;
}

/* A state (or end) event: "job ID: STATE" on stderr when the state changed,
 * and the progress it carries. */
static void print_state_event(follow_state *fs, json_t *d)
{
	const char *st = crunctl_jstr(d, "state");
	json_t *p = json_object_get(d, "progress");

	if (st && (!fs->last_state || strcmp(st, fs->last_state) != 0)) {
		char *copy = strdup(st);
		if (copy) {
			free(fs->last_state);
			fs->last_state = copy;
			progress_clear(fs->pv);
			fprintf(stderr, "job %s: %s\n",
				crunctl_jstr(d, "id") ? crunctl_jstr(d, "id") : "", st);
			progress_redraw(fs->pv);
		}
	}
	/* progress reported before the stream was opened */
	if (json_is_object(p) && fs->o.show_progress)
		progress_update(fs->pv, p, true);
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
		/* JSON lines: each event's data as sent, but the end's: the
		 * caller prints the ended job (the end event's data) itself */
		if (fs->o.show_progress && !end)
			printf("%s\n", data);
		fflush(stdout);
	} else if (strcmp(event, "progress") == 0 && fs->o.show_progress) {
		json_t *p = json_object_get(d, "progress");
		progress_update(fs->pv, json_is_object(p) ? p : d, true);
	} else if ((strcmp(event, "state") == 0 || end) && fs->o.show_state && !fs->ctl->quiet) {
		print_state_event(fs, d);
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
 * event or until the server closes the stream. */
int crunctl_follow_job(crunctl *ctl, const char *id, crunctl_progress *pv,
		       const crunctl_follow_opts *opts)
{
	follow_state fs = {.ctl = ctl, .pv = pv, .id = id, .o = *opts};
	char *path = crunctl_job_path(ctl->client, id, "/events");
	crunctl_response resp;
	int rc;

	if (!path)
		return CRUNCTL_EXIT_INTERNAL;
	rc = crunctl_stream(ctl->client, path, on_event, &fs, &resp);
	free(path);
	if (rc == 0 && fs.fetch_rc)
		rc = fs.fetch_rc;
	else if (rc == 0 && resp.status != 200)
		rc = crunctl_report_api_error(&resp);
	else if (rc == 0 && !fs.fetched)
		rc = fetch_log_so_far(&fs); /* a stream that sent nothing */
	crunctl_response_free(&resp);
	free(fs.log_text);
	free(fs.last_state);
	return rc;
}
