#!/usr/bin/python3
# SPDX-License-Identifier: ISC
"""A non-MTA SMTP server for the interop tests: python3-aiosmtpd (Debian 12).

  aiosmtpd_server.py --dir DIR --port P --tls-port P2 --cert C --key K
                     --user U --password PW [--pid-file F]

127.0.0.1:P offers STARTTLS, 127.0.0.1:P2 is implicit TLS; AUTH PLAIN, LOGIN and
CRAM-MD5 with the one user, only over TLS, and mail only after AUTH.
RCPT: local parts starting with "reject" get 550, with "defer" 451.
End of data: a header "X-Test-Fail: 451" gets 451, "X-Test-Fail: 554" gets 554.
The 451s (the transient faults) are given only while DIR/transient exists.
Each accepted message goes, once per recipient, to DIR/mail/<local part, lower
case>/new/ (a Maildir, LF line endings) with "Return-Path: <envelope sender>"
in front, as an MTA's delivery would write it. Log: DIR/aiosmtpd.log (a
Traceback there is a server bug). aiosmtpd offers neither PIPELINING nor
CHUNKING.
"""
import argparse
import warnings
import asyncio
import hmac
import logging
import os
import re
import secrets
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword, auth_mechanism


class Handler:
    def __init__(self, root, user, password):
        self.root = root
        self.user = user.encode()
        self.password = password.encode()
        self.seq = 0
        self.lock = threading.Lock()

    def transient(self):
        return os.path.exists(os.path.join(self.root, "transient"))

    def authenticator(self, server, session, envelope, mechanism, data):
        ok = (isinstance(data, LoginPassword) and data.login == self.user
              and hmac.compare_digest(data.password, self.password))
        return AuthResult(success=ok)

    @auth_mechanism("CRAM-MD5")
    async def auth_CRAM_MD5(self, server, args):
        if len(args) != 1:
            await server.push("501 5.5.4 no initial response for CRAM-MD5")
            return AuthResult(success=False, handled=True)
        chal = b"<%s@aiosmtpd.example.test>" % secrets.token_hex(8).encode()
        resp = await server.challenge_auth(chal)
        if not isinstance(resp, bytes) or b" " not in resp:
            return AuthResult(success=False)
        user, digest = resp.rsplit(b" ", 1)
        want = hmac.new(self.password, chal, "md5").hexdigest().encode()
        ok = user == self.user and hmac.compare_digest(digest, want)
        return AuthResult(success=ok, auth_data=user)

    async def handle_RCPT(self, server, session, envelope, address, options):
        local = address.rsplit("@", 1)[0].lower()
        if local.startswith("reject"):
            return "550 5.1.1 <%s>: user unknown (test)" % address
        if local.startswith("defer") and self.transient():
            return "451 4.3.0 <%s>: deferred (test)" % address
        if not re.fullmatch(r"[a-z0-9][a-z0-9._+=-]*", local):
            return "550 5.1.3 <%s>: bad local part (test)" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content.replace(b"\r\n", b"\n")
        head = re.split(rb"\n\n", data, maxsplit=1)[0]
        m = re.search(rb"(?im)^x-test-fail:[ \t]*(\d{3})", head)
        if m and m.group(1) == b"554":
            return "554 5.7.1 refused by X-Test-Fail (test)"
        if m and m.group(1) == b"451" and self.transient():
            return "451 4.3.0 deferred by X-Test-Fail (test)"
        with self.lock:
            self.seq += 1
            n = self.seq
        rp = b"Return-Path: <%s>\n" % envelope.mail_from.encode()
        for rcpt in envelope.rcpt_tos:
            self.store(rcpt.rsplit("@", 1)[0].lower(), n, rp + data)
        logging.info("accepted %d from <%s> for %s", n,
                     envelope.mail_from, ",".join(envelope.rcpt_tos))
        return "250 2.0.0 OK queued as AIO%d" % n

    def store(self, local, n, data):
        d = os.path.join(self.root, "mail", local)
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        name = "%d.%d.aiosmtpd" % (n, os.getpid())
        tmp = os.path.join(d, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(d, "new", name))


def main():
    # the implicit TLS port: AUTH "without TLS" as aiosmtpd sees it (see below)
    warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
    ap = argparse.ArgumentParser()
    for a in ("--dir", "--cert", "--key", "--user", "--password"):
        ap.add_argument(a, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls-port", type=int, required=True)
    ap.add_argument("--pid-file")
    o = ap.parse_args()
    logging.basicConfig(filename=os.path.join(o.dir, "aiosmtpd.log"),
                        level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(o.cert, o.key)
    h = Handler(o.dir, o.user, o.password)
    common = dict(hostname="127.0.0.1", server_hostname="aiosmtpd.example.test",
                  ident="aiosmtpd (outbox test)", authenticator=h.authenticator,
                  auth_required=True, data_size_limit=50 * 1024 * 1024)
    # STARTTLS port; the implicit TLS port has no STARTTLS, so aiosmtpd does not
    # know it is encrypted: there, AUTH without STARTTLS is allowed.
    plain = Controller(h, port=o.port, tls_context=ctx, require_starttls=True,
                       **common)
    implicit = Controller(h, port=o.tls_port, ssl_context=ctx,
                          auth_require_tls=False, **common)
    plain.start()
    implicit.start()
    if o.pid_file:
        with open(o.pid_file, "w") as f:
            f.write("%d\n" % os.getpid())
    stop = asyncio.new_event_loop()
    stop.add_signal_handler(signal.SIGTERM, stop.stop)
    stop.add_signal_handler(signal.SIGINT, stop.stop)
    stop.run_forever()
    implicit.stop()
    plain.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
