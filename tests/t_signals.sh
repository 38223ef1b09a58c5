#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# SIGTERM, SIGHUP and SIGINT end a submission or a queue run cleanly: what
# was in flight waits in the queue, one line says so, and the exit code is
# the usual one (0 when the message is safely queued, 75 when nothing could
# be kept), never 128+n. Against tests/faultsmtp.py stalling after the end
# of data, so the signal always lands while outbox waits for a reply.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
: "${TESTROOT:=$(mktemp -d /tmp/outbox-signals.XXXXXX)}"
FS=$TESTROOT/signals
rm -rf "$FS"; mkdir -p "$FS"
SRV_PID=
trap 'fault_stop' EXIT

MSG=$FS/msg
printf 'Subject: signals\nMessage-ID: <sig@example.test>\n\nbody\n' >"$MSG"

# mkcfg sig PORT (lib.sh): a plain configuration with its own queue,
# $FS/sig.q, kept when it is rewritten.
MKCFG_LINES=("timeout 20" "log off" "sessions 1")

# wait_data LOG: until the server has the whole message (it then stalls).
wait_data() {
	for _ in $(seq 100); do
		grep -q "server stalls" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

for sig in TERM HUP INT; do
	name=submit-$sig
	rm -rf "$FS/sig.q"
	fault_start "$name" --once --scenario dot-stall
	mkcfg sig "$PORT"
	"$OUTBOX" -C "$CFG" -i -f a@example.test b@example.test <"$MSG" \
		>"$FS/$name.out" 2>"$FS/$name.err" &
	pid=$!
	if wait_data "$LOG"; then pass "sig-$name-stalled"; else
		fail "sig-$name-stalled" "the server never got the message: $(tail -3 "$LOG")"; fi
	kill -"$sig" "$pid"
	wait "$pid"; rc=$?
	expect_eq "sig-$name-exit-0" "$rc" 0
	expect_grep "sig-$name-said" "stopped by signal [0-9]+; the message waits in the queue" "$FS/$name.err"
	expect_eq "sig-$name-queued" "$(qn)" 1
	fault_stop
done

# A signal before the message is read: nothing to keep, so 75.
name=stdin
rm -rf "$FS/sig.q"
mkcfg sig "$(free_port)"
mkfifo "$FS/fifo"
"$OUTBOX" -C "$CFG" -i -f a@example.test b@example.test <"$FS/fifo" \
	>"$FS/$name.out" 2>"$FS/$name.err" &
pid=$!
exec 3>"$FS/fifo"
printf 'Subject: half\n' >&3
# Until outbox waits in read(2) on its standard input (slow under valgrind).
for _ in $(seq 200); do
	set -- $(cat "/proc/$pid/syscall" 2>/dev/null)
	[ "${1:-}" = 0 ] && [ "${2:-}" = 0x0 ] && break
	sleep 0.05
done
kill -TERM "$pid"
wait "$pid"; rc=$?
exec 3>&-
expect_eq "sig-$name-exit-75" "$rc" 75
expect_grep "sig-$name-said" "stopped by a signal before the message was read" "$FS/$name.err"
expect_eq "sig-$name-nothing-queued" "$(qn)" 0

# A queue run: the entry in flight and those not tried stay as they were.
name=run
rm -rf "$FS/sig.q"
mkcfg sig 1
for k in 1 2 3; do
	"$OUTBOX" -C "$CFG" -odq -i -f a@example.test b@example.test <"$MSG" 2>>"$FS/$name.add" ||
		echo "add $k failed" >>"$FS/$name.add"
done
expect_eq "sig-$name-three-queued" "$(qn)" 3
fault_start "$name" --scenario dot-stall
mkcfg sig "$PORT"
"$OUTBOX" -C "$CFG" -q >"$FS/$name.out" 2>"$FS/$name.err" &
pid=$!
if wait_data "$LOG"; then pass "sig-$name-stalled"; else
	fail "sig-$name-stalled" "the server never got a message"; fi
kill -TERM "$pid"
wait "$pid"; rc=$?
expect_eq "sig-$name-exit-0" "$rc" 0
expect_grep "sig-$name-said" "stopped by signal 15; entries not tried wait in the queue" "$FS/$name.err"
expect_eq "sig-$name-all-still-queued" "$(qn)" 3
fault_stop
