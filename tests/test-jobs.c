/*
 * test-jobs.c — the job store (daemon/jobs.c) without a loop: fake start
 * and cancel hooks, a fake clock.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/jobs.h"
#include "testutil.h"

static crund_plugin desc_a = {.name = "alpha"};
static crund_plugin desc_b = {.name = "beta"};
static crd_loaded_plugin plug_a = {.desc = &desc_a};
static crd_loaded_plugin plug_b = {.desc = &desc_b};
static crund_job_spec spec_noop = {.name = "noop"};
static crund_job_spec spec_other = {.name = "other"};

static double fake_now = 1000.0;
static double now_fn(void) { return fake_now; }

static crd_jobrec *started[64];
static int n_started, n_cancel_asked, n_ended_hook;
static int start_rc;

static int fake_start(crd_jobrec *j, void *data)
{
	(void)data;
	if (start_rc)
		return start_rc;
	started[n_started++ % 64] = j;
	return 0;
}
static void fake_cancel(crd_jobrec *j, void *data)
{
	(void)j;
	(void)data;
	n_cancel_asked++;
}
static void fake_ended(crd_jobrec *j, void *data)
{
	(void)j;
	(void)data;
	n_ended_hook++;
}

static crd_jobs S;

static void setup_lim(unsigned run, unsigned queued, unsigned retain, double retain_s)
{
	crd_jobs_limits lim = {run, queued, retain, retain_s, 1024, 64, 0};
	crd_jobs_ops ops = {fake_start, fake_cancel, fake_ended, NULL};
	n_started = n_cancel_asked = n_ended_hook = 0;
	start_rc = 0;
	fake_now = 1000.0;
	ck_assert_int_eq(crd_jobs_init(&S, &lim, &ops, NULL, now_fn), 0);
	crd_jobs_set_prefix(&S, "tst");
}

static void setup(void) { setup_lim(2, 3, 100, 3600); }
static void teardown(void) { crd_jobs_free(&S); }

static crd_jobrec *submit_full(const crd_loaded_plugin *p, const crund_job_spec *sp,
			       const char *args, const char *key, int *ret_rc, bool *existing)
{
	crd_job_req req = {.plugin = p,
			   .spec = sp,
			   .args = json_loads(args ? args : "{}", 0, NULL),
			   .idem_key = key};
	crd_jobrec *j = NULL;
	*ret_rc = crd_jobs_submit(&S, &req, &j, existing);
	return *ret_rc == 0 ? j : NULL;
}

static crd_jobrec *submit(void)
{
	int rc;
	crd_jobrec *j = submit_full(&plug_a, &spec_noop, NULL, NULL, &rc, NULL);
	ck_assert_int_eq(rc, 0);
	return j;
}

START_TEST(ids_are_unique_and_found_by_id)
{
	crd_jobrec *a = submit(), *b = submit();
	ck_assert_str_ne(a->id, b->id);
	ck_assert_ptr_eq(crd_jobs_find(&S, a->id), a);
	ck_assert_ptr_eq(crd_jobs_find(&S, b->id), b);
	ck_assert_int_eq(strncmp(a->id, "tst", 3), 0);
	/* another process's prefix, garbage, non-canonical */
	ck_assert_ptr_null(crd_jobs_find(&S, "xyz1"));
	ck_assert_ptr_null(crd_jobs_find(&S, "tst"));
	ck_assert_ptr_null(crd_jobs_find(&S, "tst01"));
	ck_assert_ptr_null(crd_jobs_find(&S, "tst!"));
	for (const char *p = a->id; *p; p++)
		ck_assert(strchr("0123456789abcdefghjkmnpqrstvwxyz", *p));
}
END_TEST

START_TEST(random_prefix_differs_between_stores)
{
	crd_jobs other;
	crd_jobs_limits lim = {1, 1, 1, 1, 1, 1, 0};
	crd_jobs_ops ops = {0};
	ck_assert_int_eq(crd_jobs_init(&other, &lim, &ops, NULL, NULL), 0);
	crd_jobs third;
	ck_assert_int_eq(crd_jobs_init(&third, &lim, &ops, NULL, NULL), 0);
	ck_assert_uint_eq(other.prefix_len, 13);
	ck_assert_str_ne(other.prefix, third.prefix);
	crd_jobs_free(&other);
	crd_jobs_free(&third);
}
END_TEST

START_TEST(submit_starts_when_a_slot_is_free)
{
	crd_jobrec *j = submit();
	ck_assert_int_eq(j->state, CRUND_JOB_RUNNING);
	ck_assert_int_eq(n_started, 1);
	ck_assert(j->started_at > 0);
	ck_assert(j->created_at > 0);
	ck_assert_uint_eq(S.n_state[CRUND_JOB_RUNNING], 1);
}
END_TEST

START_TEST(max_running_queues_in_fifo_order)
{
	crd_jobrec *a = submit(), *b = submit(), *c = submit(), *d = submit();
	ck_assert_int_eq(c->state, CRUND_JOB_QUEUED);
	ck_assert_int_eq(d->state, CRUND_JOB_QUEUED);
	ck_assert_int_eq(n_started, 2);
	crd_jobs_finish(&S, b, CRUND_JOB_SUCCEEDED, NULL, NULL);
	ck_assert_int_eq(c->state, CRUND_JOB_RUNNING);
	ck_assert_int_eq(d->state, CRUND_JOB_QUEUED);
	ck_assert_ptr_eq(started[2], c);
	crd_jobs_finish(&S, a, CRUND_JOB_FAILED, "plugin_error", "boom");
	ck_assert_int_eq(d->state, CRUND_JOB_RUNNING);
	ck_assert_uint_eq(S.n_state[CRUND_JOB_RUNNING], 2);
	ck_assert_uint_eq(S.n_state[CRUND_JOB_QUEUED], 0);
}
END_TEST

START_TEST(full_queue_refuses_with_eagain)
{
	int rc;
	for (int i = 0; i < 5; i++)
		submit();
	ck_assert_ptr_null(submit_full(&plug_a, &spec_noop, NULL, NULL, &rc, NULL));
	ck_assert_int_eq(rc, -EAGAIN);
	ck_assert_uint_eq(S.count, 5);
}
END_TEST

START_TEST(failed_start_is_not_accepted)
{
	int rc;
	start_rc = -ENOMEM;
	ck_assert_ptr_null(submit_full(&plug_a, &spec_noop, NULL, NULL, &rc, NULL));
	ck_assert_int_eq(rc, -ENOMEM);
	ck_assert_uint_eq(S.count, 0);
	ck_assert_uint_eq(S.n_state[CRUND_JOB_QUEUED], 0);
}
END_TEST

START_TEST(queued_job_that_cannot_start_ends_failed_internal)
{
	crd_jobrec *a = submit();
	submit();
	crd_jobrec *c = submit();
	start_rc = -ENOMEM;
	crd_jobs_finish(&S, a, CRUND_JOB_SUCCEEDED, NULL, NULL);
	ck_assert_int_eq(c->state, CRUND_JOB_FAILED);
	ck_assert_str_eq(c->err_code, "internal");
}
END_TEST

START_TEST(cancel_queued_ends_at_once)
{
	submit();
	submit();
	crd_jobrec *c = submit();
	ck_assert_int_eq(crd_jobs_cancel(&S, c, "cancelled"), 0);
	ck_assert_int_eq(c->state, CRUND_JOB_CANCELLED);
	ck_assert_str_eq(c->err_code, "cancelled");
	ck_assert_int_eq(n_cancel_asked, 0);
	ck_assert_int_eq(crd_jobs_cancel(&S, c, "cancelled"), -EALREADY);
}
END_TEST

START_TEST(cancel_running_asks_and_waits)
{
	crd_jobrec *a = submit();
	ck_assert_int_eq(crd_jobs_cancel(&S, a, "cancelled"), 0);
	ck_assert_int_eq(a->state, CRUND_JOB_RUNNING);
	ck_assert_int_eq(n_cancel_asked, 1);
	ck_assert(a->flags & CRUND_JF_CANCEL_REQ);
	ck_assert_str_eq(a->cancel_code, "cancelled");
	/* asking twice does not cancel twice; a shutdown cancels again (it
	 * interrupts the cleanup) but the request stays the reason */
	crd_jobs_cancel(&S, a, "cancelled");
	ck_assert_int_eq(n_cancel_asked, 1);
	crd_jobs_cancel(&S, a, "shutdown");
	ck_assert_int_eq(n_cancel_asked, 2);
	ck_assert_str_eq(a->cancel_code, "cancelled");
	/* a job the shutdown cancels first is cancelled for the shutdown */
	crd_jobrec *b = submit();
	ck_assert_int_eq(b->state, CRUND_JOB_RUNNING);
	crd_jobs_cancel(&S, b, "shutdown");
	ck_assert_str_eq(b->cancel_code, "shutdown");
	crd_jobs_cancel(&S, b, "cancelled");
	ck_assert_str_eq(b->cancel_code, "shutdown");
}
END_TEST

/* A job whose code returns -ECANCELED ends cancelled (asyncio: a
 * coroutine that raises CancelledError), but nobody asked: the message
 * does not say "cancelled by request". */
START_TEST(cancelled_by_its_own_code_is_not_a_request)
{
	crd_jobrec *a = submit();
	crd_jobs_attempt_ended(&S, a, -ECANCELED, true, false);
	ck_assert_int_eq(a->state, CRUND_JOB_CANCELLED);
	ck_assert_str_eq(a->err_code, "cancelled");
	ck_assert_ptr_nonnull(strstr(a->err_msg, "nobody cancelled it"));
	crd_jobrec *b = submit();
	ck_assert_int_eq(crd_jobs_cancel(&S, b, "cancelled"), 0);
	crd_jobs_attempt_ended(&S, b, -ECANCELED, true, false);
	ck_assert_str_eq(b->err_msg, "cancelled by request");
}
END_TEST

START_TEST(terminal_state_is_recorded_once)
{
	crd_jobrec *a = submit();
	crd_jobs_finish(&S, a, CRUND_JOB_FAILED, "timeout", "too slow");
	crd_jobs_finish(&S, a, CRUND_JOB_SUCCEEDED, NULL, NULL);
	ck_assert_int_eq(a->state, CRUND_JOB_FAILED);
	ck_assert_str_eq(a->err_code, "timeout");
	ck_assert_str_eq(a->err_msg, "too slow");
	ck_assert_int_eq(n_ended_hook, 1);
	/* a non-terminal state is not a finish */
	crd_jobrec *b = submit();
	crd_jobs_finish(&S, b, CRUND_JOB_RUNNING, NULL, NULL);
	ck_assert_int_eq(b->state, CRUND_JOB_RUNNING);
}
END_TEST

START_TEST(finish_may_reuse_its_own_error_strings)
{
	crd_jobrec *a = submit();
	a->err_code = strdup("custom");
	a->err_msg = strdup("custom message");
	crd_jobs_finish(&S, a, CRUND_JOB_FAILED, a->err_code, a->err_msg);
	ck_assert_str_eq(a->err_code, "custom");
	ck_assert_str_eq(a->err_msg, "custom message");
}
END_TEST

START_TEST(delete_refuses_active_and_forgets_ended)
{
	crd_jobrec *a = submit();
	char id[CRUND_JOB_ID_MAX];
	strcpy(id, a->id);
	ck_assert_int_eq(crd_jobs_delete(&S, a, NULL, NULL), -EBUSY);
	crd_jobs_finish(&S, a, CRUND_JOB_SUCCEEDED, NULL, NULL);
	ck_assert_int_eq(crd_jobs_delete(&S, a, NULL, NULL), 0);
	ck_assert_ptr_null(crd_jobs_find(&S, id));
	ck_assert_uint_eq(S.count, 0);
	ck_assert_uint_eq(S.n_state[CRUND_JOB_SUCCEEDED], 0);
}
END_TEST

START_TEST(retention_by_count_forgets_oldest_ended)
{
	crd_jobs_free(&S);
	setup_lim(10, 10, 2, 3600);
	crd_jobrec *j[4];
	char ids[4][CRUND_JOB_ID_MAX];
	for (int i = 0; i < 4; i++) {
		j[i] = submit();
		strcpy(ids[i], j[i]->id);
	}
	for (int i = 0; i < 4; i++)
		crd_jobs_finish(&S, j[i], CRUND_JOB_SUCCEEDED, NULL, NULL);
	ck_assert_ptr_null(crd_jobs_find(&S, ids[0]));
	ck_assert_ptr_null(crd_jobs_find(&S, ids[1]));
	ck_assert_ptr_nonnull(crd_jobs_find(&S, ids[2]));
	ck_assert_ptr_nonnull(crd_jobs_find(&S, ids[3]));
	ck_assert_uint_eq(S.count, 2);
}
END_TEST

START_TEST(retention_keeps_record_while_its_task_lives)
{
	crd_jobs_free(&S);
	setup_lim(10, 10, 0, 3600);
	crd_jobrec *a = submit();
	a->task = (void *)1; /* forced end at shutdown: the task still runs */
	crd_jobs_finish(&S, a, CRUND_JOB_CANCELLED, "shutdown", NULL);
	ck_assert_uint_eq(S.count, 1);
	ck_assert_int_eq(crd_jobs_delete(&S, a, NULL, NULL), -EBUSY);
	a->task = NULL;
}
END_TEST

START_TEST(retention_by_age)
{
	crd_jobs_free(&S);
	setup_lim(10, 10, 100, 60);
	crd_jobrec *a = submit(), *b = submit();
	char ida[CRUND_JOB_ID_MAX], idb[CRUND_JOB_ID_MAX];
	strcpy(ida, a->id);
	strcpy(idb, b->id);
	crd_jobs_finish(&S, a, CRUND_JOB_SUCCEEDED, NULL, NULL);
	fake_now += 30;
	crd_jobs_finish(&S, b, CRUND_JOB_SUCCEEDED, NULL, NULL);
	fake_now += 40; /* a is 70 s old, b 40 s */
	crd_jobs_expire(&S);
	ck_assert_ptr_null(crd_jobs_find(&S, ida));
	ck_assert_ptr_nonnull(crd_jobs_find(&S, idb));
	fake_now += 30;
	crd_jobs_expire(&S);
	ck_assert_ptr_null(crd_jobs_find(&S, idb));
}
END_TEST

START_TEST(idempotency_key_returns_existing_or_conflicts)
{
	int rc;
	bool existing = true;
	crd_jobrec *a = submit_full(&plug_a, &spec_noop, "{\"x\":1}", "key-1", &rc, &existing);
	ck_assert_int_eq(rc, 0);
	ck_assert(!existing);
	crd_jobrec *b = submit_full(&plug_a, &spec_noop, "{\"x\":1}", "key-1", &rc, &existing);
	ck_assert_int_eq(rc, 0);
	ck_assert(existing);
	ck_assert_ptr_eq(a, b);
	ck_assert_ptr_null(submit_full(&plug_a, &spec_noop, "{\"x\":2}", "key-1", &rc, &existing));
	ck_assert_int_eq(rc, -EEXIST);
	ck_assert_ptr_null(submit_full(&plug_a, &spec_other, "{\"x\":1}", "key-1", &rc, &existing));
	ck_assert_int_eq(rc, -EEXIST);
	/* once the job is forgotten the key is free again */
	crd_jobs_finish(&S, a, CRUND_JOB_SUCCEEDED, NULL, NULL);
	crd_jobs_delete(&S, a, NULL, NULL);
	crd_jobrec *c = submit_full(&plug_a, &spec_noop, "{\"x\":2}", "key-1", &rc, &existing);
	ck_assert_int_eq(rc, 0);
	ck_assert(!existing);
	ck_assert_ptr_nonnull(c);
}
END_TEST

static char seen[16][CRUND_JOB_ID_MAX];
static int n_seen;
static void collect(crd_jobrec *j, void *arg)
{
	(void)arg;
	strcpy(seen[n_seen++ % 16], j->id);
}

START_TEST(list_is_newest_first_with_cursor_pages)
{
	crd_jobs_free(&S);
	setup_lim(10, 10, 100, 3600);
	char ids[5][CRUND_JOB_ID_MAX];
	for (int i = 0; i < 5; i++)
		strcpy(ids[i], submit()->id);
	bool more;
	n_seen = 0;
	ck_assert_int_eq(crd_jobs_list(&S, 0, NULL, NULL, 2, collect, NULL, &more), 0);
	ck_assert_int_eq(n_seen, 2);
	ck_assert(more);
	ck_assert_str_eq(seen[0], ids[4]);
	ck_assert_str_eq(seen[1], ids[3]);
	char cur[CRUND_JOB_ID_MAX];
	strcpy(cur, seen[1]);
	n_seen = 0;
	crd_jobs_list(&S, 0, NULL, cur, 2, collect, NULL, &more);
	ck_assert_str_eq(seen[0], ids[2]);
	ck_assert_str_eq(seen[1], ids[1]);
	ck_assert(more);
	strcpy(cur, seen[1]);
	n_seen = 0;
	crd_jobs_list(&S, 0, NULL, cur, 2, collect, NULL, &more);
	ck_assert_int_eq(n_seen, 1);
	ck_assert_str_eq(seen[0], ids[0]);
	ck_assert(!more);
	/* exactly limit left: no further page */
	n_seen = 0;
	crd_jobs_list(&S, 0, NULL, NULL, 5, collect, NULL, &more);
	ck_assert_int_eq(n_seen, 5);
	ck_assert(!more);
	ck_assert_int_eq(crd_jobs_list(&S, 0, NULL, "nope", 2, collect, NULL, &more), -EINVAL);
}
END_TEST

START_TEST(list_cursor_of_a_forgotten_job_resumes_after_it)
{
	crd_jobs_free(&S);
	setup_lim(10, 10, 100, 3600);
	crd_jobrec *j[4];
	char ids[4][CRUND_JOB_ID_MAX];
	for (int i = 0; i < 4; i++) {
		j[i] = submit();
		strcpy(ids[i], j[i]->id);
	}
	crd_jobs_finish(&S, j[2], CRUND_JOB_SUCCEEDED, NULL, NULL);
	crd_jobs_delete(&S, j[2], NULL, NULL);
	bool more;
	n_seen = 0;
	crd_jobs_list(&S, 0, NULL, ids[2], 10, collect, NULL, &more);
	ck_assert_int_eq(n_seen, 2);
	ck_assert_str_eq(seen[0], ids[1]);
	ck_assert_str_eq(seen[1], ids[0]);
}
END_TEST

START_TEST(list_filters_by_state_and_plugin)
{
	crd_jobs_free(&S);
	setup_lim(10, 10, 100, 3600);
	int rc;
	crd_jobrec *a = submit_full(&plug_a, &spec_noop, NULL, NULL, &rc, NULL);
	crd_jobrec *b = submit_full(&plug_b, &spec_noop, NULL, NULL, &rc, NULL);
	submit_full(&plug_b, &spec_noop, NULL, NULL, &rc, NULL);
	crd_jobs_finish(&S, a, CRUND_JOB_SUCCEEDED, NULL, NULL);
	crd_jobs_finish(&S, b, CRUND_JOB_FAILED, "x", NULL);
	bool more;
	n_seen = 0;
	crd_jobs_list(&S, 1u << CRUND_JOB_SUCCEEDED | 1u << CRUND_JOB_FAILED, NULL, NULL, 10,
		      collect, NULL, &more);
	ck_assert_int_eq(n_seen, 2);
	n_seen = 0;
	crd_jobs_list(&S, 0, "beta", NULL, 10, collect, NULL, &more);
	ck_assert_int_eq(n_seen, 2);
	n_seen = 0;
	crd_jobs_list(&S, 1u << CRUND_JOB_RUNNING, "alpha", NULL, 10, collect, NULL, &more);
	ck_assert_int_eq(n_seen, 0);
}
END_TEST

struct test_sub {
	crd_sub sub;
	int events[8];
	int n;
	bool free_on_end;
};
static int n_freed;

static void on_ev(crd_sub *s, crd_jobrec *job, int ev, const char *data, size_t len)
{
	struct test_sub *t = (struct test_sub *)s;
	(void)job;
	(void)data;
	(void)len;
	t->events[t->n++ % 8] = ev;
	if (ev == CRUND_EV_END && t->free_on_end) {
		free(t);
		n_freed++;
	}
}

START_TEST(subscribers_get_events_and_may_free_themselves_at_end)
{
	submit();
	submit();
	crd_jobrec *c = submit(); /* queued */
	struct test_sub *t1 = calloc(1, sizeof(*t1)), t2 = {0}, t3 = {0};
	t1->sub.on_event = on_ev;
	t1->free_on_end = true;
	t2.sub.on_event = on_ev;
	t3.sub.on_event = on_ev;
	crd_jobs_subscribe(c, &t1->sub);
	crd_jobs_subscribe(c, &t2.sub);
	crd_jobs_subscribe(c, &t3.sub);
	crd_jobs_unsubscribe(&t3.sub);
	crd_jobs_unsubscribe(&t3.sub); /* twice is harmless */
	crd_jobs_emit(c, CRUND_EV_PROGRESS, "{}", 2);
	crd_jobs_finish(&S, started[0], CRUND_JOB_SUCCEEDED, NULL, NULL); /* c starts */
	n_freed = 0;
	crd_jobs_finish(&S, c, CRUND_JOB_SUCCEEDED, NULL, NULL);
	ck_assert_int_eq(n_freed, 1);
	ck_assert_int_eq(t2.n, 3);
	ck_assert_int_eq(t2.events[0], CRUND_EV_PROGRESS);
	ck_assert_int_eq(t2.events[1], CRUND_EV_STATE);
	ck_assert_int_eq(t2.events[2], CRUND_EV_END);
	ck_assert_ptr_null(t2.sub.job);
	ck_assert_int_eq(t3.n, 0);
	ck_assert_ptr_null(c->subs);
}
END_TEST

/* ----------------------------------------------- every job's events */

struct test_watch {
	crd_watch w;
	uint64_t ids[32];
	int states[32];
	char plugins[32][16];
	int n;
	int lost;
	bool unwatch_self;
};

static void on_watch(crd_watch *w, const crd_job_event *ev)
{
	struct test_watch *t = (struct test_watch *)w;
	if (!ev->data) {
		t->lost++;
		return;
	}
	if (t->n < 32) {
		t->ids[t->n] = ev->id;
		t->states[t->n] = ev->state;
		snprintf(t->plugins[t->n], sizeof(t->plugins[0]), "%s", ev->plugin);
		json_t *v = json_loadb(ev->data, ev->len, 0, NULL);
		ck_assert_msg(v != NULL, "event data is JSON: %s", ev->data);
		ck_assert_str_eq(json_string_value(json_object_get(v, "state")),
				 crd_job_state_name(ev->state));
		ck_assert_ptr_null(json_object_get(v, "args"));
		json_decref(v);
	}
	t->n++;
	if (t->unwatch_self)
		crd_jobs_unwatch(&S, w);
}

static struct test_watch replayed;
static void on_replay(const crd_job_event *ev, void *arg)
{
	(void)arg;
	on_watch(&replayed.w, ev);
}

START_TEST(events_are_kept_only_once_watched)
{
	submit();
	ck_assert_uint_eq(crd_jobs_last_event(&S), 0); /* nobody watched: nothing kept */
	struct test_watch t = {.w.on_event = on_watch};
	ck_assert_int_eq(crd_jobs_watch(&S, &t.w), 0);
	crd_jobrec *a = submit(); /* running at once */
	crd_jobs_finish(&S, a, CRUND_JOB_SUCCEEDED, NULL, NULL);
	ck_assert_int_eq(t.n, 2);
	ck_assert_uint_eq(t.ids[0], 1);
	ck_assert_uint_eq(t.ids[1], 2);
	ck_assert_int_eq(t.states[0], CRUND_JOB_RUNNING);
	ck_assert_int_eq(t.states[1], CRUND_JOB_SUCCEEDED);
	ck_assert_str_eq(t.plugins[0], "alpha");
	crd_jobs_unwatch(&S, &t.w);
	crd_jobs_unwatch(&S, &t.w); /* twice is harmless */
	crd_jobrec *b = submit();
	crd_jobs_finish(&S, b, CRUND_JOB_FAILED, "boom", "x");
	ck_assert_int_eq(t.n, 2);                      /* unwatched */
	ck_assert_uint_eq(crd_jobs_last_event(&S), 4); /* still kept */
}
END_TEST

START_TEST(events_follow_queue_start_retry_and_end)
{
	crd_jobs_free(&S);
	setup_lim(1, 10, 100, 3600);
	struct test_watch t = {.w.on_event = on_watch};
	ck_assert_int_eq(crd_jobs_watch(&S, &t.w), 0);
	int rc;
	crd_job_req req = {.plugin = &plug_b,
			   .spec = &spec_other,
			   .args = json_object(),
			   .max_attempts = 2,
			   .on_interrupt = -1};
	crd_jobrec *a = NULL, *b = NULL;
	ck_assert_int_eq(crd_jobs_submit(&S, &req, &a, NULL), 0);    /* running */
	b = submit_full(&plug_a, &spec_noop, NULL, NULL, &rc, NULL); /* queued */
	crd_jobs_attempt_ended(&S, a, -EIO, false, false);           /* retried: queued, backoff */
	/* the retry freed the one slot: b takes it now, not after a's backoff */
	ck_assert_int_eq(b->state, CRUND_JOB_RUNNING);
	ck_assert_int_eq(a->state, CRUND_JOB_QUEUED);
	ck_assert(a->run_at > fake_now);
	crd_jobs_finish(&S, b, CRUND_JOB_SUCCEEDED, NULL, NULL); /* a still waits */
	ck_assert_int_eq(a->state, CRUND_JOB_QUEUED);
	const int want[] = {CRUND_JOB_RUNNING, CRUND_JOB_QUEUED, CRUND_JOB_QUEUED,
			    CRUND_JOB_RUNNING, CRUND_JOB_SUCCEEDED};
	ck_assert_int_eq(t.n, 5);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(t.states[i], want[i]);
	ck_assert_str_eq(t.plugins[0], "beta");
	ck_assert_str_eq(t.plugins[2], "beta");
	ck_assert_str_eq(t.plugins[3], "alpha");
	ck_assert_str_eq(t.plugins[4], "alpha");
}
END_TEST

START_TEST(events_resume_within_the_window_and_refuse_outside)
{
	crd_jobs_events_window(&S, 4);
	struct test_watch t = {.w.on_event = on_watch, .unwatch_self = true};
	ck_assert_int_eq(crd_jobs_watch(&S, &t.w), 0);
	crd_jobs_events_window(&S, 100); /* too late: the ring exists */
	for (int i = 0; i < 3; i++)
		crd_jobs_finish(&S, submit(), CRUND_JOB_SUCCEEDED, NULL, NULL);
	ck_assert_int_eq(t.n, 1); /* it unwatched itself in its callback */
	ck_assert_uint_eq(crd_jobs_last_event(&S), 6);
	char id[CRD_EVENT_ID_MAX];
	/* events 3..6 are kept: resuming after 2 replays all four */
	crd_jobs_event_id(&S, 2, id);
	memset(&replayed, 0, sizeof(replayed));
	ck_assert_int_eq(crd_jobs_events_since(&S, id, on_replay, NULL), 0);
	ck_assert_int_eq(replayed.n, 4);
	ck_assert_uint_eq(replayed.ids[0], 3);
	ck_assert_uint_eq(replayed.ids[3], 6);
	/* after 4: 5 and 6 */
	crd_jobs_event_id(&S, 4, id);
	memset(&replayed, 0, sizeof(replayed));
	ck_assert_int_eq(crd_jobs_events_since(&S, id, on_replay, NULL), 0);
	ck_assert_int_eq(replayed.n, 2);
	ck_assert_uint_eq(replayed.ids[0], 5);
	/* the newest: nothing */
	crd_jobs_event_id(&S, 6, id);
	memset(&replayed, 0, sizeof(replayed));
	ck_assert_int_eq(crd_jobs_events_since(&S, id, on_replay, NULL), 0);
	ck_assert_int_eq(replayed.n, 0);
	/* after 1: event 2 left the window */
	crd_jobs_event_id(&S, 1, id);
	ck_assert_int_eq(crd_jobs_events_since(&S, id, on_replay, NULL), -ESTALE);
	crd_jobs_event_id(&S, 0, id);
	ck_assert_int_eq(crd_jobs_events_since(&S, id, on_replay, NULL), -ESTALE);
	/* not ours: the future, another epoch, garbage */
	crd_jobs_event_id(&S, 7, id);
	ck_assert_int_eq(crd_jobs_events_since(&S, id, on_replay, NULL), -EINVAL);
	ck_assert_int_eq(crd_jobs_events_since(&S, "zzzzzzzz-3", on_replay, NULL), -EINVAL);
	ck_assert_int_eq(crd_jobs_events_since(&S, "", on_replay, NULL), -EINVAL);
	crd_jobs_event_id(&S, 3, id);
	strcat(id, "x");
	ck_assert_int_eq(crd_jobs_events_since(&S, id, on_replay, NULL), -EINVAL);
}
END_TEST

START_TEST(list_filters_by_job_and_text)
{
	crd_jobs_free(&S);
	setup_lim(10, 10, 100, 3600);
	int rc;
	crd_jobrec *a = submit_full(&plug_a, &spec_noop, NULL, "order-17", &rc, NULL);
	crd_jobrec *b = submit_full(&plug_a, &spec_other, NULL, "order-18", &rc, NULL);
	submit_full(&plug_b, &spec_other, NULL, NULL, &rc, NULL);
	bool more;
	crd_jobs_filter f = {.job = "other"};
	n_seen = 0;
	crd_jobs_list_where(&S, &f, NULL, 10, collect, NULL, &more);
	ck_assert_int_eq(n_seen, 2);
	f = (crd_jobs_filter){.text = "order-1"};
	n_seen = 0;
	crd_jobs_list_where(&S, &f, NULL, 10, collect, NULL, &more);
	ck_assert_int_eq(n_seen, 2);
	f = (crd_jobs_filter){.text = "order-17"};
	n_seen = 0;
	crd_jobs_list_where(&S, &f, NULL, 10, collect, NULL, &more);
	ck_assert_int_eq(n_seen, 1);
	ck_assert_str_eq(seen[0], a->id);
	f = (crd_jobs_filter){.text = b->id, .plugin = "alpha", .job = "other"};
	n_seen = 0;
	crd_jobs_list_where(&S, &f, NULL, 10, collect, NULL, &more);
	ck_assert_int_eq(n_seen, 1);
	ck_assert_str_eq(seen[0], b->id);
}
END_TEST

START_TEST(drain_cancels_queued_and_refuses_new_jobs)
{
	crd_jobrec *a = submit();
	submit();
	crd_jobrec *c = submit(), *d = submit();
	crd_jobs_drain(&S);
	ck_assert_int_eq(c->state, CRUND_JOB_CANCELLED);
	ck_assert_int_eq(d->state, CRUND_JOB_CANCELLED);
	ck_assert_str_eq(c->err_code, "shutdown");
	ck_assert_int_eq(a->state, CRUND_JOB_RUNNING);
	int rc;
	ck_assert_ptr_null(submit_full(&plug_a, &spec_noop, NULL, NULL, &rc, NULL));
	ck_assert_int_eq(rc, -ESHUTDOWN);
	/* ending a running job does not start anything while draining */
	crd_jobs_finish(&S, a, CRUND_JOB_SUCCEEDED, NULL, NULL);
	ck_assert_int_eq(n_started, 2);
	crd_jobs_cancel_running(&S, "shutdown");
	ck_assert_int_eq(n_cancel_asked, 1);
	ck_assert_uint_eq(crd_jobs_active(&S), 1);
}
END_TEST

START_TEST(render_is_json_with_every_field)
{
	crd_jobrec *a = submit();
	crd_jobrec *b = submit();
	crd_jobs_finish(&S, a, CRUND_JOB_FAILED, "plugin_error", "bad \"quote\"\n");
	ck_assert_int_eq(crd_jobs_set_result(b, json_pack("{s:b}", "ok", 1)), 0);
	b->flags |= CRUND_JF_PROGRESS;
	b->progress = 0.5;
	crd_jobs_finish(&S, b, CRUND_JOB_SUCCEEDED, NULL, NULL);
	const char *keys[] = {"id",         "plugin",     "job",         "args",
			      "state",      "result",     "error",       "progress",
			      "created_at", "started_at", "finished_at", "timeout"};
	for (int k = 0; k < 2; k++) {
		crd_buf buf = CRUND_BUF_INIT;
		crd_job_render(&buf, k ? b : a);
		json_error_t e;
		json_t *v = json_loads(buf.data, 0, &e);
		ck_assert_msg(v != NULL, "bad JSON: %s: %s", e.text, buf.data);
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			ck_assert_msg(json_object_get(v, keys[i]) != NULL, "missing %s", keys[i]);
		if (!k) {
			ck_assert_str_eq(json_string_value(json_object_get(v, "state")), "failed");
			json_t *err = json_object_get(v, "error");
			ck_assert_str_eq(json_string_value(json_object_get(err, "message")),
					 "bad \"quote\"\n");
			ck_assert(json_is_null(json_object_get(v, "result")));
		} else {
			ck_assert(
				json_is_true(json_object_get(json_object_get(v, "result"), "ok")));
			ck_assert(json_is_null(json_object_get(v, "error")));
			ck_assert(json_real_value(json_object_get(json_object_get(v, "progress"),
								  "fraction")) == 0.5);
		}
		const char *ts = json_string_value(json_object_get(v, "created_at"));
		ck_assert_uint_eq(strlen(ts), 24); /* 1970-01-01T00:16:40.000Z */
		ck_assert_int_eq(ts[23], 'Z');
		json_decref(v);
		crd_buf_free(&buf);
	}
}
END_TEST

START_TEST(log_is_bounded)
{
	crd_jobrec *a = submit(); /* max_log_bytes 64 */
	crd_jobs_log_append(a, "0123456789", 10);
	crd_jobs_log_append(a, "0123456789", 10);
	ck_assert_uint_eq(a->log_len, 22);
	for (int i = 0; i < 10; i++)
		crd_jobs_log_append(a, "0123456789", 10);
	ck_assert_uint_le(a->log_len, 64);
	ck_assert(a->flags & CRUND_JF_LOG_TRUNC);
	ck_assert_int_eq(a->log[a->log_len - 1], '\n');
}
END_TEST

START_TEST(many_jobs_grow_the_hash)
{
	crd_jobs_free(&S);
	setup_lim(100000, 10, 100000, 3600);
	char first[CRUND_JOB_ID_MAX];
	strcpy(first, submit()->id);
	for (int i = 0; i < 5000; i++)
		submit();
	ck_assert_ptr_nonnull(crd_jobs_find(&S, first));
	ck_assert_uint_ge(S.hsize, 4096);
	ck_assert_uint_eq(S.count, 5001);
}
END_TEST

START_TEST(records_stay_found_while_the_table_grows)
{
	crd_jobs_free(&S);
	setup_lim(100000, 10, 100000, 3600);
	enum { N = 6000 };
	static crd_jobrec *js[N];
	static bool gone[N];
	memset(gone, 0, sizeof(gone));
	bool saw_move = false;
	for (int i = 0; i < N; i++) {
		js[i] = submit();
		saw_move |= S.old_htab != NULL;
		if (i % 7 == 3) {
			/* forget one older record now and then, moved or not */
			int k = i / 2;
			if (!gone[k]) {
				crd_jobs_finish(&S, js[k], CRUND_JOB_SUCCEEDED, NULL, NULL);
				ck_assert_int_eq(crd_jobs_delete(&S, js[k], NULL, NULL), 0);
				gone[k] = true;
			}
		}
		if (i % 251 == 0 || i == N - 1) {
			for (int k = 0; k <= i; k++) {
				char id[CRUND_JOB_ID_MAX];
				crd_jobs_format_id(&S, (uint64_t)k + 1, id);
				if (gone[k])
					ck_assert_ptr_null(crd_jobs_find(&S, id));
				else
					ck_assert_ptr_eq(crd_jobs_find(&S, id), js[k]);
			}
		}
	}
	ck_assert(saw_move);
	ck_assert_uint_ge(S.hsize, 4096);
}
END_TEST

START_TEST(forgotten_records_are_reused)
{
	crd_jobs_free(&S);
	setup_lim(1, 10, 50, 3600);
	crd_jobrec *last[50];
	char ids[50][CRUND_JOB_ID_MAX];
	for (int i = 0; i < 5000; i++) {
		crd_jobrec *j = submit();
		ck_assert_int_eq(j->state, CRUND_JOB_RUNNING);
		ck_assert_ptr_null(j->result);
		ck_assert_int_eq(crd_jobs_set_result(j, json_integer(i)), 0);
		last[i % 50] = j;
		strcpy(ids[i % 50], j->id);
		crd_jobs_finish(&S, j, CRUND_JOB_SUCCEEDED, NULL, NULL);
	}
	ck_assert_uint_eq(S.count, 50);
	for (int k = 0; k < 50; k++) {
		ck_assert_ptr_eq(crd_jobs_find(&S, ids[k]), last[k]);
		ck_assert_int_eq(last[k]->state, CRUND_JOB_SUCCEEDED);
		/* job i kept result i: i = 4950 + k' with i % 50 == k */
		ck_assert_int_eq(atoi(last[k]->result) % 50, k);
	}
	/* 5,000 records in turn, at most 51 at once: one slab holds them */
	ck_assert(S.rec_plain || (S.slabs && !S.slabs->next));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("jobs");
	TCase *tc = tcase_create("store");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, ids_are_unique_and_found_by_id);
	tcase_add_test(tc, events_are_kept_only_once_watched);
	tcase_add_test(tc, events_follow_queue_start_retry_and_end);
	tcase_add_test(tc, cancelled_by_its_own_code_is_not_a_request);
	tcase_add_test(tc, events_resume_within_the_window_and_refuse_outside);
	tcase_add_test(tc, list_filters_by_job_and_text);
	tcase_add_test(tc, random_prefix_differs_between_stores);
	tcase_add_test(tc, submit_starts_when_a_slot_is_free);
	tcase_add_test(tc, max_running_queues_in_fifo_order);
	tcase_add_test(tc, full_queue_refuses_with_eagain);
	tcase_add_test(tc, failed_start_is_not_accepted);
	tcase_add_test(tc, queued_job_that_cannot_start_ends_failed_internal);
	tcase_add_test(tc, cancel_queued_ends_at_once);
	tcase_add_test(tc, cancel_running_asks_and_waits);
	tcase_add_test(tc, terminal_state_is_recorded_once);
	tcase_add_test(tc, finish_may_reuse_its_own_error_strings);
	tcase_add_test(tc, delete_refuses_active_and_forgets_ended);
	tcase_add_test(tc, retention_by_count_forgets_oldest_ended);
	tcase_add_test(tc, retention_keeps_record_while_its_task_lives);
	tcase_add_test(tc, retention_by_age);
	tcase_add_test(tc, idempotency_key_returns_existing_or_conflicts);
	tcase_add_test(tc, list_is_newest_first_with_cursor_pages);
	tcase_add_test(tc, list_cursor_of_a_forgotten_job_resumes_after_it);
	tcase_add_test(tc, list_filters_by_state_and_plugin);
	tcase_add_test(tc, subscribers_get_events_and_may_free_themselves_at_end);
	tcase_add_test(tc, drain_cancels_queued_and_refuses_new_jobs);
	tcase_add_test(tc, render_is_json_with_every_field);
	tcase_add_test(tc, log_is_bounded);
	tcase_add_test(tc, many_jobs_grow_the_hash);
	tcase_add_test(tc, records_stay_found_while_the_table_grows);
	tcase_add_test(tc, forgotten_records_are_reused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return tu_main(suite()); }
