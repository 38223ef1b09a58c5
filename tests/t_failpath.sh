#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Failure paths of a live session (issue 17): a body whose write stalls in
# the middle (BDAT and DATA, small TCP windows), a 421 at the greeting,
# MAIL, RCPT and the end of data with entries queued behind, a certificate
# that fails verification, the wrong TLS mode, a resolver that never
# answers. Each case reads back, byte for byte, what the server got and
# where every message ended up: delivered once and intact, or waiting.
# Runs inside namespaces of its own (tests/netstall.sh: 16 KiB TCP
# buffers, port 465, its own resolv.conf); without them, the cases that
# need them are skipped and the others run.
# Needs: python3, openssl, unshare, ip. Run via tests/run.sh, or alone:
#   export TESTROOT=$(mktemp -d) RESULTS=$TESTROOT/results OUTBOX=$PWD/outbox
#   bash tests/t_failpath.sh
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
: "${TESTROOT:=$(mktemp -d /tmp/outbox-failpath.XXXXXX)}"
FS=$TESTROOT/failpath
if [ -z "${FAILPATH_NS:-}" ]; then
	rm -rf "$FS"; mkdir -p "$FS"
	FAILPATH_NS=1 bash "$here/netstall.sh" "$FS" bash "$0"
	rc=$?
	[ "$rc" -ne 77 ] && exit "$rc"
	FAILPATH_NS=none	# no namespaces here: what needs them is skipped
fi
SRV_PID=
trap 'fault_stop' EXIT
OB_DIR=$FS OB_TIMEOUT=30

# msg FILE MID LINES: a message of LINES 60-octet body lines, with every
# header outbox would add, so the server must get exactly FILE.want.
msg() {
	python3 - "$1" "$2" "$3" <<'PY'
import sys
path, mid, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
head = ("From: a@example.test\nTo: b@example.test\n"
        "Date: Mon, 01 Jan 2024 00:00:00 +0000\n"
        "Message-ID: <%s@example.test>\nSubject: failpath\n\n" % mid)
body = "".join("%s line %07d %s\n" % (mid, i, "x" * 36) for i in range(n))
open(path, "w").write(head + body)
open(path + ".want", "wb").write((head + body).replace("\n", "\r\n").encode())
PY
}

# queue NAME MID...: each message MID (made by msg) queued with -odq.
queue() {
	local name=$1 m; shift
	for m in "$@"; do
		"$OUTBOX" -C "$CFG" -odq -i -f a@example.test b@example.test \
			<"$FS/$m" || fail "fault-$name-queue" "cannot queue $m"
	done
}

# copies MID: how many transactions the server acknowledged for MID.
copies() {
	grep -c "^E: accepted .*mid=<\?$1@" "$LOG"
}

# intact NAME MID...: every copy of each MID the server got is MID.want.
intact() {
	local name=$1 m f bad=
	shift
	for f in "$LOG".data.*; do
		[ -f "$f" ] || continue
		for m in "$@"; do
			grep -q "^Message-ID: <$m@" "$f" || continue
			cmp -s "$f" "$FS/$m.want" || bad="$bad $f($(cmp "$f" "$FS/$m.want" 2>&1 | head -1))"
		done
	done
	expect_eq "fault-$name-intact" "${bad:-none}" none
}

# nothing_after_421 NAME: in each session, no command after a 421 reply.
nothing_after_421() {
	local got
	got=$(awk '/^# session/ { c = 0 } /^S: 421/ { c = 1; next }
		c && /^C: / { print; n++ } END { exit 0 }' "$LOG")
	expect_eq "fault-$1-nothing-after-421" "${got:-none}" none
	expect_grep "fault-$1-421-sent" '^S: 421' "$LOG"
}

# attempts: "ID attempts" per queued entry, in the queue $QD.
attempts() {
	local f
	for f in "$QD"/*.env; do
		[ -f "$f" ] || continue
		printf '%s %s\n' "$(basename "$f" .env)" \
			"$(sed -n 's/^attempts //p' "$f")"
	done
}

# --- 1. a write that stalls mid-body ----------------------------------------
# The server stops reading for 1.5 s inside the last full 64 KiB block of
# the first message's body (after 270,000 of its 330,145 octets); timeout
# 1; a small message is queued behind it. Nothing may be written after
# the timeout: no corrupted copy, no second copy, no innocent message
# refused, no bounce. The next run delivers both, once.
stall_case() {	# NAME EXT
	local name=$1 ext=$2
	msg "$FS/$name-big" "$name-big" 5000
	msg "$FS/$name-small" "$name-small" 10
	fault_start "$name" --max-time 60 --io-timeout 15 --ext "$ext" \
		--rcvbuf 16384 --stall-at 270000 --stall-read 1.5
	mkcfg "$name" "$PORT" "timeout 1"
	queue "$name" "$name-big"
	# IDs sort by time (to 1/65536 s): the big one goes first
	queue "$name" "$name-small"
	ob "fault-$name-run1" 0 -q
	expect_eq "fault-$name-run1-big-not-accepted" "$(copies "$name-big")" 0
	# the one behind it goes in a new session of the same run
	expect_eq "fault-$name-run1-small-delivered" "$(copies "$name-small")" 1
	expect_grep "fault-$name-stalled" 'server stops reading' "$LOG"
	[ -e "$DEAD" ] && fail "fault-$name-no-dead-letter" "$(head -3 "$DEAD")" ||
		pass "fault-$name-no-dead-letter"
	ob "fault-$name-run2" 0 -q
	expect_eq "fault-$name-big-once" "$(copies "$name-big")" 1
	expect_eq "fault-$name-small-once" "$(copies "$name-small")" 1
	intact "$name" "$name-big" "$name-small"
	expect_eq "fault-$name-queue-empty" "$(attempts)" ""
	expect_nogrep "fault-$name-no-5xx" '^S: 5[0-9][0-9]' "$LOG"
	expect_nogrep "fault-$name-no-bounce" '^C: MAIL FROM:<>' "$LOG"
	fault_stop
}

EXT_BDAT=PIPELINING,CHUNKING,8BITMIME,SIZE=10240000,ENHANCEDSTATUSCODES
EXT_DATA=PIPELINING,8BITMIME,SIZE=10240000,ENHANCEDSTATUSCODES
if [ "$FAILPATH_NS" = none ]; then
	skip fault-stall-bdat "no network namespace (unshare -rmn)"
	skip fault-stall-data "no network namespace (unshare -rmn)"
else
	stall_case stall-bdat "$EXT_BDAT"
	stall_case stall-data "$EXT_DATA"
fi

# --- 2. 421 anywhere --------------------------------------------------------
# Three entries queued; the server says 421 once (then closes, reading on
# for 0.5 s to see whether the client still writes). The run goes on in a
# new session: two are delivered, only the one the 421 answered waits,
# charged one attempt. (4.4.2: a 421 that closes, not one that throttles.)
case_421() {	# NAME SERVER-ARGS...
	local name=$1 m n=0 left
	shift
	for m in a b c; do msg "$FS/$name-$m" "$name-$m" 3; done
	fault_start "$name" --max-time 60 --io-timeout 15 \
		--read-after-421 0.5 "$@"
	mkcfg "$name" "$PORT"
	queue "$name" "$name-a" "$name-b" "$name-c"
	ob "fault-$name-run" 0 -q
	for m in a b c; do n=$((n + $(copies "$name-$m"))); done
	expect_eq "fault-$name-delivered" "$n" 2
	nothing_after_421 "$name"
	left=$(attempts)
	expect_eq "fault-$name-one-waits-charged-once" \
		"$(printf '%s\n' "$left" | awk 'NF { n++; a = $2 } END { print n "/" a }')" "1/1"
	expect_grep "fault-$name-says-421" '^error .*421' "$QD"/*.env
	intact "$name" "$name-a" "$name-b" "$name-c"
	expect_grep "fault-$name-new-session" '^# session 2 ' "$LOG"
	fault_stop
}
case_421 421-greeting --reply-once 'GREETING=421 4.4.2 faultsmtp closing'
case_421 421-mail --reply-once 'MAIL=421 4.4.2 faultsmtp closing'
case_421 421-rcpt --reply-once 'RCPT=421 4.4.2 faultsmtp closing'
case_421 421-eod --reply-once 'DOT=421 4.4.2 faultsmtp closing'
case_421 421-eod-data --ext "$EXT_DATA" \
	--reply-once 'DOT=421 4.4.2 faultsmtp closing'

# A server that says 421 to every greeting is asked at most 4 times a run:
# each entry it answered is charged, the one left when the run gives up
# is not.
name=421-always
for m in a b c d e; do msg "$FS/$name-$m" "$name-$m" 3; done
fault_start "$name" --max-time 60 --io-timeout 15 \
	--reply 'GREETING=421 4.4.2 faultsmtp closing'
mkcfg "$name" "$PORT" "sessions 1"
queue "$name" "$name-a" "$name-b" "$name-c" "$name-d" "$name-e"
ob "fault-$name-run" 0 -q
expect_eq "fault-$name-four-sessions" "$(grep -c '^# session [0-9]' "$LOG")" 4
expect_eq "fault-$name-charged" "$(attempts | awk '{ print $2 }' | sort | tr '\n' ' ')" "0 1 1 1 1 "
fault_stop

# A 421 that throttles (4.7.x, 4.3.2: limits.c) pauses the account
# instead: nothing more goes in this run, and nothing is charged.
name=421-throttle
for m in a b c; do msg "$FS/$name-$m" "$name-$m" 3; done
fault_start "$name" --max-time 60 --io-timeout 15 --read-after-421 0.5 \
	--reply-once 'MAIL=421 4.7.0 Try again later, closing connection'
mkcfg "$name" "$PORT"
queue "$name" "$name-a" "$name-b" "$name-c"
ob "fault-$name-run" 0 -q
expect_eq "fault-$name-none-delivered" "$(grep -c '^E: accepted' "$LOG")" 0
nothing_after_421 "$name"
expect_eq "fault-$name-none-charged" "$(attempts | awk '{ n++; a += $2 } END { print n "/" a }')" "3/0"
expect_nogrep "fault-$name-one-session" '^# session 2 ' "$LOG"
fault_stop

# --- 3. what needs an administrator is said, even when queued ---------------
# stderr is a file here (not a terminal): a safely queued message is quiet,
# unless the failure needs an administrator.
fault_certs >/dev/null 2>&1 || fail fault-tls-certs "openssl could not make the test CA"
OTHER=$FS/other
mkdir -p "$OTHER"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$OTHER/ca.key" -out "$OTHER/ca.pem" -days 2 \
	-subj /CN=another-CA >/dev/null 2>&1

loud_case() {	# NAME PATTERN CFG-LINES... -- SERVER-ARGS...
	local name=$1 pat=$2 lines=()
	shift 2
	while [ "$1" != -- ]; do lines+=("$1"); shift; done
	shift
	msg "$FS/$name" "$name" 3
	fault_start "$name" --once --max-time 30 --io-timeout 5 "$@"
	mkcfg "$name" "${FAULT_PORT:-$PORT}" "${lines[@]}"
	ob "fault-$name" 0 -i -f a@example.test b@example.test <"$FS/$name"
	expect_grep "fault-$name-said" "$pat" "$TR"
	expect_eq "fault-$name-queued" "$(attempts | wc -l)" 1
	expect_nogrep "fault-$name-no-mail" '^C: MAIL' "$LOG"
	fault_stop
}
loud_case tls-untrusted-starttls 'certificate verification failed' \
	"tls starttls" "tls_ca_file $OTHER/ca.pem" -- "${TLSARGS[@]}"
loud_case tls-untrusted-implicit 'certificate verification failed' \
	"tls implicit" "tls_ca_file $OTHER/ca.pem" -- "${TLSARGS[@]}" --implicit-tls
loud_case tls-wrong-mode-implicit 'does not speak TLS' \
	"tls implicit" "tls_ca_file $CA" "timeout 2" --
if [ "$FAILPATH_NS" = none ]; then
	skip fault-tls-wrong-mode-starttls "no network namespace for port 465"
else
	FAULT_PORT=465 loud_case tls-wrong-mode-starttls 'port 465 expects TLS' \
		"tls starttls" "tls_ca_file $CA" "timeout 1" -- \
		"${TLSARGS[@]}" --implicit-tls --port 465
fi
# A server that is only down stays quiet (the contrast: the check can fail).
name=quiet-when-down
msg "$FS/$name" "$name" 3
mkcfg "$name" "$(free_port)"
ob "fault-$name" 0 -i -f a@example.test b@example.test <"$FS/$name"
expect_eq "fault-$name-stderr-empty" "$(cat "$TR")" ""

# --- 4. a resolver that never answers ---------------------------------------
# Name resolution is bounded by timeout (1 s) like any other wait: without
# that, glibc's resolver waits 5 s twice per name, past OB_TIMEOUT.
if [ "$FAILPATH_NS" = none ]; then
	skip fault-dns-stall "no mount and network namespace for resolv.conf"
else
	name=dns-stall
	msg "$FS/$name" "$name" 3
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
open(sys.argv[1], "w").write("up\n")
s.settimeout(60)
try:
    while True:
        s.recvfrom(4096)
except OSError:
    pass' "$FS/dns.up" & DNS_PID=$!
	for i in $(seq 100); do [ -s "$FS/dns.up" ] && break; sleep 0.05; done
	mkcfg "$name" 25 "host relay.stall.test" "timeout 1"
	OB_TIMEOUT=8 ob "fault-$name" 0 -i -f a@example.test b@example.test <"$FS/$name"
	expect_grep "fault-$name-bounded" 'no answer from the resolver within 1 s' "$QD"/*.env
	expect_eq "fault-$name-queued" "$(attempts | wc -l)" 1
	# The token endpoint's name too: the device flow's first request
	# gives up within timeout, as temporary (75).
	name=dns-stall-token
	mkcfg "$name" 25 "tls starttls" "timeout 1" "user a@example.test" \
		"auth xoauth2" "oauth2_grant refresh_token" \
		"oauth2_refresh_token_file $FS/$name.rt" \
		"oauth2_token_url https://token.stall.test/token" \
		"oauth2_device_url https://token.stall.test/device" \
		"oauth2_client_id app"
	OB_TIMEOUT=8 ob "fault-$name" 75 --oauth2-login </dev/null
	expect_grep "fault-$name-bounded" \
		'token.stall.test: no answer from the resolver within 1 s' "$TR"
	kill "$DNS_PID" 2>/dev/null; wait "$DNS_PID" 2>/dev/null
fi
