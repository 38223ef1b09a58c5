#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Integration tests: ./outbox against the private loopback Postfix of
# tests/postfix.sh (plain port, STARTTLS + Cyrus SASL, implicit TLS, a
# wrong-name certificate). Every case checks the exit code and what reached
# the Maildirs, byte for byte where content matters, and the -v transcript
# where the wire matters. Run via tests/run.sh, or alone:
#   export TESTROOT=$(mktemp -d) RESULTS=$TESTROOT/results OUTBOX=$PWD/outbox
#   bash tests/postfix.sh start "$TESTROOT/postfix" && bash tests/t_postfix.sh
#   bash tests/postfix.sh stop "$TESTROOT/postfix"
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
: "${TESTROOT:?run via tests/run.sh, or export TESTROOT (see the head of this file)}"
if ! [ -f "$TESTROOT/postfix/env" ]; then
	fail pf-env "no $TESTROOT/postfix/env: tests/postfix.sh start was not run"
	exit 0
fi
. "$TESTROOT/postfix/env"
W=$TESTROOT/t_postfix
rm -rf "$W"; mkdir -p "$W"

ALICE_PW='correct horse'
BOB_PW='pässwörd mit Leerzeichen'
ALICE=("user alice" "password $ALICE_PW")

# --- helpers ---------------------------------------------------------------

# Builds with a retry queue accept "queue off"; these cases assert the exit
# code a caller sees when nothing may wait, so turn it off where it exists.
printf 'host 127.0.0.1\nqueue off\n' >"$W/probe.conf"
"$OUTBOX" -C "$W/probe.conf" -bv probe@example.test >/dev/null 2>&1 && MKCFG_QUEUE=off

# mkcfg NAME PORT [LINE...] (lib.sh) writes $W/NAME.cfg, mode 600, and sets
# CFG: for the test Postfix, from sender@example.test, timeout 10. PORT is
# $PF_PLAIN (tls off), $PF_NOCHUNK (the same without CHUNKING, so DATA),
# $PF_SUBMIT with the LINEs "${SUBMIT[@]}" (STARTTLS) or $PF_SMTPS with
# "${SMTPS[@]}" (implicit TLS).
FS=$W MKCFG_LINES=("host $PF_HOST" "timeout 10" "from sender@example.test")
SUBMIT=("tls starttls" "tls_ca_file $PF_CA")
SMTPS=("tls implicit" "tls_ca_file $PF_CA")

# ob (lib.sh) NAME WANT [outbox args...] <MSG: the exit code is the check
# pf-NAME; stderr is kept as $W/NAME.err, named $TR.
OB_PREFIX=pf- OB_DIR=$W OB_TIMEOUT=30

# hdr_count FILE FIELD: how many FIELD header fields FILE's header block has.
hdr_count() {
	awk -v want="$(printf '%s' "$2" | tr '[:upper:]' '[:lower:]')" '
		/^$/ { exit }
		/^[^ \t:]+:/ { if (tolower(substr($0, 1, index($0, ":") - 1)) == want) c++ }
		END { print c + 0 }' "$1"
}

# hdr_get FILE FIELD: the first FIELD header line (unfolded continuation not needed).
hdr_get() {
	awk -v want="$(printf '%s' "$2" | tr '[:upper:]' '[:lower:]')" '
		/^$/ { exit }
		/^[^ \t:]+:/ { if (tolower(substr($0, 1, index($0, ":") - 1)) == want) { print; exit } }' "$1"
}

# hdr_strip FILE FIELD...: FILE without the named header fields (and their
# continuation lines); the body is untouched.
hdr_strip() {
	local f=$1 names=" "; shift
	for n in "$@"; do names="$names$(printf '%s' "$n" | tr '[:upper:]' '[:lower:]') "; done
	awk -v names="$names" '
		body { print; next }
		/^$/ { body = 1; print; next }
		/^[ \t]/ { if (!skip) print; next }
		{ skip = index(names, " " tolower(substr($0, 1, index($0, ":") - 1)) " ") > 0
		  if (!skip) print }' "$f"
}

# same NAME GOTFILE WANTFILE: byte-for-byte comparison, with a diff on failure.
same() {
	if cmp -s "$2" "$3"; then pass "$1"; else
		fail "$1" "delivered message differs from expected ($2 vs $3):
$(diff <(cat -A "$3") <(cat -A "$2") | head -20)"
	fi
}

# delivered NAME LOCALPART WANTFILE [ADDED...]: LOCALPART got exactly one
# message; each ADDED header field is in it exactly once; without the ADDED
# fields it equals WANTFILE byte for byte. The message is left in $GOT.
delivered() {
	local name=$1 lp=$2 want=$3 h; shift 3
	GOT=$W/$name.$lp.got
	: >"$GOT"
	if ! mail_wait "$lp" 1 2>"$W/$name.$lp.wait"; then
		fail "pf-$name-$lp-delivered" "$(cat "$W/$name.$lp.wait")"
		return 1
	fi
	pass "pf-$name-$lp-delivered"
	mail_body "$lp" >"$GOT"
	for h in "$@"; do
		expect_eq "pf-$name-$lp-one-$h" "$(hdr_count "$GOT" "$h")" 1
	done
	hdr_strip "$GOT" "$@" >"$GOT.cmp"
	same "pf-$name-$lp-content" "$GOT.cmp" "$want"
}

# none NAME LOCALPART...: after Postfix's queue has drained, no LOCALPART got mail.
none() {
	local name=$1 lp; shift
	mail_settle
	for lp in "$@"; do
		expect_eq "pf-$name-$lp-nothing-delivered" "$(mail_count "$lp")" 0
	done
}

# total: number of messages in all Maildirs.
total() {
	find "$PF_MAIL" -mindepth 3 -maxdepth 3 -type f -path '*/new/*' | wc -l
}

# no_secret NAME USER PASSWORD: the transcript $TR shows neither the password
# nor its base64 forms, every client line of the AUTH exchange is redacted,
# and there is an AUTH line at all.
no_secret() {
	local name=$1 u=$2 pw=$3 s
	[ -r "$TR" ] || { fail "pf-$name-no-secret" "no transcript $TR"; return; }
	expect_grep "pf-$name-auth-shown" '^-> AUTH [A-Z0-9-]+' "$TR"
	for s in "$pw" "$(printf '%s' "$pw" | base64 -w0)" \
		"$(printf '\0%s\0%s' "$u" "$pw" | base64 -w0)" \
		"$(printf '%s\0%s\0%s' "$u" "$u" "$pw" | base64 -w0)"; do
		if grep -qF -- "$s" "$TR"; then
			fail "pf-$name-no-secret" "stderr holds the password or its base64 form [$s]"
			return
		fi
	done
	pass "pf-$name-no-secret"
	# From "-> AUTH" to the server's final reply to it, every client line is
	# "AUTH MECH", "AUTH MECH <redacted>", "<redacted>" or empty.
	if awk '
		/^-> AUTH / { a = 1
			if ($0 !~ /^-> AUTH [A-Z0-9-]+( <redacted>)?$/) bad = 1; next }
		a && /^<- [0-9][0-9][0-9] / && !/^<- 334/ { a = 0; next }
		a && /^->/ && $0 !~ /^-> ?(<redacted>)?$/ { bad = 1 }
		END { exit bad }' "$TR"; then
		pass "pf-$name-auth-redacted"
	else
		fail "pf-$name-auth-redacted" "unredacted AUTH line: $(grep -A6 '^-> AUTH' "$TR" | grep '^->' | head -4)"
	fi
}

# expect_fixed NAME STRING FILE: FILE holds STRING (not a pattern).
expect_fixed() {
	if grep -qF -- "$2" "$3"; then pass "$1"; else
		fail "$1" "no [$2] in $3: $(head -c 600 "$3")"; fi
}

# auth_mech: the mechanism named on the transcript's AUTH line.
auth_mech() {
	sed -n 's/^-> AUTH \([A-Z0-9-]*\).*/\1/p' "$TR" | head -1
}


# --- messages ----------------------------------------------------------------

M=$W/msg
mkdir -p "$M"
printf 'From: Sender <sender@example.test>\nTo: plain1@example.test\nSubject: plain test\n\nHello over the plain port.\nSecond line.\n' >"$M/basic"
printf 'To: nofrom@example.test\nSubject: no From here\n\nbody\n' >"$M/nofrom"
printf 'From: sender@example.test\nTo: full@example.test\nDate: Mon, 02 Feb 2026 10:00:00 +0100\nMessage-ID: <full.1@example.test>\nSubject: complete header\n\nnothing to add\n' >"$M/full"
printf 'From: sender@example.test\nTo: someone@example.test\nDate: Mon, 02 Feb 2026 10:00:00 +0100\nMessage-ID: <auth.1@example.test>\nSubject: auth test\n\nauthenticated submission\n' >"$M/auth"

# --- plain port, tls off, no auth ----------------------------------------------

mail_clear
mkcfg plain "$PF_PLAIN"
ob plain-basic 0 -i plain1@example.test <"$M/basic"
delivered plain-basic plain1 "$M/basic" Date Message-ID
expect_eq pf-plain-basic-one-from "$(hdr_count "$GOT" From)" 1
expect_eq pf-plain-basic-one-to "$(hdr_count "$GOT" To)" 1
expect_eq pf-plain-basic-one-subject "$(hdr_count "$GOT" Subject)" 1
if hdr_get "$GOT" Date | grep -Eq '^Date: ((Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?[0-9]{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}(:[0-9]{2})? [+-][0-9]{4}$'; then
	pass pf-plain-basic-date-syntax
else fail pf-plain-basic-date-syntax "[$(hdr_get "$GOT" Date)]"; fi
if hdr_get "$GOT" Message-ID | grep -Eiq '^Message-ID: <[^<>@ ]+@[^<>@ ]+>$'; then
	pass pf-plain-basic-msgid-syntax
else fail pf-plain-basic-msgid-syntax "[$(hdr_get "$GOT" Message-ID)]"; fi

# the same over -v: EHLO, no STARTTLS, no AUTH; BDAT since Postfix offers CHUNKING
ob plain-v 0 -v -i plain2@example.test <"$M/basic"
expect_grep pf-plain-v-ehlo '^-> EHLO ' "$TR"
expect_nogrep pf-plain-v-no-starttls '^-> STARTTLS' "$TR"
expect_nogrep pf-plain-v-no-auth '^-> AUTH' "$TR"
expect_grep pf-plain-v-size '^-> MAIL FROM:<sender@example.test> .*SIZE=[0-9]+' "$TR"
expect_grep pf-plain-v-bdat '^-> BDAT [0-9]+ LAST' "$TR"
delivered plain-v plain2 "$M/basic" Date Message-ID

# From added when missing (-F names it, the address is the envelope sender)
ob plain-nofrom 0 -i -F 'Test Sender' nofrom@example.test <"$M/nofrom"
delivered plain-nofrom nofrom "$M/nofrom" Date Message-ID From
hdr_get "$GOT" From >"$W/nofrom.from"
expect_grep pf-plain-nofrom-from-name '^From: .*Test Sender' "$W/nofrom.from"
expect_grep pf-plain-nofrom-from-addr '^From: .*sender@example\.test' "$W/nofrom.from"

# nothing added when Date, Message-ID and From are there
ob plain-full 0 -i full@example.test <"$M/full"
delivered plain-full full "$M/full"

# null sender: MAIL FROM:<>, and Postfix logs from=<> for the queue id it gave
ob plain-nullsender 0 -v -i -f '<>' nullsender@example.test <"$M/full"
delivered plain-nullsender nullsender "$M/full"
expect_grep pf-plain-nullsender-mail-from '^-> MAIL FROM:<>( |$)' "$TR"
qid=$(sed -n 's/^<- 250 .*queued as \([0-9A-Za-z]*\).*/\1/p' "$TR" | tail -1)
expect_grep pf-plain-nullsender-postfix-from "^.*: ${qid:-NOQID}: from=<>," "$PF_LOG"

# --- STARTTLS + AUTH on the submission port ----------------------------------

# auth_case NAME USER PASSWORD MECHLINE WANTMECH: submit $M/auth to NAME@ over
# STARTTLS, authenticating with MECHLINE ("" = none given); check delivery,
# the mechanism used and the transcript.
auth_case() {
	local name=$1 u=$2 pw=$3 mech=$4 want=$5 lines=("user $2" "password $3")
	[ -n "$mech" ] && lines+=("$mech")
	mkcfg "$name" "$PF_SUBMIT" "${SUBMIT[@]}" "${lines[@]}"
	ob "$name" 0 -v -i "$name@example.test" <"$M/auth"
	delivered "$name" "$name" "$M/auth"
	expect_eq "pf-$name-mechanism" "$(auth_mech)" "$want"
	no_secret "$name" "$u" "$pw"
}
mail_clear
auth_case auth-plain alice "$ALICE_PW" "auth plain" PLAIN
auth_case auth-login alice "$ALICE_PW" "auth login" LOGIN
auth_case auth-cram alice "$ALICE_PW" "auth cram-md5" CRAM-MD5
auth_case auth-scram alice "$ALICE_PW" "auth scram-sha-256" SCRAM-SHA-256
# default (auth on / user set): the strongest mechanism Postfix offers
auth_case auth-on alice "$ALICE_PW" "auth on" SCRAM-SHA-256
echo "     (auth on chose $(auth_mech); Postfix offers: $(sed -n 's/^<- 250[- ]AUTH //p' "$TR" | head -1))"
auth_case auth-default alice "$ALICE_PW" "" SCRAM-SHA-256
# bob's password is UTF-8 with spaces
auth_case bob-plain bob "$BOB_PW" "auth plain" PLAIN
auth_case bob-login bob "$BOB_PW" "auth login" LOGIN
auth_case bob-cram bob "$BOB_PW" "auth cram-md5" CRAM-MD5
auth_case bob-scram bob "$BOB_PW" "auth scram-sha-256" SCRAM-SHA-256

# the transcript of a STARTTLS session: EHLO, STARTTLS, EHLO again, then AUTH
TR=$W/auth-plain.err
expect_grep pf-v-ehlo '^-> EHLO ' "$TR"
expect_grep pf-v-starttls '^-> STARTTLS$' "$TR"
expect_grep pf-v-auth-plain-redacted '^-> AUTH PLAIN <redacted>$' "$TR"
order=$(grep -nE '^-> (EHLO|STARTTLS|AUTH|MAIL)' "$TR" | sed 's/^[0-9]*:-> \([A-Z]*\).*/\1/' | tr '\n' ' ')
expect_eq pf-v-order "$order" "EHLO STARTTLS EHLO AUTH MAIL "

# --- implicit TLS ------------------------------------------------------------

mail_clear
mkcfg smtps "$PF_SMTPS" "${SMTPS[@]}" "${ALICE[@]}"
ob smtps 0 -v -i smtps@example.test <"$M/auth"
delivered smtps smtps "$M/auth"
expect_nogrep pf-smtps-no-starttls '^-> STARTTLS' "$TR"
expect_grep pf-smtps-auth '^-> AUTH ' "$TR"
no_secret smtps alice "$ALICE_PW"

# --- tls_fingerprint pins the certificate instead of the CA/name check -------

mail_clear
fp() { openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/.*=//'; }
mkcfg pin-ok "$PF_WRONGNAME" "tls starttls" "tls_fingerprint $(fp "$PF_DIR/pki/wrong.pem")" "${ALICE[@]}"
ob pin-ok 0 -v -i pin-ok@example.test <"$M/auth"
delivered pin-ok pin-ok "$M/auth"
mkcfg pin-bad "$PF_WRONGNAME" "tls starttls" "tls_fingerprint $(fp "$PF_DIR/pki/server.pem" | tr -d :)" "${ALICE[@]}"
ob pin-bad 75 -v -i pin-bad@example.test <"$M/auth"
none pin-bad pin-bad
expect_nogrep pf-pin-bad-no-auth '^-> (AUTH|MAIL)' "$TR"

# --- DSN: -N/-R/-V reach Postfix, which reports the delivery to the sender ----

mkcfg dsn "$PF_PLAIN"
ob dsn 0 -v -i -f dsn-sender@example.test -N success,failure -R hdrs -V outbox-envid-42 dsn@example.test <"$M/auth"
delivered dsn dsn "$M/auth"
expect_grep pf-dsn-mail-params '^-> MAIL FROM:<dsn-sender@example.test> .*RET=HDRS.*ENVID=outbox-envid-42|^-> MAIL FROM:<dsn-sender@example.test> .*ENVID=outbox-envid-42.*RET=HDRS' "$TR"
expect_grep pf-dsn-notify '^-> RCPT TO:<dsn@example.test> .*NOTIFY=SUCCESS,FAILURE' "$TR"
if mail_wait dsn-sender 1 2>/dev/null; then
	expect_grep pf-dsn-report-envid '^Original-Envelope-Id: outbox-envid-42' "$(mail_file dsn-sender)"
	# Postfix says "relayed" for deliveries by pipe(8), "delivered" for local ones
	expect_grep pf-dsn-report-success '^Action: (delivered|relayed)' "$(mail_file dsn-sender)"
	expect_grep pf-dsn-report-status '^Status: 2\.' "$(mail_file dsn-sender)"
else
	fail pf-dsn-report "no delivery report for dsn-sender"
fi

# --- content fidelity (plain port unless said) ------------------------------

mail_clear
mkcfg content "$PF_PLAIN"

# leading dots, a lone "." and ".." with -i
printf 'From: sender@example.test\nTo: dots@example.test\nSubject: dots\n\n.leading dot\n..two dots\n.\n..\n. space\nlast\n' >"$M/dots"
ob dots 0 -i dots@example.test <"$M/dots"
delivered dots dots "$M/dots" Date Message-ID
# the same over STARTTLS + AUTH
mkcfg content-tls "$PF_SUBMIT" "${SUBMIT[@]}" "${ALICE[@]}"
ob dots-tls 0 -oi dots-tls@example.test <"$M/dots"
delivered dots-tls dots-tls "$M/dots" Date Message-ID
# and with DATA (no CHUNKING offered), where the dots must be stuffed
mkcfg content-data "$PF_NOCHUNK"
ob dots-data 0 -v -i dots-data@example.test <"$M/dots"
delivered dots-data dots-data "$M/dots" Date Message-ID
expect_grep pf-dots-data-uses-data '^-> DATA$' "$TR"
expect_nogrep pf-dots-data-no-bdat '^-> BDAT' "$TR"
mkcfg content "$PF_PLAIN"

# 8-bit UTF-8 (body and a raw 8-bit Subject): BODY=8BITMIME, bytes unchanged
printf 'From: sender@example.test\nTo: utf8@example.test\nSubject: Grüße aus Köln\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGrüße, ça va? 日本語のテキスト\nÆØÅ æøå €\n' >"$M/utf8"
ob utf8 0 -v -i utf8@example.test <"$M/utf8"
delivered utf8 utf8 "$M/utf8" Date Message-ID
expect_grep pf-utf8-8bitmime '^-> MAIL FROM:<sender@example.test> .*BODY=8BITMIME' "$TR"

# 1000 lines (a few of them start with a dot)
{
	printf 'From: sender@example.test\nTo: long@example.test\nSubject: 1000 lines\n\n'
	for i in $(seq 1 996); do
		if [ $((i % 100)) -eq 0 ]; then printf '.line %04d starts with a dot\n' "$i"
		else printf 'line %04d the quick brown fox jumps over the lazy dog\n' "$i"; fi
	done
} >"$M/long"
expect_eq pf-long-is-1000-lines "$(wc -l <"$M/long")" 1000
ob long 0 -i long@example.test <"$M/long"
delivered long long "$M/long" Date Message-ID
mkcfg content-data "$PF_NOCHUNK"
ob long-data 0 -i long-data@example.test <"$M/long"
delivered long-data long-data "$M/long" Date Message-ID
mkcfg content "$PF_PLAIN"

# header block only: no empty line, no body
printf 'From: sender@example.test\nTo: hdronly@example.test\nSubject: no body at all\n' >"$M/hdronly"
ob hdronly 0 -i hdronly@example.test <"$M/hdronly"
delivered hdronly hdronly "$M/hdronly" Date Message-ID
# header block and the empty line, no body
printf 'From: sender@example.test\nTo: emptybody@example.test\nSubject: empty body\n\n' >"$M/emptybody"
ob emptybody 0 -i emptybody@example.test <"$M/emptybody"
delivered emptybody emptybody "$M/emptybody" Date Message-ID

# CRLF input (PHP mail() style) is delivered like the same LF input
printf 'From: sender@example.test\nTo: crlf@example.test\nSubject: line endings\n\nfirst\n\nthird\n.dot\n' >"$M/lf"
sed 's/$/\r/' "$M/lf" >"$M/crlf"
ob crlf-lf 0 -i crlf-lf@example.test <"$M/lf"
delivered crlf-lf crlf-lf "$M/lf" Date Message-ID
ob crlf 0 -i crlf@example.test <"$M/crlf"
delivered crlf crlf "$M/lf" Date Message-ID

# missing final newline: one is added
printf 'From: sender@example.test\nTo: nonl@example.test\nSubject: no final newline\n\nthe end' >"$M/nonl"
{ cat "$M/nonl"; printf '\n'; } >"$M/nonl.want"
ob nonl 0 -i nonl@example.test <"$M/nonl"
delivered nonl nonl "$M/nonl.want" Date Message-ID

# an mbox "From " first line is dropped
printf 'From: sender@example.test\nTo: mbox@example.test\nSubject: mbox\n\nFrom here on a body line.\n' >"$M/mbox.want"
{ printf 'From sender@example.test  Sat Nov 21 10:00:00 2026\n'; cat "$M/mbox.want"; } >"$M/mbox"
ob mbox 0 -i mbox@example.test <"$M/mbox"
delivered mbox mbox "$M/mbox.want" Date Message-ID

# without -i a lone "." ends the message; the rest is not delivered
printf 'From: sender@example.test\nTo: dotend@example.test\nSubject: dot ends it\n\nbefore\n.\nafter the dot\n' >"$M/dotend"
printf 'From: sender@example.test\nTo: dotend@example.test\nSubject: dot ends it\n\nbefore\n' >"$M/dotend.want"
ob dotend 0 dotend@example.test <"$M/dotend"
delivered dotend dotend "$M/dotend.want" Date Message-ID
mkcfg content-data "$PF_NOCHUNK"
ob dotend-data 0 dotend-data@example.test <"$M/dotend"
delivered dotend-data dotend-data "$M/dotend.want" Date Message-ID
mkcfg content "$PF_PLAIN"

# -t: Bcc (folded over two lines) removed, every Bcc recipient still gets it,
# argv recipients are added
mail_clear
printf 'From: sender@example.test\nTo: bcc-to@example.test\nCc: bcc-cc@example.test\nBcc: bcc-b1@example.test,\n  Hidden Two <bcc-b2@example.test>\nSubject: bcc\n\nwho sees whom\n' >"$M/bcc"
grep -vE '^(Bcc:|  Hidden)' "$M/bcc" >"$M/bcc.want"
ob bcc 0 -v -t -i bcc-argv@example.test <"$M/bcc"
for lp in bcc-to bcc-cc bcc-b1 bcc-b2 bcc-argv; do
	delivered bcc "$lp" "$M/bcc.want" Date Message-ID
	expect_eq "pf-bcc-$lp-no-bcc" "$(hdr_count "$GOT" Bcc)" 0
done
mail_settle
expect_eq pf-bcc-five-copies "$(total)" 5

# -t: display names, quoted strings, comments and groups (RFC 5322 A.1.2, A.1.3, A.5)
mail_clear
cat >"$M/addr" <<'EOF'
From: Pete(A nice \) chap) <pete(his account)@example.test(his host)>
To: "Mary Smith: Personal Account" <mary@example.test>, Undisclosed recipients:;,
 John Doe <jdoe@example.test>, pete(his account)@example.test(his host)
Cc: A Group(Some people):Chris Jones <chris@(Chris's host.)example.test>,
    joe@example.test, "Smith, Jo" <jo.smith@example.test> (my dear friend); (the end of the group)
Bcc: undisclosed-recipients:;
Subject: RFC 5322 appendix A

addresses
EOF
grep -v '^Bcc:' "$M/addr" >"$M/addr.want"
ob addr 0 -v -t -i <"$M/addr"
for lp in mary jdoe chris joe jo.smith pete; do
	delivered addr "$lp" "$M/addr.want" Date Message-ID
done
mail_settle
expect_eq pf-addr-six-copies "$(total)" 6
expect_eq pf-addr-six-rcpts "$(grep -c '^-> RCPT TO:' "$TR")" 6

# duplicates: argv and header repeat one address; one RCPT, one copy
mail_clear
printf 'From: sender@example.test\nTo: dup1@example.test, Dup One <dup1@example.test>\nCc: dup1@example.test\nSubject: dup\n\nonce\n' >"$M/dup"
ob dup 0 -v -t -i dup1@example.test dup1@example.test <"$M/dup"
delivered dup dup1 "$M/dup" Date Message-ID
expect_eq pf-dup-one-rcpt "$(grep -c '^-> RCPT TO:<dup1@example.test>' "$TR")" 1

# --- failures: exit code, and nothing delivered --------------------------------

mail_clear
printf 'From: sender@example.test\nTo: fail@example.test\nSubject: must not arrive\n\nno\n' >"$M/fail"

mkcfg badpw "$PF_SUBMIT" "${SUBMIT[@]}" "user alice" "password wrong horse"
ob badpw 75 -v -i badpw@example.test <"$M/fail"
none badpw badpw
expect_grep pf-badpw-535 '^<- 535' "$TR"
expect_nogrep pf-badpw-no-mail '^-> MAIL' "$TR"
expect_grep pf-badpw-says-why '^outbox: ' "$TR"
no_secret badpw alice "wrong horse"

mkcfg unknownca "$PF_SUBMIT" "tls starttls" "tls_ca_file $PF_OTHER_CA" "${ALICE[@]}"
ob unknownca 75 -v -i unknownca@example.test <"$M/fail"
none unknownca unknownca
expect_nogrep pf-unknownca-no-auth '^-> (AUTH|MAIL)' "$TR"

mkcfg wrongname "$PF_WRONGNAME" "tls starttls" "tls_ca_file $PF_CA" "${ALICE[@]}"
ob wrongname 75 -v -i wrongname@example.test <"$M/fail"
none wrongname wrongname
expect_nogrep pf-wrongname-no-auth '^-> (AUTH|MAIL)' "$TR"

# the same by host name: localhost is in the good certificate, not in the wrong one
mkcfg wrongname-dns "$PF_WRONGNAME" "tls starttls" "tls_ca_file $PF_CA" "${ALICE[@]}"
sed -i "s/^host .*/host localhost/" "$CFG"
ob wrongname-dns 75 -v -i wrongname-dns@example.test <"$M/fail"
none wrongname-dns wrongname-dns
expect_nogrep pf-wrongname-dns-no-auth '^-> (AUTH|MAIL)' "$TR"
mkcfg rightname-dns "$PF_SUBMIT" "${SUBMIT[@]}" "${ALICE[@]}"
sed -i "s/^host .*/host localhost/" "$CFG"
ob rightname-dns 0 -i rightname-dns@example.test <"$M/auth"
delivered rightname-dns rightname-dns "$M/auth"

mkcfg nostarttls "$PF_PLAIN" "tls starttls" "tls_ca_file $PF_CA" "${ALICE[@]}"
ob nostarttls 75 -v -i nostarttls@example.test <"$M/fail"
none nostarttls nostarttls
expect_grep pf-nostarttls-ehlo '^-> EHLO' "$TR"
expect_nogrep pf-nostarttls-no-auth-mail '^-> (AUTH|MAIL|RCPT|DATA|BDAT)' "$TR"

mkcfg refused "$(free_port)" "tls off"
ob refused 75 -i refused@example.test <"$M/fail"
none refused refused
expect_grep pf-refused-says-why '^outbox: ' "$TR"

# With the queue on, the same failure waits; the log line names its id.
mkcfg refusedq "$(free_port)" "tls off" "queue on" \
	"queue_dir $W/refusedq.queue" "log $W/refusedq.log"
ob refusedq 0 -i refusedq@example.test <"$M/fail"
# Safely queued, and stderr is not a terminal: nothing said (mailq has it).
expect_nogrep pf-refusedq-quiet . "$TR"
qid=$(ls "$W/refusedq.queue" | sed -n 's/^\([0-9A-F]\{12\}\)\.env$/\1/p')
expect_grep pf-refusedq-log-id "outbox/smtp\[[0-9]+\]: ${qid:-NOID}: to=<refusedq@example\.test>, relay=none, .*status=deferred \(.*Connection refused\)" "$W/refusedq.log"

mail_clear
mkcfg rcpt "$PF_PLAIN"
ob rcpt 67 -i reject1@example.test rcptok@example.test <"$M/fail"
delivered rcpt rcptok "$M/fail" Date Message-ID
expect_grep pf-rcpt-reply-on-stderr '550.*reject1@example\.test.*User unknown|reject1@example\.test.*550.*User unknown' "$TR"
expect_eq pf-rcpt-one-copy "$(total)" 1

mail_clear
mkcfg perm "$PF_PLAIN" "${ALICE[@]}" "auth off"
chmod 644 "$CFG"
ob perm 78 -i perm@example.test <"$M/fail"
none perm perm
expect_fixed pf-perm-names-file "$CFG" "$TR"

mkcfg unknownkey "$PF_PLAIN" "bogus_key yes"
n=$(grep -n '^bogus_key' "$CFG" | cut -d: -f1)
ob unknownkey 78 -i unknownkey@example.test <"$M/fail"
none unknownkey unknownkey
expect_fixed pf-unknownkey-file-line "$CFG:$n" "$TR"

mkcfg norcpt "$PF_PLAIN"
printf 'From: sender@example.test\nSubject: nobody\n\nto nobody\n' >"$M/norcpt"
ob norcpt 65 -i <"$M/norcpt"
ob norcpt-t 65 -t -i <"$M/norcpt"
mail_settle
expect_eq pf-norcpt-nothing-delivered "$(total)" 0

ob badopt 64 -j -i badopt@example.test <"$M/fail"
ob badlongopt 64 --no-such-option -i badopt@example.test <"$M/fail"
none badopt badopt
