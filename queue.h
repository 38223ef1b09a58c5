/* SPDX-License-Identifier: ISC */
/*
 * The queue (queue.c, qhold.c, qsweep.c, qroom.c, qenv.c); struct qentry
 * is in outbox.h. Included by those and by who queues or runs entries:
 * sendmail.c, submit.c, deliver.c, runner.c, caller.c, limits.c,
 * smtplimits.c (qhold_*), the tests.
 */
#ifndef QUEUE_H
#define QUEUE_H

/* queue.c */
int	 queue_shared(int);
int	 queue_open(const char *, char *, size_t);
int	 queue_add(const char *, struct qentry *, int, char *, size_t);
int	 queue_update(const char *, struct qentry *, char *, size_t);
int	 queue_report(const char *, struct qentry *, struct qentry *, char *,
	    size_t);
int	 queue_finish(const char *, struct qentry *, char *, size_t);
int	 queue_active(struct qentry *);
int	 queue_open_orig(const char *, const struct qentry *,
	    struct message *);
void	 queue_backoff(struct qentry *, time_t);
void	 queue_remove(const char *, const char *);
int	 queue_load(const char *, const char *, struct qentry *, int, char *,
	    size_t);
void	 queue_free(struct qentry *);
int	 queue_list(const char *, struct strlist *,
	    void (*)(int, const char *, time_t));
int	 queue_claim(const char *, struct qentry *, char *, size_t);
void	 queue_release(struct qentry *);
int	 queue_sync(const char *);

/* qhold.c */
void	 qhold_take(int *);
void	 qhold_release(int *);
void	 qhold_forget(void);
void	 qhold_detach(int);

/* qsweep.c */
void	 qsweep_litter(int, const char *, time_t);
int	 qsweep_set_aside(const char *, const char *, char *, size_t);
void	 qsweep_run(const char *, struct strlist *);

/* qroom.c */
off_t	 qroom_env_size(const struct qentry *);
int	 qroom_check(const char *, const struct account *, uid_t, off_t, char *,
	    size_t);

/* qenv.c */
int	 qenv_parse(const char *, size_t, struct qentry *, char *, size_t);
const struct account *qenv_account(const struct config *,
	    const struct qentry *, char *, size_t);

#endif
