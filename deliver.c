/*
 * What follows from an attempt: delivered now; what may work later waits
 * in the queue; what can never go is bounced to the sender and kept in
 * dead.letter. Also the queue runner (-q), mailq (-bp) and -qD.
 */
#include <sys/stat.h>
#include <sys/time.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "outbox.h"

#define BATCH		32		/* transactions in flight */
#define BATCH_BYTES	(256 * 1024)	/* message octets in flight */

static enum status attempt(struct run *, struct session *,
		    const struct account *, const struct message *,
		    struct envelope *);
static void	log_line(const struct account *, const char *);
static void	log_outcome(const struct session *, const struct qentry *,
		    const char *);
static void	report(const struct session *, const struct envelope *,
		    enum status);
static void	last_error(char *, size_t, const char *,
		    const struct envelope *);
static int	bounce(struct run *, struct session *, const struct account *,
		    const struct message *, const struct envelope *,
		    const char *);
static void	run_entry(struct run *, struct session *,
		    const struct account *, struct qentry *);
static void	settle(struct run *, struct session *, const struct account *,
		    struct qentry *, const char *);
static void	run_batch(struct run *, struct session *,
		    const struct account *, struct qentry *, size_t);
static void	refuse_all(struct envelope *);
static void	background(struct run *, const struct account *,
		    struct qentry *);
static void	flush_due(struct run *, struct session *,
		    const struct account *);
static const struct account *entry_account(const struct run *,
		    const struct qentry *);
static int	selected(const struct run *, const struct qentry *);
static void	batch_run(struct run *, struct session *,
		    const struct account *, struct qentry *, size_t *);

/* Appends one line to the configured log: syslog, a file, or nothing. */
static void
log_line(const struct account *a, const char *line)
{
	FILE	*fp;
	char	 date[32];
	time_t	 now = time(NULL);
	int	 fd;

	if (a->log == NULL || strcmp(a->log, "syslog") == 0) {
		syslog(LOG_INFO, "%s", line);
		return;
	}
	if (strcmp(a->log, "off") == 0)
		return;
	fd = open(a->log, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd == -1 || (fp = fdopen(fd, "a")) == NULL) {
		warn("log %s", a->log);
		if (fd != -1)
			close(fd);
		return;
	}
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S%z", localtime(&now));
	fprintf(fp, "%s outbox[%ld]: %s\n", date, (long)getpid(), line);
	fclose(fp);
}

/* Logs one line per outcome (sent, deferred, bounced) in Postfix's spirit. */
static void
log_outcome(const struct session *s, const struct qentry *q,
    const char *err)
{
	const struct envelope *env = &q->env;
	static const char *names[] = { "sent", "deferred", "bounced" };
	const struct rcpt *first;
	char		 line[4096], to[1024], why[1200];
	size_t		 i;
	enum status	 st;

	for (st = ST_OK; st <= ST_PERM; st++) {
		to[0] = '\0';
		first = NULL;
		for (i = 0; i < env->nrcpt; i++) {
			if (env->rcpt[i].st != st)
				continue;
			if (first == NULL)
				first = &env->rcpt[i];
			else
				strlcat(to, ",", sizeof(to));
			strlcat(to, "<", sizeof(to));
			strlcat(to, env->rcpt[i].addr, sizeof(to));
			strlcat(to, ">", sizeof(to));
		}
		if (first == NULL)
			continue;
		/* A deferred recipient's RCPT 250 is not why it waits. */
		if (first->reply.code / 100 == (st == ST_OK ? 2 :
		    st == ST_TEMP ? 4 : 5))
			snprintf(why, sizeof(why), "%d %s", first->reply.code,
			    first->reply.text);
		else
			strlcpy(why, err, sizeof(why));
		/* Postfix's layout: the queue id first, when there is one. */
		snprintf(line, sizeof(line), "%s%sfrom=<%s>, to=%s, "
		    "relay=%s[%s]:%lld, delay=%lld, tls=%s, status=%s (%s)",
		    q->id, q->id[0] != '\0' ? ": " : "", env->sender, to,
		    s->host[0] ? s->host : "none",
		    s->addr[0] ? s->addr : "-", s->port,
		    (long long)(time(NULL) - q->created),
		    s->tls_version != NULL ? s->tls_version : "none",
		    names[st], why);
		log_line(s->acct, line);
	}
}

/* Why an attempt left recipients waiting: the session's error, else the
 * first deferred recipient's reply. */
static void
last_error(char *buf, size_t size, const char *err,
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

/* Tells the caller, on stderr, what happened to each recipient. */
static void
report(const struct session *s, const struct envelope *env, enum status st)
{
	size_t	i;

	for (i = 0; i < env->nrcpt; i++) {
		const struct rcpt *r = &env->rcpt[i];

		if (r->st == ST_PERM && r->reply.code / 100 == 5 &&
		    !(st == ST_PERM && s->exitcode != 0))
			warnx("<%s>: refused by %s: %d %s", r->addr, s->host,
			    r->reply.code, r->reply.text);
		else if (r->st == ST_TEMP && r->reply.code / 100 == 4)
			warnx("<%s>: deferred by %s: %d %s", r->addr, s->host,
			    r->reply.code, r->reply.text);
	}
	if (st != ST_OK && s->addr[0] != '\0' && s->connected)
		warnx("%s[%s]:%lld: %s", s->host, s->addr, s->port, s->err);
	else if (st != ST_OK)
		warnx("%s", s->err);
}

/*
 * Appends the message to dead_letter (default ~/dead.letter), and says so.
 * Another user's message (a queue run) goes to the queue's own dead.letter,
 * which only root and the group can read, never to the runner's.
 */
void
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
	rv = message_dead_letter(m, path, sender, theirs ? 0660 : 0600, err,
	    sizeof(err));
	priv_drop();
	if (rv == 0)
		warnx("message kept in %s", path);
	else
		warnx("could not keep the message: %s", err);
}

/*
 * One attempt for one message over s, opened on demand for account a.
 * Every recipient not yet done ends ST_OK, ST_TEMP or ST_PERM.
 */
static enum status
attempt(struct run *r, struct session *s, const struct account *a,
    const struct message *m, struct envelope *env)
{
	enum status	st;
	size_t		i;

	if (!s->connected) {
		if (s->acct != a) {
			smtp_close(s);
			s->down = 0;
		}
		s->acct = a;
		s->verbose = r->verbose;
		s->qdir = r->qdir;
		/* A host that failed in this run is not tried again. */
		st = s->down ? ST_TEMP : smtp_open(s);
		s->down = st != ST_OK;
		if (st != ST_OK) {
			for (i = 0; i < env->nrcpt; i++)
				if (!env->rcpt[i].done) {
					env->rcpt[i].st = ST_TEMP;
					env->rcpt[i].reply.code = 0;
				}
			return st;
		}
	}
	s->exitcode = 0;
	if ((st = smtp_send(s, m, env)) == ST_PERM)
		refuse_all(env);
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
 * Mails the sender a report of the recipients that failed for good, with
 * the header of their message; sent over s when it is live, else queued.
 * A bounce is never bounced: -1 for mail from the null sender, or when
 * the bounce cannot go or wait; the caller keeps the message then.
 */
static int
bounce(struct run *r, struct session *s, const struct account *a,
    const struct message *m, const struct envelope *env, const char *why)
{
	struct qentry	 b;
	struct msgopts	 o;
	struct rcpt	 to;
	char		 buf[4096], err[256];
	FILE		*fp;
	size_t		 i;
	off_t		 off;
	ssize_t		 n;
	enum status	 st;

	if (env->sender[0] == '\0' || (fp = tmpfile()) == NULL)
		return -1;
	fprintf(fp, "From: Mail Delivery System <MAILER-DAEMON@%s>\n"
	    "To: <%s>\nSubject: Undelivered Mail Returned to Sender\n"
	    "Auto-Submitted: auto-replied\nMIME-Version: 1.0\n"
	    "Content-Type: text/plain; charset=utf-8\n"
	    "Content-Transfer-Encoding: 8bit\n\n"
	    "This is outbox on %s. Your message could not be delivered to "
	    "these\nrecipients, and it will not be tried again:\n\n",
	    a->maildomain, env->sender, config_hostname());
	for (i = 0; i < env->nrcpt; i++) {
		const struct rcpt *rc = &env->rcpt[i];

		if (rc->st != ST_PERM)
			continue;
		if (rc->reply.code / 100 == 5)
			fprintf(fp, "  <%s>: %d %s\n", rc->addr, rc->reply.code,
			    rc->reply.text);
		else
			fprintf(fp, "  <%s>: %s\n", rc->addr, why);
	}
	fprintf(fp, "\nThe header of your message follows.\n\n");
	for (off = 0; off < m->body; off += n) {
		n = pread(m->fd, buf, (size_t)(m->body - off) < sizeof(buf) ?
		    (size_t)(m->body - off) : sizeof(buf), off);
		if (n <= 0)
			break;
		for (ssize_t k = 0; k < n; k++)
			if (buf[k] != '\r')
				putc(buf[k], fp);
	}
	fflush(fp);
	rewind(fp);
	memset(&o, 0, sizeof(o));
	o.sender = "MAILER-DAEMON";
	o.maildomain = a->maildomain;
	o.spool_dir = r->qdir != NULL ? r->qdir : "/tmp";
	memset(&b, 0, sizeof(b));
	st = message_read(&b.msg, &o, fileno(fp)) == -1 ? ST_PERM : ST_TEMP;
	fclose(fp);
	memset(&to, 0, sizeof(to));
	to.addr = env->sender;
	to.st = ST_TEMP;
	b.env.sender = (char *)(uintptr_t)"";
	b.env.rcpt = &to;
	b.env.nrcpt = 1;
	if (st == ST_TEMP && s != NULL)
		st = attempt(r, s, a, &b.msg, &b.env) == ST_OK ? to.st : ST_TEMP;
	if (st == ST_TEMP && r->qdir != NULL) {
		b.account = a->name;
		b.owner = getuid();
		b.created = b.next = time(NULL);
		if (s != NULL) {
			queue_backoff(&b, b.created);
			last_error(b.lasterr, sizeof(b.lasterr), s->err, &b.env);
		} else
			strlcpy(b.lasterr, "not tried yet", sizeof(b.lasterr));
		if (queue_add(r->qdir, &b, 1, err, sizeof(err)) == 0)
			st = ST_OK;
	}
	message_close(&b.msg);
	return st == ST_OK ? 0 : -1;
}

/* The account an entry was queued for, or the default one. */
static const struct account *
entry_account(const struct run *r, const struct qentry *q)
{
	char	err[256];
	size_t	i;

	for (i = 0; i < r->cfg->nacct; i++)
		if (strcmp(r->cfg->acct[i].name, q->account) == 0)
			return &r->cfg->acct[i];
	return config_account(r->cfg, NULL, NULL, err, sizeof(err));
}

/*
 * Writes down what an attempt left of a queued entry: the recipients still
 * owed and the next attempt; bounces what failed for good or waited past
 * queue_lifetime. err is the attempt's error text.
 */
static void
settle(struct run *r, struct session *s, const struct account *a,
    struct qentry *q, const char *err)
{
	time_t		 now = time(NULL);
	char		 qerr[512];
	size_t		 i;
	int		 temp = 0, perm = 0;

	log_outcome(s, q, err);
	for (i = 0; i < q->env.nrcpt; i++) {
		struct rcpt *rc = &q->env.rcpt[i];

		if (rc->st == ST_TEMP && now - q->created >=
		    a->queue_lifetime) {
			rc->st = ST_PERM;	/* waited long enough */
			rc->reply.code = 0;
		}
		rc->done = rc->st != ST_TEMP;
		temp += rc->st == ST_TEMP;
		perm += rc->st == ST_PERM;
	}
	if (perm > 0) {
		char why[sizeof(s->err) + 64];

		snprintf(why, sizeof(why), "%s%s", now - q->created >=
		    a->queue_lifetime ? "gave up after queue_lifetime: " : "",
		    err[0] != '\0' ? err : q->lasterr);
		if (bounce(r, s->connected ? s : NULL, a, &q->msg, &q->env,
		    why) == -1)
			deliver_keep(r, a, &q->msg, q->env.sender, q->owner);
		r->bounced++;
	}
	if (temp > 0) {
		queue_backoff(q, now);
		last_error(q->lasterr, sizeof(q->lasterr), err, &q->env);
		r->deferred++;
	} else if (perm == 0)
		r->sent++;
	if (queue_update(r->qdir, q, qerr, sizeof(qerr)) == -1)
		warnx("queue %s: %s", q->id, qerr);
}

/* Delivers one queued entry over s, then settles it. */
static void
run_entry(struct run *r, struct session *s, const struct account *a,
    struct qentry *q)
{
	attempt(r, s, a, &q->msg, &q->env);
	settle(r, s, a, q, s->err);
}

/*
 * Delivers entries of one account over s. With PIPELINING and CHUNKING,
 * up to BATCH small messages are written before their replies are read
 * (RFC 2920, RFC 3030): a queue run costs about one round trip per batch,
 * not per message. Once a transaction in a batch ends without a 2xx, the
 * ones after it are read but not trusted: after an RSET they go again.
 * Entries are settled only when no reply is outstanding, since a bounce
 * may use the session.
 */
static void
run_batch(struct run *r, struct session *s, const struct account *a,
    struct qentry *q, size_t n)
{
	struct tx	*tx = xcalloc(BATCH, sizeof(*tx));
	char		(*err)[sizeof(s->err)] = xcalloc(BATCH, sizeof(*err));
	size_t		 i = 0, j, end, redo;
	off_t		 bytes;

	while (i < n) {
		if (!s->connected || (s->ext & (EXT_PIPELINING |
		    EXT_CHUNKING)) != (EXT_PIPELINING | EXT_CHUNKING)) {
			run_entry(r, s, a, &q[i++]);
			continue;
		}
		/* Write as many as the window takes, then read. */
		for (end = i, bytes = 0; end < n && end - i < BATCH &&
		    bytes < BATCH_BYTES; end++) {
			s->exitcode = 0;
			if (smtp_send_begin(s, &q[end].msg, &q[end].env,
			    &tx[end - i]) == ST_PERM) {
				refuse_all(&q[end].env);
				strlcpy(err[end - i], s->err, sizeof(*err));
				continue;	/* refused before a command */
			}
			if (!tx[end - i].written)
				break;		/* a large one goes alone */
			bytes += tx[end - i].size;
		}
		if (end == i) {
			run_entry(r, s, a, &q[i++]);	/* a large one */
			continue;
		}
		redo = end;
		for (j = i; j < end; j++) {
			struct tx *t = &tx[j - i];

			if (!t->written)
				continue;
			if (redo < end || !s->connected) {
				/* Behind a failure: read, and send it again. */
				for (size_t k = 0; s->connected &&
				    k < t->rset + t->nsent + 2u; k++)
					smtp_reply(s);
				continue;
			}
			s->err[0] = '\0';
			if (smtp_send_end(s, &q[j].env, t) == ST_PERM)
				refuse_all(&q[j].env);
			strlcpy(err[j - i], s->err, sizeof(*err));
			if (s->reply.code / 100 != 2 || s->dirty) {
				s->dirty = 1;	/* RSET before the next */
				redo = j + 1;
			}
		}
		for (j = i; j < end && j < redo; j++)
			settle(r, s, a, &q[j], err[j - i]);
		i = redo;
	}
	free(tx);
	free(err);
}

/* Settles and releases the entries gathered for one account. */
static void
batch_run(struct run *r, struct session *s, const struct account *a,
    struct qentry *q, size_t *n)
{
	size_t	i;

	run_batch(r, s, a, q, *n);
	for (i = 0; i < *n; i++)
		queue_free(&q[i]);
	*n = 0;
}

/* After a delivery, sends the entries that are due over the live session. */
static void
flush_due(struct run *r, struct session *s, const struct account *a)
{
	struct strlist	 ids = { NULL, 0 };
	struct qentry	*q;
	char		 err[512];
	time_t		 now = time(NULL);
	size_t		 i, n = 0;

	if (r->qdir == NULL || queue_list(r->qdir, &ids) == -1)
		return;
	q = xcalloc(BATCH, sizeof(*q));
	for (i = 0; i < ids.n && s->connected; i++) {
		if (queue_load(r->qdir, ids.v[i], &q[n], 1, err,
		    sizeof(err)) != 0)
			continue;
		if (q[n].next > now || entry_account(r, &q[n]) != a) {
			queue_free(&q[n]);
			continue;
		}
		if (++n == BATCH)
			batch_run(r, s, a, q, &n);
	}
	if (n > 0)
		batch_run(r, s, a, q, &n);
	free(q);
	strlist_free(&ids);
}

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
	run_entry(r, &s, a, q);
	smtp_close(&s);
	_exit(0);
}

/*
 * Submits a new message: mode 'i' delivers now and queues what must wait;
 * 'q' only queues; 'b' queues, then delivers in a detached child. Returns
 * the exit code.
 */
int
deliver_submit(struct run *r, const struct account *a, struct qentry *q,
    int mode)
{
	struct session	 s;
	char		 err[512];
	size_t		 i;
	int		 temp = 0, perm = 0, code = EX_OK, queued;
	enum status	 st;

	q->account = a->name;
	q->owner = getuid();
	q->created = time(NULL);
	if (mode != 'i' && r->qdir != NULL) {
		q->next = q->created;
		strlcpy(q->lasterr, "not tried yet", sizeof(q->lasterr));
		if (queue_add(r->qdir, q, 1, err, sizeof(err)) == -1) {
			warnx("cannot queue the message: %s", err);
			return EX_CANTCREAT;
		}
		if (r->verbose)
			warnx("queued as %s", q->id);
		if (mode == 'q')
			return EX_OK;
		background(r, a, q);
		return EX_OK;
	}

	/*
	 * The entry is in the queue, locked and not synced, while we try:
	 * a kill -9 leaves it there for -q. Only mail that must wait pays
	 * for fsync.
	 */
	queued = 0;
	if (r->qdir != NULL) {
		strlcpy(q->lasterr, "being delivered", sizeof(q->lasterr));
		if ((queued = queue_add(r->qdir, q, 0, err, sizeof(err)) == 0)
		    == 0)
			warnx("cannot queue the message: %s", err);
	}
	memset(&s, 0, sizeof(s));
	s.io.fd = -1;
	st = attempt(r, &s, a, &q->msg, &q->env);
	log_outcome(&s, q, s.err);
	report(&s, &q->env, st);
	for (i = 0; i < q->env.nrcpt; i++) {
		temp += q->env.rcpt[i].st == ST_TEMP;
		perm += q->env.rcpt[i].st == ST_PERM;
		q->env.rcpt[i].done = q->env.rcpt[i].st != ST_TEMP;
	}
	if (st == ST_PERM && s.exitcode != 0)
		code = s.exitcode;
	else if (perm > 0)
		code = EX_NOUSER;
	if (perm > 0) {
		/* -oem mails the error back; dead.letter keeps it anyway. */
		if (r->errmode == 'm' && bounce(r, s.connected ? &s : NULL, a,
		    &q->msg, &q->env, s.err) == 0)
			warnx("error report mailed to <%s>", q->env.sender);
		deliver_keep(r, a, &q->msg, q->env.sender, getuid());
	}
	if (temp > 0 && queued) {
		queue_backoff(q, q->created);
		last_error(q->lasterr, sizeof(q->lasterr), s.err, &q->env);
		if (queue_update(r->qdir, q, err, sizeof(err)) == 0)
			warnx("queued as %s; outbox -q will retry", q->id);
		else {
			warnx("cannot queue the message: %s", err);
			queue_remove(r->qdir, q->id);
			code = EX_TEMPFAIL;
		}
	} else if (temp > 0) {
		warnx("not sent; try again later (%s)", r->qdir == NULL ?
		    "queue is off" : "the queue failed");
		code = EX_TEMPFAIL;	/* nothing is kept: say so */
	} else if (queued)
		queue_remove(r->qdir, q->id);
	if (st == ST_OK && s.connected)
		flush_due(r, &s, a);
	smtp_close(&s);
	return code;
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
 * -q: delivers the queue, one session per account for all its entries.
 * With --due only the entries whose retry time has come. A host that
 * cannot be reached is not tried again in the same run.
 */
int
deliver_queue(struct run *r)
{
	struct strlist	 ids = { NULL, 0 };
	struct session	*ss;
	struct pending {
		struct qentry	q[BATCH];
		size_t		n;
	}		*pend;
	char		 err[512];
	time_t		 now = time(NULL);
	size_t		 i, k, nacct = r->cfg->nacct + 1;
	int		 rv;

	if (r->qdir == NULL) {
		warnx("the queue is off (queue off in the configuration)");
		return EX_OK;
	}
	if (queue_list(r->qdir, &ids) == -1) {
		warn("%s", r->qdir);
		return EX_IOERR;
	}
	/* Per account: a session, and the entries gathered for it. */
	ss = xcalloc(nacct, sizeof(*ss));
	pend = xcalloc(nacct, sizeof(*pend));
	for (k = 0; k < nacct; k++)
		ss[k].io.fd = -1;
	for (i = 0; i < ids.n; i++) {
		const struct account *a;
		struct qentry *q;

		q = xcalloc(1, sizeof(*q));
		rv = queue_load(r->qdir, ids.v[i], q, 1, err, sizeof(err));
		if (rv == 1)
			r->busy++;	/* another run has it */
		if (rv == -1 && errno != ENOENT)
			warnx("queue %s: %s", ids.v[i], err);
		if (rv != 0) {
			free(q);
			continue;	/* gone: another run delivered it */
		}
		if ((r->due_only && q->next > now) || !selected(r, q) ||
		    (a = entry_account(r, q)) == NULL) {
			queue_free(q);
			free(q);
			continue;
		}
		k = a >= r->cfg->acct && a < r->cfg->acct + r->cfg->nacct ?
		    (size_t)(a - r->cfg->acct) : nacct - 1;
		pend[k].q[pend[k].n++] = *q;
		free(q);
		if (pend[k].n == BATCH)
			batch_run(r, &ss[k], a, pend[k].q, &pend[k].n);
	}
	for (k = 0; k < nacct; k++) {
		if (pend[k].n > 0)
			batch_run(r, &ss[k], k < r->cfg->nacct ?
			    &r->cfg->acct[k] : config_account(r->cfg, NULL,
			    NULL, err, sizeof(err)), pend[k].q, &pend[k].n);
		smtp_close(&ss[k]);
	}
	free(ss);
	free(pend);
	strlist_free(&ids);
	if (r->verbose || r->sent + r->deferred + r->bounced > 0)
		printf("outbox: %d sent, %d deferred, %d bounced, %d busy\n",
		    r->sent, r->deferred, r->bounced, r->busy);
	return EX_OK;
}

/*
 * -bp, mailq: the queue in Postfix's layout, which monitoring (check_mailq,
 * munin, scripts) already parses.
 */
int
deliver_list(struct run *r)
{
	struct strlist	 ids = { NULL, 0 };
	struct qentry	 q;
	char		 err[512], date[32];
	long long	 bytes = 0;
	size_t		 i, k, n = 0;

	if (r->qdir != NULL && queue_list(r->qdir, &ids) == -1) {
		warn("%s", r->qdir);
		return EX_IOERR;
	}
	for (i = 0; i < ids.n; i++) {
		if (queue_load(r->qdir, ids.v[i], &q, 0, err, sizeof(err)) != 0)
			continue;
		if (n++ == 0)
			printf("-Queue ID-  --Size-- ----Arrival Time---- "
			    "-Sender/Recipient-------\n");
		strftime(date, sizeof(date), "%a %b %e %H:%M:%S",
		    localtime(&q.created));
		printf("%-11s %8lld %20.20s  %s\n", q.id, (long long)q.msg.size,
		    date, q.env.sender[0] != '\0' ? q.env.sender :
		    "MAILER-DAEMON");
		printf("(%d attempt%s: %s)\n", q.attempts, q.attempts == 1 ?
		    "" : "s", q.lasterr);
		for (k = 0; k < q.env.nrcpt; k++)
			printf("%41s%s\n", "", q.env.rcpt[k].addr);
		printf("\n");
		bytes += q.msg.size;
		queue_free(&q);
	}
	strlist_free(&ids);
	if (n == 0)
		printf("Mail queue is empty\n");
	else
		printf("-- %lld Kbytes in %zu Request%s.\n", (bytes + 1023) /
		    1024, n, n == 1 ? "" : "s");
	return EX_OK;
}

/* -qD ID: removes an entry; its owner or root only. */
int
deliver_delete(struct run *r, const char *id)
{
	struct qentry	q;
	char		err[512];
	int		rv;

	if (r->qdir == NULL || strchr(id, '/') != NULL ||
	    (rv = queue_load(r->qdir, id, &q, 1, err, sizeof(err))) == -1) {
		warnx("no queue entry %s", id);
		return EX_USAGE;
	}
	if (rv == 1) {
		warnx("%s is being delivered right now; try again", id);
		return EX_TEMPFAIL;
	}
	if (getuid() != 0 && q.owner != getuid()) {
		warnx("%s belongs to uid %u; only it or root may delete it",
		    id, (unsigned)q.owner);
		queue_free(&q);
		return EX_NOPERM;
	}
	queue_remove(r->qdir, id);
	queue_free(&q);
	printf("%s deleted\n", id);
	return EX_OK;
}
