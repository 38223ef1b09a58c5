#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# make check-package: builds the Debian package (twice, the second with a
# higher version), runs lintian on it, and in a throwaway Debian 12 root
# (mmdebstrap into $TESTROOT; every command inside runs in a private mount
# namespace) with Postfix installed: apt swaps Postfix for outbox, sendmail
# delivers to a fault server on 127.0.0.1, mailq shows a queued message,
# the package upgrades over itself with the queue kept, then it is removed
# and purged (queue, configuration and group gone) and Postfix comes back.
# Nothing of the host changes. Needs root, dpkg-buildpackage, lintian and
# mmdebstrap (.ci/run installs them); the mirror is the host's apt sources.
# Closes with "N passed, N failed".
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
export TESTROOT; TESTROOT=$(mktemp -d /tmp/outbox-package.XXXXXX)
export RESULTS=$TESTROOT/results
: >"$RESULTS"
# lib.sh's checks, lintian and the build make their temporary files here,
# not in the host's /tmp (52 files and lintian's mldbm-elf-* were left).
export TMPDIR=$TESTROOT/tmp
mkdir -p "$TMPDIR"
. "$top/tests/lib.sh"
FS=$TESTROOT/fs
R=$TESTROOT/root
mkdir -p "$FS"
SECONDS=0

finish() {
	fault_stop
	local npass nfail
	npass=$(grep -c '^PASS ' "$RESULTS")
	nfail=$(grep -c '^FAIL ' "$RESULTS")
	[ "$nfail" -gt 0 ] && { echo "failed:"; grep '^FAIL ' "$RESULTS" | sed 's/^FAIL /  /'; }
	echo "package test: ${SECONDS} s"
	[ "$nfail" -eq 0 ] && [ -z "${KEEP:-}" ] && rm -rf "$TESTROOT"
	echo "$npass passed, $nfail failed"
	[ "$nfail" -eq 0 ] && [ "$npass" -gt 0 ]
	exit
}

for t in dpkg-buildpackage lintian mmdebstrap unshare; do
	command -v "$t" >/dev/null || { fail pkg-tools "$t is missing (.ci/run installs it)"; finish; }
done
[ "$(id -u)" = 0 ] || { fail pkg-root "needs root (mmdebstrap, chroot)"; finish; }

# in_root CMD...: CMD inside the root, with /proc and /dev mounted in a
# mount namespace of its own (gone when CMD ends), the host's network.
in_root() {
	unshare -m --propagation private -- sh -c 'r=$1; shift
		mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" &&
		exec chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		    DEBIAN_FRONTEND=noninteractive "$@"' sh "$R" "$@"
}

# build DIR VERSION: the package from a copy of the tree, at VERSION.
build() {
	mkdir -p "$1/outbox"
	(cd "$top" && git ls-files -co --exclude-standard -z |
		xargs -0 cp --parents -t "$1/outbox")
	if [ "$2" != base ]; then
		{ printf 'outbox (%s) unstable; urgency=medium\n\n  * Test build.\n\n' "$2"
		  printf ' -- outbox tests <tests@example.test>  %s\n\n' "$(date -R)"
		  cat "$1/outbox/debian/changelog"; } >"$1/changelog.new"
		mv "$1/changelog.new" "$1/outbox/debian/changelog"
	fi
	(cd "$1/outbox" && dpkg-buildpackage -us -uc -b) >"$1/build.log" 2>&1
}

echo "== build"
if build "$TESTROOT/b1" base; then pass pkg-build; else
	fail pkg-build "$(tail -20 "$TESTROOT/b1/build.log")"; finish; fi
DEB1=$(ls "$TESTROOT"/b1/outbox_*_*.deb)
lintian --pedantic -I "$TESTROOT"/b1/outbox_*.changes >"$TESTROOT/lintian.log" 2>&1
cat "$TESTROOT/lintian.log"
expect_nogrep pkg-lintian '^[EW]: ' "$TESTROOT/lintian.log"
dpkg-deb -c "$DEB1" | awk '{ print $6 }' >"$TESTROOT/contents"
for f in usr/sbin/outbox usr/sbin/sendmail usr/lib/sendmail usr/bin/mailq \
    usr/bin/newaliases usr/share/man/man8/outbox.8.gz \
    usr/share/man/man5/outbox.conf.5.gz usr/share/man/man8/sendmail.8.gz \
    usr/share/man/man1/mailq.1.gz usr/share/man/man8/newaliases.8.gz \
    etc/cron.d/outbox etc/outbox.conf; do
	expect_grep "pkg-ships-$f" "^\./$f\$" "$TESTROOT/contents"
done
# The units: /lib/systemd/system on Debian 12, /usr/lib/... on 13 (debian/rules).
for f in outbox-queue.service outbox-queue.timer; do
	expect_grep "pkg-ships-$f" "^\./(usr/)?lib/systemd/system/$f\$" "$TESTROOT/contents"
done
dpkg-deb -f "$DEB1" Provides Conflicts Replaces >"$TESTROOT/fields"
expect_eq pkg-mta-fields "$(grep -c ': mail-transport-agent$' "$TESTROOT/fields")" 3
if build "$TESTROOT/b2" 0.1.0+pkgtest1; then pass pkg-build-2; else
	fail pkg-build-2 "$(tail -20 "$TESTROOT/b2/build.log")"; finish; fi
DEB2=$(ls "$TESTROOT"/b2/outbox_*_*.deb)
echo "== built in ${SECONDS} s"

# The root: Debian 12 with Postfix, from the host's own apt sources; apt's
# lists and downloads are kept so that Postfix can come back offline.
src=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] && grep -Eq '^[[:space:]]*(deb |Types:)' "$f" && src+=("$f")
done
if mmdebstrap --variant=apt --skip=cleanup/apt,download/empty \
    --include=postfix,adduser,libssl3,libbsd0 bookworm "$R" "${src[@]}" \
    >"$TESTROOT/mmdebstrap.log" 2>&1; then pass pkg-root; else
	fail pkg-root "$(tail -20 "$TESTROOT/mmdebstrap.log")"; finish; fi
echo "== root made at ${SECONDS} s"
# Nothing the packages install may start a daemon (policy-rc.d, 101).
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
chmod 755 "$R/usr/sbin/policy-rc.d"
mkdir -p "$R/tmp/pkg"
cp "$DEB1" "$DEB2" "$R/tmp/pkg/"
D1=/tmp/pkg/$(basename "$DEB1") D2=/tmp/pkg/$(basename "$DEB2")

# status PKG: dpkg's state of PKG in the root ("not-installed" if none).
status() { in_root dpkg-query -W -f '${db:Status-Status}' "$1" 2>/dev/null || echo not-installed; }
# mode PATH: owner, group and octal mode of PATH in the root.
mode() { in_root stat -c '%U:%G %a' "$1" 2>&1; }

echo "== install: apt swaps postfix for outbox"
expect_eq pkg-postfix-before "$(status postfix)" installed
expect_exit 0 pkg-apt-install in_root apt-get install -y -q "$D1"
expect_eq pkg-postfix-gone "$(status postfix)" config-files
expect_eq pkg-outbox-in "$(status outbox)" installed
for l in /usr/sbin/sendmail /usr/lib/sendmail /usr/bin/mailq /usr/bin/newaliases; do
	expect_eq "pkg-link-$l" "$(in_root readlink -f "$l")" /usr/sbin/outbox
done
expect_eq pkg-binary-mode "$(mode /usr/sbin/outbox)" "root:outbox 2755"
expect_eq pkg-conf-mode "$(mode /etc/outbox.conf)" "root:outbox 640"
expect_eq pkg-queue-mode "$(mode /var/spool/outbox)" "root:outbox 2770"
check pkg-timer-enabled test -L "$R/etc/systemd/system/timers.target.wants/outbox-queue.timer"
expect_grep pkg-cron-fallback '^\*/5 \* \* \* \* root test -d /run/systemd/system \|\| .*/usr/sbin/outbox -q --due' \
	"$R/etc/cron.d/outbox"
# The cron line's command, as cron's sh runs it (no systemd in the root).
CRONCMD=$(awk '!/^#/ && NF { $1 = $2 = $3 = $4 = $5 = $6 = ""; print }' "$R/etc/cron.d/outbox")
expect_exit 75 pkg-check-template in_root outbox --check
expect_grep pkg-check-explains 'no smarthost configured.*/etc/outbox.conf' "$OUT"

echo "== sendmail delivers"
fault_start pkg --ext PIPELINING,8BITMIME
cat >>"$R/etc/outbox.conf" <<EOF
host 127.0.0.1
port $PORT
tls off
from root@example.test
maildomain example.test
log off
EOF
# as_nobody CMD...: CMD in the root as nobody, as a local user sends.
as_nobody() { in_root setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
printf 'Subject: pkg test 1\n\nfrom the package\n' >"$R/tmp/m1"
expect_exit 0 pkg-sendmail as_nobody sh -c 'sendmail -i a@example.test </tmp/m1'
expect_grep pkg-delivered '^D: end of data' "$LOG"
expect_grep pkg-delivered-body 'from the package' "$LOG.data"
fault_stop

echo "== mailq shows what waits"
sed -i "s/^port $PORT\$/port 1/" "$R/etc/outbox.conf"
printf 'Subject: pkg test 2\n\nwaits\n' >"$R/tmp/m2"
expect_exit 0 pkg-queued as_nobody sh -c 'sendmail -i waiting@example.test </tmp/m2'
expect_exit 0 pkg-mailq as_nobody mailq
expect_grep pkg-mailq-shows 'waiting@example.test' "$OUT"
nq=$(find "$R/var/spool/outbox" -type f | wc -l)
check pkg-queue-files test "$nq" -gt 0

echo "== upgrade keeps the queue and the configuration"
expect_exit 0 pkg-upgrade in_root apt-get install -y -q "$D2"
expect_eq pkg-upgraded "$(in_root dpkg-query -W -f '${Version}' outbox)" 0.1.0+pkgtest1
expect_eq pkg-queue-kept "$(find "$R/var/spool/outbox" -type f | wc -l)" "$nq"
expect_exit 0 pkg-mailq-after as_nobody mailq
expect_grep pkg-mailq-after-shows 'waiting@example.test' "$OUT"
expect_grep pkg-conf-kept '^tls off$' "$R/etc/outbox.conf"
expect_eq pkg-binary-mode-after "$(mode /usr/sbin/outbox)" "root:outbox 2755"
expect_eq pkg-conf-mode-after "$(mode /etc/outbox.conf)" "root:outbox 640"
# The queue still goes, after the upgrade, as the timer would run it.
fault_start pkg2 --ext PIPELINING,8BITMIME
sed -i "s/^port 1\$/port $PORT/" "$R/etc/outbox.conf"
expect_exit 0 pkg-queue-run in_root outbox -q
expect_grep pkg-queue-delivered 'waits' "$LOG.data"
fault_stop

echo "== remove keeps the queue; purge takes everything"
expect_exit 0 pkg-remove in_root apt-get remove -y -q outbox
check pkg-removed-sendmail test ! -e "$R/usr/sbin/sendmail"
check pkg-remove-keeps-queue test -d "$R/var/spool/outbox"
expect_exit 0 pkg-cron-quiet-after-remove in_root sh -c "$CRONCMD"
expect_exit 0 pkg-purge in_root apt-get purge -y -q outbox
expect_eq pkg-purged "$(status outbox)" not-installed
check pkg-purge-queue test ! -e "$R/var/spool/outbox"
check pkg-purge-conf test ! -e "$R/etc/outbox.conf"
expect_exit 2 pkg-purge-group in_root getent group outbox
expect_eq pkg-purge-overrides "$(in_root dpkg-statoverride --list | grep -c outbox)" 0
expect_exit 0 pkg-postfix-back in_root apt-get install -y -q --no-install-recommends --no-download postfix
expect_eq pkg-postfix-again "$(status postfix)" installed
finish
