/* SPDX-License-Identifier: ISC */
/*
 * The spooled message rendered for where it goes: the wire as it is, or
 * with the body re-encoded as quoted-printable (and, for a server without
 * 8BITMIME, 8-bit header text as RFC 2047 encoded-words); an mbox for
 * dead.letter.
 */
#include <sys/file.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "outbox.h"

struct qp {
	int	(*out)(void *, const char *, size_t);
	void	*arg;
	char	 buf[BLOCK];
	size_t	 len;
	size_t	 col;
};

/* A growing buffer for one header field. */
struct hbuf {
	char	*p;
	size_t	 len, cap;
};

static int	qp_emit(struct qp *, const char *, size_t);
static int	qp_octet(struct qp *, unsigned char, int);
static void	hbuf_add(struct hbuf *, const char *, size_t);
static int	utf8_scan(const char *, size_t, int, int *, int *);
static const char *text_charset(const char *, size_t);
static const char *body_charset(const struct message *);
static int	is_field(const char *, const char *const *);
static size_t	column(const struct hbuf *);
static void	words(struct hbuf *, const char *, size_t);
static size_t	phrase_text(const char *, size_t, char *);
static void	encode_phrase(struct hbuf *, const char *, size_t, size_t);
static void	encode_addresses(struct hbuf *, const char *, size_t);
static int	qp_field(struct qp *, const char *, size_t, int);
static int	qp_headers(const struct message *, struct qp *, char *, int);
static int	render_qp(const struct message *, int,
		    int (*)(void *, const char *, size_t), void *);
static int	render_7bit(const struct message *,
		    int (*)(void *, const char *, size_t), void *);

static int
qp_emit(struct qp *q, const char *s, size_t n)
{
	if (q->len + n + 3 > sizeof(q->buf)) {
		if (q->out(q->arg, q->buf, q->len) == -1)
			return -1;
		q->len = 0;
	}
	/* RFC 2045 6.7: lines of at most 76 characters, "=" included. */
	if (n > 0 && s[0] != '\r' && q->col + n > 75) {
		memcpy(q->buf + q->len, "=\r\n", 3);
		q->len += 3;
		q->col = 0;
	}
	memcpy(q->buf + q->len, s, n);
	q->len += n;
	q->col = s[0] == '\r' ? 0 : q->col + n;
	return 0;
}

static int
qp_octet(struct qp *q, unsigned char c, int literal)
{
	char	hex[4];

	if (literal)
		return qp_emit(q, (char *)&c, 1);
	snprintf(hex, sizeof(hex), "=%02X", c);
	return qp_emit(q, hex, 3);
}

static void
hbuf_add(struct hbuf *b, const char *p, size_t n)
{
	if (b->p == NULL || b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = xreallocarray(b->p, b->cap, 1);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/*
 * Scans n octets of text for 8-bit octets (*high) and for octets that are
 * not UTF-8 (*bad). With more, the text goes on after n: a sequence cut
 * at the end is left for the next call. Returns how many octets it took.
 */
static int
utf8_scan(const char *p, size_t n, int more, int *high, int *bad)
{
	const unsigned char	*u = (const unsigned char *)p;
	size_t			 i = 0, k;

	while (i < n) {
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		*high = 1;
		if ((k = utf8_len(u + i, n - i)) == 0) {
			if (more && n - i < 4)
				break;		/* perhaps cut: read on */
			*bad = 1;
			k = 1;
		}
		i += k;
	}
	return (int)i;
}

/*
 * The charset that labels text: us-ascii, utf-8 when it is valid UTF-8,
 * else unknown-8bit (RFC 1428: 8-bit text of no known charset).
 */
static const char *
text_charset(const char *p, size_t n)
{
	int	high = 0, bad = 0;

	utf8_scan(p, n, 0, &high, &bad);
	if (!high)
		return "us-ascii";
	return bad ? "unknown-8bit" : "utf-8";
}

/* The same for the body in the spool; NULL when it cannot be read. */
static const char *
body_charset(const struct message *m)
{
	char		 buf[BLOCK];
	off_t		 off = m->body;
	ssize_t		 n;
	int		 high = 0, bad = 0, k;

	while (off < m->size && (n = pread(m->fd, buf, sizeof(buf), off)) > 0) {
		if ((k = utf8_scan(buf, n, off + n < m->size, &high, &bad))
		    == 0)
			break;		/* a short read: not the whole body */
		off += k;
	}
	if (off < m->size)
		return NULL;
	if (!high)
		return "us-ascii";
	return bad ? "unknown-8bit" : "utf-8";
}

/*
 * Encodes the start of p as one RFC 2047 encoded-word ("B" encoding) into
 * word: as many octets as fit in max characters (at most 75), never a part
 * of a UTF-8 sequence. Returns how many octets it took (0: max is too small).
 */
size_t
render_mime_word(char word[MIME_WORD_MAX], const char *p, size_t len,
    const char *charset, size_t max)
{
	unsigned char	enc[64];
	size_t		n, head = 7 + strlen(charset);

	if (max > 75)
		max = 75;
	n = max > head ? (max - head) / 4 * 3 : 0;
	if (n > 45)
		n = 45;
	if (n > len)
		n = len;
	while (n > 1 && n < len && ((unsigned char)p[n] & 0xc0) == 0x80)
		n--;
	EVP_EncodeBlock(enc, (const unsigned char *)p, n);
	snprintf(word, MIME_WORD_MAX, "=?%s?B?%s?=", charset, enc);
	return n;
}

/* The column the buffer's last line has reached. */
static size_t
column(const struct hbuf *b)
{
	size_t	i = b->len;

	while (i > 0 && b->p[i - 1] != '\n')
		i--;
	return b->len - i;
}

/* Whether the field (its text from the name on) is one of names. */
static int
is_field(const char *f, const char *const *names)
{
	size_t	n;

	for (; *names != NULL; names++) {
		n = strlen(*names);
		if (strncasecmp(f, *names, n) == 0 && f[n] == ':')
			return 1;
	}
	return 0;
}

/*
 * Appends text as encoded-words, folded so that no line passes 76
 * characters (RFC 2047 2).
 */
static void
words(struct hbuf *b, const char *p, size_t n)
{
	const char	*cs = strcmp(text_charset(p, n), "utf-8") == 0 ?
			    "UTF-8" : "UNKNOWN-8BIT";
	char		 w[MIME_WORD_MAX];
	size_t		 off, used;

	for (off = 0; off < n; off += used) {
		if ((used = render_mime_word(w, p + off, n - off, cs, 76 -
		    column(b))) == 0) {
			hbuf_add(b, "\r\n ", 3);
			continue;
		}
		hbuf_add(b, w, strlen(w));
		if (off + used < n)
			hbuf_add(b, "\r\n ", 3);
	}
}

/*
 * The text of a phrase (words and quoted strings, RFC 5322 3.2.5) into
 * out, its quotes and backslashes taken away, blanks at both ends too.
 * Returns its length.
 */
static size_t
phrase_text(const char *p, size_t n, char *out)
{
	size_t	i, len = 0;
	int	quoted = 0;

	for (i = 0; i < n; i++) {
		if (p[i] == '"')
			quoted = !quoted;
		else if (p[i] == '\\' && quoted && i + 1 < n)
			out[len++] = p[++i];
		else if (len > 0 || (p[i] != ' ' && p[i] != '\t'))
			out[len++] = p[i];
	}
	while (len > 0 && (out[len - 1] == ' ' || out[len - 1] == '\t'))
		len--;
	return len;
}

/*
 * A display name: as it is when ASCII, else as encoded-words; after is the
 * length of what follows on its line.
 */
static void
encode_phrase(struct hbuf *b, const char *p, size_t n, size_t after)
{
	char	*t;
	size_t	 i, len;

	for (i = 0; i < n && (unsigned char)p[i] < 0x80; i++)
		;
	if (i == n) {
		hbuf_add(b, p, n);
		return;
	}
	t = xreallocarray(NULL, n + 1, 1);
	len = phrase_text(p, n, t);
	hbuf_add(b, " ", 1);
	words(b, t, len);
	if (column(b) + 1 + after > 76)
		hbuf_add(b, "\r\n ", 3);
	else
		hbuf_add(b, " ", 1);
	free(t);
}

/*
 * An address list with its display names (before "<", or a group's name
 * before ":") encoded where they hold 8-bit text. What is inside <> and
 * bare addresses are never changed; nor are comments.
 */
static void
encode_addresses(struct hbuf *b, const char *v, size_t n)
{
	size_t	i, start = 0, end;
	int	quoted = 0;

	for (i = 0; i < n; i++) {
		if (quoted) {
			if (v[i] == '\\')
				i++;
			else if (v[i] == '"')
				quoted = 0;
			continue;
		}
		if (v[i] == '"')
			quoted = 1;
		else if (v[i] == '(') {
			for (end = i; end < n && v[end] != ')'; end++)
				;
			i = end;
		} else if (v[i] == '<' || v[i] == ':') {
			for (end = i; v[i] == '<' && end < n && v[end] != '>';
			    end++)
				;
			encode_phrase(b, v + start, i - start, end - i + 2);
			hbuf_add(b, v + i, end - i + (end < n ? 1 : 0));
			i = end;
			start = i + 1;
		} else if (v[i] == ',' || v[i] == ';') {
			hbuf_add(b, v + start, i + 1 - start);
			start = i + 1;
		}
	}
	if (start < n)
		hbuf_add(b, v + start, n - start);
}

/*
 * Writes one header field (its lines, CRLF included). With sevenbit,
 * 8-bit text becomes encoded-words where RFC 2047 allows them: the whole
 * of an unstructured field, the display names of an address field. Other
 * fields go as they are.
 */
static int
qp_field(struct qp *q, const char *f, size_t n, int sevenbit)
{
	static const char *const text[] = { "Subject", "Comments",
	    "Content-Description", NULL };
	static const char *const addrs[] = { "From", "To", "Cc", "Bcc",
	    "Reply-To", "Sender", "Resent-From", "Resent-To", "Resent-Cc",
	    "Resent-Sender", "Disposition-Notification-To", NULL };
	struct hbuf	 b = { NULL, 0, 0 }, v = { NULL, 0, 0 };
	const char	*colon = memchr(f, ':', n);
	size_t		 i;
	int		 rv;

	if (!sevenbit || colon == NULL || strcmp(text_charset(f, n),
	    "us-ascii") == 0 || (!is_field(f, text) && !is_field(f, addrs)))
		return q->out(q->arg, f, n);
	hbuf_add(&v, "", 0);	/* an empty field still has a value */
	for (i = colon + 1 - f; i < n; i++)	/* unfolded */
		if (f[i] != '\r' && f[i] != '\n')
			hbuf_add(&v, f + i, 1);
	hbuf_add(&b, f, colon + 1 - f);
	if (is_field(f, text)) {
		i = strspn(v.p, " \t");
		hbuf_add(&b, " ", 1);
		words(&b, v.p + i, v.len - i);
	} else
		encode_addresses(&b, v.p, v.len);
	hbuf_add(&b, "\r\n", 2);
	rv = q->out(q->arg, b.p, b.len);
	free(b.p);
	free(v.p);
	return rv;
}

/*
 * Copies the header block field by field with Content-Transfer-Encoding
 * replaced, and a Content-Type naming the body's charset when there was
 * none (the default, US-ASCII, would be wrong for 8-bit text).
 */
static int
qp_headers(const struct message *m, struct qp *q, char *hb, int flags)
{
	const char	*f = hb, *end = hb + m->body - (m->blank ? 2 : 0);
	const char	*nl, *next, *cs;
	char		 ct[64];
	int		 typed = 0;

	if (pread(m->fd, hb, m->body, 0) != m->body)
		return -1;
	for (; f < end; f = next) {
		/* A field: its first line and the continuation lines. */
		next = f;
		do {
			nl = memchr(next, '\n', end - next);
			next = nl != NULL ? nl + 1 : end;
		} while (next < end && (*next == ' ' || *next == '\t'));
		typed |= strncasecmp(f, "Content-Type:", 13) == 0;
		if (strncasecmp(f, "Content-Transfer-Encoding:", 26) != 0 &&
		    qp_field(q, f, next - f, flags & RENDER_7BIT) == -1)
			return -1;
	}
	if (!m->mime_version && q->out(q->arg, "MIME-Version: 1.0\r\n", 19)
	    == -1)
		return -1;
	if (!typed) {
		if ((cs = body_charset(m)) == NULL)
			return -1;
		snprintf(ct, sizeof(ct), "Content-Type: text/plain; "
		    "charset=%s\r\n", cs);
		if (q->out(q->arg, ct, strlen(ct)) == -1)
			return -1;
	}
	return q->out(q->arg, "Content-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n", 47);
}

/* Renders the body as quoted-printable (the spool holds CRLF lines). */
static int
render_qp(const struct message *m, int flags,
    int (*out)(void *, const char *, size_t), void *arg)
{
	struct qp	*q = xcalloc(1, sizeof(*q));
	char		*hb = xreallocarray(NULL, m->body, 1);
	char		 buf[BLOCK];
	off_t		 off = m->body;
	ssize_t		 n, i;
	int		 ws = 0, rv = -1;
	unsigned char	 c;

	q->out = out;
	q->arg = arg;
	if (qp_headers(m, q, hb, flags) == -1)
		goto done;
	while ((n = pread(m->fd, buf, sizeof(buf), off)) > 0) {
		off += n;
		for (i = 0; i < n; i++) {
			c = buf[i];
			if (c == '\r')
				continue;
			if (ws && qp_octet(q, ws, c != '\n') == -1)
				goto done;
			ws = 0;
			if (c == '\n') {
				if (qp_emit(q, "\r\n", 2) == -1)
					goto done;
			} else if (c == ' ' || c == '\t')
				ws = c;	/* literal unless it ends the line */
			else if (qp_octet(q, c, c >= 33 && c <= 126 &&
			    c != '=') == -1)
				goto done;
		}
	}
	if (n == 0 && (q->len == 0 || out(arg, q->buf, q->len) == 0))
		rv = 0;
done:
	free(hb);
	free(q);
	return rv;
}

/*
 * RENDER_7BIT alone: 8-bit header text as encoded-words, every field kept
 * (Content-Transfer-Encoding and MIME structure included), then the body
 * as it is. What a multipart message whose body is 7-bit needs for a
 * server without 8BITMIME (mpack's Subject).
 */
static int
render_7bit(const struct message *m,
    int (*out)(void *, const char *, size_t), void *arg)
{
	struct qp	 q;
	char		*hb = xreallocarray(NULL, m->body + 1, 1);
	char		 buf[BLOCK];
	const char	*f, *nl, *next, *end = hb + m->body - (m->blank ? 2 : 0);
	off_t		 off = m->body;
	ssize_t		 n = 0;
	int		 rv = -1;

	memset(&q, 0, sizeof(q));
	q.out = out;
	q.arg = arg;
	if (pread(m->fd, hb, m->body, 0) != m->body)
		goto done;
	for (f = hb; f < end; f = next) {
		next = f;
		do {
			nl = memchr(next, '\n', end - next);
			next = nl != NULL ? nl + 1 : end;
		} while (next < end && (*next == ' ' || *next == '\t'));
		if (qp_field(&q, f, next - f, 1) == -1)
			goto done;
	}
	if (m->blank && out(arg, "\r\n", 2) == -1)
		goto done;
	while (off < m->size && (n = pread(m->fd, buf, sizeof(buf), off)) > 0) {
		if (out(arg, buf, n) == -1)
			goto done;
		off += n;
	}
	if (off == m->size)
		rv = 0;
done:
	free(hb);
	return rv;
}

/*
 * Renders the message for the wire, through out(arg, bytes, len): the spool
 * as it is, or with RENDER_QP the body re-encoded as quoted-printable, and
 * with RENDER_7BIT also 8-bit header text encoded (RFC 2047); RENDER_7BIT
 * alone leaves the body as it is. Dot-stuffing is the caller's (DATA
 * needs it, BDAT does not).
 */
int
render_message(const struct message *m, int flags,
    int (*out)(void *, const char *, size_t), void *arg)
{
	char	buf[BLOCK];
	off_t	off = 0;
	ssize_t	n;

	if (flags & RENDER_QP)
		return render_qp(m, flags, out, arg);
	if (flags & RENDER_7BIT)
		return render_7bit(m, out, arg);
	while (off < m->size) {
		n = pread(m->fd, buf, sizeof(buf), off);
		if (n <= 0)
			return -1;
		if (out(arg, buf, n) == -1)
			return -1;
		off += n;
	}
	return 0;
}

/*
 * Appends the message to an mbox file (dead.letter), CRLF made LF and
 * "From " lines quoted, so that nothing refused is ever gone.
 */
int
render_dead_letter(const struct message *m, const char *path,
    const char *sender, mode_t mode, char *err, size_t errlen)
{
	char	buf[BLOCK], date[64];
	FILE	*fp;
	off_t	off = 0;
	ssize_t	n, i;
	int	fd, bol = 1, rv = 0;
	time_t	now = time(NULL);

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    mode);
	if (fd == -1 || (fp = fdopen(fd, "a")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	flock(fd, LOCK_EX);
	strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", localtime(&now));
	fprintf(fp, "From %s %s\n", sender[0] != '\0' ? sender :
	    "MAILER-DAEMON", date);
	while (off < m->size && (n = pread(m->fd, buf, sizeof(buf), off)) > 0) {
		off += n;
		for (i = 0; i < n; i++) {
			if (bol && i + 5 <= n && memcmp(buf + i, "From ", 5)
			    == 0)
				putc('>', fp);
			bol = buf[i] == '\n';
			if (buf[i] != '\r')
				putc(buf[i], fp);
		}
	}
	putc('\n', fp);
	if (fflush(fp) == EOF || fsync(fd) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		rv = -1;
	}
	fclose(fp);
	return rv;
}
