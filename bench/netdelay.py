#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""A userspace packet delayer between two network namespaces (tc netem stand-in).

    netdelay.py CLIENT_NETNS CLIENT_IF SERVER_IF DELAY_MS LOG

Opens two tun devices: SERVER_IF in the current namespace and CLIENT_IF in
the namespace /run/netns/CLIENT_NETNS (entered with setns(2) just for the
open). Every IP packet read from one is written to the other DELAY_MS later,
unchanged and one by one: nothing is coalesced, split or reordered, so TCP
(handshake, ACKs, Nagle, delayed ACK, slow start) behaves as on a link with
that one-way delay. The caller assigns the addresses once "ready" is printed.

For every TCP packet one line goes to LOG (flushed at once):
    t_ms dir sport dport flags payload_len
t_ms is CLOCK_MONOTONIC in ms when the packet was read (it leaves DELAY_MS
later); dir is "c" (client to server) or "s"; flags is a subset of "SAFRP".
bench.py counts round trips from these lines.

Runs until SIGTERM or SIGINT, or for at most --max-seconds (default 3600):
the bench's trap kills it, and the time limit covers a trap that never ran.
"""
import collections
import ctypes
import fcntl
import os
import select
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    os.set_blocking(fd, False)
    return fd


def open_tun_in(netns, name):
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    there = os.open("/run/netns/" + netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(there, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns " + netns)
        try:
            return open_tun(name)
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(home)
        os.close(there)


def tcp_line(pkt):
    """(sport, dport, flags, payload_len) of an IPv4 TCP packet, else None."""
    if len(pkt) < 40 or pkt[0] >> 4 != 4 or pkt[9] != 6:
        return None
    ihl = (pkt[0] & 15) * 4
    total = struct.unpack_from("!H", pkt, 2)[0]
    sport, dport = struct.unpack_from("!HH", pkt, ihl)
    doff = (pkt[ihl + 12] >> 4) * 4
    fl = pkt[ihl + 13]
    flags = "".join(c for c, bit in (("S", 2), ("A", 16), ("F", 1), ("R", 4), ("P", 8)) if fl & bit)
    return sport, dport, flags or "-", total - ihl - doff


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--max-seconds=")]
    limit = 3600.0
    for a in sys.argv[1:]:
        if a.startswith("--max-seconds="):
            limit = float(a.split("=", 1)[1])
    if len(args) != 5:
        sys.exit(__doc__)
    netns, cif, sif, delay_ms, logpath = args
    delay = float(delay_ms) / 1000.0
    cfd = open_tun_in(netns, cif)
    sfd = open_tun(sif)
    log = open(logpath, "a", buffering=1)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    # per direction: packets waiting, (due time, bytes), in arrival order;
    # the delay is constant, so FIFO order is due order.
    q = {cfd: collections.deque(), sfd: collections.deque()}
    other = {cfd: sfd, sfd: cfd}
    tag = {cfd: "c", sfd: "s"}
    print("ready", flush=True)
    end = time.monotonic() + limit
    while not stop and time.monotonic() < end:
        now = time.monotonic()
        # write what is due
        for src in (cfd, sfd):
            dq = q[src]
            while dq and dq[0][0] <= now:
                _, pkt = dq.popleft()
                try:
                    os.write(other[src], pkt)
                except (BlockingIOError, OSError):
                    pass  # a full tun queue drops, as a link would
        due = [dq[0][0] for dq in q.values() if dq]
        timeout = max(0.0, min(due) - time.monotonic()) if due else 0.5
        try:
            r, _, _ = select.select([cfd, sfd], [], [], timeout)
        except InterruptedError:
            continue
        for fd in r:
            for _ in range(256):  # bounded drain per wakeup
                try:
                    pkt = os.read(fd, 65536)
                except BlockingIOError:
                    break
                t = time.monotonic()
                q[fd].append((t + delay, pkt))
                info = tcp_line(pkt)
                if info is not None:
                    log.write("%.3f %s %d %d %s %d\n" % (t * 1000.0, tag[fd], *info))
    log.close()


if __name__ == "__main__":
    main()
