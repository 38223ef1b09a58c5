/* SPDX-License-Identifier: ISC */
/*
 * Secret files (password_file, oauth2_client_secret_file,
 * oauth2_refresh_token_file, oauth2_key_file) read under password_file's
 * rules: private, the caller's or root's. An unreadable system secret
 * names its owner and mode and the fix, for the user whose run met it;
 * root's --check asks whether other users' runs can read one. The layer
 * under secret.c (AUTH's secret) and oauth2.c (a grant's credentials).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "outbox.h"

static int	read_line(int, char **);
static int	read_all(int, char **, size_t);
static void	owner_text(const struct stat *, char *, size_t);
static void	unreadable(const struct account *, const char *, int, char *,
		    size_t);

/* Reads the first line of a file into a new string; -1 when it is empty. */
static int
read_line(int fd, char **out)
{
	char	buf[LINE_MAX_SECRET];
	size_t	len = 0;
	ssize_t	n;

	while (len < sizeof(buf) - 1) {
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += n;
		if (memchr(buf, '\n', len) != NULL)
			break;
	}
	buf[len] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	*out = xstrdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return **out != '\0' ? 0 : -1;
}

/* Reads a whole (small) file into a new string. */
static int
read_all(int fd, char **out, size_t max)
{
	char	*buf = xcalloc(1, max + 1);
	size_t	 len = 0;
	ssize_t	 n;

	while (len < max) {
		n = read(fd, buf + len, max - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += n;
	}
	*out = buf;
	return len > 0 ? 0 : -1;
}

/* "owner:group 0640" of a file, by name where the names are known. */
static void
owner_text(const struct stat *st, char *buf, size_t size)
{
	struct passwd	*pw = getpwuid(st->st_uid);
	struct group	*gr = getgrgid(st->st_gid);
	char		 u[32], g[32];

	if (pw != NULL)
		strlcpy(u, pw->pw_name, sizeof(u));
	else
		snprintf(u, sizeof(u), "%u", (unsigned)st->st_uid);
	if (gr != NULL)
		strlcpy(g, gr->gr_name, sizeof(g));
	else
		snprintf(g, sizeof(g), "%u", (unsigned)st->st_gid);
	snprintf(buf, size, "%s:%s %04o", u, g,
	    (unsigned)(st->st_mode & 07777));
}

/*
 * Why a secret file could not be opened (errno e), with the fix: a system
 * account's file that this user's run cannot read says its owner and mode
 * and what the shared install needs.
 */
static void
unreadable(const struct account *a, const char *path, int e, char *err,
    size_t errlen)
{
	struct stat	 st;
	struct group	*gr;
	char		 own[96], grp[32];
	int		 rv;

	if ((e != EACCES && e != EPERM) || !a->system || getuid() == 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return;
	}
	priv_raise();
	rv = stat(path, &st);
	priv_drop();
	if (rv == -1)
		strlcpy(own, "not readable", sizeof(own));
	else {
		strlcpy(own, "is ", sizeof(own));
		owner_text(&st, own + 3, sizeof(own) - 3);
	}
	if (priv_group() == (gid_t)-1) {
		snprintf(err, errlen, "%s %s, which other users' runs cannot "
		    "read: install outbox setgid (make install-setgid) and "
		    "make it root:outbox 0640, or give this user an account "
		    "of their own", path, own);
		return;
	}
	if ((gr = getgrgid(priv_group())) != NULL)
		strlcpy(grp, gr->gr_name, sizeof(grp));
	else
		snprintf(grp, sizeof(grp), "%u", (unsigned)priv_group());
	snprintf(err, errlen, "%s %s, which other users' runs cannot read: "
	    "make it root:%s 0640 (chown root:%s %s; chmod 0640 %s)", path,
	    own, grp, grp, path, path);
}

/*
 * Reads a secret file (its first line, or all of it) under the rules of
 * password_file: private, the caller's or root's. The caller clears and
 * frees *out. -1 with err (errno ENOENT when it is missing).
 */
int
secretfile_read(const struct account *a, const char *path, int whole,
    char **out, char *err, size_t errlen)
{
	int	fd, rv, e;

	*out = NULL;
	if (a->system)
		priv_raise();
	fd = open(path, O_RDONLY | O_CLOEXEC);
	e = errno;
	priv_drop();
	if (fd == -1) {
		unreadable(a, path, e, err, errlen);
		errno = e;
		return -1;
	}
	if (config_private(fd, path, err, errlen) == -1) {
		close(fd);
		errno = EPERM;
		return -1;
	}
	rv = whole ? read_all(fd, out, 65536) : read_line(fd, out);
	close(fd);
	if (rv == -1)
		snprintf(err, errlen, "%s: %s", path, whole ? "empty" :
		    "nothing on its first line");
	errno = 0;
	return rv;
}


/*
 * For root's --check: whether other users' runs can read a system
 * account's secret file, path. Returns 1 when they can, 0 when not, with why
 * (its owner and mode, and the fix).
 */
int
secretfile_shared(const char *path, char *why, size_t size)
{
	struct stat	 st;
	struct group	*gr;
	char		 own[64], grp[32];
	gid_t		 g = priv_group();

	if (stat(path, &st) == -1) {
		snprintf(why, size, "%s: %s", path, strerror(errno));
		return 0;
	}
	owner_text(&st, own, sizeof(own));
	if (g == (gid_t)-1) {
		snprintf(why, size, "%s is %s: only root's runs can use it "
		    "(outbox is not installed setgid: other users' mail "
		    "through this account waits in their queues, unsent)",
		    path, own);
		return 0;
	}
	if ((gr = getgrgid(g)) != NULL)
		strlcpy(grp, gr->gr_name, sizeof(grp));
	else
		snprintf(grp, sizeof(grp), "%u", (unsigned)g);
	if (st.st_uid == 0 && st.st_gid == g && (st.st_mode & 040) != 0 &&
	    (st.st_mode & 007) == 0) {
		snprintf(why, size, "%s is %s: other users' runs can read it",
		    path, own);
		return 1;
	}
	snprintf(why, size, "%s is %s, which other users' runs cannot read: "
	    "make it root:%s 0640", path, own, grp);
	return 0;
}
