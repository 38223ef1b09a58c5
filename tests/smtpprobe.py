#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""smtpprobe.py CA PORT_STARTTLS PORT_IMPLICIT [--exim]

Checks that a test server answers on both ports: STARTTLS on the first,
AUTH after it, AUTH on the implicit-TLS port, the certificate verifying
against CA. With --exim also that AUTH is not offered before TLS and
CHUNKING is after it. Exits 0, or 1 with the reason on stderr. Used by
tests/exim.sh and tests/dovecot.sh while they wait for their server."""
import smtplib
import ssl
import sys


def main():
    ca, p1, p2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    strict = "--exim" in sys.argv[4:]
    ctx = ssl.create_default_context(cafile=ca)
    s = smtplib.SMTP("127.0.0.1", p1, timeout=3)
    s.ehlo("probe")
    assert s.has_extn("starttls"), "no STARTTLS"
    assert not (strict and s.has_extn("auth")), "AUTH before TLS"
    s.starttls(context=ctx)
    s.ehlo("probe")
    assert s.has_extn("auth"), "no AUTH after TLS"
    assert not strict or s.has_extn("chunking"), "no CHUNKING after TLS"
    s.quit()
    s = smtplib.SMTP_SSL("127.0.0.1", p2, timeout=3, context=ctx)
    s.ehlo("probe")
    assert s.has_extn("auth"), "no AUTH on the implicit TLS port"
    s.quit()


try:
    main()
except Exception as e:
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
