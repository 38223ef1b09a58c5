/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer: the reply reader (code checks, continuation lines, line and
 * count bounds) over a real socket, as a server's bytes would arrive.
 */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "outbox.h"
#include "feed.h"
#include "io.h"
#include "smtp.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct session	 s;
	int		 sv[2], code, last, n;

	if (fuzz_feed(data, size, sv) == -1)
		return 0;
	memset(&s, 0, sizeof(s));
	io_init(&s.io, sv[0], 1000);
	for (n = 0; n < 1000 && (code = smtpio_reply(&s)) != -1; n++)
		if (code < 200 || code > 599)
			__builtin_trap();
	smtpio_parse_line((const char *)data, size, &code, &last);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
