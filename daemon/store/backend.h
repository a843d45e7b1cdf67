/*
 * backend.h — what a store backend provides (store.c drives it).
 *
 * A backend's calls are plain blocking functions: open, load and close run
 * on the loop thread before the daemon serves or after it stopped; commit
 * runs on the store's writer thread (store.c), one at a time, so the loop
 * thread never waits for a disk.  A backend `on_loop` (postgresql) instead
 * awaits inside its calls: store.c runs its commits in a task on the loop
 * (and, outside a task, at close, its calls wait with poll).
 */
#ifndef CRUND_STORE_BACKEND_H
#define CRUND_STORE_BACKEND_H

#include "store/store.h"

/* A row waiting for a commit: a job to write, or (del) one to forget. */
typedef struct crd_store_row {
	crd_store_job job; /* strings live in the same allocation */
	bool del;
	double soft_until; /* crd_store_put_soft: kept out of batches until then */
	struct crd_store_waiter *waiters;
} crd_store_row;

typedef struct crd_store_backend {
	const char *scheme; /* "sqlite", ... */
	bool durable;       /* survives the process (false: memory) */
	bool threaded;      /* commit on the writer thread (false: inline) */
	bool on_loop;       /* commit in a task on the loop (its calls await) */
	bool whole_url;     /* open gets the whole URL, not what follows "scheme:" */
	/* Open what the URL names after "scheme:" (path or connection
	 * string); see crd_store_open for the codes.  *ret_be is the backend's
	 * own state. */
	int (*open)(const char *where, const crd_store_opts *o, void **ret_be, char *err,
		    size_t errlen);
	void (*close)(void *be);
	const char *(*describe)(void *be);
	const char *(*id_prefix)(void *be);
	uint64_t (*max_seq)(void *be);
	int (*load)(void *be, int (*fn)(const crd_store_job *row, void *arg), void *arg);
	/* Write rows in one transaction (n may be 0: a probe that the store
	 * can commit again), and raise the store's highest sequence number to
	 * hi_seq (a job put and deleted before a commit still used its
	 * number).  0, or a negative code with a sentence in err. */
	int (*commit)(void *be, crd_store_row *const *rows, size_t n, uint64_t hi_seq, char *err,
		      size_t errlen);
	/* Shared mode (NULL: not shared); see store.h. */
	const struct crd_store_shared_ops *shared;
} crd_store_backend;

typedef struct crd_store_shared_ops {
	const char *(*node_id)(void *be);
	int (*join)(void *be, const crd_store_node_hooks *h, void *arg);
	void (*leave)(void *be);
	void (*wake)(void *be);
	int (*seq_block)(void *be, uint64_t *ret_lo, uint64_t *ret_hi);
	int (*fetch)(void *be, const char *id, crd_store_rows_fn done, void *arg);
	int (*list)(void *be, unsigned state_mask, const char *plugin, uint64_t before,
		    size_t limit, crd_store_rows_fn done, void *arg);
	int (*cancel)(void *be, uint64_t seq, crd_store_rows_fn done, void *arg);
	const char *(*nodes_json)(void *be);
	/* NULL while the node reaches the database, else why not (its work
	 * connection, used every second, is down); *ret_code the errno. */
	const char *(*health)(void *be, int *ret_code);
} crd_store_shared_ops;

extern const crd_store_backend crd_store_sqlite;
extern const crd_store_backend crd_store_memory;
extern const crd_store_backend crd_store_postgresql;
extern const crd_store_backend crd_store_postgres;

/* A copy of a row (one allocation, strings included); NULL without
 * memory.  For backends that keep rows (memory). */
crd_store_row *crd_store_row_copy(const crd_store_job *j, bool del);
void crd_store_row_free(crd_store_row *r);

/* A new store's job id prefix: 13 random base-32 characters and a NUL
 * (getrandom, else the time and pid mixed). */
void crd_store_new_prefix(char out[14]);

#endif
