/* SPDX-License-Identifier: ISC */
/*
 * Buffered line I/O over a socket or a TLS connection, with a deadline for
 * every wait. TLS or plain is chosen once, through the read/write pointers.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "outbox.h"
#include "io.h"

static ssize_t	plain_read(struct io *, void *, size_t);
static ssize_t	plain_write(struct io *, const void *, size_t);
static int	io_wait(struct io *, short);
static int	io_fill(struct io *);

void
io_init(struct io *io, int fd, int timeout_ms)
{
	memset(io, 0, sizeof(*io));
	io->fd = fd;
	io->timeout_ms = timeout_ms;
	io->read = plain_read;
	io->write = plain_write;
}

#define RESOLVE_LATE	1		/* not a getaddrinfo code: those are < 0 */

struct lookup {
	struct gaicb	 cb;
	struct addrinfo	 hints;
	char		*host, port[16];
};

/*
 * getaddrinfo by end_ms (getaddrinfo_a: a resolver that never answers cannot
 * hold the caller). Returns getaddrinfo's code, or RESOLVE_LATE when the time
 * was up first; such a lookup is cancelled, or left to finish on its own with
 * its memory (a few hundred octets, once).
 */
static int
resolve(const char *host, const char *port, long long end_ms,
    struct addrinfo **res)
{
	struct lookup	*l = xcalloc(1, sizeof(*l));
	struct gaicb	*list[1] = { &l->cb };
	struct timespec	 ts;
	long long	 left;
	int		 e;

	l->host = xstrdup(host);
	strlcpy(l->port, port, sizeof(l->port));
	l->hints.ai_family = AF_UNSPEC;
	l->hints.ai_socktype = SOCK_STREAM;
	l->cb.ar_name = l->host;
	l->cb.ar_service = l->port;
	l->cb.ar_request = &l->hints;
	if ((e = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL)) != 0)
		goto done;
	while ((e = gai_error(&l->cb)) == EAI_INPROGRESS) {
		if ((left = end_ms - mono_ms()) <= 0 || stopping())
			break;
		ts.tv_sec = left / 1000;
		ts.tv_nsec = left % 1000 * 1000000;
		gai_suspend((const struct gaicb * const *)list, 1, &ts);
	}
	if (e == EAI_INPROGRESS && gai_cancel(&l->cb) != EAI_CANCELED &&
	    gai_error(&l->cb) == EAI_INPROGRESS)
		return RESOLVE_LATE;	/* still running: l is its memory */
	if (e == EAI_INPROGRESS)
		e = RESOLVE_LATE;
	if (e == 0)
		*res = l->cb.ar_result;
	else if (l->cb.ar_result != NULL)
		freeaddrinfo(l->cb.ar_result);
done:
	free(l->host);
	free(l);
	return e;
}

/*
 * A TCP connection to host:port: the name resolved by end_ms (CLOCK_MONOTONIC),
 * then every address in turn, each given timeout_ms and no more than is left
 * of end_ms. The address that answered goes to addr; -1 with why.
 */
int
io_dial(const char *host, const char *port, long long timeout_ms,
    long long end_ms, char *addr, size_t addrlen, char *why, size_t whylen)
{
	struct addrinfo	*res, *ai;
	struct pollfd	 pfd;
	socklen_t	 sl;
	long long	 ms;
	long long	 left = end_ms - mono_ms();
	int		 fd = -1, e, one = 1;

	*addr = '\0';
	if ((e = resolve(host, port, end_ms, &res)) == RESOLVE_LATE) {
		reason_add(why, whylen, "%s: no answer from the resolver within "
		    "%lld s (timeout)", host, left > 0 ? (left + 999) / 1000 : 0);
		return -1;
	}
	if (e != 0) {
		reason_add(why, whylen, "%s: %s", host, gai_strerror(e));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, addrlen, NULL,
		    0, NI_NUMERICHOST);
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1)
			continue;
		e = 0;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1 &&
		    (e = errno) == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			ms = end_ms - mono_ms();
			if (ms > timeout_ms)
				ms = timeout_ms;
			if (ms <= 0 || poll(&pfd, 1, (int)ms) <= 0)
				e = ETIMEDOUT;
			else {
				sl = sizeof(e);
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl);
			}
		}
		if (e == 0)
			break;
		reason_add(why, whylen, "%s[%s]:%s: %s", host, addr, port,
		    strerror(e));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd != -1)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* The whole session must be over within ms from now; 0 lifts the bound. */
void
io_session(struct io *io, long long ms)
{
	io->session_ms = ms;
	io->session_end = ms > 0 ? mono_ms() + ms : 0;
}

/*
 * on: the reply about to be read must be complete within timeout_ms, so
 * a server that trickles a byte at a time cannot stretch one wait after
 * the other; off: no such bound (sending a message may take longer).
 */
void
io_reply(struct io *io, int on)
{
	io->reply_end = on ? mono_ms() + io->timeout_ms : 0;
}

/*
 * How long the next wait may last: timeout_ms, cut short by the reply's
 * and the session's deadlines; 0 once one of them has passed.
 */
int
io_wait_ms(struct io *io)
{
	long long	now = mono_ms(), ms = io->timeout_ms;

	if (io->reply_end != 0 && io->reply_end - now < ms)
		ms = io->reply_end - now;
	if (io->session_end != 0 && io->session_end - now < ms)
		ms = io->session_end - now;
	return ms > 0 ? (int)ms : 0;
}

/* Says in io->err which bound the wait for what (may be "") ran into. */
void
io_timed_out(struct io *io, const char *what)
{
	long long	now = mono_ms();

	if (io->session_end != 0 && now >= io->session_end)
		snprintf(io->err, sizeof(io->err), "%s%sthe session took "
		    "longer than %lld s (session_timeout)", what,
		    *what != '\0' ? ": " : "", io->session_ms / 1000);
	else if (io->reply_end != 0 && now >= io->reply_end)
		snprintf(io->err, sizeof(io->err), "%s%sno complete reply "
		    "within %d s (timeout)", what, *what != '\0' ? ": " : "",
		    io->timeout_ms / 1000);
	else
		snprintf(io->err, sizeof(io->err), "%s%stimed out after %d s",
		    what, *what != '\0' ? " " : "", io->timeout_ms / 1000);
}

/* Waits until the descriptor is ready for events; -1 with io->err on timeout. */
static int
io_wait(struct io *io, short events)
{
	struct pollfd	pfd = { .fd = io->fd, .events = events };
	int		n;

	do {
		n = poll(&pfd, 1, io_wait_ms(io));
	} while (n == -1 && errno == EINTR && !stopping());
	if (n == 0) {
		io_timed_out(io, "");
		return -1;
	}
	if (n == -1) {
		snprintf(io->err, sizeof(io->err), "poll: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static ssize_t
plain_read(struct io *io, void *buf, size_t len)
{
	ssize_t	n;

	for (;;) {
		n = read(io->fd, buf, len);
		if (n >= 0)
			return n;
		if (errno == EINTR && !stopping())
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			snprintf(io->err, sizeof(io->err), "read: %s",
			    strerror(errno));
			return -1;
		}
		if (io_wait(io, POLLIN) == -1)
			return -1;
	}
}

static ssize_t
plain_write(struct io *io, const void *buf, size_t len)
{
	ssize_t	n;

	for (;;) {
		n = send(io->fd, buf, len, MSG_NOSIGNAL);
		if (n >= 0)
			return n;
		if (errno == EINTR && !stopping())
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			snprintf(io->err, sizeof(io->err), "write: %s",
			    strerror(errno));
			return -1;
		}
		if (io_wait(io, POLLOUT) == -1)
			return -1;
	}
}

/*
 * Asks the kernel to acknowledge what arrives at once. A server that
 * writes twice (TLS tickets, then a reply) waits under Nagle for our ACK,
 * which Linux would hold up to 40 ms while we have nothing to send. It
 * lasts a few segments only, so it is set before each wait to read.
 */
void
io_quickack(int fd)
{
#ifdef TCP_QUICKACK
	int	one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
#else
	(void)fd;
#endif
}

/* Reads more into the buffer; -1 on error, timeout or end of stream. */
static int
io_fill(struct io *io)
{
	ssize_t	n;

	if (io->rpos > 0) {
		memmove(io->rbuf, io->rbuf + io->rpos, io->rlen - io->rpos);
		io->rlen -= io->rpos;
		io->rpos = 0;
	}
	if (io->rlen == sizeof(io->rbuf)) {
		snprintf(io->err, sizeof(io->err),
		    "reply line longer than %zu octets", sizeof(io->rbuf));
		io->failed = 1;
		return -1;
	}
	/* A deadline holds even for a peer whose bytes are always ready. */
	if (io_wait_ms(io) == 0) {
		io_timed_out(io, "");
		io->failed = 1;
		return -1;
	}
	if (io->tcp)
		io_quickack(io->fd);
	n = io->read(io, io->rbuf + io->rlen, sizeof(io->rbuf) - io->rlen);
	if (n == 0)
		snprintf(io->err, sizeof(io->err), "connection closed");
	if (n <= 0) {
		io->failed = 1;
		return -1;
	}
	io->rlen += n;
	return 0;
}

/*
 * Reads one line; *line points into the buffer, valid until the next read,
 * NUL-terminated without its CRLF (or LF). A line that does not fit the
 * buffer is an error, never split into two.
 */
int
io_getline(struct io *io, char **line, size_t *len)
{
	char	*start, *nl;

	for (;;) {
		start = io->rbuf + io->rpos;
		nl = memchr(start, '\n', io->rlen - io->rpos);
		if (nl != NULL)
			break;
		if (io_fill(io) == -1)
			return -1;
	}
	*len = nl - start;
	if (*len > 0 && start[*len - 1] == '\r')
		(*len)--;
	start[*len] = '\0';
	io->rpos = nl + 1 - io->rbuf;
	*line = start;
	return 0;
}

/*
 * Returns the next piece of input: up to and including a LF, or all that
 * is buffered when no LF is there yet. For data whose lines may be longer
 * than the buffer; nothing after the piece is consumed.
 */
int
io_getpiece(struct io *io, char **p, size_t *len)
{
	char	*start, *nl;

	if (io->rpos == io->rlen) {
		io->rpos = io->rlen = 0;
		if (io_fill(io) == -1)
			return -1;
	}
	start = io->rbuf + io->rpos;
	nl = memchr(start, '\n', io->rlen - io->rpos);
	*len = nl != NULL ? (size_t)(nl + 1 - start) : io->rlen - io->rpos;
	*p = start;
	io->rpos += *len;
	return 0;
}

/* Bytes received and not yet consumed: after STARTTLS they mean an attack. */
size_t
io_pending(const struct io *io)
{
	return io->rlen - io->rpos;
}

/*
 * Sends what is buffered. What a partial write sent is dropped at once,
 * so only the bytes not yet sent remain: a failure never sends a byte
 * twice. Any failure marks the io failed (sticky): nothing more is
 * written on it.
 */
int
io_flush(struct io *io)
{
	ssize_t	n;

	if (io->failed)
		return -1;
	if (io->wlen > 0)
		io->nflush++;
	while (io->wlen > 0) {
		n = io->write(io, io->wbuf, io->wlen);
		if (n <= 0) {
			if (n == 0)
				snprintf(io->err, sizeof(io->err),
				    "connection closed");
			io->failed = 1;
			return -1;
		}
		memmove(io->wbuf, io->wbuf + n, io->wlen - n);
		io->wlen -= n;
	}
	return 0;
}

int
io_write(struct io *io, const void *buf, size_t len)
{
	const char	*p = buf;
	size_t		 room;

	if (io->failed)
		return -1;
	while (len > 0) {
		if (io->wlen == sizeof(io->wbuf) && io_flush(io) == -1)
			return -1;
		room = sizeof(io->wbuf) - io->wlen;
		if (room > len)
			room = len;
		memcpy(io->wbuf + io->wlen, p, room);
		io->wlen += room;
		p += room;
		len -= room;
	}
	return 0;
}

void
io_close(struct io *io)
{
	if (io->ssl != NULL) {
		SSL_free(io->ssl);
		io->ssl = NULL;
	}
	if (io->fd != -1)
		close(io->fd);
	io->fd = -1;
}
