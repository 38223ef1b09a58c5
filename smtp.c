/* SPDX-License-Identifier: ISC */
/*
 * The SMTP client's session (RFC 5321): connect, greeting, EHLO, STARTTLS,
 * AUTH (run by smtpauth.c), commands and replies, failures as values,
 * QUIT. smtptx.c runs the transactions over it.
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

#ifndef SYSCONFDIR
#define SYSCONFDIR	"/etc"
#endif

#define REOPEN_MAX	3		/* new sessions after 421s, per run */

static int	dial(struct session *, const char *, char *, size_t);
static enum status smtp_fail(struct session *, const char *, ...) PRINTF(2, 3);
static int	read_reply(struct session *, int);
static void	closing(struct session *);
static void	enhanced(struct reply *);
static int	read_lines(struct session *, int);
static void	ehlo_line(struct session *, const char *);
static enum status ehlo(struct session *);
static enum status greet(struct session *, const char *);
static enum status session_refused(struct session *, enum stage,
		    const char *);
static enum status starttls(struct session *, const char *);
static int	smtp_tls(struct session *, const char *, char *, size_t);
static enum status tls_failed(struct session *, const char *);
static void	sanitize(char *);
static void	trace(const char *, const char *, size_t);
static void	vfail(struct session *, enum stage, enum fclass,
		    const struct reply *, const char *, va_list)
		    __attribute__((format(printf, 5, 0)));

/*
 * Records why the step failed, at the session's stage, as a temporary
 * failure (the usual class); returns ST_TEMP.
 */
static enum status
smtp_fail(struct session *s, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vfail(s, s->stage, FC_TEMP, NULL, fmt, ap);
	va_end(ap);
	return ST_TEMP;
}

/* The same with the stage and class given; ST_PERM for FC_PERM. */
enum status
smtp_failx(struct session *s, enum stage stage, enum fclass class,
    const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vfail(s, stage, class, NULL, fmt, ap);
	va_end(ap);
	return class == FC_PERM ? ST_PERM : ST_TEMP;
}

/*
 * Fills s->fail: the text (bounded, printable), stage and class, and the
 * code and enhanced code of reply r (NULL: none).
 */
static void
vfail(struct session *s, enum stage stage, enum fclass class,
    const struct reply *r, const char *fmt, va_list ap)
{
	vsnprintf(s->fail.text, sizeof(s->fail.text), fmt, ap);
	sanitize(s->fail.text);
	s->fail.stage = stage;
	s->fail.class = class;
	s->fail.code = r != NULL ? r->code : 0;
	strlcpy(s->fail.enhanced, r != NULL ? r->enhanced : "",
	    sizeof(s->fail.enhanced));
}

/*
 * One line of the -v transcript: what the server or a caller wrote is
 * shown, never obeyed (ESC, OSC, CR, C1 and bidi become '?').
 */
static void
trace(const char *dir, const char *p, size_t n)
{
	char	buf[REPLY_LINE_MAX + 1];

	printable_text(buf, sizeof(buf), p, n);
	fprintf(stderr, "%s %s\n", dir, buf);
}

/*
 * Makes server text safe to print, and to relay in a reply (-bs): control
 * and 8-bit octets become '?'.
 */
static void
sanitize(char *p)
{
	for (; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
}

/*
 * Checks one reply line: three digits [2-5]xx then ' ' or '-' (or nothing).
 * Sets *code and *last; -1 when the line is not a reply.
 */
int
smtp_reply_parse_line(const char *l, size_t len, int *code, int *last)
{
	if (len < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' ||
	    l[2] < '0' || l[2] > '9')
		return -1;
	if (len > 3 && l[3] != ' ' && l[3] != '-')
		return -1;
	*code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	*last = len == 3 || l[3] == ' ';
	return 0;
}

/*
 * Sends what is buffered, then reads one reply into s->reply, all of it
 * within the timeout. With ehlo, each line after the first is an
 * extension. Returns the code, or -1.
 */
static int
read_reply(struct session *s, int ehlo)
{
	int	code;

	/* Ended (a failure, a 421): s->fail already says why. */
	if (!s->connected || s->io.failed) {
		s->connected = 0;
		return -1;
	}
	if (s->io.wlen > 0 && io_flush(&s->io) == -1) {
		smtp_fail(s, "sending: %s", s->io.err);
		s->connected = 0;
		return -1;
	}
	io_reply(&s->io, 1);
	code = read_lines(s, ehlo);
	io_reply(&s->io, 0);
	if (code == -1) {
		s->io.failed = 1;	/* out of step: write nothing more */
		s->connected = 0;
	} else {
		smtplimits_reply(s);	/* throttling: the account's state */
		if (code == 421)
			closing(s);
	}
	return code;
}

/*
 * 421 (RFC 5321 3.8): the server is closing the channel, whatever command
 * it answers. Nothing more is written; the reply stays the answer to
 * this command, the failure says it, and the next message goes in a new
 * session of the same run.
 */
static void
closing(struct session *s)
{
	smtp_refused(s, s->stage, "the server closed the session: %d %s",
	    s->reply.code, s->reply.text);
	s->io.failed = 1;
	s->connected = 0;
	s->closed = 1;
}

/*
 * Whether the message in flight may have arrived: its final reply was
 * never read, and every octet of it went out (what a failed write left
 * in the buffer never reached the server, so the server cannot have
 * taken the message).
 */
int
smtp_lost(const struct session *s)
{
	return s->io.wlen == 0;
}

/* The lines of one reply; -1 (s->fail says why) when it is not one. */
static int
read_lines(struct session *s, int ehlo)
{
	char	*line;
	size_t	 len, tlen = 0;
	int	 code, last, n;

	s->reply.code = 0;
	s->reply.text[0] = '\0';
	for (n = 0;; n++) {
		if (io_getline(&s->io, &line, &len) == -1) {
			smtp_fail(s, "reading the reply: %s", s->io.err);
			return -1;
		}
		if (s->verbose)
			trace("<-", line, len);
		if (len > REPLY_LINE_MAX) {
			smtp_fail(s, "reply line of %zu octets; at most %d",
			    len, REPLY_LINE_MAX);
			return -1;
		}
		/* A NUL would cut the text short unseen: not a reply. */
		if (memchr(line, '\0', len) != NULL) {
			smtp_fail(s, "garbled reply: a NUL octet in "
			    "\"%.80s\"", line);
			return -1;
		}
		if (smtp_reply_parse_line(line, len, &code, &last) == -1) {
			smtp_fail(s, "garbled reply: %.80s", line);
			return -1;
		}
		if (n > 0 && code != s->reply.code) {
			smtp_fail(s, "reply code changed from %d to %d",
			    s->reply.code, code);
			return -1;
		}
		if (n >= REPLY_LINES_MAX) {
			smtp_fail(s, "reply longer than %d lines",
			    REPLY_LINES_MAX);
			return -1;
		}
		s->reply.code = code;
		line += len > 3 ? 4 : 3;
		if (ehlo && n > 0)
			ehlo_line(s, line);
		if (tlen + 3 < sizeof(s->reply.text)) {
			tlen += snprintf(s->reply.text + tlen,
			    sizeof(s->reply.text) - tlen, "%s%s",
			    n > 0 ? "; " : "", line);
			if (tlen >= sizeof(s->reply.text))
				tlen = sizeof(s->reply.text) - 1;
		}
		if (last)
			break;
	}
	sanitize(s->reply.text);
	enhanced(&s->reply);
	return code;
}

/*
 * Notes the RFC 3463 code a reply's text begins with ("5.1.1 ..."), when
 * its class matches the reply's.
 */
static void
enhanced(struct reply *r)
{
	const char	*p = r->text;
	size_t		 n1, n2;

	r->enhanced[0] = '\0';
	if (p[0] - '0' != r->code / 100 || p[1] != '.')
		return;
	n1 = strspn(p + 2, "0123456789");
	if (n1 == 0 || n1 > 3 || p[2 + n1] != '.')
		return;
	n2 = strspn(p + 3 + n1, "0123456789");
	if (n2 == 0 || n2 > 3 || (p[3 + n1 + n2] != ' ' &&
	    p[3 + n1 + n2] != '\0'))
		return;
	snprintf(r->enhanced, sizeof(r->enhanced), "%.*s", (int)(3 + n1 + n2),
	    p);
}

int
smtp_reply(struct session *s)
{
	return read_reply(s, 0);
}

/*
 * Buffers one command line. redact 1 hides what follows the first two
 * words (AUTH PLAIN ...), 2 hides the whole line (a SASL response).
 */
int
smtp_command(struct session *s, int redact, const char *fmt, ...)
{
	char	 buf[1024], *p = buf;
	va_list	 ap;
	int	 n, rv;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n >= sizeof(buf)) {
		p = xcalloc(1, n + 1);
		va_start(ap, fmt);
		vsnprintf(p, n + 1, fmt, ap);
		va_end(ap);
	}
	if (s->verbose) {
		if (redact == 0)
			trace("->", p, n);
		else if (redact == 1)
			fprintf(stderr, "-> %.*s <redacted>\n",
			    (int)(strchr(p + 5, ' ') != NULL ?
			    strchr(p + 5, ' ') - p : n), p);
		else
			fprintf(stderr, "-> <redacted>\n");
	}
	rv = io_write(&s->io, p, n) == -1 || io_write(&s->io, "\r\n", 2) == -1
	    ? -1 : 0;
	if (p != buf) {
		explicit_bzero(p, n);
		free(p);
	}
	/* A write that failed, or a session already over, ends it here. */
	if (rv == -1 || !s->connected) {
		if (s->connected)
			smtp_fail(s, "sending: %s", s->io.err);
		s->connected = 0;
		rv = -1;
	}
	return rv;
}

/* A name lookup that may outlive its caller: all of it on the heap. */
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
	if (smtp_command(s, 0, "EHLO %s", s->acct->helo) == -1 ||
	    (code = read_reply(s, 1)) == -1)
		return ST_TEMP;
	if (code == 250)
		return ST_OK;
	if (code >= 500 && code != 554 && s->acct->tls == TLS_OFF &&
	    strcmp(s->acct->auth, "off") == 0) {
		if (smtp_command(s, 0, "HELO %s", s->acct->helo) == -1)
			return ST_TEMP;
		if ((code = read_reply(s, 0)) == 250)
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
	smtp_refused(s, stage, "%s: %d %s", what, s->reply.code, s->reply.text);
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
		return smtp_failx(s, STAGE_STARTTLS, FC_CONFIG, "the server "
		    "does not offer STARTTLS; refusing to continue in clear "
		    "(set tls implicit for port 465, or tls off)");
	if (smtp_command(s, 0, "STARTTLS") == -1 ||
	    (code = read_reply(s, 0)) == -1 || !s->connected)
		return ST_TEMP;
	if (code != 220)
		return session_refused(s, STAGE_STARTTLS, "STARTTLS refused");
	/* Bytes after the 220 came in clear: CVE-2011-0411 class. */
	if (io_pending(&s->io) > 0)
		return smtp_fail(s, "the server sent data after its STARTTLS "
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
	return smtp_failx(s, STAGE_TLS, s->fail.class == FC_CONFIG ?
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
	if ((code = read_reply(s, 0)) == -1 && s->io.rlen == 0 &&
	    s->acct->tls != TLS_IMPLICIT && s->port == 465)
		/* An implicit TLS server waits for our handshake. */
		return smtp_failx(s, STAGE_GREETING, FC_CONFIG, "%s; port 465 "
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
			return smtp_failx(s, STAGE_CONNECT, FC_TEMP, "the "
			    "server closed %d sessions of this run (421); "
			    "trying later", REOPEN_MAX + 1);
		}
	}
	if (s->acct->host.n == 0)
		return smtp_failx(s, STAGE_CONNECT, FC_CONFIG, "no smarthost "
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
			return smtp_failx(s, STAGE_TLS, FC_CONFIG,
			    "TLS setup: %s", err);
	}
	s->port = s->acct->port;
	for (i = 0; i < s->acct->host.n; i++) {
		const char *host = s->acct->host.v[i];

		strlcpy(s->host, host, sizeof(s->host));
		s->stage = STAGE_CONNECT;
		if ((s->io.fd = dial(s, host, why, sizeof(why))) == -1) {
			smtp_fail(s, "%s", why);
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
	sanitize(s->fail.text);
	return ST_TEMP;
}

/*
 * Records a refusal at stage: the class follows the reply (4xx may work
 * later, 5xx is for good), and the failure keeps its code and enhanced code.
 */
enum status
smtp_refused(struct session *s, enum stage stage, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vfail(s, stage, s->reply.code / 100 == 5 ? FC_PERM : FC_TEMP,
	    &s->reply, fmt, ap);
	va_end(ap);
	return s->fail.class == FC_PERM ? ST_PERM : ST_TEMP;
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
	    smtp_command(s, 0, "QUIT") == 0 && io_flush(&s->io) == 0 &&
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
