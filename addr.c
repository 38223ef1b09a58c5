/* SPDX-License-Identifier: ISC */
/*
 * Addresses: the RFC 5322 address-list tokenizer, envelope address checks,
 * the aliases file, and completion of bare local names.
 */
#include <ctype.h>
#include <err.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "outbox.h"

#define ALIAS_DEPTH	10

struct qualify;

struct alias {
	char		*name;
	char		*value;		/* the addresses */
	char		*skipped;	/* pipes, files, :include:, or NULL */
	int		 line;
};

struct aliases {
	struct alias	*v;
	size_t		 n;
	size_t		*byname;	/* indexes of v by name, then line */
	char		*path;
};

/*
 * One resolution: each alias is expanded at most once (state 1 while its
 * targets are expanded, so meeting it again is a loop; 2 once done, so
 * meeting it again adds nothing new), which keeps a wide fan-out linear.
 */
struct expansion {
	const struct aliases	*al;
	const char		*maildomain;
	unsigned char		*state;
	struct strlist		*out;
	char			*err;
	size_t			 errlen;
};

struct addrbuf {
	char		 s[ADDR_MAX + 1];
	size_t		 len;
	int		 overflow;
	int		 phrase;	/* words separated by blanks: a name */
	int		 gap;		/* blanks or a comment since the last token */
	size_t		 start, end;	/* where the address stands in the input */
};

/* Called for each address parsed, with where it stands in the input. */
typedef void	(*addr_fn)(void *, const char *, size_t, size_t);

static void	ab_put(struct addrbuf *, char);
static int	ab_flush(struct addrbuf *, addr_fn, void *, char *, size_t);
static int	parse(const char *, size_t, addr_fn, void *, char *, size_t);
static void	add_to_list(void *, const char *, size_t, size_t);
static size_t	skip_comment(const char *, size_t, size_t);
static size_t	copy_quoted(const char *, size_t, size_t, char, struct addrbuf *);
static const char *unquoted(const char *, char);
static int	quote_open(const char *);
static const char *check_octets(const char *);
static const char *check_local(const char *, size_t);
static const char *check_domain(const char *);
static const char *addr_domain(const char *);
static int	addr_same(const char *, const char *);
static void	add_unique(struct strlist *, const char *);
static int	aliases_load(struct aliases *, const char *, char *, size_t);
static void	aliases_free(struct aliases *);
static void	alias_split(struct alias *);
static void	out_add(struct qualify *, const char *, size_t);
static void	qualify_one(void *, const char *, size_t, size_t);
static int	alias_cmp(const void *, const void *, void *);
static const struct alias *alias_find(const struct aliases *, const char *);
static int	expand(struct expansion *, const char *, int, int);

static void
ab_put(struct addrbuf *ab, char c)
{
	/* Blank-separated words, as in `John Doe`, make a display name. */
	if (ab->gap && ab->len > 0 && c != '.' && c != '@' &&
	    ab->s[ab->len - 1] != '.' && ab->s[ab->len - 1] != '@')
		ab->phrase = 1;
	ab->gap = 0;
	if (ab->len >= ADDR_MAX) {
		ab->overflow = 1;
		return;
	}
	ab->s[ab->len++] = c;
}

/* Ends one address: hands it to fn unless empty; -1 when it is bad. */
static int
ab_flush(struct addrbuf *ab, addr_fn fn, void *arg, char *err, size_t errlen)
{
	int	rv = 0;

	ab->s[ab->len] = '\0';
	if (ab->overflow) {
		snprintf(err, errlen, "address longer than %d octets: %.40s...",
		    ADDR_MAX, ab->s);
		rv = -1;
	} else if (ab->phrase) {
		snprintf(err, errlen, "\"%s\" is a name, not an address "
		    "(write Name <user@domain>)", ab->s);
		rv = -1;
	} else if (ab->len > 0)
		fn(arg, ab->s, ab->start, ab->end);
	memset(ab, 0, sizeof(*ab));
	return rv;
}

static void
add_to_list(void *arg, const char *a, size_t start, size_t end)
{
	(void)start;
	(void)end;
	strlist_add(arg, a);
}

/* Returns the index just past the comment that opens at s[i]. */
static size_t
skip_comment(const char *s, size_t len, size_t i)
{
	int	depth = 0;

	for (; i < len; i++) {
		if (s[i] == '\\' && i + 1 < len)
			i++;
		else if (s[i] == '(')
			depth++;
		else if (s[i] == ')' && --depth == 0)
			return i + 1;
	}
	return len;
}

/* Copies a quoted string or domain literal opening at s[i]; returns past it. */
static size_t
copy_quoted(const char *s, size_t len, size_t i, char close,
    struct addrbuf *ab)
{
	ab_put(ab, s[i++]);
	for (; i < len; i++) {
		if (s[i] == '\\' && i + 1 < len) {
			ab_put(ab, s[i++]);
			ab_put(ab, s[i]);
		} else if (s[i] == '\r' || s[i] == '\n')
			continue;	/* folding inside a quoted string */
		else {
			ab_put(ab, s[i]);
			if (s[i] == close)
				return i + 1;
		}
	}
	return len;
}

/*
 * Parses an RFC 5322 address-list (display names, quoted strings, comments,
 * groups, angle addresses, obsolete routes) and appends each addr-spec to
 * out. Returns 0, or -1 with err when an address is malformed.
 */
int
addr_parse_list(const char *s, size_t len, struct strlist *out, char *err,
    size_t errlen)
{
	return parse(s, len, add_to_list, out, err, errlen);
}

static int
parse(const char *s, size_t len, addr_fn fn, void *arg, char *err,
    size_t errlen)
{
	struct addrbuf	ab;
	size_t		i = 0, at;
	int		angle = 0;

	memset(&ab, 0, sizeof(ab));
	while (i < len) {
		at = i;
		switch (s[i]) {
		case ' ': case '\t': case '\r': case '\n':
			ab.gap = 1;
			i++;
			continue;
		case '(':
			ab.gap = 1;
			i = skip_comment(s, len, i);
			continue;
		case '"':
			i = copy_quoted(s, len, i, '"', &ab);
			break;
		case '[':
			i = copy_quoted(s, len, i, ']', &ab);
			break;
		case '<':
			memset(&ab, 0, sizeof(ab));	/* drop the name */
			angle = 1;
			i++;
			continue;
		case '>':
			if (angle && ab.s[0] == '@') {
				/* obs-route: "<@a,@b:user@host>" */
				char *colon = memchr(ab.s, ':', ab.len);

				if (colon != NULL) {
					char	rest[sizeof(ab.s)];

					ab.len -= colon + 1 - ab.s;
					memcpy(rest, colon + 1, ab.len);
					memcpy(ab.s, rest, ab.len);
				}
			}
			ab.phrase = 0;
			angle = 0;
			if (ab_flush(&ab, fn, arg, err, errlen) == -1)
				return -1;
			i++;
			continue;
		case ':':
			if (angle) {
				ab_put(&ab, s[i++]);
				break;
			}
			memset(&ab, 0, sizeof(ab));	/* a group's name */
			i++;
			continue;
		case ',':
			if (angle) {	/* inside an obsolete route */
				ab_put(&ab, s[i++]);
				break;
			}
			/* FALLTHROUGH */
		case ';':
			if (ab_flush(&ab, fn, arg, err, errlen) == -1)
				return -1;
			i++;
			continue;
		default:
			ab_put(&ab, s[i++]);
			break;
		}
		/* s[at..i) became part of the address. */
		if (ab.end == 0)
			ab.start = at;
		ab.end = i;
	}
	if (angle) {
		snprintf(err, errlen, "missing '>' after <%.*s", (int)ab.len,
		    ab.s);
		return -1;
	}
	return ab_flush(&ab, fn, arg, err, errlen);
}

/* Whether a quoted string opened in a is left open. */
static int
quote_open(const char *a)
{
	int	quoted = 0;

	for (; *a != '\0'; a++) {
		if (*a == '\\' && quoted && a[1] != '\0')
			a++;
		else if (*a == '"')
			quoted = !quoted;
	}
	return quoted;
}

/* Why a's octets cannot go into a command, or NULL when they can. */
static const char *
check_octets(const char *a)
{
	const unsigned char	*p = (const unsigned char *)a;
	size_t			 n, left = strlen(a);

	while (*p != '\0') {
		if (*p < 0x20 || *p == 0x7f)
			return "a control character";
		if (*p == '<' || *p == '>')
			return "'<' or '>'";
		/* RFC 6531: 8-bit addresses are UTF-8, and nothing else. */
		if ((n = utf8_len(p, left)) == 0)
			return "bytes that are not UTF-8";
		p += n;
		left -= n;
	}
	return NULL;
}

/* Why the local part s[0..n) is malformed, or NULL (RFC 5321 4.1.2). */
static const char *
check_local(const char *s, size_t n)
{
	static const char	 atext[] = "!#$%&'*+-/=?^_`{|}~";
	size_t			 i;

	if (n == 0)
		return "nothing before the '@'";
	if (s[0] == '"') {
		for (i = 1; i < n && s[i] != '"'; i++)
			if (s[i] == '\\')
				i++;
		if (i >= n)
			return "a quote that is never closed";
		return i == n - 1 ? NULL : "text after a quoted local part";
	}
	for (i = 0; i < n; i++) {
		if (s[i] == '.' && (i == 0 || i == n - 1 || s[i + 1] == '.'))
			return "a dot at the start or end of the local part, "
			    "or two in a row";
		if (s[i] == '@')
			return "more than one '@'";
		if (s[i] == '"')
			return "a quote inside the local part";
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' &&
		    (unsigned char)s[i] < 0x80 && strchr(atext, s[i]) == NULL)
			return "a character the local part may only hold "
			    "quoted";
	}
	return NULL;
}

/* Why the domain d is malformed, or NULL: labels, or an [address literal]. */
static const char *
check_domain(const char *d)
{
	size_t	n = strlen(d), label = 0;

	if (n == 0)
		return "nothing after the '@'";
	if (d[0] == '[')
		return n > 2 && d[n - 1] == ']' && strcspn(d + 1, "[]\\") ==
		    n - 2 ? NULL : "a malformed [address literal]";
	for (; *d != '\0'; d++) {
		if (*d == '.') {
			if (label == 0 || d[1] == '\0')
				break;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*d) && *d != '-' && *d != '_' &&
		    (unsigned char)*d < 0x80)
			return *d == '@' ? "more than one '@'" : "a character "
			    "a domain cannot hold";
		if (++label > 63)
			return "a domain label longer than 63 octets";
	}
	if (*d == '.' || label == 0)
		return "an empty label in the domain (a dot at its start or "
		    "end, or two in a row)";
	return NULL;
}

/*
 * Checks an envelope address before it goes into a command or the queue:
 * bounded, no control characters (CR, LF and NUL would inject commands),
 * UTF-8, and local@domain (or a bare local name, qualified later): a
 * dot-atom or a closed quoted string before the '@', non-empty labels or
 * an [address literal] after it. -1 with err saying what is wrong.
 */
int
addr_check(const char *a, char *err, size_t errlen)
{
	const char	*d, *why;

	if (strlen(a) > ADDR_MAX) {
		snprintf(err, errlen, "address longer than %d octets",
		    ADDR_MAX);
		return -1;
	}
	if ((why = check_octets(a)) != NULL) {
		/* Not echoed: the octets are what is wrong with it. */
		snprintf(err, errlen, "an address holds %s; refusing it", why);
		return -1;
	}
	d = quote_open(a) ? NULL : addr_domain(a);
	why = check_local(a, d != NULL ? (size_t)(d - 1 - a) : strlen(a));
	if (why == NULL && d != NULL)
		why = check_domain(d);
	if (why != NULL) {
		snprintf(err, errlen, "<%s>: malformed address: %s", a, why);
		return -1;
	}
	return 0;
}

/* The next c in s outside quoted strings and escapes, or the final NUL. */
static const char *
unquoted(const char *s, char c)
{
	int	quoted = 0;

	for (; *s != '\0'; s++) {
		if (*s == '\\' && s[1] != '\0')
			s++;
		else if (*s == '"')
			quoted = !quoted;
		else if (*s == c && !quoted)
			break;
	}
	return s;
}

/* The domain of an address (after the last '@'), or NULL for a local name. */
static const char *
addr_domain(const char *a)
{
	const char	*at = NULL, *p;

	for (p = unquoted(a, '@'); *p != '\0'; p = unquoted(p + 1, '@'))
		at = p;
	return at != NULL ? at + 1 : NULL;
}

/* Same mailbox: the local part exactly, the domain in any case. */
static int
addr_same(const char *a, const char *b)
{
	const char	*da = addr_domain(a), *db = addr_domain(b);
	size_t		 la = da != NULL ? (size_t)(da - a) : strlen(a);
	size_t		 lb = db != NULL ? (size_t)(db - b) : strlen(b);

	if (la != lb || strncmp(a, b, la) != 0)
		return 0;
	if (da == NULL || db == NULL)
		return da == db;
	return strcasecmp(da, db) == 0;
}

static void
add_unique(struct strlist *l, const char *a)
{
	size_t	i;

	for (i = 0; i < l->n; i++)
		if (addr_same(l->v[i], a))
			return;
	strlist_add(l, a);
}

/* Reads `name: value` lines (with continuation lines) from path. */
static int
aliases_load(struct aliases *al, const char *path, char *err, size_t errlen)
{
	FILE	*fp;
	char	*line = NULL, *colon, *name;
	size_t	 cap = 0;
	int	 lineno = 0;

	memset(al, 0, sizeof(*al));
	al->path = xstrdup(path);
	if ((fp = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		aliases_free(al);
		return -1;
	}
	while (getline(&line, &cap, fp) != -1) {
		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || line[strspn(line, " \t")] == '\0')
			continue;
		if ((line[0] == ' ' || line[0] == '\t') && al->n > 0) {
			struct alias *a = &al->v[al->n - 1];
			size_t vl = strlen(a->value), ll = strlen(line);

			a->value = xreallocarray(a->value, vl + ll + 2, 1);
			a->value[vl] = ',';
			memcpy(a->value + vl + 1, line, ll + 1);
			continue;
		}
		if ((colon = strchr(line, ':')) == NULL || colon == line) {
			err_at(err, errlen, path, lineno, "expected \"name: "
			    "address, ...\"");
			free(line);
			fclose(fp);
			aliases_free(al);
			return -1;
		}
		*colon = '\0';
		name = line;
		name[strcspn(name, " \t")] = '\0';

		al->v = xreallocarray(al->v, al->n + 1, sizeof(*al->v));
		al->v[al->n].name = xstrdup(name);
		al->v[al->n].value = xstrdup(colon + 1);
		al->v[al->n].line = lineno;
		al->v[al->n].skipped = NULL;
		al->n++;
	}
	free(line);
	fclose(fp);
	for (size_t i = 0; i < al->n; i++) {
		struct strlist	l = { NULL, 0 };
		char		why[200];

		alias_split(&al->v[i]);
		if (addr_parse_list(al->v[i].value, strlen(al->v[i].value), &l,
		    why, sizeof(why)) == -1) {
			err_at(err, errlen, path, al->v[i].line, "%s", why);
			aliases_free(al);
			return -1;
		}
		strlist_free(&l);
	}
	al->byname = xreallocarray(NULL, al->n + 1, sizeof(*al->byname));
	for (size_t i = 0; i < al->n; i++)
		al->byname[i] = i;
	qsort_r(al->byname, al->n, sizeof(*al->byname), alias_cmp, al);
	return 0;
}

/* Orders alias indexes by name (case-insensitive), then by line. */
static int
alias_cmp(const void *a, const void *b, void *arg)
{
	const struct aliases	*al = arg;
	const struct alias	*x = &al->v[*(const size_t *)a];
	const struct alias	*y = &al->v[*(const size_t *)b];
	int			 c = strcasecmp(x->name, y->name);

	return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

/* The alias for name, the file's first when it names it twice; or NULL. */
static const struct alias *
alias_find(const struct aliases *al, const char *name)
{
	size_t	lo = 0, hi = al->n, mid;
	int	c;

	while (lo < hi) {	/* the first index whose name is >= name */
		mid = lo + (hi - lo) / 2;
		c = strcasecmp(al->v[al->byname[mid]].name, name);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < al->n && strcasecmp(al->v[al->byname[lo]].name, name) == 0)
		return &al->v[al->byname[lo]];
	return NULL;
}

/*
 * Separates the targets outbox cannot deliver to (|command, /file,
 * :include:, quoted or not) from the addresses, before they are parsed:
 * "|/usr/bin/procmail -a" is neither an address nor a reason to refuse
 * the whole file.
 */
static void
alias_split(struct alias *a)
{
	char		*v = a->value, *keep, *skip;
	const char	*item, *end;
	size_t		 n = strlen(v);

	keep = xcalloc(1, n + 1);
	skip = xcalloc(1, n + 1);
	for (item = v; *item != '\0'; item = end + (*end != '\0')) {
		end = unquoted(item, ',');
		item += strspn(item, " \t\"");
		if (*item == '|' || *item == '/' ||
		    strncasecmp(item, ":include:", 9) == 0) {
			const char *e = end;

			while (e > item && strchr(" \t\"", e[-1]) != NULL)
				e--;
			if (skip[0] != '\0')
				strlcat(skip, ", ", n + 1);
			strncat(skip, item, e - item);
		} else {
			if (keep[0] != '\0')
				strlcat(keep, ",", n + 1);
			strncat(keep, item - (item > v && item[-1] == '"'),
			    end - item + (item > v && item[-1] == '"'));
		}
	}
	free(a->value);
	a->value = keep;
	if (skip[0] != '\0')
		a->skipped = skip;
	else
		free(skip);
}

/* Warns once for each alias with targets outbox skips (newaliases). */
void
addr_aliases_warn(const struct aliases *al)
{
	size_t	i;

	for (i = 0; al != NULL && i < al->n; i++)
		if (al->v[i].skipped != NULL)
			warnx("%s:%d: %s: pipes, files and :include: are not "
			    "supported; skipped", al->path, al->v[i].line,
			    al->v[i].skipped);
}

/* Reads and checks an aliases file; NULL with err when it is bad. */
struct aliases *
addr_aliases_open(const char *path, char *err, size_t errlen)
{
	struct aliases	*al = xcalloc(1, sizeof(*al));

	if (aliases_load(al, path, err, errlen) == -1) {
		free(al);
		return NULL;
	}
	return al;
}

size_t
addr_aliases_size(const struct aliases *al)
{
	return al != NULL ? al->n : 0;
}

void
addr_aliases_close(struct aliases *al)
{
	if (al != NULL) {
		aliases_free(al);
		free(al);
	}
}

void
aliases_free(struct aliases *al)
{
	size_t	i;

	for (i = 0; i < al->n; i++) {
		free(al->v[i].name);
		free(al->v[i].value);
		free(al->v[i].skipped);
	}
	free(al->v);
	free(al->byname);
	free(al->path);
	memset(al, 0, sizeof(*al));
}

/*
 * Expands one address into x->out: aliases for local names (when
 * aliases, and x->al is set), then maildomain. At most RCPT_MAX
 * recipients come out, and a stop signal ends it.
 */
static int
expand(struct expansion *x, const char *a, int aliases, int depth)
{
	const struct aliases	*al = x->al;
	const struct alias	*v;
	struct strlist		 targets = { NULL, 0 };
	char			 full[ADDR_MAX + 2];
	size_t			 i, k;
	int			 rv = 0;

	if (stopping()) {
		snprintf(x->err, x->errlen, "stopped by signal %d while "
		    "expanding aliases", stopping());
		return -1;
	}
	if (aliases && al != NULL && addr_domain(a) == NULL &&
	    (v = alias_find(al, a)) != NULL) {
		i = v - al->v;
		if (x->state[i] == 2)
			return 0;	/* its recipients are in already */
		if (x->state[i] == 1) {
			err_at(x->err, x->errlen, al->path, v->line,
			    "alias loop through %s", a);
			return -1;
		}
		if (depth >= ALIAS_DEPTH) {
			err_at(x->err, x->errlen, al->path, v->line,
			    "aliases nested deeper than %d", ALIAS_DEPTH);
			return -1;
		}
		if (addr_parse_list(v->value, strlen(v->value), &targets,
		    x->err, x->errlen) == -1)
			return -1;
		if (v->skipped != NULL)
			warnx("%s:%d: %s: pipes, files and :include: "
			    "are not supported; skipped", al->path,
			    v->line, v->skipped);
		x->state[i] = 1;
		/* "root: root" delivers to root, no loop. */
		for (k = 0; k < targets.n && rv == 0; k++)
			rv = expand(x, targets.v[k], strcasecmp(targets.v[k],
			    a) != 0, depth + 1);
		x->state[i] = 2;
		strlist_free(&targets);
		return rv;
	}
	if (addr_domain(a) == NULL && x->maildomain != NULL) {
		if ((size_t)snprintf(full, sizeof(full), "%s@%s", a,
		    x->maildomain) >= sizeof(full)) {
			snprintf(x->err, x->errlen, "%s@%s: address too long",
			    a, x->maildomain);
			return -1;
		}
		a = full;
	}
	/* What an alias or maildomain made must hold as well. */
	if (addr_check(a, x->err, x->errlen) == -1)
		return -1;
	add_unique(x->out, a);
	if (x->out->n > RCPT_MAX) {
		snprintf(x->err, x->errlen, "more than %d recipients%s",
		    RCPT_MAX, al != NULL ? " (aliases expanded)" : "");
		return -1;
	}
	return 0;
}

/*
 * Resolves recipients: aliases (al may be NULL), then maildomain for bare
 * local names, then removes duplicates. Appends to out.
 */
int
addr_resolve(const struct strlist *in, const struct aliases *al,
    const char *maildomain, struct strlist *out, char *err, size_t errlen)
{
	struct expansion	 x;
	size_t			 i;
	int			 rv = 0;

	x.al = al;
	x.maildomain = maildomain;
	x.state = al != NULL ? xcalloc(al->n + 1, 1) : NULL;
	x.out = out;
	x.err = err;
	x.errlen = errlen;
	for (i = 0; i < in->n && rv == 0; i++) {
		rv = addr_check(in->v[i], err, errlen);
		if (rv == 0)
			rv = expand(&x, in->v[i], 1, 0);
	}
	free(x.state);
	return rv;
}

struct qualify {
	const char		*src;
	const struct aliases	*al;
	const char		*maildomain;
	char			*out;		/* the rewritten text so far */
	size_t			 len, copied;
	int			 changed, failed;
	char			*err;
	size_t			 errlen;
};

static void
out_add(struct qualify *q, const char *p, size_t n)
{
	q->out = xreallocarray(q->out, q->len + n + 1, 1);
	memcpy(q->out + q->len, p, n);
	q->len += n;
	q->out[q->len] = '\0';
}

/* Replaces a bare local name by what it resolves to. */
static void
qualify_one(void *arg, const char *a, size_t start, size_t end)
{
	struct qualify	*q = arg;
	struct strlist	 one = { (char **)(uintptr_t)&a, 1 };
	struct strlist	 to = { NULL, 0 };

	/* An open quote is no local name: -t refuses it, others leave it. */
	if (addr_domain(a) != NULL || quote_open(a) || q->failed)
		return;
	if (addr_resolve(&one, q->al, q->maildomain, &to, q->err, q->errlen)
	    == -1) {
		q->failed = 1;
		return;
	}
	out_add(q, q->src + q->copied, start - q->copied);
	if (to.n == 1)
		out_add(q, to.v[0], strlen(to.v[0]));
	else {
		/* Several targets do not fit one mailbox: just qualify. */
		out_add(q, a, strlen(a));
		out_add(q, "@", 1);
		out_add(q, q->maildomain, strlen(q->maildomain));
	}
	q->copied = end;
	q->changed = 1;
	strlist_free(&to);
}

/*
 * Qualifies the bare local names in a header's address list, as the
 * envelope does: "To: root" becomes "To: root@example.org", or the alias's
 * address when root has exactly one. Returns 1 with *out a new string, 0
 * if nothing changed, -1 with err.
 */
int
addr_qualify(const char *s, size_t len, const struct aliases *al,
    const char *maildomain, char **out, char *err, size_t errlen)
{
	struct qualify	q;

	memset(&q, 0, sizeof(q));
	q.src = s;
	q.al = al;
	q.maildomain = maildomain;
	q.err = err;
	q.errlen = errlen;
	if (parse(s, len, qualify_one, &q, err, errlen) == -1 || q.failed) {
		free(q.out);
		return -1;
	}
	if (!q.changed)
		return 0;
	out_add(&q, s + q.copied, len - q.copied);
	*out = q.out;
	return 1;
}
