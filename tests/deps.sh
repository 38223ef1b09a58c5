#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Make sure the Debian packages that building outbox and running its tests
# need are installed (Debian 12 and 13). Quiet when they all are. As root,
# installs the missing ones (non-interactively, without configuring or
# starting a system Postfix; apt-get update first when apt has no lists, as
# in a fresh root); otherwise prints the apt-get line to run and exits 1.
#
# Names are checked against what is installed and what installed packages
# provide. The libraries that t_interop's extracted Exim and Dovecot load
# are not named here: they are the lib* dependencies of those packages as
# apt knows them on this release (Debian 13 renamed several, e.g. libdb5.3
# to libdb5.3t64).
set -u
here=$(dirname "$0")

# Build, the loopback Postfix, the programs tests/t_callers.sh runs,
# python3-aiosmtpd for tests/t_interop.sh.
pkgs="gcc libc6-dev make pkg-config libssl-dev libbsd-dev libjansson-dev
postfix sasl2-bin libsasl2-modules openssl ca-certificates python3 mandoc
procps time iproute2 python3-aiosmtpd
$(grep -hv '^#' "$here/callers-deps.txt")"
# Whose shared libraries t_interop needs (it runs them extracted, not installed).
libs_of="exim4-daemon-light dovecot-core dovecot-submissiond"

root=
[ "$(id -u)" = 0 ] && root=1
export DEBIAN_FRONTEND=noninteractive

# A fresh root has no package lists: nothing to resolve or install from.
if [ -n "$root" ] && ! apt-cache show postfix >/dev/null 2>&1; then
	echo "deps.sh: apt has no package lists: apt-get update" >&2
	apt-get update -q >&2 || exit 1
fi

# libs: the lib* packages libs_of depends on (the first of alternatives).
libs=$(apt-cache depends --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances $libs_of 2>/dev/null |
    awk '$1 ~ /^(Pre)?Depends:$/ && $2 ~ /^lib/ { print $2 }' | sort -u)

# have: every installed package, and every name an installed package provides.
have=$(dpkg-query -W -f '${db:Status-Status} ${Package} ${Provides}\n' 2>/dev/null |
    awk '$1 == "installed" { for (i = 2; i <= NF; i++) { sub(/,$/, "", $i)
	if ($i !~ /^[(=<>]/ && $i !~ /\)$/) { sub(/:.*/, "", $i); print $i } } }' |
    sort -u)
# shellcheck disable=SC2086
missing=$(printf '%s\n' $pkgs $libs | sort -u | comm -23 - <(printf '%s\n' "$have") | xargs)
[ -z "$missing" ] && exit 0

if [ -z "$root" ]; then
	echo "deps.sh: missing packages; as root run: apt-get install -y --no-install-recommends $missing" >&2
	exit 1
fi

echo "deps.sh: installing: $missing" >&2
# "No configuration": the package installs no main.cf and starts no system Postfix;
# the tests run their own instance (tests/postfix.sh).
echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections ||
	exit 1
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing </dev/null || {
	# Stale lists (a package moved to a new version): update once, again.
	apt-get update -q >&2 &&
	apt-get install -y -q --no-install-recommends $missing </dev/null
} || exit 1
