/*
 * Allocation that cannot fail, string lists, stage names, the stop signal,
 * and die(): the one exit outside sendmail.c, for what leaves nothing to
 * go on with (out of memory, a group that cannot be set or dropped).
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
 * The process cannot go on (EX_OSERR). Nothing is half done: a message
 * not yet queued was not accepted, a queued one waits for the next run.
 */
void
die(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vwarnx(fmt, ap);
	va_end(ap);
	exit(EX_OSERR);
}

void *
xcalloc(size_t n, size_t size)
{
	void	*p = calloc(n, size);

	if (p == NULL)
		die("out of memory");
	return p;
}

void *
xreallocarray(void *p, size_t n, size_t size)
{
	if ((p = reallocarray(p, n, size)) == NULL)
		die("out of memory");
	return p;
}

char *
xstrdup(const char *s)
{
	char	*p = strdup(s);

	if (p == NULL)
		die("out of memory");
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
