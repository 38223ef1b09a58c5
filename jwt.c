/* SPDX-License-Identifier: ISC */
/*
 * JSON Web Tokens signed RS256 (RFC 7515, 7519) for OAuth2 assertions
 * (RFC 7523): the keys they are signed with, a PEM key (with its
 * certificate) or a Google service account's JSON key. jansson writes
 * the JSON; OpenSSL signs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "outbox.h"
#include "oauth2.h"

#define JWT_LIFE	3600	/* Google's limit for an assertion (seconds) */

static char	*b64url(const void *, size_t);
static char	*json_b64url(json_t *);
static char	*sign(EVP_PKEY *, const char *);

/* base64url without padding (RFC 7515 2). */
static char *
b64url(const void *buf, size_t len)
{
	char	*out = xcalloc(1, 4 * ((len + 2) / 3) + 1), *p;

	EVP_EncodeBlock((unsigned char *)out, buf, len);
	for (p = out; *p != '\0'; p++)
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
	out[strcspn(out, "=")] = '\0';
	return out;
}

/* A JSON object, compact, in base64url; the object is released. */
static char *
json_b64url(json_t *o)
{
	char	*text = json_dumps(o, JSON_COMPACT), *out;

	json_decref(o);
	if (text == NULL)
		return NULL;
	out = b64url(text, strlen(text));
	free(text);
	return out;
}

/*
 * Reads a key: PEM (a private key, then maybe its certificate) or a Google
 * service account's JSON key (private_key, client_email). -1 with err.
 */
int
jwt_key_parse(const char *text, struct jwt_key *k, char *err, size_t errlen)
{
	const char	*pem = text, *email;
	json_t		*o = NULL;
	BIO		*bio;

	memset(k, 0, sizeof(*k));
	if (text[strspn(text, " \t\r\n")] == '{') {
		o = json_loads(text, 0, NULL);
		pem = json_string_value(json_object_get(o, "private_key"));
		email = json_string_value(json_object_get(o, "client_email"));
		if (email != NULL && strlen(email) < 256 &&
		    strpbrk(email, "\r\n") == NULL)
			k->iss = xstrdup(email);
	}
	if (pem != NULL && (bio = BIO_new_mem_buf(pem, -1)) != NULL) {
		k->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
		BIO_free(bio);
	}
	/* The certificate, before or after the key. */
	if (k->key != NULL && o == NULL &&
	    (bio = BIO_new_mem_buf(pem, -1)) != NULL) {
		k->cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		BIO_free(bio);
	}
	json_decref(o);
	if (k->key == NULL || EVP_PKEY_get_base_id(k->key) != EVP_PKEY_RSA) {
		snprintf(err, errlen, "no RSA private key (a PEM key, or a "
		    "service account's JSON key)");
		jwt_key_free(k);
		return -1;
	}
	return 0;
}

void
jwt_key_free(struct jwt_key *k)
{
	EVP_PKEY_free(k->key);
	X509_free(k->cert);
	free(k->iss);
	memset(k, 0, sizeof(*k));
}

/* "in.signature": RS256 over in. NULL when the key cannot sign. */
static char *
sign(EVP_PKEY *key, const char *in)
{
	EVP_MD_CTX	*mc;
	unsigned char	*sig = NULL;
	size_t		 siglen = 0, len;
	char		*p, *out = NULL;

	if ((mc = EVP_MD_CTX_new()) != NULL &&
	    EVP_DigestSignInit(mc, NULL, EVP_sha256(), NULL, key) == 1 &&
	    EVP_DigestSign(mc, NULL, &siglen, (const unsigned char *)in,
	    strlen(in)) == 1) {
		sig = xcalloc(1, siglen);
		if (EVP_DigestSign(mc, sig, &siglen, (const unsigned char *)in,
		    strlen(in)) == 1) {
			p = b64url(sig, siglen);
			len = strlen(in) + strlen(p) + 2;
			out = xcalloc(1, len);
			snprintf(out, len, "%s.%s", in, p);
			free(p);
		}
	}
	EVP_MD_CTX_free(mc);
	free(sig);
	return out;
}

/*
 * A signed assertion for aud: the jwt_bearer grant's (sub is the mailbox,
 * RFC 7523 2.1; Google wants the scope in it) or a client assertion (sub
 * is the client, 2.2; Microsoft wants the certificate's x5t). NULL when
 * it cannot be signed. The caller frees it.
 */
char *
jwt_sign(const struct jwt_key *k, const char *iss, const char *sub,
    const char *aud, const char *scope)
{
	unsigned char	 rnd[16], md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0;
	char		 jti[40], *h, *c, *in, *out, *x5t;
	json_t		*hdr, *cl;
	json_int_t	 now = time(NULL);
	size_t		 len;

	hdr = json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
	if (k->cert != NULL && X509_digest(k->cert, EVP_sha1(), md, &mdlen)) {
		x5t = b64url(md, mdlen);
		json_object_set_new(hdr, "x5t", json_string(x5t));
		free(x5t);
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return json_decref(hdr), NULL;
	OPENSSL_buf2hexstr_ex(jti, sizeof(jti), NULL, rnd, sizeof(rnd), '\0');
	cl = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "iss", iss,
	    "sub", sub, "aud", aud, "iat", now, "nbf", now, "exp",
	    now + JWT_LIFE, "jti", jti);
	if (scope != NULL)
		json_object_set_new(cl, "scope", json_string(scope));
	h = json_b64url(hdr);
	c = json_b64url(cl);
	out = NULL;
	if (h != NULL && c != NULL) {
		len = strlen(h) + strlen(c) + 2;
		in = xcalloc(1, len);
		snprintf(in, len, "%s.%s", h, c);
		out = sign(k->key, in);
		free(in);
	}
	free(h);
	free(c);
	return out;
}
