/*
 * settings.c — flags, config file and defaults; see settings.h.
 *
 * One table describes every setting, so the command line and the config
 * file accept exactly the same names and values, and a new setting is one
 * table row.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "settings.h"
#include "log.h"
#include "store/store.h"

const char crd_config_help[] =
	"Usage: crund [OPTION]...\n"
	"Run jobs from plugins over an HTTP/JSON API (one runner, one event loop).\n"
	"\n"
	"  --listen ADDR             HOST:PORT, [V6]:PORT or unix:PATH; repeatable\n"
	"                            (default " CRUND_DEFAULT_LISTEN ")\n"
	"  --plugin-dir DIR          directory of plugin .so files; repeatable\n"
	"                            (default " CRUND_PLUGIN_DIR ")\n"
	"  --token-file FILE         require 'Authorization: Bearer TOKEN' (the file's\n"
	"                            first line); needed to listen beyond loopback\n"
	"  --max-running N           jobs running at once (default 1024)\n"
	"  --max-queued N            jobs waiting for a slot, then 429 (default 10000)\n"
	"  --grace SECONDS           on SIGTERM, time running jobs get to finish (default 30)\n"
	"  --executor-threads N      worker threads for blocking work (default: cpus + 4, max 32)\n"
	"  --executor-timeout S      wait for executor threads at exit (default 300)\n"
	"  --retain-jobs N           ended jobs kept for queries (default 10000)\n"
	"  --retain-seconds S        how long ended jobs are kept (default 3600)\n"
	"  --max-body BYTES          request body limit, K/M/G suffixes (default 1M)\n"
	"  --max-connections N       concurrent HTTP connections, all listeners together;\n"
	"                            beyond it a new connection gets a 503 (default 1000)\n"
	"  --max-connections-per-client N\n"
	"                            connections one client (source address; uid on a\n"
	"                            Unix socket) may hold (default: half of\n"
	"                            --max-connections)\n"
	"  --unix-reserve N          connections Unix-socket listeners may open beyond\n"
	"                            --max-connections, for the operator (default 16)\n"
	"  --max-result-bytes BYTES  job result limit (default 1M)\n"
	"  --max-log-bytes BYTES     job log limit (default 64K)\n"
	"  --stream-ping SECONDS     keep-alive comment on idle event streams (default 15)\n"
	"  --event-window N          job events kept for GET /v1/events clients that\n"
	"                            reconnect with Last-Event-ID (default 1024)\n"
	"  --idle-timeout SECONDS    close idle or stalled connections (whole seconds;\n"
	"                            default 75)\n"
	"  --header-timeout SECONDS  close a connection whose request head is not whole\n"
	"                            this long after it began (default 10)\n"
	"  --body-timeout SECONDS    close a connection whose request body is not whole\n"
	"                            this long after its head (default 10)\n"
	"  --allow-insecure-plugins  accept a plugin dir writable by others\n"
	"  --allow-command-plugins   load plugins that run arbitrary commands (exec)\n"
	"  --exec-allow PATTERN      a command the exec plugin may run: an absolute\n"
	"                            path or a glob; repeatable (default: none)\n"
	"  --http-allow PATTERN      a host the http plugin may call (a glob, with an\n"
	"                            optional :PORT); repeatable (default: any host)\n"
	"  --debug                   runtime debug mode and debug logging\n"
	"  --log-level LEVEL         error, warning, info (default) or debug\n"
	"  --store URL               where jobs are kept: sqlite:PATH (default\n"
	"                            $STATE_DIRECTORY/crund.db under systemd, else\n"
	"                            /var/lib/crund/crund.db for root and\n"
	"                            $XDG_STATE_HOME/crund/crund.db (default\n"
	"                            ~/.local/state/crund/crund.db) for others) or\n"
	"                            memory: (every job is lost when crund exits), or\n"
	"                            postgresql://USER@HOST/DB (any libpq connection\n"
	"                            string or URI): several nodes share one database\n"
	"  --node-id NAME            this node's name on a shared store (default: the\n"
	"                            host name and a suffix unique to this start)\n"
	"  --lease SECONDS           a running job is held this long without renewal on a\n"
	"                            shared store; a dead node's jobs run again (or fail,\n"
	"                            by on_interrupt) after it (default 30)\n"
	"  --sync full|normal        full (default): an accepted job survives power loss;\n"
	"                            normal: it survives a crash of crund, not of the machine\n"
	"  --retry-max-delay S       longest backoff before a retry (default 3600; 0: retry\n"
	"                            at once)\n"
	"  --config FILE             read settings from FILE ('key = value' lines,\n"
	"                            keys as the long options without '--')\n"
	"  -V, --version             print the version and exit\n"
	"  -h, --help                print this help and exit\n"
	"\n"
	"Exit status: 0 clean shutdown, 1 runtime failure, 2 usage or configuration error.\n";

enum opt_type { T_LIST, T_STR, T_UINT, T_DOUBLE, T_SIZE, T_BOOL, T_LEVEL, T_SYNC };

struct opt {
	const char *name;
	enum opt_type type;
	size_t off;   /* into crd_config */
	size_t n_off; /* T_LIST: the count */
	double min, max;
};

#define O(f) offsetof(crd_config, f)
static const struct opt opts[] = {
	{"listen", T_LIST, O(listen), O(n_listen), 0, 0},
	{"plugin-dir", T_LIST, O(plugin_dirs), O(n_plugin_dirs), 0, 0},
	{"token-file", T_STR, O(token_file), 0, 0, 0},
	{"max-running", T_UINT, O(max_running), 0, 1, 1000000},
	{"max-queued", T_UINT, O(max_queued), 0, 0, 10000000},
	{"grace", T_DOUBLE, O(grace), 0, 0, 86400},
	{"executor-threads", T_UINT, O(executor_threads), 0, 0, 1024},
	{"executor-timeout", T_DOUBLE, O(executor_timeout), 0, 0, 86400},
	{"retain-jobs", T_UINT, O(retain_jobs), 0, 0, 10000000},
	{"retain-seconds", T_DOUBLE, O(retain_seconds), 0, 0, 365 * 86400.0},
	{"max-body", T_SIZE, O(max_body), 0, 64, 1024.0 * 1024 * 1024},
	{"max-connections", T_UINT, O(max_connections), 0, 1, 1000000},
	{"max-result-bytes", T_SIZE, O(max_result_bytes), 0, 16, 1024.0 * 1024 * 1024},
	{"max-log-bytes", T_SIZE, O(max_log_bytes), 0, 0, 1024.0 * 1024 * 1024},
	{"stream-ping", T_DOUBLE, O(stream_ping), 0, 0.05, 3600},
	{"event-window", T_UINT, O(event_window), 0, 1, 1000000},
	{"idle-timeout", T_UINT, O(idle_timeout), 0, 1, 86400},
	{"header-timeout", T_DOUBLE, O(header_timeout), 0, 1, 86400},
	{"body-timeout", T_DOUBLE, O(body_timeout), 0, 1, 86400},
	{"max-connections-per-client", T_UINT, O(max_client_conns), 0, 0, 1000000},
	{"unix-reserve", T_UINT, O(unix_reserve), 0, 0, 100000},
	{"allow-insecure-plugins", T_BOOL, O(allow_insecure_plugins), 0, 0, 0},
	{"allow-command-plugins", T_BOOL, O(allow_command_plugins), 0, 0, 0},
	{"exec-allow", T_LIST, O(exec_allow), O(n_exec_allow), 0, 0},
	{"http-allow", T_LIST, O(http_allow), O(n_http_allow), 0, 0},
	{"debug", T_BOOL, O(debug), 0, 0, 0},
	{"log-level", T_LEVEL, O(log_level), 0, 0, 0},
	{"store", T_STR, O(store), 0, 0, 0},
	{"sync", T_SYNC, O(sync), 0, 0, 0},
	{"retry-max-delay", T_DOUBLE, O(retry_max_delay), 0, 0, 30 * 86400.0},
	{"node-id", T_STR, O(node_id), 0, 0, 0},
	{"lease", T_DOUBLE, O(lease), 0, 0.3, 86400},
};
#undef O

void crd_config_defaults(crd_config *c)
{
	memset(c, 0, sizeof(*c));
	c->max_running = CRUND_DEFAULT_MAX_RUNNING;
	c->max_queued = CRUND_DEFAULT_MAX_QUEUED;
	c->grace = CRUND_DEFAULT_GRACE;
	c->executor_timeout = CRUND_DEFAULT_EXECUTOR_TIMEOUT;
	c->retain_jobs = CRUND_DEFAULT_RETAIN_JOBS;
	c->retain_seconds = CRUND_DEFAULT_RETAIN_SECONDS;
	c->max_body = CRUND_DEFAULT_MAX_BODY;
	c->max_connections = CRUND_DEFAULT_MAX_CONNECTIONS;
	c->max_result_bytes = CRUND_DEFAULT_MAX_RESULT;
	c->max_log_bytes = CRUND_DEFAULT_MAX_LOG;
	c->stream_ping = CRUND_DEFAULT_STREAM_PING;
	c->event_window = CRUND_DEFAULT_EVENT_WINDOW;
	c->idle_timeout = CRUND_DEFAULT_IDLE_TIMEOUT;
	c->header_timeout = CRUND_DEFAULT_HEADER_TIMEOUT;
	c->body_timeout = CRUND_DEFAULT_BODY_TIMEOUT;
	c->unix_reserve = CRUND_DEFAULT_UNIX_RESERVE;
	c->log_level = CRUND_LOG_INFO;
	c->retry_max_delay = CRUND_DEFAULT_RETRY_MAX_DELAY;
}

static void free_list(char ***list, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free((*list)[i]);
	free(*list);
	*list = NULL;
	*n = 0;
}

void crd_config_free(crd_config *c)
{
	free_list(&c->listen, &c->n_listen);
	free_list(&c->plugin_dirs, &c->n_plugin_dirs);
	free_list(&c->exec_allow, &c->n_exec_allow);
	free_list(&c->http_allow, &c->n_http_allow);
	free(c->token_file);
	if (c->token) {
		memset(c->token, 0, strlen(c->token));
		free(c->token);
	}
	free(c->config_file);
	free(c->store);
	free(c->node_id);
	memset(c, 0, sizeof(*c));
}

static const struct opt *find_opt(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (strlen(opts[i].name) == len && !memcmp(opts[i].name, name, len))
			return &opts[i];
	return NULL;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Parse a size with an optional K/M/G (binary) suffix. */
static int parse_size(const char *v, double *ret)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (errno || end == v || d < 0 || !isfinite(d))
		return -EINVAL;
	while (*end == ' ')
		end++;
	double mult = 1;
	switch (toupper((unsigned char)*end)) {
	case 'K':
		mult = 1024;
		end++;
		break;
	case 'M':
		mult = 1024.0 * 1024;
		end++;
		break;
	case 'G':
		mult = 1024.0 * 1024 * 1024;
		end++;
		break;
	default:
		break;
	}
	if (mult > 1 && (*end == 'i' || *end == 'I'))
		end++;
	if (mult > 1 && (*end == 'b' || *end == 'B'))
		end++;
	if (*end)
		return -EINVAL;
	*ret = floor(d * mult);
	return 0;
}

static int parse_bool(const char *v, bool *ret)
{
	if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
	    !strcasecmp(v, "on")) {
		*ret = true;
		return 0;
	}
	if (!strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
	    !strcasecmp(v, "off")) {
		*ret = false;
		return 0;
	}
	return -EINVAL;
}

/* An --http-allow pattern's shape (the http plugin matches it): HOST or
 * HOST:PORT, HOST a glob of a host name or address without scheme, path
 * or white space (IPv6 in brackets), PORT 1..65535 or '*'.  NULL, or what
 * is wrong with it. */
static const char *http_allow_problem(const char *v)
{
	const char *port = NULL;
	size_t hlen;
	if (strstr(v, "://"))
		return "a host only, without a scheme (http-allow applies to http and https)";
	if (v[0] == '[') {
		const char *close = strchr(v, ']');
		if (!close)
			return "an IPv6 address needs its closing ']'";
		if (close[1] && close[1] != ':')
			return "only :PORT may follow ']'";
		hlen = (size_t)(close - v) + 1;
		port = close[1] ? close + 2 : NULL;
	} else {
		const char *colon = strchr(v, ':');
		if (colon && strchr(colon + 1, ':'))
			return "write an IPv6 address in brackets, as [::1]";
		hlen = colon ? (size_t)(colon - v) : strlen(v);
		port = colon ? colon + 1 : NULL;
	}
	if (hlen == 0 || (v[0] == '[' && hlen == 2))
		return "no host (use * for any)";
	if (strcspn(v, "/@ \t") < hlen)
		return "a host only: no scheme, path, user or white space";
	if (port) {
		char *end;
		long p = strtol(port, &end, 10);
		if (strcmp(port, "*") != 0 &&
		    (!*port || *end || p < 1 || p > 65535 || !isdigit((unsigned char)*port)))
			return "the port must be 1..65535 or *";
	}
	return NULL;
}

/* Apply one setting.  `replace_list`: first occurrence of a list key at
 * this level (command line replaces the file's list). */
static int apply(crd_config *c, const struct opt *o, const char *v, bool replace_list,
		 const char *where, char *err, size_t errlen)
{
	char *base = (char *)c;
	double d;
	char *end;

	switch (o->type) {
	case T_LIST: {
		char ***list = (char ***)(base + o->off);
		size_t *n = (size_t *)(base + o->n_off);
		if (!*v)
			return fail(err, errlen, "%s--%s needs a non-empty value", where, o->name);
		const char *bad = o->off == offsetof(crd_config, http_allow) ? http_allow_problem(v)
									     : NULL;
		if (bad)
			return fail(err, errlen, "%s--http-allow '%.80s': %s", where, v, bad);
		if (replace_list)
			free_list(list, n);
		/* NULL-terminated too (plugins read exec-allow and http-allow
		 * as a NULL-terminated list) */
		char **nl = realloc(*list, (*n + 2) * sizeof(char *));
		if (!nl)
			return fail(err, errlen, "out of memory");
		*list = nl;
		nl[*n] = NULL;
		if (!(nl[*n] = strdup(v)))
			return fail(err, errlen, "out of memory");
		(*n)++;
		nl[*n] = NULL;
		return 0;
	}
	case T_STR: {
		char **s = (char **)(base + o->off);
		if (!*v)
			return fail(err, errlen, "%s--%s needs a non-empty value", where, o->name);
		/* a node's name goes into metrics labels and NOTIFY payloads */
		if (o->off == offsetof(crd_config, node_id) &&
		    (strlen(v) > 63 ||
		     strspn(v,
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") !=
			     strlen(v)))
			return fail(err, errlen,
				    "%s--node-id '%.80s': use up to 63 letters, digits and . _ : -",
				    where, v);
		free(*s);
		if (!(*s = strdup(v)))
			return fail(err, errlen, "out of memory");
		return 0;
	}
	case T_UINT:
		errno = 0;
		d = strtod(v, &end);
		/* digits only: "1e3" and "0x10" read as numbers, not as written */
		if (errno || end == v || *end || d != floor(d) || d < o->min || d > o->max ||
		    strspn(v, "0123456789") != strlen(v))
			return fail(err, errlen,
				    "%s--%s: '%s' is not a whole number between %.0f and %.0f",
				    where, o->name, v, o->min, o->max);
		*(unsigned *)(base + o->off) = (unsigned)d;
		return 0;
	case T_DOUBLE:
		errno = 0;
		d = strtod(v, &end);
		if (errno || end == v || *end || !isfinite(d) || d < o->min || d > o->max)
			return fail(err, errlen,
				    "%s--%s: '%s' is not a number of seconds between %g and %g",
				    where, o->name, v, o->min, o->max);
		*(double *)(base + o->off) = d;
		return 0;
	case T_SIZE:
		if (parse_size(v, &d) < 0 || d < o->min || d > o->max)
			return fail(err, errlen,
				    "%s--%s: '%s' is not a size between %.0f and %.0f bytes (K, M, "
				    "G suffixes allowed)",
				    where, o->name, v, o->min, o->max);
		*(size_t *)(base + o->off) = (size_t)d;
		return 0;
	case T_BOOL:
		if (parse_bool(v, (bool *)(base + o->off)) < 0)
			return fail(err, errlen, "%s%s: '%s' is not a boolean (true/false)", where,
				    o->name, v);
		return 0;
	case T_SYNC:
		if (!strcmp(v, "full"))
			*(int *)(base + o->off) = CRD_STORE_SYNC_FULL;
		else if (!strcmp(v, "normal"))
			*(int *)(base + o->off) = CRD_STORE_SYNC_NORMAL;
		else
			return fail(err, errlen, "%s--%s: '%s' is not full or normal", where,
				    o->name, v);
		return 0;
	case T_LEVEL: {
		int l = crd_log_parse_level(v);
		if (l < 0)
			return fail(err, errlen,
				    "%s--%s: '%s' is not a level (error, warning, info, debug)",
				    where, o->name, v);
		*(int *)(base + o->off) = l;
		return 0;
	}
	}
	return -EINVAL;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int crd_config_parse_text(crd_config *c, const char *text, const char *origin, char *err,
			  size_t errlen)
{
	char *copy = strdup(text), *save = NULL, *line;
	bool seen_list[sizeof(opts) / sizeof(opts[0])] = {false};
	unsigned lineno = 0;
	int rc = 0;

	if (!copy)
		return fail(err, errlen, "out of memory");
	/* strtok_r would skip empty lines and break line numbers: walk by hand. */
	for (line = copy; line && rc == 0; line = save) {
		save = strchr(line, '\n');
		if (save)
			*save++ = '\0';
		lineno++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *l = trim(line);
		if (!*l)
			continue;
		char where[300];
		snprintf(where, sizeof(where), "%s:%u: ", origin, lineno);
		char *eq = strchr(l, '=');
		char *key = l, *val;
		if (eq) {
			*eq = '\0';
			key = trim(key);
			val = trim(eq + 1);
			/* allow "value" quoting */
			size_t vl = strlen(val);
			if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
				val[vl - 1] = '\0';
				val++;
			}
		} else {
			val = NULL;
		}
		const struct opt *o = find_opt(key, strlen(key));
		if (!o) {
			rc = fail(err, errlen, "%sunknown key '%s'", where, key);
			break;
		}
		if (!val) {
			if (o->type != T_BOOL) {
				rc = fail(err, errlen, "%s'%s' needs '= value'", where, key);
				break;
			}
			val = (char *)"true";
		}
		size_t idx = (size_t)(o - opts);
		rc = apply(c, o, val, !seen_list[idx], where, err, errlen);
		seen_list[idx] = true;
	}
	free(copy);
	return rc;
}

static int read_file(const char *path, char **ret, size_t max, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return fail(err, errlen, "cannot read '%s': %s", path, strerror(errno));
	char *data = malloc(max + 1);
	if (!data) {
		fclose(f);
		return fail(err, errlen, "out of memory");
	}
	size_t n = fread(data, 1, max + 1, f);
	int rerr = ferror(f);
	fclose(f);
	if (rerr) {
		free(data);
		return fail(err, errlen, "cannot read '%s'", path);
	}
	if (n > max) {
		free(data);
		return fail(err, errlen, "'%s' is larger than %zu bytes", path, max);
	}
	data[n] = '\0';
	if (strlen(data) != n) {
		free(data);
		return fail(err, errlen, "'%s' contains a NUL byte", path);
	}
	*ret = data;
	return 0;
}

int crd_config_read_token(const char *path, char **ret_token, char *err, size_t errlen)
{
	char *data;
	char why[512];
	int rc = read_file(path, &data, 4096, why, sizeof(why));
	if (rc < 0)
		return fail(err, errlen, "--token-file: %s", why);
	char *nl = strchr(data, '\n');
	if (nl)
		*nl = '\0';
	char *t = trim(data);
	if (!*t) {
		free(data);
		return fail(err, errlen,
			    "--token-file: '%s' is empty; put the token on its first line", path);
	}
	for (const char *p = t; *p; p++)
		if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e) {
			free(data);
			return fail(err, errlen,
				    "--token-file: the token in '%s' must be printable ASCII "
				    "without spaces",
				    path);
		}
	char *tok = strdup(t);
	memset(data, 0, strlen(data));
	free(data);
	if (!tok)
		return fail(err, errlen, "out of memory");
	*ret_token = tok;
	return 0;
}

int crd_listen_parse(const char *s, crd_listen_addr *ret, char *err, size_t errlen)
{
	crd_listen_addr a;
	memset(&a, 0, sizeof(a));
	if (!strncmp(s, "unix:", 5)) {
		const char *p = s + 5;
		if (!*p)
			return fail(err, errlen, "--listen '%s': empty unix socket path", s);
		if (strlen(p) >= sizeof(a.path))
			return fail(err, errlen,
				    "--listen '%s': unix socket path longer than %zu bytes", s,
				    sizeof(a.path) - 1);
		a.is_unix = true;
		strcpy(a.path, p);
		*ret = a;
		return 0;
	}
	const char *colon;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return fail(err, errlen, "--listen '%s': expected [IPV6]:PORT", s);
		if ((size_t)(rb - s - 1) >= sizeof(a.host) || rb == s + 1)
			return fail(err, errlen, "--listen '%s': bad host", s);
		memcpy(a.host, s + 1, (size_t)(rb - s - 1));
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return fail(err, errlen, "--listen '%s': expected HOST:PORT or unix:PATH",
				    s);
		if (colon == s || (size_t)(colon - s) >= sizeof(a.host))
			return fail(err, errlen, "--listen '%s': bad host", s);
		if (memchr(s, ':', (size_t)(colon - s)))
			return fail(err, errlen,
				    "--listen '%s': write IPv6 addresses as [ADDR]:PORT", s);
		memcpy(a.host, s, (size_t)(colon - s));
	}
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port < 0 || port > 65535)
		return fail(err, errlen, "--listen '%s': port must be 0..65535", s);
	a.port = (unsigned)port;
	*ret = a;
	return 0;
}

static int set_default_lists(crd_config *c)
{
	if (!c->n_listen) {
		if (!(c->listen = malloc(sizeof(char *))) ||
		    !(c->listen[0] = strdup(CRUND_DEFAULT_LISTEN)))
			return -ENOMEM;
		c->n_listen = 1;
	}
	if (!c->n_plugin_dirs) {
		if (!(c->plugin_dirs = malloc(sizeof(char *))) ||
		    !(c->plugin_dirs[0] = strdup(CRUND_PLUGIN_DIR)))
			return -ENOMEM;
		c->n_plugin_dirs = 1;
	}
	return 0;
}

int crd_config_parse(crd_config *c, int argc, char **argv, char *err, size_t errlen)
{
	bool seen_list[sizeof(opts) / sizeof(opts[0])] = {false};
	int rc;

	/* Pass 1: --help, --version, --config (the file is applied first so
	 * flags override it, wherever --config appears). */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(crd_config_help, stdout);
			return 1;
		}
		if (!strcmp(a, "--version") || !strcmp(a, "-V")) {
			printf("crund %s (libcrunner %d.%d.%d, plugin ABI %d.%d)\n",
			       PACKAGE_VERSION, CR_VERSION_MAJOR, CR_VERSION_MINOR,
			       CR_VERSION_PATCH, CRUND_PLUGIN_ABI_MAJOR, CRUND_PLUGIN_ABI_MINOR);
			return 1;
		}
		const char *v = NULL;
		if (!strcmp(a, "--config")) {
			if (i + 1 >= argc)
				return fail(err, errlen, "--config needs a FILE");
			v = argv[++i];
		} else if (!strncmp(a, "--config=", 9)) {
			v = a + 9;
		}
		if (v) {
			free(c->config_file);
			if (!(c->config_file = strdup(v)))
				return fail(err, errlen, "out of memory");
		}
	}
	if (c->config_file) {
		char *text, why[512];
		if ((rc = read_file(c->config_file, &text, 1 << 20, why, sizeof(why))) < 0)
			return fail(err, errlen, "--config: %s", why);
		rc = crd_config_parse_text(c, text, c->config_file, err, errlen);
		free(text);
		if (rc < 0)
			return rc;
	}
	/* Pass 2: the flags. */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--config")) {
			i++;
			continue;
		}
		if (!strncmp(a, "--config=", 9))
			continue;
		if (strncmp(a, "--", 2) || !a[2])
			return fail(err, errlen, "unexpected argument '%s' (see crund --help)", a);
		const char *name = a + 2, *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		const struct opt *o = find_opt(name, nlen);
		if (!o)
			return fail(err, errlen, "unknown option '%.*s' (see crund --help)",
				    (int)(nlen + 2), a);
		const char *v;
		if (eq) {
			v = eq + 1;
		} else if (o->type == T_BOOL) {
			v = "true";
		} else {
			if (i + 1 >= argc)
				return fail(err, errlen, "--%s needs a value", o->name);
			v = argv[++i];
		}
		size_t idx = (size_t)(o - opts);
		if ((rc = apply(c, o, v, !seen_list[idx], "", err, errlen)) < 0)
			return rc;
		seen_list[idx] = true;
	}
	if (set_default_lists(c) < 0)
		return fail(err, errlen, "out of memory");
	for (size_t i = 0; i < c->n_listen; i++) {
		crd_listen_addr la;
		if ((rc = crd_listen_parse(c->listen[i], &la, err, errlen)) < 0)
			return rc;
	}
	if (c->debug && c->log_level < CRUND_LOG_DEBUG)
		c->log_level = CRUND_LOG_DEBUG;
	if (c->token_file) {
		free(c->token);
		c->token = NULL;
		if ((rc = crd_config_read_token(c->token_file, &c->token, err, errlen)) < 0)
			return rc;
	}
	return 0;
}
