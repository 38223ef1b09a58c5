#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""A submission server that enforces a provider's per-mailbox rules, as the
providers document them (tests/t_providers.sh; Python standard library).

  --provider microsoft365  3 concurrent sessions per mailbox, the 4th gets
                           "432 4.3.2 Concurrent connections limit exceeded";
                           30 messages a minute, the excess delayed;
                           lockout after --lockout failed logins (535 5.7.139)
  --provider gmail         100 recipients a message (452 4.5.3 after);
                           "454 4.7.0 Too many login attempts" after --lockout
  --provider ses           50 recipients a message; --rate per --window as
                           "454 Throttling failure: Maximum sending rate
                           exceeded" to the end of data (message not taken)

Other knobs: --connections, --rate/--window, --throttle N (the Nth message
gets "421 4.7.0 Try again later, closing connection" to MAIL), --silent
(accept, never answer), --limits "RCPTMAX=.." (an EHLO LIMITS line),
--delay SECONDS after each end of data.
Every event is a line of --log: "connect", "auth-ok USER", "auth-fail USER",
"auth-locked USER", "432 USER", "454 USER", "421", "msg MSGID NRCPT",
"rcpt-refused", "concurrent N" (the most sessions of one user at once).
"""
import argparse
import base64
import re
import socket
import socketserver
import threading
import time

LIMITS = {
    "microsoft365": dict(connections=3, rate=30, max_rcpt=500),
    "gmail": dict(connections=15, rate=0, max_rcpt=100),
    "ses": dict(connections=50, rate=0, max_rcpt=50),
}


class State:
    def __init__(self, a):
        self.a = a
        self.lock = threading.Lock()
        self.sessions = {}      # user -> live authenticated sessions
        self.most = 0
        self.fails = {}         # user -> failed logins
        self.sent = []          # times of accepted messages
        self.nmsg = 0
        self.logf = open(a.log, "a", buffering=1)

    def log(self, line):
        with self.lock:
            self.logf.write(line + "\n")


class Handler(socketserver.StreamRequestHandler):
    timeout = 120

    def reply(self, text):
        self.wfile.write((text + "\r\n").encode())
        self.wfile.flush()

    def line(self):
        l = self.rfile.readline(4096)
        if not l:
            raise EOFError
        return l.decode("utf-8", "replace").rstrip("\r\n")

    def handle(self):
        st = self.server.st
        a = st.a
        st.log("connect")
        if a.silent:
            try:
                self.rfile.read(1)      # until the client gives up
            except OSError:
                pass
            return
        self.user = None
        try:
            self.session(st, a)
        except (EOFError, OSError):
            pass
        finally:
            if self.user is not None:
                with st.lock:
                    st.sessions[self.user] -= 1

    def auth(self, st, a, arg):
        parts = arg.split(" ", 1)
        mech = parts[0].upper()
        if mech == "PLAIN":
            resp = parts[1] if len(parts) > 1 else (self.reply("334 "), self.line())[1]
            try:
                _, user, pw = base64.b64decode(resp).decode().split("\0")
            except Exception:
                return self.reply("501 5.5.2 bad PLAIN")
        elif mech == "LOGIN":
            self.reply("334 VXNlcm5hbWU6")
            user = base64.b64decode(self.line()).decode("utf-8", "replace")
            self.reply("334 UGFzc3dvcmQ6")
            pw = base64.b64decode(self.line()).decode("utf-8", "replace")
        else:
            return self.reply("504 5.5.4 unknown mechanism")
        with st.lock:
            locked = a.lockout and st.fails.get(user, 0) >= a.lockout
        if locked:
            st.log("auth-locked " + user)
            if a.provider == "gmail":
                self.reply("454 4.7.0 Too many login attempts, please try again later.")
            else:
                self.reply("535 5.7.139 Authentication unsuccessful, the user credentials were incorrect. [locked]")
            return
        if user != a.user or pw != a.password:
            with st.lock:
                st.fails[user] = st.fails.get(user, 0) + 1
            st.log("auth-fail " + user)
            if a.provider == "gmail":
                self.reply("535-5.7.8 Username and Password not accepted.")
            else:
                self.reply("535 5.7.139 Authentication unsuccessful, the user credentials were incorrect.")
            return
        with st.lock:
            n = st.sessions.get(user, 0) + 1
            over = n > a.connections
            if not over:
                st.sessions[user] = n
                st.most = max(st.most, n)
                most = st.most
        if over:
            st.log("432 " + user)
            self.reply("432 4.3.2 Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending for more information.")
            raise EOFError
        self.user = user
        st.log("auth-ok %s" % user)
        st.log("concurrent %d" % most)
        self.reply("235 2.7.0 Authentication successful")

    def pace(self, st, a):
        """The message rate: True when the message may be taken now."""
        if not a.rate:
            return True
        while True:
            with st.lock:
                now = time.monotonic()
                st.sent = [t for t in st.sent if now - t < a.window]
                if len(st.sent) < a.rate:
                    st.sent.append(now)
                    return True
                wait = a.window - (now - st.sent[0])
            if a.provider == "ses":
                return False
            time.sleep(max(wait, 0.01))     # Microsoft: delayed

    def session(self, st, a):
        self.reply("220 provsmtp ESMTP %s" % a.provider)
        mail = None
        rcpts = []
        while True:
            l = self.line()
            cmd = l[:4].upper()
            arg = l[5:] if len(l) > 5 else ""
            if cmd in ("EHLO", "HELO"):
                ext = ["250-provsmtp", "250-PIPELINING", "250-8BITMIME",
                       "250-ENHANCEDSTATUSCODES", "250-SIZE 36700160"]
                if a.limits:
                    ext.append("250-LIMITS " + a.limits)
                ext.append("250 AUTH LOGIN PLAIN")
                self.reply("\r\n".join(ext))
            elif cmd == "AUTH":
                self.auth(st, a, arg)
            elif cmd == "MAIL":
                if a.user and self.user is None:
                    self.reply("530 5.7.57 Client not authenticated to send mail")
                    continue
                with st.lock:
                    st.nmsg += 1
                    n = st.nmsg
                if a.throttle and n == a.throttle:
                    st.log("421")
                    self.reply("421 4.7.0 Try again later, closing connection.")
                    raise EOFError
                mail = arg
                rcpts = []
                self.reply("250 2.1.0 Sender OK")
            elif cmd == "RCPT":
                if mail is None:
                    self.reply("503 5.5.1 need MAIL")
                elif len(rcpts) >= a.max_rcpt and a.provider != "ses":
                    st.log("rcpt-refused")
                    self.reply("452 4.5.3 Your message has too many recipients.")
                else:
                    rcpts.append(arg)
                    self.reply("250 2.1.5 Recipient OK")
            elif cmd == "DATA":
                if not rcpts:
                    self.reply("503 5.5.1 need RCPT")
                    continue
                self.reply("354 Start mail input; end with <CRLF>.<CRLF>")
                mid = "-"
                while True:
                    d = self.line()
                    if d == ".":
                        break
                    m = re.match(r"(?i)message-id:\s*(\S+)", d)
                    if m and mid == "-":
                        mid = m.group(1)
                if a.provider == "ses" and len(rcpts) > a.max_rcpt:
                    st.log("rcpt-refused")
                    self.reply("554 Transaction failed: Recipient count exceeds 50.")
                elif not self.pace(st, a):
                    st.log("454 " + str(self.user))
                    self.reply("454 Throttling failure: Maximum sending rate exceeded.")
                else:
                    if a.delay:
                        time.sleep(a.delay)
                    st.log("msg %s %d" % (mid, len(rcpts)))
                    self.reply("250 2.6.0 Queued mail for delivery")
                mail = None
                rcpts = []
            elif cmd == "RSET":
                mail = None
                rcpts = []
                self.reply("250 2.0.0 Resetting")
            elif cmd == "NOOP":
                self.reply("250 2.0.0 OK")
            elif cmd == "QUIT":
                self.reply("221 2.0.0 Service closing transmission channel")
                return
            else:
                self.reply("500 5.3.3 Unrecognized command")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--provider", default="microsoft365", choices=sorted(LIMITS))
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--user", default="alice")
    p.add_argument("--password", default="secret")
    p.add_argument("--connections", type=int)
    p.add_argument("--rate", type=int)
    p.add_argument("--window", type=float, default=60.0)
    p.add_argument("--max-rcpt", type=int)
    p.add_argument("--lockout", type=int, default=0)
    p.add_argument("--throttle", type=int, default=0)
    p.add_argument("--silent", action="store_true")
    p.add_argument("--limits", default="")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--max-time", type=float, default=600)
    a = p.parse_args()
    for k, v in LIMITS[a.provider].items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    srv = Server(("127.0.0.1", 0), Handler)
    srv.st = State(a)
    with open(a.port_file + ".tmp", "w") as f:
        f.write("%d\n" % srv.server_address[1])
    import os
    os.rename(a.port_file + ".tmp", a.port_file)
    threading.Timer(a.max_time, srv.shutdown).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
