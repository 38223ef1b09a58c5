/* SPDX-License-Identifier: ISC */
/*
 * OAuth2's token files: the access token cache beside the queue (per
 * user, or the shared install's for a system account), a rotated refresh
 * token saved durably (oauth2_refresh_token_file, or the shared state a
 * system account's users' runs keep it in), and --check's word on that
 * state. Every string read back from a file or an endpoint's JSON is
 * validated here (oauth2state_text). The layer under oauth2.c.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "outbox.h"
#include "oauth2.h"

#define TOKEN_MAX	16384	/* octets in a token (Microsoft's are ~3 KB) */
#define TEXT_MAX	300	/* error, description, URIs, codes */
#define TMP_AGE		3600	/* a temporary file older is litter (seconds) */

static void	 sweep_tmp(const char *);
static int	 file_replace(const char *, const char *, mode_t, gid_t, int,
		    char *, size_t);
static int	 shared(const struct account *, const char *);
static int	 state_open(const char *, const char *);
static int	 cache_path(const struct account *, const char *, char *,
		    size_t);
static int	 cache_match(json_t *, const struct account *);
static json_t	*json_fd(int);
static int	 state_path(const struct account *, const char *, char *,
		    size_t);
static void	 token_hash(const char *, char *, size_t);
static int	 state_save(const struct account *, const char *,
		    const char *, const char *, char *, size_t);

/*
 * A string field, validated: printable ASCII only (a token: no space
 * either), at most max octets. NULL when absent or invalid.
 */
char *
oauth2state_text(json_t *o, const char *name, int token)
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
char *
oauth2state_cache_read(const struct account *a, const char *qdir,
    time_t *expires)
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
		tok = oauth2state_text(o, "access_token", 1);
	}
	json_decref(o);
	return tok;
}

/*
 * Keeps the token for the next run. A system account's token in a setgid
 * install is kept in the shared state (any run's, group and mode 0640),
 * and nowhere else: outside it, a file a user owns that user could read.
 */
void
oauth2state_cache_write(const struct account *a, const char *qdir,
    const char *tok, time_t expires)
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
int
oauth2state_refresh_save(const struct account *a, const char *tok, char *err,
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
char *
oauth2state_refresh_read(const struct account *a, const char *qdir,
    const char *base)
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
		tok = oauth2state_text(o, "refresh_token", 1);
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
int
oauth2state_rotated(const struct account *a, const char *qdir, const char *base,
    const char *tok)
{
	char	why[512];
	int	rv;

	if (shared(a, qdir))
		rv = state_save(a, qdir, base, tok, why, sizeof(why));
	else
		rv = oauth2state_refresh_save(a, tok, why, sizeof(why));
	if (rv == -1)
		fprintf(stderr, "outbox: account %s: the rotated refresh token "
		    "was not saved (%s); if the next token request is refused, "
		    "run outbox --oauth2-login -a %s%s\n", a->name, why,
		    a->name, a->system ? " as root" : "");
	return rv;
}

/*
 * For root's --check: where a system account's rotated refresh tokens are
 * kept in a setgid install, and whether users' runs can keep them there.
 * 0 with nothing in buf when that does not apply.
 */
int
oauth2state_describe(const struct account *a, const char *qdir,
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

