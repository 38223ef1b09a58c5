#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Fault injection: outbox against tests/faultsmtp.py (a scripted SMTP server
# on 127.0.0.1), one server per case. Checks exit codes against the sysexits
# contract, what crossed the wire (pipelining, BDAT, SIZE/BODY/DSN parameters,
# exact DATA bytes), dead_letter for permanent failures, and that stalls and
# hostile replies are bounded in time and memory.
# Needs: python3, openssl, /usr/bin/time. Run via tests/run.sh, or alone:
#   export TESTROOT=$(mktemp -d) RESULTS=$TESTROOT/results OUTBOX=$PWD/outbox
#   bash tests/t_fault.sh
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
: "${TESTROOT:=$(mktemp -d /tmp/outbox-fault.XXXXXX)}"
FS=$TESTROOT/fault
CA=$FS/pki/ca.pem	# made by fault_certs (lib.sh)
rm -rf "$FS"; mkdir -p "$FS"
SERVER=$here/faultsmtp.py
SRV_PID=
trap 'stop_srv' EXIT

# --- helpers ---------------------------------------------------------------


# start_srv (lib.sh): one faultsmtp session.
SRV_ARGS=(--once --max-time 60 --io-timeout 15)

stop_srv() { fault_stop; }


# TLS client lines (with credentials) for the STARTTLS/AUTH cases.
TLSCFG=("tls starttls" "tls_ca_file $CA" "user alice" "password secret")

# ob (lib.sh): its exit code is the check fault-NAME; stderr in $FS/NAME.err,
# $ELAPSED and $RSS measured; the server is stopped afterwards. mkcfg
# (lib.sh) writes "queue off".
MKCFG_QUEUE=off OB_PREFIX=fault- OB_DIR=$FS OB_RSS=1 OB_TIMEOUT=20 OB_AFTER=stop_srv

# fault NAME WANT [outbox args...]: the common case: scenario NAME, plain
# message, tls off, sender a@, recipient b@ then ARGS.
fault() {
	local name=$1 want=$2; shift 2
	start_srv "$name" --scenario "$name"
	mkcfg "$name" "$PORT"
	ob "$name" "$want" -v -i -f a@example.test b@example.test "$@" <"$MSG"
}

expect_dead() {	# NAME: the message was appended to dead_letter
	if [ -f "$DEAD" ] && grep -q '^Subject: fault test' "$DEAD"; then
		pass "fault-$1-dead-letter"
	else
		fail "fault-$1-dead-letter" "no message in $DEAD"
	fi
}

expect_no_mail() {	# NAME: no MAIL FROM (nor AUTH, nor data) reached the server
	expect_nogrep "fault-$1-no-mail" '^C: MAIL' "$LOG"
	expect_nogrep "fault-$1-no-data" '^D: ' "$LOG"
}

expect_no_auth() {
	expect_nogrep "fault-$1-no-auth" '^C: AUTH' "$LOG"
}

expect_fast() {	# NAME MAXMS
	if [ "$ELAPSED" -le "$2" ]; then pass "fault-$1-bounded-time"
	else fail "fault-$1-bounded-time" "took ${ELAPSED} ms, limit $2 ms"; fi
}

expect_small() {	# NAME: max RSS under 20 MB
	# Under check-valgrind the RSS is valgrind's: the plain run checks it.
	if [ -n "${OUTBOX_WRAPPER:-}" ]; then
		echo "note: fault-$1-rss not measured under $OUTBOX_WRAPPER"
		return
	fi
	if [ -n "$RSS" ] && [ "$RSS" -lt 20480 ] 2>/dev/null; then pass "fault-$1-rss"
	else fail "fault-$1-rss" "max RSS ${RSS:-?} KiB, limit 20480 KiB"; fi
}

expect_file_eq() {	# NAME GOT WANT: byte-for-byte
	if cmp -s "$2" "$3"; then pass "$1"; else
		fail "$1" "$2 differs from $3: $(cmp "$2" "$3" 2>&1 | head -1);" \
			"got: $(od -c "$2" 2>&1 | head -12 | tr '\n' '|')"
	fi
}

# --- messages ----------------------------------------------------------------

MSG=$FS/msg.txt
printf '%s\n' 'From: Alice <a@example.test>' 'To: b@example.test' \
	'Date: Mon, 01 Jan 2024 00:00:00 +0000' 'Message-ID: <fault-1@example.test>' \
	'Subject: fault test' '' 'Hello.' '.leading dot' '..two dots' '.' \
	'From the middle' >"$MSG"
printf 'crlf line\r\n\nlast line without newline' >>"$MSG"

# What the server must see: CRLF everywhere, final CRLF added ...
WANT_DATA=$FS/want.data
printf '%s\r\n' 'From: Alice <a@example.test>' 'To: b@example.test' \
	'Date: Mon, 01 Jan 2024 00:00:00 +0000' 'Message-ID: <fault-1@example.test>' \
	'Subject: fault test' '' 'Hello.' '.leading dot' '..two dots' '.' \
	'From the middle' 'crlf line' '' 'last line without newline' >"$WANT_DATA"
# ... and on the wire in DATA: dot-stuffed, then the terminating dot.
WANT_RAW=$FS/want.raw
printf '%s\r\n' 'From: Alice <a@example.test>' 'To: b@example.test' \
	'Date: Mon, 01 Jan 2024 00:00:00 +0000' 'Message-ID: <fault-1@example.test>' \
	'Subject: fault test' '' 'Hello.' '..leading dot' '...two dots' '..' \
	'From the middle' 'crlf line' '' 'last line without newline' '.' >"$WANT_RAW"
WANT_SIZE=$(wc -c <"$WANT_DATA")

MSG8=$FS/msg8.txt
printf 'From: a@example.test\nDate: Mon, 01 Jan 2024 00:00:00 +0000\nMessage-ID: <f8@example.test>\nSubject: fault test\n\nh\303\251llo w\303\266rld\n' >"$MSG8"

MSGBIG=$FS/msgbig.txt
{
	printf 'From: a@example.test\nSubject: fault test\n\n'
	for i in $(seq 40); do printf 'line %02d of a message that is well over one kilobyte long\n' "$i"; done
} >"$MSGBIG"

MSGHUGE=$FS/msghuge.txt
{
	printf 'From: a@example.test\nSubject: fault test\n\n'
	python3 -c 'import sys; sys.stdout.write(("%0899d\n" % 0) * 4500)'
} >"$MSGHUGE"

if ! fault_certs; then
	fail fault-certs "openssl could not make the test CA/certificate"
fi

# --- healthy servers: what crosses the wire ----------------------------------

# DATA path, with PIPELINING: exact bytes, one read for MAIL/RCPT/DATA, SIZE=.
start_srv healthy-data --ext PIPELINING,8BITMIME,SIZE=1000000,ENHANCEDSTATUSCODES
mkcfg healthy-data "$PORT"
ob healthy-data 0 -v -i -f a@example.test b@example.test <"$MSG"
expect_file_eq fault-healthy-data-wire "$LOG.raw" "$WANT_RAW"
expect_file_eq fault-healthy-data-content "$LOG.data" "$WANT_DATA"
expect_grep fault-healthy-data-pipelined '^B: [0-9]+ .*MAIL RCPT DATA' "$LOG"
expect_grep fault-healthy-data-size "^C: MAIL FROM:<a@example.test>.* SIZE=$WANT_SIZE( |\$)" "$LOG"
expect_nogrep fault-healthy-data-7bit-no-body '^C: MAIL .*BODY=8BITMIME' "$LOG"
expect_nogrep fault-healthy-data-no-dsn '^C: (MAIL|RCPT) .*(NOTIFY|RET|ENVID|ORCPT)=' "$LOG"
expect_nogrep fault-healthy-data-no-warnings '^W: ' "$LOG"
expect_grep fault-healthy-data-transcript '^-> (EHLO|MAIL FROM)' "$FS/healthy-data.err"

# BDAT path (default extensions: PIPELINING CHUNKING 8BITMIME SIZE DSN ...).
start_srv healthy-bdat
mkcfg healthy-bdat "$PORT"
ob healthy-bdat 0 -v -i -f a@example.test b@example.test <"$MSG"
expect_file_eq fault-healthy-bdat-content "$LOG.data" "$WANT_DATA"
expect_grep fault-healthy-bdat-last "^C: BDAT $WANT_SIZE LAST\$" "$LOG"
expect_eq fault-healthy-bdat-one-chunk "$(grep -c '^C: BDAT' "$LOG")" 1
expect_nogrep fault-healthy-bdat-no-data-cmd '^C: DATA' "$LOG"
expect_grep fault-healthy-bdat-pipelined '^B: [0-9]+ .*MAIL RCPT BDAT' "$LOG"
expect_nogrep fault-healthy-bdat-no-warnings '^W: |^S: 5' "$LOG"

# Several recipients: still one read for MAIL RCPT RCPT RCPT BDAT.
start_srv healthy-multi
mkcfg healthy-multi "$PORT"
ob healthy-multi 0 -v -i -f a@example.test b@example.test c@example.test d@example.test <"$MSG"
expect_grep fault-healthy-multi-pipelined '^B: [0-9]+ .*MAIL RCPT RCPT RCPT BDAT' "$LOG"
expect_grep fault-healthy-multi-3rcpt 'queued as FS1 \(3 recipients\)' "$LOG"

# No PIPELINING: exactly one command per read, DATA path.
start_srv nopipe --ext 8BITMIME,SIZE=1000000
mkcfg nopipe "$PORT"
ob nopipe 0 -v -i -f a@example.test b@example.test c@example.test <"$MSG"
expect_nogrep fault-nopipe-one-per-read '^B: ([02-9]|[1-9][0-9])' "$LOG"
expect_nogrep fault-nopipe-no-warnings '^W: ' "$LOG"
expect_file_eq fault-nopipe-wire "$LOG.raw" "$WANT_RAW"

# CHUNKING without PIPELINING: BDAT, one command per read.
start_srv nopipe-bdat --ext CHUNKING,8BITMIME
mkcfg nopipe-bdat "$PORT"
ob nopipe-bdat 0 -v -i -f a@example.test b@example.test <"$MSG"
expect_nogrep fault-nopipe-bdat-one-per-read '^B: ([02-9]|[1-9][0-9])' "$LOG"
expect_grep fault-nopipe-bdat-last "^C: BDAT $WANT_SIZE LAST\$" "$LOG"
expect_file_eq fault-nopipe-bdat-content "$LOG.data" "$WANT_DATA"

# Bare HELO-style server (nothing advertised): plain DATA, no parameters.
start_srv noext --ext ''
mkcfg noext "$PORT"
ob noext 0 -v -i -f a@example.test b@example.test <"$MSG"
expect_nogrep fault-noext-no-params '^C: MAIL FROM:<[^>]*> *[A-Za-z]' "$LOG"
expect_nogrep fault-noext-no-bdat '^C: BDAT' "$LOG"

# 8-bit message: BODY=8BITMIME when offered.
start_srv 8bit
mkcfg 8bit "$PORT"
ob 8bit 0 -v -f a@example.test b@example.test <"$MSG8"
expect_grep fault-8bit-body '^C: MAIL FROM:<a@example.test>.* BODY=8BITMIME' "$LOG"
expect_grep fault-8bit-size "^C: MAIL .* SIZE=$(wc -c <"$LOG.data")( |\$)" "$LOG"

# No 8BITMIME: the body goes as quoted-printable, labelled with its
# charset; 8-bit header text as RFC 2047 words, never inside addresses.
MSG7=$FS/msg7.txt
printf 'From: J\303\266rg <a@example.test>\nTo: <b@example.test>\nSubject: gr\303\274\303\237e\n\nh\303\251llo\n' >"$MSG7"
start_srv 7bit --ext PIPELINING,SIZE=1000000
mkcfg 7bit "$PORT"
ob 7bit 0 -v -f a@example.test b@example.test <"$MSG7"
expect_nogrep fault-7bit-no-body-param '^C: MAIL .*BODY=' "$LOG"
expect_grep fault-7bit-charset '^Content-Type: text/plain; charset=utf-8.$' "$LOG.data"
expect_grep fault-7bit-qp '^Content-Transfer-Encoding: quoted-printable.$' "$LOG.data"
expect_grep fault-7bit-body '^h=C3=A9llo.$' "$LOG.data"
expect_grep fault-7bit-subject '^Subject: =\?UTF-8\?B\?Z3LDvMOfZQ==\?=.$' "$LOG.data"
expect_grep fault-7bit-from '^From: =\?UTF-8\?B\?SsO2cmc=\?= <a@example.test>.$' "$LOG.data"
if LC_ALL=C grep -q '[^[:print:][:space:]]' "$LOG.data"; then
	fail fault-7bit-all-ascii "8-bit octets on the wire: $(LC_ALL=C grep -n '[^[:print:][:space:]]' "$LOG.data" | head -3)"
else
	pass fault-7bit-all-ascii
fi

# No 8BITMIME, a multipart message whose only 8-bit text is its Subject
# (what mpack sends): the Subject is encoded, the parts go as they are.
MSGMP=$FS/msgmp.txt
printf 'Message-ID: <mp@example.test>\nMime-Version: 1.0\nSubject: gr\303\274\303\237e\nContent-Type: multipart/mixed; boundary="-"\n\nThis is a MIME encoded message.\n\n---\nContent-Type: application/octet-stream; name="f"\nContent-Transfer-Encoding: base64\n\naGVsbG8=\n\n-----\n' >"$MSGMP"
start_srv 7bit-mp --ext PIPELINING,SIZE=1000000
mkcfg 7bit-mp "$PORT"
ob 7bit-mp 0 -v -f a@example.test b@example.test <"$MSGMP"
expect_grep fault-7bit-mp-subject '^Subject: =\?UTF-8\?B\?Z3LDvMOfZQ==\?=.$' "$LOG.data"
expect_nogrep fault-7bit-mp-no-qp 'quoted-printable' "$LOG.data"
expect_grep fault-7bit-mp-type-kept '^Content-Type: multipart/mixed; boundary="-".$' "$LOG.data"
check fault-7bit-mp-parts-unchanged cmp -s <(sed -n '/^$/,$p' "$MSGMP") \
	<(tr -d '\r' <"$LOG.data" | sed -n '/^$/,$p')
if LC_ALL=C grep -q '[^[:print:][:space:]]' "$LOG.data"; then
	fail fault-7bit-mp-all-ascii "8-bit octets on the wire"
else
	pass fault-7bit-mp-all-ascii
fi
# An 8-bit body in a multipart message cannot be re-encoded: refused (65),
# kept in dead.letter, nothing sent.
sed 's/^aGVsbG8=$/h\xc3\xa9llo/' "$MSGMP" >"$FS/msgmp8.txt"
start_srv 7bit-mp8 --ext PIPELINING,SIZE=1000000
mkcfg 7bit-mp8 "$PORT"
ob 7bit-mp8 65 -v -f a@example.test b@example.test <"$FS/msgmp8.txt"
expect_grep fault-7bit-mp8-says 'needs re-encoding .* but is multipart' "$FS/7bit-mp8.err"
expect_nogrep fault-7bit-mp8-no-mail '^C: MAIL' "$LOG"
check fault-7bit-mp8-dead-letter grep -q '^Subject: gr' "$DEAD"

# SIZE=1000 and a larger message: refused before MAIL, permanently.
start_srv size-limit --ext PIPELINING,SIZE=1000
mkcfg size-limit "$PORT"
t0=$(date +%s%N)
timeout 20 "$OUTBOX" -C "$CFG" -v -f a@example.test b@example.test <"$MSGBIG" \
	>"$FS/size-limit.out" 2>"$FS/size-limit.err"
rc=$?
stop_srv
echo "note: message over the server's SIZE limit -> outbox exit $rc"
if [ "$rc" -ne 0 ] && [ "$rc" -ne 75 ] && [ "$rc" -ne 124 ]; then
	pass fault-size-limit-exit
else
	fail fault-size-limit-exit "exit $rc, want non-zero and not 75; stderr: $(head -c 600 "$FS/size-limit.err")"
fi
expect_nogrep fault-size-limit-no-mail '^C: MAIL' "$LOG"
expect_grep fault-size-limit-said-why 'outbox: ' "$FS/size-limit.err"

# DSN asked for and offered.
start_srv dsn
mkcfg dsn "$PORT"
ob dsn 0 -v -i -f a@example.test -N success,failure -R hdrs -V id123 b@example.test <"$MSG"
expect_grep fault-dsn-ret '^C: MAIL FROM:<a@example.test>.* RET=HDRS( |$)' "$LOG"
expect_grep fault-dsn-envid '^C: MAIL FROM:<a@example.test>.* ENVID=id123( |$)' "$LOG"
expect_grep fault-dsn-notify '^C: RCPT TO:<b@example.test>.* NOTIFY=SUCCESS,FAILURE( |$)' "$LOG"
expect_nogrep fault-dsn-no-warnings '^W: ' "$LOG"

# DSN asked for, not offered: no DSN parameters at all.
start_srv dsn-off --ext PIPELINING,8BITMIME,SIZE=1000000
mkcfg dsn-off "$PORT"
ob dsn-off 0 -v -i -f a@example.test -N success,failure -R hdrs -V id123 b@example.test <"$MSG"
expect_nogrep fault-dsn-off-none '^C: (MAIL|RCPT) .*(NOTIFY|RET|ENVID|ORCPT)=' "$LOG"

# STARTTLS + AUTH against a healthy server (control for the TLS faults).
start_srv starttls "${TLSARGS[@]}"
mkcfg starttls "$PORT" "${TLSCFG[@]}"
ob starttls 0 -v -i -f a@example.test b@example.test <"$MSG"
expect_grep fault-starttls-tls '^T: established' "$LOG"
expect_eq fault-starttls-order "$(grep -E '^(C: (EHLO|STARTTLS|AUTH|MAIL)|T: established)' "$LOG" |
	sed -E 's/^C: ([A-Z]+).*/\1/; s/^T: .*/TLS/' | tr '\n' ' ')" "EHLO STARTTLS TLS EHLO AUTH MAIL "
expect_file_eq fault-starttls-content "$LOG.data" "$WANT_DATA"
expect_nogrep fault-starttls-redacted 'c2VjcmV0|AGFsaWNlAHNlY3JldA|secret' "$FS/starttls.err"

# Implicit TLS.
start_srv implicit "${TLSARGS[@]}" --implicit-tls
mkcfg implicit "$PORT" "tls implicit" "tls_ca_file $CA" "user alice" "password secret"
ob implicit 0 -v -i -f a@example.test b@example.test <"$MSG"
expect_file_eq fault-implicit-content "$LOG.data" "$WANT_DATA"

# Wrong password against a healthy server: 535 -> 75, nothing sent.
start_srv badpass "${TLSARGS[@]}"
mkcfg badpass "$PORT" "tls starttls" "tls_ca_file $CA" "user alice" "password wrong"
ob badpass 75 -v -i -f a@example.test b@example.test <"$MSG"
expect_no_mail badpass

# EHLO refused, HELO accepted: delivered by plain SMTP.
fault ehlo-5xx 0
expect_grep fault-ehlo-5xx-helo '^C: HELO ' "$LOG"
expect_file_eq fault-ehlo-5xx-wire "$LOG.raw" "$WANT_RAW"

# Replies in tiny pieces, or several in one write: both are fine.
fault reply-split 0
expect_file_eq fault-reply-split-content "$LOG.data" "$WANT_DATA"
fault reply-joined 0
expect_file_eq fault-reply-joined-content "$LOG.data" "$WANT_DATA"

# --- connection-level faults: temporary (75) ---------------------------------

fault greeting-421 75
expect_no_mail greeting-421
fault drop-before-greeting 75
fault stall-greeting 75
expect_fast stall-greeting 9000
fault ehlo-421 75
expect_no_mail ehlo-421

# 5xx greeting: the contract does not say. Permanent (69, and then the
# message goes to dead_letter) or "try the next host" (75) are both sane.
start_srv greeting-554 --scenario greeting-554
mkcfg greeting-554 "$PORT"
timeout 20 "$OUTBOX" -C "$CFG" -v -i -f a@example.test b@example.test <"$MSG" \
	>/dev/null 2>"$FS/greeting-554.err"
rc=$?
stop_srv
echo "note: 554 greeting -> outbox exit $rc"
case $rc in
69) pass fault-greeting-554; expect_dead greeting-554 ;;
75) pass fault-greeting-554 ;;
*) fail fault-greeting-554 "exit $rc, want 69 or 75; stderr: $(head -c 600 "$FS/greeting-554.err")" ;;
esac
expect_no_mail greeting-554

# --- TLS and AUTH faults: 75, and nothing sensitive crossed -------------------

for sc in no-starttls starttls-454 starttls-inject tls-fail tls-close; do
	start_srv "$sc" --scenario "$sc" "${TLSARGS[@]}"
	mkcfg "$sc" "$PORT" "${TLSCFG[@]}"
	ob "$sc" 75 -v -i -f a@example.test b@example.test <"$MSG"
	expect_no_auth "$sc"
	expect_no_mail "$sc"
done
expect_nogrep fault-starttls-inject-not-a-reply '<-.*injected' "$FS/starttls-inject.err"

for sc in auth-535 auth-454; do
	start_srv "$sc" --scenario "$sc" "${TLSARGS[@]}"
	mkcfg "$sc" "$PORT" "${TLSCFG[@]}"
	ob "$sc" 75 -v -i -f a@example.test b@example.test <"$MSG"
	expect_grep "fault-$sc-tried" '^C: AUTH' "$LOG"
	expect_no_mail "$sc"
done

# --- transaction faults --------------------------------------------------------

fault mail-421 75
fault mail-451 75
expect_nogrep fault-mail-451-no-data '^D: end of data' "$LOG"
for sc in mail-550 mail-552; do
	fault "$sc" 69
	expect_nogrep "fault-$sc-no-data" '^D: end of data' "$LOG"
	expect_dead "$sc"
done

fault rcpt-all-550 67 c@example.test
expect_nogrep fault-rcpt-all-550-no-data '^D: end of data' "$LOG"
expect_dead rcpt-all-550
expect_grep fault-rcpt-all-550-reported 'no such user here' "$ERR"

fault rcpt-partial 67 c@example.test
expect_grep fault-rcpt-partial-delivered '^D: end of data' "$LOG"
expect_grep fault-rcpt-partial-one-rcpt 'queued as FS1 \(1 recipients\)' "$LOG"
expect_grep fault-rcpt-partial-reply-text 'c@example\.test.*faultsmtp says no such user here|faultsmtp says no such user here.*c@example\.test' "$ERR"
expect_file_eq fault-rcpt-partial-content "$LOG.data" "$WANT_DATA"

fault rcpt-451 75
expect_nogrep fault-rcpt-451-no-data '^D: end of data' "$LOG"

fault data-354-then-drop 75
# The same with a message far bigger than the socket buffers: the server
# hangs up while outbox is still writing (EPIPE/ECONNRESET, not SIGPIPE death).
for sc in data-354-then-drop:PIPELINING bdat-drop:PIPELINING,CHUNKING; do
	ext=${sc#*:} sc=${sc%:*}
	start_srv "big-$sc" --scenario "$sc" --ext "$ext"
	mkcfg "big-$sc" "$PORT"
	ob "big-$sc" 75 -v -f a@example.test b@example.test <"$MSGHUGE"
	expect_grep "fault-big-$sc-cut" '^D: (got|connection lost)' "$LOG"
done
fault data-451 75
fault data-554 69
expect_dead data-554
fault dot-451 75
fault dot-554 69
expect_dead dot-554
fault dot-drop 75
expect_grep fault-dot-drop-sent '^D: end of data' "$LOG"
fault dot-stall 75
expect_fast dot-stall 9000

# The same end-of-data faults on the BDAT path.
for sc in dot-451:75 dot-554:69; do
	start_srv "bdat-${sc%:*}" --scenario "${sc%:*}" --ext PIPELINING,CHUNKING,8BITMIME,SIZE=1000000
	mkcfg "bdat-${sc%:*}" "$PORT"
	ob "bdat-${sc%:*}" "${sc#*:}" -v -i -f a@example.test b@example.test <"$MSG"
	expect_grep "fault-bdat-${sc%:*}-used-bdat" '^C: BDAT' "$LOG"
done
expect_dead bdat-dot-554

fault bdat-552 69
expect_dead bdat-552

# --- hostile replies: 75, bounded in time and memory --------------------------

for sc in overlong-reply endless-reply bad-reply code-mismatch; do
	fault "$sc" 75
	expect_no_mail "$sc"
	expect_fast "$sc" 9000
	expect_small "$sc"
done

# Across every case: each "outbox:" line has balanced () and [] (catches cut
# or mangled text such as "127.0.0.1[127.0.0.1: ..." or a message repeated
# into itself), and a deferral/refusal is never explained by a 2xx reply.
(cd "$FS" && grep -H --exclude='*.srv.err' '^outbox: ' ./*.err) >"$FS/all-stderr"
awk '/^[^:]*:outbox: / { l = $0; o = gsub(/\(/, "", l); c = gsub(/\)/, "", l);
	ob = gsub(/\[/, "", l); cb = gsub(/\]/, "", l);
	if (o != c || ob != cb) print }' "$FS/all-stderr" >"$FS/unbalanced"
expect_nogrep fault-stderr-intact . "$FS/unbalanced"
expect_nogrep fault-stderr-no-2xx-reason ':outbox: .*(deferred|refused).*: 2[0-9][0-9][ -]' "$FS/all-stderr"

stop_srv
