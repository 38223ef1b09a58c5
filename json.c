/* SPDX-License-Identifier: ISC */
/*
 * mailq --json: one queue entry as one line of JSON, in the field names
 * of Postfix's `postqueue -j`, so monitoring written for it reads ours.
 */
#include <stdio.h>
#include <string.h>

#include "outbox.h"

static void	 json_string(FILE *, const char *);

/*
 * s as a JSON string (RFC 8259): quotes and backslashes escaped, each
 * byte that is not UTF-8 as U+FFFD, and every control character (C0, C1,
 * bidi: utf8_control) as \uXXXX, so that a terminal showing the output
 * shows them as text and never acts on them.
 */
static void
json_string(FILE *fp, const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 n, left = strlen(s);
	unsigned		 c;

	putc('"', fp);
	while (*p != '\0') {
		n = utf8_len(p, left);
		if (*p == '"' || *p == '\\')
			fprintf(fp, "\\%c", *p);
		else if (n == 0) {
			fputs("\\ufffd", fp);
			n = 1;
		} else if (utf8_control(p, n)) {
			c = n == 1 ? *p : n == 2 ? (p[0] & 0x1fu) << 6 |
			    (p[1] & 0x3f) : (p[0] & 0x0fu) << 12 |
			    (p[1] & 0x3fu) << 6 | (p[2] & 0x3f);
			fprintf(fp, "\\u%04x", c);
		} else {
			fwrite(p, 1, n, fp);
		}
		p += n;
		left -= n;
	}
	putc('"', fp);
}

/*
 * One entry, one line: queue_name is "active" while a process holds its
 * claim, "hold" when no run tries it again (a report that failed for
 * good and could not be kept), else "deferred"; every recipient waits
 * for lasterr. A report names its message in "report_of".
 */
void
json_entry(FILE *fp, const struct qentry *q)
{
	size_t	i;

	fprintf(fp, "{\"queue_name\": \"%s\", \"queue_id\": ",
	    q->active ? "active" : q->held ? "hold" : "deferred");
	json_string(fp, q->id);
	if (q->orig[0] != '\0') {
		fprintf(fp, ", \"report_of\": ");
		json_string(fp, q->orig);
	}
	fprintf(fp, ", \"arrival_time\": %lld, \"message_size\": %lld, "
	    "\"forced_expire\": false, \"sender\": ", (long long)q->created,
	    (long long)q->msg.size);
	json_string(fp, q->env.sender);
	fprintf(fp, ", \"attempts\": %d, \"next_attempt\": %lld, "
	    "\"recipients\": [", q->attempts, (long long)q->next);
	for (i = 0; i < q->env.nrcpt; i++) {
		fprintf(fp, "%s{\"address\": ", i > 0 ? ", " : "");
		json_string(fp, q->env.rcpt[i].addr);
		fprintf(fp, ", \"delay_reason\": ");
		json_string(fp, q->lasterr);
		putc('}', fp);
	}
	fprintf(fp, "]}\n");
}

/*
 * A damaged entry (or one set aside as ID.bad): never sent, so monitoring
 * must see it. queue_name "corrupt", as Postfix's queue of that name.
 */
void
json_damaged(FILE *fp, const char *id, const char *why)
{
	fprintf(fp, "{\"queue_name\": \"corrupt\", \"queue_id\": ");
	json_string(fp, id);
	fprintf(fp, ", \"reason\": ");
	json_string(fp, why);
	fprintf(fp, ", \"recipients\": []}\n");
}
