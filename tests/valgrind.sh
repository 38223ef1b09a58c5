#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# OUTBOX for make check-valgrind: runs the real binary under valgrind, each
# process logging to $TESTROOT/valgrind.PID (tests/run.sh reads them). Keeps
# argv[0] (mailq, newaliases) by running valgrind on a link of that name.
top=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
real=$top/outbox
name=$(basename "$0")
case $name in
mailq|newaliases|sendmail)
	d=$(mktemp -d) && ln -s "$real" "$d/$name" && real=$d/$name ;;
esac
# --run-libc-freeres=no: glibc's own clean-up at exit reads memory that its
# helper threads (getaddrinfo_a) never initialised; valgrind.supp says why
# the rest is glibc's.
exec valgrind -q --error-exitcode=99 --leak-check=full \
	--run-libc-freeres=no --suppressions="$top/tests/valgrind.supp" \
	--errors-for-leak-kinds=definite --show-leak-kinds=definite \
	--child-silent-after-fork=yes --trace-children=no \
	--log-file="${TESTROOT:-/tmp}/valgrind.%p" "$real" "$@"
