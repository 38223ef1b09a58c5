/* SPDX-License-Identifier: ISC */
/*
 * SMTP commands and replies over an open session (RFC 5321 4.2): one
 * command line buffered (secrets redacted in the -v transcript), one reply
 * read within its deadlines and checked, 421 and throttling noted, and a
 * failure recorded as a value in s->fail. Below smtp.c (the session),
 * smtptx.c (transactions) and smtpauth.c (AUTH).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox.h"
#include "io.h"
#include "smtp.h"

static void	vfail(struct session *, enum stage, enum fclass,
		    const struct reply *, const char *, va_list)
		    __attribute__((format(printf, 5, 0)));
static void	trace(const char *, const char *, size_t);
static void	closing(struct session *);
static int	read_lines(struct session *,
		    void (*)(struct session *, const char *));
static void	enhanced(struct reply *);

/*
 * Records why the step failed, at the session's stage, as a temporary
 * failure (the usual class); returns ST_TEMP.
 */
enum status
smtpio_fail(struct session *s, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vfail(s, s->stage, FC_TEMP, NULL, fmt, ap);
	va_end(ap);
	return ST_TEMP;
}

/* The same with the stage and class given; ST_PERM for FC_PERM. */
enum status
smtpio_failx(struct session *s, enum stage stage, enum fclass class,
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
	smtpio_sanitize(s->fail.text);
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
void
smtpio_sanitize(char *p)
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
smtpio_parse_line(const char *l, size_t len, int *code, int *last)
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
 * within the timeout. Each line after the first goes to ext as well,
 * unless it is NULL (EHLO's extensions). Returns the code, or -1.
 */
int
smtpio_read(struct session *s, void (*ext)(struct session *, const char *))
{
	int	code;

	/* Ended (a failure, a 421): s->fail already says why. */
	if (!s->connected || s->io.failed) {
		s->connected = 0;
		return -1;
	}
	if (s->io.wlen > 0 && io_flush(&s->io) == -1) {
		smtpio_fail(s, "sending: %s", s->io.err);
		s->connected = 0;
		return -1;
	}
	io_reply(&s->io, 1);
	code = read_lines(s, ext);
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
	smtpio_refused(s, s->stage, "the server closed the session: %d %s",
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
smtpio_lost(const struct session *s)
{
	return s->io.wlen == 0;
}

/* The lines of one reply; -1 (s->fail says why) when it is not one. */
static int
read_lines(struct session *s, void (*ext)(struct session *, const char *))
{
	char	*line;
	size_t	 len, tlen = 0;
	int	 code, last, n;

	s->reply.code = 0;
	s->reply.text[0] = '\0';
	for (n = 0;; n++) {
		if (io_getline(&s->io, &line, &len) == -1) {
			smtpio_fail(s, "reading the reply: %s", s->io.err);
			return -1;
		}
		if (s->verbose)
			trace("<-", line, len);
		if (len > REPLY_LINE_MAX) {
			smtpio_fail(s, "reply line of %zu octets; at most %d",
			    len, REPLY_LINE_MAX);
			return -1;
		}
		/* A NUL would cut the text short unseen: not a reply. */
		if (memchr(line, '\0', len) != NULL) {
			smtpio_fail(s, "garbled reply: a NUL octet in "
			    "\"%.80s\"", line);
			return -1;
		}
		if (smtpio_parse_line(line, len, &code, &last) == -1) {
			smtpio_fail(s, "garbled reply: %.80s", line);
			return -1;
		}
		if (n > 0 && code != s->reply.code) {
			smtpio_fail(s, "reply code changed from %d to %d",
			    s->reply.code, code);
			return -1;
		}
		if (n >= REPLY_LINES_MAX) {
			smtpio_fail(s, "reply longer than %d lines",
			    REPLY_LINES_MAX);
			return -1;
		}
		s->reply.code = code;
		line += len > 3 ? 4 : 3;
		if (ext != NULL && n > 0)
			ext(s, line);
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
	smtpio_sanitize(s->reply.text);
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

/* One reply to what was sent; its code, or -1. */
int
smtpio_reply(struct session *s)
{
	return smtpio_read(s, NULL);
}

/*
 * Buffers one command line. redact 1 hides what follows the first two
 * words (AUTH PLAIN ...), 2 hides the whole line (a SASL response).
 */
int
smtpio_command(struct session *s, int redact, const char *fmt, ...)
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
			smtpio_fail(s, "sending: %s", s->io.err);
		s->connected = 0;
		rv = -1;
	}
	return rv;
}

/*
 * Records a refusal at stage: the class follows the reply (4xx may work
 * later, 5xx is for good), and the failure keeps its code and enhanced code.
 */
enum status
smtpio_refused(struct session *s, enum stage stage, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vfail(s, stage, s->reply.code / 100 == 5 ? FC_PERM : FC_TEMP,
	    &s->reply, fmt, ap);
	va_end(ap);
	return s->fail.class == FC_PERM ? ST_PERM : ST_TEMP;
}
