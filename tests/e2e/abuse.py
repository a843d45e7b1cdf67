#!/usr/bin/env python3
"""abuse.py -- raw-socket clients that misbehave against a running crund.

Used by tests/e2e/abuse.sh (TAP assertions in bash) and by the soak script
bench/soak-http.sh.  Each sub-command does one scenario and prints its
findings as `key=value` lines; it asserts nothing itself.  Everything is on
loopback and bounded: every socket operation has a timeout (--limit).

  flood     N partial requests from each of --srcs, then health/submission
            checks from other clients, then close them all and see the
            slots freed
  slow      one client sending its request one byte every --interval s
  noread    clients that never read their answer (a large result, an event
            stream) while another client goes on working
  bigbody   a chunked request body that goes on past --max-body, sent at
            --rate bytes/s while the answer is watched for
  gone      long-polls and event streams opened and closed in turn, each
            closed another way (a FIN after reading all, a close with
            bytes unread, a reset), then how soon none is held
"""
import argparse
import json
import resource
import select
import socket
import struct
import sys
import time

PARTIAL = (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: 100\r\n\r\n{")


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def connect(a, src=None, timeout=5.0):
    if a.unix and src == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(a.unix)
        return s
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if src:
        s.bind((src, 0))
    s.connect(("127.0.0.1", a.port))
    return s


def read_answer(s):
    """One HTTP/1.1 answer with a Content-Length: (status, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise ConnectionError("closed before the head (%r)" % buf[:80])
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    n = 0
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        if k.strip().lower() == "content-length":
            n = int(v)
    while len(body) < n:
        d = s.recv(65536)
        if not d:
            break
        body += d
    return status, body[:n]


def request(a, method, path, body=None, src=None, timeout=5.0):
    """status (int) or a word: 'timeout', 'reset', 'closed'; and the body."""
    try:
        s = connect(a, src, timeout)
    except socket.timeout:
        return "timeout", b""
    except OSError as e:
        return "connect-error:%s" % e.errno, b""
    try:
        data = body.encode() if body else b""
        s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                   "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                   % (method, path, len(data))).encode() + data)
        return read_answer(s)
    except socket.timeout:
        return "timeout", b""
    except ConnectionError:
        return "reset", b""
    finally:
        s.close()


def metric(a, name, src=None):
    st, body = request(a, "GET", "/metrics", src=src, timeout=a.limit)
    if st != 200:
        return None
    for ln in body.decode().splitlines():
        if ln.startswith(name + " "):
            return float(ln.split()[1])
    return None


def open_partial(a, srcs, each):
    """Open `each` partial requests from every source address."""
    socks = []
    for src in srcs:
        for _ in range(each):
            try:
                s = connect(a, src, a.limit)
            except OSError:
                continue
            try:
                s.sendall(PARTIAL)
            except OSError:
                pass  # refused with a 503 and closed under our send
            socks.append(s)
    return socks


def classify(socks, settle):
    """Wait for the refusals to arrive, then count held and refused."""
    refused = other = 0
    reasons = {}
    deadline = time.monotonic() + settle
    pending = {s.fileno(): s for s in socks}
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLIN)
    # A refusal is written at the accept: wait for the answers that come,
    # until none came for a while (or the bound passed).
    quiet_since = time.monotonic()
    while pending and time.monotonic() < deadline and time.monotonic() - quiet_since < 1.0:
        for fd, _ in poller.poll(200):
            s = pending.pop(fd)
            poller.unregister(fd)
            quiet_since = time.monotonic()
            try:
                st, body = read_answer(s)
            except (OSError, ConnectionError, ValueError):
                other += 1
                continue
            if st == 503:
                refused += 1
                try:
                    code = json.loads(body)["error"]["code"]
                except (ValueError, KeyError):
                    code = "?"
                reasons[code] = reasons.get(code, 0) + 1
            else:
                other += 1
    held = len(pending)
    return held, refused, other, reasons


def cmd_flood(a):
    srcs = a.srcs.split(",")
    socks = open_partial(a, srcs, a.each)
    held, refused, other, reasons = classify(socks, a.limit)
    print("held=%d" % held)
    print("refused=%d" % refused)
    print("other=%d" % other)
    print("reasons=%s" % ",".join("%s:%d" % kv for kv in sorted(reasons.items())))
    t0 = time.monotonic()
    for who in a.probe.split(","):
        st, _ = request(a, "GET", "/v1/health", src=who, timeout=a.limit)
        print("health_%s=%s" % (who, st))
    if a.unix:
        st, body = request(a, "POST", "/v1/jobs?wait=%d" % int(a.limit),
                           '{"plugin":"demo","job":"noop"}', src="unix", timeout=a.limit)
        state = json.loads(body).get("state") if st == 201 else None
        print("submit_unix=%s:%s" % (st, state))
    st, body = request(a, "POST", "/v1/jobs?wait=%d" % int(a.limit),
                       '{"plugin":"demo","job":"noop"}', src=a.probe.split(",")[-1],
                       timeout=a.limit)
    print("submit_tcp=%s" % st)
    print("probe_seconds=%.3f" % (time.monotonic() - t0))
    msrc = "unix" if a.unix else a.probe.split(",")[-1]
    for reason in ("max_connections", "per_client"):
        v = metric(a, 'crund_http_refused_total{reason="%s"}' % reason, src=msrc)
        print("metric_refused_%s=%s" % (reason, int(v) if v is not None else "none"))
    # Close every partial request: the daemon must notice at once, not at
    # a timeout.  Then the first source gets in again.
    for s in socks:
        s.close()
    t0 = time.monotonic()
    freed = "no"
    while time.monotonic() - t0 < a.limit:
        conns = metric(a, "crund_http_connections", src=msrc)
        if conns is not None and conns <= 2:
            freed = "yes"
            break
        time.sleep(0.05)
    print("freed=%s" % freed)
    print("freed_seconds=%.3f" % (time.monotonic() - t0))
    st, _ = request(a, "GET", "/v1/health", src=srcs[0], timeout=a.limit)
    print("health_after=%s" % st)


def cmd_slow(a):
    """Send a request one byte at a time; report whether and when the
    daemon closed the connection, and how much of the request it took."""
    head = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 64 + b"\r\n\r\n"
    if a.phase == "body":
        body = b'{"plugin":"demo","job":"noop"}' + b" " * 70
        prefix = (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        dribble = body
    elif a.phase == "keepalive":
        # one whole request first, then the next one's head dribbles
        prefix = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n" + b"GET /v1/health HTTP/1.1\r\n"
        dribble = head[head.index(b"\r\n") + 2:]
    else:
        prefix, dribble = b"", head
    s = connect(a, None, a.limit)
    t0 = time.monotonic()
    sent = 0
    result = "open"
    try:
        if prefix:
            s.sendall(prefix)
            if a.phase == "keepalive":
                st, _ = read_answer(s)
                print("first_status=%d" % st)
        for i in range(len(dribble)):
            if time.monotonic() - t0 > a.limit:
                break
            s.sendall(dribble[i:i + 1])
            sent += 1
            p = select.poll()
            p.register(s.fileno(), select.POLLIN)
            if p.poll(int(a.interval * 1000)):
                d = s.recv(4096)
                result = "closed" if not d else "answered"
                break
    except (BrokenPipeError, ConnectionResetError):
        result = "closed"
    finally:
        s.close()
    print("result=%s" % result)
    print("sent=%d of %d" % (sent, len(dribble)))
    print("seconds=%.1f" % (time.monotonic() - t0))


def cmd_noread(a):
    """Clients that ask and never read: GETs of a large result, event
    streams.  Meanwhile another client checks health and submits."""
    socks = []
    for i in range(a.count):
        s = connect(a, "127.0.0.3", a.limit)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        path = "/v1/jobs/%s" % a.big if i % 2 == 0 else "/v1/jobs/%s/events" % a.stream
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
        socks.append(s)
    time.sleep(0.5)  # let the daemon write into the full socket buffers
    ok = 0
    worst = 0.0
    for _ in range(a.rounds):
        t0 = time.monotonic()
        st, _ = request(a, "GET", "/v1/health", src="127.0.0.1", timeout=a.limit)
        st2, body = request(a, "POST", "/v1/jobs?wait=%d" % int(a.limit),
                            '{"plugin":"demo","job":"noop"}', src="127.0.0.1",
                            timeout=a.limit)
        worst = max(worst, time.monotonic() - t0)
        if st == 200 and st2 == 201 and json.loads(body).get("state") == "succeeded":
            ok += 1
    print("rounds_ok=%d of %d" % (ok, a.rounds))
    print("worst_seconds=%.3f" % worst)
    for s in socks:
        s.close()


def read_head(s):
    """Read until the end of an answer's head; the rest stays unread."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(1)
        if not d:
            raise ConnectionError("closed before the head")
        buf += d
    return buf


def cmd_gone(a):
    """--count long-polls and event streams (a job's stream, /v1/events, a
    ?wait of the job), opened in turn: each is held by the daemon (its
    metrics say so), then closed by its client, in turn: a FIN after
    reading all that came, a close with bytes of the answer unread (the
    kernel sends a reset, not a FIN), a reset (SO_LINGER 0).  Each must be
    released within --settle s of its close (released_late counts those
    that were not), and none be held at the end.  The metrics come from
    another address than the clients'."""
    paths = [("stream", "/v1/jobs/%s/events" % a.stream), ("events", "/v1/events"),
             ("wait", "/v1/jobs/%s?wait=60" % a.stream)]
    ways = ["fin", "unread", "reset"]
    msrc = "127.0.0.1"
    base = metric(a, "crund_http_held_connections", src=msrc) or 0
    not_held = errors = 0
    late = []
    for i in range(a.count):
        what, path = paths[i % len(paths)]
        way = ways[(i // len(paths)) % len(ways)]
        # counted from here: one left by a previous close must not hide this one
        before = metric(a, "crund_http_held_connections", src=msrc) or 0
        try:
            s = connect(a, "127.0.0.6", a.limit)
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
            # held: the daemon counts it (the stream's first events are sent)
            t0 = time.monotonic()
            while (metric(a, "crund_http_held_connections", src=msrc) or 0) <= before:
                if time.monotonic() - t0 > a.limit:
                    not_held += 1
                    break
                time.sleep(0.01)
            if what != "wait":
                read_head(s)
            if way == "fin":
                s.settimeout(0.1)
                try:
                    while s.recv(65536):
                        pass
                except socket.timeout:
                    pass
            elif way == "unread":
                time.sleep(0.05)  # the stream's first event arrives, unread
            else:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        except (OSError, ConnectionError):
            errors += 1
        t0 = time.monotonic()
        while (metric(a, "crund_http_held_connections", src=msrc) or 0) > before:
            if time.monotonic() - t0 > a.settle:
                late.append("%s:%s" % (what, way))
                break
            time.sleep(0.01)
    t0 = time.monotonic()
    held = metric(a, "crund_http_held_connections", src=msrc)
    while held is not None and held > base and time.monotonic() - t0 < a.settle:
        time.sleep(0.05)
        held = metric(a, "crund_http_held_connections", src=msrc)
    print("not_held=%d" % not_held)
    print("errors=%d" % errors)
    print("released_late=%d" % len(late))
    print("late=%s" % ",".join(late))
    print("held_after=%s" % (int(held - base) if held is not None else "none"))


def cmd_bigbody(a):
    """POST /v1/jobs with a chunked body (no Content-Length, no Expect) sent
    at --rate bytes/s for up to --limit s, reading whatever comes back
    meanwhile: when an answer came (and after how many body bytes), and
    whether the daemon closed the connection (the rest not read)."""
    s = connect(a, "127.0.0.7", a.limit)
    s.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n")
    s.setblocking(False)
    piece = b"x" * 16384
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    t0 = time.monotonic()
    sent = 0
    sent_at_answer = None
    got = b""
    end = "open"  # what ended the connection: eof, reset (or open)
    while time.monotonic() - t0 < a.limit:
        r, _, _ = select.select([s], [], [], 0)
        if r:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                end = "reset"
                break
            except BlockingIOError:
                d = None
            if d == b"":
                end = "eof"
                break
            if d:
                if sent_at_answer is None:
                    sent_at_answer = sent
                got += d
        # keep to the rate: the body is still coming while we look
        if sent > a.rate * (time.monotonic() - t0):
            time.sleep(0.005)
            continue
        try:
            sent += s.send(chunk)
        except BlockingIOError:
            time.sleep(0.005)
        except (BrokenPipeError, ConnectionResetError):
            end = "reset"
            break
    s.close()
    status = code = "none"
    if got:
        head, _, body = got.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1].decode() if b" " in head else "?"
        try:
            code = json.loads(body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = "?"
    print("status=%s" % status)
    print("code=%s" % code)
    print("sent_at_answer=%s" % (sent_at_answer if sent_at_answer is not None else "none"))
    print("sent=%d" % sent)
    print("end=%s" % end)
    print("seconds=%.1f" % (time.monotonic() - t0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["flood", "slow", "noread", "gone", "bigbody"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--unix")
    ap.add_argument("--limit", type=float, default=10.0, help="bound for every wait, s")
    ap.add_argument("--srcs", default="127.0.0.1")
    ap.add_argument("--each", type=int, default=100)
    ap.add_argument("--probe", default="127.0.0.1,127.0.0.9")
    ap.add_argument("--phase", default="head", choices=["head", "body", "keepalive"])
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--big")
    ap.add_argument("--stream")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--settle", type=float, default=2.0, help="gone: bound for a release, s")
    ap.add_argument("--rate", type=float, default=4 << 20, help="bigbody: bytes/s")
    a = ap.parse_args()
    raise_nofile()
    {"flood": cmd_flood, "slow": cmd_slow, "noread": cmd_noread, "gone": cmd_gone,
     "bigbody": cmd_bigbody}[a.cmd](a)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
