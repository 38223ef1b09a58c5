#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""qtool: reads faultsmtp logs and queue directories, for tests/t_queue.sh.

Usage: python3 tests/qtool.py COMMAND ARGS
  tx LOG          one line per transaction: "N ACKED SENDER RCPTS MID"
                  (ACKED 1 when the server answered 250 to the end of data;
                  SENDER "<>" for the null sender; RCPTS comma-separated,
                  the recipients the server accepted; MID the Message-ID
                  in the header of LOG.data.N)
  queue QDIR      one line per entry: "ID MID RCPTS"
  ledger LEDGER DIR   checks every "MID RCPT" of LEDGER against all DIR/*.log
                  (acknowledged transactions) and DIR/*.q (queued entries)
"""
import glob, os, re, sys

def addr(s):
    i, j = s.find("<"), s.find(">")
    if i >= 0 and j > i:
        return s[i + 1:j]
    s = s.strip()
    return s.split()[0] if s else ""

def mid_of(path):
    try:
        data = open(path, "rb").read()
    except OSError:
        return "-"
    head = re.split(rb"\r?\n\r?\n", data, maxsplit=1)[0]
    m = re.search(rb"(?im)^message-id:[ \t]*<([^>\r\n]+)>", head)
    return m.group(1).decode("latin-1") if m else "-"

def parse(log):
    out = []
    sender, rcpts, last, pending = None, [], None, None
    def close_pending(acked):
        n, s, rc = pending
        out.append((n, acked, s, rc, mid_of("%s.data.%d" % (log, n))))
    for line in open(log, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        if line.startswith("# session") or line.startswith("X: "):
            if pending is not None:
                close_pending(False)
                pending = None
            if line.startswith("# session"):
                sender, rcpts, last = None, [], None
        elif line.startswith("C: "):
            cmd = line[3:]
            up = cmd.upper()
            if up.startswith("MAIL FROM:"):
                last = ("MAIL", addr(cmd[10:]))
            elif up.startswith("RCPT TO:"):
                last = ("RCPT", addr(cmd[8:]))
            else:
                if up.startswith(("RSET", "EHLO", "HELO")):
                    sender, rcpts = None, []
                last = None
        elif line.startswith("S: "):
            r = line[3:]
            if pending is not None:
                n = pending[0]
                close_pending(r.startswith("250") and ("queued as FS%d " % n) in r)
                pending = None
                continue
            if last and last[0] == "MAIL":
                sender = last[1] if r.startswith("250") else None
            elif last and last[0] == "RCPT" and r.startswith("250"):
                rcpts.append(last[1])
            last = None
        elif line.startswith("D: end of data"):
            m = re.search(r"transaction (\d+)", line)
            pending = (int(m.group(1)), sender, rcpts)
            sender, rcpts = None, []
    if pending is not None:
        close_pending(False)
    return out

def queue(qdir):
    out = []
    for env in sorted(glob.glob(os.path.join(qdir, "*.env"))):
        b = os.path.basename(env)
        if b.startswith("tmp."):
            continue
        qid = b[:-4]
        try:
            rc = [l[5:].strip() for l in open(env) if l.startswith("rcpt ")]
        except OSError:
            continue
        out.append((qid, mid_of(os.path.join(qdir, qid + ".msg")), rc))
    return out

cmd = sys.argv[1]
if cmd == "tx":
    for n, acked, s, rc, mid in parse(sys.argv[2]):
        print(n, int(acked), "<>" if s == "" else (s or "-"), ",".join(rc) or "-", mid)
elif cmd == "queue":
    for qid, mid, rc in queue(sys.argv[2]):
        print(qid, mid, ",".join(rc) or "-")
elif cmd == "ledger":
    want = [l.split() for l in open(sys.argv[2]) if l.strip()]
    d = sys.argv[3]
    acked, unacked = {}, {}
    for log in sorted(glob.glob(os.path.join(d, "*.log"))):
        for n, ok, s, rc, mid in parse(log):
            for r in rc:
                key = (mid, r)
                if ok:
                    acked.setdefault(key, []).append("%s#%d" % (os.path.basename(log), n))
                else:
                    unacked.setdefault(key, []).append("%s#%d" % (os.path.basename(log), n))
    queued = {}
    for q in sorted(glob.glob(os.path.join(d, "*.q"))):
        for qid, mid, rc in queue(q):
            for r in rc:
                queued.setdefault((mid, r), []).append(os.path.basename(q) + "/" + qid)
    lost = dups = still = unack = 0
    for mid, r in want:
        a = acked.get((mid, r), [])
        q = queued.get((mid, r), [])
        u = unacked.get((mid, r), [])
        if not a and not q:
            lost += 1
            print("LOST %s %s" % (mid, r))
        if len(a) > 1:
            dups += len(a) - 1
            print("DUPLICATE %s %s acknowledged %d times: %s" % (mid, r, len(a), " ".join(a)))
        if a and q:
            dups += 1
            print("DUPLICATE %s %s delivered (%s) and still queued (%s)" % (mid, r, " ".join(a), " ".join(q)))
        if q and not a:
            still += 1
            print("STILL-QUEUED %s %s: %s" % (mid, r, " ".join(q)))
        if u:
            unack += len(u)
            print("UNACKNOWLEDGED-COPY %s %s (server got the data, sent no 250): %s" % (mid, r, " ".join(u)))
    print("lost=%d duplicates=%d still_queued=%d unacknowledged_copies=%d pairs=%d"
          % (lost, dups, still, unack, len(want)))
