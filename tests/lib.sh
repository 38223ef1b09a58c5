# Shared helpers for outbox's shell tests. Source it; never run it.
# Results go to $RESULTS (one line per check), so tests/run.sh can add up
# every file's checks into the closing "N passed, N failed" line.

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

# expect_grep NAME PATTERN FILE: passes when FILE has a line matching PATTERN (grep -E).
expect_grep() {
	if grep -Eq -- "$2" "$3"; then pass "$1"; else
		fail "$1" "no line matching /$2/ in $3: $(head -c 600 "$3")"; fi
}

# expect_nogrep NAME PATTERN FILE: passes when no line of FILE matches.
expect_nogrep() {
	if grep -Eq -- "$2" "$3"; then
		fail "$1" "unexpected /$2/ in $3: $(grep -E -- "$2" "$3" | head -3)"
	else pass "$1"; fi
}
