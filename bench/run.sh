#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# make bench: outbox against Debian's msmtp, side by side (issue #6).
# Not a test and never run by CI: it prints a table of medians and
# outbox/msmtp ratios, and writes it to bench/RESULTS.md.
#
# Needs root on Debian 12: installs what is missing (msmtp, valgrind, Postfix,
# ...), builds outbox, starts a private Postfix (tests/postfix.sh, port base
# $OUTBOX_BENCH_PORT_BASE, default 40000) with the message size limit lifted,
# and a delayed link: a network namespace joined to this one by two tun
# devices and bench/netdelay.py, a userspace packet delayer (25 ms each way;
# this kernel has no netem). Postfix gets a second submission listener on the
# link's address. A second private Postfix, a null client relaying to the
# first (bench/nullclient.sh), is the anchor of the bulk row. Everything is
# stopped and removed on exit.
#
# Knobs (environment): BENCH_DIR (scratch, default /tmp/outbox-bench),
# BENCH_N_SMALL (11), BENCH_N_LARGE (3), BENCH_N_BATCH (3),
# BENCH_N_BATCH_DELAY (3), BENCH_GIB (1; 0 skips the 1 GiB message),
# BENCH_N_FLUSH (10000: section 7, that many queued messages and one
# `outbox -q` to a loopback tests/faultsmtp.py), BENCH_MAX_SECONDS (1800),
# BENCH_BULK (1000), BENCH_N_BULK (1), BENCH_ONLY (e.g. "7,8": only those
# sections; 7 needs neither Postfix nor the link), RESULTS (default bench/RESULTS.md);
# BENCH_HOLD=SECONDS sets everything up, runs nothing, and keeps it all up
# that long for profiling by hand (BENCH_DIR/hold.env has the addresses).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

BENCH_DIR=${BENCH_DIR:-/tmp/outbox-bench}
PORT_BASE=${OUTBOX_BENCH_PORT_BASE:-40000}
NETNS=outbox-bench
CIF=obb-c SIF=obb-s		# tun devices: client namespace, this one
SADDR=10.213.77.1 CADDR=10.213.77.2
DELAY_MS=25
export RESULTS=${RESULTS:-$top/bench/RESULTS.md}
PY=/usr/bin/python3

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: it installs packages, starts Postfix and makes a network namespace"

# ---- packages
pkgs="gcc make pkg-config libssl-dev libbsd-dev postfix sasl2-bin libsasl2-modules
openssl ca-certificates python3 procps time iproute2 msmtp valgrind"
missing=
for p in $pkgs; do
	st=$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || missing="$missing $p"
done
if [ -n "$missing" ]; then
	say "installing:$missing"
	# no system Postfix configuration; no AppArmor question from msmtp
	printf '%s\n' 'postfix postfix/main_mailer_type select No configuration' \
		'msmtp msmtp/apparmor boolean false' | debconf-set-selections
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing </dev/null
fi

say "make"
make outbox >&2

# ---- cleanup of everything this script starts
DELAYER_PID= HOLD_PID=
cleanup() {
	set +e
	[ -n "$HOLD_PID" ] && kill "$HOLD_PID" 2>/dev/null
	if [ -n "$DELAYER_PID" ]; then
		kill "$DELAYER_PID" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$DELAYER_PID" 2>/dev/null || break; sleep 0.1; done
	fi
	ip netns del "$NETNS" 2>/dev/null
	[ -f "$BENCH_DIR/postfix/env" ] && bash "$top/tests/postfix.sh" stop "$BENCH_DIR/postfix" >/dev/null 2>&1
	bash "$top/bench/nullclient.sh" stop "$BENCH_DIR/nullclient" >/dev/null 2>&1
	rm -rf "$BENCH_DIR/msgs" "$BENCH_DIR"/queue-* "$BENCH_DIR/postfix/mail"/*/new 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$BENCH_DIR"
chmod 711 "$BENCH_DIR"
gcc -O2 -Wall -o "$BENCH_DIR/spawn" "$top/bench/spawn.c"
# run a copy, so that a rebuild during the run cannot mix two versions
install -m 755 outbox "$BENCH_DIR/outbox"
OUTBOX_REV="$(git -C "$top" rev-parse --short HEAD 2>/dev/null)$(git -C "$top" diff --quiet HEAD 2>/dev/null || echo ' with uncommitted changes')"

# ---- Postfix, with no size limit (the 1 GiB message)
say "starting Postfix (tests/postfix.sh, port base $PORT_BASE) in $BENCH_DIR/postfix"
rm -rf "$BENCH_DIR/postfix/mail"
OUTBOX_PORT_BASE=$PORT_BASE bash tests/postfix.sh start "$BENCH_DIR/postfix" ||
	die "Postfix did not start"
# shellcheck disable=SC1091
. "$BENCH_DIR/postfix/env"
postconf -c "$PF_CONF" -e message_size_limit=0 mailbox_size_limit=0 virtual_mailbox_limit=0

say "starting the Postfix null client (bench/nullclient.sh) in $BENCH_DIR/nullclient"
bash bench/nullclient.sh start "$BENCH_DIR/nullclient" "$PF_SUBMIT" "$PF_CA" ||
	die "the Postfix null client did not start"

# ---- the delayed link
say "delayed link: namespace $NETNS, $CADDR <-> $SADDR, $DELAY_MS ms each way"
ip netns del "$NETNS" 2>/dev/null || true
ip netns add "$NETNS"
ip -n "$NETNS" link set lo up
: >"$BENCH_DIR/delay.log"
$PY "$top/bench/netdelay.py" "$NETNS" "$CIF" "$SIF" "$DELAY_MS" "$BENCH_DIR/delay.log" \
	--max-seconds=3600 >"$BENCH_DIR/netdelay.out" 2>&1 &
DELAYER_PID=$!
for _ in $(seq 50); do grep -q ready "$BENCH_DIR/netdelay.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$BENCH_DIR/netdelay.out" || die "netdelay.py: $(cat "$BENCH_DIR/netdelay.out")"
sysctl -qw "net.ipv6.conf.$SIF.disable_ipv6=1" 2>/dev/null || true
ip netns exec "$NETNS" sysctl -qw "net.ipv6.conf.$CIF.disable_ipv6=1" 2>/dev/null || true
ip addr add "$SADDR" peer "$CADDR" dev "$SIF"
ip link set "$SIF" up
ip -n "$NETNS" addr add "$CADDR" peer "$SADDR" dev "$CIF"
ip -n "$NETNS" link set "$CIF" up

# a certificate for the link's address from the test CA, and a listener there
# like the loopback submission port (STARTTLS required, AUTH after TLS)
pki=$BENCH_DIR/pki-delay
mkdir -p "$pki"
(
	cd "$pki"
	umask 077
	printf 'subjectAltName = DNS:mail.example.test,IP:%s\nextendedKeyUsage = serverAuth\nbasicConstraints = critical,CA:FALSE\n' \
		"$SADDR" >ext.cnf
	openssl req -new -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
		-subj /CN=mail.example.test 2>/dev/null
	openssl x509 -req -in server.csr -CA "$PF_DIR/pki/ca.pem" -CAkey "$PF_DIR/pki/ca.key" \
		-set_serial 77 -days 7 -extfile ext.cnf -out server.pem 2>/dev/null
)
cat >>"$PF_CONF/master.cf" <<EOF
$SADDR:$PF_SUBMIT inet n - n - - smtpd
  -o syslog_name=outbox-test-postfix/delayed
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_chain_files=$pki/server.key,$pki/server.pem
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
EOF
postfix -c "$PF_CONF" reload >/dev/null 2>&1 || die "postfix reload failed"
up=0
for _ in $(seq 100); do
	if ip netns exec "$NETNS" $PY -c "
import smtplib, sys
s = smtplib.SMTP('$SADDR', $PF_SUBMIT, timeout=2); s.ehlo('probe')
sys.exit(0 if s.has_extn('starttls') else 1)" 2>/dev/null; then
		up=1
		break
	fi
	sleep 0.2
done
[ $up = 1 ] || die "Postfix does not answer on $SADDR:$PF_SUBMIT across the link"

# ---- the machine
mf=$BENCH_DIR/machine.md
{
	echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) memory,"
	echo "Debian $(cat /etc/debian_version), kernel $(uname -r), $(openssl version | cut -d' ' -f1-2),"
	echo "$(msmtp --version | head -1) with GnuTLS $(dpkg-query -W -f '${Version}' libgnutls30 2>/dev/null),"
	echo "Postfix $(postconf -h -c "$PF_CONF" mail_version), $(valgrind --version), $(gcc --version | head -1)."
	echo "outbox $OUTBOX_REV,"
	echo "built with \`make\` (CFLAGS -O2 -g). Run on $(date -u '+%Y-%m-%d %H:%M UTC')."
	echo
	echo "Server: tests/postfix.sh's Postfix on 127.0.0.1 (submission port, STARTTLS + SASL),"
	echo "message_size_limit=0; every message is delivered to a Maildir (pipe to deliver.sh)."
	echo "Delayed link: a network namespace joined by two tun devices and bench/netdelay.py,"
	echo "which forwards each IP packet, unchanged, ${DELAY_MS} ms after it arrives (RTT $((2 * DELAY_MS)) ms;"
	echo "the kernel has no netem); Postfix listens on $SADDR too, with a certificate for that address."
} >"$mf"

if [ -n "${BENCH_HOLD:-}" ]; then
	# for profiling by hand: keep Postfix and the link up for BENCH_HOLD seconds
	printf '. %s\nNETNS=%s SADDR=%s CADDR=%s DELAY_LOG=%s\n' "$BENCH_DIR/postfix/env" \
		"$NETNS" "$SADDR" "$CADDR" "$BENCH_DIR/delay.log" >"$BENCH_DIR/hold.env"
	say "holding for $BENCH_HOLD s (source $BENCH_DIR/hold.env; kill $$ to stop)"
	sleep "$BENCH_HOLD" &
	HOLD_PID=$!
	wait $HOLD_PID || true
	exit 0
fi

say "running bench/bench.py (results: $RESULTS)"
start=$SECONDS
BENCH_DIR=$BENCH_DIR OUTBOX=$BENCH_DIR/outbox MSMTP=/usr/bin/msmtp PF_ENV=$BENCH_DIR/postfix/env \
	SPAWN=$BENCH_DIR/spawn PFC_DIR=$BENCH_DIR/nullclient \
	DELAY_NETNS=$NETNS DELAY_ADDR=$SADDR DELAY_PORT=$PF_SUBMIT DELAY_LOG=$BENCH_DIR/delay.log \
	DELAY_MS=$DELAY_MS MACHINE_FILE=$mf \
	timeout 3000 $PY "$top/bench/bench.py"
say "done in $((SECONDS - start)) s"
