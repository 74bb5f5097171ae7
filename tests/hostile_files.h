/* hostile_files.h: tiny GGUF files, a few that load and run and one per
 * class of malformed file a loader must refuse (issue 6, "Hostile inputs"),
 * all built with the GGUF writer. tests/test_hostile.c checks that each bad
 * one is refused at load with its message; fuzz/make_corpus.c writes them
 * all to tests/corpus/gguf/ as the fuzzer's seeds. */
#ifndef LM_TEST_HOSTILE_FILES_H
#define LM_TEST_HOSTILE_FILES_H

#include "lm/common.h"

struct hostile_file {
    const char *name;    /* file name in tests/corpus/gguf/ */
    const char *refusal; /* part of the load error; NULL: the file loads and runs */
    void (*build)(struct lm_buf *out);
};

/* Hand-encoded GGUF pieces, for files the writer would not make. */
void gguf_header(struct lm_buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv); /* resets b */
void gguf_put_info(struct lm_buf *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off);
void gguf_pad_and_data(struct lm_buf *b, size_t n_data); /* to 32-byte alignment, then n_data zero bytes */
/* The metadata kinds the writer has no helper for, hand-encoded, each key
 * behind `prefix`: u8 200, i8 -128, u16 65535, i16 -32768, i64 -5, f64 pi,
 * and arr.nested = [[1, 2], ["x"]]. */
struct lm_gguf_writer;
void gguf_write_hand_values(struct lm_gguf_writer *w, const char *prefix);

extern const struct hostile_file hostile_files[];
extern const size_t n_hostile_files;

#endif
