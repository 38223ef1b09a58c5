#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# A private loopback Exim 4 (Debian 12's exim4-daemon-light) for the interop tests.
#
#   bash tests/exim.sh start DIR   fetch and extract the package, configure, start
#   bash tests/exim.sh stop DIR    stop it
#
# The package is not installed (it conflicts with postfix in apt): `apt-get
# download` + `dpkg -x` into DIR/pkg (or $EXIM_PKG if set, a cache shared between
# runs), and exim runs in a private mount namespace (tests/debroot.sh) with the
# package over /usr and a private /etc/passwd naming its Debian-exim user. Needs
# root and apt's lists. Nothing outside DIR (and $EXIM_PKG) is written.
#
# Ports, base = $OUTBOX_PORT_BASE (default 20000), on 127.0.0.1 only:
#   base+125  SMTP with STARTTLS; AUTH only after TLS
#   base+165  implicit TLS + AUTH
# Certificate: the test CA's server certificate of tests/postfix.sh ($PKI, by
# default $TESTROOT/postfix/pki: ca.pem, server.pem, server.key).
# AUTH PLAIN, LOGIN, CRAM-MD5; user "interop", password "Interop-Pass-7". Mail is
# accepted only from authenticated clients, only for example.test.
# PIPELINING and CHUNKING on, recipients_max = 10 (the 11th RCPT gets 452).
# RCPT: local parts starting with "reject" get 550, with "defer" 451.
# End of data: a header "X-Test-Fail: 451" gets 451, "X-Test-Fail: 554" gets 554.
# The 451s (the transient faults) are given only while DIR/transient exists
# (made by start; rm it to let those messages through).
# Delivery: DIR/mail/<local part, lower case>/new/ (Maildir, as Debian-exim: with -C,
# Exim's re-executed delivery processes have no root to switch to anyone else), with
# Return-Path added (and Exim's Received). Log: DIR/log/mainlog, rejectlog, paniclog.
# DIR/env: EX_DIR EX_HOST EX_SUBMIT EX_SMTPS EX_CA EX_MAIL EX_LOG EX_USER EX_PASS.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/debroot.sh"

die() { printf 'exim.sh: %s\n' "$*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: exim.sh start|stop DIR"
cmd=$1
case $2 in /*) DIR=$2 ;; *) DIR=$(pwd)/$2 ;; esac
DIR=${DIR%/}
[ -n "$DIR" ] && [ "$DIR" != / ] || die "refusing to use / as DIR"
MARK=$DIR/.outbox-test-exim
PKG=${EXIM_PKG:-$DIR/pkg}
PKI=${PKI:-${TESTROOT:-}/postfix/pki}
base=${OUTBOX_PORT_BASE:-20000}
case $base in *[!0-9]* | '') die "OUTBOX_PORT_BASE must be a number" ;; esac
P_SUBMIT=$((base + 125)) P_SMTPS=$((base + 165))
USER_NAME=interop USER_PASS=Interop-Pass-7

do_stop() {
	[ -f "$MARK" ] || return 0
	deb_kill "$DIR/exim.conf"
}

write_conf() {
	cat >"$DIR/deliver.sh" <<-'EOF'
	#!/bin/sh
	# deliver.sh MAILROOT: stdin -> MAILROOT/<LOCAL_PART, lower case>/new (Maildir)
	lp=$(printf '%s' "$LOCAL_PART" | tr '[:upper:]' '[:lower:]')
	case $lp in '' | .* | */*) echo "bad local part"; exit 67 ;; esac
	d=$1/$lp
	mkdir -p "$d/tmp" "$d/new" "$d/cur" || exit 75
	f=$(date +%s.%N).P$$.exim.example.test
	if cat >"$d/tmp/$f" && mv "$d/tmp/$f" "$d/new/$f"; then exit 0; fi
	rm -f "$d/tmp/$f"
	exit 75
	EOF
	cat >"$DIR/exim.conf" <<-EOF
	# private test instance made by outbox/tests/exim.sh
	primary_hostname = exim.example.test
	local_interfaces = 127.0.0.1
	daemon_smtp_ports = $P_SUBMIT : $P_SMTPS
	tls_on_connect_ports = $P_SMTPS
	spool_directory = $DIR/spool
	log_file_path = $DIR/log/%slog
	pid_file_path = $DIR/exim.pid
	log_selector = +smtp_protocol_error +smtp_syntax_error +tls_certificate_verified +received_recipients +smtp_connection
	domainlist local_domains = example.test
	tls_advertise_hosts = *
	tls_certificate = $DIR/tls/server.pem
	tls_privatekey = $DIR/tls/server.key
	auth_advertise_hosts = \${if def:tls_in_cipher {*}{}}
	pipelining_advertise_hosts = *
	chunking_advertise_hosts = *
	recipients_max = 10
	smtp_accept_max = 100
	smtp_accept_queue_per_connection = 0
	smtp_accept_max_per_connection = 1000
	message_size_limit = 50M
	host_lookup =
	rfc1413_hosts =
	never_users = root
	keep_environment =
	acl_smtp_rcpt = acl_rcpt
	acl_smtp_data = acl_data
	smtp_banner = exim.example.test ESMTP Exim \$version_number (outbox test)

	begin acl
	acl_rcpt:
	  deny    !authenticated = *
	          message = 530 5.7.0 authentication required (test)
	  deny    domains = !+local_domains
	          message = 550 5.7.1 relay not permitted (test)
	  deny    local_parts = ^reject
	          message = 550 5.1.1 <\$local_part@\$domain>: user unknown (test)
	  defer   local_parts = ^defer
	          condition = \${if exists{$DIR/transient}}
	          message = 451 4.3.0 <\$local_part@\$domain>: deferred (test)
	  accept
	acl_data:
	  deny    condition = \${if match{\$h_X-Test-Fail:}{554}}
	          message = 554 5.7.1 refused by X-Test-Fail (test)
	  defer   condition = \${if and {{exists{$DIR/transient}}{match{\$h_X-Test-Fail:}{451}}}}
	          message = 451 4.3.0 deferred by X-Test-Fail (test)
	  accept

	begin routers
	maildir:
	  driver = accept
	  domains = +local_domains
	  local_parts = \N^[a-z0-9][a-z0-9._+=-]*$\N
	  transport = maildir

	begin transports
	# a pipe, because Exim refuses a Maildir path made of the (tainted) local
	# part; the script reads it from the environment (LOCAL_PART)
	maildir:
	  driver = pipe
	  command = /bin/sh $DIR/deliver.sh $DIR/mail
	  message_prefix =
	  message_suffix =
	  return_path_add
	  delivery_date_add = false
	  envelope_to_add = false
	  temp_errors = 75
	  user = Debian-exim

	begin retry
	*  *  F,1h,15m

	begin authenticators
	plain:
	  driver = plaintext
	  public_name = PLAIN
	  server_prompts = :
	  server_condition = \${if and {{eq{\$auth2}{$USER_NAME}}{eq{\$auth3}{$USER_PASS}}}}
	  server_set_id = \$auth2
	login:
	  driver = plaintext
	  public_name = LOGIN
	  server_prompts = Username:: : Password::
	  server_condition = \${if and {{eq{\$auth1}{$USER_NAME}}{eq{\$auth2}{$USER_PASS}}}}
	  server_set_id = \$auth1
	cram:
	  driver = cram_md5
	  public_name = CRAM-MD5
	  server_secret = \${if eq{\$auth1}{$USER_NAME}{$USER_PASS}fail}
	  server_set_id = \$auth1
	EOF
}

# probe: both ports answer, AUTH only after TLS, the certificate verifies.
probe() {
	python3 "$here/smtpprobe.py" "$PKI/ca.pem" "$P_SUBMIT" "$P_SMTPS" --exim
}

do_start() {
	local p err eu
	[ "$(id -u)" = 0 ] || die "must run as root (private mount namespace, Exim's daemon)"
	command -v unshare >/dev/null && command -v apt-get >/dev/null && command -v dpkg >/dev/null ||
		die "needs unshare, apt-get and dpkg"
	[ -f "$PKI/server.pem" ] || die "no test certificate in $PKI (start tests/postfix.sh first or set PKI)"
	if [ -e "$DIR" ] && ! [ -f "$MARK" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
		die "$DIR exists, is not empty and was not made by exim.sh"
	fi
	[ -f "$MARK" ] && { do_stop; rm -rf "${DIR:?}"/{spool,log,mail,tls,exim.conf,deliver.sh,env,transient}; }
	for p in $P_SUBMIT $P_SMTPS; do
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
			die "port 127.0.0.1:$p is already in use (set OUTBOX_PORT_BASE)"
	done
	mkdir -p "$DIR" && chmod 755 "$DIR" && : >"$MARK" || die "cannot create $DIR"
	deb_fetch "$PKG" exim4-daemon-light || die "cannot fetch Exim's package"
	[ -x "$PKG/tree/usr/sbin/exim4" ] || die "no usr/sbin/exim4 in $PKG/tree"
	deb_users "$PKG" Debian-exim || die "cannot write $PKG/passwd"
	eu=${DEB_UID[Debian-exim]}
	mkdir -p "$DIR/spool" "$DIR/log" "$DIR/mail" "$DIR/tls"
	chown "$eu:$eu" "$DIR/spool" "$DIR/log"
	chown "$eu:$eu" "$DIR/mail"
	# Exim reads its key as Debian-exim: a private copy that user may read
	cp "$PKI/server.pem" "$PKI/server.key" "$DIR/tls/" &&
		chown "$eu:$eu" "$DIR/tls/server.key" && chmod 600 "$DIR/tls/server.key" ||
		die "cannot copy the test certificate"
	write_conf
	: >"$DIR/transient"
	if ! deb_ns "$PKG" /usr/sbin/exim4 -C "$DIR/exim.conf" -bd >"$DIR/start.log" 2>&1; then
		cat "$DIR/start.log" "$DIR"/log/paniclog >&2 2>/dev/null
		do_stop
		die "exim did not start"
	fi
	for _ in $(seq 100); do
		err=$(probe 2>&1) && break
		sleep 0.1
	done
	if [ -n "$err" ]; then
		printf 'exim.sh: ports did not come up: %s\n' "$err" >&2
		tail -n 5 "$DIR/log/mainlog" "$DIR/log/paniclog" "$DIR/start.log" >&2 2>/dev/null
		do_stop
		exit 1
	fi
	cat >"$DIR/env" <<-EOF
	# made by tests/exim.sh start; source it
	EX_DIR='$DIR'
	EX_HOST=127.0.0.1
	EX_SUBMIT=$P_SUBMIT
	EX_SMTPS=$P_SMTPS
	EX_CA='$PKI/ca.pem'
	EX_MAIL='$DIR/mail'
	EX_LOG='$DIR/log'
	EX_USER=$USER_NAME
	EX_PASS=$USER_PASS
	EOF
}

case $cmd in
start) do_start ;;
stop) do_stop ;;
*) die "usage: exim.sh start|stop DIR" ;;
esac
