/*
 * agen.c — async generators (async def ... yield, with asend/aclose and
 * loop.shutdown_asyncgens).
 *
 * The body runs as a task of its own (its own stack), spawned at the first
 * cr_agen_next() in the consumer's context: by default IN the consumer's
 * current context cell, like a Python async generator whose steps run in
 * the awaiting task's context.  Values change hands by parking:
 *
 *   consumer: next() ── wake body ──▶ park ............ ◀── woken ── value
 *   body:     ........ ◀── woken ── runs ── yield(v): wake consumer, park
 *
 * cr_agen_yield() finds its generator from the current task through the
 * loop's registry (CR__SLOT_AGENS), which also lists every started,
 * unfinished generator for cr_loop_shutdown_asyncgens().  The registry
 * remembers the last generator found, so a yield loop costs one compare.
 *
 * Reference counting: the registry holds one reference on a registered
 * generator until its body ended, so a generator dropped by its owner
 * while suspended stays alive to be closed: like asyncio's finalizer hook,
 * dropping the last user reference of a suspended generator schedules its
 * aclose() on the loop.
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum {
	G_NEW,       /* body not started */
	G_RUNNING,   /* body running (between yields) */
	G_SUSPENDED, /* body parked in cr_agen_yield */
	G_CLOSING,   /* aclose requested, body running its cleanup */
	G_DONE,      /* body returned */
};

struct registry {
	cr_agen *head;
	cr_agen *last;       /* last generator found by task (yield fast path) */
	cr_agen *finalizing; /* generators with a finalizer task pending */
};

struct cr_agen {
	unsigned refs;
	int state;
	cr_fn fn;
	void *arg;
	char *name;      /* NULL: "agen-N" made at start */
	cr_context *ctx; /* reference, or NULL: consumer's current */
	size_t stack_size;
	cr_loop *loop;        /* set when started */
	cr_task *task;        /* body task (reference) */
	cr_task *consumer;    /* task parked in next/aclose, or NULL */
	void *value;          /* last yielded value */
	bool has_value;       /* a yield happened since the last next() */
	int result;           /* the body's return code */
	bool result_reported; /* a negative result was returned once */
	bool registered;
	bool finalizing;              /* an aclose task was scheduled by unref */
	cr_agen *prev, *next;         /* registry links */
	cr_agen *fin_prev, *fin_next; /* registry->finalizing links */
};

/* Process-wide, like the task counter: loops in several threads number
 * their generators from it. */
static atomic_uint agen_counter;

/* ------------------------------------------------------------- registry */

static struct registry *registry_get(cr_loop *loop, bool create)
{
	struct registry *reg = cr__loop_slot(loop, CR__SLOT_AGENS);

	if (reg || !create)
		return reg;
	reg = cr__calloc(1, sizeof(*reg));
	if (reg)
		cr__loop_set_slot(loop, CR__SLOT_AGENS, reg);
	return reg;
}

static void agen_free(cr_agen *g)
{
	cr_task_unref(g->task);
	cr_context_unref(g->ctx);
	free(g->name);
	free(g);
}

cr_agen *cr_agen_ref(cr_agen *g)
{
	if (g)
		g->refs++;
	return g;
}

static void registry_remove(cr_agen *g)
{
	struct registry *reg;

	if (!g->registered)
		return;
	reg = g->loop ? registry_get(g->loop, false) : NULL;
	if (reg) {
		if (g->prev)
			g->prev->next = g->next;
		else
			reg->head = g->next;
		if (g->next)
			g->next->prev = g->prev;
		if (reg->last == g)
			reg->last = NULL;
	}
	g->prev = g->next = NULL;
	g->registered = false;
	g->loop = NULL; /* never looked at again: the loop may close */
	cr_agen_unref(g);
}

static cr_agen *registry_find(cr_task *t)
{
	cr_loop *loop = cr_loop_current();
	struct registry *reg = loop ? registry_get(loop, false) : NULL;

	if (!reg || !t)
		return NULL;
	if (reg->last && reg->last->task == t)
		return reg->last;
	for (cr_agen *g = reg->head; g; g = g->next) {
		if (g->task == t) {
			reg->last = g;
			return g;
		}
	}
	return NULL;
}

bool cr__agen_is_body(cr_task *t)
{
	struct registry *reg = t ? registry_get(cr_task_loop(t), false) : NULL;

	if (!reg)
		return false;
	for (cr_agen *g = reg->head; g; g = g->next)
		if (g->task == t)
			return true;
	return false;
}

/* --------------------------------------------------------------- body */

static int body_main(void *arg, void **ret_value)
{
	cr_agen *g = arg;
	cr_task *c;
	int r;

	(void)ret_value;
	r = g->fn(g->arg, &g->value);
	g->result = r;
	g->state = G_DONE;
	g->has_value = false;
	c = g->consumer;
	g->consumer = NULL;
	if (c)
		cr__task_wake(c, 0);
	/* Last: this may drop the final reference. */
	registry_remove(g);
	/* The body's own failure is reported through next()/aclose(), not as
	 * a task error nobody retrieved. */
	return 0;
}

static int agen_start(cr_agen *g)
{
	cr_spawn_opts so;
	struct registry *reg;
	char namebuf[32];
	int r;

	g->loop = cr_loop_current();
	reg = registry_get(g->loop, true);
	if (!reg)
		return cr__error(-ENOMEM, "out of memory starting an async generator");
	if (!g->name) {
		snprintf(namebuf, sizeof(namebuf), "agen-%u",
			 atomic_fetch_add_explicit(&agen_counter, 1, memory_order_relaxed) + 1);
		g->name = cr__strdup(namebuf);
		if (!g->name)
			return cr__error(-ENOMEM, "out of memory starting an async generator");
	}
	memset(&so, 0, sizeof(so));
	so.size = sizeof(so);
	so.name = g->name;
	so.context = g->ctx ? g->ctx : cr_context_current();
	so.stack_size = g->stack_size;
	r = cr_spawn(body_main, g, &so, &g->task);
	if (r < 0)
		return r;
	g->state = G_RUNNING;
	g->registered = true;
	g->refs++; /* the registry's */
	g->prev = NULL;
	g->next = reg->head;
	if (reg->head)
		reg->head->prev = g;
	reg->head = g;
	return 0;
}

int cr_agen_new(cr_fn fn, void *arg, const cr_spawn_opts *opts, cr_agen **ret_gen)
{
	cr_agen *g;

	if (!fn || !ret_gen)
		return cr__error(-EINVAL, "cr_agen_new: NULL argument");
	g = cr__calloc(1, sizeof(*g));
	if (!g)
		return cr__error(-ENOMEM, "out of memory creating an async generator");
	g->refs = 1;
	g->fn = fn;
	g->arg = arg;
	g->state = G_NEW;
	if (opts && opts->name) {
		g->name = cr__strdup(opts->name);
		if (!g->name) {
			free(g);
			return cr__error(-ENOMEM, "out of memory creating an async generator");
		}
	}
	if (opts) {
		g->ctx = cr_context_ref(opts->context);
		g->stack_size = opts->stack_size;
	}
	*ret_gen = g;
	return 0;
}

/* Body side: the consumer cancelled while it waited for our yield to be
 * taken; nothing to forget (the consumer pointer belongs to next()). */
static void body_on_cancel(void *arg) { (void)arg; }

int cr_agen_yield(void *value)
{
	cr_task *self = cr_current_task();
	cr_agen *g;
	cr_task *c;

	if (!self)
		return cr__error(-EPERM, "cr_agen_yield() outside a coroutine");
	g = registry_find(self);
	if (!g)
		return cr__error(-EPERM, "cr_agen_yield() outside an async generator body");
	if (g->state == G_CLOSING)
		/* Yielding during cleanup (Python: "async generator ignored
		 * GeneratorExit"): refuse again, the body must return. */
		return cr__error(-ESHUTDOWN, "async generator is closing");
	g->value = value;
	g->state = G_SUSPENDED;
	c = g->consumer;
	g->consumer = NULL;
	/* has_value stays set until a next() takes the value. */
	g->has_value = true;
	if (c)
		cr__task_wake(c, 0);
	/* Woken by next() with 0, by aclose() with -ESHUTDOWN; cancelled
	 * (the consumer was) gives -ECANCELED. */
	return cr__task_park(body_on_cancel, g);
}

/* -------------------------------------------------------------- consumer */

/* Consumer side: cancelled while waiting; forget it so the body's next
 * yield does not wake a task that moved on.  next() then cancels the body
 * at its current await (its yield, or whatever it awaits). */
static void consumer_on_cancel(void *arg)
{
	cr_agen *g = arg;

	g->consumer = NULL;
}

/* Result of a finished generator for next(): its failure once, then
 * -ENODATA. */
static int done_result(cr_agen *g)
{
	/* -ECANCELED already reached the consumer whose cancellation ended
	 * the body; later calls see an exhausted generator. */
	if (g->result < 0 && g->result != -ESHUTDOWN && g->result != -ECANCELED &&
	    !g->result_reported) {
		g->result_reported = true;
		return g->result;
	}
	return -ENODATA;
}

int cr_agen_next(cr_agen *g, void **ret_value)
{
	cr_task *self = cr_current_task();
	int r;

	if (!g)
		return cr__error(-EINVAL, "cr_agen_next: generator is NULL");
	if (!self)
		return cr__error(-EPERM, "cr_agen_next() must be called from a coroutine");
	if (g->consumer)
		return cr__error(-EBUSY, "anext(): asynchronous generator is already running");
	switch (g->state) {
	case G_DONE:
		return done_result(g);
	case G_CLOSING:
		return cr__error(-EBUSY, "anext(): asynchronous generator is being closed");
	case G_NEW:
		r = agen_start(g);
		if (r < 0)
			return r;
		break;
	case G_SUSPENDED:
		if (g->has_value) {
			/* Yielded while nobody waited (its consumer had been
			 * cancelled): that value is the next one. */
			g->has_value = false;
			if (ret_value)
				*ret_value = g->value;
			return 0;
		}
		g->state = G_RUNNING;
		g->has_value = false;
		cr__task_wake(g->task, 0);
		break;
	case G_RUNNING:
		/* The body is between yields (a previous consumer was
		 * cancelled): wait for its next yield. */
		break;
	}
	cr_agen_ref(g);
	g->consumer = self;
	r = cr__task_park(consumer_on_cancel, g);
	if (g->consumer == self)
		g->consumer = NULL;
	if (r == -ECANCELED) {
		if (g->task && !cr_task_done(g->task) && g->state != G_DONE)
			cr_task_cancel(g->task, NULL);
		cr_agen_unref(g);
		return r;
	}
	if (g->state == G_SUSPENDED && g->has_value) {
		g->has_value = false;
		if (ret_value)
			*ret_value = g->value;
		cr_agen_unref(g);
		return 0;
	}
	r = g->state == G_DONE ? done_result(g) : (r < 0 ? r : -EAGAIN);
	cr_agen_unref(g);
	return r;
}

/* Ask the body to close, without waiting.  Returns true when there is a
 * body to wait for. */
static bool begin_close(cr_agen *g)
{
	switch (g->state) {
	case G_NEW:
		g->state = G_DONE;
		g->result = 0;
		return false;
	case G_DONE:
		return false;
	case G_SUSPENDED:
		g->state = G_CLOSING;
		cr__task_wake(g->task, -ESHUTDOWN);
		return true;
	case G_RUNNING:
		/* Between yields with no consumer: its next yield gets
		 * -ESHUTDOWN at once. */
		g->state = G_CLOSING;
		return true;
	case G_CLOSING:
		return true;
	}
	return false;
}

/* Wait until the body returned; its code (a clean -ESHUTDOWN return is 0).
 * A cancellation of the waiter is passed on to the body, and the waiter
 * still waits for the body to end, as a task awaiting aclose() in asyncio
 * does (the CancelledError is thrown into the generator): a cleanup error
 * then replaces the cancellation instead of being lost, and -ECANCELED is
 * returned only when the cleanup ended cleanly or cancelled. */
static int wait_closed(cr_agen *g)
{
	cr_task *self = cr_current_task();
	bool cancelled = false;
	int r;

	while (g->state != G_DONE) {
		if (g->consumer && g->consumer != self) {
			/* Another task's next() is being cancelled (shutdown):
			 * let it go first. */
			r = cr_yield();
			if (r == -ECANCELED)
				return r;
			continue;
		}
		g->consumer = self;
		r = cr__task_park(consumer_on_cancel, g);
		if (g->consumer == self)
			g->consumer = NULL;
		if (r == -ECANCELED && !cancelled) {
			/* The closer was cancelled: so is the cleanup. */
			cancelled = true;
			if (g->task && !cr_task_done(g->task) && g->state != G_DONE)
				cr_task_cancel(g->task, NULL);
		}
	}
	if (g->result == -ESHUTDOWN || g->result == -ECANCELED || g->result_reported)
		return cancelled ? -ECANCELED : 0;
	g->result_reported = true;
	return g->result;
}

int cr_agen_aclose(cr_agen *g)
{
	int r;

	if (!g)
		return cr__error(-EINVAL, "cr_agen_aclose: generator is NULL");
	if (g->state == G_NEW || g->state == G_DONE) {
		begin_close(g);
		return 0;
	}
	if (!cr_current_task())
		return cr__error(-EPERM, "cr_agen_aclose() must be called from a coroutine");
	if (g->consumer)
		return cr__error(-EBUSY, "aclose(): asynchronous generator is already running");
	cr_agen_ref(g);
	begin_close(g);
	r = wait_closed(g);
	cr_agen_unref(g);
	return r;
}

static void report_close_error(cr_loop *loop, cr_agen *g, int err)
{
	char msg[256];
	cr_error_report rep = {.message = msg, .error = err, .task = g->task};

	snprintf(msg, sizeof(msg), "an error occurred during closing of asynchronous generator %s",
		 g->name ? g->name : "(unnamed)");
	cr_loop_call_exception_handler(loop, &rep);
}

static void fin_unlink(struct registry *reg, cr_agen *g)
{
	if (g->fin_prev)
		g->fin_prev->fin_next = g->fin_next;
	else
		reg->finalizing = g->fin_next;
	if (g->fin_next)
		g->fin_next->fin_prev = g->fin_prev;
	g->fin_prev = g->fin_next = NULL;
}

/* The finalizer: closes a generator its owner dropped while suspended.
 * It holds a reference listed in registry->finalizing, so that a loop
 * closed before the finalizer ends can drop it. */
static int finalize_main(void *arg, void **ret_value)
{
	cr_agen *g = arg;
	cr_loop *loop = cr_loop_current();
	struct registry *reg = registry_get(loop, false);
	int r;

	(void)ret_value;
	begin_close(g);
	r = wait_closed(g);
	if (r < 0 && r != -ECANCELED && r != -EBUSY)
		report_close_error(loop, g, r);
	if (reg)
		fin_unlink(reg, g);
	cr_agen_unref(g);
	return 0;
}

cr_agen *cr_agen_unref(cr_agen *g)
{
	if (!g)
		return NULL;
	if (--g->refs == 0) {
		agen_free(g);
		return NULL;
	}
	/* Only the registry holds it now: the owner dropped a live generator.
	 * Close it from the loop, like asyncio's finalizer hook. */
	if (g->refs == 1 && g->registered && !g->finalizing && g->state != G_DONE && !g->consumer &&
	    g->loop && !cr_loop_is_closed(g->loop)) {
		cr_spawn_opts so = {.size = sizeof(so), .name = "agen-finalizer"};
		struct registry *reg = registry_get(g->loop, false);
		cr_task *t;

		if (reg && cr_loop_spawn(g->loop, finalize_main, g, &so, &t) == 0) {
			cr_task_unref(t);
			g->finalizing = true;
			g->refs++;
			g->fin_prev = NULL;
			g->fin_next = reg->finalizing;
			if (reg->finalizing)
				reg->finalizing->fin_prev = g;
			reg->finalizing = g;
		}
	}
	return NULL;
}

int cr_loop_shutdown_asyncgens(cr_loop *loop)
{
	struct registry *reg;
	cr_agen **list;
	size_t n = 0, i;

	if (!loop)
		return cr__error(-EINVAL, "cr_loop_shutdown_asyncgens: loop is NULL");
	if (cr_loop_current() != loop || !cr_current_task())
		return cr__error(-EPERM, "cr_loop_shutdown_asyncgens() must be called from a "
					 "coroutine on that loop");
	reg = registry_get(loop, false);
	if (!reg || !reg->head)
		return 0;
	for (cr_agen *g = reg->head; g; g = g->next)
		n++;
	list = cr__malloc(n * sizeof(*list));
	if (!list)
		return cr__error(-ENOMEM, "out of memory closing async generators");
	i = 0;
	for (cr_agen *g = reg->head; g; g = g->next)
		list[i++] = cr_agen_ref(g);
	/* Ask all first, then wait: cleanups run concurrently (asyncio
	 * gathers the aclose() calls). */
	for (i = 0; i < n; i++) {
		if (list[i]->consumer)
			/* Someone is waiting on it: cancel that step first. */
			cr_task_cancel(list[i]->consumer, NULL);
		begin_close(list[i]);
	}
	for (i = 0; i < n; i++) {
		int r = wait_closed(list[i]);

		if (r == -ECANCELED) {
			for (; i < n; i++)
				cr_agen_unref(list[i]);
			free(list);
			return r;
		}
		if (r < 0)
			report_close_error(loop, list[i], r);
		cr_agen_unref(list[i]);
	}
	free(list);
	return 0;
}

void cr__agen_loop_closed(cr_loop *loop)
{
	struct registry *reg = registry_get(loop, false);

	if (!reg)
		return;
	/* Generators still registered never got closed: drop the registry's
	 * references; their bodies die with the loop's tasks. */
	while (reg->head) {
		cr_agen *g = reg->head;

		reg->head = g->next;
		if (g->next)
			g->next->prev = NULL;
		g->prev = g->next = NULL;
		g->registered = false;
		g->state = G_DONE;
		g->loop = NULL;
		cr_agen_unref(g);
	}
	/* Finalizer tasks never run again once the loop closes: drop the
	 * references they held. */
	while (reg->finalizing) {
		cr_agen *g = reg->finalizing;

		fin_unlink(reg, g);
		cr_agen_unref(g);
	}
	cr__loop_set_slot(loop, CR__SLOT_AGENS, NULL);
	free(reg);
}
