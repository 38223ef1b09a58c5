/* SPDX-License-Identifier: ISC */
/*
 * The caller of a submission never waits on more than its own message:
 * the attempt has submit_timeout, past which the message is made durable
 * in the queue and the attempt goes on in a process of its own; the flush
 * of other due entries after it goes to a detached process over the live
 * session. Neither keeps anything of the caller's (terminal, pipes).
 */
#include <sys/prctl.h>
#include <sys/wait.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "outbox.h"
#include "io.h"
#include "queue.h"
#include "smtp.h"

static void	leave_caller(void);
static void	on_detach(int);
static void	budget_publish(struct run *, const struct account *,
		    struct qentry *);

/* A submit_timeout child told by its caller to go on alone. */
static volatile sig_atomic_t detached;
/* Where it says so (the pipe up to the caller), -1 when nowhere. */
static volatile sig_atomic_t ack_fd = -1;

/*
 * A new session, with /dev/null for descriptors 0-2: nothing of the
 * caller's terminal or pipes. Async-signal-safe.
 */
static void
leave_caller(void)
{
	int	fd;

	setsid();
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		qhold_detach(fd);	/* stderr held in memory, too */
		if (fd > 2)
			close(fd);
	}
}

/*
 * After a submission's own message: the due entries of the queue go over
 * the live session in a detached process (a grandchild: no zombie), so
 * the caller returns at once. It keeps the connection and its slot, and
 * nothing of the caller's (descriptors 0-2 are /dev/null, the rest
 * closed). Returns 1 when handed off (s is then closed here, without a
 * QUIT), 0 when there is nothing to flush or no process for it.
 */
int
caller_handoff(struct run *r, struct session *s, const struct account *a)
{
	struct strlist	 ids = { NULL, 0 };
	pid_t		 pid;
	int		 keep[2], lo, hi;
	size_t		 n;

	if (r->qdir == NULL || !s->connected || queue_list(r->qdir, &ids, qsweep_litter) == -1)
		return 0;
	n = ids.n;
	strlist_free(&ids);
	if (n == 0)
		return 0;
	fflush(NULL);
	if ((pid = fork()) == -1)
		return 0;
	if (pid > 0) {
		while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
			;
		io_close(&s->io);	/* the grandchild's now: no QUIT */
		s->connected = 0;
		smtplimits_release(s);
		return 1;
	}
	if (fork() != 0)
		_exit(0);
	leave_caller();
	signal(SIGHUP, SIG_IGN);
	closelog();
	qhold_forget();	/* its descriptors go below */
	keep[0] = s->io.fd < s->slot - 1 ? s->io.fd : s->slot - 1;
	keep[1] = s->io.fd < s->slot - 1 ? s->slot - 1 : s->io.fd;
	lo = keep[0] >= 0 ? keep[0] : keep[1];
	hi = keep[1];
	if (lo > 3)
		close_range(3, lo - 1, 0);
	if (hi > lo + 1)
		close_range(lo + 1, hi - 1, 0);
	close_range(hi + 1, ~0U, 0);
	r->foreground = 0;
	r->budget_end = 0;
	r->verbose = 0;
	runner_flush(r, s, a);
	smtp_close(s);
	_exit(0);
}


/*
 * SIGUSR1 in a submit_timeout child: the caller has returned; nothing of
 * its (the terminal, the pipes it reads to their end) is kept. Only
 * async-signal-safe calls.
 */
static void
on_detach(int sig)
{
	int	saved = errno;

	(void)sig;
	if (!detached) {
		detached = 1;
		prctl(PR_SET_PDEATHSIG, 0);	/* it outlives the caller now */
		leave_caller();
		if (ack_fd != -1 && write(ack_fd, "A", 1) != 1)
			ack_fd = -1;	/* the caller has gone */
	}
	errno = saved;
}

/* The caller gives up waiting: the entry waits, published, for -q. */
static void
budget_publish(struct run *r, const struct account *a, struct qentry *q)
{
	char	err[512];

	q->next = time(NULL);
	snprintf(q->lasterr, sizeof(q->lasterr), "still being tried after "
	    "submit_timeout (%llds)", a->submit_timeout);
	if (queue_update(r->qdir, q, err, sizeof(err)) == -1)
		warnx("queue %s: %s", q->id, err);
}

/*
 * The caller's side of submit_timeout: the attempt runs in a child; the
 * caller waits for its outcome up to submit_timeout. The child asks (a
 * byte 'S' up) before it settles the entry and waits for the answer, so
 * that exactly one of them settles first: 'Y', the caller then waits for
 * the outcome (*f); or past the budget the caller publishes the entry
 * (durable, due), answers 'D' and detaches the child (SIGUSR1), which
 * settles it after. Returns 1 here with *f set, 0 in the child (go on)
 * or when there is no child (-v, -bs, no queue, no fork).
 */
int
caller_budget(struct run *r, const struct account *a, struct qentry *q,
    struct failure *f)
{
	struct sigaction sa;
	struct pollfd	 pfd;
	long long	 left;
	ssize_t		 n;
	pid_t		 pid;
	char		 c;
	int		 up[2], down[2], rv;

	if (r->qdir == NULL || r->verbose || r->errmode == 's')
		return 0;
	if (pipe2(up, O_CLOEXEC) == -1)
		return 0;
	if (pipe2(down, O_CLOEXEC) == -1) {
		close(up[0]);
		close(up[1]);
		return 0;
	}
	fflush(NULL);
	if ((pid = fork()) == -1) {
		close(up[0]); close(up[1]); close(down[0]); close(down[1]);
		return 0;
	}
	if (pid == 0) {
		/* A caller killed before it said 0 takes its attempt along:
		 * the entry stays unpublished (ID.sub), as without a child. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
		    getppid() == 1)
			_exit(1);
		close(up[0]);
		close(down[1]);
		r->gate_up = up[1] + 1;
		r->gate_down = down[0] + 1;
		ack_fd = up[1];
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_detach;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGUSR1, &sa, NULL);
		signal(SIGPIPE, SIG_IGN);
		return 0;
	}
	close(up[1]);
	close(down[0]);
	memset(f, 0, sizeof(*f));
	pfd.fd = up[0];
	pfd.events = POLLIN;
	for (;;) {
		left = r->budget_end - limits_now_ms();
		rv = poll(&pfd, 1, left > 0 ? (int)left : 0);
		if (rv == -1 && errno == EINTR) {
			if (stopping())
				kill(pid, stopping());
			continue;
		}
		if (rv != 1)
			break;		/* past the budget */
		if ((n = read(up[0], &c, 1)) == 1 && c == 'S' &&
		    write(down[1], "Y", 1) == 1) {
			/* The child settles; its outcome follows. */
			while ((n = read(up[0], f, sizeof(*f))) == -1 &&
			    errno == EINTR)
				;
			if (n != (ssize_t)sizeof(*f))
				memset(f, 0, sizeof(*f));
			goto done;
		}
		if (n == 0) {
			/* It died before it settled: the entry waits. */
			budget_publish(r, a, q);
			goto done;
		}
	}
	budget_publish(r, a, q);
	if (write(down[1], "D", 1) != 1)
		warnx("submit_timeout: the attempt's process is gone");
	kill(pid, SIGUSR1);
	/* Its death signal is off once it says 'A' (or soon after 1 s). */
	pfd.fd = up[0];
	while (poll(&pfd, 1, 1000) == 1 && read(up[0], &c, 1) == 1 &&
	    c != 'A')
		;
	if (r->verbose || isatty(STDERR_FILENO))
		warnx("queued as %s; the attempt goes on in the background "
		    "(submit_timeout %llds)", q->id, a->submit_timeout);
	close(up[0]);
	close(down[1]);
	return 1;
done:
	close(up[0]);
	close(down[1]);
	while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
		;
	return 1;
}

/*
 * In a submit_timeout child, before it settles the entry: whether the
 * caller still waits ('Y') or has published it and gone ('D').
 */
void
caller_gate(struct run *r)
{
	char	c = 'D';

	if (r->gate_up == 0)
		return;
	if (write(r->gate_up - 1, "S", 1) != 1 ||
	    read(r->gate_down - 1, &c, 1) != 1 || c != 'Y') {
		on_detach(SIGUSR1);	/* the caller has returned */
		close(r->gate_up - 1);
		r->gate_up = 0;
	}
	close(r->gate_down - 1);
	r->gate_down = 0;
}

/*
 * After a submission: a submit_timeout child tells its waiting caller the
 * outcome, then ends (its detached flush, if any, goes on alone).
 */
void
caller_done(struct run *r, const struct failure *f)
{
	if (r->gate_up == 0 && !detached)
		return;
	if (r->gate_up != 0 && write(r->gate_up - 1, f, sizeof(*f)) !=
	    (ssize_t)sizeof(*f))
		syslog(LOG_WARNING, "outbox: the caller left before the "
		    "outcome");
	_exit(0);
}
