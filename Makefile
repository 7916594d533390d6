# pushgw — GNU make. `make` builds, `make run` starts a demo, `make test` runs
# everything (installing missing Debian packages first), `make bench` measures.

CC      ?= cc
PKGS    := libmicrohttpd libnghttp2 openssl jansson libjwt sqlite3 libcurl gnutls libpq sofia-sip-ua
BUILD   ?= build
SAN     ?=
OPT     ?= -O2
CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
           $(OPT) -g -Iinclude $(SAN) $(EXTRA_CFLAGS)
LDFLAGS := $(SAN)
# sofia-sip's headers are not -Wextra clean: include them as system headers.
PKG_CFLAGS = $(shell pkg-config --cflags $(filter-out sofia-sip-ua,$(PKGS)) 2>/dev/null) \
             $(shell pkg-config --cflags-only-I sofia-sip-ua 2>/dev/null | sed 's/-I/-isystem /g')
LDLIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

GW_SRC   := $(wildcard gateway/*.c)
GW_OBJ   := $(GW_SRC:gateway/%.c=$(BUILD)/obj/%.o)
LIB_OBJ  := $(filter-out $(BUILD)/obj/main.o,$(GW_OBJ))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
SIM_SRC  := $(wildcard tests/sim/*.c)
SIM_OBJ  := $(SIM_SRC:tests/sim/%.c=$(BUILD)/sim/%.o)

.PHONY: all deps run test unit unit-bins integration asan valgrind bench soak fuzz clean format

all: $(BUILD)/pushgw $(BUILD)/pushsim

deps:
	@scripts/deps.sh

$(BUILD)/obj/%.o: gateway/%.c $(wildcard include/pushgw/*.h gateway/*.h) | deps-quiet
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(BUILD)/pushgw: $(GW_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/sim/%.o: tests/sim/%.c $(wildcard tests/sim/*.h) | deps-quiet
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Itests/sim -c $< -o $@

$(BUILD)/pushsim: $(SIM_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/check.h $(LIB_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests/unit -o $@ $< $(LIB_OBJ) $(LDFLAGS) $(LDLIBS)

# Installs nothing when everything is there; quiet so builds stay readable.
.PHONY: deps-quiet
deps-quiet:
	@scripts/deps.sh --quiet build

run: deps all
	@scripts/run.sh

unit-bins: $(UNIT_BIN)

unit: $(UNIT_BIN)
	@scripts/run-unit.sh $(UNIT_BIN)

test: deps
	@scripts/test.sh

asan:
	$(MAKE) BUILD=build-asan SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" OPT=-O1 all unit-bins

bench: all
	@bench/run.sh

# Ten minutes of load with an upstream fault every 30 s (not part of make test).
soak: all
	@tests/soak/run.sh

# libFuzzer targets (clang) in build-fuzz/: FUZZ_SECONDS (60) each, or a
# short smoke run of every target; see tests/fuzz/run.sh.
fuzz:
	@tests/fuzz/run.sh --seconds $(or $(FUZZ_SECONDS),60)

.PHONY: fuzz-smoke
fuzz-smoke:
	@tests/fuzz/run.sh --smoke

clean:
	rm -rf build build-asan build-fuzz

format:
	clang-format -i gateway/*.c include/pushgw/*.h tests/unit/*.c tests/sim/*.c
