/*
 * pg.h — one PostgreSQL connection driven by the loop (store/pg.c).
 *
 * libpq in non-blocking mode: a query is sent, flushed and read back while
 * the calling task waits for the socket (PQsocket) on the loop with
 * cr_wait_fd, so the loop thread never blocks on the network.  Called
 * outside a task (crd_store_close, after the runner closed) the same code
 * waits with poll(2) instead.  One query at a time per connection: tasks
 * take turns through a lock.
 *
 * A connection that fails (the server restarted, a timeout, a query
 * abandoned by a cancelled task) is closed; the next call reconnects, no
 * sooner than its backoff allows (0.1 s doubling up to 5 s), so a dead
 * server costs one quick failure per call, never a hang.  An idle
 * connection the server closed meanwhile is noticed before a statement is
 * sent on it and made again at once.
 */
#ifndef CRUND_STORE_PG_H
#define CRUND_STORE_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "crunner.h"

/* s: the longest wait between two attempts to connect again */
#define CRD_PG_BACKOFF_MAX 5.0

typedef struct crd_pg crd_pg;

/* A notification (LISTEN) seen on the connection. */
typedef void (*crd_pg_notify_fn)(void *arg, const char *channel, const char *payload);

/* A connection to `conninfo` (any libpq connection string or URI); it
 * connects on first use.  name goes into application_name.  0 or
 * -ENOMEM. */
int crd_pg_new(const char *conninfo, const char *name, crd_pg **ret);
void crd_pg_free(crd_pg *c);
void crd_pg_on_notify(crd_pg *c, crd_pg_notify_fn fn, void *arg);
/* Run after each (re)connect, before the first query (LISTEN, session
 * settings).  Its failure fails the connect. */
void crd_pg_on_connect(crd_pg *c, const char *sql);

/* AWAITS (or polls): connect unless connected.  0, or -ECONNREFUSED
 * (with the reason in err), -EAGAIN (backoff: too soon after a failure),
 * -ECANCELED, -ENOMEM. */
int crd_pg_connect(crd_pg *c, char *err, size_t errlen);

/* AWAITS (or polls): run one statement with n text parameters (NULL
 * values are SQL NULL); nparams < 0: a simple query (several statements,
 * no parameters).  *ret (may be NULL) gets the last result, to PQclear.
 * 0, or:
 *   -EEXIST       a unique violation (23505)
 *   -EDEADLK      a deadlock or serialization failure (40P01, 40001): may be
 *                 run again
 *   -ECONNRESET   the connection broke (closed; the next call reconnects)
 *   -ETIMEDOUT    no answer within `timeout` s (connection closed)
 *   -EIO          the statement failed (err has the server's message)
 *   -ECANCELED, -EAGAIN, -ECONNREFUSED, -ENOMEM */
int crd_pg_exec(crd_pg *c, const char *sql, int nparams, const char *const *vals, double timeout,
		PGresult **ret, char *err, size_t errlen);

/* AWAITS: wait up to `timeout` s for a notification (delivered to the
 * on_notify function).  0 (something arrived or the time ran out), or
 * the codes of crd_pg_exec. */
int crd_pg_wait_notify(crd_pg *c, double timeout, char *err, size_t errlen);

bool crd_pg_connected(const crd_pg *c);
/* Why the connection is down, as its last statement or connect failed
 * ("cannot connect to PostgreSQL: ...", "PostgreSQL connection lost:
 * ..."), or NULL while it is up (or was never tried). */
const char *crd_pg_down(const crd_pg *c);
/* How many connections were made: a session-level state (an advisory
 * lock, LISTEN) lives as long as this stays the same. */
unsigned crd_pg_generation(const crd_pg *c);
/* Close the connection (the next call reconnects at once). */
void crd_pg_reset(crd_pg *c);

#endif
