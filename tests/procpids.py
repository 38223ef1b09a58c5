#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
# procpids.py cmdline|environ STRING [PID]: the pids of the processes whose
# command line (its arguments joined by spaces) contains STRING, or whose
# environment has the entry STRING (such as MAIL_CONFIG=DIR/etc), one a
# line. PID (the calling shell), this process and its parent are left out.
# One pass over /proc in one process: a tr and a grep per process took
# 19-29 s per stop on a busy machine (tests/postfix.sh, tests/debroot.sh).
import os
import sys


def matches(mode, want, pid):
    try:
        with open("/proc/%s/%s" % (pid, mode), "rb") as f:
            data = f.read()
    except OSError:
        return False
    if mode == "cmdline":
        return want in data.replace(b"\0", b" ")
    return want in data.split(b"\0")


def main():
    if len(sys.argv) not in (3, 4) or sys.argv[1] not in ("cmdline", "environ"):
        sys.exit("usage: procpids.py cmdline|environ STRING [PID]")
    mode, want = sys.argv[1], os.fsencode(sys.argv[2])
    skip = {str(os.getpid()), str(os.getppid())}
    if len(sys.argv) == 4:
        skip.add(sys.argv[3])
    for pid in os.listdir("/proc"):
        if pid.isdigit() and pid not in skip and matches(mode, want, pid):
            print(pid)


main()
