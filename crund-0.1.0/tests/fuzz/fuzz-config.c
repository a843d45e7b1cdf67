/*
 * fuzz-config.c — crund's settings from outside: the config file
 * (crd_config_parse_text), the command line (crd_config_parse) and
 * listen addresses (crd_listen_parse), all in daemon/config.c.
 *
 * Input: a config file's text; or, when it starts with "ARGV\n", a
 * command line, one argument per line.  Arguments that would read files
 * (--config, --token-file) or print and stop (--help, --version) are
 * dropped: the fuzzer must not open paths it invented.
 */
#include "config.h"

#include <errno.h>
#include <math.h>

#include "settings.h"
#include "fuzz.h"
#include "log.h"

/* Every accepted setting is inside its documented bounds (crund --help). */
static void check_config(const crd_config *c)
{
	FUZZ_CHECK(c->max_running >= 1 && c->max_running <= 1000000);
	FUZZ_CHECK(c->max_queued <= 10000000);
	FUZZ_CHECK(isfinite(c->grace) && c->grace >= 0 && c->grace <= 86400);
	FUZZ_CHECK(c->executor_threads <= 1024);
	FUZZ_CHECK(isfinite(c->executor_timeout) && c->executor_timeout >= 0);
	FUZZ_CHECK(c->retain_jobs <= 10000000);
	FUZZ_CHECK(isfinite(c->retain_seconds) && c->retain_seconds >= 0);
	FUZZ_CHECK(c->max_body >= 64 && c->max_body <= ((size_t)1 << 30));
	FUZZ_CHECK(c->max_connections >= 1);
	FUZZ_CHECK(c->max_result_bytes >= 16 && c->max_result_bytes <= ((size_t)1 << 30));
	FUZZ_CHECK(c->max_log_bytes <= ((size_t)1 << 30));
	for (size_t i = 0; i < c->n_listen; i++)
		FUZZ_CHECK(c->listen[i] && *c->listen[i]);
	for (size_t i = 0; i < c->n_plugin_dirs; i++)
		FUZZ_CHECK(c->plugin_dirs[i] && *c->plugin_dirs[i]);
	FUZZ_CHECK(!c->token_file || *c->token_file);
}

static void check_listen(const char *s)
{
	crd_listen_addr a;
	char err[512];
	memset(err, 0, sizeof(err));
	int rc = crd_listen_parse(s, &a, err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc < 0) {
		FUZZ_CHECK(fuzz_err_ok(err, sizeof(err)));
		return;
	}
	if (a.is_unix) {
		FUZZ_CHECK(memchr(a.path, '\0', sizeof(a.path)) && a.path[0]);
		FUZZ_CHECK(!strcmp(a.path, s + 5));
	} else {
		FUZZ_CHECK(memchr(a.host, '\0', sizeof(a.host)) && a.host[0]);
		FUZZ_CHECK(a.port <= 65535);
		FUZZ_CHECK(strstr(s, a.host));
	}
}

static bool reads_or_stops(const char *a)
{
	return strstr(a, "--config") || strstr(a, "token-file") || !strcmp(a, "--help") ||
	       !strcmp(a, "-h") || !strcmp(a, "--version") || !strcmp(a, "-V");
}

static void fuzz_argv(char *text)
{
	char *argv[34];
	int argc = 0;
	argv[argc++] = (char *)"crund";
	for (char *a = text; a && argc < 33;) {
		char *nl = strchr(a, '\n');
		if (nl)
			*nl++ = '\0';
		if (!reads_or_stops(a))
			argv[argc++] = a;
		a = nl;
	}
	argv[argc] = NULL;

	crd_config c;
	char err[512];
	crd_config_defaults(&c);
	memset(err, 0, sizeof(err));
	int rc = crd_config_parse(&c, argc, argv, err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc == 0) {
		check_config(&c);
		/* parse() fills the default lists and checks each address. */
		FUZZ_CHECK(c.n_listen >= 1 && c.n_plugin_dirs >= 1);
		for (size_t i = 0; i < c.n_listen; i++)
			check_listen(c.listen[i]);
	} else {
		FUZZ_CHECK(fuzz_err_ok(err, sizeof(err)));
	}
	crd_config_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size);
	if (!strncmp(text, "ARGV\n", 5)) {
		fuzz_argv(text + 5);
		free(text);
		return 0;
	}

	crd_config c;
	char err[512];
	crd_config_defaults(&c);
	memset(err, 0, sizeof(err));
	int rc = crd_config_parse_text(&c, text, "fuzz.conf", err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc == 0) {
		check_config(&c);
		FUZZ_CHECK(c.log_level >= CRUND_LOG_ERROR && c.log_level <= CRUND_LOG_DEBUG);
	} else {
		FUZZ_CHECK(fuzz_err_ok(err, sizeof(err)));
		/* Messages name the file and the line. */
		FUZZ_CHECK(!strncmp(err, "fuzz.conf:", 10) || !strcmp(err, "out of memory"));
	}
	/* Whatever made it into the lists (also before an error) is freed
	 * and each listen value is parsed as the daemon would. */
	for (size_t i = 0; i < c.n_listen; i++)
		check_listen(c.listen[i]);
	crd_config_free(&c);
	free(text);
	return 0;
}
