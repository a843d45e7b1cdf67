/*
 * settings.h (settings.c) — crund's settings: defaults, command-line flags and the
 * optional config file (`--config FILE`, `key = value` lines, same names
 * as the long flags, '#' comments).  Flags given on the command line win
 * over the file; a repeatable key (listen, plugin-dir) given on the command
 * line replaces the file's list.
 */
#ifndef CRUND_CRUND_CONFIG_H
#define CRUND_CRUND_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* Defaults, each also a flag / config key (see crund --help). */
#define CRUND_DEFAULT_LISTEN "127.0.0.1:7733"
#define CRUND_DEFAULT_MAX_RUNNING \
	1024u /* coroutines are cheap; a
	       * bound keeps a burst from
	       * taking all memory */
#define CRUND_DEFAULT_MAX_QUEUED       10000u
#define CRUND_DEFAULT_GRACE            30.0
#define CRUND_DEFAULT_EXECUTOR_TIMEOUT 300.0
#define CRUND_DEFAULT_RETAIN_JOBS      10000u
#define CRUND_DEFAULT_RETAIN_SECONDS   3600.0
#define CRUND_DEFAULT_MAX_BODY         ((size_t)1 << 20)
#define CRUND_DEFAULT_MAX_CONNECTIONS  1000u
#define CRUND_DEFAULT_MAX_RESULT       ((size_t)1 << 20)
#define CRUND_DEFAULT_MAX_LOG          ((size_t)64 << 10)
#define CRUND_DEFAULT_STREAM_PING      15.0
/* events GET /v1/events keeps for clients that reconnect (Last-Event-ID) */
#define CRUND_DEFAULT_EVENT_WINDOW     1024u
/* s: a connection idle (or a client this slow) this long is closed; 75 s
 * like nginx's and aiohttp's keep-alive.  Whole seconds: libmicrohttpd's
 * connection timeout, which it also is, counts whole seconds. */
#define CRUND_DEFAULT_IDLE_TIMEOUT     75u
#define CRUND_DEFAULT_RETRY_MAX_DELAY  3600.0
/* s: a request head (body) not received whole within this long of its
 * start is dropped; shorter than the keep-alive idle timeout, so a client
 * dribbling bytes (slowloris) cannot hold a connection for long */
#define CRUND_DEFAULT_HEADER_TIMEOUT   10.0
#define CRUND_DEFAULT_BODY_TIMEOUT     10.0
/* connections the Unix socket listeners may hold beyond --max-connections:
 * the operator's way in (health, metrics, crunctl) when TCP clients hold
 * every connection */
#define CRUND_DEFAULT_UNIX_RESERVE     16u

typedef struct crd_config {
	char **listen; /* n_listen strings, owned */
	size_t n_listen;
	char **plugin_dirs; /* owned */
	size_t n_plugin_dirs;
	/* plugin settings (crund_config_list): NULL-terminated, owned */
	char **exec_allow; /* commands the exec plugin may run */
	size_t n_exec_allow;
	char **http_allow; /* hosts the http plugin may call */
	size_t n_http_allow;
	char *token_file; /* owned, or NULL */
	char *token;      /* the token read from token_file, owned */
	unsigned max_running;
	unsigned max_queued;
	double grace;
	unsigned executor_threads; /* 0: libcrunner's default */
	double executor_timeout;
	unsigned retain_jobs;
	double retain_seconds;
	size_t max_body;
	unsigned max_connections;
	size_t max_result_bytes;
	size_t max_log_bytes;
	unsigned idle_timeout; /* s (whole): idle or slow connections are closed */
	double header_timeout; /* s: a request head arrives within this */
	double body_timeout;   /* s: a request body arrives within this */
	/* connections per client address / Unix uid; 0: half of
	 * max_connections */
	unsigned max_client_conns;
	unsigned unix_reserve; /* Unix-socket connections beyond the limit */
	double stream_ping;    /* s between event-stream keep-alive comments */
	unsigned event_window; /* job events kept for GET /v1/events resumption */
	bool allow_insecure_plugins;
	bool allow_command_plugins;
	bool debug;
	int log_level;          /* CRUND_LOG_* */
	char *config_file;      /* owned, or NULL */
	char *store;            /* --store URL, owned; NULL: crd_store_default_url() */
	int sync;               /* CRD_STORE_SYNC_* */
	double retry_max_delay; /* s: the cap of a retry's backoff */
	char *node_id;          /* --node-id (shared store), owned, or NULL: host-suffix */
	double lease;           /* --lease s (shared store) */
} crd_config;

void crd_config_defaults(crd_config *c);
void crd_config_free(crd_config *c);

/* Parse argv (argv[0] is the program name).  Returns 0 to run, 1 when
 * --help or --version was printed to stdout (exit 0), -EINVAL on a usage
 * or config error (message in err; exit 2).  Reads --config FILE and the
 * token file.  Fills defaults for the lists when nothing was given. */
int crd_config_parse(crd_config *c, int argc, char **argv, char *err, size_t errlen);

/* Parse one `key = value` text (a whole config file's contents); `origin`
 * names it in messages ("FILE:LINE: ...").  -EINVAL + err on error. */
int crd_config_parse_text(crd_config *c, const char *text, const char *origin, char *err,
			  size_t errlen);

/* Read the token file: first line, surrounding whitespace removed, must be
 * non-empty.  *ret_token is malloc'd. */
int crd_config_read_token(const char *path, char **ret_token, char *err, size_t errlen);

/* A listen address: "HOST:PORT", "[V6]:PORT" or "unix:PATH". */
typedef struct crd_listen_addr {
	bool is_unix;
	char host[256]; /* without brackets */
	char path[108]; /* unix socket path */
	unsigned port;
} crd_listen_addr;
int crd_listen_parse(const char *s, crd_listen_addr *ret, char *err, size_t errlen);

/* The --help text. */
extern const char crd_config_help[];

#endif
