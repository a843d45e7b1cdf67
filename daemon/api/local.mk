# daemon/api: the v1 routes, long-polls, event streams and /metrics.
daemon_crund_SOURCES += \
	daemon/api/api.h daemon/api/api.c \
	daemon/api/wait.c daemon/api/stream.c \
	daemon/api/metrics.c
