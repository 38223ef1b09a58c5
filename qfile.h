/* SPDX-License-Identifier: ISC */
/*
 * What the queue's own files share and no other module needs: the shape
 * of an entry's names and queue.c's directory helpers, for qsweep.c (what
 * crashes leave) and qroom.c (spool limits). Included only by queue.c and
 * them.
 */
#ifndef QFILE_H
#define QFILE_H

#define ENV_MAX		(RCPT_MAX * (ADDR_MAX + 8) + 3 * PATH_MAX)
#define ID_LEN		12	/* q_link: 8 hex digits of seconds, 4 of the 1/65536th */

/* queue.c */
int	 queue_dir_open(const char *, char *, size_t);
int	 queue_id_valid(const char *, size_t);
int	 queue_exists(int, const char *, const char *);
int	 queue_publish(int, const char *, char *, size_t);
void	 queue_env_clear(struct qentry *);

#endif
