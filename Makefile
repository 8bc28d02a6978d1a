# rotor -- build, deps, check, demo, bench.
#
#   make          release build: build/rotor
#   make deps     install missing Debian packages (needs root or sudo)
#   make check    deps + sanitizer build + every test; ends "N passed, N failed, N skipped"
#   make demo     deps + build + a real rotation on a throwaway repository
#   make bench    deps + benchmarks (tests/bench/)
#   make fuzz     clang + libFuzzer targets (tests/fuzz/), FUZZ_SECONDS each (default 60)

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
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
HDRS     := $(wildcard common/*.h reconcile/*/*.h gitops/*.h cmd/*.h tests/unit/*.h)

REL_OBJ  := $(patsubst %.c,build/rel/%.o,$(LIB_SRC) $(CMD_SRC))
SAN_LIB  := $(patsubst %.c,build/asan/%.o,$(LIB_SRC))
SAN_CMD  := $(patsubst %.c,build/asan/%.o,$(CMD_SRC))
UNIT_BIN := $(patsubst tests/unit/%.c,build/asan/tests/%,$(UNIT_SRC))

VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
# cmd/main.c prints VERSION: it is compiled again whenever VERSION changes.
VERSION_STAMP := build/version-$(VERSION)

# Debian packages: build, unit tests, schema agreement, e2e.
DEPS_BUILD := gcc make pkg-config git openssl libgit2-dev libssl-dev libyaml-dev libpq-dev \
              libssh2-1-dev libjansson-dev libcmocka-dev python3 python3-jsonschema python3-yaml
DEPS_FLEET := openssh-server openssh-client postgresql util-linux procps sudo iproute2 nginx-light pgbouncer systemd \
              libpostgresql-jdbc-java default-jre-headless default-jdk-headless
DEPS_BENCH := golang-cfssl time ansible-core
DEPS_FUZZ  := clang libclang-rt-dev

.PHONY: all deps deps-bench deps-fuzz check check-run unit demo bench fuzz fuzz-build fuzz-run clean install

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

$(VERSION_STAMP):
	@mkdir -p build
	@rm -f build/version-*
	@touch $@

build/rel/cmd/main.o build/asan/cmd/main.o: $(VERSION_STAMP)

build/asan/rotor: $(SAN_LIB) $(SAN_CMD)
	@echo "  LD asan $@"
	@$(CC) $(SAN) -o $@ $^ $(PKG_LIBS)

build/asan/tests/%: tests/unit/%.c $(SAN_LIB) $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  LD asan $@"
	@$(CC) $(BASEFLAGS) -O1 $(SAN) $(PKG_CFLAGS) -DROTOR_SRCDIR='"$(CURDIR)"' -o $@ $< $(SAN_LIB) $(PKG_LIBS) -lcmocka

# test_fuzz replays stored inputs through the fuzz targets' functions (built without libFuzzer).
build/asan/tests/test_fuzz: tests/unit/test_fuzz.c $(FUZZ_SRC) tests/fuzz/fuzz.h $(SAN_LIB) $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  LD asan $@"
	@$(CC) $(BASEFLAGS) -O1 $(SAN) $(PKG_CFLAGS) -DROTOR_SRCDIR='"$(CURDIR)"' -DFUZZ_NO_MAIN -o $@ $< $(FUZZ_SRC) $(SAN_LIB) $(PKG_LIBS) -lcmocka

# ---- fuzzing: clang's libFuzzer under ASan and UBSan (tests/fuzz/) ----
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZ_LIB_OBJ := $(patsubst %.c,build/fuzz/obj/%.o,$(LIB_SRC))
FUZZ_SPEC    := rotor chain hosts rotation manifest
FUZZ_OTHER   := pem lock pgreply tlsreply remote savedplan sftpreply
FUZZ_BIN     := $(addprefix build/fuzz/fuzz_,$(FUZZ_SPEC) $(FUZZ_OTHER))

build/fuzz/obj/%.o: %.c $(HDRS) Makefile
	@mkdir -p $(dir $@)
	@echo "  CC fuzz $<"
	@$(FUZZ_CC) $(BASEFLAGS) -O1 -fsanitize=fuzzer-no-link $(FUZZ_SAN) $(PKG_CFLAGS) -DROTOR_VERSION='"$(VERSION)"' -c $< -o $@

# An archive, so each target links only the library objects it needs.
build/fuzz/librotor.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(addprefix build/fuzz/fuzz_,$(FUZZ_SPEC)): build/fuzz/fuzz_%: tests/fuzz/fuzz_spec.c tests/fuzz/fuzz.h build/fuzz/librotor.a
	@echo "  LD fuzz $@"
	@$(FUZZ_CC) $(BASEFLAGS) -O1 -fsanitize=fuzzer $(FUZZ_SAN) $(PKG_CFLAGS) \
		-DFUZZ_SPEC_KIND=FUZZ_$(shell echo $* | tr a-z A-Z) -o $@ $< build/fuzz/librotor.a $(PKG_LIBS)

$(addprefix build/fuzz/fuzz_,$(FUZZ_OTHER)): build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h build/fuzz/librotor.a
	@echo "  LD fuzz $@"
	@$(FUZZ_CC) $(BASEFLAGS) -O1 -fsanitize=fuzzer $(FUZZ_SAN) $(PKG_CFLAGS) -o $@ $< build/fuzz/librotor.a $(PKG_LIBS)

fuzz-build: $(FUZZ_BIN)

fuzz: deps-fuzz
	@$(MAKE) --no-print-directory fuzz-run

fuzz-run: fuzz-build
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_SPEC) $(FUZZ_OTHER)

deps:
	@sh tests/deps.sh $(DEPS_BUILD) $(DEPS_FLEET)

deps-bench:
	@sh tests/deps.sh $(DEPS_BUILD) $(DEPS_FLEET) $(DEPS_BENCH)

deps-fuzz:
	@sh tests/deps.sh $(DEPS_BUILD) $(DEPS_FUZZ)

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
