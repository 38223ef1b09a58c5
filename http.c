/* SPDX-License-Identifier: ISC */
/*
 * A small HTTPS client for OAuth2 token endpoints: one POST of a form, one
 * response read into memory (bounded). The connection is io.c's (the name
 * resolved and every wait bounded by one deadline); TLS is tls.c's, with its rules (CA store or oauth2_ca_file, TLS 1.2 at
 * least, the host name checked); io.c bounds every wait by the timeout.
 *
 * OpenSSL's OSSL_HTTP_transfer is not used: in OpenSSL 3.0 it fails on any
 * status but 200 without reading the body, and OAuth2 says why a request
 * failed in the body of a 400 (RFC 6749 5.2; RFC 8628 3.5 polls on it).
 */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "outbox.h"
#include "io.h"
#include "oauth2.h"

#define HTTP_BODY_MAX	(64 * 1024)
#define HTTP_HEADERS_MAX 100

static int	url_split(const char *, char *, size_t, char *, size_t,
		    const char **);
static int	http_connect(struct io *, const struct account *,
		    const char *, const char *, long long, char *, size_t);
static int	read_head(struct io *, struct http_resp *, long long *,
		    int *, char *, size_t);
static int	read_body(struct io *, struct http_resp *, long long, int,
		    char *, size_t);
static int	body_add(struct http_resp *, const char *, size_t, char *,
		    size_t);

/* https://host[:port]/path into its parts. -1 for anything else. */
static int
url_split(const char *url, char *host, size_t hsize, char *port,
    size_t psize, const char **path)
{
	const char	*h, *e;
	size_t		 n;

	if (strncasecmp(url, "https://", 8) != 0)
		return -1;
	h = url + 8;
	*path = h + strcspn(h, "/");
	if (**path == '\0')
		*path = "/";
	n = strcspn(h, "/:");
	if (n == 0 || n >= hsize)
		return -1;
	memcpy(host, h, n);
	host[n] = '\0';
	strlcpy(port, "443", psize);
	if (h[n] == ':') {
		e = h + n + 1;
		n = strcspn(e, "/");
		if (n == 0 || n >= psize || strspn(e, "0123456789") != n)
			return -1;
		memcpy(port, e, n);
		port[n] = '\0';
	}
	return 0;
}

/*
 * Connects and shakes hands, both by end_ms, which also bounds every
 * later wait of the io; -1 with err.
 */
static int
http_connect(struct io *io, const struct account *a, const char *host,
    const char *port, long long end_ms, char *err, size_t errlen)
{
	const struct tlspeer p = { .pin = NULL };	/* no session cache */
	SSL_CTX		*ctx;
	enum fclass	 class;
	char		 why[256], addr[64];
	int		 fd;

	why[0] = '\0';
	if ((fd = io_dial(host, port, a->timeout * 1000LL, end_ms, addr,
	    sizeof(addr), why, sizeof(why))) == -1) {
		snprintf(err, errlen, "cannot connect: %s", why);
		return -1;
	}
	io_init(io, fd, a->timeout * 1000);
	/* One deadline for the handshake, the status, headers and body. */
	io->reply_end = end_ms;
	if ((ctx = tls_context_ca(a->oauth2_ca_file, a->tls_min_version, why,
	    sizeof(why))) == NULL ||
	    tls_start(io, ctx, host, &p, &class, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "%s:%s: TLS: %s", host, port, why);
		SSL_CTX_free(ctx);
		io_close(io);
		return -1;
	}
	SSL_CTX_free(ctx);	/* the SSL holds its own reference */
	return 0;
}

static int
body_add(struct http_resp *r, const char *p, size_t n, char *err,
    size_t errlen)
{
	if (r->len + n > HTTP_BODY_MAX) {
		snprintf(err, errlen, "response over %d octets",
		    HTTP_BODY_MAX);
		return -1;
	}
	r->body = xreallocarray(r->body, r->len + n + 1, 1);
	memcpy(r->body + r->len, p, n);
	r->len += n;
	r->body[r->len] = '\0';
	return 0;
}

/* The status line and the headers that matter; -1 with err. */
static int
read_head(struct io *io, struct http_resp *r, long long *clen, int *chunked,
    char *err, size_t errlen)
{
	const char	*e;
	char		*l;
	size_t		 len;
	int		 n;

	*clen = -1;
	*chunked = 0;
	if (io_getline(io, &l, &len) == -1) {
		snprintf(err, errlen, "reading the response: %s", io->err);
		return -1;
	}
	if (strncmp(l, "HTTP/1.", 7) != 0 || len < 12 ||
	    !isdigit((unsigned char)l[9])) {
		snprintf(err, errlen, "not an HTTP response");
		return -1;
	}
	r->status = strtonum((char[]){ l[9], l[10], l[11], '\0' }, 100, 599,
	    &e);
	if (e != NULL) {
		snprintf(err, errlen, "bad HTTP status line");
		return -1;
	}
	for (n = 0; n < HTTP_HEADERS_MAX; n++) {
		e = NULL;
		if (io_getline(io, &l, &len) == -1) {
			snprintf(err, errlen, "reading the headers: %s",
			    io->err);
			return -1;
		}
		if (len == 0)
			return 0;
		if (strncasecmp(l, "Content-Length:", 15) == 0)
			*clen = strtonum(l + 15 + strspn(l + 15, " \t"), 0,
			    HTTP_BODY_MAX, &e);
		else if (strncasecmp(l, "Transfer-Encoding:", 18) == 0)
			*chunked = strcasestr(l + 18, "chunked") != NULL;
		else if (strncasecmp(l, "Retry-After:", 12) == 0)
			r->retry_after = strtonum(l + 12 + strspn(l + 12,
			    " \t"), 0, 86400, &e);
		if (e != NULL) {
			snprintf(err, errlen, "bad header: %.60s", l);
			return -1;
		}
	}
	snprintf(err, errlen, "more than %d headers", HTTP_HEADERS_MAX);
	return -1;
}

/* The body: Content-Length octets, chunks, or up to the close. */
static int
read_body(struct io *io, struct http_resp *r, long long clen, int chunked,
    char *err, size_t errlen)
{
	const char	*e;
	char		*p;
	size_t		 n;
	long long	 left = clen;

	for (;;) {
		if (chunked) {
			if (io_getline(io, &p, &n) == -1)
				break;
			p[strcspn(p, "; \t")] = '\0';
			if ((left = strtoll(p, &p, 16)) < 0 || *p != '\0' ||
			    left > HTTP_BODY_MAX) {
				snprintf(err, errlen, "bad chunk size");
				return -1;
			}
			if (left == 0)
				return 0;
		}
		while (left != 0) {
			if (io_getpiece(io, &p, &n) == -1) {
				if (clen < 0 && !chunked)
					return 0;	/* the close ends it */
				goto short_read;
			}
			if (left > 0 && (long long)n > left) {
				io->rpos -= n - left;	/* not ours */
				n = left;
			}
			if (body_add(r, p, n, err, errlen) == -1)
				return -1;
			if (left > 0)
				left -= n;
		}
		if (!chunked)
			return 0;
		if (io_getline(io, &p, &n) == -1 || n != 0)
			break;
	}
short_read:
	e = io->err[0] != '\0' ? io->err : "short read";
	snprintf(err, errlen, "reading the response: %s", e);
	return -1;
}

/*
 * Reads one response: the status, Retry-After, and the body (bounded) in
 * r->body, which the caller frees. -1 with err when it is garbled.
 */
int
http_read(struct io *io, struct http_resp *r, char *err, size_t errlen)
{
	long long	clen;
	int		chunked;

	/* A server that drips bytes has the timeout, no more (io_fill). */
	if (io->reply_end == 0)
		io->reply_end = mono_ms() + io->timeout_ms;
	r->retry_after = -1;
	if (read_head(io, r, &clen, &chunked, err, errlen) == -1 ||
	    read_body(io, r, clen, chunked, err, errlen) == -1)
		return -1;
	return 0;
}

/*
 * POSTs the form to an https URL and reads the response, whatever its
 * status, all of it (connection, handshake, status, headers, body) within
 * the account's timeout and by end_ms (CLOCK_MONOTONIC; 0: no more).
 * Returns 0, or -1 with err when there is none (no connection, TLS, a
 * timeout, a garbled response): always a temporary failure.
 * The caller frees r->body; the form is cleared from the buffers.
 */
int
http_post(const struct account *a, const char *url, const char *form,
    long long end_ms, struct http_resp *r, int verbose, char *err,
    size_t errlen)
{
	struct io	 io;
	char		 host[256], port[8], head[1024];
	const char	*path;
	long long	 start = mono_ms(), end = start + a->timeout * 1000;
	int		 rv = -1, n;

	if (end_ms != 0 && end_ms < end)
		end = end_ms;

	memset(r, 0, sizeof(*r));
	r->retry_after = -1;
	if (url_split(url, host, sizeof(host), port, sizeof(port), &path)
	    == -1) {
		snprintf(err, errlen, "%s is not an https:// URL", url);
		return -1;
	}
	if (verbose)
		fprintf(stderr, "-> POST %s\n", url);
	if (http_connect(&io, a, host, port, end, err, errlen) == -1)
		return -1;
	n = snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: %s\r\n"
	    "User-Agent: outbox/" OUTBOX_VERSION "\r\nAccept: "
	    "application/json\r\nContent-Type: application/"
	    "x-www-form-urlencoded\r\nContent-Length: %zu\r\nConnection: "
	    "close\r\n\r\n", path, host, strlen(form));
	if (n < 0 || (size_t)n >= sizeof(head) ||
	    io_write(&io, head, n) == -1 ||
	    io_write(&io, form, strlen(form)) == -1 || io_flush(&io) == -1) {
		snprintf(err, errlen, "%s: sending: %s", host, io.err);
		goto out;
	}
	rv = http_read(&io, r, err, errlen);
	if (rv == -1 && mono_ms() >= end)
		snprintf(err, errlen, "%s: no complete response within %lld s",
		    host, (end - start + 999) / 1000);
	if (verbose && rv == 0)
		fprintf(stderr, "<- HTTP %d (%zu octets)\n", r->status, r->len);
out:
	OPENSSL_cleanse(io.wbuf, sizeof(io.wbuf));
	OPENSSL_cleanse(io.rbuf, sizeof(io.rbuf));
	if (io.ssl != NULL)
		SSL_shutdown(io.ssl);
	io_close(&io);
	if (rv == -1) {
		free(r->body);
		r->body = NULL;
	}
	return rv;
}
