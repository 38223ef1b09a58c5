/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer: a token endpoint's answer as it arrives: the HTTP response
 * reader (status line, headers, Content-Length or chunks, the body bound)
 * over a real socket, then the token response parser on the body, and the
 * parser on the raw bytes too. Every field kept must be valid.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "outbox.h"
#include "feed.h"
#include "io.h"
#include "oauth2.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* A kept token or code is printable ASCII, no space, bounded. */
static void
check_field(const char *v, int space)
{
	size_t	n = 0;

	for (; v != NULL && *v != '\0'; v++, n++)
		if ((unsigned char)*v < (space ? 0x20 : 0x21) ||
		    (unsigned char)*v > 0x7e || n > 16384)
			__builtin_trap();
}

static void
parse(const char *p, size_t len)
{
	struct oauth2_resp	r;

	if (oauth2_parse(p, len, &r) == 0) {
		check_field(r.access_token, 0);
		check_field(r.refresh_token, 0);
		check_field(r.error, 0);
		check_field(r.error_description, 1);
		check_field(r.device_code, 0);
		check_field(r.user_code, 0);
		check_field(r.verification_uri, 0);
		if (r.expires_in < 0 || r.interval < 0 || r.interval > 3600)
			__builtin_trap();
	}
	oauth2_resp_free(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_resp	 h;
	struct io		 io;
	char			 err[256];
	int			 sv[2];

	parse((const char *)data, size);
	if (fuzz_feed(data, size, sv) == -1)
		return 0;
	io_init(&io, sv[0], 1000);
	memset(&h, 0, sizeof(h));
	if (http_read(&io, &h, err, sizeof(err)) == 0) {
		if (h.status < 100 || h.status > 599 || h.len > 65536 ||
		    (h.body != NULL && h.body[h.len] != '\0'))
			__builtin_trap();
		parse(h.body != NULL ? h.body : "", h.len);
	}
	free(h.body);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
