/*
 * watchdog.c — is the loop turning?
 *
 * A loop timer beats every HEARTBEAT seconds and stores the time in an
 * atomic.  A plain thread looks at it every few hundred milliseconds: when
 * the loop has not turned for over STALL seconds (a job blocking the loop
 * thread — the demo's `hog` does it on purpose), it logs a warning naming
 * the job whose coroutine started last, because the loop thread itself
 * cannot say anything while it is stuck.  When the loop turns again, the
 * timer measures how late it was (crund_loop_lag_seconds) and
 * /v1/health answers "stalled" for a moment: a request that waited
 * through the stall is answered after it, and should learn about it.
 *
 * systemd's WATCHDOG=1 is sent from the loop too (not from the thread):
 * a stuck loop must stop the pings.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "log.h"
#include "notify.h"
#include "thread.h"

#define HEARTBEAT    0.2 /* s between beats */
#define STALL        1.0 /* s without a beat = stalled */
#define STALL_REPORT 1.0 /* s "stalled" stays visible after a stall */

static cr_loop *wd_loop;
static cr_handle *beat_h, *sd_h;
static double sd_interval;
static double expected;  /* loop time the next beat is due */
static double lag;       /* last measured lag */
static double lag_max;   /* the largest since start */
static double stall_end; /* monotonic time a stall last ended */

static atomic_llong beat_ns; /* CLOCK_MONOTONIC ns of the last beat */
/* The thread's stop: a flag it waits on between looks, so a stop wakes
 * it at once instead of after its sleep (every crund stop paid up to
 * 250 ms). */
static bool thread_stop;
static pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cv;
static pthread_t thread;
static bool thread_started;

/* The job whose coroutine started last: written on every job start (so
 * no lock, just atomics), read by the thread only when the loop is stuck
 * (then the loop thread does not change them).  Names are the plugin's
 * static strings, valid while it is loaded. */
static atomic_ullong cur_seq;
static _Atomic(const crund_job_spec *) cur_spec;
static _Atomic(const crund_plugin *) cur_plugin;

static long long mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void crd_watchdog_job(const crd_jobrec *j)
{
	if (j) {
		atomic_store_explicit(&cur_spec, j->spec, memory_order_relaxed);
		atomic_store_explicit(&cur_plugin, j->plugin->desc, memory_order_relaxed);
		atomic_store_explicit(&cur_seq, j->seq, memory_order_release);
	} else {
		atomic_store_explicit(&cur_seq, 0, memory_order_release);
	}
}

static void beat(void *arg)
{
	(void)arg;
	long long now_ns = mono_ns();
	double now = cr_loop_time(wd_loop);
	lag = now - expected;
	if (lag < 0)
		lag = 0;
	if (lag > lag_max)
		lag_max = lag;
	if (lag > STALL) {
		stall_end = (double)now_ns / 1e9;
		crd_log(CRUND_LOG_WARNING, "the event loop was blocked for %.1f s",
			lag + HEARTBEAT);
	}
	atomic_store(&beat_ns, now_ns);
	expected = now + HEARTBEAT;
	cr_handle_unref(beat_h);
	beat_h = NULL;
	if (cr_call_later(wd_loop, HEARTBEAT, beat, NULL, &beat_h) < 0)
		beat_h = NULL;
}

static void sd_ping(void *arg)
{
	(void)arg;
	crd_notify("WATCHDOG=1");
	cr_handle_unref(sd_h);
	sd_h = NULL;
	if (cr_call_later(wd_loop, sd_interval, sd_ping, NULL, &sd_h) < 0)
		sd_h = NULL;
}

static void *watch_thread(void *arg)
{
	(void)arg;
	bool reported = false;
	long long reported_beat = 0;
	pthread_mutex_lock(&stop_mu);
	for (;;) {
		/* a look every 250 ms, until the stop */
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += 250 * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		long long slept_from = mono_ns();
		while (!thread_stop && pthread_cond_timedwait(&stop_cv, &stop_mu, &until) == 0)
			;
		if (thread_stop)
			break;
		pthread_mutex_unlock(&stop_mu);
		long long b = atomic_load(&beat_ns), now = mono_ns();
		double idle = (double)(now - b) / 1e9;
		double overslept = (double)(now - slept_from) / 1e9 - 0.25;
		if (overslept > 2 * STALL && idle - overslept < STALL) {
			/* this thread slept seconds past its 250 ms too, and the
			 * loop's silence is that time: the whole process was
			 * stopped (SIGSTOP, a paused VM), no job blocked the loop
			 * (its lateness is logged by the loop itself) */
			reported = true;
			reported_beat = b;
		}
		if (idle > STALL && !(reported && reported_beat == b)) {
			uint64_t seq = atomic_load_explicit(&cur_seq, memory_order_acquire);
			const crund_job_spec *sp = atomic_load_explicit(&cur_spec,
									memory_order_relaxed);
			const crund_plugin *pd = atomic_load_explicit(&cur_plugin,
								      memory_order_relaxed);
			if (seq && sp && pd) {
				char id[CRUND_JOB_ID_MAX];
				crd_jobs_format_id(&crd_d.jobs, seq, id);
				crd_log(CRUND_LOG_WARNING,
					"the event loop has not turned for %.1f s: job %s "
					"(%s/%s) is "
					"probably blocking it (a job must await, not block)",
					idle, id, pd->name, sp->name);
			} else {
				crd_log(CRUND_LOG_WARNING,
					"the event loop has not turned for %.1f s", idle);
			}
			reported = true;
			reported_beat = b;
		}
		pthread_mutex_lock(&stop_mu);
	}
	pthread_mutex_unlock(&stop_mu);
	return NULL;
}

int crd_watchdog_start(cr_loop *loop)
{
	wd_loop = loop;
	expected = cr_loop_time(loop) + HEARTBEAT;
	atomic_store(&beat_ns, mono_ns());
	int rc = cr_call_later(loop, HEARTBEAT, beat, NULL, &beat_h);
	if (rc < 0)
		return rc;
	uint64_t usec = crd_watchdog_usec();
	if (usec) {
		sd_interval = (double)usec / 2e6;
		crd_notify("WATCHDOG=1");
		if ((rc = cr_call_later(loop, sd_interval, sd_ping, NULL, &sd_h)) < 0) {
			/* no half state: the heartbeat goes too */
			cr_handle_cancel(beat_h);
			beat_h = cr_handle_unref(beat_h);
			return rc;
		}
	}
	thread_stop = false;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&stop_cv, &ca);
	pthread_condattr_destroy(&ca);
	if (crd_thread_start(&thread, watch_thread, NULL) == 0) {
		thread_started = true;
	} else {
		pthread_cond_destroy(&stop_cv);
		crd_log(CRUND_LOG_WARNING, "cannot start the stall watchdog thread");
	}
	return 0;
}

void crd_watchdog_stop(void)
{
	if (beat_h)
		cr_handle_cancel(beat_h);
	beat_h = cr_handle_unref(beat_h);
	if (sd_h)
		cr_handle_cancel(sd_h);
	sd_h = cr_handle_unref(sd_h);
	if (thread_started) {
		pthread_mutex_lock(&stop_mu);
		thread_stop = true;
		pthread_cond_signal(&stop_cv);
		pthread_mutex_unlock(&stop_mu);
		pthread_join(thread, NULL);
		pthread_cond_destroy(&stop_cv);
		thread_started = false;
	}
}

bool crd_watchdog_stalled(void)
{
	double now = (double)mono_ns() / 1e9;
	double b = (double)atomic_load(&beat_ns) / 1e9;
	if (now - b > STALL)
		return true;
	return stall_end > 0 && now - stall_end < STALL_REPORT;
}

double crd_watchdog_lag(void) { return lag; }
double crd_watchdog_lag_max(void) { return lag_max; }
