/* SPDX-License-Identifier: ISC */
/*
 * Providers' rules as an account's state, shared by every outbox process
 * of the host (queue runs, -odb children, submissions):
 * - a cap on connections per mailbox: lock files QUEUE/.slots/ID.N, each
 *   held with flock(2) for the life of one connection;
 * - QUEUE/.state/ID: a pause after a throttling reply (and the cap down
 *   to 1 for an hour), a refused login remembered until the configuration
 *   or the secret changes (Postfix's smtp_sasl_auth_cache), and the rate's
 *   next free moment;
 * - the recipients one transaction may carry: max_rcpt and RFC 9422
 *   LIMITS (RCPTMAX, RCPTDOMAINMAX; MAILMAX per session).
 * ID is the SHA-256 of the mailbox (host, port, user). What waits for the
 * account's state is not charged a retry step.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "outbox.h"
#include "queue.h"
#include "smtp.h"

#define SLOTS_DIR	".slots"
#define STATE_DIR	".state"
#define CAP_LOWERED	3600	/* seconds a throttled account keeps cap 1 */
#define STATE_MAX	4096	/* octets of a state file we read */
#define SLOT_POLL_MS	100

/* An account's state file, parsed (it is hostile input: bounded). */
struct lstate {
	time_t		 pause;		/* paused until then */
	char		 pause_why[256];
	long long	 cap;		/* lowered connection cap, 0: none */
	time_t		 cap_until;
	time_t		 auth;		/* a login was refused then, 0: none */
	char		 auth_print[65];
	char		 auth_why[256];
	long long	 next_ms;	/* rate: the next message's moment */
};

static int	digest(const char *const *, size_t, char[65]);
static int	mailbox_id(const struct account *, char[65]);
static void	file_print(const char *, char *, size_t);
static int	auth_print(const struct account *, char[65]);
static int	sub_open(const char *, const char *, int);
static int	sub_file(const char *, const char *, const char *, int);
static int	state_lock(const struct run *, const struct account *,
		    struct lstate *, int);
static void	state_parse(char *, struct lstate *);
static void	state_save(int, const struct lstate *);
static void	state_peek(const struct run *, const struct account *,
		    struct lstate *);
static int	auth_cached(const struct account *, const struct lstate *);
static enum status block(struct session *, enum fclass, const char *, ...)
		    PRINTF(3, 4);
static int	slot_take(const struct run *, struct session *,
		    const struct account *, long long);
static void	clean(char *);
static void	sleep_ms(long long);

/* Milliseconds of the wall clock: shared by processes, in the state. */
static long long
wall_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Milliseconds of CLOCK_MONOTONIC: deadlines within a process. */
long long
limits_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void
sleep_ms(long long ms)
{
	struct timespec	ts;

	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	nanosleep(&ts, NULL);	/* a signal ends it early: stopping() */
}

/* SHA-256 of tagged, NUL-ended fields, in hex; -1 when OpenSSL fails. */
static int
digest(const char *const *f, size_t n, char hex[65])
{
	unsigned char	 md[32];
	unsigned int	 len = 0;
	EVP_MD_CTX	*c;
	size_t		 i;
	int		 ok;

	if ((c = EVP_MD_CTX_new()) == NULL)
		return -1;
	ok = EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1;
	for (i = 0; ok && i < n; i++)
		ok = f[i] == NULL ? EVP_DigestUpdate(c, "", 1) == 1 :
		    EVP_DigestUpdate(c, "\1", 1) == 1 &&
		    EVP_DigestUpdate(c, f[i], strlen(f[i]) + 1) == 1;
	ok = ok && EVP_DigestFinal_ex(c, md, &len) == 1 && len == sizeof(md);
	EVP_MD_CTX_free(c);
	for (i = 0; ok && i < sizeof(md); i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return ok ? 0 : -1;
}

/* The mailbox a provider counts connections for: host, port, user. */
static int
mailbox_id(const struct account *a, char hex[65])
{
	char		 port[32];
	const char	*f[] = { "mailbox-1", a->host.n > 0 ? a->host.v[0] :
	    NULL, port, a->user };

	snprintf(port, sizeof(port), "%lld", a->port);
	return digest(f, sizeof(f) / sizeof(f[0]), hex);
}

/* A file's identity and last change, "-" when it cannot be seen. */
static void
file_print(const char *path, char *buf, size_t size)
{
	struct stat	st;
	int		rv;

	if (path == NULL) {
		strlcpy(buf, "", size);
		return;
	}
	priv_raise();
	rv = stat(path, &st);
	priv_drop();
	if (rv == -1)
		strlcpy(buf, "-", size);
	else
		snprintf(buf, size, "%llu:%llu:%lld:%lld.%ld",
		    (unsigned long long)st.st_dev,
		    (unsigned long long)st.st_ino, (long long)st.st_size,
		    (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

/*
 * What a refused login is remembered under: the credentials' sources,
 * never the secret itself. A changed configuration file (where an inline
 * password lives), password file or OAuth2 file gives another print.
 */
static int
auth_print(const struct account *a, char hex[65])
{
	char		 st[5][128];
	const char	*f[] = { "auth-1", a->name, a->file, st[0], a->user,
	    a->auth, a->password_file, st[1], a->password_command,
	    a->oauth2_client_id, st[2], st[3], st[4] };

	file_print(a->file, st[0], sizeof(st[0]));
	file_print(a->password_file, st[1], sizeof(st[1]));
	file_print(a->oauth2_client_secret_file, st[2], sizeof(st[2]));
	file_print(a->oauth2_refresh_token_file, st[3], sizeof(st[3]));
	file_print(a->oauth2_key_file, st[4], sizeof(st[4]));
	return digest(f, sizeof(f) / sizeof(f[0]), hex);
}

/*
 * Whether the queue is every user's (queue_shared): the setgid install,
 * or its spool as a root run without the group (NoNewPrivileges) sees it.
 * Called with the group raised.
 */
static int
sub_shared(const char *qdir)
{
	int	fd, shared;

	if ((fd = open(qdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return priv_group() != (gid_t)-1;
	shared = queue_shared(fd);
	close(fd);
	return shared;
}

/*
 * The directory QUEUE/sub, made when missing (with make): the group's in
 * a shared queue (every user's processes share it), else the user's.
 */
static int
sub_open(const char *qdir, const char *sub, int make)
{
	char	path[4096];
	int	fd, shared;

	if (snprintf(path, sizeof(path), "%s/%s", qdir, sub) >=
	    (int)sizeof(path))
		return -1;
	priv_raise();
	shared = sub_shared(qdir);
	if (make && mkdir(path, 0700) == 0)
		chmod(path, shared ? 02770 : 0700);	/* whatever the umask */
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	priv_drop();
	return fd;
}

/* Opens QUEUE/sub/name for reading and writing (made with make); -1. */
static int
sub_file(const char *qdir, const char *sub, const char *name, int make)
{
	struct stat	st;
	mode_t		mode;
	int		dfd, fd;

	if ((dfd = sub_open(qdir, sub, make)) == -1)
		return -1;
	priv_raise();
	mode = sub_shared(qdir) ? 0660 : 0600;
	fd = openat(dfd, name, O_RDWR | (make ? O_CREAT : 0) | O_NOFOLLOW |
	    O_CLOEXEC | O_NONBLOCK, mode);
	if (fd != -1 && fstat(fd, &st) == 0 && st.st_size == 0 &&
	    (st.st_mode & 0777) != mode)
		fchmod(fd, mode);
	priv_drop();
	close(dfd);
	if (fd != -1 && (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_nlink != 1)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Makes text from a server or a file safe for one line of the state. */
static void
clean(char *p)
{
	for (; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
}

/* Reads "key value..." lines; what does not parse is left out. */
static void
state_parse(char *buf, struct lstate *st)
{
	const char	*e;
	char		*line, *v, *w;

	memset(st, 0, sizeof(*st));
	while ((line = strsep(&buf, "\n")) != NULL) {
		if ((v = strchr(line, ' ')) == NULL)
			continue;
		*v++ = '\0';
		if ((w = strchr(v, ' ')) != NULL)
			*w++ = '\0';
		e = NULL;
		if (strcmp(line, "pause") == 0) {
			st->pause = strtonum(v, 0, 1LL << 40, &e);
			strlcpy(st->pause_why, w != NULL ? w : "",
			    sizeof(st->pause_why));
		} else if (strcmp(line, "cap") == 0 && w != NULL) {
			st->cap = strtonum(v, 1, 100, &e);
			st->cap_until = strtonum(w, 0, 1LL << 40, &e);
		} else if (strcmp(line, "auth") == 0 && w != NULL &&
		    strlen(w) >= 65 && w[64] == ' ') {
			st->auth = strtonum(v, 0, 1LL << 40, &e);
			memcpy(st->auth_print, w, 64);
			st->auth_print[64] = '\0';
			strlcpy(st->auth_why, w + 65, sizeof(st->auth_why));
		} else if (strcmp(line, "next") == 0)
			st->next_ms = strtonum(v, 0, 1LL << 50, &e);
		if (e != NULL)
			memset(st, 0, sizeof(*st));	/* damaged: forgotten */
	}
	clean(st->pause_why);
	clean(st->auth_why);
}

/* Reads the state on fd, which is open and locked. */
static void
state_read(int fd, struct lstate *st)
{
	char	buf[STATE_MAX + 1];
	ssize_t	n = pread(fd, buf, STATE_MAX, 0);

	buf[n > 0 ? n : 0] = '\0';
	state_parse(buf, st);
}

/*
 * The account's state file, locked for a change (made with make), its
 * state read; -1 when there is none.
 */
static int
state_lock(const struct run *r, const struct account *a, struct lstate *st,
    int make)
{
	char	id[65];
	int	fd;

	memset(st, 0, sizeof(*st));
	if (r->qdir == NULL || mailbox_id(a, id) == -1 ||
	    (fd = sub_file(r->qdir, STATE_DIR, id, make)) == -1)
		return -1;
	if (flock(fd, LOCK_EX) == -1) {
		close(fd);
		return -1;
	}
	state_read(fd, st);
	return fd;
}

/* Writes the state back and lets the lock go. */
static void
state_save(int fd, const struct lstate *st)
{
	char	buf[STATE_MAX];
	int	n = 0;

	if (st->pause > 0)
		n += snprintf(buf + n, sizeof(buf) - n, "pause %lld %.200s\n",
		    (long long)st->pause, st->pause_why);
	if (st->cap > 0)
		n += snprintf(buf + n, sizeof(buf) - n, "cap %lld %lld\n",
		    st->cap, (long long)st->cap_until);
	if (st->auth > 0)
		n += snprintf(buf + n, sizeof(buf) - n, "auth %lld %s %.200s\n",
		    (long long)st->auth, st->auth_print, st->auth_why);
	if (st->next_ms > 0)
		n += snprintf(buf + n, sizeof(buf) - n, "next %lld\n",
		    st->next_ms);
	if (ftruncate(fd, 0) == 0 && n > 0 && pwrite(fd, buf, n, 0) != n)
		syslog(LOG_WARNING, "outbox: cannot write an account's state");
	close(fd);
}

/* The state as it is now, without a lock held after. */
static void
state_peek(const struct run *r, const struct account *a, struct lstate *st)
{
	int	fd;

	if ((fd = state_lock(r, a, st, 0)) != -1)
		close(fd);
}

/* Whether the refused login was made with the credentials we have now. */
static int
auth_cached(const struct account *a, const struct lstate *st)
{
	char	print[65];

	return st->auth > 0 && time(NULL) < st->auth +
	    a->auth_failure_cache_time && auth_print(a, print) == 0 &&
	    strcmp(print, st->auth_print) == 0;
}

/* The account, not this message, stops the attempt: no retry step. */
static enum status
block(struct session *s, enum fclass class, const char *fmt, ...)
{
	va_list	ap;
	char	text[sizeof(s->fail.text)];

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	smtpio_failx(s, STAGE_CONNECT, class, "%s", text);
	s->uncharged = 1;
	return ST_TEMP;
}

/* The account's connection cap now: connections, or lower after throttling. */
long long
limits_cap(const struct run *r, const struct account *a)
{
	struct lstate	st;

	state_peek(r, a, &st);
	if (st.cap > 0 && st.cap < a->connections && time(NULL) < st.cap_until)
		return st.cap;
	return a->connections;
}

/*
 * Takes a free connection slot of the account's cap: at once for a
 * caller that waits, else polling for up to the account's timeout.
 * 0 with s->slot set, or -1.
 */
static int
slot_take(const struct run *r, struct session *s, const struct account *a,
    long long cap)
{
	char		 id[65], name[96];
	long long	 end = limits_now_ms() + a->timeout * 1000;
	long long	 i;
	int		 fd;

	if (s->slot != 0)
		return 0;
	if (mailbox_id(a, id) == -1)
		return -1;
	for (;;) {
		for (i = 0; i < cap; i++) {
			snprintf(name, sizeof(name), "%.64s.%lld", id, i);
			if ((fd = sub_file(r->qdir, SLOTS_DIR, name, 1)) == -1)
				return -1;
			if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
				s->slot = fd + 1;
				/* Every user's runs share a system account's
				 * slots: nothing blocks on stderr meanwhile. */
				if (a->system)
					qhold_take(&s->errheld);
				return 0;
			}
			close(fd);
		}
		if (r->foreground || limits_now_ms() >= end || stopping())
			return -1;
		sleep_ms(SLOT_POLL_MS);
	}
}

/*
 * Whether a run must leave the account alone now: LIMITS_PAUSED, or
 * LIMITS_LOGIN (its login refused with these credentials), else 0; why
 * says so. outbox -q without --due tries anyway: the administrator asks.
 */
int
limits_blocked(const struct run *r, const struct account *a, char *why,
    size_t size)
{
	struct lstate	 st;
	char		 date[32];
	time_t		 now = time(NULL);

	if (r->manual || r->qdir == NULL)
		return 0;
	state_peek(r, a, &st);
	if (st.pause > now) {
		strftime(date, sizeof(date), "%H:%M:%S", localtime(&st.pause));
		snprintf(why, size, "account %s paused until %s after the "
		    "server's \"%s\" (throttle_time)", a->name, date,
		    st.pause_why);
		return LIMITS_PAUSED;
	}
	if (auth_cached(a, &st)) {
		time_t until = st.auth + a->auth_failure_cache_time;

		strftime(date, sizeof(date), "%Y-%m-%d %H:%M",
		    localtime(&until));
		snprintf(why, size, "account %s: the server refused the login "
		    "(%s); no new login with the same credentials until the "
		    "configuration or the password changes, or %s "
		    "(auth_failure_cache_time); fix it, then run outbox -q",
		    a->name, st.auth_why, date);
		return LIMITS_LOGIN;
	}
	return 0;
}

/*
 * Opens s for account a within the account's limits: not while it is
 * paused or its login refused; only with a free connection slot (held
 * until hangup). Then smtp_open(), and what the server said is noted.
 */
enum status
limits_open(struct run *r, struct session *s, const struct account *a)
{
	struct lstate	st;
	char		why[sizeof(s->fail.text)];
	enum status	rv;
	int		fd;

	s->uncharged = 0;
	s->ntx = 0;
	memset(&s->throttle, 0, sizeof(s->throttle));
	if (r->qdir == NULL)
		return smtp_open(s);
	switch (limits_blocked(r, a, why, sizeof(why))) {
	case LIMITS_LOGIN:
		return block(s, FC_CONFIG, "%s", why);
	case LIMITS_PAUSED:
		return block(s, FC_TEMP, "%s", why);
	}
	if (slot_take(r, s, a, limits_cap(r, a)) == -1)
		return block(s, FC_TEMP, "every connection the account may "
		    "open (connections %lld) is in use; the message waits "
		    "for the queue run", limits_cap(r, a));
	if ((rv = smtp_open(s)) != ST_OK) {
		limits_after(r, s, a);
		smtplimits_release(s);
		return rv;
	}
	state_peek(r, a, &st);
	if (st.auth > 0 && s->authenticated && (fd = state_lock(r, a,
	    &st, 1)) != -1) {
		st.auth = 0;	/* these credentials work */
		state_save(fd, &st);
	}
	return rv;
}

/*
 * Notes what the server said about the account after an open or a
 * transaction: throttling pauses it for throttle_time and lowers its
 * cap to 1 for an hour; a refused login (5xx to AUTH) is remembered.
 */
void
limits_after(struct run *r, struct session *s, const struct account *a)
{
	struct lstate	 st;
	struct reply	 rp;
	time_t		 now = time(NULL);
	int		 fd, thr, auth;

	if (r->qdir == NULL || s->uncharged) {
		memset(&s->throttle, 0, sizeof(s->throttle));
		return;
	}
	thr = s->throttle.code != 0;
	rp = s->throttle;
	memset(&s->throttle, 0, sizeof(s->throttle));
	auth = s->fail.stage == STAGE_AUTH && s->fail.class == FC_CONFIG &&
	    s->fail.code / 100 == 5;
	if ((!thr && !auth) || (fd = state_lock(r, a, &st, 1)) == -1)
		return;
	if (thr) {
		if (st.pause < now + a->throttle_time)
			st.pause = now + a->throttle_time;
		if (snprintf(st.pause_why, sizeof(st.pause_why), "%d %s",
		    rp.code, rp.text) < 0)
			st.pause_why[0] = '\0';
		clean(st.pause_why);
		st.cap = 1;
		st.cap_until = now + CAP_LOWERED;
		s->uncharged = 1;
		log_line(a, "smtp", "account %s paused for %llds, 1 "
		    "connection for %ds: %s", a->name, a->throttle_time,
		    CAP_LOWERED, st.pause_why);
	} else if (auth_print(a, st.auth_print) == 0) {
		st.auth = now;
		strlcpy(st.auth_why, s->fail.text, sizeof(st.auth_why));
		clean(st.auth_why);
		s->uncharged = 1;
		log_line(a, "smtp", "account %s: login refused; no new "
		    "login until its credentials change: %s", a->name,
		    st.auth_why);
	}
	state_save(fd, &st);
}

/*
 * An entry that waited for the account's state, not for a fault of its
 * own: due again at once (the account's pause decides when it goes),
 * no retry step. 1 when so.
 */
int
limits_uncharged(const struct session *s, struct qentry *q)
{
	if (!s->uncharged)
		return 0;
	q->next = time(NULL);
	return 1;
}

/*
 * rate: the moment the next message of the account may go, shared by
 * every process: taken, then waited for. A caller that would wait past
 * its submit_timeout leaves the message to the queue instead.
 */
enum status
limits_pace(struct run *r, struct session *s, const struct account *a)
{
	struct lstate	st;
	long long	now, at, wait;
	int		fd;

	if (a->rate <= 0 || r->qdir == NULL ||
	    (fd = state_lock(r, a, &st, 1)) == -1)
		return ST_OK;
	now = wall_ms();
	at = st.next_ms > now ? st.next_ms : now;
	wait = at - now;
	if (r->foreground && r->budget_end > 0 && limits_now_ms() + wait >
	    r->budget_end) {
		close(fd);
		return block(s, FC_TEMP, "the account's rate (%lld a minute) "
		    "lets the next message go in %lld s; it waits in the "
		    "queue", a->rate, wait / 1000 + 1);
	}
	st.next_ms = at + 60000 / a->rate;
	state_save(fd, &st);
	sleep_ms(wait);
	return ST_OK;
}

/* The state of every account that has one: for mailq. */
void
limits_show(const struct run *r, FILE *fp)
{
	char	 why[1024];
	size_t	 i;

	for (i = 0; r->qdir != NULL && i < r->cfg->nacct; i++)
		if (limits_blocked(r, &r->cfg->acct[i], why, sizeof(why)))
			fprintf(fp, "-- %s\n", why);
}
