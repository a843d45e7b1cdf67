/*
 * crunctl-submit.c — `crunctl submit PLUGIN JOB [key=value ...]`: build the
 * job's arguments (--args, then key=value typed by the job's spec), POST
 * the job, and print its id — or, with --wait/--follow, wait for it (see
 * follow.c) and print its result.
 *
 * Data goes to stdout and everything else to stderr, so
 * `id=$(crunctl submit ...)` and `crunctl submit --wait ... > result.json`
 * capture only what they ask for.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crunctl.h"

enum {
	OPT_ARGS = 0x100,
	OPT_TIMEOUT,
	OPT_ISOLATED,
	OPT_IDEMPOTENCY_KEY,
	OPT_DELAY,
	OPT_AT,
	OPT_MAX_ATTEMPTS,
	OPT_ON_INTERRUPT,
};

/* The API's bound of max_attempts (CRUND_JOB_MAX_ATTEMPTS in crund/plugin.h). */
#define SUBMIT_MAX_ATTEMPTS 1000

static const struct option submit_options[] = {
	{"args", required_argument, NULL, OPT_ARGS},
	{"timeout", required_argument, NULL, OPT_TIMEOUT},
	{"isolated", no_argument, NULL, OPT_ISOLATED},
	{"idempotency-key", required_argument, NULL, OPT_IDEMPOTENCY_KEY},
	{"delay", required_argument, NULL, OPT_DELAY},
	{"at", required_argument, NULL, OPT_AT},
	{"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
	{"on-interrupt", required_argument, NULL, OPT_ON_INTERRUPT},
	{"wait", optional_argument, NULL, 'w'},
	{"follow", no_argument, NULL, 'f'},
	{0},
};

/* The command line of a submit. */
typedef struct submit {
	const char *plugin, *job;
	char **kv; /* the key=value operands (argv's strings) */
	int n_kv;
	const char *args_opt, *timeout_opt, *idempotency_key;
	const char *delay_opt, *at_opt, *on_interrupt;
	bool isolated, wait, follow;
	double wait_for;   /* --wait=S, else INFINITY */
	double timeout;    /* --timeout in seconds (when timeout_opt) */
	double delay;      /* --delay in seconds (when delay_opt) */
	double at;         /* --at, seconds since the epoch (when at_opt) */
	long max_attempts; /* --max-attempts, 0 when not given */
} submit;

static int on_submit_option(crunctl *ctl, int opt, const char *arg, void *userdata)
{
	submit *s = userdata;

	switch (opt) {
	case CRUNCTL_OPT_OPERAND:
		if (!s->plugin)
			s->plugin = arg;
		else if (!s->job)
			s->job = arg;
		else
			s->kv[s->n_kv++] = (char *)arg;
		return 0;
	case OPT_ARGS:
		s->args_opt = arg;
		return 0;
	case OPT_TIMEOUT:
		s->timeout_opt = arg;
		return 0;
	case OPT_IDEMPOTENCY_KEY:
		s->idempotency_key = arg;
		return 0;
	case OPT_ISOLATED:
		s->isolated = true;
		return 0;
	case OPT_DELAY:
		s->delay_opt = arg;
		if (crunctl_parse_duration(arg, &s->delay) < 0)
			return crunctl_usage_error(
				"submit",
				"--delay wants a duration (e.g. 30, 90s, 5m, 2h), got '%s'", arg);
		return 0;
	case OPT_AT:
		s->at_opt = arg;
		if (crunctl_parse_time(arg, &s->at) < 0)
			return crunctl_usage_error(
				"submit",
				"--at wants an RFC 3339 time (2026-12-03T10:00:00Z) or a local "
				"time (2026-12-03 11:00), got '%s'",
				arg);
		return 0;
	case OPT_MAX_ATTEMPTS:
		if (crunctl_parse_count(arg, &s->max_attempts) < 0 ||
		    s->max_attempts > SUBMIT_MAX_ATTEMPTS)
			return crunctl_usage_error(
				"submit", "--max-attempts wants an integer from 1 to %d, got '%s'",
				SUBMIT_MAX_ATTEMPTS, arg);
		return 0;
	case OPT_ON_INTERRUPT:
		if (strcmp(arg, "retry") != 0 && strcmp(arg, "fail") != 0)
			return crunctl_usage_error(
				"submit", "--on-interrupt wants 'retry' or 'fail', got '%s'", arg);
		s->on_interrupt = arg;
		return 0;
	case 'f':
		s->follow = true;
		return 0;
	case 'w':
		s->wait = true;
		if (arg && crunctl_parse_duration(arg, &s->wait_for) < 0)
			return crunctl_usage_error(
				"submit", "'%s' is not a duration (e.g. 30, 90s, 5m)", arg);
		return 0;
	default:
		return CRUNCTL_EXIT_INTERNAL;
	}
}

/* Parse the command line into *s (s->kv allocated, caller frees). */
static int parse_submit(crunctl *ctl, int argc, char **argv, submit *s)
{
	static const crunctl_syntax syntax = {.command = "submit",
					      .short_options = "fw",
					      .options = submit_options,
					      .dashdash = true,
					      .on_option = on_submit_option};
	int rc;

	s->kv = calloc((size_t)argc + 1, sizeof(*s->kv));
	if (!s->kv) {
		crunctl_oom();
		return CRUNCTL_EXIT_INTERNAL;
	}
	rc = crunctl_parse_options(ctl, &syntax, argc, argv, s);
	if (rc)
		return rc;
	if (!s->job)
		return crunctl_usage_error("submit",
					   s->plugin ? "missing JOB" : "missing PLUGIN and JOB");
	for (int i = 0; i < s->n_kv; i++)
		if (!crunctl_is_kv_arg(s->kv[i]))
			return crunctl_usage_error(
				"submit",
				"'%s' is not an argument; give arguments as key=value "
				"or key:=JSON",
				s->kv[i]);
	if (s->timeout_opt &&
	    (crunctl_parse_duration(s->timeout_opt, &s->timeout) < 0 || s->timeout <= 0))
		return crunctl_usage_error("submit", "'%s' is not a duration (e.g. 30, 90s, 5m)",
					   s->timeout_opt);
	if (s->delay_opt && s->at_opt)
		return crunctl_usage_error("submit", "give --delay or --at, not both");
	return 0;
}

/* --delay, --at, --max-attempts and --on-interrupt into the body; 0 or
 * -ENOMEM.  --at goes as UTC whatever zone it was typed in, so the daemon
 * needs to know nothing of the client's time zone. */
static int schedule_fields(const submit *s, json_t *body)
{
	char at[40];

	if (s->delay_opt && json_object_set_new(body, "delay", json_real(s->delay)) < 0)
		return -ENOMEM;
	if (s->at_opt &&
	    json_object_set_new(body, "run_at",
				json_string(crunctl_format_rfc3339(s->at, at, sizeof(at)))) < 0)
		return -ENOMEM;
	if (s->max_attempts &&
	    json_object_set_new(body, "max_attempts", json_integer(s->max_attempts)) < 0)
		return -ENOMEM;
	if (s->on_interrupt &&
	    json_object_set_new(body, "on_interrupt", json_string(s->on_interrupt)) < 0)
		return -ENOMEM;
	return 0;
}

/* The spec of the job (GET /v1/plugins/PLUGIN) into *ret_plugin (a new
 * reference) and *ret_spec (borrowed from it). */
static int fetch_job_spec(crunctl *ctl, const submit *s, json_t **ret_plugin, json_t **ret_spec)
{
	crunctl_response resp;
	json_t *pl = NULL, *spec;
	char *path = crunctl_plugin_path(ctl->client, s->plugin);
	int rc;

	if (!path)
		return CRUNCTL_EXIT_INTERNAL;
	rc = crunctl_call(ctl, "GET", path, NULL, CRUNCTL_REQUEST_TIMEOUT, &resp, &pl);
	free(path);
	if (rc)
		return rc;
	crunctl_response_free(&resp);
	/* Accept {"plugin": {...}} as well as the plugin object itself. */
	if (json_is_object(json_object_get(pl, "plugin")))
		spec = crunctl_plugin_find_job(json_object_get(pl, "plugin"), s->job);
	else
		spec = crunctl_plugin_find_job(pl, s->job);
	if (!spec) {
		fprintf(stderr, "crunctl: plugin '%s' has no job '%s'; see: crunctl plugins %s\n",
			s->plugin, s->job, s->plugin);
		json_decref(pl);
		return CRUNCTL_EXIT_API;
	}
	*ret_plugin = pl;
	*ret_spec = spec;
	return 0;
}

/* The job's arguments: --args, extended by the key=value operands typed by
 * the job's spec (fetched only when some key=value is given, so a plain
 * submit makes one request).  *ret is a new reference. */
static int job_args(crunctl *ctl, const submit *s, json_t **ret)
{
	json_t *args = NULL, *plugin = NULL, *spec = NULL;
	char *error = NULL;
	int r, rc = 0;

	r = s->args_opt ? crunctl_load_args(s->args_opt, &args, &error) : 0;
	if (r == -EINVAL) {
		rc = crunctl_usage_error("submit", "%s", error);
	} else if (r < 0) {
		/* --args that cannot be read is a mistake on the command line too */
		if (error)
			fprintf(stderr, "crunctl: %s\n", error);
		else
			crunctl_oom();
		rc = CRUNCTL_EXIT_USAGE;
	} else if (!args && !(args = json_object())) {
		crunctl_oom();
		rc = CRUNCTL_EXIT_INTERNAL;
	}
	free(error);
	error = NULL;
	if (rc == 0 && s->n_kv > 0)
		rc = fetch_job_spec(ctl, s, &plugin, &spec);
	if (rc == 0 && s->n_kv > 0) {
		r = crunctl_apply_kv(spec, s->plugin, s->job, s->kv, s->n_kv, args, &error);
		if (r == -EINVAL) {
			rc = crunctl_usage_error("submit", "%s", error);
		} else if (r < 0) {
			crunctl_oom();
			rc = CRUNCTL_EXIT_INTERNAL;
		}
		free(error);
	}
	json_decref(plugin);
	if (rc)
		json_decref(args);
	else
		*ret = args;
	return rc;
}

/* The body of POST /v1/jobs as JSON text (*ret_text, caller frees). */
static int job_body(crunctl *ctl, const submit *s, char **ret_text)
{
	json_t *args = NULL, *body;
	int rc = job_args(ctl, s, &args);

	if (rc)
		return rc;
	body = json_pack("{s:s, s:s, s:O}", "plugin", s->plugin, "job", s->job, "args", args);
	json_decref(args);
	if (body && schedule_fields(s, body) < 0) {
		crunctl_oom();
		json_decref(body);
		return CRUNCTL_EXIT_INTERNAL;
	}
	if (!body ||
	    (s->timeout_opt && json_object_set_new(body, "timeout", json_real(s->timeout))) ||
	    (s->isolated && json_object_set_new(body, "context", json_string("isolated"))) ||
	    (s->idempotency_key &&
	     json_object_set_new(body, "idempotency_key", json_string(s->idempotency_key)))) {
		fprintf(stderr, "crunctl: the job's plugin, name or key is not valid UTF-8, or "
				"memory ran out\n");
		json_decref(body);
		return CRUNCTL_EXIT_USAGE;
	}
	*ret_text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!*ret_text) {
		crunctl_oom();
		return CRUNCTL_EXIT_INTERNAL;
	}
	return 0;
}

/* POST the job.  --wait without --follow lets the submission itself
 * long-poll, which saves a round trip for short jobs; with a progress bar
 * it returns at once so the bar can start moving. */
static int post_job(crunctl *ctl, const submit *s, const char *text, crunctl_response *resp,
		    json_t **ret_job)
{
	bool bar = ctl->tty_err && !ctl->quiet && !ctl->json;
	double poll = fmin(s->wait_for, CRUNCTL_MAX_POLL_SECONDS);
	char *path = NULL;
	int rc;

	if (s->wait && !s->follow && !bar && s->wait_for > 0) {
		if (asprintf(&path, "/v1/jobs?wait=%.3f", poll) < 0)
			path = NULL;
	} else {
		path = strdup("/v1/jobs");
	}
	if (!path) {
		crunctl_oom();
		return CRUNCTL_EXIT_INTERNAL;
	}
	rc = crunctl_call(ctl, "POST", path, text, (s->wait ? poll : 0) + CRUNCTL_REQUEST_TIMEOUT,
			  resp, ret_job);
	free(path);
	return rc;
}

/* --wait / --follow: follow the job's events (--follow), wait until it ends
 * or --wait=S ran out, print the outcome; the exit code by its state.
 * *job and *resp come in as the submission's answer. */
static int watch_job(crunctl *ctl, const submit *s, const char *job_id, double t0, json_t **job,
		     crunctl_response *resp)
{
	crunctl_progress pv;
	int rc = 0;

	crunctl_progress_init(&pv, ctl, true);
	if (pv.bar && !crunctl_state_is_final(crunctl_jstr(*job, "state")))
		fprintf(stderr, "job %s submitted\n", job_id);
	if (s->follow && !crunctl_state_is_final(crunctl_jstr(*job, "state"))) {
		const crunctl_follow_opts fo = {.log_out = ctl->json ? stdout : stderr,
						.show_progress = true,
						.show_state = true};
		rc = crunctl_follow_job(ctl, job_id, &pv, &fo);
		/* Whatever the stream said, the job object is the truth:
		 * fetch it (and keep waiting if the stream broke early). */
		if (rc == 0) {
			json_decref(*job);
			*job = NULL;
		}
	}
	if (rc == 0)
		rc = crunctl_wait_job(ctl, job_id, t0 + s->wait_for, &pv, job, resp);
	crunctl_progress_done(&pv);
	if (rc == 0)
		rc = crunctl_finish_job(ctl, *job, resp, crunctl_now() - t0);
	return rc;
}

/* The submission answered: print the id (or the job with --json), or
 * watch the job. */
static int after_post(crunctl *ctl, const submit *s, double t0, json_t **job,
		      crunctl_response *resp)
{
	const char *id = crunctl_jstr(*job, "id");
	char *job_id;
	int rc;

	if (!id) {
		fprintf(stderr, "crunctl: crund accepted the job but sent no id\n");
		return CRUNCTL_EXIT_INTERNAL;
	}
	if (!s->wait && !s->follow) {
		if (ctl->json)
			crunctl_print_raw(resp);
		else
			printf("%s\n", id);
		return 0;
	}
	job_id = strdup(id); /* *job is replaced while waiting */
	if (!job_id) {
		crunctl_oom();
		return CRUNCTL_EXIT_INTERNAL;
	}
	rc = watch_job(ctl, s, job_id, t0, job, resp);
	free(job_id);
	return rc;
}

int crunctl_cmd_submit(crunctl *ctl, int argc, char **argv)
{
	submit s = {.wait_for = INFINITY};
	crunctl_response resp = {0};
	json_t *job = NULL;
	char *text = NULL;
	double t0;
	int rc;

	rc = parse_submit(ctl, argc, argv, &s);
	if (rc == 0)
		rc = job_body(ctl, &s, &text);
	if (rc == 0) {
		t0 = crunctl_now();
		rc = post_job(ctl, &s, text, &resp, &job);
	}
	if (rc == 0)
		rc = after_post(ctl, &s, t0, &job, &resp);
	crunctl_response_free(&resp);
	json_decref(job);
	free(text);
	free(s.kv);
	return rc;
}
