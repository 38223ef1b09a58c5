/* SPDX-License-Identifier: ISC */
/*
 * The message: standard input streamed into a spool file in one pass, line
 * endings made CRLF, the header block rewritten (Bcc removed; Date,
 * Message-ID and From added), and the spool rendered for the wire later.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>


#include "outbox.h"

#define LINE_MAX_SMTP	998	/* RFC 5322 2.1.1, without CRLF */

struct header {
	char		*text;		/* the whole field, CRLF between lines */
	size_t		 len;
};

struct spool {
	struct message	*m;
	const struct msgopts *o;
	char		 out[BLOCK];
	size_t		 olen;
	int		 in_headers;
	int		 first_line;
	int		 done;		/* a lone "." ended the input */
	int		 nobody;	/* input ended in the header block */
	int		 cr;		/* a CR waits for its LF */
	int		 dot;		/* a "." at the start of a line waits */
	size_t		 col;		/* octets in the current line */
	char		*line;		/* the current header line */
	size_t		 llen, lcap;
	struct header	*hdr;
	size_t		 nhdr, htotal;
};

static int	spool_open(const char *);
static int	out_put(struct spool *, const char *, size_t);
static int	out_flush(struct spool *);
static int	fail(struct spool *, enum fclass, const char *, ...) PRINTF(3, 4);
static int	header_line(struct spool *);
static int	header_name_len(const char *, size_t);
static int	header_is(const struct header *, const char *);
static const char *header_value(const struct header *, size_t *);
static int	headers_end(struct spool *);
static int	header_rewrite(struct spool *, struct header *);
static void	header_set(struct header *, const char *, size_t);
static int	headers_write(struct spool *);
static void	headers_free(struct spool *);
static int	body_bytes(struct spool *, const char *, size_t);
static int	line_end(struct spool *);
static void	put_phrase(char *, size_t, const char *);
static int	from_rewrite(struct spool *, struct header *, int);

/* Opens an unnamed spool file in dir: O_TMPFILE, else mkstemp + unlink. */
static int
spool_open(const char *dir)
{
	char	path[4096];
	int	fd;

	/* The spool may be in the queue: the group's (priv.c). */
	priv_raise();
#ifdef O_TMPFILE
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0660);
	if (fd != -1) {
		priv_drop();
		return fd;
	}
#endif
	if ((size_t)snprintf(path, sizeof(path), "%s/outbox.XXXXXX", dir) >=
	    sizeof(path)) {
		priv_drop();
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = mkstemp(path)) != -1)
		unlink(path);
	priv_drop();
	return fd;
}

/* Records why the message cannot be taken (STAGE_LOCAL); returns -1. */
static int
fail(struct spool *sp, enum fclass class, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(sp->m->fail.text, sizeof(sp->m->fail.text), fmt, ap);
	va_end(ap);
	sp->m->fail.stage = STAGE_LOCAL;
	sp->m->fail.class = class;
	return -1;
}

static int
out_flush(struct spool *sp)
{
	size_t	off = 0;
	ssize_t	n;

	/* The shared spool's bound: refused for good, kept nowhere. */
	if (sp->o->size_max > 0 && sp->m->size + (off_t)sp->olen >
	    sp->o->size_max)
		return fail(sp, FC_PERM, "message larger than queue_max_message_"
		    "size (%lld octets): refused and not kept; send it in "
		    "parts, or ask for a larger limit",
		    (long long)sp->o->size_max);
	while (off < sp->olen) {
		n = write(sp->m->fd, sp->out + off, sp->olen - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return fail(sp, FC_TEMP, "writing the spool file: %s",
			    strerror(errno));
		off += n;
	}
	sp->m->size += sp->olen;
	sp->olen = 0;
	return 0;
}

static int
out_put(struct spool *sp, const char *p, size_t len)
{
	size_t	n;

	while (len > 0) {
		if (sp->olen == sizeof(sp->out) && out_flush(sp) == -1)
			return -1;
		n = sizeof(sp->out) - sp->olen;
		if (n > len)
			n = len;
		memcpy(sp->out + sp->olen, p, n);
		sp->olen += n;
		p += n;
		len -= n;
	}
	return 0;
}

/* Length of a field name followed by ':' at the start of s, else 0. */
static int
header_name_len(const char *s, size_t len)
{
	size_t	i;

	for (i = 0; i < len && s[i] != ':'; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return 0;
	return i > 0 && i < len ? (int)i : 0;
}

static int
header_is(const struct header *h, const char *name)
{
	size_t	n = strlen(name);

	return h->len > n && h->text[n] == ':' &&
	    strncasecmp(h->text, name, n) == 0;
}

/* The field body after the colon. */
static const char *
header_value(const struct header *h, size_t *len)
{
	const char	*c = memchr(h->text, ':', h->len);

	*len = h->len - (c + 1 - h->text);
	return c + 1;
}

/* One complete physical line of the header block is in sp->line. */
static int
header_line(struct spool *sp)
{
	struct header	*h;
	const char	*l = sp->line;
	size_t		 len = sp->llen;
	int		 first = sp->first_line;

	sp->first_line = 0;
	if (first && len >= 5 && memcmp(l, "From ", 5) == 0)
		return 0;		/* mbox separator, not a header */
	if (len == 0) {
		sp->in_headers = 0;
		return headers_end(sp);
	}
	if (len > LINE_MAX_SMTP)
		return fail(sp, FC_PERM, "header line of %zu octets; RFC 5322 "
		    "allows 998: fold it", len);
	if (memchr(l, '\0', len) != NULL)
		return fail(sp, FC_PERM, "NUL byte in the header block");
	if ((l[0] == ' ' || l[0] == '\t') && sp->nhdr > 0) {
		h = &sp->hdr[sp->nhdr - 1];
		h->text = xreallocarray(h->text, h->len + len + 3, 1);
		memcpy(h->text + h->len, "\r\n", 2);
		memcpy(h->text + h->len + 2, l, len);
		h->len += len + 2;
		h->text[h->len] = '\0';
		return 0;
	}
	if (header_name_len(l, len) == 0) {
		/* Not a header: the body starts here, without a blank line. */
		sp->in_headers = 0;
		if (headers_end(sp) == -1 || body_bytes(sp, l, len) == -1)
			return -1;
		return body_bytes(sp, "\n", 1);
	}
	sp->hdr = xreallocarray(sp->hdr, sp->nhdr + 1, sizeof(*sp->hdr));
	h = &sp->hdr[sp->nhdr++];
	h->text = xreallocarray(NULL, len + 1, 1);
	memcpy(h->text, l, len);
	h->text[len] = '\0';
	h->len = len;
	return 0;
}

/* Quotes or encodes a display name (RFC 5322 phrase, RFC 2047 for UTF-8). */
static void
put_phrase(char *buf, size_t size, const char *name)
{
	const unsigned char	*p;
	int			 plain = 1, atoms = 1;
	size_t			 n, len = strlen(name), off, chunk;

	for (p = (const unsigned char *)name; *p != '\0'; p++) {
		if (*p >= 0x80 || *p < 0x20)
			plain = 0;
		else if (strchr("()<>[]:;@\\,.\"", *p) != NULL)
			atoms = 0;
	}
	if (plain && atoms) {
		strlcpy(buf, name, size);
		return;
	}
	if (plain) {
		n = strlcpy(buf, "\"", size);
		for (p = (const unsigned char *)name; *p != '\0' && n + 3 <
		    size; p++) {
			if (*p == '"' || *p == '\\')
				buf[n++] = '\\';
			buf[n++] = *p;
		}
		buf[n] = '\0';
		strlcat(buf, "\"", size);
		return;
	}
	buf[0] = '\0';
	for (off = 0; off < len; off += chunk) {
		char	w[MIME_WORD_MAX];

		chunk = render_mime_word(w, name + off, len - off, "UTF-8", 75);
		if (off > 0)
			strlcat(buf, " ", size);
		strlcat(buf, w, size);
	}
}

/* Replaces a header's value, keeping its name. */
static void
header_set(struct header *h, const char *v, size_t len)
{
	size_t	name = strchr(h->text, ':') + 1 - h->text;
	size_t	sp = len > 0 && (v[0] == ' ' || v[0] == '\t') ? 0 : 1;
	char	*t = xreallocarray(NULL, name + sp + len + 1, 1);

	memcpy(t, h->text, name);
	t[name] = ' ';
	memcpy(t + name + sp, v, len);
	t[name + sp + len] = '\0';
	free(h->text);
	h->text = t;
	h->len = name + sp + len;
}

/*
 * Address headers: bare local names qualified as the envelope's are, so
 * providers take "To: root"; with from_rewrite, From becomes the account's
 * address, the original kept as the display name and in Reply-To.
 */
static int
header_rewrite(struct spool *sp, struct header *h)
{
	/* Where mail goes: aliases apply, as to the envelope recipients. */
	static const char *to[] = {
		"To", "Cc", "Reply-To", "Resent-To", "Resent-Cc", NULL
	};
	/* Who wrote it: only qualified, as the envelope sender is. */
	static const char *from[] = {
		"From", "Sender", "Resent-From", "Resent-Sender", NULL
	};
	const struct aliases *al = sp->o->aliases;
	const char	**name, *v;
	char		*q, err[200];
	size_t		 vlen;

	for (name = to; *name != NULL && !header_is(h, *name); name++)
		;
	if (*name == NULL) {
		for (name = from; *name != NULL && !header_is(h, *name);
		    name++)
			;
		al = NULL;
	}
	if (*name == NULL)
		return 0;
	v = header_value(h, &vlen);
	switch (addr_qualify(v, vlen, al, sp->o->maildomain, &q, err,
	    sizeof(err))) {
	case -1:
		return fail(sp, FC_PERM, "%s: %s", *name, err);
	case 1:
		header_set(h, q, strlen(q));
		free(q);
		break;
	}
	return 0;
}

/* The From header of from_rewrite: "Original" <account@address>. */
static int
from_rewrite(struct spool *sp, struct header *from, int have_replyto)
{
	struct strlist	 l = { NULL, 0 };
	const char	*v, *lt;
	char		 name[512], buf[1024], err[200];
	size_t		 vlen, n;

	v = header_value(from, &vlen);
	if (addr_parse_list(v, vlen, &l, err, sizeof(err)) == -1 || l.n == 0) {
		strlist_free(&l);
		return fail(sp, FC_PERM, "From: %s", l.n == 0 ? "no address" : err);
	}
	/* The display name: before "<", or a comment, or the address. */
	n = strspn(v, " \t");
	v += n;
	vlen -= n;
	if ((lt = memchr(v, '<', vlen)) != NULL && lt > v)
		snprintf(buf, sizeof(buf), "%.*s", (int)(lt - v), v);
	else if ((lt = memchr(v, '(', vlen)) != NULL &&
	    memchr(lt, ')', vlen - (lt - v)) != NULL)
		snprintf(buf, sizeof(buf), "%.*s", (int)(strchr(lt, ')') -
		    lt - 1), lt + 1);
	else
		strlcpy(buf, l.v[0], sizeof(buf));
	for (n = strlen(buf); n > 0 && strchr(" \t\"", buf[n - 1]); n--)
		buf[n - 1] = '\0';
	put_phrase(name, sizeof(name), buf + strspn(buf, " \t\""));
	if (!have_replyto && strcasecmp(l.v[0], sp->o->from_rewrite) != 0) {
		/* Replies still reach whoever wrote it. */
		snprintf(buf, sizeof(buf), "Reply-To: %s\r\n", l.v[0]);
		if (out_put(sp, buf, strlen(buf)) == -1) {
			strlist_free(&l);
			return -1;
		}
	}
	strlist_free(&l);
	snprintf(buf, sizeof(buf), "%s <%s>", name, sp->o->from_rewrite);
	header_set(from, buf, strlen(buf));
	return 0;
}

/*
 * The header block is complete: take -t recipients, drop Bcc, note the
 * MIME structure, add what is missing, and write it all to the spool.
 */
static int
headers_end(struct spool *sp)
{
	struct message	*m = sp->m;
	const char	*v;
	size_t		 i, vlen;
	int		 resent = 0;

	for (i = 0; i < sp->nhdr; i++)
		if (strncasecmp(sp->hdr[i].text, "Resent-", 7) == 0)
			resent = 1;
	for (i = 0; i < sp->nhdr; i++) {
		struct header	*h = &sp->hdr[i];
		int		 rcpt, bcc;

		bcc = header_is(h, "Bcc") || header_is(h, "Resent-Bcc");
		rcpt = resent ? header_is(h, "Resent-To") ||
		    header_is(h, "Resent-Cc") || header_is(h, "Resent-Bcc") :
		    header_is(h, "To") || header_is(h, "Cc") ||
		    header_is(h, "Bcc");
		v = header_value(h, &vlen);
		if (rcpt && sp->o->from_headers) {
			char	err[200];

			if (addr_parse_list(v, vlen, &m->hdr_rcpt, err,
			    sizeof(err)) == -1)
				return fail(sp, FC_PERM, "%.*s: %s",
				    (int)(strchr(h->text, ':') - h->text),
				    h->text, err);
		}
		if (header_is(h, "Content-Type")) {
			while (vlen > 0 && (*v == ' ' || *v == '\t'))
				v++, vlen--;
			m->multipart = strncasecmp(v, "multipart/", 10) == 0 ||
			    strncasecmp(v, "message/", 8) == 0;
		}
		if (header_is(h, "Content-Transfer-Encoding"))
			m->encoded = strcasestr(v, "base64") != NULL ||
			    strcasestr(v, "quoted-printable") != NULL;
		if (header_is(h, "MIME-Version"))
			m->mime_version = 1;
		if (bcc) {
			free(h->text);
			h->text = NULL;
		} else if (header_rewrite(sp, h) == -1)
			return -1;
	}
	return headers_write(sp);
}

static int
headers_write(struct spool *sp)
{
	const struct msgopts *o = sp->o;
	char		 buf[1024], name[512], date[64];
	unsigned char	 rnd[8];
	int		 from = 0, mdate = 0, msgid = 0, replyto = 0;
	size_t		 i;
	time_t		 now = time(NULL);

	for (i = 0; i < sp->nhdr; i++)
		if (sp->hdr[i].text != NULL)
			replyto |= header_is(&sp->hdr[i], "Reply-To");
	for (i = 0; i < sp->nhdr; i++) {
		struct header *h = &sp->hdr[i];

		if (h->text == NULL)
			continue;
		if (header_is(h, "From") && o->from_rewrite != NULL &&
		    from_rewrite(sp, h, replyto) == -1)
			return -1;
		from |= header_is(h, "From");
		mdate |= header_is(h, "Date");
		msgid |= header_is(h, "Message-ID");
		if (out_put(sp, h->text, h->len) == -1 ||
		    out_put(sp, "\r\n", 2) == -1)
			return -1;
	}
	if (!from) {
		if (o->fullname != NULL && o->fullname[0] != '\0') {
			put_phrase(name, sizeof(name), o->fullname);
			snprintf(buf, sizeof(buf), "From: %s <%s>\r\n", name,
			    o->sender);
		} else
			snprintf(buf, sizeof(buf), "From: %s\r\n", o->sender);
		if (out_put(sp, buf, strlen(buf)) == -1)
			return -1;
	}
	if (!mdate) {
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z",
		    localtime(&now));
		snprintf(buf, sizeof(buf), "Date: %s\r\n", date);
		if (out_put(sp, buf, strlen(buf)) == -1)
			return -1;
	}
	if (!msgid) {
		arc4random_buf(rnd, sizeof(rnd));
		strftime(date, sizeof(date), "%Y%m%d%H%M%S", gmtime(&now));
		snprintf(buf, sizeof(buf), "Message-ID: <%s.%02x%02x%02x%02x"
		    "%02x%02x%02x%02x@%s>\r\n", date, rnd[0], rnd[1], rnd[2],
		    rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], o->maildomain);
		if (out_put(sp, buf, strlen(buf)) == -1)
			return -1;
	}
	/* The blank line, unless the input ended in its header block. */
	if (!sp->nobody && out_put(sp, "\r\n", 2) == -1)
		return -1;
	sp->m->blank = !sp->nobody;
	sp->m->body = sp->m->size + sp->olen;
	return 0;
}

static void
headers_free(struct spool *sp)
{
	size_t	i;

	for (i = 0; i < sp->nhdr; i++)
		free(sp->hdr[i].text);
	free(sp->hdr);
	free(sp->line);
}

/* A line of the body ended: CRLF goes out, the line's length is noted. */
static int
line_end(struct spool *sp)
{
	if (sp->col > sp->m->max_line)
		sp->m->max_line = sp->col;
	sp->col = 0;
	return out_put(sp, "\r\n", 2);
}

/*
 * Streams body octets to the spool. LF, CRLF and a bare CR each end a line
 * and become CRLF; without -i a line holding only "." ends the input.
 */
static int
body_bytes(struct spool *sp, const char *p, size_t len)
{
	const char	*end = p + len, *run;

	while (p < end && !sp->done) {
		if (sp->cr) {
			sp->cr = 0;
			if (line_end(sp) == -1)
				return -1;
			if (*p == '\n') {
				p++;
				continue;
			}
		}
		if (sp->dot) {
			sp->dot = 0;
			if (*p == '\n' || *p == '\r') {
				sp->done = 1;	/* sendmail's end of input */
				break;
			}
			if (out_put(sp, ".", 1) == -1)
				return -1;
			sp->col++;
		} else if (sp->col == 0 && *p == '.' && sp->o->dot_ends) {
			sp->dot = 1;
			p++;
			continue;
		}
		/* Copy the run of ordinary octets in one go. */
		for (run = p; p < end && *p != '\n' && *p != '\r'; p++) {
			if (*p == '\0')
				sp->m->nul = 1;
			else if ((unsigned char)*p >= 0x80)
				sp->m->eightbit = 1;
		}
		if (p > run) {
			if (out_put(sp, run, p - run) == -1)
				return -1;
			sp->col += p - run;
			continue;
		}
		if (*p == '\r')
			sp->cr = 1;
		else if (line_end(sp) == -1)
			return -1;
		p++;
	}
	return 0;
}

/* Feeds input to the header block, line by line, until the body starts. */
static int
header_bytes(struct spool *sp, const char **pp, const char *end)
{
	const char	*p = *pp;

	while (p < end && sp->in_headers) {
		if (sp->cr) {
			sp->cr = 0;
			if (*p == '\n')
				p++;
			if (header_line(sp) == -1)
				return -1;
			sp->llen = 0;
			continue;
		}
		if (*p == '\r' || *p == '\n') {
			if (*p++ == '\r') {
				sp->cr = 1;
				continue;
			}
			if (sp->o->dot_ends && sp->llen == 1 &&
			    sp->line[0] == '.') {
				sp->done = sp->nobody = 1;
				sp->in_headers = 0;
				return headers_end(sp);
			}
			if (header_line(sp) == -1)
				return -1;
			sp->llen = 0;
			continue;
		}
		if ((unsigned char)*p >= 0x80)
			sp->m->eightbit = 1;
		if (sp->htotal++ >= HEADER_MAX)
			return fail(sp, FC_PERM, "header block larger than %d "
			    "octets", HEADER_MAX);
		if (sp->llen + 1 >= sp->lcap) {
			sp->lcap = sp->lcap ? sp->lcap * 2 : 1024;
			sp->line = xreallocarray(sp->line, sp->lcap, 1);
		}
		sp->line[sp->llen++] = *p++;
	}
	*pp = p;
	return 0;
}

/*
 * Reads the message from fd into a new spool file in o->spool_dir. On
 * failure returns -1 with m->fail set: FC_PERM for a message that can
 * never go, FC_TEMP when the spool cannot take it now (a full disk).
 */
int
message_read(struct message *m, const struct msgopts *o, int fd)
{
	struct spool	*sp;
	char		 buf[BLOCK];
	const char	*p;
	ssize_t		 n;
	int		 rv = -1;

	memset(m, 0, sizeof(*m));
	if ((m->fd = spool_open(o->spool_dir)) == -1) {
		snprintf(m->fail.text, sizeof(m->fail.text), "cannot create a "
		    "spool file in %s: %s", o->spool_dir, strerror(errno));
		m->fail.stage = STAGE_QUEUE;
		m->fail.class = FC_TEMP;
		return -1;
	}
	sp = xcalloc(1, sizeof(*sp));
	sp->m = m;
	sp->o = o;
	sp->in_headers = sp->first_line = 1;
	while (!sp->done) {
		n = read(fd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR && !stopping())
			continue;
		if (n == -1 && stopping()) {
			fail(sp, FC_TEMP, "stopped by a signal before the "
			    "message was read; nothing was sent");
			goto out;
		}
		if (n == -1) {
			fail(sp, FC_LOCAL, "reading standard input: %s",
			    strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		p = buf;
		if (sp->in_headers && header_bytes(sp, &p, buf + n) == -1)
			goto out;
		if (!sp->in_headers &&
		    body_bytes(sp, p, buf + n - p) == -1)
			goto out;
	}
	/* End of input: finish a pending line and the header block. */
	if (sp->in_headers) {
		if (sp->cr || sp->llen > 0) {
			sp->cr = 0;
			if (!(o->dot_ends && sp->llen == 1 &&
			    sp->line[0] == '.') && header_line(sp) == -1)
				goto out;
		}
		if (sp->in_headers) {
			sp->in_headers = 0;
			sp->nobody = 1;
			if (headers_end(sp) == -1)
				goto out;
		}
	} else if (!sp->done) {
		if (sp->dot && out_put(sp, ".", 1) == -1)
			goto out;
		if (sp->dot)
			sp->col++;
		if ((sp->cr || sp->col > 0) && line_end(sp) == -1)
			goto out;
	}
	if (out_flush(sp) == -1)
		goto out;
	rv = 0;
out:
	headers_free(sp);
	free(sp);
	return rv;
}

/* Whether the body may be re-encoded as quoted-printable. */
int
message_qp_allowed(const struct message *m)
{
	return !m->multipart && !m->encoded;
}

/*
 * Whether the body holds an 8-bit octet (-1 when it cannot be read): a
 * message whose only 8-bit text is in its header block needs only that
 * encoded (RFC 2047) for a server without 8BITMIME, multipart or not.
 */
int
message_body_8bit(const struct message *m)
{
	char	buf[65536];
	off_t	off = m->body;
	ssize_t	n, i;

	while (off < m->size) {
		if ((n = pread(m->fd, buf, sizeof(buf), off)) <= 0)
			return -1;
		for (i = 0; i < n; i++)
			if ((unsigned char)buf[i] >= 0x80)
				return 1;
		off += n;
	}
	return 0;
}

void
message_close(struct message *m)
{
	if (m->fd != -1)
		close(m->fd);
	m->fd = -1;
	strlist_free(&m->hdr_rcpt);
}
