/* SPDX-License-Identifier: ISC */
/*
 * OAuth2 (oauth2.c, oauth2state.c) and what it alone uses: the token
 * endpoint's HTTPS POST (http.c) and signed assertions (jwt.c). Included
 * by those, secret.c and sendmail.c (tokens, --oauth2-login), check.c.
 */
#ifndef OAUTH2_H
#define OAUTH2_H

#include <openssl/evp.h>
#include <openssl/x509.h>

struct io;
struct json_t;		/* jansson's json_t */

/* An HTTP response (http.c): the status and the body, NUL-terminated. */
struct http_resp {
	int		 status;
	long long	 retry_after;	/* seconds, -1 when not given */
	char		*body;
	size_t		 len;
};

/* A key for signing assertions (jwt.c). */
struct jwt_key {
	EVP_PKEY	*key;
	X509		*cert;		/* its certificate (x5t), if the PEM has it */
	char		*iss;		/* a Google key's client_email */
};

/* A token endpoint's answer (oauth2.c), every field validated. */
struct oauth2_resp {
	char		*access_token;
	char		*refresh_token;
	char		*error;
	char		*error_description;
	char		*device_code;
	char		*user_code;
	char		*verification_uri;
	long long	 expires_in;	/* seconds, 0 when not given */
	long long	 interval;	/* RFC 8628: seconds between polls */
};

/* How a token request ended. */
#define OAUTH2_OK	0
#define OAUTH2_TEMP	1	/* no answer, HTTP 5xx or 429: try later */
#define OAUTH2_CONFIG	2	/* refused: the configuration needs a fix */
#define OAUTH2_NOPERM	3	/* not this user's to do */

/* http.c */
int	 http_post(const struct account *, const char *, const char *,
	    long long, struct http_resp *, int, char *, size_t);
int	 http_read(struct io *, struct http_resp *, char *, size_t);

/* jwt.c */
int	 jwt_key_parse(const char *, struct jwt_key *, char *, size_t);
void	 jwt_key_free(struct jwt_key *);
char	*jwt_sign(const struct jwt_key *, const char *, const char *,
	    const char *, const char *);

/* oauth2.c */
int	 oauth2_parse(const char *, size_t, struct oauth2_resp *);
void	 oauth2_resp_free(struct oauth2_resp *);
int	 oauth2_token(const struct account *, const char *, int, int,
	    long long, char **, time_t *, char *, size_t);
int	 oauth2_login(const struct account *, const char *, int, FILE *,
	    char *, size_t);
int	 oauth2_describe(const struct account *, const char *, FILE *);

/* oauth2state.c */
char	*oauth2state_text(struct json_t *, const char *, int);
char	*oauth2state_cache_read(const struct account *, const char *,
	    time_t *);
void	 oauth2state_cache_write(const struct account *, const char *,
	    const char *, time_t);
int	 oauth2state_refresh_save(const struct account *, const char *,
	    char *, size_t);
char	*oauth2state_refresh_read(const struct account *, const char *,
	    const char *);
int	 oauth2state_rotated(const struct account *, const char *,
	    const char *, const char *);
int	 oauth2state_describe(const struct account *, const char *, char *,
	    size_t);

#endif
