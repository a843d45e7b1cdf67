/*
 * errors.c — names for the codes the runtime returns, and the thread-local
 * "last error" message (cr_last_error).
 *
 * The message buffer is per thread so that worker threads and loops on
 * different threads never see each other's messages; it is a fixed array
 * (no allocation can fail while reporting a failure).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define CR__ERRMSG_MAX 256

static __thread char last_error[CR__ERRMSG_MAX];

const char *cr_strerror(int err)
{
	if (err > 0)
		err = -err;
	switch (err) {
	case 0:
		return "Success";
	case -ECANCELED:
		return "Task cancelled";
	case -ETIMEDOUT:
		return "Timed out";
	case -EINTR:
		return "Interrupted (SIGINT)";
	case -EBUSY:
		return "Called from a running event loop";
	case -ESHUTDOWN:
		return "Runner or loop is closed";
	case -EPERM:
		return "Awaiting call outside a coroutine, or wrong thread";
	case -ENODATA:
		return "Async generator exhausted";
	case -ENOMEM:
		return "Out of memory (or no coroutine stack could be had)";
	default:
		/* strerror() of glibc returns a pointer to a static string for
		 * known codes and "Unknown error N" (thread-unsafe buffer) for
		 * the rest; strerrordesc_np would be cleaner but is glibc 2.32+. */
		return strerror(-err);
	}
}

const char *cr_last_error(void) { return last_error; }

int cr__error(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return err;
}
