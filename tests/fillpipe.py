#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Runs a command with its stderr on a full pipe that nobody reads.

fillpipe.py PIDFILE CMD...: makes a pipe, fills it until a write would
block, starts CMD with stderr on it, writes CMD's pid to PIDFILE and waits.
Every write CMD makes to stderr blocks for good: a stalled log reader, a
stopped terminal. On SIGTERM the read end is closed (CMD's next write
fails with EPIPE), CMD is waited for and fillpipe ends with its status.
"""
import fcntl
import os
import signal
import subprocess
import sys

F_SETPIPE_SZ = 1031


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: fillpipe.py PIDFILE CMD...")
    pidfile, cmd = sys.argv[1], sys.argv[2:]
    r, w = os.pipe()
    try:
        fcntl.fcntl(w, F_SETPIPE_SZ, 4096)  # the smallest: fills at once
    except OSError:
        pass
    os.set_blocking(w, False)
    try:
        while True:
            os.write(w, b"x" * 4096)
    except BlockingIOError:
        pass
    os.set_blocking(w, True)
    child = subprocess.Popen(cmd, stderr=w, stdin=subprocess.DEVNULL)
    os.close(w)
    with open(pidfile + ".tmp", "w") as f:
        f.write("%d\n" % child.pid)
    os.rename(pidfile + ".tmp", pidfile)

    closed = []

    def stop(signum, frame):
        # Only this: wait() is not reentrant, the main line waits on.
        if not closed:
            os.close(r)
            closed.append(1)

    signal.signal(signal.SIGTERM, stop)
    rc = child.wait()
    stop(0, None)
    sys.exit(rc)


if __name__ == "__main__":
    main()
