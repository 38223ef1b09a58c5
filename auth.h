/* SPDX-License-Identifier: ISC */
/*
 * SASL as a table (auth.c): one exchange's state and the mechanisms' rows.
 * Included by smtpauth.c (the 334 loop), config.c and provider.c (names,
 * checked against the table), check.c and the unit tests.
 */
#ifndef AUTH_H
#define AUTH_H

/* One SASL exchange: what the mechanism's steps need and keep. */
struct sasl {
	const char	*user;
	const char	*secret;	/* the password, or an OAuth2 token */
	const char	*host;		/* OAUTHBEARER's host and port */
	long long	 port;
	const char	*nonce;		/* SCRAM: a fixed client nonce (tests) */
	int		 stage, steps;
	int		 verified;	/* SCRAM: the server's signature checked */
	int		 token_error;	/* a bearer token was refused (334) */
	char		*first;		/* SCRAM: client-first-message-bare */
	char		*authmsg;	/* SCRAM: AuthMessage */
	unsigned char	 salted[32];	/* SCRAM: SaltedPassword */
	char		 err[256];
};

/* A row of the SASL table. */
struct sasl_mech {
	const char	*name;
	int		 strength;	/* auth on picks the highest; 0: never */
	int		(*step)(struct sasl *, const char *, size_t, char **,
			    size_t *);
};

/* auth.c */
const struct sasl_mech *auth_mech(const char *);
const struct sasl_mech *auth_choose(const char *, const char *);
void	 auth_names(char *, size_t);
int	 auth_step(const struct sasl_mech *, struct sasl *, const char *,
	    char **);
void	 auth_clear(struct sasl *);

#endif
