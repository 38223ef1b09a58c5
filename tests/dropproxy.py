#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""An SMTP proxy that loses one connection right after a client's end of data.

  dropproxy.py --port P --upstream-port U [--upstream-tls starttls|implicit|off]
               [--ca CA] --drop-at N --log LOG [--drop-file F] [--pid-file F]

Listens on 127.0.0.1:P; each client connection gets its own connection to
127.0.0.1:U. With --upstream-tls the proxy does the TLS to the server itself
(STARTTLS after its own EHLO, or implicit TLS, the certificate checked against
--ca) and talks plain SMTP to the client, so that it sees the client's commands:
the client is configured with "tls off" and "auth_plaintext on". The client's
stream is followed command by command (DATA and its dot, BDAT and its octets);
every end of data is counted over all connections. At the N-th one (once), the
proxy forwards the end of data to the server, closes the client's connection
at once (the client never reads the reply), reads what the server answers
(until it has been quiet for 1 s) and closes the server's side too. The
dropped transaction's Message-ID goes to --drop-file; the log has a line per
end of data ("eod N MID"), the drop ("drop N MID") and what the server
answered after it ("after drop N the server said: ...").
Python 3 standard library only.
"""
import argparse
import os
import re
import socket
import ssl
import sys
import threading
import time

LOCK = threading.Lock()
STATE = {"eod": 0, "dropped": False}


def log(opts, line):
    with LOCK:
        with open(opts.log, "a") as f:
            f.write(line + "\n")


def read_reply(sock, buf):
    """One complete (multi-line) reply from sock; buf holds bytes read ahead."""
    lines = []
    while True:
        while b"\r\n" not in buf:
            d = sock.recv(4096)
            if not d:
                raise OSError("upstream closed during the greeting")
            buf += d
        line, buf = buf.split(b"\r\n", 1)
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return lines, buf


def upstream(opts):
    s = socket.create_connection(("127.0.0.1", opts.upstream_port), timeout=10)
    if opts.upstream_tls == "off":
        return s, b""
    ctx = ssl.create_default_context(cafile=opts.ca)
    if opts.upstream_tls == "implicit":
        return ctx.wrap_socket(s, server_hostname="127.0.0.1"), b""
    banner, buf = read_reply(s, b"")
    s.sendall(b"EHLO dropproxy.example.test\r\n")
    read_reply(s, buf)
    s.sendall(b"STARTTLS\r\n")
    r, _ = read_reply(s, b"")
    if not r[-1].startswith(b"220"):
        raise OSError("STARTTLS refused: %r" % r[-1])
    t = ctx.wrap_socket(s, server_hostname="127.0.0.1")
    # the client gets the server's own greeting, then talks to it over TLS
    return t, b"\r\n".join(banner) + b"\r\n"


def mid_of(data):
    head = re.split(rb"\r\n\r\n", data, maxsplit=1)[0]
    m = re.search(rb"(?im)^message-id:[ \t]*<([^>\r\n]+)>", head)
    return m.group(1).decode("latin-1") if m else "-"


class Session:
    def __init__(self, opts, client):
        self.opts, self.client = opts, client
        self.up = None
        self.got354 = threading.Event()
        self.drop = threading.Event()
        self.done = threading.Event()
        self.said = b""

    def server_to_client(self):
        """Forwards replies until the server closes; after a drop, only reads."""
        buf, quiet, up = b"", None, self.up
        up.settimeout(0.25)
        while True:
            try:
                d = up.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                if self.drop.is_set():
                    quiet = quiet or time.monotonic()
                    if time.monotonic() - quiet >= 1.0:
                        break
                continue
            except OSError:
                break
            if not d:
                break
            if self.drop.is_set():
                self.said += d
                quiet = time.monotonic()
                continue
            buf += d
            while b"\r\n" in buf:
                line, buf = buf.split(b"\r\n", 1)
                if line.startswith(b"354"):
                    self.got354.set()
            try:
                self.client.sendall(d)
            except OSError:
                break
        if not self.drop.is_set():
            # the server is gone: so is the client's connection
            try:
                self.client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.done.set()

    def end_of_data(self, data):
        with LOCK:
            STATE["eod"] += 1
            n = STATE["eod"]
            drop = n == self.opts.drop_at and not STATE["dropped"]
            if drop:
                STATE["dropped"] = True
        mid = mid_of(data)
        log(self.opts, "eod %d %s" % (n, mid))
        if drop and self.opts.drop_file:
            with open(self.opts.drop_file, "a") as f:
                f.write(mid + "\n")
        return drop, n, mid

    def client_to_server(self):
        """Follows the client's commands; returns at EOF or after the drop."""
        buf, mode, left, last, data, pending = b"", "cmd", 0, False, b"", False
        while True:
            try:
                d = self.client.recv(65536)
            except OSError:
                return
            if not d:
                return
            buf += d
            out = b""
            while buf:
                if mode == "cmd":
                    if pending:
                        pending = False
                        if self.got354.is_set():
                            self.got354.clear()
                            mode, data = "data", b""
                            continue
                    if b"\r\n" not in buf:
                        break
                    line, buf = buf.split(b"\r\n", 1)
                    out += line + b"\r\n"
                    up = line.upper()
                    if up.startswith(b"MAIL FROM:"):
                        data = b""
                    elif up == b"DATA":
                        pending = True
                    elif up.startswith(b"BDAT "):
                        f = up.split()
                        left, last = int(f[1]), len(f) > 2 and f[2] == b"LAST"
                        mode = "bdat"
                elif mode == "bdat":
                    k = min(left, len(buf))
                    out, data, buf, left = out + buf[:k], data + buf[:k], buf[k:], left - k
                    if left == 0:
                        mode = "cmd"
                        if last:
                            if self.eod(out, data):
                                return
                            out, data = b"", b""
                else:
                    i = (b"\r\n" + data + buf).find(b"\r\n.\r\n")
                    if i < 0:
                        out, data, buf = out + buf, data + buf, b""
                        break
                    k = i + 5 - 2 - len(data)   # end of the dot line in buf
                    out, data, buf = out + buf[:k], data + buf[:k], buf[k:]
                    mode = "cmd"
                    if self.eod(out, data):
                        return
                    out, data = b"", b""
            if out:
                self.up.sendall(out)

    def eod(self, out, data):
        """Forwards out (which ends with an end of data); True when dropped."""
        drop, n, mid = self.end_of_data(data)
        self.up.sendall(out)
        if not drop:
            return False
        self.drop.set()
        log(self.opts, "drop %d %s" % (n, mid))
        try:
            self.client.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.client.close()
        self.done.wait(10)
        log(self.opts, "after drop %d the server said: %r" % (n, self.said))
        return True

    def run(self):
        try:
            self.up, greet = upstream(self.opts)
        except OSError as e:
            log(self.opts, "upstream: %s" % e)
            self.client.close()
            return
        if greet:
            self.client.sendall(greet)
        t = threading.Thread(target=self.server_to_client, daemon=True)
        t.start()
        self.client_to_server()
        if not self.drop.is_set():
            self.done.wait(3)
        for s in (self.client, self.up):
            try:
                s.close()
            except OSError:
                pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream-port", type=int, required=True)
    ap.add_argument("--upstream-tls", choices=("starttls", "implicit", "off"),
                    default="off")
    ap.add_argument("--ca")
    ap.add_argument("--drop-at", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--drop-file")
    ap.add_argument("--pid-file")
    opts = ap.parse_args()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", opts.port))
    ls.listen(16)
    if opts.pid_file:
        with open(opts.pid_file, "w") as f:
            f.write("%d\n" % os.getpid())
    while True:
        c, _ = ls.accept()
        threading.Thread(target=Session(opts, c).run, daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
