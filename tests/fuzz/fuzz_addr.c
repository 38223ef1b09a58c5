/* SPDX-License-Identifier: ISC */
/* libFuzzer: the RFC 5322 address-list tokenizer and header qualification. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "outbox.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct strlist	 l = { NULL, 0 };
	char		 err[256], *q = NULL;
	size_t		 i;

	if (addr_parse_list((const char *)data, size, &l, err, sizeof(err))
	    == 0)
		for (i = 0; i < l.n; i++)
			if (strlen(l.v[i]) > ADDR_MAX)
				abort();	/* the bound must hold */
	strlist_free(&l);
	if (addr_qualify((const char *)data, size, NULL, "example.org", &q,
	    err, sizeof(err)) == 1)
		free(q);
	return 0;
}
