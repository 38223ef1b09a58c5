#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# outbox --check, one case per step that can fail, against the fault server
# (tests/faultsmtp.py) and the loopback Postfix (tests/postfix.sh): each
# case checks the exit code, the step's FAILED line, the steps before it,
# and the fix line, which --check chooses by the failure's stage and class.
# Run via tests/run.sh, or alone (the Postfix cases need tests/postfix.sh):
#   export TESTROOT=$(mktemp -d) RESULTS=$TESTROOT/results OUTBOX=$PWD/outbox
#   bash tests/t_check.sh
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
: "${TESTROOT:=$(mktemp -d /tmp/outbox-check.XXXXXX)}"
FS=$TESTROOT/check
rm -rf "$FS"; mkdir -p "$FS"
SRV_PID=
trap 'fault_stop' EXIT
MKCFG_QUEUE=off OB_PREFIX=check- OB_DIR=$FS OB_TIMEOUT=20 OB_AFTER=fault_stop

if ! fault_certs; then
	fail check-certs "openssl could not make the test CA/certificate"
fi
FP=$(openssl x509 -in "$FS/pki/srv.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g')
PF=
[ -f "$TESTROOT/postfix/env" ] && . "$TESTROOT/postfix/env" && PF=1

# run NAME WANT [ARGS...]: outbox --check -f a@example.test ARGS; stdout
# in $OUT.
run() {
	local name=$1 want=$2; shift 2
	ob "$name" "$want" --check -f a@example.test "$@" </dev/null
}

# fix NAME REGEX: the fix line matches REGEX.
fix() { expect_grep "check-$1-fix" "^fix +.*$2" "$OUT"; }

# failed NAME STEP [REGEX]: STEP's line says FAILED (and matches REGEX).
failed() { expect_grep "check-$1-failed" "^$2 +FAILED: .*${3:-}" "$OUT"; }

# passed NAME STEP...: each STEP has an ok line.
passed() {
	local name=$1 s; shift
	for s in "$@"; do expect_grep "check-$name-$s-ok" "^$s +ok" "$OUT"; done
}

# Nothing listens.
mkcfg refused "$(free_port)"
run refused 75
failed refused connect 'Connection refused'
passed refused dns
fix refused 'nothing answers there: check host and port'

# A CA nobody trusts: the certificate and its fingerprint are shown.
fault_start unknown-ca --once --max-time 30 "${TLSARGS[@]}"
mkcfg unknown-ca "$PORT" "tls starttls"
run unknown-ca 75
failed unknown-ca tls 'certificate verification failed'
passed unknown-ca connect greeting starttls
expect_grep check-unknown-ca-subject '^ +subject CN ?= ?localhost' "$OUT"
expect_grep check-unknown-ca-fingerprint "^ +sha256 +$FP\$" "$OUT"
expect_grep check-unknown-ca-verify '^ +verify +FAILED: unable to get local issuer' "$OUT"
fix unknown-ca "CA is not trusted: set tls_ca_file.*tls_fingerprint"
# Following the advice: the fingerprint printed is the one to pin.
fault_start pinned --once --max-time 30 "${TLSARGS[@]}"
mkcfg pinned "$PORT" "tls starttls" "tls_fingerprint $FP"
run pinned 0
expect_grep check-pinned-verify '^ +verify +ok \(pinned' "$OUT"

# STARTTLS not offered.
fault_start no-starttls --once --max-time 30 --scenario no-starttls "${TLSARGS[@]}"
mkcfg no-starttls "$PORT" "tls starttls" "tls_ca_file $CA"
run no-starttls 75
failed no-starttls starttls 'does not offer STARTTLS'
expect_grep check-no-starttls-ehlo '^ehlo +ok: ' "$OUT"
fix no-starttls 'does not offer STARTTLS: use port 465 with tls implicit'

# EHLO 502 where STARTTLS is needed (no HELO fallback then).
fault_start ehlo-502 --once --max-time 30 --scenario ehlo-5xx "${TLSARGS[@]}"
mkcfg ehlo-502 "$PORT" "tls starttls" "tls_ca_file $CA"
run ehlo-502 75
failed ehlo-502 ehlo '502'
passed ehlo-502 connect greeting
fix ehlo-502 'does not speak ESMTP'
expect_nogrep check-ehlo-502-no-password-advice 'password' "$OUT"

# STARTTLS 554.
fault_start starttls-554 --once --max-time 30 --reply 'STARTTLS=554 5.7.0 faultsmtp: no TLS for you' "${TLSARGS[@]}"
mkcfg starttls-554 "$PORT" "tls starttls" "tls_ca_file $CA"
run starttls-554 75
failed starttls-554 starttls '554 5.7.0'
fix starttls-554 'refuses STARTTLS'
expect_nogrep check-starttls-554-no-password-advice 'password' "$OUT"

# The sender refused; a server that offers no AUTH and a SIZE limit.
fault_start mail-550 --once --max-time 30 --scenario mail-550 --ext PIPELINING,SIZE=1000
mkcfg mail-550 "$PORT"
run mail-550 69
failed mail-550 sender '550 5.7.1'
expect_grep check-mail-550-size '^ehlo +ok: PIPELINING SIZE 1000 AUTH none offered$' "$OUT"
expect_grep check-mail-550-auth '^auth +not used \(no user configured\)' "$OUT"
fix mail-550 'set from to an address this account may send as'
expect_nogrep check-mail-550-no-rcpt '^C: RCPT' "$LOG"

# A healthy fault server: the test RCPT goes to the sender, then RSET.
fault_start fault-ok --once --max-time 30 "${TLSARGS[@]}"
mkcfg fault-ok "$PORT" "tls starttls" "tls_ca_file $CA" "user alice" "password secret"
run fault-ok 0
expect_grep check-fault-ok-rcpt '^C: RCPT TO:<a@example.test>$' "$LOG"
expect_grep check-fault-ok-rset '^C: RSET$' "$LOG"
expect_nogrep check-fault-ok-nothing-sent '^C: (DATA|BDAT)|^D: ' "$LOG"
expect_grep check-fault-ok-ehlo '^ehlo +ok: PIPELINING CHUNKING 8BITMIME DSN ENHANCEDSTATUSCODES SIZE 10240000 AUTH PLAIN LOGIN$' "$OUT"

# An address given: the test RCPT goes there.
fault_start address --once --max-time 30
mkcfg address "$PORT"
run address 0 b@example.test
expect_grep check-address-rcpt '^C: RCPT TO:<b@example.test>$' "$LOG"

# The first host fails, the second answers: the check is of the second.
fault_start twohost --once --max-time 30
mkcfg twohost "$PORT" "host ::1 127.0.0.1"
run twohost 0
passed twohost connect
expect_grep check-twohost-verdict '^verdict +ok' "$OUT"

# A client certificate that is no PEM: the TLS setup fails before any
# connection, and the fix is the files' (a certificate that fails to
# verify is the server's, above: its fix names the CA or the host).
printf 'not a certificate\n' >"$FS/bad-cert.pem"
chmod 600 "$FS/bad-cert.pem"
mkcfg bad-cert "$(free_port)" "tls starttls" "tls_cert_file $FS/bad-cert.pem" "tls_key_file $FS/bad-cert.pem"
run bad-cert 75
failed bad-cert tls
expect_nogrep check-bad-cert-no-connect '^connect ' "$OUT"
fix bad-cert 'each must name a readable PEM file'

# A password_command that hangs: killed with what it started when the
# session's deadline comes, the auth step says so, and the fix is the
# secret's.
fault_start pwcmd-hang --once --max-time 30 "${TLSARGS[@]}"
mkcfg pwcmd-hang "$PORT" "tls starttls" "tls_ca_file $CA" "user alice" \
	"session_timeout 3" "password_command echo \$\$ >$FS/pwcmd.pid; exec sleep 600"
run pwcmd-hang 75
failed pwcmd-hang auth 'password_command did not finish within the session.s 3 s \(session_timeout\); killed it'
passed pwcmd-hang connect greeting starttls tls ehlo
fix pwcmd-hang 'the secret could not be had.*run password_command by hand'
pid=$(cat "$FS/pwcmd.pid" 2>/dev/null)
state=$(awk '{print $3}' "/proc/${pid:-0}/stat" 2>/dev/null)
check check-pwcmd-hang-killed test -n "$pid" -a \( -z "$state" -o "$state" = Z \)
# Root's --check with -C: no account is the system's, no secrets line.
expect_nogrep check-no-secrets-line-for-C '^secrets ' "$OUT"

if [ -z "$PF" ]; then
	skip check-postfix "no loopback Postfix; its --check cases do not run"
	exit 0
fi

# pfcfg NAME LINE...: an account on the test Postfix.
pfcfg() { local name=$1; shift; mkcfg "$name" "$PF_SUBMIT" "host $PF_HOST" "timeout 10" "$@"; }

# A certificate for another name.
pfcfg wrong-name "port $PF_WRONGNAME" "tls starttls" "tls_ca_file $PF_CA" "user alice" "password correct horse"
run wrong-name 75
failed wrong-name tls 'certificate verification failed'
expect_grep check-wrong-name-fingerprint '^ +sha256 +[0-9A-F]{64}$' "$OUT"
fix wrong-name 'the certificate is for another name: set host'

# AUTH 535.
pfcfg auth-535 "tls starttls" "tls_ca_file $PF_CA" "user alice" "password wrong horse"
run auth-535 75
failed auth-535 auth '535'
passed auth-535 connect greeting starttls tls ehlo
fix auth-535 'check user and the password'

# No user on an AUTH-only port: MAIL passes, the test RCPT does not.
pfcfg no-user "tls starttls" "tls_ca_file $PF_CA"
run no-user 67
passed no-user sender
failed no-user recipient '(554|530|550)'
expect_grep check-no-user-verdict '^verdict +FAILED' "$OUT"
fix no-user 'set user and password_file'

# All well: every step ok, and nothing delivered.
mail_clear
pfcfg ok "tls starttls" "tls_ca_file $PF_CA" "user alice" "password correct horse"
ob ok 0 --check -f alice@example.test </dev/null
passed ok dns connect greeting starttls tls ehlo auth sender recipient
expect_grep check-ok-size '^ehlo +ok: .*SIZE 10240000 ' "$OUT"
expect_grep check-ok-verify '^ +verify +ok \(chain and host name\)' "$OUT"
expect_grep check-ok-verdict '^verdict +ok: mail from <alice@example.test> to <alice@example.test> will go through' "$OUT"
mail_settle
expect_eq check-ok-nothing-delivered "$(mail_count alice)" 0
