/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer: a whole message through the spooler: line endings, the header
 * block, -t recipients, Bcc removal, added headers, quoted-printable.
 */
#include <sys/mman.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "outbox.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
discard(void *arg, const char *p, size_t n)
{
	(void)arg;
	(void)p;
	(void)n;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct message	 m;
	struct msgopts	 o;
	int		 fd = memfd_create("in", 0);

	if (fd == -1 || write(fd, data, size) != (ssize_t)size) {
		if (fd != -1)
			close(fd);
		return 0;
	}
	lseek(fd, 0, SEEK_SET);
	memset(&o, 0, sizeof(o));
	o.dot_ends = size > 0 && data[0] & 1;
	o.from_headers = 1;
	o.sender = "me@example.org";
	o.fullname = "F\xc3\xbczzer";
	o.maildomain = "example.org";
	o.from_rewrite = size > 1 && data[1] & 1 ? "relay@example.org" : NULL;
	o.spool_dir = "/tmp";
	if (message_read(&m, &o, fd) == 0) {
		if (m.body > m.size)
			abort();
		if (message_qp_allowed(&m))
			render_message(&m, 1, discard, NULL);
	}
	message_close(&m);
	close(fd);
	return 0;
}
