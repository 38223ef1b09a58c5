/* SPDX-License-Identifier: ISC */
/*
 * The I/O layer and the TLS over it (io.c, tls.c): struct io, the only
 * header with OpenSSL's SSL types. Included by smtp.h (a session embeds
 * one) and by who uses a struct io itself: smtp*.c, smtpd.c, http.c,
 * check.c, caller.c, runner.c, submit.c, the tests.
 */
#ifndef IO_H
#define IO_H

#include <openssl/ssl.h>

/* A buffered connection, plain or TLS, every wait under a deadline. */
struct io {
	int		 fd;
	SSL		*ssl;
	int		 timeout_ms;	/* each wait */
	long long	 reply_end;	/* ms, CLOCK_MONOTONIC; 0 is none */
	long long	 session_end;	/* ms; 0 is none */
	long long	 session_ms;	/* for the message */
	int		 tcp;		/* a TCP socket: ACK at once (io_quickack) */
	ssize_t		(*read)(struct io *, void *, size_t);
	ssize_t		(*write)(struct io *, const void *, size_t);
	char		 rbuf[8192];
	size_t		 rpos, rlen;
	char		 wbuf[65536];
	size_t		 wlen;
	unsigned long	 nflush;	/* write bursts, for the round-trip count */
	int		 failed;	/* a read or write failed: write nothing more */
	char		 err[256];
};

/* io.c */
void	 io_init(struct io *, int, int);
int	io_dial(const char *, const char *, long long, long long, char *, size_t,
	    char *, size_t);
void	 io_session(struct io *, long long);
void	 io_reply(struct io *, int);
int	 io_wait_ms(struct io *);
void	 io_timed_out(struct io *, const char *);
int	 io_getline(struct io *, char **, size_t *);
int	 io_getpiece(struct io *, char **, size_t *);
int	 io_write(struct io *, const void *, size_t);
int	 io_flush(struct io *);
size_t	 io_pending(const struct io *);
void	 io_close(struct io *);
void	 io_quickack(int);

/* tls.c */
/*
 * How tls_start checks its peer besides the host name, and where it keeps
 * sessions: an account's settings, passed by value so any client can ask.
 */
struct tlspeer {
	const char	*pin;		/* tls_fingerprint: replaces the chain */
	int		 implicit;	/* TLS from the first octet (the hint) */
	long long	 port;		/* for the hint */
	const struct account *cache;	/* the session cache's key, or NULL */
	const char	*cache_dir;	/* where the cache lives, or NULL */
	int		 verbose;
};
SSL_CTX	*tls_context(const struct account *, char *, size_t);
SSL_CTX	*tls_context_ca(const char *, long long, char *, size_t);
int	 tls_start(struct io *, SSL_CTX *, const char *,
	    const struct tlspeer *, enum fclass *, char *, size_t);

#endif
