#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# A private loopback Dovecot submission (the release's dovecot-core +
# dovecot-submissiond: 2.3 on Debian 12, 2.4 on Debian 13) for the interop
# tests, relaying to the test Postfix.
#
#   bash tests/dovecot.sh start DIR   fetch and extract the packages, configure, start
#   bash tests/dovecot.sh stop DIR    stop it (and take its relay service out of Postfix)
#   bash tests/dovecot.sh transient on|off DIR   the relay's 451s (on after start)
#
# The packages are not installed: `apt-get download` + `dpkg -x` into DIR/pkg (or
# $DOVECOT_PKG, a cache shared between runs), run in a private mount namespace
# (tests/debroot.sh) with the packages over /usr and a private /etc/passwd naming
# the dovecot and dovenull users. No system service starts. Needs root, apt's
# lists and the test Postfix of tests/postfix.sh ($TESTROOT/postfix/env, or $PF_ENV).
#
# Ports, base = $OUTBOX_PORT_BASE (default 20000), on 127.0.0.1 only:
#   base+225  submission with STARTTLS; AUTH only after TLS
#   base+265  submissions, implicit TLS
#   base+226  the relay: an smtpd service this script adds to the test Postfix
#             (postconf -M, removed again by stop), the plain port's settings plus
#             the test rules: RCPT to local parts starting with "defer" gets 451
#             (and "reject" 550, as on Postfix's plain port); a header
#             "X-Test-Fail: 451" gets 451 at the end of data, "X-Test-Fail: 554" 550.
# Certificate: the server certificate of tests/postfix.sh ($PKI, default
# $TESTROOT/postfix/pki). AUTH PLAIN, LOGIN, CRAM-MD5 (passwd-file DIR/passwd): user
# "interop", password "Interop-Pass-7". (Dovecot counts loopback connections as
# secured, so it offers AUTH before STARTTLS too.) Delivered mail lands in Postfix's Maildirs
# ($PF_MAIL). Dovecot's log: DIR/dovecot.log (a "Panic:" there is a Dovecot bug).
# DIR/env: DC_DIR DC_HOST DC_SUBMIT DC_SMTPS DC_CA DC_MAIL DC_LOG DC_USER DC_PASS.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/debroot.sh"

die() { printf 'dovecot.sh: %s\n' "$*" >&2; exit 1; }

if [ $# -eq 3 ] && [ "$1" = transient ]; then
	TRANSIENT=$2
	shift 2
	set -- transient "$@"
fi
[ $# -eq 2 ] || die "usage: dovecot.sh start|stop|transient on|off DIR"
cmd=$1
case $2 in /*) DIR=$2 ;; *) DIR=$(pwd)/$2 ;; esac
DIR=${DIR%/}
[ -n "$DIR" ] && [ "$DIR" != / ] || die "refusing to use / as DIR"
MARK=$DIR/.outbox-test-dovecot
PKG=${DOVECOT_PKG:-$DIR/pkg}
PKI=${PKI:-${TESTROOT:-}/postfix/pki}
PF_ENV=${PF_ENV:-${TESTROOT:-}/postfix/env}
base=${OUTBOX_PORT_BASE:-20000}
case $base in *[!0-9]* | '') die "OUTBOX_PORT_BASE must be a number" ;; esac
P_SUBMIT=$((base + 225)) P_SMTPS=$((base + 265)) P_RELAY=$((base + 226))
USER_NAME=interop USER_PASS=Interop-Pass-7
RELAY_SVC=127.0.0.1:$P_RELAY/inet CLEANUP_SVC=cleanup-dc$P_RELAY/unix

# relay_del: take this instance's services out of the test Postfix
relay_del() {
	[ -f "$PF_ENV" ] || return 0
	. "$PF_ENV"
	postconf -c "$PF_CONF" -M "$RELAY_SVC" >/dev/null 2>&1 || return 0
	postconf -c "$PF_CONF" -MX "$RELAY_SVC" "$CLEANUP_SVC" &&
		postfix -c "$PF_CONF" reload >>"$DIR/postfix-cmd.log" 2>&1
}

# rules on|off: the relay's lookup tables, with or without the 451s
rules() {
	: >"$DIR/relay/rcpt.regexp"
	[ "$1" = on ] && printf '%s\n' '/^defer/	451 4.3.0 deferred (test)' >"$DIR/relay/rcpt.regexp"
	printf '%s\n' '/^X-Test-Fail:[ \t]*554/	REJECT 5.7.1 refused by X-Test-Fail (test)' \
		>"$DIR/relay/header.regexp"
	[ "$1" = on ] && printf '%s\n' \
		'/^X-Test-Fail:[ \t]*451/	REJECT 4.3.0 deferred by X-Test-Fail (test)' \
		>>"$DIR/relay/header.regexp"
	chmod 644 "$DIR"/relay/*.regexp
}

do_transient() {
	[ -f "$MARK" ] && [ -f "$PF_ENV" ] || die "not running"
	. "$PF_ENV"
	rules "$1"
	postfix -c "$PF_CONF" reload >>"$DIR/postfix-cmd.log" 2>&1
}

relay_add() {
	local c=${CLEANUP_SVC%/unix}
	rules on
	postconf -c "$PF_CONF" -M "$RELAY_SVC=127.0.0.1:$P_RELAY inet n - n - - smtpd \
-o syslog_name=outbox-test-postfix/dovecot-relay -o smtpd_tls_security_level=none \
-o smtpd_sasl_auth_enable=no \
-o smtpd_recipient_restrictions=check_recipient_access,regexp:$DIR/relay/rcpt.regexp \
-o cleanup_service_name=$c" \
		"$CLEANUP_SVC=$c unix n - n - 0 cleanup -o header_checks=regexp:$DIR/relay/header.regexp" &&
		postfix -c "$PF_CONF" reload >>"$DIR/postfix-cmd.log" 2>&1
}

do_stop() {
	local pid
	[ -f "$MARK" ] || return 0
	pid=$(cat "$DIR/run/master.pid" 2>/dev/null)
	if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null
	fi
	deb_kill "$DIR/dovecot.conf"
	relay_del
	return 0
}

# write_conf: DIR/dovecot.conf in the syntax of the fetched Dovecot: 2.4
# (Debian 13) wants dovecot_config_version first and renamed most settings;
# 2.3 (Debian 12) refuses that.
write_conf() {
	printf '%s:{PLAIN}%s\n' "$USER_NAME" "$USER_PASS" >"$DIR/passwd"
	chmod 644 "$DIR/passwd"
	case $(dc_version) in
	2.4* | 2.5* | [3-9].*) conf_24 ;;
	*) conf_23 ;;
	esac >"$DIR/dovecot.conf"
}

# dc_version: the fetched package's version (2.3.19.1, 2.4.1...).
dc_version() {
	dpkg-deb -f "$PKG"/debs/dovecot-core_*.deb Version 2>/dev/null | sed 's/^[0-9]*://'
}

conf_common() {
	cat <<-EOF
	base_dir = $DIR/run
	state_dir = $DIR/state
	log_path = $DIR/dovecot.log
	info_log_path = $DIR/dovecot.log
	protocols = submission
	listen = 127.0.0.1
	hostname = dovecot.example.test
	default_internal_user = dovecot
	default_internal_group = dovecot
	default_login_user = dovenull
	auth_mechanisms = plain login cram-md5
	submission_relay_host = 127.0.0.1
	submission_relay_port = $P_RELAY
	submission_relay_ssl = no
	submission_relay_trusted = no
	EOF
}

conf_23() {
	echo "# private test instance made by outbox/tests/dovecot.sh (Dovecot 2.3)"
	conf_common
	cat <<-EOF
	ssl = yes
	ssl_cert = <$DIR/tls/server.pem
	ssl_key = <$DIR/tls/server.key
	disable_plaintext_auth = yes
	# submission opens the user's mail storage (for BURL), though nothing is stored
	mail_location = maildir:~/Maildir
	passdb {
	  driver = passwd-file
	  args = scheme=PLAIN username_format=%u $DIR/passwd
	}
	userdb {
	  driver = static
	  args = uid=dovecot gid=dovecot home=$DIR/home/%u
	}
	service submission-login {
	  inet_listener submission {
	    address = 127.0.0.1
	    port = $P_SUBMIT
	  }
	  inet_listener submissions {
	    address = 127.0.0.1
	    port = $P_SMTPS
	    ssl = yes
	  }
	}
	EOF
}

conf_24() {
	echo "dovecot_config_version = 2.4.0"
	echo "dovecot_storage_version = 2.4.0"
	echo "# private test instance made by outbox/tests/dovecot.sh (Dovecot 2.4)"
	conf_common
	cat <<-EOF
	ssl = yes
	ssl_server_cert_file = $DIR/tls/server.pem
	ssl_server_key_file = $DIR/tls/server.key
	auth_allow_cleartext = no
	# submission opens the user's mail storage (for BURL), though nothing is stored
	mail_driver = maildir
	mail_path = ~/Maildir
	passdb passwd-file {
	  passwd_file_path = $DIR/passwd
	}
	userdb static {
	  fields {
	    uid = dovecot
	    gid = dovecot
	    home = $DIR/home/%{user}
	  }
	}
	service submission-login {
	  inet_listener submission {
	    listen = 127.0.0.1
	    port = $P_SUBMIT
	  }
	  inet_listener submissions {
	    listen = 127.0.0.1
	    port = $P_SMTPS
	    ssl = yes
	  }
	}
	EOF
}

probe() {
	python3 "$here/smtpprobe.py" "$PKI/ca.pem" "$P_SUBMIT" "$P_SMTPS"
}

do_start() {
	local p err du
	[ "$(id -u)" = 0 ] || die "must run as root (private mount namespace, Dovecot's master)"
	command -v unshare >/dev/null && command -v apt-get >/dev/null && command -v dpkg >/dev/null ||
		die "needs unshare, apt-get and dpkg"
	[ -f "$PKI/server.pem" ] || die "no test certificate in $PKI (start tests/postfix.sh first or set PKI)"
	[ -f "$PF_ENV" ] || die "no $PF_ENV: the test Postfix (tests/postfix.sh) is not running"
	. "$PF_ENV"
	if [ -e "$DIR" ] && ! [ -f "$MARK" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
		die "$DIR exists, is not empty and was not made by dovecot.sh"
	fi
	[ -f "$MARK" ] && { do_stop; rm -rf "${DIR:?}"/{run,state,home,tls,relay,dovecot.conf,dovecot.log,passwd,env}; }
	for p in $P_SUBMIT $P_SMTPS $P_RELAY; do
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
			die "port 127.0.0.1:$p is already in use (set OUTBOX_PORT_BASE)"
	done
	mkdir -p "$DIR" && chmod 755 "$DIR" && : >"$MARK" || die "cannot create $DIR"
	deb_fetch "$PKG" dovecot-core dovecot-submissiond || die "cannot fetch Dovecot's packages"
	[ -x "$PKG/tree/usr/sbin/dovecot" ] && [ -x "$PKG/tree/usr/lib/dovecot/submission" ] ||
		die "no usr/sbin/dovecot or usr/lib/dovecot/submission in $PKG/tree"
	deb_users "$PKG" dovecot dovenull || die "cannot write $PKG/passwd"
	du=${DEB_UID[dovecot]}
	mkdir -p "$DIR/run" "$DIR/state" "$DIR/home" "$DIR/tls" "$DIR/relay"
	chown "$du:$du" "$DIR/home"
	chmod 755 "$DIR/run"
	cp "$PKI/server.pem" "$PKI/server.key" "$DIR/tls/" && chmod 600 "$DIR/tls/server.key" ||
		die "cannot copy the test certificate"
	: >"$DIR/dovecot.log"
	write_conf
	relay_add || { do_stop; die "cannot add the relay service to the test Postfix"; }
	if ! deb_ns "$PKG" /usr/sbin/dovecot -c "$DIR/dovecot.conf" >"$DIR/start.log" 2>&1; then
		cat "$DIR/start.log" >&2; tail -n 5 "$DIR/dovecot.log" >&2
		do_stop
		die "dovecot did not start"
	fi
	for _ in $(seq 100); do
		err=$(probe 2>&1) && break
		sleep 0.1
	done
	if [ -n "$err" ]; then
		printf 'dovecot.sh: ports did not come up: %s\n' "$err" >&2
		tail -n 5 "$DIR/dovecot.log" "$DIR/start.log" >&2
		do_stop
		exit 1
	fi
	cat >"$DIR/env" <<-EOF
	# made by tests/dovecot.sh start; source it
	DC_DIR='$DIR'
	DC_HOST=127.0.0.1
	DC_SUBMIT=$P_SUBMIT
	DC_SMTPS=$P_SMTPS
	DC_CA='$PKI/ca.pem'
	DC_MAIL='$PF_MAIL'
	DC_LOG='$DIR/dovecot.log'
	DC_USER=$USER_NAME
	DC_PASS=$USER_PASS
	EOF
}

case $cmd in
start) do_start ;;
stop) do_stop ;;
transient) do_transient "$TRANSIENT" ;;
*) die "usage: dovecot.sh start|stop|transient on|off DIR" ;;
esac
