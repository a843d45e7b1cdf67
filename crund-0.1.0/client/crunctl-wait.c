/*
 * crunctl-wait.c — `crunctl wait ID [--timeout S]`: wait for a job to end
 * (follow.c), print its result and exit by its state.
 */
#include "config.h"

#include <math.h>

#include "crunctl.h"

enum {
	OPT_TIMEOUT = 0x100,
};

typedef struct wait_args {
	const char *id;
	double timeout;
} wait_args;

static int on_wait_option(crunctl *ctl, int opt, const char *arg, void *userdata)
{
	wait_args *w = userdata;

	if (opt == OPT_TIMEOUT) {
		if (crunctl_parse_duration(arg, &w->timeout) < 0)
			return crunctl_usage_error(
				"wait", "'%s' is not a duration (e.g. 30, 90s, 5m)", arg);
		return 0;
	}
	if (w->id)
		return crunctl_usage_error("wait", "wait takes one job ID");
	w->id = arg;
	return 0;
}

int crunctl_cmd_wait(crunctl *ctl, int argc, char **argv)
{
	static const struct option options[] = {
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{0},
	};
	static const crunctl_syntax syntax = {
		.command = "wait", .options = options, .on_option = on_wait_option};
	wait_args w = {.timeout = INFINITY};
	double t0 = crunctl_now();
	json_t *job = NULL;
	crunctl_response resp = {0};
	crunctl_progress pv;
	int rc = crunctl_parse_options(ctl, &syntax, argc, argv, &w);

	if (rc)
		return rc;
	if (!w.id)
		return crunctl_usage_error("wait", "missing job ID");
	crunctl_progress_init(&pv, ctl, true);
	rc = crunctl_wait_job(ctl, w.id, t0 + w.timeout, &pv, &job, &resp);
	crunctl_progress_done(&pv);
	if (rc == 0)
		rc = crunctl_finish_job(ctl, job, &resp, crunctl_now() - t0);
	json_decref(job);
	crunctl_response_free(&resp);
	return rc;
}
