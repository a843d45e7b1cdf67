/*
 * store/memory.c — the `memory:` store: rows kept in this process only.
 *
 * The daemon does not write to it at all (crd_store_durable() is false,
 * and the jobs module already holds every record); it exists so the seam
 * has a backend that behaves like the others without a disk, which the
 * store's test suite runs the same cases against.  Commits run inline on
 * the loop thread.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/backend.h"

typedef struct mem {
	crd_store_row **rows; /* by seq, ascending */
	size_t n, cap;
	uint64_t max_seq;
	char prefix[16];
} mem;

static int mem_open(const char *where, const crd_store_opts *o, void **ret_be, char *err,
		    size_t errlen)
{
	(void)o;
	if (*where) {
		snprintf(err, errlen,
			 "store 'memory:%s': memory: takes nothing after the colon (it keeps no "
			 "file); for a file give sqlite:PATH",
			 where);
		return -EINVAL;
	}
	mem *m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	crd_store_new_prefix(m->prefix);
	*ret_be = m;
	return 0;
}

static void mem_close(void *be)
{
	mem *m = be;
	for (size_t i = 0; i < m->n; i++)
		crd_store_row_free(m->rows[i]);
	free(m->rows);
	free(m);
}

static const char *mem_describe(void *be)
{
	(void)be;
	return "memory: (nothing is kept when crund exits)";
}

static const char *mem_prefix(void *be) { return ((mem *)be)->prefix; }
static uint64_t mem_max_seq(void *be) { return ((mem *)be)->max_seq; }

/* Index of the first row with seq >= key. */
static size_t lower_bound(const mem *m, uint64_t key)
{
	size_t lo = 0, hi = m->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->rows[mid]->job.seq < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int mem_load(void *be, int (*fn)(const crd_store_job *row, void *arg), void *arg)
{
	mem *m = be;
	for (size_t i = 0; i < m->n; i++) {
		int rc = fn(&m->rows[i]->job, arg);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int mem_commit(void *be, crd_store_row *const *rows, size_t n, uint64_t hi_seq, char *err,
		      size_t errlen)
{
	mem *m = be;
	/* reserve first, so a failure changes nothing */
	if (m->n + n > m->cap) {
		size_t ncap = m->cap ? m->cap : 64;
		while (ncap < m->n + n)
			ncap *= 2;
		crd_store_row **p = realloc(m->rows, ncap * sizeof(*p));
		if (!p) {
			snprintf(err, errlen, "store memory: out of memory");
			return -ENOMEM;
		}
		m->rows = p;
		m->cap = ncap;
	}
	crd_store_row **copies = calloc(n ? n : 1, sizeof(*copies));
	if (!copies) {
		snprintf(err, errlen, "store memory: out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		if (!rows[i]->del && !(copies[i] = crd_store_row_copy(&rows[i]->job, false))) {
			while (i--)
				crd_store_row_free(copies[i]);
			free(copies);
			snprintf(err, errlen, "store memory: out of memory");
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t seq = rows[i]->job.seq;
		size_t k = lower_bound(m, seq);
		bool found = k < m->n && m->rows[k]->job.seq == seq;
		if (rows[i]->del) {
			if (found) {
				crd_store_row_free(m->rows[k]);
				memmove(&m->rows[k], &m->rows[k + 1],
					(m->n - k - 1) * sizeof(*m->rows));
				m->n--;
			}
			continue;
		}
		if (found) {
			crd_store_row_free(m->rows[k]);
			m->rows[k] = copies[i];
		} else {
			memmove(&m->rows[k + 1], &m->rows[k], (m->n - k) * sizeof(*m->rows));
			m->rows[k] = copies[i];
			m->n++;
		}
		if (seq > m->max_seq)
			m->max_seq = seq;
	}
	free(copies);
	if (hi_seq > m->max_seq)
		m->max_seq = hi_seq;
	return 0;
}

const crd_store_backend crd_store_memory = {
	.scheme = "memory",
	.durable = false,
	.threaded = false,
	.open = mem_open,
	.close = mem_close,
	.describe = mem_describe,
	.id_prefix = mem_prefix,
	.max_seq = mem_max_seq,
	.load = mem_load,
	.commit = mem_commit,
};
