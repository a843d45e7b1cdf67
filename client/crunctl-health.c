/*
 * crunctl-health.c — `crunctl health`: "ok" and exit 0 when crund answers
 * {"status":"ok"} (it answers and its loop turns); exit 6 when it is
 * draining or stalled, 5 when it cannot be reached, 7 when the answer is
 * not crund's (another server's 200).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

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
	if (resp.status == 200) {
		/* crund's answer is {"status":"ok"}: another server's 200 (a
		 * proxy's page, a web server's file) is not crund turning */
		json_error_t jerr;
		v = json_loadb(resp.body, resp.len, 0, &jerr);
		status = crunctl_jstr(v, "status");
		if (!v) {
			fprintf(stderr, "crunctl: crund sent a reply that is not JSON (%s)\n",
				jerr.text);
			rc = CRUNCTL_EXIT_INTERNAL;
		} else if (!status || strcmp(status, "ok") != 0) {
			fprintf(stderr,
				"crunctl: crund sent a health reply without \"status\": \"ok\"; "
				"is %s crund?\n",
				crunctl_client_where(ctl->client));
			rc = CRUNCTL_EXIT_INTERNAL;
		} else if (ctl->json) {
			crunctl_print_raw(&resp);
		} else if (!ctl->quiet) {
			printf("ok\n");
		}
		json_decref(v);
		crunctl_response_free(&resp);
		return rc;
	}
	v = json_loadb(resp.body, resp.len, 0, NULL);
	status = crunctl_jstr(v, "status");
	/* --json: crund's answer unchanged, an error's JSON too */
	if (ctl->json && json_is_object(v))
		crunctl_print_raw(&resp);
	if (resp.status == 503 && status) {
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
