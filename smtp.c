/* SPDX-License-Identifier: ISC */
/*
 * The SMTP client (RFC 5321): connect, greeting, EHLO, STARTTLS, AUTH (run
 * by smtpauth.c), one pipelined transaction with DATA or BDAT,
 * per-recipient results, QUIT.
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

#ifndef SYSCONFDIR
#define SYSCONFDIR	"/etc"
#endif

#define INLINE_MAX	(64 * 1024)	/* BDAT this small goes with RCPT */
#define REOPEN_MAX	3		/* new sessions after 421s, per run */

/* One transaction on its way. */
struct tx {
	off_t		 size;		/* octets of the message on the wire */
	size_t		 accepted;	/* RCPTs that got 2xx */
	int		 qp;		/* RENDER_QP and RENDER_7BIT, or 0 */
	int		 pipelining, bdat;
	int		 inl;		/* BDAT LAST goes with the envelope */
	int		 data_sent;	/* DATA or BDAT went with the envelope */
	char		 params[1024];	/* MAIL FROM parameters */
};

static int	dial(struct session *, const char *, char *, size_t);
static enum status smtp_fail(struct session *, const char *, ...) PRINTF(2, 3);
static int	read_reply(struct session *, int);
static void	closing(struct session *);
static int	lost(const struct session *);
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
static void	hangup(struct session *);
static int	raw_out(void *, const char *, size_t);
static int	count_out(void *, const char *, size_t);
static void	xtext(char *, size_t, const char *);
static void	sanitize(char *);
static void	trace(const char *, const char *, size_t);
static void	vfail(struct session *, enum stage, enum fclass,
		    const struct reply *, const char *, va_list)
		    __attribute__((format(printf, 5, 0)));
static enum status refused(struct session *, enum stage, const char *, ...)
		    PRINTF(3, 4);
static enum status doubt(struct session *, const char *);
static int	rset(struct session *);
static enum status tx_prepare(struct session *, const struct message *,
		    struct envelope *, struct tx *);
static int	rcpt_command(struct session *, const struct envelope *,
		    struct rcpt *);
static int	rcpt_result(struct session *, struct tx *, struct rcpt *, int);
static int	rcpt_replies(struct session *, struct envelope *, struct tx *);
static enum status mail_refused(struct session *, struct envelope *,
		    struct tx *, int);
static enum status end_of_data(struct session *, struct envelope *,
		    enum stage, int);
static int	body_out(struct session *, const struct message *,
		    const struct tx *);
static enum status data(struct session *, const struct message *,
		    struct envelope *, struct tx *);
static enum status transaction(struct session *, const struct message *,
		    struct envelope *);
static int	again(const struct envelope *);

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
		limits_reply(s);	/* throttling: the account's state */
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
	refused(s, s->stage, "the server closed the session: %d %s",
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
static int
lost(const struct session *s)
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

	limits_ehlo(s, l);
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
	limits_ehlo(s, NULL);
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
	refused(s, stage, "%s: %d %s", what, s->reply.code, s->reply.text);
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

/* DATA: dot-stuffs lines that begin with "." (RFC 5321 4.5.2). */
int
smtp_data_out(void *arg, const char *p, size_t n)
{
	struct dotsink	*d = arg;
	const char	*end = p + n, *nl;

	while (p < end) {
		if (d->bol && *p == '.' && io_write(d->io, ".", 1) == -1)
			return -1;
		nl = memchr(p, '\n', end - p);
		nl = nl != NULL ? nl + 1 : end;
		if (io_write(d->io, p, nl - p) == -1)
			return -1;
		d->bol = nl[-1] == '\n';
		p = nl;
	}
	return 0;
}

static int
raw_out(void *arg, const char *p, size_t n)
{
	return io_write(arg, p, n);
}

static int
count_out(void *arg, const char *p, size_t n)
{
	(void)p;
	*(off_t *)arg += n;
	return 0;
}


/*
 * Records a refusal at stage: the class follows the reply (4xx may work
 * later, 5xx is for good), and the failure keeps its code and enhanced code.
 */
static enum status
refused(struct session *s, enum stage stage, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vfail(s, stage, s->reply.code / 100 == 5 ? FC_PERM : FC_TEMP,
	    &s->reply, fmt, ap);
	va_end(ap);
	return s->fail.class == FC_PERM ? ST_PERM : ST_TEMP;
}

/*
 * The server's state is in doubt (a reply that fits no command we sent,
 * a 503 where a transaction should be open or closed): nothing more goes
 * over this session. The caller goes on in a new one.
 */
static enum status
doubt(struct session *s, const char *what)
{
	smtp_fail(s, "%s (%d %s); ending the session", what, s->reply.code,
	    s->reply.text);
	hangup(s);
	return ST_TEMP;
}

/* After a transaction that did not end cleanly: RSET, and its 250. */
static int
rset(struct session *s)
{
	s->stage = STAGE_MAIL;
	if (smtp_command(s, 0, "RSET") == 0 && read_reply(s, 0) == 250) {
		s->dirty = 0;
		return 0;
	}
	if (s->connected)
		doubt(s, "RSET failed");
	return -1;
}

/* xtext (RFC 3461 4): "+", "=" and octets outside 33..126 as +XX. */
static void
xtext(char *buf, size_t size, const char *s)
{
	size_t	n = 0;

	for (; *s != '\0' && n + 4 < size; s++) {
		unsigned char c = *s;

		if (c < 33 || c > 126 || c == '+' || c == '=')
			n += snprintf(buf + n, size - n, "+%02X", c);
		else
			buf[n++] = c;
	}
	buf[n] = '\0';
}

/*
 * Checks what must hold before a message may go (encoding, SMTPUTF8, SIZE)
 * and works out its parameters. ST_PERM refuses it locally, before a
 * command is sent: at STAGE_LOCAL for the message itself, at STAGE_MAIL
 * for the server's SIZE.
 */
static enum status
tx_prepare(struct session *s, const struct message *m, struct envelope *env,
    struct tx *tx)
{
	char		 buf[ADDR_MAX * 3 + 32];
	size_t		 i;
	int		 utf8 = 0;
	const char	*p;

	memset(tx, 0, sizeof(*tx));
	tx->qp = m->max_line > 998 || m->nul ? RENDER_QP : 0;
	/* No 8BITMIME: 8-bit header text is encoded, and the body when it
	 * is 8-bit (a multipart message may have it only in its Subject). */
	if (m->eightbit && !(s->ext & EXT_8BITMIME))
		tx->qp |= RENDER_7BIT | (message_body_8bit(m) != 0 ?
		    RENDER_QP : 0);
	if ((tx->qp & RENDER_QP) && !message_qp_allowed(m))
		return smtp_failx(s, STAGE_LOCAL, FC_PERM, "the message needs "
		    "re-encoding (%s) but is %s; send it encoded",
		    m->max_line > 998 ? "a line over 998 octets" : m->nul ?
		    "a NUL byte" : "8-bit text, and the server lacks 8BITMIME",
		    m->multipart ? "multipart" : "already encoded");
	for (p = env->sender; *p != '\0'; p++)
		utf8 |= (unsigned char)*p >= 0x80;
	for (i = 0; i < env->nrcpt; i++) {
		env->rcpt[i].accepted = env->rcpt[i].again = 0;
		env->rcpt[i].sent = 0;
		if (!env->rcpt[i].done)
			env->rcpt[i].st = ST_TEMP;
		for (p = env->rcpt[i].addr; *p != '\0'; p++)
			utf8 |= (unsigned char)*p >= 0x80;
	}
	if (utf8 && !(s->ext & EXT_SMTPUTF8))
		return smtp_failx(s, STAGE_LOCAL, FC_PERM, "an address is not "
		    "ASCII and the server does not offer SMTPUTF8");
	if (tx->qp)
		render_message(m, tx->qp, count_out, &tx->size);
	else
		tx->size = m->size;
	if ((s->ext & EXT_SIZE) && s->size_max > 0 &&
	    (unsigned long long)tx->size > s->size_max) {
		smtp_failx(s, STAGE_MAIL, FC_PERM, "the message is %lld octets; "
		    "the server takes at most %llu (SIZE)",
		    (long long)tx->size, s->size_max);
		strlcpy(s->fail.enhanced, "5.3.4", sizeof(s->fail.enhanced));
		return ST_PERM;
	}
	tx->pipelining = (s->ext & EXT_PIPELINING) != 0;
	tx->bdat = (s->ext & EXT_CHUNKING) != 0;
	tx->inl = tx->bdat && tx->pipelining && tx->size <= INLINE_MAX;
	if (s->ext & EXT_SIZE)
		snprintf(tx->params, sizeof(tx->params), " SIZE=%lld",
		    (long long)tx->size);
	if (m->eightbit && !tx->qp && (s->ext & EXT_8BITMIME))
		strlcat(tx->params, " BODY=8BITMIME", sizeof(tx->params));
	if (utf8)
		strlcat(tx->params, " SMTPUTF8", sizeof(tx->params));
	if ((s->ext & EXT_DSN) && env->ret != NULL) {
		strlcat(tx->params, " RET=", sizeof(tx->params));
		strlcat(tx->params, env->ret, sizeof(tx->params));
	}
	/* RFC 8689 4.2.1: only over verified TLS, to a server that offers
	 * it; else the message is refused, for good. */
	if (env->requiretls && (!(s->ext & EXT_REQUIRETLS) ||
	    s->io.ssl == NULL)) {
		smtp_failx(s, STAGE_MAIL, FC_PERM, "REQUIRETLS: %s", s->io.ssl ==
		    NULL ? "the session is not TLS" : "the server does not offer "
		    "REQUIRETLS, so it cannot keep the message on TLS");
		strlcpy(s->fail.enhanced, "5.7.30", sizeof(s->fail.enhanced));
		return ST_PERM;
	}
	if (env->requiretls)
		strlcat(tx->params, " REQUIRETLS", sizeof(tx->params));
	if ((s->ext & EXT_DSN) && env->envid != NULL) {
		xtext(buf, sizeof(buf), env->envid);
		strlcat(tx->params, " ENVID=", sizeof(tx->params));
		strlcat(tx->params, buf, sizeof(tx->params));
	}
	return ST_OK;
}

/*
 * Buffers one RCPT, with the DSN parameters when asked for and offered;
 * -1 when the session failed.
 */
static int
rcpt_command(struct session *s, const struct envelope *env, struct rcpt *r)
{
	char	params[1024], buf[ADDR_MAX * 3 + 32];

	params[0] = '\0';
	if ((s->ext & EXT_DSN) && env->notify != NULL) {
		xtext(buf, sizeof(buf), r->addr);
		if (snprintf(params, sizeof(params), " NOTIFY=%s "
		    "ORCPT=rfc822;%s", env->notify, buf) < 0)
			params[0] = '\0';
	}
	if (smtp_command(s, 0, "RCPT TO:<%s>%s", r->addr, params) == -1)
		return -1;
	r->sent = 1;
	return 0;
}

/*
 * Notes the reply to one RCPT: 2xx accepted, 452 "too many recipients"
 * goes in the next transaction (RFC 5321 4.5.3.1.10), other 4xx later,
 * 5xx never. -1 when the session is lost or out of step.
 */
static int
rcpt_result(struct session *s, struct tx *tx, struct rcpt *r, int code)
{
	if (code == -1)
		return -1;
	r->reply = s->reply;
	if (code / 100 == 2) {
		r->accepted = 1;
		tx->accepted++;
	} else if (code / 100 == 4 || code / 100 == 5) {
		r->st = code / 100 == 4 ? ST_TEMP : ST_PERM;
		r->done = r->st == ST_PERM;
		r->again = code == 452;
	} else {
		doubt(s, "unexpected reply to RCPT");
		return -1;
	}
	return 0;
}

/* Reads the replies to the RCPTs that went out with the envelope. */
static int
rcpt_replies(struct session *s, struct envelope *env, struct tx *tx)
{
	size_t	i;

	s->stage = STAGE_RCPT;
	for (i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].sent &&
		    rcpt_result(s, tx, &env->rcpt[i], read_reply(s, 0)) == -1)
			return -1;
	return 0;
}

/*
 * MAIL refused: every recipient not done shares its fate. The replies to
 * the commands pipelined behind it still come and are read; any of them
 * that accepts something (the server thinks another transaction is open)
 * puts the session in doubt, and so does a 503 to MAIL itself.
 */
static enum status
mail_refused(struct session *s, struct envelope *env, struct tx *tx,
    int code)
{
	struct reply	mail = s->reply;
	size_t		i, pending = 0;
	int		odd = 0, c;
	enum status	st;

	if (code == -1 || !s->connected)
		return ST_TEMP;		/* lost, or 421: closing() said it */
	for (i = 0; i < env->nrcpt; i++)
		pending += env->rcpt[i].sent;
	pending += tx->data_sent;
	for (i = 0; i < pending; i++) {
		if ((c = read_reply(s, 0)) == -1)
			return ST_TEMP;
		odd |= c / 100 == 2 || c / 100 == 3;
	}
	s->reply = mail;
	st = refused(s, STAGE_MAIL, "sender <%s> refused: %d %s", env->sender,
	    code, mail.text);
	for (i = 0; i < env->nrcpt; i++)
		if (!env->rcpt[i].done) {
			env->rcpt[i].st = st;
			env->rcpt[i].done = st == ST_PERM;
			env->rcpt[i].reply = mail;
		}
	if (code == 503 || odd) {
		s->reply = mail;
		doubt(s, odd ? "the server accepted commands after refusing "
		    "MAIL" : "MAIL out of sequence");
		for (i = 0; i < env->nrcpt; i++)
			if (!env->rcpt[i].done)
				env->rcpt[i].st = ST_TEMP;
		return ST_TEMP;
	}
	return st;
}

/*
 * The reply to the end of the message decides for every recipient that
 * RCPT accepted; a 2xx is a delivery. Nothing after it may be pending:
 * a reply that answers nothing puts the session in doubt.
 */
static enum status
end_of_data(struct session *s, struct envelope *env, enum stage stage,
    int code)
{
	size_t		i;
	enum status	st;

	s->stage = stage;
	if (code == -1 && s->closed)
		return ST_TEMP;		/* 421 before: closing() said it */
	if (code == -1) {
		char	why[sizeof(s->fail.text)];

		strlcpy(why, s->fail.text, sizeof(why));
		if (lost(s))
			smtp_fail(s, "no reply after the message was sent "
			    "(%s); it may arrive twice", why);
		else
			smtp_fail(s, "the message was not sent whole (%s)",
			    why);
		return ST_TEMP;		/* recipients stay ST_TEMP */
	}
	if (code / 100 == 2)
		st = ST_OK;
	else if (code == 503 || code / 100 == 3)
		return doubt(s, "unexpected reply to the end of the message");
	else
		st = refused(s, stage, "message refused: %d %s", code,
		    s->reply.text);
	for (i = 0; i < env->nrcpt; i++) {
		struct rcpt *r = &env->rcpt[i];

		if (r->done || !r->accepted)
			continue;
		r->st = st;
		r->done = st != ST_TEMP;
		r->reply = s->reply;
	}
	s->dirty = st != ST_OK;
	if (s->connected && io_pending(&s->io) > 0)
		doubt(s, "the server sent a reply nobody asked for");
	return st;
}

/*
 * Writes the message: BDAT LAST and the octets, or the dot-stuffed DATA.
 * A failure ends the session: the server is in the middle of the body,
 * so no command may follow; -1 with s->fail saying why.
 */
static int
body_out(struct session *s, const struct message *m, const struct tx *tx)
{
	struct dotsink	dot = { &s->io, 1 };
	int		rv;

	if (s->verbose)
		fprintf(stderr, "-> [message: %lld octets]\n",
		    (long long)tx->size);
	if (tx->bdat)
		rv = render_message(m, tx->qp, raw_out, &s->io);
	else
		rv = render_message(m, tx->qp, smtp_data_out, &dot) == -1 ||
		    io_write(&s->io, ".\r\n", 3) == -1 ? -1 : 0;
	if (rv == -1) {
		smtp_fail(s, "sending the message: %s", s->io.err[0] != '\0' ?
		    s->io.err : "cannot read the spool file");
		s->io.failed = 1;
		s->connected = 0;
		return -1;
	}
	if (s->verbose && !tx->bdat)
		fprintf(stderr, "-> .\n");
	return 0;
}

/*
 * After the envelope: the message goes if a recipient was accepted. With
 * DATA the 354 comes first; BDAT sent with the envelope has its reply due.
 */
static enum status
data(struct session *s, const struct message *m, struct envelope *env,
    struct tx *tx)
{
	int	code;

	s->stage = STAGE_DATA;
	if (tx->data_sent && tx->bdat) {
		if ((code = read_reply(s, 0)) == -1 && tx->accepted == 0)
			return ST_TEMP;
		if (tx->accepted > 0)
			return end_of_data(s, env, STAGE_EOD, code);
		return code / 100 == 2 ? doubt(s, "BDAT accepted without a "
		    "recipient") : ST_OK;
	}
	if (tx->accepted == 0 && !tx->data_sent)
		return ST_OK;	/* nobody to send it to; RSET comes next */
	if (tx->bdat) {
		if (smtp_command(s, 0, "BDAT %lld LAST", (long long)tx->size) ==
		    -1 || body_out(s, m, tx) == -1)
			return ST_TEMP;
		return end_of_data(s, env, STAGE_EOD, read_reply(s, 0));
	}
	if (!tx->data_sent && smtp_command(s, 0, "DATA") == -1)
		return ST_TEMP;
	if ((code = read_reply(s, 0)) == -1)
		return ST_TEMP;
	if (tx->accepted == 0)	/* RFC 2920 3.1: a 354 here is a bug */
		return code == 354 ? doubt(s, "354 without a recipient") :
		    ST_OK;
	if (code != 354)
		return code / 100 == 2 ? doubt(s, "unexpected reply to DATA") :
		    end_of_data(s, env, STAGE_DATA, code);
	if (body_out(s, m, tx) == -1)
		return ST_TEMP;
	return end_of_data(s, env, STAGE_EOD, read_reply(s, 0));
}

/*
 * One transaction. With PIPELINING, MAIL, every RCPT and (for a small
 * message with CHUNKING) BDAT LAST with the message go in one write, and
 * the replies are read in order, each matched to its command (RFC 2920).
 * The transaction is over when the reply to the end of the message is
 * read; the next one starts only then.
 */
static enum status
transaction(struct session *s, const struct message *m, struct envelope *env)
{
	struct tx	tx;
	size_t		i;
	int		code;
	enum status	st;

	if ((st = tx_prepare(s, m, env, &tx)) != ST_OK)
		return st;
	limits_rcpt_split(s, env);	/* max_rcpt, LIMITS: "again" */
	if (s->dirty && rset(s) == -1)
		return ST_TEMP;
	s->stage = STAGE_MAIL;
	if (smtp_command(s, 0, "MAIL FROM:<%s>%s", env->sender, tx.params) ==
	    -1)
		return ST_TEMP;
	s->dirty = 1;		/* until the end of the message is answered */
	if (!tx.pipelining && (code = read_reply(s, 0)) / 100 != 2)
		return mail_refused(s, env, &tx, code);
	for (i = 0; i < env->nrcpt; i++) {
		if (env->rcpt[i].done || env->rcpt[i].again)
			continue;
		if (rcpt_command(s, env, &env->rcpt[i]) == -1)
			return ST_TEMP;
		s->stage = STAGE_RCPT;
		if (!tx.pipelining &&
		    rcpt_result(s, &tx, &env->rcpt[i], read_reply(s, 0)) == -1)
			return ST_TEMP;
	}
	if (!tx.pipelining)
		return data(s, m, env, &tx);
	if (tx.inl) {
		if (smtp_command(s, 0, "BDAT %lld LAST", (long long)tx.size) ==
		    -1 || body_out(s, m, &tx) == -1)
			return ST_TEMP;
		tx.data_sent = 1;
	} else if (!tx.bdat) {
		if (smtp_command(s, 0, "DATA") == -1)
			return ST_TEMP;
		tx.data_sent = 1;
	}
	s->stage = STAGE_MAIL;
	if ((code = read_reply(s, 0)) / 100 != 2)
		return mail_refused(s, env, &tx, code);
	if (rcpt_replies(s, env, &tx) == -1)
		return ST_TEMP;
	return data(s, m, env, &tx);
}

/*
 * Whether a transaction that settled someone left recipients for the next
 * one now: 452'd, or past max_rcpt or LIMITS.
 */
static int
again(const struct envelope *env)
{
	size_t	i;
	int	progress = 0, more = 0;

	for (i = 0; i < env->nrcpt; i++) {
		progress |= env->rcpt[i].sent && env->rcpt[i].done;
		more |= env->rcpt[i].again && !env->rcpt[i].done;
	}
	return progress && more;
}

/*
 * Sends one message to every recipient not yet done, in as many
 * transactions of this session as "452 too many recipients", max_rcpt and
 * RFC 9422 LIMITS ask for (MAILMAX ends the session's share).
 * A recipient is ST_OK only after the 2xx to the end of data, ST_PERM when
 * refused for good, else ST_TEMP. The return value is the message's own
 * outcome (ST_PERM from MAIL, DATA, the end of data or a local check),
 * with s->fail saying why.
 */
enum status
smtp_send(struct session *s, const struct message *m, struct envelope *env)
{
	enum status	st;
	size_t		n;

	for (n = 0;; n++) {
		s->fail.class = FC_NONE;
		st = transaction(s, m, env);
		s->ntx++;
		if (st != ST_OK || !s->connected || n >= env->nrcpt ||
		    !again(env) || (s->mailmax > 0 &&
		    s->ntx >= (unsigned long long)s->mailmax))
			return st;
	}
}

/*
 * Says QUIT without waiting for the reply, unless the session failed, and
 * closes the connection.
 */
static void
hangup(struct session *s)
{
	/* After a failure nothing is written: not even QUIT. */
	if (s->connected && !s->io.failed &&
	    smtp_command(s, 0, "QUIT") == 0 && io_flush(&s->io) == 0 &&
	    s->io.ssl != NULL)
		SSL_shutdown(s->io.ssl);
	s->connected = 0;
	s->dirty = 0;
	io_close(&s->io);
	limits_release(s);	/* the connection slot (limits.c) */
}

/* Ends the session, and frees what it kept for the next connection. */
void
smtp_close(struct session *s)
{
	hangup(s);
	if (s->ctx != NULL)
		SSL_CTX_free(s->ctx);
	s->ctx = NULL;
}
