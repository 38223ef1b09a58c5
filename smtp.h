/* SPDX-License-Identifier: ISC */
/*
 * The SMTP client (smtp.c, smtpio.c, smtptx.c, smtplimits.c, smtpauth.c):
 * struct session, which embeds a struct io, and its steps. Included by
 * those and by deliver.c, submit.c, runner.c, caller.c, limits.c, log.c,
 * check.c and the tests.
 */
#ifndef SMTP_H
#define SMTP_H

#include "io.h"

/* EHLO capabilities. */
#define EXT_PIPELINING	0x001
#define EXT_STARTTLS	0x002
#define EXT_8BITMIME	0x004
#define EXT_SMTPUTF8	0x008
#define EXT_DSN		0x010
#define EXT_SIZE	0x020
#define EXT_CHUNKING	0x040
#define EXT_ENHANCED	0x080
#define EXT_AUTH	0x100
#define EXT_REQUIRETLS	0x200

struct session {
	const struct account *acct;
	struct io	 io;
	SSL_CTX		*ctx;
	int		 verbose;
	int		 connected;	/* in step, ready for a command */
	int		 dirty;		/* a transaction is open: RSET first */
	int		 down;		/* no host answered in this run */
	int		 closed;	/* the server said 421: open a new one */
	int		 reopens;	/* sessions opened again after a 421 */
	enum stage	 stage;		/* what the session is doing now */
	const char	*state_dir;	/* the queue: TLS session cache, tokens */
	const char	*token_dir;	/* tokens only (--check), else state_dir */
	unsigned	 ext;
	unsigned long long size_max;
	char		 mechs[256];	/* AUTH mechanisms offered */
	char		 host[256];	/* relay, for messages and the log */
	char		 addr[64];
	long long	 port;
	const char	*tls_version;
	int		 authenticated;
	const char	*mech;		/* the SASL mechanism used */
	struct reply	 reply;		/* the last reply read */
	struct failure	 fail;		/* why the last step failed */
	double		 began;		/* the attempt (log.c: delays=) */
	double		 conn_s;	/* seconds to connect, greet, log in */
	double		 xfer_s;	/* seconds of the transaction */
	int		 tls_logged;	/* the log has this session's TLS */
	int		 slot;		/* connection slot's lock fd + 1; 0: none */
	int		 errheld;	/* stderr held with the slot (qhold_take) */
	int		 uncharged;	/* the account's state, not the message's:
					   no retry step for the entry */
	unsigned	 ntx;		/* transactions in this session */
	struct reply	 throttle;	/* the last throttling reply (limits.c) */
	long long	 mailmax;	/* RFC 9422 LIMITS, 0: not announced */
	long long	 rcptmax;
	long long	 rcptdomainmax;
};

/* Where DATA's dot-stuffing writes, and whether a line just began. */
struct dotsink {
	struct io	*io;
	int		 bol;
};

/* smtp.c */
enum status smtp_open(struct session *);
void	 smtp_close(struct session *);
void	 smtp_hangup(struct session *);

/* smtpio.c */
int	 smtpio_command(struct session *, int, const char *, ...) PRINTF(3, 4);
int	 smtpio_reply(struct session *);
int	 smtpio_read(struct session *, void (*)(struct session *,
	    const char *));
int	 smtpio_lost(const struct session *);
enum status smtpio_fail(struct session *, const char *, ...) PRINTF(2, 3);
enum status smtpio_failx(struct session *, enum stage, enum fclass,
	    const char *, ...) PRINTF(4, 5);
enum status smtpio_refused(struct session *, enum stage, const char *, ...)
	    PRINTF(3, 4);
int	 smtpio_parse_line(const char *, size_t, int *, int *);
void	 smtpio_sanitize(char *);

/* smtptx.c */
enum status smtptx_send(struct session *, const struct message *,
	    struct envelope *);
int	 smtptx_data_out(void *, const char *, size_t);

/* smtplimits.c */
void	 smtplimits_release(struct session *);
void	 smtplimits_reply(struct session *);
void	 smtplimits_ehlo(struct session *, const char *);
size_t	 smtplimits_rcpt_split(const struct session *, struct envelope *);

/* smtpauth.c */
enum status smtpauth_login(struct session *);

#endif
