#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""outbox against msmtp, side by side, against the bench's private Postfix.

Run by bench/run.sh (make bench), which installs the packages, builds
outbox, starts Postfix and the delayed link, and passes everything here in
the environment (the variables below). Not a test: nothing here fails on
a time; the table says which of issue #6's targets were met.

How things are measured (by bench/spawn.c, a small launcher like GNU time):
  wall    CLOCK_MONOTONIC from just before fork() to the return of wait4()
  CPU     user + system time of the process, from wait4()'s rusage
  RSS     ru_maxrss of the process, from wait4()'s rusage (GNU time's %M)
  RTs     round trips over the delayed link, counted from the delayer's
          packet log (see round_trips())
Runs of the two tools alternate (ABBA order), after two warm-up runs each.
Every loop has a fixed count; every process has a time limit.

Section 7 alone, without run.sh (no root, Postfix or link needed):
  gcc -O2 -o /tmp/b/spawn bench/spawn.c
  BENCH_DIR=/tmp/b OUTBOX=$PWD/outbox SPAWN=/tmp/b/spawn BENCH_ONLY=7 \
      python3 bench/bench.py
"""
import base64
import os
import random
import re
import statistics
import subprocess
import sys
import time

E = os.environ
BENCH = E["BENCH_DIR"]                  # scratch directory (configs, messages, queues)
OUTBOX = E["OUTBOX"]                    # the outbox binary
MSMTP = E.get("MSMTP", "/usr/bin/msmtp")
# BENCH_ONLY=7 runs only section 7 (the 10,000-message flush), which needs
# neither Postfix nor the delayed link: then PF_ENV and DELAY_* may be unset.
ONLY = set(E.get("BENCH_ONLY", "").replace(",", " ").split())
PF = dict(l.split("=", 1) for l in open(E["PF_ENV"]).read().splitlines()
          if "=" in l and not l.startswith("#")) if "PF_ENV" in E else {}
PF = {k: v.strip("'") for k, v in PF.items()}
NETNS = E.get("DELAY_NETNS", "")        # client namespace of the delayed link
DADDR = E.get("DELAY_ADDR", "")         # Postfix's address across the link
DPORT = int(E.get("DELAY_PORT", "0"))   # its submission port there
DLOG = E.get("DELAY_LOG", "")           # the delayer's packet log
DELAY_MS = float(E.get("DELAY_MS", "25"))
RESULTS = E.get("RESULTS", "")          # where the Markdown goes
MACHINE = E.get("MACHINE_FILE", "")     # machine description (Markdown) from run.sh
N_SMALL = int(E.get("BENCH_N_SMALL", "11"))
N_LARGE = int(E.get("BENCH_N_LARGE", "3"))
N_BATCH = int(E.get("BENCH_N_BATCH", "3"))         # 100-message batches, loopback
N_BATCH_DELAY = int(E.get("BENCH_N_BATCH_DELAY", "3"))  # ... over the delayed link
BATCH = int(E.get("BENCH_BATCH", "100"))
N_FLUSH = int(E.get("BENCH_N_FLUSH", "10000"))     # section 7's queue
FAULTSMTP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                         "faultsmtp.py")
GIB = int(E.get("BENCH_GIB", "1"))      # 0 skips the 1 GiB point
N_BULK = int(E.get("BENCH_N_BULK", "1"))           # runs of the 1,000-message bulk row
BULK = int(E.get("BENCH_BULK", "1000"))
PFC = E.get("PFC_DIR", "")              # the Postfix null client (bench/nullclient.sh)
ONLY = set(E.get("BENCH_ONLY", "").replace(",", " ").split())  # sections to run; empty: all
DEADLINE = time.monotonic() + float(E.get("BENCH_MAX_SECONDS", "1800"))
RTT = 2 * DELAY_MS / 1000.0

SPAWN = E["SPAWN"]                      # bench/spawn.c, built by run.sh


def say(*a):
    print(*a, file=sys.stderr, flush=True)


class OutOfTime(Exception):
    pass


# ---------------------------------------------------------------- running

def run(argv, stdin_path, netns=False, limit=120.0, errfile=None):
    """Runs argv once through spawn (see spawn.c); returns dict(wall, cpu,
    rss, rc), rss in KiB."""
    if time.monotonic() > DEADLINE:
        raise OutOfTime()
    cmd = [SPAWN, "-i", stdin_path, "-e", errfile or os.path.join(BENCH, "last.err"),
           "-t", str(int(limit))]
    if netns:
        cmd += ["-n", NETNS]
    out = subprocess.run(cmd + ["--"] + argv, stdout=subprocess.PIPE, text=True,
                         timeout=limit + 30).stdout.split()
    if len(out) != 4:
        raise SystemExit("bench: spawn failed for %s" % argv)
    return {"wall": float(out[0]), "cpu": float(out[1]), "rss": int(out[2]),
            "rc": int(out[3])}


def must(r, what):
    if r["rc"] != 0:
        err = open(os.path.join(BENCH, "last.err"), errors="replace").read()[-600:]
        raise SystemExit("bench: %s exited %d: %s" % (what, r["rc"], err))
    return r


# ---------------------------------------------------------------- Postfix

QDIRS = ("maildrop", "incoming", "active", "deferred", "hold")


def pf_busy():
    n = 0
    for d in QDIRS:
        for _, _, files in os.walk(os.path.join(PF["PF_DIR"], "queue", d)):
            n += len(files)
    return n


def pf_idle(limit=120.0):
    """Waits (bounded) until Postfix has delivered everything."""
    end = time.monotonic() + limit
    while pf_busy() and time.monotonic() < end:
        time.sleep(0.05)
    if pf_busy():
        say("bench: warning: Postfix queue not empty after %.0f s" % limit)


delivered = {"outbox": 0, "msmtp": 0, "bulkoutbox": 0, "nullclient": 0}
biggest = dict(delivered)


def collect():
    """Counts and removes what Postfix delivered to each tool's Maildir."""
    pf_idle()
    for tool in delivered:
        d = os.path.join(PF["PF_MAIL"], tool, "new")
        if not os.path.isdir(d):
            continue
        for f in os.listdir(d):
            p = os.path.join(d, f)
            biggest[tool] = max(biggest[tool], os.path.getsize(p))
            delivered[tool] += 1
            os.unlink(p)


def queue_count(qdir):
    try:
        return sum(1 for f in os.listdir(qdir) if f.endswith(".env"))
    except FileNotFoundError:
        return 0


# ---------------------------------------------------------------- delayed link

def log_size():
    try:
        return os.path.getsize(DLOG)
    except FileNotFoundError:
        return 0


def log_since(off):
    """The delayer's lines after offset off, once the link is quiet."""
    end = time.monotonic() + 3.0
    last = -1
    while time.monotonic() < end:  # quiet for 3 one-way delays
        size = log_size()
        if size == last:
            break
        last = size
        time.sleep(3 * DELAY_MS / 1000.0)
    with open(DLOG) as f:
        f.seek(off)
        out = []
        for line in f:
            p = line.split()
            if len(p) == 6:
                out.append((float(p[0]), p[1], int(p[2]), int(p[3]), p[4], int(p[5])))
        return out


def round_trips(lines, delay_ms=DELAY_MS):
    """(round trips, ACK holds, connections) in a slice of the packet log.

    Round trips are request/reply turns: a flight of server packets that
    carry a SYN or data, begun after the client sent a SYN or data (its
    next request), or after the ACK that completes the TCP handshake (the
    greeting goes out only once that ACK is in, so the wait for it is a
    round trip of its own, as on the wire). This is how issue #6 counts
    msmtp's 11.

    ACK holds are extra waits inside those turns, where one side's data
    waited a round trip for the other side's bare ACK (Nagle's algorithm
    meeting a delayed ACK): a server data packet that follows a bare
    client ACK more than one one-way delay after the previous server
    packet of the same flight, or a client data packet that follows a bare
    server ACK more than one one-way delay after the client's previous
    data, with no server data in between. Each costs about an RTT (plus
    the delayed-ACK timer, 40 ms on Linux, when the ACK was delayed).

    Flights that start after the client's FIN or RST are not counted: the
    client did not wait for them (the 221 to a QUIT sent on the way out).
    """
    conns = []
    open_ = {}
    for t, d, sp, dp, fl, n in lines:
        cport = sp if d == "c" else dp
        if d == "c" and "S" in fl and "A" not in fl:
            open_[cport] = {"rts": 0, "holds": 0, "at": [], "flight": False, "synack": False,
                            "hsack": False, "cacked": False, "last_s": None,
                            "sacked": False, "sdata": False, "last_c": None,
                            "closed": False}
            conns.append(open_[cport])
        c = open_.get(cport)
        if c is None or c["closed"]:
            continue
        data = "S" in fl or n > 0
        if d == "c":
            if "F" in fl or "R" in fl:
                c["closed"] = True
            elif data:
                if ("S" not in fl and not c["sdata"] and c["sacked"] and
                        c["last_c"] is not None and t - c["last_c"] > delay_ms):
                    c["holds"] += 1     # client data waited for a bare ACK
                    c["at"].append("client data in round trip %d" % (c["rts"] + 1))
                c.update(flight=False, last_c=t, sacked=False, sdata=False)
            elif c["synack"] and not c["hsack"]:
                c.update(hsack=True, flight=False)
            else:
                c["cacked"] = True
        elif data:
            if not c["flight"]:
                c["rts"] += 1
            elif c["cacked"] and t - c["last_s"] > delay_ms:
                c["holds"] += 1         # server data waited for a bare ACK
                c["at"].append("server data in round trip %d" % c["rts"])
            c.update(flight=True, last_s=t, cacked=False, sdata=True)
            if "S" in fl:
                c["synack"] = True
        else:
            c["sacked"] = True
    HOLDS_AT[:] = [a for c in conns for a in c["at"]]
    return (sum(c["rts"] for c in conns), sum(c["holds"] for c in conns), len(conns))


HOLDS_AT = []   # where round_trips() last saw ACK holds


# ---------------------------------------------------------------- setup

def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def ob_conf(name, host, port, auth, qdir, ca=True):
    path = os.path.join(BENCH, name)
    write_private(path, "".join([
        "host %s\n" % host, "port %d\n" % port,
        ca and "tls_ca_file %s\n" % PF["PF_CA"] or "", "user alice\n",
        "password correct horse\n", auth and "auth %s\n" % auth or "",
        "from bench@example.test\n", "queue_dir %s\n" % qdir,
        # The 1 GiB point passes the 50 MiB default spool limit.
        "queue_max_message_size 0\n", "log off\n"]))
    os.makedirs(qdir, mode=0o700, exist_ok=True)
    return path


def ms_conf():
    path = os.path.join(BENCH, "msmtprc")
    acct = ("tls on\ntls_starttls on\ntls_trust_file %s\nauth plain\n"
            "user alice\npassword correct horse\nfrom bench@example.test\n"
            % PF["PF_CA"])
    write_private(path, "defaults\nsyslog off\n\n"
                  "account lo\nhost 127.0.0.1\nport %s\n%s\n"
                  "account delay\nhost %s\nport %d\n%s" %
                  (PF["PF_SUBMIT"], acct, DADDR, DPORT, acct))
    return path


HEADER = ("From: Bench <bench@example.test>\nTo: bench@example.test\n"
          "Subject: outbox bench\nDate: Fri, 21 Nov 2025 10:00:00 +0000\n"
          "Message-ID: <bench.%d@example.test>\nMIME-Version: 1.0\n"
          "Content-Type: text/plain; charset=us-ascii\n\n")


def make_message(path, size):
    """A message of size bytes (LF line ends): headers, then base64-like
    76-character lines, as an attachment would have."""
    if os.path.exists(path) and os.path.getsize(path) == size:
        return path
    rnd = random.Random(size)
    block = bytearray()
    while len(block) < (1 << 20):
        block += base64.b64encode(bytes(rnd.getrandbits(8) for _ in range(57))) + b"\n"
    block = bytes(block[: (1 << 20) // 77 * 77])
    head = (HEADER % size).encode()
    with open(path, "wb") as f:
        f.write(head)
        left = size - len(head)
        while left > 0:
            chunk = block[: min(left, len(block))]
            f.write(chunk)
            left -= len(chunk)
    # the last line must end with a newline and not be cut short oddly
    with open(path, "r+b") as f:
        f.seek(size - 1)
        f.write(b"\n")
    return path


# ---------------------------------------------------------------- results

rows = []   # (section, metric, outbox, msmtp, unit, target)
notes = []
WHY = {}        # section -> what the data say about it, shown when a target is missed
TRACES = {}     # tool -> packet log of its median run over the link
CG_COST = {}    # tool -> {function: inclusive Ir}
MISSED = set()


def trace_text(lines):
    """The packet log of one run, times relative to its first packet."""
    if not lines:
        return ""
    t0 = lines[0][0]
    return "".join("%7.1f ms  %s  %-4s %5d bytes\n" % (t - t0, "client->server" if d == "c"
                   else "server->client", fl, n) for t, d, sp, dp, fl, n in lines)


def fmt(v, unit):
    if v is None:
        return "–"
    if unit == "s":
        return "%.3f s" % v if v < 10 else "%.1f s" % v
    if unit == "ms":
        return "%.1f ms" % (v * 1000)
    if unit == "MiB":
        return "%.1f MiB" % (v / 1024.0)
    if unit == "MiB/s":
        return "%.0f MiB/s" % v
    if unit == "Ir":
        return "{:,}".format(int(v))
    if unit == "n":
        return "%d" % v if v == int(v) else "%.1f" % v
    return str(v)


def row(section, metric, ob, ms, unit, target=None):
    """target: (kind, limit) with kind 'le' (ratio <=), 'ge' (ratio >=),
    'abs_le' (outbox value <=), or a free text (no check)."""
    rows.append((section, metric, ob, ms, unit, target))


def table():
    out = ["| # | metric | outbox | msmtp | outbox/msmtp | target | met? |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for section, metric, ob, ms, unit, target in sorted(rows, key=lambda r: r[0]):
        ratio = ob / ms if ob is not None and ms else None
        rtxt = "%.3f" % ratio if ratio is not None else "–"
        ttxt, met = "", ""
        if isinstance(target, tuple):
            kind, lim = target
            if kind == "le":
                ttxt, ok = "ratio ≤ %g" % lim, ratio is not None and ratio <= lim
            elif kind == "ge":
                ttxt, ok = "ratio ≥ %g" % lim, ratio is not None and ratio >= lim
            elif kind == "abs_le":
                ttxt, ok = "outbox ≤ %g" % lim, ob is not None and ob <= lim
            elif kind == "flat":
                ttxt, ok = "spread ≤ %g MiB" % lim, ob is not None and ob / 1024.0 <= lim
            met = "yes" if ok else "**NO**"
            if not ok:
                MISSED.add(section)
        elif target:
            ttxt = target
        if unit == "MiB" and metric.startswith("RSS spread"):
            rtxt = "–"
        out.append("| %s | %s | %s | %s | %s | %s | %s |" %
                   (section, metric, fmt(ob, unit), fmt(ms, unit), rtxt, ttxt, met))
    return "\n".join(out)


def med(rs, key):
    return statistics.median(r[key] for r in rs)


# ---------------------------------------------------------------- phases

# functions whose inclusive cost the notes give, per tool
CG_PARTS = {
    "outbox": ["_dl_start", "main", "config_load", "message_read", "smtp_open",
               "tls_context", "OPENSSL_init_ssl", "SSL_CTX_new",
               "SSL_CTX_load_verify_locations", "tls_start", "SSL_do_handshake",
               "smtp_send", "deliver_submit"],
    "msmtp": ["_dl_start", "_dl_init", "gnutls_global_init", "gnutls_handshake",
              "gnutls_certificate_verify_peers3"],
}


def callgrind(tag, argv, stdin_path, env=()):
    """One run of argv under callgrind: (total Ir, {function: inclusive Ir});
    the profiles go to BENCH/callgrind.TAG.{out,txt,inclusive.txt}. env:
    VAR=value settings for it."""
    out = os.path.join(BENCH, "callgrind.%s.out" % tag)
    pre = ["/usr/bin/env", "-u", "SSL_CERT_FILE", "-u", "SSL_CERT_DIR", *env]
    must(run(pre + ["/usr/bin/valgrind", "--tool=callgrind", "--callgrind-out-file=" + out] +
             argv, stdin_path, limit=600), "valgrind " + tag)
    total = None
    for line in open(out):
        if line.startswith(("summary:", "totals:")):
            total = int(line.split()[1])
    ann = subprocess.run(["callgrind_annotate", out], capture_output=True, text=True).stdout
    with open(os.path.join(BENCH, "callgrind.%s.txt" % tag), "w") as f:
        f.write(ann)
    inc = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", out],
                         capture_output=True, text=True).stdout
    with open(os.path.join(BENCH, "callgrind.%s.inclusive.txt" % tag), "w") as f:
        f.write(inc)
    cost = {}
    for line in inc.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*?)(?: \[(.*)\])?$", line)
        if m and ":" in m.group(2):
            fn = m.group(2).split(":", 1)[1]
            cost.setdefault(fn, int(m.group(1).replace(",", "")))
    return total, cost


def interleave(n, a, b):
    """n runs of a() and b(), alternating which goes first (ABBA)."""
    ra, rb = [], []
    for i in range(n):
        if i % 2 == 0:
            ra.append(a())
            rb.append(b())
        else:
            rb.append(b())
            ra.append(a())
    return ra, rb


def main():
    if not ONLY or ONLY - {"7"}:
        sections_1_6()
    if not ONLY or "7" in ONLY:
        flush_queue()


def faultsmtp(name):
    """A healthy tests/faultsmtp.py on 127.0.0.1 (sessions served at once,
    no per-message files); returns (process, port, log)."""
    pf, log = os.path.join(BENCH, name + ".port"), os.path.join(BENCH, name + ".log")
    for f in (pf, log):
        if os.path.exists(f):
            os.unlink(f)
    p = subprocess.Popen([sys.executable, FAULTSMTP, "--port-file", pf, "--log", log,
                          "--concurrent", "--no-records", "--max-time", "3600",
                          "--io-timeout", "300"])
    end = time.monotonic() + 10
    while not os.path.exists(pf) and time.monotonic() < end:
        time.sleep(0.05)
    if not os.path.exists(pf):
        p.kill()
        raise SystemExit("bench: faultsmtp.py did not start")
    return p, int(open(pf).read()), log


def flush_queue():
    """7: N_FLUSH small messages queued (-odq), then one `outbox -q` to a
    loopback faultsmtp.py (plain SMTP: the queue's own cost, not TLS's)."""
    say("bench: 7. %d queued messages, one `outbox -q` to a loopback faultsmtp.py" % N_FLUSH)
    qdir = os.path.join(BENCH, "queue-flush")
    if queue_count(qdir):
        subprocess.run(["rm", "-rf", qdir], check=True)
    srv, port, log = faultsmtp("flush")
    try:
        conf = os.path.join(BENCH, "outbox-flush.conf")
        write_private(conf, "host 127.0.0.1\nport %d\ntls off\nfrom bench@example.test\n"
                      "queue_dir %s\nlog off\ntimeout 120\n" % (port, qdir))
        os.makedirs(qdir, mode=0o700, exist_ok=True)
        t0 = time.monotonic()
        enqueue(conf, N_FLUSH)
        enq = time.monotonic() - t0
        if queue_count(qdir) != N_FLUSH:
            raise SystemExit("bench: %d entries queued, want %d" % (queue_count(qdir), N_FLUSH))
        small = os.path.join(BENCH, "flush-stdin")
        open(small, "w").close()
        r = must(run([OUTBOX, "-C", conf, "-q"], small, limit=1800), "outbox -q")
        left = queue_count(qdir)
    finally:
        srv.terminate()
        ru = os.wait4(srv.pid, 0)[2]
    text = open(log, errors="replace").read()
    took = text.count("\nE: accepted ")
    most = max([int(m) for m in re.findall(r"^E: session .* max=(\d+)$", text, re.M)] or [0])
    row("7", "%s queued, one `outbox -q`, loopback faultsmtp.py, plain SMTP: wall"
        % "{:,}".format(N_FLUSH), r["wall"], None, "s", "(one run)")
    row("7", "  messages/s", round(N_FLUSH / r["wall"]), None, "n")
    row("7", "  CPU (user + sys)", r["cpu"], None, "s")
    row("7", "  peak RSS", r["rss"], None, "MiB")
    row("7", "  enqueue %s with `outbox -odq`, one process each (not timed above)"
        % "{:,}".format(N_FLUSH), enq, None, "s")
    notes.append("flush of %d: the server took %d messages in %d session(s), at most %d at "
                 "once, using %.1f s of CPU (faultsmtp.py); %d entries left in the queue" %
                 (N_FLUSH, took, text.count("\nE: session "), most,
                  ru.ru_utime + ru.ru_stime, left))


def enqueue(conf, n, width=8):
    """Queues n small messages with `outbox -odq`, width processes at a time
    (each pays for its fsyncs; together they share the journal's)."""
    running = []
    for i in range(n):
        if len(running) == width:
            p = running.pop(0)
            if p.wait(timeout=60) != 0:
                raise SystemExit("bench: outbox -odq exited %d" % p.returncode)
        p = subprocess.Popen([OUTBOX, "-C", conf, "-odq", "-i", "-f",
                              "bench%d@example.test" % i, "bench@example.test"],
                             stdin=subprocess.PIPE)
        p.stdin.write((HEADER % (1000000 + i) + "Message %d of the flush.\n" % i).encode())
        p.stdin.close()
        running.append(p)
    for p in running:
        if p.wait(timeout=60) != 0:
            raise SystemExit("bench: outbox -odq exited %d" % p.returncode)


def sections_1_6():
    say("bench: writing configs and messages in %s" % BENCH)
    qlo = os.path.join(BENCH, "queue-lo")
    qdl = os.path.join(BENCH, "queue-delay")
    ob_lo = ob_conf("outbox-lo.conf", "127.0.0.1", int(PF["PF_SUBMIT"]), "plain", qlo)
    ob_lo_scram = ob_conf("outbox-lo-scram.conf", "127.0.0.1", int(PF["PF_SUBMIT"]), None, qlo)
    ob_dl = ob_conf("outbox-delay.conf", DADDR, DPORT, "plain", qdl)
    ob_dl_scram = ob_conf("outbox-delay-scram.conf", DADDR, DPORT, None, qdl)
    msrc = ms_conf()
    mdir = os.path.join(BENCH, "msgs")
    os.makedirs(mdir, exist_ok=True)
    small = os.path.join(mdir, "small.eml")
    with open(small, "w") as f:
        f.write(HEADER % 0 + "Hello from the outbox bench.\n\nThis is one small message.\n")
    sizes = [("1 KiB", 1 << 10), ("1 MiB", 1 << 20), ("100 MiB", 100 << 20)]
    if GIB:
        sizes.append(("1 GiB", 1 << 30))
    msgs = {label: make_message(os.path.join(mdir, "m%d.eml" % n), n) for label, n in sizes}

    def ob(conf, msg=small, netns=False, extra=(), limit=120.0, rcpt="outbox@example.test"):
        return lambda: must(run([OUTBOX, "-C", conf, *extra, rcpt], msg, netns, limit),
                            "outbox")

    def ms(acct, msg=small, netns=False, limit=120.0):
        return lambda: must(run([MSMTP, "-C", msrc, "-a", acct, "msmtp@example.test"],
                                msg, netns, limit), "msmtp")

    if not ONLY or "7" in ONLY:
        resumption(ob, ob_lo, qlo, ob_dl, qdl, small)
    if (not ONLY or "8" in ONLY) and PFC:
        bulk(small)
    if ONLY and not ONLY & set("123456"):
        return

    # ---- what each tool does on the wire (one run each, from Postfix's log)
    collect()
    for name, f in (("outbox", ob(ob_lo)), ("msmtp", ms("lo"))):
        off = os.path.getsize(PF["PF_LOG"])
        f()
        time.sleep(0.3)
        with open(PF["PF_LOG"], errors="replace") as lf:
            lf.seek(off)
            text = lf.read()
        tls = re.search(r"TLS connection established from [^:]*: (.*)", text)
        cmds = re.search(r"disconnect from \S+ (.*)", text)
        notes.append("%s, as Postfix logged it: %s; commands: %s" %
                     (name, tls.group(1) if tls else "no TLS line",
                      cmds.group(1) if cmds else "?"))

    # ---- 1. one small message, loopback
    say("bench: 1. one small message over loopback, %d runs each" % N_SMALL)
    interleave(2, ob(ob_lo), ms("lo"))
    ra, rb = interleave(N_SMALL, ob(ob_lo), ms("lo"))
    rs, _ = interleave(N_SMALL, ob(ob_lo_scram), lambda: None)
    row("1", "small msg, loopback, STARTTLS + AUTH PLAIN: wall", med(ra, "wall"), med(rb, "wall"), "s", ("le", 0.2))
    row("1", "  CPU (user + sys)", med(ra, "cpu"), med(rb, "cpu"), "s")
    row("1", "  peak RSS", med(ra, "rss"), med(rb, "rss"), "MiB")
    row("1", "  outbox with its default SCRAM-SHA-256 (msmtp: PLAIN): wall", med(rs, "wall"), med(rb, "wall"), "s", "(extra)")
    row("1", "  SCRAM-SHA-256: CPU", med(rs, "cpu"), med(rb, "cpu"), "s", "(extra)")
    lo_wall = (med(ra, "wall"), med(rb, "wall"), med(rs, "wall"))
    lo_runs = ra
    for tool, rr in (("outbox PLAIN", ra), ("outbox SCRAM", rs), ("msmtp", rb)):
        notes.append("%s, loopback, each run's wall in ms, sorted: %s" %
                     (tool, " ".join("%.0f" % (r["wall"] * 1000) for r in sorted(rr, key=lambda r: r["wall"]))))
    collect()

    # ---- 2. one small message over the delayed link
    say("bench: 2. one small message over the %g ms link, %d runs each" % (DELAY_MS, N_SMALL))

    def traced(f):
        def g():
            off = log_size()
            r = f()
            lines = log_since(off)
            r["rts"], r["holds"], r["conns"] = round_trips(lines)
            r["holds_at"] = list(HOLDS_AT)
            r["trace"] = lines
            return r
        return g

    interleave(2, ob(ob_dl, netns=True), ms("delay", netns=True))
    ra, rb = interleave(N_SMALL, traced(ob(ob_dl, netns=True)), traced(ms("delay", netns=True)))
    rs, _ = interleave(N_SMALL, traced(ob(ob_dl_scram, netns=True)), lambda: None)
    row("2", "small msg, %g ms one-way link: round trips" % DELAY_MS, med(ra, "rts"), med(rb, "rts"), "n", ("abs_le", 8))
    row("2", "  ACK holds (a further wait of about an RTT each)", med(ra, "holds"), med(rb, "holds"), "n")
    row("2", "  wall", med(ra, "wall"), med(rb, "wall"), "s", ("le", 0.6))
    row("2", "  (wall − loopback wall) / RTT", (med(ra, "wall") - lo_wall[0]) / RTT,
        (med(rb, "wall") - lo_wall[1]) / RTT, "n", "cross-check")
    row("2", "  outbox SCRAM-SHA-256: round trips", med(rs, "rts"), med(rb, "rts"), "n", "(extra)")
    row("2", "  outbox SCRAM-SHA-256: wall", med(rs, "wall"), med(rb, "wall"), "s", "(extra)")
    for tool, rr in (("outbox", ra), ("msmtp", rb)):
        notes.append("%s over the link, (round trips, ACK holds) seen in its runs: %s; "
                     "ACK holds of its median run: %s" %
                     (tool, sorted(set((r["rts"], r["holds"]) for r in rr)),
                      ", ".join(sorted(rr, key=lambda r: r["wall"])[len(rr) // 2]["holds_at"]) or "none"))
        mid = sorted(rr, key=lambda r: r["wall"])[len(rr) // 2]
        TRACES[tool] = mid["trace"]
        with open(os.path.join(BENCH, "trace.%s.txt" % tool), "w") as f:
            f.write(trace_text(mid["trace"]))
    single = med(ra, "rts") + med(ra, "holds")
    WHY["1"] = ["outbox's loopback runs (ms, sorted): %s. A run ~40 ms slower than the "
                "fastest waited for a delayed ACK: Linux holds back a bare ACK up to 40 ms; "
                "over the link the same wait shows as an ACK hold (%s), where a reply waited "
                "for outbox's ACK of an earlier segment (Nagle's algorithm on the sending side). "
                "Packet trace of a median outbox run over the link below." %
                (" ".join("%.0f" % (r["wall"] * 1000) for r in sorted(lo_runs, key=lambda r: r["wall"])),
                 ", ".join(sorted(ra, key=lambda r: r["wall"])[len(ra) // 2]["holds_at"]) or "none seen")]
    WHY["2"] = ["outbox: %s round trips + %s ACK holds per message, at %s; msmtp: %s + %s. "
                "Packet trace below." % (fmt(med(ra, "rts"), "n"), fmt(med(ra, "holds"), "n"),
                                        ", ".join(sorted(ra, key=lambda r: r["wall"])[len(ra) // 2]["holds_at"]) or "-",
                                        fmt(med(rb, "rts"), "n"), fmt(med(rb, "holds"), "n"))]
    collect()

    # ---- 4. callgrind
    say("bench: 4. callgrind, one small message each")
    cg = {}
    for tool in ("outbox", "msmtp"):
        target = ([OUTBOX, "-C", ob_lo, "outbox@example.test"] if tool == "outbox"
                  else [MSMTP, "-C", msrc, "-a", "lo", "msmtp@example.test"])
        total, cost = callgrind(tool, target, small)
        cg[tool] = total
        CG_COST[tool] = cost
        parts = CG_PARTS[tool]
        if total:
            notes.append("callgrind, %s, inclusive Ir of: %s" % (tool, "; ".join(
                "%s %.1fM (%.0f%%)" % (fn, cost[fn] / 1e6, 100.0 * cost[fn] / total)
                for fn in parts if fn in cost)))
    row("4", "callgrind instructions (Ir), one small message", cg["outbox"], cg["msmtp"], "Ir", ("le", 0.5))
    c = CG_COST.get("outbox", {})
    if cg["outbox"] and cg["msmtp"] and all(k in c for k in ("_dl_start", "tls_context", "tls_start")):
        fixed = c["_dl_start"] + c["tls_context"] + c["tls_start"]
        own = c.get("main", 0) - c.get("smtp_open", 0)
        WHY["4"] = ["Of outbox's %.1fM instructions, %.1fM (%.0f%%) are the dynamic linker "
                    "(_dl_start %.1fM) and OpenSSL: tls_context %.1fM (in it, inclusive costs that may "
                    "nest: SSL_CTX_new %.1fM, OPENSSL_init_ssl %.1fM, SSL_CTX_load_verify_locations "
                    "%.1fM) and tls_start %.1fM (the handshake). That alone is %.2f× msmtp's whole run (%.1fM); "
                    "outbox's own code outside smtp_open is %.2fM. The full profiles are "
                    "callgrind.outbox.inclusive.txt and callgrind.msmtp.inclusive.txt in the "
                    "bench directory." %
                    (cg["outbox"] / 1e6, fixed / 1e6, 100.0 * fixed / cg["outbox"],
                     c["_dl_start"] / 1e6, c["tls_context"] / 1e6, c.get("SSL_CTX_new", 0) / 1e6,
                     c.get("OPENSSL_init_ssl", 0) / 1e6,
                     c.get("SSL_CTX_load_verify_locations", 0) / 1e6, c["tls_start"] / 1e6,
                     fixed / cg["msmtp"], cg["msmtp"] / 1e6, own / 1e6)]
    collect()

    # ---- 3. large messages: throughput and peak RSS
    say("bench: 3. large messages (%s)" % ", ".join(l for l, _ in sizes))
    rss = {}
    for label, n in sizes:
        reps = N_LARGE if n <= (100 << 20) else 1
        limit = 60 + n / (5 << 20)          # at least 5 MiB/s
        ra, rb = interleave(reps, lambda: (collect(), ob(ob_lo, msgs[label], limit=limit)())[1],
                            lambda: (collect(), ms("lo", msgs[label], limit=limit)())[1])
        collect()
        rss[label] = (med(ra, "rss"), med(rb, "rss"))
        if n >= (100 << 20):
            mib = n / float(1 << 20)
            row("3", "%s message: wall" % label, med(ra, "wall"), med(rb, "wall"), "s")
            row("3", "  throughput", mib / med(ra, "wall"), mib / med(rb, "wall"), "MiB/s",
                ("ge", 1.5) if label == "100 MiB" else "(extra)")
            row("3", "  CPU (user + sys)", med(ra, "cpu"), med(rb, "cpu"), "s")
            row("3", "  peak RSS", med(ra, "rss"), med(rb, "rss"), "MiB",
                ("le", 1.0) if label == "100 MiB" else None)
        notes.append("largest message delivered so far: outbox %d bytes, msmtp %d bytes "
                     "(after %s)" % (biggest["outbox"], biggest["msmtp"], label))
    for label, _ in sizes:
        row("3", "peak RSS, %s message" % label, rss[label][0], rss[label][1], "MiB")
    spread = (max(v[0] for v in rss.values()) - min(v[0] for v in rss.values()),
              max(v[1] for v in rss.values()) - min(v[1] for v in rss.values()))
    row("3", "RSS spread (max − min), %s to %s" % (sizes[0][0], sizes[-1][0]),
        spread[0], spread[1], "MiB", ("flat", 1.0))
    WHY["3"] = ["peak RSS (MiB) outbox / msmtp: %s." % "; ".join(
        "%s %.1f / %.1f" % (l, v[0] / 1024.0, v[1] / 1024.0) for l, v in rss.items())]

    # ---- 5. 100 messages
    say("bench: 5. %d messages: separate submissions and one queue run" % BATCH)

    def batch(f):
        def g():
            collect()
            off = log_size()
            wall = cpu = 0.0
            for _ in range(BATCH):
                r = f()
                wall += r["wall"]
                cpu += r["cpu"]
            lines = log_since(off)
            rts, holds, conns = round_trips(lines)
            return {"wall": wall, "cpu": cpu, "rts": rts, "holds": holds, "conns": conns}
        return g

    def queued(conf, qdir, netns):
        def g():
            collect()
            if queue_count(qdir):
                raise SystemExit("bench: queue %s is not empty" % qdir)
            enq = sum(ob(conf, extra=("-odq",))()["wall"] for _ in range(BATCH))
            if queue_count(qdir) != BATCH:
                raise SystemExit("bench: %d entries queued, want %d" % (queue_count(qdir), BATCH))
            off = log_size()
            r = must(run([OUTBOX, "-C", conf, "-q"], small, netns, limit=600), "outbox -q")
            rts, holds, conns = round_trips(log_since(off)) if netns else (0, 0, 0)
            left = queue_count(qdir)
            if left:
                raise SystemExit("bench: outbox -q left %d entries" % left)
            r.update(enq=enq, rts=rts, holds=holds, conns=conns)
            return r
        return g

    for where, netns, conf, qdir, acct, reps in (
            ("loopback", False, ob_lo, qlo, "lo", N_BATCH),
            ("%g ms link" % DELAY_MS, True, ob_dl, qdl, "delay", N_BATCH_DELAY)):
        ra, rb = interleave(reps, batch(ob(conf, netns=netns)), batch(ms(acct, netns=netns)))
        rq = [queued(conf, qdir, netns)() for _ in range(reps)]
        collect()
        row("5", "%d separate submissions, %s: wall" % (BATCH, where), med(ra, "wall"), med(rb, "wall"), "s",
            "(runs: %d)" % reps)
        row("5", "%d queued, one `outbox -q`, %s: wall (vs msmtp %d separate)" % (BATCH, where, BATCH),
            med(rq, "wall"), med(rb, "wall"), "s",
            ("le", 0.05) if netns else "(runs: %d)" % reps)
        if netns:
            q = sorted(rq, key=lambda r: r["wall"])[len(rq) // 2]
            WHY["5"] = ["`outbox -q` over the link: %d round trips + %d ACK holds for %d messages "
                        "in %d session(s); one submission takes %s round trips + holds, so after the session's setup "
                        "each message costs %.2f round trips: each transaction (MAIL, RCPT, BDAT) "
                        "waits for its replies before the next one goes out. %.2f s / %.3f s RTT "
                        "= %.0f RTTs." % (q["rts"], q["holds"], BATCH, q["conns"], fmt(single, "n"),
                                           (q["rts"] + q["holds"] - (single - 1)) / BATCH,
                                           q["wall"], RTT, q["wall"] / RTT)]
            row("5", "  round trips + ACK holds: %d separate" % BATCH, med(ra, "rts") + med(ra, "holds"),
                med(rb, "rts") + med(rb, "holds"), "n")
            row("5", "  round trips + ACK holds: `outbox -q` (vs msmtp %d separate)" % BATCH,
                med(rq, "rts") + med(rq, "holds"), med(rb, "rts") + med(rb, "holds"), "n")
        row("5", "  enqueue %d with `outbox -odq` (no network; not in the ratio)" % BATCH, med(rq, "enq"), None, "s")

    # ---- 6. -odb over the delayed link
    say("bench: 6. -odb caller wait over the %g ms link" % DELAY_MS)

    def odb():
        r = ob(ob_dl, netns=True, extra=("-odb",))()
        end = time.monotonic() + 30
        while queue_count(qdl) and time.monotonic() < end:  # the child's delivery
            time.sleep(0.02)
        return r

    collect()
    interleave(2, odb, ms("delay", netns=True))
    ra, rb = interleave(N_SMALL, odb, ms("delay", netns=True))
    pf_idle()
    row("6", "`-odb` caller wait, %g ms link (msmtp: synchronous send)" % DELAY_MS,
        med(ra, "wall"), med(rb, "wall"), "s", ("le", 0.05))
    WHY["6"] = ["outbox -odb runs (ms, sorted): %s." % " ".join(
        "%.1f" % (r["wall"] * 1000) for r in sorted(ra, key=lambda r: r["wall"]))]
    collect()
    notes.append("messages delivered into the Maildirs: outbox %d, msmtp %d "
                 "(warm-ups included)" % (delivered["outbox"], delivered["msmtp"]))


# ---------------------------------------------------------------- 7. resumption

def drop_sessions(qdir):
    for f in os.listdir(qdir):
        if f.startswith("tls-"):
            os.unlink(os.path.join(qdir, f))


def bytes_in(lines):
    """TCP payload bytes from the server to the client in a packet log slice."""
    return sum(n for t, d, sp, dp, fl, n in lines if d == "s")


def resumption(ob, ob_lo, qlo, ob_dl, qdl, small):
    """7: one small message with a cold TLS session cache and with a
    resumed session (the second of two runs): callgrind, wall, bytes."""
    say("bench: 7. cold vs resumed TLS session, %d runs each" % N_SMALL)

    def cold(conf, qdir, netns=False):
        def g():
            drop_sessions(qdir)
            return ob(conf, netns=netns)()
        return g

    def warm(conf, netns=False):
        def g():
            ob(conf, netns=netns)()     # the first of two: leaves a session
            return ob(conf, netns=netns)()
        return g

    def linked(f):
        def g():
            off = log_size()
            r = f()
            r["bytes"] = bytes_in(log_since(off))
            return r
        return g

    collect()
    rc, rw = interleave(N_SMALL, cold(ob_lo, qlo), warm(ob_lo))
    def second(conf):
        def g():
            ob(conf, netns=True)()      # the first of two
            log_since(log_size())       # until the link is quiet
            return linked(ob(conf, netns=True))()
        return g

    lc, lw = interleave(N_SMALL, linked(cold(ob_dl, qdl, True)), second(ob_dl))
    drop_sessions(qlo)
    icold, ccold = callgrind("outbox-cold", [OUTBOX, "-C", ob_lo, "outbox@example.test"], small)
    iwarm, cwarm = callgrind("outbox-resumed", [OUTBOX, "-C", ob_lo, "outbox@example.test"], small)
    # The system store, without tls_ca_file: the hashed directory that
    # outbox now reads vs the whole bundle that OpenSSL's default paths load.
    certs = os.path.join(BENCH, "certs-hashed")
    os.makedirs(certs, exist_ok=True)
    subprocess.run(["cp", PF["PF_CA"], certs], check=True)
    subprocess.run(["openssl", "rehash", certs], check=True)
    bundle = os.path.join(BENCH, "bundle.pem")
    with open(bundle, "w") as f:
        f.write(open("/etc/ssl/certs/ca-certificates.crt").read() + open(PF["PF_CA"]).read())
    ob_sys = ob_conf("outbox-lo-sysstore.conf", "127.0.0.1", int(PF["PF_SUBMIT"]), "plain",
                     qlo, ca=False)
    drop_sessions(qlo)
    idir, _ = callgrind("outbox-hashed-dir", [OUTBOX, "-C", ob_sys, "outbox@example.test"],
                        small, ["SSL_CERT_DIR=" + certs])
    drop_sessions(qlo)
    ibundle, cbundle = callgrind("outbox-bundle", [OUTBOX, "-C", ob_sys, "outbox@example.test"],
                                 small, ["SSL_CERT_DIR=/nonexistent", "SSL_CERT_FILE=" + bundle])
    drop_sessions(qlo)
    T = "(columns: resumed / cold)"
    row("7", "send with a resumed TLS session vs a cold one %s: callgrind Ir" % T,
        iwarm, icold, "Ir", ("le", 0.8))
    row("7", "  wall, loopback", med(rw, "wall"), med(rc, "wall"), "s")
    row("7", "  CPU (user + sys), loopback", med(rw, "cpu"), med(rc, "cpu"), "s")
    row("7", "  wall, %g ms link" % DELAY_MS, med(lw, "wall"), med(lc, "wall"), "s")
    row("7", "  bytes the client received (TCP payload)", med(lw, "bytes"), med(lc, "bytes"), "n")
    row("7", "cold send, no tls_ca_file (columns: hashed directory / whole bundle, "
        "OpenSSL's default paths): callgrind Ir", idir, ibundle, "Ir")
    parts = ["_dl_start", "tls_context", "OPENSSL_init_ssl", "SSL_CTX_new", "ca_read", "ca_verify",
             "SSL_CTX_load_verify_locations", "SSL_CTX_load_verify_file", "tls_start",
             "SSL_connect", "d2i_SSL_SESSION", "cache_save", "OSSL_DECODER_CTX_new_for_pkey",
             "auth_login", "smtp_send"]
    for tag, total, cost in (("cold", icold, ccold), ("resumed", iwarm, cwarm)):
        notes.append("callgrind, outbox %s session (callgrind.outbox-%s.inclusive.txt), "
                     "%.1fM Ir; inclusive Ir of: %s" % (tag, tag, total / 1e6, "; ".join(
                         "%s %.2fM" % (fn, cost[fn] / 1e6) for fn in parts if fn in cost)))
    notes.append("callgrind, the system store as a whole bundle (%d certificates in %s): "
                 "%.1fM Ir, of which loading it %.1fM; as the hashed directory: %.1fM Ir" %
                 (open(bundle).read().count("BEGIN CERTIFICATE"), bundle, ibundle / 1e6,
                  cbundle.get("SSL_CTX_load_verify_file", 0) / 1e6, idir / 1e6))
    fixed = sum(cwarm.get(k, 0) for k in ("_dl_start", "SSL_CTX_new", "OPENSSL_init_ssl"))
    WHY["7"] = ["A resumed send (%.1fM) skips the server's certificate, its verification and "
                "the CA file's parse: tls_start %.2fM cold vs %.2fM resumed (SSL_connect %.2fM "
                "vs %.2fM), tls_context %.2fM vs %.2fM. What both pay is %.1fM (%.0f%% of the "
                "resumed run): the dynamic loader %.1fM, SSL_CTX_new %.1fM and OPENSSL_init_ssl "
                "%.1fM (OpenSSL 3.0's floor); and resuming costs d2i_SSL_SESSION %.2fM: the "
                "cached peer certificate's public key goes through OpenSSL 3.0's decoder setup "
                "(OSSL_DECODER_CTX_new_for_pkey), which a cold run pays for the server's "
                "certificate instead." %
                (iwarm / 1e6, ccold.get("tls_start", 0) / 1e6, cwarm.get("tls_start", 0) / 1e6,
                 ccold.get("SSL_connect", 0) / 1e6, cwarm.get("SSL_connect", 0) / 1e6,
                 ccold.get("tls_context", 0) / 1e6, cwarm.get("tls_context", 0) / 1e6,
                 fixed / 1e6, 100.0 * fixed / iwarm, cwarm.get("_dl_start", 0) / 1e6,
                 cwarm.get("SSL_CTX_new", 0) / 1e6, cwarm.get("OPENSSL_init_ssl", 0) / 1e6,
                 cwarm.get("d2i_SSL_SESSION", 0) / 1e6)]
    collect()


# ---------------------------------------------------------------- 8. bulk vs Postfix

PFC_QDIRS = ("maildrop", "incoming", "active", "deferred", "hold")


def pfc_count(dirs=PFC_QDIRS):
    return sum(len(files) for d in dirs
               for _, _, files in os.walk(os.path.join(PFC, "queue", d)))


def maildir_count(lp):
    d = os.path.join(PF["PF_MAIL"], lp, "new")
    return len(os.listdir(d)) if os.path.isdir(d) else 0


def pfc_cpu():
    """CPU seconds of the null client's processes so far: each live one's
    own, plus what its master collected from children that exited."""
    tick = float(os.sysconf("SC_CLK_TCK"))
    mark = ("MAIL_CONFIG=%s/etc" % PFC).encode()
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if mark not in open("/proc/%s/environ" % pid, "rb").read().split(b"\0"):
                continue
            st = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(st[11]) + int(st[12])      # utime, stime
        if open("/proc/%s/comm" % pid).read().strip() == "master":
            total += int(st[13]) + int(st[14])  # cutime, cstime
    return total / tick


def wait_until(cond, limit):
    end = time.monotonic() + limit
    while not cond():
        if time.monotonic() > end:
            raise SystemExit("bench: timed out after %.0f s" % limit)
        time.sleep(0.01)
    return time.monotonic()


def pfc_main_cf(setting):
    subprocess.run(["postconf", "-c", PFC + "/etc", "-e", setting], check=True)
    subprocess.run(["postfix", "-c", PFC + "/etc", "reload"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bulk_outbox(conf, qdir, small):
    collect()
    for _ in range(BULK):
        must(run([OUTBOX, "-C", conf, "-odq", "bulkoutbox@example.test"], small), "outbox -odq")
    if queue_count(qdir) != BULK:
        raise SystemExit("bench: %d entries queued, want %d" % (queue_count(qdir), BULK))
    t0 = time.monotonic()
    p = subprocess.Popen([SPAWN, "-i", small, "-e", os.path.join(BENCH, "last.err"),
                          "-t", "900", "--", OUTBOX, "-C", conf, "-q"],
                         stdout=subprocess.PIPE, text=True)
    server = wait_until(lambda: maildir_count("bulkoutbox") >= BULK, 900) - t0
    out = p.communicate(timeout=900)[0].split()
    r = must({"wall": float(out[0]), "cpu": float(out[1]), "rc": int(out[3])}, "outbox -q")
    if queue_count(qdir):
        raise SystemExit("bench: outbox -q left %d entries" % queue_count(qdir))
    return {"client": r["wall"], "server": max(server, 0.0), "cpu": r["cpu"]}


def bulk_postfix(small):
    collect()
    sm = ["/usr/sbin/sendmail", "-C", PFC + "/etc", "-f", "bench@example.test",
          "nullclient@example.test"]
    for _ in range(BULK):
        must(run(sm, small), "Postfix sendmail")
    wait_until(lambda: pfc_count(("deferred",)) >= BULK and
               pfc_count(("maildrop", "incoming", "active")) == 0, 300)
    cpu0 = pfc_cpu()
    t0 = time.monotonic()
    pfc_main_cf("defer_transports =")
    subprocess.run(["postqueue", "-c", PFC + "/etc", "-f"], check=True)
    server = None
    while True:
        if server is None and maildir_count("nullclient") >= BULK:
            server = time.monotonic() - t0
        if pfc_count() == 0:
            client = time.monotonic() - t0
            break
        if time.monotonic() - t0 > 900:
            raise SystemExit("bench: the null client did not empty its queue in 900 s")
        time.sleep(0.01)
    if server is None:
        server = wait_until(lambda: maildir_count("nullclient") >= BULK, 300) - t0
    cpu = pfc_cpu() - cpu0
    pfc_main_cf("defer_transports = smtp")
    return {"client": client, "server": server, "cpu": cpu}


def bulk(small):
    """8: the same BULK messages queued in outbox and in a Postfix null
    client, each flushed: until the client is done, until the server has
    them all, and the client's CPU."""
    say("bench: 8. %d queued messages: outbox -q vs a Postfix null client" % BULK)
    qb = os.path.join(BENCH, "queue-bulk")
    conf = ob_conf("outbox-bulk.conf", "127.0.0.1", int(PF["PF_SUBMIT"]), "plain", qb)
    ro, rp = interleave(N_BULK, lambda: bulk_outbox(conf, qb, small), lambda: bulk_postfix(small))
    T = "(columns: outbox / Postfix null client)"
    row("8", "%d queued, flushed %s: client done" % (BULK, T),
        med(ro, "client"), med(rp, "client"), "s", ("le", 1.0))
    row("8", "  the server has them all", med(ro, "server"), med(rp, "server"), "s", ("le", 1.0))
    row("8", "  client CPU (user + sys)", med(ro, "cpu"), med(rp, "cpu"), "s")
    WHY["8"] = ["outbox -q sends one message after another over one session; Postfix "
                "runs up to 20 smtp processes in parallel, reusing TLS connections "
                "(tlsproxy). Runs: outbox %s; Postfix %s." %
                ("; ".join("client %.2f s, server %.2f s, CPU %.2f s" %
                           (r["client"], r["server"], r["cpu"]) for r in ro),
                 "; ".join("client %.2f s, server %.2f s, CPU %.2f s" %
                           (r["client"], r["server"], r["cpu"]) for r in rp))]
    notes.append("bulk row: Postfix %s null client (bench/nullclient.sh): relayhost "
                 "[127.0.0.1]:%s, smtp_tls_security_level = secure, AUTH PLAIN, "
                 "smtp_tls_connection_reuse = yes, smtp_tls_session_cache_database = btree; "
                 "its CPU is every process of that instance (master, qmgr, smtp, tlsproxy, "
                 "...) from /proc; outbox's is `outbox -q` from wait4()" %
                 (subprocess.run(["postconf", "-h", "-c", PFC + "/etc", "mail_version"],
                                 capture_output=True, text=True).stdout.strip(), PF["PF_SUBMIT"]))
    collect()


def report(runtime, partial=False):
    md = ["# outbox vs msmtp: bench results", ""]
    if partial:
        md += ["**Partial run: stopped at the time limit.**", ""]
    if MACHINE and os.path.exists(MACHINE):
        md += [open(MACHINE).read().rstrip(), ""]
    if ONLY == {"7"}:
        md += ["Section 7 only (BENCH_ONLY=7): one run.", ""]
    else:
        md += ["Medians of %d runs (small messages), %d (100 MiB), 1 (1 GiB); "
               "%d-message batches: %d runs on loopback, %d over the link; "
               "one flush of %d queued messages. "
               "Runs of the two tools alternate. Bench run took %.0f s." %
               (N_SMALL, N_LARGE, BATCH, N_BATCH, N_BATCH_DELAY, N_FLUSH, runtime), ""]
    md += [table(), ""]
    if MISSED:
        md += ["## Targets missed, and what the measurements show", ""]
        for sec in sorted(MISSED):
            for w in WHY.get(sec, ["(no diagnosis recorded)"]):
                md += ["- (%s) %s" % (sec, w)]
        md += [""]
    if "outbox" in TRACES:
        md += ["## Packet trace: outbox, one small message over the %g ms link (median run)" % DELAY_MS,
               "", "Time at the delayer, when the packet arrived there (it leaves %g ms later)." % DELAY_MS,
               "", "```", trace_text(TRACES["outbox"]).rstrip(), "```", ""]
    md += ["Notes:", ""] + ["- " + n for n in notes] + [""]
    text = "\n".join(md)
    print(text)
    if RESULTS:
        with open(RESULTS, "w") as f:
            f.write(text)


if __name__ == "__main__":
    t0 = time.monotonic()
    try:
        main()
        report(time.monotonic() - t0)
    except OutOfTime:
        say("bench: BENCH_MAX_SECONDS reached; the table is partial")
        report(time.monotonic() - t0, partial=True)
        sys.exit(1)
