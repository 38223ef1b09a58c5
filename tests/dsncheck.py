#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""dsncheck: checks one delivery status notification (RFC 3464) as a MUA
would read it, with Python's email package.

    python3 tests/dsncheck.py FILE ACTION RCPT [STATUS]

FILE is the delivered message (a Maildir file), ACTION "failed" or
"delayed", RCPT the recipient the report must be about, STATUS the
enhanced code it must give (default: any valid one). Prints one line per
check, "ok NAME" or "FAIL NAME: why", for tests/lib.sh to count; exits 1
when any check failed.
"""
import email
import email.policy
import re
import sys

REQUIRED_MSG = ["Reporting-MTA"]
REQUIRED_RCPT = ["Final-Recipient", "Action", "Status"]


def report(results, name, good, why=""):
    results.append(good)
    print(("ok   " if good else "FAIL ") + name + ("" if good else ": " + why))


def status_fields(r, part):
    """The per-message block and the per-recipient blocks of part."""
    blocks = part.get_payload()
    r(isinstance(blocks, list) and len(blocks) >= 2, "status-blocks",
      "message/delivery-status has %r" % (blocks,))
    if not isinstance(blocks, list) or len(blocks) < 2:
        return None, []
    return blocks[0], blocks[1:]


def check(path, action, rcpt, status):
    results = []
    r = lambda good, name, why="": report(results, name, good, why)
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.compat32)
    r(msg.get_content_type() == "multipart/report", "content-type",
      msg.get_content_type())
    r(msg.get_param("report-type") == "delivery-status", "report-type",
      str(msg.get_param("report-type")))
    r(msg.get("Auto-Submitted", "").startswith("auto-replied"),
      "auto-submitted", str(msg.get("Auto-Submitted")))
    parts = msg.get_payload() if msg.is_multipart() else []
    types = [p.get_content_type() for p in parts]
    r(len(parts) == 3, "three-parts", repr(types))
    want = ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    r(types == want, "part-types", repr(types))
    if types != want:
        return results
    human, ds, hdrs = parts
    r(rcpt in human.get_payload(decode=True).decode("ascii", "replace"),
      "human-names-rcpt", "no %s in the text part" % rcpt)
    per_msg, per_rcpt = status_fields(r, ds)
    if per_msg is None:
        return results
    for k in REQUIRED_MSG:
        r(per_msg.get(k) is not None, "field-" + k, "missing")
    r(re.match(r"dns; *\S+$", per_msg.get("Reporting-MTA", "")) is not None,
      "reporting-mta-dns", str(per_msg.get("Reporting-MTA")))
    arr = per_msg.get("Arrival-Date")
    r(arr is not None and email.utils.parsedate_tz(arr) is not None,
      "arrival-date", str(arr))
    mine = [b for b in per_rcpt if b.get("Final-Recipient", "").lower()
            == "rfc822; " + rcpt.lower()]
    r(len(mine) == 1, "final-recipient", "blocks: %r" %
      [b.get("Final-Recipient") for b in per_rcpt])
    if len(mine) != 1:
        return results
    b = mine[0]
    for k in REQUIRED_RCPT:
        r(b.get(k) is not None, "field-" + k, "missing")
    r(b.get("Action") == action, "action", str(b.get("Action")))
    st = b.get("Status", "")
    r(re.match(r"[245]\.\d{1,3}\.\d{1,3}$", st) is not None, "status-valid", st)
    if status:
        r(st == status, "status", "%s, want %s" % (st, status))
    diag = b.get("Diagnostic-Code", "")
    r(re.match(r"[A-Za-z0-9-]+; *\S", diag) is not None, "diagnostic-code",
      diag)
    lad = b.get("Last-Attempt-Date")
    r(lad is not None and email.utils.parsedate_tz(lad) is not None,
      "last-attempt-date", str(lad))
    orig = email.message_from_string(hdrs.get_payload(),
                                     policy=email.policy.compat32)
    r(orig.get("Message-ID") is not None, "headers-message-id",
      "no Message-ID in text/rfc822-headers")
    r(orig.get_payload().strip() == "", "headers-only",
      "text/rfc822-headers holds a body")
    return results


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    import email.utils  # noqa: F401 (parsedate_tz)
    res = check(sys.argv[1], sys.argv[2], sys.argv[3],
                sys.argv[4] if len(sys.argv) == 5 else None)
    sys.exit(0 if res and all(res) else 1)


if __name__ == "__main__":
    main()
