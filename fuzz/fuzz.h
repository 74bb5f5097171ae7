/* fuzz.h: what the libFuzzer harnesses in fuzz/ share (see fuzz/README.md).
 *
 * Each fuzz_NAME.c defines the two libFuzzer entry points. Built with
 * -fsanitize=fuzzer it is a fuzzer (make fuzz, make fuzz-run); linked with
 * replay.c instead it is a plain program that runs each file of a corpus
 * once (make fuzz-replay), so the corpus is checked under ASan/UBSan by any
 * compiler. A finding is a sanitizer report or an abort: the harnesses
 * check what lm promises and abort() when it does not hold. */
#ifndef LM_FUZZ_H
#define LM_FUZZ_H

#include "lm/common.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts with a message (on file descriptor 2, which the sanitizers and
 * libFuzzer keep) when c is false: a promise of lm that the input broke. */
#define FUZZ_CHECK(c) ((c) ? (void)0 : fuzz_fail(#c, __FILE__, __LINE__))
_Noreturn void fuzz_fail(const char *expr, const char *file, int line);

/* Sends stdout and stderr (the FILE streams, not the descriptors) to
 * /dev/null: the commands under test print a line per input. */
void fuzz_quiet(void);

/* path under the shared test data (../shared, or $LM_SHARED), in a static buffer. */
const char *fuzz_shared_path(const char *rel);
/* The default model ($LM_MODEL, else models/default.gguf), or NULL when absent. */
const char *fuzz_model_path(void);

/* Paths of the files in dir whose names end with suffix, sorted; *n set.
 * NULL (and *n = 0) when dir cannot be read. Free with fuzz_free_list. */
char **fuzz_list_dir(const char *dir, const char *suffix, size_t *n);
void fuzz_free_list(char **list, size_t n);

#endif
