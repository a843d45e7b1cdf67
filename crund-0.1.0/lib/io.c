/*
 * io.c — reads and writes that await instead of blocking.
 *
 * The descriptor is in non-blocking mode (cr_fd_set_nonblocking, or the
 * pipes cr_subprocess_spawn hands out): each call tries the syscall first
 * and only waits on the loop (cr_wait_fd) when the kernel says EAGAIN, so
 * data already buffered costs one syscall and no event registration.  On
 * a blocking descriptor the first attempt would block the whole loop:
 * that is the caller's bug, as in asyncio (which sets O_NONBLOCK itself
 * in connect_read_pipe); we do not pay an fcntl per call to detect it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "internal.h"

int cr_fd_set_nonblocking(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return cr__error(-errno, "cr_fd_set_nonblocking: fd %d: %m", fd);
	if (!!(fl & O_NONBLOCK) == on)
		return 0;
	fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	if (fcntl(fd, F_SETFL, fl) < 0)
		return cr__error(-errno, "cr_fd_set_nonblocking: fd %d: %m", fd);
	return 0;
}

ssize_t cr_read(int fd, void *buf, size_t len)
{
	ssize_t n;
	int rc;

	if (!cr_current_task())
		return cr__error(-EPERM, "cr_read: must be called from a task");
	if (fd < 0)
		return cr__error(-EBADF, "cr_read: bad file descriptor %d", fd);
	if (!buf && len)
		return cr__error(-EINVAL, "cr_read: buf is NULL");
	for (;;) {
		n = read(fd, buf, len);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return cr__error(-errno, "read from fd %d: %m", fd);
		/* Readable also means "hang-up" or "error": the next read says
		 * which (0 or the error). */
		if ((rc = cr_wait_fd(fd, CR_READ, -1)) < 0)
			return rc;
	}
}

ssize_t cr_write(int fd, const void *buf, size_t len)
{
	ssize_t n;
	int rc;

	if (!cr_current_task())
		return cr__error(-EPERM, "cr_write: must be called from a task");
	if (fd < 0)
		return cr__error(-EBADF, "cr_write: bad file descriptor %d", fd);
	if (!buf && len)
		return cr__error(-EINVAL, "cr_write: buf is NULL");
	for (;;) {
		n = write(fd, buf, len);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return cr__error(-errno, "write to fd %d: %m", fd);
		if ((rc = cr_wait_fd(fd, CR_WRITE, -1)) < 0)
			return rc;
	}
}

int cr_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	if (!buf && len)
		return cr__error(-EINVAL, "cr_write_all: buf is NULL");
	do {
		/* One cr_write even for len 0, so that the task and fd checks
		 * apply to every call. */
		if ((n = cr_write(fd, p, len)) < 0)
			return (int)n;
		p += n;
		len -= (size_t)n;
	} while (len > 0);
	return 0;
}
