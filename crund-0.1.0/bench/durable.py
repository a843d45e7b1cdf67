#!/usr/bin/python3
"""crund's durable-store benchmarks, and the durable peers beside them.

  durable.py run --crund PATH --plugin-dir DIR --peers DIR [options]
  durable.py summarize FILE.json...      median [min..max] table (markdown)

`run` (called by bench/run-durable.sh, which builds crund first) measures,
in this order, in one invocation, and prints one JSON document:

  floor   the machine's fdatasync of 4 KiB now (bench-peers/durable/floors.py
          fsync, N=200), in the same temp dir as every store below: the
          disk is shared, and every durable figure scales with it.
  crund   for each store -- memory:, sqlite --sync normal, sqlite --sync full
          -- a fresh crund (store file in a new temp dir, --retain-jobs
          10000, so the runs below are a sustained load with retention on):
            warm-up  wrk 1 s (D1)
            D1       POST noop, wrk -t1 -c64 -dS (bench-peers/post_noop.lua)
            D2       POST noop ?wait=5, same wrk settings
            RT       POST noop ?wait=5, wrk -c1 -d3s: sequential round trips
          each with req/s, p50/p99 (wrk, us), server CPU us per request
          (/proc/PID/stat utime+stime around the wrk run), and -- counted
          by `perf stat -p PID` over exactly the wrk run -- fdatasync+fsync
          system calls (tracepoints) and commits.  Commits come from
          /metrics (crund_store_commits_total) when crund exports it, else
          from a uprobe on libsqlite3's sqlite3_exec filtered on the SQL
          text "COMMIT" (the store commits with sqlite3_exec(db, "COMMIT")),
          added for this run and removed after it; `commits_source` says
          which.  jobs per commit = jobs accepted in the window
          (crund_jobs_submitted_total) / commits.  RSS and the store's
          size (db + -wal) are sampled every 0.5 s from the warm-up to
          the end, and once more after crund stopped.
  peers   Celery and RQ (Redis, AOF everysec), graphile-worker and pg-boss
          (PostgreSQL 15, synchronous_commit=on), run by their own clients
          and workers from bench-peers/durable (redisq.py, pgq.js; their
          README defines W1/W2/W3): W1 durable enqueue (no workers), W2 end
          to end (2 worker processes), W3 sequential round trips.  Counts
          are smaller than the peers' own run.sh (see meta.config) so that
          the whole invocation stays under ~5 minutes; the rates are the
          same definitions.  A peer that cannot run here is
          {"skipped": "why"}.

Then `ratios` and `goals` from the same run (docs: bench/README.md).
Every process started here is stopped here by its pid (and gets
PR_SET_PDEATHSIG, so it also stops if this script dies).  Loopback only.
"""
import argparse
import ctypes
import glob
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

PY = "/usr/bin/python3"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
MODES = [
    ("memory", ["--store", "memory:"]),
    ("sqlite-normal", ["--sync", "normal"]),
    ("sqlite-full", ["--sync", "full"]),
]


def log(msg):
    print("[durable %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


# ------------------------------------------------------------ processes

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1
STARTED = []  # Popen objects started here and not yet reaped


def _die_with_parent():
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start(cmd, logpath, cwd=None, env=None):
    """Start cmd in the background (stdout+stderr to logpath)."""
    f = open(logpath, "wb")
    p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         cwd=cwd, env=env, preexec_fn=_die_with_parent)
    f.close()
    p.logpath = logpath
    STARTED.append(p)
    return p


def stop(p, sig=signal.SIGTERM, wait_s=15):
    """Stop a process started here, by its pid; KILL after wait_s."""
    if p is None or p not in STARTED:
        return
    STARTED.remove(p)
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(wait_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


def stop_all():
    for p in list(reversed(STARTED)):
        stop(p, signal.SIGINT if getattr(p, "is_pg", False) else signal.SIGTERM)


def run(cmd, timeout, cwd=None, env=None):
    """Run to completion; (rc, stdout, stderr).  rc None on timeout."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                           env=env, preexec_fn=_die_with_parent)
        return r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        return None, e.stdout or "", "timed out after %s s" % timeout


def last_json(text):
    for line in reversed((text or "").splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def free_port(first):
    p = first
    while p < first + 200:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
                return p
            except OSError:
                p += 1
    raise SystemExit("no free port near %d" % first)


def wait_port(port, proc, seconds=10):
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        if proc.poll() is not None:
            return False
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def proc_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def proc_rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_hwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def fsize(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


# ------------------------------------------------------------ perf

class Counters:
    """fdatasync/fsync tracepoints and (for sqlite) a COMMIT uprobe."""

    def __init__(self):
        self.ok = False
        self.probe = None
        self.why = None
        if not shutil.which("perf"):
            self.why = "perf not installed"
            return
        rc, _, err = run(["perf", "stat", "-x,", "-e", "syscalls:sys_enter_fdatasync",
                          "--", "true"], 20)
        if rc != 0:
            self.why = "perf cannot count syscall tracepoints: %s" % err.strip()[-200:]
            return
        self.ok = True

    def add_probe(self, pid):
        """A uprobe on the sqlite3_exec crund has mapped; None if not possible."""
        if not self.ok or self.probe:
            return self.probe
        lib = None
        with open("/proc/%d/maps" % pid) as f:
            for line in f:
                if "libsqlite3" in line and line.split()[-1].startswith("/"):
                    lib = line.split()[-1]
                    break
        if not lib:
            self.why = "crund has no shared libsqlite3 mapped"
            return None
        name = "crd_bench_commit_%d" % os.getpid()
        rc, out, err = run(["perf", "probe", "-q", "-x", lib,
                            "%s=sqlite3_exec sql=+0(%%si):string" % name], 60)
        if rc != 0:
            self.why = "perf probe failed: %s" % err.strip()[-200:]
            return None
        group = "probe_" + os.path.basename(lib).split(".")[0]
        self.probe = "%s:%s" % (group, name)
        return self.probe

    def remove_probe(self):
        if self.probe:
            run(["perf", "probe", "-q", "-d", self.probe], 60)
            self.probe = None

    def wrap(self, pid, cmd, outpath, commits):
        """perf stat -p pid around cmd (cmd runs as perf's workload)."""
        if not self.ok:
            return cmd
        ev = ["-e", "syscalls:sys_enter_fdatasync", "-e", "syscalls:sys_enter_fsync"]
        if commits and self.probe:
            ev += ["-e", self.probe, "--filter", 'sql == "COMMIT"']
        return ["perf", "stat", "-x,", "-o", outpath, "-p", str(pid)] + ev + ["--"] + cmd

    @staticmethod
    def parse(outpath):
        res = {}
        try:
            with open(outpath) as f:
                for line in f:
                    parts = line.strip().split(",")
                    if len(parts) >= 3 and parts[0].strip().isdigit():
                        res[parts[2]] = int(parts[0])
        except OSError:
            pass
        return res


# ------------------------------------------------------------ crund

def metrics_text(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            return r.read().decode()
    except Exception:
        return ""


def metric(text, name):
    """Sum of every sample of metric `name` (any labels)."""
    tot, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            tot += float(line.rsplit(" ", 1)[1])
            seen = True
    return tot if seen else None


def wrk_cmd(a, port, conns, seconds, wait):
    url = "http://127.0.0.1:%d/v1/jobs%s" % (port, "?wait=5" if wait else "")
    return ["taskset", "-c", "1", "wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds, "--latency",
            "--timeout", "10s", "-s", os.path.join(a.peers, "post_noop.lua"), url]


def parse_wrk(text):
    for line in (text or "").splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line[8:])
    return None


class Sampler(threading.Thread):
    """RSS and store size every 0.5 s."""

    def __init__(self, pid, db):
        super().__init__(daemon=True)
        self.pid, self.db, self.samples = pid, db, []
        self.halt = threading.Event()
        self.t0 = time.monotonic()

    def sample(self):
        s = {"t": round(time.monotonic() - self.t0, 2), "rss_kb": proc_rss_kb(self.pid)}
        if self.db:
            s["db_bytes"] = fsize(self.db)
            s["wal_bytes"] = fsize(self.db + "-wal")
        return s

    def run(self):
        while not self.halt.wait(0.5):
            self.samples.append(self.sample())


def crund_phase(a, cnt, srv, port, db, name, conns, seconds, wait):
    """One wrk run against crund with CPU, syscall and commit counts."""
    pid = srv.pid
    m0 = metrics_text(port)
    c0 = proc_cpu_s(pid)
    perf_out = os.path.join(a.tmp, "perf-%s.txt" % name)
    cmd = cnt.wrap(pid, wrk_cmd(a, port, conns, seconds, wait), perf_out, db is not None)
    rc, out, err = run(cmd, seconds + 60)
    c1 = proc_cpu_s(pid)
    m1 = metrics_text(port)
    w = parse_wrk(out)
    if not w:
        return {"error": "wrk gave no result (rc %s): %s" % (rc, (err or out)[-300:])}
    errs = sum(w["errors"].values())
    ok = w["requests"] - w["errors"]["status"]
    dur = w["duration_us"] / 1e6
    r = {
        "req_per_s": w["rps"], "requests": w["requests"], "errors": errs,
        "p50_ms": w["lat_us"]["p50"] / 1000, "p99_ms": w["lat_us"]["p99"] / 1000,
        "p99_9_ms": w["lat_us"]["p99.9"] / 1000, "max_ms": w["lat_us"]["max"] / 1000,
        "connections": conns, "seconds": dur,
        "server_cpu_us_per_req": (c1 - c0) * 1e6 / max(ok, 1),
        "server_cpu_cores": (c1 - c0) / dur,
    }
    if cnt.ok:
        pc = Counters.parse(perf_out)
        syncs = pc.get("syscalls:sys_enter_fdatasync", 0) + pc.get("syscalls:sys_enter_fsync", 0)
        r["fsyncs"] = syncs
        r["fsyncs_per_s"] = syncs / dur
        r["fsyncs_source"] = "perf stat -p PID: syscalls:sys_enter_fdatasync + sys_enter_fsync"
    if db is not None:
        jobs = None
        s0, s1 = metric(m0, "crund_jobs_submitted_total"), metric(m1, "crund_jobs_submitted_total")
        if s0 is not None and s1 is not None:
            jobs = s1 - s0
        k0, k1 = metric(m0, "crund_store_commits_total"), metric(m1, "crund_store_commits_total")
        commits, src = None, None
        if k0 is not None and k1 is not None:
            commits, src = k1 - k0, "/metrics crund_store_commits_total"
        elif cnt.ok and cnt.probe:
            commits = Counters.parse(perf_out).get(cnt.probe)
            src = "uprobe on libsqlite3 sqlite3_exec(db, \"COMMIT\") (perf stat -p PID)"
        if commits is not None:
            r["commits"] = commits
            r["commits_per_s"] = commits / dur
            r["commits_source"] = src
            if jobs is not None and commits:
                r["jobs_accepted"] = jobs
                r["jobs_per_commit"] = jobs / commits
        elif cnt.why:
            r["commits_skipped"] = cnt.why
    return r


def crund_mode(a, cnt, mode, extra):
    d = tempfile.mkdtemp(prefix="store-%s." % mode, dir=a.tmp)
    db = None if mode == "memory" else os.path.join(d, "crund.db")
    args = extra if db is None else ["--store", "sqlite:" + db] + extra
    port = free_port(a.port)
    cmd = [a.crund, "--listen", "127.0.0.1:%d" % port, "--plugin-dir", a.plugin_dir,
           "--max-running", "1000000", "--max-queued", "1000000",
           "--retain-jobs", str(a.retain_jobs), "--retain-seconds", "3600",
           "--grace", "0", "--log-level", "warning"] + args
    res = {"args": " ".join(cmd[1:]), "loadavg_1m_start": loadavg()[0]}
    srv = start(cmd, os.path.join(d, "crund.log"))
    if not wait_port(port, srv):
        stop(srv)
        with open(srv.logpath) as f:
            return {"error": "crund did not listen: %s" % f.read()[-500:]}
    if db is not None:
        cnt.add_probe(srv.pid)
    samp = Sampler(srv.pid, db)
    res["rss_kb_start"] = proc_rss_kb(srv.pid)
    run(wrk_cmd(a, port, 64, 1, False), 60)  # warm-up
    samp.samples.append(samp.sample())
    samp.start()
    res["D1"] = crund_phase(a, cnt, srv, port, db, mode + "-D1", 64, a.seconds, False)
    res["D2"] = crund_phase(a, cnt, srv, port, db, mode + "-D2", 64, a.seconds, True)
    res["RT"] = crund_phase(a, cnt, srv, port, db, mode + "-RT", 1, a.rt_seconds, True)
    samp.halt.set()
    samp.join()
    last = samp.sample()
    samp.samples.append(last)
    res["rss_kb_hwm"] = proc_hwm_kb(srv.pid)
    m = metrics_text(port)
    res["jobs_submitted"] = metric(m, "crund_jobs_submitted_total")
    stop(srv)
    res["exit_code"] = srv.returncode
    first = samp.samples[0]
    sus = {
        "retain_jobs": a.retain_jobs,
        "jobs_submitted": res["jobs_submitted"],
        "seconds": last["t"] - first["t"],
        "rss_kb_after_warmup": first["rss_kb"], "rss_kb_end": last["rss_kb"],
        "rss_kb_max": max(s["rss_kb"] or 0 for s in samp.samples),
    }
    if db is not None:
        tot = [s["db_bytes"] + s["wal_bytes"] for s in samp.samples]
        sus.update({
            "store_bytes_after_warmup": tot[0], "store_bytes_end": tot[-1],
            "store_bytes_max": max(tot), "wal_bytes_max": max(s["wal_bytes"] for s in samp.samples),
            "store_bytes_after_stop": fsize(db) + fsize(db + "-wal"),
        })
        # the 2nd half of the run against the 1st: flat means no growth
        half = samp.samples[len(samp.samples) // 2]
        sus["store_bytes_mid"] = half["db_bytes"] + half["wal_bytes"]
        sus["rss_kb_mid"] = half["rss_kb"]
        try:
            c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
            sus["rows_after_stop"] = c.execute("select count(*) from jobs").fetchone()[0]
            sus["freelist_pages_after_stop"] = c.execute("pragma freelist_count").fetchone()[0]
            c.close()
        except sqlite3.Error as e:
            sus["rows_after_stop"] = "error: %s" % e
    else:
        half = samp.samples[len(samp.samples) // 2]
        sus["rss_kb_mid"] = half["rss_kb"]
    res["sustained"] = sus
    res["samples"] = samp.samples
    res["loadavg_1m_end"] = loadavg()[0]
    shutil.rmtree(d, ignore_errors=True)
    return res


# ------------------------------------------------------------ peers

def prepare_peers(a):
    """The peers' folder, writable (node_modules, __pycache__): a copy."""
    src = os.path.join(a.peers, "durable")
    if not os.path.isdir(src):
        return None, "no %s" % src
    work = a.peers_work
    if not os.path.isfile(os.path.join(work, "pgq.js")):
        shutil.copytree(src, work, dirs_exist_ok=True)
        for root, dirs, files in os.walk(work):
            for x in dirs + files:
                os.chmod(os.path.join(root, x), 0o755 if x in dirs else 0o644)
    return work, None


def redis_missing():
    miss = [c for c in ("redis-server", "redis-cli") if not shutil.which(c)]
    rc, _, err = run([PY, "-c", "import celery, redis, rq"], 60)
    if rc != 0:
        miss.append("python3 modules (%s)" % err.strip().splitlines()[-1] if err.strip() else "?")
    return miss


def start_redis(a, rport, tag):
    d = tempfile.mkdtemp(prefix="redis.", dir=a.tmp)
    p = start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--dir", d,
               "--appendonly", "yes", "--appendfsync", "everysec"],
              os.path.join(a.tmp, "%s.redis.log" % tag))
    p.redis_dir = d
    t_end = time.monotonic() + 10
    while time.monotonic() < t_end:
        rc, out, _ = run(["redis-cli", "-h", "127.0.0.1", "-p", str(rport), "ping"], 5)
        if out.strip() == "PONG":
            return p
        if p.poll() is not None:
            break
        time.sleep(0.05)
    stop(p)
    return None


def stop_redis(p):
    stop(p)
    shutil.rmtree(p.redis_dir, ignore_errors=True)


def redis_workers(a, work, kind, rport, tag):
    env = dict(os.environ, DP_REDIS_PORT=str(rport))
    if kind == "celery":
        return [start([PY, "-m", "celery", "-A", "celery_app", "worker", "--concurrency", "2",
                       "--pool", "prefork", "--loglevel", "WARNING"],
                      os.path.join(a.tmp, "%s.worker.log" % tag), cwd=work, env=env)]
    return [start([PY, shutil.which("rq"), "worker", "--url", "redis://127.0.0.1:%d" % rport,
                   "--path", ".", "--logging_level", "WARNING", "--disable-job-desc-logging",
                   "--worker-class", "rq.worker.SimpleWorker", "default"],
                  os.path.join(a.tmp, "%s.worker%d.log" % (tag, i)), cwd=work, env=env)
            for i in (1, 2)]


def peer_client(cmd, work, timeout, env=None):
    rc, out, err = run(cmd, timeout, cwd=work, env=env)
    j = last_json(out)
    if not j or "metrics" not in j:
        return {"error": "rc %s: %s" % (rc, (err or out).strip()[-400:])}
    r = {k.split(".", 1)[1]: v for k, v in j["metrics"].items()}
    r["loadavg_1m"] = loadavg()[0]
    return r


def redis_peer(a, work, kind):
    """celery | rq (SimpleWorker workers; W1 is RQ's client either way)."""
    rport = free_port(26379)
    q = ["--peer", kind, "--port", str(rport)]
    res = {}
    srv = start_redis(a, rport, kind + "-W1")
    if not srv:
        return {"skipped": "redis-server did not start"}
    res["W1"] = peer_client([PY, "redisq.py", "w1"] + q + [
        "--server-pid", str(srv.pid), "--jobs", str(a.w1_jobs), "--procs", "8"], work, 300)
    stop_redis(srv)
    for test in ("W2", "W3"):
        log("peer %s %s" % (kind, test))
        srv = start_redis(a, rport, "%s-%s" % (kind, test))
        ws = redis_workers(a, work, kind, rport, "%s-%s" % (kind, test))
        wp = ",".join(str(w.pid) for w in ws)
        rc, out, err = run([PY, "redisq.py", "ready"] + q + ["--server-pid", str(srv.pid),
                                                            "--max-seconds", "60"], 90, cwd=work)
        if rc != 0:
            res[test] = {"error": "workers not ready: %s" % (err or out).strip()[-300:]}
        elif test == "W2":
            res[test] = peer_client([PY, "redisq.py", "w2"] + q + [
                "--server-pid", str(srv.pid), "--worker-pids", wp, "--worker-procs", "2",
                "--jobs", str(a.w2_jobs), "--procs", "8", "--max-seconds", "120"], work, 150)
        else:
            res[test] = peer_client([PY, "redisq.py", "w3"] + q + [
                "--server-pid", str(srv.pid), "--worker-pids", wp, "--jobs", str(a.w3_jobs),
                "--max-seconds", "60"], work, 90)
        for w in ws:
            stop(w)
        stop_redis(srv)
    return res


def pg_missing(work):
    miss = []
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not bins:
        miss.append("PostgreSQL server (apt-get install postgresql)")
    if not shutil.which("node"):
        miss.append("node")
    if not os.path.isdir(os.path.join(work, "node_modules", "pg-boss")):
        miss.append("node_modules in %s (npm ci there)" % work)
    return miss, (os.path.dirname(bins[-1]) if bins else None)


class Pg:
    def __init__(self, a, pgbin):
        self.a, self.bin = a, pgbin
        self.user = "postgres"
        self.port = free_port(25432)
        self.dir = tempfile.mkdtemp(prefix="pg.", dir=a.tmp)
        os.chmod(self.dir, 0o755)
        import pwd
        pw = pwd.getpwnam(self.user)
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.as_pg = ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
                      "--init-groups"]
        self.proc = None

    def start(self):
        data = os.path.join(self.dir, "data")
        rc, out, err = run(self.as_pg + [os.path.join(self.bin, "initdb"), "-D", data, "-U",
                                         "postgres", "--auth=trust", "-E", "UTF8",
                                         "--no-instructions"], 120)
        if rc != 0:
            return "initdb failed: %s" % (err or out)[-300:]
        self.proc = start(self.as_pg + [os.path.join(self.bin, "postgres"), "-D", data, "-p",
                                        str(self.port), "-k", self.dir, "-c",
                                        "listen_addresses=127.0.0.1"],
                          os.path.join(self.a.tmp, "postgres.log"))
        self.proc.is_pg = True
        t_end = time.monotonic() + 30
        while time.monotonic() < t_end:
            if run([os.path.join(self.bin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                    str(self.port)], 10)[0] == 0:
                return None
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        return "postgres did not start (see its log)"

    def newdb(self, name):
        run(["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c",
             "create database %s" % name], 60)
        return "postgres://postgres@127.0.0.1:%d/%s" % (self.port, name)

    def stop(self):
        stop(self.proc, signal.SIGINT, 30)


def pg_workers(a, work, peer, url, tag, env):
    ws = [start(["node", "pgq.js", "worker", "--peer", peer, "--db", url, "--max-seconds", "240"],
                os.path.join(a.tmp, "%s.worker%d.log" % (tag, i)), cwd=work, env=env)
          for i in (1, 2)]
    t_end = time.monotonic() + 30
    while time.monotonic() < t_end:
        ready = 0
        for w in ws:
            with open(w.logpath, errors="replace") as f:
                ready += "worker ready" in f.read()
        if ready == len(ws):
            break
        time.sleep(0.1)
    return ws


def pg_peer(a, work, pg, peer):
    env = dict(os.environ, GW_CONCURRENCY="8", BOSS_BATCH="1000", BOSS_POLL="0.5")
    q = ["--peer", peer, "--server-pid", str(pg.proc.pid)]
    res = {}
    url = pg.newdb("b_%s_w1" % peer)
    run(["node", "pgq.js", "setup", "--peer", peer, "--db", url], 120, cwd=work, env=env)
    res["W1"] = peer_client(["node", "pgq.js", "w1"] + q + [
        "--db", url, "--jobs", str(a.w1_jobs_pg), "--conc", "32", "--max-seconds", "120"],
        work, 150, env)
    url = pg.newdb("b_%s_w2" % peer)
    run(["node", "pgq.js", "setup", "--peer", peer, "--db", url], 120, cwd=work, env=env)
    ws = pg_workers(a, work, peer, url, peer + "-W2", env)
    res["W2"] = peer_client(["node", "pgq.js", "w2"] + q + [
        "--db", url, "--worker-pids", ",".join(str(w.pid) for w in ws), "--worker-procs", "2",
        "--jobs", str(a.w2_jobs_pg), "--conc", "32", "--test", "W2", "--max-seconds", "120"],
        work, 150, env)
    for w in ws:
        stop(w)
    url = pg.newdb("b_%s_w3" % peer)
    run(["node", "pgq.js", "setup", "--peer", peer, "--db", url, "--notify"], 120, cwd=work,
        env=env)
    ws = pg_workers(a, work, peer, url, peer + "-W3", env)
    n = a.w3_jobs_pgboss if peer == "boss" else a.w3_jobs
    res["W3"] = peer_client(["node", "pgq.js", "w3"] + q + [
        "--db", url, "--worker-pids", ",".join(str(w.pid) for w in ws), "--jobs", str(n),
        "--max-seconds", "60"], work, 90, env)
    for w in ws:
        stop(w)
    return res


def peers(a):
    out = {}
    work, why = prepare_peers(a)
    names = ["celery", "rq", "graphile-worker", "pg-boss"]
    if not work:
        return {n: {"skipped": why} for n in names}
    if "redis" in a.peer_parts:
        miss = redis_missing()
        for kind in ("celery", "rq"):
            if miss:
                out[kind] = {"skipped": "missing: %s (Debian: apt-get install redis-server "
                                        "redis-tools python3-celery python3-redis python3-rq)"
                                        % ", ".join(miss)}
                continue
            log("peer %s" % kind)
            out[kind] = redis_peer(a, work, kind)
            if kind == "rq":
                out[kind]["workers"] = "2 x rq.worker.SimpleWorker (the peers' rq-simple column)"
    if "pg" in a.peer_parts:
        miss, pgbin = pg_missing(work)
        if miss:
            for n in ("graphile-worker", "pg-boss"):
                out[n] = {"skipped": "missing: %s" % ", ".join(miss)}
        else:
            pg = Pg(a, pgbin)
            err = pg.start()
            if err:
                for n in ("graphile-worker", "pg-boss"):
                    out[n] = {"skipped": err}
            else:
                for n, p in (("graphile-worker", "gw"), ("pg-boss", "boss")):
                    log("peer %s" % n)
                    out[n] = pg_peer(a, work, pg, p)
            pg.stop()
    for n in names:
        out.setdefault(n, {"skipped": "not selected (--peer-parts)"})
    return out


# ------------------------------------------------------------ ratios

def g(d, *path):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def ratio(x, y):
    return x / y if isinstance(x, (int, float)) and isinstance(y, (int, float)) and y else None


def ratios_goals(doc):
    c = doc.get("crund", {})
    p = doc.get("peers", {})
    mem = g(c, "memory", "D1", "req_per_s")
    r = {
        "D1_normal_over_memory": ratio(g(c, "sqlite-normal", "D1", "req_per_s"), mem),
        "D1_full_over_memory": ratio(g(c, "sqlite-full", "D1", "req_per_s"), mem),
        "D2_normal_over_memory": ratio(g(c, "sqlite-normal", "D2", "req_per_s"),
                                       g(c, "memory", "D2", "req_per_s")),
        "D2_full_over_memory": ratio(g(c, "sqlite-full", "D2", "req_per_s"),
                                     g(c, "memory", "D2", "req_per_s")),
        "D2_p50_ms_full": g(c, "sqlite-full", "D2", "p50_ms"),
    }
    enq = {n: g(v, "W1", "jobs_per_s") for n, v in p.items() if g(v, "W1", "jobs_per_s")}
    e2e = {n: g(v, "W2", "jobs_per_s") for n, v in p.items() if g(v, "W2", "jobs_per_s")}
    if enq:
        best = max(enq, key=enq.get)
        r["best_peer_enqueue"] = {"peer": best, "jobs_per_s": enq[best]}
        r["enqueue_full_over_best_peer"] = ratio(g(c, "sqlite-full", "D1", "req_per_s"), enq[best])
        r["enqueue_normal_over_best_peer"] = ratio(g(c, "sqlite-normal", "D1", "req_per_s"),
                                                   enq[best])
    if e2e:
        best = max(e2e, key=e2e.get)
        r["best_peer_end_to_end"] = {"peer": best, "jobs_per_s": e2e[best]}
        r["end_to_end_full_over_best_peer"] = ratio(g(c, "sqlite-full", "D2", "req_per_s"),
                                                    e2e[best])
    cel = g(p, "celery", "W3", "p50_ms")
    if cel:
        r["celery_W3_p50_ms"] = cel
        r["round_trip_p50_full_over_celery"] = ratio(g(c, "sqlite-full", "RT", "p50_ms"), cel)

    def goal(v, op, lim):
        if v is None:
            return {"value": None, "goal": "%s %s" % (op, lim), "met": None}
        return {"value": v, "goal": "%s %s" % (op, lim),
                "met": v >= lim if op == ">=" else v <= lim}
    goals = {
        "D1 full >= 50% of memory": goal(r["D1_full_over_memory"], ">=", 0.5),
        "D1 normal >= 70% of memory": goal(r["D1_normal_over_memory"], ">=", 0.7),
        "D2 p50 under full <= 1 ms": goal(r["D2_p50_ms_full"], "<=", 1.0),
        "durable enqueue (D1 full) >= 4x best peer W1": goal(
            r.get("enqueue_full_over_best_peer"), ">=", 4),
        "end to end (D2 full) >= 10x best peer W2": goal(
            r.get("end_to_end_full_over_best_peer"), ">=", 10),
        "round trip p50 (RT full) <= 1/4 of Celery W3": goal(
            r.get("round_trip_p50_full_over_celery"), "<=", 0.25),
    }
    return r, goals


# ------------------------------------------------------------ run

def cmd_run(a):
    a.tmp = tempfile.mkdtemp(prefix="crund-durable.", dir=a.tmpdir)
    os.chmod(a.tmp, 0o755)
    a.peer_parts = set(a.peer_parts.split(","))
    t0 = time.monotonic()
    doc = {"meta": {
        "stamp": time.strftime("%Y%m%d-%H%M%S", time.gmtime()),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kernel": platform.release(), "ncpu": os.cpu_count(),
        "loadavg_start": loadavg(), "tmp_dir": a.tmp,
        "crund": a.crund, "crund_commit": a.commit, "sqlite_python": sqlite3.sqlite_version,
        "config": {"seconds": a.seconds, "rt_seconds": a.rt_seconds,
                   "retain_jobs": a.retain_jobs, "w1_jobs": a.w1_jobs, "w2_jobs": a.w2_jobs,
                   "w1_jobs_pg": a.w1_jobs_pg, "w2_jobs_pg": a.w2_jobs_pg,
                   "w3_jobs": a.w3_jobs, "w3_jobs_pgboss": a.w3_jobs_pgboss,
                   "wrk": "taskset -c 1 wrk -t1 -c64 --latency --timeout 10s -s post_noop.lua"},
    }}
    try:
        fl = os.path.join(a.peers, "durable", "floors.py")
        if os.path.isfile(fl):
            log("floor: fdatasync")
            rc, out, err = run([PY, fl, "fsync", "--dir", a.tmp, "--n", "200"], 120,
                               cwd=os.path.dirname(fl))
            j = last_json(out)
            doc["floor_fsync"] = j["metrics"] if j else {"error": err[-300:]}
        cnt = Counters()
        doc["meta"]["perf"] = "ok" if cnt.ok else cnt.why
        doc["crund"] = {}
        try:
            for mode, extra in MODES:
                if a.only_peers:
                    break
                log("crund %s" % mode)
                doc["crund"][mode] = crund_mode(a, cnt, mode, extra)
        finally:
            cnt.remove_probe()
        if not a.no_peers:
            doc["peers"] = peers(a)
        doc["ratios"], doc["goals"] = ratios_goals(doc)
    finally:
        stop_all()
        doc["meta"]["loadavg_end"] = loadavg()
        doc["meta"]["wall_s"] = round(time.monotonic() - t0, 1)
        if a.keep_tmp:
            doc["meta"]["tmp_kept"] = True
        else:
            shutil.rmtree(a.tmp, ignore_errors=True)
    text = json.dumps(doc, indent=1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
        log("wrote %s (%.0f s)" % (a.out, doc["meta"]["wall_s"]))
    print(text)


# ------------------------------------------------------------ summarize

ROWS = [
    ("crund D1 req/s", lambda m: [g(m, "crund", x, "D1", "req_per_s") for x in
                                  ("memory", "sqlite-normal", "sqlite-full")], "%.0f"),
    ("crund D1 server CPU us/req", lambda m: [g(m, "crund", x, "D1", "server_cpu_us_per_req")
                                             for x in ("memory", "sqlite-normal",
                                                       "sqlite-full")], "%.1f"),
    ("crund D1 p50 ms", lambda m: [g(m, "crund", x, "D1", "p50_ms") for x in
                                   ("memory", "sqlite-normal", "sqlite-full")], "%.2f"),
    ("crund D1 p99 ms", lambda m: [g(m, "crund", x, "D1", "p99_ms") for x in
                                   ("memory", "sqlite-normal", "sqlite-full")], "%.2f"),
    ("crund D1 jobs/commit", lambda m: [None] + [g(m, "crund", x, "D1", "jobs_per_commit") for x in
                                                 ("sqlite-normal", "sqlite-full")], "%.1f"),
    ("crund D1 commits/s", lambda m: [None] + [g(m, "crund", x, "D1", "commits_per_s") for x in
                                               ("sqlite-normal", "sqlite-full")], "%.0f"),
    ("crund D1 fsyncs/s", lambda m: [g(m, "crund", x, "D1", "fsyncs_per_s") for x in
                                     ("memory", "sqlite-normal", "sqlite-full")], "%.0f"),
    ("crund D2 req/s", lambda m: [g(m, "crund", x, "D2", "req_per_s") for x in
                                  ("memory", "sqlite-normal", "sqlite-full")], "%.0f"),
    ("crund D2 server CPU us/req", lambda m: [g(m, "crund", x, "D2", "server_cpu_us_per_req")
                                             for x in ("memory", "sqlite-normal",
                                                       "sqlite-full")], "%.1f"),
    ("crund D2 p50 ms", lambda m: [g(m, "crund", x, "D2", "p50_ms") for x in
                                   ("memory", "sqlite-normal", "sqlite-full")], "%.2f"),
    ("crund D2 p99 ms", lambda m: [g(m, "crund", x, "D2", "p99_ms") for x in
                                   ("memory", "sqlite-normal", "sqlite-full")], "%.2f"),
    ("crund D2 jobs/commit", lambda m: [None] + [g(m, "crund", x, "D2", "jobs_per_commit") for x in
                                                 ("sqlite-normal", "sqlite-full")], "%.1f"),
    ("crund D2 fsyncs/s", lambda m: [g(m, "crund", x, "D2", "fsyncs_per_s") for x in
                                     ("memory", "sqlite-normal", "sqlite-full")], "%.0f"),
    ("crund RT (1 conn, ?wait) p50 ms", lambda m: [g(m, "crund", x, "RT", "p50_ms") for x in
                                                   ("memory", "sqlite-normal", "sqlite-full")],
     "%.3f"),
    ("crund RT p99 ms", lambda m: [g(m, "crund", x, "RT", "p99_ms") for x in
                                   ("memory", "sqlite-normal", "sqlite-full")], "%.3f"),
    ("crund RSS MiB after warm-up / end", lambda m: [
        "%s / %s" % tuple("%.0f" % (v / 1024) if v else "?" for v in (
            g(m, "crund", x, "sustained", "rss_kb_after_warmup"),
            g(m, "crund", x, "sustained", "rss_kb_end")))
        for x in ("memory", "sqlite-normal", "sqlite-full")], None),
    ("crund store MiB (db+wal) after warm-up / mid / end / after stop", lambda m: [None] + [
        "%s / %s / %s / %s" % tuple("%.1f" % (v / 1048576) if v is not None else "?" for v in (
            g(m, "crund", x, "sustained", "store_bytes_after_warmup"),
            g(m, "crund", x, "sustained", "store_bytes_mid"),
            g(m, "crund", x, "sustained", "store_bytes_end"),
            g(m, "crund", x, "sustained", "store_bytes_after_stop")))
        for x in ("sqlite-normal", "sqlite-full")], None),
]
PEER_ROWS = [
    ("W1 durable enqueue jobs/s", ("W1", "jobs_per_s"), "%.0f"),
    ("W2 end to end jobs/s", ("W2", "jobs_per_s"), "%.0f"),
    ("W3 round trip p50 ms", ("W3", "p50_ms"), "%.2f"),
    ("W3 round trip p99 ms", ("W3", "p99_ms"), "%.2f"),
]
PEERS = ("celery", "rq", "graphile-worker", "pg-boss")


def cell(vals, fmt):
    vals = [v for v in vals if isinstance(v, (int, float))]
    if not vals:
        return ""
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt % med
    return "%s [%s..%s]" % (fmt % med, fmt % min(vals), fmt % max(vals))


def cmd_summarize(a):
    docs = []
    for f in a.files:
        with open(f) as fh:
            docs.append(json.load(fh))
    print("| figure | memory | sqlite normal | sqlite full |")
    print("|---|---|---|---|")
    for name, fn, fmt in ROWS:
        cols = list(zip(*[fn(d) for d in docs]))
        if fmt is None:
            print("| %s | %s |" % (name, " | ".join(
                "; ".join(str(v) for v in c if v is not None) for c in cols)))
        else:
            print("| %s | %s |" % (name, " | ".join(cell(c, fmt) for c in cols)))
    print()
    print("| figure | %s |" % " | ".join(PEERS))
    print("|---|%s" % ("---|" * len(PEERS)))
    for name, path, fmt in PEER_ROWS:
        cells = []
        for p in PEERS:
            sk = [g(d, "peers", p, "skipped") for d in docs]
            if all(sk):
                cells.append("skipped")
            else:
                cells.append(cell([g(d, "peers", p, *path) for d in docs], fmt))
        print("| %s | %s |" % (name, " | ".join(cells)))
    print()
    keys = ["D1_normal_over_memory", "D1_full_over_memory", "D2_p50_ms_full",
            "enqueue_full_over_best_peer", "end_to_end_full_over_best_peer",
            "round_trip_p50_full_over_celery"]
    print("| run | load 1m start/end | fdatasync p50 us (overwrite/append) | %s |" %
          " | ".join(keys))
    print("|---|---|---|%s" % ("---|" * len(keys)))
    for d in docs:
        r = d.get("ratios", {})
        fl = d.get("floor_fsync", {})
        ov = [v for k, v in fl.items() if "overwrite" in k and k.endswith("p50_us")]
        ap = [v for k, v in fl.items() if "append" in k and k.endswith("p50_us")]
        print("| %s | %.1f / %.1f | %s / %s | %s |" % (
            d["meta"]["stamp"], d["meta"]["loadavg_start"][0], d["meta"]["loadavg_end"][0],
            "%.0f" % ov[0] if ov else "?", "%.0f" % ap[0] if ap else "?",
            " | ".join("%.3g" % r[k] if isinstance(r.get(k), (int, float)) else "?"
                       for k in keys)))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--crund", required=True)
    r.add_argument("--plugin-dir", required=True)
    r.add_argument("--peers", required=True, help="the bench-peers folder")
    r.add_argument("--peers-work", default="/tmp/crund-durable-peers",
                   help="writable copy of bench-peers/durable (node_modules)")
    r.add_argument("--tmpdir", default=os.environ.get("TMPDIR", "/tmp"))
    r.add_argument("--out", default=None)
    r.add_argument("--commit", default="")
    r.add_argument("--port", type=int, default=27733)
    r.add_argument("--seconds", type=int, default=7, help="D1 and D2 wrk seconds")
    r.add_argument("--rt-seconds", type=int, default=3)
    r.add_argument("--retain-jobs", type=int, default=10000)
    r.add_argument("--w1-jobs", type=int, default=10000)
    r.add_argument("--w2-jobs", type=int, default=5000)
    r.add_argument("--w1-jobs-pg", type=int, default=4000,
                   help="W1 jobs for graphile-worker and pg-boss (slower; time budget)")
    r.add_argument("--w2-jobs-pg", type=int, default=3000)
    r.add_argument("--w3-jobs", type=int, default=300)
    r.add_argument("--w3-jobs-pgboss", type=int, default=20)
    r.add_argument("--no-peers", action="store_true")
    r.add_argument("--only-peers", action="store_true")
    r.add_argument("--peer-parts", default="redis,pg")
    r.add_argument("--keep-tmp", action="store_true")
    s = sub.add_parser("summarize")
    s.add_argument("files", nargs="+")
    a = ap.parse_args()
    if a.cmd == "run":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        cmd_run(a)
    else:
        cmd_summarize(a)


if __name__ == "__main__":
    main()
