/* SPDX-License-Identifier: ISC */
/*
 * Room in a shared (setgid) spool: whether a new queue entry fits the
 * file system's reserve and its owner's share (queue_min_free,
 * queue_min_free_inodes, queue_max_user_entries, queue_max_user_bytes).
 */
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "outbox.h"
#include "qfile.h"
#include "queue.h"

/* One user's share of a shared spool (q_share). */
struct share {
	long long	bytes;
	long long	entries;
};

static void	 q_share(int, uid_t, struct share *);
static int	 q_room_(const char *, const struct account *, uid_t, off_t,
		    char *, size_t);

/*
 * The octets an entry's envelope will take: its header lines, and a line
 * per address. A thousand long recipients weigh more than the message.
 */
off_t
qroom_env_size(const struct qentry *q)
{
	off_t	n = 1024 + PATH_MAX;
	size_t	i;

	if (q->env.sender != NULL)
		n += strlen(q->env.sender);
	for (i = 0; i < q->env.nrcpt; i++)
		n += strlen(q->env.rcpt[i].addr) + 6;
	return n;
}

/*
 * What owner has in the spool: entries (the ID.msg it owns) with their
 * messages, envelopes (whoever last wrote them) and reports in progress,
 * and the TLS session files it wrote.
 */
static void
q_share(int dfd, uid_t owner, struct share *sh)
{
	static const char *const ext[] = { "env", "sub", "rep" };
	struct stat	 st;
	struct dirent	*e;
	DIR		*d;
	char		 name[64];
	size_t		 len, i;
	int		 fd;

	memset(sh, 0, sizeof(*sh));
	if ((fd = dup(dfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		len = strlen(e->d_name);
		if (len == ID_LEN + 4 && queue_id_valid(e->d_name, ID_LEN) &&
		    strcmp(e->d_name + ID_LEN, ".msg") == 0) {
			if (fstatat(dfd, e->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) == -1 || st.st_uid != owner)
				continue;
			sh->entries++;
			sh->bytes += st.st_size;
			for (i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
				snprintf(name, sizeof(name), "%.*s.%s", ID_LEN,
				    e->d_name, ext[i]);
				if (fstatat(dfd, name, &st,
				    AT_SYMLINK_NOFOLLOW) == 0)
					sh->bytes += st.st_size;
			}
		} else if ((strncmp(e->d_name, "tls-", 4) == 0 ||
		    strncmp(e->d_name, "tmp.tls-", 8) == 0) &&
		    fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_uid == owner)
			sh->bytes += st.st_size;
	}
	closedir(d);
}

/*
 * Whether a new entry of size octets (message and envelope) fits a
 * shared (setgid) spool: the file system keeps queue_min_free octets and,
 * for users other than root, queue_min_free_inodes inodes (root's reserve,
 * so that a user who fills the spool's inodes stops no one but himself);
 * the owner stays within queue_max_user_entries and queue_max_user_bytes
 * (q_share). A personal queue fills only its user's disk. -1 with err: a
 * temporary refusal.
 */
static int
q_room_(const char *dir, const struct account *lim, uid_t owner, off_t size,
    char *err, size_t errlen)
{
	struct statvfs	 vfs;
	struct share	 sh;
	int		 dfd, rv = -1;

	if (priv_group() == (gid_t)-1)
		return 0;
	if ((dfd = queue_dir_open(dir, err, errlen)) == -1)
		return -1;
	if (fstatvfs(dfd, &vfs) == -1)
		memset(&vfs, 0, sizeof(vfs));
	if (lim->queue_min_free > 0 && vfs.f_frsize > 0 &&
	    (long long)vfs.f_bavail * (long long)vfs.f_frsize - size <
	    lim->queue_min_free) {
		snprintf(err, errlen, "the file system of %s is nearly full "
		    "(queue_min_free %lld octets); try again later", dir,
		    lim->queue_min_free);
		goto out;
	}
	/* An entry takes up to three inodes while it is written. */
	if (owner != 0 && lim->queue_min_free_inodes > 0 && vfs.f_files > 0 &&
	    (long long)vfs.f_favail - 3 < lim->queue_min_free_inodes) {
		snprintf(err, errlen, "the file system of %s has few inodes "
		    "left (queue_min_free_inodes %lld); try again later", dir,
		    lim->queue_min_free_inodes);
		goto out;
	}
	q_share(dfd, owner, &sh);
	if (lim->queue_max_user_entries > 0 &&
	    sh.entries + 1 > lim->queue_max_user_entries)
		snprintf(err, errlen, "you have %lld entries waiting in %s, "
		    "as many as queue_max_user_entries allows; try again when "
		    "the queue has drained (mailq)", sh.entries, dir);
	else if (lim->queue_max_user_bytes > 0 &&
	    sh.bytes + size > lim->queue_max_user_bytes)
		snprintf(err, errlen, "your mail waiting in %s would pass "
		    "queue_max_user_bytes (%lld octets: messages, envelopes "
		    "and TLS session files); try again when the queue has "
		    "drained (mailq)", dir, lim->queue_max_user_bytes);
	else
		rv = 0;
out:
	close(dfd);
	return rv;
}

int
qroom_check(const char *dir, const struct account *lim, uid_t owner,
    off_t size, char *err, size_t errlen)
{
	int	rv;

	priv_raise();
	rv = q_room_(dir, lim, owner, size, err, errlen);
	priv_drop();
	return rv;
}
