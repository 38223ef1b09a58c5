# SPDX-License-Identifier: ISC
# shellcheck shell=bash
# Debian packages run without installing them, for tests/exim.sh and
# tests/dovecot.sh. Source it; never run it.
#
# deb_fetch ROOT PKG...   `apt-get download` the packages into ROOT/debs and
#                         `dpkg -x` them into ROOT/tree (once: ROOT/.fetched
#                         lists what is there). Needs apt's lists (apt-get update).
# deb_users ROOT NAME...  ROOT/passwd and ROOT/group: copies of the system's with
#                         a user and a group NAME added for each NAME the system
#                         lacks, at free ids from 64900 up; sets DEB_UID[NAME].
# deb_ns ROOT CMD...      runs CMD in a private mount namespace in which ROOT/tree/usr
#                         lies over /usr (a read-only overlay) and ROOT/passwd,
#                         ROOT/group over /etc/passwd, /etc/group. Daemons CMD starts
#                         keep the namespace; it goes when the last of them exits.
# Nothing outside ROOT is written; the system's package database is not touched.

declare -A DEB_UID

deb_fetch() {
	local root=$1 f; shift
	[ -f "$root/.fetched" ] && [ "$(cat "$root/.fetched")" = "$*" ] && return 0
	rm -rf "$root/debs" "$root/tree"
	mkdir -p "$root/debs" "$root/tree" || return 1
	# _apt cannot write into a private directory: apt then downloads as root
	# and says so on stderr; that is expected.
	(cd "$root/debs" && apt-get download -q "$@") >"$root/download.log" 2>&1 || {
		echo "apt-get download $* failed: $(grep -E '^E:' "$root/download.log" | head -2)" >&2
		return 1
	}
	for f in "$root"/debs/*.deb; do
		dpkg -x "$f" "$root/tree" || { echo "dpkg -x $f failed" >&2; return 1; }
	done
	printf '%s\n' "$*" >"$root/.fetched"
}

# _deb_free_id FILE...: the first id from 64900 up that no FILE (passwd/group) uses
_deb_free_id() {
	local id=64900
	while cut -d: -f3 "$@" | grep -qx "$id"; do id=$((id + 1)); done
	echo "$id"
}

deb_users() {
	local root=$1 name id; shift
	cp /etc/passwd "$root/passwd" && cp /etc/group "$root/group" || return 1
	for name in "$@"; do
		id=$(awk -F: -v n="$name" '$1 == n { print $3 }' "$root/passwd")
		if [ -z "$id" ]; then
			id=$(_deb_free_id "$root/passwd" "$root/group")
			echo "$name:x:$id:$id:outbox test:/nonexistent:/usr/sbin/nologin" >>"$root/passwd"
			echo "$name:x:$id:" >>"$root/group"
		fi
		DEB_UID[$name]=$id
	done
	chmod 644 "$root/passwd" "$root/group"
}

deb_ns() {
	local root=$1; shift
	unshare -m --propagation private sh -c '
		r=$1; shift
		mount -t overlay overlay -o "lowerdir=$r/tree/usr:/usr" /usr &&
		mount --bind "$r/passwd" /etc/passwd &&
		mount --bind "$r/group" /etc/group &&
		exec "$@"' sh "$root" "$@"
}

# deb_ns_ok DIR: can this machine run deb_ns (a mount namespace, an overlay on
# /usr)? DIR is a scratch directory. Says why not on stderr.
deb_ns_ok() {
	local d=$1
	mkdir -p "$d/probe/usr" || return 1
	if ! unshare -m --propagation private sh -c \
		'mount -t overlay overlay -o "lowerdir=$1/probe/usr:/usr" /usr' sh "$d" 2>"$d/probe.err"; then
		echo "no private mount namespace with an overlay on /usr: $(head -c 200 "$d/probe.err")" >&2
		return 1
	fi
}

# deb_pids PATTERN: pids of processes whose command line contains PATTERN
# (a path under the instance's DIR, so only that instance's processes match).
deb_pids() {
	python3 "$(dirname "${BASH_SOURCE[0]}")/procpids.py" cmdline "$1" $$
}

# deb_kill PATTERN: TERM, then after up to 5 s KILL, every process deb_pids finds.
deb_kill() {
	local pids
	pids=$(deb_pids "$1")
	[ -n "$pids" ] || return 0
	# shellcheck disable=SC2086
	kill $pids 2>/dev/null
	for _ in $(seq 50); do
		pids=$(deb_pids "$1")
		[ -z "$pids" ] && return 0
		sleep 0.1
	done
	# shellcheck disable=SC2086
	kill -KILL $pids 2>/dev/null
	sleep 0.2
}
