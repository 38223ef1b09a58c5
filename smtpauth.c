/* SPDX-License-Identifier: ISC */
/*
 * SMTP AUTH (RFC 4954) on an open session: picks the mechanism the account
 * asks for among those the server offers, fetches the secret (secret.c),
 * runs the 334 exchange with auth.c's steps, and asks once for a new OAuth2
 * token when the server refuses one. smtp.c calls it after EHLO.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "outbox.h"
#include "auth.h"
#include "io.h"
#include "smtp.h"

static enum status auth_exchange(struct session *, const struct sasl_mech *,
		    struct sasl *);

/*
 * One AUTH exchange (RFC 4954): the mechanism's steps answer each 334;
 * every client line after the command word is redacted in -v.
 */
static enum status
auth_exchange(struct session *s, const struct sasl_mech *m, struct sasl *sa)
{
	char	*resp;
	int	 r;

	if ((r = auth_step(m, sa, NULL, &resp)) == -1)
		return smtpio_failx(s, s->stage, FC_TEMP, "AUTH %s: %s",
		    m->name, sa->err);
	if (r == 0) {
		r = smtpio_command(s, 1, "AUTH %s %s", m->name, resp);
		freezero(resp, strlen(resp));
	} else
		r = smtpio_command(s, 0, "AUTH %s", m->name);
	if (r == -1)
		return ST_TEMP;
	for (;;) {
		if (smtpio_reply(s) == -1)
			return ST_TEMP;
		if (s->reply.code != 334)
			break;
		if (auth_step(m, sa, s->reply.text, &resp) == -1) {
			/* cancel: 501 */
			if (smtpio_command(s, 0, "*") == -1 ||
			    smtpio_reply(s) == -1)
				return ST_TEMP;
			return smtpio_failx(s, s->stage, FC_TEMP, "AUTH %s: %s",
		    m->name, sa->err);
		}
		r = smtpio_command(s, 2, "%s", resp);
		freezero(resp, strlen(resp));
		if (r == -1)
			return ST_TEMP;
	}
	if (s->reply.code == 235) {
		s->authenticated = 1;
		return ST_OK;
	}
	/* Refused credentials need an administrator, not a bounce. */
	return smtpio_failx(s, s->stage, FC_TEMP, "AUTH %s refused: %d %s",
	    m->name, s->reply.code, s->reply.text);
}

/*
 * Authenticates the session with the account's mechanism and secret. A
 * refused OAuth2 token is replaced once by a new one (it may have been
 * revoked or expired early).
 */
enum status
smtpauth_login(struct session *s)
{
	const struct sasl_mech	*m;
	struct sasl		 sa;
	char			*secret, err[512];
	enum status		 st;
	enum fclass		 class;
	int			 again;

	if (!(s->ext & EXT_AUTH))
		return smtpio_failx(s, STAGE_AUTH, FC_CONFIG, "the server offers "
		    "no AUTH; check host and port, or set auth off");
	if ((m = auth_choose(s->mechs, s->acct->auth)) == NULL)
		return smtpio_failx(s, STAGE_AUTH, FC_CONFIG,
		    "the server offers AUTH %s; %s", s->mechs,
		    strcasecmp(s->acct->auth, "on") == 0 ? "none of them is "
		    "supported" : "not the configured mechanism");
	for (again = 0;; again++) {
		/* Under the session's deadline; its class is where it failed. */
		if ((class = secret_get(s->acct, s->token_dir != NULL ?
		    s->token_dir : s->state_dir, again,
		    s->verbose, s->io.session_end, &secret, err,
		    sizeof(err))) != FC_NONE)
			return smtpio_failx(s, STAGE_AUTH, class, "%s", err);
		s->mech = m->name;
		memset(&sa, 0, sizeof(sa));
		sa.user = s->acct->user;
		sa.secret = secret;
		sa.host = s->host;
		sa.port = s->port;
		st = auth_exchange(s, m, &sa);
		auth_clear(&sa);
		freezero(secret, strlen(secret));
		if (st == ST_OK || !s->connected)
			return st;
		if (again || s->acct->oauth2_grant == NULL ||
		    (!sa.token_error && s->reply.code != 535))
			break;
	}
	/* Refused: a 4xx may pass; anything else needs an administrator. */
	s->fail.class = s->reply.code / 100 == 4 ? FC_TEMP : FC_CONFIG;
	if (s->reply.code / 100 >= 4) {
		s->fail.code = s->reply.code;
		strlcpy(s->fail.enhanced, s->reply.enhanced,
		    sizeof(s->fail.enhanced));
	}
	return ST_TEMP;
}
