#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""ledger: checks what a faultsmtp server took against what had to arrive.

Usage: python3 tests/ledger.py WANT LOG

WANT has one line per (message, recipient) that must arrive exactly once,
under its own envelope sender: "MESSAGE-ID RECIPIENT SENDER" (the Message-ID
without <>). LOG is a tests/faultsmtp.py log; its E: lines are read through
faultsmtp.py --tally. Prints one line per problem, then the figures:

  pairs=N once=N delivered=N refused=N lost=N duplicates=N allowed=N
  excess=N wrong_sender=N extra=N unreplied=N unconfirmed=N

  once        pairs the server took exactly once, with no copy left unreplied
  delivered   pairs the server took at least once
  refused     pairs never taken, permanently refused (5xx to that RCPT from
              that sender, or to that message's end of data): bounced
  lost        pairs never taken and never refused (or still queued: a test
              that stops before the queue is empty checks the queue too)
  duplicates  copies beyond the first, counting a copy whose end-of-data
              reply was never sent (dropped after the dot, stalled, strict
              mode's violation) as one the server may have delivered
  allowed     copies whose reply the client can never have read: never sent
              (unreplied) or sent with no command after it (unconfirmed)
  excess      per pair, duplicates beyond that pair's allowed, summed
  wrong_sender  copies taken under a sender that is not the message's own
  extra       copies of a wanted message taken for a recipient not its own
Standard library only.
"""

import os
import subprocess
import sys


def main():
    want_path, log = sys.argv[1], sys.argv[2]
    want = {}
    for line in open(want_path):
        f = line.split()
        if len(f) == 3:
            want[(f[0], f[1].lower())] = f[2].lower()
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, os.path.join(here, "faultsmtp.py"),
                          "--tally", log], capture_output=True, text=True,
                         check=True).stdout
    got, refused_rcpt = {}, set()
    for line in out.splitlines():
        f = line.split()
        if f[0] == "rcpt-refused":
            refused_rcpt.add((f[1].lower(), f[2].lower()))
            continue
        kv = dict(x.split("=", 1) for x in f[2:])
        got[(f[0], f[1].lower())] = kv
    mids = {m for m, _ in want}
    c = dict.fromkeys(["pairs", "once", "delivered", "refused", "lost",
                       "duplicates", "allowed", "excess", "wrong_sender",
                       "extra", "unreplied", "unconfirmed"], 0)
    c["pairs"] = len(want)
    for (mid, rcpt), sender in sorted(want.items()):
        g = got.get((mid, rcpt), {})
        acc, unr, unc = (int(g.get(k, 0)) for k in ("accepted", "unreplied", "unconfirmed"))
        senders = [s.lower() for s in g.get("senders", "-").split(",") if s != "-"]
        c["unreplied"] += unr
        c["unconfirmed"] += unc
        if acc == 1 and unr == 0:
            c["once"] += 1
        if acc > 0:
            c["delivered"] += 1
        elif int(g.get("refused5", 0)) > 0 or (sender, rcpt) in refused_rcpt:
            c["refused"] += 1
        else:
            c["lost"] += 1
            print("LOST %s %s" % (mid, rcpt))
        dup = max(0, acc + unr - 1)
        c["duplicates"] += dup
        c["allowed"] += unr + unc
        if dup > unr + unc:
            c["excess"] += dup - unr - unc
            print("DUPLICATE %s %s: taken %d times, %d unreplied, %d unconfirmed"
                  % (mid, rcpt, acc, unr, unc))
        for s in senders:
            if s != sender:
                c["wrong_sender"] += 1
                print("WRONG-SENDER %s %s: taken under <%s>, its sender is <%s>"
                      % (mid, rcpt, s, sender))
    for (mid, rcpt), g in sorted(got.items()):
        if mid in mids and (mid, rcpt) not in want and int(g["accepted"]) > 0:
            c["extra"] += int(g["accepted"])
            print("EXTRA %s taken for %s, not its recipient" % (mid, rcpt))
    print(" ".join("%s=%d" % kv for kv in c.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
