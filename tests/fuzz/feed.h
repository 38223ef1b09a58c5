/* SPDX-License-Identifier: ISC */
/*
 * For the fuzz targets that read as a server's bytes would arrive: the
 * input written into one end of a socket pair, closed for writing.
 */
#include <sys/socket.h>

#include <stdint.h>
#include <unistd.h>

/* sv[0] reads the input; -1 (nothing open) when it cannot be set up. */
static inline int
fuzz_feed(const uint8_t *data, size_t size, int sv[2])
{
	if (size > 65536 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		return -1;
	if (write(sv[1], data, size) != (ssize_t)size) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	shutdown(sv[1], SHUT_WR);
	return 0;
}
