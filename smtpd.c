/* SPDX-License-Identifier: ISC */
/*
 * -bs: SMTP on standard input and output (RFC 5321, the server's side),
 * for callers such as Alpine and Symfony Mailer. Each message accepted
 * here goes through the same pipeline as a command-line submission.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "outbox.h"
#include "io.h"

#define SERVER_TIMEOUT	300	/* seconds, RFC 5321 4.5.3.2.7 */

/* Where read_data() stands in the data. */
enum {
	D_BOL, D_TEXT, D_CR, D_DOT, D_DOTCR, D_END, D_BARE
};

struct smtpd {
	struct run		*r;
	const struct account	*a;
	const struct aliases	*al;
	const char		*fullname;
	int			 mode;		/* -od: 'i', 'b' or 'q' */
	struct io		 in;
	int			 helo;
	int			 mail;		/* MAIL given */
	char			 sender[ADDR_MAX + 1];
	struct strlist		 rcpt;
};

static int	reply(struct smtpd *, const char *, ...) PRINTF(2, 3);
static int	path_arg(const char *, const char *, char *, size_t,
		    const char **);
static int	read_data(struct smtpd *, int);
static int	data_step(int, char, FILE *);
static int	cmd_mail(struct smtpd *, const char *);
static int	cmd_rcpt(struct smtpd *, const char *);
static int	cmd_data(struct smtpd *);
static int	refused_all(const struct envelope *);
static void	refused(struct smtpd *, const struct qentry *,
		    const struct failure *);
static void	reset(struct smtpd *);
static void	answer(struct smtpd *, const struct qentry *,
		    const struct failure *);

/* Replies are sent when no pipelined command waits (RFC 2920 3.2). */
static int
reply(struct smtpd *d, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\r\n");
	if (io_pending(&d->in) == 0)
		fflush(stdout);
	return 0;
}

static void
reset(struct smtpd *d)
{
	d->mail = 0;
	d->sender[0] = '\0';
	strlist_free(&d->rcpt);
}

/*
 * Parses "FROM:<addr> params" (or TO:). Copies the address to buf and
 * points *params past it. -1 on bad syntax.
 */
static int
path_arg(const char *arg, const char *kw, char *buf, size_t size,
    const char **params)
{
	size_t		 n = strlen(kw);
	const char	*lt, *gt;

	if (strncasecmp(arg, kw, n) != 0)
		return -1;
	arg += n;
	arg += strspn(arg, " ");
	if (*arg != '<' || (gt = strchr(arg, '>')) == NULL)
		return -1;
	lt = arg + 1;
	if ((size_t)(gt - lt) >= size)
		return -1;
	memcpy(buf, lt, gt - lt);
	buf[gt - lt] = '\0';
	*params = gt + 1 + strspn(gt + 1, " ");
	return 0;
}

static int
cmd_mail(struct smtpd *d, const char *arg)
{
	char		 addr[ADDR_MAX + 1], err[256], *save, *p, buf[512];
	const char	*params;

	if (!d->helo)
		return reply(d, "503 5.5.1 Send HELO or EHLO first");
	if (d->mail)
		return reply(d, "503 5.5.1 Nested MAIL command");
	if (path_arg(arg, "FROM:", addr, sizeof(addr), &params) == -1)
		return reply(d, "501 5.5.4 Syntax: MAIL FROM:<address>");
	if (addr[0] != '\0' && addr_check(addr, err, sizeof(err)) == -1)
		return reply(d, "553 5.1.7 %s", err);
	strlcpy(buf, params, sizeof(buf));
	for (p = strtok_r(buf, " ", &save); p != NULL;
	    p = strtok_r(NULL, " ", &save))
		if (strncasecmp(p, "SIZE=", 5) != 0 &&
		    strncasecmp(p, "BODY=", 5) != 0 &&
		    strcasecmp(p, "SMTPUTF8") != 0)
			return reply(d, "555 5.5.4 Unsupported option: %s", p);
	strlcpy(d->sender, addr, sizeof(d->sender));
	d->mail = 1;
	return reply(d, "250 2.1.0 Ok");
}

static int
cmd_rcpt(struct smtpd *d, const char *arg)
{
	struct strlist	 l = { NULL, 0 };
	char		 addr[ADDR_MAX + 1], err[256];
	const char	*params;

	if (!d->mail)
		return reply(d, "503 5.5.1 Need MAIL before RCPT");
	if (path_arg(arg, "TO:", addr, sizeof(addr), &params) == -1)
		return reply(d, "501 5.5.4 Syntax: RCPT TO:<address>");
	if (*params != '\0')
		return reply(d, "555 5.5.4 Unsupported option: %s", params);
	if (d->rcpt.n >= RCPT_MAX)
		return reply(d, "452 4.5.3 Too many recipients");
	if (addr_parse_list(addr, strlen(addr), &l, err, sizeof(err)) == -1 ||
	    l.n != 1 || addr_check(l.v[0], err, sizeof(err)) == -1) {
		strlist_free(&l);
		return reply(d, "553 5.1.3 Bad recipient address");
	}
	strlist_add(&d->rcpt, l.v[0]);
	strlist_free(&l);
	return reply(d, "250 2.1.5 Ok");
}

/*
 * Copies the message up to the "." line into fd, undoing dot-stuffing
 * (RFC 5321 4.5.2). Lines may be of any length; only CRLF ends one, and
 * only CRLF "." CRLF ends the data. A bare LF or CR anywhere refuses the
 * whole message (what follows it is read and dropped up to the real end),
 * so "\n.\n" cannot end the data early and smuggle in a second
 * transaction (CVE-2023-51764; Postfix smtpd_forbid_bare_newline). Returns
 * 0, 1 for a bare LF or CR, -1 on end of input.
 */
static int
read_data(struct smtpd *d, int fd)
{
	FILE	*fp = fdopen(dup(fd), "w");
	char	*p;
	size_t	 len, i;
	int	 st = D_BOL, bare = 0, rv = -1;

	if (fp == NULL)
		return -1;
	while (rv == -1 && io_getpiece(&d->in, &p, &len) == 0)
		for (i = 0; i < len && rv == -1; i++) {
			st = data_step(st, p[i], bare ? NULL : fp);
			if (st == D_BARE) {
				/* What follows a bare CR may be "\r\n". */
				bare = 1;
				st = p[i] == '\n' ? D_TEXT :
				    data_step(D_TEXT, p[i], NULL);
			}
			if (st == D_END)
				rv = bare;
		}
	if (fclose(fp) == EOF)
		rv = -1;
	return rv;
}

/*
 * One octet of DATA in state st: writes what belongs to the message to fp
 * (unless NULL) and returns the next state.
 */
static int
data_step(int st, char c, FILE *fp)
{
	switch (st) {
	case D_BOL:
		if (c == '.')
			return D_DOT;	/* stuffing, or the end */
		break;
	case D_DOT:
		if (c == '\r')
			return D_DOTCR;
		break;			/* the stuffed dot is dropped */
	case D_DOTCR:
		return c == '\n' ? D_END : D_BARE;
	case D_CR:
		if (c != '\n')
			return D_BARE;
		if (fp != NULL)
			fputs("\r\n", fp);
		return D_BOL;
	}
	if (c == '\r')
		return D_CR;
	if (c == '\n')
		return D_BARE;
	if (fp != NULL)
		putc(c, fp);
	return D_TEXT;
}

/* Whether no recipient of env took the message. */
static int
refused_all(const struct envelope *env)
{
	size_t	i;

	for (i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].st != ST_PERM)
			return 0;
	return 1;
}

/*
 * The one reply to a message refused for good (no bounce is mailed: the
 * client hears it here). The smarthost's own reply when there is one,
 * with its enhanced code; else what outbox refused it for: the size the
 * smarthost announced (552 5.3.4) or the message itself (554 5.6.0).
 */
static void
refused(struct smtpd *d, const struct qentry *q, const struct failure *f)
{
	const struct reply	*rp;
	const char		*t;
	size_t			 i, n;

	for (i = 0; i < q->env.nrcpt; i++) {
		rp = &q->env.rcpt[i].reply;
		if (q->env.rcpt[i].st != ST_PERM || rp->code / 100 != 5)
			continue;
		t = rp->text;
		/* RFC 3463: its enhanced code, else one that says little. */
		n = t[0] == '5' && t[1] == '.' ? strspn(t + 2, "0123456789.") :
		    0;
		reply(d, "%d %s%.400s", rp->code, n >= 3 && t[2 + n] == ' ' ?
		    "" : "5.0.0 ", t);
		return;
	}
	if (strcmp(f->enhanced, "5.3.4") == 0)
		reply(d, "552 5.3.4 Message refused: %.400s", f->text);
	else
		reply(d, "554 %s Message refused: %.400s", f->enhanced[0] == '5' ?
		    f->enhanced : "5.6.0", f->text);
}

static int
cmd_data(struct smtpd *d)
{
	struct qentry	 q;
	struct msgopts	 mo;
	struct strlist	 rcpt = { NULL, 0 };
	char		 err[512];
	const char	*dir;
	FILE		*tmp;
	struct failure	 f;
	size_t		 i;
	int		 bare;

	if (!d->mail)
		return reply(d, "503 5.5.1 Need MAIL command");
	if (d->rcpt.n == 0)
		return reply(d, "554 5.5.1 No valid recipients");
	if ((tmp = tmpfile()) == NULL)
		return reply(d, "451 4.3.0 Cannot store the message");
	reply(d, "354 End data with <CR><LF>.<CR><LF>");
	fflush(stdout);
	if ((bare = read_data(d, fileno(tmp))) != 0) {
		fclose(tmp);
		reset(d);
		if (bare == -1)
			return -1;	/* the client went away mid-message */
		return reply(d, "550 5.5.2 Message refused: a bare LF or CR "
		    "in the data; end every line with CRLF");
	}
	rewind(tmp);
	memset(&mo, 0, sizeof(mo));
	mo.sender = d->sender[0] != '\0' ? d->sender : "MAILER-DAEMON";
	mo.fullname = d->fullname;
	mo.maildomain = d->a->maildomain;
	mo.aliases = d->al;
	mo.from_rewrite = d->a->from_rewrite ? d->a->from : NULL;
	dir = d->r->qdir != NULL ? d->r->qdir : "/tmp";
	mo.spool_dir = dir;
	if (d->r->qdir != NULL)
		mo.size_max = d->r->cfg->defaults.queue_max_message_size;
	memset(&q, 0, sizeof(q));
	if (message_read(&q.msg, &mo, fileno(tmp)) == -1) {
		fclose(tmp);
		reset(d);
		return reply(d, "554 5.6.0 %s", q.msg.fail.text);
	}
	fclose(tmp);
	if (addr_resolve(&d->rcpt, d->al, d->a->maildomain, &rcpt, err,
	    sizeof(err)) == -1) {
		message_close(&q.msg);
		reset(d);
		return reply(d, "554 5.1.3 %s", err);
	}
	q.env.sender = d->a->from_rewrite ? d->a->from : d->sender;
	q.env.rcpt = xcalloc(rcpt.n, sizeof(*q.env.rcpt));
	q.env.nrcpt = rcpt.n;
	for (i = 0; i < rcpt.n; i++) {
		q.env.rcpt[i].addr = rcpt.v[i];
		q.env.rcpt[i].st = ST_TEMP;
	}
	submit_message(d->r, d->a, &q, d->mode, &f);
	answer(d, &q, &f);
	message_close(&q.msg);
	free(q.env.rcpt);
	strlist_free(&rcpt);
	reset(d);
	return 0;
}

/*
 * The reply to the end of a message, from the submission's outcome: a
 * message refused for good gets one 5xx with the reason (no bounce is
 * mailed: the client hears it here).
 */
static void
answer(struct smtpd *d, const struct qentry *q, const struct failure *f)
{
	switch (f->class) {
	case FC_NONE:
		if (q->id[0] != '\0' && d->mode != 'i')
			reply(d, "250 2.0.0 Ok: queued as %s", q->id);
		else
			reply(d, "250 2.0.0 Ok");
		return;
	case FC_PERM:
		if (f->stage != STAGE_RCPT || refused_all(&q->env))
			refused(d, q, f);
		else if (q->env.sender[0] != '\0')
			reply(d, "250 2.0.0 Ok, but some recipients were "
			    "refused: a report goes to <%s>", q->env.sender);
		else
			reply(d, "250 2.0.0 Ok, but some recipients were "
			    "refused");
		return;
	case FC_TEMP:
	case FC_CONFIG:
		reply(d, "451 %s Not sent; try again later", f->enhanced[0] ==
		    '4' ? f->enhanced : "4.3.0");
		return;
	default:
		reply(d, "451 4.3.0 Local problem; try again later");
		return;
	}
}

/* Serves SMTP on stdin/stdout until QUIT or end of input. */
void
smtpd_run(struct run *r, const struct account *a, const struct aliases *al,
    const char *fullname, int mode)
{
	struct smtpd	 d;
	char		*line, *arg;
	size_t		 len;

	memset(&d, 0, sizeof(d));
	d.r = r;
	d.a = a;
	d.al = al;
	d.fullname = fullname;
	d.mode = mode;
	/*
	 * A refusal of some recipients is reported by mail: the client has
	 * its 250 by then. A refusal of the whole message is the reply.
	 */
	r->errmode = 's';
	io_init(&d.in, STDIN_FILENO, SERVER_TIMEOUT * 1000);
	reply(&d, "220 %s ESMTP outbox", config_hostname());
	while (io_getline(&d.in, &line, &len) == 0) {
		arg = line + strcspn(line, " ");
		if (*arg == ' ')
			*arg++ = '\0';
		if (strcasecmp(line, "EHLO") == 0 || strcasecmp(line, "HELO")
		    == 0) {
			if (*arg == '\0') {
				reply(&d, "501 5.5.4 Syntax: %s hostname",
				    line);
				continue;
			}
			reset(&d);
			d.helo = 1;
			if (strcasecmp(line, "HELO") == 0)
				reply(&d, "250 %s", config_hostname());
			else
				reply(&d, "250-%s\r\n250-PIPELINING\r\n"
				    "250-8BITMIME\r\n250-SMTPUTF8\r\n"
				    "250-ENHANCEDSTATUSCODES\r\n250 HELP",
				    config_hostname());
		} else if (strcasecmp(line, "MAIL") == 0)
			cmd_mail(&d, arg);
		else if (strcasecmp(line, "RCPT") == 0)
			cmd_rcpt(&d, arg);
		else if (strcasecmp(line, "DATA") == 0) {
			if (cmd_data(&d) == -1)
				break;
		}
		else if (strcasecmp(line, "RSET") == 0) {
			reset(&d);
			reply(&d, "250 2.0.0 Ok");
		} else if (strcasecmp(line, "NOOP") == 0)
			reply(&d, "250 2.0.0 Ok");
		else if (strcasecmp(line, "VRFY") == 0)
			reply(&d, "252 2.5.2 Cannot VRFY; send and see");
		else if (strcasecmp(line, "HELP") == 0)
			reply(&d, "214 2.0.0 EHLO HELO MAIL RCPT DATA RSET "
			    "NOOP VRFY QUIT");
		else if (strcasecmp(line, "QUIT") == 0) {
			reply(&d, "221 2.0.0 Bye");
			break;
		} else
			reply(&d, "500 5.5.2 Command not recognized: %.40s",
			    line);
	}
	fflush(stdout);
	reset(&d);
}
