/*
 * crunctl-rm.c — `crunctl rm ID...`: forget ended jobs.  An active job
 * cannot be removed (the API's conflict, exit 6).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "crunctl.h"

static int remove_one(crunctl *ctl, const char *id)
{
	crunctl_response resp;
	char *path = crunctl_job_path(ctl->client, id, NULL);
	int rc = path ? crunctl_call(ctl, "DELETE", path, NULL, CRUNCTL_REQUEST_TIMEOUT, &resp,
				     NULL)
		      : CRUNCTL_EXIT_INTERNAL;

	free(path);
	if (rc)
		return rc;
	if (ctl->json && resp.len)
		crunctl_print_raw(&resp);
	else if (!ctl->quiet && !ctl->json)
		fprintf(stderr, "job %s removed\n", id);
	crunctl_response_free(&resp);
	return 0;
}

int crunctl_cmd_rm(crunctl *ctl, int argc, char **argv)
{
	char **ids;
	int n, rc = crunctl_parse_ids(ctl, "rm", argc, argv, &ids, &n);

	if (rc)
		return rc;
	for (int i = 0; i < n; i++)
		if (crunctl_merge_rc(&rc, remove_one(ctl, ids[i])))
			break;
	free(ids);
	return rc;
}
