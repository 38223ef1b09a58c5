/* SPDX-License-Identifier: ISC */
/*
 * spawn: runs one command and prints what it cost, for bench/bench.py.
 *
 *	spawn [-n netns] [-i stdin] [-e stderr] [-t seconds] -- command [arg ...]
 *
 * Prints "wall_seconds cpu_seconds maxrss_kib exit_code" on stdout, from
 * CLOCK_MONOTONIC around fork() ... wait4() and from wait4()'s rusage.
 * The command's stdout goes to /dev/null.
 *
 * Why not fork from Python: Linux keeps a process's peak RSS across execve()
 * (the hiwater mark of the old address space counts), so a child forked from
 * the Python driver starts with Python's 10 MiB and ru_maxrss would report
 * that, not the tool's. This process is small, as GNU time is, and its wall
 * clock has nanoseconds where GNU time's %e has centiseconds.
 */
#define _GNU_SOURCE
#include <sys/resource.h>
#include <sys/wait.h>

#include <err.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static pid_t child;

static void
on_alarm(int sig)
{
	(void)sig;
	if (child > 0)
		kill(child, SIGKILL);
}

int
main(int argc, char *argv[])
{
	const char	*netns = NULL, *in = "/dev/null", *errf = "/dev/null";
	struct timespec	 t0, t1;
	struct rusage	 ru;
	char		 path[512];
	int		 c, fd, status, limit = 600, code;

	while ((c = getopt(argc, argv, "n:i:e:t:")) != -1) {
		switch (c) {
		case 'n': netns = optarg; break;
		case 'i': in = optarg; break;
		case 'e': errf = optarg; break;
		case 't': limit = atoi(optarg); break;
		default: errx(2, "usage: spawn [-n netns] [-i in] [-e err] [-t s] -- cmd ...");
		}
	}
	if (optind >= argc)
		errx(2, "no command");
	if (netns != NULL) {
		snprintf(path, sizeof(path), "/run/netns/%s", netns);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
			err(2, "%s", path);
		if (setns(fd, CLONE_NEWNET) == -1)
			err(2, "setns %s", netns);
		close(fd);
	}
	signal(SIGALRM, on_alarm);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((child = fork()) == -1)
		err(2, "fork");
	if (child == 0) {
		if ((fd = open(in, O_RDONLY)) == -1 || dup2(fd, 0) == -1)
			err(127, "%s", in);
		if ((fd = open("/dev/null", O_WRONLY)) == -1 || dup2(fd, 1) == -1)
			err(127, "/dev/null");
		if ((fd = open(errf, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1 ||
		    dup2(fd, 2) == -1)
			err(127, "%s", errf);
		execv(argv[optind], argv + optind);
		err(127, "%s", argv[optind]);
	}
	alarm((unsigned)limit);
	while (wait4(child, &status, 0, &ru) == -1)
		;	/* EINTR from the alarm: the kill follows */
	clock_gettime(CLOCK_MONOTONIC, &t1);
	alarm(0);
	code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	printf("%.9f %.6f %ld %d\n",
	    (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
	    (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6,
	    ru.ru_maxrss, code);
	return 0;
}
