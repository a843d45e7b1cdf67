/*
 * test-config.c — crund's flags, config file, token file and listen
 * addresses (daemon/config.c).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "settings.h"
#include "log.h"
#include "testutil.h"

static crd_config C;
static char err[1024];
static char tmpdir[64];

static void setup(void)
{
	crd_config_defaults(&C);
	err[0] = '\0';
	strcpy(tmpdir, "/tmp/test-config-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char cmd[128];
	crd_config_free(&C);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static int parse(int argc, const char **argv)
{
	return crd_config_parse(&C, argc, (char **)argv, err, sizeof(err));
}

static const char *write_file(const char *name, const char *text)
{
	static char path[4][160];
	static int k;
	char *p = path[k++ % 4];
	snprintf(p, 160, "%s/%s", tmpdir, name);
	FILE *f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return p;
}

START_TEST(defaults_apply_without_flags)
{
	const char *argv[] = {"crund"};
	ck_assert_int_eq(parse(1, argv), 0);
	ck_assert_uint_eq(C.n_listen, 1);
	ck_assert_str_eq(C.listen[0], "127.0.0.1:7733");
	ck_assert_uint_eq(C.n_plugin_dirs, 1);
	ck_assert_str_eq(C.plugin_dirs[0], CRUND_PLUGIN_DIR);
	ck_assert_uint_eq(C.max_running, CRUND_DEFAULT_MAX_RUNNING);
	ck_assert_uint_eq(C.max_queued, 10000);
	ck_assert(C.grace == 30);
	ck_assert_uint_eq(C.retain_jobs, 10000);
	ck_assert(C.retain_seconds == 3600);
	ck_assert_uint_eq(C.max_body, 1 << 20);
	ck_assert_uint_eq(C.max_result_bytes, 1 << 20);
	ck_assert_uint_eq(C.max_log_bytes, 64 << 10);
	/* the request deadlines are shorter than the keep-alive idle time */
	ck_assert(C.header_timeout == 10);
	ck_assert(C.body_timeout == 10);
	ck_assert(C.header_timeout < C.idle_timeout);
	ck_assert_uint_eq(C.max_client_conns, 0); /* half of max_connections */
	ck_assert_uint_eq(C.unix_reserve, 16);
	ck_assert_ptr_null(C.token);
	ck_assert(!C.debug);
	ck_assert_int_eq(C.log_level, CRUND_LOG_INFO);
}
END_TEST

START_TEST(flags_set_values_both_spellings)
{
	const char *argv[] = {"crund",
			      "--listen",
			      "127.0.0.1:1",
			      "--listen=unix:/tmp/x.sock",
			      "--plugin-dir",
			      "/a",
			      "--max-running",
			      "5",
			      "--max-queued=7",
			      "--grace",
			      "2.5",
			      "--max-body",
			      "64K",
			      "--max-result-bytes",
			      "2M",
			      "--max-log-bytes",
			      "100",
			      "--retain-jobs",
			      "0",
			      "--retain-seconds",
			      "1.5",
			      "--executor-threads",
			      "3",
			      "--max-connections",
			      "9",
			      "--header-timeout",
			      "3",
			      "--body-timeout=4",
			      "--max-connections-per-client",
			      "2",
			      "--unix-reserve",
			      "0",
			      "--debug",
			      "--allow-insecure-plugins",
			      "--allow-command-plugins"};
	ck_assert_int_eq(parse(sizeof(argv) / sizeof(argv[0]), argv), 0);
	ck_assert_uint_eq(C.n_listen, 2);
	ck_assert_str_eq(C.listen[1], "unix:/tmp/x.sock");
	ck_assert_str_eq(C.plugin_dirs[0], "/a");
	ck_assert_uint_eq(C.max_running, 5);
	ck_assert_uint_eq(C.max_queued, 7);
	ck_assert(C.grace == 2.5);
	ck_assert_uint_eq(C.max_body, 64 * 1024);
	ck_assert_uint_eq(C.max_result_bytes, 2 * 1024 * 1024);
	ck_assert_uint_eq(C.max_log_bytes, 100);
	ck_assert_uint_eq(C.retain_jobs, 0);
	ck_assert_uint_eq(C.executor_threads, 3);
	ck_assert_uint_eq(C.max_connections, 9);
	ck_assert(C.header_timeout == 3);
	ck_assert(C.body_timeout == 4);
	ck_assert_uint_eq(C.max_client_conns, 2);
	ck_assert_uint_eq(C.unix_reserve, 0);
	ck_assert(C.debug && C.allow_insecure_plugins && C.allow_command_plugins);
	ck_assert_int_eq(C.log_level, CRUND_LOG_DEBUG); /* --debug implies debug logs */
}
END_TEST

START_TEST(bad_flags_and_values_are_usage_errors)
{
	const char *cases[][3] = {
		{"--bogus", NULL, "unknown option '--bogus'"},
		{"--max-running", "0", "--max-running"},
		{"--max-running", "-1", "--max-running"},
		{"--max-running", "1.5", "whole number"},
		{"--max-queued", "abc", "--max-queued"},
		{"--grace", "-1", "--grace"},
		{"--grace", "nan", "--grace"},
		{"--max-body", "12Q", "--max-body"},
		{"--log-level", "loud", "--log-level"},
		{"--listen", "nocolon", "HOST:PORT"},
		{"--listen", "127.0.0.1:99999", "port"},
		{"--listen", "::1:80", "[ADDR]:PORT"},
		{"--listen", "unix:", "empty"},
		{"--token-file", "/nonexistent/token", "--token-file"},
		{"stray", NULL, "unexpected argument"},
		{"--config", "/nonexistent/crund.conf", "--config"},
		{"--debug=maybe", NULL, "boolean"},
		{"--header-timeout", "0", "--header-timeout"},
		{"--body-timeout", "0", "--body-timeout"},
		{"--header-timeout", "0.5", "between 1 and 86400"},
		{"--body-timeout", "86400.5", "between 1 and 86400"},
		{"--header-timeout", "nan", "--header-timeout"},
		{"--idle-timeout", "1.5", "'1.5' is not a whole number between 1 and 86400"},
		{"--max-connections-per-client", "-1", "--max-connections-per-client"},
		{"--max-running", "1e3", "whole number"},
		{"--retain-jobs", "0x10", "whole number"},
		{"--http-allow", "a.com:abc", "the port must be 1..65535 or *"},
		{"--http-allow", "a.com:99999", "the port must be 1..65535 or *"},
		{"--http-allow", "a.com:", "the port must be 1..65535 or *"},
		{"--http-allow", "[::1", "closing ']'"},
		{"--http-allow", "::1", "in brackets"},
		{"--http-allow", ":80", "no host"},
		{"--http-allow", "a b", "a host only"},
		{"--http-allow", "http://a.com", "without a scheme"},
		{"--http-allow", "a.com/path", "a host only"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		crd_config_free(&C);
		crd_config_defaults(&C);
		const char *argv[] = {"crund", cases[i][0], cases[i][1]};
		int argc = cases[i][1] ? 3 : 2;
		ck_assert_msg(parse(argc, argv) == -EINVAL, "%s %s accepted", cases[i][0],
			      cases[i][1] ? cases[i][1] : "");
		ck_assert_msg(strstr(err, cases[i][2]) != NULL, "message '%s' lacks '%s'", err,
			      cases[i][2]);
	}
	const char *missing[] = {"crund", "--max-running"};
	ck_assert_int_eq(parse(2, missing), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "needs a value"));
}
END_TEST

START_TEST(http_allow_patterns_of_every_documented_shape_are_taken)
{
	const char *good[] = {"*",          "*.example.com",  "api.example.com:443",
			      "a.com:*",    "127.0.0.1:8080", "[::1]",
			      "[::1]:8080", "10.0.0.?"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		crd_config_free(&C);
		crd_config_defaults(&C);
		const char *argv[] = {"crund", "--http-allow", good[i]};
		ck_assert_msg(parse(3, argv) == 0, "%s refused: %s", good[i], err);
		ck_assert_uint_eq(C.n_http_allow, 1);
		ck_assert_str_eq(C.http_allow[0], good[i]);
	}
}
END_TEST

START_TEST(help_and_version_exit_zero)
{
	const char *h[] = {"crund", "--max-running", "5", "--help"};
	FILE *saved = stdout;
	stdout = fopen("/dev/null", "w");
	ck_assert_int_eq(parse(4, h), 1);
	const char *v[] = {"crund", "--version"};
	ck_assert_int_eq(parse(2, v), 1);
	fclose(stdout);
	stdout = saved;
	ck_assert_ptr_nonnull(strstr(crd_config_help, "--token-file"));
}
END_TEST

START_TEST(config_file_sets_keys_and_flags_win)
{
	const char *f = write_file("crund.conf", "# a comment\n"
						 "\n"
						 "max-running = 7   # trailing comment\n"
						 "listen = 127.0.0.1:1\n"
						 "listen = 127.0.0.1:2\n"
						 "plugin-dir = \"/quoted\"\n"
						 "grace=4\n"
						 "debug\n"
						 "allow-insecure-plugins = no\n");
	const char *argv[] = {"crund", "--max-running", "9", "--config", f};
	ck_assert_int_eq(parse(5, argv), 0);
	ck_assert_uint_eq(C.max_running, 9); /* flag wins */
	ck_assert(C.grace == 4);
	ck_assert(C.debug);
	ck_assert(!C.allow_insecure_plugins);
	ck_assert_uint_eq(C.n_listen, 2);
	ck_assert_str_eq(C.plugin_dirs[0], "/quoted");
	ck_assert_str_eq(C.config_file, f);
}
END_TEST

/* crund(8): "times are seconds and may have fractions" — the request
 * deadlines are crund's own timers and take them, on the command line and
 * in the file alike; --idle-timeout is libmicrohttpd's connection timeout
 * too, whole seconds, and says so both ways. */
START_TEST(request_deadlines_take_fractions_idle_timeout_whole_seconds)
{
	const char *argv[] = {
		"crund", "--header-timeout", "2.5", "--body-timeout=1.25", "--idle-timeout", "3"};
	ck_assert_int_eq(parse(6, argv), 0);
	ck_assert(C.header_timeout == 2.5);
	ck_assert(C.body_timeout == 1.25);
	ck_assert_uint_eq(C.idle_timeout, 3);

	crd_config_free(&C);
	crd_config_defaults(&C);
	const char *f = write_file("t.conf", "header-timeout = 1.5\nbody-timeout = 7.75\n");
	const char *argv2[] = {"crund", "--config", f};
	ck_assert_int_eq(parse(3, argv2), 0);
	ck_assert(C.header_timeout == 1.5);
	ck_assert(C.body_timeout == 7.75);

	crd_config_free(&C);
	crd_config_defaults(&C);
	const char *argv3[] = {"crund", "--idle-timeout", "1.5"};
	ck_assert_int_eq(parse(3, argv3), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "--idle-timeout: '1.5' is not a whole number"));

	crd_config_free(&C);
	crd_config_defaults(&C);
	ck_assert_int_eq(crd_config_parse_text(&C, "idle-timeout = 1.5\n", "t", err, sizeof(err)),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "t:1:"));
	ck_assert_ptr_nonnull(strstr(err, "'1.5' is not a whole number"));

	/* crund --help says which takes whole seconds */
	ck_assert_ptr_nonnull(strstr(crd_config_help, "(whole seconds;"));
}
END_TEST

START_TEST(listen_on_command_line_replaces_the_file_list)
{
	const char *f = write_file("c.conf", "listen = 127.0.0.1:1\nlisten = 127.0.0.1:2\n");
	const char *argv[] = {"crund", "--config", f, "--listen", "127.0.0.1:3"};
	ck_assert_int_eq(parse(5, argv), 0);
	ck_assert_uint_eq(C.n_listen, 1);
	ck_assert_str_eq(C.listen[0], "127.0.0.1:3");
}
END_TEST

START_TEST(config_file_errors_name_file_and_line)
{
	const char *f = write_file("bad.conf", "max-running = 3\n\nno-such-key = 1\n");
	const char *argv[] = {"crund", "--config", f};
	ck_assert_int_eq(parse(3, argv), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "bad.conf:3:"));
	ck_assert_ptr_nonnull(strstr(err, "no-such-key"));

	crd_config_free(&C);
	crd_config_defaults(&C);
	f = write_file("bad2.conf", "grace\n");
	const char *argv2[] = {"crund", "--config", f};
	ck_assert_int_eq(parse(3, argv2), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "needs '= value'"));

	crd_config_free(&C);
	crd_config_defaults(&C);
	ck_assert_int_eq(crd_config_parse_text(&C, "max-queued = lots\n", "t", err, sizeof(err)),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "t:1:"));
}
END_TEST

START_TEST(token_file_first_line_trimmed)
{
	const char *f = write_file("token", "  s3cret-token \nsecond line\n");
	const char *argv[] = {"crund", "--token-file", f};
	ck_assert_int_eq(parse(3, argv), 0);
	ck_assert_str_eq(C.token, "s3cret-token");
	char *t = NULL;
	f = write_file("empty", "\n   \n");
	ck_assert_int_eq(crd_config_read_token(f, &t, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "empty"));
	f = write_file("spaces", "two words\n");
	ck_assert_int_eq(crd_config_read_token(f, &t, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_null(t);
}
END_TEST

START_TEST(listen_addresses_parse)
{
	crd_listen_addr a;
	ck_assert_int_eq(crd_listen_parse("127.0.0.1:7733", &a, err, sizeof(err)), 0);
	ck_assert(!a.is_unix);
	ck_assert_str_eq(a.host, "127.0.0.1");
	ck_assert_uint_eq(a.port, 7733);
	ck_assert_int_eq(crd_listen_parse("[::1]:80", &a, err, sizeof(err)), 0);
	ck_assert_str_eq(a.host, "::1");
	ck_assert_uint_eq(a.port, 80);
	ck_assert_int_eq(crd_listen_parse("localhost:0", &a, err, sizeof(err)), 0);
	ck_assert_uint_eq(a.port, 0);
	ck_assert_int_eq(crd_listen_parse("unix:/run/crund.sock", &a, err, sizeof(err)), 0);
	ck_assert(a.is_unix);
	ck_assert_str_eq(a.path, "/run/crund.sock");
	const char *bad[] = {"",        ":80",   "host",  "host:",  "host:x",
			     "[::1]80", "[]:80", "a:b:c", "host:-1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(crd_listen_parse(bad[i], &a, err, sizeof(err)) == -EINVAL,
			      "'%s' accepted", bad[i]);
	char longp[200] = "unix:";
	memset(longp + 5, 'p', 150);
	longp[155] = '\0';
	ck_assert_int_eq(crd_listen_parse(longp, &a, err, sizeof(err)), -EINVAL);
}
END_TEST

START_TEST(log_levels_parse)
{
	ck_assert_int_eq(crd_log_parse_level("error"), CRUND_LOG_ERROR);
	ck_assert_int_eq(crd_log_parse_level("WARNING"), CRUND_LOG_WARNING);
	ck_assert_int_eq(crd_log_parse_level("info"), CRUND_LOG_INFO);
	ck_assert_int_eq(crd_log_parse_level("debug"), CRUND_LOG_DEBUG);
	ck_assert_int_eq(crd_log_parse_level("chatty"), -1);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, defaults_apply_without_flags);
	tcase_add_test(tc, flags_set_values_both_spellings);
	tcase_add_test(tc, bad_flags_and_values_are_usage_errors);
	tcase_add_test(tc, http_allow_patterns_of_every_documented_shape_are_taken);
	tcase_add_test(tc, help_and_version_exit_zero);
	tcase_add_test(tc, config_file_sets_keys_and_flags_win);
	tcase_add_test(tc, request_deadlines_take_fractions_idle_timeout_whole_seconds);
	tcase_add_test(tc, listen_on_command_line_replaces_the_file_list);
	tcase_add_test(tc, config_file_errors_name_file_and_line);
	tcase_add_test(tc, token_file_first_line_trimmed);
	tcase_add_test(tc, listen_addresses_parse);
	tcase_add_test(tc, log_levels_parse);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return tu_main(suite()); }
