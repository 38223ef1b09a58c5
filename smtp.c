/* SPDX-License-Identifier: ISC */
/*
 * The SMTP client's session (RFC 5321): connect, greeting, EHLO, STARTTLS,
 * AUTH (run by smtpauth.c), QUIT. Commands, replies and failures are
 * smtpio.c's; smtptx.c runs the transactions over the session.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "outbox.h"
#include "io.h"
#include "smtp.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR	"/etc"
#endif

#define REOPEN_MAX	3		/* new sessions after 421s, per run */

static int	dial(struct session *, const char *, char *, size_t);
static void	ehlo_line(struct session *, const char *);
static enum status ehlo(struct session *);
static enum status greet(struct session *, const char *);
static enum status session_refused(struct session *, enum stage,
		    const char *);
static enum status starttls(struct session *, const char *);
static int	smtp_tls(struct session *, const char *, char *, size_t);
static enum status tls_failed(struct session *, const char *);

/*
 * Connects to one host: every address in turn, each with the timeout, the
 * name resolved within the session's bound.
 */
static int
dial(struct session *s, const char *host, char *why, size_t whylen)
{
	char		 port[16];
	long long	 ms = s->acct->timeout * 1000LL;

	snprintf(port, sizeof(port), "%lld", s->acct->port);
	if (s->acct->session_timeout > 0 &&
	    s->acct->session_timeout * 1000LL < ms)
		ms = s->acct->session_timeout * 1000LL;
	return io_dial(host, port, s->acct->timeout * 1000LL, mono_ms() + ms,
	    s->addr, sizeof(s->addr), why, whylen);
}

static void
ehlo_line(struct session *s, const char *l)
{
	static const struct { const char *kw; unsigned bit; } ext[] = {
		{ "PIPELINING", EXT_PIPELINING }, { "STARTTLS", EXT_STARTTLS },
		{ "8BITMIME", EXT_8BITMIME }, { "SMTPUTF8", EXT_SMTPUTF8 },
		{ "DSN", EXT_DSN }, { "SIZE", EXT_SIZE },
		{ "CHUNKING", EXT_CHUNKING },
		{ "ENHANCEDSTATUSCODES", EXT_ENHANCED }, { "AUTH", EXT_AUTH },
		{ "REQUIRETLS", EXT_REQUIRETLS },
	};
	size_t		 i, n;
	const char	*e;

	smtplimits_ehlo(s, l);
	for (i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		n = strlen(ext[i].kw);
		if (strncasecmp(l, ext[i].kw, n) != 0 ||
		    (l[n] != '\0' && l[n] != ' ' && l[n] != '='))
			continue;
		s->ext |= ext[i].bit;
		if (ext[i].bit == EXT_SIZE && l[n] == ' ')
			s->size_max = strtonum(l + n + 1, 0, 1LL << 50, &e);
		if (ext[i].bit == EXT_AUTH && l[n] != '\0' &&
		    s->mechs[0] == '\0')
			strlcpy(s->mechs, l + n + 1, sizeof(s->mechs));
	}
}

/* EHLO, or HELO when EHLO is refused and neither TLS nor AUTH is needed. */
static enum status
ehlo(struct session *s)
{
	int	code;

	s->ext = 0;
	s->size_max = 0;
	s->mechs[0] = '\0';
	smtplimits_ehlo(s, NULL);
	s->stage = STAGE_EHLO;
	if (smtpio_command(s, 0, "EHLO %s", s->acct->helo) == -1 ||
	    (code = smtpio_read(s, ehlo_line)) == -1)
		return ST_TEMP;
	if (code == 250)
		return ST_OK;
	if (code >= 500 && code != 554 && s->acct->tls == TLS_OFF &&
	    strcmp(s->acct->auth, "off") == 0) {
		if (smtpio_command(s, 0, "HELO %s", s->acct->helo) == -1)
			return ST_TEMP;
		if ((code = smtpio_reply(s)) == 250)
			return ST_OK;
		if (code == -1 || !s->connected)
			return ST_TEMP;
	}
	if (!s->connected)
		return ST_TEMP;		/* 421: closing() said it */
	return session_refused(s, STAGE_EHLO, "EHLO refused");
}

/*
 * A refusal of the session rather than of a message (greeting, EHLO,
 * STARTTLS, AUTH): a 5xx needs an administrator, a 4xx may pass. Either
 * way the message waits; returns ST_TEMP.
 */
static enum status
session_refused(struct session *s, enum stage stage, const char *what)
{
	smtpio_refused(s, stage, "%s: %d %s", what, s->reply.code, s->reply.text);
	if (s->fail.class == FC_PERM)
		s->fail.class = FC_CONFIG;
	return ST_TEMP;
}

/* STARTTLS (RFC 3207): no fallback to plaintext, no bytes from before. */
static enum status
starttls(struct session *s, const char *host)
{
	char	err[256];
	int	code;

	s->stage = STAGE_STARTTLS;
	if (!(s->ext & EXT_STARTTLS))
		return smtpio_failx(s, STAGE_STARTTLS, FC_CONFIG, "the server "
		    "does not offer STARTTLS; refusing to continue in clear "
		    "(set tls implicit for port 465, or tls off)");
	if (smtpio_command(s, 0, "STARTTLS") == -1 ||
	    (code = smtpio_reply(s)) == -1 || !s->connected)
		return ST_TEMP;
	if (code != 220)
		return session_refused(s, STAGE_STARTTLS, "STARTTLS refused");
	/* Bytes after the 220 came in clear: CVE-2011-0411 class. */
	if (io_pending(&s->io) > 0)
		return smtpio_fail(s, "the server sent data after its STARTTLS "
		    "reply; possible injection attack");
	s->stage = STAGE_TLS;
	if (smtp_tls(s, host, err, sizeof(err)) == -1)
		return tls_failed(s, err);
	return ehlo(s);
}

/* The handshake for s's account, with its session cache; -1 with err. */
static int
smtp_tls(struct session *s, const char *host, char *err, size_t errlen)
{
	const struct tlspeer p = {
		.pin = s->acct->tls_fingerprint,
		.implicit = s->acct->tls == TLS_IMPLICIT,
		.port = s->acct->port,
		.cache = s->acct,
		.cache_dir = s->state_dir,
		.verbose = s->verbose,
	};

	return tls_start(&s->io, s->ctx, host, &p, &s->fail.class, err,
	    errlen);
}

/*
 * A failed handshake: tls_start left in s->fail.class whether it needs an
 * administrator (a certificate, a wrong TLS mode: FC_CONFIG) or may pass.
 */
static enum status
tls_failed(struct session *s, const char *err)
{
	return smtpio_failx(s, STAGE_TLS, s->fail.class == FC_CONFIG ?
	    FC_CONFIG : FC_TEMP, "TLS: %s", err);
}

/* Greeting, EHLO, STARTTLS and AUTH on a connected socket. */
static enum status
greet(struct session *s, const char *host)
{
	char		err[256];
	int		code;
	enum status	st;

	io_init(&s->io, s->io.fd, s->acct->timeout * 1000);
	s->io.tcp = 1;
	io_session(&s->io, s->acct->session_timeout * 1000);
	s->stage = STAGE_TLS;
	if (s->acct->tls == TLS_IMPLICIT &&
	    smtp_tls(s, host, err, sizeof(err)) == -1)
		return tls_failed(s, err);
	s->stage = STAGE_GREETING;
	if ((code = smtpio_reply(s)) == -1 && s->io.rlen == 0 &&
	    s->acct->tls != TLS_IMPLICIT && s->port == 465)
		/* An implicit TLS server waits for our handshake. */
		return smtpio_failx(s, STAGE_GREETING, FC_CONFIG, "%s; port 465 "
		    "expects TLS from the first octet: set tls implicit",
		    s->fail.text);
	if (code == -1 || !s->connected)
		return ST_TEMP;
	if (code != 220)
		return session_refused(s, STAGE_GREETING, "greeting");
	if ((st = ehlo(s)) != ST_OK)
		return st;
	if (s->acct->tls == TLS_STARTTLS && (st = starttls(s, host)) != ST_OK)
		return st;
	if (s->io.ssl != NULL)
		s->tls_version = SSL_get_version(s->io.ssl);
	if (strcmp(s->acct->auth, "off") == 0)
		return ST_OK;
	s->stage = STAGE_AUTH;
	/* The class of a failure comes from where it failed (smtpauth.c). */
	return smtpauth_login(s);
}

/*
 * Opens a session on the first host that answers and lets us in. Returns
 * ST_OK, or ST_TEMP with s->fail listing what went wrong with each host
 * (the stage and class are the last host's).
 */
enum status
smtp_open(struct session *s)
{
	char		 why[sizeof(s->fail.text)] = "", err[256];
	size_t		 i;

	if (s->io.fd != -1)
		io_close(&s->io);	/* what is left of a broken session */
	s->stage = STAGE_CONNECT;
	s->fail.class = FC_NONE;
	/* A server that keeps closing (421) is not asked forever. */
	if (s->closed) {
		s->closed = 0;
		if (++s->reopens > REOPEN_MAX) {
			/* The server's doing, not the message's: no charge. */
			s->uncharged = 1;
			return smtpio_failx(s, STAGE_CONNECT, FC_TEMP, "the "
			    "server closed %d sessions of this run (421); "
			    "trying later", REOPEN_MAX + 1);
		}
	}
	if (s->acct->host.n == 0)
		return smtpio_failx(s, STAGE_CONNECT, FC_CONFIG, "no smarthost "
		    "configured: put \"host smtp.example.org\" (with user and "
		    "password_file) in " SYSCONFDIR "/outbox.conf or "
		    "~/.config/outbox/config");
	if (s->acct->tls != TLS_OFF && s->ctx == NULL) {
		/* A system account's CA and client key may be the group's. */
		if (s->acct->system)
			priv_raise();
		s->ctx = tls_context(s->acct, err, sizeof(err));
		priv_drop();
		if (s->ctx == NULL)
			return smtpio_failx(s, STAGE_TLS, FC_CONFIG,
			    "TLS setup: %s", err);
	}
	s->port = s->acct->port;
	for (i = 0; i < s->acct->host.n; i++) {
		const char *host = s->acct->host.v[i];

		strlcpy(s->host, host, sizeof(s->host));
		s->stage = STAGE_CONNECT;
		if ((s->io.fd = dial(s, host, why, sizeof(why))) == -1) {
			smtpio_fail(s, "%s", why);
			continue;
		}
		s->connected = 1;
		s->dirty = 0;
		if (greet(s, host) == ST_OK && s->connected) {
			s->closed = 0;
			return ST_OK;
		}
		s->connected = 0;
		reason_add(why, sizeof(why), "%s[%s]:%lld: %s", host, s->addr,
		    s->port, s->fail.text);
		io_close(&s->io);
	}
	strlcpy(s->fail.text, why, sizeof(s->fail.text));
	smtpio_sanitize(s->fail.text);
	return ST_TEMP;
}

/*
 * Says QUIT without waiting for the reply, unless the session failed, and
 * closes the connection.
 */
void
smtp_hangup(struct session *s)
{
	/* After a failure nothing is written: not even QUIT. */
	if (s->connected && !s->io.failed &&
	    smtpio_command(s, 0, "QUIT") == 0 && io_flush(&s->io) == 0 &&
	    s->io.ssl != NULL)
		SSL_shutdown(s->io.ssl);
	s->connected = 0;
	s->dirty = 0;
	io_close(&s->io);
	smtplimits_release(s);	/* the connection slot */
}

/* Ends the session, and frees what it kept for the next connection. */
void
smtp_close(struct session *s)
{
	smtp_hangup(s);
	if (s->ctx != NULL)
		SSL_CTX_free(s->ctx);
	s->ctx = NULL;
}
