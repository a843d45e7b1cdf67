/*
 * fuzz.h — what every fuzz target shares.
 *
 * A target is one function, LLVMFuzzerTestOneInput(), built two ways:
 * with clang -fsanitize=fuzzer for real fuzzing (tests/fuzz/README.md),
 * and with tests/fuzz/replay.c as main() in `make check`, which replays the
 * committed corpus plus deterministic mutations of it.  A target reports a
 * bug by crashing: a sanitizer report, or FUZZ_CHECK() failing, which
 * prints the broken invariant and aborts (both drivers treat an abort as a
 * finding and keep the input).
 */
#ifndef CRUND_FUZZ_H
#define CRUND_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test: abort with the place when false. */
#define FUZZ_CHECK(cond)                                                                     \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
				#cond);                                                      \
			abort();                                                             \
		}                                                                            \
	} while (0)

/* The input as a NUL-terminated string (an embedded NUL ends it early, as
 * it would for every C-string parser fed from outside).  Caller frees;
 * aborts on ENOMEM, which a fuzzer's small inputs never cause. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Split s in place at each '\n' into at most max fields, the last one
 * keeping the rest of the text; returns the number found (the rest of
 * out[] is set to NULL). */
static inline size_t fuzz_split_lines(char *s, char **out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < max; i++)
		out[i] = NULL;
	while (s && n < max) {
		out[n++] = s;
		if (n == max)
			break;
		s = strchr(s, '\n');
		if (s)
			*s++ = '\0';
	}
	return n;
}

/* err from a parser after a failure: NUL-terminated within errlen and
 * non-empty (every error path must say what was wrong). */
static inline int fuzz_err_ok(const char *err, size_t errlen)
{
	return memchr(err, '\0', errlen) != NULL && err[0] != '\0';
}

#endif
