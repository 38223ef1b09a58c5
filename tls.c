/*
 * OpenSSL: the client context, the handshake, and the checks that make the
 * peer who it claims to be (CA and host name, or a pinned fingerprint).
 */
#include <arpa/inet.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "outbox.h"

static ssize_t	tls_read(struct io *, void *, size_t);
static ssize_t	tls_write(struct io *, const void *, size_t);
static int	tls_retry(struct io *, int, const char *);
static int	tls_pin_ok(SSL *, const char *, char *, size_t);
static void	tls_error(char *, size_t, const char *);

/* Formats the first OpenSSL error queue entry after what. */
static void
tls_error(char *err, size_t errlen, const char *what)
{
	unsigned long	e = ERR_get_error();
	char		buf[256];

	if (e != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		snprintf(err, errlen, "%s: %s", what, buf);
	} else
		snprintf(err, errlen, "%s", what);
	ERR_clear_error();
}

/* Builds the client context for an account; NULL with err on failure. */
SSL_CTX *
tls_context(const struct account *a, char *err, size_t errlen)
{
	SSL_CTX	*ctx;

	/*
	 * outbox exits soon after: OpenSSL's atexit cleanup would only free
	 * what the kernel frees anyway (1.4M instructions of 24M per run).
	 * The system's openssl.cnf is still read: it is the admin's policy.
	 */
	OPENSSL_init_ssl(OPENSSL_INIT_NO_ATEXIT, NULL);
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		tls_error(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, a->tls_min_version);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (a->tls_fingerprint != NULL) {
		/* The pin is the identity: the chain is not consulted. */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (a->tls_ca_file != NULL) {
			if (SSL_CTX_load_verify_locations(ctx, a->tls_ca_file,
			    NULL) != 1) {
				tls_error(err, errlen, a->tls_ca_file);
				goto fail;
			}
		} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
			tls_error(err, errlen, "system CA store");
			goto fail;
		}
	}
	if (a->tls_cert_file != NULL) {
		if (SSL_CTX_use_certificate_chain_file(ctx, a->tls_cert_file)
		    != 1) {
			tls_error(err, errlen, a->tls_cert_file);
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, a->tls_key_file != NULL ?
		    a->tls_key_file : a->tls_cert_file, SSL_FILETYPE_PEM) != 1) {
			tls_error(err, errlen, "tls_key_file");
			goto fail;
		}
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Handles SSL_ERROR_WANT_*; returns 1 to retry, -1 on failure. */
static int
tls_retry(struct io *io, int ret, const char *what)
{
	struct pollfd	pfd = { .fd = io->fd };
	int		e = SSL_get_error(io->ssl, ret), n;

	if (e == SSL_ERROR_WANT_READ)
		pfd.events = POLLIN;
	else if (e == SSL_ERROR_WANT_WRITE)
		pfd.events = POLLOUT;
	else {
		if (e == SSL_ERROR_ZERO_RETURN ||
		    (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 &&
		    errno == 0))
			snprintf(io->err, sizeof(io->err),
			    "connection closed during %s", what);
		else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
			snprintf(io->err, sizeof(io->err), "%s: %s", what,
			    strerror(errno));
		else
			tls_error(io->err, sizeof(io->err), what);
		return -1;
	}
	do {
		n = poll(&pfd, 1, io_wait_ms(io));
	} while (n == -1 && errno == EINTR && !stopping());
	if (n <= 0) {
		io_timed_out(io, what);
		return -1;
	}
	return 1;
}

static ssize_t
tls_read(struct io *io, void *buf, size_t len)
{
	int	n;

	for (;;) {
		errno = 0;
		n = SSL_read(io->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
		if (n > 0)
			return n;
		if (SSL_get_error(io->ssl, n) == SSL_ERROR_ZERO_RETURN)
			return 0;
		if (tls_retry(io, n, "TLS read") == -1)
			return -1;
	}
}

static ssize_t
tls_write(struct io *io, const void *buf, size_t len)
{
	int	n;

	for (;;) {
		errno = 0;
		n = SSL_write(io->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
		if (n > 0)
			return n;
		if (tls_retry(io, n, "TLS write") == -1)
			return -1;
	}
}

/* Compares the peer certificate's SHA-256 with the pinned hex digest. */
static int
tls_pin_ok(SSL *ssl, const char *pin, char *err, size_t errlen)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0, i;
	char		 hex[2 * EVP_MAX_MD_SIZE + 1];
	X509		*cert;

	if ((cert = SSL_get1_peer_certificate(ssl)) == NULL) {
		snprintf(err, errlen, "server sent no certificate");
		return 0;
	}
	if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1)
		mdlen = 0;
	X509_free(cert);
	for (i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02X", md[i]);
	hex[2 * mdlen] = '\0';
	if (mdlen == 32 && strcasecmp(hex, pin) == 0)
		return 1;
	snprintf(err, errlen, "certificate fingerprint %s does not match "
	    "tls_fingerprint", hex);
	return 0;
}

/*
 * Runs the client handshake on io's socket and switches io to TLS.
 * host is the configured name (or IP literal) the certificate must match.
 */
int
tls_start(struct io *io, SSL_CTX *ctx, const struct account *a,
    const char *host, char *err, size_t errlen)
{
	unsigned char	 ip[16];
	char		 sni[256];
	int		 isip, n;
	long		 vr;

	if ((io->ssl = SSL_new(ctx)) == NULL ||
	    SSL_set_fd(io->ssl, io->fd) != 1) {
		tls_error(err, errlen, "SSL_new");
		return -1;
	}
	isip = inet_pton(AF_INET, host, ip) == 1 ||
	    inet_pton(AF_INET6, host, ip) == 1;
	/* RFC 6066 3: SNI carries host names only, never IP literals. */
	strlcpy(sni, host, sizeof(sni));	/* the macro casts away const */
	if (!isip && SSL_set_tlsext_host_name(io->ssl, sni) != 1) {
		tls_error(err, errlen, "SNI");
		return -1;
	}
	if (a->tls_fingerprint == NULL) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(io->ssl);

		X509_VERIFY_PARAM_set_hostflags(vp,
		    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		/* A failed set would silently disable the name check. */
		if ((isip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host) :
		    X509_VERIFY_PARAM_set1_host(vp, host, 0)) != 1) {
			tls_error(err, errlen, "cannot check the host name");
			return -1;
		}
	}
	for (;;) {
		ERR_clear_error();
		errno = 0;
		io_quickack(io->fd);
		if ((n = SSL_connect(io->ssl)) == 1)
			break;
		vr = SSL_get_verify_result(io->ssl);
		if (vr != X509_V_OK) {
			snprintf(err, errlen, "certificate verification "
			    "failed: %s", X509_verify_cert_error_string(vr));
			return -1;
		}
		if (tls_retry(io, n, "TLS handshake") == -1) {
			snprintf(err, errlen, "%s", io->err);
			return -1;
		}
	}
	if (a->tls_fingerprint != NULL) {
		if (!tls_pin_ok(io->ssl, a->tls_fingerprint, err, errlen))
			return -1;
	} else if ((vr = SSL_get_verify_result(io->ssl)) != X509_V_OK) {
		snprintf(err, errlen, "certificate verification failed: %s",
		    X509_verify_cert_error_string(vr));
		return -1;
	}
	io->read = tls_read;
	io->write = tls_write;
	return 0;
}
