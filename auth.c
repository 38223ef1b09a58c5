/* SPDX-License-Identifier: ISC */
/*
 * SASL mechanisms for SMTP AUTH (RFC 4954) as a table. Each step turns a
 * server challenge into a response with no I/O: smtpauth.c owns the exchange.
 * OpenSSL does the hashing, HMAC, PBKDF2, base64 and the nonce.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "outbox.h"
#include "auth.h"

#define SCRAM_LEN	32	/* SHA-256 */
#define SASL_STEPS_MAX	8	/* challenges in one exchange */

/* What a step made: the raw response, its length, or -1 with sa->err. */
typedef int	step_fn(struct sasl *, const char *, size_t, char **,
		    size_t *);

static step_fn	step_plain, step_login, step_cram, step_scram, step_xoauth2,
		step_oauthbearer;

/* Strongest first; strength 0 is a token, used only when configured. */
static const struct sasl_mech mechs[] = {
	{ "SCRAM-SHA-256",	4,	step_scram },	/* RFC 5802, 7677 */
	{ "CRAM-MD5",		3,	step_cram },	/* RFC 2195 */
	{ "PLAIN",		2,	step_plain },	/* RFC 4616 */
	{ "LOGIN",		1,	step_login },
	{ "XOAUTH2",		0,	step_xoauth2 },	/* Google, Microsoft */
	{ "OAUTHBEARER",	0,	step_oauthbearer },	/* RFC 7628 */
};
#define NMECHS	(sizeof(mechs) / sizeof(mechs[0]))

static char	*b64(const void *, size_t);
static int	 unb64(const char *, char **, size_t *);
static int	 offered_has(const char *, const char *);
static char	*saslname(const char *);
static int	 scram_first(struct sasl *, char **, size_t *);
static int	 scram_final(struct sasl *, const char *, char **, size_t *);
static int	 scram_verify(struct sasl *, const char *);
static char	*scram_attr(const char *, char);
static int	 bearer(struct sasl *, int, const char *, char **, size_t *);
static int	 sasl_fail(struct sasl *, const char *);
static int	 dup_out(const char *, char **, size_t *);

static char *
b64(const void *p, size_t len)
{
	char	*out = xcalloc(1, 4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, p, len);
	return out;
}

/* Decodes base64; *out is NUL-terminated. -1 on bad input. */
static int
unb64(const char *s, char **out, size_t *len)
{
	size_t	n = strlen(s);
	int	got;

	*out = xcalloc(1, n / 4 * 3 + 4);
	if (n % 4 != 0 || (got = EVP_DecodeBlock((unsigned char *)*out,
	    (const unsigned char *)s, n)) < 0) {
		free(*out);
		*out = NULL;
		return -1;
	}
	/* EVP_DecodeBlock counts the padding as data. */
	while (n > 0 && s[n - 1] == '=' && got > 0) {
		n--;
		got--;
	}
	*len = got;
	(*out)[got] = '\0';
	return 0;
}

static int
sasl_fail(struct sasl *sa, const char *why)
{
	strlcpy(sa->err, why, sizeof(sa->err));
	return -1;
}

static int
dup_out(const char *s, char **out, size_t *len)
{
	*out = xstrdup(s);
	*len = strlen(s);
	return 0;
}

/* Whether the space-separated list holds the mechanism. */
static int
offered_has(const char *offered, const char *mech)
{
	size_t	len = strlen(mech);
	const char *p;

	for (p = offered; (p = strcasestr(p, mech)) != NULL; p += len)
		if ((p == offered || p[-1] == ' ') &&
		    (p[len] == ' ' || p[len] == '\0'))
			return 1;
	return 0;
}

/* The table's row for a mechanism name, or NULL: config.c checks with it. */
const struct sasl_mech *
auth_mech(const char *name)
{
	size_t	i;

	for (i = 0; i < NMECHS; i++)
		if (strcasecmp(mechs[i].name, name) == 0)
			return &mechs[i];
	return NULL;
}

/* The table's names, lower case and comma-separated, for messages. */
void
auth_names(char *buf, size_t size)
{
	size_t	i;
	char	*p;

	buf[0] = '\0';
	for (i = 0; i < NMECHS; i++) {
		if (i > 0)
			strlcat(buf, ", ", size);
		strlcat(buf, mechs[i].name, size);
	}
	for (p = buf; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p += 'a' - 'A';
}

/* The mechanism to use: the wanted one if offered, else the strongest. */
const struct sasl_mech *
auth_choose(const char *offered, const char *wanted)
{
	const struct sasl_mech	*m;
	size_t			 i;

	if (strcasecmp(wanted, "on") != 0) {
		m = auth_mech(wanted);
		return m != NULL && offered_has(offered, m->name) ? m : NULL;
	}
	for (i = 0; i < NMECHS && mechs[i].strength > 0; i++)
		if (offered_has(offered, mechs[i].name))
			return &mechs[i];
	return NULL;
}

/*
 * One step: challenge is the base64 text of a 334 (NULL before AUTH is
 * sent). Returns 0 with a base64 response in *resp (the caller frees it
 * with freezero), 1 when there is no initial response, -1 with sa->err.
 */
int
auth_step(const struct sasl_mech *m, struct sasl *sa, const char *challenge,
    char **resp)
{
	char	*chal = NULL, *out = NULL;
	size_t	 clen = 0, olen = 0;
	int	 rv;

	*resp = NULL;
	if (sa->steps++ >= SASL_STEPS_MAX)
		return sasl_fail(sa, "too many challenges");
	if (challenge != NULL && unb64(challenge, &chal, &clen) == -1)
		return sasl_fail(sa, "the challenge is not base64");
	rv = m->step(sa, chal, clen, &out, &olen);
	free(chal);
	if (rv == -1 || out == NULL)
		return rv == -1 ? -1 : 1;
	*resp = b64(out, olen);
	freezero(out, olen);
	return 0;
}

/* Clears what an exchange kept: keys and messages. */
void
auth_clear(struct sasl *sa)
{
	free(sa->first);
	if (sa->authmsg != NULL)
		freezero(sa->authmsg, strlen(sa->authmsg));
	OPENSSL_cleanse(sa->salted, sizeof(sa->salted));
	sa->first = sa->authmsg = NULL;
	sa->stage = sa->steps = sa->verified = sa->token_error = 0;
}

static int
step_plain(struct sasl *sa, const char *chal, size_t clen, char **out,
    size_t *olen)
{
	size_t	ul = strlen(sa->user), pl = strlen(sa->secret);

	(void)chal;
	(void)clen;
	if (sa->stage++ > 0)
		return sasl_fail(sa, "PLAIN takes no challenge");
	*olen = ul + pl + 2;
	*out = xcalloc(1, *olen + 1);
	memcpy(*out + 1, sa->user, ul);
	memcpy(*out + ul + 2, sa->secret, pl);
	return 0;
}

/* LOGIN: the user as the initial response, the password to the next. */
static int
step_login(struct sasl *sa, const char *chal, size_t clen, char **out,
    size_t *olen)
{
	(void)chal;
	(void)clen;
	switch (sa->stage++) {
	case 0:
		return dup_out(sa->user, out, olen);
	case 1:
		return dup_out(sa->secret, out, olen);
	default:
		return sasl_fail(sa, "LOGIN: unexpected challenge");
	}
}

static int
step_cram(struct sasl *sa, const char *chal, size_t clen, char **out,
    size_t *olen)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0, i;
	size_t		 ul = strlen(sa->user);

	if (sa->stage++ == 0)
		return 0;	/* no initial response */
	if (chal == NULL || sa->stage > 2)
		return sasl_fail(sa, "CRAM-MD5: unexpected challenge");
	HMAC(EVP_md5(), sa->secret, strlen(sa->secret),
	    (const unsigned char *)chal, clen, md, &mdlen);
	*olen = ul + 1 + 2 * mdlen;
	*out = xcalloc(1, *olen + 1);
	memcpy(*out, sa->user, ul);
	(*out)[ul] = ' ';
	/* RFC 2195: the digest in lower-case hex. */
	for (i = 0; i < mdlen; i++)
		snprintf(*out + ul + 1 + 2 * i, 3, "%02x", md[i]);
	OPENSSL_cleanse(md, sizeof(md));
	return 0;
}

/* A saslname (RFC 5802 5.1): "," and "=" escaped. */
static char *
saslname(const char *user)
{
	size_t	 n = strlen(user), len = 0;
	char	*out = xcalloc(3, n + 1);

	for (; *user != '\0'; user++) {
		if (*user == ',' || *user == '=') {
			memcpy(out + len, *user == ',' ? "=2C" : "=3D", 3);
			len += 3;
		} else
			out[len++] = *user;
	}
	return out;
}

/* client-first-message; the nonce is random unless the test fixed it. */
static int
scram_first(struct sasl *sa, char **out, size_t *olen)
{
	unsigned char	 rnd[18];
	char		*user = saslname(sa->user), *nonce;
	size_t		 len;

	if (sa->nonce != NULL)
		nonce = xstrdup(sa->nonce);
	else {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
			free(user);
			return sasl_fail(sa, "no random bytes for the nonce");
		}
		nonce = b64(rnd, sizeof(rnd));
	}
	len = strlen(user) + strlen(nonce) + 8;
	sa->first = xcalloc(1, len);
	snprintf(sa->first, len, "n=%s,r=%s", user, nonce);
	*olen = strlen(sa->first) + 3;
	*out = xcalloc(1, *olen + 1);
	snprintf(*out, *olen + 1, "n,,%s", sa->first);
	free(user);
	free(nonce);
	return 0;
}

/* The value of attribute a ("r", "s", "i") in a SCRAM message, or NULL. */
static char *
scram_attr(const char *msg, char a)
{
	const char	*p;

	for (p = msg; p != NULL; p = strchr(p, ','), p = p ? p + 1 : NULL)
		if (p[0] == a && p[1] == '=') {
			p += 2;
			return strndup(p, strcspn(p, ","));
		}
	return NULL;
}

/* client-final-message, from server-first-message (RFC 5802 3). */
static int
scram_final(struct sasl *sa, const char *sfirst, char **out, size_t *olen)
{
	unsigned char	 ckey[SCRAM_LEN], stored[SCRAM_LEN], sig[SCRAM_LEN];
	unsigned int	 n, i;
	char		*r, *sv, *iv, *salt = NULL, *proof, *cfinal;
	const char	*e = "missing";
	const char	*cnonce = sa->first + strcspn(sa->first, ",") + 3;
	size_t		 saltlen = 0, len;
	long long	 iter = 0;
	int		 rv = -1;

	r = scram_attr(sfirst, 'r');
	sv = scram_attr(sfirst, 's');
	iv = scram_attr(sfirst, 'i');
	if (iv != NULL)
		iter = strtonum(iv, 1, 10000000, &e);
	if (r == NULL || strncmp(r, cnonce, strlen(cnonce)) != 0 ||
	    strlen(r) == strlen(cnonce) || sv == NULL || e != NULL ||
	    unb64(sv, &salt, &saltlen) == -1) {
		sasl_fail(sa, "SCRAM-SHA-256: bad server-first message");
		goto out;
	}
	len = strlen(r) + 16;
	cfinal = xcalloc(1, len);
	snprintf(cfinal, len, "c=biws,r=%s", r);
	len = strlen(sa->first) + strlen(sfirst) + strlen(cfinal) + 3;
	sa->authmsg = xcalloc(1, len);
	snprintf(sa->authmsg, len, "%s,%s,%s", sa->first, sfirst, cfinal);
	PKCS5_PBKDF2_HMAC(sa->secret, strlen(sa->secret),
	    (unsigned char *)salt, saltlen, iter, EVP_sha256(), SCRAM_LEN,
	    sa->salted);
	HMAC(EVP_sha256(), sa->salted, SCRAM_LEN, (const unsigned char *)
	    "Client Key", 10, ckey, &n);
	EVP_Digest(ckey, SCRAM_LEN, stored, &n, EVP_sha256(), NULL);
	HMAC(EVP_sha256(), stored, SCRAM_LEN, (unsigned char *)sa->authmsg,
	    strlen(sa->authmsg), sig, &n);
	for (i = 0; i < SCRAM_LEN; i++)
		ckey[i] ^= sig[i];
	proof = b64(ckey, SCRAM_LEN);
	*olen = strlen(cfinal) + 3 + strlen(proof);
	*out = xcalloc(1, *olen + 1);
	snprintf(*out, *olen + 1, "%s,p=%s", cfinal, proof);
	free(proof);
	free(cfinal);
	OPENSSL_cleanse(ckey, sizeof(ckey));
	OPENSSL_cleanse(stored, sizeof(stored));
	rv = 0;
out:
	free(r);
	free(sv);
	free(iv);
	free(salt);
	return rv;
}

/* server-final-message: its signature proves the server knew the key. */
static int
scram_verify(struct sasl *sa, const char *sfinal)
{
	unsigned char	 skey[SCRAM_LEN], sig[SCRAM_LEN];
	unsigned int	 n;
	char		*want;
	int		 ok;

	HMAC(EVP_sha256(), sa->salted, SCRAM_LEN, (const unsigned char *)
	    "Server Key", 10, skey, &n);
	HMAC(EVP_sha256(), skey, SCRAM_LEN, (unsigned char *)sa->authmsg,
	    strlen(sa->authmsg), sig, &n);
	want = b64(sig, SCRAM_LEN);
	ok = strncmp(sfinal, "v=", 2) == 0 && strcmp(sfinal + 2, want) == 0;
	OPENSSL_cleanse(skey, sizeof(skey));
	free(want);
	if (!ok)
		return sasl_fail(sa, "SCRAM-SHA-256: the server's signature "
		    "is wrong; it does not know the password");
	sa->verified = 1;
	return 0;
}

/* SCRAM-SHA-256 without channel binding: first, final, verify. */
static int
step_scram(struct sasl *sa, const char *chal, size_t clen, char **out,
    size_t *olen)
{
	(void)clen;
	switch (sa->stage++) {
	case 0:
		return scram_first(sa, out, olen);
	case 1:
		return scram_final(sa, chal, out, olen);
	case 2:
		if (scram_verify(sa, chal) == -1)
			return -1;
		return dup_out("", out, olen);
	default:
		return sasl_fail(sa, "SCRAM-SHA-256: unexpected challenge");
	}
}

/*
 * XOAUTH2 or OAUTHBEARER (RFC 7628) with a token. A challenge is the
 * server's error report: noted, and answered to get the final reply.
 */
static int
bearer(struct sasl *sa, int oauthbearer, const char *chal, char **out,
    size_t *olen)
{
	size_t	 len;
	char	*user;

	if (sa->stage++ > 0) {
		if (chal == NULL || sa->stage > 2)
			return sasl_fail(sa, "unexpected challenge");
		sa->token_error = 1;
		snprintf(sa->err, sizeof(sa->err), "%.200s", chal);
		return dup_out(oauthbearer ? "\001" : "", out, olen);
	}
	user = saslname(sa->user);
	len = strlen(user) + strlen(sa->secret) + strlen(sa->host) + 64;
	*out = xcalloc(1, len);
	if (oauthbearer)
		snprintf(*out, len, "n,a=%s,\001host=%s\001port=%lld\001"
		    "auth=Bearer %s\001\001", user, sa->host, sa->port,
		    sa->secret);
	else
		snprintf(*out, len, "user=%s\001auth=Bearer %s\001\001",
		    sa->user, sa->secret);
	*olen = strlen(*out);
	free(user);
	return 0;
}

static int
step_xoauth2(struct sasl *sa, const char *chal, size_t clen, char **out,
    size_t *olen)
{
	(void)clen;
	return bearer(sa, 0, chal, out, olen);
}

static int
step_oauthbearer(struct sasl *sa, const char *chal, size_t clen, char **out,
    size_t *olen)
{
	(void)clen;
	return bearer(sa, 1, chal, out, olen);
}
