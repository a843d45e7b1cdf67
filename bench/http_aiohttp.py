#!/usr/bin/python3
"""bench/http_aiohttp.py — the peer of crund's http jobs in bench/http-jobs.sh:
aiohttp's client making the same requests at the same concurrency.

  http_aiohttp.py rate --url URL --concurrency C --duration S
      C workers share one ClientSession (connection pool of C keep-alive
      connections) and GET URL back to back for S seconds; each answer is
      read whole and parsed as JSON (what an http job does with a JSON
      answer).  Prints one JSON line: requests, errors, seconds, rps.

  http_aiohttp.py inflight --url URL --n N
      N requests to a server that never answers, all in flight at once;
      prints the RSS growth per in-flight request (VmRSS read from /proc
      after the N tasks have started and sent, minus before).

Runs under /usr/bin/python3 (Debian's python3-aiohttp), asyncio's default loop.
"""
import argparse
import asyncio
import json
import sys
import time

import aiohttp


def vmrss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def rate(url, concurrency, duration):
    conn = aiohttp.TCPConnector(limit=concurrency)
    done = errors = 0
    async with aiohttp.ClientSession(connector=conn) as s:
        # one warm-up request per worker's connection, outside the timing
        async def warm():
            async with s.get(url) as r:
                await r.read()
        await asyncio.gather(*(warm() for _ in range(concurrency)))
        t0 = time.perf_counter()
        end = t0 + duration

        async def worker():
            nonlocal done, errors
            while time.perf_counter() < end:
                try:
                    async with s.get(url) as r:
                        await r.json(content_type=None)
                        if r.status == 200:
                            done += 1
                        else:
                            errors += 1
                except Exception:
                    errors += 1
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        secs = time.perf_counter() - t0
    return {"client": "aiohttp", "aiohttp": aiohttp.__version__, "concurrency": concurrency,
            "requests": done, "errors": errors, "seconds": round(secs, 3),
            "rps": round(done / secs, 1)}


async def inflight(url, n):
    conn = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as s:
        async def one():
            try:
                async with s.get(url) as r:
                    await r.read()
            except Exception:
                pass
        await asyncio.sleep(0.2)
        before = vmrss_kb()
        tasks = [asyncio.ensure_future(one()) for _ in range(n)]
        await asyncio.sleep(2.0)  # every task connected and sent its request
        held = vmrss_kb()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"client": "aiohttp", "n": n, "rss_before_kb": before, "rss_held_kb": held,
            "bytes_per_request": round((held - before) * 1024 / n)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["rate", "inflight"])
    p.add_argument("--url", required=True)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--n", type=int, default=1000)
    a = p.parse_args()
    if a.mode == "rate":
        out = asyncio.run(rate(a.url, a.concurrency, a.duration))
    else:
        out = asyncio.run(inflight(a.url, a.n))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
