# lm: single-binary LLM inference. Targets: all test test-repeat asan tsan neon-test fuzz bench soak chat clean.
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
# make OPENBLAS=1: f32 weights' batches through OpenBLAS's sgemm (Debian:
# libopenblas-dev), built in a directory of its own. Off by default.
OPENBLAS ?= 0
ifeq ($(OPENBLAS),1)
ALL_CFLAGS += -DLM_OPENBLAS
LDLIBS += -lopenblas
BUILD ?= build-openblas
endif

BUILD ?= build
SRC := $(wildcard src/*.c src/*/*.c)
LIB_SRC := $(filter-out src/main.c,$(SRC))
TEST_SRC := $(wildcard tests/*.c)
OBJ := $(SRC:%.c=$(BUILD)/%.o)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)

.PHONY: all lm test test-repeat asan tsan neon-test fuzz fuzz-run fuzz-replay corpus bench soak soak-valgrind chat clean model FORCE

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

# The commit lm bench reports, as llama-bench does (short hash and commit
# count, "unknown" and 0 outside git); the header is rewritten only when
# they change, so a new commit rebuilds bench.o and nothing else.
$(BUILD)/build-info.h: FORCE
	@mkdir -p $(BUILD)
	@c=$$(git rev-parse --short HEAD 2>/dev/null || echo unknown); n=$$(git rev-list --count HEAD 2>/dev/null || echo 0); \
	printf '#define LM_BUILD_COMMIT "%s"\n#define LM_BUILD_NUMBER %s\n' "$$c" "$$n" >$@.tmp; \
	if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; fi
$(BUILD)/src/cli/bench.o: $(BUILD)/build-info.h
$(BUILD)/src/cli/bench.o: ALL_CFLAGS += -I$(BUILD)

# The tiny models of tests/test_arch.c (llama.cpp's logits on them are in
# tests/data/arch): made from their seeded generator, byte for byte the
# files the references were made from, never committed. Without the gguf
# Python package the suite still runs, and the tests that need them fail.
ARCH_MODELS := build/arch-models/.made
$(ARCH_MODELS): scripts/make-arch-models.py
	@mkdir -p $(dir $@)
	@python3 scripts/make-arch-models.py $(dir $@) >/dev/null && touch $@ || \
		echo "warning: cannot make the architecture test models (pip install gguf numpy)" >&2

# The whole suite: unit tests, then the CLI tests that run ./lm as a user would.
test: lm $(BUILD)/test-runner $(ARCH_MODELS)
	./$(BUILD)/test-runner $(T)

# The suite N times in a row (default 20); stops at the first failing run.
N ?= 20
test-repeat: lm $(BUILD)/test-runner $(ARCH_MODELS)
	@for i in $$(seq $(N)); do \
		./$(BUILD)/test-runner $(T) >$(BUILD)/test-repeat.log 2>&1 || \
			{ tail -n 40 $(BUILD)/test-repeat.log; echo "run $$i of $(N) failed"; exit 1; }; \
		echo "run $$i: $$(tail -n 1 $(BUILD)/test-repeat.log)"; \
	done

# The suite under ThreadSanitizer (pool, forward pass with 1-4 threads, the
# CLI with its default threads); any report fails the run.
TSAN_CFLAGS := -O1 -g -fsanitize=thread -fno-omit-frame-pointer
tsan: $(ARCH_MODELS)
	$(MAKE) BUILD=build-tsan CFLAGS="$(TSAN_CFLAGS)" build-tsan/test-runner build-tsan/lm
	TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" LM_BIN=build-tsan/lm LM_TEST_QUICK=1 ./build-tsan/test-runner $(T)

# Same suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its own build dir.
SAN_CFLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
asan: $(ARCH_MODELS)
	$(MAKE) BUILD=build-asan CFLAGS="$(SAN_CFLAGS)" build-asan/test-runner build-asan/lm
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 LM_BIN=build-asan/lm LM_TEST_QUICK=1 ./build-asan/test-runner $(T)

# The NEON kernels from an x86-64 host: the test runner cross-compiled for
# AArch64 (static, so qemu needs no target libraries) and run under qemu-user,
# once with the dotprod extension and once as plain ARMv8.0 NEON on a CPU
# without it (Cortex-A72). The tests that run kernels (NEON_TESTS, or T): quants,
# ops, the forward pass in every weight format, and the thread pool (AArch64's
# own atomics and spin hint). LM_TEST_SIMD makes the run fail if a build fell
# back to the scalar kernels.
NEON_CC ?= aarch64-linux-gnu-gcc
NEON_QEMU ?= qemu-aarch64
NEON_TESTS ?= quants_ ops_ model_ pool_
NEON_BUILD = CC=$(NEON_CC) LDLIBS="-static -lm -pthread"
neon-test:
	$(MAKE) $(NEON_BUILD) BUILD=build-neon ARCHFLAGS=-march=armv8.2-a+dotprod build-neon/test-runner
	LM_TEST_QUICK=1 LM_TEST_SIMD=neon+dotprod $(NEON_QEMU) -cpu max ./build-neon/test-runner $(or $(T),$(NEON_TESTS))
	$(MAKE) $(NEON_BUILD) BUILD=build-neon-v8 ARCHFLAGS=-march=armv8-a build-neon-v8/test-runner
	LM_TEST_QUICK=1 LM_TEST_SIMD=neon $(NEON_QEMU) -cpu cortex-a72 ./build-neon-v8/test-runner $(or $(T),$(NEON_TESTS))

# Fuzzing (fuzz/README.md): libFuzzer harnesses built with clang into
# build-fuzz/; fuzz-run runs each for FUZZ_SECONDS on a scratch copy of its
# seeds in tests/corpus/NAME and fails on a finding; fuzz-replay runs every
# corpus file once under ASan/UBSan without libFuzzer; corpus rewrites the seeds.
FUZZ_TARGETS := gguf tokenizer cli template http
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
	rm -rf build build-openblas build-asan build-tsan build-clang build-neon build-neon-v8 build-fuzz build-valgrind lm

-include $(OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(FUZZ_OBJ:.o=.d)
