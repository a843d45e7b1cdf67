/*
 * api.c — the HTTP API v1 (docs/ARCHITECTURE.md §5): one function per route.
 *
 * Answers are JSON built by hand into a crd_buf (no json_t tree per
 * answer); request bodies are parsed with jansson.  Error bodies are
 * {"error":{"code","message"}} with a sentence that says what was wrong.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "daemon.h"
#include "log.h"
#include "jobs/submit.h"

static const char *query(crd_req *r, const char *key)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

static bool has_query(crd_req *r, const char *key)
{
	return MHD_lookup_connection_value_n(r->conn, MHD_GET_ARGUMENT_KIND, key, strlen(key), NULL,
					     NULL) == MHD_YES;
}

/* The token check (constant time); true when no token is set. */
static bool authorized(struct MHD_Connection *conn)
{
	const char *tok = crd_d.cfg.token;
	if (!tok)
		return true;
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION);
	if (!h || strncasecmp(h, "Bearer ", 7))
		return false;
	h += 7;
	while (*h == ' ')
		h++;
	/* Constant time in the token's length: every byte is compared. */
	size_t tl = strlen(tok), hl = strlen(h);
	unsigned char diff = (unsigned char)(tl != hl);
	for (size_t i = 0; i < tl; i++)
		diff |= (unsigned char)(tok[i] ^ (i < hl ? h[i] : 0));
	return diff == 0;
}

/* Is a Host header's name an IP address or localhost (port aside)? */
static bool loopback_name(const char *host)
{
	if (host[0] == '[')
		return true; /* an IPv6 address */
	size_t n = strcspn(host, ":");
	static const char lh[] = "localhost";
	if ((n == sizeof(lh) - 1 && !strncasecmp(host, lh, n)) ||
	    (n > sizeof(lh) && host[n - sizeof(lh)] == '.' &&
	     !strncasecmp(host + n - (sizeof(lh) - 1), lh, sizeof(lh) - 1)))
		return true;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)host[i]) && host[i] != '.')
			return false;
	return n > 0;
}

/* A request a browser sent for a page of another origin (CSRF: a page on
 * any site can POST to a loopback address, and without a token nothing
 * else tells it from the dashboard's own calls).  Browsers name the page's
 * origin in `Origin` on every POST and DELETE; it must be this server's
 * own (scheme://Host).  Clients that are not browsers send no Origin. */
static bool cross_origin(struct MHD_Connection *conn, const char **ret_origin)
{
	const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin"),
		   *site = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-Fetch-Site"),
		   *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	*ret_origin = origin ? origin : "another site";
	if (site && !strcasecmp(site, "cross-site"))
		return true;
	if (!origin)
		return false;
	const char *auth = !strncasecmp(origin, "http://", 7)    ? origin + 7
			   : !strncasecmp(origin, "https://", 8) ? origin + 8
								 : NULL;
	if (!auth || !host || strcasecmp(auth, host) != 0)
		return true;
	/* Without a token, a name that is not the loopback's may be one a
	 * page rebound to 127.0.0.1 (its Origin then matches): a browser's
	 * writes come from an address or localhost, or carry the token. */
	return !crd_d.cfg.token && !loopback_name(host);
}

/* The job as it is, once what it says is durable: a job whose end is not
 * committed yet is answered at that commit (at most CRD_API_SETTLE_WAIT
 * later; a failed commit answers too, reads keep working). */
static crd_mhd_result send_job(crd_req *r, unsigned status, crd_jobrec *j, bool location)
{
	if (j->flags & CRUND_JF_END_UNSYNCED)
		return crd_api_wait(r, j, CRD_API_SETTLE_WAIT, status, location);
	crd_buf *b = crd_http_out(r);
	char loc[16 + CRUND_JOB_ID_MAX];
	crd_resp_opts o = {0};
	crd_job_render(b, j);
	crd_buf_addc(b, '\n');
	if (location) {
		snprintf(loc, sizeof(loc), "/v1/jobs/%s", j->id);
		o.location = loc;
	}
	return crd_http_send(r, status, &o);
}

static crd_mhd_result job_not_found(crd_req *r)
{
	return crd_http_error(r, 404, "not_found", NULL, "no job with id '%s'",
			      crd_api_req_of(r)->rm.param);
}

/* ?wait: absent → 0; present and invalid → -EINVAL (400 answered). */
static int get_wait(crd_req *r, double *ret)
{
	*ret = 0;
	if (!has_query(r, "wait"))
		return 0;
	return crd_parse_wait(query(r, "wait"), ret);
}

static crd_mhd_result bad_wait(crd_req *r)
{
	return crd_http_error(r, 400, "invalid_parameter", NULL,
			      "'wait' must be a number of seconds, from 0 (no wait) to %g",
			      CRUND_WAIT_MAX);
}

/* ------------------------------------------------------------ POST /v1/jobs */

/* 503 store_unavailable: the sentence fmt makes, the store's cause, then
 * `after`. */
static crd_mhd_result store_failed(crd_req *r, const char *after, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static crd_mhd_result store_failed(crd_req *r, const char *after, const char *fmt, ...)
{
	int code = 0;
	const char *why = crd_store_error(crd_d.store, &code);
	crd_resp_opts o = {.retry_after = 1};
	char head[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	return crd_http_error(r, 503, "store_unavailable", &o, "%s: %s%s", head,
			      why ? why : cr_strerror(code ? code : -EIO), after);
}

static crd_mhd_result store_unavailable(crd_req *r)
{
	return store_failed(r, "; nothing was accepted", "the job store cannot take the job");
}

/* A submission waiting for its commit. */
struct accept_ticket {
	struct crd_hold_ticket hold;
};

static void job_accepted(void *arg, crd_jobrec *job, int rc)
{
	struct accept_ticket *t = arg;
	crd_req *r = t->hold.req;
	if (r) {
		crd_api_req *a = crd_api_req_of(r);
		a->phase = CRD_API_ACCEPTED;
		a->accept_rc = rc;
		if (job)
			snprintf(a->rm.param, sizeof(a->rm.param), "%s", job->id);
		crd_http_release(&t->hold);
	}
	free(t);
}

/* A held submission asked again: committed (or failed), or the transport
 * stops before the commit. */
static crd_mhd_result accepted_again(crd_req *r)
{
	crd_api_req *a = crd_api_req_of(r);
	if (a->phase == CRD_API_HELD)
		return crd_http_error(r, 503, "draining", NULL,
				      "the daemon is shutting down; the job may still run at its "
				      "next start");
	crd_jobrec *job = a->rm.param[0] ? crd_jobs_find(&crd_d.jobs, a->rm.param) : NULL;
	if (a->accept_rc == -EEXIST) /* another node's job holds the key */
		return crd_http_error(
			r, 409, "idempotency_conflict", NULL,
			"idempotency key '%s' was used for a different submission (job %s)",
			job && job->idem_key ? job->idem_key : "?", a->rm.param);
	if (a->accept_rc < 0) {
		if (a->accept_rc == -ENOMEM)
			return crd_http_error(r, 500, "internal", NULL, "out of memory");
		return store_unavailable(r);
	}
	if (!job) /* forgotten already (retention of 0) */
		return job_not_found(r);
	/* accept_rc 1: the same idempotency key again, answered with the
	 * first submission's commit (200 and that job) */
	unsigned status = a->accept_rc > 0 ? 200 : 201;
	if (a->wait_seconds > 0 && !crd_job_settled(job))
		return crd_api_wait(r, job, a->wait_seconds, status, true);
	return send_job(r, status, job, true);
}

/* Hand a validated submission to the jobs module and answer: 201 (or 200
 * for a known idempotency key) with the job, a long-poll with ?wait, or
 * held until a durable store committed it.  Frees sub. */
static crd_mhd_result submit(crd_req *r, crd_submission *subp, double wait)
{
	crd_submission sub = *subp;
	int rc;
	struct accept_ticket *t = NULL;
	if (crd_store_durable(crd_d.store) && !(t = calloc(1, sizeof(*t)))) {
		crd_submission_free(&sub);
		return crd_http_error(r, 500, "internal", NULL, "out of memory");
	}
	sub.accepted = job_accepted;
	sub.accepted_arg = t;
	crd_jobrec *job;
	bool existing = false;
	crd_mhd_result ret;
	rc = crd_jobs_submit(&crd_d.jobs, &sub, &job, &existing);
	sub.args = NULL; /* the store took it (also on failure) */
	if (rc != CRD_JOBS_PENDING)
		free(t);
	if (rc == CRD_JOBS_PENDING) {
		/* durable: answered once the job's row has committed */
		crd_api_req *a = crd_api_req_of(r);
		a->phase = CRD_API_HELD;
		a->wait_seconds = wait;
		ret = crd_http_hold(r, &t->hold);
	} else if (rc == -EIO) {
		ret = store_unavailable(r);
	} else if (rc == -EAGAIN) {
		crd_resp_opts o = {.retry_after = 1};
		ret = crd_http_error(r, 429, "queue_full", &o,
				     "the queue is full: --max-queued %u jobs wait (queued or "
				     "delayed), %zu of --max-running %u run; retry later",
				     crd_d.jobs.lim.max_queued,
				     crd_d.jobs.n_state[CRUND_JOB_RUNNING],
				     crd_d.jobs.lim.max_running);
	} else if (rc == -EEXIST) {
		ret = crd_http_error(r, 409, "idempotency_conflict", NULL,
				     "idempotency key '%s' was used for a different submission",
				     sub.idem_key);
	} else if (rc == -ESHUTDOWN) {
		crd_resp_opts o = {.retry_after = 5};
		ret = crd_http_error(r, 503, "draining", &o,
				     "the daemon is shutting down and accepts no new jobs");
	} else if (rc < 0) {
		ret = crd_http_error(r, 500, "internal", NULL, "cannot create the job: %s",
				     cr_strerror(rc));
	} else {
		unsigned status = existing ? 200 : 201;
		if (wait > 0 && !crd_job_settled(job))
			ret = crd_api_wait(r, job, wait, status, true);
		else
			ret = send_job(r, status, job, true);
	}
	crd_submission_free(&sub);
	return ret;
}

static crd_mhd_result post_job(crd_req *r)
{
	crd_submission sub;
	const char *code = "invalid_request";
	char err[300];
	double wait;
	int rc;

	if (get_wait(r, &wait) < 0)
		return bad_wait(r);
	rc = crd_submission_parse(&crd_d.reg, r->body.data, r->body.len, &sub, &code, err,
				  sizeof(err));
	if (rc == -EINVAL)
		return crd_http_error(r, 400, code, NULL, "%s", err);
	if (rc == -ENOENT) /* docs/ARCHITECTURE.md §5.1: unknown plugin or job → 404 */
		return crd_http_error(r, 404, code, NULL, "%s", err);
	if (rc < 0)
		return crd_http_error(r, 500, "internal", NULL, "out of memory");
	return submit(r, &sub, wait);
}

/* POST /v1/jobs/{id}/retry: run an ended job again, as a NEW job with the
 * same plugin, job, arguments, timeout, context, max_attempts and
 * on_interrupt, linked to the old one by `retry_of`
 * (docs/ARCHITECTURE.md §5.9 says why a new job and not a new attempt).
 * No idempotency key (the old job keeps its own) and no delay. */
static crd_mhd_result retry_job(crd_req *r, crd_jobrec *j)
{
	double wait;
	if (get_wait(r, &wait) < 0)
		return bad_wait(r);
	if (!crd_job_state_ended(j->state))
		return crd_http_error(r, 409, "job_active", NULL,
				      "job '%s' is still %s; only an ended job can be run again",
				      j->id, crd_job_state_name(j->state));
	const char *pname = j->plugin->desc->name;
	if (crd_plugins_find(&crd_d.reg, pname) != j->plugin)
		return crd_http_error(r, 404, "unknown_plugin", NULL,
				      "plugin '%s' of job '%s' is no longer loaded", pname, j->id);
	crd_submission sub = {0};
	sub.args = json_loadb(j->args_json, j->args_len, 0, NULL);
	if (!sub.args)
		return crd_http_error(r, 500, "internal", NULL, "out of memory");
	sub.plugin = j->plugin;
	sub.spec = j->spec;
	sub.timeout = j->timeout;
	sub.isolated = (j->flags & CRUND_JF_ISOLATED) != 0;
	sub.max_attempts = j->max_attempts;
	sub.on_interrupt = j->on_interrupt;
	sub.retry_of = j->id;
	return submit(r, &sub, wait);
}

/* ------------------------------------------------------- shared store
 *
 * With a shared store (postgresql:) this node holds only some jobs: a job
 * it does not hold is read from the database (the request is held
 * meanwhile) and kept as a REMOTE record, which the route then serves
 * like any record; listings read the database. */

struct read_ticket {
	struct crd_hold_ticket hold;
};

/* A read of one job came back: the held request (if still there) goes on
 * in `phase`, the row cached as a REMOTE record. */
static void read_into(struct read_ticket *t, uint8_t phase, int rc, const crd_store_job *rows,
		      size_t n)
{
	crd_req *r = t->hold.req;
	if (r) {
		crd_api_req *a = crd_api_req_of(r);
		a->phase = phase;
		a->accept_rc = rc == 0 && n != 1 ? -ENOENT : rc;
		if (a->accept_rc == 0 && !crd_jobs_cache_row(&crd_d.jobs, &rows[0]))
			a->accept_rc = -ENOMEM;
		crd_http_release(&t->hold);
	}
	free(t);
}

static void job_read(void *arg, int rc, const crd_store_job *rows, size_t n, bool more)
{
	(void)more;
	read_into(arg, CRD_API_FETCHED, rc, rows, n);
}

static crd_mhd_result read_failed(crd_req *r, int rc)
{
	crd_resp_opts o = {.retry_after = 1};
	if (rc == -ENOENT)
		return job_not_found(r);
	if (rc == -ENOMEM)
		return crd_http_error(r, 500, "internal", NULL, "out of memory");
	return crd_http_error(r, 503, "store_unavailable", &o, "the job store cannot be read: %s",
			      cr_strerror(rc));
}

/* Hold r while the job named in the route is read from the database. */
static crd_mhd_result fetch_job(crd_req *r)
{
	crd_api_req *a = crd_api_req_of(r);
	uint64_t seq;
	if (crd_jobs_parse_id(&crd_d.jobs, a->rm.param, &seq) < 0)
		return job_not_found(r); /* not an id of this store: no query */
	struct read_ticket *t = calloc(1, sizeof(*t));
	if (!t)
		return crd_http_error(r, 500, "internal", NULL, "out of memory");
	int rc = crd_store_fetch(crd_d.store, a->rm.param, job_read, t);
	if (rc < 0) {
		free(t);
		return read_failed(r, rc);
	}
	a->phase = CRD_API_FETCH;
	return crd_http_hold(r, &t->hold);
}

static void jobs_listed(void *arg, int rc, const crd_store_job *rows, size_t n, bool more)
{
	struct read_ticket *t = arg;
	crd_req *r = t->hold.req;
	if (r) {
		crd_api_req *a = crd_api_req_of(r);
		a->phase = CRD_API_LISTED;
		a->accept_rc = rc;
		if (rc == 0) {
			crd_buf *b = &a->stream;
			crd_buf_adds(b, "{\"jobs\":[");
			for (size_t i = 0; i < n; i++) {
				if (i)
					crd_buf_addc(b, ',');
				crd_jobs_render_row(&crd_d.jobs, b, &rows[i]);
			}
			crd_buf_adds(b, "],\"next_cursor\":");
			if (more && n)
				crd_buf_add_jstr(b, rows[n - 1].id);
			else
				crd_buf_adds(b, "null");
			crd_buf_adds(b, "}\n");
		}
		crd_http_release(&t->hold);
	}
	free(t);
}

static crd_mhd_result list_shared(crd_req *r, unsigned mask, const char *plugin, const char *cursor,
				  size_t limit)
{
	uint64_t before = 0;
	if (cursor && crd_jobs_parse_id(&crd_d.jobs, cursor, &before) < 0)
		return crd_http_error(r, 400, "invalid_parameter", NULL,
				      "'cursor' is not a cursor from this daemon (use next_cursor "
				      "of a previous page)");
	struct read_ticket *t = calloc(1, sizeof(*t));
	if (!t)
		return crd_http_error(r, 500, "internal", NULL, "out of memory");
	int rc = crd_store_list(crd_d.store, mask, plugin, before, limit, jobs_listed, t);
	if (rc < 0) {
		free(t);
		return read_failed(r, rc);
	}
	crd_api_req_of(r)->phase = CRD_API_FETCH;
	return crd_http_hold(r, &t->hold);
}

static crd_mhd_result listed_again(crd_req *r)
{
	crd_api_req *a = crd_api_req_of(r);
	if (a->accept_rc < 0)
		return read_failed(r, a->accept_rc);
	crd_buf *b = crd_http_out(r);
	crd_buf_add(b, a->stream.data, a->stream.len);
	crd_buf_free(&a->stream);
	return crd_http_send(r, 200, NULL);
}

/* ------------------------------------------------------------- GET /v1/jobs */

struct list_ctx {
	crd_buf *b;
	size_t n;
	const char *last;
	crd_jobrec *unsynced; /* the last to end of those whose end is not durable yet */
};

static void list_one(crd_jobrec *j, void *arg)
{
	struct list_ctx *c = arg;
	if (c->n++)
		crd_buf_addc(c->b, ',');
	crd_job_render(c->b, j);
	c->last = j->id;
	if ((j->flags & CRUND_JF_END_UNSYNCED) &&
	    (!c->unsynced || j->finished_at > c->unsynced->finished_at))
		c->unsynced = j;
}

/* The query of a list: ?state= may come several times (the states of
 * each, as /v1/events takes them); another parameter given twice is
 * refused (which one would count?). */
struct list_query {
	unsigned mask;
	bool bad_state;
	const char *twice; /* a parameter given twice */
	unsigned seen;     /* bit per LIST_KEYS entry */
};

static const char *const LIST_KEYS[] = {"plugin", "cursor", "job", "q", "limit", "wait"};

static crd_mhd_result each_list_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				    const char *value)
{
	struct list_query *lq = cls;
	(void)kind;
	unsigned m;
	if (!strcmp(key, "state")) {
		if (crd_parse_state_mask(value, &m) < 0)
			lq->bad_state = true;
		else
			lq->mask |= m;
		return MHD_YES;
	}
	for (unsigned i = 0; i < sizeof(LIST_KEYS) / sizeof(*LIST_KEYS); i++)
		if (!strcmp(key, LIST_KEYS[i])) {
			if (lq->seen & (1u << i))
				lq->twice = LIST_KEYS[i];
			lq->seen |= 1u << i;
		}
	return MHD_YES;
}

static crd_mhd_result list_jobs(crd_req *r)
{
	unsigned mask;
	size_t limit;
	const char *plugin = query(r, "plugin"), *cursor = query(r, "cursor");
	const char *job = query(r, "job"), *text = query(r, "q");
	struct list_query lq = {0};

	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, each_list_arg, &lq);
	if (lq.twice)
		return crd_http_error(r, 400, "invalid_parameter", NULL,
				      "'%s' is given more than once; give it once", lq.twice);
	if (lq.bad_state)
		return crd_http_error(r, 400, "invalid_parameter", NULL,
				      "'state' must be a comma-separated list of queued, running, "
				      "succeeded, failed, cancelled (repeatable)");
	mask = lq.mask;
	if (crd_parse_limit(query(r, "limit"), &limit) < 0)
		return crd_http_error(r, 400, "invalid_parameter", NULL,
				      "'limit' must be a whole number from 1 to %d",
				      CRUND_LIST_MAX);
	if (cursor && !*cursor)
		cursor = NULL;
	if (crd_store_shared(crd_d.store))
		return list_shared(r, mask, plugin && *plugin ? plugin : NULL, cursor, limit);
	crd_buf *b = crd_http_out(r);
	struct list_ctx c = {b, 0, NULL, NULL};
	bool more;
	crd_buf_adds(b, "{\"jobs\":[");
	crd_jobs_filter f = {
		.state_mask = mask,
		.plugin = plugin && *plugin ? plugin : NULL,
		.job = job && *job ? job : NULL,
		.text = text && *text ? text : NULL,
	};
	if (crd_jobs_list_where(&crd_d.jobs, &f, cursor, limit, list_one, &c, &more) < 0) {
		crd_buf_free(b);
		return crd_http_error(r, 400, "invalid_parameter", NULL,
				      "'cursor' is not a cursor from this daemon (use next_cursor "
				      "of a previous page)");
	}
	crd_buf_adds(b, "],\"next_cursor\":");
	if (more && c.last)
		crd_buf_add_jstr(b, c.last);
	else
		crd_buf_adds(b, "null");
	crd_buf_adds(b, "}\n");
	if (c.unsynced) {
		/* The page names an end that is not durable yet: it is sent as
		 * rendered once the last end put is committed (the page's are
		 * in that commit or an earlier one), so a list never tells what
		 * a crash could undo.  (No last one: it was deleted before its
		 * commit; the page's last to end stands in.) */
		crd_jobrec *last = crd_d.jobs.last_unsynced;
		crd_api_req_of(r)->keep_out = true;
		return crd_api_wait(r, last ? last : c.unsynced, CRD_API_SETTLE_WAIT, 200, false);
	}
	return crd_http_send(r, 200, NULL);
}

/* ------------------------------------------------------------ one job */

static crd_mhd_result get_job(crd_req *r, crd_jobrec *j)
{
	double wait;
	if (get_wait(r, &wait) < 0)
		return bad_wait(r);
	if (wait > 0 && !crd_job_settled(j))
		return crd_api_wait(r, j, wait, 200, false);
	return send_job(r, 200, j, false);
}

/* A cancel or a DELETE waiting for its commit (a durable store). */
struct op_ticket {
	struct crd_hold_ticket hold;
};

static void op_committed(void *arg, int rc)
{
	struct op_ticket *t = arg;
	crd_req *r = t->hold.req;
	if (r) {
		crd_api_req *a = crd_api_req_of(r);
		a->phase = a->phase == CRD_API_CANCELLING ? CRD_API_CANCELLED : CRD_API_DELETED;
		a->accept_rc = rc;
		crd_http_release(&t->hold);
	}
	free(t);
}

/* A held cancel asked again: its request is written (or the commit
 * failed, or the transport stops first): the job as it is now. */
static crd_mhd_result cancelled_again(crd_req *r)
{
	crd_api_req *a = crd_api_req_of(r);
	crd_jobrec *j = crd_jobs_find(&crd_d.jobs, a->rm.param);
	if (a->remote && a->phase == CRD_API_CANCELLING) /* the transport stops first */
		return crd_http_error(r, 503, "draining", NULL,
				      "the daemon is shutting down; the cancel of job '%s' may not "
				      "have reached the database: ask another node",
				      a->rm.param);
	if (a->remote && a->phase == CRD_API_CANCELLED) {
		/* the database's answer: the row after the cancel */
		if (a->accept_rc < 0)
			return read_failed(r, a->accept_rc);
		if (j && crd_job_state_ended(j->state) && j->state != CRUND_JOB_CANCELLED)
			return crd_http_error(r, 409, "job_ended", NULL,
					      "job '%s' already ended (%s)", j->id,
					      crd_job_state_name(j->state));
	} else if (a->phase == CRD_API_CANCELLED && a->accept_rc < 0) {
		return store_failed(r, "; it keeps trying",
				    "job '%s' is being cancelled, but the job store cannot record "
				    "the request yet",
				    a->rm.param);
	}
	if (!j) /* ended and forgotten meanwhile */
		return job_not_found(r);
	crd_buf *b = crd_http_out(r);
	crd_job_render(b, j);
	crd_buf_addc(b, '\n');
	return crd_http_send(r, 202, NULL);
}

/* A job held elsewhere (shared store): its cancel is the database's. */
static void remote_cancelled(void *arg, int rc, const crd_store_job *rows, size_t n, bool more)
{
	(void)more;
	read_into(arg, CRD_API_CANCELLED, rc, rows, n);
}

static crd_mhd_result cancel_job(crd_req *r, crd_jobrec *j)
{
	if (crd_job_state_ended(j->state))
		return crd_http_error(r, 409, "job_ended", NULL, "job '%s' already ended (%s)",
				      j->id, crd_job_state_name(j->state));
	if (j->flags & CRUND_JF_REMOTE) {
		/* answered with the row the database has after the cancel (a
		 * queued job cancelled, a running one flagged and its node
		 * told): nothing is said before it is written */
		struct read_ticket *t = calloc(1, sizeof(*t));
		if (!t)
			return crd_http_error(r, 500, "internal", NULL, "out of memory");
		int rc = crd_store_cancel(crd_d.store, j->seq, remote_cancelled, t);
		if (rc < 0) {
			free(t);
			return read_failed(r, rc);
		}
		crd_api_req_of(r)->phase = CRD_API_CANCELLING;
		crd_api_req_of(r)->remote = true;
		return crd_http_hold(r, &t->hold);
	}
	/* A queued job ends at once (and may even be forgotten by retention
	 * right away): answer with a rendering made before that can happen. */
	crd_buf *b = crd_http_out(r);
	bool queued = j->state == CRUND_JOB_QUEUED;
	if (!queued) {
		/* a durable store: answered once the request is written, so a
		 * crash right after the 202 cannot run the job again */
		struct op_ticket *t = NULL;
		if (crd_store_durable(crd_d.store) && !(t = calloc(1, sizeof(*t))))
			return crd_http_error(r, 500, "internal", NULL, "out of memory");
		int rc = crd_jobs_cancel_then(&crd_d.jobs, j, "cancelled", t ? op_committed : NULL,
					      t);
		if (rc == CRD_JOBS_PENDING) {
			crd_api_req_of(r)->phase = CRD_API_CANCELLING;
			return crd_http_hold(r, &t->hold);
		}
		free(t);
		crd_job_render(b, j);
	} else {
		uint64_t seq = j->seq;
		crd_jobs_cancel(&crd_d.jobs, j, "cancelled");
		crd_jobrec *still = crd_jobs_find_seq(&crd_d.jobs, seq);
		/* a durable store: the end is committed first, so a crash
		 * right after the answer cannot run the job after all */
		if (still && (still->flags & CRUND_JF_END_UNSYNCED))
			return crd_api_wait(r, still, CRD_API_SETTLE_WAIT, 202, false);
		if (still)
			crd_job_render(b, still);
		else
			crd_buf_adds(b, "{}");
	}
	crd_buf_addc(b, '\n');
	return crd_http_send(r, 202, NULL);
}

/* A held DELETE asked again: committed (or failed), or the transport
 * stops before the commit. */
static crd_mhd_result deleted_again(crd_req *r)
{
	crd_api_req *a = crd_api_req_of(r);
	if (a->phase == CRD_API_DELETING)
		return crd_http_error(r, 503, "draining", NULL,
				      "the daemon is shutting down; the deletion of job '%s' is "
				      "written before it exits if the store can take it",
				      a->rm.param);
	if (a->accept_rc < 0)
		return store_failed(r, "; it keeps trying",
				    "job '%s' is forgotten here, but the job store cannot record "
				    "that yet",
				    a->rm.param);
	return crd_http_respond(r, 204, NULL, 0, NULL);
}

static crd_mhd_result delete_job(crd_req *r, crd_jobrec *j)
{
	struct op_ticket *t = NULL;
	if (crd_store_durable(crd_d.store) && !(t = calloc(1, sizeof(*t))))
		return crd_http_error(r, 500, "internal", NULL, "out of memory");
	int rc = crd_jobs_delete(&crd_d.jobs, j, t ? op_committed : NULL, t);
	if (rc == CRD_JOBS_PENDING) {
		/* answered once the deletion is durable: a crash right after a
		 * 204 must not bring the job back */
		crd_api_req_of(r)->phase = CRD_API_DELETING;
		return crd_http_hold(r, &t->hold);
	}
	free(t);
	if (rc == -EAGAIN)
		return store_failed(r, "; delete it once its end is written",
				    "job '%s' has ended, but its end is not in the store yet",
				    j->id);
	if (rc < 0)
		return crd_http_error(r, 409, "job_active", NULL,
				      "job '%s' is still %s; cancel it first", j->id,
				      crd_job_state_name(j->state));
	return crd_http_respond(r, 204, NULL, 0, NULL);
}

static crd_mhd_result job_log(crd_req *r, crd_jobrec *j)
{
	crd_buf *b = crd_http_out(r);
	crd_resp_opts o = {.content_type = "text/plain; charset=utf-8"};
	if (j->log_len)
		crd_buf_add(b, j->log, j->log_len);
	if (j->flags & CRUND_JF_LOG_TRUNC)
		crd_buf_addf(b, "[log truncated: the limit is %zu bytes]\n",
			     crd_d.jobs.lim.max_log_bytes);
	return crd_http_send(r, 200, &o);
}

/* -------------------------------------------------------------- plugins */

static crd_mhd_result send_json(crd_req *r, unsigned status, json_t *v)
{
	if (!v)
		return crd_http_error(r, 500, "internal", NULL, "out of memory");
	crd_buf *b = crd_http_out(r);
	crd_buf_add_json(b, v);
	crd_buf_addc(b, '\n');
	json_decref(v);
	return crd_http_send(r, status, NULL);
}

static crd_mhd_result get_plugins(crd_req *r)
{
	json_t *list = crd_plugins_to_json(&crd_d.reg);
	if (!list)
		return send_json(r, 200, NULL);
	if (json_is_array(list))
		return send_json(r, 200, json_pack("{s:o}", "plugins", list));
	return send_json(r, 200, list);
}

static crd_mhd_result get_plugin(crd_req *r)
{
	const char *name = crd_api_req_of(r)->rm.param;
	const crd_loaded_plugin *p = crd_plugins_find(&crd_d.reg, name);
	if (!p)
		return crd_http_error(r, 404, "not_found", NULL, "no plugin named '%s'", name);
	return send_json(r, 200, crd_plugin_to_json(p));
}

/* ------------------------------------------------------------ info etc. */

static crd_mhd_result get_info(crd_req *r)
{
	crd_buf *b = crd_http_out(r);
	crd_jobs *s = &crd_d.jobs;
	const crd_config *c = &crd_d.cfg;
	char ts[40];

	crd_format_time(crd_d.start_real, ts, sizeof(ts));
	crd_buf_addf(b,
		     "{\"version\":\"%s\",\"libcrunner\":\"%d.%d.%d\",\"plugin_abi\":\"%d.%d\","
		     "\"loop_backend\":",
		     PACKAGE_VERSION, CR_VERSION_MAJOR, CR_VERSION_MINOR, CR_VERSION_PATCH,
		     CRUND_PLUGIN_ABI_MAJOR, CRUND_PLUGIN_ABI_MINOR);
	crd_buf_add_jstr(b, cr_loop_backend(crd_d.loop));
	crd_buf_addf(b,
		     ",\"debug\":%s,\"started_at\":\"%s\",\"uptime_seconds\":%.3f,"
		     "\"state\":\"%s\",\"jobs\":{",
		     cr_loop_get_debug(crd_d.loop) ? "true" : "false", ts,
		     cr_loop_time(crd_d.loop) - crd_d.start_mono,
		     crd_d.jobs.draining ? "draining" : "running");
	for (int st = 0; st < CRUND_JOB_NSTATES; st++)
		crd_buf_addf(b, "%s\"%s\":%zu", st ? "," : "", crd_job_state_name(st),
			     s->n_state[st]);
	crd_buf_addf(b,
		     "},\"jobs_submitted\":%llu,\"limits\":{\"max_running\":%u,"
		     "\"max_queued\":%u,\"grace_seconds\":%g,\"retain_jobs\":%u,"
		     "\"retain_seconds\":%g,\"max_body_bytes\":%zu,\"max_connections\":%u,"
		     "\"max_result_bytes\":%zu,\"max_log_bytes\":%zu,\"max_wait_seconds\":%g},"
		     "\"plugins\":%zu,\"auth\":%s,\"listen\":[",
		     (unsigned long long)s->n_submitted, c->max_running, c->max_queued, c->grace,
		     c->retain_jobs, c->retain_seconds, c->max_body, c->max_connections,
		     c->max_result_bytes, c->max_log_bytes, CRUND_WAIT_MAX, crd_d.reg.n,
		     c->token ? "true" : "false");
	const char *const *urls = crd_http_urls(crd_d.http);
	for (size_t i = 0; urls[i]; i++) {
		if (i)
			crd_buf_addc(b, ',');
		crd_buf_add_jstr(b, urls[i]);
	}
	crd_buf_adds(b, "],\"store\":{\"url\":");
	crd_buf_add_jstr(b, crd_store_describe(crd_d.store));
	crd_buf_addf(
		b, ",\"durable\":%s,\"error\":", crd_store_durable(crd_d.store) ? "true" : "false");
	crd_buf_add_jstr(b, crd_store_error(crd_d.store, NULL));
	crd_buf_adds(b, "}");
	if (crd_store_shared(crd_d.store)) {
		crd_buf_adds(b, ",\"node\":");
		crd_buf_add_jstr(b, crd_store_node_id(crd_d.store));
		crd_buf_adds(b, ",\"nodes\":");
		crd_buf_adds(b, crd_store_nodes_json(crd_d.store));
	}
	crd_buf_adds(b, "}\n");
	return crd_http_send(r, 200, NULL);
}

static crd_mhd_result get_health(crd_req *r)
{
	crd_resp_opts o = {.retry_after = 5};
	if (crd_d.jobs.draining)
		return crd_http_respond(r, 503, "{\"status\":\"draining\"}\n", 22, &o);
	if (crd_watchdog_stalled())
		return crd_http_respond(r, 503, "{\"status\":\"stalled\"}\n", 21, NULL);
	const char *why = crd_store_error(crd_d.store, NULL);
	if (why) {
		/* submissions are refused: a balancer should send them elsewhere */
		crd_buf *b = crd_http_out(r);
		crd_buf_adds(b, "{\"status\":\"store_unavailable\",\"message\":");
		crd_buf_add_jstr(b, why);
		crd_buf_adds(b, "}\n");
		return crd_http_send(r, 503, NULL);
	}
	return crd_http_respond(r, 200, "{\"status\":\"ok\"}\n", 16, NULL);
}

static crd_mhd_result get_metrics(crd_req *r)
{
	crd_buf *b = crd_http_out(r);
	crd_resp_opts o = {.content_type = "text/plain; version=0.0.4; charset=utf-8"};
	crd_metrics_render(b);
	return crd_http_send(r, 200, &o);
}

static crd_mhd_result get_stats(crd_req *r)
{
	crd_metrics_render_stats(crd_http_out(r));
	return crd_http_send(r, 200, NULL);
}

/* ------------------------------------------------------------- dispatch */

/* The head: route, token, method. */
static crd_mhd_result api_head(crd_req *r, const char *method, const char *url)
{
	crd_route_match *rm = &crd_api_req_of(r)->rm;
	crd_route(method, url, rm);
	if (rm->status == 404)
		return crd_http_error(r, 404, "not_found", NULL, "no route for %s %s", method, url);
	/* health for probes; the dashboard's files hold no data (every API
	 * call the page makes carries the token) */
	if (rm->route != CRUND_R_HEALTH && rm->route != CRUND_R_UI && !authorized(r->conn))
		return crd_http_error(r, 401, "unauthorized", NULL,
				      "missing or wrong token: send 'Authorization: Bearer TOKEN'");
	const char *origin;
	if ((rm->method == CRUND_M_POST || rm->method == CRUND_M_DELETE) &&
	    cross_origin(r->conn, &origin))
		return crd_http_error(r, 403, "cross_origin", NULL,
				      "a page of %s may not change jobs here (only the dashboard "
				      "served by this crund, or a client that is not a browser)",
				      origin);
	if (rm->status == 405) {
		crd_resp_opts o = {.allow = rm->allow};
		return crd_http_error(r, 405, "method_not_allowed", &o,
				      "%s is not allowed on %s (allowed: %s)", method, url,
				      rm->allow);
	}
	return MHD_YES;
}

static crd_mhd_result api_handle(crd_req *r)
{
	const crd_route_match *rm = &crd_api_req_of(r)->rm;
	crd_jobrec *j = NULL;
	switch (rm->route) {
	case CRUND_R_JOB:
	case CRUND_R_JOB_CANCEL:
	case CRUND_R_JOB_RETRY:
	case CRUND_R_JOB_EVENTS:
	case CRUND_R_JOB_LOG:
		j = crd_jobs_find(&crd_d.jobs, rm->param);
		/* shared store: a job held elsewhere (or a copy read a while
		 * ago) is read from the database first */
		if (crd_store_shared(crd_d.store) && crd_api_req_of(r)->phase != CRD_API_FETCHED &&
		    (!j || (j->flags & CRUND_JF_REMOTE)))
			return fetch_job(r);
		if (!j)
			return job_not_found(r);
		break;
	default:
		break;
	}
	switch (rm->route) {
	case CRUND_R_JOBS:
		return rm->method == CRUND_M_POST ? post_job(r) : list_jobs(r);
	case CRUND_R_JOB:
		return rm->method == CRUND_M_DELETE ? delete_job(r, j) : get_job(r, j);
	case CRUND_R_JOB_CANCEL:
		return cancel_job(r, j);
	case CRUND_R_JOB_RETRY:
		return retry_job(r, j);
	case CRUND_R_EVENTS:
		return crd_api_events(r, &crd_d.jobs, crd_d.cfg.stream_ping);
	case CRUND_R_STATS:
		return get_stats(r);
	case CRUND_R_UI:
		return crd_api_ui(r, rm->param);
	case CRUND_R_JOB_EVENTS:
		return crd_api_stream(r, j, crd_d.cfg.stream_ping);
	case CRUND_R_JOB_LOG:
		return job_log(r, j);
	case CRUND_R_PLUGINS:
		return get_plugins(r);
	case CRUND_R_PLUGIN:
		return get_plugin(r);
	case CRUND_R_INFO:
		return get_info(r);
	case CRUND_R_HEALTH:
		return get_health(r);
	case CRUND_R_METRICS:
		return get_metrics(r);
	default:
		return crd_http_error(r, 404, "not_found", NULL, "no such route");
	}
}

/* A request left unanswered, asked again (see crd_http_handlers). */
static crd_mhd_result api_again(crd_req *r)
{
	switch (crd_api_req_of(r)->phase) {
	case CRD_API_HELD:
	case CRD_API_ACCEPTED:
		return accepted_again(r);
	case CRD_API_WAIT:
		return crd_api_wait_again(r);
	case CRD_API_FETCH:
		return crd_http_error(r, 503, "draining", NULL, "the daemon is shutting down");
	case CRD_API_FETCHED:
		if (crd_api_req_of(r)->accept_rc < 0)
			return read_failed(r, crd_api_req_of(r)->accept_rc);
		return api_handle(r); /* the record is there now */
	case CRD_API_LISTED:
		return listed_again(r);
	case CRD_API_DELETING:
	case CRD_API_DELETED:
		return deleted_again(r);
	case CRD_API_CANCELLING:
	case CRD_API_CANCELLED:
		return cancelled_again(r);
	default:
		return crd_http_error(r, 500, "internal", NULL, "a request was asked again");
	}
}

const crd_http_handlers crd_api_handlers = {
	.req_size = sizeof(crd_api_req),
	.head = api_head,
	.handle = api_handle,
	.again = api_again,
	.done = crd_api_req_done,
};
