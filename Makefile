# outbox: a sendmail-compatible mail submission client.
SHELL	 = /bin/bash
PREFIX	?= /usr/local
BINDIR	?= $(PREFIX)/sbin
MANDIR	?= $(PREFIX)/share/man
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
LOCALSTATEDIR ?= /var

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

OBJS	 = util.o priv.o config.o message.o render.o addr.o smtp.o io.o tls.o auth.o \
	   queue.o deliver.o smtpd.o check.o http.o jwt.o oauth2.o
LINKS	 = sendmail mailq newaliases

all: outbox

outbox: sendmail.o $(OBJS)
	$(CC) $(LDFLAGS) -o $@ sendmail.o $(OBJS) $(LIBS)

tests/unit: tests/unit.o $(OBJS)
	$(CC) $(LDFLAGS) -o $@ tests/unit.o $(OBJS) $(LIBS)

.c.o:
	@echo "  CC $<"; $(CC) $(ALL_CFLAGS) -I. -MMD -MP -c -o $@ $<

-include *.d tests/*.d

check: outbox tests/unit
	@bash tests/deps.sh
	bash tests/run.sh

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
FUZZ_TIME ?= 60
FUZZERS	 = addr header reply config token
FUZZ_SRCS = $(OBJS:.o=.c)
fuzz:
	@mkdir -p tests/fuzz/bin
	@for f in $(FUZZERS); do \
	    clang -std=c11 -D_GNU_SOURCE -g -O1 -I. \
	        -DSYSCONFDIR='"/nonexistent"' -DLOCALSTATEDIR='"/nonexistent"' \
	        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	        $(shell pkg-config --cflags $(PKGS)) -o tests/fuzz/bin/$$f \
	        tests/fuzz/fuzz_$$f.c $(FUZZ_SRCS) $(LIBS) || exit 1; \
	done
	@for f in $(FUZZERS); do \
	    mkdir -p tests/fuzz/work/$$f; \
	    echo "== fuzz $$f ($(FUZZ_TIME) s)"; \
	    tests/fuzz/bin/$$f -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	        -timeout=10 -rss_limit_mb=2048 tests/fuzz/work/$$f \
	        tests/fuzz/corpus/$$f 2>&1 | grep -E '^(#|stat::|==|SUMMARY|INFO: Seed)' | \
	        grep -vE 'NEW|REDUCE|pulse' | tail -12; \
	    [ $${PIPESTATUS[0]} -eq 0 ] || exit 1; \
	done

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

install: outbox
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(MANDIR)/man5
	install -m 755 outbox $(DESTDIR)$(BINDIR)/outbox
	install -m 644 man/outbox.8 $(DESTDIR)$(MANDIR)/man8/outbox.8
	install -m 644 man/outbox.conf.5 $(DESTDIR)$(MANDIR)/man5/outbox.conf.5

# The shared install: any user may send through the system account, no
# user can read its secret or another user's queued mail (README: threat
# model). Needs root; creates the group outbox.
install-setgid: install
	getent group outbox >/dev/null || groupadd -r outbox
	chown root:outbox $(DESTDIR)$(BINDIR)/outbox
	chmod 2755 $(DESTDIR)$(BINDIR)/outbox
	install -d -o root -g outbox -m 2770 \
	    $(DESTDIR)$(LOCALSTATEDIR)/spool/outbox
	install -d $(DESTDIR)$(SYSCONFDIR)
	[ -e $(DESTDIR)$(SYSCONFDIR)/outbox.conf ] || \
	    install -o root -g outbox -m 640 contrib/outbox.conf.sample \
	    $(DESTDIR)$(SYSCONFDIR)/outbox.conf

# Links sendmail, mailq and newaliases to outbox; a file that is not ours
# is kept unless FORCE=1.
install-links: install
	@for l in $(LINKS); do \
	    t=$(DESTDIR)$(BINDIR)/$$l; \
	    if [ -e "$$t" ] && [ "$$(readlink "$$t")" != outbox ] && \
	        [ -z "$(FORCE)" ]; then \
	        echo "$$t exists and is not outbox; kept (make install-links FORCE=1 replaces it)"; \
	        exit 1; \
	    fi; \
	    ln -sf outbox "$$t"; \
	done

uninstall:
	for l in $(LINKS); do \
	    t=$(DESTDIR)$(BINDIR)/$$l; \
	    [ "$$(readlink "$$t")" = outbox ] && rm -f "$$t"; \
	done; true
	rm -f $(DESTDIR)$(BINDIR)/outbox $(DESTDIR)$(MANDIR)/man8/outbox.8 \
	    $(DESTDIR)$(MANDIR)/man5/outbox.conf.5

clean:
	rm -f outbox tests/unit *.o *.d tests/*.o tests/*.d
	rm -rf tests/fuzz/bin tests/fuzz/work

.PHONY: all check check-asan check-valgrind fuzz demo bench lint analyze install \
	install-setgid install-links uninstall clean
