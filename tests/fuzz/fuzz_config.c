/* SPDX-License-Identifier: ISC */
/* libFuzzer: the configuration parser, from a private file (-C). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "outbox.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config		 cfg;
	const struct account	*a;
	char			 path[64], err[1024];
	int			 fd, rv;

	snprintf(path, sizeof(path), "/tmp/outbox-fuzz-config.%d", getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd == -1)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	rv = config_load(&cfg, path, "/nonexistent", err, sizeof(err));
	unlink(path);		/* the suite leaves nothing behind in /tmp */
	if (rv == 0) {
		a = config_account(&cfg, NULL, "me@example.org", err,
		    sizeof(err));
		if (a == NULL || a->timeout < 1 || a->port < 1)
			__builtin_trap();
	}
	config_free(&cfg);
	return 0;
}
