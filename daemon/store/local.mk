# daemon/store: the job store seam (store.c: URL dispatch, group commit,
# the writer thread) and its backends.
daemon_crund_SOURCES += \
	daemon/store/store.h daemon/store/backend.h daemon/store/store.c \
	daemon/store/memory.c \
	daemon/store/sqlite.c
