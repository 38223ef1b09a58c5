#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Crash points: outbox is killed (SIGKILL, strace's
# -e inject=SYSCALL:signal=SIGKILL:when=N) at the N-th sendto, unlinkat,
# renameat, linkat or fsync of a queue run that delivers one recipient and
# reports a refused one (the bounce is an entry of its own), of a submission
# tried at once, of a run of 32 entries over 4 sessions, of a submission
# queued first (-odq) and of -bs; then recovery
# runs (-q, and -q again once an abandoned submission is 10 minutes old).
# The ledger (tests/ledger.py) counts, over all trials:
#   lost        a (message, recipient) owed and never delivered: must be 0
#   duplicates  beyond a copy whose final reply was never read: must be 0
#   bounce excess / missing: the sender gets exactly one report per refusal
#   damaged     entries mailq calls damaged after recovery: must be 0
#   litter      files left in the queue after recovery: must be 0
# A submission killed before it returned 0 owes nothing (its caller kept
# the message); what it delivered counts for duplicates.
# Needs strace (tests/callers-deps.txt); skipped without it.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
: "${TESTROOT:=$(mktemp -d /tmp/outbox-crash.XXXXXX)}"
FS=$TESTROOT/crash
rm -rf "$FS"; mkdir -p "$FS"
SRV_PID=
trap 'fault_stop' EXIT

if ! command -v strace >/dev/null; then
	skip crash "strace is not installed (tests/callers-deps.txt)"
	exit 0
fi
# (a subshell that waits, so the shell says nothing about the kill)
( strace -f -o /dev/null -e trace=getpid -e inject=getpid:signal=SIGKILL:when=1 \
    python3 -c 'import os; os.getpid()'; exit $? ) >/dev/null 2>&1
if [ $? -ne 137 ]; then
	skip crash "strace cannot inject signals here (ptrace refused?)"
	exit 0
fi

WANT=$FS/want		# MID RCPT SENDER: must arrive exactly once
: >"$WANT"
REPORTS=$FS/reports	# SENDER: must get exactly one report
: >"$REPORTS"
SUBS=$FS/subs		# MID: submissions killed (at most one copy)
: >"$SUBS"
fault_start crash --concurrent --max-time 900 --io-timeout 20 --rcpt-refuse nobody
damaged=0 litter=0 trials=0 kills=0

# msg MID: a small message with that Message-ID in $FS/MID.msg.
msg() {
	printf '%s\n' 'From: <a@example.test>' 'To: c@example.test' \
		"Message-ID: <$1@example.test>" "Subject: crash $1" '' \
		"body of $1" >"$FS/$1.msg"
}

# killed SYSCALL N ARGS...: outbox -C $CFG ARGS under strace, killed at
# the N-th SYSCALL (or not at all when it makes fewer); sets RC.
killed() {
	local sc=$1 n=$2; shift 2
	trials=$((trials + 1))
	# LeakSanitizer cannot run under ptrace: leaks are the plain runs' to find.
	( ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
	  timeout 60 strace -f -o /dev/null -e trace="$sc" \
		-e inject="$sc":signal=SIGKILL:when="$n" "$OUTBOX" -C "$CFG" "$@" \
		>"$FS/last.out" 2>"$FS/last.err"; exit $? ) 2>/dev/null
	RC=$?
	[ "$RC" -eq 137 ] && kills=$((kills + 1))
	return 0
}

# recover NAME: runs until nothing is owed; then every file is made two
# hours old (the time an abandoned submission, 10 minutes, and litter, an
# hour, wait) and a run sweeps; counts damaged entries and what is left.
recover() {
	local i f
	for i in 1 2 3; do
		"$OUTBOX" -C "$CFG" -q >/dev/null 2>>"$FS/$1.rec" || true
		ls "$QD" 2>/dev/null | grep -q '\.env$' || break
	done
	for f in "$QD"/*; do
		[ -e "$f" ] && touch -d "@$(( $(date +%s) - 7200 ))" "$f"
	done
	"$OUTBOX" -C "$CFG" -q >/dev/null 2>>"$FS/$1.rec" || true
	"$OUTBOX" -C "$CFG" -bp >"$FS/$1.bp" 2>&1
	if grep -q 'damaged\|set aside' "$FS/$1.bp" || ls "$QD" 2>/dev/null | grep -q '\.bad$'; then
		damaged=$((damaged + 1))
		echo "note: $1: damaged: $(head -c 300 "$FS/$1.bp")"
	fi
	f=$(ls -A "$QD" 2>/dev/null | grep -Ev '^(tls-|\.slots$|\.state$)' | tr '\n' ' ')
	if [ -n "$f" ]; then
		litter=$((litter + 1))
		echo "note: $1: left in the queue: $f"
	fi
}

# each_trial KIND BODY SYSCALL:N...: for each SYSCALL and each n of 1..N,
# one trial t=KIND-SYSCALL-n, sender s=$t@example.test: its message
# $FS/$t.msg and configuration (log $FS/$t.olog), then BODY SYSCALL n,
# which runs outbox killed there and notes what is owed, then recovery.
each_trial() {
	local kind=$1 body=$2 sc n; shift 2
	for sc in "$@"; do
		for n in $(seq "${sc#*:}"); do
			t=$kind-${sc%:*}-$n s=$t@example.test
			msg "$t"
			mkcfg "$t" "$PORT" "log $FS/$t.olog"
			"$body" "${sc%:*}" "$n"
			recover "$t"
		done
	done
}

# 1. A queue run: c gets the message, nobody is refused, the sender
# gets a report.
run_q() {
	"$OUTBOX" -C "$CFG" -odq -f "$s" c@example.test nobody@example.test <"$FS/$t.msg"
	echo "$t@example.test c@example.test $s" >>"$WANT"
	echo "$s" >>"$REPORTS"
	killed "$1" "$2" -q </dev/null
}
MKCFG_LINES=("sessions 1")
each_trial run run_q sendto:12 unlinkat:6 renameat:6 linkat:3 fsync:10
MKCFG_LINES=()

# 2. A submission tried at once.
sub_now() {
	killed "$1" "$2" -i -f "$s" c@example.test <"$FS/$t.msg"
	if [ "$RC" -eq 0 ]; then
		echo "$t@example.test c@example.test $s" >>"$WANT"
	else
		echo "$t@example.test" >>"$SUBS"
	fi
}
each_trial sub sub_now sendto:6 unlinkat:3 fsync:2 linkat:2

# 3. 32 entries over 4 sessions (one process each).
for sc in sendto:3 sendto:9 unlinkat:2 unlinkat:7 fsync:4; do
	n=${sc#*:} t=multi-${sc%:*}-${sc#*:} s=multi@example.test
	mkcfg "$t" "$PORT" "log $FS/$t.olog" "sessions 4"
	for i in $(seq 32); do
		msg "$t-$i"
		"$OUTBOX" -C "$CFG" -odq -f "$s" c@example.test <"$FS/$t-$i.msg"
		echo "$t-$i@example.test c@example.test $s" >>"$WANT"
	done
	killed "${sc%:*}" "$n" -q </dev/null
	recover "$t"
done

# 4. A submission queued first (-odq), and -bs: owed only when it said
# so (exit 0; -bs: the 250 to the end of the data).
sub_odq() {
	killed "$1" "$2" -odq -f "$s" c@example.test <"$FS/$t.msg"
	if [ "$RC" -eq 0 ]; then
		echo "$t@example.test c@example.test $s" >>"$WANT"
	fi
}
sub_bs() {
	{ printf 'EHLO crash.test\r\nMAIL FROM:<%s>\r\nRCPT TO:<c@example.test>\r\nDATA\r\n' "$s"
	  sed 's/$/\r/' "$FS/$t.msg"; printf '.\r\nQUIT\r\n'; } >"$FS/$t.bs"
	killed "$1" "$2" -bs <"$FS/$t.bs"
	if [ "$(grep -c '^250 ' "$FS/last.out")" -ge 4 ]; then
		echo "$t@example.test c@example.test $s" >>"$WANT"
	else
		echo "$t@example.test" >>"$SUBS"
	fi
}
each_trial odq sub_odq fsync:3 renameat:2 linkat:1
each_trial bs sub_bs sendto:5 unlinkat:2 fsync:2

# 5. What a power cut can leave: names without data. An entry whose files
# came back empty (8a939ad published before syncing) is damaged: mailq and
# --json show it; after an hour a run sets it aside as ID.bad, with a log
# line, and it is never "left alone" on every run. An empty ID.sub (a
# submission in flight) is removed after 10 minutes, with a log line.
mkcfg power "$PORT" "log $FS/power.olog"
mkdir -p "$QD"
old=$(( $(date +%s) - 7200 ))
: >"$QD/6B0000000001.env"; : >"$QD/6B0000000001.msg"
: >"$QD/6B0000000002.sub"; : >"$QD/6B0000000002.msg"
expect_exit 0 power-bp "$OUTBOX" -C "$CFG" -bp
expect_grep power-bp-damaged '6B0000000001.env: damaged \(line 0: no version line\)' "$OUT"
expect_exit 0 power-json "$OUTBOX" -C "$CFG" -bp --json
expect_grep power-json-corrupt '"queue_name": "corrupt", "queue_id": "6B0000000001"' "$OUT"
expect_exit 0 power-young-q "$OUTBOX" -C "$CFG" -q
check power-young-kept test -e "$QD/6B0000000001.env" -a -e "$QD/6B0000000002.sub"
touch -d "@$old" "$QD"/*
expect_exit 0 power-old-q "$OUTBOX" -C "$CFG" -q
check power-set-aside test -e "$QD/6B0000000001.bad" -a ! -e "$QD/6B0000000001.env"
expect_grep power-set-aside-logged '6B0000000001: .*damaged.*set aside as 6B0000000001.bad' "$FS/power.olog"
check power-sub-removed test ! -e "$QD/6B0000000002.sub" -a ! -e "$QD/6B0000000002.msg"
expect_grep power-sub-logged '6B0000000002: removed an abandoned submission' "$FS/power.olog"
expect_exit 0 power-again-q "$OUTBOX" -C "$CFG" -q
expect_nogrep power-quiet-after 'damaged' "$ERR"
expect_exit 0 power-bp-bad "$OUTBOX" -C "$CFG" -bp
expect_grep power-bp-set-aside '6B0000000001.bad: set aside' "$OUT"
expect_exit 0 power-json-bad "$OUTBOX" -C "$CFG" -bp --json
expect_grep power-json-bad '"queue_name": "corrupt", "queue_id": "6B0000000001"' "$OUT"

# The ledger reads the log once every session has ended there.
for _ in $(seq 100); do
	[ "$(grep -c '^E: session ' "$LOG")" = "$(grep -c '^E: session-end ' "$LOG")" ] && break
	sleep 0.05
done
fault_stop
python3 "$here/ledger.py" "$WANT" "$LOG" >"$FS/ledger.out"
tail -n1 "$FS/ledger.out"
val() { tail -n1 "$FS/ledger.out" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
python3 "$here/faultsmtp.py" --tally "$LOG" >"$FS/tally"
# Reports: per sender, copies taken (accepted) and allowed (unreplied or
# unconfirmed); excess beyond one plus the allowed, missing when none.
read -r bexcess bmissing < <(awk -v reps="$REPORTS" '
	BEGIN { while ((getline l < reps) > 0) want[l] = 1 }
	$1 != "rcpt-refused" && ($2 in want) && $1 !~ /^run-/ {
		split($3, a, "="); split($4, u, "="); split($5, c, "=")
		acc[$2] += a[2]; ok[$2] += u[2] + c[2]
	}
	END {
		for (s in want) {
			if (acc[s] == 0) miss++
			else if (acc[s] - 1 > ok[s]) ex += acc[s] - 1 - ok[s]
		}
		print ex + 0, miss + 0
	}' "$FS/tally")
# A killed submission: at most one copy (nothing sends it again).
subdup=$(awk -v subs="$SUBS" '
	BEGIN { while ((getline l < subs) > 0) s[l] = 1 }
	($1 in s) { split($3, a, "="); split($4, u, "="); if (a[2] + u[2] > 1) d++ }
	END { print d + 0 }' "$FS/tally")
echo "note: crash points: $trials trials, $kills killed; lost=$(val lost)" \
	"duplicates=$(val duplicates) (allowed, final reply unread: $(val allowed))" \
	"excess=$(val excess) bounce-excess=$bexcess bounce-missing=$bmissing" \
	"killed-submission-dups=$subdup damaged=$damaged litter=$litter"
expect_eq crash-killed-some "$([ "$kills" -gt 10 ] && echo yes)" yes
expect_eq crash-lost "$(val lost)" 0
expect_eq crash-dup-reply-read "$(val excess)" 0
expect_eq crash-wrong-sender "$(val wrong_sender)" 0
expect_eq crash-bounce-excess "$bexcess" 0
expect_eq crash-bounce-missing "$bmissing" 0
expect_eq crash-killed-submission-dups "$subdup" 0
expect_eq crash-damaged "$damaged" 0
expect_eq crash-litter "$litter" 0
