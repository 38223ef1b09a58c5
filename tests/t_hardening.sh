#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Hardening (issues 10 and 13): -bs SMTP smuggling (CVE-2023-51764), the
# reply and session deadlines against a trickling server, closed descriptors
# 0-2, checked writes to stdout, malformed and non-UTF-8 addresses, a NUL in
# a reply, -bs refusals answered once, bad configuration values.
# Needs python3. Run via tests/run.sh, or alone:
#   export TESTROOT=$(mktemp -d) RESULTS=$TESTROOT/results OUTBOX=$PWD/outbox
#   bash tests/t_hardening.sh
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
: "${TESTROOT:=$(mktemp -d /tmp/outbox-hardening.XXXXXX)}"
FS=$TESTROOT/hardening
rm -rf "$FS"; mkdir -p "$FS"
SRV_PID=
trap 'fault_stop' EXIT

# mkcfg NAME PORT [LINE...] (lib.sh): $FS/NAME.cfg for 127.0.0.1:PORT,
# tls off, timeout 3, log off, its own queue $FS/NAME.q and dead_letter
# $FS/NAME.dead; sets CFG, QD and DEAD.
MKCFG_LINES=("log off")

# queued DIR: how many messages wait in the queue DIR.
queued() { find "$1" -name '*.msg' 2>/dev/null | wc -l; }

# A port nothing listens on: a server's, once it has gone.
fault_start down --once
DOWN=$PORT
fault_stop

MSG=$FS/msg
printf 'Subject: hardening\nMessage-ID: <h1@example.test>\n\nhello\n..x\nend\n' >"$MSG"

# ---- 6. -bs ends DATA only at CRLF.CRLF; bare LF or CR refuses the message.

# bs NAME INPUT: printf INPUT into outbox -bs against the running server.
bs() {
	printf "$2" | timeout 20 "$OUTBOX" -C "$CFG" -bs >"$FS/$1.out" 2>"$FS/$1.err"
	echo $? >"$FS/$1.rc"
}

fault_start bs
mkcfg bs "$PORT"
HEAD='EHLO client.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n'
SMUGGLE='MAIL FROM:<evil@example.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n'
n=0
for pat in '\n.\n' '\r.\r' '\n.\r\n' '\r\n.\n'; do
	n=$((n + 1))
	bs "smuggle$n" "${HEAD}Subject: x\r\n\r\nhello${pat}${SMUGGLE}.\r\nQUIT\r\n"
	expect_eq "bs-smuggle$n-exit" "$(cat "$FS/smuggle$n.rc")" 0
	expect_grep "bs-smuggle$n-refused" '^550 5\.5\.2 .*bare LF or CR' "$FS/smuggle$n.out"
	# In step: the refusal answers DATA, then QUIT gets its 221, and
	# nothing answers the smuggled commands.
	expect_eq "bs-smuggle$n-in-step" "$(tr -d '\r' <"$FS/smuggle$n.out" |
		sed -n '/^354/,$p' | cut -c1-3 | tr '\n' ' ')" "354 550 221 "
done
expect_nogrep bs-smuggle-nothing-sent 'MAIL FROM' "$LOG"
# After a refusal the session goes on: a clean message (dot-stuffed) goes.
bs clean "${HEAD}Subject: x\r\n\r\nhello\n.\n\r\n.\r\n${HEAD#EHLO client.test\\r\\n}Subject: y\r\n\r\n..dot\r\n.\r\nQUIT\r\n"
expect_grep bs-after-refusal-accepted '^250 2\.0\.0 Ok' "$FS/clean.out"
expect_eq bs-after-refusal-one-tx "$(grep -c '^C: MAIL FROM' "$LOG")" 1
expect_grep bs-dot-unstuffed '^\.dot' "$LOG.data"
fault_stop

# ---- 7. A trickled reply is bounded by timeout; a session by session_timeout.
fault_start trickle --once --scenario trickle
mkcfg trickle "$PORT"
expect_exit 0 trickle-reply-gives-up timeout 30 "$OUTBOX" -C "$CFG" -f a@example.test b@example.test <"$MSG"
expect_eq trickle-reply-queued "$(queued "$QD")" 1
timeout 10 "$OUTBOX" -C "$CFG" -bp >"$FS/trickle.bp" 2>&1
expect_grep trickle-reply-why 'no complete reply within 3 s' "$FS/trickle.bp"
fault_stop
fault_start trickle2 --once --scenario trickle
mkcfg trickle2 "$PORT" "timeout 60" "session_timeout 4s"
expect_exit 0 trickle-session-gives-up timeout 30 "$OUTBOX" -C "$CFG" -f a@example.test b@example.test <"$MSG"
expect_eq trickle-session-queued "$(queued "$QD")" 1
timeout 10 "$OUTBOX" -C "$CFG" -bp >"$FS/trickle2.bp" 2>&1
expect_grep trickle-session-why 'longer than 4 s \(session_timeout\)' "$FS/trickle2.bp"
fault_stop

# ---- 8. Started with stdout and stderr closed: no garbage anywhere.
mkcfg closed "$DOWN"
timeout 20 "$OUTBOX" -C "$CFG" -v -f a@example.test b@example.test <"$MSG" >&- 2>&-
expect_eq closed-fds-exit "$?" 0
expect_eq closed-fds-queued "$(queued "$QD")" 1
QMSG=$(find "$QD" -name '*.msg' | head -1)
cp "$QMSG" "$FS/closed.queued"
expect_nogrep closed-fds-no-diagnostics-in-queue 'outbox|->|<-|queued as' "$FS/closed.queued"
fault_start closed --once
sed -i "s/^port .*/port $PORT/" "$CFG"
timeout 20 "$OUTBOX" -C "$CFG" -v -q >&- 2>&-
expect_eq closed-fds-run-exit "$?" 0
fault_stop
expect_nogrep closed-fds-no-transcript-on-wire '^C: (->|<-|outbox)' "$LOG"
check closed-fds-sends-exactly-the-message cmp -s "$FS/closed.queued" "$LOG.data"
expect_eq closed-fds-queue-empty "$(queued "$QD")" 0

# ---- 9. Writes to stdout are checked.
mkcfg out "$DOWN" "aliases $FS/aliases"
printf 'postmaster: root\n' >"$FS/aliases"
expect_exit 74 stdout-full-mailq bash -c '"$0" -C "$1" -bp >/dev/full' "$OUTBOX" "$CFG"
expect_grep stdout-full-mailq-says '^outbox: writing to standard output' "$ERR"
expect_exit 74 stdout-full-bv bash -c '"$0" -C "$1" -bv b@example.test >/dev/full' "$OUTBOX" "$CFG"
expect_exit 74 stdout-full-help bash -c '"$0" --help >/dev/full' "$OUTBOX"
expect_exit 74 stdout-full-newaliases bash -c '"$0" -C "$1" -bi >/dev/full' "$OUTBOX" "$CFG"
"$OUTBOX" -C "$CFG" -odq -f a@example.test b@example.test <"$MSG"
expect_exit 74 stdout-full-q bash -c '"$0" -C "$1" -q >/dev/full' "$OUTBOX" "$CFG"
expect_exit 0 help-exit "$OUTBOX" --help
expect_grep help-usage-on-stdout '^usage: outbox ' "$OUT"

# ---- 10 and 13. Bad addresses are refused before anything goes or waits.
fault_start addr
mkcfg addr "$PORT"
n=0
for a in 'bob@' 'bob@@x.test' 'a@ex..ample' '@x.test' 'bob@example.test.' \
    $'b\xffb@example.test' $'j\xc3@example.test' 'x y@example.test'; do
	n=$((n + 1))
	expect_exit 65 "addr-refused-$n" "$OUTBOX" -C "$CFG" -odq -f a@example.test -- "$a" <"$MSG"
done
expect_exit 65 addr-sender-not-utf8 "$OUTBOX" -C "$CFG" -f $'s\xc0\xafx@example.test' b@example.test <"$MSG"
expect_exit 65 addr-sender-malformed "$OUTBOX" -C "$CFG" -f 'a@b..test' b@example.test <"$MSG"
printf 'To: "x@example.com\nSubject: q\n\nhi\n' >"$FS/quote.msg"
expect_exit 65 addr-open-quote "$OUTBOX" -C "$CFG" -t -f a@example.test <"$FS/quote.msg"
expect_grep addr-open-quote-says 'never closed' "$ERR"
expect_eq addr-nothing-queued "$(queued "$QD")" 0
expect_nogrep addr-nothing-sent 'RCPT TO' "$LOG"
expect_exit 0 addr-null-sender-ok "$OUTBOX" -C "$CFG" -odq -f '<>' b@example.test <"$MSG"
expect_exit 0 addr-utf8-ok "$OUTBOX" -C "$CFG" -odq -f a@example.test $'j\xc3\xb6rg@example.test' <"$MSG"
fault_stop

# A NUL in a reply is a garbled reply (temporary), not a shorter one.
fault_start nul --once --scenario nul-in-reply
mkcfg nul "$PORT" "queue off"
expect_exit 75 nul-reply-temporary timeout 20 "$OUTBOX" -C "$CFG" -f a@example.test b@example.test <"$MSG"
expect_grep nul-reply-says 'garbled reply: a NUL' "$ERR"
fault_stop

# -bs: a refused message gets one 5xx with the server's reason and code,
# and no bounce is mailed.
# bs_refused NAME WANT SCENARIO-ARGS...
bs_refused() {
	local name=$1 want=$2; shift 2
	fault_start "$name" "$@"
	mkcfg "$name" "$PORT"
	bs "$name" "${HEAD}Subject: x\r\n\r\n$(printf 'line %s\\r\\n' $(seq 30))\r\n.\r\nQUIT\r\n"
	expect_grep "bs-$name-reply" "$want" "$FS/$name.out"
	expect_eq "bs-$name-one-reply" "$(tr -d '\r' <"$FS/$name.out" |
		sed -n '/^354/,$p' | cut -c1-3 | tr '\n' ' ')" "354 ${want:1:3} 221 "
	fault_stop
	expect_nogrep "bs-$name-no-bounce" 'MAIL FROM:<>' "$LOG"
}
bs_refused mail552 '^552 5\.3\.4 faultsmtp' --scenario mail-552
bs_refused dot554 '^554 5\.6\.0 faultsmtp: content rejected' --scenario dot-554
bs_refused rcpt550 '^550 5\.1\.1 faultsmtp' --scenario rcpt-all-550
bs_refused size '^552 5\.3\.4 Message refused: .*SIZE' --ext PIPELINING,SIZE=100

# Configuration values that cannot work are refused where they stand.
printf 'host h\nqueue_dir spool\n' >"$FS/rel.cfg"
expect_exit 78 config-relative-queue-dir "$OUTBOX" -C "$FS/rel.cfg" -bp
expect_grep config-relative-queue-dir-line 'rel\.cfg:2: queue_dir' "$ERR"
printf 'host h\nhelo my host\n' >"$FS/helo.cfg"
expect_exit 78 config-helo-space "$OUTBOX" -C "$FS/helo.cfg" -bp
expect_grep config-helo-space-line 'helo\.cfg:2: helo' "$ERR"

# ---- Issue 18 item 7: text from a server, a queue file or another user is
# shown, never obeyed: no raw C0 (ESC, BEL, CR, BS), DEL, C1, bidi control
# or invalid UTF-8 in -v, --check, mailq or mailq --json.

# clean NAME FILE: a check that FILE holds no control character a terminal
# would act on (tab and newline aside) and nothing that is not UTF-8.
clean() {
	if python3 - "$2" <<'PY'
import sys, unicodedata
t = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
bad = [c for c in t if c == "\ufffd" or (c not in "\t\n" and
       unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp"))]
if bad:
    print("raw controls: " + " ".join("U+%04X" % ord(c) for c in bad[:8]))
sys.exit(1 if bad else 0)
PY
	then pass "$1"; else fail "$1" "$2 has raw control characters"; fi
}

# ESC/OSC/BEL/C1 in the greeting, the EHLO keywords and a reply (faultsmtp
# sends each character of its argv as one octet: \xc2\x9b is 0x9b, CSI).
EVIL=$'\x1b]0;owned\x07\x1b[2J\xc2\x9b1m\r\x08'
fault_start esc --once --reply "GREETING=220 fault.test ESMTP $EVIL" \
	--ext "PIPELINING,8BITMIME,AUTH=PLAIN${EVIL}LOGIN" \
	--reply "RCPT=550 5.1.1 no such user $EVIL"
mkcfg esc "$PORT" "queue off"
expect_exit 67 esc-v-refused timeout 20 "$OUTBOX" -C "$CFG" -v -f a@example.test b@example.test <"$MSG"
cp "$ERR" "$FS/esc-v.err"
expect_grep esc-v-shown '^<- 220 fault\.test ESMTP \?\]0;owned\?\?\[2J\?1m\?\?$' "$FS/esc-v.err"
clean esc-v-clean "$FS/esc-v.err"
fault_stop
fault_start esc-check --once --ext "PIPELINING,8BITMIME,AUTH=PLAIN${EVIL}LOGIN" \
	--reply "EHLO=250-fault.test $EVIL\n250 AUTH PLAIN${EVIL}"
mkcfg esc-check "$PORT" "queue off"
timeout 20 "$OUTBOX" -C "$CFG" --check -f a@example.test >"$FS/esc-check.out" 2>&1
expect_grep esc-check-shown 'PLAIN\?\]0;owned' "$FS/esc-check.out"
clean esc-check-clean "$FS/esc-check.out"
fault_stop

# Another user's envelope in mailq: a bidi override in the sender, a C1
# control in a recipient (both valid UTF-8, so both queue).
mkcfg esc-q "$DOWN"
expect_exit 0 esc-queued "$OUTBOX" -C "$CFG" -odq -f $'admin\xe2\x80\xaemoc.knab@example.test' \
	$'b\xc2\x9b2J@example.test' <"$MSG"
timeout 10 "$OUTBOX" -C "$CFG" -bp >"$FS/esc-mailq.out" 2>&1
expect_grep esc-mailq-shown 'admin\?moc\.knab@example\.test' "$FS/esc-mailq.out"
expect_grep esc-mailq-rcpt-shown 'b\?2J@example\.test' "$FS/esc-mailq.out"
clean esc-mailq-clean "$FS/esc-mailq.out"
timeout 10 "$OUTBOX" -C "$CFG" -bp --json >"$FS/esc-json.out" 2>&1
expect_grep esc-json-escaped '"sender": "admin\\u202emoc\.knab@example\.test"' "$FS/esc-json.out"
expect_grep esc-json-c1-escaped '"address": "b\\u009b2J@example\.test"' "$FS/esc-json.out"
clean esc-json-clean "$FS/esc-json.out"
check esc-json-parses python3 -c 'import json, sys
for l in open(sys.argv[1]): json.loads(l)' "$FS/esc-json.out"

# ---- Issue 18 item 8: alias expansion is linear, bounded and stoppable.
# Ten lines of 8-way fan-out (8^9 paths to one address) resolve at once,
# each alias expanded once; an alias that makes more than 1000 recipients
# is refused.
{
	for i in $(seq 0 8); do
		printf 'fan%d: %s\n' "$i" "$(printf "fan$((i + 1)), %.0s" $(seq 8) | sed 's/, $//')"
	done
	echo 'fan9: last@example.test'
	printf 'wide: %s\n' "$(seq -f 'w%g@example.test' 1001 | paste -sd, -)"
	printf 'diamond: d1, d2\nd1: shared, one@example.test\nd2: shared\nshared: s@example.test\n'
} >"$FS/fan.aliases"
mkcfg fan "$DOWN" "aliases $FS/fan.aliases"
expect_exit 0 alias-fanout-bv timeout 60 "$OUTBOX" -C "$CFG" -bv fan0
expect_eq alias-fanout-one-recipient "$(cat "$OUT")" \
	"fan0 -> <last@example.test> via account default, 127.0.0.1:$DOWN (no TLS)"
expect_exit 0 alias-fanout-queued timeout 60 "$OUTBOX" -C "$CFG" -odq -f a@example.test fan0 <"$MSG"
expect_exit 0 alias-diamond timeout 20 "$OUTBOX" -C "$CFG" -bv diamond
expect_eq alias-diamond-each-once "$(sed 's/ via.*//' "$OUT" | tr '\n' ' ')" \
	"diamond -> <s@example.test> diamond -> <one@example.test> "
expect_exit 65 alias-cap-refused timeout 20 "$OUTBOX" -C "$CFG" -odq -f a@example.test wide <"$MSG"
expect_grep alias-cap-says 'more than 1000 recipients' "$ERR"
expect_exit 65 alias-cap-bv timeout 20 "$OUTBOX" -C "$CFG" -bv wide
expect_grep alias-cap-bv-says "^wide: error: more than 1000 recipients" "$OUT"
