#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Providers' rules (limits.c) against tests/provsmtp.py, which enforces
# Microsoft 365's, Gmail's and Amazon SES's documented per-mailbox limits:
# a backlog run overlapping submissions opens no more connections than the
# mailbox allows (no 432); a refused login is tried once over many runs and
# submissions, each message kept and the fix said; a throttling reply
# pauses the account without charging any entry a retry; the caller never
# waits on the backlog or on a server that never answers; max_rcpt and
# RFC 9422 LIMITS split the recipients; the rate paces.
# Numbers go out as "note:" lines. Run via tests/run.sh, or alone:
#   export TESTROOT=$(mktemp -d); export RESULTS=$TESTROOT/results OUTBOX=$PWD/outbox
#   bash tests/t_providers.sh
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
: "${TESTROOT:=$(mktemp -d /tmp/outbox-providers.XXXXXX)}"
FS=$TESTROOT/providers
rm -rf "$FS"; mkdir -p "$FS"
SRV_PID=
trap 'prov_stop' EXIT

# prov_start NAME ARGS...: tests/provsmtp.py in the background (lib.sh's
# fault_start); sets PORT, LOG ($FS/NAME.log) and SRV_PID.
prov_start() {
	prov_stop
	: >"$FS/$1.log"
	FAULT_SERVER=provsmtp.py fault_start "$@" --max-time 300
}

prov_stop() {
	[ -n "${SRV_PID:-}" ] || return 0
	kill "$SRV_PID" 2>/dev/null
	wait "$SRV_PID" 2>/dev/null
	SRV_PID=
}

# pcfg NAME [LINE...]: mkcfg for the provider server with AUTH over
# loopback plaintext (the server has no TLS).
pcfg() {
	local name=$1; shift
	mkcfg "$name" "$PORT" "user alice" "password ${PW:-secret}" \
		"auth_plaintext on" "log $FS/$name.outbox.log" "$@"
}

# msg N: a small message with a Message-ID of its own.
msg() { printf 'Subject: provider test %s\nMessage-ID: <p%s.%s@outbox.test>\n\nbody %s\n' "$1" "$1" "$$" "$1"; }

# count WORD: lines of $LOG that begin with WORD.
count() { grep -c "^$1\\b" "$LOG"; }

# enqueue N FIRST: N messages queued (-odq), numbered from FIRST.
enqueue() {
	local i
	for ((i = $2; i < $2 + $1; i++)); do
		msg "$i" | "$OUTBOX" -C "$CFG" -odq bob@example.org || return 1
	done
}

# ---- 1. A backlog run and cron-like submissions share the mailbox's cap.
prov_start conn --provider microsoft365 --rate 0 --delay 0.01
pcfg conn
enqueue 200 1
check prov-conn-queued test "$(ls "$QD" | grep -c '\.env$')" -eq 200
"$OUTBOX" -C "$CFG" -q --due >"$FS/conn.run.out" 2>&1 &
run=$!
pids=()
for i in $(seq 1001 1010); do
	sleep 0.1
	msg "$i" | "$OUTBOX" -C "$CFG" bob@example.org 2>>"$FS/conn.sub.err" &
	pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
wait "$run"
expect_eq prov-conn-submissions-exit "$rc" 0
expect_eq prov-conn-submissions-quiet "$(cat "$FS/conn.sub.err")" ""
n432=$(count 432)
expect_eq prov-conn-no-432 "$n432" 0
# What a submission queued for want of a slot goes in the next run.
"$OUTBOX" -C "$CFG" -q --due >/dev/null 2>&1
wait_detached prov-conn-flush-ends "$CFG"
"$OUTBOX" -C "$CFG" -q --due >/dev/null 2>&1
expect_eq prov-conn-all-delivered "$(count msg)" 210
echo "note: 200 queued + 10 submissions, connections default: $n432 × 432, most sessions at once $(grep '^concurrent' "$LOG" | awk '{print $2}' | sort -n | tail -1)"

# ---- 2. A refused login is tried once, over many runs and submissions.
prov_start auth --provider microsoft365 --lockout 5
PW=wrong pcfg auth
sub_rc=0
for run in 1 2 3 4 5 6; do
	for j in 1 2; do
		msg "$run$j" | "$OUTBOX" -C "$CFG" bob@example.org \
			2>>"$FS/auth.sub.err" || sub_rc=$?
	done
	"$OUTBOX" -C "$CFG" -q --due >>"$FS/auth.run.out" 2>&1
done
nauth=$(( $(count auth-fail) + $(count auth-locked) ))
expect_eq prov-auth-one-attempt "$nauth" 1
expect_eq prov-auth-no-lockout "$(count auth-locked)" 0
expect_eq prov-auth-submissions-exit "$sub_rc" 0
expect_eq prov-auth-kept "$(ls "$QD" | grep -c '\.env$')" 12
expect_grep prov-auth-fix-said 'refused the login.*auth_failure_cache_time' "$FS/auth.sub.err"
"$OUTBOX" -C "$CFG" -bp >"$FS/auth.bp" 2>&1
expect_grep prov-auth-mailq-says 'refused the login' "$FS/auth.bp"
# --check still logs in when asked.
"$OUTBOX" -C "$CFG" --check >/dev/null 2>&1
expect_eq prov-auth-check-tries "$(count auth-fail)" 2
# A fixed password is a new configuration: the queue goes at once.
PW=secret pcfg auth
"$OUTBOX" -C "$CFG" -q --due >/dev/null 2>&1
expect_eq prov-auth-fixed-delivered "$(count msg)" 12
echo "note: wrong password, 6 timer runs and 12 submissions: $nauth AUTH attempt(s)"

# ---- 3. Throttling pauses the account; no entry is charged a retry.
prov_start thr --provider gmail --throttle 5
pcfg thr
enqueue 20 1
"$OUTBOX" -C "$CFG" -q --due >/dev/null 2>&1
check prov-thr-said-421 test "$(count 421)" -eq 1
"$OUTBOX" -C "$CFG" -q --due >"$FS/thr.run2" 2>&1
expect_grep prov-thr-paused 'paused until' "$FS/thr.run2"
before=$(count msg)
msg 99 | "$OUTBOX" -C "$CFG" bob@example.org 2>"$FS/thr.sub.err"
expect_eq prov-thr-submission-waits "$(count msg)" "$before"
expect_eq prov-thr-submission-quiet "$(cat "$FS/thr.sub.err")" ""
"$OUTBOX" -C "$CFG" -bp >"$FS/thr.bp" 2>&1
expect_grep prov-thr-mailq-says 'paused until' "$FS/thr.bp"
expect_eq prov-thr-uncharged "$(cat "$QD"/*.env | grep -c '^attempts [1-9]')" 0
# outbox -q (not --due) is the administrator's "now".
"$OUTBOX" -C "$CFG" -q >/dev/null 2>&1
expect_eq prov-thr-manual-run "$(count msg)" 21

# ---- 4. The caller never waits on the backlog: 300 due entries.
prov_start backlog --provider microsoft365 --rate 0 --delay 0.02
pcfg backlog
enqueue 300 1
t0=$(date +%s%N)
msg 999 | timeout 60 "$OUTBOX" -C "$CFG" bob@example.org 2>"$FS/backlog.err"
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
at_return=$(count msg)
expect_eq prov-backlog-exit "$rc" 0
# The flush of the others was not waited for; its own message went at once
# (under valgrind its attempt may outlast submit_timeout and go on detached).
check prov-backlog-not-waited test "$at_return" -lt 101
[ -z "${OUTBOX_WRAPPER:-}" ] &&
	check prov-backlog-own-at-once test "$at_return" -ge 1
for _ in $(seq 300); do [ "$(count msg)" -ge 101 ] && break; sleep 0.1; done
expect_eq prov-backlog-flushed-later "$(count msg)" 101
echo "note: one submission with 300 due entries: the caller waited $ms ms ($at_return message(s) sent by then)"

# ---- 5. A smarthost that accepts and never answers: submit_timeout.
prov_start silent --silent
pcfg silent "timeout 60"
t0=$(date +%s%N)
msg 1 | timeout 30 "$OUTBOX" -C "$CFG" bob@example.org 2>"$FS/silent.err"
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
expect_eq prov-silent-exit "$rc" 0
expect_eq prov-silent-quiet "$(cat "$FS/silent.err")" ""
expect_eq prov-silent-queued "$(ls "$QD" | grep -c '\.env$')" 1
"$OUTBOX" -C "$CFG" -bp >"$FS/silent.bp" 2>&1
expect_grep prov-silent-mailq-says 'still being tried after submit_timeout' "$FS/silent.bp"
echo "note: a smarthost that never answers (timeout 60): the caller waited $ms ms"
prov_stop	# the attempt in the background ends; the entry waits
for _ in $(seq 100); do
	grep -qs 'still being' "$QD"/*.env || break
	sleep 0.1
done
expect_eq prov-silent-kept "$(ls "$QD" | grep -c '\.env$')" 1

# ---- 6. provider gmail: 100 recipients a transaction, no 452.
prov_start gmail --provider gmail
pcfg gmail "provider gmail"
rcpts=()
for i in $(seq 250); do rcpts+=("r$i@example.org"); done
msg 1 | "$OUTBOX" -C "$CFG" "${rcpts[@]}" 2>"$FS/gmail.err"
expect_eq prov-gmail-exit "$?" 0
expect_eq prov-gmail-no-452 "$(count rcpt-refused)" 0
expect_eq prov-gmail-split "$(grep '^msg' "$LOG" | awk '{print $3}' | tr '\n' ' ')" "100 100 50 "
expect_eq prov-gmail-one-session "$(count connect)" 1

# ---- 7. RFC 9422 LIMITS: RCPTMAX splits, MAILMAX ends a session.
prov_start limits --limits "RCPTMAX=5 MAILMAX=2"
pcfg limits
rcpts=()
for i in $(seq 12); do rcpts+=("r$i@example.org"); done
msg 1 | "$OUTBOX" -C "$CFG" "${rcpts[@]}" 2>"$FS/limits.err"
expect_eq prov-limits-exit "$?" 0
# MAILMAX=2: two transactions (5 and 5), the 2 left in a new session.
"$OUTBOX" -C "$CFG" -q >/dev/null 2>&1
expect_eq prov-limits-split "$(grep '^msg' "$LOG" | awk '{print $3}' | tr '\n' ' ')" "5 5 2 "
expect_eq prov-limits-sessions "$(count connect)" 2

# ---- 8. rate: Amazon SES takes 3 messages a second and drops the excess.
prov_start ses --provider ses --rate 3 --window 1
pcfg ses "rate 0"
enqueue 12 1
"$OUTBOX" -C "$CFG" -q >/dev/null 2>&1
n454=$(count 454)
check prov-rate-unpaced-throttled test "$n454" -gt 0
prov_start ses2 --provider ses --rate 3 --window 1
pcfg ses2 "rate 150"
enqueue 12 1
t0=$(date +%s%N)
"$OUTBOX" -C "$CFG" -q >/dev/null 2>&1
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
expect_eq prov-rate-no-454 "$(count 454)" 0
expect_eq prov-rate-all-sent "$(count msg)" 12
echo "note: SES at 3 a second: rate 0 met $n454 × 454; rate 150 sent 12 in $ms ms, 0 × 454"

# ---- 9. REQUIRETLS (RFC 8689): -O requiretls=yes, as Postfix 3.11.
fault_certs
EXT="PIPELINING,8BITMIME,ENHANCEDSTATUSCODES,STARTTLS"
for offer in yes no; do
	ext=$EXT
	[ "$offer" = yes ] && ext="$EXT,REQUIRETLS"
	prov_stop
	fault_start "rtls-$offer" --ext "$ext" "${TLSARGS[@]}" --max-time 60
	SRV_PID_F=$SRV_PID
	mkcfg "rtls-$offer" "$PORT" "tls starttls" "tls_ca_file $CA"
	msg 1 | "$OUTBOX" -C "$CFG" -O requiretls=yes bob@example.org \
		2>"$FS/rtls-$offer.err"
	rc=$?
	kill "$SRV_PID_F" 2>/dev/null; wait "$SRV_PID_F" 2>/dev/null
	if [ "$offer" = yes ]; then
		expect_eq prov-requiretls-offered-exit "$rc" 0
		expect_grep prov-requiretls-param '^C: MAIL FROM:<[^>]*>.* REQUIRETLS' "$LOG"
	else
		expect_eq prov-requiretls-missing-exit "$rc" 69
		expect_nogrep prov-requiretls-missing-no-mail '^C: MAIL FROM' "$LOG"
		expect_grep prov-requiretls-missing-says 'REQUIRETLS' "$FS/rtls-$offer.err"
		check prov-requiretls-missing-kept test -s "$DEAD"
	fi
done
SRV_PID=
# A message that must wait keeps its REQUIRETLS in the queue.
mkcfg rtls-queued "$(free_port)" "tls starttls" "tls_ca_file $CA"
msg 2 | "$OUTBOX" -C "$CFG" -O requiretls=yes bob@example.org 2>/dev/null
expect_grep prov-requiretls-queued '^requiretls 1$' "$(ls "$QD"/*.env | head -1)"
