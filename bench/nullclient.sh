#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# A private Postfix null client for make bench's bulk row (issue 14): the
# anchor a user would pick for a queue, tuned as well as Postfix allows.
#
#   bash bench/nullclient.sh start DIR RELAYPORT CAFILE   build under DIR, start
#   bash bench/nullclient.sh stop DIR                    stop it (and what is left)
#
# Made like tests/postfix.sh's server: everything under DIR, started with
# postfix -c DIR/etc, nothing of the system's Postfix touched. It listens on
# no port; it relays everything to [127.0.0.1]:RELAYPORT (the bench's
# submission port) with STARTTLS (security level secure, CAFILE, the name
# mail.example.test), AUTH PLAIN as alice, TLS connection reuse (tlsproxy,
# scache) and a TLS session cache. defer_transports = smtp holds what is
# submitted in the deferred queue until bench.py flushes it.
set -u

die() { printf 'nullclient.sh: %s\n' "$*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: nullclient.sh start DIR RELAYPORT CAFILE | stop DIR"
cmd=$1 DIR=${2%/}
case $DIR in /?*) ;; *) die "DIR must be an absolute path" ;; esac
MARK=$DIR/.outbox-bench-nullclient

our_pids() {
	local f pid
	for f in /proc/[0-9]*/environ; do
		pid=${f#/proc/}; pid=${pid%/environ}
		[ "$pid" = $$ ] && continue
		if { tr '\0' '\n' <"$f"; } 2>/dev/null | grep -qxF "MAIL_CONFIG=$DIR/etc"; then
			echo "$pid"
		fi
	done
}

do_stop() {
	local pids
	[ -f "$MARK" ] || return 0
	postfix -c "$DIR/etc" stop >>"$DIR/postfix-cmd.log" 2>&1
	for _ in $(seq 50); do
		pids=$(our_pids)
		[ -z "$pids" ] && break
		sleep 0.1
	done
	pids=$(our_pids)
	# shellcheck disable=SC2086
	[ -n "$pids" ] && kill -KILL $pids 2>/dev/null
	return 0
}

do_start() {
	local port=$1 ca=$2 e=$DIR/etc
	[ "$(id -u)" = 0 ] || die "must run as root"
	if [ -f "$MARK" ]; then
		do_stop
		rm -rf "${DIR:?}"/{etc,queue,data,maillog,postfix-cmd.log}
	fi
	mkdir -p "$e" "$DIR/queue" "$DIR/data" && chmod 755 "$DIR" "$e" "$DIR/queue" &&
		: >"$MARK" || die "cannot create $DIR"
	chown postfix:postfix "$DIR/data" && chmod 700 "$DIR/data"
	printf '[127.0.0.1]:%s alice:correct horse\n' "$port" >"$e/sasl_passwd"
	chmod 600 "$e/sasl_passwd"
	cat >"$e/main.cf" <<-EOF
	# private bench instance made by outbox/bench/nullclient.sh
	compatibility_level = 3.6
	queue_directory = $DIR/queue
	data_directory = $DIR/data
	mail_owner = postfix
	setgid_group = postdrop
	syslog_name = outbox-bench-nullclient
	maillog_file = $DIR/maillog
	maillog_file_prefixes = $DIR
	myhostname = client.example.test
	mydomain = example.test
	myorigin = \$mydomain
	inet_interfaces = loopback-only
	inet_protocols = ipv4
	mydestination =
	local_transport = error:local delivery is disabled
	alias_maps =
	alias_database =
	relayhost = [127.0.0.1]:$port
	defer_transports = smtp
	smtp_dns_support_level = disabled
	smtp_host_lookup = native
	biff = no
	delay_warning_time = 0
	smtp_tls_security_level = secure
	smtp_tls_secure_cert_match = mail.example.test
	smtp_tls_CAfile = $ca
	smtp_tls_connection_reuse = yes
	smtp_tls_session_cache_database = btree:$DIR/data/smtp_scache
	smtp_sasl_auth_enable = yes
	smtp_sasl_password_maps = texthash:$e/sasl_passwd
	smtp_sasl_security_options = noanonymous
	smtp_sasl_mechanism_filter = plain
	EOF
	cat >"$e/master.cf" <<-EOF
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
	anvil      unix  - - n - 1 anvil
	scache     unix  - - n - 1 scache
	tlsproxy   unix  - - n - 0 tlsproxy
	postlog    unix-dgram n - n - 1 postlogd
	EOF
	: >"$DIR/maillog"
	postfix -c "$e" start >>"$DIR/postfix-cmd.log" 2>&1 ||
		{ tail -20 "$DIR/maillog" >&2; do_stop; die "postfix start failed"; }
}

case $cmd in
start) [ $# -eq 4 ] || die "usage: nullclient.sh start DIR RELAYPORT CAFILE"
	do_start "$3" "$4" ;;
stop) do_stop ;;
*) die "usage: nullclient.sh start DIR RELAYPORT CAFILE | stop DIR" ;;
esac
