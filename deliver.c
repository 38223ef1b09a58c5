/* SPDX-License-Identifier: ISC */
/*
 * What follows from an attempt: delivered now; what may work later waits
 * in the queue; what can never go is bounced to the sender and kept in
 * dead.letter. Every outcome is a struct failure for sendmail.c to map;
 * what reaches stderr is decided here, in deliver_say().
 */
#include <sys/stat.h>
#include <sys/time.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "outbox.h"
#include "queue.h"
#include "smtp.h"

static void	deliver_settle(struct run *, struct session *,
		    const struct account *, struct qentry *);
static int	report_make(const struct run *, const struct session *,
		    const struct account *, const struct qentry *,
		    const char *, int, struct qentry *, struct rcpt *);
static void	report_failed(struct run *, const struct account *,
		    struct qentry *, const char *);
static void	refuse_all(struct envelope *);

/*
 * The one place that decides what a caller sees on stderr. Failures that
 * need somebody (loud) always show; the rest, such as a message safely
 * queued, only on a terminal or with -v: a cron job that calls sendmail
 * gets no second mail because the smarthost was down (Postfix's sendmail
 * is as quiet). The log has every outcome either way.
 */
void
deliver_say(const struct run *r, int loud, const char *fmt, ...)
{
	va_list	ap;
	char	buf[2048];

	if (!loud && !r->verbose && !isatty(STDERR_FILENO))
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	printable_inplace(buf);		/* addresses of other users' mail */
	warnx("%s", buf);
}

/* One line for the log (deliver_keep, reports, the queue's sweep). */
void
deliver_log(const struct account *a, const char *fmt, ...)
{
	char	line[2048];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_line(a, "qmgr", "%s", line);
}

/* Why an attempt left recipients waiting: the session's error, else the
 * first deferred recipient's reply. */
void
deliver_last_error(char *buf, size_t size, const char *err,
    const struct envelope *env)
{
	size_t	i;

	if (err[0] != '\0') {
		strlcpy(buf, err, size);
		return;
	}
	for (i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].st == ST_TEMP &&
		    env->rcpt[i].reply.code != 0) {
			if (snprintf(buf, size, "<%s>: %d %s",
			    env->rcpt[i].addr, env->rcpt[i].reply.code,
			    env->rcpt[i].reply.text) < 0)
				buf[0] = '\0';
			return;
		}
	strlcpy(buf, "deferred", size);
}
/*
 * Tells the caller, on stderr, what happened to each recipient. A
 * deferral is loud only when it needs an administrator or nothing keeps
 * the message (kept 0).
 */
void
deliver_tell(const struct run *r, const struct session *s,
    const struct envelope *env, enum status st, int kept)
{
	int	loud = s->fail.class == FC_CONFIG || st == ST_PERM || !kept;
	size_t	i;

	for (i = 0; i < env->nrcpt; i++) {
		const struct rcpt *rc = &env->rcpt[i];

		if (rc->st == ST_PERM && rc->reply.code / 100 == 5 &&
		    !(st == ST_PERM && s->fail.stage != STAGE_RCPT))
			deliver_say(r, 1, "<%s>: refused by %s: %d %s", rc->addr,
			    s->host, rc->reply.code, rc->reply.text);
		else if (rc->st == ST_TEMP && rc->reply.code / 100 == 4)
			deliver_say(r, loud, "<%s>: deferred by %s: %d %s", rc->addr,
			    s->host, rc->reply.code, rc->reply.text);
	}
	if (st == ST_OK || s->fail.class == FC_NONE)
		return;
	if (s->addr[0] != '\0' && s->connected)
		deliver_say(r, loud, "%s[%s]:%lld: %s", s->host, s->addr, s->port,
		    s->fail.text);
	else
		deliver_say(r, loud, "%s", s->fail.text);
}

/*
 * Appends the message to dead_letter (default ~/dead.letter), and says so.
 * Another user's message (a queue run) goes to the queue's own dead.letter,
 * which only root and the group can read, never to the runner's. -1 when
 * it could not be kept.
 */
int
deliver_keep(const struct run *r, const struct account *a,
    const struct message *m, const char *sender, uid_t owner)
{
	char	path[4096], err[512];
	int	theirs = owner != getuid() && r->qdir != NULL;
	int	rv;

	if (theirs)
		snprintf(path, sizeof(path), "%s/dead.letter", r->qdir);
	else if (a->dead_letter != NULL)
		strlcpy(path, a->dead_letter, sizeof(path));
	else
		snprintf(path, sizeof(path), "%s/dead.letter",
		    r->home != NULL ? r->home : ".");
	if (theirs)
		priv_raise();
	rv = render_dead_letter(m, path, sender, theirs ? 0660 : 0600, err,
	    sizeof(err));
	priv_drop();
	if (rv == 0)
		deliver_say(r, 1, "message kept in %s", path);
	else
		deliver_say(r, 1, "could not keep the message: %s", err);
	return rv;
}
/*
 * One attempt for one message over s, opened on demand for account a.
 * Every recipient not yet done ends ST_OK, ST_TEMP or ST_PERM.
 */
enum status
deliver_attempt(struct run *r, struct session *s, const struct account *a,
    const struct message *m, struct envelope *env)
{
	enum status	st;
	size_t		i;
	double		t;

	/* RFC 9422 MAILMAX: the next message goes in a new session. */
	if (s->connected && s->mailmax > 0 &&
	    s->ntx >= (unsigned long long)s->mailmax)
		smtp_close(s);
	s->began = log_now();
	s->conn_s = s->xfer_s = 0;
	if (!s->connected) {
		if (s->acct != a) {
			smtp_close(s);
			s->down = 0;
		}
		s->acct = a;
		s->verbose = r->verbose;
		s->state_dir = r->qdir;
		s->tls_logged = 0;
		/* A host that failed in this run is not tried again. */
		st = s->down ? ST_TEMP : limits_open(r, s, a);
		s->conn_s = log_now() - s->began;
		s->down = st != ST_OK && !s->closed;
		if (st != ST_OK) {
			for (i = 0; i < env->nrcpt; i++)
				if (!env->rcpt[i].done) {
					env->rcpt[i].st = ST_TEMP;
					env->rcpt[i].reply.code = 0;
				}
			return st;
		}
	}
	if ((st = limits_pace(r, s, a)) != ST_OK) {
		for (i = 0; i < env->nrcpt; i++)
			if (!env->rcpt[i].done)
				env->rcpt[i].st = ST_TEMP;
		return st;
	}
	t = log_now();
	if ((st = smtptx_send(s, m, env)) == ST_PERM)
		refuse_all(env);
	s->xfer_s = log_now() - t;
	limits_after(r, s, a);
	return st;
}

/* Refused as a message: nobody gets it, whatever RCPT said. */
static void
refuse_all(struct envelope *env)
{
	size_t	i;

	for (i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].st != ST_OK)
			env->rcpt[i].st = ST_PERM;
}

/*
 * The report (RFC 3464, dsn.c) on q's recipients that failed for good
 * (delayed: that still wait), as a message of its own in *b, from the
 * null sender to q's sender (*to), belonging to q's owner. -1 when it
 * cannot be made.
 */
static int
report_make(const struct run *r, const struct session *s,
    const struct account *a, const struct qentry *q, const char *why,
    int delayed, struct qentry *b, struct rcpt *to)
{
	struct msgopts	 o;
	struct dsn	 d;
	struct stat	 sb;
	FILE		*fp;
	int		 rv;

	if ((fp = tmpfile()) == NULL)
		return -1;
	memset(&d, 0, sizeof(d));
	d.env = &q->env;
	d.msg = &q->msg;
	d.why = why;
	d.mta = config_hostname();
	d.relay = s->connected ? s->host : NULL;
	d.maildomain = a->maildomain;
	d.delayed = delayed;
	/* The spool file is written once, when the message arrives. */
	d.arrival = fstat(q->msg.fd, &sb) == 0 ? sb.st_mtime : 0;
	if (dsn_write(fp, &d) == -1) {
		fclose(fp);
		return -1;
	}
	rewind(fp);
	memset(&o, 0, sizeof(o));
	o.sender = "MAILER-DAEMON";
	o.maildomain = a->maildomain;
	o.spool_dir = r->qdir != NULL ? r->qdir : "/tmp";
	memset(b, 0, sizeof(*b));
	rv = message_read(&b->msg, &o, fileno(fp));
	fclose(fp);
	if (rv == -1)
		return -1;
	memset(to, 0, sizeof(*to));
	to->addr = q->env.sender;
	to->st = ST_TEMP;
	b->env.sender = (char *)(uintptr_t)"";
	b->env.rcpt = to;
	b->env.nrcpt = 1;
	b->account = q->account;
	b->account_file = q->account_file;
	b->owner = q->owner;		/* the message's, never the runner's */
	b->created = b->next = time(NULL);
	strlcpy(b->lasterr, "not tried yet", sizeof(b->lasterr));
	return 0;
}

/*
 * Reports to q's sender. With the queue, the report is an entry of its
 * own, durable (queue_report also writes down q's delivered and refused
 * recipients) before it goes over s when s is live. Without (queued 0),
 * it goes over s now or not at all. A report is never reported on: -1
 * for the null sender, or when it cannot be made or queued; the caller
 * keeps the message then.
 */
int
deliver_report(struct run *r, struct session *s, const struct account *a,
    struct qentry *q, const char *why, int delayed, int queued)
{
	struct qentry	b;
	struct rcpt	to;
	char		err[512];
	enum status	st;

	if (q->env.sender[0] == '\0' || q->orig[0] != '\0' ||
	    report_make(r, s, a, q, why, delayed, &b, &to) == -1)
		return -1;
	if (r->qdir == NULL || !queued) {
		st = s->connected ? deliver_attempt(r, s, a, &b.msg, &b.env) :
		    ST_TEMP;
		message_close(&b.msg);
		return st == ST_OK && to.st == ST_OK ? 0 : -1;
	}
	if (queue_report(r->qdir, q, &b, err, sizeof(err)) == -1) {
		deliver_log(a, "%s: its report to <%s> could not be queued: %s",
		    q->id, q->env.sender, err);
		message_close(&b.msg);
		return -1;
	}
	deliver_log(a, "%s: %s report %s to <%s> queued", q->id, delayed ?
	    "delay" : "failure", b.id, q->env.sender);
	if (s->connected) {
		/* The run's tally counts messages, not their reports. */
		int sent = r->sent, deferred = r->deferred;

		deliver_entry(r, s, a, &b);
		r->sent = sent;
		r->deferred = deferred;
	}
	message_close(&b.msg);
	return 0;
}

/*
 * A report that failed for good is never reported on: its message goes,
 * whole, to its owner's dead.letter; if even that fails the report stays
 * queued, held, for an administrator (mailq says so).
 */
static void
report_failed(struct run *r, const struct account *a, struct qentry *q,
    const char *why)
{
	struct message	m;
	size_t		i;

	if (queue_open_orig(r->qdir, q, &m) == 0 &&
	    deliver_keep(r, a, &m, q->env.rcpt[0].addr, q->owner) == 0) {
		deliver_log(a, "%s: report on %s to <%s> failed for good (%s); "
		    "the message, whole, was kept in dead.letter", q->id,
		    q->orig, q->env.rcpt[0].addr, why);
	} else {
		for (i = 0; i < q->env.nrcpt; i++)
			q->env.rcpt[i].done = 0;
		q->held = 1;
		snprintf(q->lasterr, sizeof(q->lasterr), "held: the report "
		    "failed for good (%.300s) and dead.letter could not keep the "
		    "message", why);
		deliver_log(a, "%s: report on %s to <%s> failed for good (%s); "
		    "dead.letter failed: held in the queue", q->id, q->orig,
		    q->env.rcpt[0].addr, why);
	}
	if (m.fd != -1)
		close(m.fd);
}

/*
 * Whether the server refused the sender itself for good (MAIL 5xx), or
 * the whole message by policy (5.7.x at its end, as Microsoft 365's
 * 5.7.60 SendAsDenied): no report then. A report from <> would carry the
 * message's header, text a user chose, past a smarthost that pins the
 * sender but takes the null sender (issue 18); the message goes whole to
 * dead.letter instead.
 */
int
deliver_sender_refused(const struct session *s)
{
	return s->fail.class == FC_PERM && (s->fail.stage == STAGE_MAIL ||
	    ((s->fail.stage == STAGE_DATA || s->fail.stage == STAGE_EOD) &&
	    strncmp(s->fail.enhanced, "5.7.", 4) == 0));
}

/*
 * Writes down, at once, what an attempt left of a queued entry: removed
 * when nobody is owed it, else the recipients still owed and the next
 * attempt; bounces what failed for good or waited past queue_lifetime.
 */
static void
deliver_settle(struct run *r, struct session *s, const struct account *a,
    struct qentry *q)
{
	time_t		 now = time(NULL);
	char		 qerr[512];
	size_t		 i;
	int		 temp = 0, perm = 0, expired = 0;

	log_outcome(s, q);
	for (i = 0; i < q->env.nrcpt; i++) {
		struct rcpt *rc = &q->env.rcpt[i];

		if (rc->st == ST_TEMP && now - q->created >=
		    a->queue_lifetime) {
			rc->st = ST_PERM;	/* waited long enough */
			rc->reply.code = 0;
			expired = 1;
		}
		rc->done = rc->st != ST_TEMP;
		temp += rc->st == ST_TEMP;
		perm += rc->st == ST_PERM;
	}
	if (expired)
		log_expired(a, q, temp == 0);
	if (perm > 0) {
		char why[sizeof(s->fail.text) + 64];

		snprintf(why, sizeof(why), "%s%s", now - q->created >=
		    a->queue_lifetime ? "gave up after queue_lifetime: " : "",
		    s->fail.class != FC_NONE ? s->fail.text : q->lasterr);
		if (q->orig[0] != '\0')
			report_failed(r, a, q, why);
		else if (deliver_sender_refused(s) ||
		    deliver_report(r, s, a, q, why, 0, 1) == -1)
			deliver_keep(r, a, &q->msg, q->env.sender, q->owner);
		r->bounced++;
	}
	/* Once, after delay_warning_time: the sender hears it still waits. */
	if (temp > 0 && a->delay_warning_time > 0 && !q->warned &&
	    now - q->created >= a->delay_warning_time) {
		q->warned = 1;		/* written down with the report */
		if (deliver_report(r, s, a, q, q->lasterr, 1, 1) == -1)
			q->warned = 0;
	}
	if (temp > 0) {
		if (!limits_uncharged(s, q))
			queue_backoff(q, now);
		deliver_last_error(q->lasterr, sizeof(q->lasterr), s->fail.class !=
		    FC_NONE ? s->fail.text : "", &q->env);
		r->deferred++;
	} else if (perm == 0)
		r->sent++;
	if (queue_update(r->qdir, q, qerr, sizeof(qerr)) == -1)
		deliver_say(r, 1, "queue %s: %s", q->id, qerr);
}

/* Delivers one queued entry over s, then settles it. */
void
deliver_entry(struct run *r, struct session *s, const struct account *a,
    struct qentry *q)
{
	deliver_attempt(r, s, a, &q->msg, &q->env);
	deliver_settle(r, s, a, q);
}
