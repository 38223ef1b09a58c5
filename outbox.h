/* SPDX-License-Identifier: ISC */
/*
 * outbox: a sendmail-compatible mail submission client.
 * The types and functions the source files share, and the prototypes of
 * the modules without a header of their own. Included first by every
 * file; the module headers come after it: io.h (io.c, tls.c: the OpenSSL
 * types), auth.h (the SASL table), oauth2.h (OAuth2, http.c, jwt.c),
 * smtp.h (the SMTP client's session), queue.h (the queue module) and
 * qfile.h (what the queue's own files share).
 */
#ifndef OUTBOX_H
#define OUTBOX_H

#include <sys/types.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define OUTBOX_VERSION	"0.1.0"

#define ADDR_MAX	254	/* RFC 5321 4.5.3.1.3: a path is 256 octets with <> */
#define RCPT_MAX	1000	/* recipients of one message */
#define HEADER_MAX	(1024 * 1024)	/* bytes in the header block */
#define REPLY_LINE_MAX	2048	/* octets in one reply line (RFC 5321: 512) */
#define REPLY_LINES_MAX	100	/* lines in one multi-line reply */
#define REPLY_TEXT_MAX	1024	/* reply text kept for messages */
#define BLOCK		65536	/* message text read or written at once */

#define PRINTF(f, a)	__attribute__((format(printf, f, a)))

/* Outcome of anything that can fail: sendmail.c maps it to an exit code. */
enum status {
	ST_OK = 0,
	ST_TEMP,	/* try again later: network, 4xx, needs an administrator */
	ST_PERM		/* the server refused this message or recipient for good */
};

/* Where a failure happened, in the order a submission meets them. */
enum stage {
	STAGE_NONE = 0,
	STAGE_LOCAL,		/* the message, the caller, this machine */
	STAGE_QUEUE,		/* the queue directory and its files */
	STAGE_CONNECT,		/* DNS and TCP */
	STAGE_TLS,		/* the handshake and the certificate */
	STAGE_GREETING,
	STAGE_EHLO,
	STAGE_STARTTLS,
	STAGE_AUTH,
	STAGE_MAIL,
	STAGE_RCPT,
	STAGE_DATA,		/* DATA's 354, or BDAT before the last chunk */
	STAGE_EOD		/* the reply to the end of the message */
};

/* What kind of failure, which decides what follows from it. */
enum fclass {
	FC_NONE = 0,		/* no failure */
	FC_TEMP,		/* may work later: the message waits */
	FC_PERM,		/* refused for good: this message or recipient */
	FC_CONFIG,		/* needs an administrator; the message waits */
	FC_LOCAL,		/* local I/O that will not heal by waiting */
	FC_USAGE,		/* the caller asked for something impossible */
	FC_NOPERM,		/* not this user's to do */
	FC_SOFTWARE		/* a bug */
};

/* A failure as a value, made where it happens (STYLE.md 10). */
struct failure {
	enum stage	 stage;
	enum fclass	 class;
	int		 code;		/* the server's reply code, or 0 */
	char		 enhanced[16];	/* RFC 3463 code ("5.1.1"), or "" */
	char		 text[1024];	/* bounded and printable */
};

struct aliases;
struct session;

struct strlist {
	char		**v;
	size_t		  n;
};

enum tls_mode {
	TLS_DEFAULT = 0,	/* implicit on port 465, else starttls */
	TLS_STARTTLS,
	TLS_IMPLICIT,
	TLS_OFF
};

/* One smarthost account; every string is owned by the account. */
struct account {
	char		*name;
	const char	*file;		/* where it was defined */
	int		 line;
	int		 system;	/* defined by the system file */
	int		 secret_line;	/* line of `password`, 0 if none */
	struct strlist	 host;
	long long	 port;
	enum tls_mode	 tls;
	char		*tls_ca_file;
	char		*tls_fingerprint;	/* 64 hex digits, no colons */
	char		*tls_cert_file;
	char		*tls_key_file;
	long long	 tls_min_version;	/* TLS1_2_VERSION or TLS1_3_VERSION */
	long long	 tls_session_cache;	/* resume sessions: on (1) */
	char		*auth;		/* NULL: on when user is set */
	long long	 auth_plaintext;
	char		*user;
	char		*password;
	char		*password_file;
	char		*password_command;
	char		*from;
	char		*maildomain;
	char		*helo;
	char		*aliases;
	long long	 timeout;	/* seconds */
	long long	 session_timeout;	/* seconds, a whole session */
	char		*log;
	char		*dead_letter;
	long long	 from_rewrite;	/* envelope and From become from */
	long long	 queue;		/* on (1) or off (0) */
	char		*queue_dir;
	long long	 queue_lifetime;	/* seconds */
	long long	 sessions;	/* parallel sessions in a queue run */
	char		*provider;	/* microsoft365, gmail, ses: presets */
	long long	 connections;	/* host-wide cap per mailbox (limits.c) */
	long long	 rate;		/* messages a minute, 0: no pacing */
	long long	 max_rcpt;	/* recipients a transaction, 0: no cap */
	long long	 throttle_time;	/* seconds an account pauses */
	long long	 auth_failure_cache_time;	/* seconds */
	long long	 submit_timeout;	/* seconds a caller may wait */
	long long	 delay_warning_time;	/* seconds; 0: no warnings */
	long long	 queue_max_message_size;	/* octets, 0: no limit */
	long long	 queue_max_user_bytes;	/* one user's share of a shared spool */
	long long	 queue_min_free;	/* octets the file system keeps free */
	long long	 queue_max_user_entries;	/* one user's entries */
	long long	 queue_min_free_inodes;	/* inodes users leave free */
	char		*oauth2_grant;	/* client_credentials, refresh_token... */
	char		*oauth2_token_url;
	char		*oauth2_device_url;
	char		*oauth2_client_id;
	char		*oauth2_client_secret;
	char		*oauth2_client_secret_file;
	char		*oauth2_scope;
	char		*oauth2_refresh_token_file;
	char		*oauth2_key_file;	/* PEM, or a Google JSON key */
	char		*oauth2_ca_file;
	char		*oauth2_provider;	/* microsoft, google */
	char		*oauth2_tenant;
};

struct config {
	struct account	*acct;
	size_t		 nacct;
	struct account	 defaults;
	char		*user_file;	/* accounts' file points here */
};

/* A reply: its code, and its text lines joined by "; " (bounded, printable). */
struct reply {
	int		 code;
	char		 enhanced[16];	/* RFC 3463 code the text began with */
	char		 text[REPLY_TEXT_MAX];
};

struct rcpt {
	char		*addr;
	enum status	 st;		/* ST_TEMP until the server took it */
	int		 accepted;	/* RCPT got 2xx in this transaction */
	int		 sent;		/* RCPT went in this transaction */
	int		 again;		/* 452: send in the next transaction now */
	int		 done;		/* a final answer is known */
	struct reply	 reply;
};

struct envelope {
	char		*sender;	/* "" is the null sender */
	struct rcpt	*rcpt;
	size_t		 nrcpt;
	const char	*notify;	/* DSN: -N, -R, -V */
	const char	*ret;
	const char	*envid;
	int		 requiretls;	/* RFC 8689: verified TLS every hop */
};

/* What sendmail.c tells message.c about reading one message. */
struct msgopts {
	int		 dot_ends;	/* a lone "." ends input (no -i) */
	int		 from_headers;	/* -t */
	const char	*sender;	/* envelope sender, for an added From */
	const char	*fullname;	/* -F or GECOS, may be NULL */
	const char	*maildomain;
	const struct aliases *aliases;	/* for local names in headers */
	const char	*from_rewrite;	/* From: becomes this address */
	const char	*spool_dir;
	off_t		 size_max;	/* octets in the spool, 0: no limit */
};

/* The spooled message: canonical CRLF text, headers already rewritten. */
struct message {
	int		 fd;
	off_t		 size;		/* bytes in the spool file */
	off_t		 body;		/* offset of the body (after the blank line) */
	int		 blank;		/* the blank line is there */
	size_t		 max_line;	/* longest line, without CRLF */
	int		 eightbit;
	int		 nul;
	int		 multipart;	/* a multipart or message type */
	int		 encoded;	/* Content-Transfer-Encoding base64 or q-p */
	int		 mime_version;
	struct strlist	 hdr_rcpt;	/* addresses from To/Cc/Bcc with -t */
	struct failure	 fail;		/* why message_read() failed */
};

/* A queue entry: the message, its envelope, and its retry state. */
struct qentry {
	char		 id[32];
	char		*account;
	char		*account_file;	/* the file that defined it */
	struct envelope	 env;
	struct message	 msg;
	time_t		 created;
	time_t		 next;		/* the next attempt is due then */
	int		 attempts;
	int		 warned;	/* a delay warning went to the sender */
	uid_t		 owner;		/* who submitted it: owns ID.msg */
	char		 lasterr[512];
	ino_t		 env_ino;	/* the ID.env loaded (queue_claim) */
	struct timespec	 env_mtime;
	char		 orig[16];	/* a report: its message's ID (ID.orig) */
	char		 report[16];	/* its report, written, not yet live */
	int		 held;		/* never tried again: mailq says why */
	int		 sub;		/* a submission's ID.sub: not live yet */
	int		 active;	/* mailq: some process holds its claim */
	int		 errheld;	/* stderr held while claimed (queue.c) */
};

/* One run of outbox: what deliver.c needs beyond the message. */
struct run {
	const struct config *cfg;
	const char	*qdir;		/* NULL when the queue is off */
	const char	*home;
	int		 verbose;
	int		 errmode;	/* -oe: 'p' print, 'm' mail, 'q' quiet;
					   's' -bs: mail partial refusals */
	int		 due_only;	/* -q --due: honour the retry schedule */
	int		 json;		/* -bp --json: one JSON object a line */
	char		 qsel;		/* -qI, -qR, -qS, or 0 */
	const char	*qarg;
	int		 sent, deferred, bounced, busy;
	int		 foreground;	/* a caller waits: no waiting for a slot */
	int		 manual;	/* -q without --due: try despite a pause */
	long long	 budget_end;	/* ms (CLOCK_MONOTONIC) the caller's wait
					   ends, 0: none (submit_timeout) */
	int		 gate_up, gate_down;	/* a submit_timeout child's
					   pipes to its caller, + 1; 0: none */
};

/* What a delivery status notification reports (dsn.c). */
struct dsn {
	const struct envelope *env;	/* the recipients, with their replies */
	const struct message *msg;	/* the original, for its header */
	const char	*why;		/* for recipients without a reply */
	const char	*mta;		/* Reporting-MTA: this host */
	const char	*relay;		/* Remote-MTA, or NULL */
	const char	*maildomain;	/* of MAILER-DAEMON */
	time_t		 arrival;	/* Arrival-Date; 0 when unknown */
	int		 delayed;	/* a delay warning, not a failure */
};

/* priv.c */
void	 priv_init(void);
gid_t	 priv_install_group(void);
gid_t	 priv_group(void);
void	 priv_raise(void);
void	 priv_drop(void);
void	 priv_lose(void);

/* util.c */
void	 fatal(int, const char *, ...) __attribute__((noreturn)) PRINTF(2, 3);
int	 err_at(char *, size_t, const char *, int, const char *, ...)
	    PRINTF(5, 6);
char	*xstrdup(const char *);
void	*xcalloc(size_t, size_t);
void	*xreallocarray(void *, size_t, size_t);
void	 strlist_add(struct strlist *, const char *);
void	 strlist_free(struct strlist *);
const char *stage_name(enum stage);
long long mono_ms(void);
void	reason_add(char *, size_t, const char *, ...)
	    __attribute__((format(printf, 3, 4)));
void	 signals_init(void);
int	 stopping(void);
size_t	 utf8_len(const unsigned char *, size_t);
int	 utf8_control(const unsigned char *, size_t);
size_t	 printable_text(char *, size_t, const char *, size_t);
void	 printable_inplace(char *);
char	*xprintable(const char *);

/* log.c */
void	 log_open(const char *);
double	 log_now(void);
void	 log_line(const struct account *, const char *, const char *, ...)
	    PRINTF(3, 4);
void	 log_pickup(const struct account *, const struct qentry *);
void	 log_outcome(struct session *, const struct qentry *);
void	 log_expired(const struct account *, const struct qentry *, int);

/* config.c */
int	 config_load(struct config *, const char *, const char *, char *,
	    size_t);
const struct account *config_account(const struct config *, const char *,
	    const char *, char *, size_t);
void	 config_free(struct config *);
int	 config_private(int, const char *, char *, size_t);
const char *config_hostname(void);

/* provider.c */
extern const char *const provider_oauth2_names[];
extern const char *const provider_preset_names[];
void	 provider_preset(struct account *);
void	 provider_oauth2(struct account *);
const char *provider_oauth2_check(const struct account *);

/* message.c, render.c */
#define RENDER_QP	0x1	/* the body as quoted-printable */
#define RENDER_7BIT	0x2	/* 8-bit header text as RFC 2047 words */
#define MIME_WORD_MAX	76	/* an encoded-word, with its NUL */
int	 message_read(struct message *, const struct msgopts *, int);
int	 render_message(const struct message *, int,
	    int (*)(void *, const char *, size_t), void *);
size_t	 render_mime_word(char[MIME_WORD_MAX], const char *, size_t,
	    const char *, size_t);
int	 message_qp_allowed(const struct message *);
int	 message_body_8bit(const struct message *);
void	 message_close(struct message *);
int	 render_dead_letter(const struct message *, const char *,
	    const char *, mode_t, char *, size_t);

/* addr.c */
int	 addr_parse_list(const char *, size_t, struct strlist *, char *,
	    size_t);
int	 addr_check(const char *, char *, size_t);
int	 addr_resolve(const struct strlist *, const struct aliases *,
	    const char *, struct strlist *, char *, size_t);
int	 addr_qualify(const char *, size_t, const struct aliases *,
	    const char *, char **, char *, size_t);
struct aliases *addr_aliases_open(const char *, char *, size_t);
size_t	 addr_aliases_size(const struct aliases *);
void	 addr_aliases_warn(const struct aliases *);
void	 addr_aliases_close(struct aliases *);

/* deliver.c */
enum status deliver_attempt(struct run *, struct session *,
	    const struct account *, const struct message *, struct envelope *);
void	 deliver_entry(struct run *, struct session *, const struct account *,
	    struct qentry *);
int	 deliver_keep(const struct run *, const struct account *,
	    const struct message *, const char *, uid_t);
void	 deliver_log(const struct account *, const char *, ...) PRINTF(2, 3);
void	 deliver_say(const struct run *, int, const char *, ...) PRINTF(3, 4);
void	 deliver_tell(const struct run *, const struct session *,
	    const struct envelope *, enum status, int);
int	 deliver_report(struct run *, struct session *, const struct account *,
	    struct qentry *, const char *, int, int);
int	 deliver_sender_refused(const struct session *);
void	 deliver_last_error(char *, size_t, const char *,
	    const struct envelope *);

/* submit.c */
void	 submit_message(struct run *, const struct account *, struct qentry *,
	    int, struct failure *);

/* limits.c */
#define LIMITS_PAUSED	1	/* limits_blocked: after throttling */
#define LIMITS_LOGIN	2	/* a refused login, remembered */
enum status limits_open(struct run *, struct session *,
	    const struct account *);
enum status limits_pace(struct run *, struct session *,
	    const struct account *);
void	 limits_after(struct run *, struct session *, const struct account *);
int	 limits_uncharged(const struct session *, struct qentry *);
int	 limits_blocked(const struct run *, const struct account *, char *,
	    size_t);
long long limits_cap(const struct run *, const struct account *);
void	 limits_show(const struct run *, FILE *);
long long limits_now_ms(void);

/* caller.c */
int	 caller_handoff(struct run *, struct session *,
	    const struct account *);
int	 caller_budget(struct run *, const struct account *, struct qentry *,
	    struct failure *);
void	 caller_gate(struct run *);
void	 caller_done(struct run *, const struct failure *);

/* runner.c */
void	 runner_queue(struct run *, struct failure *);
void	 runner_flush(struct run *, struct session *,
	    const struct account *);
void	 runner_list(struct run *, struct failure *);
void	 runner_delete(struct run *, const char *, struct failure *);
/* json.c */
void	 json_entry(FILE *, const struct qentry *);
void	 json_damaged(FILE *, const char *, const char *);

/* dsn.c */
int	 dsn_write(FILE *, const struct dsn *);

/* check.c */
void	 check_secrets(const struct config *, const char *);
void	 check_account(const struct account *, const char *, const char *,
	    const char *, struct failure *);

/* smtpd.c */
void	 smtpd_run(struct run *, const struct account *,
	    const struct aliases *, const char *, int);

/* secretfile.c */
#define LINE_MAX_SECRET	16384	/* octets of a secret's line, NUL included */
int	 secretfile_read(const struct account *, const char *, int, char **,
	    char *, size_t);
int	 secretfile_shared(const char *, char *, size_t);

/* secret.c */
enum fclass secret_get(const struct account *, const char *, int, int,
	    long long, char **, char *, size_t);

#endif
