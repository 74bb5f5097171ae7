# lm: single-binary LLM inference. Targets: all test asan fuzz bench chat clean.
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

.PHONY: all test asan fuzz bench chat clean model

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
asan:
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		build-asan/test-runner build-asan/lm
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 LM_BIN=build-asan/lm LM_TEST_QUICK=1 ./build-asan/test-runner $(T)

model: models/default.gguf
models/default.gguf:
	./scripts/get-model.sh

chat: lm models/default.gguf
	./lm chat

# Tokens per second on the default model (see also scripts/ for llama.cpp side by side).
bench: lm models/default.gguf
	./lm bench

clean:
	rm -rf build build-asan build-fuzz lm

-include $(OBJ:.o=.d) $(TEST_OBJ:.o=.d)
