/* tokenizer.h: text to token ids and back, with the vocabulary of a GGUF.
 *
 * Three kinds of vocabulary (tokenizer.ggml.model):
 *  - "gpt2", byte-level BPE: the pre-tokenizer named by tokenizer.ggml.pre
 *    (unicode.h; llama.cpp's "default" one when the name is absent) splits
 *    the text into words; each byte of a word starts as its own symbol
 *    (tokens spell bytes in GPT-2's printable alphabet), and adjacent
 *    symbols merge in the order of tokenizer.ggml.merges, lowest rank
 *    first, leftmost first on ties.
 *  - "gemma4", BPE over characters: spaces become U+2581 "▁", lines and
 *    runs of newlines are the words (a run of newlines that is a token
 *    stays whole), each character starts as a symbol, merges as above, and
 *    characters that are no token are spelled with <0xNN> byte tokens.
 *  - "llama", SentencePiece BPE: spaces become U+2581 "▁" (one is added in
 *    front when add_space_prefix), and adjacent symbols merge while their
 *    concatenation is a token, highest score first, leftmost on ties;
 *    characters that are no token are spelled with <0xNN> byte tokens.
 * Both give llama.cpp's ids (src/llama-vocab.cpp). Merging keeps a binary
 * heap of candidate pairs, so a word of n symbols costs O(n log n), and an
 * encode call remembers the tokens of the short words it has seen. Encoding
 * only reads the tokenizer, so threads may share one.
 *
 * Special tokens: before splitting, tokens of type user-defined are always
 * cut out of the text as single tokens (as llama.cpp and Hugging Face do),
 * and control/unknown ones (<|im_start|>, <s>) only when the caller asks for
 * parse_special, longest first. Otherwise their text is tokenized like any
 * other, and BPE/SPM merges never produce a control, unknown or byte token.
 * As llama.cpp, tokens known by their text are control tokens whatever the
 * file says: its end-of-generation list (<|im_end|>, <end_of_turn>,
 * <turn|>, <|eot_id|>, ...) and, for roles the file does not name, end of
 * turn and fill-in-the-middle markup (<|fim_prefix|>, <|file_sep|>, ...);
 * with its exceptions (gpt-oss's <|end|> and <|channel|>... user-defined,
 * gemma4's </s> plain). Special tokens of models named phi-3 take the
 * whitespace after them along (llama.cpp's rstrip).
 *
 * Decoding is exact: concatenating the pieces of encode's ids gives back the
 * input bytes, invalid UTF-8 and NUL included, as long as the vocabulary can
 * spell every byte. Many byte-level ones cannot (SmolLM's lacks 0x04, 0x06,
 * 0x13, 0x14, 0x16, 0x1D and bytes never found in UTF-8): such bytes are
 * dropped, as llama.cpp does. lm_tokenizer_decode removes the space SPM puts
 * in front of the text, not the ones it puts after special tokens (user-
 * defined ones are cut out even without parse_special), and SPM decodes a
 * U+2581 of the text as a space, as SentencePiece does. The
 * vocabulary strings stay in the GGUF's buffer, which must outlive the
 * tokenizer.
 *
 * Memory: the tables take at most 40 bytes per token (which costs at least
 * 8 bytes of file) for at most LM_MAX_VOCAB tokens, 64 bytes per merge (8
 * bytes of file) for at most LM_MAX_VOCAB merges, and for SPM a set of the
 * character pairs found in tokens, grown as pairs are found, of at most
 * LM_TOK_MAX_JOINS pairs (16 MiB): a vocabulary with more does without it,
 * as if every pair were joinable, which only makes encoding slower.
 *
 * Left out on purpose: WordPiece/Unigram/RWKV vocabularies; pre-tokenizers
 * beyond those of unicode.h (an unknown tokenizer.ggml.pre gets gpt-2's and
 * a warning, where llama.cpp refuses the file); the lstrip attribute
 * llama.cpp sets by model name (jina, modern-bert); llama.cpp's default
 * BOS/EOS id 11 for gpt2 vocabularies that name none; when several texts
 * could play one role, the choice among them (llama.cpp's depends on its
 * hash map's order); SPM's remove_extra_whitespaces; and the clean-up of
 * spaces before punctuation that llama.cpp's detokenizer does (it would
 * break exactness).
 */
#ifndef LM_TOKENIZER_H
#define LM_TOKENIZER_H

#include "lm/common.h"
#include "lm/gguf.h"
#include "lm/unicode.h"

#define LM_MAX_VOCAB (1 << 24) /* tokens, and merges; real vocabularies have at most a few 100k */
#define LM_TOK_MAX_JOINS (1 << 20)

enum lm_vocab_type {
    LM_VOCAB_BPE, /* "gpt2" */
    LM_VOCAB_SPM, /* "llama" */
};

/* tokenizer.ggml.token_type values. */
enum lm_token_type {
    LM_TOKEN_UNDEFINED = 0,
    LM_TOKEN_NORMAL = 1,
    LM_TOKEN_UNKNOWN = 2,
    LM_TOKEN_CONTROL = 3,
    LM_TOKEN_USER_DEFINED = 4,
    LM_TOKEN_UNUSED = 5,
    LM_TOKEN_BYTE = 6,
};

struct lm_token {
    const char *text; /* raw piece, in the GGUF buffer, not NUL-terminated */
    uint32_t len;
    int32_t type;     /* enum lm_token_type (other values: as UNDEFINED) */
    float score;      /* SPM merge priority; 0 when the file has none */
    bool eog;         /* ends generation (see lm_tokenizer_is_eog) */
    bool rstrip;      /* cut out with the whitespace after it (phi-3's markup) */
};

struct lm_tokenizer {
    enum lm_vocab_type type;
    enum lm_pretok pre;      /* BPE only */
    bool byte_level;         /* BPE: words start as bytes in GPT-2's alphabet ("gpt2"), else as
                                characters with spaces written U+2581 ("gemma4") */
    int32_t n_vocab;
    struct lm_token *tokens; /* [n_vocab] */
    /* Ids of tokens with a role, -1 when the vocabulary has none. */
    int32_t bos, eos, eot, unk, pad;
    bool add_bos, add_eos;   /* what the model asks for when encoding a prompt */
    bool add_space_prefix;   /* SPM: a space in front of the text */
    bool ignore_merges;      /* llama3: a word that is a token is not merged */
    char warning[192];       /* a non-fatal problem found at load, or "" */
    /* private */
    int32_t *index;          /* text -> id + 1, open addressing, 0 = empty */
    uint64_t index_mask;
    struct lm_tok_merge *merges; /* (left, right) -> rank, result */
    uint64_t merges_mask;
    int32_t byte_id[256];    /* the token of each byte, -1 if none */
    int32_t *specials;       /* user-defined/control/unknown ids, longest first */
    int32_t n_specials;
    uint64_t *joins;         /* SPM: character pairs inside tokens, a << 32 | b; NULL: all */
    uint64_t joins_mask;
};

/* A growable array of token ids. */
struct lm_tokens {
    int32_t *ids;
    size_t n, cap;
};
void lm_tokens_push(struct lm_tokens *v, int32_t id);
void lm_tokens_free(struct lm_tokens *v);

/* Reads and checks the vocabulary of g. 0, or -1 with err set. */
int lm_tokenizer_load(struct lm_tokenizer *t, const struct lm_gguf *g, struct lm_err *err);
/* Safe on a zeroed or half-loaded tokenizer. */
void lm_tokenizer_free(struct lm_tokenizer *t);

/* Appends the ids of text[0..len) to out: BOS first when add_bos (an error
 * when the vocabulary has none), special tokens parsed when parse_special.
 * Any bytes are accepted. 0, or -1 with err set. */
int lm_tokenizer_encode(const struct lm_tokenizer *t, const char *text, size_t len, bool add_bos,
                        bool parse_special, struct lm_tokens *out, struct lm_err *err);

/* The id of the token whose raw text is s[0..len), or -1. */
int32_t lm_tokenizer_find(const struct lm_tokenizer *t, const char *s, size_t len);
/* The raw text of a token (as stored: "Ġthe", "▁the", "<0x0A>"); *len set. */
const char *lm_tokenizer_token_text(const struct lm_tokenizer *t, int32_t id, size_t *len);

/* Appends the bytes token id stands for: byte-level text decoded, ▁ turned
 * into a space, <0xNN> into its byte; control tokens give their text. */
void lm_tokenizer_decode_piece(const struct lm_tokenizer *t, int32_t id, struct lm_buf *out);
/* Appends the text of ids[0..n), the inverse of lm_tokenizer_encode (SPM's
 * added leading space removed). */
void lm_tokenizer_decode(const struct lm_tokenizer *t, const int32_t *ids, size_t n, struct lm_buf *out);

/* End of generation: eos, eot, and tokens such as <|im_end|>, <|eot_id|>,
 * <|endoftext|>, <end_of_turn> when the vocabulary has them. */
bool lm_tokenizer_is_eog(const struct lm_tokenizer *t, int32_t id);
/* Control and unknown tokens: markup, never shown as text. */
bool lm_tokenizer_is_special(const struct lm_tokenizer *t, int32_t id);

/* Streaming decoder: feed ids one at a time and get only whole UTF-8
 * characters; bytes of a character split across tokens wait for the rest.
 * Bytes that cannot become valid UTF-8 are passed through as they are. */
struct lm_detok {
    const struct lm_tokenizer *t;
    bool special;      /* show control tokens' text (default: skip them) */
    uint8_t n_pending;
    char pending[3];
};
void lm_detok_init(struct lm_detok *d, const struct lm_tokenizer *t, bool special);
void lm_detok_feed(struct lm_detok *d, int32_t id, struct lm_buf *out);
/* Appends whatever is still pending (an incomplete character, as is). */
void lm_detok_flush(struct lm_detok *d, struct lm_buf *out);

#endif
