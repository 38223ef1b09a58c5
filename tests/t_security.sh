#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Security: a real setgid install into a temporary root, used by the
# unprivileged users nobody and daemon; secrets, injection, core dumps.
# Needs root (to install setgid and switch users); skipped otherwise.
. "$(dirname "$0")/lib.sh"
. "$TESTROOT/postfix/env"
SRC=$(cd "$(dirname "$0")/.." && pwd)
S=$TESTROOT/security
mkdir -p "$S"
chmod 755 "$TESTROOT" "$S"

if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
	skip t_security "needs root and setpriv"
	exit 0
fi

# The group outbox exists only in a private mount namespace, over a copy
# of /etc/group: install-setgid needs it, the host never gets it.
if [ -z "${SEC_PRIVATE_ETC:-}" ]; then
	if ! unshare -m true 2>/dev/null; then
		skip t_security "cannot make a mount namespace here (unshare -m)"
		exit 0
	fi
	cp /etc/group "$S/group" && cp /etc/passwd "$S/passwd" || exit 1
	if ! getent group outbox >/dev/null; then
		gid=999
		while getent group "$gid" >/dev/null; do gid=$((gid - 1)); done
		echo "outbox:x:$gid:" >>"$S/group"
	fi
	SEC_PRIVATE_ETC=1 exec unshare -m --propagation private -- sh -c \
	    'mount --bind "$1/group" /etc/group &&
	    mount --bind "$1/passwd" /etc/passwd && exec bash "$2"' \
	    sh "$S" "$0"
fi

# A build whose system file, queue and binary live under $S/root.
R=$S/root
mkdir -p "$S/src"
cp "$SRC"/*.c "$SRC"/*.h "$SRC"/Makefile "$S/src/"
cp -r "$SRC/contrib" "$SRC/man" "$S/src/"
if ! make -s -C "$S/src" PREFIX="$R" SYSCONFDIR="$R/etc" \
    LOCALSTATEDIR="$R/var" install-setgid >"$S/build.log" 2>&1; then
	fail sec-install "$(tail -5 "$S/build.log")"
	exit 0
fi
OB=$R/sbin/outbox
SECRET='correct horse'
B64=$(printf '\0alice\0%s' "$SECRET" | base64)
cat >"$R/etc/outbox.conf" <<EOF
host 127.0.0.1
port $PF_SUBMIT
tls_ca_file $PF_CA
user alice
password $SECRET
from sys@example.test
maildomain example.test
log off
EOF
chmod 755 "$(dirname "$PF_CA")"
chmod 644 "$PF_CA"

expect_eq sec-binary-mode "$(stat -c '%U:%G %a' "$OB")" "root:outbox 2755"
expect_eq sec-conf-mode "$(stat -c '%U:%G %a' "$R/etc/outbox.conf")" \
	"root:outbox 640"
expect_eq sec-queue-mode "$(stat -c '%U:%G %a' "$R/var/spool/outbox")" \
	"root:outbox 2770"

NH=$S/nobody-home
mkdir -p "$NH/.config/outbox"
chown -R nobody "$NH"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups \
	env -i PATH=/usr/bin:/bin HOME="$NH" "$@"; }
as_daemon() { setpriv --reuid=daemon --regid=daemon --clear-groups \
	env -i PATH=/usr/bin:/bin HOME=/nonexistent "$@"; }
# no_secret NAME FILE...: the password, and its AUTH PLAIN form, appear nowhere.
no_secret() {
	local name=$1 f; shift
	for f in "$@"; do
		[ -r "$f" ] || { fail "$name" "no file $f to look in"; return; }
	done
	if grep -qF -e "$SECRET" -e "$B64" "$@" 2>/dev/null; then
		fail "$name" "the secret shows in $*"
	else
		pass "$name"
	fi
}

# Any user sends through the system account; -v redacts AUTH.
printf 'Subject: from nobody\n\nhi\n' >"$S/msg"
mail_clear
expect_exit 0 sec-nobody-sends as_nobody "$OB" -v sec1@example.test <"$S/msg"
cp "$ERR" "$S/v.err"
expect_grep sec-nobody-auth-redacted '^-> AUTH [A-Z0-9-]+ <redacted>$' "$S/v.err"
no_secret sec-nobody-v-no-secret "$S/v.err"
check sec-nobody-delivered mail_wait sec1
# The TLS session it left is the group's; another user's run resumes it.
TLSF=$(ls "$R/var/spool/outbox" | grep '^tls-' | head -1)
expect_eq sec-tls-session-mode "$(stat -c '%G %a' "$R/var/spool/outbox/$TLSF" 2>&1)" "outbox 660"
expect_exit 0 sec-daemon-resumes as_daemon "$OB" -v sec1b@example.test <"$S/msg"
expect_grep sec-daemon-resumed 'TLS session resumed' "$ERR"

# The secret cannot be read, directly or through any option.
if as_nobody cat "$R/etc/outbox.conf" >/dev/null 2>&1; then
	fail sec-conf-unreadable "nobody read the system file"
else
	pass sec-conf-unreadable
fi
expect_exit 78 sec-C-system-file as_nobody "$OB" -C "$R/etc/outbox.conf" \
	x@example.test <"$S/msg"
no_secret sec-C-no-secret "$OUT" "$ERR"
cp "$R/etc/outbox.conf" "$S/copy.conf" 2>/dev/null
expect_exit 78 sec-bv-no-leak as_nobody "$OB" -C "$R/etc/outbox.conf" -bv x
no_secret sec-bv-no-secret "$OUT" "$ERR"

# A user file cannot redefine the system's account ...
cat >"$NH/.config/outbox/config" <<EOF
account default
host 127.0.0.1
port $PF_PLAIN
tls off
EOF
chown nobody "$NH/.config/outbox/config"
chmod 600 "$NH/.config/outbox/config"
expect_exit 78 sec-user-cannot-redefine as_nobody "$OB" x@example.test \
	<"$S/msg"
expect_grep sec-user-cannot-redefine-says "cannot change a system account" "$ERR"
no_secret sec-redefine-no-secret "$OUT" "$ERR"

# ... nor read the secret through its own keys, nor run code with the group.
FPORTF=$S/fport
python3 "$SRC/tests/faultsmtp.py" --port-file "$FPORTF" --log "$S/fault.log" \
	--max-time 60 >/dev/null 2>&1 &
FPID=$!
for _ in $(seq 50); do [ -s "$FPORTF" ] && break; sleep 0.1; done
# user_conf LINES...: the user's file, one account "u" of these lines.
user_conf() {
	{ echo "queue off"; echo "account u"; printf '%s\n' "$@"; } \
		>"$NH/.config/outbox/config"
	chown nobody "$NH/.config/outbox/config"
	chmod 600 "$NH/.config/outbox/config"
}
FP=$(cat "$FPORTF")
PLAINAUTH=("host 127.0.0.1" "port $FP" "tls off" "auth_plaintext on"
	"auth plain" "user alice" "from me@example.test")
user_conf "${PLAINAUTH[@]}" "password_file $R/etc/outbox.conf"
expect_exit 78 sec-password-file-of-system as_nobody "$OB" -a u \
	x@example.test <"$S/msg"
no_secret sec-password-file-no-secret "$OUT" "$ERR" "$S/fault.log"
user_conf "${PLAINAUTH[@]}" "password_command id -G >$NH/groups; env >$NH/env; cat $R/etc/outbox.conf; echo secret"
as_nobody env OPENSSL_CONF=/etc/passwd SSL_CERT_FILE=/etc/passwd \
	"$OB" -a u x@example.test <"$S/msg" >"$S/cmd.out" 2>&1
check sec-password-command-ran test -s "$NH/groups"
expect_nogrep sec-password-command-no-group "(^| )$(getent group outbox | cut -d: -f3)( |$)" "$NH/groups"
expect_nogrep sec-password-command-no-openssl-env '^(OPENSSL_CONF|SSL_CERT_FILE)=' "$NH/env"
no_secret sec-password-command-no-secret "$S/cmd.out" "$S/fault.log"
user_conf "host 127.0.0.1" "port $PF_SUBMIT" "tls_ca_file $R/etc/outbox.conf" \
	"from me@example.test"
expect_exit 75 sec-ca-file-of-system as_nobody "$OB" -a u x@example.test \
	<"$S/msg"
no_secret sec-ca-file-no-secret "$OUT" "$ERR"
kill "$FPID" 2>/dev/null
wait "$FPID" 2>/dev/null
rm -f "$NH/.config/outbox/config"

# The queue: shared with the group, private to others; -qD is the owner's.
sed -i "s/^port .*/port 1/" "$R/etc/outbox.conf"
expect_exit 0 sec-nobody-queues as_nobody "$OB" sec2@example.test <"$S/msg"
QID=$(ls "$R/var/spool/outbox" | sed -n 's/\.env$//p' | head -1)
expect_eq sec-queue-file-mode "$(stat -c '%U:%G %a' "$R/var/spool/outbox/$QID.msg")" \
	"nobody:outbox 660"
expect_eq sec-queue-env-mode "$(stat -c '%U:%G %a' "$R/var/spool/outbox/$QID.env")" \
	"nobody:outbox 660"
if as_daemon cat "$R/var/spool/outbox/$QID.msg" >/dev/null 2>&1; then
	fail sec-queue-unreadable "daemon read nobody's queued message"
else
	pass sec-queue-unreadable
fi
expect_exit 0 sec-mailq-other-user as_daemon "$OB" -bp
expect_grep sec-mailq-lists "^$QID " "$OUT"
expect_exit 77 sec-qD-other-user as_daemon "$OB" -qD "$QID"
expect_exit 0 sec-qD-owner as_nobody "$OB" -qD "$QID"
sed -i "s/^port .*/port $PF_SUBMIT/" "$R/etc/outbox.conf"

# A broken system file is reported without its text.
cp "$R/etc/outbox.conf" "$S/good.conf"
printf 'port %s\n' "$SECRET" >>"$R/etc/outbox.conf"
expect_exit 78 sec-broken-system-file as_nobody "$OB" x@example.test <"$S/msg"
no_secret sec-broken-system-file-no-secret "$OUT" "$ERR"
cp "$S/good.conf" "$R/etc/outbox.conf"

# No core dumps while a secret is held: a process stalled mid-session.
python3 "$SRC/tests/faultsmtp.py" --port-file "$S/sport" --log "$S/stall.log" \
	--scenario stall-greeting --max-time 30 >/dev/null 2>&1 &
SPID=$!
for _ in $(seq 50); do [ -s "$S/sport" ] && break; sleep 0.1; done
printf 'host 127.0.0.1\nport %s\ntls off\ntimeout 10\nqueue off\nlog off\n' \
	"$(cat "$S/sport")" >"$S/stall.conf"
"$SRC/outbox" -C "$S/stall.conf" x@example.test <"$S/msg" >/dev/null 2>&1 &
OPID=$!
# Mid-session once the server has its connection.
for _ in $(seq 100); do grep -q '^E: session ' "$S/stall.log" 2>/dev/null && break; sleep 0.1; done
expect_grep sec-no-core-dumps '^Max core file size +0 +0' "/proc/$OPID/limits"
# Not dumpable, for real: the kernel gives a non-dumpable process's /proc
# files to root, so an outbox run as nobody must show root as their owner.
# (The shell says its pid on fd 3, then becomes outbox.) nobody runs a copy
# in $S: the checkout may be where nobody cannot reach (/root).
install -d -m 755 "$S/copy" && install -m 755 "$SRC/outbox" "$S/copy/outbox"
as_nobody sh -c 'echo $$ >&3; exec "$0" -C "$1" x@example.test' \
	"$S/copy/outbox" "$S/stall.conf" <"$S/msg" >/dev/null 2>&1 3>"$S/npid" &
NBG=$!
for _ in $(seq 30); do
	NPID=$(cat "$S/npid" 2>/dev/null)
	ND="$(cat "/proc/$NPID/comm" 2>/dev/null) $(stat -c %U "/proc/$NPID/mem" 2>/dev/null) $(awk '/^Uid/ {print $2}' "/proc/$NPID/status" 2>/dev/null)"
	[ "$ND" = "outbox root $(id -u nobody)" ] && break
	sleep 0.1
done
expect_eq sec-not-dumpable "$ND" "outbox root $(id -u nobody)"
kill "$NPID" 2>/dev/null; wait "$NBG" 2>/dev/null
kill "$OPID" "$SPID" 2>/dev/null
wait "$OPID" "$SPID" 2>/dev/null

# Injection: line breaks in arguments never reach the wire.
P=$S/plain.conf
printf 'host 127.0.0.1\nport %s\ntls off\nqueue off\nlog off\ndead_letter %s\n' \
	"$PF_PLAIN" "$S/dead" >"$P"
expect_exit 65 sec-rcpt-crlf "$SRC/outbox" -C "$P" \
	$'a@example.test\r\nRCPT TO:<evil@example.test>' <"$S/msg"
expect_exit 65 sec-sender-lf "$SRC/outbox" -C "$P" -f $'a@example.test\nx' \
	b@example.test <"$S/msg"
expect_exit 65 sec-fullname-lf "$SRC/outbox" -C "$P" -F $'Evil\nBcc: x@y' \
	b@example.test <"$S/msg"
expect_exit 64 sec-envid-lf "$SRC/outbox" -C "$P" -V $'id\r\nRSET' \
	b@example.test <"$S/msg"
long=$(printf 'a%.0s' $(seq 300))@example.test
expect_exit 65 sec-address-too-long "$SRC/outbox" -C "$P" "$long" <"$S/msg"
mail_clear
expect_exit 0 sec-X-ignored "$SRC/outbox" -C "$P" -X "$S/xlog" -oi \
	-- sec3@example.test <"$S/msg"
if [ -e "$S/xlog" ]; then fail sec-X-no-file "-X wrote $S/xlog"; else
	pass sec-X-no-file; fi
# After --, "-v" is an address (Postfix refuses its syntax), not -v.
printf 'To: sec4@example.test\nSubject: t\n\nx\n' >"$S/tmsg"
expect_exit 67 sec-dash-address "$SRC/outbox" -C "$P" -t -- -v <"$S/tmsg"
expect_grep sec-dash-went-as-rcpt '<-v@[^>]*>: refused' "$ERR"
expect_nogrep sec-dash-is-no-option '^-> ' "$ERR"
check sec-dash-others-delivered mail_wait sec4
