#!/usr/bin/python3
"""The asyncio peer of bench/exec.sh: N runs of a command with
asyncio.create_subprocess_exec, C at once, stdout and stderr piped and read
to the end (communicate), stdin from /dev/null -- what an exec job does.

  exec_asyncio.py [--jobs N] [--concurrency C] [--argv PROGRAM [ARG...]]

Prints one JSON line: jobs, concurrency, seconds, jobs_per_s, failures, and
the loop's stalls: spawn_max_ms / spawn_mean_ms (how long each
subprocess.Popen() held the loop: asyncio runs it, fork+exec included, on
the loop's thread; timed around Popen.__init__) and lag_max_ms (the worst
lateness of a 1 ms heartbeat task, whatever the cause).
"""
import argparse
import asyncio
import json
import subprocess
import sys
import time


spawn = []


class TimedPopen(subprocess.Popen):
    """Popen timing its own constructor (the part that blocks the loop)."""

    def __init__(self, *a, **kw):
        t = time.perf_counter()
        super().__init__(*a, **kw)
        spawn.append(time.perf_counter() - t)


subprocess.Popen = TimedPopen


async def main(args):
    sem = asyncio.Semaphore(args.concurrency)
    failures = 0
    lag_max = 0.0
    done = False

    async def heartbeat():
        nonlocal lag_max
        while not done:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            lag_max = max(lag_max, time.perf_counter() - t - 0.001)

    async def one():
        nonlocal failures
        async with sem:
            proc = await asyncio.create_subprocess_exec(
                *args.argv, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            await proc.communicate()
            if proc.returncode != 0:
                failures += 1

    hb = asyncio.ensure_future(heartbeat())
    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(args.jobs)))
    elapsed = time.perf_counter() - t0
    done = True
    await hb
    print(json.dumps({
        "impl": "asyncio", "python": sys.version.split()[0],
        "jobs": args.jobs, "concurrency": args.concurrency,
        "seconds": round(elapsed, 4), "jobs_per_s": round(args.jobs / elapsed, 1),
        "failures": failures,
        "spawn_max_ms": round(max(spawn) * 1e3, 3),
        "spawn_mean_ms": round(sum(spawn) / len(spawn) * 1e3, 3),
        "lag_max_ms": round(lag_max * 1e3, 3),
    }))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--argv", nargs="+", default=["/bin/true"])
    asyncio.run(main(p.parse_args()))
