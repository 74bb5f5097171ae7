/* gguf.h: reading and writing GGUF files (versions 2 and 3).
 *
 * Byte layout (little-endian):
 *   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x { str key | u32 value_type | value }
 *   n_tensors x { str name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset }
 *   padding to general.alignment (default 32) | data section
 * where str = u64 length + bytes (no NUL), and an array value is
 *   u32 element_type | u64 count | count x element (strings and arrays nest).
 * Tensor offsets are relative to the data section and multiples of the
 * alignment. (Version 1 used u32 counts; we refuse it.)
 *
 * The file is parsed from memory: lm_gguf_parse() validates every length,
 * count, dimension and offset against the buffer before use and keeps views
 * into it; nothing from the data section is copied. lm_gguf_open() is mmap
 * plus parse. Errors are one line in struct lm_err.
 *
 * Memory: whatever the counts in the file say, parsing allocates at most
 * LM_GGUF_MEM_PER_BYTE bytes per byte of the file plus LM_GGUF_MEM_SLACK
 * (an LM_ASSERT holds it). Each table is sized by what the file must spend
 * on its entries: a metadata entry (at least 14 bytes of file) takes 48
 * bytes and 4 to 16 of hash index, a tensor info (at least 33) 80 and its
 * index, a string element (at least 8) one 8-byte pointer, an array element
 * (at least 12) 32 bytes. Counts are checked against the bytes left before
 * their table is made, so the worst case is one claimed metadata table
 * (3.7 bytes per byte) plus deeply nested arrays (4 per byte) at once.
 */
#ifndef LM_GGUF_H
#define LM_GGUF_H

#include "lm/common.h"
#include "lm/quants.h"

enum lm_gguf_type {
    LM_GGUF_U8 = 0,
    LM_GGUF_I8 = 1,
    LM_GGUF_U16 = 2,
    LM_GGUF_I16 = 3,
    LM_GGUF_U32 = 4,
    LM_GGUF_I32 = 5,
    LM_GGUF_F32 = 6,
    LM_GGUF_BOOL = 7,
    LM_GGUF_STRING = 8,
    LM_GGUF_ARRAY = 9,
    LM_GGUF_U64 = 10,
    LM_GGUF_I64 = 11,
    LM_GGUF_F64 = 12,
    LM_GGUF_TYPE_COUNT = 13,
};

const char *lm_gguf_type_name(enum lm_gguf_type t);
/* Bytes of one value of a fixed-size type; 0 for STRING and ARRAY. */
size_t lm_gguf_type_size(enum lm_gguf_type t);

/* A string inside the buffer: not NUL-terminated. */
struct lm_gguf_str {
    uint64_t len;
    const char *data;
};

struct lm_gguf_value {
    enum lm_gguf_type type;
    union {
        uint64_t u64;   /* U8, U16, U32, U64, BOOL */
        int64_t i64;    /* I8, I16, I32, I64 */
        double f64;     /* F32, F64 */
        struct lm_gguf_str str;
        struct {
            enum lm_gguf_type type;  /* element type */
            uint64_t n;
            union {
                const void *raw;                   /* numeric elements, packed little-endian, unaligned */
                const uint8_t *const *strs;        /* STRING elements, as encoded: see lm_gguf_arr_str */
                const struct lm_gguf_value *items; /* ARRAY elements */
            };
        } arr;
    };
};

struct lm_gguf_kv {
    struct lm_gguf_str key;
    struct lm_gguf_value value;
};

struct lm_gguf_tensor {
    struct lm_gguf_str name;
    struct lm_tensor t;    /* type, dims, data pointer into the buffer */
    uint64_t offset;       /* relative to the data section */
    uint64_t size;         /* bytes */
};

struct lm_gguf {
    uint32_t version;
    uint64_t n_kv, n_tensors;
    struct lm_gguf_kv *kv;
    struct lm_gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_offset;   /* start of the data section within the buffer */
    const uint8_t *buf;
    size_t size;
    /* private */
    void *map;
    size_t map_size;
    void **allocs;          /* storage for string/array elements */
    size_t n_allocs, cap_allocs;
    uint64_t mem;           /* bytes the parse allocated (see Memory above) */
    uint32_t *kv_index, *tensor_index; /* open-addressing hash tables: index + 1, 0 = empty */
    uint64_t kv_index_cap, tensor_index_cap;
};

#define LM_GGUF_MEM_PER_BYTE 8
#define LM_GGUF_MEM_SLACK 1024

/* Parses buf[0..size). The buffer must outlive g. 0 or -1 with err set. */
int lm_gguf_parse(struct lm_gguf *g, const void *buf, size_t size, struct lm_err *err);
/* mmap + parse; errors are prefixed with the path. */
int lm_gguf_open(struct lm_gguf *g, const char *path, struct lm_err *err);
/* Safe on a zeroed or half-built g. */
void lm_gguf_close(struct lm_gguf *g);
/* Lets the pages of data[0..size) go when g maps a file (lm_gguf_open):
 * they are read again from the file if touched. For a reader done with a
 * tensor, so that going through a large file does not keep all of it
 * resident. Does nothing for a buffer given to lm_gguf_parse. */
void lm_gguf_release(const struct lm_gguf *g, const void *data, size_t size);

/* Index of key, or -1. */
int64_t lm_gguf_find_key(const struct lm_gguf *g, const char *key);
/* The value of key (any type), or NULL when absent. */
const struct lm_gguf_value *lm_gguf_get(const struct lm_gguf *g, const char *key);
/* Typed getters: return 1 when found, 0 when absent (out untouched),
 * -1 on a type mismatch (err set). get_int accepts any integer type (the
 * converters disagree on widths) and refuses floats, strings and bools. */
int lm_gguf_get_int(const struct lm_gguf *g, const char *key, int64_t *out, struct lm_err *err);
int lm_gguf_get_uint(const struct lm_gguf *g, const char *key, uint64_t *out, struct lm_err *err);
int lm_gguf_get_f32(const struct lm_gguf *g, const char *key, float *out, struct lm_err *err);
int lm_gguf_get_bool(const struct lm_gguf *g, const char *key, bool *out, struct lm_err *err);
int lm_gguf_get_str(const struct lm_gguf *g, const char *key, struct lm_gguf_str *out, struct lm_err *err);
/* An array whose elements have type elem; 1/0/-1 as above. */
int lm_gguf_get_arr(const struct lm_gguf *g, const char *key, enum lm_gguf_type elem,
                    const struct lm_gguf_value **out, struct lm_err *err);

/* Element i of a numeric array (i < n, checked by LM_ASSERT). */
int64_t lm_gguf_arr_int(const struct lm_gguf_value *arr, uint64_t i);
double lm_gguf_arr_float(const struct lm_gguf_value *arr, uint64_t i);
/* Element i of a string array (i < n, checked by LM_ASSERT). */
struct lm_gguf_str lm_gguf_arr_str(const struct lm_gguf_value *arr, uint64_t i);

/* Tensor by name, or NULL. */
const struct lm_gguf_tensor *lm_gguf_find_tensor(const struct lm_gguf *g, const char *name);

/* True when s equals the NUL-terminated c. */
bool lm_gguf_str_eq(struct lm_gguf_str s, const char *c);

/* general.file_type holds llama.cpp's enum llama_ftype: the format most
 * weights are stored in. name is the short form ("Q4_K_M"), desc llama.cpp's
 * own wording (llama_ftype_name: "Q4_K - Medium"); NULL for a value neither
 * knows. The flag LM_GGUF_FILE_TYPE_GUESSED is ignored. */
#define LM_GGUF_FILE_TYPE_GUESSED 1024
struct lm_gguf_file_type {
    const char *name, *desc;
};
const struct lm_gguf_file_type *lm_gguf_file_type(int64_t ft);
/* The file's general.file_type; without one (or when it is not an integer),
 * llama.cpp's guess: the type of the most tensors, | LM_GGUF_FILE_TYPE_GUESSED. */
int64_t lm_gguf_file_type_of(const struct lm_gguf *g);

/* ---- writing ---------------------------------------------------------- */

/* Builds a GGUF file in memory: add metadata and tensors, then finish.
 * Values are copied in; the writer does not validate (tests use it to make
 * malformed files too). To stream large files, add tensor infos alone and
 * write the header, then each tensor's data at its offset. */
struct lm_gguf_writer {
    struct lm_buf kv;       /* encoded key/value pairs */
    struct lm_buf infos;    /* encoded tensor infos */
    struct lm_buf data;     /* tensor data, each aligned (lm_gguf_write_tensor only) */
    uint64_t data_size;     /* bytes of the data section so far */
    uint64_t n_kv, n_tensors;
    uint64_t alignment;     /* set before the first tensor */
    uint32_t version;
};

void lm_gguf_writer_init(struct lm_gguf_writer *w);  /* version 3, alignment 32 */
void lm_gguf_writer_free(struct lm_gguf_writer *w);
void lm_gguf_write_u32(struct lm_gguf_writer *w, const char *key, uint32_t v);
void lm_gguf_write_i32(struct lm_gguf_writer *w, const char *key, int32_t v);
void lm_gguf_write_u64(struct lm_gguf_writer *w, const char *key, uint64_t v);
void lm_gguf_write_f32(struct lm_gguf_writer *w, const char *key, float v);
void lm_gguf_write_bool(struct lm_gguf_writer *w, const char *key, bool v);
void lm_gguf_write_str(struct lm_gguf_writer *w, const char *key, const char *v);
/* Numeric array: n packed elements of type elem. */
void lm_gguf_write_arr(struct lm_gguf_writer *w, const char *key, enum lm_gguf_type elem, const void *data, uint64_t n);
void lm_gguf_write_arr_str(struct lm_gguf_writer *w, const char *key, const char *const *strs, uint64_t n);
/* Any value, already encoded (value-type field included): for nested arrays
 * and deliberately broken files. */
void lm_gguf_write_raw(struct lm_gguf_writer *w, const char *key, const void *encoded, size_t n);
/* A value as lm_gguf_parse read it (copying metadata from one file to another). */
void lm_gguf_write_value(struct lm_gguf_writer *w, struct lm_gguf_str key, const struct lm_gguf_value *v);
/* A tensor; data holds the row-major bytes for its type and shape. */
void lm_gguf_write_tensor(struct lm_gguf_writer *w, const char *name, enum lm_type type, int n_dims,
                          const int64_t *ne, const void *data);
/* A tensor's info alone: returns its offset in the data section and its
 * size in *size (may be NULL). Its data is the caller's to write. */
uint64_t lm_gguf_write_tensor_info(struct lm_gguf_writer *w, const char *name, enum lm_type type, int n_dims,
                                   const int64_t *ne, uint64_t *size);
/* Everything before the data section (padding included) into out. */
void lm_gguf_writer_header(struct lm_gguf_writer *w, struct lm_buf *out);
/* The whole file into out. */
void lm_gguf_writer_finish(struct lm_gguf_writer *w, struct lm_buf *out);
int lm_gguf_writer_save(struct lm_gguf_writer *w, const char *path, struct lm_err *err);

/* Low-level encoding helpers, exposed for tests that craft values. */
void lm_gguf_put_u32(struct lm_buf *b, uint32_t v);
void lm_gguf_put_u64(struct lm_buf *b, uint64_t v);
void lm_gguf_put_str(struct lm_buf *b, const char *s, size_t n);

#endif
