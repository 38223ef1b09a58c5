# SPDX-License-Identifier: ISC
# Shared helpers for outbox's shell tests. Source it; never run it.
# Results go to $RESULTS (one line per check), so tests/run.sh can add up
# every file's checks into the closing "N passed, N failed, N skipped" line.

: "${RESULTS:=/dev/stdout}"
: "${OUTBOX:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/outbox}"

pass() {
	printf 'PASS %s\n' "$1" >>"$RESULTS"
	printf 'ok   %s\n' "$1"
}

# fail NAME WHY...
fail() {
	local name=$1; shift
	printf 'FAIL %s\n' "$name" >>"$RESULTS"
	printf 'FAIL %s: %s\n' "$name" "$*"
}

# skip NAME WHY...: a check, or a whole file, that cannot run here. Counted
# as skipped, never as passed; tests/run.sh fails a run with skips unless
# OUTBOX_ALLOW_SKIP=1 (make check ALLOW_SKIP=1).
skip() {
	local name=$1; shift
	printf 'SKIP %s\n' "$name" >>"$RESULTS"
	printf 'SKIP %s: %s\n' "$name" "$*"
}

# check NAME CMD...: passes when CMD exits 0.
check() {
	local name=$1; shift
	if "$@"; then pass "$name"; else fail "$name" "command failed: $*"; fi
}

# expect_exit CODE NAME CMD...: passes when CMD exits with CODE.
# The command's stdout/stderr are kept in $OUT and $ERR for later checks.
expect_exit() {
	local want=$1 name=$2 rc; shift 2
	OUT=$(mktemp) ERR=$(mktemp)
	"$@" >"$OUT" 2>"$ERR"; rc=$?
	if [ "$rc" -eq "$want" ]; then
		pass "$name"
	else
		fail "$name" "exit $rc, want $want; stderr: $(head -c 600 "$ERR")"
	fi
}

# expect_eq NAME GOT WANT
expect_eq() {
	if [ "$2" = "$3" ]; then pass "$1"; else
		fail "$1" "got [$2], want [$3]"; fi
}

# expect_grep NAME PATTERN FILE: passes when FILE has a line matching
# PATTERN (grep -E); a missing or unreadable FILE fails.
expect_grep() {
	local rc
	grep -Eq -- "$2" "$3" 2>/dev/null; rc=$?
	case $rc in
	0) pass "$1" ;;
	1) fail "$1" "no line matching /$2/ in $3: $(head -c 600 "$3")" ;;
	*) fail "$1" "cannot read $3 (grep exit $rc)" ;;
	esac
}

# expect_nogrep NAME PATTERN FILE: passes when FILE exists, is readable and
# has no line matching PATTERN (a missing file fails: grep exits 2).
expect_nogrep() {
	local rc
	grep -Eq -- "$2" "$3" 2>/dev/null; rc=$?
	case $rc in
	0) fail "$1" "unexpected /$2/ in $3: $(grep -E -- "$2" "$3" | head -3)" ;;
	1) pass "$1" ;;
	*) fail "$1" "cannot read $3 (grep exit $rc)" ;;
	esac
}

# ---- Maildirs of the test Postfix (tests/postfix.sh). They use $PF_MAIL and $PF_DIR
# from "$TESTROOT/postfix/env" (sourced here on first use if the test has not).
# LOCALPART is folded to lower case, as the delivery agent does.

# _pf_env: load the test Postfix's env file unless already loaded.
_pf_env() {
	if [ -z "${PF_MAIL:-}" ] && [ -f "${TESTROOT:-}/postfix/env" ]; then
		. "$TESTROOT/postfix/env"
	fi
	[ -n "${PF_MAIL:-}" ] || { echo "lib.sh: no PF_MAIL (source \$TESTROOT/postfix/env)" >&2; return 1; }
}

# mail_clear: delete every delivered message in every Maildir.
mail_clear() {
	_pf_env || return 1
	find "$PF_MAIL" -mindepth 3 -maxdepth 3 -type f \
		\( -path '*/new/*' -o -path '*/cur/*' -o -path '*/tmp/*' \) -delete
}

# mail_count LOCALPART: print how many messages sit in LOCALPART's Maildir new/.
mail_count() {
	_pf_env || return 1
	local d="$PF_MAIL/${1,,}/new"
	if [ -d "$d" ]; then find "$d" -type f | wc -l; else echo 0; fi
}

# mail_wait LOCALPART [N]: wait up to ~10 s until N (default 1) messages are in new/; more fails.
mail_wait() {
	local want=${2:-1} n
	for _ in $(seq 100); do
		n=$(mail_count "$1") || return 1
		[ "$n" -eq "$want" ] && return 0
		[ "$n" -gt "$want" ] && break
		sleep 0.1
	done
	echo "mail_wait: $1 has $n message(s), want $want" >&2
	return 1
}

# mail_settle: wait up to ~10 s until the Postfix queue is empty (all mail delivered or discarded).
mail_settle() {
	_pf_env || return 1
	for _ in $(seq 100); do
		[ -z "$(find "$PF_DIR/queue/incoming" "$PF_DIR/queue/active" "$PF_DIR/queue/deferred" \
			"$PF_DIR/queue/maildrop" -type f 2>/dev/null | head -1)" ] && return 0
		sleep 0.1
	done
	echo "mail_settle: Postfix queue not empty after 10 s" >&2
	return 1
}

# mail_file LOCALPART: print the path of the single message in new/ (fails unless exactly one).
mail_file() {
	_pf_env || return 1
	local n
	n=$(mail_count "$1")
	[ "$n" -eq 1 ] || { echo "mail_file: $1 has $n messages, want 1" >&2; return 1; }
	find "$PF_MAIL/${1,,}/new" -type f
}

# mail_body LOCALPART: the single delivered message minus what Postfix prepended (Return-Path,
# X-Original-To, Delivered-To, first Received with its continuation lines), LF endings.
mail_body() {
	local f k
	f=$(mail_file "$1") || return 1
	k=$(awk '
		st == 0 && /^(Return-Path|X-Original-To|Delivered-To):/ { next }
		st == 0 && /^Received:/ { st = 1; next }
		st == 1 && /^[ \t]/ { next }
		{ print NR; found = 1; exit }
		END { if (!found) print NR + 1 }' "$f")
	tail -n +"$k" "$f"
}

# fault_start NAME ARGS...: starts tests/faultsmtp.py (or the server
# $FAULT_SERVER names, such as provsmtp.py) in the background in $FS (ARGS
# pass through: --once, --scenario, --max-time, ...); sets PORT, LOG and
# SRV_PID, or says why it did not start.
fault_start() {
	local name=$1 i; shift
	LOG=$FS/$name.log
	rm -f "$FS/$name.port"
	python3 "$(dirname "${BASH_SOURCE[0]}")/${FAULT_SERVER:-faultsmtp.py}" \
		--port-file "$FS/$name.port" --log "$LOG" "$@" \
		2>"$FS/$name.srv.err" &
	SRV_PID=$!
	for i in $(seq 100); do
		[ -s "$FS/$name.port" ] && break
		sleep 0.05
	done
	PORT=$(cat "$FS/$name.port" 2>/dev/null)
	[ -n "$PORT" ] || echo "${FAULT_SERVER:-faultsmtp.py} did not start: $(cat "$FS/$name.srv.err")"
}

# fault_stop: gives a --once server up to 3 s to finish its session (it
# exits when the client has gone), then makes sure it is gone.
fault_stop() {
	local i
	[ -n "${SRV_PID:-}" ] || return 0
	for i in $(seq 60); do
		kill -0 "$SRV_PID" 2>/dev/null || break
		sleep 0.05
	done
	kill "$SRV_PID" 2>/dev/null
	wait "$SRV_PID" 2>/dev/null
	SRV_PID=
}

# fault_certs: a throwaway CA and a server certificate for 127.0.0.1 and
# localhost in $FS/pki; sets CA and TLSARGS (faultsmtp's --cert/--key).
fault_certs() {
	local d=$FS/pki
	mkdir -p "$d"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$d/ca.key" -out "$d/ca.pem" -days 2 -subj /CN=outbox-fault-CA \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1 &&
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$d/srv.key" -out "$d/srv.csr" -subj /CN=localhost >/dev/null 2>&1 &&
	printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' \
		'basicConstraints=CA:FALSE' 'extendedKeyUsage=serverAuth' >"$d/ext.cnf" &&
	openssl x509 -req -in "$d/srv.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
		-CAcreateserial -out "$d/srv.pem" -days 2 -extfile "$d/ext.cnf" >/dev/null 2>&1
	CA=$d/ca.pem
	TLSARGS=(--cert "$d/srv.pem" --key "$d/srv.key")
}

# free_port: a loopback port nobody listens on (connection refused).
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_detached NAME CFG: waits until no outbox process runs with -C CFG any
# more (a submission's detached flush ends by itself, within its bound of
# 10 s and 100 entries); the check NAME fails if one still runs after 120 s.
wait_detached() {
	local i
	for i in $(seq 1200); do
		pgrep -f -- "-C $2( |$)" >/dev/null || { pass "$1"; return 0; }
		sleep 0.1
	done
	fail "$1" "an outbox with -C $2 still runs after 120 s"
}

# mkcfg NAME PORT [LINE...]: writes $FS/NAME.cfg (mode 600) for a server on
# 127.0.0.1:PORT and sets CFG, QD ($FS/NAME.q) and DEAD ($FS/NAME.dead).
# The defaults are host 127.0.0.1, port PORT, tls off, timeout 3,
# dead_letter $DEAD and queue_dir $QD (queue off instead when MKCFG_QUEUE is
# "off"), then the lines of the array MKCFG_LINES (a file's own defaults,
# such as "log off"; one replaces a built-in default with its key). A LINE
# whose key is a default's replaces it, the others follow in their order.
# Rewriting it with the same NAME keeps the queue.
mkcfg() {
	local name=$1 port=$2 q i k; shift 2
	local -A given=()
	local -a dflt out=()
	CFG=$FS/$name.cfg QD=$FS/$name.q DEAD=$FS/$name.dead
	q="queue_dir $QD"
	[ "${MKCFG_QUEUE:-}" = off ] && q="queue off"
	dflt=("host 127.0.0.1" "port $port" "tls off" "timeout 3" "dead_letter $DEAD"
	    "$q" ${MKCFG_LINES[@]+"${MKCFG_LINES[@]}"})
	for i in "$@"; do given[${i%% *}]=1; done
	# The last default with a key wins, unless a LINE has that key.
	for ((i = ${#dflt[@]} - 1; i >= 0; i--)); do
		k=${dflt[i]%% *}
		[ -n "${given[$k]:-}" ] && continue
		given[$k]=1
		out=("${dflt[i]}" ${out[@]+"${out[@]}"})
	done
	printf '%s\n' "${out[@]}" "$@" >"$CFG"
	chmod 600 "$CFG"
}

# qn [DIR]: how many queue entries (ID.env, not tmp.*) DIR (default $QD) holds.
qn() { find "${1:-$QD}" -maxdepth 1 -name '*.env' ! -name 'tmp.*' 2>/dev/null | wc -l; }

# start_srv NAME ARGS...: stops the server still running (with the
# command $SRV_STOP, default fault_stop), then fault_start NAME with the
# array SRV_ARGS (a file's own, such as --once or --concurrent and its
# limits) and ARGS; sets PORT, LOG ($FS/NAME.log) and SRV_PID, and adds
# the pid to the array ALL_PIDS.
start_srv() {
	local name=$1; shift
	${SRV_STOP:-fault_stop}
	fault_start "$name" ${SRV_ARGS[@]+"${SRV_ARGS[@]}"} "$@"
	ALL_PIDS+=("$SRV_PID")
}

# ob NAME WANT [ARGS...] <MSG: runs outbox -C $CFG ARGS under timeout and
# checks its exit code, as the check ${OB_PREFIX}NAME${OB_SUFFIX}. Leaves
# $OUT and $ERR, $ELAPSED (ms) and $TR (its stderr: $OB_DIR/NAME.err when
# OB_DIR is set, which also keeps NAME.out). With OB_RSS set, $RSS is the
# maximum resident size in KiB (/usr/bin/time). OB_TIMEOUT (seconds,
# default 30) bounds the run; OB_AFTER is a command run after it.
ob() {
	local name=$1 want=$2 t0 rss=${OB_DIR:-${TMPDIR:-/tmp}}/$1.rss
	local wrap=()
	shift 2
	[ -n "${OB_RSS:-}" ] && wrap=(/usr/bin/time -f %M -o "$rss")
	t0=$(date +%s%N)
	expect_exit "$want" "${OB_PREFIX:-}$name${OB_SUFFIX:-}" \
		timeout "${OB_TIMEOUT:-30}" "${wrap[@]}" "$OUTBOX" -C "$CFG" "$@"
	ELAPSED=$(( ($(date +%s%N) - t0) / 1000000 ))
	RSS=
	[ -n "${OB_RSS:-}" ] && RSS=$(tail -n1 "$rss" 2>/dev/null)
	TR=$ERR
	if [ -n "${OB_DIR:-}" ]; then
		cp "$OUT" "$OB_DIR/$name.out"
		cp "$ERR" "$OB_DIR/$name.err"
		TR=$OB_DIR/$name.err
	fi
	${OB_AFTER:-:}
}
