#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# The interop matrix (issue 9): ./outbox against a real Exim 4 (tests/exim.sh),
# a real Dovecot submission 2.3 relaying to the test Postfix (tests/dovecot.sh)
# and aiosmtpd (tests/aiosmtpd_server.py), each on 127.0.0.1 with the test CA,
# STARTTLS, implicit TLS and AUTH. Per server:
#   single   one message per AUTH mechanism offered (PLAIN, LOGIN, CRAM-MD5),
#            over STARTTLS and over implicit TLS: delivered once, byte for byte,
#            with its own Return-Path
#   queue    20 queued messages (-odq), each with its own envelope sender, with
#            451 and 550 at RCPT and 451 and 554 at end of data mixed in; one
#            `outbox -q`, then the 451s stop and -q runs until the queue is empty
#   drop     the same through tests/dropproxy.py, which cuts the connection right
#            after the 4th end of data (that message alone may arrive twice)
#   many     (Exim, recipients_max = 10) one message to 50 recipients: all 50
#            delivered after ONE `outbox -q`
# Every delivered copy is matched by Message-ID and Return-Path: each message
# that should arrive arrives exactly once, under its own envelope sender; the
# refused ones never; "note: S/SCENARIO duplicates=N wrong_sender=N ..." lines give
# the counts. The server's log shows no panic (Dovecot: "Panic", "assertion failed").
# Starts and stops its own servers; needs root (private mount namespaces), apt's
# lists (apt-get download) and the test Postfix. Skipped under make check-asan
# and check-valgrind (it runs once, in make check). Run via tests/run.sh t_interop;
# OUTBOX_DEB_CACHE=DIR keeps the downloaded packages in DIR between runs.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
: "${TESTROOT:?run via tests/run.sh t_interop}"
if [ -n "${OUTBOX_WRAPPER:-}${ASAN:-}" ]; then
	echo "note: t_interop not run under ${OUTBOX_WRAPPER:+valgrind}${ASAN:+ASan} (make check runs it)"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	skip t_interop "needs root (mount namespaces for Exim and Dovecot)"
	exit 0
fi
if ! [ -f "$TESTROOT/postfix/env" ]; then
	fail io-env "no $TESTROOT/postfix/env: tests/postfix.sh start was not run"
	exit 0
fi
. "$TESTROOT/postfix/env"
W=$TESTROOT/interop
rm -rf "$W"; mkdir -p "$W"; chmod 755 "$W"
export PKI=$PF_DIR/pki
base=${OUTBOX_PORT_BASE:-20000}
PY=/usr/bin/python3
# where the downloaded packages are extracted; set it to keep them between runs
DEBCACHE=${OUTBOX_DEB_CACHE:-$TESTROOT/debcache}
AIO_PID='' PROXY_PID=''
USER_NAME=interop USER_PASS=Interop-Pass-7
PW=$PF_CA

stop_all() {
	[ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null
	[ -n "$AIO_PID" ] && kill "$AIO_PID" 2>/dev/null
	bash "$here/exim.sh" stop "$W/exim" >/dev/null 2>&1
	bash "$here/dovecot.sh" stop "$W/dovecot" >/dev/null 2>&1
	wait 2>/dev/null
}
trap stop_all EXIT
trap 'exit 1' INT TERM HUP

# icheck.py: reads the Maildirs of a server.
#   ledger ROOT LEDGER [MAYDUP]   LEDGER lines "want MID SENDER RCPT" (must arrive
#       exactly once, with Return-Path <SENDER>) and "never MID RCPT"; MAYDUP names
#       Message-IDs allowed a second copy (their reply was never read). Prints a
#       line per problem, then "delivered=N missing=N duplicates=N wrong_sender=N
#       refused_delivered=N allowed_dup=N".
#   body FILE   FILE without the trace fields the servers add in front (Return-Path,
#       Received, Delivered-To, X-Original-To)
cat >"$W/icheck.py" <<'EOF'
import glob, os, re, sys

def fields(data):
    head = re.split(rb"\n\n", data, maxsplit=1)[0]
    def get(name):
        m = re.search(rb"(?im)^" + name + rb":[ \t]*<([^>\n]*)>", head)
        return m.group(1).decode("latin-1") if m else None
    return get(rb"message-id"), get(rb"return-path")

def copies(root):
    out = {}
    for f in sorted(glob.glob(os.path.join(root, "*", "new", "*"))):
        lp = f.split(os.sep)[-3]
        mid, rp = fields(open(f, "rb").read())
        out.setdefault((mid, lp), []).append(rp)
    return out

def ledger(root, led, maydup):
    got = copies(root)
    may = set(open(maydup).read().split()) if maydup and os.path.exists(maydup) else set()
    n = dict(delivered=0, missing=0, duplicates=0, wrong_sender=0,
             refused_delivered=0, allowed_dup=0)
    for line in open(led):
        w = line.split()
        if not w:
            continue
        if w[0] == "want":
            mid, sender, lp = w[1], w[2], w[3].split("@")[0].lower()
            c = got.get((mid, lp), [])
            n["delivered"] += min(len(c), 1)
            if not c:
                n["missing"] += 1
                print("MISSING %s for %s" % (mid, lp))
            extra = len(c) - 1
            if extra > 0 and mid in may:
                n["allowed_dup"] += 1
                extra -= 1
            if extra > 0:
                n["duplicates"] += extra
                print("DUPLICATE %s for %s: %d copies" % (mid, lp, len(c)))
            for rp in c:
                if rp != sender:
                    n["wrong_sender"] += 1
                    print("WRONG-SENDER %s for %s: Return-Path <%s>, want <%s>"
                          % (mid, lp, rp, sender))
        elif w[0] == "never":
            mid, lp = w[1], w[2].split("@")[0].lower()
            c = got.get((mid, lp), [])
            if c:
                n["refused_delivered"] += len(c)
                print("REFUSED-DELIVERED %s for %s: %d copies" % (mid, lp, len(c)))
    print(" ".join("%s=%d" % kv for kv in n.items()))

def body(f):
    data = open(f, "rb").read()
    lines = data.split(b"\n")
    i, skip = 0, False
    while i < len(lines):
        ln = lines[i]
        if ln[:1] in (b" ", b"\t") and skip:
            i += 1
            continue
        name = ln.split(b":", 1)[0].lower()
        if name in (b"return-path", b"received", b"delivered-to", b"x-original-to"):
            skip = True
            i += 1
            continue
        break
    sys.stdout.buffer.write(b"\n".join(lines[i:]))

if sys.argv[1] == "ledger":
    ledger(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
else:
    body(sys.argv[2])
EOF

# --- the servers -------------------------------------------------------------------

# per server S: its STARTTLS port, its implicit TLS port, the root of its Maildirs
declare -A SUBMIT SMTPS MAILROOT

start_exim() {
	EXIM_PKG=$DEBCACHE/exim bash "$here/exim.sh" start "$W/exim" \
		>"$W/exim.start" 2>&1 || return 1
	. "$W/exim/env"
	SUBMIT[exim]=$EX_SUBMIT SMTPS[exim]=$EX_SMTPS MAILROOT[exim]=$EX_MAIL
}

start_dovecot() {
	DOVECOT_PKG=$DEBCACHE/dovecot bash "$here/dovecot.sh" start "$W/dovecot" \
		>"$W/dovecot.start" 2>&1 || return 1
	. "$W/dovecot/env"
	SUBMIT[dovecot]=$DC_SUBMIT SMTPS[dovecot]=$DC_SMTPS MAILROOT[dovecot]=$DC_MAIL
}

start_aiosmtpd() {
	local d=$W/aiosmtpd
	mkdir -p "$d/mail"
	: >"$d/transient"
	"$PY" -c 'import aiosmtpd' 2>"$W/aiosmtpd.start" || return 1
	"$PY" "$here/aiosmtpd_server.py" --dir "$d" --port $((base + 325)) \
		--tls-port $((base + 365)) --cert "$PKI/server.pem" --key "$PKI/server.key" \
		--user "$USER_NAME" --password "$USER_PASS" >>"$W/aiosmtpd.start" 2>&1 &
	AIO_PID=$!
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$((base + 365))") 2>/dev/null && break
		sleep 0.1
	done
	kill -0 "$AIO_PID" 2>/dev/null || return 1
	SUBMIT[aiosmtpd]=$((base + 325)) SMTPS[aiosmtpd]=$((base + 365)) MAILROOT[aiosmtpd]=$d/mail
}

# transient S on|off: the server's 451s
transient() {
	case $1 in
	exim | aiosmtpd)
		if [ "$2" = on ]; then : >"$W/$1/transient"; else rm -f "$W/$1/transient"; fi ;;
	dovecot) bash "$here/dovecot.sh" transient "$2" "$W/dovecot" ;;
	esac
}

# settle S: wait (up to ~10 s) until the server has delivered what it accepted
settle() {
	case $1 in
	exim)
		for _ in $(seq 100); do
			[ -z "$(find "$W/exim/spool/input" -name '*-H' 2>/dev/null | head -1)" ] && return 0
			sleep 0.1
		done
		echo "settle: Exim's spool not empty after 10 s" >&2; return 1 ;;
	dovecot) mail_settle ;;
	aiosmtpd) return 0 ;;
	esac
}

# log_file S: the server's log that must stay free of panics
log_file() {
	case $1 in
	exim) echo "$W/exim/log/paniclog" ;;
	dovecot) echo "$W/dovecot/dovecot.log" ;;
	aiosmtpd) echo "$W/aiosmtpd/aiosmtpd.log" ;;
	esac
}

# log_mark S: remember where the server's log ends (server_log_clean reads on from there)
declare -A LOGPOS
log_mark() {
	LOGPOS[$1]=$(stat -c %s "$(log_file "$1")" 2>/dev/null || echo 0)
}

# server_log_clean S NAME: what the server logged since log_mark shows no panic,
# assertion or crash
server_log_clean() {
	local s=$1 name=$2 f=$W/$1-$2.log pat
	tail -c +"$((${LOGPOS[$s]:-0} + 1))" "$(log_file "$s")" >"$f" 2>/dev/null
	case $s in
	exim)	# with -C, every delivery logs that it runs without root: expected
		grep -v 'exim user lost privilege for using -C option' "$f" >"$f.x"
		mv "$f.x" "$f"
		pat='.' ;;
	dovecot) pat='Panic|assertion failed|Fatal|killed with signal' ;;
	aiosmtpd) pat='Traceback|ERROR|CRITICAL' ;;
	esac
	expect_nogrep "io-$s-$name-log-clean" "$pat" "$f"
	log_mark "$s"
}

# --- outbox --------------------------------------------------------------------

# mkcfg S-NAME PORT [LINE...] (lib.sh): $W/S-NAME.cfg for server S, with
# its queue $W/S-NAME.q, the test CA and the test user; sets CFG and QD.
FS=$W MKCFG_LINES=("tls_ca_file $PW" "user $USER_NAME" "password $USER_PASS" "timeout 10")

# mkmsg FILE MID [HEADER...]: a test message (dot lines, a CRLF line, no final
# newline) in FILE and what a Maildir must hold in FILE.want (LF endings).
mkmsg() {
	local f=$1 mid=$2; shift 2
	{
		printf '%s\n' 'From: Interop <interop@example.test>' 'To: whom it may concern:;' \
			'Date: Mon, 01 Jan 2024 00:00:00 +0000' "Message-ID: <$mid>" \
			"Subject: interop $mid"
		[ $# -gt 0 ] && printf '%s\n' "$@"
		printf '%s\n' '' 'Hello.' '.leading dot' '..two dots' '.' 'From the middle'
		printf 'crlf line\r\n\nlast line without newline'
	} >"$f"
	{ tr -d '\r' <"$f"; echo; } >"$f.want"
}

# ledger_check S NAME LEDGER [MAYDUP]: the note line and the checks
ledger_check() {
	local s=$1 name=$2 led=$3 may=${4:-} res sum v
	settle "$s"
	res=$W/$s-$name.check
	"$PY" "$W/icheck.py" ledger "${MAILROOT[$s]}" "$led" "$may" >"$res"
	sum=$(tail -1 "$res")
	echo "note: $s/$name $sum$(grep -v '=' "$res" | head -8 | sed 's/^/; /' | tr -d '\n')"
	for v in missing duplicates wrong_sender refused_delivered; do
		expect_eq "io-$s-$name-$v" "$(sed -n "s/.*\b$v=\([0-9]*\).*/\1/p" <<<"$sum")" 0
	done
}

# --- single sends ------------------------------------------------------------------

single() {
	local s=$1 mech mode mid rcpt lp f n port
	for mode in starttls implicit; do
		port=${SUBMIT[$s]}
		[ "$mode" = implicit ] && port=${SMTPS[$s]}
		for mech in plain login cram-md5; do
			mkcfg "$s-single-$mode-$mech" "$port" "tls $mode" "auth $mech" "queue off"
			mid="single-$mode-$mech.$s@example.test"
			lp="${s:0:2}-single-$mode-$mech"
			rcpt=$lp@example.test
			mkmsg "$W/$s-$mode-$mech.msg" "$mid"
			expect_exit 0 "io-$s-single-$mode-$mech-exit" timeout 60 \
				"$OUTBOX" -C "$CFG" -v -i -f "sender-$mech@example.test" "$rcpt" \
				<"$W/$s-$mode-$mech.msg"
			expect_grep "io-$s-single-$mode-$mech-auth" "^-> AUTH ${mech^^}" "$ERR"
			settle "$s"
			n=$(find "${MAILROOT[$s]}/$lp/new" -type f 2>/dev/null | wc -l)
			expect_eq "io-$s-single-$mode-$mech-once" "$n" 1
			f=$(find "${MAILROOT[$s]}/$lp/new" -type f 2>/dev/null | head -1)
			[ -n "$f" ] || continue
			expect_grep "io-$s-single-$mode-$mech-return-path" \
				"^Return-[Pp]ath: <sender-$mech@example.test>$" "$f"
			"$PY" "$W/icheck.py" body "$f" >"$W/$s-$mode-$mech.got"
			if cmp -s "$W/$s-$mode-$mech.got" "$W/$s-$mode-$mech.msg.want"; then
				pass "io-$s-single-$mode-$mech-content"
			else
				fail "io-$s-single-$mode-$mech-content" "differs: $(diff \
					<(cat -A "$W/$s-$mode-$mech.msg.want") <(cat -A "$W/$s-$mode-$mech.got") | head -10)"
			fi
			rm -f "$OUT" "$ERR"
		done
	done
}

# --- queue runs ------------------------------------------------------------------

# queue_fill S NAME COUNT LEDGER: COUNT messages queued with -odq, message i from
# its own sender; the mix by i mod 10: 2 only recipient defer* (451 at RCPT),
# 4 only recipient reject* (550), 5 X-Test-Fail: 451, 7 X-Test-Fail: 554, 8 a
# good and a reject* recipient, 9 a good and a defer* recipient; else one good.
queue_fill() {
	local s=$1 name=$2 count=$3 led=$4 i id mid snd p good
	p="${s:0:2}-$name"
	: >"$led"
	for i in $(seq -w 1 "$count"); do
		id="$name-$i.$s@example.test" snd="snd-$p-$i@example.test"
		mid=$id good="$p-$i@example.test"
		local hdr=() rcpts=("$good")
		case $((10#$i % 10)) in
		2) rcpts=("defer-$p-$i@example.test")
		   echo "want $mid $snd defer-$p-$i" >>"$led" ;;
		4) rcpts=("reject-$p-$i@example.test")
		   echo "never $mid reject-$p-$i" >>"$led" ;;
		5) hdr=("X-Test-Fail: 451"); echo "want $mid $snd $good" >>"$led" ;;
		7) hdr=("X-Test-Fail: 554"); echo "never $mid $good" >>"$led" ;;
		8) rcpts+=("reject-$p-$i@example.test")
		   echo "want $mid $snd $good" >>"$led"; echo "never $mid reject-$p-$i" >>"$led" ;;
		9) rcpts+=("defer-$p-$i@example.test")
		   echo "want $mid $snd $good" >>"$led"; echo "want $mid $snd defer-$p-$i" >>"$led" ;;
		*) echo "want $mid $snd $good" >>"$led" ;;
		esac
		mkmsg "$W/$s-$name-$i.msg" "$mid" "${hdr[@]}"
		timeout 30 "$OUTBOX" -C "$CFG" -odq -i -f "$snd" "${rcpts[@]}" \
			<"$W/$s-$name-$i.msg" >>"$W/$s-$name.fill" 2>&1
	done
	expect_eq "io-$s-$name-queued" "$(qn)" "$((10#$count))"
}

# queue_drain S NAME: one -q with the 451s on, then -q (at most 5) until empty
queue_drain() {
	local s=$1 name=$2 k
	transient "$s" on
	timeout 120 "$OUTBOX" -C "$CFG" -q -v >"$W/$s-$name.q1" 2>&1
	settle "$s"
	transient "$s" off
	for k in 2 3 4 5 6; do
		[ "$(qn)" -eq 0 ] && break
		timeout 120 "$OUTBOX" -C "$CFG" -q -v >"$W/$s-$name.q$k" 2>&1
		settle "$s"
	done
	expect_eq "io-$s-$name-queue-empty" "$(qn)" 0
	transient "$s" on
}

queue_scenario() {
	local s=$1
	mkcfg "$s-queue" "${SUBMIT[$s]}" "tls starttls"
	queue_fill "$s" queue 20 "$W/$s-queue.ledger"
	queue_drain "$s" queue
	ledger_check "$s" queue "$W/$s-queue.ledger"
	server_log_clean "$s" queue
}

drop_scenario() {
	local s=$1
	PROXY_PORT=$((base + 400 + ${#PROXY_RUNS[@]}))
	PROXY_RUNS+=("$s")
	"$PY" "$here/dropproxy.py" --port "$PROXY_PORT" --upstream-port "${SUBMIT[$s]}" \
		--upstream-tls starttls --ca "$PF_CA" --drop-at 4 \
		--log "$W/$s-drop.proxy.log" --drop-file "$W/$s-drop.maydup" \
		2>"$W/$s-drop.proxy.err" &
	PROXY_PID=$!
	for _ in $(seq 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$PROXY_PORT") 2>/dev/null && break
		sleep 0.1
	done
	mkcfg "$s-drop" "$PROXY_PORT" "auth_plaintext on"
	queue_fill "$s" drop 12 "$W/$s-drop.ledger"
	queue_drain "$s" drop
	expect_grep "io-$s-drop-dropped" '^drop 4 ' "$W/$s-drop.proxy.log"
	ledger_check "$s" drop "$W/$s-drop.ledger" "$W/$s-drop.maydup"
	server_log_clean "$s" drop
	kill "$PROXY_PID" 2>/dev/null; wait "$PROXY_PID" 2>/dev/null; PROXY_PID=
}
PROXY_RUNS=()

# many: one message to 50 recipients through Exim's recipients_max = 10
many_scenario() {
	local s=$1 i rcpts=() led got
	led=$W/$s-many.ledger
	mkcfg "$s-many" "${SUBMIT[$s]}" "tls starttls"
	: >"$led"
	for i in $(seq -w 1 50); do
		rcpts+=("${s:0:2}-many-$i@example.test")
		echo "want many.$s@example.test snd-many@example.test ${s:0:2}-many-$i" >>"$led"
	done
	mkmsg "$W/$s-many.msg" "many.$s@example.test"
	timeout 30 "$OUTBOX" -C "$CFG" -odq -i -f snd-many@example.test "${rcpts[@]}" \
		<"$W/$s-many.msg" >"$W/$s-many.fill" 2>&1
	timeout 120 "$OUTBOX" -C "$CFG" -q -v >"$W/$s-many.q1" 2>&1
	settle "$s"
	got=$(find "${MAILROOT[$s]}" -path "*/${s:0:2}-many-*/new/*" -type f | wc -l)
	echo "note: $s/many $got of 50 recipients delivered after one -q;" \
		"$(grep -c '^<- 452' "$W/$s-many.q1") 452 replies, $(qn) entries left"
	expect_eq "io-$s-many-all-in-one-run" "$got" 50
	# Exim 4.98 (Debian 13) announces RFC 9422 LIMITS, RCPTMAX=10 from
	# recipients_max: outbox then splits before the server must refuse.
	if grep -q '^<- 250[- ]LIMITS .*RCPTMAX=10' "$W/$s-many.q1"; then
		expect_eq "io-$s-many-limits-no-452" "$(grep -c '^<- 452' "$W/$s-many.q1")" 0
		expect_eq "io-$s-many-limits-rcpt-per-tx" \
			"$(grep -c '^-> RCPT TO' "$W/$s-many.q1") $(grep -c '^-> MAIL FROM' "$W/$s-many.q1")" "50 5"
	else
		echo "note: $s does not announce LIMITS here (Exim before 4.98)"
	fi
	for i in 2 3 4 5 6; do
		[ "$(qn)" -eq 0 ] && break
		timeout 120 "$OUTBOX" -C "$CFG" -q >"$W/$s-many.q$i" 2>&1
		settle "$s"
	done
	expect_eq "io-$s-many-queue-empty" "$(qn)" 0
	ledger_check "$s" many "$led"
}

# pf_tidy: move what the Dovecot runs left in the test Postfix's Maildirs (local
# parts do-*, defer-do-*, snd-do-*...) to $W/dovecot/delivered, so later tests
# that count every Maildir see none of it
pf_tidy() {
	local d
	mail_settle
	mkdir -p "$W/dovecot/delivered"
	for d in "$PF_MAIL"/*; do
		case ${d##*/} in do-* | *-do-*) mv "$d" "$W/dovecot/delivered/" ;; esac
	done
}

# --- the matrix ----------------------------------------------------------------------

. "$here/debroot.sh"
NS_OK=1
deb_ns_ok "$W" 2>"$W/ns.err" || NS_OK=0

for s in exim dovecot aiosmtpd; do
	echo "-- $s"
	if [ $NS_OK = 0 ] && [ "$s" != aiosmtpd ]; then
		skip "io-$s" "$(cat "$W/ns.err")"
		continue
	fi
	if ! "start_$s"; then
		fail "io-$s-start" "$(tail -n 5 "$W/$s.start")"
		continue
	fi
	pass "io-$s-start"
	log_mark "$s"
	single "$s"
	server_log_clean "$s" single
	queue_scenario "$s"
	drop_scenario "$s"
	if [ "$s" = exim ]; then
		many_scenario "$s"
		server_log_clean "$s" many
	fi
	[ "$s" = dovecot ] && pf_tidy
done
exit 0
