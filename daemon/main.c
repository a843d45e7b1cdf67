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
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "api/api.h"
#include "daemon.h"
#include "log.h"
#include "notify.h"
#include "plugins/curl.h"

#define EXPIRE_INTERVAL   1.0  /* s between age-retention sweeps */
#define STORE_DRAIN_BOUND 10.0 /* s the store gets at shutdown to write what is pending */
#define FINI_WAIT_POLLS   100  /* x 20 ms: abandoned job tasks may end before the fini */

crd_daemon crd_d;
static int exit_code;
static cr_handle *expire_h;

__attribute__((format(printf, 2, 3))) static void plugins_log(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	crd_logv(level, NULL, fmt, ap);
	va_end(ap);
}

static void jobs_warn(const char *message, void *data)
{
	(void)data;
	crd_log(CRUND_LOG_WARNING, "%s", message);
}

static const crund_job_spec *resolve_job(void *arg, const char *plugin, const char *job,
					 const crd_loaded_plugin **ret_plugin)
{
	(void)arg;
	const crd_loaded_plugin *p = crd_plugins_find(&crd_d.reg, plugin);
	*ret_plugin = p;
	return p ? crd_plugins_find_job(p, job) : NULL;
}

/* Open the store, hand it to the jobs module and read its jobs back.  A
 * store that cannot be opened, locked or read stops the start (logged
 * with the path and what to do). */
static int open_store(const crd_config *c)
{
	char err[768];
	char *url = c->store ? strdup(c->store) : crd_store_default_url();
	crd_store_opts so = {.sync = c->sync,
			     .loop = crd_d.loop,
			     .node_id = c->node_id,
			     .lease = c->lease,
			     .retain_jobs = c->retain_jobs,
			     .retain_seconds = c->retain_seconds,
			     .retry_max_delay = c->retry_max_delay > 0 ? c->retry_max_delay : -1};
	int rc;
	if (!url) {
		crd_log(CRUND_LOG_ERROR, "out of memory");
		return -ENOMEM;
	}
	if (!*url) {
		crd_log(CRUND_LOG_ERROR,
			"no place for the job store: HOME and XDG_STATE_HOME are unset (and not "
			"root, nor under systemd's STATE_DIRECTORY); give --store sqlite:PATH, or "
			"--store memory: to keep no jobs");
		free(url);
		return -EINVAL;
	}
	rc = crd_store_open(url, &so, &crd_d.store, err, sizeof(err));
	free(url);
	if (rc < 0) {
		crd_log(CRUND_LOG_ERROR, "%s", err);
		return rc;
	}
	crd_jobs_set_store(&crd_d.jobs, crd_d.store);
	if ((rc = crd_jobs_load(&crd_d.jobs, resolve_job, NULL)) < 0) {
		crd_log(CRUND_LOG_ERROR, "store %s: cannot read its jobs: %s",
			crd_store_describe(crd_d.store), cr_strerror(rc));
		return rc;
	}
	if (crd_d.jobs.n_load_skipped)
		crd_log(CRUND_LOG_WARNING,
			"store %s: %zu stored jobs skipped: damaged rows (an unknown state, "
			"arguments that are not JSON, no id); they stay in the file, unread",
			crd_store_describe(crd_d.store), crd_d.jobs.n_load_skipped);
	if (crd_store_durable(crd_d.store))
		crd_log(CRUND_LOG_INFO,
			"store %s: %zu jobs (%zu queued, %zu running; %llu interrupted by the "
			"last stop)",
			crd_store_describe(crd_d.store), crd_d.jobs.count,
			crd_d.jobs.n_state[CRUND_JOB_QUEUED], crd_d.jobs.n_state[CRUND_JOB_RUNNING],
			(unsigned long long)crd_d.jobs.n_interrupted);
	else
		crd_log(CRUND_LOG_INFO, "store %s", crd_store_describe(crd_d.store));
	return 0;
}

/* The store's failures and recoveries reach the log (once per change of
 * cause, at the tick's pace): /v1/health and /metrics show the state, an
 * operator reading the journal sees when and why it began and ended. */
static void watch_store(void)
{
	static char logged[256];
	static double since;
	const char *why = crd_store_error(crd_d.store, NULL);
	if (why && strcmp(why, logged) != 0) {
		if (!logged[0])
			since = cr_loop_time(crd_d.loop);
		crd_log(CRUND_LOG_WARNING,
			"%s; submissions answer 503 store_unavailable until it can write again "
			"(retried every second; nothing accepted is lost)",
			why);
		snprintf(logged, sizeof(logged), "%s", why);
	} else if (!why && logged[0]) {
		crd_log(CRUND_LOG_INFO, "store %s writes again (it could not for %.0f s)",
			crd_store_describe(crd_d.store), cr_loop_time(crd_d.loop) - since);
		logged[0] = '\0';
	}
}

static void expire_tick(void *arg)
{
	(void)arg;
	watch_store();
	crd_jobs_expire(&crd_d.jobs);
	crd_jobs_flush_dirty(&crd_d.jobs);
	crd_metrics_sample();
	cr_handle_unref(expire_h);
	if (cr_call_later(crd_d.loop, EXPIRE_INTERVAL, expire_tick, NULL, &expire_h) < 0)
		expire_h = NULL;
}

static void loop_exception(cr_loop *loop, const cr_error_report *r, void *data)
{
	(void)loop;
	(void)data;
	crd_log(CRUND_LOG_WARNING, "%s%s%s%s", r->message, r->task ? " (task " : "",
		r->task ? cr_task_name(r->task) : "", r->task ? ")" : "");
}

/* Every connection is an fd: lift the soft fd limit to the hard one (a
 * soft limit of 1024 is common and would cap --max-connections below its
 * default), and say so when even the hard limit is too low.  Beyond the
 * limit, accept fails and clients wait in the listen backlog. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && getrlimit(RLIMIT_NOFILE, &rl) < 0)
			return;
	}
	/* the listeners, the loop, plugins, executor threads: a margin */
	rlim_t need = (rlim_t)crd_d.cfg.max_connections + crd_d.cfg.unix_reserve + 128;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		crd_log(CRUND_LOG_WARNING,
			"the fd limit (%llu) is below --max-connections + --unix-reserve + 128 "
			"(%llu): connections beyond it wait unanswered; raise it (LimitNOFILE= "
			"in the unit, ulimit -n) or lower --max-connections",
			(unsigned long long)rl.rlim_cur, (unsigned long long)need);
}

static int serve_main(void *arg, void **ret_value)
{
	crd_config *c = &crd_d.cfg;
	int rc;
	(void)arg;
	(void)ret_value;

	crd_d.start_mono = cr_loop_time(crd_d.loop);
	crd_d.start_real = crd_now_realtime();
	if ((rc = cr_event_new(&crd_d.stop_ev)) < 0) {
		crd_log(CRUND_LOG_ERROR, "out of memory");
		exit_code = 1;
		return rc;
	}
	/* Signals first: a SIGTERM during plugin init must not kill us
	 * half-initialised. */
	if ((rc = crd_shutdown_install_signals(crd_d.loop)) < 0) {
		crd_log(CRUND_LOG_ERROR, "cannot install signal handlers: %s", cr_strerror(rc));
		exit_code = 1;
		return rc;
	}

	crd_d.popts.allow_insecure_dir = c->allow_insecure_plugins;
	crd_d.popts.allow_commands = c->allow_command_plugins;
	crd_d.popts.log = plugins_log;
	rc = crd_plugins_load(&crd_d.reg, (const char *const *)c->plugin_dirs, c->n_plugin_dirs,
			      &crd_d.popts);
	if (rc < 0) {
		/* a missing, unreadable or insecure plugin dir is the
		 * configuration's fault (message logged by the loader) */
		exit_code = rc == -ENOMEM ? 1 : 2;
		return rc;
	}
	crd_d.starting = cr_current_task();
	rc = crd_plugins_init(&crd_d.reg, &crd_host, &crd_d.popts);
	crd_d.starting = NULL;
	if (rc == -ECANCELED) {
		/* SIGTERM or SIGINT while a plugin initialised (its refusal is
		 * logged): a stop asked for, not a failure */
		crd_log(CRUND_LOG_INFO, "stopped before serving: a signal came during plugin "
					"initialisation");
		cr_task_uncancel(cr_current_task());
		crd_plugins_fini(&crd_d.reg, &crd_host);
		return 0;
	}
	if (rc < 0) {
		crd_log(CRUND_LOG_ERROR, "plugin initialisation failed: %s", cr_strerror(rc));
		exit_code = 1;
		return rc;
	}

	crd_jobs_limits lim = {
		.max_running = c->max_running,
		.max_queued = c->max_queued,
		.retain_jobs = c->retain_jobs,
		.retain_seconds = c->retain_seconds,
		.max_result_bytes = c->max_result_bytes,
		.max_log_bytes = c->max_log_bytes,
		.retry_max_delay = c->retry_max_delay > 0 ? c->retry_max_delay
							  : -1, /* 0: at once */
	};
	crd_jobs_ops ops = {
		.start = crd_exec_start,
		.cancel = crd_exec_cancel,
		.wake_at = crd_exec_wake_at,
		.warn = jobs_warn,
	};
	if ((rc = crd_jobs_init(&crd_d.jobs, &lim, &ops, NULL, NULL)) < 0) {
		crd_log(CRUND_LOG_ERROR, "out of memory");
		exit_code = 1;
		goto fini;
	}
	crd_jobs_events_window(&crd_d.jobs, c->event_window);
	if ((rc = open_store(c)) < 0) {
		exit_code = rc == -EINVAL ? 2 : 1; /* a URL this crund does not know: usage */
		goto fini;
	}
	crd_http_opts ho = {
		.loop = crd_d.loop,
		.listen = c->listen,
		.n_listen = c->n_listen,
		.n_listen_fds = crd_d.n_listen_fds,
		.token = c->token,
		.max_body = c->max_body,
		.max_connections = c->max_connections,
		.max_client_conns = c->max_client_conns,
		.unix_reserve = c->unix_reserve,
		.idle_timeout = c->idle_timeout,
		.header_timeout = c->header_timeout,
		.body_timeout = c->body_timeout,
	};
	if ((rc = crd_http_start(&ho, &crd_api_handlers, &crd_d.http)) < 0) {
		exit_code = rc == -EINVAL ? 2 : 1;
		goto fini;
	}
	/* Without its heartbeat the daemon would report no stalls, and under
	 * WatchdogSec= systemd would kill it a while later: fail now. */
	if ((rc = crd_watchdog_start(crd_d.loop)) < 0) {
		crd_log(CRUND_LOG_ERROR, "cannot start the watchdog: %s", cr_strerror(rc));
		crd_http_stop(crd_d.http);
		crd_d.http = NULL;
		exit_code = 1;
		goto fini;
	}
	crd_jobs_run(&crd_d.jobs); /* the jobs read from the store start now */
	if (cr_call_later(crd_d.loop, EXPIRE_INTERVAL, expire_tick, NULL, &expire_h) < 0)
		expire_h = NULL;

	{
		crd_buf b = CRUND_BUF_INIT;
		const char *const *urls = crd_http_urls(crd_d.http);
		for (size_t i = 0; urls[i]; i++)
			crd_buf_addf(&b, "%s%s", i ? " " : "", urls[i]);
		crd_buf pl = CRUND_BUF_INIT;
		for (size_t i = 0; i < crd_d.reg.n; i++)
			crd_buf_addf(&pl, "%s%s", i ? "," : "", crd_d.reg.plugins[i].desc->name);
		crd_log(CRUND_LOG_INFO,
			"crund %s listening on %s (plugins: %zu%s%s%s; loop backend %s; "
			"max-running %u; "
			"auth %s)",
			PACKAGE_VERSION, b.data ? b.data : "?", crd_d.reg.n, pl.len ? " [" : "",
			pl.len ? pl.data : "", pl.len ? "]" : "", cr_loop_backend(crd_d.loop),
			c->max_running, c->token ? "token" : "off");
		crd_buf_free(&b);
		crd_buf_free(&pl);
	}
	crd_notify("READY=1\nSTATUS=running");

	/* Serve until the first stop signal. */
	while (!cr_event_is_set(crd_d.stop_ev))
		if (cr_event_wait(crd_d.stop_ev) < 0 && !cr_event_is_set(crd_d.stop_ev))
			break;

	crd_shutdown_run();
	crd_exec_wake_stop();
	crd_jobs_flush_dirty(&crd_d.jobs);
	if (crd_d.store && crd_store_drain(crd_d.store, STORE_DRAIN_BOUND) < 0)
		crd_log(CRUND_LOG_WARNING, "store %s: could not write everything within %g s%s%s",
			crd_store_describe(crd_d.store), STORE_DRAIN_BOUND,
			crd_store_error(crd_d.store, NULL) ? ": " : "",
			crd_store_error(crd_d.store, NULL) ? crd_store_error(crd_d.store, NULL)
							   : "");
	crd_jobs_leave(&crd_d.jobs); /* a shared store: the node says goodbye */
	if (expire_h) {
		cr_handle_cancel(expire_h);
		expire_h = cr_handle_unref(expire_h);
	}
	crd_watchdog_stop();
	crd_http_stop(crd_d.http);
	crd_d.http = NULL;
fini:
	/* tasks abandoned at shutdown were cancelled again: a moment for them
	 * to end, so that the plugins' fini can run */
	for (int i = 0; i < FINI_WAIT_POLLS && crd_exec_live_tasks(); i++)
		if (cr_sleep(0.02) < 0)
			break;
	if (crd_exec_live_tasks()) {
		/* Their code lives in the plugins: finalising (and unloading)
		 * under a running task would pull the code from under it. */
		crd_log(CRUND_LOG_WARNING,
			"%zu job tasks are still alive: skipping the plugins' fini",
			crd_exec_live_tasks());
	} else {
		crd_plugins_fini(&crd_d.reg, &crd_host);
	}
	return 0;
}

int main(int argc, char **argv)
{
	char err[1024];
	cr_runner_opts ro;
	int rc;

	signal(SIGPIPE, SIG_IGN);
	/* a file-size limit makes a write fail with EFBIG (the store reports it)
	 * instead of killing the daemon */
	signal(SIGXFSZ, SIG_IGN);
	crd_config_defaults(&crd_d.cfg);
	rc = crd_config_parse(&crd_d.cfg, argc, argv, err, sizeof(err));
	if (rc == 1) {
		crd_config_free(&crd_d.cfg);
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "crund: %s\n", err);
		crd_config_free(&crd_d.cfg);
		return 2;
	}
	crd_log_setup(crd_d.cfg.log_level);
	/* before any thread exists (curl_global_init is not thread-safe) */
	if (crd_curl_global_init() < 0) {
		crd_log(CRUND_LOG_ERROR, "cannot initialise libcurl");
		crd_config_free(&crd_d.cfg);
		return 1;
	}
	raise_fd_limit();
	crd_d.n_listen_fds = crd_listen_fds();
	if (crd_d.n_listen_fds < 0) {
		crd_log(CRUND_LOG_ERROR, "LISTEN_FDS names fds that are not open");
		crd_config_free(&crd_d.cfg);
		return 2;
	}

	memset(&ro, 0, sizeof(ro));
	ro.size = sizeof(ro);
	ro.debug = crd_d.cfg.debug ? CR_DEBUG_ON : CR_DEBUG_DEFAULT;
	ro.executor_timeout = crd_d.cfg.executor_timeout;
	ro.sigint = CR_SIGINT_OFF; /* SIGINT/SIGTERM drain, see shutdown.c */
	if ((rc = cr_runner_new(&ro, &crd_d.runner)) < 0 ||
	    (rc = cr_runner_get_loop(crd_d.runner, &crd_d.loop)) < 0 ||
	    (rc = cr_runner_get_context(crd_d.runner, &crd_d.shared)) < 0) {
		crd_log(CRUND_LOG_ERROR, "cannot create the runner: %s (%s)", cr_strerror(rc),
			cr_last_error());
		cr_runner_free(crd_d.runner);
		crd_config_free(&crd_d.cfg);
		return 1;
	}
	cr_loop_set_exception_handler(crd_d.loop, loop_exception, NULL);
	{
		char cv[160];
		if (!crd_curl_describe(cv, sizeof(cv)))
			crd_log(CRUND_LOG_WARNING, "%s", cv);
		else
			crd_log(CRUND_LOG_INFO, "%s", cv);
	}
	if ((rc = crd_curl_open(crd_d.loop)) < 0) {
		crd_log(CRUND_LOG_ERROR, "cannot set libcurl up on the loop: %s", cr_strerror(rc));
		cr_runner_free(crd_d.runner);
		crd_curl_global_cleanup();
		crd_config_free(&crd_d.cfg);
		return 1;
	}
	if (crd_d.cfg.executor_threads)
		cr_loop_set_executor_threads(crd_d.loop, crd_d.cfg.executor_threads);

	rc = cr_runner_run(crd_d.runner, serve_main, NULL, NULL, NULL);
	/* From here on crund only closes.  A further SIGTERM or SIGINT (a
	 * second `systemctl stop`, an impatient ^C) must not kill it half-way:
	 * the loop's handlers go with the loop, and the default action would
	 * cut the store's last writes.  Blocked here (the other threads block
	 * them from their start), they end with the process. */
	sigset_t stop_sigs;
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGTERM);
	sigaddset(&stop_sigs, SIGINT);
	sigaddset(&stop_sigs, SIGHUP); /* ignored while serving (shutdown.c) */
	sigaddset(&stop_sigs, SIGUSR1);
	sigaddset(&stop_sigs, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);
	if (rc < 0 && !exit_code) {
		crd_log(CRUND_LOG_ERROR, "the daemon's main task failed: %s (%s)", cr_strerror(rc),
			cr_last_error());
		exit_code = 1;
	}
	/* Transfers of jobs still alive end now (their perform returns
	 * -ECANCELED), while the loop's base still exists. */
	crd_curl_close();
	/* Close: leftover tasks (abandoned jobs) are cancelled and awaited,
	 * async generators closed, the executor shut down with its timeout. */
	cr_runner_close(crd_d.runner);
	cr_runner_free(crd_d.runner);
	crd_d.stop_ev = cr_event_free(crd_d.stop_ev);
	/* after the runner: jobs that ended while it closed are written too */
	crd_jobs_flush_dirty(&crd_d.jobs);
	crd_store_close(crd_d.store);
	crd_d.store = NULL;
	crd_jobs_free(&crd_d.jobs);
	crd_plugins_free(&crd_d.reg);
	crd_notify_close();
	crd_curl_global_cleanup();
	if (!exit_code)
		crd_log(CRUND_LOG_INFO, "stopped");
	crd_config_free(&crd_d.cfg);
	return exit_code;
}
