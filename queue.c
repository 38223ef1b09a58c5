/*
 * The queue: what could not go now waits here, durable, and is retried.
 * An entry is two files in the queue directory: ID.msg, the spooled
 * message (never changed once linked in), and ID.env, its envelope and
 * retry state (replaced atomically). An entry exists once ID.env does.
 * The lock is flock(2) on ID.msg, which is never renamed.
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

#define STALE		3600	/* seconds before a stray file is litter */
#define RETRY_FIRST	300	/* 5 min, doubling ... */
#define RETRY_MAX	3600	/* ... up to an hour */

static int	 write_env(const char *, const struct qentry *, int, char *,
		    size_t);
static int	 fsync_dir(const char *);
static int	 copy_fd(int, int);
static int	 q_open_(const char *, char *, size_t);
static int	 q_add_(const char *, struct qentry *, int, char *, size_t);
static int	 q_update_(const char *, const struct qentry *, char *, size_t);
static void	 q_remove_(const char *, const char *);
static int	 q_load_(const char *, const char *, struct qentry *, int,
		    char *, size_t);
static int	 q_list_(const char *, struct strlist *);

/* Creates the queue directory (and its parents) if need be. */
static int
q_open_(const char *dir, char *err, size_t errlen)
{
	char		 path[PATH_MAX], *p;
	struct stat	 st;

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
	if (mkdir(dir, 0770) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create queue_dir %s: %s", dir,
		    strerror(errno));
		return -1;
	}
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode) ||
	    faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) == -1) {
		snprintf(err, errlen, "queue_dir %s is not a directory we can "
		    "write to", dir);
		return -1;
	}
	return 0;
}

static int
fsync_dir(const char *dir)
{
	int	fd, rv;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rv = fsync(fd);
	close(fd);
	return rv;
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

/* Writes the envelope to a temporary file and renames it into place. */
static int
write_env(const char *dir, const struct qentry *q, int sync, char *err,
    size_t errlen)
{
	char	 tmp[PATH_MAX], path[PATH_MAX];
	FILE	*fp;
	size_t	 i;
	int	 fd;

	snprintf(tmp, sizeof(tmp), "%s/tmp.%s.env", dir, q->id);
	snprintf(path, sizeof(path), "%s/%s.env", dir, q->id);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
	    0660);
	if (fd == -1 || (fp = fdopen(fd, "w")) == NULL) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	fprintf(fp, "outbox-queue 1\nowner %u\ncreated %lld\nnext %lld\n"
	    "attempts %d\naccount %s\nsender %s\nsize %lld\nbody %lld\n"
	    "maxline %zu\nflags %d %d %d %d %d %d\n", (unsigned)q->owner,
	    (long long)q->created,
	    (long long)q->next, q->attempts, q->account, q->env.sender,
	    (long long)q->msg.size, (long long)q->msg.body, q->msg.max_line,
	    q->msg.eightbit, q->msg.nul, q->msg.multipart, q->msg.encoded,
	    q->msg.mime_version, q->msg.blank);
	if (q->env.notify != NULL)
		fprintf(fp, "notify %s\n", q->env.notify);
	if (q->env.ret != NULL)
		fprintf(fp, "ret %s\n", q->env.ret);
	if (q->env.envid != NULL)
		fprintf(fp, "envid %s\n", q->env.envid);
	if (q->lasterr[0] != '\0')
		fprintf(fp, "error %s\n", q->lasterr);
	for (i = 0; i < q->env.nrcpt; i++)
		if (!q->env.rcpt[i].done)
			fprintf(fp, "rcpt %s\n", q->env.rcpt[i].addr);
	if (fflush(fp) == EOF || (sync && fsync(fd) == -1)) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		fclose(fp);
		unlink(tmp);
		return -1;
	}
	fclose(fp);
	if (rename(tmp, path) == -1 || (sync && fsync_dir(dir) == -1)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/*
 * Puts the message in the queue: the spool file is linked in (or copied
 * when it lives elsewhere), then the envelope is written. With sync both
 * are made durable (file, then directory) before outbox may say 0; without,
 * the entry only survives the process (kill -9), not the machine. q->id is
 * set; the entry stays locked through q->msg.fd.
 */
static int
q_add_(const char *dir, struct qentry *q, int sync, char *err,
    size_t errlen)
{
	char		 path[PATH_MAX], proc[64];
	unsigned char	 rnd[2];
	int		 fd, tries;

	/* IDs sort by time; a clash with another one is tried again. */
	for (tries = 0;; tries++) {
		arc4random_buf(rnd, sizeof(rnd));
		snprintf(q->id, sizeof(q->id), "%08llX%02X%02X",
		    (unsigned long long)time(NULL) & 0xffffffffULL, rnd[0],
		    rnd[1]);
		snprintf(path, sizeof(path), "%s/%s.msg", dir, q->id);
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", q->msg.fd);
		if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW)
		    == 0)
			break;
		if (errno == EEXIST && tries < 100)
			continue;
		/* Not an O_TMPFILE in this file system: copy it. */
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0660);
		if (fd == -1 && errno == EEXIST && tries < 100)
			continue;
		if (fd == -1 || copy_fd(q->msg.fd, fd) == -1) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			if (fd != -1) {
				close(fd);
				unlink(path);
			}
			return -1;
		}
		close(q->msg.fd);
		q->msg.fd = fd;
		break;
	}
	flock(q->msg.fd, LOCK_EX | LOCK_NB);
	err[0] = '\0';
	if ((sync && fsync(q->msg.fd) == -1) ||
	    write_env(dir, q, sync, err, errlen) == -1) {
		if (err[0] == '\0')
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(path);
		return -1;
	}
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
 * attempts, the last error. With nobody left to try, it is removed.
 */
static int
q_update_(const char *dir, const struct qentry *q, char *err,
    size_t errlen)
{
	size_t	i;

	for (i = 0; i < q->env.nrcpt; i++)
		if (!q->env.rcpt[i].done) {
			if (fsync(q->msg.fd) == -1) {
				snprintf(err, errlen, "%s.msg: %s", q->id,
				    strerror(errno));
				return -1;
			}
			return write_env(dir, q, 1, err, errlen);
		}
	q_remove_(dir, q->id);
	return 0;
}

/* Removes an entry: the envelope first, so no half entry is ever seen. */
static void
q_remove_(const char *dir, const char *id)
{
	char	path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s.env", dir, id);
	unlink(path);
	snprintf(path, sizeof(path), "%s/%s.msg", dir, id);
	unlink(path);
	fsync_dir(dir);
}

/*
 * Loads an entry. With lock, takes its lock without waiting: 1 when
 * another process holds it. -1 with err when it is gone or damaged.
 */
static int
q_load_(const char *dir, const char *id, struct qentry *q, int lock,
    char *err, size_t errlen)
{
	char		 path[PATH_MAX], *line = NULL, *v;
	size_t		 cap = 0;
	FILE		*fp;
	struct stat	 st;
	long long	 n;
	int		 rv = -1;

	memset(q, 0, sizeof(*q));
	q->msg.fd = -1;
	strlcpy(q->id, id, sizeof(q->id));
	snprintf(path, sizeof(path), "%s/%s.msg", dir, id);
	if ((q->msg.fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (lock && flock(q->msg.fd, LOCK_EX | LOCK_NB) == -1) {
		close(q->msg.fd);
		q->msg.fd = -1;
		return 1;
	}
	snprintf(path, sizeof(path), "%s/%s.env", dir, id);
	if ((fp = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(fileno(fp), &st) == 0)
		q->owner = st.st_uid;
	while (getline(&line, &cap, fp) != -1) {
		line[strcspn(line, "\n")] = '\0';
		if ((v = strchr(line, ' ')) == NULL)
			continue;
		*v++ = '\0';
		n = strtoll(v, NULL, 10);
		if (strcmp(line, "owner") == 0)
			q->owner = (uid_t)n;
		else if (strcmp(line, "created") == 0)
			q->created = n;
		else if (strcmp(line, "next") == 0)
			q->next = n;
		else if (strcmp(line, "attempts") == 0)
			q->attempts = (int)n;
		else if (strcmp(line, "account") == 0)
			q->account = xstrdup(v);
		else if (strcmp(line, "sender") == 0)
			q->env.sender = xstrdup(v);
		else if (strcmp(line, "size") == 0)
			q->msg.size = n;
		else if (strcmp(line, "body") == 0)
			q->msg.body = n;
		else if (strcmp(line, "maxline") == 0)
			q->msg.max_line = n;
		else if (strcmp(line, "flags") == 0)
			sscanf(v, "%d %d %d %d %d %d", &q->msg.eightbit,
			    &q->msg.nul, &q->msg.multipart, &q->msg.encoded,
			    &q->msg.mime_version, &q->msg.blank);
		else if (strcmp(line, "notify") == 0)
			q->env.notify = xstrdup(v);
		else if (strcmp(line, "ret") == 0)
			q->env.ret = xstrdup(v);
		else if (strcmp(line, "envid") == 0)
			q->env.envid = xstrdup(v);
		else if (strcmp(line, "error") == 0)
			strlcpy(q->lasterr, v, sizeof(q->lasterr));
		else if (strcmp(line, "rcpt") == 0) {
			q->env.rcpt = xreallocarray(q->env.rcpt,
			    q->env.nrcpt + 1, sizeof(*q->env.rcpt));
			memset(&q->env.rcpt[q->env.nrcpt], 0,
			    sizeof(*q->env.rcpt));
			q->env.rcpt[q->env.nrcpt].addr = xstrdup(v);
			q->env.rcpt[q->env.nrcpt++].st = ST_TEMP;
		}
	}
	free(line);
	fclose(fp);
	if (q->env.sender == NULL || q->account == NULL || q->env.nrcpt == 0) {
		snprintf(err, errlen, "%s: damaged envelope", path);
		goto fail;
	}
	rv = 0;
	return rv;
fail:
	queue_free(q);
	return rv;
}

/* Releases an entry (and its lock). */
void
queue_free(struct qentry *q)
{
	size_t	i;

	if (q->msg.fd != -1)
		close(q->msg.fd);
	q->msg.fd = -1;
	for (i = 0; i < q->env.nrcpt; i++)
		free(q->env.rcpt[i].addr);
	free(q->env.rcpt);
	free(q->env.sender);
	free((char *)(uintptr_t)q->env.notify);
	free((char *)(uintptr_t)q->env.ret);
	free((char *)(uintptr_t)q->env.envid);
	free(q->account);
	memset(&q->env, 0, sizeof(q->env));
	q->account = NULL;
}

static int
id_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Lists the entries, oldest first, and removes litter a crash can leave:
 * temporary envelopes and messages without an envelope, after an hour.
 */
static int
q_list_(const char *dir, struct strlist *ids)
{
	DIR		*d;
	struct dirent	*e;
	struct stat	 st;
	char		 path[PATH_MAX], id[64];
	size_t		 len;
	time_t		 now = time(NULL);

	if ((d = opendir(dir)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((e = readdir(d)) != NULL) {
		len = strlen(e->d_name);
		if (len < 5 || len >= sizeof(id))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (strcmp(e->d_name + len - 4, ".env") == 0 &&
		    strncmp(e->d_name, "tmp.", 4) != 0) {
			snprintf(id, sizeof(id), "%.*s", (int)len - 4,
			    e->d_name);
			strlist_add(ids, id);
			continue;
		}
		if (lstat(path, &st) == -1 || now - st.st_mtime < STALE)
			continue;
		if (strncmp(e->d_name, "tmp.", 4) == 0)
			unlink(path);
		else if (strcmp(e->d_name + len - 4, ".msg") == 0) {
			snprintf(path, sizeof(path), "%s/%.*s.env", dir,
			    (int)len - 4, e->d_name);
			if (access(path, F_OK) == -1 && errno == ENOENT) {
				snprintf(path, sizeof(path), "%s/%s", dir,
				    e->d_name);
				unlink(path);
			}
		}
	}
	closedir(d);
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
queue_update(const char *dir, const struct qentry *q, char *err,
    size_t errlen)
{
	int	rv;

	priv_raise();
	rv = q_update_(dir, q, err, errlen);
	priv_drop();
	return rv;
}

void
queue_remove(const char *dir, const char *id)
{
	priv_raise();
	q_remove_(dir, id);
	priv_drop();
}

int
queue_load(const char *dir, const char *id, struct qentry *q, int lock,
    char *err, size_t errlen)
{
	int	rv;

	priv_raise();
	rv = q_load_(dir, id, q, lock, err, errlen);
	priv_drop();
	return rv;
}

int
queue_list(const char *dir, struct strlist *ids)
{
	int	rv;

	priv_raise();
	rv = q_list_(dir, ids);
	priv_drop();
	return rv;
}

/*
 * Claims a loaded entry for one transaction: its lock, taken without
 * waiting, and the envelope still there. 0 claimed, 1 busy (another
 * process has it), -1 gone.
 */
int
queue_claim(const char *dir, struct qentry *q, char *err, size_t errlen)
{
	char	path[PATH_MAX];
	int	rv = 0;

	if (flock(q->msg.fd, LOCK_EX | LOCK_NB) == -1)
		return 1;
	snprintf(path, sizeof(path), "%s/%s.env", dir, q->id);
	priv_raise();
	if (access(path, F_OK) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		rv = -1;
	}
	priv_drop();
	return rv;
}

/* Gives a claim up; the entry stays loaded. */
void
queue_release(struct qentry *q)
{
	if (q->msg.fd != -1)
		flock(q->msg.fd, LOCK_UN);
}

/* Makes what a run removed and renamed in the directory durable. */
int
queue_sync(const char *dir)
{
	int	rv;

	priv_raise();
	rv = fsync_dir(dir);
	priv_drop();
	return rv;
}
