#!/usr/bin/python3
"""exec jobs through crund beside asyncio's create_subprocess_exec, in one
invocation (bench/exec.sh runs it with the build tree's paths).

  exec.py --crund PATH --plugin-dir DIR [--lib-dir DIR] [--runs R] [--jobs N]
          [--concurrency C] [--argv PROGRAM [ARG...]]

For each of R rounds, in turn:
  crund    a fresh crund (memory store, --allow-command-plugins, exec-allow
           naming the program only); C client threads, each on one
           keep-alive connection, POST /v1/jobs?wait=30 an exec `run` job
           of argv until N jobs are done: jobs/s = N / wall time.  Every
           job must have succeeded (else the run stops with an error).  The loop's stall while spawning is
           the exec plugin's own measure (at fini it logs the longest and
           the mean time cr_subprocess_spawn held the loop).
  asyncio  bench/exec_asyncio.py with the same N, C and argv.
  floor    (with --floor) bench/spawn-floor: a bare C loop that spawns argv
           N times, C at once, and waits: what the machine can do at all,
           so no runner of the same program beats it here.
Prints one JSON document: each round's figures, then per side the median
and range of jobs/s, and the ratio of the medians (crund / asyncio; with
--floor also crund / floor and asyncio / floor).
"""
import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read_response(sock, buf):
    """One HTTP/1.1 response (Content-Length bodies): (status, body, rest)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(buf) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return status, buf[:n], buf[n:]


def drive(port, argv, jobs, concurrency):
    body = json.dumps({"plugin": "exec", "job": "run", "args": {"argv": argv}}).encode()
    req = (b"POST /v1/jobs?wait=30 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    lock = threading.Lock()
    left = [jobs]
    good = [0]
    bad = []

    def worker():
        try:
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = b""
            while True:
                with lock:
                    if left[0] == 0:
                        break
                    left[0] -= 1
                sock.sendall(req)
                status, resp, buf = read_response(sock, buf)
                if status not in (200, 201) or b'"state":"succeeded"' not in resp:
                    bad.append((status, resp[:300]))
                else:
                    with lock:
                        good[0] += 1
            sock.close()
        except OSError as e:
            bad.append(("client", repr(e)))

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if good[0] != jobs:
        raise RuntimeError("only %d of %d jobs succeeded; first failure: %r"
                           % (good[0], jobs, bad[:1]))
    return elapsed, bad


def run_crund(args, tmp):
    port = free_port()
    prog = args.argv[0]
    log = os.path.join(tmp, "crund-%d.log" % port)
    env = dict(os.environ)
    if args.lib_dir:
        env["LD_LIBRARY_PATH"] = args.lib_dir
    cmd = [args.crund, "--listen", "127.0.0.1:%d" % port, "--plugin-dir", args.plugin_dir,
           "--store", "memory:", "--allow-command-plugins", "--exec-allow", prog,
           "--max-running", str(max(args.concurrency, 64))]
    with open(log, "w") as lf:
        proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, env=env)
    lm = None
    try:
        for _ in range(200):
            if proc.poll() is not None:
                raise RuntimeError("crund exited at start: " + open(log).read()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        drive(port, args.argv, min(50, args.jobs), args.concurrency)  # warm-up
        seconds, bad = drive(port, args.argv, args.jobs, args.concurrency)
        # the loop's longest stall: the daemon's heartbeat (every 0.2 s)
        import urllib.request
        metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                         timeout=10).read().decode()
        lm = re.search(r"^crund_loop_lag_max_seconds ([\d.]+)$", metrics, re.M)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    text = open(log).read()
    m = re.findall(r"exec: (\d+) commands started; a spawn took ([\d.]+) ms at "
                   r"most, ([\d.]+) ms on average", text)
    out = {"impl": "crund", "jobs": args.jobs, "concurrency": args.concurrency,
           "seconds": round(seconds, 4), "jobs_per_s": round(args.jobs / seconds, 1),
           "failures": len(bad)}
    if m:
        out["spawn_max_ms"] = float(m[-1][1])
        out["spawn_mean_ms"] = float(m[-1][2])
    if lm:
        out["lag_max_ms"] = round(float(lm.group(1)) * 1e3, 3)
    if bad:
        out["first_failure"] = repr(bad[0])
    return out


def run_asyncio(args):
    cmd = [sys.executable, os.path.join(HERE, "exec_asyncio.py"), "--jobs", str(args.jobs),
           "--concurrency", str(args.concurrency), "--argv"] + args.argv
    return json.loads(subprocess.check_output(cmd))


def summary(rounds, key):
    v = [r[key] for r in rounds]
    return {"median": statistics.median(v), "min": min(v), "max": max(v)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--crund", required=True)
    p.add_argument("--plugin-dir", required=True)
    p.add_argument("--lib-dir", help="LD_LIBRARY_PATH for crund (libcrunner's .libs)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--argv", nargs="+", default=["/bin/true"])
    p.add_argument("--floor", help="bench/spawn-floor, run beside them each round")
    args = p.parse_args()
    crund, peer, floor = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            crund.append(run_crund(args, tmp))
            peer.append(run_asyncio(args))
            if args.floor:
                floor.append(json.loads(subprocess.check_output(
                    [args.floor, str(args.jobs), str(args.concurrency)] + args.argv)))
    res = {
        "bench": "exec", "argv": args.argv, "jobs": args.jobs,
        "concurrency": args.concurrency, "runs": args.runs, "cpus": os.cpu_count(),
        "loadavg_at_end": os.getloadavg(),
        "crund": {"rounds": crund, "jobs_per_s": summary(crund, "jobs_per_s")},
        "asyncio": {"rounds": peer, "jobs_per_s": summary(peer, "jobs_per_s")},
    }
    if all("spawn_max_ms" in r for r in crund):
        res["crund"]["spawn_max_ms"] = summary(crund, "spawn_max_ms")
    if all("lag_max_ms" in r for r in crund):
        res["crund"]["lag_max_ms"] = summary(crund, "lag_max_ms")
    res["asyncio"]["spawn_max_ms"] = summary(peer, "spawn_max_ms")
    res["asyncio"]["lag_max_ms"] = summary(peer, "lag_max_ms")
    res["ratio_of_medians"] = round(res["crund"]["jobs_per_s"]["median"] /
                                    res["asyncio"]["jobs_per_s"]["median"], 2)
    if floor:
        res["floor"] = {"rounds": floor, "jobs_per_s": summary(floor, "jobs_per_s")}
        f = res["floor"]["jobs_per_s"]["median"]
        res["crund_over_floor"] = round(res["crund"]["jobs_per_s"]["median"] / f, 2)
        res["asyncio_over_floor"] = round(res["asyncio"]["jobs_per_s"]["median"] / f, 2)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
