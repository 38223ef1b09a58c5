/* SPDX-License-Identifier: ISC */
/*
 * The queue runner (-q), the bounded flush after a submission, mailq
 * (-bp) and -qD. A run claims an entry only for its own transaction, so
 * a stopped or slow process delays nothing but the entry it holds. One
 * account's entries go over up to `sessions` parallel sessions (one
 * process each), one transaction at a time on each.
 */
#include <sys/prctl.h>
#include <sys/wait.h>

#include <err.h>
#include <signal.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "outbox.h"
#include "io.h"
#include "queue.h"
#include "smtp.h"

#define FLUSH_MAX	100	/* entries one submission's flush may carry */
#define FLUSH_SECONDS	10	/* and for how long */
#define PER_SESSION	8	/* entries that make one more session worth it */
#define SYNC_EVERY	64	/* delivered entries between directory syncs */

/* One account's entries in this run. */
struct batch {
	const struct account	*acct;
	struct strlist		 ids;
};

/* What a worker process tells the run when it is done. */
struct tally {
	int	sent, deferred, bounced, busy;
};

static const struct account *entry_account(const struct run *,
		    const struct qentry *);
static int	selected(const struct run *, const struct qentry *);
static int	take(struct run *, const char *, const struct account *,
		    struct qentry *);
static void	work(struct run *, const struct batch *, size_t, size_t);
static pid_t	spawn(struct run *, const struct batch *, size_t, size_t,
		    int *);
static void	gather(struct run *, pid_t *, int *, size_t);
static size_t	sessions_for(const struct run *, const struct batch *);
static int	group(struct run *, struct batch *, size_t);
static void	damaged(struct run *, const char *, const char *);
static void	sweep(struct run *);
static const struct account *log_account(const struct run *);
static void	show(const char *, ...) PRINTF(1, 2);
static void	refuse(struct failure *, enum fclass, const char *, ...)
		    PRINTF(3, 4);

/*
 * The account an entry was queued for, as that same file defined it, and
 * only in its owner's run unless it is a system account (qenv_account);
 * NULL: this run leaves the entry alone (-bp says why).
 */
static const struct account *
entry_account(const struct run *r, const struct qentry *q)
{
	char	why[512];

	return qenv_account(r->cfg, q, why, sizeof(why));
}
/* Whether a -qI, -qR or -qS selection takes this entry. */
static int
selected(const struct run *r, const struct qentry *q)
{
	size_t	i;

	switch (r->qsel) {
	case 'I':
		return strcasecmp(q->id, r->qarg) == 0;
	case 'S':
		return strcasestr(q->env.sender, r->qarg) != NULL;
	case 'R':
		for (i = 0; i < q->env.nrcpt; i++)
			if (strcasestr(q->env.rcpt[i].addr, r->qarg) != NULL)
				return 1;
		return 0;
	default:
		return 1;
	}
}
/*
 * Loads and claims one entry for account a, just before its transaction:
 * 0 when it is ours to send now, else it is left alone (busy, gone, not
 * due, or not this account's).
 */
static int
take(struct run *r, const char *id, const struct account *a,
    struct qentry *q)
{
	char	err[512];
	int	rv;

	if (queue_load(r->qdir, id, q, 0, err, sizeof(err)) != 0)
		return -1;	/* gone: another run delivered it */
	if ((rv = queue_claim(r->qdir, q, err, sizeof(err))) != 0 ||
	    q->held || q->report[0] != '\0' || q->env.nrcpt == 0 ||
	    (r->due_only && q->next > time(NULL)) ||
	    entry_account(r, q) != a) {
		r->busy += rv == 1;
		queue_free(q);
		return -1;
	}
	return 0;
}

/*
 * One session's share of an account's entries: every nw-th, from the
 * w-th on, each claimed, sent and settled in turn. Delivered entries
 * are made durable in groups (SYNC_EVERY), not one fsync each.
 */
static void
work(struct run *r, const struct batch *b, size_t w, size_t nw)
{
	struct session	s;
	struct qentry	q;
	char		why[1024];
	size_t		i, n = 0;

	memset(&s, 0, sizeof(s));
	s.io.fd = -1;
	for (i = w; i < b->ids.n && !stopping() && !s.uncharged; i += nw) {
		/* Another session may have met a pause or a refused login. */
		if (limits_blocked(r, b->acct, why, sizeof(why)))
			break;
		if (take(r, b->ids.v[i], b->acct, &q) != 0)
			continue;
		deliver_entry(r, &s, b->acct, &q);
		queue_free(&q);
		if (++n % SYNC_EVERY == 0)
			queue_sync(r->qdir);
	}
	if (n > 0)
		queue_sync(r->qdir);
	smtp_close(&s);
}

/* Starts worker w of nw in a process of its own; its tally comes on *fd. */
static pid_t
spawn(struct run *r, const struct batch *b, size_t w, size_t nw, int *fd)
{
	struct tally	t;
	int		p[2];
	pid_t		pid, parent = getpid();

	if (pipe(p) == -1)
		return -1;
	if ((pid = fork()) == -1) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		/* A run that is killed stops its sessions (they settle what
		 * they hold and end), rather than leaving them behind. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1 ||
		    getppid() != parent)
			_exit(1);
		close(p[0]);
		r->sent = r->deferred = r->bounced = r->busy = 0;
		work(r, b, w, nw);
		t.sent = r->sent;
		t.deferred = r->deferred;
		t.bounced = r->bounced;
		t.busy = r->busy;
		if (write(p[1], &t, sizeof(t)) != sizeof(t))
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	*fd = p[0];
	return pid;
}

/* Waits for the workers and adds up what they did. */
static void
gather(struct run *r, pid_t *pid, int *fd, size_t n)
{
	struct tally	t;
	ssize_t		got;
	size_t		i;

	for (i = 0; i < n; i++) {
		while ((got = read(fd[i], &t, sizeof(t))) == -1 &&
		    errno == EINTR)
			if (stopping())		/* pass it on to the worker */
				kill(pid[i], stopping());
		if (got == sizeof(t)) {
			r->sent += t.sent;
			r->deferred += t.deferred;
			r->bounced += t.bounced;
			r->busy += t.busy;
		}
		close(fd[i]);
		while (waitpid(pid[i], NULL, 0) == -1 && errno == EINTR)
			if (stopping())		/* pass it on to the worker */
				kill(pid[i], stopping());
	}
}

/*
 * Sessions for a batch: one per PER_SESSION entries, up to `sessions` and
 * the account's connection cap (limits.c) that every process shares.
 */
static size_t
sessions_for(const struct run *r, const struct batch *b)
{
	size_t	n = (b->ids.n + PER_SESSION - 1) / PER_SESSION;

	if (n > (size_t)b->acct->sessions)
		n = b->acct->sessions;
	if (n > (size_t)limits_cap(r, b->acct))
		n = limits_cap(r, b->acct);
	return n > 0 ? n : 1;
}

/* Whose log hears about the queue itself: the first account's (the log
 * is an account's key), else the global keys'. */
static const struct account *
log_account(const struct run *r)
{
	return r->cfg->nacct > 0 ? &r->cfg->acct[0] : &r->cfg->defaults;
}

/*
 * A damaged entry is never sent and said on every run; after an hour
 * untouched it is set aside as ID.bad, with a log line, where mailq
 * still shows it.
 */
static void
damaged(struct run *r, const char *id, const char *why)
{
	char	err[512];
	int	rv;

	warnx("queue %s: %s", id, why);
	if ((rv = qsweep_set_aside(r->qdir, id, err, sizeof(err))) == 0)
		deliver_log(log_account(r), "%s: %s; set aside as %s.bad",
		    id, why, id);
	else if (rv == -1)
		warnx("queue %s: %s", id, err);
}

/* What interrupted processes left: finished, each with a log line. */
static void
sweep(struct run *r)
{
	struct strlist	said = { NULL, 0 };
	size_t		i;

	qsweep_run(r->qdir, &said);
	for (i = 0; i < said.n; i++) {
		deliver_log(log_account(r), "%s", said.v[i]);
		if (r->verbose)
			warnx("%s", said.v[i]);
	}
	strlist_free(&said);
}

/*
 * Sorts the queue's entries by account: batch k for the configuration's
 * k-th account. Entries no account of this run may use stay where they
 * are. Returns -1 when the queue cannot be read.
 */
static int
group(struct run *r, struct batch *b, size_t nb)
{
	struct strlist	 ids = { NULL, 0 };
	struct qentry	 q;
	const struct account *a;
	char		 err[512];
	time_t		 now = time(NULL);
	size_t		 i, k;

	if (queue_list(r->qdir, &ids, qsweep_litter) == -1)
		return -1;
	for (i = 0; i < ids.n; i++) {
		if (queue_load(r->qdir, ids.v[i], &q, 0, err, sizeof(err)) != 0) {
			if (errno == EBADMSG)
				damaged(r, ids.v[i], err);
			continue;
		}
		/* Its report is written: made live, the line dropped. */
		if (q.report[0] != '\0' && queue_finish(r->qdir, &q, err,
		    sizeof(err)) == -1)
			warnx("queue %s: %s", ids.v[i], err);
		if (!q.held && q.env.nrcpt > 0 && q.report[0] == '\0' &&
		    (!r->due_only || q.next <= now) && selected(r, &q) &&
		    (a = entry_account(r, &q)) != NULL) {
			for (k = 0; k < nb && b[k].acct != a; k++)
				;
			if (k < nb)
				strlist_add(&b[k].ids, ids.v[i]);
		}
		queue_free(&q);
	}
	strlist_free(&ids);
	return 0;
}

/*
 * -q: delivers the queue, now (with --due only what is due). Every
 * account's entries go over its own sessions, all accounts at once.
 */
void
runner_queue(struct run *r, struct failure *f)
{
	struct batch	*b;
	pid_t		*pid;
	int		*fd;
	size_t		 i, k, nb = r->cfg->nacct + 1, nw = 0, n, total;
	char		 why[1024];
	int		 rv;

	memset(f, 0, sizeof(*f));
	r->manual = !r->due_only;	/* the administrator asks: try now */
	if (r->qdir == NULL) {
		warnx("the queue is off (queue off in the configuration)");
		return;
	}
	sweep(r);
	b = xcalloc(nb, sizeof(*b));
	for (k = 0; k < nb; k++)	/* the last: no account configured */
		b[k].acct = k < r->cfg->nacct ? &r->cfg->acct[k] :
		    &r->cfg->defaults;
	if (group(r, b, nb) == -1) {
		f->stage = STAGE_QUEUE;
		f->class = FC_LOCAL;
		snprintf(f->text, sizeof(f->text), "%s: %s", r->qdir,
		    strerror(errno));
		free(b);
		return;
	}
	/* A paused account, or one whose login was refused, waits whole. */
	for (k = 0; k < nb; k++)
		if (b[k].ids.n > 0 && (rv = limits_blocked(r, b[k].acct, why,
		    sizeof(why))) != 0) {
			if (rv == LIMITS_LOGIN)
				warnx("%s", why);	/* needs somebody */
			else
				printf("outbox: %s\n", why);
			strlist_free(&b[k].ids);
		}
	for (k = 0; k < nb; k++)
		nw += b[k].ids.n > 0 ? sessions_for(r, &b[k]) : 0;
	pid = xcalloc(nw + 1, sizeof(*pid));
	fd = xcalloc(nw + 1, sizeof(*fd));
	/* One session runs here; more are processes of their own. */
	for (k = 0, total = nw, nw = 0; k < nb; k++) {
		if (b[k].ids.n == 0)
			continue;
		if (total == 1) {
			work(r, &b[k], 0, 1);
			break;
		}
		for (i = 0, n = sessions_for(r, &b[k]); i < n; i++)
			if ((pid[nw] = spawn(r, &b[k], i, n, &fd[nw])) != -1)
				nw++;
			else
				work(r, &b[k], i, n);
	}
	gather(r, pid, fd, nw);
	for (k = 0; k < nb; k++)
		strlist_free(&b[k].ids);
	free(b);
	free(pid);
	free(fd);
	if (r->verbose || r->sent + r->deferred + r->bounced > 0)
		printf("outbox: %d sent, %d deferred, %d bounced, %d busy\n",
		    r->sent, r->deferred, r->bounced, r->busy);
}

/*
 * After a delivery, sends due entries of the same account over the live
 * session: at most FLUSH_MAX of them, for at most FLUSH_SECONDS, so the
 * caller never waits on a backlog; outbox -q takes the rest.
 */
void
runner_flush(struct run *r, struct session *s, const struct account *a)
{
	struct strlist	 ids = { NULL, 0 };
	struct qentry	 q;
	time_t		 start = time(NULL);
	size_t		 i, n = 0;

	if (r->qdir == NULL || queue_list(r->qdir, &ids, qsweep_litter) == -1)
		return;
	r->due_only = 1;
	for (i = 0; i < ids.n && (s->connected || s->closed) && !s->uncharged &&
	    n < FLUSH_MAX && time(NULL) - start < FLUSH_SECONDS && !stopping(); i++) {
		if (take(r, ids.v[i], a, &q) != 0)
			continue;
		deliver_entry(r, s, a, &q);
		queue_free(&q);
		if (++n % SYNC_EVERY == 0)
			queue_sync(r->qdir);
	}
	if (n > 0)
		queue_sync(r->qdir);
	strlist_free(&ids);
}

/*
 * One line of mailq: what it shows came from other users, servers and
 * queue files, so it is made printable first (C0, C1, bidi, not UTF-8).
 */
static void
show(const char *fmt, ...)
{
	va_list	ap;
	char	buf[2048];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	printable_inplace(buf);
	printf("%s\n", buf);
}

/*
 * -bp, mailq: the queue in Postfix's layout, which monitoring (check_mailq,
 * munin, scripts) already parses.
 */
void
runner_list(struct run *r, struct failure *f)
{
	struct strlist	 ids = { NULL, 0 };
	struct qentry	 q;
	char		 err[512], date[32], why[512];
	long long	 bytes = 0;
	size_t		 i, k, n = 0;
	int		 rv;

	memset(f, 0, sizeof(*f));
	if (r->qdir != NULL && queue_list(r->qdir, &ids, qsweep_litter) == -1) {
		f->stage = STAGE_QUEUE;
		f->class = FC_LOCAL;
		snprintf(f->text, sizeof(f->text), "%s: %s", r->qdir,
		    strerror(errno));
		return;
	}
	for (i = 0; i < ids.n; i++) {
		rv = queue_load(r->qdir, ids.v[i], &q, 0, err, sizeof(err));
		if (rv != 0 && errno == ENOENT)
			continue;	/* delivered meanwhile */
		if (rv == 0)
			q.active = queue_active(&q);
		if (rv == 0 && r->json) {
			json_entry(stdout, &q);
			queue_free(&q);
			continue;
		}
		if (rv != 0 && r->json) {
			json_damaged(stdout, ids.v[i], err);
			continue;	/* monitoring must see it */
		}
		if (n++ == 0)
			printf("-Queue ID-  --Size-- ----Arrival Time---- "
			    "-Sender/Recipient-------\n");
		if (rv != 0) {
			/* Damaged: never sent, shown so someone looks. */
			show("%-11s!%8s %20s", ids.v[i], "?", "");
			show("(%s)", err);
			printf("\n");
			continue;
		}
		strftime(date, sizeof(date), "%a %b %e %H:%M:%S",
		    localtime(&q.created));
		/* Postfix's mark for held ("!"); --json also says active. */
		show("%-11s%c%8lld %20.20s  %s", q.id, q.held ? '!' : ' ',
		    (long long)q.msg.size,
		    date, q.env.sender[0] != '\0' ? q.env.sender :
		    "MAILER-DAEMON");
		why[0] = '\0';
		if (qenv_account(r->cfg, &q, why, sizeof(why)) != NULL)
			why[0] = '\0';
		show("(%d attempt%s: %s%s%s)", q.attempts, q.attempts == 1 ?
		    "" : "s", q.lasterr, why[0] != '\0' ? "; " : "", why);
		for (k = 0; k < q.env.nrcpt; k++)
			show("%41s%s", "", q.env.rcpt[k].addr);
		printf("\n");
		bytes += q.msg.size;
		queue_free(&q);
	}
	strlist_free(&ids);
	if (r->json)
		return;		/* an empty queue is no line, as postqueue -j */
	limits_show(r, stdout);
	if (n == 0)
		printf("Mail queue is empty\n");
	else
		printf("-- %lld Kbytes in %zu Request%s.\n", (bytes + 1023) /
		    1024, n, n == 1 ? "" : "s");
}
/* Fills *f for a -qD that cannot be done. */
static void
refuse(struct failure *f, enum fclass class, const char *fmt, ...)
{
	va_list	ap;

	f->stage = STAGE_QUEUE;
	f->class = class;
	va_start(ap, fmt);
	vsnprintf(f->text, sizeof(f->text), fmt, ap);
	va_end(ap);
}

/* -qD ID: removes an entry; its owner or root only. */
void
runner_delete(struct run *r, const char *id, struct failure *f)
{
	struct qentry	q;
	char		err[512];
	int		rv;

	memset(f, 0, sizeof(*f));
	if (r->qdir == NULL || strchr(id, '/') != NULL ||
	    (rv = queue_load(r->qdir, id, &q, 1, err, sizeof(err))) == -1) {
		refuse(f, FC_USAGE, "no queue entry %s", id);
		return;
	}
	if (rv == 1) {
		refuse(f, FC_TEMP, "%s is being delivered right now; try "
		    "again", id);
		return;
	}
	if (getuid() != 0 && q.owner != getuid()) {
		refuse(f, FC_NOPERM, "%s belongs to uid %u; only it or root "
		    "may delete it", id, (unsigned)q.owner);
		queue_free(&q);
		return;
	}
	queue_remove(r->qdir, id);
	queue_free(&q);
	printf("%s deleted\n", id);
}
