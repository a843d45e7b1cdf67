/*
 * replay.c — main() for a fuzz target in `make check`.
 *
 * libFuzzer is not needed (nor clang): this driver feeds the target every
 * file of its committed corpus, then a fixed number of deterministic
 * mutations of them, so the check is the same on every run and machine
 * and a crasher once committed to the corpus stays caught.  Real
 * coverage-guided fuzzing is done with clang (tests/fuzz/README.md); this
 * is its regression net.
 *
 *   fuzz-NAME [PATH...]    PATHs (files or dirs) replace the built-in
 *                          corpus dir, e.g. to replay one crasher
 *   CRUND_FUZZ_ITERATIONS  mutations to run (default 2000; 0: seeds only)
 *   CRUND_FUZZ_SEED        the PRNG seed (default 1)
 *
 * Each input is copied into a buffer of exactly its size, so an overread
 * by one byte is caught under ASan, as it is under libFuzzer.  Exit 0 when
 * every input ran; a finding aborts (the sanitizer's report or the
 * target's FUZZ_CHECK) after the input was written to stderr in hex.
 * The two result lines are TAP-shaped so .ci/run counts them; the test
 * itself is a plain exit-status test.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef FUZZ_CORPUS
#error "FUZZ_CORPUS (the corpus dir of this target) must be defined"
#endif

#define FUZZ_MAX_INPUT (64u << 10) /* mutations never grow an input past this */
#define MAX_SEEDS      4096

typedef struct seed {
	uint8_t *data;
	size_t size;
	char *name;
} seed;

static seed seeds[MAX_SEEDS];
static size_t n_seeds;

/* The input being run, for the crash message. */
static const uint8_t *cur_data;
static size_t cur_size;
static const char *cur_what;
static char cur_desc[512];

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "replay: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(99); /* a hard error for the test driver, not a finding */
}

/* ------------------------------------------------------------- corpus */

static void add_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die("cannot open %s", path);
	uint8_t *buf = malloc(FUZZ_MAX_INPUT);
	if (!buf)
		die("out of memory reading %s", path);
	size_t n = fread(buf, 1, FUZZ_MAX_INPUT, f);
	bool more = fgetc(f) != EOF;
	fclose(f);
	if (more)
		die("%s is larger than the 64 KiB an input may have", path);
	if (n_seeds == MAX_SEEDS)
		die("more than 4096 inputs (at %s)", path);
	seeds[n_seeds].data = buf;
	seeds[n_seeds].size = n;
	if (!(seeds[n_seeds].name = strdup(path)))
		die("out of memory reading %s", path);
	n_seeds++;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of dir, in name order (readdir order differs between
 * file systems; mutations depend on the seeds' order). */
static void add_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		die("cannot open the corpus dir %s", dir);
	char **names = NULL;
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char **nn = realloc(names, (n + 1) * sizeof(*names));
		if (!nn || asprintf(&nn[n], "%s/%s", dir, e->d_name) < 0)
			die("out of memory listing %s", dir);
		names = nn;
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
			add_file(names[i]);
		free(names[i]);
	}
	free(names);
}

static void add_path(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		die("cannot stat %s", path);
	if (S_ISDIR(st.st_mode))
		add_dir(path);
	else
		add_file(path);
}

/* ----------------------------------------------------------- running */

static void dump_current(void)
{
	fprintf(stderr, "replay: the input was %s (%zu bytes), hex:\n", cur_desc, cur_size);
	for (size_t i = 0; i < cur_size && i < 4096; i++)
		fprintf(stderr, "%02x%s", cur_data[i], (i % 32 == 31) ? "\n" : "");
	fputc('\n', stderr);
	fprintf(stderr, "replay: re-run with: %s [a file holding these bytes]\n", cur_what);
}

/* A FUZZ_CHECK abort, or a crash without a sanitizer, names the input
 * first. */
static void on_fatal(int sig)
{
	if (cur_data)
		dump_current();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* A sanitizer's report ends the process without a signal; its death
 * callback names the input then.  Weak: absent from a plain build. */
extern void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

static void on_sanitizer_death(void)
{
	if (cur_data)
		dump_current();
}

static void run_one(const uint8_t *data, size_t size)
{
	/* Exactly size bytes: nothing after the input is readable. */
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		die("out of memory for an input of %s", "this size");
	if (size)
		memcpy(copy, data, size);
	cur_data = copy;
	cur_size = size;
	LLVMFuzzerTestOneInput(copy, size);
	free(copy);
	cur_data = NULL;
}

/* ----------------------------------------------------------- mutation */

static uint64_t rng_state;

/* splitmix64: tiny, good enough, and the same everywhere. */
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static size_t below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

/* Bytes that matter to the parsers under test (JSON, key=value lines,
 * SSE, paths) and to binary formats (ELF). */
static const uint8_t magic_bytes[] = {
	0,   1,   0x7f, 0x80, 0xff, '\n', '\r', ' ', '\t', '"', '\\', '{', '}', '[', ']', ':',
	',', '=', '#',  '/',  '.',  '-',  '+',  '0', '9',  'e', 'E',  'u', '~', '%', '?', '&',
};
/* Text that hits boundaries of number parsers. */
static const char *const magic_text[] = {
	"-1",
	"0",
	"1",
	"-0",
	"0.5",
	"1e308",
	"1e-400",
	"1e309",
	"4294967296",
	"4294967295",
	"9223372036854775807",
	"9223372036854775808",
	"-9223372036854775809",
	"nan",
	"inf",
	"0x10",
	"1e3",
	"300",
	"300.0000001",
	"1000",
	"1001",
	"65535",
	"65536",
	"\"\"",
	"null",
	"true",
	"[]",
	"{}",
	"\\u0000",
	"\\ud800",
	"\xc3\x28",
	"\xf0\x9f\x98\x80",
};
/* Integer bytes for binary headers (offsets, sizes, counts). */
static const uint64_t magic_ints[] = {
	0,
	1,
	0x7f,
	0x80,
	0xff,
	0x7fff,
	0x8000,
	0xffff,
	0x7fffffff,
	0x80000000,
	0xffffffff,
	UINT64_C(0x7fffffffffffffff),
	UINT64_C(0x8000000000000000),
	UINT64_MAX,
	64,
	56,
	24,
};

/* Mutate buf (size *n, room FUZZ_MAX_INPUT) once. */
static void mutate_once(uint8_t *buf, size_t *n)
{
	size_t len = *n;
	switch (rnd() % 10) {
	case 0: /* flip a bit */
		if (len)
			buf[below(len)] ^= (uint8_t)(1u << below(8));
		break;
	case 1: /* a random byte */
		if (len)
			buf[below(len)] = (uint8_t)rnd();
		break;
	case 2: /* a byte that matters */
		if (len)
			buf[below(len)] = magic_bytes[below(sizeof(magic_bytes))];
		break;
	case 3: { /* insert a few bytes */
		size_t k = 1 + below(4), at = below(len + 1);
		if (len + k > FUZZ_MAX_INPUT)
			break;
		memmove(buf + at + k, buf + at, len - at);
		for (size_t i = 0; i < k; i++)
			buf[at + i] = (rnd() & 1) ? magic_bytes[below(sizeof(magic_bytes))]
						  : (uint8_t)rnd();
		len += k;
		break;
	}
	case 4: { /* delete a range */
		if (!len)
			break;
		size_t at = below(len), k = 1 + below(len - at < 16 ? len - at : 16);
		memmove(buf + at, buf + at + k, len - at - k);
		len -= k;
		break;
	}
	case 5: { /* duplicate a range somewhere */
		if (!len)
			break;
		size_t from = below(len), k = 1 + below(len - from < 32 ? len - from : 32);
		size_t at = below(len + 1);
		if (len + k > FUZZ_MAX_INPUT)
			break;
		uint8_t tmp[32];
		memcpy(tmp, buf + from, k);
		memmove(buf + at + k, buf + at, len - at);
		memcpy(buf + at, tmp, k);
		len += k;
		break;
	}
	case 6: { /* splice: our head, another seed's tail */
		const seed *o = &seeds[below(n_seeds)];
		size_t keep = below(len + 1), from = below(o->size + 1);
		size_t k = o->size - from;
		if (keep + k > FUZZ_MAX_INPUT)
			k = FUZZ_MAX_INPUT - keep;
		memcpy(buf + keep, o->data + from, k);
		len = keep + k;
		break;
	}
	case 7: { /* replace a range with a boundary number or token */
		const char *t = magic_text[below(sizeof(magic_text) / sizeof(magic_text[0]))];
		size_t tl = strlen(t), at = below(len + 1);
		size_t k = below(len - at < 8 ? len - at + 1 : 9);
		if (len - k + tl > FUZZ_MAX_INPUT)
			break;
		memmove(buf + at + tl, buf + at + k, len - at - k);
		memcpy(buf + at, t, tl);
		len = len - k + tl;
		break;
	}
	case 8: { /* overwrite 1, 2, 4 or 8 bytes with an integer, LE or BE */
		size_t w = (size_t)1 << below(4);
		if (len < w)
			break;
		size_t at = below(len - w + 1);
		uint64_t v = magic_ints[below(sizeof(magic_ints) / sizeof(magic_ints[0]))];
		bool be = rnd() & 1;
		for (size_t i = 0; i < w; i++)
			buf[at + (be ? w - 1 - i : i)] = (uint8_t)(v >> (8 * i));
		break;
	}
	case 9: /* truncate */
		len = below(len + 1);
		break;
	}
	*n = len;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	const char *it_env = getenv("CRUND_FUZZ_ITERATIONS");
	const char *seed_env = getenv("CRUND_FUZZ_SEED");
	unsigned long iterations = it_env ? strtoul(it_env, NULL, 10) : 2000;
	rng_state = seed_env ? strtoull(seed_env, NULL, 10) : 1;

	/* Targets print nothing on success; keep stdout for the summary. */
	cur_what = argv[0];
	signal(SIGABRT, on_fatal);
	signal(SIGSEGV, on_fatal);
	signal(SIGBUS, on_fatal);
	signal(SIGFPE, on_fatal);
	if (__sanitizer_set_death_callback)
		__sanitizer_set_death_callback(on_sanitizer_death);

	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			add_path(argv[i]);
	} else {
		add_dir(FUZZ_CORPUS);
	}
	/* An empty corpus would make this test pass without testing. */
	if (!n_seeds)
		die("no inputs in %s", argc > 1 ? argv[1] : FUZZ_CORPUS);

	for (size_t i = 0; i < n_seeds; i++) {
		snprintf(cur_desc, sizeof(cur_desc), "seed %s", seeds[i].name);
		run_one(seeds[i].data, seeds[i].size);
	}

	uint8_t *buf = malloc(FUZZ_MAX_INPUT);
	if (!buf)
		die("out of memory for the %s", "mutation buffer");
	for (unsigned long it = 0; it < iterations; it++) {
		const seed *s = &seeds[below(n_seeds)];
		size_t len = s->size;
		memcpy(buf, s->data, len);
		for (size_t k = 1 + below(4); k; k--)
			mutate_once(buf, &len);
		snprintf(cur_desc, sizeof(cur_desc), "mutation %lu of seed %s (CRUND_FUZZ_SEED=%s)",
			 it, s->name, seed_env ? seed_env : "1");
		run_one(buf, len);
	}
	free(buf);
	/* TAP-shaped, printed only once everything ran, so that .ci/run
	 * counts these and a crash leaves no "ok" line behind. */
	const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	printf("1..2\nok 1 - %s: %zu corpus inputs ran, no finding\n"
	       "ok 2 - %s: %lu mutations ran, no finding\n",
	       name, n_seeds, name, iterations);
	for (size_t i = 0; i < n_seeds; i++) {
		free(seeds[i].data);
		free(seeds[i].name);
	}
	return 0;
}
