/*
 * Configuration: the system file, then the user's; accounts; the checks
 * that keep a secret private; reading the secret when AUTH needs it.
 */
#include <sys/stat.h>
#include <sys/wait.h>

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

#include "outbox.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR	"/etc"
#endif

enum ktype {
	K_STR, K_SECRET, K_FILE, K_HOSTS, K_NUM, K_BOOL, K_TLS, K_TLSVER,
	K_FINGERPRINT, K_AUTH, K_DURATION, K_CHOICE,
	K_FILE_LATER	/* a secret file that a command writes later */
};

static const char *const grants[] = {
	"client_credentials", "refresh_token", "jwt_bearer", NULL
};

/* oauth2_provider: what it fills in when the account leaves it out. */
static const struct provider {
	const char	*name;
	const char	*token_url, *device_url;	/* with {tenant} */
	const char	*scope_app, *scope_user;
	const char	*host;
} providers[] = {
	{ "microsoft",
	    "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
	    "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode",
	    "https://outlook.office365.com/.default",
	    "https://outlook.office365.com/SMTP.Send offline_access",
	    "smtp.office365.com" },
	{ "google", "https://oauth2.googleapis.com/token",
	    "https://oauth2.googleapis.com/device/code",
	    "https://mail.google.com/", "https://mail.google.com/",
	    "smtp.gmail.com" },
};

static const char *const provider_names[] = { "microsoft", "google", NULL };

/* The values a K_CHOICE key allows. */
static const struct choice {
	const char		*key;
	const char *const	*v;
} choices[] = {
	{ "oauth2_grant", grants },
	{ "oauth2_provider", provider_names },
};

static const struct key {
	const char	*name;
	enum ktype	 type;
	size_t		 off;
	long long	 min, max;
} keys[] = {
#define O(f)	offsetof(struct account, f)
	{ "host",		K_HOSTS,	O(host),	0, 0 },
	{ "port",		K_NUM,		O(port),	1, 65535 },
	{ "tls",		K_TLS,		O(tls),		0, 0 },
	{ "tls_ca_file",	K_STR,		O(tls_ca_file),	0, 0 },
	{ "tls_fingerprint",	K_FINGERPRINT,	O(tls_fingerprint), 0, 0 },
	{ "tls_cert_file",	K_STR,		O(tls_cert_file), 0, 0 },
	{ "tls_key_file",	K_STR,		O(tls_key_file), 0, 0 },
	{ "tls_min_version",	K_TLSVER,	O(tls_min_version), 0, 0 },
	{ "auth",		K_AUTH,		O(auth),	0, 0 },
	{ "auth_plaintext",	K_BOOL,		O(auth_plaintext), 0, 1 },
	{ "user",		K_STR,		O(user),	0, 0 },
	{ "password",		K_SECRET,	O(password),	0, 0 },
	{ "password_file",	K_FILE,		O(password_file), 0, 0 },
	{ "password_command",	K_STR,		O(password_command), 0, 0 },
	{ "from",		K_STR,		O(from),	0, 0 },
	{ "from_rewrite",	K_BOOL,		O(from_rewrite), 0, 1 },
	{ "maildomain",		K_STR,		O(maildomain),	0, 0 },
	{ "helo",		K_STR,		O(helo),	0, 0 },
	{ "aliases",		K_STR,		O(aliases),	0, 0 },
	{ "timeout",		K_NUM,		O(timeout),	1, 3600 },
	{ "log",		K_STR,		O(log),		0, 0 },
	{ "dead_letter",	K_STR,		O(dead_letter),	0, 0 },
	{ "queue",		K_BOOL,		O(queue),	0, 1 },
	{ "queue_dir",		K_STR,		O(queue_dir),	0, 0 },
	{ "queue_lifetime",	K_DURATION,	O(queue_lifetime), 60,
	    365 * 86400 },
	{ "oauth2_grant",	K_CHOICE,	O(oauth2_grant), 0, 0 },
	{ "oauth2_token_url",	K_STR,		O(oauth2_token_url), 0, 0 },
	{ "oauth2_device_url",	K_STR,		O(oauth2_device_url), 0, 0 },
	{ "oauth2_client_id",	K_STR,		O(oauth2_client_id), 0, 0 },
	{ "oauth2_client_secret", K_SECRET,	O(oauth2_client_secret), 0, 0 },
	{ "oauth2_client_secret_file", K_FILE,	O(oauth2_client_secret_file),
	    0, 0 },
	{ "oauth2_scope",	K_STR,		O(oauth2_scope), 0, 0 },
	{ "oauth2_refresh_token_file", K_FILE_LATER,
	    O(oauth2_refresh_token_file),
	    0, 0 },
	{ "oauth2_key_file",	K_FILE,		O(oauth2_key_file), 0, 0 },
	{ "oauth2_ca_file",	K_STR,		O(oauth2_ca_file), 0, 0 },
	{ "oauth2_provider",	K_CHOICE,	O(oauth2_provider), 0, 0 },
	{ "oauth2_tenant",	K_STR,		O(oauth2_tenant), 0, 0 },
#undef O
};

#define FIELD(a, k, t)	((t *)(void *)((char *)(a) + (k)->off))
#define CFIELD(a, k, t)	((t const *)(const void *)((const char *)(a) + (k)->off))

static int	key_is_string(const struct key *);
static void	account_init(struct account *);
static void	account_copy(struct account *, const struct account *);
static void	account_free(struct account *);
static int	file_private(int, const char *, char *, size_t);
static int	set_key(struct account *, const struct key *, char *,
		    const char *, int, char *, size_t);
static int	load_file(struct config *, const char *, int, int, char *,
		    size_t);
static int	finish(struct account *, char *, size_t);
static char	*provider_url(const char *, const char *);
static void	oauth2_defaults(struct account *);
static const char *oauth2_check(const struct account *);
static int	read_all(int, char **, size_t);
static int	choice_ok(const char *, const char *);

/* Whether the key's field is a string the account owns. */
static int
key_is_string(const struct key *k)
{
	return k->type != K_NUM && k->type != K_BOOL && k->type != K_TLS &&
	    k->type != K_TLSVER && k->type != K_DURATION;
}

static void
account_init(struct account *a)
{
	memset(a, 0, sizeof(*a));
	a->tls_min_version = TLS1_2_VERSION;
	a->timeout = 60;
	a->queue = 1;
	a->queue_lifetime = 5 * 86400;
}

/* Deep copy: every string of dst is its own. */
static void
account_copy(struct account *dst, const struct account *src)
{
	size_t	i, k;

	*dst = *src;
	dst->name = src->name != NULL ? xstrdup(src->name) : NULL;
	for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		const struct key *key = &keys[k];

		if (key->type == K_HOSTS) {
			memset(&dst->host, 0, sizeof(dst->host));
			for (i = 0; i < src->host.n; i++)
				strlist_add(&dst->host, src->host.v[i]);
		} else if (!key_is_string(key))
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
	for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		const struct key *key = &keys[k];

		if (!key_is_string(key) || key->type == K_HOSTS)
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
static int
file_private(int fd, const char *path, char *err, size_t errlen)
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
	    st.st_gid != priv_group())) {
		snprintf(err, errlen, "%s holds a secret and others can read "
		    "it (mode %03o): chmod 600 %s", path,
		    (unsigned)(st.st_mode & 0777), path);
		return -1;
	}
	return 0;
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

static int
set_key(struct account *a, const struct key *k, char *v, const char *file,
    int line, char *err, size_t errlen)
{
	const char	*e = NULL;
	char		*p, hex[128];
	size_t		 n;
	long long	 num, mult;

	switch (k->type) {
	case K_HOSTS:
		strlist_free(&a->host);
		for (p = strtok_r(v, " \t,", &v); p != NULL;
		    p = strtok_r(NULL, " \t,", &v))
			strlist_add(&a->host, p);
		return 0;
	case K_NUM:
		num = strtonum(v, k->min, k->max, &e);
		if (e != NULL) {
			snprintf(err, errlen, "%s:%d: %s: %s is %s (%lld to "
			    "%lld)", file, line, k->name, v, e, k->min, k->max);
			return -1;
		}
		*FIELD(a, k, long long) = num;
		return 0;
	case K_DURATION:
		/* 300, 90s, 30m, 12h, 5d */
		n = strlen(v);
		mult = 1;
		if (n > 1 && strchr("smhd", v[n - 1]) != NULL) {
			mult = v[n - 1] == 'm' ? 60 : v[n - 1] == 'h' ? 3600 :
			    v[n - 1] == 'd' ? 86400 : 1;
			v[n - 1] = '\0';
		}
		num = strtonum(v, 1, k->max, &e);
		if (e != NULL || num * mult < k->min || num * mult > k->max) {
			snprintf(err, errlen, "%s:%d: %s: give a duration "
			    "such as 90m, 12h or 5d (1m to 365d)", file, line,
			    k->name);
			return -1;
		}
		*FIELD(a, k, long long) = num * mult;
		return 0;
	case K_BOOL:
		if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
			goto bad;
		*FIELD(a, k, long long) = strcmp(v, "on") == 0;
		return 0;
	case K_TLS:
		if (strcmp(v, "starttls") == 0)
			a->tls = TLS_STARTTLS;
		else if (strcmp(v, "implicit") == 0)
			a->tls = TLS_IMPLICIT;
		else if (strcmp(v, "off") == 0)
			a->tls = TLS_OFF;
		else
			goto bad;
		return 0;
	case K_TLSVER:
		if (strcmp(v, "1.2") == 0)
			a->tls_min_version = TLS1_2_VERSION;
		else if (strcmp(v, "1.3") == 0)
			a->tls_min_version = TLS1_3_VERSION;
		else
			goto bad;
		return 0;
	case K_FINGERPRINT:
		for (n = 0, p = v; *p != '\0'; p++) {
			if (*p == ':')
				continue;
			if (!isxdigit((unsigned char)*p) || n == 64)
				break;
			hex[n++] = toupper((unsigned char)*p);
		}
		if (*p != '\0' || n != 64) {
			snprintf(err, errlen, "%s:%d: tls_fingerprint must be "
			    "the SHA-256 of the certificate: 64 hex digits "
			    "(openssl x509 -noout -fingerprint -sha256)", file,
			    line);
			return -1;
		}
		hex[64] = '\0';
		v = hex;
		break;
	case K_AUTH:
		/* on, off, or a row of auth.c's table: nothing else. */
		if (strcasecmp(v, "on") != 0 && strcasecmp(v, "off") != 0 &&
		    auth_mech(v) == NULL) {
			auth_names(hex, sizeof(hex));
			snprintf(err, errlen, "%s:%d: auth: no mechanism \"%s\" "
			    "(on, off, %s)", file, line, v, hex);
			return -1;
		}
		free(a->auth);
		a->auth = xstrdup(auth_mech(v) != NULL ? auth_mech(v)->name :
		    strcasecmp(v, "on") == 0 ? "on" : "off");
		return 0;
	case K_CHOICE:
		if (!choice_ok(k->name, v))
			goto bad;
		break;
	case K_FILE:
	case K_FILE_LATER:
	case K_SECRET:
	case K_STR:
		break;
	}
	free(*FIELD(a, k, char *));
	*FIELD(a, k, char *) = xstrdup(v);
	return 0;
bad:
	snprintf(err, errlen, "%s:%d: %s: bad value \"%s\"", file, line,
	    k->name, v);
	return -1;
}

/* Reads one file; system marks its accounts as the system's. */
static int
load_file(struct config *cfg, const char *path, int system, int must,
    char *err, size_t errlen)
{
	struct account	 defaults, *cur = &defaults;
	FILE		*fp;
	char		*line = NULL, *key, *v, *end;
	size_t		 cap = 0, i, k, first;
	int		 fd, lineno = 0, rv = -1, private = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (!must && errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if ((fp = fdopen(fd, "r")) == NULL) {
		close(fd);
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	account_init(&defaults);
	defaults.file = path;
	first = cfg->nacct;
	while (getline(&line, &cap, fp) != -1) {
		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		key = line + strspn(line, " \t");
		if (*key == '#' || *key == '\0')
			continue;
		v = key + strcspn(key, " \t");
		if (*v != '\0')
			*v++ = '\0';
		v += strspn(v, " \t");
		for (end = v + strlen(v); end > v && (end[-1] == ' ' ||
		    end[-1] == '\t'); end--)
			end[-1] = '\0';
		if (strcmp(key, "defaults") == 0 && *v == '\0') {
			cur = &defaults;
			continue;
		}
		if (strcmp(key, "account") == 0) {
			if (*v == '\0' || strcspn(v, " \t") != strlen(v)) {
				snprintf(err, errlen, "%s:%d: account needs "
				    "one name", path, lineno);
				goto out;
			}
			for (i = 0; i < cfg->nacct; i++)
				if (strcmp(cfg->acct[i].name, v) == 0)
					break;
			if (i < cfg->nacct) {
				snprintf(err, errlen, "%s:%d: account %s is "
				    "already defined in %s%s", path, lineno,
				    v, cfg->acct[i].file,
				    cfg->acct[i].system && !system ? "; a "
				    "user file cannot change a system account" :
				    "");
				goto out;
			}
			cfg->acct = xreallocarray(cfg->acct, cfg->nacct + 1,
			    sizeof(*cfg->acct));
			cur = &cfg->acct[cfg->nacct++];
			account_copy(cur, &defaults);
			free(cur->name);
			cur->name = xstrdup(v);
			cur->file = path;
			cur->line = lineno;
			cur->system = system;
			continue;
		}
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (strcmp(keys[k].name, key) == 0)
				break;
		if (k == sizeof(keys) / sizeof(keys[0])) {
			snprintf(err, errlen, "%s:%d: unknown key \"%s\"", path,
			    lineno, key);
			goto out;
		}
		if (*v == '\0') {
			snprintf(err, errlen, "%s:%d: %s needs a value", path,
			    lineno, key);
			goto out;
		}
		if (strncmp(key, "queue", 5) == 0 && (cur != &defaults ||
		    cfg->nacct > first)) {
			snprintf(err, errlen, "%s:%d: %s applies to every "
			    "account: set it before the first account", path,
			    lineno, key);
			goto out;
		}
		if (keys[k].type == K_SECRET) {
			if (private == -1)
				private = file_private(fd, path, err, errlen);
			if (private == -1)
				goto out;
			cur->secret_line = lineno;
		}
		if (keys[k].type == K_FILE || keys[k].type == K_FILE_LATER) {
			int pfd = open(v, O_RDONLY | O_CLOEXEC);

			/* outbox --oauth2-login makes a missing one. */
			if (pfd == -1 && (errno != ENOENT ||
			    keys[k].type != K_FILE_LATER)) {
				snprintf(err, errlen, "%s:%d: %s %s: %s", path,
				    lineno, key, v, strerror(errno));
				goto out;
			}
			i = pfd == -1 ? 0 : file_private(pfd, v, err, errlen);
			if (pfd != -1)
				close(pfd);
			if (i != 0)
				goto out;
		}
		if (set_key(cur, &keys[k], v, path, lineno, err, errlen) == -1)
			goto out;
	}
	/* Keys outside any account make the account "default". */
	if (defaults.host.n > 0) {
		for (i = 0; i < cfg->nacct; i++)
			if (strcmp(cfg->acct[i].name, "default") == 0)
				break;
		if (i < cfg->nacct && cfg->acct[i].system && !system) {
			snprintf(err, errlen, "%s: sets host outside an "
			    "account, but %s defines the default account; a "
			    "user file can only add accounts", path,
			    cfg->acct[i].file);
			goto out;
		}
		if (i == cfg->nacct) {
			cfg->acct = xreallocarray(cfg->acct, cfg->nacct + 1,
			    sizeof(*cfg->acct));
			cur = &cfg->acct[cfg->nacct++];
			account_copy(cur, &defaults);
			cur->name = xstrdup("default");
			cur->file = path;
			cur->system = system;
		}
	}
	/* With no account at all, mail waits in the queue these keys say. */
	cfg->defaults.queue = defaults.queue;
	cfg->defaults.queue_lifetime = defaults.queue_lifetime;
	if (defaults.queue_dir != NULL) {
		free(cfg->defaults.queue_dir);
		cfg->defaults.queue_dir = xstrdup(defaults.queue_dir);
	}
	rv = 0;
out:
	if (rv == -1 && line != NULL)
		explicit_bzero(line, cap);
	free(line);
	account_free(&defaults);
	fclose(fp);
	return rv;
}

/* Fills in the URL from a provider's pattern and the tenant. */
static char *
provider_url(const char *fmt, const char *tenant)
{
	const char	*t = strstr(fmt, "{tenant}");
	size_t		 len = strlen(fmt) + strlen(tenant) + 1;
	char		*url = xcalloc(1, len);

	if (t == NULL)
		strlcpy(url, fmt, len);
	else
		snprintf(url, len, "%.*s%s%s", (int)(t - fmt), fmt, tenant,
		    t + 8);
	return url;
}

/* oauth2_provider's URLs, scope and host; XOAUTH2 unless auth says. */
static void
oauth2_defaults(struct account *a)
{
	const struct provider	*p = NULL;
	const char		*tenant;
	size_t			 i;
	int			 app = strcmp(a->oauth2_grant,
				    "refresh_token") != 0;

	for (i = 0; a->oauth2_provider != NULL && i < sizeof(providers) /
	    sizeof(providers[0]); i++)
		if (strcmp(providers[i].name, a->oauth2_provider) == 0)
			p = &providers[i];
	if (a->auth == NULL || strcmp(a->auth, "on") == 0) {
		free(a->auth);
		a->auth = xstrdup("XOAUTH2");
	}
	if (p == NULL)
		return;
	/* A person may be of any tenant; app-only needs its own. */
	tenant = a->oauth2_tenant != NULL ? a->oauth2_tenant : "organizations";
	if (a->oauth2_token_url == NULL)
		a->oauth2_token_url = provider_url(p->token_url, tenant);
	if (a->oauth2_device_url == NULL)
		a->oauth2_device_url = provider_url(p->device_url, tenant);
	if (a->oauth2_scope == NULL)
		a->oauth2_scope = xstrdup(app ? p->scope_app : p->scope_user);
	if (a->host.n == 0)
		strlist_add(&a->host, p->host);
}

/* What an OAuth2 account lacks, or NULL. */
static const char *
oauth2_check(const struct account *a)
{
	const struct sasl_mech	*m = auth_mech(a->auth);

	if (m == NULL || m->strength != 0)
		return "oauth2_grant needs auth xoauth2 or oauthbearer";
	if (a->oauth2_token_url == NULL)
		return "oauth2_grant needs oauth2_token_url (or "
		    "oauth2_provider microsoft or google)";
	if (a->oauth2_provider != NULL && strcmp(a->oauth2_provider,
	    "microsoft") == 0 && a->oauth2_tenant == NULL &&
	    strcmp(a->oauth2_grant, "refresh_token") != 0)
		return "the application's own permission needs oauth2_tenant, "
		    "the Directory (tenant) ID";
	if (strncmp(a->oauth2_token_url, "https://", 8) != 0)
		return "oauth2_token_url must be an https:// URL";
	if (a->oauth2_client_id == NULL && strcmp(a->oauth2_grant,
	    "jwt_bearer") != 0)
		return "oauth2_grant needs oauth2_client_id";
	if (strcmp(a->oauth2_grant, "refresh_token") == 0 &&
	    a->oauth2_refresh_token_file == NULL)
		return "oauth2_grant refresh_token needs "
		    "oauth2_refresh_token_file (outbox --oauth2-login fills it)";
	if (strcmp(a->oauth2_grant, "jwt_bearer") == 0 &&
	    a->oauth2_key_file == NULL)
		return "oauth2_grant jwt_bearer needs oauth2_key_file";
	if (strcmp(a->oauth2_grant, "client_credentials") == 0 &&
	    a->oauth2_key_file == NULL && a->oauth2_client_secret == NULL &&
	    a->oauth2_client_secret_file == NULL)
		return "oauth2_grant client_credentials needs "
		    "oauth2_client_secret_file or oauth2_key_file";
	if (a->tls == TLS_OFF && !a->auth_plaintext)
		return "tls off would send the token in clear; use tls "
		    "starttls or implicit, or say auth_plaintext on";
	return NULL;
}

/* Fills in what follows from other keys, and refuses unsafe combinations. */
static int
finish(struct account *a, char *err, size_t errlen)
{
	char		 at[PATH_MAX + 32];
	const char	*why = NULL;

	if (a->tls == TLS_DEFAULT)
		a->tls = a->port == 465 ? TLS_IMPLICIT : TLS_STARTTLS;
	if (a->port == 0)
		a->port = a->tls == TLS_IMPLICIT ? 465 : 587;
	if (a->oauth2_grant != NULL)
		oauth2_defaults(a);
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
		why = oauth2_check(a);
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
		if (home != NULL && load_file(cfg, user, 0, 0, err, errlen)
		    == -1)
			return -1;
	}
	for (i = 0; i < cfg->nacct; i++)
		if (finish(&cfg->acct[i], err, errlen) == -1)
			return -1;
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
	memset(cfg, 0, sizeof(*cfg));
}

/* Reads the first line of a file or a command into a new string. */
static int
read_line(int fd, char **out)
{
	char	buf[16384];
	size_t	len = 0;
	ssize_t	n;

	while (len < sizeof(buf) - 1) {
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += n;
		if (memchr(buf, '\n', len) != NULL)
			break;
	}
	buf[len] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	*out = xstrdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return **out != '\0' ? 0 : -1;
}

/* Reads a whole (small) file into a new string. */
static int
read_all(int fd, char **out, size_t max)
{
	char	*buf = xcalloc(1, max + 1);
	size_t	 len = 0;
	ssize_t	 n;

	while (len < max) {
		n = read(fd, buf + len, max - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += n;
	}
	*out = buf;
	return len > 0 ? 0 : -1;
}

/*
 * Reads a secret file (its first line, or all of it) under the rules of
 * password_file: private, the caller's or root's. The caller clears and
 * frees *out. -1 with err (errno ENOENT when it is missing).
 */
int
config_read_secret(const struct account *a, const char *path, int whole,
    char **out, char *err, size_t errlen)
{
	int	fd, rv, e;

	*out = NULL;
	if (a->system)
		priv_raise();
	fd = open(path, O_RDONLY | O_CLOEXEC);
	e = errno;
	priv_drop();
	if (fd == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		errno = e;
		return -1;
	}
	if (file_private(fd, path, err, errlen) == -1) {
		close(fd);
		errno = EPERM;
		return -1;
	}
	rv = whole ? read_all(fd, out, 65536) : read_line(fd, out);
	close(fd);
	if (rv == -1)
		snprintf(err, errlen, "%s: %s", path, whole ? "empty" :
		    "nothing on its first line");
	errno = 0;
	return rv;
}

/*
 * Gets the account's secret: password, password_file or the first line of
 * password_command. The caller clears and frees *out. ST_TEMP with err on
 * failure: the mail waits while an administrator fixes it.
 */
int
config_secret(const struct account *a, char **out, char *err, size_t errlen)
{
	int	fd, p[2], status;
	pid_t	pid;

	*out = NULL;
	if (a->password != NULL) {
		*out = xstrdup(a->password);
		return 0;
	}
	if (a->password_file != NULL)
		return config_read_secret(a, a->password_file, 0, out, err,
		    errlen);
	if (pipe(p) == -1 || (pid = fork()) == -1) {
		snprintf(err, errlen, "password_command: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		priv_lose();	/* the command is the user's, not ours */
		close(p[0]);
		if (dup2(p[1], STDOUT_FILENO) == -1)
			_exit(127);
		if ((fd = open("/dev/null", O_RDONLY)) != -1)
			dup2(fd, STDIN_FILENO);
		execl("/bin/sh", "sh", "-c", a->password_command, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	status = read_line(p[0], out);
	close(p[0]);
	while (waitpid(pid, &fd, 0) == -1 && errno == EINTR)
		;
	if (status == -1 || !WIFEXITED(fd) || WEXITSTATUS(fd) != 0) {
		snprintf(err, errlen, "password_command failed (%s)",
		    status == -1 ? "no output" : "non-zero exit");
		return -1;
	}
	return 0;
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
