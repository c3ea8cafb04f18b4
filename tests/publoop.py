#!/usr/bin/python3
"""publoop.py: a steady publisher for tests, on one keep-alive HTTP connection.

publoop.py URL CHAN LOG [--stop FILE] [--interval S] [--max-seconds S]

POSTs {"chan":CHAN,"msg":N} for N = 1, 2, 3... one at a time (each waits for its answer)
until FILE exists (or --max-seconds pass), and appends one line per message to LOG:

    N STATUS RETRY-AFTER BODY    an answer ("-" when there was no Retry-After header)
    N ERR WHAT                   no answer: the request or the connection failed

The line is written before the next message is sent, so LOG is the publisher's record of
what it was told, in order.
"""
import argparse, http.client, json, os, sys, time, urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("chan")
    ap.add_argument("log")
    ap.add_argument("--stop")
    ap.add_argument("--interval", type=float, default=0.002)
    ap.add_argument("--max-seconds", type=float, default=40)
    a = ap.parse_args()
    u = urllib.parse.urlsplit(a.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    end = time.monotonic() + a.max_seconds
    n = 0
    with open(a.log, "w", buffering=1) as log:
        while time.monotonic() < end and not (a.stop and os.path.exists(a.stop)):
            n += 1
            body = json.dumps({"chan": a.chan, "msg": n})
            try:
                conn.request("POST", "/", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                text = r.read().decode("utf-8", "replace").replace("\n", " ")
                log.write(f"{n} {r.status} {r.getheader('Retry-After') or '-'} {text}\n")
            except Exception as e:  # no answer: record it, start a new connection
                log.write(f"{n} ERR {type(e).__name__}: {e}\n")
                conn.close()
            time.sleep(a.interval)


main()
