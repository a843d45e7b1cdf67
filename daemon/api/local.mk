# daemon/api: the v1 routes, long-polls, event streams and /metrics.
daemon_crund_SOURCES += \
	daemon/api/api.h daemon/api/api.c \
	daemon/api/wait.c daemon/api/stream.c daemon/api/events.c \
	daemon/api/metrics.c

# The dashboard (ui/): its files compiled in as ui/files.c, generated at
# build time by build-aux/embed-files (od and sed only), served by ui.c.
UI_FILES = ui/index.html ui/app.js ui/style.css ui/favicon.svg
daemon_crund_SOURCES += daemon/api/ui.h daemon/api/ui.c
nodist_daemon_crund_SOURCES = ui/files.c
EXTRA_DIST += $(UI_FILES) build-aux/embed-files
CLEANFILES += ui/files.c
ui/files.c: $(UI_FILES:%=$(srcdir)/%) $(srcdir)/build-aux/embed-files
	$(AM_V_GEN)$(MKDIR_P) ui && $(SHELL) $(srcdir)/build-aux/embed-files $@ $(UI_FILES:%=$(srcdir)/%)
