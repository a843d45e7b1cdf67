/*
 * fuzz-body.c — a POST /v1/jobs body from parsing to a stored, rendered
 * job: jansson, the plugin and job lookup, crd_args_validate(), then the
 * job store (daemon/jobs.c: submit with idempotency keys, the queue,
 * retention, lookups by id, cursors, log lines, finishing) and the job's
 * JSON rendering, which must always be valid JSON that gives back what was
 * stored.
 *
 * The request handler itself (post_job in daemon/api.c) is static and
 * takes an MHD connection, so its field checks cannot be called here;
 * this target takes the body's fields as that handler does (plugin, job,
 * args, timeout, context, idempotency_key) and drives the same daemon
 * functions after them.  The plugin is the real demo plugin's descriptor
 * (plugins/demo/demo.c linked in; none of its code runs).
 *
 * Input: JSON.  An object is one submission.  An array is a script:
 *   object   a submission
 *   string   text from outside: a job id and list cursor to look up, a
 *            ?state= value, a log line for the newest job, and the error
 *            message of the oldest running job, which then fails
 *   integer  cancel the job with that sequence number, or when it is
 *            running already asked, end it succeeded
 */
#include "config.h"

#include <errno.h>
#include <math.h>

#include "fuzz.h"
#include "jobs/jobs.h"
#include "plugins/plugins.h"
#include "http/route.h"

extern const crund_plugin crund_plugin_v1;

static crd_loaded_plugin demo = {.desc = &crund_plugin_v1, .path = (char *)"demo.so"};
static crd_plugin_registry reg = {.plugins = &demo, .n = 1};

static double clock_now;
static double fake_now(void) { return clock_now += 0.25; }

static int fake_start(crd_jobrec *j, void *data)
{
	(void)j;
	(void)data;
	return 0;
}
static void fake_cancel(crd_jobrec *j, void *data)
{
	(void)data;
	j->flags |= CRUND_JF_CANCEL_REQ;
}

/* Render j; the text must be one JSON object with j's fields. */
static void check_render(const crd_jobrec *j)
{
	crd_buf b = CRUND_BUF_INIT;
	crd_job_render(&b, j);
	FUZZ_CHECK(crd_buf_ok(&b));
	json_error_t jerr;
	json_t *v = json_loadb(b.data, b.len, 0, &jerr);
	if (!v)
		fprintf(stderr, "rendered: %.*s\nerror: %s\n", (int)b.len, b.data, jerr.text);
	FUZZ_CHECK(json_is_object(v));
	FUZZ_CHECK(!strcmp(json_string_value(json_object_get(v, "id")), j->id));
	FUZZ_CHECK(!strcmp(json_string_value(json_object_get(v, "job")), j->spec->name));
	json_t *args = json_loadb(j->args_json, j->args_len, 0, NULL);
	FUZZ_CHECK(json_equal(json_object_get(v, "args"), args));
	FUZZ_CHECK(!j->args || json_equal(j->args, args));
	json_decref(args);
	FUZZ_CHECK(!strcmp(json_string_value(json_object_get(v, "state")),
			   crd_job_state_name(j->state)));
	if (j->idem_key)
		FUZZ_CHECK(!strcmp(json_string_value(json_object_get(v, "idempotency_key")),
				   j->idem_key));
	if (j->state == CRUND_JOB_SUCCEEDED && j->result) {
		json_t *res = json_loadb(j->result, j->result_len, JSON_DECODE_ANY, NULL);
		FUZZ_CHECK(json_equal(json_object_get(v, "result"), res));
		json_decref(res);
	}
	if (j->err_msg && crd_job_state_ended(j->state))
		FUZZ_CHECK(!strcmp(
			json_string_value(json_object_get(json_object_get(v, "error"), "message")),
			j->err_msg));
	json_decref(v);
	crd_buf_free(&b);
}

static void render_cb(crd_jobrec *j, void *arg)
{
	(void)arg;
	check_render(j);
}

static void submit(crd_jobs *s, json_t *body)
{
	json_t *jp = json_object_get(body, "plugin"), *jj = json_object_get(body, "job");
	json_t *ja = json_object_get(body, "args"), *jt = json_object_get(body, "timeout");
	json_t *jc = json_object_get(body, "context"),
	       *jk = json_object_get(body, "idempotency_key");

	const crd_loaded_plugin *p = crd_plugins_find(&reg, json_string_value(jp));
	const crund_job_spec *spec = crd_plugins_find_job(p, json_string_value(jj));
	if (!spec)
		return;
	if (ja && !json_is_object(ja) && !json_is_null(ja))
		return;
	double timeout = 0;
	if (jt && !json_is_null(jt)) {
		if (!json_is_number(jt) || !(json_number_value(jt) > 0) ||
		    json_number_value(jt) > 365 * 86400.0)
			return;
		timeout = json_number_value(jt);
	}
	const char *ctx = json_string_value(jc);
	const char *idem = json_string_value(jk);
	if (idem && (!*idem || strlen(idem) > 200))
		return;

	json_t *args = NULL;
	char err[300];
	if (crd_args_validate(spec, json_is_object(ja) ? ja : NULL, &args, err, sizeof(err)) < 0) {
		FUZZ_CHECK(fuzz_err_ok(err, sizeof(err)));
		return;
	}
	json_t *keep = json_incref(args);
	crd_job_req req = {.plugin = p,
			   .spec = spec,
			   .args = args,
			   .timeout = timeout,
			   .isolated = ctx && !strcmp(ctx, "isolated"),
			   .idem_key = idem};
	crd_jobrec *j = NULL;
	bool existing = false;
	int rc = crd_jobs_submit(s, &req, &j, &existing);
	FUZZ_CHECK(rc == 0 || rc == -EEXIST || rc == -EAGAIN);
	if (rc == 0) {
		FUZZ_CHECK(j != NULL);
		FUZZ_CHECK(crd_jobs_find(s, j->id) == j);
		FUZZ_CHECK(json_equal(j->args, keep));
		if (!existing) {
			FUZZ_CHECK(j->spec == spec);
			FUZZ_CHECK(!idem == !j->idem_key);
		}
		check_render(j);
	}
	json_decref(keep);
}

/* Text from outside the daemon: ids, cursors, ?state=, log lines, errors. */
static void outside_text(crd_jobs *s, const char *t)
{
	uint64_t seq;
	crd_jobrec *j = crd_jobs_find(s, t);
	if (j) {
		FUZZ_CHECK(crd_jobs_parse_id(s, t, &seq) == 0 && seq == j->seq);
		FUZZ_CHECK(!strcmp(j->id, t)); /* one canonical spelling */
	}
	unsigned mask = 0;
	if (crd_parse_state_mask(t, &mask) < 0)
		mask = 0;
	bool more = false;
	int rc = crd_jobs_list(s, mask, NULL, t, 3, render_cb, NULL, &more);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	rc = crd_jobs_list(s, 0, t, NULL, 2, render_cb, NULL, &more);
	FUZZ_CHECK(rc == 0);

	if (s->newest)
		crd_jobs_log_append(s->newest, t, strlen(t));
	for (j = s->oldest; j; j = j->newer) {
		if (j->state == CRUND_JOB_RUNNING) {
			crd_jobs_finish(s, j, CRUND_JOB_FAILED, "plugin_error", t);
			break;
		}
	}
}

static void outside_number(crd_jobs *s, json_int_t n)
{
	crd_jobrec *j = crd_jobs_find_seq(s, (uint64_t)n);
	if (!j)
		return;
	if (j->state == CRUND_JOB_RUNNING && (j->flags & CRUND_JF_CANCEL_REQ)) {
		int rc = crd_jobs_set_result(j, json_incref(j->args));
		FUZZ_CHECK(rc == 0 || rc == -E2BIG);
		crd_jobs_finish(s, j, CRUND_JOB_SUCCEEDED, NULL, NULL);
		return;
	}
	int rc = crd_jobs_cancel(s, j, "cancelled");
	FUZZ_CHECK(rc == 0 || rc == -EALREADY);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *body = json_loadb((const char *)data, size, 0, NULL);
	if (!body)
		return 0;

	/* Small limits, so a few submissions fill the queue and evict. */
	crd_jobs_limits lim = {.max_running = 2,
			       .max_queued = 2,
			       .retain_jobs = 3,
			       .retain_seconds = 3600,
			       .max_result_bytes = 1024,
			       .max_log_bytes = 256};
	crd_jobs_ops ops = {.start = fake_start, .cancel = fake_cancel};
	crd_jobs s;
	clock_now = 1.7e9;
	FUZZ_CHECK(crd_jobs_init(&s, &lim, &ops, NULL, fake_now) == 0);
	crd_jobs_set_prefix(&s, "fz");

	if (json_is_object(body)) {
		submit(&s, body);
	} else if (json_is_array(body)) {
		size_t i;
		json_t *v;
		json_array_foreach(body, i, v)
		{
			if (i == 64)
				break;
			if (json_is_object(v))
				submit(&s, v);
			else if (json_is_string(v))
				outside_text(&s, json_string_value(v));
			else if (json_is_integer(v))
				outside_number(&s, json_integer_value(v));
		}
	}
	/* Everything the store holds renders. */
	bool more;
	FUZZ_CHECK(crd_jobs_list(&s, 0, NULL, NULL, 1000, render_cb, NULL, &more) == 0);
	FUZZ_CHECK(!more);
	FUZZ_CHECK(s.count <= lim.max_running + lim.max_queued + lim.retain_jobs);
	crd_jobs_free(&s);
	json_decref(body);
	return 0;
}
