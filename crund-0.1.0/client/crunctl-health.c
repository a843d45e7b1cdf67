/*
 * crunctl-health.c — `crunctl health`: "ok" and exit 0 when crund answers
 * and its loop turns; exit 6 when it is draining or stalled, 5 when it
 * cannot be reached.
 */
#include "config.h"

#include <stdio.h>

#include "crunctl.h"

static int on_health_option(crunctl *ctl, int opt, const char *arg, void *userdata)
{
	return crunctl_usage_error("health", "unexpected argument '%s'", arg);
}

int crunctl_cmd_health(crunctl *ctl, int argc, char **argv)
{
	static const crunctl_syntax syntax = {.command = "health", .on_option = on_health_option};
	crunctl_response resp;
	json_t *v;
	const char *status;
	int rc = crunctl_parse_options(ctl, &syntax, argc, argv, NULL);

	if (rc)
		return rc;
	/* Not through crunctl_call(): a 503 here is an answer (draining or
	 * stalled), worth its own sentence. */
	rc = crunctl_request(ctl->client, "GET", "/v1/health", NULL, CRUNCTL_REQUEST_TIMEOUT,
			     &resp);
	if (rc)
		return rc;
	v = json_loads(resp.body, 0, NULL);
	status = crunctl_jstr(v, "status");
	if (ctl->json)
		crunctl_print_raw(&resp);
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
