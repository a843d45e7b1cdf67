/*
 * wait.c — ?wait: a long-poll answered when its job ends or its wait runs
 * out (docs/ARCHITECTURE.md §3.7), built on the transport's deferral and
 * suspend/resume; see api.h.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "daemon.h"

/* The answer goes from the request's own buffer (rendered when the job
 * ended or the wait ran out), with its Location when asked. */
static crd_mhd_result answer(crd_req *r)
{
	crd_api_req *a = crd_api_req_of(r);
	char loc[16 + sizeof(a->rm.param)];
	crd_resp_opts o = {0};
	if (a->location) {
		snprintf(loc, sizeof(loc), "/v1/jobs/%s", a->rm.param);
		o.location = loc;
	}
	if (a->unsettled_st) {
		/* the answer would tell an end the store has not written (a
		 * submission's job exists: its Location says where to ask) */
		int code = 0;
		const char *why = crd_store_error(a->unsettled_st, &code);
		crd_http_out(r)->len = 0;
		o.retry_after = 1;
		return crd_http_error(r, 503, "store_unavailable", &o,
				      "job %s has ended, but its end is not in the store yet "
				      "(%s); it is written when the store can write again: GET "
				      "/v1/jobs/%s then",
				      a->rm.param, why ? why : "its commit is slow", a->rm.param);
	}
	return crd_http_send(r, a->status, &o);
}

static void render(crd_req *r, const crd_jobrec *job)
{
	/* an end not yet committed (its wait ran out, a failing store) is
	 * not told: a crash would undo it */
	if (crd_job_state_ended(job->state) && !crd_job_settled(job)) {
		crd_api_req_of(r)->unsettled_st = job->store->st;
		crd_api_req_of(r)->ready = true;
		return;
	}
	if (crd_api_req_of(r)->keep_out) { /* rendered before the wait */
		crd_api_req_of(r)->ready = true;
		return;
	}
	crd_buf *b = crd_http_out(r);
	crd_job_render(b, job);
	crd_buf_addc(b, '\n');
	crd_api_req_of(r)->ready = true;
}

static void cancel_timer(crd_api_req *a)
{
	if (a->timer) {
		cr_handle_cancel(a->timer);
		a->timer = cr_handle_unref(a->timer);
	}
}

static void wait_event(crd_sub *sub, crd_jobrec *job, int ev, const char *data, size_t len)
{
	crd_api_req *a = (crd_api_req *)((char *)sub - offsetof(crd_api_req, sub));
	crd_req *r = (crd_req *)((char *)a - offsetof(crd_req, data));
	(void)data;
	(void)len;
	if (ev != CRUND_EV_END)
		return;
	cancel_timer(a);
	render(r, job);
	crd_http_resume(r); /* parked: resumed; deferred: asked on MHD's next run */
}

static void wait_timeout(void *arg)
{
	crd_req *r = arg;
	crd_api_req *a = crd_api_req_of(r);
	a->timer = cr_handle_unref(a->timer);
	crd_jobrec *job = a->sub.job;
	crd_jobs_unsubscribe(&a->sub);
	if (job)
		render(r, job);
	crd_http_resume(r);
}

/* Park a waiting request: arm its wait timer and suspend the connection. */
static crd_mhd_result park(crd_req *r)
{
	crd_api_req *a = crd_api_req_of(r);
	a->parked = true;
	if (cr_call_later(crd_http_loop(), a->wait_seconds, wait_timeout, r, &a->timer) < 0) {
		crd_jobs_unsubscribe(&a->sub);
		return crd_http_error(r, 500, "internal", NULL, "cannot arm the wait timer");
	}
	return crd_http_suspend(r);
}

/*
 * A long-poll is first *deferred* (crd_http_defer): the handler returns
 * without an answer and without suspending, and the transport asks again
 * on MHD's next run, at the loop's next poll.  The request stays deferred
 * while its job is about to end (crd_exec_about_to_end: the jobs module's
 * answer); a job that has ended by then (a quick job: the common case of
 * ?wait) is answered without a suspend/resume pair (two epoll_ctl calls)
 * and without a timer, one that has not is parked.  The wait is measured
 * from the park, a few microseconds late at most.
 */
crd_mhd_result crd_api_wait(crd_req *req, crd_jobrec *job, double seconds, unsigned status,
			    bool location)
{
	crd_api_req *a = crd_api_req_of(req);
	a->phase = CRD_API_WAIT;
	a->status = status;
	a->location = location;
	a->wait_seconds = seconds;
	snprintf(a->rm.param, sizeof(a->rm.param), "%s", job->id);
	if (crd_job_settled(job) || crd_http_stopping() || crd_job_kept_for_next_start(job)) {
		/* ended already, or nothing may wait now (the transport stops,
		 * or the close keeps the job for the next start): the state
		 * answers */
		render(req, job);
		return answer(req);
	}
	memset(&a->sub, 0, sizeof(a->sub));
	a->sub.on_event = wait_event;
	crd_jobs_subscribe(job, &a->sub);
	return crd_http_defer(req);
}

crd_mhd_result crd_api_wait_again(crd_req *req)
{
	crd_api_req *a = crd_api_req_of(req);
	if (a->ready)
		return answer(req);
	if (!a->parked && !crd_http_stopping()) {
		/* asked again while deferred: the job is still going */
		if (crd_exec_about_to_end(a->sub.job) && a->early_asks++ < 16)
			return crd_http_defer(req);
		return park(req);
	}
	/* resumed without an answer (the transport stops), or deferred at the
	 * stop: the job's current state is the answer */
	if (a->sub.job) {
		crd_jobrec *job = a->sub.job;
		crd_jobs_unsubscribe(&a->sub);
		render(req, job);
	}
	cancel_timer(a);
	return answer(req);
}

void crd_api_req_done(crd_req *req)
{
	crd_api_req *a = crd_api_req_of(req);
	crd_jobs_unsubscribe(&a->sub);
	crd_api_events_done(req);
	cancel_timer(a);
	crd_buf_free(&a->stream);
}
