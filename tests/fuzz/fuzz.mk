# Builds the libFuzzer targets with clang into build-fuzz/: the gateway (all
# of gateway/ but main.c) instrumented for coverage, ASan and UBSan, packed in
# an archive so each target links only the objects it uses. Run from the
# repository root:  make -f tests/fuzz/fuzz.mk   (tests/fuzz/run.sh does).

FUZZ_CC    ?= clang
BUILD_FUZZ ?= build-fuzz
# the same libraries as the main build, whatever they become
PKGS       := $(shell sed -n 's/^PKGS *:= *//p' Makefile)
SAN        := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
CFLAGS     := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
              -O1 -g -Iinclude $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(SAN)
LDLIBS     := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

# every tests/fuzz/fuzz_*.c is a target
TARGETS  := $(basename $(notdir $(wildcard tests/fuzz/fuzz_*.c)))
GW_SRC   := $(filter-out gateway/main.c,$(wildcard gateway/*.c))
LIB_OBJ  := $(GW_SRC:gateway/%.c=$(BUILD_FUZZ)/obj/%.o) \
            $(BUILD_FUZZ)/obj/fuzzenv.o $(BUILD_FUZZ)/obj/fuzzcheck.o
LIB      := $(BUILD_FUZZ)/libpushgw-fuzz.a
BINS     := $(TARGETS:%=$(BUILD_FUZZ)/%)

.PHONY: all
all: $(BINS)

$(BUILD_FUZZ)/obj/%.o: gateway/%.c $(wildcard include/pushgw/*.h gateway/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(BUILD_FUZZ)/obj/%.o: tests/fuzz/%.c $(wildcard tests/fuzz/*.h include/pushgw/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The archive comes after the target's own object: a target that defines a
# gateway symbol itself (fuzz_fcm_response's stand-in h2pool_send) keeps the
# real one out.
$(BUILD_FUZZ)/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h) $(LIB)
	$(FUZZ_CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $< $(LIB) $(LDLIBS)
