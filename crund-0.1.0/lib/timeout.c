/*
 * timeout.c — timeout scopes (asyncio.timeout / timeout_at).
 *
 * Entering a scope arms a timer; when it fires, the task is cancelled (a
 * normal, counted cancellation, so the enclosed awaits see -ECANCELED).
 * Leaving the scope disarms the timer; if it fired, the scope takes its
 * cancellation back (uncancel) and, when no other cancellation is left
 * beyond those counted at entry and the body failed with -ECANCELED, turns
 * it into -ETIMEDOUT.  Nested scopes each take back their own
 * cancellation, so an outer expiry is never mistaken for an inner one.
 *
 * `state` packs the scope state (low 4 bits) and the task's cancelling()
 * count at entry (the rest), so the public struct stays four fields.
 */
#include "config.h"

#include <errno.h>
#include <math.h>

#include "task.h"

enum { S_CREATED, S_ENTERED, S_EXPIRING, S_EXPIRED, S_EXITED };

#define STATE(s)            ((s)->state & 0xf)
#define SET_STATE(s, v)     ((s)->state = ((s)->state & ~0xf) | (v))
#define ENTRY_CANCELLING(s) ((s)->state >> 4)

static void expire(void *arg)
{
	cr_timeout_scope *s = arg;

	s->timer = cr_handle_unref(s->timer);
	if (STATE(s) != S_ENTERED)
		return;
	SET_STATE(s, S_EXPIRING);
	cr_task_cancel(s->task, NULL);
}

static int arm(cr_timeout_scope *s)
{
	cr_loop *loop = s->task->loop;

	if (isinf(s->deadline) && s->deadline > 0)
		return 0; /* no deadline */
	/* Already due: expire before the task's next step (asyncio). */
	if (s->deadline <= cr_loop_time(loop))
		return cr_call_soon(loop, expire, s, &s->timer);
	return cr_call_at(loop, s->deadline, expire, s, &s->timer);
}

int cr_timeout_enter_at(cr_timeout_scope *s, double when)
{
	cr_task *t = cr_current_task();
	int rc;

	if (!s || isnan(when))
		return cr__error(-EINVAL, "cr_timeout_enter: bad argument");
	if (!t)
		return cr__error(-EPERM, "Timeout should be used inside a task");
	s->task = t;
	s->timer = NULL;
	s->deadline = when;
	s->state = (cr_task_cancelling(t) << 4) | S_ENTERED;
	if ((rc = arm(s)) < 0) {
		s->state = S_CREATED;
		return rc;
	}
	return 0;
}

int cr_timeout_enter(cr_timeout_scope *s, double delay)
{
	cr_task *t = cr_current_task();

	if (!t)
		return cr__error(-EPERM, "Timeout should be used inside a task");
	if (isnan(delay))
		return cr__error(-EINVAL, "cr_timeout_enter: delay is NaN");
	return cr_timeout_enter_at(s, cr_loop_time(t->loop) + delay);
}

void cr_timeout_reschedule(cr_timeout_scope *s, double when)
{
	if (!s || STATE(s) != S_ENTERED || isnan(when))
		return;
	if (s->timer) {
		cr_handle_cancel(s->timer);
		s->timer = cr_handle_unref(s->timer);
	}
	s->deadline = when;
	if (arm(s) < 0) {
		/* Out of memory re-arming: expire now rather than never. */
		SET_STATE(s, S_EXPIRING);
		cr_task_cancel(s->task, NULL);
	}
}

int cr_timeout_exit(cr_timeout_scope *s, int rc)
{
	if (!s)
		return rc;
	if (s->timer) {
		cr_handle_cancel(s->timer);
		s->timer = cr_handle_unref(s->timer);
	}
	if (STATE(s) == S_EXPIRING) {
		SET_STATE(s, S_EXPIRED);
		if (cr_task_uncancel(s->task) <= ENTRY_CANCELLING(s) && rc == -ECANCELED)
			rc = -ETIMEDOUT;
	} else if (STATE(s) == S_ENTERED) {
		SET_STATE(s, S_EXITED);
	}
	return rc;
}

bool cr_timeout_expired(const cr_timeout_scope *s)
{
	return s && (STATE(s) == S_EXPIRING || STATE(s) == S_EXPIRED);
}
