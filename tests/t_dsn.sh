#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Bounces are RFC 3464 delivery status notifications: a 5xx at RCPT with
# -oem, and an entry given up after queue_lifetime, each bounce read back
# from the loopback Postfix's Maildir and parsed with Python's email
# package (tests/dsncheck.py): multipart/report; report-type=delivery-status,
# the three parts, each required field.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
. "$TESTROOT/postfix/env"
W=$TESTROOT/dsn
rm -rf "$W"; mkdir -p "$W"

# mkcfg dsn PORT [LINE...] (lib.sh): $CFG ($W/dsn.cfg) for the plain port
# PORT, queue in $QD ($W/dsn.q).
FS=$W MKCFG_LINES=("host $PF_HOST" "timeout 5" "log off")
# msg MID: a small message with that Message-ID in $W/MID.msg.
msg() {
	printf '%s\n' "From: <$2>" 'To: someone' "Message-ID: <$1@example.test>" \
		"Subject: dsn test $1" '' 'The body, not to be returned.' >"$W/$1.msg"
}
# dsncheck NAME FILE ACTION RCPT [STATUS]: every line of dsncheck.py a check.
dsncheck() {
	local name=$1 line; shift
	python3 "$here/dsncheck.py" "$@" >"$W/$name.check" 2>&1
	while IFS= read -r line; do
		case $line in
		"ok   "*) pass "dsn-$name-${line#ok   }" ;;
		"FAIL "*) line=${line#FAIL }; fail "dsn-$name-${line%%:*}" "${line#*: }" ;;
		*) fail "dsn-$name-tool" "$line" ;;
		esac
	done <"$W/$name.check"
	[ -s "$W/$name.check" ] || fail "dsn-$name-tool" "dsncheck printed nothing"
}

# got_bounce NAME LOCALPART: the one bounce in LOCALPART's Maildir, in $f.
got_bounce() {
	f=
	if mail_wait "$2"; then
		pass "dsn-$1-bounce-arrived"
		f=$(mail_file "$2")
	else
		fail "dsn-$1-bounce-arrived" "no bounce in $2's Maildir"
		return 1
	fi
}

# A 5xx at RCPT, -oem: the refusal comes back as a report with the
# server's enhanced code and its reply as Diagnostic-Code.
mail_clear
mkcfg dsn "$PF_PLAIN"
msg rcpt5xx dsn-one@example.test
expect_exit 67 dsn-rcpt-exit "$OUTBOX" -C "$CFG" -oem -i -f dsn-one@example.test \
	reject-nobody@example.test dsn-ok@example.test <"$W/rcpt5xx.msg"
expect_grep dsn-rcpt-mailed 'error report mailed to <dsn-one@example.test>' "$ERR"
check dsn-rcpt-others-got-it mail_wait dsn-ok
if got_bounce rcpt dsn-one; then
	dsncheck rcpt "$f" failed reject-nobody@example.test 5.1.1
	expect_grep dsn-rcpt-diagnostic '^Diagnostic-Code: smtp; 550 5\.1\.1' "$f"
	expect_grep dsn-rcpt-null-sender '^Return-Path: <(MAILER-DAEMON)?>$' "$f"
	expect_nogrep dsn-rcpt-no-body 'The body, not to be returned' "$f"
fi

# queue_lifetime: the entry waits while no server answers, is given up
# once older than the lifetime (its created line is moved back 6 days),
# and the bounce, queued since nothing answered, goes with the next run.
mail_clear
rm -rf "$W/dsn.q"
dead=$((PF_PLAIN - 20))		# nothing listens there (tests/postfix.sh ports)
mkcfg dsn "$dead"
msg expire dsn-two@example.test
expect_exit 0 dsn-life-queued "$OUTBOX" -C "$CFG" -i -f dsn-two@example.test \
	dsn-late@example.test <"$W/expire.msg"
env=$(ls "$QD"/*.env 2>/dev/null | head -1)
check dsn-life-entry test -n "$env"
sed -i "s/^created .*/created $(( $(date +%s) - 6 * 86400 ))/" "$env"
expect_exit 0 dsn-life-run "$OUTBOX" -C "$CFG" -q
expect_grep dsn-life-bounced '1 bounced' "$OUT"
mkcfg dsn "$PF_PLAIN"
expect_exit 0 dsn-life-run2 "$OUTBOX" -C "$CFG" -q
if got_bounce life dsn-two; then
	dsncheck life "$f" failed dsn-late@example.test 5.0.0
	expect_grep dsn-life-why '^Diagnostic-Code: X-outbox; gave up after queue_lifetime' "$f"
	expect_grep dsn-life-orig-header '^Message-ID: <expire@example\.test>' "$f"
fi
expect_eq dsn-life-queue-empty "$(qn)" 0

# delay_warning_time: an entry older than it, tried again and still owed,
# sends its sender one "delayed" report (queued while nothing answers),
# and only one, however many runs follow.
mail_clear
rm -rf "$W/dsn.q"
mkcfg dsn "$dead"
msg delay dsn-three@example.test
expect_exit 0 dsn-delay-queued "$OUTBOX" -C "$CFG" -i -f dsn-three@example.test \
	dsn-wait@example.test <"$W/delay.msg"
env=$(ls "$QD"/*.env 2>/dev/null | head -1)
sed -i "s/^created .*/created $(( $(date +%s) - 5 * 3600 ))/" "$env"
mkcfg dsn "$dead" "delay_warning_time 4h"
expect_exit 0 dsn-delay-run "$OUTBOX" -C "$CFG" -q
expect_grep dsn-delay-marked '^warned 1$' "$env"
expect_eq dsn-delay-warning-queued "$(qn)" 2
expect_exit 0 dsn-delay-run-again "$OUTBOX" -C "$CFG" -q
expect_eq dsn-delay-only-one "$(qn)" 2
mkcfg dsn "$PF_PLAIN" "delay_warning_time 4h"
expect_exit 0 dsn-delay-deliver "$OUTBOX" -C "$CFG" -q
check dsn-delay-original-arrived mail_wait dsn-wait
if got_bounce delay dsn-three; then
	dsncheck delay "$f" delayed dsn-wait@example.test 4.0.0
	expect_grep dsn-delay-subject '^Subject: Delayed Mail' "$f"
fi
expect_eq dsn-delay-queue-empty "$(qn)" 0
