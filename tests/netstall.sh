#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# netstall.sh DIR CMD...: runs CMD in user, mount and network namespaces of
# its own (unshare -rmn): loopback up, 16 KiB TCP buffers (a peer that
# stops reading blocks the writer within a few segments), ports below 1024
# free to bind, and DIR/resolv.conf ("nameserver 127.0.0.1", made here) as
# /etc/resolv.conf, so a test's own resolver answers, or does not.
# Exits 77, having run nothing, when the namespaces cannot be made.
set -u
if [ "${1:-}" != --inside ]; then
	unshare -rmn true 2>/dev/null || exit 77
	exec unshare -rmn bash "$0" --inside "$@"
fi
shift
dir=$1; shift
ip link set lo up 2>/dev/null || exit 77
for f in tcp_rmem tcp_wmem; do
	echo "4096 16384 16384" >/proc/sys/net/ipv4/$f 2>/dev/null || exit 77
done
echo "nameserver 127.0.0.1" >"$dir/resolv.conf"
mount --bind "$dir/resolv.conf" /etc/resolv.conf 2>/dev/null || exit 77
exec "$@"
