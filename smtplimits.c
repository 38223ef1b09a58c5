/* SPDX-License-Identifier: ISC */
/*
 * What one SMTP session knows of the account's limits, below smtp.c and
 * limits.c both: RFC 9422 LIMITS from EHLO, the recipients a transaction
 * leaves for the next, the last throttling reply, and the connection slot
 * given back at hangup. limits.c decides with them across sessions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "outbox.h"
#include "queue.h"
#include "smtp.h"

static int	throttling(int, const char *);

/* Lets the connection slot go (hangup and failed opens). */
void
smtplimits_release(struct session *s)
{
	if (s->slot != 0)
		close(s->slot - 1);
	s->slot = 0;
	qhold_release(&s->errheld);
}

/*
 * Whether a reply means too many connections, too fast, or throttling. A
 * 421 alone only closes the session (a restart, a timeout): the run goes
 * on in a new one; with 4.3.2 or 4.7.x it throttles.
 */
static int
throttling(int code, const char *enhanced)
{
	if (code == 432 || code == 454)
		return 1;
	return code / 100 == 4 && (strcmp(enhanced, "4.3.2") == 0 ||
	    strncmp(enhanced, "4.7.", 4) == 0);
}

/*
 * Keeps a reply that throttles the account (smtpio_read), so that
 * a failure after it (a 421 closes the connection) cannot hide it: at
 * RCPT only a throttling 421, 432 and 454, else a 4.7.x may be about the
 * recipient.
 */
void
smtplimits_reply(struct session *s)
{
	int	code = s->reply.code;

	if (code == 432 || code == 454 || ((code == 421 ||
	    s->stage != STAGE_RCPT) && throttling(code, s->reply.enhanced)))
		s->throttle = s->reply;
}

/*
 * An EHLO line: RFC 9422 LIMITS (MAILMAX, RCPTMAX, RCPTDOMAINMAX); NULL
 * forgets what an earlier EHLO said.
 */
void
smtplimits_ehlo(struct session *s, const char *l)
{
	static const char *const names[] = { "MAILMAX=", "RCPTMAX=",
	    "RCPTDOMAINMAX=" };
	long long	*v[] = { &s->mailmax, &s->rcptmax, &s->rcptdomainmax };
	const char	*p, *e;
	char		 num[32];
	size_t		 i, n;

	if (l == NULL) {
		s->mailmax = s->rcptmax = s->rcptdomainmax = 0;
		return;
	}
	if (strncasecmp(l, "LIMITS", 6) != 0 || (l[6] != ' ' && l[6] != '\0'))
		return;
	for (p = l + 6; *p != '\0'; p += strcspn(p, " ")) {
		p += strspn(p, " ");
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			n = strlen(names[i]);
			if (strncasecmp(p, names[i], n) != 0)
				continue;
			snprintf(num, sizeof(num), "%.*s",
			    (int)strcspn(p + n, " "), p + n);
			e = NULL;
			*v[i] = strtonum(num, 1, 1000000, &e);
			if (e != NULL)
				*v[i] = 0;	/* RFC 9422 3: ignore it */
		}
	}
}

/*
 * Leaves out of this transaction the recipients past max_rcpt, RCPTMAX
 * or RCPTDOMAINMAX: they get again, as after a 452, and go in the next
 * transaction of the session. Returns how many wait.
 */
size_t
smtplimits_rcpt_split(const struct session *s, struct envelope *env)
{
	long long	  max = s->acct->max_rcpt;
	const char	**dom = NULL, *d;
	size_t		  i, k, n = 0, nd = 0, later = 0;

	if (s->rcptmax > 0 && (max == 0 || s->rcptmax < max))
		max = s->rcptmax;
	if (s->rcptdomainmax > 0)
		dom = xcalloc(env->nrcpt + 1, sizeof(*dom));
	for (i = 0; i < env->nrcpt; i++) {
		struct rcpt *rc = &env->rcpt[i];

		if (rc->done)
			continue;
		if (max > 0 && (long long)n >= max) {
			rc->again = 1;
			later++;
			continue;
		}
		if (dom != NULL) {
			d = strrchr(rc->addr, '@');
			d = d != NULL ? d + 1 : "";
			for (k = 0; k < nd && strcasecmp(dom[k], d) != 0; k++)
				;
			if (k == nd && (long long)nd >= s->rcptdomainmax) {
				rc->again = 1;
				later++;
				continue;
			}
			if (k == nd)
				dom[nd++] = d;
		}
		n++;
	}
	free(dom);
	return later;
}
