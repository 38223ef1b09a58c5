/* SPDX-License-Identifier: ISC */
/*
 * What crashes leave in the queue directory (queue.c has the names):
 * abandoned submissions (ID.sub) and reports never published (BID.rep)
 * finished or removed by the sweep, litter removed while listing
 * (qsweep_litter, which the runner hands to queue_list), and
 * damaged envelopes set aside as ID.bad after an hour.
 */
#include <sys/file.h>
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

#include "outbox.h"
#include "qfile.h"
#include "queue.h"

#define STALE		3600	/* seconds before a stray file is litter */
#define SUB_STALE	600	/* an abandoned submission (ID.sub) */

static int	 q_set_aside_(const char *, const char *, char *, size_t);
static int	 peek_env(int, const char *, struct qentry *, char *, size_t);
static void	 sweep_sub(int, const char *, time_t, struct strlist *);
static void	 sweep_rep(int, const char *, struct strlist *);
static void	 q_sweep_(const char *, struct strlist *);

/*
 * Renames a damaged ID.env, untouched for an hour, to ID.bad: no run
 * tries it again, mailq still shows it. 0 set aside, 1 too young.
 */
static int
q_set_aside_(const char *dir, const char *id, char *err, size_t errlen)
{
	struct stat	st;
	char		env[64], bad[64];
	int		dfd, rv = 1;

	if (!queue_id_valid(id, strlen(id)) ||
	    (dfd = queue_dir_open(dir, err, errlen)) == -1)
		return -1;
	snprintf(env, sizeof(env), "%s.env", id);
	snprintf(bad, sizeof(bad), "%s.bad", id);
	if (fstatat(dfd, env, &st, AT_SYMLINK_NOFOLLOW) == -1)
		rv = -1;
	else if (time(NULL) - st.st_mtime >= STALE)
		rv = renameat(dfd, env, dfd, bad) == 0 ? 0 : -1;
	if (rv == -1)
		snprintf(err, errlen, "%s: %s", env, strerror(errno));
	close(dfd);
	return rv;
}

/* Parses ID.ext into q, without the checks against ID.msg. */
static int
peek_env(int dfd, const char *name, struct qentry *q, char *err,
    size_t errlen)
{
	char	*buf;
	ssize_t	 n;
	size_t	 len = 0;
	int	 fd, rv = -1;

	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1) {
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		return -1;
	}
	buf = xcalloc(1, ENV_MAX + 1);
	while (len <= ENV_MAX && (n = read(fd, buf + len, ENV_MAX + 1 - len))
	    > 0)
		len += n;
	if (len <= ENV_MAX)
		rv = qenv_parse(buf, len, q, err, errlen);
	else
		snprintf(err, errlen, "%s: too large", name);
	free(buf);
	close(fd);
	return rv;
}

/*
 * A submission's ID.sub: once its ID.env is there it is a leftover; else,
 * when nobody holds the entry after SUB_STALE, the submission died before
 * it said 0 to anyone: both files go, with a line in said.
 */
static void
sweep_sub(int dfd, const char *id, time_t now, struct strlist *said)
{
	struct stat	st;
	char		sub[64], msg[64], line[256];
	int		fd;

	snprintf(sub, sizeof(sub), "%s.sub", id);
	snprintf(msg, sizeof(msg), "%s.msg", id);
	if (queue_exists(dfd, id, "env")) {
		unlinkat(dfd, sub, 0);
		return;
	}
	if (fstatat(dfd, sub, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    now - st.st_mtime < SUB_STALE)
		return;
	fd = openat(dfd, msg, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd != -1 && flock(fd, LOCK_EX | LOCK_NB) == -1) {
		close(fd);
		return;		/* still being tried */
	}
	unlinkat(dfd, sub, 0);
	unlinkat(dfd, msg, 0);
	if (fd != -1)
		close(fd);
	snprintf(line, sizeof(line), "%s: removed an abandoned submission "
	    "(%s, %lld s old): it never returned 0, so its sender kept the "
	    "message", id, sub, (long long)(now - st.st_mtime));
	strlist_add(said, line);
}

/*
 * A report still named BID.rep, nobody writing it: published when its
 * message's envelope committed it, else removed (its message still owes
 * the report, or its submission never returned).
 */
static void
sweep_rep(int dfd, const char *id, struct strlist *said)
{
	struct qentry	b, q;
	char		name[64], err[256], line[512];
	int		fd, committed = 0;

	snprintf(name, sizeof(name), "%s.msg", id);
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd != -1 && flock(fd, LOCK_EX | LOCK_NB) == -1) {
		close(fd);
		return;		/* being written */
	}
	memset(&b, 0, sizeof(b));
	memset(&q, 0, sizeof(q));
	snprintf(name, sizeof(name), "%s.rep", id);
	if (peek_env(dfd, name, &b, err, sizeof(err)) == 0 &&
	    b.orig[0] != '\0') {
		snprintf(name, sizeof(name), "%s.env", b.orig);
		committed = peek_env(dfd, name, &q, err, sizeof(err)) == 0 &&
		    strcmp(q.report, id) == 0;
	}
	if (committed && queue_publish(dfd, id, err, sizeof(err)) == 0)
		snprintf(line, sizeof(line), "%s: report on %s published after "
		    "an interruption", id, b.orig);
	else {
		snprintf(name, sizeof(name), "%s.rep", id);
		unlinkat(dfd, name, 0);
		snprintf(name, sizeof(name), "%s.orig", id);
		unlinkat(dfd, name, 0);
		snprintf(name, sizeof(name), "%s.msg", id);
		unlinkat(dfd, name, 0);
		snprintf(line, sizeof(line), "%s: removed a report never "
		    "committed (its message still owes it)", id);
	}
	strlist_add(said, line);
	if (fd != -1)
		close(fd);
	queue_env_clear(&b);
	queue_env_clear(&q);
}

/*
 * Finishes what an interrupted process left: abandoned submissions and
 * reports not yet published (see above). One line per action in said,
 * for the log.
 */
static void
q_sweep_(const char *dir, struct strlist *said)
{
	DIR		*d;
	struct dirent	*e;
	struct strlist	 subs = { NULL, 0 }, reps = { NULL, 0 };
	char		 id[ID_LEN + 1], err[256];
	size_t		 len, i;
	time_t		 now = time(NULL);
	int		 dfd, fd;

	if ((dfd = queue_dir_open(dir, err, sizeof(err))) == -1)
		return;
	if ((fd = dup(dfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		close(dfd);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		len = strlen(e->d_name);
		if (len != ID_LEN + 4 || !queue_id_valid(e->d_name, ID_LEN))
			continue;
		snprintf(id, sizeof(id), "%.*s", ID_LEN, e->d_name);
		if (strcmp(e->d_name + ID_LEN, ".sub") == 0)
			strlist_add(&subs, id);
		else if (strcmp(e->d_name + ID_LEN, ".rep") == 0)
			strlist_add(&reps, id);
	}
	closedir(d);
	for (i = 0; i < subs.n; i++)
		sweep_sub(dfd, subs.v[i], now, said);
	for (i = 0; i < reps.n; i++)
		sweep_rep(dfd, reps.v[i], said);
	strlist_free(&subs);
	strlist_free(&reps);
	close(dfd);
}

/*
 * Removes name when it is litter a crash left over an hour ago, or a TLS
 * session file (or its temporary) too old to be offered (tls.c).
 */
void
qsweep_litter(int dfd, const char *name, time_t now)
{
	struct stat	st;
	char		env[64];
	size_t		len = strlen(name);

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    now - st.st_mtime < STALE)
		return;
	if (len == 4 + ID_LEN + 4 && strncmp(name, "tmp.", 4) == 0 &&
	    queue_id_valid(name + 4, ID_LEN) &&
	    strcmp(name + len - 4, ".env") == 0)
		unlinkat(dfd, name, 0);
	else if (S_ISREG(st.st_mode) && (strncmp(name, "tls-", 4) == 0 ||
	    strncmp(name, "tmp.tls-", 8) == 0))
		unlinkat(dfd, name, 0);	/* a session too old to offer */
	else if (len >= ID_LEN + 4 && queue_id_valid(name, ID_LEN) &&
	    (strcmp(name + ID_LEN, ".msg") == 0 ||
	    strcmp(name + ID_LEN, ".orig") == 0)) {
		/* A message nothing names (the sweep takes .sub and .rep). */
		snprintf(env, sizeof(env), "%.*s", ID_LEN, name);
		if (!queue_exists(dfd, env, "env") &&
		    !queue_exists(dfd, env, "sub") &&
		    !queue_exists(dfd, env, "rep") &&
		    !queue_exists(dfd, env, "bad") && errno == ENOENT)
			unlinkat(dfd, name, 0);
	}
}

int
qsweep_set_aside(const char *dir, const char *id, char *err, size_t errlen)
{
	int	rv;

	priv_raise();
	rv = q_set_aside_(dir, id, err, errlen);
	priv_drop();
	return rv;
}

void
qsweep_run(const char *dir, struct strlist *said)
{
	priv_raise();
	q_sweep_(dir, said);
	priv_drop();
}
