#!/usr/bin/env python3
"""Counting and latency-injecting HTTP proxy in front of moto, for scripts/bench.sh.

    bench_proxy.py LISTEN_PORT UPSTREAM_PORT

A benchmark tool, not test code (the tests have their own fault proxy in
tests/it/support/fault_proxy.rs). Python standard library only.

Every AWS request is counted under "service:Operation":
  - service: the SigV4 credential scope in the Authorization header
    (Credential=AKID/date/region/SERVICE/aws4_request);
  - operation: the JSON protocol's X-Amz-Target (ECR: the part after the
    dot), else the query protocol's Action= form field (EC2, IAM, STS),
    else, for REST APIs (EKS), the method and the path with every second
    segment (the names) replaced by "*", such as "GET /clusters/*".
Each request waits the configured delay (default 0 ms) before it is
forwarded, so every call costs at least that much, as a far region would.

Control paths (never AWS paths: none starts with "/__"):
  GET  /__counts                 the counts as JSON {"service:Operation": n}
  POST /__reset?delay_ms=N       clears the counts and sets the delay
"""

import http.client
import http.server
import json
import re
import sys
import threading
import time
import urllib.parse
from collections import Counter

UPSTREAM = ("127.0.0.1", 5000)
LOCK = threading.Lock()
COUNTS = Counter()
DELAY = [0.0]
SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}


def operation(method, path, headers, body):
    """The service and operation a request names (see the module docs)."""
    scope = SCOPE.search(headers.get("Authorization", ""))
    service = scope.group(1) if scope else "unknown"
    target = headers.get("X-Amz-Target")
    if target:
        return f"{service}:{target.rsplit('.', 1)[-1]}"
    query = urllib.parse.urlsplit(path).query
    for source in (query, body.decode("utf-8", "replace")):
        action = urllib.parse.parse_qs(source).get("Action")
        if action:
            return f"{service}:{action[0]}"
    segments = urllib.parse.urlsplit(path).path.strip("/").split("/")
    shape = "/".join("*" if i % 2 else s for i, s in enumerate(segments))
    return f"{service}:{method} /{shape}"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK expects

    def log_message(self, *args):
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))

    def answer(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def control(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/__counts":
            with LOCK:
                body = json.dumps(dict(COUNTS), sort_keys=True).encode()
            return self.answer(200, body, [("Content-Type", "application/json")])
        if url.path == "/__reset":
            delay_ms = urllib.parse.parse_qs(url.query).get("delay_ms", ["0"])[0]
            with LOCK:
                COUNTS.clear()
                DELAY[0] = float(delay_ms) / 1000.0
            return self.answer(200, b"{}", [("Content-Type", "application/json")])
        return self.answer(404, b"unknown control path")

    def relay(self):
        if self.path.startswith("/__"):
            self.read_body()
            return self.control()
        body = self.read_body()
        with LOCK:
            COUNTS[operation(self.command, self.path, self.headers, body)] += 1
            delay = DELAY[0]
        if delay:
            time.sleep(delay)
        # One upstream connection per call: simple, and moto is local.
        upstream = http.client.HTTPConnection(*UPSTREAM, timeout=300)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            kept = [(k, v) for k, v in response.getheaders()
                    if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"]
            self.answer(response.status, data, kept)
        finally:
            upstream.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = relay


def main():
    listen, upstream = int(sys.argv[1]), int(sys.argv[2])
    globals()["UPSTREAM"] = ("127.0.0.1", upstream)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", listen), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
