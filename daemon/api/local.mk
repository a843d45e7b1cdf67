# daemon/api: the v1 routes and /metrics.
daemon_crund_SOURCES += \
	daemon/api/api.c \
	daemon/api/metrics.c
