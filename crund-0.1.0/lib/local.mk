# libcrunner: the runtime.  One concept per file.
lib_LTLIBRARIES += lib/libcrunner.la
include_HEADERS += lib/crunner.h
lib_libcrunner_la_SOURCES = \
	lib/crunner.h lib/internal.h \
	lib/errors.c \
	lib/alloc.c \
	lib/coro.c lib/coro.h \
	lib/stack.c lib/stack.h \
	lib/loop.c lib/loop.h \
	lib/task.c lib/task.h \
	lib/sync.c \
	lib/timeout.c \
	lib/context.c \
	lib/executor.c \
	lib/agen.c \
	lib/io.c \
	lib/subprocess.c \
	lib/runner.c
if CORO_ASM_X86_64
lib_libcrunner_la_SOURCES += lib/switch-x86_64.S
endif
if CORO_ASM_AARCH64
lib_libcrunner_la_SOURCES += lib/switch-aarch64.S
endif
lib_libcrunner_la_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS)
lib_libcrunner_la_LIBADD = $(LIBEVENT_LIBS)
# Public symbols are cr_*; cr__test_* (lib/alloc.c, declared only in
# lib/internal.h) are the allocation failure injector of tests/test-alloc.
lib_libcrunner_la_LDFLAGS = $(AM_LDFLAGS) -version-info $(CRUNNER_LT_VERSION) -export-symbols-regex '^cr_([a-z]|_test_)'

# A small program that uses the library the way the README shows.
noinst_PROGRAMS += examples/hello
examples_hello_SOURCES = examples/hello.c
examples_hello_LDADD = lib/libcrunner.la
