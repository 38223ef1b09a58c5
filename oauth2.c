/* SPDX-License-Identifier: ISC */
/*
 * OAuth2 for SMTP AUTH: the grants (client_credentials with a secret or a
 * certificate assertion, refresh_token, jwt_bearer), the device login
 * (RFC 8628), the token response parser, and the access token cache.
 * JSON is jansson's; the parser validates every field it keeps.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "outbox.h"

#define TOKEN_MAX	16384	/* octets in a token (Microsoft's are ~3 KB) */
#define TEXT_MAX	300	/* error, description, URIs, codes */
#define EARLY		60	/* refresh a token with less left (seconds) */
#define TMP_AGE		3600	/* a temporary file older is litter (seconds) */

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

static char	*text_field(json_t *, const char *, int);
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
static int	 cache_path(const struct account *, const char *, char *,
		    size_t);
static int	 cache_match(json_t *, const struct account *);
static json_t	*json_fd(int);
static char	*cache_read(const struct account *, const char *, time_t *);
static void	 cache_write(const struct account *, const char *,
		    const char *, time_t);
static void	 sweep_tmp(const char *);
static int	 file_replace(const char *, const char *, mode_t, gid_t, int,
		    char *, size_t);
static int	 shared(const struct account *, const char *);
static int	 state_open(const char *, const char *);
static int	 state_path(const struct account *, const char *, char *,
		    size_t);
static void	 token_hash(const char *, char *, size_t);
static char	*state_read(const struct account *, const char *,
		    const char *);
static int	 state_save(const struct account *, const char *,
		    const char *, const char *, char *, size_t);
static int	 refresh_save(const struct account *, const char *, char *,
		    size_t);
static int	 rotated(const struct account *, const char *, const char *,
		    const char *);
static int	 device_start(const struct account *, const struct creds *,
		    int, struct oauth2_resp *, char *, size_t);
static int	 device_poll(const struct account *, const struct creds *,
		    const struct oauth2_resp *, int, struct oauth2_resp *,
		    char *, size_t);

/*
 * A string field, validated: printable ASCII only (a token: no space
 * either), at most max octets. NULL when absent or invalid.
 */
static char *
text_field(json_t *o, const char *name, int token)
{
	const char	*v;
	size_t		 i, n;

	if ((v = json_string_value(json_object_get(o, name))) == NULL)
		return NULL;
	n = json_string_length(json_object_get(o, name));
	if (n == 0 || n > (token ? TOKEN_MAX : TEXT_MAX))
		return NULL;
	for (i = 0; i < n; i++)
		if ((unsigned char)v[i] < (token ? 0x21 : 0x20) ||
		    (unsigned char)v[i] > 0x7e)
			return NULL;
	return xstrdup(v);
}

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
	r->access_token = text_field(o, "access_token", 1);
	r->refresh_token = text_field(o, "refresh_token", 1);
	r->error = text_field(o, "error", 1);
	r->error_description = text_field(o, "error_description", 0);
	r->device_code = text_field(o, "device_code", 1);
	r->user_code = text_field(o, "user_code", 1);
	r->verification_uri = text_field(o, "verification_uri", 1);
	if (r->verification_uri == NULL)	/* Google's name */
		r->verification_uri = text_field(o, "verification_url", 1);
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
 * holds now (state_read).
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
	if (c->refresh != NULL && (st = state_read(a, qdir, c->refresh)) !=
	    NULL) {
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
 * Removes the temporary files of path (path.XXXXXX, mkstemp's) left for
 * more than an hour by a run that was killed between making and renaming
 * one; a younger one may be another run's, at work.
 */
static void
sweep_tmp(const char *path)
{
	char		 dir[PATH_MAX], *slash;
	const char	*base;
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	size_t		 blen;
	time_t		 old = time(NULL) - TMP_AGE;

	strlcpy(dir, path, sizeof(dir));
	if ((slash = strrchr(dir, '/')) == NULL)
		return;
	*slash = '\0';
	base = path + (slash - dir) + 1;
	blen = strlen(base);
	if ((d = opendir(dir[0] != '\0' ? dir : "/")) == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, base, blen) == 0 &&
		    de->d_name[blen] == '.' && strlen(de->d_name + blen + 1) ==
		    6 && fstatat(dirfd(d), de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
		    st.st_mtime < old)
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}

/*
 * Writes text to path (with mode, and gid unless -1) by a new file
 * renamed over it; when durable, synced first: the old content stays until
 * the new is safely there (a rotated refresh token must never be lost).
 * -1 with err.
 */
static int
file_replace(const char *path, const char *text, mode_t mode, gid_t gid,
    int durable, char *err, size_t errlen)
{
	char	 tmp[PATH_MAX], dir[PATH_MAX], *slash;
	size_t	 len = strlen(text);
	int	 fd, dfd, ok;

	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
		return snprintf(err, errlen, "%s: name too long", path), -1;
	sweep_tmp(path);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	ok = (gid == (gid_t)-1 || fchown(fd, (uid_t)-1, gid) == 0) &&
	    fchmod(fd, mode) == 0 && write(fd, text, len) == (ssize_t)len &&
	    (!durable || fsync(fd) == 0);
	ok = close(fd) == 0 && ok && rename(tmp, path) == 0;
	if (!ok) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	if (!durable)
		return 0;
	strlcpy(dir, path, sizeof(dir));
	if ((slash = strrchr(dir, '/')) != NULL)
		*(slash == dir ? slash + 1 : slash) = '\0';
	if ((dfd = open(slash != NULL ? dir : ".", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) != -1) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

/*
 * Whether the account's token state is the shared install's: a system
 * account, outbox setgid, and qdir (the system's queue) a directory that
 * only root and the group can change. Then any run may write the state
 * (files of the group, mode 0640, whoever made them), and a file there is
 * trusted for what its group and mode say, not for who wrote it last: a
 * user cannot reach into the directory except through outbox.
 */
static int
shared(const struct account *a, const char *qdir)
{
	struct stat	st;
	int		fd;

	if (!a->system || priv_install_group() == (gid_t)-1 || qdir == NULL)
		return 0;
	priv_raise();
	fd = open(qdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	priv_drop();
	if (fd == -1)
		return 0;
	if (fstat(fd, &st) == -1 || st.st_uid != 0 ||
	    st.st_gid != priv_install_group() || (st.st_mode & 002) != 0) {
		close(fd);
		return 0;
	}
	close(fd);
	return 1;
}

/*
 * Opens name in the state directory qdir for reading: a regular file,
 * not a link, of the setgid group or root, closed to others and to the
 * group's writes. -1 when there is none such.
 */
static int
state_open(const char *qdir, const char *name)
{
	struct stat	st;
	int		dfd, fd;

	priv_raise();
	if ((dfd = open(qdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		priv_drop();
		return -1;
	}
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	priv_drop();
	close(dfd);
	if (fd == -1)
		return -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_nlink != 1 || (st.st_mode & 027) != 0 ||
	    (st.st_gid != priv_install_group() && st.st_uid != 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * The cache file of an account: beside the queue, per user unless the
 * account is the system's. -1 when the name cannot be a file name.
 */
static int
cache_path(const struct account *a, const char *qdir, char *buf,
    size_t size)
{
	if (qdir == NULL || a->name[strspn(a->name, "abcdefghijklmnopqrstuvwx"
	    "yzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")] != '\0')
		return -1;
	if (a->system)
		snprintf(buf, size, "%s/oauth2.%s.token", qdir, a->name);
	else
		snprintf(buf, size, "%s/oauth2.%u.%s.token", qdir,
		    (unsigned)getuid(), a->name);
	return 0;
}

/* Whether a cache entry was made for this endpoint, client and user. */
static int
cache_match(json_t *o, const struct account *a)
{
	const char	*k[] = { "token_url", "client_id", "user" };
	const char	*v[] = { a->oauth2_token_url, a->oauth2_client_id,
			    a->user };
	const char	*got;
	size_t		 i;

	if (!json_is_integer(json_object_get(o, "expires")))
		return 0;
	for (i = 0; i < 3; i++) {
		got = json_string_value(json_object_get(o, k[i]));
		if (strcmp(got != NULL ? got : "", v[i] != NULL ? v[i] : "")
		    != 0)
			return 0;
	}
	return 1;
}

/* The JSON object a (small) token file holds; closes fd. NULL if none. */
static json_t *
json_fd(int fd)
{
	char	 buf[TOKEN_MAX + 2048];
	json_t	*o = NULL;
	ssize_t	 n;

	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0)
		o = json_loadb(buf, n, 0, NULL);
	OPENSSL_cleanse(buf, sizeof(buf));
	return o;
}

/*
 * The cached access token and its expiry, when the file is private, ours
 * (or root's) and made for this account's endpoint, client and user.
 */
static char *
cache_read(const struct account *a, const char *qdir, time_t *expires)
{
	struct stat	 st;
	char		 path[PATH_MAX], *tok = NULL;
	json_t		*o;
	int		 fd;

	if (cache_path(a, qdir, path, sizeof(path)) == -1)
		return NULL;
	if (shared(a, qdir))
		fd = state_open(qdir, strrchr(path, '/') + 1);
	else {
		priv_raise();
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		priv_drop();
	}
	if (fd == -1)
		return NULL;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (st.st_uid != getuid() && st.st_uid != 0 && !shared(a, qdir)) ||
	    (st.st_mode & 007) != 0 || ((st.st_mode & 070) != 0 &&
	    st.st_gid != priv_install_group())) {
		close(fd);
		return NULL;
	}
	o = json_fd(fd);
	if (o != NULL && cache_match(o, a)) {
		*expires = json_integer_value(json_object_get(o, "expires"));
		tok = text_field(o, "access_token", 1);
	}
	json_decref(o);
	return tok;
}

/*
 * Keeps the token for the next run. A system account's token in a setgid
 * install is kept in the shared state (any run's, group and mode 0640),
 * and nowhere else: outside it, a file a user owns that user could read.
 */
static void
cache_write(const struct account *a, const char *qdir, const char *tok,
    time_t expires)
{
	char	 path[PATH_MAX], err[256], *text;
	json_t	*o;
	int	 group = shared(a, qdir);

	if (cache_path(a, qdir, path, sizeof(path)) == -1 || (a->system &&
	    priv_install_group() != (gid_t)-1 && !group))
		return;
	o = json_pack("{s:s, s:s, s:s?, s:s, s:I, s:s}", "account", a->name,
	    "token_url", a->oauth2_token_url, "client_id",
	    a->oauth2_client_id, "user", a->user, "expires",
	    (json_int_t)expires, "access_token", tok);
	if (o == NULL || (text = json_dumps(o, JSON_COMPACT)) == NULL) {
		json_decref(o);
		return;
	}
	json_decref(o);
	priv_raise();
	/* No fsync: a lost cache costs one token request, nothing more. */
	file_replace(path, text, group ? 0640 : 0600, group ? priv_install_group() :
	    (gid_t)-1, 0, err, sizeof(err));
	priv_drop();
	freezero(text, strlen(text));
}

/*
 * Saves a new refresh token in oauth2_refresh_token_file before the old
 * one is forgotten. Only root replaces a system account's file (a file
 * renamed there is its writer's): users' runs save a rotation in the
 * shared state instead (state_save). -1 with err.
 */
static int
refresh_save(const struct account *a, const char *tok, char *err,
    size_t errlen)
{
	struct stat	 st;
	size_t		 len = strlen(tok) + 2;
	char		*line;
	mode_t		 mode = 0600;
	gid_t		 gid = (gid_t)-1;
	int		 rv;

	if (a->system && getuid() != 0) {
		snprintf(err, errlen, "account %s is a system account: only "
		    "root writes %s", a->name, a->oauth2_refresh_token_file);
		return -1;
	}
	line = xcalloc(1, len);
	snprintf(line, len, "%s\n", tok);
	if (a->system)
		priv_raise();
	/*
	 * The new file keeps the old one's group and mode; a new system
	 * account's file in a setgid install is root:group 0640, for the
	 * other users' runs.
	 */
	if (stat(a->oauth2_refresh_token_file, &st) == 0) {
		gid = st.st_gid;
		mode = st.st_mode & 0640;
	} else if (a->system && priv_install_group() != (gid_t)-1) {
		gid = priv_install_group();
		mode = 0640;
	}
	rv = file_replace(a->oauth2_refresh_token_file, line, mode, gid, 1,
	    err, errlen);
	priv_drop();
	freezero(line, len);
	return rv;
}

/* The shared state's file of the account's rotated refresh token. */
static int
state_path(const struct account *a, const char *qdir, char *buf,
    size_t size)
{
	if (cache_path(a, qdir, buf, size) == -1)
		return -1;
	/* oauth2.NAME.token -> oauth2.NAME.refresh */
	buf[strlen(buf) - strlen("token")] = '\0';
	strlcat(buf, "refresh", size);
	return 0;
}

/* SHA-256 of a token, in hex: which file content a rotation replaced. */
static void
token_hash(const char *tok, char *hex, size_t size)
{
	unsigned char	md[EVP_MAX_MD_SIZE];
	unsigned int	n = 0;
	char		*h;

	hex[0] = '\0';
	if (EVP_Digest(tok, strlen(tok), md, &n, EVP_sha256(), NULL) != 1 ||
	    (h = OPENSSL_buf2hexstr(md, n)) == NULL)
		return;
	strlcpy(hex, h, size);
	OPENSSL_free(h);
}

/*
 * The rotated refresh token of a system account in the shared install,
 * when the state says it replaced base (what oauth2_refresh_token_file
 * holds now: after root's next login, the file is newer than any
 * rotation) for this endpoint and client. NULL when there is none.
 */
static char *
state_read(const struct account *a, const char *qdir, const char *base)
{
	char		 path[PATH_MAX], hex[80], *tok = NULL;
	const char	*of;
	json_t		*o;
	int		 fd;

	if (!shared(a, qdir) || state_path(a, qdir, path, sizeof(path)) == -1 ||
	    (fd = state_open(qdir, strrchr(path, '/') + 1)) == -1)
		return NULL;
	o = json_fd(fd);
	token_hash(base, hex, sizeof(hex));
	of = json_string_value(json_object_get(o, "of"));
	if (o != NULL && cache_match(o, a) && of != NULL && hex[0] != '\0' &&
	    strcmp(of, hex) == 0)
		tok = text_field(o, "refresh_token", 1);
	json_decref(o);
	return tok;
}

/*
 * Saves a rotated refresh token of a system account in the shared state,
 * durably, as a new file renamed over the last: of the group, mode 0640,
 * whoever's run received it. -1 with err.
 */
static int
state_save(const struct account *a, const char *qdir, const char *base,
    const char *tok, char *err, size_t errlen)
{
	char	 path[PATH_MAX], hex[80], *text;
	json_t	*o;
	int	 rv;

	if (state_path(a, qdir, path, sizeof(path)) == -1) {
		snprintf(err, errlen, "account %s: no state file name", a->name);
		return -1;
	}
	token_hash(base, hex, sizeof(hex));
	/* cache_match's fields, with expires 0: a refresh token has none. */
	o = json_pack("{s:s, s:s, s:s?, s:s, s:I, s:s, s:s}", "account",
	    a->name, "token_url", a->oauth2_token_url, "client_id",
	    a->oauth2_client_id, "user", a->user, "expires", (json_int_t)0,
	    "of", hex, "refresh_token", tok);
	if (o == NULL || (text = json_dumps(o, JSON_COMPACT)) == NULL) {
		json_decref(o);
		snprintf(err, errlen, "account %s: cannot encode the token",
		    a->name);
		return -1;
	}
	json_decref(o);
	priv_raise();
	rv = file_replace(path, text, 0640, priv_install_group(), 1, err, errlen);
	priv_drop();
	freezero(text, strlen(text));
	return rv;
}

/*
 * The endpoint rotated the refresh token: a system account's goes to the
 * shared state (any run's), anything else to oauth2_refresh_token_file.
 * A rotation that cannot be kept is said whatever -v says: the endpoint
 * may have revoked the old token, and then only a new login helps.
 */
static int
rotated(const struct account *a, const char *qdir, const char *base,
    const char *tok)
{
	char	why[512];
	int	rv;

	if (shared(a, qdir))
		rv = state_save(a, qdir, base, tok, why, sizeof(why));
	else
		rv = refresh_save(a, tok, why, sizeof(why));
	if (rv == -1)
		fprintf(stderr, "outbox: account %s: the rotated refresh token "
		    "was not saved (%s); if the next token request is refused, "
		    "run outbox --oauth2-login -a %s%s\n", a->name, why,
		    a->name, a->system ? " as root" : "");
	return rv;
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
	if (!force && (*token = cache_read(a, qdir, &expires)) != NULL) {
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
		rotated(a, qdir, c.base != NULL ? c.base : c.refresh,
		    r.refresh_token);
	if (rv == OAUTH2_OK) {
		expires = now + (r.expires_in > 0 ? r.expires_in : 3600);
		cache_write(a, qdir, r.access_token, expires);
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
	else if (refresh_save(a, r.refresh_token, err, errlen) == 0)
		rv = OAUTH2_OK;
	if (rv == OAUTH2_OK && r.access_token != NULL)
		cache_write(a, qdir, r.access_token, time(NULL) +
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
 * For root's --check: where a system account's rotated refresh tokens are
 * kept in a setgid install, and whether users' runs can keep them there.
 * 0 with nothing in buf when that does not apply.
 */
int
oauth2_state_describe(const struct account *a, const char *qdir,
    char *buf, size_t size)
{
	struct stat	st;

	buf[0] = '\0';
	if (!a->system || priv_install_group() == (gid_t)-1 || a->oauth2_grant ==
	    NULL || strcmp(a->oauth2_grant, "refresh_token") != 0 ||
	    qdir == NULL)
		return 0;
	if (shared(a, qdir)) {
		snprintf(buf, size, "rotated refresh tokens are kept in %s, "
		    "which only root and the group can change: any run can "
		    "keep one", qdir);
		return 0;
	}
	if (stat(qdir, &st) == -1)
		snprintf(buf, size, "rotated refresh tokens cannot be kept: "
		    "%s: %s", qdir, strerror(errno));
	else
		snprintf(buf, size, "rotated refresh tokens cannot be kept: "
		    "%s is uid %u, gid %u, mode %04o: make it root:outbox 2770",
		    qdir, (unsigned)st.st_uid, (unsigned)st.st_gid,
		    (unsigned)(st.st_mode & 07777));
	return -1;
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
	cached = (tok = cache_read(a, qdir, &expires)) != NULL &&
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
