/*
 * The spooled message rendered for where it goes: the wire as it is, or
 * with the body re-encoded as quoted-printable; an mbox for dead.letter.
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

#include "outbox.h"

#define BLOCK		65536

struct qp {
	int	(*out)(void *, const char *, size_t);
	void	*arg;
	char	 buf[BLOCK];
	size_t	 len;
	size_t	 col;
};

static int	qp_emit(struct qp *, const char *, size_t);
static int	qp_octet(struct qp *, unsigned char, int);
static int	qp_headers(const struct message *, struct qp *, char *);
static int	render_qp(const struct message *,
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

/* Copies the header block with Content-Transfer-Encoding replaced. */
static int
qp_headers(const struct message *m, struct qp *q, char *hb)
{
	char	*line = hb, *nl;
	int	 skip = 0;

	if (pread(m->fd, hb, m->body, 0) != m->body)
		return -1;
	while (line < hb + m->body - (m->blank ? 2 : 0)) {
		nl = memchr(line, '\n', hb + m->body - line);
		if (line[0] != ' ' && line[0] != '\t')
			skip = strncasecmp(line, "Content-Transfer-Encoding:",
			    26) == 0;
		if (!skip && q->out(q->arg, line, nl + 1 - line) == -1)
			return -1;
		line = nl + 1;
	}
	if (!m->mime_version && q->out(q->arg, "MIME-Version: 1.0\r\n", 19)
	    == -1)
		return -1;
	return q->out(q->arg, "Content-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n", 47);
}

/* Renders the body as quoted-printable (the spool holds CRLF lines). */
static int
render_qp(const struct message *m, int (*out)(void *, const char *, size_t),
    void *arg)
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
	if (qp_headers(m, q, hb) == -1)
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
 * Renders the message for the wire, through out(arg, bytes, len): the spool
 * as it is, or with the body re-encoded as quoted-printable when qp is set.
 * Dot-stuffing is the caller's (DATA needs it, BDAT does not).
 */
int
message_render(const struct message *m, int qp,
    int (*out)(void *, const char *, size_t), void *arg)
{
	char	buf[BLOCK];
	off_t	off = 0;
	ssize_t	n;

	if (qp)
		return render_qp(m, out, arg);
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
message_dead_letter(const struct message *m, const char *path,
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
