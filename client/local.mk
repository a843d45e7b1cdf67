# client rules (owned by the client area)
#
# crunctl: the command-line client, one crunctl-VERB.c per command (see
# crunctl.h).  Everything that does not talk to the network (args.c,
# format.c, sse.c) is also linked into the unit tests (tests/client.mk), so
# those files must not need libcurl.
bin_PROGRAMS += client/crunctl
client_crunctl_SOURCES = \
	client/crunctl.h \
	client/main.c \
	client/options.c \
	client/follow.c \
	client/crunctl-submit.c \
	client/crunctl-status.c \
	client/crunctl-wait.c \
	client/crunctl-cancel.c \
	client/crunctl-retry.c \
	client/crunctl-rm.c \
	client/crunctl-list.c \
	client/crunctl-log.c \
	client/crunctl-plugins.c \
	client/crunctl-info.c \
	client/crunctl-health.c \
	client/http.c \
	client/args.c \
	client/format.c \
	common/rfc3339.h common/rfc3339.c common/logline.h \
	client/sse.c
client_crunctl_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) $(JANSSON_CFLAGS)
client_crunctl_LDADD = $(CURL_LIBS) $(JANSSON_LIBS) -lm

# Bash completion: the source is client/crunctl.bash, but bash-completion
# finds a command's script by the command's name, so it is installed as
# $(bashcompletiondir)/crunctl.  A copy under client/completion/ carries that
# name (client/crunctl itself is the program).
bashcompletion_DATA = client/completion/crunctl
client/completion/crunctl: $(top_srcdir)/client/crunctl.bash
	$(AM_V_GEN)$(MKDIR_P) client/completion && cp $(top_srcdir)/client/crunctl.bash $@
CLEANFILES += client/completion/crunctl
EXTRA_DIST += client/crunctl.bash
