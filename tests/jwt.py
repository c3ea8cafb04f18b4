#!/usr/bin/python3
"""jwt.py SECRET_FILE PAYLOAD_JSON [--alg ALG] [--unsigned]: mint a JWT the way any other
implementation would (Python's hmac), to test chatd against tokens it did not make.
The secret is the file's bytes minus one trailing newline, as chatd reads it. --alg
writes another "alg" into the header (signed with HS256 all the same); --unsigned leaves
the signature empty (what "alg":"none" tokens look like)."""
import base64
import hashlib
import hmac
import json
import sys


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


args = sys.argv[1:]
alg = "HS256"
unsigned = "--unsigned" in args
if "--alg" in args:
    alg = args[args.index("--alg") + 1]
secret = open(args[0], "rb").read()
if secret.endswith(b"\n"):
    secret = secret[:-1]
head = b64(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
body = b64(args[1].encode())
signing = (head + "." + body).encode()
sig = "" if unsigned else b64(hmac.new(secret, signing, hashlib.sha256).digest())
print(head + "." + body + "." + sig)
