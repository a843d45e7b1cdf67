# daemon/http: libmicrohttpd on the runner's loop, listeners, the request
# pool and the routing table.
daemon_crund_SOURCES += \
	daemon/http/http.h daemon/http/http.c \
	daemon/http/route.h daemon/http/route.c
