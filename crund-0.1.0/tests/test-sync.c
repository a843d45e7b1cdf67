/*
 * test-sync.c — Event, Lock, Semaphore, Queue: basic semantics, FIFO
 * fairness, hand-over, cancellation while parked, free with waiters.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "testutil.h"

struct order {
	int seq[64];
	int n;
};

/* -------------------------------------------------------------- event */

struct ev_arg {
	cr_event *e;
	struct order *o;
	int id;
};

static int ev_waiter(void *arg, void **ret)
{
	struct ev_arg *a = arg;
	int rc = cr_event_wait(a->e);

	(void)ret;
	if (rc == 0)
		a->o->seq[a->o->n++] = a->id;
	return rc;
}

static int event_main(void *arg, void **ret)
{
	cr_event *e;
	struct order o = {.n = 0};
	struct ev_arg a[3];
	cr_task *t[3];

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_event_new(&e), 0);
	ck_assert(!cr_event_is_set(e));
	for (int i = 0; i < 3; i++) {
		a[i] = (struct ev_arg){e, &o, i};
		ck_assert_int_eq(cr_spawn(ev_waiter, &a[i], NULL, &t[i]), 0);
	}
	cr_sleep(0.001);
	ck_assert_int_eq(o.n, 0);
	cr_event_set(e);
	ck_assert(cr_event_is_set(e));
	ck_assert_int_eq(cr_gather(t, 3, NULL), 0);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(o.seq[i], i);
		cr_task_unref(t[i]);
	}
	/* Set: wait returns at once; cleared: waits again. */
	ck_assert_int_eq(cr_event_wait(e), 0);
	cr_event_clear(e);
	ck_assert(!cr_event_is_set(e));
	ck_assert_int_eq(cr_spawn(ev_waiter, &a[0], NULL, &t[0]), 0);
	cr_sleep(0.001);
	ck_assert(!cr_task_done(t[0]));
	cr_task_cancel(t[0], NULL);
	ck_assert_int_eq(cr_task_join(t[0], NULL), -ECANCELED);
	cr_task_unref(t[0]);
	/* Free with a waiter: it gets -ESHUTDOWN. */
	ck_assert_int_eq(cr_spawn(ev_waiter, &a[1], NULL, &t[1]), 0);
	cr_yield();
	cr_event_free(e);
	ck_assert_int_eq(cr_task_join(t[1], NULL), -ESHUTDOWN);
	cr_task_unref(t[1]);
	return 0;
}

START_TEST(event_wakes_all_waiters_and_cancel_unlinks)
{
	ck_assert_int_eq(tu_run(event_main, NULL, NULL), 0);
}
END_TEST

/* --------------------------------------------------------------- lock */

struct lock_arg {
	cr_lock *l;
	struct order *o;
	int id;
	int inside;
};

static int lock_user(void *arg, void **ret)
{
	struct lock_arg *a = arg;
	int rc = cr_lock_acquire(a->l);

	(void)ret;
	if (rc < 0)
		return rc;
	a->o->seq[a->o->n++] = a->id;
	cr_yield();
	cr_yield();
	cr_lock_release(a->l);
	return 0;
}

static int lock_main(void *arg, void **ret)
{
	cr_lock *l;
	struct order o = {.n = 0};
	struct lock_arg a[5];
	cr_task *t[5];

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_lock_new(&l), 0);
	ck_assert_int_eq(cr_lock_release(l), -EPERM);
	ck_assert_int_eq(cr_lock_acquire(l), 0);
	ck_assert(cr_lock_locked(l));
	for (int i = 0; i < 5; i++) {
		a[i] = (struct lock_arg){l, &o, i, 0};
		ck_assert_int_eq(cr_spawn(lock_user, &a[i], NULL, &t[i]), 0);
	}
	cr_sleep(0.001);
	/* Waiter 2 gives up while parked; the rest get the lock FIFO. */
	cr_task_cancel(t[2], NULL);
	cr_lock_release(l);
	ck_assert_int_eq(cr_gather(t, 5, NULL), -ECANCELED);
	ck_assert_int_eq(o.n, 4);
	ck_assert_int_eq(o.seq[0], 0);
	ck_assert_int_eq(o.seq[1], 1);
	ck_assert_int_eq(o.seq[2], 3);
	ck_assert_int_eq(o.seq[3], 4);
	ck_assert(!cr_lock_locked(l));
	for (int i = 0; i < 5; i++)
		cr_task_unref(t[i]);
	cr_lock_free(l);
	return 0;
}

START_TEST(lock_is_fifo_and_skips_cancelled_waiters)
{
	ck_assert_int_eq(tu_run(lock_main, NULL, NULL), 0);
}
END_TEST

static int lock_grab(void *arg, void **ret)
{
	struct lock_arg *a = arg;
	int rc = cr_lock_acquire(a->l);

	(void)ret;
	a->inside = rc;
	return rc;
}

static int lock_handover_main(void *arg, void **ret)
{
	cr_lock *l;
	struct order o = {.n = 0};
	struct lock_arg a = {NULL, &o, 0, 1};
	cr_task *t;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_lock_new(&l), 0);
	a.l = l;
	cr_lock_acquire(l);
	ck_assert_int_eq(cr_spawn(lock_grab, &a, NULL, &t), 0);
	cr_yield();
	/* Released to the waiter, then the waiter is cancelled before it
	 * runs: it still owns the lock (nothing lost); the cancellation
	 * comes at its next await. */
	cr_lock_release(l);
	ck_assert(cr_lock_locked(l));
	cr_task_cancel(t, NULL);
	ck_assert_int_eq(cr_task_join(t, NULL), -ECANCELED); /* lost-cancel rule */
	ck_assert_int_eq(a.inside, 0);
	ck_assert(cr_lock_locked(l));
	/* And nobody barges in ahead of a woken waiter. */
	ck_assert_int_eq(cr_lock_release(l), 0);
	ck_assert(!cr_lock_locked(l));
	cr_task_unref(t);
	cr_lock_free(l);
	return 0;
}

START_TEST(lock_handed_over_is_not_lost_on_late_cancel)
{
	ck_assert_int_eq(tu_run(lock_handover_main, NULL, NULL), 0);
}
END_TEST

/* ---------------------------------------------------------- semaphore */

struct sem_arg {
	cr_sem *s;
	int *inside, *max_inside;
	struct order *o;
	int id;
};

static int sem_user(void *arg, void **ret)
{
	struct sem_arg *a = arg;
	int rc = cr_sem_acquire(a->s);

	(void)ret;
	if (rc < 0)
		return rc;
	a->o->seq[a->o->n++] = a->id;
	if (++*a->inside > *a->max_inside)
		*a->max_inside = *a->inside;
	cr_sleep(0.001);
	--*a->inside;
	cr_sem_release(a->s);
	return 0;
}

static int sem_main(void *arg, void **ret)
{
	cr_sem *s;
	int inside = 0, max_inside = 0;
	struct order o = {.n = 0};
	struct sem_arg a[8];
	cr_task *t[8];

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_sem_new(2, &s), 0);
	ck_assert_uint_eq(cr_sem_value(s), 2);
	for (int i = 0; i < 8; i++) {
		a[i] = (struct sem_arg){s, &inside, &max_inside, &o, i};
		ck_assert_int_eq(cr_spawn(sem_user, &a[i], NULL, &t[i]), 0);
	}
	ck_assert_int_eq(cr_gather(t, 8, NULL), 0);
	ck_assert_int_eq(max_inside, 2);
	for (int i = 0; i < 8; i++) {
		ck_assert_int_eq(o.seq[i], i);
		cr_task_unref(t[i]);
	}
	ck_assert_uint_eq(cr_sem_value(s), 2);
	/* Cancelled while parked: the unit is not consumed. */
	ck_assert_int_eq(cr_sem_acquire(s), 0);
	ck_assert_int_eq(cr_sem_acquire(s), 0);
	ck_assert_int_eq(cr_spawn(sem_user, &a[0], NULL, &t[0]), 0);
	cr_yield();
	cr_task_cancel(t[0], NULL);
	ck_assert_int_eq(cr_task_join(t[0], NULL), -ECANCELED);
	cr_task_unref(t[0]);
	cr_sem_release(s);
	cr_sem_release(s);
	ck_assert_uint_eq(cr_sem_value(s), 2);
	cr_sem_free(s);
	return 0;
}

START_TEST(semaphore_bounds_concurrency_fifo) { ck_assert_int_eq(tu_run(sem_main, NULL, NULL), 0); }
END_TEST

/* -------------------------------------------------------------- queue */

struct q_arg {
	cr_queue *q;
	int n;
	struct order *o;
};

static int producer(void *arg, void **ret)
{
	struct q_arg *a = arg;

	(void)ret;
	for (int i = 1; i <= a->n; i++) {
		int rc = cr_queue_put(a->q, (void *)(intptr_t)i);

		if (rc < 0)
			return rc;
	}
	return 0;
}

static int consumer(void *arg, void **ret)
{
	struct q_arg *a = arg;

	(void)ret;
	for (int i = 0; i < a->n; i++) {
		void *item;
		int rc = cr_queue_get(a->q, &item);

		if (rc < 0)
			return rc;
		a->o->seq[a->o->n++] = (int)(intptr_t)item;
		if (i % 3 == 0)
			cr_yield();
	}
	return 0;
}

static int queue_main(void *arg, void **ret)
{
	cr_queue *q;
	struct order o = {.n = 0};
	struct q_arg a;
	cr_task *t[2];
	void *item;

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_queue_new(2, &q), 0);
	a = (struct q_arg){q, 20, &o};
	ck_assert_int_eq(cr_spawn(consumer, &a, NULL, &t[1]), 0);
	ck_assert_int_eq(cr_spawn(producer, &a, NULL, &t[0]), 0);
	ck_assert_int_eq(cr_gather(t, 2, NULL), 0);
	ck_assert_int_eq(o.n, 20);
	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(o.seq[i], i + 1);
	cr_task_unref(t[0]);
	cr_task_unref(t[1]);

	ck_assert_int_eq(cr_queue_get_nowait(q, &item), -EAGAIN);
	ck_assert_int_eq(cr_queue_put_nowait(q, (void *)1), 0);
	ck_assert_int_eq(cr_queue_put_nowait(q, (void *)2), 0);
	ck_assert_int_eq(cr_queue_put_nowait(q, (void *)3), -EAGAIN);
	ck_assert_uint_eq(cr_queue_size(q), 2);
	ck_assert_int_eq(cr_queue_get_nowait(q, &item), 0);
	ck_assert_ptr_eq(item, (void *)1);
	ck_assert_int_eq(cr_queue_get(q, &item), 0);
	ck_assert_ptr_eq(item, (void *)2);
	cr_queue_free(q);

	/* Unbounded queue grows. */
	ck_assert_int_eq(cr_queue_new(0, &q), 0);
	for (int i = 0; i < 1000; i++)
		ck_assert_int_eq(cr_queue_put_nowait(q, (void *)(intptr_t)i), 0);
	for (int i = 0; i < 1000; i++) {
		ck_assert_int_eq(cr_queue_get_nowait(q, &item), 0);
		ck_assert_int_eq((int)(intptr_t)item, i);
	}
	cr_queue_free(q);
	return 0;
}

START_TEST(queue_passes_items_in_order_with_backpressure)
{
	ck_assert_int_eq(tu_run(queue_main, NULL, NULL), 0);
}
END_TEST

static int getter(void *arg, void **ret)
{
	cr_queue *q = arg;
	void *item = NULL;
	int rc = cr_queue_get(q, &item);

	*ret = item;
	return rc;
}

static int queue_cancel_main(void *arg, void **ret)
{
	cr_queue *q;
	cr_task *g1, *g2, *p;
	void *v = NULL;
	struct q_arg a;
	struct order o = {.n = 0};

	(void)arg;
	(void)ret;
	ck_assert_int_eq(cr_queue_new(1, &q), 0);
	ck_assert_int_eq(cr_spawn(getter, q, NULL, &g1), 0);
	ck_assert_int_eq(cr_spawn(getter, q, NULL, &g2), 0);
	cr_yield();
	/* g1 cancelled while parked: the item goes to g2. */
	cr_task_cancel(g1, NULL);
	ck_assert_int_eq(cr_queue_put(q, (void *)7), 0);
	ck_assert_int_eq(cr_task_join(g1, NULL), -ECANCELED);
	ck_assert_int_eq(cr_task_join(g2, &v), 0);
	ck_assert_ptr_eq(v, (void *)7);
	cr_task_unref(g1);
	cr_task_unref(g2);

	/* A putter cancelled while blocked on a full queue puts nothing. */
	a = (struct q_arg){q, 3, &o};
	ck_assert_int_eq(cr_queue_put_nowait(q, (void *)1), 0);
	ck_assert_int_eq(cr_spawn(producer, &a, NULL, &p), 0);
	cr_yield();
	cr_task_cancel(p, NULL);
	ck_assert_int_eq(cr_task_join(p, NULL), -ECANCELED);
	ck_assert_uint_eq(cr_queue_size(q), 1);
	cr_task_unref(p);

	/* Free with a blocked putter: -ESHUTDOWN. */
	ck_assert_int_eq(cr_spawn(producer, &a, NULL, &p), 0);
	cr_yield();
	cr_queue_free(q);
	ck_assert_int_eq(cr_task_join(p, NULL), -ESHUTDOWN);
	cr_task_unref(p);
	return 0;
}

START_TEST(queue_cancelled_getter_or_putter_loses_nothing)
{
	ck_assert_int_eq(tu_run(queue_cancel_main, NULL, NULL), 0);
}
END_TEST

START_TEST(awaiting_primitives_outside_a_task_return_eperm)
{
	cr_lock *l;
	cr_event *e;

	ck_assert_int_eq(cr_lock_new(&l), 0);
	ck_assert_int_eq(cr_event_new(&e), 0);
	ck_assert_int_eq(cr_lock_acquire(l), -EPERM);
	ck_assert_int_eq(cr_event_wait(e), -EPERM);
	cr_lock_free(l);
	cr_event_free(e);
	ck_assert_ptr_null(cr_queue_free(NULL));
}
END_TEST

static Suite *sync_suite(void)
{
	Suite *s = suite_create("sync");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, event_wakes_all_waiters_and_cancel_unlinks);
	tcase_add_test(tc, lock_is_fifo_and_skips_cancelled_waiters);
	tcase_add_test(tc, lock_handed_over_is_not_lost_on_late_cancel);
	tcase_add_test(tc, semaphore_bounds_concurrency_fifo);
	tcase_add_test(tc, queue_passes_items_in_order_with_backpressure);
	tcase_add_test(tc, queue_cancelled_getter_or_putter_loses_nothing);
	tcase_add_test(tc, awaiting_primitives_outside_a_task_return_eperm);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return tu_main(sync_suite()); }
