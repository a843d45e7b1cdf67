/*
 * crunctl-cancel.c — `crunctl cancel ID...`: ask queued or running jobs to
 * stop.  A job that already ended is the API's conflict (exit 6).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "crunctl.h"

static int cancel_one(crunctl *ctl, const char *id)
{
	crunctl_response resp;
	json_t *job;
	char *path = crunctl_job_path(ctl->client, id, "/cancel");
	int rc = path ? crunctl_call(ctl, "POST", path, NULL, CRUNCTL_REQUEST_TIMEOUT, &resp, &job)
		      : CRUNCTL_EXIT_INTERNAL;
	const char *st;

	free(path);
	if (rc)
		return rc;
	st = crunctl_jstr(job, "state");
	if (ctl->json)
		crunctl_print_raw(&resp);
	else if (!ctl->quiet && crunctl_state_is_final(st))
		fprintf(stderr, "job %s: %s\n", id, st);
	else if (!ctl->quiet)
		fprintf(stderr, "job %s: cancellation requested\n", id);
	json_decref(job);
	crunctl_response_free(&resp);
	return 0;
}

int crunctl_cmd_cancel(crunctl *ctl, int argc, char **argv)
{
	char **ids;
	int n, rc = crunctl_parse_ids(ctl, "cancel", argc, argv, &ids, &n);

	if (rc)
		return rc;
	for (int i = 0; i < n; i++)
		if (crunctl_merge_rc(&rc, cancel_one(ctl, ids[i])))
			break;
	free(ids);
	return rc;
}
