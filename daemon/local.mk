# crund: one process, one runner, libmicrohttpd on the runner's loop.
#
# The folders are the layers (docs/ARCHITECTURE.md): daemon/ holds the
# process (main, settings, log, notify, watchdog, shutdown); http/ the
# transport, api/ the v1 routes, jobs/ the job state machine, plugins/ the
# plugin registry and the host API.  Each folder keeps its own fragment,
# included here; each appends its sources to daemon_crund_SOURCES.
sbin_PROGRAMS += daemon/crund
daemon_crund_SOURCES = \
	daemon/main.c \
	daemon/daemon.h \
	daemon/settings.h daemon/settings.c \
	daemon/log.h daemon/log.c \
	daemon/buf.h daemon/buf.c common/utf8.h common/jsondepth.h \
	daemon/notify.h daemon/notify.c \
	daemon/thread.h \
	daemon/watchdog.c \
	daemon/shutdown.c
daemon_crund_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon
daemon_crund_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS) $(JANSSON_CFLAGS) $(LIBEVENT_CFLAGS) $(SQLITE_CFLAGS) \
	$(CURL_CFLAGS) $(LIBPQ_CFLAGS)
daemon_crund_LDADD = lib/libcrunner.la $(MHD_LIBS) $(JANSSON_LIBS) $(LIBEVENT_LIBS) $(SQLITE_LIBS) $(CURL_LIBS) \
	$(LIBPQ_LIBS) -ldl -lpthread

include daemon/http/local.mk
include daemon/api/local.mk
include daemon/jobs/local.mk
include daemon/plugins/local.mk
include daemon/store/local.mk
