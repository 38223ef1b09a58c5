/* SPDX-License-Identifier: ISC */
/*
 * Allocation that cannot fail, string lists, stage names, the stop signal,
 * the one UTF-8 validator and printable text, "file:line: " errors, and
 * fatal(): the one immediate exit, for sendmail.c's usage errors and for
 * what leaves nothing to go on with (out of memory, EX_OSERR; a group that
 * cannot be set or dropped).
 */
#include <err.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "outbox.h"

/*
 * The process cannot go on: exits with code (EX_OSERR for out of memory
 * and the like). Nothing is half done: a message not yet queued was not
 * accepted, a queued one waits for the next run.
 */
void
fatal(int code, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vwarnx(fmt, ap);
	va_end(ap);
	exit(code);
}

/* Formats "file:line: why" into err; returns -1. */
int
err_at(char *err, size_t errlen, const char *file, int line,
    const char *fmt, ...)
{
	va_list	ap;
	int	n;

	n = snprintf(err, errlen, "%s:%d: ", file, line);
	if (n < 0 || (size_t)n >= errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - n, fmt, ap);
	va_end(ap);
	return -1;
}

void *
xcalloc(size_t n, size_t size)
{
	void	*p = calloc(n, size);

	if (p == NULL)
		fatal(EX_OSERR, "out of memory");
	return p;
}

void *
xreallocarray(void *p, size_t n, size_t size)
{
	if ((p = reallocarray(p, n, size)) == NULL)
		fatal(EX_OSERR, "out of memory");
	return p;
}

char *
xstrdup(const char *s)
{
	char	*p = strdup(s);

	if (p == NULL)
		fatal(EX_OSERR, "out of memory");
	return p;
}

void
strlist_add(struct strlist *l, const char *s)
{
	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n++] = xstrdup(s);
}

void
strlist_free(struct strlist *l)
{
	size_t	i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}


/* Appends a "; "-separated reason to buf, truncating if it must. */
void
reason_add(char *buf, size_t size, const char *fmt, ...)
{
	size_t	len = strlen(buf);
	va_list	ap;

	if (len > 0 && len + 2 < size) {
		memcpy(buf + len, "; ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	if (vsnprintf(buf + len, size - len, fmt, ap) < 0)
		buf[len] = '\0';
	va_end(ap);
}

/* Milliseconds on CLOCK_MONOTONIC: deadlines that a clock change cannot move. */
long long
mono_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A stage's name, for the log, --check and messages. */
const char *
stage_name(enum stage st)
{
	static const char *names[] = {
		"none", "local", "queue", "connect", "tls", "greeting",
		"ehlo", "starttls", "auth", "mail", "rcpt", "data",
		"end of data"
	};

	if ((size_t)st >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[st];
}

/*
 * The signal that asked outbox to stop (SIGTERM, SIGHUP, SIGINT), or 0:
 * the one thing a handler may set. Waits return on it (no SA_RESTART),
 * the failure is temporary, and what was in flight waits in the queue.
 */
static volatile sig_atomic_t stop_signal;

static void
on_signal(int sig)
{
	stop_signal = sig;
}

void
signals_init(void)
{
	struct sigaction	sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

int
stopping(void)
{
	return stop_signal;
}

/*
 * The length of the valid UTF-8 sequence at s, of which n octets may be
 * read (RFC 3629: no overlong forms, no surrogates, nothing past
 * U+10FFFF), or 0. An ASCII octet is a sequence of 1.
 */
size_t
utf8_len(const unsigned char *s, size_t n)
{
	size_t		len, i;
	unsigned	c;

	if (n == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, c = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (len == 4 && (c < 0x10000 || c > 0x10ffff)))
		return 0;
	return len;
}

/*
 * Whether the valid sequence s[0..len) is a character a terminal acts on
 * rather than shows: C0 and DEL, C1 (U+0080-U+009F: 0x9b is CSI on some
 * terminals), line and paragraph separators, and the bidi and invisible
 * formatting controls that make "admin\u202emoc.knab" read backwards.
 */
int
utf8_control(const unsigned char *s, size_t len)
{
	unsigned	c;

	if (len == 1)
		return s[0] < 0x20 || s[0] == 0x7f;
	if (len == 2) {
		c = (s[0] & 0x1f) << 6 | (s[1] & 0x3f);
		return c <= 0x9f || c == 0x61c;
	}
	if (len != 3)
		return 0;
	c = (s[0] & 0x0f) << 12 | (s[1] & 0x3f) << 6 | (s[2] & 0x3f);
	return (c >= 0x200b && c <= 0x200f) || (c >= 0x2028 && c <= 0x202e) ||
	    (c >= 0x2060 && c <= 0x206f) || c == 0xfeff ||
	    (c >= 0xfff9 && c <= 0xfffb);
}

/*
 * Copies src[0..n) into dst (size > 0, always terminated) as text that is
 * safe for a terminal or a log: valid UTF-8 stays, each control character
 * (utf8_control) and each octet that is not UTF-8 becomes '?'. Returns
 * the length written; what does not fit is cut at a character boundary.
 */
size_t
printable_text(char *dst, size_t size, const char *src, size_t n)
{
	const unsigned char	*p = (const unsigned char *)src;
	size_t			 i = 0, o = 0, k;

	while (i < n) {
		k = utf8_len(p + i, n - i);
		if (k == 0 || utf8_control(p + i, k)) {
			if (o + 1 >= size)
				break;
			dst[o++] = '?';
			i += k == 0 ? 1 : k;
			continue;
		}
		if (o + k >= size)
			break;
		memmove(dst + o, p + i, k);
		o += k;
		i += k;
	}
	dst[o] = '\0';
	return o;
}

/* printable_text() over s itself: the result is never longer. */
void
printable_inplace(char *s)
{
	size_t	n = strlen(s);

	/* Each step writes at most what it read, so dst never passes src. */
	printable_text(s, n + 1, s, n);
}

/* A printable copy of s, to free. */
char *
xprintable(const char *s)
{
	size_t	 n = strlen(s);
	char	*p = xcalloc(1, n + 1);

	printable_text(p, n + 1, s, n);
	return p;
}
