#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# A private loopback Postfix for outbox's integration tests.
#
#   bash tests/postfix.sh start DIR   build everything under DIR, start, wait for the ports
#   bash tests/postfix.sh stop DIR    stop it (and any of its processes left by a crash)
#
# Needs root (Postfix's master runs as root and drops to mail_owner=postfix).
# Nothing outside DIR is written; /etc/postfix is only read (postfix-files,
# dynamicmaps.cf via meta_directory). The system Postfix is not touched.
#
# Ports, base = $OUTBOX_PORT_BASE (default 20000), all on 127.0.0.1 only:
#   base+25   plain SMTP: no STARTTLS, no AUTH; relay allowed from 127.0.0.0/8
#   base+26   like base+25 but without CHUNKING, so clients use DATA (dot-stuffing)
#   base+587  submission: STARTTLS required (encrypt), AUTH only after TLS
#   base+465  submissions: implicit TLS (wrapper mode) + AUTH
#   base+588  like base+587, but the certificate is for wrong.example (no IP SAN)
#   The TLS ports accept mail only from authenticated clients.
#   PIPELINING, SIZE, 8BITMIME, SMTPUTF8, DSN, CHUNKING, ENHANCEDSTATUSCODES are
#   left at Postfix's defaults (offered on every port but base+26, which lacks CHUNKING).
#
# Users (Cyrus sasldb, realm mail.example.test, the client sends the bare name):
#   alice / correct horse
#   bob   / pässwörd mit Leerzeichen      (UTF-8, with spaces)
#   Mechanisms: PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256 (mech_list in DIR/etc/sasl/smtpd.conf).
#
# Delivery: domain example.test -> Maildir DIR/mail/<localpart>/ (one per local part,
# lower-cased, created on first delivery, owned by nobody). virtual(8) cannot do this
# (it refuses $1 substitution from regexp maps), so example.test's virtual_transport
# is "maildir", a pipe(8) service running DIR/etc/deliver.sh. Accepted local parts:
# [a-z0-9][a-z0-9._+=-]* (case-insensitive); local parts starting with "reject" get
# "550 5.1.1 ... User unknown in virtual mailbox table" at RCPT. Mail for any other
# domain is accepted (relay) and discarded; nothing leaves the host, no DNS lookups.
# Postfix adds no headers of its own except Received (smtpd) and, at delivery,
# Return-Path and Delivered-To (local_header_rewrite_clients is empty, so it does
# not add Date/Message-ID/From or rewrite addresses).
# message_size_limit stays at Postfix's default (10240000 bytes, announced as SIZE);
# a test that needs more can run `postconf -c $PF_CONF message_size_limit=N` and
# `postfix -c $PF_CONF reload` (N up to 2147483647; smtpd then wants 1.5 * N bytes free
# in the queue's file system, else 452; the pipe delivery has no mailbox size limit).
#
# Layout: DIR/etc (main.cf, master.cf, mailbox.regexp, deliver.sh), DIR/queue, DIR/data,
# DIR/pki (ca.pem ca.key server.* wrong.* other-ca.*), DIR/etc/sasl (smtpd.conf, sasldb2),
# DIR/mail, DIR/maillog (Postfix's log), DIR/env (shell variables for the tests:
# PF_DIR PF_HOST PF_PLAIN PF_NOCHUNK PF_SUBMIT PF_SMTPS PF_WRONGNAME PF_CA PF_OTHER_CA PF_MAIL
# PF_LOG PF_CONF).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { printf 'postfix.sh: %s\n' "$*" >&2; exit 1; }

usage() { die "usage: postfix.sh start|stop DIR"; }

[ $# -eq 2 ] || usage
cmd=$1
case $2 in
/*) DIR=$2 ;;
*) DIR=$(pwd)/$2 ;;
esac
DIR=${DIR%/}
[ -n "$DIR" ] && [ "$DIR" != / ] || die "refusing to use / as DIR"
MARK="$DIR/.outbox-test-postfix"

base=${OUTBOX_PORT_BASE:-20000}
case $base in *[!0-9]* | '') die "OUTBOX_PORT_BASE must be a number" ;; esac
P_PLAIN=$((base + 25)) P_NOCHUNK=$((base + 26)) P_SUBMIT=$((base + 587)) P_SMTPS=$((base + 465)) P_WRONG=$((base + 588))
[ "$P_SUBMIT" -le 65535 ] || die "OUTBOX_PORT_BASE too large"

# pids of every process that runs with this instance's configuration
# (master and its children inherit MAIL_CONFIG=DIR/etc).
our_pids() {
	python3 "$here/procpids.py" environ "MAIL_CONFIG=$DIR/etc" $$
}

do_stop() {
	local pids
	[ -f "$MARK" ] || return 0	# nothing of ours there
	if [ -f "$DIR/etc/main.cf" ]; then
		postfix -c "$DIR/etc" stop >>"$DIR/postfix-cmd.log" 2>&1
	fi
	for _ in $(seq 50); do
		pids=$(our_pids)
		[ -z "$pids" ] && break
		sleep 0.1
	done
	pids=$(our_pids)
	if [ -n "$pids" ]; then
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null
		sleep 0.2
	fi
	return 0
}

# can USER reach PATH (search permission on every directory on the way)?
reachable() {
	setpriv --reuid="$(id -u "$1")" --regid="$(id -g "$1")" --clear-groups test -x "$2" 2>/dev/null
}

# give "other" search permission on ancestors of DIR that lack it, so that
# postfix (sasldb, data dir) and nobody (Maildirs) can reach DIR.
open_path() {
	local d=$DIR
	reachable postfix "$DIR" && reachable nobody "$DIR" && return 0
	while [ "$d" != / ] && [ -n "$d" ]; do
		d=$(dirname "$d")
		if [ "$(stat -c %u "$d")" = 0 ] && ! [ "$(( 0$(stat -c %a "$d") & 1 ))" = 1 ]; then
			chmod o+x "$d"
			case $d in /tmp/*) ;; *)
				printf 'postfix.sh: note: chmod o+x %s (Postfix must reach %s)\n' "$d" "$DIR" >&2
			esac
		fi
	done
	reachable postfix "$DIR" && reachable nobody "$DIR" ||
		die "user postfix/nobody cannot reach $DIR; pick a directory under /tmp"
}

make_pki() {
	local p="$DIR/pki" days=30
	mkdir -p "$p" && chmod 755 "$p"
	cat >"$p/openssl.cnf" <<-'EOF'
	[req]
	distinguished_name = dn
	prompt = no
	[dn]
	CN = unused
	[ca_ext]
	basicConstraints = critical,CA:TRUE
	keyUsage = critical,keyCertSign,cRLSign
	subjectKeyIdentifier = hash
	[server_ext]
	basicConstraints = critical,CA:FALSE
	keyUsage = critical,digitalSignature,keyEncipherment
	extendedKeyUsage = serverAuth
	subjectAltName = DNS:mail.example.test,DNS:localhost,IP:127.0.0.1
	subjectKeyIdentifier = hash
	authorityKeyIdentifier = keyid
	[wrong_ext]
	basicConstraints = critical,CA:FALSE
	keyUsage = critical,digitalSignature,keyEncipherment
	extendedKeyUsage = serverAuth
	subjectAltName = DNS:wrong.example
	subjectKeyIdentifier = hash
	authorityKeyIdentifier = keyid
	EOF
	(
		set -e
		cd "$p"
		umask 077
		o() { openssl "$@" 2>>openssl.log; }
		o req -x509 -config openssl.cnf -extensions ca_ext -newkey rsa:2048 -nodes \
			-keyout ca.key -out ca.pem -days $days -subj '/O=outbox tests/CN=outbox test CA'
		o req -x509 -config openssl.cnf -extensions ca_ext -newkey rsa:2048 -nodes \
			-keyout other-ca.key -out other-ca.pem -days $days \
			-subj '/O=somebody else/CN=unrelated test CA'
		o req -new -config openssl.cnf -newkey rsa:2048 -nodes -keyout server.key \
			-out server.csr -subj '/CN=mail.example.test'
		o x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days $days \
			-extfile openssl.cnf -extensions server_ext -out server.pem
		o req -new -config openssl.cnf -newkey rsa:2048 -nodes -keyout wrong.key \
			-out wrong.csr -subj '/CN=wrong.example'
		o x509 -req -in wrong.csr -CA ca.pem -CAkey ca.key -set_serial 3 -days $days \
			-extfile openssl.cnf -extensions wrong_ext -out wrong.pem
		rm -f server.csr wrong.csr
		chmod 644 ./*.pem
	) || { cat "$p/openssl.log" >&2; die "certificate generation failed"; }
}

make_sasl() {
	# Debian's Postfix reads $config_directory/sasl/smtpd.conf (cyrus_sasl_config_path
	# is set to the same directory for other builds).
	local s="$DIR/etc/sasl" realm=mail.example.test
	mkdir -p "$s" && chmod 755 "$s"
	cat >"$s/smtpd.conf" <<-EOF
	pwcheck_method: auxprop
	auxprop_plugin: sasldb
	sasldb_path: $s/sasldb2
	mech_list: PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256
	EOF
	printf '%s' 'correct horse' | saslpasswd2 -p -c -f "$s/sasldb2" -u $realm alice &&
		printf '%s' 'pässwörd mit Leerzeichen' | saslpasswd2 -p -c -f "$s/sasldb2" -u $realm bob ||
		die "saslpasswd2 failed"
	chown root:postfix "$s/sasldb2" && chmod 640 "$s/sasldb2"
}

make_conf() {
	local e="$DIR/etc"
	mkdir -p "$e" && chmod 755 "$e"
	# recipients smtpd accepts for example.test; reject* matches nothing, so smtpd
	# answers 550 User unknown at RCPT. Local parts are restricted to characters
	# that are safe as a directory name.
	cat >"$e/mailbox.regexp" <<-'EOF'
	if !/^reject/
	/^[a-z0-9][a-z0-9._+=-]*@example\.test$/	OK
	endif
	EOF
	# the "maildir" pipe(8) transport: stdin -> DIR/mail/LOCALPART/{tmp,new}
	cat >"$e/deliver.sh" <<-'EOF'
	#!/bin/sh
	# deliver.sh LOCALPART MAILROOT (run by pipe(8) as nobody): one Maildir message
	lp=$1 root=$2
	case $lp in '' | .* | */*) echo "bad local part"; exit 67 ;; esac
	d=$root/$lp
	mkdir -p "$d/tmp" "$d/new" "$d/cur" || exit 75
	f=$(date +%s.%N).P$$.mail.example.test
	if cat >"$d/tmp/$f" && mv "$d/tmp/$f" "$d/new/$f"; then exit 0; fi
	rm -f "$d/tmp/$f"
	exit 75
	EOF
	chmod 755 "$e/deliver.sh"
	cat >"$e/main.cf" <<-EOF
	# private test instance made by outbox/tests/postfix.sh; started with postfix -c $e
	compatibility_level = 3.6
	queue_directory = $DIR/queue
	data_directory = $DIR/data
	mail_owner = postfix
	setgid_group = postdrop
	syslog_name = outbox-test-postfix
	maillog_file = $DIR/maillog
	maillog_file_prefixes = $DIR
	myhostname = mail.example.test
	mydomain = example.test
	myorigin = \$mydomain
	inet_interfaces = 127.0.0.1
	inet_protocols = ipv4
	mynetworks = 127.0.0.0/8
	mydestination =
	relay_domains =
	local_recipient_maps =
	local_transport = error:local delivery is disabled
	alias_maps =
	alias_database =
	# relayed mail is accepted and thrown away: nothing leaves the host
	default_transport = discard:relay disabled in the test instance
	smtp_dns_support_level = disabled
	smtp_host_lookup = native
	lmtp_host_lookup = native
	smtpd_peername_lookup = no
	biff = no
	# do not touch the headers clients send (no added Date/Message-ID/From)
	local_header_rewrite_clients =
	always_add_missing_headers = no
	smtputf8_enable = yes
	in_flow_delay = 0
	smtpd_error_sleep_time = 0
	delay_warning_time = 0
	# example.test: one Maildir per local part, written by the "maildir" pipe(8)
	# transport (virtual(8) refuses \$1 substitution from regexp maps)
	virtual_mailbox_domains = example.test
	virtual_mailbox_maps = regexp:$e/mailbox.regexp
	virtual_transport = maildir
	maildir_destination_recipient_limit = 1
	smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
	# TLS (enabled per service in master.cf)
	smtpd_tls_security_level = none
	smtpd_tls_chain_files = $DIR/pki/server.key, $DIR/pki/server.pem
	smtpd_tls_auth_only = yes
	smtpd_tls_loglevel = 1
	smtpd_tls_received_header = yes
	smtpd_tls_session_cache_database =
	smtp_tls_security_level = none
	# Cyrus SASL (enabled per service in master.cf)
	smtpd_sasl_auth_enable = no
	smtpd_sasl_type = cyrus
	smtpd_sasl_path = smtpd
	cyrus_sasl_config_path = $DIR/etc/sasl
	smtpd_sasl_local_domain = mail.example.test
	smtpd_sasl_security_options = noanonymous
	smtpd_sasl_tls_security_options = noanonymous
	smtpd_banner = \$myhostname ESMTP Postfix (outbox test)
	EOF
	local auth="-o smtpd_sasl_auth_enable=yes -o smtpd_relay_restrictions=permit_sasl_authenticated,reject"
	cat >"$e/master.cf" <<-EOF
	# service type  private unpriv  chroot  wakeup  maxproc command + args
	127.0.0.1:$P_PLAIN inet n - n - - smtpd
	  -o syslog_name=outbox-test-postfix/plain
	  -o smtpd_tls_security_level=none
	  -o smtpd_sasl_auth_enable=no
	127.0.0.1:$P_NOCHUNK inet n - n - - smtpd
	  -o syslog_name=outbox-test-postfix/nochunk
	  -o smtpd_tls_security_level=none
	  -o smtpd_sasl_auth_enable=no
	  -o smtpd_discard_ehlo_keywords=chunking
	127.0.0.1:$P_SUBMIT inet n - n - - smtpd
	  -o syslog_name=outbox-test-postfix/submission
	  -o smtpd_tls_security_level=encrypt
	  $auth
	127.0.0.1:$P_SMTPS inet n - n - - smtpd
	  -o syslog_name=outbox-test-postfix/submissions
	  -o smtpd_tls_wrappermode=yes
	  $auth
	127.0.0.1:$P_WRONG inet n - n - - smtpd
	  -o syslog_name=outbox-test-postfix/wrongname
	  -o smtpd_tls_security_level=encrypt
	  -o smtpd_tls_chain_files=$DIR/pki/wrong.key,$DIR/pki/wrong.pem
	  $auth
	pickup     unix  n - n 60 1 pickup
	cleanup    unix  n - n - 0 cleanup
	qmgr       unix  n - n 300 1 qmgr
	tlsmgr     unix  - - n 1000? 1 tlsmgr
	rewrite    unix  - - n - - trivial-rewrite
	bounce     unix  - - n - 0 bounce
	defer      unix  - - n - 0 bounce
	trace      unix  - - n - 0 bounce
	verify     unix  - - n - 1 verify
	flush      unix  n - n 1000? 0 flush
	proxymap   unix  - - n - - proxymap
	proxywrite unix  - - n - 1 proxymap
	smtp       unix  - - n - - smtp
	relay      unix  - - n - - smtp
	showq      unix  n - n - - showq
	error      unix  - - n - - error
	retry      unix  - - n - - error
	discard    unix  - - n - - discard
	local      unix  - n n - - local
	virtual    unix  - n n - - virtual
	maildir    unix  - n n - - pipe flags=DRu user=nobody argv=/bin/sh $e/deliver.sh \${mailbox} $DIR/mail
	lmtp       unix  - - n - - lmtp
	anvil      unix  - - n - 1 anvil
	scache     unix  - - n - 1 scache
	postlog    unix-dgram n - n - 1 postlogd
	EOF
}

# probe PORT...: python check that each port talks SMTP (and TLS where it should).
probe() {
	python3 - "$DIR/pki/ca.pem" "$@" <<-'EOF'
	import smtplib, ssl, sys
	ca, ports = sys.argv[1], sys.argv[2:]
	# ports: plain submit smtps wrong nochunk
	ctx = ssl.create_default_context(cafile=ca)
	ctx.check_hostname = False
	try:
	    s = smtplib.SMTP("127.0.0.1", int(ports[0]), timeout=3); s.ehlo("probe")
	    assert not s.has_extn("starttls") and not s.has_extn("auth"), "plain port offers TLS/AUTH"
	    s.quit()
	    s = smtplib.SMTP("127.0.0.1", int(ports[4]), timeout=3); s.ehlo("probe")
	    assert not s.has_extn("chunking") and s.has_extn("pipelining"), "nochunk port: wrong EHLO"
	    s.quit()
	    for p in (ports[1], ports[3]):
	        s = smtplib.SMTP("127.0.0.1", int(p), timeout=3); s.ehlo("probe")
	        assert not s.has_extn("auth"), "AUTH before STARTTLS"
	        s.starttls(context=ctx); s.ehlo("probe")
	        assert s.has_extn("auth"), "no AUTH after STARTTLS"
	        s.quit()
	    s = smtplib.SMTP_SSL("127.0.0.1", int(ports[2]), timeout=3, context=ctx); s.ehlo("probe")
	    assert s.has_extn("auth"), "no AUTH on implicit TLS port"
	    s.quit()
	except Exception as e:
	    print(f"{type(e).__name__}: {e}", file=sys.stderr)
	    sys.exit(1)
	EOF
}

# the end of Postfix's log, its warnings and errors first
log_tail() {
	cat "$DIR/postfix-cmd.log" >&2
	echo "--- last warnings and errors in $DIR/maillog:" >&2
	grep -E 'warning|error|fatal|panic' "$DIR/maillog" | tail -n 10 >&2
	echo "--- last lines of $DIR/maillog:" >&2
	tail -n 15 "$DIR/maillog" >&2
}

port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

do_start() {
	local p err deadline up
	[ "$(id -u)" = 0 ] || die "must run as root (Postfix's master needs it)"
	command -v postfix >/dev/null && command -v saslpasswd2 >/dev/null &&
		command -v openssl >/dev/null && command -v python3 >/dev/null ||
		die "missing postfix, sasl2-bin, openssl or python3 (run tests/deps.sh)"
	if [ -e "$DIR" ] && ! [ -f "$MARK" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
		die "$DIR exists, is not empty and was not made by postfix.sh"
	fi
	if [ -f "$MARK" ]; then
		do_stop
		rm -rf "${DIR:?}"/{etc,queue,data,pki,mail,maillog,env,postfix-cmd.log}
	fi
	for p in $P_PLAIN $P_NOCHUNK $P_SUBMIT $P_SMTPS $P_WRONG; do
		port_busy "$p" && die "port 127.0.0.1:$p is already in use (set OUTBOX_PORT_BASE)"
	done
	mkdir -p "$DIR" && chmod 755 "$DIR" && : >"$MARK" || die "cannot create $DIR"
	open_path
	make_pki
	make_conf
	make_sasl
	mkdir -p "$DIR/queue" "$DIR/data" "$DIR/mail"
	chmod 755 "$DIR/queue"
	chown postfix:postfix "$DIR/data" && chmod 700 "$DIR/data"
	chown nobody:"$(id -gn nobody)" "$DIR/mail" && chmod 755 "$DIR/mail"
	: >"$DIR/maillog"

	if ! postfix -c "$DIR/etc" start >>"$DIR/postfix-cmd.log" 2>&1; then
		log_tail
		do_stop
		die "postfix start failed"
	fi
	deadline=$((SECONDS + 20)) up=0
	while :; do
		err=$(probe $P_PLAIN $P_SUBMIT $P_SMTPS $P_WRONG $P_NOCHUNK 2>&1) && { up=1; break; }
		[ $SECONDS -lt $deadline ] || break
		sleep 0.2
	done
	if [ $up = 0 ]; then
		printf 'postfix.sh: ports did not come up within 20 s: %s\n' "$err" >&2
		log_tail
		do_stop
		exit 1
	fi
	cat >"$DIR/env" <<-EOF
	# made by tests/postfix.sh start; source it
	PF_DIR='$DIR'
	PF_CONF='$DIR/etc'
	PF_HOST=127.0.0.1
	PF_PLAIN=$P_PLAIN
	PF_NOCHUNK=$P_NOCHUNK
	PF_SUBMIT=$P_SUBMIT
	PF_SMTPS=$P_SMTPS
	PF_WRONGNAME=$P_WRONG
	PF_CA='$DIR/pki/ca.pem'
	PF_OTHER_CA='$DIR/pki/other-ca.pem'
	PF_MAIL='$DIR/mail'
	PF_LOG='$DIR/maillog'
	EOF
}

case $cmd in
start) do_start ;;
stop) do_stop ;;
*) usage ;;
esac
