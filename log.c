/* SPDX-License-Identifier: ISC */
/*
 * The log, in Postfix's layout so that the tools admins already run on
 * mail logs (pflogsumm, fail2ban filters, dashboards) read outbox's too:
 *
 *   outbox/pickup[PID]: ID: uid=1000 from=<a@example.org>
 *   outbox/qmgr[PID]: ID: from=<a@example.org>, size=812, nrcpt=2 (queue active)
 *   outbox/smtp[PID]: ID: to=<b@example.net>, relay=host[addr]:port,
 *       delay=0.12, delays=0.01/0/0.05/0.06, dsn=2.0.0, status=sent (250 ...)
 *   outbox/qmgr[PID]: ID: removed
 *   outbox/qmgr[PID]: ID: from=<a@example.org>, status=expired, returned to sender
 *
 * One line per recipient; relay=none when no server answered. ID is the
 * queue entry's, NOQUEUE without one. To syslog (facility mail), or
 * appended to a file with an RFC 3339 timestamp and the host name, as
 * rsyslog writes them.
 */
#include <sys/types.h>

#include <err.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "outbox.h"
#include "smtp.h"

static void	log_file(const char *, const char *, const char *);
static const char *qid(const struct qentry *);
static double	arrival(const struct qentry *);
static void	seconds(char *, size_t, double);
static void	log_rcpt(const struct session *, const struct qentry *,
		    const struct rcpt *, double);

static const char *log_tag = "outbox";	/* -L, else "outbox" */
static double	 log_start;		/* when this process began */
static const struct qentry *log_picked;	/* the message it took in */

/* Notes the tag (-L) and the start of the process; opens syslog. */
void
log_open(const char *tag)
{
	if (tag != NULL)
		log_tag = tag;
	log_start = log_now();
	openlog(log_tag, LOG_PID, LOG_MAIL);
}

/* The time of day in seconds, with its fraction. */
double
log_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Appends one line as TAG/PROG[PID]: to the account's log: syslog, a file,
 * or nothing. What it quotes came from servers and users: made printable.
 */
void
log_line(const struct account *a, const char *prog, const char *fmt, ...)
{
	va_list	ap;
	char	line[4096], ident[128];

	if (a->log != NULL && strcmp(a->log, "off") == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	printable_inplace(line);
	snprintf(ident, sizeof(ident), "%s/%s", log_tag, prog);
	if (a->log == NULL || strcmp(a->log, "syslog") == 0) {
		/* syslog keeps the pointer: the ident must outlive the call. */
		static char	cur[128];

		if (strcmp(cur, ident) != 0) {
			strlcpy(cur, ident, sizeof(cur));
			openlog(cur, LOG_PID, LOG_MAIL);
		}
		syslog(LOG_INFO, "%s", line);
		return;
	}
	log_file(a->log, ident, line);
}

/* One line appended to path: 2026-12-06T09:30:01.123456+01:00 HOST IDENT[PID]: */
static void
log_file(const char *path, const char *ident, const char *line)
{
	FILE		*fp;
	struct timespec	 ts;
	struct tm	 tm;
	char		 date[40], zone[8], host[256];
	int		 fd;

	/* Never waits: a FIFO nobody reads must not stall a claimed entry. */
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW |
	    O_NONBLOCK | O_CLOEXEC, 0600);
	if (fd == -1 || (fp = fdopen(fd, "a")) == NULL) {
		warn("log %s", path);
		if (fd != -1)
			close(fd);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	/* RFC 3339 wants the offset as +hh:mm, strftime gives +hhmm. */
	strftime(zone, sizeof(zone), "%z", &tm);
	if (gethostname(host, sizeof(host)) == -1)
		strlcpy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	host[strcspn(host, ".")] = '\0';
	fprintf(fp, "%s.%06ld%.3s:%.2s %s %s[%ld]: %s\n", date,
	    ts.tv_nsec / 1000, zone, zone + 3, host, ident, (long)getpid(),
	    line);
	fclose(fp);
}

/* The queue ID, or Postfix's word for a message without one. */
static const char *
qid(const struct qentry *q)
{
	return q->id[0] != '\0' ? q->id : "NOQUEUE";
}

/* A message was handed in: who, from whom (pflogsumm counts it received). */
void
log_pickup(const struct account *a, const struct qentry *q)
{
	log_picked = q;
	log_line(a, "pickup", "%s: uid=%u from=<%s>", qid(q),
	    (unsigned)q->owner, q->env.sender);
}

/*
 * When the message arrived. The queue keeps whole seconds; in the process
 * that took it in, the process's start is the better clock.
 */
static double
arrival(const struct qentry *q)
{
	if (q == log_picked && log_start >= (double)q->created &&
	    log_start < (double)q->created + 1)
		return log_start;
	return (double)q->created;
}

/* Seconds as Postfix writes them: 0, 0.01, 0.1, 3.42, 97. */
static void
seconds(char *buf, size_t size, double s)
{
	size_t	n;

	if (s < 0.005)
		snprintf(buf, size, "0");
	else if (s < 10) {
		snprintf(buf, size, "%.2f", s);
		n = strlen(buf);
		while (buf[n - 1] == '0')	/* 0.10 is 0.1 */
			buf[--n] = '\0';
		if (buf[n - 1] == '.')		/* 9.999 is 10 */
			buf[--n] = '\0';
	} else
		snprintf(buf, size, "%.0f", s);
}

/* One recipient's line: to=, relay=, delay=, delays=, dsn=, status=. */
static void
log_rcpt(const struct session *s, const struct qentry *q,
    const struct rcpt *rc, double now)
{
	static const char *names[] = { "sent", "deferred", "bounced" };
	char		 relay[400], why[1200], dsn[16];
	char		 d[16], da[16], dc[16], dd[16];
	double		 t0 = arrival(q);
	int		 cls = rc->st == ST_OK ? 2 : rc->st == ST_TEMP ? 4 : 5;

	/* No server answered (refused, unreachable): relay=none. */
	if (s->host[0] == '\0' || s->addr[0] == '\0' ||
	    (s->fail.class != FC_NONE && s->fail.stage == STAGE_CONNECT))
		strlcpy(relay, "none", sizeof(relay));
	else
		snprintf(relay, sizeof(relay), "%s[%s]:%lld", s->host,
		    s->addr, s->port);
	/* A deferred recipient's RCPT 250 is not why it waits. */
	if (rc->reply.code / 100 == cls) {
		snprintf(why, sizeof(why), "%d %s", rc->reply.code,
		    rc->reply.text);
		snprintf(dsn, sizeof(dsn), "%s", rc->reply.enhanced);
	} else {
		snprintf(why, sizeof(why), "%s%s%s", s->fail.class != FC_NONE ?
		    stage_name(s->fail.stage) : "", s->fail.class != FC_NONE ?
		    ": " : "", s->fail.text);
		snprintf(dsn, sizeof(dsn), "%s", s->fail.code / 100 == cls ?
		    s->fail.enhanced : "");
	}
	if (dsn[0] == '\0')
		snprintf(dsn, sizeof(dsn), "%d.%d.%d", cls, cls == 4 &&
		    s->fail.stage == STAGE_CONNECT ? 4 : 0, cls == 4 &&
		    s->fail.stage == STAGE_CONNECT ? 1 : 0);
	seconds(d, sizeof(d), now - t0);
	seconds(da, sizeof(da), s->began > t0 ? s->began - t0 : 0);
	seconds(dc, sizeof(dc), s->conn_s);
	seconds(dd, sizeof(dd), s->xfer_s);
	log_line(s->acct, "smtp", "%s: to=<%s>, relay=%s, delay=%s, "
	    "delays=%s/0/%s/%s, dsn=%s, status=%s (%s)", qid(q), rc->addr,
	    relay, d, da, dc, dd, dsn, names[rc->st], why);
}

/*
 * An attempt's outcome: the message (qmgr), a line for each recipient
 * (smtp), the TLS of the session once, and "removed" when nothing waits.
 */
void
log_outcome(struct session *s, const struct qentry *q)
{
	const struct envelope *env = &q->env;
	double		 now = log_now();
	size_t		 i;
	int		 waiting = 0;

	log_line(s->acct, "qmgr", "%s: from=<%s>, size=%lld, nrcpt=%zu "
	    "(queue active)", qid(q), env->sender, (long long)q->msg.size,
	    env->nrcpt);
	if (s->tls_version != NULL && !s->tls_logged && s->addr[0] != '\0') {
		log_line(s->acct, "smtp", "TLS connection established to "
		    "%s[%s]:%lld: %s", s->host, s->addr, s->port,
		    s->tls_version);
		s->tls_logged = 1;
	}
	for (i = 0; i < env->nrcpt; i++) {
		log_rcpt(s, q, &env->rcpt[i], now);
		waiting += env->rcpt[i].st == ST_TEMP;
	}
	if (!waiting)
		log_line(s->acct, "qmgr", "%s: removed", qid(q));
}

/*
 * Recipients waited past queue_lifetime: returned to the sender (the
 * report is bounce's), as Postfix's qmgr says; removed when none is left.
 */
void
log_expired(const struct account *a, const struct qentry *q, int removed)
{
	log_line(a, "qmgr", "%s: from=<%s>, status=expired, returned to "
	    "sender", qid(q), q->env.sender);
	if (removed)
		log_line(a, "qmgr", "%s: removed", qid(q));
}
