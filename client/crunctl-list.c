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
#define LIST_PAGE_MAX      100

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
	char *cursor;                /* where the next page starts, or NULL */
	bool more;                   /* crund has more jobs than shown */
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

/* The next-page cursor of a list reply, whatever the key's spelling. */
static const char *next_cursor(json_t *page)
{
	static const char *const keys[] = {"next_cursor", "cursor", "next"};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *c = crunctl_jstr(page, keys[i]);
		if (c && *c)
			return c;
	}
	return NULL;
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

/* Follow the pages until limit jobs or the last page. */
static int fetch_pages(crunctl *ctl, const list_args *l, pages *p)
{
	while ((long)json_array_size(p->all) < l->limit) {
		long want = l->limit - (long)json_array_size(p->all);
		crunctl_response resp;
		json_t *page, *jobs;
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
		for (size_t i = 0;
		     i < json_array_size(jobs) && (long)json_array_size(p->all) < l->limit; i++)
			json_array_append(p->all, json_array_get(jobs, i));
		free(p->cursor);
		p->cursor = next_cursor(page) ? strdup(next_cursor(page)) : NULL;
		p->more = p->cursor != NULL || json_array_size(jobs) > (size_t)want;
		if (!p->first)
			p->first = page;
		else
			json_decref(page);
		if (!p->cursor || json_array_size(jobs) == 0)
			break;
	}
	return 0;
}

/* --json: one page unchanged; several as one object of the first page's
 * shape with all the jobs and the cursor to go on from. */
static int print_json(const pages *p)
{
	json_t *out;
	char *text;
	int rc = 0;

	if (p->n_pages == 1) {
		crunctl_print_raw(&p->first_resp);
		return 0;
	}
	out = json_is_object(p->first) ? json_deep_copy(p->first) : json_object();
	if (!out || json_object_set(out, "jobs", p->all) < 0 ||
	    (json_object_get(out, "next_cursor") &&
	     json_object_set_new(out, "next_cursor",
				 p->cursor ? json_string(p->cursor) : json_null()) < 0) ||
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
