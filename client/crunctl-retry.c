/*
 * crunctl-retry.c — `crunctl retry ID...`: run ended jobs again (POST
 * /v1/jobs/{id}/retry).  Each becomes a new job with the same arguments,
 * whose id is printed (one per line, like `submit`); a job still active is
 * the API's conflict (exit 6).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "crunctl.h"

static int retry_one(crunctl *ctl, const char *id)
{
	crunctl_response resp;
	json_t *job;
	char *path = crunctl_job_path(ctl->client, id, "/retry");
	int rc = path ? crunctl_call(ctl, "POST", path, NULL, CRUNCTL_REQUEST_TIMEOUT, &resp, &job)
		      : CRUNCTL_EXIT_INTERNAL;
	const char *new_id;

	free(path);
	if (rc)
		return rc;
	new_id = crunctl_jstr(job, "id");
	if (!new_id) {
		fprintf(stderr, "crunctl: crund accepted the retry but sent no id\n");
		rc = CRUNCTL_EXIT_INTERNAL;
	} else if (ctl->json) {
		crunctl_print_raw(&resp);
	} else {
		printf("%s\n", new_id);
		if (!ctl->quiet)
			fprintf(stderr, "job %s runs job %s again\n", new_id, id);
	}
	json_decref(job);
	crunctl_response_free(&resp);
	return rc;
}

int crunctl_cmd_retry(crunctl *ctl, int argc, char **argv)
{
	char **ids;
	int n, rc = crunctl_parse_ids(ctl, "retry", argc, argv, &ids, &n);

	if (rc)
		return rc;
	for (int i = 0; i < n; i++)
		if (crunctl_merge_rc(&rc, retry_one(ctl, ids[i])))
			break;
	free(ids);
	return rc;
}
