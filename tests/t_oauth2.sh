#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# OAuth2: outbox against tests/tokensrv.py (an HTTPS token server with the
# suite's test CA) and tests/faultsmtp.py taking XOAUTH2 / OAUTHBEARER only
# with a token the token server issued. Each grant delivers; a cached token
# saves the token request; a short-lived or refused token is replaced; a
# revoked grant or a dead endpoint queues the message with the fix; the
# device login stores a refresh token; no secret reaches -v or the log.
# Needs: python3, openssl. Run via tests/run.sh.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
: "${TESTROOT:=$(mktemp -d /tmp/outbox-oauth2.XXXXXX)}"
FS=$TESTROOT/oauth2
rm -rf "$FS"; mkdir -p "$FS/tok" "$FS/queue"
chmod 700 "$FS/queue"
TOK_PID=
trap 'fault_stop; [ -n "$TOK_PID" ] && kill "$TOK_PID" 2>/dev/null' EXIT

fault_certs
# The application's key: PEM with its certificate (client assertion), and
# the same key as a Google service account's JSON key (jwt_bearer).
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
	-out "$FS/app.key" 2>/dev/null
openssl pkey -in "$FS/app.key" -pubout -out "$FS/app.pub" 2>/dev/null
openssl req -x509 -key "$FS/app.key" -subj /CN=app -days 2 \
	-out "$FS/app.crt" 2>/dev/null
cat "$FS/app.key" "$FS/app.crt" >"$FS/app.pem"
python3 -c 'import json, sys
print(json.dumps({"type": "service_account", "client_email": "svc@example.test",
    "private_key": open(sys.argv[1]).read(), "client_id": "1234"}))' \
	"$FS/app.key" >"$FS/google.json"
printf 'app-secret\n' >"$FS/secret"
printf 'rt-first\n' >"$FS/tok/refresh"
cp "$FS/tok/refresh" "$FS/rt.token"
chmod 600 "$FS/app.pem" "$FS/google.json" "$FS/secret" "$FS/rt.token"

rm -f "$FS/tok.port"
python3 "$here/tokensrv.py" --port-file "$FS/tok.port" --state "$FS/tok" \
	--cert "$FS/pki/srv.pem" --key "$FS/pki/srv.key" --pubkey "$FS/app.pub" \
	--max-time 300 2>"$FS/tok.err" &
TOK_PID=$!
for _ in $(seq 100); do [ -s "$FS/tok.port" ] && break; sleep 0.05; done
TPORT=$(cat "$FS/tok.port" 2>/dev/null)
[ -n "$TPORT" ] || echo "tokensrv did not start: $(cat "$FS/tok.err")"
: >"$FS/tok/tokens"
fault_start smtp --max-time 300 --io-timeout 15 "${TLSARGS[@]}" \
	--ext "PIPELINING,8BITMIME,ENHANCEDSTATUSCODES,STARTTLS,AUTH=XOAUTH2 OAUTHBEARER PLAIN" \
	--oauth2-token-file "$FS/tok/tokens"
SLOG=$LOG

CFG=$FS/outbox.conf
OLOG=$FS/outbox.log
# acct NAME LINE...: an account on the servers above; the LINEs last.
acct() {
	printf '\naccount %s\n' "$1"; shift
	printf '%s\n' "host 127.0.0.1" "port $PORT" "tls starttls" \
		"tls_ca_file $CA" "timeout 5" "log $OLOG" \
		"user alice@example.test" "auth xoauth2" \
		"oauth2_token_url https://127.0.0.1:$TPORT/token" \
		"oauth2_device_url https://127.0.0.1:$TPORT/device" \
		"oauth2_client_id app" "oauth2_ca_file $CA" "$@"
}
secret=(oauth2_grant\ client_credentials "oauth2_client_secret_file $FS/secret")
{
	echo "queue_dir $FS/queue"
	acct cc "${secret[@]}"
	acct bearer "${secret[@]}" "auth oauthbearer"
	acct ccert "oauth2_grant client_credentials" "oauth2_key_file $FS/app.pem"
	acct rt "oauth2_grant refresh_token" "oauth2_refresh_token_file $FS/rt.token"
	acct jwt "oauth2_grant jwt_bearer" "oauth2_key_file $FS/google.json" \
		"oauth2_scope https://mail.google.com/"
	acct dev "oauth2_grant refresh_token" "oauth2_refresh_token_file $FS/dev.token"
	acct down "${secret[@]}" "oauth2_token_url https://127.0.0.1:1/token"
	acct slow "${secret[@]}" "timeout 2"
} >"$CFG"
chmod 600 "$CFG"
MSG=$FS/msg
printf 'From: alice@example.test\nTo: b@example.test\nSubject: oauth2 test\n\nhello\n' >"$MSG"

# requests: how many token requests the server has answered.
requests() { grep -c '^/token' "$FS/tok/requests" 2>/dev/null || echo 0; }
# accepted: how many AUTHs faultsmtp took with an issued token.
accepted() { grep -c 'token accepted' "$SLOG"; }
# delivered: how many messages faultsmtp received.
delivered() { grep -c '^D: end of data' "$SLOG"; }
# queued: how many entries wait in the queue.
queued() { find "$FS/queue" -name '*.env' | wc -l; }
# send NAME ACCOUNT WANT [ARGS]: one submission, stderr kept in $FS/NAME.err.
send() {
	local name=$1 acct=$2 want=$3; shift 3
	expect_exit "$want" "oauth2-$name-exit" "$OUTBOX" -C "$CFG" -a "$acct" \
		"$@" -i -f alice@example.test b@example.test <"$MSG"
	cp "$ERR" "$FS/$name.err"
}
# script ACTION...: the token server's next answers.
script() { printf '%s\n' "$@" >"$FS/tok/script"; }

# --- client_credentials with a secret; the second send uses the cache --------
n0=$(delivered)
send cc cc 0 -v
expect_eq oauth2-cc-delivered "$(delivered)" $((n0 + 1))
expect_eq oauth2-cc-one-request "$(requests)" 1
expect_grep oauth2-cc-xoauth2 '^-> AUTH XOAUTH2 <redacted>$' "$FS/cc.err"
expect_grep oauth2-cc-post-shown '^-> POST https://127.0.0.1:[0-9]+/token$' "$FS/cc.err"
cache=$(ls "$FS"/queue/oauth2.*.cc.token 2>/dev/null)
expect_eq oauth2-cc-cache-mode "$(stat -c %a "$cache" 2>/dev/null)" 600
send cc2 cc 0
expect_eq oauth2-cached-no-request "$(requests)" 1
expect_eq oauth2-cached-delivered "$(delivered)" $((n0 + 2))

# --- OAUTHBEARER ------------------------------------------------------------
send bearer bearer 0 -v
expect_grep oauth2-bearer-mech '^-> AUTH OAUTHBEARER <redacted>$' "$FS/bearer.err"
expect_eq oauth2-bearer-delivered "$(delivered)" $((n0 + 3))

# --- a short-lived token (30 s: under a minute left) is replaced -------------
rm -f "$cache"
script short
r0=$(requests)
send short1 cc 0
send short2 cc 0
expect_eq oauth2-short-refreshed "$(requests)" $((r0 + 2))
expect_eq oauth2-short-delivered "$(delivered)" $((n0 + 5))

# --- a token the server no longer takes: AUTH refused, one new token --------
r0=$(requests)
: >"$FS/tok/tokens"
send revoked-token cc 0 -v
expect_eq oauth2-invalid-token-one-request "$(requests)" $((r0 + 1))
expect_eq oauth2-invalid-token-delivered "$(delivered)" $((n0 + 6))
expect_eq oauth2-invalid-token-two-auths "$(grep -c '^-> AUTH XOAUTH2' "$FS/revoked-token.err")" 2

# --- client_credentials with a certificate assertion (RFC 7523 2.2) ---------
send ccert ccert 0
expect_grep oauth2-ccert-request '^/token client_credentials ok' "$FS/tok/requests"
expect_eq oauth2-ccert-delivered "$(delivered)" $((n0 + 7))

# --- jwt_bearer with a Google JSON key (RFC 7523 2.1) -----------------------
send jwt jwt 0
expect_grep oauth2-jwt-request '^/token jwt-bearer ok' "$FS/tok/requests"
expect_eq oauth2-jwt-delivered "$(delivered)" $((n0 + 8))

# --- refresh_token, rotated: the new one is saved before the old is gone ----
script rotate
send rt rt 0
expect_eq oauth2-rt-delivered "$(delivered)" $((n0 + 9))
expect_eq oauth2-rt-rotated-saved "$(cat "$FS/rt.token")" "$(cat "$FS/tok/refresh")"
expect_eq oauth2-rt-file-mode "$(stat -c %a "$FS/rt.token")" 600
check oauth2-rt-no-temp-left test -z "$(ls "$FS"/rt.token.* 2>/dev/null)"
rm -f "$FS"/queue/oauth2.*.rt.token
send rt-again rt 0
expect_grep oauth2-rt-rotated-works '^/token refresh_token ok$' "$FS/tok/requests"

# --- a revoked grant: queued, the fix on stderr and in the log --------------
rm -f "$FS"/queue/oauth2.*.rt.token
q0=$(queued)
script invalid_grant
send revoked rt 0
expect_eq oauth2-revoked-queued "$(queued)" $((q0 + 1))
expect_grep oauth2-revoked-fix-stderr 'invalid_grant.*run outbox --oauth2-login -a rt' "$FS/revoked.err"
expect_grep oauth2-revoked-fix-log 'invalid_grant.*run outbox --oauth2-login -a rt' "$OLOG"
expect_grep oauth2-revoked-description 'AADSTS70000' "$FS/revoked.err"

# --- the endpoint down, 500, 429: queued, temporary --------------------------
q0=$(queued)
send down down 0
expect_eq oauth2-down-queued "$(queued)" $((q0 + 1))
expect_grep oauth2-down-says 'token endpoint https://127.0.0.1:1/token' "$OLOG"
# Temporary and the message safe: nothing on a non-terminal stderr.
expect_eq oauth2-down-quiet "$(cat "$FS/down.err")" ""
rm -f "$FS"/queue/oauth2.*.cc.token
script 500
send e500 cc 0
expect_grep oauth2-500-temporary 'HTTP 500; will try again' "$OLOG"
script 429
send e429 cc 0
expect_grep oauth2-429-retry-after 'HTTP 429.*retry after 7 s' "$OLOG"
script stall
t0=$(date +%s)
send stall slow 0
expect_grep oauth2-stall-timeout 'token endpoint.*no complete response within 2 s' "$OLOG"
check oauth2-stall-bounded test $(( $(date +%s) - t0 )) -le 6
expect_eq oauth2-5xx-429-stall-queued "$(queued)" $((q0 + 4))
# A response dripped one octet a second: one deadline covers the whole
# exchange, so outbox leaves long before the response is complete; the
# message waits, and (the endpoint only slow) nothing is said on a
# non-terminal stderr.
script drip
send drip slow 0
expect_eq oauth2-drip-queued "$(queued)" $((q0 + 5))
for _ in $(seq 100); do grep -q '^/token client_credentials drip' "$FS/tok/requests" && break; sleep 0.1; done
read -r got head < <(sed -n 's|^/token client_credentials drip \([0-9]*\)/[0-9]* head \([0-9]*\)$|\1 \2|p' "$FS/tok/requests" | tail -1)
# Left while the status line and headers still dripped (each octet came
# well within timeout: only the one deadline can end it there).
check oauth2-drip-left-during-the-headers test "${got:-999}" -lt "${head:-0}"
expect_eq oauth2-drip-quiet "$(cat "$FS/drip.err")" "" 
sed 's/^queue_dir .*/queue off/' "$CFG" >"$FS/noqueue.conf"
chmod 600 "$FS/noqueue.conf"
expect_exit 75 oauth2-queue-off-75 "$OUTBOX" -C "$FS/noqueue.conf" -a down \
	-i b@example.test <"$MSG"

# --- the device login (RFC 8628) stores a refresh token the next send uses ---
script pending slow_down
t0=$(date +%s)
expect_exit 0 oauth2-login-exit "$OUTBOX" -C "$CFG" --oauth2-login -a dev
cp "$ERR" "$FS/login.err"
expect_grep oauth2-login-shows-code 'open https://127.0.0.1/devicelogin and enter the code WDJB-MJHT' "$FS/login.err"
expect_grep oauth2-login-pending '^/token device_code authorization_pending' "$FS/tok/requests"
expect_grep oauth2-login-slow-down '^/token device_code slow_down' "$FS/tok/requests"
check oauth2-login-slowed test $(( $(date +%s) - t0 )) -ge 7
expect_eq oauth2-login-stored "$(cat "$FS/dev.token" 2>/dev/null)" "$(cat "$FS/tok/refresh")"
expect_eq oauth2-login-file-mode "$(stat -c %a "$FS/dev.token" 2>/dev/null)" 600
rm -f "$FS"/queue/oauth2.*.dev.token
send dev dev 0
expect_grep oauth2-dev-uses-refresh '^/token refresh_token ok' "$FS/tok/requests"
script access_denied
expect_exit 78 oauth2-login-denied "$OUTBOX" -C "$CFG" --oauth2-login -a dev
expect_grep oauth2-login-denied-says 'declined' "$ERR"
expect_exit 78 oauth2-login-wrong-grant "$OUTBOX" -C "$CFG" --oauth2-login -a cc

# --- SIGTERM stops the device login while it polls: 75, nothing saved -------
script pending pending pending pending pending pending pending pending pending pending
before=$(cat "$FS/dev.token")
"$OUTBOX" -C "$CFG" --oauth2-login -a dev 2>"$FS/login-term.err" &
lpid=$!
for _ in $(seq 100); do grep -q 'enter the code' "$FS/login-term.err" && break; sleep 0.1; done
kill -TERM "$lpid"
wait "$lpid"
expect_eq oauth2-login-sigterm-75 "$?" 75
expect_grep oauth2-login-sigterm-says 'stopped by signal 15 before the sign-in; nothing was saved' "$FS/login-term.err"
expect_eq oauth2-login-sigterm-nothing-saved "$(cat "$FS/dev.token")" "$before"
: >"$FS/tok/script"

# --- temporary files of the token files older than an hour are swept --------
touch -d '2 hours ago' "$FS/dev.token.Old123"
touch "$FS/dev.token.New123"
script rotate
rm -f "$FS"/queue/oauth2.*.dev.token
send sweep dev 0
expect_eq oauth2-tmp-rotated "$(cat "$FS/dev.token")" "$(cat "$FS/tok/refresh")"
check oauth2-tmp-old-swept test ! -e "$FS/dev.token.Old123"
check oauth2-tmp-young-kept test -e "$FS/dev.token.New123"
rm -f "$FS/dev.token.New123"

# --- --check shows the token step, and stops there when there is none -------
rm -f "$FS"/queue/oauth2.*.cc.token
expect_exit 0 oauth2-check-ok "$OUTBOX" -C "$CFG" -a cc --check
expect_grep oauth2-check-ok-grant '^oauth2: grant client_credentials, client app, token endpoint https://127\.0\.0\.1:[0-9]+/token$' "$OUT"
expect_grep oauth2-check-ok-token '^oauth2: token ok \(new\), expires in [0-9]+ s$' "$OUT"
expect_grep oauth2-check-ok-verdict '^verdict +ok' "$OUT"
cp "$OUT" "$FS/check-ok.out"
rm -f "$FS"/queue/oauth2.*.rt.token
script invalid_grant
expect_exit 75 oauth2-check-revoked "$OUTBOX" -C "$CFG" -a rt --check
expect_grep oauth2-check-revoked-token '^oauth2: token FAILED: .*invalid_grant.*run outbox --oauth2-login -a rt' "$OUT"
expect_grep oauth2-check-revoked-verdict '^verdict +FAILED at the token endpoint' "$OUT"
expect_nogrep oauth2-check-revoked-no-connect '^connect ' "$OUT"
cp "$OUT" "$FS/check-revoked.out"

# --- no secret in -v or the log ---------------------------------------------
cat "$FS/tok/tokens" "$FS/rt.token" "$FS/dev.token" >"$FS/secrets"
echo app-secret >>"$FS/secrets"
leak=
for f in "$FS"/*.err "$FS"/check-*.out "$OLOG"; do
	while read -r s; do
		[ -n "$s" ] && grep -qF -- "$s" "$f" && leak="$leak $f"
	done <"$FS/secrets"
done
expect_eq oauth2-no-secret-in-v-or-log "$leak" ""
check oauth2-secrets-list-nonempty test "$(wc -l <"$FS/secrets")" -ge 4

# --- a group-readable secret file is refused --------------------------------
chmod 640 "$FS/secret"
expect_exit 78 oauth2-group-readable-78 "$OUTBOX" -C "$CFG" -a cc \
	-i b@example.test <"$MSG"
expect_grep oauth2-group-readable-says 'chmod 600' "$ERR"
chmod 600 "$FS/secret"
chmod 640 "$FS/rt.token"
expect_exit 78 oauth2-group-readable-refresh-78 "$OUTBOX" -C "$CFG" -a rt \
	-i b@example.test <"$MSG"
expect_grep oauth2-group-readable-refresh-says "rt.token.*chmod 600" "$ERR"
chmod 600 "$FS/rt.token"
printf 'oauth2_grant password\n' >>"$CFG"
expect_exit 78 oauth2-bad-grant-78 "$OUTBOX" -C "$CFG" -a cc -bv b@example.test

# --- OAUTH2_BENCH=N: what a token costs a send (not a test; prints only) ----
# N sends each: with a password (AUTH PLAIN), with the cached token, and
# with a token fetched each time (the cache removed first).
bench() {
	local what=$1 acct=$2 n=$3 i t0 r0
	r0=$(requests)
	t0=$(date +%s%N)
	for i in $(seq "$n"); do
		[ "$what" = refresh ] && rm -f "$FS"/queue/oauth2.*."$acct".token
		"$OUTBOX" -C "$CFG" -a "$acct" -i -f alice@example.test \
			b@example.test <"$MSG" || echo "bench: send failed"
	done
	printf 'bench %-9s %6.1f ms a send, %s token requests in %s sends\n' "$what" \
		"$(echo "($(date +%s%N) - $t0) / 1000000 / $n" | bc -l)" \
		$(( $(requests) - r0 )) "$n"
}
if [ -n "${OAUTH2_BENCH:-}" ]; then
	sed -i '/^oauth2_grant password$/d' "$CFG"
	acct pw "auth plain" "password secret" | sed 's/^user .*/user alice/' >>"$CFG"
	sed -i '/^account pw$/,$ { /^oauth2_/d }' "$CFG"
	rm -f "$FS"/queue/*.env "$FS"/queue/*.msg
	"$OUTBOX" -C "$CFG" -a cc -i b@example.test <"$MSG"	# a token cached
	bench password pw "$OAUTH2_BENCH"
	bench cached cc "$OAUTH2_BENCH"
	bench refresh cc "$OAUTH2_BENCH"
fi

fault_stop
