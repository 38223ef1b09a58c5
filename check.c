/*
 * --check: connects to the account's smarthost without sending mail and
 * says, a line each, what works and what to change in the configuration.
 */
#include <sys/socket.h>
#include <sys/time.h>

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/x509.h>

#include "outbox.h"

static const struct {
	const char	*symptom;	/* in the error text */
	const char	*fix;
} fixes[] = {
	{ "not known", "the name does not resolve: check host" },
	{ "name resolution", "the name does not resolve: check host" },
	{ "Connection refused", "nothing listens there: check host and port "
	    "(587 for STARTTLS, 465 for implicit TLS)" },
	{ "timed out", "no answer: check host, port and firewalls, or raise "
	    "timeout" },
	{ "does not offer STARTTLS", "use port 465 with tls implicit if the "
	    "provider has it; tls off only for a trusted local relay" },
	{ "wrong version number", "this port does not speak TLS first: use "
	    "tls starttls (port 587)" },
	{ "packet length too long", "this port does not speak TLS first: use "
	    "tls starttls (port 587)" },
	{ "closed during TLS", "the server hung up during the TLS handshake: "
	    "port 465 wants tls implicit, 587 wants tls starttls" },
	{ "local issuer", "the certificate's CA is not trusted: set "
	    "tls_ca_file to it, or pin the certificate with tls_fingerprint" },
	{ "self-signed", "the certificate is self-signed: pin it with "
	    "tls_fingerprint, or set tls_ca_file" },
	{ "Hostname mismatch", "the certificate is for another name: set host "
	    "to a name it holds" },
	{ "IP address mismatch", "the certificate does not hold this IP "
	    "address: set host to its name" },
	{ "has expired", "the server's certificate has expired: tell its "
	    "administrator" },
	{ "fingerprint", "the server's certificate changed: update "
	    "tls_fingerprint (the new digest is above) once you trust it" },
	{ "refused: 5", "check user and the password (password, "
	    "password_file or password_command)" },
	{ "password_command", "run password_command by hand: it must print "
	    "the secret on its first line and exit 0" },
	{ "offers AUTH", "set auth to a mechanism the server offers, or on" },
	{ "offers no AUTH", "this server takes no AUTH here: set auth off, or "
	    "use the submission port" },
	{ "no smarthost", "put host smtp.example.org in the configuration" },
};

static void	line(const char *, const char *, ...) PRINTF(2, 3);
static void	show_cert(SSL *);
static int	verdict(const char *);

static void
line(const char *label, const char *fmt, ...)
{
	va_list	ap;

	printf("%-9s ", label);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static void
show_cert(SSL *ssl)
{
	X509	*c = SSL_get1_peer_certificate(ssl);
	BIO	*b;
	char	 buf[512];
	int	 n, days = 0, secs = 0;

	if (c == NULL) {
		line("cert", "none sent");
		return;
	}
	if ((b = BIO_new(BIO_s_mem())) != NULL) {
		X509_NAME_print_ex(b, X509_get_subject_name(c), 0,
		    XN_FLAG_ONELINE);
		n = BIO_read(b, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		line("cert", "subject %s", buf);
		X509_NAME_print_ex(b, X509_get_issuer_name(c), 0,
		    XN_FLAG_ONELINE);
		n = BIO_read(b, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		line("", "issuer  %s", buf);
		ASN1_TIME_print(b, X509_get0_notAfter(c));
		n = BIO_read(b, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(c));
		line("", "expires %s (%d days)", buf, days);
		BIO_free(b);
	}
	X509_free(c);
}

/* Prints the verdict for an error and the fix for it; returns the code. */
static int
verdict(const char *err)
{
	size_t	i;
	int	found = 0;

	line("verdict", "FAILED: %s", err);
	for (i = 0; i < sizeof(fixes) / sizeof(fixes[0]); i++)
		if (strstr(err, fixes[i].symptom) != NULL && !found++)
			line("fix", "%s", fixes[i].fix);
	return EX_TEMPFAIL;
}

/* Checks one account; 0 only when a message from it would go through. */
int
check_account(const struct account *a, const char *sender)
{
	struct session	 s;
	struct addrinfo	 hints, *res, *ai;
	char		 port[16], addr[64], list[512];
	struct timeval	 t0, t1;
	size_t		 i;
	int		 code;

	line("account", "%s (%s)", a->name, a->file);
	line("host", "%s port %lld, tls %s, auth %s", a->host.n > 0 ?
	    a->host.v[0] : "(none)", a->port, a->tls == TLS_IMPLICIT ?
	    "implicit" : a->tls == TLS_STARTTLS ? "starttls" : "off", a->auth);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%lld", a->port);
	for (i = 0; i < a->host.n; i++) {
		list[0] = '\0';
		if ((code = getaddrinfo(a->host.v[i], port, &hints, &res)) != 0) {
			line("dns", "%s: %s", a->host.v[i], gai_strerror(code));
			continue;
		}
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			getnameinfo(ai->ai_addr, ai->ai_addrlen, addr,
			    sizeof(addr), NULL, 0, NI_NUMERICHOST);
			if (list[0] != '\0')
				strlcat(list, ", ", sizeof(list));
			strlcat(list, addr, sizeof(list));
		}
		freeaddrinfo(res);
		line("dns", "%s -> %s", a->host.v[i], list);
	}
	memset(&s, 0, sizeof(s));
	s.io.fd = -1;
	s.acct = a;
	gettimeofday(&t0, NULL);
	if (smtp_open(&s) != ST_OK) {
		code = verdict(s.fail.text);
		smtp_close(&s);
		return code;
	}
	gettimeofday(&t1, NULL);
	line("connect", "%s[%s]:%lld, session ready in %ld ms", s.host, s.addr,
	    s.port, (long)((t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_usec - t0.tv_usec) / 1000));
	if (s.io.ssl != NULL) {
		line("tls", "%s, %s", SSL_get_version(s.io.ssl),
		    SSL_get_cipher(s.io.ssl));
		show_cert(s.io.ssl);
		line("", "verify  ok (%s)", a->tls_fingerprint != NULL ?
		    "pinned SHA-256 fingerprint" : "chain and host name");
	} else
		line("tls", "none (tls off): mail and passwords cross in clear");
	line("ehlo", "%s%s%s%s%s%s%s%s AUTH(%s)",
	    s.ext & EXT_PIPELINING ? "PIPELINING " : "",
	    s.ext & EXT_CHUNKING ? "CHUNKING " : "",
	    s.ext & EXT_8BITMIME ? "8BITMIME " : "",
	    s.ext & EXT_SMTPUTF8 ? "SMTPUTF8 " : "",
	    s.ext & EXT_DSN ? "DSN " : "",
	    s.ext & EXT_ENHANCED ? "ENHANCEDSTATUSCODES " : "",
	    s.ext & EXT_STARTTLS ? "STARTTLS " : "",
	    s.ext & EXT_SIZE ? "SIZE" : "", s.mechs);
	if (s.authenticated)
		line("auth", "ok as %s with %s", a->user, s.mech);
	else
		line("auth", "not used (%s)", a->user == NULL ?
		    "no user configured" : "auth off");
	smtp_command(&s, 0, "MAIL FROM:<%s>", sender);
	if ((code = smtp_reply(&s)) / 100 != 2) {
		char why[sizeof(s.fail.text) + ADDR_MAX + 64];

		if (snprintf(why, sizeof(why), "the server refuses the sender "
		    "<%s>: %d %s", sender, code, code == -1 ? s.fail.text :
		    s.reply.text) < 0)
			why[0] = '\0';
		line("sender", "%s", why);
		verdict(why);
		line("fix", "set from to an address this account may send as, "
		    "or from_rewrite on");
		smtp_close(&s);
		return EX_UNAVAILABLE;
	}
	line("sender", "<%s> accepted", sender);
	smtp_command(&s, 0, "RSET");
	smtp_reply(&s);
	smtp_close(&s);
	line("verdict", "ok: mail from this account will go through");
	return EX_OK;
}
