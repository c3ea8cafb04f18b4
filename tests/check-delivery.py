#!/usr/bin/python3
"""check-delivery.py: compare what a publisher was told with what subscribers received.

check-delivery.py CHAN PUBLOG SUBOUT... [--min-503 N]

PUBLOG is written by publoop.py (messages 1, 2, 3... into CHAN); each SUBOUT is the output
of a wsrecord.py subscriber that was live before the first publish and stopped at the
marker message "end", published after the last message of PUBLOG.

The publisher side:
  - every message got an HTTP answer (no connection error), and it is 200 or 503;
  - a 503 has Retry-After and a JSON body {"ok":false,"error":"message not accepted, ..."
    or "message not acknowledged, ..."};
  - a 200 is {"ok":true,"chan":CHAN,"seq":N,"epoch":E,...}, with seq growing from one
    acknowledged message to the next (one publisher, one message at a time) and one
    epoch for all of them (Redis kept its data);
  - at least --min-503 answers were 503 (the outage happened during the stream).
Each subscriber:
  - received only envelopes (no gap or error frame) of CHAN, in that one epoch, with seq
    1, 2, 3... (no hole, no repeat, no reordering), ending with the marker;
  - received every acknowledged message exactly once, at the seq its 200 gave;
  - received nothing twice and nothing that was refused as "not accepted". A message
    answered "not acknowledged" (the reply was lost, chat-protocol(7)) may or may not be
    there: either is right, as long as it is there at most once and in its place.
Prints the problems found (and a summary) and exits 1 if there are any.
"""
import argparse, json, sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("chan")
    ap.add_argument("publog")
    ap.add_argument("subouts", nargs="+")
    ap.add_argument("--min-503", type=int, default=0)
    a = ap.parse_args()
    bad = []
    acked, maybe, refused = {}, set(), set()  # n -> seq; n; n
    epochs = set()
    last_seq = 0
    n503 = 0
    for line in open(a.publog):
        f = line.rstrip("\n").split(" ", 3)
        n = int(f[0])
        if f[1] == "ERR":
            bad.append(f"publish {n}: no HTTP answer: {' '.join(f[2:])}")
            maybe.add(n)
            continue
        status, retry, body = int(f[1]), f[2], f[3] if len(f) > 3 else ""
        try:
            o = json.loads(body)
        except ValueError:
            bad.append(f"publish {n}: {status} with a body that is not JSON: {body!r}")
            continue
        if status == 200:
            if not (o.get("ok") is True and o.get("chan") == a.chan and
                    isinstance(o.get("seq"), int) and isinstance(o.get("epoch"), str)):
                bad.append(f"publish {n}: 200 with an unexpected body: {body}")
                continue
            if o["seq"] <= last_seq:
                bad.append(f"publish {n}: acknowledged at seq {o['seq']}, not after {last_seq}")
            last_seq = o["seq"]
            acked[n] = o["seq"]
            epochs.add(o["epoch"])
        elif status == 503:
            n503 += 1
            err = o.get("error") if isinstance(o, dict) else None
            if o.get("ok") is not False or not isinstance(err, str) or retry == "-":
                bad.append(f"publish {n}: 503 without Retry-After or an error body: {retry} {body}")
            elif err.startswith("message not accepted"):
                refused.add(n)
            elif err.startswith("message not acknowledged"):
                maybe.add(n)
            else:
                bad.append(f"publish {n}: 503 with an unexpected reason: {err}")
        else:
            bad.append(f"publish {n}: status {status} (only 200 or 503 expected): {body}")
    if len(epochs) > 1:
        bad.append(f"acknowledged in several epochs: {sorted(epochs)}")
    if n503 < a.min_503:
        bad.append(f"only {n503} answers were 503: the outage did not fall inside the stream")
    summary = [f"published {len(acked) + len(maybe) + len(refused)}: {len(acked)} acknowledged, "
               f"{len(maybe)} not acknowledged (maybe delivered), {len(refused)} not accepted"]

    for path in a.subouts:
        got = {}  # n -> seq
        seq, epoch, ended, maybes, line = 0, None, False, 0, ""
        for line in open(path):
            line = line.rstrip("\n")
            if line == "END":
                ended = True
                continue
            try:
                e = json.loads(line)
            except ValueError:
                bad.append(f"{path}: not a JSON frame: {line}")
                continue
            if not isinstance(e, dict) or "type" in e:
                bad.append(f"{path}: a control frame, expected only envelopes: {line}")
                continue
            if e.get("chan") != a.chan:
                bad.append(f"{path}: envelope of another channel: {line}")
                continue
            epoch = epoch or e.get("epoch")
            if e.get("epoch") != epoch or (epochs and epoch not in epochs):
                bad.append(f"{path}: envelope in epoch {e.get('epoch')}, expected {epochs or epoch}: {line}")
            if e.get("seq") != seq + 1:
                bad.append(f"{path}: seq {e.get('seq')} after {seq} (expected {seq + 1}): {line}")
            seq = e.get("seq") if isinstance(e.get("seq"), int) else seq
            n = e.get("msg")
            if n == "end":
                continue
            if not isinstance(n, int):
                bad.append(f"{path}: unexpected message: {line}")
            elif n in got:
                bad.append(f"{path}: message {n} received twice (seq {got[n]} and {e.get('seq')})")
            elif n in refused:
                bad.append(f"{path}: message {n} was refused (not accepted) but delivered at seq {e.get('seq')}")
            elif n not in acked and n not in maybe:
                bad.append(f"{path}: message {n} was never published")
            elif n in acked and acked[n] != e.get("seq"):
                bad.append(f"{path}: message {n} acknowledged at seq {acked[n]}, delivered at seq {e.get('seq')}")
            if isinstance(n, int) and n not in got:
                got[n] = e.get("seq")
                maybes += n in maybe
        if not ended:
            bad.append(f"{path}: the marker \"end\" never came (last line: {line})")
        missing = sorted(n for n in acked if n not in got)
        if missing:
            bad.append(f"{path}: {len(missing)} acknowledged messages never received: "
                       f"{missing[:20]}{' ...' if len(missing) > 20 else ''} "
                       f"(acknowledged at seq {[acked[n] for n in missing[:20]]})")
        summary.append(f"{path}: {len(got)} received ({maybes} of them not acknowledged), up to seq {seq}")

    for b in bad[:40]:
        print("FAIL", b)
    if len(bad) > 40:
        print(f"FAIL ... and {len(bad) - 40} more")
    for s in summary:
        print("#", s)
    sys.exit(1 if bad else 0)


main()
