#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# The README's quick start in a fresh Debian root, as a newcomer runs it:
#
#   bash tests/fresh.sh [SUITE]     (SUITE: trixie, the default, or bookworm)
#
# Makes a root with `mmdebstrap --variant=apt SUITE` under a temporary
# directory, copies this checkout's tracked files to /root/outbox in it and
# runs there, as root in a chroot inside a private mount namespace (its own
# /proc, /dev, /sys and /tmp): `bash tests/deps.sh && make demo`, then
# `make check` (FRESH_TESTS="t_a t_b" runs only those files: the packages,
# the build, the unit tests and those files). FRESH_PACKAGE=1 then builds
# the Debian package, runs lintian --pedantic, installs and purges it.
# Each step's time and the suite's closing line are printed; the root is
# removed at the end (FRESH_KEEP=1 keeps it). Needs root and the network
# (Debian's mirror). Exits 0 when every step passed.
set -u -o pipefail
suite=${1:-trixie}
# FRESH_SRC: another checkout to try (an older commit, for comparison).
src=${FRESH_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
[ "$(id -u)" = 0 ] || { echo "fresh.sh: needs root (mmdebstrap, chroot)" >&2; exit 1; }
command -v mmdebstrap >/dev/null ||
	{ echo "fresh.sh: needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 1; }

W=$(mktemp -d "${TMPDIR:-/var/tmp}/outbox-fresh.XXXXXX") || exit 1
R=$W/root
cleanup() { [ -n "${FRESH_KEEP:-}" ] && echo "fresh.sh: kept $W" || rm -rf "$W"; }
trap cleanup EXIT

t0=$SECONDS
step() { printf '\n=== fresh %s: %s (at %d s)\n' "$suite" "$*" $((SECONDS - t0)); }

step "mmdebstrap --variant=apt $suite"
if ! mmdebstrap --variant=apt "$suite" "$R" >"$W/mmdebstrap.log" 2>&1; then
	tail -20 "$W/mmdebstrap.log"
	exit 1
fi
cp /etc/resolv.conf "$R/etc/resolv.conf"
mkdir -p "$R/root/outbox"
git -C "$src" ls-files -z | (cd "$src" && tar --null -T - -cf -) |
	tar -C "$R/root/outbox" -xf - || exit 1
# Nothing installed in the root may start a daemon (policy-rc.d: 101).
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
chmod 755 "$R/usr/sbin/policy-rc.d"

# in_root CMD: runs the shell command CMD in /root/outbox of the root, as
# a login shell would (PATH, HOME), in a private mount namespace whose root
# it is (pivot_root, not chroot: the tests' unshare -r refuses a chroot).
in_root() {
	unshare -m --propagation private sh -c '
		r=$1; shift
		mount --bind "$r" "$r" && mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" &&
		mount --rbind /sys "$r/sys" && mount -t tmpfs tmpfs "$r/tmp" &&
		mount -t tmpfs tmpfs "$r/run" && mkdir -p "$r/.oldroot" &&
		cd "$r" && pivot_root . .oldroot && cd / || exit 1
		/.oldroot/bin/umount -l /.oldroot
		exec /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
		    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		    OUTBOX_PORT_BASE="${OUTBOX_PORT_BASE:-}" \
		    bash -c "cd /root/outbox && $*"' sh "$R" "$@"
}

rc=0
step "bash tests/deps.sh && make demo"
in_root 'bash tests/deps.sh && make demo' >"$W/demo.log" 2>&1 || rc=1
grep -E '^(demo|deps\.sh):' "$W/demo.log" | tail -3
[ $rc = 0 ] || { tail -30 "$W/demo.log"; exit 1; }
if [ -n "${FRESH_TESTS:-}" ]; then
	step "tests/deps.sh, make, tests/run.sh $FRESH_TESTS"
	in_root "bash tests/deps.sh && make outbox tests/unit && bash tests/run.sh $FRESH_TESTS" \
	    >"$W/check.log" 2>&1 || rc=1
else
	step "make check"
	in_root 'make check' >"$W/check.log" 2>&1 || rc=1
fi
sed -n '/^skipped:$/,/^[^ ]/p' "$W/check.log" | head -25
grep -E '^[0-9]+ passed, ' "$W/check.log" | tail -1
# No deprecation noise from the release's compilers and Python.
n=$(grep -ciE 'deprecat' "$W/check.log")
[ "$n" = 0 ] || { echo "fresh.sh: $n lines about deprecations:"; grep -iE 'deprecat' "$W/check.log" | sort | uniq -c | head -5; rc=1; }
[ $rc = 0 ] || grep -E '^FAIL ' "$W/check.log" | head -20

if [ -n "${FRESH_PACKAGE:-}" ] && [ $rc = 0 ]; then
	step "the Debian package: build, lintian --pedantic, install, purge"
	in_root 'apt-get install -y -q --no-install-recommends dpkg-dev debhelper lintian </dev/null &&
	    apt-get build-dep -y -q ./ </dev/null && make clean &&
	    dpkg-buildpackage -us -uc -b && lintian --pedantic --fail-on error,warning ../outbox_*.deb &&
	    { apt-get install -y -q ../outbox_*.deb </dev/null && outbox --help >/dev/null &&
	      apt-get purge -y -q outbox </dev/null; } >/tmp/dpkg.log 2>&1; r=$?; cat /tmp/dpkg.log;
	    [ $r = 0 ] && ! grep -E "^dpkg: warning" /tmp/dpkg.log' >"$W/package.log" 2>&1 || rc=1
	grep -E '^(E|W|I|P): ' "$W/package.log" | head -20
	[ $rc = 0 ] || tail -30 "$W/package.log"
fi
step "done: $([ $rc = 0 ] && echo passed || echo FAILED)"
exit $rc
