# daemon/store: the job store seam (store.c: URL dispatch, group commit,
# the writer thread) and its backends.  STORE_SOURCES is also linked into
# the test programs that use the jobs module.
STORE_SOURCES = \
	daemon/store/store.h daemon/store/backend.h daemon/store/store.c \
	daemon/store/memory.c \
	daemon/store/sqlite.c \
	daemon/store/pg.h daemon/store/pg.c \
	daemon/store/postgresql.c
daemon_crund_SOURCES += $(STORE_SOURCES)
