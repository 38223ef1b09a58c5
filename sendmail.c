/* SPDX-License-Identifier: ISC */
/*
 * main(): the sendmail command line, the mode, the envelope, the outcome
 * and the exit code. Only this file exits.
 */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <ctype.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "outbox.h"
#include "oauth2.h"
#include "queue.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR	"/etc"
#endif
#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR	"/var"
#endif

enum mode {
	M_DELIVER, M_LIST, M_ALIASES, M_VERIFY, M_QUEUE, M_SMTP, M_CHECK,
	M_OAUTH2_LOGIN
};

struct opts {
	enum mode	 mode;
	int		 dot_ends;
	int		 from_headers;
	int		 verbose;
	int		 noalias;
	const char	*config;
	const char	*account;
	const char	*sender;
	const char	*fullname;
	const char	*tag;
	char		*notify;
	char		*ret;
	const char	*envid;
	int		 requiretls;	/* -O requiretls=yes */
	int		 deliver;	/* -od: 'i', 'b' or 'q' */
	int		 errmode;	/* -oe: 'p', 'm' or 'q' */
	int		 due_only;	/* -q --due, -qTIME */
	int		 json;		/* -bp --json */
	char		 qsel;		/* -qI, -qR, -qS, -qD */
	const char	*qarg;
	struct strlist	 rcpt;
};

static void	usage(void) __attribute__((noreturn));
static void	print_usage(FILE *);
static void	stdout_check(void);
static const char *optarg_of(char **, int *, int, const char *);
static void	parse_long(struct opts *, const char *);
static int	parse_flag(struct opts *, int);
static void	parse_q(struct opts *, char **, int *, int);
static void	parse_b(struct opts *, const char *);
static void	parse_dsn(struct opts *, int, const char *);
static void	parse_valued(struct opts *, int, const char *);
static int	takes_value(int);
static void	parse_cluster(struct opts *, char **, int *);
static void	parse_rcpts(struct opts *, int, char **, int);
static void	parse_args(struct opts *, int, char **);
static void	parse_o(struct opts *, const char *);
static void	set_notify(struct opts *, const char *);
static const char *queue_dir(const struct config *, const struct account *,
		    const char *, char *, size_t);
static const struct passwd *caller(void);
static int	verify(const struct opts *, const struct account *,
		    const struct aliases *);
static int	exit_code(const struct failure *);
struct outbox;
static void	harden(void);
static void	options(struct opts *, int, char **);
static void	given_sender(struct outbox *);
static void	configure(struct outbox *);
static void	prepare_run(struct outbox *);
static int	queue_outcome(const struct failure *);
static int	oauth2_mode(struct outbox *);
static int	aliases_mode(const struct outbox *);
static int	other_mode(struct outbox *);
static void	envelope_sender(struct outbox *);
static void	spool(struct outbox *, struct message *);
static int	recipients(struct outbox *, const struct message *,
		    struct strlist *);
static int	submit(struct outbox *);
static int	send_mode(struct outbox *);

/*
 * The one exit policy (sysexits(3), outbox(8) EXIT STATUS): every outcome
 * below main() is a struct failure, and its stage and class decide.
 * Callers such as Postfix's pipe(8) retry only on 75, so anything that
 * may work later is 75, local trouble that may heal (a full disk) too.
 */
static int
exit_code(const struct failure *f)
{
	switch (f->class) {
	case FC_NONE:
		return EX_OK;
	case FC_TEMP:
		return EX_TEMPFAIL;
	case FC_CONFIG:		/* a server's refusal of the session waits */
		return f->stage == STAGE_LOCAL ? EX_CONFIG : EX_TEMPFAIL;
	case FC_PERM:
		if (f->stage == STAGE_LOCAL)
			return EX_DATAERR;
		return f->stage == STAGE_RCPT ? EX_NOUSER : EX_UNAVAILABLE;
	case FC_LOCAL:
		return EX_IOERR;
	case FC_USAGE:
		return EX_USAGE;
	case FC_NOPERM:
		return EX_NOPERM;
	default:
		return EX_SOFTWARE;
	}
}

static void
usage(void)
{
	print_usage(stderr);
	exit(EX_USAGE);
}

/*
 * Every write to standard output is checked here, once, before the exit:
 * a listing that did not reach its reader is a failure (mailq >/dev/full).
 */
static void
stdout_check(void)
{
	if (fflush(stdout) == EOF || ferror(stdout))
		fatal(EX_IOERR, "writing to standard output: %s",
		    strerror(errno != 0 ? errno : EIO));
}

static void
print_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: outbox [-iGmntUv] [-A c|m] [-a account] [-B type] "
	    "[-b mode] [-C file]\n"
	    "              [-d val] [-F name] [-f sender] [-h hops] [-L tag] "
	    "[-N dsn]\n"
	    "              [-O option=value] [-o option] [-q[time]] "
	    "[-q{I|R|S|D} arg]\n"
	    "              [-R return] [-r sender]"
	    " [-V envid] [-X file] [--] [recipient ...]\n"
	    "       outbox --check [-C file] [-a account] [-f sender] "
	    "[address]\n"
	    "       outbox --oauth2-login [-v] [-C file] [-a account]\n"
	    "       outbox --version | --help\n");
}

/* --help: the options callers and administrators use, one line each. */
static const char *const help_lines[] = {
	"  -t              recipients from To:, Cc:, Bcc: too (Bcc: removed)",
	"  -i, -oi         a line with a single dot does not end the message",
	"  -f, -r sender   the envelope sender",
	"  -F name         the display name of an added From:",
	"  -C file         read only this configuration file",
	"  -a account      send through this account of the configuration",
	"  -v              the SMTP dialogue on standard error (AUTH redacted)",
	"  -n              do not apply the aliases file",
	"  -N dsn          notifications: never, or success,failure,delay",
	"  -R full|hdrs    what such a notification returns of the message",
	"  -V envid        the envelope identifier (DSN's ENVID)",
	"  -odb, -odq      queue and send in the background; only queue",
	"  -oem            after a permanent failure, mail a report to the sender",
	"  -bp, mailq      list the queue (--json: one JSON object a line)",
	"  -bs             speak SMTP on standard input and output",
	"  -bv, -bi        where each recipient goes; check the aliases file",
	"  -q[time]        run the queue (--due: only entries due for a retry)",
	"  -qI, -qR, -qS   run the entries with this ID, recipient, sender",
	"  -qD id          delete a queue entry",
	"  -L tag          the tag of syslog lines",
	"  --check         check an account and its server; sends no mail",
	"  --oauth2-login  sign in once for an OAuth 2.0 account (device flow)",
	"  --version       print the version",
	"Accepted and ignored: -A -B -d -G -h -m -O -U -X.",
	"More in outbox(8) and outbox.conf(5).",
};

/* The value of an option: glued (-fuser) or the next argument (-f user). */
static const char *
optarg_of(char **argv, int *i, int pos, const char *name)
{
	if (argv[*i][pos + 1] != '\0')
		return argv[*i] + pos + 1;
	if (argv[*i + 1] == NULL)
		fatal(EX_USAGE, "option -%s needs a value", name);
	return argv[++*i];
}

/* -N: "never", or a comma list of success, failure and delay. */
static void
set_notify(struct opts *o, const char *v)
{
	char	buf[64], *w, *save;
	size_t	n = 0;

	if (strlcpy(buf, v, sizeof(buf)) >= sizeof(buf))
		fatal(EX_USAGE, "-N %s: too long", v);
	free(o->notify);
	o->notify = xcalloc(1, sizeof(buf));
	for (w = strtok_r(buf, ",", &save); w != NULL;
	    w = strtok_r(NULL, ",", &save), n++) {
		if (strcasecmp(w, "never") != 0 &&
		    strcasecmp(w, "success") != 0 &&
		    strcasecmp(w, "failure") != 0 &&
		    strcasecmp(w, "delay") != 0)
			fatal(EX_USAGE, "-N %s: use never, or success, failure "
			    "and delay separated by commas", v);
		if (n > 0)
			strlcat(o->notify, ",", sizeof(buf));
		for (char *c = w; *c != '\0'; c++)
			*c = (char)toupper((unsigned char)*c);
		strlcat(o->notify, w, sizeof(buf));
	}
	if (n == 0 || (n > 1 && strstr(o->notify, "NEVER") != NULL))
		fatal(EX_USAGE, "-N %s: never stands alone", v);
}

/* -oX: the old sendmail options callers still pass. */
static void
parse_o(struct opts *o, const char *v)
{
	if (strcmp(v, "i") == 0)
		o->dot_ends = 0;
	else if (v[0] == 'd' && (v[1] == 'i' || v[1] == 'b' || v[1] == 'q'))
		o->deliver = (unsigned char)v[1];	/* -odi, -odb, -odq */
	else if (v[0] == 'd' && (v[1] == 'd' || v[1] == 'a'))
		o->deliver = 'b';	/* deferred, async: in the background */
	else if (v[0] == 'e' && v[1] != '\0')
		/* -oem and -oee mail errors back; -oep, -oew and -oeq
		 * print them (the exit status says it anyway). */
		o->errmode = v[1] == 'm' || v[1] == 'e' ? 'm' :
		    v[1] == 'q' ? 'q' : 'p';
	/* -oA, -oL, -oR and the other sendmail.cf options: accepted. */
}

/* --version, --help, --check, --due. */
static void
parse_long(struct opts *o, const char *a)
{
	if (strcmp(a, "--version") == 0) {
		printf("outbox %s (%s)\n", OUTBOX_VERSION,
		    OpenSSL_version(OPENSSL_VERSION));
		stdout_check();
		exit(EX_OK);
	}
	if (strcmp(a, "--help") == 0) {
		printf("outbox %s: submit mail to a smarthost; see outbox(8) "
		    "and outbox.conf(5).\n", OUTBOX_VERSION);
		print_usage(stdout);
		for (size_t i = 0; i < sizeof(help_lines) /
		    sizeof(help_lines[0]); i++)
			puts(help_lines[i]);
		stdout_check();
		exit(EX_OK);
	}
	if (strcmp(a, "--check") == 0)
		o->mode = M_CHECK;
	else if (strcmp(a, "--due") == 0)
		o->due_only = 1;
	else if (strcmp(a, "--json") == 0)
		o->json = 1;
	else if (strcmp(a, "--oauth2-login") == 0)
		o->mode = M_OAUTH2_LOGIN;
	else {
		warnx("unknown option %s", a);
		usage();
	}
}

/* A flag without a value; 0 when c is not one. */
static int
parse_flag(struct opts *o, int c)
{
	switch (c) {
	case 'i': o->dot_ends = 0; return 1;
	case 't': o->from_headers = 1; return 1;
	case 'v': o->verbose = 1; return 1;
	case 'n': o->noalias = 1; return 1;
	case 'G': case 'm': case 'U': return 1;
	case 'I': o->mode = M_ALIASES; return 1;
	}
	return 0;
}

/* -q, -q30m, -qIid, -qRsite, -qSsender, -qDid: argv[*i] from pos. */
static void
parse_q(struct opts *o, char **argv, int *i, int pos)
{
	const char	*a = argv[*i];

	o->mode = M_QUEUE;
	if (a[pos + 1] == '\0')
		return;
	if (strchr("IRSD", a[pos + 1]) != NULL) {
		o->qsel = a[pos + 1];
		o->qarg = optarg_of(argv, i, pos + 1, "q");
	} else if (a[pos + 1] >= '0' && a[pos + 1] <= '9')
		o->due_only = 1;
	else
		fatal(EX_USAGE, "%s: use -q, -qTIME, -qI id, -qR rcpt, -qS "
		    "sender or -qD id", a);
}

/* -b MODE. */
static void
parse_b(struct opts *o, const char *v)
{
	static const struct { const char *name; enum mode mode; } modes[] = {
		{ "m", M_DELIVER }, { "p", M_LIST }, { "i", M_ALIASES },
		{ "v", M_VERIFY }, { "s", M_SMTP },
	};
	size_t	n;

	for (n = 0; n < sizeof(modes) / sizeof(modes[0]); n++)
		if (strcmp(v, modes[n].name) == 0) {
			o->mode = modes[n].mode;
			return;
		}
	fatal(EX_USAGE, "-b%s: unsupported mode (use -bm, -bp, -bs, -bi or "
	    "-bv)", v);
}

/* -R full|hdrs and -V envid: DSN values. */
static void
parse_dsn(struct opts *o, int c, const char *v)
{
	const char	*p;

	if (c == 'R') {
		if (strcasecmp(v, "full") != 0 && strcasecmp(v, "hdrs") != 0)
			fatal(EX_USAGE, "-R %s: use full or hdrs", v);
		free(o->ret);
		o->ret = xstrdup(strcasecmp(v, "full") == 0 ? "FULL" : "HDRS");
		return;
	}
	/* RFC 3461 4.4: printable US-ASCII, as the queue's loader wants. */
	for (p = v; *p >= 0x20 && *p < 0x7f; p++)
		;
	if (strlen(v) > 100 || *p != '\0' || v[0] == '\0')
		fatal(EX_USAGE, "-V: at most 100 printable ASCII characters");
	o->envid = v;
}

/*
 * An option with a value (one of takes_value()'s). -X is accepted and
 * never acted on: writing its traffic log is what CVE-2016-10033 exploits.
 */
static void
parse_valued(struct opts *o, int c, const char *v)
{
	switch (c) {
	case 'b': parse_b(o, v); return;
	case 'o': parse_o(o, v); return;
	case 'N': set_notify(o, v); return;
	case 'R': case 'V': parse_dsn(o, c, v); return;
	case 'C': o->config = v; return;
	case 'a': o->account = v; return;
	case 'L': o->tag = v; return;
	case 'O':
		/* Postfix 3.11's -O requiretls=yes (RFC 8689); others
		 * are accepted and ignored. */
		if (strcasecmp(v, "requiretls=yes") == 0)
			o->requiretls = 1;
		return;
	case 'A': case 'd': case 'h': case 'X': return;
	case 'B':
		if (strcasecmp(v, "7BIT") != 0 && strcasecmp(v, "8BITMIME") != 0)
			fatal(EX_USAGE, "-B %s: use 7BIT or 8BITMIME", v);
		return;
	case 'f': case 'r':
		if (strpbrk(v, "\r\n") != NULL)
			fatal(EX_DATAERR, "-%c: the sender holds a line break",
			    c);
		o->sender = v;
		return;
	case 'F':
		if (strpbrk(v, "\r\n") != NULL)
			fatal(EX_DATAERR, "-F: a full name cannot hold a line "
			    "break");
		o->fullname = v;
		return;
	default:
		warnx("unknown option -%c", c);
		usage();
	}
}

/* Whether option c takes a value ("-ifsender" or "-i -f sender"). */
static int
takes_value(int c)
{
	return c != '\0' && strchr("boNRVCaLAdhOXBfrF", c) != NULL;
}

/*
 * One argument of flags, "-itv": flags, then at most one option whose value
 * is the rest of the argument or the next one. Advances *i past a value.
 */
static void
parse_cluster(struct opts *o, char **argv, int *i)
{
	const char	*a = argv[*i];
	char		 opt[2] = { '\0', '\0' };
	int		 pos;

	for (pos = 1; a[pos] != '\0'; pos++) {
		if (parse_flag(o, a[pos]))
			continue;
		opt[0] = a[pos];
		if (a[pos] == 'q')
			parse_q(o, argv, i, pos);
		else if (takes_value(a[pos]))
			parse_valued(o, a[pos], optarg_of(argv, i, pos, opt));
		else {
			warnx("unknown option -%c", a[pos]);
			usage();
		}
		return;		/* the rest of a was this option's value */
	}
}

/* The recipient arguments, each an RFC 5322 address list. */
static void
parse_rcpts(struct opts *o, int argc, char **argv, int i)
{
	char	err[256];

	for (; i < argc; i++) {
		/* A line break would smuggle a command (or header) in. */
		if (strpbrk(argv[i], "\r\n") != NULL)
			fatal(EX_DATAERR, "recipient argument %d holds a line "
			    "break; refusing it", i);
		if (addr_parse_list(argv[i], strlen(argv[i]), &o->rcpt, err,
		    sizeof(err)) == -1)
			fatal(EX_DATAERR, "recipient %s: %s", argv[i], err);
	}
}

/* The sendmail command line: options up to "--" or the first recipient. */
static void
parse_args(struct opts *o, int argc, char **argv)
{
	int	i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || a[1] == '\0')
			break;
		if (a[1] == '-')
			parse_long(o, a);
		else
			parse_cluster(o, argv, &i);
	}
	parse_rcpts(o, argc, argv, i);
}

/* The caller's passwd entry, looked up once: login and full name. */
static const struct passwd *
caller(void)
{
	static const struct passwd *pw;

	if (pw == NULL && (pw = getpwuid(getuid())) == NULL)
		fatal(EX_OSERR, "who are you? uid %u has no passwd entry",
		    (unsigned)getuid());
	return pw;
}

/* -bv: what each recipient becomes, and who would carry it. Sends nothing. */
static int
verify(const struct opts *o, const struct account *a,
    const struct aliases *al)
{
	struct strlist	 out = { NULL, 0 };
	char		 err[512];
	size_t		 i, j;
	int		 bad = 0;

	if (o->rcpt.n == 0)
		fatal(EX_USAGE, "-bv needs addresses to verify");
	for (i = 0; i < o->rcpt.n; i++) {
		struct strlist one = { &o->rcpt.v[i], 1 };

		if (addr_resolve(&one, al, a->maildomain, &out, err,
		    sizeof(err)) == -1) {
			printf("%s: error: %s\n", o->rcpt.v[i], err);
			strlist_free(&out);	/* what came before the error */
			bad = 1;
			continue;
		}
		for (j = 0; j < out.n; j++)
			printf("%s -> <%s> via account %s, %s:%lld (%s)\n",
			    o->rcpt.v[i], out.v[j], a->name,
			    a->host.n > 0 ? a->host.v[0] : "(no host)",
			    a->port, a->tls == TLS_IMPLICIT ? "implicit TLS" :
			    a->tls == TLS_STARTTLS ? "STARTTLS" : "no TLS");
		strlist_free(&out);
	}
	return bad ? EX_DATAERR : EX_OK;
}

/*
 * The queue directory. In a setgid install the shared spool, fixed by the
 * build and the system file (config.c refuses queue_dir in a user file):
 * the group is never raised on a directory a user names. Otherwise
 * queue_dir, else the system's for root, else the user's own.
 */
static const char *
queue_dir(const struct config *cfg, const struct account *a,
    const char *home, char *buf, size_t size)
{
	const char	*xdg = getenv("XDG_STATE_HOME");

	if (!a->queue)
		return NULL;
	if (priv_group() != (gid_t)-1)
		return cfg->defaults.queue_dir != NULL ?
		    cfg->defaults.queue_dir : LOCALSTATEDIR "/spool/outbox";
	if (a->queue_dir != NULL)
		return a->queue_dir;
	if (geteuid() == 0)
		return LOCALSTATEDIR "/spool/outbox";
	if (xdg != NULL && xdg[0] == '/')
		snprintf(buf, size, "%s/outbox/queue", xdg);
	else
		snprintf(buf, size, "%s/.local/state/outbox/queue",
		    home != NULL ? home : "/nonexistent");
	return buf;
}

/* What main() and its steps share: one run of outbox. */
struct outbox {
	struct opts		 o;
	struct config		 cfg;
	struct run		 r;
	const struct account	*a;
	struct aliases		*al;
	const char		*apath;		/* the aliases file, or NULL */
	const char		*home;
	char			*name;		/* the GECOS name we made */
	char			 sender[ADDR_MAX + 1];
	char			 qbuf[4096];
};

/* Before anything else: no core dumps, a tight umask, the group down. */
static void
harden(void)
{
	struct rlimit	nocore = { 0, 0 };

	/* A core dump could hold the password. */
	setrlimit(RLIMIT_CORE, &nocore);
	prctl(PR_SET_DUMPABLE, 0);
	umask(077);
	priv_init();
	signals_init();
}

/* The options, with the defaults argv[0] (mailq, newaliases) implies. */
static void
options(struct opts *o, int argc, char **argv)
{
	const char	*me = strrchr(argv[0], '/') != NULL ?
	    strrchr(argv[0], '/') + 1 : argv[0];

	memset(o, 0, sizeof(*o));
	o->dot_ends = 1;
	o->deliver = 'i';
	o->errmode = 'p';
	if (strcmp(me, "mailq") == 0)
		o->mode = M_LIST;
	else if (strcmp(me, "newaliases") == 0)
		o->mode = M_ALIASES;
	parse_args(o, argc, argv);
}

/* -f (or -r): one address, "<>" for the null sender, into ob->sender. */
static void
given_sender(struct outbox *ob)
{
	struct strlist	 l = { NULL, 0 };
	const char	*v = ob->o.sender;
	char		 err[512];

	if (strcmp(v, "<>") == 0 || v[0] == '\0')
		ob->sender[0] = '\0';
	else if (addr_parse_list(v, strlen(v), &l, err, sizeof(err)) == -1 ||
	    l.n != 1 || addr_check(l.v[0], err, sizeof(err)) == -1)
		fatal(EX_DATAERR, "-f %s: %s", v, l.n > 1 ? "one sender only" :
		    l.n == 0 ? "no address" : err);
	else
		strlcpy(ob->sender, l.v[0], sizeof(ob->sender));
	strlist_free(&l);
}

/* The configuration, the account, its aliases. */
static void
configure(struct outbox *ob)
{
	char	err[1024];

	/* A file the caller names is the caller's: no group for it. */
	if (ob->o.config != NULL)
		priv_lose();
	if (config_load(&ob->cfg, ob->o.config, ob->home, err,
	    sizeof(err)) == -1)
		fatal(EX_CONFIG, "%s", err);
	if (ob->o.sender != NULL)
		given_sender(ob);
	if ((ob->a = config_account(&ob->cfg, ob->o.account, ob->o.sender !=
	    NULL ? ob->sender : NULL, err, sizeof(err))) == NULL)
		fatal(EX_CONFIG, "%s", err);
	/* The aliases file: aliases, else the system's in a system install. */
	ob->apath = ob->a->aliases;
	if (ob->apath == NULL && strcmp(SYSCONFDIR, "/etc") == 0 &&
	    access("/etc/aliases", R_OK) == 0)
		ob->apath = "/etc/aliases";
	if (ob->apath != NULL && (!ob->o.noalias || ob->o.mode == M_ALIASES) &&
	    (ob->al = addr_aliases_open(ob->apath, err, sizeof(err))) == NULL)
		fatal(EX_CONFIG, "%s", err);
}

/* The run: what deliver.c and runner.c need, the queue opened. */
static void
prepare_run(struct outbox *ob)
{
	struct run	*r = &ob->r;
	char		 err[1024];

	memset(r, 0, sizeof(*r));
	r->cfg = &ob->cfg;
	r->home = ob->home;
	r->verbose = ob->o.verbose;
	r->errmode = ob->o.errmode;
	r->due_only = ob->o.due_only;
	r->qsel = ob->o.qsel;
	r->json = ob->o.json;
	r->qarg = ob->o.qarg;
	/* --check looks, it does not make the queue (as root it could). */
	r->qdir = ob->o.mode == M_CHECK ? NULL : queue_dir(&ob->cfg, ob->a,
	    ob->home, ob->qbuf, sizeof(ob->qbuf));
	if (r->qdir != NULL && queue_open(r->qdir, err, sizeof(err)) == -1) {
		if (ob->o.mode == M_QUEUE || ob->o.mode == M_LIST ||
		    ob->o.deliver != 'i')
			fatal(EX_CANTCREAT, "%s", err);
		if (ob->o.mode == M_DELIVER)
			warnx("%s; a message that cannot go now will not "
			    "wait", err);
		r->qdir = NULL;
	}
	/* An added From gets the GECOS name, as sendmail's does. */
	if (ob->o.fullname == NULL && (ob->o.mode == M_DELIVER ||
	    ob->o.mode == M_SMTP) && caller()->pw_gecos != NULL &&
	    caller()->pw_gecos[0] != '\0') {
		ob->name = xstrdup(caller()->pw_gecos);
		ob->name[strcspn(ob->name, ",")] = '\0';
		ob->o.fullname = ob->name;
	}
	if (ob->o.fullname != NULL && strpbrk(ob->o.fullname, "\r\n") != NULL)
		fatal(EX_DATAERR, "-F: a full name cannot hold a line break");
}

/* What a queue mode left in f: said, and mapped to the exit code. */
static int
queue_outcome(const struct failure *f)
{
	if (f->class != FC_NONE)
		warnx("%s", f->text);
	if (stopping())
		warnx("stopped by signal %d; entries not tried wait in the "
		    "queue", stopping());
	return exit_code(f);
}

/* --oauth2-login: the device login, a person at a terminal (stderr). */
static int
oauth2_mode(struct outbox *ob)
{
	struct failure	f;
	int		rv;

	memset(&f, 0, sizeof(f));
	rv = oauth2_login(ob->a, ob->r.qdir, ob->o.verbose, stderr, f.text,
	    sizeof(f.text));
	if (rv == OAUTH2_OK)
		return EX_OK;
	warnx("%s", f.text);
	f.stage = rv == OAUTH2_TEMP ? STAGE_AUTH : STAGE_LOCAL;
	f.class = rv == OAUTH2_TEMP ? FC_TEMP : rv == OAUTH2_NOPERM ?
	    FC_NOPERM : FC_CONFIG;
	return exit_code(&f);
}

/* newaliases: package scripts call it; nothing to build is fine. */
static int
aliases_mode(const struct outbox *ob)
{
	if (ob->apath == NULL)
		printf("outbox: no aliases file configured; nothing to do\n");
	else {
		addr_aliases_warn(ob->al);
		printf("%s: %zu aliases\n", ob->apath, addr_aliases_size(ob->al));
	}
	return EX_OK;
}

/* Every mode but sending and --check; -1 for those. */
static int
other_mode(struct outbox *ob)
{
	struct failure	f;

	memset(&f, 0, sizeof(f));
	switch (ob->o.mode) {
	case M_LIST:
		runner_list(&ob->r, &f);
		return queue_outcome(&f);
	case M_QUEUE:
		if (ob->o.qsel == 'D')
			runner_delete(&ob->r, ob->o.qarg, &f);
		else
			runner_queue(&ob->r, &f);
		return queue_outcome(&f);
	case M_ALIASES:
		return aliases_mode(ob);
	case M_VERIFY:
		return verify(&ob->o, ob->a, ob->al);
	case M_SMTP:
		smtpd_run(&ob->r, ob->a, ob->al, ob->o.fullname,
		    ob->o.deliver);
		return EX_OK;	/* each message had its own reply */
	case M_OAUTH2_LOGIN:
		return oauth2_mode(ob);
	default:
		return -1;
	}
}

/*
 * The envelope sender: -f, else from, else USER@maildomain; with
 * from_rewrite always from (the provider takes nothing else).
 */
static void
envelope_sender(struct outbox *ob)
{
	const struct account	*a = ob->a;
	char			 err[512];

	if (a->from_rewrite)
		strlcpy(ob->sender, a->from, sizeof(ob->sender));
	else if (ob->o.sender == NULL && a->from != NULL)
		strlcpy(ob->sender, a->from, sizeof(ob->sender));
	else if (ob->o.sender == NULL)
		snprintf(ob->sender, sizeof(ob->sender), "%s@%s",
		    caller()->pw_name, a->maildomain);
	else if (ob->sender[0] != '\0' && strchr(ob->sender, '@') == NULL) {
		strlcat(ob->sender, "@", sizeof(ob->sender));
		strlcat(ob->sender, a->maildomain, sizeof(ob->sender));
	}
	if (ob->sender[0] != '\0' && addr_check(ob->sender, err,
	    sizeof(err)) == -1)
		fatal(EX_DATAERR, "sender: %s", err);
}

/* Reads the message from standard input into the spool; exits on failure. */
static void
spool(struct outbox *ob, struct message *m)
{
	struct msgopts	 mo;
	const char	*tmp = getenv("TMPDIR");

	memset(&mo, 0, sizeof(mo));
	mo.dot_ends = ob->o.dot_ends;
	mo.from_headers = ob->o.from_headers;
	mo.sender = ob->sender[0] != '\0' ? ob->sender : "MAILER-DAEMON";
	mo.fullname = ob->o.fullname;
	mo.maildomain = ob->a->maildomain;
	mo.aliases = ob->al;
	mo.from_rewrite = ob->a->from_rewrite ? ob->a->from : NULL;
	/* Spooled in the queue directory, a message is queued by a link. */
	mo.spool_dir = ob->r.qdir != NULL ? ob->r.qdir : tmp != NULL &&
	    tmp[0] == '/' ? tmp : "/tmp";
	if (ob->r.qdir != NULL)
		mo.size_max = ob->cfg.defaults.queue_max_message_size;
	if (message_read(m, &mo, STDIN_FILENO) == -1)
		fatal(exit_code(&m->fail), "%s", m->fail.text);
}

/*
 * The recipients: the arguments and, with -t, the header's, through the
 * aliases. 0, or -1 after saying why (the message is unusable: 65).
 */
static int
recipients(struct outbox *ob, const struct message *m,
    struct strlist *resolved)
{
	struct strlist	all = { NULL, 0 };
	char		err[1024];
	size_t		i;
	int		rv = -1;

	for (i = 0; i < ob->o.rcpt.n; i++)
		strlist_add(&all, ob->o.rcpt.v[i]);
	for (i = 0; i < m->hdr_rcpt.n; i++)
		strlist_add(&all, m->hdr_rcpt.v[i]);
	if (addr_resolve(&all, ob->al, ob->a->maildomain, resolved, err,
	    sizeof(err)) == -1)
		warnx("%s", err);
	else if (resolved->n == 0)
		warnx("no recipients: To, Cc and Bcc name nobody");
	else if (resolved->n > RCPT_MAX)
		warnx("%zu recipients; at most %d per message", resolved->n,
		    RCPT_MAX);
	else
		rv = 0;
	strlist_free(&all);
	return rv;
}

/* Sends one message read from standard input; returns the exit code. */
static int
submit(struct outbox *ob)
{
	struct strlist	 resolved = { NULL, 0 };
	struct qentry	 q;
	struct failure	 f;
	size_t		 i;
	int		 code;

	memset(&q, 0, sizeof(q));
	spool(ob, &q.msg);
	if (recipients(ob, &q.msg, &resolved) == -1) {
		/* Stopped by a signal: the caller still has it (75). */
		if (!stopping())
			deliver_keep(&ob->r, ob->a, &q.msg, ob->sender,
			    getuid());
		code = stopping() ? EX_TEMPFAIL : EX_DATAERR;
	} else {
		q.env.sender = ob->sender;
		q.env.notify = ob->o.notify;
		q.env.ret = ob->o.ret;
		q.env.envid = ob->o.envid;
		q.env.requiretls = ob->o.requiretls;
		q.env.rcpt = xcalloc(resolved.n, sizeof(*q.env.rcpt));
		q.env.nrcpt = resolved.n;
		for (i = 0; i < resolved.n; i++) {
			q.env.rcpt[i].addr = resolved.v[i];
			/* ST_TEMP until the server takes it. */
			q.env.rcpt[i].st = ST_TEMP;
		}
		submit_message(&ob->r, ob->a, &q, ob->o.deliver, &f);
		code = exit_code(&f);
	}
	message_close(&q.msg);
	free(q.env.rcpt);
	strlist_free(&resolved);
	return code;
}

/* --check, or a submission. */
static int
send_mode(struct outbox *ob)
{
	struct failure	f;

	envelope_sender(ob);
	if (ob->o.mode == M_CHECK) {
		if (getuid() == 0 && ob->o.config == NULL)
			check_secrets(&ob->cfg, queue_dir(&ob->cfg, ob->a,
			    ob->home, ob->qbuf, sizeof(ob->qbuf)));
		/* The queue's token state, if the queue is there. */
		check_account(ob->a, ob->sender, ob->o.rcpt.n > 0 ?
		    ob->o.rcpt.v[0] : NULL, queue_dir(&ob->cfg, ob->a,
		    ob->home, ob->qbuf, sizeof(ob->qbuf)), &f);
		return exit_code(&f);
	}
	if (ob->o.rcpt.n == 0 && !ob->o.from_headers)
		fatal(EX_DATAERR, "no recipients given (name them as "
		    "arguments, or use -t to read To, Cc and Bcc)");
	return submit(ob);
}

int
main(int argc, char *argv[])
{
	struct outbox	ob;
	int		code;

	harden();
	memset(&ob, 0, sizeof(ob));
	ob.home = getenv("HOME");
	options(&ob.o, argc, argv);
	log_open(ob.o.tag);
	configure(&ob);
	prepare_run(&ob);
	if ((code = other_mode(&ob)) == -1)
		code = send_mode(&ob);
	strlist_free(&ob.o.rcpt);
	free(ob.o.notify);
	free(ob.o.ret);
	free(ob.name);
	addr_aliases_close(ob.al);
	config_free(&ob.cfg);
	stdout_check();
	return code;
}
