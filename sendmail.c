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
#include <syslog.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "outbox.h"

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
	int		 deliver;	/* -od: 'i', 'b' or 'q' */
	int		 errmode;	/* -oe: 'p', 'm' or 'q' */
	int		 due_only;	/* -q --due, -qTIME */
	char		 qsel;		/* -qI, -qR, -qS, -qD */
	const char	*qarg;
	struct strlist	 rcpt;
};

static void	usage(void) __attribute__((noreturn));
static void	fatal(int, const char *, ...)
		    __attribute__((noreturn, format(printf, 2, 3)));
static const char *optarg_of(char **, int *, int, const char *);
static void	parse_args(struct opts *, int, char **);
static void	parse_o(struct opts *, const char *);
static void	set_notify(struct opts *, const char *);
static const char *queue_dir(const struct account *, const char *, char *,
		    size_t);
static const struct passwd *caller(void);
static int	verify(const struct opts *, const struct account *,
		    const struct aliases *);

static void
fatal(int code, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vwarnx(fmt, ap);
	va_end(ap);
	exit(code);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: outbox [-iGmntUv] [-A c|m] [-a account] [-B type] "
	    "[-b mode] [-C file]\n"
	    "              [-d val] [-F name] [-f sender] [-h hops] [-L tag] "
	    "[-N dsn]\n"
	    "              [-O option=value] [-o option] [-q[time]] "
	    "[-q{I|R|S|D} arg]\n"
	    "              [-R return] [-r sender]"
	    " [-V envid] [-X file] [--] [recipient ...]\n"
	    "       outbox --check [-C file] [-a account]\n"
	    "       outbox --oauth2-login [-v] [-C file] [-a account]\n"
	    "       outbox --version | --help\n");
	exit(EX_USAGE);
}

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

static void
parse_args(struct opts *o, int argc, char **argv)
{
	const char	*v;
	int		 i, pos;

	for (i = 1; i < argc; i++) {
		char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || a[1] == '\0')
			break;
		if (strcmp(a, "--version") == 0) {
			printf("outbox %s (%s)\n", OUTBOX_VERSION,
			    OpenSSL_version(OPENSSL_VERSION));
			exit(EX_OK);
		}
		if (strcmp(a, "--check") == 0) {
			o->mode = M_CHECK;
			continue;
		}
		if (strcmp(a, "--oauth2-login") == 0) {
			o->mode = M_OAUTH2_LOGIN;
			continue;
		}
		if (strcmp(a, "--due") == 0) {
			o->due_only = 1;
			continue;
		}
		if (strcmp(a, "--help") == 0) {
			printf("outbox %s: submit mail to a smarthost; "
			    "see outbox(8) and outbox.conf(5).\n",
			    OUTBOX_VERSION);
			exit(EX_OK);
		}
		if (a[1] == '-') {
			warnx("unknown option %s", a);
			usage();
		}
		for (pos = 1; a[pos] != '\0'; pos++) {
			char opt[2] = { a[pos], '\0' };

			switch (a[pos]) {
			case 'i': o->dot_ends = 0; continue;
			case 't': o->from_headers = 1; continue;
			case 'v': o->verbose = 1; continue;
			case 'n': o->noalias = 1; continue;
			case 'G': case 'm': case 'U': continue;
			case 'I': o->mode = M_ALIASES; continue;
			case 'q':
				/* -q, -q30m, -qIid, -qRsite, -qSsender, -qDid */
				o->mode = M_QUEUE;
				if (a[pos + 1] == '\0')
					break;
				if (strchr("IRSD", a[pos + 1]) != NULL) {
					o->qsel = a[pos + 1];
					o->qarg = optarg_of(argv, &i, pos + 1,
					    "q");
				} else if (a[pos + 1] >= '0' && a[pos + 1] <= '9')
					o->due_only = 1;
				else
					fatal(EX_USAGE, "%s: use -q, -qTIME, "
					    "-qI id, -qR rcpt, -qS sender or "
					    "-qD id", a);
				break;
			case 'b':
				v = optarg_of(argv, &i, pos, opt);
				if (strcmp(v, "m") == 0)
					o->mode = M_DELIVER;
				else if (strcmp(v, "p") == 0)
					o->mode = M_LIST;
				else if (strcmp(v, "i") == 0)
					o->mode = M_ALIASES;
				else if (strcmp(v, "v") == 0)
					o->mode = M_VERIFY;
				else if (strcmp(v, "s") == 0)
					o->mode = M_SMTP;
				else
					fatal(EX_USAGE, "-b%s: unsupported "
					    "mode (use -bm, -bp, -bs, -bi or "
					    "-bv)", v);
				break;
			case 'o':
				parse_o(o, optarg_of(argv, &i, pos, opt));
				break;
			case 'B':
				v = optarg_of(argv, &i, pos, opt);
				if (strcasecmp(v, "7BIT") != 0 &&
				    strcasecmp(v, "8BITMIME") != 0)
					fatal(EX_USAGE, "-B %s: use 7BIT or "
					    "8BITMIME", v);
				break;
			case 'N':
				set_notify(o, optarg_of(argv, &i, pos, opt));
				break;
			case 'R':
				v = optarg_of(argv, &i, pos, opt);
				if (strcasecmp(v, "full") != 0 &&
				    strcasecmp(v, "hdrs") != 0)
					fatal(EX_USAGE, "-R %s: use full or "
					    "hdrs", v);
				free(o->ret);
				o->ret = xstrdup(strcasecmp(v, "full") == 0 ?
				    "FULL" : "HDRS");
				break;
			case 'V':
				o->envid = optarg_of(argv, &i, pos, opt);
				if (strlen(o->envid) > 100 ||
				    strpbrk(o->envid, "\r\n") != NULL)
					fatal(EX_USAGE, "-V: at most 100 "
					    "characters on one line");
				break;
			case 'f': case 'r':
				o->sender = optarg_of(argv, &i, pos, opt);
				if (strpbrk(o->sender, "\r\n") != NULL)
					fatal(EX_DATAERR, "-%s: the sender "
					    "holds a line break", opt);
				break;
			case 'F':
				o->fullname = optarg_of(argv, &i, pos, opt);
				if (strpbrk(o->fullname, "\r\n") != NULL)
					fatal(EX_DATAERR, "-F: a full name "
					    "cannot hold a line break");
				break;
			case 'C':
				o->config = optarg_of(argv, &i, pos, opt);
				break;
			case 'a':
				o->account = optarg_of(argv, &i, pos, opt);
				break;
			case 'L':
				o->tag = optarg_of(argv, &i, pos, opt);
				break;
			case 'A': case 'd': case 'h': case 'O':
				(void)optarg_of(argv, &i, pos, opt);
				break;
			case 'X':
				/* Never write the traffic log: the option
				 * behind CVE-2016-10033 exploits. */
				(void)optarg_of(argv, &i, pos, opt);
				break;
			default:
				warnx("unknown option -%c", a[pos]);
				usage();
			}
			break;	/* the rest of a was this option's value */
		}
	}
	for (; i < argc; i++) {
		char err[256];

		/* A line break would smuggle a command (or header) in. */
		if (strpbrk(argv[i], "\r\n") != NULL)
			fatal(EX_DATAERR, "recipient argument %d holds a line "
			    "break; refusing it", i);
		if (addr_parse_list(argv[i], strlen(argv[i]), &o->rcpt, err,
		    sizeof(err)) == -1)
			fatal(EX_DATAERR, "recipient %s: %s", argv[i], err);
	}
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

/* The queue directory: queue_dir, else the system's or the user's. */
static const char *
queue_dir(const struct account *a, const char *home, char *buf, size_t size)
{
	const char	*xdg = getenv("XDG_STATE_HOME");

	if (!a->queue)
		return NULL;
	if (a->queue_dir != NULL)
		return a->queue_dir;
	if (geteuid() == 0 || priv_group() != (gid_t)-1)
		return LOCALSTATEDIR "/spool/outbox";
	if (xdg != NULL && xdg[0] == '/')
		snprintf(buf, size, "%s/outbox/queue", xdg);
	else
		snprintf(buf, size, "%s/.local/state/outbox/queue",
		    home != NULL ? home : "/nonexistent");
	return buf;
}

int
main(int argc, char *argv[])
{
	struct opts		 o;
	struct config		 cfg;
	struct msgopts		 mo;
	struct qentry		 q;
	struct run		 r;
	struct strlist		 all = { NULL, 0 }, resolved = { NULL, 0 };
	struct rlimit		 nocore = { 0, 0 };
	const struct account	*a;
	const char		*me, *home = getenv("HOME"), *tmp, *apath;
	struct aliases		*al = NULL;
	char			 err[1024], sender[ADDR_MAX + 1], *name = NULL;
	char			 qbuf[4096];
	size_t			 i;
	int			 code;

	/* A core dump could hold the password. */
	setrlimit(RLIMIT_CORE, &nocore);
	prctl(PR_SET_DUMPABLE, 0);
	umask(077);
	priv_init();

	memset(&o, 0, sizeof(o));
	o.dot_ends = 1;
	o.deliver = 'i';
	o.errmode = 'p';
	me = strrchr(argv[0], '/') != NULL ? strrchr(argv[0], '/') + 1 :
	    argv[0];
	if (strcmp(me, "mailq") == 0)
		o.mode = M_LIST;
	else if (strcmp(me, "newaliases") == 0)
		o.mode = M_ALIASES;
	parse_args(&o, argc, argv);
	openlog(o.tag != NULL ? o.tag : "outbox", LOG_PID, LOG_MAIL);

	/* A file the caller names is the caller's: no group for it. */
	if (o.config != NULL)
		priv_lose();
	if (config_load(&cfg, o.config, home, err, sizeof(err)) == -1)
		fatal(EX_CONFIG, "%s", err);
	if (o.sender != NULL) {
		struct strlist l = { NULL, 0 };

		if (strcmp(o.sender, "<>") == 0 || o.sender[0] == '\0')
			sender[0] = '\0';
		else if (addr_parse_list(o.sender, strlen(o.sender), &l, err,
		    sizeof(err)) == -1 || l.n != 1 ||
		    addr_check(l.v[0], err, sizeof(err)) == -1)
			fatal(EX_DATAERR, "-f %s: %s", o.sender, l.n > 1 ?
			    "one sender only" : l.n == 0 ? "no address" : err);
		else
			strlcpy(sender, l.v[0], sizeof(sender));
		strlist_free(&l);
	}
	if ((a = config_account(&cfg, o.account, o.sender != NULL ? sender :
	    NULL, err, sizeof(err))) == NULL)
		fatal(EX_CONFIG, "%s", err);

	/* The aliases file: aliases, else the system's in a system install. */
	apath = a->aliases;
	if (apath == NULL && strcmp(SYSCONFDIR, "/etc") == 0 &&
	    access("/etc/aliases", R_OK) == 0)
		apath = "/etc/aliases";
	if (apath != NULL && (!o.noalias || o.mode == M_ALIASES) &&
	    (al = aliases_open(apath, err, sizeof(err))) == NULL)
		fatal(EX_CONFIG, "%s", err);

	memset(&r, 0, sizeof(r));
	r.cfg = &cfg;
	r.home = home;
	r.verbose = o.verbose;
	r.errmode = o.errmode;
	r.due_only = o.due_only;
	r.qsel = o.qsel;
	r.qarg = o.qarg;
	r.qdir = queue_dir(a, home, qbuf, sizeof(qbuf));
	if (r.qdir != NULL && queue_open(r.qdir, err, sizeof(err)) == -1) {
		if (o.mode == M_QUEUE || o.mode == M_LIST || o.deliver != 'i')
			fatal(EX_CANTCREAT, "%s", err);
		if (o.mode == M_DELIVER)
			warnx("%s; a message that cannot go now will not "
			    "wait", err);
		r.qdir = NULL;
	}
	/* An added From gets the GECOS name, as sendmail's does. */
	if (o.fullname == NULL && (o.mode == M_DELIVER || o.mode == M_SMTP) &&
	    caller()->pw_gecos != NULL && caller()->pw_gecos[0] != '\0') {
		name = xstrdup(caller()->pw_gecos);
		name[strcspn(name, ",")] = '\0';
		o.fullname = name;
	}
	if (o.fullname != NULL && strpbrk(o.fullname, "\r\n") != NULL)
		fatal(EX_DATAERR, "-F: a full name cannot hold a line break");
	code = EX_OK;
	switch (o.mode) {
	case M_LIST:
		code = deliver_list(&r);
		goto done;
	case M_QUEUE:
		code = o.qsel == 'D' ? deliver_delete(&r, o.qarg) :
		    deliver_queue(&r);
		goto done;
	case M_ALIASES:
		/* Package scripts call newaliases: nothing to build is fine. */
		if (apath == NULL)
			printf("outbox: no aliases file configured; nothing "
			    "to do\n");
		else {
			aliases_warn(al);
			printf("%s: %zu aliases\n", apath, aliases_size(al));
		}
		goto done;
	case M_VERIFY:
		code = verify(&o, a, al);
		goto done;
	case M_SMTP:
		code = smtpd_run(&r, a, al, o.fullname, o.deliver);
		goto done;
	case M_OAUTH2_LOGIN:
		/* The device login: a person at a terminal, so stderr. */
		code = oauth2_login(a, r.qdir, o.verbose, stderr, err,
		    sizeof(err));
		if (code != OAUTH2_OK)
			warnx("%s", err);
		code = code == OAUTH2_OK ? EX_OK : code == OAUTH2_TEMP ?
		    EX_TEMPFAIL : EX_CONFIG;
		goto done;
	default:
		break;
	}

	/* The envelope sender: -f, else from, else USER@maildomain; with
	 * from_rewrite always from (the provider takes nothing else). */
	if (a->from_rewrite)
		strlcpy(sender, a->from, sizeof(sender));
	else if (o.sender == NULL && a->from != NULL)
		strlcpy(sender, a->from, sizeof(sender));
	else if (o.sender == NULL)
		snprintf(sender, sizeof(sender), "%s@%s", caller()->pw_name,
		    a->maildomain);
	else if (sender[0] != '\0' && strchr(sender, '@') == NULL) {
		strlcat(sender, "@", sizeof(sender));
		strlcat(sender, a->maildomain, sizeof(sender));
	}
	if (addr_check(sender, err, sizeof(err)) == -1)
		fatal(EX_DATAERR, "sender: %s", err);
	if (o.mode == M_CHECK) {
		code = check_account(a, sender);
		goto done;
	}
	if (o.rcpt.n == 0 && !o.from_headers)
		fatal(EX_DATAERR, "no recipients given (name them as "
		    "arguments, or use -t to read To, Cc and Bcc)");

	memset(&mo, 0, sizeof(mo));
	mo.dot_ends = o.dot_ends;
	mo.from_headers = o.from_headers;
	mo.sender = sender[0] != '\0' ? sender : "MAILER-DAEMON";
	mo.fullname = o.fullname;
	mo.maildomain = a->maildomain;
	mo.aliases = al;
	mo.from_rewrite = a->from_rewrite ? a->from : NULL;
	tmp = getenv("TMPDIR");
	/* Spooled in the queue directory, a message is queued by a link. */
	mo.spool_dir = r.qdir != NULL ? r.qdir : tmp != NULL && tmp[0] == '/' ?
	    tmp : "/tmp";
	memset(&q, 0, sizeof(q));
	if (message_read(&q.msg, &mo, STDIN_FILENO) == -1)
		fatal(q.msg.exitcode, "%s", q.msg.err);

	for (i = 0; i < o.rcpt.n; i++)
		strlist_add(&all, o.rcpt.v[i]);
	for (i = 0; i < q.msg.hdr_rcpt.n; i++)
		strlist_add(&all, q.msg.hdr_rcpt.v[i]);
	code = EX_OK;
	if (addr_resolve(&all, al, a->maildomain, &resolved, err,
	    sizeof(err)) == -1) {
		warnx("%s", err);
		code = EX_DATAERR;
	} else if (resolved.n == 0) {
		warnx("no recipients: To, Cc and Bcc name nobody");
		code = EX_DATAERR;
	} else if (resolved.n > RCPT_MAX) {
		warnx("%zu recipients; at most %d per message", resolved.n,
		    RCPT_MAX);
		code = EX_DATAERR;
	}
	if (code != EX_OK) {
		deliver_keep(&r, a, &q.msg, sender, getuid());
		goto sent;
	}
	q.env.sender = sender;
	q.env.notify = o.notify;
	q.env.ret = o.ret;
	q.env.envid = o.envid;
	q.env.rcpt = xcalloc(resolved.n, sizeof(*q.env.rcpt));
	q.env.nrcpt = resolved.n;
	for (i = 0; i < resolved.n; i++) {
		q.env.rcpt[i].addr = resolved.v[i];
		q.env.rcpt[i].st = ST_TEMP;	/* until the server takes it */
	}
	code = deliver_submit(&r, a, &q, o.deliver);
sent:
	message_close(&q.msg);
	free(q.env.rcpt);
	strlist_free(&resolved);
	strlist_free(&all);
done:
	strlist_free(&o.rcpt);
	free(o.notify);
	free(o.ret);
	free(name);
	aliases_close(al);
	config_free(&cfg);
	return code;
}
