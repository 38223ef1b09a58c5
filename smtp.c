/*
 * The SMTP client (RFC 5321): connect, greeting, EHLO, STARTTLS, AUTH, one
 * pipelined transaction with DATA or BDAT, per-recipient results, QUIT.
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
#include <unistd.h>

#include "outbox.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR	"/etc"
#endif

#define INLINE_MAX	(64 * 1024)	/* BDAT this small goes with RCPT */

static int	dial(struct session *, const char *, char *, size_t);
static int	read_reply(struct session *, int);
static void	ehlo_line(struct session *, const char *);
static enum status ehlo(struct session *);
static enum status greet(struct session *, const char *);
static int	raw_out(void *, const char *, size_t);
static int	count_out(void *, const char *, size_t);
static void	xtext(char *, size_t, const char *);
static void	sanitize(char *);
static void	append(char *, size_t, const char *, ...) PRINTF(3, 4);
static enum status end_of_data(struct session *, struct envelope *, int);
static void	rcpt_result(struct session *, struct rcpt *, int, size_t *);
static enum status tx_prepare(struct session *, const struct message *,
		    struct envelope *, struct tx *);
static void	rcpt_command(struct session *, const struct envelope *,
		    const struct rcpt *);
static enum status mail_refused(struct session *, struct envelope *, int,
		    size_t);

/* Records why the step failed; returns ST_TEMP, the usual class. */
enum status
smtp_fail(struct session *s, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	sanitize(s->err);
	return ST_TEMP;
}

/* Appends a "; "-separated reason to buf, truncating if it must. */
static void
append(char *buf, size_t size, const char *fmt, ...)
{
	size_t	len = strlen(buf);
	va_list	ap;

	if (len > 0 && len + 2 < size) {
		memcpy(buf + len, "; ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	if (vsnprintf(buf + len, size - len, fmt, ap) < 0)
		buf[len] = '\0';
	va_end(ap);
}

/* Makes server text safe to print: control and 8-bit octets become '?'. */
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
reply_parse_line(const char *l, size_t len, int *code, int *last)
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
 * Sends what is buffered, then reads one reply into s->reply. With ehlo,
 * each line after the first is an extension. Returns the code, or -1.
 */
static int
read_reply(struct session *s, int ehlo)
{
	char	*line;
	size_t	 len, tlen = 0;
	int	 code, last, n;

	if (s->io.wlen > 0 && io_flush(&s->io) == -1) {
		smtp_fail(s, "sending: %s", s->io.err);
		s->connected = 0;
		return -1;
	}
	s->reply.code = 0;
	s->reply.text[0] = '\0';
	for (n = 0;; n++) {
		if (io_getline(&s->io, &line, &len) == -1) {
			smtp_fail(s, "reading the reply: %s", s->io.err);
			s->connected = 0;
			return -1;
		}
		if (s->verbose)
			fprintf(stderr, "<- %.*s\n", (int)len, line);
		if (len > REPLY_LINE_MAX) {
			smtp_fail(s, "reply line of %zu octets; at most %d",
			    len, REPLY_LINE_MAX);
			s->connected = 0;
			return -1;
		}
		if (reply_parse_line(line, len, &code, &last) == -1) {
			smtp_fail(s, "garbled reply: %.80s", line);
			s->connected = 0;
			return -1;
		}
		if (n > 0 && code != s->reply.code) {
			smtp_fail(s, "reply code changed from %d to %d",
			    s->reply.code, code);
			s->connected = 0;
			return -1;
		}
		if (n >= REPLY_LINES_MAX) {
			smtp_fail(s, "reply longer than %d lines",
			    REPLY_LINES_MAX);
			s->connected = 0;
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
	return code;
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
			fprintf(stderr, "-> %s\n", p);
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
	return rv;
}

/* Connects to one host: every address in turn, each with the timeout. */
static int
dial(struct session *s, const char *host, char *why, size_t whylen)
{
	struct addrinfo	 hints, *res, *ai;
	struct pollfd	 pfd;
	char		 port[16];
	socklen_t	 sl;
	int		 fd = -1, e, one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%lld", s->acct->port);
	if ((e = getaddrinfo(host, port, &hints, &res)) != 0) {
		append(why, whylen, "%s: %s", host, gai_strerror(e));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		getnameinfo(ai->ai_addr, ai->ai_addrlen, s->addr,
		    sizeof(s->addr), NULL, 0, NI_NUMERICHOST);
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1)
			continue;
		e = 0;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
			e = errno;
			if (e == EINPROGRESS) {
				pfd.fd = fd;
				pfd.events = POLLOUT;
				if (poll(&pfd, 1, s->acct->timeout * 1000) <= 0)
					e = ETIMEDOUT;
				else {
					sl = sizeof(e);
					getsockopt(fd, SOL_SOCKET, SO_ERROR, &e,
					    &sl);
				}
			}
		}
		if (e == 0)
			break;
		append(why, whylen, "%s[%s]:%s: %s", host, s->addr, port,
		    strerror(e));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd != -1)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
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
	};
	size_t		 i, n;
	const char	*e;

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
	smtp_command(s, 0, "EHLO %s", s->acct->helo);
	if ((code = read_reply(s, 1)) == -1)
		return ST_TEMP;
	if (code == 250)
		return ST_OK;
	if (code >= 500 && code != 554 && s->acct->tls == TLS_OFF &&
	    strcmp(s->acct->auth, "off") == 0) {
		smtp_command(s, 0, "HELO %s", s->acct->helo);
		if ((code = read_reply(s, 0)) == 250)
			return ST_OK;
		if (code == -1)
			return ST_TEMP;
	}
	return smtp_fail(s, "EHLO refused: %d %s", code, s->reply.text);
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
	if (s->acct->tls == TLS_IMPLICIT && tls_start(&s->io, s->ctx, s->acct,
	    host, err, sizeof(err)) == -1)
		return smtp_fail(s, "TLS: %s", err);
	if ((code = read_reply(s, 0)) == -1)
		return ST_TEMP;
	if (code != 220)
		return smtp_fail(s, "greeting: %d %s", code, s->reply.text);
	if ((st = ehlo(s)) != ST_OK)
		return st;
	if (s->acct->tls == TLS_STARTTLS) {
		/* No fallback to plaintext: that is the downgrade attack. */
		if (!(s->ext & EXT_STARTTLS))
			return smtp_fail(s, "the server does not offer "
			    "STARTTLS; refusing to continue in clear (set "
			    "tls implicit for port 465, or tls off)");
		smtp_command(s, 0, "STARTTLS");
		if ((code = read_reply(s, 0)) == -1)
			return ST_TEMP;
		if (code != 220)
			return smtp_fail(s, "STARTTLS refused: %d %s", code,
			    s->reply.text);
		/* Bytes after the 220 came in clear: CVE-2011-0411 class. */
		if (io_pending(&s->io) > 0)
			return smtp_fail(s, "the server sent data after its "
			    "STARTTLS reply; possible injection attack");
		if (tls_start(&s->io, s->ctx, s->acct, host, err,
		    sizeof(err)) == -1)
			return smtp_fail(s, "TLS: %s", err);
		if ((st = ehlo(s)) != ST_OK)
			return st;
	}
	if (s->io.ssl != NULL)
		s->tls_version = SSL_get_version(s->io.ssl);
	if (strcmp(s->acct->auth, "off") != 0)
		return smtp_auth(s);
	return ST_OK;
}

/*
 * Opens a session on the first host that answers and lets us in. Returns
 * ST_OK, or ST_TEMP with s->err listing what went wrong with each host.
 */
enum status
smtp_open(struct session *s)
{
	char		 why[1024] = "", err[256];
	size_t		 i;

	if (s->io.fd != -1)
		io_close(&s->io);	/* what is left of a broken session */
	if (s->acct->host.n == 0)
		return smtp_fail(s, "no smarthost configured: put \"host "
		    "smtp.example.org\" (with user and password_file) in "
		    SYSCONFDIR "/outbox.conf or ~/.config/outbox/config");
	if (s->acct->tls != TLS_OFF && s->ctx == NULL) {
		/* A system account's CA and client key may be the group's. */
		if (s->acct->system)
			priv_raise();
		s->ctx = tls_context(s->acct, err, sizeof(err));
		priv_drop();
		if (s->ctx == NULL)
			return smtp_fail(s, "TLS setup: %s", err);
	}
	s->port = s->acct->port;
	for (i = 0; i < s->acct->host.n; i++) {
		const char *host = s->acct->host.v[i];

		strlcpy(s->host, host, sizeof(s->host));
		if ((s->io.fd = dial(s, host, why, sizeof(why))) == -1)
			continue;
		s->connected = 1;
		s->dirty = 0;
		if (greet(s, host) == ST_OK && s->connected)
			return ST_OK;
		s->connected = 0;
		append(why, sizeof(why), "%s[%s]:%lld: %s", host, s->addr,
		    s->port, s->err);
		io_close(&s->io);
	}
	smtp_fail(s, "%s", why);
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

/* The reply to the end of data decides for every accepted recipient. */
static enum status
end_of_data(struct session *s, struct envelope *env, int code)
{
	size_t		i;
	enum status	st;

	if (code == -1) {
		char	why[sizeof(s->err)];

		strlcpy(why, s->err, sizeof(why));
		smtp_fail(s, "no reply after the message was sent (%s); it "
		    "may arrive twice", why);
		return ST_TEMP;		/* recipients stay ST_TEMP */
	}
	s->dirty = 0;
	if (code / 100 == 2)
		st = ST_OK;
	else {
		st = code / 100 == 4 ? ST_TEMP : ST_PERM;
		s->exitcode = 69;
		smtp_fail(s, "message refused: %d %s", code, s->reply.text);
	}
	for (i = 0; i < env->nrcpt; i++) {
		struct rcpt *r = &env->rcpt[i];

		if (r->done || !r->accepted)
			continue;
		r->st = st;
		r->done = st != ST_TEMP;
		r->reply = s->reply;
	}
	return st;
}

/* Notes the reply to one RCPT. */
static void
rcpt_result(struct session *s, struct rcpt *r, int code, size_t *accepted)
{
	r->reply = s->reply;
	if (code / 100 == 2) {
		r->accepted = 1;
		(*accepted)++;
	} else {
		r->st = code / 100 == 4 ? ST_TEMP : ST_PERM;
		r->done = r->st == ST_PERM;
	}
}

/*
 * Checks what must hold before a message may go (encoding, SMTPUTF8, SIZE)
 * and works out its parameters. ST_PERM (with s->exitcode) refuses it
 * locally, before a command is sent.
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
	tx->qp = m->max_line > 998 || m->nul ||
	    (m->eightbit && !(s->ext & EXT_8BITMIME));
	if (tx->qp && !message_qp_allowed(m)) {
		s->exitcode = 65;
		smtp_fail(s, "the message needs re-encoding (%s) but is %s; "
		    "send it encoded", m->max_line > 998 ? "a line over 998 "
		    "octets" : m->nul ? "a NUL byte" : "8-bit text, and the "
		    "server lacks 8BITMIME", m->multipart ? "multipart" :
		    "already encoded");
		return ST_PERM;
	}
	for (p = env->sender; *p != '\0'; p++)
		utf8 |= (unsigned char)*p >= 0x80;
	for (i = 0; i < env->nrcpt; i++) {
		env->rcpt[i].accepted = 0;
		if (!env->rcpt[i].done)
			env->rcpt[i].st = ST_TEMP;
		for (p = env->rcpt[i].addr; *p != '\0'; p++)
			utf8 |= (unsigned char)*p >= 0x80;
	}
	if (utf8 && !(s->ext & EXT_SMTPUTF8)) {
		s->exitcode = 65;
		smtp_fail(s, "an address is not ASCII and the server does not "
		    "offer SMTPUTF8");
		return ST_PERM;
	}
	if (tx->qp)
		message_render(m, 1, count_out, &tx->size);
	else
		tx->size = m->size;
	if ((s->ext & EXT_SIZE) && s->size_max > 0 &&
	    (unsigned long long)tx->size > s->size_max) {
		s->exitcode = 69;
		smtp_fail(s, "the message is %lld octets; the server takes at "
		    "most %llu (SIZE)", (long long)tx->size, s->size_max);
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
	if ((s->ext & EXT_DSN) && env->envid != NULL) {
		xtext(buf, sizeof(buf), env->envid);
		strlcat(tx->params, " ENVID=", sizeof(tx->params));
		strlcat(tx->params, buf, sizeof(tx->params));
	}
	return ST_OK;
}

/* Buffers one RCPT, with the DSN parameters when asked for and offered. */
static void
rcpt_command(struct session *s, const struct envelope *env,
    const struct rcpt *r)
{
	char	params[1024], buf[ADDR_MAX * 3 + 32];

	params[0] = '\0';
	if ((s->ext & EXT_DSN) && env->notify != NULL) {
		xtext(buf, sizeof(buf), r->addr);
		if (snprintf(params, sizeof(params), " NOTIFY=%s "
		    "ORCPT=rfc822;%s", env->notify, buf) < 0)
			params[0] = '\0';
	}
	smtp_command(s, 0, "RCPT TO:<%s>%s", r->addr, params);
}

/*
 * MAIL refused: every recipient not done shares its fate. With pipelining,
 * the replies to the pending commands (RCPT, DATA or BDAT) still come:
 * they are read so that the session stays in step for the next message.
 */
static enum status
mail_refused(struct session *s, struct envelope *env, int code,
    size_t pending)
{
	struct reply	mail;
	enum status	st;
	size_t		i;

	if (code == -1)
		return ST_TEMP;
	st = code / 100 == 4 ? ST_TEMP : ST_PERM;
	smtp_fail(s, "sender <%s> refused: %d %s", env->sender, code,
	    s->reply.text);
	s->exitcode = 69;
	for (i = 0; i < env->nrcpt; i++)
		if (!env->rcpt[i].done) {
			env->rcpt[i].st = st;
			env->rcpt[i].done = st == ST_PERM;
			env->rcpt[i].reply = s->reply;
		}
	mail = s->reply;
	for (i = 0; i < pending; i++)
		if (read_reply(s, 0) == -1)
			break;
	s->reply = mail;
	return st;
}

/*
 * Starts one transaction. With PIPELINING, CHUNKING and a small message
 * the whole of it (RSET if a failure left one open, MAIL, RCPT, BDAT LAST
 * and the message) is buffered without waiting, and tx->written is set:
 * smtp_send_end() reads its replies, so several messages may be in flight
 * (RFC 2920, RFC 3030). ST_PERM refuses the message locally.
 */
enum status
smtp_send_begin(struct session *s, const struct message *m,
    struct envelope *env, struct tx *tx)
{
	size_t	i;

	if (tx_prepare(s, m, env, tx) == ST_PERM)
		return ST_PERM;
	if (!tx->inl)
		return ST_OK;
	if (s->dirty) {
		smtp_command(s, 0, "RSET");
		tx->rset = 1;
		s->dirty = 0;
	}
	smtp_command(s, 0, "MAIL FROM:<%s>%s", env->sender, tx->params);
	for (i = 0; i < env->nrcpt; i++)
		if (!env->rcpt[i].done) {
			rcpt_command(s, env, &env->rcpt[i]);
			tx->nsent++;
		}
	smtp_command(s, 0, "BDAT %lld LAST", (long long)tx->size);
	if (s->verbose)
		fprintf(stderr, "-> [message: %lld octets]\n",
		    (long long)tx->size);
	if (message_render(m, tx->qp, raw_out, &s->io) == -1)
		return smtp_fail(s, "reading the spool file failed");
	tx->written = 1;
	return ST_OK;
}

/* Reads the replies of a transaction smtp_send_begin() wrote. */
enum status
smtp_send_end(struct session *s, struct envelope *env, struct tx *tx)
{
	size_t	i, accepted = 0;
	int	code;

	if (tx->rset && read_reply(s, 0) != 250)
		return smtp_fail(s, "RSET failed: %s", s->reply.text);
	if ((code = read_reply(s, 0)) / 100 != 2)
		return mail_refused(s, env, code, tx->nsent + 1);
	s->dirty = 1;
	for (i = 0; i < env->nrcpt; i++) {
		if (env->rcpt[i].done)
			continue;
		if ((code = read_reply(s, 0)) == -1)
			return ST_TEMP;
		rcpt_result(s, &env->rcpt[i], code, &accepted);
	}
	if (accepted == 0)	/* BDAT's 554 "no valid recipients" */
		return read_reply(s, 0) == -1 ? ST_TEMP : ST_OK;
	return end_of_data(s, env, read_reply(s, 0));
}

/*
 * Sends one message to every recipient not yet done. A recipient is ST_OK
 * only after the 2xx to the end of data, ST_PERM when refused for good,
 * else ST_TEMP. The return value is the message's own outcome: ST_PERM
 * (with s->exitcode) from MAIL, DATA or the end of data.
 */
enum status
smtp_send(struct session *s, const struct message *m, struct envelope *env)
{
	struct dotsink	 dot = { &s->io, 1 };
	struct tx	 tx;
	size_t		 i, accepted = 0;
	int		 code;
	enum status	 st;

	if ((st = smtp_send_begin(s, m, env, &tx)) != ST_OK)
		return st;
	if (tx.written)
		return smtp_send_end(s, env, &tx);

	/* Without PIPELINING, or a large message: wait where it helps. */
	if (s->dirty) {
		smtp_command(s, 0, "RSET");
		if (!tx.pipelining && read_reply(s, 0) != 250)
			return smtp_fail(s, "RSET failed: %s", s->reply.text);
	}
	smtp_command(s, 0, "MAIL FROM:<%s>%s", env->sender, tx.params);
	if (s->dirty && tx.pipelining && read_reply(s, 0) != 250)
		return smtp_fail(s, "RSET failed: %s", s->reply.text);
	s->dirty = 0;
	if (!tx.pipelining && (code = read_reply(s, 0)) / 100 != 2)
		return mail_refused(s, env, code, 0);
	s->dirty = !tx.pipelining;
	for (i = 0; i < env->nrcpt; i++) {
		struct rcpt *r = &env->rcpt[i];

		if (r->done)
			continue;
		rcpt_command(s, env, r);
		tx.nsent++;
		if (!tx.pipelining && (code = read_reply(s, 0)) == -1)
			return ST_TEMP;
		if (!tx.pipelining)
			rcpt_result(s, r, code, &accepted);
	}
	if (!tx.bdat && (tx.pipelining || accepted > 0))
		smtp_command(s, 0, "DATA");
	if (tx.pipelining) {
		if ((code = read_reply(s, 0)) / 100 != 2)
			return mail_refused(s, env, code,
			    tx.nsent + !tx.bdat);
		s->dirty = 1;
		for (i = 0; i < env->nrcpt; i++) {
			struct rcpt *r = &env->rcpt[i];

			if (r->done)
				continue;
			if ((code = read_reply(s, 0)) == -1)
				return ST_TEMP;
			rcpt_result(s, r, code, &accepted);
		}
	}
	if (!tx.bdat) {
		if (!tx.pipelining && accepted == 0)
			return ST_OK;	/* DATA was not sent */
		if ((code = read_reply(s, 0)) == -1)
			return ST_TEMP;
		if (code != 354) {
			if (accepted == 0)
				return ST_OK;	/* 554: no valid recipients */
			return end_of_data(s, env, code);
		}
		if (accepted == 0) {
			/* RFC 2920 3.1: a 354 here is a server bug; end it. */
			smtp_command(s, 0, ".");
			read_reply(s, 0);
			return ST_OK;
		}
		if (s->verbose)
			fprintf(stderr, "-> [message: %lld octets]\n",
			    (long long)tx.size);
		if (message_render(m, tx.qp, smtp_data_out, &dot) == -1 ||
		    io_write(&s->io, ".\r\n", 3) == -1)
			return smtp_fail(s, "sending the message: %s",
			    s->io.err);
		if (s->verbose)
			fprintf(stderr, "-> .\n");
		return end_of_data(s, env, read_reply(s, 0));
	}
	if (accepted == 0)
		return ST_OK;
	smtp_command(s, 0, "BDAT %lld LAST", (long long)tx.size);
	if (s->verbose)
		fprintf(stderr, "-> [message: %lld octets]\n",
		    (long long)tx.size);
	if (message_render(m, tx.qp, raw_out, &s->io) == -1)
		return smtp_fail(s, "sending the message: %s", s->io.err);
	return end_of_data(s, env, read_reply(s, 0));
}

/* Says QUIT without waiting for the reply, and closes. */
void
smtp_close(struct session *s)
{
	if (s->connected) {
		smtp_command(s, 0, "QUIT");
		io_flush(&s->io);
		if (s->io.ssl != NULL)
			SSL_shutdown(s->io.ssl);
	}
	s->connected = 0;
	io_close(&s->io);
	if (s->ctx != NULL)
		SSL_CTX_free(s->ctx);
	s->ctx = NULL;
}

/*
 * One AUTH exchange (RFC 4954): the mechanism's steps answer each 334;
 * every client line after the command word is redacted in -v.
 */
static enum status
auth_exchange(struct session *s, const struct sasl_mech *m, struct sasl *sa)
{
	char	*resp;
	int	 r;

	if ((r = auth_step(m, sa, NULL, &resp)) == -1)
		return smtp_fail(s, "AUTH %s: %s", m->name, sa->err);
	if (r == 0) {
		smtp_command(s, 1, "AUTH %s %s", m->name, resp);
		freezero(resp, strlen(resp));
	} else
		smtp_command(s, 0, "AUTH %s", m->name);
	for (;;) {
		if (smtp_reply(s) == -1)
			return ST_TEMP;
		if (s->reply.code != 334)
			break;
		if (auth_step(m, sa, s->reply.text, &resp) == -1) {
			smtp_command(s, 0, "*");	/* cancel: 501 */
			if (smtp_reply(s) == -1)
				return ST_TEMP;
			return smtp_fail(s, "AUTH %s: %s", m->name, sa->err);
		}
		smtp_command(s, 2, "%s", resp);
		freezero(resp, strlen(resp));
	}
	if (s->reply.code == 235) {
		s->authenticated = 1;
		return ST_OK;
	}
	/* Refused credentials need an administrator, not a bounce. */
	return smtp_fail(s, "AUTH %s refused: %d %s", m->name, s->reply.code,
	    s->reply.text);
}

/*
 * The secret for AUTH: the password, or an OAuth2 access token (the cached
 * one, or with force a new one). -1 with s->err saying the fix.
 */
static int
auth_secret(struct session *s, int force, char **secret)
{
	char	err[512];

	if (s->acct->oauth2_grant == NULL) {
		if (config_secret(s->acct, secret, err, sizeof(err)) == -1)
			return smtp_fail(s, "%s", err), -1;
		return 0;
	}
	if (oauth2_token(s->acct, s->qdir, force, s->verbose, secret, NULL,
	    err, sizeof(err)) != OAUTH2_OK)
		return smtp_fail(s, "OAuth2: %s", err), -1;
	return 0;
}

/*
 * Authenticates the session with the account's mechanism and secret. A
 * refused OAuth2 token is replaced once by a new one (it may have been
 * revoked or expired early).
 */
enum status
smtp_auth(struct session *s)
{
	const struct sasl_mech	*m;
	struct sasl		 sa;
	char			*secret;
	enum status		 st;
	int			 again;

	if (!(s->ext & EXT_AUTH))
		return smtp_fail(s, "the server offers no AUTH; check host "
		    "and port, or set auth off");
	if ((m = auth_choose(s->mechs, s->acct->auth)) == NULL)
		return smtp_fail(s, "the server offers AUTH %s; %s", s->mechs,
		    strcasecmp(s->acct->auth, "on") == 0 ? "none of them is "
		    "supported" : "not the configured mechanism");
	s->mech = m->name;
	for (again = 0;; again++) {
		if (auth_secret(s, again, &secret) == -1)
			return ST_TEMP;
		memset(&sa, 0, sizeof(sa));
		sa.user = s->acct->user;
		sa.secret = secret;
		sa.host = s->host;
		sa.port = s->port;
		st = auth_exchange(s, m, &sa);
		auth_clear(&sa);
		freezero(secret, strlen(secret));
		if (st == ST_OK || again || !s->connected ||
		    s->acct->oauth2_grant == NULL || (!sa.token_error &&
		    s->reply.code != 535))
			return st;
	}
}
