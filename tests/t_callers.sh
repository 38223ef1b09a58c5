#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Real programs that call sendmail, through outbox, into the loopback Postfix
# of tests/postfix.sh: cron, at, bsd-mailx, mutt, git send-email, PHP mail(),
# an Alpine-style "sendmail -bs" SMTP dialogue, mailq/newaliases, and the glued
# options callers pass. Each delivered copy is checked: recipients (To, Cc and
# a Bcc that gets the message with no Bcc header left), envelope sender
# (Return-Path), headers and body.
#
# Callers find outbox through $TESTROOT/bin/sendmail (a script that runs
# "$OUTBOX" -C "$CFG"), first in PATH or named in the caller's own setting.
# cron and atd hard-code /usr/sbin/sendmail: where a private mount namespace
# can be made (unshare -m, root), the real daemons run in one where that path,
# /etc/cron.d, /etc/crontab, the crontab and at spools and /run are private
# bind mounts; the system's files are never changed. Where it cannot, only the
# exact argv those daemons use is run.
#
# Needs (tests/callers-deps.txt): cron at bsd-mailx mutt git git-email
# libmailtools-perl (git send-email dies without Mail::Address) php-cli
# util-linux mount (unshare, mount); python3 from tests/deps.sh.
# Run via tests/run.sh, or alone with a Postfix started by tests/postfix.sh:
#   export TESTROOT=$(mktemp -d) RESULTS=$TESTROOT/results OUTBOX=$PWD/outbox
#   bash tests/postfix.sh start $TESTROOT/postfix && bash tests/t_callers.sh
#   bash tests/postfix.sh stop $TESTROOT/postfix
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
: "${TESTROOT:?TESTROOT must name the directory of a started tests/postfix.sh}"
if ! [ -f "$TESTROOT/postfix/env" ]; then
	fail callers-postfix "no $TESTROOT/postfix/env (start tests/postfix.sh first)"
	exit 0
fi
. "$TESTROOT/postfix/env"

C=$TESTROOT/callers
BIN=$TESTROOT/bin
CFG=$C/outbox.conf
ALIASES=$C/aliases
ARGV=$C/argv.log
rm -rf "$C" "$TESTROOT/queue-callers"
mkdir -p "$C/msg" "$C/home" "$BIN"
chmod 755 "$C"
DAEMON_PID=
trap '[ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null' EXIT

# --- configuration and wrappers ---------------------------------------------

cat >"$ALIASES" <<'EOF'
# aliases for tests/t_callers.sh
root: rootmail@example.test
postmaster: root
team: team-a@example.test, team-b@example.test
EOF
(
	umask 077
	cat >"$CFG" <<-EOF
	# tests/t_callers.sh: plain port by default, account "submit" over STARTTLS + AUTH
	host 127.0.0.1
	port $PF_PLAIN
	tls off
	maildomain example.test
	aliases $ALIASES
	queue_dir $TESTROOT/queue-callers
	log off
	timeout 10
	dead_letter $C/dead.letter

	account submit
	port $PF_SUBMIT
	tls starttls
	tls_ca_file $PF_CA
	user alice
	password correct horse
	EOF
)

# The sendmail every caller runs; it records its argv (one line, each
# argument in brackets) so the checks can show what the caller passed.
cat >"$BIN/sendmail" <<EOF
#!/bin/sh
printf '[%s]' "\$@" >>'$ARGV'; echo >>'$ARGV'
exec '$OUTBOX' -C '$CFG' "\$@"
EOF
chmod 755 "$BIN/sendmail"
# mailq and newaliases: symlinks, so that argv[0] picks the personality.
ln -sf "$OUTBOX" "$BIN/mailq"
ln -sf "$OUTBOX" "$BIN/newaliases"
export PATH="$BIN:$PATH"
export HOME="$C/home"

# --- helpers -------------------------------------------------------------------

# last_argv: the argv of the newest sendmail run.
last_argv() { tail -n 1 "$ARGV" 2>/dev/null; }

# got NAME LOCALPART: wait for LOCALPART's one message; check it arrived; keep
# it as $C/msg/NAME-LOCALPART (without Postfix's lines: M), .raw (as delivered:
# RAW) and .hdr (M's header block: H).
got() {
	local name=$1 lp=$2
	M=$C/msg/$name-$lp RAW=$C/msg/$name-$lp.raw H=$C/msg/$name-$lp.hdr
	: >"$M"; : >"$RAW"; : >"$H"
	if mail_wait "$lp" 1 2>"$C/msg/wait.err"; then
		pass "$name: $lp received it"
		mail_body "$lp" >"$M"
		cp "$(mail_file "$lp")" "$RAW"
		awk '/^$/ { exit } { print }' "$M" >"$H"
		return 0
	fi
	fail "$name: $lp received it" "$(cat "$C/msg/wait.err"); last sendmail argv: $(last_argv)"
	return 1
}

# nobcc NAME: no Bcc header in the copy last fetched by got.
nobcc() { expect_nogrep "$1: no Bcc header" '^(Resent-)?Bcc:' "$H"; }

# sender NAME ADDR: the envelope sender of the copy last fetched by got.
sender() { expect_grep "$1: envelope sender $2" "^Return-Path: <${2//./\\.}>\$" "$RAW"; }

# need CMD...: fail NAME-installed unless each CMD is on PATH.
need() {
	local name=$1 c; shift
	for c in "$@"; do
		if ! command -v "$c" >/dev/null; then
			fail "$name: $c installed" "missing; install tests/callers-deps.txt"
			return 1
		fi
	done
}

# A private mount namespace (unshare -m) where /usr/sbin/sendmail is the
# wrapper: possible here?
NS=
if [ "$(id -u)" = 0 ] && [ -e /usr/sbin/sendmail ] &&
	unshare -m --propagation private sh -c \
		"mount --bind '$BIN/sendmail' /usr/sbin/sendmail && mount -t tmpfs tmpfs /run" 2>/dev/null; then
	NS=yes
else
	skip callers-real-cron-atd "no private mount namespace here; real cron and atd do not run, only their argv"
fi
# A copy of the wrapper to bind over /usr/sbin/sendmail (the original stays usable
# from the outside).
cp "$BIN/sendmail" "$C/sendmail.bind"

# ==== 1. cron =================================================================
# Debian's cron (3.0pl1) runs "/usr/sbin/sendmail -FCronDaemon -i -B8BITMIME -oem
# MAILTO" (format "%s -FCronDaemon -i -B8BITMIME -oem  %s" in the binary).
mail_clear
cat >"$C/cron.msg" <<'EOF'
From: root (Cron Daemon)
To: root
Subject: Cron <root@host> echo hi
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit
X-Cron-Env: <SHELL=/bin/sh>
X-Cron-Env: <HOME=/root>
X-Cron-Env: <PATH=/usr/bin:/bin>
X-Cron-Env: <LOGNAME=root>

hi
EOF
expect_exit 0 "cron argv: sendmail -FCronDaemon -i -B8BITMIME -oem root" \
	sendmail -FCronDaemon -i -B8BITMIME -oem root <"$C/cron.msg"
if got cron-argv rootmail; then
	expect_grep "cron argv: Subject" '^Subject: Cron <root@host> echo hi$' "$H"
	expect_grep "cron argv: From keeps the comment" '^From: root(@example\.test)? \(Cron Daemon\)$' "$H"
	expect_grep "cron argv: To is root, qualified" '^To: rootmail@example\.test$' "$H"
	expect_eq "cron argv: X-Cron-Env headers" "$(grep -c '^X-Cron-Env: <' "$H")" 4
	expect_grep "cron argv: Content-Transfer-Encoding kept" '^Content-Transfer-Encoding: 8bit$' "$H"
	expect_eq "cron argv: body" "$(sed '1,/^$/d' "$M")" "hi"
	expect_grep "cron argv: Date added" '^Date: ' "$H"
	expect_grep "cron argv: Message-ID added" '^Message-ID: <[^>]+@[^>]+>$' "$H"
	sender "cron argv" root@example.test
fi

# The real cron daemon: an @reboot job runs at once when /run/crond.reboot is
# missing (a private tmpfs /run), and its output is mailed to MAILTO.
if [ -n "$NS" ] && need cron cron; then
	mail_clear
	mkdir -p "$C/cron.d" "$C/crontabs"
	chmod 755 "$C/cron.d"; chmod 1730 "$C/crontabs"
	printf 'MAILTO=root\n@reboot root echo hi-from-cron; echo second line\n' \
		>"$C/cron.d/outbox-test"
	chmod 644 "$C/cron.d/outbox-test"
	: >"$C/crontab"
	: >"$ARGV"
	unshare -m --propagation private -- sh -c "
		mount --bind '$C/sendmail.bind' /usr/sbin/sendmail &&
		mount --bind '$C/cron.d' /etc/cron.d &&
		mount --bind '$C/crontab' /etc/crontab &&
		mount --bind '$C/crontabs' /var/spool/cron/crontabs &&
		mount -t tmpfs tmpfs /run &&
		exec cron -f" >"$C/cron.out" 2>&1 &
	DAEMON_PID=$!
	if got cron-real rootmail; then
		expect_eq "cron real: its sendmail argv" "$(head -n 1 "$ARGV")" \
			"[-FCronDaemon][-i][-B8BITMIME][-oem][root]"
		expect_grep "cron real: Subject" '^Subject: Cron <root@[^>]+> echo hi-from-cron; echo second line$' "$H"
		expect_grep "cron real: From" '^From: root(@example\.test)? \(Cron Daemon\)$' "$H"
		expect_grep "cron real: To" '^To: (root|rootmail@example\.test)$' "$H"
		expect_grep "cron real: X-Cron-Env MAILTO" '^X-Cron-Env: <MAILTO=root>$' "$H"
		expect_eq "cron real: body" "$(sed '1,/^$/d' "$M")" "hi-from-cron
second line"
		sender "cron real" root@example.test
	else
		echo "cron output: $(head -c 600 "$C/cron.out")"
	fi
	kill "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=
fi

# ==== 2. at ===================================================================
# Debian's atd (3.2.5) runs "/usr/sbin/sendmail -i USER" with a header of its own.
mail_clear
printf 'Subject: Output from your job        7\nTo: root\n\nhi-from-at\n' >"$C/at.msg"
expect_exit 0 "at argv: sendmail -i root" sendmail -i root <"$C/at.msg"
if got at-argv rootmail; then
	expect_grep "at argv: Subject" '^Subject: Output from your job        7$' "$H"
	expect_grep "at argv: To" '^To: (root|rootmail@example\.test)$' "$H"
	expect_grep "at argv: From added" '^From: .*<root@example\.test>$' "$H"
	expect_eq "at argv: body" "$(sed '1,/^$/d' "$M")" "hi-from-at"
	sender "at argv" root@example.test
fi
# Other at implementations: "sendmail -Fat -odi -oem USER".
mail_clear
expect_exit 0 "at argv: sendmail -Fat -odi -oem root" sendmail -Fat -odi -oem root <"$C/at.msg"
if got at-argv2 rootmail; then
	expect_grep "at argv -Fat: From named at" '^From: "?at"? <root@example\.test>$' "$H"
	expect_eq "at argv -Fat: body" "$(sed '1,/^$/d' "$M")" "hi-from-at"
fi

# The real at and atd: the job goes to a private spool; "atd -s" runs the due
# jobs once and mails their output.
if [ -n "$NS" ] && need at at atd; then
	mail_clear
	mkdir -p "$C/atjobs" "$C/atspool"
	printf '0\n' >"$C/atjobs/.SEQ"
	chown daemon:daemon "$C/atjobs" "$C/atspool" "$C/atjobs/.SEQ"
	chmod 1770 "$C/atjobs" "$C/atspool"; chmod 600 "$C/atjobs/.SEQ"
	: >"$ARGV"
	timeout 20 unshare -m --propagation private -- sh -c "
		mount --bind '$C/sendmail.bind' /usr/sbin/sendmail &&
		mount --bind '$C/atjobs' /var/spool/cron/atjobs &&
		mount --bind '$C/atspool' /var/spool/cron/atspool &&
		mount -t tmpfs tmpfs /run &&
		echo 'echo hi-from-at; echo .; echo done' | at now && atd -s" >"$C/at.out" 2>&1
	if got at-real rootmail; then
		expect_eq "at real: its sendmail argv" "$(head -n 1 "$ARGV")" "[-i][root]"
		expect_grep "at real: Subject" '^Subject: Output from your job +1$' "$H"
		expect_grep "at real: To" '^To: (root|rootmail@example\.test)$' "$H"
		expect_eq "at real: body (a lone dot kept: -i)" "$(sed '1,/^$/d' "$M")" "hi-from-at
.
done"
		sender "at real" root@example.test
	else
		echo "at/atd output: $(head -c 600 "$C/at.out")"
	fi
fi

# ==== 3. bsd-mailx ============================================================
# mail(1) runs the program named by "set sendmail" (default /usr/sbin/sendmail).
if need mailx bsd-mailx; then
	mail_clear
	printf 'set sendmail=%s\n' "$BIN/sendmail" >"$C/mailrc"
	printf 'Hello from mailx.\n\nSecond paragraph.\n' >"$C/mailx.body"
	: >"$ARGV"
	expect_exit 0 "mailx: mail -s -c -b exits 0" env MAILRC="$C/mailrc" \
		bsd-mailx -s "mailx subject" -c mx-cc@example.test -b mx-bcc@example.test \
		mx-to@example.test <"$C/mailx.body"
	echo "mailx ran: sendmail $(last_argv)"
	for lp in mx-to mx-cc mx-bcc; do
		got mailx "$lp" || continue
		expect_grep "mailx ($lp): Subject" '^Subject: mailx subject$' "$H"
		expect_grep "mailx ($lp): To" '^To: mx-to@example\.test$' "$H"
		expect_grep "mailx ($lp): Cc" '^Cc: mx-cc@example\.test$' "$H"
		expect_grep "mailx ($lp): From added" '^From: .*<root@example\.test>$' "$H"
		nobcc "mailx ($lp)"
		expect_eq "mailx ($lp): body" "$(sed '1,/^$/d' "$M")" "Hello from mailx.

Second paragraph."
		sender "mailx ($lp)" root@example.test
	done
fi

# ==== 4. mutt, with an attachment, over STARTTLS + AUTH =========================
if need mutt mutt; then
	mail_clear
	cat >"$C/muttrc" <<-EOF
	set sendmail="$BIN/sendmail -a submit"
	set from="Mutt Sender <mutt@example.test>"
	set use_envelope_from=yes
	set hostname=example.test
	set copy=no
	set record=""
	set charset=utf-8
	set send_charset="us-ascii:utf-8"
	unset signature
	EOF
	head -c 3000 /dev/urandom >"$C/attach.bin"
	printf 'Please find the file attached.\n\n-- \nmutt\n' >"$C/mutt.body"
	: >"$ARGV"
	expect_exit 0 "mutt: batch send with -a exits 0" \
		mutt -n -F "$C/muttrc" -s "mutt subject" -c mutt-cc@example.test \
		-b mutt-bcc@example.test -a "$C/attach.bin" -- mutt-to@example.test <"$C/mutt.body"
	echo "mutt ran: sendmail $(last_argv)"
	for lp in mutt-to mutt-cc mutt-bcc; do
		got mutt "$lp" || continue
		expect_grep "mutt ($lp): Subject" '^Subject: mutt subject$' "$H"
		expect_grep "mutt ($lp): From" '^From: Mutt Sender <mutt@example\.test>$' "$H"
		expect_grep "mutt ($lp): To" '^To: mutt-to@example\.test$' "$H"
		expect_grep "mutt ($lp): Cc" '^Cc: mutt-cc@example\.test$' "$H"
		nobcc "mutt ($lp)"
		sender "mutt ($lp)" mutt@example.test
		expect_grep "mutt ($lp): submitted with TLS and AUTH" \
			'with ESMTPSA id' "$RAW"
		expect_grep "mutt ($lp): multipart/mixed" \
			'^Content-Type: multipart/mixed; boundary=' "$H"
		if python3 - "$M" "$C/attach.bin" >"$C/mutt.$lp.py" 2>&1 <<-'EOF'
		import email, email.policy, sys
		msg = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
		want = open(sys.argv[2], "rb").read()
		parts = list(msg.iter_parts())
		assert msg.get_content_type() == "multipart/mixed", msg.get_content_type()
		assert len(parts) == 2, f"{len(parts)} parts"
		text = parts[0].get_content()
		assert parts[0].get_content_type() == "text/plain", parts[0].get_content_type()
		assert "Please find the file attached.\n" in text, repr(text)
		assert parts[1]["Content-Transfer-Encoding"].strip().lower() == "base64"
		assert parts[1].get_filename() == "attach.bin", parts[1].get_filename()
		got = parts[1].get_payload(decode=True)
		assert got == want, f"attachment differs: {len(got)} bytes, want {len(want)}"
		EOF
		then pass "mutt ($lp): MIME parts intact, attachment decodes to the file"
		else fail "mutt ($lp): MIME parts intact, attachment decodes to the file" \
			"$(tail -n 3 "$C/mutt.$lp.py")"
		fi
	done
fi

# ==== 5. git send-email =========================================================
if need git-send-email git && { [ -x "$(git --exec-path)/git-send-email" ] ||
	{ fail "git send-email: git-email installed" "git send-email is missing"; false; }; }; then
	mail_clear
	G=$C/git
	export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_DATE="2026-01-02T03:04:05Z" \
		GIT_COMMITTER_DATE="2026-01-02T03:04:05Z"
	(
		set -e
		git init -q -b main "$G"
		cd "$G"
		git config user.name "Dev Eloper"
		git config user.email dev@example.test
		printf 'line one\n.\nline three\n' >greeting.txt
		git add greeting.txt
		git commit -q -m "initial"
		printf 'line one\n.\nhello from git\nline three\n' >greeting.txt
		printf 'From the top\n' >new.txt
		git add greeting.txt new.txt
		git commit -q -m "callers: add greeting" -m "A body line.
.
A line after a lone dot."
		git format-patch -q -1 -o "$C/patches"
	) >"$C/git.out" 2>&1 || echo "git setup failed: $(cat "$C/git.out")"
	PATCH=$(find "$C/patches" -name '*.patch' 2>/dev/null | head -n 1)
	: >"$ARGV"
	expect_exit 0 "git send-email: exits 0" git -C "$G" send-email \
		--sendmail-cmd="$BIN/sendmail -i" --to=gs-to@example.test \
		--cc=gs-cc@example.test --from="Dev Eloper <dev@example.test>" \
		--envelope-sender=auto --confirm=never --no-validate --suppress-cc=all "${PATCH:-/nonexistent}"
	echo "git send-email ran: sendmail $(last_argv)"
	for lp in gs-to gs-cc; do
		got git-send-email "$lp" || continue
		expect_grep "git send-email ($lp): Subject" '^Subject: \[PATCH\] callers: add greeting$' "$H"
		expect_grep "git send-email ($lp): From" '^From: Dev Eloper <dev@example\.test>$' "$H"
		expect_grep "git send-email ($lp): To" '^To: gs-to@example\.test$' "$H"
		expect_grep "git send-email ($lp): Cc" '^Cc: gs-cc@example\.test$' "$H"
		expect_grep "git send-email ($lp): diff in body" '^\+hello from git$' "$M"
		expect_grep "git send-email ($lp): lone dot in body (-i)" '^\.$' "$M"
		sender "git send-email ($lp)" dev@example.test
	done
	# the delivered patch applies and gives the very same tree
	if [ -s "$C/msg/git-send-email-gs-to.raw" ] && (
		set -e
		git clone -q "$G" "$C/git-am"
		cd "$C/git-am"
		git config user.name "Dev Eloper"; git config user.email dev@example.test
		git reset -q --hard HEAD~1
		git am -q "$C/msg/git-send-email-gs-to.raw"
		[ "$(git rev-parse "HEAD^{tree}")" = "$(git -C "$G" rev-parse "HEAD^{tree}")" ]
		[ "$(git log -1 --format=%B)" = "$(git -C "$G" log -1 --format=%B)" ]
	) >"$C/git-am.out" 2>&1; then
		pass "git send-email: delivered patch applies with git am to the same tree and message"
	else
		fail "git send-email: delivered patch applies with git am to the same tree and message" \
			"$(head -c 600 "$C/git-am.out")"
	fi
fi

# ==== 6. PHP mail() ============================================================
if need php php; then
	mail_clear
	cat >"$C/mail.php" <<-'EOF'
	<?php
	$headers = "From: PHP App <php@example.test>\r\n"
	         . "Cc: php-cc@example.test\r\n"
	         . "Bcc: php-bcc@example.test\r\n"
	         . "X-Test: callers-php";
	$body = "Line one\r\nLine two\r\n.\r\n..two dots\r\nLast line";
	$ok = mail("php-to@example.test", "PHP subject", $body, $headers, "-f php@example.test");
	exit($ok ? 0 : 1);
	EOF
	: >"$ARGV"
	expect_exit 0 "php mail(): returns true" php -n \
		-d sendmail_path="$BIN/sendmail -t -i" "$C/mail.php"
	echo "php ran: sendmail $(last_argv)"
	for lp in php-to php-cc php-bcc; do
		got php "$lp" || continue
		expect_grep "php ($lp): Subject" '^Subject: PHP subject$' "$H"
		expect_grep "php ($lp): To" '^To: php-to@example\.test$' "$H"
		expect_grep "php ($lp): Cc" '^Cc: php-cc@example\.test$' "$H"
		expect_grep "php ($lp): From" '^From: PHP App <php@example\.test>$' "$H"
		expect_grep "php ($lp): X-Test" '^X-Test: callers-php$' "$H"
		nobcc "php ($lp)"
		sender "php ($lp)" php@example.test
		expect_eq "php ($lp): body lines" "$(sed '1,/^$/d' "$M")" "Line one
Line two
.
..two dots
Last line"
		expect_nogrep "php ($lp): no stray CR" $'\r' "$M"
	done
fi

# ==== 7. Alpine-style sendmail -bs ===============================================
# The caller speaks SMTP to "sendmail -bs -odb -oem" over a pipe.

# bs_start: run "sendmail -bs -odb -oem" with FIFOs for its standard input and
# output; BS_W writes to it, BS_R reads its replies, BS_PID is its pid.
bs_start() {
	rm -f "$C/bs.in" "$C/bs.out"
	mkfifo "$C/bs.in" "$C/bs.out"
	: >"$C/bs.err"
	"$BIN/sendmail" -bs -odb -oem <"$C/bs.in" >"$C/bs.out" 2>>"$C/bs.err" &
	BS_PID=$!
	exec {BS_W}>"$C/bs.in" {BS_R}<"$C/bs.out"
}
# bs_end NAME: close its input; it must exit 0 within 10 s.
bs_end() {
	local rc
	exec {BS_W}>&- {BS_R}<&-
	for _ in $(seq 100); do kill -0 "$BS_PID" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$BS_PID" 2>/dev/null; then
		kill "$BS_PID"; fail "$1" "still running 10 s after QUIT"
	else
		wait "$BS_PID"; rc=$?
		expect_eq "$1" "$rc" 0
		[ "$rc" = 0 ] || echo "  stderr: $(head -c 300 "$C/bs.err")"
	fi
}
# bs_reply: read one (possibly multi-line) reply and print its lines; return 1
# on timeout (5 s) or end of file.
bs_reply() {
	local line
	while IFS= read -r -t 5 line <&"$BS_R"; do
		line=${line%$'\r'}
		printf '%s\n' "$line"
		[[ $line =~ ^[0-9]{3}- ]] && continue
		return 0
	done
	return 1
}
# bs_send LINE: write LINE and CRLF to it (in a subshell: should it have gone,
# SIGPIPE ends only that).
bs_send() { (printf '%s\r\n' "$1" 1>&"$BS_W") 2>/dev/null; }
# bs_code NAME WANT-REGEX [LINE]: send LINE (if given), read the reply, check its code.
bs_code() {
	local name=$1 want=$2 r
	[ $# -ge 3 ] && bs_send "$3"
	r=$(bs_reply)
	if [[ ${r##*$'\n'} =~ ^($want)[\ -] ]]; then pass "$name"
	else fail "$name" "reply [${r:-no reply}], want /$want/; stderr: $(head -c 300 "$C/bs.err")"; fi
}

mail_clear
# 7a: interactive, as Alpine does: errors first.
bs_start
bs_code "-bs: 220 greeting" 220
bs_code "-bs: HELO gets 250" 250 "HELO client.example.test"
bs_code "-bs: RCPT before MAIL gets 503" 503 "RCPT TO:<bs-to@example.test>"
bs_code "-bs: unknown command gets 500/502" '500|502' "XYZZY frobnicate"
bs_code "-bs: DATA before MAIL/RCPT gets 503" '503|554' "DATA"
bs_code "-bs: NOOP gets 250" 250 "NOOP"
bs_code "-bs: QUIT gets 221" 221 "QUIT"
bs_end "-bs: exits 0 after QUIT (errors only)"

# 7b: interactive, one message for two recipients.
bs_start
bs_code "-bs 2: 220 greeting" 220
bs_code "-bs 2: EHLO gets 250" 250 "EHLO client.example.test"
bs_code "-bs 2: MAIL gets 250" 250 "MAIL FROM:<bs@example.test>"
bs_code "-bs 2: RCPT gets 250" 250 "RCPT TO:<bs-to@example.test>"
bs_code "-bs 2: second RCPT gets 250" 250 "RCPT TO:<bs-cc@example.test>"
bs_code "-bs 2: DATA gets 354" 354 "DATA"
for l in "From: Alpine User <bs@example.test>" "To: bs-to@example.test" \
	"Cc: bs-cc@example.test" "Subject: alpine via -bs" "" "first line" \
	"..a line that starts with a dot" "last line"; do
	bs_send "$l"
done
bs_code "-bs 2: end of data gets 250" 250 "."
bs_code "-bs 2: QUIT gets 221" 221 "QUIT"
bs_end "-bs 2: exits 0"
for lp in bs-to bs-cc; do
	got bs "$lp" || continue
	expect_grep "-bs ($lp): Subject" '^Subject: alpine via -bs$' "$H"
	expect_grep "-bs ($lp): To" '^To: bs-to@example\.test$' "$H"
	expect_grep "-bs ($lp): Cc" '^Cc: bs-cc@example\.test$' "$H"
	expect_eq "-bs ($lp): body (dot unstuffed)" "$(sed '1,/^$/d' "$M")" "first line
.a line that starts with a dot
last line"
	sender "-bs ($lp)" bs@example.test
done

# 7c: the whole dialogue written at once on standard input (a scripted caller).
mail_clear
printf '%s\r\n' "HELO script.example.test" "MAIL FROM:<bs-script@example.test>" \
	"RCPT TO:<bs-script-to@example.test>" "DATA" "Subject: scripted -bs" "" \
	"scripted body" "." "QUIT" >"$C/bs-script.in"
expect_exit 0 "-bs scripted: exits 0" sendmail -bs -odb -oem <"$C/bs-script.in"
cp "$OUT" "$C/bs-script.out"
expect_eq "-bs scripted: reply codes 220 250 250 250 354 250 221" \
	"$(tr -d '\r' <"$C/bs-script.out" | grep -E '^[0-9]{3}( |$)' | cut -c1-3 | tr '\n' ' ')" \
	"220 250 250 250 354 250 221 "
if got bs-script bs-script-to; then
	expect_grep "-bs scripted: Subject" '^Subject: scripted -bs$' "$H"
	expect_eq "-bs scripted: body" "$(sed '1,/^$/d' "$M")" "scripted body"
	sender "-bs scripted" bs-script@example.test
fi

# ==== 9. options as callers glue and repeat them ===================================
mail_clear
printf '%s\n' "To: opt-to@example.test" "Cc: Opt Cc <opt-cc@example.test>" \
	"Bcc: opt-bcc@example.test" "Subject: glued options" \
	"MIME-Version: 1.0" "Content-Type: text/plain; charset=utf-8" \
	"Content-Transfer-Encoding: 8bit" "" "café au lait" "." "after the dot" >"$C/opt.msg"
expect_exit 0 "options: -fuser@ -FName -oi -odi -B8BITMIME -N success,failure -Ooption=value -t + argument" \
	sendmail -fglued@example.test -FGlued -oi -odi -B8BITMIME -N success,failure \
	-OMaxHopCount=30 -t opt-arg@example.test <"$C/opt.msg"
for lp in opt-to opt-cc opt-bcc opt-arg; do
	got options "$lp" || continue
	expect_grep "options ($lp): From added from -F and -f" '^From: "?Glued"? <glued@example\.test>$' "$H"
	expect_grep "options ($lp): To" '^To: opt-to@example\.test$' "$H"
	expect_grep "options ($lp): Cc" '^Cc: Opt Cc <opt-cc@example\.test>$' "$H"
	nobcc "options ($lp)"
	sender "options ($lp)" glued@example.test
	expect_eq "options ($lp): 8-bit body and lone dot kept" "$(sed '1,/^$/d' "$M")" "café au lait
.
after the dot"
done
# NOTIFY=SUCCESS reached Postfix: it reports the deliveries to glued@.
for _ in $(seq 100); do [ "$(mail_count glued)" -ge 1 ] && break; sleep 0.1; done
if [ "$(mail_count glued)" -ge 1 ]; then
	pass "options: -N success,failure: Postfix sent a success DSN to the sender"
	expect_grep "options: the DSN reports delivery" '^Action: (delivered|relayed)' \
		"$(find "$PF_MAIL/glued/new" -type f | head -n 1)"
else
	fail "options: -N success,failure: Postfix sent a success DSN to the sender" \
		"no message for glued@ within 10 s"
fi

# The same options spaced out and repeated; a duplicate recipient gets one copy;
# an alias with two targets reaches both.
mail_clear
printf 'Subject: spaced options\n\nspaced\n' >"$C/opt2.msg"
LOG0=$(wc -l <"$PF_LOG")
expect_exit 0 "options: -f ADDR -F 'Two Words' -i -i -oi -B 8BITMIME -N never -R hdrs -V envid -oem -oem" \
	sendmail -f spaced@example.test -F "Two Words" -i -i -oi -B 8BITMIME -N never \
	-R hdrs -V envid-1 -oem -oem -- rep@example.test 'Rep <rep@example.test>' team \
	<"$C/opt2.msg"
for lp in rep team-a team-b; do
	got options2 "$lp" || continue
	expect_grep "options2 ($lp): From" '^From: "?Two Words"? <spaced@example\.test>$' "$H"
	expect_eq "options2 ($lp): body" "$(sed '1,/^$/d' "$M")" "spaced"
	sender "options2 ($lp)" spaced@example.test
done
# -N never: no DSN. Postfix queues a DSN before it removes the message, so
# wait for the removal of every entry from spaced@, then look for one.
pfids=
for _ in $(seq 100); do
	pflog=$(tail -n +"$((LOG0 + 1))" "$PF_LOG")
	pfids=$(sed -nE 's/.*: ([0-9A-Za-z]+): from=<spaced@example\.test>.*/\1/p' <<<"$pflog" | sort -u)
	left=0
	for q in $pfids; do grep -q ": $q: removed" <<<"$pflog" || left=1; done
	[ -n "$pfids" ] && [ "$left" = 0 ] && break
	sleep 0.1
done
expect_eq "options2: Postfix is done with the message" "$([ -n "$pfids" ] && echo "$left")" 0
tail -n +"$((LOG0 + 1))" "$PF_LOG" >"$C/options2.maillog"
expect_nogrep "options2: -N never: no DSN queued" \
	": ($(echo $pfids | tr ' ' '|')): sender (delivery status|non-delivery) notification" \
	"$C/options2.maillog"
expect_eq "options2: -N never: no DSN to the sender" "$(mail_count spaced)" 0

# ==== 8. mailq and newaliases ======================================================
expect_exit 0 "mailq: exits 0" "$BIN/mailq" -C "$CFG"
expect_eq "mailq: queue empty after all the deliveries" "$(cat "$OUT")" "Mail queue is empty"
expect_exit 0 "newaliases: exits 0" "$BIN/newaliases" -C "$CFG"
expect_eq "newaliases: counts the aliases" "$(cat "$OUT")" "$ALIASES: 3 aliases"
expect_exit 0 "sendmail -bp: same as mailq" sendmail -bp
expect_eq "sendmail -bp: queue empty" "$(cat "$OUT")" "Mail queue is empty"
expect_exit 0 "sendmail -bi: same as newaliases" sendmail -bi
expect_eq "sendmail -bi: counts the aliases" "$(cat "$OUT")" "$ALIASES: 3 aliases"
if [ -s "$C/dead.letter" ]; then
	fail "callers: nothing in dead.letter" "$(head -c 400 "$C/dead.letter")"
else
	pass "callers: nothing in dead.letter"
fi
