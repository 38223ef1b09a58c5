#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# One user's mail is no one else's: a real setgid install under $TESTROOT
# used by two throwaway users, evil and victim, who exist only in a private
# mount namespace (bind-mounted copies of /etc/passwd and /etc/group); the
# machine keeps no user, group or file. faultsmtp servers play victim's,
# evil's and the system's smarthosts. Needs root, unshare and setpriv.
. "$(dirname "$0")/lib.sh"
SRC=${OUTBOX_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
M=$TESTROOT/multiuser

if [ "${1:-}" != inner ]; then
	if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null ||
	    ! command -v setpriv >/dev/null; then
		skip t_multiuser "needs root, unshare and setpriv"
		exit 0
	fi
	if ! unshare -m true 2>/dev/null; then
		skip t_multiuser "cannot make a mount namespace here (unshare -m)"
		exit 0
	fi
	exec unshare -m --propagation private bash "$0" inner
fi

# ---- The users, the install, the servers.
mkdir -p "$M"
chmod 755 "$TESTROOT" "$M"
cp /etc/passwd "$M/passwd"
cp /etc/group "$M/group"
EUID_=64001 VUID=64002
echo "evil:x:$EUID_:$EUID_::$M/evil:/bin/sh" >>"$M/passwd"
echo "victim:x:$VUID:$VUID::$M/victim:/bin/sh" >>"$M/passwd"
echo "evil:x:$EUID_:" >>"$M/group"
echo "victim:x:$VUID:" >>"$M/group"
grep -q '^outbox:' "$M/group" || echo "outbox:x:64000:" >>"$M/group"
mount --bind "$M/passwd" /etc/passwd && mount --bind "$M/group" /etc/group ||
	{ fail mu-namespace "cannot bind-mount passwd and group"; exit 0; }
OGID=$(getent group outbox | cut -d: -f3)

R=$M/root
mkdir -p "$M/src"
cp "$SRC"/*.c "$SRC"/*.h "$SRC"/Makefile "$M/src/"
cp -r "$SRC/contrib" "$SRC/man" "$M/src/"
if ! make -s -C "$M/src" PREFIX="$R" SYSCONFDIR="$R/etc" \
    LOCALSTATEDIR="$R/var" install-setgid >"$M/build.log" 2>&1; then
	fail mu-install "$(tail -5 "$M/build.log")"
	exit 0
fi
OB=$R/sbin/outbox
SPOOL=$R/var/spool/outbox
expect_eq mu-install-setgid "$(stat -c '%G %a' "$OB")" "outbox 2755"

FS=$M/fs
mkdir -p "$FS"
# server NAME ARGS...: a faultsmtp on port 0; sets NAME_PORT, NAME_LOG, NAME_PID.
server() {
	local n=$1; shift
	fault_start "$n" --max-time 300 "$@"
	printf -v "${n}_PORT" %s "$PORT"
	printf -v "${n}_LOG" %s "$LOG"
	printf -v "${n}_PID" %s "$SRV_PID"
}
server VSRV
server ESRV
server SYS
server FAST --io-timeout 5
server SLOW --scenario dot-stall --io-timeout 120
# A port nobody listens on: a server that is down.
python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' >"$FS/down"
DOWN=$(cat "$FS/down")

cat >"$R/etc/outbox.conf" <<EOF
log off
queue_max_user_bytes 300k
host 127.0.0.1
port $SYS_PORT
tls off
maildomain example.test
account slow
host 127.0.0.1
port $SLOW_PORT
tls off
timeout 10
account fast
host 127.0.0.1
port $FAST_PORT
tls off
account down
host 127.0.0.1
port $DOWN
tls off
account sec
host 127.0.0.1
port $SYS_PORT
tls off
auth_plaintext on
user alice
password_file $R/etc/outbox.secret
EOF
chown root:outbox "$R/etc/outbox.conf"
chmod 640 "$R/etc/outbox.conf"
# Account sec's password: root:root 0600 until its own section below (no
# other account of the system file may suffer from it meanwhile).
SECRET=$R/etc/outbox.secret
printf 'secret\n' >"$SECRET"
chown root:root "$SECRET"
chmod 600 "$SECRET"

# user_conf USER LINES...: USER's own file.
user_conf() {
	local u=$1 d=$M/$1/.config/outbox; shift
	mkdir -p "$d"
	printf '%s\n' "log off" "$@" >"$d/config"
	chown -R "$u:$u" "$M/$u"
	chmod 600 "$d/config"
}
# as USER CMD...: run as USER (no groups), with its own HOME.
as() {
	local u=$1; shift
	setpriv --reuid="$u" --regid="$u" --clear-groups \
		env -i PATH=/usr/bin:/bin HOME="$M/$u" "$@"
}
as_root() { env -i PATH=/usr/bin:/bin HOME="$M/roothome" "$@"; }
# nnp CMD: root as systemd starts it, NoNewPrivileges=yes: no setgid group.
nnp() { setpriv --no-new-privs env -i PATH=/usr/bin:/bin HOME="$M/roothome" "$@"; }
mkdir -p "$M/evil" "$M/victim" "$M/roothome"
chown evil:evil "$M/evil"
chown victim:victim "$M/victim"
# msg MARK: a message whose Subject is MARK.
msg() { printf 'Subject: %s\n\n%s body\n' "$1" "$1"; }
# ids: the IDs in the spool; new_id BEFORE: the one ID not in BEFORE (IDs
# of the same second do not sort by time).
ids() { ls "$SPOOL" | sed -n 's/^\([0-9A-F]\{12\}\)\.env$/\1/p' | sort; }
new_id() { comm -13 <(printf '%s\n' "$1") <(ids) | head -1; }
# got SERVER_LOG MARK: how many messages with Subject MARK the server took.
got() { cat "$1".data.* 2>/dev/null | grep -c "^Subject: $2"; }
VFILE=$M/victim/.config/outbox/config

# ---- 2. No fallback: a run whose configuration lacks victim's "work"
# (root's) leaves victim's entry alone, never the default account.
user_conf victim "account work" "host 127.0.0.1" "port $DOWN" "tls off" \
	"from victim@work.example"
user_conf evil "account work" "host 127.0.0.1" "port $ESRV_PORT" "tls off" \
	"from evil@evil.example"
B=$(ids)
msg mu-fallback | as victim "$OB" -a work -odi v2@dest.example >"$M/c2.out" 2>&1
ID2=$(new_id "$B")
check mu-fallback-queued test -n "$ID2" -a -e "$SPOOL/$ID2.env"
expect_exit 0 mu-fallback-root-q as_root "$OB" -q
expect_eq mu-fallback-system-got-nothing "$(got "$SYS_LOG" mu-fallback)" 0
check mu-fallback-entry-kept test -e "$SPOOL/$ID2.env"

# ---- 1. Account-name collision: evil's "work" is not victim's "work".
B=$(ids)
msg mu-collision | as victim "$OB" -a work -odi v1@dest.example >"$M/c1.out" 2>&1
ID1=$(new_id "$B")
check mu-collision-queued test -n "$ID1" -a -e "$SPOOL/$ID1.env"
expect_exit 0 mu-collision-evil-q as evil "$OB" -q
expect_exit 0 mu-collision-evil-qI as evil "$OB" -a work -qI "$ID1"
expect_eq mu-collision-evil-got-nothing "$(got "$ESRV_LOG" mu-collision)" 0
check mu-collision-entry-kept test -e "$SPOOL/$ID1.env" -a -e "$SPOOL/$ID1.msg"
expect_exit 0 mu-collision-bp as evil "$OB" -bp
expect_grep mu-collision-bp-says-why "waiting for its owner's run: account work of $VFILE" "$OUT"
# victim's own run delivers both to victim's server.
user_conf victim "account work" "host 127.0.0.1" "port $VSRV_PORT" "tls off" \
	"from victim@work.example"
expect_exit 0 mu-owner-q as victim "$OB" -q
expect_eq mu-owner-delivered "$(got "$VSRV_LOG" mu-collision)" 1
expect_eq mu-owner-delivered-2 "$(got "$VSRV_LOG" mu-fallback)" 1
check mu-owner-entry-gone test ! -e "$SPOOL/$ID1.env"

# ---- 3. The queue_dir race: a symlink flipped between the spool and a
# fake directory of evil's, while evil loops -qI on victim's entry.
B=$(ids)
msg mu-race | as victim "$OB" -odq v3@dest.example
ID3=$(new_id "$B")
SIZE3=$(stat -c %s "$SPOOL/$ID3.msg")
FAKE=$M/evil/fake
mkdir -p "$FAKE"
cat >"$FAKE/$ID3.env" <<EOF
outbox-queue 2
owner $EUID_
created $(date +%s)
next 0
attempts 0
account work
file $M/evil/.config/outbox/config
sender evil@evil.example
size $SIZE3
body 0
maxline 0
flags 0 0 0 0 0 0
rcpt evil@evil.example
EOF
chown -R evil:evil "$FAKE"
ln -sfn "$SPOOL" "$M/evil/q"
user_conf evil "queue_dir $M/evil/q" "account work" "host 127.0.0.1" \
	"port $ESRV_PORT" "tls off" "from evil@evil.example"
expect_exit 78 mu-race-user-queue-dir-refused as evil "$OB" -a work -qI "$ID3"
expect_grep mu-race-refusal-names-fix "setgid install.*remove this line" "$ERR"
# Started directly (not through a function) so that $! is the flipper
# itself; it stops by itself after 30 s anyway.
setpriv --reuid=evil --regid=evil --clear-groups env -i PATH=/usr/bin:/bin \
	bash -c "end=\$((SECONDS + 30)); while [ \$SECONDS -lt \$end ]; do
	ln -sfn '$SPOOL' '$M/evil/q.new'; mv -Tf '$M/evil/q.new' '$M/evil/q'
	ln -sfn '$FAKE' '$M/evil/q.new'; mv -Tf '$M/evil/q.new' '$M/evil/q'
	done" 2>/dev/null &
FLIP=$!
end=$((SECONDS + 15))
for _ in $(seq 200); do
	[ "$SECONDS" -ge "$end" ] && break
	as evil "$OB" -a work -qI "$ID3" >/dev/null 2>&1
	[ "$(got "$ESRV_LOG" mu-race)" -gt 0 ] && break
	[ -e "$SPOOL/$ID3.env" ] || break
done
kill "$FLIP" 2>/dev/null
wait "$FLIP" 2>/dev/null
expect_eq mu-race-evil-got-nothing "$(got "$ESRV_LOG" mu-race)" 0
check mu-race-entry-kept test -e "$SPOOL/$ID3.env" -a -e "$SPOOL/$ID3.msg"
user_conf evil "account work" "host 127.0.0.1" "port $ESRV_PORT" "tls off" \
	"from evil@evil.example"

# ---- Damaged entries are left alone and shown, never sent.
ID3D=$(printf '%08X%04X' "$(date +%s)" 65535)
sed "s/^owner .*/owner $EUID_/" "$SPOOL/$ID3.env" >"$SPOOL/$ID3D.env"
ln "$SPOOL/$ID3.msg" "$SPOOL/$ID3D.msg"
ID3E=$(printf '%08X%04X' "$(date +%s)" 65534)
sed 's/^rcpt .*/rcpt x@dest.example> NOTIFY=SUCCESS/' "$SPOOL/$ID3.env" >"$SPOOL/$ID3E.env"
cp -p "$SPOOL/$ID3.msg" "$SPOOL/$ID3E.msg"
chown victim:outbox "$SPOOL/$ID3E.msg"
expect_exit 0 mu-damaged-q as_root "$OB" -qI "$ID3D"
expect_exit 0 mu-damaged-q2 as_root "$OB" -qI "$ID3E"
expect_eq mu-damaged-not-sent "$(got "$SYS_LOG" mu-race)" 0
expect_exit 0 mu-damaged-bp as_root "$OB" -bp
expect_grep mu-damaged-bp-owner "says owner $EUID_, but $ID3D.msg belongs to uid $VUID" "$OUT"
expect_grep mu-damaged-bp-rcpt "$ID3E.env: damaged" "$OUT"
rm -f "$SPOOL/$ID3D".* "$SPOOL/$ID3E".*

# ---- 4. A stopped run holds only the entry in flight (needs the runner
# to claim per transaction: deliver.c's queue_claim).
msg mu-stop-A | as victim "$OB" -a slow -odq s1@dest.example
msg mu-stop-B | as victim "$OB" -a fast -odq s2@dest.example
msg mu-stop-C | as victim "$OB" -a fast -odq s3@dest.example
B=$(ids)
msg mu-stop-D | as victim "$OB" -a down -odq s4@dest.example
IDD=$(new_id "$B")
setpriv --reuid=evil --regid=evil --clear-groups env -i PATH=/usr/bin:/bin \
	HOME="$M/evil" "$OB" -q >"$M/stop.out" 2>&1 &
RUN1=$!
for _ in $(seq 100); do
	grep -q 'server stalls' "$SLOW_LOG" 2>/dev/null && break
	sleep 0.1
done
kill -STOP "$RUN1"
check mu-stop-runner-stalled grep -q 'server stalls' "$SLOW_LOG"
expect_exit 0 mu-stop-other-run timeout 60 env -i PATH=/usr/bin:/bin \
	HOME="$M/roothome" "$OB" -q
expect_eq mu-stop-B-delivered-once "$(got "$FAST_LOG" mu-stop-B)" 1
expect_eq mu-stop-C-delivered-once "$(got "$FAST_LOG" mu-stop-C)" 1
expect_exit 0 mu-stop-victim-qD as victim "$OB" -qD "$IDD"
{ kill -KILL "$RUN1"; kill -CONT "$RUN1"; wait "$RUN1"; } 2>/dev/null

# ---- 5. Spool limits: 51 MiB over the default 50 MiB; victim's share.
before=$(ls "$SPOOL" | wc -l)
expect_exit 65 mu-size-refused as victim bash -c \
	"{ printf 'Subject: big\n\n'; head -c 53477376 /dev/zero | tr '\\0' x | fold -w 76; } | '$OB' -odq big@dest.example"
expect_grep mu-size-says-why "larger than queue_max_message_size" "$ERR"
expect_eq mu-size-nothing-left "$(ls "$SPOOL" | wc -l)" "$before"
user_conf victim "queue_max_message_size 100M" "account work" \
	"host 127.0.0.1" "port $VSRV_PORT" "tls off"
expect_exit 78 mu-size-user-file-refused as victim "$OB" -odq x@dest.example </dev/null
user_conf victim "account work" "host 127.0.0.1" "port $VSRV_PORT" "tls off"
as victim "$OB" -qD "$ID3" >/dev/null 2>&1
rc=0
for i in 1 2 3 4; do
	{ printf 'Subject: quota %s\n\n' "$i"; head -c 122880 /dev/zero | tr '\0' q | fold -w 76; } |
		as victim "$OB" -a down -odq q@dest.example >"$M/quota.out" 2>&1
	rc=$?
	[ "$rc" -ne 0 ] && break
done
expect_eq mu-quota-tempfail "$rc" 75
expect_grep mu-quota-says-why "queue_max_user_bytes" "$M/quota.out"
expect_exit 0 mu-quota-others-unaffected as evil "$OB" -a down -odq e@dest.example \
	< <(msg mu-evil-small)

# ---- A system secret other users' runs cannot read (root:root 0600, as
# an administrator makes a "private" file): victim's mail is queued (exit
# 0) with one line naming the file, its owner and mode and the fix; root's
# --check says what other users' runs can read.
B=$(ids)
msg mu-secret | as victim "$OB" -a sec -odi s5@dest.example >"$M/sec.out" 2>"$M/sec.err"
expect_eq mu-secret-unreadable-exit-0 "${PIPESTATUS[1]}" 0
ID5=$(new_id "$B")
check mu-secret-unreadable-queued test -n "$ID5" -a -e "$SPOOL/$ID5.env"
expect_grep mu-secret-unreadable-says-fix "$SECRET is root:root 0600, which other users' runs cannot read: make it root:outbox 0640" "$M/sec.err"
expect_eq mu-secret-unreadable-one-line "$(grep -c 'outbox.secret' "$M/sec.err")" 1
expect_nogrep mu-secret-unreadable-not-masked "has an error; run outbox --check" "$M/sec.err"
expect_exit 0 mu-secret-root-check as_root "$OB" -a sec --check
expect_grep mu-secret-root-check-says "^secrets +account sec: $SECRET is root:root 0600, which other users' runs cannot read: make it root:outbox 0640" "$OUT"
# The same binary without its setgid bit: only root's runs can use it.
cp "$OB" "$M/outbox-plain"
expect_exit 0 mu-secret-root-check-plain as_root "$M/outbox-plain" -a sec --check
expect_grep mu-secret-root-check-plain-says "^secrets +account sec: $SECRET is root:root 0600: only root's runs can use it \(outbox is not installed setgid" "$OUT"
chown root:outbox "$SECRET"
chmod 640 "$SECRET"
expect_exit 0 mu-secret-root-check-shared as_root "$OB" -a sec --check
expect_grep mu-secret-root-check-shared-says "^secrets +account sec: $SECRET is root:outbox 0640: other users' runs can read it" "$OUT"
expect_exit 0 mu-secret-victim-retry as victim "$OB" -qI "$ID5"
expect_eq mu-secret-delivered-once "$(got "$SYS_LOG" mu-secret)" 1
check mu-secret-entry-gone test ! -e "$SPOOL/$ID5.env"

# ---- OAuth2 in the shared install (tests/tokensrv.py): only root signs a
# system account in; a rotated refresh token received by victim's run goes
# to the token state beside the queue (the group's, mode 0640), never over
# the system's token file, and root's and evil's runs go on using it.
fault_certs
chmod 755 "$FS/pki"
chmod 644 "$CA"
TOK=$M/tok
mkdir -p "$TOK"
printf 'rt-first\n' >"$TOK/refresh"
: >"$TOK/tokens"
: >"$TOK/requests"
python3 "$SRC/tests/tokensrv.py" --port-file "$TOK/port" --state "$TOK" \
	--cert "$FS/pki/srv.pem" --key "$FS/pki/srv.key" --max-time 300 2>"$TOK/err" &
TOK_PID=$!
for _ in $(seq 100); do [ -s "$TOK/port" ] && break; sleep 0.05; done
TPORT=$(cat "$TOK/port" 2>/dev/null)
server OSRV --ext "PIPELINING,8BITMIME,ENHANCEDSTATUSCODES,AUTH=XOAUTH2" \
	--oauth2-token-file "$TOK/tokens"
SYSTOK=$R/etc/m365.token
printf 'rt-first\n' >"$SYSTOK"
chown root:outbox "$SYSTOK"
chmod 640 "$SYSTOK"
printf '%s\n' "account m365" "host 127.0.0.1" "port $OSRV_PORT" "tls off" \
	"auth_plaintext on" "auth xoauth2" "user alice@example.test" \
	"oauth2_grant refresh_token" "oauth2_token_url https://127.0.0.1:$TPORT/token" \
	"oauth2_device_url https://127.0.0.1:$TPORT/device" "oauth2_client_id app" \
	"oauth2_ca_file $CA" "oauth2_refresh_token_file $SYSTOK" >>"$R/etc/outbox.conf"
STATE=$SPOOL/oauth2.m365.refresh
CACHE=$SPOOL/oauth2.m365.token
script() { printf '%s\n' "$@" >"$TOK/script"; }
last_request() { tail -1 "$TOK/requests" 2>/dev/null; }

expect_exit 77 mu-oauth2-login-user-refused as evil "$OB" --oauth2-login -a m365
expect_grep mu-oauth2-login-user-says "system account: only root may sign it in" "$ERR"
expect_nogrep mu-oauth2-login-user-no-device-flow '^/device' "$TOK/requests"
expect_eq mu-oauth2-login-user-file-kept "$(cat "$SYSTOK")" rt-first

script rotate
msg mu-oauth-victim | as victim "$OB" -a m365 -odi o1@dest.example >"$M/o1.out" 2>&1
expect_eq mu-oauth2-victim-rotation-exit-0 "${PIPESTATUS[1]}" 0
expect_eq mu-oauth2-victim-delivered "$(got "$OSRV_LOG" mu-oauth-victim)" 1
expect_eq mu-oauth2-rotated "$(last_request)" "/token refresh_token ok rotated"
expect_eq mu-oauth2-system-file-untouched "$(cat "$SYSTOK") $(stat -c '%U:%G %a' "$SYSTOK")" "rt-first root:outbox 640"
expect_eq mu-oauth2-state-group-mode "$(stat -c '%U:%G %a' "$STATE" 2>&1)" "victim:outbox 640"
check mu-oauth2-state-holds-rotation grep -qF "\"$(cat "$TOK/refresh")\"" "$STATE"
check mu-oauth2-no-temp-left test -z "$(ls "$SPOOL" | grep '^oauth2\..*\.......$')"

rm -f "$CACHE"
msg mu-oauth-root | as_root "$OB" -a m365 -odi o2@dest.example >"$M/o2.out" 2>&1
expect_eq mu-oauth2-root-after-rotation-exit-0 "${PIPESTATUS[1]}" 0
expect_eq mu-oauth2-root-used-rotation "$(last_request)" "/token refresh_token ok"
expect_eq mu-oauth2-root-delivered "$(got "$OSRV_LOG" mu-oauth-root)" 1
rm -f "$CACHE"
msg mu-oauth-evil | as evil "$OB" -a m365 -odi o3@dest.example >"$M/o3.out" 2>&1
expect_eq mu-oauth2-evil-after-rotation-exit-0 "${PIPESTATUS[1]}" 0
expect_eq mu-oauth2-evil-delivered "$(got "$OSRV_LOG" mu-oauth-evil)" 1
check mu-oauth2-cache-group-mode test "$(stat -c '%G %a' "$CACHE" 2>&1)" = "outbox 640"
expect_exit 0 mu-oauth2-root-check as_root "$OB" -a m365 --check
expect_grep mu-oauth2-root-check-secrets "^secrets +account m365: $SYSTOK is root:outbox 0640: other users' runs can read it" "$OUT"
expect_grep mu-oauth2-root-check-state "^secrets +account m365: rotated refresh tokens are kept in $SPOOL, which only root and the group can change" "$OUT"

# Root signs in again: the file is new, the old rotation no longer counts.
expect_exit 0 mu-oauth2-root-login as_root "$OB" --oauth2-login -a m365
expect_eq mu-oauth2-root-login-stored "$(cat "$SYSTOK")" "$(cat "$TOK/refresh")"
expect_eq mu-oauth2-root-login-mode "$(stat -c '%U:%G %a' "$SYSTOK")" "root:outbox 640"
rm -f "$CACHE"
msg mu-oauth-after-login | as victim "$OB" -a m365 -odi o4@dest.example >"$M/o4.out" 2>&1
expect_eq mu-oauth2-after-login-exit-0 "${PIPESTATUS[1]}" 0
expect_eq mu-oauth2-after-login-uses-new-file "$(last_request)" "/token refresh_token ok"
expect_eq mu-oauth2-after-login-delivered "$(got "$OSRV_LOG" mu-oauth-after-login)" 1
# A state file that the group could write is not trusted: the run goes
# back to the system's file (whose token the last rotation revoked).
script rotate
rm -f "$CACHE"
msg mu-oauth-rot2 | as victim "$OB" -a m365 -odi o5@dest.example >"$M/o5.out" 2>&1
expect_eq mu-oauth2-rotated-again "$(last_request)" "/token refresh_token ok rotated"
chmod 660 "$STATE"
rm -f "$CACHE"
msg mu-oauth-untrusted | as_root "$OB" -a m365 -odi o6@dest.example >"$M/o6.out" 2>&1
expect_eq mu-oauth2-group-writable-state-ignored "$(last_request)" "/token refresh_token invalid_grant"
# A queue directory that is not root's is no token state: a user's run
# cannot keep a rotation there nor over the system's file, and says so.
expect_exit 0 mu-oauth2-root-login-2 as_root "$OB" --oauth2-login -a m365
# Root's run as systemd starts it (no setgid group) keeps the token files
# the group's: the cache it writes and the system file it rotates.
script rotate
rm -f "$CACHE"
msg mu-oauth-nnp | nnp "$OB" -a m365 -odi o8@dest.example >"$M/o8.out" 2>&1
expect_eq mu-oauth2-nnp-exit-0 "${PIPESTATUS[1]}" 0
expect_eq mu-oauth2-nnp-delivered "$(got "$OSRV_LOG" mu-oauth-nnp)" 1
expect_eq mu-oauth2-nnp-cache-group-mode "$(stat -c '%G %a' "$CACHE" 2>&1)" "outbox 640"
expect_eq mu-oauth2-nnp-system-file "$(stat -c '%U:%G %a' "$SYSTOK")" "root:outbox 640"
rm -f "$CACHE"
msg mu-oauth-nnp-after | as victim "$OB" -a m365 -odi o9@dest.example >"$M/o9.out" 2>&1
expect_eq mu-oauth2-nnp-then-victim-exit-0 "${PIPESTATUS[1]}" 0
expect_eq mu-oauth2-nnp-then-victim-delivered "$(got "$OSRV_LOG" mu-oauth-nnp-after)" 1
expect_exit 0 mu-oauth2-root-login-3 as_root "$OB" --oauth2-login -a m365
chown evil "$SPOOL"
script rotate
rm -f "$CACHE"
msg mu-oauth-lost | as victim "$OB" -a m365 -odi o7@dest.example >"$M/o7.out" 2>"$M/o7.err"
expect_eq mu-oauth2-untrusted-dir-sent "$(got "$OSRV_LOG" mu-oauth-lost)" 1
expect_grep mu-oauth2-untrusted-dir-rotation-lost-said "account m365: the rotated refresh token was not saved .*only root writes .*run outbox --oauth2-login -a m365 as root" "$M/o7.err"
expect_eq mu-oauth2-untrusted-dir-system-file-kept "$(stat -c '%U:%G %a' "$SYSTOK")" "root:outbox 640"
# (75: the rotation that could not be kept revoked the file's token.)
expect_exit 75 mu-oauth2-untrusted-dir-check as_root "$OB" -a m365 --check
expect_grep mu-oauth2-untrusted-dir-check-says "^secrets +account m365: rotated refresh tokens cannot be kept: $SPOOL is uid $EUID_, gid $OGID, mode 2770: make it root:outbox 2770" "$OUT"
chown root:outbox "$SPOOL"
chmod 2770 "$SPOOL"
kill "$TOK_PID" "$OSRV_PID" 2>/dev/null
wait "$TOK_PID" "$OSRV_PID" 2>/dev/null

# ---- Reports belong to the message's owner (issue 18 item 2): evil's
# run settles victim's entries; the report it queues is victim's (evil
# cannot -qD it), and one refused for good leaves victim's message whole
# in the queue's dead.letter, never in evil's.
server NB --rcpt-refuse nobody --scenario mail-null-550
printf '%s\n' "account nb" "host 127.0.0.1" "port $NB_PORT" "tls off" \
	>>"$R/etc/outbox.conf"
B=$(ids)
msg mu-report | as victim "$OB" -a down -odq nobody@dest.example
IDR=$(new_id "$B")
sed -i "s/^created .*/created $(( $(date +%s) - 6 * 86400 ))/" "$SPOOL/$IDR.env"
B=$(ids)
expect_exit 0 mu-report-evil-q as evil "$OB" -q
BIDR=$(new_id "$B")
check mu-report-queued test -n "$BIDR" -a -e "$SPOOL/$BIDR.env"
expect_eq mu-report-owner "$(sed -n 's/^owner //p' "$SPOOL/$BIDR.env" 2>/dev/null)" "$VUID"
expect_eq mu-report-orig-owner "$(stat -c %u "$SPOOL/$BIDR.orig" 2>&1)" "$VUID"
expect_exit 77 mu-report-evil-qD as evil "$OB" -qD "$BIDR"
expect_exit 0 mu-report-victim-qD as victim "$OB" -qD "$BIDR"
check mu-report-gone test ! -e "$SPOOL/$BIDR.env" -a ! -e "$SPOOL/$BIDR.orig"
B=$(ids)
msg mu-report-nb | as victim "$OB" -a nb -odq nobody@dest.example
expect_exit 0 mu-report-nb-evil-q as evil "$OB" -q
expect_grep mu-report-nb-tried '^C: MAIL FROM:<>' "$NB_LOG"
expect_grep mu-report-nb-whole-in-queue-dead-letter '^mu-report-nb body' "$SPOOL/dead.letter"
check mu-report-nb-not-evils test ! -e "$M/evil/dead.letter"
expect_eq mu-report-nb-nothing-left "$(comm -13 <(printf '%s\n' "$B") <(ids))" ""
kill "$NB_PID" 2>/dev/null
wait "$NB_PID" 2>/dev/null

# ---- 18.3 A stalled stderr holds no one's entry: evil runs -v -qI on
# each of victim's entries with stderr on a full pipe nobody reads
# (tests/fillpipe.py); root's run then finds none of them busy.
STALL=()
for i in 1 2 3 4 5; do
	B=$(ids)
	msg "mu-stall-$i" | as victim "$OB" -a fast -odq "st$i@stall.example"
	STALL+=("$(new_id "$B")")
done
SPIDS=()
for id in "${STALL[@]}"; do
	python3 "$(dirname "$0")/fillpipe.py" "$M/stall.$id.pid" setpriv \
		--reuid=evil --regid=evil --clear-groups env -i PATH=/usr/bin:/bin \
		HOME="$M/evil" "$OB" -v -qI "$id" >/dev/null 2>&1 &
	SPIDS+=($!)
done
# Until each of evil's runs is blocked in a write to descriptor 2.
blocked=0
for _ in $(seq 200); do
	blocked=0
	for id in "${STALL[@]}"; do
		p=$(cat "$M/stall.$id.pid" 2>/dev/null) || continue
		case $(cat "/proc/$p/syscall" 2>/dev/null) in
		"1 0x2 "*) blocked=$((blocked + 1)) ;;
		esac
	done
	[ "$blocked" -eq 5 ] && break
	sleep 0.1
done
expect_eq mu-stall-evil-blocked "$blocked" 5
expect_exit 0 mu-stall-root-q timeout 120 env -i PATH=/usr/bin:/bin \
	HOME="$M/roothome" "$OB" -v -qRstall.example
expect_grep mu-stall-root-none-busy ", 0 busy$" "$OUT"
n=0 left=0
for i in 1 2 3 4 5; do
	[ "$(got "$FAST_LOG" "mu-stall-$i")" = 1 ] && n=$((n + 1))
done
for id in "${STALL[@]}"; do [ -e "$SPOOL/$id.env" ] && left=$((left + 1)); done
expect_eq mu-stall-delivered-once "$n" 5
expect_eq mu-stall-none-left "$left" 0
for p in "${SPIDS[@]}"; do kill "$p" 2>/dev/null; done
for p in "${SPIDS[@]}"; do wait "$p" 2>/dev/null; done

# ---- 18.5 Root's run as systemd starts it: NoNewPrivileges=yes ignores
# the setgid bit, so it runs without the group and with outbox's umask
# 077; every file it rewrites or makes stays readable by the owners' runs.
B=$(ids)
msg mu-nnp | as victim "$OB" -a down -odq n1@dest.example
IDN=$(new_id "$B")
expect_exit 0 mu-nnp-root-q nnp "$OB" -q
check mu-nnp-root-tried grep -q '^attempts [1-9]' "$SPOOL/$IDN.env"
expect_eq mu-nnp-env-mode "$(stat -c '%a %G' "$SPOOL/$IDN.env")" "660 outbox"
expect_eq mu-nnp-msg-mode "$(stat -c '%a %U' "$SPOOL/$IDN.msg")" "660 victim"
expect_exit 0 mu-nnp-victim-bp as victim "$OB" -bp
expect_grep mu-nnp-victim-bp-lists "^$IDN " "$OUT"
expect_nogrep mu-nnp-victim-bp-readable "Permission denied" "$OUT"
# A system account's connection slots and state stay every user's.
expect_exit 0 mu-nnp-root-sends nnp "$OB" -a fast -odi n2@dest.example \
	< <(msg mu-nnp-root)
expect_exit 0 mu-nnp-victim-sends as victim "$OB" -a fast -odi \
	n3@dest.example < <(msg mu-nnp-after)
expect_eq mu-nnp-victim-delivered "$(got "$FAST_LOG" mu-nnp-after)" 1
expect_eq mu-nnp-no-private-files "$(find "$SPOOL" -type f ! -perm -040 | head -3)" ""
expect_exit 0 mu-nnp-victim-qD as victim "$OB" -qD "$IDN"
check mu-nnp-entry-gone test ! -e "$SPOOL/$IDN.env"

# The installed unit: this build's paths, the queue its only writable
# place, and confined (systemd-analyze security, issue 18.5: at most 4).
UNIT=$R/lib/systemd/system/outbox-queue.service
expect_nogrep mu-unit-paths-filled "@[A-Z]+@" "$UNIT"
expect_grep mu-unit-writes-the-queue "^ReadWritePaths=-$SPOOL\$" "$UNIT"
if ! command -v systemd-analyze >/dev/null; then
	skip mu-unit-score "no systemd-analyze (package systemd, tests/callers-deps.txt)"
elif systemd-analyze security --offline=yes "$UNIT" >"$M/unit.score" 2>&1; then
	score=$(sed -n 's/.*exposure level for .*: \([0-9.]*\) .*/\1/p' "$M/unit.score")
	check mu-unit-score-at-most-4 awk -v s="${score:-99}" 'BEGIN { exit !(s <= 4) }'
else
	fail mu-unit-score "systemd-analyze security --offline failed: $(head -c 300 "$M/unit.score")"
fi

# ---- 18.4 The quota counts everything a user puts in the spool; a user
# who fills his share is refused (75), root is still served.
# evil_clear: evil deletes his own entries.
evil_clear() {
	local f
	for f in $(find "$SPOOL" -maxdepth 1 -name '*.msg' -user evil); do
		as evil "$OB" -qD "$(basename "$f" .msg)" >/dev/null 2>&1
	done
}
# refill N FILE RCPT...: evil queues a small message to RCPT... up to N
# times, until one is refused: $rc is that exit status (else 0), $k the
# attempt, FILE its stderr.
refill() {
	local n=$1 out=$2; shift 2
	rc=0
	for k in $(seq "$n"); do
		msg mu-quota | as evil "$OB" -a down -odq "$@" >"$out" 2>&1
		rc=$?
		[ "$rc" -ne 0 ] && break
	done
}
evil_clear
# Envelope bytes: 999 recipients of 240 octets (240 KB) beside a tiny
# message, against queue_max_user_bytes 300k.
L=$(printf 'r%.0s' $(seq 60))
D=$(printf 'd%.0s' $(seq 55)).$(printf 'e%.0s' $(seq 55)).$(printf 'f%.0s' $(seq 55)).example
RCPTS=()
for i in $(seq 999); do RCPTS+=("$L$i@$D"); done
refill 4 "$M/qenv.out" "${RCPTS[@]}"
expect_eq mu-quota-env-tempfail "$rc" 75
expect_eq mu-quota-env-refused-second "$k" 2
expect_grep mu-quota-env-says-why "queue_max_user_bytes.*envelopes" "$M/qenv.out"
expect_exit 0 mu-quota-env-root-served as_root "$OB" -a down -odq r@dest.example \
	< <(msg mu-quota-root)
evil_clear
# Entries: queue_max_user_entries.
sed -i "/^queue_max_user_bytes/a queue_max_user_entries 3" "$R/etc/outbox.conf"
refill 5 "$M/qent.out" e@dest.example
expect_eq mu-quota-entries-tempfail "$rc" 75
expect_eq mu-quota-entries-fourth-refused "$k" 4
expect_grep mu-quota-entries-says-why "queue_max_user_entries" "$M/qent.out"
expect_exit 0 mu-quota-entries-root-served as_root "$OB" -a down -odq r@dest.example \
	< <(msg mu-quota-root2)
sed -i "/^queue_max_user_entries/d" "$R/etc/outbox.conf"
evil_clear
# TLS session files: the queue sweeps them, and their temporaries, after
# an hour; fresh ones stay.
for f in tls-0000000000000000000000000000aaaa tmp.tls-0000000000000000000000000000aaaa.77 \
    tls-0000000000000000000000000000bbbb tmp.tls-0000000000000000000000000000bbbb.77; do
	head -c 300 /dev/urandom >"$SPOOL/$f"
	chown evil:outbox "$SPOOL/$f"
	chmod 660 "$SPOOL/$f"
done
touch -d '2 hours ago' "$SPOOL"/*tls-*aaaa*
expect_exit 0 mu-tls-tmp-bp as victim "$OB" -bp
check mu-tls-tmp-old-swept test ! -e "$SPOOL/tls-0000000000000000000000000000aaaa"
check mu-tls-tmp-old-tmp-swept test ! -e "$SPOOL/tmp.tls-0000000000000000000000000000aaaa.77"
check mu-tls-tmp-fresh-kept test -e "$SPOOL/tls-0000000000000000000000000000bbbb" \
	-a -e "$SPOOL/tmp.tls-0000000000000000000000000000bbbb.77"
rm -f "$SPOOL"/*tls-*bbbb*
# Inodes: a spool of 1040 inodes; users leave queue_min_free_inodes (1000).
if mount -t tmpfs -o "nr_inodes=1040,size=256m,mode=2770,gid=$OGID" \
    mu-inodes "$SPOOL" 2>/dev/null; then
	refill 60 "$M/qino.out" i@dest.example
	expect_eq mu-quota-inodes-tempfail "$rc" 75
	expect_grep mu-quota-inodes-says-why "queue_min_free_inodes" "$M/qino.out"
	expect_exit 0 mu-quota-inodes-root-served as_root "$OB" -a down -odq \
		r@dest.example < <(msg mu-quota-root3)
	umount "$SPOOL"
else
	skip mu-quota-inodes "cannot mount a tmpfs here"
fi

for p in "$VSRV_PID" "$ESRV_PID" "$SYS_PID" "$FAST_PID" "$SLOW_PID"; do
	kill "$p" 2>/dev/null
	wait "$p" 2>/dev/null
done
true
