/*
 * submit.h — the body of POST /v1/jobs, from bytes to a validated
 * submission: JSON parsing (line/column on errors), field types, plugin
 * and job lookup, argument validation against the job's specs.  No HTTP
 * and no daemon state, so it is unit-tested and fuzzed directly.
 */
#ifndef CRUND_SUBMIT_H
#define CRUND_SUBMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "jobs/jobs.h"
#include "plugins/plugins.h"

#define CRUND_IDEM_KEY_MAX 200
#define CRUND_TIMEOUT_MAX  (365 * 86400.0)
#define CRUND_DELAY_MAX    (365 * 86400.0) /* delay / run_at at most a year ahead */

/* A parsed submission is the jobs module's request itself, so it goes to
 * crd_jobs_submit as it is (the caller adds `accepted` for a durable
 * store).  Parsed, it owns args (defaults filled; crd_jobs_submit steals
 * it: set it to NULL after the call) and idem_key (copied by the jobs
 * module; freed by crd_submission_free).  max_attempts 0: not given (the
 * job spec's default, else 1); run_at from delay or run_at, 0: now;
 * on_interrupt -1: not given. */
typedef crd_job_req crd_submission;

/* Parse and validate.  On success fills *ret (free with
 * crd_submission_free) and returns 0.  On a bad body returns -EINVAL
 * (*ret_code "invalid_json", "invalid_request" or "invalid_args"), for a
 * plugin or job that does not exist -ENOENT (*ret_code "unknown_plugin" or
 * "unknown_job": the API answers 404); msg is a sentence naming what is
 * wrong.  -ENOMEM when memory ran out. */
int crd_submission_parse(const crd_plugin_registry *reg, const char *body, size_t len,
			 crd_submission *ret, const char **ret_code, char *msg, size_t msglen);
void crd_submission_free(crd_submission *s);

#endif
