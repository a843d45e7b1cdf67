/*
 * format.c — human output: durations, times, aligned tables, colour, the
 * progress bar and the rows of a job table.  Pure functions of their
 * inputs (the clock is passed in), so tests/test-crunctl-args.c checks
 * them exactly.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "common/rfc3339.h"
#include "crunctl.h"

char *crunctl_format_duration(double s, char *buf, size_t len)
{
	long long whole;

	if (!isfinite(s) || s < 0)
		s = 0;
	/* Each tier rounds first and moves up when rounding reaches the next
	 * tier, so 59.96 s prints "1m00s", never "60.0s". */
	if (s < 0.9995) {
		snprintf(buf, len, "%dms", (int)lround(s * 1000.0));
		return buf;
	}
	if (round(s * 10.0) < 600.0) {
		snprintf(buf, len, "%.1fs", round(s * 10.0) / 10.0);
		return buf;
	}
	whole = llround(s);
	if (whole < 3600) {
		snprintf(buf, len, "%lldm%02llds", whole / 60, whole % 60);
		return buf;
	}
	whole = llround(s / 60.0); /* minutes */
	if (whole < 24 * 60) {
		snprintf(buf, len, "%lldh%02lldm", whole / 60, whole % 60);
		return buf;
	}
	whole = llround(s / 3600.0); /* hours */
	snprintf(buf, len, "%lldd%02lldh", whole / 24, whole % 24);
	return buf;
}

char *crunctl_format_rfc3339(double epoch, char *buf, size_t len)
{
	double whole = floor(epoch);
	long ms = lround((epoch - whole) * 1000.0);
	time_t t;
	struct tm tm;
	char day[32];

	if (ms == 1000) {
		whole += 1;
		ms = 0;
	}
	t = (time_t)whole;
	if (!gmtime_r(&t, &tm) || strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		snprintf(buf, len, "-");
		return buf;
	}
	if (ms)
		snprintf(buf, len, "%s.%03ldZ", day, ms);
	else
		snprintf(buf, len, "%sZ", day);
	return buf;
}

char *crunctl_format_relative(double epoch, double now, char *buf, size_t len)
{
	double delta = now - epoch;
	bool future = delta < 0;
	double a = fabs(delta);
	long long v;
	const char *unit;

	if (a < 1.0) {
		snprintf(buf, len, "just now");
		return buf;
	}
	if (future && a >= 60) {
		/* when a job will run: two units, rounded up (a 2 h delay is
		 * "in 2h", not "in 1h"; 10 h 27 min is "in 10h27m") */
		static const struct {
			double small;
			long long per, upto; /* small units in a big one; below upto */
			const char *b, *s;
		} u[] = {{1, 60, 3600, "m", "s"},
			 {60, 60, 1440, "h", "m"},
			 {3600, 24, -1, "d", "h"}};
		size_t i = 0;
		long long n = (long long)ceil(a / u[0].small);
		while (u[i].upto >= 0 && n >= u[i].upto) {
			i++;
			n = (long long)ceil(a / u[i].small);
		}
		if (n % u[i].per)
			snprintf(buf, len, "in %lld%s%lld%s", n / u[i].per, u[i].b, n % u[i].per,
				 u[i].s);
		else
			snprintf(buf, len, "in %lld%s", n / u[i].per, u[i].b);
		return buf;
	}
	if (a < 60) {
		v = (long long)a;
		unit = "s";
	} else if (a < 3600) {
		v = (long long)(a / 60);
		unit = "m";
	} else if (a < 86400) {
		v = (long long)(a / 3600);
		unit = "h";
	} else {
		v = (long long)(a / 86400);
		unit = "d";
	}
	if (future)
		snprintf(buf, len, "in %lld%s", v, unit);
	else
		snprintf(buf, len, "%lld%s ago", v, unit);
	return buf;
}

char *crunctl_format_local_time(double epoch, char *buf, size_t len)
{
	time_t t = (time_t)floor(epoch);
	struct tm tm;

	if (!localtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "-");
	return buf;
}

double crunctl_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

char *crunctl_format_progress(double fraction, const char *message, int width, char *buf,
			      size_t len)
{
	int filled, pos = 0;

	if (!isfinite(fraction) || fraction < 0)
		fraction = 0;
	if (fraction > 1)
		fraction = 1;
	if (width < 1)
		width = 1;
	filled = (int)floor(fraction * width + 1e-9);
	if (len < (size_t)width + 8) {
		if (len)
			buf[0] = '\0';
		return buf;
	}
	buf[pos++] = '[';
	for (int i = 0; i < width; i++)
		buf[pos++] = i < filled ? '#' : '.';
	buf[pos++] = ']';
	snprintf(buf + pos, len - (size_t)pos, " %3d%%%s%s", (int)floor(fraction * 100 + 1e-9),
		 message && *message ? " " : "", message ? message : "");
	return buf;
}

const char *crunctl_state_colour(const char *state)
{
	if (!state)
		return NULL;
	if (strcmp(state, "succeeded") == 0)
		return "32";
	if (strcmp(state, "failed") == 0)
		return "31";
	if (strcmp(state, "cancelled") == 0 || strcmp(state, "running") == 0)
		return "33";
	return NULL;
}

const char *crunctl_state_text(const char *state, bool colour, char *buf, size_t len)
{
	const char *col = crunctl_state_colour(state);

	if (!state)
		return "-";
	if (colour && col) {
		snprintf(buf, len, "\033[%sm%s\033[0m", col, state);
		return buf;
	}
	return state;
}

bool crunctl_job_time(json_t *job, const char *key, double *ret_epoch)
{
	const char *t = crunctl_jstr(job, key);
	return t && crd_rfc3339_parse(t, ret_epoch) == 0;
}

bool crunctl_job_duration(json_t *job, double now, double *ret_seconds)
{
	double start, end;

	if (!crunctl_job_time(job, "started_at", &start))
		return false;
	if (!crunctl_job_time(job, "finished_at", &end))
		end = now;
	*ret_seconds = end - start;
	return true;
}

void crunctl_oom(void) { fprintf(stderr, "crunctl: out of memory\n"); }

struct crunctl_table {
	size_t n_cols;
	size_t n_rows, cap_rows; /* rows include the header row */
	char **cells;            /* n_rows * n_cols */
	char **colours;          /* n_rows * n_cols, NULL entries: none */
};

/* Display width of UTF-8 text: code points, not bytes (wide CJK cells are
 * not worth a wcwidth table for job names and ids). */
static size_t text_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			w++;
	return w;
}

crunctl_table *crunctl_table_new(size_t n_cols, const char *const *headers)
{
	crunctl_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->n_cols = n_cols;
	if (crunctl_table_add(t, headers, NULL) < 0) {
		crunctl_table_free(t);
		return NULL;
	}
	return t;
}

int crunctl_table_add(crunctl_table *t, const char *const *cells, const char *const *colours)
{
	size_t base;

	if (t->n_rows == t->cap_rows) {
		size_t ncap = t->cap_rows ? t->cap_rows * 2 : 16;
		char **nc = realloc(t->cells, ncap * t->n_cols * sizeof(*nc));
		if (!nc)
			return -ENOMEM;
		t->cells = nc;
		nc = realloc(t->colours, ncap * t->n_cols * sizeof(*nc));
		if (!nc)
			return -ENOMEM;
		t->colours = nc;
		t->cap_rows = ncap;
	}
	base = t->n_rows * t->n_cols;
	for (size_t i = 0; i < t->n_cols; i++) {
		const char *c = cells[i] ? cells[i] : "-";
		const char *col = colours ? colours[i] : NULL;
		t->cells[base + i] = strdup(c);
		t->colours[base + i] = col ? strdup(col) : NULL;
		if (!t->cells[base + i] || (col && !t->colours[base + i])) {
			for (size_t j = 0; j <= i; j++) {
				free(t->cells[base + j]);
				free(t->colours[base + j]);
			}
			return -ENOMEM;
		}
	}
	t->n_rows++;
	return 0;
}

void crunctl_table_print(const crunctl_table *t, FILE *out, bool colour)
{
	size_t *width = calloc(t->n_cols, sizeof(*width));

	if (!width)
		return;
	for (size_t r = 0; r < t->n_rows; r++)
		for (size_t c = 0; c < t->n_cols; c++) {
			size_t w = text_width(t->cells[r * t->n_cols + c]);
			if (w > width[c])
				width[c] = w;
		}
	for (size_t r = 0; r < t->n_rows; r++) {
		for (size_t c = 0; c < t->n_cols; c++) {
			const char *cell = t->cells[r * t->n_cols + c];
			const char *col = t->colours[r * t->n_cols + c];
			bool last = c + 1 == t->n_cols;
			size_t pad = width[c] - text_width(cell);

			if (colour && col)
				fprintf(out, "\033[%sm%s\033[0m", col, cell);
			else
				fputs(cell, out);
			if (!last)
				fprintf(out, "%*s", (int)(pad + 2), "");
		}
		fputc('\n', out);
	}
	free(width);
}

void crunctl_table_free(crunctl_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_rows * t->n_cols; i++) {
		free(t->cells[i]);
		free(t->colours[i]);
	}
	free(t->cells);
	free(t->colours);
	free(t);
}

char *crunctl_format_attempt(json_t *job, char *buf, size_t len)
{
	json_t *a = json_object_get(job, "attempt"), *m = json_object_get(job, "max_attempts");

	if (!json_is_integer(a) || json_integer_value(a) < 1)
		snprintf(buf, len, "-");
	else if (json_is_integer(m))
		snprintf(buf, len, "%lld/%lld", (long long)json_integer_value(a),
			 (long long)json_integer_value(m));
	else
		snprintf(buf, len, "%lld", (long long)json_integer_value(a));
	return buf;
}

bool crunctl_job_run_at(json_t *job, double *ret_epoch)
{
	const char *state = crunctl_jstr(job, "state");

	return state && strcmp(state, "queued") == 0 && crunctl_job_time(job, "run_at", ret_epoch);
}

const char *const crunctl_job_headers[CRUNCTL_JOB_COLUMNS] = {
	"ID", "PLUGIN", "JOB", "STATE", "ATTEMPT", "AGE", "DURATION"};

/* The DURATION cell.  A queued job has not run (a job waiting for a retry
 * still carries its last attempt's started_at), so there the cell says
 * when it will run: that is what a person scanning a queue wants to know,
 * and a column of its own would be empty for every other job. */
static void duration_cell(json_t *job, double now, char *buf, size_t len)
{
	const char *state = crunctl_jstr(job, "state");
	double t;

	snprintf(buf, len, "-");
	if (state && strcmp(state, "queued") == 0) {
		if (crunctl_job_run_at(job, &t) && t - now >= 1.0)
			crunctl_format_relative(t, now, buf, len);
		return;
	}
	if (crunctl_job_duration(job, now, &t))
		crunctl_format_duration(t, buf, len);
}

int crunctl_table_add_job(crunctl_table *t, json_t *job, double now)
{
	char age[32] = "-", dur[32], attempt[48];
	double created;
	const char *state = crunctl_jstr(job, "state");
	const char *cells[CRUNCTL_JOB_COLUMNS], *colours[CRUNCTL_JOB_COLUMNS] = {NULL};

	if (crunctl_job_time(job, "created_at", &created))
		crunctl_format_relative(created, now, age, sizeof(age));
	duration_cell(job, now, dur, sizeof(dur));
	cells[0] = crunctl_jstr(job, "id");
	cells[1] = crunctl_jstr(job, "plugin");
	cells[2] = crunctl_jstr(job, "job");
	cells[3] = state;
	cells[4] = crunctl_format_attempt(job, attempt, sizeof(attempt));
	cells[5] = age;
	cells[6] = dur;
	colours[3] = crunctl_state_colour(state);
	return crunctl_table_add(t, cells, colours);
}
