/*
 * crunctl-status.c — `crunctl status ID...`: one job in detail, several as
 * a table, or each job object with --json.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crunctl.h"

/* Labels are padded to one column; the longest, "On interrupt:", and
 * "Attempt 1000:" leave one space before their value. */
static void detail_line(const char *label, const char *value) { printf("%-14s%s\n", label, value); }

static void detail_time(json_t *job, const char *key, const char *label, double now)
{
	double t;
	char abs[64], rel[32], line[128];

	if (!crunctl_job_time(job, key, &t))
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
	text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | CRUNCTL_HUMAN_REAL);
	if (text && strlen(text) > 200) {
		/* big values get their own indented block */
		free(text);
		text = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY | CRUNCTL_HUMAN_REAL);
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

/* "2 of 5" ("0 of 5" before the first start), and the policy for a run
 * that crund's death or stop interrupts.  Nothing for an older crund
 * whose jobs have neither. */
static void detail_attempt(json_t *job)
{
	json_t *a = json_object_get(job, "attempt"), *m = json_object_get(job, "max_attempts");
	const char *policy = crunctl_jstr(job, "on_interrupt");
	char buf[64];

	if (json_is_integer(a) && json_is_integer(m)) {
		snprintf(buf, sizeof(buf), "%lld of %lld", (long long)json_integer_value(a),
			 (long long)json_integer_value(m));
		detail_line("Attempt:", buf);
	}
	if (policy)
		detail_line("On interrupt:", policy);
	/* a shared store: the node of the current or last attempt */
	if (crunctl_jstr(job, "node"))
		detail_line("Node:", crunctl_jstr(job, "node"));
}

/* A queued job waiting for its run_at: when it runs, as the other times. */
static void detail_run_at(json_t *job, double now)
{
	double t;

	if (crunctl_job_run_at(job, &t))
		detail_time(job, "run_at", "Runs at:", now);
}

/* "message (code)" of an error object into buf; "-" parts when missing. */
static char *error_text(json_t *err, char *buf, size_t len)
{
	snprintf(buf, len, "%s (%s)",
		 crunctl_jstr(err, "message") ? crunctl_jstr(err, "message") : "-",
		 crunctl_jstr(err, "code") ? crunctl_jstr(err, "code") : "-");
	return buf;
}

/* Two error codes (NULL: none) are the same. */
static bool same_code(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* The attempts that ended, one line each (an ended job's last one is the
 * job's own lines): "Attempt 1:  TIME  message (code)",
 * the time being when it started (when it ended for an attempt that was
 * recorded without a start). */
static void detail_attempts(json_t *job)
{
	json_t *list = json_object_get(job, "attempts"), *at;
	json_t *cur = json_object_get(job, "attempt");
	const char *state = crunctl_jstr(job, "state");
	bool ended = state && strcmp(state, "queued") != 0 && strcmp(state, "running") != 0;
	size_t i;

	json_array_foreach(list, i, at)
	{
		json_t *n = json_object_get(at, "attempt"), *err = json_object_get(at, "error");
		char label[32], when[64] = "-", etext[512], line[640];
		double t;

		/* an ended job's last attempt is the job itself (its times,
		 * error and result are shown as the job's), unless the job
		 * ended otherwise: cancelled while it waited for a retry, its
		 * last attempt is an earlier one */
		const char *jcode = crunctl_jstr(json_object_get(job, "error"), "code");
		const char *acode = crunctl_jstr(err, "code");
		if (ended && json_is_integer(n) && json_is_integer(cur) &&
		    json_integer_value(n) == json_integer_value(cur) && same_code(jcode, acode))
			continue;

		if (json_is_integer(n))
			snprintf(label, sizeof(label),
				 "Attempt %lld:", (long long)json_integer_value(n));
		else
			snprintf(label, sizeof(label), "Attempt:");
		if (crunctl_job_time(at, "started_at", &t) ||
		    crunctl_job_time(at, "finished_at", &t))
			crunctl_format_local_time(t, when, sizeof(when));
		const char *node = crunctl_jstr(at, "node");
		snprintf(line, sizeof(line), "%s  %s%s%s", when,
			 json_is_object(err) ? error_text(err, etext, sizeof(etext)) : "no error",
			 node ? "  on node " : "", node ? node : "");
		detail_line(label, line);
	}
}

/* Duration (or time running so far), timeout, progress and error.  A
 * queued job has no duration: one waiting for a retry still carries its
 * last attempt's start. */
static void detail_run(json_t *job, double now)
{
	json_t *progress = json_object_get(job, "progress"), *err = json_object_get(job, "error");
	json_t *timeout = json_object_get(job, "timeout");
	const char *state = crunctl_jstr(job, "state");
	bool queued = state && strcmp(state, "queued") == 0;
	char buf[512];
	double d, end;

	if (!queued && crunctl_job_duration(job, now, &d))
		detail_line(crunctl_job_time(job, "finished_at", &end) ? "Duration:"
								       : "Running for:",
			    crunctl_format_duration(d, buf, sizeof(buf)));
	if (json_is_number(timeout) && json_number_value(timeout) > 0)
		detail_line("Timeout:",
			    crunctl_format_duration(json_number_value(timeout), buf, sizeof(buf)));
	if (json_is_object(progress) && json_is_number(json_object_get(progress, "fraction")))
		detail_line("Progress:",
			    crunctl_format_progress(
				    json_number_value(json_object_get(progress, "fraction")),
				    crunctl_jstr(progress, "message"), 20, buf, sizeof(buf)));
	if (json_is_object(err))
		detail_line(queued ? "Last error:" : "Error:", error_text(err, buf, sizeof(buf)));
}

static void print_job_detail(crunctl *ctl, json_t *job)
{
	double now = crunctl_now();
	char sbuf[64];

	detail_line("ID:", crunctl_jstr(job, "id") ? crunctl_jstr(job, "id") : "-");
	detail_line("Plugin:", crunctl_jstr(job, "plugin") ? crunctl_jstr(job, "plugin") : "-");
	detail_line("Job:", crunctl_jstr(job, "job") ? crunctl_jstr(job, "job") : "-");
	detail_line("State:", crunctl_state_text(crunctl_jstr(job, "state"), ctl->colour, sbuf,
						 sizeof(sbuf)));
	detail_attempt(job);
	detail_json("Args:", json_object_get(job, "args"));
	detail_time(job, "created_at", "Created:", now);
	detail_run_at(job, now);
	detail_time(job, "started_at", "Started:", now);
	detail_time(job, "finished_at", "Finished:", now);
	detail_run(job, now);
	detail_attempts(job);
	detail_json("Result:", json_object_get(job, "result"));
}

/* GET one job and show it (or add it to the table t); 0 or an exit code. */
static int show_job(crunctl *ctl, const char *id, crunctl_table *t)
{
	crunctl_response resp;
	json_t *job;
	char *path = crunctl_job_path(ctl->client, id, NULL);
	int rc = path ? crunctl_call(ctl, "GET", path, NULL, CRUNCTL_REQUEST_TIMEOUT, &resp, &job)
		      : CRUNCTL_EXIT_INTERNAL;

	free(path);
	if (rc)
		return rc;
	if (ctl->json) {
		crunctl_print_raw(&resp);
	} else if (t) {
		if (crunctl_table_add_job(t, job, crunctl_now()) < 0) {
			crunctl_oom();
			rc = CRUNCTL_EXIT_INTERNAL;
		}
	} else {
		print_job_detail(ctl, job);
	}
	json_decref(job);
	crunctl_response_free(&resp);
	return rc;
}

int crunctl_cmd_status(crunctl *ctl, int argc, char **argv)
{
	char **ids;
	int n, rc = crunctl_parse_ids(ctl, "status", argc, argv, &ids, &n);
	crunctl_table *t = NULL;

	if (rc)
		return rc;
	if (n > 1 && !ctl->json) {
		t = crunctl_table_new(CRUNCTL_JOB_COLUMNS, crunctl_job_headers);
		if (!t) {
			free(ids);
			crunctl_oom();
			return CRUNCTL_EXIT_INTERNAL;
		}
	}
	for (int i = 0; i < n; i++)
		if (crunctl_merge_rc(&rc, show_job(ctl, ids[i], t)))
			break;
	if (t)
		crunctl_table_print(t, stdout, ctl->colour);
	crunctl_table_free(t);
	free(ids);
	return rc;
}
