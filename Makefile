# Makefile: the chatd toolkit. Plain GNU make and pkg-config.
#
#   make            build the four tools into build/
#   make run        start chatd in the foreground on 127.0.0.1:3000 (memory broker)
#   make test       build and run every test (unit + bats), ending "N passed, N failed"
#   make asan       build with AddressSanitizer + UBSan into build/asan/
#   make asan-test  run the whole suite against the sanitizer build
#   make install    PREFIX=/usr/local: binaries, man pages, bash completions, an example systemd unit
#
# A missing Debian package is installed (as root) or named (otherwise) by
# scripts/install-deps before anything is compiled.

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
BUILD   ?= build
CC      ?= cc
OPT     ?= -O2 -g
WERROR  ?= 1
SAN     ?=

TOOLS   := chatd chat-post chat-listen chat-bench
PKGS    := libwebsockets hiredis libcjson libcurl libuv libcrypto

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Winit-self \
           -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN    += -Werror
endif
ifneq ($(SAN),)
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN   := -fsanitize=address,undefined
endif

ifeq ($(filter clean help,$(MAKECMDGOALS)),)
include $(BUILD)/config.mk
endif

CPPFLAGS += -D_GNU_SOURCE -Ilib -I$(BUILD)
CFLAGS   += -std=c11 $(OPT) $(WARN) $(PKG_CFLAGS) -MMD -MP
LDFLAGS  += $(LDSAN)

LIB_SRC  := $(wildcard lib/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB_A    := $(BUILD)/libchat.a

chatd_SRC       := $(wildcard cmd/chatd/*.c)
chatd_OBJ       := $(chatd_SRC:%.c=$(BUILD)/%.o) $(BUILD)/page.o
# chatd's uv_poll_start (cmd/chatd/uvpoll.c) must be seen by lws' dlopened libuv plugin
chatd_LIBS      := -Wl,--export-dynamic-symbol=uv_poll_start -Wl,--export-dynamic-symbol=_lws_log $(LIBS_libwebsockets) $(LIBS_hiredis) $(LIBS_libcjson) $(LIBS_libuv) $(LIBS_libcrypto)
chat-post_OBJ   := $(patsubst %.c,$(BUILD)/%.o,$(wildcard cmd/chat-post/*.c))
chat-post_LIBS  := $(LIBS_libcurl) $(LIBS_libcjson)
chat-listen_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard cmd/chat-listen/*.c))
chat-listen_LIBS:= $(LIBS_libwebsockets) $(LIBS_libcjson)
chat-bench_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(wildcard cmd/chat-bench/*.c))
chat-bench_LIBS := $(LIBS_libwebsockets) $(LIBS_libcjson) -lpthread -lm

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

BINS := $(TOOLS:%=$(BUILD)/%)

.PHONY: all run test asan asan-test install uninstall clean help deps
all: $(BINS)

# Package flags, found once. Making this file first is what installs missing packages.
$(BUILD)/config.mk: scripts/install-deps
	@mkdir -p $(@D)
	@scripts/install-deps --check 2>/dev/null || scripts/install-deps
	@{ printf 'PKG_CFLAGS := %s\n' "$$(pkg-config --cflags $(PKGS))"; \
	   for p in $(PKGS); do printf 'LIBS_%s := %s\n' "$$p" "$$(pkg-config --libs $$p)"; done; \
	 } > $@.tmp && mv $@.tmp $@

deps: $(BUILD)/config.mk

$(BUILD)/%.o: %.c $(BUILD)/config.mk
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/page.c: cmd/chatd/page.html scripts/embed
	@mkdir -p $(@D)
	scripts/embed chatd_page < $< > $@

$(BUILD)/page.o: $(BUILD)/page.c
	$(CC) $(CPPFLAGS) -std=c11 $(OPT) -c -o $@ $<

$(LIB_A): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

.SECONDEXPANSION:
$(BINS): $(BUILD)/%: $$($$*_OBJ) $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $($*_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB_A) $(BUILD)/config.mk
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_A) $(LIBS_libcjson) $(LIBS_hiredis) $(LIBS_libuv) $(LIBS_libcrypto)

run: $(BUILD)/chatd
	$(BUILD)/chatd --listen 127.0.0.1:3000

test: $(BINS) $(UNIT_BIN)
	@BUILD=$(abspath $(BUILD)) scripts/run-tests

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=1 all

asan-test:
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=1 test

# Fuzzing (tests/fuzz/README): each libFuzzer target is built with clang, together with the
# lib sources it exercises compiled with the same instrumentation (not libchat.a, which is
# gcc-built without it), into build/fuzz/; `make fuzz` runs each for FUZZ_SECONDS on a copy
# of its seed corpus and fails if any crashes. Needs clang and libclang-rt-14-dev.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 20
FUZZ_CFLAGS  := -std=c11 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined $(WARN)
FUZZ_LIB     := lib/json.c lib/envelope.c lib/chan.c lib/url.c lib/utf8.c lib/err.c lib/auth.c
FUZZ_BINS    := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

.PHONY: fuzz
fuzz: $(FUZZ_BINS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/run-fuzz $(FUZZ_BINS)

$(FUZZ_BINS): $(BUILD)/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(FUZZ_LIB) $(wildcard lib/*.h) $(BUILD)/config.mk
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIB) $(LIBS_libcjson) $(LIBS_libcrypto)

# Bash completions go where bash-completion's loader looks for them; the systemd unit is an
# example (its ExecStart pointed at BINDIR), installed as documentation, not enabled.
COMPDIR ?= $(PREFIX)/share/bash-completion/completions
DOCDIR  ?= $(PREFIX)/share/doc/chatd

install: $(BINS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 \
		$(DESTDIR)$(COMPDIR) $(DESTDIR)$(DOCDIR)
	install -m 755 $(BINS) $(DESTDIR)$(BINDIR)/
	install -m 644 man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 man/*.7 $(DESTDIR)$(MANDIR)/man7/
	install -m 644 $(TOOLS:%=completions/%) $(DESTDIR)$(COMPDIR)/
	sed 's|/usr/local/bin/chatd|$(BINDIR)/chatd|' scripts/chatd.service >$(DESTDIR)$(DOCDIR)/chatd.service
	chmod 644 $(DESTDIR)$(DOCDIR)/chatd.service

uninstall:
	rm -f $(TOOLS:%=$(DESTDIR)$(BINDIR)/%)
	rm -f $(TOOLS:%=$(DESTDIR)$(MANDIR)/man1/%.1) $(DESTDIR)$(MANDIR)/man7/chat-protocol.7
	rm -f $(TOOLS:%=$(DESTDIR)$(COMPDIR)/%) $(DESTDIR)$(DOCDIR)/chatd.service
	rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true

clean:
	rm -rf build

help:
	@sed -n '3,10s/^# \{0,1\}//p' Makefile

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
