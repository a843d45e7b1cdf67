/*
 * crunctl-list.c — `crunctl list [--state S] [--plugin P] [--limit N]`:
 * jobs newest first, following the API's pages until N are shown.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crunctl.h"

#define LIST_DEFAULT_LIMIT 50
/* The most jobs one page may ask for: crund's ?limit maximum
 * (CRUND_LIST_MAX, daemon/http/route.h); more are fetched page by page. */
#define LIST_PAGE_MAX      1000

enum {
	OPT_STATE = 0x100,
	OPT_PLUGIN,
	OPT_LIMIT,
};

typedef struct list_args {
	const char *state, *plugin;
	long limit;
	bool limit_given;
} list_args;

/* What the pages brought. */
typedef struct pages {
	json_t *all;                 /* the jobs, at most limit */
	json_t *first;               /* the first page */
	crunctl_response first_resp; /* the last page's reply (the only one's, with one) */
	char *cursor;                /* where the page after the last job shown starts,
					or NULL when crund has no more */
	bool more;                   /* crund has more jobs than shown */
	bool cut;                    /* a page brought more jobs than asked for */
	int n_pages;
} pages;

static int on_list_option(crunctl *ctl, int opt, const char *arg, void *userdata)
{
	list_args *l = userdata;

	switch (opt) {
	case OPT_STATE: {
		/* checked here: a bad value is a usage error (exit 2), not the
		 * API's 400 (exit 6) */
		static const char *const states[] = {"queued", "running", "succeeded", "failed",
						     "cancelled"};
		const char *p = arg;
		do {
			size_t n = strcspn(p, ","), i;
			for (i = 0; i < sizeof(states) / sizeof(*states); i++)
				if (strlen(states[i]) == n && !strncmp(p, states[i], n))
					break;
			if (i == sizeof(states) / sizeof(*states))
				return crunctl_usage_error(
					"list",
					"--state wants queued, running, succeeded, "
					"failed or cancelled (or several, "
					"comma-separated), got '%s'",
					arg);
			p += n;
		} while (*p++ == ',');
		l->state = arg;
		return 0;
	}
	case OPT_PLUGIN:
		l->plugin = arg;
		return 0;
	case OPT_LIMIT:
		l->limit_given = true;
		if (crunctl_parse_count(arg, &l->limit) < 0)
			return crunctl_usage_error(
				"list", "--limit wants a positive number, got '%s'", arg);
		return 0;
	default:
		return crunctl_usage_error("list", "unexpected argument '%s'", arg);
	}
}

static const char *const cursor_keys[] = {"next_cursor", "cursor", "next"};

/* The next-page cursor of a list reply, whatever the key's spelling. */
static const char *next_cursor(json_t *page)
{
	for (size_t i = 0; i < sizeof(cursor_keys) / sizeof(cursor_keys[0]); i++) {
		const char *c = crunctl_jstr(page, cursor_keys[i]);
		if (c && *c)
			return c;
	}
	return NULL;
}

/* The key of a list reply's cursor (its spelling, else next_cursor). */
static const char *cursor_key(json_t *page)
{
	for (size_t i = 0; i < sizeof(cursor_keys) / sizeof(cursor_keys[0]); i++)
		if (json_object_get(page, cursor_keys[i]))
			return cursor_keys[i];
	return cursor_keys[0];
}

static json_t *page_jobs(json_t *page)
{
	return json_is_array(page) ? page : json_object_get(page, "jobs");
}

/* Append "&key=value" (escaped) to *q; 0 or -ENOMEM. */
static int add_query(crunctl *ctl, char **q, const char *key, const char *value)
{
	char *e = crunctl_escape(ctl->client, value), *nq;

	if (!e || asprintf(&nq, "%s%s%s=%s", *q, strchr(*q, '?') ? "&" : "?", key, e) < 0) {
		free(e);
		return -ENOMEM;
	}
	free(e);
	free(*q);
	*q = nq;
	return 0;
}

/* GET one page of at most `want` jobs into *ret_page, its reply into *resp. */
static int get_page(crunctl *ctl, const list_args *l, const char *cursor, long want,
		    crunctl_response *resp, json_t **ret_page)
{
	char *path = NULL;
	int rc;

	if (asprintf(&path, "/v1/jobs?limit=%ld", want > LIST_PAGE_MAX ? LIST_PAGE_MAX : want) <
		    0 ||
	    (l->state && add_query(ctl, &path, "state", l->state) < 0) ||
	    (l->plugin && add_query(ctl, &path, "plugin", l->plugin) < 0) ||
	    (cursor && add_query(ctl, &path, "cursor", cursor) < 0)) {
		free(path);
		crunctl_oom();
		return CRUNCTL_EXIT_INTERNAL;
	}
	rc = crunctl_call(ctl, "GET", path, NULL, CRUNCTL_REQUEST_TIMEOUT, resp, ret_page);
	free(path);
	return rc;
}

/* The cursor after the last job taken from a page: the page's own when
 * every job of it was taken, else (a page longer than asked for) the last
 * job's id, which is what crund's next_cursor is.  New string or NULL;
 * -ENOMEM. */
static int cursor_after(json_t *page, json_t *jobs, size_t taken, char **ret)
{
	const char *c;

	if (taken < json_array_size(jobs))
		c = crunctl_jstr(json_array_get(jobs, taken - 1), "id");
	else
		c = next_cursor(page);
	*ret = NULL;
	if (c && !(*ret = strdup(c)))
		return -ENOMEM;
	return 0;
}

/* Follow the pages until limit jobs or the last page. */
static int fetch_pages(crunctl *ctl, const list_args *l, pages *p)
{
	while ((long)json_array_size(p->all) < l->limit) {
		long want = l->limit - (long)json_array_size(p->all);
		crunctl_response resp;
		json_t *page, *jobs;
		size_t taken = 0;
		int rc = get_page(ctl, l, p->cursor, want, &resp, &page);

		if (rc)
			return rc;
		p->n_pages++;
		crunctl_response_free(&p->first_resp);
		p->first_resp = resp; /* kept: one page prints unchanged with --json */
		jobs = page_jobs(page);
		if (!json_is_array(jobs)) {
			fprintf(stderr, "crunctl: crund sent a job list without jobs\n");
			json_decref(page);
			return CRUNCTL_EXIT_INTERNAL;
		}
		while (taken < json_array_size(jobs) && (long)taken < want)
			if (json_array_append(p->all, json_array_get(jobs, taken++)) < 0) {
				json_decref(page);
				crunctl_oom();
				return CRUNCTL_EXIT_INTERNAL;
			}
		free(p->cursor);
		/* an empty page ends the list whatever its cursor says */
		if (taken == 0)
			p->cursor = NULL;
		else if (cursor_after(page, jobs, taken, &p->cursor) < 0) {
			json_decref(page);
			crunctl_oom();
			return CRUNCTL_EXIT_INTERNAL;
		}
		p->cut = p->cut || taken < json_array_size(jobs);
		p->more = p->cursor != NULL || taken < json_array_size(jobs);
		/* jobs belongs to page: done with it before page may go */
		if (!p->first)
			p->first = page;
		else
			json_decref(page);
		if (!p->cursor)
			break;
	}
	return 0;
}

/* --json: one page unchanged; several (or one cut short) as one object of
 * the first page's shape with the jobs shown and the cursor after the last
 * of them (null: no more). */
static int print_json(const pages *p)
{
	json_t *out;
	char *text;
	int rc = 0;

	if (p->n_pages == 1 && !p->cut) {
		crunctl_print_raw(&p->first_resp);
		return 0;
	}
	out = json_is_object(p->first) ? json_deep_copy(p->first) : json_object();
	if (!out || json_object_set(out, "jobs", p->all) < 0 ||
	    json_object_set_new(out, cursor_key(out),
				p->cursor ? json_string(p->cursor) : json_null()) < 0 ||
	    !(text = json_dumps(out, JSON_COMPACT))) {
		crunctl_oom();
		rc = CRUNCTL_EXIT_INTERNAL;
	} else {
		puts(text);
		free(text);
	}
	json_decref(out);
	return rc;
}

static int print_table(crunctl *ctl, const list_args *l, const pages *p)
{
	crunctl_table *t = crunctl_table_new(CRUNCTL_JOB_COLUMNS, crunctl_job_headers);
	double now = crunctl_now();
	size_t i;
	json_t *job;
	int rc = 0;

	if (!t) {
		crunctl_oom();
		return CRUNCTL_EXIT_INTERNAL;
	}
	json_array_foreach(p->all, i, job)
	{
		if (crunctl_table_add_job(t, job, now) < 0) {
			crunctl_oom();
			rc = CRUNCTL_EXIT_INTERNAL;
			break;
		}
	}
	if (json_array_size(p->all) == 0) {
		if (!ctl->quiet)
			fprintf(stderr, "no jobs\n");
	} else {
		crunctl_table_print(t, stdout, ctl->colour);
	}
	if (p->more && !l->limit_given && !ctl->quiet)
		fprintf(stderr, "(the %ld newest; more with --limit N)\n", l->limit);
	crunctl_table_free(t);
	return rc;
}

int crunctl_cmd_list(crunctl *ctl, int argc, char **argv)
{
	static const struct option options[] = {
		{"state", required_argument, NULL, OPT_STATE},
		{"plugin", required_argument, NULL, OPT_PLUGIN},
		{"limit", required_argument, NULL, OPT_LIMIT},
		{0},
	};
	static const crunctl_syntax syntax = {
		.command = "list", .options = options, .on_option = on_list_option};
	list_args l = {.limit = LIST_DEFAULT_LIMIT};
	pages p = {.all = json_array()};
	int rc;

	if (!p.all) {
		crunctl_oom();
		return CRUNCTL_EXIT_INTERNAL;
	}
	rc = crunctl_parse_options(ctl, &syntax, argc, argv, &l);
	if (rc == 0)
		rc = fetch_pages(ctl, &l, &p);
	if (rc == 0)
		rc = ctl->json ? print_json(&p) : print_table(ctl, &l, &p);
	free(p.cursor);
	json_decref(p.first);
	json_decref(p.all);
	crunctl_response_free(&p.first_resp);
	return rc;
}
