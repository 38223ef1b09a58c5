/* SPDX-License-Identifier: ISC */
/*
 * Unit tests for the parsers and the content path: replies, RFC 5322
 * addresses, aliases, spooling (line endings, headers), dot-stuffing,
 * quoted-printable, configuration. Prints PASS/FAIL lines for tests/run.sh.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "outbox.h"
#include "auth.h"
#include "io.h"
#include "oauth2.h"
#include "queue.h"
#include "smtp.h"

static int	 failures;
static char	 tmpdir[256];
static const char *rewrite;	/* from_rewrite for spool() */
static const struct aliases *aliases;	/* aliases for spool() */

#define CHECK(name, cond) do {						\
	if (cond)							\
		printf("PASS unit: %s\n", name);			\
	else {								\
		printf("FAIL unit: %s (%s:%d)\n", name, __FILE__,	\
		    __LINE__);						\
		failures++;						\
	}								\
} while (0)

/* Joins a list as "a|b|c" for one-line comparisons. */
static const char *
joined(const struct strlist *l)
{
	static char	buf[4096];
	size_t		i;

	buf[0] = '\0';
	for (i = 0; i < l->n; i++) {
		if (i > 0)
			strlcat(buf, "|", sizeof(buf));
		strlcat(buf, l->v[i], sizeof(buf));
	}
	return buf;
}

static void
test_replies(void)
{
	int	code, last;

	CHECK("reply 250 final",
	    smtpio_parse_line("250 ok", 6, &code, &last) == 0 &&
	    code == 250 && last);
	CHECK("reply 250- continues",
	    smtpio_parse_line("250-PIPELINING", 14, &code, &last) == 0 &&
	    !last);
	CHECK("reply bare code",
	    smtpio_parse_line("354", 3, &code, &last) == 0 &&
	    code == 354 && last);
	CHECK("reply garbage",
	    smtpio_parse_line("hello", 5, &code, &last) == -1);
	CHECK("reply 1xx refused",
	    smtpio_parse_line("199 x", 5, &code, &last) == -1);
	CHECK("reply 600 refused",
	    smtpio_parse_line("600 x", 5, &code, &last) == -1);
	CHECK("reply no separator",
	    smtpio_parse_line("250x", 4, &code, &last) == -1);
	CHECK("reply short",
	    smtpio_parse_line("25", 2, &code, &last) == -1);
}

/* Parses s and compares the addresses with want ("a|b"), or an error. */
static void
addr_case(const char *name, const char *s, const char *want)
{
	struct strlist	l = { NULL, 0 };
	char		err[256];
	int		rv;

	rv = addr_parse_list(s, strlen(s), &l, err, sizeof(err));
	if (want == NULL)
		CHECK(name, rv == -1);
	else {
		CHECK(name, rv == 0 && strcmp(joined(&l), want) == 0);
		if (rv != 0 || strcmp(joined(&l), want) != 0)
			printf("  got [%s] rv %d %s\n", joined(&l), rv,
			    rv ? err : "");
	}
	strlist_free(&l);
}

/* addr_check: what may go into MAIL FROM or RCPT TO (issues 10 and 13). */
static void
addr_check_cases(void)
{
	static const struct { const char *a; int ok; } c[] = {
		{ "bob@example.com", 1 }, { "root", 1 },
		{ "first.last+tag@sub.example.co", 1 },
		{ "\"a b\"@example.com", 1 }, { "\"a\\\"b\"@x.test", 1 },
		{ "bob@[192.0.2.1]", 1 }, { "us_er@my_host.example", 1 },
		{ "j\xc3\xb6rg@b\xc3\xbc" "cher.example", 1 },
		{ "bob@", 0 }, { "bob@@x", 0 }, { "a@ex..ample", 0 },
		{ "@x", 0 }, { "@", 0 }, { "bob@example.com.", 0 },
		{ "bob@.example.com", 0 }, { ".bob@x.test", 0 },
		{ "bob.@x.test", 0 }, { "a..b@x.test", 0 },
		{ "\"x@example.com", 0 }, { "\"x\"y@example.com", 0 },
		{ "a b@x.test", 0 }, { "a@x y.test", 0 }, { "a@x,y.test", 0 },
		{ "a@[1.2.3.4", 0 }, { "a\"b@x.test", 0 },
		{ "bad\xff@x.test", 0 }, { "bad\xc3@x.test", 0 },
		{ "overlong\xc0\xaf@x.test", 0 },
		{ "surrogate\xed\xa0\x80@x.test", 0 },
		{ "bob@x\xe2\x82.test", 0 },
	};
	char	err[256], name[80];
	size_t	i;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		snprintf(name, sizeof(name), "addr_check %s %zu",
		    c[i].ok ? "takes" : "refuses", i);
		CHECK(name, (addr_check(c[i].a, err, sizeof(err)) == 0) ==
		    c[i].ok);
	}
	CHECK("addr_check says why", addr_check("a@ex..ample", err,
	    sizeof(err)) == -1 && strstr(err, "empty label") != NULL);
	CHECK("addr_check open quote", addr_check("\"x@example.com", err,
	    sizeof(err)) == -1 && strstr(err, "never closed") != NULL);
}

static void
test_addresses(void)
{
	char	err[256];

	/* RFC 5322 Appendix A. */
	addr_case("A.1.1 angle", "John Doe <jdoe@machine.example>",
	    "jdoe@machine.example");
	addr_case("A.1.2 list", "Mary Smith <mary@x.test>, jdoe@example.org, "
	    "Who? <one@y.test>", "mary@x.test|jdoe@example.org|one@y.test");
	addr_case("A.1.2 quoted name", "\"Joe Q. Public\" "
	    "<john.q.public@example.com>", "john.q.public@example.com");
	addr_case("A.1.2 specials in quotes", "<boss@nil.test>, \"Giant; "
	    "\\\"Big\\\" Box\" <sysservices@example.net>",
	    "boss@nil.test|sysservices@example.net");
	addr_case("A.1.3 group", "A Group:Ed Jones <c@a.test>,joe@where.test,"
	    "John <jdoe@one.test>;", "c@a.test|joe@where.test|jdoe@one.test");
	addr_case("A.1.3 empty group", "Undisclosed recipients:;", "");
	addr_case("undisclosed-recipients", "undisclosed-recipients:;", "");
	addr_case("A.5 comments", "Pete(A nice \\) chap) <pete(his account)"
	    "@silly.test(his host)>", "pete@silly.test");
	addr_case("A.5 group with comments", "A Group(Some people)\r\n"
	    "     :Chris Jones <c@(Chris's host.)public.example>,\r\n"
	    "         joe@example.org,\r\n  John <jdoe@one.test> (my dear "
	    "friend); (the end of the group)",
	    "c@public.example|joe@example.org|jdoe@one.test");
	addr_case("A.6.1 obsolete route", "<@machine.tld:mary@example.net>",
	    "mary@example.net");
	addr_case("obs-local-part with blanks", "john . doe @ example.com",
	    "john.doe@example.com");
	addr_case("quoted local part", "\"a b\"@example.com",
	    "\"a b\"@example.com");
	addr_case("comma list argv", "a@b.test,c@d.test", "a@b.test|c@d.test");
	addr_case("bare local name", "root", "root");
	addr_case("phrase without address", "John Doe", NULL);
	addr_case("missing >", "John <j@x.test", NULL);
	addr_case("too long", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.test",
	    NULL);
	CHECK("addr_check CR LF", addr_check("a@b\r\nRCPT TO:<x@y>", err,
	    sizeof(err)) == -1);
	CHECK("addr_check NUL-free ok", addr_check("a@b.test", err,
	    sizeof(err)) == 0);
	CHECK("addr_check angle", addr_check("a@b>x", err, sizeof(err)) == -1);
	addr_check_cases();
	CHECK("auth_choose strongest", strcmp(auth_choose("PLAIN LOGIN "
	    "CRAM-MD5 SCRAM-SHA-256", "on")->name, "SCRAM-SHA-256") == 0);
	CHECK("auth_choose forced", strcmp(auth_choose("PLAIN LOGIN",
	    "login")->name, "LOGIN") == 0);
	CHECK("auth_choose not offered", auth_choose("PLAIN", "cram-md5")
	    == NULL);
	CHECK("auth_choose no partial match", auth_choose("SCRAM-SHA-256-PLUS",
	    "on") == NULL);
	CHECK("auth_choose on skips tokens", auth_choose("XOAUTH2 "
	    "OAUTHBEARER", "on") == NULL);
	CHECK("auth_mech unknown", auth_mech("gssapi") == NULL);
}

/* base64 of s, for feeding SASL steps. */
static char *
b64s(const char *s)
{
	static char	buf[512];

	EVP_EncodeBlock((unsigned char *)buf, (const unsigned char *)s,
	    strlen(s));
	return buf;
}

/* Decodes a step's base64 response into buf. */
static const char *
unb64s(const char *s)
{
	static char	buf[512];
	int		n = EVP_DecodeBlock((unsigned char *)buf,
			    (const unsigned char *)s, strlen(s));
	size_t		len = strlen(s);

	while (n > 0 && len > 0 && s[--len] == '=')
		n--;
	buf[n < 0 ? 0 : n] = '\0';
	return buf;
}

/* RFC 7677 3: the SCRAM-SHA-256 exchange, with its fixed client nonce. */
static void
test_scram(void)
{
	const struct sasl_mech	*m = auth_mech("scram-sha-256");
	struct sasl		 sa;
	char			*r;

	memset(&sa, 0, sizeof(sa));
	sa.user = "user";
	sa.secret = "pencil";
	sa.nonce = "rOprNGfwEbeRWgbNEkqO";
	CHECK("scram client-first", auth_step(m, &sa, NULL, &r) == 0 &&
	    strcmp(unb64s(r), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO") == 0);
	free(r);
	CHECK("scram client-final", auth_step(m, &sa, b64s("r=rOprNGfwEbeRW"
	    "gbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,"
	    "i=4096"), &r) == 0 && strcmp(unb64s(r), "c=biws,r=rOprNGfwEbeRWg"
	    "bNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9z"
	    "jfMHgsqmmiz7AndVQ=") == 0);
	free(r);
	CHECK("scram server signature", auth_step(m, &sa, b64s("v=6rriTRBi23"
	    "WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="), &r) == 0 && sa.verified &&
	    strcmp(r, "") == 0);
	free(r);
	auth_clear(&sa);
	sa.nonce = "rOprNGfwEbeRWgbNEkqO";
	auth_step(m, &sa, NULL, &r);
	free(r);
	auth_step(m, &sa, b64s("r=rOprNGfwEbeRWgbNEkqOxx,s=W22ZaJ0SNY7soEsU"
	    "Ejb6gQ==,i=4096"), &r);
	free(r);
	CHECK("scram wrong server signature", auth_step(m, &sa, b64s("v=6rri"
	    "TRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="), &r) == -1 &&
	    !sa.verified);
	auth_clear(&sa);
	sa.nonce = "abc";
	auth_step(m, &sa, NULL, &r);
	free(r);
	CHECK("scram foreign nonce", auth_step(m, &sa, b64s("r=xyz123,s=QUJD,"
	    "i=4096"), &r) == -1);
	auth_clear(&sa);
}

static void
write_file(const char *path, const char *s, mode_t mode)
{
	int	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	if (fd == -1 || write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		perror(path);
	fchmod(fd, mode);
	close(fd);
}

static void
test_aliases(void)
{
	struct strlist	in = { NULL, 0 }, out = { NULL, 0 };
	struct aliases	*al;
	char		path[300], err[256], *q = NULL;
	const char	*h;

	snprintf(path, sizeof(path), "%s/aliases", tmpdir);
	write_file(path, "# comment\nroot: admin, ops@example.org\n"
	    "admin: boss@example.org,\n  deputy\nloop1: loop2\nloop2: loop1\n"
	    "self: self\npipe: |/bin/cat, real@example.org\n"
	    "admin2: a2@example.org\n"
	    "proc: \"|/usr/bin/procmail -a x\", |/bin/foo -x, /var/log/x, "
	    ":include:/etc/list, \"q r\"@example.org, \"/x\"\n", 0644);
	al = addr_aliases_open(path, err, sizeof(err));
	CHECK("aliases open", al != NULL && addr_aliases_size(al) == 8);
	strlist_add(&in, "root");
	strlist_add(&in, "ops@EXAMPLE.org");
	CHECK("aliases nested, continued, deduplicated",
	    addr_resolve(&in, al, "host.test", &out, err, sizeof(err))
	    == 0 && strcmp(joined(&out), "boss@example.org|deputy@host.test|"
	    "ops@example.org") == 0);
	strlist_free(&in);
	strlist_free(&out);
	strlist_add(&in, "loop1");
	CHECK("aliases loop detected", addr_resolve(&in, al, "h.test", &out,
	    err, sizeof(err)) == -1 && strstr(err, "loop") != NULL);
	strlist_free(&in);
	strlist_free(&out);
	strlist_add(&in, "self");
	strlist_add(&in, "pipe");
	CHECK("alias to itself, pipe skipped", addr_resolve(&in, al,
	    "h.test", &out, err, sizeof(err)) == 0 &&
	    strcmp(joined(&out), "self@h.test|real@example.org") == 0);
	strlist_free(&in);
	strlist_free(&out);
	strlist_add(&in, "proc");
	CHECK("pipes, files, :include: skipped, quoted or not",
	    addr_resolve(&in, al, "h.test", &out, err, sizeof(err)) == 0 &&
	    strcmp(joined(&out), "\"q r\"@example.org") == 0);
	if (strcmp(joined(&out), "\"q r\"@example.org") != 0)
		printf("  got [%s]\n", joined(&out));
	strlist_free(&in);
	strlist_free(&out);
	strlist_add(&in, "root");
	CHECK("-n skips aliases", addr_resolve(&in, NULL, "h.test", &out,
	    err, sizeof(err)) == 0 && strcmp(joined(&out), "root@h.test") == 0);
	strlist_free(&in);
	strlist_free(&out);
	h = "Cron Daemon <root>, x@y.test (x), self, admin2 (A)";
	CHECK("header: bare names qualified in place", addr_qualify(h,
	    strlen(h), al, "h.test", &q, err, sizeof(err)) == 1 &&
	    strcmp(q, "Cron Daemon <root@h.test>, x@y.test (x), self@h.test, "
	    "a2@example.org (A)") == 0);
	free(q);
	q = NULL;
	h = "a@b.test, \"q\" <c@d.test>";
	CHECK("header: qualified names untouched", addr_qualify(h, strlen(h),
	    al, "h.test", &q, err, sizeof(err)) == 0);
	write_file(path, "bad: John Doe\n", 0644);
	CHECK("aliases: a bad target names the line", addr_aliases_open(path, err,
	    sizeof(err)) == NULL && strstr(err, "aliases:1:") != NULL);
	addr_aliases_close(al);
}

/* Spools input with the given options; returns the spool's text. */
static char *
spool(const char *input, int dot_ends, int t, struct message *m)
{
	struct msgopts	 o;
	char		 path[300], *buf;
	int		 fd;

	memset(&o, 0, sizeof(o));
	o.dot_ends = dot_ends;
	o.from_headers = t;
	o.sender = "me@example.org";
	o.fullname = "Ann \"Q\" Smith";
	o.maildomain = "example.org";
	o.from_rewrite = rewrite;
	o.aliases = aliases;
	o.spool_dir = tmpdir;
	snprintf(path, sizeof(path), "%s/input", tmpdir);
	write_file(path, input, 0600);
	fd = open(path, O_RDONLY);
	if (message_read(m, &o, fd) == -1) {
		close(fd);
		return NULL;
	}
	close(fd);
	buf = calloc(1, m->size + 1);
	if (pread(m->fd, buf, m->size, 0) != m->size)
		buf[0] = '\0';
	return buf;
}

/* spool() with "root: admin@example.org" as the aliases. */
static char *
spool_aliased(const char *input, struct message *m)
{
	char		 path[300], err[256], *s;
	int		 fd;

	snprintf(path, sizeof(path), "%s/aliases2", tmpdir);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) != -1) {
		if (write(fd, "root: admin@example.org\n", 24) != 24)
			perror(path);
		close(fd);
	}
	aliases = addr_aliases_open(path, err, sizeof(err));
	s = spool(input, 1, 0, m);
	addr_aliases_close((struct aliases *)(uintptr_t)aliases);
	aliases = NULL;
	return s;
}

/* The spool without the Date and Message-ID lines outbox adds. */
static int
spool_is(const char *got, const char *want)
{
	char	 buf[8192], *d, *e;

	strlcpy(buf, got, sizeof(buf));
	while ((d = strstr(buf, "Date: ")) != NULL ||
	    (d = strstr(buf, "Message-ID: <")) != NULL) {
		e = strstr(d, "\r\n") + 2;
		memmove(d, e, strlen(e) + 1);
	}
	if (strcmp(buf, want) != 0)
		printf("  got  [%s]\n  want [%s]\n", buf, want);
	return strcmp(buf, want) == 0;
}

static void
test_spool(void)
{
	struct message	 m;
	char		*s;

	s = spool("Subject: x\nFrom: a@b\n\nline1\nline2\n", 1, 0, &m);
	CHECK("LF becomes CRLF", s && spool_is(s, "Subject: x\r\nFrom: a@b\r\n"
	    "\r\nline1\r\nline2\r\n"));
	CHECK("Date and Message-ID added once", s && strstr(s, "Date: ") &&
	    strstr(s, "Message-ID: <") && !strstr(strstr(s, "Date: ") + 1,
	    "Date: "));
	free(s);
	message_close(&m);
	s = spool("Subject: x\r\nFrom: a@b\r\n\r\nline1\r\nline2\r\n", 1, 0,
	    &m);
	CHECK("CRLF kept", s && spool_is(s, "Subject: x\r\nFrom: a@b\r\n\r\n"
	    "line1\r\nline2\r\n"));
	free(s);
	message_close(&m);
	s = spool("From: a@b\n\nbare\rcr\r\nmixed\nend", 1, 0, &m);
	CHECK("bare CR and no final newline", s && spool_is(s, "From: a@b\r\n"
	    "\r\nbare\r\ncr\r\nmixed\r\nend\r\n"));
	free(s);
	message_close(&m);
	s = spool("From: a@b\n\nbefore\n.\nafter\n", 1, 0, &m);
	CHECK("lone dot ends input", s && spool_is(s, "From: a@b\r\n\r\n"
	    "before\r\n"));
	free(s);
	message_close(&m);
	s = spool("From: a@b\n\nbefore\n.\n..\n.x\nafter\n", 0, 0, &m);
	CHECK("-i keeps dot lines", s && spool_is(s, "From: a@b\r\n\r\n"
	    "before\r\n.\r\n..\r\n.x\r\nafter\r\n"));
	free(s);
	message_close(&m);
	s = spool("From: a@b\n\n.x\n..\n", 1, 0, &m);
	CHECK("dot lines that are not alone stay", s && spool_is(s,
	    "From: a@b\r\n\r\n.x\r\n..\r\n"));
	free(s);
	message_close(&m);
	s = spool("From someone Sat Nov 21 10:00:00 2026\nFrom: a@b\n\nx\n",
	    1, 0, &m);
	CHECK("mbox From_ line dropped", s && spool_is(s, "From: a@b\r\n\r\n"
	    "x\r\n"));
	free(s);
	message_close(&m);
	s = spool("To: a@x.test\nBcc: secret@x.test,\n  other@x.test\n"
	    "Cc: \"C\" <c@x.test>\nSubject: s\n\nbody\n", 1, 1, &m);
	CHECK("Bcc removed with its continuation", s && spool_is(s,
	    "To: a@x.test\r\nCc: \"C\" <c@x.test>\r\nSubject: s\r\n"
	    "From: \"Ann \\\"Q\\\" Smith\" <me@example.org>\r\n\r\nbody\r\n"));
	CHECK("-t takes To, Bcc, Cc", strcmp(joined(&m.hdr_rcpt),
	    "a@x.test|secret@x.test|other@x.test|c@x.test") == 0);
	free(s);
	message_close(&m);
	s = spool("To: a@x.test\nResent-To: r@x.test\nResent-Bcc: rb@x.test\n"
	    "\nbody\n", 1, 1, &m);
	CHECK("-t uses Resent- headers when present", strcmp(joined(
	    &m.hdr_rcpt), "r@x.test|rb@x.test") == 0 && !strstr(s,
	    "Resent-Bcc"));
	free(s);
	message_close(&m);
	s = spool("To: root, Ann <ann>\nCc: x@y.test\nFrom: cron\n\nx\n", 1, 1,
	    &m);
	CHECK("local names qualified in headers", s && spool_is(s, "To: "
	    "root@example.org, Ann <ann@example.org>\r\nCc: x@y.test\r\n"
	    "From: cron@example.org\r\n\r\nx\r\n"));

	CHECK("-t still sees the names", strcmp(joined(&m.hdr_rcpt),
	    "root|ann|x@y.test") == 0);
	free(s);
	message_close(&m);
	s = spool_aliased("From: root (Cron Daemon)\nTo: root\n\nx\n", &m);
	CHECK("aliases for To, not for From", s && spool_is(s, "From: "
	    "root@example.org (Cron Daemon)\r\nTo: admin@example.org\r\n"
	    "\r\nx\r\n"));
	free(s);
	message_close(&m);
	rewrite = "relay@example.net";
	s = spool("From: root (Cron Daemon)\nTo: a@b.test\n\nx\n", 1, 0, &m);
	CHECK("from_rewrite keeps the name and a Reply-To", s && spool_is(s,
	    "Reply-To: root@example.org\r\nFrom: Cron Daemon "
	    "<relay@example.net>\r\nTo: a@b.test\r\n\r\nx\r\n"));
	free(s);
	message_close(&m);
	s = spool("From: Joe <joe@x.test>\nReply-To: r@x.test\n\nx\n", 1, 0,
	    &m);
	CHECK("from_rewrite keeps an existing Reply-To", s && spool_is(s,
	    "From: Joe <relay@example.net>\r\nReply-To: r@x.test\r\n\r\n"
	    "x\r\n"));
	free(s);
	message_close(&m);
	rewrite = NULL;
	s = spool("Subject: only headers\n", 1, 0, &m);
	CHECK("headers only: no blank line added", s && m.body == m.size &&
	    !m.blank && spool_is(s, "Subject: only headers\r\nFrom: \"Ann "
	    "\\\"Q\\\" Smith\" <me@example.org>\r\n"));
	free(s);
	message_close(&m);
	s = spool("just a body line\nsecond\n", 1, 0, &m);
	CHECK("body without headers", s && spool_is(s, "From: \"Ann \\\"Q\\\" "
	    "Smith\" <me@example.org>\r\n\r\njust a body line\r\nsecond\r\n"));
	free(s);
	message_close(&m);
	s = spool("From: a@b\nContent-Type: multipart/mixed; b=x\n\n\xc3\xa9\n",
	    1, 0, &m);
	CHECK("8-bit and multipart noted", s && m.eightbit && m.multipart &&
	    !message_qp_allowed(&m));
	free(s);
	message_close(&m);
	s = spool("From: a@b\nTo: John Doe\n\nx\n", 1, 1, &m);
	CHECK("-t with a name but no address: permanent, local", s == NULL &&
	    m.fail.class == FC_PERM && m.fail.stage == STAGE_LOCAL);
	message_close(&m);
}

static int
collect(void *arg, const char *p, size_t n)
{
	char	*buf = arg;

	strncat(buf, p, n);
	return 0;
}

static void
test_qp(void)
{
	struct message	 m;
	char		 in[4096], *out = calloc(1, 16384), *s, *l, *e;
	size_t		 i;
	int		 ok = 1;

	strlcpy(in, "From: a@b\nContent-Transfer-Encoding: 8bit\n\n", sizeof(in));
	for (i = 0; i < 1200; i++)
		strlcat(in, i % 100 == 99 ? "=" : "x", sizeof(in));
	strlcat(in, "\ntrailing space \n\xc3\xa9t\xc3\xa9\n", sizeof(in));
	s = spool(in, 1, 0, &m);
	CHECK("long line noted", s && m.max_line == 1200 &&
	    message_qp_allowed(&m));
	render_message(&m, 1, collect, out);
	CHECK("QP replaces the transfer encoding", strstr(out,
	    "Content-Transfer-Encoding: quoted-printable\r\n") &&
	    !strstr(out, "8bit") && strstr(out, "MIME-Version: 1.0\r\n"));
	for (l = out; (e = strstr(l, "\r\n")) != NULL; l = e + 2)
		if (e - l > 76)
			ok = 0;
	CHECK("QP lines at most 76", ok);
	CHECK("QP encodes = and 8-bit", strstr(out, "=3D") &&
	    strstr(out, "=C3=A9t=C3=A9\r\n"));
	CHECK("QP trailing space encoded", strstr(out, "trailing space=20\r\n")
	    != NULL);
	free(s);
	message_close(&m);
	free(out);
}

/* The message rendered with flags into a new string. */
static char *
rendered(const char *in, int flags, struct message *m)
{
	char	*s, *out = calloc(1, 65536);

	s = spool(in, 1, 0, m);
	if (s == NULL || render_message(m, flags, collect, out) == -1)
		out[0] = '\0';
	free(s);
	message_close(m);
	return out;
}

static void
test_charset(void)
{
	struct message	 m;
	char		*out;

	out = rendered("From: a@b\n\nh\xc3\xa9llo\n", RENDER_QP, &m);
	CHECK("QP adds a UTF-8 Content-Type", strstr(out, "Content-Type: "
	    "text/plain; charset=utf-8\r\nContent-Transfer-Encoding: "
	    "quoted-printable\r\n") != NULL);
	free(out);
	out = rendered("From: a@b\n\nl\xe9gal\n", RENDER_QP, &m);
	CHECK("QP of invalid UTF-8 says unknown-8bit", strstr(out,
	    "Content-Type: text/plain; charset=unknown-8bit\r\n") != NULL);
	free(out);
	out = rendered("From: a@b\n\n\xed\xa0\x80 \xc0\xaf\n", RENDER_QP, &m);
	CHECK("QP: surrogates and overlongs are not UTF-8", strstr(out,
	    "charset=unknown-8bit\r\n") != NULL);
	free(out);
	out = rendered("From: a@b\nContent-Type: text/plain; charset=koi8-r\n"
	    "\n\xf0\xd2\xc9\n", RENDER_QP, &m);
	CHECK("QP keeps a Content-Type", strstr(out, "charset=koi8-r\r\n") &&
	    strstr(strstr(out, "Content-Type:") + 1, "Content-Type:") == NULL);
	free(out);
}

static void
test_rfc2047(void)
{
	struct message	 m;
	char		*out, *l, *e, w[MIME_WORD_MAX], in[2048];
	size_t		 i, n;
	int		 ok = 1;

	out = rendered("From: J\xc3\xb6rg <jorg@example.org>\nTo: "
	    "\"M\xc3\xbcller, A.\" <a@example.org>, b@example.org, "
	    "<j\xc3\xb6rg@example.org>\nSubject: h\xc3\xa9llo w\xc3\xb6rld\n"
	    "\nbody\n", RENDER_QP | RENDER_7BIT, &m);
	CHECK("2047: Subject encoded", strstr(out,
	    "Subject: =?UTF-8?B?aMOpbGxvIHfDtnJsZA==?=\r\n") != NULL);
	CHECK("2047: display name encoded", strstr(out,
	    "From: =?UTF-8?B?SsO2cmc=?= <jorg@example.org>\r\n") != NULL);
	CHECK("2047: quoted display name encoded, addresses kept", strstr(out,
	    "To: =?UTF-8?B?TcO8bGxlciwgQS4=?= <a@example.org>, b@example.org, "
	    "<j\xc3\xb6rg@example.org>\r\n") != NULL);
	free(out);
	out = rendered("Subject: h\xc3\xa9llo\n world\n\nbody\n",
	    RENDER_QP | RENDER_7BIT, &m);
	CHECK("2047: a folded Subject is unfolded first", strstr(out,
	    "Subject: =?UTF-8?B?aMOpbGxvIHdvcmxk?=\r\n") != NULL);
	free(out);
	out = rendered("Subject: h\xc3\xa9llo\n\nbody\n", RENDER_QP, &m);
	CHECK("2047: not without RENDER_7BIT", strstr(out,
	    "Subject: h\xc3\xa9llo\r\n") != NULL);
	free(out);
	strlcpy(in, "Subject: ", sizeof(in));
	for (i = 0; i < 100; i++)
		strlcat(in, "\xc3\xa9", sizeof(in));
	strlcat(in, "\n\nbody\n", sizeof(in));
	out = rendered(in, RENDER_QP | RENDER_7BIT, &m);
	for (l = out; (e = strstr(l, "\r\n")) != NULL && e != l; l = e + 2)
		if (e - l > 76 || memchr(l, 0xc3, e - l) != NULL)
			ok = 0;
	CHECK("2047: long text in folded words of at most 75", ok &&
	    strstr(out, "?=\r\n =?UTF-8?B?") != NULL);
	free(out);
	n = render_mime_word(w,
	    "a\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9", 47, "UTF-8", 75);
	CHECK("2047: a word never splits a UTF-8 sequence", n == 45 &&
	    strlen(w) <= 75);
	n = render_mime_word(w,
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9", 46, "UTF-8", 75);
	CHECK("2047: ... and backs off to a character's start", n == 44);
}

static void
test_dotstuff(void)
{
	struct io	 io;
	struct dotsink	 d = { &io, 1 };
	char		 buf[256];
	int		 sv[2];
	ssize_t		 n;

	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	io_init(&io, sv[0], 1000);
	smtptx_data_out(&d, ".a\r\nb\r\n.", 8);
	smtptx_data_out(&d, ".c\r\n", 4);	/* the dot began the last chunk */
	smtptx_data_out(&d, "d.\r\n..\r\n", 8);
	io_flush(&io);
	n = read(sv[1], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	if (strcmp(buf, "..a\r\nb\r\n...c\r\nd.\r\n...\r\n") != 0)
		printf("  got [%s]\n", buf);
	CHECK("dot-stuffing across chunks", strcmp(buf, "..a\r\nb\r\n...c\r\n"
	    "d.\r\n...\r\n") == 0);
	close(sv[0]);
	close(sv[1]);
}

/* Whether pid runs (a zombie that init has not reaped yet does not). */
static int
running(pid_t pid)
{
	char	 path[64], st[256];
	FILE	*fp;
	int	 z = 0;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return kill(pid, 0) == 0 || errno != ESRCH;
	if (fgets(st, sizeof(st), fp) != NULL && strrchr(st, ')') != NULL)
		z = strrchr(st, ')')[2] == 'Z';
	fclose(fp);
	return !z;
}

/*
 * secret_get leaves nothing behind when password_command fails, and a
 * command that outlives the deadline is killed with all it started.
 */
static void
test_secret(const char *path)
{
	struct config	 cfg;
	char		 err[512], pidfile[320], buf[32], *secret = (char *)1;
	enum fclass	 c;
	FILE		*fp;
	long		 pid = 0;
	struct timespec	 tick = { 0, 50 * 1000 * 1000 };
	int		 i;

	write_file(path, "host h\nuser u\npassword_command echo hunter2; "
	    "exit 3\n", 0600);
	if (config_load(&cfg, path, NULL, err, sizeof(err)) == -1) {
		CHECK("secret_get setup", 0);
		return;
	}
	CHECK("secret_get failing command: configuration, nothing kept",
	    secret_get(&cfg.acct[0], NULL, 0, 0, 0, &secret, err,
	    sizeof(err)) == FC_CONFIG && secret == NULL);
	config_free(&cfg);
	snprintf(pidfile, sizeof(pidfile), "%s.pid", path);
	unlink(pidfile);
	fp = fopen(path, "w");
	fprintf(fp, "host h\nuser u\npassword_command sleep 600 & echo $! "
	    ">%s; wait\n", pidfile);
	fclose(fp);
	chmod(path, 0600);
	if (config_load(&cfg, path, NULL, err, sizeof(err)) == -1) {
		CHECK("secret_get setup 2", 0);
		return;
	}
	c = secret_get(&cfg.acct[0], NULL, 0, 0, mono_ms() + 2000, &secret,
	    err, sizeof(err));
	CHECK("secret_get hung command: configuration, says session_timeout",
	    c == FC_CONFIG && secret == NULL && strstr(err,
	    "session_timeout") != NULL);
	if ((fp = fopen(pidfile, "r")) != NULL) {
		if (fgets(buf, sizeof(buf), fp) != NULL)
			pid = strtol(buf, NULL, 10);
		fclose(fp);
	}
	/* SIGKILL takes effect asynchronously: give it a moment. */
	for (i = 0; pid > 0 && running((pid_t)pid) && i < 100; i++)
		nanosleep(&tick, NULL);
	CHECK("secret_get hung command: its process group is gone",
	    pid > 0 && !running((pid_t)pid));
	unlink(pidfile);
	config_free(&cfg);
}

static void
test_config(void)
{
	struct config	 cfg;
	char		 path[300], err[512];
	const struct account *a;

	snprintf(path, sizeof(path), "%s/c1", tmpdir);
	write_file(path, "host smtp.example.org\nuser u\npassword p w\n", 0644);
	CHECK("password in a 0644 file refused", config_load(&cfg, path, NULL,
	    err, sizeof(err)) == -1 && strstr(err, "chmod 600") != NULL);
	config_free(&cfg);
	write_file(path, "host a.test b.test\nport 465\nuser u\npassword p w\n"
	    "account work\nhost w.test\nfrom me@work.test\n", 0600);
	CHECK("config loads", config_load(&cfg, path, NULL, err, sizeof(err))
	    == 0);
	a = config_account(&cfg, NULL, NULL, err, sizeof(err));
	CHECK("default account, port 465 means implicit TLS", a != NULL &&
	    a->tls == TLS_IMPLICIT && a->host.n == 2 &&
	    strcmp(a->password, "p w") == 0 && strcmp(a->auth, "on") == 0);
	a = config_account(&cfg, NULL, "ME@work.test", err, sizeof(err));
	CHECK("account chosen by from, inherits defaults", a != NULL &&
	    strcmp(a->name, "work") == 0 && a->port == 465 &&
	    strcmp(a->user, "u") == 0);
	CHECK("unknown account", config_account(&cfg, "nope", NULL, err,
	    sizeof(err)) == NULL);
	config_free(&cfg);
	write_file(path, "host h\nbogus 1\n", 0600);
	CHECK("unknown key names file:line", config_load(&cfg, path, NULL, err,
	    sizeof(err)) == -1 && strstr(err, "c1:2: unknown key") != NULL);
	config_free(&cfg);
	write_file(path, "host h\nport 99999\n", 0600);
	CHECK("bad port", config_load(&cfg, path, NULL, err, sizeof(err))
	    == -1 && strstr(err, ":2:") != NULL);
	config_free(&cfg);
	write_file(path, "host h\ntls off\nuser u\npassword x\n", 0600);
	CHECK("AUTH in clear refused", config_load(&cfg, path, NULL, err,
	    sizeof(err)) == -1 && strstr(err, "auth_plaintext") != NULL);
	config_free(&cfg);
	write_file(path, "host h\ntls_fingerprint 12:34\n", 0600);
	CHECK("bad fingerprint", config_load(&cfg, path, NULL, err,
	    sizeof(err)) == -1);
	config_free(&cfg);
	write_file(path, "queue_dir spool/q\nhost h\n", 0600);
	CHECK("relative queue_dir names file:line", config_load(&cfg, path,
	    NULL, err, sizeof(err)) == -1 && strstr(err, "c1:1: queue_dir")
	    != NULL);
	config_free(&cfg);
	write_file(path, "host h\nhelo my host\n", 0600);
	CHECK("helo with a space refused", config_load(&cfg, path, NULL, err,
	    sizeof(err)) == -1 && strstr(err, "c1:2: helo") != NULL);
	config_free(&cfg);
	write_file(path, "host h\nhelo [192.0.2.1]\nsession_timeout 5m\n",
	    0600);
	CHECK("helo literal, session_timeout", config_load(&cfg, path, NULL,
	    err, sizeof(err)) == 0 && cfg.nacct == 1 &&
	    cfg.acct[0].session_timeout == 300);
	config_free(&cfg);
	write_file(path, "host h\nuser u\npassword x\nauth gssapi\n", 0600);
	CHECK("auth not in the SASL table", config_load(&cfg, path, NULL, err,
	    sizeof(err)) == -1 && strstr(err, ":4: auth: no mechanism") !=
	    NULL && strstr(err, "scram-sha-256") != NULL);
	config_free(&cfg);
	write_file(path, "account m\nuser u@x\noauth2_provider microsoft\n"
	    "oauth2_grant client_credentials\noauth2_client_id c\n"
	    "oauth2_client_secret s\noauth2_tenant t1\n", 0600);
	CHECK("oauth2_provider microsoft fills in", config_load(&cfg, path,
	    NULL, err, sizeof(err)) == 0 && (a = config_account(&cfg, NULL,
	    NULL, err, sizeof(err))) != NULL && strcmp(a->oauth2_token_url,
	    "https://login.microsoftonline.com/t1/oauth2/v2.0/token") == 0 &&
	    strcmp(a->host.v[0], "smtp.office365.com") == 0 &&
	    strcmp(a->auth, "XOAUTH2") == 0 && strcmp(a->oauth2_scope,
	    "https://outlook.office365.com/.default") == 0);
	config_free(&cfg);
	write_file(path, "host h\nuser u\noauth2_grant refresh_token\n"
	    "oauth2_token_url https://t/token\noauth2_client_id c\n", 0600);
	CHECK("refresh_token needs its file", config_load(&cfg, path, NULL,
	    err, sizeof(err)) == -1 && strstr(err,
	    "oauth2_refresh_token_file") != NULL);
	config_free(&cfg);
	write_file(path, "host h\noauth2_grant password\n", 0600);
	CHECK("oauth2_grant not a grant", config_load(&cfg, path, NULL, err,
	    sizeof(err)) == -1 && strstr(err, "oauth2_grant") != NULL);
	config_free(&cfg);
	test_secret(path);
}

/* The report dsn_write() makes for env about m, in memory (free it). */
static char *
dsn_text(const struct envelope *env, const struct message *m, int delayed)
{
	struct dsn	 d;
	char		*buf = NULL;
	size_t		 len = 0;
	FILE		*fp = open_memstream(&buf, &len);

	memset(&d, 0, sizeof(d));
	d.env = env;
	d.msg = m;
	d.why = "why";
	d.mta = "mta.example";
	d.maildomain = "example.test";
	d.arrival = 1;
	d.delayed = delayed;
	if (fp == NULL || dsn_write(fp, &d) == -1) {
		if (fp != NULL)
			fclose(fp);
		free(buf);
		return NULL;
	}
	fclose(fp);
	return buf;
}

static void
test_dsn(void)
{
	struct message	 m;
	struct rcpt	 rc[3];
	struct envelope	 env;
	char		*s, *t;

	free(spool("Subject: dsn\nMessage-ID: <d@x>\n\nthe body\n", 1, 0, &m));
	memset(rc, 0, sizeof(rc));
	memset(&env, 0, sizeof(env));
	rc[0].addr = (char *)(uintptr_t)"gone@x";
	rc[0].st = ST_PERM;
	rc[0].reply.code = 550;
	strlcpy(rc[0].reply.text, "5.1.1 no such user",
	    sizeof(rc[0].reply.text));
	rc[1].addr = (char *)(uintptr_t)"late@x";
	rc[1].st = ST_TEMP;
	rc[1].reply.code = 451;
	strlcpy(rc[1].reply.text, "4.3.0 try\x01 later",
	    sizeof(rc[1].reply.text));
	rc[2].addr = (char *)(uintptr_t)"odd@x";
	rc[2].st = ST_PERM;
	rc[2].reply.code = 554;
	strlcpy(rc[2].reply.text, "5.1 not a code", sizeof(rc[2].reply.text));
	env.sender = (char *)(uintptr_t)"s@x";
	env.rcpt = rc;
	env.nrcpt = 3;
	s = dsn_text(&env, &m, 0);
	CHECK("dsn failed: multipart/report", s && strstr(s, "Content-Type: "
	    "multipart/report; report-type=delivery-status;"));
	CHECK("dsn failed: enhanced code from the reply", s && strstr(s,
	    "Final-Recipient: rfc822; gone@x\nAction: failed\n"
	    "Status: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 no such user\n"));
	CHECK("dsn failed: no code in the reply gives 5.0.0", s && strstr(s,
	    "rfc822; odd@x\nAction: failed\nStatus: 5.0.0\n"));
	CHECK("dsn failed: waiting recipient left out", s &&
	    !strstr(s, "late@x"));
	CHECK("dsn: header without the body", s && strstr(s,
	    "Message-ID: <d@x>") && !strstr(s, "the body"));
	t = dsn_text(&env, &m, 1);
	CHECK("dsn delayed: Action delayed, 4.3.0", t && strstr(t,
	    "Final-Recipient: rfc822; late@x\nAction: delayed\n"
	    "Status: 4.3.0\n") && strstr(t, "Delayed Mail"));
	CHECK("dsn delayed: control character censored", t &&
	    strstr(t, "451 4.3.0 try? later"));
	CHECK("dsn delayed: failed recipients left out", t &&
	    !strstr(t, "gone@x"));
	free(s);
	free(t);
	message_close(&m);
}

/*
 * A new entry for the queue tests: one message, two recipients r[0..1]
 * waiting, the caller's; returns the spooled text, for the caller to free.
 */
static char *
entry_fill(struct qentry *q, struct rcpt *r)
{
	char	*text;

	memset(q, 0, sizeof(*q));
	memset(r, 0, 2 * sizeof(*r));
	text = spool("Subject: q\n\nbody\n", 0, 0, &q->msg);
	r[0].addr = (char *)(uintptr_t)"a@example.org";
	r[1].addr = (char *)(uintptr_t)"b@example.org";
	r[0].st = r[1].st = ST_TEMP;
	q->env.sender = (char *)(uintptr_t)"me@example.org";
	q->env.rcpt = r;
	q->env.nrcpt = 2;
	q->account = (char *)(uintptr_t)"work";
	q->account_file = (char *)(uintptr_t)"/etc/outbox.conf";
	q->owner = getuid();
	q->created = q->next = time(NULL);
	return text;
}

/*
 * Queue claims: busy while another description holds the lock, read
 * again when another run changed the envelope, gone once removed.
 */
static void
test_queue(void)
{
	struct qentry	 q, a, b;
	struct rcpt	 r[2];
	char		 dir[300], err[512], *text;

	snprintf(dir, sizeof(dir), "%s/queue", tmpdir);
	CHECK("queue open", queue_open(dir, err, sizeof(err)) == 0);
	text = entry_fill(&q, r);
	CHECK("queue add", queue_add(dir, &q, 1, err, sizeof(err)) == 0);
	CHECK("queue load unlocked", queue_load(dir, q.id, &a, 0, err,
	    sizeof(err)) == 0 && a.env.nrcpt == 2 &&
	    strcmp(a.account_file, "/etc/outbox.conf") == 0);
	CHECK("queue load again", queue_load(dir, q.id, &b, 0, err,
	    sizeof(err)) == 0);
	CHECK("claim busy while submitted", queue_claim(dir, &a, err,
	    sizeof(err)) == 1);
	message_close(&q.msg);
	CHECK("claim", queue_claim(dir, &a, err, sizeof(err)) == 0);
	CHECK("claim busy", queue_claim(dir, &b, err, sizeof(err)) == 1);
	a.env.rcpt[0].done = 1;
	CHECK("update", queue_update(dir, &a, err, sizeof(err)) == 0);
	queue_release(&a);
	CHECK("claim reads the changed envelope", queue_claim(dir, &b, err,
	    sizeof(err)) == 0 && b.env.nrcpt == 1 &&
	    strcmp(b.env.rcpt[0].addr, "b@example.org") == 0);
	b.env.rcpt[0].done = 1;
	CHECK("update removes", queue_update(dir, &b, err, sizeof(err)) == 0);
	queue_release(&b);
	CHECK("claim gone", queue_claim(dir, &a, err, sizeof(err)) == -1);
	CHECK("queue sync", queue_sync(dir) == 0);
	queue_free(&a);
	queue_free(&b);
	CHECK("queue id checked", queue_load(dir, "../../etc/passwd", &a, 0,
	    err, sizeof(err)) == -1);
	free(text);
}

/*
 * Queue files get their modes whatever the umask (issue 18.5): a personal
 * queue keeps them its user's; a shared one (the setgid bit on the
 * directory, as a root run under NoNewPrivileges=yes finds the spool)
 * gives the group envelopes and messages 0660, also when rewritten.
 */
static void
test_queue_modes(void)
{
	struct qentry	 q, a;
	struct rcpt	 r[2];
	struct stat	 st;
	char		 dir[300], path[400], err[512], name[64], *text;
	mode_t		 old = umask(077);
	int		 shared;

	for (shared = 0; shared <= 1; shared++) {
		snprintf(name, sizeof(name), "queue modes %s: dir 0700, "
		    "add, claim, update", shared ? "shared" : "personal");
		snprintf(dir, sizeof(dir), "%s/qmodes%d", tmpdir, shared);
		CHECK(name, queue_open(dir, err, sizeof(err)) == 0 &&
		    stat(dir, &st) == 0 && (st.st_mode & 07777) == 0700);
		if (shared)
			chmod(dir, 02770);
		text = entry_fill(&q, r);
		CHECK(name, queue_add(dir, &q, 1, err, sizeof(err)) == 0);
		snprintf(path, sizeof(path), "%s/%s.env", dir, q.id);
		CHECK(shared ? "queue modes shared env 0660" :
		    "queue modes personal env 0600", stat(path, &st) == 0 &&
		    (st.st_mode & 07777) == (shared ? 0660u : 0600u));
		snprintf(path, sizeof(path), "%s/%s.msg", dir, q.id);
		CHECK(shared ? "queue modes shared msg 0660" :
		    "queue modes personal msg 0600", stat(path, &st) == 0 &&
		    (st.st_mode & 07777) == (shared ? 0660u : 0600u));
		message_close(&q.msg);
		/* Another run rewrites the envelope: the mode stays. */
		CHECK(name, queue_load(dir, q.id, &a, 0, err,
		    sizeof(err)) == 0 && queue_claim(dir, &a, err,
		    sizeof(err)) == 0);
		a.env.rcpt[0].done = 1;
		CHECK(name, queue_update(dir, &a, err, sizeof(err)) == 0);
		snprintf(path, sizeof(path), "%s/%s.env", dir, q.id);
		CHECK(shared ? "queue modes shared env rewritten 0660" :
		    "queue modes personal env rewritten 0600",
		    stat(path, &st) == 0 &&
		    (st.st_mode & 07777) == (shared ? 0660u : 0600u));
		queue_free(&a);
		free(text);
	}
	umask(old);
}

/* An envelope's required lines, but its recipients. */
#define ENV_HEAD "outbox-queue 2\nowner 0\ncreated 1\nnext 1\nattempts 0\n" \
	"account a\nfile f\nsender a@b.c\nsize 0\nbody 0\nmaxline 0\n" \
	"flags 0 0 0 0 0 0\n"

/*
 * A report is an entry of its own: written, committed in its message's
 * envelope, published; loaded, it names its message and belongs to the
 * message's owner. A submission's ID.sub is no live entry. The envelope
 * grammar of reports: no rcpt once the report is written, IDs checked.
 */
static void
test_queue_report(void)
{
	struct qentry	 q, b, l;
	struct rcpt	 r, to;
	struct strlist	 ids = { NULL, 0 };
	char		 dir[300], err[512], bid[16], oid[16], *t1, *t2;
	const char	*e;
	off_t		 size;
	size_t		 i;
	int		 listed = 0;

	snprintf(dir, sizeof(dir), "%s/queue-report", tmpdir);
	CHECK("report: queue open", queue_open(dir, err, sizeof(err)) == 0);
	memset(&q, 0, sizeof(q));
	memset(&r, 0, sizeof(r));
	t1 = spool("Subject: r\n\nthe body\n", 0, 0, &q.msg);
	r.addr = (char *)(uintptr_t)"a@example.org";
	r.st = ST_PERM;
	q.env.sender = (char *)(uintptr_t)"me@example.org";
	q.env.rcpt = &r;
	q.env.nrcpt = 1;
	q.account = (char *)(uintptr_t)"work";
	q.account_file = (char *)(uintptr_t)"/etc/outbox.conf";
	q.owner = getuid();
	q.created = q.next = time(NULL);
	CHECK("report: a submission's entry", queue_add(dir, &q, 0, err,
	    sizeof(err)) == 0 && q.sub);
	CHECK("report: ID.sub is not live", queue_load(dir, q.id, &l, 0, err,
	    sizeof(err)) == -1 && errno == ENOENT);
	queue_free(&l);
	CHECK("report: published when it must wait", queue_update(dir, &q, err,
	    sizeof(err)) == 0 && !q.sub && queue_load(dir, q.id, &l, 0, err,
	    sizeof(err)) == 0);
	queue_free(&l);
	memset(&b, 0, sizeof(b));
	memset(&to, 0, sizeof(to));
	t2 = spool("Subject: report\n\nit failed\n", 0, 0, &b.msg);
	to.addr = q.env.sender;
	to.st = ST_TEMP;
	b.env.sender = (char *)(uintptr_t)"";
	b.env.rcpt = &to;
	b.env.nrcpt = 1;
	b.account = q.account;
	b.account_file = q.account_file;
	b.owner = q.owner;
	b.created = b.next = time(NULL);
	r.done = 1;
	CHECK("report: queued", queue_report(dir, &q, &b, err,
	    sizeof(err)) == 0 && strcmp(b.orig, q.id) == 0 &&
	    q.report[0] == '\0');
	strlcpy(bid, b.id, sizeof(bid));
	strlcpy(oid, q.id, sizeof(oid));
	size = q.msg.size;
	message_close(&q.msg);		/* its claim, as a run's would end */
	CHECK("report: loads, names its message", queue_load(dir, bid, &l, 0,
	    err, sizeof(err)) == 0 && strcmp(l.orig, q.id) == 0 &&
	    l.owner == q.owner && l.env.sender[0] == '\0');
	queue_free(&l);
	CHECK("report: the message commits it", queue_load(dir, q.id, &l, 0,
	    err, sizeof(err)) == 0 && strcmp(l.report, bid) == 0 &&
	    l.env.nrcpt == 0);
	CHECK("report: finished, the message goes", queue_finish(dir, &l, err,
	    sizeof(err)) == 0 && queue_load(dir, oid, &q, 0, err,
	    sizeof(err)) == -1 && errno == ENOENT);
	queue_free(&l);
	queue_list(dir, &ids, NULL);
	for (i = 0; i < ids.n; i++)
		listed += strcmp(ids.v[i], bid) == 0;
	CHECK("report: listed", ids.n == 1 && listed == 1);
	strlist_free(&ids);
	CHECK("report: its message whole beside it",
	    queue_load(dir, bid, &l, 0, err, sizeof(err)) == 0 &&
	    queue_open_orig(dir, &l, &q.msg) == 0 && q.msg.size == size);
	close(q.msg.fd);
	queue_free(&l);
	message_close(&b.msg);
	queue_remove(dir, bid);
	free(t1);
	free(t2);

	memset(&l, 0, sizeof(l));
	e = ENV_HEAD "report 0123456789AB\n";
	CHECK("env: report without rcpt", qenv_parse(e, strlen(e), &l, err,
	    sizeof(err)) == 0 && strcmp(l.report, "0123456789AB") == 0);
	queue_free(&l);
	memset(&l, 0, sizeof(l));
	CHECK("env: no rcpt, no report", qenv_parse(ENV_HEAD, sizeof(ENV_HEAD)
	    - 1, &l, err, sizeof(err)) == -1 && strstr(err, "no rcpt"));
	queue_free(&l);
	memset(&l, 0, sizeof(l));
	e = ENV_HEAD "rcpt a@b.c\norig ../x\n";
	CHECK("env: bad orig", qenv_parse(e, strlen(e), &l, err,
	    sizeof(err)) == -1 && strstr(err, "bad queue ID") != NULL);
	queue_free(&l);
	memset(&l, 0, sizeof(l));
	e = ENV_HEAD "rcpt a@b.c\nheld 1\n";
	CHECK("env: held", qenv_parse(e, strlen(e), &l, err,
	    sizeof(err)) == 0 && l.held == 1);
	queue_free(&l);
}

/* The token response parser keeps only valid fields. */
static void
test_token_parse(void)
{
	struct oauth2_resp	r;

	CHECK("token response", oauth2_parse("{\"access_token\":\"at.1\","
	    "\"expires_in\":3599,\"refresh_token\":\"rt\"}", 62, &r) == 0 &&
	    strcmp(r.access_token, "at.1") == 0 && r.expires_in == 3599 &&
	    strcmp(r.refresh_token, "rt") == 0);
	oauth2_resp_free(&r);
	CHECK("token with a space dropped", oauth2_parse("{\"access_token\":"
	    "\"a b\",\"error\":\"invalid_grant\"}", 46, &r) == 0 &&
	    r.access_token == NULL && strcmp(r.error, "invalid_grant") == 0);
	oauth2_resp_free(&r);
	CHECK("token response not JSON", oauth2_parse("<html>", 6, &r) == -1);
	oauth2_resp_free(&r);
	CHECK("device response, Google's names", oauth2_parse("{\"device_code"
	    "\":\"d\",\"user_code\":\"U\",\"verification_url\":\"https://x\","
	    "\"interval\":5}", 79, &r) == 0 && strcmp(r.verification_uri,
	    "https://x") == 0 && r.interval == 5);
	oauth2_resp_free(&r);
}

/*
 * A stub transport for io.c and smtp.c: writes are recorded (at most
 * STUB_CHUNK octets a call, so partial writes happen) and fail once
 * wcut octets went out; reads hand out the scripted replies, a line at a
 * time, and end (EOF) at rcut.
 */
#define STUB_CHUNK	7

static struct stub {
	const char	*replies;
	size_t		 rpos, rcut;
	char		 out[8192];
	size_t		 olen, wcut;
	size_t		 o_at_eof;	/* olen when the reads ended */
	size_t		 o_at_read;	/* olen when the last read returned */
	int		 wfailed;	/* failed writes so far */
	int		 eof;
} stub;

static ssize_t
stub_read(struct io *io, void *buf, size_t len)
{
	size_t		 n = stub.rcut - stub.rpos;
	const char	*nl;

	(void)io;
	/* One line a call: o_at_read is then when each reply came. */
	nl = memchr(stub.replies + stub.rpos, '\n', n);
	if (nl != NULL)
		n = nl + 1 - (stub.replies + stub.rpos);
	if (n == 0) {
		if (!stub.eof)
			stub.o_at_eof = stub.olen;
		stub.eof = 1;
		return 0;
	}
	if (n > len)
		n = len;
	memcpy(buf, stub.replies + stub.rpos, n);
	stub.rpos += n;
	stub.o_at_read = stub.olen;
	return n;
}

static ssize_t
stub_write(struct io *io, const void *buf, size_t len)
{
	size_t	n = len < STUB_CHUNK ? len : STUB_CHUNK;

	if (stub.olen >= stub.wcut) {
		stub.wfailed++;
		snprintf(io->err, sizeof(io->err), "write: stub failure");
		return -1;
	}
	if (n > stub.wcut - stub.olen)
		n = stub.wcut - stub.olen;
	if (n > sizeof(stub.out) - stub.olen)
		n = sizeof(stub.out) - stub.olen;
	memcpy(stub.out + stub.olen, buf, n);
	stub.olen += n;
	return n;
}

static void
stub_reset(const char *replies, size_t rcut, size_t wcut)
{
	memset(&stub, 0, sizeof(stub));
	stub.replies = replies;
	stub.rcut = rcut;
	stub.wcut = wcut;
}

/*
 * io.c over a real socket whose peer does not read: the write meets
 * EAGAIN, then the timeout; what went out and what is kept make the data
 * exactly once, and nothing is written after.
 */
static void
test_io_timeout(void)
{
	static char	 data[3 * 65536], got[sizeof(data)];
	struct io	 io;
	size_t		 i, n = 0;
	ssize_t		 r;
	int		 sv[2], small = 4096, failed;

	for (i = 0; i < sizeof(data); i++)
		data[i] = 'A' + i % 23;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == -1) {
		CHECK("io: socketpair", 0);
		return;
	}
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	io_init(&io, sv[0], 50);
	failed = io_write(&io, data, sizeof(data)) == -1 ||
	    io_flush(&io) == -1;
	while ((r = read(sv[1], got + n, sizeof(got) - n)) > 0)
		n += r;
	CHECK("io: EAGAIN, then the timeout, fails the write", failed &&
	    io.failed && strstr(io.err, "timed out") != NULL);
	CHECK("io: sent and kept octets are the data, once",
	    memcmp(got, data, n) == 0 && io.wlen <= sizeof(io.wbuf) &&
	    memcmp(io.wbuf, data + n, io.wlen) == 0 && n + io.wlen <
	    sizeof(data));
	CHECK("io: nothing written after the timeout",
	    io_write(&io, "QUIT\r\n", 6) == -1 && io_flush(&io) == -1 &&
	    read(sv[1], got, sizeof(got)) == -1);
	close(sv[0]);
	close(sv[1]);
}

/*
 * io.c: a failed write keeps exactly the octets not yet sent, and the io
 * stays failed: nothing more is written, whatever is asked.
 */
static void
test_io_sticky(void)
{
	struct io	 io;
	char		 data[100];
	size_t		 i;
	int		 keep = 1, never = 1, sticky = 1, whole = 1;

	for (i = 0; i < sizeof(data); i++)
		data[i] = 'a' + i % 26;
	for (i = 0; i <= sizeof(data); i++) {
		stub_reset("", 0, i < sizeof(data) ? i : (size_t)-1);
		io_init(&io, -1, 1000);
		io.read = stub_read;
		io.write = stub_write;
		io_write(&io, data, sizeof(data));
		if (i == sizeof(data)) {
			whole &= io_flush(&io) == 0 && stub.olen ==
			    sizeof(data) && memcmp(stub.out, data,
			    sizeof(data)) == 0 && io.wlen == 0 && !io.failed;
			continue;
		}
		keep &= io_flush(&io) == -1 && io.failed &&
		    io.wlen == sizeof(data) - i &&
		    memcmp(io.wbuf, data + i, io.wlen) == 0 &&
		    memcmp(stub.out, data, i) == 0;
		stub.wcut = (size_t)-1;		/* the peer would take more now */
		sticky &= io_write(&io, "QUIT\r\n", 6) == -1 &&
		    io_flush(&io) == -1;
		never &= stub.olen == i && stub.wfailed == 1;
	}
	CHECK("io: a partial write keeps exactly the unsent octets", keep);
	CHECK("io: written whole in partial writes, in order", whole);
	CHECK("io: failed is sticky (write and flush refuse)", sticky);
	CHECK("io: nothing written after a failed write", never);

	test_io_timeout();

	/* A read that ends (EOF) marks the io failed too. */
	stub_reset("250 ok\r\n", 8, (size_t)-1);
	io_init(&io, -1, 1000);
	io.read = stub_read;
	io.write = stub_write;
	{
		char	*line;
		size_t	 len;

		CHECK("io: a line, then EOF fails", io_getline(&io, &line,
		    &len) == 0 && io_getline(&io, &line, &len) == -1 &&
		    io.failed);
	}
	CHECK("io: nothing written after a failed read",
	    io_write(&io, "RSET\r\n", 6) == -1 && io_flush(&io) == -1 &&
	    stub.olen == 0);
}

/*
 * One smtptx_send over the stub, with the server's replies cut (EOF) at
 * rcut and writes failing from wcut on; then the session is closed as a
 * run would close it. Returns the message's status.
 */
static enum status
stub_send(struct session *s, const struct message *m, struct envelope *env,
    struct rcpt *r, unsigned ext, const char *replies, size_t rcut,
    size_t wcut)
{
	static struct account	acct;
	enum status		st;
	size_t			i;

	stub_reset(replies, rcut, wcut);
	memset(s, 0, sizeof(*s));
	memset(r, 0, 2 * sizeof(*r));
	r[0].addr = (char *)(uintptr_t)"b@example.org";
	r[1].addr = (char *)(uintptr_t)"c@example.org";
	for (i = 0; i < 2; i++)
		r[i].st = ST_TEMP;
	memset(env, 0, sizeof(*env));
	env->sender = (char *)(uintptr_t)"a@example.org";
	env->rcpt = r;
	env->nrcpt = 2;
	s->acct = &acct;
	s->ext = ext;
	s->connected = 1;
	io_init(&s->io, -1, 2000);
	s->io.read = stub_read;
	s->io.write = stub_write;
	st = smtptx_send(s, m, env);
	smtp_close(s);
	return st;
}

/* Offsets of the ends of the replies in r, a list of CRLF lines. */
static size_t
reply_ends(const char *r, size_t *end, size_t max)
{
	const char	*p;
	size_t		 n = 0;

	for (p = r; *p != '\0' && n < max; p = strstr(p, "\r\n") + 2)
		end[n++] = strstr(p, "\r\n") + 2 - r;
	return n;
}

/* One CHECK named after the transaction's kind. */
static void
check_tx(const char *kind, const char *what, int ok)
{
	char	name[160];

	snprintf(name, sizeof(name), "smtp %s: %s", kind, what);
	CHECK(name, ok);
}

/*
 * smtp.c: a write or a read that fails at any point of a transaction
 * (BDAT and DATA, pipelined), or a 421 to any command: nothing is written
 * afterwards (no QUIT, no RSET), no octet goes twice, every recipient
 * waits, and "may arrive twice" is said only when the whole message went
 * and its final reply never came.
 */
static void
test_smtp_failures(void)
{
	static const struct {
		const char	*name;
		unsigned	 ext;
		const char	*replies;
	} tx[] = {
		{ "BDAT", EXT_PIPELINING | EXT_CHUNKING,
		  "250 ok\r\n250 ok\r\n250 ok\r\n250 queued\r\n" },
		{ "DATA", EXT_PIPELINING,
		  "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n" },
		{ "DATA unpipelined", 0,
		  "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n" },
	};
	struct session	 s;
	struct envelope	 env;
	struct rcpt	 r[2];
	struct message	 m;
	char		 clean[8192], name[128], replies[256];
	size_t		 t, i, k, n, total, end[8];
	enum status	 st;
	char		*text;

	text = spool("From: a@example.org\r\nSubject: t\r\n\r\n.dot\r\nbody "
	    "line\r\n", 0, 0, &m);
	free(text);
	for (t = 0; t < sizeof(tx) / sizeof(tx[0]); t++) {
		int	w_ok = 1, r_ok = 1, q_ok = 1, twice = 1;

		n = reply_ends(tx[t].replies, end, 8);
		st = stub_send(&s, &m, &env, r, tx[t].ext, tx[t].replies,
		    strlen(tx[t].replies), (size_t)-1);
		total = stub.olen;
		memcpy(clean, stub.out, total);
		snprintf(name, sizeof(name), "smtp %s: delivered, then QUIT",
		    tx[t].name);
		CHECK(name, st == ST_OK && r[0].st == ST_OK && r[1].st ==
		    ST_OK && total > 6 &&
		    memcmp(clean + total - 6, "QUIT\r\n", 6) == 0);
		total -= 6;	/* the transaction, without QUIT */

		/* A write fails at each octet. */
		for (i = 0; i < total; i++) {
			st = stub_send(&s, &m, &env, r, tx[t].ext,
			    tx[t].replies, strlen(tx[t].replies), i);
			w_ok &= st == ST_TEMP && r[0].st == ST_TEMP &&
			    r[1].st == ST_TEMP && stub.olen == i &&
			    stub.wfailed == 1 && !s.connected &&
			    memcmp(stub.out, clean, i) == 0 &&
			    strstr(s.fail.text, "twice") == NULL;
		}
		/* The replies end after each of them. */
		for (k = 0; k < n; k++) {
			st = stub_send(&s, &m, &env, r, tx[t].ext,
			    tx[t].replies, k == 0 ? 0 : end[k - 1],
			    (size_t)-1);
			r_ok &= st == ST_TEMP && r[0].st == ST_TEMP &&
			    r[1].st == ST_TEMP && stub.eof &&
			    stub.olen == stub.o_at_eof;
			twice &= (strstr(s.fail.text, "twice") != NULL) ==
			    (k == n - 1);
		}
		/* A 421 in place of each reply. */
		for (k = 0; k < n; k++) {
			size_t	off = k == 0 ? 0 : end[k - 1];

			snprintf(replies, sizeof(replies), "%.*s421 4.3.2 "
			    "closing\r\n", (int)off, tx[t].replies);
			st = stub_send(&s, &m, &env, r, tx[t].ext, replies,
			    strlen(replies), (size_t)-1);
			q_ok &= st == ST_TEMP && r[0].st == ST_TEMP &&
			    r[1].st == ST_TEMP && s.closed &&
			    s.fail.code == 421 && stub.olen == stub.o_at_read;
		}
		check_tx(tx[t].name, "a failed write at each octet: nothing "
		    "after it, nothing twice", w_ok);
		check_tx(tx[t].name, "EOF after each reply: nothing written "
		    "after it", r_ok);
		check_tx(tx[t].name, "\"may arrive twice\" only without the "
		    "final reply", twice);
		check_tx(tx[t].name, "421 to each command ends the session, "
		    "nothing written after it", q_ok);
	}
	message_close(&m);
}

/* util.c: the one UTF-8 validator and what a terminal may be shown. */
static void
test_printable(void)
{
	char	buf[64], *p;

	CHECK("utf8_len: ASCII, 2, 3, 4 octets",
	    utf8_len((const unsigned char *)"a", 1) == 1 &&
	    utf8_len((const unsigned char *)"\xc3\xa9", 2) == 2 &&
	    utf8_len((const unsigned char *)"\xe2\x82\xac", 3) == 3 &&
	    utf8_len((const unsigned char *)"\xf0\x9f\x98\x80", 4) == 4);
	CHECK("utf8_len: overlong, surrogate, past U+10FFFF, cut",
	    utf8_len((const unsigned char *)"\xc0\xaf", 2) == 0 &&
	    utf8_len((const unsigned char *)"\xe0\x80\xaf", 3) == 0 &&
	    utf8_len((const unsigned char *)"\xed\xa0\x80", 3) == 0 &&
	    utf8_len((const unsigned char *)"\xf4\x90\x80\x80", 4) == 0 &&
	    utf8_len((const unsigned char *)"\xe2\x82\xac", 2) == 0 &&
	    utf8_len((const unsigned char *)"\x9b", 1) == 0);
	printable_text(buf, sizeof(buf), "\x1b]0;owned\x07ok\r\b", 14);
	CHECK("printable: ESC, BEL, CR, BS become ?", strcmp(buf,
	    "?]0;owned?ok??") == 0);
	printable_text(buf, sizeof(buf), "a\xc2\x9b" "2Jb\x9b" "c", 8);
	CHECK("printable: C1 (U+009B) and a raw 0x9b become ?",
	    strcmp(buf, "a?2Jb?c") == 0);
	p = xprintable("admin\xe2\x80\xaemoc.knab@x \xe2\x81\xa6y");
	CHECK("printable: bidi overrides and isolates become ?",
	    strcmp(p, "admin?moc.knab@x ?y") == 0);
	free(p);
	p = xprintable("J\xc3\xb6rg \xe2\x82\xac \xf0\x9f\x98\x80");
	CHECK("printable: UTF-8 text stays", strcmp(p,
	    "J\xc3\xb6rg \xe2\x82\xac \xf0\x9f\x98\x80") == 0);
	free(p);
	printable_text(buf, 4, "\xc3\xa9\xc3\xa9", 4);
	CHECK("printable: cut at a character boundary", strcmp(buf,
	    "\xc3\xa9") == 0);
	p = xstrdup("x\x1b[31my\xff");
	printable_inplace(p);
	CHECK("printable_inplace", strcmp(p, "x?[31my?") == 0);
	free(p);
}

/* RFC 9422 LIMITS from EHLO, and the recipients a transaction may carry. */
static void
test_limits(void)
{
	struct account	a;
	struct session	s;
	struct rcpt	rc[7];
	struct envelope	env;
	const char	*addrs[] = { "a@x.test", "b@x.test", "c@y.test",
	    "d@z.test", "e@x.test", "f@y.test", "g@w.test" };
	size_t		i, later;

	memset(&a, 0, sizeof(a));
	memset(&s, 0, sizeof(s));
	s.acct = &a;
	smtplimits_ehlo(&s, "LIMITS MAILMAX=1000 RCPTMAX=50000 RCPTDOMAINMAX=5");
	CHECK("LIMITS parsed", s.mailmax == 1000 && s.rcptmax == 50000 &&
	    s.rcptdomainmax == 5);
	smtplimits_ehlo(&s, "LIMITS RCPTMAX=0 MAILMAX=x1 RCPTDOMAINMAX=99999999");
	CHECK("LIMITS bad values ignored", s.rcptmax == 0 && s.mailmax == 0 &&
	    s.rcptdomainmax == 0);
	smtplimits_ehlo(&s, "LIMITSX RCPTMAX=3");
	CHECK("LIMITS keyword whole", s.rcptmax == 0);
	smtplimits_ehlo(&s, "limits rcptmax=3");
	CHECK("LIMITS case-insensitive", s.rcptmax == 3);
	smtplimits_ehlo(&s, NULL);
	CHECK("LIMITS forgotten", s.rcptmax == 0);

	memset(&env, 0, sizeof(env));
	memset(rc, 0, sizeof(rc));
	for (i = 0; i < 7; i++)
		rc[i].addr = (char *)(uintptr_t)addrs[i];
	env.rcpt = rc;
	env.nrcpt = 7;
	a.max_rcpt = 3;
	later = smtplimits_rcpt_split(&s, &env);
	CHECK("max_rcpt splits", later == 4 && !rc[2].again && rc[3].again &&
	    rc[6].again);
	for (i = 0; i < 7; i++)
		rc[i].again = 0;
	a.max_rcpt = 0;
	s.rcptdomainmax = 2;
	rc[0].done = 1;		/* delivered: not counted */
	later = smtplimits_rcpt_split(&s, &env);
	CHECK("RCPTDOMAINMAX splits by domain", later == 2 && !rc[1].again &&
	    !rc[2].again && rc[3].again && !rc[4].again && !rc[5].again &&
	    rc[6].again);
}

int
main(void)
{
	const char	*t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/outbox-unit.XXXXXX",
	    t != NULL ? t : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror(tmpdir);
		return 1;
	}
	test_replies();
	test_addresses();
	test_scram();
	test_token_parse();
	test_aliases();
	test_spool();
	test_qp();
	test_charset();
	test_rfc2047();
	test_dotstuff();
	test_config();
	test_dsn();
	test_queue();
	test_queue_report();
	test_queue_modes();
	test_io_sticky();
	test_smtp_failures();
	test_printable();
	test_limits();
	printf("unit: %d failed\n", failures);
	return failures != 0;
}
