/* SPDX-License-Identifier: ISC */
/*
 * The secrets AUTH needs: a password (in the configuration, in
 * password_file, or printed by password_command) or an OAuth2 access
 * token, each obtained under the session's deadline. A secret that cannot
 * be had is a failure with the class of where it failed: a file or a
 * command the administrator must fix (configuration), or a token endpoint
 * that may answer later (temporary). Secret files are secretfile.c's;
 * the access token is oauth2.c's.
 */
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "outbox.h"
#include "oauth2.h"

static int	command_read(int, long long, char *, size_t *);
static int	command_wait(pid_t, long long, int *);
static enum fclass command_secret(const struct account *, long long,
		    char **, char *, size_t);

/*
 * The command's first line, read until end_ms (CLOCK_MONOTONIC) or a stop
 * signal. Returns 0 with buf (NUL-terminated, *len octets), or -1 with
 * errno ETIMEDOUT or EINTR.
 */
static int
command_read(int fd, long long end_ms, char *buf, size_t *len)
{
	struct pollfd	pfd = { .fd = fd, .events = POLLIN };
	long long	left;
	ssize_t		n;

	*len = 0;
	while (*len < LINE_MAX_SECRET - 1) {
		if (stopping()) {
			errno = EINTR;
			return -1;
		}
		if ((left = end_ms - mono_ms()) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (poll(&pfd, 1, left > 1000 ? 1000 : (int)left) <= 0)
			continue;
		n = read(fd, buf + *len, LINE_MAX_SECRET - 1 - *len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		*len += n;
		if (memchr(buf, '\n', *len) != NULL)
			break;
	}
	buf[*len] = '\0';
	return 0;
}

/*
 * Waits for the command until end_ms; past it (or on a stop signal) kills
 * its process group. Returns 0 with its wait status, -1 when it was killed.
 */
static int
command_wait(pid_t pid, long long end_ms, int *status)
{
	struct timespec	tick = { 0, 10 * 1000 * 1000 };
	pid_t		r;

	for (;;) {
		r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		if (r == -1 && errno != EINTR)
			return -1;
		if (stopping() || mono_ms() >= end_ms)
			break;
		nanosleep(&tick, NULL);
	}
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, status, 0) == -1 && errno == EINTR)
		;
	return -1;
}

/*
 * password_command: its first line, in its own process group, which is
 * killed at end_ms. FC_NONE with *out, else FC_CONFIG (the command needs
 * a fix) or FC_TEMP (a stop signal) with err.
 */
static enum fclass
command_secret(const struct account *a, long long end_ms, char **out,
    char *err, size_t errlen)
{
	char		buf[LINE_MAX_SECRET] = "";	/* terminated whatever the read did */
	size_t		len = 0;
	int		p[2], fd, status = 0, rv, e = 0;
	pid_t		pid;

	if (pipe2(p, O_CLOEXEC) == -1 || (pid = fork()) == -1) {
		snprintf(err, errlen, "password_command: %s", strerror(errno));
		return FC_CONFIG;
	}
	if (pid == 0) {
		setpgid(0, 0);	/* so that a timeout kills all it started */
		priv_lose();	/* the command is the user's, not ours */
		if (dup2(p[1], STDOUT_FILENO) == -1)
			_exit(127);
		if ((fd = open("/dev/null", O_RDONLY)) != -1)
			dup2(fd, STDIN_FILENO);
		execl("/bin/sh", "sh", "-c", a->password_command, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);	/* either of us may win the race */
	close(p[1]);
	if ((rv = command_read(p[0], end_ms, buf, &len)) == -1)
		e = errno;
	close(p[0]);
	if (command_wait(pid, rv == -1 ? 0 : end_ms, &status) == -1 &&
	    rv == 0) {
		rv = -1;
		e = stopping() ? EINTR : ETIMEDOUT;
	}
	buf[strcspn(buf, "\r\n")] = '\0';
	if (rv == 0 && (buf[0] == '\0' || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)) {
		/* What a failing command printed is not to be kept. */
		snprintf(err, errlen, "password_command failed (%s)",
		    buf[0] == '\0' ? "no output" : "non-zero exit");
		rv = -1;
	} else if (rv == -1 && e == EINTR)
		snprintf(err, errlen, "password_command stopped by signal %d",
		    stopping());
	else if (rv == -1)
		snprintf(err, errlen, "password_command did not finish within "
		    "the session's %lld s (session_timeout); killed it",
		    a->session_timeout);
	if (rv == 0)
		*out = xstrdup(buf);
	explicit_bzero(buf, sizeof(buf));
	if (rv == 0)
		return FC_NONE;
	return e == EINTR ? FC_TEMP : FC_CONFIG;
}

/*
 * The secret for AUTH: the password, password_file, the first line of
 * password_command, or (oauth2_grant) an access token: the cached one, or
 * with force a new one. All of it by end_ms (CLOCK_MONOTONIC; 0: the
 * account's session_timeout from now). Returns FC_NONE with *out (the
 * caller clears it with freezero), else the class of where it failed and
 * err with the fix.
 */
enum fclass
secret_get(const struct account *a, const char *qdir, int force,
    int verbose, long long end_ms, char **out, char *err, size_t errlen)
{
	char	why[512];

	*out = NULL;
	if (end_ms == 0)
		end_ms = mono_ms() + a->session_timeout * 1000;
	if (a->oauth2_grant != NULL) {
		switch (oauth2_token(a, qdir, force, verbose, end_ms, out, NULL,
		    why, sizeof(why))) {
		case OAUTH2_OK:
			return FC_NONE;
		case OAUTH2_TEMP:
			snprintf(err, errlen, "OAuth2: %s", why);
			return FC_TEMP;
		default:
			snprintf(err, errlen, "OAuth2: %s", why);
			return FC_CONFIG;
		}
	}
	if (a->password != NULL) {
		*out = xstrdup(a->password);
		return FC_NONE;
	}
	if (a->password_file != NULL)
		return secretfile_read(a, a->password_file, 0, out, err, errlen) ==
		    0 ? FC_NONE : FC_CONFIG;
	if (a->password_command != NULL)
		return command_secret(a, end_ms, out, err, errlen);
	snprintf(err, errlen, "account %s: user has no password, "
	    "password_file or password_command", a->name);
	return FC_CONFIG;
}
