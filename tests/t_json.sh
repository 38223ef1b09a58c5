#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# mailq --json and outbox -bp --json: one JSON object a line per queue
# entry, in postqueue -j's field names; every line parses (python3's json)
# whatever the queue file's text holds: quotes, backslashes, control
# characters, bytes that are not UTF-8. Also: --check creates no queue.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
W=$TESTROOT/json
rm -rf "$W"; mkdir -p "$W/bin"
printf '%s\n' "host 127.0.0.1" "port 1" "tls off" "timeout 3" \
	"queue_dir $W/q" "dead_letter $W/dead" "log off" >"$W/cfg"
chmod 600 "$W/cfg"
ln -sf "$OUTBOX" "$W/bin/mailq"
# jq_py EXPR FILE: EXPR (python, over the list L of parsed lines) printed.
jq_py() {
	python3 -c 'import json, sys
L = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
print(eval(sys.argv[1]))' "$1" "$2" 2>&1
}

expect_exit 0 json-empty "$OUTBOX" -C "$W/cfg" -bp --json
expect_eq json-empty-no-lines "$(wc -c <"$OUT")" 0

printf 'Subject: j1\n\nhi\n' >"$W/m"
expect_exit 0 json-queue-1 "$OUTBOX" -C "$W/cfg" -i -f '"odd\"send\\er"@example.test' \
	r1@example.test '"q\"x"@example.test' <"$W/m"
expect_exit 0 json-queue-2 "$OUTBOX" -C "$W/cfg" -i -f s2@example.test r3@example.test <"$W/m"
# The first entry's error line gets what a hostile or odd server could
# put there (the file is read as hostile; mailq must still say it).
env=$(grep -l '^sender "odd' "$W"/q/*.env)
python3 -c 'import sys
p = sys.argv[1]; d = open(p, "rb").read().split(b"\n")
d = [b"error q\"u\\o\x01te\t\xff \xc3\xa9 \xed\xa0\x80 end" if l.startswith(b"error ")
     else l for l in d]
open(p, "wb").write(b"\n".join(d))' "$env"

expect_exit 0 json-bp "$OUTBOX" -C "$W/cfg" -bp --json
J=$W/bp.json; cp "$OUT" "$J"
expect_eq json-lines "$(wc -l <"$J")" 2
expect_eq json-parses "$(jq_py 'len(L)' "$J")" 2
expect_eq json-fields "$(jq_py 'all(set(e) >= {"queue_name", "queue_id", "arrival_time", "message_size", "sender", "recipients"} for e in L)' "$J")" True
expect_eq json-queue-name "$(jq_py 'sorted(set(e["queue_name"] for e in L))' "$J")" "['deferred']"
expect_eq json-ids "$(jq_py 'sorted(e["queue_id"] for e in L)' "$J")" \
	"$(python3 -c 'import sys; print(sorted(sys.argv[1:]))' $(cd "$W/q" && ls *.env | sed 's/\.env$//'))"
expect_eq json-sender-escaped "$(jq_py '[e["sender"] for e in L if e["sender"].startswith("\"odd")][0]' "$J")" '"odd\"send\\er"@example.test'
expect_eq json-rcpt-quoted "$(jq_py '[r["address"] for e in L for r in e["recipients"]]' "$J" | grep -c 'q\\\\"x')" 1
expect_eq json-rcpts "$(jq_py 'sorted(len(e["recipients"]) for e in L)' "$J")" "[1, 2]"
expect_eq json-delay-reason "$(jq_py '[r["delay_reason"] for e in L for r in e["recipients"] if r["address"] == "r1@example.test"][0]' "$J")" \
	'q"u\o?te?? ?? ??? end'	# made printable on load (qenv.c), quotes escaped
expect_eq json-refused-reason "$(jq_py '[r["delay_reason"] for e in L for r in e["recipients"] if r["address"] == "r3@example.test"][0]' "$J")" \
	"127.0.0.1[127.0.0.1]:1: Connection refused"
expect_eq json-numbers "$(jq_py 'all(isinstance(e["arrival_time"], int) and e["message_size"] > 0 for e in L)' "$J")" True
expect_nogrep json-no-raw-control $'[\001\t]' "$J"
expect_exit 0 json-mailq "$W/bin/mailq" -C "$W/cfg" --json
expect_eq json-mailq-same "$(cat "$OUT")" "$(cat "$J")"

# --check only looks: it makes no queue directory (as root it could).
printf '%s\n' "host 127.0.0.1" "port 1" "tls off" "timeout 3" \
	"queue_dir $W/never/q" "log off" >"$W/cfg2"
chmod 600 "$W/cfg2"
expect_exit 75 check-refused "$OUTBOX" -C "$W/cfg2" --check
check check-makes-no-queue test ! -e "$W/never"
