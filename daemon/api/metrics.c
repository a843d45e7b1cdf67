/*
 * metrics.c — GET /metrics in the Prometheus text format (0.0.4).
 *
 * Request counters are plain array increments on the hot path; everything
 * else is computed when scraped (one walk over the job records, which are
 * bounded by retention).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "http/http.h"
#include "log.h"

/* One histogram's lines; labels is "" or `key="v",...` (no braces). */
static void hist_lines(crd_buf *b, const char *name, const char *labels, const double *bounds,
		       const uint64_t *le, size_t n, uint64_t count, double sum)
{
	const char *sep = *labels ? "," : "";
	for (size_t i = 0; i < n; i++)
		crd_buf_addf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bounds[i],
			     (unsigned long long)le[i]);
	crd_buf_addf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
		     (unsigned long long)count);
	if (*labels) {
		crd_buf_addf(b, "%s_sum{%s} %.6f\n", name, labels, sum);
		crd_buf_addf(b, "%s_count{%s} %llu\n", name, labels, (unsigned long long)count);
	} else {
		crd_buf_addf(b, "%s_sum %.6f\n%s_count %llu\n", name, sum, name,
			     (unsigned long long)count);
	}
}

/* Run time by plugin, job and outcome; queue wait; retries. */
static void render_jobs_extra(crd_buf *b, const crd_jobs *s)
{
	char labels[256];
	crd_buf_adds(b, "# HELP crund_job_run_seconds Run time of ended jobs' last attempt, by "
			"plugin, job and outcome.\n"
			"# TYPE crund_job_run_seconds histogram\n");
	for (const crd_run_hist *r = s->run_hists; r; r = r->next) {
		snprintf(labels, sizeof(labels), "plugin=\"%s\",job=\"%s\",outcome=\"%s\"",
			 r->plugin->desc->name, r->spec->name, crd_job_state_name(r->state));
		hist_lines(b, "crund_job_run_seconds", labels, crd_hist_bounds, r->h.le, CRD_HIST_N,
			   r->h.count, r->h.sum);
	}
	crd_buf_adds(b, "# HELP crund_job_queue_wait_seconds From a job's due time (submission, "
			"delay or backoff) to its start.\n"
			"# TYPE crund_job_queue_wait_seconds histogram\n");
	hist_lines(b, "crund_job_queue_wait_seconds", "", crd_hist_bounds, s->queue_wait.le,
		   CRD_HIST_N, s->queue_wait.count, s->queue_wait.sum);
	crd_buf_addf(b,
		     "# HELP crund_job_retries_total Failed attempts queued again for another.\n"
		     "# TYPE crund_job_retries_total counter\n"
		     "crund_job_retries_total %llu\n"
		     "# HELP crund_job_interruptions_total Jobs found running at start (their "
		     "crund died).\n"
		     "# TYPE crund_job_interruptions_total counter\n"
		     "crund_job_interruptions_total %llu\n",
		     (unsigned long long)s->n_retries, (unsigned long long)s->n_interrupted);
	if (!s->shared)
		return;
	crd_buf_addf(b,
		     "# HELP crund_node_info This node of a shared store (value 1).\n"
		     "# TYPE crund_node_info gauge\n"
		     "crund_node_info{node=\"%s\"} 1\n"
		     "# HELP crund_node_claims_total Queued jobs this node claimed from the "
		     "database (not counting those it started at their submission).\n"
		     "# TYPE crund_node_claims_total counter\n"
		     "crund_node_claims_total %llu\n"
		     "# HELP crund_node_lease_fenced_total Writes of this node kept out because "
		     "another node (or the elected one) took the job after its lease ran out.\n"
		     "# TYPE crund_node_lease_fenced_total counter\n"
		     "crund_node_lease_fenced_total %llu\n"
		     "# HELP crund_node_idempotency_elsewhere_total Submissions answered with the "
		     "job another node created with their idempotency key.\n"
		     "# TYPE crund_node_idempotency_elsewhere_total counter\n"
		     "crund_node_idempotency_elsewhere_total %llu\n"
		     "# HELP crund_node_remote_records Records of jobs held elsewhere, kept "
		     "for requests and waits on this node.\n"
		     "# TYPE crund_node_remote_records gauge\n"
		     "crund_node_remote_records %zu\n",
		     s->node_id ? s->node_id : "", (unsigned long long)s->n_claimed,
		     (unsigned long long)s->n_lease_fenced, (unsigned long long)s->n_idem_remote,
		     s->n_remote);
}

/* The store: up, commits, rows per commit, latency, failures. */
static void render_store(crd_buf *b)
{
	crd_store_stats st;
	crd_store_get_stats(crd_d.store, &st);
	crd_buf_addf(
		b,
		"# HELP crund_store_up 1 while the job store takes writes (0: submissions "
		"answer 503 store_unavailable).\n"
		"# TYPE crund_store_up gauge\n"
		"crund_store_up %d\n"
		"# HELP crund_store_durable 1 when jobs outlive the process.\n"
		"# TYPE crund_store_durable gauge\n"
		"crund_store_durable %d\n"
		"# HELP crund_store_commits_total Store transactions committed.\n"
		"# TYPE crund_store_commits_total counter\n"
		"crund_store_commits_total %llu\n"
		"# HELP crund_store_commit_failures_total Store transactions that failed "
		"(retried).\n"
		"# TYPE crund_store_commit_failures_total counter\n"
		"crund_store_commit_failures_total %llu\n"
		"# HELP crund_store_rows_committed_total Job rows written (divided by commits: "
		"jobs per commit).\n"
		"# TYPE crund_store_rows_committed_total counter\n"
		"crund_store_rows_committed_total %llu\n"
		"# HELP crund_store_pending_rows Rows waiting for a commit.\n"
		"# TYPE crund_store_pending_rows gauge\n"
		"crund_store_pending_rows %llu\n"
		"# HELP crund_store_commit_seconds Store commit latency (fsync included under "
		"--sync full).\n"
		"# TYPE crund_store_commit_seconds histogram\n",
		crd_store_error(crd_d.store, NULL) ? 0 : 1, crd_store_durable(crd_d.store),
		(unsigned long long)st.commits, (unsigned long long)st.commit_failures,
		(unsigned long long)st.rows_committed, (unsigned long long)st.pending);
	hist_lines(b, "crund_store_commit_seconds", "", crd_store_lat_bounds, st.lat_le,
		   CRD_STORE_LAT_N, st.commits + st.commit_failures, st.lat_sum);
	crd_buf_adds(b, "# HELP crund_store_commit_jobs Jobs per committed store transaction "
			"(one row each: a submission, a transition or a deletion).\n"
			"# TYPE crund_store_commit_jobs histogram\n");
	hist_lines(b, "crund_store_commit_jobs", "", crd_store_rows_bounds, st.rows_le,
		   CRD_STORE_ROWS_N, st.commits, (double)st.rows_committed);
}

void crd_metrics_render(crd_buf *b)
{
	static const char *const refused[CRD_HTTP_REFUSED_N] = {
		[CRD_HTTP_REFUSED_LIMIT] = "max_connections",
		[CRD_HTTP_REFUSED_CLIENT] = "per_client",
		[CRD_HTTP_REFUSED_FDS] = "accept_failed",
	};
	static const char *const timeouts[CRD_HTTP_TIMEOUT_N] = {
		[CRD_HTTP_TIMEOUT_HEADER] = "header",
		[CRD_HTTP_TIMEOUT_BODY] = "body",
		[CRD_HTTP_TIMEOUT_IDLE] = "idle",
	};
	crd_jobs *s = &crd_d.jobs;
	crd_http_stats hs;
	crd_http_get_stats(crd_d.http, &hs);
	size_t np = crd_d.reg.n;
	size_t *counts = calloc(np * CRUND_JOB_NSTATES + 1, sizeof(size_t));

	crd_buf_adds(b, "# HELP crund_jobs Jobs known to the daemon, by state and plugin.\n"
			"# TYPE crund_jobs gauge\n");
	if (counts) {
		for (crd_jobrec *j = s->newest; j; j = j->older) {
			size_t pi = (size_t)(j->plugin - crd_d.reg.plugins);
			if (pi < np)
				counts[pi * CRUND_JOB_NSTATES + j->state]++;
		}
		for (size_t p = 0; p < np; p++)
			for (int st = 0; st < CRUND_JOB_NSTATES; st++)
				crd_buf_addf(b, "crund_jobs{state=\"%s\",plugin=\"%s\"} %zu\n",
					     crd_job_state_name(st),
					     crd_d.reg.plugins[p].desc->name,
					     counts[p * CRUND_JOB_NSTATES + (size_t)st]);
		free(counts);
	}
	crd_buf_addf(b,
		     "# HELP crund_jobs_queued Jobs waiting for a running slot.\n"
		     "# TYPE crund_jobs_queued gauge\n"
		     "crund_jobs_queued %zu\n"
		     "# HELP crund_jobs_running Jobs running now.\n"
		     "# TYPE crund_jobs_running gauge\n"
		     "crund_jobs_running %zu\n",
		     s->n_state[CRUND_JOB_QUEUED], s->n_state[CRUND_JOB_RUNNING]);
	crd_buf_addf(b,
		     "# HELP crund_jobs_submitted_total Jobs accepted since start.\n"
		     "# TYPE crund_jobs_submitted_total counter\n"
		     "crund_jobs_submitted_total %llu\n"
		     "# HELP crund_jobs_ended_total Jobs that reached a terminal state, by state.\n"
		     "# TYPE crund_jobs_ended_total counter\n",
		     (unsigned long long)s->n_submitted);
	for (int st = CRUND_JOB_SUCCEEDED; st < CRUND_JOB_NSTATES; st++)
		crd_buf_addf(b, "crund_jobs_ended_total{state=\"%s\"} %llu\n",
			     crd_job_state_name(st), (unsigned long long)s->n_ended_total[st]);
	crd_buf_addf(b,
		     "# HELP crund_loop_lag_seconds How late the loop's last heartbeat ran.\n"
		     "# TYPE crund_loop_lag_seconds gauge\n"
		     "crund_loop_lag_seconds %.6f\n"
		     "# HELP crund_loop_lag_max_seconds How late the loop's latest heartbeat "
		     "ran, at most, since start (its longest stall, at the heartbeat's 0.2 s "
		     "resolution).\n"
		     "# TYPE crund_loop_lag_max_seconds gauge\n"
		     "crund_loop_lag_max_seconds %.6f\n",
		     crd_watchdog_lag(), crd_watchdog_lag_max());
	crd_buf_adds(b, "# HELP crund_http_requests_total HTTP answers, by status code.\n"
			"# TYPE crund_http_requests_total counter\n");
	for (unsigned c = 100; c < 600; c++)
		if (hs.status[c])
			crd_buf_addf(b, "crund_http_requests_total{code=\"%u\"} %llu\n", c,
				     (unsigned long long)hs.status[c]);
	crd_buf_adds(b, "# HELP crund_http_refused_total Connections answered 503 and closed at "
			"the accept, by reason.\n"
			"# TYPE crund_http_refused_total counter\n");
	for (int i = 0; i < CRD_HTTP_REFUSED_N; i++)
		crd_buf_addf(b, "crund_http_refused_total{reason=\"%s\"} %llu\n", refused[i],
			     (unsigned long long)hs.refused[i]);
	crd_buf_adds(b, "# HELP crund_http_timeouts_total Connections closed because a request "
			"was not received in time, by phase.\n"
			"# TYPE crund_http_timeouts_total counter\n");
	for (int i = 0; i < CRD_HTTP_TIMEOUT_N; i++)
		crd_buf_addf(b, "crund_http_timeouts_total{phase=\"%s\"} %llu\n", timeouts[i],
			     (unsigned long long)hs.timeouts[i]);
	crd_buf_addf(b,
		     "# HELP crund_http_connections HTTP connections open.\n"
		     "# TYPE crund_http_connections gauge\n"
		     "crund_http_connections %zu\n",
		     hs.connections);
	crd_buf_addf(b,
		     "# HELP crund_uptime_seconds Seconds since the daemon started.\n"
		     "# TYPE crund_uptime_seconds gauge\n"
		     "crund_uptime_seconds %.3f\n"
		     "# HELP crund_http_held_connections Long-polls and event streams waiting.\n"
		     "# TYPE crund_http_held_connections gauge\n"
		     "crund_http_held_connections %zu\n"
		     "# HELP crund_draining 1 while the daemon shuts down.\n"
		     "# TYPE crund_draining gauge\n"
		     "crund_draining %d\n",
		     cr_loop_time(crd_d.loop) - crd_d.start_mono, hs.held,
		     crd_d.jobs.draining ? 1 : 0);
	render_jobs_extra(b, s);
	render_store(b);
}

/* ------------------------------------------------------ GET /v1/stats */

/* The dashboard's charts come from the counters above, sampled once a
 * second into a ring of STATS_SECONDS samples (the retention tick calls
 * crd_metrics_sample): jobs submitted and ended, and the run-time
 * histogram of every plugin and job added up.  Differences between two
 * samples give rates and, with the histogram's buckets, percentiles; no
 * second metrics system, ~45 KB. */
#define STATS_SECONDS 301
#define STATS_STEP    10

struct stats_sample {
	double t; /* wall clock; 0: empty */
	uint64_t submitted, ended;
	uint64_t le[CRD_HIST_N];
	uint64_t count;
};

static struct stats_sample stats_ring[STATS_SECONDS];
static size_t stats_next; /* the slot the next sample goes to */

void crd_metrics_sample(void)
{
	const crd_jobs *s = &crd_d.jobs;
	struct stats_sample *x = &stats_ring[stats_next];
	memset(x, 0, sizeof(*x));
	x->t = crd_now_realtime();
	x->submitted = s->n_submitted;
	for (int st = CRUND_JOB_SUCCEEDED; st < CRUND_JOB_NSTATES; st++)
		x->ended += s->n_ended_total[st];
	for (const crd_run_hist *r = s->run_hists; r; r = r->next) {
		for (int i = 0; i < CRD_HIST_N; i++)
			x->le[i] += r->h.le[i];
		x->count += r->h.count;
	}
	stats_next = (stats_next + 1) % STATS_SECONDS;
}

/* The q-quantile of the observations between samples a and b, linear
 * within a bucket (as Prometheus' histogram_quantile); beyond the last
 * bound, the last bound.  -1: no observation. */
static double quantile(const struct stats_sample *a, const struct stats_sample *b, double q)
{
	uint64_t n = b->count - a->count;
	if (!n)
		return -1;
	double rank = q * (double)n;
	uint64_t below = 0;
	for (int i = 0; i < CRD_HIST_N; i++) {
		uint64_t c = b->le[i] - a->le[i];
		if ((double)c >= rank) {
			double lo = i ? crd_hist_bounds[i - 1] : 0, hi = crd_hist_bounds[i];
			double in = (double)(c - below);
			return in > 0 ? lo + (hi - lo) * (rank - (double)below) / in : hi;
		}
		below = c;
	}
	return crd_hist_bounds[CRD_HIST_N - 1];
}

static void add_q(crd_buf *b, const char *key, double v)
{
	crd_buf_adds(b, key);
	if (v < 0)
		crd_buf_adds(b, "null");
	else
		crd_buf_addf(b, "%.6f", v);
}

static void add_plugin_counts(crd_buf *b, bool comma, const char *name, const size_t *counts)
{
	if (comma)
		crd_buf_addc(b, ',');
	crd_buf_add_jstr(b, name);
	crd_buf_addc(b, ':');
	for (int st = 0; st < CRUND_JOB_NSTATES; st++)
		crd_buf_addf(b, "%c\"%s\":%zu", st ? ',' : '{', crd_job_state_name(st), counts[st]);
	crd_buf_addc(b, '}');
}

/* The loaded plugin a job counts under: its own, or, for a job whose
 * plugin job is not loaded (a stand-in record), the loaded plugin of that
 * name; np when there is none. */
static size_t plugin_index(const crd_jobrec *j)
{
	size_t np = crd_d.reg.n;
	for (size_t p = 0; p < np; p++)
		if (j->plugin == &crd_d.reg.plugins[p])
			return p;
	for (size_t p = 0; p < np; p++)
		if (!strcmp(crd_d.reg.plugins[p].desc->name, j->plugin->desc->name))
			return p;
	return np;
}

/* The jobs of plugins not loaded now (kept by a durable store, ended
 * with plugin_missing or before the plugin went): counted by name too.
 * Such plugins are few; each name is looked for among those seen. */
static void add_unloaded_counts(crd_buf *b, const crd_jobs *s, bool comma)
{
	size_t np = crd_d.reg.n, n = 0, cap = 0;
	struct unloaded {
		const char *name;
		size_t counts[CRUND_JOB_NSTATES];
	} *u = NULL;
	for (const crd_jobrec *j = s->newest; j; j = j->older) {
		if ((j->flags & (CRUND_JF_UNCOMMITTED | CRUND_JF_REMOTE)) || plugin_index(j) < np)
			continue;
		const char *name = j->plugin->desc->name;
		size_t i = 0;
		while (i < n && strcmp(u[i].name, name))
			i++;
		if (i == n) {
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 8;
				void *p = realloc(u, nc * sizeof(*u));
				if (!p)
					break; /* out of memory: the ones seen so far */
				u = p;
				cap = nc;
			}
			u[n] = (struct unloaded){.name = name};
			n++;
		}
		u[i].counts[j->state]++;
	}
	for (size_t i = 0; i < n; i++)
		add_plugin_counts(b, comma || i > 0, u[i].name, u[i].counts);
	free(u);
}

void crd_metrics_render_stats(crd_buf *b)
{
	crd_jobs *s = &crd_d.jobs;
	size_t np = crd_d.reg.n;
	size_t *counts = calloc(np * CRUND_JOB_NSTATES + 1, sizeof(size_t));

	crd_buf_addf(b,
		     "{\"step_seconds\":%d,\"window_seconds\":%d,\"loop_lag_seconds\":%.6f,"
		     "\"jobs_by_plugin\":{",
		     STATS_STEP, STATS_SECONDS - 1, crd_watchdog_lag());
	if (counts) {
		for (crd_jobrec *j = s->newest; j; j = j->older) {
			size_t pi = plugin_index(j);
			if (pi < np && !(j->flags & CRUND_JF_UNCOMMITTED))
				counts[pi * CRUND_JOB_NSTATES + j->state]++;
		}
		for (size_t p = 0; p < np; p++)
			add_plugin_counts(b, p > 0, crd_d.reg.plugins[p].desc->name,
					  counts + p * CRUND_JOB_NSTATES);
		free(counts);
		add_unloaded_counts(b, s, np > 0);
	}
	/* points: one per STATS_STEP seconds, oldest first, each from the
	 * sample STATS_STEP seconds before it */
	crd_buf_adds(b, "},\"points\":[");
	size_t newest = (stats_next + STATS_SECONDS - 1) % STATS_SECONDS;
	size_t n = 0;
	for (int k = (STATS_SECONDS - 1) / STATS_STEP - 1; k >= 0; k--) {
		size_t ib = (newest + STATS_SECONDS - (size_t)k * STATS_STEP) % STATS_SECONDS;
		size_t ia = (ib + STATS_SECONDS - STATS_STEP) % STATS_SECONDS;
		const struct stats_sample *a = &stats_ring[ia], *bb = &stats_ring[ib];
		if (!a->t || !bb->t || bb->t <= a->t)
			continue;
		double dt = bb->t - a->t;
		char ts[40];
		crd_format_time(bb->t, ts, sizeof(ts));
		crd_buf_addf(b,
			     "%s{\"t\":\"%s\",\"submitted_per_second\":%.3f,"
			     "\"ended_per_second\":%.3f",
			     n++ ? "," : "", ts, (double)(bb->submitted - a->submitted) / dt,
			     (double)(bb->ended - a->ended) / dt);
		add_q(b, ",\"run_p50\":", quantile(a, bb, 0.5));
		add_q(b, ",\"run_p90\":", quantile(a, bb, 0.9));
		add_q(b, ",\"run_p99\":", quantile(a, bb, 0.99));
		crd_buf_addc(b, '}');
	}
	crd_buf_adds(b, "]}\n");
}
