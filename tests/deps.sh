#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Make sure the Debian packages that building outbox and running its tests need
# are installed. Quiet when they all are. As root, installs the missing ones
# (non-interactively, without configuring or starting a system Postfix);
# otherwise prints the apt-get line to run and exits 1.
set -u

# Build, the loopback Postfix, the programs tests/t_callers.sh runs, and what
# tests/t_interop.sh needs (aiosmtpd; the libraries of the Exim and Dovecot it extracts).
pkgs="gcc make pkg-config libssl-dev libbsd-dev libjansson-dev postfix sasl2-bin libsasl2-modules
openssl ca-certificates python3 mandoc procps time iproute2
$(grep -hv '^#' "$(dirname "$0")/callers-deps.txt" "$(dirname "$0")/interop-deps.txt")"

missing=
for p in $pkgs; do
	st=$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null)
	[ "$st" = installed ] || missing="$missing $p"
done
missing=${missing# }
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages: $missing" >&2
	echo "run: sudo apt-get install -y $missing" >&2
	exit 1
fi

echo "deps.sh: installing: $missing" >&2
# "No configuration": the package installs no main.cf and starts no system Postfix;
# the tests run their own instance (tests/postfix.sh).
echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections ||
	exit 1
export DEBIAN_FRONTEND=noninteractive
apt-get update -q || exit 1
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing || exit 1
