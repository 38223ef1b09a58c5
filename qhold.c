/* SPDX-License-Identifier: ISC */
/*
 * The stderr held while this process holds what other users' mail waits
 * for (a claim on another user's queue entry, a connection slot of a
 * system account): written to memory meanwhile, replayed once the last
 * holder let go, so that a stderr nobody reads cannot stall their mail.
 */
#include <sys/mman.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "outbox.h"
#include "queue.h"

/*
 * Where stderr goes while this process holds what other users' mail
 * waits for (qhold_take): a memory file, replayed once the last holder
 * let go. A stderr nobody reads (a full pipe, a stopped terminal) then
 * blocks a process that holds nothing. Process-wide, as descriptor 2 is.
 */
static struct {
	int	depth;		/* claims held */
	int	saved;		/* the real stderr, while depth > 0 */
	int	mem;		/* what stands in for it */
} hold = { 0, -1, -1 };

/*
 * Takes stderr away while this process holds something other users'
 * mail waits for (*held notes that this holder took it): a claim on
 * another user's entry, a connection slot of a system account
 * (limits.c). What is written meanwhile (the -v transcript, warnings)
 * waits in memory.
 */
void
qhold_take(int *held)
{
	int	mem, saved;

	if (*held)
		return;
	*held = 1;
	if (hold.depth++ > 0)
		return;
	fflush(stderr);
	if ((mem = memfd_create("outbox-stderr", MFD_CLOEXEC)) == -1)
		return;		/* no memory: stderr as it is */
	if ((saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3)) == -1 ||
	    dup2(mem, STDERR_FILENO) == -1) {
		if (saved != -1)
			close(saved);
		close(mem);
		return;
	}
	hold.saved = saved;
	hold.mem = mem;
}

/* Gives stderr back once the last holder let go, and replays it there. */
void
qhold_release(int *held)
{
	char	buf[8192];
	off_t	off = 0;
	ssize_t	n, w, done;

	if (!*held)
		return;
	*held = 0;
	if (hold.depth == 0 || --hold.depth > 0 || hold.saved == -1)
		return;
	fflush(stderr);
	dup2(hold.saved, STDERR_FILENO);
	close(hold.saved);
	/* May block now: this process no longer holds anyone's mail. */
	while ((n = pread(hold.mem, buf, sizeof(buf), off)) > 0) {
		for (done = 0; done < n; done += w)
			if ((w = write(STDERR_FILENO, buf + done, n - done)) ==
			    -1) {
				if (errno != EINTR)
					goto out;
				w = 0;
			}
		off += n;
	}
out:
	close(hold.mem);
	hold.saved = hold.mem = -1;
}

/*
 * A process that leaves its caller gives fd (/dev/null) to the stderr it
 * holds too, so that nothing reaches the caller later, nor keeps its pipe
 * open. Async-signal-safe.
 */
void
qhold_detach(int fd)
{
	if (hold.saved != -1)
		dup2(fd, hold.saved);
}

/* A detached process forgets the stderr it held: it has none to give. */
void
qhold_forget(void)
{
	if (hold.saved != -1)
		close(hold.saved);
	if (hold.mem != -1)
		close(hold.mem);
	hold.depth = 0;
	hold.saved = hold.mem = -1;
}
