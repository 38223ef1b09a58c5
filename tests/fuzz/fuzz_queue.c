/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer: the queue envelope parser (ID.env as a hostile local user or
 * a damaged disk could leave it). What it accepts must be within bounds.
 */
#include <stdint.h>
#include <string.h>

#include "outbox.h"
#include "queue.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qentry	 q;
	char		 err[512];
	size_t		 i;

	if (size > 1024 * 1024)
		return 0;
	memset(&q, 0, sizeof(q));
	q.msg.fd = -1;
	if (qenv_parse((const char *)data, size, &q, err, sizeof(err)) == 0) {
		if (q.account == NULL || q.env.sender == NULL ||
		    q.env.nrcpt == 0 || q.env.nrcpt > RCPT_MAX ||
		    q.msg.body > q.msg.size || q.msg.size < 0)
			__builtin_trap();
		for (i = 0; i < q.env.nrcpt; i++)
			if (strlen(q.env.rcpt[i].addr) > ADDR_MAX ||
			    strpbrk(q.env.rcpt[i].addr, "\r\n<>") != NULL)
				__builtin_trap();
		if (strpbrk(q.env.sender, "\r\n<>") != NULL)
			__builtin_trap();
	} else if (memchr(err, '\0', sizeof(err)) == NULL)
		__builtin_trap();
	queue_free(&q);
	return 0;
}
