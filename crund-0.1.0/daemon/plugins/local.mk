# daemon/plugins: the plugin registry (finding, checking and loading .so
# files), argument specs, and the host API plugins call.
daemon_crund_SOURCES += \
	daemon/plugins/plugins.h daemon/plugins/registry.c daemon/plugins/elf.c daemon/plugins/abi.c \
	daemon/plugins/args.c \
	daemon/plugins/host.c
