/* SPDX-License-Identifier: ISC */
/*
 * One new message from its caller (sendmail.c, smtpd.c): checked against
 * the spool's room, queued (durably for -odq and -odb, unpublished while
 * it is tried now), tried within submit_timeout (caller.c), settled as
 * deliver.c settles a queue run's entries, and the live session handed
 * to a detached flush of the due entries (caller.c, runner.c).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "outbox.h"
#include "io.h"
#include "queue.h"
#include "smtp.h"

static void	background(struct run *, const struct account *,
		    struct qentry *);
static void	outcome(const struct session *, const struct envelope *,
		    enum status, struct failure *);
static void	queue_failed(struct failure *, const char *);
static void	submit_queued(struct run *, const struct account *,
		    struct qentry *, int, struct failure *);
static void	submit_settle(struct run *, struct session *,
		    const struct account *, struct qentry *, int,
		    struct failure *);
static void	maildomain_warn(const struct run *, const struct account *,
		    const struct envelope *);

/*
 * -odb: the caller goes on at once; a detached child delivers the entry,
 * still locked. If there is no child, the entry waits in the queue.
 */
static void
background(struct run *r, const struct account *a, struct qentry *q)
{
	struct session	 s;
	int		 fd;

	if (fork() != 0)
		return;		/* the caller, or fork failed */
	setsid();
	signal(SIGHUP, SIG_IGN);
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
	}
	memset(&s, 0, sizeof(s));
	s.io.fd = -1;
	deliver_entry(r, &s, a, q);
	smtp_close(&s);
	_exit(0);
}

/*
 * A submission's outcome as one failure: none when every recipient got
 * it or waits safely; the message's own refusal; else a refused
 * recipient (67).
 */
static void
outcome(const struct session *s, const struct envelope *env, enum status st,
    struct failure *f)
{
	size_t	i;

	memset(f, 0, sizeof(*f));
	if (st == ST_PERM && s->fail.class == FC_PERM) {
		*f = s->fail;
		return;
	}
	for (i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].st == ST_PERM) {
			f->stage = STAGE_RCPT;
			f->class = FC_PERM;
			f->code = env->rcpt[i].reply.code;
			strlcpy(f->enhanced, env->rcpt[i].reply.enhanced,
			    sizeof(f->enhanced));
			if (snprintf(f->text, sizeof(f->text), "<%s>: %d %s",
			    env->rcpt[i].addr, env->rcpt[i].reply.code,
			    env->rcpt[i].reply.text) < 0)
				f->text[0] = '\0';
			return;
		}
}

/* The message could not be put in the queue: temporary, as a full disk. */
static void
queue_failed(struct failure *f, const char *err)
{
	memset(f, 0, sizeof(*f));
	f->stage = STAGE_QUEUE;
	f->class = FC_TEMP;
	snprintf(f->text, sizeof(f->text), "cannot queue the message: %s",
	    err);
}

/* -odq, -odb: queued durably first; 'b' then delivers in a child. */
static void
submit_queued(struct run *r, const struct account *a, struct qentry *q,
    int mode, struct failure *f)
{
	char	err[512];

	q->next = q->created;
	strlcpy(q->lasterr, "not tried yet", sizeof(q->lasterr));
	if (queue_add(r->qdir, q, 1, err, sizeof(err)) == -1) {
		queue_failed(f, err);
		deliver_say(r, 1, "%s", f->text);
		return;
	}
	log_pickup(a, q);
	deliver_say(r, 0, "queued as %s", q->id);
	if (mode == 'b')
		background(r, a, q);
}

/*
 * After a foreground attempt: what failed for good is reported and kept,
 * what must wait is made durable (the only fsync a submission pays), a
 * delivered entry is removed.
 */
static void
submit_settle(struct run *r, struct session *s, const struct account *a,
    struct qentry *q, int queued, struct failure *f)
{
	char	err[512];
	size_t	i;
	int	temp = 0, perm = 0;

	for (i = 0; i < q->env.nrcpt; i++) {
		temp += q->env.rcpt[i].st == ST_TEMP;
		perm += q->env.rcpt[i].st == ST_PERM;
		q->env.rcpt[i].done = q->env.rcpt[i].st != ST_TEMP;
	}
	if (perm > 0) {
		/* -oem mails the error back; dead.letter keeps it anyway.
		 * -bs ('s') says a whole refusal in its reply instead. */
		deliver_keep(r, a, &q->msg, q->env.sender, getuid());
		if ((r->errmode == 'm' || (r->errmode == 's' &&
		    (size_t)perm < q->env.nrcpt)) && !deliver_sender_refused(s) &&
		    deliver_report(r, s, a, q, s->fail.text, 0, queued) == 0)
			deliver_say(r, 1, "error report mailed to <%s>", q->env.sender);
	}
	if (temp > 0 && queued) {
		if (!limits_uncharged(s, q))
			queue_backoff(q, q->created);
		deliver_last_error(q->lasterr, sizeof(q->lasterr), s->fail.text,
		    &q->env);
		if (queue_update(r->qdir, q, err, sizeof(err)) == 0)
			deliver_say(r, s->fail.class == FC_CONFIG, "queued as %s; "
			    "outbox -q will retry", q->id);
		else {
			queue_remove(r->qdir, q->id);
			queue_failed(f, err);
			deliver_say(r, 1, "%s", f->text);
		}
	} else if (temp > 0) {
		deliver_say(r, 1, "not sent; try again later (%s)", r->qdir == NULL ?
		    "queue is off" : "the queue failed");
		if (f->class == FC_NONE)
			*f = s->fail;
		if (f->class == FC_NONE || f->class == FC_CONFIG)
			f->class = FC_TEMP;	/* nothing is kept: 75 */
	} else if (queued)
		queue_remove(r->qdir, q->id);
	if (stopping())
		deliver_say(r, 1, "stopped by signal %d; %s", stopping(), temp == 0 ?
		    "the message was delivered" : f->class == FC_NONE ?
		    "the message waits in the queue" :
		    "the message was not kept");
}

/*
 * A maildomain without a dot (by default the bare host name: root@vm)
 * makes addresses that providers refuse: one line says so, on a terminal
 * or with -v, when the sender or a recipient ends in it.
 */
static void
maildomain_warn(const struct run *r, const struct account *a,
    const struct envelope *env)
{
	const char	*addr, *at;
	size_t		 i;

	if (a->maildomain == NULL || strchr(a->maildomain, '.') != NULL)
		return;
	for (i = 0; i <= env->nrcpt; i++) {
		addr = i < env->nrcpt ? env->rcpt[i].addr : env->sender;
		at = strrchr(addr, '@');
		if (at != NULL && strcasecmp(at + 1, a->maildomain) == 0) {
			deliver_say(r, 0, "warning: %s: the mail domain %s has no dot "
			    "and providers refuse such addresses; set "
			    "maildomain in %s (outbox.conf(5))", addr,
			    a->maildomain, a->file != NULL ? a->file :
			    "the configuration");
			return;
		}
	}
}

/*
 * Submits a new message: mode 'i' delivers now and queues what must wait;
 * 'q' only queues; 'b' queues, then delivers in a detached child. The
 * outcome goes to *f (FC_NONE: delivered or safely queued).
 */
void
submit_message(struct run *r, const struct account *a, struct qentry *q,
    int mode, struct failure *f)
{
	struct session	 s;
	char		 err[512];
	int		 queued = 0;
	enum status	 st;

	memset(f, 0, sizeof(*f));
	maildomain_warn(r, a, &q->env);
	/* A full spool or quota is temporary: the caller keeps the mail. */
	if (r->qdir != NULL && qroom_check(r->qdir, &r->cfg->defaults,
	    getuid(), q->msg.size + qroom_env_size(q), err, sizeof(err)) == -1) {
		f->stage = STAGE_QUEUE;
		f->class = FC_TEMP;
		snprintf(f->text, sizeof(f->text), "not accepted: %s", err);
		deliver_say(r, 1, "%s", f->text);
		return;
	}
	q->account = a->name;
	q->account_file = (char *)(uintptr_t)a->file;
	q->owner = getuid();
	q->created = time(NULL);
	if (mode != 'i' && r->qdir != NULL) {
		submit_queued(r, a, q, mode, f);
		return;
	}
	/*
	 * The entry is in the queue, locked and not synced, while we try:
	 * a kill -9 leaves it there for -q. Only mail that must wait pays
	 * for fsync.
	 */
	if (r->qdir != NULL) {
		strlcpy(q->lasterr, "being delivered", sizeof(q->lasterr));
		if (!(queued = queue_add(r->qdir, q, 0, err, sizeof(err)) ==
		    0))
			deliver_say(r, 1, "cannot queue the message: %s", err);
	}
	log_pickup(a, q);
	memset(&s, 0, sizeof(s));
	s.io.fd = -1;
	r->foreground = 1;
	r->budget_end = limits_now_ms() + a->submit_timeout * 1000;
	/* The caller waits submit_timeout at most (limits.c). */
	if (queued && caller_budget(r, a, q, f) == 1)
		return;
	st = deliver_attempt(r, &s, a, &q->msg, &q->env);
	log_outcome(&s, q);
	deliver_tell(r, &s, &q->env, st, queued);
	outcome(&s, &q->env, st, f);
	caller_gate(r);
	submit_settle(r, &s, a, q, queued, f);
	/* Due entries go over the live session, in a detached process. */
	if (st == ST_OK && s.connected && !stopping())
		caller_handoff(r, &s, a);
	smtp_close(&s);
	caller_done(r, f);
}
