#!/usr/bin/env python3
"""Runs deploy/gateway/nginx.conf in front of stub APIs and checks what the gateway
promises: the routing by method, the retry policy (reads retried once on another process,
writes never sent twice), request ids, forwarded addresses, the command API's docs under
/command/, the rate limits and the gateway's own problem answers.

The stubs stand in for the APIs because the retry policy needs processes that fail on
purpose; deploy/gateway/README.md says how the Rust integration test runs the same file in
front of `mercato serve`.

Usage: smoke.py NGINX_CONF (python3 standard library and an `nginx` binary on PATH). Exits
non-zero with the failed checks on stderr.
"""

import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

INITIALIZER = b'window.ui = SwaggerUIBundle({\n  "url": "/openapi.json",\n});\n'


class Stub:
    """One API process: records every request; a `bad` one answers 502 to all of them."""

    def __init__(self, role, bad=False):
        self.role = role
        self.bad = bad
        self.hits = []
        self.connections = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_):
                pass

            def setup(self):
                super().setup()
                stub.connections.append(self.connection)

            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = {
                    "role": stub.role,
                    "method": self.command,
                    "path": self.path,
                    "body_length": len(body),
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                }
                stub.hits.append(seen)
                status, ctype, payload, extra = 200, "application/json", None, {}
                if stub.bad:
                    status = 502
                elif self.path == "/docs":
                    status, extra = 303, {"Location": "/docs/"}
                elif self.path == "/docs/swagger-initializer.js":
                    ctype, payload = "text/javascript", INITIALIZER
                if payload is None:
                    payload = json.dumps(seen).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                # The APIs echo the id they were sent; the gateway must not repeat it.
                if "X-Request-Id" in self.headers:
                    self.send_header("X-Request-Id", self.headers["X-Request-Id"])
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_HEAD = do_POST = do_PATCH = do_DELETE = do_PUT = do_OPTIONS = answer

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *_: None  # the gateway closing a connection
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        """Stops like a killed process: the gateway's idle keepalive connections break too."""
        self.server.shutdown()
        self.server.server_close()
        for conn in self.connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    """nginx with `conf`, the given upstreams.conf text and a free port, as this user."""

    def __init__(self, conf, upstreams):
        self.dir = tempfile.mkdtemp(prefix="mercato-gateway-smoke.")
        confdir = os.path.join(self.dir, "conf")
        prefix = os.path.join(self.dir, "prefix")
        os.mkdir(confdir)
        os.mkdir(prefix)
        shutil.copy(conf, os.path.join(confdir, "nginx.conf"))
        with open(os.path.join(confdir, "upstreams.conf"), "w") as f:
            f.write(upstreams)
        self.port = free_port()
        with open(os.path.join(confdir, "listen.conf"), "w") as f:
            f.write(f"listen 127.0.0.1:{self.port};\n")
        self.access_log = os.path.join(self.dir, "access.log")
        self.error_log = os.path.join(self.dir, "error.log")
        with open(self.access_log, "wb") as out, open(self.error_log, "wb") as err:
            self.proc = subprocess.Popen(
                ["nginx", "-p", prefix + "/", "-e", "stderr",
                 "-c", os.path.join(confdir, "nginx.conf"), "-g", "daemon off;"],
                stdout=out, stderr=err)
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"nginx did not start: {open(self.error_log).read()}")
            time.sleep(0.05)

    def request(self, method, path, headers=None, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.headers, r.read()
        finally:
            conn.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


FAILURES = []


def check(ok, what):
    if not ok:
        FAILURES.append(what)
        print(f"FAIL {what}", file=sys.stderr)


def is_problem(status, headers, body, code):
    if headers.get("Content-Type") != "application/problem+json":
        return False
    try:
        p = json.loads(body)
    except ValueError:
        return False
    return p.get("status") == status and p.get("code") == code and \
        p.get("type") == f"urn:mercato:problem:{code}" and bool(p.get("title"))


def upstreams(command, query, trusted=""):
    servers = lambda stubs: "".join(f"    server 127.0.0.1:{s.port};\n" for s in stubs)
    return (f"upstream mercato_command {{\n{servers(command)}    keepalive 4;\n}}\n"
            f"upstream mercato_query {{\n{servers(query)}    keepalive 4;\n}}\n{trusted}")


def failing_process_checks(conf):
    """Each upstream has a process that answers 502 to everything before a working one."""
    command, command_bad = Stub("command"), Stub("command-bad", bad=True)
    query, query_bad = Stub("query"), Stub("query-bad", bad=True)
    gw = Gateway(conf, upstreams([command_bad, command], [query_bad, query]))
    try:
        # Reads go to the query API, and past a failing process to a working one.
        for i in range(6):
            status, _, body = gw.request("GET", f"/v1/products?i={i}", {"X-Request-Id": f"read-{i}"})
            check(status == 200 and json.loads(body)["role"] == "query", f"GET #{i} reaches the query API")
        check(len(query_bad.hits) >= 1, "a read met the failing query process (and was retried)")
        retried = {h["headers"]["x-request-id"] for h in query_bad.hits}
        check(retried <= {h["headers"]["x-request-id"] for h in query.hits},
              "every read the failing process got was retried on the working one")
        status, _, _ = gw.request("HEAD", "/v1/products")
        check(status == 200 and query.hits[-1]["method"] == "HEAD", "HEAD reaches the query API")

        # Writes go to the command API and reach it exactly once, even when they fail.
        sent = []
        for i, method in enumerate(["POST", "PATCH", "DELETE", "PUT", "OPTIONS"] * 3):
            rid = f"write-{i}"
            sent.append(rid)
            status, _, body = gw.request(method, f"/v1/things/{i}", {"X-Request-Id": rid,
                                         "Content-Type": "application/json"}, b'{"a":1}')
            role = json.loads(body).get("role") if body else None
            check(role in ("command", "command-bad"), f"{method} reaches the command API")
        seen = [h["headers"]["x-request-id"] for h in command.hits + command_bad.hits]
        check(sorted(seen) == sorted(sent), "every write reached one command process once")
        # nginx itself never resends a POST or PATCH, but would resend a DELETE.
        for i in range(20):
            rid = f"delete-{i}"
            status, _, _ = gw.request("DELETE", f"/v1/things/{i}", {"X-Request-Id": rid})
            if any(h["headers"]["x-request-id"] == rid for h in command_bad.hits):
                check(status == 502 and not any(h["headers"]["x-request-id"] == rid
                                                 for h in command.hits),
                      "a DELETE that failed is not sent to another command process")
                break
        else:
            check(False, "no DELETE met the failing command process in 20 tries")
        check(all(h["body_length"] == 7 for h in command.hits + command_bad.hits
                  if h["headers"]["x-request-id"].startswith("write-")),
              "the body of a write reaches the API")
    finally:
        gw.stop()
        for stub in (command, command_bad, query, query_bad):
            stub.stop()


def main_checks(conf):
    command, query = Stub("command"), Stub("query")
    gw = Gateway(conf, upstreams([command], [query]))
    try:
        # Request ids: a caller's plain id is kept, anything else replaced; one header.
        status, headers, _ = gw.request("GET", "/v1/x", {"X-Request-Id": "abc-123"})
        check(headers.get_all("X-Request-Id") == ["abc-123"], "a caller's request id comes back once")
        check(query.hits[-1]["headers"].get("x-request-id") == "abc-123", "and reaches the API")
        status, headers, _ = gw.request("GET", "/v1/x", {"X-Request-Id": "two words"})
        rid = headers.get("X-Request-Id", "")
        check(re.fullmatch(r"[0-9a-f]{32}", rid) and query.hits[-1]["headers"].get("x-request-id") == rid,
              "an unusable request id is replaced, up and down")
        status, headers, _ = gw.request("GET", "/v1/x")
        check(query.hits[-1]["headers"].get("x-request-id") == headers.get("X-Request-Id"),
              "a request without an id gets one, up and down")
        check(any('"request_id":"abc-123"' in line for line in open(gw.access_log)),
              "the access log (JSON on stdout) has the request id")

        # Forwarded headers: the last X-Forwarded-For entry is the peer the gateway saw.
        gw.request("GET", "/v1/x", {"X-Forwarded-For": "203.0.113.9"})
        h = query.hits[-1]["headers"]
        check(h.get("x-forwarded-for") == "203.0.113.9, 127.0.0.1", "X-Forwarded-For is appended to")
        check(h.get("x-real-ip") == "127.0.0.1" and h.get("x-forwarded-proto") == "http",
              "X-Real-IP and X-Forwarded-Proto are set")

        # Both APIs' docs: the query API's as they are, the command API's under /command/.
        status, _, body = gw.request("GET", "/openapi.json")
        check(json.loads(body)["role"] == "query", "/openapi.json is the query API's")
        status, _, body = gw.request("GET", "/command/openapi.json")
        seen = json.loads(body)
        check(seen["role"] == "command" and seen["path"] == "/openapi.json",
              "/command/openapi.json is the command API's /openapi.json")
        status, headers, _ = gw.request("GET", "/command/docs")
        check(status == 303 and headers.get("Location") == "/command/docs/",
              "/command/docs redirects within /command/")
        status, _, body = gw.request("GET", "/command/docs/swagger-initializer.js",
                                     {"Accept-Encoding": "gzip"})
        check(b'"url": "/command/openapi.json"' in body,
              "the command API's Swagger UI loads /command/openapi.json")
        check("accept-encoding" not in command.hits[-1]["headers"],
              "the docs are fetched uncompressed (sub_filter needs it)")

        # The body limit of the APIs, with their 413 problem.
        status, headers, body = gw.request("POST", "/v1/things", {"Content-Type": "application/json"},
                                           b"x" * (64 * 1024 + 1))
        check(status == 413 and is_problem(413, headers, body, "payload_too_large"),
              "a body over 64 KiB is a 413 problem")

        # Sign-in: a burst of 5 after the first, then 429 problems with Retry-After.
        statuses = []
        for _ in range(10):
            status, headers, body = gw.request("POST", "/v1/auth/token", {"Content-Type": "application/json"}, b"{}")
            statuses.append(status)
        check(statuses.count(429) == 4, f"sign-in lets 6 of 10 through (got {statuses})")
        check(is_problem(429, headers, body, "too_many_requests") and headers.get("Retry-After") == "12"
              and json.loads(body).get("retry_after") == 12 and headers.get("X-Request-Id"),
              "a refused sign-in is a 429 problem with Retry-After: 12 and a request id")

        status, headers, body = gw.request("GET", "/healthz")
        check(status == 200 and json.loads(body) == {"status": "ok"}, "/healthz is the gateway's own")

        # No API at all: problems from the gateway, for reads and writes.
        command.stop()
        query.stop()
        for method in ("GET", "POST"):
            status, headers, body = gw.request(method, "/v1/products", {"X-Request-Id": "down"})
            check(status == 502 and is_problem(502, headers, body, "bad_gateway")
                  and headers.get_all("X-Request-Id") == ["down"],
                  f"{method} with the APIs down is a 502 problem with the request id")
    finally:
        gw.stop()


def trusted_proxy_checks(conf):
    """With `set_real_ip_from` for the proxy in front, limits and X-Forwarded-For follow the
    client that proxy names, not the proxy."""
    command, query = Stub("command"), Stub("query")
    gw = Gateway(conf, upstreams([command], [query], "set_real_ip_from 127.0.0.1;\n"))
    try:
        gw.request("GET", "/v1/x", {"X-Forwarded-For": "198.51.100.7, 203.0.113.9, 127.0.0.1"})
        h = query.hits[-1]["headers"]
        check(h.get("x-real-ip") == "203.0.113.9", "the client is the rightmost untrusted address")
        check(h.get("x-forwarded-for", "").endswith(", 203.0.113.9"),
              "the APIs' last X-Forwarded-For entry is the client")
        for client in ("203.0.113.1", "203.0.113.2"):
            statuses = [gw.request("POST", "/v1/auth/token", {"X-Forwarded-For": client})[0]
                        for _ in range(7)]
            check(statuses.count(429) == 1, f"each client has its own sign-in budget ({client}: {statuses})")
    finally:
        gw.stop()
        command.stop()
        query.stop()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    failing_process_checks(sys.argv[1])
    main_checks(sys.argv[1])
    trusted_proxy_checks(sys.argv[1])
    if FAILURES:
        raise SystemExit(f"gateway smoke test: {len(FAILURES)} check(s) failed")
    print("gateway smoke test: all checks passed")
