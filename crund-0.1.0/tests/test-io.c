/*
 * test-io.c — awaitable I/O: cr_wait_fd on pipes and socketpairs,
 * cr_read / cr_write / cr_write_all, timeouts, cancellation, end of file.
 * Through the public header only.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crunner.h"
#include "testutil.h"

struct fds {
	int fd[2];
};

static void make_pipe(struct fds *p)
{
	ck_assert_int_eq(pipe(p->fd), 0);
	ck_assert_int_eq(cr_fd_set_nonblocking(p->fd[0], true), 0);
	ck_assert_int_eq(cr_fd_set_nonblocking(p->fd[1], true), 0);
}

static void make_socketpair(struct fds *p)
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fd), 0);
}

static void close_fds(struct fds *p)
{
	if (p->fd[0] >= 0)
		close(p->fd[0]);
	if (p->fd[1] >= 0)
		close(p->fd[1]);
}

/* Fill the write side until the kernel refuses more. */
static size_t fill(int fd)
{
	static char junk[65536];
	size_t total = 0;
	ssize_t n;

	while ((n = write(fd, junk, sizeof(junk))) > 0)
		total += (size_t)n;
	ck_assert(n < 0 && errno == EAGAIN);
	return total;
}

/* ------------------------------------------------------ readiness waits */

static int delayed_write_fn(void *arg, void **ret)
{
	struct fds *p = arg;

	(void)ret;
	ck_assert_int_eq(cr_yield(), 0);
	return cr_write_all(p->fd[1], "x", 1);
}

static int drain_fn(void *arg, void **ret)
{
	struct fds *p = arg;
	char buf[65536];

	(void)ret;
	if (cr_read(p->fd[0], buf, sizeof(buf)) <= 0)
		return -EIO;
	while (read(p->fd[0], buf, sizeof(buf)) > 0)
		; /* all of it: a socket is writable again only below half */
	return 0;
}

static int readiness_main(void *arg, void **ret)
{
	struct fds *p = arg;
	cr_task *t;

	(void)ret;
	/* Nothing to read yet: the timeout runs out. */
	ck_assert_int_eq(cr_wait_fd(p->fd[0], CR_READ, 0.01), -ETIMEDOUT);
	/* A writer task makes it readable. */
	ck_assert_int_eq(cr_spawn(delayed_write_fn, p, NULL, &t), 0);
	ck_assert_int_eq(cr_wait_fd(p->fd[0], CR_READ, 10), CR_READ);
	ck_assert_int_eq(cr_task_join(t, NULL), 0);
	cr_task_unref(t);
	/* Writable until full; then only once a reader made room. */
	ck_assert_int_eq(cr_wait_fd(p->fd[1], CR_WRITE, 10), CR_WRITE);
	fill(p->fd[1]);
	ck_assert_int_eq(cr_wait_fd(p->fd[1], CR_WRITE, 0.01), -ETIMEDOUT);
	ck_assert_int_eq(cr_spawn(drain_fn, p, NULL, &t), 0);
	ck_assert_int_eq(cr_wait_fd(p->fd[1], CR_WRITE, 10), CR_WRITE);
	ck_assert_int_eq(cr_task_join(t, NULL), 0);
	cr_task_unref(t);
	return 0;
}

START_TEST(wait_fd_on_pipe_reports_readable_writable_and_timeout)
{
	struct fds p;

	make_pipe(&p);
	ck_assert_int_eq(tu_run(readiness_main, &p, NULL), 0);
	close_fds(&p);
}
END_TEST

START_TEST(wait_fd_on_socketpair_reports_readable_writable_and_timeout)
{
	struct fds p;

	make_socketpair(&p);
	ck_assert_int_eq(tu_run(readiness_main, &p, NULL), 0);
	close_fds(&p);
}
END_TEST

/* ------------------------------------------------------------ cancellation */

struct waiter {
	int fd;
	int events;
	int first, second;
};

static int waiter_fn(void *arg, void **ret)
{
	struct waiter *w = arg;

	(void)ret;
	w->first = cr_wait_fd(w->fd, w->events, -1);
	/* Delivered once: cleanup may await again. */
	w->second = cr_wait_fd(w->fd, w->events, 0.001);
	return w->first;
}

static int cancel_main(void *arg, void **ret)
{
	struct waiter *w = arg;
	cr_task *t;

	(void)ret;
	ck_assert_int_eq(cr_spawn(waiter_fn, w, NULL, &t), 0);
	ck_assert_int_eq(cr_sleep(0.01), 0); /* it is parked in the wait */
	ck_assert_int_eq(cr_task_cancel(t, NULL), 0);
	ck_assert_int_eq(cr_task_join(t, NULL), -ECANCELED);
	cr_task_unref(t);
	return 0;
}

START_TEST(cancel_while_waiting_readable_returns_ecanceled_once)
{
	struct fds p;
	struct waiter w = {0};

	make_pipe(&p);
	w.fd = p.fd[0];
	w.events = CR_READ;
	ck_assert_int_eq(tu_run(cancel_main, &w, NULL), 0);
	ck_assert_int_eq(w.first, -ECANCELED);
	ck_assert_int_eq(w.second, -ETIMEDOUT);
	close_fds(&p);
}
END_TEST

START_TEST(cancel_while_waiting_writable_returns_ecanceled_once)
{
	struct fds p;
	struct waiter w = {0};

	make_socketpair(&p);
	fill(p.fd[1]);
	w.fd = p.fd[1];
	w.events = CR_WRITE;
	ck_assert_int_eq(tu_run(cancel_main, &w, NULL), 0);
	ck_assert_int_eq(w.first, -ECANCELED);
	ck_assert_int_eq(w.second, -ETIMEDOUT);
	close_fds(&p);
}
END_TEST

/* Many cancelled waits in a row: each releases its event (valgrind
 * and ASan see a leak otherwise). */
static int many_cancels_main(void *arg, void **ret)
{
	struct waiter *w = arg;

	(void)ret;
	for (int i = 0; i < 100; i++) {
		cr_task *t;

		ck_assert_int_eq(cr_spawn(waiter_fn, w, NULL, &t), 0);
		ck_assert_int_eq(cr_yield(), 0);
		ck_assert_int_eq(cr_task_cancel(t, NULL), 0);
		ck_assert_int_eq(cr_task_join(t, NULL), -ECANCELED);
		cr_task_unref(t);
	}
	return 0;
}

START_TEST(cancelled_waits_release_their_events)
{
	struct fds p;
	struct waiter w = {0};

	make_pipe(&p);
	w.fd = p.fd[0];
	w.events = CR_READ;
	ck_assert_int_eq(tu_run(many_cancels_main, &w, NULL), 0);
	close_fds(&p);
}
END_TEST

/* ------------------------------------------------------------ read, write */

#define BIG (4u << 20)

struct big {
	struct fds p;
	unsigned char *out, *in;
	size_t got;
	int reads;
};

static int big_reader_fn(void *arg, void **ret)
{
	struct big *b = arg;
	ssize_t n;

	(void)ret;
	while ((n = cr_read(b->p.fd[0], b->in + b->got, BIG + 1 - b->got)) > 0) {
		b->got += (size_t)n;
		b->reads++;
	}
	return (int)n; /* 0 at end of file */
}

static int big_main(void *arg, void **ret)
{
	struct big *b = arg;
	cr_task *r;

	(void)ret;
	ck_assert_int_eq(cr_spawn(big_reader_fn, b, NULL, &r), 0);
	ck_assert_int_eq(cr_write_all(b->p.fd[1], b->out, BIG), 0);
	close(b->p.fd[1]);
	b->p.fd[1] = -1;
	ck_assert_int_eq(cr_task_join(r, NULL), 0);
	cr_task_unref(r);
	return 0;
}

START_TEST(write_all_and_read_move_a_large_buffer_through_a_pipe)
{
	struct big b = {0};

	make_pipe(&b.p);
	b.out = malloc(BIG);
	b.in = malloc(BIG + 1);
	ck_assert_ptr_nonnull(b.out);
	ck_assert_ptr_nonnull(b.in);
	for (size_t i = 0; i < BIG; i++)
		b.out[i] = (unsigned char)(i * 2654435761u >> 13);
	ck_assert_int_eq(tu_run(big_main, &b, NULL), 0);
	ck_assert_uint_eq(b.got, BIG);
	ck_assert(memcmp(b.in, b.out, BIG) == 0);
	/* The pipe holds far less than 4 MiB: the writer had to wait. */
	ck_assert_int_gt(b.reads, 1);
	free(b.out);
	free(b.in);
	close_fds(&b.p);
}
END_TEST

static int eof_main(void *arg, void **ret)
{
	struct fds *p = arg;
	char buf[16];

	(void)ret;
	ck_assert_int_eq(cr_write_all(p->fd[1], "hello", 5), 0);
	close(p->fd[1]);
	p->fd[1] = -1;
	ck_assert_int_eq(cr_read(p->fd[0], buf, sizeof(buf)), 5);
	ck_assert(memcmp(buf, "hello", 5) == 0);
	ck_assert_int_eq(cr_read(p->fd[0], buf, sizeof(buf)), 0);
	ck_assert_int_eq(cr_read(p->fd[0], buf, sizeof(buf)), 0);
	return 0;
}

START_TEST(read_returns_zero_at_end_of_file)
{
	struct fds p;

	make_pipe(&p);
	ck_assert_int_eq(tu_run(eof_main, &p, NULL), 0);
	close_fds(&p);
}
END_TEST

START_TEST(read_returns_zero_when_the_socket_peer_closes)
{
	struct fds p;

	make_socketpair(&p);
	ck_assert_int_eq(tu_run(eof_main, &p, NULL), 0);
	close_fds(&p);
}
END_TEST

static int read_timeout_main(void *arg, void **ret)
{
	struct fds *p = arg;
	cr_timeout_scope s;
	char buf[4];
	int rc;

	(void)ret;
	ck_assert_int_eq(cr_timeout_enter(&s, 0.01), 0);
	rc = (int)cr_read(p->fd[0], buf, sizeof(buf));
	ck_assert_int_eq(cr_timeout_exit(&s, rc), -ETIMEDOUT);
	/* A full pipe: the write times out the same way. */
	fill(p->fd[1]);
	ck_assert_int_eq(cr_timeout_enter(&s, 0.01), 0);
	rc = cr_write_all(p->fd[1], "x", 1);
	ck_assert_int_eq(cr_timeout_exit(&s, rc), -ETIMEDOUT);
	return 0;
}

START_TEST(read_and_write_time_out_in_a_timeout_scope)
{
	struct fds p;

	make_pipe(&p);
	ck_assert_int_eq(tu_run(read_timeout_main, &p, NULL), 0);
	close_fds(&p);
}
END_TEST

static int blocked_writer_fn(void *arg, void **ret)
{
	struct fds *p = arg;
	static char chunk[1 << 20];

	(void)ret;
	return cr_write_all(p->fd[1], chunk, sizeof(chunk));
}

static int cancel_write_main(void *arg, void **ret)
{
	cr_task *t;

	(void)ret;
	ck_assert_int_eq(cr_spawn(blocked_writer_fn, arg, NULL, &t), 0);
	ck_assert_int_eq(cr_sleep(0.01), 0);
	ck_assert(!cr_task_done(t));
	ck_assert_int_eq(cr_task_cancel(t, NULL), 0);
	ck_assert_int_eq(cr_task_join(t, NULL), -ECANCELED);
	cr_task_unref(t);
	return 0;
}

START_TEST(cancel_stops_a_write_all_blocked_on_a_full_pipe)
{
	struct fds p;

	make_pipe(&p);
	ck_assert_int_eq(tu_run(cancel_write_main, &p, NULL), 0);
	close_fds(&p);
}
END_TEST

static int epipe_main(void *arg, void **ret)
{
	struct fds *p = arg;

	(void)ret;
	close(p->fd[0]);
	p->fd[0] = -1;
	ck_assert_int_eq(cr_write_all(p->fd[1], "x", 1), -EPIPE);
	ck_assert_int_eq(cr_read(-1, NULL, 0), -EBADF);
	ck_assert_int_eq(cr_write(-1, "x", 1), -EBADF);
	ck_assert_int_eq(cr_read(p->fd[1], NULL, 4), -EINVAL);
	return 0;
}

START_TEST(write_to_a_closed_pipe_is_epipe_and_bad_arguments_are_refused)
{
	struct fds p;
	char c;

	signal(SIGPIPE, SIG_IGN);
	make_pipe(&p);
	ck_assert_int_eq(tu_run(epipe_main, &p, NULL), 0);
	close_fds(&p);
	/* Outside a task. */
	ck_assert_int_eq(cr_read(0, &c, 1), -EPERM);
	ck_assert_int_eq(cr_write(1, &c, 1), -EPERM);
	ck_assert_int_eq(cr_write_all(1, &c, 1), -EPERM);
	ck_assert_int_eq(cr_fd_set_nonblocking(-1, true), -EBADF);
}
END_TEST

START_TEST(set_nonblocking_sets_and_clears_the_flag)
{
	int fd[2];

	ck_assert_int_eq(pipe(fd), 0);
	ck_assert_int_eq(cr_fd_set_nonblocking(fd[0], true), 0);
	ck_assert(fcntl(fd[0], F_GETFL) & O_NONBLOCK);
	ck_assert_int_eq(cr_fd_set_nonblocking(fd[0], true), 0);
	ck_assert_int_eq(cr_fd_set_nonblocking(fd[0], false), 0);
	ck_assert(!(fcntl(fd[0], F_GETFL) & O_NONBLOCK));
	close(fd[0]);
	close(fd[1]);
}
END_TEST

static Suite *io_suite(void)
{
	Suite *s = suite_create("io");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, wait_fd_on_pipe_reports_readable_writable_and_timeout);
	tcase_add_test(tc, wait_fd_on_socketpair_reports_readable_writable_and_timeout);
	tcase_add_test(tc, cancel_while_waiting_readable_returns_ecanceled_once);
	tcase_add_test(tc, cancel_while_waiting_writable_returns_ecanceled_once);
	tcase_add_test(tc, cancelled_waits_release_their_events);
	tcase_add_test(tc, write_all_and_read_move_a_large_buffer_through_a_pipe);
	tcase_add_test(tc, read_returns_zero_at_end_of_file);
	tcase_add_test(tc, read_returns_zero_when_the_socket_peer_closes);
	tcase_add_test(tc, read_and_write_time_out_in_a_timeout_scope);
	tcase_add_test(tc, cancel_stops_a_write_all_blocked_on_a_full_pipe);
	tcase_add_test(tc, write_to_a_closed_pipe_is_epipe_and_bad_arguments_are_refused);
	tcase_add_test(tc, set_nonblocking_sets_and_clears_the_flag);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return tu_main(io_suite()); }
