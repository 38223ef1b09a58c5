#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# TLS: session resumption across processes (the cache file beside the
# queue: its key, its modes, hostile contents), the trust store looked up in
# a hashed directory, and TLS 1.2 suites without forward secrecy refused.
# Against tests/faultsmtp.py on 127.0.0.1; one server serves many sessions
# (its ticket keys live as long as it does), so a second run can resume.
# Needs: python3, openssl. Run via tests/run.sh, or alone:
#   export TESTROOT=$(mktemp -d) RESULTS=$TESTROOT/results OUTBOX=$PWD/outbox
#   bash tests/t_tls.sh
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
: "${TESTROOT:=$(mktemp -d /tmp/outbox-tls.XXXXXX)}"
FS=$TESTROOT/tls
rm -rf "$FS"; mkdir -p "$FS"
SRV_PID=
trap 'fault_stop' EXIT
fault_certs
MSG=$FS/msg.txt
printf '%s\n' 'From: a@example.test' 'To: b@example.test' 'Subject: tls test' \
	'' 'Hello.' >"$MSG"

# mkcfg (lib.sh) NAME PORT [LINE...]: STARTTLS to the server on PORT; each
# call names its queue (queue_dir) so that runs share or keep apart their
# TLS session caches.
MKCFG_LINES=("tls starttls" "timeout 5")

# send NAME WANT [ENV...]: one message with -v through $CFG; $ERR is its
# stderr, $SESS the cache file it named, $KEY that file's key (hex).
send() {
	local name=$1 want=$2; shift 2
	expect_exit "$want" "tls-$name" env "$@" "$OUTBOX" -C "$CFG" -v -i \
		-f a@example.test b@example.test <"$MSG"
	cp "$ERR" "$FS/$name.stderr"
	SESS=$(sed -n 's/^\*\* TLS session cache \(.*\) (key .*/\1/p' "$ERR" | tail -1)
	KEY=$(sed -n 's/^\*\* TLS session cache .* (key \([0-9a-f]*\)).*/\1/p' "$ERR" | tail -1)
}

# rekey SRC DST KEY: DST gets SRC's session under the key KEY (hex), which
# the file holds after its magic. SRC must be a regular file (a FIFO left by
# a failed check would block the read).
rekey() {
	[ -f "$1" ] && [ ! -L "$1" ] || { echo "rekey: $1 is not a regular file"; return 1; }
	python3 -c 'import sys
s, d, k = sys.argv[1:4]
b = open(s, "rb").read()
open(d, "wb").write(b[:21] + bytes.fromhex(k) + b[53:])' "$1" "$2" "$3"
}

resumed() { grep -q 'TLS session resumed' "$FS/$1.stderr"; }
full() { grep -q 'full TLS handshake' "$FS/$1.stderr"; }

# --- resumption across processes ------------------------------------------
# Its --max-time is only a safety net: the slowest run (valgrind, in a
# lane beside another file) must end well inside it.
fault_start a --max-time 600 --io-timeout 15 "${TLSARGS[@]}"
Q=$FS/q; mkdir -m 700 "$Q"
mkcfg a "$PORT" "queue_dir $Q" "tls_ca_file $CA"
send cold 0
check tls-cold-full full cold
check tls-cold-file test -f "$SESS"
expect_eq tls-file-name-short "${#SESS}" "$(( ${#Q} + 1 + 36 ))"
COLD=$SESS
expect_eq tls-file-mode "$(stat -c %a "$SESS")" 600
expect_eq tls-file-owner "$(stat -c %u "$SESS")" "$(id -u)"
send warm 0
check tls-warm-resumed resumed warm
expect_grep tls-warm-server-resumed '^T: established .* resumed$' "$LOG"
expect_eq tls-warm-same-file "$SESS" "$COLD"
expect_eq tls-no-litter "$(ls "$Q" | grep -c '^tmp\.')" 0

# Parallel runs write the same file: the last writer wins, whole.
pids=() prc=0
for i in 1 2 3 4; do
	"$OUTBOX" -C "$CFG" -i -f a@example.test b@example.test <"$MSG" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || prc=1; done
expect_eq tls-parallel-all-sent "$prc" 0
send after-parallel 0
check tls-parallel-then-resumed resumed after-parallel
expect_eq tls-parallel-no-litter "$(ls "$Q" | grep -c '^tmp\.')" 0

# Off by configuration: nothing read, nothing written.
Q2=$FS/q-off; mkdir -m 700 "$Q2"
mkcfg off "$PORT" "queue_dir $Q2" "tls_ca_file $CA" "tls_session_cache off"
send off1 0
send off2 0
check tls-off-full full off2
expect_eq tls-off-no-file "$(ls "$Q2" | grep -c '^tls-')" 0

# A user keeps at most 16 session files (tls.c's cache_evict): 18
# accounts, a file each; the oldest go, the newest stays and resumes.
Q3=$FS/q-cap; mkdir -m 700 "$Q3"
mkcfg cap "$PORT" "queue_dir $Q3" "tls_ca_file $CA"
for i in $(seq 18); do printf 'account c%s\n' "$i" >>"$CFG"; done
crc=0
for i in $(seq 18); do
	"$OUTBOX" -C "$CFG" -a "c$i" -i -f a@example.test b@example.test \
		<"$MSG" 2>>"$FS/cap.err" || crc=1
done
expect_eq tls-cap-all-sent "$crc" 0
expect_eq tls-cap-16-files "$(ls "$Q3" | grep -c '^tls-')" 16
expect_exit 0 tls-cap-newest-again "$OUTBOX" -C "$CFG" -a c18 -v -i \
	-f a@example.test b@example.test <"$MSG"
expect_grep tls-cap-newest-kept 'TLS session resumed' "$ERR"

# Another trust key (a copy of the CA under another name): its own file,
# a full handshake, and the first file left as it was.
cp "$CA" "$FS/ca-copy.pem"
cp "$COLD" "$FS/cold.saved"
mkcfg ca2 "$PORT" "queue_dir $Q" "tls_ca_file $FS/ca-copy.pem"
send ca2 0
check tls-other-ca-full full ca2
check tls-other-ca-own-file test "$SESS" != "$COLD"
check tls-other-ca-first-kept cmp -s "$COLD" "$FS/cold.saved"
CA2=$SESS

# A file holding another key's session, under this key's name: refused on
# its key (a full handshake), then replaced by a good one.
cp "$COLD" "$CA2"
send foreign-key 0
check tls-foreign-key-full full foreign-key
send foreign-key2 0
check tls-foreign-key-replaced resumed foreign-key2

# The CA file's contents are part of the key: the same file resumes, a
# changed one (a line added) costs a full handshake.
cp "$CA" "$FS/ca-grow.pem"
mkcfg grow "$PORT" "queue_dir $Q" "tls_ca_file $FS/ca-grow.pem"
send grow1 0
send grow2 0
check tls-ca-same-contents-resumed resumed grow2
echo "# changed" >>"$FS/ca-grow.pem"
send grow3 0
check tls-ca-changed-full full grow3
# A CA file without a certificate (parsed at the first full handshake).
printf 'not a certificate\n' >"$FS/ca-junk.pem"
mkcfg junk "$PORT" "queue_dir $Q" "tls_ca_file $FS/ca-junk.pem" "queue off"
send junk 75
expect_grep tls-ca-junk-unverified 'unable to get local issuer' "$FS/junk.stderr"
mkcfg junk "$PORT" "queue_dir $Q" "tls_ca_file $FS/nonexistent.pem" "queue off"
send ca-missing 75
expect_grep tls-ca-missing-named 'tls_ca_file .*nonexistent.pem: No such file' "$FS/ca-missing.stderr"

# Corrupt contents: a full handshake, delivered, the file rewritten.
mkcfg a "$PORT" "queue_dir $Q" "tls_ca_file $CA"
head -c 200 /dev/urandom >"$COLD"; chmod 600 "$COLD"
send garbage 0
check tls-garbage-full full garbage
send garbage2 0
check tls-garbage-rewritten resumed garbage2
python3 -c 'import sys; p = sys.argv[1]; b = open(p, "rb").read()
open(p, "wb").write(b[:len(b) // 2])' "$COLD"
send truncated 0
check tls-truncated-full full truncated
head -c 100000 /dev/zero >"$COLD"; chmod 600 "$COLD"
send oversized 0
check tls-oversized-full full oversized

# A verification lasts an hour through resumptions: a resumed session keeps
# the time of the full handshake; one verified 2 h ago is not offered.
since() { python3 -c 'import sys; print(open(sys.argv[1], "rb").read()[53:61].hex())' "$1"; }
send age1 0
S0=$(since "$COLD")
send age2 0
check tls-age-resumed resumed age2
expect_eq tls-resumed-keeps-verification-time "$(since "$COLD")" "$S0"
python3 -c 'import sys, time; p = sys.argv[1]; b = open(p, "rb").read()
open(p, "wb").write(b[:53] + (int(time.time()) - 7200).to_bytes(8, "big") + b[61:])' "$COLD"
send age3 0
expect_grep tls-old-verification-not-offered 'none to offer' "$FS/age3.stderr"
check tls-old-verification-full full age3
send age4 0
check tls-old-verification-renewed resumed age4

# Modes and links: a group-readable file, a symlink, a FIFO, a hard link
# are not read; the symlink's target is never written through.
send refill 0
chmod 640 "$COLD"
send mode640 0
check tls-mode-640-ignored full mode640
check tls-mode-rewritten-600 test "$(stat -c %a "$COLD")" = 600
send refill2 0
cp "$COLD" "$FS/target"; cp "$COLD" "$FS/target.saved"
rm -f "$COLD"; ln -s "$FS/target" "$COLD"
send symlink 0
check tls-symlink-ignored full symlink
check tls-symlink-replaced test ! -L "$COLD"
check tls-symlink-target-untouched cmp -s "$FS/target" "$FS/target.saved"
ln -f "$COLD" "$FS/hardlink"
send hardlink 0
check tls-hardlink-ignored full hardlink
rm -f "$FS/hardlink" "$COLD"; mkfifo -m 600 "$COLD"
send fifo 0
check tls-fifo-ignored full fifo
check tls-fifo-replaced test -f "$COLD"
if [ "$(id -u)" -eq 0 ]; then
	send refill3 0
	chown nobody "$COLD"
	send foreign-owner 0
	check tls-foreign-owner-ignored full foreign-owner
	expect_eq tls-foreign-owner-replaced "$(stat -c %u "$COLD")" 0
else
	skip tls-foreign-owner "needs root (chown)"
fi

# A session resumed by a server that no longer knows its ticket (another
# server process, other ticket keys): only the full handshake it costs.
send refill4 0
fault_stop
fault_start b --max-time 600 --io-timeout 15 "${TLSARGS[@]}"
mkcfg b "$PORT" "queue_dir $Q" "tls_ca_file $CA"
send b-first 0
check tls-new-port-full full b-first
rekey "$COLD" "$SESS" "$KEY"
send refused-ticket 0
expect_grep tls-refused-ticket-offered 'session cache .*: offered' "$FS/refused-ticket.stderr"
check tls-refused-ticket-full full refused-ticket
send refused-ticket2 0
check tls-refused-ticket-replaced resumed refused-ticket2

# A pin: resumed with the right one; a wrong one fails, even when a
# session the right pin verified sits under the wrong pin's key.
PIN=$(openssl x509 -in "$FS/pki/srv.pem" -outform der | openssl dgst -sha256 -r | cut -c1-64)
BAD=$(printf '%064d' 0)
mkcfg pin "$PORT" "queue_dir $Q" "tls_fingerprint $PIN"
send pin1 0
send pin2 0
check tls-pin-resumed resumed pin2
GOOD=$SESS
mkcfg pinbad "$PORT" "queue_dir $Q" "tls_fingerprint $BAD" "queue off"
send pinbad1 75
expect_grep tls-pin-mismatch-fails 'does not match tls_fingerprint' "$FS/pinbad1.stderr"
mkcfg pinbad "$PORT" "queue_dir $Q" "tls_fingerprint $BAD"
send pinbad-q 0	# queued: names the wrong pin's file (queue on)
rekey "$GOOD" "$SESS" "$KEY"
send pinbad2 0	# queued again
expect_grep tls-pin-cached-still-fails 'does not match tls_fingerprint' "$FS/pinbad2.stderr"
expect_nogrep tls-pin-cached-not-resumed 'TLS session resumed' "$FS/pinbad2.stderr"

# --- the trust store: a hashed directory, looked up ------------------------
mkdir -p "$FS/certs" "$FS/nocerts"
cp "$CA" "$FS/certs/"
openssl rehash "$FS/certs" 2>/dev/null || c_rehash "$FS/certs" >/dev/null
mkcfg store "$PORT" "queue_dir $FS/q-store" "queue off"
send store-dir 0 SSL_CERT_DIR="$FS/certs" SSL_CERT_FILE=/nonexistent
send store-empty 75 SSL_CERT_DIR="$FS/nocerts" SSL_CERT_FILE=/nonexistent
expect_grep tls-store-empty-unverified 'unable to get local issuer' "$FS/store-empty.stderr"
send store-file 0 SSL_CERT_DIR="$FS/nocerts" SSL_CERT_FILE="$CA"

# --- TLS 1.2 without forward secrecy is refused -----------------------------
fault_stop
d=$FS/pki
openssl req -newkey rsa:2048 -nodes -keyout "$d/rsa.key" -out "$d/rsa.csr" \
	-subj /CN=localhost >/dev/null 2>&1
openssl x509 -req -in "$d/rsa.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
	-CAcreateserial -out "$d/rsa.pem" -days 2 -extfile "$d/ext.cnf" >/dev/null 2>&1
fault_start kRSA --max-time 60 --io-timeout 15 --cert "$d/rsa.pem" \
	--key "$d/rsa.key" --ciphers AES128-SHA
# Control: the server really speaks AES128-SHA to a client that offers it.
echo | timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -starttls smtp \
	-cipher AES128-SHA -CAfile "$CA" >"$FS/s_client.out" 2>&1
expect_grep tls-kRSA-control 'Cipher is AES128-SHA' "$FS/s_client.out"
Q3=$FS/q-kRSA; mkdir -m 700 "$Q3"
mkcfg kRSA "$PORT" "queue_dir $Q3" "tls_ca_file $CA"
send kRSA 0
expect_grep tls-kRSA-refused 'no cipher or version in common' "$FS/kRSA.stderr"
expect_grep tls-kRSA-queued 'queued as' "$FS/kRSA.stderr"
expect_eq tls-kRSA-in-queue "$(ls "$Q3" | grep -c '\.env$')" 1
expect_nogrep tls-kRSA-no-mail '^C: MAIL' "$LOG"
mkcfg kRSA "$PORT" "queue_dir $Q3" "tls_ca_file $CA" "queue off"
send kRSA-noqueue 75
fault_stop
# And TLS 1.2 with ECDHE and AES-GCM goes.
fault_start gcm --max-time 60 --io-timeout 15 --cert "$d/rsa.pem" \
	--key "$d/rsa.key" --ciphers ECDHE-RSA-AES128-GCM-SHA256
mkcfg gcm "$PORT" "queue_dir $FS/q-gcm" "tls_ca_file $CA" "queue off"
send gcm 0
expect_grep tls-12-ecdhe-gcm 'TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256' "$FS/gcm.stderr"
fault_stop
