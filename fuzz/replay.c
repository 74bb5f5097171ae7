/* replay: runs a harness once on each file given, or on each file of each
 * directory given, without libFuzzer: `make fuzz-replay` links it with
 * every harness under ASan/UBSan and replays tests/corpus. Exit 0 when no
 * input crashed (a crash aborts with the sanitizer's report). */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int run_file(const char *path) {
    struct lm_buf b = {0};
    struct lm_err err;
    if (lm_read_file(path, &b, &err) < 0) {
        dprintf(2, "replay: %s\n", err.msg);
        return -1;
    }
    /* An exact-size copy, so reading past the input is caught as with libFuzzer. */
    uint8_t *data = lm_xmalloc(b.len ? b.len : 1);
    memcpy(data, b.data ? b.data : "", b.len);
    LLVMFuzzerTestOneInput(data, b.len);
    free(data);
    lm_buf_free(&b);
    return 0;
}

int main(int argc, char **argv) {
    const char *name = argv[0];
    LLVMFuzzerInitialize(&argc, &argv);
    size_t runs = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            size_t n;
            char **files = fuzz_list_dir(argv[i], "", &n);
            for (size_t k = 0; k < n; k++)
                if (run_file(files[k]) == 0) runs++;
            fuzz_free_list(files, n);
        } else if (run_file(argv[i]) == 0) {
            runs++;
        } else {
            return 1;
        }
    }
    dprintf(2, "%s: %zu inputs, no finding\n", name, runs);
    return 0;
}
