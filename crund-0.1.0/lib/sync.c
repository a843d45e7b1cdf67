/*
 * sync.c — asyncio's Event, Lock, Semaphore and Queue for tasks.
 *
 * Waiters are nodes in the waiting task's own frame, linked FIFO into the
 * primitive.  A release hands the resource over directly to the first
 * waiter (the lock stays locked, the semaphore's value is not
 * incremented, the item goes into the getter's node): a waiter woken with
 * success owns what it was given even if it is cancelled before it runs
 * (the cancellation then comes at its next await), so nothing is lost and
 * nobody can barge in ahead of a woken waiter.  A waiter cancelled while
 * parked unlinks its node (on_cancel) and gets -ECANCELED.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "task.h"

struct swaiter {
	struct swaiter *next, *prev;
	cr_task *t;
	void *item; /* queue: the item handed over / to put */
};

struct wlist {
	struct swaiter *head, *tail;
};

static void wl_push(struct wlist *l, struct swaiter *w)
{
	w->next = NULL;
	w->prev = l->tail;
	if (l->tail)
		l->tail->next = w;
	else
		l->head = w;
	l->tail = w;
}

static void wl_remove(struct wlist *l, struct swaiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		l->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		l->tail = w->prev;
	w->next = w->prev = NULL;
}

static struct swaiter *wl_pop(struct wlist *l)
{
	struct swaiter *w = l->head;

	if (w)
		wl_remove(l, w);
	return w;
}

struct cancel_ctx {
	struct wlist *l;
	struct swaiter *w;
};

static void unlink_on_cancel(void *arg)
{
	struct cancel_ctx *c = arg;

	wl_remove(c->l, c->w);
}

/* Park the current task in list l; returns the wake code. */
static int wait_in(struct wlist *l, struct swaiter *w)
{
	struct cancel_ctx c = {l, w};
	cr_task *t = cr_current_task();
	int rc;

	if (!t)
		return cr__error(-EPERM, "awaiting outside a task");
	if ((rc = cr__task_check_cancel(t)) < 0)
		return rc;
	w->t = t;
	wl_push(l, w);
	return cr__task_park(unlink_on_cancel, &c);
}

static void wake_all(struct wlist *l, int rc)
{
	struct swaiter *w;

	while ((w = wl_pop(l)))
		cr__task_wake(w->t, rc);
}

/* ---------------------------------------------------------------- event */

struct cr_event {
	bool set;
	struct wlist waiters;
};

int cr_event_new(cr_event **ret)
{
	cr_event *e;

	if (!ret)
		return cr__error(-EINVAL, "cr_event_new: ret is NULL");
	e = cr__calloc(1, sizeof(*e));
	if (!e)
		return cr__error(-ENOMEM, "out of memory creating an event");
	*ret = e;
	return 0;
}

cr_event *cr_event_free(cr_event *e)
{
	if (e) {
		wake_all(&e->waiters, -ESHUTDOWN);
		free(e);
	}
	return NULL;
}

void cr_event_set(cr_event *e)
{
	if (!e || e->set)
		return;
	e->set = true;
	wake_all(&e->waiters, 0);
}

void cr_event_clear(cr_event *e)
{
	if (e)
		e->set = false;
}

bool cr_event_is_set(const cr_event *e) { return e && e->set; }

int cr_event_wait(cr_event *e)
{
	struct swaiter w;
	cr_task *t = cr_current_task();

	if (!e)
		return cr__error(-EINVAL, "cr_event_wait: event is NULL");
	if (!t)
		return cr__error(-EPERM, "cr_event_wait must be awaited from inside a task");
	if (e->set)
		return cr__task_check_cancel(t);
	return wait_in(&e->waiters, &w);
}

/* ----------------------------------------------------------------- lock */

struct cr_lock {
	bool locked;
	struct wlist waiters;
};

int cr_lock_new(cr_lock **ret)
{
	cr_lock *l;

	if (!ret)
		return cr__error(-EINVAL, "cr_lock_new: ret is NULL");
	l = cr__calloc(1, sizeof(*l));
	if (!l)
		return cr__error(-ENOMEM, "out of memory creating a lock");
	*ret = l;
	return 0;
}

cr_lock *cr_lock_free(cr_lock *l)
{
	if (l) {
		wake_all(&l->waiters, -ESHUTDOWN);
		free(l);
	}
	return NULL;
}

int cr_lock_acquire(cr_lock *l)
{
	struct swaiter w;
	cr_task *t = cr_current_task();
	int rc;

	if (!l)
		return cr__error(-EINVAL, "cr_lock_acquire: lock is NULL");
	if (!t)
		return cr__error(-EPERM, "cr_lock_acquire must be awaited from inside a task");
	if (!l->locked && !l->waiters.head) {
		if ((rc = cr__task_check_cancel(t)) < 0)
			return rc;
		l->locked = true;
		return 0;
	}
	/* On success the releaser handed the lock over (still locked). */
	return wait_in(&l->waiters, &w);
}

int cr_lock_release(cr_lock *l)
{
	struct swaiter *w;

	if (!l || !l->locked)
		return cr__error(-EPERM, "Lock is not acquired.");
	w = wl_pop(&l->waiters);
	if (w)
		cr__task_wake(w->t, 0); /* ownership passes, FIFO */
	else
		l->locked = false;
	return 0;
}

bool cr_lock_locked(const cr_lock *l) { return l && l->locked; }

/* ------------------------------------------------------------ semaphore */

struct cr_sem {
	unsigned value;
	struct wlist waiters;
};

int cr_sem_new(unsigned value, cr_sem **ret)
{
	cr_sem *s;

	if (!ret)
		return cr__error(-EINVAL, "cr_sem_new: ret is NULL");
	s = cr__calloc(1, sizeof(*s));
	if (!s)
		return cr__error(-ENOMEM, "out of memory creating a semaphore");
	s->value = value;
	*ret = s;
	return 0;
}

cr_sem *cr_sem_free(cr_sem *s)
{
	if (s) {
		wake_all(&s->waiters, -ESHUTDOWN);
		free(s);
	}
	return NULL;
}

int cr_sem_acquire(cr_sem *s)
{
	struct swaiter w;
	cr_task *t = cr_current_task();
	int rc;

	if (!s)
		return cr__error(-EINVAL, "cr_sem_acquire: semaphore is NULL");
	if (!t)
		return cr__error(-EPERM, "cr_sem_acquire must be awaited from inside a task");
	if (s->value > 0 && !s->waiters.head) {
		if ((rc = cr__task_check_cancel(t)) < 0)
			return rc;
		s->value--;
		return 0;
	}
	return wait_in(&s->waiters, &w);
}

void cr_sem_release(cr_sem *s)
{
	struct swaiter *w;

	if (!s)
		return;
	w = wl_pop(&s->waiters);
	if (w)
		cr__task_wake(w->t, 0); /* the unit passes to the first waiter */
	else
		s->value++;
}

unsigned cr_sem_value(const cr_sem *s) { return s ? s->value : 0; }

/* ---------------------------------------------------------------- queue */

struct cr_queue {
	size_t maxsize; /* 0: unbounded */
	void **ring;
	size_t cap, head, len;
	struct wlist getters, putters;
};

int cr_queue_new(size_t maxsize, cr_queue **ret)
{
	cr_queue *q;

	if (!ret)
		return cr__error(-EINVAL, "cr_queue_new: ret is NULL");
	q = cr__calloc(1, sizeof(*q));
	if (!q)
		return cr__error(-ENOMEM, "out of memory creating a queue");
	q->maxsize = maxsize;
	*ret = q;
	return 0;
}

cr_queue *cr_queue_free(cr_queue *q)
{
	if (q) {
		wake_all(&q->getters, -ESHUTDOWN);
		wake_all(&q->putters, -ESHUTDOWN);
		free(q->ring);
		free(q);
	}
	return NULL;
}

size_t cr_queue_size(const cr_queue *q) { return q ? q->len : 0; }

static bool q_full(const cr_queue *q) { return q->maxsize && q->len >= q->maxsize; }

static int q_push(cr_queue *q, void *item)
{
	if (q->len == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 16;
		void **r;

		if (q->maxsize && cap > q->maxsize)
			cap = q->maxsize;
		r = cr__malloc(cap * sizeof(*r));
		if (!r)
			return cr__error(-ENOMEM, "out of memory growing a queue");
		for (size_t i = 0; i < q->len; i++)
			r[i] = q->ring[(q->head + i) % q->cap];
		free(q->ring);
		q->ring = r;
		q->cap = cap;
		q->head = 0;
	}
	q->ring[(q->head + q->len) % q->cap] = item;
	q->len++;
	return 0;
}

static void *q_pop(cr_queue *q)
{
	void *item = q->ring[q->head];

	q->head = (q->head + 1) % q->cap;
	q->len--;
	return item;
}

int cr_queue_put_nowait(cr_queue *q, void *item)
{
	struct swaiter *w;

	if (!q)
		return cr__error(-EINVAL, "cr_queue_put_nowait: queue is NULL");
	if ((w = wl_pop(&q->getters))) {
		/* A getter waits, so the queue is empty: hand it over. */
		w->item = item;
		cr__task_wake(w->t, 0);
		return 0;
	}
	if (q_full(q))
		return -EAGAIN;
	return q_push(q, item);
}

int cr_queue_get_nowait(cr_queue *q, void **ret_item)
{
	struct swaiter *w;
	void *item;

	if (!q)
		return cr__error(-EINVAL, "cr_queue_get_nowait: queue is NULL");
	if (q->len == 0)
		return -EAGAIN;
	item = q_pop(q);
	/* Room now: the first blocked putter's item goes in, in order. */
	if ((w = wl_pop(&q->putters))) {
		q_push(q, w->item); /* cannot fail: a slot was just freed */
		cr__task_wake(w->t, 0);
	}
	if (ret_item)
		*ret_item = item;
	return 0;
}

int cr_queue_put(cr_queue *q, void *item)
{
	struct swaiter w;
	cr_task *t = cr_current_task();
	int rc;

	if (!q)
		return cr__error(-EINVAL, "cr_queue_put: queue is NULL");
	if (!t)
		return cr__error(-EPERM, "cr_queue_put must be awaited from inside a task");
	if (!q_full(q) && !q->putters.head) {
		if ((rc = cr__task_check_cancel(t)) < 0)
			return rc;
		return cr_queue_put_nowait(q, item);
	}
	w.item = item;
	return wait_in(&q->putters, &w); /* 0: a getter moved our item in */
}

int cr_queue_get(cr_queue *q, void **ret_item)
{
	struct swaiter w;
	cr_task *t = cr_current_task();
	int rc;

	if (!q)
		return cr__error(-EINVAL, "cr_queue_get: queue is NULL");
	if (!t)
		return cr__error(-EPERM, "cr_queue_get must be awaited from inside a task");
	if (q->len > 0) {
		if ((rc = cr__task_check_cancel(t)) < 0)
			return rc;
		return cr_queue_get_nowait(q, ret_item);
	}
	w.item = NULL;
	rc = wait_in(&q->getters, &w);
	if (rc == 0 && ret_item)
		*ret_item = w.item;
	return rc;
}
