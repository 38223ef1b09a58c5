/* SPDX-License-Identifier: ISC */
/*
 * OAuth2 for SMTP AUTH: the grants (client_credentials with a secret or a
 * certificate assertion, refresh_token, jwt_bearer), the device login
 * (RFC 8628), the token response parser, and --check's token step. JSON
 * is jansson's; the parser validates every field it keeps
 * (oauth2state_text). The token files are oauth2state.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "outbox.h"
#include "oauth2.h"

#define EARLY		60	/* refresh a token with less left (seconds) */

#define GRANT_DEVICE	"urn:ietf:params:oauth:grant-type:device_code"
#define GRANT_JWT	"urn:ietf:params:oauth:grant-type:jwt-bearer"
#define ASSERTION_TYPE	"urn:ietf:params:oauth:client-assertion-type:" \
			"jwt-bearer"

/* What a grant needs that the configuration does not hold. */
struct creds {
	char		*secret;	/* client secret, or NULL: public */
	char		*refresh;	/* the refresh token (refresh_token) */
	char		*base;		/* the one oauth2_refresh_token_file has */
	struct jwt_key	 key;		/* oauth2_key_file: jwt_bearer, assertion */
};

static void	 form_add(char **, const char *, const char *);
static int	 load_key(const struct account *, struct creds *, char *,
		    size_t);
static char	*assertion(const struct account *, const struct creds *,
		    const char *, const char *);
static int	 creds_load(const struct account *, const char *,
		    struct creds *, char *, size_t);
static void	 creds_free(struct creds *);
static char	*grant_form(const struct account *, const struct creds *);
static void	 fix_text(const struct account *, const char *, char *,
		    size_t);
static int	 classify(const struct account *, const struct http_resp *,
		    const struct oauth2_resp *, char *, size_t);
static int	 request(const struct account *, const char *, const char *,
		    int, long long, struct oauth2_resp *, char *, size_t);
static int	 device_start(const struct account *, const struct creds *,
		    int, struct oauth2_resp *, char *, size_t);
static int	 device_poll(const struct account *, const struct creds *,
		    const struct oauth2_resp *, int, struct oauth2_resp *,
		    char *, size_t);

/*
 * Parses a token endpoint's response (RFC 6749 5.1, 5.2; RFC 8628 3.2).
 * Returns 0 with the fields found, -1 when it is not a JSON object.
 */
int
oauth2_parse(const char *body, size_t len, struct oauth2_resp *r)
{
	json_t		*o, *v;
	json_error_t	 je;

	memset(r, 0, sizeof(*r));
	o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		return -1;
	}
	r->access_token = oauth2state_text(o, "access_token", 1);
	r->refresh_token = oauth2state_text(o, "refresh_token", 1);
	r->error = oauth2state_text(o, "error", 1);
	r->error_description = oauth2state_text(o, "error_description", 0);
	r->device_code = oauth2state_text(o, "device_code", 1);
	r->user_code = oauth2state_text(o, "user_code", 1);
	r->verification_uri = oauth2state_text(o, "verification_uri", 1);
	if (r->verification_uri == NULL)	/* Google's name */
		r->verification_uri = oauth2state_text(o, "verification_url",
		    1);
	/* Numbers; some servers send them as strings. */
	v = json_object_get(o, "expires_in");
	r->expires_in = json_is_integer(v) ? json_integer_value(v) :
	    json_is_string(v) ? strtonum(json_string_value(v), 0, 1LL << 31,
	    NULL) : 0;
	if (r->expires_in < 0 || r->expires_in > 1LL << 31)
		r->expires_in = 0;
	v = json_object_get(o, "interval");
	r->interval = json_is_integer(v) ? json_integer_value(v) : 0;
	if (r->interval < 0 || r->interval > 3600)
		r->interval = 0;
	json_decref(o);
	return 0;
}

void
oauth2_resp_free(struct oauth2_resp *r)
{
	if (r->access_token != NULL)
		freezero(r->access_token, strlen(r->access_token));
	if (r->refresh_token != NULL)
		freezero(r->refresh_token, strlen(r->refresh_token));
	if (r->device_code != NULL)
		freezero(r->device_code, strlen(r->device_code));
	free(r->error);
	free(r->error_description);
	free(r->user_code);
	free(r->verification_uri);
	memset(r, 0, sizeof(*r));
}

/* Appends k=v to an application/x-www-form-urlencoded body. */
static void
form_add(char **form, const char *k, const char *v)
{
	size_t	 old = *form != NULL ? strlen(*form) : 0;
	size_t	 len = old + strlen(k) + 3 * strlen(v) + 3;
	char	*f = xcalloc(1, len), *p;

	if (*form != NULL) {
		memcpy(f, *form, old);
		freezero(*form, old);
		f[old++] = '&';
	}
	p = f + old;
	p += snprintf(p, len - (p - f), "%s=", k);
	for (; *v != '\0'; v++) {
		unsigned char c = *v;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || strchr("-._~", c) != NULL)
			*p++ = c;
		else
			p += snprintf(p, 4, "%%%02X", c);
	}
	*form = f;
}

/* oauth2_key_file, read under password_file's rules. */
static int
load_key(const struct account *a, struct creds *c, char *err, size_t errlen)
{
	char	*text, why[256];
	int	 rv;

	if (secretfile_read(a, a->oauth2_key_file, 1, &text, err, errlen)
	    == -1)
		return -1;
	rv = jwt_key_parse(text, &c->key, why, sizeof(why));
	freezero(text, strlen(text));
	if (rv == -1)
		snprintf(err, errlen, "%s: %s", a->oauth2_key_file, why);
	return rv;
}

/* An assertion for the token endpoint, signed with the account's key. */
static char *
assertion(const struct account *a, const struct creds *c, const char *iss,
    const char *sub)
{
	return jwt_sign(&c->key, iss, sub, a->oauth2_token_url,
	    strcmp(a->oauth2_grant, "jwt_bearer") == 0 ? a->oauth2_scope :
	    NULL);
}

/*
 * Reads the secrets the grant needs: each file checked like password_file.
 * A system account's refresh token is the last rotation saved in the
 * shared install's token state (qdir), when it rotated the one the file
 * holds now (oauth2state_refresh_read).
 */
static int
creds_load(const struct account *a, const char *qdir, struct creds *c,
    char *err, size_t errlen)
{
	char	*st;

	memset(c, 0, sizeof(*c));
	if (a->oauth2_client_secret != NULL)
		c->secret = xstrdup(a->oauth2_client_secret);
	else if (a->oauth2_client_secret_file != NULL &&
	    secretfile_read(a, a->oauth2_client_secret_file, 0,
	    &c->secret, err, errlen) == -1)
		return -1;
	if (strcmp(a->oauth2_grant, "refresh_token") == 0 &&
	    secretfile_read(a, a->oauth2_refresh_token_file, 0,
	    &c->refresh, err, errlen) == -1) {
		if (errno == ENOENT)
			snprintf(err, errlen, "account %s has no refresh token "
			    "yet (%s): run outbox --oauth2-login -a %s",
			    a->name, a->oauth2_refresh_token_file, a->name);
		return -1;
	}
	if (c->refresh != NULL && (st = oauth2state_refresh_read(a, qdir,
	    c->refresh)) != NULL) {
		c->base = c->refresh;
		c->refresh = st;
	}
	if (a->oauth2_key_file != NULL && (c->secret == NULL ||
	    strcmp(a->oauth2_grant, "jwt_bearer") == 0) &&
	    load_key(a, c, err, errlen) == -1)
		return -1;
	return 0;
}

static void
creds_free(struct creds *c)
{
	if (c->secret != NULL)
		freezero(c->secret, strlen(c->secret));
	if (c->refresh != NULL)
		freezero(c->refresh, strlen(c->refresh));
	if (c->base != NULL)
		freezero(c->base, strlen(c->base));
	jwt_key_free(&c->key);
	memset(c, 0, sizeof(*c));
}

/* The token request's form for the account's grant; NULL with no key. */
static char *
grant_form(const struct account *a, const struct creds *c)
{
	char		*f = NULL, *jwt;
	const char	*g = a->oauth2_grant;
	const char	*iss = c->key.iss != NULL ? c->key.iss :
			    a->oauth2_client_id;

	if (strcmp(g, "jwt_bearer") == 0) {
		if ((jwt = assertion(a, c, iss, a->user)) == NULL)
			return NULL;
		form_add(&f, "grant_type", GRANT_JWT);
		form_add(&f, "assertion", jwt);
		freezero(jwt, strlen(jwt));
		return f;
	}
	form_add(&f, "grant_type", g);
	if (c->refresh != NULL)
		form_add(&f, "refresh_token", c->refresh);
	form_add(&f, "client_id", a->oauth2_client_id);
	if (a->oauth2_scope != NULL)
		form_add(&f, "scope", a->oauth2_scope);
	if (c->secret != NULL)
		form_add(&f, "client_secret", c->secret);
	else if (c->key.key != NULL) {
		if ((jwt = assertion(a, c, iss, iss)) == NULL) {
			freezero(f, strlen(f));
			return NULL;
		}
		form_add(&f, "client_assertion_type", ASSERTION_TYPE);
		form_add(&f, "client_assertion", jwt);
		freezero(jwt, strlen(jwt));
	}
	return f;
}

/* The fix for an OAuth2 error code (RFC 6749 5.2). */
static void
fix_text(const struct account *a, const char *e, char *buf, size_t size)
{
	if (strcmp(e, "invalid_grant") == 0 &&
	    strcmp(a->oauth2_grant, "refresh_token") == 0)
		snprintf(buf, size, "the refresh token is expired or revoked: "
		    "run outbox --oauth2-login -a %s", a->name);
	else if (strcmp(e, "invalid_grant") == 0)
		snprintf(buf, size, "check oauth2_key_file and that its key "
		    "may act for %s (account %s)", a->user, a->name);
	else if (strcmp(e, "invalid_client") == 0)
		snprintf(buf, size, "check oauth2_client_id and the client "
		    "secret or certificate of account %s", a->name);
	else if (strcmp(e, "unauthorized_client") == 0)
		snprintf(buf, size, "the application may not use grant %s: "
		    "allow it in the app registration (account %s)",
		    a->oauth2_grant, a->name);
	else
		snprintf(buf, size, "check the oauth2_ keys of account %s",
		    a->name);
}

/*
 * What a refused token request means. Returns OAUTH2_TEMP or OAUTH2_CONFIG
 * with err naming the account and the fix.
 */
static int
classify(const struct account *a, const struct http_resp *h,
    const struct oauth2_resp *r, char *err, size_t errlen)
{
	const char	*e = r->error != NULL ? r->error : "none";
	const char	*d = r->error_description != NULL ?
			    r->error_description : "";
	if (h->status == 429 || h->status >= 500) {
		snprintf(err, errlen, "token endpoint %s: HTTP %d%s; will try "
		    "again (retry after %lld s)", a->oauth2_token_url,
		    h->status, h->status == 429 ? " (too many requests)" : "",
		    h->retry_after >= 0 ? h->retry_after : 0);
		return OAUTH2_TEMP;
	}
	snprintf(err, errlen, "account %s: token endpoint says %s (HTTP %d)"
	    "%s%s; ", a->name, e, h->status, *d != '\0' ? ": " : "", d);
	fix_text(a, e, err + strlen(err), errlen - strlen(err));
	return OAUTH2_CONFIG;
}

/* One token request; OAUTH2_OK with r filled, else the class and err. */
static int
request(const struct account *a, const char *url, const char *form,
    int verbose, long long end_ms, struct oauth2_resp *r, char *err,
    size_t errlen)
{
	struct http_resp	h;
	char			why[256];

	memset(r, 0, sizeof(*r));
	if (http_post(a, url, form, end_ms, &h, verbose, why, sizeof(why)) ==
	    -1) {
		snprintf(err, errlen, "token endpoint %s: %s; will try again",
		    url, why);
		return OAUTH2_TEMP;
	}
	if (oauth2_parse(h.body != NULL ? h.body : "", h.len, r) == -1 &&
	    h.status < 500 && h.status != 429) {
		snprintf(err, errlen, "token endpoint %s: HTTP %d without "
		    "JSON", url, h.status);
		freezero(h.body, h.len);
		return OAUTH2_TEMP;
	}
	freezero(h.body, h.len);
	if (h.status == 200 && (r->access_token != NULL ||
	    r->device_code != NULL))
		return OAUTH2_OK;
	if (h.status == 200) {
		snprintf(err, errlen, "token endpoint %s: no token in its "
		    "answer", url);
		return OAUTH2_TEMP;
	}
	return classify(a, &h, r, err, errlen);
}

/*
 * An access token for the account: the cached one while more than a
 * minute is left (unless force), else a new one from the grant. Returns
 * OAUTH2_OK with *token (the caller frees it with freezero), or
 * OAUTH2_TEMP / OAUTH2_CONFIG with err naming the account and the fix.
 */
int
oauth2_token(const struct account *a, const char *qdir, int force,
    int verbose, long long end_ms, char **token, time_t *expiry, char *err,
    size_t errlen)
{
	struct oauth2_resp	 r;
	struct creds		 c;
	time_t			 now = time(NULL), expires;
	char			*form;
	int			 rv;

	*token = NULL;
	if (!force && (*token = oauth2state_cache_read(a, qdir, &expires)) !=
	    NULL) {
		if (expires - now >= EARLY) {
			if (expiry != NULL)
				*expiry = expires;
			return OAUTH2_OK;
		}
		freezero(*token, strlen(*token));
		*token = NULL;
	}
	if (creds_load(a, qdir, &c, err, errlen) == -1) {
		creds_free(&c);
		return OAUTH2_CONFIG;
	}
	if ((form = grant_form(a, &c)) == NULL) {
		snprintf(err, errlen, "account %s: cannot sign the assertion "
		    "with %s", a->name, a->oauth2_key_file);
		creds_free(&c);
		return OAUTH2_CONFIG;
	}
	rv = request(a, a->oauth2_token_url, form, verbose, end_ms, &r, err,
	    errlen);
	freezero(form, strlen(form));
	if (rv == OAUTH2_OK && r.access_token == NULL) {
		snprintf(err, errlen, "token endpoint %s: no access_token",
		    a->oauth2_token_url);
		rv = OAUTH2_TEMP;
	}
	if (rv == OAUTH2_OK && r.refresh_token != NULL && c.refresh != NULL &&
	    strcmp(r.refresh_token, c.refresh) != 0)
		oauth2state_rotated(a, qdir, c.base != NULL ? c.base :
		    c.refresh, r.refresh_token);
	if (rv == OAUTH2_OK) {
		expires = now + (r.expires_in > 0 ? r.expires_in : 3600);
		oauth2state_cache_write(a, qdir, r.access_token, expires);
		if (expiry != NULL)
			*expiry = expires;
		*token = r.access_token;
		r.access_token = NULL;
	}
	oauth2_resp_free(&r);
	creds_free(&c);
	return rv;
}

/* The device authorization request (RFC 8628 3.1): the code to show. */
static int
device_start(const struct account *a, const struct creds *c, int verbose,
    struct oauth2_resp *d, char *err, size_t errlen)
{
	char	*form = NULL;
	int	 rv;

	form_add(&form, "client_id", a->oauth2_client_id);
	if (a->oauth2_scope != NULL)
		form_add(&form, "scope", a->oauth2_scope);
	if (c->secret != NULL)
		form_add(&form, "client_secret", c->secret);
	rv = request(a, a->oauth2_device_url, form, verbose, 0, d, err,
	    errlen);
	freezero(form, strlen(form));
	if (rv == OAUTH2_OK && (d->device_code == NULL ||
	    d->user_code == NULL || d->verification_uri == NULL)) {
		snprintf(err, errlen, "device endpoint %s: no device_code, "
		    "user_code or verification_uri", a->oauth2_device_url);
		rv = OAUTH2_TEMP;
	}
	return rv;
}

/* Polls the token endpoint as the server says (RFC 8628 3.4, 3.5). */
static int
device_poll(const struct account *a, const struct creds *c,
    const struct oauth2_resp *d, int verbose, struct oauth2_resp *r,
    char *err, size_t errlen)
{
	time_t		 end = time(NULL) + (d->expires_in > 0 ?
			    d->expires_in : 900);
	long long	 interval = d->interval > 0 ? d->interval : 5;
	char		*form = NULL;
	int		 rv = OAUTH2_TEMP;

	form_add(&form, "grant_type", GRANT_DEVICE);
	form_add(&form, "device_code", d->device_code);
	form_add(&form, "client_id", a->oauth2_client_id);
	if (c->secret != NULL)
		form_add(&form, "client_secret", c->secret);
	while (time(NULL) + interval <= end) {
		/* sleep returns early on SIGTERM, SIGINT or SIGHUP. */
		if (stopping() || (sleep(interval), stopping())) {
			snprintf(err, errlen, "account %s: stopped by signal "
			    "%d before the sign-in; nothing was saved", a->name,
			    stopping());
			rv = OAUTH2_TEMP;
			goto done;
		}
		rv = request(a, a->oauth2_token_url, form, verbose, 0, r,
		    err, errlen);
		if (rv == OAUTH2_OK || r->error == NULL)
			goto done;	/* a token, or no answer: err says */
		if (strcmp(r->error, "slow_down") == 0)
			interval += 5;
		else if (strcmp(r->error, "authorization_pending") != 0)
			break;
		oauth2_resp_free(r);
	}
	rv = OAUTH2_CONFIG;
	if (r->error != NULL && strcmp(r->error, "access_denied") == 0)
		snprintf(err, errlen, "account %s: the sign-in was declined",
		    a->name);
	else if (r->error == NULL || strcmp(r->error, "expired_token") == 0)
		snprintf(err, errlen, "account %s: the code expired before the "
		    "sign-in; run outbox --oauth2-login -a %s again", a->name,
		    a->name);
done:
	freezero(form, strlen(form));
	return rv;
}

/*
 * outbox --oauth2-login: the device authorization grant. Shows the URI
 * and the code on tty, waits for the sign-in, and stores the refresh
 * token (and caches the access token). Returns the class, as
 * oauth2_token does.
 */
int
oauth2_login(const struct account *a, const char *qdir, int verbose,
    FILE *tty, char *err, size_t errlen)
{
	struct oauth2_resp	 d, r;
	struct creds		 c;
	int			 rv = OAUTH2_CONFIG;

	memset(&r, 0, sizeof(r));
	memset(&d, 0, sizeof(d));
	memset(&c, 0, sizeof(c));
	/* Another user's sign-in would replace the system's identity. */
	if (a->system && getuid() != 0) {
		snprintf(err, errlen, "account %s is a system account: only "
		    "root may sign it in (outbox --oauth2-login -a %s as root)",
		    a->name, a->name);
		return OAUTH2_NOPERM;
	}
	if (a->oauth2_grant == NULL || strcmp(a->oauth2_grant,
	    "refresh_token") != 0 || a->oauth2_device_url == NULL) {
		snprintf(err, errlen, "account %s: --oauth2-login needs "
		    "oauth2_grant refresh_token and oauth2_device_url (or "
		    "oauth2_provider)", a->name);
		return OAUTH2_CONFIG;
	}
	if (a->oauth2_client_secret != NULL)
		c.secret = xstrdup(a->oauth2_client_secret);
	else if (a->oauth2_client_secret_file != NULL &&
	    secretfile_read(a, a->oauth2_client_secret_file, 0, &c.secret,
	    err, errlen) == -1)
		return OAUTH2_CONFIG;
	if ((rv = device_start(a, &c, verbose, &d, err, errlen)) != OAUTH2_OK)
		goto out;
	fprintf(tty, "To sign in account %s, open %s and enter the code "
	    "%s\n", a->name, d.verification_uri, d.user_code);
	fflush(tty);
	if ((rv = device_poll(a, &c, &d, verbose, &r, err, errlen)) !=
	    OAUTH2_OK)
		goto out;
	rv = OAUTH2_CONFIG;
	if (r.refresh_token == NULL)
		snprintf(err, errlen, "account %s: the sign-in gave no refresh "
		    "token (ask for the offline_access scope)", a->name);
	else if (oauth2state_refresh_save(a, r.refresh_token, err, errlen) ==
	    0)
		rv = OAUTH2_OK;
	if (rv == OAUTH2_OK && r.access_token != NULL)
		oauth2state_cache_write(a, qdir, r.access_token, time(NULL) +
		    (r.expires_in > 0 ? r.expires_in : 3600));
	if (rv == OAUTH2_OK)
		fprintf(tty, "account %s: signed in; the refresh token is in "
		    "%s\n", a->name, a->oauth2_refresh_token_file);
out:
	oauth2_resp_free(&d);
	oauth2_resp_free(&r);
	creds_free(&c);
	return rv;
}

/*
 * The token step for --check: the grant, the endpoint, then a token (the
 * cached one, or a new one) with its expiry, or the error and its fix.
 * Returns the class, as oauth2_token does.
 */
int
oauth2_describe(const struct account *a, const char *qdir, FILE *out)
{
	char	*tok, err[512];
	time_t	 expires = 0;
	int	 rv, cached;

	fprintf(out, "oauth2: grant %s, client %s, token endpoint %s\n",
	    a->oauth2_grant, a->oauth2_client_id, a->oauth2_token_url);
	cached = (tok = oauth2state_cache_read(a, qdir, &expires)) != NULL &&
	    expires - time(NULL) >= EARLY;
	if (tok != NULL)
		freezero(tok, strlen(tok));
	rv = oauth2_token(a, qdir, 0, 0, mono_ms() + a->session_timeout * 1000,
	    &tok, &expires, err, sizeof(err));
	if (rv != OAUTH2_OK) {
		fprintf(out, "oauth2: token FAILED: %s\n", err);
		return rv;
	}
	freezero(tok, strlen(tok));
	fprintf(out, "oauth2: token ok (%s), expires in %lld s\n", cached ?
	    "cached" : "new", (long long)(expires - time(NULL)));
	return rv;
}
