/*
 * store/pg.c — one PostgreSQL connection driven by the loop; see pg.h.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "store/pg.h"

#define BACKOFF_MIN     0.1
#define CONNECT_TIMEOUT 10.0

struct crd_pg {
	char *conninfo;
	char *name;
	char *on_connect; /* SQL run after each connect, or NULL */
	PGconn *conn;
	cr_lock *lock;
	double backoff;  /* s before the next attempt after a failure */
	double next_try; /* monotonic: no connect attempt before */
	crd_pg_notify_fn notify;
	void *notify_arg;
	unsigned gen;       /* connections made so far */
	char last_err[300]; /* why the connection is down ("": it is not) */
};

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int crd_pg_new(const char *conninfo, const char *name, crd_pg **ret)
{
	crd_pg *c = calloc(1, sizeof(*c));
	if (!c || !(c->conninfo = strdup(conninfo)) || !(c->name = strdup(name)) ||
	    cr_lock_new(&c->lock) < 0) {
		if (c) {
			free(c->conninfo);
			free(c->name);
		}
		free(c);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

void crd_pg_reset(crd_pg *c)
{
	if (c->conn)
		PQfinish(c->conn);
	c->conn = NULL;
	c->next_try = 0;
}

unsigned crd_pg_generation(const crd_pg *c) { return c->gen; }

void crd_pg_free(crd_pg *c)
{
	if (!c)
		return;
	crd_pg_reset(c);
	cr_lock_free(c->lock);
	free(c->on_connect);
	free(c->conninfo);
	free(c->name);
	free(c);
}

void crd_pg_on_notify(crd_pg *c, crd_pg_notify_fn fn, void *arg)
{
	c->notify = fn;
	c->notify_arg = arg;
}

void crd_pg_on_connect(crd_pg *c, const char *sql)
{
	free(c->on_connect);
	c->on_connect = sql ? strdup(sql) : NULL;
}

bool crd_pg_connected(const crd_pg *c) { return c->conn && PQstatus(c->conn) == CONNECTION_OK; }

/* Wait for the socket: on the loop inside a task, with poll(2) outside
 * one.  The ready events (CR_READ/CR_WRITE), -ETIMEDOUT or -ECANCELED. */
static int wait_sock(int fd, int events, double deadline)
{
	double left = deadline - mono();
	if (left <= 0)
		return -ETIMEDOUT;
	if (cr_current_task())
		return cr_wait_fd(fd, events, left);
	struct pollfd p = {.fd = fd,
			   .events = (short)(((events & CR_READ) ? POLLIN : 0) |
					     ((events & CR_WRITE) ? POLLOUT : 0))};
	int n = poll(&p, 1, (int)(left * 1000) + 1);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	if (n == 0)
		return -ETIMEDOUT;
	int r = 0;
	if (p.revents & (POLLIN | POLLERR | POLLHUP))
		r |= CR_READ;
	if (p.revents & (POLLOUT | POLLERR | POLLHUP))
		r |= CR_WRITE;
	return r;
}

static void set_err(char *err, size_t errlen, const char *what, const char *msg)
{
	size_t n;
	snprintf(err, errlen, "%s: %s", what, msg && *msg ? msg : "unknown error");
	n = strlen(err); /* libpq's messages end with a newline */
	while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
		err[--n] = '\0';
}

static void fail_conn(crd_pg *c)
{
	crd_pg_reset(c);
	c->backoff = c->backoff ? c->backoff * 2 : BACKOFF_MIN;
	if (c->backoff > CRD_PG_BACKOFF_MAX)
		c->backoff = CRD_PG_BACKOFF_MAX;
	c->next_try = mono() + c->backoff;
}

static int dispatch_notifies(crd_pg *c)
{
	PGnotify *n;
	int count = 0;
	while ((n = PQnotifies(c->conn))) {
		if (c->notify)
			c->notify(c->notify_arg, n->relname, n->extra);
		PQfreemem(n);
		count++;
	}
	return count;
}

static int run_locked(crd_pg *c, const char *sql, int nparams, const char *const *vals,
		      double timeout, PGresult **ret, char *err, size_t errlen);

static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* An idle connection the server closed (it restarted, an administrator
 * ended the session, an idle timeout) has the server's last words and the
 * end of the stream waiting on its socket: found before a statement is
 * sent on it, it is dropped, and the caller connects again at once
 * instead of failing once per connection of the node. */
static void drop_if_closed(crd_pg *c)
{
	int fd = c->conn ? PQsocket(c->conn) : -1;
	if (fd < 0 || PQstatus(c->conn) != CONNECTION_OK)
		return;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, 0) <= 0)
		return;
	char b;
	if (!PQconsumeInput(c->conn) || PQstatus(c->conn) != CONNECTION_OK ||
	    (p.revents & (POLLHUP | POLLERR)) || recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
		crd_pg_reset(c); /* next_try 0: no backoff, the server was not asked yet */
		return;
	}
	dispatch_notifies(c);
}

static int connect_locked(crd_pg *c, double timeout, char *err, size_t errlen)
{
	drop_if_closed(c);
	if (crd_pg_connected(c))
		return 0;
	crd_pg_reset(c);
	if (mono() < c->next_try && cr_current_task()) {
		snprintf(err, errlen, "PostgreSQL: not connected (reconnecting)");
		return -EAGAIN;
	}
	const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
	const char *vals[] = {c->conninfo, c->name, "10", NULL};
	c->conn = PQconnectStartParams(keys, vals, 1);
	if (!c->conn) {
		snprintf(err, errlen, "PostgreSQL: out of memory");
		return -ENOMEM;
	}
	double deadline = mono() + (timeout < CONNECT_TIMEOUT ? timeout : CONNECT_TIMEOUT);
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (PQstatus(c->conn) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
	       st != PGRES_POLLING_FAILED) {
		int fd = PQsocket(c->conn);
		int rc = fd < 0 ? -ECONNREFUSED
				: wait_sock(fd, st == PGRES_POLLING_READING ? CR_READ : CR_WRITE,
					    deadline);
		if (rc < 0) {
			set_err(err, errlen, "cannot connect to PostgreSQL",
				rc == -ETIMEDOUT ? "timed out" : cr_strerror(rc));
			fail_conn(c);
			return rc == -ECANCELED ? rc : -ECONNREFUSED;
		}
		st = PQconnectPoll(c->conn);
	}
	if (PQstatus(c->conn) != CONNECTION_OK) {
		set_err(err, errlen, "cannot connect to PostgreSQL", PQerrorMessage(c->conn));
		fail_conn(c);
		return -ECONNREFUSED;
	}
	/* the server's notices (a FATAL at its shutdown, ...) are not ours
	 * to print: failures come back through the calls */
	PQsetNoticeProcessor(c->conn, quiet, NULL);
	if (PQsetnonblocking(c->conn, 1) != 0) {
		set_err(err, errlen, "PostgreSQL", PQerrorMessage(c->conn));
		fail_conn(c);
		return -ECONNREFUSED;
	}
	if (c->on_connect) {
		int rc = run_locked(c, c->on_connect, -1, NULL, CONNECT_TIMEOUT, NULL, err, errlen);
		if (rc < 0) {
			fail_conn(c);
			return rc == -ECANCELED ? rc : -ECONNREFUSED;
		}
	}
	c->backoff = 0;
	c->gen++;
	return 0;
}

static int map_state(const char *sqlstate)
{
	if (!sqlstate)
		return -EIO;
	if (!strcmp(sqlstate, "23505"))
		return -EEXIST;
	if (!strcmp(sqlstate, "40P01") || !strcmp(sqlstate, "40001"))
		return -EDEADLK; /* deadlock, serialization failure: run it again */
	if (!strncmp(sqlstate, "57P", 3) || !strncmp(sqlstate, "08", 2))
		return -ECONNRESET; /* admin shutdown, connection exceptions */
	return -EIO;
}

static int run_locked(crd_pg *c, const char *sql, int nparams, const char *const *vals,
		      double timeout, PGresult **ret, char *err, size_t errlen)
{
	double deadline = mono() + timeout;
	int rc, fd = PQsocket(c->conn);
	int ok = nparams < 0 ? PQsendQuery(c->conn, sql)
			     : PQsendQueryParams(c->conn, sql, nparams, NULL, vals, NULL, NULL, 0);
	if (!ok)
		goto broken;
	/* send everything; the server may answer (or notify) meanwhile */
	while ((rc = PQflush(c->conn)) == 1) {
		int ev = wait_sock(fd, CR_READ | CR_WRITE, deadline);
		if (ev < 0) {
			rc = ev;
			goto lost;
		}
		if ((ev & CR_READ) && !PQconsumeInput(c->conn))
			goto broken;
	}
	if (rc < 0)
		goto broken;
	PGresult *last = NULL;
	int code = 0;
	for (;;) {
		while (PQisBusy(c->conn)) {
			int ev = wait_sock(fd, CR_READ, deadline);
			if (ev < 0) {
				PQclear(last);
				rc = ev;
				goto lost;
			}
			if (!PQconsumeInput(c->conn)) {
				PQclear(last);
				goto broken;
			}
		}
		PGresult *r = PQgetResult(c->conn);
		if (!r)
			break;
		ExecStatusType s = PQresultStatus(r);
		if ((s == PGRES_FATAL_ERROR || s == PGRES_BAD_RESPONSE) && !code) {
			code = map_state(PQresultErrorField(r, PG_DIAG_SQLSTATE));
			set_err(err, errlen, "PostgreSQL", PQresultErrorMessage(r));
		}
		PQclear(last);
		last = r;
	}
	dispatch_notifies(c);
	if (PQstatus(c->conn) != CONNECTION_OK) {
		PQclear(last);
		goto broken;
	}
	if (code) {
		PQclear(last);
		if (code == -ECONNRESET)
			fail_conn(c);
		return code;
	}
	if (ret)
		*ret = last;
	else
		PQclear(last);
	return 0;
broken:
	set_err(err, errlen, "PostgreSQL connection lost", PQerrorMessage(c->conn));
	fail_conn(c);
	return -ECONNRESET;
lost:
	/* a query left half-way: the connection cannot be used again */
	if (rc == -ETIMEDOUT)
		snprintf(err, errlen, "PostgreSQL did not answer within %g s", timeout);
	else
		snprintf(err, errlen, "PostgreSQL: %s", cr_strerror(rc));
	fail_conn(c);
	return rc;
}

/* Take the connection's lock when inside a task. */
static int take(crd_pg *c) { return cr_current_task() ? cr_lock_acquire(c->lock) : 0; }

static void give(crd_pg *c)
{
	if (cr_current_task())
		cr_lock_release(c->lock);
}

int crd_pg_connect(crd_pg *c, char *err, size_t errlen)
{
	int rc = take(c);
	if (rc < 0)
		return rc;
	rc = connect_locked(c, CONNECT_TIMEOUT, err, errlen);
	give(c);
	return rc;
}

/* After a call: remember why the connection went down (a retry too soon
 * keeps the reason of the failure before it). */
static void note_health(crd_pg *c, int rc, const char *err)
{
	if (crd_pg_connected(c))
		c->last_err[0] = '\0';
	else if (rc < 0 && rc != -EAGAIN && rc != -ECANCELED && err && *err)
		snprintf(c->last_err, sizeof(c->last_err), "%s", err);
}

const char *crd_pg_down(const crd_pg *c)
{
	return !crd_pg_connected(c) && c->last_err[0] ? c->last_err : NULL;
}

int crd_pg_exec(crd_pg *c, const char *sql, int nparams, const char *const *vals, double timeout,
		PGresult **ret, char *err, size_t errlen)
{
	int rc = take(c);
	if (rc < 0)
		return rc;
	if ((rc = connect_locked(c, timeout, err, errlen)) == 0)
		rc = run_locked(c, sql, nparams, vals, timeout, ret, err, errlen);
	note_health(c, rc, err);
	give(c);
	return rc;
}

int crd_pg_wait_notify(crd_pg *c, double timeout, char *err, size_t errlen)
{
	int rc = take(c);
	if (rc < 0)
		return rc;
	if ((rc = connect_locked(c, CONNECT_TIMEOUT, err, errlen)) < 0) {
		give(c);
		return rc;
	}
	if (dispatch_notifies(c) == 0) { /* none buffered: wait for the socket */
		int ev = wait_sock(PQsocket(c->conn), CR_READ, mono() + timeout);
		if (ev == -ECANCELED) {
			give(c);
			return ev;
		}
		if (ev > 0 && !PQconsumeInput(c->conn)) {
			set_err(err, errlen, "PostgreSQL connection lost", PQerrorMessage(c->conn));
			fail_conn(c);
			give(c);
			return -ECONNRESET;
		}
		if (ev > 0)
			dispatch_notifies(c);
	}
	give(c);
	return 0;
}
