#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# The whole suite: unit tests, then every tests/t_*.sh against a loopback
# Postfix that this script starts and stops, in parallel lanes (run_job
# below). Closes with "N passed, N failed, N skipped"; a skip (lib.sh's
# skip, or a file that recorded no check at all) fails the run unless
# OUTBOX_ALLOW_SKIP=1 (make check ALLOW_SKIP=1).
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
# make check-asan / check-valgrind: every report lands in $TESTROOT.
export ASAN_OPTIONS="log_path=$TESTROOT/sanitizer:detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="log_path=$TESTROOT/sanitizer:print_stacktrace=1:halt_on_error=1"
[ -n "${OUTBOX_WRAPPER:-}" ] && OUTBOX=$top/$OUTBOX_WRAPPER

# Arguments: run only the files whose names contain one of them.
only=("$@")
want() {
	local p
	[ ${#only[@]} -eq 0 ] && return 0
	for p in "${only[@]}"; do [[ $1 == *"$p"* ]] && return 0; done
	return 1
}
echo "== unit"
unit=(./tests/unit)
[ -n "${OUTBOX_WRAPPER:-}" ] && unit=(valgrind -q --error-exitcode=99 \
	--leak-check=full --errors-for-leak-kinds=definite \
	--run-libc-freeres=no --suppressions=tests/valgrind.supp ./tests/unit)
"${unit[@]}" | tee -a "$RESULTS.unit"
urc=${PIPESTATUS[0]}
grep -E '^(PASS|FAIL) ' "$RESULTS.unit" >>"$RESULTS"
# A unit binary that dies (a crash) fails the run, whatever it printed.
if [ "$urc" -ne 0 ] && ! grep -q '^FAIL ' "$RESULTS.unit"; then
	printf 'FAIL unit-binary (exit %s)\n' "$urc" >>"$RESULTS"
fi

echo "== postfix"
# run_job FILE...: runs the test files one after another, each with its own
# results ($RESULTS.NAME) and output, printed whole when the file ends.
run_job() {
	local t n s
	for t in "$@"; do
		n=${t#tests/}; n=${n%.sh}
		: >"$RESULTS.$n"
		s=$SECONDS
		RESULTS=$RESULTS.$n bash "$t" >"$TESTROOT/out.$n" 2>&1
		# A file that ran no check did not pass: it counts as skipped.
		[ -s "$RESULTS.$n" ] ||
			printf 'SKIP %s (no check ran)\n' "${t#tests/}" >>"$RESULTS.$n"
		flock "$RESULTS.lock" sh -c 'echo "== $1 ($2 s)"; cat "$3"' _ \
			"$t" "$((SECONDS - s))" "$TESTROOT/out.$n"
	done
}
export -f run_job

# The files run in $OUTBOX_JOBS lanes at once (default: one per CPU, at
# most 4; 1 runs them in turn). The files that use the suite's Postfix
# (they name PF_*: they clear and count its Maildirs) are one job, run in
# turn in one lane. Longest first (by lines), so the lanes end together.
cpus=$(nproc)
jobs=${OUTBOX_JOBS:-$((cpus < 4 ? cpus : 4))}
case $jobs in *[!0-9]* | '' | 0) echo "OUTBOX_JOBS must be a positive number" >&2; exit 2 ;; esac
files=() pf=()
for t in tests/t_*.sh; do
	want "$t" || continue
	# Runs once, in the plain suite: not under ASan or valgrind.
	[ -n "${OUTBOX_WRAPPER:-}${ASAN:-}" ] && [ "$t" = tests/t_interop.sh ] && continue
	if grep -q 'PF_' "$t"; then pf+=("$t"); else files+=("$t"); fi
done
if bash tests/postfix.sh start "$TESTROOT/postfix"; then
	{
		[ ${#pf[@]} -eq 0 ] || echo "$(cat "${pf[@]}" | wc -l) ${pf[*]}"
		for t in ${files[@]+"${files[@]}"}; do echo "$(wc -l <"$t") $t"; done
	} | sort -rn | cut -d' ' -f2- |
		xargs -L 1 -P "$jobs" bash -c 'run_job "$@"' _
	cat "$RESULTS".t_* >>"$RESULTS" 2>/dev/null
else
	printf 'FAIL postfix-start\n' >>"$RESULTS"
fi
bash tests/postfix.sh stop "$TESTROOT/postfix" >/dev/null 2>&1

# Sanitizer and valgrind reports fail the run, whatever the checks said.
reports=$(ls "$TESTROOT"/sanitizer.* 2>/dev/null; grep -lE 'ERROR SUMMARY: [1-9]|definitely lost: [1-9]' "$TESTROOT"/valgrind.* 2>/dev/null)
if [ -n "$reports" ]; then
	for f in $reports; do echo "== $f"; head -40 "$f"; done
	printf 'FAIL memory-error-reports\n' >>"$RESULTS"
elif [ -n "${OUTBOX_WRAPPER:-}${ASAN:-}" ]; then
	printf 'PASS memory-error-reports\n' >>"$RESULTS"
fi

npass=$(grep -c '^PASS ' "$RESULTS")
nfail=$(grep -c '^FAIL ' "$RESULTS")
nskip=$(grep -c '^SKIP ' "$RESULTS")
if [ "$nskip" -gt 0 ]; then
	echo "skipped:"; grep '^SKIP ' "$RESULTS" | sed 's/^SKIP /  /'
	[ "${OUTBOX_ALLOW_SKIP:-}" = 1 ] ||
		echo "skips fail the run; OUTBOX_ALLOW_SKIP=1 (make check ALLOW_SKIP=1) accepts them"
fi
if [ "$nfail" -gt 0 ]; then
	echo "failed:"; grep '^FAIL ' "$RESULTS" | sed 's/^FAIL /  /'
fi
[ "$nfail" -eq 0 ] && [ -z "${KEEP:-}" ] && rm -rf "$TESTROOT"
echo "$npass passed, $nfail failed, $nskip skipped"
[ "$nfail" -eq 0 ] && [ "$npass" -gt 0 ] &&
	{ [ "$nskip" -eq 0 ] || [ "${OUTBOX_ALLOW_SKIP:-}" = 1 ]; }
