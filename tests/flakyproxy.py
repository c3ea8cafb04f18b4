#!/usr/bin/python3
"""flakyproxy.py: an HTTP proxy in front of chatd that fails on purpose, for retry tests.

    flakyproxy.py --port PORT --upstream http://127.0.0.1:CHATD_PORT --log FILE
                  [--drop N] [--refuse N --status S [--retry-after V]] [--ready FILE]

Each request is forwarded to the upstream chatd and its answer passed back, except:
  --drop N     the first N POSTs are forwarded and answered by chatd, but the proxy then
               closes the client's connection without passing the answer on: the client
               cannot tell whether its message was stored (it was).
  --refuse N   the first N POSTs (after any dropped ones) are not forwarded; the proxy
               answers them itself with status S, {"ok":false,"error":"..."} and, with
               --retry-after, a Retry-After header.
Every POST is logged to FILE as one line, flushed:
    POST PATH key=KEY STATUS ACTION BODY
where KEY is the Idempotency-Key header or "-", ACTION is forwarded, dropped or refused,
and BODY is the answer chatd (or the proxy) gave. --ready FILE is created once listening.
"""
import argparse
import http.client
import http.server
import threading
import urllib.parse

opts = None
lock = threading.Lock()
posts = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as chatd: chat-post reuses its connection

    def log_message(self, fmt, *args):
        pass

    def log_post(self, status, action, body):
        key = self.headers.get("Idempotency-Key", "-")
        line = "%s %s key=%s %d %s %s\n" % (self.command, self.path, key, status, action,
                                            body.decode("utf-8", "replace").strip())
        with lock, open(opts.log, "a") as f:
            f.write(line)

    def answer(self, status, headers, body):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def forward(self, body):
        up = urllib.parse.urlsplit(opts.upstream)
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() in ("content-type", "idempotency-key")}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        keep = [(k, v) for k, v in resp.getheaders()
                if k.lower() in ("content-type", "retry-after", "cache-control")]
        conn.close()
        return resp.status, keep, data

    def do_GET(self):
        self.answer(*self.forward(None))

    def do_POST(self):
        global posts
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            posts += 1
            n = posts
        if n <= opts.drop:
            status, _, data = self.forward(body)
            self.log_post(status, "dropped", data)
            self.close_connection = True  # the answer is never sent
            return
        if n <= opts.drop + opts.refuse:
            data = b'{"ok":false,"error":"refused by flakyproxy"}'
            headers = [("Content-Type", "application/json")]
            if opts.retry_after is not None:
                headers.append(("Retry-After", opts.retry_after))
            self.log_post(opts.status, "refused", data)
            self.answer(opts.status, headers, data)
            return
        status, headers, data = self.forward(body)
        self.log_post(status, "forwarded", data)
        self.answer(status, headers, data)


def main():
    global opts
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--drop", type=int, default=0)
    p.add_argument("--refuse", type=int, default=0)
    p.add_argument("--status", type=int, default=503)
    p.add_argument("--retry-after")
    p.add_argument("--ready")
    opts = p.parse_args()
    open(opts.log, "a").close()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", opts.port), Handler)
    server.daemon_threads = True
    if opts.ready:
        open(opts.ready, "w").close()
    server.serve_forever()


if __name__ == "__main__":
    main()
