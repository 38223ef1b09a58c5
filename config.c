/* SPDX-License-Identifier: ISC */
/*
 * Configuration: the system file, then the user's; the key table and its
 * parser; accounts and the defaults they inherit; the checks that keep a
 * secret private. What a provider fills in is provider.c's; reading the
 * secret when AUTH needs it is secret.c's.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/tls1.h>

#include "outbox.h"
#include "auth.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR	"/etc"
#endif

enum ktype {
	K_STR, K_SECRET, K_FILE, K_HOSTS, K_NUM, K_BOOL, K_TLS, K_TLSVER,
	K_FINGERPRINT, K_AUTH, K_DURATION, K_ABSPATH, K_HELO, K_SIZE,
	K_CHOICE,
	K_FILE_LATER	/* a secret file that a command writes later */
};

static const char *const grants[] = {
	"client_credentials", "refresh_token", "jwt_bearer", NULL
};

/* The values a K_CHOICE key allows. */
static const struct choice {
	const char		*key;
	const char *const	*v;
} choices[] = {
	{ "oauth2_grant", grants },
	{ "oauth2_provider", provider_oauth2_names },
	{ "provider", provider_preset_names },
};

/*
 * The keys, a row each: ROW(name, type, min, max, owned, global), where
 * name is also the field of struct account. min and max bound a number.
 * owned is OWN when the field is memory the account owns (a string, the
 * host list: copied and freed with it), VAL for a plain value; every
 * string-valued type must be OWN (set_key checks). global is ALL for a key
 * that applies to every account (set before the first account only), ACCT
 * for one each account may set.
 */
enum { VAL, OWN };
enum { ACCT, ALL };
#define DAYS(n)	((n) * 86400LL)

#define MIB		(1024LL * 1024)
#define SIZE_MAX_MESSAGE (50 * MIB)	/* above every provider's SIZE we know */
#define SIZE_MAX_USER	(1024 * MIB)
#define SIZE_MIN_FREE	(100 * MIB)
#define USER_ENTRIES	1000	/* queue_max_user_entries */
#define MIN_FREE_INODES	1000	/* queue_min_free_inodes */

static const struct key {
	const char	*name;
	enum ktype	 type;
	size_t		 off;
	long long	 min, max;
	int		 owned;		/* OWN or VAL */
	int		 global;	/* ALL or ACCT */
} keys[] = {
#define ROW(f, type, min, max, owned, global) \
	{ #f, type, offsetof(struct account, f), min, max, owned, global }
	ROW(host,		K_HOSTS,	0, 0,		OWN, ACCT),
	ROW(port,		K_NUM,		1, 65535,	VAL, ACCT),
	ROW(tls,		K_TLS,		0, 0,		VAL, ACCT),
	ROW(tls_ca_file,	K_STR,		0, 0,		OWN, ACCT),
	ROW(tls_fingerprint,	K_FINGERPRINT,	0, 0,		OWN, ACCT),
	ROW(tls_cert_file,	K_STR,		0, 0,		OWN, ACCT),
	ROW(tls_key_file,	K_STR,		0, 0,		OWN, ACCT),
	ROW(tls_min_version,	K_TLSVER,	0, 0,		VAL, ACCT),
	ROW(auth,		K_AUTH,		0, 0,		OWN, ACCT),
	ROW(auth_plaintext,	K_BOOL,		0, 1,		VAL, ACCT),
	ROW(user,		K_STR,		0, 0,		OWN, ACCT),
	ROW(password,		K_SECRET,	0, 0,		OWN, ACCT),
	ROW(password_file,	K_FILE,		0, 0,		OWN, ACCT),
	ROW(password_command,	K_STR,		0, 0,		OWN, ACCT),
	ROW(from,		K_STR,		0, 0,		OWN, ACCT),
	ROW(from_rewrite,	K_BOOL,		0, 1,		VAL, ACCT),
	ROW(maildomain,		K_STR,		0, 0,		OWN, ACCT),
	ROW(helo,		K_HELO,		0, 0,		OWN, ACCT),
	ROW(aliases,		K_STR,		0, 0,		OWN, ACCT),
	ROW(timeout,		K_NUM,		1, 3600,	VAL, ACCT),
	ROW(session_timeout,	K_DURATION,	1, 86400,	VAL, ACCT),
	ROW(log,		K_STR,		0, 0,		OWN, ACCT),
	ROW(dead_letter,	K_STR,		0, 0,		OWN, ACCT),
	ROW(queue,		K_BOOL,		0, 1,		VAL, ALL),
	ROW(queue_dir,		K_ABSPATH,	0, 0,		OWN, ALL),
	ROW(queue_lifetime,	K_DURATION,	60, DAYS(365),	VAL, ALL),
	ROW(sessions,		K_NUM,		1, 16,		VAL, ACCT),
	ROW(provider,		K_CHOICE,	0, 0,		OWN, ACCT),
	ROW(connections,	K_NUM,		1, 100,		VAL, ACCT),
	ROW(rate,		K_NUM,		0, 100000,	VAL, ACCT),
	ROW(max_rcpt,		K_NUM,		0, RCPT_MAX,	VAL, ACCT),
	ROW(throttle_time,	K_DURATION,	1, 86400,	VAL, ACCT),
	ROW(auth_failure_cache_time, K_DURATION, 60, DAYS(365), VAL, ACCT),
	ROW(submit_timeout,	K_DURATION,	1, 3600,	VAL, ACCT),
	ROW(tls_session_cache,	K_BOOL,		0, 1,		VAL, ACCT),
	ROW(delay_warning_time,	K_DURATION,	60, DAYS(365),	VAL, ALL),
	/* K_SIZE keys are the shared spool's limits (spool_key). */
	ROW(queue_max_message_size, K_SIZE,	0, 1LL << 50,	VAL, ALL),
	ROW(queue_max_user_bytes, K_SIZE,	0, 1LL << 50,	VAL, ALL),
	ROW(queue_min_free,	K_SIZE,		0, 1LL << 50,	VAL, ALL),
	ROW(queue_max_user_entries, K_SIZE,	0, 1LL << 50,	VAL, ALL),
	ROW(queue_min_free_inodes, K_SIZE,	0, 1LL << 50,	VAL, ALL),
	ROW(oauth2_grant,	K_CHOICE,	0, 0,		OWN, ACCT),
	ROW(oauth2_token_url,	K_STR,		0, 0,		OWN, ACCT),
	ROW(oauth2_device_url,	K_STR,		0, 0,		OWN, ACCT),
	ROW(oauth2_client_id,	K_STR,		0, 0,		OWN, ACCT),
	ROW(oauth2_client_secret, K_SECRET,	0, 0,		OWN, ACCT),
	ROW(oauth2_client_secret_file, K_FILE,	0, 0,		OWN, ACCT),
	ROW(oauth2_scope,	K_STR,		0, 0,		OWN, ACCT),
	ROW(oauth2_refresh_token_file, K_FILE_LATER, 0, 0,	OWN, ACCT),
	ROW(oauth2_key_file,	K_FILE,		0, 0,		OWN, ACCT),
	ROW(oauth2_ca_file,	K_STR,		0, 0,		OWN, ACCT),
	ROW(oauth2_provider,	K_CHOICE,	0, 0,		OWN, ACCT),
	ROW(oauth2_tenant,	K_STR,		0, 0,		OWN, ACCT),
#undef ROW
};
#define NKEYS	(sizeof(keys) / sizeof(keys[0]))

/* What load_file() is doing: the file, the line, the block it is in. */
struct loader {
	struct config	*cfg;
	const char	*path;
	int		 fd;
	int		 system;	/* the system file */
	int		 lineno;
	int		 private;	/* -1 unknown, 0 checked private */
	size_t		 first;		/* cfg->nacct when the file began */
	struct account	 defaults;	/* keys outside accounts */
	struct account	*cur;		/* the block being read */
	char		*err;
	size_t		 errlen;
};

#define FIELD(a, k, t)	((t *)(void *)((char *)(a) + (k)->off))
#define CFIELD(a, k, t)	((t const *)(const void *)((const char *)(a) + (k)->off))

static void	account_init(struct account *);
static void	account_copy(struct account *, const struct account *);
static void	account_free(struct account *);
static long long parse_duration(const struct key *, char *);
static int	parse_fingerprint(const char *, char[65]);
static int	parse_word(const struct key *, const char *, struct account *);
static void	set_hosts(struct account *, char *);
static int	set_key(struct account *, const struct key *, char *,
		    const char *, int, char *, size_t);
/* "file:line: why" into the loader's err; returns -1. */
#define lerr(l, ...)	err_at((l)->err, (l)->errlen, (l)->path, \
			    (l)->lineno, __VA_ARGS__)
static int	split_line(char *, char **, char **);
static const struct key *find_key(const char *);
static struct account *add_account(struct loader *, const char *);
static int	start_account(struct loader *, const char *);
static int	check_value(struct loader *, const struct key *, const char *);
static int	read_key(struct loader *, char *, char *);
static int	add_default(struct loader *);
static void	keep_globals(struct config *, const struct account *);
static int	load_file(struct config *, const char *, int, int, char *,
		    size_t);
static int	finish(struct account *, char *, size_t);
static int	helo_valid(const char *);
static int	set_size(struct account *, const struct key *, char *,
		    const char *, int, char *, size_t);
static int	spool_key(const struct key *, const char *, int, int, char *,
		    size_t);
static void	spool_limits(struct account *, const struct account *);
static int	choice_ok(const char *, const char *);


static void
account_init(struct account *a)
{
	memset(a, 0, sizeof(*a));
	a->tls_min_version = TLS1_2_VERSION;
	a->tls_session_cache = 1;
	a->timeout = 60;
	a->session_timeout = 600;
	a->queue = 1;
	a->queue_lifetime = 5 * 86400;
	a->sessions = 4;
	/* Unset (-1) until a file or the provider's preset says. */
	a->connections = a->rate = a->max_rcpt = -1;
	a->throttle_time = 300;
	a->auth_failure_cache_time = 86400;
	a->submit_timeout = 5;
	/* Unset (-1) until a file says: config_load fills the defaults. */
	a->queue_max_message_size = a->queue_max_user_bytes =
	    a->queue_min_free = a->queue_max_user_entries =
	    a->queue_min_free_inodes = -1;
}

/* An octet count: 0, 1048576, 512k, 50M, 2G (binary multiples). */
static int
set_size(struct account *a, const struct key *k, char *v, const char *file,
    int line, char *err, size_t errlen)
{
	const char	*e = NULL;
	size_t		 n = strlen(v);
	long long	 num, mult = 1;

	if (n > 1 && strchr("kKMG", v[n - 1]) != NULL) {
		mult = v[n - 1] == 'M' ? MIB : v[n - 1] == 'G' ? 1024 * MIB :
		    1024;
		v[n - 1] = '\0';
	}
	num = strtonum(v, 0, k->max / mult, &e);
	if (e != NULL || strspn(v, "0123456789") != strlen(v)) {
		err_at(err, errlen, file, line, "%s: give a size in octets, or "
		    "with k, M or G, such as 50M (0: no limit)", k->name);
		return -1;
	}
	*FIELD(a, k, long long) = num * mult;
	return 0;
}

/*
 * In a setgid install the spool is shared: where it is and its limits
 * are the system file's alone, or a user could point the group at a
 * directory of theirs, or lift the limits that protect the others.
 */
static int
spool_key(const struct key *k, const char *file, int line, int system,
    char *err, size_t errlen)
{
	if ((k->type != K_SIZE && strcmp(k->name, "queue_dir") != 0) ||
	    system || priv_group() == (gid_t)-1)
		return 0;
	return err_at(err, errlen, file, line, "%s: in a setgid install the "
	    "shared queue and its limits are set by " SYSCONFDIR "/outbox.conf "
	    "only; remove this line (outbox -C FILE gives a private queue, "
	    "without the group)", k->name);
}

/* Copies the spool limits a file set (not -1) into the configuration's. */
static void
spool_limits(struct account *to, const struct account *from)
{
	if (from->queue_max_message_size != -1)
		to->queue_max_message_size = from->queue_max_message_size;
	if (from->queue_max_user_bytes != -1)
		to->queue_max_user_bytes = from->queue_max_user_bytes;
	if (from->queue_min_free != -1)
		to->queue_min_free = from->queue_min_free;
	if (from->queue_max_user_entries != -1)
		to->queue_max_user_entries = from->queue_max_user_entries;
	if (from->queue_min_free_inodes != -1)
		to->queue_min_free_inodes = from->queue_min_free_inodes;
}

/* Deep copy: every string of dst is its own. */
static void
account_copy(struct account *dst, const struct account *src)
{
	size_t	i, k;

	*dst = *src;
	dst->name = src->name != NULL ? xstrdup(src->name) : NULL;
	for (k = 0; k < NKEYS; k++) {
		const struct key *key = &keys[k];

		if (key->type == K_HOSTS) {
			memset(&dst->host, 0, sizeof(dst->host));
			for (i = 0; i < src->host.n; i++)
				strlist_add(&dst->host, src->host.v[i]);
		} else if (key->owned == VAL)
			continue;
		else if (*CFIELD(src, key, char *) != NULL)
			*FIELD(dst, key, char *) =
			    xstrdup(*CFIELD(src, key, char *));
	}
}

static void
account_free(struct account *a)
{
	size_t	k;
	char	*s;

	free(a->name);
	strlist_free(&a->host);
	for (k = 0; k < NKEYS; k++) {
		const struct key *key = &keys[k];

		if (key->owned == VAL || key->type == K_HOSTS)
			continue;
		if ((s = *FIELD(a, key, char *)) == NULL)
			continue;
		if (key->type == K_SECRET)
			explicit_bzero(s, strlen(s));
		free(s);
	}
	memset(a, 0, sizeof(*a));
}

/*
 * A file that holds a secret must be the caller's (or root's) and closed to
 * others; group access only for the group outbox runs setgid to.
 */
int
config_private(int fd, const char *path, char *err, size_t errlen)
{
	struct stat	st;

	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (st.st_uid != getuid() && st.st_uid != 0) {
		snprintf(err, errlen, "%s holds a secret but belongs to uid "
		    "%u: chown it to yourself or root", path,
		    (unsigned)st.st_uid);
		return -1;
	}
	if ((st.st_mode & 007) != 0 || ((st.st_mode & 070) != 0 &&
	    st.st_gid != priv_install_group())) {
		snprintf(err, errlen, "%s holds a secret and others can read "
		    "it (mode %03o): chmod 600 %s", path,
		    (unsigned)(st.st_mode & 0777), path);
		return -1;
	}
	return 0;
}

/* EHLO's argument (RFC 5321 4.1.1.1): a domain or an address literal. */
static int
helo_valid(const char *v)
{
	static const char	 name[] = "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.";
	size_t			 n = strlen(v);

	if (v[0] == '[')
		return n > 2 && v[n - 1] == ']' && strspn(v + 1,
		    "0123456789abcdefABCDEFIPv:.") == n - 2;
	return n > 0 && n < 256 && strspn(v, name) == n && v[0] != '.' &&
	    v[0] != '-' && v[n - 1] != '.' && strstr(v, "..") == NULL;
}

/* A duration: 300, 90s, 30m, 12h, 5d; -1 when out of the key's range. */
static long long
parse_duration(const struct key *k, char *v)
{
	const char	*e = NULL;
	size_t		 n = strlen(v);
	long long	 num, mult = 1;

	if (n > 1 && strchr("smhd", v[n - 1]) != NULL) {
		mult = v[n - 1] == 'm' ? 60 : v[n - 1] == 'h' ? 3600 :
		    v[n - 1] == 'd' ? 86400 : 1;
		v[n - 1] = '\0';
	}
	num = strtonum(v, 1, k->max, &e);
	if (e != NULL || num * mult < k->min || num * mult > k->max)
		return -1;
	return num * mult;
}

/* A SHA-256 in hex, colons allowed, into hex as 64 upper-case digits. */
static int
parse_fingerprint(const char *v, char hex[65])
{
	size_t	n = 0;

	for (; *v != '\0'; v++) {
		if (*v == ':')
			continue;
		if (!isxdigit((unsigned char)*v) || n == 64)
			return -1;
		hex[n++] = toupper((unsigned char)*v);
	}
	hex[n] = '\0';
	return n == 64 ? 0 : -1;
}

/* A word of a key's closed list (tls, tls_min_version, on/off); -1 if none. */
static int
parse_word(const struct key *k, const char *v, struct account *a)
{
	static const struct { const char *word; enum ktype type; int val; }
	    words[] = {
		{ "starttls", K_TLS, TLS_STARTTLS },
		{ "implicit", K_TLS, TLS_IMPLICIT },
		{ "off", K_TLS, TLS_OFF },
		{ "1.2", K_TLSVER, TLS1_2_VERSION },
		{ "1.3", K_TLSVER, TLS1_3_VERSION },
		{ "on", K_BOOL, 1 },
		{ "off", K_BOOL, 0 },
	};
	size_t	n;

	for (n = 0; n < sizeof(words) / sizeof(words[0]); n++) {
		if (words[n].type != k->type || strcmp(v, words[n].word) != 0)
			continue;
		if (k->type == K_TLS)
			*FIELD(a, k, enum tls_mode) = words[n].val;
		else
			*FIELD(a, k, long long) = words[n].val;
		return 0;
	}
	return -1;
}

/* host: a list of names separated by blanks or commas. */
static void
set_hosts(struct account *a, char *v)
{
	char	*p;

	strlist_free(&a->host);
	for (p = strtok_r(v, " \t,", &v); p != NULL;
	    p = strtok_r(NULL, " \t,", &v))
		strlist_add(&a->host, p);
}

/* Whether v is one of the values the K_CHOICE key allows. */
static int
choice_ok(const char *key, const char *v)
{
	size_t	i, n;

	for (i = 0; i < sizeof(choices) / sizeof(choices[0]); i++)
		for (n = 0; strcmp(choices[i].key, key) == 0 &&
		    choices[i].v[n] != NULL; n++)
			if (strcmp(choices[i].v[n], v) == 0)
				return 1;
	return 0;
}

/* Sets one key of an account from its text; -1 with err on a bad value. */
static int
set_key(struct account *a, const struct key *k, char *v, const char *file,
    int line, char *err, size_t errlen)
{
	const char	*e = NULL;
	char		 hex[128];
	long long	 num;

	switch (k->type) {
	case K_HOSTS:
		set_hosts(a, v);
		return 0;
	case K_NUM:
		num = strtonum(v, k->min, k->max, &e);
		if (e != NULL) {
			err_at(err, errlen, file, line, "%s: %s is %s (%lld to "
			    "%lld)", k->name, v, e, k->min, k->max);
			return -1;
		}
		*FIELD(a, k, long long) = num;
		return 0;
	case K_SIZE:
		return set_size(a, k, v, file, line, err, errlen);
	case K_DURATION:
		if ((num = parse_duration(k, v)) == -1) {
			err_at(err, errlen, file, line, "%s: give a duration "
			    "such as 90s, 30m or 12h (%lld to %lld seconds)",
			    k->name, k->min, k->max);
			return -1;
		}
		*FIELD(a, k, long long) = num;
		return 0;
	case K_BOOL:
	case K_TLS:
	case K_TLSVER:
		if (parse_word(k, v, a) == 0)
			return 0;
		err_at(err, errlen, file, line, "%s: bad value \"%s\"",
		    k->name, v);
		return -1;
	case K_FINGERPRINT:
		if (parse_fingerprint(v, hex) == -1) {
			err_at(err, errlen, file, line, "tls_fingerprint must "
			    "be "
			    "the SHA-256 of the certificate: 64 hex digits "
			    "(openssl x509 -noout -fingerprint -sha256)");
			return -1;
		}
		v = hex;
		break;
	case K_ABSPATH:
		/* Relative to whichever directory outbox was started in. */
		if (v[0] != '/') {
			err_at(err, errlen, file, line, "%s: \"%s\" is not "
			    "an "
			    "absolute path (start it with /)", k->name, v);
			return -1;
		}
		break;
	case K_HELO:
		if (!helo_valid(v)) {
			err_at(err, errlen, file, line, "helo: \"%s\" is not a "
			    "host name (letters, digits, '-' and dots) or an "
			    "[address literal]", v);
			return -1;
		}
		break;
	case K_AUTH:
		/* on, off, or a row of auth.c's table: nothing else. */
		if (strcasecmp(v, "on") != 0 && strcasecmp(v, "off") != 0 &&
		    auth_mech(v) == NULL) {
			auth_names(hex, sizeof(hex));
			err_at(err, errlen, file, line, "auth: no mechanism "
			    "\"%s\" "
			    "(on, off, %s)", v, hex);
			return -1;
		}
		free(a->auth);
		a->auth = xstrdup(auth_mech(v) != NULL ? auth_mech(v)->name :
		    strcasecmp(v, "on") == 0 ? "on" : "off");
		return 0;
	case K_CHOICE:
		if (choice_ok(k->name, v))
			break;
		err_at(err, errlen, file, line, "%s: bad value \"%s\"",
		    k->name, v);
		return -1;
	case K_FILE:
	case K_FILE_LATER:
	case K_SECRET:
	case K_STR:
		break;
	}
	if (k->owned != OWN) {	/* account_copy() would share it */
		err_at(err, errlen, file, line, "%s: the key table must say "
		    "OWN", k->name);
		return -1;
	}
	free(*FIELD(a, k, char *));
	*FIELD(a, k, char *) = xstrdup(v);
	return 0;
}

/*
 * Splits a line into its key and value, trimming blanks. Returns 0 for a
 * blank line or a comment.
 */
static int
split_line(char *line, char **key, char **value)
{
	char	*v, *end;

	line[strcspn(line, "\r\n")] = '\0';
	*key = line + strspn(line, " \t");
	if (**key == '#' || **key == '\0')
		return 0;
	v = *key + strcspn(*key, " \t");
	if (*v != '\0')
		*v++ = '\0';
	v += strspn(v, " \t");
	for (end = v + strlen(v); end > v && (end[-1] == ' ' ||
	    end[-1] == '\t'); end--)
		end[-1] = '\0';
	*value = v;
	return 1;
}

/* The key's row, or NULL for an unknown key. */
static const struct key *
find_key(const char *name)
{
	size_t	k;

	for (k = 0; k < NKEYS; k++)
		if (strcmp(keys[k].name, name) == 0)
			return &keys[k];
	return NULL;
}

/* A new account of this file, inheriting the defaults read so far. */
static struct account *
add_account(struct loader *l, const char *name)
{
	struct config	*cfg = l->cfg;
	struct account	*a;

	cfg->acct = xreallocarray(cfg->acct, cfg->nacct + 1,
	    sizeof(*cfg->acct));
	a = &cfg->acct[cfg->nacct++];
	account_copy(a, &l->defaults);
	free(a->name);
	a->name = xstrdup(name);
	a->file = l->path;
	a->system = l->system;
	return a;
}

/* "account NAME": one name, not defined before (in any file). */
static int
start_account(struct loader *l, const char *name)
{
	const struct config *cfg = l->cfg;
	size_t	i;

	if (*name == '\0' || strcspn(name, " \t") != strlen(name))
		return lerr(l, "account needs one name");
	for (i = 0; i < cfg->nacct; i++)
		if (strcmp(cfg->acct[i].name, name) == 0)
			return lerr(l, "account %s is already defined in %s%s",
			    name, cfg->acct[i].file, cfg->acct[i].system &&
			    !l->system ? "; a user file cannot change a system "
			    "account" : "");
	l->cur = add_account(l, name);
	l->cur->line = l->lineno;
	return 0;
}

/*
 * What a key's place and value must satisfy before it is set: a value; a
 * global key outside accounts; a secret only in a private file; a
 * password_file that is private itself.
 */
static int
check_value(struct loader *l, const struct key *k, const char *v)
{
	char	err[512];
	int	fd, rv;

	if (*v == '\0')
		return lerr(l, "%s needs a value", k->name);
	if (k->global == ALL && (l->cur != &l->defaults ||
	    l->cfg->nacct > l->first))
		return lerr(l, "%s applies to every account: set it before "
		    "the first account", k->name);
	if (k->type == K_SECRET) {
		if (l->private == -1 &&
		    config_private(l->fd, l->path, l->err, l->errlen) == -1)
			return -1;
		l->private = 0;
		l->cur->secret_line = l->lineno;
	}
	if (k->type != K_FILE && k->type != K_FILE_LATER)
		return 0;
	/* outbox --oauth2-login makes a missing K_FILE_LATER one. */
	if ((fd = open(v, O_RDONLY | O_CLOEXEC)) == -1 && errno == ENOENT &&
	    k->type == K_FILE_LATER)
		return 0;
	/*
	 * A system secret this user's run cannot read: the message is still
	 * queued, and AUTH says which file and the fix (secret.c).
	 */
	if (fd == -1 && l->system && getuid() != 0 && (errno == EACCES ||
	    errno == EPERM))
		return 0;
	if (fd == -1)
		return lerr(l, "%s %s: %s", k->name, v, strerror(errno));
	rv = config_private(fd, v, err, sizeof(err));
	close(fd);
	return rv == -1 ? lerr(l, "%s", err) : 0;
}

/* One "key value" line: a block, or a key of the current block. */
static int
read_key(struct loader *l, char *key, char *v)
{
	const struct key *k;

	if (strcmp(key, "defaults") == 0 && *v == '\0') {
		l->cur = &l->defaults;
		return 0;
	}
	if (strcmp(key, "account") == 0)
		return start_account(l, v);
	if ((k = find_key(key)) == NULL)
		return lerr(l, "unknown key \"%s\"", key);
	if (check_value(l, k, v) == -1 || spool_key(k, l->path, l->lineno,
	    l->system, l->err, l->errlen) == -1)
		return -1;
	return set_key(l->cur, k, v, l->path, l->lineno, l->err, l->errlen);
}

/* Keys outside any account make the account "default". */
static int
add_default(struct loader *l)
{
	const struct config *cfg = l->cfg;
	size_t	i;

	if (l->defaults.host.n == 0)
		return 0;
	for (i = 0; i < cfg->nacct; i++)
		if (strcmp(cfg->acct[i].name, "default") == 0)
			break;
	if (i < cfg->nacct && cfg->acct[i].system && !l->system) {
		snprintf(l->err, l->errlen, "%s: sets host outside an account, "
		    "but %s defines the default account; a user file can only "
		    "add accounts", l->path, cfg->acct[i].file);
		return -1;
	}
	if (i == cfg->nacct)
		add_account(l, "default");
	return 0;
}

/* With no account at all, mail waits in the queue the global keys say. */
static void
keep_globals(struct config *cfg, const struct account *d)
{
	size_t	k;

	spool_limits(&cfg->defaults, d);
	for (k = 0; k < NKEYS; k++) {
		const struct key *key = &keys[k];

		if (key->global != ALL || key->type == K_SIZE)
			continue;	/* the spool's limits: spool_limits() */
		if (key->owned == VAL)
			*FIELD(&cfg->defaults, key, long long) =
			    *CFIELD(d, key, long long);
		else if (*CFIELD(d, key, char *) != NULL) {
			free(*FIELD(&cfg->defaults, key, char *));
			*FIELD(&cfg->defaults, key, char *) =
			    xstrdup(*CFIELD(d, key, char *));
		}
	}
}

/* Reads one file; system marks its accounts as the system's. */
static int
load_file(struct config *cfg, const char *path, int system, int must,
    char *err, size_t errlen)
{
	struct loader	 l;
	FILE		*fp;
	char		*line = NULL, *key, *v;
	size_t		 cap = 0;
	int		 rv = -1;

	memset(&l, 0, sizeof(l));
	if ((l.fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (!must && errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if ((fp = fdopen(l.fd, "r")) == NULL) {
		close(l.fd);
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	l.cfg = cfg;
	l.path = path;
	l.system = system;
	l.private = -1;
	l.first = cfg->nacct;
	l.err = err;
	l.errlen = errlen;
	account_init(&l.defaults);
	l.defaults.file = path;
	l.cur = &l.defaults;
	while (getline(&line, &cap, fp) != -1) {
		l.lineno++;
		if (split_line(line, &key, &v) && read_key(&l, key, v) == -1)
			goto out;
	}
	if (add_default(&l) == -1)
		goto out;
	keep_globals(cfg, &l.defaults);
	rv = 0;
out:
	if (rv == -1 && line != NULL)
		explicit_bzero(line, cap);
	free(line);
	account_free(&l.defaults);
	fclose(fp);
	return rv;
}

/* Fills in what follows from other keys, and refuses unsafe combinations. */
static int
finish(struct account *a, char *err, size_t errlen)
{
	char		 at[PATH_MAX + 32];
	const char	*why = NULL;

	provider_preset(a);
	if (a->tls == TLS_DEFAULT)
		a->tls = a->port == 465 ? TLS_IMPLICIT : TLS_STARTTLS;
	if (a->port == 0)
		a->port = a->tls == TLS_IMPLICIT ? 465 : 587;
	if (a->oauth2_grant != NULL)
		provider_oauth2(a);
	if (a->auth == NULL)
		a->auth = xstrdup(a->user != NULL ? "on" : "off");
	if (a->maildomain == NULL)
		a->maildomain = xstrdup(config_hostname());
	if (a->helo == NULL)
		a->helo = xstrdup(config_hostname());
	if (a->from_rewrite && a->from == NULL)
		why = "from_rewrite needs from, the address the account may "
		    "send as";
	else if (strcmp(a->auth, "off") == 0)
		return 0;
	else if (a->user == NULL)
		why = "auth needs user";
	else if (a->oauth2_grant != NULL)
		why = provider_oauth2_check(a);
	else if (a->password == NULL && a->password_file == NULL &&
	    a->password_command == NULL)
		why = "user has no password, password_file or password_command";
	else if (a->tls == TLS_OFF && !a->auth_plaintext)
		why = "tls off would send the password in clear; use tls "
		    "starttls or implicit, or say auth_plaintext on";
	if (why == NULL)
		return 0;
	/* The account "default" made of keys outside accounts has no line. */
	if (a->line > 0)
		snprintf(at, sizeof(at), "%s:%d", a->file, a->line);
	else
		strlcpy(at, a->file, sizeof(at));
	snprintf(err, errlen, "%s: account %s: %s", at, a->name, why);
	return -1;
}

/*
 * Loads file (-C), or the system file and then the user's. Returns 0, or -1
 * with err naming the file and line.
 */
int
config_load(struct config *cfg, const char *file, const char *home,
    char *err, size_t errlen)
{
	char		 user[PATH_MAX];
	const char	*xdg = getenv("XDG_CONFIG_HOME");
	size_t		 i;
	int		 rv;

	memset(cfg, 0, sizeof(*cfg));
	account_init(&cfg->defaults);
	if (file != NULL) {
		if (load_file(cfg, file, 0, 1, err, errlen) == -1)
			return -1;
	} else {
		priv_raise();
		rv = load_file(cfg, SYSCONFDIR "/outbox.conf", 1, 0, err,
		    errlen);
		priv_drop();
		if (rv == -1 && priv_group() != (gid_t)-1 && getuid() != 0) {
			/* Its text may hold the secret: say only where. */
			snprintf(err, errlen, SYSCONFDIR "/outbox.conf has an "
			    "error; run outbox --check as root to see it");
			return -1;
		}
		if (rv == -1)
			return -1;
		if (xdg != NULL && xdg[0] == '/')
			snprintf(user, sizeof(user), "%s/outbox/config", xdg);
		else
			snprintf(user, sizeof(user), "%s/.config/outbox/config",
			    home);
		/* An entry names its account's file (qenv.c): keep it, the
		 * same whatever HOME or XDG_CONFIG_HOME spell it. */
		if ((cfg->user_file = realpath(user, NULL)) == NULL)
			cfg->user_file = xstrdup(user);
		if (home != NULL && load_file(cfg, cfg->user_file, 0, 0, err,
		    errlen) == -1)
			return -1;
	}
	for (i = 0; i < cfg->nacct; i++)
		if (finish(&cfg->acct[i], err, errlen) == -1)
			return -1;
	if (cfg->defaults.queue_max_message_size == -1)
		cfg->defaults.queue_max_message_size = SIZE_MAX_MESSAGE;
	if (cfg->defaults.queue_max_user_bytes == -1)
		cfg->defaults.queue_max_user_bytes = SIZE_MAX_USER;
	if (cfg->defaults.queue_min_free == -1)
		cfg->defaults.queue_min_free = SIZE_MIN_FREE;
	if (cfg->defaults.queue_max_user_entries == -1)
		cfg->defaults.queue_max_user_entries = USER_ENTRIES;
	if (cfg->defaults.queue_min_free_inodes == -1)
		cfg->defaults.queue_min_free_inodes = MIN_FREE_INODES;
	cfg->defaults.name = xstrdup("none");
	cfg->defaults.file = "(no configuration)";
	return finish(&cfg->defaults, err, errlen);
}

/*
 * Picks the account: by name, else the one whose from is the sender, else
 * "default". NULL with err when there is none.
 */
const struct account *
config_account(const struct config *cfg, const char *name,
    const char *sender, char *err, size_t errlen)
{
	size_t	i;

	for (i = 0; name != NULL && i < cfg->nacct; i++)
		if (strcmp(cfg->acct[i].name, name) == 0)
			return &cfg->acct[i];
	if (name != NULL) {
		snprintf(err, errlen, "no account named %s in the "
		    "configuration", name);
		return NULL;
	}
	for (i = 0; sender != NULL && i < cfg->nacct; i++)
		if (cfg->acct[i].from != NULL &&
		    strcasecmp(cfg->acct[i].from, sender) == 0)
			return &cfg->acct[i];
	for (i = 0; i < cfg->nacct; i++)
		if (strcmp(cfg->acct[i].name, "default") == 0)
			return &cfg->acct[i];
	if (cfg->nacct > 0)
		return &cfg->acct[0];
	/* Nothing configured: mail waits in the queue until there is. */
	return &cfg->defaults;
}

void
config_free(struct config *cfg)
{
	size_t	i;

	for (i = 0; i < cfg->nacct; i++)
		account_free(&cfg->acct[i]);
	account_free(&cfg->defaults);
	free(cfg->acct);
	free(cfg->user_file);
	memset(cfg, 0, sizeof(*cfg));
}

/* This host's name, for EHLO and bare local names. */
const char *
config_hostname(void)
{
	static char	name[256];

	if (name[0] == '\0' && (gethostname(name, sizeof(name)) == -1 ||
	    name[0] == '\0'))
		strlcpy(name, "localhost", sizeof(name));
	name[sizeof(name) - 1] = '\0';
	return name;
}
