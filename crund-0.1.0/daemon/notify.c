/*
 * notify.c — sd_notify, watchdog and socket activation without libsystemd;
 * see notify.h.  The protocol is small and stable (sd_notify(3),
 * sd_listen_fds(3)), and not linking libsystemd keeps the daemon's
 * dependencies to what it really needs.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

static int notify_fd = -1;

int crd_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	size_t plen;

	if (!path || !*path)
		return 0;
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sa.sun_path))
		return -EINVAL;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, plen);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract namespace */
	if (notify_fd < 0) {
		notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (notify_fd < 0)
			return -errno;
	}
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
	if (path[0] == '/')
		salen++; /* include the NUL of a filesystem path */
	if (sendto(notify_fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) <
	    0)
		return -errno;
	return 0;
}

void crd_notify_close(void)
{
	if (notify_fd >= 0)
		close(notify_fd);
	notify_fd = -1;
}

static int env_is_our_pid(const char *name)
{
	const char *p = getenv(name);
	if (!p || !*p)
		return -1; /* not set */
	char *end;
	errno = 0;
	unsigned long pid = strtoul(p, &end, 10);
	if (errno || *end)
		return 0;
	return pid == (unsigned long)getpid();
}

uint64_t crd_watchdog_usec(void)
{
	const char *u = getenv("WATCHDOG_USEC");
	if (!u || !*u)
		return 0;
	if (env_is_our_pid("WATCHDOG_PID") == 0)
		return 0;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(u, &end, 10);
	if (errno || *end || v == 0)
		return 0;
	return v;
}

int crd_listen_fds(void)
{
	const char *n = getenv("LISTEN_FDS");
	int ours = env_is_our_pid("LISTEN_PID");
	int count = 0;

	if (n && *n && ours == 1) {
		char *end;
		errno = 0;
		long v = strtol(n, &end, 10);
		if (!errno && !*end && v > 0 && v < 1024)
			count = (int)v;
	}
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
	for (int fd = 3; fd < 3 + count; fd++) {
		int fl = fcntl(fd, F_GETFD);
		if (fl < 0)
			return -EBADF;
		fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
	}
	return count;
}
