#!/usr/bin/python3
"""crund on PostgreSQL with 1, 2 and 3 nodes, beside graphile-worker and
pg-boss on the same server, in one invocation; prints one JSON document.

  pg.py --crund PATH --plugin-dir DIR --peers DIR [--seconds S] [--jobs N]

One PostgreSQL 15 cluster (bench/durable.py's Pg: initdb defaults,
synchronous_commit=on, fsync=on: what the peers were measured with), a new
database per measurement.

crund, for 1, 2 and 3 nodes (`--store postgres://...`, --lease 30,
--max-running 1024, --retain-jobs 10000000: the elected node prunes nothing meanwhile), all on this machine:
  submit   wrk (bench-peers/post_noop.lua) POST noop against every node at
           once, -c32 per node, for S seconds: acknowledged jobs (201) per
           second.  Every 201 means the job's row is committed.
  e2e      from the start of that load until every job acknowledged is
           recorded `succeeded` in the database (polled every 50 ms):
           jobs / time.  The peers' W2 is the same definition (a client
           submits, workers run them, until all are recorded complete).
  db CPU   utime+stime of the postmaster and every child of it (backends,
           walwriter, ...) over the e2e window, per job (us).  Nodes' CPU
           the same way, summed over the nodes.

Peers (bench-peers/durable/pgq.js, their README defines the workloads):
W2 end to end with 2 worker processes (graphile-worker concurrency 8,
pg-boss batch 1000 / poll 0.5 s) and W1 durable enqueue (32 in flight), at
the counts of --jobs.  Their server CPU is the same postmaster tree.

Every process started here is stopped here by its pid.  Loopback only.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import durable as d  # noqa: E402  (start/stop/run, Pg, the peers' helpers)


def log(msg):
    print("[pg %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def tree_cpu_s(root):
    """CPU seconds of root and its children (one level: the postmaster's)."""
    total = 0.0
    try:
        total += d.proc_cpu_s(root)
    except OSError:
        return total
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                rest = f.read().rsplit(")", 1)[1].split()
            if int(rest[1]) == root:
                total += (int(rest[11]) + int(rest[12])) / d.CLK_TCK
        except (OSError, IndexError, ValueError):
            pass
    return total


def psql(pg, db, sql):
    rc, out, err = d.run(["psql", "-X", "-qtA", "-h", "127.0.0.1", "-p", str(pg.port), "-U",
                          "postgres", "-d", db, "-c", sql], 60)
    return out.strip() if rc == 0 else None


def crund_nodes(a, pg, n):
    db = "c_nodes%d" % n
    url = pg.newdb(db)
    nodes = []
    for i in range(n):
        port = d.free_port(27700 + 10 * i)
        p = d.start([a.crund, "--listen", "127.0.0.1:%d" % port, "--plugin-dir", a.plugin_dir,
                     "--store", url, "--node-id", "bench%d" % (i + 1), "--max-running", "1024",
                     "--retain-jobs", "10000000", "--log-level", "warning"],
                    os.path.join(a.tmp, "crund-%d-%d.log" % (n, i)))
        if not d.wait_port(port, p, 30):
            for q in nodes:
                d.stop(q[0])
            d.stop(p)
            return {"error": "crund did not start (%s)" % p.logpath}
        nodes.append((p, port))
    time.sleep(1.0)  # the first claims and heartbeats
    wrk = []
    srv0 = tree_cpu_s(pg.proc.pid)
    cpu0 = sum(d.proc_cpu_s(p.pid) for p, _ in nodes)
    t0 = time.monotonic()
    for p, port in nodes:
        wrk.append(subprocess.Popen(
            ["wrk", "-t1", "-c32", "-d%ds" % a.seconds, "-s", a.lua,
             "http://127.0.0.1:%d/v1/jobs" % port], stdout=subprocess.PIPE, text=True))
    outs = [w.communicate()[0] for w in wrk]
    t_sub = time.monotonic() - t0
    acked = 0
    errors = 0
    for o in outs:
        m = re.search(r"WRKJSON (\{.*\})", o)
        if m:
            j = json.loads(m.group(1))
            acked += j["requests"] - j["errors"]["status"]
            errors += sum(j["errors"].values())
    total = int(psql(pg, db, "SELECT count(*) FROM crund_jobs") or 0)
    t_end = time.monotonic() + 120
    done = 0
    while time.monotonic() < t_end:
        done = int(psql(pg, db, "SELECT count(*) FROM crund_jobs WHERE state >= 2") or 0)
        if done >= total:
            break
        time.sleep(0.05)
    t_e2e = time.monotonic() - t0
    srv = tree_cpu_s(pg.proc.pid) - srv0
    cpu = sum(d.proc_cpu_s(p.pid) for p, _ in nodes) - cpu0
    succeeded = int(psql(pg, db, "SELECT count(*) FROM crund_jobs WHERE state = 2") or 0)
    for p, _ in nodes:
        d.stop(p)
    return {
        "nodes": n,
        "jobs": total,
        "acknowledged": acked,
        "wrk_errors": errors,
        "succeeded": succeeded,
        "submit_jobs_per_s": round(acked / t_sub, 1),
        "e2e_jobs_per_s": round(done / t_e2e, 1),
        "e2e_seconds": round(t_e2e, 3),
        "db_cpu_us_per_job": round(srv * 1e6 / max(done, 1), 1),
        "nodes_cpu_us_per_job": round(cpu * 1e6 / max(done, 1), 1),
        "loadavg_1m": d.loadavg()[0],
    }


def peer(a, work, pg, name, tag):
    env = dict(os.environ, GW_CONCURRENCY="8", BOSS_BATCH="1000", BOSS_POLL="0.5")
    q = ["--peer", tag, "--server-pid", str(pg.proc.pid)]
    res = {}
    url = pg.newdb("p_%s_w1" % tag)
    d.run(["node", "pgq.js", "setup", "--peer", tag, "--db", url], 120, cwd=work, env=env)
    res["W1"] = d.peer_client(["node", "pgq.js", "w1"] + q + [
        "--db", url, "--jobs", str(a.jobs), "--conc", "32", "--max-seconds", "120"],
        work, 150, env)
    url = pg.newdb("p_%s_w2" % tag)
    d.run(["node", "pgq.js", "setup", "--peer", tag, "--db", url], 120, cwd=work, env=env)
    ws = d.pg_workers(a, work, tag, url, tag + "-W2", env)
    res["W2"] = d.peer_client(["node", "pgq.js", "w2"] + q + [
        "--db", url, "--worker-pids", ",".join(str(w.pid) for w in ws), "--worker-procs", "2",
        "--jobs", str(a.jobs), "--conc", "32", "--test", "W2", "--max-seconds", "120"],
        work, 150, env)
    for w in ws:
        d.stop(w)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--crund", required=True)
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--peers", required=True, help="the bench-peers folder")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=5000, help="peers' W1/W2 count")
    ap.add_argument("--nodes", default="1,2,3")
    ap.add_argument("--no-peers", action="store_true")
    a = ap.parse_args()
    a.tmp = tempfile.mkdtemp(prefix="crund-pg-bench.")
    os.chmod(a.tmp, 0o755)
    a.lua = os.path.join(a.peers, "post_noop.lua")
    a.peers_work = os.path.join(tempfile.gettempdir(), "crund-durable-peers")
    work, why = d.prepare_peers(a)
    miss, pgbin = d.pg_missing(work or a.peers_work)
    if not pgbin:
        print(json.dumps({"skipped": "no PostgreSQL server"}))
        return 0
    if work and not os.path.isdir(os.path.join(work, "node_modules", "pg-boss")):
        log("npm ci in %s" % work)
        d.run(["npm", "ci", "--no-audit", "--no-fund"], 300, cwd=work)
        miss, _ = d.pg_missing(work)
    pg = d.Pg(a, pgbin)
    err = pg.start()
    doc = {"meta": {"machine": os.uname().nodename, "cpus": os.cpu_count(),
                    "seconds": a.seconds, "peer_jobs": a.jobs,
                    "loadavg_at_start": d.loadavg()[0],
                    "postgres": "initdb defaults: synchronous_commit=on, fsync=on"}}
    try:
        if err:
            doc["error"] = err
            print(json.dumps(doc, indent=1))
            return 1
        doc["crund"] = []
        for n in [int(x) for x in a.nodes.split(",")]:
            log("crund, %d node(s)" % n)
            doc["crund"].append(crund_nodes(a, pg, n))
        doc["peers"] = {}
        if a.no_peers or not work or miss:
            why = "not selected" if a.no_peers else (why or ", ".join(miss))
            doc["peers"] = {"graphile-worker": {"skipped": why}, "pg-boss": {"skipped": why}}
        else:
            for name, tag in (("graphile-worker", "gw"), ("pg-boss", "boss")):
                log("peer %s" % name)
                doc["peers"][name] = peer(a, work, pg, name, tag)
        best = None
        for name in ("graphile-worker", "pg-boss"):
            w2 = doc["peers"].get(name, {}).get("W2", {})
            rate = w2.get("jobs_per_s")
            if isinstance(rate, (int, float)) and (best is None or rate > best[1]):
                best = (name, rate, w2.get("server_cpu_us_per_job"))
        if best and doc["crund"]:
            c = max(doc["crund"], key=lambda r: r.get("e2e_jobs_per_s", 0))
            doc["ratios"] = {
                "better_peer": best[0],
                "e2e_vs_better_peer": round(c.get("e2e_jobs_per_s", 0) / best[1], 2),
                "db_cpu_per_job_vs_better_peer":
                    round(c.get("db_cpu_us_per_job", 0) / best[2], 3) if best[2] else None,
                "crund_nodes": c.get("nodes"),
            }
    finally:
        pg.stop()
        d.stop_all()
        shutil.rmtree(a.tmp, ignore_errors=True)
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
