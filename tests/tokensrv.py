#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""tokensrv: an OAuth2 token server for outbox's tests (standard library).

HTTPS on 127.0.0.1 with the suite's test CA. It implements the grants
outbox uses and the device flow, with errors scripted by the test.

Usage:
    python3 tests/tokensrv.py --port-file F --state DIR --cert C --key K
                              [--pubkey P] [--max-time S]

Endpoints (POST, application/x-www-form-urlencoded):
    /token    grant_type client_credentials (client_id app + client_secret
              app-secret, or a client_assertion signed by --pubkey's key with
              an x5t header), refresh_token (the one in DIR/refresh),
              urn:ietf:params:oauth:grant-type:jwt-bearer (an RS256
              assertion by --pubkey's key, iss svc@example.test, sub = the
              mailbox), urn:ietf:params:oauth:grant-type:device_code
    /device   the device authorization request (RFC 8628 3.1)

State in DIR:
    tokens    every access token issued, one a line (faultsmtp.py's
              --oauth2-token-file reads it); the test may empty it to revoke
    refresh   the refresh token the server takes now
    script    one action a line, each used by one /token request, in order:
              invalid_grant, invalid_client, unauthorized_client, 500,
              429 (Retry-After: 7), pending, slow_down, expired_token,
              access_denied, short (expires_in 30), rotate (a new refresh
              token; the old one stops working), stall (no answer for 10 s),
              drip (a 200 response written one octet a second; the log
              says "drip N/M head H": N octets of M written before the
              client went away, the first H of them the status and headers)
    requests  one line per request: "PATH GRANT RESULT" (no secrets)
"""
import argparse
import base64
import http.server
import json
import os
import secrets
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

DEVICE_CODE = "dev-code-1"
USER_CODE = "WDJB-MJHT"


def b64url_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class State:
    def __init__(self, d, pubkey):
        self.d = d
        self.pubkey = pubkey
        self.lock = threading.Lock()

    def path(self, name):
        return os.path.join(self.d, name)

    def read(self, name):
        try:
            with open(self.path(name)) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def write(self, name, text):
        tmp = self.path(name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.path(name))

    def pop_action(self):
        lines = self.read("script").split()
        if not lines:
            return None
        self.write("script", "\n".join(lines[1:]) + ("\n" if lines[1:] else ""))
        return lines[0]

    def log(self, line):
        with open(self.path("requests"), "a") as f:
            f.write(line + "\n")

    def issue(self, ttl):
        tok = "at-" + secrets.token_urlsafe(24)
        with open(self.path("tokens"), "a") as f:
            f.write(tok + "\n")
        return {"access_token": tok, "token_type": "Bearer", "expires_in": ttl}

    def verify_jwt(self, jwt):
        """The claims of an RS256 JWT signed by --pubkey's key, or None."""
        try:
            h, c, s = jwt.split(".")
            head = json.loads(b64url_dec(h))
            claims = json.loads(b64url_dec(c))
            sig = b64url_dec(s)
        except (ValueError, json.JSONDecodeError):
            return None
        if head.get("alg") != "RS256" or not self.pubkey:
            return None
        with tempfile.TemporaryDirectory(dir=self.d) as t:
            data, sf = os.path.join(t, "data"), os.path.join(t, "sig")
            with open(data, "w") as f:
                f.write(h + "." + c)
            with open(sf, "wb") as f:
                f.write(sig)
            r = subprocess.run(["openssl", "dgst", "-sha256", "-verify",
                                self.pubkey, "-signature", sf, data],
                               capture_output=True)
        if r.returncode != 0:
            return None
        if claims.get("exp", 0) < time.time():
            return None
        claims["_head"] = head
        return claims


ERRORS = {
    "invalid_grant": (400, "AADSTS70000: The refresh token was revoked"),
    "invalid_client": (401, "AADSTS7000215: Invalid client secret"),
    "unauthorized_client": (400, "The client is not authorized"),
    "expired_token": (400, "The device code expired"),
    "access_denied": (400, "The user declined"),
    "pending": (400, "authorization_pending"),
    "slow_down": (400, "slow down"),
}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, obj, headers=()):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def error(self, name, grant):
        code, desc = ERRORS.get(name, (400, name))
        err = {"pending": "authorization_pending"}.get(name, name)
        self.server.st.log("%s %s %s" % (self.path, grant, err))
        self.reply(code, {"error": err, "error_description": desc})

    def do_POST(self):
        st = self.server.st
        n = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(n).decode(), keep_blank_values=True)
        f = {k: v[0] for k, v in form.items()}
        with st.lock:
            if self.path == "/device":
                st.log("/device - ok")
                self.reply(200, {"device_code": DEVICE_CODE, "user_code": USER_CODE,
                                 "verification_uri": "https://127.0.0.1/devicelogin",
                                 "interval": 1, "expires_in": 60})
                return
            if self.path != "/token":
                self.reply(404, {"error": "not_found"})
                return
            self.token(st, f)

    def token(self, st, f):
        grant = f.get("grant_type", "")
        short = grant.rsplit(":", 1)[-1]
        act = st.pop_action()
        if act == "stall":
            st.log("/token %s stall" % short)
            st.lock.release()   # others may go on meanwhile
            try:
                time.sleep(10)
            finally:
                st.lock.acquire()
            self.close_connection = True
            return
        if act == "drip":
            self.drip(st, short)
            return
        if act == "500":
            st.log("/token %s 500" % short)
            self.reply(500, {"error": "server_error"})
            return
        if act == "429":
            st.log("/token %s 429" % short)
            self.reply(429, {"error": "too_many_requests"}, [("Retry-After", "7")])
            return
        if act in ERRORS:
            self.error(act, short)
            return
        ttl = 30 if act == "short" else 3600
        if grant == "client_credentials":
            ok = f.get("client_id") == "app" and (
                f.get("client_secret") == "app-secret" or self.assertion_ok(st, f))
        elif grant == "refresh_token":
            ok = f.get("client_id") == "app" and f.get("refresh_token") == st.read("refresh").strip()
        elif grant.endswith("jwt-bearer"):
            c = st.verify_jwt(f.get("assertion", ""))
            ok = (c is not None and c.get("iss") == "svc@example.test" and
                  c.get("sub") == "alice@example.test" and c.get("aud", "").endswith("/token"))
        elif grant.endswith("device_code"):
            ok = f.get("device_code") == DEVICE_CODE
            if ok:
                act = "rotate"
        else:
            ok = False
        if not ok:
            self.error("invalid_grant" if grant != "client_credentials" else "invalid_client", short)
            return
        resp = st.issue(ttl)
        if act == "rotate" or grant.endswith("device_code"):
            rt = "rt-" + secrets.token_urlsafe(16)
            st.write("refresh", rt + "\n")
            resp["refresh_token"] = rt
        st.log("/token %s ok%s" % (short, " rotated" if "refresh_token" in resp else ""))
        self.reply(200, resp)

    def drip(self, st, short):
        body = json.dumps(st.issue(3600)).encode()
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        data = head + body
        st.lock.release()   # others may go on meanwhile
        n = 0
        try:
            for i in range(len(data)):
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                n += 1
                time.sleep(1)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass
        finally:
            st.lock.acquire()
        st.log("/token %s drip %d/%d head %d" % (short, n, len(data), len(head)))
        self.close_connection = True

    def assertion_ok(self, st, f):
        if f.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return False
        c = st.verify_jwt(f.get("client_assertion", ""))
        return (c is not None and c.get("iss") == "app" and c.get("sub") == "app" and
                "x5t" in c["_head"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--state", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--pubkey")
    ap.add_argument("--max-time", type=float, default=300)
    a = ap.parse_args()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.st = State(a.state, a.pubkey)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(tmp, a.port_file)
    threading.Timer(a.max_time, lambda: os._exit(0)).start()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
