/* SPDX-License-Identifier: ISC */
/*
 * A queue entry's envelope (ID.env) read back as the hostile input it is,
 * and whose entry it is: the account that may carry it, and for whom.
 */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "outbox.h"
#include "queue.h"

#define ENV_LINE_MAX	(PATH_MAX + 16)
#define TIME_MAX	(1LL << 40)	/* seconds: past the year 36000 */
#define NOCONFIG	"(no configuration)"	/* config.c's cfg->defaults */

struct efield {
	const char	*name;
	int		(*set)(struct qentry *, const char *, char *, size_t);
	int		 need;		/* version 2 has it */
	int		 many;		/* may repeat */
	long long	 max;		/* a number in [0, max] when set is NULL */
};

static int	 number(const char *, long long, long long, long long *);
static int	 env_addr(const char *, char *, size_t);
static int	 printable(const char *, int, size_t);
static int	 set_account(struct qentry *, const char *, char *, size_t);
static int	 set_file(struct qentry *, const char *, char *, size_t);
static int	 set_sender(struct qentry *, const char *, char *, size_t);
static int	 set_flags(struct qentry *, const char *, char *, size_t);
static int	 set_notify(struct qentry *, const char *, char *, size_t);
static int	 set_ret(struct qentry *, const char *, char *, size_t);
static int	 set_envid(struct qentry *, const char *, char *, size_t);
static int	 set_error(struct qentry *, const char *, char *, size_t);
static int	 set_rcpt(struct qentry *, const char *, char *, size_t);
static int	 set_id(char *, const char *, char *, size_t);
static int	 set_orig(struct qentry *, const char *, char *, size_t);
static int	 set_report(struct qentry *, const char *, char *, size_t);
static int	 env_line(struct qentry *, char *, unsigned *, long long *,
		    char *, size_t);
static void	 env_numbers(struct qentry *, const long long *);

static const struct efield fields[] = {
	{ "owner",	NULL,		1, 0, UINT_MAX - 1 },
	{ "created",	NULL,		1, 0, TIME_MAX },
	{ "next",	NULL,		1, 0, TIME_MAX },
	{ "attempts",	NULL,		1, 0, INT_MAX / 2 },
	{ "account",	set_account,	1, 0, 0 },
	{ "file",	set_file,	1, 0, 0 },
	{ "sender",	set_sender,	1, 0, 0 },
	{ "size",	NULL,		1, 0, LLONG_MAX },
	{ "body",	NULL,		1, 0, LLONG_MAX },
	{ "maxline",	NULL,		1, 0, LLONG_MAX },
	{ "flags",	set_flags,	1, 0, 0 },
	{ "notify",	set_notify,	0, 0, 0 },
	{ "ret",	set_ret,	0, 0, 0 },
	{ "envid",	set_envid,	0, 0, 0 },
	{ "error",	set_error,	0, 0, 0 },
	{ "rcpt",	set_rcpt,	1, 1, 0 },
	{ "warned",	NULL,		0, 0, 1 },
	{ "orig",	set_orig,	0, 0, 0 },
	{ "report",	set_report,	0, 0, 0 },
	{ "held",	NULL,		0, 0, 1 },
	{ "requiretls",	NULL,		0, 0, 1 },	/* RFC 8689 */
};
#define NFIELDS	(sizeof(fields) / sizeof(fields[0]))
#define F_FILE	5	/* fields[F_FILE]: new in version 2 */
#define F_RCPT	15	/* none is owed once the report is written */
#define F_REPORT 18

/* A decimal number of digits only (no sign, no space) in [min, max]. */
static int
number(const char *v, long long min, long long max, long long *out)
{
	const char	*e = NULL;

	if (v[0] == '\0' || strspn(v, "0123456789") != strlen(v) ||
	    strlen(v) > 19)
		return -1;
	*out = strtonum(v, min, max, &e);
	return e == NULL ? 0 : -1;
}

/* Whether v has no control octets and fewer than max; space as told. */
static int
printable(const char *v, int space, size_t max)
{
	const unsigned char	*p;

	for (p = (const unsigned char *)v; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f || (*p == ' ' && !space))
			return 0;
	return (size_t)(p - (const unsigned char *)v) < max;
}

/* An envelope address: addr_check's rules, and spaces only in quotes. */
static int
env_addr(const char *v, char *err, size_t errlen)
{
	int	quoted = 0;

	if (addr_check(v, err, errlen) == -1)
		return -1;
	for (; *v != '\0'; v++) {
		if (*v == '\\' && quoted && v[1] != '\0')
			v++;
		else if (*v == '"')
			quoted = !quoted;
		else if (*v == ' ' && !quoted) {
			snprintf(err, errlen, "address with a space");
			return -1;
		}
	}
	return 0;
}

/* An account name as config.c takes it: one word, no controls. */
static int
set_account(struct qentry *q, const char *v, char *err, size_t errlen)
{
	if (v[0] == '\0' || !printable(v, 0, 256)) {
		snprintf(err, errlen, "bad account name");
		return -1;
	}
	q->account = xstrdup(v);
	return 0;
}

/*
 * The file that defined the account, as the run named it (-C may give a
 * relative path), or config.c's stand-in for none.
 */
static int
set_file(struct qentry *q, const char *v, char *err, size_t errlen)
{
	if (strcmp(v, "(unknown)") == 0)
		return 0;
	if (v[0] == '\0' || !printable(v, 1, PATH_MAX)) {
		snprintf(err, errlen, "bad account file");
		return -1;
	}
	q->account_file = xstrdup(v);
	return 0;
}

static int
set_sender(struct qentry *q, const char *v, char *err, size_t errlen)
{
	if (v[0] != '\0' && env_addr(v, err, errlen) == -1)
		return -1;
	q->env.sender = xstrdup(v);
	return 0;
}

/* Six flags, each 0 or 1, one space between. */
static int
set_flags(struct qentry *q, const char *v, char *err, size_t errlen)
{
	int	*f[] = { &q->msg.eightbit, &q->msg.nul, &q->msg.multipart,
		    &q->msg.encoded, &q->msg.mime_version, &q->msg.blank };
	size_t	 i;

	if (strlen(v) != 11) {
		snprintf(err, errlen, "bad flags");
		return -1;
	}
	for (i = 0; i < 6; i++) {
		if ((v[2 * i] != '0' && v[2 * i] != '1') ||
		    (i < 5 && v[2 * i + 1] != ' ')) {
			snprintf(err, errlen, "bad flags");
			return -1;
		}
		*f[i] = v[2 * i] == '1';
	}
	return 0;
}

/* RFC 3461 NOTIFY as sendmail.c writes it: NEVER, or a list, each once. */
static int
set_notify(struct qentry *q, const char *v, char *err, size_t errlen)
{
	static const char *w[] = { "SUCCESS", "FAILURE", "DELAY" };
	const char	*p = v;
	size_t		 i, n;
	unsigned	 seen = 0;

	if (strcmp(v, "NEVER") == 0)
		goto ok;
	while (*p != '\0') {
		n = strcspn(p, ",");
		for (i = 0; i < 3; i++)
			if (strlen(w[i]) == n && strncmp(p, w[i], n) == 0)
				break;
		if (i == 3 || (seen & (1u << i)) || (p[n] == ',' &&
		    p[n + 1] == '\0')) {
			snprintf(err, errlen, "bad notify");
			return -1;
		}
		seen |= 1u << i;
		p += n + (p[n] == ',');
	}
	if (seen == 0) {
		snprintf(err, errlen, "bad notify");
		return -1;
	}
ok:
	q->env.notify = xstrdup(v);
	return 0;
}

static int
set_ret(struct qentry *q, const char *v, char *err, size_t errlen)
{
	if (strcmp(v, "FULL") != 0 && strcmp(v, "HDRS") != 0) {
		snprintf(err, errlen, "bad ret");
		return -1;
	}
	q->env.ret = xstrdup(v);
	return 0;
}

/* RFC 3461 4.4: an ENVID is printable US-ASCII; -V allows 100 octets. */
static int
set_envid(struct qentry *q, const char *v, char *err, size_t errlen)
{
	const unsigned char	*p;

	for (p = (const unsigned char *)v; *p != '\0'; p++)
		if (*p < 0x20 || *p > 0x7e)
			break;
	if (*p != '\0' || v[0] == '\0' || strlen(v) > 100) {
		snprintf(err, errlen, "bad envid");
		return -1;
	}
	q->env.envid = xstrdup(v);
	return 0;
}

static int
set_error(struct qentry *q, const char *v, char *err, size_t errlen)
{
	char	*p;

	/* Only ever shown, never sent: made printable rather than refused,
	 * so a mangled text cannot hold the mail back or reach a terminal. */
	(void)err;
	(void)errlen;
	strlcpy(q->lasterr, v, sizeof(q->lasterr));
	for (p = q->lasterr; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	return 0;
}

static int
set_rcpt(struct qentry *q, const char *v, char *err, size_t errlen)
{
	struct rcpt	*r;

	if (q->env.nrcpt == RCPT_MAX) {
		snprintf(err, errlen, "more than %d recipients", RCPT_MAX);
		return -1;
	}
	if (v[0] == '\0') {
		snprintf(err, errlen, "an empty recipient");
		return -1;
	}
	if (env_addr(v, err, errlen) == -1)
		return -1;
	q->env.rcpt = xreallocarray(q->env.rcpt, q->env.nrcpt + 1,
	    sizeof(*q->env.rcpt));
	r = &q->env.rcpt[q->env.nrcpt++];
	memset(r, 0, sizeof(*r));
	r->addr = xstrdup(v);
	r->st = ST_TEMP;
	return 0;
}

/* A queue ID as queue.c makes it: 12 upper-case hex digits. */
static int
set_id(char *dst, const char *v, char *err, size_t errlen)
{
	if (strlen(v) != 12 || strspn(v, "0123456789ABCDEF") != 12) {
		snprintf(err, errlen, "bad queue ID");
		return -1;
	}
	strlcpy(dst, v, 16);
	return 0;
}

/* A report (bounce, delay warning): the message it is about. */
static int
set_orig(struct qentry *q, const char *v, char *err, size_t errlen)
{
	return set_id(q->orig, v, err, errlen);
}

/* A message whose report is written but may not be live yet. */
static int
set_report(struct qentry *q, const char *v, char *err, size_t errlen)
{
	return set_id(q->report, v, err, errlen);
}

/* The numbers, in the order of fields[]. */
static void
env_numbers(struct qentry *q, const long long *n)
{
	q->owner = (uid_t)n[0];
	q->created = (time_t)n[1];
	q->next = (time_t)n[2];
	q->attempts = (int)n[3];
	q->msg.size = (off_t)n[7];
	q->msg.body = (off_t)n[8];
	q->msg.max_line = (size_t)n[9];
	q->warned = (int)n[16];	/* "warned" */
	q->held = (int)n[19];	/* "held" */
	q->env.requiretls = (int)n[20];
}

/* One "key value" line: a known key, once unless it may repeat. */
static int
env_line(struct qentry *q, char *line, unsigned *seen, long long *num,
    char *err, size_t errlen)
{
	char	*v;
	size_t	 i;

	if ((v = strchr(line, ' ')) == NULL) {
		snprintf(err, errlen, "a line without a value");
		return -1;
	}
	*v++ = '\0';
	for (i = 0; i < NFIELDS; i++)
		if (strcmp(fields[i].name, line) == 0)
			break;
	if (i == NFIELDS || (!fields[i].many && (*seen & (1u << i)))) {
		snprintf(err, errlen, "%s key \"%.32s\"", i == NFIELDS ?
		    "unknown" : "repeated", line);
		return -1;
	}
	*seen |= 1u << i;
	if (fields[i].set != NULL)
		return fields[i].set(q, v, err, errlen);
	if (number(v, 0, fields[i].max, &num[i]) == -1) {
		snprintf(err, errlen, "bad %s", fields[i].name);
		return -1;
	}
	return 0;
}

/*
 * Parses an envelope from buf[0..len): every line checked, every field
 * within its grammar and range, nothing unknown, repeated or missing.
 * Fills q (zeroed by the caller; queue_free frees it even on failure).
 * -1 with err naming the first problem.
 */
int
qenv_parse(const char *buf, size_t len, struct qentry *q, char *err,
    size_t errlen)
{
	char		 line[ENV_LINE_MAX + 1], why[256];
	long long	 num[NFIELDS] = { 0 };
	const char	*p = buf, *nl;
	unsigned	 seen = 0;
	size_t		 n, i;
	int		 version = 0, lineno = 0;

	why[0] = '\0';
	for (; p < buf + len; p = nl + 1) {
		lineno++;
		if ((nl = memchr(p, '\n', buf + len - p)) == NULL) {
			snprintf(why, sizeof(why), "no newline at the end");
			break;
		}
		if ((n = nl - p) > ENV_LINE_MAX || memchr(p, '\0', n) != NULL) {
			snprintf(why, sizeof(why), "an overlong or binary line");
			break;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		if (lineno == 1) {
			if (strcmp(line, "outbox-queue 1") == 0)
				version = 1;
			else if (strcmp(line, "outbox-queue 2") == 0)
				version = 2;
			else
				snprintf(why, sizeof(why), "not an outbox "
				    "queue envelope");
		} else if (env_line(q, line, &seen, num, why, sizeof(why))
		    == -1 && why[0] == '\0')
			strlcpy(why, "a bad value", sizeof(why));
		if (why[0] != '\0')
			break;
	}
	for (i = 0; why[0] == '\0' && i < NFIELDS; i++)
		if (fields[i].need && !(seen & (1u << i)) &&
		    !(i == F_FILE && version == 1) &&
		    !(i == F_RCPT && (seen & (1u << F_REPORT))))
			snprintf(why, sizeof(why), "no %s", version == 0 ?
			    "version line" : fields[i].name);
	env_numbers(q, num);
	if (why[0] == '\0' && (q->msg.body > q->msg.size ||
	    (off_t)q->msg.max_line > q->msg.size))
		snprintf(why, sizeof(why), "body or maxline beyond the size");
	if (why[0] == '\0')
		return 0;
	snprintf(err, errlen, "%s.env: damaged (line %d: %s)",
	    q->id[0] != '\0' ? q->id : "queue", lineno, why);
	return -1;
}

/*
 * The account of this run that may carry the entry: the one of the same
 * name defined by the same file, and, unless the system file defined it,
 * only in a run of the entry's owner. Never another account instead.
 * NULL with why when this run must leave the entry alone.
 */
const struct account *
qenv_account(const struct config *cfg, const struct qentry *q, char *why,
    size_t whylen)
{
	const struct account	*a = NULL;
	const char		*file = q->account_file != NULL ?
				    q->account_file : "an older outbox";
	size_t			 i;
	int			 mine = q->owner == getuid();

	for (i = 0; i < cfg->nacct; i++)
		if (strcmp(cfg->acct[i].name, q->account) == 0)
			a = &cfg->acct[i];
	/* Queued with nothing configured: the owner's account now. */
	if (a == NULL && mine && q->account_file != NULL &&
	    strcmp(q->account_file, NOCONFIG) == 0 &&
	    strcmp(q->account, cfg->defaults.name) == 0)
		return config_account(cfg, NULL, q->env.sender, why, whylen);
	if (a != NULL && q->account_file != NULL &&
	    strcmp(a->file, q->account_file) != 0)
		a = NULL;
	if (a != NULL && (a->system || mine))
		return a;
	if (!mine)
		snprintf(why, whylen, "waiting for its owner's run: account "
		    "%s of %s", q->account, file);
	else
		snprintf(why, whylen, "waiting for a run with account %s of "
		    "%s", q->account, file);
	return NULL;
}
