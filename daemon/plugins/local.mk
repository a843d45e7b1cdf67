# daemon/plugins: the plugin registry (finding, checking and loading .so
# files), argument specs, the host API plugins call, and libcurl's multi
# interface on the loop behind it (curl.c: crund_curl_perform).
daemon_crund_SOURCES += \
	daemon/plugins/plugins.h daemon/plugins/registry.c daemon/plugins/elf.c daemon/plugins/abi.c \
	daemon/plugins/args.c \
	daemon/plugins/host.c \
	daemon/plugins/curl.h daemon/plugins/curl.c
