/* SPDX-License-Identifier: ISC */
/*
 * The setgid install: outbox runs with the group that may read the system
 * configuration's secret and write the queue. It holds that group only
 * around those accesses (priv_raise/priv_drop), never while it reads what
 * a user controls, and gives it up for good (priv_lose) before -C, a user
 * file it must trust, or any command it runs.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "outbox.h"

/* The group outbox was installed setgid to, or -1: set once, then read. */
static gid_t	privgid = (gid_t)-1;
/* The install's group even when the setgid bit did not take (below). */
static gid_t	instgid = (gid_t)-1;

/* Variables that would make OpenSSL load a user's code or trust store. */
static const char *unsafe_env[] = {
	"OPENSSL_CONF", "OPENSSL_ENGINES", "OPENSSL_MODULES", "SSL_CERT_FILE",
	"SSL_CERT_DIR", "OPENSSL_ia32cap", "TMPDIR", "LOCALDOMAIN",
	"RES_OPTIONS", "HOSTALIASES", NULL
};

/*
 * Called first thing: makes descriptors 0-2 valid, notes the setgid group,
 * closes inherited descriptors, cleans the environment, and drops the
 * group until needed.
 */
void
priv_init(void)
{
	struct stat	st;
	size_t		i;
	int		fd;

	/*
	 * A closed 0, 1 or 2 would be the next file opened: the spool file
	 * or the socket would then get our diagnostics or the -v transcript.
	 */
	for (fd = 0; fd <= 2; fd++)
		if (fcntl(fd, F_GETFD) == -1 && errno == EBADF &&
		    open("/dev/null", O_RDWR) != fd)
			_exit(EX_OSERR);	/* nowhere to say it */
	closefrom(3);
	if (getegid() == getgid()) {
		/*
		 * Under NoNewPrivileges (systemd's queue unit) the setgid bit
		 * is ignored: root's run still knows the install's group, so
		 * that it trusts the secrets the group may read.
		 */
		if (stat("/proc/self/exe", &st) == 0 &&
		    (st.st_mode & S_ISGID) != 0)
			instgid = st.st_gid;
		return;
	}
	privgid = instgid = getegid();
	for (i = 0; unsafe_env[i] != NULL; i++)
		unsetenv(unsafe_env[i]);
	/* Queue files are shared with the group; nothing with others. */
	umask(007);
	priv_drop();
}

/*
 * The group of a setgid install, also in a run that did not get it
 * (NoNewPrivileges), or (gid_t)-1: what a shared file's group must be.
 */
gid_t
priv_install_group(void)
{
	return instgid;
}

/* The setgid group, or (gid_t)-1 when outbox is not installed setgid. */
gid_t
priv_group(void)
{
	return privgid;
}

void
priv_raise(void)
{
	if (privgid != (gid_t)-1 && setegid(privgid) == -1)
		fatal(EX_OSERR, "setegid: %s", strerror(errno));
}

void
priv_drop(void)
{
	if (privgid != (gid_t)-1 && setegid(getgid()) == -1)
		fatal(EX_OSERR, "setegid: %s", strerror(errno));
}

/* Gives the group up for good, and checks that it cannot come back. */
void
priv_lose(void)
{
	gid_t	gid = getgid();

	if (privgid == (gid_t)-1)
		return;
	/* setgid() would keep the saved group; setresgid() clears all three. */
	if (setresgid(gid, gid, gid) == -1 || getegid() != gid ||
	    (gid != privgid && setegid(privgid) != -1))
		fatal(EX_OSERR, "cannot give up group %u", (unsigned)privgid);
	privgid = (gid_t)-1;
}
