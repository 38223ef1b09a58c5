/*
 * SMTP AUTH (RFC 4954): choosing a mechanism and running it. OpenSSL does
 * the hashing, HMAC, PBKDF2 and base64.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "outbox.h"

#define SCRAM_LEN	32	/* SHA-256 */

/* Strongest first (RFC 7677, RFC 2195, RFC 4616, then LOGIN). */
static const char *prefer[] = {
	"SCRAM-SHA-256", "CRAM-MD5", "PLAIN", "LOGIN", NULL
};

static char	*b64(const void *, size_t);
static int	 offered_has(const char *, const char *);
static int	 unb64(const char *, unsigned char **, size_t *);
static enum status auth_done(struct session *, const char *);
static enum status auth_plain(struct session *, const char *);
static enum status auth_loginmech(struct session *, const char *);
static enum status auth_cram(struct session *, const char *);
static enum status auth_scram(struct session *, const char *);
static enum status auth_bearer(struct session *, const char *, int);

static char *
b64(const void *p, size_t len)
{
	char	*out = xcalloc(1, 4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, p, len);
	return out;
}

/* Decodes base64; *out is NUL-terminated. -1 on bad input. */
static int
unb64(const char *s, unsigned char **out, size_t *len)
{
	size_t	n = strlen(s);
	int	got;

	*out = xcalloc(1, n / 4 * 3 + 4);
	if (n % 4 != 0 || (got = EVP_DecodeBlock(*out, (const unsigned char *)s,
	    n)) < 0) {
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

/* The mechanism to use: the wanted one if offered, else the strongest. */
const char *
auth_choose(const char *offered, const char *wanted)
{
	size_t	i;

	if (strcasecmp(wanted, "on") != 0)
		return offered_has(offered, wanted) ? wanted : NULL;
	for (i = 0; prefer[i] != NULL; i++)
		if (offered_has(offered, prefer[i]))
			return prefer[i];
	return NULL;
}

/* The final reply of an exchange: 235, or the reason it failed. */
static enum status
auth_done(struct session *s, const char *mech)
{
	if (s->reply.code == 235) {
		s->authenticated = 1;
		return ST_OK;
	}
	/* Refused credentials need an administrator, not a bounce. */
	return smtp_fail(s, "AUTH %s refused: %d %s", mech, s->reply.code,
	    s->reply.text);
}

static enum status
auth_plain(struct session *s, const char *secret)
{
	const char	*user = s->acct->user;
	size_t		 ul = strlen(user), pl = strlen(secret);
	char		*buf = xcalloc(1, ul + pl + 2), *resp;

	memcpy(buf + 1, user, ul);
	memcpy(buf + ul + 2, secret, pl);
	resp = b64(buf, ul + pl + 2);
	explicit_bzero(buf, ul + pl + 2);
	free(buf);
	smtp_command(s, 1, "AUTH PLAIN %s", resp);
	explicit_bzero(resp, strlen(resp));
	free(resp);
	if (smtp_reply(s) == -1)
		return ST_TEMP;
	return auth_done(s, "PLAIN");
}

static enum status
auth_loginmech(struct session *s, const char *secret)
{
	char	*resp = b64(s->acct->user, strlen(s->acct->user));

	smtp_command(s, 1, "AUTH LOGIN %s", resp);
	free(resp);
	if (smtp_reply(s) == -1)
		return ST_TEMP;
	if (s->reply.code == 334) {
		resp = b64(secret, strlen(secret));
		smtp_command(s, 2, "%s", resp);
		explicit_bzero(resp, strlen(resp));
		free(resp);
		if (smtp_reply(s) == -1)
			return ST_TEMP;
	}
	return auth_done(s, "LOGIN");
}

static enum status
auth_cram(struct session *s, const char *secret)
{
	unsigned char	*chal, md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0, i;
	size_t		 clen, ul = strlen(s->acct->user);
	char		*resp, *line;

	smtp_command(s, 0, "AUTH CRAM-MD5");
	if (smtp_reply(s) == -1)
		return ST_TEMP;
	if (s->reply.code != 334)
		return auth_done(s, "CRAM-MD5");
	if (unb64(s->reply.text, &chal, &clen) == -1)
		return smtp_fail(s, "AUTH CRAM-MD5: bad challenge");
	HMAC(EVP_md5(), secret, strlen(secret), chal, clen, md, &mdlen);
	free(chal);
	line = xcalloc(1, ul + 2 * mdlen + 2);
	memcpy(line, s->acct->user, ul);
	line[ul] = ' ';
	for (i = 0; i < mdlen; i++)
		snprintf(line + ul + 1 + 2 * i, 3, "%02x", md[i]);
	explicit_bzero(md, sizeof(md));
	resp = b64(line, strlen(line));
	free(line);
	smtp_command(s, 2, "%s", resp);
	free(resp);
	if (smtp_reply(s) == -1)
		return ST_TEMP;
	return auth_done(s, "CRAM-MD5");
}

/* SCRAM-SHA-256 (RFC 5802, RFC 7677), without channel binding. */
static enum status
auth_scram(struct session *s, const char *secret)
{
	unsigned char	 rnd[18], *sfirst = NULL, *salt = NULL, *sfinal = NULL;
	unsigned char	 salted[SCRAM_LEN], ckey[SCRAM_LEN], skey[SCRAM_LEN];
	unsigned char	 stored[SCRAM_LEN], sig[SCRAM_LEN], proof[SCRAM_LEN];
	unsigned int	 n;
	size_t		 len, saltlen, i, fsz;
	char		 user[512], *nonce, *first, *resp, *authmsg = NULL;
	char		*final = NULL, *r, *sv, *iv, *p, num[16];
	const char	*e;
	long long	 iter;
	enum status	 st = ST_TEMP;

	/* saslname: "," and "=" escaped (RFC 5802 5.1). */
	for (p = s->acct->user, len = 0; *p != '\0' && len + 4 < sizeof(user);
	    p++) {
		if (*p == ',' || *p == '=') {
			len += snprintf(user + len, 4, "=%s", *p == ',' ?
			    "2C" : "3D");
		} else
			user[len++] = *p;
	}
	user[len] = '\0';
	RAND_bytes(rnd, sizeof(rnd));
	nonce = b64(rnd, sizeof(rnd));
	len = strlen(user) + strlen(nonce) + 16;
	first = xcalloc(1, len);
	snprintf(first, len, "n,,n=%s,r=%s", user, nonce);
	resp = b64(first, strlen(first));
	smtp_command(s, 1, "AUTH SCRAM-SHA-256 %s", resp);
	free(resp);
	if (smtp_reply(s) == -1)
		goto out;
	if (s->reply.code != 334) {
		st = auth_done(s, "SCRAM-SHA-256");
		goto out;
	}
	if (unb64(s->reply.text, &sfirst, &len) == -1 ||
	    strncmp((char *)sfirst, "r=", 2) != 0 ||
	    strncmp((char *)sfirst + 2, nonce, strlen(nonce)) != 0 ||
	    (sv = strstr((char *)sfirst, ",s=")) == NULL ||
	    (iv = strstr((char *)sfirst, ",i=")) == NULL) {
		st = smtp_fail(s, "AUTH SCRAM-SHA-256: bad server-first "
		    "message");
		goto out;
	}
	r = xstrdup((char *)sfirst + 2);
	r[strcspn(r, ",")] = '\0';
	sv = xstrdup(sv + 3);
	sv[strcspn(sv, ",")] = '\0';
	snprintf(num, sizeof(num), "%.*s", (int)strcspn(iv + 3, ","), iv + 3);
	iter = strtonum(num, 1, 10000000, &e);
	if (e != NULL || unb64(sv, &salt, &saltlen) == -1) {
		free(r);
		free(sv);
		st = smtp_fail(s, "AUTH SCRAM-SHA-256: bad salt or iteration "
		    "count");
		goto out;
	}
	free(sv);
	len = strlen(r) + 16;
	fsz = len + 64;
	final = xcalloc(1, fsz);
	snprintf(final, fsz, "c=biws,r=%s", r);
	free(r);
	len = strlen(first + 3) + strlen((char *)sfirst) + strlen(final) + 3;
	authmsg = xcalloc(1, len);
	snprintf(authmsg, len, "%s,%s,%s", first + 3, sfirst, final);
	PKCS5_PBKDF2_HMAC(secret, strlen(secret), salt, saltlen, iter,
	    EVP_sha256(), SCRAM_LEN, salted);
	HMAC(EVP_sha256(), salted, SCRAM_LEN, (const unsigned char *)
	    "Client Key", 10, ckey, &n);
	EVP_Digest(ckey, SCRAM_LEN, stored, &n, EVP_sha256(), NULL);
	HMAC(EVP_sha256(), stored, SCRAM_LEN, (unsigned char *)authmsg,
	    strlen(authmsg), sig, &n);
	for (i = 0; i < SCRAM_LEN; i++)
		proof[i] = ckey[i] ^ sig[i];
	p = b64(proof, SCRAM_LEN);
	strlcat(final, ",p=", fsz);
	strlcat(final, p, fsz);
	free(p);
	resp = b64(final, strlen(final));
	smtp_command(s, 2, "%s", resp);
	free(resp);
	if (smtp_reply(s) == -1)
		goto out;
	if (s->reply.code == 334) {
		/* Check the server's signature: it proves it knew the key. */
		HMAC(EVP_sha256(), salted, SCRAM_LEN, (const unsigned char *)
		    "Server Key", 10, skey, &n);
		HMAC(EVP_sha256(), skey, SCRAM_LEN, (unsigned char *)authmsg,
		    strlen(authmsg), sig, &n);
		p = b64(sig, SCRAM_LEN);
		if (unb64(s->reply.text, &sfinal, &len) == -1 ||
		    strncmp((char *)sfinal, "v=", 2) != 0 ||
		    strcmp((char *)sfinal + 2, p) != 0) {
			free(p);
			st = smtp_fail(s, "AUTH SCRAM-SHA-256: the server's "
			    "signature is wrong; it does not know the "
			    "password");
			goto out;
		}
		free(p);
		smtp_command(s, 0, "%s", "");
		if (smtp_reply(s) == -1)
			goto out;
	}
	st = auth_done(s, "SCRAM-SHA-256");
out:
	explicit_bzero(salted, sizeof(salted));
	explicit_bzero(ckey, sizeof(ckey));
	explicit_bzero(skey, sizeof(skey));
	explicit_bzero(proof, sizeof(proof));
	free(nonce);
	free(first);
	free(sfirst);
	free(salt);
	free(sfinal);
	free(final);
	free(authmsg);
	return st;
}

/* XOAUTH2 (Google, Microsoft) or OAUTHBEARER (RFC 7628) with a token. */
static enum status
auth_bearer(struct session *s, const char *token, int oauthbearer)
{
	const char	*mech = oauthbearer ? "OAUTHBEARER" : "XOAUTH2";
	size_t		 len = strlen(s->acct->user) + strlen(token) +
			    strlen(s->host) + 64;
	char		*msg = xcalloc(1, len), *resp;

	if (oauthbearer)
		snprintf(msg, len, "n,a=%s,\001host=%s\001port=%lld\001"
		    "auth=Bearer %s\001\001", s->acct->user, s->host,
		    s->port, token);
	else
		snprintf(msg, len, "user=%s\001auth=Bearer %s\001\001",
		    s->acct->user, token);
	resp = b64(msg, strlen(msg));
	explicit_bzero(msg, len);
	free(msg);
	smtp_command(s, 1, "AUTH %s %s", mech, resp);
	explicit_bzero(resp, strlen(resp));
	free(resp);
	if (smtp_reply(s) == -1)
		return ST_TEMP;
	if (s->reply.code == 334) {
		/* An error report; answer it to get the final reply. */
		smtp_command(s, 0, "%s", oauthbearer ? "AQ==" : "");
		if (smtp_reply(s) == -1)
			return ST_TEMP;
	}
	return auth_done(s, mech);
}

/* Authenticates the session with the account's mechanism and secret. */
enum status
auth_login(struct session *s)
{
	const char	*mech;
	char		*secret, err[256];
	enum status	 st;

	if (!(s->ext & EXT_AUTH))
		return smtp_fail(s, "the server offers no AUTH; check host "
		    "and port, or set auth off");
	if ((mech = auth_choose(s->mechs, s->acct->auth)) == NULL)
		return smtp_fail(s, "the server offers AUTH %s; %s", s->mechs,
		    strcasecmp(s->acct->auth, "on") == 0 ? "none of them is "
		    "supported" : "not the configured mechanism");
	if (config_secret(s->acct, &secret, err, sizeof(err)) == -1)
		return smtp_fail(s, "%s", err);
	s->mech = mech;
	if (strcasecmp(mech, "plain") == 0)
		st = auth_plain(s, secret);
	else if (strcasecmp(mech, "login") == 0)
		st = auth_loginmech(s, secret);
	else if (strcasecmp(mech, "cram-md5") == 0)
		st = auth_cram(s, secret);
	else if (strcasecmp(mech, "scram-sha-256") == 0)
		st = auth_scram(s, secret);
	else
		st = auth_bearer(s, secret, strcasecmp(mech, "oauthbearer")
		    == 0);
	explicit_bzero(secret, strlen(secret));
	free(secret);
	return st;
}
