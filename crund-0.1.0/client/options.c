/*
 * options.c — the one option parser of crunctl's commands.
 *
 * Each command describes its syntax (crunctl_syntax: getopt_long's option
 * table, whether "--" ends the options) and gets its operands and options
 * back, in command-line order, through one callback; the global flags
 * (--json, --quiet, --no-color) are handled here for all of them.
 *
 * getopt_long runs in RETURN_IN_ORDER mode ("-" leading the short options):
 * operands come back in place as option 1, so "submit PLUGIN JOB k=v" keeps
 * its order whatever options sit between them, and POSIXLY_CORRECT changes
 * nothing.  getopt_long is more lenient than crunctl has always been: it
 * takes abbreviations ("--iso"), bundles ("-qf") and attached values
 * ("-wfoo").  Every option it returns is therefore checked against the
 * element it came from, and anything not spelled out is refused as an
 * unknown option.  Because the parse stops at the first error, getopt never
 * resumes inside a bundle, so the element being read is always
 * argv[optind] as it was before the call.
 */
#include "config.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "crunctl.h"

enum {
	OPT_JSON = 0x1000,
	OPT_NO_COLOR,
};

static const struct option global_options[] = {
	{"json", no_argument, NULL, OPT_JSON},
	{"quiet", no_argument, NULL, 'q'},
	{"no-color", no_argument, NULL, OPT_NO_COLOR},
	{"no-colour", no_argument, NULL, OPT_NO_COLOR},
};
#define N_GLOBAL (sizeof(global_options) / sizeof(global_options[0]))

/* The verb's options followed by the global ones, {0}-terminated; NULL on
 * ENOMEM.  `shorts` gets "-:" (operands in order, no messages), the
 * global "q" and the command's short options. */
static struct option *merge_options(const crunctl_syntax *syn, char *shorts, size_t len)
{
	size_t n = 0;
	struct option *all;

	while (syn->options && syn->options[n].name)
		n++;
	all = calloc(n + N_GLOBAL + 1, sizeof(*all));
	if (!all)
		return NULL;
	if (n)
		memcpy(all, syn->options, n * sizeof(*all));
	memcpy(all + n, global_options, sizeof(global_options));
	snprintf(shorts, len, "-:q%s", syn->short_options ? syn->short_options : "");
	return all;
}

/* Does `elem` spell out an option of the table exactly?  "-c" for a short
 * option, "--name" or (one taking a value) "--name=VALUE" for a long one.
 * Then *ret_val is the option's `val`. */
static bool spelled_out(const struct option *all, const char *shorts, const char *elem,
			int *ret_val)
{
	const char *name, *eq;
	size_t n;

	if (elem[0] == '-' && elem[1] != '-' && elem[1] != '\0' && elem[1] != ':' &&
	    elem[2] == '\0' && strchr(shorts + 2, elem[1])) {
		*ret_val = elem[1];
		return true;
	}
	if (strncmp(elem, "--", 2) != 0)
		return false;
	name = elem + 2;
	eq = strchr(name, '=');
	n = eq ? (size_t)(eq - name) : strlen(name);
	for (const struct option *o = all; o->name; o++) {
		if (strlen(o->name) != n || strncmp(o->name, name, n) != 0)
			continue;
		if (eq && o->has_arg == no_argument)
			return false;
		*ret_val = o->val;
		return true;
	}
	return false;
}

/* The global flags; true when `opt` was one. */
static bool global_flag(crunctl *ctl, int opt)
{
	switch (opt) {
	case OPT_JSON:
		ctl->json = true;
		ctl->colour = false;
		return true;
	case 'q':
		ctl->quiet = true;
		return true;
	case OPT_NO_COLOR:
		ctl->colour = false;
		return true;
	default:
		return false;
	}
}

/* After "--": everything left is an operand, or with a command that takes
 * no "--", the "--" is an unknown option. */
static int after_dashdash(crunctl *ctl, const crunctl_syntax *syn, int argc, char **args, int at,
			  void *userdata)
{
	int rc = 0;

	if (!syn->dashdash)
		return crunctl_usage_error(syn->command, "unknown option '%s'", args[at]);
	for (int k = at + 1; k < argc && rc == 0; k++)
		rc = syn->on_option(ctl, CRUNCTL_OPT_OPERAND, args[k], userdata);
	return rc;
}

/* One getopt_long result for the element args[at]; 0 to go on. */
static int take_option(crunctl *ctl, const crunctl_syntax *syn, const struct option *all,
		       const char *shorts, int c, const char *elem, void *userdata)
{
	int val = 0;

	if (!spelled_out(all, shorts, elem, &val) || (c != ':' && c != val))
		return crunctl_usage_error(syn->command, "unknown option '%s'", elem);
	if (c == ':')
		return crunctl_usage_error(syn->command, "option '%s' needs a value", elem);
	if (global_flag(ctl, c))
		return 0;
	return syn->on_option(ctl, c, optarg, userdata);
}

int crunctl_parse_options(crunctl *ctl, const crunctl_syntax *syn, int argc, char **argv,
			  void *userdata)
{
	char shorts[64];
	struct option *all = merge_options(syn, shorts, sizeof(shorts));
	char **args = calloc((size_t)argc + 2, sizeof(*args));
	int rc = 0;

	if (!all || !args) {
		free(all);
		free(args);
		crunctl_oom();
		return CRUNCTL_EXIT_INTERNAL;
	}
	/* getopt wants a program name in front */
	args[0] = (char *)syn->command;
	memcpy(args + 1, argv, (size_t)argc * sizeof(*args));
	optind = 0; /* a full reset of glibc's getopt */
	opterr = 0;
	while (rc == 0) {
		int at = optind ? optind : 1;
		int c = getopt_long(argc + 1, args, shorts, all, NULL);

		if (c == -1) {
			if (at < argc + 1 && strcmp(args[at], "--") == 0)
				rc = after_dashdash(ctl, syn, argc + 1, args, at, userdata);
			break;
		}
		if (c == CRUNCTL_OPT_OPERAND)
			rc = syn->on_option(ctl, c, optarg, userdata);
		else
			rc = take_option(ctl, syn, all, shorts, c, args[at], userdata);
	}
	free(all);
	free(args);
	return rc;
}

/* ------------------------------------------------- commands taking IDs */

typedef struct ids {
	char **ids;
	int n;
} ids;

static int on_id(crunctl *ctl, int opt, const char *arg, void *userdata)
{
	ids *l = userdata;

	l->ids[l->n++] = (char *)arg;
	return 0;
}

int crunctl_parse_ids(crunctl *ctl, const char *command, int argc, char **argv, char ***ret_ids,
		      int *ret_n)
{
	const crunctl_syntax syn = {.command = command, .dashdash = true, .on_option = on_id};
	ids l = {.ids = calloc((size_t)argc + 1, sizeof(char *))};
	int rc;

	if (!l.ids) {
		crunctl_oom();
		return CRUNCTL_EXIT_INTERNAL;
	}
	rc = crunctl_parse_options(ctl, &syn, argc, argv, &l);
	if (rc == 0 && l.n == 0)
		rc = crunctl_usage_error(command, "missing job ID");
	if (rc) {
		free(l.ids);
		return rc;
	}
	*ret_ids = l.ids;
	*ret_n = l.n;
	return 0;
}
