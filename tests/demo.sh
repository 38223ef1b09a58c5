#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# `make demo`: install what is missing, build outbox, start a private loopback
# Postfix (tests/postfix.sh) in a temporary directory, submit a message over
# STARTTLS + SMTP AUTH with -t -v so the SMTP dialogue shows, wait for the
# delivery and print the message as it landed in the Maildir, stop Postfix.
# Needs root (Postfix's master does). Exits 0 when the message arrived.
set -u
cd "$(dirname "$0")/.." || exit 1
top=$(pwd)

say() { printf '\n== %s\n' "$*"; }
# no WHAT: the verdict line of a failed demo.
no() { printf '\ndemo: FAILED: %s\n' "$*"; exit 1; }

bash tests/deps.sh || no "the packages it needs are missing (tests/deps.sh)"
if [ "$(id -u)" != 0 ]; then
	echo "demo.sh: run as root: it starts a private Postfix, whose master needs root" >&2
	exit 1
fi

say "make"
make || no "outbox does not build"

D=$(mktemp -d /tmp/outbox-demo.XXXXXX) || exit 1
chmod 711 "$D"	# Postfix (user postfix) and its delivery agent (nobody) must reach it
cleanup() {
	bash "$top/tests/postfix.sh" stop "$D/postfix" >/dev/null 2>&1
	rm -rf "$D"
}
trap cleanup EXIT

say "starting a private Postfix on 127.0.0.1 (tests/postfix.sh start $D/postfix)"
bash tests/postfix.sh start "$D/postfix" || no "the private Postfix did not start"
. "$D/postfix/env"
. tests/lib.sh
echo "submission port $PF_SUBMIT (STARTTLS + AUTH), CA $PF_CA"

CONF=$D/outbox.conf
cat >"$CONF" <<EOF
# the submission port of the demo Postfix: STARTTLS, certificate checked
# against the demo CA, AUTH as alice (the strongest mechanism offered)
host 127.0.0.1
port $PF_SUBMIT
tls starttls
tls_ca_file $PF_CA
user alice
password correct horse
from alice@example.test
dead_letter $D/dead.letter
queue_dir $D/queue
EOF
chmod 600 "$CONF"
say "configuration ($CONF, mode 600; password not shown)"
sed 's/^password .*/password ********/' "$CONF"

MSG=$D/message
cat >"$MSG" <<'EOF'
From: Alice <alice@example.test>
To: Bob <bob@example.test>
Cc: carol@example.test
Bcc: dave@example.test
Subject: outbox demo

Hello Bob,

this message went through outbox over STARTTLS with SMTP AUTH.
The Bcc header is gone; dave got his copy anyway.
.a line that starts with a dot
Grüße, Alice
EOF
say "the message"
cat "$MSG"

say "outbox -C $CONF -t -v -i < message   (transcript on stderr)"
HOME=$D ./outbox -C "$CONF" -t -v -i <"$MSG" 2>&1
rc=$?
echo "exit status: $rc"
[ "$rc" -eq 0 ] || no "outbox exited $rc"

for who in bob carol dave; do
	mail_wait "$who" 1 || { tail -n 20 "$PF_LOG" >&2; no "$who did not get the message"; }
done
say "delivered to $PF_MAIL/bob/new/ (Return-Path, Delivered-To and Received added by Postfix)"
cat "$(mail_file bob)"
say "carol and dave got a copy too: $(mail_count carol) and $(mail_count dave)"
say "stopping Postfix"
cleanup
trap - EXIT
printf '\ndemo: passed: outbox sent the message over STARTTLS + AUTH; bob, carol and dave each got one copy (%d s)\n' "$SECONDS"
