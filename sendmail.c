/*
 * main(): the sendmail command line, the mode, the envelope, the outcome
 * and the exit code. Only this file exits.
 */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>

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

enum mode { M_DELIVER, M_LIST, M_ALIASES, M_VERIFY, M_QUEUE, M_SMTP };

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
	struct strlist	 rcpt;
};

static void	usage(void) __attribute__((noreturn));
static void	fatal(int, const char *, ...)
		    __attribute__((noreturn, format(printf, 2, 3)));
static const char *optarg_of(char **, int *, int, const char *);
static void	parse_args(struct opts *, int, char **);
static void	parse_o(struct opts *, const char *);
static void	set_notify(struct opts *, const char *);
static int	exit_code(const struct session *, const struct envelope *,
		    enum status);
static void	log_outcome(const struct session *, const struct envelope *,
		    const struct timeval *);
static void	keep(const struct message *, const struct account *,
		    const char *, const char *);
static const char *user_name(void);
static void	verify(const struct opts *, const struct account *);

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
	    "[-R return] [-r sender]\n"
	    "              [-V envid] [-X file] [--] [recipient ...]\n"
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
	/* -odi -odb -odq, -oem -oep -oeq -oew -oee, -oA and the rest are
	 * accepted; delivery is in the foreground, errors go to stderr. */
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
				/* -q, -q30m, -qIid, -qRsite, -qSsender */
				o->mode = M_QUEUE;
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
					    "mode (use -bm, -bp, -bi or -bv)",
					    v);
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
				if (strlen(o->envid) > 100)
					fatal(EX_USAGE, "-V: at most 100 "
					    "characters");
				break;
			case 'f': case 'r':
				o->sender = optarg_of(argv, &i, pos, opt);
				break;
			case 'F':
				o->fullname = optarg_of(argv, &i, pos, opt);
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

		if (addr_parse_list(argv[i], strlen(argv[i]), &o->rcpt, err,
		    sizeof(err)) == -1)
			fatal(EX_DATAERR, "recipient %s: %s", argv[i], err);
	}
}

static const char *
user_name(void)
{
	struct passwd	*pw = getpwuid(getuid());

	if (pw == NULL)
		fatal(EX_OSERR, "who are you? uid %u has no passwd entry",
		    (unsigned)getuid());
	return pw->pw_name;
}

/* One exit code for the whole outcome (sysexits; DESIGN.md). */
static int
exit_code(const struct session *s, const struct envelope *env,
    enum status st)
{
	size_t	i;
	int	temp = 0, perm = 0;

	for (i = 0; i < env->nrcpt; i++) {
		temp |= env->rcpt[i].st == ST_TEMP;
		perm |= env->rcpt[i].st == ST_PERM;
	}
	if (st == ST_PERM && s->exitcode != 0)
		return s->exitcode;
	if (temp || st == ST_TEMP)
		return EX_TEMPFAIL;
	if (perm)
		return EX_NOUSER;
	return EX_OK;
}

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
log_outcome(const struct session *s, const struct envelope *env,
    const struct timeval *start)
{
	static const char *names[] = { "sent", "deferred", "bounced" };
	const struct rcpt *first;
	struct timeval	 now;
	char		 line[4096], to[1024], why[1200];
	size_t		 i;
	enum status	 st;

	gettimeofday(&now, NULL);
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
			strlcpy(why, s->err, sizeof(why));
		snprintf(line, sizeof(line), "from=<%s>, to=%s, "
		    "relay=%s[%s]:%lld, delay=%.2f, tls=%s, status=%s (%s)",
		    env->sender, to, s->host[0] ? s->host : "none",
		    s->addr[0] ? s->addr : "-", s->port,
		    (now.tv_sec - start->tv_sec) +
		    (now.tv_usec - start->tv_usec) / 1e6,
		    s->tls_version != NULL ? s->tls_version : "none",
		    names[st], why);
		log_line(s->acct, line);
	}
}

/* Appends the message to dead_letter (default ~/dead.letter), and says so. */
static void
keep(const struct message *m, const struct account *a, const char *home,
    const char *sender)
{
	char	path[4096], err[512];

	if (a->dead_letter != NULL)
		strlcpy(path, a->dead_letter, sizeof(path));
	else
		snprintf(path, sizeof(path), "%s/dead.letter",
		    home != NULL ? home : ".");
	if (message_dead_letter(m, path, sender, err, sizeof(err)) == 0)
		warnx("message kept in %s", path);
	else
		warnx("could not keep the message: %s", err);
}

/* -bv: what each recipient becomes, and who would carry it. Sends nothing. */
static void
verify(const struct opts *o, const struct account *a)
{
	struct strlist	 out = { NULL, 0 };
	char		 err[512];
	size_t		 i, j;
	int		 bad = 0;

	if (o->rcpt.n == 0)
		fatal(EX_USAGE, "-bv needs addresses to verify");
	for (i = 0; i < o->rcpt.n; i++) {
		struct strlist one = { &o->rcpt.v[i], 1 };

		if (addr_resolve(&one, a->aliases, a->maildomain, o->noalias,
		    &out, err, sizeof(err)) == -1) {
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
	exit(bad ? EX_DATAERR : EX_OK);
}

int
main(int argc, char *argv[])
{
	struct opts		 o;
	struct config		 cfg;
	struct message		 m;
	struct msgopts		 mo;
	struct envelope		 env;
	struct session		 s;
	struct strlist		 all = { NULL, 0 }, resolved = { NULL, 0 };
	struct rlimit		 nocore = { 0, 0 };
	struct timeval		 start;
	const struct account	*a;
	const char		*me, *home = getenv("HOME"), *tmp;
	struct passwd		*pw;
	char			 err[1024], sender[ADDR_MAX + 1], *name = NULL;
	enum status		 st;
	size_t			 i;
	int			 code, opened;

	/* A core dump could hold the password. */
	setrlimit(RLIMIT_CORE, &nocore);
	prctl(PR_SET_DUMPABLE, 0);
	umask(077);
	gettimeofday(&start, NULL);

	memset(&o, 0, sizeof(o));
	o.dot_ends = 1;
	me = strrchr(argv[0], '/') != NULL ? strrchr(argv[0], '/') + 1 :
	    argv[0];
	if (strcmp(me, "mailq") == 0)
		o.mode = M_LIST;
	else if (strcmp(me, "newaliases") == 0)
		o.mode = M_ALIASES;
	parse_args(&o, argc, argv);
	openlog(o.tag != NULL ? o.tag : "outbox", LOG_PID, LOG_MAIL);

	switch (o.mode) {
	case M_LIST:
		printf("Mail queue is empty\n");
		return EX_OK;
	case M_QUEUE:
		return EX_OK;	/* nothing is ever queued in this version */
	case M_SMTP:
		fatal(EX_USAGE, "-bs is not supported yet");
	default:
		break;
	}
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
		fatal(o.account != NULL ? EX_CONFIG : EX_TEMPFAIL, "%s", err);
	if (o.mode == M_ALIASES) {
		if (a->aliases == NULL) {
			printf("outbox: no aliases file configured; nothing "
			    "to do\n");
			return EX_OK;
		}
		if (aliases_count(a->aliases, &i, err, sizeof(err)) == -1)
			fatal(EX_CONFIG, "%s", err);
		printf("%s: %zu aliases\n", a->aliases, i);
		return EX_OK;
	}
	if (o.mode == M_VERIFY)
		verify(&o, a);

	/* The envelope sender: -f, else from, else USER@maildomain. */
	if (o.sender == NULL && a->from != NULL)
		strlcpy(sender, a->from, sizeof(sender));
	else if (o.sender == NULL)
		snprintf(sender, sizeof(sender), "%s@%s", user_name(),
		    a->maildomain);
	else if (sender[0] != '\0' && strchr(sender, '@') == NULL) {
		strlcat(sender, "@", sizeof(sender));
		strlcat(sender, a->maildomain, sizeof(sender));
	}
	if (addr_check(sender, err, sizeof(err)) == -1)
		fatal(EX_DATAERR, "sender: %s", err);
	if (o.rcpt.n == 0 && !o.from_headers)
		fatal(EX_DATAERR, "no recipients given (name them as "
		    "arguments, or use -t to read To, Cc and Bcc)");
	if (o.fullname == NULL && (pw = getpwuid(getuid())) != NULL &&
	    pw->pw_gecos != NULL && pw->pw_gecos[0] != '\0') {
		name = xstrdup(pw->pw_gecos);
		name[strcspn(name, ",")] = '\0';
		o.fullname = name;
	}
	if (o.fullname != NULL && strpbrk(o.fullname, "\r\n") != NULL)
		fatal(EX_DATAERR, "-F: a full name cannot hold a line break");

	memset(&mo, 0, sizeof(mo));
	mo.dot_ends = o.dot_ends;
	mo.from_headers = o.from_headers;
	mo.sender = sender[0] != '\0' ? sender : "MAILER-DAEMON";
	mo.fullname = o.fullname;
	mo.maildomain = a->maildomain;
	tmp = getenv("TMPDIR");
	mo.spool_dir = tmp != NULL && tmp[0] == '/' ? tmp : "/tmp";
	if (message_read(&m, &mo, STDIN_FILENO) == -1)
		fatal(m.exitcode, "%s", m.err);

	memset(&env, 0, sizeof(env));
	memset(&s, 0, sizeof(s));
	s.acct = a;
	s.verbose = o.verbose;
	s.io.fd = -1;
	env.sender = sender;
	env.notify = o.notify;
	env.ret = o.ret;
	env.envid = o.envid;
	for (i = 0; i < o.rcpt.n; i++)
		strlist_add(&all, o.rcpt.v[i]);
	for (i = 0; i < m.hdr_rcpt.n; i++)
		strlist_add(&all, m.hdr_rcpt.v[i]);
	code = EX_OK;
	if (addr_resolve(&all, a->aliases, a->maildomain, o.noalias,
	    &resolved, err, sizeof(err)) == -1) {
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
		keep(&m, a, home, sender);
		return code;
	}
	env.rcpt = xcalloc(resolved.n, sizeof(*env.rcpt));
	env.nrcpt = resolved.n;
	for (i = 0; i < resolved.n; i++) {
		env.rcpt[i].addr = resolved.v[i];
		env.rcpt[i].st = ST_TEMP;	/* until the server takes it */
	}

	if ((opened = (st = smtp_open(&s)) == ST_OK))
		st = smtp_send(&s, &m, &env);
	smtp_close(&s);
	log_outcome(&s, &env, &start);

	code = exit_code(&s, &env, st);
	for (i = 0; i < env.nrcpt; i++) {
		struct rcpt *r = &env.rcpt[i];

		if (r->st == ST_PERM && r->reply.code != 0 &&
		    !(st == ST_PERM && s.exitcode != 0))
			warnx("<%s>: refused by %s: %d %s", r->addr, s.host,
			    r->reply.code, r->reply.text);
		else if (r->st == ST_TEMP && r->reply.code / 100 == 4)
			warnx("<%s>: deferred by %s: %d %s", r->addr, s.host,
			    r->reply.code, r->reply.text);
	}
	if (st != ST_OK && !opened)
		warnx("%s", s.err);	/* smtp_open names every host tried */
	else if (st != ST_OK)
		warnx("%s[%s]:%lld: %s", s.host, s.addr, s.port, s.err);
	if (code == EX_TEMPFAIL)
		warnx("not sent; try again later (exit 75)");
	if (code != EX_OK && code != EX_TEMPFAIL)
		keep(&m, a, home, sender);
	message_close(&m);
	free(env.rcpt);
	strlist_free(&resolved);
	strlist_free(&all);
	strlist_free(&o.rcpt);
	free(o.notify);
	free(o.ret);
	free(name);
	config_free(&cfg);
	return code;
}
