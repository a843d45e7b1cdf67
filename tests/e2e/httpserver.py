#!/usr/bin/env python3
"""tests/e2e/httpserver.py — the HTTP server the http plugin's tests call.

Binds 127.0.0.1 on a free port (port 0), prints "PORT <n>" on stdout and
serves until killed (threaded: a slow answer does not hold the others).
Also prints "BLACKHOLE <n>": a port that listens but never accepts, its
queue full, so a connection to it is never made (a connect timeout).
Python's standard library only.

Routes (GET, POST, PUT, ... alike):
  /status/NNN            status NNN, text body "status NNN"
  /json                  application/json {"hello": "world", "n": 1}
  /deep?n=LEVELS         application/json: n nested arrays ([[[...]]])
  /text                  text/plain "plain text\\n"
  /binary                application/octet-stream, the bytes 0..255
  /slow?s=SECONDS        waits, then 200 "slow"
  /big?n=BYTES           n bytes of "x" (Content-Length)
  /chunked?n=BYTES       n bytes of "x", chunked (no Content-Length)
  /gzip?n=BYTES          n random bytes, gzip-encoded (so longer than n on the wire)
  /redirect?to=URL&code=302   a redirect to URL
  /echo                  JSON {method, path, headers (lower-case names), body}
  /retry-after?v=VALUE&code=503   that status with Retry-After: VALUE
  /hits?path=P           JSON {"hits": how many requests P had so far}
"""
import gzip
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HITS = {}
HITS_LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def answer(self, code, body, ctype="text/plain", headers=()):
        if isinstance(body, str):
            body = body.encode()
        if code in (204, 304) or code < 200:
            body = b""  # these have no body: bytes sent anyway would poison the connection
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def route(self):
        u = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with HITS_LOCK:
            HITS[u.path] = HITS.get(u.path, 0) + 1
        p = u.path
        if p.startswith("/status/"):
            code = int(p[8:])
            self.answer(code, "status %d" % code)
        elif p == "/json":
            self.answer(200, json.dumps({"hello": "world", "n": 1}),
                        "application/json; charset=utf-8")
        elif p == "/deep":
            n = int(q.get("n", "2000"))
            self.answer(200, "[" * n + "]" * n, "application/json")
        elif p == "/text":
            self.answer(200, "plain text\n", "text/plain; charset=utf-8")
        elif p == "/binary":
            self.answer(200, bytes(range(256)), "application/octet-stream")
        elif p == "/slow":
            time.sleep(float(q.get("s", "5")))
            self.answer(200, "slow")
        elif p == "/big":
            self.answer(200, b"x" * int(q.get("n", "1000")))
        elif p == "/gzip":
            raw = os.urandom(int(q.get("n", "1000")))
            self.answer(200, gzip.compress(raw), "application/octet-stream",
                        headers=[("Content-Encoding", "gzip")])
        elif p == "/chunked":
            left = int(q.get("n", "1000"))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                while left > 0:
                    c = min(left, 16384)
                    self.wfile.write(b"%x\r\n%s\r\n" % (c, b"x" * c))
                    left -= c
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass  # the client hung up (the size limit): expected
        elif p == "/redirect":
            self.answer(int(q.get("code", "302")), "moved", headers=[("Location", q["to"])])
        elif p == "/echo":
            self.answer(200, json.dumps({
                "method": self.command, "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace")}), "application/json")
        elif p == "/retry-after":
            code = int(q.get("code", "503"))
            self.answer(code, "try later", headers=[("Retry-After", q.get("v", "1"))])
        elif p == "/hits":
            with HITS_LOCK:
                h = HITS.get(q.get("path", ""), 0)
            self.answer(200, json.dumps({"hits": h}), "application/json")
        else:
            self.answer(404, "no route %s" % p)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = route


def blackhole():
    """A listener whose accept queue is full: new SYNs are dropped."""
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(0)
    port = lsn.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.settimeout(0.3)
        try:
            c.connect(("127.0.0.1", port))
        except OSError:
            pass
        fillers.append(c)
    # is it one? a kernel that completes the handshake anyway would make
    # it a slow server instead: then say 0 (the test skips)
    probe = socket.socket()
    probe.settimeout(0.5)
    try:
        probe.connect(("127.0.0.1", port))
        port = 0
    except OSError:
        pass
    fillers.append(probe)
    return lsn, fillers, port


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    held = blackhole()
    print("BLACKHOLE %d" % held[2], flush=True)
    print("PORT %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
