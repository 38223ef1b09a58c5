/* SPDX-License-Identifier: ISC */
/*
 * The queue: what could not go now waits here, durable, and is retried.
 * An entry is two files in the queue directory: ID.msg, the spooled
 * message (never changed once linked in, owned by whoever submitted it),
 * and ID.env, its envelope and retry state (replaced atomically). An entry
 * exists once ID.env does. The lock (a claim) is flock(2) on ID.msg, which
 * is never renamed. Every file is opened relative to the directory's
 * descriptor, never through a symbolic link, and what is read back is
 * checked as hostile input (qenv_parse in qenv.c).
 *
 * Other names: ID.sub is a submission's envelope while it is tried at
 * once (not a live entry: nothing is synced; published as ID.env only
 * when the message must wait). A report (bounce, delay warning) is an
 * entry of its own, BID.msg + BID.env, with BID.orig, a hard link to its
 * message's ID.msg (kept whole for dead.letter should the report fail);
 * it is written as BID.rep, committed by a "report BID" line in its
 * message's envelope, then published (renamed BID.env). ID.bad is a
 * damaged envelope set aside after an hour, with a log line.
 */
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

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

#define RETRY_FIRST	300	/* 5 min, doubling ... */
#define RETRY_MAX	3600	/* ... up to an hour */

/* What q_perm gives a mode to. */
enum qkind { QK_ENV, QK_MSG, QK_DIR };

static int	 write_env(int, const struct qentry *, const char *, int,
		    char *, size_t);
static int	 copy_fd(int, int);
static int	 read_env(int, struct qentry *, const char *, char *, size_t);
static int	 q_open_(const char *, char *, size_t);
static int	 q_link(int, struct qentry *, char *, size_t);
static int	 q_add_(const char *, struct qentry *, int, char *, size_t);
static int	 q_update_(const char *, struct qentry *, char *, size_t);
static int	 q_report_(const char *, struct qentry *, struct qentry *,
		    char *, size_t);
static int	 q_finish_(const char *, struct qentry *, char *, size_t);
static void	 q_remove_(const char *, const char *);
static int	 q_load_(const char *, const char *, struct qentry *, int,
		    char *, size_t);
static int	 q_claim_(const char *, struct qentry *, char *, size_t);
static int	 q_list_(const char *, struct strlist *,
		    void (*)(int, const char *, time_t));
static void	 q_hold(struct qentry *);
static mode_t	 q_perm(int, enum qkind);

/*
 * The queue directory itself, never through a symbolic link in its last
 * component: -1 with err otherwise.
 */
int
queue_dir_open(const char *dir, char *err, size_t errlen)
{
	int	fd;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		snprintf(err, errlen, "queue_dir %s: %s", dir, errno == ELOOP ?
		    "a symbolic link; name the directory itself" :
		    strerror(errno));
	return fd;
}

/*
 * Whether the queue behind dfd is shared by every user's runs: the setgid
 * install, or a directory with the setgid bit (install-setgid makes the
 * spool 2770), which is how a root run that did not get the group (under
 * systemd's NoNewPrivileges=yes the setgid bit is ignored) still knows.
 */
int
queue_shared(int dfd)
{
	struct stat	st;

	return priv_install_group() != (gid_t)-1 ||
	    (fstat(dfd, &st) == 0 && (st.st_mode & S_ISGID) != 0);
}

/*
 * The mode of what the queue holds, set explicitly, never left to the
 * umask (tight in outbox, and not widened for a run without the group):
 * in a shared queue every owner's runs read the envelopes and messages
 * through the group, and any run may rewrite an envelope (rename): 0660,
 * directories 2770; a personal queue is its user's alone.
 */
static mode_t
q_perm(int dfd, enum qkind kind)
{
	int	shared = dfd == -1 ? priv_group() != (gid_t)-1 :
		    queue_shared(dfd);

	switch (kind) {
	case QK_ENV:
		return shared ? 0660 : 0600;
	case QK_MSG:
		/* Group write: a report's ID.orig is a hard link to it,
		 * made by whichever user's run settles the entry (the
		 * kernel's protected_hardlinks asks for read and write). */
		return shared ? 0660 : 0600;
	default:
		return shared ? 02770 : 0700;
	}
}

/* Whether id[0..len) is exactly what q_add_ makes: 12 upper hex digits. */
int
queue_id_valid(const char *id, size_t len)
{
	size_t	i;

	if (len != ID_LEN)
		return 0;
	for (i = 0; i < len; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		    (id[i] >= 'A' && id[i] <= 'F')))
			return 0;
	return 1;
}

/*
 * Creates the queue directory (and its parents) if need be, and checks
 * the directory: no symbolic link, not open to others, and in a setgid
 * install the group's.
 */
static int
q_open_(const char *dir, char *err, size_t errlen)
{
	char		 path[PATH_MAX], *p;
	struct stat	 st;
	int		 fd, made;

	if (strlcpy(path, dir, sizeof(path)) >= sizeof(path) || dir[0] != '/') {
		snprintf(err, errlen, "queue_dir %s: not an absolute path", dir);
		return -1;
	}
	for (p = path + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(path, 0755) == -1 && errno != EEXIST)
			break;
		*p = '/';
	}
	made = mkdir(dir, 0700) == 0;
	if (!made && errno != EEXIST) {
		snprintf(err, errlen, "cannot create queue_dir %s: %s", dir,
		    strerror(errno));
		return -1;
	}
	if ((fd = queue_dir_open(dir, err, errlen)) == -1)
		return -1;
	if (made)
		fchmod(fd, q_perm(-1, QK_DIR));
	if (fstat(fd, &st) == -1 || (st.st_mode & S_IWOTH) != 0 ||
	    (priv_group() != (gid_t)-1 && st.st_gid != priv_group()) ||
	    faccessat(fd, ".", W_OK | X_OK, AT_EACCESS) == -1) {
		snprintf(err, errlen, "queue_dir %s is not a directory we can "
		    "write to and others cannot (mode %03o)", dir,
		    (unsigned)(st.st_mode & 0777));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int
copy_fd(int from, int to)
{
	char	buf[65536];
	off_t	off = 0;
	ssize_t	n;

	while ((n = pread(from, buf, sizeof(buf), off)) > 0) {
		if (write(to, buf, n) != n)
			return -1;
		off += n;
	}
	return n == 0 ? 0 : -1;
}

/*
 * Writes the envelope to a temporary file and renames it into place as
 * ID.ext (env, sub or rep); with sync, file and directory are synced.
 */
static int
write_env(int dfd, const struct qentry *q, const char *ext, int sync,
    char *err, size_t errlen)
{
	char	 tmp[64], path[64], why[sizeof(q->lasterr)];
	FILE	*fp;
	size_t	 i;
	int	 fd;

	snprintf(tmp, sizeof(tmp), "tmp.%s.env", q->id);
	snprintf(path, sizeof(path), "%s.%s", q->id, ext);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd != -1)
		fchmod(fd, q_perm(dfd, QK_ENV));
	if (fd == -1 || (fp = fdopen(fd, "w")) == NULL) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	/* The error text came from a server: one line, printable. */
	strlcpy(why, q->lasterr, sizeof(why));
	for (i = 0; why[i] != '\0'; i++)
		if ((unsigned char)why[i] < 0x20 || why[i] == 0x7f)
			why[i] = '?';
	fprintf(fp, "outbox-queue 2\nowner %u\ncreated %lld\nnext %lld\n"
	    "attempts %d\naccount %s\nfile %s\nsender %s\nsize %lld\n"
	    "body %lld\nmaxline %zu\nflags %d %d %d %d %d %d\n",
	    (unsigned)q->owner, (long long)q->created, (long long)q->next,
	    q->attempts, q->account, q->account_file != NULL ?
	    q->account_file : "(unknown)", q->env.sender,
	    (long long)q->msg.size, (long long)q->msg.body, q->msg.max_line,
	    q->msg.eightbit != 0, q->msg.nul != 0, q->msg.multipart != 0,
	    q->msg.encoded != 0, q->msg.mime_version != 0, q->msg.blank != 0);
	if (q->env.notify != NULL)
		fprintf(fp, "notify %s\n", q->env.notify);
	if (q->env.ret != NULL)
		fprintf(fp, "ret %s\n", q->env.ret);
	if (q->env.envid != NULL)
		fprintf(fp, "envid %s\n", q->env.envid);
	if (q->env.requiretls)
		fprintf(fp, "requiretls 1\n");
	if (why[0] != '\0')
		fprintf(fp, "error %s\n", why);
	for (i = 0; i < q->env.nrcpt; i++)
		if (!q->env.rcpt[i].done)
			fprintf(fp, "rcpt %s\n", q->env.rcpt[i].addr);
	if (q->warned)
		fprintf(fp, "warned 1\n");
	if (q->orig[0] != '\0')
		fprintf(fp, "orig %s\n", q->orig);
	if (q->report[0] != '\0')
		fprintf(fp, "report %s\n", q->report);
	if (q->held)
		fprintf(fp, "held 1\n");
	if (fflush(fp) == EOF || (sync && fsync(fd) == -1)) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		fclose(fp);
		unlinkat(dfd, tmp, 0);
		return -1;
	}
	fclose(fp);
	if (renameat(dfd, tmp, dfd, path) == -1 || (sync && fsync(dfd) == -1)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlinkat(dfd, tmp, 0);
		return -1;
	}
	return 0;
}

/*
 * Links the spool file in as a new ID.msg (or copies it when it lives
 * elsewhere) under a fresh ID; q->id is set, q->msg.fd is the entry's.
 */
static int
q_link(int dfd, struct qentry *q, char *err, size_t errlen)
{
	char		 name[64], proc[64];
	struct timespec	 ts;
	int		 fd, tries;

	/*
	 * IDs sort by time: the second, then its 1/65536th, so entries
	 * queued one after another are in order even within a second. A
	 * clash (another process in the same tick) is tried again, later.
	 */
	for (tries = 0;; tries++) {
		clock_gettime(CLOCK_REALTIME, &ts);
		snprintf(q->id, sizeof(q->id), "%08llX%04X",
		    (unsigned long long)ts.tv_sec & 0xffffffffULL,
		    (unsigned)(((unsigned long long)ts.tv_nsec << 16) /
		    1000000000ULL));
		snprintf(name, sizeof(name), "%s.msg", q->id);
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", q->msg.fd);
		if (linkat(AT_FDCWD, proc, dfd, name, AT_SYMLINK_FOLLOW) == 0) {
			fchmod(q->msg.fd, q_perm(dfd, QK_MSG));
			return 0;
		}
		if (errno == EEXIST && tries < 100)
			continue;
		/* Not an O_TMPFILE in this file system: copy it. */
		fd = openat(dfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (fd == -1 && errno == EEXIST && tries < 100)
			continue;
		if (fd != -1)
			fchmod(fd, q_perm(dfd, QK_MSG));
		if (fd == -1 || copy_fd(q->msg.fd, fd) == -1) {
			snprintf(err, errlen, "%s: %s", name, strerror(errno));
			if (fd != -1) {
				close(fd);
				unlinkat(dfd, name, 0);
			}
			return -1;
		}
		close(q->msg.fd);
		q->msg.fd = fd;
		return 0;
	}
}

/*
 * Puts the message in the queue: the spool file is linked in, then the
 * envelope is written. With sync both are made durable (file, then
 * directory) before outbox may say 0. Without, the envelope is ID.sub,
 * not a live entry: nothing is synced, no run sends it, and queue_update
 * publishes it (synced) only if the message must wait; an abandoned one
 * is swept (qsweep_run). The entry stays claimed (locked) through
 * q->msg.fd.
 */
static int
q_add_(const char *dir, struct qentry *q, int sync, char *err,
    size_t errlen)
{
	char	name[64];
	int	dfd;

	if ((dfd = queue_dir_open(dir, err, errlen)) == -1)
		return -1;
	if (q_link(dfd, q, err, errlen) == -1) {
		close(dfd);
		return -1;
	}
	flock(q->msg.fd, LOCK_EX | LOCK_NB);
	err[0] = '\0';
	q->sub = !sync;
	if ((sync && fsync(q->msg.fd) == -1) ||
	    write_env(dfd, q, sync ? "env" : "sub", sync, err, errlen) == -1) {
		snprintf(name, sizeof(name), "%s.msg", q->id);
		if (err[0] == '\0')
			snprintf(err, errlen, "%s: %s", name, strerror(errno));
		unlinkat(dfd, name, 0);
		close(dfd);
		return -1;
	}
	close(dfd);
	return 0;
}

/* Sets the next attempt after one more failure: 5 min doubling to 1 h. */
void
queue_backoff(struct qentry *q, time_t now)
{
	time_t	delay = RETRY_FIRST;
	int	i;

	q->attempts++;
	for (i = 1; i < q->attempts && delay < RETRY_MAX; i++)
		delay *= 2;
	q->next = now + (delay < RETRY_MAX ? delay : RETRY_MAX);
}

/*
 * Writes the entry's new state, durably: the recipients still owed,
 * attempts, the last error; a submission's ID.sub is published so. With
 * nobody left to try, it is removed, without an fsync: queue_sync makes a
 * batch of removals durable.
 */
static int
q_update_(const char *dir, struct qentry *q, char *err, size_t errlen)
{
	char	name[64];
	size_t	i;
	int	dfd, rv;

	for (i = 0; i < q->env.nrcpt; i++)
		if (!q->env.rcpt[i].done)
			break;
	if (i == q->env.nrcpt) {
		q_remove_(dir, q->id);
		return 0;
	}
	if (fsync(q->msg.fd) == -1) {
		snprintf(err, errlen, "%s.msg: %s", q->id, strerror(errno));
		return -1;
	}
	if ((dfd = queue_dir_open(dir, err, errlen)) == -1)
		return -1;
	rv = write_env(dfd, q, "env", 1, err, errlen);
	if (rv == 0 && q->sub) {
		snprintf(name, sizeof(name), "%s.sub", q->id);
		unlinkat(dfd, name, 0);
		q->sub = 0;
	}
	close(dfd);
	return rv;
}

/* Makes ID.rep the live ID.env, durably. */
int
queue_publish(int dfd, const char *id, char *err, size_t errlen)
{
	char	rep[64], env[64];

	snprintf(rep, sizeof(rep), "%s.rep", id);
	snprintf(env, sizeof(env), "%s.env", id);
	if (renameat(dfd, rep, dfd, env) == -1 || fsync(dfd) == -1) {
		snprintf(err, errlen, "%s: %s", rep, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Queues b, a report about entry q, as an entry of its own: BID.msg,
 * BID.orig (q's message, whole), BID.rep, all synced; then q's envelope
 * is rewritten with what it still owes and "report BID" (the commit: a
 * crash after it publishes the report, before it forgets it); then the
 * report is published. A submission's q (ID.sub) has no live envelope to
 * commit in. b stays claimed. -1 with err: nothing of b is left.
 */
static int
q_report_(const char *dir, struct qentry *q, struct qentry *b, char *err,
    size_t errlen)
{
	char	name[64], orig[64];
	int	dfd;

	if ((dfd = queue_dir_open(dir, err, errlen)) == -1)
		return -1;
	if (q_link(dfd, b, err, errlen) == -1) {
		close(dfd);
		return -1;
	}
	flock(b->msg.fd, LOCK_EX | LOCK_NB);
	strlcpy(b->orig, q->id, sizeof(b->orig));
	snprintf(name, sizeof(name), "%s.msg", q->id);
	snprintf(orig, sizeof(orig), "%s.orig", b->id);
	err[0] = '\0';
	if (fsync(b->msg.fd) == -1 || (q->sub && fsync(q->msg.fd) == -1) ||
	    linkat(dfd, name, dfd, orig, 0) == -1)
		snprintf(err, errlen, "%s: %s", orig, strerror(errno));
	else if (write_env(dfd, b, "rep", 1, err, errlen) == 0) {
		if (!q->sub)
			strlcpy(q->report, b->id, sizeof(q->report));
		if ((q->sub || write_env(dfd, q, "env", 1, err, errlen) == 0) &&
		    queue_publish(dfd, b->id, err, errlen) == 0) {
			q->report[0] = '\0';
			close(dfd);
			return 0;
		}
	}
	if (err[0] == '\0')
		snprintf(err, errlen, "%s: %s", b->id, strerror(errno));
	/* Not committed: q owes what it owed, b never was. */
	if (q->report[0] != '\0') {
		q->report[0] = '\0';
		close(dfd);
		return -1;	/* committed: a run publishes it */
	}
	snprintf(name, sizeof(name), "%s.rep", b->id);
	unlinkat(dfd, name, 0);
	unlinkat(dfd, orig, 0);
	snprintf(name, sizeof(name), "%s.msg", b->id);
	unlinkat(dfd, name, 0);
	close(dfd);
	return -1;
}

/*
 * An entry loaded with a "report" line: the report is published if it is
 * still ID.rep, then the line goes, and the entry with it when it owes
 * nobody. 0 done, 1 busy, -1 with err.
 */
static int
q_finish_(const char *dir, struct qentry *q, char *err, size_t errlen)
{
	int	dfd, rv = 0;

	if (flock(q->msg.fd, LOCK_EX | LOCK_NB) == -1)
		return 1;
	if ((dfd = queue_dir_open(dir, err, errlen)) == -1) {
		flock(q->msg.fd, LOCK_UN);
		return -1;
	}
	if (queue_exists(dfd, q->report, "rep"))
		rv = queue_publish(dfd, q->report, err, errlen);
	if (rv == 0) {
		q->report[0] = '\0';
		if (q->env.nrcpt == 0)
			q_remove_(dir, q->id);
		else
			rv = write_env(dfd, q, "env", 1, err, errlen);
	}
	flock(q->msg.fd, LOCK_UN);
	close(dfd);
	return rv;
}

/* Whether ID.ext is there. */
int
queue_exists(int dfd, const char *id, const char *ext)
{
	struct stat	st;
	char		name[64];

	snprintf(name, sizeof(name), "%.*s.%.8s", ID_LEN, id, ext);
	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/*
 * Whether a process holds the entry's claim now (mailq: active): a FLOCK
 * on ID.msg's inode in /proc/locks, read without taking a lock, so that
 * mailq never makes a run find the entry busy.
 */
int
queue_active(struct qentry *q)
{
	struct stat		 st;
	FILE			*fp;
	char			 line[256], type[16];
	unsigned		 maj, min;
	unsigned long long	 ino;
	int			 held = 0;

	if (q->msg.fd == -1 || fstat(q->msg.fd, &st) == -1 ||
	    (fp = fopen("/proc/locks", "re")) == NULL)
		return 0;
	/* "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; a waiter's
	 * line has "->" where the type is. */
	while (!held && fgets(line, sizeof(line), fp) != NULL)
		held = sscanf(line, "%*s %15s %*s %*s %*d %x:%x:%llu", type,
		    &maj, &min, &ino) == 4 && strcmp(type, "FLOCK") == 0 &&
		    ino == (unsigned long long)st.st_ino &&
		    maj == major(st.st_dev) && min == minor(st.st_dev);
	fclose(fp);
	return held;
}

/* Removes an entry: the envelope first, so no half entry is ever seen. */
static void
q_remove_(const char *dir, const char *id)
{
	static const char *ext[] = { "env", "sub", "rep", "bad", "msg",
	    "orig" };
	char	name[64], err[256];
	size_t	i;
	int	dfd;

	if (!queue_id_valid(id, strlen(id)) ||
	    (dfd = queue_dir_open(dir, err, sizeof(err))) == -1)
		return;
	for (i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		snprintf(name, sizeof(name), "%s.%s", id, ext[i]);
		unlinkat(dfd, name, 0);
	}
	close(dfd);
}

/* Frees what an envelope loaded; the message descriptor stays. */
void
queue_env_clear(struct qentry *q)
{
	size_t	i;

	for (i = 0; i < q->env.nrcpt; i++)
		free(q->env.rcpt[i].addr);
	free(q->env.rcpt);
	free(q->env.sender);
	free((char *)(uintptr_t)q->env.notify);
	free((char *)(uintptr_t)q->env.ret);
	free((char *)(uintptr_t)q->env.envid);
	free(q->account);
	free(q->account_file);
	memset(&q->env, 0, sizeof(q->env));
	q->account = q->account_file = NULL;
}

/*
 * Reads ID.ext (env, or bad) next to the open ID.msg and checks it
 * against that file: its owner (a report's: its ID.orig's), its size. -1
 * with err (errno ENOENT when it is gone, EBADMSG when it is damaged).
 */
static int
read_env(int dfd, struct qentry *q, const char *ext, char *err,
    size_t errlen)
{
	char		 name[64], *buf;
	struct stat	 st, mst, ost;
	ssize_t		 n;
	size_t		 len = 0;
	int		 fd, rv = -1;

	snprintf(name, sizeof(name), "%s.%s", q->id, ext);
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1) {
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		errno = errno == ENOENT ? ENOENT : EBADMSG;
		return -1;
	}
	buf = xcalloc(1, ENV_MAX + 1);
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    fstat(q->msg.fd, &mst) == -1 || !S_ISREG(mst.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", name);
		goto out;
	}
	while (len <= ENV_MAX && (n = read(fd, buf + len, ENV_MAX + 1 - len))
	    > 0)
		len += n;
	if (len > ENV_MAX) {
		snprintf(err, errlen, "%s: larger than %d octets", name,
		    ENV_MAX);
		goto out;
	}
	q->env_ino = st.st_ino;
	q->env_mtime = st.st_mtim;
	if (qenv_parse(buf, len, q, err, errlen) == -1)
		goto out;
	if (q->orig[0] != '\0') {
		/* A report is written by whichever run settled its message;
		 * it belongs to that message's owner. */
		snprintf(name, sizeof(name), "%s.orig", q->id);
		if (fstatat(dfd, name, &ost, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISREG(ost.st_mode)) {
			snprintf(err, errlen, "%s: %s", name, strerror(errno));
			goto out;
		}
		mst.st_uid = ost.st_uid;
		snprintf(name, sizeof(name), "%s.env", q->id);
	}
	if (mst.st_uid != q->owner)
		snprintf(err, errlen, "%s: says owner %u, but %s.msg belongs "
		    "to uid %u", name, (unsigned)q->owner, q->id,
		    (unsigned)mst.st_uid);
	else if (mst.st_size != q->msg.size)
		snprintf(err, errlen, "%s: says size %lld, but %s.msg has "
		    "%lld octets", name, (long long)q->msg.size, q->id,
		    (long long)mst.st_size);
	else
		rv = 0;
out:
	if (rv == -1) {
		queue_env_clear(q);
		errno = EBADMSG;
	}
	free(buf);
	close(fd);
	return rv;
}

/* A claim on one's own entry delays only one's own mail: no hold. */
static void
q_hold(struct qentry *q)
{
	if (q->owner != getuid())
		qhold_take(&q->errheld);
}

/*
 * Loads an entry. With lock, claims it without waiting: 1 when another
 * process holds it. -1 with err when it is gone (errno ENOENT), damaged
 * (EBADMSG: reported, never sent; qsweep_set_aside after an hour), or set
 * aside as ID.bad (ENOTRECOVERABLE).
 */
static int
q_load_(const char *dir, const char *id, struct qentry *q, int lock,
    char *err, size_t errlen)
{
	char	name[64];
	int	dfd, rv = -1;

	memset(q, 0, sizeof(*q));
	q->msg.fd = -1;
	if (!queue_id_valid(id, strlen(id))) {
		snprintf(err, errlen, "%.32s is not a queue ID", id);
		errno = EINVAL;
		return -1;
	}
	strlcpy(q->id, id, sizeof(q->id));
	if ((dfd = queue_dir_open(dir, err, errlen)) == -1)
		return -1;
	snprintf(name, sizeof(name), "%s.msg", id);
	q->msg.fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (q->msg.fd == -1) {
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		errno = errno == ENOENT ? ENOENT : EBADMSG;
	} else if (lock && flock(q->msg.fd, LOCK_EX | LOCK_NB) == -1)
		rv = 1;
	else if ((rv = read_env(dfd, q, "env", err, errlen)) == -1 &&
	    errno == ENOENT && queue_exists(dfd, id, "bad")) {
		/* Set aside: shown, never sent. */
		char why[512];

		if (read_env(dfd, q, "bad", why, sizeof(why)) == 0) {
			queue_env_clear(q);
			strlcpy(why, "readable, but never sent", sizeof(why));
		}
		snprintf(err, errlen, "%s.bad: set aside: %s", id, why);
		errno = ENOTRECOVERABLE;
	} else if (rv == 0 && lock)
		q_hold(q);
	if (rv != 0 && q->msg.fd != -1) {
		close(q->msg.fd);
		q->msg.fd = -1;
	}
	close(dfd);
	return rv;
}

/*
 * Claims a loaded entry for one transaction: its lock, taken without
 * waiting, and the envelope on disk checked to be the one loaded (read
 * again when another run changed it). 0 claimed, 1 busy, -1 gone.
 */
static int
q_claim_(const char *dir, struct qentry *q, char *err, size_t errlen)
{
	struct stat	st;
	char		name[64];
	int		dfd, rv = -1;

	if (q->msg.fd == -1 || flock(q->msg.fd, LOCK_EX | LOCK_NB) == -1) {
		if (q->msg.fd != -1 && errno == EWOULDBLOCK)
			return 1;
		snprintf(err, errlen, "%s: cannot claim it", q->id);
		return -1;
	}
	if ((dfd = queue_dir_open(dir, err, errlen)) == -1) {
		flock(q->msg.fd, LOCK_UN);
		return -1;
	}
	snprintf(name, sizeof(name), "%s.env", q->id);
	if (fstat(q->msg.fd, &st) == -1 || st.st_nlink == 0 ||
	    fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		snprintf(err, errlen, "%s: delivered or removed meanwhile",
		    q->id);
	else if (st.st_ino == q->env_ino &&
	    st.st_mtim.tv_sec == q->env_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == q->env_mtime.tv_nsec)
		rv = 0;
	else {
		/* Another run settled it meanwhile: what is owed now. */
		queue_env_clear(q);
		rv = read_env(dfd, q, "env", err, errlen);
	}
	if (rv != 0)
		flock(q->msg.fd, LOCK_UN);
	else
		q_hold(q);
	close(dfd);
	return rv;
}

/* Drops an entry's claim; it stays loaded. */
void
queue_release(struct qentry *q)
{
	if (q->msg.fd != -1)
		flock(q->msg.fd, LOCK_UN);
	qhold_release(&q->errheld);
}

/* Releases an entry (and its lock). */
void
queue_free(struct qentry *q)
{
	if (q->msg.fd != -1)
		close(q->msg.fd);
	q->msg.fd = -1;
	qhold_release(&q->errheld);
	queue_env_clear(q);
}

static int
id_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Lists the entries, oldest first. Only names of the form q_add_ makes
 * count; every other name goes to other, when not NULL (qsweep_litter
 * removes what a crash left).
 */
static int
q_list_(const char *dir, struct strlist *ids,
    void (*other)(int, const char *, time_t))
{
	DIR		*d;
	struct dirent	*e;
	char		 id[ID_LEN + 1], err[256];
	size_t		 len;
	time_t		 now = time(NULL);
	int		 dfd, fd;

	if ((dfd = queue_dir_open(dir, err, sizeof(err))) == -1)
		return errno == ENOENT ? 0 : -1;
	if ((fd = dup(dfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		close(dfd);
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		len = strlen(e->d_name);
		if (len == ID_LEN + 4 && queue_id_valid(e->d_name, ID_LEN) &&
		    (strcmp(e->d_name + ID_LEN, ".env") == 0 ||
		    strcmp(e->d_name + ID_LEN, ".bad") == 0)) {
			snprintf(id, sizeof(id), "%.*s", ID_LEN, e->d_name);
			strlist_add(ids, id);
		} else if (other != NULL)
			other(dfd, e->d_name, now);
	}
	closedir(d);
	close(dfd);
	if (ids->n > 1)
		qsort(ids->v, ids->n, sizeof(*ids->v), id_cmp);
	return 0;
}

/*
 * The public entry points hold the setgid group (priv.c) while they touch
 * the queue directory, and only then.
 */
int
queue_open(const char *dir, char *err, size_t errlen)
{
	int	rv;

	priv_raise();
	rv = q_open_(dir, err, errlen);
	priv_drop();
	return rv;
}

int
queue_add(const char *dir, struct qentry *q, int sync, char *err,
    size_t errlen)
{
	int	rv;

	priv_raise();
	rv = q_add_(dir, q, sync, err, errlen);
	priv_drop();
	return rv;
}

int
queue_update(const char *dir, struct qentry *q, char *err, size_t errlen)
{
	int	rv;

	priv_raise();
	rv = q_update_(dir, q, err, errlen);
	priv_drop();
	return rv;
}

int
queue_report(const char *dir, struct qentry *q, struct qentry *b, char *err,
    size_t errlen)
{
	int	rv;

	priv_raise();
	rv = q_report_(dir, q, b, err, errlen);
	priv_drop();
	return rv;
}

int
queue_finish(const char *dir, struct qentry *q, char *err, size_t errlen)
{
	int	rv;

	priv_raise();
	rv = q_finish_(dir, q, err, errlen);
	priv_drop();
	return rv;
}

/* A report's message, whole (ID.orig), into *m: fd and size. */
int
queue_open_orig(const char *dir, const struct qentry *q, struct message *m)
{
	struct stat	st;
	char		name[64], err[256];
	int		dfd;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	priv_raise();
	if ((dfd = queue_dir_open(dir, err, sizeof(err))) != -1) {
		snprintf(name, sizeof(name), "%s.orig", q->id);
		m->fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
		    O_CLOEXEC);
		close(dfd);
	}
	priv_drop();
	if (m->fd == -1 || fstat(m->fd, &st) == -1) {
		if (m->fd != -1)
			close(m->fd);
		m->fd = -1;
		return -1;
	}
	m->size = st.st_size;
	return 0;
}

void
queue_remove(const char *dir, const char *id)
{
	priv_raise();
	q_remove_(dir, id);
	priv_drop();
}

/* Makes the directory durable: the removals since the last call. */
int
queue_sync(const char *dir)
{
	char	err[256];
	int	dfd, rv;

	priv_raise();
	if ((dfd = queue_dir_open(dir, err, sizeof(err))) == -1)
		rv = -1;
	else {
		rv = fsync(dfd);
		close(dfd);
	}
	priv_drop();
	return rv;
}

int
queue_load(const char *dir, const char *id, struct qentry *q, int lock,
    char *err, size_t errlen)
{
	int	rv, saved;

	priv_raise();
	rv = q_load_(dir, id, q, lock, err, errlen);
	saved = errno;
	priv_drop();
	errno = saved;
	return rv;
}

int
queue_claim(const char *dir, struct qentry *q, char *err, size_t errlen)
{
	int	rv;

	priv_raise();
	rv = q_claim_(dir, q, err, errlen);
	priv_drop();
	return rv;
}

int
queue_list(const char *dir, struct strlist *ids,
    void (*other)(int, const char *, time_t))
{
	int	rv, saved;

	priv_raise();
	rv = q_list_(dir, ids, other);
	saved = errno;
	priv_drop();
	errno = saved;
	return rv;
}
