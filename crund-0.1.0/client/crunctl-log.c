/*
 * crunctl-log.c — `crunctl log ID [-f]`: the job's log lines; with -f the
 * lines so far and then each line as it comes until the job ends
 * (follow.c).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "crunctl.h"

typedef struct log_args {
	const char *id;
	bool follow;
} log_args;

static int on_log_option(crunctl *ctl, int opt, const char *arg, void *userdata)
{
	log_args *l = userdata;

	if (opt == 'f') {
		l->follow = true;
		return 0;
	}
	if (l->id)
		return crunctl_usage_error("log", "log takes one job ID");
	l->id = arg;
	return 0;
}

/* -f: the log so far, then its lines as they come; on stdout. */
static int follow_log(crunctl *ctl, const char *id)
{
	const crunctl_follow_opts fo = {.log_out = stdout};
	crunctl_progress pv;
	int rc;

	crunctl_progress_init(&pv, ctl, false);
	rc = crunctl_follow_job(ctl, id, &pv, &fo);
	crunctl_progress_done(&pv);
	return rc;
}

int crunctl_cmd_log(crunctl *ctl, int argc, char **argv)
{
	static const struct option options[] = {
		{"follow", no_argument, NULL, 'f'},
		{0},
	};
	static const crunctl_syntax syntax = {.command = "log",
					      .short_options = "f",
					      .options = options,
					      .on_option = on_log_option};
	log_args l = {0};
	crunctl_response resp;
	char *path;
	int rc = crunctl_parse_options(ctl, &syntax, argc, argv, &l);

	if (rc)
		return rc;
	if (!l.id)
		return crunctl_usage_error("log", "missing job ID");
	if (l.follow)
		return follow_log(ctl, l.id);
	path = crunctl_job_path(ctl->client, l.id, "/log");
	if (!path)
		return CRUNCTL_EXIT_INTERNAL;
	rc = crunctl_call(ctl, "GET", path, NULL, CRUNCTL_REQUEST_TIMEOUT, &resp, NULL);
	free(path);
	if (rc)
		return rc;
	fwrite(resp.body, 1, resp.len, stdout);
	crunctl_response_free(&resp);
	return 0;
}
