/*
 * main.c — crund's command line and life cycle.
 *
 * One runner for the whole life of the process (asyncio.Runner kept
 * alive): main creates it, runs serve_main on it once, and closes it.
 * serve_main loads and initialises the plugins (their init coroutines run
 * on the runner, in its shared context), starts HTTP on the runner's loop,
 * waits for a stop signal, drains, and finalises the plugins.
 *
 * Exit status: 0 clean shutdown, 1 runtime failure, 2 usage/config error.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "http/http.h"
#include "log.h"
#include "notify.h"

#define EXPIRE_INTERVAL 1.0 /* s between age-retention sweeps */

crund_daemon crund_d;
static int exit_code;
static cr_handle *expire_h;

static void plugins_log(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	crund_logv(level, NULL, fmt, ap);
	va_end(ap);
}

static void expire_tick(void *arg)
{
	(void)arg;
	crund_jobs_expire(&crund_d.jobs);
	cr_handle_unref(expire_h);
	if (cr_call_later(crund_d.loop, EXPIRE_INTERVAL, expire_tick, NULL, &expire_h) < 0)
		expire_h = NULL;
}

static void loop_exception(cr_loop *loop, const cr_error_report *r, void *data)
{
	(void)loop;
	(void)data;
	crund_log(CRUND_LOG_WARNING, "%s%s%s%s", r->message, r->task ? " (task " : "",
		  r->task ? cr_task_name(r->task) : "", r->task ? ")" : "");
}

static int serve_main(void *arg, void **ret_value)
{
	crund_config *c = &crund_d.cfg;
	int rc;
	(void)arg;
	(void)ret_value;

	crund_d.start_mono = cr_loop_time(crund_d.loop);
	crund_d.start_real = crund_now_realtime();
	if ((rc = cr_event_new(&crund_d.stop_ev)) < 0) {
		crund_log(CRUND_LOG_ERROR, "out of memory");
		exit_code = 1;
		return rc;
	}
	/* Signals first: a SIGTERM during plugin init must not kill us
	 * half-initialised. */
	if ((rc = crund_shutdown_install_signals(crund_d.loop)) < 0) {
		crund_log(CRUND_LOG_ERROR, "cannot install signal handlers: %s", cr_strerror(rc));
		exit_code = 1;
		return rc;
	}

	crund_d.popts.allow_insecure_dir = c->allow_insecure_plugins;
	crund_d.popts.allow_commands = c->allow_command_plugins;
	crund_d.popts.log = plugins_log;
	rc = crund_plugins_load(&crund_d.reg, (const char *const *)c->plugin_dirs, c->n_plugin_dirs,
				&crund_d.popts);
	if (rc < 0) {
		/* a missing, unreadable or insecure plugin dir is the
		 * configuration's fault (message logged by the loader) */
		exit_code = rc == -ENOMEM ? 1 : 2;
		return rc;
	}
	rc = crund_plugins_init(&crund_d.reg, &crund_host, &crund_d.popts);
	if (rc < 0) {
		crund_log(CRUND_LOG_ERROR, "plugin initialisation failed: %s", cr_strerror(rc));
		exit_code = 1;
		return rc;
	}

	crund_jobs_limits lim = {
		.max_running = c->max_running,
		.max_queued = c->max_queued,
		.retain_jobs = c->retain_jobs,
		.retain_seconds = c->retain_seconds,
		.max_result_bytes = c->max_result_bytes,
		.max_log_bytes = c->max_log_bytes,
	};
	crund_jobs_ops ops = {
		.start = crund_exec_start,
		.cancel = crund_exec_cancel,
	};
	if ((rc = crund_jobs_init(&crund_d.jobs, &lim, &ops, NULL, NULL)) < 0) {
		crund_log(CRUND_LOG_ERROR, "out of memory");
		exit_code = 1;
		goto fini;
	}
	if ((rc = crund_http_start(&crund_d.http)) < 0) {
		exit_code = rc == -EINVAL ? 2 : 1;
		goto fini;
	}
	crund_watchdog_start(crund_d.loop);
	if (cr_call_later(crund_d.loop, EXPIRE_INTERVAL, expire_tick, NULL, &expire_h) < 0)
		expire_h = NULL;

	{
		crund_buf b = CRUND_BUF_INIT;
		const char *const *urls = crund_http_urls(crund_d.http);
		for (size_t i = 0; urls[i]; i++)
			crund_buf_addf(&b, "%s%s", i ? " " : "", urls[i]);
		crund_buf pl = CRUND_BUF_INIT;
		for (size_t i = 0; i < crund_d.reg.n; i++)
			crund_buf_addf(&pl, "%s%s", i ? "," : "",
				       crund_d.reg.plugins[i].desc->name);
		crund_log(CRUND_LOG_INFO,
			  "crund %s listening on %s (plugins: %zu%s%s%s; loop backend %s; "
			  "max-running %u; "
			  "auth %s)",
			  PACKAGE_VERSION, b.data ? b.data : "?", crund_d.reg.n, pl.len ? " [" : "",
			  pl.len ? pl.data : "", pl.len ? "]" : "", cr_loop_backend(crund_d.loop),
			  c->max_running, c->token ? "token" : "off");
		crund_buf_free(&b);
		crund_buf_free(&pl);
	}
	crund_notify("READY=1\nSTATUS=running");

	/* Serve until the first stop signal. */
	while (!crund_d.draining)
		if (cr_event_wait(crund_d.stop_ev) < 0 && !crund_d.draining)
			break;

	crund_shutdown_run();
	if (expire_h) {
		cr_handle_cancel(expire_h);
		expire_h = cr_handle_unref(expire_h);
	}
	crund_watchdog_stop();
	crund_http_stop(crund_d.http);
	crund_d.http = NULL;
fini:
	if (crund_exec_live_tasks()) {
		/* Their code lives in the plugins: finalising (and unloading)
		 * under a running task would pull the code from under it. */
		crund_log(CRUND_LOG_WARNING,
			  "%zu job tasks are still alive: skipping the plugins' fini",
			  crund_exec_live_tasks());
	} else {
		crund_plugins_fini(&crund_d.reg, &crund_host);
	}
	return 0;
}

int main(int argc, char **argv)
{
	char err[1024];
	cr_runner_opts ro;
	int rc;

	signal(SIGPIPE, SIG_IGN);
	crund_config_defaults(&crund_d.cfg);
	rc = crund_config_parse(&crund_d.cfg, argc, argv, err, sizeof(err));
	if (rc == 1) {
		crund_config_free(&crund_d.cfg);
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "crund: %s\n", err);
		crund_config_free(&crund_d.cfg);
		return 2;
	}
	crund_log_setup(crund_d.cfg.log_level);
	crund_d.n_listen_fds = crund_listen_fds();
	if (crund_d.n_listen_fds < 0) {
		crund_log(CRUND_LOG_ERROR, "LISTEN_FDS names fds that are not open");
		crund_config_free(&crund_d.cfg);
		return 2;
	}

	memset(&ro, 0, sizeof(ro));
	ro.size = sizeof(ro);
	ro.debug = crund_d.cfg.debug ? CR_DEBUG_ON : CR_DEBUG_DEFAULT;
	ro.executor_timeout = crund_d.cfg.executor_timeout;
	ro.sigint = CR_SIGINT_OFF; /* SIGINT/SIGTERM drain, see shutdown.c */
	if ((rc = cr_runner_new(&ro, &crund_d.runner)) < 0 ||
	    (rc = cr_runner_get_loop(crund_d.runner, &crund_d.loop)) < 0 ||
	    (rc = cr_runner_get_context(crund_d.runner, &crund_d.shared)) < 0) {
		crund_log(CRUND_LOG_ERROR, "cannot create the runner: %s (%s)", cr_strerror(rc),
			  cr_last_error());
		cr_runner_free(crund_d.runner);
		crund_config_free(&crund_d.cfg);
		return 1;
	}
	cr_loop_set_exception_handler(crund_d.loop, loop_exception, NULL);
	if (crund_d.cfg.executor_threads)
		cr_loop_set_executor_threads(crund_d.loop, crund_d.cfg.executor_threads);

	rc = cr_runner_run(crund_d.runner, serve_main, NULL, NULL, NULL);
	if (rc < 0 && !exit_code) {
		crund_log(CRUND_LOG_ERROR, "the daemon's main task failed: %s (%s)",
			  cr_strerror(rc), cr_last_error());
		exit_code = 1;
	}
	/* Close: leftover tasks (abandoned jobs) are cancelled and awaited,
	 * async generators closed, the executor shut down with its timeout. */
	cr_runner_close(crund_d.runner);
	cr_runner_free(crund_d.runner);
	crund_d.stop_ev = cr_event_free(crund_d.stop_ev);
	crund_jobs_free(&crund_d.jobs);
	crund_plugins_free(&crund_d.reg);
	crund_notify_close();
	if (!exit_code)
		crund_log(CRUND_LOG_INFO, "stopped");
	crund_config_free(&crund_d.cfg);
	return exit_code;
}
