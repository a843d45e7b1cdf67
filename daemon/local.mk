# daemon rules (owned by the daemon area)
#
# crund: one process, one runner, libmicrohttpd on the runner's loop.
# plugins.c/args.c belong to the plugins area and are compiled in here.
sbin_PROGRAMS += daemon/crund
daemon_crund_SOURCES = \
	daemon/main.c \
	daemon/daemon.h \
	daemon/crund-config.h daemon/config.c \
	daemon/log.h daemon/log.c \
	daemon/buf.h daemon/buf.c \
	daemon/notify.h daemon/notify.c \
	daemon/route.h daemon/route.c \
	daemon/submit.h daemon/submit.c \
	daemon/jobs.h daemon/jobs.c \
	daemon/exec.c \
	daemon/host.c \
	daemon/http.h daemon/http.c \
	daemon/api.c \
	daemon/metrics.c \
	daemon/watchdog.c \
	daemon/shutdown.c \
	daemon/plugins.h daemon/plugins.c daemon/args.c
daemon_crund_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS) $(JANSSON_CFLAGS) $(LIBEVENT_CFLAGS)
daemon_crund_LDADD = lib/libcrunner.la $(MHD_LIBS) $(JANSSON_LIBS) $(LIBEVENT_LIBS) -ldl -lpthread
