/*
 * context.c — context variables (Python's contextvars).
 *
 * A cr_context is a mutable CELL pointing to an immutable-when-shared,
 * refcounted MAP from variable ids to values:
 *
 *   - copy: a new cell sharing the map (map refcount + 1), O(1);
 *   - set: when the map is referenced by this cell only (refcount 1) it is
 *     changed in place; otherwise it is cloned first (copy-on-write), so a
 *     copy never sees a later set of its original and vice versa;
 *   - a task given a context runs IN that cell, so tasks sharing a cell see
 *     each other's sets (the runner's shared context).
 *
 * The map is a sorted array of (variable id, value), not a HAMT.  The
 * trade-off: a HAMT gives O(log32 n) set on a shared map, the array O(n)
 * (the clone); but programs hold a handful of variables (n < 16 is the
 * norm), where the array is one allocation, is cache friendly, and a
 * lookup is a couple of loads and compares.  A clone only happens on the
 * first set after a copy; later sets are in place.  For the same reason
 * there is no per-variable lookup cache: with a few entries the search is
 * already as cheap as a cache probe, and a cache on the (shared, any
 * thread) variable object would need cross-thread synchronisation.
 *
 * Thread model: a context is used by one thread at a time (like Python,
 * which refuses to enter one context in two threads), but copies of one
 * context may live on several threads, so the refcounts are atomic.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct ctxent {
	uint64_t id;
	void *value;
};

struct ctxmap {
	atomic_uint refs;
	uint32_t n, cap;
	struct ctxent e[];
};

struct cr_context {
	atomic_uint refs;
	unsigned entered;   /* nesting of cr_context_run() on this cell */
	struct ctxmap *map; /* NULL: empty */
};

struct cr_ctxvar {
	uint64_t id; /* unique, never reused: a freed var's stale
	              * entries can never match another var */
	bool has_default;
	void *default_value;
	char name[];
};

struct cr_ctxtoken {
	cr_ctxvar *var;
	cr_context *ctx; /* reference: the context the set happened in */
	bool used;
	bool had_value;
	void *old_value;
};

/* initial-exec: the current context is read on every get; the dynamic TLS
 * model would add a __tls_get_addr call.  8 bytes of static TLS. */
__thread cr_context *cr__tls_context __attribute__((tls_model("initial-exec")));
static __thread cr_context *tls_base;

static atomic_uint_fast64_t next_var_id = 1;

static pthread_key_t base_key;
static pthread_once_t base_once = PTHREAD_ONCE_INIT;

static void base_destroy(void *p)
{
	cr_context *ctx = p;

	if (cr__tls_context == ctx)
		cr__tls_context = NULL;
	tls_base = NULL;
	cr_context_unref(ctx);
}

static void base_key_init(void)
{
	/* Failure leaves the key unusable; the base then simply lives until
	 * process exit (a thread's base is never freed early). */
	(void)pthread_key_create(&base_key, base_destroy);
}

/* Free the main thread's base context at exit (thread-specific data
 * destructors do not run for the main thread), so leak checkers stay
 * quiet. */
__attribute__((destructor)) static void base_fini(void)
{
	if (tls_base) {
		cr_context *ctx = tls_base;

		tls_base = NULL;
		if (cr__tls_context == ctx)
			cr__tls_context = NULL;
		cr_context_unref(ctx);
	}
}

/* ------------------------------------------------------------------ maps */

static struct ctxmap *map_alloc(uint32_t cap)
{
	struct ctxmap *m = cr__malloc(sizeof(*m) + (size_t)cap * sizeof(struct ctxent));

	if (!m)
		return NULL;
	atomic_init(&m->refs, 1);
	m->n = 0;
	m->cap = cap;
	return m;
}

static void map_unref(struct ctxmap *m)
{
	if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
		free(m);
}

/* Index of id, or the insertion point encoded as -(pos + 1). */
static inline long map_find(const struct ctxmap *m, uint64_t id)
{
	uint32_t lo = 0, hi = m->n;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;

		if (m->e[mid].id < id)
			lo = mid + 1;
		else if (m->e[mid].id > id)
			hi = mid;
		else
			return mid;
	}
	return -(long)lo - 1;
}

/* Make ctx->map private to ctx (refcount 1) with room for one more entry.
 * -ENOMEM leaves ctx unchanged. */
static int map_make_writable(cr_context *ctx, bool grow)
{
	struct ctxmap *m = ctx->map, *c;
	uint32_t need = (m ? m->n : 0) + (grow ? 1 : 0);

	if (m && atomic_load_explicit(&m->refs, memory_order_acquire) == 1 && m->cap >= need)
		return 0;
	if (m && atomic_load_explicit(&m->refs, memory_order_acquire) == 1) {
		uint32_t cap = m->cap ? m->cap * 2 : 4;

		c = cr__realloc(m, sizeof(*m) + (size_t)cap * sizeof(struct ctxent));
		if (!c)
			return -ENOMEM;
		c->cap = cap;
		ctx->map = c;
		return 0;
	}
	c = map_alloc(need < 4 ? 4 : need + need / 2);
	if (!c)
		return -ENOMEM;
	if (m) {
		memcpy(c->e, m->e, (size_t)m->n * sizeof(struct ctxent));
		c->n = m->n;
	}
	ctx->map = c;
	map_unref(m);
	return 0;
}

static int ctx_put(cr_context *ctx, uint64_t id, void *value)
{
	long i = ctx->map ? map_find(ctx->map, id) : -1;
	int r = map_make_writable(ctx, i < 0);
	struct ctxmap *m;

	if (r < 0)
		return r;
	m = ctx->map;
	if (i >= 0) {
		m->e[i].value = value;
		return 0;
	}
	i = -i - 1;
	memmove(&m->e[i + 1], &m->e[i], (size_t)(m->n - i) * sizeof(struct ctxent));
	m->e[i].id = id;
	m->e[i].value = value;
	m->n++;
	return 0;
}

static int ctx_del(cr_context *ctx, uint64_t id)
{
	long i = ctx->map ? map_find(ctx->map, id) : -1;
	struct ctxmap *m;
	int r;

	if (i < 0)
		return 0;
	r = map_make_writable(ctx, false);
	if (r < 0)
		return r;
	m = ctx->map;
	memmove(&m->e[i], &m->e[i + 1], (size_t)(m->n - i - 1) * sizeof(struct ctxent));
	m->n--;
	return 0;
}

static inline bool ctx_lookup(const cr_context *ctx, uint64_t id, void **ret_value)
{
	const struct ctxmap *m = ctx->map;
	long i;

	if (!m)
		return false;
	/* The common case: few entries, the first probe hits. */
	if (m->n == 1) {
		if (m->e[0].id != id)
			return false;
		*ret_value = m->e[0].value;
		return true;
	}
	i = map_find(m, id);
	if (i < 0)
		return false;
	*ret_value = m->e[i].value;
	return true;
}

/* -------------------------------------------------------------- contexts */

static cr_context *ctx_alloc(struct ctxmap *map)
{
	cr_context *ctx = cr__malloc(sizeof(*ctx));

	if (!ctx)
		return NULL;
	atomic_init(&ctx->refs, 1);
	ctx->entered = 0;
	ctx->map = map;
	return ctx;
}

cr_context *cr__context_base(void)
{
	cr_context *ctx = tls_base;

	if (ctx)
		return ctx;
	ctx = ctx_alloc(NULL);
	if (!ctx)
		return NULL;
	pthread_once(&base_once, base_key_init);
	(void)pthread_setspecific(base_key, ctx);
	tls_base = ctx;
	return ctx;
}

/* The current context, creating the base one if needed (NULL only when
 * that allocation fails). */
static inline cr_context *current(void)
{
	cr_context *ctx = cr__tls_context;

	if (__builtin_expect(ctx != NULL, 1))
		return ctx;
	ctx = cr__context_base();
	cr__tls_context = ctx;
	return ctx;
}

cr_context *cr_context_current(void) { return current(); }

int cr_context_new(cr_context **ret_ctx)
{
	cr_context *ctx;

	if (!ret_ctx)
		return cr__error(-EINVAL, "cr_context_new: ret_ctx is NULL");
	ctx = ctx_alloc(NULL);
	if (!ctx)
		return cr__error(-ENOMEM, "out of memory creating a context");
	*ret_ctx = ctx;
	return 0;
}

int cr_context_copy(const cr_context *ctx, cr_context **ret_ctx)
{
	cr_context *c;

	if (!ctx || !ret_ctx)
		return cr__error(-EINVAL, "cr_context_copy: NULL argument");
	c = ctx_alloc(ctx->map);
	if (!c)
		return cr__error(-ENOMEM, "out of memory copying a context");
	if (ctx->map)
		atomic_fetch_add_explicit(&ctx->map->refs, 1, memory_order_relaxed);
	*ret_ctx = c;
	return 0;
}

int cr_context_copy_current(cr_context **ret_ctx)
{
	cr_context *ctx = current();

	if (!ctx)
		return cr__error(-ENOMEM, "out of memory creating the base context");
	return cr_context_copy(ctx, ret_ctx);
}

cr_context *cr_context_ref(cr_context *ctx)
{
	if (ctx)
		atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
	return ctx;
}

cr_context *cr_context_unref(cr_context *ctx)
{
	if (ctx && atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) == 1) {
		map_unref(ctx->map);
		free(ctx);
	}
	return NULL;
}

int cr_context_get(const cr_context *ctx, const cr_ctxvar *var, void **ret_value)
{
	void *v;

	if (!ctx || !var)
		return cr__error(-EINVAL, "cr_context_get: NULL argument");
	if (ctx_lookup(ctx, var->id, &v)) {
		if (ret_value)
			*ret_value = v;
		return 0;
	}
	if (!var->has_default)
		return cr__error(-ENOENT, "context variable '%s' is not set", var->name);
	if (ret_value)
		*ret_value = var->default_value;
	return 0;
}

size_t cr_context_size(const cr_context *ctx) { return ctx && ctx->map ? ctx->map->n : 0; }

int cr_context_run(cr_context *ctx, int (*fn)(void *arg), void *arg)
{
	cr_context *prev;
	int r;

	if (!ctx || !fn)
		return cr__error(-EINVAL, "cr_context_run: NULL argument");
	prev = current();
	/* Like Context.run(): entering a context that is already entered (by
	 * an enclosing run, or because it is the current one) is refused. */
	if (ctx->entered || ctx == prev)
		return cr__error(-EBUSY, "cannot enter context: it is already entered");
	ctx->entered++;
	cr_context_ref(ctx);
	cr__tls_context = ctx;
	r = fn(arg);
	cr__tls_context = prev;
	ctx->entered--;
	cr_context_unref(ctx);
	return r;
}

/* ------------------------------------------------------------- variables */

int cr_ctxvar_new(const char *name, bool has_default, void *default_value, cr_ctxvar **ret_var)
{
	cr_ctxvar *v;
	size_t len;

	if (!name || !ret_var)
		return cr__error(-EINVAL, "cr_ctxvar_new: NULL argument");
	len = strlen(name);
	v = cr__malloc(sizeof(*v) + len + 1);
	if (!v)
		return cr__error(-ENOMEM, "out of memory creating a context variable");
	v->id = atomic_fetch_add_explicit(&next_var_id, 1, memory_order_relaxed);
	v->has_default = has_default;
	v->default_value = has_default ? default_value : NULL;
	memcpy(v->name, name, len + 1);
	*ret_var = v;
	return 0;
}

void cr_ctxvar_free(cr_ctxvar *var) { free(var); }

const char *cr_ctxvar_name(const cr_ctxvar *var) { return var ? var->name : NULL; }

/* Everything but the one-entry hit: kept out of line so that the fast
 * path below needs no stack frame. */
static __attribute__((noinline)) int ctxvar_get_slow(const cr_ctxvar *var, void **ret_value)
{
	cr_context *ctx = current();

	if (!ctx)
		return cr__error(-ENOMEM, "out of memory creating the base context");
	if (!var)
		return cr__error(-EINVAL, "cr_ctxvar_get: var is NULL");
	return cr_context_get(ctx, var, ret_value);
}

int cr_ctxvar_get(const cr_ctxvar *var, void **ret_value)
{
	const cr_context *ctx = cr__tls_context;
	const struct ctxmap *m;

	/* Fast path: a current context whose map holds just this variable
	 * (the common shape: few variables, first probe hits). */
	if (__builtin_expect(ctx != NULL, 1) && (m = ctx->map) && m->n == 1 && var &&
	    m->e[0].id == var->id) {
		if (ret_value)
			*ret_value = m->e[0].value;
		return 0;
	}
	return ctxvar_get_slow(var, ret_value);
}

int cr_ctxvar_set(cr_ctxvar *var, void *value, cr_ctxtoken **ret_token)
{
	cr_context *ctx = current();
	cr_ctxtoken *tok = NULL;
	int r;

	if (!var)
		return cr__error(-EINVAL, "cr_ctxvar_set: var is NULL");
	if (!ctx)
		return cr__error(-ENOMEM, "out of memory creating the base context");
	if (ret_token) {
		tok = cr__malloc(sizeof(*tok));
		if (!tok)
			return cr__error(-ENOMEM, "out of memory creating a token");
		tok->var = var;
		tok->ctx = cr_context_ref(ctx);
		tok->used = false;
		tok->old_value = NULL;
		tok->had_value = ctx_lookup(ctx, var->id, &tok->old_value);
	}
	r = ctx_put(ctx, var->id, value);
	if (r < 0) {
		cr_ctxtoken_free(tok);
		return cr__error(r, "out of memory setting context variable '%s'", var->name);
	}
	if (ret_token)
		*ret_token = tok;
	return 0;
}

int cr_ctxvar_reset(cr_ctxvar *var, cr_ctxtoken *token)
{
	cr_context *ctx = current();
	int r;

	if (!var || !token)
		return cr__error(-EINVAL, "cr_ctxvar_reset: NULL argument");
	if (token->used)
		return cr__error(-EINVAL, "token has already been used once");
	if (token->var != var)
		return cr__error(-EINVAL, "token was created by a different context variable");
	if (token->ctx != ctx)
		return cr__error(-EINVAL, "token was created in a different context");
	if (token->had_value)
		r = ctx_put(ctx, var->id, token->old_value);
	else
		r = ctx_del(ctx, var->id);
	if (r < 0)
		return cr__error(r, "out of memory resetting context variable '%s'", var->name);
	token->used = true;
	return 0;
}

void cr_ctxtoken_free(cr_ctxtoken *token)
{
	if (!token)
		return;
	cr_context_unref(token->ctx);
	free(token);
}
