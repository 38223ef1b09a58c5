/* SPDX-License-Identifier: ISC */
/*
 * --check: goes through the account's session step by step, as far as a
 * test RCPT, says on a line each what every step gave, and when one fails
 * names the fix, chosen by the failure's stage and class (never its text).
 * Nothing is sent: RSET follows the test RCPT.
 */
#include <sys/socket.h>
#include <sys/time.h>

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "outbox.h"
#include "auth.h"
#include "io.h"
#include "oauth2.h"
#include "smtp.h"

/* What the TLS handshake showed, seen from OpenSSL's callbacks. */
struct probe {
	X509		*cert;		/* the peer's certificate (a reference) */
	long		 verify;	/* X509_V_OK, or why the chain failed */
	const char	*version;	/* set when a handshake completed */
	const char	*cipher;
	int		 resolved;	/* some host name resolved */
};

/* Facts a fix may depend on, beyond the failure's stage, class and code. */
enum cond {
	C_ANY,
	C_NODNS,	/* no host name resolved */
	C_NOLOGIN,	/* no user, so no login, where the server has AUTH */
	C_UNTRUSTED,	/* the chain ends at a CA we do not trust */
	C_NAME,		/* the certificate is for another name */
	C_EXPIRED,	/* the certificate is out of its dates */
	C_BADCERT,	/* another verification error */
	C_PINNED,	/* tls_fingerprint is set */
	C_NOHELLO,	/* the handshake ended before a certificate came */
	C_NOAUTH,	/* the server offers no AUTH */
	C_NOMECH,	/* none of the mechanisms offered will do */
	C_SECRET,	/* the secret could not be had (password_*) */
	C_SETUP		/* no connection was made: the TLS setup failed */
};

/*
 * The fixes, first match wins. STAGE_NONE and FC_NONE match any stage or
 * class; lo..hi is the reply code (0..0: there was no reply).
 */
static const struct fix {
	enum stage	 stage;
	enum fclass	 class;
	int		 lo, hi;
	enum cond	 cond;
	const char	*fix;
} fixes[] = {
	{ STAGE_CONNECT, FC_CONFIG, 0, 999, C_ANY,
	    "put host smtp.example.org in the configuration" },
	{ STAGE_CONNECT, FC_NONE, 0, 999, C_NODNS,
	    "the name does not resolve: check host" },
	{ STAGE_CONNECT, FC_NONE, 0, 999, C_ANY,
	    "nothing answers there: check host and port (587 for STARTTLS, "
	    "465 for implicit TLS), firewalls, or raise timeout" },
	{ STAGE_TLS, FC_CONFIG, 0, 999, C_SETUP,
	    "check tls_ca_file, tls_cert_file and tls_key_file: each must "
	    "name a readable PEM file" },
	{ STAGE_TLS, FC_NONE, 0, 999, C_PINNED,
	    "the certificate is not the pinned one: once you trust it, set "
	    "tls_fingerprint to the sha256 above" },
	{ STAGE_TLS, FC_NONE, 0, 999, C_UNTRUSTED,
	    "the certificate's CA is not trusted: set tls_ca_file to it, or "
	    "pin the certificate with tls_fingerprint (the sha256 above)" },
	{ STAGE_TLS, FC_NONE, 0, 999, C_NAME,
	    "the certificate is for another name: set host to a name it "
	    "holds" },
	{ STAGE_TLS, FC_NONE, 0, 999, C_EXPIRED,
	    "the certificate is out of date (or this machine's clock is "
	    "wrong): tell the server's administrator" },
	{ STAGE_TLS, FC_NONE, 0, 999, C_BADCERT,
	    "the certificate does not verify: set tls_ca_file to its CA, or "
	    "pin it with tls_fingerprint (the sha256 above)" },
	{ STAGE_TLS, FC_NONE, 0, 999, C_NOHELLO,
	    "the server did not answer the TLS handshake: port 465 wants tls "
	    "implicit, 587 wants tls starttls" },
	{ STAGE_TLS, FC_NONE, 0, 999, C_ANY,
	    "the TLS handshake failed: check tls_min_version, and that this "
	    "port speaks TLS" },
	{ STAGE_GREETING, FC_NONE, 0, 0, C_ANY,
	    "no SMTP greeting: a port that wants TLS first (465) needs tls "
	    "implicit" },
	{ STAGE_GREETING, FC_NONE, 500, 599, C_ANY,
	    "the server refuses connections from here: ask its "
	    "administrator, or use another host" },
	{ STAGE_EHLO, FC_NONE, 500, 502, C_ANY,
	    "the server does not speak ESMTP, so no STARTTLS and no AUTH: use "
	    "another host or port (tls off and auth off only for a trusted "
	    "local relay)" },
	{ STAGE_EHLO, FC_NONE, 500, 599, C_ANY,
	    "the server refuses the EHLO name: set helo to this machine's "
	    "fully qualified name" },
	{ STAGE_STARTTLS, FC_CONFIG, 0, 0, C_ANY,
	    "the server does not offer STARTTLS: use port 465 with tls "
	    "implicit if the provider has it; tls off only for a trusted "
	    "local relay" },
	{ STAGE_STARTTLS, FC_TEMP, 0, 0, C_ANY,
	    "clear text came after the STARTTLS reply: something on the way "
	    "injects data; use tls implicit, or another network" },
	{ STAGE_STARTTLS, FC_NONE, 500, 599, C_ANY,
	    "the server refuses STARTTLS: use port 465 with tls implicit, or "
	    "ask its administrator" },
	{ STAGE_AUTH, FC_NONE, 0, 0, C_NOAUTH,
	    "this server takes no AUTH here: use the submission port (587 or "
	    "465), or set auth off for a relay that needs no login" },
	{ STAGE_AUTH, FC_NONE, 0, 0, C_SECRET,
	    "the secret could not be had: the auth line names the file and "
	    "its fix (outbox.conf(5), SECURITY, gives each file's owner and "
	    "mode), or run password_command by hand (it must print the "
	    "secret and exit 0 within session_timeout)" },
	{ STAGE_AUTH, FC_NONE, 0, 0, C_NOMECH,
	    "set auth to a mechanism the server offers (ehlo above), or on" },
	{ STAGE_AUTH, FC_NONE, 500, 599, C_ANY,
	    "check user and the password (password, password_file or "
	    "password_command)" },
	{ STAGE_MAIL, FC_PERM, 500, 599, C_NOLOGIN,
	    "the server takes mail only from clients that log in: set user "
	    "and password_file" },
	{ STAGE_MAIL, FC_PERM, 500, 599, C_ANY,
	    "set from to an address this account may send as, or "
	    "from_rewrite on" },
	{ STAGE_RCPT, FC_PERM, 500, 599, C_NOLOGIN,
	    "the server relays only for clients that log in: set user and "
	    "password_file" },
	{ STAGE_RCPT, FC_PERM, 500, 599, C_ANY,
	    "the server will not take mail for the test recipient from this "
	    "account: check from, or name another recipient" },
	{ STAGE_NONE, FC_NONE, 400, 499, C_ANY,
	    "a temporary refusal: try again later; -v shows the dialogue" },
	{ STAGE_NONE, FC_NONE, 0, 999, C_ANY,
	    "run outbox -v --check to see the dialogue" },
};

static void	line(const char *, const char *, ...) PRINTF(2, 3);
static int	holds(enum cond, const struct session *, const struct probe *);
static const char *fix_for(const struct failure *, const struct session *,
		    const struct probe *);
static int	on_verify(int, X509_STORE_CTX *);
static void	on_info(const SSL *, int, int);
static void	probe_attach(struct session *, struct probe *);
static void	resolve(const struct account *, struct probe *);
static void	show_name(BIO *, const char *, const X509_NAME *);
static void	show_cert(const struct account *, const struct probe *, int);
static void	show_ehlo(const struct session *);
static int	step(const struct session *, const struct probe *, enum stage,
		    enum stage, long);
static int	steps(const struct session *, const struct probe *, long);
static int	token_step(const struct account *, const char *,
		    struct failure *);
static void	envelope_step(struct session *, enum stage, const char *,
		    const char *);

/*
 * One line of the report. What it quotes came from a server (EHLO, the
 * AUTH list, replies, certificate names) or a file: shown, never obeyed.
 */
static void
line(const char *label, const char *fmt, ...)
{
	va_list	ap;
	char	buf[4096];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	printable_inplace(buf);
	printf("%-9s %s\n", label, buf);
}

/* Whether cond holds for this session. */
static int
holds(enum cond c, const struct session *s, const struct probe *p)
{
	switch (c) {
	case C_ANY:
		return 1;
	case C_NODNS:
		return !p->resolved;
	case C_NOLOGIN:
		return s->acct->user == NULL && (s->ext & EXT_AUTH);
	case C_UNTRUSTED:
		return p->verify == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
		    p->verify == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
		    p->verify == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
		    p->verify == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
		    p->verify == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE;
	case C_NAME:
		return p->verify == X509_V_ERR_HOSTNAME_MISMATCH ||
		    p->verify == X509_V_ERR_IP_ADDRESS_MISMATCH;
	case C_EXPIRED:
		return p->verify == X509_V_ERR_CERT_HAS_EXPIRED ||
		    p->verify == X509_V_ERR_CERT_NOT_YET_VALID;
	case C_BADCERT:
		return p->verify != X509_V_OK;
	case C_PINNED:
		return s->acct->tls_fingerprint != NULL && p->cert != NULL;
	case C_NOHELLO:
		return p->cert == NULL;
	case C_NOAUTH:
		return !(s->ext & EXT_AUTH);
	case C_NOMECH:
		return auth_choose(s->mechs, s->acct->auth) == NULL;
	case C_SETUP:
		return s->addr[0] == '\0';
	case C_SECRET:		/* the mechanism is chosen once it is had */
		return auth_choose(s->mechs, s->acct->auth) != NULL &&
		    s->mech == NULL;
	}
	return 0;
}

/* The first fix whose stage, class, code range and condition match. */
static const char *
fix_for(const struct failure *f, const struct session *s,
    const struct probe *p)
{
	size_t	i;

	for (i = 0; i < sizeof(fixes) / sizeof(fixes[0]); i++) {
		const struct fix *x = &fixes[i];

		if ((x->stage == STAGE_NONE || x->stage == f->stage) &&
		    (x->class == FC_NONE || x->class == f->class) &&
		    f->code >= x->lo && f->code <= x->hi &&
		    holds(x->cond, s, p))
			return x->fix;
	}
	return NULL;
}

/*
 * Notes the peer's certificate and the first verification error; the
 * verdict stays OpenSSL's (tls.c's policy is not changed).
 */
static int
on_verify(int ok, X509_STORE_CTX *x)
{
	SSL		*ssl = X509_STORE_CTX_get_ex_data(x,
			    SSL_get_ex_data_X509_STORE_CTX_idx());
	struct probe	*p = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	X509		*c = X509_STORE_CTX_get0_cert(x);

	if (c != NULL && c != p->cert && X509_up_ref(c) == 1) {
		X509_free(p->cert);	/* another host's, or NULL */
		p->cert = c;
		p->verify = X509_V_OK;
	}
	if (!ok && p->verify == X509_V_OK)
		p->verify = X509_STORE_CTX_get_error(x);
	return ok;
}

/*
 * Notes the protocol and cipher once a handshake is done, and the
 * certificate when no verification saw it (a pinned one).
 */
static void
on_info(const SSL *ssl, int where, int ret)
{
	struct probe	*p = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	X509		*c;

	(void)ret;
	if (!(where & SSL_CB_HANDSHAKE_DONE))
		return;
	p->version = SSL_get_version(ssl);
	p->cipher = SSL_get_cipher_name(ssl);
	if (p->cert == NULL && (c = SSL_get0_peer_certificate(ssl)) != NULL &&
	    X509_up_ref(c) == 1)
		p->cert = c;
}

/*
 * Makes the account's TLS context the way smtp_open() would, with the
 * probe's callbacks on it. When that fails, smtp_open() tries again and
 * records why.
 */
static void
probe_attach(struct session *s, struct probe *p)
{
	char	err[256];

	if (s->acct->tls == TLS_OFF || s->acct->host.n == 0)
		return;
	if (s->acct->system)
		priv_raise();
	s->ctx = tls_context(s->acct, err, sizeof(err));
	priv_drop();
	if (s->ctx == NULL)
		return;
	SSL_CTX_set_app_data(s->ctx, p);
	SSL_CTX_set_verify(s->ctx, SSL_CTX_get_verify_mode(s->ctx), on_verify);
	SSL_CTX_set_info_callback(s->ctx, on_info);
}

/* One dns line per host: its addresses, or why it has none. */
static void
resolve(const struct account *a, struct probe *p)
{
	struct addrinfo	 hints, *res, *ai;
	char		 port[16], addr[64], list[512];
	size_t		 i;
	int		 e;

	if (a->host.n == 0)
		line("dns", "FAILED: no host configured");
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%lld", a->port);
	for (i = 0; i < a->host.n; i++) {
		list[0] = '\0';
		if ((e = getaddrinfo(a->host.v[i], port, &hints, &res)) != 0) {
			line("dns", "FAILED: %s: %s", a->host.v[i],
			    gai_strerror(e));
			continue;
		}
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr,
			    sizeof(addr), NULL, 0, NI_NUMERICHOST) != 0)
				continue;
			if (list[0] != '\0')
				strlcat(list, ", ", sizeof(list));
			strlcat(list, addr, sizeof(list));
		}
		freeaddrinfo(res);
		p->resolved = 1;
		line("dns", "ok: %s -> %s", a->host.v[i], list);
	}
}

static void
show_name(BIO *b, const char *what, const X509_NAME *n)
{
	char	buf[512];
	int	len;

	X509_NAME_print_ex(b, n, 0, XN_FLAG_ONELINE);
	len = BIO_read(b, buf, sizeof(buf) - 1);
	buf[len > 0 ? len : 0] = '\0';
	line("", "%s %s", what, buf);
}

/*
 * The certificate: subject, issuer, expiry, its SHA-256 (what
 * tls_fingerprint takes) and how verification went.
 */
static void
show_cert(const struct account *a, const struct probe *p, int ok)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0;
	char		 buf[256], hex[2 * EVP_MAX_MD_SIZE + 1] = "?";
	BIO		*b;
	int		 n, days = 0, secs = 0;

	if (p->cert == NULL) {
		line("cert", "none received");
		return;
	}
	line("cert", "received");
	if ((b = BIO_new(BIO_s_mem())) != NULL) {
		show_name(b, "subject", X509_get_subject_name(p->cert));
		show_name(b, "issuer ", X509_get_issuer_name(p->cert));
		ASN1_TIME_print(b, X509_get0_notAfter(p->cert));
		n = BIO_read(b, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(p->cert));
		line("", "expires %s (in %d days)", buf, days);
		BIO_free(b);
	}
	if (X509_digest(p->cert, EVP_sha256(), md, &mdlen) == 1)
		OPENSSL_buf2hexstr_ex(hex, sizeof(hex), NULL, md, mdlen, '\0');
	line("", "sha256  %s", hex);
	if (a->tls_fingerprint != NULL)
		line("", "verify  %s (pinned tls_fingerprint)", ok ? "ok" :
		    "FAILED");
	else if (p->verify != X509_V_OK)
		line("", "verify  FAILED: %s",
		    X509_verify_cert_error_string(p->verify));
	else
		line("", "verify  %s (chain and host name)", ok ? "ok" :
		    "not completed");
}

/* The capabilities of the last EHLO, with SIZE's limit and AUTH's list. */
static void
show_ehlo(const struct session *s)
{
	static const struct { unsigned bit; const char *name; } ext[] = {
		{ EXT_PIPELINING, "PIPELINING" }, { EXT_CHUNKING, "CHUNKING" },
		{ EXT_8BITMIME, "8BITMIME" }, { EXT_SMTPUTF8, "SMTPUTF8" },
		{ EXT_DSN, "DSN" }, { EXT_ENHANCED, "ENHANCEDSTATUSCODES" },
		{ EXT_STARTTLS, "STARTTLS" },
	};
	char	buf[512] = "", size[64] = "";
	size_t	i;

	for (i = 0; i < sizeof(ext) / sizeof(ext[0]); i++)
		if (s->ext & ext[i].bit) {
			strlcat(buf, ext[i].name, sizeof(buf));
			strlcat(buf, " ", sizeof(buf));
		}
	if ((s->ext & EXT_SIZE) && s->size_max > 0)
		snprintf(size, sizeof(size), "SIZE %llu ", s->size_max);
	else if (s->ext & EXT_SIZE)
		strlcpy(size, "SIZE (no limit) ", sizeof(size));
	if ((s->ext & EXT_AUTH) && s->mechs[0] != '\0')
		line("ehlo", "ok: %s%sAUTH %s", buf, size, s->mechs);
	else
		line("ehlo", "ok: %s%sAUTH none offered", buf, size);
}

/*
 * Prints one step of the session, which got as far as failed (STAGE_NONE:
 * all the way). Returns 1 when the step was the failing one.
 */
static int
step(const struct session *s, const struct probe *p, enum stage st,
    enum stage failed, long ms)
{
	const struct account *a = s->acct;

	if (st == failed) {
		line(stage_name(st), "FAILED: %s", s->fail.text);
		if (st == STAGE_TLS && !holds(C_SETUP, s, p))
			show_cert(a, p, 0);
		return 1;
	}
	switch (st) {
	case STAGE_CONNECT:
		line("connect", "ok: %s[%s]:%lld, session ready in %ld ms",
		    s->host, s->addr, s->port, ms);
		break;
	case STAGE_TLS:
		line("tls", "ok: %s, %s", p->version != NULL ? p->version : "?",
		    p->cipher != NULL ? p->cipher : "?");
		show_cert(a, p, 1);
		break;
	case STAGE_EHLO:
		show_ehlo(s);
		break;
	case STAGE_AUTH:
		if (s->authenticated)
			line("auth", "ok: as %s with %s", a->user, s->mech);
		else
			line("auth", "not used (%s)", a->user == NULL ?
			    "no user configured" : "auth off");
		break;
	default:
		line(stage_name(st), "ok");
		break;
	}
	return 0;
}

/*
 * The session's steps in the order this account meets them, up to the
 * one that failed. Returns 1 when one did.
 */
static int
steps(const struct session *s, const struct probe *p, long ms)
{
	static const enum stage implicit[] = { STAGE_CONNECT, STAGE_TLS,
	    STAGE_GREETING, STAGE_EHLO, STAGE_AUTH, STAGE_NONE };
	static const enum stage starttls[] = { STAGE_CONNECT, STAGE_GREETING,
	    STAGE_STARTTLS, STAGE_TLS, STAGE_EHLO, STAGE_AUTH, STAGE_NONE };
	static const enum stage plain[] = { STAGE_CONNECT, STAGE_GREETING,
	    STAGE_EHLO, STAGE_AUTH, STAGE_NONE };
	const enum stage *v = s->acct->tls == TLS_IMPLICIT ? implicit :
	    s->acct->tls == TLS_STARTTLS ? starttls : plain;
	enum stage	 failed = s->fail.class == FC_NONE ? STAGE_NONE :
			    s->fail.stage;

	/* Before a connection (none was made): the TLS setup. */
	if (failed == STAGE_TLS && holds(C_SETUP, s, p))
		return step(s, p, failed, failed, ms);
	for (; *v != STAGE_NONE; v++) {
		/* The EHLO before STARTTLS: its failure is the EHLO's. */
		if (*v == STAGE_STARTTLS && failed == STAGE_EHLO &&
		    p->version == NULL)
			return step(s, p, STAGE_EHLO, failed, ms);
		if (*v == STAGE_STARTTLS && failed == STAGE_STARTTLS)
			show_ehlo(s);
		if (step(s, p, *v, failed, ms))
			return 1;
	}
	return 0;
}

/*
 * One envelope command (MAIL or the test RCPT); a refusal becomes the
 * session's failure at stage, classed by its reply.
 */
static void
envelope_step(struct session *s, enum stage st, const char *verb,
    const char *addr)
{
	const char	*label = st == STAGE_MAIL ? "sender" : "recipient";
	int		 code;

	s->stage = st;
	code = smtpio_command(s, 0, "%s:<%s>", verb, addr) == -1 ? -1 :
	    smtpio_reply(s);
	if (code / 100 == 2) {
		line(label, "ok: <%s> accepted", addr);
		return;
	}
	if (code != -1) {
		smtpio_failx(s, st, code / 100 == 5 ? FC_PERM : FC_TEMP,
		    "%s <%s> refused: %d %s", label, addr, code, s->reply.text);
		s->fail.code = code;
		strlcpy(s->fail.enhanced, s->reply.enhanced,
		    sizeof(s->fail.enhanced));
	}
	line(label, "FAILED: %s", s->fail.text);
}

/*
 * OAuth2: the token comes before any connection (oauth2.c prints the
 * step). -1 with f filled when there is none: refused by the endpoint
 * (configuration, with the fix in the text) or not reachable (temporary).
 */
static int
token_step(const struct account *a, const char *qdir, struct failure *f)
{
	int	rv;

	fflush(stdout);
	if ((rv = oauth2_describe(a, qdir, stdout)) == OAUTH2_OK)
		return 0;
	memset(f, 0, sizeof(*f));
	f->stage = STAGE_AUTH;
	f->class = rv == OAUTH2_CONFIG ? FC_CONFIG : FC_TEMP;
	snprintf(f->text, sizeof(f->text), "no OAuth 2.0 access token for "
	    "account %s", a->name);
	line("verdict", "FAILED at the token endpoint");
	line("fix", "%s", rv == OAUTH2_CONFIG ? "the oauth2: line above "
	    "names the fix (a refused grant: outbox --oauth2-login)" :
	    "the token endpoint did not answer; try again later, or check "
	    "oauth2_token_url and the network");
	return -1;
}

/*
 * Root's --check: for each system account, whether other users' runs can
 * read its secret files and keep its rotated refresh tokens (in qdir). Root's own run reads them either way, so only
 * this line shows what a cron job of another user will meet.
 */
void
check_secrets(const struct config *cfg, const char *qdir)
{
	char		 why[512];
	size_t		 i, k;

	for (i = 0; i < cfg->nacct; i++) {
		const struct account *a = &cfg->acct[i];
		const char *files[] = { a->password_file,
		    a->oauth2_client_secret_file, a->oauth2_key_file,
		    a->oauth2_refresh_token_file };

		if (!a->system)
			continue;
		oauth2state_describe(a, qdir, why, sizeof(why));
		if (why[0] != '\0')
			line("secrets", "account %s: %s", a->name, why);
		for (k = 0; k < sizeof(files) / sizeof(files[0]); k++) {
			if (files[k] == NULL)
				continue;
			secretfile_shared(files[k], why, sizeof(why));
			line("secrets", "account %s: %s", a->name, why);
		}
	}
}

/*
 * Checks one account: the session, MAIL with sender and a test RCPT to
 * rcpt (NULL: the sender itself, or postmaster for the null sender), then
 * RSET. OAuth2 tokens come from qdir's token state (NULL: none), as a
 * send's would. f is FC_NONE only when a message from this account to
 * rcpt would go through; else it is the first failure.
 */
void
check_account(const struct account *a, const char *sender, const char *rcpt,
    const char *qdir, struct failure *f)
{
	struct session	 s;
	struct probe	 p;
	struct timeval	 t0, t1;
	char		 pm[ADDR_MAX + 1];
	const char	*fix;
	long		 ms;

	memset(&s, 0, sizeof(s));
	memset(&p, 0, sizeof(p));
	s.io.fd = -1;
	s.acct = a;
	s.token_dir = qdir;	/* not state_dir: no TLS resumption here */
	if (rcpt == NULL && sender[0] == '\0') {
		snprintf(pm, sizeof(pm), "postmaster@%s", a->maildomain);
		rcpt = pm;
	} else if (rcpt == NULL)
		rcpt = sender;
	if (addr_check(rcpt, f->text, sizeof(f->text)) == -1) {
		f->stage = STAGE_LOCAL;
		f->class = FC_USAGE;
		f->code = 0;
		f->enhanced[0] = '\0';
		line("recipient", "FAILED: <%s>: %s", rcpt, f->text);
		return;
	}
	line("account", "%s (%s)", a->name, a->file);
	line("host", "%s port %lld, tls %s, auth %s", a->host.n > 0 ?
	    a->host.v[0] : "(none)", a->port, a->tls == TLS_IMPLICIT ?
	    "implicit" : a->tls == TLS_STARTTLS ? "starttls" : "off", a->auth);
	resolve(a, &p);
	if (a->oauth2_grant != NULL && token_step(a, qdir, f) == -1)
		return;
	probe_attach(&s, &p);
	gettimeofday(&t0, NULL);
	if (smtp_open(&s) == ST_OK)	/* an earlier host's failure is past */
		memset(&s.fail, 0, sizeof(s.fail));
	gettimeofday(&t1, NULL);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000;
	if (!steps(&s, &p, ms)) {
		envelope_step(&s, STAGE_MAIL, "MAIL FROM", sender);
		if (s.fail.class == FC_NONE)
			envelope_step(&s, STAGE_RCPT, "RCPT TO", rcpt);
		if (s.connected && smtpio_command(&s, 0, "RSET") == 0)
			smtpio_reply(&s);
	}
	smtp_close(&s);
	*f = s.fail;
	if (f->class == FC_NONE)
		line("verdict", "ok: mail from <%s> to <%s> will go through",
		    sender, rcpt);
	else {
		line("verdict", "FAILED at %s", stage_name(f->stage));
		if ((fix = fix_for(f, &s, &p)) != NULL)
			line("fix", "%s", fix);
	}
	X509_free(p.cert);
}
