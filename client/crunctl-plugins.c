/*
 * crunctl-plugins.c — `crunctl plugins [NAME]`: every job of every loaded
 * plugin on a line with its arguments, or one plugin's jobs, each with a
 * table of its arguments.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crunctl.h"

#define ARG_COLUMNS      5
#define ARGS_SUMMARY_MAX 60 /* columns of the list's ARGUMENTS cell */

static int on_plugins_option(crunctl *ctl, int opt, const char *arg, void *userdata)
{
	const char **name = userdata;

	if (*name)
		return crunctl_usage_error("plugins", "plugins takes at most one NAME");
	*name = arg;
	return 0;
}

/* "seconds:number [message:string]" — required bare, optional in brackets. */
static char *args_summary(json_t *job)
{
	json_t *args = json_object_get(job, "args"), *a;
	char *out = strdup(""), *n;
	size_t i;

	json_array_foreach(args, i, a)
	{
		const char *name = crunctl_jstr(a, "name"), *type = crunctl_jstr(a, "type");
		bool req = json_is_true(json_object_get(a, "required"));
		if (!out || !name)
			continue;
		if (asprintf(&n, "%s%s%s%s:%s%s", out, *out ? " " : "", req ? "" : "[", name,
			     type ? type : "any", req ? "" : "]") < 0)
			n = NULL;
		free(out);
		out = n;
	}
	/* a summary: a long list ends in "..." (plugins NAME shows them all) */
	if (out && strlen(out) > ARGS_SUMMARY_MAX) {
		char *cut = out + ARGS_SUMMARY_MAX - 4;
		while (cut > out && *cut != ' ')
			cut--;
		strcpy(cut, " ...");
	}
	return out;
}

/* One argument as a row: name, type (with its range), required, default,
 * description.  0 or -ENOMEM. */
static int add_arg_row(crunctl_table *t, json_t *a)
{
	json_t *def = json_object_get(a, "default");
	json_t *mn = json_object_get(a, "min"), *mx = json_object_get(a, "max");
	char *deftext = def ? json_dumps(def, JSON_COMPACT | JSON_ENCODE_ANY | CRUNCTL_HUMAN_REAL)
			    : NULL;
	const char *type = crunctl_jstr(a, "type") ? crunctl_jstr(a, "type") : "any";
	const char *desc = crunctl_jstr(a, "description");
	char type_text[128];
	const char *cells[ARG_COLUMNS];
	int r;

	if (json_is_number(mn) && json_is_number(mx))
		snprintf(type_text, sizeof(type_text), "%s %g..%g", type, json_number_value(mn),
			 json_number_value(mx));
	else
		snprintf(type_text, sizeof(type_text), "%s", type);
	cells[0] = crunctl_jstr(a, "name");
	cells[1] = type_text;
	cells[2] = json_is_true(json_object_get(a, "required")) ? "yes" : "no";
	cells[3] = deftext;
	cells[4] = desc && *desc ? desc : NULL;
	r = crunctl_table_add(t, cells, NULL);
	free(deftext);
	return r;
}

/* The table printed with every line indented under its job. */
static int print_indented(const crunctl_table *t)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);

	if (!mem)
		return -1;
	crunctl_table_print(t, mem, false);
	fclose(mem);
	for (char *line = buf, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		printf("    %.*s\n", nl ? (int)(nl - line) : (int)strlen(line), line);
	}
	free(buf);
	return 0;
}

/* "  job NAME - description" and the table of its arguments. */
static int print_job_detail(json_t *job)
{
	static const char *const headers[ARG_COLUMNS] = {"ARGUMENT", "TYPE", "REQUIRED", "DEFAULT",
							 "DESCRIPTION"};
	json_t *args = json_object_get(job, "args"), *a;
	const char *desc = crunctl_jstr(job, "description");
	crunctl_table *t;
	size_t k;
	int r = 0;

	printf("\n  job %s", crunctl_jstr(job, "name") ? crunctl_jstr(job, "name") : "?");
	if (desc && *desc)
		printf(" - %s", desc);
	putchar('\n');
	/* what a submission gets unless it says otherwise (API 1.2 fields) */
	json_t *ma = json_object_get(job, "max_attempts");
	const char *oi = crunctl_jstr(job, "on_interrupt");
	if (json_is_integer(ma) && oi)
		printf("    max_attempts %lld, on_interrupt %s\n",
		       (long long)json_integer_value(ma), oi);
	if (json_array_size(args) == 0) {
		printf("    (no arguments)\n");
		return 0;
	}
	t = crunctl_table_new(ARG_COLUMNS, headers);
	if (!t)
		return -1;
	json_array_foreach(args, k, a)
	{
		r = add_arg_row(t, a);
		if (r < 0)
			break;
	}
	if (r == 0)
		r = print_indented(t);
	crunctl_table_free(t);
	return r;
}

static int print_plugin_detail(json_t *p)
{
	json_t *jobs = json_object_get(p, "jobs"), *job;
	const char *desc = crunctl_jstr(p, "description");
	size_t i;

	printf("%s %s", crunctl_jstr(p, "name") ? crunctl_jstr(p, "name") : "?",
	       crunctl_jstr(p, "version") ? crunctl_jstr(p, "version") : "");
	if (desc && *desc)
		printf(" - %s", desc);
	putchar('\n');
	json_array_foreach(jobs, i, job)
	{
		if (print_job_detail(job) < 0) {
			crunctl_oom();
			return CRUNCTL_EXIT_INTERNAL;
		}
	}
	return 0;
}

/* Add a row per job of plugin p: plugin, version, job, arguments,
 * description.  0 or -1 (ENOMEM). */
static int add_plugin_rows(crunctl_table *t, json_t *p)
{
	json_t *jobs = json_object_get(p, "jobs"), *job;
	size_t k;

	json_array_foreach(jobs, k, job)
	{
		char *summary = args_summary(job);
		const char *desc = crunctl_jstr(job, "description");
		const char *cells[5] = {crunctl_jstr(p, "name"), crunctl_jstr(p, "version"),
					crunctl_jstr(job, "name"),
					summary && *summary ? summary : NULL,
					desc && *desc ? desc : NULL};
		int r = summary ? crunctl_table_add(t, cells, NULL) : -1;

		free(summary);
		if (r < 0)
			return -1;
	}
	return 0;
}

static int print_plugin_list(crunctl *ctl, json_t *v)
{
	static const char *const headers[] = {"PLUGIN", "VERSION", "JOB", "ARGUMENTS",
					      "DESCRIPTION"};
	crunctl_table *t = crunctl_table_new(5, headers);
	json_t *plugins = json_is_array(v) ? v : json_object_get(v, "plugins"), *p;
	size_t i;
	int rc = 0;

	if (!t) {
		crunctl_oom();
		rc = CRUNCTL_EXIT_INTERNAL;
	}
	json_array_foreach(plugins, i, p)
	{
		if (rc)
			break;
		if (add_plugin_rows(t, p) < 0) {
			crunctl_oom();
			rc = CRUNCTL_EXIT_INTERNAL;
		}
	}
	if (rc == 0 && json_array_size(plugins) == 0) {
		if (!ctl->quiet)
			fprintf(stderr, "no plugins loaded\n");
	} else if (rc == 0) {
		crunctl_table_print(t, stdout, false);
	}
	crunctl_table_free(t);
	return rc;
}

int crunctl_cmd_plugins(crunctl *ctl, int argc, char **argv)
{
	static const crunctl_syntax syntax = {.command = "plugins", .on_option = on_plugins_option};
	const char *name = NULL;
	crunctl_response resp;
	json_t *v;
	char *path;
	int rc = crunctl_parse_options(ctl, &syntax, argc, argv, &name);

	if (rc)
		return rc;
	path = name ? crunctl_plugin_path(ctl->client, name) : strdup("/v1/plugins");
	if (!path) {
		if (!name)
			crunctl_oom();
		return CRUNCTL_EXIT_INTERNAL;
	}
	rc = crunctl_call(ctl, "GET", path, NULL, CRUNCTL_REQUEST_TIMEOUT, &resp, &v);
	free(path);
	if (rc)
		return rc;
	if (ctl->json)
		crunctl_print_raw(&resp);
	else if (name)
		rc = print_plugin_detail(json_is_object(json_object_get(v, "plugin"))
						 ? json_object_get(v, "plugin")
						 : v);
	else
		rc = print_plugin_list(ctl, v);
	json_decref(v);
	crunctl_response_free(&resp);
	return rc;
}
