#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Queue runs against servers that break pipelined batches (issue 9), played
# by tests/faultsmtp.py (--concurrent, as real servers are): a 451 inside a
# batch, Exim's 503 after a refused only recipient, Dovecot's strictness
# about transactions pipelined past an end of data, a recipient limit,
# parallel sessions, the bounded flush after a submission, and a seeded
# chaos run with SIGKILLs of `outbox -q`. Every case checks, per Message-ID
# and recipient, through the server's E: lines and tests/ledger.py: taken
# exactly once, under its own envelope sender; the chaos run: nothing lost,
# duplicates only where the end-of-data reply can never have been read.
# Everything is seeded and bounded; nothing asserts a time.
# Needs: python3, openssl. Run via tests/run.sh, or alone:
#   export TESTROOT=$(mktemp -d) RESULTS=$TESTROOT/results OUTBOX=$PWD/outbox
#   bash tests/t_chaos.sh
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
: "${TESTROOT:=$(mktemp -d /tmp/outbox-chaos.XXXXXX)}"
FS=$TESTROOT/chaos
rm -rf "$FS"; mkdir -p "$FS/msgs"
# Queueing (-odq) needs no network: the plain binary does it, also under
# check-valgrind, where $OUTBOX is the valgrind wrapper for the runs.
OB_PLAIN=$here/../outbox
SRV_PID=
BG=
T_START=$(date +%s)
trap 'srv_stop; [ -n "$BG" ] && kill -9 "$BG" 2>/dev/null' EXIT

# --- helpers -------------------------------------------------------------------

# start_srv (lib.sh): a concurrent faultsmtp, once the last one is stopped.
SRV_STOP=srv_stop SRV_ARGS=(--concurrent --max-time 200 --io-timeout 20)

# srv_stop: once every session has ended (each has written its transcript;
# 3 s at most), stops the server.
srv_stop() {
	[ -n "${SRV_PID:-}" ] || return 0
	for _ in $(seq 100); do
		[ "$(grep -c '^E: session ' "$LOG")" -eq "$(grep -c '^E: session-end ' "$LOG")" ] && break
		sleep 0.03
	done
	kill "$SRV_PID" 2>/dev/null
	wait "$SRV_PID" 2>/dev/null
	SRV_PID=
}

# Each case $name writes its configuration with lib.sh's mkcfg (a LINE
# replaces the default with its key; rewriting keeps the queue) and keeps
# its ledger of what must arrive in $FS/$name.want.

# enqueue MID SENDER RCPT...: queues (-odq) a small message with Message-ID
# <MID@chaos.test> from SENDER, and owes it to each RCPT (in $FS/$name.want).
enqueue() {
	local mid=$1 from=$2 r m; shift 2
	m=$FS/msgs/$mid.eml
	printf '%s\n' "From: <$from>" "To: $(IFS=,; echo "$*")" \
		'Date: Wed, 02 Dec 2026 00:00:00 +0000' "Message-ID: <$mid@chaos.test>" \
		"Subject: chaos $mid" '' "Message $mid from $from." >"$m"
	"$OB_PLAIN" -C "$CFG" -odq -i -f "$from" "$@" <"$m" 2>>"$FS/enqueue.err" ||
		echo "enqueue $mid: exit $?" >>"$FS/enqueue.err"
	for r in "$@"; do echo "$mid@chaos.test $r $from" >>"$FS/$name.want"; done
}

# drain NAME MAX: `outbox -q` until the queue is empty, at most MAX runs;
# sets RUNS. The exit codes go to $FS/NAME.rcs.
drain() {
	local name=$1 max=$2
	RUNS=0
	while [ "$(qn)" -gt 0 ] && [ "$RUNS" -lt "$max" ]; do
		RUNS=$((RUNS + 1))
		timeout 120 "$OUTBOX" -C "$CFG" -q >>"$FS/$name.out" 2>>"$FS/$name.err"
		echo "$?" >>"$FS/$name.rcs"
	done
}

# ledger NAME: tests/ledger.py on $FS/NAME.want and $LOG; sets SUM (its figures) and
# prints the first problems as notes.
ledger() {
	python3 "$here/ledger.py" "$FS/$1.want" "$LOG" >"$FS/$1.ledger" 2>&1
	SUM=$(tail -n1 "$FS/$1.ledger")
	grep -v '^pairs=' "$FS/$1.ledger" | head -8 | sed "s/^/note: $1: /"
}
# fig KEY: one figure of $SUM.
fig() { echo "$SUM" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# expect_ledger NAME KEY=VALUE...: each figure as given.
expect_ledger() {
	local name=$1 kv; shift
	for kv in "$@"; do
		expect_eq "chaos-$name-${kv%%=*}" "$(fig "${kv%%=*}")" "${kv#*=}"
	done
}

# accepted [MIDPART]: how many end-of-data 250s the server sent (for MIDs
# containing MIDPART).
accepted() { grep -c "^E: accepted .*mid=[^ ]*${1:-}" "$LOG"; }
# maxsess: the most sessions the server had open at once.
maxsess() { sed -n 's/^E: session .* max=\([0-9]*\)$/\1/p' "$LOG" | sort -n | tail -n1; }

note_case() {	# NAME: the figures, and what the queue runs said
	echo "note: $1: runs=${RUNS:-0} $SUM (at $(( $(date +%s) - T_START )) s)"
	[ -s "$FS/$1.err" ] && echo "note: $1: stderr: $(sort "$FS/$1.err" | uniq -c | sort -rn | head -3 | tr '\n' '|')"
	return 0
}

if ! fault_certs; then
	fail chaos-certs "openssl could not make the test CA/certificate"
fi

# --- 1. a 451 inside a batch ----------------------------------------------------
# 20 entries, distinct senders; the 5th end of data gets 451. The later
# transactions of the batch must neither be lost nor sent again.

name=batch-451
start_srv "$name" --eod-fault "#5=451 4.3.0 faultsmtp: try this one later"
mkcfg "$name" "$PORT"
for k in $(seq -w 1 20); do enqueue "c1-$k" "s$k@chaos.test" r@chaos.test; done
expect_eq "chaos-$name-queued" "$(qn)" 20
drain "$name" 5
expect_eq "chaos-$name-empty" "$(qn)" 0
srv_stop
ledger "$name"
note_case "$name"
expect_ledger "$name" once=20 duplicates=0 wrong_sender=0 lost=0 extra=0
expect_grep "chaos-$name-451-given" '^E: refused .* n=5 .*code=451' "$LOG"

# --- 2. Exim: the only recipient refused, the transaction left open -------------
# Three messages go to nobody@ only: 550 to the RCPT, 503 to the BDAT, and
# Exim keeps the MAIL: a pipelined next MAIL gets 503 but that message's RCPT
# and BDAT get 250, under the refused one's sender. None of the three is the
# run's first (which goes alone, before the session is known).

name=exim-503
start_srv "$name" --scenario exim --rcpt-refuse nobody@
mkcfg "$name" "$PORT"
enqueue c2-01 s01@chaos.test r@chaos.test
for k in $(seq -w 2 10); do
	case $k in 02 | 05 | 08) r=nobody@chaos.test ;; *) r=r@chaos.test ;; esac
	enqueue "c2-$k" "s$k@chaos.test" "$r"
done
drain "$name" 5
expect_eq "chaos-$name-empty" "$(qn)" 0
srv_stop
ledger "$name"
note_case "$name"
expect_eq "chaos-$name-refused-not-delivered" "$(accepted 'c2-0[258]@')" 0
expect_ledger "$name" wrong_sender=0 extra=0 once=7 refused=3 duplicates=0 lost=0

# --- 3. Dovecot: no transaction before the reply to the previous end of data ----

name=strict
start_srv "$name" --scenario strict
mkcfg "$name" "$PORT"
for k in $(seq -w 1 10); do enqueue "c3-$k" "s$k@chaos.test" r@chaos.test; done
timeout 120 "$OUTBOX" -C "$CFG" -q >"$FS/$name.out" 2>"$FS/$name.err"
expect_eq "chaos-$name-first-run-exit" "$?" 0
expect_eq "chaos-$name-no-violation" "$(grep -c '^VIOLATION: ' "$LOG" 2>/dev/null)" 0
expect_eq "chaos-$name-first-run-empty" "$(qn)" 0
drain "$name" 5	# whatever the first run left
srv_stop
ledger "$name"
note_case "$name"
expect_ledger "$name" once=10 duplicates=0 lost=0
echo "note: $name: VIOLATION lines: $(grep -c '^VIOLATION: ' "$LOG"), sessions: $(grep -c '^E: session ' "$LOG")"

# --- 4. 452 too many recipients: the rest in further transactions, same session ---

name=rcpt-452
start_srv "$name" --rcpt-max 10
mkcfg "$name" "$PORT"
mapfile -t rcpts < <(for k in $(seq -w 1 50); do echo "r$k@chaos.test"; done)
enqueue c4-50 s@chaos.test "${rcpts[@]}"
timeout 120 "$OUTBOX" -C "$CFG" -q >"$FS/$name.out" 2>"$FS/$name.err"
expect_eq "chaos-$name-exit" "$?" 0
expect_eq "chaos-$name-one-run-empty" "$(qn)" 0
srv_stop
RUNS=1
ledger "$name"
note_case "$name"
expect_ledger "$name" once=50 duplicates=0 lost=0
expect_eq "chaos-$name-five-transactions" "$(accepted c4-50@)" 5
expect_eq "chaos-$name-one-connection" \
	"$(sed -n 's/^E: accepted s=\([0-9]*\) .*mid=c4-50@.*/\1/p' "$LOG" | sort -u | wc -l)" 1
echo "note: $name: transactions taken: $(accepted c4-50@), 452s: $(grep -c '^E: rcpt .*code=452' "$LOG")"

# --- 5..7: the big cases (not under valgrind: hundreds of runs of it) -------------

if [ -n "${OUTBOX_WRAPPER:-}" ]; then
	echo "note: t_chaos.sh: parallel sessions, bounded flush and the chaos run skipped under $OUTBOX_WRAPPER (hundreds of messages; the plain and ASan runs cover them)"
	exit 0
fi

# --- 5. parallel sessions per account ----------------------------------------------

for v in 4:40 1:16; do
	n=${v%:*} count=${v#*:} name=sessions-${v%:*}
	start_srv "$name" --eod-delay 0.1	# every transaction takes a while
	mkcfg "$name" "$PORT" "sessions $n"
	for k in $(seq -w 1 "$count"); do enqueue "c5-$n-$k" "s$k@chaos.test" r@chaos.test; done
	timeout 120 "$OUTBOX" -C "$CFG" -q >"$FS/$name.out" 2>"$FS/$name.err"
	expect_eq "chaos-$name-exit" "$?" 0
	expect_eq "chaos-$name-empty" "$(qn)" 0
	drain "$name" 3
	srv_stop
	m=$(maxsess)
	RUNS=1
	ledger "$name"
	note_case "$name"
	echo "note: $name: at most ${m:-0} sessions at once"
	if [ "$n" -gt 1 ]; then
		if [ "${m:-0}" -gt 1 ] && [ "${m:-0}" -le "$n" ]; then pass "chaos-$name-concurrent"
		else fail "chaos-$name-concurrent" "at most ${m:-0} sessions at once; want 2..$n"; fi
	else
		expect_eq "chaos-$name-one-at-a-time" "${m:-0}" 1
	fi
	expect_ledger "$name" "once=$count" duplicates=0 lost=0 wrong_sender=0
done

# --- 6. the flush after a submission is bounded ----------------------------------
# 300 due entries; one ordinary submission takes at most 100 of them along,
# in a detached process once its own message is delivered.

name=flush
mkcfg "$name" 9	# no connection: -odq only queues
for k in $(seq -w 1 300); do enqueue "c6-$k" "s$k@chaos.test" r@chaos.test; done
expect_eq "chaos-$name-queued" "$(qn)" 300
start_srv "$name"
mkcfg "$name" "$PORT"
m=$FS/msgs/c6-own.eml
printf '%s\n' 'From: <own@chaos.test>' 'Message-ID: <c6-own@chaos.test>' \
	'Subject: chaos own' '' 'The submission itself.' >"$m"
echo "c6-own@chaos.test r@chaos.test own@chaos.test" >>"$FS/$name.want"
expect_exit 0 "chaos-$name-submission-exit" timeout 120 "$OUTBOX" -C "$CFG" -i -f own@chaos.test r@chaos.test <"$m"
expect_eq "chaos-$name-own-first" "$(accepted c6-own@)" 1
# The submission hands the backlog to a detached process (caller.c): what
# it takes along is counted once that process is over.
wait_detached "chaos-$name-flush-ends" "$CFG"
took=$(accepted)
left=$(qn)
listed=$("$OUTBOX" -C "$CFG" -bp 2>/dev/null | grep -cE '^[0-9A-F]{12} ')
echo "note: $name: the submission and its flush: $took messages taken by the server, $left entries queued ($listed listed by -bp)"
expect_eq "chaos-$name-own-delivered" "$(accepted c6-own@)" 1
if [ "$took" -le 101 ]; then pass "chaos-$name-bounded"
else fail "chaos-$name-bounded" "the server had $took messages when the submission returned; want <= 101"; fi
expect_eq "chaos-$name-rest-queued" "$left" "$((301 - took))"
expect_eq "chaos-$name-rest-listed" "$listed" "$left"
drain "$name" 3
expect_eq "chaos-$name-then-empty" "$(qn)" 0
srv_stop
ledger "$name"
note_case "$name"
expect_ledger "$name" once=301 duplicates=0 lost=0 wrong_sender=0

# --- 7. seeded chaos ----------------------------------------------------------------
# 300 messages (every 4th to two recipients); each end of data may get 451,
# 554, a drop after the dot, a drop before it, a stall; each RCPT 451 or 550;
# and the first `outbox -q` runs are killed (SIGKILL; 6 at most), each once
# the server has taken a seeded number (2..41) of messages more. Over
# STARTTLS with AUTH, as a submission server is. -q again until the queue is empty (at most 30 runs).

name=chaos
SEED=20261202
# (every reply to an end of data 10 ms late, so that a kill lands mid-run)
start_srv "$name" "${TLSARGS[@]}" --eod-delay 0.01 --seed "$SEED" --p-eod-451 0.03 \
	--p-eod-554 0.01 --p-eod-drop 0.01 --p-eod-cut 0.01 --p-eod-stall 0.003 \
	--p-rcpt-451 0.02 --p-rcpt-550 0.005
mkcfg "$name" "$PORT" "timeout 2" "tls starttls" "tls_ca_file $CA" "user alice" "password secret"
for k in $(seq -w 1 300); do
	if [ $((10#$k % 4)) -eq 0 ]; then
		enqueue "c7-$k" "s$k@chaos.test" "a$k@chaos.test" "b$k@chaos.test"
	else
		enqueue "c7-$k" "s$k@chaos.test" "a$k@chaos.test"
	fi
done
expect_eq "chaos-$name-queued" "$(qn)" 300
RANDOM=$SEED
RUNS=0 kills=0
while [ "$(qn)" -gt 0 ] && [ "$RUNS" -lt 30 ]; do
	RUNS=$((RUNS + 1))
	target=0
	[ "$kills" -lt 6 ] && target=$(( $(accepted) + 2 + RANDOM % 40 ))
	"$OUTBOX" -C "$CFG" -q >>"$FS/$name.out" 2>>"$FS/$name.err" &
	BG=$!
	for _ in $(seq 6000); do	# 60 s at most
		kill -0 "$BG" 2>/dev/null || break
		if [ "$target" -gt 0 ] && [ "$(accepted)" -ge "$target" ]; then
			kill -9 "$BG" 2>/dev/null
			break
		fi
		sleep 0.01
	done
	kill -9 "$BG" 2>/dev/null
	wait "$BG" 2>/dev/null
	rc=$?
	[ "$rc" -eq 137 ] && kills=$((kills + 1))
	echo "run $RUNS: exit $rc, target $target, taken $(accepted), queued $(qn)" >>"$FS/$name.runs"
	BG=
done
expect_eq "chaos-$name-empty" "$(qn)" 0
srv_stop
ledger "$name"
echo "note: chaos (seed $SEED): 300 messages, $(wc -l <"$FS/$name.want") pairs, $RUNS runs, $kills killed;" \
	"delivered=$(fig delivered) refused=$(fig refused) lost=$(fig lost)" \
	"duplicates=$(fig duplicates) allowed=$(fig allowed) (unreplied=$(fig unreplied)" \
	"unconfirmed=$(fig unconfirmed)) excess=$(fig excess) wrong_sender=$(fig wrong_sender)" \
	"faults: eod-451=$(grep -c '^E: refused .*code=451' "$LOG") eod-554=$(grep -c '^E: refused .*code=554' "$LOG")" \
	"drop=$(grep -c '^E: unreplied .*how=drop' "$LOG") stall=$(grep -c '^E: unreplied .*how=stall' "$LOG")" \
	"cut=$(grep -c '^E: cut ' "$LOG") rcpt-451=$(grep -c '^E: rcpt .*code=451' "$LOG")" \
	"rcpt-550=$(grep -c '^E: rcpt .*code=550' "$LOG") sessions=$(grep -c '^E: session ' "$LOG")"
expect_ledger "$name" lost=0 excess=0 wrong_sender=0 extra=0
d=$(fig duplicates) a=$(fig allowed)
if [ "${d:-1}" -le "${a:-0}" ]; then pass "chaos-$name-duplicates-bounded"
else fail "chaos-$name-duplicates-bounded" "duplicates=$d > allowed=$a (replies never read)"; fi
if [ "$(fig pairs)" -eq "$(( $(fig delivered) + $(fig refused) ))" ]; then pass "chaos-$name-all-settled"
else fail "chaos-$name-all-settled" "$SUM"; fi
echo "note: t_chaos.sh took $(( $(date +%s) - T_START )) s"
srv_stop
