/* SPDX-License-Identifier: ISC */
/*
 * mailq --json: one queue entry as one line of JSON, in the field names
 * of Postfix's `postqueue -j`, so monitoring written for it reads ours.
 */
#include <stdio.h>
#include <string.h>

#include "outbox.h"

static size_t	 utf8_len(const unsigned char *);
static void	 json_string(FILE *, const char *);

/*
 * The length of the valid UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF), or 0.
 */
static size_t
utf8_len(const unsigned char *s)
{
	size_t		n, i;
	unsigned	c;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, c = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (n == 4 && (c < 0x10000 || c > 0x10ffff)))
		return 0;
	return n;
}

/* s as a JSON string (RFC 8259): quotes, backslashes and control
 * characters escaped, each byte that is not UTF-8 as U+FFFD. */
static void
json_string(FILE *fp, const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 n;

	putc('"', fp);
	while (*p != '\0') {
		if (*p == '"' || *p == '\\')
			fprintf(fp, "\\%c", *p++);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(fp, "\\u%04x", *p++);
		else if ((n = utf8_len(p)) == 0) {
			fputs("\\ufffd", fp);
			p++;
		} else {
			fwrite(p, 1, n, fp);
			p += n;
		}
	}
	putc('"', fp);
}

/* One entry, one line: queue_name is "active" while it is being
 * delivered, else "deferred"; every recipient waits for lasterr. */
void
json_entry(FILE *fp, const struct qentry *q)
{
	size_t	i;

	fprintf(fp, "{\"queue_name\": \"%s\", \"queue_id\": ",
	    strcmp(q->lasterr, "being delivered") == 0 ? "active" : "deferred");
	json_string(fp, q->id);
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
