#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# The log in Postfix's layout (issue 21): outbox/pickup, outbox/qmgr and
# one outbox/smtp line per recipient with to=, relay= (or relay=none),
# delay=, delays=, dsn= and status=; a log file's lines carry an RFC 3339
# timestamp and the host name; -L sets the tag; server text is printable.
# Debian's pflogsumm reads the file and counts what happened.
# Needs python3; pflogsumm and unshare -rm (the syslog case) when allowed,
# else those checks are skipped. Run via tests/run.sh, or alone:
#   export TESTROOT=$(mktemp -d) RESULTS=$TESTROOT/results OUTBOX=$PWD/outbox
#   bash tests/t_logs.sh
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
: "${TESTROOT:=$(mktemp -d /tmp/outbox-logs.XXXXXX)}"
FS=$TESTROOT/logs
rm -rf "$FS"; mkdir -p "$FS"
SRV_PID=
trap 'fault_stop' EXIT

MSG=$FS/msg
printf 'Subject: logs\n\nhello\n' >"$MSG"
DOWN=$(free_port)
ID='[0-9A-F]{12}'
TS='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}[+-][0-9]{2}:[0-9]{2} [^ ]+ '

# nth N: the queue ID of the N-th message picked up in $L.
nth() { sed -En "s/.* outbox\/pickup\[[0-9]+\]: ($ID): .*/\1/p" "$L" | sed -n "${1}p"; }

fault_start logs --rcpt-refuse bad --max-time 120
SRV=$PORT
L=$FS/mail.log
mkcfg up "$SRV" "log $L"
UP=$CFG
mkcfg down "$DOWN" "log $L" "queue_dir $FS/up.q"	# the same queue
DOWNCFG=$CFG

# 1. Two recipients, both sent: a line each.
expect_exit 0 logs-sent "$OUTBOX" -C "$UP" -f a@example.test b@example.test c@example.test <"$MSG"
I1=$(nth 1)
expect_grep logs-pickup "${TS}outbox/pickup\[[0-9]+\]: $I1: uid=$(id -u) from=<a@example\.test>\$" "$L"
expect_grep logs-qmgr "${TS}outbox/qmgr\[[0-9]+\]: $I1: from=<a@example\.test>, size=[0-9]+, nrcpt=2 \(queue active\)\$" "$L"
for r in b c; do
	expect_grep "logs-sent-$r" "${TS}outbox/smtp\[[0-9]+\]: $I1: to=<$r@example\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$SRV, delay=[0-9.]+, delays=[0-9.]+/0/[0-9.]+/[0-9.]+, dsn=2\.0\.0, status=sent \(250 2\.0\.0 .*\)\$" "$L"
done
expect_eq logs-one-line-per-recipient "$(grep -c ": $I1: to=<" "$L")" 2
expect_grep logs-removed "outbox/qmgr\[[0-9]+\]: $I1: removed\$" "$L"

# 2. One refused for good, one sent.
expect_exit 67 logs-bounced "$OUTBOX" -C "$UP" -f a@example.test bad@example.test d@example.test <"$MSG"
I2=$(nth 2)
expect_grep logs-bounced-line "outbox/smtp\[[0-9]+\]: $I2: to=<bad@example\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$SRV, delay=[0-9.]+, delays=[0-9./]+, dsn=5\.1\.1, status=bounced \(550 5\.1\.1 .*\)\$" "$L"
expect_grep logs-bounced-other-sent "outbox/smtp\[[0-9]+\]: $I2: to=<d@example\.test>, .*, dsn=2\.0\.0, status=sent " "$L"

# 3. No server: deferred with relay=none, kept; the queue run sends it.
expect_exit 0 logs-deferred "$OUTBOX" -C "$DOWNCFG" -f a@example.test e@example.test <"$MSG"
I3=$(nth 3)
expect_grep logs-deferred-line "outbox/smtp\[[0-9]+\]: $I3: to=<e@example\.test>, relay=none, delay=[0-9.]+, delays=[0-9./]+, dsn=4\.4\.1, status=deferred \(.*Connection refused\)\$" "$L"
expect_nogrep logs-deferred-not-removed ": $I3: removed" "$L"
sed -i "s/^port .*/port $SRV/" "$DOWNCFG"	# the server is back
expect_exit 0 logs-queue-run "$OUTBOX" -C "$DOWNCFG" -q
expect_grep logs-queue-run-sent "outbox/smtp\[[0-9]+\]: $I3: to=<e@example\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$SRV, .*status=sent " "$L"
expect_grep logs-queue-run-removed "outbox/qmgr\[[0-9]+\]: $I3: removed\$" "$L"

# 4. Past queue_lifetime (the entry's "created" put 6 days back): expired,
# returned to the sender, removed.
L3=$FS/expired.log
mkcfg old "$DOWN" "log $L3"
expect_exit 0 logs-old-queued "$OUTBOX" -C "$CFG" -odq -f a@example.test f@example.test <"$MSG"
I4=$(sed -En "s/.* outbox\/pickup\[[0-9]+\]: ($ID): .*/\1/p" "$L3")
sed -i "s/^created .*/created $(( $(date +%s) - 6 * 86400 ))/" "$QD/${I4:-NOID}.env"
expect_exit 0 logs-old-run "$OUTBOX" -C "$CFG" -q
expect_grep logs-expired "outbox/qmgr\[[0-9]+\]: $I4: from=<a@example\.test>, status=expired, returned to sender\$" "$L3"
expect_grep logs-expired-removed "outbox/qmgr\[[0-9]+\]: $I4: removed\$" "$L3"

# Debian's pflogsumm counts them: 3 received, 4 delivered (b c d e), 1
# deferred, 1 bounced.
if command -v pflogsumm >/dev/null; then
	pflogsumm --syslog-name=outbox "$L" >"$FS/pflogsumm.out" 2>&1
	for c in '3 +received' '4 +delivered' '1 +deferred' '1 +bounced'; do
		expect_grep "logs-pflogsumm-${c##* +}" "^ +$c" "$FS/pflogsumm.out"
	done
else
	skip logs-pflogsumm "pflogsumm is not installed (tests/callers-deps.txt)"
fi

# syslog (the default): facility mail, the same lines. In a private mount
# namespace, /dev/log is a socket of the test's (tmpfs over /dev).
cat >"$FS/syslogd.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
open(sys.argv[1] + ".ready", "w").close()
s.settimeout(20)
with open(sys.argv[1], "wb") as f:
    for _ in range(int(sys.argv[2])):   # the lines expected, or the timeout
        f.write(s.recv(65536) + b"\n")
        f.flush()
PY
mkcfg sys "$SRV"
SYS=$FS/syslog.out
if unshare -rm true 2>/dev/null; then
	unshare -rm sh -c 'mount -t tmpfs none /dev && : >/dev/null || exit 1
		python3 "$1/syslogd.py" "$2" 4 & p=$!
		for i in $(seq 200); do [ -e "$2.ready" ] && break; sleep 0.05; done
		"$3" -C "$4" -f a@example.test s@example.test <"$5"; echo $? >"$2.rc"
		wait $p' sh "$FS" "$SYS" "$OUTBOX" "$CFG" "$MSG"
	expect_eq logs-syslog-exit "$(cat "$SYS.rc" 2>/dev/null)" 0
	# <22>: facility mail (2 * 8), severity info (6).
	expect_grep logs-syslog-pickup '^<22>.* outbox/pickup\[[0-9]+\]: [0-9A-F]{12}: uid=' "$SYS"
	expect_grep logs-syslog-smtp "^<22>.* outbox/smtp\[[0-9]+\]: [0-9A-F]{12}: to=<s@example\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$SRV, .*status=sent " "$SYS"
	expect_grep logs-syslog-removed '^<22>.* outbox/qmgr\[[0-9]+\]: [0-9A-F]{12}: removed$' "$SYS"
else
	skip logs-syslog "unshare -rm is not allowed here"
fi

# -L names the log's tag; a server's control characters are not written.
L2=$FS/tag.log
mkcfg tag "$SRV" "log $L2"
expect_exit 0 logs-tag "$OUTBOX" -C "$CFG" -L mytag -f a@example.test b@example.test <"$MSG"
expect_grep logs-tag-line "${TS}mytag/smtp\[[0-9]+\]: $ID: to=<b@example\.test>, " "$L2"
fault_stop
fault_start esc --once --reply $'DOT=250 2.0.0 ok \x1b]0;owned\x07 \xc2\x9b2J'
mkcfg esc "$PORT" "log $L2"
expect_exit 0 logs-esc "$OUTBOX" -C "$CFG" -f a@example.test b@example.test <"$MSG"
expect_grep logs-esc-shown 'status=sent \(250 2\.0\.0 ok \?\]0;owned\? \?2J\)$' "$L2"
if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f\x80-\x9f]' "$L2"; then
	fail logs-esc-printable "raw control characters in $L2"
else
	pass logs-esc-printable
fi
fault_stop
