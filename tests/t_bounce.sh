#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Reports (bounces) are queue entries of their own, and a refused report
# never loses the message: the smarthost refuses a message for good, then
# refuses its bounce (MAIL FROM:<> 550) for good too: the message, whole,
# is in dead.letter, the queue is empty, the log says so. A sender refused
# at MAIL gets no report attempt. A partial refusal: the others get it
# once, the sender one report. A queued report belongs to its message's
# owner and keeps the message whole beside it (ID.orig).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
: "${TESTROOT:=$(mktemp -d /tmp/outbox-bounce.XXXXXX)}"
FS=$TESTROOT/bounce
rm -rf "$FS"; mkdir -p "$FS"
SRV_PID=
trap 'fault_stop' EXIT

# msg MID: a message with a body line only dead.letter can give back.
msg() {
	printf '%s\n' 'From: <a@example.test>' 'To: b@example.test' \
		"Message-ID: <$1@example.test>" "Subject: bounce test $1" '' \
		"body of $1: only dead.letter can give this back" >"$FS/$1.msg"
}
entries() { ls "$QD" 2>/dev/null | grep -c '\.env$'; }
litter() { ls -A "$QD" 2>/dev/null | grep -Ev '^(tls-|\.slots$|\.state$)' | tr '\n' ' '; }

# queue_case NAME ARGS...: the message $FS/NAME.msg, queued by
# `outbox ARGS` (the check NAME-queued) while no server answers; the
# configuration NAME logs to $FS/NAME.log.
queue_case() {
	local name=$1; shift
	msg "$name"
	mkcfg "$name" "$(free_port)" "log $FS/$name.log"
	ob "$name-queued" 0 "$@" <"$FS/$name.msg"
}

# run_case NAME FAULTSMTP-ARGS...: a faultsmtp with those arguments, and a
# queue run of NAME's queue to it (the check NAME-run); the server is left
# running.
run_case() {
	local name=$1; shift
	fault_start "$name" --max-time 60 "$@"
	mkcfg "$name" "$PORT" "log $FS/$name.log"
	ob "$name-run" 0 -q
}

# 1. Refused at RCPT, and its bounce refused at MAIL FROM:<>.
queue_case b1 -i -f a@example.test nobody@example.test
expect_eq b1-one-entry "$(entries)" 1
run_case b1 --scenario mail-null-550 --rcpt-refuse nobody
fault_stop
expect_grep b1-rcpt-refused '^C: RCPT TO:<nobody@example.test>' "$LOG"
expect_grep b1-report-tried '^C: MAIL FROM:<>' "$LOG"
expect_grep b1-body-in-dead-letter 'body of b1: only dead.letter' "$DEAD"
expect_grep b1-whole-in-dead-letter '^Message-ID: <b1@example.test>' "$DEAD"
expect_eq b1-queue-empty "$(litter)" ""
expect_grep b1-logged 'failed for good .*kept in dead.letter' "$FS/b1.log"
ob b1-run-again 0 -q
expect_nogrep b1-no-damaged 'damaged' "$ERR"
expect_exit 0 b1-bp "$OUTBOX" -C "$CFG" -bp
expect_eq b1-bp-empty "$(cat "$OUT")" "Mail queue is empty"

# 2. The sender itself refused (MAIL 550): no report is tried, the
# message goes whole to dead.letter.
queue_case b2 -i -f a@example.test c@example.test
run_case b2 --scenario mail-550
fault_stop
expect_grep b2-mail-tried '^C: MAIL FROM:<a@example.test>' "$LOG"
expect_nogrep b2-no-report '^C: MAIL FROM:<>' "$LOG"
expect_grep b2-body-in-dead-letter 'body of b2: only dead.letter' "$DEAD"
expect_eq b2-queue-empty "$(litter)" ""

# 3. Partial refusal in a queue run: c gets it once, the sender one
# report over the same session, nothing stays queued.
queue_case b3 -i -f a@example.test c@example.test nobody@example.test
run_case b3 --rcpt-refuse nobody
fault_stop
expect_eq b3-delivered-once "$(grep -c '^E: accepted .*mid=b3@example.test' "$LOG")" 1
expect_eq b3-one-report "$(grep -c '^C: MAIL FROM:<>' "$LOG")" 1
expect_eq b3-queue-empty "$(litter)" ""
check b3-no-dead-letter test ! -s "$DEAD"
expect_grep b3-summary '1 bounced' "$OUT"

# 4. A report that cannot go now is queued: an entry of its own, owned by
# its message's owner, its message whole beside it (ID.orig, the same
# file), and mailq lists it; with the null sender refused it ends in
# dead.letter, not in the runner's.
queue_case b4 -i -f a@example.test nobody@example.test
oid=$(ls "$QD" | sed -n 's/\.env$//p')
owner=$(sed -n 's/^owner //p' "$QD/$oid.env")
sed -i "s/^created .*/created $(( $(date +%s) - 6 * 86400 ))/" "$QD/$oid.env"
ob b4-expire 0 -q
bid=$(ls "$QD" | sed -n 's/\.env$//p')
check b4-report-is-new test -n "$bid" -a "$bid" != "$oid"
expect_eq b4-report-owner "$(sed -n 's/^owner //p' "$QD/$bid.env" 2>/dev/null)" "$owner"
expect_eq b4-report-of "$(sed -n 's/^orig //p' "$QD/$bid.env" 2>/dev/null)" "$oid"
check b4-orig-kept test -s "$QD/$bid.orig"
expect_grep b4-orig-whole 'body of b4: only dead.letter' "$QD/$bid.orig"
expect_eq b4-original-gone "$(ls "$QD/$oid".* 2>/dev/null)" ""
expect_exit 0 b4-json "$OUTBOX" -C "$CFG" -bp --json
expect_grep b4-json-report "\"report_of\": \"$oid\"" "$OUT"
run_case b4 --scenario mail-null-550
fault_stop
expect_grep b4-body-in-dead-letter 'body of b4: only dead.letter' "$DEAD"
expect_eq b4-queue-empty "$(litter)" ""

# 5. dead.letter cannot be written: the report stays queued, held, and
# mailq (and --json) say so; no run tries it again.
MKCFG_LINES=("dead_letter $FS/no/such/dir/dead")
queue_case b5 -i -f a@example.test nobody@example.test
run_case b5 --scenario mail-null-550 --rcpt-refuse nobody
MKCFG_LINES=()
expect_exit 0 b5-bp "$OUTBOX" -C "$CFG" -bp
expect_grep b5-bp-held '^[0-9A-F]{12}!' "$OUT"
expect_grep b5-bp-why 'held: the report failed for good' "$OUT"
expect_exit 0 b5-json "$OUTBOX" -C "$CFG" -bp --json
expect_grep b5-json-hold '"queue_name": "hold"' "$OUT"
n=$(grep -c '^C: MAIL FROM:<>' "$LOG")
ob b5-run-again 0 -q
fault_stop
expect_eq b5-not-tried-again "$(grep -c '^C: MAIL FROM:<>' "$LOG")" "$n"
bid=$(ls "$QD" | sed -n 's/\.env$//p')
expect_grep b5-still-whole 'body of b5: only dead.letter' "$QD/$bid.orig"
expect_grep b5-logged 'held in the queue' "$FS/b5.log"

# 6. Refused by policy at the end of data (5.7.60, Microsoft 365's
# SendAsDenied for a sender the account may not use): no report from <>
# carries the user's header past the smarthost; dead.letter has it whole.
queue_case b6 -i -f victim@example.test c@example.test
run_case b6 --eod-fault "b6=550 5.7.60 faultsmtp: not allowed to send as victim"
fault_stop
expect_grep b6-refused '^E: refused .*mid=b6@example.test' "$LOG"
expect_nogrep b6-no-report '^C: MAIL FROM:<>' "$LOG"
expect_grep b6-body-in-dead-letter 'body of b6: only dead.letter' "$DEAD"
expect_eq b6-queue-empty "$(litter)" ""

# 7. mailq --json says "active" while a process holds an entry's claim
# (flock on ID.msg), and reading that takes no lock of its own.
queue_case b7 -odq -f a@example.test c@example.test
id=$(ls "$QD" | sed -n 's/\.env$//p')
flock "$QD/$id.msg" sleep 2 &
hold=$!
for _ in $(seq 40); do
	"$OUTBOX" -C "$CFG" -bp --json >"$FS/b7.json" 2>&1
	grep -q '"queue_name": "active"' "$FS/b7.json" && break
	sleep 0.05
done
expect_grep b7-json-active "\"queue_name\": \"active\", \"queue_id\": \"$id\"" "$FS/b7.json"
wait "$hold" 2>/dev/null
expect_exit 0 b7-json-after "$OUTBOX" -C "$CFG" -bp --json
expect_grep b7-json-deferred "\"queue_name\": \"deferred\", \"queue_id\": \"$id\"" "$OUT"
