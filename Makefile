# rotor -- build, deps, check, demo, bench.
#
#   make          release build: build/rotor
#   make deps     install missing Debian packages (needs root or sudo)
#   make check    deps + sanitizer build + every test; ends "N passed, N failed, N skipped"
#   make demo     deps + build + a real rotation on a throwaway repository
#   make bench    deps + benchmarks (tests/bench/)

PKGS      := libgit2 openssl yaml-0.1 libssh2 jansson
CC        ?= cc
WARN      := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wvla -Wstrict-prototypes
BASEFLAGS := -std=c11 $(WARN) -D_POSIX_C_SOURCE=200809L -g -I.
OPT       ?= -O2
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
SAN       := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

LIB_SRC  := $(sort $(wildcard common/*.c reconcile/*/*.c gitops/*.c))
CMD_SRC  := $(sort $(wildcard cmd/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
HDRS     := $(wildcard common/*.h reconcile/*/*.h gitops/*.h cmd/*.h tests/unit/*.h)

REL_OBJ  := $(patsubst %.c,build/rel/%.o,$(LIB_SRC) $(CMD_SRC))
SAN_LIB  := $(patsubst %.c,build/asan/%.o,$(LIB_SRC))
SAN_CMD  := $(patsubst %.c,build/asan/%.o,$(CMD_SRC))
UNIT_BIN := $(patsubst tests/unit/%.c,build/asan/tests/%,$(UNIT_SRC))

VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

# Debian packages: build, unit tests, schema agreement, e2e.
DEPS_BUILD := gcc make pkg-config git openssl libgit2-dev libssl-dev libyaml-dev libpq-dev \
              libssh2-1-dev libjansson-dev libcmocka-dev python3 python3-jsonschema python3-yaml
DEPS_FLEET := openssh-server openssh-client postgresql util-linux procps sudo iproute2
DEPS_BENCH := golang-cfssl time ansible-core

.PHONY: all deps deps-bench check check-run unit demo bench clean install

all: build/rotor

build/rotor: $(REL_OBJ)
	@echo "  LD      $@"
	@$(CC) $(OPT) -o $@ $(REL_OBJ) $(PKG_LIBS)

build/rel/%.o: %.c $(HDRS) Makefile
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(BASEFLAGS) $(OPT) $(PKG_CFLAGS) -DROTOR_VERSION='"$(VERSION)"' -c $< -o $@

build/asan/%.o: %.c $(HDRS) Makefile
	@mkdir -p $(dir $@)
	@echo "  CC asan $<"
	@$(CC) $(BASEFLAGS) -O1 $(SAN) $(PKG_CFLAGS) -DROTOR_VERSION='"$(VERSION)"' -c $< -o $@

build/asan/rotor: $(SAN_LIB) $(SAN_CMD)
	@echo "  LD asan $@"
	@$(CC) $(SAN) -o $@ $^ $(PKG_LIBS)

build/asan/tests/%: tests/unit/%.c $(SAN_LIB) $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  LD asan $@"
	@$(CC) $(BASEFLAGS) -O1 $(SAN) $(PKG_CFLAGS) -DROTOR_SRCDIR='"$(CURDIR)"' -o $@ $< $(SAN_LIB) $(PKG_LIBS) -lcmocka

deps:
	@sh tests/deps.sh $(DEPS_BUILD) $(DEPS_FLEET)

deps-bench:
	@sh tests/deps.sh $(DEPS_BUILD) $(DEPS_FLEET) $(DEPS_BENCH)

# Re-enter make after deps so pkg-config sees freshly installed packages.
check: deps
	@$(MAKE) --no-print-directory check-run

check-run: build/rotor build/asan/rotor $(UNIT_BIN)
	@sh tests/run.sh

unit: build/asan/rotor $(UNIT_BIN)
	@sh tests/run.sh unit

demo: deps
	@$(MAKE) --no-print-directory build/rotor
	@sh tests/demo.sh

bench: deps-bench
	@$(MAKE) --no-print-directory build/rotor
	@sh tests/bench/run.sh

install: build/rotor
	install -D -m 0755 build/rotor $(DESTDIR)$(or $(PREFIX),/usr/local)/bin/rotor

clean:
	rm -rf build
