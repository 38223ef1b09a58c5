# SPDX-License-Identifier: ISC
# outbox: a sendmail-compatible mail submission client.
SHELL	 = /bin/bash
PREFIX	?= /usr/local
SBINDIR	?= $(PREFIX)/sbin
BINDIR	?= $(PREFIX)/bin
MANDIR	?= $(PREFIX)/share/man
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
LOCALSTATEDIR ?= /var
# systemd reads units from /usr/lib/systemd/system (Debian 12 and 13; 13's
# lintian refuses /lib, an alias of /usr/lib there) and from
# /usr/local/lib/systemd/system. cron reads only /etc/cron.d: with another
# prefix the line stays under it, for the administrator to copy.
UNITDIR	?= $(PREFIX)/lib/systemd/system
CRONDIR	?= $(SYSCONFDIR)/cron.d
GROUP	?= outbox

CC	?= cc
WERROR	?= -Werror
PKGS	 = openssl libbsd-overlay jansson
CFLAGS	?= -O2 -g
WARN	 = -Wall -Wextra -Wshadow -Wpointer-arith -Wcast-qual -Wformat=2 \
	   -Wstrict-prototypes -Wmissing-prototypes -Wmissing-declarations
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(WERROR) -D_FORTIFY_SOURCE=2 \
	   -fstack-protector-strong -DSYSCONFDIR='"$(SYSCONFDIR)"' \
	   -DLOCALSTATEDIR='"$(LOCALSTATEDIR)"' \
	   $(shell pkg-config --cflags $(PKGS)) $(CFLAGS)
LIBS	 = $(shell pkg-config --libs $(PKGS))

OBJS	 = util.o log.o priv.o config.o provider.o secretfile.o secret.o message.o render.o addr.o smtp.o smtpio.o smtptx.o smtpauth.o smtplimits.o io.o tls.o auth.o \
	   queue.o qenv.o qhold.o qsweep.o qroom.o deliver.o submit.o runner.o limits.o caller.o dsn.o json.o smtpd.o check.o http.o jwt.o oauth2.o oauth2state.o

all: outbox

# The paths compiled in: rewritten only when they change, and every object
# depends on it, so `make PREFIX=/usr install` after `make` rebuilds.
paths.stamp: FORCE
	@echo '$(SYSCONFDIR) $(LOCALSTATEDIR)' | cmp -s - $@ || \
	    echo '$(SYSCONFDIR) $(LOCALSTATEDIR)' >$@
FORCE:

sendmail.o $(OBJS) tests/unit.o: paths.stamp

outbox: sendmail.o $(OBJS)
	$(CC) $(LDFLAGS) -o $@ sendmail.o $(OBJS) $(LIBS)

tests/unit: tests/unit.o $(OBJS)
	$(CC) $(LDFLAGS) -o $@ tests/unit.o $(OBJS) $(LIBS)

.c.o:
	@echo "  CC $<"; $(CC) $(ALL_CFLAGS) -I. -MMD -MP -c -o $@ $<

-include *.d tests/*.d

# The packages first (tests/deps.sh), then the build, then the suite. A
# skipped check fails it unless ALLOW_SKIP=1 (tests/run.sh).
ALLOW_SKIP ?= $(OUTBOX_ALLOW_SKIP)
check:
	@bash tests/deps.sh
	@$(MAKE) --no-print-directory outbox tests/unit
	OUTBOX_ALLOW_SKIP=$(ALLOW_SKIP) bash tests/run.sh

# The suite again with ASan+UBSan in outbox and the unit tests; any
# report fails it (tests/run.sh).
check-asan:
	$(MAKE) clean
	$(MAKE) CC=clang CFLAGS="-O1 -g -fsanitize=address,undefined \
	    -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	    LDFLAGS="-fsanitize=address,undefined" outbox tests/unit
	ASAN=1 bash tests/run.sh; rc=$$?; $(MAKE) clean; exit $$rc

# The suite again with every outbox run under valgrind.
check-valgrind: outbox tests/unit
	OUTBOX_WRAPPER=tests/valgrind.sh bash tests/run.sh

# libFuzzer targets (clang); each runs FUZZ_TIME seconds from its corpus.
# make -j2 fuzz runs two at once (each with its own FUZZ_TIME).
FUZZ_TIME ?= 60
FUZZERS	 = addr header reply config queue token
FUZZ_SRCS = $(OBJS:.o=.c)
fuzz: $(FUZZERS:%=fuzz-%)
fuzz-%:
	@mkdir -p tests/fuzz/bin tests/fuzz/work/$*
	@clang -std=c11 -D_GNU_SOURCE -g -O1 -I. \
	    -DSYSCONFDIR='"/nonexistent"' -DLOCALSTATEDIR='"/nonexistent"' \
	    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    $(shell pkg-config --cflags $(PKGS)) -o tests/fuzz/bin/$* \
	    tests/fuzz/fuzz_$*.c $(FUZZ_SRCS) $(LIBS)
	@echo "== fuzz $* ($(FUZZ_TIME) s)"; \
	tests/fuzz/bin/$* -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	    -timeout=10 -rss_limit_mb=2048 tests/fuzz/work/$* \
	    tests/fuzz/corpus/$* 2>&1 | grep -E '^(#|stat::|==|SUMMARY|INFO: Seed)' | \
	    grep -vE 'NEW|REDUCE|pulse' | tail -12; \
	[ $${PIPESTATUS[0]} -eq 0 ]

demo:
	bash tests/demo.sh

# outbox against Debian's msmtp, side by side; not a test (bench/RESULTS.md).
bench: outbox
	bash bench/run.sh

lint:
	mandoc -Tlint -W warning man/outbox.8 man/outbox.conf.5

# Static analysis with the checks we keep clean. Left out: clang-tidy's
# va_list check (false positives on glibc's va_list with clang 14), the
# widening and swappable-parameter style checks, and unused printf
# results (cert-err33-c).
SPACE	 = $(subst ,, )
TIDY_CHECKS = -*,bugprone-*,cert-*,clang-analyzer-*,\
	-bugprone-easily-swappable-parameters,-bugprone-reserved-identifier,\
	-bugprone-narrowing-conversions,-bugprone-implicit-widening-of-multiplication-result,\
	-bugprone-branch-clone,-bugprone-not-null-terminated-result,\
	-cert-err33-c,-cert-err34-c,-cert-dcl37-c,-cert-dcl51-cpp,\
	-clang-analyzer-valist.Uninitialized,\
	-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling
analyze:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
	    --std=c11 --inline-suppr --suppress=missingIncludeSystem \
	    -D_GNU_SOURCE -DSYSCONFDIR='"/etc"' -I. *.c
	clang-tidy --quiet --warnings-as-errors='*' \
	    -checks='$(subst $(SPACE),,$(TIDY_CHECKS))' *.c -- \
	    -std=c11 -D_GNU_SOURCE -DSYSCONFDIR='"/etc"' -DLOCALSTATEDIR='"/var"' \
	    -I. $(shell pkg-config --cflags $(PKGS)) 2>&1 | grep -v 'warnings generated'; \
	    exit $${PIPESTATUS[0]}

# What the Debian package ships, PREFIX-relative: the binary, the man
# pages, the queue's systemd units and cron line with this build's paths,
# and the configuration template unless a configuration is there.
SEDPATHS = sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	   -e 's|@LOCALSTATEDIR@|$(LOCALSTATEDIR)|g'
install: outbox
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(CRONDIR) \
	    $(DESTDIR)$(SYSCONFDIR)
	install -m 755 outbox $(DESTDIR)$(SBINDIR)/outbox
	install -m 644 man/outbox.8 $(DESTDIR)$(MANDIR)/man8/outbox.8
	install -m 644 man/outbox.conf.5 $(DESTDIR)$(MANDIR)/man5/outbox.conf.5
	for u in outbox-queue.service outbox-queue.timer; do \
	    $(SEDPATHS) contrib/$$u >$(DESTDIR)$(UNITDIR)/$$u && \
	    chmod 644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	$(SEDPATHS) contrib/outbox.cron >$(DESTDIR)$(CRONDIR)/outbox
	chmod 644 $(DESTDIR)$(CRONDIR)/outbox
	[ -e $(DESTDIR)$(SYSCONFDIR)/outbox.conf ] || \
	    install -m 640 contrib/outbox.conf.sample \
	    $(DESTDIR)$(SYSCONFDIR)/outbox.conf

# The shared install: any user may send through the system account, no
# user can read its secret or another user's queued mail (README: threat
# model). Needs root and the group $(GROUP); it never creates users or
# groups: it says which command would, and stops.
install-setgid: install
	@getent group $(GROUP) >/dev/null || { \
	    echo "install-setgid: no group $(GROUP); create it first" \
	        "(groupadd --system $(GROUP)), then run this again"; exit 1; }
	chown root:$(GROUP) $(DESTDIR)$(SBINDIR)/outbox \
	    $(DESTDIR)$(SYSCONFDIR)/outbox.conf
	chmod 2755 $(DESTDIR)$(SBINDIR)/outbox
	chmod 640 $(DESTDIR)$(SYSCONFDIR)/outbox.conf
	install -d -o root -g $(GROUP) -m 2770 \
	    $(DESTDIR)$(LOCALSTATEDIR)/spool/outbox

# sendmail in SBINDIR, mailq and newaliases in BINDIR (and /usr/lib/sendmail
# with PREFIX=/usr), links to outbox, with their man page aliases. A file
# there that is not a link to outbox, dangling or not, is kept unless FORCE=1.
CMDLINKS = $(SBINDIR)/sendmail $(BINDIR)/mailq $(BINDIR)/newaliases \
	   $(if $(filter /usr,$(PREFIX)),$(PREFIX)/lib/sendmail)
MANLINKS = man8/sendmail.8 man1/mailq.1 man8/newaliases.8
install-links: install
	@for t in $(CMDLINKS); do \
	    d=$(DESTDIR)$$t; \
	    if { [ -e "$$d" ] || [ -L "$$d" ]; } && \
	        ! case $$(readlink "$$d") in outbox|$(SBINDIR)/outbox) ;; \
	        *) false ;; esac && [ -z "$(FORCE)" ]; then \
	        echo "$$d exists and is not outbox; kept (make install-links FORCE=1 replaces it)"; \
	        exit 1; \
	    fi; \
	done
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(if $(filter /usr,$(PREFIX)),$(DESTDIR)$(PREFIX)/lib)
	for t in $(CMDLINKS); do ln -sfn $(SBINDIR)/outbox $(DESTDIR)$$t || exit 1; done
	for m in $(MANLINKS); do \
	    ln -sfn ../man8/outbox.8 $(DESTDIR)$(MANDIR)/$$m || exit 1; done

# Keeps the configuration, and any queue.
uninstall:
	for t in $(CMDLINKS); do \
	    case $$(readlink $(DESTDIR)$$t) in outbox|$(SBINDIR)/outbox) \
	        rm -f $(DESTDIR)$$t ;; esac; \
	done; true
	for m in $(MANLINKS); do \
	    [ "$$(readlink $(DESTDIR)$(MANDIR)/$$m)" = ../man8/outbox.8 ] && \
	        rm -f $(DESTDIR)$(MANDIR)/$$m; \
	done; true
	rm -f $(DESTDIR)$(SBINDIR)/outbox $(DESTDIR)$(MANDIR)/man8/outbox.8 \
	    $(DESTDIR)$(MANDIR)/man5/outbox.conf.5 \
	    $(DESTDIR)$(UNITDIR)/outbox-queue.service \
	    $(DESTDIR)$(UNITDIR)/outbox-queue.timer $(DESTDIR)$(CRONDIR)/outbox

# Builds the Debian package and installs, upgrades and purges it in a
# throwaway Debian 12 root (tests/package.sh; minutes, needs root).
check-package:
	bash tests/package.sh

clean:
	rm -f outbox tests/unit *.o *.d tests/*.o tests/*.d paths.stamp
	rm -rf tests/fuzz/bin tests/fuzz/work

.PHONY: all FORCE check-package check check-asan check-valgrind fuzz demo bench lint analyze install \
	install-setgid install-links uninstall clean
