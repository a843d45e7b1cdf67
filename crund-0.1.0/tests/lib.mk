# lib test suites
# The Check suites need Check (configure's HAVE_CHECK); the context-switch
# test below them does not.
if HAVE_CHECK
# libext: contexts, executor, async generators, runner
LIB_TESTS += tests/test-context tests/test-executor tests/test-agen tests/test-runner
check_PROGRAMS += tests/test-context tests/test-executor tests/test-agen tests/test-runner
tests_test_context_SOURCES = tests/test-context.c
tests_test_context_LDADD = lib/libcrunner.la $(CHECK_LIBS)
tests_test_context_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_test_executor_SOURCES = tests/test-executor.c
tests_test_executor_LDADD = lib/libcrunner.la $(CHECK_LIBS)
tests_test_executor_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_test_agen_SOURCES = tests/test-agen.c
tests_test_agen_LDADD = lib/libcrunner.la $(CHECK_LIBS)
tests_test_agen_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_test_runner_SOURCES = tests/test-runner.c
tests_test_runner_LDADD = lib/libcrunner.la $(CHECK_LIBS)
tests_test_runner_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
# libcore: errors, coroutines, stacks, loop, tasks, sync, timeouts
LIB_TESTS += tests/test-task
check_PROGRAMS += tests/test-task
tests_test_task_SOURCES = tests/test-task.c tests/testutil.h
tests_test_task_LDADD = lib/libcrunner.la $(CHECK_LIBS)
tests_test_task_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
LIB_TESTS += tests/test-loop
check_PROGRAMS += tests/test-loop
tests_test_loop_SOURCES = tests/test-loop.c tests/testutil.h
tests_test_loop_LDADD = lib/libcrunner.la $(CHECK_LIBS) $(LIBEVENT_LIBS)
tests_test_loop_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(LIBEVENT_CFLAGS)
LIB_TESTS += tests/test-sync
check_PROGRAMS += tests/test-sync
tests_test_sync_SOURCES = tests/test-sync.c tests/testutil.h
tests_test_sync_LDADD = lib/libcrunner.la $(CHECK_LIBS)
tests_test_sync_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
LIB_TESTS += tests/test-timeout
check_PROGRAMS += tests/test-timeout
tests_test_timeout_SOURCES = tests/test-timeout.c tests/testutil.h
tests_test_timeout_LDADD = lib/libcrunner.la $(CHECK_LIBS)
tests_test_timeout_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
LIB_TESTS += tests/test-errors tests/test-coro tests/test-stack
check_PROGRAMS += tests/test-errors tests/test-coro tests/test-stack
tests_test_errors_SOURCES = tests/test-errors.c tests/testutil.h
tests_test_errors_LDADD = lib/libcrunner.la $(CHECK_LIBS)
tests_test_errors_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
# coro and stack test internals (cr__ symbols are not exported), so they
# compile those sources in.
tests_test_coro_SOURCES = tests/test-coro.c tests/testutil.h lib/coro.c lib/coro.h
if CORO_ASM_X86_64
tests_test_coro_SOURCES += lib/switch-x86_64.S
endif
if CORO_ASM_AARCH64
tests_test_coro_SOURCES += lib/switch-aarch64.S
endif
tests_test_coro_LDADD = lib/libcrunner.la $(CHECK_LIBS)
tests_test_coro_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
# Per-target assembler flags give the test its own object of the .S file.
tests_test_coro_CCASFLAGS = $(AM_CCASFLAGS)
tests_test_stack_SOURCES = tests/test-stack.c tests/testutil.h lib/stack.c lib/stack.h lib/errors.c lib/alloc.c
tests_test_stack_LDADD = $(CHECK_LIBS) -lpthread
tests_test_stack_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
# Out of memory: the N-th allocation fails, for every N, across a runner's
# lifecycle (the injector is lib/alloc.c's test-only cr__test_alloc_fail).
LIB_TESTS += tests/test-alloc
check_PROGRAMS += tests/test-alloc
tests_test_alloc_SOURCES = tests/test-alloc.c tests/testutil.h
tests_test_alloc_LDADD = lib/libcrunner.la $(CHECK_LIBS)
tests_test_alloc_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
LIB_TESTS += tests/test-stress
check_PROGRAMS += tests/test-stress
tests_test_stress_SOURCES = tests/test-stress.c tests/testutil.h
tests_test_stress_LDADD = lib/libcrunner.la $(CHECK_LIBS)
tests_test_stress_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
endif

# The context switch alone, register by register (callee-saved integer and
# floating-point registers, stack pointer, trampoline, deep recursion): the
# configured switch natively, and the aarch64 switch under qemu when the
# cross tools are installed (tests/coro-aarch64.sh skips otherwise).
check_PROGRAMS += tests/coro-switch-test
tests_coro_switch_test_SOURCES = tests/coro-switch-test.c lib/coro.c lib/coro.h
if CORO_ASM_X86_64
tests_coro_switch_test_SOURCES += lib/switch-x86_64.S
endif
if CORO_ASM_AARCH64
tests_coro_switch_test_SOURCES += lib/switch-aarch64.S
endif
tests_coro_switch_test_CFLAGS = $(AM_CFLAGS)
tests_coro_switch_test_CCASFLAGS = $(AM_CCASFLAGS)
LIB_TESTS += tests/coro-switch-test tests/coro-aarch64.sh
EXTRA_DIST += tests/coro-aarch64.sh
# Awaitable I/O and subprocesses (lib/io.c, lib/subprocess.c)
LIB_TESTS += tests/test-io tests/test-subprocess
check_PROGRAMS += tests/test-io tests/test-subprocess
tests_test_io_SOURCES = tests/test-io.c tests/testutil.h
tests_test_io_LDADD = lib/libcrunner.la $(CHECK_LIBS)
tests_test_io_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_test_subprocess_SOURCES = tests/test-subprocess.c tests/testutil.h
tests_test_subprocess_LDADD = lib/libcrunner.la $(CHECK_LIBS)
tests_test_subprocess_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
