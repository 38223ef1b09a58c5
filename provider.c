/* SPDX-License-Identifier: ISC */
/*
 * The providers outbox knows, and what they fill in where an account
 * leaves a key out: provider's submission rules (host, port, connections,
 * rate, recipients), oauth2_provider's token and device endpoints, scope
 * and host; and what an OAuth2 account must have before a grant can run.
 * config.c calls these once every file is read (finish()).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox.h"
#include "auth.h"

static char	*provider_url(const char *, const char *);

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

/* oauth2_provider's closed list (config.c's K_CHOICE). */
const char *const provider_oauth2_names[] = { "microsoft", "google", NULL };

/*
 * provider: the submission rules each provider documents (outbox.conf(5)
 * cites them), filled in where the account leaves a key out.
 */
static const struct preset {
	const char	*name;
	const char	*host;		/* NULL: the account names it */
	long long	 port;
	long long	 connections, rate, max_rcpt;
} presets[] = {
	/* Exchange Online: 3 connections a mailbox, 30 messages a minute,
	 * 500 recipients a message (learn.microsoft.com, "Exchange Online
	 * limits"); 2 leave one for the mailbox's other clients. */
	{ "microsoft365", "smtp.office365.com", 587, 2, 30, 500 },
	/* Gmail/Workspace: 100 recipients a message over SMTP, 2,000
	 * messages a day (support.google.com/a/answer/166852). */
	{ "gmail", "smtp.gmail.com", 587, 2, 0, 100 },
	/* Amazon SES: 50 recipients a message; the sandbox sends 1 message
	 * a second (docs.aws.amazon.com/ses/latest/dg/quotas.html). */
	{ "ses", NULL, 587, 2, 60, 50 },
};

/* provider's closed list (config.c's K_CHOICE). */
const char *const provider_preset_names[] = { "microsoft365", "gmail",
	"ses", NULL };

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
void
provider_oauth2(struct account *a)
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

/*
 * provider's host, port, connection cap, rate and recipient ceiling where
 * the account leaves them out; without a provider: 2 connections (under
 * the strictest large provider's 3), no rate, no ceiling.
 */
void
provider_preset(struct account *a)
{
	const struct preset	*p = NULL;
	size_t			 i;

	for (i = 0; a->provider != NULL && i < sizeof(presets) /
	    sizeof(presets[0]); i++)
		if (strcmp(presets[i].name, a->provider) == 0)
			p = &presets[i];
	if (p != NULL && a->host.n == 0 && p->host != NULL)
		strlist_add(&a->host, p->host);
	if (p != NULL && a->port == 0)
		a->port = p->port;
	if (a->connections == -1)
		a->connections = p != NULL ? p->connections : 2;
	if (a->rate == -1)
		a->rate = p != NULL ? p->rate : 0;
	if (a->max_rcpt == -1)
		a->max_rcpt = p != NULL ? p->max_rcpt : 0;
}

/* What an OAuth2 account lacks, or NULL. */
const char *
provider_oauth2_check(const struct account *a)
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
