#!/usr/bin/env bash
# The whole suite: unit tests, then every tests/t_*.sh against a loopback
# Postfix that this script starts and stops. Closes with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
export OUTBOX="$top/outbox"
export TESTROOT; TESTROOT=$(mktemp -d /tmp/outbox-test.XXXXXX)
export RESULTS="$TESTROOT/results"
export HOME="$TESTROOT/home" TMPDIR="$TESTROOT/tmp"
export XDG_CONFIG_HOME="$HOME/.config" XDG_STATE_HOME="$HOME/.local/state"
mkdir -p "$HOME" "$TMPDIR"
: >"$RESULTS"

only=${1:-}
echo "== unit"
./tests/unit | tee -a "$RESULTS.unit"
grep -E '^(PASS|FAIL) ' "$RESULTS.unit" >>"$RESULTS"

echo "== postfix"
if bash tests/postfix.sh start "$TESTROOT/postfix"; then
	for t in tests/t_*.sh; do
		[ -n "$only" ] && [[ $t != *"$only"* ]] && continue
		echo "== $t"
		bash "$t"
	done
else
	printf 'FAIL postfix-start\n' >>"$RESULTS"
fi
bash tests/postfix.sh stop "$TESTROOT/postfix" >/dev/null 2>&1

npass=$(grep -c '^PASS ' "$RESULTS")
nfail=$(grep -c '^FAIL ' "$RESULTS")
if [ "$nfail" -gt 0 ]; then
	echo "failed:"; grep '^FAIL ' "$RESULTS" | sed 's/^FAIL /  /'
fi
[ "$nfail" -eq 0 ] && [ -z "${KEEP:-}" ] && rm -rf "$TESTROOT"
echo "$npass passed, $nfail failed"
[ "$nfail" -eq 0 ] && [ "$npass" -gt 0 ]
