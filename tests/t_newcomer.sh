#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# What a newcomer meets first (issue 21): --help lists the options, a
# maildomain without a dot is warned about, the man pages carry a real date
# and only installed paths, every source file says its licence; and the
# test helpers themselves (issue 19): expect_nogrep fails on a missing
# file, skip is counted as skipped. Needs python3. Run via tests/run.sh, or:
#   export TESTROOT=$(mktemp -d) RESULTS=$TESTROOT/results OUTBOX=$PWD/outbox
#   bash tests/t_newcomer.sh
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(dirname "$here")
. "$here/lib.sh"
: "${TESTROOT:=$(mktemp -d /tmp/outbox-newcomer.XXXXXX)}"
FS=$TESTROOT/newcomer
rm -rf "$FS"; mkdir -p "$FS"
SRV_PID=
trap 'fault_stop' EXIT

# --help: one line for each option callers use, and where to read more.
expect_exit 0 help-exit "$OUTBOX" --help
for o in -t -i -f -F -C -a -v -N -odb -bp -bs -q -qD --check --version; do
	expect_grep "help-lists-$o" "^ .*[ ,]$o( |,|\\[|\$)" "$OUT"
done
expect_grep help-points-to-man 'outbox\(8\)' "$OUT"

# maildomain without a dot: one warning with -v, naming the file to change;
# none for a dotted domain; none on a stderr that is not a terminal.
fault_start md --once
mkcfg md-bare "$PORT" "maildomain vm" "queue off"
printf 'Subject: t\n\nx\n' >"$FS/msg"
expect_exit 0 maildomain-bare-sent "$OUTBOX" -C "$CFG" -v root <"$FS/msg"
expect_grep maildomain-bare-warns "warning: root@vm: the mail domain vm has no dot .* set maildomain in $CFG" "$ERR"
expect_eq maildomain-bare-warns-once "$(grep -c 'has no dot' "$ERR")" 1
fault_stop
fault_start md2 --once
mkcfg md-bare "$PORT" "maildomain vm" "queue off"
expect_exit 0 maildomain-bare-quiet-sent "$OUTBOX" -C "$CFG" root <"$FS/msg"
expect_nogrep maildomain-bare-quiet 'has no dot' "$ERR"
fault_stop
fault_start md3 --once
mkcfg md-dot "$PORT" "maildomain example.test" "queue off"
expect_exit 0 maildomain-dot-sent "$OUTBOX" -C "$CFG" -v root <"$FS/msg"
expect_nogrep maildomain-dot-no-warning 'has no dot' "$ERR"
fault_stop

# The man pages: a date, not an unexpanded keyword; FILES names installed
# paths only; SEE ALSO names aliases(5).
for m in "$top"/man/*.[158]; do
	expect_grep "man-date-${m##*/}" '^\.Dd [A-Z][a-z]+ [0-9]{1,2}, [0-9]{4}$' "$m"
done
awk '/^\.Sh FILES/ { p = 1; next } /^\.Sh / { p = 0 } p' "$top/man/outbox.8" >"$FS/files"
expect_grep man-files-units '^\.It Pa /usr/lib/systemd/system/outbox-queue\.service' "$FS/files"
expect_nogrep man-files-no-lib '(^|[ ,])/lib/systemd' "$FS/files"
expect_nogrep man-files-no-source-tree 'contrib/' "$FS/files"
awk '/^\.Sh SEE ALSO/ { p = 1; next } /^\.Sh / { p = 0 } p' "$top/man/outbox.8" >"$FS/seealso"
expect_grep man-see-also-aliases '^\.Xr aliases 5' "$FS/seealso"

# The licence: LICENSE is ISC, debian/copyright says so, and every source
# file and script has its SPDX line first (after a #! line).
expect_grep license-isc 'Permission to use, copy, modify, and distribute this software' "$top/LICENSE"
expect_grep license-copyright '^Copyright \(c\) 2026 the outbox authors' "$top/LICENSE"
expect_grep license-debian '^License: ISC' "$top/debian/copyright"
missing=
while IFS= read -r -d '' f; do
	case $f in
	*.c | *.h) l=$(head -n 1 "$f") ;;
	*) l=$(head -n 2 "$f" | grep -v '^#!' | head -n 1) ;;
	esac
	case $l in *'SPDX-License-Identifier: ISC'*) ;; *) missing="$missing ${f#"$top"/}" ;; esac
done < <(find "$top" -path "$top/.git" -prune -o -path "$top/tests/fuzz/work" -prune -o \
	-type f \( -name '*.[ch]' -o -name '*.sh' -o -name '*.py' \) -print0)
expect_eq license-spdx-everywhere "${missing# }" ""

# The helpers: expect_nogrep fails when its file is missing (grep exit 2),
# skip counts as skipped, never as passed.
(
	RESULTS=$FS/self.results
	: >"$RESULTS"
	expect_nogrep self-nogrep-missing 'x' "$FS/no-such-file"
	printf 'y\n' >"$FS/self.txt"
	expect_nogrep self-nogrep-absent 'x' "$FS/self.txt"
	expect_nogrep self-nogrep-present 'y' "$FS/self.txt"
	skip self-skip "a reason"
) >/dev/null
expect_eq helper-nogrep-missing-fails "$(grep -c '^FAIL self-nogrep-missing$' "$FS/self.results")" 1
expect_eq helper-nogrep-absent-passes "$(grep -c '^PASS self-nogrep-absent$' "$FS/self.results")" 1
expect_eq helper-nogrep-present-fails "$(grep -c '^FAIL self-nogrep-present$' "$FS/self.results")" 1
expect_eq helper-skip-counted "$(grep -c '^SKIP self-skip$' "$FS/self.results")" 1
expect_nogrep helper-skip-not-passed '^PASS self-skip' "$FS/self.results"
