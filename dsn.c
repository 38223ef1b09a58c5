/* SPDX-License-Identifier: ISC */
/*
 * Delivery status notifications (RFC 3464): a bounce or a delay warning
 * as multipart/report, with a part for people, one for programs
 * (message/delivery-status) and the original message's header
 * (text/rfc822-headers, RFC 6522), the form MUAs, ticket systems and
 * mailing-list software parse.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "outbox.h"

/* Octets of a free-text field; a line may have 998 (RFC 5322). */
#define FIELD_MAX	900

static int	 listed(const struct dsn *, const struct rcpt *);
static void	 rfc5322_date(char *, size_t, time_t);
static void	 put_text(FILE *, const char *);
static int	 enhanced(const struct reply *, char *, size_t);
static void	 human_part(FILE *, const struct dsn *);
static void	 status_part(FILE *, const struct dsn *);
static void	 rcpt_fields(FILE *, const struct dsn *, const struct rcpt *,
		    const char *);
static int	 header_part(FILE *, const struct dsn *);

/* A recipient the report is about: failed for good, or still waiting. */
static int
listed(const struct dsn *d, const struct rcpt *rc)
{
	return d->delayed ? rc->st == ST_TEMP : rc->st == ST_PERM;
}

static void
rfc5322_date(char *buf, size_t size, time_t t)
{
	struct tm	*tm = localtime(&t);

	if (tm == NULL || strftime(buf, size, "%a, %d %b %Y %H:%M:%S %z",
	    tm) == 0)
		strlcpy(buf, "Thu, 01 Jan 1970 00:00:00 +0000", size);
}

/* Writes s as one bounded line of printable ASCII: nothing else may
 * reach a header field of the report. */
static void
put_text(FILE *fp, const char *s)
{
	size_t	i;

	for (i = 0; i < FIELD_MAX && s[i] != '\0'; i++)
		putc(s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?', fp);
}

/*
 * The enhanced status code (RFC 3463) that opens the reply's text, when
 * its class agrees with the reply code: 1 and the code in buf, else 0.
 */
static int
enhanced(const struct reply *r, char *buf, size_t size)
{
	const char	*p = r->text;
	int		 part, n;

	if (r->code / 100 < 2 || r->code / 100 > 5 || p[0] - '0' !=
	    r->code / 100)
		return 0;
	/* class "." subject "." detail, subject and detail 1-3 digits */
	for (p++, part = 0; part < 2; part++) {
		if (*p++ != '.')
			return 0;
		for (n = 0; isdigit((unsigned char)*p) && n < 3; n++)
			p++;
		if (n == 0)
			return 0;
	}
	if (*p != ' ' && *p != '\0')
		return 0;
	snprintf(buf, size, "%.*s", (int)(p - r->text), r->text);
	return 1;
}

static void
human_part(FILE *fp, const struct dsn *d)
{
	size_t	i;

	fprintf(fp, "Content-Type: text/plain; charset=us-ascii\n\n"
	    "This is outbox on %s.\n\n", d->mta);
	if (d->delayed)
		fprintf(fp, "Your message could not be delivered yet to these "
		    "recipients.\nIt stays in the queue and will be tried "
		    "again; you need not send it again.\n\n");
	else
		fprintf(fp, "Your message could not be delivered to these "
		    "recipients,\nand it will not be tried again:\n\n");
	for (i = 0; i < d->env->nrcpt; i++) {
		const struct rcpt *rc = &d->env->rcpt[i];

		if (!listed(d, rc))
			continue;
		fprintf(fp, "  <%s>: ", rc->addr);
		if (rc->reply.code != 0)
			fprintf(fp, "%d ", rc->reply.code);
		put_text(fp, rc->reply.code != 0 ? rc->reply.text : d->why);
		fprintf(fp, "\n");
	}
	fprintf(fp, "\nThe header of your message is attached.\n\n");
}

/* The per-recipient block of message/delivery-status (RFC 3464 2.3). */
static void
rcpt_fields(FILE *fp, const struct dsn *d, const struct rcpt *rc,
    const char *now)
{
	char	code[16];

	if (!enhanced(&rc->reply, code, sizeof(code)))
		strlcpy(code, d->delayed ? "4.0.0" : "5.0.0", sizeof(code));
	fprintf(fp, "\nFinal-Recipient: rfc822; %s\n", rc->addr);
	fprintf(fp, "Action: %s\nStatus: %s\n", d->delayed ? "delayed" :
	    "failed", code);
	if (rc->reply.code != 0) {
		if (d->relay != NULL && d->relay[0] != '\0')
			fprintf(fp, "Remote-MTA: dns; %s\n", d->relay);
		fprintf(fp, "Diagnostic-Code: smtp; %d ", rc->reply.code);
		put_text(fp, rc->reply.text);
	} else {
		fprintf(fp, "Diagnostic-Code: X-outbox; ");
		put_text(fp, d->why);
	}
	fprintf(fp, "\nLast-Attempt-Date: %s\n", now);
}

static void
status_part(FILE *fp, const struct dsn *d)
{
	char	date[64];
	size_t	i;

	fprintf(fp, "Content-Type: message/delivery-status\n\n"
	    "Reporting-MTA: dns; %s\n", d->mta);
	if (d->env->envid != NULL) {
		fprintf(fp, "Original-Envelope-Id: ");
		put_text(fp, d->env->envid);
		fprintf(fp, "\n");
	}
	if (d->arrival != 0) {
		rfc5322_date(date, sizeof(date), d->arrival);
		fprintf(fp, "Arrival-Date: %s\n", date);
	}
	rfc5322_date(date, sizeof(date), time(NULL));
	for (i = 0; i < d->env->nrcpt; i++)
		if (listed(d, &d->env->rcpt[i]))
			rcpt_fields(fp, d, &d->env->rcpt[i], date);
	fprintf(fp, "\n");
}

/* The original header, CRLF made LF, from the spool file. */
static int
header_part(FILE *fp, const struct dsn *d)
{
	char	 buf[4096];
	off_t	 off;
	ssize_t	 n, k;

	fprintf(fp, "Content-Type: text/rfc822-headers\n"
	    "Content-Transfer-Encoding: 8bit\n\n");
	for (off = 0; off < d->msg->body; off += n) {
		n = pread(d->msg->fd, buf, (size_t)(d->msg->body - off) <
		    sizeof(buf) ? (size_t)(d->msg->body - off) : sizeof(buf),
		    off);
		if (n <= 0)
			return -1;
		for (k = 0; k < n; k++)
			if (buf[k] != '\r')
				putc(buf[k], fp);
	}
	return 0;
}

/*
 * Writes the whole report, header included, to fp with LF line ends:
 * From MAILER-DAEMON@maildomain to the envelope sender, about the
 * recipients that failed (or, with delayed, still wait). 0, or -1 when
 * the original's header cannot be read or fp cannot be written.
 */
int
dsn_write(FILE *fp, const struct dsn *d)
{
	unsigned char	rnd[8];
	char		bnd[64];

	arc4random_buf(rnd, sizeof(rnd));
	snprintf(bnd, sizeof(bnd), "=_outbox_%02x%02x%02x%02x%02x%02x%02x%02x",
	    rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	fprintf(fp, "From: Mail Delivery System <MAILER-DAEMON@%s>\n"
	    "To: <%s>\nSubject: %s\nAuto-Submitted: auto-replied\n"
	    "MIME-Version: 1.0\nContent-Type: multipart/report; "
	    "report-type=delivery-status;\n\tboundary=\"%s\"\n\n"
	    "This is a MIME-encapsulated delivery status notification.\n"
	    "\n--%s\n", d->maildomain, d->env->sender, d->delayed ?
	    "Delayed Mail (still being retried)" :
	    "Undelivered Mail Returned to Sender", bnd, bnd);
	human_part(fp, d);
	fprintf(fp, "--%s\n", bnd);
	status_part(fp, d);
	fprintf(fp, "--%s\n", bnd);
	if (header_part(fp, d) == -1)
		return -1;
	fprintf(fp, "\n--%s--\n", bnd);
	return fflush(fp) == 0 && !ferror(fp) ? 0 : -1;
}
