# lm: single-binary LLM inference. Targets: all test asan fuzz bench soak chat clean.
CC ?= cc
ifeq ($(origin CC),default)
CC := cc
endif
PORTABLE ?= 0
ifeq ($(PORTABLE),1)
ARCHFLAGS :=
else
ARCHFLAGS := -march=native
endif
WARN := -Wall -Wextra -Wshadow -Wno-unused-parameter
ifeq ($(CI),true)
WARN += -Werror
endif
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(ARCHFLAGS) -Iinclude -pthread -MMD -MP $(CFLAGS)
LDLIBS := -lm -pthread

BUILD ?= build
SRC := $(wildcard src/*.c src/cli/*.c)
LIB_SRC := $(filter-out src/main.c,$(SRC))
TEST_SRC := $(wildcard tests/*.c)
OBJ := $(SRC:%.c=$(BUILD)/%.o)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)

.PHONY: all test asan fuzz fuzz-run fuzz-replay corpus bench soak soak-valgrind chat clean model

all: lm

lm: $(BUILD)/lm
	cp $< $@

$(BUILD)/lm: $(OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test-runner: $(LIB_OBJ) $(TEST_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The whole suite: unit tests, then the CLI tests that run ./lm as a user would.
test: lm $(BUILD)/test-runner
	./$(BUILD)/test-runner $(T)

# Same suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its own build dir.
SAN_CFLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
asan:
	$(MAKE) BUILD=build-asan CFLAGS="$(SAN_CFLAGS)" build-asan/test-runner build-asan/lm
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 LM_BIN=build-asan/lm LM_TEST_QUICK=1 ./build-asan/test-runner $(T)

# Fuzzing (fuzz/README.md): libFuzzer harnesses built with clang into
# build-fuzz/; fuzz-run runs each for FUZZ_SECONDS on a scratch copy of its
# seeds in tests/corpus/NAME and fails on a finding; fuzz-replay runs every
# corpus file once under ASan/UBSan without libFuzzer; corpus rewrites the seeds.
FUZZ_TARGETS := gguf tokenizer cli template
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard fuzz/*.c)) $(BUILD)/tests/hostile_files.o
.SECONDARY: $(FUZZ_OBJ)

fuzz:
	$(MAKE) BUILD=build-fuzz CC=$(FUZZ_CC) CFLAGS="$(SAN_CFLAGS) -fsanitize=fuzzer-no-link" \
		$(FUZZ_TARGETS:%=build-fuzz/fuzz_%)

$(BUILD)/fuzz_%: $(BUILD)/fuzz/fuzz_%.o $(BUILD)/fuzz/common.o $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

$(BUILD)/replay_%: $(BUILD)/fuzz/fuzz_%.o $(BUILD)/fuzz/common.o $(BUILD)/fuzz/replay.o $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/make-corpus: $(BUILD)/fuzz/make_corpus.o $(BUILD)/fuzz/common.o $(BUILD)/tests/hostile_files.o $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

fuzz-run: fuzz
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p build-fuzz/corpus/$$t && \
		echo "fuzz_$$t: $(FUZZ_SECONDS) s" && \
		./build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
			-print_final_stats=1 -artifact_prefix=build-fuzz/$$t- -dict=fuzz/$$t.dict \
			build-fuzz/corpus/$$t tests/corpus/$$t 2>build-fuzz/fuzz_$$t.log || \
			{ tail -n 60 build-fuzz/fuzz_$$t.log; exit 1; }; \
		grep -E 'DONE|^stat::average_exec_per_sec' build-fuzz/fuzz_$$t.log; \
	done

fuzz-replay:
	$(MAKE) BUILD=build-asan CFLAGS="$(SAN_CFLAGS)" $(FUZZ_TARGETS:%=build-asan/replay_%)
	@for t in $(FUZZ_TARGETS); do \
		ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ./build-asan/replay_$$t tests/corpus/$$t || exit 1; \
	done

corpus: $(BUILD)/make-corpus
	rm -rf tests/corpus
	./$(BUILD)/make-corpus tests/corpus

model: models/default.gguf
models/default.gguf:
	./scripts/get-model.sh

chat: lm models/default.gguf
	./lm chat

# Tokens per second on the default model (see also scripts/ for llama.cpp side by side).
bench: lm models/default.gguf
	./lm bench

# Memory over a 300-turn chat and a 20,000-token run, one thread (about an
# hour and a half; scripts/soak.sh says what is measured). soak-valgrind: the
# shortened version under valgrind, built into build-valgrind/ without
# AVX-512, which valgrind cannot run. SOAK=... passes arguments (sections).
soak: lm models/default.gguf
	./scripts/soak.sh $(SOAK)

VG_ARCHFLAGS := $(if $(filter x86_64,$(shell uname -m)),-march=x86-64-v3,$(ARCHFLAGS))
soak-valgrind: models/default.gguf
	$(MAKE) BUILD=build-valgrind CFLAGS="-O2 -g" ARCHFLAGS="$(VG_ARCHFLAGS)" build-valgrind/lm
	LM=build-valgrind/lm ./scripts/soak.sh --valgrind $(SOAK)

clean:
	rm -rf build build-asan build-fuzz build-valgrind lm

-include $(OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(FUZZ_OBJ:.o=.d)
