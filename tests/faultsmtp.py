#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""faultsmtp: a small fault-injecting SMTP server for outbox's tests.

Python 3 standard library only. It serves one connection at a time on
127.0.0.1 and records everything that crosses the wire.

Usage:
    python3 tests/faultsmtp.py --port-file F --log L [options]

Options:
    --port-file F      bind 127.0.0.1 port 0 and write the chosen port to F
                       (written atomically once the socket listens: a test may
                       poll for F to appear)
    --log L            transcript (see "Log format"); L.data, L.raw, ... beside it
    --scenario NAME    inject one fault (see --list); default: healthy server
    --ext LIST         comma-separated EHLO keywords, "=" stands for a space:
                       PIPELINING,CHUNKING,8BITMIME,SIZE=1000,DSN,SMTPUTF8,
                       STARTTLS,AUTH=PLAIN LOGIN,ENHANCEDSTATUSCODES
                       An empty string advertises nothing but the hostname.
                       Default: PIPELINING, CHUNKING, 8BITMIME, SIZE=10240000,
                       DSN, ENHANCEDSTATUSCODES, AUTH=PLAIN LOGIN, plus STARTTLS
                       when --cert is given (a scenario may change the default,
                       e.g. the data-*/dot-* ones drop CHUNKING so DATA is used).
                       STARTTLS is never advertised once TLS is up.
    --cert C --key K   server certificate and key (PEM) for STARTTLS / implicit
    --implicit-tls     TLS from the first byte (port 465 style)
    --once             exit after the first session
    --max-time S       the whole process exits after S seconds (default 120:
                       a safety net so a forgotten server never lingers)
    --io-timeout S     per socket read/write wait (default 30)
    --reply VERB=TEXT  override the reply to VERB (MAIL, RCPT, DATA, BDAT, DOT,
                       EHLO, HELO, STARTTLS, AUTH, RSET, NOOP, QUIT, GREETING);
                       TEXT may hold "\\n" for a multi-line reply, or be one of
                       the actions "drop" (close without a reply) and "stall"
                       (never reply; keep reading until the client goes).
                       Repeatable; applied on top of --scenario. A GREETING
                       other than 220 refuses every command but QUIT.
    --reply-once VERB=TEXT  as --reply, for the first VERB this server sees
                       only (a 421 at MAIL in the first session, then a
                       healthy server); VERB DOT is the end of data.
                       Repeatable; not for BDAT
    --read-after-421 S after a 421 (any, from --reply, --reply-once or
                       --eod-fault), keep reading for S seconds and log what
                       the client still sends as C: lines (a client must send
                       nothing), then close; what had arrived before the 421
                       went (pipelined) is logged as P: lines
    --stall-at N       the first session stops reading once it has received
    --stall-read S       N octets (commands and message), for S seconds, then
                       reads on (a body that stalls mid-write); with
                       --rcvbuf the client's writes block at once
    --rcvbuf N         SO_RCVBUF of the listening socket (small TCP windows)
    --port N           bind this port instead of 0 (465 inside a network
                       namespace of the test's own)
    --list             print the scenario names and exit
    --concurrent       serve every connection at once, each in its own thread
                       (as real servers do); each session's transcript is
                       written to L as one block when it ends; E: and
                       VIOLATION: lines at once (see "Events")
    --rcpt-refuse S    550 5.1.1 to every RCPT whose address contains S
                       (repeatable)
    --rcpt-max N       452 4.5.3 to every RCPT after N accepted in a
                       transaction (Exim's recipients_max)
    --eod-fault M=R    the first end of data of the message whose Message-ID
                       contains M gets R (a reply text, "drop", "stall" or
                       "cut"); its later tries are answered normally; M "#N"
                       stands for the server's N-th end of data (repeatable)
    --eod-delay S      wait S seconds before each reply to an end of data
    --no-records       no L.raw.N / L.data.N files (a bench's many messages);
                       the E: lines still say everything
    --seed N           seeds the chaos below; each draw is made from the seed,
                       what it is about (the Message-ID, or sender and
                       recipient) and the how-manieth try of that it is, so
                       a run is the same whatever order sessions interleave
    --p-eod-451 P      each end of data: 451 with probability P
    --p-eod-554 P        ... 554
    --p-eod-drop P       ... the connection dropped after the dot (the reply
                         never sent: the one case a copy may arrive twice)
    --p-eod-cut P        ... dropped before the dot (the server never has it)
    --p-eod-stall P      ... never a reply, reading until the client goes
    --p-rcpt-451 P     each RCPT: 451 with probability P
    --p-rcpt-550 P       ... 550
    --tally L          print, for the E: lines of L, one line per Message-ID
                       and recipient (see "Events") and exit
    --oauth2-token-file F  AUTH XOAUTH2 and OAUTHBEARER accept user
                       alice@example.test with a token listed in F (one a
                       line, re-read at each AUTH; tests/tokensrv.py writes
                       it); any other token gets the 334 error challenge,
                       then 535 5.7.8

Accounts: AUTH PLAIN and AUTH LOGIN (with or without initial response) accept
user "alice" with password "secret"; anything else gets 535 5.7.8.

Log format (one line per event, appended as it happens, flushed at once):
    # ...              session start/end notes
    S: <line>          a reply line sent (CRLF stripped; overlong lines are
                       abbreviated in the log, never on the wire)
    C: <line>          a command line received (CRLF stripped, bytes outside
                       printable ASCII shown as \\xNN)
    P: <line>          --read-after-421: a line received before the 421 went
    B: <n> V1 V2 ...   one per recv() that completed at least one command: how
                       many commands and their verbs, e.g. "B: 3 MAIL RCPT BDAT"
                       (the pipelining check); written when the server next
                       reads, i.e. after that batch's C:/S: lines
    D: ...             message data events ("D: end of data, 123 bytes",
                       "D: BDAT chunk 50 bytes")
    T: ...             TLS events
    W: ...             protocol warnings about the client (bare LF in data,
                       pipelining without PIPELINING, plaintext pipelined after
                       STARTTLS, parameters that were not advertised, ...)
    X: ...             how the session ended
    VIOLATION: ...     strict mode: the client broke the rule (see "strict")
    E: ...             events, see "Events"

Message records, per completed transaction N (1, 2, ...):
    L.raw.N    the exact bytes received: for DATA everything after the 354 up
               to and including the final ".\\r\\n" (dot-stuffing intact); for
               BDAT the chunks concatenated
    L.data.N   the message as the server sees it (DATA: dot-unstuffed, without
               the final ".\\r\\n"; BDAT: same as raw)
    L.raw, L.data   copies of the latest transaction's records (under
               --concurrent: of whichever session wrote last; read L.data.N,
               N from the E: lines, instead)
    L.partial  bytes of a DATA/BDAT transfer that was cut off by a fault

Events (E: lines, written to L at once, also under --concurrent), one per
fact a test counts; every one names the session (s=N), and the message
(mid=, the Message-ID of the header, without <>; "-" when there is none):
    E: session s=N active=A max=M      a connection: A open now, M at most so far
    E: session-end s=N active=A max=M
    E: eod n=T s=N mid=X from=F rcpts=R1,R2   the server has the whole message
    E: accepted n=T s=N mid=X from=F rcpts=...   250 sent to the end of data:
                                       delivered, under envelope sender F
    E: refused n=T s=N mid=X code=C    a non-2xx reply to the end of data
    E: unreplied n=T s=N mid=X how=drop|stall|violation   the dot came, no
                                       reply ever went (the server may have
                                       delivered it)
    E: cut s=N mid=X                   dropped before the dot (not delivered)
    E: unconfirmed n=T s=N mid=X       the session ended with no command after
                                       that 250: the client may never have read
                                       it (a killed client). Any later command
                                       counts as having read it, which holds
                                       for a client that starts the next
                                       transaction only after the reply.
    E: rcpt s=N from=F to=A code=C     a refused RCPT (limit, --rcpt-refuse, chaos)
    E: mail s=N from=F code=C          a refused MAIL
    E: violation s=N ...               strict mode: see "strict" below
--tally prints "MID RCPT accepted=N unreplied=N unconfirmed=N refused5=N
senders=F1,F2" per (Message-ID, recipient) pair: the copies the server took
(and the senders it took them under), the copies whose reply it never sent or
that were never confirmed read, and the permanent refusals (550 to that RCPT
from that sender, 5xx at that end of data); then "rcpt-refused F A" per
sender and recipient that got a 5xx to RCPT (such a pair never reaches an
end of data, so it has no Message-ID: a test maps the sender to its message).

Modes of real servers that break pipelined batches (scenario keys):
    exim     a transaction whose only RCPT was refused stays open: its BDAT
             (or DATA) gets 503 "Valid RCPT command must precede BDAT"; the
             next MAIL gets "503 5.5.1 sender already given", while that
             message's RCPTs and BDAT get 250: it is accepted under the
             previous message's sender (Exim 4.96)
    strict   a transaction command (MAIL, RCPT, DATA, BDAT) that arrives
             before the reply to the previous end of data was sent is logged
             as "VIOLATION: transaction pipelined ..." and the connection is
             dropped before that end of data is answered (Dovecot 2.3
             submission asserts and dies there, the message delivered)

Scenarios: see SCENARIOS below (also --list). Adding one is a dict entry:
"ext" (default EHLO keywords), "greeting" and per-verb replies ("MAIL",
"RCPT", "DOT" = end of data, ...) whose values are reply texts, the actions
"drop"/"stall", or other action names handled in Session (e.g.
"inject-after-220"); "mode" is "split", "joined" or "trickle" (one byte
a second) for reply delivery.
A scenario's RCPT or MAIL value may also be a function (sess, arg) that
returns a reply text/action, or None for normal processing.
The action "delay" (DOT: 0.5 s, greeting: 3 s) answers normally, but late.
"""

import argparse
import base64
import json
import os
import random
import re
import select
import signal
import socket
import ssl
import sys
import threading
import time

HOSTNAME = "faultsmtp.test"
DEFAULT_EXT = ["PIPELINING", "CHUNKING", "8BITMIME", "SIZE=10240000", "DSN",
               "ENHANCEDSTATUSCODES", "AUTH=PLAIN LOGIN"]
NO_CHUNKING = [e for e in DEFAULT_EXT if e != "CHUNKING"]


def rcpt_partial(sess, arg):
    """First recipient 250, every later one 550 5.1.1."""
    if sess.nrcpt_seen == 1:
        return None  # normal processing
    return "550 5.1.1 <%s>: faultsmtp says no such user here" % addr_of(arg)


def rcpt_mixed_451(sess, arg):
    """First recipient 250, every later one 451 4.3.0 (a temporary refusal)."""
    if sess.nrcpt_seen == 1:
        return None  # normal processing
    return "451 4.3.0 <%s>: faultsmtp says try this one later" % addr_of(arg)


def mail_451_but_null(sess, arg):
    """MAIL 451 for every sender except the null sender <> (bounces go)."""
    if addr_of(arg[5:].strip() if arg.upper().startswith("FROM:") else arg) == "":
        return None  # normal processing
    return "451 4.3.0 faultsmtp: try again later (bounces welcome)"


def mail_null_550(sess, arg):
    """MAIL 550 for the null sender <> only (a smarthost that refuses
    bounces for good: Microsoft 365's SendAsDenied, a spent daily quota)."""
    if addr_of(arg[5:].strip() if arg.upper().startswith("FROM:") else arg) == "":
        return "550 5.7.60 faultsmtp: null sender refused"
    return None  # normal processing


SCENARIOS = {
    "healthy": {},
    "greeting-421": {"greeting": "421 4.3.2 faultsmtp: service not available"},
    "greeting-554": {"greeting": "554 5.3.2 faultsmtp: no SMTP service here"},
    "drop-before-greeting": {"greeting": "drop"},
    "stall-greeting": {"greeting": "stall"},
    "ehlo-5xx": {"EHLO": "502 5.5.1 faultsmtp: EHLO not implemented"},
    "ehlo-421": {"EHLO": "421 4.3.2 faultsmtp: shutting down"},
    "no-starttls": {"no_starttls": True},
    "starttls-454": {"STARTTLS": "454 4.7.0 faultsmtp: TLS not available"},
    "starttls-inject": {"STARTTLS": "inject-after-220"},
    "tls-fail": {"STARTTLS": "garbage-after-hello"},
    "tls-close": {"STARTTLS": "close-after-hello"},
    "auth-535": {"AUTH": "535 5.7.8 faultsmtp: authentication failed"},
    "auth-454": {"AUTH": "454 4.7.0 faultsmtp: temporary authentication failure"},
    "mail-421": {"MAIL": "421 4.3.2 faultsmtp: closing"},
    "mail-451": {"MAIL": "451 4.3.0 faultsmtp: try again later"},
    "mail-550": {"MAIL": "550 5.7.1 faultsmtp: sender refused"},
    "mail-552": {"MAIL": "552 5.3.4 faultsmtp: message too big for system"},
    "rcpt-all-550": {"RCPT": "550 5.1.1 faultsmtp: no such user here"},
    "rcpt-partial": {"RCPT": rcpt_partial},
    "rcpt-451": {"RCPT": "451 4.3.0 faultsmtp: recipient temporarily unavailable"},
    "rcpt-mixed-451": {"RCPT": rcpt_mixed_451},
    "mail-451-but-null": {"MAIL": mail_451_but_null},
    "mail-null-550": {"MAIL": mail_null_550},
    "slow": {"DOT": "delay"},
    "slow-greeting": {"greeting": "delay"},
    "data-354-then-drop": {"ext": NO_CHUNKING, "DATA": "354-then-drop"},
    "data-554": {"ext": NO_CHUNKING, "DATA": "554 5.3.0 faultsmtp: no DATA for you"},
    "data-451": {"ext": NO_CHUNKING, "DATA": "451 4.3.0 faultsmtp: try DATA later"},
    "dot-451": {"ext": NO_CHUNKING, "DOT": "451 4.3.0 faultsmtp: queue write error"},
    "dot-554": {"ext": NO_CHUNKING, "DOT": "554 5.6.0 faultsmtp: content rejected"},
    "dot-drop": {"ext": NO_CHUNKING, "DOT": "drop"},
    "dot-stall": {"ext": NO_CHUNKING, "DOT": "stall"},
    "bdat-552": {"BDAT": "552 5.3.4 faultsmtp: chunk too big"},
    "bdat-drop": {"BDAT": "drop-mid-chunk"},
    "reply-split": {"mode": "split"},
    "reply-joined": {"mode": "joined"},
    "trickle": {"mode": "trickle"},
    "overlong-reply": {"EHLO": "250-" + HOSTNAME + " " + "x" * 100000 + "\n250 OK"},
    "endless-reply": {"EHLO": "endless"},
    "bad-reply": {"EHLO": "hello"},
    "code-mismatch": {"EHLO": "250-" + HOSTNAME + "\n251 mismatched code"},
    "nul-in-reply": {"EHLO": "250-" + HOSTNAME + "\n250 8BIT\x00MIME"},
    "exim": {"exim": True},
    "strict": {"strict": True},
}

# Chaos at the end of data: option name, what happens.
EOD_CHAOS = [("p_eod_451", "451 4.3.0 faultsmtp: chaos says try again later"),
             ("p_eod_554", "554 5.6.0 faultsmtp: chaos says content rejected"),
             ("p_eod_drop", "drop"), ("p_eod_cut", "cut"), ("p_eod_stall", "stall")]
RCPT_CHAOS = [("p_rcpt_451", "451 4.3.0 faultsmtp: chaos says recipient later"),
              ("p_rcpt_550", "550 5.1.1 faultsmtp: chaos says no such user")]
TX_VERBS = ("MAIL", "RCPT", "DATA", "BDAT")


def mid_of(data):
    """The Message-ID of a message's header block, without <>; "-" if none."""
    head = re.split(rb"\r?\n\r?\n", data, maxsplit=1)[0]
    m = re.search(rb"(?im)^message-id:[ \t]*<([^>\r\n]+)>", head)
    return printable(m.group(1)).replace(" ", "_") if m else "-"


def addr_of(arg):
    """The address inside <...> of a MAIL/RCPT argument."""
    i, j = arg.find("<"), arg.find(">")
    if i >= 0 and j > i:
        return arg[i + 1:j]
    return arg.split(":", 1)[-1].strip()


def printable(b):
    out = []
    for c in b:
        if 32 <= c < 127 and c != 0x5c:
            out.append(chr(c))
        elif c == 0x5c:
            out.append("\\\\")
        else:
            out.append("\\x%02x" % c)
    return "".join(out)


class Closed(Exception):
    """The session is over (client went, or the server dropped it)."""


class _Cancel(Exception):
    """The client cancelled an AUTH exchange (already answered)."""


def log_line(tag, text):
    if len(text) > 300:
        text = text[:200] + "...(%d chars)" % len(text)
    return "%s: %s\n" % (tag, text) if tag else text + "\n"


class Log:
    def __init__(self, path, records=True):
        self.path = path
        self.f = open(path, "w", encoding="utf-8")
        self.lock = threading.Lock()
        self.records = records

    def put(self, text):
        with self.lock:
            self.f.write(text)
            self.f.flush()

    def w(self, tag, text):
        self.put(log_line(tag, text))

    def note(self, text):
        self.put("# %s\n" % text)

    live = w

    def event(self, text):
        self.put("E: %s\n" % text)

    def record(self, suffix, data):
        if not self.records:
            return
        with open(self.path + suffix, "wb") as f:
            f.write(data)


class SessionLog:
    """--concurrent: one session's transcript, written to the Log as one
    block when the session ends (so readers see sessions one after the
    other); events and records go to the Log at once."""

    def __init__(self, log):
        self.main = log
        self.lines = []

    def w(self, tag, text):
        self.lines.append(log_line(tag, text))

    def note(self, text):
        self.lines.append("# %s\n" % text)

    def event(self, text):
        self.main.event(text)

    def live(self, tag, text):
        """A line that must not wait for the end of the session."""
        self.main.w(tag, text)

    def record(self, suffix, data):
        self.main.record(suffix, data)

    def close(self):
        self.main.put("".join(self.lines))
        self.lines = []


class Conn:
    """A socket with a read buffer that counts recv() calls."""

    def __init__(self, sock, log, io_timeout, mode):
        self.sock = sock
        self.log = log
        self.buf = b""
        self.recv_no = 0
        self.mode = mode
        self.out = []
        self.before_recv = None
        self.nread = 0
        self.stall = None   # (octets, seconds): stop reading once, there
        sock.settimeout(io_timeout)

    def recv_more(self):
        self.flush()
        if self.before_recv:
            self.before_recv()
        want = 65536
        if self.stall and self.nread >= self.stall[0]:
            self.log.w("X", "server stops reading for %g s after %d octets"
                       " (fault)" % (self.stall[1], self.nread))
            time.sleep(self.stall[1])
            self.stall = None
        elif self.stall:
            want = min(want, self.stall[0] - self.nread)
        try:
            d = self.sock.recv(want)
        except (socket.timeout, ssl.SSLError, OSError) as e:
            self.log.w("X", "read error: %s" % e)
            raise Closed()
        if not d:
            raise Closed()
        self.recv_no += 1
        self.nread += len(d)
        self.buf += d

    def readline(self):
        """A line with its terminator (LF-ended), tagged by the recv that completed it."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return line
            if len(self.buf) > 1 << 20:
                self.log.w("W", "command line longer than 1 MiB")
                raise Closed()
            self.recv_more()

    def readexact(self, n):
        while len(self.buf) < n:
            self.recv_more()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def has_line(self):
        return b"\n" in self.buf

    def drain(self, wait):
        """Takes in, without blocking past wait seconds, what the client has
        sent by now (a later read finds an EOF again)."""
        end = time.monotonic() + wait
        while True:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return
            try:
                d = self.sock.recv(65536)
            except ssl.SSLWantReadError:
                continue
            except (socket.timeout, ssl.SSLError, OSError):
                return
            if not d:
                return
            self.recv_no += 1
            self.buf += d

    def lines_ahead(self):
        """The verbs of the complete command lines already received."""
        return [ln.split(b" ", 1)[0].strip().upper().decode("latin-1")
                for ln in self.buf.split(b"\n")[:-1]]

    def sendraw(self, data):
        try:
            self.sock.sendall(data)
        except (socket.timeout, ssl.SSLError, OSError) as e:
            self.log.w("X", "write error: %s" % e)
            raise Closed()

    def reply(self, text):
        lines = text.split("\n")
        for ln in lines:
            self.log.w("S", ln)
        data = b"".join(ln.encode("latin-1") + b"\r\n" for ln in lines)
        if self.mode == "joined":
            self.out.append(data)
            if not self.has_line():
                self.flush()
        elif self.mode == "split":
            for i in range(len(data)):
                self.sendraw(data[i:i + 1])
                time.sleep(0.002)
        elif self.mode == "trickle":
            for i in range(len(data)):  # a byte a second: every wait is short
                self.sendraw(data[i:i + 1])
                time.sleep(1)
        else:
            self.sendraw(data)

    def flush(self):
        if self.out:
            data, self.out = b"".join(self.out), []
            self.sendraw(data)

    def close(self):
        try:
            self.flush()
        except Closed:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


class Session:
    def __init__(self, server, sock, peer, sid=0):
        self.srv = server
        self.sid = sid
        self.log = SessionLog(server.log) if server.args.concurrent else server.log
        self.last_accept = None  # (n, mid) of a 250 no command has followed yet
        self.sc = server.scenario
        self.c = Conn(sock, self.log, server.args.io_timeout, self.sc.get("mode"))
        if server.args.stall_read and sid <= 1:
            self.c.stall = (server.args.stall_at, server.args.stall_read)
        self.tls = False
        self.authed = False
        self.batch = []
        self.c.before_recv = self.flush_batch
        self.reset()

    # --- helpers -----------------------------------------------------------
    def reset(self):
        self.mail = None
        self.rcpts = []
        self.nrcpt_seen = 0
        self.chunks = []

    def ext(self):
        base = self.srv.ext
        out = []
        for e in base:
            k = e.split("=", 1)[0].upper()
            if k == "STARTTLS" and (self.tls or self.sc.get("no_starttls")):
                continue
            out.append(e.replace("=", " ", 1))
        return out

    def offered(self, key):
        return any(e.split(" ", 1)[0].upper() == key for e in self.ext())

    def size_limit(self):
        for e in self.ext():
            p = e.split()
            if p[0].upper() == "SIZE" and len(p) > 1 and p[1].isdigit():
                return int(p[1])
        return 0

    def action(self, key):
        with self.srv.lock:
            once = self.srv.once.pop(key, None)
        if once is not None:
            return once
        return self.srv.overrides.get(key, self.sc.get(key))

    def closing(self):
        """After a 421: with --read-after-421, log what the client still
        sends for a while; then the session ends."""
        wait = self.srv.args.read_after_421
        if wait:
            self.log.w("X", "server reads for %g s after 421" % wait)
            self.c.flush()
            end = time.monotonic() + wait
            # Received before the 421 went: pipelined, not an answer to it.
            for ln in self.c.buf.split(b"\n"):
                if ln:
                    self.log.w("P", printable(ln.rstrip(b"\r")))
            rest = b""
            while True:
                for ln in rest.split(b"\n"):
                    if ln:
                        self.log.w("C", printable(ln.rstrip(b"\r")))
                left = end - time.monotonic()
                if left <= 0 or not select.select([self.c.sock], [], [], left)[0]:
                    break
                try:
                    rest = self.c.sock.recv(65536)
                except (ssl.SSLError, OSError):
                    break
                if not rest:
                    self.log.w("X", "client closed after 421")
                    break
        raise Closed()

    def ev(self, kind, **kw):
        """An E: line (see "Events"); from_ stands for from."""
        parts = ["%s s=%d" % (kind, self.sid)]
        for k, v in kw.items():
            if isinstance(v, (list, tuple)):
                v = ",".join(v) or "-"
            v = "-" if v is None else str(v)
            parts.append("%s=%s" % (k.rstrip("_"), v.replace(" ", "_") or "<>"))
        self.log.event(" ".join(parts))

    def flush_batch(self):
        if self.batch:
            self.log.w("B", "%d %s" % (len(self.batch), " ".join(self.batch)))
            if len(self.batch) > 1 and not self.offered("PIPELINING"):
                self.log.w("W", "%d commands in one read without PIPELINING"
                           % len(self.batch))
        self.batch = []

    def getcmd(self):
        line = self.c.readline()
        body = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        if not line.endswith(b"\r\n"):
            self.log.w("W", "command line ends in bare LF")
        text = body.decode("latin-1")
        verb = text.split(" ", 1)[0].upper()
        self.batch.append(printable(verb.encode("latin-1"))[:20] or "-")
        return text, verb

    def do(self, act, default=None):
        """Perform an override action; returns True when it was handled."""
        if act is None:
            return False
        if act == "drop":
            self.log.w("X", "server drops the connection (fault)")
            raise Closed()
        if act == "stall":
            self.log.w("X", "server stalls (fault): reading, never replying")
            self.stall()
        self.c.reply(act)
        if act.startswith("421"):
            self.log.w("X", "server closes after 421")
            self.closing()
        return True

    def stall(self):
        self.c.flush()
        while True:
            try:
                d = self.c.sock.recv(65536)
            except socket.timeout:
                continue
            except (ssl.SSLError, OSError):
                raise Closed()
            if not d:
                self.log.w("X", "client closed while server stalled")
                raise Closed()
            for ln in d.split(b"\n"):
                if ln:
                    self.log.w("C", printable(ln.rstrip(b"\r")))

    # --- the session -------------------------------------------------------
    def run(self):
        try:
            if self.srv.args.implicit_tls:
                self.start_tls()
            g = self.action("GREETING") or self.sc.get("greeting")
            if g == "delay":
                time.sleep(3)  # a slow server: the greeting comes, but late
                g = None
            if g in ("drop", "stall"):
                self.do(g)
            if g:
                self.c.reply(g)
                if g.startswith("421"):
                    self.log.w("X", "server closes after 421 greeting")
                    self.closing()
                # A 220 greeting of the test's own text serves as usual.
                self.refusing = not g.startswith("220")
            else:
                self.c.reply("220 %s ESMTP faultsmtp" % HOSTNAME)
                self.refusing = False
            while True:
                text, verb = self.getcmd()
                self.log.w("C", printable(text.encode("latin-1")))
                self.command(text, verb)
        except Closed:
            pass
        except BrokenPipeError:
            self.log.w("X", "broken pipe")
        if self.last_accept is not None:
            self.ev("unconfirmed", n=self.last_accept[0], mid=self.last_accept[1])
        self.flush_batch()
        self.c.close()
        self.log.w("X", "session ended")
        if isinstance(self.log, SessionLog):
            self.log.close()

    def command(self, text, verb):
        arg = text[len(verb):].strip()
        self.last_accept = None  # the client read the 250 (see "Events")
        if self.refusing and verb != "QUIT":
            self.c.reply("503 5.5.1 faultsmtp: no service, only QUIT")
            return
        h = getattr(self, "cmd_" + verb, None)
        if h is None:
            self.c.reply("500 5.5.2 faultsmtp: command not recognized")
            return
        try:
            h(arg)
        except _Cancel:
            pass

    def cmd_EHLO(self, arg):
        act = self.action("EHLO")
        if act == "endless":
            self.log.w("S", "250-x (repeated forever)")
            chunk = b"250-x\r\n" * 2000
            n = 0
            try:
                while True:
                    self.c.sock.sendall(chunk)
                    n += 2000
            except (OSError, ssl.SSLError) as e:
                self.log.w("X", "endless reply stopped after %d lines: %s" % (n, e))
                raise Closed()
        if self.do(act):
            return
        self.reset()
        self.c.reply("\n".join(
            ["250-" + HOSTNAME] + ["250-" + e for e in self.ext()[:-1]] +
            ["250 " + e for e in self.ext()[-1:]]) if self.ext()
            else "250 " + HOSTNAME)

    def cmd_HELO(self, arg):
        if self.do(self.action("HELO")):
            return
        self.reset()
        self.c.reply("250 " + HOSTNAME)

    def cmd_NOOP(self, arg):
        if not self.do(self.action("NOOP")):
            self.c.reply("250 2.0.0 OK")

    def cmd_RSET(self, arg):
        if not self.do(self.action("RSET")):
            self.reset()
            self.c.reply("250 2.0.0 OK")

    def cmd_QUIT(self, arg):
        if not self.do(self.action("QUIT")):
            self.c.reply("221 2.0.0 Bye")
        raise Closed()

    def cmd_VRFY(self, arg):
        self.c.reply("502 5.5.1 VRFY not implemented")

    def cmd_STARTTLS(self, arg):
        if not self.offered("STARTTLS"):
            if self.tls:
                self.log.w("W", "STARTTLS inside TLS")
            self.c.reply("502 5.5.1 faultsmtp: STARTTLS not offered")
            return
        act = self.action("STARTTLS")
        if act == "inject-after-220":
            self.log.w("S", "220 2.0.0 Ready to start TLS")
            self.log.w("S", "250 injected   (same write as the 220: fault)")
            self.c.flush()
            self.c.sendraw(b"220 2.0.0 Ready to start TLS\r\n250 injected\r\n")
            self.begin_tls()
            return
        if act in ("garbage-after-hello", "close-after-hello"):
            # A real handshake failure: let the client read the 220 alone,
            # wait for its ClientHello, then answer garbage (or hang up).
            self.c.reply("220 2.0.0 Ready to start TLS")
            self.c.flush()
            if not self.c.buf:
                self.c.recv_more()
            self.log.w("T", "client sent %d bytes (ClientHello?)" % len(self.c.buf))
            if act == "close-after-hello":
                self.log.w("T", "closing instead of a TLS handshake (fault)")
                raise Closed()
            self.log.w("T", "answering garbage instead of a TLS handshake (fault)")
            self.c.sendraw(b"this is not a TLS handshake\r\n" + b"\x00\xff" * 64)
            time.sleep(0.2)
            raise Closed()
        if self.do(act):
            return
        self.c.reply("220 2.0.0 Ready to start TLS")
        self.begin_tls()

    def begin_tls(self):
        self.c.flush()
        if self.c.buf:
            self.log.w("W", "plaintext pipelined after STARTTLS: %s"
                       % printable(self.c.buf[:200]))
            self.c.buf = b""
        self.start_tls()
        self.reset()
        self.authed = False

    def start_tls(self):
        ctx = self.srv.tls_context()
        if ctx is None:
            self.log.w("X", "no --cert/--key: cannot do TLS")
            raise Closed()
        try:
            s = ctx.wrap_socket(self.c.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.log.w("T", "handshake failed: %s" % e)
            raise Closed()
        self.c.sock = s
        self.tls = True
        self.log.w("T", "established %s %s%s" % (s.version(), s.cipher()[0],
                                                 " resumed" if s.session_reused else ""))

    def cmd_AUTH(self, arg):
        act = self.action("AUTH")
        if not self.offered("AUTH"):
            self.log.w("W", "AUTH although not advertised")
        if self.authed:
            self.c.reply("503 5.5.1 already authenticated")
            return
        if act and act.startswith("454"):
            self.do(act)
            return
        parts = arg.split()
        mech = parts[0].upper() if parts else ""
        ir = parts[1] if len(parts) > 1 else None
        if mech in ("XOAUTH2", "OAUTHBEARER") and self.srv.args.oauth2_token_file:
            self.auth_bearer(mech, ir, act)
            return
        if mech == "PLAIN":
            if ir is None:
                self.c.reply("334 ")
                ir = self.auth_line()
            try:
                f = base64.b64decode(ir if ir != "=" else "", validate=True).split(b"\0")
            except Exception:
                self.c.reply("501 5.5.2 bad base64")
                return
            ok = len(f) == 3 and f[1] == b"alice" and f[2] == b"secret"
        elif mech == "LOGIN":
            if ir is None:
                self.c.reply("334 VXNlcm5hbWU6")
                ir = self.auth_line()
            self.c.reply("334 UGFzc3dvcmQ6")
            pw = self.auth_line()
            try:
                ok = (base64.b64decode(ir, validate=True) == b"alice" and
                      base64.b64decode(pw, validate=True) == b"secret")
            except Exception:
                self.c.reply("501 5.5.2 bad base64")
                return
        else:
            self.c.reply("504 5.5.4 faultsmtp: mechanism not supported")
            return
        if self.do(act):
            return
        if ok:
            self.authed = True
            self.c.reply("235 2.7.0 Authentication successful")
        else:
            self.c.reply("535 5.7.8 Authentication credentials invalid")

    def auth_bearer(self, mech, ir, act):
        """XOAUTH2 / OAUTHBEARER (RFC 7628): only a token that
        --oauth2-token-file lists (re-read each time) for user alice."""
        if ir is None:
            self.c.reply("334 ")
            ir = self.auth_line()
        try:
            msg = base64.b64decode(ir, validate=True).decode("latin-1")
        except Exception:
            self.c.reply("501 5.5.2 bad base64")
            return
        f = dict(kv.split("=", 1) for kv in msg.split("\x01") if "=" in kv)
        user = f.get("user") if mech == "XOAUTH2" else \
            msg.split(",")[1][2:] if msg.startswith("n,a=") else None
        try:
            with open(self.srv.args.oauth2_token_file) as tf:
                good = tf.read().split()
        except OSError:
            good = []
        tok = f.get("auth", "")
        ok = user == "alice@example.test" and tok.startswith("Bearer ") and tok[7:] in good
        self.log.w("#", "%s token %s" % (mech, "accepted" if ok else "refused"))
        if self.do(act):
            return
        if ok:
            self.authed = True
            self.c.reply("235 2.7.0 Authentication successful")
            return
        err = {"status": "401" if mech == "XOAUTH2" else "invalid_token",
               "schemes": "bearer", "scope": "https://mail.google.com/"}
        self.c.reply("334 " + base64.b64encode(json.dumps(err).encode()).decode())
        self.auth_line()
        self.c.reply("535 5.7.8 Username and Password not accepted")

    def auth_line(self):
        text, _ = self.getcmd()
        self.batch.pop()  # a SASL response is not a command
        self.log.w("C", printable(text.encode("latin-1")))
        if text == "*":
            self.c.reply("501 5.7.0 authentication cancelled")
            raise _Cancel()
        return text

    def check_params(self, params, allowed):
        for p in params:
            k = p.split("=", 1)[0].upper()
            need = allowed.get(k)
            if need is None:
                self.log.w("W", "unknown parameter %s" % p)
            elif need and not self.offered(need):
                self.log.w("W", "parameter %s but %s not advertised" % (p, need))

    def cmd_MAIL(self, arg):
        if self.mail is not None:
            self.ev("mail", from_=addr_of(arg), code=503)
            self.c.reply("503 5.5.1 sender already given" if self.sc.get("exim")
                         else "503 5.5.1 nested MAIL command")
            return
        if not arg.upper().startswith("FROM:"):
            self.c.reply("501 5.5.4 syntax: MAIL FROM:<address>")
            return
        rest = arg[5:].strip()
        j = rest.find(">")
        params = rest[j + 1:].split() if j >= 0 else []
        self.check_params(params, {"SIZE": "SIZE", "BODY": "8BITMIME",
                                   "SMTPUTF8": "SMTPUTF8", "RET": "DSN",
                                   "ENVID": "DSN", "AUTH": "AUTH"})
        for p in params:
            if p.upper().startswith("SIZE=") and self.size_limit():
                try:
                    n = int(p[5:])
                except ValueError:
                    n = 0
                if n > self.size_limit():
                    self.c.reply("552 5.3.4 message size exceeds fixed limit")
                    return
        act = self.action("MAIL")
        if callable(act):
            act = act(self, arg)
        if act and act[:1] in "45":
            self.ev("mail", from_=addr_of(rest), code=act[:3])
        if self.do(act):
            return
        self.mail = addr_of(rest)
        self.c.reply("250 2.1.0 OK")

    def cmd_RCPT(self, arg):
        if self.mail is None:
            self.c.reply("503 5.5.1 need MAIL command")
            return
        if not arg.upper().startswith("TO:"):
            self.c.reply("501 5.5.4 syntax: RCPT TO:<address>")
            return
        rest = arg[3:].strip()
        j = rest.find(">")
        self.check_params(rest[j + 1:].split() if j >= 0 else [],
                          {"NOTIFY": "DSN", "ORCPT": "DSN"})
        self.nrcpt_seen += 1
        act = self.rcpt_fault(addr_of(rest)) or self.action("RCPT")
        if callable(act):
            act = act(self, arg)
        if act and act[:1] in "45":
            self.ev("rcpt", from_=self.mail, to=addr_of(rest), code=act[:3])
        if self.do(act):
            return
        self.rcpts.append(addr_of(rest))
        self.c.reply("250 2.1.5 OK")

    def rcpt_fault(self, to):
        """--rcpt-refuse, --rcpt-max, then the RCPT chaos: a reply or None."""
        a = self.srv.args
        if any(r in to for r in a.rcpt_refuse or []):
            return "550 5.1.1 <%s>: faultsmtp says no such user here" % to
        if a.rcpt_max and len(self.rcpts) >= a.rcpt_max:
            return "452 4.5.3 Too many recipients"
        return self.srv.draw("rcpt", "%s|%s" % (self.mail, to), RCPT_CHAOS)

    def no_rcpt_reply(self, verb="DATA"):
        if self.mail is None:
            return "503 5.5.1 need MAIL command"
        if not self.rcpts and self.sc.get("exim"):
            # and the transaction stays open (see "exim")
            return ("503-All RCPT commands were rejected with this error:\n"
                    "503-5.1.1 faultsmtp says no such user here\n"
                    "503 5.5.1 Valid RCPT command must precede %s" % verb)
        if not self.rcpts:
            return "554 5.5.1 Error: no valid recipients"
        return None

    def cmd_DATA(self, arg):
        bad = self.no_rcpt_reply()
        if bad:
            self.c.reply(bad)
            return
        if self.chunks:
            self.c.reply("503 5.5.1 DATA after BDAT")
            return
        act = self.action("DATA")
        if act == "354-then-drop":
            self.c.reply("354 End data with <CR><LF>.<CR><LF>")
            self.c.flush()
            if not self.c.buf:
                self.c.recv_more()
            self.log.record(".partial", self.c.buf)
            self.log.w("D", "got %d bytes of data, dropping (fault)" % len(self.c.buf))
            raise Closed()
        if self.do(act):
            return
        self.c.reply("354 End data with <CR><LF>.<CR><LF>")
        raw = self.read_data()
        data = self.unstuff(raw)
        self.end_of_data(raw, data, "DATA")

    def read_data(self):
        """Everything up to and including CRLF.CRLF (or a leading .CRLF)."""
        self.c.flush()
        start = 0
        while True:
            buf = self.c.buf
            if buf.startswith(b".\r\n"):
                end = 3
                break
            i = buf.find(b"\r\n.\r\n", max(0, start - 4))
            if i >= 0:
                end = i + 5
                break
            start = len(buf)
            try:
                self.c.recv_more()
            except Closed:
                self.log.record(".partial", self.c.buf)
                self.log.w("D", "connection lost in DATA after %d bytes" % len(self.c.buf))
                raise
        raw, self.c.buf = self.c.buf[:end], self.c.buf[end:]
        if self.c.buf:
            # anything after the dot is a pipelined command (fine after DATA
            # only with PIPELINING, and only the ones after end of data)
            pass
        return raw

    def unstuff(self, raw):
        body = raw[:-3]  # drop ".\r\n"
        lines = body.split(b"\r\n")
        if lines and lines[-1] == b"":
            lines.pop()
        out = []
        for ln in lines:
            if b"\n" in ln:
                self.log.w("W", "bare LF in message data")
            if b"\r" in ln:
                self.log.w("W", "bare CR in message data")
            if ln.startswith(b"."):
                ln = ln[1:]
            out.append(ln + b"\r\n")
        return b"".join(out)

    def end_of_data(self, raw, data, how):
        mid, sender, rcpts = mid_of(data), self.mail, self.rcpts
        self.reset()
        fault = self.srv.eod_fault(mid, self.srv.next_eod()) or \
            self.srv.draw("eod", mid, EOD_CHAOS)
        if fault == "cut":
            self.log.record(".partial", raw[:-1])
            self.log.w("D", "connection lost before the end of data (chaos)")
            self.ev("cut", mid=mid)
            raise Closed()
        n = self.srv.next_trans()
        self.log.record(".raw.%d" % n, raw)
        self.log.record(".data.%d" % n, data)
        self.log.record(".raw", raw)
        self.log.record(".data", data)
        self.log.w("D", "end of data (%s), %d bytes, raw %d bytes, transaction %d"
                   % (how, len(data), len(raw), n))
        if any(c >= 0x80 for c in data):
            self.log.w("D", "message has 8-bit bytes")
        self.ev("eod", n=n, mid=mid, from_=sender, rcpts=rcpts)
        if self.sc.get("strict"):
            self.check_strict(n, mid)
        act = self.action("DOT")
        if act == "delay":
            time.sleep(0.5)  # a slow server: the reply comes, but late
            act = None
        elif self.srv.args.eod_delay:
            time.sleep(self.srv.args.eod_delay)
        act = act or fault
        if act is None and self.size_limit() and len(data) > self.size_limit():
            act = "552 5.3.4 message size exceeds fixed limit"
        if act in ("drop", "stall"):
            self.ev("unreplied", n=n, mid=mid, how=act)
        elif act and act[:1] != "2":
            self.ev("refused", n=n, mid=mid, code=act[:3])
        if self.do(act):
            return
        self.ev("accepted", n=n, mid=mid, from_=sender, rcpts=rcpts)
        self.last_accept = (n, mid)
        self.c.reply("250 2.0.0 Ok: queued as FS%d (%d recipients)" % (n, len(rcpts)))

    def check_strict(self, n, mid):
        """strict: no transaction command may be here before this reply.
        Dovecot has the message by then, and dies before it answers."""
        self.c.drain(0.01)
        ahead = self.c.lines_ahead()
        while ahead and ahead[0] in ("RSET", "NOOP"):
            ahead.pop(0)
        if ahead and ahead[0] in TX_VERBS:
            self.log.live("VIOLATION", "transaction pipelined: %s arrived before the "
                          "reply to end of data %d" % (ahead[0], n))
            self.ev("violation", n=n, verb=ahead[0])
            self.ev("unreplied", n=n, mid=mid, how="violation")
            self.log.w("X", "server drops the connection (strict: Dovecot asserts here)")
            raise Closed()

    def cmd_BDAT(self, arg):
        p = arg.split()
        if not p or not p[0].isdigit() or len(p) > 2 or (
                len(p) == 2 and p[1].upper() != "LAST"):
            self.c.reply("501 5.5.4 syntax: BDAT size [LAST]")
            return
        if not self.offered("CHUNKING"):
            self.log.w("W", "BDAT although CHUNKING not advertised")
        n, last = int(p[0]), len(p) == 2
        self.c.flush()
        if self.action("BDAT") == "drop-mid-chunk":
            if not self.c.buf:
                self.c.recv_more()
            self.log.record(".partial", self.c.buf)
            self.log.w("D", "got %d of %d chunk bytes, dropping (fault)"
                       % (len(self.c.buf), n))
            raise Closed()
        try:
            chunk = self.c.readexact(n)
        except Closed:
            self.log.record(".partial", b"".join(self.chunks) + self.c.buf)
            self.log.w("D", "connection lost in BDAT chunk")
            raise
        self.log.w("D", "BDAT chunk %d bytes%s" % (n, " LAST" if last else ""))
        bad = self.no_rcpt_reply("BDAT")
        if bad:
            self.chunks = []
            self.c.reply(bad)
            return
        act = self.action("BDAT")
        if self.do(act):
            self.reset()
            return
        self.chunks.append(chunk)
        if last:
            data = b"".join(self.chunks)
            if b"\n" in data.replace(b"\r\n", b""):
                self.log.w("W", "bare LF in message data")
            self.end_of_data(data, data, "BDAT")
        else:
            self.c.reply("250 2.0.0 %d octets received" % n)




class Server:
    def __init__(self, args):
        self.args = args
        self.log = Log(args.log, not args.no_records)
        self.lock = threading.Lock()
        self.nsess = self.active = self.max_active = self.neod = 0
        self.tries = {}
        self.scenario = dict(SCENARIOS[args.scenario])
        self.overrides = {}
        for r in args.reply or []:
            k, _, v = r.partition("=")
            self.overrides[k.upper()] = v.replace("\\n", "\n")
        self.once = {}
        for r in args.reply_once or []:
            k, _, v = r.partition("=")
            self.once[k.upper()] = v.replace("\\n", "\n")
        if args.ext is not None:
            self.ext = [e.strip() for e in args.ext.split(",") if e.strip()]
        else:
            self.ext = list(self.scenario.get("ext", DEFAULT_EXT))
            if args.cert and not args.implicit_tls:
                self.ext.append("STARTTLS")
        self.ntrans = 0
        self._ctx = None

    def next_trans(self):
        with self.lock:
            self.ntrans += 1
            return self.ntrans

    def next_eod(self):
        with self.lock:
            self.neod += 1
            return self.neod

    def eod_fault(self, mid, k):
        """--eod-fault: the fault for this Message-ID's first end of data,
        or for the server's k-th."""
        for i, f in enumerate(self.args.eod_fault or []):
            m, _, r = f.partition("=")
            if m == "#%d" % k:
                return r
            if m and not m.startswith("#") and m in mid:
                with self.lock:
                    if (i, mid) in self.tries:
                        return None
                    self.tries[(i, mid)] = 1
                return r
        return None

    def draw(self, kind, key, table):
        """One seeded draw for the k-th try of key: an entry of table, or None."""
        probs = [(getattr(self.args, opt) or 0.0, what) for opt, what in table]
        if not any(p for p, _ in probs):
            return None
        with self.lock:
            k = self.tries[(kind, key)] = self.tries.get((kind, key), 0) + 1
        u = random.Random("%d|%s|%s|%d" % (self.args.seed, kind, key, k)).random()
        for p, what in probs:
            if u < p:
                return what
            u -= p
        return None

    def tls_context(self):
        if not (self.args.cert and self.args.key):
            return None
        if self._ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.args.cert, self.args.key)
            if self.args.ciphers:
                # Only these TLS 1.2 suites (e.g. AES128-SHA, no forward secrecy).
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
                ctx.set_ciphers(self.args.ciphers)
            self._ctx = ctx
        return self._ctx

    def serve(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.args.rcvbuf:
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.args.rcvbuf)
        ls.bind(("127.0.0.1", self.args.port))
        ls.listen(64)
        port = ls.getsockname()[1]
        tmp = self.args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, self.args.port_file)
        self.log.note("faultsmtp pid %d port %d scenario %s ext %s"
                      % (os.getpid(), port, self.args.scenario, ",".join(self.ext)))
        while True:
            sock, peer = ls.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.nsess += 1
                n = self.nsess
            if self.args.concurrent and not self.args.once:
                threading.Thread(target=self.session, args=(sock, peer, n),
                                 daemon=True).start()
                continue
            self.session(sock, peer, n)
            if self.args.once:
                break
        ls.close()

    def session(self, sock, peer, n):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.log.event("session s=%d active=%d max=%d" % (n, self.active, self.max_active))
        sess = Session(self, sock, peer, n)
        sess.log.note("session %d from %s:%d" % (n, peer[0], peer[1]))
        try:
            sess.run()
        finally:
            with self.lock:
                self.active -= 1
                self.log.event("session-end s=%d active=%d max=%d"
                               % (n, self.active, self.max_active))


def tally(path):
    """--tally: per (Message-ID, recipient), what the E: lines of path say."""
    pairs = {}
    trans = {}  # n -> (mid, rcpts) from the eod line
    refused_rcpt = set()

    def pair(mid, r):
        return pairs.setdefault((mid, r), {"accepted": 0, "unreplied": 0,
                                           "unconfirmed": 0, "refused5": 0,
                                           "senders": []})
    for line in open(path, encoding="utf-8", errors="replace"):
        if not line.startswith("E: "):
            continue
        f = line[3:].split()
        kind, kv = f[0], dict(x.split("=", 1) for x in f[1:] if "=" in x)
        if kind == "eod":
            trans[kv["n"]] = (kv["mid"], kv["rcpts"].split(","), kv["from"])
        elif kind == "rcpt" and kv["code"].startswith("5"):
            refused_rcpt.add((kv["from"], kv["to"]))
        elif kind in ("accepted", "unreplied", "unconfirmed", "refused"):
            mid, rcpts, sender = trans.get(kv["n"], (kv["mid"], [], "-"))
            for r in rcpts:
                p = pair(mid, r)
                if kind == "accepted":
                    p["accepted"] += 1
                    p["senders"].append(kv["from"])
                elif kind == "refused":
                    p["refused5"] += kv["code"].startswith("5")
                else:
                    p[kind] += 1
    for (mid, r), p in sorted(pairs.items()):
        print("%s %s accepted=%d unreplied=%d unconfirmed=%d refused5=%d senders=%s"
              % (mid, r, p["accepted"], p["unreplied"], p["unconfirmed"],
                 p["refused5"], ",".join(p["senders"]) or "-"))
    for sender, r in sorted(refused_rcpt):
        print("rcpt-refused %s %s" % (sender, r))
    return 0


def main():
    ap = argparse.ArgumentParser(description="fault-injecting SMTP server for tests")
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--scenario", default="healthy")
    ap.add_argument("--ext")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--implicit-tls", action="store_true")
    ap.add_argument("--ciphers", help="TLS 1.2 only, with this OpenSSL cipher list")
    ap.add_argument("--once", action="store_true")
    ap.add_argument("--max-time", type=float, default=120)
    ap.add_argument("--io-timeout", type=float, default=30)
    ap.add_argument("--reply", action="append")
    ap.add_argument("--reply-once", action="append")
    ap.add_argument("--read-after-421", type=float, default=0.0)
    ap.add_argument("--stall-read", type=float, default=0.0)
    ap.add_argument("--stall-at", type=int, default=3 * 65536)
    ap.add_argument("--rcvbuf", type=int, default=0)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--concurrent", action="store_true")
    ap.add_argument("--rcpt-refuse", action="append")
    ap.add_argument("--rcpt-max", type=int, default=0)
    ap.add_argument("--no-records", action="store_true")
    ap.add_argument("--eod-fault", action="append")
    ap.add_argument("--eod-delay", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    for opt, _ in EOD_CHAOS + RCPT_CHAOS:
        ap.add_argument("--" + opt.replace("_", "-"), type=float, default=0.0)
    ap.add_argument("--tally")
    ap.add_argument("--oauth2-token-file")
    args = ap.parse_args()
    if args.list:
        print("\n".join(SCENARIOS))
        return 0
    if args.tally:
        return tally(args.tally)
    if not args.port_file or not args.log:
        ap.error("--port-file and --log are required")
    if args.scenario not in SCENARIOS:
        ap.error("unknown scenario %r (see --list)" % args.scenario)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def bail(*_):
        try:
            with open(args.log, "a") as f:
                f.write("X: safety net: exiting after %g s\n" % args.max_time)
        finally:
            os._exit(3)
    signal.signal(signal.SIGALRM, bail)
    signal.setitimer(signal.ITIMER_REAL, args.max_time)
    Server(args).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
