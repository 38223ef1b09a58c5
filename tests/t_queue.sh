#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# The queue: outbox against tests/faultsmtp.py on 127.0.0.1. Every temporary
# failure leaves the message queued (exit 0), permanent ones never are, and
# `outbox -q` later delivers each queued message exactly once, over one
# session. Also -bp, --due, -qI/-qR/-qS/-qD, -odq/-odb, queue_lifetime
# (bounce or dead_letter), kill -9 in mid-delivery, concurrent runs.
# A ledger of every (Message-ID, recipient) that must arrive is checked at the
# end against what the servers acknowledged and what is still queued:
# "note: lost=N duplicates=N".
# Needs: python3, openssl. Run via tests/run.sh, or alone:
#   export TESTROOT=$(mktemp -d); export RESULTS=$TESTROOT/results OUTBOX=$PWD/outbox
#   bash tests/t_queue.sh
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
: "${TESTROOT:=$(mktemp -d /tmp/outbox-queue.XXXXXX)}"
FS=$TESTROOT/queue
CA=$FS/pki/ca.pem	# made by fault_certs (lib.sh)
rm -rf "$FS"; mkdir -p "$FS"
SERVER=$here/faultsmtp.py
LEDGER=$FS/ledger		# "MID RCPT" lines: must arrive exactly once
: >"$LEDGER"
SRV_PID=
ALL_PIDS=()
T_START=$(date +%s)
trap 'stop_srv; for p in "${ALL_PIDS[@]}"; do kill "$p" 2>/dev/null; done' EXIT

# --- helpers -------------------------------------------------------------------

# ob (lib.sh): the exit code is the check q-NAME-exit; $FS/NAME.{out,err}.
OB_PREFIX=q- OB_SUFFIX=-exit OB_TIMEOUT=60 OB_DIR=$FS

# tests/qtool.py reads faultsmtp logs and queue directories (tx, queue,
# ledger: see its head).
QT=(python3 "$here/qtool.py")


# start_srv (lib.sh): faultsmtp serving sessions one after the other (add
# --once for one session).
SRV_ARGS=(--max-time 90 --io-timeout 40)

stop_srv() { fault_stop; }

# kill_srv: stop a server that serves many sessions, at once.
kill_srv() {
	[ -n "$SRV_PID" ] || return 0
	kill "$SRV_PID" 2>/dev/null
	wait "$SRV_PID" 2>/dev/null
	SRV_PID=
}

TLS_OK=("tls starttls" "tls_ca_file $CA" "user alice" "password secret")
TLS_BAD=("tls starttls" "tls_ca_file $CA" "user alice" "password wrong")

# mkmsg MID: writes $FS/MID.msg (the t_fault.sh test message: dot lines, a
# CRLF line, no final newline) and $FS/MID.want (what a server must see);
# sets MSG and WANT.
mkmsg() {
	local mid=$1
	MSG=$FS/$mid.msg WANT=$FS/$mid.want
	printf '%s\n' 'From: Alice <a@example.test>' 'To: b@example.test' \
		'Date: Mon, 01 Jan 2024 00:00:00 +0000' "Message-ID: <$mid@example.test>" \
		"Subject: queue test $mid" '' 'Hello.' '.leading dot' '..two dots' '.' \
		'From the middle' >"$MSG"
	printf 'crlf line\r\n\nlast line without newline' >>"$MSG"
	printf '%s\r\n' 'From: Alice <a@example.test>' 'To: b@example.test' \
		'Date: Mon, 01 Jan 2024 00:00:00 +0000' "Message-ID: <$mid@example.test>" \
		"Subject: queue test $mid" '' 'Hello.' '.leading dot' '..two dots' '.' \
		'From the middle' 'crlf line' '' 'last line without newline' >"$WANT"
}

# owe MID RCPT...: the ledger: MID must reach each RCPT exactly once.
owe() {
	local mid=$1 r; shift
	for r in "$@"; do echo "$mid@example.test $r" >>"$LEDGER"; done
}

# qids: the IDs in $QD, oldest first.
qids() {
	local f
	for f in "$QD"/*.env; do
		[ -e "$f" ] || continue
		f=${f##*/}
		case $f in tmp.*) continue ;; esac
		echo "${f%.env}"
	done
}

# envset ID KEY VALUE: edits one line of an entry's envelope (the test's
# stand-in for time passing).
envset() {
	sed -i "s/^$2 .*/$2 $3/" "$QD/$1.env"
}

# expect_queued NAME RCPT...: -bp lists exactly one entry (sender
# a@example.test unless $SENDER is set), for exactly these recipients, with
# a non-empty error; the queue directory holds its .env and .msg and nothing else.
expect_queued() {
	local name=$1 bp=$FS/$1.bp rc got want n
	shift
	"$OUTBOX" -C "$CFG" -bp >"$bp" 2>&1; rc=$?
	expect_eq "q-$name-bp-exit" "$rc" 0
	n=$(grep -cE '^[0-9A-F]{12} +[0-9]+ ' "$bp")
	expect_eq "q-$name-bp-one-entry" "$n" 1
	expect_grep "q-$name-bp-header" '^-Queue ID- ' "$bp"
	expect_grep "q-$name-bp-sender" "^[0-9A-F]{12} +[0-9]+ .*  ${SENDER:-a@example\.test}\$" "$bp"
	expect_grep "q-$name-bp-error" '^\([0-9]+ attempts?: [^ )].*\)$' "$bp"
	expect_grep "q-$name-bp-footer" '^-- [0-9]+ Kbytes in 1 Request\.$' "$bp"
	got=$(grep -E '^ {41}[^ ]' "$bp" | sed 's/^ *//' | sort | tr '\n' ' ')
	want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
	expect_eq "q-$name-bp-rcpts" "$got" "$want"
	# tls-*: the TLS session cache (tests/t_tls.sh), not a queue entry.
	got=$(cd "$QD" && ls -A | grep -Ev '^(tls-|\.slots$|\.state$)' | sed -E 's/^[0-9A-F]{12}\./ID./' | sort | tr '
' ' ')
	# A report keeps its message whole beside it (ID.orig).
	case ${SENDER:-} in MAILER-DAEMON) got=${got/ID.orig /} ;; esac
	expect_eq "q-$name-dir" "$got" "ID.env ID.msg "
}

# expect_empty NAME: -bp says the queue is empty and its directory is.
expect_empty() {
	local name=$1 bp=$FS/$1.bp-empty
	"$OUTBOX" -C "$CFG" -bp >"$bp" 2>&1
	expect_eq "q-$name-bp-empty" "$(cat "$bp")" "Mail queue is empty"
	expect_eq "q-$name-dir-empty" "$(ls -A "$QD" 2>/dev/null | grep -Ev '^(tls-|\.slots$|\.state$)' | tr '\n' ' ')" ""
}

# sessions LOG / ehlos LOG / rsets LOG / mails LOG: counts in a server log.
sessions() { grep -c '^# session' "$1"; }
ehlos() { grep -cE '^C: (EHLO|HELO) ' "$1"; }
rsets() { grep -c '^C: RSET' "$1"; }
mails() { grep -c '^C: MAIL ' "$1"; }
# tx LOG: the transactions (see qtool.py); acked LOG: how many were acknowledged.
tx() { "${QT[@]}" tx "$1"; }
acked() { tx "$1" | awk '$2 == 1' | wc -l; }

# expect_one_tx NAME LOG MID RCPTS [WANTFILE]: LOG has exactly one
# transaction, acknowledged, from a@example.test to RCPTS (comma list, in
# order), for MID, and its data is WANTFILE byte for byte.
expect_one_tx() {
	local name=$1 log=$2 mid=$3 rc=$4 want=${5:-}
	local t
	t=$(tx "$log" | tr '\n' '|')
	expect_eq "q-$name-one-transaction" "$t" "1 1 a@example.test $rc $mid@example.test|"
	if [ -n "$want" ]; then
		if cmp -s "$log.data.1" "$want"; then pass "q-$name-data"
		else fail "q-$name-data" "$log.data.1 differs from $want: $(cmp "$log.data.1" "$want" 2>&1 | head -1)"; fi
	fi
}

if ! fault_certs; then
	fail q-certs "openssl could not make the test CA/certificate"
fi

# --- 1. every temporary failure queues; -q to a healthy server delivers once ----

for sc in connect-refused greeting-421 ehlo-421 mail-451 rcpt-451 data-451 dot-451 \
	data-354-then-drop dot-drop dot-stall starttls-454 auth-535; do
	name=t-$sc mid=q1-$sc
	mkmsg "$mid"
	rcpts=(b@example.test)
	[ "$sc" = rcpt-451 ] && rcpts=(b@example.test c@example.test)
	owe "$mid" "${rcpts[@]}"
	srvtls=() cfgbad=() cfgok=()
	case $sc in
	starttls-454) srvtls=("${TLSARGS[@]}") cfgbad=("${TLS_OK[@]}") cfgok=("${TLS_OK[@]}") ;;
	auth-535) srvtls=("${TLSARGS[@]}") cfgbad=("${TLS_BAD[@]}") cfgok=("${TLS_OK[@]}") ;;
	esac
	if [ "$sc" = connect-refused ]; then
		PORT=$(free_port)
	else
		start_srv "$name" --once --scenario "$sc" "${srvtls[@]}"
	fi
	mkcfg "$name" "$PORT" "${cfgbad[@]}"
	ob "$name" 0 -i -f a@example.test "${rcpts[@]}" <"$MSG"
	# Safely queued is quiet on a non-terminal stderr (DESIGN: quiet when
	# safe); what needs an administrator (AUTH refused) is said anyway.
	if [ "$sc" = auth-535 ]; then
		expect_grep "q-$name-said-queued" '^outbox: queued as [0-9A-F]{12}; outbox -q will retry$' "$ERR"
	else
		expect_nogrep "q-$name-quiet" . "$ERR"
	fi
	cp "$ERR" "$FS/$name.err"
	stop_srv
	expect_queued "$name" "${rcpts[@]}"
	echo "note: $sc: $(grep -E '^\(' "$FS/$name.bp")"
	id=$(qids)
	[ "$sc" = auth-535 ] && expect_grep "q-$name-id-said" "queued as $id;" "$FS/$name.err"

	# The same queue, the config pointed at a healthy server.
	start_srv "$name-retry" "${srvtls[@]}"
	mkcfg "$name" "$PORT" "${cfgok[@]}"
	ob "$name-retry" 0 -q
	expect_eq "q-$name-retry-summary" "$(cat "$OUT")" "outbox: 1 sent, 0 deferred, 0 bounced, 0 busy"
	kill_srv
	expect_eq "q-$name-retry-one-session" "$(sessions "$LOG")" 1
	expect_one_tx "$name-retry" "$LOG" "$mid" "$(IFS=,; echo "${rcpts[*]}")" "$WANT"
	[ ${#srvtls[@]} -gt 0 ] && expect_grep "q-$name-retry-tls" '^T: established' "$LOG"
	expect_empty "$name-retry"
	case $sc in dot-drop | dot-stall)
		# The first server got the data but never said 250: outbox cannot
		# know, so a second copy there is legitimate (counted in the
		# ledger as an "unacknowledged copy", not as a duplicate).
		expect_eq "q-$name-first-server-unacked" \
			"$(tx "$FS/$name.log" | awk '{print $2}' | tr '\n' ' ')" "0 " ;;
	connect-refused) ;;
	*)
		expect_eq "q-$name-first-server-nothing" "$(acked "$FS/$name.log")" 0 ;;
	esac
done

# --- 2. partial refusals ---------------------------------------------------------

# One 250, one 550: delivered to the first, 67, nothing queued, dead_letter kept.
name=t-rcpt-partial mid=q2-partial
mkmsg "$mid"; owe "$mid" b@example.test
start_srv "$name" --once --scenario rcpt-partial
mkcfg "$name" "$PORT"
ob "$name" 67 -i -f a@example.test b@example.test c@example.test <"$MSG"
stop_srv
expect_nogrep "q-$name-not-queued" 'queued as' "$ERR"
expect_empty "$name"
expect_one_tx "$name" "$LOG" "$mid" b@example.test "$WANT"
expect_grep "q-$name-dead-letter" "^Message-ID: <$mid@example.test>" "$DEAD"

# One 250, one 451: delivered to the first, the second queued, exit 0.
name=t-rcpt-mixed mid=q2-mixed
mkmsg "$mid"; owe "$mid" b@example.test c@example.test
start_srv "$name" --once --scenario rcpt-mixed-451
mkcfg "$name" "$PORT"
ob "$name" 0 -v -i -f a@example.test b@example.test c@example.test <"$MSG"
stop_srv
# With -v, a queued message is announced.
expect_grep "q-$name-said-queued" '^outbox: queued as [0-9A-F]{12}; outbox -q will retry$' "$ERR"
expect_one_tx "$name" "$LOG" "$mid" b@example.test "$WANT"
expect_queued "$name" c@example.test
expect_eq "q-$name-env-rcpt" "$(grep '^rcpt ' "$QD"/*.env)" "rcpt c@example.test"
start_srv "$name-retry"
mkcfg "$name" "$PORT"
ob "$name-retry" 0 -q
kill_srv
expect_one_tx "$name-retry" "$LOG" "$mid" c@example.test "$WANT"
expect_nogrep "q-$name-retry-not-b-again" '^C: RCPT TO:<b@' "$LOG"
expect_empty "$name-retry"

# --- 3. queue off: 75, nothing kept --------------------------------------------

name=t-queue-off
mkmsg q3-off
mkcfg "$name" "$(free_port)" "queue off"
ob "$name" 75 -i -f a@example.test b@example.test <"$MSG"
expect_nogrep "q-$name-not-queued" 'queued as' "$ERR"
expect_eq "q-$name-no-queue-dir" "$(ls -A "$QD" 2>/dev/null | tr '\n' ' ')" ""

# --- 4. -odq and -odb ----------------------------------------------------------

# -odq: no connection at all; -q then delivers.
name=t-odq mid=q4-odq
mkmsg "$mid"; owe "$mid" b@example.test
start_srv "$name"
mkcfg "$name" "$PORT"
ob "$name" 0 -odq -i -f a@example.test b@example.test <"$MSG"
expect_queued "$name" b@example.test
ob "$name-run" 0 -q
expect_eq "q-$name-run-summary" "$(cat "$OUT")" "outbox: 1 sent, 0 deferred, 0 bounced, 0 busy"
kill_srv
# Counted once the server is gone: the -q run's session is the only one.
expect_eq "q-$name-no-connection" "$(sessions "$LOG")" 1
expect_one_tx "$name-run" "$LOG" "$mid" b@example.test "$WANT"
expect_empty "$name-run"

# -odb: back at once although the greeting takes 3 s; the entry is there
# meanwhile, and the detached child delivers it.
name=t-odb mid=q4-odb
mkmsg "$mid"; owe "$mid" b@example.test
start_srv "$name" --scenario slow-greeting
mkcfg "$name" "$PORT" "timeout 10"
t0=$(date +%s%N)
ob "$name" 0 -odb -i -f a@example.test b@example.test <"$MSG"
# Back before the server even greeted the child (no time asserted: the
# greeting comes 3 s after the child connects, EHLO only after it).
cp "$LOG" "$FS/$name.at-return" 2>/dev/null || : >"$FS/$name.at-return"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "note: -odb returned after $ms ms"
expect_nogrep "q-$name-back-before-greeting" 'EHLO' "$FS/$name.at-return"
expect_queued "$name" b@example.test
for i in $(seq 100); do
	[ "$(qn)" -eq 0 ] && [ "$(acked "$LOG")" -ge 1 ] &&
	    grep -q '^E: session-end ' "$LOG" && break
	sleep 0.1
done
kill_srv
expect_one_tx "$name-child" "$LOG" "$mid" b@example.test "$WANT"
expect_empty "$name-child"

# --- 5. --due, -qI/-qR/-qS, -qD ------------------------------------------------

# Two entries after a failure (next = now + 5 min): --due and -q5m leave them.
name=t-due
mkmsg q5-due-a; owe q5-due-a b@example.test; MSG_A=$MSG
mkmsg q5-due-b; owe q5-due-b b@example.test; MSG_B=$MSG
mkcfg "$name" "$(free_port)"
ob "$name-a" 0 -i -f a@example.test b@example.test <"$MSG_A"
# IDs sort by time (to 1/65536 s): a before b.
ob "$name-b" 0 -i -f a@example.test b@example.test <"$MSG_B"
ids=($(qids))
expect_eq "q-$name-two-queued" "${#ids[@]}" 2
now=$(date +%s)
nxt=$(sed -n 's/^next //p' "$QD/${ids[0]}.env")
att=$(sed -n 's/^attempts //p' "$QD/${ids[0]}.env")
expect_eq "q-$name-attempts-1" "$att" 1
if [ "$((nxt - now))" -ge 280 ] && [ "$((nxt - now))" -le 305 ]; then pass "q-$name-next-5min"
else fail "q-$name-next-5min" "next - now = $((nxt - now)), want about 300"; fi
start_srv "$name-srv"
mkcfg "$name" "$PORT"
ob "$name-due" 0 -q --due
ob "$name-q5m" 0 -q5m
expect_eq "q-$name-due-nothing-sent" "$(mails "$LOG")" 0
expect_eq "q-$name-due-kept" "$(qids | tr '\n' ' ')" "${ids[0]} ${ids[1]} "
expect_eq "q-$name-due-quiet" "$(cat "$FS/$name-due.out" "$FS/$name-q5m.out")" ""
# a's time has come: --due takes a only.
envset "${ids[0]}" next "$((now - 10))"
ob "$name-due2" 0 -q --due
expect_eq "q-$name-due2-summary" "$(cat "$OUT")" "outbox: 1 sent, 0 deferred, 0 bounced, 0 busy"
expect_eq "q-$name-due2-left" "$(qids | tr '\n' ' ')" "${ids[1]} "
# -q takes b although its time has not come.
ob "$name-all" 0 -q
expect_eq "q-$name-all-summary" "$(cat "$OUT")" "outbox: 1 sent, 0 deferred, 0 bounced, 0 busy"
kill_srv
expect_eq "q-$name-order" "$(tx "$LOG" | awk '{print $2, $5}' | tr '\n' ' ')" \
	"1 q5-due-a@example.test 1 q5-due-b@example.test "
expect_empty "$name"

# Selection among three entries (-odq), one -q each.
name=t-sel
start_srv "$name"
mkcfg "$name" "$PORT"
for k in 1 2 3; do
	mkmsg "q5-sel-$k"; owe "q5-sel-$k" "rb$k@example.test"
	ob "$name-add$k" 0 -odq -i -f "sa$k@example.test" "rb$k@example.test" <"$MSG"
done
ids=($(qids))
expect_eq "q-$name-three" "${#ids[@]}" 3
ob "$name-nomatch" 0 -qS nobody-like-this
expect_eq "q-$name-nomatch-nothing" "$(sessions "$LOG"):$(qn)" "0:3"
ob "$name-I" 0 -qI "${ids[1]}"
expect_eq "q-$name-I-summary" "$(cat "$OUT")" "outbox: 1 sent, 0 deferred, 0 bounced, 0 busy"
expect_eq "q-$name-I-left" "$(qids | tr '\n' ' ')" "${ids[0]} ${ids[2]} "
ob "$name-R" 0 -qR rb3@
expect_eq "q-$name-R-left" "$(qids | tr '\n' ' ')" "${ids[0]} "
ob "$name-S" 0 -qS SA1@example
expect_eq "q-$name-S-left" "$(qids | tr '\n' ' ')" ""
kill_srv
expect_eq "q-$name-order" "$(tx "$LOG" | awk '{print $2, $3, $4, $5}' | tr '\n' '|')" \
	"1 sa2@example.test rb2@example.test q5-sel-2@example.test|1 sa3@example.test rb3@example.test q5-sel-3@example.test|1 sa1@example.test rb1@example.test q5-sel-1@example.test|"

# -qD: removes one entry; unknown or malformed IDs are usage errors.
name=t-qD
mkcfg "$name" "$(free_port)"
mkmsg q5-del-1; ob "$name-add1" 0 -odq -i -f a@example.test b@example.test <"$MSG"
mkmsg q5-del-2; ob "$name-add2" 0 -odq -i -f a@example.test b@example.test <"$MSG"
ids=($(qids))
ob "$name-del" 0 -qD "${ids[0]}"
expect_eq "q-$name-said" "$(cat "$OUT")" "${ids[0]} deleted"
expect_eq "q-$name-left" "$(cd "$QD" && ls -A | tr '\n' ' ')" "${ids[1]}.env ${ids[1]}.msg "
ob "$name-unknown" 64 -qD 000000000000
ob "$name-again" 64 -qD "${ids[0]}"
ob "$name-slash" 64 -qD "../${ids[1]}"
expect_eq "q-$name-still-there" "$(qids)" "${ids[1]}"
ob "$name-del2" 0 -qD "${ids[1]}"
expect_empty "$name"

# --- 6. one session for many -----------------------------------------------------

name=t-many
mkcfg "$name" "$(free_port)"
for k in $(seq 10); do
	mkmsg "q6-many-$k"; owe "q6-many-$k" b@example.test
	timeout 20 "$OUTBOX" -C "$CFG" -i -f a@example.test b@example.test <"$MSG" \
		>/dev/null 2>>"$FS/$name.add.err" || echo "q6 submission $k: exit $?" >>"$FS/$name.add.err"
done
expect_eq "q-$name-ten-queued" "$(qn)" 10
expect_nogrep "q-$name-all-exit-0" '^q6 submission' "$FS/$name.add.err"
start_srv "$name-srv"	# default: PIPELINING, CHUNKING
mkcfg "$name" "$PORT" "sessions 1"
ob "$name-run" 0 -q
expect_eq "q-$name-summary" "$(cat "$OUT")" "outbox: 10 sent, 0 deferred, 0 bounced, 0 busy"
kill_srv
expect_eq "q-$name-one-session" "$(sessions "$LOG")" 1
expect_eq "q-$name-one-ehlo" "$(ehlos "$LOG")" 1
expect_eq "q-$name-ten-transactions" "$(acked "$LOG"):$(tx "$LOG" | wc -l)" "10:10"
expect_eq "q-$name-no-rset" "$(rsets "$LOG")" 0
expect_eq "q-$name-each-once" "$(tx "$LOG" | awk '{print $5}' | sort -u | wc -l)" 10
# PIPELINING + CHUNKING: MAIL, RCPT and BDAT of one transaction go in one
# write, but the next transaction waits for the reply to the end of data
# (Dovecot 2.3 crashes on more; DESIGN: exactly once).
most=$(awk '/^B: / && $3 == "MAIL" {if ($2 > m) m = $2} END {print m + 0}' "$LOG")
expect_eq "q-$name-one-transaction-per-write" "$most" 3
expect_empty "$name"

# A failed transaction does not end the session: the next entry follows,
# after at most an RSET. The server refuses MAIL from a@ (451) but takes <>.
for v in pipe:PIPELINING,CHUNKING,8BITMIME,SIZE=10240000 nopipe:8BITMIME,SIZE=10240000; do
	ext=${v#*:} v=${v%%:*}
	name=t-many-fail-$v
	mkcfg "$name" "$(free_port)"
	mkmsg "q6-fail-$v-a"; owe "q6-fail-$v-a" b@example.test
	ob "$name-add1" 0 -odq -i -f a@example.test b@example.test <"$MSG"
	# ordered IDs (to 1/65536 s): the failing one first
	mkmsg "q6-fail-$v-b"; owe "q6-fail-$v-b" b@example.test
	ob "$name-add2" 0 -odq -i -f '<>' b@example.test <"$MSG"
	start_srv "$name-srv" --scenario mail-451-but-null --ext "$ext"
	mkcfg "$name" "$PORT"
	ob "$name-run" 0 -q
	expect_eq "q-$name-summary" "$(cat "$OUT")" "outbox: 1 sent, 1 deferred, 0 bounced, 0 busy"
	kill_srv
	expect_eq "q-$name-one-session" "$(sessions "$LOG")" 1
	expect_eq "q-$name-second-sent" "$(tx "$LOG" | awk '{print $2, $3, $5}')" "1 <> q6-fail-$v-b@example.test"
	expect_eq "q-$name-left" "$(qn)" 1
	start_srv "$name-srv2"
	mkcfg "$name" "$PORT"
	ob "$name-run2" 0 -q
	kill_srv
	# (whatever the first run left; the ledger catches any second copy)
	expect_eq "q-$name-run2-delivers-a" \
		"$(tx "$LOG" | awk '$2 == 1 && $5 == "'"q6-fail-$v-a@example.test"'"' | wc -l)" 1
	expect_empty "$name"
done

# --- 7. a successful submission takes the due entries along ------------------------

name=t-flush
mkcfg "$name" "$(free_port)"
for k in 1 2; do
	mkmsg "q7-old-$k"; owe "q7-old-$k" b@example.test
	ob "$name-add$k" 0 -i -f a@example.test b@example.test <"$MSG"
done
expect_eq "q-$name-two-queued" "$(qn)" 2
for id in $(qids); do envset "$id" next "$(( $(date +%s) - 60 ))"; done
mkmsg q7-new; owe q7-new b@example.test
start_srv "$name-srv"
mkcfg "$name" "$PORT"
ob "$name-new" 0 -i -f a@example.test b@example.test <"$MSG"
# The flush goes on in a detached process (limits.c): wait for it.
for _ in $(seq 100); do [ "$(qn)" -eq 0 ] && break; sleep 0.1; done
kill_srv
expect_eq "q-$name-one-session" "$(sessions "$LOG")" 1
expect_eq "q-$name-new-first" "$(tx "$LOG" | head -n1 | awk '{print $2, $5}')" "1 q7-new@example.test"
expect_eq "q-$name-three" "$(tx "$LOG" | awk '{print $2, $5}' | sort | tr '\n' ' ')" \
	"1 q7-new@example.test 1 q7-old-1@example.test 1 q7-old-2@example.test "
expect_empty "$name"

# A not-yet-due entry is not taken along.
name=t-flush-notdue
mkcfg "$name" "$(free_port)"
mkmsg q7-notdue; owe q7-notdue b@example.test
ob "$name-add" 0 -i -f a@example.test b@example.test <"$MSG"
mkmsg q7-new2; owe q7-new2 b@example.test
start_srv "$name-srv"
mkcfg "$name" "$PORT"
ob "$name-new" 0 -i -f a@example.test b@example.test <"$MSG"
expect_eq "q-$name-only-new" "$(tx "$LOG" | awk '{print $2, $5}' | tr '\n' ' ')" "1 q7-new2@example.test "
expect_eq "q-$name-kept" "$(qn)" 1
ob "$name-run" 0 -q
kill_srv
expect_empty "$name"

# --- 8. queue_lifetime ------------------------------------------------------------
# To avoid waiting 5 days, the test rewrites an entry's "created" line to
# 6 days ago.
OLD=$(( $(date +%s) - 6 * 86400 ))

# Young entry, server still failing: deferred again, backoff doubles.
name=t-life-young
mkmsg q8-young; owe q8-young b@example.test
mkcfg "$name" "$(free_port)"
ob "$name-add" 0 -i -f a@example.test b@example.test <"$MSG"
start_srv "$name-srv" --scenario mail-451
mkcfg "$name" "$PORT"
ob "$name-run" 0 -q
kill_srv
expect_eq "q-$name-summary" "$(cat "$OUT")" "outbox: 0 sent, 1 deferred, 0 bounced, 0 busy"
id=$(qids)
expect_eq "q-$name-attempts-2" "$(sed -n 's/^attempts //p' "$QD/$id.env")" 2
d=$(( $(sed -n 's/^next //p' "$QD/$id.env") - $(date +%s) ))
if [ "$d" -ge 580 ] && [ "$d" -le 605 ]; then pass "q-$name-next-10min"
else fail "q-$name-next-10min" "next - now = $d, want about 600"; fi
expect_grep "q-$name-error" '^error .*451' "$QD/$id.env"
start_srv "$name-srv2"
mkcfg "$name" "$PORT"
ob "$name-run2" 0 -q
kill_srv
expect_one_tx "$name-run2" "$LOG" q8-young b@example.test "$WANT"
expect_empty "$name"

# Old entry, server refuses it (451) but takes mail from <>: given up, and
# the sender gets a bounce from <> (over the same session, or queued and
# sent by the next -q: both are allowed), exactly once.
name=t-life-bounce
mkmsg q8-bounce
mkcfg "$name" "$(free_port)"
ob "$name-add" 0 -i -f a@example.test b@example.test <"$MSG"
id=$(qids)
envset "$id" created "$OLD"
start_srv "$name-srv" --scenario mail-451-but-null
mkcfg "$name" "$PORT"
ob "$name-run" 0 -q
expect_eq "q-$name-summary" "$(cat "$OUT")" "outbox: 0 sent, 0 deferred, 1 bounced, 0 busy"
expect_grep "q-$name-tried" '^C: MAIL FROM:<a@example.test>' "$LOG"
expect_eq "q-$name-original-gone" "$(ls "$QD/$id".* 2>/dev/null)" ""
if [ "$(acked "$LOG")" -eq 0 ]; then
	echo "note: lifetime bounce was queued, not sent over the session: $(grep -E '^\(' "$FS/$name.bp" 2>/dev/null)$("$OUTBOX" -C "$CFG" -bp | grep -E '^\(')"
	SENDER=MAILER-DAEMON expect_queued "$name-bounce" a@example.test
	ob "$name-run2" 0 -q
else
	echo "note: lifetime bounce went over the same session"
fi
kill_srv
expect_eq "q-$name-bounce-tx" "$(tx "$LOG" | awk '$2 == 1 {print $3, $4}')" "<> a@example.test"
n=$(tx "$LOG" | awk '$2 == 1 {print $1}' | head -n1)
expect_grep "q-$name-bounce-subject" '^Subject: Undelivered Mail' "$LOG.data.${n:-1}"
expect_grep "q-$name-bounce-has-header" "^Message-ID: <q8-bounce@example.test>" "$LOG.data.${n:-1}"
expect_grep "q-$name-bounce-names-rcpt" 'b@example\.test' "$LOG.data.${n:-1}"
expect_empty "$name"
if [ -s "$DEAD" ]; then fail "q-$name-no-dead-letter" "$DEAD written although the bounce went"
else pass "q-$name-no-dead-letter"; fi

# Old entry from <>, server still failing: nobody to bounce to: dead_letter.
name=t-life-dead
mkmsg q8-dead
mkcfg "$name" "$(free_port)"
ob "$name-add" 0 -i -f '<>' b@example.test <"$MSG"
id=$(qids)
SENDER=MAILER-DAEMON expect_queued "$name-add" b@example.test
envset "$id" created "$OLD"
start_srv "$name-srv" --scenario mail-451
mkcfg "$name" "$PORT"
ob "$name-run" 0 -q
kill_srv
expect_eq "q-$name-summary" "$(cat "$OUT")" "outbox: 0 sent, 0 deferred, 1 bounced, 0 busy"
expect_eq "q-$name-nothing-acked" "$(acked "$LOG")" 0
expect_grep "q-$name-dead-letter" '^Message-ID: <q8-dead@example.test>' "$DEAD"
expect_empty "$name"

# Old entry, server still failing for every sender: the bounce waits in the
# queue (from <>, to the sender); a later -q delivers it.
name=t-life-bq
mkmsg q8-bq
mkcfg "$name" "$(free_port)"
ob "$name-add" 0 -i -f a@example.test b@example.test <"$MSG"
oid=$(qids)
envset "$oid" created "$OLD"
start_srv "$name-srv" --scenario mail-451
mkcfg "$name" "$PORT"
ob "$name-run" 0 -q
kill_srv
expect_eq "q-$name-summary" "$(cat "$OUT")" "outbox: 0 sent, 0 deferred, 1 bounced, 0 busy"
expect_eq "q-$name-original-gone" "$(ls "$QD/$oid".* 2>/dev/null)" ""
SENDER=MAILER-DAEMON expect_queued "$name-bounce" a@example.test
start_srv "$name-srv2"
mkcfg "$name" "$PORT"
ob "$name-run2" 0 -q
kill_srv
expect_eq "q-$name-bounce-delivered" "$(tx "$LOG" | awk '{print $2, $3, $4}')" "1 <> a@example.test"
expect_grep "q-$name-bounce-has-header" '^Message-ID: <q8-bq@example.test>' "$LOG.data.1"
expect_empty "$name"

# --- 9. kill -9 in mid-delivery ------------------------------------------------------

# wait_eod LOG: until the server has the whole message (up to 10 s).
wait_eod() {
	local i
	for i in $(seq 200); do
		grep -q '^X: server stalls' "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# The submitter, killed while the server sits on the end of data: it never
# said 0, so its entry was never published (ID.sub, not a live entry): no
# run sends it, and once abandoned for 10 minutes a run removes it with a
# log line (the caller kept the message; the server may have it).
name=t-kill-submit mid=q9-submit
mkmsg "$mid"
start_srv "$name" --once --scenario dot-stall
mkcfg "$name" "$PORT" "timeout 30" "log $FS/$name.olog"
"$OUTBOX" -C "$CFG" -i -f a@example.test b@example.test <"$MSG" \
	>"$FS/$name.out" 2>"$FS/$name.err" &
bg=$!; ALL_PIDS+=("$bg")
if wait_eod "$LOG"; then pass "q-$name-stalled"; else fail "q-$name-stalled" "no stall in $LOG"; fi
kill -9 "$bg"; wait "$bg" 2>/dev/null; rc=$?
expect_eq "q-$name-killed" "$rc" 137
stop_srv
got=$(cd "$QD" && ls -A | grep -Ev '^(tls-|\.slots$|\.state$)' | sed -E 's/^[0-9A-F]{12}\./ID./' | sort | tr '\n' ' ')
expect_eq "q-$name-dir" "$got" "ID.msg ID.sub "
start_srv "$name-srv"
mkcfg "$name" "$PORT" "log $FS/$name.olog"
ob "$name-run" 0 -q
expect_eq "q-$name-run-sends-nothing" "$(mails "$LOG")" 0
check "q-$name-young-kept" test -n "$(ls "$QD" | grep '\.sub$')"
touch -d "@$(( $(date +%s) - 700 ))" "$QD"/*.sub
ob "$name-sweep" 0 -q
kill_srv
expect_eq "q-$name-sweep-sends-nothing" "$(mails "$LOG")" 0
expect_grep "q-$name-sweep-logged" 'removed an abandoned submission' "$FS/$name.olog"
expect_empty "$name"

# A -q run, killed the same way: the entry stays as it was; the next -q sends it.
name=t-kill-run mid=q9-run
mkmsg "$mid"; owe "$mid" b@example.test
start_srv "$name" --once --scenario dot-stall
mkcfg "$name" "$PORT" "timeout 30"
ob "$name-add" 0 -odq -i -f a@example.test b@example.test <"$MSG"
id=$(qids)
cp "$QD/$id.env" "$FS/$name.env-before"
"$OUTBOX" -C "$CFG" -q >"$FS/$name.out" 2>"$FS/$name.err" &
bg=$!; ALL_PIDS+=("$bg")
if wait_eod "$LOG"; then pass "q-$name-stalled"; else fail "q-$name-stalled" "no stall in $LOG"; fi
# a concurrent -q meanwhile finds it busy
ob "$name-busy" 0 -q -v
expect_grep "q-$name-busy" '^outbox: 0 sent, 0 deferred, 0 bounced, 1 busy$' "$OUT"
kill -9 "$bg"; wait "$bg" 2>/dev/null; rc=$?
expect_eq "q-$name-killed" "$rc" 137
stop_srv
expect_queued "$name" b@example.test
if cmp -s "$QD/$id.env" "$FS/$name.env-before"; then pass "q-$name-env-unchanged"
else fail "q-$name-env-unchanged" "$(diff "$FS/$name.env-before" "$QD/$id.env" | tr '\n' '|')"; fi
start_srv "$name-srv"
mkcfg "$name" "$PORT"
ob "$name-run" 0 -q
expect_eq "q-$name-run-summary" "$(cat "$OUT")" "outbox: 1 sent, 0 deferred, 0 bounced, 0 busy"
kill_srv
expect_one_tx "$name-run" "$LOG" "$mid" b@example.test "$WANT"
expect_empty "$name"

# Litter: temporary envelopes are never entries; after an hour they go.
name=t-litter
mkcfg "$name" "$(free_port)"
mkdir -p "$QD"
printf 'outbox-queue 1\nsender a@example.test\naccount default\nrcpt b@example.test\n' >"$QD/tmp.0123456789AB.env"
cp "$QD/tmp.0123456789AB.env" "$QD/tmp.0123456789AC.env"
touch -d '2 hours ago' "$QD/tmp.0123456789AB.env"
echo orphan >"$QD/0123456789AD.msg"
touch -d '2 hours ago' "$QD/0123456789AD.msg"
echo young >"$QD/0123456789AE.msg"
"$OUTBOX" -C "$CFG" -bp >"$FS/$name.bp" 2>&1
expect_eq "q-$name-not-entries" "$(cat "$FS/$name.bp")" "Mail queue is empty"
ob "$name-run" 0 -q
expect_eq "q-$name-old-removed" "$(cd "$QD" && ls -A | grep -Ev '^\.(slots|state)$' | tr '\n' ' ')" "0123456789AE.msg tmp.0123456789AC.env "
rm -f "$QD"/*

# --- 10. concurrency -----------------------------------------------------------------

# Two -q runs at once over 6 entries on a slow server (0.5 s per end of data).
name=t-twoq
start_srv "$name-srv" --scenario slow
mkcfg "$name" "$PORT" "timeout 20"
for k in $(seq 6); do
	mkmsg "q10-two-$k"; owe "q10-two-$k" b@example.test
	ob "$name-add$k" 0 -odq -i -f a@example.test b@example.test <"$MSG"
done
timeout 60 "$OUTBOX" -C "$CFG" -q >"$FS/$name.1.out" 2>"$FS/$name.1.err" &
p1=$!
timeout 60 "$OUTBOX" -C "$CFG" -q >"$FS/$name.2.out" 2>"$FS/$name.2.err" &
p2=$!
wait "$p1"; rc1=$?
wait "$p2"; rc2=$?
kill_srv
expect_eq "q-$name-exits" "$rc1 $rc2" "0 0"
s=$(cat "$FS/$name.1.out" "$FS/$name.2.out" |
	sed -nE 's/^outbox: ([0-9]+) sent, ([0-9]+) deferred, ([0-9]+) bounced, ([0-9]+) busy$/\1 \2 \3 \4/p' |
	awk '{s += $1; d += $2; b += $3; y += $4} END {print s + 0, d + 0, b + 0, y + 0}')
echo "note: two -q runs: [$(cat "$FS/$name.1.out")] [$(cat "$FS/$name.2.out")]; totals sent deferred bounced busy = $s"
expect_eq "q-$name-sent-add-up" "$(echo "$s" | cut -d' ' -f1-3)" "6 0 0"
expect_eq "q-$name-six-transactions" "$(acked "$LOG"):$(tx "$LOG" | wc -l)" "6:6"
expect_eq "q-$name-each-once" "$(tx "$LOG" | awk '{print $5}' | sort -u | wc -l)" 6
if [ -s "$FS/$name.1.err" ] || [ -s "$FS/$name.2.err" ]; then
	echo "note: two -q runs said on stderr: $(cat "$FS/$name.1.err" "$FS/$name.2.err" | tr '\n' '|')"
fi
expect_empty "$name"

# Ten submissions at once to a slow server: each delivered once.
name=t-ten
# The server takes one session at a time: connections and submit_timeout
# (limits.c) would queue what finds no slot or waits past 5 s.
start_srv "$name-srv" --scenario slow
mkcfg "$name" "$PORT" "timeout 30" "connections 10" \
	"submit_timeout 60"
pids=()
for k in $(seq 10); do
	mkmsg "q10-ten-$k"; owe "q10-ten-$k" b@example.test
	timeout 60 "$OUTBOX" -C "$CFG" -i -f a@example.test b@example.test <"$MSG" \
		>"$FS/$name.$k.out" 2>"$FS/$name.$k.err" &
	pids+=($!)
done
rcs=
for p in "${pids[@]}"; do wait "$p"; rcs="$rcs$? "; done
expect_eq "q-$name-all-exit-0" "$rcs" "0 0 0 0 0 0 0 0 0 0 "
if [ "$(qn)" -gt 0 ]; then
	echo "note: ten submissions left $(qn) queued: $(cat "$FS/$name".*.err | tr '\n' '|')"
fi
expect_eq "q-$name-none-queued" "$(qn)" 0
kill_srv
expect_eq "q-$name-ten-transactions" "$(acked "$LOG"):$(tx "$LOG" | wc -l)" "10:10"
expect_eq "q-$name-each-once" "$(tx "$LOG" | awk '{print $5}' | sort -u | wc -l)" 10
expect_empty "$name"

# --- 11. the ledger --------------------------------------------------------------------

"${QT[@]}" ledger "$LEDGER" "$FS" >"$FS/ledger.out"
grep -v '^lost=' "$FS/ledger.out" | sed 's/^/note: /'
sum=$(tail -n1 "$FS/ledger.out")
lost=$(echo "$sum" | sed -nE 's/.*lost=([0-9]+).*/\1/p')
dups=$(echo "$sum" | sed -nE 's/.*duplicates=([0-9]+).*/\1/p')
echo "note: lost=${lost:-?} duplicates=${dups:-?} ($sum)"
expect_eq q-ledger-lost "${lost:-?}" 0
expect_eq q-ledger-duplicates "${dups:-?}" 0
expect_eq q-ledger-nothing-left "$(echo "$sum" | sed -nE 's/.*still_queued=([0-9]+).*/\1/p')" 0
echo "note: t_queue.sh took $(( $(date +%s) - T_START )) s"
stop_srv
