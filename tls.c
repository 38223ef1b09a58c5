/* SPDX-License-Identifier: ISC */
/*
 * OpenSSL: the client context, the handshake, and the checks that make the
 * peer who it claims to be (CA and host name, or a pinned fingerprint),
 * and the session cache that lets the next connection skip the full
 * handshake: one file per account and trust key beside the queue, holding
 * the last session the server issued over a connection we verified.
 */
#include <sys/stat.h>

#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "outbox.h"
#include "io.h"

/*
 * TLS 1.2 suites: forward secrecy and AEAD only (no kRSA, no CBC). TLS 1.3
 * keeps OpenSSL's defaults, which are all of that.
 */
#define TLS12_CIPHERS	"ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:" \
			"DHE+CHACHA20:!aNULL:!eNULL:!kRSA"

/*
 * The session file: magic, the digest of its key, when the chain was
 * verified (8 octets, big-endian seconds), then the DER session.
 */
#define CACHE_MAGIC	"outbox-tls-session-1\n"
#define CACHE_MAGICLEN	(sizeof(CACHE_MAGIC) - 1)
#define CACHE_KEYLEN	32		/* SHA-256 */
#define CACHE_HDR	(CACHE_MAGICLEN + CACHE_KEYLEN + 8)
/* Hex digits of the key in the file name: short enough for queue litter. */
#define CACHE_NAMELEN	32
#define CACHE_MAX	(64 * 1024)	/* a session and its peer certificate */
/*
 * How long a verification lasts through resumptions (each of which brings
 * a new ticket): Postfix's smtp_tls_session_cache_timeout. A CA removed
 * from the system store stops counting within the hour.
 */
#define CACHE_AGE_MAX	3600
#define CACHE_PER_USER	16		/* session files one user may keep */

#define CA_FILE_MAX	(16 * 1024 * 1024)	/* a big system bundle is 0.2 MiB */

/*
 * tls_ca_file, read at setup (with the rights of the account's owner) and
 * parsed only when a full handshake verifies a chain: a resumed session
 * never pays for OpenSSL's certificate decoding. In the SSL_CTX's ex_data.
 */
struct tlsca {
	char		*pem;
	size_t		 len;
	unsigned char	 md[32];	/* its SHA-256, part of the cache key */
	int		 parsed;
};

/* One connection's session cache, in its SSL's ex_data. */
struct tlscache {
	const char	*dir;
	unsigned char	 key[CACHE_KEYLEN];
	char		 hex[2 * CACHE_KEYLEN + 1];	/* the key */
	char		 name[CACHE_NAMELEN + 8];	/* tls- and its start */
	int		 offered;	/* a cached session went out */
	time_t		 since;		/* its chain was verified then */
	int		 verified;	/* the peer passed every check */
	int		 pending;	/* a session came before it did */
};

static ssize_t	tls_read(struct io *, void *, size_t);
static ssize_t	tls_write(struct io *, const void *, size_t);
static int	tls_retry(struct io *, int, const char *);
static int	tls_pin_ok(X509 *, const char *, char *, size_t);
static int	tls_peer_ok(X509 *, const char *, const char *, char *,
		    size_t);
static int	tls_verified(struct io *, const struct tlscache *,
		    const char *, const char *, char *, size_t);
static void	tls_error(char *, size_t, const char *);
static SSL_CTX	*context_new(long long, const char *, const char *, char *,
		    size_t);
static int	tls_default_store(SSL_CTX *);
static int	ca_index(void);
static void	ca_free(void *, void *, CRYPTO_EX_DATA *, int, long, void *);
static int	ca_read(SSL_CTX *, const char *, char *, size_t);
static void	ca_store(X509_STORE *, BIO *);
static int	ca_verify(X509_STORE_CTX *, void *);
static int	cache_index(void);
static void	cache_free(void *, void *, CRYPTO_EX_DATA *, int, long,
		    void *);
static struct tlscache *cache_new(SSL *, SSL_CTX *, const struct tlspeer *,
		    const char *);
static int	cache_key(const struct account *, const char *,
		    const struct tlsca *, unsigned char *);
static SSL_SESSION *cache_load(const struct tlscache *,
		    const struct account *, const char *, time_t *);
static int	cache_trusted(const struct stat *);
static SSL_SESSION *cache_parse(const struct tlscache *,
		    const unsigned char *, size_t, time_t *);
static int	cache_usable(SSL_SESSION *, time_t, const struct account *,
		    const char *);
static void	cache_save(const struct tlscache *, SSL_SESSION *);
static void	cache_evict(int, const char *);
static int	cache_issued(SSL *, SSL_SESSION *);

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

/*
 * The context both clients share: min_version and up, the suites above,
 * and the peer verified by its chain (ca_file, or the system store) unless
 * a pin replaces that. NULL with err on failure.
 */
static SSL_CTX *
context_new(long long min_version, const char *ca_file, const char *pin,
    char *err, size_t errlen)
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
	SSL_CTX_set_min_proto_version(ctx, min_version);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
		tls_error(err, errlen, "SSL_CTX_set_cipher_list");
		goto fail;
	}
	if (pin != NULL) {
		/* The pin is the identity: the chain is not consulted. */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (ca_file != NULL) {
			if (ca_read(ctx, ca_file, err, errlen) == -1)
				goto fail;
		} else if (tls_default_store(ctx) == -1) {
			tls_error(err, errlen, "system CA store");
			goto fail;
		}
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Builds the client context for an account; NULL with err on failure. */
SSL_CTX *
tls_context(const struct account *a, char *err, size_t errlen)
{
	SSL_CTX	*ctx;

	if ((ctx = context_new(a->tls_min_version, a->tls_ca_file,
	    a->tls_fingerprint, err, errlen)) == NULL)
		return NULL;
	if (a->tls_session_cache) {
		/* Sessions go to our callback, never to OpenSSL's cache. */
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
		    SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(ctx, cache_issued);
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

/*
 * A context that verifies the peer by its chain (ca_file, or the system
 * store) and name only: no pin, no client certificate, no session cache
 * (http.c's token endpoint). NULL with err on failure.
 */
SSL_CTX *
tls_context_ca(const char *ca_file, long long min_version, char *err,
    size_t errlen)
{
	return context_new(min_version, ca_file, NULL, err, errlen);
}

/*
 * The system store as a hashed directory: a lookup reads only the issuer's
 * certificate, where SSL_CTX_set_default_verify_paths would also parse the
 * whole bundle file. SSL_CERT_DIR and SSL_CERT_FILE are honoured as OpenSSL
 * does (priv_init removes them in a setgid install).
 */
static int
tls_default_store(SSL_CTX *ctx)
{
	const char	*dir = getenv(X509_get_default_cert_dir_env());
	const char	*file = getenv(X509_get_default_cert_file_env());

	/* As OpenSSL's default paths: a missing file is no store, no error. */
	if (file != NULL && SSL_CTX_load_verify_file(ctx, file) != 1)
		ERR_clear_error();
	if (dir == NULL)
		dir = X509_get_default_cert_dir();
	return SSL_CTX_load_verify_dir(ctx, dir) == 1 ? 0 : -1;
}

/* The ex_data slot of struct tlsca: taken once, then only read. */
static int
ca_index(void)
{
	static int	idx = -1;

	if (idx == -1)
		idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ca_free);
	return idx;
}

static void
ca_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	struct tlsca	*ca = ptr;

	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (ca != NULL)
		free(ca->pem);
	free(ca);
}

/* Reads the CA file into the context; its certificates wait in ca_verify. */
static int
ca_read(SSL_CTX *ctx, const char *path, char *err, size_t errlen)
{
	struct tlsca	*ca;
	struct stat	 st;
	ssize_t		 n = -1;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "tls_ca_file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	ca = xcalloc(1, sizeof(*ca));
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    st.st_size <= CA_FILE_MAX) {
		ca->pem = xcalloc(1, st.st_size);
		n = read(fd, ca->pem, st.st_size);
	}
	close(fd);
	if (n <= 0 || n != st.st_size || EVP_Digest(ca->pem, n, ca->md, NULL,
	    EVP_sha256(), NULL) != 1 || ca_index() == -1 ||
	    SSL_CTX_set_ex_data(ctx, ca_index(), ca) != 1) {
		snprintf(err, errlen, "tls_ca_file %s: not a regular file of "
		    "PEM certificates (at most %d MiB)", path,
		    CA_FILE_MAX >> 20);
		ca_free(NULL, ca, NULL, 0, 0, NULL);
		return -1;
	}
	ca->len = n;
	SSL_CTX_set_cert_verify_callback(ctx, ca_verify, NULL);
	return 0;
}

/* Adds the certificates and CRLs of a PEM stream to a store. */
static void
ca_store(X509_STORE *store, BIO *bio)
{
	STACK_OF(X509_INFO)	*inf;
	X509_INFO		*xi;
	int			 i;

	if ((inf = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL)) == NULL)
		return;
	for (i = 0; i < sk_X509_INFO_num(inf); i++) {
		xi = sk_X509_INFO_value(inf, i);
		if (xi->x509 != NULL)
			X509_STORE_add_cert(store, xi->x509);
		if (xi->crl != NULL)
			X509_STORE_add_crl(store, xi->crl);
	}
	sk_X509_INFO_pop_free(inf, X509_INFO_free);
}

/*
 * OpenSSL's chain verification, once the CA file's certificates are in the
 * store (on the first full handshake of this context).
 */
static int
ca_verify(X509_STORE_CTX *xs, void *arg)
{
	SSL		*ssl = X509_STORE_CTX_get_ex_data(xs,
			    SSL_get_ex_data_X509_STORE_CTX_idx());
	SSL_CTX		*ctx = SSL_get_SSL_CTX(ssl);
	struct tlsca	*ca = SSL_CTX_get_ex_data(ctx, ca_index());
	BIO		*bio;

	(void)arg;
	if (ca != NULL && !ca->parsed) {
		ca->parsed = 1;
		/* What SSL_CTX_load_verify_locations does with a file. */
		if ((bio = BIO_new_mem_buf(ca->pem, (int)ca->len)) != NULL) {
			ca_store(SSL_CTX_get_cert_store(ctx), bio);
			BIO_free(bio);
		}
		ERR_clear_error();
	}
	return X509_verify_cert(xs);
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

/* Compares a certificate's SHA-256 with the pinned hex digest. */
static int
tls_pin_ok(X509 *cert, const char *pin, char *err, size_t errlen)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0;
	char		 hex[2 * EVP_MAX_MD_SIZE + 1] = "";

	/* Upper-case digits without colons, as config.c stores the pin. */
	if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1 ||
	    OPENSSL_buf2hexstr_ex(hex, sizeof(hex), NULL, md, mdlen,
	    '\0') != 1)
		mdlen = 0;
	if (mdlen == 32 && strcasecmp(hex, pin) == 0)
		return 1;
	snprintf(err, errlen, "certificate fingerprint %s does not match "
	    "tls_fingerprint", hex);
	return 0;
}

/*
 * The checks a certificate must pass for a's host without a handshake's
 * chain verification: the pin, or the host name (or IP address).
 */
static int
tls_peer_ok(X509 *cert, const char *pin, const char *host, char *err,
    size_t errlen)
{
	unsigned char	 ip[16];
	int		 isip;

	if (cert == NULL) {
		snprintf(err, errlen, "server sent no certificate");
		return 0;
	}
	if (pin != NULL)
		return tls_pin_ok(cert, pin, err, errlen);
	isip = inet_pton(AF_INET, host, ip) == 1 ||
	    inet_pton(AF_INET6, host, ip) == 1;
	if ((isip ? X509_check_ip_asc(cert, host, 0) : X509_check_host(cert,
	    host, strlen(host), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
	    NULL)) == 1)
		return 1;
	snprintf(err, errlen, "certificate does not match %s", host);
	return 0;
}

/*
 * After the handshake: a full one was verified by OpenSSL (chain and name)
 * or is checked against the pin here. A resumed one was verified when it
 * was issued, for this same key (cache_load checked it); the pin or name
 * is checked again on the certificate it carries.
 */
static int
tls_verified(struct io *io, const struct tlscache *c, const char *pin,
    const char *host, char *err, size_t errlen)
{
	X509	*cert = SSL_get0_peer_certificate(io->ssl);
	long	 vr;

	if (SSL_session_reused(io->ssl)) {
		if (c == NULL || !c->offered) {
			snprintf(err, errlen, "the server resumed a session "
			    "we did not offer");
			return 0;
		}
		if (!tls_peer_ok(cert, pin, host, err, errlen))
			return 0;
	} else if (pin != NULL)
		return tls_peer_ok(cert, pin, host, err, errlen);
	if (pin == NULL &&
	    (vr = SSL_get_verify_result(io->ssl)) != X509_V_OK) {
		snprintf(err, errlen, "certificate verification failed: %s",
		    X509_verify_cert_error_string(vr));
		return 0;
	}
	return 1;
}

/*
 * Runs the client handshake with ctx on io's socket and switches io to
 * TLS. host is the configured name (or IP literal) the certificate must
 * match; p says how else the peer is checked. With p's cache, a cached
 * session is offered and the ones the server issues are kept. On failure,
 * *class says FC_CONFIG when an administrator must act (a certificate that
 * fails verification, a server that does not speak TLS at once), else
 * FC_TEMP.
 */
int
tls_start(struct io *io, SSL_CTX *ctx, const char *host,
    const struct tlspeer *p, enum fclass *class, char *err, size_t errlen)
{
	struct tlscache	*c;
	unsigned char	 ip[16];
	char		 sni[256];
	unsigned long	 e;
	int		 isip, n;
	long		 vr;

	*class = FC_TEMP;
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
	if (p->pin == NULL) {
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
	c = cache_new(io->ssl, ctx, p, host);
	for (;;) {
		ERR_clear_error();
		errno = 0;
		io_quickack(io->fd);
		if ((n = SSL_connect(io->ssl)) == 1)
			break;
		/* With a pin the chain's result is not ours to judge. */
		vr = SSL_get_verify_result(io->ssl);
		if (p->pin == NULL && vr != X509_V_OK) {
			snprintf(err, errlen, "certificate verification "
			    "failed: %s", X509_verify_cert_error_string(vr));
			*class = FC_CONFIG;
			return -1;
		}
		e = ERR_peek_error();
		if (ERR_GET_LIB(e) == ERR_LIB_SSL && (ERR_GET_REASON(e) ==
		    SSL_R_WRONG_VERSION_NUMBER || ERR_GET_REASON(e) ==
		    SSL_R_PACKET_LENGTH_TOO_LONG) && p->implicit) {
			/* "220 ..." read as a TLS record: a plaintext server. */
			snprintf(err, errlen, "the server does not speak TLS "
			    "from the first octet (port %lld); set tls "
			    "starttls, or port 465", p->port);
			*class = FC_CONFIG;
			return -1;
		}
		if (tls_retry(io, n, "TLS handshake") == -1) {
			/* The alert a server sends when nothing is shared. */
			snprintf(err, errlen, "%s%s", io->err, ERR_GET_REASON(e)
			    == SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE ? " (no "
			    "cipher or version in common: outbox needs TLS 1.3, "
			    "or TLS 1.2 with ECDHE or DHE and AES-GCM or "
			    "ChaCha20; ask the server's administrator)" : "");
			return -1;
		}
	}
	if (!tls_verified(io, c, p->pin, host, err, errlen)) {
		*class = FC_CONFIG;	/* name, pin or chain */
		return -1;
	}
	if (c != NULL) {
		c->verified = 1;
		/* A resumed session keeps the time of its verification. */
		if (!SSL_session_reused(io->ssl))
			c->since = time(NULL);
		/* TLS 1.2 issues the session inside the handshake. */
		if (c->pending)
			cache_save(c, SSL_get0_session(io->ssl));
	}
	if (p->verbose)
		fprintf(stderr, "** %s %s, %s\n", SSL_get_version(io->ssl),
		    SSL_get_cipher_name(io->ssl), SSL_session_reused(io->ssl) ?
		    "TLS session resumed" : "full TLS handshake");
	io->read = tls_read;
	io->write = tls_write;
	return 0;
}

/* The ex_data slot of struct tlscache: taken once, then only read. */
static int
cache_index(void)
{
	static int	idx = -1;

	if (idx == -1)
		idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, cache_free);
	return idx;
}

static void
cache_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	free(ptr);
}

/*
 * Attaches the cache to ssl and offers the cached session; NULL (no cache)
 * without p's account and directory, or with tls_session_cache off.
 */
static struct tlscache *
cache_new(SSL *ssl, SSL_CTX *ctx, const struct tlspeer *p, const char *host)
{
	struct tlscache	*c;
	SSL_SESSION	*sess;
	size_t		 i;

	if (p->cache == NULL || p->cache_dir == NULL ||
	    !p->cache->tls_session_cache || cache_index() == -1)
		return NULL;
	c = xcalloc(1, sizeof(*c));
	c->dir = p->cache_dir;
	if (cache_key(p->cache, host, SSL_CTX_get_ex_data(ctx, ca_index()),
	    c->key) == -1 ||
	    SSL_set_ex_data(ssl, cache_index(), c) != 1) {
		free(c);
		return NULL;
	}
	for (i = 0; i < CACHE_KEYLEN; i++)
		snprintf(c->hex + 2 * i, 3, "%02x", c->key[i]);
	snprintf(c->name, sizeof(c->name), "tls-%.*s", CACHE_NAMELEN, c->hex);
	if ((sess = cache_load(c, p->cache, host, &c->since)) != NULL) {
		c->offered = SSL_set_session(ssl, sess) == 1;
		SSL_SESSION_free(sess);
	}
	ERR_clear_error();
	if (p->verbose)
		fprintf(stderr, "** TLS session cache %s/%s (key %s): %s\n",
		    c->dir, c->name, c->hex, c->offered ? "offered" :
		    "none to offer");
	return c;
}

/*
 * The cache key's SHA-256: whose account (its file, and the user for a
 * user's account), which server, and everything that decides whom we
 * trust there, the CA file's contents included. A session verified under
 * one key is never used for another.
 */
static int
cache_key(const struct account *a, const char *host, const struct tlsca *ca,
    unsigned char *key)
{
	char		 num[3][32], camd[2 * sizeof(ca->md) + 1] = "";
	const char	*f[] = { "1", a->name, a->file, num[0], host, num[1],
	    num[2], a->tls_ca_file, camd, a->tls_fingerprint, a->tls_cert_file,
	    a->tls_key_file };
	EVP_MD_CTX	*md;
	unsigned int	 len = 0;
	size_t		 i;
	int		 ok;

	snprintf(num[0], sizeof(num[0]), "%ld", a->system ? -1L :
	    (long)getuid());
	snprintf(num[1], sizeof(num[1]), "%lld", a->port);
	snprintf(num[2], sizeof(num[2]), "%lld", a->tls_min_version);
	for (i = 0; ca != NULL && i < sizeof(ca->md); i++)
		snprintf(camd + 2 * i, 3, "%02x", ca->md[i]);
	if ((md = EVP_MD_CTX_new()) == NULL)
		return -1;
	ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
	/* Each field tagged and NUL-ended: no two keys hash the same text. */
	for (i = 0; ok && i < sizeof(f) / sizeof(f[0]); i++)
		ok = f[i] == NULL ? EVP_DigestUpdate(md, "", 1) == 1 :
		    EVP_DigestUpdate(md, "\1", 1) == 1 &&
		    EVP_DigestUpdate(md, f[i], strlen(f[i]) + 1) == 1;
	ok = ok && EVP_DigestFinal_ex(md, key, &len) == 1 &&
	    len == CACHE_KEYLEN;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

/*
 * A cache file we may read: a regular file with one link, of a size a
 * session can have, ours alone (or the group's, nothing for others, in a
 * setgid install, whose spool only the group can enter; also for root's
 * run under NoNewPrivileges, which did not get the group).
 */
static int
cache_trusted(const struct stat *st)
{
	if (!S_ISREG(st->st_mode) || st->st_nlink != 1 ||
	    st->st_size <= (off_t)CACHE_HDR || st->st_size > CACHE_MAX)
		return 0;
	if (priv_install_group() != (gid_t)-1)
		return st->st_gid == priv_install_group() &&
		    (st->st_mode & 007) == 0;
	return st->st_uid == getuid() && (st->st_mode & 077) == 0;
}

/*
 * Reads c's file; the session in it, or NULL when there is none that may
 * be offered for host. The file is hostile input: bounded, its key
 * checked, the DER parsed whole, the session checked for a's settings.
 */
static SSL_SESSION *
cache_load(const struct tlscache *c, const struct account *a,
    const char *host, time_t *since)
{
	unsigned char	*buf = NULL;
	SSL_SESSION	*sess = NULL;
	struct stat	 st;
	ssize_t		 n = -1;
	int		 dfd, fd = -1;

	priv_raise();
	if ((dfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		fd = openat(dfd, c->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
		    O_CLOEXEC);
		close(dfd);
	}
	priv_drop();
	if (fd == -1)
		return NULL;
	if (fstat(fd, &st) == 0 && cache_trusted(&st)) {
		buf = xcalloc(1, st.st_size);
		n = read(fd, buf, st.st_size);
	}
	close(fd);
	if (n == st.st_size &&
	    (sess = cache_parse(c, buf, (size_t)n, since)) != NULL &&
	    !cache_usable(sess, *since, a, host)) {
		SSL_SESSION_free(sess);
		sess = NULL;
	}
	if (buf != NULL)
		freezero(buf, st.st_size);
	return sess;
}

/* The session in a file's bytes, if the magic and the key are c's. */
static SSL_SESSION *
cache_parse(const struct tlscache *c, const unsigned char *buf, size_t len,
    time_t *since)
{
	const unsigned char	*p;
	SSL_SESSION		*sess;
	uint64_t		 t = 0;
	size_t			 i;

	if (buf == NULL || len <= CACHE_HDR ||
	    memcmp(buf, CACHE_MAGIC, CACHE_MAGICLEN) != 0 ||
	    memcmp(buf + CACHE_MAGICLEN, c->key, CACHE_KEYLEN) != 0)
		return NULL;
	for (i = CACHE_MAGICLEN + CACHE_KEYLEN; i < CACHE_HDR; i++)
		t = t << 8 | buf[i];
	if (t > INT64_MAX)
		return NULL;
	*since = (time_t)t;
	p = buf + CACHE_HDR;
	if ((sess = d2i_SSL_SESSION(NULL, &p, (long)(len - CACHE_HDR))) ==
	    NULL)
		return NULL;
	if (p != buf + len) {
		SSL_SESSION_free(sess);
		return NULL;
	}
	return sess;
}

/*
 * Whether a parsed session is one to offer: live, resumable, verified
 * within the hour, for host.
 */
static int
cache_usable(SSL_SESSION *sess, time_t since, const struct account *a,
    const char *host)
{
	char	 err[256];
	time_t	 now = time(NULL), t;

#if OPENSSL_VERSION_NUMBER >= 0x30300000L
	t = SSL_SESSION_get_time_ex(sess);	/* 3.4 deprecates the long one */
#else
	t = SSL_SESSION_get_time(sess);
#endif

	if (!SSL_SESSION_is_resumable(sess) ||
	    SSL_SESSION_get_protocol_version(sess) < a->tls_min_version ||
	    t > now + 60 || now - t >= SSL_SESSION_get_timeout(sess) ||
	    since > now + 60 || now - since >= CACHE_AGE_MAX)
		return 0;
	return tls_peer_ok(SSL_SESSION_get0_peer(sess), a->tls_fingerprint,
	    host, err, sizeof(err));
}

/*
 * Writes sess as c's file: a private temporary (removed as litter by the
 * queue if we die), renamed over the old file, so readers see one whole
 * file and the last writer wins. rename replaces a symlink, never follows
 * it. The file holds the resumption secret; a failure only loses the cache.
 */
static void
cache_save(const struct tlscache *c, SSL_SESSION *sess)
{
	unsigned char	*buf, *p;
	char		 tmp[sizeof(c->name) + 32];
	mode_t		 mode = priv_install_group() != (gid_t)-1 ? 0660 :
			    0600;
	size_t		 len, i;
	int		 dfd, fd, n, ok;

	if (sess == NULL || (n = i2d_SSL_SESSION(sess, NULL)) <= 0 ||
	    n > CACHE_MAX - (int)CACHE_HDR)
		return;
	len = CACHE_HDR + n;
	buf = xcalloc(1, len);
	memcpy(buf, CACHE_MAGIC, CACHE_MAGICLEN);
	memcpy(buf + CACHE_MAGICLEN, c->key, CACHE_KEYLEN);
	for (i = 0; i < 8; i++)
		buf[CACHE_HDR - 1 - i] = (uint64_t)c->since >> (8 * i) & 0xff;
	p = buf + CACHE_HDR;
	snprintf(tmp, sizeof(tmp), "tmp.%s.%ld", c->name, (long)getpid());
	priv_raise();
	if (i2d_SSL_SESSION(sess, &p) == n &&
	    (dfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		unlinkat(dfd, tmp, 0);	/* a dead process of the same pid */
		cache_evict(dfd, c->name);
		if ((fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, mode)) != -1) {
			ok = fchmod(fd, mode) == 0 &&
			    write(fd, buf, len) == (ssize_t)len;
			ok = close(fd) == 0 && ok;
			if (!ok || renameat(dfd, tmp, dfd, c->name) == -1)
				unlinkat(dfd, tmp, 0);
		}
		close(dfd);
	}
	priv_drop();
	freezero(buf, len);
}

/*
 * Keeps this user's session files in the directory under CACHE_PER_USER,
 * keep (the one about to be replaced) aside: the oldest go. In the shared
 * spool each user's accounts could otherwise leave a file per account,
 * host and port (up to CACHE_MAX each) for good; the queue sweeps what is
 * older than an hour anyway (q_litter).
 */
static void
cache_evict(int dfd, const char *keep)
{
	struct stat	 st;
	struct dirent	*e;
	DIR		*d;
	char		 old[NAME_MAX + 1];
	struct timespec	 when = { 0, 0 };
	int		 fd, n, pass;

	for (pass = 0; pass < CACHE_PER_USER; pass++) {
		if ((fd = dup(dfd)) == -1 || (d = fdopendir(fd)) == NULL) {
			if (fd != -1)
				close(fd);
			return;
		}
		n = 0;
		old[0] = '\0';
		while ((e = readdir(d)) != NULL) {
			if (strncmp(e->d_name, "tls-", 4) != 0 ||
			    strcmp(e->d_name, keep) == 0 ||
			    fstatat(dfd, e->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) == -1 ||
			    !S_ISREG(st.st_mode) || st.st_uid != getuid())
				continue;
			n++;
			if (old[0] == '\0' ||
			    st.st_mtim.tv_sec < when.tv_sec ||
			    (st.st_mtim.tv_sec == when.tv_sec &&
			    st.st_mtim.tv_nsec < when.tv_nsec)) {
				strlcpy(old, e->d_name, sizeof(old));
				when = st.st_mtim;
			}
		}
		closedir(d);
		/* Room for the one about to be written. */
		if (n < CACHE_PER_USER || old[0] == '\0')
			return;
		unlinkat(dfd, old, 0);
	}
}

/*
 * OpenSSL's new-session callback: a session (a TLS 1.3 ticket after the
 * handshake, a TLS 1.2 one inside it) is kept once the peer is verified.
 * Returns 0: OpenSSL keeps its reference.
 */
static int
cache_issued(SSL *ssl, SSL_SESSION *sess)
{
	struct tlscache	*c = SSL_get_ex_data(ssl, cache_index());

	if (c == NULL)
		return 0;
	if (!c->verified)
		c->pending = 1;
	else if (SSL_SESSION_is_resumable(sess))
		cache_save(c, sess);
	return 0;
}
