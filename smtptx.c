/* SPDX-License-Identifier: ISC */
/*
 * One message over an open SMTP session (RFC 5321, 3030, 3461, 9422):
 * local checks, MAIL with its parameters, pipelined RCPTs and their
 * replies, DATA or BDAT, the end-of-data reply per recipient, RSET, and
 * as many transactions as 452s and LIMITS ask for. smtp.c owns the session.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "outbox.h"
#include "io.h"
#include "smtp.h"

#define INLINE_MAX	(64 * 1024)	/* BDAT this small goes with RCPT */

/* One transaction on its way. */
struct tx {
	off_t		 size;		/* octets of the message on the wire */
	size_t		 accepted;	/* RCPTs that got 2xx */
	int		 qp;		/* RENDER_QP and RENDER_7BIT, or 0 */
	int		 pipelining, bdat;
	int		 inl;		/* BDAT LAST goes with the envelope */
	int		 data_sent;	/* DATA or BDAT went with the envelope */
	char		 params[1024];	/* MAIL FROM parameters */
};

static int	raw_out(void *, const char *, size_t);
static int	count_out(void *, const char *, size_t);
static void	xtext(char *, size_t, const char *);
static enum status doubt(struct session *, const char *);
static int	rset(struct session *);
static enum status tx_prepare(struct session *, const struct message *,
		    struct envelope *, struct tx *);
static int	rcpt_command(struct session *, const struct envelope *,
		    struct rcpt *);
static int	rcpt_result(struct session *, struct tx *, struct rcpt *, int);
static int	rcpt_replies(struct session *, struct envelope *, struct tx *);
static enum status mail_refused(struct session *, struct envelope *,
		    struct tx *, int);
static enum status end_of_data(struct session *, struct envelope *,
		    enum stage, int);
static int	body_out(struct session *, const struct message *,
		    const struct tx *);
static enum status data(struct session *, const struct message *,
		    struct envelope *, struct tx *);
static enum status transaction(struct session *, const struct message *,
		    struct envelope *);
static int	again(const struct envelope *);

/* DATA: dot-stuffs lines that begin with "." (RFC 5321 4.5.2). */
int
smtptx_data_out(void *arg, const char *p, size_t n)
{
	struct dotsink	*d = arg;
	const char	*end = p + n, *nl;

	while (p < end) {
		if (d->bol && *p == '.' && io_write(d->io, ".", 1) == -1)
			return -1;
		nl = memchr(p, '\n', end - p);
		nl = nl != NULL ? nl + 1 : end;
		if (io_write(d->io, p, nl - p) == -1)
			return -1;
		d->bol = nl[-1] == '\n';
		p = nl;
	}
	return 0;
}

static int
raw_out(void *arg, const char *p, size_t n)
{
	return io_write(arg, p, n);
}

static int
count_out(void *arg, const char *p, size_t n)
{
	(void)p;
	*(off_t *)arg += n;
	return 0;
}


/*
 * The server's state is in doubt (a reply that fits no command we sent,
 * a 503 where a transaction should be open or closed): nothing more goes
 * over this session. The caller goes on in a new one.
 */
static enum status
doubt(struct session *s, const char *what)
{
	smtpio_failx(s, s->stage, FC_TEMP, "%s (%d %s); ending the session",
	    what, s->reply.code, s->reply.text);
	smtp_hangup(s);
	return ST_TEMP;
}

/* After a transaction that did not end cleanly: RSET, and its 250. */
static int
rset(struct session *s)
{
	s->stage = STAGE_MAIL;
	if (smtpio_command(s, 0, "RSET") == 0 && smtpio_reply(s) == 250) {
		s->dirty = 0;
		return 0;
	}
	if (s->connected)
		doubt(s, "RSET failed");
	return -1;
}

/* xtext (RFC 3461 4): "+", "=" and octets outside 33..126 as +XX. */
static void
xtext(char *buf, size_t size, const char *s)
{
	size_t	n = 0;

	for (; *s != '\0' && n + 4 < size; s++) {
		unsigned char c = *s;

		if (c < 33 || c > 126 || c == '+' || c == '=')
			n += snprintf(buf + n, size - n, "+%02X", c);
		else
			buf[n++] = c;
	}
	buf[n] = '\0';
}

/*
 * Checks what must hold before a message may go (encoding, SMTPUTF8, SIZE)
 * and works out its parameters. ST_PERM refuses it locally, before a
 * command is sent: at STAGE_LOCAL for the message itself, at STAGE_MAIL
 * for the server's SIZE.
 */
static enum status
tx_prepare(struct session *s, const struct message *m, struct envelope *env,
    struct tx *tx)
{
	char		 buf[ADDR_MAX * 3 + 32];
	size_t		 i;
	int		 utf8 = 0;
	const char	*p;

	memset(tx, 0, sizeof(*tx));
	tx->qp = m->max_line > 998 || m->nul ? RENDER_QP : 0;
	/* No 8BITMIME: 8-bit header text is encoded, and the body when it
	 * is 8-bit (a multipart message may have it only in its Subject). */
	if (m->eightbit && !(s->ext & EXT_8BITMIME))
		tx->qp |= RENDER_7BIT | (message_body_8bit(m) != 0 ?
		    RENDER_QP : 0);
	if ((tx->qp & RENDER_QP) && !message_qp_allowed(m))
		return smtpio_failx(s, STAGE_LOCAL, FC_PERM, "the message needs "
		    "re-encoding (%s) but is %s; send it encoded",
		    m->max_line > 998 ? "a line over 998 octets" : m->nul ?
		    "a NUL byte" : "8-bit text, and the server lacks 8BITMIME",
		    m->multipart ? "multipart" : "already encoded");
	for (p = env->sender; *p != '\0'; p++)
		utf8 |= (unsigned char)*p >= 0x80;
	for (i = 0; i < env->nrcpt; i++) {
		env->rcpt[i].accepted = env->rcpt[i].again = 0;
		env->rcpt[i].sent = 0;
		if (!env->rcpt[i].done)
			env->rcpt[i].st = ST_TEMP;
		for (p = env->rcpt[i].addr; *p != '\0'; p++)
			utf8 |= (unsigned char)*p >= 0x80;
	}
	if (utf8 && !(s->ext & EXT_SMTPUTF8))
		return smtpio_failx(s, STAGE_LOCAL, FC_PERM, "an address is not "
		    "ASCII and the server does not offer SMTPUTF8");
	if (tx->qp)
		render_message(m, tx->qp, count_out, &tx->size);
	else
		tx->size = m->size;
	if ((s->ext & EXT_SIZE) && s->size_max > 0 &&
	    (unsigned long long)tx->size > s->size_max) {
		smtpio_failx(s, STAGE_MAIL, FC_PERM, "the message is %lld octets; "
		    "the server takes at most %llu (SIZE)",
		    (long long)tx->size, s->size_max);
		strlcpy(s->fail.enhanced, "5.3.4", sizeof(s->fail.enhanced));
		return ST_PERM;
	}
	tx->pipelining = (s->ext & EXT_PIPELINING) != 0;
	tx->bdat = (s->ext & EXT_CHUNKING) != 0;
	tx->inl = tx->bdat && tx->pipelining && tx->size <= INLINE_MAX;
	if (s->ext & EXT_SIZE)
		snprintf(tx->params, sizeof(tx->params), " SIZE=%lld",
		    (long long)tx->size);
	if (m->eightbit && !tx->qp && (s->ext & EXT_8BITMIME))
		strlcat(tx->params, " BODY=8BITMIME", sizeof(tx->params));
	if (utf8)
		strlcat(tx->params, " SMTPUTF8", sizeof(tx->params));
	if ((s->ext & EXT_DSN) && env->ret != NULL) {
		strlcat(tx->params, " RET=", sizeof(tx->params));
		strlcat(tx->params, env->ret, sizeof(tx->params));
	}
	/* RFC 8689 4.2.1: only over verified TLS, to a server that offers
	 * it; else the message is refused, for good. */
	if (env->requiretls && (!(s->ext & EXT_REQUIRETLS) ||
	    s->io.ssl == NULL)) {
		smtpio_failx(s, STAGE_MAIL, FC_PERM, "REQUIRETLS: %s", s->io.ssl ==
		    NULL ? "the session is not TLS" : "the server does not offer "
		    "REQUIRETLS, so it cannot keep the message on TLS");
		strlcpy(s->fail.enhanced, "5.7.30", sizeof(s->fail.enhanced));
		return ST_PERM;
	}
	if (env->requiretls)
		strlcat(tx->params, " REQUIRETLS", sizeof(tx->params));
	if ((s->ext & EXT_DSN) && env->envid != NULL) {
		xtext(buf, sizeof(buf), env->envid);
		strlcat(tx->params, " ENVID=", sizeof(tx->params));
		strlcat(tx->params, buf, sizeof(tx->params));
	}
	return ST_OK;
}

/*
 * Buffers one RCPT, with the DSN parameters when asked for and offered;
 * -1 when the session failed.
 */
static int
rcpt_command(struct session *s, const struct envelope *env, struct rcpt *r)
{
	char	params[1024], buf[ADDR_MAX * 3 + 32];

	params[0] = '\0';
	if ((s->ext & EXT_DSN) && env->notify != NULL) {
		xtext(buf, sizeof(buf), r->addr);
		if (snprintf(params, sizeof(params), " NOTIFY=%s "
		    "ORCPT=rfc822;%s", env->notify, buf) < 0)
			params[0] = '\0';
	}
	if (smtpio_command(s, 0, "RCPT TO:<%s>%s", r->addr, params) == -1)
		return -1;
	r->sent = 1;
	return 0;
}

/*
 * Notes the reply to one RCPT: 2xx accepted, 452 "too many recipients"
 * goes in the next transaction (RFC 5321 4.5.3.1.10), other 4xx later,
 * 5xx never. -1 when the session is lost or out of step.
 */
static int
rcpt_result(struct session *s, struct tx *tx, struct rcpt *r, int code)
{
	if (code == -1)
		return -1;
	r->reply = s->reply;
	if (code / 100 == 2) {
		r->accepted = 1;
		tx->accepted++;
	} else if (code / 100 == 4 || code / 100 == 5) {
		r->st = code / 100 == 4 ? ST_TEMP : ST_PERM;
		r->done = r->st == ST_PERM;
		r->again = code == 452;
	} else {
		doubt(s, "unexpected reply to RCPT");
		return -1;
	}
	return 0;
}

/* Reads the replies to the RCPTs that went out with the envelope. */
static int
rcpt_replies(struct session *s, struct envelope *env, struct tx *tx)
{
	size_t	i;

	s->stage = STAGE_RCPT;
	for (i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].sent &&
		    rcpt_result(s, tx, &env->rcpt[i], smtpio_reply(s)) == -1)
			return -1;
	return 0;
}

/*
 * MAIL refused: every recipient not done shares its fate. The replies to
 * the commands pipelined behind it still come and are read; any of them
 * that accepts something (the server thinks another transaction is open)
 * puts the session in doubt, and so does a 503 to MAIL itself.
 */
static enum status
mail_refused(struct session *s, struct envelope *env, struct tx *tx,
    int code)
{
	struct reply	mail = s->reply;
	size_t		i, pending = 0;
	int		odd = 0, c;
	enum status	st;

	if (code == -1 || !s->connected)
		return ST_TEMP;		/* lost, or 421: closing() said it */
	for (i = 0; i < env->nrcpt; i++)
		pending += env->rcpt[i].sent;
	pending += tx->data_sent;
	for (i = 0; i < pending; i++) {
		if ((c = smtpio_reply(s)) == -1)
			return ST_TEMP;
		odd |= c / 100 == 2 || c / 100 == 3;
	}
	s->reply = mail;
	st = smtpio_refused(s, STAGE_MAIL, "sender <%s> refused: %d %s", env->sender,
	    code, mail.text);
	for (i = 0; i < env->nrcpt; i++)
		if (!env->rcpt[i].done) {
			env->rcpt[i].st = st;
			env->rcpt[i].done = st == ST_PERM;
			env->rcpt[i].reply = mail;
		}
	if (code == 503 || odd) {
		s->reply = mail;
		doubt(s, odd ? "the server accepted commands after refusing "
		    "MAIL" : "MAIL out of sequence");
		for (i = 0; i < env->nrcpt; i++)
			if (!env->rcpt[i].done)
				env->rcpt[i].st = ST_TEMP;
		return ST_TEMP;
	}
	return st;
}

/*
 * The reply to the end of the message decides for every recipient that
 * RCPT accepted; a 2xx is a delivery. Nothing after it may be pending:
 * a reply that answers nothing puts the session in doubt.
 */
static enum status
end_of_data(struct session *s, struct envelope *env, enum stage stage,
    int code)
{
	size_t		i;
	enum status	st;

	s->stage = stage;
	if (code == -1 && s->closed)
		return ST_TEMP;		/* 421 before: closing() said it */
	if (code == -1) {
		char	why[sizeof(s->fail.text)];

		strlcpy(why, s->fail.text, sizeof(why));
		if (smtpio_lost(s))
			smtpio_failx(s, s->stage, FC_TEMP, "no reply after "
			    "the message was sent (%s); it may arrive twice",
			    why);
		else
			smtpio_failx(s, s->stage, FC_TEMP, "the message was "
			    "not sent whole (%s)", why);
		return ST_TEMP;		/* recipients stay ST_TEMP */
	}
	if (code / 100 == 2)
		st = ST_OK;
	else if (code == 503 || code / 100 == 3)
		return doubt(s, "unexpected reply to the end of the message");
	else
		st = smtpio_refused(s, stage, "message refused: %d %s", code,
		    s->reply.text);
	for (i = 0; i < env->nrcpt; i++) {
		struct rcpt *r = &env->rcpt[i];

		if (r->done || !r->accepted)
			continue;
		r->st = st;
		r->done = st != ST_TEMP;
		r->reply = s->reply;
	}
	s->dirty = st != ST_OK;
	if (s->connected && io_pending(&s->io) > 0)
		doubt(s, "the server sent a reply nobody asked for");
	return st;
}

/*
 * Writes the message: BDAT LAST and the octets, or the dot-stuffed DATA.
 * A failure ends the session: the server is in the middle of the body,
 * so no command may follow; -1 with s->fail saying why.
 */
static int
body_out(struct session *s, const struct message *m, const struct tx *tx)
{
	struct dotsink	dot = { &s->io, 1 };
	int		rv;

	if (s->verbose)
		fprintf(stderr, "-> [message: %lld octets]\n",
		    (long long)tx->size);
	if (tx->bdat)
		rv = render_message(m, tx->qp, raw_out, &s->io);
	else
		rv = render_message(m, tx->qp, smtptx_data_out, &dot) == -1 ||
		    io_write(&s->io, ".\r\n", 3) == -1 ? -1 : 0;
	if (rv == -1) {
		smtpio_failx(s, s->stage, FC_TEMP, "sending the message: %s",
		    s->io.err[0] != '\0' ? s->io.err : "cannot read the spool "
		    "file");
		s->io.failed = 1;
		s->connected = 0;
		return -1;
	}
	if (s->verbose && !tx->bdat)
		fprintf(stderr, "-> .\n");
	return 0;
}

/*
 * After the envelope: the message goes if a recipient was accepted. With
 * DATA the 354 comes first; BDAT sent with the envelope has its reply due.
 */
static enum status
data(struct session *s, const struct message *m, struct envelope *env,
    struct tx *tx)
{
	int	code;

	s->stage = STAGE_DATA;
	if (tx->data_sent && tx->bdat) {
		if ((code = smtpio_reply(s)) == -1 && tx->accepted == 0)
			return ST_TEMP;
		if (tx->accepted > 0)
			return end_of_data(s, env, STAGE_EOD, code);
		return code / 100 == 2 ? doubt(s, "BDAT accepted without a "
		    "recipient") : ST_OK;
	}
	if (tx->accepted == 0 && !tx->data_sent)
		return ST_OK;	/* nobody to send it to; RSET comes next */
	if (tx->bdat) {
		if (smtpio_command(s, 0, "BDAT %lld LAST", (long long)tx->size) ==
		    -1 || body_out(s, m, tx) == -1)
			return ST_TEMP;
		return end_of_data(s, env, STAGE_EOD, smtpio_reply(s));
	}
	if (!tx->data_sent && smtpio_command(s, 0, "DATA") == -1)
		return ST_TEMP;
	if ((code = smtpio_reply(s)) == -1)
		return ST_TEMP;
	if (tx->accepted == 0)	/* RFC 2920 3.1: a 354 here is a bug */
		return code == 354 ? doubt(s, "354 without a recipient") :
		    ST_OK;
	if (code != 354)
		return code / 100 == 2 ? doubt(s, "unexpected reply to DATA") :
		    end_of_data(s, env, STAGE_DATA, code);
	if (body_out(s, m, tx) == -1)
		return ST_TEMP;
	return end_of_data(s, env, STAGE_EOD, smtpio_reply(s));
}

/*
 * One transaction. With PIPELINING, MAIL, every RCPT and (for a small
 * message with CHUNKING) BDAT LAST with the message go in one write, and
 * the replies are read in order, each matched to its command (RFC 2920).
 * The transaction is over when the reply to the end of the message is
 * read; the next one starts only then.
 */
static enum status
transaction(struct session *s, const struct message *m, struct envelope *env)
{
	struct tx	tx;
	size_t		i;
	int		code;
	enum status	st;

	if ((st = tx_prepare(s, m, env, &tx)) != ST_OK)
		return st;
	smtplimits_rcpt_split(s, env);	/* max_rcpt, LIMITS: "again" */
	if (s->dirty && rset(s) == -1)
		return ST_TEMP;
	s->stage = STAGE_MAIL;
	if (smtpio_command(s, 0, "MAIL FROM:<%s>%s", env->sender, tx.params) ==
	    -1)
		return ST_TEMP;
	s->dirty = 1;		/* until the end of the message is answered */
	if (!tx.pipelining && (code = smtpio_reply(s)) / 100 != 2)
		return mail_refused(s, env, &tx, code);
	for (i = 0; i < env->nrcpt; i++) {
		if (env->rcpt[i].done || env->rcpt[i].again)
			continue;
		if (rcpt_command(s, env, &env->rcpt[i]) == -1)
			return ST_TEMP;
		s->stage = STAGE_RCPT;
		if (!tx.pipelining &&
		    rcpt_result(s, &tx, &env->rcpt[i], smtpio_reply(s)) == -1)
			return ST_TEMP;
	}
	if (!tx.pipelining)
		return data(s, m, env, &tx);
	if (tx.inl) {
		if (smtpio_command(s, 0, "BDAT %lld LAST", (long long)tx.size) ==
		    -1 || body_out(s, m, &tx) == -1)
			return ST_TEMP;
		tx.data_sent = 1;
	} else if (!tx.bdat) {
		if (smtpio_command(s, 0, "DATA") == -1)
			return ST_TEMP;
		tx.data_sent = 1;
	}
	s->stage = STAGE_MAIL;
	if ((code = smtpio_reply(s)) / 100 != 2)
		return mail_refused(s, env, &tx, code);
	if (rcpt_replies(s, env, &tx) == -1)
		return ST_TEMP;
	return data(s, m, env, &tx);
}

/*
 * Whether a transaction that settled someone left recipients for the next
 * one now: 452'd, or past max_rcpt or LIMITS.
 */
static int
again(const struct envelope *env)
{
	size_t	i;
	int	progress = 0, more = 0;

	for (i = 0; i < env->nrcpt; i++) {
		progress |= env->rcpt[i].sent && env->rcpt[i].done;
		more |= env->rcpt[i].again && !env->rcpt[i].done;
	}
	return progress && more;
}

/*
 * Sends one message to every recipient not yet done, in as many
 * transactions of this session as "452 too many recipients", max_rcpt and
 * RFC 9422 LIMITS ask for (MAILMAX ends the session's share).
 * A recipient is ST_OK only after the 2xx to the end of data, ST_PERM when
 * refused for good, else ST_TEMP. The return value is the message's own
 * outcome (ST_PERM from MAIL, DATA, the end of data or a local check),
 * with s->fail saying why.
 */
enum status
smtptx_send(struct session *s, const struct message *m, struct envelope *env)
{
	enum status	st;
	size_t		n;

	for (n = 0;; n++) {
		s->fail.class = FC_NONE;
		st = transaction(s, m, env);
		s->ntx++;
		if (st != ST_OK || !s->connected || n >= env->nrcpt ||
		    !again(env) || (s->mailmax > 0 &&
		    s->ntx >= (unsigned long long)s->mailmax))
			return st;
	}
}
